//! The member agent (`clua-member --config FILE`): configuration errors, and an agent run in a
//! throwaway network namespace (`clmt-<pid>-*`, deleted even when the test fails) with a UDP
//! receiver standing in for a router at 192.0.2.2:9471.
//!
//! The namespace tests need root, iproute2, python3 and nft (CI runs as root; ./scripts/setup
//! installs the rest): without them they fail, saying what is missing.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use clua_ctl::model::Proto;

const MEMBER_BIN: &str = env!("CARGO_BIN_EXE_clua-member");
const ALIAS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
const ALIAS2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);
const MEMBER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 141);
const KEY: &[u8] = b"clua member agent test key, 32+ bytes long";

/// What the test reads out of one advert.
#[derive(Debug)]
struct Seen {
    goodbye: bool,
    node: String,
    boot_id: u64,
    seq: u64,
    /// (addr, joined, selw, selp)
    aliases: Vec<(Ipv4Addr, bool, u32, u32)>,
    ports: Vec<(Proto, u16)>,
}

/// Decodes and verifies one datagram.
fn decode(bytes: &[u8]) -> Seen {
    use clua_ctl::advert::{AdvertKind, AdvertRepr};
    let a = AdvertRepr::parse_verified(bytes, KEY).expect("a valid signed advert");
    Seen {
        goodbye: a.kind == AdvertKind::Goodbye,
        node: a.node.clone(),
        boot_id: a.boot_id,
        seq: a.seq,
        aliases: a
            .aliases
            .iter()
            .map(|e| (e.addr, e.joined, e.selw, e.selp))
            .collect(),
        ports: a.ports.clone(),
    }
}

/// Writes `key` as a key file (root-owned when the test runs as root, mode 0600).
fn write_key(path: &Path, key: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, key).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A temporary directory, removed on drop (also when the test fails).
struct TmpDir(PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmpdir(tag: &str) -> TmpDir {
    let d = std::env::temp_dir().join(format!("clmt-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TmpDir(d)
}

/// The boot counter of the agent configured in `dir` (never the system's default file).
fn state_file(dir: &Path) -> PathBuf {
    dir.join("state/member-boots")
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let key = dir.join("member.key");
    write_key(&key, KEY);
    let p = dir.join("member.toml");
    std::fs::write(
        &p,
        format!(
            r#"node = "m1"
address = "{MEMBER}"
routers = ["192.0.2.2:9471"]
key_file = "{}"
interval_ms = 200
default_alias = "{ALIAS}"
aliases = ["{ALIAS}", "{ALIAS2}"]
socket = "{}"
state_file = "{}"
{extra}"#,
            key.display(),
            dir.join("member.sock").display(),
            state_file(dir).display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn configuration_errors_name_the_field() {
    let dir = tmpdir("cfg");
    let p = dir.join("bad.toml");
    std::fs::write(
        &p,
        "node = \"m1\"\naddress = \"192.0.2.141\"\nrouters = [\"192.0.2.2:9471\"]\nkey_file = \"/k\"\ninterval_ms = 5\ndefault_alias = \"198.51.100.100\"\naliases = [\"198.51.100.100\"]\n",
    )
    .unwrap();
    let out = Command::new(MEMBER_BIN)
        .args(["--config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`interval_ms`: 5 is out of range 100..=60000"),
        "{err}"
    );
    std::fs::write(&p, "node = \"m1\"\nwhatever = 1\n").unwrap();
    let out = Command::new(MEMBER_BIN)
        .args(["--config", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown field `whatever`"), "{err}");
    // --check on a good file.
    let good = write_config(&dir, "");
    let out = Command::new(MEMBER_BIN)
        .args(["--config", good.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}: configuration ok\n", good.display())
    );
    assert!(!state_file(&dir).exists(), "--check does not count a boot");
    // --config is required.
    let out = Command::new(MEMBER_BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", &name]);
        Netns(name)
    }
    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(args);
        c
    }
    fn out(&self, args: &[&str]) -> String {
        let o = self.exec(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A child process killed on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sh(args: &[&str]) {
    let s = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(s.success(), "{args:?}");
}

/// Fails the test unless it can run here (root, iproute2, python3): CI has them, and a test
/// that passes without running would hide a broken agent.
fn require_root_and_tools() {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let tools = ["ip", "python3"].iter().all(|t| {
        Command::new(t)
            .arg(if *t == "ip" { "-V" } else { "--version" })
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        root && tools,
        "this test needs root, iproute2 and python3 (run as root after ./scripts/setup)"
    );
}

/// Lines of a child's stream, through a channel (so reads can time out).
fn lines(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &Receiver<String>, what: &str, mut pred: impl FnMut(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    panic!("timed out waiting for {what}; saw:\n{}", seen.join("\n"));
}

/// The next advert from the receiver: (source address, content).
fn next_advert(rx: &Receiver<String>, mut pred: impl FnMut(&Seen) -> bool) -> (String, Seen) {
    let mut found = None;
    wait_line(rx, "an advert", |l| {
        let Some((src, hex)) = l.split_once(' ') else {
            return false;
        };
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let s = decode(&bytes);
        if pred(&s) {
            found = Some((src.to_string(), s));
            true
        } else {
            false
        }
    });
    found.unwrap()
}

const RECEIVER: &str = r#"
import socket, sys
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("192.0.2.2", 9471))
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 8080)); t.listen()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 9090)); l.listen()
print("receiver ready", flush=True)
while True:
    d, a = r.recvfrom(65535)
    print(a[0], d.hex(), flush=True)
"#;

fn lo_addrs(ns: &Netns) -> String {
    ns.out(&["ip", "-4", "-o", "addr", "show", "dev", "lo"])
}

#[test]
fn agent_in_a_namespace() {
    require_root_and_tools();
    let ns = Netns::new(format!("clmt-{}", std::process::id()));
    let dir = tmpdir("ns");
    ns.out(&["ip", "link", "set", "lo", "up"]);
    ns.out(&[
        "ip", "link", "add", "name", "ic0", "type", "veth", "peer", "name", "ic1",
    ]);
    ns.out(&["ip", "link", "set", "ic1", "up"]);
    ns.out(&["ip", "addr", "add", "192.0.2.141/24", "dev", "ic0"]);
    ns.out(&["ip", "addr", "add", "192.0.2.2/24", "dev", "ic0"]);
    ns.out(&["ip", "link", "set", "ic0", "up"]);
    let vx = format!("clmtvx{}", std::process::id() % 100_000);
    let cfg = write_config(
        &dir,
        &format!(
            "[vxlan]\ndevice = \"{vx}\"\nvni = 42\nlocal = \"192.0.2.141\"\nmac = \"02:00:00:00:02:01\"\ndstport = 4789\n"
        ),
    );
    let before_arp_ignore = ns.out(&["cat", "/proc/sys/net/ipv4/conf/all/arp_ignore"]);

    // A key file others can read is refused before the host is touched.
    {
        use std::os::unix::fs::PermissionsExt;
        let bad = tmpdir("badkey");
        let bad_cfg = write_config(&bad, "");
        std::fs::set_permissions(
            bad.join("member.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let o = ns
            .exec(&[MEMBER_BIN, "--config", bad_cfg.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("`key_file`: key file"), "{e}");
        assert!(!lo_addrs(&ns).contains("198.51.100."));
    }

    // A boot counter that does not hold a count is an error naming the file, before the host
    // is touched; the file is not reset.
    let boots = state_file(&dir);
    std::fs::create_dir_all(boots.parent().unwrap()).unwrap();
    std::fs::write(&boots, "garbage\n").unwrap();
    let o = ns
        .exec(&[MEMBER_BIN, "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "`state_file`: boot counter {}: not a boot count",
            boots.display()
        )),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&boots).unwrap(), "garbage\n");
    assert!(!lo_addrs(&ns).contains("198.51.100."));
    // The boot id continues from the file, whatever the clock says (a clock-based one would be
    // about 1.7e12).
    std::fs::write(&boots, "41\n").unwrap();

    let mut recv = ns
        .exec(&["python3", "-u", "-c", RECEIVER])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let recv_lines = lines(recv.stdout.take().unwrap());
    let _recv = Kill(recv);
    wait_line(&recv_lines, "the receiver", |l| l == "receiver ready");

    let mut agent = ns
        .exec(&[MEMBER_BIN, "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let agent_pid = agent.id();
    let agent_err = lines(agent.stderr.take().unwrap());
    let mut agent = Kill(agent);
    wait_line(&agent_err, "clua-member: ready", |l| {
        l == "clua-member: ready"
    });

    // Host preparation.
    let lo = lo_addrs(&ns);
    assert!(lo.contains("198.51.100.100/32"), "{lo}");
    assert!(lo.contains("198.51.100.101/32"), "{lo}");
    assert_eq!(
        ns.out(&["cat", "/proc/sys/net/ipv4/conf/all/arp_ignore"])
            .trim(),
        "1"
    );
    assert_eq!(
        ns.out(&["cat", "/proc/sys/net/ipv4/conf/all/arp_announce"])
            .trim(),
        "2"
    );
    let link = ns.out(&["ip", "-d", "link", "show", "dev", &vx]);
    assert!(link.contains("02:00:00:00:02:01"), "{link}");
    assert!(link.contains("vxlan id 42"), "{link}");
    assert_eq!(
        ns.out(&["cat", &format!("/proc/sys/net/ipv4/conf/{vx}/rp_filter")])
            .trim(),
        "0"
    );

    // A second agent on the same configuration finds the host prepared (idempotent), fails on
    // the busy cluamgr socket, and leaves the first agent's preparation in place.
    let o = ns
        .exec(&[MEMBER_BIN, "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is in use by a running aliasd or clua-member"),
        "{o:?}"
    );
    assert_eq!(lo_addrs(&ns), lo);
    assert!(ns.out(&["ip", "link", "show", "dev", &vx]).contains(&vx));

    // Adverts: the default alias joined, the other listed not joined; the wildcard listener on
    // 8080 is reported, the one on 127.0.0.1:9090 is not.
    let (src, a) = next_advert(&recv_lines, |_| true);
    assert_eq!(src, "192.0.2.141");
    assert_eq!(a.node, "m1");
    assert_eq!(a.boot_id, 42, "{a:?}");
    assert!(!a.goodbye);
    assert_eq!(
        a.aliases,
        vec![(ALIAS, true, 1, 1), (ALIAS2, false, 1, 1)],
        "{a:?}"
    );
    assert!(a.ports.contains(&(Proto::Tcp, 8080)), "{a:?}");
    assert!(!a.ports.iter().any(|&(_, p)| p == 9090), "{a:?}");
    let (_, b) = next_advert(&recv_lines, |_| true);
    assert!(b.seq > a.seq);

    // cluamgr on the member changes the next advert at once.
    let sock = dir.join("member.sock");
    let cluamgr = Path::new(MEMBER_BIN).with_file_name("cluamgr");
    let t0 = Instant::now();
    if cluamgr.exists() {
        let o = Command::new(&cluamgr)
            .args([
                "--socket",
                sock.to_str().unwrap(),
                "-a",
                "alias=198.51.100.100,selw=5",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let o = Command::new(&cluamgr)
            .args([
                "--socket",
                sock.to_str().unwrap(),
                "-a",
                "alias=198.51.100.100,rpri=5",
            ])
            .output()
            .unwrap();
        assert!(!o.status.success(), "{o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("router attribute")
                || String::from_utf8_lossy(&o.stdout).contains("router attribute"),
            "{o:?}"
        );
    } else {
        let req = clua_ctl::protocol::Request {
            command: clua_ctl::command::parse_args(["-a", "alias=198.51.100.100,selw=5"]).unwrap(),
            json: false,
        };
        let r = clua_ctl::protocol::call(&sock, &req, Duration::from_secs(5)).unwrap();
        assert!(r.ok, "{r:?}");
    }
    let (_, c) = next_advert(&recv_lines, |s| s.aliases.first().is_some_and(|a| a.2 == 5));
    assert_eq!(c.aliases[0], (ALIAS, true, 5, 1));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the change is advertised promptly"
    );

    // SIGTERM: a goodbye, then the host is as before.
    sh(&["kill", "-TERM", &agent_pid.to_string()]);
    let (_, g) = next_advert(&recv_lines, |s| s.goodbye);
    assert!(g.seq > c.seq);
    assert_eq!((c.boot_id, g.boot_id), (42, 42));
    // The second agent (refused above) counted its start too.
    assert_eq!(std::fs::read_to_string(&boots).unwrap(), "43\n");
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let lo = lo_addrs(&ns);
    assert!(!lo.contains("198.51.100.10"), "{lo}");
    assert_eq!(
        ns.out(&["cat", "/proc/sys/net/ipv4/conf/all/arp_ignore"]),
        before_arp_ignore
    );
    assert!(ns
        .exec(&["ip", "link", "show", "dev", &vx])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| !s.success()));
    assert!(!sock.exists(), "the cluamgr socket is removed");
    let _ = std::io::stderr().flush();
    drop(ns);
}

/// In the namespace: a TCP listener on 0.0.0.0:8080 (accepts, then closes) and a UDP echo on
/// 0.0.0.0:5353.
const SERVERS: &str = r#"
import socket, threading
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 8080)); t.listen(64)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 5353))
def tcp():
    while True:
        c, _ = t.accept(); c.close()
threading.Thread(target=tcp, daemon=True).start()
print("servers ready", flush=True)
while True:
    d, a = u.recvfrom(65535)
    u.sendto(d, a)
"#;

/// Probes ADDR from inside the namespace: prints `tcp=ok|refused|<error> udp=echo|none`.
const PROBE: &str = r#"
import errno, socket, sys
a = sys.argv[1]
try:
    socket.create_connection((a, 8080), timeout=3).close(); tcp = "ok"
except ConnectionRefusedError:
    tcp = "refused"
except OSError as e:
    tcp = errno.errorcode.get(e.errno, repr(e))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(1.0)
u.sendto(b"clua-probe", (a, 5353))
try:
    udp = "echo" if u.recvfrom(100)[0] == b"clua-probe" else "wrong"
except socket.timeout:
    udp = "none"
print("tcp=%s udp=%s" % (tcp, udp))
"#;

fn probe(ns: &Netns, addr: Ipv4Addr) -> String {
    ns.out(&["python3", "-c", PROBE, &addr.to_string()])
        .trim()
        .to_string()
}

fn nft_tables(ns: &Netns) -> String {
    ns.out(&["nft", "list", "tables"])
}

/// Starts an agent on `cfg` in `ns` and waits until it is ready; its boot id from its log.
fn start_agent(ns: &Netns, cfg: &Path) -> (Kill, Receiver<String>, u64) {
    let mut agent = ns
        .exec(&[MEMBER_BIN, "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines(agent.stderr.take().unwrap());
    let agent = Kill(agent);
    let started = wait_line(&err, "the start line", |l| l.contains(" boot_id "));
    let boot_id = started
        .split_whitespace()
        .skip_while(|w| *w != "boot_id")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no boot id in {started:?}"));
    wait_line(&err, "clua-member: ready", |l| l == "clua-member: ready");
    (agent, err, boot_id)
}

/// in_nolocal_ports for real: nftables in the member's namespace refuses TCP connections and
/// drops UDP datagrams to the listed ports unless they are addressed to an alias; the table
/// goes away with the agent (and a table left by a killed agent is taken over by the next).
#[test]
fn in_nolocal_ports_in_a_namespace() {
    require_root_and_tools();
    let ns = Netns::new(format!("clmt-{}-nolocal", std::process::id()));
    assert!(
        ns.exec(&["nft", "list", "tables"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "this test needs nft (the nftables package; ./scripts/setup installs it)"
    );
    let dir = tmpdir("nolocal");
    ns.out(&["ip", "link", "set", "lo", "up"]);
    ns.out(&[
        "ip", "link", "add", "name", "ic0", "type", "veth", "peer", "name", "ic1",
    ]);
    ns.out(&["ip", "link", "set", "ic1", "up"]);
    ns.out(&["ip", "addr", "add", "192.0.2.141/24", "dev", "ic0"]);
    ns.out(&["ip", "addr", "add", "192.0.2.2/24", "dev", "ic0"]);
    ns.out(&["ip", "link", "set", "ic0", "up"]);
    let cfg = write_config(&dir, "in_nolocal_ports = [\"8080/tcp\", \"5353/udp\"]\n");
    assert!(!nft_tables(&ns).contains("clua_member"));

    // Without `nft` on its PATH the agent refuses the list before touching the host.
    let o = ns
        .exec(&[
            "env",
            "PATH=/nonexistent/clua-test",
            MEMBER_BIN,
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("`in_nolocal_ports` is enforced with nftables, but `nft` cannot be run here"),
        "{e}"
    );
    assert!(!lo_addrs(&ns).contains("198.51.100."));
    assert!(!nft_tables(&ns).contains("clua_member"));

    let mut servers = ns
        .exec(&["python3", "-u", "-c", SERVERS])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let servers_lines = lines(servers.stdout.take().unwrap());
    let _servers = Kill(servers);
    wait_line(&servers_lines, "the servers", |l| l == "servers ready");
    // Before the agent: the member's own address is served.
    assert_eq!(probe(&ns, MEMBER), "tcp=ok udp=echo");

    let (mut agent, _agent_err, boot1) = start_agent(&ns, &cfg);
    let pid = agent.0.id();
    let table = ns.out(&["nft", "list", "table", "ip", "clua_member"]);
    assert!(table.contains("hook input"), "{table}");
    assert!(
        table.contains(&format!("comment \"clua-member pid {pid}\"")),
        "{table}"
    );
    // Own (non-alias) addresses: TCP refused, UDP dropped. Alias addresses: served.
    assert_eq!(probe(&ns, MEMBER), "tcp=refused udp=none");
    assert_eq!(probe(&ns, Ipv4Addr::LOCALHOST), "tcp=refused udp=none");
    assert_eq!(probe(&ns, ALIAS), "tcp=ok udp=echo");
    assert_eq!(probe(&ns, ALIAS2), "tcp=ok udp=echo");

    // A second agent does not take over (and at its exit remove) the running agent's table.
    let o = ns
        .exec(&[MEMBER_BIN, "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!(
            "the nftables table `clua_member` belongs to a running clua-member agent (pid {pid})"
        )),
        "{e}"
    );
    assert!(nft_tables(&ns).contains("clua_member"));
    assert_eq!(probe(&ns, MEMBER), "tcp=refused udp=none");

    // SIGTERM: the table is gone and the own address is served again.
    sh(&["kill", "-TERM", &pid.to_string()]);
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!nft_tables(&ns).contains("clua_member"));
    assert!(!lo_addrs(&ns).contains("198.51.100."));
    assert_eq!(probe(&ns, MEMBER), "tcp=ok udp=echo");

    // kill -9 leaves the table behind; the next agent replaces it, and removes it at its exit.
    let (mut crashed, _, boot2) = start_agent(&ns, &cfg);
    sh(&["kill", "-KILL", &crashed.0.id().to_string()]);
    let _ = crashed.0.wait();
    assert!(nft_tables(&ns).contains("clua_member"));
    let (mut next, _next_err, boot3) = start_agent(&ns, &cfg);
    let pid = next.0.id();
    let table = ns.out(&["nft", "list", "table", "ip", "clua_member"]);
    assert!(
        table.contains(&format!("comment \"clua-member pid {pid}\"")),
        "{table}"
    );
    assert_eq!(
        table.matches("dport 8080").count(),
        1,
        "replaced, not added to: {table}"
    );
    assert_eq!(probe(&ns, MEMBER), "tcp=refused udp=none");
    assert_eq!(probe(&ns, ALIAS), "tcp=ok udp=echo");
    // Consecutive starts, a kill -9 among them, have strictly increasing boot ids, counted from
    // the missing state file (1: the start refused for want of nft, 3: the one refused for the
    // running agent's table); not from the clock.
    assert_eq!((boot1, boot2, boot3), (2, 4, 5));
    sh(&["kill", "-TERM", &pid.to_string()]);
    let status = next.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!nft_tables(&ns).contains("clua_member"));
    assert_eq!(probe(&ns, MEMBER), "tcp=ok udp=echo");
    drop(ns);
}
