#!/usr/bin/env python3
"""Writes the golden fixtures' input frames (lb/pipeline/tests/fixtures/golden.txt) as seeds for
the `pipeline` fuzz target: one file per case, the frame behind the target's first byte (rx port
0 = client, 1 = ic0, headroom 128). The fuzz topology shares the golden one's client MAC and the
web alias, so the seeds start past classify's L2 and L3 checks.

    python3 fuzz/golden_seeds.py fuzz/corpus/pipeline
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "lb", "pipeline", "tests", "fixtures", "golden.txt")
PORTS = {"client": 0, "ic0": 1, "ic1": 2}


def hexbytes(text):
    out = bytearray()
    for tok in text.split():
        if "*" in tok:
            n, b = tok.split("*")
            out += bytes([int(b, 16)]) * int(n)
        else:
            out += bytes.fromhex(tok)
    return out


def main():
    dest = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "pipeline")
    os.makedirs(dest, exist_ok=True)
    name, port, frame, n = None, 0, bytearray(), 0
    for raw in open(GOLDEN):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        word, _, rest = line.partition(" ")
        if word == "case":
            name, port, frame = rest.strip(), 0, bytearray()
        elif word == "port":
            port = PORTS.get(rest.strip(), 0)
        elif word == "in":
            frame += hexbytes(rest)
        elif word == "end" and name:
            safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
            with open(os.path.join(dest, "golden_" + safe), "wb") as f:
                f.write(bytes([port]) + frame)
            n += 1
    print(f"{n} seeds in {dest}")


if __name__ == "__main__":
    main()
