//! The per-core worker: RX -> pipeline (classify, select, encap) -> TX, in bursts.
//!
//! A worker owns one RX queue on every port and one TX queue (its index) on every port; nothing
//! it touches per packet is shared. Forwarded packets are buffered per egress port and sent
//! after each RX burst; punted packets go to the control thread's queue; dropped packets are
//! freed (the pipeline counted them). The snapshot is re-read every [`SNAPSHOT_POLL`] loops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clua_dpdk::{Burst, Mbuf, Port};
use clua_pipeline::{CoreCounters, DropReason, Pipeline, PuntReason, Snapshot, Verdict, BURST};
use crossbeam_queue::ArrayQueue;

/// Loop iterations between checks of the stop flag and the published snapshot.
pub const SNAPSHOT_POLL: u32 = 64;

/// A packet for the control thread, with the port it arrived on.
pub struct Punted {
    /// Receiving port (for injected packets: the egress port).
    pub port: u16,
    /// Why the data plane punted it.
    pub reason: PuntReason,
    /// The packet.
    pub mbuf: Mbuf,
}

/// What a worker needs; moved onto its lcore.
pub struct Worker {
    /// Worker index = RX queue = TX queue on every port.
    pub queue: u16,
    /// All ports, indexed by `PortId`.
    pub ports: Vec<Port>,
    /// The per-core pipeline.
    pub pipeline: Pipeline,
    /// Where punted packets go.
    pub punt: Arc<ArrayQueue<Punted>>,
    /// Packets the control thread wants sent (ARP replies, gratuitous ARP, echo replies): PMDs
    /// may have no spare TX queue for the control thread, so worker 0 transmits them on its own.
    /// `port` is the egress port.
    pub inject: Option<Arc<ArrayQueue<Punted>>>,
    /// The control plane's current snapshot.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// Sleep when idle (labs on few cores); 0 polls flat out.
    pub idle_sleep_us: u32,
    /// TSC ticks per millisecond.
    pub tsc_per_ms: u64,
}

impl Worker {
    /// Runs until the stop flag is set. Returns 0.
    pub fn run(mut self) -> i32 {
        let counters: Arc<CoreCounters> = self.pipeline.counters().clone();
        let mut rx = Burst::new();
        let mut tx: Vec<Burst> = self.ports.iter().map(|_| Burst::new()).collect();
        let mut verdicts = [Verdict::Drop(DropReason::Truncated); BURST];
        let mut loops: u32 = 0;
        loop {
            loops = loops.wrapping_add(1);
            if loops.is_multiple_of(SNAPSHOT_POLL) {
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
                let current = self.snapshot.load();
                if current.generation != self.pipeline.snapshot().generation {
                    self.pipeline
                        .set_snapshot(arc_swap::Guard::into_inner(current));
                }
            }
            if let Some(inject) = &self.inject {
                if !inject.is_empty() {
                    while let Some(p) = inject.pop() {
                        let buf = &mut tx[p.port as usize];
                        if buf.is_full() {
                            flush(&self.ports[p.port as usize], self.queue, buf, &counters);
                        }
                        let _ = buf.push(p.mbuf);
                    }
                    for (out, buf) in tx.iter_mut().enumerate() {
                        flush(&self.ports[out], self.queue, buf, &counters);
                    }
                }
            }
            let mut received = 0;
            for (port_id, port) in self.ports.iter().enumerate() {
                let n = port.rx_burst(self.queue, &mut rx);
                if n == 0 {
                    continue;
                }
                received += n;
                let now_ms = clua_dpdk::tsc() / self.tsc_per_ms;
                self.pipeline.process_burst(
                    port_id as u16,
                    now_ms,
                    rx.as_mut_slice(),
                    &mut verdicts[..n],
                );
                for (mbuf, verdict) in rx.drain().zip(verdicts.iter()) {
                    match *verdict {
                        Verdict::Forward(out) => {
                            let buf = &mut tx[out as usize];
                            if let Err(m) = buf.push(mbuf) {
                                // Cannot happen: buffers are flushed after every RX burst of at
                                // most BURST packets. Counted rather than assumed.
                                CoreCounters::drop(&counters, DropReason::TxFull);
                                drop(m);
                            }
                        }
                        Verdict::Drop(_) => drop(mbuf),
                        Verdict::Punt(reason) => {
                            if let Err(p) = self.punt.push(Punted {
                                port: port_id as u16,
                                reason,
                                mbuf,
                            }) {
                                CoreCounters::drop(&counters, DropReason::PuntQueueFull);
                                drop(p);
                            }
                        }
                    }
                }
                for (out, buf) in tx.iter_mut().enumerate() {
                    if buf.is_empty() {
                        continue;
                    }
                    self.ports[out].tx_burst(self.queue, buf);
                    let unsent = buf.len();
                    if unsent > 0 {
                        CoreCounters::add(
                            &counters.drops[DropReason::TxFull as usize],
                            unsent as u64,
                        );
                        buf.clear();
                    }
                }
            }
            if received == 0 && self.idle_sleep_us > 0 {
                std::thread::sleep(Duration::from_micros(self.idle_sleep_us as u64));
            }
        }
        0
    }
}

/// Sends a TX buffer; what the PMD does not take is freed and counted as `TxFull`.
#[inline]
fn flush(port: &Port, queue: u16, buf: &mut Burst, counters: &CoreCounters) {
    if buf.is_empty() {
        return;
    }
    port.tx_burst(queue, buf);
    let unsent = buf.len();
    if unsent > 0 {
        CoreCounters::add(&counters.drops[DropReason::TxFull as usize], unsent as u64);
        buf.clear();
    }
}
