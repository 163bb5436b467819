//! UDP datagrams (RFC 768).
//!
//! **Contract:** after [`UdpPacket::new_checked`] returns `Ok`, no accessor panics: the buffer
//! holds at least 8 bytes and `8 <= len <= buffer length`. Bytes past `len` are ignored.

use core::net::Ipv4Addr;

use super::checksum;
use super::ipv4::protocol;
use super::{get_u16, set_u16, Field, WireError};

/// Length of the UDP header (also [`UdpPacket::HEADER_LEN`]).
pub const HEADER_LEN: usize = 8;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// 8.
    pub const HEADER_LEN: usize = self::HEADER_LEN;

    /// Wraps a buffer without checking it; accessors may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 8 bytes or than the length field; `Malformed`
    /// if the length field is below 8.
    pub fn check_len(&self) -> Result<(), WireError> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > buf_len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Bytes `8..len`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    fn compute_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        checksum::fold(checksum::combine(&[
            checksum::pseudo_header(src, dst, protocol::UDP, len),
            checksum::sum(data),
        ]))
    }

    /// Whether the checksum over the pseudo-header and bytes `0..len` is correct. A zero
    /// checksum means "none" and verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || self.compute_sum(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    pub fn set_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes and writes the checksum over the pseudo-header and bytes `0..len`; a computed
    /// zero is sent as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = !self.compute_sum(src, dst);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    /// Bytes `8..len`, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A UDP header's ports (length and checksum are derived when emitting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// Reads the ports. The checksum is *not* verified (use [`UdpPacket::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// 8: the header only.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with length `8 + payload_len` and, if `with_checksum`, the checksum
    /// (else 0). The payload must already be in place and the packet must hold
    /// `8 + payload_len` bytes; `payload_len` must be at most 65527.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        payload_len: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        with_checksum: bool,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + payload_len) as u16);
        if with_checksum {
            packet.fill_checksum(src, dst);
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::ipv4::tests::{ALIAS, CLIENT};
    use super::*;

    /// IPv4/UDP 198.51.100.10:53000 → 198.51.100.100:53, payload "clua", DF, TTL 64; checksums
    /// computed independently with Python.
    pub(crate) static IPV4_UDP_BYTES: [u8; 32] = [
        0x45, 0x00, 0x00, 0x20, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xe5, 0xf7, 0xc6, 0x33, //
        0x64, 0x0a, 0xc6, 0x33, 0x64, 0x64, 0xcf, 0x08, 0x00, 0x35, 0x00, 0x0c, 0x02, 0xf5, //
        0x63, 0x6c, 0x75, 0x61,
    ];

    fn repr() -> UdpRepr {
        UdpRepr {
            src_port: 53000,
            dst_port: 53,
        }
    }

    #[test]
    fn parse_known_bytes() {
        let p = UdpPacket::new_checked(&IPV4_UDP_BYTES[20..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (53000, 53, 12));
        assert_eq!(p.checksum(), 0x02f5);
        assert_eq!(p.payload(), b"clua");
        assert!(p.verify_checksum(CLIENT, ALIAS));
        assert!(!p.verify_checksum(ALIAS, ALIAS));
        assert_eq!(UdpRepr::parse(&p).unwrap(), repr());
    }

    #[test]
    fn emit_exact_bytes() {
        let mut out = [0u8; 12];
        out[8..].copy_from_slice(b"clua");
        repr().emit(
            &mut UdpPacket::new_unchecked(&mut out[..]),
            4,
            CLIENT,
            ALIAS,
            true,
        );
        assert_eq!(out, IPV4_UDP_BYTES[20..]);
        // Without a checksum.
        repr().emit(
            &mut UdpPacket::new_unchecked(&mut out[..]),
            4,
            CLIENT,
            ALIAS,
            false,
        );
        assert_eq!(&out[6..8], &[0, 0]);
        let p = UdpPacket::new_checked(&out[..]).unwrap();
        assert!(p.verify_checksum(ALIAS, CLIENT)); // 0 = none
    }

    #[test]
    fn zero_sum_sent_as_ffff() {
        // Search a source port whose checksum computes to zero, then check it is sent as 0xffff.
        let mut b = [0u8; 8];
        for port in 0..=u16::MAX {
            let r = UdpRepr {
                src_port: port,
                dst_port: 0,
            };
            r.emit(
                &mut UdpPacket::new_unchecked(&mut b[..]),
                0,
                CLIENT,
                ALIAS,
                true,
            );
            let p = UdpPacket::new_checked(&b[..]).unwrap();
            assert!(p.verify_checksum(CLIENT, ALIAS));
            if p.checksum() == 0xffff {
                return;
            }
        }
        panic!("no port gives a zero checksum");
    }

    #[test]
    fn length_checks() {
        let mut b = [0u8; 12];
        b.copy_from_slice(&IPV4_UDP_BYTES[20..]);
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]), Err(WireError::Malformed));
        b[5] = 13;
        assert_eq!(UdpPacket::new_checked(&b[..]), Err(WireError::Truncated));
        b[5] = 8;
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        assert!(p.payload().is_empty());
        p.set_len(12);
        p.payload_mut().copy_from_slice(b"abcd");
        assert_eq!(p.payload(), b"abcd");
    }

    #[test]
    fn truncated_prefixes_rejected() {
        let sample = &IPV4_UDP_BYTES[20..];
        for n in 0..sample.len() {
            assert_eq!(
                UdpPacket::new_checked(&sample[..n]),
                Err(WireError::Truncated)
            );
        }
    }
}
