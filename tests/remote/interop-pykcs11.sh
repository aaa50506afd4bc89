#!/bin/sh
# tests/interop/pykcs11.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/pykcs11.sh
