#!/bin/sh
# tests/interop/java.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/java.sh
