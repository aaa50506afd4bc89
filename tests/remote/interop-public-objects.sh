#!/bin/sh
# tests/interop/public-objects.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/public-objects.sh
