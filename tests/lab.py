"""clua network-namespace lab.

Builds a small cluster-alias network out of network namespaces, veth pairs and Linux bridges,
without ever touching the root namespace's interfaces, routes or sysctls:

    P-cli  198.51.100.10/24 ----+
                                |  P-bc (client LAN bridge, MTU 1500)          in P-sw
    P-gw   198.51.100.1/24 -----+-------------------- P-rc  (02:00:00:00:00:01)  in P-rtr
           192.0.2.1/25   ----- P-b0 (ic0 bridge) --- P-r0  (02:00:00:00:00:02)  in P-rtr
           192.0.2.129/25 ----- P-b1 (ic1 bridge) --- P-r1  (02:00:00:00:00:03)  in P-rtr
    P-m1..mN 192.0.2.11.. on P-b0   (l2 members)
    P-v1..vK 192.0.2.141.. on P-b1  (vxlan members, VXLAN device P-vx id 42, dstport 4789)

With ``Lab(routers=N)`` (N = 2, 3) routers 2 and 3 are namespaces P-rt2 / P-rt3 with ports
P-r2c/P-r20/P-r21 and P-r3c/P-r30/P-r31 on the same three bridges (MACs 02:00:00:00:k0:01..03,
aliasd addresses 198.51.100.(1+k), 192.0.2.(1+k), 192.0.2.(129+k)); ``Lab(far=True)`` adds
P-far 203.0.113.194/26, a client in another subnet behind P-gw (203.0.113.193/26, veth P-f/P-gf).
BIRD 2 (``start_bird``) runs in P-gw as the upstream RIP/BFD router.

P is a per-run prefix ("cl" + 4 hex digits).  aliasd runs in P-rtr and takes P-rc/P-r0/P-r1 with
the PMD of ``Lab(pmd=...)`` or CLUA_PMD (PMD_KINDS; default DEFAULT_PMD): af_xdp and af_packet
on the veths themselves; tap and virtio_user on persistent taps P-rct/P-r0t/P-r1t that nftables
netdev ``fwd`` rules join to the veths (docs/lab-pmd.md).  Members hold the aliases on lo and
reply straight to the client through P-gw (direct server return).

Use as a context manager (``with Lab(members=3) as lab: ...``); everything the lab created is
removed on exit, at interpreter exit (atexit) and on SIGTERM/SIGINT.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SERVER = TESTS / "servers" / "member_server.py"
CLIENT = TESTS / "clients" / "client.py"
LONGLIVED = TESTS / "clients" / "longlived.py"
FTP_CLIENTS = TESTS / "clients" / "ftp_clients.py"
FTP_DATA_SIZE = 256 * 1024  # data.bin of every member's vsftpd (tests/clients/ftp_clients.py)
STATE_DIR = Path(os.environ.get("CLUA_LAB_STATE", "/tmp/clua-lab"))

CLIENT_IP = "198.51.100.10"
CLIENT_MAC = "02:00:00:00:00:10"
GW_CLI_IP = "198.51.100.1"
GW_IC0_IP = "192.0.2.1"
GW_IC1_IP = "192.0.2.129"
RTR_CLI_IP = "198.51.100.2"  # aliasd's own address on the client port (not a kernel address)
RTR_IC0_IP = "192.0.2.2"
RTR_IC1_IP = "192.0.2.130"
RTR_MACS = {"client": "02:00:00:00:00:01", "ic0": "02:00:00:00:00:02", "ic1": "02:00:00:00:00:03"}
MAX_ROUTERS = 3
# Router k's aliasd addresses (not kernel addresses) and MACs; router 1 keeps the historic ones.
RTR_CLI_IPS = {k: f"198.51.100.{1 + k}" for k in range(1, MAX_ROUTERS + 1)}
RTR_IC0_IPS = {k: f"192.0.2.{1 + k}" for k in range(1, MAX_ROUTERS + 1)}
RTR_IC1_IPS = {k: f"192.0.2.{129 + k}" for k in range(1, MAX_ROUTERS + 1)}
FAR_IP = "203.0.113.194"
GW_FAR_IP = "203.0.113.193"
FAR_PREFIX_LEN = 26  # 203.0.113.192/26: outside the lab's virtual aliases (203.0.113.0/25)
IC_MTU = 1600
CLI_MTU = 1500
VXLAN_VNI = 42
VXLAN_PORT = 4789
PREFIX_RE = re.compile(r"^cl[0-9a-f]{4}$")

_ALLOWED_NETS = ("198.51.100.", "192.0.2.", "203.0.113.")


def router_macs(k: int) -> dict:
    """Router k's port MACs: router 1 02:00:00:00:00:0X (as ever), router k 02:00:00:00:k0:0X
    (members use 02:00:00:00:01:.. and 02:00:00:00:02:.., so k0 never collides)."""
    if k == 1:
        return dict(RTR_MACS)
    return {"client": f"02:00:00:00:{k}0:01", "ic0": f"02:00:00:00:{k}0:02",
            "ic1": f"02:00:00:00:{k}0:03"}


def _check_addr(addr: str) -> str:
    if not addr.split("/")[0].startswith(_ALLOWED_NETS):
        raise ValueError(f"lab address {addr} outside the documentation ranges")
    return addr


class LabError(RuntimeError):
    pass


def aliasd_binary() -> Path:
    """The router binary: $CLUA_ALIASD or target/release/aliasd."""
    return Path(os.environ.get("CLUA_ALIASD") or ROOT / "target" / "release" / "aliasd")


def member_binary() -> Path:
    """The member agent binary (clua-member, no DPDK): $CLUA_MEMBER, else the clua-member
    beside aliasd_binary() (same build, same directory)."""
    env = os.environ.get("CLUA_MEMBER")
    return Path(env) if env else aliasd_binary().with_name("clua-member")


def cluamgr_binary() -> Path:
    """cluamgr: $CLUA_CLUAMGR, else the one beside aliasd_binary()."""
    env = os.environ.get("CLUA_CLUAMGR")
    return Path(env) if env else aliasd_binary().with_name("cluamgr")


@dataclass
class Router:
    k: int  # 1..MAX_ROUTERS
    ns: str
    cli_if: str
    ic0_if: str
    ic1_if: str
    macs: dict  # port name -> MAC
    cli_ip: str
    ic0_ip: str
    ic1_ip: str

    @property
    def ifaces(self) -> tuple:
        return (self.cli_if, self.ic0_if, self.ic1_if)


@dataclass
class Member:
    name: str  # m1, v1 (also the aliasd member name)
    ns: str  # full namespace name
    ifname: str  # its interconnect interface (inside ns)
    address: str
    mac: str
    port: str  # aliasd port name: ic0 | ic1
    encap: str  # l2 | vxlan
    vx_ifname: str | None = None
    inner_mac: str | None = None
    server: subprocess.Popen | None = field(default=None, repr=False)


class AliasdError(LabError):
    pass


class Aliasd:
    """A running aliasd in P-rtr; stderr is captured line by line into ``lines``."""

    def __init__(self, lab: "Lab", proc: subprocess.Popen, config: str):
        self.lab = lab
        self.proc = proc
        self.config = config
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stderr(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> bool:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if any(rx.search(l) for l in self.lines):
                    return True
                if self.proc.poll() is not None and not self._reader.is_alive():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL) -> float:
        """Send ``sig`` to aliasd itself (not its group: the exec chain kept our child's pid);
        returns time.monotonic() just before the signal. Follow with stop() to reap it."""
        t = time.monotonic()
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        return t

    def stop(self, timeout: float = 10) -> int | None:
        rc = self.lab.stop(self.proc, timeout=timeout)
        self._reader.join(2)
        # `ip netns exec` and `sh -c 'exec ...'` both exec, so aliasd kept our child's pid; its
        # EAL runtime dir (--file-prefix clua-<pid>) is left in /var/run/dpdk: remove it
        import shutil
        shutil.rmtree(f"/var/run/dpdk/clua-{self.proc.pid}", ignore_errors=True)
        return rc


# ---------------------------------------------------------------- cleanup of every live lab
_LIVE: "set[Lab]" = set()
_HANDLERS_INSTALLED = False


def _cleanup_all():
    for lab in list(_LIVE):
        try:
            lab.down()
        except Exception as e:  # pragma: no cover - best effort at exit
            print(f"lab: cleanup of {lab.prefix} failed: {e}", file=sys.stderr)


def _on_signal(signum, frame):
    _cleanup_all()
    prev = _PREV_HANDLERS.get(signum)
    if callable(prev):
        prev(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


_PREV_HANDLERS: dict = {}


def _install_handlers():
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    atexit.register(_cleanup_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                _PREV_HANDLERS[sig] = signal.getsignal(sig)
                signal.signal(sig, _on_signal)
            except (ValueError, OSError):
                pass
    _HANDLERS_INSTALLED = True


def new_prefix() -> str:
    existing = set(netns_list())
    while True:
        p = "cl" + secrets.token_hex(2)
        if not any(n.startswith(p + "-") for n in existing):
            return p


def netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [l.split()[0] for l in out.splitlines() if l.strip()]


# The data-plane PMDs the lab can give aliasd (env CLUA_PMD). af_xdp and af_packet attach to the
# router's veths; tap and virtio_user each open a tap device of their own (P-rct for P-rc, ...)
# that the lab joins to the veth (Lab._plumb_taps). docs/lab-pmd.md has the measurements that
# chose the default.
PMD_KINDS = ("af_xdp", "af_packet", "tap", "virtio_user")
DEFAULT_PMD = "af_xdp"
TAP_KINDS = ("tap", "virtio_user")  # the PMD is a tap device's file descriptor
VHOST_NET = Path("/dev/vhost-net")
NET_TUN = Path("/dev/net/tun")
VIRTIO_QUEUE_SIZE = 1024


class PmdUnavailable(LabError):
    """This machine cannot run the lab with that PMD (``reason`` says what is missing); tests
    skip with it (tests/conftest.py)."""

    def __init__(self, kind: str, reason: str):
        super().__init__(f"lab PMD {kind} unavailable here: {reason}")
        self.kind, self.reason = kind, reason


def pmd_kind() -> str:
    """The lab's PMD: $CLUA_PMD, else DEFAULT_PMD."""
    kind = (os.environ.get("CLUA_PMD") or DEFAULT_PMD).strip().lower()
    if kind not in PMD_KINDS:
        raise LabError(f"CLUA_PMD must be one of {', '.join(PMD_KINDS)}, not {kind!r}")
    return kind


def pmd_unavailable(kind: str) -> str | None:
    """Why ``kind`` cannot run here (None: it can, as far as the device nodes tell)."""
    if kind not in PMD_KINDS:
        return f"unknown PMD {kind!r} (one of {', '.join(PMD_KINDS)})"
    if kind in TAP_KINDS and not NET_TUN.exists():
        return f"{NET_TUN} is missing (the kernel's tun/tap driver, CONFIG_TUN)"
    if kind == "virtio_user" and not VHOST_NET.exists():
        # virtio_user with path=/dev/vhost-net is a virtio-net device whose backend is the
        # kernel's vhost-net worker feeding a tap: without the device node there is no backend.
        return (f"{VHOST_NET} is missing: this kernel has no vhost-net (CONFIG_VHOST_NET, "
                "module vhost_net; /proc/misc lists no vhost-net), which virtio_user's "
                "vhost-kernel backend needs")
    return None


def pmd_iface(kind: str, veth: str) -> str:
    """The kernel interface a ``kind`` PMD opens for the router veth ``veth``: the veth itself
    (af_xdp, af_packet) or its tap (tap, virtio_user: ``veth`` + "t", at most 15 bytes)."""
    if kind in TAP_KINDS:
        name = veth + "t"
        if len(name) > 15:
            raise LabError(f"tap name {name!r} longer than 15 bytes (IFNAMSIZ)")
        return name
    return veth


AF_PACKET_FRAMES = int(os.environ.get("CLUA_AF_PACKET_FRAMES", "4096"))


def devargs(kind: str, index: int, iface: str, queues: int = 1, mac: str | None = None) -> str:
    """The vdev of a lab port: PMD ``kind``, DPDK device number ``index``, kernel interface
    ``iface`` (pmd_iface()), ``queues`` queue pairs where the PMD takes a count, ``mac`` the
    device's MAC where the PMD takes one (tap, virtio_user: aliasd then finds the configured
    MAC already in place instead of relying on set_mac or promiscuous mode)."""
    if queues < 1:
        raise ValueError(f"queues must be >= 1, not {queues}")
    if kind == "af_xdp":
        extra = f",start_queue=0,queue_count={queues}" if queues > 1 else ""
        return f"net_af_xdp{index},iface={iface}{extra}"
    if kind == "af_packet":
        # Several queues are one PACKET_FANOUT group whose rollover flag DPDK 22.11 always
        # sets: a queue whose ring is full passes frames to another queue, hence another
        # worker, which then sees a flow it does not hold. A deep ring (4096 frames, the
        # default 512) rides out a worker's few milliseconds off the CPU it shares.
        extra = f",qpairs={queues},framecnt={AF_PACKET_FRAMES}" if queues > 1 else ""
        return f"net_af_packet{index},iface={iface}{extra}"
    mac_arg = f",mac={mac}" if mac else ""
    if kind == "tap":
        # net_tap opens one tap queue per ethdev queue the application configures: no count
        return f"net_tap{index},iface={iface}{mac_arg}"
    if kind == "virtio_user":
        extra = f",queues={queues}" if queues > 1 else ""
        return (f"virtio_user{index},path={VHOST_NET},iface={iface},"
                f"queue_size={VIRTIO_QUEUE_SIZE}{extra}{mac_arg}")
    raise LabError(f"unknown PMD kind {kind!r} (one of {', '.join(PMD_KINDS)})")


def multiqueue_pmd(kind: str, workers: int) -> str:
    """The PMD a lab with ``workers`` workers uses instead of ``kind``.  DPDK 22.11's net_af_xdp
    sizes its queues by the interface's ethtool *combined* channels, and a veth has none (it
    reports separate RX and TX counts), so the PMD refuses queue_count > 1 on a veth
    ("Specified queue count 2 is larger than combined queue count 1"): several workers need
    net_af_packet (qpairs, one PACKET_FANOUT_HASH socket per queue, docs/workers.md)."""
    if workers > 1 and kind == "af_xdp":
        return "af_packet"
    return kind


def workers_default() -> int:
    """Workers per aliasd in the lab: env CLUA_WORKERS, else 1 (issue 12)."""
    v = os.environ.get("CLUA_WORKERS", "1").strip() or "1"
    try:
        n = int(v)
    except ValueError:
        raise LabError(f"CLUA_WORKERS must be an integer, not {v!r}") from None
    if not 1 <= n <= 8:
        raise LabError(f"CLUA_WORKERS must be 1..8, not {n}")
    return n


def round_robin_ok(by_member: dict, weights: dict, workers: int) -> bool:
    """Whether connections counted ``by_member`` are what in_multi's round robin (selw
    ``weights``) gives with ``workers`` workers. One worker: exactly the weights' shares of
    the total (the test picks a total of whole turns). Several: each worker has its own
    cursor (docs/workers.md), so each worker's connections are a window of the schedule,
    within one partial turn (fewer than w_i) of member i's share; over the workers, fewer
    than workers * w_i off, and the total exact. Members without weight get nothing."""
    total, weight = sum(by_member.values()), sum(weights.values())
    if set(by_member) - set(weights):
        return False
    share = {m: total * w / weight for m, w in weights.items()}
    if workers == 1:
        return all(by_member.get(m, 0) == share[m] for m in weights)
    return all(abs(by_member.get(m, 0) - share[m]) < workers * w for m, w in weights.items())


def dpdk_lcores(workers: int, cpus: int | None = None) -> dict:
    """[dpdk] keys for ``workers`` workers: lcores 1..N.  With fewer CPUs than lcores, an EAL
    --lcores map puts lcore k on CPU k mod cpus (on 2 CPUs: worker 0 alone on CPU 1, worker 1
    beside the control thread on CPU 0), since EAL refuses -l naming a CPU that does not exist."""
    cpus = cpus or os.cpu_count() or 1
    keys = {"main_lcore": 0, "worker_lcores": list(range(1, workers + 1))}
    if workers + 1 > cpus:
        keys["lcores"] = ",".join(f"{k}@{k % cpus}" for k in range(workers + 1))
    return keys


def _toml_str(s: str) -> str:
    return json.dumps(s)  # JSON strings are valid TOML basic strings


def _toml_val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_val(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def toml_dumps(doc: dict) -> str:
    """A tiny TOML writer for aliasd configs: top-level tables and arrays of tables."""
    out: list[str] = []
    for key, val in doc.items():
        if isinstance(val, dict):
            out.append(f"[{key}]")
            out += [f"{k} = {_toml_val(v)}" for k, v in val.items()]
            out.append("")
        elif isinstance(val, list) and val and all(isinstance(x, dict) for x in val):
            for tbl in val:
                out.append(f"[[{key}]]")
                out += [f"{k} = {_toml_val(v)}" for k, v in tbl.items()]
                out.append("")
        else:
            out.insert(0, f"{key} = {_toml_val(val)}")
    return "\n".join(out)


class Lab:
    """The namespace lab.  Parameters:

    members         number of l2 members on ic0 (m1..mN, 192.0.2.11.., 02:00:00:00:01:0X)
    vxlan_members   number of vxlan members on ic1 (v1..vK, 192.0.2.141.., 02:00:00:00:02:0X)
    aliases         alias addresses put on every member's lo (/32)
    member_aliases  optional {member_name: [addresses]} overriding ``aliases`` per member
    tcp_ports, udp_ports, hold_ports   ports of the member servers (tests/servers/member_server.py)
    servers         start member servers (default True)
    prefix          force a prefix (default: random cl + 4 hex)
    pmd             aliasd's PMD in ports()/configs (default pmd_kind(): $CLUA_PMD, else
                    DEFAULT_PMD); up() raises PmdUnavailable when this machine cannot run it
    workers         workers per aliasd (default env CLUA_WORKERS, else 1; issue 12): [dpdk]
                    worker_lcores, the routers' veths and the PMDs get that many queues
    sync_section    write aliasd's [sync] table (issue 9) with a per-router flows_file in
                    out_dir: True always, False never, None (default) when the aliasd binary
                    knows [sync] (aliasd_knows_sync(): today's aliasd rejects unknown tables)
    """

    def __init__(self, members: int = 3, vxlan_members: int = 0,
                 aliases: Iterable[str] = ("198.51.100.100",),
                 member_aliases: dict | None = None,
                 tcp_ports: Sequence[int] = (80, 22), udp_ports: Sequence[int] = (53,),
                 hold_ports: Sequence[int] = (), servers: bool = True,
                 prefix: str | None = None, out_dir: str | os.PathLike | None = None,
                 verbose: bool = False, routers: int = 1, far: bool = False,
                 sync_section: bool | None = None, pmd: str | None = None,
                 workers: int | None = None):
        if not 0 <= members <= 9 or not 0 <= vxlan_members <= 9:
            raise ValueError("members and vxlan_members must be 0..9")
        if not 1 <= routers <= MAX_ROUTERS:
            raise ValueError(f"routers must be 1..{MAX_ROUTERS}")
        self.n_routers = routers
        # Workers per aliasd (issue 12): that many RX/TX queues on the routers' veths and PMDs.
        self.workers = workers if workers is not None else workers_default()
        if not 1 <= self.workers <= 8:
            raise ValueError("workers must be 1..8")
        self.far_client = far
        self.sync_section = sync_section
        self.ftp_procs: dict = {}  # member name -> vsftpd Popen
        self.client_addrs: list[str] = []
        self.n_members = members
        self.n_vxlan = vxlan_members
        self.aliases = [_check_addr(a) for a in aliases]
        self.member_aliases = member_aliases or {}
        self.tcp_ports = list(tcp_ports)
        self.udp_ports = list(udp_ports)
        self.hold_ports = list(hold_ports)
        self.start_servers = servers
        self.prefix = prefix or new_prefix()
        if not PREFIX_RE.match(self.prefix):
            raise ValueError(f"bad prefix {self.prefix!r}")
        self.verbose = verbose
        self.out_dir = Path(out_dir) if out_dir else ROOT / "lab-out" / self.prefix
        self.pmd = multiqueue_pmd(pmd or pmd_kind(), self.workers)
        if self.pmd not in PMD_KINDS:
            raise ValueError(f"pmd must be one of {', '.join(PMD_KINDS)}, not {self.pmd!r}")
        self.pmd_queues = self.workers  # queue pairs per router port (the taps' multi_queue follows it)
        self.plumbed: dict = {}  # router namespace -> the tap kind its taps are made for
        self.created_ns: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.members: list[Member] = []
        self.is_up = False
        self.persist = False  # scripts/lab: record state, outlive this process
        self._down_lock = threading.RLock()
        P = self.prefix
        # names ------------------------------------------------------------------------------
        self.sw, self.cli, self.gw, self.rtr = (f"{P}-sw", f"{P}-cli", f"{P}-gw", f"{P}-rtr")
        self.br_cli, self.br_ic0, self.br_ic1 = f"{P}-bc", f"{P}-b0", f"{P}-b1"
        self.cli_if = f"{P}-c"
        self.gw_cli_if, self.gw_ic0_if, self.gw_ic1_if = f"{P}-gc", f"{P}-g0", f"{P}-g1"
        self.rtr_cli_if, self.rtr_ic0_if, self.rtr_ic1_if = f"{P}-rc", f"{P}-r0", f"{P}-r1"
        self.routers: list[Router] = [Router(1, self.rtr, self.rtr_cli_if, self.rtr_ic0_if,
                                             self.rtr_ic1_if, router_macs(1), RTR_CLI_IPS[1],
                                             RTR_IC0_IPS[1], RTR_IC1_IPS[1])]
        for k in range(2, routers + 1):
            self.routers.append(Router(k, f"{P}-rt{k}", f"{P}-r{k}c", f"{P}-r{k}0",
                                       f"{P}-r{k}1", router_macs(k), RTR_CLI_IPS[k],
                                       RTR_IC0_IPS[k], RTR_IC1_IPS[k]))
        self.far = f"{P}-far"
        self.far_if, self.gw_far_if = f"{P}-f", f"{P}-gf"
        self.bird_proc: subprocess.Popen | None = None
        self.last_arp_sent: float | None = None
        self.bird_sock = self.out_dir / "bird.ctl"
        for i in range(1, members + 1):
            self.members.append(Member(
                name=f"m{i}", ns=f"{P}-m{i}", ifname=f"{P}-m{i}", address=f"192.0.2.{10 + i}",
                mac=f"02:00:00:00:01:{i:02x}", port="ic0", encap="l2"))
        for i in range(1, vxlan_members + 1):
            self.members.append(Member(
                name=f"v{i}", ns=f"{P}-v{i}", ifname=f"{P}-v{i}", address=f"192.0.2.{140 + i}",
                mac=f"02:00:00:00:02:{i:02x}", port="ic1", encap="vxlan",
                vx_ifname=f"{P}-vx{i}", inner_mac=f"02:00:00:00:02:{0x80 + i:02x}"))

    # ------------------------------------------------------------------------------- helpers
    def ns(self, name: str) -> str:
        """Full namespace name for a short name (sw, cli, gw, rtr, m1, v1) or a full name."""
        if name.startswith(self.prefix + "-"):
            return name
        return f"{self.prefix}-{name}"

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def l2_members(self) -> list[Member]:
        return [m for m in self.members if m.encap == "l2"]

    @property
    def vxlan_member_list(self) -> list[Member]:
        return [m for m in self.members if m.encap == "vxlan"]

    def router(self, k: int = 1) -> Router:
        if not 1 <= k <= self.n_routers:
            raise KeyError(f"router {k} (this lab has {self.n_routers})")
        return self.routers[k - 1]

    def all_namespaces(self) -> list[str]:
        extra = [r.ns for r in self.routers[1:]] + ([self.far] if self.far_client else [])
        return [self.sw, self.cli, self.gw, self.rtr] + extra + [m.ns for m in self.members]

    def link_names(self) -> list[str]:
        names = [self.br_cli, self.br_ic0, self.br_ic1, self.cli_if, self.gw_cli_if,
                 self.gw_ic0_if, self.gw_ic1_if, self.rtr_cli_if, self.rtr_ic0_if,
                 self.rtr_ic1_if]
        for m in self.members:
            names.append(m.ifname)
            if m.vx_ifname:
                names.append(m.vx_ifname)
        names += [n + "s" for n in (self.cli_if, self.gw_cli_if, self.gw_ic0_if, self.gw_ic1_if,
                                    self.rtr_cli_if, self.rtr_ic0_if, self.rtr_ic1_if)]
        names += [m.ifname + "s" for m in self.members]
        for r in self.routers[1:]:
            names += list(r.ifaces) + [i + "s" for i in r.ifaces]
        if self.far_client:
            names += [self.far_if, self.gw_far_if]
        if self.pmd in TAP_KINDS:
            names += [pmd_iface(self.pmd, i) for r in self.routers for i in r.ifaces]
        return names

    def _log(self, msg: str):
        if self.verbose:
            print(f"lab[{self.prefix}]: {msg}", file=sys.stderr)

    @staticmethod
    def _sh(cmd: Sequence[str], check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                           input=input)
        if check and r.returncode != 0:
            raise LabError(f"command failed ({r.returncode}): {shlex.join(cmd)}\n"
                           f"{r.stdout}{r.stderr}")
        return r

    def run(self, ns: str, *cmd: str, check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside namespace ``ns`` (short or full name); text output captured."""
        if len(cmd) == 1 and " " in cmd[0]:
            cmd = ("sh", "-c", cmd[0])
        return self._sh(["ip", "netns", "exec", self.ns(ns), *cmd], check=check,
                        timeout=timeout, input=input)

    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._sh(["ip", "-n", self.ns(ns), *args], check=check)

    def sysctl(self, ns: str, *settings: str, check: bool = True):
        return self.run(ns, "sysctl", "-q", "-w", *settings, check=check)

    def popen(self, ns: str, *cmd: str, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, env: dict | None = None, **kw) -> subprocess.Popen:
        """Start ``cmd`` in ``ns`` in its own process group; stopped (by pgid) at teardown."""
        if len(cmd) == 1 and " " in cmd[0]:
            cmd = ("sh", "-c", cmd[0])
        full = ["ip", "netns", "exec", self.ns(ns), *cmd]
        p = subprocess.Popen(full, stdin=stdin, stdout=stdout, stderr=stderr,
                             start_new_session=True, env=env, **kw)
        self.procs.append(p)
        self._save_state()
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 5, sig=signal.SIGTERM) -> int | None:
        """Stop a process started by popen(): signal its process group, then SIGKILL."""
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        else:
            # the leader is gone; kill whatever is left in its group
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p in self.procs:
            self.procs.remove(p)
        return p.returncode

    # ---------------------------------------------------------------------------- building
    def _veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str, mtu: int,
              mac_a: str | None = None, queues: int = 1):
        assert len(name_a) <= 15 and len(name_b) <= 15, (name_a, name_b)
        # Both ends get the queues: XDP on a veth wants as many RX queues as its peer has TX
        # queues, and the peer's TX queue is the RX queue a frame arrives on (docs/workers.md).
        q = ["numtxqueues", str(queues), "numrxqueues", str(queues)] if queues > 1 else []
        cmd = ["link", "add", name_a, *q]
        if mac_a:
            cmd += ["address", mac_a]
        cmd += ["mtu", str(mtu), "type", "veth", "peer", "name", name_b, *q, "mtu", str(mtu),
                "netns", ns_b]
        self.ip(ns_a, *cmd)

    def _switch_port(self, ns: str, ifname: str, bridge: str, mtu: int,
                     mac: str | None = None, queues: int = 1):
        """A veth ``ifname`` in ``ns`` whose peer ``ifname``+s is a port of ``bridge`` in sw."""
        peer = ifname + "s"
        self._veth(ns, ifname, self.sw, peer, mtu, mac, queues)
        self.run(self.sw, "sysctl", "-q", "-w", f"net.ipv6.conf.{peer}.disable_ipv6=1",
                 check=False)
        self.ip(self.sw, "link", "set", peer, "master", bridge, "up")

    def _ns_base(self, ns: str):
        self._sh(["ip", "netns", "add", ns])
        self.created_ns.append(ns)
        self._save_state()
        self.ip(ns, "link", "set", "lo", "up")
        self.sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                    check=False)

    def _no_offload(self, ns: str, ifname: str):
        # veth hands CHECKSUM_PARTIAL skbs to the peer; once a frame leaves through AF_XDP /
        # AF_PACKET and is re-sent by the router, a never-computed checksum would reach the
        # member.  Compute checksums in software on every host-side veth.
        self.run(ns, "ethtool", "-K", ifname, "tx", "off", check=False)

    # ------------------------------------------------------------- tap and virtio_user ports
    def _plumb_taps(self, r: Router, kind: str):
        """Give router ``r`` a persistent tap per port for a ``kind`` PMD (tap, virtio_user) and
        join each tap to its veth with a pair of netdev-ingress ``fwd`` rules (nftables table
        clua_lab_pmd in r.ns): what aliasd sends into the tap leaves by the veth, what reaches
        the veth goes into the tap. No bridge: a bridge would hold the tap's MAC, which the PMD
        sets to the port's MAC, as a local address and keep those frames from aliasd. The taps
        exist before aliasd opens them (TUNSETIFF attaches to an existing tap whose
        multi_queue flag matches) so nothing aliasd sends at start is lost, and they outlive an
        aliasd restart; deleting r.ns deletes them."""
        if self.plumbed.get(r.ns) == kind:
            return
        if r.ns in self.plumbed:
            self._unplumb_taps(r)
        # net_tap always asks for IFF_MULTI_QUEUE; virtio_user's vhost-kernel backend only
        # with more than one queue pair (and IFF_VNET_HDR, which TUNSETIFF sets on attach)
        mq = kind == "tap" or self.pmd_queues > 1
        chains = []
        for veth, role in zip(r.ifaces, ("client", "ic0", "ic1")):
            tap = pmd_iface(kind, veth)
            mtu = CLI_MTU if role == "client" else IC_MTU
            flags = (["multi_queue"] if mq else []) + (["vnet_hdr"] if kind == "virtio_user"
                                                        else [])
            self.ip(r.ns, "tuntap", "add", "dev", tap, "mode", "tap", *flags)
            self.sysctl(r.ns, f"net.ipv6.conf.{tap}.disable_ipv6=1", check=False)
            self.ip(r.ns, "link", "set", tap, "mtu", str(mtu), "up")
            chains.append(f"""  chain {role}_wire {{
    type filter hook ingress device {json.dumps(veth)} priority 0; policy accept;
    fwd to {json.dumps(tap)}
  }}
  chain {role}_pmd {{
    type filter hook ingress device {json.dumps(tap)} priority 0; policy accept;
    fwd to {json.dumps(veth)}
  }}""")
        rules = "table netdev clua_lab_pmd {\n" + "\n".join(chains) + "\n}\n"
        self.run(r.ns, "nft", "-f", "-", input=rules)
        self.plumbed[r.ns] = kind

    def _unplumb_taps(self, r: Router):
        self.run(r.ns, "nft", "delete", "table", "netdev", "clua_lab_pmd", check=False)
        kind = self.plumbed.pop(r.ns, None)
        if kind:
            for veth in r.ifaces:
                self.ip(r.ns, "link", "del", pmd_iface(kind, veth), check=False)

    def up(self) -> "Lab":
        if self.is_up:
            return self
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        why = pmd_unavailable(self.pmd)
        if why:
            raise PmdUnavailable(self.pmd, why)
        _install_handlers()
        _LIVE.add(self)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        self.is_up = True
        self._save_state()
        return self

    def _build(self):
        t0 = time.monotonic()
        for ns in self.all_namespaces():
            self._ns_base(ns)
        sw = self.sw
        self.sysctl(sw, "net.bridge.bridge-nf-call-iptables=0",
                    "net.bridge.bridge-nf-call-ip6tables=0",
                    "net.bridge.bridge-nf-call-arptables=0", check=False)
        for br, mtu in ((self.br_cli, CLI_MTU), (self.br_ic0, IC_MTU), (self.br_ic1, IC_MTU)):
            self.ip(sw, "link", "add", br, "mtu", str(mtu), "type", "bridge", "stp_state", "0",
                    "forward_delay", "0", "mcast_snooping", "0")
            self.run(sw, "sysctl", "-q", "-w", f"net.ipv6.conf.{br}.disable_ipv6=1",
                     check=False)
            self.ip(sw, "link", "set", br, "up")

        # client
        cli = self.cli
        self._switch_port(cli, self.cli_if, self.br_cli, CLI_MTU, CLIENT_MAC)
        self.ip(cli, "addr", "add", f"{CLIENT_IP}/24", "dev", self.cli_if)
        self.ip(cli, "link", "set", self.cli_if, "up")
        self.ip(cli, "route", "add", "default", "via", GW_CLI_IP)
        self.sysctl(cli, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                    f"net.ipv4.conf.{self.cli_if}.rp_filter=0")
        self._no_offload(cli, self.cli_if)

        # gateway
        gw = self.gw
        self._switch_port(gw, self.gw_cli_if, self.br_cli, CLI_MTU)
        self._switch_port(gw, self.gw_ic0_if, self.br_ic0, IC_MTU)
        self._switch_port(gw, self.gw_ic1_if, self.br_ic1, IC_MTU)
        for ifn, addr in ((self.gw_cli_if, f"{GW_CLI_IP}/24"), (self.gw_ic0_if, f"{GW_IC0_IP}/25"),
                          (self.gw_ic1_if, f"{GW_IC1_IP}/25")):
            self.ip(gw, "addr", "add", addr, "dev", ifn)
            self.ip(gw, "link", "set", ifn, "up")
            self._no_offload(gw, ifn)
        self.sysctl(gw, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0", "net.ipv4.conf.all.send_redirects=0",
                    *[f"net.ipv4.conf.{i}.rp_filter=0"
                      for i in (self.gw_cli_if, self.gw_ic0_if, self.gw_ic1_if)])

        # alias routers: three ports each, no kernel addresses, no IPv6
        for r in self.routers:
            for ifn, br, mtu, role in ((r.cli_if, self.br_cli, CLI_MTU, "client"),
                                       (r.ic0_if, self.br_ic0, IC_MTU, "ic0"),
                                       (r.ic1_if, self.br_ic1, IC_MTU, "ic1")):
                self._switch_port(r.ns, ifn, br, mtu, r.macs[role], self.workers)
                self.sysctl(r.ns, f"net.ipv6.conf.{ifn}.disable_ipv6=1", check=False)
                self.ip(r.ns, "link", "set", ifn, "up")

        if self.pmd in TAP_KINDS:
            for r in self.routers:
                self._plumb_taps(r, self.pmd)

        # a client in another subnet, one routed hop behind the gateway
        if self.far_client:
            self._veth(gw, self.gw_far_if, self.far, self.far_if, CLI_MTU)
            self.ip(gw, "addr", "add", f"{GW_FAR_IP}/{FAR_PREFIX_LEN}", "dev", self.gw_far_if)
            self.ip(gw, "link", "set", self.gw_far_if, "up")
            self.ip(self.far, "addr", "add", f"{FAR_IP}/{FAR_PREFIX_LEN}", "dev", self.far_if)
            self.ip(self.far, "link", "set", self.far_if, "up")
            self.ip(self.far, "route", "add", "default", "via", GW_FAR_IP)
            self.sysctl(gw, f"net.ipv4.conf.{self.gw_far_if}.rp_filter=0")
            self.sysctl(self.far, "net.ipv4.conf.all.rp_filter=0",
                        "net.ipv4.conf.default.rp_filter=0",
                        f"net.ipv4.conf.{self.far_if}.rp_filter=0")
            self._no_offload(gw, self.gw_far_if)
            self._no_offload(self.far, self.far_if)

        # members
        for m in self.members:
            br, gw_ip = (self.br_ic0, GW_IC0_IP) if m.port == "ic0" else (self.br_ic1, GW_IC1_IP)
            self._switch_port(m.ns, m.ifname, br, IC_MTU, m.mac)
            self.ip(m.ns, "addr", "add", f"{m.address}/25", "dev", m.ifname)
            self.ip(m.ns, "link", "set", m.ifname, "up")
            self.ip(m.ns, "route", "add", "default", "via", gw_ip)
            self._no_offload(m.ns, m.ifname)
            ifaces = [m.ifname]
            if m.encap == "vxlan":
                self.ip(m.ns, "link", "add", m.vx_ifname, "address", m.inner_mac, "type", "vxlan",
                        "id", str(VXLAN_VNI), "local", m.address, "dstport", str(VXLAN_PORT),
                        "nolearning")
                self.ip(m.ns, "link", "set", m.vx_ifname, "up")
                ifaces.append(m.vx_ifname)
            for a in self.member_aliases.get(m.name, self.aliases):
                self.ip(m.ns, "addr", "add", f"{_check_addr(a)}/32", "dev", "lo")
            self.sysctl(m.ns, "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
                        "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                        "net.ipv4.conf.lo.rp_filter=0",
                        *[f"net.ipv4.conf.{i}.rp_filter=0" for i in ifaces])
        if self.start_servers:
            self.start_member_servers()
        self._log(f"up in {time.monotonic() - t0:.1f}s")

    def start_member_servers(self, timeout: float = 10):
        """Start tests/servers/member_server.py in every member; output in out_dir/NAME.log."""
        logs = {}
        for m in self.members:
            if m.server is not None and m.server.poll() is None:
                continue
            cmd = [sys.executable, "-u", str(SERVER), "--name", m.name]
            for p in self.tcp_ports:
                cmd += ["--tcp", str(p)]
            for p in self.udp_ports:
                cmd += ["--udp", str(p)]
            for p in self.hold_ports:
                cmd += ["--hold-tcp", str(p)]
            log = self.out_dir / f"{m.name}.log"
            with open(log, "wb") as f:
                m.server = self.popen(m.ns, *cmd, stdout=f, stderr=subprocess.STDOUT)
            logs[m.name] = (m, log)
        deadline = time.monotonic() + timeout
        for name, (m, log) in logs.items():
            while "member_server: ready" not in log.read_text(errors="replace"):
                if m.server.poll() is not None or time.monotonic() > deadline:
                    raise LabError(f"member server {name} did not start:\n"
                                   f"{log.read_text(errors='replace')}")
                time.sleep(0.05)

    @staticmethod
    def _readline(p: subprocess.Popen, deadline: float) -> str:
        """One line of a popen()ed process's stdout, or what arrived before ``deadline``."""
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        buf = b""
        try:
            while time.monotonic() < deadline and not buf.endswith(b"\n"):
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    break
                ch = os.read(p.stdout.fileno(), 1)
                if not ch:
                    break
                buf += ch
        finally:
            sel.close()
        return buf.decode(errors="replace")

    # ---------------------------------------------------------------------------- teardown
    def down(self):
        with self._down_lock:
            for p in list(self.procs):
                try:
                    self.stop(p, timeout=5)
                except Exception as e:
                    print(f"lab: stopping pid {p.pid}: {e}", file=sys.stderr)
            for m in self.members:
                m.server = None
            self.ftp_procs.clear()
            self.client_addrs.clear()
            # any stray process still inside one of our namespaces (started by us) goes too
            for ns in list(self.created_ns):
                r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
                for pid in r.stdout.split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
            for ns in reversed(self.created_ns):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            remaining = [n for n in netns_list() if n in self.created_ns]
            for ns in remaining:
                time.sleep(0.2)
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            self.created_ns = [n for n in netns_list() if n in self.created_ns]
            _rm_dpdk_runtime(self.prefix)
            self.is_up = False
            _LIVE.discard(self)
            self._clear_state()
            if self.created_ns:
                raise LabError(f"namespaces left behind: {self.created_ns}")

    def detach(self):
        """Leave the lab running after this process exits (scripts/lab up): no cleanup at exit;
        ``scripts/lab down PREFIX`` (down_prefix) removes it later."""
        self.persist = True
        self._save_state()
        _LIVE.discard(self)

    def __enter__(self) -> "Lab":
        return self.up()

    def __exit__(self, *exc):
        self.down()
        return False

    # ------------------------------------------------------------------ state for scripts/lab
    def _state_file(self) -> Path:
        return STATE_DIR / f"{self.prefix}.json"

    def _save_state(self):
        if not self.persist:
            return
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        st = {"prefix": self.prefix, "namespaces": self.created_ns,
              "pids": [p.pid for p in self.procs], "members": self.n_members,
              "vxlan_members": self.n_vxlan, "aliases": self.aliases, "pmd": self.pmd}
        self._state_file().write_text(json.dumps(st, indent=1))

    def _clear_state(self):
        try:
            self._state_file().unlink()
        except FileNotFoundError:
            pass

    # ----------------------------------------------------------------------- aliasd support
    def ports(self, kind: str | None = None, router: int = 1) -> list[dict]:
        kind = kind or self.pmd
        r = self.routers[router - 1] if router <= len(self.routers) else None
        if r is None:  # a config for a lab that is not built (lab_config() in test_aliasd)
            raise KeyError(f"router {router} (this lab has {self.n_routers})")
        q = self.pmd_queues

        def dev(i: int, veth: str, role: str) -> str:
            return devargs(kind, i, pmd_iface(kind, veth), q, r.macs[role])
        return [
            {"name": "client", "devargs": dev(0, r.cli_if, "client"), "role": "client",
             "address": f"{r.cli_ip}/24", "mtu": CLI_MTU, "mac": r.macs["client"]},
            {"name": "ic0", "devargs": dev(1, r.ic0_if, "ic0"), "role": "interconnect",
             "address": f"{r.ic0_ip}/25", "mtu": IC_MTU, "mac": r.macs["ic0"]},
            {"name": "ic1", "devargs": dev(2, r.ic1_if, "ic1"), "role": "interconnect",
             "address": f"{r.ic1_ip}/25", "mtu": IC_MTU, "mac": r.macs["ic1"]},
        ]

    def control_socket(self, router: int = 1) -> Path:
        """Router k's cluamgr socket (router 1: out_dir/aliasd.sock as ever)."""
        return self.out_dir / ("aliasd.sock" if router == 1 else f"aliasd-r{router}.sock")

    def key_file(self, name: str, data: bytes) -> Path:
        """A root-owned 0600 key file in out_dir (the rule aliasd's key files follow)."""
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return path

    def router_key_file(self) -> Path:
        """The routers' shared [router] key (HMAC-SHA-256, >= 16 bytes), written on first use."""
        path = self.out_dir / "router.key"
        if not path.exists():
            self.key_file("router.key", b"clua-lab-router-key-" + self.prefix.encode() + b"\n")
        return path

    def member_entries(self, macs: bool = True) -> list[dict]:
        """[[member]] entries; ``macs=False`` leaves out ``mac`` (the router learns it by ARP)."""
        out = []
        for m in self.members:
            e = {"name": m.name, "port": m.port, "address": m.address, "encap": m.encap}
            if macs:
                e["mac"] = m.mac
            if m.encap == "vxlan":
                e.update({"vni": VXLAN_VNI, "inner_mac": m.inner_mac, "vxlan_port": VXLAN_PORT})
            out.append(e)
        return out

    def aliasd_config_dict(self, aliases: Sequence[dict], services: Sequence[dict] = (),
                           metrics: str | None = "127.0.0.1:9470", pmd: str | None = None,
                           default_alias: str | None = None, cluster_name: str = "lab",
                           extra: dict | None = None, member_macs: bool = True,
                           router: int = 1, node: str | None = None,
                           router_opts: dict | None = None, rip: dict | None = None,
                           bfd: dict | None = None, sync: dict | bool | None = None,
                           tables: dict | None = None,
                           services_lines: Sequence[str] | None = None,
                           binary: str | os.PathLike | None = None) -> dict:
        """aliases: [{"name": "web", "address": "198.51.100.100",
                       "members": [{"name": "m1", "selw": 3}, "m2", ...]}]
        services: [{"name": "http", "port": 80, "proto": "tcp", "options": ["in_multi"]}]
        router: which lab router the config is for (its ports and cluamgr socket).
        node: makes it one of several routers: a [router] table with this node name, the lab's
        shared router key and a boot counter in out_dir (router_opts adds/overrides fields).
        rip, bfd: the [rip] and [bfd] tables, as given.
        sync (issue 9): keys of [sync] on top of the lab's per-router default
        ``flows_file = out_dir/flows-rK`` (so no run ever reads another's file); False: no
        [sync]. The table is written only when ``sync_section`` allows it (default: when
        ``binary`` (default aliasd_binary()) knows [sync]); otherwise it is left out with a note
        on stderr, and aliasd runs as today's does without it.
        tables: keys of [tables] (e.g. connections = 1024).
        services_lines: clua_services(4) lines, written to out_dir/clua_services-rK and named by
        [control] services_file (instead of ``services``)."""
        cluster = {"name": cluster_name}
        if default_alias:
            cluster["default_alias"] = default_alias
        doc: dict = {
            "cluster": cluster,
            # AF_XDP fill rings need many mbufs, and every queue has one: see tests/README.md.
            "dpdk": {**dpdk_lcores(self.workers),
                     "memory_mb": 256 if self.workers <= 2 else 512,
                     "hugepages": False, "idle": "adaptive",
                     "mbufs": 16384 * min(self.workers, 4) - 1},
        }
        # A per-run cluamgr socket: several aliasd may run on one machine (tests, demo, bench).
        doc["control"] = {"socket": str(self.control_socket(router))}
        if metrics:
            doc["metrics"] = {"listen": metrics}
        if node is not None:
            doc["router"] = {"node": node, "key_file": str(self.router_key_file()),
                             "state_file": str(self.out_dir / f"{node}-boots"),
                             **(router_opts or {})}
        if rip is not None:
            doc["rip"] = dict(rip)
        if bfd is not None:
            doc["bfd"] = dict(bfd)
        doc["port"] = self.ports(pmd, router)
        doc["member"] = self.member_entries(macs=member_macs)
        al = []
        for a in aliases:
            a = dict(a)
            _check_addr(a["address"])
            a["members"] = [{"name": x} if isinstance(x, str) else dict(x)
                            for x in a.get("members", [])]
            al.append(a)
        doc["alias"] = al
        if services_lines is not None:
            if services:
                raise ValueError("services and services_lines are exclusive")
            sf = self.out_dir / f"clua_services-r{router}"
            sf.parent.mkdir(parents=True, exist_ok=True)
            sf.write_text("# written by tests/lab.py\n" + "".join(f"{l}\n" for l in services_lines))
            doc["control"]["services_file"] = str(sf)
        if services:
            doc["service"] = [dict(s) for s in services]
        if tables:
            doc["tables"] = dict(tables)
        if sync is not False and self._want_sync(binary, explicit=isinstance(sync, dict)):
            doc["sync"] = {"flows_file": str(self.flows_file(router)), **(sync or {})}
        for k, v in (extra or {}).items():
            if isinstance(v, dict) and isinstance(doc.get(k), dict):
                doc[k].update(v)
            else:
                doc[k] = v
        return doc

    def write_aliasd_config(self, aliases: Sequence[dict], services: Sequence[dict] = (),
                            path: str | os.PathLike | None = None, **kw) -> Path:
        """Write an aliasd TOML for this lab and return its path (default lab-out/P/aliasd.toml,
        aliasd-rK.toml for router K)."""
        text = toml_dumps(self.aliasd_config_dict(aliases, services, **kw))
        k = kw.get("router", 1)
        path = Path(path) if path else self.out_dir / (
            "aliasd.toml" if k == 1 else f"aliasd-r{k}.toml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def start_aliasd(self, config: str | os.PathLike, binary: str | os.PathLike | None = None,
                     timeout: float = 30, args: Sequence[str] = (), router: int = 1,
                     wait: bool = True) -> Aliasd:
        """Start aliasd in router ``router``'s namespace (bpffs mounted first) and wait for
        'aliasd: ready' on stderr (``wait=False``: return at once; call wait_ready())."""
        binary = str(binary or aliasd_binary())
        script = ('mount -t bpf bpf /sys/fs/bpf 2>/dev/null; ulimit -l unlimited 2>/dev/null; '
                  'exec "$@"')
        p = self.popen(self.router(router).ns, "sh", "-c", script, "aliasd", binary, "--config",
                       str(config), *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        d = Aliasd(self, p, str(config))
        d.router = router
        if wait:
            self.wait_ready(d, timeout)
        return d

    def wait_ready(self, d: Aliasd, timeout: float = 30) -> Aliasd:
        if not d.wait_for(r"aliasd: ready", timeout):
            rc = d.proc.poll()
            d.stop(timeout=5)
            state = f"exited with {rc}" if rc is not None else f"not ready after {timeout:.0f}s"
            k = getattr(d, "router", 1)
            name = "aliasd.stderr" if k == 1 else f"aliasd-r{k}.stderr"
            (self.out_dir / name).write_text(d.stderr)
            raise AliasdError(f"aliasd (router {k}) {state}; stderr:\n{d.stderr}")
        return d

    def cluamgr(self, *args: str, router: int = 1, check: bool = True,
                timeout: float = 10) -> subprocess.CompletedProcess:
        """Run cluamgr against router ``router``'s aliasd (its own control socket)."""
        r = subprocess.run([str(cluamgr_binary()), "--socket", str(self.control_socket(router)),
                            *args], capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"cluamgr {shlex.join(args)} (router {router}) -> {r.returncode}\n"
                           f"{r.stdout}{r.stderr}")
        return r

    def metrics(self, router: int = 1, listen: str = "127.0.0.1:9470") -> str:
        """The text of router ``router``'s Prometheus endpoint ('' when it does not answer).
        Each router is its own namespace, so every one listens on the same address."""
        r = self.run(self.router(router).ns, "curl", "-s", "-m", "3",
                     f"http://{listen}/metrics", check=False)
        return r.stdout if r.returncode == 0 else ""

    def metric_sum(self, name: str, router: int = 1, labels: str | None = None) -> float | None:
        """The sum of every sample of metric ``name`` on router ``router`` (None if absent);
        ``labels``: only samples whose label text contains it (e.g. 'outcome="ok"')."""
        vals = []
        for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+([0-9.eE+-]+)$",
                             self.metrics(router), re.M):
            if labels is None or labels in (m.group(1) or ""):
                vals.append(float(m.group(2)))
        return sum(vals) if vals else None

    # ------------------------------------------------------------------- issue 9 helpers
    def flows_file(self, router: int = 1) -> Path:
        """Router k's [sync] flows_file: in this run's out_dir, never shared with another run."""
        return self.out_dir / f"flows-r{router}"

    def forget_flows(self):
        """Remove every router's flows_file: a test that starts its own aliasd does not take
        over the flows an earlier test's aliasd wrote at its SIGTERM."""
        for r in self.routers:
            try:
                self.flows_file(r.k).unlink()
            except FileNotFoundError:
                pass

    def _want_sync(self, binary, explicit: bool) -> bool:
        if self.sync_section is not None:
            return self.sync_section
        if aliasd_knows_sync(binary):
            return True
        if explicit:
            print(f"lab[{self.prefix}]: {binary or aliasd_binary()} does not know [sync] "
                  "(before issue 9): the section is left out", file=sys.stderr)
        return False

    def add_client_addresses(self, n: int, first: int = 20) -> list[str]:
        """``n`` more addresses 198.51.100.FIRST.. on the client (each a separate client for
        sticky policies); idempotent. The gateway reaches them by ARP like the client's own."""
        if not (0 < n and first + n <= 99):
            raise ValueError("client addresses 198.51.100.20..98 only (aliases from .100)")
        addrs = [f"198.51.100.{first + i}" for i in range(n)]
        for a in addrs:
            if a not in self.client_addrs:
                self.ip(self.cli, "addr", "add", f"{a}/24", "dev", self.cli_if)
                self.client_addrs.append(a)
        return addrs

    def start_longlived(self, to: str, count: int = 20, interval: float = 0.1,
                        timeout: float = 20, max_seconds: float = 120,
                        ns: str | None = None) -> "LongLived":  # ns: e.g. self.far
        """tests/clients/longlived.py in the client namespace: ``count`` connections to a hold
        port, each talking every ``interval`` s. Returns once every connection has its first
        reply (``.ready``: {"members", "errors"}); ``.finish()`` stops it and returns the
        summary (see the script)."""
        p = self.popen(ns or self.cli, sys.executable, "-u", str(LONGLIVED), "--to", to,
                       "--count", str(count), "--interval", str(interval), "--timeout",
                       str(timeout), "--max-seconds", str(max_seconds),
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ll = LongLived(self, p, timeout)
        line = self._readline(p, time.monotonic() + count * 3 + 10)
        try:
            ll.ready = json.loads(line)
        except json.JSONDecodeError:
            self.stop(p)
            raise LabError(f"longlived.py did not start: {line!r} "
                           f"{p.stderr.read().decode(errors='replace') if p.stderr else ''}")
        return ll

    def ftp_clients(self, to: str, sources: Sequence[str], timeout: float = 10) -> list:
        """tests/clients/ftp_clients.py: one passive-mode client per source address, at once;
        returns its "clients" list."""
        r = self.run(self.cli, sys.executable, str(FTP_CLIENTS), "--to", to, "--sources",
                     ",".join(sources), "--timeout", str(timeout), check=False,
                     timeout=timeout * 10 + 30)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])["clients"]
        except (IndexError, json.JSONDecodeError, KeyError):
            raise LabError(f"ftp_clients.py gave no JSON (rc {r.returncode}):\n"
                           f"{r.stdout}{r.stderr}")

    def start_ftp(self, members: Sequence[str] | None = None, alias: str | None = None,
                  pasv: tuple = (30000, 30100), timeout: float = 10) -> dict:
        """vsftpd (Debian package) in each member's namespace, listening on ``alias`` port 21
        (default: the lab's first alias; members hold it on lo and answer by direct server
        return), anonymous read-only, passive mode only on ports ``pasv``. Its banner says
        ``member=NAME``; its root holds whoami.txt (``member=NAME``), served-by-NAME and
        data.bin (``member=NAME`` then a pattern, FTP_DATA_SIZE bytes). Logs in
        out_dir/ftp/NAME/. Returns {name: Popen}; stopped by stop_ftp() or at teardown."""
        import shutil
        exe = shutil.which("vsftpd") or "/usr/sbin/vsftpd"
        if not os.access(exe, os.X_OK):
            raise LabError("vsftpd not installed (Debian package vsftpd: scripts/setup)")
        alias = alias or self.aliases[0]
        empty = self.out_dir / "ftp" / "empty"  # vsftpd's secure_chroot_dir: empty, root's
        empty.mkdir(parents=True, exist_ok=True)
        os.chmod(empty, 0o755)
        started = {}
        for name in members or [m.name for m in self.members]:
            m = self.member(name)
            base = self.out_dir / "ftp" / name
            root = base / "root"
            root.mkdir(parents=True, exist_ok=True)
            for d in (self.out_dir / "ftp", base, root):
                os.chmod(d, 0o755)
            (root / "whoami.txt").write_text(f"member={name}\n")
            (root / f"served-by-{name}").write_text(f"{name}\n")
            head = f"member={name}\n".encode()
            body = bytes((i * 7 + 3) & 0xFF for i in range(FTP_DATA_SIZE - len(head)))
            (root / "data.bin").write_bytes(head + body)
            for f in root.iterdir():
                os.chmod(f, 0o644)
            conf = base / "vsftpd.conf"
            conf.write_text("\n".join([
                "listen=YES", "listen_ipv6=NO", f"listen_address={alias}", "listen_port=21",
                "background=NO", "anonymous_enable=YES", "local_enable=NO", "write_enable=NO",
                "no_anon_password=YES", f"anon_root={root}", "anon_world_readable_only=YES",
                "pasv_enable=YES", "port_enable=NO", f"pasv_min_port={pasv[0]}",
                f"pasv_max_port={pasv[1]}", "connect_from_port_20=NO",
                f"ftpd_banner=clua lab vsftpd member={name}", "dirmessage_enable=NO",
                f"secure_chroot_dir={empty}", "seccomp_sandbox=NO", "isolate=NO",
                "isolate_network=NO", "xferlog_enable=YES", "xferlog_std_format=NO",
                f"vsftpd_log_file={base / 'vsftpd.log'}", "max_clients=0", "max_per_ip=0",
                "hide_ids=YES", "ssl_enable=NO", "accept_timeout=10",
                "data_connection_timeout=30", "idle_session_timeout=60", ""]))
            os.chmod(conf, 0o600)
            log = open(base / "vsftpd.stderr", "ab")
            started[name] = self.popen(m.ns, exe, str(conf), stdout=log,
                                       stderr=subprocess.STDOUT)
            log.close()
            self.ftp_procs[name] = started[name]
        deadline = time.monotonic() + timeout
        for name, p in started.items():
            m = self.member(name)
            while True:
                ss = self.run(m.ns, "ss", "-Hltn", "sport", "=", ":21", check=False).stdout
                if f"{alias}:21" in ss:
                    break
                if p.poll() is not None or time.monotonic() > deadline:
                    err = (self.out_dir / "ftp" / name / "vsftpd.stderr").read_text(
                        errors="replace")
                    raise LabError(f"vsftpd in {name} did not listen on {alias}:21 "
                                   f"(rc {p.poll()}): {err}")
                time.sleep(0.05)
        return started

    def stop_ftp(self):
        for name, p in list(self.ftp_procs.items()):
            self.stop(p, timeout=5)
            del self.ftp_procs[name]

    def syn_flood(self, to: str, count: int, src_first: int = 128, src_last: int = 250,
                  ns: str | None = None, timeout: float = 60) -> dict:
        """Send ``count`` TCP SYNs to ``to`` (ADDR:PORT) from the client namespace through a raw
        socket, as fast as Python allows, from spoofed sources 198.51.100.SRC_FIRST..SRC_LAST
        (client-LAN addresses nobody holds: the members' SYN-ACKs die at the gateway's
        unanswered ARP) and ports 1024..65535, each (source, port) once. Returns {"sent",
        "seconds", "start", "end"} (time.monotonic())."""
        host, port = to.rsplit(":", 1)
        _check_addr(host)
        if not (0 < src_first <= src_last <= 254) or count > (src_last - src_first + 1) * 64000:
            raise ValueError("flood sources")
        r = self.run(ns or self.cli, sys.executable, "-c", _SYN_FLOOD, host, port, str(count),
                     str(src_first), str(src_last), check=True, timeout=timeout)
        return json.loads(r.stdout.strip().splitlines()[-1])

    # ------------------------------------------------------------ interconnect partitions
    def _ic_switch_ports(self, k: int) -> list[str]:
        r = self.router(k)
        return [r.ic0_if + "s", r.ic1_if + "s"]

    def partition(self, routers: Sequence[int] = (1, 2)):
        """Cut the interconnect between ``routers``: their ic0/ic1 switch ports become bridge
        ports with ``isolated on``, which reach every non-isolated port (gateway, members,
        other routers) but not each other. The client LAN is untouched. Checked in the kernel."""
        ports = [p for k in routers for p in self._ic_switch_ports(k)]
        for p in ports:
            self._sh(["ip", "netns", "exec", self.sw, "bridge", "link", "set", "dev", p,
                      "isolated", "on"])
        self._check_isolated(ports, True)

    def heal(self):
        """Undo every partition()."""
        ports = [p for r in self.routers for p in self._ic_switch_ports(r.k)]
        for p in ports:
            self._sh(["ip", "netns", "exec", self.sw, "bridge", "link", "set", "dev", p,
                      "isolated", "off"])
        self._check_isolated(ports, False)

    def isolated_ports(self) -> set[str]:
        out = self._sh(["ip", "netns", "exec", self.sw, "bridge", "-d", "-j", "link",
                        "show"]).stdout
        return {e["ifname"] for e in json.loads(out or "[]") if e.get("isolated")}

    def _check_isolated(self, ports: Sequence[str], want: bool):
        iso = self.isolated_ports()
        wrong = [p for p in ports if (p in iso) != want]
        if wrong:
            raise LabError(f"bridge ports {wrong} not isolated={want} (isolated: {sorted(iso)})")

    # --------------------------------------------------------------------- ARP observation
    def arp_answerers(self, addr: str, ns: str | None = None, wait: float = 0.3) -> list[str]:
        """Send one ARP request for ``addr`` from the client namespace (its own MAC and
        address, so nobody's cache is poisoned) and collect, for ``wait`` seconds, every ARP
        reply to it: the list of sender MACs, one per reply (with a shared vMAC two answerers
        give the same MAC twice, so len() counts answerers)."""
        return self.arp_answerers_many([addr], ns=ns, wait=wait)[addr]

    def arp_answerers_many(self, addrs: Sequence[str], ns: str | None = None,
                           wait: float = 0.3) -> dict:
        """arp_answerers() for several addresses in one window: {addr: [sender MACs]}.
        ``last_arp_sent`` is then the time.monotonic() the requests left at (the probe is a
        fresh Python process: it starts some 50 ms after the call)."""
        return self.arp_probe_result(self.arp_probe_start(addrs, ns=ns, wait=wait), addrs)

    def arp_probe_start(self, addrs: Sequence[str], at: float | None = None,
                        ns: str | None = None, wait: float = 0.3) -> subprocess.Popen:
        """Start an ARP probe in the background that sends its requests at time.monotonic()
        ``at`` (default: at once), so a test can aim it precisely; arp_probe_result() reads it."""
        ns = ns or self.cli
        if self.ns(ns) != self.cli:
            raise LabError("arp_answerers: only from the client namespace")
        return self.popen(ns, sys.executable, "-c", _ARP_PROBE, self.cli_if, CLIENT_MAC,
                          CLIENT_IP, ",".join(addrs), str(wait),
                          f"{at:.6f}" if at is not None else "0")

    def arp_probe_result(self, p: subprocess.Popen, addrs: Sequence[str]) -> dict:
        out, err = p.communicate(timeout=30)
        if p in self.procs:
            self.procs.remove(p)
        if p.returncode != 0:
            raise LabError(f"ARP probe failed ({p.returncode}): {err.decode(errors='replace')}")
        got: dict = {a: [] for a in addrs}
        for line in out.decode().splitlines():
            if line.strip():
                a, mac = line.split()
                if a == "sent":
                    self.last_arp_sent = float(mac)
                else:
                    got[a].append(mac)
        return got

    def client_neigh(self, addr: str, ns: str | None = None) -> str | None:
        """The client kernel's ARP entry (lladdr) for ``addr``, None without a usable one."""
        out = self.ip(ns or self.cli, "-j", "neigh", "show", addr).stdout
        for e in json.loads(out or "[]"):
            if e.get("lladdr") and "FAILED" not in e.get("state", []):
                return e["lladdr"].lower()
        return None

    # ------------------------------------------------------------- BIRD 2, the upstream router
    def start_bird(self, rip_auth: str | None = None, bfd: bool = False,
                   mode: str = "broadcast", kernel_filter: bool = True,
                   static_bfd: dict | None = None, timeout: float = 10) -> subprocess.Popen:
        """Run BIRD 2 in P-gw as the upstream router: RIPv2 on the client LAN interface
        (import all, export none), ECMP merged into P-gw's kernel table, optional RFC 4822
        HMAC-SHA-256 (password ``rip_auth``, key id 1) and BFD (100 ms, multiplier 3).
        kernel_filter: only documentation-range routes reach the kernel (a config-only RFC 1918
        alias may be learnt by BIRD but never routes a packet). static_bfd: {prefix: [next
        hops]} as static routes (protocol static1) whose next hops each need a BFD session Up:
        BFD with aliasd without RIP. Restarts a running BIRD."""
        if mode not in ("broadcast", "multicast"):
            raise ValueError(f"mode {mode!r}")
        self.stop_bird()
        conf = self.out_dir / "bird.conf"
        iface = json.dumps(self.gw_cli_if)
        auth = ""
        if rip_auth is not None:
            auth = (f"authentication cryptographic; password {json.dumps(rip_auth)} "
                    "{ id 1; algorithm hmac sha256; };")
        kfilter = ("export where net ~ [ 198.51.100.0/24+, 203.0.113.0/24+, 192.0.2.0/24+ ];"
                   if kernel_filter else "export all;")
        text = f"""# written by tests/lab.py for {self.prefix}
log "{self.out_dir / 'bird.log'}" all;
router id {GW_CLI_IP};
protocol device {{ scan time 2; }}
protocol kernel kernel1 {{
    ipv4 {{ import none; {kfilter} }};
    merge paths yes;
}}
protocol rip rip1 {{
    ipv4 {{ import all; export none; }};
    ecmp yes;
    interface {iface} {{
        version 2;
        mode {mode};
        {auth}
        bfd {"yes" if bfd else "no"};
    }};
}}
"""
        if static_bfd:
            text += "protocol static static1 {\n    ipv4;\n"
            for prefix, hops in static_bfd.items():
                text += f"    route {prefix}" + "".join(f" via {h} bfd" for h in hops) + ";\n"
            text += "}\n"
        if bfd or static_bfd:
            text += f"""protocol bfd bfd1 {{
    interface {iface} {{
        min rx interval 100 ms;
        min tx interval 100 ms;
        idle tx interval 300 ms;
        multiplier 3;
    }};
}}
"""
        conf.write_text(text)
        self._sh(["bird", "-p", "-c", str(conf)])
        log_path = self.out_dir / "bird.log"  # one BIRD run per log; the one before is .prev
        if log_path.exists():
            log_path.replace(self.out_dir / "bird.log.prev")
        for f in (self.bird_sock,):
            try:
                f.unlink()
            except FileNotFoundError:
                pass
        log = open(self.out_dir / "bird.stderr", "ab")
        self.bird_proc = self.popen(self.gw, "bird", "-f", "-c", str(conf), "-s",
                                    str(self.bird_sock), "-P", str(self.out_dir / "bird.pid"),
                                    stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bird_proc.poll() is not None:
                raise LabError(f"bird exited with {self.bird_proc.returncode}: "
                               f"{(self.out_dir / 'bird.stderr').read_text(errors='replace')}")
            if self.bird_sock.exists() and self.birdc("show status", check=False).returncode == 0:
                return self.bird_proc
            time.sleep(0.1)
        raise LabError("bird did not open its control socket")

    def stop_bird(self):
        if self.bird_proc is not None:
            self.stop(self.bird_proc, timeout=5)
            self.bird_proc = None

    def birdc(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._sh(["birdc", "-s", str(self.bird_sock), *command.split()], check=check,
                        timeout=10)

    def bird_routes(self, protocol: str = "rip1") -> dict:
        """``show route protocol rip1`` as {prefix: [next hop, ...]} (sorted)."""
        return {p: sorted(v["via"]) for p, v in self.bird_routes_detail(protocol).items()}

    def bird_routes_detail(self, protocol: str = "rip1") -> dict:
        """{prefix: {"via": [next hops], "metric": int | None}} of ``show route protocol P``."""
        out = self.birdc(f"show route protocol {protocol}").stdout
        return parse_bird_routes(out)

    def bird_bfd_sessions(self, protocol: str = "bfd1") -> dict:
        """``show bfd sessions`` as {neighbor address: state}."""
        r = self.birdc(f"show bfd sessions {protocol}", check=False)
        return parse_bird_bfd(r.stdout)

    def kernel_routes(self, ns: str | None = None) -> dict:
        """``ip -j route`` of ``ns`` (default P-gw) as {dst: [gateways]} (multipath flattened;
        [] for a directly connected route)."""
        out = self.ip(ns or self.gw, "-j", "route", "show").stdout
        routes: dict = {}
        for e in json.loads(out or "[]"):
            hops = [h["gateway"] for h in e.get("nexthops", []) if "gateway" in h]
            if "gateway" in e:
                hops.append(e["gateway"])
            routes[e["dst"]] = sorted(hops)
        return routes

    # ------------------------------------------------------------------------ client helpers
    def client(self, mode: str, to: str, count: int, timeout: float = 2,
               extra: Sequence[str] = (), ns: str | None = None,
               max_failures: int = 10) -> dict:
        """Run tests/clients/client.py in the client namespace and return its JSON summary
        (gives up after ``max_failures`` consecutive failures; 0: never)."""
        cmd = [sys.executable, str(CLIENT), mode, "--to", to, "--count", str(count),
               "--timeout", str(timeout), "--max-failures", str(max_failures), *extra]
        r = self.run(ns or self.cli, *cmd, check=False, timeout=count * timeout + 60)
        try:
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise LabError(f"client.py gave no JSON (rc {r.returncode}):\n{r.stdout}{r.stderr}")

    def ping(self, ns: str, addr: str, count: int = 2, wait: float = 1) -> bool:
        r = self.run(ns, "ping", "-n", "-c", str(count), "-W", str(wait), "-i", "0.2", addr,
                     check=False, timeout=count * (wait + 1) + 5)
        return r.returncode == 0

    def testpmd(self, kind: str, ifaces: Sequence[str], traffic, seconds: float = 4,
                settle: float = 3, fwd: str = "io") -> tuple[list[int], str]:
        """Run dpdk-testpmd in P-rtr on ``ifaces`` (router 1's veths) with the ``kind`` PMD
        (PMD_KINDS; tap and virtio_user on the veths' taps, plumbed for the run if the lab's
        own PMD is another one), call ``traffic()`` once its ports are up, stop it after
        ``seconds`` more and return ([RX-packets per port], full output). Raises
        PmdUnavailable when this machine cannot run ``kind``."""
        why = pmd_unavailable(kind)
        if why:
            raise PmdUnavailable(kind, why)
        if kind == "af_xdp" and self.pmd_queues > 1:
            # multiqueue_pmd: a socket binds one queue, and the veth spreads frames over all.
            raise PmdUnavailable(kind, f"net_af_xdp opens one queue of a veth (DPDK 22.11) and "
                                       f"this lab's veths have {self.pmd_queues} "
                                       f"(workers={self.workers}, docs/workers.md)")
        r = self.router(1)
        if kind in TAP_KINDS and self.plumbed.get(r.ns) != kind:
            self._plumb_taps(r, kind)
            try:
                return self.testpmd(kind, ifaces, traffic, seconds, settle, fwd)
            finally:
                if self.pmd in TAP_KINDS:
                    self._plumb_taps(r, self.pmd)
                else:
                    self._unplumb_taps(r)
        vdevs = []
        for i, ifn in enumerate(ifaces):
            vdevs += ["--vdev", devargs(kind, i, pmd_iface(kind, ifn))]
        cores = "0,1" if (os.cpu_count() or 1) > 1 else "0"
        eal = ["--no-pci", "--no-huge", "-m", "256", "--file-prefix", f"{self.prefix}-tp",
               "-l", cores, *vdevs]
        app = [f"--forward-mode={fwd}", "--stats-period", "1", "--total-num-mbufs", "16384"]
        # testpmd quits when stdin closes: feed it a bounded sleep
        script = ('mount -t bpf bpf /sys/fs/bpf 2>/dev/null; '
                  f'sleep {int(settle + seconds + 20)} | exec dpdk-testpmd "$@"')
        p = self.popen(self.rtr, "sh", "-c", script, "testpmd", *eal, "--", *app,
                       stderr=subprocess.STDOUT)
        chunks: list[bytes] = []

        def reader():
            while True:
                b = p.stdout.read1(4096)
                if not b:
                    return
                chunks.append(b)

        rd = threading.Thread(target=reader, daemon=True)
        rd.start()
        deadline = time.monotonic() + settle + 15
        while time.monotonic() < deadline and p.poll() is None:
            if b"Port statistics" in b"".join(chunks):
                break
            time.sleep(0.2)
        if p.poll() is None:
            time.sleep(0.5)
            traffic()
            time.sleep(seconds)
        self.stop(p, timeout=10, sig=signal.SIGINT)
        rd.join(5)
        out = b"".join(chunks).decode(errors="replace")
        (self.out_dir / f"testpmd-{kind}.log").write_text(out)
        rx = [0] * len(ifaces)
        for m in re.finditer(r"NIC statistics for port (\d+)\s+#+\s+RX-packets:\s+(\d+)", out):
            port, n = int(m.group(1)), int(m.group(2))
            if port < len(rx):
                rx[port] = max(rx[port], n)
        for m in re.finditer(r"Forward statistics for port (\d+)\s+-+\s+RX-packets:\s+(\d+)",
                             out):
            port, n = int(m.group(1)), int(m.group(2))
            if port < len(rx):
                rx[port] = max(rx[port], n)
        return rx, out

    def status(self) -> dict:
        return {"prefix": self.prefix, "namespaces": [n for n in netns_list()
                                                       if n.startswith(self.prefix + "-")],
                "members": [(m.name, m.address, m.mac, m.encap) for m in self.members],
                "aliases": self.aliases, "pmd": self.pmd}


class LongLived:
    """A running tests/clients/longlived.py (Lab.start_longlived)."""

    def __init__(self, lab: "Lab", proc: subprocess.Popen, timeout: float):
        self.lab, self.proc, self.timeout = lab, proc, timeout
        self.ready: dict = {}
        self.result: dict | None = None

    def status(self) -> dict:
        """{"t", "last": [last reply time per connection], "errors": [...]} right now."""
        self.proc.stdin.write(b"status\n")
        self.proc.stdin.flush()
        line = self.lab._readline(self.proc, time.monotonic() + 10)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise LabError(f"longlived.py status: {line!r}")

    def wait_all_replied_after(self, t: float, timeout: float = 20) -> dict:
        """Poll status() until every connection has a reply after time.monotonic() ``t`` or
        has failed (or ``timeout`` s pass); returns the last status."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if all(e is not None or (last is not None and last > t)
                   for last, e in zip(st["last"], st["errors"])):
                return st
            if time.monotonic() > deadline:
                return st
            time.sleep(0.1)

    def finish(self) -> dict:
        """Stop talking and return the summary ("conns", "outage", ...)."""
        if self.result is not None:
            return self.result
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.close()
        except OSError:
            pass
        line = self.lab._readline(self.proc, time.monotonic() + self.timeout + 15)
        self.lab.stop(self.proc)
        try:
            self.result = json.loads(line)
        except json.JSONDecodeError:
            raise LabError(f"longlived.py gave no summary: {line!r}")
        return self.result


_SYNC_KNOWN: dict = {}


def aliasd_knows_sync(binary: str | os.PathLike | None = None) -> bool:
    """Whether this aliasd binary accepts a [sync] table (issue 9): `aliasd --check` of a tiny
    config with one; today's aliasd refuses unknown tables ("unknown field `sync`"). Cached per
    binary and modification time."""
    path = Path(binary or aliasd_binary())
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        return False
    if key not in _SYNC_KNOWN:
        import tempfile
        doc = {"cluster": {"name": "probe", "default_alias": "a"},
               "dpdk": {"hugepages": False},
               "port": [{"name": "client", "devargs": "net_af_packet0,iface=lo",
                         "role": "client", "address": "198.51.100.2/24"}],
               "alias": [{"name": "a", "address": "198.51.100.100"}],
               "sync": {"flows_file": ""}}
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
            f.write(toml_dumps(doc))
        try:
            r = subprocess.run([str(path), "--config", f.name, "--check"], capture_output=True,
                               text=True, timeout=30)
            _SYNC_KNOWN[key] = "unknown field `sync`" not in (r.stdout + r.stderr)
        finally:
            os.unlink(f.name)
    return _SYNC_KNOWN[key]


# argv: dst, port, count, first and last host byte of the spoofed 198.51.100.x sources. Raw IPv4
# (IPPROTO_RAW: we write the header; the kernel fills in the IP checksum), a valid TCP checksum
# (the router and the members check it). Prints {"sent", "seconds", "start", "end"}.
_SYN_FLOOD = r"""
import json, socket, struct, sys, time
dst, port, count, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
d = socket.inet_aton(dst)
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xFFFF)
    t += t >> 16
    return ~t & 0xFFFF
n_src = hi - lo + 1
sent = 0
start = time.monotonic()
for i in range(count):
    src = socket.inet_aton("198.51.100.%d" % (lo + i % n_src))
    sport = 1024 + (i // n_src) % 64000
    seq = (i * 2654435761) & 0xFFFFFFFF
    tcp = struct.pack("!HHIIBBHHH", sport, port, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(src + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, d)
    while True:
        try:
            s.sendto(ip + tcp, (dst, 0))
            break
        except BlockingIOError:
            time.sleep(0.0005)
        except OSError as e:
            if e.errno != 105:  # ENOBUFS: the queue is full, try again
                raise
            time.sleep(0.0005)
    sent += 1
end = time.monotonic()
print(json.dumps({"sent": sent, "seconds": end - start, "start": start, "end": end}))
"""


# Sends one ARP request per target and prints "target sender-MAC" for every ARP reply to one
# (argv: ifname, our MAC, our address, comma-separated targets, seconds, send-at monotonic
# time or 0), after a line "sent T" with the time.monotonic() the requests left at. A raw AF_PACKET
# socket sees replies before (and regardless of) the client kernel's neighbour table.
_ARP_PROBE = r"""
import socket, struct, sys, time
ifname, mymac, myip, targets, wait, at = sys.argv[1:7]
mac = bytes.fromhex(mymac.replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0x0806))
tips = {socket.inet_aton(t): t for t in targets.split(",")}
while time.monotonic() < float(at):
    time.sleep(min(0.005, max(0.0, float(at) - time.monotonic())))
for tip in tips:
    req = (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + mac
           + socket.inet_aton(myip) + b"\0" * 6 + tip)
    s.send(req + b"\0" * (60 - len(req)))
print("sent", f"{time.monotonic():.6f}", flush=True)
end = time.monotonic() + float(wait)
while True:
    left = end - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        f = s.recv(2048)
    except socket.timeout:
        break
    if len(f) < 42 or f[12:14] != b"\x08\x06" or struct.unpack(">H", f[20:22])[0] != 2:
        continue
    sha, spa, tha, tpa = f[22:28], f[28:32], f[32:38], f[38:42]
    if spa in tips and tha == mac and tpa == socket.inet_aton(myip):
        print(tips[spa], ":".join(f"{b:02x}" for b in sha), flush=True)
"""


def parse_bird_routes(out: str) -> dict:
    """BIRD 2 ``show route`` text -> {prefix: {"via": [...], "metric": int | None}}. ECMP
    next hops of one route and alternative routes of one prefix are both collected."""
    routes: dict = {}
    cur = None
    for line in out.splitlines():
        m = re.match(r"^(\d+\.\d+\.\d+\.\d+/\d+)\s+(\S+)", line)
        if m:
            cur = m.group(1)
            routes.setdefault(cur, {"via": [], "metric": None})
        elif not re.match(r"^\s+\S+\s+\[", line) and not line.startswith(("\t", " ")):
            cur = None  # "Table master4:", "BIRD ... ready."
        if cur is None:
            continue
        mm = re.search(r"\((\d+)/(\d+)\)", line)
        if mm:
            routes[cur]["metric"] = int(mm.group(2))
        for v in re.findall(r"via (\d+\.\d+\.\d+\.\d+)", line):
            if v not in routes[cur]["via"]:
                routes[cur]["via"].append(v)
    return routes


def parse_bird_bfd(out: str) -> dict:
    """BIRD 2 ``show bfd sessions`` text -> {neighbor address: state}."""
    sessions = {}
    for line in out.splitlines():
        m = re.match(r"^(\d+\.\d+\.\d+\.\d+)\s+(\S+)\s+(\S+)", line)
        if m:
            sessions[m.group(1)] = m.group(3)
    return sessions


def _rm_dpdk_runtime(prefix: str):
    """DPDK with --file-prefix P-x leaves /var/run/dpdk/P-x (ip netns exec keeps /var/run)."""
    import shutil
    base = Path("/var/run/dpdk")
    if base.is_dir():
        for d in base.glob(f"{prefix}-*"):
            shutil.rmtree(d, ignore_errors=True)


def down_prefix(prefix: str) -> list[str]:
    """Remove a lab left by scripts/lab (state file) or by a crashed run: kill the processes
    recorded for it, then every namespace named ``prefix-*``."""
    if not PREFIX_RE.match(prefix):
        raise ValueError(f"bad prefix {prefix!r}")
    sf = STATE_DIR / f"{prefix}.json"
    if sf.exists():
        st = json.loads(sf.read_text())
        for pid in st.get("pids", []):
            try:
                os.killpg(pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    removed = []
    for ns in netns_list():
        if ns.startswith(prefix + "-"):
            r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            removed.append(ns)
    _rm_dpdk_runtime(prefix)
    try:
        sf.unlink()
    except FileNotFoundError:
        pass
    return removed
