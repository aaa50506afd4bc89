#!/bin/sh
# The module suite's login and crypto groups over mutual TLS 1.3 (a throw-away CA).
NIMBUS_P11_GROUPS=login,crypto exec "$(dirname "$0")/run.sh" tls tests/p11/test_p11
