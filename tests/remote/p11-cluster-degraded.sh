#!/bin/sh
# The same groups against a 3-node cluster with one follower stopped once
# it formed: the module's follower and the leader are a majority.
NIMBUS_P11_GROUPS=login,objects,crypto exec "$(dirname "$0")/run.sh" cluster-degraded tests/p11/test_p11
