"""Issue 11: `cluamgr -s --json` against live traffic, and the configuration reload (SIGHUP,
`cluamgr --reload`): all or nothing, established connections kept, the reply says what changed.

Seed ids: CA7/CA8 (selw shares over the members that are up), CA10 (cluamgr -s), SC1 (weights
changeable at any time), SC4-like (established connections keep their member across a change).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lab as labmod

ROOT = Path(__file__).resolve().parents[2]
WEB = "198.51.100.100"
LAB = dict(members=3, vxlan_members=0, aliases=[WEB], tcp_ports=(80,), udp_ports=(),
           hold_ports=(8080,))
SERVICES = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]},
            {"name": "hold", "port": 8080, "proto": "tcp", "options": ["in_multi"]}]


def config(lab, members, weights, tables=None) -> str:
    """aliasd.toml text with [[member]] entries `members` and alias web's selw `weights`."""
    aliases = [{"name": "web", "address": WEB,
                "members": [{"name": m, "selw": w} for m, w in weights.items()]}]
    cfg = lab.aliasd_config_dict(aliases, SERVICES, metrics=None, default_alias="web",
                                 sync=False, tables=tables)
    cfg["member"] = [e for e in cfg["member"] if e["name"] in members]
    return labmod.toml_dumps(cfg)


@pytest.fixture(scope="module")
def env(aliasd_bin, lab):
    path = lab.out_dir / "aliasd-reload.toml"
    path.write_text(config(lab, ["m1", "m2"], {"m1": 1, "m2": 1}))
    d = lab.start_aliasd(path, aliasd_bin, timeout=30)
    yield lab, d, path
    if d.alive():
        d.stop(timeout=10)
    (lab.out_dir / "aliasd-reload.stderr").write_text(d.stderr)


def status(lab, *args) -> dict:
    r = lab.cluamgr("-s", *args, "--json")
    return json.loads(r.stdout)


def alias(st, name="web") -> dict:
    return next(a for a in st["aliases"] if a["name"] == name)


def test_show_json_counts_follow_live_traffic(env):
    lab, d, _ = env
    before = status(lab)
    assert before["schema"] == 1 and before["scope"] == "all", before
    assert [m["name"] for m in before["members"]] == ["m1", "m2"], before["members"]
    assert {m["name"]: (m["selw"], m["state"]) for m in alias(before)["members"]} == {
        "m1": (1, "up"), "m2": (1, "up")}
    r = lab.client("tcp", f"{WEB}:80", 20)
    assert r["ok"] == 20, r
    after = status(lab)
    a0, a1 = alias(before), alias(after)
    # Exact: one new flow per connection, counted under the alias and under its member.
    assert a1["flows"] - a0["flows"] == 20, (a0, a1)
    flows = {m["name"]: m["flows"] for m in after["members"]}
    flows0 = {m["name"]: m["flows"] for m in before["members"]}
    assert sum(flows.values()) - sum(flows0.values()) == 20, (flows0, flows)
    # selw 1:1: 10 each with one worker; within a turn per worker with several (docs/workers.md).
    new = {m: flows[m] - flows0[m] for m in flows}
    assert labmod.round_robin_ok(new, {"m1": 1, "m2": 1}, lab.workers), (flows0, flows)
    # Every client packet of a connection (SYN, data, FINs, ACKs) is forwarded: >= 3 each.
    assert a1["packets"] - a0["packets"] >= 60, (a0, a1)
    pk = {m["name"]: m["packets"] for m in after["members"]}
    pk0 = {m["name"]: m["packets"] for m in before["members"]}
    assert a1["packets"] - a0["packets"] == sum(pk.values()) - sum(pk0.values()), (a0, a1)
    client = next(p for p in after["ports"] if p["role"] == "client")
    assert client["link_up"] is True and client["rx_packets"] >= a1["packets"], client
    assert after["rates"]["since"] == "previous_show" and after["rates"]["interval_ms"] > 0
    ws = after["workers"]
    assert len(ws) == lab.workers and sum(w["rx_pps"] for w in ws) > 0, ws
    assert all(set(w["drops"]) >= {"not_alias", "no_member"} for w in ws), ws
    # Occupancy: the 20 connections' entries are closing (tcp_closing 10 s), still live, in
    # the tables of whichever workers handled them (each worker sweeps its own).
    deadline = time.time() + 5
    while True:
        st = status(lab)
        ws2 = st["workers"]
        swept = all(b["conn_sweeps"] < a["conn_sweeps"] for b, a in zip(ws, ws2))
        if swept and sum(w["conn_live"] for w in ws2) >= 20:
            break
        assert time.time() < deadline, ws2
        time.sleep(0.1)
    for w in ws2:
        assert w["conn_live"] <= w["conn_capacity"] and w["conn_capacity"] >= 1024, w
    one = status(lab, "web")
    assert one["scope"] == "web" and [a["name"] for a in one["aliases"]] == ["web"], one
    assert one["workers"] == [] and one["rates"] is None, one
    # The text form has the same sections.
    text = lab.cluamgr("-s").stdout
    assert "alias traffic:" in text and "\nports " in text and "\nworkers " in text, text


def test_sighup_applies_a_new_weight_and_member_and_keeps_established_connections(env):
    lab, d, path = env
    holder = lab.popen(lab.cli, sys.executable, str(ROOT / "tests/clients/holder.py"),
                       "--to", f"{WEB}:8080", "--count", "4", stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(holder.stdout.readline())
        assert first["errors"] == [] and None not in first["members"], first
        generation = status(lab)["cluster"]["generation"]
        path.write_text(config(lab, ["m1", "m2", "m3"], {"m1": 2, "m2": 1, "m3": 1}))
        os.kill(d.proc.pid, signal.SIGHUP)
        assert d.wait_for(r"SIGHUP: reload: \d+ change", 10), d.stderr[-2000:]
        line = next(l for l in reversed(d.lines) if "SIGHUP: reload" in l)
        assert "member m3: added" in line and "m1 selw=1,selp=1 -> selw=2,selp=1" in line, line
        st = status(lab)
        assert st["cluster"]["generation"] > generation, st["cluster"]
        assert {m["name"]: m["selw"] for m in alias(st)["members"]} == {"m1": 2, "m2": 1, "m3": 1}
        m3 = next(m for m in st["members"] if m["name"] == "m3")
        assert m3["state"] == "up", m3
        # New connections follow the new weights (CA8, SC1): 50/25/25.
        r = lab.client("tcp", f"{WEB}:80", 80)
        assert r["ok"] == 80, r
        by = r["by_member"]
        assert abs(by.get("m1", 0) - 40) <= 8 and by.get("m3", 0) >= 12, by
        # The connections made before the reload still reach their members.
        holder.stdin.write("ping\n")
        holder.stdin.flush()
        again = json.loads(holder.stdout.readline())
        assert again["errors"] == [] and again["members"] == first["members"], (first, again)
    finally:
        lab.stop(holder)


def test_a_bad_file_or_a_restart_only_change_is_refused_and_changes_nothing(env):
    lab, d, path = env
    good = path.read_text()
    before = status(lab)
    try:
        # A type error on a known line: the reply names the file and the line.
        bad = good.replace('selw = 2', 'selw = "two"', 1)
        assert bad != good
        lineno = next(i + 1 for i, l in enumerate(bad.splitlines()) if '"two"' in l)
        path.write_text(bad)
        r = lab.cluamgr("--reload", check=False)
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert "nothing changed" in r.stderr and str(path) in r.stderr, r.stderr
        assert f"line {lineno}" in r.stderr, r.stderr
        # A restart-only key (the connection table's size) is refused by name.
        path.write_text(config(lab, ["m1", "m2"], {"m1": 1, "m2": 1},
                               tables={"connections": 2048}))
        r = lab.cluamgr("--reload", check=False)
        assert r.returncode == 1 and "[tables]" in r.stderr and "restart" in r.stderr, r.stderr
        after = status(lab)
        assert after["cluster"]["generation"] == before["cluster"]["generation"]
        assert alias(after)["members"] == alias(before)["members"]
        assert [m["name"] for m in after["members"]] == [m["name"] for m in before["members"]]
    finally:
        path.write_text(good)
    r = lab.cluamgr("--reload")
    assert "no change" in r.stdout, r.stdout
    assert d.alive()
