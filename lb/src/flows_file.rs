//! The flows file (`[sync] flows_file`): the connection tables kept across a restart of one
//! router (issue 9: "One router, SIGTERM and restart with 20 long-lived connections: all
//! continue"). Without it a restarted router finds its tables empty, and a flow whose SYN went
//! by the round robin is sent wherever the consistent hash says: usually another member, which
//! resets the connection.
//!
//! At SIGTERM, once the workers have stopped, every worker's live entries that carry a
//! decision worth keeping — established and closing flows, and sticky affinities (keys with
//! `src_port` 0, issue 9 SC2/SC3) — are written ([`write`]); half-open entries are not (their
//! client retransmits its SYN, which is selected afresh). At start, before the workers run,
//! the file is read ([`read`]), each entry's remaining time is reduced by the time since the
//! file was written, members are mapped to the new snapshot by name ([`restore`]), and the
//! result is installed in every worker's table. The file is a cache: a missing file is
//! normal, and a corrupt or foreign one is reported and ignored, never a reason not to start.
//!
//! Members are stored by name, never by `MemberId` (ids are per snapshot build), and a member
//! that is no longer configured drops its flows. Entries of several workers for one flow are
//! written once.
//!
//! Format, version 1 (all integers little-endian):
//!
//! ```text
//! magic       8 bytes  "CLUAFLOW"
//! version     u32      1
//! written_ms  u64      wall-clock time of writing, ms since the Unix epoch
//! members     u32      count, then per member: name length u16, name bytes (UTF-8)
//! flows       u32      count, then per flow 26 bytes:
//!                      src u32, dst u32, src_port u16, dst_port u16, proto u8,
//!                      state u8 (0 established, 1 closing, 2 half-open), member index u32,
//!                      isn u32, remaining_ms u32
//! checksum    u64      FNV-1a 64 of every byte before it
//! ```
//!
//! Written atomically: a temporary file beside it, fsynced, renamed over it (and the directory
//! fsynced), so a crash while writing leaves the previous file or none, never half of one.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use clua_pipeline::conntrack::FlowState;
use clua_pipeline::handoff::FlowRecord;
use clua_pipeline::hash::FlowKey;
use clua_pipeline::snapshot::MemberId;
use clua_pipeline::Snapshot;

/// The file's first eight bytes.
pub const MAGIC: [u8; 8] = *b"CLUAFLOW";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;

const FLOW_BYTES: usize = 26;

/// Why the flows file was not written or not read.
#[derive(Debug, thiserror::Error)]
pub enum FlowsFileError {
    /// Reading failed (other than the file not existing).
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing, syncing or renaming failed.
    #[error("{}: cannot write: {source}", .path.display())]
    Write {
        /// The file written (the temporary file, or the final one for the rename).
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The contents are not a flows file this code reads.
    #[error("{}: {what}", .path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: FormatError,
    },
}

/// What is wrong with a flows file's contents.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not starting with [`MAGIC`].
    #[error("not a clua flows file (no CLUAFLOW magic)")]
    Magic,
    /// Another format version.
    #[error("format version {0}, this aliasd reads version {VERSION}")]
    Version(u32),
    /// Shorter than its counts say.
    #[error("truncated (at byte {0})")]
    Truncated(usize),
    /// The checksum does not match.
    #[error("checksum mismatch: corrupt")]
    Checksum,
    /// Bytes after the checksum.
    #[error("{0} bytes after the end")]
    Trailing(usize),
    /// A member name that is not UTF-8.
    #[error("member {0}: name not UTF-8")]
    MemberName(usize),
    /// A flow naming a member index past the member list.
    #[error("flow {flow}: member index {index} of {members}")]
    MemberIndex {
        /// The flow's index.
        flow: usize,
        /// Its member index.
        index: u32,
        /// How many members the file lists.
        members: usize,
    },
    /// A flow state byte that is no state.
    #[error("flow {flow}: state {state}")]
    State {
        /// The flow's index.
        flow: usize,
        /// The byte.
        state: u8,
    },
}

/// A flow as stored: its member is an index into [`Saved::members`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedFlow {
    /// The flow (or affinity) key.
    pub key: FlowKey,
    /// Index into [`Saved::members`].
    pub member: u32,
    /// The entry's state.
    pub state: FlowState,
    /// The initial sequence number of its SYN (0: unknown).
    pub isn: u32,
    /// Milliseconds it had left when the file was written.
    pub remaining_ms: u32,
}

/// A flows file's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    /// When it was written, ms since the Unix epoch.
    pub written_ms: u64,
    /// Member names, indexed by [`SavedFlow::member`].
    pub members: Vec<String>,
    /// The flows.
    pub flows: Vec<SavedFlow>,
}

/// The flows of a file, ready to install in this start's tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Records in the new snapshot's member ids, remaining time reduced by the file's age.
    pub records: Vec<FlowRecord>,
    /// Flows whose time ran out since the file was written.
    pub expired: usize,
    /// Flows whose member is not in the new snapshot.
    pub unknown_member: usize,
}

/// Whether an entry is worth keeping across a restart: a decision already made for a flow
/// past its handshake, or a sticky affinity.
pub fn worth_keeping(r: &FlowRecord) -> bool {
    r.state != FlowState::HalfOpen || r.key.src_port == 0
}

/// The flows to keep of the workers' `records` (see [`worth_keeping`]), members named from
/// `snapshot`, one per key (the entry with a known isn, then the one with more time left),
/// written at `written_ms` (wall clock).
pub fn collect(records: &[FlowRecord], snapshot: &Snapshot, written_ms: u64) -> Saved {
    let mut best: HashMap<FlowKey, FlowRecord> = HashMap::new();
    for r in records.iter().filter(|r| worth_keeping(r)) {
        if snapshot.member(r.member).is_none() {
            continue;
        }
        best.entry(r.key)
            .and_modify(|b| {
                if (r.isn != 0, r.remaining_ms) > (b.isn != 0, b.remaining_ms) {
                    *b = *r;
                }
            })
            .or_insert(*r);
    }
    let mut index: HashMap<MemberId, u32> = HashMap::new();
    let mut members = Vec::new();
    let mut flows: Vec<SavedFlow> = best
        .into_values()
        .filter_map(|r| {
            let name = &snapshot.member(r.member)?.name;
            let i = *index.entry(r.member).or_insert_with(|| {
                members.push(name.clone());
                (members.len() - 1) as u32
            });
            Some(SavedFlow {
                key: r.key,
                member: i,
                state: r.state,
                isn: r.isn,
                remaining_ms: r.remaining_ms,
            })
        })
        .collect();
    // A stable order: the same tables give the same file.
    flows.sort_by_key(|f| {
        (
            f.key.src,
            f.key.dst,
            f.key.src_port,
            f.key.dst_port,
            f.key.proto,
        )
    });
    Saved {
        written_ms,
        members,
        flows,
    }
}

/// The file's checksum over `bytes` (FNV-1a, 64 bits; it catches a torn or damaged file, it is
/// no defence against a forger, who could write the file anyway). Public for the fuzz target,
/// which seals arbitrary bodies with it to reach the parser behind the check.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn state_byte(s: FlowState) -> u8 {
    match s {
        FlowState::Established => 0,
        FlowState::Closing => 1,
        FlowState::HalfOpen => 2,
    }
}

/// The file's bytes.
pub fn encode(saved: &Saved) -> Vec<u8> {
    let mut o = Vec::with_capacity(32 + saved.flows.len() * FLOW_BYTES);
    o.extend_from_slice(&MAGIC);
    o.extend_from_slice(&VERSION.to_le_bytes());
    o.extend_from_slice(&saved.written_ms.to_le_bytes());
    o.extend_from_slice(&(saved.members.len() as u32).to_le_bytes());
    for m in &saved.members {
        // Member names are short (clua_ctl::name rules); a longer one is cut, and then
        // matches no member at start.
        let b = &m.as_bytes()[..m.len().min(u16::MAX as usize)];
        o.extend_from_slice(&(b.len() as u16).to_le_bytes());
        o.extend_from_slice(b);
    }
    o.extend_from_slice(&(saved.flows.len() as u32).to_le_bytes());
    for f in &saved.flows {
        o.extend_from_slice(&f.key.src.to_le_bytes());
        o.extend_from_slice(&f.key.dst.to_le_bytes());
        o.extend_from_slice(&f.key.src_port.to_le_bytes());
        o.extend_from_slice(&f.key.dst_port.to_le_bytes());
        o.push(f.key.proto);
        o.push(state_byte(f.state));
        o.extend_from_slice(&f.member.to_le_bytes());
        o.extend_from_slice(&f.isn.to_le_bytes());
        o.extend_from_slice(&f.remaining_ms.to_le_bytes());
    }
    let sum = fnv1a64(&o);
    o.extend_from_slice(&sum.to_le_bytes());
    o
}

/// A cursor over the file's bytes; every read is bounds-checked.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or(FormatError::Truncated(self.b.len()))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let s = self.take(N)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Parses a flows file's bytes. Checks the magic, the version, every count against the
/// length, the checksum, and that every flow names a listed member and a state.
pub fn decode(bytes: &[u8]) -> Result<Saved, FormatError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(FormatError::Magic);
    }
    let mut r = Reader {
        b: bytes,
        at: MAGIC.len(),
    };
    let version = r.u32()?;
    if version != VERSION {
        return Err(FormatError::Version(version));
    }
    let written_ms = r.u64()?;
    let n = r.u32()? as usize;
    // Each member takes at least 2 bytes: a count larger than the file is corrupt, and is
    // refused before anything is allocated for it.
    if n > bytes.len() / 2 {
        return Err(FormatError::Truncated(bytes.len()));
    }
    let mut members = Vec::with_capacity(n);
    for i in 0..n {
        let len = r.u16()? as usize;
        let name = std::str::from_utf8(r.take(len)?).map_err(|_| FormatError::MemberName(i))?;
        members.push(name.to_string());
    }
    let n = r.u32()? as usize;
    if n > bytes.len() / FLOW_BYTES {
        return Err(FormatError::Truncated(bytes.len()));
    }
    let mut flows = Vec::with_capacity(n);
    for flow in 0..n {
        let key = FlowKey {
            src: r.u32()?,
            dst: r.u32()?,
            src_port: r.u16()?,
            dst_port: r.u16()?,
            proto: r.u8()?,
        };
        let state = match r.u8()? {
            0 => FlowState::Established,
            1 => FlowState::Closing,
            2 => FlowState::HalfOpen,
            state => return Err(FormatError::State { flow, state }),
        };
        let member = r.u32()?;
        if member as usize >= members.len() {
            return Err(FormatError::MemberIndex {
                flow,
                index: member,
                members: members.len(),
            });
        }
        flows.push(SavedFlow {
            key,
            member,
            state,
            isn: r.u32()?,
            remaining_ms: r.u32()?,
        });
    }
    let body = r.at;
    let sum = r.u64()?;
    if sum != fnv1a64(&bytes[..body]) {
        return Err(FormatError::Checksum);
    }
    if r.at != bytes.len() {
        return Err(FormatError::Trailing(bytes.len() - r.at));
    }
    Ok(Saved {
        written_ms,
        members,
        flows,
    })
}

/// The saved flows as records of `snapshot` at wall-clock `now_ms`: each flow's remaining time
/// less the file's age (a file from the future counts as just written), flows with no time left
/// and flows of members `snapshot` does not have dropped and counted.
pub fn restore(saved: &Saved, snapshot: &Snapshot, now_ms: u64) -> Restored {
    let age = now_ms.saturating_sub(saved.written_ms);
    let ids: Vec<Option<MemberId>> = saved
        .members
        .iter()
        .map(|name| {
            snapshot
                .members
                .iter()
                .flatten()
                .find(|m| &m.name == name)
                .map(|m| m.id)
        })
        .collect();
    let mut out = Restored::default();
    for f in &saved.flows {
        if u64::from(f.remaining_ms) <= age {
            out.expired += 1;
            continue;
        }
        let Some(member) = ids.get(f.member as usize).copied().flatten() else {
            out.unknown_member += 1;
            continue;
        };
        out.records.push(FlowRecord {
            key: f.key,
            member,
            state: f.state,
            isn: f.isn,
            remaining_ms: (u64::from(f.remaining_ms) - age) as u32,
        });
    }
    out
}

/// Reads and parses the file. `Ok(None)`: there is none (normal: the first start, or the
/// previous run did not stop cleanly).
pub fn read(path: &Path) -> Result<Option<Saved>, FlowsFileError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FlowsFileError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    decode(&bytes)
        .map(Some)
        .map_err(|what| FlowsFileError::Format {
            path: path.to_path_buf(),
            what,
        })
}

/// Writes `saved` to `path` atomically: `PATH.tmp` beside it, written, fsynced, renamed over
/// `path`, the directory fsynced (best effort). The directory is created if missing.
pub fn write(path: &Path, saved: &Saved) -> Result<(), FlowsFileError> {
    let tmp = {
        let mut t = path.as_os_str().to_owned();
        t.push(format!(".tmp{}", std::process::id()));
        PathBuf::from(t)
    };
    let werr = |p: &Path| {
        let p = p.to_path_buf();
        move |source| FlowsFileError::Write { path: p, source }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(werr(dir))?;
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(werr(&tmp))?;
        f.write_all(&encode(saved)).map_err(werr(&tmp))?;
        f.sync_all().map_err(werr(&tmp))?;
        std::fs::rename(&tmp, path).map_err(werr(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Saved {
        let k = |i: u16| FlowKey {
            src: 0xc633_6401,
            dst: 0xc633_6464,
            src_port: 40000 + i,
            dst_port: 80,
            proto: 6,
        };
        Saved {
            written_ms: 1_764_640_000_000,
            members: vec!["m1".into(), "web-2".into()],
            flows: vec![
                SavedFlow {
                    key: k(0),
                    member: 0,
                    state: FlowState::Established,
                    isn: 7,
                    remaining_ms: 300_000,
                },
                SavedFlow {
                    key: k(1),
                    member: 1,
                    state: FlowState::Closing,
                    isn: 0,
                    remaining_ms: 1_000,
                },
            ],
        }
    }

    #[test]
    fn every_corruption_is_refused() {
        let bytes = encode(&saved());
        assert_eq!(decode(&bytes).unwrap(), saved());
        // Any single flipped bit is caught (the magic, version or checksum, or a count).
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(decode(&b).is_err(), "bit flip at byte {i} accepted");
        }
        // Any truncation too.
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncated to {n} accepted");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(FormatError::Trailing(1)));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(decode(&v2), Err(FormatError::Version(2)));
        assert_eq!(decode(b"not a flows file"), Err(FormatError::Magic));
        // A huge count in a short file is refused before allocating.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&VERSION.to_le_bytes());
        huge.extend_from_slice(&0u64.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(FormatError::Truncated(_))));
    }
}
