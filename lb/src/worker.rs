//! The per-core worker: RX -> pipeline (classify, select, encap) -> TX, in bursts.
//!
//! A worker owns one RX queue on every port and one TX queue (its index) on every port; nothing
//! it touches per packet is shared. Forwarded packets are buffered per egress port and sent
//! after each RX burst; what the port does not take is freed and counted as `tx_full`. Punted
//! packets go, with their reason, to the control thread's [`PuntQueues`]; dropped packets are
//! freed (the pipeline counted them). Worker 0 also transmits the control thread's frames
//! ([`Worker::inject`]). The stop flag and the published snapshot are read every
//! [`SNAPSHOT_POLL`] loops, so a new snapshot takes effect between bursts.
//!
//! The loop is generic over the port ([`PacketPort`], hence the buffer type) and the [`Clock`]:
//! aliasd runs it over DPDK ports and the TSC, tests over [`clua_packet::QueuePort`]s and fake
//! time, with no EAL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clua_packet::{Burst, PacketPort};
use clua_pipeline::{CoreCounters, DropReason, Pipeline, Snapshot, Verdict, BURST};
use crossbeam_queue::ArrayQueue;

use crate::clock::Clock;
use crate::punt::{PuntQueues, Punted};

/// Loop iterations between checks of the stop flag and the published snapshot.
pub const SNAPSHOT_POLL: u32 = 64;

/// A frame the control thread wants sent (ARP replies, gratuitous ARP, echo replies), and the
/// port to send it on.
#[derive(Debug)]
pub struct Transmit<B> {
    /// Egress port (`PortId`).
    pub port: u16,
    /// The complete frame.
    pub buf: B,
}

/// What a worker needs; moved onto its lcore, then [`Worker::run`].
pub struct Worker<P: PacketPort, C> {
    /// Worker index = RX queue = TX queue on every port.
    pub queue: u16,
    /// All ports, indexed by `PortId`.
    pub ports: Vec<P>,
    /// The per-core pipeline.
    pub pipeline: Pipeline,
    /// Where punted packets go.
    pub punt: Arc<PuntQueues<P::Buf>>,
    /// Frames the control thread wants sent: PMDs may have no spare TX queue for the control
    /// thread, so worker 0 transmits them on its own.
    pub inject: Option<Arc<ArrayQueue<Transmit<P::Buf>>>>,
    /// The control plane's current snapshot.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// Sleep when idle (labs on few cores); 0 polls flat out.
    pub idle_sleep_us: u32,
    /// Time for the pipeline (connection ageing, refusal rate limit), read once per RX burst.
    pub clock: C,
}

/// What one [`Running::poll`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// The stop flag was seen; nothing was received or sent.
    Stopped,
    /// One pass over every port: how many packets arrived.
    Received(usize),
}

/// A worker with its bursts allocated, polled one loop iteration at a time (what
/// [`Worker::run`] does until stopped; tests call [`Running::poll`] directly).
pub struct Running<P: PacketPort, C> {
    worker: Worker<P, C>,
    counters: Arc<CoreCounters>,
    rx: Burst<P::Buf>,
    /// One TX buffer per port, flushed after every RX burst.
    tx: Vec<Burst<P::Buf>>,
    verdicts: [Verdict; BURST],
    loops: u32,
}

impl<P: PacketPort, C: Clock> Worker<P, C> {
    /// Runs until the stop flag is set. Returns 0 (the lcore's exit code).
    pub fn run(self) -> i32 {
        let idle = Duration::from_micros(u64::from(self.idle_sleep_us));
        let mut running = self.start();
        loop {
            match running.poll() {
                Poll::Stopped => break,
                Poll::Received(0) if !idle.is_zero() => std::thread::sleep(idle),
                Poll::Received(_) => {}
            }
        }
        0
    }

    /// Allocates the bursts (the worker's last allocation until a snapshot swap).
    pub fn start(self) -> Running<P, C> {
        Running {
            counters: self.pipeline.counters().clone(),
            rx: Burst::new(),
            tx: self.ports.iter().map(|_| Burst::new()).collect(),
            verdicts: [Verdict::Drop(DropReason::Truncated); BURST],
            loops: 0,
            worker: self,
        }
    }
}

impl<P: PacketPort, C: Clock> Running<P, C> {
    /// The worker (its pipeline, its snapshot in use).
    pub fn worker(&self) -> &Worker<P, C> {
        &self.worker
    }

    /// One loop iteration: every [`SNAPSHOT_POLL`]th one checks the stop flag and picks up a
    /// newly published snapshot; then the injected frames (worker 0), then one RX burst per
    /// port through the pipeline, forwarded packets sent and punted ones queued.
    pub fn poll(&mut self) -> Poll {
        let w = &mut self.worker;
        self.loops = self.loops.wrapping_add(1);
        if self.loops.is_multiple_of(SNAPSHOT_POLL) {
            if w.stop.load(Ordering::Relaxed) {
                return Poll::Stopped;
            }
            let current = w.snapshot.load();
            if current.generation != w.pipeline.snapshot().generation {
                w.pipeline
                    .set_snapshot(arc_swap::Guard::into_inner(current));
            }
        }
        let counters: &CoreCounters = &self.counters;
        if let Some(inject) = &w.inject {
            if !inject.is_empty() {
                while let Some(t) = inject.pop() {
                    let Some(buf) = self.tx.get_mut(usize::from(t.port)) else {
                        // The control thread named a port this worker does not have.
                        counters.drop(DropReason::WrongPort);
                        continue;
                    };
                    if buf.is_full() {
                        flush(&w.ports[usize::from(t.port)], w.queue, buf, counters);
                    }
                    let _ = buf.push(t.buf);
                }
                flush_all(&w.ports, w.queue, &mut self.tx, counters);
            }
        }
        let mut received = 0;
        for (port_id, port) in w.ports.iter().enumerate() {
            let n = port.rx_burst(w.queue, &mut self.rx);
            if n == 0 {
                continue;
            }
            received += n;
            let now_ms = w.clock.now_ms();
            let verdicts = &mut self.verdicts[..n];
            w.pipeline
                .process_burst(port_id as u16, now_ms, self.rx.as_mut_slice(), verdicts);
            for (buf, verdict) in self.rx.drain().zip(verdicts.iter()) {
                match *verdict {
                    Verdict::Forward(out) => match self.tx.get_mut(usize::from(out)) {
                        // Cannot be full: TX buffers are flushed after every RX burst of at
                        // most BURST packets. Counted rather than assumed.
                        Some(tx) => {
                            if tx.push(buf).is_err() {
                                counters.drop(DropReason::TxFull);
                            }
                        }
                        // A snapshot port this worker has no handle for.
                        None => counters.drop(DropReason::WrongPort),
                    },
                    Verdict::Drop(_) => drop(buf),
                    Verdict::Punt(reason) => {
                        w.punt.push(
                            Punted {
                                port: port_id as u16,
                                reason,
                                buf,
                            },
                            counters,
                        );
                    }
                }
            }
            flush_all(&w.ports, w.queue, &mut self.tx, counters);
        }
        Poll::Received(received)
    }
}

/// Sends every non-empty TX buffer on its port.
#[inline]
fn flush_all<P: PacketPort>(
    ports: &[P],
    queue: u16,
    tx: &mut [Burst<P::Buf>],
    counters: &CoreCounters,
) {
    for (port, buf) in ports.iter().zip(tx.iter_mut()) {
        flush(port, queue, buf, counters);
    }
}

/// Sends a TX buffer; what the port does not take is freed and counted as `TxFull`.
#[inline]
fn flush<P: PacketPort>(port: &P, queue: u16, buf: &mut Burst<P::Buf>, counters: &CoreCounters) {
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
