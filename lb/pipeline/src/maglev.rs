//! Weighted consistent hashing: a Maglev lookup table (Eisenbud et al., "Maglev: A Fast and
//! Reliable Software Network Load Balancer", NSDI 2016, §3.4) with selw as the weights.
//!
//! Why: a packet of an established flow that misses the connection table (the router
//! restarted, ECMP moved the flow to another router, the entry was evicted, or a SYN found no
//! free slot) must still reach the member it started on (issue 9). The round robin cannot do
//! that: its cursor is per core and per router. A Maglev table is a pure function of the member
//! set and the weights, so every router, and every restart of one, computes the same member for
//! the same flow hash. This is Sun Cluster's `weighted` policy (SC1: weights, uniform by
//! default, changeable at any time) with clua's selw as the weights (CA8); the control plane
//! builds one table per schedule (the highest selp tier's eligible members) into the snapshot,
//! and the data plane only calls [`MaglevTable::lookup`].
//!
//! Invariants (tested in `tests/maglev.rs`):
//! - Determinism: the table depends only on the set of `(member, weight)` pairs and the size —
//!   not on their order, not on the router, not on the per-start flow-hash key. Each member's
//!   permutation comes from its id through [`mix64`] with fixed seeds.
//! - Shares: a member with weight w out of a total W owns `M·w/W` entries give or take one, so
//!   over many flow hashes its share of flows is `w/W` within a fraction of a percent for
//!   M = 65537 (the issue asks for 1 %). Weight 0 owns nothing; no member (or all weights 0)
//!   gives an empty table whose lookup is `None`.
//! - Minimal disruption: when a member leaves, its entries go to the others, and only a few
//!   other entries change hands (the tests bound it by 1/N + 1 % of the other members' flows,
//!   issue 9; measured at most 0.4 % for N = 3..=20). Putting the member back restores the
//!   original table exactly. Changing one member's weight (SC1) likewise moves flows to or from
//!   that member, and well under 1 % of the flows between the others.
//!
//! Weights, "fill until share" by stride: the classic fill gives each member one turn per
//! round, in which it claims the next free entry of its permutation. Here a member with weight
//! w takes its k-th turn (k = 0, 1, ...) at virtual time (2k+1)/(2w), and turns run in the order
//! of those times (ties by member id), until all M entries are claimed. So, at every moment of
//! the fill, each member has taken as many turns as its weight entitles it to, within one:
//! shares are exact even when weights differ by orders of magnitude, and heavy members'
//! turns are spread among the light ones' rather than taken in bursts. A member's turn times
//! depend on its own weight alone, so removing a member (or changing its weight) leaves the
//! others' relative order untouched, which is what keeps disruption minimal. The alternative
//! "w turns per round" depends on the weights' sum fitting the table (a round of total weight
//! above M would never finish, starving the members late in the order), and needs the weights
//! reduced by their gcd to stay fine-grained; stride order needs neither. With equal weights
//! both are the paper's fill exactly.
//!
//! The flow hash given to [`MaglevTable::lookup`] must itself be the same on every router:
//! hash the flow key with a key shared by the routers (e.g. derived from the cluster secret),
//! or [`FlowHashKey::FIXED`](crate::hash::FlowHashKey::FIXED) — not the per-start random
//! [`PipelineConfig::hash_key`](crate::PipelineConfig::hash_key), which differs between routers
//! and between starts of one router. See [`MaglevTable::lookup_flow`].
//!
//! Cost: building is O(M log N) heap operations plus O(M log M) expected permutation probes
//! (the paper's bound), on the control plane; lookup is one multiply, one shift and one load.
//! A table is 4·M bytes (256 KiB at the default M = 65537).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::hash::{mix64, FlowHashKey, FlowKey};
use crate::snapshot::MemberId;

/// Seeds of the two per-member hashes (offset and skip). Fixed forever: changing them changes
/// every router's table at once, which is harmless only if every router changes together.
const SEED_OFFSET: u64 = 0x6d61_676c_6576_2d6f; // "maglev-o"
const SEED_SKIP: u64 = 0x6d61_676c_6576_2d73; // "maglev-s"

/// A Maglev lookup table: each entry is the member that owns it. Immutable once built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaglevTable {
    entries: Box<[MemberId]>,
    /// The members that own entries, sorted by id: the tier the table was built over (what a
    /// sticky affinity is checked against, see [`MaglevTable::contains`]).
    members: Box<[MemberId]>,
}

/// Why a table could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaglevError {
    /// The size is not a prime: the permutations would not visit every entry.
    NotPrime { size: u32 },
    /// The size is smaller than the number of members with a non-zero weight.
    TooSmall { size: u32, members: usize },
    /// The size is above [`MaglevTable::MAX_SIZE`].
    TooLarge { size: u32 },
    /// A member id given twice.
    DuplicateMember { member: MemberId },
}

impl core::fmt::Display for MaglevError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MaglevError::NotPrime { size } => write!(f, "maglev table size {size} is not prime"),
            MaglevError::TooSmall { size, members } => write!(
                f,
                "maglev table size {size} is smaller than its {members} weighted members"
            ),
            MaglevError::TooLarge { size } => write!(
                f,
                "maglev table size {size} is above the maximum {}",
                MaglevTable::MAX_SIZE
            ),
            MaglevError::DuplicateMember { member } => {
                write!(f, "member id {} given twice", member.0)
            }
        }
    }
}

impl std::error::Error for MaglevError {}

/// One member's next turn in the fill: the turn's virtual time is `num / (2·weight)`.
struct Turn {
    /// `2k + 1` for the member's k-th turn.
    num: u64,
    weight: u64,
    id: MemberId,
    /// Index into the build's per-member arrays.
    idx: u32,
}

impl Turn {
    /// Compares virtual times exactly: `num ≤ 2·MAX_SIZE + 1 < 2^26` and `weight < 2^32`, so
    /// the cross products fit in a u64.
    fn time_cmp(&self, other: &Turn) -> Ordering {
        (self.num * other.weight).cmp(&(other.num * self.weight))
    }
}

impl PartialEq for Turn {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Turn {}
impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Turn {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest turn, lowest id first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.time_cmp(self).then_with(|| other.id.cmp(&self.id))
    }
}

impl MaglevTable {
    /// A table with no entries: every lookup is `None`.
    pub fn empty() -> MaglevTable {
        MaglevTable {
            entries: Box::new([]),
            members: Box::new([]),
        }
    }

    /// The paper's default size, a prime well above 100 × the member count of a large alias.
    pub const DEFAULT_SIZE: u32 = 65_537;
    /// The largest size accepted (64 MiB of entries); the bound also keeps the fill's exact
    /// turn-time arithmetic within a u64.
    pub const MAX_SIZE: u32 = 1 << 24;

    /// Builds the table of `size` entries for `members` (id, weight). The order of `members`
    /// does not matter; members with weight 0 get no entries; no weighted member gives an empty
    /// table.
    ///
    /// # Errors
    /// [`MaglevError`] when `size` is not prime, above [`MAX_SIZE`](Self::MAX_SIZE) or below
    /// the number of members with a non-zero weight, or when an id is given twice.
    pub fn build(members: &[(MemberId, u32)], size: u32) -> Result<MaglevTable, MaglevError> {
        if size > Self::MAX_SIZE {
            return Err(MaglevError::TooLarge { size });
        }
        if !is_prime(size) {
            return Err(MaglevError::NotPrime { size });
        }
        let mut sorted: Vec<(MemberId, u32)> = members.to_vec();
        sorted.sort_unstable_by_key(|&(id, _)| id);
        if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(MaglevError::DuplicateMember { member: w[0].0 });
        }
        sorted.retain(|&(_, w)| w > 0);
        if sorted.len() > size as usize {
            return Err(MaglevError::TooSmall {
                size,
                members: sorted.len(),
            });
        }
        if sorted.is_empty() {
            return Ok(MaglevTable::empty());
        }

        let m = u64::from(size);
        // Per member: the current position in its permutation (starting at `offset`) and the
        // `skip` in [1, M-1]; M prime, so `offset + j·skip mod M` visits every entry.
        let mut pos: Vec<u32> = Vec::with_capacity(sorted.len());
        let mut skip: Vec<u32> = Vec::with_capacity(sorted.len());
        let mut heap = BinaryHeap::with_capacity(sorted.len());
        for (i, &(id, w)) in sorted.iter().enumerate() {
            let x = u64::from(id.0);
            pos.push((mix64(x ^ SEED_OFFSET) % m) as u32);
            skip.push((mix64(x.rotate_left(32) ^ SEED_SKIP) % (m - 1) + 1) as u32);
            heap.push(Turn {
                num: 1,
                weight: u64::from(w),
                id,
                idx: i as u32,
            });
        }

        // Which entries are taken, as a bitset: the fill probes it ~M·ln M times at random, and
        // at M/8 bytes it stays in cache where the owner array (4·M bytes) would not (at M =
        // 655373 this halves the build time).
        let mut taken: Vec<u64> = vec![0; (size as usize).div_ceil(64)];
        let mut owner: Vec<u32> = vec![0; size as usize];
        let mut filled = 0u32;
        while filled < size {
            let Some(mut turn) = heap.pop() else { break };
            let i = turn.idx as usize;
            // The member's most preferred entry still free; each probe advances its position,
            // so an entry found taken is never probed again by this member.
            loop {
                let p = pos[i];
                let next = p + skip[i];
                pos[i] = if next >= size { next - size } else { next };
                let (word, bit) = ((p / 64) as usize, 1u64 << (p % 64));
                if taken[word] & bit == 0 {
                    taken[word] |= bit;
                    owner[p as usize] = turn.idx;
                    break;
                }
            }
            filled += 1;
            turn.num += 2;
            heap.push(turn);
        }
        let entries = owner
            .into_iter()
            .map(|i| sorted.get(i as usize).map_or(MemberId(0), |&(id, _)| id))
            .collect();
        let members = sorted.iter().map(|&(id, _)| id).collect();
        Ok(MaglevTable { entries, members })
    }

    /// [`build`](Self::build) with [`DEFAULT_SIZE`](Self::DEFAULT_SIZE).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_default(members: &[(MemberId, u32)]) -> Result<MaglevTable, MaglevError> {
        Self::build(members, Self::DEFAULT_SIZE)
    }

    /// The member owning `hash`'s entry; `None` for an empty table. O(1), no allocation.
    ///
    /// The hash is folded to 32 bits and mapped onto the entries by multiply-and-shift (Lemire)
    /// rather than `%`: one multiply instead of a division, and it uses the hash's high bits,
    /// which the connection table's bucket index (low bits) does not. A 32-bit flow hash widened
    /// to u64 works as well as a full 64-bit one.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<MemberId> {
        let h = u64::from((hash ^ (hash >> 32)) as u32);
        let idx = (h * self.entries.len() as u64) >> 32;
        self.entries.get(idx as usize).copied()
    }

    /// [`lookup`](Self::lookup) of the flow's hash under `key`, which must be the same on every
    /// router (see the module docs).
    #[inline]
    pub fn lookup_flow(&self, flow: &FlowKey, key: &FlowHashKey) -> Option<MemberId> {
        self.lookup(u64::from(flow.hash_keyed(key)))
    }

    /// The member for a new flow of client `src` to alias `alias` (both host order) under the
    /// `sticky` and `wildcard_sticky` policies (SC2, SC3): the entry of the client's hash under
    /// [`FlowHashKey::FIXED`], so the first choice follows the weights and every core, router and
    /// restart makes the same one. The hash is that of the client's wildcard affinity key
    /// (`proto 0`, ports 0), which no real packet has.
    #[inline]
    pub fn lookup_client(&self, src: u32, alias: u32) -> Option<MemberId> {
        let key = FlowKey {
            src,
            dst: alias,
            src_port: 0,
            dst_port: 0,
            proto: 0,
        };
        self.lookup_flow(&key, &FlowHashKey::FIXED)
    }

    /// Whether `member` owns entries: it is in the tier the table was built over (a member with
    /// weight 0 is not). O(log n).
    #[inline]
    pub fn contains(&self, member: MemberId) -> bool {
        self.members.binary_search(&member).is_ok()
    }

    /// The members that own entries, sorted by id.
    pub fn members(&self) -> &[MemberId] {
        &self.members
    }

    /// The entries, e.g. for the control plane to compare two tables.
    pub fn entries(&self) -> &[MemberId] {
        &self.entries
    }

    /// The number of entries: the size built with, or 0 for an empty table.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries (no member with a non-zero weight).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Trial division; sizes are at most [`MaglevTable::MAX_SIZE`], so at most ~2,000 divisions.
fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let (n, mut d) = (u64::from(n), 3u64);
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes() {
        let small: Vec<u32> = (0..40).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
        assert!(is_prime(65_537) && is_prime(4_099) && is_prime(655_373));
        assert!(!is_prime(65_535) && !is_prime(4_097) && !is_prime(1 << 24));
    }

    #[test]
    fn turns_pop_in_time_order_then_id() {
        let mut heap = BinaryHeap::new();
        for (num, weight, id) in [(1, 1, 5), (1, 2, 7), (3, 2, 1), (1, 2, 3)] {
            heap.push(Turn {
                num,
                weight,
                id: MemberId(id),
                idx: 0,
            });
        }
        let order: Vec<u32> = std::iter::from_fn(|| heap.pop().map(|t| t.id.0)).collect();
        // Times 1/4 (ids 3, 7), 2/4 (id 5), 3/4 (id 1).
        assert_eq!(order, [3, 7, 5, 1]);
    }
}
