"""RIPv2 and BFD (issue 8, CA6): two aliasd routers advertise their aliases to a real BIRD 2 in
the gateway namespace (RIP import, ECMP merged into the gateway's kernel table, BFD with
100 ms intervals and multiplier 3), and a client in another subnet (P-far, 203.0.113.192/26)
reaches a virtual alias through BIRD's route, a router and a member (direct server return back
through the gateway).

Seed ids: CA6 (virtual subnet aliases advertised by RIP; RFC 1918 aliases only after
`cluamgr -r resvok`), seed 000 §6.6.1 (aliasd only advertises). Configuration: [rip], [bfd],
[[alias]] virtual / mask in docs/aliasd.toml.md. Measurements are printed: run with -s.
"""

import time

import pytest

import lab as labmod

WEB = "198.51.100.100"  # common subnet: a /32 host route
VIRT = "203.0.113.10"  # virtual subnet alias: the network route 203.0.113.0/25
VIRT_MASK = "255.255.255.128"
VIRT_NET = "203.0.113.0/25"
PRIV = "10.0.0.5"  # RFC 1918, config-only: see test_rfc1918_only_after_resvok
LAB = dict(members=2, vxlan_members=0, routers=2, far=True, aliases=[WEB, VIRT],
           tcp_ports=(80,), udp_ports=())
SERVICES = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]}]
METRICS = "127.0.0.1:9470"
UPDATE_SECS = 5  # short, so the "learns nothing" waits are bounded (RFC 2453 default 30)
JITTER_SECS = 1  # less than half of update_secs (docs/aliasd.toml.md)
PERIOD_MAX = UPDATE_SECS + JITTER_SECS  # the longest gap between two periodic updates
PASSWORD = "clua-lab-rip-password-0123"
BFD_DETECT = 0.3  # 100 ms x 3
HOPS = sorted([labmod.RTR_CLI_IPS[1], labmod.RTR_CLI_IPS[2]])


class Env:
    def __init__(self, lab, binary):
        self.lab, self.binary = lab, binary
        self.running: dict = {}

    def config(self, k, key_file=None, bfd=False, extra_aliases=(), mode="broadcast",
               rip_on=True):
        aliases = [{"name": "web", "address": WEB, "members": ["m1", "m2"]},
                   {"name": "virt", "address": VIRT, "virtual": True, "mask": VIRT_MASK,
                    "members": ["m1", "m2"]}]
        rip = {"mode": mode, "update_secs": UPDATE_SECS, "jitter_secs": JITTER_SECS}
        if key_file:
            rip["key_file"] = str(key_file)
        doc = self.lab.aliasd_config_dict(
            aliases, SERVICES, router=k, node=f"r{k}", metrics=METRICS,
            rip=rip if rip_on else None,
            default_alias="web",
            bfd={"peers": [labmod.GW_CLI_IP], "min_tx_ms": 100, "min_rx_ms": 100,
                 "multiplier": 3} if bfd else None)
        doc["alias"] += [dict(a) for a in extra_aliases]
        path = self.lab.out_dir / f"aliasd-rip-r{k}.toml"
        path.write_text(labmod.toml_dumps(doc))
        return path

    def start(self, k, **kw):
        d = self.lab.start_aliasd(self.config(k, **kw), self.binary, timeout=30, router=k)
        self.running[k] = d
        return d

    def stop(self, k, sig=labmod.signal.SIGTERM) -> float:
        d = self.running.pop(k)
        t = d.kill(sig)
        d.stop(timeout=10)
        with open(self.lab.out_dir / f"aliasd-rip-r{k}.stderr", "a") as f:
            f.write(d.stderr + "\n----\n")
        return t

    def stop_all(self):
        for k in list(self.running):
            self.stop(k)

    def tails(self) -> str:
        out = [f"\nBIRD routes: {self.lab.bird_routes_detail()}"]
        log = self.lab.out_dir / "bird.log"
        if log.exists():
            out.append("\nbird.log tail:\n" + "\n".join(log.read_text().splitlines()[-15:]))
        for k, d in self.running.items():
            out.append(f"\n--- router {k} stderr tail:\n" + "\n".join(d.lines[-20:]))
        return "".join(out)


@pytest.fixture
def env(aliasd_bin, lab):
    e = Env(lab, aliasd_bin)
    yield e
    e.stop_all()
    lab.stop_bird()


def wait_routes(lab, pred, timeout, step=0.05):
    """Poll BIRD's RIP routes until pred(routes); (seconds or None, last routes)."""
    t0 = time.monotonic()
    while True:
        routes = lab.bird_routes()
        if pred(routes):
            return time.monotonic() - t0, routes
        if time.monotonic() - t0 > timeout:
            return None, routes
        time.sleep(step)


def both_learnt(routes) -> bool:
    return routes.get(f"{WEB}/32") == HOPS and routes.get(VIRT_NET) == HOPS


def far_tcp(lab, count=10) -> dict:
    return lab.client("tcp", f"{VIRT}:80", count=count, timeout=2, ns=lab.far)


# A minimal RIPv2 response (RFC 2453 §4), broadcast from SRC:520: argv SRC METRIC NET/MASK...
RIP_SPEAKER = r"""
import socket, struct, sys
src, metric = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind((src, 520))
pkt = bytes([2, 2, 0, 0])
for entry in sys.argv[3:]:
    net, mask = entry.split("/")
    pkt += (struct.pack(">HH", 2, 0) + socket.inet_aton(net) + socket.inet_aton(mask)
            + bytes(4) + struct.pack(">I", metric))
s.sendto(pkt, ("198.51.100.255", 520))
"""


def test_lab_bird_with_a_python_rip_speaker(lab):
    """The lab part alone (no aliasd): BIRD in P-gw learns RIPv2 routes from a minimal Python
    speaker in each router namespace (temporary kernel addresses .2 and .3), merges both next
    hops (ECMP) into the gateway's kernel table, parses as bird_routes() says, and drops a
    path at metric 16; its BFD sessions are listed (Down: nobody speaks BFD here)."""
    # the far client's own path: the gateway, and a member answering it through the gateway
    assert lab.ping(lab.far, labmod.GW_FAR_IP) and lab.ping(lab.far, lab.member("m1").address)
    lab.start_bird(rip_auth=None, bfd=True)
    try:
        for k in (1, 2):
            r = lab.router(k)
            lab.ip(r.ns, "addr", "add", f"{r.cli_ip}/24", "dev", r.cli_if)
        entries = [f"{WEB}/255.255.255.255", f"203.0.113.0/{VIRT_MASK}"]

        def speak(k, metric):
            r = lab.router(k)
            lab.run(r.ns, labmod.sys.executable, "-c", RIP_SPEAKER, r.cli_ip, str(metric),
                    *entries)

        speak(1, 1)
        speak(2, 1)
        took, routes = wait_routes(lab, both_learnt, timeout=3)
        assert took is not None, f"BIRD did not learn the speakers' routes: {routes}"
        assert lab.bird_routes_detail()[VIRT_NET]["metric"] == 2
        kr = lab.kernel_routes()
        assert kr.get(WEB) == HOPS and kr.get(VIRT_NET) == HOPS, kr
        assert set(lab.bird_bfd_sessions()) == set(HOPS), lab.bird_bfd_sessions()
        speak(1, 16)
        r2 = labmod.RTR_CLI_IPS[2]
        took, routes = wait_routes(lab, lambda r: r.get(VIRT_NET) == [r2], timeout=2)
        assert took is not None, f"metric 16 did not withdraw router 1's path: {routes}"
        # every test starts from a clean gateway: a stopped BIRD takes its kernel routes along
        lab.stop_bird()
        kr = lab.kernel_routes()
        assert WEB not in kr and VIRT_NET not in kr, f"BIRD left kernel routes: {kr}"
    finally:
        lab.stop_bird()
        for k in (1, 2):
            r = lab.router(k)
            lab.ip(r.ns, "addr", "flush", "dev", r.cli_if)


@pytest.mark.parametrize("mode", ["broadcast", "multicast"])
def test_bird_learns_host_and_network_routes_ecmp(lab, env, mode):
    """CA6: BIRD learns WEB/32 and the virtual alias's 203.0.113.0/25 from both routers (ECMP:
    both next hops), merged into the gateway's kernel table; the far client reaches the virtual
    alias over TCP through BIRD's route (far -> gw -> router -> member -> gw -> far). RIP
    broadcast (198.51.100.255) and multicast (224.0.0.9) alike."""
    assert not far_tcp(lab, count=1)["ok"], "the far client reaches VIRT without any route"
    lab.start_bird(rip_auth=None, bfd=False, mode=mode)
    env.start(1, mode=mode)
    env.start(2, mode=mode)
    took, routes = wait_routes(lab, both_learnt, timeout=2 * PERIOD_MAX)
    print(f"{mode}: BIRD learnt both routes with both next hops after {took} s: {routes}")
    assert took is not None, (f"BIRD routes {routes}, want {WEB}/32 and {VIRT_NET} via {HOPS}"
                              + env.tails())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        kr = lab.kernel_routes()
        if kr.get(VIRT_NET) == HOPS and kr.get(WEB) == HOPS:
            break
        time.sleep(0.1)
    assert kr.get(VIRT_NET) == HOPS, f"gateway kernel routes {kr}: no ECMP {VIRT_NET}"
    assert kr.get(WEB) == HOPS, f"gateway kernel routes {kr}: no ECMP {WEB}"
    res = far_tcp(lab, count=20)
    print(f"far client -> {VIRT}:80 through BIRD: {res}")
    assert res["ok"] == 20 and res["failed"] == 0, f"{res}" + env.tails()
    assert set(res["by_member"]) <= {"m1", "m2"}
    for k in (1, 2):
        sent = [float(x) for x in labmod.re.findall(
            r"^clua_rip_updates_sent_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", lab.metrics(k),
            labmod.re.M)]
        assert sent and sum(sent) >= 1, f"r{k} clua_rip_updates_sent_total {sent}"
    show = lab.cluamgr("-s", router=1).stdout
    assert VIRT_NET in show, f"cluamgr -s does not show the advertised route {VIRT_NET}:\n{show}"


def test_authenticated_rip(lab, env):
    """RFC 4822 HMAC-SHA-256 (key id 1): with the password shared BIRD learns the routes and the
    far client gets through; with a wrong password in BIRD, BIRD learns nothing in two update
    periods (the first case bounds how long learning takes)."""
    key = lab.key_file("rip.key", PASSWORD.encode())
    lab.start_bird(rip_auth=PASSWORD, bfd=False)
    env.start(1, key_file=key)
    env.start(2, key_file=key)
    took, routes = wait_routes(lab, both_learnt, timeout=2 * PERIOD_MAX)
    print(f"authenticated: BIRD learnt the routes after {took} s")
    assert took is not None, f"authenticated RIP: BIRD routes {routes}" + env.tails()
    res = far_tcp(lab, count=10)
    assert res["ok"] == 10, f"{res}" + env.tails()

    lab.start_bird(rip_auth=PASSWORD + "-wrong", bfd=False)
    wait = max(2 * PERIOD_MAX, 2 * took)
    time.sleep(wait)
    routes = lab.bird_routes()
    print(f"wrong password, after {wait:.1f} s: BIRD routes {routes}")
    assert routes == {}, f"BIRD with a wrong password learnt {routes}" + env.tails()


def test_leave_withdraws_at_once(lab, env):
    """When the last member leaves WEB on router 1 (`cluamgr -a alias=WEB,leave`: the router
    itself if it takes it, else every member with --member), r1's path to WEB goes at once
    (metric 16: BIRD keeps only r2's within 2 s; an alias with no member must not draw traffic
    to a router that would drop it), the virtual route staying; a join brings it back."""
    lab.start_bird(rip_auth=None, bfd=False)
    env.start(1)
    env.start(2)
    took, routes = wait_routes(lab, both_learnt, timeout=2 * PERIOD_MAX)
    assert took is not None, f"BIRD routes {routes}" + env.tails()

    r = lab.cluamgr("-a", f"alias={WEB},leave", router=1, check=False)
    how = "router leave"
    if r.returncode != 0 and "--member" in r.stderr:
        for m in ("m1", "m2"):
            lab.cluamgr("-a", f"alias={WEB},leave", "--member", m, router=1)
        how = "every member left"
    else:
        assert r.returncode == 0, f"cluamgr leave: {r.stdout}{r.stderr}"
    r1, r2 = labmod.RTR_CLI_IPS[1], labmod.RTR_CLI_IPS[2]
    took, routes = wait_routes(lab, lambda r: r.get(f"{WEB}/32") == [r2], timeout=2)
    print(f"leave on r1 ({how}): BIRD dropped r1's path to {WEB} after {took} s: {routes}")
    assert took is not None, f"after leave on r1, BIRD routes {routes}" + env.tails()
    assert routes.get(VIRT_NET) == HOPS, f"leave of WEB touched {VIRT_NET}: {routes}"

    if how == "router leave":
        lab.cluamgr("-a", f"alias={WEB},join", router=1)
    else:
        lab.cluamgr("-a", f"alias={WEB},join", "--member", "m1", router=1)
    took, routes = wait_routes(lab, lambda r: r.get(f"{WEB}/32") == HOPS, timeout=2 + 5)
    assert took is not None, f"after the join, BIRD routes {routes}" + env.tails()


def test_sigterm_withdraws_at_once(lab, env):
    """SIGTERM of router 2 withdraws every route it advertised within 2 s (clean shutdown sends
    metric 16 for all, docs/rip.md); router 1's stay."""
    lab.start_bird(rip_auth=None, bfd=False)
    env.start(1)
    env.start(2)
    took, routes = wait_routes(lab, both_learnt, timeout=2 * PERIOD_MAX)
    assert took is not None, f"BIRD routes {routes}" + env.tails()
    r1, r2 = labmod.RTR_CLI_IPS[1], labmod.RTR_CLI_IPS[2]
    t = env.stop(2, labmod.signal.SIGTERM)
    took, routes = wait_routes(lab, lambda r: all(r2 not in v for v in r.values()), timeout=2)
    took = None if took is None else time.monotonic() - t
    print(f"SIGTERM of r2: BIRD dropped its paths {took} s after the signal: {routes}")
    assert took is not None, f"after SIGTERM of r2, BIRD routes {routes}" + env.tails()
    assert routes.get(VIRT_NET) == [r1] and routes.get(f"{WEB}/32") == [r1], (
        f"r1's routes went too: {routes}")


def test_sigkill_bfd_drops_path(lab, env):
    """BFD (RFC 5880/5881): with BFD between BIRD and both routers, SIGKILL of router 2 makes
    BIRD drop its paths within the detection time (3 x 100 ms) plus slack; RIP alone would
    keep them 180 s. Slack 300 ms: BIRD's timer and route recomputation, the 20 ms polling of
    birdc, two cores shared with other builds."""
    lab.start_bird(rip_auth=None, bfd=True)
    env.start(1, bfd=True)
    env.start(2, bfd=True)
    took, routes = wait_routes(lab, both_learnt, timeout=2 * PERIOD_MAX)
    assert took is not None, f"BIRD routes {routes}" + env.tails()
    r1, r2 = labmod.RTR_CLI_IPS[1], labmod.RTR_CLI_IPS[2]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        sessions = lab.bird_bfd_sessions()
        if sessions.get(r1) == "Up" and sessions.get(r2) == "Up":
            break
        time.sleep(0.1)
    print(f"BFD sessions in BIRD: {sessions}")
    assert sessions.get(r1) == "Up" and sessions.get(r2) == "Up", (
        f"BFD sessions {sessions}" + env.tails())

    t = env.stop(2, labmod.signal.SIGKILL)
    _, routes = wait_routes(lab, lambda r: all(r2 not in v for v in r.values()), timeout=5,
                            step=0.02)
    gone = time.monotonic() - t
    dropped = all(r2 not in v for v in routes.values())
    print(f"SIGKILL of r2: BIRD dropped its paths {gone * 1000:.0f} ms after the kill "
          f"(BFD detection time {BFD_DETECT * 1000:.0f} ms): {routes}")
    assert dropped, f"BIRD still has r2's paths 5 s after SIGKILL: {routes}" + env.tails()
    assert gone <= BFD_DETECT + 0.3, f"BIRD took {gone:.2f} s to drop r2 (BFD 0.3 s)"
    assert routes.get(VIRT_NET) == [r1] and routes.get(f"{WEB}/32") == [r1], routes
    assert lab.bird_bfd_sessions().get(r2) != "Up"
    changes = [float(x) for x in labmod.re.findall(
        r"^clua_bfd_state_changes_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)$", lab.metrics(1),
        labmod.re.M)]
    assert changes and sum(changes) >= 1, f"r1 clua_bfd_state_changes_total {changes}"
    res = far_tcp(lab, count=10)
    assert res["ok"] == 10, f"far client after r2's death: {res}" + env.tails()


def wait_bfd_up(lab, addrs, timeout=5) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        sessions = lab.bird_bfd_sessions()
        if all(sessions.get(a) == "Up" for a in addrs) or time.monotonic() > deadline:
            return sessions
        time.sleep(0.1)


def test_bfd_alone_static_route_drops_dead_router(lab, env):
    """BFD without RIP: BIRD's static route to the virtual subnet via both routers, each next
    hop alive only while its BFD session is Up. The sessions come Up with aliasd's [bfd]; the
    far client gets through; SIGKILL of router 2 drops its next hop within the detection time
    (3 x 100 ms) plus the slack of test_sigkill_bfd_drops_path; SIGTERM of router 1 sends
    AdminDown (docs/bfd.md), so its hop goes at once too."""
    r1, r2 = labmod.RTR_CLI_IPS[1], labmod.RTR_CLI_IPS[2]
    lab.start_bird(static_bfd={VIRT_NET: [r1, r2]})
    env.start(1, bfd=True, rip_on=False)
    env.start(2, bfd=True, rip_on=False)
    sessions = wait_bfd_up(lab, [r1, r2])
    print(f"BFD sessions in BIRD: {sessions}")
    assert sessions.get(r1) == "Up" and sessions.get(r2) == "Up", (
        f"BFD sessions {sessions}" + env.tails())
    deadline = time.monotonic() + 2
    while lab.bird_routes("static1").get(VIRT_NET) != HOPS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab.bird_routes("static1").get(VIRT_NET) == HOPS, lab.bird_routes("static1")
    res = far_tcp(lab, count=10)
    assert res["ok"] == 10, f"far client over the static route: {res}" + env.tails()

    t = env.stop(2, labmod.signal.SIGKILL)
    while lab.bird_routes("static1").get(VIRT_NET) != [r1] and time.monotonic() - t < 5:
        time.sleep(0.02)
    gone = time.monotonic() - t
    print(f"BFD alone: SIGKILL of r2, BIRD dropped its static next hop after "
          f"{gone * 1000:.0f} ms (detection time {BFD_DETECT * 1000:.0f} ms)")
    assert lab.bird_routes("static1").get(VIRT_NET) == [r1], lab.bird_routes("static1")
    assert gone <= BFD_DETECT + 0.3, f"BIRD took {gone:.2f} s to drop r2 (BFD 0.3 s)"
    res = far_tcp(lab, count=10)
    assert res["ok"] == 10, f"far client after r2's death: {res}" + env.tails()

    t = env.stop(1, labmod.signal.SIGTERM)
    while VIRT_NET in lab.bird_routes("static1") and time.monotonic() - t < 5:
        time.sleep(0.02)
    gone = time.monotonic() - t
    print(f"BFD alone: SIGTERM of r1 (AdminDown), BIRD dropped its hop after {gone * 1000:.0f} ms")
    assert VIRT_NET not in lab.bird_routes("static1"), lab.bird_routes("static1")
    assert gone <= BFD_DETECT + 0.3, f"AdminDown took {gone:.2f} s to take effect"


def test_rfc1918_only_after_resvok(lab, env):
    """CA6: an RFC 1918 alias is advertised only after `cluamgr -r resvok`.

    The lab's address rule (documentation ranges only) holds: PRIV (10.0.0.5) is a config-only
    alias: no interface has it, no member holds it, nothing sends to it. It appears only as
    payload: in the router announcements on the lab interconnect, and after resvok in RIP
    payloads to BIRD, whose kernel export filter (start_bird(kernel_filter=True)) keeps it out
    of every kernel table, so no packet is ever addressed to or from it (asserted too)."""
    lab.start_bird(rip_auth=None, bfd=False)
    # appended after the lab's address check (aliasd_config_dict refuses 10/8, rightly)
    priv = {"name": "priv", "address": PRIV, "members": [{"name": "m1"}]}
    env.start(1, extra_aliases=[priv])
    took, routes = wait_routes(lab, lambda r: r.get(f"{WEB}/32") == [labmod.RTR_CLI_IPS[1]],
                               timeout=2 * PERIOD_MAX)
    assert took is not None, f"BIRD routes {routes}" + env.tails()
    time.sleep(PERIOD_MAX + 0.5)  # at least one full periodic update since
    routes = lab.bird_routes()
    assert f"{PRIV}/32" not in routes, f"{PRIV} advertised before resvok: {routes}"

    lab.cluamgr("-r", "resvok", router=1)
    took, routes = wait_routes(lab, lambda r: f"{PRIV}/32" in r, timeout=PERIOD_MAX + 1)
    print(f"resvok: BIRD learnt {PRIV}/32 after {took} s")
    assert took is not None, f"{PRIV} not advertised after resvok: {routes}" + env.tails()
    assert routes[f"{PRIV}/32"] == [labmod.RTR_CLI_IPS[1]]
    kr = lab.kernel_routes()
    assert not any(k.startswith("10.") for k in kr), f"a 10/8 route reached the kernel: {kr}"
