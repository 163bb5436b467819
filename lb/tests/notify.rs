//! The real aliasd binary under a stand-in for systemd's notification socket (docs/systemd.md):
//! the golden world (fixtures/golden.toml) on net_pcap ports with empty input files, as in
//! dpdk_golden.rs, `NOTIFY_SOCKET` an abstract socket this test bound and `WATCHDOG_USEC=200000`.
//!
//! - `READY=1` is the first datagram and comes after the `aliasd: ready` line was written (the
//!   log is a file here, so what was written before the datagram is in it when it arrives), with
//!   the cluamgr socket and the metrics endpoint already serving;
//! - `WATCHDOG=1` keeps coming, never more than `WATCHDOG_USEC` apart (systemd would kill it);
//! - at SIGTERM `STOPPING=1` arrives, no ping after it, and aliasd exits 0.

use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const GOLDEN_TOML: &str = include_str!("fixtures/golden.toml");

fn write_empty_pcap(path: &std::path::Path) {
    let mut b = Vec::new();
    for v in [
        0xa1b2c3d4u32.to_le_bytes().as_slice(),
        &2u16.to_le_bytes(),
        &4u16.to_le_bytes(),
        &[0; 8],
        &65535u32.to_le_bytes(),
        &1u32.to_le_bytes(),
    ] {
        b.extend_from_slice(v);
    }
    std::fs::write(path, b).unwrap();
}

/// aliasd, killed if the test fails before it stopped it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn aliasd_notifies_ready_watchdog_and_stopping() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_empty_pcap(&dir.join("empty.pcap"));
    let metrics_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.display();
    let mut config = GOLDEN_TOML.to_string();
    for (i, port) in ["client", "ic0", "ic1"].iter().enumerate() {
        config = config.replace(
            &format!("\"net_null{i}\""),
            &format!("\"net_pcap{i},rx_pcap={d}/empty.pcap,tx_pcap={d}/{port}-out.pcap\""),
        );
    }
    config += &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    config += &format!("\n[control]\nsocket = \"{d}/aliasd.sock\"\n");
    config += &format!("\n[sync]\nflows_file = \"{d}/flows\"\n");
    std::fs::write(dir.join("aliasd.toml"), &config).unwrap();

    // An abstract name, as systemd uses for user managers and some containers: the '@' form.
    let name = format!("clua-notify-test-{}", std::process::id());
    let sock = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    {
        let sock = sock.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), msg)).is_err() {
                    break;
                }
            }
        });
    }

    let log_path = dir.join("aliasd.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_aliasd"))
            .arg("--config")
            .arg(dir.join("aliasd.toml"))
            .env("NOTIFY_SOCKET", format!("@{name}"))
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID")
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap(),
    );
    let child = &mut daemon.0;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // READY=1 first, and only after the ready line.
    let first = rx.recv_timeout(Duration::from_secs(60));
    let log_at_ready = log();
    let Ok((ready_at, ready)) = first else {
        panic!("no notification from aliasd:\n{}", log());
    };
    assert!(
        ready.starts_with("READY=1\n"),
        "first notification is not READY=1: {ready:?}\n{log_at_ready}"
    );
    assert!(
        ready
            .contains("STATUS=ready: cluster golden with 3 ports, 4 members, 5 aliases, 1 workers"),
        "READY=1 without the status line: {ready:?}"
    );
    assert!(
        log_at_ready.contains("aliasd: ready: cluster golden"),
        "READY=1 before the ready line:\n{log_at_ready}"
    );
    assert!(
        dir.join("aliasd.sock").exists(),
        "READY=1 before the cluamgr socket exists"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_ok(),
        "READY=1 before the metrics endpoint serves"
    );

    // Pings for 1.5 s: at 100 ms (half of WATCHDOG_USEC), never a gap of WATCHDOG_USEC.
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
    let n = pings.len() - 1;
    assert!(
        n >= 10,
        "{n} watchdog pings in 1.5 s at a 100 ms interval:\n{}",
        log()
    );
    let max_gap = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        max_gap < Duration::from_millis(200),
        "watchdog gap {max_gap:?} >= WATCHDOG_USEC"
    );
    assert!(
        pings
            .windows(2)
            .all(|w| w[1] - w[0] >= Duration::from_millis(50)),
        "pings much faster than half of WATCHDOG_USEC"
    );

    // SIGTERM: STOPPING=1 (possibly after a last ping), then nothing, then a clean exit.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
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
    let status = child.wait().unwrap();
    let stopping = stopping.unwrap_or_else(|| panic!("no STOPPING=1 at SIGTERM:\n{}", log()));
    assert!(
        stopping.starts_with("STOPPING=1\nSTATUS=stopping"),
        "{stopping:?}"
    );
    assert!(status.success(), "aliasd failed ({status}):\n{}", log());
    let after: Vec<String> = rx.try_iter().map(|(_, m)| m).collect();
    assert!(
        after.is_empty(),
        "notifications after STOPPING=1: {after:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
