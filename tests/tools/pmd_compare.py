#!/usr/bin/env python3
"""The lab's PMDs end to end, in ONE run (issue 12, docs/lab-pmd.md).

For every PMD of tests/lab.py (af_xdp, af_packet, tap, virtio_user) that this machine can run:
build a lab with that PMD (all of them up at once), serve HTTP from nginx in every member, start
aliasd, and measure HTTP requests/s with wrk (`Connection: close`: every request a new TCP
connection, so a new flow through aliasd) once to the alias and once to the same members
directly (through P-gw, one kernel hop instead of aliasd), for ``--rounds`` rounds that
interleave the PMDs and alternate direct and alias. The ratio alias/direct of the rounds' means
is the figure; since every PMD ran in every round, rows compare too. A PMD this machine cannot
run is a row with the reason (virtio_user needs /dev/vhost-net).

    sudo tests/tools/pmd_compare.py --aliasd target/ci/aliasd            # all four PMDs
    sudo tests/tools/pmd_compare.py --pmds tap,af_xdp --seconds 5 --json out.json

wrk's threads each take one member (CLUA_WRK_TARGETS, read by the Lua setup below) on the
direct side and all take the alias on the other, so the two sides differ only in the path.
Needs root and the Debian packages wrk and nginx-light (scripts/setup). Never a test: a
benchmark on a shared 2-vCPU VM is noisy; compare within one run and report /proc/loadavg."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import lab as labmod  # noqa: E402

WEB = "198.51.100.100"
PORT = 80

# One target per wrk thread, round robin over CLUA_WRK_TARGETS (empty: the URL's host).
WRK_LUA = r"""
local list, n = {}, 0
for a in string.gmatch(os.getenv("CLUA_WRK_TARGETS") or "", "[^,]+") do list[#list + 1] = a end
function setup(thread)
  if #list > 0 then
    n = n + 1
    thread.addr = wrk.lookup(list[(n - 1) % #list + 1], "80")[1]
  end
end
"""

NGINX_CONF = """# written by tests/tools/pmd_compare.py
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_timeout 0;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server {{
        listen {port} backlog=4096;
        location / {{ return 200 "member={name}\\n"; }}
    }}
}}
"""


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def need(tool: str, package: str) -> str:
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.access(f"/usr/sbin/{tool}", os.X_OK)
                                  else None)
    if not path:
        sys.exit(f"pmd_compare: {tool} not installed (Debian package {package}: scripts/setup)")
    return path


def start_nginx(lab: labmod.Lab, exe: str) -> None:
    for m in lab.members:
        d = lab.out_dir / f"nginx-{m.name}"
        (d / "tmp").mkdir(parents=True, exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=d, port=PORT, name=m.name))
        # -e: nginx opens its default error log before it reads the config; keep it in d
        log = open(d / "stderr", "wb")
        lab.popen(m.ns, exe, "-p", f"{d}/", "-c", str(conf), "-e", str(d / "error.log"),
                  stdout=log, stderr=subprocess.STDOUT)
        log.close()
    deadline = time.monotonic() + 10
    for m in lab.members:
        while f":{PORT}" not in lab.run(m.ns, "ss", "-Hltn", "sport", "=", f":{PORT}",
                                         check=False).stdout:
            if time.monotonic() > deadline:
                err = (lab.out_dir / f"nginx-{m.name}" / "error.log")
                raise labmod.LabError(f"nginx in {m.name} does not listen: "
                                      f"{err.read_text() if err.exists() else '?'}")
            time.sleep(0.05)


def tune(lab: labmod.Lab) -> None:
    """Every request is a new connection: room for them (ports, TIME_WAIT reuse, backlogs)."""
    lab.sysctl(lab.cli, "net.ipv4.ip_local_port_range=1024 65000", "net.ipv4.tcp_tw_reuse=1",
               check=False)
    for m in lab.members:
        lab.sysctl(m.ns, "net.core.somaxconn=4096", "net.ipv4.tcp_max_syn_backlog=4096",
                   "net.ipv4.tcp_tw_reuse=1", check=False)


def wrk(lab: labmod.Lab, exe: str, script: Path, targets: list[str], seconds: float,
        threads: int, connections: int) -> dict:
    env = dict(os.environ, CLUA_WRK_TARGETS=",".join(targets))
    cmd = ["ip", "netns", "exec", lab.cli, exe, "-t", str(threads), "-c", str(connections),
           "-d", f"{int(seconds)}s", "--timeout", "2s", "-H", "Connection: close",
           "-s", str(script), f"http://{targets[0]}:{PORT}/"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, env=env)
    out = r.stdout + r.stderr
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if r.returncode != 0 or not m:
        raise labmod.LabError(f"wrk failed ({r.returncode}): {out}")
    total = re.search(r"(\d+) requests in", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = (sum(int(x) for x in errs.groups()) if errs else 0) + (
        int(non2xx.group(1)) if non2xx else 0)
    return {"rps": float(m.group(1)), "requests": int(total.group(1)) if total else 0,
            "errors": errors}


class Bench:
    """One PMD's lab, nginx members and aliasd, kept up for the whole run."""

    def __init__(self, kind: str, a):
        self.kind, self.a = kind, a
        self.row: dict = {"pmd": kind}
        self.lab: labmod.Lab | None = None
        self.aliasd = None
        self.runs: dict = {"direct": [], "alias": []}

    @property
    def ok(self) -> bool:
        return "unavailable" not in self.row and "failed" not in self.row

    def up(self):
        why = labmod.pmd_unavailable(self.kind)
        if why:
            self.row["unavailable"] = why
            return
        a = self.a
        self.lab = lab = labmod.Lab(members=a.members, vxlan_members=0, aliases=[WEB],
                                    tcp_ports=(), udp_ports=(), servers=False, pmd=self.kind)
        try:
            lab.up()
            tune(lab)
            start_nginx(lab, a.nginx)
            names = [m.name for m in lab.members]
            cfg = lab.write_aliasd_config(
                [{"name": "web", "address": WEB, "members": names}],
                [{"name": "http", "port": PORT, "proto": "tcp", "options": ["in_multi"]}],
                default_alias="web")
            self.aliasd = lab.start_aliasd(cfg, a.aliasd, timeout=60)
            self.direct_targets = [m.address for m in lab.members]
            self.script = lab.out_dir / "wrk-targets.lua"
            self.script.write_text(WRK_LUA)
            self.threads = max(a.threads, len(self.direct_targets))
            for side in ("direct", "alias"):  # warm-up: ARP, nginx workers, flows
                self.wrk(side, 1)
        except labmod.PmdUnavailable as e:
            self.row["unavailable"] = e.reason
        except Exception as e:  # one PMD failing must not hide the others' figures
            self.row["failed"] = f"{type(e).__name__}: {e}"[:2000]

    def wrk(self, side: str, seconds: int) -> dict:
        targets = self.direct_targets if side == "direct" else [WEB]
        return wrk(self.lab, self.a.wrk, self.script, targets, seconds, self.threads,
                   self.a.connections)

    def measure(self, side: str):
        if not self.ok:
            return
        try:
            r = self.wrk(side, self.a.seconds)
            r["load"] = loadavg()
            self.runs[side].append(r)
        except Exception as e:
            self.row["failed"] = f"{type(e).__name__}: {e}"[:2000]

    def down(self) -> dict:
        row = self.row
        if self.aliasd is not None:
            self.aliasd.stop(timeout=10)
            row["aliasd"] = [l for l in self.aliasd.lines
                             if l.startswith(("stop summary", "new flows"))]
        if self.lab is not None:
            self.lab.down()
        if self.ok and self.runs["direct"] and self.runs["alias"]:
            for side, runs in self.runs.items():
                row[side] = sum(x["rps"] for x in runs) / len(runs)
                row[f"{side}_errors"] = sum(x["errors"] for x in runs)
                row[f"{side}_rounds"] = [round(x["rps"]) for x in runs]
            row["ratio"] = row["alias"] / row["direct"] if row["direct"] else 0.0
            loads = [x["load"] for x in self.runs["direct"] + self.runs["alias"]]
            row["load"] = f"{loads[0]} .. {loads[-1]}"
        return row


def table(rows: list[dict]) -> str:
    out = [f"{'pmd':<12} {'direct req/s':>12} {'alias req/s':>12} {'alias/direct':>12} "
           f"{'errors d/a':>11}  load (first .. last run)"]
    for r in rows:
        if "ratio" in r:
            out.append(f"{r['pmd']:<12} {r['direct']:>12.0f} {r['alias']:>12.0f} "
                       f"{r['ratio']:>11.2f}x {r['direct_errors']:>5}/{r['alias_errors']:<5}  "
                       f"{r['load']}")
        else:
            why = r.get("unavailable") or r.get("failed")
            state = "unavailable" if "unavailable" in r else "FAILED"
            out.append(f"{r['pmd']:<12} {state}: {why}")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pmds", default=",".join(labmod.PMD_KINDS),
                    help="comma-separated PMDs (default: all of lab.PMD_KINDS)")
    ap.add_argument("--seconds", type=int, default=6, help="per wrk run (default 6)")
    ap.add_argument("--rounds", type=int, default=2, help="direct+alias pairs (default 2)")
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (>= members)")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections in all")
    ap.add_argument("--aliasd", default=None, help="aliasd binary (default: lab's, "
                    "$CLUA_ALIASD or target/release/aliasd; use a release or ci build)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("pmd_compare: needs root (network namespaces)")
    if not 1 <= a.rounds <= 10 or not 1 <= a.seconds <= 60 or not 1 <= a.members <= 9:
        sys.exit("pmd_compare: rounds 1..10, seconds 1..60, members 1..9")
    a.aliasd = str(a.aliasd or labmod.aliasd_binary())
    if not os.access(a.aliasd, os.X_OK):
        sys.exit(f"pmd_compare: no aliasd at {a.aliasd} (cargo build --profile ci -p clua-lb)")
    a.wrk = need("wrk", "wrk")
    a.nginx = need("nginx", "nginx-light")
    kinds = [k.strip() for k in a.pmds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in labmod.PMD_KINDS]
    if bad:
        sys.exit(f"pmd_compare: unknown PMD(s) {bad}; one of {labmod.PMD_KINDS}")
    print(f"pmd_compare: aliasd {a.aliasd}; wrk -t {max(a.threads, a.members)} -c "
          f"{a.connections} -d {a.seconds:g}s -H 'Connection: close', {a.rounds} rounds, "
          f"{a.members} nginx members; load {loadavg()}", flush=True)
    benches = [Bench(k, a) for k in kinds]
    try:
        for b in benches:
            b.up()
            print(f"  {b.kind}: " + ("up" if b.ok else json.dumps(b.row)), flush=True)
        # Every PMD's lab is up at once and the rounds interleave them (rotating which goes
        # first, alternating direct and alias), so a change in the machine's load falls on
        # every PMD alike.
        for i in range(a.rounds):
            live = [b for b in benches if b.ok]
            for b in live[i % len(live):] + live[:i % len(live)] if live else []:
                for side in (("direct", "alias") if i % 2 == 0 else ("alias", "direct")):
                    b.measure(side)
            print(f"  round {i + 1}/{a.rounds} done, load {loadavg()}", flush=True)
    finally:
        rows = [b.down() for b in benches]
    print(table(rows))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0 if all("failed" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
