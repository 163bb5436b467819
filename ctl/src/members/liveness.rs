//! The router's view of its members from their adverts (CA3): which are up, which aliases they
//! joined with which attributes, which service ports they listen on. A pure state machine: the
//! caller feeds it datagrams (or parsed adverts) and the time, and rebuilds the worker snapshot
//! when an outcome or [`Liveness::expire`] reports a change.
//!
//! - Only *managed* members (those configured to run a member agent) are tracked. A managed member
//!   is down until its first valid advert; members without an agent (static configuration) are
//!   not tracked at all and stay as configured.
//! - Replay protection: per member the last accepted `(boot_id, seq)`. An advert is accepted iff
//!   its boot_id is larger, or equal with a larger seq. Anything else changes nothing and is
//!   counted (`replayed`, or `stale_boot` for an older boot).
//! - An accepted advert makes the member up until `now + interval_ms * dead_misses` (the
//!   member's own interval, clamped to 100..=60000 ms; `dead_misses` 3 by default); its aliases
//!   and ports replace what it reported before.
//! - A goodbye makes it down at once and clears its aliases and ports. Its established
//!   connections are not cut: they live in the data plane's connection table, which a snapshot
//!   change leaves alone (SC4); only new connections stop going to it.
//! - [`Liveness::expire`] marks down the members whose deadline has come (at the deadline, not
//!   before); they keep their last report, and the next valid advert makes them up again.
//!
//! Rejected datagrams (forged, malformed, oversized, ...) never reach the state: they are only
//! counted, per [`AdvertError`].

use std::collections::BTreeMap;

use crate::advert::{AdvertError, AdvertKind, AdvertRepr, AliasEntry, INTERVAL_RANGE};
use crate::model::Proto;
use crate::signed::{freshness, Freshness};

/// Adverts a member may miss before it is marked down.
pub const DEFAULT_DEAD_MISSES: u32 = 3;

/// What became of one datagram or advert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdvertOutcome {
    /// A valid advert: the member is up. `changed`: it was down, or its aliases or ports differ
    /// from its last report (rebuild the snapshot).
    Accepted {
        /// Whether anything a snapshot depends on changed.
        changed: bool,
    },
    /// A valid goodbye: the member is down and its aliases and ports are cleared. `changed`: it
    /// was up or had reported aliases or ports.
    Left {
        /// Whether anything a snapshot depends on changed.
        changed: bool,
    },
    /// Same boot, sequence number not above the last accepted one. Nothing changed.
    Replayed,
    /// A boot older than the last accepted one. Nothing changed.
    StaleBoot,
    /// From a node that is not a managed member. Nothing changed.
    UnknownMember,
    /// Refused by [`AdvertRepr::parse_verified`]. Nothing changed.
    Rejected(AdvertError),
}

impl AdvertOutcome {
    /// Whether the caller should rebuild its snapshot.
    pub fn changed(self) -> bool {
        matches!(
            self,
            AdvertOutcome::Accepted { changed: true } | AdvertOutcome::Left { changed: true }
        )
    }

    /// A label for logs and metrics: `accepted`, `goodbye`, `replayed`, `stale_boot`,
    /// `unknown_member`, or the [`AdvertError::name`].
    pub fn name(self) -> &'static str {
        match self {
            AdvertOutcome::Accepted { .. } => "accepted",
            AdvertOutcome::Left { .. } => "goodbye",
            AdvertOutcome::Replayed => "replayed",
            AdvertOutcome::StaleBoot => "stale_boot",
            AdvertOutcome::UnknownMember => "unknown_member",
            AdvertOutcome::Rejected(e) => e.name(),
        }
    }
}

/// Counts of what happened to adverts. Every datagram is counted exactly once in `accepted`,
/// `goodbye`, `replayed`, `stale_boot`, `unknown_member` or `rejected`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdvertCounters {
    /// Valid adverts accepted.
    pub accepted: u64,
    /// Valid goodbyes accepted.
    pub goodbye: u64,
    /// Accepted adverts and goodbyes that changed the member's state.
    pub changed: u64,
    /// Same boot, sequence number not above the last.
    pub replayed: u64,
    /// Older boot than the last accepted.
    pub stale_boot: u64,
    /// From nodes that are not managed members.
    pub unknown_member: u64,
    /// Members marked down by [`Liveness::expire`].
    pub expired: u64,
    /// Refused datagrams, indexed by [`AdvertError::index`].
    pub rejected: [u64; AdvertError::COUNT],
}

impl AdvertCounters {
    /// Refused datagrams for one reason.
    pub fn rejected(&self, e: AdvertError) -> u64 {
        self.rejected[e.index()]
    }

    /// Every counter with its label: the outcome counters first, then each rejection reason
    /// (labelled by [`AdvertError::name`]).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        [
            ("accepted", self.accepted),
            ("goodbye", self.goodbye),
            ("changed", self.changed),
            ("replayed", self.replayed),
            ("stale_boot", self.stale_boot),
            ("unknown_member", self.unknown_member),
            ("expired", self.expired),
        ]
        .into_iter()
        .chain(
            AdvertError::ALL
                .iter()
                .map(move |e| (e.name(), self.rejected[e.index()])),
        )
    }
}

/// What the router knows about one managed member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberView {
    /// Whether it is up (a valid advert within its dead interval).
    pub up: bool,
    /// Its aliases as last reported, joined or not, sorted by address. Cleared by a goodbye;
    /// kept (with `up` false) when it expires.
    pub aliases: Vec<AliasEntry>,
    /// The service ports it last reported listening on, sorted by (protocol number, port).
    pub ports: Vec<(Proto, u16)>,
    /// Its out_alias source-port range as last reported (CA9); cleared by a goodbye.
    pub out_alias: Option<clua_pipeline::out_alias::PortRange>,
    /// The boot id of the last accepted message (0 before the first).
    pub boot_id: u64,
    /// The sequence number of the last accepted message (0 before the first).
    pub last_seq: u64,
    /// The advert interval it last reported (clamped to 100..=60000 ms; 0 before the first).
    pub interval_ms: u32,
    /// When the last accepted message arrived (`None` before the first).
    pub last_heard_ms: Option<u64>,
    /// When it will be marked down unless another advert comes (`None` while down).
    pub deadline_ms: Option<u64>,
}

impl MemberView {
    /// The aliases it has joined.
    pub fn joined(&self) -> impl Iterator<Item = &AliasEntry> + '_ {
        self.aliases.iter().filter(|a| a.joined)
    }

    /// Whether it reported listening on `port` over `proto`.
    pub fn listens(&self, proto: Proto, port: u16) -> bool {
        self.ports.contains(&(proto, port))
    }
}

/// The router's liveness state for its managed members.
#[derive(Clone, Debug)]
pub struct Liveness {
    members: BTreeMap<String, MemberView>,
    dead_misses: u32,
    counters: AdvertCounters,
}

fn sorted_aliases(a: &[AliasEntry]) -> Vec<AliasEntry> {
    let mut v = a.to_vec();
    v.sort_by_key(|e| u32::from(e.addr));
    v
}

fn sorted_ports(p: &[(Proto, u16)]) -> Vec<(Proto, u16)> {
    let mut v = p.to_vec();
    v.sort_by_key(|&(proto, port)| (proto.number(), port));
    v
}

impl Liveness {
    /// Tracks the `managed` members (those running a member agent), all down until their first
    /// advert. `dead_misses` (at least 1; [`DEFAULT_DEAD_MISSES`]) adverts may be missed before
    /// a member is marked down.
    pub fn new(managed: &[String], dead_misses: u32) -> Liveness {
        Liveness {
            members: managed
                .iter()
                .map(|n| (n.clone(), MemberView::default()))
                .collect(),
            dead_misses: dead_misses.max(1),
            counters: AdvertCounters::default(),
        }
    }

    /// The configured number of missed adverts.
    pub fn dead_misses(&self) -> u32 {
        self.dead_misses
    }

    /// Whether `name` is tracked here.
    pub fn is_managed(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// What is known about a managed member (`None` for a member that is not managed).
    pub fn view(&self, name: &str) -> Option<&MemberView> {
        self.members.get(name)
    }

    /// Whether a managed member is up (`None` for a member that is not managed: the caller
    /// keeps its configured state).
    pub fn is_up(&self, name: &str) -> Option<bool> {
        self.members.get(name).map(|m| m.up)
    }

    /// Every managed member, by name.
    pub fn members(&self) -> impl Iterator<Item = (&str, &MemberView)> + '_ {
        self.members.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The counters.
    pub fn counters(&self) -> &AdvertCounters {
        &self.counters
    }

    /// The earliest deadline of an up member: when [`Liveness::expire`] next has work.
    pub fn next_deadline(&self) -> Option<u64> {
        self.members.values().filter_map(|m| m.deadline_ms).min()
    }

    /// Verifies, parses and applies one datagram received at `now_ms` with `key`. A refused
    /// datagram is counted and changes nothing.
    pub fn on_datagram(&mut self, bytes: &[u8], key: &[u8], now_ms: u64) -> AdvertOutcome {
        match AdvertRepr::parse_verified(bytes, key) {
            Ok(repr) => self.on_advert(&repr, now_ms),
            Err(e) => {
                self.on_rejected(e);
                AdvertOutcome::Rejected(e)
            }
        }
    }

    /// Counts a datagram the caller refused itself (e.g. parsed elsewhere).
    pub fn on_rejected(&mut self, e: AdvertError) {
        self.counters.rejected[e.index()] += 1;
    }

    /// Applies a verified advert or goodbye received at `now_ms` (see the module docs).
    pub fn on_advert(&mut self, repr: &AdvertRepr, now_ms: u64) -> AdvertOutcome {
        let dead_misses = self.dead_misses;
        let Some(m) = self.members.get_mut(&repr.node) else {
            self.counters.unknown_member += 1;
            return AdvertOutcome::UnknownMember;
        };
        let last = m.last_heard_ms.map(|_| (m.boot_id, m.last_seq));
        match freshness(last, repr.boot_id, repr.seq) {
            Freshness::Fresh => {}
            Freshness::StaleBoot => {
                self.counters.stale_boot += 1;
                return AdvertOutcome::StaleBoot;
            }
            Freshness::Replayed => {
                self.counters.replayed += 1;
                return AdvertOutcome::Replayed;
            }
        }
        m.boot_id = repr.boot_id;
        m.last_seq = repr.seq;
        m.last_heard_ms = Some(now_ms);
        m.interval_ms = repr
            .interval_ms
            .clamp(*INTERVAL_RANGE.start(), *INTERVAL_RANGE.end());
        let outcome = match repr.kind {
            AdvertKind::Advert => {
                let aliases = sorted_aliases(&repr.aliases);
                let ports = sorted_ports(&repr.ports);
                let changed = !m.up
                    || m.aliases != aliases
                    || m.ports != ports
                    || m.out_alias != repr.out_alias;
                m.up = true;
                m.aliases = aliases;
                m.ports = ports;
                m.out_alias = repr.out_alias;
                m.deadline_ms =
                    Some(now_ms.saturating_add(m.interval_ms as u64 * dead_misses as u64));
                self.counters.accepted += 1;
                AdvertOutcome::Accepted { changed }
            }
            AdvertKind::Goodbye => {
                let changed =
                    m.up || !m.aliases.is_empty() || !m.ports.is_empty() || m.out_alias.is_some();
                m.up = false;
                m.aliases.clear();
                m.ports.clear();
                m.out_alias = None;
                m.deadline_ms = None;
                self.counters.goodbye += 1;
                AdvertOutcome::Left { changed }
            }
        };
        if outcome.changed() {
            self.counters.changed += 1;
        }
        outcome
    }

    /// Marks down every up member whose deadline is at or before `now_ms`; returns their names
    /// (sorted), empty when nothing changed.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let mut down = Vec::new();
        for (name, m) in self.members.iter_mut() {
            if m.up && m.deadline_ms.is_some_and(|d| d <= now_ms) {
                m.up = false;
                m.deadline_ms = None;
                down.push(name.clone());
            }
        }
        self.counters.expired += down.len() as u64;
        down
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const KEY: &[u8] = b"liveness test key, long enough";
    const A1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
    const A2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);

    fn lv() -> Liveness {
        Liveness::new(&["m1".to_string(), "m2".to_string()], DEFAULT_DEAD_MISSES)
    }

    fn ad(node: &str, boot_id: u64, seq: u64) -> AdvertRepr {
        AdvertRepr {
            kind: AdvertKind::Advert,
            node: node.into(),
            boot_id,
            seq,
            interval_ms: 1000,
            aliases: vec![AliasEntry {
                addr: A1,
                joined: true,
                selw: 1,
                selp: 1,
            }],
            ports: vec![(Proto::Tcp, 80)],
            out_alias: None,
        }
    }

    fn goodbye(node: &str, boot_id: u64, seq: u64) -> AdvertRepr {
        AdvertRepr {
            kind: AdvertKind::Goodbye,
            ..ad(node, boot_id, seq)
        }
    }

    #[test]
    fn managed_members_start_down_and_others_are_not_tracked() {
        let l = lv();
        assert_eq!(l.is_up("m1"), Some(false));
        assert_eq!(l.view("m1").unwrap().last_heard_ms, None);
        assert_eq!(l.is_up("static"), None);
        assert!(!l.is_managed("static"));
        assert_eq!(l.next_deadline(), None);
    }

    #[test]
    fn accept_then_replay() {
        let mut l = lv();
        assert_eq!(
            l.on_advert(&ad("m1", 100, 1), 0),
            AdvertOutcome::Accepted { changed: true }
        );
        let v = l.view("m1").unwrap();
        assert!(v.up);
        assert_eq!((v.boot_id, v.last_seq, v.last_heard_ms), (100, 1, Some(0)));
        assert_eq!(v.deadline_ms, Some(3000));
        assert_eq!(v.joined().count(), 1);
        assert!(v.listens(Proto::Tcp, 80) && !v.listens(Proto::Udp, 80));
        // The same advert again, and an older one: replayed, nothing changes.
        let before = l.view("m1").unwrap().clone();
        assert_eq!(l.on_advert(&ad("m1", 100, 1), 500), AdvertOutcome::Replayed);
        let mut older = ad("m1", 100, 0);
        older.aliases.clear();
        assert_eq!(l.on_advert(&older, 500), AdvertOutcome::Replayed);
        assert_eq!(l.view("m1").unwrap(), &before);
        // A later one is accepted, unchanged.
        assert_eq!(
            l.on_advert(&ad("m1", 100, 2), 1000),
            AdvertOutcome::Accepted { changed: false }
        );
        assert_eq!(l.view("m1").unwrap().deadline_ms, Some(4000));
        // Gaps in the sequence are fine (lost datagrams).
        assert_eq!(
            l.on_advert(&ad("m1", 100, 10), 2000),
            AdvertOutcome::Accepted { changed: false }
        );
        assert_eq!(
            l.on_advert(&ad("m1", 100, 9), 2001),
            AdvertOutcome::Replayed
        );
        let c = l.counters();
        assert_eq!((c.accepted, c.replayed, c.changed), (3, 3, 1));
    }

    #[test]
    fn boots() {
        let mut l = lv();
        l.on_advert(&ad("m1", 100, 50), 0);
        // A restarted member: larger boot id, seq starts again at 1.
        assert_eq!(
            l.on_advert(&ad("m1", 200, 1), 10),
            AdvertOutcome::Accepted { changed: false }
        );
        assert_eq!(l.view("m1").unwrap().boot_id, 200);
        // Anything from the older boot is refused, whatever its seq.
        assert_eq!(
            l.on_advert(&ad("m1", 100, 51), 20),
            AdvertOutcome::StaleBoot
        );
        assert_eq!(
            l.on_advert(&goodbye("m1", 100, 52), 20),
            AdvertOutcome::StaleBoot
        );
        assert!(l.is_up("m1").unwrap());
        assert_eq!(l.counters().stale_boot, 2);
    }

    #[test]
    fn expiry_at_the_deadline_not_before() {
        let mut l = lv();
        l.on_advert(&ad("m1", 1, 1), 1_000);
        let mut fast = ad("m2", 1, 1);
        fast.interval_ms = 200;
        l.on_advert(&fast, 1_000);
        assert_eq!(l.next_deadline(), Some(1_600));
        assert!(l.expire(1_599).is_empty());
        assert_eq!(l.expire(1_600), vec!["m2".to_string()]);
        assert!(l.expire(1_600).is_empty(), "reported once");
        assert!(l.expire(3_999).is_empty());
        assert_eq!(l.is_up("m1"), Some(true));
        assert_eq!(l.expire(4_000), vec!["m1".to_string()]);
        assert_eq!(l.is_up("m1"), Some(false));
        assert_eq!(l.counters().expired, 2);
        assert_eq!(l.next_deadline(), None);
        // The last report is kept while down.
        assert_eq!(l.view("m1").unwrap().joined().count(), 1);
        // Up again on the next valid advert (a change: it was down).
        assert_eq!(
            l.on_advert(&ad("m1", 1, 2), 10_000),
            AdvertOutcome::Accepted { changed: true }
        );
        assert_eq!(l.view("m1").unwrap().deadline_ms, Some(13_000));
        // But not on a replay of an advert it sent before it went quiet.
        assert_eq!(l.on_advert(&fast, 10_000), AdvertOutcome::Replayed);
        assert_eq!(l.is_up("m2"), Some(false));
    }

    #[test]
    fn dead_misses_and_interval_bounds() {
        let mut l = Liveness::new(&["m1".to_string()], 5);
        let mut a = ad("m1", 1, 1);
        a.interval_ms = 10; // below the range: treated as 100 ms
        l.on_advert(&a, 0);
        assert_eq!(l.view("m1").unwrap().deadline_ms, Some(500));
        a.seq = 2;
        a.interval_ms = 1_000_000; // above: 60 s
        l.on_advert(&a, 0);
        assert_eq!(l.view("m1").unwrap().deadline_ms, Some(300_000));
        assert_eq!(Liveness::new(&[], 0).dead_misses(), 1);
    }

    #[test]
    fn goodbye_is_down_at_once() {
        let mut l = lv();
        l.on_advert(&ad("m1", 1, 1), 0);
        assert_eq!(
            l.on_advert(&goodbye("m1", 1, 2), 100),
            AdvertOutcome::Left { changed: true }
        );
        let v = l.view("m1").unwrap();
        assert!(!v.up);
        assert!(v.aliases.is_empty() && v.ports.is_empty());
        assert_eq!(v.deadline_ms, None);
        assert!(l.expire(u64::MAX).is_empty());
        // A replayed advert from before the goodbye does not bring it back.
        assert_eq!(l.on_advert(&ad("m1", 1, 1), 200), AdvertOutcome::Replayed);
        assert_eq!(l.is_up("m1"), Some(false));
        // A second goodbye changes nothing.
        assert_eq!(
            l.on_advert(&goodbye("m1", 1, 3), 300),
            AdvertOutcome::Left { changed: false }
        );
        // The member's next boot brings it back.
        assert_eq!(
            l.on_advert(&ad("m1", 2, 1), 400),
            AdvertOutcome::Accepted { changed: true }
        );
        assert_eq!(l.counters().goodbye, 2);
    }

    #[test]
    fn leaving_one_alias_is_a_change() {
        let mut l = lv();
        let mut a = ad("m1", 1, 1);
        a.aliases.push(AliasEntry {
            addr: A2,
            joined: true,
            selw: 2,
            selp: 5,
        });
        l.on_advert(&a, 0);
        assert_eq!(l.view("m1").unwrap().joined().count(), 2);
        // `cluamgr -a alias=A2,leave` on the member: sent at once with joined = false.
        a.seq = 2;
        a.aliases[1].joined = false;
        assert!(l.on_advert(&a, 10).changed());
        let v = l.view("m1").unwrap();
        assert_eq!(v.joined().map(|e| e.addr).collect::<Vec<_>>(), vec![A1]);
        assert_eq!(v.aliases.len(), 2);
    }

    #[test]
    fn changed_versus_unchanged() {
        let mut l = lv();
        let mut a = ad("m1", 1, 1);
        a.aliases.push(AliasEntry {
            addr: A2,
            joined: true,
            selw: 2,
            selp: 5,
        });
        a.ports.push((Proto::Udp, 53));
        assert!(l.on_advert(&a, 0).changed());
        // Same content in another order: unchanged.
        a.seq += 1;
        a.aliases.reverse();
        a.ports.reverse();
        assert_eq!(
            l.on_advert(&a, 1),
            AdvertOutcome::Accepted { changed: false }
        );
        // The interval alone is not a snapshot change.
        a.seq += 1;
        a.interval_ms = 500;
        assert_eq!(
            l.on_advert(&a, 2),
            AdvertOutcome::Accepted { changed: false }
        );
        // selw, selp, a port: changes.
        for f in [
            (|a: &mut AdvertRepr| a.aliases[0].selw = 9) as fn(&mut AdvertRepr),
            |a| a.aliases[0].selp = 9,
            |a| a.ports.push((Proto::Tcp, 443)),
            |a| a.ports.clear(),
        ] {
            a.seq += 1;
            f(&mut a);
            assert_eq!(
                l.on_advert(&a, 3),
                AdvertOutcome::Accepted { changed: true }
            );
        }
    }

    #[test]
    fn unknown_members_are_counted_and_ignored() {
        let mut l = lv();
        assert_eq!(
            l.on_advert(&ad("m9", 1, 1), 0),
            AdvertOutcome::UnknownMember
        );
        assert_eq!(
            l.on_advert(&goodbye("m9", 1, 2), 0),
            AdvertOutcome::UnknownMember
        );
        assert!(l.view("m9").is_none());
        assert_eq!(l.counters().unknown_member, 2);
    }

    #[test]
    fn datagrams_end_to_end() {
        let mut l = lv();
        let bytes = ad("m1", 1, 1).emit_signed(KEY).unwrap();
        assert_eq!(
            l.on_datagram(&bytes, KEY, 0),
            AdvertOutcome::Accepted { changed: true }
        );
        // The same datagram captured and sent again.
        assert_eq!(l.on_datagram(&bytes, KEY, 10), AdvertOutcome::Replayed);
        // Forged (signed with another key), corrupted, truncated, oversized: counted, no change.
        let before = l.view("m1").unwrap().clone();
        let forged = goodbye("m1", 1, 2)
            .emit_signed(b"not the cluster key at all")
            .unwrap();
        assert_eq!(
            l.on_datagram(&forged, KEY, 20),
            AdvertOutcome::Rejected(AdvertError::BadTag)
        );
        let mut flipped = goodbye("m1", 1, 3).emit_signed(KEY).unwrap();
        flipped[100] ^= 0x10;
        assert_eq!(
            l.on_datagram(&flipped, KEY, 20),
            AdvertOutcome::Rejected(AdvertError::BadTag)
        );
        let g = goodbye("m1", 1, 4).emit_signed(KEY).unwrap();
        assert_eq!(
            l.on_datagram(&g[..g.len() - 1], KEY, 20),
            AdvertOutcome::Rejected(AdvertError::Truncated)
        );
        assert_eq!(
            l.on_datagram(&vec![0u8; 70_000], KEY, 20),
            AdvertOutcome::Rejected(AdvertError::Oversized)
        );
        assert_eq!(l.view("m1").unwrap(), &before);
        let c = l.counters();
        assert_eq!(c.rejected(AdvertError::BadTag), 2);
        assert_eq!(c.rejected(AdvertError::Truncated), 1);
        assert_eq!(c.rejected(AdvertError::Oversized), 1);
        // The genuine goodbye still works afterwards (the refused ones did not use up seq 4).
        assert_eq!(
            l.on_datagram(&g, KEY, 30),
            AdvertOutcome::Left { changed: true }
        );
        let labels: Vec<&str> = l.counters().iter().map(|(n, _)| n).collect();
        assert!(labels.contains(&"bad_tag") && labels.contains(&"replayed"));
        assert_eq!(labels.len(), 7 + AdvertError::COUNT);
    }

    #[test]
    fn outcome_names() {
        assert_eq!(
            AdvertOutcome::Accepted { changed: false }.name(),
            "accepted"
        );
        assert_eq!(AdvertOutcome::Left { changed: true }.name(), "goodbye");
        assert_eq!(
            AdvertOutcome::Rejected(AdvertError::BadTag).name(),
            "bad_tag"
        );
        assert!(!AdvertOutcome::Replayed.changed());
    }
}
