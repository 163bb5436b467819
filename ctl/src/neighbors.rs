//! Member MACs learned by ARP on the interconnect (issue 8): a `[[member]]` without `mac` is
//! resolved, kept fresh, and followed when its MAC changes. Sans-I/O like the rest of the
//! control plane: ARP packets and `now` in, request frames, events and the members' MAC state
//! out ([`Neighbors::apply`] writes it into the model, from which the snapshot is built).
//!
//! Per member without a configured MAC, one entry, in one of these states:
//!
//! | state | frames to it | requests |
//! | --- | --- | --- |
//! | unresolved (never heard) | none: no new flows (CA3) | broadcast, at start, then every `retry_ms` |
//! | reachable (heard within `refresh_ms`) | to the learned MAC | none |
//! | probing (refresh due, unanswered) | to the learned MAC | one unicast to it, then broadcasts every `retry_ms` |
//! | expired (`probes` requests unanswered) | established flows to the last MAC, no new flows | broadcast every `retry_ms` |
//!
//! Invariants:
//! - Entries exist only for configured members without `mac`, made once at start: no packet
//!   can add one, so the table is bounded by the configuration.
//! - A configured `mac` is used as is and never overridden by ARP: such members have no entry,
//!   and their ARP packets are ignored (counted).
//! - A MAC is learned only from a well-formed Ethernet/IPv4 ARP packet, request or reply
//!   (gratuitous ARP included), whose sender protocol address is a member's address and that
//!   arrived on that member's port, with a unicast sender hardware address. Everything else is
//!   ignored and counted. A different MAC is taken at once (the member's NIC changed, or it
//!   moved) and logged with old and new MAC; ARP is unauthenticated, so whoever can send on
//!   the interconnect can redirect a member's traffic, as with any ARP host.
//! - At most one request per entry per `retry_ms`, and at most `max_per_tick` per tick (the
//!   rest go on later ticks, round robin, so no entry starves).
//! - The model changes (and a snapshot is published) only when what the snapshot depends on
//!   changes: resolved, MAC changed, expired. Refreshes that get an answer change nothing.
//!   Rebuilds are at most one per `min_publish_ms`, so a flood of changing MACs cannot make
//!   the control thread rebuild snapshots without pause.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clua_pipeline::snapshot::{PortId, Snapshot};
use clua_pipeline::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use clua_pipeline::wire::ethernet::{parse_l2, EtherType, BROADCAST};

use crate::apply::ControlState;
use crate::arp::{request, ARP_FRAME_LEN};
use crate::model::{fmt_mac, Cluster, Mac, MemberMac};

/// Timing and bounds of the resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighborSettings {
    /// Interval between requests while a MAC is unknown or a refresh is unanswered.
    pub retry_ms: u64,
    /// How long a MAC heard from stays trusted before it is probed again.
    pub refresh_ms: u64,
    /// Unanswered requests after a due refresh before the member's MAC expires (no new
    /// flows to it).
    pub probes: u32,
    /// Most requests sent in one tick.
    pub max_per_tick: usize,
    /// Least time between two model changes caused by ARP.
    pub min_publish_ms: u64,
}

impl Default for NeighborSettings {
    fn default() -> Self {
        NeighborSettings {
            retry_ms: 1000,
            refresh_ms: 30_000,
            probes: 3,
            max_per_tick: 64,
            min_publish_ms: 100,
        }
    }
}

/// The resolver's counters, readable from other threads.
#[derive(Debug, Default)]
pub struct NeighborCounters {
    /// ARP requests sent to resolve or refresh member MACs.
    pub requests_sent: AtomicU64,
    /// Member MACs learned where none was known (at start, or after expiry).
    pub learned: AtomicU64,
    /// Member MACs that changed to a different one.
    pub changed: AtomicU64,
    /// Member MACs that expired: `probes` requests went unanswered.
    pub expired: AtomicU64,
    /// ARP packets from a member that kept its MAC fresh (including those that taught one).
    pub heard: AtomicU64,
    /// ARP packets that taught nothing: not from a member without configured MAC, wrong
    /// port, multicast or zero sender MAC, malformed.
    pub ignored: AtomicU64,
}

impl NeighborCounters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Something worth a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NeighborEvent {
    /// A member's MAC became known (first time, or again after it expired).
    Learned {
        /// Member name.
        member: String,
        /// The MAC.
        mac: Mac,
    },
    /// A member's MAC changed; frames go to the new one at once.
    Changed {
        /// Member name.
        member: String,
        /// The MAC used until now.
        old: Mac,
        /// The MAC used from now on.
        new: Mac,
    },
    /// A member stopped answering ARP: no new flows to it until it answers (CA3).
    Expired {
        /// Member name.
        member: String,
        /// The last MAC learned (established flows keep going there).
        mac: Mac,
        /// Requests that went unanswered.
        unanswered: u32,
    },
    /// The learned MACs could not be put in force (the rebuild failed); retried.
    NotApplied {
        /// Why.
        why: String,
    },
}

impl NeighborEvent {
    /// Whether this is a warning rather than information.
    pub fn is_warning(&self) -> bool {
        !matches!(self, NeighborEvent::Learned { .. })
    }
}

impl fmt::Display for NeighborEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NeighborEvent::Learned { member, mac } => {
                write!(f, "member {member} is at {} (learned by ARP)", fmt_mac(mac))
            }
            NeighborEvent::Changed { member, old, new } => write!(
                f,
                "member {member} moved from {} to {} (learned by ARP)",
                fmt_mac(old),
                fmt_mac(new)
            ),
            NeighborEvent::Expired {
                member,
                mac,
                unanswered,
            } => write!(
                f,
                "member {member} ({}) answered none of {unanswered} ARP requests: no new flows go to it until it answers",
                fmt_mac(mac)
            ),
            NeighborEvent::NotApplied { why } => {
                write!(f, "member MACs learned by ARP not applied, retrying: {why}")
            }
        }
    }
}

/// What [`Neighbors::on_arp`] made of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// From a member without configured MAC: its entry is fresh; maybe something to log.
    Member(Option<NeighborEvent>),
    /// Nothing learned (counted in [`NeighborCounters::ignored`]).
    Ignored,
}

/// An ARP request to transmit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The member's port.
    pub port: PortId,
    /// The Ethernet frame.
    pub frame: [u8; ARP_FRAME_LEN],
}

/// What an entry knows, see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborState {
    /// Never heard.
    Unresolved,
    /// Heard within the refresh interval.
    Reachable(Mac),
    /// Refresh due; `unanswered` requests sent since.
    Probing {
        /// The MAC still in use.
        mac: Mac,
        /// Requests sent since the refresh was due.
        unanswered: u32,
    },
    /// Stopped answering; the last MAC learned.
    Expired(Mac),
}

impl NeighborState {
    /// The model's view of it.
    pub fn member_mac(&self) -> MemberMac {
        match *self {
            NeighborState::Unresolved => MemberMac::Unresolved,
            NeighborState::Reachable(m) | NeighborState::Probing { mac: m, .. } => {
                MemberMac::Learned(m)
            }
            NeighborState::Expired(m) => MemberMac::Expired(m),
        }
    }

    /// The MAC in use, if any.
    pub fn mac(&self) -> Option<Mac> {
        match *self {
            NeighborState::Unresolved => None,
            NeighborState::Reachable(m)
            | NeighborState::Probing { mac: m, .. }
            | NeighborState::Expired(m) => Some(m),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    /// Index in `Cluster::members` (its member id).
    member: usize,
    name: String,
    port: PortId,
    addr: Ipv4Addr,
    state: NeighborState,
    /// When the next request is due.
    due_at: u64,
}

/// The resolver. See the module docs.
#[derive(Debug)]
pub struct Neighbors {
    settings: NeighborSettings,
    entries: Vec<Entry>,
    by_addr: HashMap<(PortId, Ipv4Addr), Vec<usize>>,
    counters: Arc<NeighborCounters>,
    /// Where the next tick starts looking for due entries (round robin under the budget).
    cursor: usize,
    /// The model's view differs from the entries.
    changed: bool,
    /// The model takes no change before this (`min_publish_ms` after the last one).
    not_before: u64,
}

impl Neighbors {
    /// Entries for every member of `cluster` without a configured MAC, all unresolved and due
    /// at once.
    pub fn new(
        cluster: &Cluster,
        settings: NeighborSettings,
        counters: Arc<NeighborCounters>,
    ) -> Neighbors {
        let mut entries = Vec::new();
        let mut by_addr: HashMap<(PortId, Ipv4Addr), Vec<usize>> = HashMap::new();
        for (i, m) in cluster.members.iter().enumerate() {
            if m.mac.configured().is_some() {
                continue;
            }
            let Some(port) = cluster.port_index(&m.port) else {
                continue;
            };
            let port = port as PortId;
            by_addr
                .entry((port, m.address))
                .or_default()
                .push(entries.len());
            entries.push(Entry {
                member: i,
                name: m.name.clone(),
                port,
                addr: m.address,
                state: NeighborState::Unresolved,
                due_at: 0,
            });
        }
        Neighbors {
            settings,
            entries,
            by_addr,
            counters,
            cursor: 0,
            changed: false,
            not_before: 0,
        }
    }

    /// Follows a reloaded cluster (issue 11): entries for its members without a configured
    /// MAC, each keeping what was known of the same member (name, port and address) before;
    /// new ones unresolved and due at once.
    pub fn reconfigure(&mut self, cluster: &Cluster) {
        let mut next = Neighbors::new(cluster, self.settings, self.counters.clone());
        for e in &mut next.entries {
            if let Some(o) = self
                .entries
                .iter()
                .find(|o| o.name == e.name && o.port == e.port && o.addr == e.addr)
            {
                e.state = o.state;
                e.due_at = o.due_at;
            }
        }
        next.changed = self.changed;
        next.not_before = self.not_before;
        *self = next;
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<NeighborCounters> {
        &self.counters
    }

    /// The state of member `name`'s entry (`None`: it has a configured MAC, or no such member).
    pub fn state(&self, name: &str) -> Option<NeighborState> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.state)
    }

    /// An ARP packet received on `port` at `now_ms` (requests and replies; the frame is only
    /// read). Call before anything rewrites it.
    pub fn on_arp(&mut self, port: PortId, frame: &[u8], now_ms: u64) -> Heard {
        let c = &self.counters;
        let Some(sender) = arp_sender(frame) else {
            NeighborCounters::bump(&c.ignored);
            return Heard::Ignored;
        };
        let (mac, addr) = sender;
        let Some(list) = self.by_addr.get(&(port, addr)) else {
            NeighborCounters::bump(&c.ignored);
            return Heard::Ignored;
        };
        if mac[0] & 1 == 1 || mac == [0; 6] {
            NeighborCounters::bump(&c.ignored);
            return Heard::Ignored;
        }
        NeighborCounters::bump(&c.heard);
        let mut event = None;
        for &i in list {
            let e = &mut self.entries[i];
            let before = e.state;
            e.state = NeighborState::Reachable(mac);
            e.due_at = now_ms.saturating_add(self.settings.refresh_ms);
            match before {
                NeighborState::Unresolved | NeighborState::Expired(_) => {
                    NeighborCounters::bump(&c.learned);
                    self.changed = true;
                    event = Some(NeighborEvent::Learned {
                        member: e.name.clone(),
                        mac,
                    });
                }
                NeighborState::Reachable(old) | NeighborState::Probing { mac: old, .. }
                    if old != mac =>
                {
                    NeighborCounters::bump(&c.changed);
                    self.changed = true;
                    event = Some(NeighborEvent::Changed {
                        member: e.name.clone(),
                        old,
                        new: mac,
                    });
                }
                NeighborState::Reachable(_) | NeighborState::Probing { .. } => {}
            }
        }
        Heard::Member(event)
    }

    /// The passage of time: requests that are due (at most `max_per_tick`), for which
    /// `snapshot` gives each port's MAC and address, and expiries.
    pub fn on_tick(
        &mut self,
        now_ms: u64,
        snapshot: &Snapshot,
        requests: &mut Vec<Request>,
        events: &mut Vec<NeighborEvent>,
    ) {
        let n = self.entries.len();
        let s = self.settings;
        let mut sent = 0;
        let start = self.cursor;
        for k in 0..n {
            if sent == s.max_per_tick {
                break;
            }
            let i = (start + k) % n;
            let e = &mut self.entries[i];
            if e.due_at > now_ms {
                continue;
            }
            // Where the request goes: a refresh asks the known MAC first (RFC 5227-style
            // unicast probe, the member's neighbours are not bothered); after that, and while
            // unknown, everyone, so a member whose MAC changed is found again.
            let to = match e.state {
                NeighborState::Unresolved | NeighborState::Expired(_) => BROADCAST,
                NeighborState::Reachable(mac) => {
                    e.state = NeighborState::Probing { mac, unanswered: 1 };
                    mac
                }
                NeighborState::Probing { mac, unanswered } if unanswered >= s.probes => {
                    e.state = NeighborState::Expired(mac);
                    NeighborCounters::bump(&self.counters.expired);
                    self.changed = true;
                    events.push(NeighborEvent::Expired {
                        member: e.name.clone(),
                        mac,
                        unanswered,
                    });
                    BROADCAST
                }
                NeighborState::Probing { mac, unanswered } => {
                    e.state = NeighborState::Probing {
                        mac,
                        unanswered: unanswered + 1,
                    };
                    BROADCAST
                }
            };
            e.due_at = now_ms.saturating_add(s.retry_ms);
            let Some(p) = snapshot.ports.get(e.port as usize) else {
                continue;
            };
            let mut frame = [0u8; ARP_FRAME_LEN];
            request(
                &mut frame,
                to,
                p.mac,
                p.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED),
                e.addr,
            );
            NeighborCounters::bump(&self.counters.requests_sent);
            requests.push(Request {
                port: e.port,
                frame,
            });
            sent += 1;
            self.cursor = (i + 1) % n;
        }
    }

    /// Whether the model should take the entries' state now (something changed, and the
    /// last change is at least `min_publish_ms` old). Then call [`Neighbors::apply`] and
    /// publish; [`Neighbors::applied`] when that worked.
    pub fn due(&self, now_ms: u64) -> bool {
        self.changed && now_ms >= self.not_before
    }

    /// The model took the entries' state at `now_ms`.
    pub fn applied(&mut self, now_ms: u64) {
        self.changed = false;
        self.not_before = now_ms.saturating_add(self.settings.min_publish_ms);
    }

    /// A rebuild failed: try again at `at_ms`.
    pub fn retry_at(&mut self, at_ms: u64) {
        self.not_before = at_ms;
    }

    /// Writes every entry's MAC state into the members of `state` (members with a configured
    /// MAC are left alone).
    pub fn apply(&self, state: &mut ControlState) {
        for e in &self.entries {
            if let Some(m) = state.cluster.members.get_mut(e.member) {
                if m.name == e.name && m.mac.configured().is_none() {
                    m.mac = e.state.member_mac();
                }
            }
        }
    }
}

/// The sender hardware and protocol address of a well-formed Ethernet/IPv4 ARP packet (also
/// the health probes' ARP answer, crate::members::health).
pub(crate) fn arp_sender(frame: &[u8]) -> Option<(Mac, Ipv4Addr)> {
    let l2 = parse_l2(frame).ok()?;
    if l2.ethertype != EtherType::ARP {
        return None;
    }
    let pkt = ArpPacket::new_checked(frame.get(l2.l3_offset..)?).ok()?;
    let repr = ArpRepr::parse(&pkt).ok()?;
    if let ArpOperation::Unknown(_) = repr.operation {
        return None;
    }
    Some((repr.source_hardware_addr, repr.source_protocol_addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MemberSpec, PortSpec, Prefix};
    use clua_pipeline::snapshot::{Encap, PortRole};

    fn cluster(members: u8, ic_address: Option<&str>) -> Cluster {
        let port = |name: &str, role, address: Option<&str>| PortSpec {
            name: name.into(),
            role,
            address: address.map(|a| a.parse::<Prefix>().unwrap()),
            mtu: 1500,
            mac: None,
            flow_source: None,
        };
        Cluster {
            name: "t".into(),
            default_alias: "a".into(),
            max_aliases: 8,
            ports: vec![
                port("client", PortRole::Client, Some("198.51.100.2/24")),
                port("ic0", PortRole::Interconnect, ic_address),
            ],
            members: (1..=members)
                .map(|i| MemberSpec {
                    name: format!("m{i}"),
                    port: "ic0".into(),
                    address: Ipv4Addr::new(192, 0, 2, 10 + i),
                    // Every third configured: no entry, never touched.
                    mac: if i % 3 == 0 {
                        MemberMac::Configured([2, 0, 0, 0, 1, i])
                    } else {
                        MemberMac::Unresolved
                    },
                    encap: Encap::L2,
                    up: true,
                    agent: false,
                    listening: None,
                    out_alias: None,
                })
                .collect(),
            aliases: vec![],
            services: vec![],
            advert_port: 0,
        }
    }

    fn snapshot(c: &Cluster) -> Snapshot {
        c.snapshot(1, &[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]])
            .unwrap()
    }

    fn targets(r: &[Request]) -> Vec<u8> {
        r.iter().map(|r| r.frame[41]).collect()
    }

    #[test]
    fn requests_per_tick_are_bounded_and_taken_round_robin() {
        let c = cluster(9, Some("192.0.2.2/24"));
        let s = snapshot(&c);
        let settings = NeighborSettings {
            max_per_tick: 4,
            ..NeighborSettings::default()
        };
        let mut n = Neighbors::new(&c, settings, Arc::default());
        // m3, m6, m9 are configured: six entries.
        let (mut r, mut ev) = (vec![], vec![]);
        n.on_tick(0, &s, &mut r, &mut ev);
        assert_eq!(targets(&r), [11, 12, 14, 15]);
        r.clear();
        n.on_tick(1, &s, &mut r, &mut ev);
        assert_eq!(targets(&r), [17, 18], "the rest, on the next tick");
        r.clear();
        n.on_tick(2, &s, &mut r, &mut ev);
        assert!(r.is_empty(), "one request per entry per retry interval");
        n.on_tick(1000, &s, &mut r, &mut ev);
        n.on_tick(1001, &s, &mut r, &mut ev);
        assert_eq!(targets(&r), [11, 12, 14, 15, 17, 18]);
        assert!(ev.is_empty());
        assert_eq!(n.counters().requests_sent.load(Ordering::Relaxed), 12);
    }

    #[test]
    fn a_port_without_address_asks_with_an_rfc5227_probe() {
        let c = cluster(1, None);
        let s = snapshot(&c);
        let mut n = Neighbors::new(&c, NeighborSettings::default(), Arc::default());
        let (mut r, mut ev) = (vec![], vec![]);
        n.on_tick(0, &s, &mut r, &mut ev);
        let mut want = vec![0xff; 6];
        want.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        want.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0, 0, 0, 0]); // sender 0.0.0.0
        want.extend_from_slice(&[0; 6]);
        want.extend_from_slice(&[192, 0, 2, 11]);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].port, r[0].frame.to_vec()), (1, want));
    }

    #[test]
    fn apply_writes_learned_state_and_leaves_configured_macs_alone() {
        let c = cluster(3, Some("192.0.2.2/24"));
        let mut n = Neighbors::new(&c, NeighborSettings::default(), Arc::default());
        let mut state = ControlState {
            cluster: c,
            services_file: None,
            resvok: false,
        };
        let mut reply = vec![0u8; ARP_FRAME_LEN];
        let mut buf = [0u8; ARP_FRAME_LEN];
        // Any sender at m1's address on ic0: a request is as good as a reply.
        request(
            &mut buf,
            BROADCAST,
            [2, 0, 0, 0, 7, 1],
            Ipv4Addr::new(192, 0, 2, 11),
            Ipv4Addr::new(192, 0, 2, 2),
        );
        reply.copy_from_slice(&buf);
        assert!(!n.due(0));
        assert!(matches!(n.on_arp(1, &reply, 0), Heard::Member(Some(_))));
        assert!(n.due(0));
        n.apply(&mut state);
        let macs: Vec<MemberMac> = state.cluster.members.iter().map(|m| m.mac).collect();
        assert_eq!(
            macs,
            [
                MemberMac::Learned([2, 0, 0, 0, 7, 1]),
                MemberMac::Unresolved,
                MemberMac::Configured([2, 0, 0, 0, 1, 3])
            ]
        );
        n.applied(0);
        assert!(!n.due(0));
        assert_eq!(
            n.state("m1"),
            Some(NeighborState::Reachable([2, 0, 0, 0, 7, 1]))
        );
        assert_eq!(n.state("m3"), None, "configured: no entry");
    }
}
