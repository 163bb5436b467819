//! The router protocol message (issue 8 "Router protocol"; CA4): every interval each alias router
//! announces over the interconnect its node name, its health, the aliases it specifies or joins
//! with its rpri for each, and its client-facing ports. Its peers feed these announcements to the
//! proxy-ARP master election ([`super::election`]). The format is documented byte by byte in
//! `docs/router-protocol.md`; in short (all integers big-endian):
//!
//! ```text
//!  offset  size  field
//!       0     4  magic "CLUR" (member adverts use "CLUA")
//!       4     1  version = 1
//!       5     1  kind: 1 = announce, 2 = goodbye
//!       6     1  health: 0 = healthy, 1 = degraded
//!       7     1  reserved = 0
//!       8    64  node name, `crate::name` rules, NUL-padded
//!      72     8  boot_id (larger for every start of the router)
//!      80     8  seq (1 for the first message of a boot, +1 per message)
//!      88     4  interval_ms (100..=60000; default 100)
//!      92     2  alias_count (<= 1024)
//!      94     2  port_count (<= 64)
//!      96  12*a  alias entries: addr u32, rpri u32, flags u8 (bit 0 = joined, 0 = specified
//!                only; bit 1 = master now), 3 reserved bytes = 0
//!       .  72*p  port entries: name (64 bytes, NUL-padded), addr u32, prefix_len u8 (1..=32),
//!                flags u8 (bit 0 = up), 2 reserved bytes = 0
//!       .    32  HMAC-SHA-256 over every byte before it
//! ```
//!
//! As in [`crate::advert`]: [`RouterPacket`] is a zero-copy view; once
//! [`RouterPacket::new_checked`] accepted a buffer (length within [`MAX_ROUTER_LEN`], magic,
//! version, counts within the limits and matching the length exactly), no accessor panics.
//! [`RouterRepr::parse_verified`] checks the framing, then the tag (constant time), then the
//! contents; [`RouterRepr::emit_signed`] refuses what a peer would refuse.
//!
//! Replay protection is the receiver's: per peer it keeps the last accepted `(boot_id, seq)` and
//! accepts a message only with a larger boot_id, or the same boot_id and a larger seq (the member
//! rules, docs/member-protocol.md); [`freshness`] is that rule as a pure function.
//!
//! The tag check is skipped when built with `--cfg fuzzing` (cargo-fuzz), so that a fuzzer can
//! reach the content checks.
//!
// `cfg(fuzzing)` is set by cargo-fuzz, not by Cargo, so it is not in rustc's list of known cfgs.
#![allow(unexpected_cfgs)]

use std::collections::HashSet;
use std::net::Ipv4Addr;

use crate::signed::{self, be16, be32, be64, FramingError};

use crate::model::RPRI_RANGE;
use crate::name::validate_name;

/// The UDP port routers receive router messages on (member adverts use 9471).
pub const ROUTER_PORT: u16 = 9472;
/// The largest datagram a router looks at; anything longer is [`RouterError::Oversized`]. (The
/// largest valid message, with [`MAX_ALIASES`] and [`MAX_PORTS`], is 17,024 bytes.)
pub const MAX_ROUTER_LEN: usize = 65_000;
/// The most alias entries one message may carry.
pub const MAX_ALIASES: usize = 1024;
/// The most client-facing port entries one message may carry.
pub const MAX_PORTS: usize = 64;
/// The magic bytes that start every router message.
pub const MAGIC: [u8; 4] = *b"CLUR";
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = field::ALIASES_START;
/// Length of one alias entry.
pub const ALIAS_ENTRY_LEN: usize = 12;
/// Length of one port entry.
pub const PORT_ENTRY_LEN: usize = 72;
/// Length of the HMAC-SHA-256 tag.
pub const TAG_LEN: usize = crate::signed::TAG_LEN;
/// The size of the node and port name fields (the longest name, `crate::name::NAME_MAX`).
pub const NAME_LEN: usize = 64;
/// The shortest key `emit_signed` and `parse_verified` accept.
pub const MIN_KEY_LEN: usize = 16;
/// Allowed intervals (ms).
pub const INTERVAL_RANGE: core::ops::RangeInclusive<u32> = 100..=60_000;
/// The default interval (ms).
pub const DEFAULT_INTERVAL_MS: u32 = 100;
/// Messages a peer may miss before it is dead.
pub const DEFAULT_DEAD_MISSES: u32 = 3;
/// Bit 0 of an alias entry's flags: the router has joined the alias (0: it only specifies it).
pub const ALIAS_FLAG_JOINED: u8 = 0x01;
/// Alias entry flag: the sender is the alias's proxy-ARP master now (it answers ARP for it).
/// Peers take the current masters from these claims ([`super::election`]'s incumbency), so a
/// router that starts or heals from a partition learns who holds what before it claims anything.
pub const ALIAS_FLAG_MASTER: u8 = 0x02;
/// Bit 0 of a port entry's flags: the port's link is up.
pub const PORT_FLAG_UP: u8 = 0x01;

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const HEALTH: usize = 6;
    pub const RESERVED: usize = 7;
    pub const NODE: Range<usize> = 8..72;
    pub const BOOT_ID: Range<usize> = 72..80;
    pub const SEQ: Range<usize> = 80..88;
    pub const INTERVAL: Range<usize> = 88..92;
    pub const ALIAS_COUNT: Range<usize> = 92..94;
    pub const PORT_COUNT: Range<usize> = 94..96;
    pub const ALIASES_START: usize = 96;
    // Within an alias entry.
    pub const A_ADDR: Range<usize> = 0..4;
    pub const A_RPRI: Range<usize> = 4..8;
    pub const A_FLAGS: usize = 8;
    pub const A_RESERVED: Range<usize> = 9..12;
    // Within a port entry.
    pub const P_NAME: Range<usize> = 0..64;
    pub const P_ADDR: Range<usize> = 64..68;
    pub const P_PREFIX: usize = 68;
    pub const P_FLAGS: usize = 69;
    pub const P_RESERVED: Range<usize> = 70..72;
}

/// Why a router message was refused (by `parse_verified`, `new_checked` or `emit_signed`). Each
/// has a metric label ([`RouterError::name`]) and an index ([`RouterError::index`]) into a
/// counter array of [`RouterError::COUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RouterError {
    /// Longer than [`MAX_ROUTER_LEN`], or more than [`MAX_ALIASES`] aliases or [`MAX_PORTS`]
    /// ports.
    #[error("router message too large (length or entry counts above the limits)")]
    Oversized,
    /// Shorter than the header and tag, or than its counts need.
    #[error("router message truncated")]
    Truncated,
    /// Longer than its counts need, or non-zero reserved bytes or unknown flag bits.
    #[error("router message malformed (trailing bytes or non-zero reserved bits)")]
    Malformed,
    /// Does not start with [`MAGIC`].
    #[error("not a router message (bad magic)")]
    BadMagic,
    /// A version other than [`VERSION`].
    #[error("unsupported router message version")]
    UnsupportedVersion,
    /// The HMAC tag does not match (forged, corrupted, or signed with another key).
    #[error("router message authentication failed (bad HMAC tag)")]
    BadTag,
    /// A kind other than announce (1) or goodbye (2).
    #[error("unknown router message kind")]
    BadKind,
    /// A health other than healthy (0) or degraded (1).
    #[error("unknown router health")]
    BadHealth,
    /// A node name that breaks `crate::name` rules or is not NUL-padded.
    #[error("bad router node name (1..=64 bytes of letters, digits, `.`, `_`, `-`)")]
    BadNode,
    /// An interval outside [`INTERVAL_RANGE`].
    #[error("router interval outside 100..=60000 ms")]
    BadInterval,
    /// Sequence number 0 (sequence numbers start at 1).
    #[error("router message sequence number 0")]
    BadSeq,
    /// An alias address that is not a unicast address.
    #[error("alias address is not a unicast address")]
    BadAlias,
    /// An rpri outside `RPRI_RANGE`.
    #[error("rpri out of range")]
    BadRpri,
    /// A port name that breaks `crate::name` rules or is not NUL-padded.
    #[error("bad port name (1..=64 bytes of letters, digits, `.`, `_`, `-`)")]
    BadPortName,
    /// A port address that is not a unicast address.
    #[error("port address is not a unicast address")]
    BadPortAddr,
    /// A port prefix length outside 1..=32.
    #[error("port prefix length outside 1..=32")]
    BadPrefix,
    /// The same alias, or the same port name, twice.
    #[error("alias or port listed twice")]
    Duplicate,
    /// A key shorter than [`MIN_KEY_LEN`] (a configuration error, not the datagram's).
    #[error("router key shorter than 16 bytes")]
    WeakKey,
}

impl RouterError {
    /// Number of variants (the size of a counter array indexed by [`RouterError::index`]).
    pub const COUNT: usize = 18;
    /// Every variant, in index order.
    pub const ALL: [RouterError; RouterError::COUNT] = [
        RouterError::Oversized,
        RouterError::Truncated,
        RouterError::Malformed,
        RouterError::BadMagic,
        RouterError::UnsupportedVersion,
        RouterError::BadTag,
        RouterError::BadKind,
        RouterError::BadHealth,
        RouterError::BadNode,
        RouterError::BadInterval,
        RouterError::BadSeq,
        RouterError::BadAlias,
        RouterError::BadRpri,
        RouterError::BadPortName,
        RouterError::BadPortAddr,
        RouterError::BadPrefix,
        RouterError::Duplicate,
        RouterError::WeakKey,
    ];

    /// Position in [`RouterError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            RouterError::Oversized => "oversized",
            RouterError::Truncated => "truncated",
            RouterError::Malformed => "malformed",
            RouterError::BadMagic => "bad_magic",
            RouterError::UnsupportedVersion => "unsupported_version",
            RouterError::BadTag => "bad_tag",
            RouterError::BadKind => "bad_kind",
            RouterError::BadHealth => "bad_health",
            RouterError::BadNode => "bad_node",
            RouterError::BadInterval => "bad_interval",
            RouterError::BadSeq => "bad_seq",
            RouterError::BadAlias => "bad_alias",
            RouterError::BadRpri => "bad_rpri",
            RouterError::BadPortName => "bad_port_name",
            RouterError::BadPortAddr => "bad_port_addr",
            RouterError::BadPrefix => "bad_prefix",
            RouterError::Duplicate => "duplicate",
            RouterError::WeakKey => "weak_key",
        }
    }
}

/// The bytes a message with `aliases` and `ports` entries takes, tag included.
pub const fn buffer_len(aliases: usize, ports: usize) -> usize {
    HEADER_LEN + aliases * ALIAS_ENTRY_LEN + ports * PORT_ENTRY_LEN + TAG_LEN
}

/// This format's magic, version and lengths, checked by [`crate::signed::Framing::check`].
const FRAMING: signed::Framing = signed::Framing {
    magic: MAGIC,
    magic_at: field::MAGIC,
    version: VERSION,
    version_at: field::VERSION,
    header_len: HEADER_LEN,
    max_len: MAX_ROUTER_LEN,
};

impl From<FramingError> for RouterError {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::Oversized => RouterError::Oversized,
            FramingError::Truncated => RouterError::Truncated,
            FramingError::BadMagic => RouterError::BadMagic,
            FramingError::UnsupportedVersion => RouterError::UnsupportedVersion,
            FramingError::Malformed => RouterError::Malformed,
        }
    }
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}
/// The name in a NUL-padded field: the bytes before the first NUL.
pub(crate) fn padded_name(f: &[u8]) -> &[u8] {
    let n = f.iter().position(|&b| b == 0).unwrap_or(f.len());
    &f[..n]
}
/// The name in a NUL-padded field, if it is a valid name followed by NULs only.
pub(crate) fn checked_name(f: &[u8]) -> Option<String> {
    let n = padded_name(f);
    if validate_name(n).is_err() || f[n.len()..].iter().any(|&b| b != 0) {
        return None;
    }
    // validate_name admits ASCII only.
    String::from_utf8(n.to_vec()).ok()
}
pub(crate) fn write_name(f: &mut [u8], name: &[u8]) {
    f.fill(0);
    let n = name.len().min(f.len());
    f[..n].copy_from_slice(&name[..n]);
}
pub(crate) fn is_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}
/// One alias entry as on the wire (unvalidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AliasRecord {
    /// The alias address.
    pub addr: Ipv4Addr,
    /// The router's rpri for it.
    pub rpri: u32,
    /// Flags ([`ALIAS_FLAG_JOINED`], [`ALIAS_FLAG_MASTER`]; other bits must be 0).
    pub flags: u8,
    /// The reserved bytes (must be 0).
    pub reserved: [u8; 3],
}

/// One port entry as on the wire (unvalidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRecord<'a> {
    /// The name field (NUL-padded).
    pub name_field: &'a [u8],
    /// The port's address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// Flags ([`PORT_FLAG_UP`]; other bits must be 0).
    pub flags: u8,
    /// The reserved bytes (must be 0).
    pub reserved: [u8; 2],
}

/// A zero-copy view of a router message.
///
/// Contract: after [`RouterPacket::new_checked`] succeeded, no accessor panics. The entry
/// iterators never panic at all (on an unchecked short buffer they end early).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RouterPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        RouterPacket { buffer }
    }

    /// Wraps a buffer after [`RouterPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, RouterError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the framing, in this order: length at most [`MAX_ROUTER_LEN`] (`Oversized`), at
    /// least header and tag (`Truncated`), magic (`BadMagic`), version (`UnsupportedVersion`),
    /// counts within the limits (`Oversized`), and the length the counts imply equal to the
    /// buffer's (`Truncated` if shorter, `Malformed` if longer).
    pub fn check_len(&self) -> Result<(), RouterError> {
        FRAMING.check(self.buffer.as_ref(), || {
            let (a, p) = (self.alias_count() as usize, self.port_count() as usize);
            (a <= MAX_ALIASES && p <= MAX_PORTS).then(|| buffer_len(a, p))
        })?;
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The magic bytes.
    pub fn magic(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::MAGIC];
        [b[0], b[1], b[2], b[3]]
    }
    /// The version.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    /// The kind (wire value).
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    /// The health (wire value).
    pub fn health(&self) -> u8 {
        self.buffer.as_ref()[field::HEALTH]
    }
    /// The reserved header byte.
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED]
    }
    /// The whole node field, padding included.
    pub fn node_field(&self) -> &[u8] {
        &self.buffer.as_ref()[field::NODE]
    }
    /// The node name: the node field up to its first NUL.
    pub fn node(&self) -> &[u8] {
        padded_name(self.node_field())
    }
    /// The boot id.
    pub fn boot_id(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::BOOT_ID])
    }
    /// The sequence number.
    pub fn seq(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::SEQ])
    }
    /// The sender's interval (ms).
    pub fn interval_ms(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::INTERVAL])
    }
    /// The alias entry count.
    pub fn alias_count(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ALIAS_COUNT])
    }
    /// The port entry count.
    pub fn port_count(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PORT_COUNT])
    }

    fn ports_start(&self) -> usize {
        HEADER_LEN + self.alias_count() as usize * ALIAS_ENTRY_LEN
    }
    fn tag_start(&self) -> usize {
        self.ports_start() + self.port_count() as usize * PORT_ENTRY_LEN
    }

    /// The alias entries.
    pub fn aliases(&self) -> impl Iterator<Item = AliasRecord> + '_ {
        let b = self.buffer.as_ref();
        let end = self.ports_start().min(b.len());
        b.get(HEADER_LEN..end)
            .unwrap_or(&[])
            .chunks_exact(ALIAS_ENTRY_LEN)
            .map(|e| AliasRecord {
                addr: addr(&e[field::A_ADDR]),
                rpri: be32(&e[field::A_RPRI]),
                flags: e[field::A_FLAGS],
                reserved: [e[9], e[10], e[11]],
            })
    }

    /// The port entries.
    pub fn ports(&self) -> impl Iterator<Item = PortRecord<'_>> + '_ {
        let b = self.buffer.as_ref();
        let end = self.tag_start().min(b.len());
        b.get(self.ports_start()..end)
            .unwrap_or(&[])
            .chunks_exact(PORT_ENTRY_LEN)
            .map(|e| PortRecord {
                name_field: &e[field::P_NAME],
                addr: addr(&e[field::P_ADDR]),
                prefix_len: e[field::P_PREFIX],
                flags: e[field::P_FLAGS],
                reserved: [e[field::P_RESERVED][0], e[field::P_RESERVED][1]],
            })
    }

    /// Everything the tag covers (the message without its tag).
    pub fn signed_part(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.tag_start()]
    }

    /// The HMAC tag.
    pub fn tag(&self) -> &[u8] {
        let s = self.tag_start();
        &self.buffer.as_ref()[s..s + TAG_LEN]
    }

    /// Whether the tag is the HMAC-SHA-256 of [`RouterPacket::signed_part`] under `key`
    /// (compared in constant time).
    pub fn verify_tag(&self, key: &[u8]) -> bool {
        signed::verify(self.signed_part(), self.tag(), key)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RouterPacket<T> {
    /// Writes the fixed header (magic, version, kind, health, reserved byte 0, node name,
    /// boot id, seq, interval, counts). `node` longer than [`NAME_LEN`] is cut.
    #[allow(clippy::too_many_arguments)]
    pub fn set_header(
        &mut self,
        kind: u8,
        health: u8,
        node: &[u8],
        boot_id: u64,
        seq: u64,
        interval_ms: u32,
        aliases: u16,
        ports: u16,
    ) {
        let b = self.buffer.as_mut();
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::VERSION] = VERSION;
        b[field::KIND] = kind;
        b[field::HEALTH] = health;
        b[field::RESERVED] = 0;
        write_name(&mut b[field::NODE], node);
        b[field::BOOT_ID].copy_from_slice(&boot_id.to_be_bytes());
        b[field::SEQ].copy_from_slice(&seq.to_be_bytes());
        b[field::INTERVAL].copy_from_slice(&interval_ms.to_be_bytes());
        b[field::ALIAS_COUNT].copy_from_slice(&aliases.to_be_bytes());
        b[field::PORT_COUNT].copy_from_slice(&ports.to_be_bytes());
    }
    /// Writes alias entry `i` (`i` < alias count).
    pub fn set_alias(&mut self, i: usize, r: &AliasRecord) {
        let s = HEADER_LEN + i * ALIAS_ENTRY_LEN;
        let e = &mut self.buffer.as_mut()[s..s + ALIAS_ENTRY_LEN];
        e[field::A_ADDR].copy_from_slice(&r.addr.octets());
        e[field::A_RPRI].copy_from_slice(&r.rpri.to_be_bytes());
        e[field::A_FLAGS] = r.flags;
        e[field::A_RESERVED].copy_from_slice(&r.reserved);
    }
    /// Writes port entry `i` (`i` < port count; set the counts first). A name longer than
    /// [`NAME_LEN`] is cut.
    pub fn set_port(&mut self, i: usize, r: &PortRecord<'_>) {
        let s = self.ports_start() + i * PORT_ENTRY_LEN;
        let e = &mut self.buffer.as_mut()[s..s + PORT_ENTRY_LEN];
        write_name(&mut e[field::P_NAME], r.name_field);
        e[field::P_ADDR].copy_from_slice(&r.addr.octets());
        e[field::P_PREFIX] = r.prefix_len;
        e[field::P_FLAGS] = r.flags;
        e[field::P_RESERVED].copy_from_slice(&r.reserved);
    }
    /// Computes the tag over [`RouterPacket::signed_part`] under `key` and writes it.
    pub fn sign(&mut self, key: &[u8]) {
        let tag = signed::tag(self.signed_part(), key);
        let s = self.tag_start();
        self.buffer.as_mut()[s..s + TAG_LEN].copy_from_slice(&tag);
    }
}

/// What a message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouterKind {
    /// The periodic announcement (also sent at once when what it says changes).
    Announce,
    /// The router is shutting down cleanly: peers treat it as dead at once.
    Goodbye,
}

impl RouterKind {
    /// The wire value.
    pub fn number(self) -> u8 {
        match self {
            RouterKind::Announce => 1,
            RouterKind::Goodbye => 2,
        }
    }
    /// From the wire value.
    pub fn from_number(n: u8) -> Option<RouterKind> {
        match n {
            1 => Some(RouterKind::Announce),
            2 => Some(RouterKind::Goodbye),
            _ => None,
        }
    }
}

/// A router's own account of its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// Its data plane forwards.
    Healthy,
    /// It is alive but cannot serve well (e.g. workers not running). How the election treats it
    /// is for the session that wires the protocol (docs/router-protocol.md).
    Degraded,
}

impl Health {
    /// The wire value.
    pub fn number(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 1,
        }
    }
    /// From the wire value.
    pub fn from_number(n: u8) -> Option<Health> {
        match n {
            0 => Some(Health::Healthy),
            1 => Some(Health::Degraded),
            _ => None,
        }
    }
}

/// One alias as a router reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouterAlias {
    /// The alias address.
    pub addr: Ipv4Addr,
    /// The router's rpri for it (`RPRI_RANGE`).
    pub rpri: u32,
    /// Whether the router joined it (false: it only specifies it).
    pub joined: bool,
    /// Whether the router is its proxy-ARP master now ([`ALIAS_FLAG_MASTER`]).
    pub master: bool,
}

/// One client-facing port as a router reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouterPort {
    /// The port's name (`crate::name` rules).
    pub name: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Its prefix length (1..=32): with `addr`, the subnet it is on.
    pub prefix_len: u8,
    /// Whether its link is up.
    pub up: bool,
}

/// A parsed, authenticated and validated router message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterRepr {
    /// Announce or goodbye.
    pub kind: RouterKind,
    /// The router's health.
    pub health: Health,
    /// The router's node name.
    pub node: String,
    /// Larger for every start of the router.
    pub boot_id: u64,
    /// 1 for the first message of a boot, +1 for each further message.
    pub seq: u64,
    /// The router's interval (ms), from which peers compute its dead time.
    pub interval_ms: u32,
    /// The aliases it specifies or joins.
    pub aliases: Vec<RouterAlias>,
    /// Its client-facing ports.
    pub ports: Vec<RouterPort>,
}

impl RouterRepr {
    /// The datagram length this message encodes to.
    pub fn buffer_len(&self) -> usize {
        buffer_len(self.aliases.len(), self.ports.len())
    }

    /// Checks what `parse_verified` checks after the tag: limits, node name, interval, sequence,
    /// alias addresses and rpri, port names, addresses and prefixes, duplicates.
    pub fn check(&self) -> Result<(), RouterError> {
        if self.aliases.len() > MAX_ALIASES || self.ports.len() > MAX_PORTS {
            return Err(RouterError::Oversized);
        }
        if validate_name(self.node.as_bytes()).is_err() {
            return Err(RouterError::BadNode);
        }
        if !INTERVAL_RANGE.contains(&self.interval_ms) {
            return Err(RouterError::BadInterval);
        }
        if self.seq == 0 {
            return Err(RouterError::BadSeq);
        }
        let mut seen = HashSet::with_capacity(self.aliases.len());
        for a in &self.aliases {
            if !is_unicast(a.addr) {
                return Err(RouterError::BadAlias);
            }
            if !RPRI_RANGE.contains(&a.rpri) {
                return Err(RouterError::BadRpri);
            }
            if !seen.insert(a.addr) {
                return Err(RouterError::Duplicate);
            }
        }
        let mut seen = HashSet::with_capacity(self.ports.len());
        for p in &self.ports {
            if validate_name(p.name.as_bytes()).is_err() {
                return Err(RouterError::BadPortName);
            }
            if !is_unicast(p.addr) {
                return Err(RouterError::BadPortAddr);
            }
            if !(1..=32).contains(&p.prefix_len) {
                return Err(RouterError::BadPrefix);
            }
            if !seen.insert(p.name.as_str()) {
                return Err(RouterError::Duplicate);
            }
        }
        Ok(())
    }

    /// Encodes and signs the message with `key`.
    ///
    /// # Errors
    /// [`RouterError::WeakKey`] for a key shorter than [`MIN_KEY_LEN`]; otherwise whatever
    /// [`RouterRepr::check`] finds (peers would drop such a message).
    pub fn emit_signed(&self, key: &[u8]) -> Result<Vec<u8>, RouterError> {
        if key.len() < MIN_KEY_LEN {
            return Err(RouterError::WeakKey);
        }
        self.check()?;
        let mut p = RouterPacket::new_unchecked(vec![0u8; self.buffer_len()]);
        // `check` bounded both counts well below u16::MAX.
        p.set_header(
            self.kind.number(),
            self.health.number(),
            self.node.as_bytes(),
            self.boot_id,
            self.seq,
            self.interval_ms,
            self.aliases.len() as u16,
            self.ports.len() as u16,
        );
        for (i, a) in self.aliases.iter().enumerate() {
            p.set_alias(
                i,
                &AliasRecord {
                    addr: a.addr,
                    rpri: a.rpri,
                    flags: if a.joined { ALIAS_FLAG_JOINED } else { 0 }
                        | if a.master { ALIAS_FLAG_MASTER } else { 0 },
                    reserved: [0; 3],
                },
            );
        }
        for (i, port) in self.ports.iter().enumerate() {
            p.set_port(
                i,
                &PortRecord {
                    name_field: port.name.as_bytes(),
                    addr: port.addr,
                    prefix_len: port.prefix_len,
                    flags: if port.up { PORT_FLAG_UP } else { 0 },
                    reserved: [0; 2],
                },
            );
        }
        p.sign(key);
        Ok(p.into_inner())
    }

    /// Parses a datagram: the framing first ([`RouterPacket::check_len`]), then the tag under
    /// `key` in constant time (`BadTag`), then the contents.
    ///
    /// # Errors
    /// The first problem found, as a [`RouterError`]; [`RouterError::WeakKey`] for a key shorter
    /// than [`MIN_KEY_LEN`] before looking at the datagram.
    pub fn parse_verified(bytes: &[u8], key: &[u8]) -> Result<RouterRepr, RouterError> {
        if key.len() < MIN_KEY_LEN {
            return Err(RouterError::WeakKey);
        }
        let p = RouterPacket::new_checked(bytes)?;
        if !cfg!(fuzzing) && !p.verify_tag(key) {
            return Err(RouterError::BadTag);
        }
        Self::parse_contents(&p)
    }

    /// The content checks of [`RouterRepr::parse_verified`] on a checked packet, without the
    /// tag. Only for tests and tools that already verified the tag.
    pub fn parse_contents<T: AsRef<[u8]>>(p: &RouterPacket<T>) -> Result<RouterRepr, RouterError> {
        let kind = RouterKind::from_number(p.kind()).ok_or(RouterError::BadKind)?;
        let health = Health::from_number(p.health()).ok_or(RouterError::BadHealth)?;
        if p.reserved() != 0 {
            return Err(RouterError::Malformed);
        }
        let node = checked_name(p.node_field()).ok_or(RouterError::BadNode)?;
        let mut aliases = Vec::with_capacity(p.alias_count() as usize);
        for r in p.aliases() {
            if r.flags & !(ALIAS_FLAG_JOINED | ALIAS_FLAG_MASTER) != 0 || r.reserved != [0; 3] {
                return Err(RouterError::Malformed);
            }
            aliases.push(RouterAlias {
                addr: r.addr,
                rpri: r.rpri,
                joined: r.flags & ALIAS_FLAG_JOINED != 0,
                master: r.flags & ALIAS_FLAG_MASTER != 0,
            });
        }
        let mut ports = Vec::with_capacity(p.port_count() as usize);
        for r in p.ports() {
            if r.flags & !PORT_FLAG_UP != 0 || r.reserved != [0; 2] {
                return Err(RouterError::Malformed);
            }
            let name = checked_name(r.name_field).ok_or(RouterError::BadPortName)?;
            ports.push(RouterPort {
                name,
                addr: r.addr,
                prefix_len: r.prefix_len,
                up: r.flags & PORT_FLAG_UP != 0,
            });
        }
        let repr = RouterRepr {
            kind,
            health,
            node,
            boot_id: p.boot_id(),
            seq: p.seq(),
            interval_ms: p.interval_ms(),
            aliases,
            ports,
        };
        repr.check()?;
        Ok(repr)
    }
}

pub use crate::signed::{freshness, Freshness};

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"clua router key 0123456789abcdef";

    fn sample() -> RouterRepr {
        RouterRepr {
            kind: RouterKind::Announce,
            health: Health::Healthy,
            node: "r1".into(),
            boot_id: 5,
            seq: 9,
            interval_ms: 100,
            aliases: vec![
                RouterAlias {
                    addr: Ipv4Addr::new(198, 51, 100, 100),
                    rpri: 100,
                    joined: false,
                    master: false,
                },
                RouterAlias {
                    addr: Ipv4Addr::new(198, 51, 100, 101),
                    rpri: 10,
                    joined: true,
                    master: false,
                },
            ],
            ports: vec![
                RouterPort {
                    name: "eth0".into(),
                    addr: Ipv4Addr::new(198, 51, 100, 2),
                    prefix_len: 24,
                    up: true,
                },
                RouterPort {
                    name: "eth1".into(),
                    addr: Ipv4Addr::new(203, 0, 113, 2),
                    prefix_len: 24,
                    up: false,
                },
            ],
        }
    }

    fn padded(name: &[u8]) -> Vec<u8> {
        let mut v = name.to_vec();
        v.resize(NAME_LEN, 0);
        v
    }

    /// `sample()` written out field by field, as in docs/router-protocol.md. The tag was computed
    /// independently (Python's `hmac.new(KEY, signed, "sha256")`).
    fn sample_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"CLUR"); // magic
        b.extend_from_slice(&[1, 1, 0, 0]); // version, kind announce, healthy, reserved
        b.extend_from_slice(&padded(b"r1"));
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]); // boot_id
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]); // seq
        b.extend_from_slice(&[0, 0, 0, 100]); // interval_ms
        b.extend_from_slice(&[0, 2, 0, 2]); // alias_count, port_count
        b.extend_from_slice(&[198, 51, 100, 100, 0, 0, 0, 100, 0, 0, 0, 0]);
        b.extend_from_slice(&[198, 51, 100, 101, 0, 0, 0, 10, 1, 0, 0, 0]);
        b.extend_from_slice(&padded(b"eth0"));
        b.extend_from_slice(&[198, 51, 100, 2, 24, 1, 0, 0]);
        b.extend_from_slice(&padded(b"eth1"));
        b.extend_from_slice(&[203, 0, 113, 2, 24, 0, 0, 0]);
        b.extend_from_slice(&SAMPLE_TAG);
        b
    }

    const SAMPLE_TAG: [u8; 32] = [
        0x39, 0x33, 0xd1, 0xc6, 0xd5, 0x10, 0xff, 0xed, 0x4a, 0x26, 0xa8, 0xc7, 0x41, 0xd6, 0x85,
        0x98, 0x76, 0x52, 0x02, 0x0d, 0xc0, 0x07, 0x5f, 0xbc, 0xcb, 0x5d, 0x60, 0xbb, 0x79, 0xc2,
        0xc8, 0xf6,
    ];

    #[test]
    fn byte_literal_round_trip() {
        let bytes = sample_bytes();
        assert_eq!(bytes.len(), 296);
        let repr = RouterRepr::parse_verified(&bytes, KEY).unwrap();
        assert_eq!(repr, sample());
        assert_eq!(repr.emit_signed(KEY).unwrap(), bytes);
    }
    #[test]
    fn packet_accessors_on_the_literal() {
        let bytes = sample_bytes();
        let p = RouterPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.magic(), MAGIC);
        assert_eq!(
            (p.version(), p.kind(), p.health(), p.reserved()),
            (1, 1, 0, 0)
        );
        assert_eq!(p.node(), b"r1");
        assert_eq!((p.boot_id(), p.seq(), p.interval_ms()), (5, 9, 100));
        assert_eq!((p.alias_count(), p.port_count()), (2, 2));
        let a: Vec<_> = p.aliases().map(|r| (r.addr, r.rpri, r.flags)).collect();
        assert_eq!(
            a,
            [
                (Ipv4Addr::new(198, 51, 100, 100), 100, 0),
                (Ipv4Addr::new(198, 51, 100, 101), 10, 1)
            ]
        );
        let ports: Vec<_> = p
            .ports()
            .map(|r| (padded_name(r.name_field).to_vec(), r.prefix_len, r.flags))
            .collect();
        assert_eq!(
            ports,
            [(b"eth0".to_vec(), 24, 1), (b"eth1".to_vec(), 24, 0)]
        );
        assert_eq!(p.tag(), SAMPLE_TAG);
        assert!(p.verify_tag(KEY));
    }

    #[test]
    fn goodbye_and_degraded_round_trip() {
        let mut r = sample();
        r.kind = RouterKind::Goodbye;
        r.health = Health::Degraded;
        r.aliases.clear();
        r.ports.truncate(1);
        let b = r.emit_signed(KEY).unwrap();
        assert_eq!((b[5], b[6]), (2, 1));
        assert_eq!(RouterRepr::parse_verified(&b, KEY).unwrap(), r);
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample_bytes();
        for n in 0..bytes.len() {
            let e = RouterRepr::parse_verified(&bytes[..n], KEY).unwrap_err();
            assert!(
                matches!(e, RouterError::Truncated | RouterError::Malformed),
                "prefix {n}: {e:?}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            RouterRepr::parse_verified(&long, KEY),
            Err(RouterError::Malformed)
        );
    }

    #[test]
    fn every_byte_flip_is_refused() {
        let bytes = sample_bytes();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    RouterRepr::parse_verified(&b, KEY).is_err(),
                    "flip of bit {bit} of byte {i} accepted"
                );
            }
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            assert!(RouterRepr::parse_verified(&b, KEY).is_err(), "byte {i}");
        }
    }

    #[test]
    fn forged_or_weak_key_refused() {
        let bytes = sample_bytes();
        assert_eq!(
            RouterRepr::parse_verified(&bytes, b"another key 0123456789"),
            Err(RouterError::BadTag)
        );
        // Signed by a forger with its own key: still a bad tag under ours.
        let forged = sample().emit_signed(b"forger's key 0123456789").unwrap();
        assert_eq!(
            RouterRepr::parse_verified(&forged, KEY),
            Err(RouterError::BadTag)
        );
        assert_eq!(
            RouterRepr::parse_verified(&bytes, b"short"),
            Err(RouterError::WeakKey)
        );
        assert_eq!(sample().emit_signed(b"short"), Err(RouterError::WeakKey));
    }

    #[test]
    fn framing_errors() {
        let bytes = sample_bytes();
        let mut b = bytes.clone();
        b[0] = b'X';
        assert_eq!(
            RouterRepr::parse_verified(&b, KEY),
            Err(RouterError::BadMagic)
        );
        let mut b = bytes.clone();
        b[4] = 2;
        assert_eq!(
            RouterRepr::parse_verified(&b, KEY),
            Err(RouterError::UnsupportedVersion)
        );
        // A member advert (magic "CLUA") is not a router message.
        let mut b = bytes.clone();
        b[..4].copy_from_slice(b"CLUA");
        assert_eq!(
            RouterRepr::parse_verified(&b, KEY),
            Err(RouterError::BadMagic)
        );
        let big = vec![0u8; MAX_ROUTER_LEN + 1];
        assert_eq!(
            RouterRepr::parse_verified(&big, KEY),
            Err(RouterError::Oversized)
        );
        let mut b = bytes.clone();
        b[92..94].copy_from_slice(&(MAX_ALIASES as u16 + 1).to_be_bytes());
        assert_eq!(
            RouterRepr::parse_verified(&b, KEY),
            Err(RouterError::Oversized)
        );
        let mut b = bytes;
        b[94..96].copy_from_slice(&(MAX_PORTS as u16 + 1).to_be_bytes());
        assert_eq!(
            RouterRepr::parse_verified(&b, KEY),
            Err(RouterError::Oversized)
        );
    }

    /// Changes the signed part with `f`, then signs again, so the content checks are reached.
    fn resigned(f: impl FnOnce(&mut Vec<u8>)) -> Result<RouterRepr, RouterError> {
        let mut b = sample_bytes();
        f(&mut b);
        let mut p = RouterPacket::new_unchecked(&mut b[..]);
        p.sign(KEY);
        RouterRepr::parse_verified(&b, KEY)
    }

    type Mutation = Box<dyn FnOnce(&mut Vec<u8>)>;
    type ReprChange = fn(&mut RouterRepr);

    #[test]
    fn contents_are_checked_after_the_tag() {
        use RouterError::*;
        const A0: usize = HEADER_LEN;
        const P0: usize = HEADER_LEN + 2 * ALIAS_ENTRY_LEN;
        let cases: Vec<(RouterError, Mutation)> = vec![
            (BadKind, Box::new(|b| b[5] = 3)),
            (BadKind, Box::new(|b| b[5] = 0)),
            (BadHealth, Box::new(|b| b[6] = 2)),
            (Malformed, Box::new(|b| b[7] = 1)),
            (BadNode, Box::new(|b| b[8] = 0)),
            (BadNode, Box::new(|b| b[8] = b'-')),
            (BadNode, Box::new(|b| b[11] = b'x')), // after the NUL: not padding
            (BadSeq, Box::new(|b| b[80..88].fill(0))),
            (
                BadInterval,
                Box::new(|b| b[88..92].copy_from_slice(&99u32.to_be_bytes())),
            ),
            (
                BadInterval,
                Box::new(|b| b[88..92].copy_from_slice(&60_001u32.to_be_bytes())),
            ),
            (
                BadAlias,
                Box::new(|b| b[A0..A0 + 4].copy_from_slice(&[224, 0, 0, 1])),
            ),
            (BadAlias, Box::new(|b| b[A0..A0 + 4].fill(0))),
            (
                BadRpri,
                Box::new(|b| b[A0 + 4..A0 + 8].copy_from_slice(&100_001u32.to_be_bytes())),
            ),
            (Malformed, Box::new(|b| b[A0 + 8] = 4)),
            (Malformed, Box::new(|b| b[A0 + 11] = 1)),
            (Duplicate, Box::new(|b| b[A0 + 15] = 100)),
            (BadPortName, Box::new(|b| b[P0] = 0)),
            (BadPortName, Box::new(|b| b[P0] = b' ')),
            (
                BadPortAddr,
                Box::new(|b| b[P0 + 64..P0 + 68].copy_from_slice(&[255; 4])),
            ),
            (BadPrefix, Box::new(|b| b[P0 + 68] = 0)),
            (BadPrefix, Box::new(|b| b[P0 + 68] = 33)),
            (Malformed, Box::new(|b| b[P0 + 69] = 3)),
            (Malformed, Box::new(|b| b[P0 + 71] = 1)),
            (Duplicate, Box::new(|b| b[P0 + PORT_ENTRY_LEN + 3] = b'0')),
        ];
        for (i, (want, f)) in cases.into_iter().enumerate() {
            assert_eq!(resigned(f), Err(want), "case {i}");
        }
        // The unchanged literal re-signed still parses (the helper is not what refuses).
        assert_eq!(resigned(|_| {}), Ok(sample()));
    }

    #[test]
    fn emit_refuses_what_peers_refuse() {
        let cases: Vec<(RouterError, ReprChange)> = vec![
            (RouterError::BadNode, |r| r.node = "".into()),
            (RouterError::BadNode, |r| r.node = "x".repeat(65)),
            (RouterError::BadSeq, |r| r.seq = 0),
            (RouterError::BadInterval, |r| r.interval_ms = 50),
            (RouterError::BadRpri, |r| r.aliases[0].rpri = u32::MAX),
            (RouterError::BadAlias, |r| {
                r.aliases[0].addr = Ipv4Addr::BROADCAST
            }),
            (RouterError::Duplicate, |r| {
                r.aliases[1].addr = r.aliases[0].addr
            }),
            (RouterError::BadPortName, |r| r.ports[0].name = "a b".into()),
            (RouterError::BadPortName, |r| {
                r.ports[0].name = "p".repeat(65)
            }),
            (RouterError::BadPrefix, |r| r.ports[0].prefix_len = 40),
            (RouterError::BadPortAddr, |r| {
                r.ports[0].addr = Ipv4Addr::LOCALHOST
            }),
            (RouterError::Duplicate, |r| r.ports[1].name = "eth0".into()),
            (RouterError::Oversized, |r| {
                r.ports = (0..=MAX_PORTS)
                    .map(|i| RouterPort {
                        name: format!("p{i}"),
                        addr: Ipv4Addr::new(10, 0, 0, 1),
                        prefix_len: 8,
                        up: true,
                    })
                    .collect()
            }),
        ];
        for (i, (want, f)) in cases.into_iter().enumerate() {
            let mut r = sample();
            f(&mut r);
            assert_eq!(r.emit_signed(KEY), Err(want), "case {i}");
        }
    }

    #[test]
    fn limits_at_the_maximum_round_trip() {
        let mut r = sample();
        r.aliases = (0..MAX_ALIASES)
            .map(|i| RouterAlias {
                addr: Ipv4Addr::from(0x0a00_0001 + i as u32),
                rpri: i as u32,
                joined: i % 2 == 0,
                master: i % 3 == 0,
            })
            .collect();
        r.ports = (0..MAX_PORTS)
            .map(|i| RouterPort {
                name: format!("{i:0>64}"),
                addr: Ipv4Addr::new(10, 0, i as u8, 1),
                prefix_len: 24,
                up: i % 3 == 0,
            })
            .collect();
        let b = r.emit_signed(KEY).unwrap();
        assert_eq!(b.len(), 17_024);
        assert_eq!(RouterRepr::parse_verified(&b, KEY).unwrap(), r);
    }

    #[test]
    fn error_names_and_indexes() {
        let names: HashSet<_> = RouterError::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), RouterError::COUNT);
        for (i, e) in RouterError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn replay_rule() {
        assert_eq!(freshness(None, 1, 1), Freshness::Fresh);
        assert_eq!(freshness(Some((3, 10)), 3, 11), Freshness::Fresh);
        assert_eq!(freshness(Some((3, 10)), 3, 10), Freshness::Replayed);
        assert_eq!(freshness(Some((3, 10)), 3, 2), Freshness::Replayed);
        assert_eq!(freshness(Some((3, 10)), 4, 1), Freshness::Fresh);
        assert_eq!(freshness(Some((3, 10)), 2, 99), Freshness::StaleBoot);
    }

    use crate::test_rng::Rng;

    #[test]
    fn random_mutations_never_panic() {
        let mut rng = Rng(0xC1A5_0008);
        let base = sample_bytes();
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.next() as u8;
            }
            b.truncate(b.len() - (rng.next() % 3 == 1) as usize * (rng.next() as usize % 40));
            if let Ok(p) = RouterPacket::new_checked(&b[..]) {
                let _ = (p.node(), p.boot_id(), p.seq(), p.interval_ms(), p.tag());
                assert_eq!(p.aliases().count(), p.alias_count() as usize);
                assert_eq!(p.ports().count(), p.port_count() as usize);
                if let Ok(r) = RouterRepr::parse_contents(&p) {
                    let again = r.emit_signed(KEY).unwrap();
                    assert_eq!(&again[..again.len() - TAG_LEN], p.signed_part());
                }
            }
            assert!(RouterRepr::parse_verified(&b, KEY).is_err() || b == base);
        }
    }
}
