#!/bin/sh
# The module suite again, against two nimbusd on one store (one HSM of two
# servers: the module's failover backend, server_spread = application).
NIMBUS_TEST_SERVERS=2
export NIMBUS_TEST_SERVERS
exec "$(dirname "$0")/run.sh" unix tests/p11/test_p11
