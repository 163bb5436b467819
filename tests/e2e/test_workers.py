"""Several workers (issue 12): aliasd with two workers in the lab, real kernel clients and
servers. Worker i owns RX/TX queue i of every port; the lab gives the router's veths two queues
and the PMD two queue pairs (``Lab(workers=2)``). On a veth that PMD is net_af_packet: DPDK
22.11's net_af_xdp takes one queue only there (the veth has no "combined" channels), and
AF_PACKET spreads frames over its queues' sockets by the kernel's flow hash (PACKET_FANOUT_HASH),
the lab's stand-in for a NIC's RSS (docs/workers.md).

What must hold: each TCP connection is handled whole by one worker (one table entry per
connection over both workers, every later packet a hit: CA7, an established connection keeps
its member), connections spread over both workers, ICMP echo and ARP for the alias are answered
whichever worker received them, member adverts from either worker reach the control thread
(the member joins), a reweight reaches both workers (a published snapshot, CA8 selp/selw), and
the metrics totals are the sums of the per-worker figures.
"""

import hmac
import json
import socket
import struct
import sys
import time

import pytest

import lab as labmod

WEB, CLUSTER, SPARE = "198.51.100.100", "198.51.100.101", "198.51.100.103"
LAB = dict(members=3, vxlan_members=0, aliases=[WEB, CLUSTER], tcp_ports=(80,), udp_ports=(),
           hold_ports=(), workers=2)
KEY = b"clua-lab-workers-advert-key-0123456789"
INTERVAL_MS = 200


def advert_bytes(node, boot_id, seq, key, aliases=(), ports=()):
    """A member advert as docs/member-protocol.md lays it out (as in test_members.py)."""
    b = b"CLUA" + bytes([1, 1]) + b"\0\0" + node.encode().ljust(64, b"\0")
    b += struct.pack(">QQIHH", boot_id, seq, INTERVAL_MS, len(aliases), len(ports))
    for addr, joined, selw, selp in aliases:
        b += socket.inet_aton(addr) + bytes([1 if joined else 0, 0, 0, 0]) + \
            struct.pack(">II", selw, selp)
    for proto, port in ports:
        b += bytes([proto, 0]) + struct.pack(">H", port)
    return b + hmac.new(key, b, "sha256").digest()


@pytest.fixture(scope="module")
def env(aliasd_bin, lab):
    assert lab.workers == 2 and lab.pmd == "af_packet", (lab.workers, lab.pmd)
    key_file = lab.key_file("advert.key", KEY + b"\n")
    aliases = [{"name": "web", "address": WEB, "members": ["m1", "m2", "m3"]},
               {"name": "cluster", "address": CLUSTER},
               {"name": "spare", "address": SPARE}]
    services = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]}]
    cfg = lab.aliasd_config_dict(aliases, services, default_alias="cluster", binary=aliasd_bin)
    # A member only the test's adverts speak for (no host behind 192.0.2.19).
    cfg["member"].append({"name": "ghost", "port": "ic0", "address": "192.0.2.19",
                          "mac": "02:00:00:00:01:19", "encap": "l2", "agent": True})
    cfg["adverts"] = {"key_file": str(key_file), "dead_misses": 100}
    assert cfg["dpdk"]["worker_lcores"] == [1, 2], cfg["dpdk"]
    path = lab.out_dir / "aliasd-workers.toml"
    path.write_text(labmod.toml_dumps(cfg))
    lab.forget_flows()
    d = lab.start_aliasd(path, aliasd_bin, timeout=30)
    assert "2 workers" in d.stderr, d.stderr
    yield lab, d
    d.stop(timeout=10)
    (lab.out_dir / "aliasd-workers.stderr").write_text(d.stderr)


def status(lab) -> dict:
    return json.loads(lab.cluamgr("-s", "--json").stdout)


def workers(st) -> list:
    ws = st["workers"]
    assert [w["worker"] for w in ws] == [0, 1], ws
    return ws


def delta(before, after, key, sub=None) -> list:
    """Per worker: after - before of ``key`` (of ``key[sub]``)."""
    get = (lambda w: w[key]) if sub is None else (lambda w: w[key][sub])
    return [get(a) - get(b) for b, a in zip(workers(before), workers(after))]


def by_member(st, alias="web") -> dict:
    a = next(a for a in st["aliases"] if a["name"] == alias)
    return {m["name"]: m for m in a["members"]}


def test_each_connection_is_handled_whole_by_one_worker_and_both_get_some(env):
    lab, d = env
    before = status(lab)
    r = lab.client("tcp", f"{WEB}:80", 40)
    assert r["ok"] == 40, r
    after = status(lab)
    inserts = delta(before, after, "conn_inserts")
    hits = delta(before, after, "conn_hits")
    fwd = delta(before, after, "forwarded_packets")
    # One table entry per connection over both workers: a packet of a connection that reached
    # the other worker would miss its table and be inserted there (a non-SYN miss).
    assert sum(inserts) == 40, (inserts, hits, fwd)
    assert min(inserts) >= 5, f"the fanout hash spreads 40 connections: {inserts}"
    for w in range(2):
        # Every packet after a connection's SYN found its entry on the same worker.
        assert fwd[w] == inserts[w] + hits[w], (w, inserts, hits, fwd)
        assert hits[w] >= 3 * inserts[w], (w, inserts, hits)
    # CA7: every connection was answered by one member; the alias's counters agree.
    assert sum(r["by_member"].values()) == 40 and set(r["by_member"]) <= {"m1", "m2", "m3"}, r


def test_metrics_totals_are_the_sums_of_the_workers(env):
    lab, d = env
    r = lab.client("tcp", f"{WEB}:80", 10)
    assert r["ok"] == 10, r
    # Alias traffic has stopped: the forwarding counters stand still between the two reads.
    st = status(lab)
    text = lab.metrics()
    ws = workers(st)
    for w in ws:
        i = w["worker"]
        assert lab.metric_sum("clua_forwarded_packets_total", labels=f'worker="{i}"') \
            == w["forwarded_packets"], (i, w)
    total = sum(w["conn_inserts"] for w in ws)
    assert lab.metric_sum("clua_conn_inserts_total") == total, text[-2000:]
    assert lab.metric_sum("clua_conn_hits_total") == sum(w["conn_hits"] for w in ws)
    flows = lab.metric_sum("clua_member_flows_total")
    assert flows == total, (flows, total)
    packets = lab.metric_sum("clua_member_packets_total")
    assert packets == sum(w["forwarded_packets"] for w in ws), packets


def test_echo_and_arp_for_the_alias_are_answered_whichever_worker_receives_them(env):
    """The fanout hash of an echo request is over its addresses: 12 client addresses spread
    the pings over both workers. ARP has no addresses the hash reads: every ARP frame goes to
    the same worker (lb/tests/workers.rs covers ARP punted by either)."""
    lab, d = env
    addrs = lab.add_client_addresses(12, first=40)
    before = status(lab)
    for a in addrs:
        r = lab.run("cli", "ping", "-n", "-c", "1", "-W", "2", "-I", a, WEB, check=False)
        assert r.returncode == 0, (a, r.stdout, r.stderr)
    answered = lab.arp_answerers(WEB)
    after = status(lab)
    assert answered == [labmod.router_macs(1)["client"]], answered
    echo = delta(before, after, "punts", "icmp_echo")
    assert sum(echo) == 12 and min(echo) >= 1, echo
    assert sum(delta(before, after, "punts", "arp")) >= 1


def test_member_adverts_from_either_worker_reach_the_control_thread(env):
    """16 adverts of the agent member ghost, each from a socket of its own (a source port of
    its own, so they spread over the workers): all 16 are accepted and ghost joins spare."""
    lab, d = env
    boot = int(time.time() * 1000)
    frames = [advert_bytes("ghost", boot, seq, KEY, aliases=[(SPARE, True, 1, 1)],
                           ports=[(6, 80)]).hex() for seq in range(1, 17)]
    sender = ("import socket,sys,time\n"
              "for h in sys.argv[1:]:\n"
              " s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              " s.sendto(bytes.fromhex(h),('192.0.2.2',9471)); s.close(); time.sleep(0.01)\n")
    accepted = lambda: lab.metric_sum("clua_member_adverts_total", labels='outcome="accepted"') or 0
    before, acc0 = status(lab), accepted()
    lab.run(lab.member("m1").ns, sys.executable, "-c", sender, *frames)
    deadline = time.monotonic() + 5
    while accepted() < acc0 + 16 and time.monotonic() < deadline:
        time.sleep(0.05)
    after = status(lab)
    assert accepted() == acc0 + 16, (acc0, accepted())
    punts = delta(before, after, "punts", "member_advert")
    assert sum(punts) == 16 and min(punts) >= 1, punts
    assert "ghost" in by_member(after, "spare"), by_member(after, "spare")


def test_a_reweight_reaches_both_workers(env):
    """A cluamgr change publishes a snapshot; each worker picks it up between bursts. CA8:
    only the highest selp tier gets traffic, so with m2 alone at selp 2 every new connection
    on either worker goes to m2; then selw 4:1:1 gives m1 about two thirds."""
    lab, d = env
    try:
        out = lab.cluamgr("-a", "alias=web,selp=2", "--member", "m2").stdout
        assert "m2" in out, out
        before = status(lab)
        r = lab.client("tcp", f"{WEB}:80", 30)
        after = status(lab)
        inserts = delta(before, after, "conn_inserts")
        assert r["ok"] == 30 and r["by_member"] == {"m2": 30}, (r, inserts)
        assert sum(inserts) == 30 and min(inserts) >= 1, inserts
        lab.cluamgr("-a", "alias=web,selp=1", "--member", "m2")
        lab.cluamgr("-a", "alias=web,selw=4", "--member", "m1")
        r = lab.client("tcp", f"{WEB}:80", 60)
        assert r["ok"] == 60, r
        # Each worker has its own round-robin cursor: the shares are exact per worker, the
        # total within a turn of the weights (docs/workers.md).
        m1 = r["by_member"].get("m1", 0)
        assert 34 <= m1 <= 46 and r["by_member"].get("m2", 0) >= 5, r
    finally:
        lab.cluamgr("-a", "alias=web,selp=1", "--member", "m2", check=False)
        lab.cluamgr("-a", "alias=web,selw=1", "--member", "m1", check=False)


def test_the_lab_gives_each_worker_a_queue(env):
    """Lab(workers=2): both ends of every router veth have 2 queues, the PMD 2 queue pairs."""
    lab, d = env
    for ifn in (lab.rtr_cli_if, lab.rtr_ic0_if, lab.rtr_ic1_if):
        link = lab.run("rtr", "ip", "-d", "link", "show", ifn).stdout
        assert "numtxqueues 2 numrxqueues 2" in link, link
        peer = lab.run("sw", "ip", "-d", "link", "show", ifn + "s").stdout
        assert "numtxqueues 2 numrxqueues 2" in peer, peer
    assert all(p["devargs"].endswith(f",qpairs=2,framecnt={labmod.AF_PACKET_FRAMES}")
               for p in lab.ports()), lab.ports()


def test_devargs_and_lcores_for_several_workers():
    """No lab needed: the strings tests/lab.py writes (docs/workers.md)."""
    assert labmod.devargs("af_xdp", 0, "x-rc") == "net_af_xdp0,iface=x-rc"
    assert labmod.devargs("af_xdp", 1, "x-r0", 2) == \
        "net_af_xdp1,iface=x-r0,start_queue=0,queue_count=2"
    assert labmod.devargs("af_packet", 2, "x-r1", 2) == \
        f"net_af_packet2,iface=x-r1,qpairs=2,framecnt={labmod.AF_PACKET_FRAMES}"
    assert labmod.devargs("af_packet", 2, "x-r1") == "net_af_packet2,iface=x-r1"
    assert labmod.dpdk_lcores(1, cpus=2) == {"main_lcore": 0, "worker_lcores": [1]}
    assert labmod.dpdk_lcores(2, cpus=4) == {"main_lcore": 0, "worker_lcores": [1, 2]}
    assert labmod.dpdk_lcores(2, cpus=2) == {"main_lcore": 0, "worker_lcores": [1, 2],
                                             "lcores": "0@0,1@1,2@0"}
    assert labmod.multiqueue_pmd("af_xdp", 2) == "af_packet"
    assert labmod.multiqueue_pmd("af_xdp", 1) == "af_xdp"
