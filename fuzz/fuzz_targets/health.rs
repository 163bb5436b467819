//! Health probes of static members (`clua_ctl::members::health`, issue 10) over arbitrary
//! bytes. Two members on ic0, m1 probed by ARP and m2 by `tcp:80`; after a tick (one probe
//! each in flight) the input goes in:
//! - as a whole frame into `on_arp` and `on_tcp`;
//! - as the TCP header and payload of an otherwise valid frame from m2 to the router, with the
//!   destination port and the acknowledgment number of the probe in flight patched in when the
//!   first byte is even (so the matching and the RST are reached).
//!
//! Then ticks. Checked: every frame sent is a 42-byte ARP request for a probed member or a
//! 54-byte IPv4/TCP SYN or RST to m2 with correct IPv4 and TCP checksums; no probe is counted
//! more often than sent; `apply` changes only the probed members' `up`.
//!
//! Built with `--cfg fuzzing`, received checksums are not verified
//! (`ChecksumCapabilities::default()`), so mutated segments get past them.
//!
//! Run: `cargo +nightly fuzz run health -- -max_len=128` (see fuzz/README.md).
#![no_main]

use std::net::Ipv4Addr;

use clua_ctl::apply::ControlState;
use clua_ctl::members::health::{Health, HealthCheck, HealthSpec, ProbeFrame};
use clua_ctl::model::{Cluster, MemberMac, MemberSpec, PortSpec, Prefix};
use clua_pipeline::snapshot::{Encap, PortRole, Snapshot};
use clua_pipeline::wire::ipv4::Ipv4Packet;
use clua_pipeline::wire::tcp::{TcpFlags, TcpPacket};
use libfuzzer_sys::fuzz_target;

const IC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const M2_MAC: [u8; 6] = [2, 0, 0, 0, 1, 2];
const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const M1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const M2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);

fn cluster() -> Cluster {
    let port = |name: &str, role, a: &str| PortSpec {
        name: name.into(),
        role,
        address: Some(a.parse::<Prefix>().unwrap()),
        mtu: 1500,
        mac: None,
        flow_source: None,
    };
    let member = |name: &str, address, mac| MemberSpec {
        name: name.into(),
        port: "ic0".into(),
        address,
        mac: MemberMac::Configured(mac),
        encap: Encap::L2,
        up: true,
        agent: false,
        listening: None,
        out_alias: None,
    };
    Cluster {
        name: "f".into(),
        default_alias: "a".into(),
        max_aliases: 8,
        ports: vec![
            port("client", PortRole::Client, "198.51.100.2/24"),
            port("ic0", PortRole::Interconnect, "192.0.2.2/24"),
        ],
        members: vec![
            member("m1", M1, [2, 0, 0, 0, 1, 1]),
            member("m2", M2, M2_MAC),
        ],
        aliases: vec![],
        services: vec![],
        advert_port: 0,
    }
}

fn check_sent(frames: &[ProbeFrame]) {
    for f in frames {
        assert_eq!(f.port, 1);
        let b = &f.frame;
        match b.len() {
            42 => {
                assert_eq!(b[12..14], [0x08, 0x06]);
                assert!(b[38..42] == M1.octets(), "ARP only for m1");
            }
            54 => {
                assert_eq!(b[..6], M2_MAC);
                let ip = Ipv4Packet::new_checked(&b[14..]).unwrap();
                assert!(ip.verify_checksum());
                assert_eq!((ip.src_addr(), ip.dst_addr()), (ROUTER, M2));
                let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
                assert!(tcp.verify_checksum(ROUTER, M2));
                assert_eq!(tcp.dst_port(), 80);
                assert!(tcp.flags() == TcpFlags::SYN || tcp.flags() == TcpFlags::RST);
            }
            n => panic!("unexpected {n}-byte frame"),
        }
    }
}

/// `tcp` (header and payload) in a valid frame from m2 to the router.
fn from_m2(tcp: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34];
    f[..6].copy_from_slice(&IC_MAC);
    f[6..12].copy_from_slice(&M2_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = (20 + tcp.len()).min(65535) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&M2.octets());
    f[30..34].copy_from_slice(&ROUTER.octets());
    let sum = clua_pipeline::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(tcp);
    f
}

fuzz_target!(|data: &[u8]| {
    let c = cluster();
    let snap: Snapshot = c.snapshot(1, &[[2, 0, 0, 0, 0, 1], IC_MAC]).unwrap();
    let spec = |m: &str, check| HealthSpec {
        member: m.into(),
        check,
        interval_ms: 100,
        fails: 2,
        rises: 1,
    };
    let mut h = Health::new(
        &c,
        &[spec("m1", HealthCheck::Arp), spec("m2", HealthCheck::Tcp(80))],
        0x5eed,
    );
    let (mut out, mut ev) = (Vec::new(), Vec::new());
    let mut sent = 0u64;
    for round in 0..3u64 {
        out.clear();
        h.on_tick(round * 100, &snap, &mut out, &mut ev);
        check_sent(&out);
        sent += out.len() as u64;
        let syn = out.iter().find(|f| f.frame.len() == 54).map(|f| f.frame.clone());
        let mut rst = Vec::new();
        h.on_arp(1, data, &mut ev);
        h.on_tcp(1, data, &mut rst, &mut ev);
        let mut seg = data.to_vec();
        if let (Some(syn), true) = (&syn, data.first().is_some_and(|b| b % 2 == 0)) {
            if seg.len() >= 20 {
                let p = TcpPacket::new_checked(&syn[34..]).unwrap();
                seg[2..4].copy_from_slice(&p.src_port().to_be_bytes());
                seg[8..12].copy_from_slice(&p.seq_number().wrapping_add(1).to_be_bytes());
            }
        }
        let frame = from_m2(&seg);
        if frame.len() <= 65535 + 14 {
            h.on_tcp(1, &frame, &mut rst, &mut ev);
            h.on_tcp(1, &frame, &mut rst, &mut ev);
        }
        check_sent(&rst);
        assert!(rst.len() <= 1, "one RST per probe at most");
    }
    let counted: u64 = h.status().iter().map(|m| m.probes.iter().sum::<u64>()).sum();
    assert!(counted <= sent, "{counted} counted of {sent} sent");
    let mut st = ControlState {
        cluster: c.clone(),
        services_file: None,
        resvok: false,
    };
    h.apply(&mut st);
    for (a, b) in st.cluster.members.iter().zip(&c.members) {
        assert_eq!((&a.name, a.mac, a.address), (&b.name, b.mac, b.address));
    }
});
