#!/usr/bin/env python3
"""AF_XDP socket drops of aliasd under 100 KB HTTP downloads through the alias (issue 11).

    sudo CLUA_ALIASD=target/debug/aliasd /usr/bin/python3 tests/tools/download_drops.py \
        --descriptors 1024 --threads 64 --runs 5

Builds one lab (tests/lab.py), starts aliasd with ``dpdk.descriptors`` as given, serves a
100 KB file from every member (python3 -m http.server on 8080), and runs ``--runs`` rounds of
``--seconds`` of downloads from ``--threads`` client threads (the loop of
tests/e2e/test_capture.py). Prints, per round, the downloads and the growth of every non-zero
AF_XDP socket counter (clua_port_xsk_*_total, tx_ring_empty left out: not a loss) and of
clua_port_rx_missed_total / rx_nombuf. Everything it made is removed at the end."""

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import lab as labmod  # noqa: E402
import test_capture as tc  # noqa: E402


def losses(L) -> dict:
    text = L.metrics()
    out = {}
    for m in re.finditer(r'^clua_port_xsk_(\w+)_total\{port="(\w+)",queue="(\d+)"\} (\d+)',
                         text, re.M):
        if m.group(1) != "tx_ring_empty":
            out[f"{m.group(2)}.q{m.group(3)}.{m.group(1)}"] = int(m.group(4))
    for m in re.finditer(r'^clua_port_(rx_missed|rx_nombuf)_total\{port="(\w+)"\} (\d+)',
                         text, re.M):
        out[f"{m.group(2)}.{m.group(1)}"] = int(m.group(3))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--descriptors", type=int, default=None, help="dpdk.descriptors")
    ap.add_argument("--idle-sleep-us", type=int, default=None, help="dpdk.idle_sleep_us")
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    a = ap.parse_args()
    dpdk = {}
    if a.descriptors is not None:
        dpdk["descriptors"] = a.descriptors
    if a.idle_sleep_us is not None:
        # 0 = poll flat out, N = the fixed sleep (the lab's default is idle = "adaptive")
        dpdk["idle"] = "sleep" if a.idle_sleep_us else "poll"
        if a.idle_sleep_us:
            dpdk["idle_sleep_us"] = a.idle_sleep_us
    with labmod.Lab(**tc.LAB) as L:
        cfg = L.write_aliasd_config(tc.ALIASES, tc.SERVICES, metrics=tc.METRICS,
                                    default_alias="web", extra={"dpdk": dpdk})
        d = L.start_aliasd(cfg, timeout=30)
        procs = tc.start_download_servers(L)
        total = 0
        try:
            for i in range(a.runs):
                before = losses(L)
                r = L.run(L.cli, sys.executable, "-c", tc.DOWNLOADER,
                          f"http://{tc.WEB}:8080/100k", str(a.seconds), str(a.threads),
                          timeout=60 + a.seconds)
                after = losses(L)
                grown = {k: v - before.get(k, 0) for k, v in after.items()
                         if v - before.get(k, 0)}
                total += sum(grown.values())
                ok, bad = r.stdout.split()
                print(f"run {i + 1}: downloads ok={ok} failed={bad} losses={grown or 0}",
                      flush=True)
        finally:
            for p in procs:
                L.stop(p)
            d.stop()
        print(f"descriptors={a.descriptors or 'default'} threads={a.threads}: "
              f"{total} frames lost in {a.runs} runs")


if __name__ == "__main__":
    main()
