//! The flow hand-off between alias routers (issue 9; docs/sync-protocol.md) through the control
//! plane, the way aliasd drives it, with byte buffers and fake time: one router's hand-off frames
//! are run through the other's classify (they must be punted as `Sync` on the interconnect) and
//! given to its `on_frame`. The routers list their members in different orders, so their member
//! ids differ: what arrives must have been carried by member address.

use std::net::Ipv4Addr;
use std::sync::Arc;

use clua_ctl::apply::ControlState;
use clua_ctl::command::parse_args;
use clua_ctl::frame::UdpFrame;
use clua_ctl::model::Prefix;
use clua_ctl::plane::{ControlPlane, Effects, Start, StartError, Transmit};
use clua_ctl::routers::tracker::RouterSettings;
use clua_ctl::sync::{SyncCounters, SyncSettings, FLUSH_MS};
use clua_lb::config::Config;
use clua_pipeline::classify::classify;
use clua_pipeline::conntrack::FlowState;
use clua_pipeline::handoff::FlowRecord;
use clua_pipeline::hash::FlowKey;
use clua_pipeline::{CoreCounters, MemberId, PuntReason, Verdict};

const GOLDEN: &str = include_str!("fixtures/golden.toml");
const KEY: &[u8] = b"sync test key, long enough";
const IC0: u16 = 1;
const WEB: u32 = u32::from_be_bytes([198, 51, 100, 100]);

fn macs(k: u8) -> Vec<[u8; 6]> {
    vec![[2, 0, 0, 0, k, 1], [2, 0, 0, 0, k, 2], [2, 0, 0, 0, k, 3]]
}

/// Router `k` (1..): client 198.51.100.(1+k), ic0 192.0.2.(1+k); members in the fixture's order,
/// or reversed.
fn state(k: u8, reversed: bool) -> ControlState {
    let mut c = Config::parse(GOLDEN, "golden.toml").unwrap().cluster;
    let addrs = [
        Prefix {
            addr: [198, 51, 100, 1 + k].into(),
            len: 24,
        },
        Prefix {
            addr: [192, 0, 2, 1 + k].into(),
            len: 25,
        },
        Prefix {
            addr: [192, 0, 2, 129 + k].into(),
            len: 25,
        },
    ];
    for (p, a) in c.ports.iter_mut().zip(addrs) {
        p.address = Some(a);
        p.mac = None;
    }
    if reversed {
        c.members.reverse();
    }
    ControlState {
        cluster: c,
        services_file: None,
        resvok: false,
    }
}

fn routers(name: &str, key: &[u8]) -> RouterSettings {
    RouterSettings {
        node: name.into(),
        key: key.to_vec(),
        udp_port: 9472,
        interval_ms: 100,
        dead_misses: 3,
        boot_id: 1,
        garp_count: 1,
        garp_interval_ms: 100,
        interconnect: "ic0".into(),
    }
}

fn start(
    k: u8,
    st: ControlState,
    key: &[u8],
    sync: Option<SyncSettings>,
    now: u64,
) -> Result<(ControlPlane, Effects), StartError> {
    ControlPlane::start_with(Start {
        state: st,
        macs: macs(k),
        adverts: None,
        routers: Some(routers(&format!("r{k}"), key)),
        bfd: None,
        rip: None,
        sync,
        wall_clock_ms: 0,
        cores: vec![Arc::new(CoreCounters::new(16))],
        files: Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
        now_ms: now,
    })
}

fn plane(k: u8, reversed: bool, sync: SyncSettings) -> (ControlPlane, Effects) {
    start(k, state(k, reversed), KEY, Some(sync), 1000).expect("starts")
}

/// The hand-off frames of `fx` (UDP to the sync port on ic0; the router protocol's go to 9472).
fn sync_frames(fx: &Effects) -> Vec<Transmit> {
    fx.transmit
        .iter()
        .filter(|t| t.port == IC0 && t.frame.len() > 38 && t.frame[36..38] == 9473u16.to_be_bytes())
        .cloned()
        .collect()
}

/// `frames` delivered to `to` as aliasd would: classify must punt each as `Sync` on ic0.
fn deliver(to: &mut ControlPlane, frames: &[Transmit], now: u64) -> Effects {
    let mut all = Effects::default();
    for t in frames {
        assert_eq!(t.port, IC0);
        let verdict = classify(to.snapshot(), IC0, &t.frame);
        assert_eq!(verdict.err(), Some(Verdict::Punt(PuntReason::Sync)));
        let mut f = t.frame.clone();
        let fx = to.on_frame(IC0, PuntReason::Sync, &mut f, now);
        all.install.extend(fx.install);
        all.walk_all |= fx.walk_all;
        all.transmit.extend(fx.transmit);
    }
    all
}

fn id_of(p: &ControlPlane, name: &str) -> MemberId {
    p.snapshot()
        .members
        .iter()
        .flatten()
        .find(|m| m.name == name)
        .map(|m| m.id)
        .unwrap_or_else(|| panic!("no member {name}"))
}

fn name_of(p: &ControlPlane, id: MemberId) -> String {
    p.snapshot().members[id.0 as usize]
        .as_ref()
        .map(|m| m.name.clone())
        .expect("a member")
}

fn record(i: u32, member: MemberId) -> FlowRecord {
    FlowRecord {
        key: FlowKey {
            src: u32::from_be_bytes([203, 0, 113, 0]) + i,
            dst: WEB,
            src_port: 1024 + i as u16,
            dst_port: 80,
            proto: 6,
        },
        member,
        state: if i.is_multiple_of(5) {
            FlowState::Closing
        } else {
            FlowState::Established
        },
        isn: 0x1000 + i,
        remaining_ms: 300_000 - i,
    }
}

fn counters(p: &ControlPlane) -> SyncCounters {
    p.counters().sync().expect("sync counters")
}

/// A's records for m1, m2, m3 (A's ids), handed to A at `now`, and the frames A sent by the
/// flush.
fn hand_off(a: &mut ControlPlane, n: u32, now: u64) -> (Vec<FlowRecord>, Vec<Transmit>) {
    let names = ["m1", "m2", "m3"];
    let recs: Vec<FlowRecord> = (0..n)
        .map(|i| record(i, id_of(a, names[i as usize % 3])))
        .collect();
    let mut frames = sync_frames(&a.on_flows(&recs, now));
    frames.extend(sync_frames(&a.on_tick(now + FLUSH_MS)));
    (recs, frames)
}

#[test]
fn records_from_one_router_are_installed_by_its_peer_in_the_peers_member_ids() {
    let (mut a, _) = plane(1, false, SyncSettings::default());
    let (mut b, _) = plane(2, true, SyncSettings::default());
    assert_ne!(id_of(&a, "m1"), id_of(&b, "m1"), "the ids must differ");
    assert_eq!(a.snapshot().control.sync, 9473);
    // 51 records fill a datagram on ic0 (MTU 1600); 60 make one full and one flushed 10 ms on.
    let recs: Vec<FlowRecord> = (0..60)
        .map(|i| record(i, id_of(&a, ["m1", "m2", "m3"][i as usize % 3])))
        .collect();
    let fx = a.on_flows(&recs, 2000);
    assert_eq!(sync_frames(&fx).len(), 1, "the full datagram goes at once");
    assert!(sync_frames(&a.on_tick(2000 + FLUSH_MS - 1)).is_empty());
    let mut frames = sync_frames(&fx);
    frames.extend(sync_frames(&a.on_tick(2000 + FLUSH_MS)));
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|t| t.frame.len() - 14 <= 1600));

    let got = deliver(&mut b, &frames, 2011);
    assert_eq!(got.install.len(), 60);
    for (sent, installed) in recs.iter().zip(&got.install) {
        assert_eq!(installed.key, sent.key);
        assert_eq!(
            name_of(&b, installed.member),
            name_of(&a, sent.member),
            "the same member by address"
        );
        assert_eq!(installed.member, id_of(&b, &name_of(&a, sent.member)));
        assert_eq!(
            (installed.state, installed.isn, installed.remaining_ms),
            (sent.state, sent.isn, sent.remaining_ms)
        );
    }
    assert!(!got.walk_all);
    let (ca, cb) = (counters(&a), counters(&b));
    assert_eq!((ca.records_sent, ca.messages_sent), (60, 2));
    assert_eq!(
        (
            cb.records_received,
            cb.records_installed,
            cb.messages_received
        ),
        (60, 60, 2)
    );
    // `cluamgr -s` shows it.
    let (reply, _) = b.on_command(&parse_args(["-s"]).unwrap(), 2020);
    assert!(
        reply
            .output
            .contains("  received: 60 records in 2 datagrams, 60 installed"),
        "{}",
        reply.output
    );
    let (reply, _) = a.on_command(&parse_args(["-s"]).unwrap(), 2020);
    assert!(
        reply.output.contains("sync: flow hand-off on UDP 9473")
            && reply.output.contains("51 records per datagram")
            && reply.output.contains("  sent: 60 records in 2 datagrams"),
        "{}",
        reply.output
    );
}

#[test]
fn one_broadcast_reaches_every_peer_each_in_its_own_member_ids() {
    let (mut a, _) = plane(1, false, SyncSettings::default());
    let (mut b, _) = plane(2, true, SyncSettings::default());
    let mut st = state(3, false);
    st.cluster.members.rotate_left(2);
    let (mut c, _) = start(3, st, KEY, Some(SyncSettings::default()), 1000).unwrap();
    let ids = |p: &ControlPlane| id_of(p, "m1");
    assert!(ids(&a) != ids(&b) && ids(&b) != ids(&c) && ids(&a) != ids(&c));
    let (recs, frames) = hand_off(&mut a, 9, 2000);
    assert_eq!(frames.len(), 1);
    for peer in [&mut b, &mut c] {
        let got = deliver(peer, &frames, 2020);
        let want: Vec<String> = recs.iter().map(|r| name_of(&a, r.member)).collect();
        let have: Vec<String> = got
            .install
            .iter()
            .map(|r| name_of(peer, r.member))
            .collect();
        assert_eq!(have, want);
    }
}

#[test]
fn a_clean_shutdown_sends_the_batch_in_progress_before_the_goodbye() {
    let (mut a, _) = plane(1, false, SyncSettings::default());
    let (mut b, _) = plane(2, true, SyncSettings::default());
    let fx = a.on_flows(
        &[record(1, id_of(&a, "m2")), record(2, id_of(&a, "m1"))],
        2000,
    );
    assert!(sync_frames(&fx).is_empty(), "not due yet");
    let fx = a.shutdown();
    let frames = sync_frames(&fx);
    assert_eq!(frames.len(), 1);
    let udp_to = |port: u16| {
        fx.transmit
            .iter()
            .position(|t| t.frame.get(36..38) == Some(&port.to_be_bytes()[..]))
    };
    assert!(udp_to(9473).unwrap() < udp_to(9472).expect("the goodbye"));
    let got = deliver(&mut b, &frames, 2001);
    let names: Vec<String> = got.install.iter().map(|r| name_of(&b, r.member)).collect();
    assert_eq!(names, ["m2", "m1"]);
}

#[test]
fn a_starting_router_asks_and_its_peer_walks_its_whole_table() {
    let (mut a, _) = plane(1, false, SyncSettings::default());
    let (mut b, fx) = plane(2, true, SyncSettings::default());
    let req = sync_frames(&fx);
    assert_eq!(req.len(), 1, "one request at start");
    let got = deliver(&mut a, &req, 1001);
    assert!(got.walk_all);
    assert!(got.install.is_empty());
    assert_eq!(counters(&a).requests_received, 1);
    assert_eq!(counters(&b).requests_sent, 1);
    // The walk's records come back to b.
    let (_, frames) = hand_off(&mut a, 3, 1002);
    let got = deliver(&mut b, &frames, 1020);
    assert_eq!(got.install.len(), 3);
    assert_eq!(name_of(&b, got.install[0].member), "m1");
}

#[test]
fn the_request_is_repeated_when_the_first_peer_is_heard_if_no_flows_came() {
    let (mut a, _) = plane(1, false, SyncSettings::default());
    let (mut b, fx) = plane(2, true, SyncSettings::default());
    assert_eq!(sync_frames(&fx).len(), 1);
    // a's router-protocol announcement reaches b: b hears its first peer.
    let mut sent = Vec::new();
    for now in (1000..1400).step_by(10) {
        let fx = a.on_tick(now);
        for t in fx.transmit.iter().filter(|t| t.port == IC0) {
            if classify(b.snapshot(), IC0, &t.frame).err()
                == Some(Verdict::Punt(PuntReason::Router))
            {
                let mut f = t.frame.clone();
                sent.extend(sync_frames(&b.on_frame(
                    IC0,
                    PuntReason::Router,
                    &mut f,
                    now,
                )));
            }
        }
        sent.extend(sync_frames(&b.on_tick(now)));
    }
    assert_eq!(sent.len(), 1, "one more request, at the first peer only");
    assert!(deliver(&mut a, &sent, 1400).walk_all);
    assert_eq!(counters(&b).requests_sent, 2);
}

#[test]
fn forged_replayed_truncated_and_garbled_frames_are_counted_and_install_nothing() {
    let (mut b, _) = plane(2, true, SyncSettings::default());
    // Signed with another key.
    let (mut forger, _) = start(
        3,
        state(3, false),
        b"not the cluster's key, 16+",
        Some(SyncSettings::default()),
        1000,
    )
    .unwrap();
    let (_, frames) = hand_off(&mut forger, 5, 2000);
    assert_eq!(frames.len(), 1);
    assert!(deliver(&mut b, &frames, 2020).install.is_empty());
    let c = counters(&b);
    assert_eq!(
        c.refused[clua_ctl::sync::wire::SyncError::BadTag.index()],
        1
    );

    // The real thing once, then its replay.
    let (mut a, _) = plane(1, false, SyncSettings::default());
    let (_, frames) = hand_off(&mut a, 5, 2000);
    assert_eq!(deliver(&mut b, &frames, 2020).install.len(), 5);
    assert!(deliver(&mut b, &frames, 2021).install.is_empty());
    assert_eq!(counters(&b).replayed, 1);

    // The payload cut short, in a well-formed UDP datagram; and one byte changed.
    let (_, frames) = hand_off(&mut a, 5, 3000);
    let payload = &frames[0].frame[42..];
    let spec = UdpFrame {
        src_mac: macs(1)[1],
        dst_mac: [0xff; 6],
        src: Ipv4Addr::new(192, 0, 2, 2),
        dst: Ipv4Addr::new(192, 0, 2, 127),
        ttl: 1,
        src_port: 9473,
        dst_port: 9473,
        dscp_ecn: 0,
        dont_frag: false,
        vlan_tci: None,
    };
    let cut = Transmit {
        port: IC0,
        frame: spec.build(&payload[..payload.len() - 40]).unwrap(),
    };
    let mut changed = payload.to_vec();
    changed[100] ^= 0x40;
    let garbled = Transmit {
        port: IC0,
        frame: spec.build(&changed).unwrap(),
    };
    // And a frame whose IPv4 datagram is cut (not even UDP any more).
    let mut short = frames[0].clone();
    short.frame.truncate(60);
    assert!(deliver(&mut b, &[cut, garbled], 3020).install.is_empty());
    let mut f = short.frame.clone();
    assert!(b
        .on_frame(IC0, PuntReason::Sync, &mut f, 3020)
        .install
        .is_empty());
    let c = counters(&b);
    use clua_ctl::sync::wire::SyncError;
    assert_eq!(c.refused[SyncError::Truncated.index()], 1);
    assert_eq!(c.refused[SyncError::BadTag.index()], 2);
    assert_eq!(c.refused[SyncError::Malformed.index()], 1);
    assert_eq!(c.records_installed, 5);
    // The genuine frame is still fresh (nothing above consumed its sequence number).
    assert_eq!(deliver(&mut b, &frames, 3021).install.len(), 5);
}

#[test]
fn a_record_naming_an_unknown_member_is_a_counted_drop() {
    // a knows m3 at another address than b does.
    let mut st = state(1, false);
    st.cluster
        .members
        .iter_mut()
        .find(|m| m.name == "m3")
        .unwrap()
        .address = Ipv4Addr::new(192, 0, 2, 99);
    let (mut a, _) = start(1, st, KEY, Some(SyncSettings::default()), 1000).unwrap();
    let (mut b, _) = plane(2, true, SyncSettings::default());
    let (_, frames) = hand_off(&mut a, 6, 2000);
    let got = deliver(&mut b, &frames, 2020);
    assert_eq!(got.install.len(), 4, "m1 and m2's records");
    assert!(got.install.iter().all(|r| name_of(&b, r.member) != "m3"));
    assert_eq!(counters(&b).unknown_member, 2);
    // A record naming a member id a's snapshot does not have is not sent.
    let fx = a.on_flows(&[record(1, MemberId(999))], 3000);
    assert!(sync_frames(&fx).is_empty());
    assert_eq!(counters(&a).unmapped, 1);
}

#[test]
fn the_rate_limit_drops_and_counts() {
    let slow = SyncSettings {
        max_records_per_sec: 100,
        ..SyncSettings::default()
    };
    let (mut a, _) = plane(1, false, slow);
    let (mut b, _) = plane(2, true, SyncSettings::default());
    // A burst of at least one datagram (51) passes, the rest of 1000 is dropped.
    let (_, frames) = hand_off(&mut a, 1000, 2000);
    assert_eq!(counters(&a).rate_limited, 1000 - 51);
    assert_eq!(deliver(&mut b, &frames, 2020).install.len(), 51);
    // A second later, 100 more tokens, capped at the burst.
    let (_, frames) = hand_off(&mut a, 1000, 3000);
    assert_eq!(deliver(&mut b, &frames, 3020).install.len(), 51);
    assert_eq!(counters(&a).rate_limited, 2 * (1000 - 51));
    assert_eq!(counters(&a).records_sent, 102);
}

#[test]
fn sync_needs_the_router_protocol_and_speaks_only_on_its_interconnect() {
    let e = ControlPlane::start_with(Start {
        state: state(1, false),
        macs: macs(1),
        adverts: None,
        routers: None,
        bfd: None,
        rip: None,
        sync: Some(SyncSettings::default()),
        wall_clock_ms: 0,
        cores: vec![],
        files: Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
        now_ms: 0,
    })
    .err();
    assert!(matches!(e, Some(StartError::SyncWithoutRouters)), "{e:?}");
    // Off: no port punted, records dropped.
    let (mut off, _) = start(1, state(1, false), KEY, None, 1000).unwrap();
    assert_eq!(off.snapshot().control.sync, 0);
    assert!(off.on_flows(&[record(1, MemberId(0))], 1000).is_empty());
    assert!(off.counters().sync().is_none());
    // On: a hand-off frame on another port than the interconnect is unexpected.
    let (mut a, _) = plane(1, false, SyncSettings::default());
    let (mut b, _) = plane(2, true, SyncSettings::default());
    let (_, frames) = hand_off(&mut a, 2, 2000);
    let mut f = frames[0].frame.clone();
    let fx = b.on_frame(2, PuntReason::Sync, &mut f, 2020);
    assert!(fx.install.is_empty());
    assert_eq!(
        clua_ctl::plane::ControlCounters::get(&b.counters().unexpected),
        1
    );
    assert_eq!(counters(&b).records_received, 0);
}
