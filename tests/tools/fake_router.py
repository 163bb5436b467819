#!/usr/bin/env python3
"""A deliberately tiny stand-in for aliasd's data plane (stdlib, AF_PACKET), used only to prove
the lab's direct-server-return plumbing without aliasd:

    fake_router.py --client-if P-rc --client-mac 02:00:00:00:00:01 \\
        --l2 198.51.100.100=P-r0,02:00:00:00:00:02,02:00:00:00:01:01,02:00:00:00:01:02 \\
        --vxlan 198.51.100.102=P-r1,02:00:00:00:00:03,192.0.2.130,192.0.2.141,02:00:00:00:02:01,02:00:00:00:02:81,42 \\
        --seconds 60

Answers ARP for the aliases on the client port; forwards each IPv4 frame for an alias to a member
chosen by a hash of its addresses and ports: ``l2`` rewrites the MACs, ``vxlan`` wraps the frame
(inner destination MAC = the member's VXLAN device).  Exits after --seconds.
"""

import argparse
import hashlib
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806


def mac_b(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def raw(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client-if", required=True)
    ap.add_argument("--client-mac", required=True)
    ap.add_argument("--l2", action="append", default=[])
    ap.add_argument("--vxlan", action="append", default=[])
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()

    cli = raw(a.client_if)
    cli_mac = mac_b(a.client_mac)
    socks = {}
    aliases = {}  # alias bytes -> (kind, params)
    for spec in a.l2:
        addr, rest = spec.split("=")
        ifn, src, *members = rest.split(",")
        socks.setdefault(ifn, raw(ifn))
        aliases[socket.inet_aton(addr)] = ("l2", socks[ifn], mac_b(src), [mac_b(m) for m in members])
    for spec in a.vxlan:
        addr, rest = spec.split("=")
        ifn, src, src_ip, dst_ip, dst_mac, inner_mac, vni = rest.split(",")
        socks.setdefault(ifn, raw(ifn))
        aliases[socket.inet_aton(addr)] = ("vxlan", socks[ifn], mac_b(src), socket.inet_aton(src_ip),
                                           socket.inet_aton(dst_ip), mac_b(dst_mac),
                                           mac_b(inner_mac), int(vni))
    print("fake_router: ready", flush=True)
    deadline = time.monotonic() + a.seconds
    fwd = 0
    while time.monotonic() < deadline:
        r, _, _ = select.select([cli], [], [], 0.5)
        if not r:
            continue
        frame, addr = cli.recvfrom(65535)
        if addr[2] == socket.PACKET_OUTGOING or len(frame) < 42:
            continue
        etype = struct.unpack("!H", frame[12:14])[0]
        if etype == ETH_P_ARP:
            op = struct.unpack("!H", frame[20:22])[0]
            tpa = frame[38:42]
            if op == 1 and tpa in aliases:
                sha, spa = frame[22:28], frame[28:32]
                rep = (sha + cli_mac + struct.pack("!H", ETH_P_ARP) + frame[14:20]
                       + struct.pack("!H", 2) + cli_mac + tpa + sha + spa)
                cli.send(rep)
            continue
        if etype != ETH_P_IP:
            continue
        ip = frame[14:]
        dst = ip[16:20]
        if dst not in aliases:
            continue
        ihl = (ip[0] & 0x0F) * 4
        key = ip[12:20] + bytes([ip[9]]) + ip[ihl:ihl + 4]
        # Not crc32: it is linear over GF(2), and Linux picks ephemeral ports in steps of 2, so
        # crc32(key) % n can be the same for every connection of a client.
        h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")
        al = aliases[dst]
        if al[0] == "l2":
            _, sock, src, members = al
            sock.send(members[h % len(members)] + src + frame[12:])
        else:
            _, sock, src, src_ip, dst_ip, dst_mac, inner_mac, vni = al
            inner = inner_mac + src + frame[12:]
            udp_len = 8 + 8 + len(inner)
            vx = struct.pack("!II", 0x08000000, vni << 8)
            udp = struct.pack("!HHHH", 49152 + (h & 0x3FFF), 4789, udp_len, 0)
            iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0,
                              src_ip, dst_ip)
            iph = iph[:10] + struct.pack("!H", csum(iph)) + iph[12:]
            sock.send(dst_mac + src + struct.pack("!H", ETH_P_IP) + iph + udp + vx + inner)
        fwd += 1
    print(f"fake_router: forwarded {fwd}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
