//! The aliasd command line: `--check` prints the parsed cluster and exits 0; a bad configuration
//! exits 2 naming every problem; a DPDK device that does not exist exits 1 naming the port and
//! the device, and leaves no EAL runtime directory behind.

use std::path::PathBuf;
use std::process::Command;

const GOLDEN: &str = include_str!("fixtures/golden.toml");

fn write(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let p = dir.join(format!("{name}-{}.toml", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

fn aliasd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_parsed_cluster() {
    let p = write("check-ok", GOLDEN);
    let (code, out, err) = aliasd(&["--config", p.to_str().unwrap(), "--check"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alias  web"), "{out}");
    assert!(
        out.contains("m1(selw=3,selp=1) m2(selw=2,selp=1) m3(selw=1,selp=1)"),
        "{out}"
    );
    // CA1: the default alias lists every member.
    assert!(out.contains("m4(selw=1,selp=1)"), "{out}");
    assert!(
        out.contains("service who        513/udp in_noalias,static"),
        "{out}"
    );
    assert!(out.contains("configuration ok"), "{out}");
}

#[test]
fn bad_configuration_exits_2_naming_each_problem() {
    let text = GOLDEN
        .replace("198.51.100.101", "224.0.0.5")
        .replace("port = \"ic1\"", "port = \"ic7\"");
    let p = write("check-bad", &text);
    let (code, _, err) = aliasd(&["--config", p.to_str().unwrap(), "--check"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("alias \"tun\" address: 224.0.0.5 is a multicast address"),
        "{err}"
    );
    assert!(
        err.contains("member \"m4\" port: port \"ic7\" does not exist"),
        "{err}"
    );
    let (code, _, err) = aliasd(&["--config", "/nonexistent/aliasd.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/aliasd.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn missing_dpdk_device_is_named_and_nothing_is_left_behind() {
    let sock =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}.sock", std::process::id()));
    let text = GOLDEN.replace(
        "devargs = \"net_null1\"",
        "devargs = \"net_af_packet1,iface=nosuchif0\"",
    ) + &format!("\n[control]\nsocket = \"{}\"\n", sock.display());
    let p = write("no-device", &text);
    let child = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .arg("--config")
        .arg(&p)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let dir = format!("/var/run/dpdk/clua-{pid}");
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    assert!(
        err.contains("port \"ic0\": DPDK device `net_af_packet1` not found"),
        "{err}"
    );
    assert!(!sock.exists(), "the control socket is removed on exit");
}

#[test]
fn aliasd_is_the_router_only() {
    // The member agent is its own binary, clua-member (no DPDK linked).
    let (code, _, err) = aliasd(&["--member-config", "member.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--member-config"), "{err}");
}

/// Issue 7: a member named `m 1` was accepted and could never come up; `--check` now refuses it,
/// naming the member and its name field (the rule is `clua_ctl::name`'s).
#[test]
fn a_member_name_adverts_cannot_carry_is_refused() {
    let text = GOLDEN
        .replace("name = \"m2\"\nport", "name = \"m 1\"\nport")
        .replace(
            "{ name = \"m2\", selw = 2 }",
            "{ name = \"m 1\", selw = 2 }",
        );
    let p = write("check-name", &text);
    let (code, _, err) = aliasd(&["--config", p.to_str().unwrap(), "--check"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("member \"m 1\" name: `m 1` is not a name: byte 1 is not a letter"),
        "{err}"
    );
}
