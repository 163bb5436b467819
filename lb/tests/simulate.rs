//! `cluamgr simulate` (issue 11) through the control plane, over the golden cluster
//! (lb/tests/fixtures/golden.toml): for each service mode (CA9) and policy (SC1–SC3) the member
//! the simulation names is the one the real selector (clua_pipeline::select) picks for the same
//! packet on a fresh core, and a simulation changes nothing.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use clua_ctl::apply::ControlState;
use clua_ctl::command::{parse_args, Command};
use clua_ctl::model::Proto;
use clua_ctl::plane::{ControlPlane, Effects};
use clua_ctl::simulate::{Query, Segment, Simulation};
use clua_lb::config::Config;
use clua_pipeline::classify::{PacketMeta, TCP_ACK, TCP_SYN};
use clua_pipeline::hash::{FlowHashKey, FlowKey};
use clua_pipeline::select::{Selection, Selector, Timeouts};
use clua_pipeline::snapshot::Snapshot;
use clua_pipeline::CoreCounters;

const GOLDEN: &str = include_str!("fixtures/golden.toml");
const MACS: [[u8; 6]; 3] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];
const WEB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const T: Timeouts = Timeouts {
    tcp_idle_ms: 60_000,
    tcp_closing_ms: 1_000,
    tcp_half_open_ms: 5_000,
    sticky_ms: 60_000,
};

fn start() -> (ControlPlane, Arc<CoreCounters>) {
    let cluster = Config::parse(GOLDEN, "golden.toml").unwrap().cluster;
    let core = Arc::new(CoreCounters::new(16));
    let (p, _) = ControlPlane::start(
        ControlState {
            cluster,
            services_file: None,
            resvok: false,
        },
        MACS.to_vec(),
        None,
        vec![core.clone()],
        Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
    )
    .expect("the golden cluster starts");
    (p, core)
}

/// The golden cluster with the policy ports registered (CA11): 8001 weighted, 8002 sticky,
/// 8003 wildcard_sticky (all tcp, in_multi).
fn start_with_policies() -> (ControlPlane, Arc<CoreCounters>) {
    let (mut p, core) = start();
    for (port, policy) in [
        (8001, "weighted"),
        (8002, "sticky"),
        (8003, "wildcard_sticky"),
    ] {
        let c = parse_args(["--register", &format!("{port}/tcp,in_multi,{policy}")]).unwrap();
        let (r, _) = p.on_command(&c, 0);
        assert!(r.ok, "{}", r.output);
    }
    (p, core)
}

fn cmd(p: &mut ControlPlane, args: &str) {
    let (r, _) = p.on_command(&parse_args(args.split_ascii_whitespace()).unwrap(), 0);
    assert!(r.ok, "{args}: {}", r.output);
}

fn query(proto: Proto, sport: u16, dst: Ipv4Addr, dport: u16, segment: Segment) -> Query {
    Query {
        proto,
        src: SocketAddrV4::new(CLIENT, sport),
        dst: SocketAddrV4::new(dst, dport),
        segment,
        json: true,
    }
}

/// Simulates through the control plane's command path and reads the JSON reply.
fn sim(p: &mut ControlPlane, q: Query) -> Simulation {
    let (r, fx) = p.on_command(&Command::Simulate(q), 0);
    assert!(r.ok, "{}", r.output);
    assert!(fx.is_empty() && fx.publish.is_none(), "{fx:?}");
    serde_json::from_str(&r.output).unwrap_or_else(|e| panic!("{e}: {}", r.output))
}

/// What the real selector of a fresh core picks for the query's packet.
fn real(snap: &Snapshot, q: &Query) -> Option<String> {
    let key = FlowKey {
        src: u32::from(*q.src.ip()),
        dst: u32::from(*q.dst.ip()),
        src_port: q.src.port(),
        dst_port: q.dst.port(),
        proto: q.proto.number(),
    };
    let meta = PacketMeta {
        key,
        hash: key.hash_keyed(&FlowHashKey::FIXED),
        tcp_flags: match (q.proto, q.segment) {
            (Proto::Udp, _) => 0,
            (Proto::Tcp, Segment::Syn) => TCP_SYN,
            (Proto::Tcp, Segment::Ack) => TCP_ACK,
        },
        tcp_seq: 1000,
        alias: snap.alias_by_addr(key.dst).expect("an alias"),
        ..PacketMeta::default()
    };
    let mut sel = Selector::new(1024, T, snap);
    match sel.select(snap, &meta, 0, &CoreCounters::new(16)) {
        Selection::Member { member, .. } => Some(snap.member(member).unwrap().name.clone()),
        _ => None,
    }
}

#[test]
fn weighted_names_the_member_the_selector_picks_for_syn_and_ack() {
    let (mut p, _) = start_with_policies();
    let snap = p.snapshot().clone();
    let mut seen = std::collections::BTreeSet::new();
    for sport in 40000..40040 {
        for seg in [Segment::Syn, Segment::Ack] {
            let q = query(Proto::Tcp, sport, WEB, 8001, seg);
            let s = sim(&mut p, q);
            assert_eq!(s.mode.as_deref(), Some("in_multi"));
            assert_eq!(s.policy.as_deref(), Some("weighted"));
            assert_eq!(s.outcome, "member", "{s:?}");
            assert_eq!(s.member, real(&snap, &q), "{q:?}");
            // SC1: the SYN's member is the consistent-hash one, so its ACK lands there too.
            assert_eq!(s.member, s.consistent_hash_member);
            seen.insert(s.member.unwrap());
        }
    }
    assert_eq!(seen.len(), 3, "40 flows spread over m1, m2, m3: {seen:?}");
    let s = sim(&mut p, query(Proto::Tcp, 40000, WEB, 8001, Segment::Syn));
    assert_eq!(s.alias.as_ref().map(|a| a.name.as_str()), Some("web"));
    assert_eq!(s.tier_selp, Some(1));
    let rows: Vec<(&str, u32, &str, bool)> = s
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.selw, m.state.as_str(), m.eligible))
        .collect();
    assert_eq!(
        rows,
        [
            ("m1", 3, "up", true),
            ("m2", 2, "up", true),
            ("m3", 1, "up", true)
        ]
    );
    assert!(s.members.iter().all(|m| m.listening == "not reported"));
}

#[test]
fn wrr_syn_depends_on_the_cursor_and_a_miss_takes_the_consistent_hash() {
    let (mut p, _) = start();
    let snap = p.snapshot().clone();
    let q = query(Proto::Tcp, 40000, WEB, 80, Segment::Syn);
    let s = sim(&mut p, q);
    assert_eq!(
        (s.mode.as_deref(), s.policy.as_deref()),
        (Some("in_multi"), Some("wrr"))
    );
    assert_eq!(s.outcome, "round_robin");
    assert_eq!(s.member, None, "the control thread cannot see the cursors");
    assert!(s.reason.contains("cursor"), "{}", s.reason);
    assert!(s.reason.contains("m1 m1 m1 m2 m2 m3"), "{}", s.reason);
    for sport in 40000..40020 {
        let ack = query(Proto::Tcp, sport, WEB, 80, Segment::Ack);
        let a = sim(&mut p, ack);
        assert_eq!(a.outcome, "member");
        assert_eq!(a.member, real(&snap, &ack), "{ack:?}");
        assert!(a.reason.contains("non-SYN"), "{}", a.reason);
        let syn = sim(&mut p, query(Proto::Tcp, sport, WEB, 80, Segment::Syn));
        assert_eq!(syn.consistent_hash_member, a.member);
    }
    // UDP in_multi wrr: per datagram round robin.
    let u = sim(&mut p, query(Proto::Udp, 5353, WEB, 53, Segment::Syn));
    assert_eq!(
        (u.outcome.as_str(), u.segment.as_str()),
        ("round_robin", "datagram")
    );
}

#[test]
fn sticky_and_wildcard_sticky_give_the_client_hash_choice_and_say_an_affinity_wins() {
    let (mut p, _) = start_with_policies();
    let snap = p.snapshot().clone();
    for (port, policy) in [(8002, "sticky"), (8003, "wildcard_sticky")] {
        let mut first = None;
        for sport in [40000, 41000, 52000] {
            let q = query(Proto::Tcp, sport, WEB, port, Segment::Syn);
            let s = sim(&mut p, q);
            assert_eq!(s.policy.as_deref(), Some(policy));
            assert_eq!(s.outcome, "member");
            assert_eq!(s.member, real(&snap, &q), "{q:?}");
            // SC2: the first choice is by client address, whatever its port.
            assert_eq!(*first.get_or_insert(s.member.clone()), s.member);
            assert!(
                s.notes
                    .iter()
                    .any(|n| n.contains(&format!("existing {policy} affinity"))),
                "{:?}",
                s.notes
            );
        }
    }
    // With a wildcard_sticky port, every port's answer says a wildcard affinity would win.
    let s = sim(&mut p, query(Proto::Tcp, 40000, WEB, 22, Segment::Syn));
    assert!(
        s.notes.iter().any(|n| n.contains("wildcard affinity")),
        "{:?}",
        s.notes
    );
}

#[test]
fn in_single_names_the_active_member_and_follows_the_selp_tier() {
    let (mut p, _) = start();
    let q = query(Proto::Tcp, 40000, WEB, 22, Segment::Syn);
    let s = sim(&mut p, q);
    assert_eq!((s.mode.as_deref(), s.policy), (Some("in_single"), None));
    assert_eq!(
        s.member.as_deref(),
        Some("m1"),
        "CA9: the first in join order"
    );
    assert_eq!(s.member, real(&p.snapshot().clone(), &q));
    // CA8: only the highest selp tier is eligible.
    cmd(&mut p, "-a alias=web,selp=10 --member m2");
    let snap = p.snapshot().clone();
    let s = sim(&mut p, q);
    assert_eq!(s.member.as_deref(), Some("m2"));
    assert_eq!(s.member, real(&snap, &q));
    assert_eq!(s.tier_selp, Some(10));
    let eligible: Vec<&str> = s
        .members
        .iter()
        .filter(|m| m.eligible)
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(eligible, ["m2"]);
    let w = sim(&mut p, query(Proto::Tcp, 40000, WEB, 80, Segment::Ack));
    assert_eq!(w.member.as_deref(), Some("m2"));
}

#[test]
fn in_noalias_no_alias_and_no_member_say_why() {
    let (mut p, _) = start();
    let t = sim(&mut p, query(Proto::Tcp, 40000, WEB, 513, Segment::Syn));
    assert_eq!(
        (t.outcome.as_str(), t.mode.as_deref()),
        ("refused", Some("in_noalias"))
    );
    assert!(t.reason.contains("TCP RST"), "{}", t.reason);
    assert_eq!(t.member, None);
    let u = sim(&mut p, query(Proto::Udp, 40000, WEB, 513, Segment::Syn));
    assert_eq!(u.outcome, "refused");
    assert!(u.reason.contains("ICMP port unreachable"), "{}", u.reason);
    let other = Ipv4Addr::new(198, 51, 100, 250);
    let n = sim(&mut p, query(Proto::Tcp, 40000, other, 80, Segment::Syn));
    assert_eq!((n.outcome.as_str(), n.alias.is_none()), ("no_alias", true));
    assert!(
        n.reason.contains("198.51.100.250 is not an alias"),
        "{}",
        n.reason
    );
    // CA2: an alias routed for but joined by no member.
    let spare = Ipv4Addr::new(198, 51, 100, 103);
    for port in [80, 22] {
        let e = sim(&mut p, query(Proto::Tcp, 40000, spare, port, Segment::Syn));
        assert_eq!(e.outcome, "no_member", "{e:?}");
        assert!(e.reason.contains("no member of spare"), "{}", e.reason);
        assert_eq!((e.tier_selp, e.members.len()), (None, 0));
    }
}

/// Nothing changes: the snapshot in force (same Arc, same generation), the configuration, the
/// workers' and the control plane's counters, and no effect is returned.
#[test]
fn simulate_changes_nothing() {
    let (mut p, core) = start_with_policies();
    let snap = p.snapshot().clone();
    let state = p.state().clone();
    let counters = format!("{:?} {:?}", core, p.counters());
    for q in [
        query(Proto::Tcp, 40000, WEB, 8001, Segment::Syn),
        query(Proto::Tcp, 40000, WEB, 8002, Segment::Ack),
        query(Proto::Tcp, 40000, WEB, 513, Segment::Syn),
        query(Proto::Udp, 40000, WEB, 53, Segment::Syn),
        query(
            Proto::Tcp,
            40000,
            Ipv4Addr::new(10, 9, 9, 9),
            80,
            Segment::Syn,
        ),
        Query {
            json: false,
            ..query(Proto::Tcp, 40000, WEB, 80, Segment::Syn)
        },
    ] {
        let (r, fx): (_, Effects) = p.on_command(&Command::Simulate(q), 1_000_000);
        assert!(r.ok);
        assert!(fx.is_empty() && fx.publish.is_none() && fx.events.is_empty());
    }
    assert!(Arc::ptr_eq(p.snapshot(), &snap));
    assert_eq!(p.snapshot().generation, snap.generation);
    assert_eq!(*p.state(), state);
    assert_eq!(format!("{:?} {:?}", core, p.counters()), counters);
}

/// The JSON form is stable (docs/cluamgr.md): these fields, these names.
#[test]
fn json_fields_are_stable_and_text_says_the_same() {
    let (mut p, _) = start_with_policies();
    let q = query(Proto::Tcp, 40000, WEB, 8001, Segment::Syn);
    let (r, _) = p.on_command(&Command::Simulate(q), 0);
    let v: serde_json::Value = serde_json::from_str(&r.output).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut want = [
        "proto",
        "src",
        "dst",
        "segment",
        "generation",
        "alias",
        "mode",
        "policy",
        "tier_selp",
        "members",
        "outcome",
        "member",
        "consistent_hash_member",
        "reason",
        "notes",
    ];
    want.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(v["src"], "203.0.113.7:40000");
    assert_eq!(v["alias"]["address"], "198.51.100.100");
    let m = v["members"][0].as_object().unwrap();
    let mut mk: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
    mk.sort_unstable();
    assert_eq!(
        mk,
        ["eligible", "listening", "name", "selp", "selw", "state"]
    );
    let member = v["member"].as_str().unwrap().to_string();
    let (t, _) = p.on_command(&Command::Simulate(Query { json: false, ..q }), 0);
    assert!(t.ok);
    assert!(
        t.output
            .contains("alias web 198.51.100.100, in_multi,weighted"),
        "{}",
        t.output
    );
    assert!(
        t.output.contains(&format!("member: {member}\n")),
        "{}",
        t.output
    );
    assert!(t.output.contains("eligible tier: selp 1"), "{}", t.output);
}
