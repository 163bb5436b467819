//! Select: which member gets a classified packet (CA7, CA8, CA9; seed 000 §6.6.5–6.9).
//!
//! The service mode comes from [`Snapshot::service_mode`] for the packet's protocol and
//! destination port:
//!
//! - **in_noalias**: refused ([`Selection::Refuse`]): the worker has [`crate::refuse`] answer
//!   it like a closed port (TCP RST, ICMP port unreachable). A TCP RST is never answered:
//!   [`DropReason::InNoalias`]. The connection table is not touched.
//! - **TCP** (in_single and in_multi): a connection-table hit whose member still exists and is
//!   up keeps that member ("existing TCP/IP connection: forward to the owning member") and
//!   refreshes the entry's expiry (the idle timeout, or the closing timeout once FIN or RST has
//!   been seen on the flow). Otherwise a member is picked from the alias's schedule for the
//!   packet's (proto, port) ([`Alias::schedule`](crate::snapshot::Alias::schedule): only
//!   members that are up, listening on the port (CA7) or not reporting listens, and in the
//!   highest selp tier among those) — in_multi: the schedule's weighted round robin at its
//!   cursor, which then advances (each member gets `selw` consecutive connections per turn);
//!   in_single: the schedule's `single_active` member — and the flow is inserted into the
//!   table. A client SYN's entry is **half-open** (short `tcp_half_open_ms`; evicted first,
//!   and never evicting an established or closing entry) until the client's next non-SYN
//!   segment makes it established (issue 9); a SYN that finds no slot it may take is still
//!   forwarded, without an entry, and counted (`CoreCounters::syn_without_slot`), to the
//!   member the **consistent hash** gives (below), which its ACK will take too. A **non-SYN
//!   miss** belongs to a flow begun elsewhere (before a router restart, on another router
//!   ECMP moved it from, or evicted): it never goes through the round robin but through the
//!   schedule's weighted Maglev table (`crate::maglev`, selw as weights) of its flow under the
//!   fixed key [`FlowHashKey::FIXED`], so every router and every start computes the same
//!   member; it is then inserted as established. Flows whose SYN took the round robin can still
//!   land elsewhere after a miss: the `weighted` policy and flow hand-off between routers
//!   (issue 9) close that.
//! - **UDP**: in_multi is per-datagram weighted round robin over the port's schedule with no
//!   table entry (seed 002: "each packet might go to a different alias member"); in_single
//!   goes to the port's `single_active`.
//!
//! **Policies** (SC1–SC3, seed 004; issue 9). An in_multi port has one
//! ([`Snapshot::service`]; clua_services `wrr`, `weighted`, `sticky`, `wildcard_sticky`), which
//! decides the member of a *new* flow — a client SYN that misses the table, or a UDP datagram.
//! Established flows keep their member whatever the policy (the table), so weights may change at
//! any time (SC1).
//!
//! - `wrr` (the default): the round robin above. It costs nothing new: one predicted branch
//!   (`plain`) per packet.
//! - `weighted`: the port schedule's weighted Maglev table of the flow under the fixed key, so
//!   every router and every restart computes the same member; a non-SYN miss gets the same
//!   member as its SYN did. UDP: per datagram, so one 5-tuple stays on one member.
//! - `sticky` (SC2): a client address sticks to one member for the port while that member is
//!   up and in the port's eligible tier. The **affinity** is a connection-table entry under the
//!   synthetic key [`sticky_key`] (source port 0) that names the member and expires
//!   [`Timeouts::sticky_ms`] after the client's last connection. Without a valid affinity the
//!   member is the Maglev table's entry for the client *address*
//!   ([`MaglevTable::lookup_client`](crate::maglev::MaglevTable::lookup_client)): the first
//!   choice follows the weights, and every core and router makes the same one, so an affinity
//!   made on one core is usually what the others would choose too.
//! - `wildcard_sticky` (SC3): the same with the key [`wildcard_key`] (protocol 0, ports 0),
//!   made by connections to the wildcard_sticky port; while some port has this policy
//!   ([`Snapshot::wildcard_sticky`]; otherwise nobody pays for the look-up) every new flow to
//!   ANY port of the alias but in_noalias ones — ports that are in_single by default, such as
//!   passive FTP data ports, included — goes to the client's wildcard member while that member
//!   is up and joined to the alias (for the wildcard_sticky port itself: in its eligible tier).
//!   Completed connections to other ports that went to that member refresh it.
//!
//! An affinity whose member is down, gone from the alias or out of the port's tier is ignored,
//! and the next connection's fresh choice replaces it; a member leaving or rejoining changes no
//! other member's affinities, and a weight change none (SC1: sticky clients move only when their
//! member goes).
//!
//! **SYN floods.** An affinity is used at SYN time but written (created, moved or refreshed) only
//! when the connection's handshake completes (the half-open → established transition above):
//! spoofed SYNs never get that far, so a flood creates no affinity and cannot evict established
//! flows through them. A non-SYN miss (a flow begun elsewhere) uses but does not write one. UDP
//! has no handshake: a client's first datagram writes its affinity as *half-open* (it never
//! evicts an established entry and is evicted first, like a SYN's), and its next datagram to the
//! port promotes it to established; each datagram refreshes it. Established affinities are
//! handed off like flows ([`Selector::handoffs`]).
//!
//! **A policy change** (`cluamgr -f` after editing clua_services) takes effect with the next
//! snapshot for new flows; established flows keep their member. Affinities of a port whose
//! policy is no longer sticky are no longer used or refreshed and expire `sticky_ms` after they
//! were last refreshed; a port changed back to sticky before then finds them again.
//!
//! No member (empty schedule, no active member) → [`DropReason::NoMember`].
//!
//! A table hit is honoured while the member exists in the snapshot and is up; membership of
//! the alias and listening on the port are not re-checked per packet, so a member that leaves
//! an alias or stops listening but stays up keeps its established flows until they go idle
//! (SC4-style graceful drain).
//!
//! Round-robin cursors are per core and per schedule (one per alias for its default schedule,
//! one per reported port schedule); the schedules are in the snapshot, so every core gives the
//! same proportions. They survive snapshot swaps that keep the alias set (a member going up or
//! down only changes the schedules; port-schedule cursors also need the same reported ports)
//! and are reset when aliases are added, removed or renumbered.

use crate::classify::{PacketMeta, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::conntrack::{ConnTable, FlowState, InsertOutcome, Probe};
use crate::handoff::FlowRecord;
use crate::hash::{FlowHashKey, FlowKey};
use crate::snapshot::{MemberId, Policy, ServiceMode, Snapshot};
use crate::verdict::{CoreCounters, DropReason};
use crate::wire::ipv4::protocol;

/// Connection-table timeouts, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// An established TCP flow with no packets for this long is forgotten.
    pub tcp_idle_ms: u64,
    /// A TCP flow that has seen FIN or RST is forgotten after this long without packets.
    pub tcp_closing_ms: u64,
    /// A half-open TCP flow (the client's SYN seen, nothing else from it yet) is forgotten
    /// after this long without a retransmitted SYN.
    pub tcp_half_open_ms: u64,
    /// A client's sticky or wildcard_sticky affinity (SC2, SC3) is forgotten this long after
    /// the last connection or datagram that made or refreshed it.
    pub sticky_ms: u64,
}

impl Timeouts {
    #[inline(always)]
    fn of(&self, state: FlowState) -> u64 {
        match state {
            FlowState::HalfOpen => self.tcp_half_open_ms,
            FlowState::Established => self.tcp_idle_ms,
            FlowState::Closing => self.tcp_closing_ms,
        }
    }
}

/// How many hand-off records one burst may leave (see [`Selector::handoffs`]): a packet may
/// record its flow and its client's affinity.
pub const HANDOFF_CAP: usize = 2 * crate::BURST;

/// The connection-table key of a client's `sticky` affinity for one port of an alias (SC2):
/// the flow's protocol, client address, alias and port, source port 0 (which no real packet
/// has: classify drops it, [`DropReason::SourcePortZero`]).
#[inline(always)]
pub fn sticky_key(flow: &FlowKey) -> FlowKey {
    FlowKey {
        src_port: 0,
        ..*flow
    }
}

/// The connection-table key of a client's `wildcard_sticky` affinity for a whole alias (SC3):
/// protocol 0 and both ports 0.
#[inline(always)]
pub fn wildcard_key(flow: &FlowKey) -> FlowKey {
    FlowKey {
        src: flow.src,
        dst: flow.dst,
        src_port: 0,
        dst_port: 0,
        proto: 0,
    }
}

/// What a policy decides for a flow before the round robin (see `Selector::policy_choice`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolicyChoice {
    /// This member (none: in_single without an active member, or an unknown alias).
    Decided(Option<MemberId>),
    /// No member from the policy (plain wrr, or an empty Maglev table): the round robin's.
    RoundRobin,
}

/// The outcome of selecting one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// The packet goes to this member. `new_flow` is true when the member was chosen now
    /// rather than found in the connection table.
    Member { member: MemberId, new_flow: bool },
    /// The packet is addressed to an in_noalias port: answer it as a closed port would
    /// (see [`crate::refuse`]).
    Refuse,
    /// The packet is dropped.
    Drop(DropReason),
}

/// Per-core selection state: the connection table and the per-alias round-robin cursors.
#[derive(Debug)]
pub struct Selector {
    conns: ConnTable,
    cursors: Vec<u32>,
    timeouts: Timeouts,
    /// Whether TCP entries that become established are recorded for hand-off to peer routers
    /// (issue 9; off: nothing is recorded, at no cost).
    handoff: bool,
    /// Whether sticky and wildcard_sticky affinities written as established are recorded,
    /// with or without `handoff` (issue 12: with several workers the control thread copies
    /// them to the other workers, [`crate::Pipeline::adopt`]). Off: none are, at no cost.
    share_affinities: bool,
    /// This burst's hand-off records (see [`Selector::handoffs`]); fixed, never grows.
    handoffs: [FlowRecord; HANDOFF_CAP],
    /// How many of `handoffs` are in use.
    handoff_len: usize,
    /// Records that did not fit (more than [`HANDOFF_CAP`] since the last clear).
    handoff_overflow: u64,
}

impl Selector {
    /// A selector with a table of `conn_capacity` entries (rounded up, see [`ConnTable::new`])
    /// and cursors for `snapshot`'s aliases.
    pub fn new(conn_capacity: usize, timeouts: Timeouts, snapshot: &Snapshot) -> Self {
        Self::with_hash_key(conn_capacity, timeouts, snapshot, FlowHashKey::FIXED)
    }

    /// [`new`](Self::new) with the connection table keyed by `key` (see
    /// [`ConnTable::with_key`]); `PacketMeta::hash` must be computed with the same key.
    pub fn with_hash_key(
        conn_capacity: usize,
        timeouts: Timeouts,
        snapshot: &Snapshot,
        key: FlowHashKey,
    ) -> Self {
        Selector {
            conns: ConnTable::with_key(conn_capacity, key),
            cursors: vec![0; snapshot.cursor_count()],
            timeouts,
            handoff: false,
            share_affinities: false,
            handoffs: [FlowRecord::default(); HANDOFF_CAP],
            handoff_len: 0,
            handoff_overflow: 0,
        }
    }

    /// Turns recording of hand-off records on or off (see [`Selector::handoffs`]).
    pub fn set_handoff(&mut self, on: bool) {
        self.handoff = on;
    }

    /// Turns recording of affinities on or off, whatever [`set_handoff`](Self::set_handoff)
    /// says (see [`Selector::handoffs`]).
    pub fn set_share_affinities(&mut self, on: bool) {
        self.share_affinities = on;
    }

    /// The TCP entries that became established since the last [`clear_handoffs`]
    /// (Self::clear_handoffs): a half-open entry's first non-SYN client segment, or a non-SYN
    /// miss inserted as established; and the sticky affinities (synthetic keys, see
    /// [`sticky_key`], [`wildcard_key`]) written or promoted as established. At most
    /// [`HANDOFF_CAP`] (a packet may complete a flow and its affinity); the rest are counted in
    /// [`handoff_overflow`](Self::handoff_overflow). Empty unless [`set_handoff`]
    /// (Self::set_handoff) turned recording on; with [`set_share_affinities`]
    /// (Self::set_share_affinities) alone, the affinities only.
    pub fn handoffs(&self) -> &[FlowRecord] {
        &self.handoffs[..self.handoff_len]
    }

    /// Forgets this burst's hand-off records.
    pub fn clear_handoffs(&mut self) {
        self.handoff_len = 0;
    }

    /// Hand-off records that did not fit in a burst's array, since creation.
    pub fn handoff_overflow(&self) -> u64 {
        self.handoff_overflow
    }

    #[inline]
    fn record_handoff(&mut self, rec: FlowRecord) {
        match self.handoffs.get_mut(self.handoff_len) {
            Some(slot) => {
                *slot = rec;
                self.handoff_len += 1;
            }
            None => self.handoff_overflow += 1,
        }
    }

    /// The connection table.
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// The connection table, writable (tests, flushing).
    pub fn conns_mut(&mut self) -> &mut ConnTable {
        &mut self.conns
    }

    /// The round-robin cursors (indexes into their schedules): alias `i`'s default schedule
    /// uses `cursors()[i]`, its port schedules those after the aliases' (see
    /// [`Snapshot::cursor_count`]).
    pub fn cursors(&self) -> &[u32] {
        &self.cursors
    }

    /// Adapts to a new snapshot (between bursts; may allocate). Keeps the connection table.
    /// The aliases' default cursors are kept when the aliases are the same (name and address,
    /// in order), and the port-schedule cursors when, in addition, every alias has schedules
    /// for the same (proto, port) pairs; the others are reset.
    pub fn on_snapshot(&mut self, old: &Snapshot, new: &Snapshot) {
        let same = old.aliases.len() == new.aliases.len()
            && old
                .aliases
                .iter()
                .zip(&new.aliases)
                .all(|(a, b)| a.addr == b.addr && a.name == b.name);
        let same_ports = same
            && old.aliases.iter().zip(&new.aliases).all(|(a, b)| {
                a.port_schedules.len() == b.port_schedules.len()
                    && a.port_schedules
                        .iter()
                        .zip(b.port_schedules.iter())
                        .all(|(x, y)| (x.proto, x.port) == (y.proto, y.port))
            });
        if !same {
            self.cursors.clear();
        } else if !same_ports {
            self.cursors.truncate(new.aliases.len());
        }
        self.cursors.resize(new.cursor_count(), 0);
    }

    /// The second step of a burst's look-ups, after the pipeline probed the buckets of the
    /// TCP packets in `live` ([`ConnTable::probe`], while classifying; `probes[i]` is packet
    /// `i`'s): reads their bucket lines (arriving by now), records the match masks and starts
    /// loading the entry line of each match. See [`ConnTable::scan_probe`]. A client's SYN to
    /// a sticky port, or to any port while a wildcard_sticky port exists, will also look up
    /// its client's affinity (`policy_choice`): those buckets are prefetched here too, so that
    /// the SYN path does not wait on one more miss (issue 12, new flows per second).
    #[inline]
    pub fn scan_probes(
        &self,
        snap: &Snapshot,
        meta: &[PacketMeta],
        probes: &mut [Probe],
        mut live: u32,
        now_ms: u64,
    ) {
        while live != 0 {
            let i = live.trailing_zeros() as usize;
            live &= live - 1;
            if let (Some(m), Some(p)) = (meta.get(i), probes.get_mut(i)) {
                if m.key.proto == protocol::TCP {
                    self.conns.scan_probe(p, now_ms);
                    if m.tcp_flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) == TCP_SYN {
                        self.prefetch_affinity(snap, &m.key);
                    }
                }
            }
        }
    }

    /// Starts loading the buckets of the affinity a new flow `key` will look up, if any.
    #[inline]
    fn prefetch_affinity(&self, snap: &Snapshot, key: &FlowKey) {
        if snap.wildcard_sticky() {
            let w = wildcard_key(key);
            let _ = self.conns.probe(self.conns.hash(&w));
        }
        if snap.service(key.proto, key.dst_port).1 == Policy::Sticky {
            let k = sticky_key(key);
            let _ = self.conns.probe(self.conns.hash(&k));
        }
    }

    /// The member for new traffic to `(proto, port)` of an alias: for in_multi the next one of
    /// the port's schedule (advancing its cursor), else the port's active member.
    #[inline]
    fn pick(
        &mut self,
        snap: &Snapshot,
        alias: usize,
        mode: ServiceMode,
        proto: u8,
        port: u16,
    ) -> Option<MemberId> {
        let s = snap.aliases.get(alias)?.schedule(proto, port);
        if mode != ServiceMode::InMulti {
            return s.single_active;
        }
        let schedule = s.multi;
        let cursor = self.cursors.get_mut(s.cursor)?;
        let len = schedule.len() as u32;
        if len == 0 {
            return None;
        }
        // The schedule may have shrunk since the cursor last moved.
        let idx = if *cursor < len {
            *cursor
        } else {
            *cursor % len
        };
        *cursor = if idx + 1 == len { 0 } else { idx + 1 };
        Some(schedule[idx as usize])
    }

    /// The member for a new flow that is not plain `wrr` (a policy, or a snapshot with a
    /// wildcard_sticky port), or for a TCP flow that must not go through the round robin
    /// (`stateless`: a non-SYN miss, a SYN without a table slot; issue 9):
    ///
    /// 1. with a wildcard_sticky port in the snapshot, the client's wildcard affinity, if its
    ///    member is up and still joined to the alias (for the wildcard_sticky port itself: in
    ///    the port's eligible tier);
    /// 2. `sticky`: the client's affinity for the port, if its member is up and in the port's
    ///    eligible tier (the schedule's Maglev table);
    /// 3. the policy's choice: `weighted` the schedule's Maglev table of the flow under the
    ///    fixed key; `sticky`, `wildcard_sticky` that of the client address
    ///    ([`MaglevTable::lookup_client`](crate::maglev::MaglevTable::lookup_client)); `wrr` the
    ///    round robin, or when `stateless` the Maglev table of the flow; in_single the active
    ///    member. An empty Maglev table (a tier too large for it) falls back to the round robin.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)] // the packet path passes what it has already computed
    fn pick_policy(
        &mut self,
        snap: &Snapshot,
        meta: &PacketMeta,
        alias: usize,
        mode: ServiceMode,
        policy: Policy,
        now_ms: u64,
        stateless: bool,
    ) -> Option<MemberId> {
        match self.policy_choice(snap, meta, alias, mode, policy, now_ms, stateless) {
            PolicyChoice::Decided(m) => m,
            PolicyChoice::RoundRobin => {
                self.pick(snap, alias, mode, meta.key.proto, meta.key.dst_port)
            }
        }
    }

    /// Steps 1–3 of [`pick_policy`](Self::pick_policy) without the round robin, read-only:
    /// nothing in the selector changes (ICMP errors, [`crate::icmp_error::owner`], ask it
    /// what a miss of their flow would get).
    #[inline]
    #[allow(clippy::too_many_arguments)] // the packet path passes what it has already computed
    pub(crate) fn policy_choice(
        &self,
        snap: &Snapshot,
        meta: &PacketMeta,
        alias: usize,
        mode: ServiceMode,
        policy: Policy,
        now_ms: u64,
        stateless: bool,
    ) -> PolicyChoice {
        let key = &meta.key;
        let Some(a) = snap.aliases.get(alias) else {
            return PolicyChoice::Decided(None);
        };
        let s = a.schedule(key.proto, key.dst_port);
        let up = |m: MemberId| snap.member(m).is_some_and(|m| m.up);
        if snap.wildcard_sticky() {
            let w = wildcard_key(key);
            if let Some(slot) = self.conns.find(&w, self.conns.hash(&w), now_ms) {
                let holds = up(slot.member)
                    && if policy == Policy::WildcardSticky {
                        s.maglev.contains(slot.member)
                    } else {
                        a.members.iter().any(|am| am.member == slot.member)
                    };
                if holds {
                    return PolicyChoice::Decided(Some(slot.member));
                }
            }
        }
        if mode != ServiceMode::InMulti {
            return PolicyChoice::Decided(s.single_active);
        }
        let chosen = match policy {
            Policy::Wrr if !stateless => None,
            Policy::Wrr | Policy::Weighted => s.maglev.lookup_flow(key, &FlowHashKey::FIXED),
            Policy::Sticky => {
                let k = sticky_key(key);
                match self.conns.find(&k, self.conns.hash(&k), now_ms) {
                    Some(slot) if up(slot.member) && s.maglev.contains(slot.member) => {
                        Some(slot.member)
                    }
                    _ => s.maglev.lookup_client(key.src, key.dst),
                }
            }
            Policy::WildcardSticky => s.maglev.lookup_client(key.src, key.dst),
        };
        match chosen {
            Some(m) => PolicyChoice::Decided(Some(m)),
            None => PolicyChoice::RoundRobin,
        }
    }

    /// Writes or refreshes a client's affinity `akey` to `member` (its sticky timeout restarts).
    /// An entry already naming `member` is refreshed as established; otherwise (none yet, or
    /// one naming a member that no longer holds it) a new entry in `fresh` state replaces it:
    /// established for a TCP connection whose handshake completed, half-open for a UDP
    /// datagram (see the module docs: SYN and UDP floods). Affinities written or promoted as
    /// established are handed off like flows.
    #[inline(never)]
    fn remember(&mut self, akey: &FlowKey, member: MemberId, now_ms: u64, fresh: FlowState) {
        let hash = self.conns.hash(akey);
        let timeout = self.timeouts.sticky_ms;
        let written = match self.conns.find(akey, hash, now_ms) {
            Some(slot) if slot.member == member => {
                self.conns
                    .refresh_as(slot, now_ms, timeout, FlowState::Established);
                slot.half_open
            }
            _ => {
                self.conns
                    .insert_hashed(akey, hash, member, now_ms, timeout, fresh, 0)
                    .is_some()
                    && fresh == FlowState::Established
            }
        };
        if (self.handoff || self.share_affinities) && written {
            self.record_handoff(FlowRecord {
                key: *akey,
                member,
                state: FlowState::Established,
                isn: 0,
                remaining_ms: timeout.min(u32::MAX as u64) as u32,
            });
        }
    }

    /// After a TCP connection's handshake completed on `member`: a sticky or wildcard_sticky
    /// port makes (or refreshes) its client's affinity; with a wildcard_sticky port in the
    /// snapshot, a connection to any other port that went to the client's wildcard member
    /// refreshes that affinity (passive FTP data connections keep it alive).
    #[inline(never)]
    fn completed(
        &mut self,
        snap: &Snapshot,
        key: &FlowKey,
        policy: Policy,
        member: MemberId,
        now_ms: u64,
    ) {
        match policy {
            Policy::Sticky => {
                self.remember(&sticky_key(key), member, now_ms, FlowState::Established)
            }
            Policy::WildcardSticky => {
                self.remember(&wildcard_key(key), member, now_ms, FlowState::Established)
            }
            _ if snap.wildcard_sticky() => {
                let w = wildcard_key(key);
                if let Some(slot) = self.conns.find(&w, self.conns.hash(&w), now_ms) {
                    // A completed handshake is a real client: a half-open (UDP-made)
                    // affinity becomes a full one.
                    if slot.member == member {
                        self.conns.refresh_as(
                            slot,
                            now_ms,
                            self.timeouts.sticky_ms,
                            FlowState::Established,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Selects a member for one classified TCP or UDP packet and updates the table.
    #[inline]
    pub fn select(
        &mut self,
        snap: &Snapshot,
        meta: &PacketMeta,
        now_ms: u64,
        counters: &CoreCounters,
    ) -> Selection {
        self.select_probed(snap, meta, &Probe::default(), now_ms, counters)
    }

    /// [`select`](Self::select) with the burst staging's [`Probe`] of `meta`'s key (see
    /// [`scan_probes`](Self::scan_probes)): the same selection, without recomputing the
    /// look-up's buckets and masks. An unscanned probe (`Probe::default()`) is a plain look-up.
    #[inline]
    pub fn select_probed(
        &mut self,
        snap: &Snapshot,
        meta: &PacketMeta,
        probe: &Probe,
        now_ms: u64,
        counters: &CoreCounters,
    ) -> Selection {
        let key = &meta.key;
        let alias = meta.alias.0 as usize;
        let (mode, policy) = snap.service(key.proto, key.dst_port);
        // Plain wrr with no wildcard_sticky port anywhere: today's path, nothing else to look at.
        let plain = (policy as u8 | snap.wildcard_sticky() as u8) == 0;
        if mode == ServiceMode::InNoalias {
            // RFC 9293 §3.10.7.1: a RST is never answered with a RST.
            return if key.proto == protocol::TCP && meta.tcp_flags & TCP_RST != 0 {
                Selection::Drop(DropReason::InNoalias)
            } else {
                Selection::Refuse
            };
        }
        if key.proto != protocol::TCP {
            let picked = if plain {
                self.pick(snap, alias, mode, key.proto, key.dst_port)
            } else {
                self.pick_policy(snap, meta, alias, mode, policy, now_ms, false)
            };
            let Some(member) = picked else {
                return Selection::Drop(DropReason::NoMember);
            };
            match policy {
                Policy::Sticky => {
                    self.remember(&sticky_key(key), member, now_ms, FlowState::HalfOpen)
                }
                Policy::WildcardSticky => {
                    self.remember(&wildcard_key(key), member, now_ms, FlowState::HalfOpen)
                }
                _ => {}
            }
            return Selection::Member {
                member,
                new_flow: mode == ServiceMode::InMulti,
            };
        }
        let fin_rst = meta.tcp_flags & (TCP_FIN | TCP_RST) != 0;
        // A client's SYN (no ACK) is a retransmission only if it carries the initial sequence
        // number that opened the entry and the entry has not seen FIN or RST. Otherwise it opens a
        // new incarnation of the 4-tuple (a reused source port) and is selected afresh, with
        // today's weights and eligibility, like IPVS's conn_reuse_mode. Without this a reused port
        // lands on the old member even when it no longer listens there (the router never sees
        // the member's RST to a refused SYN, so such entries stay live).
        let syn_only = meta.tcp_flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST) == TCP_SYN;
        if let Some(slot) = self.conns.find_probed(key, meta.hash, probe, now_ms) {
            let new_incarnation =
                syn_only && (slot.closing || slot.isn == 0 || slot.isn != meta.tcp_seq);
            if snap.member(slot.member).is_some_and(|m| m.up) && !new_incarnation {
                // A retransmitted SYN keeps a half-open flow half-open; any other client
                // segment (its ACK of the SYN-ACK) completes the handshake.
                let state = if fin_rst || slot.closing {
                    FlowState::Closing
                } else if slot.half_open && syn_only {
                    FlowState::HalfOpen
                } else {
                    FlowState::Established
                };
                self.conns
                    .refresh_as(slot, now_ms, self.timeouts.of(state), state);
                if slot.half_open && state == FlowState::Established {
                    if self.handoff {
                        self.record_handoff(FlowRecord {
                            key: *key,
                            member: slot.member,
                            state,
                            isn: slot.isn,
                            remaining_ms: self.timeouts.of(state).min(u32::MAX as u64) as u32,
                        });
                    }
                    if !plain {
                        self.completed(snap, key, policy, slot.member, now_ms);
                    }
                }
                CoreCounters::add(&counters.conn_hits, 1);
                return Selection::Member {
                    member: slot.member,
                    new_flow: false,
                };
            }
        }
        // A new connection (the client's SYN) goes by the round robin (CA7); any other segment
        // that misses the table belongs to a flow begun elsewhere (before a restart, on another
        // router, or evicted) and goes by the consistent hash, never the round robin.
        let picked = if syn_only && plain {
            self.pick(snap, alias, mode, key.proto, key.dst_port)
        } else {
            self.pick_policy(snap, meta, alias, mode, policy, now_ms, !syn_only)
        };
        let Some(mut member) = picked else {
            return Selection::Drop(DropReason::NoMember);
        };
        let state = if fin_rst {
            FlowState::Closing
        } else if syn_only {
            FlowState::HalfOpen
        } else {
            FlowState::Established
        };
        match self.conns.insert_hashed(
            key,
            meta.hash,
            member,
            now_ms,
            self.timeouts.of(state),
            state,
            if syn_only { meta.tcp_seq } else { 0 },
        ) {
            Some(outcome) => {
                if self.handoff && state == FlowState::Established {
                    self.record_handoff(FlowRecord {
                        key: *key,
                        member,
                        state,
                        isn: 0,
                        remaining_ms: self.timeouts.of(state).min(u32::MAX as u64) as u32,
                    });
                }
                CoreCounters::add(&counters.conn_inserts, 1);
                if outcome == InsertOutcome::Evicted {
                    CoreCounters::add(&counters.conn_evictions, 1);
                }
            }
            // Served without an entry, statelessly: by the consistent hash, which its
            // retransmission and its ACK (misses too, unless they find a slot) also take, so
            // the connection stays on one member.
            None => {
                CoreCounters::add(&counters.syn_without_slot, 1);
                if let Some(m) = self.pick_policy(snap, meta, alias, mode, policy, now_ms, true) {
                    member = m;
                }
            }
        }
        Selection::Member {
            member,
            new_flow: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;
    use crate::classify::tests::{frame, snap, tcp, ALIAS};
    use crate::conntrack::Slot;
    use crate::snapshot::tests::{member, port};
    use crate::snapshot::{AliasMember, PortRole};
    use std::net::Ipv4Addr;

    const T: Timeouts = Timeouts {
        tcp_idle_ms: 1000,
        tcp_closing_ms: 100,
        tcp_half_open_ms: 1000,
        sticky_ms: 5000,
    };

    fn meta(s: &Snapshot, proto: u8, sport: u16, dport: u16, flags: u8) -> PacketMeta {
        let l4: Vec<u8> = if proto == 6 {
            tcp(sport, dport, flags).to_vec()
        } else {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u[2..4].copy_from_slice(&dport.to_be_bytes());
            u[5] = 8;
            u
        };
        classify(s, 0, &frame(ALIAS, proto, 0, &l4)).unwrap()
    }

    fn pick(sel: &mut Selector, s: &Snapshot, m: &PacketMeta, now: u64) -> Selection {
        sel.select(s, m, now, &CoreCounters::new(8))
    }

    fn member_of(r: Selection) -> u32 {
        match r {
            Selection::Member { member, .. } => member.0,
            other => panic!("not selected: {other:?}"),
        }
    }

    #[test]
    fn in_noalias_is_refused_except_a_rst() {
        let s = snap();
        let mut sel = Selector::new(64, T, &s);
        for flags in [TCP_SYN, TCP_ACK, TCP_ACK | crate::classify::TCP_FIN] {
            let m = meta(&s, 6, 1, 513, flags);
            assert_eq!(pick(&mut sel, &s, &m, 0), Selection::Refuse);
        }
        for flags in [TCP_RST, TCP_RST | TCP_ACK, TCP_SYN | TCP_RST] {
            let m = meta(&s, 6, 1, 513, flags);
            assert_eq!(
                pick(&mut sel, &s, &m, 0),
                Selection::Drop(DropReason::InNoalias)
            );
        }
        assert_eq!(sel.conns().live(0), 0, "refusals leave no table entry");
    }

    #[test]
    fn tcp_in_multi_walks_the_schedule_and_remembers_flows() {
        let s = snap(); // schedule: m0 m0 m1
        let mut sel = Selector::new(64, T, &s);
        let got: Vec<u32> = (1..7)
            .map(|p| member_of(pick(&mut sel, &s, &meta(&s, 6, p, 80, TCP_SYN), 0)))
            .collect();
        assert_eq!(got, vec![0, 0, 1, 0, 0, 1]);
        assert_eq!(sel.cursors(), &[0]);
        // Source port 0 is never a real flow's (classify drops it). The third flow is on m1; its next packet too, and it is not a new flow.
        let r = pick(&mut sel, &s, &meta(&s, 6, 3, 80, TCP_ACK), 10);
        assert_eq!(
            r,
            Selection::Member {
                member: MemberId(1),
                new_flow: false
            }
        );
        assert_eq!(sel.cursors(), &[0], "hits do not move the cursor");
        // in_single TCP: the active member, remembered too.
        let r = pick(&mut sel, &s, &meta(&s, 6, 9, 22, TCP_SYN), 10);
        assert_eq!(
            r,
            Selection::Member {
                member: MemberId(0),
                new_flow: true
            }
        );
        assert_eq!(sel.conns().live(10), 7);
    }

    #[test]
    fn a_syn_on_a_closing_entry_is_a_new_connection() {
        let s = snap();
        let mut sel = Selector::new(64, T, &s);
        let m = meta(&s, 6, 7, 80, TCP_SYN);
        pick(&mut sel, &s, &m, 0);
        pick(
            &mut sel,
            &s,
            &meta(&s, 6, 7, 80, TCP_ACK | crate::classify::TCP_FIN),
            0,
        );
        assert!(sel.conns().find(&m.key, m.hash, 0).unwrap().closing);
        assert_eq!(sel.conns().live(100), 0);
        // The reused 4-tuple is selected afresh: the next member in the round robin, and the
        // entry is live (idle timeout) again. No second entry is made for the key.
        let mut syn = meta(&s, 6, 7, 80, TCP_SYN);
        syn.tcp_seq = 1000;
        let again = pick(&mut sel, &s, &syn, 50);
        let slot = sel.conns().find(&m.key, m.hash, 50).unwrap();
        assert!(!slot.closing);
        assert_eq!(slot.isn, 1000);
        assert_eq!(sel.conns().live(1049), 1);
        // new_flow: selected by the round robin, not a connection-table hit.
        assert!(
            matches!(again, Selection::Member { new_flow: true, .. }),
            "{again:?}"
        );
        // A retransmitted SYN (same ISN) on the live entry keeps its member.
        let retx = pick(&mut sel, &s, &syn, 60);
        assert!(
            matches!(
                retx,
                Selection::Member {
                    new_flow: false,
                    ..
                }
            ),
            "{retx:?}"
        );
        assert_eq!(
            sel.conns().find(&m.key, m.hash, 60).unwrap().member,
            slot.member
        );
        // A SYN with another ISN on the live entry (the member refused the first one: the router
        // never saw its RST) is a new connection.
        let mut reused = syn;
        reused.tcp_seq = 2000;
        let r = pick(&mut sel, &s, &reused, 70);
        assert!(
            matches!(r, Selection::Member { new_flow: true, .. }),
            "{r:?}"
        );
        assert_eq!(sel.conns().find(&m.key, m.hash, 70).unwrap().isn, 2000);
        // Other segments of the flow are hits and keep the ISN.
        let mut ack = meta(&s, 6, 7, 80, TCP_ACK);
        ack.tcp_seq = 2001;
        let h = pick(&mut sel, &s, &ack, 80);
        assert!(
            matches!(
                h,
                Selection::Member {
                    new_flow: false,
                    ..
                }
            ),
            "{h:?}"
        );
        assert_eq!(sel.conns().find(&m.key, m.hash, 80).unwrap().isn, 2000);
    }

    #[test]
    fn no_member_when_nobody_is_up() {
        let ports = vec![
            port("client", PortRole::Client, 1, Some([198, 51, 100, 2])),
            port("ic0", PortRole::Interconnect, 2, Some([192, 0, 2, 2])),
        ];
        let s = Snapshot::build(
            1,
            ports,
            vec![member(0, false)],
            vec![(
                "web".into(),
                Ipv4Addr::from(ALIAS),
                vec![AliasMember {
                    member: MemberId(0),
                    selw: 1,
                    selp: 1,
                }],
            )],
            &[],
        )
        .unwrap();
        let mut sel = Selector::new(64, T, &s);
        for (proto, port) in [(6, 80), (6, 22), (17, 53)] {
            let m = meta(&s, proto, 1, port, TCP_SYN);
            assert_eq!(
                pick(&mut sel, &s, &m, 0),
                Selection::Drop(DropReason::NoMember)
            );
        }
    }

    #[test]
    fn cursors_survive_member_changes_and_reset_on_alias_changes() {
        let s = snap();
        let mut sel = Selector::new(64, T, &s);
        pick(&mut sel, &s, &meta(&s, 17, 1, 53, 0), 0);
        pick(&mut sel, &s, &meta(&s, 17, 1, 53, 0), 0);
        assert_eq!(sel.cursors(), &[2]);
        // Same aliases (a rebuilt snapshot): cursor kept.
        let s2 = snap();
        sel.on_snapshot(&s, &s2);
        assert_eq!(sel.cursors(), &[2]);
        // A member down shrinks the schedule to [m0, m0]: the cursor wraps into it.
        let ports = s.ports.clone();
        let ams = s.aliases[0].members.clone();
        let s3 = Snapshot::build(
            3,
            ports.clone(),
            vec![member(0, true), member(1, false)],
            vec![("web".into(), Ipv4Addr::from(ALIAS), ams.clone())],
            &[crate::snapshot::ServiceSpec {
                proto: 17,
                port: 53,
                mode: ServiceMode::InMulti,
            }],
        )
        .unwrap();
        sel.on_snapshot(&s2, &s3);
        assert_eq!(
            member_of(pick(&mut sel, &s3, &meta(&s3, 17, 1, 53, 0), 0)),
            0
        );
        assert_eq!(sel.cursors(), &[1]);
        // Another alias set: reset (and resized).
        let s4 = Snapshot::build(
            4,
            ports,
            vec![member(0, true), member(1, true)],
            vec![
                ("web".into(), Ipv4Addr::from(ALIAS), ams.clone()),
                ("new".into(), Ipv4Addr::new(198, 51, 100, 120), ams),
            ],
            &[],
        )
        .unwrap();
        sel.on_snapshot(&s3, &s4);
        assert_eq!(sel.cursors(), &[0, 0]);
    }

    /// web = m0 (listens tcp/80, udp/53; selw 2), m2 (listens tcp/22), m1 (reports nothing),
    /// joined in that order; tcp/80 and udp/53 in_multi. `m0_listens` replaces m0's list.
    fn listening_snap(generation: u64, m0_listens: &[(u8, u16)]) -> Snapshot {
        let ports = vec![
            port("client", PortRole::Client, 1, Some([198, 51, 100, 2])),
            port("ic0", PortRole::Interconnect, 2, Some([192, 0, 2, 2])),
        ];
        let mut members = vec![member(0, true), member(1, true), member(2, true)];
        members[0].as_mut().unwrap().listening = Some(m0_listens.into());
        members[2].as_mut().unwrap().listening = Some([(6, 22)].into());
        let am = |id, selw| AliasMember {
            member: MemberId(id),
            selw,
            selp: 1,
        };
        let multi = |proto, port| crate::snapshot::ServiceSpec {
            proto,
            port,
            mode: ServiceMode::InMulti,
        };
        Snapshot::build(
            generation,
            ports,
            members,
            vec![(
                "web".into(),
                Ipv4Addr::from(ALIAS),
                vec![am(0, 2), am(2, 1), am(1, 1)],
            )],
            &[multi(6, 80), multi(17, 53)],
        )
        .unwrap()
    }

    #[test]
    fn new_flows_go_only_to_members_listening_on_the_port() {
        // CA7: "new TCP -> eligible members with an active listen on the port".
        let s = listening_snap(1, &[(6, 80), (17, 53)]);
        let mut sel = Selector::new(64, T, &s);
        assert_eq!(sel.cursors().len(), 4, "default + tcp/22, tcp/80, udp/53");
        let tcp80: Vec<u32> = (1..7)
            .map(|p| member_of(pick(&mut sel, &s, &meta(&s, 6, p, 80, TCP_SYN), 0)))
            .collect();
        assert_eq!(
            tcp80,
            vec![0, 0, 1, 0, 0, 1],
            "m2 does not listen on tcp/80"
        );
        // udp/53 has its own cursor: it starts at the beginning of its schedule.
        let udp53: Vec<u32> = (0..4)
            .map(|_| member_of(pick(&mut sel, &s, &meta(&s, 17, 9, 53, 0), 0)))
            .collect();
        assert_eq!(udp53, vec![0, 0, 1, 0]);
        // in_single tcp/22: the first eligible member in join order is m2 (m0 does not
        // listen there); any unlisted port: m1, the only member not reporting its listens.
        assert_eq!(
            member_of(pick(&mut sel, &s, &meta(&s, 6, 1, 22, TCP_SYN), 0)),
            2
        );
        assert_eq!(
            member_of(pick(&mut sel, &s, &meta(&s, 6, 1, 23, TCP_SYN), 0)),
            1
        );
        assert_eq!(member_of(pick(&mut sel, &s, &meta(&s, 17, 1, 23, 0), 0)), 1);
    }

    #[test]
    fn a_member_that_stops_listening_keeps_its_established_flows() {
        let s = listening_snap(1, &[(6, 80)]);
        let mut sel = Selector::new(64, T, &s);
        assert_eq!(
            member_of(pick(&mut sel, &s, &meta(&s, 6, 1, 80, TCP_SYN), 0)),
            0
        );
        // m0 stops listening on tcp/80 (it still listens elsewhere): the schedule set changes,
        // so the port cursors are reset; the established flow drains on m0.
        let s2 = listening_snap(2, &[(17, 53)]);
        sel.on_snapshot(&s, &s2);
        assert_eq!(sel.cursors().len(), s2.cursor_count());
        assert_eq!(
            pick(&mut sel, &s2, &meta(&s2, 6, 1, 80, TCP_ACK), 10),
            Selection::Member {
                member: MemberId(0),
                new_flow: false
            }
        );
        let new: Vec<u32> = (2..6)
            .map(|p| member_of(pick(&mut sel, &s2, &meta(&s2, 6, p, 80, TCP_SYN), 10)))
            .collect();
        assert_eq!(new, vec![1; 4]);
    }

    const H: Timeouts = Timeouts {
        tcp_idle_ms: 10_000,
        tcp_closing_ms: 100,
        tcp_half_open_ms: 500,
        sticky_ms: 60_000,
    };

    /// Issue 9: a SYN's entry is half-open (short timeout) until the client's next segment;
    /// a retransmitted SYN keeps it half-open on its member.
    #[test]
    fn a_syn_is_half_open_until_the_clients_next_segment() {
        let s = snap();
        let mut sel = Selector::new(64, H, &s);
        let c = CoreCounters::new(8);
        let mut syn = meta(&s, 6, 7, 80, TCP_SYN);
        syn.tcp_seq = 1000;
        let first = member_of(sel.select(&s, &syn, 0, &c));
        let slot = sel.conns().find(&syn.key, syn.hash, 0).unwrap();
        assert!(slot.half_open && !slot.closing);
        assert_eq!(sel.conns().live(499), 1);
        assert_eq!(sel.conns().live(500), 0, "half-open timeout");
        // A retransmission (same ISN) keeps the member and the state, and restarts the timeout.
        assert_eq!(
            sel.select(&s, &syn, 400, &c),
            Selection::Member {
                member: MemberId(first),
                new_flow: false
            }
        );
        assert!(sel.conns().find(&syn.key, syn.hash, 400).unwrap().half_open);
        assert_eq!(sel.conns().live(899), 1);
        assert_eq!(sel.conns().live(900), 0);
        // The client's ACK of the SYN-ACK: established, on the idle timeout.
        let mut ack = meta(&s, 6, 7, 80, TCP_ACK);
        ack.tcp_seq = 1001;
        assert_eq!(
            sel.select(&s, &ack, 800, &c),
            Selection::Member {
                member: MemberId(first),
                new_flow: false
            }
        );
        let slot = sel.conns().find(&ack.key, ack.hash, 800).unwrap();
        assert!(!slot.half_open && !slot.closing);
        assert_eq!(slot.isn, 1000);
        assert_eq!(sel.conns().live(10_799), 1);
        assert_eq!(sel.conns().live(10_800), 0, "idle timeout");
        // A late duplicate of the SYN does not make it half-open again.
        sel.select(&s, &syn, 900, &c);
        assert!(!sel.conns().find(&syn.key, syn.hash, 900).unwrap().half_open);
        assert_eq!(sel.conns().live(10_899), 1);
        // A SYN never followed up is forgotten after the half-open timeout; a FIN or RST on a
        // half-open flow puts it on the closing timeout.
        let mut other = meta(&s, 6, 8, 80, TCP_SYN);
        other.tcp_seq = 5;
        sel.select(&s, &other, 1000, &c);
        let mut third = meta(&s, 6, 9, 80, TCP_SYN);
        third.tcp_seq = 5;
        sel.select(&s, &third, 1000, &c);
        sel.select(&s, &meta(&s, 6, 9, 80, TCP_RST), 1000, &c);
        let slot = sel.conns().find(&third.key, third.hash, 1000).unwrap();
        assert!(slot.closing && !slot.half_open);
        assert_eq!(sel.conns().live(1099), 3);
        assert_eq!(sel.conns().live(1100), 2);
        assert_eq!(sel.conns().live(1499), 2);
        assert_eq!(sel.conns().live(1500), 1);
        assert_eq!(CoreCounters::get(&c.conn_inserts), 3);
        assert_eq!(CoreCounters::get(&c.conn_hits), 4);
        assert_eq!(CoreCounters::get(&c.syn_without_slot), 0);
    }

    /// Issue 9: a SYN whose buckets are full of established flows is forwarded (selected as
    /// any new flow) without an entry, and counted; the established flows keep theirs.
    /// Issue 9: a flow that misses the table (router restart, another router, eviction) gets
    /// the same member from every router whatever its connection-table hash key, and keeps it
    /// when it finds its entry afterwards.
    #[test]
    fn a_miss_gets_the_same_member_on_every_router() {
        use crate::classify::{classify_with, ClassifyConfig};
        let s = snap();
        let c = CoreCounters::new(8);
        // Each router (and each start) classifies with its own random hash key.
        let under = |key: FlowHashKey, p: u16| {
            let cfg = ClassifyConfig {
                hash_key: key,
                ..ClassifyConfig::default()
            };
            classify_with(
                &cfg,
                &s,
                0,
                &frame(ALIAS, 6, 0, &tcp(2000 + p, 80, TCP_ACK)),
            )
            .unwrap()
        };
        let (ka, kb) = (FlowHashKey::new([1, 2]), FlowHashKey::new([3, 4]));
        let mut a = Selector::with_hash_key(1024, H, &s, ka);
        let mut b = Selector::with_hash_key(1024, H, &s, kb);
        let mut seen = [0u32; 2];
        for p in 0..300u16 {
            let first = member_of(a.select(&s, &under(ka, p), 0, &c));
            seen[first as usize] += 1;
            assert_eq!(
                member_of(b.select(&s, &under(kb, p), 0, &c)),
                first,
                "port {p}"
            );
            // A hit keeps it.
            assert_eq!(member_of(a.select(&s, &under(ka, p), 1, &c)), first);
            // A restart: a new, empty table under another key.
            let kr = FlowHashKey::new([u64::from(p), 9]);
            let mut r = Selector::with_hash_key(64, H, &s, kr);
            assert_eq!(member_of(r.select(&s, &under(kr, p), 2, &c)), first);
        }
        assert!(
            seen[0] > 150 && seen[1] > 60,
            "by the weights 2:1: {seen:?}"
        );
    }

    #[test]
    fn a_syn_without_a_slot_is_forwarded_and_counted() {
        let s = snap();
        let mut sel = Selector::new(8, H, &s); // one bucket
        let c = CoreCounters::new(8);
        let est: Vec<PacketMeta> = (1..9).map(|p| meta(&s, 6, p, 80, TCP_ACK)).collect();
        let owners: Vec<u32> = est
            .iter()
            .map(|m| member_of(sel.select(&s, m, 0, &c)))
            .collect();
        // Non-SYN misses go by the consistent hash of the flow (issue 9), not the round robin.
        let table = s.aliases[0].schedule(6, 80).maglev;
        let hashed = |m: &PacketMeta| table.lookup_flow(&m.key, &FlowHashKey::FIXED).unwrap().0;
        assert_eq!(owners, est.iter().map(hashed).collect::<Vec<_>>());
        // Over many flows the misses follow the weights (m0 selw 2, m1 selw 1).
        let mut big = Selector::new(1 << 14, H, &s);
        let other = CoreCounters::new(8);
        let n = 6000u16;
        let to_m0 = (0..n)
            .filter(|&p| {
                member_of(big.select(&s, &meta(&s, 6, 1000 + p, 80, TCP_ACK), 0, &other)) == 0
            })
            .count() as f64;
        assert!((to_m0 / f64::from(n) - 2.0 / 3.0).abs() < 0.03, "{to_m0}");
        assert_eq!(big.cursors(), &[0]);
        assert_eq!(sel.cursors(), &[0], "misses leave the round robin alone");
        for p in 100..120u16 {
            let mut syn = meta(&s, 6, p, 80, TCP_SYN);
            syn.tcp_seq = 77;
            let r = sel.select(&s, &syn, 10, &c);
            // Slotless, so served statelessly: the member its ACK (a miss too) will get.
            assert_eq!(
                r,
                Selection::Member {
                    member: MemberId(hashed(&syn)),
                    new_flow: true
                }
            );
            assert!(sel.conns().find(&syn.key, syn.hash, 10).is_none());
            let ack = meta(&s, 6, p, 80, TCP_ACK);
            let mut probe = Selector::new(8, H, &s);
            assert_eq!(
                member_of(probe.select(&s, &ack, 10, &other)),
                hashed(&syn),
                "the ACK finds the SYN's member"
            );
        }
        assert_eq!(sel.cursors(), &[20 % 3], "the SYNs were round-robined");
        assert_eq!(CoreCounters::get(&c.syn_without_slot), 20);
        assert_eq!(CoreCounters::get(&c.conn_inserts), 8);
        assert_eq!(CoreCounters::get(&c.conn_evictions), 0);
        for (m, owner) in est.iter().zip(&owners) {
            assert_eq!(
                sel.select(&s, m, 20, &c),
                Selection::Member {
                    member: MemberId(*owner),
                    new_flow: false
                }
            );
        }
        // Once one established flow has expired, the next SYN takes its slot.
        sel.conns_mut().set_timeout(&est[3].key, 20, 1);
        let mut syn = meta(&s, 6, 200, 80, TCP_SYN);
        syn.tcp_seq = 77;
        sel.select(&s, &syn, 21, &c);
        assert!(sel.conns().find(&syn.key, syn.hash, 21).unwrap().half_open);
        assert_eq!(CoreCounters::get(&c.syn_without_slot), 20);
        assert_eq!(CoreCounters::get(&c.conn_evictions), 0);
    }

    // ---- Policies (SC1–SC3, seed 004; issue 9) ------------------------------------------

    const P: Timeouts = Timeouts {
        tcp_idle_ms: 10_000,
        tcp_closing_ms: 100,
        tcp_half_open_ms: 500,
        sticky_ms: 60_000,
    };

    /// Distinct client addresses (10.0.0.1 up).
    fn client(i: u32) -> u32 {
        0x0a00_0001 + i
    }

    /// A classified packet from `src:sport` to the alias's `dport` (hashed as `Selector::new`
    /// keys its table).
    fn pkt(src: u32, proto: u8, sport: u16, dport: u16, flags: u8, seq: u32) -> PacketMeta {
        let key = FlowKey {
            src,
            dst: u32::from_be_bytes(ALIAS),
            src_port: sport,
            dst_port: dport,
            proto,
        };
        PacketMeta {
            key,
            hash: key.hash_keyed(&FlowHashKey::FIXED),
            tcp_flags: flags,
            tcp_seq: seq,
            ..PacketMeta::default()
        }
    }

    /// web = `members` (m0..m2 exist; `up` says which are up); tcp/80, tcp/21, udp/53
    /// in_multi, tcp/513 in_noalias; `policies` on top.
    fn policy_snap(
        generation: u64,
        up: [bool; 3],
        members: Vec<AliasMember>,
        policies: &[(u8, u16, Policy)],
    ) -> Snapshot {
        let ports = vec![
            port("client", PortRole::Client, 1, Some([198, 51, 100, 2])),
            port("ic0", PortRole::Interconnect, 2, Some([192, 0, 2, 2])),
        ];
        let spec = |proto, port, mode| crate::snapshot::ServiceSpec { proto, port, mode };
        Snapshot::build(
            generation,
            ports,
            vec![member(0, up[0]), member(1, up[1]), member(2, up[2])],
            vec![("web".into(), Ipv4Addr::from(ALIAS), members)],
            &[
                spec(6, 80, ServiceMode::InMulti),
                spec(6, 21, ServiceMode::InMulti),
                spec(17, 53, ServiceMode::InMulti),
                spec(6, 513, ServiceMode::InNoalias),
            ],
        )
        .unwrap()
        .with_policies(
            &policies
                .iter()
                .map(|&(proto, port, policy)| crate::snapshot::ServicePolicy {
                    proto,
                    port,
                    policy,
                })
                .collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn ams(selw: [u32; 3]) -> Vec<AliasMember> {
        (0..3)
            .map(|i| AliasMember {
                member: MemberId(i),
                selw: selw[i as usize],
                selp: 1,
            })
            .collect()
    }

    /// A whole TCP connection's opening from `src:sport` to `dport`: the SYN and the client's
    /// ACK. Returns the member; both packets must agree.
    fn connect(
        sel: &mut Selector,
        s: &Snapshot,
        src: u32,
        sport: u16,
        dport: u16,
        now: u64,
    ) -> u32 {
        let c = CoreCounters::new(8);
        let syn = member_of(sel.select(s, &pkt(src, 6, sport, dport, TCP_SYN, 77), now, &c));
        let ack = member_of(sel.select(s, &pkt(src, 6, sport, dport, TCP_ACK, 78), now, &c));
        assert_eq!(syn, ack, "{src:x}:{sport} -> {dport}");
        syn
    }

    fn affinity(sel: &Selector, k: &FlowKey, now: u64) -> Option<Slot> {
        sel.conns().find(k, sel.conns().hash(k), now)
    }

    #[test]
    fn policies_apply_only_to_in_multi_ports() {
        let s = policy_snap(
            1,
            [true; 3],
            ams([1, 1, 1]),
            &[
                (6, 80, Policy::Sticky),
                (6, 22, Policy::Sticky),
                (6, 513, Policy::Weighted),
                (17, 53, Policy::WildcardSticky),
            ],
        );
        assert_eq!(s.service(6, 80), (ServiceMode::InMulti, Policy::Sticky));
        assert_eq!(s.service(6, 21), (ServiceMode::InMulti, Policy::Wrr));
        assert_eq!(s.service(6, 22), (ServiceMode::InSingle, Policy::Wrr));
        assert_eq!(s.service(6, 513), (ServiceMode::InNoalias, Policy::Wrr));
        assert_eq!(
            s.service(17, 53),
            (ServiceMode::InMulti, Policy::WildcardSticky)
        );
        assert_eq!(s.service(1, 53), (ServiceMode::InSingle, Policy::Wrr));
        assert!(s.wildcard_sticky());
        assert!(
            !policy_snap(1, [true; 3], ams([1, 1, 1]), &[(6, 80, Policy::Sticky)])
                .wildcard_sticky()
        );
    }

    /// SC1: `weighted` is the Maglev table of the flow, the same for its SYN, a non-SYN miss and
    /// every datagram of a UDP 5-tuple; the round robin never moves.
    #[test]
    fn weighted_follows_the_flow_hash() {
        let s = policy_snap(
            1,
            [true; 3],
            ams([3, 2, 1]),
            &[(6, 80, Policy::Weighted), (17, 53, Policy::Weighted)],
        );
        let mut sel = Selector::new(4096, P, &s);
        let c = CoreCounters::new(8);
        let table = s.aliases[0].schedule(6, 80).maglev;
        let mut seen = [0u32; 3];
        for i in 0..600u32 {
            let syn = pkt(client(i), 6, 1000 + i as u16, 80, TCP_SYN, 5);
            let want = table.lookup_flow(&syn.key, &FlowHashKey::FIXED).unwrap();
            assert_eq!(member_of(sel.select(&s, &syn, 0, &c)), want.0);
            seen[want.0 as usize] += 1;
            // The same flow seen first mid-way by another router gets the same member.
            let mut other = Selector::new(64, P, &s);
            let ack = pkt(client(i), 6, 1000 + i as u16, 80, TCP_ACK, 6);
            assert_eq!(member_of(other.select(&s, &ack, 0, &c)), want.0);
            let dgram = pkt(client(i), 17, 1000 + i as u16, 53, 0, 0);
            let m = member_of(sel.select(&s, &dgram, 0, &c));
            assert_eq!(m, member_of(sel.select(&s, &dgram, 1, &c)));
            assert_eq!(
                m,
                table
                    .lookup_flow(&dgram.key, &FlowHashKey::FIXED)
                    .unwrap()
                    .0
            );
        }
        assert!(
            seen[0] > seen[1] && seen[1] > seen[2],
            "by the weights 3:2:1: {seen:?}"
        );
        assert!(sel.cursors().iter().all(|&c| c == 0), "{:?}", sel.cursors());
        // UDP leaves no table entry.
        assert_eq!(sel.conns().live(1), 600);
    }

    /// SC2: a client's connections to a sticky port go to one member; its first choice is the
    /// Maglev table's entry for the client address (so it follows the weights), and the
    /// affinity is written when the handshake completes.
    #[test]
    fn sticky_clients_keep_one_member_and_first_choices_follow_the_weights() {
        let s = policy_snap(1, [true; 3], ams([2, 1, 1]), &[(6, 80, Policy::Sticky)]);
        let mut sel = Selector::new(1 << 14, P, &s);
        let c = CoreCounters::new(8);
        let table = s.aliases[0].schedule(6, 80).maglev;
        let mut seen = [0u32; 3];
        for i in 0..2000u32 {
            let src = client(i);
            let first = table
                .lookup_client(src, u32::from_be_bytes(ALIAS))
                .unwrap()
                .0;
            seen[first as usize] += 1;
            let syn = pkt(src, 6, 1000, 80, TCP_SYN, 1);
            assert_eq!(member_of(sel.select(&s, &syn, 0, &c)), first);
            // No affinity until the handshake completes.
            assert!(affinity(&sel, &sticky_key(&syn.key), 0).is_none());
            sel.select(&s, &pkt(src, 6, 1000, 80, TCP_ACK, 2), 0, &c);
            let a = affinity(&sel, &sticky_key(&syn.key), 0).unwrap();
            assert_eq!((a.member.0, a.half_open, a.closing), (first, false, false));
        }
        let share = f64::from(seen[0]) / 2000.0;
        assert!((share - 0.5).abs() < 0.05, "selw 2 of 4: {seen:?}");
        // Thirty more connections of one client, each from another port: one member, where
        // wrr would have walked the schedule.
        let src = client(7);
        let first = affinity(&sel, &sticky_key(&pkt(src, 6, 1, 80, 0, 0).key), 0)
            .unwrap()
            .member
            .0;
        for p in 0..30 {
            assert_eq!(connect(&mut sel, &s, src, 2000 + p, 80, 10), first);
        }
        assert!(
            sel.cursors().iter().all(|&c| c == 0),
            "sticky never round-robins"
        );
        // Other ports of the alias are not sticky: tcp/21 is wrr.
        let on21: Vec<u32> = (0..4)
            .map(|p| connect(&mut sel, &s, src, 3000 + p, 21, 10))
            .collect();
        assert_eq!(on21, [0, 0, 1, 2]);
    }

    /// SC2 and SC1: a weight change, and another member leaving and rejoining, move no sticky
    /// client, though they change what its first choice would be; the affinity outlives the
    /// last connection by `sticky_ms` and is refreshed by each completed connection.
    #[test]
    fn sticky_clients_stay_when_weights_change_and_others_leave_and_rejoin() {
        let pol = [(6, 80, Policy::Sticky)];
        let s1 = policy_snap(1, [true; 3], ams([1, 1, 1]), &pol);
        let s2 = policy_snap(2, [true, true, false], ams([1, 1, 1]), &pol); // m2 down
        let s3 = policy_snap(3, [true; 3], ams([1, 1, 1]), &pol); // m2 back
        let s4 = policy_snap(4, [true; 3], ams([1, 1, 50]), &pol); // m2's weight up
        let alias = u32::from_be_bytes(ALIAS);
        let first = |s: &Snapshot, src| {
            s.aliases[0]
                .schedule(6, 80)
                .maglev
                .lookup_client(src, alias)
                .unwrap()
                .0
        };
        // Clients on m0 or m1 whose first choice is another member while m2 is down, or with
        // m2's new weight: the cases an affinity must override.
        let moved_by_leave: Vec<u32> = (0..200_000)
            .map(client)
            .filter(|&c| first(&s1, c) != 2 && first(&s2, c) != first(&s1, c))
            .take(5)
            .collect();
        assert_eq!(
            moved_by_leave.len(),
            5,
            "Maglev moves a few entries between the others"
        );
        let moved_by_weight: Vec<u32> = (0..1000)
            .map(client)
            .filter(|&c| first(&s1, c) != 2 && first(&s4, c) != first(&s1, c))
            .take(5)
            .collect();
        assert_eq!(moved_by_weight.len(), 5);
        let mut sel = Selector::new(1 << 12, P, &s1);
        let clients: Vec<u32> = moved_by_leave
            .iter()
            .chain(&moved_by_weight)
            .copied()
            .collect();
        let owner: Vec<u32> = clients
            .iter()
            .map(|&c| connect(&mut sel, &s1, c, 1000, 80, 0))
            .collect();
        let mut now = 0;
        for (s_old, s_new) in [(&s1, &s2), (&s2, &s3), (&s3, &s4)] {
            sel.on_snapshot(s_old, s_new);
            now += 50_000; // within sticky_ms of the previous connection
            for (k, (&c, &o)) in clients.iter().zip(&owner).enumerate() {
                assert_eq!(
                    connect(&mut sel, s_new, c, 1001 + (now / 1000) as u16, 80, now),
                    o,
                    "client {k} at generation {}",
                    s_new.generation
                );
            }
        }
        // After sticky_ms without a connection the affinity is gone: first choice again.
        now += P.sticky_ms;
        for &c in &moved_by_weight {
            assert_eq!(connect(&mut sel, &s4, c, 9000, 80, now), first(&s4, c));
        }
    }

    /// SC2: when the client's member goes down (or leaves the port's tier) its affinity is
    /// ignored; the fresh choice replaces it and sticks, also after the member comes back.
    #[test]
    fn a_sticky_client_moves_when_its_member_goes_and_sticks_again() {
        let pol = [(6, 80, Policy::Sticky)];
        let s1 = policy_snap(1, [true; 3], ams([1, 1, 1]), &pol);
        let alias = u32::from_be_bytes(ALIAS);
        let src = (0..100)
            .map(client)
            .find(|&c| {
                s1.aliases[0].schedule(6, 80).maglev.lookup_client(c, alias) == Some(MemberId(2))
            })
            .unwrap();
        let mut sel = Selector::new(1 << 10, P, &s1);
        assert_eq!(connect(&mut sel, &s1, src, 1000, 80, 0), 2);
        let s2 = policy_snap(2, [true, true, false], ams([1, 1, 1]), &pol);
        sel.on_snapshot(&s1, &s2);
        let moved = connect(&mut sel, &s2, src, 1001, 80, 10);
        assert_ne!(moved, 2);
        assert_eq!(
            affinity(&sel, &sticky_key(&pkt(src, 6, 1, 80, 0, 0).key), 10)
                .unwrap()
                .member
                .0,
            moved
        );
        let s3 = policy_snap(3, [true; 3], ams([1, 1, 1]), &pol);
        sel.on_snapshot(&s2, &s3);
        for p in 0..5 {
            assert_eq!(connect(&mut sel, &s3, src, 1002 + p, 80, 20), moved);
        }
        // Gone from the alias (up, but not joined): the same.
        let s4 = policy_snap(
            4,
            [true; 3],
            ams([1, 1, 1])
                .into_iter()
                .filter(|a| a.member.0 != moved)
                .collect(),
            &pol,
        );
        sel.on_snapshot(&s3, &s4);
        let again = connect(&mut sel, &s4, src, 1100, 80, 30);
        assert_ne!(again, moved);
    }

    /// The SYN-flood rule: spoofed SYNs use affinities but never write them, so a flood of 20×
    /// the table leaves every established flow and every affinity where it was.
    #[test]
    fn a_syn_flood_on_a_sticky_port_creates_no_affinities() {
        let s = policy_snap(1, [true; 3], ams([1, 1, 1]), &[(6, 80, Policy::Sticky)]);
        let mut sel = Selector::new(64, P, &s);
        let c = CoreCounters::new(8);
        let real: Vec<(u32, u32)> = (0..12)
            .map(|i| (client(i), connect(&mut sel, &s, client(i), 1000, 80, 0)))
            .collect();
        let live = sel.conns().live(0);
        assert_eq!(live, 24, "12 flows and 12 affinities");
        for i in 0..(20 * 64u32) {
            let spoofed = pkt(client(1000 + i), 6, 1 + (i % 60000) as u16, 80, TCP_SYN, i);
            assert!(matches!(
                sel.select(&s, &spoofed, 1, &c),
                Selection::Member { .. }
            ));
            assert!(affinity(&sel, &sticky_key(&spoofed.key), 1).is_none());
        }
        // The SYNs, all within a half-open entry's grace, evicted nothing: they filled the
        // free slots and the rest went without an entry; the 24 entries of before stay.
        assert_eq!(CoreCounters::get(&c.conn_evictions), 0);
        assert!(CoreCounters::get(&c.syn_without_slot) > 0);
        for (src, m) in &real {
            let ack = pkt(*src, 6, 1000, 80, TCP_ACK, 100);
            assert_eq!(
                sel.select(&s, &ack, 2, &c),
                Selection::Member {
                    member: MemberId(*m),
                    new_flow: false
                }
            );
            assert_eq!(
                affinity(&sel, &sticky_key(&ack.key), 2).unwrap().member.0,
                *m
            );
        }
    }

    /// A flow of a sticky client that misses the table (a restart, another router) takes the
    /// client's affinity when there is one, else the client's first choice.
    #[test]
    fn a_non_syn_miss_on_a_sticky_port_follows_the_client() {
        let pol = [(6, 80, Policy::Sticky)];
        let s1 = policy_snap(1, [true; 3], ams([1, 1, 1]), &pol);
        let s2 = policy_snap(2, [true; 3], ams([1, 1, 50]), &pol);
        let alias = u32::from_be_bytes(ALIAS);
        let first = |s: &Snapshot, c| {
            s.aliases[0]
                .schedule(6, 80)
                .maglev
                .lookup_client(c, alias)
                .unwrap()
                .0
        };
        let src = (0..1000)
            .map(client)
            .find(|&c| first(&s1, c) == 0 && first(&s2, c) == 2)
            .unwrap();
        let mut sel = Selector::new(1 << 10, P, &s1);
        assert_eq!(connect(&mut sel, &s1, src, 1000, 80, 0), 0);
        sel.on_snapshot(&s1, &s2);
        let c = CoreCounters::new(8);
        let mid = pkt(src, 6, 5555, 80, TCP_ACK, 9);
        assert_eq!(member_of(sel.select(&s2, &mid, 1, &c)), 0, "the affinity");
        let mut fresh = Selector::new(1 << 10, P, &s2);
        assert_eq!(
            member_of(fresh.select(&s2, &mid, 1, &c)),
            2,
            "the client's first choice"
        );
        assert!(
            affinity(&fresh, &sticky_key(&mid.key), 1).is_none(),
            "misses write none"
        );
    }

    /// SC3: a connection to the wildcard_sticky port makes the client's wildcard affinity;
    /// then every new flow of that client to any port of the alias (unlisted in_single ports,
    /// UDP, other in_multi ports) goes to its member, but in_noalias ports are still refused.
    /// Its member down: ignored.
    #[test]
    fn wildcard_sticky_takes_every_port_of_the_alias_to_one_member() {
        let pol = [(6, 21, Policy::WildcardSticky)];
        let s = policy_snap(1, [true; 3], ams([1, 1, 1]), &pol);
        assert!(s.wildcard_sticky());
        let alias = u32::from_be_bytes(ALIAS);
        let table = s.aliases[0].schedule(6, 21).maglev;
        // A client whose member is not the in_single ports' active member (m0).
        let src = (0..100)
            .map(client)
            .find(|&c| table.lookup_client(c, alias) == Some(MemberId(2)))
            .unwrap();
        let other = (0..100).map(client).find(|&c| c != src).unwrap();
        let mut sel = Selector::new(1 << 10, P, &s);
        let c = CoreCounters::new(8);
        // Before the control connection: passive ports are in_single (m0).
        assert_eq!(connect(&mut sel, &s, src, 999, 40_000, 0), 0);
        assert_eq!(connect(&mut sel, &s, src, 1000, 21, 0), 2);
        let w = wildcard_key(&pkt(src, 6, 1, 21, 0, 0).key);
        assert_eq!(affinity(&sel, &w, 0).unwrap().member.0, 2);
        for p in 0..10u16 {
            assert_eq!(
                connect(&mut sel, &s, src, 2000 + p, 40_001 + p, 1),
                2,
                "data port"
            );
        }
        // in_multi wrr ports and UDP follow it too.
        for p in 0..4u16 {
            assert_eq!(connect(&mut sel, &s, src, 3000 + p, 80, 1), 2);
            assert_eq!(
                member_of(sel.select(&s, &pkt(src, 17, 3000 + p, 53, 0, 0), 1, &c)),
                2
            );
            assert_eq!(
                member_of(sel.select(&s, &pkt(src, 17, 3000 + p, 7, 0, 0), 1, &c)),
                2
            );
        }
        assert_eq!(
            sel.select(&s, &pkt(src, 6, 4000, 513, TCP_SYN, 1), 1, &c),
            Selection::Refuse
        );
        // Another client has no affinity: in_single as before.
        assert_eq!(connect(&mut sel, &s, other, 1000, 40_000, 1), 0);
        // Data connections that used the affinity refresh it.
        let now = P.sticky_ms - 1;
        assert_eq!(connect(&mut sel, &s, src, 5000, 40_100, now), 2);
        assert_eq!(
            connect(&mut sel, &s, src, 5001, 40_101, now + P.sticky_ms - 1),
            2
        );
        // Its member down: the affinity is ignored; the next control connection replaces it.
        let s2 = policy_snap(2, [true, true, false], ams([1, 1, 1]), &pol);
        sel.on_snapshot(&s, &s2);
        let t = 2 * P.sticky_ms;
        assert_eq!(connect(&mut sel, &s2, src, 6000, 40_200, t), 0);
        let moved = connect(&mut sel, &s2, src, 6001, 21, t);
        assert_ne!(moved, 2);
        assert_eq!(affinity(&sel, &w, t).unwrap().member.0, moved);
        assert_eq!(connect(&mut sel, &s2, src, 6002, 40_201, t), moved);
    }

    /// Without a wildcard_sticky port, nothing looks at wildcard keys (a stale one is ignored).
    #[test]
    fn wildcard_affinities_need_a_wildcard_sticky_port() {
        let s = policy_snap(1, [true; 3], ams([1, 1, 1]), &[(6, 21, Policy::Sticky)]);
        let mut sel = Selector::new(1 << 10, P, &s);
        let src = client(3);
        let w = wildcard_key(&pkt(src, 6, 1, 21, 0, 0).key);
        sel.conns_mut().insert(&w, MemberId(2), 0, 1000);
        assert_eq!(connect(&mut sel, &s, src, 1000, 40_000, 0), 0);
    }

    /// UDP has no handshake: a client's first datagram writes its affinity half-open (never
    /// evicting an established entry), its next one to the port promotes it; each refreshes.
    #[test]
    fn a_udp_sticky_affinity_is_half_open_until_the_clients_second_datagram() {
        let s = policy_snap(1, [true; 3], ams([1, 1, 1]), &[(17, 53, Policy::Sticky)]);
        let mut sel = Selector::new(1 << 10, P, &s);
        sel.set_handoff(true);
        let c = CoreCounters::new(8);
        let src = client(9);
        let d = pkt(src, 17, 1000, 53, 0, 0);
        let m = member_of(sel.select(&s, &d, 0, &c));
        let k = sticky_key(&d.key);
        assert!(affinity(&sel, &k, 0).unwrap().half_open);
        assert!(sel.handoffs().is_empty());
        let d2 = pkt(src, 17, 1001, 53, 0, 0);
        assert_eq!(member_of(sel.select(&s, &d2, 10, &c)), m);
        let a = affinity(&sel, &k, 10).unwrap();
        assert!(!a.half_open && a.member.0 == m);
        assert_eq!(sel.handoffs().len(), 1);
        assert_eq!(sel.handoffs()[0].key, k);
        assert_eq!(sel.conns().live(10 + P.sticky_ms - 1), 1);
        assert_eq!(sel.conns().live(10 + P.sticky_ms), 0);
        // A full table of established entries: a new client's datagram is served, with no
        // affinity, and evicts nothing.
        let mut tiny = Selector::new(8, P, &s);
        for i in 0..8u32 {
            tiny.conns_mut().insert(
                &pkt(client(100 + i), 6, 7, 80, 0, 0).key,
                MemberId(0),
                0,
                1000,
            );
        }
        let e = pkt(client(50), 17, 1000, 53, 0, 0);
        assert!(matches!(
            tiny.select(&s, &e, 1, &c),
            Selection::Member { .. }
        ));
        assert!(affinity(&tiny, &sticky_key(&e.key), 1).is_none());
        assert_eq!(tiny.conns().live(1), 8);
    }

    /// Affinities are handed off like flows: a completed connection to a sticky port records
    /// its flow and, the first time, its client's affinity.
    #[test]
    fn sticky_affinities_are_handed_off() {
        let s = policy_snap(1, [true; 3], ams([1, 1, 1]), &[(6, 80, Policy::Sticky)]);
        let mut sel = Selector::new(1 << 10, P, &s);
        sel.set_handoff(true);
        let src = client(4);
        let m = connect(&mut sel, &s, src, 1000, 80, 0);
        let keys: Vec<FlowKey> = sel.handoffs().iter().map(|r| r.key).collect();
        let flow = pkt(src, 6, 1000, 80, 0, 0).key;
        assert_eq!(keys, [flow, sticky_key(&flow)]);
        let rec = sel.handoffs()[1];
        assert_eq!(
            (rec.member.0, rec.state, rec.remaining_ms),
            (m, FlowState::Established, 60_000)
        );
        sel.clear_handoffs();
        connect(&mut sel, &s, src, 1001, 80, 5);
        assert_eq!(sel.handoffs().len(), 1, "a refresh is not handed off again");
    }

    /// CA8 with SC2: an affinity holds only while its member is in the port's eligible tier;
    /// when a higher selp tier comes up, the client moves there (and sticks).
    #[test]
    fn a_sticky_client_follows_the_selp_tier() {
        let pol = [(6, 80, Policy::Sticky)];
        let tiered = |top_up: bool| {
            let am = |id, selp| AliasMember {
                member: MemberId(id),
                selw: 1,
                selp,
            };
            policy_snap(
                1,
                [true, true, top_up],
                vec![am(0, 1), am(1, 1), am(2, 5)],
                &pol,
            )
        };
        let low = tiered(false);
        let mut sel = Selector::new(1 << 10, P, &low);
        let src = client(21);
        let first = connect(&mut sel, &low, src, 1000, 80, 0);
        assert!(first < 2, "only the selp 1 tier is up");
        let high = tiered(true);
        sel.on_snapshot(&low, &high);
        assert_eq!(connect(&mut sel, &high, src, 1001, 80, 1), 2);
        sel.on_snapshot(&high, &low);
        let back = connect(&mut sel, &low, src, 1002, 80, 2);
        assert!(back < 2);
        // The old connection stays where it was (SC1-style: established flows keep their member).
        let c = CoreCounters::new(8);
        assert_eq!(
            member_of(sel.select(&low, &pkt(src, 6, 1000, 80, TCP_ACK, 9), 3, &c)),
            first
        );
    }
}
