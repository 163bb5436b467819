#!/usr/bin/env python3
"""Long-lived TCP connections that keep talking, for the clua lab (stdlib only; issue 9).

    longlived.py --to 198.51.100.100:8080 --count 20 [--interval 0.1] [--timeout 20]
                 [--connect-timeout 3] [--max-seconds 120]

Opens ``count`` connections to a member server's hold port (tests/servers/member_server.py
``--hold-tcp``), sends one request on each and notes the member that answered, then prints

    {"event": "ready", "members": ["m1", ...], "errors": [...], "t": T}

From then on every connection, in its own thread, sends a short line every ``--interval``
seconds and waits at most ``--timeout`` for the reply, which must name the same member. A reset,
an EOF, a timeout or another member's name ends that connection as failed (the first error is
kept). A line ``status`` on stdin prints

    {"event": "status", "t": T, "last": [time of each connection's last reply or null],
     "errors": [each connection's error or null]}

The run ends at a line ``stop`` on stdin, at EOF of stdin, or after ``--max-seconds``; then it
prints

    {"event": "done", "t": T, "conns": [{"member", "replies", "error", "first", "last",
     "max_gap", "gap_from"}, ...], "outage": {"longest_silence", "silence_from"}}

``max_gap``: the longest time between two replies on the connection (from the start of the
talking phase); ``gap_from``: when it began. ``longest_silence``: the longest time during which
no connection got any reply (the outage as every connection saw it). Times are time.monotonic()
(CLOCK_MONOTONIC is system-wide, so they compare with the test's own clock).
"""

import argparse
import json
import socket
import sys
import threading
import time


def member_of(text: str):
    for tok in text.split():
        if tok.startswith("member="):
            return tok[len("member="):]
    return None


class Conn:
    def __init__(self, i: int):
        self.i = i
        self.sock = None
        self.file = None
        self.member = None
        self.replies = 0
        self.error = None
        self.times: list = []  # reply times (bounded by max_seconds / interval)

    def fail(self, why: str):
        if self.error is None:
            self.error = why

    def summary(self, t0: float) -> dict:
        gaps = [(b - a, a) for a, b in zip([t0] + self.times, self.times)]
        gap, frm = max(gaps) if gaps else (None, None)
        return {"i": self.i, "member": self.member, "replies": self.replies, "error": self.error,
                "first": self.times[0] if self.times else None,
                "last": self.times[-1] if self.times else None, "max_gap": gap, "gap_from": frm}


def open_conn(c: Conn, host: str, port: int, timeout: float):
    try:
        c.sock = socket.create_connection((host, port), timeout=timeout)
        c.sock.sendall(f"hello {c.i}\n".encode())
        c.file = c.sock.makefile("rb")
        reply = b""
        while b"member=" not in reply:
            line = c.file.readline(4096)
            if not line:
                raise ConnectionError("closed before the first reply")
            reply += line
        c.member = member_of(reply.decode(errors="replace"))
    except OSError as e:
        c.fail(f"connect: {type(e).__name__}: {e}")


def talk(c: Conn, interval: float, timeout: float, stop: threading.Event):
    seq = 0
    c.sock.settimeout(timeout)
    nxt = time.monotonic()
    while not stop.is_set() and c.error is None:
        seq += 1
        try:
            c.sock.sendall(f"ping {c.i} {seq}\n".encode())
            line = c.file.readline(4096)
        except socket.timeout:
            c.fail(f"timeout: no reply to ping {seq} within {timeout}s")
            break
        except OSError as e:
            c.fail(f"ping {seq}: {type(e).__name__}: {e}")
            break
        if not line:
            c.fail(f"ping {seq}: closed by peer")
            break
        got = member_of(line.decode(errors="replace"))
        if got != c.member:
            c.fail(f"ping {seq}: answered by {got}, not {c.member}")
            break
        c.replies += 1
        c.times.append(time.monotonic())
        nxt += interval
        delay = nxt - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            nxt = time.monotonic()


def longest_silence(conns, t0: float, t_end: float):
    times = sorted(t for c in conns for t in c.times)
    best, frm, prev = 0.0, t0, t0
    for t in times + [t_end]:
        if t - prev > best:
            best, frm = t - prev, prev
        prev = t
    return best, frm


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--to", required=True)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--connect-timeout", type=float, default=3.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    a = ap.parse_args()
    host, port = a.to.rsplit(":", 1)
    conns = [Conn(i) for i in range(a.count)]
    for c in conns:  # one after the other: the schedule's order, as a client would
        open_conn(c, host, int(port), a.connect_timeout)
    print(json.dumps({"event": "ready", "members": [c.member for c in conns],
                      "errors": [c.error for c in conns if c.error], "t": time.monotonic()}),
          flush=True)
    stop = threading.Event()
    t0 = time.monotonic()
    threads = [threading.Thread(target=talk, args=(c, a.interval, a.timeout, stop), daemon=True)
               for c in conns if c.error is None]
    for t in threads:
        t.start()

    def watch_stdin():
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "stop":
                break
            if cmd == "status":
                print(json.dumps({"event": "status", "t": time.monotonic(),
                                  "last": [c.times[-1] if c.times else None for c in conns],
                                  "errors": [c.error for c in conns]}), flush=True)
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait(a.max_seconds)
    stop.set()
    t_end = time.monotonic()
    for t in threads:
        t.join(a.timeout + 2)
    silence, frm = longest_silence(conns, t0, t_end)
    print(json.dumps({"event": "done", "t": t_end, "t0": t0,
                      "conns": [c.summary(t0) for c in conns],
                      "outage": {"longest_silence": silence, "silence_from": frm}}), flush=True)
    for c in conns:
        if c.sock is not None:
            c.sock.close()


if __name__ == "__main__":
    main()
