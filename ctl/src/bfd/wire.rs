//! The BFD Control packet (RFC 5880 §4.1), carried in UDP to port 3784 (RFC 5881 §4):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |   (microseconds)
//! |                   Required Min RX Interval                    |   (microseconds)
//! |                 Required Min Echo RX Interval                 |   (microseconds)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |   (only if A is set)
//! ```
//!
//! [`BfdPacket`] is a zero-copy view; once [`BfdPacket::new_checked`] accepted a buffer (the
//! first three checks of RFC 5880 §6.8.6: version 1, Length at least 24, or 26 with the A bit,
//! and at most the buffer), no accessor panics. [`BfdRepr::parse`] adds the next three (Detect
//! Mult not zero, M clear, My Discriminator not zero); the checks that need a session (Your
//! Discriminator, the A bit) are the session's. Bytes after Length are ignored here;
//! [`super::Bfd`] refuses them (`oversized`).
//!
//! Authentication (RFC 5880 §6.7) is not implemented: [`BfdRepr`] records whether the A bit was
//! set and the session refuses such packets; [`BfdRepr::emit`] never writes an authentication
//! section.

use core::fmt;

/// The UDP destination port of single-hop BFD Control packets (RFC 5881 §4).
pub const BFD_PORT: u16 = 3784;
/// The range UDP source ports must come from (RFC 5881 §4).
pub const SOURCE_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;
/// The TTL every single-hop packet carries and must arrive with (RFC 5881 §5, GTSM).
pub const TTL: u8 = 255;
/// The protocol version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;
/// Length of a Control packet without authentication.
pub const HEADER_LEN: usize = 24;
/// The shortest packet with the A bit: the header and the Auth Type and Auth Len bytes.
pub const MIN_AUTH_LEN: usize = HEADER_LEN + 2;

mod field {
    use core::ops::Range;
    pub const VERS_DIAG: usize = 0;
    pub const STA_FLAGS: usize = 1;
    pub const DETECT_MULT: usize = 2;
    pub const LENGTH: usize = 3;
    pub const MY_DISCR: Range<usize> = 4..8;
    pub const YOUR_DISCR: Range<usize> = 8..12;
    pub const DESIRED_MIN_TX: Range<usize> = 12..16;
    pub const REQUIRED_MIN_RX: Range<usize> = 16..20;
    pub const REQUIRED_MIN_ECHO_RX: Range<usize> = 20..24;
}

/// The flag bits of byte 1 (below the two state bits).
pub mod flag {
    /// Poll.
    pub const P: u8 = 0x20;
    /// Final.
    pub const F: u8 = 0x10;
    /// Control Plane Independent.
    pub const C: u8 = 0x08;
    /// Authentication Present.
    pub const A: u8 = 0x04;
    /// Demand.
    pub const D: u8 = 0x02;
    /// Multipoint (reserved, must be zero).
    pub const M: u8 = 0x01;
}

/// Why a received frame was refused, at any layer: the encapsulation (RFC 5881), the Control
/// packet (RFC 5880 §6.8.6, checked in its order), or the session. Each has a metric label
/// ([`BfdError::name`]) and an index ([`BfdError::index`]) into a counter array of
/// [`BfdError::COUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum BfdError {
    /// Shorter than a Control packet header (or than the Ethernet, IPv4 or UDP headers).
    #[error("BFD packet truncated")]
    Truncated,
    /// A version other than 1.
    #[error("BFD version is not 1")]
    BadVersion,
    /// The Length field below 24 (26 with the A bit) or beyond the UDP payload.
    #[error("BFD Length field below the minimum or beyond the UDP payload")]
    BadLength,
    /// A TTL other than 255 (RFC 5881 §5: the sender is not on the link).
    #[error("BFD packet TTL is not 255")]
    BadTtl,
    /// Detect Mult zero.
    #[error("BFD Detect Mult is zero")]
    ZeroDetectMult,
    /// The Multipoint bit set.
    #[error("BFD Multipoint bit set")]
    Multipoint,
    /// My Discriminator zero.
    #[error("BFD My Discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator names no session of ours (or not the sender's session).
    #[error("BFD Your Discriminator matches no session")]
    UnknownDiscriminator,
    /// Your Discriminator zero in a packet whose state is Init or Up.
    #[error("BFD Your Discriminator zero with state Init or Up")]
    NoDiscriminator,
    /// The A bit set: authentication is not implemented, so no session uses it.
    #[error("BFD authentication present but not in use")]
    UnexpectedAuth,
    /// The source address is not a configured peer on the receiving port, or the destination
    /// is not that peer's local address.
    #[error("BFD packet from an address that is not a configured peer on the port")]
    UnknownPeer,
    /// UDP source port 0, or (with `BfdSettings::strict_source_port`) outside 49152..=65535.
    #[error("BFD UDP source port 0 or outside 49152..=65535")]
    BadSourcePort,
    /// A UDP destination port other than 3784 (not single-hop BFD Control).
    #[error("UDP destination port is not 3784")]
    BadDestPort,
    /// A wrong IPv4 header or UDP checksum.
    #[error("bad IPv4 or UDP checksum")]
    BadChecksum,
    /// Not an IPv4/UDP frame at all, a fragment, or a multicast or broadcast source MAC.
    #[error("frame is not a well-formed unfragmented IPv4/UDP frame")]
    Malformed,
    /// A UDP payload longer than the Control packet's Length: nothing may follow it (the
    /// parser alone ignores such bytes; the speaker refuses them).
    #[error("UDP payload longer than the BFD Length field")]
    Oversized,
}

impl BfdError {
    /// Number of variants (the size of a counter array indexed by [`BfdError::index`]).
    pub const COUNT: usize = 16;
    /// Every variant, in index order.
    pub const ALL: [BfdError; BfdError::COUNT] = [
        BfdError::Truncated,
        BfdError::BadVersion,
        BfdError::BadLength,
        BfdError::BadTtl,
        BfdError::ZeroDetectMult,
        BfdError::Multipoint,
        BfdError::ZeroMyDiscriminator,
        BfdError::UnknownDiscriminator,
        BfdError::NoDiscriminator,
        BfdError::UnexpectedAuth,
        BfdError::UnknownPeer,
        BfdError::BadSourcePort,
        BfdError::BadDestPort,
        BfdError::BadChecksum,
        BfdError::Malformed,
        BfdError::Oversized,
    ];

    /// Position in [`BfdError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            BfdError::Truncated => "truncated",
            BfdError::BadVersion => "bad_version",
            BfdError::BadLength => "bad_length",
            BfdError::BadTtl => "bad_ttl",
            BfdError::ZeroDetectMult => "zero_detect_mult",
            BfdError::Multipoint => "multipoint",
            BfdError::ZeroMyDiscriminator => "zero_my_discriminator",
            BfdError::UnknownDiscriminator => "unknown_discriminator",
            BfdError::NoDiscriminator => "no_discriminator",
            BfdError::UnexpectedAuth => "unexpected_auth",
            BfdError::UnknownPeer => "unknown_peer",
            BfdError::BadSourcePort => "bad_source_port",
            BfdError::BadDestPort => "bad_dest_port",
            BfdError::BadChecksum => "bad_checksum",
            BfdError::Malformed => "malformed",
            BfdError::Oversized => "oversized",
        }
    }
}

/// A session state (RFC 5880 §4.1 "Sta", §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BfdState {
    /// 0: held down by its own side.
    AdminDown = 0,
    /// 1.
    Down = 1,
    /// 2: the peer is heard, it has not heard us yet.
    Init = 2,
    /// 3.
    Up = 3,
}

impl BfdState {
    /// The state with wire value `v & 3`.
    pub fn from_bits(v: u8) -> BfdState {
        match v & 3 {
            0 => BfdState::AdminDown,
            1 => BfdState::Down,
            2 => BfdState::Init,
            _ => BfdState::Up,
        }
    }
    /// The lower-case name, as in RFC 5880 and in `cluamgr -s`.
    pub fn name(self) -> &'static str {
        match self {
            BfdState::AdminDown => "admindown",
            BfdState::Down => "down",
            BfdState::Init => "init",
            BfdState::Up => "up",
        }
    }
}

impl fmt::Display for BfdState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A diagnostic code (RFC 5880 §4.1 "Diag"): why the sender's session last left Up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0.
    None,
    /// 1: Control Detection Time Expired.
    DetectionTimeExpired,
    /// 2: Echo Function Failed.
    EchoFailed,
    /// 3: Neighbor Signaled Session Down.
    NeighborDown,
    /// 4: Forwarding Plane Reset.
    ForwardingPlaneReset,
    /// 5: Path Down.
    PathDown,
    /// 6: Concatenated Path Down.
    ConcatenatedPathDown,
    /// 7: Administratively Down.
    AdminDown,
    /// 8: Reverse Concatenated Path Down.
    ReverseConcatenatedPathDown,
    /// 9..=31: reserved values, kept as received.
    Reserved(u8),
}

impl Diag {
    /// The diag with wire value `v & 31`.
    pub fn from_bits(v: u8) -> Diag {
        match v & 0x1f {
            0 => Diag::None,
            1 => Diag::DetectionTimeExpired,
            2 => Diag::EchoFailed,
            3 => Diag::NeighborDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdminDown,
            8 => Diag::ReverseConcatenatedPathDown,
            r => Diag::Reserved(r),
        }
    }
    /// The wire value (5 bits).
    pub fn bits(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::DetectionTimeExpired => 1,
            Diag::EchoFailed => 2,
            Diag::NeighborDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdminDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(r) => r & 0x1f,
        }
    }
    /// A short `snake_case` name.
    pub fn name(self) -> &'static str {
        match self {
            Diag::None => "none",
            Diag::DetectionTimeExpired => "detection_time_expired",
            Diag::EchoFailed => "echo_failed",
            Diag::NeighborDown => "neighbor_down",
            Diag::ForwardingPlaneReset => "forwarding_plane_reset",
            Diag::PathDown => "path_down",
            Diag::ConcatenatedPathDown => "concatenated_path_down",
            Diag::AdminDown => "admin_down",
            Diag::ReverseConcatenatedPathDown => "reverse_concatenated_path_down",
            Diag::Reserved(_) => "reserved",
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::Reserved(r) => write!(f, "reserved({r})"),
            d => f.write_str(d.name()),
        }
    }
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let b = &b[r];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A zero-copy view of a BFD Control packet.
///
/// Contract: after [`BfdPacket::new_checked`] succeeded, no accessor panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BfdPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        BfdPacket { buffer }
    }

    /// Wraps a buffer after [`BfdPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, BfdError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The first checks of RFC 5880 §6.8.6, in its order: a buffer of at least 24 bytes
    /// (`Truncated`), version 1 (`BadVersion`), a Length field of at least 24, or 26 with the
    /// A bit, and at most the buffer (`BadLength`).
    pub fn check_len(&self) -> Result<(), BfdError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(BfdError::Truncated);
        }
        if self.version() != VERSION {
            return Err(BfdError::BadVersion);
        }
        let min = if self.auth() {
            MIN_AUTH_LEN
        } else {
            HEADER_LEN
        };
        let len = usize::from(self.length());
        if len < min || len > b.len() {
            return Err(BfdError::BadLength);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version (3 bits).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERS_DIAG] >> 5
    }
    /// The diagnostic code.
    pub fn diag(&self) -> Diag {
        Diag::from_bits(self.buffer.as_ref()[field::VERS_DIAG])
    }
    /// The sender's session state.
    pub fn state(&self) -> BfdState {
        BfdState::from_bits(self.buffer.as_ref()[field::STA_FLAGS] >> 6)
    }
    /// The six flag bits ([`flag`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::STA_FLAGS] & 0x3f
    }
    /// Poll.
    pub fn poll(&self) -> bool {
        self.flags() & flag::P != 0
    }
    /// Final.
    pub fn final_(&self) -> bool {
        self.flags() & flag::F != 0
    }
    /// Control Plane Independent.
    pub fn cpi(&self) -> bool {
        self.flags() & flag::C != 0
    }
    /// Authentication Present.
    pub fn auth(&self) -> bool {
        self.flags() & flag::A != 0
    }
    /// Demand.
    pub fn demand(&self) -> bool {
        self.flags() & flag::D != 0
    }
    /// Multipoint.
    pub fn multipoint(&self) -> bool {
        self.flags() & flag::M != 0
    }
    /// Detect Mult.
    pub fn detect_mult(&self) -> u8 {
        self.buffer.as_ref()[field::DETECT_MULT]
    }
    /// The Length field (bytes).
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }
    /// My Discriminator.
    pub fn my_discr(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MY_DISCR)
    }
    /// Your Discriminator.
    pub fn your_discr(&self) -> u32 {
        be32(self.buffer.as_ref(), field::YOUR_DISCR)
    }
    /// Desired Min TX Interval (µs).
    pub fn desired_min_tx(&self) -> u32 {
        be32(self.buffer.as_ref(), field::DESIRED_MIN_TX)
    }
    /// Required Min RX Interval (µs).
    pub fn required_min_rx(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REQUIRED_MIN_RX)
    }
    /// Required Min Echo RX Interval (µs).
    pub fn required_min_echo_rx(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REQUIRED_MIN_ECHO_RX)
    }
    /// The authentication section (bytes 24..Length; empty without the A bit).
    pub fn auth_section(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.length()).min(b.len());
        &b[HEADER_LEN.min(end)..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> BfdPacket<T> {
    /// Sets version (3 bits) and diag.
    pub fn set_version_diag(&mut self, version: u8, diag: Diag) {
        self.buffer.as_mut()[field::VERS_DIAG] = (version << 5) | diag.bits();
    }
    /// Sets the state and the six flag bits.
    pub fn set_state_flags(&mut self, state: BfdState, flags: u8) {
        self.buffer.as_mut()[field::STA_FLAGS] = ((state as u8) << 6) | (flags & 0x3f);
    }
    /// Sets Detect Mult.
    pub fn set_detect_mult(&mut self, v: u8) {
        self.buffer.as_mut()[field::DETECT_MULT] = v;
    }
    /// Sets the Length field (re-check before reading again).
    pub fn set_length(&mut self, v: u8) {
        self.buffer.as_mut()[field::LENGTH] = v;
    }
    /// Sets My Discriminator.
    pub fn set_my_discr(&mut self, v: u32) {
        self.buffer.as_mut()[field::MY_DISCR].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets Your Discriminator.
    pub fn set_your_discr(&mut self, v: u32) {
        self.buffer.as_mut()[field::YOUR_DISCR].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets Desired Min TX Interval (µs).
    pub fn set_desired_min_tx(&mut self, v: u32) {
        self.buffer.as_mut()[field::DESIRED_MIN_TX].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets Required Min RX Interval (µs).
    pub fn set_required_min_rx(&mut self, v: u32) {
        self.buffer.as_mut()[field::REQUIRED_MIN_RX].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets Required Min Echo RX Interval (µs).
    pub fn set_required_min_echo_rx(&mut self, v: u32) {
        self.buffer.as_mut()[field::REQUIRED_MIN_ECHO_RX].copy_from_slice(&v.to_be_bytes());
    }
}

/// A Control packet's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdRepr {
    /// The sender's diagnostic code.
    pub diag: Diag,
    /// The sender's session state.
    pub state: BfdState,
    /// Poll.
    pub poll: bool,
    /// Final.
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    /// Authentication Present (parsed so the session can refuse it; never emitted).
    pub auth: bool,
    /// Demand.
    pub demand: bool,
    /// Detect Mult (not zero).
    pub detect_mult: u8,
    /// My Discriminator (not zero).
    pub my_discr: u32,
    /// Your Discriminator.
    pub your_discr: u32,
    /// Desired Min TX Interval (µs).
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval (µs).
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval (µs).
    pub required_min_echo_rx_us: u32,
}

impl BfdRepr {
    /// Reads a checked packet, with the next checks of RFC 5880 §6.8.6 in its order: Detect
    /// Mult not zero (`ZeroDetectMult`), M clear (`Multipoint`), My Discriminator not zero
    /// (`ZeroMyDiscriminator`).
    pub fn parse<T: AsRef<[u8]>>(p: &BfdPacket<T>) -> Result<BfdRepr, BfdError> {
        p.check_len()?;
        if p.detect_mult() == 0 {
            return Err(BfdError::ZeroDetectMult);
        }
        if p.multipoint() {
            return Err(BfdError::Multipoint);
        }
        if p.my_discr() == 0 {
            return Err(BfdError::ZeroMyDiscriminator);
        }
        Ok(BfdRepr {
            diag: p.diag(),
            state: p.state(),
            poll: p.poll(),
            final_: p.final_(),
            cpi: p.cpi(),
            auth: p.auth(),
            demand: p.demand(),
            detect_mult: p.detect_mult(),
            my_discr: p.my_discr(),
            your_discr: p.your_discr(),
            desired_min_tx_us: p.desired_min_tx(),
            required_min_rx_us: p.required_min_rx(),
            required_min_echo_rx_us: p.required_min_echo_rx(),
        })
    }

    /// [`BfdPacket::new_checked`] and [`BfdRepr::parse`] over bytes.
    pub fn parse_bytes(b: &[u8]) -> Result<BfdRepr, BfdError> {
        BfdRepr::parse(&BfdPacket::new_checked(b)?)
    }

    /// 24: what [`BfdRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 24-byte packet: version 1, no authentication section (the A bit is written
    /// clear whatever `auth` says), M clear. The buffer must hold at least 24 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut BfdPacket<T>) {
        let mut flags = 0;
        for (set, bit) in [
            (self.poll, flag::P),
            (self.final_, flag::F),
            (self.cpi, flag::C),
            (self.demand, flag::D),
        ] {
            if set {
                flags |= bit;
            }
        }
        p.set_version_diag(VERSION, self.diag);
        p.set_state_flags(self.state, flags);
        p.set_detect_mult(self.detect_mult);
        p.set_length(HEADER_LEN as u8);
        p.set_my_discr(self.my_discr);
        p.set_your_discr(self.your_discr);
        p.set_desired_min_tx(self.desired_min_tx_us);
        p.set_required_min_rx(self.required_min_rx_us);
        p.set_required_min_echo_rx(self.required_min_echo_rx_us);
    }

    /// The packet as a new 24-byte array.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        self.emit(&mut BfdPacket::new_unchecked(&mut b[..]));
        b
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashSet;

    fn sample() -> BfdRepr {
        BfdRepr {
            diag: Diag::None,
            state: BfdState::Up,
            poll: true,
            final_: false,
            cpi: false,
            auth: false,
            demand: false,
            detect_mult: 3,
            my_discr: 0x1122_3344,
            your_discr: 0x5566_7788,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
            required_min_echo_rx_us: 0,
        }
    }

    /// `sample()` by hand, field by field as in RFC 5880 §4.1.
    const SAMPLE_BYTES: [u8; 24] = [
        0x20, // version 1, diag 0
        0xe0, // state Up (3), P
        3, 24, // detect mult, length
        0x11, 0x22, 0x33, 0x44, // my discriminator
        0x55, 0x66, 0x77, 0x88, // your discriminator
        0x00, 0x01, 0x86, 0xa0, // desired min tx 100,000 µs
        0x00, 0x01, 0x86, 0xa0, // required min rx 100,000 µs
        0, 0, 0, 0, // required min echo rx
    ];

    /// The first Control packet BIRD 2.0.12 sent us in the interop lab
    /// (`ctl/examples/bfd_interop.py`, docs/bfd.md): state Down, diag 0, Detect Mult 3, My
    /// Discriminator 0x72e11ba3 (BIRD's choice), Your Discriminator 0 (it has not heard us yet),
    /// Desired Min TX 1 s (RFC 5880 §6.8.3: not Up), Required Min RX 100 ms, Required Min Echo
    /// RX 0. [`BIRD_FRAME`] is the whole frame.
    pub(crate) const BIRD_DOWN: [u8; 24] = [
        0x20, 0x40, 0x03, 0x18, 0x72, 0xe1, 0x1b, 0xa3, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42,
        0x40, 0x00, 0x01, 0x86, 0xa0, 0x00, 0x00, 0x00, 0x00,
    ];

    /// That packet as captured on our veth: f6:79:b9:8f:d1:8b -> b6:fc:c4:0a:54:f4, IPv4
    /// 198.51.100.1 -> 198.51.100.2 TTL 255 TOS 0xc0, UDP 41090 -> 3784 (BIRD's source port
    /// comes from the kernel's ephemeral range, below RFC 5881's 49152), checksums as sent.
    pub(crate) const BIRD_FRAME: &str = "b6fcc40a54f4f679b98fd18b080045c00034810a0000ff11e583\
        c6336401c6336402a0820ec80020812b2040031872e11ba300000000000f4240000186a000000000";

    #[test]
    fn byte_literal_round_trip() {
        let r = BfdRepr::parse_bytes(&SAMPLE_BYTES).unwrap();
        assert_eq!(r, sample());
        assert_eq!(r.to_bytes(), SAMPLE_BYTES);
        let p = BfdPacket::new_checked(&SAMPLE_BYTES[..]).unwrap();
        assert_eq!((p.version(), p.length(), p.flags()), (1, 24, flag::P));
        assert!(p.auth_section().is_empty());
    }

    #[test]
    fn bird_packet_is_accepted() {
        let r = BfdRepr::parse_bytes(&BIRD_DOWN).unwrap();
        assert_eq!(r.state, BfdState::Down);
        assert_eq!(r.diag, Diag::None);
        assert_eq!(r.detect_mult, 3);
        assert_eq!(r.my_discr, 0x72e1_1ba3);
        assert_eq!(r.your_discr, 0);
        assert_eq!(r.desired_min_tx_us, 1_000_000);
        assert_eq!(r.required_min_rx_us, 100_000);
        assert!(!(r.poll || r.final_ || r.auth || r.demand || r.cpi));
        assert_eq!(r.to_bytes(), BIRD_DOWN);
    }

    #[test]
    fn every_flag_and_state_round_trips() {
        for bits in 0..=255u8 {
            let mut b = SAMPLE_BYTES;
            b[1] = bits & !(flag::A | flag::M);
            let r = BfdRepr::parse_bytes(&b).unwrap();
            assert_eq!(r.to_bytes(), b, "byte 1 = {bits:#04x}");
        }
        for d in 0..32u8 {
            let mut b = SAMPLE_BYTES;
            b[0] = 0x20 | d;
            let r = BfdRepr::parse_bytes(&b).unwrap();
            assert_eq!(r.diag.bits(), d);
            assert_eq!(Diag::from_bits(d), r.diag);
            assert_eq!(r.to_bytes(), b);
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                BfdRepr::parse_bytes(&SAMPLE_BYTES[..n]),
                Err(BfdError::Truncated),
                "prefix {n}"
            );
        }
        // Padding after Length is ignored (an Ethernet minimum frame may carry some).
        let mut long = SAMPLE_BYTES.to_vec();
        long.extend_from_slice(&[0xee; 10]);
        assert_eq!(BfdRepr::parse_bytes(&long), Ok(sample()));
    }

    #[test]
    fn checks_in_rfc_5880_order() {
        let with = |f: fn(&mut [u8; 24])| {
            let mut b = SAMPLE_BYTES;
            f(&mut b);
            BfdRepr::parse_bytes(&b)
        };
        use BfdError::*;
        assert_eq!(with(|b| b[0] = 0x40), Err(BadVersion));
        assert_eq!(with(|b| b[0] = 0x00), Err(BadVersion));
        // Version is checked before length.
        assert_eq!(with(|b| (b[0], b[3]) = (0x40, 0)), Err(BadVersion));
        assert_eq!(with(|b| b[3] = 23), Err(BadLength));
        assert_eq!(with(|b| b[3] = 25), Err(BadLength)); // beyond the buffer
        assert_eq!(with(|b| b[1] |= flag::A), Err(BadLength)); // A needs 26
        assert_eq!(with(|b| b[2] = 0), Err(ZeroDetectMult));
        // Length before detect mult, detect mult before M, M before My Discriminator.
        assert_eq!(with(|b| (b[2], b[3]) = (0, 0)), Err(BadLength));
        assert_eq!(
            with(|b| (b[1], b[2]) = (b[1] | flag::M, 0)),
            Err(ZeroDetectMult)
        );
        assert_eq!(with(|b| b[1] |= flag::M), Err(Multipoint));
        assert_eq!(
            with(|b| (b[1] |= flag::M, b[4..8].fill(0)).0),
            Err(Multipoint)
        );
        assert_eq!(with(|b| b[4..8].fill(0)), Err(ZeroMyDiscriminator));
        // Your Discriminator zero is the session's business, not the parser's.
        assert!(with(|b| b[8..12].fill(0)).is_ok());
    }

    #[test]
    fn auth_section_is_parsed_not_interpreted() {
        let mut b = SAMPLE_BYTES.to_vec();
        b[1] |= flag::A;
        b[3] = 28;
        b.extend_from_slice(&[1, 4, 0xaa, 0xbb]); // simple password, len 4
        let p = BfdPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.auth_section(), &[1, 4, 0xaa, 0xbb]);
        let r = BfdRepr::parse(&p).unwrap();
        assert!(r.auth);
        // emit never writes authentication.
        assert_eq!(r.to_bytes()[1] & flag::A, 0);
    }

    #[test]
    fn every_byte_flip_parses_or_is_refused_without_panic() {
        for i in 0..HEADER_LEN {
            for bit in 0..8 {
                let mut b = SAMPLE_BYTES;
                b[i] ^= 1 << bit;
                match BfdRepr::parse_bytes(&b) {
                    Ok(r) => {
                        // What parses must re-emit the same bytes (A cannot parse at length 24).
                        assert_eq!(r.to_bytes(), b, "byte {i} bit {bit}");
                    }
                    Err(e) => assert!(
                        matches!(
                            e,
                            BfdError::BadVersion
                                | BfdError::BadLength
                                | BfdError::ZeroDetectMult
                                | BfdError::Multipoint
                                | BfdError::ZeroMyDiscriminator
                        ),
                        "byte {i} bit {bit}: {e:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn states_and_names() {
        for (v, s) in [
            (0, BfdState::AdminDown),
            (1, BfdState::Down),
            (2, BfdState::Init),
            (3, BfdState::Up),
        ] {
            assert_eq!(BfdState::from_bits(v), s);
            assert_eq!(s as u8, v);
        }
        assert_eq!(BfdState::AdminDown.to_string(), "admindown");
        assert_eq!(BfdState::Up.to_string(), "up");
        assert_eq!(Diag::Reserved(9).to_string(), "reserved(9)");
        assert_eq!(Diag::DetectionTimeExpired.bits(), 1);
        assert_eq!(Diag::NeighborDown.bits(), 3);
        assert_eq!(Diag::AdminDown.bits(), 7);
    }

    #[test]
    fn error_names_and_indexes() {
        let names: HashSet<_> = BfdError::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), BfdError::COUNT);
        for (i, e) in BfdError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(!e.to_string().is_empty());
        }
    }
}
