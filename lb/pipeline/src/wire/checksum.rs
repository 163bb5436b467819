//! The Internet checksum (RFC 1071): one's complement sum of big-endian 16-bit words.
//!
//! Partial sums are `u32` values congruent (mod 0xffff) to the one's complement sum; combine them
//! with [`combine`], finish with [`fold`] and complement (or call [`checksum`] for one slice).
//! Nothing here panics or allocates.
//!
//! [`ChecksumCapabilities`] says, per protocol, whether software verifies a checksum on receive
//! and computes it on transmit, or leaves that to someone else (the NIC's offload, or nobody).
//! It is the one place where two decisions live: a NIC that offloads checksums (the DPDK port
//! then asks for a [`Checksum::Rx`] set, so the pipeline stops computing what the NIC fills in),
//! and the fuzz bypass: under `cfg(fuzzing)` [`ChecksumCapabilities::default`] verifies nothing
//! on receive, so that mutated frames get past the IPv4 header checksum. Tests and aliasd builds
//! never set `cfg(fuzzing)`.

use core::net::Ipv4Addr;

/// Who handles one kind of checksum in software: on receive (verify), on transmit (compute),
/// both or neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checksum {
    /// Verified on receive and computed on transmit.
    #[default]
    Both,
    /// Verified on receive; on transmit left for the NIC (see [`Checksum::tx`]).
    Rx,
    /// Computed on transmit; not verified on receive (the NIC did, or nobody needs to).
    Tx,
    /// Neither.
    None,
}

impl Checksum {
    /// Whether received checksums are verified in software.
    pub const fn rx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Rx)
    }

    /// Whether transmitted checksums are computed in software. When not, emitters leave the
    /// field as DPDK's TX checksum offload wants it: 0 for the IPv4 header, the pseudo-header
    /// sum (not complemented) for TCP and UDP, 0 for ICMP (which NICs do not offload: only set
    /// this for ICMP when something else fills it in).
    pub const fn tx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Tx)
    }
}

/// Per-protocol [`Checksum`] settings: one value for the whole pipeline (in its config),
/// consulted by classify on receive and by encap and refuse on transmit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChecksumCapabilities {
    /// The IPv4 header checksum.
    pub ipv4: Checksum,
    pub tcp: Checksum,
    pub udp: Checksum,
    pub icmpv4: Checksum,
}

impl ChecksumCapabilities {
    /// Everything verified and computed in software (the default outside fuzzing).
    pub const fn software() -> Self {
        ChecksumCapabilities {
            ipv4: Checksum::Both,
            tcp: Checksum::Both,
            udp: Checksum::Both,
            icmpv4: Checksum::Both,
        }
    }

    /// Nothing verified on receive, everything computed on transmit: what a fuzzer needs to
    /// reach past the checksums of mutated input while still checking what is sent.
    pub const fn no_rx_verification() -> Self {
        ChecksumCapabilities {
            ipv4: Checksum::Tx,
            tcp: Checksum::Tx,
            udp: Checksum::Tx,
            icmpv4: Checksum::Tx,
        }
    }
}

impl Default for ChecksumCapabilities {
    /// [`software`](Self::software), except when built with `--cfg fuzzing` (cargo-fuzz):
    /// [`no_rx_verification`](Self::no_rx_verification). This is the crate's only fuzz bypass.
    fn default() -> Self {
        if cfg!(fuzzing) {
            Self::no_rx_verification()
        } else {
            Self::software()
        }
    }
}

/// Reduces a 64-bit accumulator to 32 bits without changing its value mod 0xffff
/// (2^32 ≡ 1 mod 0xffff).
#[inline]
fn reduce(mut acc: u64) -> u32 {
    while acc > u64::from(u32::MAX) {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// The 16-bit one's complement partial sum of `data`, read as big-endian words; an odd final
/// byte is padded with a zero byte on the right.
///
/// Read four bytes at a time (RFC 1071 §2(C): a 32-bit word `hi:lo` is `hi + lo` mod 0xffff,
/// since 2^16 ≡ 1), so an IPv4 header is five additions, not ten (verified per packet).
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        acc += u64::from(u32::from_be_bytes([q[0], q[1], q[2], q[3]]));
    }
    match *quads.remainder() {
        [a, b, c] => acc += u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => acc += u64::from(u16::from_be_bytes([a, b])),
        [a] => acc += u64::from(a) << 8,
        _ => {}
    }
    reduce(acc)
}

/// Folds the carries of a partial sum into its low 16 bits.
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data`: `!fold(sum(data))`. A buffer holding a correct checksum
/// field yields 0.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 §3.1, RFC 768):
/// source, destination, zero, protocol, and the upper-layer length `len`.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(proto),
        len,
    ];
    words.iter().map(|&w| u32::from(w)).sum()
}

/// Adds partial sums together (still a partial sum; [`fold`] it to finish).
pub fn combine(sums: &[u32]) -> u32 {
    reduce(sums.iter().map(|&s| u64::from(s)).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities() {
        use Checksum::*;
        let rx: Vec<bool> = [Both, Rx, Tx, None].iter().map(|c| c.rx()).collect();
        let tx: Vec<bool> = [Both, Rx, Tx, None].iter().map(|c| c.tx()).collect();
        assert_eq!(rx, [true, true, false, false]);
        assert_eq!(tx, [true, false, true, false]);
        // Tests are not built with cfg(fuzzing): the default verifies and computes everything.
        assert_eq!(
            ChecksumCapabilities::default(),
            ChecksumCapabilities::software()
        );
        let f = ChecksumCapabilities::no_rx_verification();
        assert!(!f.ipv4.rx() && f.ipv4.tx() && !f.tcp.rx() && f.icmpv4.tx());
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2 (after folding).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_right() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn fold_carries() {
        assert_eq!(fold(0x0001_ffff), 0x0001);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x1_0000), 0x0001);
    }

    #[test]
    fn combine_equals_sum_of_concatenation() {
        let a = [0xde, 0xad, 0xbe, 0xef];
        let b = [0x01, 0x02, 0x03];
        let whole = [0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03];
        assert_eq!(fold(combine(&[sum(&a), sum(&b)])), fold(sum(&whole)));
        assert_eq!(
            fold(combine(&[u32::MAX, u32::MAX, 5])),
            fold(combine(&[fold(u32::MAX).into(), fold(u32::MAX).into(), 5]))
        );
    }

    /// Summing four bytes at a time folds to what the plain 16-bit word sum folds to, at every
    /// length and alignment of the tail.
    #[test]
    fn quad_sum_folds_like_the_word_sum() {
        fn words(data: &[u8]) -> u32 {
            let mut acc: u64 = 0;
            for w in data.chunks(2) {
                acc += u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            }
            reduce(acc)
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..300 {
            for fill in [None, Some(0x00), Some(0xff)] {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        fill.unwrap_or(x as u8)
                    })
                    .collect();
                assert_eq!(fold(sum(&data)), fold(words(&data)), "len {len} {fill:?}");
            }
        }
    }

    #[test]
    fn large_buffer_does_not_overflow() {
        let data = [0xffu8; 200_000];
        assert_eq!(fold(sum(&data)), 0xffff);
    }

    #[test]
    fn pseudo_header_words() {
        let src = Ipv4Addr::new(198, 51, 100, 10);
        let dst = Ipv4Addr::new(198, 51, 100, 100);
        let expect = 0xc633 + 0x640a + 0xc633 + 0x6464 + 6 + 20;
        assert_eq!(pseudo_header(src, dst, 6, 20), expect);
    }
}
