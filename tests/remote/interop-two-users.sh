#!/bin/sh
# tests/interop/two-users.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/two-users.sh
