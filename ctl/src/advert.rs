//! Member adverts: the signed UDP datagrams a member sends the routers over the interconnect
//! every interval (its heartbeat), and the goodbye it sends when it leaves. The format is
//! documented byte by byte in `docs/member-protocol.md`; in short (all integers big-endian):
//!
//! ```text
//!  offset  size  field
//!       0     4  magic "CLUA"
//!       4     1  version = 1
//!       5     1  kind: 1 = advert, 2 = goodbye
//!       6     2  flags: bit 0 = an out_alias range follows the port entries; others 0
//!       8    64  node name, UTF-8 `[A-Za-z0-9._-]`, 1..=64 bytes, NUL-padded
//!      72     8  boot_id (ms since the Unix epoch when the member started)
//!      80     8  seq (1 for the first message of a boot, +1 per message)
//!      88     4  interval_ms (the member's advert interval, 100..=60000)
//!      92     2  alias_count (<= 1024)
//!      94     2  port_count (<= 4096)
//!      96  16*a  alias entries: addr u32, flags u8 (bit 0 = joined), 3 reserved bytes = 0,
//!                selw u32, selp u32
//!       .   4*p  port entries: proto u8 (6 = TCP, 17 = UDP), reserved u8 = 0, port u16
//!       .     4  only with flags bit 0: the member's out_alias source-port range, lo u16, hi u16
//!                (CA9, docs/out_alias.md)
//!       .    32  HMAC-SHA-256 over every byte before it
//! ```
//!
//! Like the pipeline's `wire` modules: [`AdvertPacket`] is a zero-copy view; once
//! [`AdvertPacket::new_checked`] accepted a buffer (length within [`MAX_ADVERT_LEN`], magic,
//! version, counts within the limits and matching the length exactly), no accessor panics.
//! [`AdvertRepr`] is the parsed, verified, validated advert; [`AdvertRepr::parse_verified`] checks
//! the framing first, then the tag (in constant time), then the contents, and
//! [`AdvertRepr::emit_signed`] refuses what a router would refuse, so a member never sends an
//! advert that is dropped for its contents.
//!
//! Adverts without the out_alias range (flags 0, what agents before it send) parse as before,
//! with [`AdvertRepr::out_alias`] `None`.
//!
//! The tag check is skipped when the crate is built with `--cfg fuzzing` (as cargo-fuzz does), so
//! that a fuzzer can reach the content checks.
// `cfg(fuzzing)` is set by cargo-fuzz, not by Cargo, so it is not in rustc's list of known cfgs.
#![allow(unexpected_cfgs)]

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::signed::{self, be16, be32, be64, FramingError};

use crate::model::{Proto, SELP_RANGE, SELW_RANGE};
use clua_pipeline::out_alias::PortRange;

/// The UDP port routers receive adverts on.
pub const ADVERT_PORT: u16 = 9471;
/// The largest datagram a router looks at; anything longer is [`AdvertError::Oversized`].
/// (The largest valid advert, with [`MAX_ALIASES`] and [`MAX_PORTS`], is 32,896 bytes.)
pub const MAX_ADVERT_LEN: usize = 65_000;
/// The most alias entries one advert may carry.
pub const MAX_ALIASES: usize = 1024;
/// The most port entries one advert may carry.
pub const MAX_PORTS: usize = 4096;
/// The magic bytes that start every advert.
pub const MAGIC: [u8; 4] = *b"CLUA";
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = field::ALIASES_START;
/// Length of one alias entry.
pub const ALIAS_ENTRY_LEN: usize = 16;
/// Length of one port entry.
pub const PORT_ENTRY_LEN: usize = 4;
/// Length of the HMAC-SHA-256 tag.
pub const TAG_LEN: usize = crate::signed::TAG_LEN;
/// The longest node name.
pub const NODE_LEN: usize = 64;
/// The shortest key `emit_signed` and `parse_verified` accept (the key file's minimum too).
pub const MIN_KEY_LEN: usize = 16;
/// Allowed advert intervals (ms).
pub const INTERVAL_RANGE: core::ops::RangeInclusive<u32> = 100..=60_000;
/// The default advert interval (ms).
pub const DEFAULT_INTERVAL_MS: u32 = 1000;
/// Bit 0 of the header flags: the out_alias range ([`OUT_ALIAS_LEN`] bytes) follows the port
/// entries.
pub const FLAG_OUT_ALIAS: u16 = 0x0001;
/// Length of the out_alias range extension.
pub const OUT_ALIAS_LEN: usize = 4;
/// Bit 0 of an alias entry's flags: the member has joined the alias (0: it has left it).
pub const ALIAS_FLAG_JOINED: u8 = 0x01;

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const FLAGS: Range<usize> = 6..8;
    pub const NODE: Range<usize> = 8..72;
    pub const BOOT_ID: Range<usize> = 72..80;
    pub const SEQ: Range<usize> = 80..88;
    pub const INTERVAL: Range<usize> = 88..92;
    pub const ALIAS_COUNT: Range<usize> = 92..94;
    pub const PORT_COUNT: Range<usize> = 94..96;
    pub const ALIASES_START: usize = 96;
    // Within an alias entry.
    pub const A_ADDR: Range<usize> = 0..4;
    pub const A_FLAGS: usize = 4;
    pub const A_RESERVED: Range<usize> = 5..8;
    pub const A_SELW: Range<usize> = 8..12;
    pub const A_SELP: Range<usize> = 12..16;
    // Within a port entry.
    pub const P_PROTO: usize = 0;
    pub const P_RESERVED: usize = 1;
    pub const P_PORT: Range<usize> = 2..4;
}

/// Why an advert was refused (by `parse_verified`, `new_checked` or `emit_signed`). Each has a
/// metric label ([`AdvertError::name`]) and an index ([`AdvertError::index`]) into a counter
/// array of [`AdvertError::COUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdvertError {
    /// Longer than [`MAX_ADVERT_LEN`], or more than [`MAX_ALIASES`] aliases or [`MAX_PORTS`]
    /// ports.
    Oversized,
    /// Shorter than the header and tag, or than its counts need.
    Truncated,
    /// Longer than its counts need, or non-zero flags or reserved bytes.
    Malformed,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// A version other than [`VERSION`].
    UnsupportedVersion,
    /// The HMAC tag does not match (forged, corrupted, or signed with another key).
    BadTag,
    /// A kind other than advert (1) or goodbye (2).
    BadKind,
    /// A node name that is empty, too long, not NUL-padded or not `[A-Za-z0-9._-]`.
    BadNode,
    /// An interval outside [`INTERVAL_RANGE`].
    BadInterval,
    /// Sequence number 0 (sequence numbers start at 1).
    BadSeq,
    /// An alias address that is not a unicast address.
    BadAlias,
    /// selw outside `SELW_RANGE` or selp outside `SELP_RANGE`.
    BadAttribute,
    /// A protocol other than TCP (6) or UDP (17).
    BadProto,
    /// Port 0, or an out_alias range that starts at 0 or ends before it starts.
    BadPort,
    /// The same alias, or the same (protocol, port), twice.
    Duplicate,
    /// A key shorter than [`MIN_KEY_LEN`] (a configuration error, not the datagram's).
    WeakKey,
}

impl AdvertError {
    /// Number of variants (the size of a counter array indexed by [`AdvertError::index`]).
    pub const COUNT: usize = 16;
    /// Every variant, in index order.
    pub const ALL: [AdvertError; AdvertError::COUNT] = [
        AdvertError::Oversized,
        AdvertError::Truncated,
        AdvertError::Malformed,
        AdvertError::BadMagic,
        AdvertError::UnsupportedVersion,
        AdvertError::BadTag,
        AdvertError::BadKind,
        AdvertError::BadNode,
        AdvertError::BadInterval,
        AdvertError::BadSeq,
        AdvertError::BadAlias,
        AdvertError::BadAttribute,
        AdvertError::BadProto,
        AdvertError::BadPort,
        AdvertError::Duplicate,
        AdvertError::WeakKey,
    ];

    /// Position in [`AdvertError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            AdvertError::Oversized => "oversized",
            AdvertError::Truncated => "truncated",
            AdvertError::Malformed => "malformed",
            AdvertError::BadMagic => "bad_magic",
            AdvertError::UnsupportedVersion => "unsupported_version",
            AdvertError::BadTag => "bad_tag",
            AdvertError::BadKind => "bad_kind",
            AdvertError::BadNode => "bad_node",
            AdvertError::BadInterval => "bad_interval",
            AdvertError::BadSeq => "bad_seq",
            AdvertError::BadAlias => "bad_alias",
            AdvertError::BadAttribute => "bad_attribute",
            AdvertError::BadProto => "bad_proto",
            AdvertError::BadPort => "bad_port",
            AdvertError::Duplicate => "duplicate",
            AdvertError::WeakKey => "weak_key",
        }
    }
}

impl fmt::Display for AdvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            AdvertError::Oversized => "advert too large (length or entry counts above the limits)",
            AdvertError::Truncated => "advert truncated",
            AdvertError::Malformed => "advert malformed (trailing bytes or non-zero reserved bits)",
            AdvertError::BadMagic => "not an advert (bad magic)",
            AdvertError::UnsupportedVersion => "unsupported advert version",
            AdvertError::BadTag => "advert authentication failed (bad HMAC tag)",
            AdvertError::BadKind => "unknown advert kind",
            AdvertError::BadNode => {
                "bad node name (1..=64 bytes of letters, digits, `.`, `_`, `-`)"
            }
            AdvertError::BadInterval => "advert interval outside 100..=60000 ms",
            AdvertError::BadSeq => "advert sequence number 0",
            AdvertError::BadAlias => "alias address is not a unicast address",
            AdvertError::BadAttribute => "selw or selp out of range",
            AdvertError::BadProto => "port protocol is neither TCP nor UDP",
            AdvertError::BadPort => "port 0 (or an out_alias range from 0 or backwards)",
            AdvertError::Duplicate => "alias or port listed twice",
            AdvertError::WeakKey => "advert key shorter than 16 bytes",
        };
        f.write_str(s)
    }
}

impl std::error::Error for AdvertError {}

/// The bytes an advert with `aliases` and `ports` entries takes, tag included (no out_alias
/// range).
pub const fn buffer_len(aliases: usize, ports: usize) -> usize {
    HEADER_LEN + aliases * ALIAS_ENTRY_LEN + ports * PORT_ENTRY_LEN + TAG_LEN
}

/// [`buffer_len`] with the out_alias range when `out_alias`.
pub const fn buffer_len_with(aliases: usize, ports: usize, out_alias: bool) -> usize {
    buffer_len(aliases, ports) + if out_alias { OUT_ALIAS_LEN } else { 0 }
}

/// This format's magic, version and lengths, checked by [`crate::signed::Framing::check`].
const FRAMING: signed::Framing = signed::Framing {
    magic: MAGIC,
    magic_at: field::MAGIC,
    version: VERSION,
    version_at: field::VERSION,
    header_len: HEADER_LEN,
    max_len: MAX_ADVERT_LEN,
};

impl From<FramingError> for AdvertError {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::Oversized => AdvertError::Oversized,
            FramingError::Truncated => AdvertError::Truncated,
            FramingError::BadMagic => AdvertError::BadMagic,
            FramingError::UnsupportedVersion => AdvertError::UnsupportedVersion,
            FramingError::Malformed => AdvertError::Malformed,
        }
    }
}

/// One alias entry as on the wire (unvalidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AliasRecord {
    /// The alias address.
    pub addr: Ipv4Addr,
    /// Flags ([`ALIAS_FLAG_JOINED`]; other bits must be 0).
    pub flags: u8,
    /// The reserved bytes (must be 0).
    pub reserved: [u8; 3],
    /// Selection weight.
    pub selw: u32,
    /// Selection priority.
    pub selp: u32,
}

/// One port entry as on the wire (unvalidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRecord {
    /// IP protocol number.
    pub proto: u8,
    /// The reserved byte (must be 0).
    pub reserved: u8,
    /// The port.
    pub port: u16,
}

/// A zero-copy view of an advert datagram.
///
/// Contract: after [`AdvertPacket::new_checked`] succeeded, no accessor panics. The entry
/// iterators never panic at all (on an unchecked short buffer they end early).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AdvertPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        AdvertPacket { buffer }
    }

    /// Wraps a buffer after [`AdvertPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, AdvertError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the framing, in this order: length at most [`MAX_ADVERT_LEN`] (`Oversized`), at
    /// least header and tag (`Truncated`), magic (`BadMagic`), version (`UnsupportedVersion`:
    /// the layout below depends on it), counts within the limits (`Oversized`), and the length
    /// the counts imply equal to the buffer's (`Truncated` if shorter, `Malformed` if longer).
    pub fn check_len(&self) -> Result<(), AdvertError> {
        FRAMING.check(self.buffer.as_ref(), || {
            let (a, p) = (self.alias_count() as usize, self.port_count() as usize);
            (a <= MAX_ALIASES && p <= MAX_PORTS)
                .then(|| buffer_len_with(a, p, self.has_out_alias()))
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
    /// The kind, raw (1 advert, 2 goodbye).
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    /// The header flags ([`FLAG_OUT_ALIAS`] or 0).
    pub fn flags(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::FLAGS])
    }
    /// Whether the flags announce the out_alias range.
    pub fn has_out_alias(&self) -> bool {
        self.flags() & FLAG_OUT_ALIAS != 0
    }
    /// The whole 64-byte node field, padding included.
    pub fn node_field(&self) -> &[u8] {
        &self.buffer.as_ref()[field::NODE]
    }
    /// The node name bytes: the node field up to its first NUL.
    pub fn node(&self) -> &[u8] {
        let f = self.node_field();
        let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
        &f[..end]
    }
    /// The member's boot id.
    pub fn boot_id(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::BOOT_ID])
    }
    /// The sequence number.
    pub fn seq(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::SEQ])
    }
    /// The member's advert interval in ms.
    pub fn interval_ms(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::INTERVAL])
    }
    /// The number of alias entries.
    pub fn alias_count(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ALIAS_COUNT])
    }
    /// The number of port entries.
    pub fn port_count(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PORT_COUNT])
    }

    fn ports_start(&self) -> usize {
        HEADER_LEN + self.alias_count() as usize * ALIAS_ENTRY_LEN
    }
    fn ext_start(&self) -> usize {
        self.ports_start() + self.port_count() as usize * PORT_ENTRY_LEN
    }
    fn tag_start(&self) -> usize {
        self.ext_start()
            + if self.has_out_alias() {
                OUT_ALIAS_LEN
            } else {
                0
            }
    }

    /// The out_alias range as on the wire, `(lo, hi)` unvalidated; `None` without
    /// [`FLAG_OUT_ALIAS`].
    pub fn out_alias(&self) -> Option<(u16, u16)> {
        if !self.has_out_alias() {
            return None;
        }
        let s = self.ext_start();
        let e = &self.buffer.as_ref()[s..s + OUT_ALIAS_LEN];
        Some((be16(&e[0..2]), be16(&e[2..4])))
    }

    /// The alias entries. Never panics.
    pub fn aliases(&self) -> impl Iterator<Item = AliasRecord> + '_ {
        let b = self.buffer.as_ref();
        let n = b.get(field::ALIAS_COUNT).map_or(0, |c| be16(c) as usize);
        let region = b
            .get(HEADER_LEN..)
            .unwrap_or(&[])
            .chunks_exact(ALIAS_ENTRY_LEN)
            .take(n);
        region.map(|e| AliasRecord {
            addr: Ipv4Addr::from(be32(&e[field::A_ADDR])),
            flags: e[field::A_FLAGS],
            reserved: [e[5], e[6], e[7]],
            selw: be32(&e[field::A_SELW]),
            selp: be32(&e[field::A_SELP]),
        })
    }

    /// The port entries. Never panics.
    pub fn ports(&self) -> impl Iterator<Item = PortRecord> + '_ {
        let b = self.buffer.as_ref();
        let (start, n) = match (b.get(field::ALIAS_COUNT), b.get(field::PORT_COUNT)) {
            (Some(a), Some(p)) => (
                HEADER_LEN + be16(a) as usize * ALIAS_ENTRY_LEN,
                be16(p) as usize,
            ),
            _ => (usize::MAX, 0),
        };
        b.get(start..)
            .unwrap_or(&[])
            .chunks_exact(PORT_ENTRY_LEN)
            .take(n)
            .map(|e| PortRecord {
                proto: e[field::P_PROTO],
                reserved: e[field::P_RESERVED],
                port: be16(&e[field::P_PORT]),
            })
    }

    /// Everything the tag covers (the datagram without its tag).
    pub fn signed_part(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.tag_start()]
    }

    /// The HMAC tag.
    pub fn tag(&self) -> &[u8] {
        let s = self.tag_start();
        &self.buffer.as_ref()[s..s + TAG_LEN]
    }

    /// Whether the tag is the HMAC-SHA-256 of [`AdvertPacket::signed_part`] under `key`
    /// (compared in constant time).
    pub fn verify_tag(&self, key: &[u8]) -> bool {
        signed::verify(self.signed_part(), self.tag(), key)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AdvertPacket<T> {
    /// Sets magic and version.
    pub fn set_magic_version(&mut self) {
        let b = self.buffer.as_mut();
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::VERSION] = VERSION;
    }
    /// Sets the kind.
    pub fn set_kind(&mut self, kind: u8) {
        self.buffer.as_mut()[field::KIND] = kind;
    }
    /// Sets the header flags.
    pub fn set_flags(&mut self, flags: u16) {
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&flags.to_be_bytes());
    }
    /// Sets the node field: `name` then NUL padding. `name` must be at most [`NODE_LEN`] bytes.
    pub fn set_node(&mut self, name: &[u8]) {
        let f = &mut self.buffer.as_mut()[field::NODE];
        f.fill(0);
        f[..name.len()].copy_from_slice(name);
    }
    /// Sets the boot id.
    pub fn set_boot_id(&mut self, v: u64) {
        self.buffer.as_mut()[field::BOOT_ID].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the sequence number.
    pub fn set_seq(&mut self, v: u64) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the interval.
    pub fn set_interval_ms(&mut self, v: u32) {
        self.buffer.as_mut()[field::INTERVAL].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the entry counts (changes where the port entries and the tag are).
    pub fn set_counts(&mut self, aliases: u16, ports: u16) {
        let b = self.buffer.as_mut();
        b[field::ALIAS_COUNT].copy_from_slice(&aliases.to_be_bytes());
        b[field::PORT_COUNT].copy_from_slice(&ports.to_be_bytes());
    }
    /// Writes alias entry `i` (`i` < alias count).
    pub fn set_alias(&mut self, i: usize, r: &AliasRecord) {
        let s = HEADER_LEN + i * ALIAS_ENTRY_LEN;
        let e = &mut self.buffer.as_mut()[s..s + ALIAS_ENTRY_LEN];
        e[field::A_ADDR].copy_from_slice(&r.addr.octets());
        e[field::A_FLAGS] = r.flags;
        e[field::A_RESERVED].copy_from_slice(&r.reserved);
        e[field::A_SELW].copy_from_slice(&r.selw.to_be_bytes());
        e[field::A_SELP].copy_from_slice(&r.selp.to_be_bytes());
    }
    /// Writes port entry `i` (`i` < port count; set the counts first).
    pub fn set_port(&mut self, i: usize, r: &PortRecord) {
        let s = self.ports_start() + i * PORT_ENTRY_LEN;
        let e = &mut self.buffer.as_mut()[s..s + PORT_ENTRY_LEN];
        e[field::P_PROTO] = r.proto;
        e[field::P_RESERVED] = r.reserved;
        e[field::P_PORT].copy_from_slice(&r.port.to_be_bytes());
    }
    /// Writes the out_alias range (set [`FLAG_OUT_ALIAS`] and the counts first).
    pub fn set_out_alias(&mut self, lo: u16, hi: u16) {
        let s = self.ext_start();
        let e = &mut self.buffer.as_mut()[s..s + OUT_ALIAS_LEN];
        e[0..2].copy_from_slice(&lo.to_be_bytes());
        e[2..4].copy_from_slice(&hi.to_be_bytes());
    }
    /// Computes the tag over [`AdvertPacket::signed_part`] under `key` and writes it.
    pub fn sign(&mut self, key: &[u8]) {
        let tag = signed::tag(self.signed_part(), key);
        let s = self.tag_start();
        self.buffer.as_mut()[s..s + TAG_LEN].copy_from_slice(&tag);
    }
}

/// What a message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdvertKind {
    /// The periodic advert (also sent at once when the member's aliases change).
    Advert,
    /// The member is leaving everything (clean shutdown): routers mark it down at once.
    Goodbye,
}

impl AdvertKind {
    /// The wire value.
    pub fn number(self) -> u8 {
        match self {
            AdvertKind::Advert => 1,
            AdvertKind::Goodbye => 2,
        }
    }
    /// From the wire value.
    pub fn from_number(n: u8) -> Option<AdvertKind> {
        match n {
            1 => Some(AdvertKind::Advert),
            2 => Some(AdvertKind::Goodbye),
            _ => None,
        }
    }
}

/// One alias as a member reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AliasEntry {
    /// The alias address.
    pub addr: Ipv4Addr,
    /// Whether the member has joined it (false: it says explicitly that it has left).
    pub joined: bool,
    /// Selection weight (`SELW_RANGE`).
    pub selw: u32,
    /// Selection priority (`SELP_RANGE`).
    pub selp: u32,
}

/// A parsed, authenticated and validated advert or goodbye.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertRepr {
    /// Advert or goodbye.
    pub kind: AdvertKind,
    /// The member's node name (the router's `[[member]] name`).
    pub node: String,
    /// When the member started, ms since the Unix epoch: a restarted member has a larger one.
    pub boot_id: u64,
    /// 1 for the first message of a boot, +1 for each further message.
    pub seq: u64,
    /// The member's advert interval (ms), from which routers compute its dead interval.
    pub interval_ms: u32,
    /// The aliases the member knows, joined or not.
    pub aliases: Vec<AliasEntry>,
    /// The service ports it listens on.
    pub ports: Vec<(Proto, u16)>,
    /// Its out_alias source-port range (CA9, docs/out_alias.md); `None` for a member without
    /// one, and in adverts of agents that predate it.
    pub out_alias: Option<PortRange>,
}

/// Whether `s` is a valid node name: a member name by [`crate::name::validate_name`] (1..=64
/// bytes of `[A-Za-z0-9._-]`, starting with a letter or digit).
pub fn is_node_name(s: &[u8]) -> bool {
    crate::name::validate_name(s).is_ok()
}

fn proto_from_number(n: u8) -> Option<Proto> {
    match n {
        6 => Some(Proto::Tcp),
        17 => Some(Proto::Udp),
        _ => None,
    }
}

fn is_unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

impl AdvertRepr {
    /// The datagram length this advert encodes to.
    pub fn buffer_len(&self) -> usize {
        buffer_len_with(
            self.aliases.len(),
            self.ports.len(),
            self.out_alias.is_some(),
        )
    }

    /// Checks what `parse_verified` checks after the tag: interval, sequence, node name,
    /// alias addresses and attributes, protocols, ports, duplicates, and the entry limits.
    pub fn check(&self) -> Result<(), AdvertError> {
        if self.aliases.len() > MAX_ALIASES || self.ports.len() > MAX_PORTS {
            return Err(AdvertError::Oversized);
        }
        if !is_node_name(self.node.as_bytes()) {
            return Err(AdvertError::BadNode);
        }
        if !INTERVAL_RANGE.contains(&self.interval_ms) {
            return Err(AdvertError::BadInterval);
        }
        if self.seq == 0 {
            return Err(AdvertError::BadSeq);
        }
        let mut seen = HashSet::with_capacity(self.aliases.len());
        for a in &self.aliases {
            if !is_unicast(a.addr) {
                return Err(AdvertError::BadAlias);
            }
            if !SELW_RANGE.contains(&a.selw) || !SELP_RANGE.contains(&a.selp) {
                return Err(AdvertError::BadAttribute);
            }
            if !seen.insert(a.addr) {
                return Err(AdvertError::Duplicate);
            }
        }
        let mut seen = HashSet::with_capacity(self.ports.len());
        for &(proto, port) in &self.ports {
            if port == 0 {
                return Err(AdvertError::BadPort);
            }
            if !seen.insert((proto, port)) {
                return Err(AdvertError::Duplicate);
            }
        }
        // The fields are public: a range built without `PortRange::new` is checked here.
        if let Some(r) = self.out_alias {
            if PortRange::new(r.lo, r.hi).is_err() {
                return Err(AdvertError::BadPort);
            }
        }
        Ok(())
    }

    /// Encodes and signs the advert with `key`.
    ///
    /// # Errors
    /// [`AdvertError::WeakKey`] for a key shorter than [`MIN_KEY_LEN`]; otherwise whatever
    /// [`AdvertRepr::check`] finds (routers would drop such an advert).
    pub fn emit_signed(&self, key: &[u8]) -> Result<Vec<u8>, AdvertError> {
        if key.len() < MIN_KEY_LEN {
            return Err(AdvertError::WeakKey);
        }
        self.check()?;
        let mut p = AdvertPacket::new_unchecked(vec![0u8; self.buffer_len()]);
        p.set_magic_version();
        p.set_kind(self.kind.number());
        p.set_flags(if self.out_alias.is_some() {
            FLAG_OUT_ALIAS
        } else {
            0
        });
        p.set_node(self.node.as_bytes());
        p.set_boot_id(self.boot_id);
        p.set_seq(self.seq);
        p.set_interval_ms(self.interval_ms);
        // `check` bounded both counts well below u16::MAX.
        p.set_counts(self.aliases.len() as u16, self.ports.len() as u16);
        for (i, a) in self.aliases.iter().enumerate() {
            p.set_alias(
                i,
                &AliasRecord {
                    addr: a.addr,
                    flags: if a.joined { ALIAS_FLAG_JOINED } else { 0 },
                    reserved: [0; 3],
                    selw: a.selw,
                    selp: a.selp,
                },
            );
        }
        for (i, &(proto, port)) in self.ports.iter().enumerate() {
            p.set_port(
                i,
                &PortRecord {
                    proto: proto.number(),
                    reserved: 0,
                    port,
                },
            );
        }
        if let Some(r) = self.out_alias {
            p.set_out_alias(r.lo, r.hi);
        }
        p.sign(key);
        Ok(p.into_inner())
    }

    /// Parses a datagram: the framing first ([`AdvertPacket::check_len`]: length, magic,
    /// version, counts), then the tag under `key` in constant time (`BadTag`), then the
    /// contents (kind, flags and reserved bytes, node name, interval, sequence, alias addresses,
    /// selw/selp ranges, protocols, ports, duplicates).
    ///
    /// # Errors
    /// The first problem found, as an [`AdvertError`]; [`AdvertError::WeakKey`] for a key
    /// shorter than [`MIN_KEY_LEN`] before looking at the datagram.
    pub fn parse_verified(bytes: &[u8], key: &[u8]) -> Result<AdvertRepr, AdvertError> {
        if key.len() < MIN_KEY_LEN {
            return Err(AdvertError::WeakKey);
        }
        let p = AdvertPacket::new_checked(bytes)?;
        if !cfg!(fuzzing) && !p.verify_tag(key) {
            return Err(AdvertError::BadTag);
        }
        Self::parse_contents(&p)
    }

    /// The content checks of [`AdvertRepr::parse_verified`] on a checked packet, without the
    /// tag. Only for tests and tools that already verified the tag.
    pub fn parse_contents<T: AsRef<[u8]>>(p: &AdvertPacket<T>) -> Result<AdvertRepr, AdvertError> {
        let kind = AdvertKind::from_number(p.kind()).ok_or(AdvertError::BadKind)?;
        if p.flags() & !FLAG_OUT_ALIAS != 0 {
            return Err(AdvertError::Malformed);
        }
        let node = p.node();
        if !is_node_name(node) || p.node_field()[node.len()..].iter().any(|&b| b != 0) {
            return Err(AdvertError::BadNode);
        }
        // is_node_name admits ASCII only, so this cannot fail.
        let node = String::from_utf8(node.to_vec()).map_err(|_| AdvertError::BadNode)?;
        let mut aliases = Vec::with_capacity(p.alias_count() as usize);
        for r in p.aliases() {
            if r.flags & !ALIAS_FLAG_JOINED != 0 || r.reserved != [0; 3] {
                return Err(AdvertError::Malformed);
            }
            aliases.push(AliasEntry {
                addr: r.addr,
                joined: r.flags & ALIAS_FLAG_JOINED != 0,
                selw: r.selw,
                selp: r.selp,
            });
        }
        let mut ports = Vec::with_capacity(p.port_count() as usize);
        for r in p.ports() {
            if r.reserved != 0 {
                return Err(AdvertError::Malformed);
            }
            let proto = proto_from_number(r.proto).ok_or(AdvertError::BadProto)?;
            ports.push((proto, r.port));
        }
        let out_alias = match p.out_alias() {
            Some((lo, hi)) => Some(PortRange::new(lo, hi).map_err(|_| AdvertError::BadPort)?),
            None => None,
        };
        let repr = AdvertRepr {
            kind,
            node,
            boot_id: p.boot_id(),
            seq: p.seq(),
            interval_ms: p.interval_ms(),
            aliases,
            ports,
            out_alias,
        };
        repr.check()?;
        Ok(repr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"clua test key 0123456789abcdef";

    fn sample() -> AdvertRepr {
        AdvertRepr {
            kind: AdvertKind::Advert,
            node: "m1".into(),
            boot_id: 0x0000_018F_0000_0001,
            seq: 7,
            interval_ms: 1000,
            aliases: vec![
                AliasEntry {
                    addr: Ipv4Addr::new(198, 51, 100, 100),
                    joined: true,
                    selw: 3,
                    selp: 10,
                },
                AliasEntry {
                    addr: Ipv4Addr::new(203, 0, 113, 5),
                    joined: false,
                    selw: 1,
                    selp: 0,
                },
            ],
            ports: vec![(Proto::Tcp, 80), (Proto::Udp, 53)],
            out_alias: None,
        }
    }

    /// The sample's bytes before the tag.
    #[rustfmt::skip]
    const SAMPLE_BODY: [u8; 96 + 32 + 8] = [
        b'C', b'L', b'U', b'A', 1, 1, 0, 0,
        b'm', b'1', 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0,
        0x00, 0x00, 0x01, 0x8f, 0x00, 0x00, 0x00, 0x01,   // boot_id
        0, 0, 0, 0, 0, 0, 0, 7,                           // seq
        0x00, 0x00, 0x03, 0xe8,                           // interval 1000
        0, 2, 0, 2,                                       // 2 aliases, 2 ports
        198, 51, 100, 100, 1, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 10,
        203, 0, 113, 5,    0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
        6, 0, 0, 80,
        17, 0, 0, 53,
    ];

    /// HMAC-SHA-256(KEY, SAMPLE_BODY), computed with Python's `hmac` module.
    const SAMPLE_TAG_HEX: &str = "4f5715a7de9384feaec96aa4399588bc25d3a4301200e2feb0f75c357a70bc30";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn sample_bytes() -> Vec<u8> {
        sample().emit_signed(KEY).unwrap()
    }

    #[test]
    fn emit_matches_byte_literal() {
        let b = sample_bytes();
        assert_eq!(b.len(), 96 + 32 + 8 + 32);
        assert_eq!(b.len(), sample().buffer_len());
        assert_eq!(&b[..SAMPLE_BODY.len()], &SAMPLE_BODY[..]);
        assert_eq!(hex(&b[SAMPLE_BODY.len()..]), SAMPLE_TAG_HEX);
    }

    #[test]
    fn parse_byte_literal() {
        let mut b = SAMPLE_BODY.to_vec();
        for i in 0..32 {
            b.push(u8::from_str_radix(&SAMPLE_TAG_HEX[2 * i..2 * i + 2], 16).unwrap());
        }
        assert_eq!(AdvertRepr::parse_verified(&b, KEY), Ok(sample()));
        let p = AdvertPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.magic(), *b"CLUA");
        assert_eq!(p.version(), 1);
        assert_eq!(p.kind(), 1);
        assert_eq!(p.node(), b"m1");
        assert_eq!(p.boot_id(), 0x0000_018F_0000_0001);
        assert_eq!(p.seq(), 7);
        assert_eq!(p.interval_ms(), 1000);
        assert_eq!((p.alias_count(), p.port_count()), (2, 2));
        assert_eq!(p.aliases().count(), 2);
        assert_eq!(
            p.ports().collect::<Vec<_>>(),
            vec![
                PortRecord {
                    proto: 6,
                    reserved: 0,
                    port: 80
                },
                PortRecord {
                    proto: 17,
                    reserved: 0,
                    port: 53
                }
            ]
        );
        assert_eq!(p.signed_part(), &SAMPLE_BODY[..]);
        assert!(p.verify_tag(KEY));
        assert!(!p.verify_tag(b"another key of sixteen+ bytes"));
    }

    #[test]
    fn round_trips() {
        let mut reprs = vec![sample()];
        let mut g = sample();
        g.kind = AdvertKind::Goodbye;
        g.aliases.clear();
        g.ports.clear();
        g.node = "a".repeat(NODE_LEN);
        g.seq = u64::MAX;
        g.boot_id = u64::MAX;
        g.interval_ms = 60_000;
        reprs.push(g);
        let mut big = sample();
        big.aliases = (0..MAX_ALIASES as u32)
            .map(|i| AliasEntry {
                addr: Ipv4Addr::from(0x0a00_0001 + i),
                joined: i % 2 == 0,
                selw: 100,
                selp: 100_000,
            })
            .collect();
        big.ports = (1..=MAX_PORTS as u16)
            .map(|p| (if p % 2 == 0 { Proto::Tcp } else { Proto::Udp }, p))
            .collect();
        big.out_alias = Some(PortRange::new(1, 65535).unwrap());
        reprs.push(big);
        for r in reprs {
            let b = r.emit_signed(KEY).unwrap();
            assert_eq!(b.len(), r.buffer_len());
            assert!(b.len() <= MAX_ADVERT_LEN);
            assert_eq!(AdvertRepr::parse_verified(&b, KEY), Ok(r));
        }
    }

    #[test]
    fn every_prefix_is_truncated() {
        let b = sample_bytes();
        for n in 0..b.len() {
            assert_eq!(
                AdvertRepr::parse_verified(&b[..n], KEY),
                Err(AdvertError::Truncated),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut b = sample_bytes();
        b.push(0);
        assert_eq!(
            AdvertRepr::parse_verified(&b, KEY),
            Err(AdvertError::Malformed)
        );
    }

    #[test]
    fn any_bit_flip_is_refused() {
        let b = sample_bytes();
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                let e = AdvertRepr::parse_verified(&c, KEY).unwrap_err();
                // Framing fields are checked before the tag; everything else fails the tag.
                let expected = match i {
                    0..=3 => AdvertError::BadMagic,
                    4 => AdvertError::UnsupportedVersion,
                    // The out_alias flag changes the length the header implies.
                    7 if bit == 0 => AdvertError::Truncated,
                    92..=95 => e, // counts: Oversized, Truncated or Malformed
                    _ => AdvertError::BadTag,
                };
                assert_eq!(e, expected, "byte {i} bit {bit}");
                if (92..=95).contains(&i) {
                    assert!(matches!(
                        e,
                        AdvertError::Oversized | AdvertError::Truncated | AdvertError::Malformed
                    ));
                }
            }
        }
    }

    #[test]
    fn wrong_key_is_bad_tag() {
        let b = sample_bytes();
        assert_eq!(
            AdvertRepr::parse_verified(&b, b"clua test key 0123456789abcdeF"),
            Err(AdvertError::BadTag)
        );
    }

    #[test]
    fn weak_keys_are_refused() {
        assert_eq!(sample().emit_signed(b""), Err(AdvertError::WeakKey));
        assert_eq!(sample().emit_signed(&[7; 15]), Err(AdvertError::WeakKey));
        assert!(sample().emit_signed(&[7; 16]).is_ok());
        assert_eq!(
            AdvertRepr::parse_verified(&sample_bytes(), b"short"),
            Err(AdvertError::WeakKey)
        );
    }

    #[test]
    fn oversized() {
        let mut b = sample_bytes();
        b.resize(MAX_ADVERT_LEN + 1, 0);
        assert_eq!(
            AdvertRepr::parse_verified(&b, KEY),
            Err(AdvertError::Oversized)
        );
        // Counts above the limits, even in a datagram long enough for them.
        let mut r = sample();
        r.aliases.clear();
        r.ports = (1..=MAX_PORTS as u16).map(|p| (Proto::Tcp, p)).collect();
        let mut b = r.emit_signed(KEY).unwrap();
        b[94..96].copy_from_slice(&(MAX_PORTS as u16 + 1).to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        assert_eq!(
            AdvertRepr::parse_verified(&b, KEY),
            Err(AdvertError::Oversized)
        );
        let mut b = sample_bytes();
        b[92..94].copy_from_slice(&(MAX_ALIASES as u16 + 1).to_be_bytes());
        assert_eq!(
            AdvertRepr::parse_verified(&b, KEY),
            Err(AdvertError::Oversized)
        );
        // And the sender refuses them.
        r.ports.push((Proto::Udp, 1));
        assert_eq!(r.emit_signed(KEY), Err(AdvertError::Oversized));
        let mut r = sample();
        r.aliases = (0..=MAX_ALIASES as u32)
            .map(|i| AliasEntry {
                addr: Ipv4Addr::from(0x0a00_0001 + i),
                joined: true,
                selw: 1,
                selp: 1,
            })
            .collect();
        assert_eq!(r.emit_signed(KEY), Err(AdvertError::Oversized));
    }

    /// Signs `b` (whose counts are right) again after a content change.
    fn resign(mut b: Vec<u8>) -> Vec<u8> {
        let mut p = AdvertPacket::new_unchecked(&mut b[..]);
        p.sign(KEY);
        b
    }

    #[test]
    fn contents_are_checked_after_the_tag() {
        let base = sample_bytes();
        let cases: Vec<(usize, u8, AdvertError)> = vec![
            (5, 0, AdvertError::BadKind),
            (5, 3, AdvertError::BadKind),
            (7, 2, AdvertError::Malformed),   // unknown header flag
            (8, 0, AdvertError::BadNode),     // empty name
            (8, b' ', AdvertError::BadNode),  // bad character
            (8, 0xc3, AdvertError::BadNode),  // not ASCII
            (11, b'x', AdvertError::BadNode), // garbage after the NUL
            (87, 0, AdvertError::BadSeq),     // seq 0 (was 7)
        ];
        for (i, v, e) in cases {
            let mut b = base.clone();
            b[i] = v;
            assert_eq!(
                AdvertRepr::parse_verified(&resign(b), KEY),
                Err(e),
                "byte {i} = {v}"
            );
        }
        let set = |edits: &[(usize, &[u8])]| {
            let mut b = base.clone();
            for (at, bytes) in edits {
                b[*at..*at + bytes.len()].copy_from_slice(bytes);
            }
            AdvertRepr::parse_verified(&resign(b), KEY)
        };
        assert_eq!(
            set(&[(88, &99u32.to_be_bytes())]),
            Err(AdvertError::BadInterval)
        );
        assert_eq!(
            set(&[(88, &60_001u32.to_be_bytes())]),
            Err(AdvertError::BadInterval)
        );
        assert_eq!(set(&[(96, &[0, 0, 0, 0])]), Err(AdvertError::BadAlias));
        assert_eq!(set(&[(96, &[224, 0, 0, 1])]), Err(AdvertError::BadAlias));
        assert_eq!(set(&[(96, &[203, 0, 113, 5])]), Err(AdvertError::Duplicate));
        assert_eq!(set(&[(100, &[3])]), Err(AdvertError::Malformed)); // unknown alias flag
        assert_eq!(set(&[(101, &[1])]), Err(AdvertError::Malformed)); // reserved
        assert_eq!(
            set(&[(104, &0u32.to_be_bytes())]),
            Err(AdvertError::BadAttribute)
        ); // selw 0
        assert_eq!(
            set(&[(104, &101u32.to_be_bytes())]),
            Err(AdvertError::BadAttribute)
        );
        assert_eq!(
            set(&[(108, &100_001u32.to_be_bytes())]),
            Err(AdvertError::BadAttribute)
        );
        assert_eq!(set(&[(128, &[1])]), Err(AdvertError::BadProto));
        assert_eq!(set(&[(129, &[1])]), Err(AdvertError::Malformed));
        assert_eq!(set(&[(130, &[0, 0])]), Err(AdvertError::BadPort));
        assert_eq!(set(&[(132, &[6, 0, 0, 80])]), Err(AdvertError::Duplicate));
        // Same port number over TCP and UDP is two services.
        assert!(set(&[(132, &[17, 0, 0, 80])]).is_ok());
    }

    #[test]
    fn emit_refuses_what_routers_refuse() {
        let bad = |f: &dyn Fn(&mut AdvertRepr)| {
            let mut r = sample();
            f(&mut r);
            r.emit_signed(KEY).unwrap_err()
        };
        assert_eq!(bad(&|r| r.node = String::new()), AdvertError::BadNode);
        assert_eq!(bad(&|r| r.node = "a".repeat(65)), AdvertError::BadNode);
        assert_eq!(bad(&|r| r.node = "m 1".into()), AdvertError::BadNode);
        assert_eq!(bad(&|r| r.node = "mé".into()), AdvertError::BadNode);
        assert_eq!(bad(&|r| r.seq = 0), AdvertError::BadSeq);
        assert_eq!(bad(&|r| r.interval_ms = 50), AdvertError::BadInterval);
        assert_eq!(bad(&|r| r.aliases[0].selw = 0), AdvertError::BadAttribute);
        assert_eq!(
            bad(&|r| r.aliases[0].selp = 200_000),
            AdvertError::BadAttribute
        );
        assert_eq!(
            bad(&|r| r.aliases[1].addr = r.aliases[0].addr),
            AdvertError::Duplicate
        );
        assert_eq!(
            bad(&|r| r.ports.push((Proto::Tcp, 80))),
            AdvertError::Duplicate
        );
        assert_eq!(
            bad(&|r| r.ports.push((Proto::Tcp, 0))),
            AdvertError::BadPort
        );
    }

    /// The sample with the out_alias range 61000-61999 (CA9): flags bit 0, four bytes after
    /// the port entries.
    #[test]
    fn out_alias_range_extension() {
        let mut r = sample();
        r.out_alias = Some(PortRange::new(61000, 61999).unwrap());
        let b = r.emit_signed(KEY).unwrap();
        assert_eq!(b.len(), SAMPLE_BODY.len() + 4 + 32);
        assert_eq!(&b[..6], &SAMPLE_BODY[..6]);
        assert_eq!(&b[6..8], &[0, 1]);
        assert_eq!(&b[8..SAMPLE_BODY.len()], &SAMPLE_BODY[8..]);
        assert_eq!(
            &b[SAMPLE_BODY.len()..SAMPLE_BODY.len() + 4],
            &[0xee, 0x48, 0xf2, 0x2f]
        );
        assert_eq!(AdvertRepr::parse_verified(&b, KEY), Ok(r.clone()));
        let p = AdvertPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.out_alias(), Some((61000, 61999)));
        assert!(p.verify_tag(KEY));
        // Without the flag the four bytes are trailing garbage; without the bytes, short.
        let mut c = b.clone();
        c[7] = 0;
        assert_eq!(
            AdvertRepr::parse_verified(&c, KEY),
            Err(AdvertError::Malformed)
        );
        let mut c = sample_bytes();
        c[7] = 1;
        assert_eq!(
            AdvertRepr::parse_verified(&c, KEY),
            Err(AdvertError::Truncated)
        );
        // An old advert (flags 0) still parses, with no range.
        assert_eq!(
            AdvertRepr::parse_verified(&sample_bytes(), KEY).map(|r| r.out_alias),
            Ok(None)
        );
        // Bad ranges, signed: refused after the tag.
        for (lo, hi) in [(0u16, 10u16), (62000, 61999)] {
            let mut c = b.clone();
            let at = SAMPLE_BODY.len();
            c[at..at + 2].copy_from_slice(&lo.to_be_bytes());
            c[at + 2..at + 4].copy_from_slice(&hi.to_be_bytes());
            assert_eq!(
                AdvertRepr::parse_verified(&resign(c), KEY),
                Err(AdvertError::BadPort),
                "{lo}-{hi}"
            );
        }
        r.out_alias = Some(PortRange { lo: 5, hi: 4 });
        assert_eq!(r.emit_signed(KEY), Err(AdvertError::BadPort));
    }

    #[test]
    fn error_names_and_indexes() {
        let mut names = HashSet::new();
        for (i, e) in AdvertError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(names.insert(e.name()));
            assert!(!e.to_string().is_empty());
        }
    }

    /// A small xorshift generator: no dependency, reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn poke_all<T: AsRef<[u8]>>(p: &AdvertPacket<T>) {
        let _ = (
            p.magic(),
            p.version(),
            p.kind(),
            p.flags(),
            p.node(),
            p.node_field(),
        );
        let _ = (
            p.boot_id(),
            p.seq(),
            p.interval_ms(),
            p.alias_count(),
            p.port_count(),
        );
        let _ = (p.aliases().count(), p.ports().count(), p.out_alias());
        let _ = (p.signed_part().len(), p.tag().len(), p.verify_tag(KEY));
        let _ = AdvertRepr::parse_contents(p);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let valid = sample_bytes();
        for round in 0..20_000 {
            let mut b: Vec<u8> = if round % 2 == 0 {
                // Pure noise, sometimes with a valid magic and version.
                let n = (rng.next() % 400) as usize;
                let mut b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                if round % 4 == 0 && b.len() >= 5 {
                    b[..5].copy_from_slice(b"CLUA\x01");
                }
                b
            } else {
                // A valid advert with a few random bytes changed and a random length.
                let mut b = valid.clone();
                for _ in 0..(rng.next() % 4 + 1) {
                    let i = (rng.next() as usize) % b.len();
                    b[i] = rng.next() as u8;
                }
                let n = (rng.next() as usize) % (b.len() + 40);
                b.resize(n, rng.next() as u8);
                b
            };
            let _ = AdvertRepr::parse_verified(&b, KEY);
            if let Ok(p) = AdvertPacket::new_checked(&b[..]) {
                poke_all(&p);
            }
            // Unchecked packets: the iterators still must not panic.
            let p = AdvertPacket::new_unchecked(&b[..]);
            let _ = (p.aliases().count(), p.ports().count());
            b.clear();
        }
    }
}
