#!/usr/bin/env python3
"""Passive-mode FTP clients for the clua lab (stdlib ftplib; issue 9, wildcard_sticky).

    ftp_clients.py --to 198.51.100.104 --sources 198.51.100.20,198.51.100.21 [--timeout 10]

One client per source address, all at once (a thread each): connect from that address, read
the banner (the member's vsftpd says ``member=NAME`` in it: who holds the control connection),
log in anonymously, then over passive data connections NLST and LIST (the root holds a file
``served-by-NAME``), RETR whoami.txt (``member=NAME``) and RETR data.bin (a first line
``member=NAME``, then a fixed pattern; its size and pattern are checked). Prints one JSON line:

    {"clients": [{"src", "control", "data": [member per data connection], "bytes", "error"}]}

Bounded: every socket operation by --timeout.
"""

import argparse
import ftplib
import io
import json
import re
import threading

MEMBER_RE = re.compile(r"member=(\S+)")
SERVED_RE = re.compile(r"served-by-(\S+)")
DATA_SIZE = 256 * 1024  # tests/lab.py writes data.bin with this size


def pattern_ok(data: bytes) -> bool:
    head, _, body = data.partition(b"\n")
    want = bytes((i * 7 + 3) & 0xFF for i in range(len(body)))
    return len(data) == DATA_SIZE and body == want and head.startswith(b"member=")


def one(src: str, host: str, timeout: float) -> dict:
    r = {"src": src, "control": None, "data": [], "bytes": 0, "error": None}
    ftp = ftplib.FTP(timeout=timeout, source_address=(src, 0))
    try:
        welcome = ftp.connect(host, 21)
        m = MEMBER_RE.search(welcome)
        r["control"] = m.group(1) if m else f"? {welcome!r}"
        ftp.login()
        ftp.set_pasv(True)
        names = ftp.nlst()
        served = [SERVED_RE.match(n.rsplit("/", 1)[-1]) for n in names]
        r["data"].append(next((s.group(1) for s in served if s), f"? nlst {names}"))
        lines: list = []
        ftp.retrlines("LIST", lines.append)
        found = [SERVED_RE.search(l) for l in lines]
        r["data"].append(next((s.group(1) for s in found if s), f"? list {lines}"))
        buf = io.BytesIO()
        ftp.retrbinary("RETR whoami.txt", buf.write)
        m = MEMBER_RE.search(buf.getvalue().decode(errors="replace"))
        r["data"].append(m.group(1) if m else f"? whoami {buf.getvalue()[:60]!r}")
        buf = io.BytesIO()
        ftp.retrbinary("RETR data.bin", buf.write)
        data = buf.getvalue()
        r["bytes"] = len(data)
        m = MEMBER_RE.match(data.decode("latin-1"))
        r["data"].append(m.group(1) if m else f"? data.bin {data[:60]!r}")
        if not pattern_ok(data):
            r["error"] = f"data.bin corrupt or short ({len(data)} bytes)"
        ftp.quit()
    except (OSError, EOFError, ftplib.Error) as e:
        r["error"] = f"{type(e).__name__}: {e}"
        ftp.close()
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--to", required=True)
    ap.add_argument("--sources", required=True)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    srcs = a.sources.split(",")
    out: list = [None] * len(srcs)

    def run(i, s):
        out[i] = one(s, a.to, a.timeout)

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(srcs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.timeout * 8)
    print(json.dumps({"clients": [o or {"src": s, "error": "did not finish"}
                                  for o, s in zip(out, srcs)]}), flush=True)


if __name__ == "__main__":
    main()
