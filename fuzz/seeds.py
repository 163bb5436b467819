#!/usr/bin/env python3
"""Seed corpora for the fuzz targets.

- corpus/pipeline: the golden fixtures' input frames (lb/pipeline/tests/fixtures/golden.txt and
  icmp_errors.txt),
  one file per case, behind the target's first byte (rx port 0 = client, 1 = ic0, headroom
  128). The fuzz topology shares the golden one's client MAC and the web alias, so the seeds
  start past classify's L2 and L3 checks.
- corpus/advert: a few member adverts and a goodbye in the format of docs/member-protocol.md,
  with a zero tag (the fuzz build does not check it).

    python3 fuzz/seeds.py            # writes fuzz/corpus/{pipeline,advert}
    python3 fuzz/seeds.py DIR        # writes DIR/{pipeline,advert}
"""
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "lb", "pipeline", "tests", "fixtures")
GOLDEN = os.path.join(FIXTURES, "golden.txt")
# ICMP errors in alias context (CA7): errors quoting web's flows, and the drops.
ICMP_ERRORS = os.path.join(FIXTURES, "icmp_errors.txt")
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


def pipeline_seeds(dest):
    os.makedirs(dest, exist_ok=True)
    name, port, frame, n = None, 0, bytearray(), 0
    lines = [("golden_", l) for l in open(GOLDEN)] + [("icmp_", l) for l in open(ICMP_ERRORS)]
    for prefix, raw in lines:
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
            with open(os.path.join(dest, prefix + safe), "wb") as f:
                f.write(bytes([port]) + frame)
            n += 1
    return n


def advert(kind, node, boot_id, seq, aliases, ports):
    """kind 1 advert, 2 goodbye; aliases: (a, b, c, d, joined, selw, selp); ports: (proto, port)."""
    b = bytearray(b"CLUA") + bytes([1, kind]) + struct.pack(">H", 0)
    b += node.encode().ljust(64, b"\0")
    b += struct.pack(">QQIHH", boot_id, seq, 1000, len(aliases), len(ports))
    for a0, a1, a2, a3, joined, selw, selp in aliases:
        b += bytes([a0, a1, a2, a3, 1 if joined else 0, 0, 0, 0]) + struct.pack(">II", selw, selp)
    for proto, port in ports:
        b += bytes([proto, 0]) + struct.pack(">H", port)
    return bytes(b + bytes(32))


def advert_seeds(dest):
    os.makedirs(dest, exist_ok=True)
    seeds = {
        "m1_web80": advert(1, "m1", 1, 1, [(198, 51, 100, 100, True, 3, 1)], [(6, 80)]),
        "m2_two_aliases": advert(
            1, "m2", 7, 42,
            [(198, 51, 100, 100, True, 1, 1), (198, 51, 100, 101, False, 1, 2)],
            [(6, 80), (17, 53), (6, 22)],
        ),
        "m1_goodbye": advert(2, "m1", 1, 2, [], []),
        "unknown_node": advert(1, "m9", 1, 1, [], [(6, 80)]),
    }
    for name, data in seeds.items():
        with open(os.path.join(dest, name), "wb") as f:
            f.write(data)
    return len(seeds)


def main():
    dest = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    n = pipeline_seeds(os.path.join(dest, "pipeline"))
    m = advert_seeds(os.path.join(dest, "advert"))
    print(f"{n} pipeline and {m} advert seeds in {dest}")


if __name__ == "__main__":
    main()
