"""Health of static members (issue 10): members without the agent are probed by the router
(ARP on the interconnect; a TCP SYN probe to a port, like keepalived's TCP_CHECK) and taken out
of selection after `health_fails` failed probes in a row, back after `health_rises` good ones.
Real kernel clients and servers; aliasd on AF_XDP (AF_PACKET fallback).

Seed ids: CA3 (a member that is down gets no new traffic; the alias stays available while one
member is up), CA7 (in_multi: new TCP connections spread over the members that are up).

m1 and m3 are probed by ARP (the default for a member without `mac`), m2 by `tcp:80`; every
probe 100 ms, down after 3 failures, up after 2 successes. The measured detection times are
printed (pytest -s) and written to lab-out/PREFIX/health-detection.txt.
"""

import subprocess
import time

import pytest

import lab as labmod

WEB = "198.51.100.100"
LAB = dict(members=3, vxlan_members=0, aliases=[WEB], tcp_ports=(80,), udp_ports=())
INTERVAL_MS, FAILS, RISES = 100, 3, 2
# Detection takes FAILS to FAILS + 1 probe intervals after the member stops answering;
# the bound leaves room for the control loop and cluamgr's polling on a loaded CI machine.
DETECT_BOUND_S = 2.5


def wait_for(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def health(lab):
    """{member: (state, health text)} from the members table of `cluamgr -s`, e.g.
    {"m1": ("up", "up (arp), 0 fails")}."""
    out = lab.cluamgr("-s").stdout
    block = out.split("\nmembers ", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in block.splitlines()[2:]:
        f = line.split()
        if len(f) >= 2:
            rows[f[0]] = (f[1], line.split("health: ", 1)[1] if "health: " in line else "")
    return rows


def is_down(lab, name, check):
    row = health(lab).get(name)
    return row is not None and row[0] == "down" and row[1].startswith(f"down ({check})")


def is_up(lab, name, check):
    row = health(lab).get(name)
    return row is not None and row[0] == "up" and row[1].startswith(f"up ({check})")


@pytest.fixture(scope="module")
def aliasd(aliasd_bin, lab):
    aliases = [{"name": "web", "address": WEB, "members": ["m1", "m2", "m3"]}]
    services = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]}]
    cfg = lab.aliasd_config_dict(aliases, services, default_alias="web", member_macs=False)
    for m in cfg["member"]:
        m.update({"health_interval_ms": INTERVAL_MS, "health_fails": FAILS,
                  "health_rises": RISES})
        if m["name"] == "m2":
            m["health"] = "tcp:80"
    path = lab.out_dir / "aliasd-health.toml"
    path.write_text(labmod.toml_dumps(cfg))
    d = lab.start_aliasd(path, aliasd_bin, timeout=30)
    try:
        assert wait_for(lambda: all(is_up(lab, n, c) for n, c in
                                    (("m1", "arp"), ("m2", "tcp:80"), ("m3", "arp"))), 10), \
            lab.cluamgr("-s").stdout
        yield d
    finally:
        if d.alive():
            d.stop(timeout=10)
        (lab.out_dir / "aliasd-health.stderr").write_text(d.stderr)


def record(lab, what: str, seconds: float):
    line = f"{what}: {seconds * 1000:.0f} ms (interval {INTERVAL_MS} ms, fails {FAILS})"
    print(line)
    with open(lab.out_dir / "health-detection.txt", "a") as f:
        f.write(line + "\n")


def spread(lab, count=30):
    r = lab.client("tcp", f"{WEB}:80", count, timeout=1)
    assert r["ok"] == count, r
    return r["by_member"]


def all_three(lab) -> bool:
    """30 connections in the round robin of m1-m3 (selw 1 each): 10 each with one worker,
    within a turn per worker of it with several (docs/workers.md)."""
    got = spread(lab)
    assert labmod.round_robin_ok(got, {"m1": 1, "m2": 1, "m3": 1}, lab.workers), got
    return True


def test_arp_probe_link_down_takes_a_static_member_out_and_link_up_brings_it_back(lab, aliasd):
    assert all_three(lab)
    m1 = lab.member("m1")
    t0 = time.monotonic()
    lab.ip(m1.ns, "link", "set", "dev", m1.ifname, "down")
    try:
        assert wait_for(lambda: is_down(lab, "m1", "arp"), 10), lab.cluamgr("-s").stdout
        detected = time.monotonic() - t0
        record(lab, "arp: link down -> m1 out of selection", detected)
        assert detected < DETECT_BOUND_S, detected
        assert aliasd.wait_for(r"member m1 failed 3 arp probes in a row", 2), aliasd.stderr
        # After the detection time no new connection reaches m1: every one completes, on the
        # other members (CA3).
        got = spread(lab)
        assert "m1" not in got and sum(got.values()) == 30, got
        row = health(lab)["m1"]
        assert int(row[1].split(", ")[1].split()[0]) >= FAILS, row
    finally:
        lab.ip(m1.ns, "link", "set", "dev", m1.ifname, "up")
        # The kernel dropped the default route with the link; the member answers clients
        # directly (CA12) through it.
        lab.ip(m1.ns, "route", "replace", "default", "via", labmod.GW_IC0_IP)
    t1 = time.monotonic()
    assert wait_for(lambda: is_up(lab, "m1", "arp"), 10), lab.cluamgr("-s").stdout
    record(lab, "arp: link up -> m1 back in selection", time.monotonic() - t1)
    assert all_three(lab)
    probes = lab.metric_sum("clua_member_health_probes_total", labels='member="m1"')
    timeouts = lab.metric_sum("clua_member_health_probes_total",
                              labels='member="m1",result="timeout"')
    assert probes and timeouts is not None and timeouts >= FAILS, (probes, timeouts)
    assert lab.metric_sum("clua_member_health_up", labels='member="m1"') == 1


def test_tcp_probe_follows_the_member_server(lab, aliasd):
    m2 = lab.member("m2")
    refused_before = lab.metric_sum("clua_member_health_probes_total",
                                    labels='member="m2",result="refused"') or 0
    t0 = time.monotonic()
    lab.stop(m2.server)
    try:
        # The host still answers, with RST: the TCP probe fails at once, ARP would not.
        assert wait_for(lambda: is_down(lab, "m2", "tcp:80"), 10), lab.cluamgr("-s").stdout
        record(lab, "tcp:80: server stopped -> m2 out of selection", time.monotonic() - t0)
        assert aliasd.wait_for(r"member m2 failed 3 tcp:80 probes in a row \(last: refused\)",
                               2), aliasd.stderr
        got = spread(lab)
        assert "m2" not in got and sum(got.values()) == 30, got
        refused = lab.metric_sum("clua_member_health_probes_total",
                                 labels='member="m2",result="refused"')
        assert refused is not None and refused - refused_before >= FAILS, refused
        assert lab.metric_sum("clua_member_health_up", labels='member="m2"') == 0
    finally:
        lab.start_member_servers()
    t1 = time.monotonic()
    assert wait_for(lambda: is_up(lab, "m2", "tcp:80"), 10), lab.cluamgr("-s").stdout
    record(lab, "tcp:80: server started -> m2 back in selection", time.monotonic() - t1)
    assert aliasd.wait_for(r"member m2 passed 2 tcp:80 probes in a row", 2), aliasd.stderr
    assert all_three(lab)
    # Every SYN-ACK was answered with a RST: the member keeps no half-open probe sockets.
    r = lab.run(m2.ns, "ss", "-Htn", "state", "syn-recv", check=False)
    assert r.stdout.strip() == "", r.stdout
