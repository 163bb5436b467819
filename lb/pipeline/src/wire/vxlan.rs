//! VXLAN headers (RFC 7348 §5):
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! **Contract:** after [`VxlanPacket::new_checked`] returns `Ok`, no accessor panics: the buffer
//! holds at least 8 bytes.

use super::{get_u32, Field, Rest, WireError};

/// Length of the VXLAN header (also [`VxlanPacket::HEADER_LEN`]).
pub const HEADER_LEN: usize = 8;

/// The IANA-assigned UDP destination port.
pub const VXLAN_PORT: u16 = 4789;

/// The I flag: the VNI is valid.
pub const FLAG_I: u8 = 0x08;

/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

mod field {
    use super::{Field, Rest};
    pub const FLAGS: usize = 0;
    pub const RESERVED1: Field = 1..4;
    /// The VNI is bytes 4..7; byte 7 is reserved.
    pub const VNI_RESERVED2: Field = 4..8;
    pub const PAYLOAD: Rest = 8..;
}

/// A read/write view of a VXLAN header and the inner frame after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// 8.
    pub const HEADER_LEN: usize = self::HEADER_LEN;

    /// Wraps a buffer without checking it; accessors may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len). The I flag is not checked here
    /// (see [`VxlanRepr::parse`]).
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

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the I flag (0x08) is set.
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VNI.
    pub fn vni(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VNI_RESERVED2) >> 8
    }

    /// The inner Ethernet frame, bytes `8..`.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Writes the low 24 bits of `vni`; the reserved byte after it is kept.
    pub fn set_vni(&mut self, vni: u32) {
        let b = (vni & MAX_VNI).to_be_bytes();
        self.buffer.as_mut()[field::VNI_RESERVED2.start..field::VNI_RESERVED2.end - 1]
            .copy_from_slice(&b[1..]);
    }

    /// Zeroes both reserved fields.
    pub fn clear_reserved(&mut self) {
        let d = self.buffer.as_mut();
        d[field::RESERVED1].fill(0);
        d[field::VNI_RESERVED2.end - 1] = 0;
    }

    /// The inner Ethernet frame, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A VXLAN header with a valid VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    /// 24 bits; higher bits are dropped by `emit`.
    pub vni: u32,
}

impl VxlanRepr {
    /// Reads the VNI; `Malformed` if the I flag is clear (RFC 7348 §5). Reserved bits are
    /// ignored, as the RFC asks of receivers.
    pub fn parse<T: AsRef<[u8]>>(packet: &VxlanPacket<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        if !packet.vni_valid() {
            return Err(WireError::Malformed);
        }
        Ok(VxlanRepr { vni: packet.vni() })
    }

    /// 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// 8: the header only.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes flags 0x08, zero reserved fields and the VNI. The packet must hold 8 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VxlanPacket<T>) {
        packet.set_flags(FLAG_I);
        packet.clear_reserved();
        packet.set_vni(self.vni);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// VXLAN header, I flag set, VNI 0x123456 (RFC 7348 §5 layout), followed by the first bytes
    /// of an inner frame.
    pub(crate) static VXLAN_BYTES: [u8; 14] = [
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    ];

    #[test]
    fn parse_known_bytes() {
        let p = VxlanPacket::new_checked(&VXLAN_BYTES[..]).unwrap();
        assert_eq!(p.flags(), 0x08);
        assert!(p.vni_valid());
        assert_eq!(p.vni(), 0x12_3456);
        assert_eq!(p.payload(), &VXLAN_BYTES[8..]);
        assert_eq!(VxlanRepr::parse(&p).unwrap(), VxlanRepr { vni: 0x12_3456 });
    }

    #[test]
    fn emit_exact_bytes() {
        let mut out = [0xffu8; 14];
        out[8..].copy_from_slice(&VXLAN_BYTES[8..]);
        let repr = VxlanRepr { vni: 0x12_3456 };
        assert_eq!(repr.buffer_len(), 8);
        repr.emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, VXLAN_BYTES);
        // VNI is 24 bits; the top byte is dropped.
        VxlanRepr { vni: 0xff00_0001 }.emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
        assert_eq!(&out[..8], &[0x08, 0, 0, 0, 0, 0, 0x01, 0]);
    }

    #[test]
    fn reserved_bits_ignored_i_flag_required() {
        let mut b = [0xffu8; 8];
        let p = VxlanPacket::new_checked(&b[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&p), Ok(VxlanRepr { vni: MAX_VNI }));
        b[0] = 0xf7;
        let mut p = VxlanPacket::new_checked(&mut b[..]).unwrap();
        assert!(!p.vni_valid());
        assert_eq!(VxlanRepr::parse(&p), Err(WireError::Malformed));
        p.set_vni(7);
        assert_eq!(p.vni(), 7);
        assert_eq!(p.into_inner()[7], 0xff);
    }

    #[test]
    fn truncated_prefixes_rejected() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                VxlanPacket::new_checked(&VXLAN_BYTES[..n]),
                Err(WireError::Truncated)
            );
        }
    }
}
