//! The per-core connection table: which member owns an established flow.
//!
//! A fixed-capacity, set-associative hash table (Katran's per-CPU LRU map, without the LRU
//! list): `capacity / 8` buckets of [`WAYS`] entries each, the bucket chosen by
//! `FlowKey::hash() & mask`. It is allocated once in [`ConnTable::new`]; nothing afterwards
//! allocates. Entries expire by time rather than being deleted: an entry whose expiry is not
//! after `now` is a miss, and its slot is reused by the next insert into that bucket. When a
//! bucket holds [`WAYS`] live entries, an insert evicts the one closest to expiry and says so.
//!
//! Each core owns its table, so nothing here is shared or locked. The table stores stable
//! [`MemberId`]s, so it survives snapshot swaps (established flows keep their member).

use crate::hash::FlowKey;
use crate::snapshot::MemberId;

/// Entries per bucket.
pub const WAYS: usize = 8;

/// Smallest capacity (one bucket).
pub const MIN_CAPACITY: usize = WAYS;

/// One slot. 32 bytes, so a bucket is four cache lines.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    /// `src << 32 | dst`.
    k0: u64,
    /// `src_port << 24 | dst_port << 8 | proto` (40 bits).
    k1: u64,
    /// Milliseconds after which the entry is dead; 0 = never used.
    expiry: u64,
    /// Owning member.
    member: u32,
    /// Bit 0: FIN or RST seen (the entry runs on the closing timeout).
    flags: u32,
}

const CLOSING: u32 = 1;

#[inline(always)]
fn pack(key: &FlowKey) -> (u64, u64) {
    (
        (key.src as u64) << 32 | key.dst as u64,
        (key.src_port as u64) << 24 | (key.dst_port as u64) << 8 | key.proto as u64,
    )
}

/// A live entry found by [`ConnTable::find`], valid until the table is next modified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    index: u32,
    /// The owning member.
    pub member: MemberId,
    /// Whether FIN or RST has been seen on the flow.
    pub closing: bool,
}

/// What [`ConnTable::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The key had an entry (live or expired) that now holds the new member and expiry.
    Updated,
    /// The key took an empty or expired slot.
    Inserted,
    /// The bucket was full of live entries; the one closest to expiry was evicted.
    Evicted,
}

/// A fixed-capacity flow -> member table. See the module docs.
#[derive(Debug)]
pub struct ConnTable {
    entries: Box<[Entry]>,
    mask: u32,
}

impl ConnTable {
    /// A table of at least `capacity` entries: rounded up to a power of two, at least
    /// [`MIN_CAPACITY`]. This is the only allocation the table ever makes.
    ///
    /// # Panics
    /// If the rounded capacity exceeds 2^35 entries (the bucket index is 32 bits).
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(MIN_CAPACITY).next_power_of_two();
        let buckets = cap / WAYS;
        assert!(
            buckets <= 1 << 32,
            "connection table capacity {cap} too large"
        );
        ConnTable {
            entries: vec![Entry::default(); cap].into_boxed_slice(),
            mask: (buckets - 1) as u32,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    #[inline(always)]
    fn bucket(&self, hash: u32) -> usize {
        (hash & self.mask) as usize * WAYS
    }

    /// Finds the live entry for `key`, whose [`FlowKey::hash`] is `hash`.
    #[inline]
    pub fn find(&self, key: &FlowKey, hash: u32, now_ms: u64) -> Option<Slot> {
        let (k0, k1) = pack(key);
        let base = self.bucket(hash);
        let bucket = &self.entries[base..base + WAYS];
        for (i, e) in bucket.iter().enumerate() {
            if e.k0 == k0 && e.k1 == k1 && e.expiry > now_ms {
                return Some(Slot {
                    index: (base + i) as u32,
                    member: MemberId(e.member),
                    closing: e.flags & CLOSING != 0,
                });
            }
        }
        None
    }

    /// Reads the bucket `hash` maps to (one word per cache line) so that its lines are on
    /// their way into the cache before [`find`](Self::find) needs them. Issuing this for a whole
    /// burst first lets the CPU overlap the misses (a safe stand-in for `rte_prefetch0`; the
    /// crate has no `unsafe` for the intrinsic). Returns a value the caller should fold into
    /// something observable so that the reads are not optimised away.
    #[inline]
    pub fn touch_bucket(&self, hash: u32) -> u64 {
        let base = self.bucket(hash);
        let b = &self.entries[base..base + WAYS];
        b[0].expiry ^ b[2].expiry ^ b[4].expiry ^ b[6].expiry
    }

    /// The member owning `key`, if its entry is live. Expired entries are misses.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, now_ms: u64) -> Option<MemberId> {
        self.find(key, key.hash(), now_ms).map(|s| s.member)
    }

    /// Refreshes a found entry: it now expires `timeout_ms` after `now_ms`, and is closing if
    /// `closing`. A slot from before the last [`insert`](Self::insert) may name another flow's
    /// entry; callers refresh right after `find`.
    #[inline]
    pub fn refresh(&mut self, slot: Slot, now_ms: u64, timeout_ms: u64, closing: bool) {
        if let Some(e) = self.entries.get_mut(slot.index as usize) {
            e.expiry = now_ms.saturating_add(timeout_ms).max(1);
            e.flags = if closing {
                e.flags | CLOSING
            } else {
                e.flags & !CLOSING
            };
        }
    }

    /// Refreshes `key`'s live entry, keeping its closing flag. Returns false on a miss.
    pub fn touch(&mut self, key: &FlowKey, now_ms: u64, timeout_ms: u64) -> bool {
        match self.find(key, key.hash(), now_ms) {
            Some(slot) => {
                self.refresh(slot, now_ms, timeout_ms, slot.closing);
                true
            }
            None => false,
        }
    }

    /// Marks `key`'s live entry as closing and makes it expire `timeout_ms` after `now_ms`
    /// (FIN or RST seen). Returns false on a miss.
    pub fn set_timeout(&mut self, key: &FlowKey, now_ms: u64, timeout_ms: u64) -> bool {
        match self.find(key, key.hash(), now_ms) {
            Some(slot) => {
                self.refresh(slot, now_ms, timeout_ms, true);
                true
            }
            None => false,
        }
    }

    /// Records that `key` (hash `hash`) belongs to `member` until `now_ms + timeout_ms`.
    ///
    /// Reuses the key's own entry if it has one, else the first empty or expired slot of the
    /// bucket, else evicts the live entry closest to expiry ([`InsertOutcome::Evicted`]).
    #[inline]
    pub fn insert_hashed(
        &mut self,
        key: &FlowKey,
        hash: u32,
        member: MemberId,
        now_ms: u64,
        timeout_ms: u64,
        closing: bool,
    ) -> InsertOutcome {
        let (k0, k1) = pack(key);
        let base = self.bucket(hash);
        let bucket = &mut self.entries[base..base + WAYS];
        let mut free = None;
        let mut oldest = 0;
        for i in 0..WAYS {
            let e = &bucket[i];
            if e.k0 == k0 && e.k1 == k1 && e.expiry != 0 {
                free = Some((i, InsertOutcome::Updated));
                break;
            }
            if e.expiry <= now_ms {
                if free.is_none() {
                    free = Some((i, InsertOutcome::Inserted));
                }
            } else if e.expiry < bucket[oldest].expiry || bucket[oldest].expiry <= now_ms {
                oldest = i;
            }
        }
        let (i, outcome) = free.unwrap_or((oldest, InsertOutcome::Evicted));
        bucket[i] = Entry {
            k0,
            k1,
            expiry: now_ms.saturating_add(timeout_ms).max(1),
            member: member.0,
            flags: if closing { CLOSING } else { 0 },
        };
        outcome
    }

    /// [`insert_hashed`](Self::insert_hashed) computing the hash.
    pub fn insert(
        &mut self,
        key: &FlowKey,
        member: MemberId,
        now_ms: u64,
        timeout_ms: u64,
    ) -> InsertOutcome {
        self.insert_hashed(key, key.hash(), member, now_ms, timeout_ms, false)
    }

    /// Number of live entries at `now_ms` (a full scan, for tests and metrics).
    pub fn live(&self, now_ms: u64) -> usize {
        self.entries.iter().filter(|e| e.expiry > now_ms).count()
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.entries.fill(Entry::default());
    }
}

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
        // Half full: with 8-way buckets (Poisson mean 4 per bucket) overflow is rare.
        let half = cap as u32 / 2;
        let mut evictions = fill(&mut t, 0..half);
        assert!(
            evictions < half as usize / 100,
            "{evictions} evictions at 50 % load"
        );
        // 90 % full: about a tenth of inserts find their bucket full.
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
}
