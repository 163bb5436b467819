#!/usr/bin/env python3
"""A member's real servers for the clua lab (stdlib only).

    member_server.py --name m1 --tcp 80 --tcp 22 --udp 53 [--hold] [--hold-tcp 8080]

TCP: for each connection read one request (an HTTP request up to the blank line, or one line),
answer ``HTTP/1.0 200 OK\\r\\n\\r\\nmember=m1 port=80 local=<addr> peer=<addr>\\n`` and close.  With
--hold (all ports) or on a --hold-tcp port the connection stays open afterwards and every further
line is answered with ``member=m1 port=P seq=N line=<text>\\n`` until the client closes.

UDP: every datagram is answered with ``member=m1 port=53 local=<dst addr> req=<first line>\\n``
sent FROM the address the datagram was sent to (IP_PKTINFO), as a direct-server-return member must.

Binds 0.0.0.0, prints ``member_server: ready`` on stdout once every socket is bound.
"""

import argparse
import signal
import socket
import struct
import sys
import threading
import zlib

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
REQ_TIMEOUT = 5.0
HOLD_IDLE = 600.0  # a held connection idle this long is closed (bounded)
MAX_REQ = 16384


def read_request(conn: socket.socket) -> bytes:
    conn.settimeout(REQ_TIMEOUT)
    buf = b""
    while len(buf) < MAX_REQ:
        try:
            chunk = conn.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        if b"\r\n\r\n" in buf or b"\n\n" in buf:
            break
        if b"\n" in buf:
            first = buf.split(b"\n", 1)[0]
            if b" HTTP/" not in first:  # a raw line, not an HTTP request with headers to come
                break
    return buf


def tcp_conn(conn: socket.socket, name: str, port: int, hold: bool):
    try:
        local = conn.getsockname()[0]
        peer = conn.getpeername()[0]
        req = read_request(conn)
        body = f"member={name} port={port} local={local} peer={peer}\n"
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + body.encode())
        if hold:
            conn.settimeout(HOLD_IDLE)
            seq = 0
            f = conn.makefile("rb")
            while True:
                line = f.readline(MAX_REQ)
                if not line:
                    break
                seq += 1
                text = line.decode(errors="replace").strip()
                conn.sendall(f"member={name} port={port} seq={seq} line={text}\n".encode())
        else:
            try:
                conn.shutdown(socket.SHUT_WR)
                # drain what the client may still send so that close() does not RST
                conn.settimeout(1.0)
                while conn.recv(4096):
                    pass
            except OSError:
                pass
    except OSError:
        pass
    finally:
        conn.close()


def tcp_server(port: int, name: str, hold: bool, ready: threading.Barrier):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(512)
    except OSError as e:
        print(f"member_server: tcp/{port}: {e}", file=sys.stderr, flush=True)
        ready.abort()
        return
    ready.wait()
    while True:
        conn, _ = s.accept()
        threading.Thread(target=tcp_conn, args=(conn, name, port, hold), daemon=True).start()


def udp_server(port: int, name: str, ready: threading.Barrier):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        s.bind(("0.0.0.0", port))
    except OSError as e:
        print(f"member_server: udp/{port}: {e}", file=sys.stderr, flush=True)
        ready.abort()
        return
    ready.wait()
    cmsg_space = socket.CMSG_SPACE(12)
    while True:
        data, anc, _flags, addr = s.recvmsg(65535, cmsg_space)
        dst = None
        for level, typ, cdata in anc:
            if level == socket.IPPROTO_IP and typ == IP_PKTINFO and len(cdata) >= 12:
                # struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
                dst = socket.inet_ntoa(cdata[8:12])
        req = data.split(b"\n", 1)[0][:200].decode(errors="replace")
        local = dst or "?"
        # len and crc: the datagram as the member's socket got it, so a test can tell that a
        # fragmented datagram arrived whole (issue 10).
        reply = (f"member={name} port={port} local={local} len={len(data)} "
                 f"crc={zlib.crc32(data):08x} req={req}\n").encode()
        anc_out = []
        if dst:
            anc_out = [(socket.IPPROTO_IP, IP_PKTINFO,
                        struct.pack("=i4s4s", 0, socket.inet_aton(dst), b"\0" * 4))]
        try:
            s.sendmsg([reply], anc_out, 0, addr)
        except OSError as e:
            print(f"member_server: udp send to {addr}: {e}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--tcp", type=int, action="append", default=[])
    ap.add_argument("--udp", type=int, action="append", default=[])
    ap.add_argument("--hold", action="store_true", help="keep every TCP connection open")
    ap.add_argument("--hold-tcp", type=int, action="append", default=[],
                    help="an extra TCP port whose connections stay open")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tcp = [(p, a.hold) for p in a.tcp] + [(p, True) for p in a.hold_tcp]
    ready = threading.Barrier(len(tcp) + len(a.udp) + 1, timeout=10)
    for port, hold in tcp:
        threading.Thread(target=tcp_server, args=(port, a.name, hold, ready), daemon=True).start()
    for port in a.udp:
        threading.Thread(target=udp_server, args=(port, a.name, ready), daemon=True).start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        print("member_server: failed to bind", flush=True)
        sys.exit(1)
    print(f"member_server: ready name={a.name} tcp={a.tcp} udp={a.udp} hold_tcp={a.hold_tcp}",
          flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
