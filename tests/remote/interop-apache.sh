#!/bin/sh
# tests/interop/apache.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/apache.sh
