//! The control plane (ctl::plane) driven the way aliasd drives it, with byte buffers and fake
//! time and no EAL: punted frames with their reason in, frames / snapshots / events out;
//! cluamgr commands; ticks. The cluster is the golden one (lb/tests/fixtures/golden.toml).

use std::sync::Arc;

use clua_ctl::advert::{AdvertKind, AdvertRepr, AliasEntry};
use clua_ctl::apply::ControlState;
use clua_ctl::command::parse_args;
use clua_ctl::members::AdvertSettings;
use clua_ctl::model::Proto;
use clua_ctl::plane::{ControlCounters, ControlPlane, Effects, Event};
use clua_lb::config::Config;
use clua_pipeline::wire::checksum::checksum;
use clua_pipeline::{CoreCounters, PuntReason};

const GOLDEN: &str = include_str!("fixtures/golden.toml");
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const IC0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const MACS: [[u8; 6]; 3] = [ROUTER_MAC, IC0_MAC, [2, 0, 0, 0, 0, 3]];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const KEY: &[u8] = b"plane lab test key, long enough";
const WEB: [u8; 4] = [198, 51, 100, 100];

fn state(agents: &[&str]) -> ControlState {
    let mut c = Config::parse(GOLDEN, "golden.toml").unwrap().cluster;
    c.advert_port = 9471;
    for m in c.members.iter_mut() {
        if agents.contains(&m.name.as_str()) {
            m.agent = true;
            m.up = false;
        }
    }
    ControlState {
        cluster: c,
        services_file: None,
        resvok: false,
    }
}

fn start(agents: &[&str]) -> (ControlPlane, Effects, Arc<CoreCounters>) {
    let core = Arc::new(CoreCounters::new(16));
    let settings = AdvertSettings {
        key: KEY.to_vec(),
        port: 9471,
        dead_misses: 3,
    };
    let (p, fx) = ControlPlane::start(
        state(agents),
        MACS.to_vec(),
        (!agents.is_empty()).then_some(&settings),
        vec![core.clone()],
        Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
    )
    .expect("the golden cluster starts");
    (p, fx, core)
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    ControlCounters::get(c)
}

/// An ARP request from the client for `target`, padded to 60 bytes.
fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[198, 51, 100, 10]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.extend_from_slice(&[0; 18]);
    f
}

fn ipv4(src: [u8; 4], dst: [u8; 4], dst_mac: [u8; 6], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

fn echo_request(dst: [u8; 4]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4([198, 51, 100, 10], dst, ROUTER_MAC, 1, &icmp)
}

fn advert(node: &str, boot_id: u64, seq: u64, key: &[u8], joined: bool) -> Vec<u8> {
    let repr = AdvertRepr {
        kind: AdvertKind::Advert,
        node: node.into(),
        boot_id,
        seq,
        interval_ms: 1000,
        aliases: vec![AliasEntry {
            addr: WEB.into(),
            joined,
            selw: 4,
            selp: 1,
        }],
        ports: vec![(Proto::Tcp, 80)],
        out_alias: None,
    };
    let payload = repr.emit_signed(key).unwrap();
    let mut udp = Vec::new();
    udp.extend_from_slice(&9471u16.to_be_bytes());
    udp.extend_from_slice(&9471u16.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    ipv4([192, 0, 2, 11], [192, 0, 2, 2], IC0_MAC, 17, &udp)
}

fn member_up(p: &ControlPlane, name: &str) -> bool {
    p.snapshot()
        .members
        .iter()
        .flatten()
        .any(|m| m.name == name && m.up)
}

#[test]
fn start_publishes_generation_1_and_announces_every_client_subnet_alias() {
    let (p, fx, _) = start(&[]);
    assert_eq!(fx.publish.as_ref().unwrap().generation, 1);
    assert!(Arc::ptr_eq(fx.publish.as_ref().unwrap(), p.snapshot()));
    // CA4: gratuitous ARP for each of the five aliases on the client port (port 0), none on
    // the interconnect.
    let targets: Vec<[u8; 4]> = fx
        .transmit
        .iter()
        .map(|t| {
            assert_eq!(t.port, 0);
            t.frame[38..42].try_into().unwrap()
        })
        .collect();
    assert_eq!(
        targets,
        [
            [198, 51, 100, 99],
            [198, 51, 100, 100],
            [198, 51, 100, 101],
            [198, 51, 100, 102],
            [198, 51, 100, 103]
        ]
    );
    let mut want = vec![0xff; 6];
    want.extend_from_slice(&ROUTER_MAC);
    want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    want.extend_from_slice(&ROUTER_MAC);
    want.extend_from_slice(&WEB);
    want.extend_from_slice(&[0; 6]);
    want.extend_from_slice(&WEB);
    assert_eq!(
        fx.transmit[1].frame, want,
        "RFC 5227 announcement, byte for byte"
    );
    assert_eq!(get(&p.counters().garp_sent), 5);
}

#[test]
fn arp_request_for_an_alias_is_answered_in_place_byte_for_byte() {
    let (mut p, _, _) = start(&[]);
    let mut f = arp_request(WEB);
    let fx = p.on_frame(0, PuntReason::Arp, &mut f, 5);
    assert!(fx.reply_in_place);
    assert!(fx.transmit.is_empty() && fx.publish.is_none());
    let mut want = CLIENT_MAC.to_vec();
    want.extend_from_slice(&ROUTER_MAC);
    want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    want.extend_from_slice(&ROUTER_MAC);
    want.extend_from_slice(&WEB);
    want.extend_from_slice(&CLIENT_MAC);
    want.extend_from_slice(&[198, 51, 100, 10]);
    want.extend_from_slice(&[0; 18]);
    assert_eq!(f, want);
    assert_eq!(get(&p.counters().arp_replies), 1);

    // Another host's address: not ours, nothing sent. A truncated request: malformed.
    let mut other = arp_request([198, 51, 100, 50]);
    assert!(!p.on_frame(0, PuntReason::Arp, &mut other, 6).reply_in_place);
    let mut short = arp_request(WEB)[..30].to_vec();
    assert!(!p.on_frame(0, PuntReason::Arp, &mut short, 7).reply_in_place);
    assert_eq!(get(&p.counters().arp_ignored), 1);
    assert_eq!(get(&p.counters().arp_malformed), 1);
}

#[test]
fn echo_request_to_an_alias_becomes_the_reply_in_place() {
    let (mut p, _, _) = start(&[]);
    let mut f = echo_request(WEB);
    let fx = p.on_frame(0, PuntReason::IcmpEcho, &mut f, 1);
    assert!(fx.reply_in_place);
    assert_eq!(&f[0..6], &CLIENT_MAC);
    assert_eq!(&f[6..12], &ROUTER_MAC);
    assert_eq!(
        &f[26..30],
        &WEB,
        "answered from the alias (CA7, alias context)"
    );
    assert_eq!(&f[30..34], &[198, 51, 100, 10]);
    assert_eq!(f[34], 0, "echo reply");
    assert_eq!(checksum(&f[14..34]), 0, "IPv4 checksum");
    assert_eq!(checksum(&f[34..]), 0, "ICMP checksum");
    assert_eq!(
        &f[38..],
        &[0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'],
        "id, seq, data kept"
    );
    // Echo to an address that is neither alias nor router: ignored.
    let mut g = echo_request([198, 51, 100, 77]);
    assert!(
        !p.on_frame(0, PuntReason::IcmpEcho, &mut g, 2)
            .reply_in_place
    );
    assert_eq!(get(&p.counters().icmp_replies), 1);
    assert_eq!(get(&p.counters().icmp_ignored), 1);
}

#[test]
fn adverts_bring_a_member_up_join_it_and_its_silence_takes_it_down() {
    let (mut p, _, _) = start(&["m1"]);
    assert!(
        !member_up(&p, "m1"),
        "an agent member is down until its first advert"
    );
    let mut f = advert("m1", 7, 1, KEY, true);
    let fx = p.on_frame(1, PuntReason::MemberAdvert, &mut f, 100);
    assert!(!fx.reply_in_place);
    let snap = fx.publish.expect("a new snapshot");
    assert_eq!(snap.generation, 2);
    assert!(member_up(&p, "m1"));
    assert!(fx.events.contains(&Event::MemberUp {
        member: "m1".into()
    }));
    assert!(
        fx.events.contains(&Event::Reweighted {
            member: "m1".into(),
            alias: "web".into(),
            selw: 4,
            selp: 1
        }),
        "{:?}",
        fx.events
    );
    assert_eq!(p.counters().adverts().unwrap().accepted, 1);

    // The same advert again (replayed) and one signed with another key (forged): counted,
    // nothing changes.
    let mut again = advert("m1", 7, 1, KEY, true);
    assert!(p
        .on_frame(1, PuntReason::MemberAdvert, &mut again, 150)
        .publish
        .is_none());
    let mut forged = advert("m1", 7, 2, b"another key entirely, long enough", false);
    assert!(p
        .on_frame(1, PuntReason::MemberAdvert, &mut forged, 160)
        .publish
        .is_none());
    let c = p.counters().adverts().unwrap();
    assert_eq!((c.accepted, c.replayed), (1, 1));
    assert_eq!(c.rejected.iter().sum::<u64>(), 1);
    assert!(member_up(&p, "m1"));

    // CA3: nothing for the dead interval (3 x 1000 ms) -> down, at the deadline and not before.
    assert!(p.on_tick(100 + 2999).publish.is_none());
    let fx = p.on_tick(100 + 3000);
    assert!(fx.publish.is_some());
    assert!(fx.events.contains(&Event::MemberDown {
        member: "m1".into()
    }));
    assert!(!member_up(&p, "m1"));
}

#[test]
fn commands_publish_a_new_generation_or_change_nothing() {
    let (mut p, _, _) = start(&[]);
    let cmd = parse_args(["-a", "alias=web,selw=1", "--member", "m1"]).unwrap();
    let (reply, fx) = p.on_command(&cmd, 10);
    assert!(reply.ok, "{}", reply.output);
    assert!(reply.output.contains("generation 2"), "{}", reply.output);
    assert_eq!(fx.publish.unwrap().generation, 2);
    assert!(matches!(
        fx.events[0],
        Event::CommandApplied { changes: 1, .. }
    ));

    let bad = parse_args(["-a", "alias=web,selw=1", "--member", "nobody"]).unwrap();
    let before = p.state().clone();
    let (reply, fx) = p.on_command(&bad, 11);
    assert!(!reply.ok);
    assert!(fx.publish.is_none());
    assert!(matches!(&fx.events[..], [Event::CommandRefused { .. }]));
    assert_eq!(p.state(), &before);
    assert_eq!(p.snapshot().generation, 2);

    let show = parse_args(["-s"]).unwrap();
    let (reply, fx) = p.on_command(&show, 12);
    assert!(
        reply.ok && reply.output.contains("alias web"),
        "{}",
        reply.output
    );
    assert!(fx.is_empty());
}

#[test]
fn a_new_alias_is_announced_when_a_command_adds_it() {
    let (mut p, _, _) = start(&[]);
    let cmd = parse_args(["-a", "alias=198.51.100.120"]).unwrap();
    let (reply, fx) = p.on_command(&cmd, 10);
    assert!(reply.ok, "{}", reply.output);
    assert_eq!(fx.transmit.len(), 1, "only the new alias is announced");
    assert_eq!(&fx.transmit[0].frame[38..42], &[198, 51, 100, 120]);
}

#[test]
fn an_advert_when_no_member_runs_the_agent_is_counted_as_unexpected() {
    let (mut p, _, _) = start(&[]);
    let mut f = advert("m1", 1, 1, KEY, true);
    assert!(p
        .on_frame(1, PuntReason::MemberAdvert, &mut f, 1)
        .is_empty());
    assert_eq!(get(&p.counters().unexpected), 1);
}
