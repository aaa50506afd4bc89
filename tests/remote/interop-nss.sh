#!/bin/sh
# tests/interop/nss.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/nss.sh
