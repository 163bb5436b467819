//! `clua-bench workers [--flows 65536] [--secs 3] [--max 2] [--rounds 1]`: how the pipeline scales over
//! several workers (issue 12, docs/workers.md). In process, no DPDK: for 1, 2, .. `--max`
//! workers, one thread each with its own `clua_pipeline::Pipeline` (connection table, counters,
//! round-robin cursors: nothing shared but the immutable snapshot), as aliasd's workers are.
//! The `--flows` established TCP flows are split over the workers as RSS would split them (flow
//! i to worker i mod n: every flow on one worker), so each table holds flows/n entries at the
//! same fill; then every worker forwards bursts of 32 ACKs of its flows, in a scattered order,
//! for `--secs`, all at once. Each burst's buffers are reset from the frames (a 60-byte copy per
//! packet, as in `clua-bench policies`).
//!
//! Prints one `RESULT` line per worker count and round: the total and per-worker Mpps, and the
//! total over the 1-worker total of the same round (`scaling`). On a machine with fewer free CPUs than
//! workers the threads share CPUs and `scaling` says so (about 1.0 on a busy 2-vCPU VM).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clua_pipeline::{
    CoreCounters, DropReason, Pipeline, PipelineConfig, Snapshot, VecBuf, Verdict, BURST,
};

const FRAME_LEN: usize = 60;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;

/// A 60-byte TCP frame of flow `i` (client 10.x.y.z, one per 16 flows) to the alias's port 80:
/// the policies bench's frame ([`crate::policies::frame`]).
fn frame(i: u32, flags: u8, out: &mut Vec<u8>) {
    crate::policies::frame(0x0a00_0000 | (i >> 4), 1024 + (i & 15) as u16, flags, out);
}

/// One worker: its pipeline, its flows' ACK frames, its burst buffers.
struct Lane {
    pipeline: Pipeline,
    acks: Vec<u8>,
    flows: usize,
    bufs: Vec<VecBuf>,
    verdicts: [Verdict; BURST],
}

impl Lane {
    /// Worker `w` of `n`: the flows i with i mod n == w, opened (SYN, ACK) in its table.
    fn new(snapshot: &Arc<Snapshot>, flows: u32, w: u32, n: u32) -> Lane {
        let mine: Vec<u32> = (0..flows).filter(|i| i % n == w).collect();
        let cfg = PipelineConfig {
            conn_capacity: (mine.len() * 2).next_power_of_two(),
            ..Default::default()
        };
        let counters = Arc::new(CoreCounters::new(cfg.max_members));
        let mut lane = Lane {
            pipeline: Pipeline::new(&cfg, snapshot.clone(), counters),
            acks: Vec::with_capacity(mine.len() * FRAME_LEN),
            flows: mine.len(),
            bufs: (0..BURST).map(|_| VecBuf::new(&[0; FRAME_LEN])).collect(),
            verdicts: [Verdict::Drop(DropReason::TxFull); BURST],
        };
        let mut syn = Vec::with_capacity(BURST * FRAME_LEN);
        let mut ack = Vec::with_capacity(BURST * FRAME_LEN);
        for chunk in mine.chunks(BURST) {
            syn.clear();
            ack.clear();
            for &i in chunk {
                frame(i, SYN, &mut syn);
                frame(i, ACK, &mut ack);
            }
            lane.burst(&syn, chunk.len(), 0);
            lane.burst(&ack, chunk.len(), 0);
            assert!(
                lane.all_forwarded(chunk.len()),
                "setup: {:?}",
                lane.verdicts[0]
            );
            lane.acks.extend_from_slice(&ack);
        }
        lane
    }

    #[inline]
    fn burst(&mut self, frames: &[u8], n: usize, now: u64) {
        for (k, b) in self.bufs[..n].iter_mut().enumerate() {
            b.reset(&frames[k * FRAME_LEN..(k + 1) * FRAME_LEN], 128);
        }
        self.pipeline
            .process_burst(0, now, &mut self.bufs[..n], &mut self.verdicts[..n]);
        black_box(&self.verdicts);
    }

    fn all_forwarded(&self, n: usize) -> bool {
        self.verdicts[..n].iter().all(|v| *v == Verdict::Forward(1))
    }

    /// Forwards bursts of this lane's ACKs (a scattered order over its flows) until `secs`
    /// have passed; returns packets per second.
    fn run(&mut self, secs: f64) -> f64 {
        let window = Duration::from_secs_f64(secs);
        let mut burst = vec![0u8; BURST * FRAME_LEN];
        let n = self.flows as u64;
        let mut next = 0u64;
        let start = Instant::now();
        let mut bursts = 0u64;
        loop {
            for _ in 0..256 {
                for k in 0..BURST {
                    // A stride coprime with n visits every flow once per pass, far apart.
                    let i = (next.wrapping_mul(0x9e37_79b1) % n) as usize;
                    next = next.wrapping_add(1);
                    burst[k * FRAME_LEN..(k + 1) * FRAME_LEN]
                        .copy_from_slice(&self.acks[i * FRAME_LEN..(i + 1) * FRAME_LEN]);
                }
                let b = std::mem::take(&mut burst);
                self.burst(&b, BURST, 1);
                burst = b;
            }
            bursts += 256;
            let t = start.elapsed();
            if t >= window {
                assert!(self.all_forwarded(BURST), "run: {:?}", self.verdicts[0]);
                return (bursts * BURST as u64) as f64 / t.as_secs_f64();
            }
        }
    }
}

/// Runs `n` workers at once over `flows` flows for `secs`; the per-worker packets per second.
fn measure(snapshot: &Arc<Snapshot>, flows: u32, n: u32, secs: f64) -> Vec<f64> {
    let barrier = Arc::new(Barrier::new(n as usize));
    let threads: Vec<_> = (0..n)
        .map(|w| {
            let snapshot = snapshot.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut lane = Lane::new(&snapshot, flows, w, n);
                barrier.wait();
                lane.run(secs)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("worker thread"))
        .collect()
}

pub fn run(flows: u32, secs: f64, max: u32, rounds: u32) {
    // The policies bench's world (client port, one interconnect, 8 l2 members of alias web,
    // selw 1..3, tcp/80 in_multi) with the plain round robin.
    let snapshot = Arc::new(crate::policies::snapshot(clua_pipeline::Policy::Wrr));
    let flows = flows.max(BURST as u32 * max);
    // Rounds of 1, 2, .. max workers, each against the 1-worker figure of its own round: on a
    // busy machine the load drifts, and neighbouring measurements drift least.
    for round in 1..=rounds.max(1) {
        let mut one = None;
        for n in 1..=max.max(1) {
            let per = measure(&snapshot, flows, n, secs);
            let total: f64 = per.iter().sum();
            let base = *one.get_or_insert(total);
            let list: Vec<String> = per.iter().map(|p| format!("{:.3}", p / 1e6)).collect();
            println!(
                "RESULT engine=pipeline-threads round={round} workers={n} flows={flows} \
                 secs={secs} mpps_total={:.3} mpps_per_worker={} scaling={:.2}",
                total / 1e6,
                list.join(","),
                total / base
            );
        }
    }
}
