"""Member MACs learned by ARP on the interconnect (issue 8): no `mac` in any [[member]], the
router resolves every member by ARP, and follows a member whose MAC changes. Real kernel
clients and servers; aliasd on AF_XDP (AF_PACKET fallback).

Seed ids: CA3 (a member without a known MAC gets no traffic; the others carry the alias),
CA7 (in_multi: new TCP connections spread over the members).
"""

import socket
import subprocess
import time
from pathlib import Path

import lab as labmod

WEB = "198.51.100.100"
LAB = dict(members=3, vxlan_members=0, aliases=[WEB], tcp_ports=(80,), udp_ports=())
NEW_MAC = "02:00:00:00:01:72"


def wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def gratuitous_arp(lab, m, mac: str):
    """Send one gratuitous ARP (RFC 5227 announcement) from member m's namespace, as
    `arping -U` would, with a raw AF_PACKET socket (iputils-arping is not required)."""
    script = (
        "import socket,sys\n"
        "mac=bytes.fromhex(sys.argv[2].replace(':',''))\n"
        "ip=socket.inet_aton(sys.argv[3])\n"
        "f=b'\\xff'*6+mac+b'\\x08\\x06'+bytes([0,1,8,0,6,4,0,1])+mac+ip+b'\\0'*6+ip\n"
        "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n"
        "s.bind((sys.argv[1],0))\n"
        "s.send(f.ljust(60,b'\\0'))\n"
    )
    lab.run(m.ns, "python3", "-c", script, m.ifname, mac, m.address)


def member_rows(cluamgr):
    """{member: (state, mac, mac from)} from the members table of `cluamgr -s`."""
    out = cluamgr("-s")
    block = out.split("\nmembers ", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in block.splitlines()[2:]:
        f = line.split()
        if len(f) >= 4:
            rows[f[0]] = (f[1], f[2], f[3])
    return rows


def test_member_macs_by_arp_and_a_changed_mac_is_followed(aliasd_bin, lab):
    aliases = [{"name": "web", "address": WEB, "members": ["m1", "m2", "m3"]}]
    services = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]}]
    cfg = lab.aliasd_config_dict(aliases, services, metrics=None, default_alias="web",
                                 member_macs=False)
    assert all("mac" not in m for m in cfg["member"])
    path = lab.out_dir / "aliasd-neighbors.toml"
    path.write_text(labmod.toml_dumps(cfg))
    cluamgr_bin = Path(aliasd_bin).parent / "cluamgr"
    sock = cfg["control"]["socket"]

    def cluamgr(*args):
        r = subprocess.run([str(cluamgr_bin), "--socket", sock, *args], capture_output=True,
                           text=True, timeout=20)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    d = lab.start_aliasd(path, aliasd_bin, timeout=30)
    try:
        # Every member answers the router's requests within a second or two.
        want = {m.name: ("up", m.mac, "arp:learned") for m in lab.members}
        assert wait_for(lambda: member_rows(cluamgr) == want, 10), cluamgr("-s")
        for m in lab.members:
            assert d.wait_for(rf"member {m.name} is at {m.mac} \(learned by ARP\)", 2), d.stderr
        r = lab.client("tcp", f"{WEB}:80", 60)
        assert r["ok"] == 60 and labmod.round_robin_ok(
            r["by_member"], {"m1": 1, "m2": 1, "m3": 1}, lab.workers), r

        # m2's MAC changes; its gratuitous ARP tells the router, which follows at once.
        m2 = lab.member("m2")
        lab.ip(m2.ns, "link", "set", "dev", m2.ifname, "address", NEW_MAC)
        gratuitous_arp(lab, m2, NEW_MAC)
        assert d.wait_for(rf"member m2 moved from {m2.mac} to {NEW_MAC}", 5), d.stderr
        assert wait_for(lambda: member_rows(cluamgr)["m2"] == ("up", NEW_MAC, "arp:learned"),
                        5), cluamgr("-s")
        r = lab.client("tcp", f"{WEB}:80", 60)
        assert r["ok"] == 60 and labmod.round_robin_ok(
            r["by_member"], {"m1": 1, "m2": 1, "m3": 1}, lab.workers), r
        assert member_rows(cluamgr)["m1"] == ("up", lab.member("m1").mac, "arp:learned")
    finally:
        if d.alive():
            d.stop(timeout=10)
        (lab.out_dir / "aliasd-neighbors.stderr").write_text(d.stderr)
