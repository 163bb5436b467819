//! Ethernet II frames (IEEE 802.3 with an EtherType) and 802.1Q VLAN tags.
//!
//! **Contract:** after [`EthernetFrame::new_checked`] returns `Ok`, no accessor panics.
//! [`parse_l2`] never panics.

use super::{get_mac, get_u16, set_u16, Field, Rest, WireError};

/// A MAC address, in wire order.
pub type EthernetAddress = [u8; 6];

/// The broadcast MAC address.
pub const BROADCAST: EthernetAddress = [0xff; 6];

/// Whether `mac` is the broadcast address.
pub fn is_broadcast(mac: &EthernetAddress) -> bool {
    *mac == BROADCAST
}

/// Whether `mac` is a group (multicast or broadcast) address: the I/G bit of the first octet.
pub fn is_multicast(mac: &EthernetAddress) -> bool {
    mac[0] & 0x01 != 0
}

/// EtherType values (`EtherType::IPV4`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtherType;

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (S-tag, QinQ).
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// Length of the untagged Ethernet header (also [`EthernetFrame::HEADER_LEN`]).
pub const HEADER_LEN: usize = 14;

/// Length of an 802.1Q tag (TPID + TCI).
pub const VLAN_TAG_LEN: usize = 4;

mod field {
    use super::{Field, Rest};
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
    /// Within a frame whose ETHERTYPE is 802.1Q: tag control information and the inner type.
    pub const VLAN_TCI: Field = 14..16;
    pub const VLAN_ETHERTYPE: Field = 16..18;
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the (untagged) Ethernet header.
    pub const HEADER_LEN: usize = self::HEADER_LEN;

    /// Wraps a buffer without checking it; accessors may panic if it is too short.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` if the buffer is shorter than [`Self::HEADER_LEN`].
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length of an untagged frame (14).
    pub const fn header_len() -> usize {
        Self::HEADER_LEN
    }

    /// Length of a frame carrying `payload_len` bytes.
    pub const fn buffer_len(payload_len: usize) -> usize {
        Self::HEADER_LEN + payload_len
    }

    pub fn dst_addr(&self) -> EthernetAddress {
        get_mac(self.buffer.as_ref(), field::DESTINATION)
    }

    pub fn src_addr(&self) -> EthernetAddress {
        get_mac(self.buffer.as_ref(), field::SOURCE)
    }

    /// The EtherType field (for a tagged frame, [`EtherType::VLAN`]; see [`parse_l2`]).
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr);
    }

    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr);
    }

    pub fn set_ethertype(&mut self, ethertype: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The fields of an untagged Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    pub src_addr: EthernetAddress,
    pub dst_addr: EthernetAddress,
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Reads the header of a checked frame. Never fails today; `Result` for symmetry.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self, WireError> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// 14.
    pub const fn header_len(&self) -> usize {
        field::PAYLOAD.start
    }

    /// 14: the header only.
    pub const fn buffer_len(&self) -> usize {
        field::PAYLOAD.start
    }

    /// Writes the header; the payload is left alone. The frame must hold at least 14 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

/// Removes the 802.1Q tag of a frame with one, in place, the way a buffer with headroom wants
/// it: the MAC addresses move forward over the tag, so that the untagged frame starts
/// [`VLAN_TAG_LEN`] bytes into `frame` (the caller then drops those bytes from the front). The
/// EtherType after the tag becomes the frame's. Does not look at the TPID ([`parse_l2`] has).
///
/// # Errors
/// `Truncated` if `frame` is shorter than a tagged header; nothing is written then.
pub fn remove_vlan_tag(frame: &mut [u8]) -> Result<(), WireError> {
    if frame.len() < field::VLAN_ETHERTYPE.end {
        return Err(WireError::Truncated);
    }
    frame.copy_within(field::DESTINATION.start..field::SOURCE.end, VLAN_TAG_LEN);
    Ok(())
}

/// Where the L3 header of a frame starts and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Info {
    /// The EtherType of the L3 payload (the inner one for a tagged frame).
    pub ethertype: u16,
    /// Offset of the L3 header from the start of the frame: 14 untagged, 18 with one tag.
    pub l3_offset: usize,
    /// The VLAN ID (low 12 bits of the TCI) of an 802.1Q-tagged frame.
    pub vlan: Option<u16>,
}

/// Finds the L3 header of `frame`, accepting an untagged frame or exactly one 802.1Q tag.
///
/// # Errors
/// - `Truncated` if the frame is shorter than its Ethernet (and tag) headers;
/// - `Malformed` for an outer 802.1ad (QinQ) tag or a second tag (0x8100 or 0x88a8) inside an
///   802.1Q tag.
pub fn parse_l2(frame: &[u8]) -> Result<L2Info, WireError> {
    if frame.len() < field::PAYLOAD.start {
        return Err(WireError::Truncated);
    }
    match get_u16(frame, field::ETHERTYPE) {
        EtherType::QINQ => Err(WireError::Malformed),
        EtherType::VLAN => {
            if frame.len() < field::VLAN_ETHERTYPE.end {
                return Err(WireError::Truncated);
            }
            let ethertype = get_u16(frame, field::VLAN_ETHERTYPE);
            if ethertype == EtherType::VLAN || ethertype == EtherType::QINQ {
                return Err(WireError::Malformed);
            }
            Ok(L2Info {
                ethertype,
                l3_offset: field::VLAN_ETHERTYPE.end,
                vlan: Some(get_u16(frame, field::VLAN_TCI) & 0x0fff),
            })
        }
        ethertype => Ok(L2Info {
            ethertype,
            l3_offset: field::PAYLOAD.start,
            vlan: None,
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An ARP request frame: 52:54:00:12:34:56 → broadcast, "who has 198.51.100.100, tell
    /// 198.51.100.10".
    pub(crate) static FRAME_BYTES: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
        0xc6, 0x33, 0x64, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x33, 0x64, 0x64,
    ];

    /// The same request tagged with VLAN 100, priority 5 (TCI 0xa064).
    pub(crate) static TAGGED_BYTES: [u8; 46] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x81, 0x00, //
        0xa0, 0x64, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
        0xc6, 0x33, 0x64, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc6, 0x33, 0x64, 0x64,
    ];

    const SRC: EthernetAddress = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn repr() -> EthernetRepr {
        EthernetRepr {
            src_addr: SRC,
            dst_addr: BROADCAST,
            ethertype: EtherType::ARP,
        }
    }

    #[test]
    fn parse_known_bytes() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), BROADCAST);
        assert_eq!(frame.src_addr(), SRC);
        assert_eq!(frame.ethertype(), EtherType::ARP);
        assert_eq!(frame.payload(), &FRAME_BYTES[14..]);
        assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr());
    }

    #[test]
    fn emit_exact_bytes() {
        let mut bytes = [0u8; 42];
        bytes[14..].copy_from_slice(&FRAME_BYTES[14..]);
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        repr().emit(&mut frame);
        assert_eq!(repr().buffer_len(), 14);
        assert_eq!(bytes, FRAME_BYTES);
    }

    #[test]
    fn setters_and_payload_mut() {
        let mut bytes = FRAME_BYTES;
        let mut frame = EthernetFrame::new_checked(&mut bytes[..]).unwrap();
        frame.set_src_addr([2, 0, 0, 0, 0, 1]);
        frame.set_dst_addr(SRC);
        frame.set_ethertype(EtherType::IPV4);
        frame.payload_mut()[0] = 0xab;
        assert_eq!(frame.src_addr(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(frame.dst_addr(), SRC);
        assert_eq!(frame.ethertype(), 0x0800);
        assert_eq!(frame.into_inner()[14], 0xab);
    }

    #[test]
    fn truncated_prefixes_rejected() {
        for n in 0..EthernetFrame::<&[u8]>::HEADER_LEN {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME_BYTES[..n]),
                Err(WireError::Truncated)
            );
        }
        assert!(EthernetFrame::new_checked(&FRAME_BYTES[..14]).is_ok());
    }

    #[test]
    fn address_kinds() {
        assert!(is_broadcast(&BROADCAST));
        assert!(is_multicast(&BROADCAST));
        assert!(is_multicast(&[0x01, 0x00, 0x5e, 0, 0, 1]));
        assert!(!is_multicast(&SRC));
        assert!(!is_broadcast(&SRC));
    }

    #[test]
    fn l2_untagged() {
        let info = parse_l2(&FRAME_BYTES).unwrap();
        assert_eq!(
            info,
            L2Info {
                ethertype: EtherType::ARP,
                l3_offset: 14,
                vlan: None
            }
        );
    }

    #[test]
    fn l2_one_tag() {
        let info = parse_l2(&TAGGED_BYTES).unwrap();
        assert_eq!(
            info,
            L2Info {
                ethertype: EtherType::ARP,
                l3_offset: 18,
                vlan: Some(100)
            }
        );
        // VID 4095 with all priority/DEI bits set.
        let mut b = TAGGED_BYTES;
        b[14] = 0xff;
        b[15] = 0xff;
        assert_eq!(parse_l2(&b).unwrap().vlan, Some(0x0fff));
    }

    #[test]
    fn l2_rejects_stacked_and_qinq() {
        let mut b = TAGGED_BYTES;
        b[16..18].copy_from_slice(&EtherType::VLAN.to_be_bytes());
        assert_eq!(parse_l2(&b), Err(WireError::Malformed));
        b[16..18].copy_from_slice(&EtherType::QINQ.to_be_bytes());
        assert_eq!(parse_l2(&b), Err(WireError::Malformed));
        let mut b = TAGGED_BYTES;
        b[12..14].copy_from_slice(&EtherType::QINQ.to_be_bytes());
        assert_eq!(parse_l2(&b), Err(WireError::Malformed));
    }

    #[test]
    fn remove_vlan_tag_moves_the_addresses_over_the_tag() {
        let mut b = TAGGED_BYTES;
        remove_vlan_tag(&mut b).unwrap();
        assert_eq!(&b[VLAN_TAG_LEN..], &FRAME_BYTES[..]);
        assert_eq!(
            remove_vlan_tag(&mut [0u8; 17][..]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn l2_truncated() {
        for n in 0..14 {
            assert_eq!(parse_l2(&TAGGED_BYTES[..n]), Err(WireError::Truncated));
            assert_eq!(parse_l2(&FRAME_BYTES[..n]), Err(WireError::Truncated));
        }
        for n in 14..18 {
            assert_eq!(parse_l2(&TAGGED_BYTES[..n]), Err(WireError::Truncated));
        }
        assert!(parse_l2(&TAGGED_BYTES[..18]).is_ok());
        // An untagged header with no payload is fine: the L3 parser judges the rest.
        assert!(parse_l2(&FRAME_BYTES[..14]).is_ok());
    }
}
