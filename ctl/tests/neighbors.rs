//! Issue 8: member MACs learned by ARP on the interconnect, through [`ControlPlane`] with byte
//! buffers and fake time, as aliasd drives it: ARP frames in (punted with `PuntReason::Arp`),
//! request frames and snapshots out.
//!
//! The cluster: a client port and interconnect ic0 (192.0.2.2/24, MAC 02:..:00:02); m1 and
//! m2 without `mac` (learned by ARP), m3 with a configured MAC; all joined to web.

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicU64;

use clua_ctl::apply::ControlState;
use clua_ctl::model::{AliasSpec, Cluster, JoinSpec, Mac, MemberMac, MemberSpec, PortSpec, Prefix};
use clua_ctl::neighbors::NeighborEvent;
use clua_ctl::plane::{Cause, ControlCounters, ControlPlane, Effects, Event};
use clua_pipeline::snapshot::{Encap, MemberId, PortRole};
use clua_pipeline::PuntReason;

const CLIENT_PORT_MAC: Mac = [2, 0, 0, 0, 0, 1];
const IC0_MAC: Mac = [2, 0, 0, 0, 0, 2];
const IC0: u16 = 1;
const ROUTER_IC: [u8; 4] = [192, 0, 2, 2];
const M1: [u8; 4] = [192, 0, 2, 11];
const M2: [u8; 4] = [192, 0, 2, 12];
const M3: [u8; 4] = [192, 0, 2, 13];
const M1_MAC: Mac = [2, 0, 0, 0, 1, 1];
const M1_NEW_MAC: Mac = [2, 0, 0, 0, 1, 0x71];
const M2_MAC: Mac = [2, 0, 0, 0, 1, 2];
const M3_MAC: Mac = [2, 0, 0, 0, 1, 3];
const BCAST: Mac = [0xff; 6];
const REQUEST: u8 = 1;
const REPLY: u8 = 2;

fn state() -> ControlState {
    let port = |name: &str, role, addr: &str| PortSpec {
        name: name.into(),
        role,
        address: Some(addr.parse::<Prefix>().unwrap()),
        mtu: 1500,
        mac: None,
        flow_source: None,
    };
    let member = |name: &str, addr: [u8; 4], mac| MemberSpec {
        name: name.into(),
        port: "ic0".into(),
        address: addr.into(),
        mac,
        encap: Encap::L2,
        up: true,
        agent: false,
        listening: None,
        out_alias: None,
    };
    let join = |m: &str| JoinSpec {
        member: m.into(),
        selw: 1,
        selp: 1,
        joined: true,
    };
    let cluster = Cluster {
        name: "t".into(),
        default_alias: "web".into(),
        max_aliases: 8,
        ports: vec![
            port("client", PortRole::Client, "198.51.100.2/24"),
            port("ic0", PortRole::Interconnect, "192.0.2.2/24"),
        ],
        members: vec![
            member("m1", M1, MemberMac::Unresolved),
            member("m2", M2, MemberMac::Unresolved),
            member("m3", M3, MemberMac::Configured(M3_MAC)),
        ],
        aliases: vec![AliasSpec {
            name: "web".into(),
            address: Ipv4Addr::new(198, 51, 100, 100),
            members: vec![join("m1"), join("m2"), join("m3")],
            rpri: 1,
            virtual_subnet: false,
            mask: None,
            vmac: false,
        }],
        services: vec![],
        advert_port: 0,
    };
    cluster.validate().expect("test cluster is valid");
    ControlState {
        cluster,
        services_file: None,
        resvok: false,
    }
}

fn start() -> ControlPlane {
    let (p, fx) = ControlPlane::start(
        state(),
        vec![CLIENT_PORT_MAC, IC0_MAC],
        None,
        vec![],
        Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
    )
    .unwrap();
    assert_eq!(fx.publish.map(|s| s.generation), Some(1));
    p
}

/// An Ethernet/IPv4 ARP frame, by hand, padded to 60 bytes as on the wire.
fn arp(op: u8, eth_dst: Mac, sha: Mac, spa: [u8; 4], tha: Mac, tpa: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, op]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa);
    f.extend_from_slice(&[0; 18]);
    f
}

/// The request the router must send for `target` (42 bytes, unpadded like its gratuitous ARP).
fn expected_request(eth_dst: Mac, target: [u8; 4]) -> Vec<u8> {
    let mut f = arp(REQUEST, eth_dst, IC0_MAC, ROUTER_IC, [0; 6], target);
    f.truncate(42);
    f
}

fn member(p: &ControlPlane, id: u32) -> (bool, Mac) {
    let m = p.snapshot().member(MemberId(id)).unwrap();
    (m.up, m.mac)
}

fn in_schedule(p: &ControlPlane, id: u32) -> bool {
    p.snapshot().aliases[0]
        .multi_schedule
        .contains(&MemberId(id))
}

fn get(c: &AtomicU64) -> u64 {
    ControlCounters::get(c)
}

fn frames(fx: &Effects) -> Vec<(u16, Vec<u8>)> {
    fx.transmit
        .iter()
        .map(|t| (t.port, t.frame.clone()))
        .collect()
}

fn neighbor_events(fx: &Effects) -> Vec<NeighborEvent> {
    fx.events
        .iter()
        .filter_map(|e| match e {
            Event::Neighbor(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

fn generation_cause(fx: &Effects) -> Option<Cause> {
    fx.events.iter().find_map(|e| match e {
        Event::Generation { cause, .. } => Some(*cause),
        _ => None,
    })
}

/// Learns `mac` for member address `addr` from a reply at `now`, and the tick that publishes it.
fn learn(p: &mut ControlPlane, addr: [u8; 4], mac: Mac, now: u64) -> Effects {
    let mut f = arp(REPLY, IC0_MAC, mac, addr, IC0_MAC, ROUTER_IC);
    let fx = p.on_frame(IC0, PuntReason::Arp, &mut f, now);
    assert!(!fx.reply_in_place, "a reply is not answered");
    p.on_tick(now + 1)
}

#[test]
fn members_without_mac_are_asked_for_at_start_and_every_second_until_they_answer() {
    let mut p = start();
    // CA3: no MAC, no traffic; the configured member is in use at once.
    assert_eq!(member(&p, 0), (false, [0; 6]));
    assert_eq!(member(&p, 1), (false, [0; 6]));
    assert_eq!(member(&p, 2), (true, M3_MAC));
    assert!(!in_schedule(&p, 0) && !in_schedule(&p, 1) && in_schedule(&p, 2));
    let fx = p.on_tick(0);
    assert_eq!(
        frames(&fx),
        vec![
            (IC0, expected_request(BCAST, M1)),
            (IC0, expected_request(BCAST, M2)),
        ],
        "one broadcast request per member without mac, none for m3"
    );
    assert!(fx.publish.is_none());
    // One request per member per interval.
    assert!(p.on_tick(1).transmit.is_empty());
    assert!(p.on_tick(999).transmit.is_empty());
    assert_eq!(p.on_tick(1000).transmit.len(), 2);
    assert_eq!(get(&p.counters().neighbors.requests_sent), 4);
}

#[test]
fn a_reply_teaches_the_mac_and_a_new_snapshot_carries_it() {
    let mut p = start();
    p.on_tick(0);
    let mut f = arp(REPLY, IC0_MAC, M1_MAC, M1, IC0_MAC, ROUTER_IC);
    let fx = p.on_frame(IC0, PuntReason::Arp, &mut f, 5);
    assert_eq!(
        neighbor_events(&fx),
        vec![NeighborEvent::Learned {
            member: "m1".into(),
            mac: M1_MAC
        }]
    );
    let fx = p.on_tick(6);
    let snap = fx.publish.clone().expect("a new generation with m1's MAC");
    assert_eq!(snap.generation, 2);
    assert_eq!(generation_cause(&fx), Some(Cause::Neighbors));
    assert_eq!(member(&p, 0), (true, M1_MAC));
    assert!(in_schedule(&p, 0));
    assert_eq!(p.state().cluster.members[0].mac, MemberMac::Learned(M1_MAC));
    // m2 is still unknown, out of traffic, and still asked for; m1 no longer.
    assert_eq!(member(&p, 1), (false, [0; 6]));
    assert_eq!(
        frames(&p.on_tick(1000)),
        vec![(IC0, expected_request(BCAST, M2))]
    );
    // The same reply again changes nothing.
    let fx = p.on_frame(IC0, PuntReason::Arp, &mut f.clone(), 1001);
    assert!(neighbor_events(&fx).is_empty());
    assert!(p.on_tick(1002).publish.is_none());
    let n = &p.counters().neighbors;
    assert_eq!((get(&n.learned), get(&n.heard), get(&n.changed)), (1, 2, 0));
}

#[test]
fn a_members_own_request_and_its_gratuitous_arp_teach_and_move_it() {
    let mut p = start();
    // m2 asks for the router's address: the router answers (as before) and learns m2's MAC.
    let mut f = arp(REQUEST, BCAST, M2_MAC, M2, [0; 6], ROUTER_IC);
    let fx = p.on_frame(IC0, PuntReason::Arp, &mut f, 0);
    assert!(
        fx.reply_in_place,
        "the router still answers for its own address"
    );
    assert_eq!(&f[..6], &M2_MAC);
    assert_eq!(&f[6..12], &IC0_MAC);
    assert!(p.on_tick(1).publish.is_some());
    assert_eq!(member(&p, 1), (true, M2_MAC));
    // m1 learned, then its NIC changes: its gratuitous ARP (sender = target = its address)
    // moves it at once, with old and new MAC in the log.
    learn(&mut p, M1, M1_MAC, 200);
    assert_eq!(member(&p, 0), (true, M1_MAC));
    let mut garp = arp(REQUEST, BCAST, M1_NEW_MAC, M1, [0; 6], M1);
    let fx = p.on_frame(IC0, PuntReason::Arp, &mut garp, 400);
    assert!(!fx.reply_in_place);
    assert_eq!(
        neighbor_events(&fx),
        vec![NeighborEvent::Changed {
            member: "m1".into(),
            old: M1_MAC,
            new: M1_NEW_MAC
        }]
    );
    assert!(neighbor_events(&fx)[0]
        .to_string()
        .contains("02:00:00:00:01:01"));
    assert!(neighbor_events(&fx)[0]
        .to_string()
        .contains("02:00:00:00:01:71"));
    let fx = p.on_tick(401);
    assert!(fx.publish.is_some());
    assert_eq!(member(&p, 0), (true, M1_NEW_MAC));
    assert!(in_schedule(&p, 0));
    assert_eq!(get(&p.counters().neighbors.changed), 1);
}

#[test]
fn refresh_probes_the_known_mac_then_broadcasts_then_expires_the_member() {
    let mut p = start();
    p.on_tick(0);
    learn(&mut p, M1, M1_MAC, 10);
    // Rebuilds are at most one per 100 ms: m2's MAC is in force at the next one.
    let mut f = arp(REPLY, IC0_MAC, M2_MAC, M2, IC0_MAC, ROUTER_IC);
    p.on_frame(IC0, PuntReason::Arp, &mut f, 10);
    assert!(p.on_tick(50).publish.is_none());
    assert!(!in_schedule(&p, 1));
    assert!(p.on_tick(111).publish.is_some());
    assert!(in_schedule(&p, 0) && in_schedule(&p, 1));
    // Known MACs are not asked for until the refresh is due (30 s after last heard).
    for t in [100, 1000, 15_000, 30_009] {
        assert!(p.on_tick(t).transmit.is_empty(), "at {t}");
    }
    // m2 keeps talking (its request for the router refreshes it); m1 is silent.
    let mut f = arp(REQUEST, BCAST, M2_MAC, M2, [0; 6], ROUTER_IC);
    p.on_frame(IC0, PuntReason::Arp, &mut f, 20_000);
    // The refresh is a unicast to the MAC in use...
    let fx = p.on_tick(30_010);
    assert_eq!(frames(&fx), vec![(IC0, expected_request(M1_MAC, M1))]);
    assert!(fx.publish.is_none(), "a refresh changes nothing yet");
    assert!(
        in_schedule(&p, 0),
        "the MAC stays in use while it is probed"
    );
    // ...then broadcasts (a member whose MAC changed answers from the new one)...
    assert_eq!(
        frames(&p.on_tick(31_010)),
        vec![(IC0, expected_request(BCAST, M1))]
    );
    assert_eq!(
        frames(&p.on_tick(32_010)),
        vec![(IC0, expected_request(BCAST, M1))]
    );
    // ...and after three unanswered requests the member gets no new flows (CA3) while the
    // others keep theirs; established flows still go to the last MAC.
    let fx = p.on_tick(33_010);
    assert_eq!(
        neighbor_events(&fx),
        vec![NeighborEvent::Expired {
            member: "m1".into(),
            mac: M1_MAC,
            unanswered: 3
        }]
    );
    assert!(fx.events.iter().any(|e| e.is_warning()));
    assert_eq!(frames(&fx), vec![(IC0, expected_request(BCAST, M1))]);
    assert!(fx.publish.is_some());
    assert_eq!(member(&p, 0), (false, M1_MAC));
    assert!(!in_schedule(&p, 0));
    assert!(in_schedule(&p, 1) && in_schedule(&p, 2));
    assert_eq!(p.state().cluster.members[0].mac, MemberMac::Expired(M1_MAC));
    assert_eq!(get(&p.counters().neighbors.expired), 1);
    // Still asked for every second; an answer brings it back.
    assert_eq!(p.on_tick(34_010).transmit.len(), 1);
    let fx = learn(&mut p, M1, M1_MAC, 34_500);
    assert!(fx.publish.is_some());
    assert_eq!(member(&p, 0), (true, M1_MAC));
    assert!(in_schedule(&p, 0));
    // m2 was refreshed by its own request at 20 s: its refresh is due at 50 s, not before.
    assert!(p.on_tick(49_999).transmit.is_empty());
    assert_eq!(
        frames(&p.on_tick(50_000)),
        vec![(IC0, expected_request(M2_MAC, M2))]
    );
}

#[test]
fn an_answered_refresh_changes_nothing() {
    let mut p = start();
    p.on_tick(0);
    learn(&mut p, M1, M1_MAC, 10);
    let gen = p.snapshot().generation;
    assert_eq!(
        p.on_tick(30_010).transmit.len(),
        2,
        "m1's refresh, m2's retry"
    );
    let mut f = arp(REPLY, IC0_MAC, M1_MAC, M1, IC0_MAC, ROUTER_IC);
    let fx = p.on_frame(IC0, PuntReason::Arp, &mut f, 30_020);
    assert!(neighbor_events(&fx).is_empty());
    for t in [30_021, 31_010, 33_010, 40_000] {
        let fx = p.on_tick(t);
        assert!(fx.publish.is_none(), "at {t}");
        assert!(
            fx.transmit.iter().all(|t| t.frame[38..42] == M2),
            "only m2 is asked for"
        );
    }
    assert_eq!(p.snapshot().generation, gen);
    assert_eq!(get(&p.counters().neighbors.expired), 0);
}

#[test]
fn a_configured_mac_is_never_overridden_by_arp() {
    let mut p = start();
    let ignored = get(&p.counters().neighbors.ignored);
    for mut f in [
        arp(
            REPLY,
            IC0_MAC,
            [2, 0, 0, 0, 0x66, 3],
            M3,
            IC0_MAC,
            ROUTER_IC,
        ),
        arp(REQUEST, BCAST, [2, 0, 0, 0, 0x66, 3], M3, [0; 6], M3),
    ] {
        let fx = p.on_frame(IC0, PuntReason::Arp, &mut f, 0);
        assert!(neighbor_events(&fx).is_empty());
    }
    assert!(p.on_tick(1).publish.is_none());
    assert_eq!(member(&p, 2), (true, M3_MAC));
    assert_eq!(
        p.state().cluster.members[2].mac,
        MemberMac::Configured(M3_MAC)
    );
    assert_eq!(get(&p.counters().neighbors.ignored), ignored + 2);
}

#[test]
fn unrelated_arp_teaches_nothing_and_is_counted() {
    let mut p = start();
    p.on_tick(0);
    let cases = [
        // Another host on the interconnect.
        (
            IC0,
            arp(
                REPLY,
                IC0_MAC,
                [2, 0, 0, 0, 9, 9],
                [192, 0, 2, 99],
                IC0_MAC,
                ROUTER_IC,
            ),
        ),
        // m1's address, but on the client port.
        (
            0,
            arp(
                REPLY,
                CLIENT_PORT_MAC,
                M1_MAC,
                M1,
                CLIENT_PORT_MAC,
                [198, 51, 100, 2],
            ),
        ),
        // A multicast or zero sender MAC.
        (
            IC0,
            arp(REPLY, IC0_MAC, [3, 0, 0, 0, 1, 1], M1, IC0_MAC, ROUTER_IC),
        ),
        (IC0, arp(REPLY, IC0_MAC, [0; 6], M1, IC0_MAC, ROUTER_IC)),
        // An RFC 5227 probe by someone else for m1's address (sender 0.0.0.0).
        (
            IC0,
            arp(REQUEST, BCAST, [2, 0, 0, 0, 9, 8], [0, 0, 0, 0], [0; 6], M1),
        ),
        // Truncated.
        (
            IC0,
            arp(REPLY, IC0_MAC, M1_MAC, M1, IC0_MAC, ROUTER_IC)[..30].to_vec(),
        ),
        // Unknown ARP operation.
        (IC0, arp(9, IC0_MAC, M1_MAC, M1, IC0_MAC, ROUTER_IC)),
    ];
    for (port, mut f) in cases.clone() {
        let fx = p.on_frame(port, PuntReason::Arp, &mut f, 5);
        assert!(neighbor_events(&fx).is_empty(), "{f:02x?}");
    }
    assert!(p.on_tick(6).publish.is_none());
    assert_eq!(member(&p, 0), (false, [0; 6]));
    assert_eq!(p.state().cluster.members[0].mac, MemberMac::Unresolved);
    let n = &p.counters().neighbors;
    assert_eq!(get(&n.ignored), cases.len() as u64);
    assert_eq!((get(&n.learned), get(&n.heard)), (0, 0));
}

#[test]
fn commands_keep_the_learned_macs() {
    let mut p = start();
    p.on_tick(0);
    learn(&mut p, M1, M1_MAC, 10);
    let cmd = clua_ctl::command::parse_args(["-a", "alias=web,selw=5", "--member", "m2"]).unwrap();
    let (reply, fx) = p.on_command(&cmd, 20);
    assert!(reply.ok, "{}", reply.output);
    assert!(fx.publish.is_some());
    assert_eq!(member(&p, 0), (true, M1_MAC));
    assert_eq!(member(&p, 1), (false, [0; 6]));
}
