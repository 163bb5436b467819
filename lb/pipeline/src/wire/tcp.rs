//! TCP segments (RFC 9293). The view covers one whole segment: the buffer *is* the IP payload,
//! so the segment length used by the checksum is the buffer's length.
//!
//! **Contract:** after [`TcpPacket::new_checked`] returns `Ok`, no accessor panics: the buffer
//! holds at least 20 bytes and `20 <= header_len <= buffer length`. Options are not
//! interpreted.

use core::net::Ipv4Addr;

use super::checksum::{self, ChecksumCapabilities};
use super::ipv4::protocol;
use super::{get_u16, get_u32, set_u16, set_u32, Field, WireError};

/// Length of a header without options (also [`TcpPacket::MIN_HEADER_LEN`]).
pub const MIN_HEADER_LEN: usize = 20;

/// The flag bits of [`TcpPacket::flags`] (the low 8 bits of the flags field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlags;

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// The same flag bits as plain constants (`tcp::flags::SYN`).
pub mod flags {
    use super::TcpFlags;
    pub const FIN: u8 = TcpFlags::FIN;
    pub const SYN: u8 = TcpFlags::SYN;
    pub const RST: u8 = TcpFlags::RST;
    pub const PSH: u8 = TcpFlags::PSH;
    pub const ACK: u8 = TcpFlags::ACK;
    pub const URG: u8 = TcpFlags::URG;
    pub const ECE: u8 = TcpFlags::ECE;
    pub const CWR: u8 = TcpFlags::CWR;
}

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (high nibble) and the reserved/NS bits.
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// A read/write view of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// 20.
    pub const MIN_HEADER_LEN: usize = self::MIN_HEADER_LEN;

    /// Wraps a buffer without checking it; accessors may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is shorter than 20 bytes or than `header_len`; `Malformed` if
    /// `header_len < 20`.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if header_len > len {
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

    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The eight flag bits ([`TcpFlags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn fin(&self) -> bool {
        self.flags() & TcpFlags::FIN != 0
    }

    pub fn syn(&self) -> bool {
        self.flags() & TcpFlags::SYN != 0
    }

    pub fn rst(&self) -> bool {
        self.flags() & TcpFlags::RST != 0
    }

    pub fn psh(&self) -> bool {
        self.flags() & TcpFlags::PSH != 0
    }

    pub fn ack(&self) -> bool {
        self.flags() & TcpFlags::ACK != 0
    }

    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The option bytes, `20..header_len`.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..usize::from(self.header_len())]
    }

    /// Bytes `header_len..`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// Whether the checksum over the pseudo-header and the whole buffer is correct.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, protocol::TCP, data.len() as u16),
            checksum::sum(data),
        ]);
        checksum::fold(sum) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    pub fn set_seq_number(&mut self, seq: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ_NUM, seq);
    }

    pub fn set_ack_number(&mut self, ack: u32) {
        set_u32(self.buffer.as_mut(), field::ACK_NUM, ack);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4; at most 60); keeps the
    /// reserved/NS bits.
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (((len / 4) & 0x0f) << 4);
    }

    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    fn set_flag(&mut self, flag: u8, value: bool) {
        let f = self.flags();
        self.set_flags(if value { f | flag } else { f & !flag });
    }

    pub fn set_fin(&mut self, value: bool) {
        self.set_flag(TcpFlags::FIN, value);
    }

    pub fn set_syn(&mut self, value: bool) {
        self.set_flag(TcpFlags::SYN, value);
    }

    pub fn set_rst(&mut self, value: bool) {
        self.set_flag(TcpFlags::RST, value);
    }

    pub fn set_psh(&mut self, value: bool) {
        self.set_flag(TcpFlags::PSH, value);
    }

    pub fn set_ack(&mut self, value: bool) {
        self.set_flag(TcpFlags::ACK, value);
    }

    pub fn set_window_len(&mut self, window: u16) {
        set_u16(self.buffer.as_mut(), field::WIN_SIZE, window);
    }

    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    pub fn set_urgent_at(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Computes and writes the checksum over the pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, protocol::TCP, data.len() as u16),
            checksum::sum(data),
        ]);
        self.set_checksum(!checksum::fold(sum));
    }

    /// Bytes `header_len..`, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }
}

/// A TCP header without options (and without the urgent pointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    /// [`TcpFlags`] bits.
    pub flags: u8,
    pub window_len: u16,
}

impl TcpRepr {
    /// Reads the header. Options are skipped and the checksum is *not* verified (use
    /// [`TcpPacket::verify_checksum`], which needs the IP addresses).
    pub fn parse<T: AsRef<[u8]>>(packet: &TcpPacket<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
        })
    }

    /// 20.
    pub const fn header_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// 20: the header only.
    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes a 20-byte header (data offset 5, urgent pointer 0) and fills the checksum over the
    /// whole buffer, so the payload must already be in place after byte 20. The packet must hold
    /// at least 20 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) {
        self.emit_with(packet, src, dst, &ChecksumCapabilities::default());
    }

    /// [`emit`](Self::emit), computing the checksum only if `caps.tcp.tx()`; otherwise the field
    /// holds the pseudo-header sum, which is what a NIC's TCP checksum offload completes.
    #[inline]
    pub fn emit_with<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCapabilities,
    ) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.buffer.as_mut()[field::DATA_OFF] = ((MIN_HEADER_LEN / 4) as u8) << 4;
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_urgent_at(0);
        if caps.tcp.tx() {
            packet.fill_checksum(src, dst);
        } else {
            let len = packet.buffer.as_ref().len() as u16;
            let pseudo = checksum::pseudo_header(src, dst, protocol::TCP, len);
            packet.set_checksum(checksum::fold(pseudo));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::ipv4::tests::{ALIAS, CLIENT, SYN_BYTES, SYN_OPTS_BYTES};
    use super::*;

    fn syn_repr() -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq_number: 0x3ade_68b1,
            ack_number: 0,
            flags: TcpFlags::SYN,
            window_len: 64240,
        }
    }

    #[test]
    fn parse_known_bytes() {
        let p = TcpPacket::new_checked(&SYN_BYTES[20..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert_eq!((p.seq_number(), p.ack_number()), (0x3ade_68b1, 0));
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.flags(), 0x02);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.checksum(), 0x1ffc);
        assert_eq!(p.urgent_at(), 0);
        assert!(p.payload().is_empty() && p.options().is_empty());
        assert!(p.verify_checksum(CLIENT, ALIAS));
        assert!(!p.verify_checksum(CLIENT, Ipv4Addr::new(198, 51, 100, 101)));
        assert_eq!(TcpRepr::parse(&p).unwrap(), syn_repr());

        let p = TcpPacket::new_checked(&SYN_OPTS_BYTES[20..]).unwrap();
        assert_eq!(p.header_len(), 40);
        assert_eq!(&p.options()[..4], &[0x02, 0x04, 0x05, 0xb4]); // MSS 1460
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(CLIENT, ALIAS));
        assert_eq!(TcpRepr::parse(&p).unwrap(), syn_repr());
    }

    #[test]
    fn emit_exact_bytes() {
        let mut out = [0xeeu8; 20];
        let repr = syn_repr();
        assert_eq!(repr.buffer_len(), 20);
        repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), CLIENT, ALIAS);
        assert_eq!(out, SYN_BYTES[20..]);
    }

    /// With TX offload the field holds the pseudo-header sum; what the NIC then computes over
    /// the segment alone (RFC 1071 over the bytes, field included) is the software checksum.
    #[test]
    fn emit_for_tx_offload_leaves_the_pseudo_header_sum() {
        let caps = ChecksumCapabilities {
            tcp: super::super::Checksum::Rx,
            ..ChecksumCapabilities::software()
        };
        let mut out = [0u8; 20];
        syn_repr().emit_with(
            &mut TcpPacket::new_unchecked(&mut out[..]),
            CLIENT,
            ALIAS,
            &caps,
        );
        assert_eq!(&out[..16], &SYN_BYTES[20..36]);
        let nic = checksum::checksum(&out);
        assert_eq!(nic.to_be_bytes(), [SYN_BYTES[36], SYN_BYTES[37]]);
    }

    #[test]
    fn checksum_covers_payload() {
        let mut b = [0u8; 25];
        b[20..].copy_from_slice(b"hello");
        let repr = TcpRepr {
            flags: TcpFlags::PSH | TcpFlags::ACK,
            ack_number: 7,
            ..syn_repr()
        };
        repr.emit(&mut TcpPacket::new_unchecked(&mut b[..]), CLIENT, ALIAS);
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum(CLIENT, ALIAS));
        assert_eq!(p.payload(), b"hello");
        p.payload_mut()[0] = b'j';
        assert!(!p.verify_checksum(CLIENT, ALIAS));
        p.fill_checksum(CLIENT, ALIAS);
        assert!(p.verify_checksum(CLIENT, ALIAS));
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 24];
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_header_len(24);
        p.set_syn(true);
        p.set_ack(true);
        p.set_fin(true);
        p.set_fin(false);
        p.set_rst(true);
        p.set_psh(true);
        p.set_window_len(5);
        p.set_urgent_at(6);
        p.set_checksum(7);
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()),
            (1, 2, 3, 4)
        );
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.flags(), flags::SYN | flags::ACK | flags::RST | flags::PSH);
        assert_eq!((p.window_len(), p.urgent_at(), p.checksum()), (5, 6, 7));
        assert_eq!(p.options().len(), 4);
    }

    #[test]
    fn truncated_prefixes_rejected() {
        for sample in [&SYN_BYTES[20..], &SYN_OPTS_BYTES[20..]] {
            for n in 0..sample.len() {
                assert_eq!(
                    TcpPacket::new_checked(&sample[..n]),
                    Err(WireError::Truncated)
                );
            }
        }
    }

    #[test]
    fn short_data_offset_malformed() {
        let mut b = [0u8; 20];
        b.copy_from_slice(&SYN_BYTES[20..]);
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]), Err(WireError::Malformed));
    }
}
