#!/usr/bin/env python3
"""Flood helper for test-server-flood.sh: THREADS threads open connections
to 127.0.0.1:PORT from SRC_ADDR and send one forged first message each (a
frame of 8..127 random bytes), read the answer (an ALERT frame or a close)
and start over, until SECONDS have passed or SIGTERM.  Prints
"result: alertN=... closed=... total=..." on exit."""
import os
import signal
import socket
import struct
import sys
import threading
import time

port, src, secs, nthreads = (int(sys.argv[1]), sys.argv[2],
                             float(sys.argv[3]), int(sys.argv[4]))
stop = threading.Event()
counts = {}
lock = threading.Lock()


def rx(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise EOFError
        b += k
    return b


def one():
    end = time.time() + secs
    while not stop.is_set() and time.time() < end:
        v = "closed"
        try:
            s = socket.socket()
            s.settimeout(10)
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            body = os.urandom(os.urandom(1)[0] % 120 + 8)
            s.sendall(struct.pack(">I", len(body)) + body)
            try:
                (n,) = struct.unpack(">I", rx(s, 4))
                b = rx(s, n)
                v = "alert%d" % b[1] if len(b) == 2 and b[0] == 0x7F else "frame"
            except (EOFError, OSError):
                pass
            s.close()
        except OSError:
            v = "oserr"
        with lock:
            counts[v] = counts.get(v, 0) + 1


signal.signal(signal.SIGTERM, lambda *a: stop.set())
ts = [threading.Thread(target=one) for _ in range(nthreads)]
for t in ts:
    t.start()
while any(t.is_alive() for t in ts):
    time.sleep(0.05)
print("result:", " ".join("%s=%d" % kv for kv in sorted(counts.items())),
      "total=%d" % sum(counts.values()), flush=True)
