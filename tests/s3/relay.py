#!/usr/bin/python3
"""tests/s3/relay.py -- a TCP relay for the test hosts of tests/s3/hosts.sh.

Listens on ADDR:PORT inside the network namespace NETNS (a file such as
/run/netns/NAME; the listening socket is made there, then the process
returns to its own namespace) and forwards every connection to TARGET
(HOST:PORT, reached from the namespace the relay was started in: the S3
server on 127.0.0.1).  The bytes are passed through unchanged, so SigV4
signatures (which cover the Host header the client sent) still hold.

Each accepted connection is logged as "peer ADDR" to LOG, so that a test
can show which test host talked to the server.

Bounded, as a test helper must be: it stops by itself after MAX_SECONDS,
when the process PARENT is gone, or after MAX_CONN connections; idle
connections are closed after IDLE seconds.

usage: relay.py NETNS ADDR PORT TARGET_HOST TARGET_PORT LOG READY_FILE
                PARENT [MAX_SECONDS [MAX_CONN [IDLE]]]
READY_FILE is written once the socket listens.
"""
import ctypes
import os
import socket
import sys
import threading
import time

CLONE_NEWNET = 0x40000000


def setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


def pump(src, dst, idle):
    src.settimeout(idle)
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(client, target, idle):
    try:
        up = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = threading.Thread(target=pump, args=(up, client, idle), daemon=True)
    t.start()
    pump(client, up, idle)
    t.join(idle + 5)
    client.close()
    up.close()


def main():
    a = sys.argv[1:]
    if len(a) < 8:
        sys.exit(__doc__)
    netns, addr, port, thost, tport, log, ready, parent = a[:8]
    max_seconds = float(a[8]) if len(a) > 8 else 600
    max_conn = int(a[9]) if len(a) > 9 else 20000
    idle = float(a[10]) if len(a) > 10 else 120
    parent = int(parent)

    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open(netns, os.O_RDONLY)
    setns(fd)
    os.close(fd)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(128)
    setns(own)
    os.close(own)

    with open(ready + ".tmp", "w") as f:
        f.write("%s:%s\n" % (addr, port))
    os.rename(ready + ".tmp", ready)

    logf = open(log, "a", buffering=1)
    deadline = time.monotonic() + max_seconds
    ls.settimeout(1.0)
    n = 0
    while n < max_conn and time.monotonic() < deadline:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            break
        try:
            c, peer = ls.accept()
        except socket.timeout:
            continue
        n += 1
        logf.write("peer %s\n" % peer[0])
        threading.Thread(target=serve, args=(c, (thost, int(tport)), idle),
                         daemon=True).start()
    ls.close()


if __name__ == "__main__":
    main()
