//! Issue 10: `[[member]] health`, `health_interval_ms`, `health_fails`, `health_rises` in
//! aliasd.toml: defaults, ranges, and every bad value named with its member and field.

use clua_ctl::members::health::{HealthCheck, HealthSpec};
use clua_lb::config::Config;

const GOLDEN: &str = include_str!("fixtures/golden.toml");

fn errors(text: &str) -> String {
    match Config::check(text, "test.toml") {
        Ok(_) => panic!("configuration unexpectedly accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn assert_rejected(text: &str, needles: &[&str]) {
    let e = errors(text);
    for n in needles {
        assert!(e.contains(n), "error does not mention `{n}`:\n{e}");
    }
}

/// golden.toml with `extra` lines added to member m1 (after its `encap`).
fn m1_with(extra: &str) -> String {
    GOLDEN.replacen(
        "mac = \"02:00:00:00:01:01\"\nencap = \"l2\"\n",
        &format!("mac = \"02:00:00:00:01:01\"\nencap = \"l2\"\n{extra}\n"),
        1,
    )
}

#[test]
fn defaults_arp_without_mac_and_none_with_a_configured_mac() {
    // Every golden member has a configured MAC: nothing probed unless asked.
    let c = Config::parse(GOLDEN, "golden.toml").unwrap();
    assert!(c.health.is_empty(), "{:?}", c.health);
    // Without `mac` (the member answers ARP already): ARP, 500 ms, 3 fails, 2 rises.
    let text = GOLDEN.replace("mac = \"02:00:00:00:01:01\"\n", "");
    let c = Config::parse(&text, "test.toml").unwrap();
    assert_eq!(
        c.health,
        [HealthSpec {
            member: "m1".into(),
            check: HealthCheck::Arp,
            interval_ms: 500,
            fails: 3,
            rises: 2,
        }]
    );
    // Asked for, with every key.
    let c = Config::parse(
        &m1_with(
            "health = \"tcp:80\"\nhealth_interval_ms = 100\nhealth_fails = 5\nhealth_rises = 1",
        ),
        "test.toml",
    )
    .unwrap();
    assert_eq!(
        c.health,
        [HealthSpec {
            member: "m1".into(),
            check: HealthCheck::Tcp(80),
            interval_ms: 100,
            fails: 5,
            rises: 1,
        }]
    );
    // `none` switches the default off.
    let text = GOLDEN.replace("mac = \"02:00:00:00:01:01\"\n", "health = \"none\"\n");
    assert!(Config::parse(&text, "test.toml").unwrap().health.is_empty());
}

#[test]
fn bad_health_values_are_named() {
    assert_rejected(
        &m1_with("health = \"http:80\""),
        &[
            "member[0] \"m1\" health",
            "`http:80` is not none, arp or tcp:PORT",
        ],
    );
    assert_rejected(&m1_with("health = \"tcp:0\""), &["member[0] \"m1\" health"]);
    assert_rejected(
        &m1_with("health_interval_ms = 10"),
        &[
            "member[0] \"m1\" health_interval_ms",
            "10 is out of range 50..=60000",
        ],
    );
    assert_rejected(
        &m1_with("health_fails = 0"),
        &["member[0] \"m1\" health_fails", "0 is out of range 1..=100"],
    );
    assert_rejected(
        &m1_with("health_rises = 101"),
        &[
            "member[0] \"m1\" health_rises",
            "101 is out of range 1..=100",
        ],
    );
    assert_rejected(&m1_with("health = 3"), &["health"]);
}

#[test]
fn agent_members_take_no_health_keys_and_tcp_needs_a_port_address() {
    let text = m1_with("agent = true\nhealth = \"arp\"\nhealth_fails = 2").replace(
        "[tables]",
        "[adverts]\nkey_file = \"/nonexistent\"\n\n[tables]",
    );
    assert_rejected(
        &text,
        &[
            "member[0] \"m1\" health: only for members without agent",
            "member[0] \"m1\" health_fails: only for members without agent",
        ],
    );
    // An agent member without health keys is fine (its adverts say whether it is up).
    let text = m1_with("agent = true").replace(
        "[tables]",
        "[adverts]\nkey_file = \"/nonexistent\"\n\n[tables]",
    );
    Config::check(&text, "test.toml").unwrap();
    let text = m1_with("health = \"tcp:80\"").replace("address = \"192.0.2.2/25\"\n", "");
    assert_rejected(
        &text,
        &["member[0] \"m1\" health", "port \"ic0\", which has none"],
    );
}
