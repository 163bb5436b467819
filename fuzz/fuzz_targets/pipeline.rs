//! Arbitrary frames through the whole pipeline (classify -> out_alias / select -> encap or refuse) on every
//! port of a topology with every encapsulation: nothing may panic, every packet gets a verdict,
//! and a forwarded packet must be a well-formed IPv4 frame no larger than its port's MTU allows,
//! whose IPv4 header checksum is correct unless the header is the received one, forwarded
//! untouched (l2). Built with `--cfg fuzzing`, the pipeline's default `ChecksumCapabilities`
//! verify nothing on receive (so mutated frames get past classify's IPv4 checksum check) and
//! compute everything on transmit (so what it writes is still checked here). ICMP errors to an
//! alias (CA7) must not write connection-table state.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use clua_pipeline::out_alias::{OutAliasTable, PortRange};
use clua_pipeline::snapshot::{AliasId, AliasMember, ServiceSpec};
use clua_pipeline::wire::ipv4::Ipv4Packet;
use clua_pipeline::{
    CoreCounters, Encap, Member, MemberId, PacketBuf, Pipeline, PipelineConfig, PortInfo, PortRole,
    ServiceMode, Snapshot, VecBuf, Verdict,
};
use libfuzzer_sys::fuzz_target;

fn snapshot() -> Arc<Snapshot> {
    static S: OnceLock<Arc<Snapshot>> = OnceLock::new();
    S.get_or_init(|| {
        let port = |name: &str, role, last, ip: [u8; 4], mtu| PortInfo {
            name: name.into(),
            role,
            mac: [2, 0, 0, 0, 0, last],
            ipv4: Some(Ipv4Addr::from(ip)),
            prefix_len: 24,
            mtu,
            flow_source: if last == 2 { Some((Ipv4Addr::new(192, 0, 2, 64), 26)) } else { None },
        };
        let member = |id: u32, encap| {
            Some(Member {
                id: MemberId(id),
                name: format!("m{id}"),
                port: 1,
                mac: [2, 0, 0, 0, 1, id as u8],
                ipv4: Ipv4Addr::new(192, 0, 2, 10 + id as u8),
                encap,
                up: id != 3,
                // m1 reports listening on tcp/80 and udp/53 only: per-port schedules.
                listening: (id == 1).then(|| vec![(6, 80), (17, 53)].into_boxed_slice()),
            })
        };
        let vx = Encap::Vxlan { vni: 42, inner_mac: [2, 0, 0, 0, 2, 0x81], udp_port: 4789 };
        let am = |id, selw, selp| AliasMember { member: MemberId(id), selw, selp };
        Arc::new(
            Snapshot::build(
                1,
                vec![
                    port("client", PortRole::Client, 1, [198, 51, 100, 2], 1500),
                    port("ic0", PortRole::Interconnect, 2, [192, 0, 2, 2], 1550),
                ],
                vec![member(0, Encap::L2), member(1, Encap::Ipip), member(2, vx), member(3, Encap::L2)],
                vec![
                    ("web".into(), Ipv4Addr::new(198, 51, 100, 100), vec![am(0, 3, 1), am(1, 2, 1), am(2, 1, 1), am(3, 1, 9)]),
                    ("empty".into(), Ipv4Addr::new(198, 51, 100, 101), vec![am(3, 1, 1)]),
                ],
                &[
                    ServiceSpec { proto: 6, port: 80, mode: ServiceMode::InMulti },
                    ServiceSpec { proto: 17, port: 53, mode: ServiceMode::InMulti },
                    ServiceSpec { proto: 6, port: 513, mode: ServiceMode::InNoalias },
                ],
            )
            .unwrap()
            .with_advert_port(9471)
            // out_alias (CA9): replies from tcp/6000 or udp/123 to web's ports 61000-62999
            // are steered to m0 / m1 past select.
            .with_out_alias(
                &[(6, 6000), (17, 123)],
                OutAliasTable::new(
                    AliasId(0),
                    vec![
                        (PortRange::new(61000, 61999).unwrap(), MemberId(0)),
                        (PortRange::new(62000, 62999).unwrap(), MemberId(1)),
                    ],
                )
                .unwrap(),
            )
            .unwrap(),
        )
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let s = snapshot();
    let cfg = PipelineConfig { conn_capacity: 64, max_members: 4, ..Default::default() };
    let mut p = Pipeline::new(&cfg, s.clone(), Arc::new(CoreCounters::new(4)));
    // First byte: rx port (including one that does not exist) and the headroom.
    let rx_port = (data[0] % 3) as u16;
    let headroom = if data[0] & 0x80 != 0 { 16 } else { 128 };
    let frames: Vec<&[u8]> = data[1..].split(|b| *b == 0xA5).take(32).collect();
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::with_headroom(f, headroom)).collect();
    let mut verdicts = vec![Verdict::Punt(clua_pipeline::PuntReason::Arp); bufs.len()];
    p.process_burst(rx_port, 1_000, &mut bufs, &mut verdicts);
    // CA7: ICMP errors are forwarded without writing state, so only TCP frames (protocol byte
    // of an untagged or 802.1Q-tagged IPv4 header) can have made connection-table entries, and
    // only ICMP frames can count as forwarded errors.
    let proto_is = |f: &&[u8], p: u8| f.get(23) == Some(&p) || f.get(27) == Some(&p);
    let tcp_frames = frames.iter().filter(|f| proto_is(f, 6)).count() as u64;
    let icmp_frames = frames.iter().filter(|f| proto_is(f, 1)).count() as u64;
    let c = p.counters();
    assert!(CoreCounters::get(&c.conn_inserts) <= tcp_frames, "an entry not made by TCP");
    assert!(CoreCounters::get(&c.icmp_errors_forwarded) <= icmp_frames);
    for ((b, v), input) in bufs.iter().zip(&verdicts).zip(&frames) {
        if let Verdict::Forward(port) = *v {
            let info = &s.ports[port as usize];
            let d = b.data();
            assert!(d.len() >= 34, "forwarded runt");
            assert_eq!(&d[6..12], &info.mac, "source MAC is the egress port's");
            let ip = Ipv4Packet::new_checked(&d[14..]).expect("forwarded a bad IPv4 packet");
            let header = &d[14..14 + usize::from(ip.header_len())];
            // l2 forwards the received IPv4 header as it is (behind an 802.1Q tag or not).
            let received = [14, 18].iter().any(|&l3| input.get(l3..l3 + header.len()) == Some(header));
            assert!(ip.verify_checksum() || received, "wrote a bad IPv4 checksum");
            assert!(ip.total_len() <= info.mtu, "forwarded beyond the MTU");
        }
    }
});
