//! RIPv2 datagrams (RFC 2453 §4) and their RFC 4822 HMAC-SHA-256 authentication, as the UDP
//! payload (port 520) the speaker ([`super::speaker`]) sends and receives. All integers are
//! big-endian:
//!
//! ```text
//!  header     0  1  command (1 request, 2 response)
//!             1  1  version = 2
//!             2  2  must be zero
//!  entry      0  2  address family (2 = IPv4; 0xFFFF = authentication, first entry only)
//!  (20 each)  2  2  route tag
//!             4  4  address
//!             8  4  subnet mask
//!            12  4  next hop
//!            16  4  metric (1..=16)
//!  auth       0  2  0xFFFF
//!  entry      2  2  authentication type 3 (cryptographic, RFC 4822)
//!             4  2  packet length: header + entries, the offset of the trailer
//!             6  1  key id
//!             7  1  authentication data length = 32 (the HMAC-SHA-256 digest)
//!             8  4  sequence number (non-decreasing per sender)
//!            12  8  zero
//!  trailer    0  2  0xFFFF
//!             2  2  1
//!             4 32  HMAC-SHA-256 digest
//! ```
//!
//! [`RipPacket`] is a zero-copy view: once [`RipPacket::new_checked`] accepted a buffer (version,
//! command, must-be-zero header bytes, the entry count consistent with the length, at most
//! [`MAX_ENTRIES`] entries counting the authentication entry, and for cryptographic
//! authentication the packet length, data length and trailer consistent), no accessor panics.
//! [`RipRepr::parse`] then checks the entries; [`RipRepr::emit`] writes a datagram whose trailer
//! holds the Apad constant, which [`sign`] replaces by the digest. [`verify`] checks a received
//! digest (constant time). The digest check is skipped when built with `--cfg fuzzing`
//! (cargo-fuzz), so that a fuzzer reaches what follows it.
//!
//! [`build_frame`] and [`parse_frame`] put a datagram into, and take it out of, an
//! Ethernet/IPv4/UDP frame with `clua_pipeline::wire`.
// `cfg(fuzzing)` is set by cargo-fuzz, not by Cargo, so it is not in rustc's list of known cfgs.
#![allow(unexpected_cfgs)]

use std::net::Ipv4Addr;

use clua_pipeline::wire::ethernet::{parse_l2, EtherType, EthernetFrame};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use clua_pipeline::wire::udp::{UdpPacket, UdpRepr};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::signed::{be16, be32};

/// The RIP UDP port (RFC 2453 §3.9).
pub const RIP_PORT: u16 = 520;
/// The only version this speaker talks.
pub const VERSION: u8 = 2;
/// Length of the header.
pub const HEADER_LEN: usize = 4;
/// Length of one entry (route or authentication).
pub const ENTRY_LEN: usize = 20;
/// The most entries a datagram may carry, the authentication entry included (RFC 2453 §3.6).
pub const MAX_ENTRIES: usize = 25;
/// The metric that means unreachable.
pub const INFINITY: u32 = 16;
/// Address family of IPv4 route entries.
pub const AFI_INET: u16 = 2;
/// Address family of a whole-table request's single entry (RFC 2453 §3.9.1).
pub const AFI_UNSPEC: u16 = 0;
/// Address family of the authentication entry and the trailer.
pub const AFI_AUTH: u16 = 0xFFFF;
/// Authentication type 2: a simple password (RFC 2453 §4.1); always refused.
pub const AUTH_PASSWORD: u16 = 2;
/// Authentication type 3: cryptographic (RFC 4822).
pub const AUTH_CRYPTO: u16 = 3;
/// The trailer's type field.
pub const TRAILER_TYPE: u16 = 1;
/// Length of an HMAC-SHA-256 digest, also the authentication data length field.
pub const DIGEST_LEN: usize = 32;
/// Length of the trailer: AFI, type, digest.
pub const TRAILER_LEN: usize = 4 + DIGEST_LEN;
/// RFC 4822 §2.5's Apad, repeated over the digest before the digest is computed.
pub const APAD: [u8; 4] = [0x87, 0x8f, 0xe1, 0xf3];
/// The RIPv2 multicast group (RFC 2453 §4.5).
pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 9);
/// The Ethernet address of [`MULTICAST_GROUP`] (RFC 1112 §6.4).
pub const MULTICAST_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x09];
/// The longest datagram: header, [`MAX_ENTRIES`] entries, trailer.
pub const MAX_LEN: usize = HEADER_LEN + MAX_ENTRIES * ENTRY_LEN + TRAILER_LEN;
/// TOS of what the speaker sends: DSCP CS6, network control (RFC 4594), as BIRD sends RIP.
pub const TOS_NETWORK_CONTROL: u8 = 0xc0;

mod field {
    use core::ops::Range;
    pub const COMMAND: usize = 0;
    pub const VERSION: usize = 1;
    pub const ZERO: Range<usize> = 2..4;
    // Within an entry.
    pub const AFI: Range<usize> = 0..2;
    pub const TAG: Range<usize> = 2..4;
    pub const ADDR: Range<usize> = 4..8;
    pub const MASK: Range<usize> = 8..12;
    pub const NEXT_HOP: Range<usize> = 12..16;
    pub const METRIC: Range<usize> = 16..20;
    // Within the authentication entry.
    pub const AUTH_TYPE: Range<usize> = 2..4;
    pub const PACKET_LEN: Range<usize> = 4..6;
    pub const KEY_ID: usize = 6;
    pub const AUTH_DATA_LEN: usize = 7;
    pub const SEQ: Range<usize> = 8..12;
    pub const AUTH_ZERO: Range<usize> = 12..20;
    pub const AUTH_DATA: Range<usize> = 4..20;
    // Within the trailer.
    pub const TRAILER_TYPE: Range<usize> = 2..4;
}

/// Why a RIP datagram (or the frame around it) was refused. Each has a metric label
/// ([`RipError::name`]) and an index ([`RipError::index`]) into a counter array of
/// [`RipError::COUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RipError {
    /// Not a well-formed Ethernet/IPv4/UDP frame, an entry count that does not match the length,
    /// non-zero must-be-zero fields, a bad metric, address family or authentication layout.
    #[error("malformed RIP packet")]
    Malformed,
    /// A version other than 2 (RIPv1 included).
    #[error("RIP version other than 2")]
    BadVersion,
    /// A command other than request (1) or response (2).
    #[error("unknown RIP command")]
    BadCommand,
    /// Not to UDP port 520, or a response not from UDP port 520.
    #[error("RIP packet to or from the wrong UDP port")]
    BadPort,
    /// More than [`MAX_ENTRIES`] entries (or longer than [`MAX_LEN`]).
    #[error("RIP packet with more than 25 entries")]
    Oversized,
    /// Authentication is configured and the packet carries none.
    #[error("RIP packet without authentication")]
    Unauthenticated,
    /// The wrong key id, a bad digest, another authentication type, or authentication when none
    /// is configured.
    #[error("RIP authentication failed")]
    BadAuth,
    /// A sequence number lower than the last one accepted from the same source address.
    #[error("RIP sequence number lower than the last one seen (replay)")]
    Replayed,
    /// The source address is not inside the receiving port's subnet.
    #[error("RIP packet from outside the port's subnet")]
    NotOurSubnet,
    /// Addressed to neither the port, its subnet's broadcast, 255.255.255.255 nor 224.0.0.9.
    #[error("RIP packet not addressed to this router")]
    NotForUs,
    /// Arrived on a port the speaker does not run on.
    #[error("RIP packet on a port without RIP")]
    NotRipPort,
    /// A whole-table request beyond the answer budget (a small request asks for the whole
    /// table, which may be hundreds of packets: the budget keeps the speaker from amplifying a
    /// flood).
    #[error("RIP whole-table request over the rate limit")]
    RateLimited,
}

impl RipError {
    /// Number of variants (the size of a counter array indexed by [`RipError::index`]).
    pub const COUNT: usize = 12;
    /// Every variant, in index order.
    pub const ALL: [RipError; RipError::COUNT] = [
        RipError::Malformed,
        RipError::BadVersion,
        RipError::BadCommand,
        RipError::BadPort,
        RipError::Oversized,
        RipError::Unauthenticated,
        RipError::BadAuth,
        RipError::Replayed,
        RipError::NotOurSubnet,
        RipError::NotForUs,
        RipError::NotRipPort,
        RipError::RateLimited,
    ];

    /// Position in [`RipError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label.
    pub fn name(self) -> &'static str {
        match self {
            RipError::Malformed => "malformed",
            RipError::BadVersion => "bad_version",
            RipError::BadCommand => "bad_command",
            RipError::BadPort => "bad_port",
            RipError::Oversized => "oversized",
            RipError::Unauthenticated => "unauthenticated",
            RipError::BadAuth => "bad_auth",
            RipError::Replayed => "replayed",
            RipError::NotOurSubnet => "not_our_subnet",
            RipError::NotForUs => "not_for_us",
            RipError::NotRipPort => "not_rip_port",
            RipError::RateLimited => "rate_limited",
        }
    }
}

/// The RIP command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// 1: asks for all or some of the responder's routes.
    Request,
    /// 2: carries routes (periodic, triggered, or an answer).
    Response,
}

impl Command {
    /// The wire value.
    pub fn number(self) -> u8 {
        match self {
            Command::Request => 1,
            Command::Response => 2,
        }
    }

    fn from_number(n: u8) -> Option<Command> {
        match n {
            1 => Some(Command::Request),
            2 => Some(Command::Response),
            _ => None,
        }
    }
}

/// A read/write view of a RIPv2 datagram (the UDP payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RipPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RipPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic.
    pub const fn new_unchecked(buffer: T) -> Self {
        RipPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self, RipError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks everything the accessors rely on, in this order:
    ///
    /// - shorter than the header: `Malformed`; longer than [`MAX_LEN`]: `Oversized`;
    /// - version not 2: `BadVersion`; command not 1 or 2: `BadCommand`; non-zero header bytes
    ///   2..4: `Malformed`;
    /// - with a cryptographic authentication entry first: the packet length field must leave
    ///   exactly [`TRAILER_LEN`] bytes for a trailer of AFI 0xFFFF type 1, the authentication data
    ///   length must be 32, the entries must fill the packet length (`Malformed`);
    /// - otherwise the entries must fill the datagram, and there must be at least one
    ///   (`Malformed`);
    /// - more than [`MAX_ENTRIES`] entries, the authentication entry included: `Oversized`.
    pub fn check_len(&self) -> Result<(), RipError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(RipError::Malformed);
        }
        if b.len() > MAX_LEN {
            return Err(RipError::Oversized);
        }
        if b[field::VERSION] != VERSION {
            return Err(RipError::BadVersion);
        }
        if Command::from_number(b[field::COMMAND]).is_none() {
            return Err(RipError::BadCommand);
        }
        if b[field::ZERO] != [0, 0] {
            return Err(RipError::Malformed);
        }
        let end = entries_end(b)?;
        let entries = (end - HEADER_LEN) / ENTRY_LEN;
        if entries == 0 {
            return Err(RipError::Malformed);
        }
        if entries > MAX_ENTRIES {
            return Err(RipError::Oversized);
        }
        Ok(())
    }

    /// The datagram's bytes.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The command byte.
    pub fn command_number(&self) -> u8 {
        self.buffer.as_ref()[field::COMMAND]
    }

    /// The command.
    pub fn command(&self) -> Command {
        Command::from_number(self.command_number()).unwrap_or(Command::Request)
    }

    /// The version byte.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Whether the first entry is a cryptographic authentication entry (with a trailer).
    pub fn is_crypto(&self) -> bool {
        is_crypto(self.buffer.as_ref())
    }

    /// Where the entries end: the packet length field with cryptographic authentication, else
    /// the datagram's length.
    pub fn entries_end(&self) -> usize {
        entries_end(self.buffer.as_ref()).unwrap_or(HEADER_LEN)
    }

    /// Number of entries, the authentication entry included.
    pub fn entry_count(&self) -> usize {
        (self.entries_end() - HEADER_LEN) / ENTRY_LEN
    }

    /// The 20 bytes of entry `i` (`i < entry_count()`).
    pub fn entry_bytes(&self, i: usize) -> &[u8] {
        let at = HEADER_LEN + i * ENTRY_LEN;
        &self.buffer.as_ref()[at..at + ENTRY_LEN]
    }

    /// The first entry, if it is an authentication entry (AFI 0xFFFF).
    pub fn auth_entry(&self) -> Option<&[u8]> {
        let e = self.entry_bytes(0);
        (be16(&e[field::AFI]) == AFI_AUTH).then_some(e)
    }

    /// Everything the digest covers but the Apad: header, entries and the trailer's first 4
    /// bytes (empty without cryptographic authentication).
    pub fn signed_part(&self) -> &[u8] {
        if !self.is_crypto() {
            return &[];
        }
        let b = self.buffer.as_ref();
        &b[..b.len() - DIGEST_LEN]
    }

    /// The trailer's digest (empty without cryptographic authentication).
    pub fn digest(&self) -> &[u8] {
        if !self.is_crypto() {
            return &[];
        }
        let b = self.buffer.as_ref();
        &b[b.len() - DIGEST_LEN..]
    }
}

fn is_crypto(b: &[u8]) -> bool {
    b.len() >= HEADER_LEN + ENTRY_LEN
        && be16(&b[HEADER_LEN..HEADER_LEN + 2]) == AFI_AUTH
        && be16(&b[HEADER_LEN + 2..HEADER_LEN + 4]) == AUTH_CRYPTO
}

/// Where the entries end, given a buffer of at least the header (see `check_len`).
fn entries_end(b: &[u8]) -> Result<usize, RipError> {
    if !is_crypto(b) {
        if !(b.len() - HEADER_LEN).is_multiple_of(ENTRY_LEN) {
            return Err(RipError::Malformed);
        }
        return Ok(b.len());
    }
    let auth = &b[HEADER_LEN..HEADER_LEN + ENTRY_LEN];
    let end = usize::from(be16(&auth[field::PACKET_LEN]));
    if end < HEADER_LEN + ENTRY_LEN
        || !(end - HEADER_LEN).is_multiple_of(ENTRY_LEN)
        || end + TRAILER_LEN != b.len()
        || usize::from(auth[field::AUTH_DATA_LEN]) != DIGEST_LEN
    {
        return Err(RipError::Malformed);
    }
    let trailer = &b[end..];
    if be16(&trailer[field::AFI]) != AFI_AUTH || be16(&trailer[field::TRAILER_TYPE]) != TRAILER_TYPE
    {
        return Err(RipError::Malformed);
    }
    Ok(end)
}

/// One route entry (or, in a request, a route asked about).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RipEntry {
    /// Address family: [`AFI_INET`], [`AFI_UNSPEC`] in a whole-table request, or another family
    /// a receiver ignores (RFC 2453 §3.9.2).
    pub afi: u16,
    /// Route tag (0 in what the speaker sends).
    pub tag: u16,
    /// Destination.
    pub addr: Ipv4Addr,
    /// Subnet mask.
    pub mask: Ipv4Addr,
    /// Next hop (0.0.0.0: via the sender).
    pub next_hop: Ipv4Addr,
    /// 1..=16 (any value up to 16 in a request).
    pub metric: u32,
}

impl RipEntry {
    /// An IPv4 route to `addr/len` with `metric`, tag 0, next hop 0.0.0.0 (via the sender).
    pub fn route(addr: Ipv4Addr, len: u8, metric: u32) -> RipEntry {
        RipEntry {
            afi: AFI_INET,
            tag: 0,
            addr,
            mask: Ipv4Addr::from(mask_of(len)),
            next_hop: Ipv4Addr::UNSPECIFIED,
            metric,
        }
    }

    fn read(e: &[u8]) -> RipEntry {
        let ip = |r: core::ops::Range<usize>| Ipv4Addr::from(be32(&e[r]));
        RipEntry {
            afi: be16(&e[field::AFI]),
            tag: be16(&e[field::TAG]),
            addr: ip(field::ADDR),
            mask: ip(field::MASK),
            next_hop: ip(field::NEXT_HOP),
            metric: be32(&e[field::METRIC]),
        }
    }

    fn write(&self, e: &mut [u8]) {
        e[field::AFI].copy_from_slice(&self.afi.to_be_bytes());
        e[field::TAG].copy_from_slice(&self.tag.to_be_bytes());
        e[field::ADDR].copy_from_slice(&self.addr.octets());
        e[field::MASK].copy_from_slice(&self.mask.octets());
        e[field::NEXT_HOP].copy_from_slice(&self.next_hop.octets());
        e[field::METRIC].copy_from_slice(&self.metric.to_be_bytes());
    }

    /// The prefix length of a contiguous mask, `None` for another mask.
    pub fn prefix_len(&self) -> Option<u8> {
        len_of(u32::from(self.mask))
    }
}

/// The netmask of a prefix length (0..=32; more counts as 32).
pub fn mask_of(len: u8) -> u32 {
    match len {
        0 => 0,
        l if l >= 32 => u32::MAX,
        l => u32::MAX << (32 - u32::from(l)),
    }
}

/// The prefix length of a contiguous netmask.
pub fn len_of(mask: u32) -> Option<u8> {
    let len = mask.leading_ones();
    (mask.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

/// A datagram's authentication entry, as parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthInfo {
    /// RFC 4822 cryptographic authentication; the digest is in the trailer.
    Crypto {
        /// The key id.
        key_id: u8,
        /// The sender's sequence number.
        seq: u32,
    },
    /// Another authentication type (2: simple password), with its 16 data bytes. Never accepted.
    Other {
        /// The type.
        auth_type: u16,
        /// The entry's bytes 4..20.
        data: [u8; 16],
    },
}

/// A RIPv2 datagram's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RipRepr {
    /// Request or response.
    pub command: Command,
    /// The authentication entry, if the datagram has one.
    pub auth: Option<AuthInfo>,
    /// The route entries (the authentication entry not included).
    pub entries: Vec<RipEntry>,
}

impl RipRepr {
    /// Reads a checked datagram's contents. The digest is not checked (see [`verify`]).
    ///
    /// # Errors
    /// Whatever [`RipPacket::check_len`] returns, and `Malformed` for: non-zero bytes 12..20 of a
    /// cryptographic authentication entry; an authentication entry that is not the first entry;
    /// an authentication entry and nothing else; an IPv4 entry in a response with a metric
    /// outside 1..=16, or in a request above 16; an address family 0 entry that is not the sole
    /// entry of a request with metric 16 (the whole-table request) and zero fields.
    pub fn parse<T: AsRef<[u8]>>(p: &RipPacket<T>) -> Result<RipRepr, RipError> {
        p.check_len()?;
        let command = p.command();
        let mut auth = None;
        let mut entries = Vec::with_capacity(p.entry_count());
        for i in 0..p.entry_count() {
            let e = p.entry_bytes(i);
            let afi = be16(&e[field::AFI]);
            if afi == AFI_AUTH {
                if i != 0 {
                    return Err(RipError::Malformed);
                }
                let auth_type = be16(&e[field::AUTH_TYPE]);
                auth = Some(if auth_type == AUTH_CRYPTO {
                    if e[field::AUTH_ZERO].iter().any(|&b| b != 0) {
                        return Err(RipError::Malformed);
                    }
                    AuthInfo::Crypto {
                        key_id: e[field::KEY_ID],
                        seq: be32(&e[field::SEQ]),
                    }
                } else {
                    let mut data = [0; 16];
                    data.copy_from_slice(&e[field::AUTH_DATA]);
                    AuthInfo::Other { auth_type, data }
                });
                continue;
            }
            let entry = RipEntry::read(e);
            let metric_ok = match command {
                Command::Response => (1..=INFINITY).contains(&entry.metric),
                Command::Request => entry.metric <= INFINITY,
            };
            if afi == AFI_INET && !metric_ok {
                return Err(RipError::Malformed);
            }
            if afi == AFI_UNSPEC {
                let whole = command == Command::Request
                    && p.entry_count() == i + 1
                    && entries.is_empty()
                    && entry
                        == RipEntry {
                            afi: AFI_UNSPEC,
                            tag: 0,
                            addr: Ipv4Addr::UNSPECIFIED,
                            mask: Ipv4Addr::UNSPECIFIED,
                            next_hop: Ipv4Addr::UNSPECIFIED,
                            metric: INFINITY,
                        };
                if !whole {
                    return Err(RipError::Malformed);
                }
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(RipError::Malformed);
        }
        Ok(RipRepr {
            command,
            auth,
            entries,
        })
    }

    /// The whole-table request of RFC 2453 §3.9.1: one entry, address family 0, metric 16.
    pub fn is_whole_table_request(&self) -> bool {
        self.command == Command::Request
            && self.entries.len() == 1
            && self.entries[0].afi == AFI_UNSPEC
            && self.entries[0].metric == INFINITY
    }

    /// The whole-table request.
    pub fn whole_table_request(auth: Option<AuthInfo>) -> RipRepr {
        RipRepr {
            command: Command::Request,
            auth,
            entries: vec![RipEntry {
                afi: AFI_UNSPEC,
                tag: 0,
                addr: Ipv4Addr::UNSPECIFIED,
                mask: Ipv4Addr::UNSPECIFIED,
                next_hop: Ipv4Addr::UNSPECIFIED,
                metric: INFINITY,
            }],
        }
    }

    /// Bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        let auth = match self.auth {
            None => 0,
            Some(AuthInfo::Crypto { .. }) => ENTRY_LEN + TRAILER_LEN,
            Some(AuthInfo::Other { .. }) => ENTRY_LEN,
        };
        HEADER_LEN + self.entries.len() * ENTRY_LEN + auth
    }

    /// Writes the datagram into `buf[..buffer_len()]`; with cryptographic authentication the
    /// trailer's digest holds Apad, for [`sign`] to replace. The caller keeps the entry count
    /// within [`MAX_ENTRIES`] (the speaker splits its tables); `buf` must hold `buffer_len()`.
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        buf[field::COMMAND] = self.command.number();
        buf[field::VERSION] = VERSION;
        buf[field::ZERO].fill(0);
        let mut at = HEADER_LEN;
        match self.auth {
            None => {}
            Some(AuthInfo::Crypto { key_id, seq }) => {
                let e = &mut buf[at..at + ENTRY_LEN];
                e[field::AFI].copy_from_slice(&AFI_AUTH.to_be_bytes());
                e[field::AUTH_TYPE].copy_from_slice(&AUTH_CRYPTO.to_be_bytes());
                let end = (len - TRAILER_LEN) as u16;
                e[field::PACKET_LEN].copy_from_slice(&end.to_be_bytes());
                e[field::KEY_ID] = key_id;
                e[field::AUTH_DATA_LEN] = DIGEST_LEN as u8;
                e[field::SEQ].copy_from_slice(&seq.to_be_bytes());
                e[field::AUTH_ZERO].fill(0);
                at += ENTRY_LEN;
            }
            Some(AuthInfo::Other { auth_type, data }) => {
                let e = &mut buf[at..at + ENTRY_LEN];
                e[field::AFI].copy_from_slice(&AFI_AUTH.to_be_bytes());
                e[field::AUTH_TYPE].copy_from_slice(&auth_type.to_be_bytes());
                e[field::AUTH_DATA].copy_from_slice(&data);
                at += ENTRY_LEN;
            }
        }
        for entry in &self.entries {
            entry.write(&mut buf[at..at + ENTRY_LEN]);
            at += ENTRY_LEN;
        }
        if matches!(self.auth, Some(AuthInfo::Crypto { .. })) {
            let t = &mut buf[at..];
            t[field::AFI].copy_from_slice(&AFI_AUTH.to_be_bytes());
            t[field::TRAILER_TYPE].copy_from_slice(&TRAILER_TYPE.to_be_bytes());
            for c in t[4..].chunks_mut(4) {
                c.copy_from_slice(&APAD);
            }
        }
    }
}

/// The HMAC key RFC 4822 §2.5 derives from the configured key: the key itself up to 32 bytes
/// (HMAC pads it with zeros, as §2.5 does), else its SHA-256 hash.
fn hmac_for(key: &[u8]) -> Hmac<Sha256> {
    let mac = if key.len() > DIGEST_LEN {
        <Hmac<Sha256> as Mac>::new_from_slice(&Sha256::digest(key))
    } else {
        <Hmac<Sha256> as Mac>::new_from_slice(key)
    };
    // HMAC takes keys of any length.
    mac.expect("HMAC accepts any key length")
}

/// The digest of a datagram over `signed` (header, entries, the trailer's first 4 bytes) with
/// Apad in place of the digest (RFC 4822 §2.5).
pub fn digest(signed: &[u8], key: &[u8]) -> [u8; DIGEST_LEN] {
    let mut mac = hmac_for(key);
    mac.update(signed);
    for _ in 0..DIGEST_LEN / APAD.len() {
        mac.update(&APAD);
    }
    mac.finalize().into_bytes().into()
}

/// Replaces the Apad of an emitted, cryptographically authenticated datagram by its digest.
/// Does nothing to a datagram without a trailer.
pub fn sign(datagram: &mut [u8], key: &[u8]) {
    if !is_crypto(datagram) || datagram.len() < TRAILER_LEN {
        return;
    }
    let at = datagram.len() - DIGEST_LEN;
    let d = digest(&datagram[..at], key);
    datagram[at..].copy_from_slice(&d);
}

/// Whether a checked datagram's digest is right for `key` (compared in constant time). Always
/// true under `cfg(fuzzing)` for a datagram with a trailer.
pub fn verify<T: AsRef<[u8]>>(p: &RipPacket<T>, key: &[u8]) -> bool {
    if !p.is_crypto() {
        return false;
    }
    if cfg!(fuzzing) {
        return true;
    }
    let mut mac = hmac_for(key);
    mac.update(p.signed_part());
    for _ in 0..DIGEST_LEN / APAD.len() {
        mac.update(&APAD);
    }
    mac.verify_slice(p.digest()).is_ok()
}

/// What [`parse_frame`] found around a RIP datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// The 802.1Q tag's TCI, if the frame had one (kept for the answer).
    pub vlan_tci: Option<u16>,
    /// IPv4 source.
    pub src_addr: Ipv4Addr,
    /// IPv4 destination.
    pub dst_addr: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Where the datagram (UDP payload) lies in the frame.
    pub payload: core::ops::Range<usize>,
}

/// Finds the RIP datagram in an Ethernet frame (untagged or with one 802.1Q tag) carrying
/// IPv4/UDP. Checks the IPv4 header checksum and a non-zero UDP checksum (not under
/// `cfg(fuzzing)`), refuses fragments.
///
/// # Errors
/// `Malformed` for anything that is not such a frame. The ports are the caller's to check.
pub fn parse_frame(frame: &[u8]) -> Result<FrameInfo, RipError> {
    let l2 = parse_l2(frame).map_err(|_| RipError::Malformed)?;
    if l2.ethertype != EtherType::IPV4 {
        return Err(RipError::Malformed);
    }
    let eth = EthernetFrame::new_checked(frame).map_err(|_| RipError::Malformed)?;
    let ip = Ipv4Packet::new_checked(&frame[l2.l3_offset..]).map_err(|_| RipError::Malformed)?;
    let ip_repr = Ipv4Repr::parse(&ip).map_err(|_| RipError::Malformed)?;
    if ip.is_fragment() || ip_repr.next_header != protocol::UDP {
        return Err(RipError::Malformed);
    }
    let l4_offset = l2.l3_offset + usize::from(ip.header_len());
    let l4_end = l2.l3_offset + usize::from(ip.total_len());
    let udp = UdpPacket::new_checked(&frame[l4_offset..l4_end]).map_err(|_| RipError::Malformed)?;
    let udp_repr = UdpRepr::parse(&udp).map_err(|_| RipError::Malformed)?;
    if !cfg!(fuzzing) && !udp.verify_checksum(ip_repr.src_addr, ip_repr.dst_addr) {
        return Err(RipError::Malformed);
    }
    let payload_start = l4_offset + clua_pipeline::wire::udp::HEADER_LEN;
    let payload_end = l4_offset + usize::from(udp.len());
    // parse_l2 keeps only the VLAN id; the answer carries the whole TCI (priority too).
    let vlan_tci = l2.vlan.map(|_| be16(&frame[14..16]));
    Ok(FrameInfo {
        src_mac: eth.src_addr(),
        vlan_tci,
        src_addr: ip_repr.src_addr,
        dst_addr: ip_repr.dst_addr,
        src_port: udp_repr.src_port,
        dst_port: udp_repr.dst_port,
        payload: payload_start..payload_end,
    })
}

/// Where a frame goes: the addresses [`build_frame`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameAddrs {
    /// Source MAC (the port's).
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// An 802.1Q TCI to tag the frame with.
    pub vlan_tci: Option<u16>,
    /// Source address (the port's).
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Destination UDP port (520, or a querying program's port); the source port is 520.
    pub dst_port: u16,
}

/// An Ethernet/IPv4/UDP frame around `datagram`: TTL 1 (RIP never leaves the link), DF clear,
/// TOS network control, both checksums computed.
pub fn build_frame(a: &FrameAddrs, datagram: &[u8]) -> Vec<u8> {
    crate::frame::UdpFrame {
        src_mac: a.src_mac,
        dst_mac: a.dst_mac,
        src: a.src_addr,
        dst: a.dst_addr,
        ttl: 1,
        src_port: RIP_PORT,
        dst_port: a.dst_port,
        dscp_ecn: TOS_NETWORK_CONTROL,
        dont_frag: false,
        vlan_tci: a.vlan_tci,
    }
    .build(datagram)
    .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Hex (as captured with tcpdump) to bytes.
    pub(crate) fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    /// The password of the BIRD captures below (docs/rip.md, "Peering with BIRD").
    pub(crate) const BIRD_PASSWORD: &[u8] = b"clua-rip-test-password";

    // Captured from BIRD 2.0.12 (`protocol rip`, `mode broadcast; version only;`) on a veth with
    // 198.51.100.1/24, exporting 198.51.100.0/24 (direct), 203.0.113.128/25 and
    // 198.51.100.77/32 (static). Ethernet frames, as tcpdump wrote them (checksum offload off on the veth, so the UDP checksums are
    // the real ones).

    /// BIRD's whole-table request at start-up.
    pub(crate) const BIRD_REQUEST: &str =
        "ffffffffffff36dd13bd3405080045c00034667f00000111fd12c6336401c63364ff\
        020802080020a524010200000000000000000000000000000000000000000010";
    /// A periodic response of BIRD, without authentication.
    pub(crate) const BIRD_RESPONSE: &str =
        "ffffffffffff36dd13bd3405080045c0005c668000000111fce9c6336401c63364ff\
        02080208004814230202000000020000c6336400ffffff00000000000000000100020000cb007180ffffff8000\
        0000000000000100020000c633644dffffffff0000000000000001";
    /// BIRD's request with `authentication cryptographic; password "clua-rip-test-password"
    /// { id 1; algorithm hmac sha256; };` (sequence number 0).
    pub(crate) const BIRD_AUTH_REQUEST: &str =
        "ffffffffffff669b0f975e1f080045c0006c17ca000001114b90c6336401c63364ff\
        020802080058f06101020000ffff0003002c012000000000000000000000000000000000000000000000000000\
        00000000000010ffff00018a7cf5310a2908cdadef2445846c2e2c3d92ba1e462d574423131ef7d011f451";
    /// BIRD's response with that authentication (sequence number 0x6b0f4d84).
    pub(crate) const BIRD_AUTH_RESPONSE: &str =
        "ffffffffffff669b0f975e1f080045c0009417cb000001114b67c6336401c63364ff\
        020802080080940d02020000ffff0003005401206b0f4d84000000000000000000020000c6336400ffffff0000\
        0000000000000100020000cb007180ffffff80000000000000000100020000c633644dffffffff000000000000\
        0001ffff0001dd1866a775010edcc2adf101376c4e17b98dae8770bc0e685f8e431d75f8c4ea";

    fn bird_routes() -> Vec<RipEntry> {
        vec![
            RipEntry::route(Ipv4Addr::new(198, 51, 100, 0), 24, 1),
            RipEntry::route(Ipv4Addr::new(203, 0, 113, 128), 25, 1),
            RipEntry::route(Ipv4Addr::new(198, 51, 100, 77), 32, 1),
        ]
    }

    fn datagram(frame_hex: &str) -> (FrameInfo, Vec<u8>) {
        let f = hex(frame_hex);
        let info = parse_frame(&f).expect("BIRD's frame parses");
        let d = f[info.payload.clone()].to_vec();
        (info, d)
    }

    #[test]
    fn bird_frames_parse() {
        let (info, d) = datagram(BIRD_REQUEST);
        assert_eq!(info.src_addr, Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(info.dst_addr, Ipv4Addr::new(198, 51, 100, 255));
        assert_eq!((info.src_port, info.dst_port), (520, 520));
        assert_eq!(info.src_mac, [0x36, 0xdd, 0x13, 0xbd, 0x34, 0x05]);
        assert_eq!(info.vlan_tci, None);
        let r = RipRepr::parse(&RipPacket::new_checked(&d).unwrap()).unwrap();
        assert!(r.is_whole_table_request());
        assert_eq!(r, RipRepr::whole_table_request(None));

        let (_, d) = datagram(BIRD_RESPONSE);
        let r = RipRepr::parse(&RipPacket::new_checked(&d).unwrap()).unwrap();
        assert_eq!(r.command, Command::Response);
        assert_eq!(r.auth, None);
        assert_eq!(r.entries, bird_routes());
        assert_eq!(r.entries[1].prefix_len(), Some(25));
        // Our emitter writes the same bytes.
        let mut again = vec![0; r.buffer_len()];
        r.emit(&mut again);
        assert_eq!(again, d);
    }

    #[test]
    fn bird_hmac_sha256_verifies_with_the_password_only() {
        for (h, seq, request) in [
            (BIRD_AUTH_REQUEST, 0, true),
            (BIRD_AUTH_RESPONSE, 0x6b0f_4d84, false),
        ] {
            let (_, d) = datagram(h);
            let p = RipPacket::new_checked(&d).unwrap();
            assert!(p.is_crypto());
            let r = RipRepr::parse(&p).unwrap();
            assert_eq!(r.auth, Some(AuthInfo::Crypto { key_id: 1, seq }));
            assert_eq!(r.is_whole_table_request(), request);
            if !request {
                assert_eq!(r.entries, bird_routes());
            }
            assert!(verify(&p, BIRD_PASSWORD));
            assert!(!verify(&p, b"clua-rip-test-passwore"));
            assert!(!verify(&p, b""));
            // What we emit and sign for the same contents is BIRD's datagram, byte for byte.
            let mut ours = vec![0; r.buffer_len()];
            r.emit(&mut ours);
            sign(&mut ours, BIRD_PASSWORD);
            assert_eq!(ours, d);
        }
    }

    #[test]
    fn any_change_to_a_signed_datagram_fails_verification() {
        let (_, d) = datagram(BIRD_AUTH_RESPONSE);
        for i in 0..d.len() {
            for bit in [0x01, 0x80] {
                let mut m = d.clone();
                m[i] ^= bit;
                if let Ok(p) = RipPacket::new_checked(&m) {
                    assert!(!verify(&p, BIRD_PASSWORD), "byte {i} bit {bit:#x} verified");
                }
            }
        }
    }

    #[test]
    fn emit_byte_literal() {
        // A response with two routes, metric 1 and 16, no authentication.
        let r = RipRepr {
            command: Command::Response,
            auth: None,
            entries: vec![
                RipEntry::route(Ipv4Addr::new(203, 0, 113, 5), 32, 1),
                RipEntry::route(Ipv4Addr::new(203, 0, 113, 0), 24, 16),
            ],
        };
        let want: [u8; 44] = [
            0x02, 0x02, 0x00, 0x00, //
            0x00, 0x02, 0x00, 0x00, 0xcb, 0x00, 0x71, 0x05, 0xff, 0xff, 0xff, 0xff, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
            0x00, 0x02, 0x00, 0x00, 0xcb, 0x00, 0x71, 0x00, 0xff, 0xff, 0xff, 0x00, //
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
        ];
        assert_eq!(r.buffer_len(), want.len());
        let mut got = [0u8; 44];
        r.emit(&mut got);
        assert_eq!(got, want);
        assert_eq!(
            RipRepr::parse(&RipPacket::new_checked(&want[..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn emitted_crypto_datagram_layout_and_round_trip() {
        let r = RipRepr {
            command: Command::Response,
            auth: Some(AuthInfo::Crypto {
                key_id: 7,
                seq: 0x0102_0304,
            }),
            entries: vec![RipEntry::route(Ipv4Addr::new(203, 0, 113, 5), 32, 1)],
        };
        let mut d = vec![0; r.buffer_len()];
        assert_eq!(d.len(), 4 + 20 + 20 + 36);
        r.emit(&mut d);
        assert_eq!(
            &d[4..24],
            &[0xff, 0xff, 0x00, 0x03, 0x00, 44, 7, 32, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&d[44..48], &[0xff, 0xff, 0x00, 0x01]);
        // Unsigned, the digest field holds Apad (RFC 4822 §2.5).
        assert_eq!(&d[48..52], &APAD);
        assert_eq!(&d[76..80], &APAD);
        sign(&mut d, b"k");
        let p = RipPacket::new_checked(&d).unwrap();
        assert!(verify(&p, b"k"));
        assert_eq!(RipRepr::parse(&p).unwrap(), r);
        // A key longer than 32 bytes is hashed first (§2.5), not the same as HMAC's own rule.
        let long = [0x5a; 40];
        sign(&mut d, &long);
        let p = RipPacket::new_checked(&d).unwrap();
        assert!(verify(&p, &long));
        assert_eq!(p.digest(), digest(p.signed_part(), &Sha256::digest(long)));
    }

    fn response(n: usize) -> Vec<u8> {
        let r = RipRepr {
            command: Command::Response,
            auth: None,
            entries: (0..n)
                .map(|i| RipEntry::route(Ipv4Addr::new(203, 0, 113, i as u8), 32, 1))
                .collect(),
        };
        let mut d = vec![0; r.buffer_len()];
        r.emit(&mut d);
        d
    }

    #[test]
    fn refusals() {
        let check = |d: &[u8]| RipRepr::parse(&RipPacket::new_unchecked(d));
        assert_eq!(check(&response(25)).unwrap().entries.len(), 25);
        assert_eq!(check(&response(26)), Err(RipError::Oversized));
        assert_eq!(check(&[0u8; 600]), Err(RipError::Oversized));
        let mut v1 = response(1);
        v1[1] = 1;
        assert_eq!(check(&v1), Err(RipError::BadVersion));
        let mut cmd = response(1);
        cmd[0] = 3;
        assert_eq!(check(&cmd), Err(RipError::BadCommand));
        let mut mbz = response(1);
        mbz[3] = 1;
        assert_eq!(check(&mbz), Err(RipError::Malformed));
        assert_eq!(check(&response(1)[..23]), Err(RipError::Malformed));
        assert_eq!(check(&response(0)), Err(RipError::Malformed));
        for metric in [0u8, 17] {
            let mut m = response(1);
            m[23] = metric;
            assert_eq!(check(&m), Err(RipError::Malformed));
        }
        // Address family 0 outside a whole-table request.
        let mut afi0 = response(2);
        afi0[24..26].fill(0);
        assert_eq!(check(&afi0), Err(RipError::Malformed));
        // An authentication entry that is not first.
        let mut late = response(2);
        late[24..26].fill(0xff);
        assert_eq!(check(&late), Err(RipError::Malformed));
        // Crypto: a packet length that does not leave exactly the trailer, a bad data length,
        // a bad trailer, non-zero reserved bytes; 25 entries with the authentication entry are
        // the most, 26 are oversized.
        let (_, d) = datagram(BIRD_AUTH_RESPONSE);
        for (at, v, want) in [
            (9, 0x55, RipError::Malformed),
            (11, 0x21, RipError::Malformed),
            (d.len() - 33, 0x02, RipError::Malformed),
            (19, 1, RipError::Malformed),
        ] {
            let mut m = d.clone();
            m[at] = v;
            assert_eq!(check(&m), Err(want), "byte {at}");
        }
        let crypto = |n: usize| {
            let r = RipRepr {
                command: Command::Response,
                auth: Some(AuthInfo::Crypto { key_id: 1, seq: 1 }),
                entries: (0..n)
                    .map(|i| RipEntry::route(Ipv4Addr::new(203, 0, 113, i as u8), 32, 1))
                    .collect(),
            };
            let mut d = vec![0; r.buffer_len()];
            r.emit(&mut d);
            d
        };
        assert_eq!(check(&crypto(24)).unwrap().entries.len(), 24);
        assert_eq!(check(&crypto(25)), Err(RipError::Oversized));
        // Authentication and no route entry.
        assert_eq!(check(&crypto(0)), Err(RipError::Malformed));
    }

    #[test]
    fn truncation_and_mutation_sweeps_never_panic() {
        let mut inputs: Vec<Vec<u8>> = [
            BIRD_REQUEST,
            BIRD_RESPONSE,
            BIRD_AUTH_REQUEST,
            BIRD_AUTH_RESPONSE,
        ]
        .iter()
        .map(|h| hex(h))
        .collect();
        inputs.push(response(25));
        for f in &inputs {
            for n in 0..=f.len() {
                let _ = parse_frame(&f[..n]);
                let _ =
                    RipPacket::new_checked(&f[..n]).map(|p| (RipRepr::parse(&p), verify(&p, b"k")));
                let _ =
                    RipPacket::new_checked(&f[n..]).map(|p| (RipRepr::parse(&p), verify(&p, b"k")));
            }
            for i in 0..f.len() {
                for v in [0x00, 0xff, 0x01, 0x80, 0x10] {
                    let mut m = f.clone();
                    m[i] = v;
                    let _ = parse_frame(&m);
                    for start in [0, 42] {
                        if let Ok(p) = RipPacket::new_checked(&m[start.min(m.len())..]) {
                            let _ = (p.entry_count(), p.auth_entry(), p.signed_part(), p.digest());
                            if let Ok(r) = RipRepr::parse(&p) {
                                // What parses emits to the same bytes.
                                let mut e = vec![0; r.buffer_len()];
                                r.emit(&mut e);
                                if !p.is_crypto() {
                                    assert_eq!(&e[..], &m[start..]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn frame_round_trip_checksums_ttl_and_vlan() {
        let d = response(2);
        for tci in [None, Some(0x2064)] {
            let a = FrameAddrs {
                src_mac: [2, 0, 0, 0, 0, 1],
                dst_mac: BROADCAST_MAC,
                vlan_tci: tci,
                src_addr: Ipv4Addr::new(198, 51, 100, 2),
                dst_addr: Ipv4Addr::new(198, 51, 100, 255),
                dst_port: RIP_PORT,
            };
            let f = build_frame(&a, &d);
            let info = parse_frame(&f).unwrap();
            assert_eq!(&f[info.payload.clone()], &d[..]);
            assert_eq!(info.vlan_tci, tci);
            assert_eq!(info.src_mac, a.src_mac);
            assert_eq!((info.src_addr, info.dst_addr), (a.src_addr, a.dst_addr));
            let l3 = if tci.is_some() { 18 } else { 14 };
            let ip = Ipv4Packet::new_checked(&f[l3..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.hop_limit(), 1);
            assert!(!ip.dont_frag());
            let udp = UdpPacket::new_checked(&f[l3 + 20..]).unwrap();
            assert_ne!(udp.checksum(), 0);
            assert!(udp.verify_checksum(a.src_addr, a.dst_addr));
            assert_eq!((udp.src_port(), udp.dst_port()), (520, 520));
            // A corrupted UDP checksum is refused.
            let mut bad = f.clone();
            bad[l3 + 20 + 8] ^= 1;
            assert_eq!(parse_frame(&bad), Err(RipError::Malformed));
            // Any destination port (an answer to a query program).
            let mut other = a;
            other.dst_port = 40000;
            assert_eq!(
                parse_frame(&build_frame(&other, &d)).unwrap().dst_port,
                40000
            );
        }
    }

    const BROADCAST_MAC: [u8; 6] = [0xff; 6];

    #[test]
    fn masks() {
        assert_eq!(mask_of(0), 0);
        assert_eq!(mask_of(24), 0xffff_ff00);
        assert_eq!(mask_of(32), u32::MAX);
        assert_eq!(len_of(0), Some(0));
        assert_eq!(len_of(0xffff_ff80), Some(25));
        assert_eq!(len_of(u32::MAX), Some(32));
        assert_eq!(len_of(0xff00_ff00), None);
        assert_eq!(len_of(1), None);
    }

    #[test]
    fn error_labels_are_unique_and_indexed() {
        let names: std::collections::HashSet<_> = RipError::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), RipError::COUNT);
        for (i, e) in RipError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
    }
}
