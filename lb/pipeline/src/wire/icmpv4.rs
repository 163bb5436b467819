//! ICMPv4 messages (RFC 792): the common 8-byte header, with the echo identifier and sequence
//! number views of its second word.
//!
//! **Contract:** after [`Icmpv4Packet::new_checked`] returns `Ok`, no accessor panics: the buffer
//! holds at least 8 bytes. The checksum covers the whole buffer.

use super::checksum;
use super::{get_u16, set_u16, Field, Rest, WireError};

/// Length of the ICMP header (also [`Icmpv4Packet::HEADER_LEN`]).
pub const HEADER_LEN: usize = 8;

/// Message type: echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Message type: destination unreachable.
pub const DST_UNREACHABLE: u8 = 3;
/// Message type: echo request.
pub const ECHO_REQUEST: u8 = 8;

mod field {
    use super::{Field, Rest};
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const DATA: Rest = 8..;
}

/// A read/write view of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// 8.
    pub const HEADER_LEN: usize = self::HEADER_LEN;

    /// Wraps a buffer without checking it; accessors may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 8 bytes.
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Identifier of an echo request/reply (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Sequence number of an echo request/reply (bytes 6..8).
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Bytes `8..`: echo data, or the offending datagram of an error message.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Whether the checksum over the whole buffer is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Computes and writes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }

    /// Bytes `8..`, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// IPv4/ICMP echo request 198.51.100.10 → 198.51.100.100, ident 0x1234, seq 1, data
    /// "abcdefgh"; checksums computed independently with Python.
    pub(crate) static IPV4_ECHO_BYTES: [u8; 36] = [
        0x45, 0x00, 0x00, 0x24, 0x00, 0x00, 0x40, 0x00, 0x40, 0x01, 0xe6, 0x03, 0xc6, 0x33, //
        0x64, 0x0a, 0xc6, 0x33, 0x64, 0x64, 0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, //
        0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    ];

    #[test]
    fn parse_known_bytes() {
        let p = Icmpv4Packet::new_checked(&IPV4_ECHO_BYTES[20..]).unwrap();
        assert_eq!((p.msg_type(), p.msg_code()), (ECHO_REQUEST, 0));
        assert_eq!(p.checksum(), 0x5435);
        assert_eq!((p.echo_ident(), p.echo_seq_no()), (0x1234, 1));
        assert_eq!(p.data(), b"abcdefgh");
        assert!(p.verify_checksum());
    }

    #[test]
    fn emit_exact_bytes() {
        let mut out = [0u8; 16];
        let mut p = Icmpv4Packet::new_unchecked(&mut out[..]);
        p.set_msg_type(ECHO_REQUEST);
        p.set_msg_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(b"abcdefgh");
        p.fill_checksum();
        assert_eq!(out, IPV4_ECHO_BYTES[20..]);
    }

    #[test]
    fn echo_reply_from_request() {
        let mut b = [0u8; 16];
        b.copy_from_slice(&IPV4_ECHO_BYTES[20..]);
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(ECHO_REPLY);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.checksum(), 0x5c35);
        assert_eq!(DST_UNREACHABLE, 3);
    }

    #[test]
    fn truncated_prefixes_rejected() {
        let sample = &IPV4_ECHO_BYTES[20..];
        for n in 0..HEADER_LEN {
            assert_eq!(
                Icmpv4Packet::new_checked(&sample[..n]),
                Err(WireError::Truncated)
            );
        }
        assert!(Icmpv4Packet::new_checked(&sample[..8]).is_ok());
    }
}
