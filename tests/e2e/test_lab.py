"""The lab itself (no aliasd): reachability, direct-server-return plumbing, naming, teardown and
that a DPDK PMD can take the router's veths inside P-rtr."""

import json
import re
import shutil
import subprocess
import time

import pytest

import lab as labmod

LAB = dict(members=2, vxlan_members=1, aliases=["198.51.100.100", "198.51.100.102"])


def test_client_pings_gateway(lab):
    assert lab.ping("cli", labmod.GW_CLI_IP), "client cannot ping its gateway"


def test_member_reaches_client_via_gw(lab):
    for m in lab.members:
        assert lab.ping(m.ns, labmod.CLIENT_IP), f"{m.name} cannot reach the client"
        r = lab.run(m.ns, "ip", "route", "get", labmod.CLIENT_IP)
        gw = labmod.GW_IC0_IP if m.port == "ic0" else labmod.GW_IC1_IP
        assert f"via {gw}" in r.stdout, r.stdout


def test_member_answers_direct_tcp_udp(lab):
    for m in lab.members:
        r = lab.client("tcp", f"{m.address}:80", count=5)
        assert r["ok"] == 5 and r["failed"] == 0, r
        assert r["by_member"] == {m.name: 5}, r
        r = lab.client("udp", f"{m.address}:53", count=5)
        assert r["ok"] == 5 and r["by_member"] == {m.name: 5}, r


def test_member_answers_curl(lab):
    m = lab.members[0]
    r = lab.run("cli", "curl", "-s", "-m", "5", f"http://{m.address}/")
    assert f"member={m.name} port=80 local={m.address}" in r.stdout, r.stdout


def test_udp_reply_comes_from_destination_address(lab):
    """IP_PKTINFO: a datagram sent to an alias on lo is answered from the alias, not from the
    member's interface address (this is what DSR needs; tested from inside the member)."""
    m = lab.members[0]
    r = lab.run(m.ns, "python3", str(labmod.CLIENT), "udp", "--to", "198.51.100.100:53",
                "--count", "3", "--src", m.address, check=False)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["ok"] == 3 and res["failed"] == 0, res


def test_member_config(lab):
    for m in lab.members:
        addrs = lab.run(m.ns, "ip", "-4", "-o", "addr", "show", "dev", "lo").stdout
        for a in lab.aliases:
            assert f"{a}/32" in addrs, addrs
        link = lab.run(m.ns, "ip", "-o", "link", "show", m.ifname).stdout
        assert m.mac in link and "mtu 1600" in link, link
        for key, want in (("net.ipv4.conf.all.arp_ignore", "1"),
                          ("net.ipv4.conf.all.arp_announce", "2"),
                          ("net.ipv4.conf.all.rp_filter", "0")):
            assert lab.run(m.ns, "sysctl", "-n", key).stdout.strip() == want, key
        if m.encap == "vxlan":
            vx = lab.run(m.ns, "ip", "-d", "-o", "link", "show", m.vx_ifname).stdout
            assert "vxlan id 42" in vx and "dstport 4789" in vx and m.inner_mac in vx, vx
    rtr = lab.run("rtr", "ip", "-o", "addr", "show").stdout
    for ifn in (lab.rtr_cli_if, lab.rtr_ic0_if, lab.rtr_ic1_if):
        assert ifn not in rtr, f"router port {ifn} must carry no kernel address:\n{rtr}"
    links = lab.run("rtr", "ip", "-o", "link", "show").stdout
    for ifn, mac in ((lab.rtr_cli_if, "02:00:00:00:00:01"), (lab.rtr_ic0_if, "02:00:00:00:00:02"),
                     (lab.rtr_ic1_if, "02:00:00:00:00:03")):
        assert re.search(rf"{re.escape(ifn)}@\S+: .*link/ether {mac}", links), links


def test_alias_not_reachable_without_aliasd(lab):
    """Nothing answers ARP for the alias until aliasd runs (the members' arp_ignore works):
    otherwise the aliasd tests would pass without aliasd."""
    r = lab.run("cli", "python3", str(labmod.CLIENT), "tcp", "--to", "198.51.100.100:80",
                "--count", "1", "--timeout", "2", check=False)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["ok"] == 0, res


def test_names_prefixed_and_teardown(make_lab):
    before = set(labmod.netns_list())
    lb = make_lab(members=1, vxlan_members=1)
    assert labmod.PREFIX_RE.match(lb.prefix)
    created = set(labmod.netns_list()) - before
    assert created == set(lb.all_namespaces()), created
    assert all(n.startswith(lb.prefix + "-") for n in created)
    for n in lb.link_names():
        assert n.startswith(lb.prefix + "-") and len(n) <= 15, n
    # every link in every lab namespace carries the prefix (lo aside)
    for ns in created:
        out = lb.run(ns, "ip", "-o", "link", "show").stdout
        for name in re.findall(r"^\d+: ([^:@]+)", out, re.M):
            assert name == "lo" or name.startswith(lb.prefix + "-"), (ns, name)
    server = lb.members[0].server
    assert server.poll() is None
    lb.down()
    assert server.poll() is not None, "member server survived teardown"
    after = set(labmod.netns_list())
    assert not (after & created), f"left behind: {after & created}"
    lb.down()  # idempotent


def test_two_labs_do_not_collide(make_lab):
    a = make_lab(members=1, servers=False)
    b = make_lab(members=1, servers=False)
    assert a.prefix != b.prefix
    assert a.ping("cli", labmod.GW_CLI_IP) and b.ping("cli", labmod.GW_CLI_IP)


PMD_UNAVAILABLE = re.compile(r"(No probed ethernet devices|failed to (probe|find)|"
                             r"Cannot find driver|Driver cannot attach|xsk.*not supported|"
                             r"AF_XDP.*not (supported|available))", re.I)


@pytest.mark.parametrize("kind", labmod.PMD_KINDS)
def test_pmd_receives_client_pings(lab, kind):
    """dpdk-testpmd in P-rtr (io forwarding between P-rc and P-r0) sees the client's pings:
    on the veths (af_xdp, af_packet) or on their taps (tap, virtio_user; docs/lab-pmd.md)."""
    if shutil.which("dpdk-testpmd") is None:
        pytest.skip("dpdk-testpmd not installed (Debian package dpdk-dev)")
    target = "198.51.100.99"  # no host: a static neighbour sends the pings to P-rc's MAC
    lab.run("cli", "ip", "neigh", "replace", target, "lladdr", labmod.RTR_MACS["client"],
            "dev", lab.cli_if, "nud", "permanent")

    def traffic():
        lab.run("cli", "ping", "-n", "-c", "5", "-i", "0.2", "-W", "1", target, check=False)

    try:
        rx, out = lab.testpmd(kind, [lab.rtr_cli_if, lab.rtr_ic0_if], traffic)
    except labmod.PmdUnavailable as e:
        pytest.skip(str(e))
    finally:
        lab.run("cli", "ip", "neigh", "del", target, "dev", lab.cli_if, check=False)
    if rx[0] == 0 and PMD_UNAVAILABLE.search(out) and "Port 0:" not in out:
        pytest.skip(f"{kind} PMD unavailable here: {PMD_UNAVAILABLE.search(out).group(0)}")
    assert rx[0] >= 5, f"{kind}: testpmd port 0 RX={rx[0]} (want >= 5)\n{out[-3000:]}"


FAKE_ROUTER = labmod.TESTS / "tools" / "fake_router.py"


def test_dsr_through_stand_in_router(lab):
    """The whole direct-server-return path with a tiny AF_PACKET stand-in for aliasd
    (tests/tools/fake_router.py): ARP for the alias, l2 MAC rewrite to m1/m2, VXLAN to v1;
    members answer from the alias through P-gw.  Proves the lab (checksums, rp_filter,
    arp_ignore, VXLAN device, MTU) before aliasd is involved."""
    import sys
    ic0 = [m for m in lab.members if m.encap == "l2"]
    vx = [m for m in lab.members if m.encap == "vxlan"]
    l2 = (f"198.51.100.100={lab.rtr_ic0_if},{labmod.RTR_MACS['ic0']},"
          + ",".join(m.mac for m in ic0))
    args = ["--client-if", lab.rtr_cli_if, "--client-mac", labmod.RTR_MACS["client"],
            "--l2", l2, "--seconds", "60"]
    if vx:
        v = vx[0]
        args += ["--vxlan", f"198.51.100.102={lab.rtr_ic1_if},{labmod.RTR_MACS['ic1']},"
                 f"{labmod.RTR_IC1_IP},{v.address},{v.mac},{v.inner_mac},{labmod.VXLAN_VNI}"]
    p = lab.popen("rtr", sys.executable, "-u", str(FAKE_ROUTER), *args)
    try:
        assert "fake_router: ready" in lab._readline(p, time.monotonic() + 10)
        res = lab.client("tcp", "198.51.100.100:80", count=40, timeout=2, max_failures=5)
        assert res["ok"] == 40, res
        assert set(res["by_member"]) == {m.name for m in ic0}, res  # hashed over both
        res = lab.client("udp", "198.51.100.100:53", count=10, timeout=2, max_failures=5)
        assert res["ok"] == 10, res  # replies come from the alias
        big = lab.run("cli", "curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}",
                      "--data-binary", "@-", "http://198.51.100.100/", input="x" * 1400,
                      check=False)
        assert big.stdout == "200", big  # a full-size (1500) frame crosses the lab
        if vx:
            res = lab.client("tcp", "198.51.100.102:22", count=10, timeout=2, max_failures=5)
            assert res["ok"] == 10 and res["by_member"] == {vx[0].name: 10}, res
    finally:
        lab.stop(p)
        lab.run("cli", "ip", "neigh", "flush", "dev", lab.cli_if, check=False)


# ------------------------------------------------------------ the lab's PMDs (docs/lab-pmd.md)
def test_pmd_kind_from_env(monkeypatch):
    """CLUA_PMD picks the lab's PMD among lab.PMD_KINDS (unset or empty: DEFAULT_PMD); anything
    else is refused by name, not silently replaced."""
    monkeypatch.delenv("CLUA_PMD", raising=False)
    assert labmod.pmd_kind() == labmod.DEFAULT_PMD
    monkeypatch.setenv("CLUA_PMD", "")
    assert labmod.pmd_kind() == labmod.DEFAULT_PMD
    for k in labmod.PMD_KINDS:
        monkeypatch.setenv("CLUA_PMD", f" {k.upper()} ")
        assert labmod.pmd_kind() == k
    monkeypatch.setenv("CLUA_PMD", "vhost")
    with pytest.raises(labmod.LabError, match="CLUA_PMD must be one of .*'vhost'"):
        labmod.pmd_kind()


def test_devargs_per_kind():
    """The vdev strings aliasd and testpmd get (the agreed devargs(kind, index, iface, queues))."""
    d = labmod.devargs
    assert d("af_xdp", 0, "cl0000-rc") == "net_af_xdp0,iface=cl0000-rc"
    assert d("af_xdp", 1, "cl0000-r0", 2) == "net_af_xdp1,iface=cl0000-r0,start_queue=0,queue_count=2"
    assert d("af_packet", 2, "cl0000-r1") == "net_af_packet2,iface=cl0000-r1"
    assert d("af_packet", 2, "cl0000-r1", 2) == \
        f"net_af_packet2,iface=cl0000-r1,qpairs=2,framecnt={labmod.AF_PACKET_FRAMES}"
    assert d("tap", 0, "cl0000-rct", 2, "02:00:00:00:00:01") == \
        "net_tap0,iface=cl0000-rct,mac=02:00:00:00:00:01"
    assert d("virtio_user", 1, "cl0000-r0t") == \
        "virtio_user1,path=/dev/vhost-net,iface=cl0000-r0t,queue_size=1024"
    assert d("virtio_user", 1, "cl0000-r0t", 2, "02:00:00:00:00:02") == (
        "virtio_user1,path=/dev/vhost-net,iface=cl0000-r0t,queue_size=1024,queues=2,"
        "mac=02:00:00:00:00:02")
    with pytest.raises(labmod.LabError):
        d("pcap", 0, "x")
    with pytest.raises(ValueError):
        d("tap", 0, "x", 0)
    assert labmod.pmd_iface("af_xdp", "cl0000-r2c") == "cl0000-r2c"
    assert labmod.pmd_iface("tap", "cl0000-r2c") == "cl0000-r2ct"


def test_virtio_user_refused_without_vhost_net(make_lab):
    """virtio_user needs the kernel's vhost-net: where /dev/vhost-net is missing the lab refuses
    it up front, naming the device, instead of aliasd failing at probe time with DPDK's
    "arg iface applies only to vhost-kernel backend"."""
    if labmod.VHOST_NET.exists():
        pytest.skip(f"{labmod.VHOST_NET} exists here: virtio_user is available")
    before = set(labmod.netns_list())
    lb = labmod.Lab(members=1, servers=False, pmd="virtio_user")
    with pytest.raises(labmod.PmdUnavailable, match="/dev/vhost-net is missing") as e:
        lb.up()
    assert e.value.kind == "virtio_user" and "vhost-net" in e.value.reason
    assert set(labmod.netns_list()) == before, "a refused lab created namespaces"


def test_tap_lab_plumbing_and_teardown(make_lab):
    """Lab(pmd="tap"): one persistent multi-queue tap per router port (P-rct, P-r0t, P-r1t, the
    port's MTU), each joined to its veth by two netdev-ingress fwd rules; frames the client
    sends to the router's MAC come out of the tap; teardown leaves no link anywhere, not in
    the root namespace either."""
    lb = make_lab(members=1, servers=False, pmd="tap")
    r = lb.router(1)
    for veth, mtu in zip(r.ifaces, (labmod.CLI_MTU, labmod.IC_MTU, labmod.IC_MTU)):
        tap = labmod.pmd_iface("tap", veth)
        info = lb.run(r.ns, "ip", "-d", "-o", "link", "show", tap).stdout
        assert "tun type tap" in info and "multi_queue" in info and "persist on" in info, info
        assert f"mtu {mtu} " in info, info
    rules = lb.run(r.ns, "nft", "list", "table", "netdev", "clua_lab_pmd").stdout
    hooks, fwd = {}, {}
    for name, dev, to in re.findall(r'chain (\S+) \{\s+type filter hook ingress device "([^"]+)"'
                                    r'[^\n]*\n\s+fwd to "([^"]+)"', rules):
        hooks[name], fwd[name] = dev, to
    assert len(hooks) == 6, rules
    for veth, role in zip(r.ifaces, ("client", "ic0", "ic1")):
        tap = labmod.pmd_iface("tap", veth)
        assert hooks[f"{role}_wire"] == veth and fwd[f"{role}_wire"] == tap, (hooks, fwd)
        assert hooks[f"{role}_pmd"] == tap and fwd[f"{role}_pmd"] == veth, (hooks, fwd)
    # the client's frames to the router reach the tap (read its counters: nobody reads it, so
    # the kernel counts them as sent to a tap without a reader: tx_dropped or tx_packets)
    tap = labmod.pmd_iface("tap", r.cli_if)

    def tap_tx() -> int:
        st = json.loads(lb.run(r.ns, "ip", "-j", "-s", "link", "show", tap).stdout)[0]
        return st["stats64"]["tx"]["packets"] + st["stats64"]["tx"]["dropped"]
    before = tap_tx()
    target = "198.51.100.99"
    lb.run("cli", "ip", "neigh", "replace", target, "lladdr", r.macs["client"], "dev",
           lb.cli_if, "nud", "permanent")
    lb.run("cli", "ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", target, check=False)
    assert tap_tx() - before >= 3, "the client's pings did not reach the tap"
    names = [labmod.pmd_iface("tap", i) for i in r.ifaces]
    assert set(names) <= set(lb.link_names())
    lb.down()
    root = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert lb.prefix not in root, f"lab links in the root namespace:\n{root}"
    assert not [n for n in labmod.netns_list() if n.startswith(lb.prefix + "-")]
