#!/usr/bin/env python3
"""Opens COUNT connections to HOST:PORT from source address SRC and holds
them for SECONDS: "slow" sends a request line and then one header byte per
second (slowloris), "idle" sends nothing.  Prints one JSON line: how many
connected, how many the server closed (EOF or reset) before the end, and
how many were still open at the end."""
import json
import selectors
import socket
import sys
import time

host, port, src, mode, count, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
sel = selectors.DefaultSelector()
conns, failed = [], 0
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((src, 0))
        s.settimeout(2)
        s.connect((host, port))
        if mode == "slow":
            s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        conns.append(s)
        sel.register(s, selectors.EVENT_READ)
    except OSError:
        failed += 1
        s.close()
open_ = set(conns)
end = time.monotonic() + seconds
next_byte = time.monotonic() + 1
while time.monotonic() < end and open_:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:  # closed by the server (a 4xx answer also counts: it closes after)
            sel.unregister(s)
            open_.discard(s)
            s.close()
    if mode == "slow" and time.monotonic() >= next_byte:
        next_byte += 1
        for s in list(open_):
            try:
                s.send(b"X")
            except OSError:
                sel.unregister(s)
                open_.discard(s)
                s.close()
print(json.dumps({"connected": len(conns), "connect_failed": failed,
                  "closed_by_server": len(conns) - len(open_), "still_open": len(open_)}))
for s in open_:
    s.close()
