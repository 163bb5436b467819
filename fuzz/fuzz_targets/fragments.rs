//! Streams of IPv4 fragments through the pipeline and its fragment table (issue 10,
//! `clua_pipeline::fragments`), driven like aliasd's worker: `Hold` buffers parked, released
//! after every burst of 4. Each 8-byte record of the input is one fragment (datagram id among
//! 8, protocol, MF, offset, length, destination port, a time step, a fill byte). Checked:
//! nothing panics; every fragment ends forwarded or dropped exactly once (or is still parked,
//! then freed by `flush_held`); forwarded fragments, direct or released, go out whole (l2: the
//! received IP packet, only the MACs rewritten); the parked count never exceeds `max_held` and
//! matches the table's, nor do the table's live entries exceed its capacity. (That the
//! fragments of a datagram share a member is the golden fixtures' and unit tests' job: ids are
//! reused here, so a later datagram may rightly go elsewhere.)
#![no_main]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use clua_pipeline::fragments::FragmentConfig;
use clua_pipeline::snapshot::{AliasMember, ServiceSpec};
use clua_pipeline::wire::checksum::checksum;
use clua_pipeline::{
    CoreCounters, DropReason, Encap, Member, MemberId, PacketBuf, Pipeline, PipelineConfig,
    PortInfo, PortRole, ServiceMode, Snapshot, VecBuf, Verdict,
};
use libfuzzer_sys::fuzz_target;

fn snapshot() -> Arc<Snapshot> {
    static S: OnceLock<Arc<Snapshot>> = OnceLock::new();
    S.get_or_init(|| {
        let port = |name: &str, role, last, ip: [u8; 4]| PortInfo {
            name: name.into(),
            role,
            mac: [2, 0, 0, 0, 0, last],
            ipv4: Some(Ipv4Addr::from(ip)),
            prefix_len: 24,
            mtu: 1500,
            flow_source: None,
        };
        let member = |id: u32| {
            Some(Member {
                id: MemberId(id),
                name: format!("m{id}"),
                port: 1,
                mac: [2, 0, 0, 0, 1, id as u8],
                ipv4: Ipv4Addr::new(192, 0, 2, 10 + id as u8),
                encap: Encap::L2,
                up: true,
                listening: None,
            })
        };
        let am = |id, selw| AliasMember { member: MemberId(id), selw, selp: 1 };
        Arc::new(
            Snapshot::build(
                1,
                vec![
                    port("client", PortRole::Client, 1, [198, 51, 100, 2]),
                    port("ic0", PortRole::Interconnect, 2, [192, 0, 2, 2]),
                ],
                vec![member(0), member(1), member(2)],
                vec![("web".into(), Ipv4Addr::new(198, 51, 100, 100), vec![am(0, 3), am(1, 2), am(2, 1)])],
                &[
                    ServiceSpec { proto: 6, port: 80, mode: ServiceMode::InMulti },
                    ServiceSpec { proto: 17, port: 53, mode: ServiceMode::InMulti },
                    ServiceSpec { proto: 17, port: 513, mode: ServiceMode::InNoalias },
                ],
            )
            .unwrap(),
        )
    })
    .clone()
}

/// One fragment from an 8-byte record.
fn frame(r: &[u8]) -> Vec<u8> {
    let id = u16::from(r[0] % 8);
    let proto = if r[1] & 1 == 0 { 17 } else { 6 };
    let more = r[1] & 2 != 0;
    let offset = u16::from(r[2] % 16) * 8;
    let len = usize::from(r[3] % 64);
    let dport = [53u16, 80, 513, 22][usize::from(r[4] % 4)];
    let mut payload = vec![r[7]; len];
    if offset == 0 {
        // A first fragment: ports at the front (TCP: a 20-byte header if it fits).
        let head = [0x9c, 0x41, (dport >> 8) as u8, dport as u8, 0, 40, 0, 0];
        for (p, h) in payload.iter_mut().zip(head) {
            *p = h;
        }
        if proto == 6 && len >= 20 {
            payload[12] = 0x50;
            payload[13] = 0x02;
        }
    }
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0x10, 8, 0];
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    let flags = (offset / 8) | if more { 0x2000 } else { 0 };
    ip[6..8].copy_from_slice(&flags.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[198, 51, 100, 10]);
    ip[16..20].copy_from_slice(&[198, 51, 100, 100]);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&payload);
    f
}

fuzz_target!(|data: &[u8]| {
    let cfg = PipelineConfig {
        conn_capacity: 64,
        max_members: 3,
        fragments: FragmentConfig { capacity: 8, timeout_ms: 50, max_held: 4 },
        ..Default::default()
    };
    let mut p = Pipeline::new(&cfg, snapshot(), Arc::new(CoreCounters::new(3)));
    let mut held = p.new_held::<VecBuf>();
    let mut now = 1_000u64;
    let mut outcomes = 0u64;
    let mut sent = 0u64;
    // What each parked slot holds, to check it goes out whole when released.
    let mut parked: HashMap<Vec<u8>, usize> = HashMap::new();
    let records: Vec<&[u8]> = data.chunks_exact(8).take(256).collect();
    for chunk in records.chunks(4) {
        let frames: Vec<Vec<u8>> = chunk.iter().map(|r| frame(r)).collect();
        now += u64::from(chunk[0][5] % 32);
        let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
        let mut verdicts = vec![Verdict::Drop(DropReason::TxFull); bufs.len()];
        p.process_burst(0, now, &mut bufs, &mut verdicts);
        for ((b, v), input) in bufs.into_iter().zip(&verdicts).zip(&frames) {
            match *v {
                // Port 0: a refusal of a whole (not fragmented) datagram to udp/513
                // (in_noalias), the router's own answer; port 1: to a member.
                Verdict::Forward(port) => {
                    if port == 1 {
                        assert_eq!(&b.data()[14..], &input[14..], "a fragment goes out whole");
                    }
                    sent += 1;
                    outcomes += 1;
                }
                Verdict::Drop(_) => outcomes += 1,
                Verdict::Hold(slot) => {
                    assert_eq!(b.data(), input.as_slice(), "held unchanged");
                    *parked.entry(input[14..].to_vec()).or_default() += 1;
                    assert!(held.put(slot, b).is_ok(), "slot {slot} given twice");
                }
                Verdict::Punt(r) => panic!("fragment punted: {r:?}"),
                Verdict::ToWorker => panic!("handed to another worker (off here)"),
            }
        }
        assert!(held.len() <= 4, "parked beyond max_held");
        // Parked = waiting + ready (resolved or timed out, released just below).
        assert!(p.fragments().waiting() <= held.len(), "waiting fragments are parked");
        assert!(p.fragments().live(now) <= p.fragments().capacity());
        p.release_held(&mut held, now, |b, v| {
            let ip = b.data()[14..].to_vec();
            let n = parked.get_mut(&ip).expect("released what was parked, whole");
            *n -= 1;
            if *n == 0 {
                parked.remove(&ip);
            }
            match v {
                Verdict::Forward(_) => sent += 1,
                Verdict::Drop(_) => {}
                other => panic!("released as {other:?}"),
            }
            outcomes += 1;
        });
    }
    outcomes += p.flush_held(&mut held) as u64;
    let c = p.counters();
    assert_eq!(CoreCounters::get(&c.rx), outcomes, "every fragment ends exactly once");
    let drops: u64 = c.drops.iter().map(CoreCounters::get).sum();
    assert_eq!(CoreCounters::get(&c.forwarded) + drops, outcomes);
    assert_eq!(CoreCounters::get(&c.forwarded), sent);
});
