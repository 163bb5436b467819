"""The Debian package (issue 11): built by scripts/package from the binaries under test, installed
with dpkg into a throw-away copy of this machine, its aliasd started the way its unit starts it
against the lab, then purged.

Isolation: a helper process in its own mount namespace mounts an overlayfs over / (upper layer
on a tmpfs that exists only in that namespace), with /proc, /sys, /dev and the lab's
/run/netns bound in and a fresh tmpfs on /run; every command runs there through
`nsenter --mount` + `chroot`. dpkg sees the machine's own package database (the dependencies
are installed) and changes only the overlay. When the helper ends (teardown, or pytest gone:
it waits on a pipe from this process) the namespace and everything written in it go away;
nothing on the machine changes. The upper layer is also the record of what installing and
purging wrote: after the purge it must hold nothing but dpkg's own bookkeeping.

PID 1 here is not systemd, so aliasd is started from the installed unit's ExecStart line, in
the lab router's namespace, with the unit's RuntimeDirectory/StateDirectory made as systemd
would; `systemd-analyze verify` checks the installed units offline (docs/systemd.md).
Seed ids: CA1 (the alias answers TCP), CA10 (cluamgr -s, clua_services, clu_alias.config).
"""

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import lab as labmod

WEB = "198.51.100.100"
CLUSTER = "198.51.100.101"
LAB = dict(members=1, aliases=[WEB, CLUSTER], tcp_ports=(80,), udp_ports=())
ALIASES = [{"name": "web", "address": WEB, "members": ["m1"]},
           {"name": "cluster", "address": CLUSTER}]
KEY = "clua-package-test-advert-key-0123456789"
UNITS = ("clua-aliasd.service", "clua-member.service")
MAN_PAGES = ("man8/cluamgr.8.gz", "man8/aliasd.8.gz", "man8/clua-member.8.gz",
             "man4/clua_services.4.gz", "man4/clu_alias.config.4.gz", "man5/aliasd.toml.5.gz")
CONFFILES = ("/etc/clua/aliasd.toml", "/etc/clua/member.toml", "/etc/clua/clua_services",
             "/etc/clua/clu_alias.config")
# Removed in the overlay before installing (a machine that never had clua).
LEFTOVERS = ("/etc/clua", "/var/lib/clua", "/run/clua", "/usr/share/doc/clua", "/usr/share/clua")
# What installing and purging may leave in the overlay's upper layer: dpkg's database and
# log, man-db's index (its trigger). Anything else is a file the package failed to remove.
ALLOWED_LEFT = ("var/lib/dpkg/", "var/log/dpkg.log", "var/cache/man/", "var/cache/debconf/",
                "var/log/alternatives.log", "tmp/")


def unit_value(text: str, key: str) -> list[str]:
    return [l.split("=", 1)[1].strip() for l in text.splitlines()
            if not l.startswith("#") and l.startswith(key + "=")]


class Root:
    """A chroot over an overlay of / in a private mount namespace (see the module doc)."""

    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="clua-pkg-"))
        self.root = self.base / "root"
        self.upper = self.base / "upper"
        b = shlex.quote(str(self.base))
        script = f"""set -e
mount -t tmpfs -o mode=0755 clua-pkg {b}
mkdir {b}/upper {b}/work {b}/root
mount -t overlay overlay -o lowerdir=/,upperdir={b}/upper,workdir={b}/work {b}/root
for m in proc sys dev; do mount --rbind /$m {b}/root/$m; done
mount -t tmpfs -o mode=0755 clua-pkg-run {b}/root/run
mkdir {b}/root/run/netns
mount --rbind /run/netns {b}/root/run/netns
echo ready
exec cat >/dev/null
"""
        # The namespace lives as long as this helper: it ends when its stdin (our pipe) closes.
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            err = self.holder.stderr.read()
            self.close()
            raise RuntimeError(f"overlay root not ready: {line!r} {err}")

    def nsenter(self) -> list[str]:
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--"]

    def argv(self, *cmd: str) -> list[str]:
        return [*self.nsenter(), "chroot", str(self.root), *cmd]

    def run(self, *cmd: str, input: str | None = None, timeout: float = 60,
            env: dict | None = None) -> subprocess.CompletedProcess:
        e = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
             "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
        return subprocess.run(self.argv(*cmd), input=input, capture_output=True, text=True,
                              timeout=timeout, env=e)

    def upper_entries(self) -> list[tuple[str, str]]:
        """(type, path relative to /) of everything in the upper layer (seen from inside)."""
        r = subprocess.run([*self.nsenter(), "find", str(self.upper), "-mindepth", "1",
                            "-printf", "%y %P\n"], capture_output=True, text=True, check=True)
        return [tuple(l.split(" ", 1)) for l in r.stdout.splitlines()]

    def close(self):
        if self.holder.poll() is None:
            try:
                self.holder.stdin.close()
            except OSError:
                pass
            try:
                self.holder.wait(10)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait(5)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def package_job(aliasd_bin, member_bin, tmp_path_factory):
    """scripts/package from the binaries under test (no compiling: --bin-dir), started first
    so that it runs while the lab comes up."""
    out = tmp_path_factory.mktemp("deb")
    p = subprocess.Popen([str(labmod.ROOT / "scripts" / "package"), "--no-compress",
                          "--bin-dir", str(aliasd_bin.parent), "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.started = time.monotonic()
    yield p
    if p.poll() is None:
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def deb(package_job, lab):
    """The package (lab before it: the two are made at the same time)."""
    out, err = package_job.communicate(timeout=120)
    assert package_job.returncode == 0, f"scripts/package failed:\n{out}{err}"
    path = Path(out.strip().splitlines()[-1])
    assert path.is_file() and path.suffix == ".deb", out
    print(f"package {path.name}: {path.stat().st_size / 1e6:.1f} MB "
          f"in {time.monotonic() - package_job.started:.1f} s; {err.strip()}")
    return path


@pytest.fixture(scope="module")
def root(lab, deb):
    """The overlay root; made after the lab so its namespaces are in /run/netns."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.skip("unshare/nsenter (util-linux) not installed")
    r = Root()
    # A machine that never had clua: what other runs left (an empty /var/lib/clua) is removed
    # in the overlay, and that state is the baseline the purge is compared with.
    r.run("rm", "-rf", *LEFTOVERS)
    r.baseline = set(r.upper_entries())
    yield r
    r.close()


@pytest.fixture(scope="module")
def installed(root, deb):
    r = root.run("dpkg", "-i", str(deb), timeout=120)
    assert r.returncode == 0, f"dpkg -i failed:\n{r.stdout}{r.stderr}"
    return r


def test_package_metadata(deb):
    """The control file names the DPDK runtime libraries the binaries link and the PMD plugins
    EAL loads; the example configuration files are conffiles."""
    fields = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True,
                            check=True).stdout
    depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
    for dep in ("librte-eal23", "librte-ethdev23", "librte-net-af-xdp23",
                "librte-mempool-ring23", "iproute2"):
        assert dep in depends, f"{dep} not in Depends: {depends}"
    assert re.search(r"^Package: clua$", fields, re.M) and "Installed-Size:" in fields
    conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert sorted(conffiles) == sorted(CONFFILES)


def test_installed_files_are_where_the_units_expect(root, installed):
    """Binaries, units, configuration, docs and man pages in place; the units' ExecStart
    binaries and configuration files and their Documentation= file exist; systemd-analyze
    verify accepts the installed units; the default configuration parses."""
    r = root.run("dpkg-query", "-W", "-f", "${Status}", "clua")
    assert r.stdout == "install ok installed", r.stdout + r.stderr
    for unit in UNITS:
        text = root.run("cat", f"/lib/systemd/system/{unit}").stdout
        assert text, f"{unit} not installed"
        argv = shlex.split(unit_value(text, "ExecStart")[0])
        assert root.run("test", "-x", argv[0]).returncode == 0, f"{unit}: {argv[0]} missing"
        config = argv[argv.index("--config") + 1]
        assert root.run("test", "-f", config).returncode == 0, f"{unit}: {config} missing"
        for doc in unit_value(text, "Documentation")[0].split():
            if doc.startswith("file:"):
                assert root.run("test", "-f", doc[5:]).returncode == 0, f"{unit}: {doc}"
            elif doc.startswith("man:"):
                page = doc[4:]
                assert root.run("man", "-w", page).returncode == 0, f"{unit}: {doc}"
        # The configuration named by ExecStart parses with the installed binary.
        check = root.run(*argv, "--check")
        assert check.returncode == 0, f"{unit}: {shlex.join(argv)} --check:\n{check.stderr}"
    assert root.run("test", "-x", "/usr/sbin/cluamgr").returncode == 0
    v = root.run("systemd-analyze", "verify", *(f"/lib/systemd/system/{u}" for u in UNITS))
    about = [l for l in (v.stdout + v.stderr).splitlines() if "clua" in l]
    assert v.returncode == 0 and not about, f"systemd-analyze verify:\n{v.stdout}{v.stderr}"
    svc = root.run("cluamgr", "-F", "/etc/clua/clua_services", "--check")
    assert svc.returncode == 0 and "http" in svc.stdout, svc.stdout + svc.stderr
    st = root.run("stat", "-c", "%a %U", "/var/lib/clua").stdout.split()
    assert st == ["750", "root"], st
    for f in ("/usr/share/clua/prometheus/clua-alerts.yml",
              "/usr/share/clua/grafana/clua-dashboard.json", "/usr/share/doc/clua/copyright"):
        assert root.run("test", "-s", f).returncode == 0, f"{f} missing"


def test_man_pages_render(root, installed):
    """`man cluamgr` works after installing; every page renders with groff without a
    warning."""
    r = root.run("man", "-P", "cat", "cluamgr", env={"MANWIDTH": "80"})
    assert r.returncode == 0 and "cluamgr - manage cluster aliases" in r.stdout, r.stderr
    assert "-a alias=ALIAS" in r.stdout
    for page in MAN_PAGES:
        path = f"/usr/share/man/{page}"
        g = root.run("sh", "-c", f"zcat {path} | groff -man -Tutf8 -ww -z")
        assert g.returncode == 0 and g.stderr == "", f"{page}: {g.stderr}"
        w = root.run("lexgrog", path)
        assert w.returncode == 0, f"{page}: whatis cannot parse NAME: {w.stdout}{w.stderr}"
    r = root.run("man", "-P", "cat", "5", "aliasd.toml")
    assert r.returncode == 0 and "[[alias]]" in r.stdout


def start_unit(lab, root, unit: str, ns: str, ready: str) -> labmod.Aliasd:
    """What systemd does for ``unit`` (its RuntimeDirectory= and StateDirectory= with their
    modes), then its ExecStart line in namespace ``ns``, inside the overlay root; returns
    once ``ready`` is on stderr."""
    text = root.run("cat", f"/lib/systemd/system/{unit}").stdout
    for key, base in (("RuntimeDirectory", "/run"), ("StateDirectory", "/var/lib")):
        mode = unit_value(text, key + "Mode")[0]
        for d in unit_value(text, key)[0].split():
            assert root.run("install", "-d", "-m", mode, f"{base}/{d}").returncode == 0
    argv = shlex.split(unit_value(text, "ExecStart")[0])
    # bpffs for the AF_XDP program and unlimited locked memory (LimitMEMLOCK=infinity).
    script = ('mount -t bpf bpf /sys/fs/bpf 2>/dev/null; ulimit -l unlimited 2>/dev/null; '
              'exec "$@"')
    p = subprocess.Popen(root.argv("ip", "netns", "exec", ns, "sh", "-c", script, unit, *argv),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    lab.procs.append(p)  # the lab stops it at teardown whatever happens in the test
    d = labmod.Aliasd(lab, p, argv[-1])
    if not d.wait_for(ready, 30):
        d.stop(timeout=5)
        raise AssertionError(f"installed {unit} not ready:\n{d.stderr}")
    return d


def test_installed_units_serve_the_lab(lab, root, installed):
    """Both units' ExecStart lines, on /etc/clua edited for the lab: aliasd in the router's
    namespace (its default control socket /run/clua/aliasd.sock, in the unit's
    RuntimeDirectory), clua-member in m1's (the key file and the clu_alias.config join in
    /etc/clua). `cluamgr -s` answers on both sockets, m1 is up by its adverts with the weight
    its clu_alias.config set (CA8, CA10), TCP connections to the alias complete through the
    installed router (CA1); SIGTERM stops both with status 0."""
    m1 = lab.member("m1")
    key = "/etc/clua/advert.key"
    w = root.run("sh", "-c", f"umask 077; printf '%s\\n' {KEY} > {key}")
    assert w.returncode == 0, w.stderr
    doc = lab.aliasd_config_dict(ALIASES, [{"name": "http", "port": 80, "proto": "tcp",
                                            "options": ["in_multi"]}],
                                 default_alias="cluster", sync=False)
    del doc["control"]["socket"]  # the default, /run/clua/aliasd.sock
    doc["member"][0]["agent"] = True
    doc["adverts"] = {"key_file": key}
    member = {"node": "m1", "address": m1.address, "routers": [f"{labmod.RTR_IC0_IP}:9471"],
              "key_file": key, "interval_ms": 200, "default_alias": CLUSTER,
              "aliases": [WEB, CLUSTER], "alias_config": "/etc/clua/clu_alias.config"}
    for path, text in (("/etc/clua/aliasd.toml", labmod.toml_dumps(doc)),
                       ("/etc/clua/member.toml", labmod.toml_dumps(member)),
                       ("/etc/clua/clu_alias.config",
                        f"/usr/sbin/cluamgr -a alias={WEB},join,selw=7\n")):
        w = root.run("sh", "-c", f"cat > {path}", input=text)
        assert w.returncode == 0, w.stderr
    d = start_unit(lab, root, "clua-aliasd.service", lab.rtr, r"aliasd: ready")
    agent = None
    try:
        agent = start_unit(lab, root, "clua-member.service", m1.ns, r"clua-member: ready")
        ms = root.run("cluamgr", "--socket", "/run/clua/member.sock", "-s")
        assert ms.returncode == 0 and WEB in ms.stdout, f"member cluamgr -s: {ms.stdout}{ms.stderr}"
        # m1's row in web's member table (the first table with a selw column): selw 7 (from
        # its clu_alias.config, by its adverts) and state up, whatever the columns' order.
        def m1_up_with_7(out: str) -> bool:
            head = None
            for t in (l.split() for l in out.splitlines()):
                if head is None and "selw" in t and "state" in t:
                    head = t
                elif head is not None and t[:1] == ["m1"] and len(t) >= len(head) - 1:
                    return t[head.index("selw")] == "7" and t[head.index("state")] == "up"
            return False
        deadline, s = time.monotonic() + 5, None
        while time.monotonic() < deadline:
            s = root.run("cluamgr", "-s", "web")
            if m1_up_with_7(s.stdout):
                break
            time.sleep(0.1)
        assert s.returncode == 0, f"cluamgr -s: {s.stdout}{s.stderr}"
        assert m1_up_with_7(s.stdout), (
            f"m1 not up with selw 7 by its adverts:\n{s.stdout}\n{agent.stderr}")
        res = lab.client("tcp", f"{WEB}:80", count=10, timeout=2)
        assert res["ok"] == 10 and res["by_member"] == {"m1": 10}, f"{res}\n{d.stderr}"
    finally:
        arc = agent.stop(timeout=10) if agent else 0
        rc = d.stop(timeout=10)
    assert arc == 0, f"clua-member exit status {arc}:\n{agent.stderr}"
    assert rc == 0, f"aliasd exit status {rc}:\n{d.stderr}"


def test_purge_removes_everything(root, installed):
    """dpkg --purge: no file of the package, no conffile (three were edited), no state left; the
    overlay's upper layer holds only dpkg's and man-db's bookkeeping, and no file of the
    machine was removed (no whiteout outside them)."""
    r = root.run("dpkg", "--purge", "clua", timeout=120)
    assert r.returncode == 0, f"dpkg --purge failed:\n{r.stdout}{r.stderr}"
    assert root.run("dpkg-query", "-W", "clua").returncode != 0
    # The operator's own file (the advert key the serve test wrote) stays, and so /etc/clua
    # with it (dpkg: "not empty so not removed"); every conffile, edited or not, is gone.
    left = root.run("sh", "-c", "ls -A /etc/clua 2>/dev/null").stdout.split()
    assert left in ([], ["advert.key"]), f"/etc/clua after purge: {left}"
    root.run("rm", "-rf", "/etc/clua")
    for path in (*LEFTOVERS[:2], *LEFTOVERS[3:], "/usr/sbin/aliasd",
                 "/lib/systemd/system/clua-aliasd.service", "/usr/share/man/man8/cluamgr.8.gz"):
        assert root.run("test", "-e", path).returncode != 0, f"{path} left after purge"
    left = []
    for kind, path in set(root.upper_entries()) - root.baseline:
        if kind == "d":
            # A directory copied up for a file written under it; a new one must be gone.
            if not os.path.isdir(os.path.join("/", path)):
                left.append(f"new directory /{path}")
        elif not path.startswith(ALLOWED_LEFT):
            left.append(f"{kind} /{path}")
    assert not left, "left after purge:\n" + "\n".join(left)
