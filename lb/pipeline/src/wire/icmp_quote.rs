//! The datagram an ICMPv4 error quotes (RFC 792: "Internet Header + 64 bits of Original Data
//! Datagram"; RFC 1812 §4.3.2.3 lets routers quote more): an IPv4 header, options included,
//! followed by at least the first 8 bytes of its transport header, which for TCP and UDP hold
//! both ports.
//!
//! The quote is usually cut short, so its total-length field describes the original datagram,
//! not the buffer: [`Ipv4Packet`](super::ipv4::Ipv4Packet)'s checks (which require the whole
//! datagram) do not apply, and this view checks only what the quote must hold.
//!
//! **Contract:** after [`QuotedPacket::new_checked`] returns `Ok`, no accessor panics: the buffer
//! holds at least 20 bytes, version is 4, `header_len >= 20`, and at least
//! `header_len + 8` bytes. The quoted header's checksum is not verified (hosts do not check it
//! either: the outer ICMP checksum covers the quote).

use core::net::Ipv4Addr;

use super::checksum;
use super::{get_ipv4, get_u16, get_u32, set_u16, set_u32, Field, WireError};

/// Bytes of the transport header a quote must hold (RFC 792's 64 bits).
pub const MIN_L4_LEN: usize = 8;
/// The shortest valid quote: a 20-byte IPv4 header and 8 bytes of transport header.
pub const MIN_LEN: usize = 20 + MIN_L4_LEN;

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
    /// Relative to the transport header.
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    /// TCP: the sequence number; UDP: length and checksum.
    pub const L4_WORD: Field = 4..8;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of the datagram quoted by an ICMPv4 error (the error's data, bytes 8..).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> QuotedPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        QuotedPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks everything the accessors rely on.
    ///
    /// # Errors
    /// - `Truncated`: fewer than 20 bytes, or fewer than `header_len + 8`;
    /// - `Malformed`: version is not 4, or `header_len < 20`.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < 20 {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::Malformed);
        }
        let hl = usize::from(self.header_len());
        if hl < 20 {
            return Err(WireError::Malformed);
        }
        if b.len() < hl + MIN_L4_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// The original datagram's total length (not the quote's).
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The quoted datagram's protocol.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// The quoted transport header and whatever follows it in the quote (at least 8 bytes).
    pub fn l4(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// TCP/UDP source port of the quoted datagram (bytes 0..2 of its transport header).
    pub fn src_port(&self) -> u16 {
        get_u16(self.l4(), field::SRC_PORT)
    }

    /// TCP/UDP destination port of the quoted datagram (bytes 2..4).
    pub fn dst_port(&self) -> u16 {
        get_u16(self.l4(), field::DST_PORT)
    }

    /// Bytes 4..8 of the quoted transport header: the TCP sequence number, or UDP's length and
    /// checksum.
    pub fn l4_word(&self) -> u32 {
        get_u32(self.l4(), field::L4_WORD)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> QuotedPacket<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60); re-check
    /// before reading again.
    pub fn set_version_and_header_len(&mut self, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, tos: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = tos;
    }

    pub fn set_total_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, ident: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Writes the flags and fragment offset word: DF, MF and `offset` bytes (a multiple of 8).
    pub fn set_flags_and_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    pub fn set_hop_limit(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_next_header(&mut self, proto: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = proto;
    }

    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes and writes the quoted IPv4 header's checksum (over `header_len` bytes).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = usize::from(self.header_len());
        let sum = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(sum);
    }

    fn l4_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        &mut self.buffer.as_mut()[hl..]
    }

    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.l4_mut(), field::SRC_PORT, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.l4_mut(), field::DST_PORT, port);
    }

    pub fn set_l4_word(&mut self, value: u32) {
        set_u32(self.l4_mut(), field::L4_WORD, value);
    }
}

/// What clua reads from a quote (and writes, for tests and tools): the quoted datagram's
/// addresses, protocol, ports and fragment offset. Emitted as a 20-byte header (no options)
/// with its checksum, plus the first 8 bytes of the transport header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotedRepr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub next_header: u8,
    /// The original datagram's total length.
    pub total_len: u16,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// In bytes; a non-zero offset means the quote holds no transport header, only data.
    pub frag_offset: u16,
    pub hop_limit: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes 4..8 of the transport header (TCP sequence number, UDP length and checksum).
    pub l4_word: u32,
}

impl QuotedRepr {
    /// Reads a checked quote. Never fails once `new_checked` succeeded (the `Result` is for
    /// symmetry with the other Reprs, and re-checks the buffer).
    pub fn parse<T: AsRef<[u8]>>(p: &QuotedPacket<T>) -> Result<Self, WireError> {
        p.check_len()?;
        Ok(QuotedRepr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            total_len: p.total_len(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            hop_limit: p.hop_limit(),
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            l4_word: p.l4_word(),
        })
    }

    /// [`MIN_LEN`]: 28.
    pub const fn buffer_len(&self) -> usize {
        MIN_LEN
    }

    /// Writes the quote into the first 28 bytes of `p` (which must hold them), TOS 0.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut QuotedPacket<T>) {
        p.set_version_and_header_len(20);
        p.set_dscp_ecn(0);
        p.set_total_len(self.total_len);
        p.set_ident(self.ident);
        p.set_flags_and_offset(self.dont_frag, self.more_frags, self.frag_offset);
        p.set_hop_limit(self.hop_limit);
        p.set_next_header(self.next_header);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_l4_word(self.l4_word);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A quote of a 1500-byte TCP segment web 198.51.100.100:80 → client 198.51.100.10:40001,
    /// DF, TTL 63, ident 0x1234, seq 0x01020304; the IPv4 checksum 0xcf12 computed with python3
    /// (RFC 1071 over the 20 bytes with the field 0).
    pub(crate) static QUOTE_BYTES: [u8; 28] = [
        0x45, 0x00, 0x05, 0xdc, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x06, 0xcf, 0x12, 0xc6, 0x33, //
        0x64, 0x64, 0xc6, 0x33, 0x64, 0x0a, 0x00, 0x50, 0x9c, 0x41, 0x01, 0x02, 0x03, 0x04,
    ];

    fn repr() -> QuotedRepr {
        QuotedRepr {
            src_addr: Ipv4Addr::new(198, 51, 100, 100),
            dst_addr: Ipv4Addr::new(198, 51, 100, 10),
            next_header: 6,
            total_len: 1500,
            ident: 0x1234,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            hop_limit: 63,
            src_port: 80,
            dst_port: 40001,
            l4_word: 0x0102_0304,
        }
    }

    #[test]
    fn parse_known_bytes() {
        let p = QuotedPacket::new_checked(&QUOTE_BYTES[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.total_len()), (4, 20, 1500));
        assert_eq!(p.checksum(), 0xcf12);
        assert_eq!(p.l4(), &QUOTE_BYTES[20..]);
        assert_eq!(QuotedRepr::parse(&p), Ok(repr()));
        // The checksum is a real one.
        assert_eq!(checksum::checksum(&QUOTE_BYTES[..20]), 0);
    }

    #[test]
    fn emit_exact_bytes_and_round_trip() {
        let mut out = [0xaau8; 28];
        repr().emit(&mut QuotedPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, QUOTE_BYTES);
        let p = QuotedPacket::new_checked(&out[..]).unwrap();
        assert_eq!(QuotedRepr::parse(&p), Ok(repr()));
        assert_eq!(repr().buffer_len(), MIN_LEN);
    }

    #[test]
    fn setters_write_back_the_same_bytes() {
        let p = QuotedPacket::new_checked(&QUOTE_BYTES[..]).unwrap();
        let mut copy = [0u8; 28];
        let mut m = QuotedPacket::new_unchecked(&mut copy[..]);
        m.set_version_and_header_len(p.header_len());
        m.set_dscp_ecn(p.dscp_ecn());
        m.set_total_len(p.total_len());
        m.set_ident(p.ident());
        m.set_flags_and_offset(p.dont_frag(), p.more_frags(), p.frag_offset());
        m.set_hop_limit(p.hop_limit());
        m.set_next_header(p.next_header());
        m.set_checksum(p.checksum());
        m.set_src_addr(p.src_addr());
        m.set_dst_addr(p.dst_addr());
        m.set_src_port(p.src_port());
        m.set_dst_port(p.dst_port());
        m.set_l4_word(p.l4_word());
        assert_eq!(copy, QUOTE_BYTES);
    }

    #[test]
    fn options_move_the_transport_header() {
        // IHL 6: one 4-byte option (NOPs) before the ports.
        let mut b = [0u8; 32];
        b[..20].copy_from_slice(&QUOTE_BYTES[..20]);
        b[0] = 0x46;
        b[20..24].copy_from_slice(&[1, 1, 1, 1]);
        b[24..].copy_from_slice(&QUOTE_BYTES[20..]);
        let p = QuotedPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.header_len(), p.src_port(), p.dst_port()),
            (24, 80, 40001)
        );
        // ... and then 8 bytes after the options are needed.
        assert_eq!(
            QuotedPacket::new_checked(&b[..31]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn bad_quotes_are_rejected() {
        for n in 0..MIN_LEN {
            assert_eq!(
                QuotedPacket::new_checked(&QUOTE_BYTES[..n]),
                Err(WireError::Truncated),
                "{n} bytes"
            );
        }
        let mut b = QUOTE_BYTES;
        b[0] = 0x65; // version 6
        assert_eq!(QuotedPacket::new_checked(&b[..]), Err(WireError::Malformed));
        for ihl in 0..5u8 {
            b[0] = 0x40 | ihl;
            assert_eq!(QuotedPacket::new_checked(&b[..]), Err(WireError::Malformed));
        }
        b[0] = 0x4f; // 60-byte header claimed, 28 bytes there
        assert_eq!(QuotedPacket::new_checked(&b[..]), Err(WireError::Truncated));
    }
}
