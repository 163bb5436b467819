//! The systemd units in packaging/systemd (docs/systemd.md): `systemd-analyze verify` accepts
//! both without a single warning about them, once their ExecStart points at the binaries this
//! build made (a copy of each unit in a temporary directory). A unit with a mistake in it is
//! reported, so the check can fail. And the units agree with the daemons' defaults: the
//! runtime and state directories are where aliasd and the agent put their sockets, boot counters,
//! flows file and EAL runtime directory.
//!
//! PID 1 on the build machine need not be systemd: `systemd-analyze verify` works offline, the
//! units are never started here. Needs systemd-analyze (package systemd, ./scripts/setup).

use std::path::{Path, PathBuf};
use std::process::Command;

const ALIASD_UNIT: &str = include_str!("../../packaging/systemd/clua-aliasd.service");
const MEMBER_UNIT: &str = include_str!("../../packaging/systemd/clua-member.service");

/// The values of `key=` in `[Service]` or `[Unit]`, in order (comments skipped).
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

fn one<'a>(unit: &'a str, key: &str) -> &'a str {
    let v = values(unit, key);
    assert_eq!(v.len(), 1, "{key}= set {} times", v.len());
    v[0]
}

/// The clua-member binary of this build: next to aliasd, built if `cargo test -p clua-lb`
/// did not build the workspace.
fn member_bin() -> PathBuf {
    let aliasd = PathBuf::from(env!("CARGO_BIN_EXE_aliasd"));
    let bin = aliasd.with_file_name("clua-member");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "clua-member", "--bin", "clua-member"])
            .status()
            .expect("running cargo build -p clua-member");
        assert!(st.success(), "cargo build -p clua-member failed");
    }
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies of the units, ExecStart on this build's binaries.
fn unit_copies(tag: &str) -> (TmpDir, PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("units-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let aliasd = dir.join("clua-aliasd.service");
    let member = dir.join("clua-member.service");
    std::fs::write(
        &aliasd,
        ALIASD_UNIT.replace("/usr/sbin/aliasd", env!("CARGO_BIN_EXE_aliasd")),
    )
    .unwrap();
    std::fs::write(
        &member,
        MEMBER_UNIT.replace("/usr/sbin/clua-member", member_bin().to_str().unwrap()),
    )
    .unwrap();
    (TmpDir(dir), aliasd, member)
}

/// Every line `systemd-analyze verify` prints about these unit files (and its exit status).
/// `--man=no`: the man pages named in Documentation= come with the Debian package, not with a
/// build tree.
fn verify(units: &[&Path]) -> (bool, Vec<String>) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .expect("systemd-analyze (package systemd) is needed for this test");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let about: Vec<String> = text
        .lines()
        .filter(|l| l.contains("clua-aliasd") || l.contains("clua-member"))
        .map(str::to_string)
        .collect();
    (out.status.success(), about)
}

#[test]
fn systemd_analyze_verify_accepts_both_units_without_a_warning() {
    let (_dir, aliasd, member) = unit_copies("ok");
    let (ok, warnings) = verify(&[&aliasd, &member]);
    assert!(
        ok && warnings.is_empty(),
        "systemd-analyze verify: {warnings:#?}"
    );
}

#[test]
fn a_mistake_in_a_unit_is_reported() {
    let (_dir, aliasd, member) = unit_copies("bad");
    // A misspelt key (a warning only, exit status 0) and a binary that is not there.
    let mut text = std::fs::read_to_string(&member).unwrap();
    text = text.replace("WatchdogSec=", "WatchdogSecs=");
    std::fs::write(&member, text).unwrap();
    let text = std::fs::read_to_string(&aliasd)
        .unwrap()
        .replace(env!("CARGO_BIN_EXE_aliasd"), "/nonexistent/aliasd");
    std::fs::write(&aliasd, text).unwrap();
    let (_, warnings) = verify(&[&aliasd, &member]);
    assert!(
        warnings.iter().any(|w| w.contains("WatchdogSecs")),
        "misspelt key not reported: {warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("/nonexistent/aliasd")),
        "missing binary not reported: {warnings:#?}"
    );
}

#[test]
fn units_are_notify_with_watchdog_restart_and_the_daemons_directories() {
    for unit in [ALIASD_UNIT, MEMBER_UNIT] {
        assert_eq!(one(unit, "Type"), "notify");
        assert_eq!(one(unit, "NotifyAccess"), "main");
        assert!(one(unit, "WatchdogSec").ends_with('s'));
        assert_eq!(one(unit, "Restart"), "on-failure");
        assert_eq!(one(unit, "RestartPreventExitStatus"), "2");
        one(unit, "RestartSec");
        one(unit, "StartLimitIntervalSec");
        one(unit, "StartLimitBurst");
        assert_eq!(one(unit, "StateDirectory"), "clua");
        assert_eq!(one(unit, "NoNewPrivileges"), "yes");
        assert_eq!(one(unit, "ProtectSystem"), "strict");
        assert_eq!(one(unit, "ProtectHome"), "yes");
        assert_eq!(one(unit, "PrivateTmp"), "yes");
        assert_eq!(
            one(unit, "CapabilityBoundingSet"),
            one(unit, "AmbientCapabilities")
        );
    }
    // Where the daemons write by default: /run/clua (cluamgr sockets), /run/dpdk (EAL's
    // runtime directory, aliasd only), /var/lib/clua (boot counters, flows file).
    let run = |p: &str| {
        Path::new(p)
            .parent()
            .unwrap()
            .strip_prefix("/run")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    let state = |p: &str| {
        Path::new(p)
            .parent()
            .unwrap()
            .strip_prefix("/var/lib")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    let aliasd_runtime: Vec<&str> = one(ALIASD_UNIT, "RuntimeDirectory").split(' ').collect();
    assert!(aliasd_runtime.contains(&run(clua_ctl::protocol::DEFAULT_SOCKET).as_str()));
    assert!(aliasd_runtime.contains(&"dpdk"));
    assert_eq!(
        one(MEMBER_UNIT, "RuntimeDirectory"),
        run("/run/clua/member.sock")
    );
    for f in [
        clua_ctl::boots::DEFAULT_ROUTER_STATE_FILE,
        clua_lb::config::DEFAULT_FLOWS_FILE,
    ] {
        assert_eq!(one(ALIASD_UNIT, "StateDirectory"), state(f), "{f}");
    }
    assert_eq!(
        one(MEMBER_UNIT, "StateDirectory"),
        state(clua_ctl::boots::DEFAULT_STATE_FILE)
    );
    // Capabilities: what AF_XDP/DPDK need on the router, CAP_NET_ADMIN alone on the member.
    let caps = |u| {
        let mut c: Vec<&str> = one(u, "CapabilityBoundingSet").split(' ').collect();
        c.sort();
        c
    };
    assert_eq!(
        caps(ALIASD_UNIT),
        [
            "CAP_IPC_LOCK",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_SYS_ADMIN",
            "CAP_SYS_RESOURCE"
        ]
    );
    assert_eq!(one(ALIASD_UNIT, "LimitMEMLOCK"), "infinity");
    assert_eq!(caps(MEMBER_UNIT), ["CAP_NET_ADMIN"]);
    // The agent writes ARP sysctls: /proc/sys must stay writable.
    assert!(values(MEMBER_UNIT, "ProtectKernelTunables").is_empty());
}
