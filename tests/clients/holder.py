#!/usr/bin/env python3
"""Long-lived TCP connections for the clua lab (stdlib only).

    holder.py --to 198.51.100.100:8080 --count 6 [--timeout 3]

Opens ``count`` connections to a member server's --hold-tcp port, sends one request on each and
prints one JSON line: {"members": ["m1", ...]} (the member that answered each connection).
Then, for every line read from stdin:
    ping   sends a line on every connection and prints {"members": [...], "errors": [...]}:
           the member that answered on each (None and an error if the connection broke)
    quit   closes everything and exits
Bounded: every socket operation by --timeout; it exits when stdin closes.
"""

import argparse
import json
import socket
import sys


def member_of(text: str):
    for tok in text.split():
        if tok.startswith("member="):
            return tok[len("member="):]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args()
    host, port = a.to.rsplit(":", 1)
    conns, files, members, errors = [], [], [], []
    for i in range(a.count):
        try:
            s = socket.create_connection((host, int(port)), timeout=a.timeout)
            s.sendall(f"hello {i}\n".encode())
            f = s.makefile("rb")
            reply = b""
            while b"member=" not in reply:
                line = f.readline(4096)
                if not line:
                    break
                reply += line
            conns.append(s)
            files.append(f)
            members.append(member_of(reply.decode(errors="replace")))
        except OSError as e:
            conns.append(None)
            files.append(None)
            members.append(None)
            errors.append(f"connection {i}: {e}")
    print(json.dumps({"members": members, "errors": errors}), flush=True)
    n = 0
    for cmd in sys.stdin:
        cmd = cmd.strip()
        if cmd == "quit":
            break
        if cmd != "ping":
            continue
        n += 1
        got, errs = [], []
        for i, (s, f) in enumerate(zip(conns, files)):
            if s is None:
                got.append(None)
                errs.append(f"connection {i}: never opened")
                continue
            try:
                s.sendall(f"ping {n}\n".encode())
                line = f.readline(4096).decode(errors="replace")
                got.append(member_of(line))
                if not line:
                    errs.append(f"connection {i}: closed by peer")
            except OSError as e:
                got.append(None)
                errs.append(f"connection {i}: {e}")
        print(json.dumps({"members": got, "errors": errs}), flush=True)
    for s in conns:
        if s is not None:
            s.close()


if __name__ == "__main__":
    main()
