"""Members join aliases themselves (issue 4): clua-member agents in the member namespaces
advertise their joins, weights and listening ports over the interconnect with HMAC-SHA-256;
the router follows them. Real kernel clients and servers; aliasd on AF_XDP.

Seed ids: CA2 (a router routes an alias it specifies without joining), CA3 (a down member gets
no new traffic; the alias stays available), CA7 (only members with an active listen on the port),
CA8 (selw set by the member itself).
"""

import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lab as labmod

ROOT = Path(__file__).resolve().parents[2]
WEB, CLUSTER, SPARE = "198.51.100.100", "198.51.100.101", "198.51.100.103"
LAB = dict(members=3, vxlan_members=0, aliases=[WEB, CLUSTER, SPARE], tcp_ports=(80, 22),
           udp_ports=(), hold_ports=(8080,))
INTERVAL_MS = 200
DEAD_MISSES = 3
WEIGHTS = {"m1": 3, "m2": 2, "m3": 1}
KEY = b"clua-lab-shared-advert-key-0123456789"


def advert_bytes(node, boot_id, seq, key, aliases=(), ports=(), kind=1):
    """An advert built from docs/member-protocol.md, independently of the Rust encoder."""
    b = b"CLUA" + bytes([1, kind]) + b"\0\0" + node.encode().ljust(64, b"\0")
    b += struct.pack(">QQIHH", boot_id, seq, INTERVAL_MS, len(aliases), len(ports))
    for addr, joined, selw, selp in aliases:
        b += socket.inet_aton(addr) + bytes([1 if joined else 0, 0, 0, 0]) + struct.pack(">II", selw, selp)
    for proto, port in ports:
        b += bytes([proto, 0]) + struct.pack(">H", port)
    return b + hmac.new(key, b, "sha256").digest()


@pytest.fixture(scope="module")
def env(aliasd_bin, member_bin, lab):
    key_file = lab.out_dir / "advert.key"
    key_file.write_bytes(KEY + b"\n")
    os.chmod(key_file, 0o600)
    aliases = [{"name": "web", "address": WEB}, {"name": "cluster", "address": CLUSTER},
               {"name": "spare", "address": SPARE}]
    services = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]},
                {"name": "ssh", "port": 22, "proto": "tcp", "options": ["in_single"]},
                {"name": "hold", "port": 8080, "proto": "tcp", "options": ["in_multi"]}]
    cfg = lab.aliasd_config_dict(aliases, services, metrics="127.0.0.1:9470", default_alias="cluster")
    for m in cfg["member"]:
        m["agent"] = True
    # A managed member with no agent: only the test's crafted adverts speak for it.
    cfg["member"].append({"name": "ghost", "port": "ic0", "address": "192.0.2.19",
                          "mac": "02:00:00:00:01:19", "encap": "l2", "agent": True})
    cfg["adverts"] = {"key_file": str(key_file), "dead_misses": DEAD_MISSES}
    path = lab.out_dir / "aliasd-members.toml"
    path.write_text(labmod.toml_dumps(cfg))
    d = lab.start_aliasd(path, aliasd_bin, timeout=30)
    router_sock = cfg["control"]["socket"]
    agents = {}
    boot_ids = {}   # member name -> the boot id of each start, in order

    def start_agent(m):
        boot = lab.out_dir / f"{m.name}-clu_alias.config"
        boot.write_text(f"/usr/sbin/cluamgr -a alias={WEB},join,selw={WEIGHTS[m.name]}\n")
        conf = lab.out_dir / f"{m.name}-member.toml"
        conf.write_text(labmod.toml_dumps({
            "node": m.name, "address": m.address, "routers": ["192.0.2.2:9471"],
            "key_file": str(key_file), "interval_ms": INTERVAL_MS, "default_alias": CLUSTER,
            "aliases": [WEB, CLUSTER, SPARE], "alias_config": str(boot),
            "socket": str(lab.out_dir / f"{m.name}.sock"),
            "state_file": str(lab.out_dir / f"{m.name}-state" / "member-boots")}))
        log = lab.out_dir / f"{m.name}-agent.log"
        # The log is appended to by every start of this member: read only what this one wrote.
        start = log.stat().st_size if log.exists() else 0
        this_run = lambda: log.read_bytes()[start:].decode(errors="replace")
        with open(log, "ab") as f:
            p = lab.popen(m.ns, str(member_bin), "--config", str(conf),
                          stdout=subprocess.DEVNULL, stderr=f)
        deadline = time.monotonic() + 10
        while "clua-member: ready" not in this_run():
            assert p.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        boot_ids.setdefault(m.name, []).append(int(this_run().split(" boot_id ")[1].split()[0]))
        agents[m.name] = p
        return p

    for m in lab.members:
        start_agent(m)

    def cluamgr(*args, sock=router_sock, check=True):
        r = subprocess.run([str(labmod.cluamgr_binary()), "--socket", sock, *args],
                           capture_output=True, text=True, timeout=20)
        assert not check or r.returncode == 0, r.stdout + r.stderr
        return r

    def up_members(alias="web"):
        out = cluamgr("-s", alias).stdout
        return {l.split()[0] for l in out.splitlines() if len(l.split()) > 4 and l.split()[3] == "up"}

    def wait_for(pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.05)
        return pred()

    assert wait_for(lambda: up_members() == {"m1", "m2", "m3"}), cluamgr("-s").stdout
    yield dict(lab=lab, d=d, cluamgr=cluamgr, up_members=up_members, wait_for=wait_for,
               agents=agents, start_agent=start_agent, boot_ids=boot_ids)
    for p in agents.values():
        lab.stop(p)
    if d.alive():
        d.stop(timeout=10)
    (lab.out_dir / "aliasd-members.stderr").write_text(d.stderr)


def metrics(lab):
    return lab.run(lab.rtr, "curl", "-s", "127.0.0.1:9470/metrics").stdout


def counter(text, name):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


def test_members_join_with_their_own_weights(env):
    lab = env["lab"]
    r = lab.client("tcp", f"{WEB}:80", 60)
    assert r["ok"] == 60 and labmod.round_robin_ok(r["by_member"], {"m1": 3, "m2": 2, "m3": 1},
                                                   lab.workers), r
    # CA2 / "joins only those it names": every member knows `spare` but none joined it; the
    # router still specifies (routes, answers ARP/ping for) it.
    assert "no members" in env["cluamgr"]("-s", "spare").stdout
    assert lab.ping(lab.cli, SPARE)


def test_a_member_sets_its_own_selw(env):
    lab, cluamgr = env["lab"], env["cluamgr"]
    m3sock = str(lab.out_dir / "m3.sock")
    try:
        out = cluamgr("-a", f"alias={WEB},selw=5", sock=m3sock).stdout
        assert "selw" in out, out
        assert env["wait_for"](lambda: " 5 " in [l for l in cluamgr("-s", "web").stdout.splitlines()
                                                 if l.strip().startswith("m3")][0])
        r = lab.client("tcp", f"{WEB}:80", 100)
        assert r["ok"] == 100 and labmod.round_robin_ok(
            r["by_member"], {"m1": 3, "m2": 2, "m3": 5}, lab.workers), r
    finally:
        cluamgr("-a", f"alias={WEB},selw=1", sock=m3sock, check=False)


def test_stopped_server_gets_no_new_connections_within_the_interval(env):
    """CA7: a port with no listener makes the member ineligible; measured over 5 trials."""
    lab = env["lab"]
    m1 = lab.member("m1")
    results = []
    for trial in range(5):
        assert env["wait_for"](lambda: env["up_members"]() == {"m1", "m2", "m3"})
        # New connections every ~10 ms for 2 s, timestamped with CLOCK_MONOTONIC (system-wide,
        # so comparable with the kill time taken here); a connection still sent to m1 after its
        # server stopped is refused by m1's kernel (no listener).
        code = ("import socket,time,json,sys\n"
                "t=time.monotonic(); out=[]\n"
                "while time.monotonic()-t<3.0:\n"
                " s=socket.socket(); s.settimeout(0.5); a=time.monotonic()\n"
                " try:\n  s.connect((sys.argv[1],80)); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); r=s.recv(200).decode(); ok=r.split('member=')[1].split()[0]\n"
                " except ConnectionRefusedError: ok='refused'\n"
                " except (OSError, IndexError) as e: ok='error:'+type(e).__name__\n"
                " s.close(); out.append((a, ok)); time.sleep(0.01)\n"
                "print(json.dumps(out))\n")
        client = lab.popen(lab.cli, sys.executable, "-c", code, WEB, stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        t_kill = time.monotonic()
        m1.server.kill()
        try:
            out, _ = client.communicate(timeout=30)
        finally:
            m1.server.wait(timeout=5)
            lab.start_member_servers()
        attempts = json.loads(out)
        assert all(ok != "refused" for t, ok in attempts if t < t_kill), attempts
        # Attempts that still reached m1 after the kill: refused by its kernel, or accepted in the
        # instant before the dying server's socket closed.
        reached = [t for t, ok in attempts if t >= t_kill and ok in ("refused", "m1")]
        last = max(reached) - t_kill if reached else 0.0
        results.append(last)
        tail = [ok for t, ok in attempts if t > t_kill + last]
        assert len(tail) > 20 and all(ok in ("m2", "m3") for ok in tail), attempts[-10:]
        # The behaviour: within the dead interval (plus slack for a loaded 2-core machine; the
        # measured figures are printed, not gated on).
        assert last <= INTERVAL_MS * DEAD_MISSES / 1000 + 1.0, (last, [a for a in attempts if a[1] != "m2" and a[1] != "m3"])
        # m1 listens again: wait until its next advert has made it eligible once more.
        assert env["wait_for"](lambda: lab.client("tcp", f"{WEB}:80", 6)["by_member"].get("m1", 0) > 0)
    results.sort()
    (lab.out_dir / "failover.json").write_text(json.dumps({"server_stop_to_last_m1_s": results}))
    print(f"\nserver stop -> last new connection to m1 over {len(results)} trials: "
          f"min {results[0]*1000:.0f} ms, median {results[len(results)//2]*1000:.0f} ms, "
          f"max {results[-1]*1000:.0f} ms (interval {INTERVAL_MS} ms)")


def test_killed_agent_marks_the_member_down_after_the_dead_interval(env):
    lab = env["lab"]
    p = env["agents"]["m2"]
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=5)
    t0 = time.monotonic()
    assert env["wait_for"](lambda: env["up_members"]() == {"m1", "m3"}, timeout=5)
    took = time.monotonic() - t0
    assert took <= INTERVAL_MS * DEAD_MISSES / 1000 + 1.5, took
    r = lab.client("tcp", f"{WEB}:80", 40)
    assert r["ok"] == 40 and "m2" not in r["by_member"], r          # CA3: the alias stays available
    # kill -9 left its host preparation behind; a new agent copes (idempotent) and rejoins. Its
    # boot id is the next count of its state file (not the clock), which the router accepts.
    env["start_agent"](lab.member("m2"))
    first, second = env["boot_ids"]["m2"][-2:]
    assert second == first + 1, env["boot_ids"]
    assert env["wait_for"](lambda: env["up_members"]() == {"m1", "m2", "m3"})
    r = lab.client("tcp", f"{WEB}:80", 120)
    # The rejoin reorders the schedule (and its first adverts may rebuild the snapshot mid-run),
    # so shares rather than exact counts.
    assert r["ok"] == 120, r
    for m, w in WEIGHTS.items():
        assert abs(100 * r["by_member"].get(m, 0) / 120 - 100 * w / 6) <= 5, r


def test_forged_replayed_and_truncated_adverts_change_nothing(env):
    lab = env["lab"]
    before = metrics(lab)
    sender = ("import socket,sys\n"
              "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              "for h in sys.argv[1:]:\n s.sendto(bytes.fromhex(h),('192.0.2.2',9471))\n")
    boot = int(time.time() * 1000)
    good = advert_bytes("ghost", boot, 1, KEY, aliases=[(SPARE, True, 1, 1)], ports=[(6, 80)])
    forged = advert_bytes("ghost", boot, 2, b"not-the-shared-key-0123456789", aliases=[(WEB, True, 100, 100)])
    truncated = good[:50]
    lab.run(lab.member("m1").ns, sys.executable, "-c", sender, good.hex(), good.hex(), forged.hex(),
            truncated.hex())
    ok = env["wait_for"](lambda: counter(metrics(lab), 'clua_member_adverts_total{outcome="replayed"}')
                         >= counter(before, 'clua_member_adverts_total{outcome="replayed"}') + 1)
    after = metrics(lab)
    delta = lambda o: counter(after, f'clua_member_adverts_total{{outcome="{o}"}}') - \
        counter(before, f'clua_member_adverts_total{{outcome="{o}"}}')
    assert ok and delta("replayed") == 1, after
    assert delta("bad_tag") == 1 and delta("truncated") == 1, after
    # The genuine advert made ghost join spare; the forged one (weights 100 on web) did nothing.
    show = env["cluamgr"]("-s").stdout
    assert "ghost" not in env["cluamgr"]("-s", "web").stdout, show
    assert "ghost" in env["cluamgr"]("-s", "spare").stdout, show


def test_in_single_moves_to_the_next_listening_member_when_the_active_server_stops(env):
    """CA9 + CA7: in_single follows the first joined member that listens on the port. The
    stopped server's established connections stay pinned to it in the connection table; its
    kernel resets them on their next segment (the process is gone), so clients reconnect and
    land on the new active member."""
    lab = env["lab"]
    r = lab.client("tcp", f"{WEB}:22", 10)
    assert r["ok"] == 10 and len(r["by_member"]) == 1, r
    (active,) = r["by_member"]
    m = lab.member(active)
    m.server.kill()
    m.server.wait(timeout=5)
    deadline = time.monotonic() + 2 * INTERVAL_MS / 1000 + 1
    while time.monotonic() < deadline:
        r = lab.client("tcp", f"{WEB}:22", 5, max_failures=0)
        if r["ok"] == 5 and active not in r["by_member"]:
            break
        time.sleep(0.05)
    assert r["ok"] == 5 and len(r["by_member"]) == 1 and active not in r["by_member"], r
    lab.start_member_servers()
    time.sleep(3 * INTERVAL_MS / 1000)   # the restarted server's ports reach the router


def test_a_member_leaving_with_its_own_cluamgr_drains(env):
    """Issue 4: a member that leaves says so at once; its established connections are not cut."""
    lab, cluamgr = env["lab"], env["cluamgr"]
    time.sleep(3 * INTERVAL_MS / 1000)   # every member's current ports have reached the router
    holder = lab.popen(lab.cli, sys.executable, str(ROOT / "tests/clients/holder.py"),
                       "--to", f"{WEB}:8080", "--count", "6", stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m1sock = str(lab.out_dir / "m1.sock")
    try:
        first = json.loads(holder.stdout.readline())
        assert first["errors"] == [] and "m1" in first["members"], first
        out = cluamgr("-a", f"alias={WEB},leave", sock=m1sock).stdout
        assert "left" in out or "leave" in out, out
        assert env["wait_for"](lambda: "m1" not in env["up_members"]("web"), timeout=3)
        r = lab.client("tcp", f"{WEB}:80", 30)
        assert r["ok"] == 30 and "m1" not in r["by_member"], r
        holder.stdin.write("ping\n")
        holder.stdin.flush()
        after = json.loads(holder.stdout.readline())
        assert after["errors"] == [] and after["members"] == first["members"], (first, after)
    finally:
        lab.stop(holder)
        cluamgr("-a", f"alias={WEB},join,selw=3", sock=m1sock, check=False)
        env["wait_for"](lambda: "m1" in env["up_members"]("web"), timeout=3)
