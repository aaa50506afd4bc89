#!/bin/sh
echo "SKIP: pykcs11: not yet"
exit 77
