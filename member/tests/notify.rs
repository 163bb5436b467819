//! The member agent under a stand-in for systemd's notification socket (docs/systemd.md), in a
//! throwaway network namespace (`clmn-<pid>`, deleted even when the test fails): the agent's
//! address and a router address on a veth, `NOTIFY_SOCKET` a path socket this test bound (an
//! abstract name would not reach into another network namespace) and `WATCHDOG_USEC=200000`.
//!
//! `READY=1` comes once, after the `clua-member: ready` line, with a status naming the node and
//! its boot_id; `WATCHDOG=1` pings keep coming under `WATCHDOG_USEC`; SIGTERM brings
//! `STOPPING=1` and a clean exit. Needs root and iproute2.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MEMBER_BIN: &str = env!("CARGO_BIN_EXE_clua-member");
const KEY: &[u8] = b"clua member agent test key, 32+ bytes long";

struct Cleanup {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ns_run(ns: &str, args: &[&str]) {
    let st = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "{args:?} (this test needs root and iproute2)");
}

#[test]
fn member_agent_notifies_ready_watchdog_and_stopping() {
    use std::os::unix::fs::PermissionsExt;
    let ns = format!("clmn-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("clmn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _ = Command::new("ip")
        .args(["netns", "del", &ns])
        .stderr(Stdio::null())
        .status();
    let st = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap();
    assert!(
        st.success(),
        "ip netns add (this test needs root and iproute2)"
    );
    let mut guard = Cleanup {
        ns: ns.clone(),
        dir: dir.clone(),
        child: None,
    };
    ns_run(&ns, &["ip", "link", "set", "lo", "up"]);
    ns_run(
        &ns,
        &[
            "ip", "link", "add", "name", "ic0", "type", "veth", "peer", "name", "ic1",
        ],
    );
    ns_run(&ns, &["ip", "link", "set", "ic1", "up"]);
    ns_run(&ns, &["ip", "addr", "add", "192.0.2.141/24", "dev", "ic0"]);
    ns_run(&ns, &["ip", "link", "set", "ic0", "up"]);

    let key = dir.join("member.key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = dir.join("member.toml");
    std::fs::write(
        &cfg,
        format!(
            "node = \"m1\"\naddress = \"192.0.2.141\"\nrouters = [\"192.0.2.2:9471\"]\n\
             key_file = \"{}\"\ninterval_ms = 200\ndefault_alias = \"198.51.100.100\"\n\
             aliases = [\"198.51.100.100\"]\nsocket = \"{}\"\nstate_file = \"{}\"\n",
            key.display(),
            dir.join("member.sock").display(),
            dir.join("state/member-boots").display()
        ),
    )
    .unwrap();

    let notify = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            if tx
                .send((Instant::now(), String::from_utf8_lossy(&buf[..n]).into()))
                .is_err()
            {
                break;
            }
        }
    });
    let log_path = dir.join("member.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &ns, MEMBER_BIN, "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let pid = child.id();
    guard.child = Some(child);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let first = rx.recv_timeout(Duration::from_secs(20));
    let log_at_ready = log();
    let (ready_at, ready) = first.unwrap_or_else(|_| panic!("no notification:\n{}", log()));
    assert!(ready.starts_with("READY=1\n"), "{ready:?}\n{log_at_ready}");
    assert!(
        ready.contains("STATUS=advertising node m1 boot_id 1 (seq "),
        "{ready:?}"
    );
    assert!(
        log_at_ready.contains("clua-member: ready"),
        "READY=1 before the ready line:\n{log_at_ready}"
    );

    let mut pings = vec![ready_at];
    let until = Instant::now() + Duration::from_millis(1500);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((at, m)) => {
                assert_eq!(m, "WATCHDOG=1", "unexpected notification while running");
                pings.push(at);
            }
            Err(_) => break,
        }
    }
    assert!(pings.len() > 10, "{} pings in 1.5 s", pings.len() - 1);
    let max_gap = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(max_gap < Duration::from_millis(200), "gap {max_gap:?}");

    // `ip netns exec` execs the agent: this pid is the agent's.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let mut stopping = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stopping.is_none() && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((_, m)) if m == "WATCHDOG=1" => {}
            Ok((_, m)) => stopping = Some(m),
            Err(_) => {}
        }
    }
    let status = guard.child.as_mut().unwrap().wait().unwrap();
    let stopping = stopping.unwrap_or_else(|| panic!("no STOPPING=1:\n{}", log()));
    assert!(
        stopping.starts_with("STOPPING=1\nSTATUS=stopping"),
        "{stopping:?}"
    );
    assert!(status.success(), "agent failed ({status}):\n{}", log());
}
