//! Issue 11: the configuration reload (SIGHUP, `cluamgr --reload`): which keys need a restart,
//! and all or nothing through the control plane.

use std::sync::Arc;

use clua_ctl::plane::ControlPlane;
use clua_lb::config::Config;
use clua_lb::reload::{apply, live_state};
use clua_pipeline::snapshot::MemberId;
use clua_pipeline::CoreCounters;

const GOLDEN: &str = include_str!("fixtures/golden.toml");
const MACS: [[u8; 6]; 3] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];

fn golden() -> Config {
    Config::parse(GOLDEN, "golden.toml").unwrap()
}

fn edited(from: &str, to: &str) -> Config {
    assert!(GOLDEN.contains(from), "{from}");
    Config::parse(&GOLDEN.replacen(from, to, 1), "golden.toml").unwrap()
}

fn plane(c: &Config) -> ControlPlane {
    let cores = vec![Arc::new(CoreCounters::new(64))];
    ControlPlane::start(
        live_state(c),
        MACS.to_vec(),
        None,
        cores,
        Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
    )
    .unwrap()
    .0
}

#[test]
fn live_keys_are_not_restart_only_and_restart_only_keys_are_named() {
    let g = golden();
    assert!(g.restart_only_changes(&golden()).is_empty());
    assert!(g
        .restart_only_changes(&edited(
            "{ name = \"m1\", selw = 3 }",
            "{ name = \"m1\", selw = 5 }"
        ))
        .is_empty());
    let c = edited("connections = 4096", "connections = 8192");
    assert_eq!(
        g.restart_only_changes(&c),
        ["[tables] / [limits] / [fragments]"]
    );
    let c = edited("worker_lcores = [1]", "worker_lcores = [1, 2]");
    assert_eq!(g.restart_only_changes(&c), ["[dpdk]"]);
    let c = edited("name = \"golden\"", "name = \"other\"");
    assert_eq!(g.restart_only_changes(&c), ["cluster.name"]);
}

/// All or nothing: a bad file or a restart-only change leaves the snapshot in force; a good
/// one is one new generation whose reply lists the change.
#[test]
fn a_refused_reload_changes_nothing_and_a_good_one_says_what_changed() {
    let g = golden();
    let mut p = plane(&g);
    let gen = p.snapshot().generation;
    let bad = Config::parse(
        &GOLDEN.replacen("selw = 3", "selw = \"x\"", 1),
        "golden.toml",
    )
    .map_err(|e| e.to_string());
    let e = bad.clone().unwrap_err();
    assert!(e.contains("golden.toml") && e.contains("line 78"), "{e}");
    let (r, fx) = apply(&g, bad, &mut p, 10);
    assert!(!r.ok && r.output.contains("nothing changed"), "{r:?}");
    assert!(fx.publish.is_none());
    let (r, fx) = apply(
        &g,
        Ok(edited("connections = 4096", "connections = 1024")),
        &mut p,
        11,
    );
    assert!(!r.ok && r.output.contains("[tables]"), "{r:?}");
    assert!(fx.publish.is_none());
    assert_eq!(p.snapshot().generation, gen);
    let (r, fx) = apply(
        &g,
        Ok(edited(
            "{ name = \"m1\", selw = 3 }",
            "{ name = \"m1\", selw = 5 }",
        )),
        &mut p,
        12,
    );
    assert!(r.ok, "{r:?}");
    assert!(
        r.output
            .contains("alias web: m1 selw=3,selp=1 -> selw=5,selp=1"),
        "{r:?}"
    );
    let snap = fx.publish.expect("a new snapshot");
    assert_eq!(snap.generation, gen + 1);
    let web = snap.alias(snap.alias_by_addr(0xc633_6464).unwrap());
    assert_eq!(
        web.multi_schedule
            .iter()
            .filter(|m| **m == MemberId(0))
            .count(),
        5
    );
    let (r, fx) = apply(
        &g,
        Ok(edited(
            "{ name = \"m1\", selw = 3 }",
            "{ name = \"m1\", selw = 5 }",
        )),
        &mut p,
        13,
    );
    assert!(
        r.ok && r.output.contains("no change") && fx.publish.is_none(),
        "{r:?}"
    );
}

/// Member ids survive a reload that removes a member before others: the workers' connection
/// tables name members by id, so m3's established flows stay m3's.
#[test]
fn removing_a_member_keeps_the_others_ids() {
    let g = golden();
    let mut p = plane(&g);
    let id_of = |s: &clua_pipeline::Snapshot, name: &str| {
        s.members
            .iter()
            .flatten()
            .find(|m| m.name == name)
            .map(|m| m.id)
    };
    let before = p.snapshot().clone();
    let text = GOLDEN
        .replacen(
            "[[member]]\nname = \"m2\"",
            "[[member]]\nname = \"m2gone\"",
            1,
        )
        .replacen("  { name = \"m2\", selw = 2 },\n", "", 1);
    let c = Config::parse(&text, "golden.toml").unwrap();
    let (r, fx) = apply(&g, Ok(c), &mut p, 20);
    assert!(r.ok, "{r:?}");
    assert!(r.output.contains("member m2: removed"), "{r:?}");
    assert!(r.output.contains("member m2gone: added"), "{r:?}");
    let after = fx.publish.unwrap();
    for m in ["m1", "m3", "m4"] {
        assert_eq!(id_of(&before, m), id_of(&after, m), "{m}");
    }
    // The new member took the freed slot.
    assert_eq!(id_of(&after, "m2gone"), id_of(&before, "m2"));
}

/// `cluamgr -s --json` through the control plane: the reply is the documented JSON (it parses
/// into `clua_ctl::status::Status`), with the ports the daemon's reader gives, and the text
/// has the same sections.
#[test]
fn show_json_is_the_reply_of_the_control_plane() {
    use clua_ctl::command::parse_args;
    use clua_ctl::status::{PortSample, Status};
    let g = golden();
    let mut p = plane(&g);
    p.set_port_reader(Box::new(|| {
        (0..3)
            .map(|i| PortSample {
                rx_packets: 100 * (i + 1),
                link_up: i != 2,
                ..PortSample::default()
            })
            .collect()
    }));
    let show = parse_args(["-s"]).unwrap();
    let (r, fx) = p.on_command_as(&show, true, 1000);
    assert!(r.ok && fx.publish.is_none(), "{r:?}");
    let s: Status = serde_json::from_str(&r.output).unwrap();
    assert_eq!(s.cluster.name, "golden");
    assert_eq!(s.ports.len(), 3);
    assert_eq!(s.ports[1].rx_packets, 200);
    assert_eq!(s.ports[2].link_up, Some(false));
    assert_eq!(s.workers.len(), 1);
    assert_eq!(s.rates.as_ref().unwrap().since, "start");
    let web = s.aliases.iter().find(|a| a.name == "web").unwrap();
    assert_eq!(web.single_active.as_deref(), Some("m1"));
    assert_eq!(
        web.members.iter().map(|m| m.selw).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    let (r, _) = p.on_command_as(&show, false, 1500);
    assert!(
        r.output
            .contains("\nports (PMD counters; rates per second since the previous -s (500 ms))"),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("alias traffic: 0 packets"),
        "{}",
        r.output
    );
    let (r, _) = p.on_command(&clua_ctl::command::Command::Reload, 1600);
    assert!(!r.ok, "the control plane reads no file: {r:?}");
}
