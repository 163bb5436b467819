"""Counts, per flow, on which RX queue of a veth its frames arrive (issue 12, docs/workers.md).

Two AF_PACKET sockets in one PACKET_FANOUT_QM group on IFACE: socket i gets the frames whose
skb queue mapping mod 2 is i, the veth RX queue veth_xmit() put them on. Prints one JSON line:
flows seen only on queue 0, only on queue 1, and on both ("split").

    python3 veth_queue_count.py IFACE SECONDS
"""
import collections
import json
import select
import socket
import struct
import sys
import time

iface, secs = sys.argv[1], float(sys.argv[2])
ETH_P_ALL, SOL_PACKET, PACKET_FANOUT, FANOUT_QM = 3, 263, 18, 5
group = (sum(iface.encode()) * 31) & 0xffff  # a group per interface (ids are per netns)
socks = []
for _ in range(2):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    s.setsockopt(SOL_PACKET, PACKET_FANOUT, group | (FANOUT_QM << 16))
    s.setblocking(False)
    socks.append(s)
flows = collections.defaultdict(lambda: [0, 0])
end = time.time() + secs
while time.time() < end:
    ready, _, _ = select.select(socks, [], [], 0.1)
    for s in ready:
        q = socks.index(s)
        while True:
            try:
                f, addr = s.recvfrom(2048)
            except BlockingIOError:
                break
            if addr[2] == socket.PACKET_OUTGOING or len(f) < 38 or f[12:14] != b"\x08\x00":
                continue
            if f[23] not in (6, 17):
                continue
            key = (f[23], f[26:30], f[34:36], f[30:34], f[36:38])
            flows[key][q] += 1
only = [sum(1 for v in flows.values() if v[i] and not v[1 - i]) for i in range(2)]
print(json.dumps({"iface": iface, "flows": len(flows), "only_q0": only[0], "only_q1": only[1],
                  "split": sum(1 for v in flows.values() if v[0] and v[1])}))
