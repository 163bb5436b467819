//! cluamgr commands applied to the golden cluster (ctl::apply): every change reported, every
//! refusal leaves the state untouched, and the result always builds a valid snapshot.

use std::net::Ipv4Addr;
use std::path::Path;

use clua_ctl::apply::{apply, Applied, ApplyError, ControlState};
use clua_ctl::command::{parse_args, Command};
use clua_lb::config::Config;
use clua_pipeline::snapshot::{MemberId, ServiceMode};

const GOLDEN: &str = include_str!("fixtures/golden.toml");
const MACS: [[u8; 6]; 3] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];

fn state() -> ControlState {
    let c = Config::parse(GOLDEN, "golden.toml").unwrap();
    ControlState {
        cluster: c.cluster,
        services_file: Some("/etc/clua_services".into()),
        resvok: false,
    }
}

fn no_files(p: &Path) -> std::io::Result<String> {
    match p.to_str() {
        Some("/etc/clua_services") => {
            Ok("http 80/tcp in_single\ndomain 53/udp in_multi\napp 9000/tcp in_multi\n".into())
        }
        Some("/etc/bad_services") => Ok("http 80/tcp in_single,in_multi\n".into()),
        _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
    }
}

fn run(s: &ControlState, args: &[&str]) -> Result<(ControlState, Vec<String>), ApplyError> {
    let cmd = parse_args(args).unwrap();
    match apply(s, &cmd, &no_files)? {
        Applied::Changed(next, changes) => {
            next.cluster
                .snapshot(2, &MACS)
                .expect("an applied state always builds a snapshot");
            Ok((*next, changes))
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn refused(s: &ControlState, args: &[&str], needle: &str) {
    match run(s, args) {
        Ok(_) => panic!("{args:?} accepted"),
        Err(e) => assert!(e.to_string().contains(needle), "{args:?}: {e}"),
    }
}

#[test]
fn selw_and_selp_change_the_schedule() {
    let s = state();
    let (s2, changes) = run(&s, &["-a", "alias=web,selw=1", "--member", "m1"]).unwrap();
    assert_eq!(changes, vec!["alias web: member m1 selw 3 -> 1"]);
    let snap = s2.cluster.snapshot(2, &MACS).unwrap();
    let ids: Vec<u32> = snap.aliases[1].multi_schedule.iter().map(|m| m.0).collect();
    assert_eq!(ids, vec![0, 1, 1, 2]);
    // Seed 000 §6.8: selp 10, 10, 5.
    let (s3, _) = run(&s2, &["-a", "alias=web,selp=10", "--member", "m1"]).unwrap();
    let (s3, _) = run(&s3, &["-a", "alias=web,selp=10", "--member", "m2"]).unwrap();
    let (s3, _) = run(&s3, &["-a", "alias=web,selp=5", "--member", "m3"]).unwrap();
    let snap = s3.cluster.snapshot(3, &MACS).unwrap();
    assert!(!snap.aliases[1].multi_schedule.contains(&MemberId(2)));
    // The original state is untouched.
    assert_eq!(s, state());
}

#[test]
fn join_leave_and_in_single_failover() {
    let s = state();
    let (s2, changes) = run(&s, &["-a", "alias=web,leave", "--member", "m1"]).unwrap();
    assert!(changes[0].contains("m1 left"), "{changes:?}");
    let snap = s2.cluster.snapshot(2, &MACS).unwrap();
    assert_eq!(
        snap.aliases[1].single_active,
        Some(MemberId(1)),
        "CA9: the next member is active"
    );
    let (s3, changes) = run(&s2, &["-a", "alias=web,join,selw=4", "--member", "m1"]).unwrap();
    assert_eq!(
        changes,
        vec![
            "alias web: member m1 joined (selw 3, selp 1, its place in the join order kept)",
            "alias web: member m1 selw 3 -> 4"
        ]
    );
    let snap = s3.cluster.snapshot(3, &MACS).unwrap();
    assert_eq!(
        snap.aliases[1].single_active,
        Some(MemberId(0)),
        "a rejoin keeps its place in the join order (CA9: active again)"
    );
    // A member can leave the default alias too (joins were made explicit at load).
    let (s4, _) = run(&s, &["-a", "alias=DEFAULTALIAS,leave", "--member", "m4"]).unwrap();
    let snap = s4.cluster.snapshot(4, &MACS).unwrap();
    let joined: Vec<u32> = snap.aliases[0]
        .members
        .iter()
        .map(|am| am.member.0)
        .collect();
    assert_eq!(joined, [0, 1, 2], "m4 left the default alias");
    refused(
        &s,
        &["-a", "alias=tun,leave", "--member", "m1"],
        "has not joined",
    );
    refused(
        &s,
        &["-a", "alias=tun,selw=2", "--member", "m1"],
        "add join",
    );
    refused(
        &s,
        &["-a", "alias=web,join", "--member", "m9"],
        "no member \"m9\"",
    );
    refused(&s, &["-a", "alias=web,join"], "--member");
}

/// The defect of issue 7: leave then join reset selw and selp to 1 and moved the member to the
/// end of the join order. cluamgr(8): an option not given leaves the value unchanged; CA8: the
/// attributes are the member's, per alias, and outlive a leave.
#[test]
fn leave_then_join_keeps_the_members_attributes_and_join_order() {
    let s = state();
    let (s1, _) = run(&s, &["-a", "alias=web,selp=5", "--member", "m1"]).unwrap();
    let schedule = |st: &ControlState| {
        let snap = st.cluster.snapshot(9, &MACS).unwrap();
        let web = &snap.aliases[1];
        (
            web.multi_schedule.iter().map(|m| m.0).collect::<Vec<_>>(),
            web.single_active,
        )
    };
    let before = schedule(&s1);
    assert_eq!(
        before,
        (vec![0, 0, 0], Some(MemberId(0))),
        "m1 alone in the top tier"
    );
    let (s2, _) = run(&s1, &["-a", "alias=web,leave", "--member", "m1"]).unwrap();
    assert_eq!(schedule(&s2), (vec![1, 1, 2], Some(MemberId(1))));
    let (s3, changes) = run(&s2, &["-a", "alias=web,join", "--member", "m1"]).unwrap();
    assert_eq!(
        changes,
        ["alias web: member m1 joined (selw 3, selp 5, its place in the join order kept)"]
    );
    assert_eq!(schedule(&s3), before);
    assert_eq!(s3, s1);
}

#[test]
fn a_router_specifies_new_aliases_within_the_limits() {
    let s = state();
    let (s2, changes) = run(&s, &["-a", "alias=198.51.100.120,rpri=100,virtual=t"]).unwrap();
    assert_eq!(changes.len(), 3, "{changes:?}");
    let a = s2.cluster.aliases.last().unwrap();
    assert_eq!(
        (a.address, a.rpri, a.virtual_subnet, a.members.len()),
        (Ipv4Addr::new(198, 51, 100, 120), 100, true, 0)
    );
    refused(&s, &["-a", "alias=198.51.100.255"], "broadcast");
    refused(&s, &["-a", "alias=192.0.2.77"], "interconnect subnet");
    refused(&s, &["-a", "alias=nosuchname"], "no alias \"nosuchname\"");
    // CA1: max_aliases (8 by default) bounds the count.
    let mut t = s.clone();
    for i in 0..(8 - s.cluster.aliases.len()) {
        t = run(&t, &["-a", &format!("alias=198.51.100.{}", 120 + i)])
            .unwrap()
            .0;
    }
    refused(
        &t,
        &["-a", "alias=198.51.100.130"],
        "cluster.max_aliases is 8",
    );
}

#[test]
fn services_reload_register_and_resvok() {
    let s = state();
    let (s2, changes) = run(&s, &["-f"]).unwrap();
    assert!(
        changes[0].contains("3 entries (1 added, 1 changed, 2 removed)"),
        "{changes:?}"
    );
    let snap = s2.cluster.snapshot(2, &MACS).unwrap();
    assert_eq!(snap.service_mode(6, 80), ServiceMode::InSingle);
    assert_eq!(snap.service_mode(6, 9000), ServiceMode::InMulti);
    assert_eq!(
        snap.service_mode(6, 513),
        ServiceMode::InSingle,
        "removed entries fall back to in_single"
    );
    refused(&s, &["-F", "/etc/bad_services"], "mutually exclusive");
    refused(&s, &["-F", "/etc/missing"], "cannot read");
    let (s3, changes) = run(&s, &["--register", "7001/udp,in_multi"]).unwrap();
    assert_eq!(changes, vec!["service 7001/udp registered"]);
    assert_eq!(
        s3.cluster
            .snapshot(2, &MACS)
            .unwrap()
            .service_mode(17, 7001),
        ServiceMode::InMulti
    );
    let (s4, changes) = run(&s, &["-r", "resvok"]).unwrap();
    assert!(s4.resvok);
    assert_eq!(
        changes,
        [format!(
            "resvok false -> true: {}",
            clua_ctl::apply::RESVOK_NOTE
        )]
    );
    let none = ControlState {
        services_file: None,
        ..s.clone()
    };
    refused(&none, &["-f"], "no clua_services file is configured");
}

#[test]
fn show_and_help_change_nothing() {
    let s = state();
    assert!(matches!(
        apply(&s, &Command::Help, &no_files),
        Ok(Applied::Help)
    ));
    assert!(matches!(
        apply(&s, &parse_args(["-s", "web"]).unwrap(), &no_files),
        Ok(Applied::Show(_))
    ));
    assert!(apply(&s, &parse_args(["-s", "nosuch"]).unwrap(), &no_files).is_err());
}
