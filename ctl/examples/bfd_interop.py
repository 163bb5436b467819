#!/usr/bin/env python3
"""BFD interop lab: clua_ctl::bfd against a real BIRD 2 (docs/bfd.md).

Two network namespaces joined by a veth pair, 198.51.100.0/24 only:

    bfdXXXX-a: BIRD, 198.51.100.1 on bfdXXXXa, `protocol bfd` with neighbor 198.51.100.2
    bfdXXXX-b: no address on bfdXXXXb; a raw AF_PACKET socket shuttles frames between the link
               and `bfd_peer` (ctl/examples/bfd_peer.rs, the library behind stdin/stdout),
               which speaks for 198.51.100.2

The run checks, with `birdc show bfd sessions`:
  1. BIRD's session comes Up;
  2. SIGKILL of our side: BIRD's session goes Down within its Detection Time (3 x 100 ms);
  3. a new run comes Up again, then `shutdown` (AdminDown, diag 7): BIRD goes Down at once.
It prints the first Control packet BIRD sent (hex, for the unit test in ctl/src/bfd/wire.rs).
Everything it made is removed at the end, even on failure. Needs root.

    cargo build -p clua-ctl --example bfd_peer
    sudo python3 ctl/examples/bfd_interop.py target/debug/examples/bfd_peer [--rip]

With --rip, BIRD runs RIP with `bfd yes` and no `neighbor` line (the lead's lab setup); the
shuttle sends RIPv2 responses for 203.0.113.5/32 from our address, and the run also checks that
BIRD drops that route within the Detection Time of the SIGKILL.
"""
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BIRD_ADDR = "198.51.100.1"
OUR_ADDR = "198.51.100.2"

BIRD_CONF = """\
router id {bird};
log "{log}" all;
protocol device {{ }}
protocol bfd {{
    interface "{ifname}" {{
        min rx interval 100 ms;
        min tx interval 100 ms;
        multiplier 3;
    }};
    neighbor {ours} dev "{ifname}";
}}
"""

# --rip: what the lead's lab uses. No `neighbor` line: RIP's `bfd yes` asks for a session with
# every RIP neighbor it hears (here the shuttle's hand-made RIPv2 responses for RIP_ROUTE).
BIRD_RIP_CONF = """\
router id {bird};
log "{log}" all;
protocol device {{ }}
protocol bfd {{
    interface "{ifname}" {{
        min rx interval 100 ms;
        min tx interval 100 ms;
        multiplier 3;
    }};
}}
protocol rip {{
    ipv4 {{ import all; export none; }};
    interface "{ifname}" {{ bfd yes; }};
}}
"""
RIP_ROUTE = "203.0.113.5/32"


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


# --- the shuttle: runs inside our namespace -------------------------------------------------

def ip_checksum(b):
    if len(b) % 2:
        b += b"\0"
    total = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def rip_response(mac, local):
    """A RIPv2 response (RFC 2453) from `local` to 224.0.0.9: RIP_ROUTE at metric 1."""
    addr, plen = RIP_ROUTE.split("/")
    mask = (0xFFFFFFFF << (32 - int(plen))) & 0xFFFFFFFF
    rip = struct.pack("!BBH", 2, 2, 0) + struct.pack(
        "!HH4sI4sI", 2, 0, socket.inet_aton(addr), mask, b"\0" * 4, 1)
    udp = struct.pack("!HHHH", 520, 520, 8 + len(rip), 0) + rip  # checksum 0: none
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(udp), 0, 0x4000, 1, 17, 0,
                     socket.inet_aton(local), socket.inet_aton("224.0.0.9"))
    ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
    eth = bytes.fromhex("01005e000009") + bytes.fromhex(mac.replace(":", "")) + b"\x08\x00"
    return eth + ip + udp


def shuttle(ifname, mac, local, peer, binary, rip="no"):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((ifname, 0))
    if rip == "rip":
        def rip_sender():
            while True:
                s.send(rip_response(mac, local))
                time.sleep(1)
        threading.Thread(target=rip_sender, daemon=True).start()
    child = subprocess.Popen([binary, mac, local, peer], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, bufsize=1)
    first = [True]

    def link_to_child():
        while True:
            frame, addr = s.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING or len(frame) < 42:
                continue
            if frame[12:14] != b"\x08\x00" or frame[23] != 17:
                continue
            ihl = (frame[14] & 0x0F) * 4
            dport = struct.unpack("!H", frame[14 + ihl + 2:14 + ihl + 4])[0]
            if dport != 3784:
                continue
            if first[0]:
                first[0] = False
                sys.stderr.write("BIRD-PACKET frame %s\n" % frame.hex())
                sys.stderr.flush()
            try:
                child.stdin.write(frame.hex() + "\n")
                child.stdin.flush()
            except (BrokenPipeError, ValueError):
                return  # bfd_peer exited (shutdown)

    def child_to_link():
        for line in child.stdout:
            s.send(bytes.fromhex(line.strip()))

    threading.Thread(target=link_to_child, daemon=True).start()
    threading.Thread(target=child_to_link, daemon=True).start()
    for line in sys.stdin:
        if line.strip() == "shutdown":
            child.stdin.write("shutdown\n")
            child.stdin.flush()
            child.wait(timeout=5)
            time.sleep(0.2)  # let child_to_link send the AdminDown frame
            return


# --- the orchestrator -----------------------------------------------------------------------

def bird_route(birdc, sock):
    out = sh(birdc, "-s", sock, "show", "route", RIP_ROUTE, check=False)
    return RIP_ROUTE in out, out


def bird_session(birdc, sock):
    out = sh(birdc, "-s", sock, "show", "bfd", "sessions", check=False)
    for line in out.splitlines():
        if line.startswith(OUR_ADDR):
            return line.split()[2], out
    return None, out


def wait_state(birdc, sock, want, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        state, out = bird_session(birdc, sock)
        # With RIP's `bfd yes`, BIRD deletes the session once RIP drops the neighbor.
        if (state == want) if want != "!Up" else (state != "Up"):
            return time.monotonic() - t0, out
        time.sleep(0.01)
    raise SystemExit("BIRD session never reached %s; last:\n%s" % (want, out))


def main():
    # A SIGTERM (timeout(1)) still removes what was made.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    binary = os.path.abspath(sys.argv[1])
    rip = len(sys.argv) > 2 and sys.argv[2] == "--rip"
    prefix = "bfd" + secrets.token_hex(2)
    ns_bird, ns_ours = prefix + "-a", prefix + "-b"
    if_bird, if_ours = prefix + "a", prefix + "b"
    tmp = tempfile.mkdtemp(prefix=prefix)
    bird = None
    shuttles = []
    failed = True
    try:
        sh("ip", "netns", "add", ns_bird)
        sh("ip", "netns", "add", ns_ours)
        # Created inside BIRD's namespace, peer moved straight into ours: the host's own
        # interfaces are never touched.
        sh("ip", "-n", ns_bird, "link", "add", if_bird, "type", "veth", "peer", "name", if_ours,
           "netns", ns_ours)
        for ns, ifn in ((ns_bird, if_bird), (ns_ours, if_ours)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", ifn, "up")
        sh("ip", "-n", ns_bird, "addr", "add", BIRD_ADDR + "/24", "dev", if_bird)
        # veth leaves UDP checksums to an offload that never happens on a raw socket (as
        # tests/lab.py notes): have BIRD's kernel compute them, else we refuse bad_checksum.
        sh("ip", "netns", "exec", ns_bird, "ethtool", "-K", if_bird, "tx", "off")
        mac = re.search(r"link/ether ([0-9a-f:]{17})",
                        sh("ip", "-n", ns_ours, "link", "show", if_ours)).group(1)
        # No address on our side (the kernel must not answer 3784 with ICMP): BIRD's kernel
        # gets our MAC from a static entry, as from aliasd's ARP responder.
        sh("ip", "-n", ns_bird, "neigh", "add", OUR_ADDR, "lladdr", mac, "dev", if_bird,
           "nud", "permanent")
        conf, sock = os.path.join(tmp, "bird.conf"), os.path.join(tmp, "bird.ctl")
        with open(conf, "w") as f:
            f.write((BIRD_RIP_CONF if rip else BIRD_CONF).format(bird=BIRD_ADDR, ours=OUR_ADDR, ifname=if_bird,
                                     log=os.path.join(tmp, "bird.log")))
        print("--- bird.conf\n" + open(conf).read())
        bird = subprocess.Popen(["ip", "netns", "exec", ns_bird, "bird", "-f", "-c", conf,
                                 "-s", sock])
        birdc = shutil.which("birdc") or "/usr/sbin/birdc"
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)

        def start_ours():
            p = subprocess.Popen(["ip", "netns", "exec", ns_ours, sys.executable,
                                  os.path.abspath(__file__), "--shuttle", if_ours, mac,
                                  OUR_ADDR, BIRD_ADDR, binary, "rip" if rip else "no"],
                                 stdin=subprocess.PIPE, text=True, start_new_session=True)
            shuttles.append(p)
            return p

        ours = start_ours()
        t, out = wait_state(birdc, sock, "Up", 15)
        print("1. BIRD session Up %.2f s after our side started:\n%s" % (t, out))

        if rip:
            t0 = time.monotonic()
            while not bird_route(birdc, sock)[0]:
                if time.monotonic() - t0 > 10:
                    raise SystemExit("BIRD never learnt " + RIP_ROUTE)
                time.sleep(0.05)
            print("1r. BIRD learnt the RIP route:\n" + bird_route(birdc, sock)[1])

        os.killpg(ours.pid, signal.SIGKILL)
        t_kill = time.monotonic()
        ours.wait()
        t, out = wait_state(birdc, sock, "!Up", 5)
        print("2. our side SIGKILLed: BIRD left Up after %.0f ms (detection time 300 ms):\n%s"
              % (t * 1000, out))
        if t > 0.6:
            raise SystemExit("too slow: %.0f ms" % (t * 1000))
        if rip:
            while bird_route(birdc, sock)[0]:
                if time.monotonic() - t_kill > 10:
                    raise SystemExit("BIRD kept the RIP route")
                time.sleep(0.01)
            print("2r. BIRD dropped the RIP route %.0f ms after SIGKILL (RIP alone: 180 s)\n%s"
                  % ((time.monotonic() - t_kill) * 1000, bird_route(birdc, sock)[1]))

        ours = start_ours()
        t, out = wait_state(birdc, sock, "Up", 15)
        print("3a. Up again after %.2f s" % t)
        ours.stdin.write("shutdown\n")
        ours.stdin.flush()
        t, out = wait_state(birdc, sock, "!Up", 5)
        print("3b. shutdown (AdminDown): BIRD left Up after %.0f ms:\n%s" % (t * 1000, out))
        ours.wait(timeout=5)
        print("--- bird.log (bfd lines)")
        for line in open(os.path.join(tmp, "bird.log")):
            if "bfd" in line.lower():
                print(line.rstrip())
        failed = False
    finally:
        for p in shuttles:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if bird is not None and bird.poll() is None:
            bird.terminate()
            bird.wait(timeout=5)
        for ns in (ns_ours, ns_bird):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--shuttle":
        shuttle(*sys.argv[2:8])
    else:
        sys.exit(main())
