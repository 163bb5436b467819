//! `clua-bench policies [--flows 1048576] [--secs 3]`: what the load-balancing policies cost the
//! pipeline (issue 9 "Performance"; SC1–SC3). In process, one core, no DPDK: the real
//! `clua_pipeline::Pipeline` over `VecBuf`s, as the criterion bench does (each burst's buffer
//! resets, a 60-byte copy per packet, are part of the measured time).
//!
//! For each policy of tcp/80 (in_multi; 8 members, selw 1..3):
//! - **established**: `--flows` TCP connections (16 per client address, so sticky clients have
//!   one affinity per 16 flows) are opened (SYN, then the client's ACK, which makes the sticky
//!   affinities), then bursts of 32 ACKs of flows taken in a scattered order over the whole set
//!   are forwarded for `--secs`: Mpps per core, every packet a connection-table hit.
//! - **new flows**: SYN-only traffic, every packet a new flow from its own client address and
//!   port (a flood's worst case: sticky and wildcard_sticky look for an affinity that is never
//!   there), into a table of 131,072 entries with the clock advancing 1 ms per burst, so the
//!   table is full of half-open entries (5 s timeout) that expire and are evicted: new flows per
//!   second per core, and what the table did with them (inserts, of which evicting a live
//!   half-open entry; SYNs served without a slot; drops) from the pipeline's counters.
//!
//! - **hand-off** (issue 9, SC4; `wrr`): full handshakes (a burst of 32 SYNs of new flows, then
//!   their 32 ACKs, which make the entries established), with `PipelineConfig::handoff` off and
//!   on; on, every burst's hand-off records go into the worker's batched ring as aliasd's
//!   worker does (`clua_lb::records`, published once per loop), drained by a second thread
//!   standing in for the control thread: the worker's cost of handing every new flow to peer
//!   routers, as handshakes per second per core with and without.
//!
//! Prints one `RESULT` line per policy, and one for the hand-off.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clua_pipeline::snapshot::{ServicePolicy, ServiceSpec};
use clua_pipeline::wire::checksum::checksum;
use clua_pipeline::{
    AliasMember, CoreCounters, DropReason, Encap, Member, MemberId, Pipeline, PipelineConfig,
    Policy, PortInfo, PortRole, ServiceMode, Snapshot, VecBuf, Verdict, BURST,
};

const FRAME_LEN: usize = 60;
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const ALIAS: [u8; 4] = [198, 51, 100, 100];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// The client port, one interconnect, 8 l2 members of alias web (selw 1..3), tcp/80 in_multi
/// with `policy` (also the workers bench's world).
pub(crate) fn snapshot(policy: Policy) -> Snapshot {
    let port = |name: &str, role, last: u8, ip: [u8; 4]| PortInfo {
        name: name.into(),
        role,
        mac: [2, 0, 0, 0, 0, last],
        ipv4: Some(Ipv4Addr::from(ip)),
        prefix_len: 24,
        mtu: 1600,
        flow_source: None,
    };
    let members = (0..8u32)
        .map(|i| {
            Some(Member {
                id: MemberId(i),
                name: format!("m{i}"),
                port: 1,
                mac: [2, 0, 0, 0, 1, i as u8],
                ipv4: Ipv4Addr::new(192, 0, 2, 10 + i as u8),
                encap: Encap::L2,
                up: true,
                listening: None,
            })
        })
        .collect();
    let ams = (0..8)
        .map(|i| AliasMember {
            member: MemberId(i),
            selw: 1 + i % 3,
            selp: 1,
        })
        .collect();
    Snapshot::build(
        1,
        vec![
            port("client", PortRole::Client, 1, [198, 51, 100, 2]),
            port("ic0", PortRole::Interconnect, 2, [192, 0, 2, 2]),
        ],
        members,
        vec![("web".into(), Ipv4Addr::from(ALIAS), ams)],
        &[ServiceSpec {
            proto: 6,
            port: 80,
            mode: ServiceMode::InMulti,
        }],
    )
    .and_then(|s| {
        s.with_policies(&[ServicePolicy {
            proto: 6,
            port: 80,
            policy,
        }])
    })
    .expect("bench snapshot")
}

/// A 60-byte TCP frame from `src:sport` to the alias's port 80 with `flags`.
pub(crate) fn frame(src: u32, sport: u16, flags: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&ROUTER_MAC);
    out.extend_from_slice(&[2, 0, 0, 0, 0, 0x10, 0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&ALIAS);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&(1000 + u32::from(flags == ACK)).to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    out.extend_from_slice(&tcp);
    out.resize(start + FRAME_LEN, 0);
}

/// Flow `i` of the established set: 16 flows per client address.
fn flow(i: u32) -> (u32, u16) {
    (0x0a00_0000 | (i >> 4), 1024 + (i & 15) as u16)
}

struct Bench {
    pipeline: Pipeline,
    bufs: Vec<VecBuf>,
    verdicts: [Verdict; BURST],
}

impl Bench {
    fn new(policy: Policy, conn_capacity: usize) -> Bench {
        let cfg = PipelineConfig {
            conn_capacity,
            ..Default::default()
        };
        let counters = Arc::new(CoreCounters::new(cfg.max_members));
        Bench {
            pipeline: Pipeline::new(&cfg, Arc::new(snapshot(policy)), counters),
            bufs: (0..BURST).map(|_| VecBuf::new(&[0; FRAME_LEN])).collect(),
            verdicts: [Verdict::Drop(DropReason::TxFull); BURST],
        }
    }

    #[inline]
    fn burst(&mut self, frames: &[u8], now: u64) {
        for (k, b) in self.bufs.iter_mut().enumerate() {
            b.reset(&frames[k * FRAME_LEN..(k + 1) * FRAME_LEN], 128);
        }
        self.pipeline
            .process_burst(0, now, &mut self.bufs, &mut self.verdicts);
        black_box(&self.verdicts);
    }

    fn all_forwarded(&self) -> bool {
        self.verdicts.iter().all(|v| *v == Verdict::Forward(1))
    }
}

/// Runs `step` (one burst of 32 packets) until `secs` have passed; returns packets per second.
fn rate(secs: f64, mut step: impl FnMut()) -> f64 {
    let window = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut bursts = 0u64;
    loop {
        for _ in 0..256 {
            step();
        }
        bursts += 256;
        let t = start.elapsed();
        if t >= window {
            return (bursts * BURST as u64) as f64 / t.as_secs_f64();
        }
    }
}

fn established(policy: Policy, flows: u32, secs: f64) -> (f64, usize) {
    let flows = flows.next_power_of_two().max(BURST as u32);
    let mut b = Bench::new(policy, flows as usize * 2);
    let mut syn = Vec::with_capacity(BURST * FRAME_LEN);
    let mut ack = Vec::with_capacity(BURST * FRAME_LEN);
    let mut acks = Vec::with_capacity(flows as usize * FRAME_LEN);
    for base in (0..flows).step_by(BURST) {
        syn.clear();
        ack.clear();
        for i in base..base + BURST as u32 {
            let (src, sport) = flow(i);
            frame(src, sport, SYN, &mut syn);
            frame(src, sport, ACK, &mut ack);
        }
        b.burst(&syn, 0);
        b.burst(&ack, 0);
        assert!(b.all_forwarded(), "setup: {:?}", b.verdicts[0]);
        acks.extend_from_slice(&ack);
    }
    let entries = b.pipeline.selector().conns().live(1);
    let mask = flows - 1;
    let mut next = 0u32;
    let mut burst = vec![0u8; BURST * FRAME_LEN];
    let pps = rate(secs, || {
        for k in 0..BURST {
            // An odd multiplier permutes 0..2^k: every flow comes up once per pass.
            let i = (next.wrapping_mul(0x9e37_79b1) & mask) as usize;
            next = next.wrapping_add(1);
            burst[k * FRAME_LEN..(k + 1) * FRAME_LEN]
                .copy_from_slice(&acks[i * FRAME_LEN..(i + 1) * FRAME_LEN]);
        }
        b.burst(&burst, 1);
    });
    assert!(b.all_forwarded(), "established: {:?}", b.verdicts[0]);
    (pps, entries)
}

/// The table the SYN-only run fills: smaller than the SYNs live at once, so it is full.
const NEW_FLOW_SLOTS: usize = 1 << 17;

/// SYN frames of distinct new flows, each from its own client address and port: more than the
/// table holds and than live in it at once (160k half-open at 1 ms per burst), so by the time
/// the ring comes round its flows' entries have expired and they are new again.
const SYN_RING: u32 = 1 << 20;

fn syn_ring() -> Vec<u8> {
    let mut out = Vec::with_capacity(SYN_RING as usize * FRAME_LEN);
    for n in 0..SYN_RING {
        frame(
            0x0a00_0000 ^ n.rotate_left(8),
            1024 + (n % 60_000) as u16,
            SYN,
            &mut out,
        );
    }
    out
}

/// What the table did with the SYNs of one [`new_flows`] run (the pipeline's counters).
struct NewFlowCounts {
    /// SYNs received.
    rx: u64,
    /// Entries written (`conn_inserts`: free slots and evictions).
    inserts: u64,
    /// Of those, inserts that evicted a live (half-open) entry.
    evictions: u64,
    /// SYNs forwarded without an entry (both buckets full of half-open entries younger than
    /// the grace; served by the consistent hash).
    without_slot: u64,
    /// Packets dropped, for any reason (none expected).
    drops: u64,
}

/// New flows per second, and the table's counts for the run.
fn new_flows(policy: Policy, secs: f64, ring: &[u8]) -> (f64, NewFlowCounts) {
    let mut b = Bench::new(policy, NEW_FLOW_SLOTS);
    let bursts = ring.len() / (BURST * FRAME_LEN);
    let mut k = 0usize;
    let mut now = 0u64;
    let fps = rate(secs, || {
        let at = k * BURST * FRAME_LEN;
        k = if k + 1 == bursts { 0 } else { k + 1 };
        now += 1;
        b.burst(&ring[at..at + BURST * FRAME_LEN], now);
    });
    assert!(b.all_forwarded(), "new flows: {:?}", b.verdicts[0]);
    let c = b.pipeline.counters();
    let counts = NewFlowCounts {
        rx: CoreCounters::get(&c.rx),
        inserts: CoreCounters::get(&c.conn_inserts),
        evictions: CoreCounters::get(&c.conn_evictions),
        without_slot: CoreCounters::get(&c.syn_without_slot),
        drops: c.drops.iter().map(CoreCounters::get).sum(),
    };
    // Every SYN is a new flow: it took a slot, or was served without one.
    assert_eq!(counts.inserts + counts.without_slot, counts.rx, "new flows");
    (fps, counts)
}

/// Handshakes (SYN burst, then its ACK burst) per second on one core, hand-off off or on (see
/// the module docs), and the records the consumer received.
fn handshakes(handoff: bool, secs: f64) -> (f64, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let cfg = PipelineConfig {
        conn_capacity: 1 << 17,
        tcp_idle_ms: 1_000,
        handoff,
        ..Default::default()
    };
    let counters = Arc::new(CoreCounters::new(cfg.max_members));
    let mut b = Bench {
        pipeline: Pipeline::new(&cfg, Arc::new(snapshot(Policy::Wrr)), counters),
        bufs: (0..BURST).map(|_| VecBuf::new(&[0; FRAME_LEN])).collect(),
        verdicts: [Verdict::Drop(DropReason::TxFull); BURST],
    };
    // 2^18 flows at 32 per ms of fake time: a flow comes round after 8 s, its entry long
    // expired (1 s idle timeout), so every SYN is a new flow and every ACK completes it.
    let n: u32 = 1 << 18;
    let (mut syns, mut acks) = (Vec::new(), Vec::new());
    for i in 0..n {
        let (src, sport) = (0x0a00_0000 ^ i.rotate_left(8), 1024 + (i % 60_000) as u16);
        frame(src, sport, SYN, &mut syns);
        frame(src, sport, ACK, &mut acks);
    }
    let ring = clua_lb::records::RecordRing::new(65_536, clua_lb::records::MAX_BATCH);
    let mut writer = clua_lb::records::RecordWriter::new(ring.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let consumer = {
        let (ring, stop, received) = (ring.clone(), stop.clone(), received.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let got = ring.drain(64, |r| {
                    black_box(r);
                });
                received.fetch_add(got as u64, Ordering::Relaxed);
                if got == 0 {
                    std::thread::yield_now();
                }
            }
        })
    };
    let bursts = (n as usize) / BURST;
    let (mut k, mut now, mut full) = (0usize, 0u64, 0u64);
    let pps = rate(secs, || {
        let at = k * BURST * FRAME_LEN;
        k = if k + 1 == bursts { 0 } else { k + 1 };
        now += 1;
        b.burst(&syns[at..at + BURST * FRAME_LEN], now);
        b.burst(&acks[at..at + BURST * FRAME_LEN], now);
        // As aliasd's worker does: into its batch, published at the end of the loop.
        for r in b.pipeline.handoffs() {
            if !writer.push(*r) {
                full += 1;
            }
        }
        writer.flush();
    });
    stop.store(true, Ordering::Relaxed);
    let _ = consumer.join();
    assert!(b.all_forwarded(), "handshakes: {:?}", b.verdicts[0]);
    black_box(full);
    // `rate` counts one burst of 32 per step; a step here is 32 handshakes.
    (pps, received.load(Ordering::Relaxed))
}

pub fn run(flows: u32, secs: f64) {
    println!("# clua-bench policies: {flows} established flows, {secs} s windows, one core");
    println!(
        "# {:<16} {:>18} {:>14} {:>22} {:>16}",
        "policy", "established Mpps", "table entries", "new flows (M/s, SYN)", "evicting"
    );
    let ring = syn_ring();
    for policy in [
        Policy::Wrr,
        Policy::Weighted,
        Policy::Sticky,
        Policy::WildcardSticky,
    ] {
        let (pps, entries) = established(policy, flows, secs);
        let (fps, n) = new_flows(policy, secs, &ring);
        let evicting = n.evictions as f64 / n.rx.max(1) as f64;
        println!(
            "# {:<16} {:>18.2} {:>14} {:>22.2} {:>15.0}%",
            policy.name(),
            pps / 1e6,
            entries,
            fps / 1e6,
            evicting * 100.0
        );
        println!(
            "#   new flows ({} SYNs into {NEW_FLOW_SLOTS} slots): {} inserts, {} evicting, {} without a slot, {} drops",
            n.rx, n.inserts, n.evictions, n.without_slot, n.drops
        );
        println!(
            "RESULT policy={} established_mpps={:.3} table_entries={entries} new_flows_mps={:.3} evicting={:.3} syns={} inserts={} evictions={} without_slot={} drops={}",
            policy.name(),
            pps / 1e6,
            fps / 1e6,
            evicting,
            n.rx,
            n.inserts,
            n.evictions,
            n.without_slot,
            n.drops
        );
    }
    let (off, _) = handshakes(false, secs);
    let (on, records) = handshakes(true, secs);
    println!(
        "# hand-off (wrr): {:.2} M handshakes/s off, {:.2} M/s on ({:.0} % of off; {records} records handed on)",
        off / 1e6,
        on / 1e6,
        on / off * 100.0
    );
    println!(
        "RESULT handoff off_mhps={:.3} on_mhps={:.3} ratio={:.3} records={records}",
        off / 1e6,
        on / 1e6,
        on / off
    );
}
