#!/bin/sh
# tests/interop/nginx.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/nginx.sh
