//! The per-core pipeline: classify → out_alias / select → encap (or refuse) over a burst, with this core's
//! state. ICMP errors to an alias take [`icmp_error::select`] instead of the selector's (no
//! state written) and are then encapsulated like their flow's packets.
//!
//! One [`Pipeline`] per worker core (DPDK lcore); nothing in it is shared. Each stage runs over
//! the whole burst before the next starts (DPDK l3fwd / VPP style), with per-packet metadata in
//! fixed arrays of [`BURST`] entries and a 32-bit mask of the packets still in flight. Nothing on
//! this path allocates, locks, logs or panics.

use std::sync::Arc;

use crate::buf::PacketBuf;
use crate::classify::{classify_with, ClassifyConfig, PacketMeta};
use crate::conntrack::Probe;
use crate::fragments::{
    FirstLookup, FragKind, FragTable, FragTarget, FragmentConfig, HeldFragments, RestLookup,
};
use crate::hash::FlowHashKey;
use crate::icmp_error;
use crate::refuse::{refuse, RefusalLimiter};
use crate::select::{Selection, Selector, Timeouts};
use crate::snapshot::{PortId, Snapshot};
use crate::verdict::{CoreCounters, DropReason, Verdict};
use crate::wire::checksum::ChecksumCapabilities;
use crate::BURST;

/// Per-core pipeline settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Connection-table entries per core, rounded up to a power of two (at least 8). Allocated
    /// once, 40 bytes each (see [`crate::conntrack`]). Default 65536 (2.5 MiB).
    pub conn_capacity: usize,
    /// Milliseconds an established TCP flow may be idle before its entry expires.
    /// Default 300 000 (5 minutes).
    pub tcp_idle_ms: u64,
    /// Milliseconds a TCP flow that has seen FIN or RST may be idle before its entry expires.
    /// Default 10 000.
    pub tcp_closing_ms: u64,
    /// Milliseconds a half-open TCP flow (the client's SYN seen, no other segment from it yet)
    /// may go without a retransmitted SYN before its entry expires. Half-open entries are also
    /// the first evicted from a full bucket, and never evict an established one (issue 9).
    /// Default 5 000: the client's ACK follows its SYN by one round trip, and Linux
    /// retransmits a SYN 1, 3 and 7 s after the first, each refreshing the entry (a later
    /// retransmission is selected afresh); a spoofed SYN then holds a slot for 5 s instead of
    /// the idle timeout.
    pub tcp_half_open_ms: u64,
    /// Milliseconds a client's `sticky` / `wildcard_sticky` affinity (SC2, SC3) outlives the
    /// last new connection or datagram that made or refreshed it. Default 300 000.
    pub sticky_timeout_ms: u64,
    /// Member ids the per-member counters cover (create them with
    /// [`PipelineConfig::new_counters`]); packets to larger ids are forwarded but not counted
    /// per member. Default 1024.
    pub max_members: usize,
    /// Answers (TCP RSTs and ICMP port unreachables) to traffic for in_noalias ports that one
    /// core may send per second, with a burst of the same number (a token bucket, like the
    /// kernel's `icmp_ratelimit`); refusals over the limit are dropped and counted as
    /// `in_noalias`. 0 never answers. Default 100.
    pub refusals_per_sec: u32,
    /// ICMP errors to an alias (CA7, [`crate::icmp_error`]) that one core forwards to members per
    /// second, with a burst of the same number (a token bucket); errors over the limit are
    /// dropped and counted as `icmp_error_rate_limited`. 0 forwards none. Default 1000.
    pub icmp_errors_per_sec: u32,
    /// Which checksums the pipeline verifies on receive (classify: the IPv4 header) and
    /// computes on transmit (encap's outer IPv4 header, refuse's IPv4/TCP/ICMP); the rest is
    /// the NIC's (offload). Default: all in software, except that a `cfg(fuzzing)` build
    /// verifies nothing on receive ([`ChecksumCapabilities::default`]).
    pub checksum: ChecksumCapabilities,
    /// The secret key of the flow hash that places flows in the connection table (issue 7:
    /// unkeyed, flows can be precomputed to evict chosen connections). Default
    /// [`FlowHashKey::FIXED`], for tests; aliasd sets [`FlowHashKey::random`] at every start.
    pub hash_key: FlowHashKey,
    /// Whether TCP flows that become established are recorded for hand-off to peer routers
    /// ([`Pipeline::handoffs`], issue 9). Default off.
    pub handoff: bool,
    /// Whether sticky and wildcard_sticky affinities written as established are recorded in
    /// [`Pipeline::handoffs`] even without `handoff` (issue 12: aliasd turns it on with more
    /// than one worker and copies them to the others, [`Pipeline::adopt`], so that a
    /// client's connections agree on a member whichever worker RSS gives them). Default off.
    pub share_affinities: bool,
    /// Whether an ICMP error about a TCP flow this core's table does not hold comes back as
    /// [`Verdict::ToWorker`] instead of going to the member a miss of the flow would get
    /// (issue 12: aliasd turns it on with more than one worker; the worker that receives it
    /// last turns it off for that packet, [`Pipeline::set_icmp_errors_to_other_workers`]).
    /// Default off.
    pub icmp_errors_to_other_workers: bool,
    /// The fragment table: IPv4 fragments follow their datagram's first one (issue 10,
    /// [`crate::fragments`]).
    pub fragments: FragmentConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            conn_capacity: 65536,
            tcp_idle_ms: 300_000,
            tcp_closing_ms: 10_000,
            tcp_half_open_ms: 5_000,
            sticky_timeout_ms: 300_000,
            max_members: 1024,
            refusals_per_sec: 100,
            icmp_errors_per_sec: crate::icmp_error::DEFAULT_PER_SEC,
            checksum: ChecksumCapabilities::default(),
            hash_key: FlowHashKey::FIXED,
            handoff: false,
            share_affinities: false,
            icmp_errors_to_other_workers: false,
            fragments: FragmentConfig::default(),
        }
    }
}

impl PipelineConfig {
    /// Counters sized for this configuration.
    pub fn new_counters(&self) -> CoreCounters {
        CoreCounters::new(self.max_members)
    }

    fn classify(&self) -> ClassifyConfig {
        ClassifyConfig {
            checksum: self.checksum,
            hash_key: self.hash_key,
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            tcp_idle_ms: self.tcp_idle_ms,
            tcp_closing_ms: self.tcp_closing_ms,
            tcp_half_open_ms: self.tcp_half_open_ms,
            sticky_ms: self.sticky_timeout_ms,
        }
    }
}

/// One core's packet pipeline. See the module docs.
pub struct Pipeline {
    snapshot: Arc<Snapshot>,
    counters: Arc<CoreCounters>,
    selector: Selector,
    refusals: RefusalLimiter,
    /// The ICMP-error rate limit (the same token bucket as refusals', its own budget).
    icmp_errors: RefusalLimiter,
    classify: ClassifyConfig,
    timeouts: Timeouts,
    frags: FragTable,
    meta: [PacketMeta; BURST],
    /// Per packet of the chunk: its connection-table probe (see `process_chunk`).
    probes: [Probe; BURST],
    /// Where the occupancy sweep is, and what it counted so far in this pass.
    sweep_at: usize,
    sweep_live: u64,
    /// See [`PipelineConfig::icmp_errors_to_other_workers`].
    icmp_to_others: bool,
}

impl core::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pipeline")
            .field("generation", &self.snapshot.generation)
            .field("conn_capacity", &self.selector.conns().capacity())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline for one core. Allocates the connection table.
    pub fn new(cfg: &PipelineConfig, snapshot: Arc<Snapshot>, counters: Arc<CoreCounters>) -> Self {
        let mut selector =
            Selector::with_hash_key(cfg.conn_capacity, cfg.timeouts(), &snapshot, cfg.hash_key);
        selector.set_handoff(cfg.handoff);
        selector.set_share_affinities(cfg.share_affinities);
        counters.conn_capacity.store(
            selector.conns().capacity() as u64,
            core::sync::atomic::Ordering::Relaxed,
        );
        Pipeline {
            snapshot,
            counters,
            selector,
            refusals: RefusalLimiter::new(cfg.refusals_per_sec),
            icmp_errors: RefusalLimiter::new(cfg.icmp_errors_per_sec),
            classify: cfg.classify(),
            timeouts: cfg.timeouts(),
            frags: FragTable::new(&cfg.fragments, cfg.hash_key),
            meta: [PacketMeta::default(); BURST],
            probes: [Probe::default(); BURST],
            sweep_at: 0,
            sweep_live: 0,
            icmp_to_others: cfg.icmp_errors_to_other_workers,
        }
    }

    /// Turns [`PipelineConfig::icmp_errors_to_other_workers`] on or off: the worker turns it
    /// off to run an ICMP error that every other worker has already passed on.
    pub fn set_icmp_errors_to_other_workers(&mut self, on: bool) {
        self.icmp_to_others = on;
    }

    /// Counts the live entries among the connection table's next `slots` slots; at the end of
    /// each pass over the whole table stores the total in [`CoreCounters::conn_live`] (issue
    /// 11: table occupancy in `cluamgr -s`). Expiry is lazy (an expired entry stays in its slot
    /// until reused), so occupancy cannot be kept by counting inserts; the worker loop calls
    /// this with a small budget instead, so a pass over a 65,536-slot table takes a few
    /// thousand loops and nothing is added per packet. The figure is a sweep's: entries made
    /// or expired during the pass may or may not be in it. The sweep also empties the dead
    /// slots it passes ([`ConnTable::sweep_in`](crate::conntrack::ConnTable::sweep_in)), which
    /// the table's wrapping 32-bit clock needs at least once every ~37 days per slot (see
    /// [`crate::conntrack`], "Time"): call it regularly.
    pub fn sweep_occupancy(&mut self, slots: usize, now_ms: u64) {
        let conns = self.selector.conns_mut();
        let cap = conns.capacity();
        let mut left = slots.min(cap);
        while left > 0 {
            let n = left.min(cap - self.sweep_at);
            self.sweep_live += conns.sweep_in(self.sweep_at, n, now_ms) as u64;
            self.sweep_at += n;
            left -= n;
            if self.sweep_at == cap {
                self.counters
                    .conn_live
                    .store(self.sweep_live, core::sync::atomic::Ordering::Relaxed);
                CoreCounters::add(&self.counters.conn_sweeps, 1);
                self.sweep_at = 0;
                self.sweep_live = 0;
            }
        }
    }

    /// The snapshot in use.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Switches to a new snapshot (between bursts; may allocate). The connection table is
    /// kept, so established flows keep their member while it stays up; round-robin cursors are
    /// kept unless the alias set changed.
    pub fn set_snapshot(&mut self, snapshot: Arc<Snapshot>) {
        self.selector.on_snapshot(&self.snapshot, &snapshot);
        self.snapshot = snapshot;
    }

    /// This core's counters.
    pub fn counters(&self) -> &Arc<CoreCounters> {
        &self.counters
    }

    /// The selection state (connection table, cursors), for inspection.
    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// The fragment table, for inspection.
    pub fn fragments(&self) -> &FragTable {
        &self.frags
    }

    /// Hold slots: the size of the [`HeldFragments`] the caller of
    /// [`process_burst`](Self::process_burst) parks [`Verdict::Hold`] buffers in.
    pub fn max_held(&self) -> usize {
        self.frags.max_held()
    }

    /// The parking place for this pipeline's held fragments (allocates; once, at start).
    pub fn new_held<B>(&self) -> HeldFragments<B> {
        HeldFragments::new(self.frags.max_held())
    }

    /// Hands back, with their final verdict, the held fragments whose datagram is resolved
    /// (their first fragment arrived: encapsulated for its member, or dropped like it) or whose
    /// time ran out (`fragment_timeout`), and counts them (`forwarded`, `frag_released`,
    /// `member_packets`, drops). `out` gets each buffer and verdict: [`Verdict::Forward`] (the
    /// buffer rewritten for that port) or [`Verdict::Drop`]. Call it after every
    /// [`process_burst`](Self::process_burst) (once its `Hold` buffers are parked) and now
    /// and then when idle; it returns at once when there is nothing to do. Returns how many
    /// were handed back.
    pub fn release_held<B: PacketBuf>(
        &mut self,
        held: &mut HeldFragments<B>,
        now_ms: u64,
        mut out: impl FnMut(B, Verdict),
    ) -> usize {
        if !self.frags.has_work(now_ms) {
            return 0;
        }
        self.frags.expire(now_ms);
        let snap: &Snapshot = &self.snapshot;
        let counters: &CoreCounters = &self.counters;
        let caps = &self.classify.checksum;
        let mut n = 0;
        while let Some((slot, meta, target)) = self.frags.take_ready() {
            let Some(mut buf) = held.take(slot) else {
                continue;
            };
            let v = match target {
                FragTarget::Member { .. } => encap_one(snap, &meta, &mut buf, caps, counters),
                FragTarget::Drop(r) => Verdict::Drop(r),
                FragTarget::Pending => Verdict::Drop(DropReason::FragmentTimeout),
            };
            match v {
                Verdict::Forward(_) => {
                    CoreCounters::add(&counters.forwarded, 1);
                    CoreCounters::add(&counters.frag_released, 1);
                }
                Verdict::Drop(r) => counters.drop(r),
                Verdict::Punt(_) | Verdict::Hold(_) | Verdict::ToWorker => {}
            }
            out(buf, v);
            n += 1;
        }
        n
    }

    /// Forgets every datagram of the fragment table and frees every held fragment, counted
    /// as `fragment_flushed` (the worker at stop). Returns how many were freed.
    pub fn flush_held<B>(&mut self, held: &mut HeldFragments<B>) -> usize {
        self.frags.clear();
        let n = held.clear();
        CoreCounters::add(
            &self.counters.drops[DropReason::FragmentFlushed as usize],
            n as u64,
        );
        n
    }

    /// The refusal rate limiter, for inspection.
    pub fn refusals(&self) -> &RefusalLimiter {
        &self.refusals
    }

    /// The hand-off records of the last [`process_burst`](Self::process_burst) (TCP flows that
    /// became established in this core's table, and sticky affinities written as established;
    /// empty unless [`PipelineConfig::handoff`], the affinities alone with
    /// [`PipelineConfig::share_affinities`]). At most
    /// [`HANDOFF_CAP`](crate::select::HANDOFF_CAP) records (two per packet of a full burst);
    /// the rest are counted ([`Selector::handoff_overflow`]).
    pub fn handoffs(&self) -> &[crate::handoff::FlowRecord] {
        self.selector.handoffs()
    }

    /// Number of connection-table slots (what a whole [`export`](Self::export) walk covers).
    pub fn conn_capacity(&self) -> usize {
        self.selector.conns().capacity()
    }

    /// Hands the live connection-table entries among `count` slots from `from_slot` on to
    /// `f` and returns the slot to continue from (see
    /// [`ConnTable::export`](crate::conntrack::ConnTable::export)): the worker's periodic
    /// hand-off walk, and the dump of the table at shutdown (issue 9).
    pub fn export(
        &self,
        from_slot: usize,
        count: usize,
        now_ms: u64,
        f: impl FnMut(crate::handoff::FlowRecord),
    ) -> usize {
        self.selector.conns().export(from_slot, count, now_ms, f)
    }

    /// Installs a flow handed over by a peer router, or restored from before a restart, and
    /// counts the outcome (see [`ConnTable::install`](crate::conntrack::ConnTable::install)
    /// for the rule). Its remaining time is capped at this pipeline's timeout for its state
    /// (a peer with longer timeouts cannot pin entries here for longer); sticky affinities
    /// (`src_port` 0) keep theirs, since their timeout is the policy's.
    pub fn install(
        &mut self,
        rec: &crate::handoff::FlowRecord,
        now_ms: u64,
    ) -> crate::conntrack::InstallOutcome {
        use crate::conntrack::{FlowState, InstallOutcome};
        let cap = match rec.state {
            FlowState::HalfOpen => self.timeouts.tcp_half_open_ms,
            FlowState::Closing => self.timeouts.tcp_closing_ms,
            FlowState::Established if rec.key.src_port == 0 => u64::from(u32::MAX),
            FlowState::Established => self.timeouts.tcp_idle_ms,
        };
        let rec = crate::handoff::FlowRecord {
            remaining_ms: u64::from(rec.remaining_ms).min(cap) as u32,
            ..*rec
        };
        let outcome = self.selector.conns_mut().install(&rec, now_ms);
        let c = &self.counters;
        CoreCounters::add(
            match outcome {
                InstallOutcome::Installed => &c.handoff_installed,
                InstallOutcome::Refreshed => &c.handoff_refreshed,
                InstallOutcome::Kept => &c.handoff_kept,
                InstallOutcome::Refused | InstallOutcome::Expired => &c.handoff_refused,
            },
            1,
        );
        outcome
    }

    /// Takes in an affinity another worker of this router wrote (issue 12; the control thread
    /// copies them, lb/src/daemon.rs) and counts the outcome: as [`install`](Self::install),
    /// except that of two affinities naming different members the later-expiring one wins
    /// (see [`ConnTable::adopt`](crate::conntrack::ConnTable::adopt)).
    pub fn adopt(
        &mut self,
        rec: &crate::handoff::FlowRecord,
        now_ms: u64,
    ) -> crate::conntrack::InstallOutcome {
        use crate::conntrack::InstallOutcome;
        let outcome = self.selector.conns_mut().adopt(rec, now_ms);
        let c = &self.counters;
        CoreCounters::add(
            match outcome {
                InstallOutcome::Installed | InstallOutcome::Refreshed => &c.affinity_adopted,
                InstallOutcome::Kept => &c.affinity_kept,
                InstallOutcome::Refused | InstallOutcome::Expired => &c.affinity_refused,
            },
            1,
        );
        outcome
    }

    /// The selection state, writable (e.g. to flush the connection table).
    pub fn selector_mut(&mut self) -> &mut Selector {
        &mut self.selector
    }

    /// Runs a burst received on `rx_port` at time `now_ms` through the pipeline. `verdicts[i]`
    /// receives packet `i`'s outcome; on [`Verdict::Forward`]`(p)` the packet has been rewritten
    /// in place for port `p`; punted packets are unchanged. A [`Verdict::Hold`]`(slot)` packet
    /// (a fragment ahead of its first) must be parked, unchanged, at that slot of the
    /// [`HeldFragments`] given to [`release_held`](Self::release_held), which the caller then
    /// calls. Bursts should hold at most
    /// [`BURST`] packets (longer ones are processed in chunks); only the first
    /// `min(pkts.len(), verdicts.len())` packets are processed.
    pub fn process_burst<B: PacketBuf>(
        &mut self,
        rx_port: PortId,
        now_ms: u64,
        pkts: &mut [B],
        verdicts: &mut [Verdict],
    ) {
        let n = pkts.len().min(verdicts.len());
        self.selector.clear_handoffs();
        for (p, v) in pkts[..n]
            .chunks_mut(BURST)
            .zip(verdicts[..n].chunks_mut(BURST))
        {
            self.process_chunk(rx_port, now_ms, p, v);
        }
    }

    fn process_chunk<B: PacketBuf>(
        &mut self,
        rx_port: PortId,
        now_ms: u64,
        pkts: &mut [B],
        verdicts: &mut [Verdict],
    ) {
        let n = pkts.len();
        let snap: &Snapshot = &self.snapshot;
        let counters: &CoreCounters = &self.counters;
        let meta = &mut self.meta;
        let probes = &mut self.probes;
        let rx_cfg = &self.classify;
        let caps = &self.classify.checksum;
        let mut live: u32 = 0;
        // Packets select refused (to in_noalias ports), for stage 4.
        let mut refused: u32 = 0;
        // Later fragments (no ports): the fragment table, not select, places them.
        let mut rest: u32 = 0;

        // Stage 1: classify, every packet's headers on their way into the cache first. Each
        // TCP packet's two connection-table bucket lines are prefetched as soon as its hash is
        // known (its probe: the bucket indexes kept for the look-up), so that their misses
        // overlap the classification of the rest of the burst.
        for p in pkts.iter() {
            p.prefetch();
        }
        let conns = self.selector.conns();
        for i in 0..n {
            probes[i] = Probe::default();
            match classify_with(rx_cfg, snap, rx_port, pkts[i].data()) {
                Ok(m) => {
                    if m.frag.kind == FragKind::Rest {
                        rest |= 1 << i;
                    } else if m.key.proto == crate::wire::ipv4::protocol::TCP {
                        probes[i] = conns.probe(m.hash);
                    }
                    meta[i] = m;
                    live |= 1 << i;
                }
                Err(v) => verdicts[i] = v,
            }
        }

        // Stage 2: select. The connection-table look-ups of the whole burst go in three steps
        // (DPDK rte_hash_lookup_bulk style) so that their cache misses overlap: the bucket
        // lines (prefetched in stage 1), then every packet's signatures scanned (the masks
        // kept in its probe) and the matching entry lines prefetched, then each packet
        // selected, its look-up confirming the probe's matches.
        self.selector
            .scan_probes(snap, &meta[..], &mut probes[..], live & !rest, now_ms);
        let mut bits = live & !rest;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // A first fragment: its datagram's entry first (a duplicate follows the original).
            let mut entry = None;
            if meta[i].frag.kind == FragKind::First {
                match self.frags.first(&meta[i], now_ms) {
                    FirstLookup::Select(e) => entry = Some(e),
                    FirstLookup::Known(FragTarget::Member { member, hash }) => {
                        meta[i].member = member;
                        meta[i].hash = hash;
                        continue;
                    }
                    FirstLookup::Known(FragTarget::Drop(reason)) => {
                        verdicts[i] = Verdict::Drop(reason);
                        live &= !(1 << i);
                        continue;
                    }
                    FirstLookup::Known(FragTarget::Pending) | FirstLookup::Full => {
                        verdicts[i] = Verdict::Drop(DropReason::FragmentTableFull);
                        live &= !(1 << i);
                        continue;
                    }
                }
            }
            // Replies to a member's out_alias connection (CA9) belong to that member alone;
            // the connection table never sees them (nor do ICMP errors about them, which
            // quote the same reversed flow). A first fragment's datagram follows it.
            if let Some(member) = crate::out_alias::steer(snap, &meta[i]) {
                meta[i].member = member;
                CoreCounters::add(&counters.out_alias_steered, 1);
                if let Some(e) = entry {
                    let target = FragTarget::Member {
                        member,
                        hash: meta[i].hash,
                    };
                    self.frags.resolve(e, target, &meta[i], now_ms);
                }
                continue;
            }
            if meta[i].icmp_error
                && self.icmp_to_others
                && entry.is_none()
                && !icmp_error::held_here(&self.selector, snap, &meta[i], now_ms)
            {
                verdicts[i] = Verdict::ToWorker;
                live &= !(1 << i);
                continue;
            }
            let selection = if meta[i].icmp_error {
                icmp_error::select(
                    &self.selector,
                    &mut self.icmp_errors,
                    snap,
                    &meta[i],
                    now_ms,
                )
            } else {
                self.selector
                    .select_probed(snap, &meta[i], &probes[i], now_ms, counters)
            };
            let target = match selection {
                Selection::Member { member, new_flow } => {
                    meta[i].member = member;
                    if new_flow {
                        if let Some(c) = counters.member_flows.get(member.0 as usize) {
                            CoreCounters::add(c, 1);
                        }
                        if let Some(c) = counters.alias_flows.get(meta[i].alias.0 as usize) {
                            CoreCounters::add(c, 1);
                        }
                    }
                    FragTarget::Member {
                        member,
                        hash: meta[i].hash,
                    }
                }
                Selection::Refuse => {
                    refused |= 1 << i;
                    live &= !(1 << i);
                    FragTarget::Drop(DropReason::InNoalias)
                }
                Selection::Drop(reason) => {
                    verdicts[i] = Verdict::Drop(reason);
                    live &= !(1 << i);
                    FragTarget::Drop(reason)
                }
            };
            if let Some(e) = entry {
                self.frags.resolve(e, target, &meta[i], now_ms);
            }
        }

        // Stage 2b: later fragments follow their datagram's first (after the burst's first
        // fragments, so that order within a burst does not matter), or wait for it.
        let mut bits = rest;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            match self.frags.rest(&meta[i], now_ms) {
                RestLookup::Go(FragTarget::Member { member, hash }) => {
                    meta[i].member = member;
                    meta[i].hash = hash;
                }
                RestLookup::Go(FragTarget::Drop(reason)) | RestLookup::Drop(reason) => {
                    verdicts[i] = Verdict::Drop(reason);
                    live &= !(1 << i);
                }
                RestLookup::Go(FragTarget::Pending) => {
                    verdicts[i] = Verdict::Drop(DropReason::FragmentHoldFull);
                    live &= !(1 << i);
                }
                RestLookup::Hold(slot) => {
                    verdicts[i] = Verdict::Hold(slot);
                    live &= !(1 << i);
                    CoreCounters::add(&counters.frag_held, 1);
                }
            }
        }

        // Stage 3: encap.
        let mut bits = live;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            verdicts[i] = encap_one(snap, &meta[i], &mut pkts[i], caps, counters);
        }

        // Stage 4: refuse (in_noalias), answering on the receiving port. Classify only passes
        // packets from ports of the snapshot, so the port lookup cannot fail.
        let mut bits = refused;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let Some(port) = snap.ports.get(rx_port as usize) else {
                verdicts[i] = Verdict::Drop(DropReason::WrongPort);
                continue;
            };
            let refused = refuse(
                &mut pkts[i],
                &meta[i],
                port,
                &mut self.refusals,
                now_ms,
                caps,
            );
            verdicts[i] = match refused {
                Ok(()) => {
                    CoreCounters::add(&counters.refusals_sent, 1);
                    Verdict::Forward(rx_port)
                }
                Err(reason) => Verdict::Drop(reason),
            };
        }

        // Counters.
        CoreCounters::add(&counters.rx, n as u64);
        let mut forwarded = 0;
        for v in verdicts.iter() {
            match *v {
                Verdict::Forward(_) => forwarded += 1,
                Verdict::Drop(r) => counters.drop(r),
                Verdict::Punt(r) => CoreCounters::add(&counters.punts[r as usize], 1),
                Verdict::ToWorker => CoreCounters::add(&counters.icmp_errors_handed, 1),
                // Counted when released.
                Verdict::Hold(_) => {}
            }
        }
        CoreCounters::add(&counters.forwarded, forwarded);
    }
}

/// Encapsulates a selected packet for its member (`meta.member`) and counts it per member.
#[inline(always)]
fn encap_one<B: PacketBuf>(
    snap: &Snapshot,
    m: &PacketMeta,
    pkt: &mut B,
    caps: &ChecksumCapabilities,
    counters: &CoreCounters,
) -> Verdict {
    // The member's template holds its port's part too (a held fragment's member may have left
    // with a snapshot swap: its template drops with `NoMember`).
    match snap.encap_template(m.member).apply(pkt, m, caps) {
        Ok(p) => {
            if let Some(c) = counters.member_packets.get(m.member.0 as usize) {
                CoreCounters::add(c, 1);
            }
            if let Some(c) = counters.alias_packets.get(m.alias.0 as usize) {
                CoreCounters::add(c, 1);
            }
            if m.icmp_error {
                CoreCounters::add(&counters.icmp_errors_forwarded, 1);
            }
            Verdict::Forward(p)
        }
        Err(reason) => Verdict::Drop(reason),
    }
}
