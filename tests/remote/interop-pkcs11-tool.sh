#!/bin/sh
# tests/interop/pkcs11-tool.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/pkcs11-tool.sh
