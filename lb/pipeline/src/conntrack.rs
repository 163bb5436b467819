//! The per-core connection table: which member owns an established flow.
//!
//! A fixed-capacity, two-choice set-associative hash table (Katran's per-CPU LRU map, without
//! the LRU list): `capacity / 8` buckets of [`WAYS`] slots each. Every key has two candidate
//! buckets, `hash & mask` and `mix(hash) & mask` (an independent remix of the 32-bit flow hash,
//! see [`ConnTable::buckets`]); a key lives in at most one slot of the two. It is allocated once
//! in [`ConnTable::new`]; nothing afterwards allocates. Entries expire by time rather than being
//! deleted: an entry whose expiry is not after `now` is a miss, and its slot is reused by a later
//! insert.
//!
//! An insert takes the key's own entry if it has one in either bucket, else a free (empty or
//! expired) slot of the less loaded of its two buckets, the first on a tie ("power of two
//! choices": bucket loads stay within a few entries of the mean). Only when both buckets are
//! full of live entries does it evict one and say so ([`InsertOutcome::Evicted`]): the
//! [`FlowState::HalfOpen`] entry closest to expiry if there is one, else (inserting an
//! established or closing flow only) the live entry closest to expiry among the 16. A half-open
//! insert never evicts an established or closing entry, nor a half-open one younger than
//! [`HALF_OPEN_GRACE_MS`] (a genuine handshake in progress): with none to evict it is refused
//! (`None`), and the caller forwards the SYN without an entry (issue 9: a SYN flood of 20x the
//! table must not reset established connections, nor the genuine ones it overlaps). With one
//! choice, 8-way buckets at 25 % load still overflow now and then (an evicted live flow may be
//! re-selected to another member and its TCP connection broken). Taking the first bucket
//! whenever it has room, rather than the less loaded one, still evicts a few keys per 32k at
//! 50 % load (simulated: 3-13 per seed, 2^13 buckets); least-loaded keeps the fullest bucket at
//! 6-7 of 8 there and evicts none (see the tests).
//!
//! **Layout** (issue 12). A bucket is one 64-byte cache line holding what look-ups, inserts and
//! evictions decide on: per slot a 16-bit signature (hash bits the first bucket index does not
//! use, [`signature`]), the 32-bit expiry and the state (half-open, closing). The slots' keys,
//! members and ISNs are in a separate array of 32-byte entries (two per line, never straddling
//! one). A look-up reads its two bucket lines and, for a signature match among the live slots,
//! that slot's entry line: 3 lines, against 8 (two buckets of four lines of 32-byte entries)
//! before. A miss reads no entry line at all (unless a signature collides, about 16 in 2^14);
//! an insert decides free slots and victims from the bucket lines alone. Two keys with the same
//! signature in one bucket are told apart by the entry's full key. The pipeline issues the
//! bucket prefetches for a whole burst ([`ConnTable::probe`]), then the entry prefetches
//! ([`ConnTable::scan_probe`]), then looks up ([`ConnTable::find_probed`], which reuses what
//! both computed), like DPDK's `rte_hash_lookup_bulk`. Both arrays are asked onto transparent
//! huge pages ([`clua_prefetch::huge_boxed_slice`]): a 1M-flow table is ~80 MiB, whose 4 KiB
//! pages would make nearly every look-up a TLB miss too.
//!
//! **Time.** Expiries are the low 32 bits of a millisecond clock (`now_ms as u32`, wrapping
//! every ~49.7 days), 0 meaning an empty slot (an expiry that lands on 0 is stored as 1, a
//! millisecond late). The invariant: a slot is live at `now` iff its expiry `e` is not 0 and
//! `e - now` (wrapping) is in `1..=MAX_TIMEOUT_MS + 1`. Timeouts are clamped to
//! [`MAX_TIMEOUT_MS`] (2^30 ms, ~12.4 days; aliasd's config allows at most 24 h), so a live
//! entry always passes; a dead entry passes again only after it has been dead for
//! 2^32 - 2^30 - 1 ms (~37 days). Before that [`ConnTable::sweep_in`] must have zeroed it: the
//! worker's occupancy sweep ([`crate::Pipeline::sweep_occupancy`]) walks every slot in seconds
//! to minutes, and zeroes every dead slot it passes. A table nobody sweeps is correct for 37
//! days of clock (every test, bench and fuzz run).
//!
//! Bucket placement is keyed: the hash passed in is [`FlowKey::hash_keyed`] under the table's
//! [`FlowHashKey`] (see [`ConnTable::hash`]), never the NIC's RSS hash, whose Toeplitz key is
//! public. Without the key, nobody can precompute flows that fill both buckets of a chosen
//! connection and evict it.
//!
//! Each core owns its table, so nothing here is shared or locked. The table stores stable
//! [`MemberId`]s, so it survives snapshot swaps (established flows keep their member).

use clua_prefetch::{huge_boxed_slice, prefetch_read, scan8, Lanes};

use crate::handoff::FlowRecord;
use crate::hash::{FlowHashKey, FlowKey};
use crate::snapshot::MemberId;

/// Slots per bucket.
pub const WAYS: usize = 8;

/// Smallest capacity (one bucket).
pub const MIN_CAPACITY: usize = WAYS;

/// The longest timeout an entry can have; longer ones are clamped to it (see the module docs,
/// "Time").
pub const MAX_TIMEOUT_MS: u64 = 1 << 30;

/// `e - now` (wrapping) of a live slot is below this plus one.
const LIVE_WINDOW: u32 = MAX_TIMEOUT_MS as u32 + 1;

/// What a flow's entry says about its TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// Opened by a client SYN, and no other client segment seen yet (the router sees only
    /// client -> member packets, so the client's ACK of the SYN-ACK is the first sign that the
    /// handshake completed). Short timeout; the first to be evicted.
    HalfOpen,
    /// Past the handshake (or opened mid-flow, e.g. after a router restart). Never evicted to
    /// make room for a half-open entry.
    Established,
    /// FIN or RST seen. Like `Established` for eviction.
    Closing,
}

/// One bucket: what look-ups and inserts decide on, in one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    /// Per slot: [`signature`] of its key's hash (meaningful only while `expiry` is not 0).
    sig: [u16; WAYS],
    /// Per slot: the low 32 bits of the millisecond after which the entry is dead; 0 = empty.
    expiry: [u32; WAYS],
    /// Per slot: [`HALF_OPEN`] or [`CLOSING`] or neither (established).
    state: [u8; WAYS],
    _spare: [u8; WAYS],
}

const _: () = assert!(core::mem::size_of::<Bucket>() == 64);
const _: () = assert!(core::mem::size_of::<Entry>() == 32);

const EMPTY: Bucket = Bucket {
    sig: [0; WAYS],
    expiry: [0; WAYS],
    state: [0; WAYS],
    _spare: [0; WAYS],
};

/// One slot's cold part, read only to confirm a signature match or on a hit.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(32))]
struct Entry {
    /// `src << 32 | dst`.
    k0: u64,
    /// `src_port << 24 | dst_port << 8 | proto` (40 bits).
    k1: u64,
    /// Owning member id (below 2^30: ids index the snapshot's member list; the top two bits
    /// are masked off, as the state bits were when they lived here).
    member: u32,
    /// The initial sequence number of the SYN that opened the flow (0: opened by another
    /// segment, e.g. mid-flow after a router restart).
    isn: u32,
}

const CLOSING: u8 = 1 << 1;
const HALF_OPEN: u8 = 1 << 0;
const MEMBER_MASK: u32 = (1 << 30) - 1;

#[inline(always)]
fn state_bits(state: FlowState) -> u8 {
    match state {
        FlowState::HalfOpen => HALF_OPEN,
        FlowState::Established => 0,
        FlowState::Closing => CLOSING,
    }
}

#[inline(always)]
fn state_of(bits: u8) -> FlowState {
    if bits & CLOSING != 0 {
        FlowState::Closing
    } else if bits & HALF_OPEN != 0 {
        FlowState::HalfOpen
    } else {
        FlowState::Established
    }
}

#[inline(always)]
fn pack(key: &FlowKey) -> (u64, u64) {
    (
        (key.src as u64) << 32 | key.dst as u64,
        (key.src_port as u64) << 24 | (key.dst_port as u64) << 8 | key.proto as u64,
    )
}

#[inline(always)]
fn unpack(k0: u64, k1: u64) -> FlowKey {
    FlowKey {
        src: (k0 >> 32) as u32,
        dst: k0 as u32,
        src_port: (k1 >> 24) as u16,
        dst_port: (k1 >> 8) as u16,
        proto: k1 as u8,
    }
}

/// The 16-bit signature a slot keeps of its key's flow hash: the top half, which the first
/// bucket index (the low bits) does not use up to 2^16 buckets (512k slots), and shares 2 bits
/// with at 2^18 buckets. Keys of one bucket then differ in ~14 signature bits or more, so a
/// look-up confirms a false match in the entry line about once per 1,000 misses.
#[inline(always)]
pub fn signature(hash: u32) -> u16 {
    (hash >> 16) as u16
}

/// The table's clock: the low 32 bits of `now_ms` (see the module docs, "Time").
#[inline(always)]
fn clock(now_ms: u64) -> u32 {
    now_ms as u32
}

/// Whether a slot with expiry `e` is live at `now` (the invariant of the module docs).
#[inline(always)]
fn alive(e: u32, now: u32) -> bool {
    (e != 0) & (e.wrapping_sub(now).wrapping_sub(1) < LIVE_WINDOW)
}

/// The expiry `timeout_ms` (clamped to [`MAX_TIMEOUT_MS`]) after `now`, never 0 (empty).
#[inline(always)]
fn expiry_after(now: u32, timeout_ms: u64) -> u32 {
    let e = now.wrapping_add(timeout_ms.min(MAX_TIMEOUT_MS) as u32);
    if e == 0 {
        1
    } else {
        e
    }
}

/// Milliseconds a live slot with expiry `e` has left at `now` (1..=MAX_TIMEOUT_MS + 1).
#[inline(always)]
fn remaining(e: u32, now: u32) -> u32 {
    e.wrapping_sub(now)
}

impl Bucket {
    /// The slots' masks for `sig` at `now` (one vector scan, [`clua_prefetch::scan8`]).
    #[inline(always)]
    fn scan(&self, sig: u16, now: u32) -> Lanes {
        scan8(&self.sig, &self.expiry, sig, now, LIVE_WINDOW)
    }

    /// Bit `w` set: slot `w` is live at `now`.
    #[inline(always)]
    fn live_mask(&self, now: u32) -> u32 {
        self.scan(0, now).live
    }

    /// Bit `w` set: slot `w` is live at `now` and has signature `sig`.
    #[inline(always)]
    fn match_mask(&self, sig: u16, now: u32) -> u32 {
        self.scan(sig, now).matched
    }
}

/// How long a half-open entry is safe from eviction by another half-open insert: a second,
/// or half the half-open timeout if that is shorter. Without it a SYN flood churns every
/// half-open slot faster than a genuine client's ACK follows its SYN (one round trip): the
/// genuine entry, chosen by the round robin, is evicted, its ACK misses, goes by the consistent
/// hash to another member, and that member resets the connection (seen in the lab at 25,000
/// SYNs/s on a 1,024-entry table). With it, flood SYNs that find only young half-open entries
/// get no slot and are served statelessly by the consistent hash, like SYN cookies; the
/// genuine SYNs among them too, and their ACKs miss and take the same hash. `new_left` is the
/// inserted entry's (half-open) time left; half-open entries all share that timeout, so an
/// entry with `grace` less time left than the new one is `grace` old.
#[inline(always)]
fn half_open_grace(new_left: u64) -> u64 {
    (new_left / 2).min(HALF_OPEN_GRACE_MS)
}

/// See [`half_open_grace`].
pub const HALF_OPEN_GRACE_MS: u64 = 1_000;

/// A live entry found by [`ConnTable::find`], valid until the table is next modified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    index: u32,
    /// The owning member.
    pub member: MemberId,
    /// Whether FIN or RST has been seen on the flow.
    pub closing: bool,
    /// Whether the flow is half-open (see [`FlowState::HalfOpen`]).
    pub half_open: bool,
    /// The initial sequence number of the SYN that opened it (0: unknown).
    pub isn: u32,
}

/// What [`ConnTable::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The key had an entry (live, or expired and not yet swept) that now holds the new member
    /// and expiry.
    Updated,
    /// The key took an empty or expired slot.
    Inserted,
    /// The bucket was full of live entries; the one closest to expiry was evicted.
    Evicted,
}

/// What [`ConnTable::install`] did with a handed-over flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallOutcome {
    /// The record is in the table now (a new entry, or one replacing a mid-flow guess).
    Installed,
    /// The key's live entry already had the record's member; its expiry was extended.
    Refreshed,
    /// The key's live entry has another member and stays (this router saw its SYN, or
    /// neither side did).
    Kept,
    /// Both buckets were full of established and closing entries; nothing was written.
    Refused,
    /// The record had no time left.
    Expired,
}

/// A fixed-capacity flow -> member table. See the module docs.
#[derive(Debug)]
pub struct ConnTable {
    buckets: Box<[Bucket]>,
    entries: Box<[Entry]>,
    mask: u32,
    key: FlowHashKey,
    /// Bumped by every write that can change a bucket's match masks (a slot's signature, or a
    /// slot turning live or dead other than by the clock): a [`Probe`] taken before is stale.
    epoch: u32,
}

/// What the burst staging learnt of one key's two buckets, so that its look-up does not
/// recompute it (issue 12: the bucket indexes and the signature scan were computed three and
/// four times per packet). [`ConnTable::probe`] computes the buckets and starts loading them;
/// [`ConnTable::scan_probe`] records both buckets' match masks (once the lines have arrived)
/// and starts loading the matching entries; [`ConnTable::find_probed`] uses those masks if
/// nothing was written to the table since, and scans afresh otherwise (an earlier packet of
/// the burst may have inserted the very key). A probe is only ever a shortcut: every result
/// is the one [`ConnTable::find`] gives.
#[derive(Clone, Copy, Debug, Default)]
pub struct Probe {
    b1: u32,
    b2: u32,
    sig: u16,
    m1: u8,
    m2: u8,
    /// The table's epoch when the masks were taken; `scanned` false: no masks yet.
    epoch: u32,
    scanned: bool,
    /// The clock the masks were taken at (liveness depends on it).
    now: u32,
}

impl ConnTable {
    /// A table of at least `capacity` entries: rounded up to a power of two, at least
    /// [`MIN_CAPACITY`]. This is the only allocation the table ever makes: 40 bytes a slot (an
    /// eighth of its 64-byte bucket line, and its 32-byte entry).
    ///
    /// # Panics
    /// If the rounded capacity exceeds 2^35 entries (the bucket index is 32 bits).
    pub fn new(capacity: usize) -> Self {
        Self::with_key(capacity, FlowHashKey::FIXED)
    }

    /// [`new`](Self::new) with buckets keyed by `key` (the pipeline's
    /// [`PipelineConfig::hash_key`](crate::PipelineConfig::hash_key)).
    ///
    /// # Panics
    /// As [`new`](Self::new).
    pub fn with_key(capacity: usize, key: FlowHashKey) -> Self {
        let cap = capacity.max(MIN_CAPACITY).next_power_of_two();
        let buckets = cap / WAYS;
        assert!(
            buckets <= 1 << 32,
            "connection table capacity {cap} too large"
        );
        ConnTable {
            buckets: huge_boxed_slice(buckets, EMPTY),
            entries: huge_boxed_slice(cap, Entry::default()),
            mask: (buckets - 1) as u32,
            key,
            epoch: 0,
        }
    }

    /// The hash that places `key` in this table: [`FlowKey::hash_keyed`] under the table's key.
    /// Callers that pass a hash in (`find`, `insert_hashed`, `prefetch`) must pass this one
    /// (classify computes it once per packet, with the same key, as `PacketMeta::hash`).
    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> u32 {
        key.hash_keyed(&self.key)
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The first slot of each of the two candidate buckets of a key whose flow hash is `hash`:
    /// `hash & mask`, and the same bits of a multiply-xorshift remix of the whole hash (so the
    /// second choice depends on hash bits the first does not use), times [`WAYS`]. Both
    /// indexes are keyed because `hash` is ([`ConnTable::hash`]); the remix itself needs no key.
    /// They coincide for some keys (always, in a one-bucket table); everything below copes with
    /// that.
    #[inline(always)]
    pub fn buckets(&self, hash: u32) -> (usize, usize) {
        let (a, b) = self.bucket_pair(hash);
        (a * WAYS, b * WAYS)
    }

    /// [`buckets`](Self::buckets) as bucket indexes.
    #[inline(always)]
    fn bucket_pair(&self, hash: u32) -> (usize, usize) {
        let mut h = hash ^ (hash >> 16);
        h = h.wrapping_mul(0x7feb_352d);
        h ^= h >> 15;
        h = h.wrapping_mul(0x846c_a68b);
        h ^= h >> 16;
        ((hash & self.mask) as usize, (h & self.mask) as usize)
    }

    #[inline(always)]
    fn find_in(&self, b: usize, sig: u16, k0: u64, k1: u64, now: u32) -> Option<Slot> {
        let m = self.buckets.get(b)?.match_mask(sig, now);
        self.confirm(b, m, k0, k1)
    }

    /// Finds the live entry for `key`, whose [`FlowKey::hash`] is `hash`, in either of its
    /// buckets (the first one first: most keys live there).
    #[inline]
    pub fn find(&self, key: &FlowKey, hash: u32, now_ms: u64) -> Option<Slot> {
        debug_assert_eq!(hash, self.hash(key), "hash under another key");
        let (k0, k1) = pack(key);
        let (b1, b2) = self.bucket_pair(hash);
        let (sig, now) = (signature(hash), clock(now_ms));
        match self.find_in(b1, sig, k0, k1, now) {
            Some(s) => Some(s),
            None if b2 != b1 => self.find_in(b2, sig, k0, k1, now),
            None => None,
        }
    }

    /// Starts loading both bucket lines of the key whose hash is `hash` (a prefetch: returns at
    /// once; issued for a whole burst before any look-up, the misses overlap), and returns what
    /// it computed for [`scan_probe`](Self::scan_probe) and [`find_probed`](Self::find_probed).
    #[inline(always)]
    pub fn probe(&self, hash: u32) -> Probe {
        let (b1, b2) = self.bucket_pair(hash);
        if let Some(b) = self.buckets.get(b1) {
            prefetch_read(b);
        }
        if let Some(b) = self.buckets.get(b2) {
            prefetch_read(b);
        }
        Probe {
            b1: b1 as u32,
            b2: b2 as u32,
            sig: signature(hash),
            ..Probe::default()
        }
    }

    /// For a [`probe`](Self::probe)'s key: reads both bucket lines, records their match masks at
    /// `now_ms` in `p`, and starts loading the entry line of every live slot with the key's
    /// signature (normally one, or none for a new flow). It should follow `probe` by a burst's
    /// worth of work, for the bucket lines to have arrived.
    #[inline(always)]
    pub fn scan_probe(&self, p: &mut Probe, now_ms: u64) {
        let now = clock(now_ms);
        let mut masks = [0u32; 2];
        for (j, b) in [p.b1 as usize, p.b2 as usize].into_iter().enumerate() {
            let Some(bucket) = self.buckets.get(b) else {
                continue;
            };
            let mut m = bucket.match_mask(p.sig, now);
            masks[j] = m;
            while m != 0 {
                let w = m.trailing_zeros() as usize;
                m &= m - 1;
                if let Some(e) = self.entries.get(b * WAYS + w) {
                    prefetch_read(e);
                }
            }
        }
        p.m1 = masks[0] as u8;
        p.m2 = masks[1] as u8;
        p.epoch = self.epoch;
        p.now = now;
        p.scanned = true;
    }

    /// [`find`](Self::find) for the key `p` was [`probe`](Self::probe)d for (`hash` is the
    /// key's; `p` must come from this table): with `p`'s masks when they are still current
    /// (same epoch, same clock), else as `find`.
    #[inline(always)]
    pub fn find_probed(&self, key: &FlowKey, hash: u32, p: &Probe, now_ms: u64) -> Option<Slot> {
        let now = clock(now_ms);
        if !(p.scanned && p.epoch == self.epoch && p.now == now) {
            return self.find(key, hash, now_ms);
        }
        debug_assert_eq!(
            ((p.b1 as usize, p.b2 as usize), p.sig),
            (self.bucket_pair(hash), signature(hash)),
            "probe of another key"
        );
        let (k0, k1) = pack(key);
        match self.confirm(p.b1 as usize, u32::from(p.m1), k0, k1) {
            Some(s) => Some(s),
            None if p.b2 != p.b1 => self.confirm(p.b2 as usize, u32::from(p.m2), k0, k1),
            None => None,
        }
    }

    /// The slot of bucket `b` among the match mask `m` whose entry holds the key `(k0, k1)`.
    #[inline(always)]
    fn confirm(&self, b: usize, mut m: u32, k0: u64, k1: u64) -> Option<Slot> {
        let bucket = self.buckets.get(b)?;
        while m != 0 {
            let w = m.trailing_zeros() as usize;
            m &= m - 1;
            let i = b * WAYS + w;
            let e = self.entries.get(i)?;
            if e.k0 == k0 && e.k1 == k1 {
                let st = bucket.state[w];
                return Some(Slot {
                    index: i as u32,
                    member: MemberId(e.member & MEMBER_MASK),
                    closing: st & CLOSING != 0,
                    half_open: st & HALF_OPEN != 0,
                    isn: e.isn,
                });
            }
        }
        None
    }

    /// The member owning `key`, if its entry is live. Expired entries are misses.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, now_ms: u64) -> Option<MemberId> {
        self.find(key, self.hash(key), now_ms).map(|s| s.member)
    }

    /// Refreshes a found entry: it now expires `timeout_ms` after `now_ms`, and is closing if
    /// `closing`, else established. A slot from before the last [`insert`](Self::insert) may
    /// name another flow's entry; callers refresh right after `find`.
    #[inline]
    pub fn refresh(&mut self, slot: Slot, now_ms: u64, timeout_ms: u64, closing: bool) {
        let state = if closing {
            FlowState::Closing
        } else {
            FlowState::Established
        };
        self.refresh_as(slot, now_ms, timeout_ms, state);
    }

    /// [`refresh`](Self::refresh) into any state.
    #[inline]
    pub fn refresh_as(&mut self, slot: Slot, now_ms: u64, timeout_ms: u64, state: FlowState) {
        let i = slot.index as usize;
        if let Some(b) = self.buckets.get_mut(i / WAYS) {
            b.expiry[i % WAYS] = expiry_after(clock(now_ms), timeout_ms);
            b.state[i % WAYS] = state_bits(state);
        }
        if timeout_ms == 0 {
            // Dead at once: no longer a match.
            self.epoch = self.epoch.wrapping_add(1);
        }
    }

    /// Refreshes `key`'s live entry, keeping its state. Returns false on a miss.
    pub fn touch(&mut self, key: &FlowKey, now_ms: u64, timeout_ms: u64) -> bool {
        match self.find(key, self.hash(key), now_ms) {
            Some(slot) => {
                let state = if slot.closing {
                    FlowState::Closing
                } else if slot.half_open {
                    FlowState::HalfOpen
                } else {
                    FlowState::Established
                };
                self.refresh_as(slot, now_ms, timeout_ms, state);
                true
            }
            None => false,
        }
    }

    /// Marks `key`'s live entry as closing and makes it expire `timeout_ms` after `now_ms`
    /// (FIN or RST seen). Returns false on a miss.
    pub fn set_timeout(&mut self, key: &FlowKey, now_ms: u64, timeout_ms: u64) -> bool {
        match self.find(key, self.hash(key), now_ms) {
            Some(slot) => {
                self.refresh(slot, now_ms, timeout_ms, true);
                true
            }
            None => false,
        }
    }

    /// Records that `key` (hash `hash`) belongs to `member`, in `state`, until
    /// `now_ms + timeout_ms` (at most [`MAX_TIMEOUT_MS`]).
    ///
    /// Reuses the key's own entry (live, or expired and not yet swept) if either bucket has
    /// one, else the first empty or expired slot of the bucket with more of them (the first
    /// bucket on a tie), else evicts ([`InsertOutcome::Evicted`]) the half-open entry closest
    /// to expiry among both buckets, else, unless `state` is half-open, the live entry closest
    /// to expiry. `None`: a half-open insert found both buckets full of established and closing
    /// entries, and nothing was written.
    #[inline]
    #[allow(clippy::too_many_arguments)] // the packet path passes what it has already computed
    pub fn insert_hashed(
        &mut self,
        key: &FlowKey,
        hash: u32,
        member: MemberId,
        now_ms: u64,
        timeout_ms: u64,
        state: FlowState,
        isn: u32,
    ) -> Option<InsertOutcome> {
        debug_assert_eq!(hash, self.hash(key), "hash under another key");
        let (k0, k1) = pack(key);
        let new = Entry {
            k0,
            k1,
            member: member.0 & MEMBER_MASK,
            isn,
        };
        let now = clock(now_ms);
        self.put(new, hash, now, expiry_after(now, timeout_ms), state, true)
    }

    /// Writes `new` (whose key hashes to `hash`) to expire at `expiry`, as
    /// [`insert_hashed`](Self::insert_hashed) describes; with `evict_established` false, a full
    /// pair of buckets gives up only a half-open entry, whatever `state` is (installs, see
    /// [`install`](Self::install)). Everything but the key's own entry is decided from the
    /// bucket lines.
    #[inline]
    fn put(
        &mut self,
        new: Entry,
        hash: u32,
        now: u32,
        expiry: u32,
        state: FlowState,
        evict_established: bool,
    ) -> Option<InsertOutcome> {
        let (b1, b2) = self.bucket_pair(hash);
        let sig = signature(hash);
        let pair = [b1, b2];
        let pair = if b1 == b2 { &pair[..1] } else { &pair[..] };
        // One scan per bucket: the key's own entry (live or expired), then the free slots.
        let mut scans = [None; 2];
        for (j, &b) in pair.iter().enumerate() {
            scans[j] = self.buckets.get(b).map(|bk| bk.scan(sig, now));
        }
        for (j, &b) in pair.iter().enumerate() {
            let mut m = scans[j].map_or(0, |l| l.used);
            while m != 0 {
                let w = m.trailing_zeros() as usize;
                m &= m - 1;
                let i = b * WAYS + w;
                if self
                    .entries
                    .get(i)
                    .is_some_and(|e| e.k0 == new.k0 && e.k1 == new.k1)
                {
                    self.write(i, sig, expiry, state, new);
                    return Some(InsertOutcome::Updated);
                }
            }
        }
        // Per bucket: its live slots.
        let live = scans.map(|l| l.map_or(WAYS_MASK, |l| l.live));
        let free = |j: usize| (!live[j] & WAYS_MASK).count_ones();
        let first_free =
            |j: usize, b: usize| b * WAYS + (!live[j] & WAYS_MASK).trailing_zeros() as usize;
        // The less loaded bucket, the first on a tie (and when both are the same bucket).
        let (i, outcome) = if free(0) > 0 && (pair.len() == 1 || free(0) >= free(1)) {
            (first_free(0, b1), InsertOutcome::Inserted)
        } else if pair.len() == 2 && free(1) > 0 {
            (first_free(1, b2), InsertOutcome::Inserted)
        } else {
            // Both full of live entries. The live entry closest to expiry, and the half-open one.
            // Half-open entries all run on one timeout, so the one closest to expiry is the one
            // whose client was heard from least recently.
            let mut oldest = (usize::MAX, u32::MAX);
            let mut oldest_half_open = (usize::MAX, u32::MAX);
            for &b in pair {
                let Some(bk) = self.buckets.get(b) else {
                    continue;
                };
                for w in 0..WAYS {
                    let left = remaining(bk.expiry[w], now);
                    if left < oldest.1 {
                        oldest = (b * WAYS + w, left);
                    }
                    if bk.state[w] & HALF_OPEN != 0 && left < oldest_half_open.1 {
                        oldest_half_open = (b * WAYS + w, left);
                    }
                }
            }
            let new_left = u64::from(remaining(expiry, now));
            if oldest_half_open.0 != usize::MAX
                && (state != FlowState::HalfOpen
                    || u64::from(oldest_half_open.1) + half_open_grace(new_left) <= new_left)
            {
                (oldest_half_open.0, InsertOutcome::Evicted)
            } else if state != FlowState::HalfOpen && evict_established && oldest.0 != usize::MAX {
                (oldest.0, InsertOutcome::Evicted)
            } else {
                return None;
            }
        };
        self.write(i, sig, expiry, state, new);
        Some(outcome)
    }

    #[inline(always)]
    fn write(&mut self, i: usize, sig: u16, expiry: u32, state: FlowState, new: Entry) {
        self.epoch = self.epoch.wrapping_add(1);
        if let (Some(b), Some(e)) = (self.buckets.get_mut(i / WAYS), self.entries.get_mut(i)) {
            b.sig[i % WAYS] = sig;
            b.expiry[i % WAYS] = expiry;
            b.state[i % WAYS] = state_bits(state);
            *e = new;
        }
    }

    /// [`insert_hashed`](Self::insert_hashed) of an established flow (which always finds a
    /// slot), computing the hash.
    pub fn insert(
        &mut self,
        key: &FlowKey,
        member: MemberId,
        now_ms: u64,
        timeout_ms: u64,
    ) -> InsertOutcome {
        let hash = self.hash(key);
        self.insert_hashed(
            key,
            hash,
            member,
            now_ms,
            timeout_ms,
            FlowState::Established,
            0,
        )
        // Unreachable: only a half-open insert is refused.
        .unwrap_or(InsertOutcome::Evicted)
    }

    /// Hands every live entry among the `count` slots from `from_slot` on (wrapping at the
    /// end of the table) to `f`, as a [`FlowRecord`] with the time it has left after `now_ms`.
    /// Returns the slot to continue from, so that a caller walking a few slots at a time (a
    /// worker's periodic hand-off walk, issue 9) covers the whole table in
    /// [`capacity`](Self::capacity) slots. `count` above the capacity walks the table once.
    pub fn export(
        &self,
        from_slot: usize,
        count: usize,
        now_ms: u64,
        mut f: impl FnMut(FlowRecord),
    ) -> usize {
        let cap = self.entries.len();
        let now = clock(now_ms);
        let mut i = from_slot % cap;
        for _ in 0..count.min(cap) {
            if let (Some(b), Some(e)) = (self.buckets.get(i / WAYS), self.entries.get(i)) {
                let (w, exp) = (i % WAYS, b.expiry[i % WAYS]);
                if alive(exp, now) {
                    f(FlowRecord {
                        key: unpack(e.k0, e.k1),
                        member: MemberId(e.member & MEMBER_MASK),
                        state: state_of(b.state[w]),
                        isn: e.isn,
                        remaining_ms: remaining(exp, now),
                    });
                }
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        i
    }

    /// Installs a flow another router (or this router before a restart) handed over, until
    /// `now_ms + rec.remaining_ms` (at most [`MAX_TIMEOUT_MS`]). The rule (issue 9), in order:
    ///
    /// 1. `remaining_ms` 0: nothing happens ([`InstallOutcome::Expired`]).
    /// 2. No live entry for the key: inserted ([`InstallOutcome::Installed`]), like a half-open
    ///    insert for eviction: it may take a free slot or evict a half-open entry, never an
    ///    established or closing one ([`InstallOutcome::Refused`] then). A flow this router
    ///    forwards must not lose its member to one it may never see.
    /// 3. A live entry with the same member: its expiry becomes the later of the two, and a
    ///    half-open entry takes the record's state (the handshake was seen completing
    ///    elsewhere) ([`InstallOutcome::Refreshed`]). This is how the periodic walk keeps a
    ///    long-lived flow alive in the tables of routers that do not see its packets.
    /// 4. A live entry with another member that was opened mid-flow here (isn 0, chosen by the
    ///    consistent hash after a miss), while the record's was opened by a SYN (isn != 0): the
    ///    record's sender chose the member the connection was opened with, so the entry is
    ///    replaced ([`InstallOutcome::Installed`]).
    /// 5. Otherwise the local entry stays ([`InstallOutcome::Kept`]): a flow whose SYN this
    ///    router saw keeps its member, and of two mid-flow guesses neither replaces the other
    ///    (two routers would otherwise swap theirs on every refresh).
    pub fn install(&mut self, rec: &FlowRecord, now_ms: u64) -> InstallOutcome {
        self.install_as(rec, now_ms, false)
    }

    /// Installs a record another worker of this router made (issue 12: a client's sticky or
    /// wildcard_sticky affinity, shared so that every worker sends the client's connections to
    /// one member whichever worker RSS gives them). As [`install`](Self::install), except for
    /// a live entry with another member: the later-expiring of the two wins. Every affinity is
    /// written with the same sticky timeout, so the later expiry is the later write, the
    /// client's newest choice (its member went down and it moved); an older record, such as
    /// a periodic walk's copy of the sibling's stale entry, loses to it
    /// ([`InstallOutcome::Kept`]).
    pub fn adopt(&mut self, rec: &FlowRecord, now_ms: u64) -> InstallOutcome {
        self.install_as(rec, now_ms, true)
    }

    fn install_as(&mut self, rec: &FlowRecord, now_ms: u64, newer_wins: bool) -> InstallOutcome {
        if rec.remaining_ms == 0 {
            return InstallOutcome::Expired;
        }
        let key = &rec.key;
        let hash = self.hash(key);
        let now = clock(now_ms);
        let expiry = expiry_after(now, u64::from(rec.remaining_ms));
        if let Some(slot) = self.find(key, hash, now_ms) {
            let i = slot.index as usize;
            let (Some(b), Some(e)) = (self.buckets.get_mut(i / WAYS), self.entries.get_mut(i))
            else {
                return InstallOutcome::Kept;
            };
            let w = i % WAYS;
            if slot.member == MemberId(rec.member.0 & MEMBER_MASK) {
                if remaining(expiry, now) > remaining(b.expiry[w], now) {
                    b.expiry[w] = expiry;
                }
                if slot.half_open {
                    b.state[w] = state_bits(rec.state);
                    if e.isn == 0 {
                        e.isn = rec.isn;
                    }
                }
                return InstallOutcome::Refreshed;
            }
            let replace = if newer_wins {
                remaining(expiry, now) > remaining(b.expiry[w], now)
            } else {
                slot.isn == 0 && rec.isn != 0
            };
            if !replace {
                return InstallOutcome::Kept;
            }
            b.expiry[w] = expiry;
            b.state[w] = state_bits(rec.state);
            e.member = rec.member.0 & MEMBER_MASK;
            e.isn = rec.isn;
            return InstallOutcome::Installed;
        }
        let (k0, k1) = pack(key);
        let new = Entry {
            k0,
            k1,
            member: rec.member.0 & MEMBER_MASK,
            isn: rec.isn,
        };
        match self.put(new, hash, now, expiry, rec.state, false) {
            Some(_) => InstallOutcome::Installed,
            None => InstallOutcome::Refused,
        }
    }

    /// Number of live entries at `now_ms` (a full scan, for tests and metrics).
    pub fn live(&self, now_ms: u64) -> usize {
        let now = clock(now_ms);
        self.buckets
            .iter()
            .map(|b| b.live_mask(now).count_ones() as usize)
            .sum()
    }

    /// Number of live entries at `now_ms` among the `count` slots from `from` (clamped to the
    /// table).
    pub fn live_in(&self, from: usize, count: usize, now_ms: u64) -> usize {
        let now = clock(now_ms);
        let (from, to) = self.clamp(from, count);
        (from..to)
            .filter(|&i| {
                self.buckets
                    .get(i / WAYS)
                    .is_some_and(|b| alive(b.expiry[i % WAYS], now))
            })
            .count()
    }

    /// [`live_in`](Self::live_in), and empties every dead slot among them: one step of the
    /// occupancy sweep, which keeps the wrapping clock's invariant (module docs, "Time"). An
    /// emptied slot's key is forgotten: a later insert of it is `Inserted`, not `Updated`.
    pub fn sweep_in(&mut self, from: usize, count: usize, now_ms: u64) -> usize {
        let now = clock(now_ms);
        let (from, to) = self.clamp(from, count);
        let mut live = 0;
        for i in from..to {
            if let Some(b) = self.buckets.get_mut(i / WAYS) {
                let w = i % WAYS;
                if alive(b.expiry[w], now) {
                    live += 1;
                } else {
                    b.expiry[w] = 0;
                    b.state[w] = 0;
                    b.sig[w] = 0;
                }
            }
        }
        live
    }

    fn clamp(&self, from: usize, count: usize) -> (usize, usize) {
        let from = from.min(self.entries.len());
        (from, from.saturating_add(count).min(self.entries.len()))
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.buckets.fill(EMPTY);
        self.entries.fill(Entry::default());
    }
}

/// All [`WAYS`] bits of a bucket mask.
const WAYS_MASK: u32 = (1 << WAYS) - 1;

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            src: 0xc633_6400 | (i >> 16),
            dst: 0xc633_6464,
            src_port: i as u16,
            dst_port: 80,
            proto: 6,
        }
    }

    #[test]
    fn capacity_rounds_up_to_a_power_of_two_of_at_least_one_bucket() {
        assert_eq!(ConnTable::new(0).capacity(), 8);
        assert_eq!(ConnTable::new(1).capacity(), 8);
        assert_eq!(ConnTable::new(9).capacity(), 16);
        assert_eq!(ConnTable::new(65536).capacity(), 65536);
        assert_eq!(ConnTable::new(65537).capacity(), 131072);
    }

    #[test]
    fn insert_lookup_and_expiry() {
        let mut t = ConnTable::new(64);
        let k = key(1);
        assert_eq!(t.lookup(&k, 0), None);
        assert_eq!(
            t.insert(&k, MemberId(3), 1000, 500),
            InsertOutcome::Inserted
        );
        assert_eq!(t.lookup(&k, 1000), Some(MemberId(3)));
        assert_eq!(t.lookup(&k, 1499), Some(MemberId(3)));
        assert_eq!(t.lookup(&k, 1500), None, "expired entries are misses");
        assert_eq!(t.lookup(&key(2), 1000), None);
        // Re-inserting the same key updates in place.
        assert_eq!(t.insert(&k, MemberId(4), 1000, 500), InsertOutcome::Updated);
        assert_eq!(t.lookup(&k, 1000), Some(MemberId(4)));
        assert_eq!(t.live(1000), 1);
        // touch extends, set_timeout shortens and marks closing.
        assert!(t.touch(&k, 1400, 500));
        assert_eq!(t.lookup(&k, 1800), Some(MemberId(4)));
        assert!(t.set_timeout(&k, 1800, 10));
        let s = t.find(&k, k.hash(), 1805).unwrap();
        assert!(s.closing);
        assert_eq!(t.lookup(&k, 1810), None);
        assert!(
            !t.touch(&k, 1810, 500),
            "touch does not revive a dead entry"
        );
        t.clear();
        assert_eq!(t.live(0), 0);
    }

    #[test]
    fn full_bucket_evicts_the_entry_closest_to_expiry() {
        // One bucket: every key collides.
        let mut t = ConnTable::new(8);
        for i in 0..8 {
            let out = t.insert(&key(i), MemberId(i), 0, 1000 + i as u64);
            assert_eq!(out, InsertOutcome::Inserted);
        }
        assert_eq!(
            t.insert(&key(100), MemberId(100), 0, 5000),
            InsertOutcome::Evicted
        );
        assert_eq!(t.lookup(&key(0), 0), None, "key 0 expired soonest");
        assert_eq!(t.lookup(&key(100), 0), Some(MemberId(100)));
        for i in 1..8 {
            assert_eq!(t.lookup(&key(i), 0), Some(MemberId(i)));
        }
        // Once some expire, their slots are reused without eviction.
        assert_eq!(
            t.insert(&key(200), MemberId(7), 1002, 10),
            InsertOutcome::Inserted
        );
        assert_eq!(t.live(1002), 7);
    }

    /// SplitMix64: a seeded stream of random flow keys.
    fn random_keys(seed: u64, n: usize) -> Vec<FlowKey> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let r = crate::hash::mix64(x);
                FlowKey {
                    src: (r >> 32) as u32,
                    dst: 0xc633_6464,
                    src_port: r as u16,
                    dst_port: (r >> 16) as u16 % 4 + 80,
                    proto: 6,
                }
            })
            .collect()
    }

    #[test]
    fn half_full_table_of_random_keys_never_evicts() {
        // Two choices: at 50 % load no key finds both of its buckets full (one choice would
        // overflow ~0.5 % of buckets here).
        let cap = 1 << 16;
        for seed in [1, 2, 3, 0xdead_beef, 0x5eed_0000_0000_0001] {
            let mut t = ConnTable::new(cap);
            let keys = random_keys(seed, cap / 2);
            for (i, k) in keys.iter().enumerate() {
                let out = t.insert(k, MemberId(i as u32), 0, 60_000);
                assert_ne!(
                    out,
                    InsertOutcome::Evicted,
                    "seed {seed:#x}: key {i} evicted"
                );
            }
            assert_eq!(t.live(0), keys.len(), "seed {seed:#x}");
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(t.lookup(k, 1), Some(MemberId(i as u32)), "seed {seed:#x}");
            }
        }
    }

    #[test]
    fn overfull_table_evicts_and_every_eviction_is_reported() {
        let cap = 1 << 12;
        for seed in [7, 8, 9] {
            let mut t = ConnTable::new(cap);
            let keys = random_keys(seed, cap * 5 / 4);
            let mut evictions = 0;
            for (i, k) in keys.iter().enumerate() {
                match t.insert(k, MemberId(i as u32), 0, 60_000 + i as u64) {
                    InsertOutcome::Evicted => evictions += 1,
                    InsertOutcome::Inserted => {}
                    InsertOutcome::Updated => panic!("random keys repeat"),
                }
            }
            // Every insert either added a live entry or replaced one: the counts add up.
            assert!(evictions >= keys.len() - cap, "{evictions} evictions");
            assert_eq!(t.live(0), keys.len() - evictions);
            let found = keys
                .iter()
                .enumerate()
                .filter(|&(i, k)| t.lookup(k, 1) == Some(MemberId(i as u32)))
                .count();
            assert_eq!(found, keys.len() - evictions, "seed {seed}");
        }
    }

    #[test]
    fn a_key_in_its_second_bucket_is_found_updated_and_not_duplicated() {
        // Fill the first buckets of many keys, then check the overflow went to the second
        // bucket and stays unique through re-inserts and expiry.
        let mut t = ConnTable::new(64); // 8 buckets
        let keys = random_keys(42, 200);
        let mut second = None;
        for (i, k) in keys.iter().enumerate() {
            let (b1, b2) = t.buckets(k.hash());
            let full = t.buckets[b1 / WAYS].expiry.iter().all(|&e| e != 0);
            if t.insert(k, MemberId(i as u32), 0, 1000) == InsertOutcome::Evicted {
                break;
            }
            if full && b1 != b2 {
                second = Some(i);
                break;
            }
        }
        let i = second.expect("some key overflowed into its second bucket");
        let k = keys[i];
        let (_, b2) = t.buckets(k.hash());
        let slot = t.find(&k, k.hash(), 0).unwrap();
        assert!((b2..b2 + WAYS).contains(&(slot.index as usize)));
        assert_eq!(t.insert(&k, MemberId(99), 0, 1000), InsertOutcome::Updated);
        assert_eq!(t.lookup(&k, 0), Some(MemberId(99)));
        // Once expired, re-inserting reuses the key's own slot (no second copy appears).
        let live = t.live(0);
        assert_eq!(
            t.insert(&k, MemberId(5), 2000, 1000),
            InsertOutcome::Updated
        );
        assert_eq!(t.find(&k, k.hash(), 2000).unwrap().index, slot.index);
        assert_eq!(t.live(0), live);
    }

    #[test]
    fn million_entry_table_fills_with_few_evictions() {
        let cap = 1 << 20;
        let mut t = ConnTable::new(cap);
        assert_eq!(t.capacity(), cap);
        let fill = |t: &mut ConnTable, range: std::ops::Range<u32>| {
            range
                .filter(|&i| {
                    t.insert(&key(i), MemberId(i & 1023), 0, 60_000) == InsertOutcome::Evicted
                })
                .count()
        };
        // Half full: two 8-way choices per key (mean load 4 per bucket) never overflow.
        let half = cap as u32 / 2;
        let mut evictions = fill(&mut t, 0..half);
        assert_eq!(evictions, 0, "{evictions} evictions at 50 % load");
        // 90 % full: some inserts find both buckets full.
        let n = cap as u32 / 10 * 9;
        evictions += fill(&mut t, half..n);
        assert!(
            evictions < n as usize / 8,
            "{evictions} evictions at 90 % load"
        );
        // Every insert is either live or was evicted, and every live entry is found.
        assert_eq!(t.live(0), n as usize - evictions);
        let hits = (0..n)
            .filter(|&i| t.lookup(&key(i), 1) == Some(MemberId(i & 1023)))
            .count();
        assert_eq!(hits, n as usize - evictions);
        // Filling far past capacity evicts and keeps every slot in use.
        fill(&mut t, n..cap as u32 * 4);
        assert_eq!(t.live(0), cap);
    }

    fn insert_as(
        t: &mut ConnTable,
        k: &FlowKey,
        m: u32,
        now: u64,
        timeout: u64,
        state: FlowState,
    ) -> Option<InsertOutcome> {
        let h = t.hash(k);
        t.insert_hashed(k, h, MemberId(m), now, timeout, state, 7)
    }

    /// Issue 9: in a full bucket the oldest half-open entry goes first; a half-open insert
    /// never evicts an established or closing entry (it is refused); an established insert
    /// evicts a half-open entry before any established one, even one closer to expiry.
    #[test]
    fn half_open_entries_are_evicted_first_and_never_evict_established_ones() {
        use FlowState::*;
        // One bucket: every key collides.
        let mut t = ConnTable::new(8);
        for i in 0..4 {
            assert_eq!(
                insert_as(&mut t, &key(i), i, 0, 100 + i as u64, Established),
                Some(InsertOutcome::Inserted)
            );
        }
        for i in 4..8 {
            // Half-open entries expire later than the established ones here, so "closest to
            // expiry" alone would evict an established entry.
            assert_eq!(
                insert_as(&mut t, &key(i), i, 0, 1000 + i as u64, HalfOpen),
                Some(InsertOutcome::Inserted)
            );
        }
        // A half-open entry younger than the grace (half of 1010 ms here) is safe from
        // another half-open insert: refused, nothing evicted.
        assert_eq!(insert_as(&mut t, &key(9), 9, 1, 1010, HalfOpen), None);
        assert_eq!(t.lookup(&key(4), 1), Some(MemberId(4)));
        // One whose expiry is at least the grace (1000 ms) before the new entry's is old enough.
        assert_eq!(
            insert_as(&mut t, &key(10), 10, 1, 2100, HalfOpen),
            Some(InsertOutcome::Evicted)
        );
        assert_eq!(
            t.lookup(&key(4), 1),
            None,
            "the oldest half-open entry went"
        );
        assert_eq!(
            insert_as(&mut t, &key(11), 11, 1, 1000, Established),
            Some(InsertOutcome::Evicted)
        );
        assert_eq!(
            t.lookup(&key(5), 1),
            None,
            "then the next oldest half-open one (an established insert needs no grace)"
        );
        for i in (0..4).chain(6..8).chain(10..12) {
            assert_eq!(t.lookup(&key(i), 1), Some(MemberId(i)), "key {i}");
        }
        // Mark key 0 closing; turn the remaining half-open entries established.
        assert!(t.set_timeout(&key(0), 1, 100));
        for i in [6, 7, 10] {
            let s = t.find(&key(i), t.hash(&key(i)), 1).unwrap();
            assert!(s.half_open && !s.closing);
            t.refresh(s, 1, 1000, false);
            let s = t.find(&key(i), t.hash(&key(i)), 1).unwrap();
            assert!(!s.half_open && !s.closing);
            assert_eq!(
                s.member,
                MemberId(i),
                "state bits stay out of the member id"
            );
        }
        // Full of established and closing entries: half-open inserts are refused and change
        // nothing, however many.
        let live = t.live(2);
        for i in 100..200 {
            assert_eq!(insert_as(&mut t, &key(i), i, 2, 1000, HalfOpen), None);
            assert_eq!(t.lookup(&key(i), 2), None);
        }
        assert_eq!(t.live(2), live);
        for i in (0..4).chain(6..8).chain(10..12) {
            assert_eq!(t.lookup(&key(i), 2), Some(MemberId(i)), "key {i}");
        }
        // An established insert still evicts (the entry closest to expiry, as before).
        assert_eq!(
            insert_as(&mut t, &key(12), 12, 2, 1000, Established),
            Some(InsertOutcome::Evicted)
        );
        assert_eq!(
            t.lookup(&key(0), 2),
            None,
            "key 0 (closing, 101) expired soonest"
        );
        // Expired entries are free again, for half-open inserts too.
        assert_eq!(
            insert_as(&mut t, &key(13), 13, 101, 1000, HalfOpen),
            Some(InsertOutcome::Inserted)
        );
        // The key's own entry is reused in place whatever its state.
        assert_eq!(
            insert_as(&mut t, &key(12), 20, 101, 1000, HalfOpen),
            Some(InsertOutcome::Updated)
        );
        let s = t.find(&key(12), t.hash(&key(12)), 101).unwrap();
        assert_eq!(
            (s.member, s.half_open, s.closing),
            (MemberId(20), true, false)
        );
    }

    #[test]
    fn touch_keeps_the_state_and_refresh_as_sets_it() {
        let mut t = ConnTable::new(64);
        let k = key(3);
        insert_as(&mut t, &k, 5, 0, 10, FlowState::HalfOpen);
        assert!(t.touch(&k, 5, 10));
        let s = t.find(&k, t.hash(&k), 14).unwrap();
        assert!(s.half_open && !s.closing);
        assert_eq!((s.member, s.isn), (MemberId(5), 7));
        t.refresh_as(s, 14, 10, FlowState::Closing);
        let s = t.find(&k, t.hash(&k), 23).unwrap();
        assert!(s.closing && !s.half_open);
        assert!(t.touch(&k, 23, 10));
        assert!(t.find(&k, t.hash(&k), 32).unwrap().closing);
        t.refresh_as(s, 32, 10, FlowState::Established);
        let s = t.find(&k, t.hash(&k), 41).unwrap();
        assert!(!s.closing && !s.half_open);
        assert_eq!(t.lookup(&k, 42), None);
    }

    /// Issue 9 (lab: a genuine connection reset during a SYN flood): SYNs at 4 per ms for 5 s
    /// into a full 1024-entry table. Old flood entries are evicted, but a genuine half-open
    /// entry made mid-flood keeps its slot for the grace, long after its ACK would come.
    #[test]
    fn a_genuine_half_open_entry_outlives_a_spread_flood_for_the_grace() {
        let mut t = ConnTable::with_key(1024, FlowHashKey::new([5, 6]));
        let keys = random_keys(5, 20_000 + 100);
        let (flood, genuine) = keys.split_at(20_000);
        let (mut evicted, mut refused) = (0, 0);
        let mut made = Vec::new();
        for (i, k) in flood.iter().enumerate() {
            let now = (i / 4) as u64;
            if i % 200 == 0 {
                let g = &genuine[i / 200];
                if insert_as(&mut t, g, 7, now, 5_000, FlowState::HalfOpen).is_some() {
                    made.push((g, now));
                }
            }
            match insert_as(&mut t, k, 1, now, 5_000, FlowState::HalfOpen) {
                Some(InsertOutcome::Evicted) => evicted += 1,
                None => refused += 1,
                _ => {}
            }
            for (g, at) in &made {
                if now < at + HALF_OPEN_GRACE_MS {
                    assert_eq!(
                        t.lookup(g, now),
                        Some(MemberId(7)),
                        "made at {at}, now {now}"
                    );
                }
            }
            made.retain(|(_, at)| now < at + HALF_OPEN_GRACE_MS);
        }
        assert!(
            evicted > 1_000,
            "{evicted} evictions: old flood entries make room"
        );
        assert!(refused > 1_000, "{refused} refusals: young ones do not");
    }

    /// Issue 9: 400 established flows in a 1024-entry table, then 20 000 SYNs from distinct
    /// random sources. Every established flow keeps its member; the table accounts for every
    /// SYN exactly (inserted, evicting a half-open entry, or refused).
    #[test]
    fn a_syn_flood_of_twenty_times_the_table_keeps_every_established_flow() {
        for seed in [11, 12, 13] {
            let mut t = ConnTable::with_key(1024, FlowHashKey::new([seed, !seed]));
            let keys = random_keys(seed, 400 + 20_000);
            let (est, flood) = keys.split_at(400);
            for (i, k) in est.iter().enumerate() {
                let out = insert_as(&mut t, k, i as u32, 0, 300_000, FlowState::Established);
                assert_eq!(out, Some(InsertOutcome::Inserted), "seed {seed}");
            }
            let (mut inserted, mut evicted, mut refused) = (0, 0, 0);
            for (i, k) in flood.iter().enumerate() {
                match insert_as(&mut t, k, 1000 + i as u32, 10, 5_000, FlowState::HalfOpen) {
                    Some(InsertOutcome::Inserted) => inserted += 1,
                    Some(InsertOutcome::Evicted) => evicted += 1,
                    Some(InsertOutcome::Updated) => panic!("random keys repeat"),
                    None => refused += 1,
                }
            }
            for (i, k) in est.iter().enumerate() {
                assert_eq!(t.lookup(k, 20), Some(MemberId(i as u32)), "seed {seed}");
            }
            assert_eq!(inserted + evicted + refused, flood.len());
            // Every free slot went to a half-open entry, and stayed one: within the grace no
            // half-open entry evicts another, so the rest of the flood got no slot (served
            // statelessly by the caller).
            assert_eq!(inserted, 1024 - 400, "seed {seed}");
            assert_eq!(t.live(20), 1024);
            let half_open = flood.iter().filter(|k| t.lookup(k, 20).is_some()).count();
            assert_eq!(half_open, inserted, "seed {seed}");
            assert_eq!(evicted, 0, "seed {seed}: all SYNs arrived within the grace");
            assert_eq!(refused, flood.len() - inserted, "seed {seed}");
            // The survivors are the last half-open entries of their buckets, and they expire
            // after the half-open timeout; the established flows do not.
            assert_eq!(t.live(10 + 4_999), 1024);
            assert_eq!(t.live(10 + 5_000), 400);
            for (i, k) in est.iter().enumerate() {
                assert_eq!(t.lookup(k, 10 + 5_000), Some(MemberId(i as u32)));
            }
        }
        // A table full of established flows refuses every SYN and loses none.
        let mut t = ConnTable::new(1024);
        let est = random_keys(21, 4096);
        for (i, k) in est.iter().enumerate() {
            t.insert(k, MemberId(i as u32), 0, 300_000 + i as u64);
        }
        assert_eq!(t.live(1), 1024);
        let before: Vec<_> = est.iter().map(|k| t.lookup(k, 1)).collect();
        for k in random_keys(22, 20_000) {
            assert_eq!(
                insert_as(&mut t, &k, 1, 1, 5_000, FlowState::HalfOpen),
                None
            );
        }
        let after: Vec<_> = est.iter().map(|k| t.lookup(k, 1)).collect();
        assert_eq!(before, after);
    }

    /// Issue 7: placement depends on the table's key. The same flow lands in other buckets
    /// under another key; under one key it always lands in the same ones.
    #[test]
    fn bucket_placement_is_keyed_and_deterministic() {
        let (ka, kb) = (FlowHashKey::new([1, 2]), FlowHashKey::new([3, 4]));
        let a = ConnTable::with_key(1 << 16, ka);
        let a2 = ConnTable::with_key(1 << 16, ka);
        let b = ConnTable::with_key(1 << 16, kb);
        let mut moved = 0;
        for i in 0..1000 {
            let k = key(i);
            assert_eq!(a.hash(&k), k.hash_keyed(&ka));
            assert_eq!(a.buckets(a.hash(&k)), a2.buckets(a2.hash(&k)));
            moved += usize::from(a.buckets(a.hash(&k)) != b.buckets(b.hash(&k)));
        }
        // 8192 buckets: a flow keeps both buckets under another key about once in 2^26.
        assert!(moved >= 998, "only {moved} of 1000 flows moved");
        assert_eq!(ConnTable::new(64).hash(&key(5)), key(5).hash());
    }

    /// The attack of issue 7: flows precomputed (against a known key) to share both buckets of
    /// a victim connection evict it when they are opened. Against a table with another key the
    /// same flows spread out and the victim survives.
    #[test]
    fn precomputed_flows_evict_only_under_the_key_they_were_computed_for() {
        let known = FlowHashKey::FIXED;
        let victim = key(0);
        let probe = ConnTable::with_key(512, known); // 64 buckets
        let (v1, v2) = probe.buckets(probe.hash(&victim));
        let attack: Vec<FlowKey> = (1..1_000_000)
            .map(key)
            .filter(|k| {
                let (b1, b2) = probe.buckets(probe.hash(k));
                [b1, b2].iter().all(|b| *b == v1 || *b == v2)
            })
            .take(2 * WAYS)
            .collect();
        assert_eq!(attack.len(), 2 * WAYS);
        for (table_key, evicted) in [(known, true), (FlowHashKey::new([0xdead, 0xbeef]), false)] {
            let mut t = ConnTable::with_key(512, table_key);
            t.insert(&victim, MemberId(1), 0, 1000);
            for k in &attack {
                t.insert(k, MemberId(2), 1, 1000);
            }
            assert_eq!(t.lookup(&victim, 2).is_none(), evicted, "{table_key:?}");
        }
    }

    /// Issue 12: a bucket keeps 16-bit signatures, so keys of one bucket can share one. Two
    /// such keys must both be found, updated and expired each on its own (the entry's full key
    /// decides).
    #[test]
    fn two_keys_with_one_signature_in_one_bucket_are_both_found() {
        let mut t = ConnTable::new(8); // one bucket: every key shares it
        let keys = random_keys(77, 4096);
        let mut by_sig = std::collections::HashMap::new();
        let (a, b) = keys
            .iter()
            .find_map(|k| {
                let sig = signature(t.hash(k));
                by_sig.insert(sig, *k).map(|other| (other, *k))
            })
            .expect("a signature collision among 4096 keys");
        assert_ne!(a, b);
        assert_eq!(signature(t.hash(&a)), signature(t.hash(&b)));
        assert_eq!(t.insert(&a, MemberId(1), 0, 1000), InsertOutcome::Inserted);
        assert_eq!(t.lookup(&b, 0), None, "a signature match alone is no hit");
        assert_eq!(t.insert(&b, MemberId(2), 0, 2000), InsertOutcome::Inserted);
        assert_eq!(t.lookup(&a, 0), Some(MemberId(1)));
        assert_eq!(t.lookup(&b, 0), Some(MemberId(2)));
        assert_eq!(t.live(0), 2);
        // Updating one leaves the other.
        assert_eq!(t.insert(&b, MemberId(3), 0, 2000), InsertOutcome::Updated);
        assert_eq!(t.insert(&a, MemberId(4), 0, 1000), InsertOutcome::Updated);
        assert_eq!(t.lookup(&a, 0), Some(MemberId(4)));
        assert_eq!(t.lookup(&b, 0), Some(MemberId(3)));
        assert_eq!(t.live(0), 2);
        // One expires, the other stays; re-inserting the dead one takes its own slot back.
        assert_eq!(t.lookup(&a, 1000), None);
        assert_eq!(t.lookup(&b, 1000), Some(MemberId(3)));
        assert_eq!(t.insert(&a, MemberId(5), 1000, 10), InsertOutcome::Updated);
        assert_eq!(t.live(1000), 2);
        assert!(t.set_timeout(&b, 1000, 5));
        assert!(t.find(&b, t.hash(&b), 1001).unwrap().closing);
        assert!(!t.find(&a, t.hash(&a), 1001).unwrap().closing);
    }

    /// Issue 12: expiries are a wrapping 32-bit millisecond clock. Entries made just before
    /// the clock's low 32 bits wrap live exactly their timeout across the wrap, at any epoch.
    #[test]
    fn expiry_is_exact_across_the_32_bit_clock_wrap() {
        for epoch in [1u64 << 32, 5 << 32, u64::MAX - (1 << 32) + 1] {
            let mut t = ConnTable::new(64);
            let (k, k2) = (key(1), key(2));
            let now = epoch - 100;
            assert_eq!(t.insert(&k, MemberId(1), now, 500), InsertOutcome::Inserted);
            // Expires exactly on the wrap (low 32 bits 0, stored as 1 ms later).
            t.insert(&k2, MemberId(2), now, 100);
            assert_eq!(t.lookup(&k, epoch + 399), Some(MemberId(1)), "{epoch:#x}");
            assert_eq!(t.lookup(&k, epoch + 400), None, "{epoch:#x}");
            assert_eq!(t.lookup(&k2, epoch - 1), Some(MemberId(2)));
            assert_eq!(t.lookup(&k2, epoch + 1), None);
            // Dead stays dead for far longer than any timeout.
            assert_eq!(t.lookup(&k, epoch + (1 << 31)), None);
            assert_eq!(t.live(epoch + (1 << 31)), 0);
            // k2's expiry landed on 0 (empty), so it is stored 1 ms late: live at the wrap.
            assert_eq!(t.lookup(&k2, epoch), Some(MemberId(2)));
            let mut left = Vec::new();
            t.export(0, t.capacity(), epoch + 1, |r| {
                left.push((r.member, r.remaining_ms))
            });
            assert_eq!(left, [(MemberId(1), 399)]);
        }
    }

    /// Issue 12: timeouts are clamped to MAX_TIMEOUT_MS, so a live entry can never look dead
    /// (nor a dead one live) through the wrap; installs are clamped the same way.
    #[test]
    fn timeouts_are_clamped_to_the_clock_window() {
        let mut t = ConnTable::new(64);
        let now = 7 << 32;
        t.insert(&key(1), MemberId(1), now, u64::MAX);
        assert_eq!(
            t.lookup(&key(1), now + MAX_TIMEOUT_MS - 1),
            Some(MemberId(1))
        );
        assert_eq!(t.lookup(&key(1), now + MAX_TIMEOUT_MS), None);
        let rec = FlowRecord {
            key: key(2),
            member: MemberId(2),
            state: FlowState::Established,
            isn: 1,
            remaining_ms: u32::MAX,
        };
        assert_eq!(t.install(&rec, now), InstallOutcome::Installed);
        let mut left = Vec::new();
        t.export(0, t.capacity(), now, |r| left.push(r.remaining_ms));
        assert_eq!(left, [MAX_TIMEOUT_MS as u32; 2]);
        assert_eq!(t.lookup(&key(2), now + MAX_TIMEOUT_MS), None);
    }

    /// Issue 12: the sweep counts live slots like `live_in`, and empties the dead ones, which
    /// is what keeps a long-dead entry from looking live when the 32-bit clock comes round
    /// (the module docs, "Time"): unswept, it would.
    #[test]
    fn the_sweep_empties_dead_slots_before_the_clock_comes_round() {
        let mut t = ConnTable::new(64);
        let keys = random_keys(3, 20);
        for (i, k) in keys.iter().enumerate() {
            // Even keys live 1 s, odd ones 10 s.
            t.insert(
                k,
                MemberId(i as u32),
                0,
                if i % 2 == 0 { 1000 } else { 10_000 },
            );
        }
        let mut unswept = ConnTable::new(64);
        for (i, k) in keys.iter().enumerate() {
            unswept.insert(k, MemberId(i as u32), 0, 1000);
        }
        assert_eq!(t.live_in(0, 64, 5000), 10);
        assert_eq!(t.sweep_in(0, 32, 5000) + t.sweep_in(32, 100, 5000), 10);
        assert_eq!(t.live(5000), 10);
        for (i, k) in keys.iter().enumerate() {
            let want = (i % 2 == 1).then_some(MemberId(i as u32));
            assert_eq!(t.lookup(k, 5000), want, "key {i}");
        }
        // An emptied slot forgot its key: re-inserting it is a new entry.
        assert_eq!(
            t.insert(&keys[0], MemberId(9), 5000, 10),
            InsertOutcome::Inserted
        );
        assert_eq!(
            unswept.insert(&keys[0], MemberId(9), 5000, 10),
            InsertOutcome::Updated
        );
        // 2^32 - 2^30 ms after they died (~37 days), unswept dead entries read as live
        // again; swept ones stay empty.
        let (mut t, keys) = (ConnTable::new(64), &keys[1..]);
        for (i, k) in keys.iter().enumerate() {
            t.insert(k, MemberId(i as u32), 0, 1000);
        }
        let later = 1000 + (1u64 << 32) - MAX_TIMEOUT_MS;
        assert_eq!(unswept.live(later), keys.len(), "the sweep is needed");
        t.sweep_in(0, t.capacity(), 2000);
        assert_eq!(t.live(later), 0);
        assert_eq!(t.lookup(&keys[0], later), None);
        assert_eq!(t.sweep_in(0, t.capacity(), later), 0);
    }

    /// Issue 12: the prefetches are hints only: whatever they are asked, look-ups and the
    /// table are unchanged.
    #[test]
    fn prefetches_change_nothing() {
        let mut t = ConnTable::new(1 << 12);
        let keys = random_keys(9, 3000);
        for (i, k) in keys.iter().enumerate() {
            t.insert(k, MemberId(i as u32), 0, 1000);
        }
        for (i, k) in keys.iter().enumerate() {
            let h = t.hash(k);
            let mut p = t.probe(h);
            t.scan_probe(&mut p, 1);
            t.scan_probe(&mut p, 5000);
            assert_eq!(t.lookup(k, 1), Some(MemberId(i as u32)));
        }
        for h in [0, 1, u32::MAX, 0xdead_beef] {
            let mut p = t.probe(h);
            t.scan_probe(&mut p, 0);
        }
        assert_eq!(t.live(1), 3000);
    }

    /// Issue 12: a look-up with a probe taken earlier is the plain look-up, whatever happened
    /// in between: the probe is used while current, and ignored once anything was written
    /// (here the very key inserted after its probe, as two packets of a new flow in one burst
    /// do), the clock moved (the entry expired meanwhile), or it was never scanned.
    #[test]
    fn a_probed_look_up_is_the_plain_look_up() {
        let mut t = ConnTable::new(1 << 10);
        let keys = random_keys(21, 1500);
        let mut x = 7u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut now = 1000u64;
        for round in 0..20_000 {
            let k = &keys[(rnd() % keys.len() as u64) as usize];
            let h = t.hash(k);
            let mut p = t.probe(h);
            if round % 7 != 0 {
                t.scan_probe(&mut p, now);
            }
            // Between the probe and the look-up: sometimes an insert of this or another key,
            // sometimes a step of the clock past some expiries, sometimes a zero-timeout refresh.
            match rnd() % 6 {
                0 => {
                    t.insert(k, MemberId(round), now, 1 + rnd() % 50);
                }
                1 => {
                    let other = &keys[(rnd() % keys.len() as u64) as usize];
                    t.insert(other, MemberId(round), now, 1 + rnd() % 50);
                }
                2 => now += rnd() % 20,
                3 => {
                    if let Some(slot) = t.find(k, h, now) {
                        t.refresh(slot, now, 0, false);
                    }
                }
                _ => {}
            }
            let probed = t.find_probed(k, h, &p, now).map(|s| (s.index, s.member));
            let plain = t.find(k, h, now).map(|s| (s.index, s.member));
            assert_eq!(probed, plain, "round {round}");
        }
        // A current probe of a key in the table finds it; of a missing key, nothing.
        t.insert(&keys[0], MemberId(77), now, 1000);
        let h = t.hash(&keys[0]);
        let mut p = t.probe(h);
        t.scan_probe(&mut p, now);
        assert_eq!(
            t.find_probed(&keys[0], h, &p, now).map(|s| s.member),
            Some(MemberId(77))
        );
    }

    fn rec(k: FlowKey, m: u32, state: FlowState, isn: u32, remaining_ms: u32) -> FlowRecord {
        FlowRecord {
            key: k,
            member: MemberId(m),
            state,
            isn,
            remaining_ms,
        }
    }

    /// Issue 9: the walk hands out every live entry exactly once per pass, with its state,
    /// isn, member and the time it has left, whatever chunk size the caller walks in.
    #[test]
    fn export_walks_every_live_entry_once_per_pass_in_any_chunks() {
        use FlowState::*;
        let mut t = ConnTable::new(256);
        let keys = random_keys(5, 100);
        for (i, k) in keys.iter().enumerate() {
            let state = [HalfOpen, Established, Closing][i % 3];
            let h = t.hash(k);
            t.insert_hashed(
                k,
                h,
                MemberId(i as u32),
                0,
                1000 + i as u64,
                state,
                i as u32,
            )
            .unwrap();
        }
        // Ten of them expire before the walk.
        for k in &keys[..10] {
            let s = t.find(k, t.hash(k), 0).unwrap();
            t.refresh_as(s, 0, 5, FlowState::Established);
        }
        for chunk in [1, 7, 64, 256, 1000] {
            let mut seen = Vec::new();
            let mut at = 3; // any starting slot
            let mut walked = 0;
            while walked < t.capacity() {
                let n = chunk.min(t.capacity() - walked);
                at = t.export(at, n, 10, |r| seen.push(r));
                walked += n;
            }
            assert_eq!(at, 3, "a whole pass ends where it began");
            assert_eq!(seen.len(), 90, "chunk {chunk}");
            seen.sort_by_key(|r| r.member.0);
            for (r, i) in seen.iter().zip(10..) {
                assert_eq!(r.key, keys[i as usize]);
                assert_eq!(r.member, MemberId(i));
                assert_eq!(r.state, [HalfOpen, Established, Closing][i as usize % 3]);
                assert_eq!(r.isn, i);
                assert_eq!(r.remaining_ms, 1000 + i - 10);
            }
        }
        // More than the capacity walks the table once.
        let mut n = 0;
        assert_eq!(t.export(0, 10 * t.capacity(), 10, |_| n += 1), 0);
        assert_eq!(n, 90);
        // Exported records install into an empty table as they were.
        let mut u = ConnTable::with_key(256, FlowHashKey::new([9, 9]));
        t.export(0, t.capacity(), 10, |r| {
            assert_eq!(u.install(&r, 20), InstallOutcome::Installed);
        });
        for (i, k) in keys.iter().enumerate().skip(10) {
            let s = u.find(k, u.hash(k), 20).unwrap();
            assert_eq!((s.member, s.isn), (MemberId(i as u32), i as u32));
            assert!(u.find(k, u.hash(k), 20 + 1000 + i as u64 - 10).is_none());
        }
    }

    /// Issue 9: the install rule. A flow this router saw the SYN of keeps its entry; a
    /// mid-flow guess gives way to a record opened by a SYN; two guesses do not replace each
    /// other; the same member refreshes.
    #[test]
    fn install_keeps_local_syn_entries_and_replaces_mid_flow_guesses() {
        use FlowState::*;
        let mut t = ConnTable::new(64);
        let (a, b, c, d) = (key(1), key(2), key(3), key(4));
        // a: opened here by a SYN (isn 7), established.
        insert_as(&mut t, &a, 1, 0, 1000, Established);
        assert_eq!(
            t.install(&rec(a, 2, Established, 99, 5000), 0),
            InstallOutcome::Kept
        );
        assert_eq!(t.lookup(&a, 999), Some(MemberId(1)));
        assert_eq!(t.lookup(&a, 1000), None, "not extended either");
        // b: opened here mid-flow (isn 0); a record from a router that saw the SYN wins.
        t.insert(&b, MemberId(1), 0, 1000);
        assert_eq!(
            t.install(&rec(b, 2, Established, 0, 5000), 0),
            InstallOutcome::Kept,
            "a mid-flow guess does not replace another"
        );
        assert_eq!(t.lookup(&b, 0), Some(MemberId(1)));
        assert_eq!(
            t.install(&rec(b, 2, Established, 42, 5000), 0),
            InstallOutcome::Installed
        );
        let s = t.find(&b, t.hash(&b), 4999).unwrap();
        assert_eq!((s.member, s.isn, s.closing), (MemberId(2), 42, false));
        // ... and then it is a SYN-opened entry: kept against a third opinion.
        assert_eq!(
            t.install(&rec(b, 3, Established, 43, 5000), 0),
            InstallOutcome::Kept
        );
        // c: no entry: installed with its state, isn and remaining time.
        assert_eq!(
            t.install(&rec(c, 4, Closing, 5, 300), 100),
            InstallOutcome::Installed
        );
        let s = t.find(&c, t.hash(&c), 399).unwrap();
        assert_eq!((s.member, s.isn, s.closing), (MemberId(4), 5, true));
        assert!(t.find(&c, t.hash(&c), 400).is_none());
        // The same member refreshes to the later expiry and never shortens.
        assert_eq!(
            t.install(&rec(a, 1, Established, 7, 5000), 500),
            InstallOutcome::Refreshed
        );
        assert_eq!(t.lookup(&a, 5499), Some(MemberId(1)));
        assert_eq!(
            t.install(&rec(a, 1, Established, 7, 10), 500),
            InstallOutcome::Refreshed
        );
        assert_eq!(t.lookup(&a, 5499), Some(MemberId(1)));
        // A half-open entry here whose handshake completed elsewhere becomes established.
        insert_as(&mut t, &d, 6, 0, 100, HalfOpen);
        assert_eq!(
            t.install(&rec(d, 6, Established, 7, 3000), 0),
            InstallOutcome::Refreshed
        );
        let s = t.find(&d, t.hash(&d), 2999).unwrap();
        assert!(!s.half_open && !s.closing);
        // No time left: nothing happens.
        let e = key(5);
        assert_eq!(
            t.install(&rec(e, 1, Established, 1, 0), 0),
            InstallOutcome::Expired
        );
        assert_eq!(t.lookup(&e, 0), None);
        // An expired local entry is no entry.
        assert_eq!(
            t.install(&rec(c, 9, Established, 0, 100), 400),
            InstallOutcome::Installed
        );
        assert_eq!(t.lookup(&c, 400), Some(MemberId(9)));
    }

    /// Issue 12: a sibling worker's affinity record replaces a live entry with another
    /// member only when it expires later (the newer write), whatever the isn; the rest is the
    /// install rule.
    #[test]
    fn adopt_lets_the_later_expiring_affinity_win() {
        use FlowState::*;
        let mut t = ConnTable::new(64);
        let a = key(1);
        insert_as(&mut t, &a, 1, 0, 1000, Established);
        // Older than the local entry (expires at 900 < 1000): kept, not extended.
        assert_eq!(
            t.adopt(&rec(a, 2, Established, 0, 900), 0),
            InstallOutcome::Kept
        );
        assert_eq!(t.lookup(&a, 999), Some(MemberId(1)));
        assert_eq!(t.lookup(&a, 1000), None);
        insert_as(&mut t, &a, 1, 0, 1000, Established);
        // Newer (expires at 100 + 1000 > 1000): the client moved on the sibling; it wins,
        // although neither has an isn (install keeps the local one then).
        assert_eq!(
            t.install(&rec(a, 2, Established, 0, 1000), 100),
            InstallOutcome::Kept
        );
        assert_eq!(
            t.adopt(&rec(a, 2, Established, 0, 1000), 100),
            InstallOutcome::Installed
        );
        assert_eq!(t.lookup(&a, 1099), Some(MemberId(2)));
        assert_eq!(t.lookup(&a, 1100), None);
        // The same member refreshes; a new key is installed; no time left does nothing.
        assert_eq!(
            t.adopt(&rec(a, 2, Established, 0, 5000), 200),
            InstallOutcome::Refreshed
        );
        assert_eq!(t.lookup(&a, 5199), Some(MemberId(2)));
        let b = key(2);
        assert_eq!(
            t.adopt(&rec(b, 3, Established, 0, 50), 0),
            InstallOutcome::Installed
        );
        assert_eq!(
            t.adopt(&rec(key(3), 3, Established, 0, 0), 0),
            InstallOutcome::Expired
        );
    }

    /// Issue 9: an installed flow is placed like a half-open one: it may evict a half-open
    /// entry, never an established or closing one (refused), so hand-off traffic cannot
    /// push out the flows this router forwards.
    #[test]
    fn install_never_evicts_an_established_entry() {
        use FlowState::*;
        let mut t = ConnTable::new(8); // one bucket
        for i in 0..6 {
            insert_as(&mut t, &key(i), i, 0, 1000, Established);
        }
        insert_as(&mut t, &key(6), 6, 0, 2000, HalfOpen);
        insert_as(&mut t, &key(7), 7, 0, 2000, Closing);
        assert_eq!(
            t.install(&rec(key(20), 20, Established, 1, 90_000), 1),
            InstallOutcome::Installed
        );
        assert_eq!(t.lookup(&key(6), 1), None, "the half-open entry went");
        for i in 21..40 {
            assert_eq!(
                t.install(&rec(key(i), i, Established, 1, 90_000), 1),
                InstallOutcome::Refused
            );
            assert_eq!(t.lookup(&key(i), 1), None);
        }
        for i in (0..6).chain([7, 20]) {
            assert_eq!(t.lookup(&key(i), 1), Some(MemberId(i)), "key {i}");
        }
        // Once entries expire, installs take their slots.
        assert_eq!(
            t.install(&rec(key(30), 30, Established, 1, 90_000), 1000),
            InstallOutcome::Installed
        );
    }
}
