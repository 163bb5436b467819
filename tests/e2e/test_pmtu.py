"""Path-MTU discovery through an alias (CA7: ICMP handled in alias context; CA12: direct server
return; issue 10, docs/alias-context.md).

The far client (P-far, 203.0.113.194, MTU 1500, so it offers an MSS of 1460) downloads 1 MB
files through the alias from three members (MTU 1600). The members reply directly (DSR, source
= the alias) through the gateway, whose link to the far client has an MTU of 1280 (P-gf). The
gateway drops the members' 1500-byte segments (DF) and sends *fragmentation needed* (3/4,
next-hop MTU 1280) to their source: the alias. Only aliasd can hand that error to the member
that sent the segment; without it the members never lower their path MTU and every download
stalls (Linux's PLPMTUD, ``tcp_mtu_probing``, is off by default).

The test checks that no member has a path MTU cached for the client before, that every
download completes and comes from several members, that aliasd forwarded ICMP errors
(clua_icmp_errors_forwarded_total), and that each serving member learnt MTU 1280 for the client.
"""

import json
import re
import sys
import time

import pytest

import lab as labmod

WEB = "198.51.100.100"
LAB = dict(members=3, vxlan_members=0, far=True, aliases=[WEB], servers=False)
ALIASES = [{"name": "web", "address": WEB, "members": ["m1", "m2", "m3"]}]
SERVICES = [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]}]
METRICS = "127.0.0.1:9470"
HOP_MTU = 1280
SIZE = 1 << 20
CLIENTS = 6
DOWNLOAD_TIMEOUT = 8.0

# Each member: answer every connection with "member=NAME\n" and SIZE bytes in total.
SERVER = r"""
import socket, sys, threading
name, size = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(64)
head = f"member={name}\n".encode()
body = head + b"x" * (size - len(head))
def serve(c):
    try:
        c.settimeout(15); c.recv(4096); c.sendall(body)
    except OSError:
        pass
    finally:
        c.close()
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# The far client: CLIENTS concurrent downloads; one JSON line with each one's outcome.
CLIENT = r"""
import json, socket, sys, threading, time
to, n, size, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
res = [None] * n
def get(i):
    t0 = time.monotonic(); got = b""
    try:
        c = socket.create_connection((to, 80), timeout=timeout)
        c.settimeout(max(0.1, timeout - (time.monotonic() - t0)))
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while len(got) < size:
            b = c.recv(65536)
            if not b:
                break
            got += b
            c.settimeout(max(0.1, timeout - (time.monotonic() - t0)))
        c.close(); err = None
    except OSError as e:
        err = repr(e)
    first = got.split(b"\n", 1)[0].decode(errors="replace")
    res[i] = {"bytes": len(got), "member": first.removeprefix("member="), "error": err,
              "secs": round(time.monotonic() - t0, 2)}
ts = [threading.Thread(target=get, args=(i,)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(res))
"""


def route_mtu(lab, member) -> int | None:
    """The path MTU member's kernel has cached for the far client (None: none cached)."""
    out = lab.run(member.ns, "ip", "route", "get", labmod.FAR_IP).stdout
    m = re.search(r"\bmtu (\d+)", out)
    return int(m.group(1)) if m else None


@pytest.fixture(scope="module")
def aliasd(aliasd_bin, lab):
    cfg = lab.write_aliasd_config(ALIASES, SERVICES, metrics=METRICS, default_alias="web",
                                  binary=aliasd_bin)
    d = lab.start_aliasd(cfg, aliasd_bin, timeout=30)
    yield d
    if d.alive():
        d.stop(timeout=10)
    (lab.out_dir / "aliasd-pmtu.stderr").write_text(d.stderr)


@pytest.fixture(scope="module")
def servers(lab):
    procs = []
    for m in lab.l2_members:
        p = lab.popen(m.ns, sys.executable, "-u", "-c", SERVER, m.name, str(SIZE))
        procs.append(p)
    for p in procs:
        assert p.stdout.readline().strip() == b"ready", p.stderr.read().decode()
    yield procs
    for p in procs:
        lab.stop(p)


def test_bulk_download_through_a_small_mtu_hop(lab, aliasd, servers):
    """CA7: 6 concurrent 1 MB downloads from 3 members across a 1280-byte hop complete, because
    aliasd hands the gateway's fragmentation-needed errors (sent to the alias) to the member
    owning each flow."""
    # The hop: the gateway's side of its link to the far client.
    lab.ip(lab.gw, "link", "set", lab.gw_far_if, "mtu", str(HOP_MTU))
    members = lab.l2_members
    for m in members:
        # Nothing learnt before: the members' kernels must find out through aliasd.
        lab.ip(m.ns, "route", "flush", "cache")
        lab.sysctl(m.ns, "net.ipv4.tcp_mtu_probing=0", "net.ipv4.ip_no_pmtu_disc=0")
        assert route_mtu(lab, m) is None, f"{m.name} has a path MTU cached already"
    before = lab.metric_sum("clua_icmp_errors_forwarded_total") or 0

    t0 = time.monotonic()
    r = lab.run(lab.far, sys.executable, "-c", CLIENT, WEB, str(CLIENTS), str(SIZE),
                str(DOWNLOAD_TIMEOUT), timeout=DOWNLOAD_TIMEOUT + 20)
    took = time.monotonic() - t0
    res = json.loads(r.stdout.strip().splitlines()[-1])
    forwarded = (lab.metric_sum("clua_icmp_errors_forwarded_total") or 0) - before
    drops = lab.metrics()
    icmp_drops = re.findall(r'^clua_dropped_packets_total\{reason="(icmp_error_\w+|unsupported_icmp)"\} (\S+)$',
                            drops, re.M)
    # Several workers (issue 12): errors that reached a worker without the quoted flow were
    # passed to the next one (clua_icmp_errors_handed_total, docs/workers.md).
    handed = lab.metric_sum("clua_icmp_errors_handed_total")
    detail = (f"\ndownloads ({took:.1f}s): {res}\nICMP errors forwarded: {forwarded}"
              f", passed between workers: {handed}\nICMP drops: {icmp_drops}")
    print(f"{lab.workers} worker(s): ICMP errors forwarded {forwarded}, passed between "
          f"workers {handed}")

    incomplete = [x for x in res if x["bytes"] != SIZE]
    assert not incomplete, f"{len(incomplete)} of {CLIENTS} downloads stalled" + detail
    served = {x["member"] for x in res}
    assert len(served) >= 2 and served <= {m.name for m in members}, detail
    assert forwarded > 0, "no ICMP error went through aliasd" + detail
    for m in members:
        if m.name in served:
            assert route_mtu(lab, m) == HOP_MTU, (
                f"{m.name} did not learn the hop's MTU: "
                f"{lab.run(m.ns, 'ip', 'route', 'get', labmod.FAR_IP).stdout}" + detail)
    print(detail)  # with -s: the spread, timings and counters
