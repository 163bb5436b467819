#!/usr/bin/env python3
"""Bounded load client for the clua lab (stdlib only).

    client.py tcp --to 198.51.100.100:80 --count 300 --timeout 2
    client.py udp --to 198.51.100.100:53 --count 60 --timeout 2

tcp: ``count`` sequential NEW connections (connect, send a request, read the reply, close).
udp: ``count`` datagrams, one at a time, each waiting for its reply; a reply whose source is not
     the address it was sent to (direct server return must answer from the alias) is a failure.

Each reply names the member (``member=NAME``).  Prints one JSON line:
    {"ok": N, "failed": N, "by_member": {"m1": N, ...}, "errors": [...], "elapsed": s, ...}
Bounded: each attempt by --timeout, the whole run by min(count*timeout, --max-time).
Exit status 0 when every attempt succeeded, 1 otherwise.
"""

import argparse
import collections
import json
import re
import socket
import sys
import time

MEMBER_RE = re.compile(rb"member=(\S+)")
MAX_ERRORS = 20


def parse_to(s: str):
    host, _, port = s.rpartition(":")
    return host, int(port)


class Summary:
    def __init__(self, mode, to):
        self.mode, self.to = mode, to
        self.ok = 0
        self.failed = 0
        self.by_member = collections.Counter()
        self.errors = collections.Counter()
        self.sequence = []  # member per successful attempt, in order
        self.t0 = time.monotonic()
        self.attempts = 0
        self.stopped_early = False
        self.consecutive_failures = 0

    def good(self, member):
        self.consecutive_failures = 0
        self.ok += 1
        self.by_member[member] += 1
        self.sequence.append(member)

    def bad(self, err):
        self.consecutive_failures += 1
        self.failed += 1
        self.errors[str(err)[:200]] += 1

    def dump(self, seq: bool):
        d = {
            "mode": self.mode, "to": self.to, "attempts": self.attempts, "ok": self.ok,
            "failed": self.failed, "by_member": dict(sorted(self.by_member.items())),
            "errors": [f"{n}x {e}" for e, n in self.errors.most_common(MAX_ERRORS)],
            "elapsed": round(time.monotonic() - self.t0, 3), "stopped_early": self.stopped_early,
        }
        if seq:
            d["sequence"] = self.sequence
        return json.dumps(d)


def tcp_once(addr, timeout, payload, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if src:
            s.bind((src, 0))
        deadline = time.monotonic() + timeout
        s.connect(addr)
        s.sendall(payload)
        buf = b""
        while len(buf) < 65536:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("reply timed out")
            s.settimeout(left)
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        m = MEMBER_RE.search(buf)
        if not m:
            raise ValueError(f"no member in reply {buf[:80]!r}")
        return m.group(1).decode()
    finally:
        s.close()


def give_up(a, summ, i) -> bool:
    """Stop at the overall time cap or after --max-failures consecutive failures; the attempts
    not made count as failures."""
    cap = min(a.count * a.timeout, a.max_time)
    why = None
    if time.monotonic() - summ.t0 > cap:
        why = "overall time cap reached"
    elif a.max_failures and summ.consecutive_failures >= a.max_failures:
        why = f"{a.max_failures} consecutive failures"
    if why is None:
        return False
    summ.stopped_early = True
    for _ in range(a.count - i):
        summ.bad(f"not attempted: {why}")
    return True


def run_tcp(a, summ):
    addr = parse_to(a.to)
    payload = f"GET / HTTP/1.0\r\nHost: {addr[0]}\r\n\r\n".encode()
    for i in range(a.count):
        if give_up(a, summ, i):
            break
        summ.attempts += 1
        try:
            summ.good(tcp_once(addr, a.timeout, payload, a.src))
        except (OSError, ValueError) as e:
            summ.bad(f"{type(e).__name__}: {e}")
        if a.interval:
            time.sleep(a.interval)


def run_udp(a, summ):
    addr = parse_to(a.to)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # unconnected: see every reply source
    if a.src:
        s.bind((a.src, 0))
    try:
        for i in range(a.count):
            if give_up(a, summ, i):
                break
            summ.attempts += 1
            token = f"q{i}-{int(time.time() * 1000) % 100000}"
            s.sendto(f"{token}\n".encode(), addr)
            deadline = time.monotonic() + a.timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    summ.bad("timeout: no reply")
                    break
                s.settimeout(left)
                try:
                    data, src = s.recvfrom(65535)
                except socket.timeout:
                    summ.bad("timeout: no reply")
                    break
                if f"req={token}".encode() not in data:
                    continue  # a late reply to an earlier datagram
                m = MEMBER_RE.search(data)
                if src != addr:
                    summ.bad(f"reply from {src[0]}:{src[1]}, not {addr[0]}:{addr[1]}")
                elif not m:
                    summ.bad(f"no member in reply {data[:80]!r}")
                else:
                    summ.good(m.group(1).decode())
                break
            if a.interval:
                time.sleep(a.interval)
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("mode", choices=["tcp", "udp"])
    ap.add_argument("--to", required=True, help="ADDR:PORT")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=2.0, help="per attempt, seconds")
    ap.add_argument("--max-time", type=float, default=600.0, help="overall cap, seconds")
    ap.add_argument("--max-failures", type=int, default=0,
                    help="give up after this many consecutive failures (0: never)")
    ap.add_argument("--interval", type=float, default=0.0, help="pause between attempts")
    ap.add_argument("--src", help="bind to this source address")
    ap.add_argument("--sequence", action="store_true", help="include the member sequence")
    a = ap.parse_args()
    if a.count < 0 or a.count > 100000:
        ap.error("--count must be 0..100000")
    summ = Summary(a.mode, a.to)
    try:
        (run_tcp if a.mode == "tcp" else run_udp)(a, summ)
    except KeyboardInterrupt:
        summ.stopped_early = True
    print(summ.dump(a.sequence), flush=True)
    sys.exit(0 if summ.failed == 0 and summ.ok == a.count else 1)


if __name__ == "__main__":
    main()
