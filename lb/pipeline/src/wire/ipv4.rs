//! IPv4 headers (RFC 791).
//!
//! **Contract:** after [`Ipv4Packet::new_checked`] returns `Ok`, no accessor panics: the buffer
//! holds at least 20 bytes, version is 4, and `20 <= header_len <= total_len <= buffer length`.
//! Bytes past `total_len` (e.g. Ethernet padding) are ignored by [`Ipv4Packet::payload`].
//! Options are kept in the buffer but not interpreted.

use core::net::Ipv4Addr;

use super::checksum::{self, ChecksumCapabilities};
use super::{get_ipv4, get_u16, set_u16, Field, WireError};

/// Length of a header without options (also [`Ipv4Packet::MIN_HEADER_LEN`]).
pub const MIN_HEADER_LEN: usize = 20;

/// IP protocol numbers.
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
}

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
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// 20.
    pub const MIN_HEADER_LEN: usize = self::MIN_HEADER_LEN;

    /// Wraps a buffer without checking it; accessors may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
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
    /// - `Truncated`: buffer shorter than 20 bytes, than `header_len` or than `total_len`;
    /// - `Malformed`: version is not 4, `header_len < 20` or `total_len < header_len`.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::Malformed);
        }
        let header_len = usize::from(self.header_len());
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if header_len > len {
            return Err(WireError::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(WireError::Malformed);
        }
        if total_len > len {
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

    /// The whole TOS byte: DSCP (high 6 bits) and ECN (low 2 bits).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

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

    /// Whether this is a fragment: MF set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// The protocol number ([`protocol`]).
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

    /// Whether the header checksum (over `header_len` bytes, options included) is correct.
    pub fn verify_checksum(&self) -> bool {
        let data = self.buffer.as_ref();
        checksum::checksum(&data[..usize::from(self.header_len())]) == 0
    }

    /// Bytes `header_len..total_len`.
    pub fn payload(&self) -> &[u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4; at most 60).
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
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

    /// Clears the three flag bits, keeping the fragment offset.
    pub fn clear_flags(&mut self) {
        let v = get_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK;
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DF, value);
    }

    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MF, value);
    }

    fn set_flag(&mut self, flag: u16, value: bool) {
        let v = get_u16(self.buffer.as_ref(), field::FLG_OFF);
        let v = if value { v | flag } else { v & !flag };
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    /// Sets the fragment offset in bytes (a multiple of 8; the low 3 bits are dropped).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let v = get_u16(self.buffer.as_ref(), field::FLG_OFF) & !OFFSET_MASK;
        set_u16(self.buffer.as_mut(), field::FLG_OFF, v | (offset >> 3));
    }

    /// Sets the TTL.
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

    /// Computes and writes the header checksum (over `header_len` bytes).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = {
            let data = self.buffer.as_ref();
            checksum::checksum(&data[..usize::from(self.header_len())])
        };
        self.set_checksum(sum);
    }

    /// Bytes `header_len..total_len`, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// An IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    /// Protocol number ([`protocol`]).
    pub next_header: u8,
    /// `total_len - header_len`.
    pub payload_len: usize,
    /// TTL.
    pub hop_limit: u8,
    /// The TOS byte.
    pub dscp_ecn: u8,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Reads a header. Options are skipped; fragments are accepted (check
    /// [`Ipv4Packet::is_fragment`] if they matter).
    ///
    /// # Errors
    /// Whatever [`Ipv4Packet::check_len`] returns, and `Malformed` for a bad header checksum
    /// when [`ChecksumCapabilities::default`] verifies it (not under `cfg(fuzzing)`).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self, WireError> {
        Self::parse_with(packet, &ChecksumCapabilities::default())
    }

    /// [`parse`](Self::parse), verifying the header checksum only if `caps.ipv4.rx()`.
    pub fn parse_with<T: AsRef<[u8]>>(
        packet: &Ipv4Packet<T>,
        caps: &ChecksumCapabilities,
    ) -> Result<Self, WireError> {
        packet.check_len()?;
        if caps.ipv4.rx() && !packet.verify_checksum() {
            return Err(WireError::Malformed);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len() - u16::from(packet.header_len())),
            hop_limit: packet.hop_limit(),
            dscp_ecn: packet.dscp_ecn(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// 20.
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// 20: the header only (the payload is the caller's).
    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes a 20-byte header (ident 0, no fragmentation, total length
    /// `20 + payload_len`) and its checksum; the payload is left alone. The packet must hold at
    /// least 20 bytes; `payload_len` must be at most 65515.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        self.emit_with(packet, &ChecksumCapabilities::default());
    }

    /// [`emit`](Self::emit), computing the checksum only if `caps.ipv4.tx()` (else the field is
    /// 0, for the NIC's IPv4 checksum offload).
    #[inline]
    pub fn emit_with<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        caps: &ChecksumCapabilities,
    ) {
        packet.set_version(4);
        packet.set_header_len(MIN_HEADER_LEN as u8);
        packet.set_dscp_ecn(self.dscp_ecn);
        packet.set_total_len((MIN_HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(0);
        set_u16(packet.buffer.as_mut(), field::FLG_OFF, 0);
        packet.set_dont_frag(self.dont_frag);
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        if caps.ipv4.tx() {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// IPv4/TCP SYN 198.51.100.10:40000 → 198.51.100.100:80, DF, TTL 64, no options, seq
    /// 0x3ade68b1, window 64240. Both checksums correct (computed independently with Python).
    pub(crate) static SYN_BYTES: [u8; 40] = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xe5, 0xfa, 0xc6, 0x33, //
        0x64, 0x0a, 0xc6, 0x33, 0x64, 0x64, 0x9c, 0x40, 0x00, 0x50, 0x3a, 0xde, 0x68, 0xb1, //
        0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0x1f, 0xfc, 0x00, 0x00,
    ];

    /// The same SYN as Linux sends it: ident 0x1c46, TCP options MSS 1460, SACK-permitted,
    /// timestamps, NOP, window scale 7.
    pub(crate) static SYN_OPTS_BYTES: [u8; 60] = [
        0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0xc9, 0xa0, 0xc6, 0x33, //
        0x64, 0x0a, 0xc6, 0x33, 0x64, 0x64, 0x9c, 0x40, 0x00, 0x50, 0x3a, 0xde, 0x68, 0xb1, //
        0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0xff, 0xca, 0x00, 0x00, 0x02, 0x04, //
        0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x8a, 0x3d, 0x2e, 0x11, 0x00, 0x00, 0x00, 0x00, //
        0x01, 0x03, 0x03, 0x07,
    ];

    pub(crate) const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    pub(crate) const ALIAS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

    fn syn_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: CLIENT,
            dst_addr: ALIAS,
            next_header: protocol::TCP,
            payload_len: 20,
            hop_limit: 64,
            dscp_ecn: 0,
            dont_frag: true,
        }
    }

    #[test]
    fn parse_known_bytes() {
        let p = Ipv4Packet::new_checked(&SYN_BYTES[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.ident(), 0);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.next_header(), protocol::TCP);
        assert_eq!(p.checksum(), 0xe5fa);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &SYN_BYTES[20..]);
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), syn_repr());

        let p = Ipv4Packet::new_checked(&SYN_OPTS_BYTES[..]).unwrap();
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.verify_checksum());
        assert_eq!(
            Ipv4Repr::parse(&p).unwrap(),
            Ipv4Repr {
                payload_len: 40,
                ..syn_repr()
            }
        );
    }

    #[test]
    fn emit_exact_bytes() {
        let mut bytes = [0xffu8; 40];
        bytes[20..].copy_from_slice(&SYN_BYTES[20..]);
        let repr = syn_repr();
        assert_eq!(repr.buffer_len(), 20);
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, SYN_BYTES);
    }

    #[test]
    fn bad_checksum_is_malformed() {
        let mut b = SYN_BYTES;
        b[11] ^= 1;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::Malformed));
        // Unless the checksum is someone else's to verify.
        let caps = ChecksumCapabilities::no_rx_verification();
        assert_eq!(Ipv4Repr::parse_with(&p, &caps), Ok(syn_repr()));
    }

    #[test]
    fn emit_without_tx_checksum_leaves_zero() {
        let mut bytes = [0xffu8; 20];
        let caps = ChecksumCapabilities {
            ipv4: super::super::Checksum::Rx,
            ..ChecksumCapabilities::software()
        };
        syn_repr().emit_with(&mut Ipv4Packet::new_unchecked(&mut bytes[..]), &caps);
        let mut want = [0u8; 20];
        want.copy_from_slice(&SYN_BYTES[..20]);
        want[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn truncated_prefixes_rejected() {
        for sample in [&SYN_BYTES[..], &SYN_OPTS_BYTES[..]] {
            for n in 0..sample.len() {
                assert_eq!(
                    Ipv4Packet::new_checked(&sample[..n]),
                    Err(WireError::Truncated)
                );
            }
        }
    }

    #[test]
    fn check_len_cases() {
        let check = |f: &dyn Fn(&mut [u8; 40])| {
            let mut b = SYN_BYTES;
            f(&mut b);
            Ipv4Packet::new_checked(&b[..]).map(|_| ())
        };
        assert_eq!(check(&|b| b[0] = 0x65), Err(WireError::Malformed)); // version 6
        assert_eq!(check(&|b| b[0] = 0x44), Err(WireError::Malformed)); // IHL 4
        assert_eq!(check(&|b| b[0] = 0x4b), Err(WireError::Truncated)); // IHL 11 = 44 > 40
        assert_eq!(check(&|b| b[3] = 19), Err(WireError::Malformed)); // total < header
        assert_eq!(check(&|b| b[3] = 41), Err(WireError::Truncated)); // total > buffer
        assert_eq!(check(&|b| b[3] = 20), Ok(())); // empty payload
                                                   // Ethernet padding after total_len is ignored.
        let mut padded = [0u8; 46];
        padded[..40].copy_from_slice(&SYN_BYTES);
        let p = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &SYN_BYTES[20..]);
    }

    #[test]
    fn fragments() {
        let mut b = SYN_BYTES;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.clear_flags();
        assert!(!p.dont_frag());
        p.set_more_frags(true);
        assert!(p.more_frags() && p.is_fragment());
        p.set_more_frags(false);
        p.set_frag_offset(1480);
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment() && !p.more_frags());
        p.set_dont_frag(true);
        assert!(p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        p.clear_flags();
        assert_eq!(p.frag_offset(), 1480);
        assert!(!p.dont_frag());
        p.fill_checksum();
        // Fragments parse (the caller decides what to do with them).
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(Ipv4Repr::parse(&p).is_ok());
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 24];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_dscp_ecn(0xb8);
        p.set_total_len(24);
        p.set_ident(0xbeef);
        p.set_hop_limit(3);
        p.set_next_header(protocol::IPIP);
        p.set_src_addr(ALIAS);
        p.set_dst_addr(CLIENT);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.version(), p.header_len(), p.dscp_ecn()), (4, 24, 0xb8));
        assert_eq!((p.total_len(), p.ident(), p.hop_limit()), (24, 0xbeef, 3));
        assert_eq!(
            (p.next_header(), p.src_addr(), p.dst_addr()),
            (4, ALIAS, CLIENT)
        );
        assert!(p.verify_checksum());
        assert!(p.payload().is_empty());
    }
}
