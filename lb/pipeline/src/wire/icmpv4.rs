//! ICMPv4 messages (RFC 792): the common 8-byte header, with the echo identifier and sequence
//! number views of its second word.
//!
//! **Contract:** after [`Icmpv4Packet::new_checked`] returns `Ok`, no accessor panics: the buffer
//! holds at least 8 bytes. The checksum covers the whole buffer.

use super::checksum::{self, ChecksumCapabilities};
use super::{get_u16, set_u16, Field, Rest, WireError};

/// Length of the ICMP header (also [`Icmpv4Packet::HEADER_LEN`]).
pub const HEADER_LEN: usize = 8;

/// Message type: echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Message type: destination unreachable.
pub const DST_UNREACHABLE: u8 = 3;
/// Message type: echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Message type: time exceeded (TTL or reassembly).
pub const TIME_EXCEEDED: u8 = 11;
/// Message type: parameter problem.
pub const PARAM_PROBLEM: u8 = 12;

/// Destination-unreachable code: fragmentation needed and DF set (RFC 1191: the next-hop MTU is
/// in bytes 6..8).
pub const FRAG_NEEDED: u8 = 4;

/// Whether `msg_type` is an error that quotes the offending datagram and that a host acts on
/// (RFC 1122 §3.2.2: destination unreachable, time exceeded, parameter problem). Source quench
/// (deprecated, RFC 6633) and redirects (never from beyond the first hop) are not.
pub const fn is_error(msg_type: u8) -> bool {
    matches!(msg_type, DST_UNREACHABLE | TIME_EXCEEDED | PARAM_PROBLEM)
}

/// Destination-unreachable code: port unreachable.
pub const PORT_UNREACHABLE: u8 = 3;

/// Bytes of the offending datagram's payload that an error message quotes after its IP header
/// (RFC 792; RFC 1812 allows more, hosts send this much).
pub const ERROR_QUOTED_PAYLOAD: usize = 8;

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

/// The ICMP messages clua reads and writes. The message data (echo data, or the quoted
/// datagram of an error) is the caller's: it follows the 8-byte header in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr {
    EchoRequest {
        ident: u16,
        seq_no: u16,
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
    },
    /// Destination unreachable (type 3) with its code ([`PORT_UNREACHABLE`], ...); the
    /// second word is unused (zero).
    DstUnreachable {
        code: u8,
    },
}

impl Icmpv4Repr {
    /// Reads the header with [`ChecksumCapabilities::default`]; see
    /// [`parse_with`](Self::parse_with).
    pub fn parse<T: AsRef<[u8]>>(packet: &Icmpv4Packet<T>) -> Result<Self, WireError> {
        Self::parse_with(packet, &ChecksumCapabilities::default())
    }

    /// Reads the header.
    ///
    /// # Errors
    /// `Truncated` for fewer than 8 bytes; `Malformed` for a bad checksum (verified over the
    /// whole buffer only if `caps.icmpv4.rx()`) or a message type other than the three above.
    pub fn parse_with<T: AsRef<[u8]>>(
        packet: &Icmpv4Packet<T>,
        caps: &ChecksumCapabilities,
    ) -> Result<Self, WireError> {
        packet.check_len()?;
        if caps.icmpv4.rx() && !packet.verify_checksum() {
            return Err(WireError::Malformed);
        }
        let (ident, seq_no) = (packet.echo_ident(), packet.echo_seq_no());
        match packet.msg_type() {
            ECHO_REQUEST => Ok(Icmpv4Repr::EchoRequest { ident, seq_no }),
            ECHO_REPLY => Ok(Icmpv4Repr::EchoReply { ident, seq_no }),
            DST_UNREACHABLE => Ok(Icmpv4Repr::DstUnreachable {
                code: packet.msg_code(),
            }),
            _ => Err(WireError::Malformed),
        }
    }

    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// 8: the header only (the data is the caller's).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header and, if `caps.icmpv4.tx()`, the checksum over the whole buffer (else
    /// 0), so the data must already be in place and the buffer must end where the message ends.
    /// The packet must hold at least 8 bytes.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Icmpv4Packet<T>,
        caps: &ChecksumCapabilities,
    ) {
        let (msg_type, code, ident, seq_no) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no } => (ECHO_REQUEST, 0, ident, seq_no),
            Icmpv4Repr::EchoReply { ident, seq_no } => (ECHO_REPLY, 0, ident, seq_no),
            // RFC 792: the second word of an error is "unused" (zero).
            Icmpv4Repr::DstUnreachable { code } => (DST_UNREACHABLE, code, 0, 0),
        };
        packet.set_msg_type(msg_type);
        packet.set_msg_code(code);
        packet.set_echo_ident(ident);
        packet.set_echo_seq_no(seq_no);
        if caps.icmpv4.tx() {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
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
    fn repr_round_trip_and_exact_bytes() {
        let caps = ChecksumCapabilities::software();
        let p = Icmpv4Packet::new_checked(&IPV4_ECHO_BYTES[20..]).unwrap();
        let repr = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1
            }
        );
        let mut out = [0xaau8; 16];
        out[8..].copy_from_slice(b"abcdefgh");
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]), &caps);
        assert_eq!(out, IPV4_ECHO_BYTES[20..]);

        // Port unreachable quoting 8 bytes: 03 03, checksum, zero word (checksum by python3).
        let mut err = [0xffu8; 16];
        err[8..].copy_from_slice(&[0x45, 0, 0, 0x1c, 0, 0, 0, 0]);
        let repr = Icmpv4Repr::DstUnreachable {
            code: PORT_UNREACHABLE,
        };
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut err[..]), &caps);
        assert_eq!(&err[..8], &[3, 3, 0xb7, 0xe0, 0, 0, 0, 0]);
        let p = Icmpv4Packet::new_checked(&err[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&p), Ok(repr));

        // A bad checksum is refused unless receive verification is off; unknown types always.
        err[2] ^= 1;
        let p = Icmpv4Packet::new_checked(&err[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p), Err(WireError::Malformed));
        let no_rx = ChecksumCapabilities::no_rx_verification();
        assert_eq!(Icmpv4Repr::parse_with(&p, &no_rx), Ok(repr));
        err[0] = 11;
        let p = Icmpv4Packet::new_checked(&err[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse_with(&p, &no_rx),
            Err(WireError::Malformed)
        );
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
