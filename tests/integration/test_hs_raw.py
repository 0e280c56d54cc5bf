#!/usr/bin/env python3
"""Raw-socket helper for test-hs-server.sh: record a real session through a
proxy, then replay, splice, truncate or oversize messages against
mintline-server and print the alert code the server answers with.

  test_hs_raw.py proxy LISTEN_PORT SERVER_PORT OUT.json [--tamper-client N]
  test_hs_raw.py proxy LISTEN_PORT SERVER_PORT OUT.json --oversize-client N
      # client frame N (a channel record) replaced by a 1 MiB frame header;
      # prints "oversize: alert A closed after MS ms" (or "... open")
  test_hs_raw.py replay SERVER_PORT REC.json             # KEYREQ, then old msg 2
  test_hs_raw.py switch SERVER_PORT REC_A.json REC_B.json  # A's KEYREQ, B's msg 2
  test_hs_raw.py truncate SERVER_PORT REC.json           # msg 2 minus 1 byte
  test_hs_raw.py oversize SERVER_PORT                    # 1 MiB frame header
  test_hs_raw.py silent SERVER_PORT                      # send nothing
Prints "alert N" (N = HS_ALERT_* code) or "closed" and exits 0.
"""
import json
import os
import socket
import struct
import sys
import threading
import time


def read_exact(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            raise EOFError
        b += k
    return b


def read_frame(s):
    (n,) = struct.unpack(">I", read_exact(s, 4))
    return read_exact(s, n)


def frame(body):
    return struct.pack(">I", len(body)) + body


def connect(port):
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=15)
    return s


def verdict(s):
    try:
        while True:
            b = read_frame(s)
            if len(b) == 2 and b[0] == 0x7F:
                print("alert %d" % b[1])
                return
    except (EOFError, ConnectionError, socket.timeout):
        print("closed")


def proxy(listen_port, server_port, out, tamper=None, oversize=None):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(listen_port)))
    ls.listen(1)
    ls.settimeout(30)  # never hang the test if the client does not come
    print("ready", flush=True)
    try:
        c, _ = ls.accept()
    except socket.timeout:
        sys.exit("proxy: no client")
    c.settimeout(30)
    s = connect(server_port)
    rec = []
    lock = threading.Lock()
    big = {}

    def pump(src, dst, tag):
        n = 0
        try:
            while True:
                if tag == "c" and oversize is not None and n == oversize:
                    # the channel is up: a frame header over HS_MAX_FRAME,
                    # then (if the server keeps reading) filler bytes
                    big["t0"] = time.monotonic()
                    dst.sendall(struct.pack(">I", 1 << 20) + b"\x01" * 64)
                    return
                b = read_frame(src)
                if tag == "s" and "t0" in big and len(b) == 2 and \
                        b[0] == 0x7F:
                    big["alert"] = b[1]
                if tag == "c" and tamper is not None and n == tamper:
                    b = bytearray(b)
                    b[len(b) - 2] ^= 1
                    b = bytes(b)
                with lock:
                    rec.append([tag, b.hex()])
                    with open(out + ".tmp", "w") as f:
                        json.dump(rec, f)
                    os.replace(out + ".tmp", out)
                dst.sendall(frame(b))
                n += 1
        except (EOFError, ConnectionError, OSError, socket.timeout) as e:
            if tag == "s" and "t0" in big:
                big["closed"] = not isinstance(e, socket.timeout)
                big["ms"] = (time.monotonic() - big["t0"]) * 1000
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    t1 = threading.Thread(target=pump, args=(c, s, "c"))
    t2 = threading.Thread(target=pump, args=(s, c, "s"))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    if oversize is not None:
        if "ms" not in big:
            print("oversize: frame never sent")
        else:
            print("oversize: alert %s %s after %d ms" % (
                big.get("alert", "none"),
                "closed" if big["closed"] else "open", big["ms"]))
    with open(out, "w") as f:
        json.dump(rec, f)


def load(path):
    with open(path) as f:
        return [bytes.fromhex(h) for tag, h in json.load(f) if tag == "c"]


def main():
    cmd = sys.argv[1]
    if cmd == "proxy":
        tamper = oversize = None
        if len(sys.argv) > 6 and sys.argv[5] == "--tamper-client":
            tamper = int(sys.argv[6])
        if len(sys.argv) > 6 and sys.argv[5] == "--oversize-client":
            oversize = int(sys.argv[6])
        proxy(sys.argv[2], sys.argv[3], sys.argv[4], tamper, oversize)
        return
    s = connect(sys.argv[2])
    if cmd == "replay":
        msgs = load(sys.argv[3])
        s.sendall(frame(msgs[0]))
        read_frame(s)
        s.sendall(frame(msgs[1]))
    elif cmd == "switch":
        a, b = load(sys.argv[3]), load(sys.argv[4])
        s.sendall(frame(a[0]))
        read_frame(s)
        s.sendall(frame(b[1]))
    elif cmd == "truncate":
        msgs = load(sys.argv[3])
        s.sendall(frame(msgs[0]))
        read_frame(s)
        s.sendall(frame(msgs[1][:-1]))
    elif cmd == "oversize":
        s.sendall(struct.pack(">I", 1 << 20) + b"\x01" * 64)
    elif cmd == "silent":
        pass
    verdict(s)


if __name__ == "__main__":
    main()
