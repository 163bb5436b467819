//! ARP for IPv4 over Ethernet (RFC 826). Other hardware/protocol types are rejected.
//!
//! **Contract:** after [`ArpPacket::new_checked`] returns `Ok`, no accessor panics, and the packet
//! is Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4).

use core::net::Ipv4Addr;

use super::ethernet::{EtherType, EthernetAddress};
use super::{get_ipv4, get_mac, get_u16, set_u16, Field, WireError};

/// Length of an Ethernet/IPv4 ARP packet (also [`ArpPacket::HEADER_LEN`]).
pub const HEADER_LEN: usize = 28;

/// ARP hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    use super::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// An ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1
    Request,
    /// 2
    Reply,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(v) => v,
        }
    }
}

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// 28.
    pub const HEADER_LEN: usize = self::HEADER_LEN;

    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len) and checks that it is Ethernet/IPv4
    /// ARP (`Malformed` otherwise).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        let d = packet.buffer.as_ref();
        if get_u16(d, field::HTYPE) != HTYPE_ETHERNET
            || get_u16(d, field::PTYPE) != EtherType::IPV4
            || d[field::HLEN] != 6
            || d[field::PLEN] != 4
        {
            return Err(WireError::Malformed);
        }
        Ok(packet)
    }

    /// `Err(Truncated)` if the buffer is shorter than 28 bytes.
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

    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    pub fn protocol_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PTYPE)
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }

    pub fn source_hardware_addr(&self) -> EthernetAddress {
        get_mac(self.buffer.as_ref(), field::SHA)
    }

    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::SPA)
    }

    pub fn target_hardware_addr(&self) -> EthernetAddress {
        get_mac(self.buffer.as_ref(), field::THA)
    }

    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        get_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes htype 1 (Ethernet), ptype 0x0800 (IPv4), hlen 6, plen 4.
    pub fn set_fixed_fields(&mut self) {
        let d = self.buffer.as_mut();
        set_u16(d, field::HTYPE, HTYPE_ETHERNET);
        set_u16(d, field::PTYPE, EtherType::IPV4);
        d[field::HLEN] = 6;
        d[field::PLEN] = 4;
    }

    pub fn set_operation(&mut self, op: u16) {
        set_u16(self.buffer.as_mut(), field::OPER, op);
    }

    pub fn set_source_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr);
    }

    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    pub fn set_target_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr);
    }

    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an ARP packet; `Malformed` unless it is Ethernet/IPv4, `Truncated` if short.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self, WireError> {
        // Re-check: the view may have been built with `new_unchecked`.
        let packet = ArpPacket::new_checked(packet.buffer.as_ref())?;
        Ok(ArpRepr {
            operation: packet.operation().into(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// 28.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// 28.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes all 28 bytes. The packet must hold at least 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_fixed_fields();
        packet.set_operation(self.operation.into());
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The ARP part of `ethernet::tests::FRAME_BYTES`: who has 198.51.100.100, tell
    /// 198.51.100.10 (52:54:00:12:34:56).
    pub(crate) static REQUEST_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
        0xc6, 0x33, 0x64, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x33, 0x64, 0x64,
    ];

    /// The reply: 198.51.100.100 is at 02:00:5e:00:01:01.
    pub(crate) static REPLY_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x5e, 0x00, 0x01, 0x01, //
        0xc6, 0x33, 0x64, 0x64, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xc6, 0x33, 0x64, 0x0a,
    ];

    const CLIENT_MAC: EthernetAddress = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    const VMAC: EthernetAddress = [0x02, 0x00, 0x5e, 0x00, 0x01, 0x01];

    fn request() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: CLIENT_MAC,
            source_protocol_addr: Ipv4Addr::new(198, 51, 100, 10),
            target_hardware_addr: [0; 6],
            target_protocol_addr: Ipv4Addr::new(198, 51, 100, 100),
        }
    }

    fn reply() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: VMAC,
            source_protocol_addr: Ipv4Addr::new(198, 51, 100, 100),
            target_hardware_addr: CLIENT_MAC,
            target_protocol_addr: Ipv4Addr::new(198, 51, 100, 10),
        }
    }

    #[test]
    fn parse_known_bytes() {
        let p = ArpPacket::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), 1);
        assert_eq!(ArpRepr::parse(&p).unwrap(), request());
        let p = ArpPacket::new_checked(&REPLY_BYTES[..]).unwrap();
        assert_eq!(ArpRepr::parse(&p).unwrap(), reply());
    }

    #[test]
    fn emit_exact_bytes() {
        for (repr, bytes) in [(request(), REQUEST_BYTES), (reply(), REPLY_BYTES)] {
            let mut out = [0xaau8; 28];
            repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
            assert_eq!(out, bytes);
            assert_eq!(repr.buffer_len(), 28);
        }
    }

    #[test]
    fn operation_conversions() {
        assert_eq!(ArpOperation::from(1), ArpOperation::Request);
        assert_eq!(ArpOperation::from(2), ArpOperation::Reply);
        assert_eq!(ArpOperation::from(9), ArpOperation::Unknown(9));
        assert_eq!(u16::from(ArpOperation::Unknown(9)), 9);
        assert_eq!(u16::from(ArpOperation::Reply), 2);
    }

    #[test]
    fn truncated_prefixes_rejected() {
        for n in 0..REQUEST_BYTES.len() {
            assert_eq!(
                ArpPacket::new_checked(&REQUEST_BYTES[..n]),
                Err(WireError::Truncated)
            );
        }
    }

    #[test]
    fn non_ethernet_ipv4_rejected() {
        for (i, v) in [(1, 6u8), (3, 0xdd), (4, 8), (5, 16)] {
            let mut b = REQUEST_BYTES;
            b[i] = v;
            assert_eq!(
                ArpPacket::new_checked(&b[..]),
                Err(WireError::Malformed),
                "byte {i}"
            );
        }
        // Trailing bytes (Ethernet padding) are fine.
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST_BYTES);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&padded[..]).unwrap()),
            Ok(request())
        );
    }
}
