"""out_alias and static (CA9; seed 002, seed 000 §6.9; docs/out_alias.md): connections that
members originate to an out_alias port of a server outside the cluster come from the default
cluster alias, each member from its own source-port range, and the replies come back through
the alias router to that member; static ports are never handed out as ephemeral ports.

The server runs in the client namespace (the client LAN, outside the cluster). Members reach
it directly through the gateway, as their direct-server-return replies do; its replies to the
alias are ARPed for on the client LAN, answered by aliasd, and steered by the destination port.
Real kernels on both ends (nftables SNAT on members), aliasd on AF_XDP.
"""

import json
import os
import subprocess
import sys
import time

import pytest

import lab as labmod

CLUSTER = "198.51.100.100"
SERVER = labmod.CLIENT_IP
LAB = dict(members=3, vxlan_members=0, aliases=[CLUSTER], tcp_ports=(), udp_ports=(),
           servers=False)
KEY = b"clua-lab-out-alias-advert-key-0123456789"
OUT_PORT = 6000     # out_alias (the X server port of seed 002)
PLAIN_PORT = 6001   # not flagged: members keep their own address
UDP_PORT = 6002     # out_alias over UDP: "each send can be viewed as a micro-connection"
STATIC_PORT = 40003  # static, inside the kernel's ephemeral range (32768-60999)
RANGES = {"m1": (61000, 61999), "m2": (62000, 62999), "m3": (63000, 63999)}
CONNS = 100
SERVICES = [f"xserver {OUT_PORT}/tcp out_alias", f"xudp {UDP_PORT}/udp out_alias",
            f"hold {STATIC_PORT}/tcp static"]

# Accepts on the TCP ports, tells each connection the address and port it sees, logs them;
# answers each datagram on the UDP port with the same.
SERVER_PY = r"""
import asyncio, sys
class Udp(asyncio.DatagramProtocol):
    def connection_made(self, t):
        self.t = t
    def datagram_received(self, data, addr):
        print(f"udp {addr[0]} {addr[1]}", flush=True)
        self.t.sendto(f"{addr[0]} {addr[1]}\n".encode(), addr)
async def main():
    await asyncio.get_running_loop().create_datagram_endpoint(
        Udp, local_addr=(sys.argv[1], int(sys.argv[2])))
    async def handle(r, w):
        ip, port = w.get_extra_info("peername")[:2]
        local = w.get_extra_info("sockname")[1]
        print(f"{local} {ip} {port}", flush=True)
        w.write(f"{ip} {port}\n".encode())
        await w.drain()
        await r.read()          # until the member closes
        w.close()
    servers = [await asyncio.start_server(handle, sys.argv[1], int(p), backlog=1024)
               for p in sys.argv[3:]]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
"""

# Opens N connections and holds them all open at once, then reads what the server saw of
# each; prints one JSON line. A failed connect ends the opening (its errno is reported).
CLIENT_PY = r"""
import json, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks, err = [], None
for _ in range(n):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((host, port))
    except OSError as e:
        err = e.errno
        s.close()
        break
    socks.append(s)
seen = []
for s in socks:
    f = s.makefile("r")
    line = f.readline().split()
    seen.append({"local": s.getsockname()[1], "ip": line[0] if line else None,
                 "port": int(line[1]) if len(line) > 1 else None})
for s in socks:
    s.close()
print(json.dumps({"seen": seen, "errno": err}))
"""


def _wait(pred, timeout=8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@pytest.fixture(scope="module")
def env(aliasd_bin, member_bin, lab):
    key_file = lab.out_dir / "advert.key"
    key_file.write_bytes(KEY + b"\n")
    os.chmod(key_file, 0o600)
    cfg = lab.aliasd_config_dict([{"name": "cluster", "address": CLUSTER}],
                                 services_lines=SERVICES, default_alias="cluster",
                                 metrics=None)
    for m in cfg["member"]:
        m["agent"] = True
    cfg["adverts"] = {"key_file": str(key_file), "dead_misses": 3}
    services_file = cfg["control"]["services_file"]
    path = lab.out_dir / "aliasd-out-alias.toml"
    path.write_text(labmod.toml_dumps(cfg))
    d = lab.start_aliasd(path, aliasd_bin, timeout=30)
    server_log = lab.out_dir / "out-alias-server.log"
    with open(server_log, "wb") as f:
        server = lab.popen(lab.cli, sys.executable, "-u", "-c", SERVER_PY, SERVER, str(UDP_PORT),
                           str(OUT_PORT), str(PLAIN_PORT), stdout=f, stderr=subprocess.STDOUT)
    agents = {}
    for m in lab.members:
        lo, hi = RANGES[m.name]
        conf = lab.out_dir / f"{m.name}-member.toml"
        conf.write_text(labmod.toml_dumps({
            "node": m.name, "address": m.address, "routers": ["192.0.2.2:9471"],
            "key_file": str(key_file), "interval_ms": 200, "default_alias": CLUSTER,
            "aliases": [CLUSTER], "socket": str(lab.out_dir / f"{m.name}.sock"),
            "state_file": str(lab.out_dir / f"{m.name}-state" / "member-boots"),
            "services": services_file, "out_alias": {"ports": f"{lo}-{hi}"}}))
        log = lab.out_dir / f"{m.name}-agent.log"
        with open(log, "wb") as f:
            agents[m.name] = lab.popen(m.ns, str(member_bin), "--config", str(conf),
                                       stdout=subprocess.DEVNULL, stderr=f)
    for m in lab.members:
        log = lab.out_dir / f"{m.name}-agent.log"
        assert _wait(lambda: "clua-member: ready" in log.read_text(errors="replace")
                     or agents[m.name].poll() is not None), log.read_text()
        assert agents[m.name].poll() is None, log.read_text()
    assert _wait(lambda: "ready" in server_log.read_text()), server_log.read_text()

    def shown():
        return lab.cluamgr("-s").stdout

    # Every member up and its range in force on the router.
    assert _wait(lambda: all(f"{m:<12} {lo}-{hi}" in shown()
                             for m, (lo, hi) in RANGES.items())), shown()
    yield dict(lab=lab, d=d, agents=agents, server_log=server_log, shown=shown)
    for p in agents.values():
        lab.stop(p)
    lab.stop(server)
    if d.alive():
        d.stop(timeout=10)
    (lab.out_dir / "aliasd-out-alias.stderr").write_text(d.stderr)


# Sends one datagram from each of N sockets (all open at once) and reads the answer.
UDP_CLIENT_PY = r"""
import json, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
seen = []
for s in socks:
    s.settimeout(2)
    s.sendto(b"hi", (host, port))
for s in socks:
    try:
        ip, p = s.recv(100).split()
        seen.append({"local": s.getsockname()[1], "ip": ip.decode(), "port": int(p)})
    except OSError:
        pass
print(json.dumps({"seen": seen, "errno": None}))
"""


def _clients(lab, port, n, members, script=CLIENT_PY):
    procs = {m.name: lab.popen(m.ns, sys.executable, "-c", script, SERVER, str(port), str(n))
             for m in members}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=60)
        lab.stop(p)
        assert p.returncode == 0, stderr.decode()
        out[name] = json.loads(stdout.decode().strip().splitlines()[-1])
    return out


def test_out_alias_connections_come_from_the_default_alias_without_collisions(env):
    """CA9: three members open 100 connections each at once to an out_alias port outside the
    cluster: every one completes, the server sees only the default alias, each member's
    source ports lie in its own range, and no two connections share a source port."""
    lab = env["lab"]
    before = len(env["server_log"].read_text().splitlines())
    out = _clients(lab, OUT_PORT, CONNS, lab.members)
    all_ports = []
    for name, r in out.items():
        lo, hi = RANGES[name]
        assert r["errno"] is None and len(r["seen"]) == CONNS, (name, r["errno"], len(r["seen"]))
        ips = {s["ip"] for s in r["seen"]}
        assert ips == {CLUSTER}, (name, ips)
        ports = [s["port"] for s in r["seen"]]
        assert all(lo <= p <= hi for p in ports), (name, sorted(ports)[:5], sorted(ports)[-5:])
        # The member's own socket kept its ephemeral port: the rewrite is the agent's SNAT.
        assert all(not lo <= s["local"] <= hi for s in r["seen"]), name
        all_ports += ports
    assert len(all_ports) == 3 * CONNS and len(set(all_ports)) == 3 * CONNS, "collisions"
    # What the server logged: 300 new connections to the out_alias port, all from the alias.
    log = env["server_log"].read_text().splitlines()[before:]
    seen = [l.split() for l in log if l.split()[0] == str(OUT_PORT)]
    assert len(seen) == 3 * CONNS, len(seen)
    assert {s[1] for s in seen} == {CLUSTER}
    assert STATIC_PORT not in {int(s[2]) for s in seen}


def test_out_alias_udp_sends_come_from_the_default_alias(env):
    """CA9 for UDP: every send to an out_alias port leaves from the default alias and a port of
    the member's range, and the answer comes back through the router to that member."""
    lab = env["lab"]
    out = _clients(lab, UDP_PORT, 20, lab.members, script=UDP_CLIENT_PY)
    ports = []
    for name, r in out.items():
        lo, hi = RANGES[name]
        assert len(r["seen"]) == 20, (name, r)
        assert {s["ip"] for s in r["seen"]} == {CLUSTER}, (name, r)
        assert all(lo <= s["port"] <= hi for s in r["seen"]), (name, r)
        ports += [s["port"] for s in r["seen"]]
    assert len(set(ports)) == len(ports) == 60


def test_other_ports_keep_the_members_own_address(env):
    """Only out_alias destination ports are rewritten: a connection to an unflagged port
    comes from the member's interconnect address."""
    lab = env["lab"]
    out = _clients(lab, PLAIN_PORT, 3, lab.members[:2])
    for name, r in out.items():
        assert r["errno"] is None and len(r["seen"]) == 3, (name, r)
        assert {s["ip"] for s in r["seen"]} == {lab.member(name).address}, (name, r)


def test_static_port_is_never_an_ephemeral_port(env):
    """CA9 static: the agent reserved the static port (ip_local_reserved_ports, per network
    namespace). With m1's ephemeral range shrunk to 10 ports around it, 9 connections held at
    once get the other 9 ports and the 10th finds none: the static port is never used."""
    lab = env["lab"]
    m1 = lab.member("m1")
    reserved = lab.run(m1.ns, "cat", "/proc/sys/net/ipv4/ip_local_reserved_ports").stdout
    assert str(STATIC_PORT) in reserved.replace(",", " ").split(), reserved
    old = lab.run(m1.ns, "cat", "/proc/sys/net/ipv4/ip_local_port_range").stdout.split()
    lab.sysctl(m1.ns, f"net.ipv4.ip_local_port_range={STATIC_PORT - 3} {STATIC_PORT + 6}")
    try:
        r = _clients(lab, PLAIN_PORT, 10, [m1])["m1"]
    finally:
        lab.sysctl(m1.ns, f"net.ipv4.ip_local_port_range={old[0]} {old[1]}")
    locals_ = sorted(s["local"] for s in r["seen"])
    want = [p for p in range(STATIC_PORT - 3, STATIC_PORT + 7) if p != STATIC_PORT]
    assert locals_ == want, locals_
    assert r["errno"] is not None, "a 10th connection found a port: the static one"
    assert all(s["port"] != STATIC_PORT for s in r["seen"])


def test_agent_exit_removes_its_rules_and_restores_reserved_ports(env):
    """The agent's host changes are undone at exit: the nftables table is gone and the
    reserved ports are what they were before it started (empty in a fresh namespace)."""
    lab = env["lab"]
    m3 = lab.member("m3")
    assert lab.run(m3.ns, "nft", "list", "table", "ip", "clua_out_alias", check=False).returncode == 0
    lab.stop(env["agents"]["m3"])
    r = lab.run(m3.ns, "nft", "list", "table", "ip", "clua_out_alias", check=False)
    assert r.returncode != 0, r.stdout
    reserved = lab.run(m3.ns, "cat", "/proc/sys/net/ipv4/ip_local_reserved_ports").stdout.strip()
    assert reserved == "", reserved
    # Its goodbye takes the range off the router.
    assert _wait(lambda: "m3           63000" not in env["shown"]()), env["shown"]()
