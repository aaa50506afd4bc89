#!/bin/sh
# tests/interop/openssl.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/openssl.sh
