//! Router liveness (issue 8 "Router protocol"): which peer routers are alive and what they say,
//! from their signed announcements (docs/router-protocol.md), and this router's own
//! announcements.
//!
//! Invariants:
//! - A peer is live from its first authentic, fresh announcement until `dead_misses` of *its*
//!   intervals pass without another (or at once on its goodbye). Its view is what its last
//!   accepted announcement said, nothing older.
//! - Forged (bad tag), replayed (same boot, seq not above the last accepted), stale-boot and
//!   malformed messages are counted and change nothing; nor does a message carrying this
//!   router's own node name (our own broadcast looped back, or a misconfigured peer: counted as
//!   `own_name`).
//! - The replay state of a peer outlives its death: a replay of a dead peer's old message
//!   cannot revive it.
//! - A router with more aliases than fit one frame announces them over several messages per
//!   interval (each with every port). So a message adds to the sender's view rather than
//!   replacing it, and each alias entry ages on its own: an alias the peer stopped announcing
//!   leaves its view `dead_misses` of its intervals after it was last announced.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::election::{AliasView, RouterView, Views};
use super::wire::{Health, RouterAlias, RouterError, RouterKind, RouterPort, RouterRepr};
use crate::signed::{Freshness, ReplayWindow};

/// What a router needs to take part in the router protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterSettings {
    /// This router's node name (unique among the routers of the cluster).
    pub node: String,
    /// The shared HMAC-SHA-256 key (at least `wire::MIN_KEY_LEN` bytes).
    pub key: Vec<u8>,
    /// UDP port of the router protocol (default `wire::ROUTER_PORT`).
    pub udp_port: u16,
    /// The interval between this router's announcements (`wire::INTERVAL_RANGE`).
    pub interval_ms: u32,
    /// A peer is dead after this many of its intervals without an announcement.
    pub dead_misses: u32,
    /// This start's boot id (larger than every earlier start's).
    pub boot_id: u64,
    /// Gratuitous ARPs a new proxy-ARP master sends per alias.
    pub garp_count: u32,
    /// Spacing of those gratuitous ARPs.
    pub garp_interval_ms: u32,
    /// The name of the interconnect port the protocol runs on (it needs an address).
    pub interconnect: String,
}

/// What one peer said last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its boot id.
    pub boot_id: u64,
    /// Its last accepted seq.
    pub seq: u64,
    /// Its interval.
    pub interval_ms: u32,
    /// Its health.
    pub health: Health,
    /// When its last announcement was accepted.
    pub heard_ms: u64,
    /// The aliases it specifies or joins, each with when it was last announced.
    pub aliases: BTreeMap<Ipv4Addr, (RouterAlias, u64)>,
    /// Its client-facing ports.
    pub ports: Vec<RouterPort>,
}

impl Peer {
    fn dead_at(&self, dead_misses: u32) -> u64 {
        self.heard_ms + u64::from(self.interval_ms) * u64::from(dead_misses)
    }
}

/// Counters of the router protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterCounters {
    /// Announcements and goodbyes sent.
    pub sent: u64,
    /// Messages accepted.
    pub accepted: u64,
    /// Messages refused by the wire checks, by [`RouterError`] index.
    pub refused: [u64; RouterError::COUNT],
    /// Authentic messages refused as replays (same boot, seq not above the last).
    pub replayed: u64,
    /// Authentic messages from an older boot than one already seen.
    pub stale_boot: u64,
    /// Messages carrying this router's own node name.
    pub own_name: u64,
    /// Peers that became live.
    pub peers_up: u64,
    /// Peers that died (dead interval passed) or said goodbye.
    pub peers_down: u64,
}

impl RouterCounters {
    /// Every refusal label with its count (the wire's, then `replayed`, `stale_boot`,
    /// `own_name`).
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RouterError::ALL
            .iter()
            .map(|e| (e.name(), self.refused[e.index()]))
            .chain([
                ("replayed", self.replayed),
                ("stale_boot", self.stale_boot),
                ("own_name", self.own_name),
            ])
    }
}

/// What [`RouterTracker::expire`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    /// Peers that died.
    pub dead: Vec<String>,
    /// Whether alias entries of live peers aged out.
    pub aged: bool,
}

impl Expired {
    /// Whether the live views changed.
    pub fn changed(&self) -> bool {
        !self.dead.is_empty() || self.aged
    }
}

/// What a received datagram did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouterOutcome {
    /// A peer we did not consider live is live now.
    PeerUp(String),
    /// A live peer's announcement; `changed` when its view (aliases, ports, health, claims)
    /// differs from the one before.
    Refreshed {
        /// The peer.
        node: String,
        /// Whether what it says changed.
        changed: bool,
    },
    /// A peer said goodbye: dead at once.
    PeerGone(String),
    /// Refused (counted); nothing changed.
    Refused,
}

impl RouterOutcome {
    /// Whether the live views changed (the election must run again).
    pub fn changed(&self) -> bool {
        match self {
            RouterOutcome::PeerUp(_) | RouterOutcome::PeerGone(_) => true,
            RouterOutcome::Refreshed { changed, .. } => *changed,
            RouterOutcome::Refused => false,
        }
    }
}

/// The peers of this router and its own announcement sequence.
#[derive(Debug)]
pub struct RouterTracker {
    settings: RouterSettings,
    seq: u64,
    peers: BTreeMap<String, Peer>,
    /// Replay state per node, kept after death (replay protection; a window, since one
    /// interval's messages may arrive out of order).
    replay: BTreeMap<String, ReplayWindow>,
    counters: RouterCounters,
    /// When alias entries are next checked for age.
    next_aging: u64,
}

impl RouterTracker {
    /// A tracker with no peers yet.
    pub fn new(settings: RouterSettings) -> RouterTracker {
        RouterTracker {
            settings,
            seq: 0,
            peers: BTreeMap::new(),
            replay: BTreeMap::new(),
            counters: RouterCounters::default(),
            next_aging: 0,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RouterSettings {
        &self.settings
    }

    /// The live peers by node name.
    pub fn peers(&self) -> &BTreeMap<String, Peer> {
        &self.peers
    }

    /// The counters.
    pub fn counters(&self) -> &RouterCounters {
        &self.counters
    }

    /// How long a peer with `interval_ms` stays live without news; the same for this router as
    /// its peers see it.
    pub fn dead_interval_ms(&self) -> u64 {
        u64::from(self.settings.interval_ms) * u64::from(self.settings.dead_misses)
    }

    /// Counts a message refused before it reached [`RouterTracker::on_datagram`] (its frame).
    pub fn on_refused(&mut self, e: RouterError) {
        self.counters.refused[e.index()] += 1;
    }

    /// A router protocol datagram (the UDP payload) received at `now_ms`.
    pub fn on_datagram(&mut self, bytes: &[u8], now_ms: u64) -> RouterOutcome {
        let repr = match RouterRepr::parse_verified(bytes, &self.settings.key) {
            Ok(r) => r,
            Err(e) => {
                self.counters.refused[e.index()] += 1;
                return RouterOutcome::Refused;
            }
        };
        if repr.node == self.settings.node {
            self.counters.own_name += 1;
            return RouterOutcome::Refused;
        }
        match ReplayWindow::check(self.replay.get(&repr.node).copied(), repr.boot_id, repr.seq) {
            Ok(w) => {
                self.replay.insert(repr.node.clone(), w);
            }
            Err(Freshness::StaleBoot) => {
                self.counters.stale_boot += 1;
                return RouterOutcome::Refused;
            }
            Err(_) => {
                self.counters.replayed += 1;
                return RouterOutcome::Refused;
            }
        }
        self.counters.accepted += 1;
        if repr.kind == RouterKind::Goodbye {
            return if self.peers.remove(&repr.node).is_some() {
                self.counters.peers_down += 1;
                RouterOutcome::PeerGone(repr.node)
            } else {
                RouterOutcome::Refreshed {
                    node: repr.node,
                    changed: false,
                }
            };
        }
        let mut ports = repr.ports;
        ports.sort_by(|a, b| a.name.cmp(&b.name));
        let (peer, up) = match self.peers.get_mut(&repr.node) {
            Some(p) if p.boot_id == repr.boot_id => (p, false),
            _ => {
                // New, or restarted: nothing of its earlier boot's view survives.
                let fresh = Peer {
                    boot_id: repr.boot_id,
                    seq: repr.seq,
                    interval_ms: repr.interval_ms,
                    health: repr.health,
                    heard_ms: now_ms,
                    aliases: BTreeMap::new(),
                    ports: Vec::new(),
                };
                let was = self.peers.insert(repr.node.clone(), fresh).is_some();
                (self.peers.get_mut(&repr.node).expect("inserted"), !was)
            }
        };
        let mut changed = peer.ports != ports || peer.health != repr.health;
        peer.seq = peer.seq.max(repr.seq);
        peer.interval_ms = repr.interval_ms;
        peer.health = repr.health;
        peer.heard_ms = now_ms;
        peer.ports = ports;
        for a in repr.aliases {
            match peer.aliases.insert(a.addr, (a, now_ms)) {
                Some((old, _)) if old == a => {}
                _ => changed = true,
            }
        }
        if up {
            self.counters.peers_up += 1;
            RouterOutcome::PeerUp(repr.node)
        } else {
            RouterOutcome::Refreshed {
                node: repr.node,
                changed,
            }
        }
    }

    /// Peers whose dead interval passed by `now_ms` are dropped (their names are returned),
    /// and so are the alias entries live peers stopped announcing (`aged` tells whether any
    /// went).
    pub fn expire(&mut self, now_ms: u64) -> Expired {
        let misses = self.settings.dead_misses;
        let dead: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.dead_at(misses) <= now_ms)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &dead {
            self.peers.remove(n);
        }
        self.counters.peers_down += dead.len() as u64;
        let mut aged = false;
        // Alias entries age at interval granularity, not every tick: the scan is as long as
        // the peers' aliases (10,000s), and an entry's life is several intervals anyway.
        if now_ms < self.next_aging {
            return Expired { dead, aged };
        }
        self.next_aging = now_ms + u64::from(self.settings.interval_ms.min(100)) / 2;
        for p in self.peers.values_mut() {
            let life = u64::from(p.interval_ms) * u64::from(misses);
            let before = p.aliases.len();
            p.aliases.retain(|_, (_, heard)| *heard + life > now_ms);
            aged |= p.aliases.len() != before;
        }
        Expired { dead, aged }
    }

    /// The earliest time a live peer dies without news.
    pub fn next_deadline(&self) -> Option<u64> {
        let misses = self.settings.dead_misses;
        self.peers.values().map(|p| p.dead_at(misses)).min()
    }

    /// This router's next message (signed UDP payload): an announcement of `aliases` and
    /// `ports`, or a goodbye. Each call uses the next seq.
    ///
    /// # Errors
    /// What [`RouterRepr::emit_signed`] refuses (a weak key, too many aliases or ports for one
    /// message): a configuration the caller validated cannot hit these.
    pub fn message(
        &mut self,
        kind: RouterKind,
        health: Health,
        aliases: Vec<RouterAlias>,
        ports: Vec<RouterPort>,
    ) -> Result<Vec<u8>, RouterError> {
        self.seq += 1;
        let repr = RouterRepr {
            kind,
            health,
            node: self.settings.node.clone(),
            boot_id: self.settings.boot_id,
            seq: self.seq,
            interval_ms: self.settings.interval_ms,
            aliases,
            ports,
        };
        let bytes = repr.emit_signed(&self.settings.key)?;
        self.counters.sent += 1;
        Ok(bytes)
    }

    /// The election's input: every live peer's view plus `own` (this router's), keyed by node
    /// name, and the current masters the peers claim (with `own_claims`, this router's). An
    /// alias two routers claim (after a partition heals) counts as held by the claimant the
    /// election would prefer: highest rpri, then node name — every router computes the same.
    pub fn views(
        &self,
        own: RouterView,
        own_claims: &BTreeSet<Ipv4Addr>,
    ) -> (Views, super::election::Masters) {
        let mut views = Views::new();
        let mut claims: BTreeMap<Ipv4Addr, (u32, std::cmp::Reverse<String>)> = BTreeMap::new();
        let mut claim = |alias: Ipv4Addr, rpri: u32, node: &str| {
            let c = (rpri, std::cmp::Reverse(node.to_string()));
            match claims.get(&alias) {
                Some(best) if *best >= c => {}
                _ => {
                    claims.insert(alias, c);
                }
            }
        };
        for (node, p) in &self.peers {
            let up: Vec<&RouterPort> = p.ports.iter().filter(|port| port.up).collect();
            let mut view = RouterView::default();
            for (a, _) in p.aliases.values() {
                let up_interfaces = up
                    .iter()
                    .filter(|port| same_subnet(port.addr, port.prefix_len, a.addr))
                    .map(|port| port.name.clone())
                    .collect();
                view.aliases.insert(
                    a.addr,
                    AliasView {
                        rpri: a.rpri,
                        up_interfaces,
                    },
                );
                if a.master {
                    claim(a.addr, a.rpri, node);
                }
            }
            views.insert(node.clone(), view);
        }
        for addr in own_claims {
            if let Some(a) = own.aliases.get(addr) {
                claim(*addr, a.rpri, &self.settings.node);
            }
        }
        views.insert(self.settings.node.clone(), own);
        let masters = claims
            .into_iter()
            .map(|(alias, (_, std::cmp::Reverse(node)))| (alias, node))
            .collect();
        (views, masters)
    }
}

/// Whether `addr` is in the subnet `port_addr/len`.
pub fn same_subnet(port_addr: Ipv4Addr, len: u8, addr: Ipv4Addr) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    u32::from(port_addr) & mask == u32::from(addr) & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routers::election::elect;

    const KEY: &[u8] = b"router tracker test key";
    const A: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

    fn settings(node: &str, boot_id: u64) -> RouterSettings {
        RouterSettings {
            node: node.into(),
            key: KEY.to_vec(),
            udp_port: 9472,
            interval_ms: 100,
            dead_misses: 3,
            boot_id,
            garp_count: 3,
            garp_interval_ms: 100,
            interconnect: "ic0".into(),
        }
    }

    fn port(up: bool) -> RouterPort {
        RouterPort {
            name: "client".into(),
            addr: Ipv4Addr::new(198, 51, 100, 3),
            prefix_len: 24,
            up,
        }
    }

    fn alias(rpri: u32, master: bool) -> RouterAlias {
        RouterAlias {
            addr: A,
            rpri,
            joined: false,
            master,
        }
    }

    fn announce(t: &mut RouterTracker, rpri: u32, master: bool) -> Vec<u8> {
        t.message(
            RouterKind::Announce,
            Health::Healthy,
            vec![alias(rpri, master)],
            vec![port(true)],
        )
        .unwrap()
    }

    #[test]
    fn a_peer_lives_until_three_of_its_intervals_pass() {
        let mut r2 = RouterTracker::new(settings("r2", 1));
        let mut r1 = RouterTracker::new(settings("r1", 1));
        let m = announce(&mut r2, 10, false);
        assert_eq!(r1.on_datagram(&m, 1000), RouterOutcome::PeerUp("r2".into()));
        assert_eq!(r1.next_deadline(), Some(1300));
        assert!(!r1.expire(1299).changed());
        let m = announce(&mut r2, 10, false);
        assert_eq!(
            r1.on_datagram(&m, 1200),
            RouterOutcome::Refreshed {
                node: "r2".into(),
                changed: false
            }
        );
        assert!(!r1.expire(1499).changed());
        assert_eq!(r1.expire(1500).dead, vec!["r2".to_string()]);
        assert!(r1.peers().is_empty());
        assert_eq!(r1.counters().peers_up, 1);
        assert_eq!(r1.counters().peers_down, 1);
    }

    #[test]
    fn forged_replayed_stale_and_own_messages_change_nothing() {
        let mut r2 = RouterTracker::new(settings("r2", 5));
        let mut r1 = RouterTracker::new(settings("r1", 1));
        let first = announce(&mut r2, 10, false);
        assert!(r1.on_datagram(&first, 0).changed());
        // Replay of the same message: refused, and the peer is not refreshed by it.
        assert_eq!(r1.on_datagram(&first, 250), RouterOutcome::Refused);
        assert_eq!(r1.counters().replayed, 1);
        assert_eq!(r1.peers()["r2"].heard_ms, 0);
        // Forged: one bit of the tag.
        let mut forged = announce(&mut r2, 90, false);
        let n = forged.len();
        forged[n - 1] ^= 1;
        assert_eq!(r1.on_datagram(&forged, 10), RouterOutcome::Refused);
        assert_eq!(r1.counters().refused[RouterError::BadTag.index()], 1);
        assert_eq!(r1.peers()["r2"].aliases[&A].0.rpri, 10);
        // Under another key.
        let mut other = RouterTracker::new(RouterSettings {
            key: b"another key, 16 bytes at least".to_vec(),
            ..settings("r2", 9)
        });
        assert_eq!(
            r1.on_datagram(&announce(&mut other, 90, false), 20),
            RouterOutcome::Refused
        );
        // An older boot.
        let mut old = RouterTracker::new(settings("r2", 4));
        assert_eq!(
            r1.on_datagram(&announce(&mut old, 90, false), 30),
            RouterOutcome::Refused
        );
        assert_eq!(r1.counters().stale_boot, 1);
        // Our own name.
        let mut twin = RouterTracker::new(settings("r1", 7));
        assert_eq!(
            r1.on_datagram(&announce(&mut twin, 90, false), 40),
            RouterOutcome::Refused
        );
        assert_eq!(r1.counters().own_name, 1);
        // Garbage.
        assert_eq!(r1.on_datagram(b"CLUR", 50), RouterOutcome::Refused);
        assert_eq!(r1.peers().len(), 1);
        assert_eq!(r1.counters().accepted, 1);
        // After death, a replay of the old message cannot revive the peer.
        r1.expire(1000);
        assert_eq!(r1.on_datagram(&first, 1001), RouterOutcome::Refused);
        assert!(r1.peers().is_empty());
        // A restart (larger boot id) is accepted.
        let mut restarted = RouterTracker::new(settings("r2", 6));
        assert!(r1
            .on_datagram(&announce(&mut restarted, 10, false), 1002)
            .changed());
    }

    #[test]
    fn goodbye_is_dead_at_once_and_changes_are_noticed() {
        let mut r2 = RouterTracker::new(settings("r2", 1));
        let mut r1 = RouterTracker::new(settings("r1", 1));
        r1.on_datagram(&announce(&mut r2, 10, false), 0);
        let claimed = announce(&mut r2, 10, true);
        assert!(
            r1.on_datagram(&claimed, 100).changed(),
            "a claim is a change"
        );
        let bye = r2
            .message(RouterKind::Goodbye, Health::Healthy, vec![], vec![])
            .unwrap();
        assert_eq!(
            r1.on_datagram(&bye, 150),
            RouterOutcome::PeerGone("r2".into())
        );
        assert!(r1.peers().is_empty());
    }

    /// CA4/PH1 through the tracker: a peer's claim is the incumbency the election keeps.
    #[test]
    fn views_feed_the_election_with_the_peers_claims() {
        let mut r2 = RouterTracker::new(settings("r2", 1));
        let mut r1 = RouterTracker::new(settings("r1", 1));
        // r2 holds A with rpri 10; r1 has an equal rpri: r2 keeps it (no re-balancing).
        r1.on_datagram(&announce(&mut r2, 10, true), 0);
        let own = |rpri| {
            let mut v = RouterView::default();
            v.aliases.insert(
                A,
                AliasView {
                    rpri,
                    up_interfaces: vec!["client".into()],
                },
            );
            v
        };
        let (views, current) = r1.views(own(10), &BTreeSet::new());
        assert_eq!(current.get(&A).map(String::as_str), Some("r2"));
        assert_eq!(elect(&views, &current)[&A], "r2");
        // With a strictly higher rpri r1 takes it.
        let (views, current) = r1.views(own(11), &BTreeSet::new());
        assert_eq!(elect(&views, &current)[&A], "r1");
        // Both claim (a healed partition): the higher rpri's claim stands, then node name.
        let (_, current) = r1.views(own(10), &BTreeSet::from([A]));
        assert_eq!(current[&A], "r1", "equal rpri: node name order");
        let (_, current) = r1.views(own(9), &BTreeSet::from([A]));
        assert_eq!(current[&A], "r2");
        // A peer whose port on the alias's subnet is down is not eligible.
        r1.on_datagram(
            &r2.message(
                RouterKind::Announce,
                Health::Healthy,
                vec![alias(50, true)],
                vec![port(false)],
            )
            .unwrap(),
            10,
        );
        let (views, current) = r1.views(own(1), &BTreeSet::new());
        assert_eq!(elect(&views, &current)[&A], "r1");
    }

    /// A router with many aliases announces them over several messages: they add up, and an
    /// alias no longer announced ages out while its router stays live.
    #[test]
    fn aliases_over_several_messages_add_up_and_age_out() {
        let mut r2 = RouterTracker::new(settings("r2", 1));
        let mut r1 = RouterTracker::new(settings("r1", 1));
        let b = Ipv4Addr::new(198, 51, 100, 101);
        let part = |t: &mut RouterTracker, addr| {
            t.message(
                RouterKind::Announce,
                Health::Healthy,
                vec![RouterAlias {
                    addr,
                    rpri: 5,
                    joined: false,
                    master: false,
                }],
                vec![port(true)],
            )
            .unwrap()
        };
        r1.on_datagram(&part(&mut r2, A), 0);
        assert!(r1.on_datagram(&part(&mut r2, b), 1).changed());
        assert_eq!(r1.peers()["r2"].aliases.len(), 2);
        // Only A is announced from now on: b leaves the view 300 ms after its last message
        // (at 1 ms).
        for t in [100, 200, 301] {
            assert!(!r1.on_datagram(&part(&mut r2, A), t).changed());
            let e = r1.expire(t);
            assert_eq!(e.changed(), t == 301, "at {t}: {e:?}");
        }
        assert_eq!(
            r1.peers()["r2"].aliases.keys().copied().collect::<Vec<_>>(),
            [A]
        );
        // A restart starts its view afresh.
        let mut again = RouterTracker::new(settings("r2", 2));
        r1.on_datagram(&part(&mut again, b), 310);
        assert_eq!(
            r1.peers()["r2"].aliases.keys().copied().collect::<Vec<_>>(),
            [b]
        );
    }

    #[test]
    fn message_sizes_fit_the_mtu() {
        use crate::routers::role::aliases_per_message;
        use crate::routers::wire::buffer_len;
        for (mtu, ports) in [(1500, 1), (1600, 3), (9000, 1), (576, 4)] {
            let n = aliases_per_message(mtu, ports);
            assert!(20 + 8 + buffer_len(n, ports) <= mtu, "{mtu} {ports} {n}");
            assert!(20 + 8 + buffer_len(n + 1, ports) > mtu || n == 1024);
        }
        assert_eq!(aliases_per_message(100, 64), 1, "at least one");
    }

    #[test]
    fn subnets() {
        let p = Ipv4Addr::new(198, 51, 100, 2);
        assert!(same_subnet(p, 24, A));
        assert!(!same_subnet(p, 24, Ipv4Addr::new(203, 0, 113, 1)));
        assert!(same_subnet(p, 0, Ipv4Addr::new(203, 0, 113, 1)));
        assert!(!same_subnet(p, 32, A));
    }
}
