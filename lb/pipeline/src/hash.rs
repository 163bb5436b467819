//! Flow hashing: cheap, deterministic, good enough to spread flows over table buckets, outer
//! source addresses and VXLAN source ports.

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

impl FlowKey {
    /// A 32-bit hash of the key (two rounds of a murmur3-style finaliser over 64-bit words).
    #[inline]
    pub fn hash(&self) -> u32 {
        let a = ((self.src as u64) << 32) | self.dst as u64;
        let b = ((self.src_port as u64) << 24) | ((self.dst_port as u64) << 8) | self.proto as u64;
        let h = mix64(a ^ mix64(b ^ 0x9e37_79b9_7f4a_7c15));
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
