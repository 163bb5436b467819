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
//! With [`WorkerSync`] (issue 9, flow hand-off between routers), the worker also hands flow
//! records to the control thread through a bounded ring it never waits on: the TCP flows that
//! became established in each burst, and every live entry of its table once per
//! `refresh_ms` (a walk paced by the clock, a bounded number of slots per loop), or once at
//! once when the control thread asks ([`WorkerSync::walk_all`]: a starting peer wants the
//! whole table). It installs the records the control thread passes back (peers' flows), a
//! budget per loop. At stop it can hand its whole table back ([`WorkerSync::dump`]) for the
//! flows file. All of it is optional: without it the loop does none of this.
//!
//! IPv4 fragments that arrive ahead of their datagram's first fragment (issue 10,
//! [`clua_pipeline::fragments`]) come back from the pipeline as [`Verdict::Hold`]: the worker
//! parks the buffer in its [`HeldFragments`] (sized once, at start) and, every loop while some
//! are parked, asks the pipeline to release those whose first fragment has arrived (sent like
//! forwarded packets) or whose time ran out (freed, counted). At stop the parked buffers are
//! freed and counted (`fragment_flushed`).
//!
//! After a loop that received nothing the worker waits as its [`IdlePolicy`] says (issue 12,
//! [`crate::idle`]): by default it backs off from polling to pauses to sleeps of at most
//! `[dpdk] idle_max_sleep_us`, and polls flat out again from the first packet. The loop's
//! other work (the stop flag and snapshot, injected frames, hand-off, fragments) goes on at
//! one loop per wake-up.
//!
//! The loop is generic over the port ([`PacketPort`], hence the buffer type) and the [`Clock`]:
//! aliasd runs it over DPDK ports and the TSC, tests over [`clua_packet::QueuePort`]s and fake
//! time, with no EAL.

use arc_swap::ArcSwap;
use clua_packet::{Burst, PacketBuf, PacketPort};
use clua_pipeline::fragments::HeldFragments;
use clua_pipeline::handoff::FlowRecord;
use clua_pipeline::{CoreCounters, DropReason, Pipeline, Snapshot, Verdict, BURST};
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::capture::{Armed, CaptureTap};
use crate::clock::Clock;
use crate::idle::{Backoff, IdlePolicy, TimerSlack};
use crate::punt::{PuntQueues, Punted};
use crate::records::{RecordRing, RecordWriter};
use clua_ctl::capture::Direction;

/// Loop iterations between checks of the stop flag and the published snapshot.
pub const SNAPSHOT_POLL: u32 = 64;

/// Connection-table slots the occupancy sweep counts every [`SNAPSHOT_POLL`] loops (issue 11):
/// 16 KiB read per step, a 65,536-slot table counted every 128 steps.
pub const OCCUPANCY_SLOTS: usize = 512;

/// Connection-table slots the periodic walk covers per loop at most (it is paced to cover the
/// table once per `refresh_ms`; this bounds a loop that comes late).
pub const WALK_SLOTS_PER_LOOP: usize = 256;

/// Slots per loop of a requested whole-table walk ([`WorkerSync::walk_all`]): faster than the
/// periodic walk, still bounded so that packets keep flowing.
pub const WALK_ALL_SLOTS_PER_LOOP: usize = 4096;

/// Handed-over flows installed per loop at most.
pub const INSTALL_BUDGET: usize = 256;

/// A worker's side of flow hand-off (issue 9). `Default`: all off, at no cost.
#[derive(Debug, Default)]
pub struct WorkerSync {
    /// Where the worker puts flow records for the control thread
    /// ([`ControlPlane::on_flows`](clua_ctl::plane::ControlPlane::on_flows)): the pipeline's
    /// [`handoffs`](Pipeline::handoffs) after each burst and the entries of the walks. When
    /// it is full, burst records are dropped and counted (`handoff_ring_full`) and the walk
    /// waits. Records go in batches ([`crate::records`]), published at the end of every loop
    /// that made some (or when a batch is full). `None`: no hand-off, no walk.
    pub handoff: Option<Arc<RecordRing>>,
    /// The periodic walk hands every live entry to `handoff` once per this many ms (the
    /// refresh of long-lived flows in peers' tables). 0: no periodic walk.
    pub refresh_ms: u64,
    /// Records, in this router's member ids, the worker installs in its table
    /// ([`Pipeline::install`]), [`INSTALL_BUDGET`] per loop.
    pub install: Option<Arc<ArrayQueue<FlowRecord>>>,
    /// Affinities the other workers of this router wrote (issue 12: sticky and
    /// wildcard_sticky, copied by the control thread from their `handoff` rings), which this
    /// worker takes in ([`Pipeline::adopt`]) within the same [`INSTALL_BUDGET`] per loop.
    pub siblings: Option<Arc<ArrayQueue<FlowRecord>>>,
    /// Set by the control thread: walk the whole table once now, [`WALK_ALL_SLOTS_PER_LOOP`]
    /// slots per loop (needs `handoff`). The worker clears it when it starts the walk.
    pub walk_all: Option<Arc<AtomicBool>>,
    /// Where [`Running::hand_back`] (called by [`Worker::run`] once stopped) appends every
    /// live entry of the table: the flows file written at shutdown.
    pub dump: Option<Arc<Mutex<Vec<FlowRecord>>>>,
}

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
    /// What to do after a poll that received nothing ([`crate::idle`], `[dpdk] idle`).
    pub idle: IdlePolicy,
    /// Time for the pipeline (connection ageing, refusal rate limit), read once per RX burst
    /// (and once per loop for hand-off, when [`WorkerSync`] has something to do).
    pub clock: C,
    /// Flow hand-off (issue 9); `WorkerSync::default()` when off.
    pub sync: WorkerSync,
    /// `cluamgr capture`'s tap (issue 11, [`crate::capture`]): one relaxed load per burst
    /// while disarmed. `None`: never captured.
    pub capture: Option<Arc<CaptureTap>>,
    /// With several workers: where [`Verdict::ToWorker`] packets go, and where they come from
    /// ([`Relay`]). `None`: one worker (the pipeline then never says `ToWorker`).
    pub relay: Option<Relay<P::Buf>>,
}

/// ICMP errors passed between workers (issue 12): RSS hashes an ICMP error by its outer
/// addresses, not by the TCP flow it quotes, so it may reach a worker that does not hold the
/// flow. That worker passes it on ([`Verdict::ToWorker`]) to the next worker's `inbox`
/// (worker *i* to *i* + 1 mod n, a ring of workers); each worker runs what it finds in its own
/// inbox through its pipeline between bursts. The worker that would close the ring runs it
/// with passing on turned off, so it goes to the member a miss of the flow would get, as
/// with one worker. ICMP errors are rate-limited and rare: one multi-producer queue per
/// worker, no batching.
pub struct Relay<B> {
    /// The ICMP errors the other workers passed to this one.
    pub inbox: Arc<ArrayQueue<Relayed<B>>>,
    /// The next worker's inbox.
    pub next: Arc<ArrayQueue<Relayed<B>>>,
    /// Workers in all: an error is passed on at most `workers - 1` times.
    pub workers: u16,
}

/// A packet in a [`Relay`] inbox.
pub struct Relayed<B> {
    /// The port it arrived on.
    pub port: u16,
    /// How many workers have passed it on so far.
    pub hops: u16,
    /// The unchanged packet.
    pub buf: B,
}

/// A [`Relay`] for each of `workers` workers, each inbox `capacity` packets (rounded up to 1).
pub fn relays<B>(workers: usize, capacity: usize) -> Vec<Relay<B>> {
    let inboxes: Vec<Arc<ArrayQueue<Relayed<B>>>> = (0..workers)
        .map(|_| Arc::new(ArrayQueue::new(capacity.max(1))))
        .collect();
    (0..workers)
        .map(|i| Relay {
            inbox: inboxes[i].clone(),
            next: inboxes[(i + 1) % workers].clone(),
            workers: workers as u16,
        })
        .collect()
}

/// ICMP errors a worker takes from its [`Relay`] inbox per loop at most.
pub const RELAY_BUDGET: usize = 64;

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
    walk: Walk,
    /// The worker's end of [`WorkerSync::handoff`].
    writer: Option<RecordWriter>,
    /// Fragments parked until their datagram's first fragment arrives (issue 10).
    held: HeldFragments<P::Buf>,
}

/// Where the hand-off walk of the table is.
#[derive(Debug, Default)]
struct Walk {
    /// The next slot.
    at: usize,
    /// When the current periodic pass began (`None` until the first loop).
    pass_start: Option<u64>,
    /// Slots walked since then.
    done: usize,
    /// Slots a requested whole-table walk has still to cover.
    all_left: usize,
}

impl<P: PacketPort, C: Clock> Worker<P, C> {
    /// Runs until the stop flag is set. Returns 0 (the lcore's exit code).
    /// Between polls it waits as [`Worker::idle`] says ([`Backoff`]); with
    /// [`IdlePolicy::Adaptive`] the thread's timer slack is lowered meanwhile, so that a sleep
    /// ends close to when it was asked to (put back on return).
    pub fn run(self) -> i32 {
        let mut backoff = Backoff::new(self.idle);
        let _slack = self.idle.timer_slack_ns().and_then(TimerSlack::lower);
        let mut running = self.start();
        loop {
            match running.poll() {
                Poll::Stopped => break,
                Poll::Received(n) => backoff.after_poll(n).perform(),
            }
        }
        running.hand_back();
        running.free_held();
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
            walk: Walk::default(),
            writer: self.sync.handoff.clone().map(RecordWriter::new),
            held: self.pipeline.new_held(),
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
            // Table occupancy for `cluamgr -s` (issue 11): a few slots every SNAPSHOT_POLL
            // loops, busy or idle, so expired entries leave the count without traffic.
            w.pipeline
                .sweep_occupancy(OCCUPANCY_SLOTS, w.clock.now_ms());
            if let Some(flag) = &w.sync.walk_all {
                if flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::Relaxed) {
                    self.walk.all_left = w.pipeline.conn_capacity();
                }
            }
        }
        let counters: &CoreCounters = &self.counters;
        if let Some(inject) = &w.inject {
            if !inject.is_empty() {
                let armed = armed(&w.capture);
                while let Some(t) = inject.pop() {
                    if armed.tx(t.port) {
                        tap(&w.capture, w.queue, Direction::Tx, &t.buf, w.clock.now_us());
                    }
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
            let port_id = port_id as u16;
            let armed = armed(&w.capture);
            let now_us = if armed.is_off() { 0 } else { w.clock.now_us() };
            if armed.rx(port_id) {
                // Before the pipeline: it rewrites forwarded frames in place.
                for buf in self.rx.as_mut_slice().iter() {
                    tap(&w.capture, w.queue, Direction::Rx, buf, now_us);
                }
            }
            let verdicts = &mut self.verdicts[..n];
            w.pipeline
                .process_burst(port_id, now_ms, self.rx.as_mut_slice(), verdicts);
            if let Some(out) = &mut self.writer {
                let records = w.pipeline.handoffs();
                if !records.is_empty() {
                    hand_off(out, records, counters);
                }
            }
            for (buf, verdict) in self.rx.drain().zip(verdicts.iter()) {
                match *verdict {
                    Verdict::Forward(out) if armed.tx(out) => {
                        tap(&w.capture, w.queue, Direction::Tx, &buf, now_us);
                        forward(&mut self.tx, out, buf, counters);
                    }
                    Verdict::Forward(out) => forward(&mut self.tx, out, buf, counters),
                    Verdict::Drop(reason) if armed.drop(port_id) => {
                        if let Some(t) = &w.capture {
                            t.push(
                                usize::from(w.queue),
                                Direction::Drop,
                                reason,
                                now_us,
                                buf.data(),
                            );
                        }
                        drop(buf)
                    }
                    Verdict::Drop(_) => drop(buf),
                    Verdict::Hold(slot) => {
                        if let Err(buf) = self.held.put(slot, buf) {
                            // The pipeline gave a slot that cannot take it (never expected).
                            counters.drop(DropReason::FragmentFlushed);
                            drop(buf);
                        }
                    }
                    Verdict::Punt(reason) => {
                        w.punt.push(
                            Punted {
                                port: port_id,
                                reason,
                                buf,
                            },
                            counters,
                        );
                    }
                    Verdict::ToWorker => pass_on(&w.relay, port_id, 1, buf, counters),
                }
            }
            flush_all(&w.ports, w.queue, &mut self.tx, counters);
        }
        if !self.held.is_empty() {
            release_held(w, &mut self.held, &mut self.tx, counters);
        }
        if w.sync.install.is_some() || w.sync.handoff.is_some() || w.sync.siblings.is_some() {
            self.sync_step();
        }
        if self
            .worker
            .relay
            .as_ref()
            .is_some_and(|r| !r.inbox.is_empty())
        {
            self.relay_step();
        }
        if let Some(out) = &mut self.writer {
            out.flush();
        }
        Poll::Received(received)
    }

    /// Runs the ICMP errors other workers passed to this one (a budget): forwarded or dropped
    /// here, or passed on again while some worker has not seen them.
    fn relay_step(&mut self) {
        let w = &mut self.worker;
        let Some(relay) = &w.relay else { return };
        let counters = &*self.counters;
        let now_ms = w.clock.now_ms();
        let mut verdict = [Verdict::Drop(DropReason::Truncated)];
        for _ in 0..RELAY_BUDGET {
            let Some(Relayed { port, hops, buf }) = relay.inbox.pop() else {
                break;
            };
            let last = hops + 1 >= relay.workers;
            let mut one = [buf];
            w.pipeline.set_icmp_errors_to_other_workers(!last);
            w.pipeline
                .process_burst(port, now_ms, &mut one, &mut verdict);
            w.pipeline.set_icmp_errors_to_other_workers(true);
            let [buf] = one;
            match verdict[0] {
                Verdict::Forward(out) => {
                    // More than a TX buffer may come in one step: send a full one first.
                    if let Some(b) = self.tx.get_mut(usize::from(out)).filter(|b| b.is_full()) {
                        flush(&w.ports[usize::from(out)], w.queue, b, counters);
                    }
                    forward(&mut self.tx, out, buf, counters)
                }
                Verdict::ToWorker => pass_on(&w.relay, port, hops + 1, buf, counters),
                // Dropped (counted by the pipeline); nothing else comes of an ICMP error.
                _ => drop(buf),
            }
        }
        flush_all(&w.ports, w.queue, &mut self.tx, counters);
    }

    /// Installs what the control thread passed (a budget), then walks the table's next slots.
    fn sync_step(&mut self) {
        let w = &mut self.worker;
        let now_ms = w.clock.now_ms();
        if let Some(install) = &w.sync.install {
            for _ in 0..INSTALL_BUDGET {
                let Some(rec) = install.pop() else { break };
                w.pipeline.install(&rec, now_ms);
            }
        }
        if let Some(siblings) = &w.sync.siblings {
            for _ in 0..INSTALL_BUDGET {
                let Some(rec) = siblings.pop() else { break };
                w.pipeline.adopt(&rec, now_ms);
            }
        }
        let Some(out) = &mut self.writer else { return };
        let cap = w.pipeline.conn_capacity();
        let walk = &mut self.walk;
        let mut slots = 0;
        let refresh = w.sync.refresh_ms;
        if refresh > 0 {
            let mut start = *walk.pass_start.get_or_insert(now_ms);
            let elapsed = now_ms.saturating_sub(start);
            if walk.done >= cap && elapsed >= refresh {
                // The next pass. One that starts more than a period late starts now, rather
                // than racing to catch up.
                start = if elapsed >= 2 * refresh {
                    now_ms
                } else {
                    start + refresh
                };
                walk.pass_start = Some(start);
                walk.done = 0;
            }
            let elapsed = now_ms.saturating_sub(start).min(refresh);
            let due = (cap as u128 * u128::from(elapsed) / u128::from(refresh)) as usize;
            slots = due.saturating_sub(walk.done).min(WALK_SLOTS_PER_LOOP);
        }
        if walk.all_left > 0 {
            slots = slots.max(walk.all_left.min(WALK_ALL_SLOTS_PER_LOOP));
        }
        // A slot yields at most one record: walking no more slots than the ring has room for
        // loses none (this worker is the ring's only producer). A full ring holds the walk.
        slots = slots.min(out.room());
        if slots == 0 {
            return;
        }
        let counters: &CoreCounters = &self.counters;
        let mut emitted = 0;
        walk.at = w.pipeline.export(walk.at, slots, now_ms, |r| {
            if out.push(r) {
                emitted += 1;
            } else {
                CoreCounters::add(&counters.handoff_ring_full, 1);
            }
        });
        CoreCounters::add(&counters.handoff_emitted, emitted);
        walk.done += slots;
        walk.all_left = walk.all_left.saturating_sub(slots);
    }

    /// Fragments parked, waiting for their first fragment (issue 10).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Frees every parked fragment, counted as `fragment_flushed` (what [`Worker::run`] does
    /// once stopped). Returns how many.
    pub fn free_held(&mut self) -> usize {
        self.worker.pipeline.flush_held(&mut self.held)
    }

    /// Appends every live entry of the table to [`WorkerSync::dump`] (if set): what
    /// [`Worker::run`] does once stopped, for the flows file (issue 9: flows survive a
    /// restart). Allocates; not for the packet path.
    pub fn hand_back(&self) {
        let w = &self.worker;
        let Some(dump) = &w.sync.dump else { return };
        let now_ms = w.clock.now_ms();
        let mut records = Vec::new();
        w.pipeline
            .export(0, w.pipeline.conn_capacity(), now_ms, |r| records.push(r));
        match dump.lock() {
            Ok(mut d) => d.extend(records),
            Err(poisoned) => poisoned.into_inner().extend(records),
        }
    }
}

/// Queues a forwarded packet on its egress port's TX buffer.
#[inline]
fn forward<B>(tx: &mut [Burst<B>], out: u16, buf: B, counters: &CoreCounters) {
    match tx.get_mut(usize::from(out)) {
        // Cannot be full: TX buffers are flushed after every RX burst of at most BURST
        // packets. Counted rather than assumed.
        Some(tx) => {
            if tx.push(buf).is_err() {
                counters.drop(DropReason::TxFull);
            }
        }
        // A snapshot port this worker has no handle for.
        None => counters.drop(DropReason::WrongPort),
    }
}

/// The capture tap's state: the one relaxed load per burst (off without a tap).
#[inline]
fn armed(tap: &Option<Arc<CaptureTap>>) -> Armed {
    match tap {
        Some(t) => t.armed(),
        None => Armed::OFF,
    }
}

/// Copies a frame into the capture ring (only called while armed for it).
#[inline]
fn tap<B: PacketBuf>(
    tap: &Option<Arc<CaptureTap>>,
    queue: u16,
    dir: Direction,
    buf: &B,
    now_us: u64,
) {
    if let Some(t) = tap {
        t.push(
            usize::from(queue),
            dir,
            DropReason::Truncated,
            now_us,
            buf.data(),
        );
    }
}

/// Sends the parked fragments the pipeline releases (their first fragment arrived) and frees
/// those it drops (timed out); the pipeline counted each.
fn release_held<P: PacketPort, C: Clock>(
    w: &mut Worker<P, C>,
    held: &mut HeldFragments<P::Buf>,
    tx: &mut [Burst<P::Buf>],
    counters: &CoreCounters,
) {
    let now_ms = w.clock.now_ms();
    let ports = &w.ports;
    let queue = w.queue;
    let n = w.pipeline.release_held(held, now_ms, |buf, verdict| {
        let Verdict::Forward(out) = verdict else {
            return;
        };
        let Some(b) = tx.get_mut(usize::from(out)) else {
            counters.drop(DropReason::WrongPort);
            return;
        };
        // Up to max_held packets may come at once: more than a TX buffer holds.
        if b.is_full() {
            flush(&ports[usize::from(out)], queue, b, counters);
        }
        if b.push(buf).is_err() {
            counters.drop(DropReason::TxFull);
        }
    });
    if n > 0 {
        flush_all(ports, queue, tx, counters);
    }
}

/// Passes an ICMP error to the next worker's inbox ([`Relay`]); a full inbox (or no relay)
/// drops it, counted as an error about an unknown flow.
fn pass_on<B: PacketBuf>(
    relay: &Option<Relay<B>>,
    port: u16,
    hops: u16,
    buf: B,
    counters: &CoreCounters,
) {
    let Some(r) = relay else {
        counters.drop(DropReason::IcmpErrorUnknownFlow);
        return;
    };
    if let Err(back) = r.next.push(Relayed { port, hops, buf }) {
        counters.drop(DropReason::IcmpErrorUnknownFlow);
        drop(back);
    }
}

/// Puts a burst's hand-off records on the ring; what does not fit is counted, never waited for.
#[inline]
fn hand_off(out: &mut RecordWriter, records: &[FlowRecord], counters: &CoreCounters) {
    let mut emitted = 0;
    for r in records {
        if out.push(*r) {
            emitted += 1;
        } else {
            CoreCounters::add(&counters.handoff_ring_full, 1);
        }
    }
    CoreCounters::add(&counters.handoff_emitted, emitted);
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
