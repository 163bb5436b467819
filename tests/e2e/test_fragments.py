"""IPv4 fragments end to end (issue 10; CA7, 000 §6.6.5: all fragments of a datagram reach the
member that owns its flow, whole; docs/alias-context.md "Fragments").

The client's kernel fragments 4000- and 8000-byte UDP datagrams (DF off, client LAN MTU 1500:
3 and 6 fragments); aliasd (AF_XDP, or AF_PACKET with CLUA_PMD=af_packet) forwards each
fragment to the member its first fragment selected; the member's kernel reassembles and its
UDP server (tests/servers/member_server.py, IP_PKTINFO) answers from the alias with the length
and CRC of what it got. Then a flood of lone fragments from a raw socket: counted, bounded,
and the datagrams after it still arrive.

Skipped when target/release/aliasd (or $CLUA_ALIASD) does not exist.
"""

import json
import sys
import time

import pytest

import lab as labmod

WEB = "198.51.100.100"
CLUSTER = "198.51.100.101"
LAB = dict(members=3, aliases=[WEB, CLUSTER], udp_ports=(53, 5300))
ALIASES = [
    {"name": "web", "address": WEB,
     "members": [{"name": "m1", "selw": 3}, {"name": "m2", "selw": 2}, {"name": "m3", "selw": 1}]},
    {"name": "cluster", "address": CLUSTER},
]
SERVICES = [
    {"name": "dns", "port": 53, "proto": "udp", "options": ["in_multi"]},
    {"name": "big", "port": 5300, "proto": "udp", "options": ["in_single"]},
]
METRICS = "127.0.0.1:9470"
SHARE_TOLERANCE = 5.0  # percentage points

# Sends COUNT datagrams of SIZE bytes (a token line, then a pattern) to TO, one at a time,
# with DF off so that the kernel fragments them; checks that each reply comes from the alias
# and reports the very length and CRC sent. Prints a JSON summary.
CLIENT = r"""
import json, socket, sys, time, zlib
to, port, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
IP_PMTUDISC_DONT = getattr(socket, "IP_PMTUDISC_DONT", 0)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)
by_member, bad = {}, []
for i in range(count):
    token = f"f{size}-{i}-{time.monotonic_ns() % 1000000}"
    head = (token + "\n").encode()
    data = head + bytes((i + k) % 251 for k in range(size - len(head)))
    want = f"len={len(data)} crc={zlib.crc32(data):08x}"
    s.sendto(data, (to, port))
    deadline = time.monotonic() + 2
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            bad.append(f"{token}: no reply")
            break
        s.settimeout(left)
        try:
            reply, src = s.recvfrom(65535)
        except socket.timeout:
            bad.append(f"{token}: no reply")
            break
        text = reply.decode(errors="replace")
        if f"req={token}" not in text:
            continue
        fields = dict(f.split("=", 1) for f in text.split() if "=" in f)
        if src != (to, port):
            bad.append(f"{token}: reply from {src}")
        elif f"len={fields.get('len')} crc={fields.get('crc')}" != want:
            bad.append(f"{token}: member got {fields.get('len')} bytes crc {fields.get('crc')}, sent {want}")
        else:
            m = fields.get("member", "?")
            by_member[m] = by_member.get(m, 0) + 1
        break
print(json.dumps({"ok": sum(by_member.values()), "by_member": by_member, "bad": bad[:10]}))
"""

# Lone fragments: COUNT IPv4 fragments (offset 1480, last, 64 bytes) to TO, each with its own
# identification, so none has a first fragment: a raw socket with the header written here.
FLOOD = r"""
import socket, struct, sys
src, to, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
payload = bytes(64)
for i in range(count):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), (0x8000 + i) & 0xffff,
                      1480 // 8, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(to))
    s.sendto(hdr + payload, (to, 0))
print(count)
"""


def py(lab, script: str, *args, timeout: float = 60) -> str:
    r = lab.run(lab.cli, sys.executable, "-c", script, *map(str, args), check=False,
                timeout=timeout)
    assert r.returncode == 0, f"client failed: {r.stdout}{r.stderr}"
    return r.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def aliasd(aliasd_bin, lab):
    if lab.pmd == "af_packet" and lab.pmd_queues > 1:
        # DPDK 22.11 opens net_af_packet's queues as one PACKET_FANOUT group, always with
        # PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles the datagram before aliasd sees
        # it, so there are no fragments to test (docs/workers.md).
        pytest.skip(f"net_af_packet with {lab.pmd_queues} queues reassembles fragments "
                    "(PACKET_FANOUT_FLAG_DEFRAG)")
    cfg = lab.write_aliasd_config(ALIASES, SERVICES, metrics=METRICS, default_alias="cluster")
    d = lab.start_aliasd(cfg, aliasd_bin, timeout=30)
    yield d
    if d.alive():
        d.stop(timeout=10)
    (lab.out_dir / "aliasd.stderr").write_text(d.stderr)


def tail(d) -> str:
    return "\naliasd stderr (tail):\n" + "\n".join(d.lines[-40:])


def drops(lab, reason: str) -> float:
    return lab.metric_sum("clua_dropped_packets_total", labels=f'reason="{reason}"') or 0.0


def send(lab, port: int, size: int, count: int) -> dict:
    return json.loads(py(lab, CLIENT, WEB, port, size, count))


@pytest.mark.parametrize("size", [4000, 8000])
def test_fragmented_udp_in_multi_arrives_whole_spread_by_selw(lab, aliasd, size):
    """60 datagrams of SIZE bytes to web:53 (in_multi, selw 3:2:1): every one reassembled whole
    at a member (same length and CRC), answered from the alias (CA12), spread 50/33/17 %
    (CA7, CA8); nothing dropped as a fragment."""
    n = 60
    rx0 = lab.metric_sum("clua_rx_packets_total") or 0.0
    res = send(lab, 53, size, n)
    # The client really fragmented (1480 payload bytes per fragment at MTU 1500) and aliasd
    # saw every fragment.
    frags = -(-(size + 8) // 1480)
    rx = (lab.metric_sum("clua_rx_packets_total") or 0.0) - rx0
    assert rx >= n * frags, f"aliasd received {rx} packets for {n} x {frags} fragments"
    assert res["ok"] == n and not res["bad"], f"{res}" + tail(aliasd)
    got = {m: 100.0 * c / n for m, c in res["by_member"].items()}
    for m, pct in {"m1": 50.0, "m2": 100 / 3, "m3": 100 / 6}.items():
        assert abs(got.get(m, 0.0) - pct) <= SHARE_TOLERANCE, f"{m}: {res}" + tail(aliasd)
    assert set(res["by_member"]) == {"m1", "m2", "m3"}, f"{res}" + tail(aliasd)
    for reason in ("fragment", "fragment_malformed", "fragment_table_full", "too_big"):
        assert drops(lab, reason) == 0, f"{reason} drops" + tail(aliasd)


def test_fragmented_udp_in_single_goes_to_the_active_member(lab, aliasd):
    """in_single udp/5300: 10 datagrams of 4000 bytes, all whole, all to the first joined
    member (m1)."""
    res = send(lab, 5300, 4000, 10)
    assert res["ok"] == 10 and not res["bad"], f"{res}" + tail(aliasd)
    assert res["by_member"] == {"m1": 10}, f"{res}" + tail(aliasd)


def test_lone_fragment_flood_is_bounded_and_counted(lab, aliasd):
    """3000 lone fragments (no first fragment ever): at most max_held (128) are held at a
    time, each held one times out, the rest are dropped as fragment_hold_full; every one is
    counted; the connection table is untouched (no evictions) and fragmented datagrams still
    arrive whole right after."""
    n = 3000
    held0 = lab.metric_sum("clua_fragments_held_total") or 0.0
    full0 = drops(lab, "fragment_hold_full")
    evict0 = lab.metric_sum("clua_conn_evictions_total") or 0.0
    assert int(py(lab, FLOOD, labmod.CLIENT_IP, WEB, n)) == n
    # Held fragments time out after timeout_ms (2000) and are counted on release.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        held = (lab.metric_sum("clua_fragments_held_total") or 0.0) - held0
        timed_out = drops(lab, "fragment_timeout")
        full = drops(lab, "fragment_hold_full") - full0
        if held + full >= n and timed_out >= held:
            break
        time.sleep(0.25)
    assert held + full == n, f"held {held} + hold_full {full} != {n}" + tail(aliasd)
    assert 0 < held <= 128 * 2, f"held {held}: max_held bounds what waits" + tail(aliasd)
    assert timed_out == held, f"timed out {timed_out}, held {held}" + tail(aliasd)
    assert (lab.metric_sum("clua_conn_evictions_total") or 0.0) == evict0
    res = send(lab, 53, 4000, 12)
    assert res["ok"] == 12 and not res["bad"], f"after the flood: {res}" + tail(aliasd)
