//! Wire formats: zero-copy views and high-level representations of the headers clua reads and
//! writes (Ethernet + 802.1Q, ARP, IPv4, TCP, UDP, ICMPv4 and the datagram its errors quote, VXLAN), in the style of smoltcp's
//! `wire` module.
//!
//! Each protocol has one file with:
//! - a `…Packet<T: AsRef<[u8]>>` (or `EthernetFrame`) view over a byte buffer, with getters for
//!   every field and setters where `T: AsMut<[u8]>`; field offsets live in a private `field`
//!   module;
//! - `new_unchecked` (no checks; accessors may panic on short buffers), `new_checked` (runs
//!   `check_len`, plus any validity checks the module documents) and `into_inner`;
//! - a `…Repr` with `parse`, `emit`, `header_len` and `buffer_len`, where the format has one.
//!
//! **Contract, for every module:** once `new_checked` has returned `Ok`, no accessor of that view
//! panics, whatever the bytes. Setters never change the length of anything, so the contract holds
//! after writing too (except where a setter is documented to change a length field, e.g.
//! `set_header_len`/`set_total_len`/`set_len`; re-check before reading again). Nothing here
//! allocates.
//!
//! Checksums: whether a `Repr` verifies a checksum when parsing and computes it when emitting is
//! decided by a [`ChecksumCapabilities`] (`parse_with` / `emit_with`; `parse` / `emit` use
//! [`ChecksumCapabilities::default`]). That default is where the fuzz bypass lives: built with
//! `--cfg fuzzing` (as cargo-fuzz does) it verifies nothing on receive, so that the fuzzer can
//! reach past the IPv4 header checksum.
// `cfg(fuzzing)` is set by cargo-fuzz, not by Cargo, so it is not in rustc's list of known cfgs.
#![allow(unexpected_cfgs)]

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp_quote;
pub mod icmpv4;
pub mod ipv4;
pub mod tcp;
pub mod udp;
pub mod vxlan;

#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzz;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::{Checksum, ChecksumCapabilities};
pub use ethernet::{
    is_broadcast, is_multicast, parse_l2, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    L2Info, BROADCAST,
};
pub use icmp_quote::{QuotedPacket, QuotedRepr};
pub use icmpv4::{Icmpv4Packet, Icmpv4Repr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use tcp::{TcpFlags, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};
pub use vxlan::{VxlanPacket, VxlanRepr, VXLAN_PORT};

/// Why a buffer is not a valid packet of the expected format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The buffer is shorter than the headers (or the length a length field claims).
    Truncated,
    /// A field holds a value this implementation does not accept (bad version, length field
    /// smaller than the header, unsupported hardware type, bad checksum, ...).
    Malformed,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated packet"),
            WireError::Malformed => f.write_str("malformed packet"),
        }
    }
}

impl std::error::Error for WireError {}

/// A field's byte range within a header.
type Field = core::ops::Range<usize>;
/// Everything from an offset to the end of the buffer.
type Rest = core::ops::RangeFrom<usize>;

#[inline]
fn get_u16(data: &[u8], f: Field) -> u16 {
    let b = &data[f];
    u16::from_be_bytes([b[0], b[1]])
}

#[inline]
fn get_u32(data: &[u8], f: Field) -> u32 {
    let b = &data[f];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[inline]
fn set_u16(data: &mut [u8], f: Field, v: u16) {
    data[f].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn set_u32(data: &mut [u8], f: Field, v: u32) {
    data[f].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn get_mac(data: &[u8], f: Field) -> EthernetAddress {
    let b = &data[f];
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

#[inline]
fn get_ipv4(data: &[u8], f: Field) -> core::net::Ipv4Addr {
    let b = &data[f];
    core::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        assert_eq!(WireError::Truncated.to_string(), "truncated packet");
        assert_eq!(WireError::Malformed.to_string(), "malformed packet");
    }

    /// xorshift64*: tiny, deterministic, good enough to make junk.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn random_buffers_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut buf = [0u8; 100];
        for _ in 0..20_000 {
            let len = (rng.next() % 100) as usize;
            for b in &mut buf[..len] {
                *b = rng.next() as u8;
            }
            fuzz::exercise(&buf[..len]);
        }
    }

    /// Every sample, every prefix of it and every single-byte mutation (three values per byte)
    /// goes through every parser.
    #[test]
    fn samples_prefixes_and_mutations_never_panic() {
        for sample in fuzz::SAMPLES {
            fuzz::exercise(sample);
            for n in 0..sample.len() {
                fuzz::exercise(&sample[..n]);
            }
            let mut m = sample.to_vec();
            for i in 0..m.len() {
                let orig = m[i];
                for v in [orig ^ 0x01, orig ^ 0x80, 0x00, 0xff] {
                    m[i] = v;
                    fuzz::exercise(&m);
                }
                m[i] = orig;
            }
        }
    }
}
