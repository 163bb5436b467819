//! The flow hand-off message (issue 9; docs/sync-protocol.md): a batch of connection-table
//! entries one alias router hands its peers over the interconnect, or a starting router's
//! request for their whole tables. Authenticated exactly like the router protocol
//! ([`crate::routers::wire`]): the same key, HMAC-SHA-256 over every byte before the tag, a
//! replay window per sender (node, boot id). In short (all integers big-endian):
//!
//! ```text
//!  offset  size  field
//!       0     4  magic "CLUS" (router messages use "CLUR", member adverts "CLUA")
//!       4     1  version = 1
//!       5     1  kind: 1 = flows, 2 = request (send me your whole table)
//!       6     2  record_count (<= 2048; 0 for a request)
//!       8    64  node name, `crate::name` rules, NUL-padded
//!      72     8  boot_id (larger for every start of the router)
//!      80     8  seq (1 for the first message of a boot, +1 per message)
//!      88  28*n  records: proto u8, state u8 (0 half-open, 1 established, 2 closing),
//!                reserved u16 = 0, client addr u32, alias addr u32, client port u16,
//!                alias port u16, member (its interconnect address) u32, isn u32,
//!                remaining_ms u32
//!       .    32  HMAC-SHA-256 over every byte before it
//! ```
//!
//! [`SyncPacket`] is a zero-copy view; once [`SyncPacket::new_checked`] accepted a buffer
//! (length within [`MAX_SYNC_LEN`], magic, version, count within [`MAX_RECORDS`] and matching
//! the length exactly), no accessor panics. [`SyncRepr::parse_verified`] checks the framing,
//! then the tag (constant time), then the contents; [`SyncRepr::emit_signed`] refuses what a
//! peer would refuse. A member is its interconnect address on the wire, never a `MemberId`
//! (ids are per router).
//!
//! The tag check is skipped when built with `--cfg fuzzing` (cargo-fuzz), so that a fuzzer can
//! reach the content checks.
// `cfg(fuzzing)` is set by cargo-fuzz, not by Cargo, so it is not in rustc's list of known cfgs.
#![allow(unexpected_cfgs)]

use std::net::Ipv4Addr;

use clua_pipeline::conntrack::FlowState;

use crate::name::validate_name;
use crate::routers::wire::{checked_name, is_unicast, padded_name, write_name};
use crate::signed::{self, be16, be32, be64, FramingError};

pub use crate::routers::wire::{MIN_KEY_LEN, NAME_LEN};

/// The magic bytes that start every hand-off message.
pub const MAGIC: [u8; 4] = *b"CLUS";
/// The protocol version this module speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = field::RECORDS_START;
/// Length of one flow record.
pub const RECORD_LEN: usize = 28;
/// Length of the HMAC-SHA-256 tag.
pub const TAG_LEN: usize = signed::TAG_LEN;
/// The most records one message may carry (a 57,464-byte datagram; a 1500-byte MTU takes 48).
pub const MAX_RECORDS: usize = 2048;
/// The largest datagram a router looks at; anything longer is [`SyncError::Oversized`].
pub const MAX_SYNC_LEN: usize = buffer_len(MAX_RECORDS);

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const KIND: usize = 5;
    pub const COUNT: Range<usize> = 6..8;
    pub const NODE: Range<usize> = 8..72;
    pub const BOOT_ID: Range<usize> = 72..80;
    pub const SEQ: Range<usize> = 80..88;
    pub const RECORDS_START: usize = 88;
    // Within a record.
    pub const R_PROTO: usize = 0;
    pub const R_STATE: usize = 1;
    pub const R_RESERVED: Range<usize> = 2..4;
    pub const R_CLIENT: Range<usize> = 4..8;
    pub const R_ALIAS: Range<usize> = 8..12;
    pub const R_CLIENT_PORT: Range<usize> = 12..14;
    pub const R_ALIAS_PORT: Range<usize> = 14..16;
    pub const R_MEMBER: Range<usize> = 16..20;
    pub const R_ISN: Range<usize> = 20..24;
    pub const R_REMAINING: Range<usize> = 24..28;
}

/// The bytes a message with `records` records takes, tag included.
pub const fn buffer_len(records: usize) -> usize {
    HEADER_LEN + records * RECORD_LEN + TAG_LEN
}

/// How many records fit one message in an IPv4 packet of `mtu` bytes (at least 1, at most
/// [`MAX_RECORDS`]).
pub fn records_per_message(mtu: usize) -> usize {
    let room = mtu.saturating_sub(20 + 8 + HEADER_LEN + TAG_LEN);
    (room / RECORD_LEN).clamp(1, MAX_RECORDS)
}

/// Why a hand-off message was refused. Each has a metric label ([`SyncError::name`]) and an
/// index ([`SyncError::index`]) into a counter array of [`SyncError::COUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SyncError {
    /// Longer than [`MAX_SYNC_LEN`], or more than [`MAX_RECORDS`] records.
    #[error("hand-off message too large (length or record count above the limits)")]
    Oversized,
    /// Shorter than the header and tag, or than its count needs.
    #[error("hand-off message truncated")]
    Truncated,
    /// Longer than its count needs, non-zero reserved bytes, or a request with records.
    #[error("hand-off message malformed (trailing bytes, reserved bits, a request with records)")]
    Malformed,
    /// Does not start with [`MAGIC`].
    #[error("not a hand-off message (bad magic)")]
    BadMagic,
    /// A version other than [`VERSION`].
    #[error("unsupported hand-off message version")]
    UnsupportedVersion,
    /// The HMAC tag does not match (forged, corrupted, or signed with another key).
    #[error("hand-off message authentication failed (bad HMAC tag)")]
    BadTag,
    /// A kind other than flows (1) or request (2).
    #[error("unknown hand-off message kind")]
    BadKind,
    /// A node name that breaks `crate::name` rules or is not NUL-padded.
    #[error("bad hand-off node name (1..=64 bytes of letters, digits, `.`, `_`, `-`)")]
    BadNode,
    /// Sequence number 0 (sequence numbers start at 1).
    #[error("hand-off message sequence number 0")]
    BadSeq,
    /// A record state other than half-open (0), established (1) or closing (2).
    #[error("unknown flow state in a hand-off record")]
    BadState,
    /// A record's member address that is not a unicast address.
    #[error("hand-off record member address is not a unicast address")]
    BadMember,
    /// A key shorter than [`MIN_KEY_LEN`] (a configuration error, not the datagram's).
    #[error("hand-off key shorter than 16 bytes")]
    WeakKey,
}

impl SyncError {
    /// Number of variants (the size of a counter array indexed by [`SyncError::index`]).
    pub const COUNT: usize = 12;
    /// Every variant, in index order.
    pub const ALL: [SyncError; SyncError::COUNT] = [
        SyncError::Oversized,
        SyncError::Truncated,
        SyncError::Malformed,
        SyncError::BadMagic,
        SyncError::UnsupportedVersion,
        SyncError::BadTag,
        SyncError::BadKind,
        SyncError::BadNode,
        SyncError::BadSeq,
        SyncError::BadState,
        SyncError::BadMember,
        SyncError::WeakKey,
    ];

    /// Position in [`SyncError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            SyncError::Oversized => "oversized",
            SyncError::Truncated => "truncated",
            SyncError::Malformed => "malformed",
            SyncError::BadMagic => "bad_magic",
            SyncError::UnsupportedVersion => "unsupported_version",
            SyncError::BadTag => "bad_tag",
            SyncError::BadKind => "bad_kind",
            SyncError::BadNode => "bad_node",
            SyncError::BadSeq => "bad_seq",
            SyncError::BadState => "bad_state",
            SyncError::BadMember => "bad_member",
            SyncError::WeakKey => "weak_key",
        }
    }
}

impl From<FramingError> for SyncError {
    fn from(e: FramingError) -> Self {
        match e {
            FramingError::Oversized => SyncError::Oversized,
            FramingError::Truncated => SyncError::Truncated,
            FramingError::BadMagic => SyncError::BadMagic,
            FramingError::UnsupportedVersion => SyncError::UnsupportedVersion,
            FramingError::Malformed => SyncError::Malformed,
        }
    }
}

/// This format's magic, version and lengths, checked by [`crate::signed::Framing::check`].
const FRAMING: signed::Framing = signed::Framing {
    magic: MAGIC,
    magic_at: field::MAGIC,
    version: VERSION,
    version_at: field::VERSION,
    header_len: HEADER_LEN,
    max_len: MAX_SYNC_LEN,
};

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// The wire value of a flow state.
pub fn state_number(s: FlowState) -> u8 {
    match s {
        FlowState::HalfOpen => 0,
        FlowState::Established => 1,
        FlowState::Closing => 2,
    }
}

/// A flow state from its wire value.
pub fn state_from_number(n: u8) -> Option<FlowState> {
    match n {
        0 => Some(FlowState::HalfOpen),
        1 => Some(FlowState::Established),
        2 => Some(FlowState::Closing),
        _ => None,
    }
}

/// One flow record as on the wire (state unvalidated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// IP protocol number (0 for a wildcard affinity).
    pub proto: u8,
    /// The state's wire value.
    pub state: u8,
    /// The reserved bytes (must be 0).
    pub reserved: [u8; 2],
    /// Client address.
    pub client: Ipv4Addr,
    /// Alias address.
    pub alias: Ipv4Addr,
    /// Client port (0 for an affinity).
    pub client_port: u16,
    /// Alias port (0 for a wildcard affinity).
    pub alias_port: u16,
    /// The member's interconnect address.
    pub member: Ipv4Addr,
    /// The ISN of the opening SYN (0: unknown).
    pub isn: u32,
    /// Milliseconds the entry has left at its sender.
    pub remaining_ms: u32,
}

/// A zero-copy view of a hand-off message.
///
/// Contract: after [`SyncPacket::new_checked`] succeeded, no accessor panics. The record
/// iterator never panics at all (on an unchecked short buffer it ends early).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SyncPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        SyncPacket { buffer }
    }

    /// Wraps a buffer after [`SyncPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self, SyncError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks the framing, in this order: length at most [`MAX_SYNC_LEN`] (`Oversized`), at
    /// least header and tag (`Truncated`), magic (`BadMagic`), version (`UnsupportedVersion`),
    /// count within [`MAX_RECORDS`] (`Oversized`), and the length the count implies equal to
    /// the buffer's (`Truncated` if shorter, `Malformed` if longer).
    pub fn check_len(&self) -> Result<(), SyncError> {
        FRAMING.check(self.buffer.as_ref(), || {
            let n = self.record_count() as usize;
            (n <= MAX_RECORDS).then(|| buffer_len(n))
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
    /// The record count.
    pub fn record_count(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::COUNT])
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

    fn tag_start(&self) -> usize {
        HEADER_LEN + self.record_count() as usize * RECORD_LEN
    }

    /// The records.
    pub fn records(&self) -> impl Iterator<Item = RawRecord> + '_ {
        let b = self.buffer.as_ref();
        let end = self.tag_start().min(b.len());
        b.get(HEADER_LEN..end)
            .unwrap_or(&[])
            .chunks_exact(RECORD_LEN)
            .map(|e| RawRecord {
                proto: e[field::R_PROTO],
                state: e[field::R_STATE],
                reserved: [e[2], e[3]],
                client: addr(&e[field::R_CLIENT]),
                alias: addr(&e[field::R_ALIAS]),
                client_port: be16(&e[field::R_CLIENT_PORT]),
                alias_port: be16(&e[field::R_ALIAS_PORT]),
                member: addr(&e[field::R_MEMBER]),
                isn: be32(&e[field::R_ISN]),
                remaining_ms: be32(&e[field::R_REMAINING]),
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

    /// Whether the tag is the HMAC-SHA-256 of [`SyncPacket::signed_part`] under `key`
    /// (compared in constant time).
    pub fn verify_tag(&self, key: &[u8]) -> bool {
        signed::verify(self.signed_part(), self.tag(), key)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SyncPacket<T> {
    /// Writes the fixed header (magic, version, kind, count, node name, boot id, seq). `node`
    /// longer than [`NAME_LEN`] is cut.
    pub fn set_header(&mut self, kind: u8, count: u16, node: &[u8], boot_id: u64, seq: u64) {
        let b = self.buffer.as_mut();
        b[field::MAGIC].copy_from_slice(&MAGIC);
        b[field::VERSION] = VERSION;
        b[field::KIND] = kind;
        b[field::COUNT].copy_from_slice(&count.to_be_bytes());
        write_name(&mut b[field::NODE], node);
        b[field::BOOT_ID].copy_from_slice(&boot_id.to_be_bytes());
        b[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }
    /// Writes record `i` (`i` < record count).
    pub fn set_record(&mut self, i: usize, r: &RawRecord) {
        let s = HEADER_LEN + i * RECORD_LEN;
        let e = &mut self.buffer.as_mut()[s..s + RECORD_LEN];
        e[field::R_PROTO] = r.proto;
        e[field::R_STATE] = r.state;
        e[field::R_RESERVED].copy_from_slice(&r.reserved);
        e[field::R_CLIENT].copy_from_slice(&r.client.octets());
        e[field::R_ALIAS].copy_from_slice(&r.alias.octets());
        e[field::R_CLIENT_PORT].copy_from_slice(&r.client_port.to_be_bytes());
        e[field::R_ALIAS_PORT].copy_from_slice(&r.alias_port.to_be_bytes());
        e[field::R_MEMBER].copy_from_slice(&r.member.octets());
        e[field::R_ISN].copy_from_slice(&r.isn.to_be_bytes());
        e[field::R_REMAINING].copy_from_slice(&r.remaining_ms.to_be_bytes());
    }
    /// Computes the tag over [`SyncPacket::signed_part`] under `key` and writes it.
    pub fn sign(&mut self, key: &[u8]) {
        let tag = signed::tag(self.signed_part(), key);
        let s = self.tag_start();
        self.buffer.as_mut()[s..s + TAG_LEN].copy_from_slice(&tag);
    }
}

/// What a message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncKind {
    /// Connection-table entries: new flows, or a walk's refresh.
    Flows,
    /// The sender is starting: every peer walks its whole table once.
    Request,
}

impl SyncKind {
    /// The wire value.
    pub fn number(self) -> u8 {
        match self {
            SyncKind::Flows => 1,
            SyncKind::Request => 2,
        }
    }
    /// From the wire value.
    pub fn from_number(n: u8) -> Option<SyncKind> {
        match n {
            1 => Some(SyncKind::Flows),
            2 => Some(SyncKind::Request),
            _ => None,
        }
    }
}

/// One connection-table entry as routers hand it to each other: the member by its interconnect
/// address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRecord {
    /// IP protocol number (0 for a wildcard affinity).
    pub proto: u8,
    /// Client address.
    pub client: Ipv4Addr,
    /// Client port (0 for an affinity).
    pub client_port: u16,
    /// Alias address.
    pub alias: Ipv4Addr,
    /// Alias port (0 for a wildcard affinity).
    pub alias_port: u16,
    /// The entry's state.
    pub state: FlowState,
    /// The member's interconnect address (`MemberSpec.address`).
    pub member: Ipv4Addr,
    /// The ISN of the opening SYN (0: unknown).
    pub isn: u32,
    /// Milliseconds the entry has left at its sender.
    pub remaining_ms: u32,
}

impl SyncRecord {
    fn raw(&self) -> RawRecord {
        RawRecord {
            proto: self.proto,
            state: state_number(self.state),
            reserved: [0; 2],
            client: self.client,
            alias: self.alias,
            client_port: self.client_port,
            alias_port: self.alias_port,
            member: self.member,
            isn: self.isn,
            remaining_ms: self.remaining_ms,
        }
    }

    fn from_raw(r: &RawRecord) -> Result<SyncRecord, SyncError> {
        if r.reserved != [0; 2] {
            return Err(SyncError::Malformed);
        }
        let state = state_from_number(r.state).ok_or(SyncError::BadState)?;
        let rec = SyncRecord {
            proto: r.proto,
            client: r.client,
            client_port: r.client_port,
            alias: r.alias,
            alias_port: r.alias_port,
            state,
            member: r.member,
            isn: r.isn,
            remaining_ms: r.remaining_ms,
        };
        rec.check()?;
        Ok(rec)
    }

    /// What a receiver checks of a record's contents.
    pub fn check(&self) -> Result<(), SyncError> {
        if !is_unicast(self.member) {
            return Err(SyncError::BadMember);
        }
        Ok(())
    }
}

/// A parsed, authenticated and validated hand-off message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRepr {
    /// Flows or a request.
    pub kind: SyncKind,
    /// The sender's node name (the router protocol's).
    pub node: String,
    /// Larger for every start of the sender.
    pub boot_id: u64,
    /// 1 for the first message of a boot, +1 for each further message.
    pub seq: u64,
    /// The records (none in a request).
    pub records: Vec<SyncRecord>,
}

impl SyncRepr {
    /// The datagram length this message encodes to.
    pub fn buffer_len(&self) -> usize {
        buffer_len(self.records.len())
    }

    /// Checks what `parse_verified` checks after the tag: limits, node name, sequence, a
    /// request without records, each record.
    pub fn check(&self) -> Result<(), SyncError> {
        if self.records.len() > MAX_RECORDS {
            return Err(SyncError::Oversized);
        }
        if validate_name(self.node.as_bytes()).is_err() {
            return Err(SyncError::BadNode);
        }
        if self.seq == 0 {
            return Err(SyncError::BadSeq);
        }
        if self.kind == SyncKind::Request && !self.records.is_empty() {
            return Err(SyncError::Malformed);
        }
        self.records.iter().try_for_each(SyncRecord::check)
    }

    /// Encodes and signs the message with `key`.
    ///
    /// # Errors
    /// [`SyncError::WeakKey`] for a key shorter than [`MIN_KEY_LEN`]; otherwise whatever
    /// [`SyncRepr::check`] finds (peers would drop such a message).
    pub fn emit_signed(&self, key: &[u8]) -> Result<Vec<u8>, SyncError> {
        if key.len() < MIN_KEY_LEN {
            return Err(SyncError::WeakKey);
        }
        self.check()?;
        let mut p = SyncPacket::new_unchecked(vec![0u8; self.buffer_len()]);
        // `check` bounded the count well below u16::MAX.
        p.set_header(
            self.kind.number(),
            self.records.len() as u16,
            self.node.as_bytes(),
            self.boot_id,
            self.seq,
        );
        for (i, r) in self.records.iter().enumerate() {
            p.set_record(i, &r.raw());
        }
        p.sign(key);
        Ok(p.into_inner())
    }

    /// Parses a datagram: the framing first ([`SyncPacket::check_len`]), then the tag under
    /// `key` in constant time (`BadTag`), then the contents.
    ///
    /// # Errors
    /// The first problem found, as a [`SyncError`]; [`SyncError::WeakKey`] for a key shorter
    /// than [`MIN_KEY_LEN`] before looking at the datagram.
    pub fn parse_verified(bytes: &[u8], key: &[u8]) -> Result<SyncRepr, SyncError> {
        if key.len() < MIN_KEY_LEN {
            return Err(SyncError::WeakKey);
        }
        let p = SyncPacket::new_checked(bytes)?;
        if !cfg!(fuzzing) && !p.verify_tag(key) {
            return Err(SyncError::BadTag);
        }
        Self::parse_contents(&p)
    }

    /// The content checks of [`SyncRepr::parse_verified`] on a checked packet, without the
    /// tag. Only for tests and tools that already verified the tag.
    pub fn parse_contents<T: AsRef<[u8]>>(p: &SyncPacket<T>) -> Result<SyncRepr, SyncError> {
        let kind = SyncKind::from_number(p.kind()).ok_or(SyncError::BadKind)?;
        let node = checked_name(p.node_field()).ok_or(SyncError::BadNode)?;
        let records = p
            .records()
            .map(|r| SyncRecord::from_raw(&r))
            .collect::<Result<Vec<_>, _>>()?;
        let repr = SyncRepr {
            kind,
            node,
            boot_id: p.boot_id(),
            seq: p.seq(),
            records,
        };
        repr.check()?;
        Ok(repr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const KEY: &[u8] = b"clua router key 0123456789abcdef";

    fn sample() -> SyncRepr {
        SyncRepr {
            kind: SyncKind::Flows,
            node: "r1".into(),
            boot_id: 5,
            seq: 9,
            records: vec![
                SyncRecord {
                    proto: 6,
                    client: Ipv4Addr::new(203, 0, 113, 7),
                    client_port: 40000,
                    alias: Ipv4Addr::new(198, 51, 100, 100),
                    alias_port: 80,
                    state: FlowState::Established,
                    member: Ipv4Addr::new(192, 0, 2, 11),
                    isn: 0x1234_5678,
                    remaining_ms: 300_000,
                },
                // A wildcard affinity (issue 9, SC3): proto 0, ports 0.
                SyncRecord {
                    proto: 0,
                    client: Ipv4Addr::new(203, 0, 113, 8),
                    client_port: 0,
                    alias: Ipv4Addr::new(198, 51, 100, 100),
                    alias_port: 0,
                    state: FlowState::Closing,
                    member: Ipv4Addr::new(192, 0, 2, 12),
                    isn: 0,
                    remaining_ms: 10,
                },
            ],
        }
    }

    fn padded(name: &[u8]) -> Vec<u8> {
        let mut v = name.to_vec();
        v.resize(NAME_LEN, 0);
        v
    }

    /// `sample()` written out field by field, as in docs/sync-protocol.md. The tag was
    /// computed independently (Python's `hmac.new(KEY, signed, "sha256")`).
    fn sample_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"CLUS"); // magic
        b.extend_from_slice(&[1, 1, 0, 2]); // version, kind flows, record_count 2
        b.extend_from_slice(&padded(b"r1"));
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 5]); // boot_id
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]); // seq
        b.extend_from_slice(&[6, 1, 0, 0, 203, 0, 113, 7, 198, 51, 100, 100]);
        b.extend_from_slice(&[0x9c, 0x40, 0, 80, 192, 0, 2, 11]);
        b.extend_from_slice(&[0x12, 0x34, 0x56, 0x78, 0, 0x04, 0x93, 0xe0]);
        b.extend_from_slice(&[0, 2, 0, 0, 203, 0, 113, 8, 198, 51, 100, 100]);
        b.extend_from_slice(&[0, 0, 0, 0, 192, 0, 2, 12]);
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 10]);
        b.extend_from_slice(&SAMPLE_TAG);
        b
    }

    const SAMPLE_TAG: [u8; 32] = [
        0x3b, 0xb1, 0x24, 0xeb, 0x37, 0xed, 0xf8, 0x0d, 0x5c, 0xac, 0x09, 0xc6, 0x99, 0x88, 0xa9,
        0x1e, 0xf9, 0x72, 0x3a, 0xdd, 0xbc, 0x68, 0x74, 0xd9, 0x74, 0xf4, 0x1a, 0x6f, 0xde, 0xdc,
        0xca, 0x2f,
    ];

    #[test]
    fn byte_literal_round_trip() {
        let bytes = sample_bytes();
        assert_eq!(bytes.len(), 176);
        let repr = SyncRepr::parse_verified(&bytes, KEY).unwrap();
        assert_eq!(repr, sample());
        assert_eq!(repr.emit_signed(KEY).unwrap(), bytes);
    }

    #[test]
    fn packet_accessors_on_the_literal() {
        let bytes = sample_bytes();
        let p = SyncPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.magic(), MAGIC);
        assert_eq!((p.version(), p.kind(), p.record_count()), (1, 1, 2));
        assert_eq!(p.node(), b"r1");
        assert_eq!((p.boot_id(), p.seq()), (5, 9));
        let r: Vec<_> = p.records().collect();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].proto, r[0].state, r[0].client_port, r[0].alias_port),
            (6, 1, 40000, 80)
        );
        assert_eq!(r[0].member, Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!((r[0].isn, r[0].remaining_ms), (0x1234_5678, 300_000));
        assert_eq!((r[1].proto, r[1].state, r[1].remaining_ms), (0, 2, 10));
        assert_eq!(p.tag(), SAMPLE_TAG);
        assert!(p.verify_tag(KEY));
    }

    #[test]
    fn a_request_round_trips_and_carries_no_records() {
        let r = SyncRepr {
            kind: SyncKind::Request,
            records: vec![],
            ..sample()
        };
        let b = r.emit_signed(KEY).unwrap();
        assert_eq!(b.len(), HEADER_LEN + TAG_LEN);
        assert_eq!((b[5], b[6], b[7]), (2, 0, 0));
        assert_eq!(SyncRepr::parse_verified(&b, KEY).unwrap(), r);
        let with = SyncRepr {
            kind: SyncKind::Request,
            ..sample()
        };
        assert_eq!(with.emit_signed(KEY), Err(SyncError::Malformed));
    }

    #[test]
    fn every_truncation_and_every_bit_flip_is_refused() {
        let bytes = sample_bytes();
        for n in 0..bytes.len() {
            let e = SyncRepr::parse_verified(&bytes[..n], KEY).unwrap_err();
            assert!(
                matches!(e, SyncError::Truncated | SyncError::Malformed),
                "prefix {n}: {e:?}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            SyncRepr::parse_verified(&long, KEY),
            Err(SyncError::Malformed)
        );
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    SyncRepr::parse_verified(&b, KEY).is_err(),
                    "flip of bit {bit} of byte {i} accepted"
                );
            }
        }
    }

    #[test]
    fn a_forged_record_cannot_pass_without_the_key() {
        let bytes = sample_bytes();
        assert_eq!(
            SyncRepr::parse_verified(&bytes, b"another key 0123456789"),
            Err(SyncError::BadTag)
        );
        let forged = sample().emit_signed(b"forger's key 0123456789").unwrap();
        assert_eq!(
            SyncRepr::parse_verified(&forged, KEY),
            Err(SyncError::BadTag)
        );
        // A changed member address under the old tag.
        let mut b = bytes.clone();
        b[HEADER_LEN + 19] = 13;
        assert_eq!(SyncRepr::parse_verified(&b, KEY), Err(SyncError::BadTag));
        assert_eq!(
            SyncRepr::parse_verified(&bytes, b"short"),
            Err(SyncError::WeakKey)
        );
        assert_eq!(sample().emit_signed(b"short"), Err(SyncError::WeakKey));
    }

    #[test]
    fn framing_errors() {
        let bytes = sample_bytes();
        let mut b = bytes.clone();
        b[..4].copy_from_slice(b"CLUR");
        assert_eq!(SyncRepr::parse_verified(&b, KEY), Err(SyncError::BadMagic));
        let mut b = bytes.clone();
        b[4] = 2;
        assert_eq!(
            SyncRepr::parse_verified(&b, KEY),
            Err(SyncError::UnsupportedVersion)
        );
        let big = vec![0u8; MAX_SYNC_LEN + 1];
        assert_eq!(
            SyncRepr::parse_verified(&big, KEY),
            Err(SyncError::Oversized)
        );
        let mut b = bytes;
        b[6..8].copy_from_slice(&(MAX_RECORDS as u16 + 1).to_be_bytes());
        assert_eq!(SyncRepr::parse_verified(&b, KEY), Err(SyncError::Oversized));
    }

    /// Changes the signed part with `f`, then signs again, so the content checks are reached.
    fn resigned(f: impl FnOnce(&mut Vec<u8>)) -> Result<SyncRepr, SyncError> {
        let mut b = sample_bytes();
        f(&mut b);
        let mut p = SyncPacket::new_unchecked(&mut b[..]);
        p.sign(KEY);
        SyncRepr::parse_verified(&b, KEY)
    }

    type Mutation = Box<dyn FnOnce(&mut Vec<u8>)>;

    #[test]
    fn contents_are_checked_after_the_tag() {
        use SyncError::*;
        const R0: usize = HEADER_LEN;
        let cases: Vec<(SyncError, Mutation)> = vec![
            (BadKind, Box::new(|b| b[5] = 0)),
            (BadKind, Box::new(|b| b[5] = 3)),
            (Malformed, Box::new(|b| b[5] = 2)), // a request with records
            (BadNode, Box::new(|b| b[8] = 0)),
            (BadNode, Box::new(|b| b[8] = b'-')),
            (BadNode, Box::new(|b| b[11] = b'x')), // after the NUL: not padding
            (BadSeq, Box::new(|b| b[80..88].fill(0))),
            (BadState, Box::new(|b| b[R0 + 1] = 3)),
            (Malformed, Box::new(|b| b[R0 + 2] = 1)),
            (Malformed, Box::new(|b| b[R0 + RECORD_LEN + 3] = 1)),
            (BadMember, Box::new(|b| b[R0 + 16..R0 + 20].fill(0))),
            (
                BadMember,
                Box::new(|b| b[R0 + 16..R0 + 20].copy_from_slice(&[224, 0, 0, 5])),
            ),
        ];
        for (i, (want, f)) in cases.into_iter().enumerate() {
            assert_eq!(resigned(f), Err(want), "case {i}");
        }
        assert_eq!(resigned(|_| {}), Ok(sample()));
    }

    #[test]
    fn a_full_message_at_each_mtu_fits_it() {
        for mtu in [576, 1500, 1600, 9000, 65_535] {
            let n = records_per_message(mtu);
            assert!(20 + 8 + buffer_len(n) <= mtu || n == 1, "mtu {mtu}");
            assert!(
                n == MAX_RECORDS || 20 + 8 + buffer_len(n + 1) > mtu,
                "mtu {mtu}"
            );
        }
        assert_eq!(records_per_message(1500), 48);
        let mut r = sample();
        let one = r.records[0];
        r.records = vec![one; MAX_RECORDS];
        let b = r.emit_signed(KEY).unwrap();
        assert_eq!(b.len(), MAX_SYNC_LEN);
        assert_eq!(SyncRepr::parse_verified(&b, KEY).unwrap(), r);
        r.records.push(one);
        assert_eq!(r.emit_signed(KEY), Err(SyncError::Oversized));
    }

    use crate::test_rng::Rng;

    /// What the fuzz target (fuzz/fuzz_targets/sync.rs) checks, on stable over mutations of the
    /// literal: no accessor panics, whatever passes the content checks emits the same bytes
    /// before the tag, and only the unchanged literal passes the tag.
    #[test]
    fn random_mutations_never_panic() {
        let mut rng = Rng(0xC1A5_0009);
        let base = sample_bytes();
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.next() as u8;
            }
            b.truncate(b.len() - (rng.next() % 3 == 1) as usize * (rng.next() as usize % 60));
            if let Ok(p) = SyncPacket::new_checked(&b[..]) {
                let _ = (p.node(), p.boot_id(), p.seq(), p.kind(), p.tag());
                assert_eq!(p.records().count(), p.record_count() as usize);
                if let Ok(r) = SyncRepr::parse_contents(&p) {
                    let again = r.emit_signed(KEY).unwrap();
                    assert_eq!(&again[..again.len() - TAG_LEN], p.signed_part());
                }
            }
            assert!(SyncRepr::parse_verified(&b, KEY).is_err() || b == base);
        }
    }

    #[test]
    fn error_names_and_indexes() {
        let names: HashSet<_> = SyncError::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), SyncError::COUNT);
        for (i, e) in SyncError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(!e.to_string().is_empty());
        }
    }
}
