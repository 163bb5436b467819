//! out_alias return traffic (CA9; seed 002, seed 000 §6.9): the replies to connections and UDP
//! sends that members originate from the default cluster alias.
//!
//! A member's agent rewrites the source of what it sends to an out_alias destination port into
//! the default alias and a source port of **its own range** (nftables `snat`, crate
//! `clua-member`); the ranges of the members are disjoint, so the router tells whose a reply is
//! from its destination port alone. This stage runs before select, and takes a packet when
//!
//! 1. it is addressed to the **default alias** (the only source out_alias uses, seed 000 §6.9),
//! 2. its **source** port is flagged out_alias for its protocol (the far end's service port:
//!    out_alias is about the destination port of the member's connection), and
//! 3. its **destination** port is inside a member's range;
//!
//! the packet then goes to that member, encapsulated like any other, without touching the
//! connection table or a round-robin cursor. A client's ordinary connection to an alias port is
//! never taken: its source port would have to be an out_alias service port *and* its
//! destination port inside a range, and the control plane refuses ranges that contain a port
//! clua_services lists (so no in_multi, in_single, in_noalias or static port is ever in one).
//! Everything else, and a range whose member is gone from the snapshot, goes on to select.
//!
//! Cost for everybody else: one compare (the packet's alias against the table's) while no
//! member has a range; then one service-table load; then a binary search over the ranges.

use core::fmt;
use core::str::FromStr;

use crate::classify::PacketMeta;
use crate::snapshot::{AliasId, MemberId, Snapshot};

/// A range of ports, both ends included (`LO-HI`, or one port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// The first port (at least 1).
    pub lo: u16,
    /// The last port (at least `lo`).
    pub hi: u16,
}

/// Why a port range is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortRangeError {
    /// Not `LO-HI` or `PORT` with decimal ports.
    Syntax(String),
    /// Port 0.
    Zero,
    /// `hi` below `lo`.
    Backwards {
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
}

impl fmt::Display for PortRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRangeError::Syntax(s) => write!(
                f,
                "`{s}` is not a port range (expected LO-HI, e.g. \"61000-61999\")"
            ),
            PortRangeError::Zero => {
                f.write_str("port 0 is not a port (ranges are within 1..=65535)")
            }
            PortRangeError::Backwards { lo, hi } => write!(f, "{lo}-{hi} ends before it starts"),
        }
    }
}

impl std::error::Error for PortRangeError {}

impl PortRange {
    /// `lo..=hi`, checked.
    pub fn new(lo: u16, hi: u16) -> Result<PortRange, PortRangeError> {
        if lo == 0 {
            return Err(PortRangeError::Zero);
        }
        if hi < lo {
            return Err(PortRangeError::Backwards { lo, hi });
        }
        Ok(PortRange { lo, hi })
    }

    /// Whether `port` is in the range.
    #[inline(always)]
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }

    /// Whether the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// How many ports it holds.
    pub fn len(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }

    /// Never true (a range holds at least one port); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

impl FromStr for PortRange {
    type Err = PortRangeError;

    fn from_str(s: &str) -> Result<PortRange, PortRangeError> {
        let syntax = || PortRangeError::Syntax(s.to_string());
        let num = |t: &str| {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            t.parse::<u16>().map_err(|_| syntax())
        };
        match s.split_once('-') {
            Some((a, b)) => PortRange::new(num(a)?, num(b)?),
            None => {
                let p = num(s)?;
                PortRange::new(p, p)
            }
        }
    }
}

/// Two members' ranges that share ports (see [`OutAliasTable::new`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlapError {
    /// One range.
    pub a: PortRange,
    /// Its member.
    pub a_member: MemberId,
    /// The other.
    pub b: PortRange,
    /// Its member.
    pub b_member: MemberId,
}

impl fmt::Display for OverlapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "out_alias ranges {} (member id {}) and {} (member id {}) overlap",
            self.a, self.a_member.0, self.b, self.b_member.0
        )
    }
}

impl std::error::Error for OverlapError {}

/// The routers' out_alias table: the default alias and the members' disjoint source-port
/// ranges, sorted. Empty (the default): nothing is steered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutAliasTable {
    alias: Option<AliasId>,
    ranges: Box<[(PortRange, MemberId)]>,
}

impl OutAliasTable {
    /// The table for the default alias `alias` (its id in the snapshot the table goes into) and
    /// the members' `ranges`. No ranges: an empty table.
    ///
    /// # Errors
    /// [`OverlapError`] for two ranges that share a port (the control plane drops the later
    /// one first, so this is an internal-consistency error).
    pub fn new(
        alias: AliasId,
        mut ranges: Vec<(PortRange, MemberId)>,
    ) -> Result<OutAliasTable, OverlapError> {
        ranges.sort_unstable();
        if let Some(w) = ranges.windows(2).find(|w| w[0].0.overlaps(&w[1].0)) {
            return Err(OverlapError {
                a: w[0].0,
                a_member: w[0].1,
                b: w[1].0,
                b_member: w[1].1,
            });
        }
        Ok(OutAliasTable {
            alias: (!ranges.is_empty()).then_some(alias),
            ranges: ranges.into_boxed_slice(),
        })
    }

    /// Whether no range is configured.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The alias whose traffic is looked at (`None` when empty).
    pub fn alias(&self) -> Option<AliasId> {
        self.alias
    }

    /// The ranges with their members, sorted.
    pub fn ranges(&self) -> &[(PortRange, MemberId)] {
        &self.ranges
    }

    /// The member whose range holds `port`.
    #[inline]
    pub fn member_for(&self, port: u16) -> Option<MemberId> {
        // The last range starting at or below `port` is the only one that can hold it.
        let i = self.ranges.partition_point(|(r, _)| r.lo <= port);
        let (r, m) = self.ranges.get(i.checked_sub(1)?)?;
        r.contains(port).then_some(*m)
    }
}

/// The stage: the member a classified packet goes to when it is out_alias return traffic (see
/// the module docs), `None` for everything else (select decides).
#[inline(always)]
pub fn steer(snap: &Snapshot, meta: &PacketMeta) -> Option<MemberId> {
    let t = &snap.out_alias;
    if t.alias != Some(meta.alias) {
        return None;
    }
    steer_slow(snap, meta)
}

#[inline(never)]
fn steer_slow(snap: &Snapshot, meta: &PacketMeta) -> Option<MemberId> {
    let key = &meta.key;
    if !snap.is_out_alias(key.proto, key.src_port) {
        return None;
    }
    let m = snap.out_alias.member_for(key.dst_port)?;
    snap.member(m)?;
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lo: u16, hi: u16) -> PortRange {
        PortRange::new(lo, hi).unwrap()
    }

    #[test]
    fn ranges_parse_and_print() {
        assert_eq!("61000-61999".parse(), Ok(r(61000, 61999)));
        assert_eq!(" 7 - 9 ".parse::<PortRange>().map(|x| x.len()), Ok(3));
        assert_eq!("5000".parse(), Ok(r(5000, 5000)));
        assert_eq!(r(1, 65535).to_string(), "1-65535");
        assert_eq!(r(1, 65535).len(), 65535);
        for bad in ["", "-", "1-", "a-b", "1-2-3", "+1-2", "70000-70001", "1..2"] {
            assert!(
                matches!(bad.parse::<PortRange>(), Err(PortRangeError::Syntax(_))),
                "{bad}"
            );
        }
        assert_eq!("0-10".parse::<PortRange>(), Err(PortRangeError::Zero));
        assert_eq!(
            "10-9".parse::<PortRange>(),
            Err(PortRangeError::Backwards { lo: 10, hi: 9 })
        );
        assert_eq!(
            "x".parse::<PortRange>().unwrap_err().to_string(),
            "`x` is not a port range (expected LO-HI, e.g. \"61000-61999\")"
        );
        assert!(r(10, 20).overlaps(&r(20, 30)) && !r(10, 19).overlaps(&r(20, 30)));
    }

    #[test]
    fn lookup_hits_only_inside_a_range() {
        let t = OutAliasTable::new(
            AliasId(0),
            vec![
                (r(62000, 62999), MemberId(1)),
                (r(61000, 61999), MemberId(0)),
                (r(64000, 64000), MemberId(2)),
            ],
        )
        .unwrap();
        assert_eq!(t.alias(), Some(AliasId(0)));
        for (port, want) in [
            (1, None),
            (60999, None),
            (61000, Some(0)),
            (61999, Some(0)),
            (62000, Some(1)),
            (62999, Some(1)),
            (63000, None),
            (63999, None),
            (64000, Some(2)),
            (64001, None),
            (65535, None),
        ] {
            assert_eq!(t.member_for(port), want.map(MemberId), "port {port}");
        }
        let e = OutAliasTable::new(
            AliasId(0),
            vec![(r(100, 200), MemberId(0)), (r(200, 300), MemberId(1))],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "out_alias ranges 100-200 (member id 0) and 200-300 (member id 1) overlap"
        );
        let empty = OutAliasTable::new(AliasId(3), vec![]).unwrap();
        assert!(empty.is_empty() && empty.alias().is_none());
        assert_eq!(empty.member_for(100), None);
    }
}
