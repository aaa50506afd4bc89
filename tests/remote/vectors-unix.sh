#!/bin/sh
# The Wycheproof suite through the module again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/p11/test_vectors
