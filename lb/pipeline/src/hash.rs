//! Flow hashing: cheap, keyed, good enough to spread flows over table buckets, outer source
//! addresses and VXLAN source ports.
//!
//! The hash is keyed with a per-start secret ([`FlowHashKey`], from
//! [`PipelineConfig::hash_key`](crate::PipelineConfig::hash_key); aliasd draws it from the OS at
//! every start): with an unkeyed hash, anyone could compute offline which flows share a
//! connection's two buckets and open enough of them to evict it (issue 7). The keyed function is
//! the same two rounds of a murmur3-style 64-bit finaliser as before with one key word XORed into
//! each round's input, so it costs what the unkeyed one did. A keyed PRF would be stronger but
//! dearer on a per-packet path: measured on the development VM (AMD EPYC, thread CPU time, 50 M
//! hashes of the two key words), this hash takes about 5 ns and std's keyed SipHash-1-3 about
//! 10 ns, against a budget of a few tens of ns per packet. It is not a PRF: an attacker who could
//! watch where many chosen flows land might learn something about the key. But placement shows
//! from outside only through evictions, and the key changes at every start; without it, which
//! flows share buckets cannot be precomputed.
//!
//! The NIC's RSS hash is never used for buckets: its Toeplitz key is public (the well-known
//! default), so it would be as predictable as an unkeyed hash. Encap may use it where
//! predictability does not matter (outer source addresses, VXLAN source ports).

/// The 5-tuple that identifies a flow towards an alias.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// Client address (IPv4, host order).
    pub src: u32,
    /// Alias address (IPv4, host order).
    pub dst: u32,
    /// Client port (0 for ICMP).
    pub src_port: u16,
    /// Alias port (0 for ICMP).
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// The secret 128-bit key of [`FlowKey::hash_keyed`]. Its `Debug` does not show it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FlowHashKey([u64; 2]);

impl FlowHashKey {
    /// The fixed key of tests, fuzzing and benches ([`Default`]). With it, the keyed hash is
    /// the unkeyed hash clua had before (golden fixtures keep their bytes). Never use it where
    /// clients are untrusted: aliasd replaces it with [`FlowHashKey::random`] at start.
    pub const FIXED: FlowHashKey = FlowHashKey([0, 0x9e37_79b9_7f4a_7c15]);

    /// A key from two 64-bit words.
    pub const fn new(words: [u64; 2]) -> Self {
        FlowHashKey(words)
    }

    /// A key from 16 bytes (e.g. read from `/dev/urandom`).
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let (lo, hi) = b.split_at(8);
        let word = |s: &[u8]| s.iter().fold(0u64, |w, &x| (w << 8) | u64::from(x));
        FlowHashKey([word(lo), word(hi)])
    }

    /// A fresh key from the OS's random number generator, through std's `RandomState` (whose
    /// SipHash keys the OS seeds once per thread): two hashes of distinct inputs under a secret
    /// 128-bit SipHash key.
    pub fn random() -> Self {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        FlowHashKey([state.hash_one(0u64), state.hash_one(1u64)])
    }
}

impl Default for FlowHashKey {
    fn default() -> Self {
        Self::FIXED
    }
}

impl core::fmt::Debug for FlowHashKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if *self == Self::FIXED {
            f.write_str("FlowHashKey(FIXED)")
        } else {
            f.write_str("FlowHashKey(..)")
        }
    }
}

impl FlowKey {
    /// [`hash_keyed`](Self::hash_keyed) with [`FlowHashKey::FIXED`] (tests and tools).
    #[inline]
    pub fn hash(&self) -> u32 {
        self.hash_keyed(&FlowHashKey::FIXED)
    }

    /// A 32-bit hash of the key under `key`: two rounds of a murmur3-style finaliser over
    /// 64-bit words, one key word XORed into each round's input (see the module docs for why
    /// this and not a PRF).
    #[inline(always)]
    pub fn hash_keyed(&self, key: &FlowHashKey) -> u32 {
        let a = ((self.src as u64) << 32) | self.dst as u64;
        let b = ((self.src_port as u64) << 24) | ((self.dst_port as u64) << 8) | self.proto as u64;
        let h = mix64(a ^ key.0[0] ^ mix64(b ^ key.0[1]));
        (h ^ (h >> 32)) as u32
    }
}

/// The 64-bit finaliser of MurmurHash3: every input bit affects every output bit.
#[inline(always)]
pub fn mix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A `BuildHasher` for integer keys on the control side and in snapshot indexes.
#[derive(Clone, Copy, Default, Debug)]
pub struct IntHasher(u64);

impl core::hash::Hasher for IntHasher {
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 ^= n as u64;
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// Builds [`IntHasher`]s.
pub type IntHashBuilder = core::hash::BuildHasherDefault<IntHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_field() {
        let k = FlowKey {
            src: 1,
            dst: 2,
            src_port: 3,
            dst_port: 4,
            proto: 6,
        };
        let h = k.hash();
        assert_ne!(h, FlowKey { src: 9, ..k }.hash());
        assert_ne!(h, FlowKey { dst: 9, ..k }.hash());
        assert_ne!(h, FlowKey { src_port: 9, ..k }.hash());
        assert_ne!(h, FlowKey { dst_port: 9, ..k }.hash());
        assert_ne!(h, FlowKey { proto: 17, ..k }.hash());
        assert_eq!(h, k.hash());
    }

    #[test]
    fn fixed_key_is_the_unkeyed_hash_of_before() {
        // The value the unkeyed hash (mix64(a ^ mix64(b ^ 0x9e37_79b9_7f4a_7c15))) gave; golden
        // fixtures that depend on it keep their bytes.
        let k = FlowKey {
            src: 0xc633_640a,
            dst: 0xc633_6464,
            src_port: 40001,
            dst_port: 80,
            proto: 6,
        };
        let a = (0xc633_640a_u64 << 32) | 0xc633_6464;
        let b = (40001u64 << 24) | (80 << 8) | 6;
        let h = mix64(a ^ mix64(b ^ 0x9e37_79b9_7f4a_7c15));
        assert_eq!(k.hash(), (h ^ (h >> 32)) as u32);
        assert_eq!(k.hash_keyed(&FlowHashKey::default()), k.hash());
    }

    #[test]
    fn keys_change_the_hash_and_are_deterministic() {
        let k1 = FlowHashKey::new([1, 2]);
        let k2 = FlowHashKey::new([1, 3]);
        let k3 = FlowHashKey::new([4, 2]);
        let mut differ = [0usize; 2];
        for p in 0..1000u16 {
            let k = FlowKey {
                src: 0xc633_640a,
                dst: 0xc633_6464,
                src_port: p,
                dst_port: 80,
                proto: 6,
            };
            assert_eq!(k.hash_keyed(&k1), k.hash_keyed(&FlowHashKey::new([1, 2])));
            differ[0] += usize::from(k.hash_keyed(&k1) != k.hash_keyed(&k2));
            differ[1] += usize::from(k.hash_keyed(&k1) != k.hash_keyed(&k3));
        }
        // Either key word changes (practically) every hash.
        assert!(differ.iter().all(|&d| d >= 999), "{differ:?}");
        assert_eq!(
            FlowHashKey::from_bytes([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0]),
            FlowHashKey::new([1, 256])
        );
        assert_ne!(FlowHashKey::random(), FlowHashKey::random());
        assert_eq!(format!("{:?}", FlowHashKey::new([7, 7])), "FlowHashKey(..)");
    }

    #[test]
    fn hash_spreads_sequential_ports_over_buckets() {
        let mut buckets = [0u32; 16];
        for p in 0..16_000u16 {
            let k = FlowKey {
                src: 0xc633_640a,
                dst: 0xc633_6464,
                src_port: p,
                dst_port: 80,
                proto: 6,
            };
            buckets[(k.hash() & 15) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "bucket count {b}");
        }
    }
}
