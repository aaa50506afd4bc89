#!/usr/bin/env python3
# free-port.py: prints a TCP port on 127.0.0.1 that nobody listens on,
# drawn at random from 20000-32767: test servers stay below the kernel's
# ephemeral range (32768 and up), where clients' own outgoing ports come
# from. Another process can still take the port before the caller binds
# it; callers retry (tests/interop/common.sh with_free_ports).
import random
import socket
import sys

for _ in range(500):
    port = random.randint(20000, 32767)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit("no free port in 20000-32767")
