//! IPv4 fragments to an alias (issue 10; CA7, 000 §6.6.5: all fragments of one datagram reach
//! the member that owns its flow, whole).
//!
//! Only the first fragment (offset 0, MF set) carries the ports, so only it can be classified
//! and selected like any packet of its flow (policy, connection table, in_noalias refusal). This
//! per-core [`FragTable`] remembers, per datagram, where the first fragment went: keyed by
//! (source, destination, protocol, IP identification) — RFC 791's reassembly key — it maps to
//! a [`FragTarget`] (the member and the flow hash, or the drop reason of the first fragment),
//! and every other fragment of the datagram follows it.
//!
//! Out-of-order arrival (a later fragment before the first) is handled by *holding*: the
//! pipeline returns [`Verdict::Hold`](crate::Verdict::Hold)`(slot)`, the worker parks the
//! buffer in its [`HeldFragments`] at that slot, and when the first fragment resolves the
//! datagram the pipeline puts the slot on a ready list; [`Pipeline::release_held`] then
//! encapsulates the parked buffers for the member (or drops them with the first fragment's
//! reason). A held fragment whose first does not come within `timeout_ms` is freed and counted
//! (`fragment_timeout`). We hold instead of reassembling because the member reassembles anyway:
//! the router keeps no payload copies, only up to `max_held` buffers it already owns, and a
//! fragment it can send on at once is never delayed.
//!
//! Bounds (no allocation after [`FragTable::new`]; a flood of lone fragments cannot grow
//! memory and never touches the connection table, which is separate):
//! - `capacity` datagrams, in 4-way buckets placed by the keyed flow hash (an attacker cannot
//!   aim at one bucket). A datagram's entry lives `timeout_ms` from its first fragment (or its
//!   first held one) and is freed early once every byte of the datagram has been seen. Live
//!   entries are never evicted: a datagram whose bucket is full of live ones is dropped
//!   (`fragment_table_full`), so a flood of first fragments cannot break datagrams in flight.
//! - `max_held` parked fragments. Beyond that a fragment that must wait is dropped
//!   (`fragment_hold_full`).
//!
//! Refused shapes (`fragment_malformed`): a first fragment too short for its TCP or UDP header
//! (no ports, or TCP flags split across fragments), and TCP fragments at offset 8 (RFC 1858
//! §4: they can only serve to overwrite the first fragment's header). Fragments of other
//! protocols (ICMP) and fragments to the router's own addresses stay `fragment`.
//!
//! RSS caveat: the table is per core, so all fragments of a datagram must reach the same core.
//! NICs hash IPv4 fragments, the first included, on addresses only (the ports are missing
//! from all but one), which gives exactly that.

use crate::classify::PacketMeta;
use crate::hash::{FlowHashKey, FlowKey};
use crate::snapshot::MemberId;
use crate::verdict::DropReason;

/// Entries per bucket.
const WAYS: usize = 4;
/// "No slot" in the hold chains.
const NONE: u16 = u16::MAX;

/// Fragment handling settings ([`PipelineConfig::fragments`](crate::PipelineConfig)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentConfig {
    /// Datagrams in flight per core (rounded up to a power of two of 4-entry buckets). 48
    /// bytes each, allocated once: 192 KiB per core by default. Default 4096.
    pub capacity: usize,
    /// Milliseconds a datagram's entry, and a fragment held for its first, live. Default 2000:
    /// the fragments of one datagram leave the sender back to back, so anything slower is a
    /// lost first fragment (Linux's own reassembly waits 30 s, `ipfrag_time`, but it keeps
    /// payload; we only need to bridge reordering).
    pub timeout_ms: u64,
    /// Fragments one core may hold (buffers parked until their first fragment arrives), at
    /// most 65535. Default 128. 0 holds nothing: out-of-order fragments are dropped.
    pub max_held: usize,
}

impl Default for FragmentConfig {
    fn default() -> Self {
        FragmentConfig {
            capacity: 4096,
            timeout_ms: 2000,
            max_held: 128,
        }
    }
}

/// Where in a datagram a packet is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FragKind {
    /// Not a fragment.
    #[default]
    Whole,
    /// Offset 0, MF set: carries the ports.
    First,
    /// Offset > 0: no ports; follows the first.
    Rest,
}

/// What classify says about a fragment (all zero for a whole packet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frag {
    /// Whole, first, or a later fragment.
    pub kind: FragKind,
    /// The IPv4 identification.
    pub id: u16,
    /// Offset of this fragment's payload in the datagram, in bytes.
    pub offset: u16,
    /// Payload bytes this fragment carries (total length − header length).
    pub len: u16,
    /// MF: more fragments follow.
    pub more: bool,
}

/// The reassembly key (RFC 791): source, destination, protocol, identification.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: u32,
    /// Destination address (an alias).
    pub dst: u32,
    /// Identification.
    pub id: u16,
    /// Protocol (6 or 17).
    pub proto: u8,
}

impl FragKey {
    /// The key of a classified fragment.
    #[inline]
    pub fn of(meta: &PacketMeta) -> FragKey {
        FragKey {
            src: meta.key.src,
            dst: meta.key.dst,
            id: meta.frag.id,
            proto: meta.key.proto,
        }
    }

    /// Bucket hash, keyed like the connection table's (the id stands in for the ports).
    #[inline]
    fn hash(&self, key: &FlowHashKey) -> u32 {
        FlowKey {
            src: self.src,
            dst: self.dst,
            src_port: self.id,
            dst_port: 0,
            proto: self.proto,
        }
        .hash_keyed(key)
    }
}

/// Where the fragments of a datagram go: what happened to its first fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragTarget {
    /// The first fragment has not been seen yet.
    Pending,
    /// To this member, with the first fragment's flow hash (outer source and VXLAN source
    /// port follow the flow's).
    Member {
        /// The member.
        member: MemberId,
        /// The first fragment's [`PacketMeta::hash`].
        hash: u32,
    },
    /// The first fragment was dropped (or refused: `in_noalias`); so are the rest.
    Drop(DropReason),
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: FragKey,
    /// Free when `<= now` (0: never used).
    deadline: u64,
    target: FragTarget,
    /// Payload bytes seen (duplicates included; only frees the entry early).
    seen: u32,
    /// Payload bytes of the whole datagram, once its last fragment (MF clear) is seen; else 0.
    total: u32,
    /// First held fragment (a chain through [`Hold::next`]), while pending.
    held: u16,
}

const FREE_ENTRY: Entry = Entry {
    key: FragKey {
        src: 0,
        dst: 0,
        id: 0,
        proto: 0,
    },
    deadline: 0,
    target: FragTarget::Pending,
    seen: 0,
    total: 0,
    held: NONE,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HoldState {
    Free,
    /// Waiting for its first fragment, in its entry's chain.
    Waiting,
    /// On the ready list, with its outcome.
    Ready(FragTarget),
}

#[derive(Clone, Copy, Debug)]
struct Hold {
    meta: PacketMeta,
    state: HoldState,
    /// Its entry (index into `entries`), while waiting.
    entry: u32,
    /// Next in the entry's chain or in the free list.
    next: u16,
    deadline: u64,
}

/// What [`FragTable::first`] says about a first fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstLookup {
    /// The datagram is already resolved (a duplicate first fragment): follow it.
    Known(FragTarget),
    /// Select it, then [`FragTable::resolve`] this entry.
    Select(u32),
    /// No entry free in its bucket: drop it (`fragment_table_full`).
    Full,
}

/// What [`FragTable::rest`] says about a later fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestLookup {
    /// Send it on (member or drop).
    Go(FragTarget),
    /// Park it at this slot of the worker's [`HeldFragments`].
    Hold(u16),
    /// Dropped: `fragment_table_full` or `fragment_hold_full`.
    Drop(DropReason),
}

/// The per-core fragment table. See the module docs.
#[derive(Debug)]
pub struct FragTable {
    entries: Box<[Entry]>,
    bucket_mask: u32,
    holds: Box<[Hold]>,
    free_hold: u16,
    /// Slots ready to release: a ring of `ready_len` from `ready_start` (released in the
    /// order they became ready).
    ready: Box<[u16]>,
    ready_start: usize,
    ready_len: usize,
    /// Holds waiting (not free, not ready).
    waiting: usize,
    /// No waiting hold expires before this.
    next_expiry: u64,
    timeout_ms: u64,
    hash_key: FlowHashKey,
}

impl FragTable {
    /// A table for `cfg`, its entries placed with `hash_key`. Allocates everything it will
    /// ever use.
    pub fn new(cfg: &FragmentConfig, hash_key: FlowHashKey) -> Self {
        let buckets = cfg.capacity.div_ceil(WAYS).max(1).next_power_of_two();
        let max_held = cfg.max_held.min(usize::from(NONE));
        let holds = (0..max_held)
            .map(|i| Hold {
                meta: PacketMeta::default(),
                state: HoldState::Free,
                entry: 0,
                next: if i + 1 < max_held {
                    (i + 1) as u16
                } else {
                    NONE
                },
                deadline: 0,
            })
            .collect::<Box<[_]>>();
        FragTable {
            entries: vec![FREE_ENTRY; buckets * WAYS].into_boxed_slice(),
            bucket_mask: (buckets - 1) as u32,
            free_hold: if max_held > 0 { 0 } else { NONE },
            holds,
            ready: vec![0; max_held].into_boxed_slice(),
            ready_start: 0,
            ready_len: 0,
            waiting: 0,
            next_expiry: u64::MAX,
            timeout_ms: cfg.timeout_ms.max(1),
            hash_key,
        }
    }

    /// Entries (datagrams) the table can track.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Hold slots (the size the worker's [`HeldFragments`] must have).
    pub fn max_held(&self) -> usize {
        self.holds.len()
    }

    /// Live entries at `now_ms` (a walk of the table: for tests and inspection).
    pub fn live(&self, now_ms: u64) -> usize {
        self.entries.iter().filter(|e| e.deadline > now_ms).count()
    }

    /// Fragments held, waiting for their first.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Whether [`take_ready`](Self::take_ready) or [`expire`](Self::expire) have work at
    /// `now_ms`: the worker's cheap per-loop test.
    #[inline]
    pub fn has_work(&self, now_ms: u64) -> bool {
        self.ready_len > 0 || (self.waiting > 0 && now_ms >= self.next_expiry)
    }

    #[inline]
    fn bucket(&self, key: &FragKey) -> usize {
        (key.hash(&self.hash_key) & self.bucket_mask) as usize * WAYS
    }

    /// The live entry for `key`, if any.
    #[inline]
    fn find(&self, key: &FragKey, now_ms: u64) -> Option<usize> {
        let b = self.bucket(key);
        (b..b + WAYS).find(|&i| {
            let e = &self.entries[i];
            e.deadline > now_ms && e.key == *key
        })
    }

    /// A new entry for `key` (pending), or `None` if its bucket is full of live ones.
    #[inline]
    fn insert(&mut self, key: &FragKey, now_ms: u64) -> Option<usize> {
        let b = self.bucket(key);
        let i = (b..b + WAYS).find(|&i| self.entries[i].deadline <= now_ms)?;
        // An expired pending entry may still have held fragments (the expiry sweep has not
        // run yet): they time out now, before the entry is reused.
        self.time_out_chain(i);
        self.entries[i] = Entry {
            key: *key,
            deadline: now_ms.saturating_add(self.timeout_ms),
            ..FREE_ENTRY
        };
        Some(i)
    }

    /// Moves entry `i`'s held fragments to the ready list as timed out.
    fn time_out_chain(&mut self, i: usize) {
        self.release_chain(i, FragTarget::Drop(DropReason::FragmentTimeout));
    }

    /// Moves entry `i`'s held fragments to the ready list with `target`.
    fn release_chain(&mut self, i: usize, target: FragTarget) {
        let mut h = core::mem::replace(&mut self.entries[i].held, NONE);
        while h != NONE {
            let hold = &mut self.holds[usize::from(h)];
            let next = hold.next;
            hold.state = HoldState::Ready(target);
            hold.next = NONE;
            // Each slot is on the ready list at most once, and it has max_held places.
            let cap = self.ready.len();
            if self.ready_len < cap {
                self.ready[(self.ready_start + self.ready_len) % cap] = h;
                self.ready_len += 1;
            }
            self.waiting = self.waiting.saturating_sub(1);
            h = next;
        }
    }

    /// Counts `frag`'s bytes in entry `i`; frees the entry once the datagram is complete.
    #[inline]
    fn account(&mut self, i: usize, frag: &Frag) {
        let e = &mut self.entries[i];
        e.seen = e.seen.saturating_add(u32::from(frag.len));
        if !frag.more {
            e.total = u32::from(frag.offset) + u32::from(frag.len);
        }
        if e.total != 0 && e.seen >= e.total && e.held == NONE && e.target != FragTarget::Pending {
            e.deadline = 0;
        }
    }

    /// A first fragment arrived at `now_ms`.
    #[inline]
    pub fn first(&mut self, meta: &PacketMeta, now_ms: u64) -> FirstLookup {
        let key = FragKey::of(meta);
        match self.find(&key, now_ms) {
            Some(i) => match self.entries[i].target {
                FragTarget::Pending => FirstLookup::Select(i as u32),
                t => {
                    self.account(i, &meta.frag);
                    FirstLookup::Known(t)
                }
            },
            None => match self.insert(&key, now_ms) {
                Some(i) => FirstLookup::Select(i as u32),
                None => FirstLookup::Full,
            },
        }
    }

    /// The first fragment of entry `entry` (from [`FirstLookup::Select`]) went to `target`
    /// (never `Pending`): its held fragments become ready, later ones follow at once. The
    /// entry lives `timeout_ms` from now.
    pub fn resolve(&mut self, entry: u32, target: FragTarget, meta: &PacketMeta, now_ms: u64) {
        let i = entry as usize;
        if i >= self.entries.len() || target == FragTarget::Pending {
            return;
        }
        self.entries[i].target = target;
        self.entries[i].deadline = now_ms.saturating_add(self.timeout_ms);
        self.release_chain(i, target);
        self.account(i, &meta.frag);
    }

    /// A later fragment arrived at `now_ms`: send it on, or hold it (its `meta` is kept for
    /// the release), or drop it.
    #[inline]
    pub fn rest(&mut self, meta: &PacketMeta, now_ms: u64) -> RestLookup {
        let key = FragKey::of(meta);
        let i = match self.find(&key, now_ms) {
            Some(i) => {
                if let t @ (FragTarget::Member { .. } | FragTarget::Drop(_)) =
                    self.entries[i].target
                {
                    self.account(i, &meta.frag);
                    return RestLookup::Go(t);
                }
                i
            }
            None => {
                // Check for a hold slot first: a fragment that cannot be held must not take
                // an entry either.
                if self.free_hold == NONE {
                    return RestLookup::Drop(DropReason::FragmentHoldFull);
                }
                match self.insert(&key, now_ms) {
                    Some(i) => i,
                    None => return RestLookup::Drop(DropReason::FragmentTableFull),
                }
            }
        };
        let h = self.free_hold;
        if h == NONE {
            return RestLookup::Drop(DropReason::FragmentHoldFull);
        }
        let deadline = self.entries[i].deadline;
        let head = self.entries[i].held;
        let hold = &mut self.holds[usize::from(h)];
        self.free_hold = hold.next;
        *hold = Hold {
            meta: *meta,
            state: HoldState::Waiting,
            entry: i as u32,
            next: head,
            deadline,
        };
        self.entries[i].held = h;
        self.waiting += 1;
        self.next_expiry = self.next_expiry.min(deadline);
        self.account(i, &meta.frag);
        RestLookup::Hold(h)
    }

    /// Times out the held fragments whose first fragment did not come by `now_ms` (they join
    /// the ready list as `fragment_timeout`). Walks the hold slots only when one is due.
    pub fn expire(&mut self, now_ms: u64) {
        if self.waiting == 0 || now_ms < self.next_expiry {
            return;
        }
        let mut next = u64::MAX;
        for h in 0..self.holds.len() {
            let hold = self.holds[h];
            if hold.state != HoldState::Waiting {
                continue;
            }
            if hold.deadline <= now_ms {
                // Every fragment held for an entry shares its deadline: the whole chain goes.
                let i = hold.entry as usize;
                self.time_out_chain(i);
                self.entries[i].deadline = 0;
            } else {
                next = next.min(hold.deadline);
            }
        }
        self.next_expiry = next;
    }

    /// Takes the next ready slot: the slot, the held fragment's meta (with the member and
    /// hash of its datagram filled in) and where it goes. The slot is free again.
    pub fn take_ready(&mut self) -> Option<(u16, PacketMeta, FragTarget)> {
        if self.ready_len == 0 {
            return None;
        }
        let h = self.ready[self.ready_start];
        self.ready_start = (self.ready_start + 1) % self.ready.len();
        self.ready_len -= 1;
        let hold = &mut self.holds[usize::from(h)];
        let HoldState::Ready(target) = hold.state else {
            return None;
        };
        let mut meta = hold.meta;
        if let FragTarget::Member { member, hash } = target {
            meta.member = member;
            meta.hash = hash;
        }
        hold.state = HoldState::Free;
        hold.next = self.free_hold;
        self.free_hold = h;
        Some((h, meta, target))
    }

    /// Forgets every datagram and frees every hold slot (their fragments must be freed by the
    /// caller: [`HeldFragments::clear`]). Returns how many were waiting or ready.
    pub fn clear(&mut self) -> usize {
        let n = self.waiting + self.ready_len;
        *self = FragTable::new(
            &FragmentConfig {
                capacity: self.entries.len(),
                timeout_ms: self.timeout_ms,
                max_held: self.holds.len(),
            },
            self.hash_key,
        );
        n
    }
}

/// The worker's parking place for held fragments: one slot per hold slot of its pipeline's
/// [`FragTable`] (same size, [`Pipeline::max_held`](crate::Pipeline::max_held)), allocated
/// once. The worker owns the buffers (DPDK mbufs); dropping a slot's buffer frees it.
#[derive(Debug)]
pub struct HeldFragments<B> {
    slots: Box<[Option<B>]>,
    len: usize,
}

impl<B> HeldFragments<B> {
    /// `max_held` empty slots.
    pub fn new(max_held: usize) -> Self {
        HeldFragments {
            slots: (0..max_held).map(|_| None).collect(),
            len: 0,
        }
    }

    /// Parks `buf` at `slot` (from [`Verdict::Hold`](crate::Verdict::Hold)). Gives it back if
    /// the slot does not exist or is taken (the pipeline never says so; the caller drops it).
    pub fn put(&mut self, slot: u16, buf: B) -> Result<(), B> {
        match self.slots.get_mut(usize::from(slot)) {
            Some(s @ None) => {
                *s = Some(buf);
                self.len += 1;
                Ok(())
            }
            _ => Err(buf),
        }
    }

    /// Takes the buffer at `slot`.
    pub fn take(&mut self, slot: u16) -> Option<B> {
        let b = self.slots.get_mut(usize::from(slot))?.take();
        if b.is_some() {
            self.len -= 1;
        }
        b
    }

    /// Buffers parked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is parked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops (frees) every parked buffer; returns how many.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        self.slots.iter_mut().for_each(|s| *s = None);
        self.len = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::FlowKey;

    fn meta(id: u16, kind: FragKind, offset: u16, len: u16, more: bool) -> PacketMeta {
        PacketMeta {
            key: FlowKey {
                src: 0xc633_640a,
                dst: 0xc633_6464,
                src_port: 0,
                dst_port: 0,
                proto: 17,
            },
            frag: Frag {
                kind,
                id,
                offset,
                len,
                more,
            },
            ..PacketMeta::default()
        }
    }

    fn table(capacity: usize, max_held: usize) -> FragTable {
        FragTable::new(
            &FragmentConfig {
                capacity,
                timeout_ms: 100,
                max_held,
            },
            FlowHashKey::FIXED,
        )
    }

    const M1: FragTarget = FragTarget::Member {
        member: MemberId(1),
        hash: 77,
    };

    #[test]
    fn first_then_rest_follow_and_the_entry_frees_when_complete() {
        let mut t = table(16, 4);
        let first = meta(1, FragKind::First, 0, 1480, true);
        let FirstLookup::Select(e) = t.first(&first, 0) else {
            panic!("a new datagram is selected");
        };
        t.resolve(e, M1, &first, 0);
        assert_eq!(t.live(0), 1);
        let mid = meta(1, FragKind::Rest, 1480, 1480, true);
        assert_eq!(t.rest(&mid, 1), RestLookup::Go(M1));
        let last = meta(1, FragKind::Rest, 2960, 1048, false);
        assert_eq!(t.rest(&last, 2), RestLookup::Go(M1));
        assert_eq!(t.live(2), 0, "complete: freed before its timeout");
        // Another id is another datagram.
        assert!(matches!(
            t.first(&meta(2, FragKind::First, 0, 8, true), 3),
            FirstLookup::Select(_)
        ));
    }

    #[test]
    fn out_of_order_fragments_wait_for_their_first() {
        let mut t = table(16, 4);
        let last = meta(9, FragKind::Rest, 1480, 100, false);
        let RestLookup::Hold(h) = t.rest(&last, 0) else {
            panic!("held")
        };
        assert_eq!(t.waiting(), 1);
        assert!(!t.has_work(0));
        let first = meta(9, FragKind::First, 0, 1480, true);
        let FirstLookup::Select(e) = t.first(&first, 5) else {
            panic!("the pending entry is selected")
        };
        t.resolve(e, M1, &first, 5);
        assert!(t.has_work(5));
        let (slot, m, target) = t.take_ready().unwrap();
        assert_eq!((slot, target, m.member, m.hash), (h, M1, MemberId(1), 77));
        assert_eq!(m.frag.offset, 1480);
        assert!(t.take_ready().is_none());
        assert_eq!(t.live(5), 0, "1480 + 100 bytes seen: complete");
    }

    #[test]
    fn held_fragments_time_out_and_free_their_slots() {
        let mut t = table(16, 2);
        let a = meta(1, FragKind::Rest, 8, 8, true);
        let b = meta(1, FragKind::Rest, 16, 8, false);
        assert!(matches!(t.rest(&a, 0), RestLookup::Hold(_)));
        assert!(matches!(t.rest(&b, 10), RestLookup::Hold(_)));
        let c = meta(2, FragKind::Rest, 8, 8, true);
        assert_eq!(
            t.rest(&c, 20),
            RestLookup::Drop(DropReason::FragmentHoldFull)
        );
        assert!(!t.has_work(99));
        t.expire(99);
        assert_eq!(t.waiting(), 2);
        assert!(t.has_work(100));
        t.expire(100);
        assert_eq!(t.waiting(), 0);
        let timed_out = FragTarget::Drop(DropReason::FragmentTimeout);
        assert_eq!(t.take_ready().map(|r| r.2), Some(timed_out));
        assert_eq!(t.take_ready().map(|r| r.2), Some(timed_out));
        assert!(t.take_ready().is_none());
        assert_eq!(t.live(100), 0);
        // Slots are free again; a first fragment after the timeout is a new datagram.
        assert!(matches!(t.rest(&c, 101), RestLookup::Hold(_)));
        assert!(matches!(
            t.first(&meta(1, FragKind::First, 0, 8, true), 101),
            FirstLookup::Select(_)
        ));
    }

    #[test]
    fn a_reused_expired_entry_times_out_its_held_fragments_first() {
        // One bucket of 4: a fifth datagram reuses an expired entry before any sweep.
        let mut t = table(4, 8);
        for id in 0..4 {
            assert!(matches!(
                t.rest(&meta(id, FragKind::Rest, 8, 8, true), 0),
                RestLookup::Hold(_)
            ));
        }
        assert_eq!(
            t.first(&meta(4, FragKind::First, 0, 8, true), 50),
            FirstLookup::Full
        );
        assert!(matches!(
            t.first(&meta(4, FragKind::First, 0, 8, true), 100),
            FirstLookup::Select(_)
        ));
        assert_eq!(t.waiting(), 3);
        let (_, m, target) = t.take_ready().unwrap();
        assert_eq!(target, FragTarget::Drop(DropReason::FragmentTimeout));
        assert_eq!(m.frag.id, 0);
    }

    #[test]
    fn a_full_table_refuses_new_datagrams_but_keeps_live_ones() {
        let mut t = table(4, 0);
        let mut entries = Vec::new();
        for id in 0..4 {
            let f = meta(id, FragKind::First, 0, 8, true);
            let FirstLookup::Select(e) = t.first(&f, 0) else {
                panic!()
            };
            t.resolve(e, M1, &f, 0);
            entries.push(e);
        }
        assert_eq!(
            t.first(&meta(9, FragKind::First, 0, 8, true), 1),
            FirstLookup::Full
        );
        assert_eq!(
            t.rest(&meta(9, FragKind::Rest, 8, 8, false), 1),
            RestLookup::Drop(DropReason::FragmentHoldFull),
            "max_held 0: nothing waits"
        );
        for id in 0..4 {
            assert_eq!(
                t.rest(&meta(id, FragKind::Rest, 8, 8, true), 2),
                RestLookup::Go(M1)
            );
        }
        // A duplicate first fragment follows the datagram's member.
        assert_eq!(
            t.first(&meta(0, FragKind::First, 0, 8, true), 3),
            FirstLookup::Known(M1)
        );
    }

    #[test]
    fn a_flood_of_lone_fragments_stays_within_its_bounds() {
        let mut t = table(64, 16);
        let mut held = 0;
        let mut dropped = 0;
        for id in 0..10_000u32 {
            match t.rest(
                &meta(id as u16, FragKind::Rest, 8, 8, true),
                u64::from(id / 100),
            ) {
                RestLookup::Hold(_) => held += 1,
                RestLookup::Drop(_) => dropped += 1,
                RestLookup::Go(_) => panic!("no first fragment was seen"),
            }
            t.expire(u64::from(id / 100));
            while t.take_ready().is_some() {}
            assert!(t.waiting() <= 16);
            assert!(t.live(u64::from(id / 100)) <= 64);
        }
        assert!(
            held >= 16 && dropped > 9000,
            "{held} held, {dropped} dropped"
        );
    }

    #[test]
    fn an_entry_is_48_bytes() {
        assert!(
            core::mem::size_of::<Entry>() <= 48,
            "{}",
            core::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn held_fragments_store() {
        let mut s = HeldFragments::new(2);
        assert!(s.put(0, 'a').is_ok());
        assert_eq!(s.put(0, 'b'), Err('b'));
        assert_eq!(s.put(2, 'c'), Err('c'));
        assert!(s.put(1, 'd').is_ok());
        assert_eq!(s.len(), 2);
        assert_eq!(s.take(0), Some('a'));
        assert_eq!(s.take(0), None);
        assert_eq!(s.clear(), 1);
        assert!(s.is_empty());
    }
}
