//! Encap's own cost per packet (issue 12), robust to a busy machine: the minimum over many
//! samples of 64 × (reset 32 buffers of the pipeline bench's 60-byte frame, encap them), for
//! each of l2/ipip/vxlan with the field-by-field builder ([`encap`]) and the snapshot's template
//! ([`Snapshot::encap_template`]). Compare rows within one run: the template's l2 row is the
//! floor (reset + a 14-byte copy), the others' excess over it is their encap cost.
//!
//! `cargo run --release -p clua-pipeline --example encap_cost`
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use clua_pipeline::classify::classify;
use clua_pipeline::encap::encap;
use clua_pipeline::snapshot::ServiceSpec;
use clua_pipeline::wire::checksum::{checksum, ChecksumCapabilities};
use clua_pipeline::*;

fn main() {
    let port = |name: &str, role, last: u8, ip: [u8; 4]| PortInfo {
        name: name.into(),
        role,
        mac: [2, 0, 0, 0, 0, last],
        ipv4: Some(Ipv4Addr::from(ip)),
        prefix_len: 24,
        mtu: 1600,
        flow_source: None,
    };
    let ports = vec![
        port("client", PortRole::Client, 1, [198, 51, 100, 2]),
        port("ic0", PortRole::Interconnect, 2, [192, 0, 2, 2]),
    ];
    let modes = [
        ("l2", Encap::L2),
        ("ipip", Encap::Ipip),
        (
            "vxlan",
            Encap::Vxlan {
                vni: 42,
                inner_mac: [2, 0, 0, 0, 2, 0x81],
                udp_port: 4789,
            },
        ),
    ];
    let members = modes
        .iter()
        .enumerate()
        .map(|(i, (_, e))| {
            Some(Member {
                id: MemberId(i as u32),
                name: format!("m{i}"),
                port: 1,
                mac: [2, 0, 0, 0, 1, i as u8],
                ipv4: Ipv4Addr::new(192, 0, 2, 10 + i as u8),
                encap: *e,
                up: true,
                listening: None,
            })
        })
        .collect();
    let snap = Snapshot::build(
        1,
        ports,
        members,
        vec![(
            "web".into(),
            Ipv4Addr::new(198, 51, 100, 100),
            vec![AliasMember {
                member: MemberId(0),
                selw: 1,
                selp: 1,
            }],
        )],
        &[ServiceSpec {
            proto: 6,
            port: 80,
            mode: ServiceMode::InMulti,
        }],
    )
    .unwrap();
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0x10, 8, 0];
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 51, 100, 100]);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = 0x10;
    f.extend_from_slice(&tcp);
    f.resize(60, 0);
    let meta0 = classify(&snap, 0, &f).unwrap();
    let caps = ChecksumCapabilities::software();
    const N: usize = 32;
    const REPS: usize = 64;
    let mut bufs: Vec<VecBuf> = (0..N).map(|_| VecBuf::new(&f)).collect();
    for (i, (name, _)) in modes.iter().enumerate() {
        let mut meta = meta0;
        meta.member = MemberId(i as u32);
        let member = snap.member(meta.member).unwrap();
        let p = &snap.ports[1];
        let mut best = [f64::MAX; 2];
        for _ in 0..300 {
            for (k, best) in best.iter_mut().enumerate() {
                let t = Instant::now();
                for _ in 0..REPS {
                    for b in bufs.iter_mut() {
                        b.reset(&f, 128);
                        // Classify has read the headers before encap runs.
                        black_box(b.data()[15] ^ b.data()[20]);
                    }
                    for b in bufs.iter_mut() {
                        let r = match k {
                            0 => encap(b, &meta, member, p, &caps),
                            _ => snap.encap_template(meta.member).apply(b, &meta, &caps),
                        };
                        black_box(r).unwrap();
                    }
                }
                let ns = t.elapsed().as_nanos() as f64 / (N * REPS) as f64;
                *best = best.min(ns);
            }
        }
        println!(
            "{name:>5}: ns/packet, reset + builder {:.2}, reset + template {:.2}",
            best[0], best[1]
        );
    }
}
