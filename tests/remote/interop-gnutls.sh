#!/bin/sh
# tests/interop/gnutls.sh again, against nimbusd on a unix socket.
exec "$(dirname "$0")/run.sh" unix tests/interop/gnutls.sh
