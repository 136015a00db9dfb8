#!/usr/bin/env python3
"""Hostile clients against a real `bct serve` on loopback (issue 17).

    python3 tests/hostile/hostile.py ATTACK [ATTACK...]     (or "all")

Each attack starts its own server (the bundled models/sst2-tiny.bct, one
worker), runs for a bounded time from other loopback addresses (127.0.0.2
and up) while a normal client on 127.0.0.1 sends /classify requests on
fresh connections, and then checks:

  - the server is still up, and answers /health after the attack;
  - its peak RSS (VmHWM of /proc/PID/status) grew by at most RSS_BOUND_MB
    over its RSS once ready and warmed up;
  - the normal client got >= MIN_SUCCESS of its requests answered 200, with
    a p99 latency <= P99_BOUND_S;
  - what the attack itself must see (every held connection closed by the
    server, the answer it must get, how much of a flood the server read).

The bounds are generous for a loaded 2-core machine under ASan, and far
from what a starved server gives (the issue's slowloris run let 2 of 8
requests through).  BCT_HOSTILE_SCALE=N (default 1) multiplies connection
counts and durations: the long form (README in this folder).  BCT is the
bct binary (ctest sets it).  Standard library only.
"""
import http.client
import json
import os
import resource
import select
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "..", "models", "sst2-tiny.bct")
BCT = os.environ.get("BCT", os.path.join(HERE, "..", "..", "build", "bct"))
SCALE = float(os.environ.get("BCT_HOSTILE_SCALE", "1"))

RSS_BOUND_MB = 96       # peak RSS growth during an attack


def socket_slack():
    """What a client can push that the server never read: the kernel's
    largest receive buffer on the server's side plus the largest send
    buffer on the client's (loopback autotuning grows them to these; 32 MiB
    + 4 MiB on Debian 12), else 40 MiB."""
    try:
        rmem = int(open("/proc/sys/net/ipv4/tcp_rmem").read().split()[2])
        wmem = int(open("/proc/sys/net/ipv4/tcp_wmem").read().split()[2])
        return rmem + wmem
    except (OSError, ValueError, IndexError):
        return 40 * 2**20
MIN_SUCCESS = 0.95      # the normal client's share of 200 answers
P99_BOUND_S = 3.0       # ... and its 99th percentile latency
NORMAL_BODY = b'{"inputs": ["a charming and often affecting journey", "unflinchingly bleak"]}'


def n(count):
    return max(1, int(count * SCALE))


def secs(s):
    return s * SCALE


def fail(msg):
    raise AssertionError(msg)


class Server:
    """bct serve on a free loopback port, with its log and access log."""

    def __init__(self, name, *flags, store=False):
        self.work = tempfile.mkdtemp(prefix="bct-hostile-%s." % name)
        args = [BCT, "serve", "--host", "127.0.0.1", "--port", "0",
                "--port-file", os.path.join(self.work, "port"),
                "--access-log", os.path.join(self.work, "access.log"), "--threads", "1"]
        if store:
            self.store = os.path.join(self.work, "store")
            os.mkdir(self.store)
            shutil.copy(MODEL, os.path.join(self.store, "sst2-tiny.bct"))
            args += ["--model-store", self.store, "--admin-token", "hostile-test-token"]
        else:
            args += ["--model", MODEL]
        self.log = open(os.path.join(self.work, "server.log"), "w")
        env = dict(os.environ)
        # Under ASan, freed blocks wait in a quarantine of up to 256 MB,
        # which the RSS bound would measure instead of the server (no
        # effect on other builds).
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
        self.proc = subprocess.Popen(args + list(flags), stderr=self.log, env=env)
        deadline = time.monotonic() + 120
        portfile = os.path.join(self.work, "port")
        while not (os.path.exists(portfile) and os.path.getsize(portfile)):
            self.check_alive("during start-up")
            if time.monotonic() > deadline:
                fail("no port file after 120 s")
            time.sleep(0.05)
        self.port = int(open(portfile).read())
        while request(self.port, "GET", "/ready")[0] != 200:
            self.check_alive("during start-up")
            if time.monotonic() > deadline:
                fail("not ready after 120 s")
            time.sleep(0.1)
        for _ in range(20):  # warm up: allocator pools, the first batches
            request(self.port, "POST", "/classify", NORMAL_BODY)
        self.base_rss = self.status("VmRSS")

    def status(self, key):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0  # MB
        return 0.0

    def check_alive(self, when):
        if self.proc.poll() is not None:
            self.log.flush()
            tail = open(os.path.join(self.work, "server.log")).read()[-3000:]
            fail("the server exited (%s) %s; log:\n%s" % (self.proc.returncode, when, tail))

    def access(self):
        out = []
        with open(os.path.join(self.work, "access.log")) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("the server did not stop within 60 s of SIGTERM")
            if rc != 0:
                fail("the server exited %d on SIGTERM" % rc)
        self.log.close()
        if not os.environ.get("KEEP_WORK"):
            shutil.rmtree(self.work, ignore_errors=True)


def request(port, method, path, body=None, headers=None, src="127.0.0.1", timeout=10):
    """(status, body) of one request on a fresh connection; (0, error) on failure."""
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(src, 0))
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return 0, str(e).encode()
    finally:
        c.close()


class Normal(threading.Thread):
    """The normal client: /classify on a fresh connection every 50 ms."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.lat, self.codes = port, threading.Event(), [], {}

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            code, _ = request(self.port, "POST", "/classify", NORMAL_BODY)
            self.lat.append(time.monotonic() - t0)
            self.codes[code] = self.codes.get(code, 0) + 1
            self.stop.wait(0.05)

    def report(self):
        lat = sorted(self.lat)
        total = len(lat)
        ok = self.codes.get(200, 0)
        p50 = lat[total // 2] if total else 0
        p99 = lat[min(total - 1, int(total * 0.99))] if total else 0
        return {"requests": total, "ok": ok, "codes": self.codes,
                "p50_ms": round(p50 * 1000, 1), "p99_ms": round(p99 * 1000, 1)}


class Holder(threading.Thread):
    """count connections from src, each sending `first` once connected and
    then calling `tick(sock)` every `every` seconds; a connection the server
    closes is counted and, with reconnect, opened again.  Records what the
    server sent back (the status of its first answer line)."""

    def __init__(self, port, src, count, seconds, first=b"", every=None, tick=None, reconnect=False):
        super().__init__(daemon=True)
        self.port, self.src, self.count, self.seconds = port, src, count, seconds
        self.first, self.every, self.tick, self.reconnect = first, every, tick, reconnect
        self.opened = self.refused = self.closed_by_server = self.still_open = 0
        self.sent = 0
        self.statuses = {}
        self.lifetimes = []

    def open_one(self, sel):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((self.src, 0))
            s.settimeout(2)
            s.connect(("127.0.0.1", self.port))
            if self.first:
                s.sendall(self.first)
                self.sent += len(self.first)
            s.setblocking(False)
        except OSError:
            self.refused += 1
            s.close()
            return
        self.opened += 1
        sel.register(s, selectors.EVENT_READ, {"t0": time.monotonic(), "head": b""})

    def run(self):
        sel = selectors.DefaultSelector()
        for _ in range(self.count):
            self.open_one(sel)
        end = time.monotonic() + self.seconds
        next_tick = time.monotonic() + (self.every or 1e9)
        next_fill = time.monotonic() + 1.0
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0.05):
                s, st = key.fileobj, key.data
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data:
                    if len(st["head"]) < 64:
                        st["head"] += data[:64]
                    continue
                self.closed(sel, s, st)
            if self.tick and time.monotonic() >= next_tick:
                next_tick += self.every
                for key in list(sel.get_map().values()):
                    try:
                        self.sent += self.tick(key.fileobj)
                    except BlockingIOError:
                        pass
                    except OSError:
                        self.closed(sel, key.fileobj, key.data)
            if self.reconnect and time.monotonic() >= next_fill:
                # Refill once a second (a real attacker's pace; a tight
                # loop would measure connection churn instead).
                next_fill = time.monotonic() + 1.0
                while len(sel.get_map()) < self.count and time.monotonic() < end:
                    before = self.refused
                    self.open_one(sel)
                    if self.refused > before:
                        break
        self.still_open = len(sel.get_map())
        for key in list(sel.get_map().values()):
            key.fileobj.close()

    def closed(self, sel, s, st):
        sel.unregister(s)
        s.close()
        self.closed_by_server += 1
        self.lifetimes.append(time.monotonic() - st["t0"])
        head = st["head"]
        code = int(head[9:12]) if head.startswith(b"HTTP/1.1 ") and head[9:12].isdigit() else 0
        self.statuses[code] = self.statuses.get(code, 0) + 1

    def report(self):
        lt = sorted(self.lifetimes)
        return {"src": self.src, "opened": self.opened, "refused": self.refused,
                "closed_by_server": self.closed_by_server, "still_open": self.still_open,
                "closed_within_1s": sum(1 for x in lt if x < 1.0),
                "answers": self.statuses, "sent_bytes": self.sent,
                "max_life_s": round(lt[-1], 2) if lt else None}


def sources(k):
    return ["127.0.0.%d" % (2 + i) for i in range(k)]


def run_attack(srv, attackers, seconds, checks, rss_bound=RSS_BOUND_MB):
    """Runs attackers beside the normal client; checks the common bounds
    (rss_bound None: the attack checks its own)."""
    normal = Normal(srv.port)
    normal.start()
    peak = [srv.base_rss]

    for a in attackers:
        a.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end or any(a.is_alive() for a in attackers):
        srv.check_alive("during the attack")
        peak[0] = max(peak[0], srv.status("VmRSS"))
        time.sleep(0.1)
    normal.stop.set()
    normal.join()
    srv.check_alive("after the attack")
    hwm = srv.status("VmHWM")
    nr = normal.report()
    result = {"normal": nr, "rss_base_mb": round(srv.base_rss, 1), "rss_peak_mb": round(hwm, 1),
              "rss_growth_mb": round(hwm - srv.base_rss, 1),
              "attack": [a.report() for a in attackers if hasattr(a, "report")]}
    print(json.dumps(result, indent=1))
    if nr["requests"] < 10:
        fail("the normal client got only %d requests out" % nr["requests"])
    if nr["ok"] < MIN_SUCCESS * nr["requests"]:
        fail("normal client: %d of %d answered 200 (bound: %.0f%%)" % (nr["ok"], nr["requests"], MIN_SUCCESS * 100))
    if nr["p99_ms"] > P99_BOUND_S * 1000:
        fail("normal client: p99 %.0f ms (bound: %.0f ms)" % (nr["p99_ms"], P99_BOUND_S * 1000))
    if rss_bound is not None and hwm - srv.base_rss > rss_bound:
        fail("peak RSS grew by %.1f MB (bound: %d MB)" % (hwm - srv.base_rss, rss_bound))
    if request(srv.port, "GET", "/health")[0] != 200:
        fail("/health after the attack")
    checks(result)
    return result


def send_byte(s):
    return s.send(b"X")


# ---- the attacks ----

def attack_slowloris():
    """Many connections from several addresses sending a request line, then
    one header byte every 2 s, reconnecting when closed.  Default settings
    but a header deadline of 5 s (default 10 s; shorter to keep the test
    short): the per-client cap (64) refuses the excess, the deadline closes
    the rest, whatever they send."""
    srv = Server("slowloris", "--header-timeout-s", "5")
    try:
        dur = max(secs(8), 8)
        hs = [Holder(srv.port, src, n(100), dur, b"POST /classify HTTP/1.1\r\nHost: x\r\n", 2.0, send_byte, True)
              for src in sources(n(3))]

        def checks(r):
            for a in r["attack"]:
                held = a["closed_by_server"] - a["closed_within_1s"]
                if held < 64:
                    fail("%s: %d held slowloris connections closed by the server, expected >= 64" % (a["src"], held))
                if a["max_life_s"] is None or a["max_life_s"] > 5 + 2:
                    fail("%s: a slowloris connection lived %s s (header deadline 5 s)" % (a["src"], a["max_life_s"]))
        run_attack(srv, hs, dur, checks)
    finally:
        srv.stop()


def attack_idle():
    """Connections that send nothing, from several addresses, reopened as the
    server closes them: the header deadline counts from the connection's
    opening (5 s here)."""
    srv = Server("idle", "--header-timeout-s", "5")
    try:
        dur = max(secs(8), 8)
        hs = [Holder(srv.port, src, n(200), dur, reconnect=True) for src in sources(n(3))]

        def checks(r):
            for a in r["attack"]:
                held = a["closed_by_server"] - a["closed_within_1s"]
                if held < 64:
                    fail("%s: %d held idle connections closed by the server, expected >= 64" % (a["src"], held))
                if a["max_life_s"] > 5 + 2:
                    fail("%s: an idle connection lived %.1f s (header deadline 5 s)" % (a["src"], a["max_life_s"]))
        run_attack(srv, hs, dur, checks)
    finally:
        srv.stop()


def attack_headers():
    """Header floods: a request line, then header lines of 1 KB as fast as
    the socket takes them, on many connections.  libmicrohttpd's
    per-connection memory (32 KiB) answers "too large" (431) and closes."""
    srv = Server("headers")
    try:
        line = b"X-Flood: " + b"a" * 1000 + b"\r\n"
        dur = secs(8)
        hs = [Holder(srv.port, src, n(32), dur, b"GET /health HTTP/1.1\r\nHost: x\r\n", 0.01,
                     lambda s: s.send(line * 16), True) for src in sources(2)]

        def checks(r):
            for a in r["attack"]:
                if a["closed_by_server"] < a["opened"] * 0.9:
                    fail("%s: %d of %d header floods closed" % (a["src"], a["closed_by_server"], a["opened"]))
                bad = {k: v for k, v in a["answers"].items() if k not in (0, 413, 431, 400)}
                if bad:
                    fail("%s: header floods answered %s" % (a["src"], bad))
                # Each connection is cut after a bounded amount (32 KiB of
                # headers plus the socket buffers), not after what it sends.
                if a["sent_bytes"] > a["closed_by_server"] * 4 * 1024 * 1024 + 16 * 1024 * 1024:
                    fail("%s: %d bytes accepted from %d header floods" % (a["src"], a["sent_bytes"], a["closed_by_server"]))
        run_attack(srv, hs, dur, checks)
    finally:
        srv.stop()


def attack_body_slow():
    """Bodies trickled one byte a second after complete headers (Content-Length
    100000, under the limit), and bodies announced and never sent: the body
    deadline (here --body-timeout-s 3, + 0 s for 100 KB) answers 408 and
    closes, although bytes keep arriving."""
    srv = Server("body-slow", "--body-timeout-s", "3")
    try:
        hdr = (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100000\r\n\r\n{\"inputs\": \"")
        dur = max(secs(7), 7)
        hs = [Holder(srv.port, "127.0.0.2", n(50), dur, hdr, 1.0, send_byte, True),
              Holder(srv.port, "127.0.0.3", n(50), dur, hdr, None, None, True)]

        def checks(r):
            for a in r["attack"]:
                if a["closed_by_server"] < a["opened"] - a["still_open"] or a["closed_by_server"] < n(50):
                    fail("%s: %d slow bodies closed by the server" % (a["src"], a["closed_by_server"]))
                if a["max_life_s"] > 3 + 2:
                    fail("%s: a slow body lived %.1f s (body deadline 3 s)" % (a["src"], a["max_life_s"]))
                if a["answers"].get(408, 0) < 0.9 * a["closed_by_server"]:
                    fail("%s: slow bodies answered %s, expected 408" % (a["src"], a["answers"]))
            logged = sum(1 for e in srv.access() if e.get("status") == 408 and e.get("error_type") == "RequestTimeout")
            if logged < n(50):
                fail("only %d 408s in the access log" % logged)
        run_attack(srv, hs, dur, checks)
    finally:
        srv.stop()


class Streamer(threading.Thread):
    """count connections in turn, each sending `head` then `chunk` as fast as
    the server reads it, until the server answers or closes; repeats for
    `seconds`.  Records each connection's answer and bytes sent."""

    def __init__(self, port, src, seconds, head, chunk, body_limit=None):
        super().__init__(daemon=True)
        self.port, self.src, self.seconds, self.head, self.chunk = port, src, seconds, head, chunk
        self.body_limit = body_limit  # stop after this many body bytes (a complete body)
        self.conns, self.statuses, self.max_sent, self.total_sent = 0, {}, 0, 0

    def run(self):
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sent = 0
            try:
                s.bind((self.src, 0))
                s.settimeout(5)
                s.connect(("127.0.0.1", self.port))
                s.sendall(self.head)
                s.setblocking(False)
                got, off = b"", 0
                while time.monotonic() < end + 5:
                    if self.body_limit is None or sent < self.body_limit:
                        try:
                            piece = self.chunk[off:]
                            if self.body_limit is not None:
                                piece = piece[:self.body_limit - sent]
                            k = s.send(piece)
                            sent += k
                            off = (off + k) % len(self.chunk)  # keeps chunk framing whole
                        except BlockingIOError:
                            time.sleep(0.001)
                        except OSError:  # closed: read what was answered before
                            try:
                                got += s.recv(4096)
                            except OSError:
                                pass
                            break
                    else:
                        time.sleep(0.005)
                    try:
                        d = s.recv(4096)
                        if not d:
                            break
                        got += d
                        if b"\r\n\r\n" in got:
                            break
                    except BlockingIOError:
                        pass
                    except OSError:
                        break
                code = int(got[9:12]) if got.startswith(b"HTTP/1.1 ") and got[9:12].isdigit() else 0
            except OSError:
                code = -1
            finally:
                s.close()
            self.conns += 1
            self.statuses[code] = self.statuses.get(code, 0) + 1
            self.max_sent = max(self.max_sent, sent)
            self.total_sent += sent

    def report(self):
        return {"src": self.src, "connections": self.conns, "answers": self.statuses,
                "max_body_bytes_sent": self.max_sent, "total_mb_sent": round(self.total_sent / 2**20, 1)}


def attack_body_fast():
    """Body floods at full speed: a Content-Length of 1 TB (413 at once, from
    the headers), chunked bodies that never end (read and dropped up to
    2 x max_body_bytes + 1 MiB, then cut), and complete 1 MiB bodies of
    garbage (400) back to back, 4 streams each."""
    srv = Server("body-fast")
    try:
        junk = b"x" * 65536
        dur = secs(8)
        big = (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 1000000000000\r\n\r\n")
        chunked = (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
        full = (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1048576\r\nConnection: close\r\n\r\n")
        chunk = b"10000\r\n" + junk + b"\r\n"
        st = ([Streamer(srv.port, "127.0.0.2", dur, big, junk) for _ in range(n(4))] +
              [Streamer(srv.port, "127.0.0.3", dur, chunked, chunk) for _ in range(n(4))] +
              [Streamer(srv.port, "127.0.0.4", dur, full, junk, 1048576) for _ in range(n(4))])

        def checks(r):
            for a in r["attack"]:
                if a["src"] == "127.0.0.2" and set(a["answers"]) - {413}:
                    fail("1 TB Content-Length: answers %s, expected 413 only" % a["answers"])
                # read and dropped up to 2 x max_body_bytes + 1 MiB (3 MiB),
                # then cut: what the socket buffers hold comes on top
                if a["src"] == "127.0.0.3" and a["max_body_bytes_sent"] > 3 * 2**20 + socket_slack():
                    fail("an endless chunked body was read up to %d bytes" % a["max_body_bytes_sent"])
                if a["src"] == "127.0.0.4" and set(a["answers"]) - {400}:
                    fail("1 MiB garbage bodies: answers %s, expected 400 only" % a["answers"])
                if a["connections"] < 2:
                    fail("%s: only %d connections in %.0f s" % (a["src"], a["connections"], dur))
        run_attack(srv, st, dur, checks)
    finally:
        srv.stop()


def attack_pipeline():
    """Pipelining: 200 /classify requests in one write, on 4 connections at
    once, again and again; every request is answered, in order."""
    srv = Server("pipeline")
    try:
        one = (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(NORMAL_BODY), NORMAL_BODY))
        k = 200
        stats = {"batches": 0, "answered": 0, "sent": 0, "bad": 0}
        lock = threading.Lock()
        dur = secs(8)

        def pipeliner(src):
            end = time.monotonic() + dur
            while time.monotonic() < end:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=30, source_address=(src, 0))
                try:
                    s.sendall(one * k)
                    got, answers = b"", 0
                    while answers < k:
                        d = s.recv(65536)
                        if not d:
                            break
                        got += d
                        answers = got.count(b"HTTP/1.1 ")
                    ok = got.count(b"HTTP/1.1 200 ")
                finally:
                    s.close()
                with lock:
                    stats["batches"] += 1
                    stats["sent"] += k
                    stats["answered"] += ok
                    stats["bad"] += answers - ok

        class P(threading.Thread):
            def __init__(self, src):
                super().__init__(daemon=True, target=pipeliner, args=(src,))
        ps = [P("127.0.0.%d" % (2 + i)) for i in range(n(4))]

        def checks(r):
            print(json.dumps({"pipelined": stats}))
            if stats["batches"] < 4 or stats["answered"] != stats["sent"]:
                fail("pipelined: %s (every request must be answered 200)" % stats)
        run_attack(srv, ps, dur, checks)
    finally:
        srv.stop()


def attack_upload_unauth():
    """Admin uploads without a token announcing 2 GiB and streamed at full
    speed, 4 at a time, again and again: each gets its 401 as soon as its
    headers are in and is closed, after the server has read a bounded amount
    (not the 2 GiB); nothing lands in the staging folder."""
    srv = Server("upload", store=True)
    try:
        junk = b"y" * 65536
        head = (b"POST /admin/compress HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: multipart/form-data; boundary=zz\r\n"
                b"Content-Length: 2147483648\r\n\r\n--zz\r\n")
        dur = secs(8)
        st = [Streamer(srv.port, "127.0.0.2", dur, head, junk) for _ in range(n(4))]

        def checks(r):
            a = r["attack"]
            for x in a:
                if set(x["answers"]) - {401}:
                    fail("unauthenticated uploads: answers %s, expected 401 only" % x["answers"])
                # What a client can push before it sees the close: the
                # socket buffers on both sides.
                if x["max_body_bytes_sent"] > 2**20 + socket_slack():
                    fail("an unauthenticated upload got %d bytes in" % x["max_body_bytes_sent"])
            staged = os.path.join(srv.store, ".staging")
            left = os.listdir(staged) if os.path.isdir(staged) else []
            if left:
                fail("staging folder not empty: %s" % left)
        run_attack(srv, st, dur, checks)
        drained_401(srv.port)
    finally:
        srv.stop()


def drained_401(port):
    """A small unauthenticated upload (3 MiB, under SRV_UNAUTH_DRAIN) is
    read to its end before the 401: answering while a proxy still streams
    the body makes the proxy answer 502 (nginx, tests/deploy).  Sent in 4
    pieces 0.3 s apart, no answer may come before the last one."""
    size = 3 * 2**20
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"POST /admin/compress HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: multipart/form-data; boundary=zz\r\n"
                  b"Content-Length: %d\r\n\r\n" % size)
        piece = b"z" * (size // 4)
        for k in range(4):
            time.sleep(0.3)
            if select.select([s], [], [], 0)[0]:
                fail("a 3 MiB unauthenticated upload was answered after %d of 4 pieces "
                     "(it must be drained first, for proxies)" % k)
            s.sendall(piece)
        answer = s.recv(64)
        if not answer.startswith(b"HTTP/1.1 401"):
            fail("the drained unauthenticated upload got %r, expected a 401" % answer[:40])
    finally:
        s.close()


def attack_body_deadline():
    """The body deadline itself (issue 17): body_timeout_s plus one second
    per MiB announced.  A /classify body that trickles gets 408 after
    ~body_timeout_s; an authorised admin upload announcing 3 MiB gets 3 s
    more; a body sent at a normal pace is not cut; the 408 is logged."""
    srv = Server("deadline", "--body-timeout-s", "2", "--connection-timeout-s", "60", store=True)
    try:
        def timed(head, every=0.5):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
            t0 = time.monotonic()
            s.sendall(head)
            s.settimeout(every)
            got = b""
            while True:
                try:
                    d = s.recv(4096)
                    if not d:
                        break
                    got += d
                except socket.timeout:
                    try:
                        s.send(b"1")
                    except OSError:
                        break
                except OSError:
                    break
                if time.monotonic() - t0 > 40:
                    break
            s.close()
            return time.monotonic() - t0, got

        cls = (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 5000\r\n\r\n{\"inputs\": \"")
        t, got = timed(cls)
        print("classify trickle: %.2f s, %r" % (t, got[:120]))
        if not got.startswith(b"HTTP/1.1 408 ") or b"RequestTimeout" not in got:
            fail("a trickled /classify body: expected 408 RequestTimeout, got %r" % got[:200])
        if not 1.8 <= t <= 2 + 2:
            fail("a trickled /classify body was answered after %.2f s (deadline 2 s)" % t)
        up = (b"POST /admin/compress HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer hostile-test-token\r\n"
              b"Content-Type: multipart/form-data; boundary=zz\r\n"
              b"Content-Length: %d\r\n\r\n--zz\r\n" % (3 * 2**20))
        t, got = timed(up)
        print("admin upload trickle (3 MiB announced): %.2f s, %r" % (t, got[:120]))
        if not got.startswith(b"HTTP/1.1 408 "):
            fail("a trickled admin upload: expected 408, got %r" % got[:200])
        if not 2 + 3 - 0.2 <= t <= 2 + 3 + 2:
            fail("a trickled 3 MiB admin upload was answered after %.2f s (deadline 2 + 3 s)" % t)
        # A body sent in pieces within its deadline is answered normally.
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(NORMAL_BODY))
        for i in range(0, len(NORMAL_BODY), 20):
            time.sleep(0.2)
            s.sendall(NORMAL_BODY[i:i + 20])
        got = s.recv(4096)
        s.close()
        if not got.startswith(b"HTTP/1.1 200 "):
            fail("a body sent in pieces within 2 s: %r" % got[:200])
        logged = [e for e in srv.access() if e.get("status") == 408]
        if len(logged) != 2 or any(e.get("error_type") != "RequestTimeout" for e in logged):
            fail("access log 408 entries: %s" % logged)
        if request(srv.port, "GET", "/health")[0] != 200:
            fail("/health after the deadlines")
        print(json.dumps({"body_deadline": "ok", "logged_408": len(logged)}))
    finally:
        srv.stop()


# ---- memory bounds (issue 17): per connection, per upload, per job ----

def attack_mem_body():
    """Per connection: a request body is held in memory up to
    max_body_bytes (1 MiB) and no more.  60 connections (under the
    per-client cap) each send a 1 MiB body but its last byte and hold it:
    the server's RSS grows by about 60 MiB, bounded by 60 x (1 MiB +
    libmicrohttpd's 32 KiB) + 16 MB; then the bodies complete (400: not
    JSON) and a 2 MiB one is refused from its Content-Length (413)."""
    srv = Server("mem-body")
    try:
        conns, limit = 60, 1048576
        head = (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % limit)
        held = {}

        class BodyHolder(threading.Thread):
            def __init__(self):
                super().__init__(daemon=True)
                self.codes = {}

            def run(self):
                socks = []
                for _ in range(conns):
                    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30, source_address=("127.0.0.2", 0))
                    s.sendall(head + b"z" * (limit - 1))
                    socks.append(s)
                time.sleep(2)
                held["rss"] = srv.status("VmRSS")
                for s in socks:  # completed one by one, as bodies arrive
                    s.sendall(b"z")
                    time.sleep(0.02)
                for s in socks:
                    d = s.recv(64)
                    code = int(d[9:12]) if d[9:12].isdigit() else 0
                    self.codes[code] = self.codes.get(code, 0) + 1
                    s.close()
                # Over the limit: answered from the headers (a client still
                # sending its body could see the close before the answer).
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=30, source_address=("127.0.0.2", 0))
                s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % (2 * limit))
                d = s.recv(64)
                s.close()
                self.codes["over_limit"] = int(d[9:12]) if d[9:12].isdigit() else 0

            def report(self):
                return {"held_bodies": conns, "rss_while_held_mb": round(held.get("rss", 0), 1),
                        "answers": self.codes}

        def checks(r):
            a = r["attack"][0]
            grown = held["rss"] - srv.base_rss
            bound = conns * (limit + 32768) / 2**20 + 16
            print(json.dumps({"rss_growth_while_held_mb": round(grown, 1), "bound_mb": round(bound, 1),
                              "per_connection_mb": round(grown / conns, 3)}))
            if grown > bound:
                fail("holding %d bodies of 1 MiB grew RSS by %.1f MB (bound %.1f)" % (conns, grown, bound))
            if a["answers"].get(400) != conns or a["answers"].get("over_limit") != 413:
                fail("answers %s: expected %d x 400 and a 413" % (a["answers"], conns))
        run_attack(srv, [BodyHolder()], 4, checks)
    finally:
        srv.stop()


def attack_mem_json():
    """The request JSON parser: a body at max_body_bytes (1 MiB) made of the
    smallest values ({"inputs": [0,0,0,...]}, 512k of them) would become a
    cJSON tree of ~64 bytes a value (~32 MB, and ~50 ms of the HTTP thread
    each).  The structure budget (srv_limits.h: 16 values per allowed input
    + 256) refuses it from the raw text, 413: 4 streams of them back to
    back grow the peak RSS by < 32 MB (the old parser: 83 MB, and the
    normal client's p50 went to 1.3 s on the loaded machine)."""
    srv = Server("mem-json")
    try:
        body = b'{"inputs": [0' + b",0" * ((1048576 - 16) // 2) + b"]}"
        assert len(body) <= 1048576
        head = (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        dur = secs(8)
        st = [Streamer(srv.port, "127.0.0.2", dur, head, body, len(body)) for _ in range(n(4))]

        def checks(r):
            for a in r["attack"]:
                if set(a["answers"]) - {413} or a["connections"] < 2:
                    fail("1 MiB value arrays: answers %s, expected 413 only" % a["answers"])
            after = srv.status("VmRSS")
            print(json.dumps({"rss_after_mb": round(after, 1)}))
            if after - srv.base_rss > 32:
                fail("RSS stayed %.1f MB above its start after the attack" % (after - srv.base_rss))
        # 32 MB: 4 bodies in flight and, under ASan, its 16 MB quarantine.
        run_attack(srv, st, dur, checks, rss_bound=32)
    finally:
        srv.stop()


def make_checkpoint(work):
    """A random BERT checkpoint (2 layers, hidden 128, 30522-token vocab:
    17 MB of safetensors) from `bct bench --keep`."""
    keep = os.path.join(work, "ckpt")
    subprocess.run([BCT, "bench", "--quick", "--layers", "2", "--hidden", "128", "--heads", "2",
                    "--intermediate", "512", "--vocab", "30522", "--batch", "1", "--seq", "16",
                    "--keep", keep], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return os.path.join(keep, "hf")


def multipart(parts, boundary=b"hostile-boundary"):
    out = b""
    for name, filename, data in parts:
        out += b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name + b"\""
        if filename:
            out += b"; filename=\"" + filename + b"\"\r\nContent-Type: application/octet-stream"
        out += b"\r\n\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n", b"multipart/form-data; boundary=" + boundary


def attack_mem_upload():
    """Per upload and per job.  An authorised upload is streamed to the
    staging folder, never held: 160 MiB of a weights part sent at full speed
    (then the connection dropped) grows RSS by < 16 MB and leaves nothing
    staged.  A compression job of a 17 MB checkpoint (upload, validate,
    compress, load, probe, publish) grows the peak RSS by at most 3 x the
    checkpoint + 32 MB (the checkpoint copied in memory, the .bct written,
    the new model loaded)."""
    srv = Server("mem-upload", "--threads", "1", store=True)
    try:
        auth = {"Authorization": "Bearer hostile-test-token"}
        ckpt = make_checkpoint(srv.work)
        ck_bytes = sum(os.path.getsize(os.path.join(ckpt, f)) for f in os.listdir(ckpt))
        result = {}

        class Uploads(threading.Thread):
            def __init__(self):
                super().__init__(daemon=True)

            def run(self):
                # 1. streamed, then dropped
                total = 200 * 2**20
                head = (b"POST /admin/compress HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer hostile-test-token\r\n"
                        b"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: %d\r\n\r\n"
                        b"--zz\r\nContent-Disposition: form-data; name=\"weights\"; filename=\"w\"\r\n\r\n" % total)
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=30, source_address=("127.0.0.2", 0))
                s.sendall(head)
                junk = b"w" * 2**20
                peak = 0.0
                for i in range(160):
                    s.sendall(junk)
                    if i % 8 == 0:
                        peak = max(peak, srv.status("VmRSS"))
                time.sleep(0.5)
                peak = max(peak, srv.status("VmRSS"))
                staged = os.path.join(srv.store, ".staging")
                result["staged_mb_while_streaming"] = round(sum(
                    os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(staged) for f in fs) / 2**20, 1)
                s.close()
                result["streaming_rss_growth_mb"] = round(peak - srv.base_rss, 1)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    left = [f for dp, ds, fs in os.walk(staged) for f in fs + ds]
                    if not left:
                        break
                    time.sleep(0.2)
                result["staging_left"] = left
                # 2. a whole job
                before = srv.status("VmHWM")
                result["hwm_before_job_mb"] = round(before, 1)
                parts = [(b"name", None, b"hostile-job")]
                for part, f in ((b"config", "config.json"), (b"weights", "model.safetensors"), (b"vocab", "vocab.txt")):
                    parts.append((part, f.encode(), open(os.path.join(ckpt, f), "rb").read()))
                body, ct = multipart(parts)
                hdrs = dict(auth)
                hdrs["Content-Type"] = ct.decode()
                c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120, source_address=("127.0.0.2", 0))
                c.request("POST", "/admin/compress", body=body, headers=hdrs)
                r = c.getresponse()
                answer = json.loads(r.read() or b"{}")
                c.close()
                result["upload_status"] = r.status
                job = answer.get("job_id")
                state = None
                deadline = time.monotonic() + 240
                while job and time.monotonic() < deadline:
                    code, b = request(srv.port, "GET", "/admin/jobs/%s" % job, headers=auth, src="127.0.0.2")
                    state = json.loads(b).get("state") if code == 200 else None
                    if state in ("succeeded", "failed"):
                        break
                    time.sleep(0.3)
                result["job_state"] = state
                result["job_peak_growth_mb"] = round(srv.status("VmHWM") - srv.base_rss, 1)

            def report(self):
                return result

        def checks(r):
            res = r["attack"][0]
            res["checkpoint_mb"] = round(ck_bytes / 2**20, 1)
            print(json.dumps(res))
            if res["staged_mb_while_streaming"] < 100:
                fail("the upload was not streamed to the staging folder: %s" % res)
            if res["streaming_rss_growth_mb"] > 16:
                fail("streaming 160 MiB grew RSS by %.1f MB (bound 16)" % res["streaming_rss_growth_mb"])
            if res["staging_left"]:
                fail("a dropped upload left %s in the staging folder" % res["staging_left"])
            if res["upload_status"] != 202 or res["job_state"] != "succeeded":
                fail("the job: %s" % res)
            bound = 3 * ck_bytes / 2**20 + 32
            if res["job_peak_growth_mb"] > bound:
                fail("the job grew the peak RSS by %.1f MB (bound %.1f)" % (res["job_peak_growth_mb"], bound))
        run_attack(srv, [Uploads()], 4, checks, rss_bound=None)  # the job's own bound
    finally:
        srv.stop()


ATTACKS = {
    "slowloris": attack_slowloris,
    "idle": attack_idle,
    "headers": attack_headers,
    "body_slow": attack_body_slow,
    "body_fast": attack_body_fast,
    "pipeline": attack_pipeline,
    "upload_unauth": attack_upload_unauth,
    "body_deadline": attack_body_deadline,
    "mem_body": attack_mem_body,
    "mem_json": attack_mem_json,
    "mem_upload": attack_mem_upload,
}


def main(argv):
    names = argv[1:] or ["all"]
    if names == ["all"]:
        names = list(ATTACKS)
    if any(x not in ATTACKS for x in names):
        print("usage: hostile.py ATTACK... (%s, or all)" % ", ".join(ATTACKS), file=sys.stderr)
        return 2
    if not os.access(BCT, os.X_OK):
        print("skipped: no bct binary at %s (set BCT)" % BCT)
        return 77
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        socket.create_connection  # loopback aliases 127.0.0.2.. need Linux
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.close()
    except OSError:
        print("skipped: cannot bind 127.0.0.2 (loopback aliases)")
        return 77
    for name in names:
        t0 = time.monotonic()
        print("== %s (scale %g)" % (name, SCALE), flush=True)
        ATTACKS[name]()
        print("== %s: ok in %.1f s" % (name, time.monotonic() - t0), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except AssertionError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
