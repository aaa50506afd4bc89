#!/bin/sh
# The module suite again, against a nimbusd per store on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/p11/test_p11
