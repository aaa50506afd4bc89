#!/bin/sh
# The module suite's login, objects and crypto groups against a 3-node
# cluster (tests/p11/p11util.c): the module talks to a follower, so every
# write is forwarded to the leader and applied by all three.
NIMBUS_P11_GROUPS=login,objects,crypto exec "$(dirname "$0")/run.sh" cluster tests/p11/test_p11
