#!/bin/sh
# tests/interop/openssh.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/openssh.sh
