"""Connections that survive (issue 9): long-lived TCP connections, real kernel clients and
member servers in the lab, aliasd on AF_XDP, across a router restart, the loss of the master
router and a SYN flood.

Seed ids: 004 (the failure of the node that receives traffic does not affect connections), CA4
(ARP master takeover by the next router), SC1 (an established connection keeps its member).
Each test keeps 20 connections talking (tests/clients/longlived.py: a line every 100 ms to a
member's hold port, whose every reply names the member); a connection that is reset, times
out (20 s without a reply) or is answered by another member fails. The outage is printed
(run with -s), never asserted beyond generous bounds.

[sync] (docs/aliasd.toml.md): the lab gives every router its own ``flows_file`` in the run's
lab-out directory; a binary from before issue 9 does not know [sync] and runs without it (the
lab leaves the table out and says so).
"""

import signal
import subprocess
import sys
import time

import pytest

import lab as labmod

A = "198.51.100.100"
VIRT, VIRT_MASK, VIRT_NET = "203.0.113.10", "255.255.255.128", "203.0.113.0/25"
LAB = dict(members=3, vxlan_members=0, routers=2, far=True, aliases=[A, VIRT], tcp_ports=(80,),
           udp_ports=(), hold_ports=(8080,))
SERVICES = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]},
            {"name": "hold", "port": 8080, "proto": "tcp", "options": ["in_multi"]}]
ALIASES = [{"name": "a1", "address": A, "members": ["m1", "m2", "m3"]}]
N_CONNS = 20
INTERVAL_MS = 100
DEAD_MISSES = 3
TABLE = 1024
FLOOD = 20 * TABLE


class Routers:
    """The aliasd one test started (router k -> Aliasd); stopped, stderr kept, at the end."""

    def __init__(self, lab, binary):
        self.lab, self.binary, self.running = lab, binary, {}

    def config(self, k, rpri=None, tables=None, sync=None, ecmp=False):
        kw = {}
        if ecmp:  # RIP and BFD to BIRD (test_rip.py), the virtual alias; [router] for [sync]
            kw = dict(node=f"r{k}", rip={"update_secs": 5, "jitter_secs": 1},
                      bfd={"peers": [labmod.GW_CLI_IP], "min_tx_ms": 100, "min_rx_ms": 100,
                           "multiplier": 3})
            aliases = ALIASES + [{"name": "virt", "address": VIRT, "virtual": True,
                                  "mask": VIRT_MASK, "members": ["m1", "m2", "m3"]}]
        elif rpri is not None:  # one of several routers: [router] (and [sync] on by default)
            kw = dict(node=f"r{k}", router_opts={"interval_ms": INTERVAL_MS,
                                                 "dead_misses": DEAD_MISSES, "garp_count": 3,
                                                 "garp_interval_ms": 100})
            aliases = [dict(ALIASES[0], rpri=rpri)]
        else:
            aliases = ALIASES
        return self.lab.write_aliasd_config(aliases, SERVICES, router=k, default_alias="a1",
                                            tables=tables, sync=sync, binary=self.binary, **kw)

    def start(self, k, cfg):
        d = self.lab.start_aliasd(cfg, self.binary, timeout=30, router=k)
        self.running[k] = d
        return d

    def signal(self, k, sig) -> tuple:
        """Signal router k and reap it: (time of the signal, time it was gone)."""
        d = self.running.pop(k)
        t = d.kill(sig)
        try:
            d.proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        gone = time.monotonic()
        d.stop(timeout=5)
        self._save(k, d)
        return t, gone

    def _save(self, k, d):
        with open(self.lab.out_dir / f"aliasd-survive-r{k}.stderr", "a") as f:
            f.write(d.stderr + "\n----\n")

    def stop_all(self):
        for k, d in list(self.running.items()):
            d.stop(timeout=10)
            self._save(k, d)
        self.running.clear()

    def tails(self) -> str:
        return "".join(f"\n--- r{k} stderr tail:\n" + "\n".join(d.lines[-20:])
                       for k, d in self.running.items())


@pytest.fixture
def routers(aliasd_bin, lab):
    lab.forget_flows()
    rs = Routers(lab, aliasd_bin)
    yield rs
    rs.stop_all()


@pytest.fixture
def longlived(lab):
    """Start tests/clients/longlived.py; whatever a test started is stopped after it."""
    started = []

    def start(to=f"{A}:8080", ns=None):
        ll = lab.start_longlived(to, count=N_CONNS, interval=INTERVAL_MS / 1000, timeout=20,
                                 max_seconds=90, ns=ns)
        started.append(ll)
        return ll

    yield start
    for ll in started:
        if ll.result is None:
            lab.stop(ll.proc)


def open_conns(start, rs) -> object:
    ll = start()
    members = ll.ready["members"]
    assert not ll.ready["errors"] and all(members), f"opening: {ll.ready}" + rs.tails()
    spread = {m: members.count(m) for m in sorted(set(members))}
    print(f"{N_CONNS} long-lived connections by member: {spread}")
    assert len(spread) == 3, f"wrr put the connections on {spread}" + rs.tails()
    return ll


def check_survived(ll, after: float, what: str, rs) -> dict:
    """Every connection replied after ``after``, never failed and kept its member."""
    ll.wait_all_replied_after(after, timeout=25)
    res = ll.finish()
    bad = [c for c, m in zip(res["conns"], ll.ready["members"])
           if c["error"] or c["member"] != m or c["last"] is None or c["last"] <= after]
    out = res["outage"]
    gaps = sorted(c["max_gap"] or 0 for c in res["conns"])
    print(f"{what}: longest silence of all {N_CONNS} connections "
          f"{out['longest_silence'] * 1000:.0f} ms; per connection longest gap median "
          f"{gaps[len(gaps) // 2] * 1000:.0f} ms, max {gaps[-1] * 1000:.0f} ms; "
          f"{len(bad)} broken")
    assert not bad, (f"{what}: {len(bad)} of {N_CONNS} long-lived connections broken "
                     f"(reset, timeout, another member, or silent since): "
                     f"{[(c['i'], c['member'], c['error']) for c in bad]}" + rs.tails())
    return res


def test_one_router_sigterm_and_restart_keeps_long_lived_connections(lab, routers, longlived):
    """One router (no [router]), [sync] flows_file in the lab's directory: SIGTERM of aliasd
    with 20 long-lived wrr connections open, then the same config started again. Every
    connection continues on its member (the flows file written at SIGTERM is read at the
    start; a wrr choice is not what the consistent hash of a table miss would give)."""
    cfg = routers.config(1, sync={})
    routers.start(1, cfg)
    ll = open_conns(longlived, routers)
    time.sleep(1.0)
    t_term, t_gone = routers.signal(1, signal.SIGTERM)
    routers.start(1, cfg)
    t_ready = time.monotonic()
    print(f"restart: SIGTERM to exit {(t_gone - t_term) * 1000:.0f} ms, to ready again "
          f"{(t_ready - t_term) * 1000:.0f} ms; flows file "
          f"{'present' if lab.flows_file(1).exists() else 'absent'}")
    check_survived(ll, t_ready, "SIGTERM and restart", routers)


def test_ecmp_behind_bird_sigkill_of_one_router_keeps_long_lived_connections(
        lab, routers, longlived):
    """Two routers behind BIRD (RIP, ECMP, BFD 100 ms x 3; the gateway hashes flows over both
    paths by their ports): 20 long-lived connections from the far client to the virtual alias,
    carried by both routers. SIGKILL of r2: BFD drops its path, its flows arrive at r1, which
    learnt them from r2's hand-off, and every connection continues on its member."""
    lab.sysctl(lab.gw, "net.ipv4.fib_multipath_hash_policy=1")
    lab.start_bird(bfd=True)
    try:
        for k in (1, 2):
            routers.start(k, routers.config(k, ecmp=True))
        hops = sorted([lab.router(1).cli_ip, lab.router(2).cli_ip])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ok = (lab.bird_routes().get(VIRT_NET) == hops
                  and all(lab.bird_bfd_sessions().get(h) == "Up" for h in hops))
            if ok:
                break
            time.sleep(0.1)
        assert ok, (f"BIRD: routes {lab.bird_routes()}, BFD {lab.bird_bfd_sessions()}"
                    + routers.tails())
        before = {k: lab.metric_sum("clua_conn_inserts_total", router=k) or 0 for k in (1, 2)}
        ll = longlived(to=f"{VIRT}:8080", ns=lab.far)
        members = ll.ready["members"]
        assert not ll.ready["errors"] and all(members), f"opening: {ll.ready}" + routers.tails()
        carried = {k: (lab.metric_sum("clua_conn_inserts_total", router=k) or 0) - before[k]
                   for k in (1, 2)}
        print(f"ECMP: new flows per router {carried}; by member "
              f"{ {m: members.count(m) for m in sorted(set(members))} }")
        assert all(v > 0 for v in carried.values()), (
            f"ECMP did not spread the connections over both routers: {carried}" + routers.tails())
        time.sleep(1.5)  # the hand-off is batched: let r1 hear of r2's flows
        t_kill, t_gone = routers.signal(2, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while lab.kernel_routes().get(VIRT_NET) != [lab.router(1).cli_ip]:
            assert time.monotonic() < deadline, (
                f"the gateway still routes {VIRT_NET} via {lab.kernel_routes().get(VIRT_NET)}"
                + routers.tails())
            time.sleep(0.02)
        print(f"ECMP: the gateway's route left r2 {(time.monotonic() - t_kill) * 1000:.0f} ms "
              f"after its SIGKILL")
        check_survived(ll, t_gone + 0.5, "SIGKILL of one ECMP router", routers)
    finally:
        lab.stop_bird()
        lab.sysctl(lab.gw, "net.ipv4.fib_multipath_hash_policy=0")


def test_two_routers_sigkill_of_master_keeps_long_lived_connections(lab, routers, longlived):
    """Two routers (rpri 100 and 10, ARP master takeover as in test_routers.py; [sync] on by
    default with [router]): 20 long-lived connections through the master r1, then SIGKILL of
    r1. r2 takes the alias over and every connection continues on its member (r1 handed its
    flows to r2 while they were established)."""
    lab.run(lab.cli, "ip", "neigh", "flush", "dev", lab.cli_if, check=False)
    routers.start(1, routers.config(1, rpri=100))
    routers.start(2, routers.config(2, rpri=10))
    time.sleep(10 * INTERVAL_MS / 1000)
    r1_mac, r2_mac = lab.router(1).macs["client"], lab.router(2).macs["client"]
    assert lab.arp_answerers(A) == [r1_mac], f"ARP: {lab.arp_answerers(A)}" + routers.tails()
    ll = open_conns(longlived, routers)
    assert lab.client_neigh(A) == r1_mac, "the client does not go through r1"
    time.sleep(1.5)  # the hand-off is batched: let r2 hear of every flow
    t_kill, t_gone = routers.signal(1, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while lab.client_neigh(A) != r2_mac and time.monotonic() < deadline:
        time.sleep(0.05)
    took = time.monotonic() - t_kill
    assert lab.client_neigh(A) == r2_mac, (
        f"the client's ARP entry is {lab.client_neigh(A)} 5 s after r1 died" + routers.tails())
    print(f"takeover: client's ARP entry on r2 {took * 1000:.0f} ms after SIGKILL of r1")
    check_survived(ll, t_gone + 0.5, "SIGKILL of the master", routers)


CONNECT_LOOP = r"""
import json, socket, sys, time
host, port, dur = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + dur
print("go", flush=True)
while time.monotonic() < end:
    t = time.monotonic()
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        r = b""
        while len(r) < 4096:  # the server answers, then closes its side
            b = s.recv(4096)
            if not b:
                break
            r += b
        m = r.split(b"member=", 1)[1].split()[0].decode() if b"member=" in r else None
        res = m or "no-reply"
    except OSError as e:
        res = "error:" + type(e).__name__
    finally:
        s.close()
    print(json.dumps([t, time.monotonic(), res]), flush=True)
    time.sleep(0.02)
"""


def test_syn_flood_of_twenty_tables_keeps_established_connections(lab, routers, longlived):
    """``[tables] connections = 1024``, one router: with 20 long-lived connections open, 20 x
    1024 SYNs from spoofed client-LAN sources (a raw socket in the client namespace, as fast as
    Python sends) to the alias's port 80. Every long-lived connection continues on its member;
    genuine new connections (one every ~20 ms through the flood) and 20 after it all complete.
    The router's counters prove the flood filled the table: evictions of half-open entries
    plus SYNs served without a slot reach half the flood."""
    routers.start(1, routers.config(1, tables={"connections": TABLE}))
    ll = open_conns(longlived, routers)
    names = ("clua_conn_evictions_total", "clua_conn_syn_without_slot_total",
             "clua_conn_inserts_total", "clua_port_rx_missed_total")
    before = {n: lab.metric_sum(n) or 0.0 for n in names}
    loop = lab.popen(lab.cli, sys.executable, "-u", "-c", CONNECT_LOOP, A, "80", "6",
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert lab._readline(loop, time.monotonic() + 10).strip() == "go"
    time.sleep(0.5)
    flood = lab.syn_flood(f"{A}:80", FLOOD)
    out, _ = loop.communicate(timeout=30)
    lab.stop(loop)
    after = {n: lab.metric_sum(n) or 0.0 for n in names}
    delta = {n: after[n] - before[n] for n in names}
    print(f"SYN flood: {flood['sent']} SYNs in {flood['seconds']:.2f} s "
          f"({flood['sent'] / max(flood['seconds'], 1e-6):.0f}/s); router counters {delta}")
    genuine = [labmod.json.loads(l) for l in out.decode().splitlines() if l.startswith("[")]
    during = [g for g in genuine if flood["start"] <= g[0] <= flood["end"]]
    bad = [g for g in genuine if g[2] not in ("m1", "m2", "m3")]
    print(f"genuine connections: {len(genuine)} in all, {len(during)} begun during the flood, "
          f"{len(bad)} failed")
    res = lab.client("tcp", f"{A}:80", 20, timeout=2)
    check_survived(ll, flood["end"] + 0.2, "SYN flood", routers)
    assert during, f"no genuine connection began during the {flood['seconds']:.2f} s flood"
    assert not bad, f"genuine connections failed around the flood: {bad[:10]}" + routers.tails()
    assert res["ok"] == 20, f"after the flood: {res}" + routers.tails()
    filled = delta["clua_conn_evictions_total"] + delta["clua_conn_syn_without_slot_total"]
    assert filled >= FLOOD // 2, (
        f"the flood did not fill the table: evictions + slotless SYNs {filled} < {FLOOD // 2} "
        f"({delta})" + routers.tails())
