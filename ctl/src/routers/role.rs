//! This router's part in a cluster of alias routers (issue 8; CA4, CA5, PH1), sans-I/O: it
//! announces itself over the interconnect, tracks its peers ([`RouterTracker`]), runs the
//! election ([`elect`]) and says which aliases it is the proxy-ARP master of.
//!
//! Invariants:
//! - **Listen first.** For one dead interval after start this router claims nothing (it
//!   announces itself, with no claims, and learns who holds what), so a starting router never
//!   pulls clients away from a live master it has not heard yet: its first election already
//!   sees the incumbents' claims (PH1: no automatic re-balancing).
//! - Every router computes the election from the same input (the live views and the claims in
//!   them, [`RouterTracker::views`]), so once their messages crossed they agree; a router that
//!   loses an alias stops answering at its next tick (the caller rebuilds its [`ArpView`] from
//!   [`RouterRole::masters_of_this_router`] after every change), and one that wins announces its
//!   claim at once, not at the next interval.
//! - The election runs again on every change of the live views (a peer up, down, or saying
//!   something new) and of this router's own configuration; nothing else moves an alias.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::election::{elect, AliasView, Masters, RouterView};
use super::tracker::{same_subnet, RouterOutcome, RouterSettings, RouterTracker};
use super::wire::{Health, RouterAlias, RouterKind, RouterPort, MAX_ALIASES, MAX_PORTS};
use crate::apply::ControlState;
use crate::frame::{udp_payload, UdpFrame};
use crate::model::Mac;
use crate::plane::Transmit;
use clua_pipeline::snapshot::{PortId, PortRole};

/// How many alias entries fit one message in an IPv4 packet of `mtu` bytes with `ports` port
/// entries (at least 1, at most [`MAX_ALIASES`]).
pub fn aliases_per_message(mtu: usize, ports: usize) -> usize {
    use super::wire::{ALIAS_ENTRY_LEN, HEADER_LEN, PORT_ENTRY_LEN, TAG_LEN};
    let room = mtu.saturating_sub(20 + 8 + HEADER_LEN + TAG_LEN + ports * PORT_ENTRY_LEN);
    (room / ALIAS_ENTRY_LEN).clamp(1, MAX_ALIASES)
}

/// The interconnect port the router protocol runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterconnectPort {
    /// Its index.
    pub port: PortId,
    /// Its MAC.
    pub mac: Mac,
    /// The router's address on it.
    pub addr: Ipv4Addr,
    /// Its prefix length (messages go to the subnet's broadcast address).
    pub prefix_len: u8,
}

impl InterconnectPort {
    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        let mask = if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len.min(32)))
        };
        Ipv4Addr::from(u32::from(self.addr) | !mask)
    }

    /// A control-protocol datagram from this router to every router on the interconnect
    /// (subnet broadcast, TTL 1, from and to `udp_port`): the router protocol's and the flow
    /// hand-off's frames.
    pub fn broadcast_frame(&self, udp_port: u16, payload: &[u8]) -> Option<Transmit> {
        UdpFrame {
            src_mac: self.mac,
            dst_mac: [0xff; 6],
            src: self.addr,
            dst: self.broadcast(),
            ttl: 1,
            src_port: udp_port,
            dst_port: udp_port,
            dscp_ecn: 0,
            dont_frag: false,
            vlan_tci: None,
        }
        .build(payload)
        .map(|frame| Transmit {
            port: self.port,
            frame,
        })
    }
}

/// Something about the routers worth a log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleEvent {
    /// A peer router is live.
    PeerUp(String),
    /// A peer router died or said goodbye.
    PeerDown(String),
    /// An alias has a new proxy-ARP master (`None`: no router can answer for it).
    Master {
        /// The alias.
        alias: Ipv4Addr,
        /// Its master's node name.
        node: Option<String>,
        /// Whether that is this router.
        this_router: bool,
    },
}

/// This router among its peers. See the module docs.
#[derive(Debug)]
pub struct RouterRole {
    tracker: RouterTracker,
    ic: InterconnectPort,
    /// Until when this router only listens (set on the first input).
    hold_until: Option<u64>,
    next_announce: u64,
    masters: Masters,
    mine: BTreeSet<Ipv4Addr>,
    elections: u64,
    /// The views changed since the last election.
    dirty: bool,
    events: Vec<RoleEvent>,
}

impl RouterRole {
    /// This router, announcing on `ic`.
    pub fn new(settings: RouterSettings, ic: InterconnectPort) -> RouterRole {
        RouterRole {
            tracker: RouterTracker::new(settings),
            ic,
            hold_until: None,
            next_announce: 0,
            masters: Masters::new(),
            mine: BTreeSet::new(),
            elections: 0,
            dirty: true,
            events: Vec::new(),
        }
    }

    /// The peers and counters.
    pub fn tracker(&self) -> &RouterTracker {
        &self.tracker
    }

    /// The interconnect port the protocol runs on.
    pub fn interconnect(&self) -> PortId {
        self.ic.port
    }

    /// The last election's result: every alias with a master.
    pub fn masters(&self) -> &Masters {
        &self.masters
    }

    /// The aliases this router answers ARP for.
    pub fn masters_of_this_router(&self) -> &BTreeSet<Ipv4Addr> {
        &self.mine
    }

    /// How many elections changed what this router answers for.
    pub fn elections(&self) -> u64 {
        self.elections
    }

    /// Whether the start-up listening period is over at `now_ms`.
    pub fn listening(&self, now_ms: u64) -> bool {
        self.hold_until.is_none_or(|t| now_ms < t)
    }

    /// Log events since the last call.
    pub fn take_events(&mut self) -> Vec<RoleEvent> {
        std::mem::take(&mut self.events)
    }

    fn start_clock(&mut self, now_ms: u64) {
        if self.hold_until.is_none() {
            self.hold_until = Some(now_ms + self.tracker.dead_interval_ms());
            self.next_announce = now_ms;
        }
    }

    /// A punted router-protocol frame. The election it may call for runs at the next tick, at
    /// most once per tick: one interval's announcement of a router with many aliases takes
    /// many frames, and the election costs as much as the aliases.
    pub fn on_frame(&mut self, frame: &[u8], now_ms: u64) {
        self.start_clock(now_ms);
        let Some((_, _, _, payload)) = udp_payload(frame) else {
            // Not a well-formed unfragmented IPv4/UDP datagram: counted with the wire's
            // malformed messages.
            self.tracker.on_refused(super::wire::RouterError::Malformed);
            return;
        };
        match self.tracker.on_datagram(payload, now_ms) {
            RouterOutcome::PeerUp(n) => {
                self.events.push(RoleEvent::PeerUp(n));
                self.dirty = true;
            }
            RouterOutcome::PeerGone(n) => {
                self.events.push(RoleEvent::PeerDown(n));
                self.dirty = true;
            }
            RouterOutcome::Refreshed { changed, .. } => self.dirty |= changed,
            RouterOutcome::Refused => {}
        }
    }

    /// The passage of time: peers die, the listening period ends, announcements are due.
    /// Returns the frames to send and whether what this router answers ARP for changed.
    pub fn on_tick(&mut self, state: &ControlState, now_ms: u64) -> (Vec<Transmit>, bool) {
        self.start_clock(now_ms);
        let expired = self.tracker.expire(now_ms);
        self.dirty |= expired.changed();
        for n in expired.dead {
            self.events.push(RoleEvent::PeerDown(n));
        }
        let changed = self.run_election(state, now_ms);
        let mut out = Vec::new();
        if changed || now_ms >= self.next_announce {
            out.extend(self.announce(state));
            self.next_announce = now_ms + u64::from(self.tracker.settings().interval_ms);
        }
        (out, changed)
    }

    /// This router's configuration changed (a command, member adverts): its view may have.
    pub fn on_state_change(&mut self) {
        self.dirty = true;
    }

    /// Runs the election if something changed and the listening period is over. Returns
    /// whether this router's masters changed.
    fn run_election(&mut self, state: &ControlState, now_ms: u64) -> bool {
        if !self.dirty || self.listening(now_ms) {
            return false;
        }
        self.dirty = false;
        let (own, _, _) = self.own(state);
        let (views, current) = self.tracker.views(own, &self.mine);
        let masters = elect(&views, &current);
        let node = self.tracker.settings().node.clone();
        for (alias, m) in &masters {
            if self.masters.get(alias) != Some(m) {
                self.events.push(RoleEvent::Master {
                    alias: *alias,
                    node: Some(m.clone()),
                    this_router: *m == node,
                });
            }
        }
        for alias in self.masters.keys() {
            if !masters.contains_key(alias) {
                self.events.push(RoleEvent::Master {
                    alias: *alias,
                    node: None,
                    this_router: false,
                });
            }
        }
        let mine: BTreeSet<Ipv4Addr> = masters
            .iter()
            .filter(|(_, n)| **n == node)
            .map(|(a, _)| *a)
            .collect();
        self.masters = masters;
        if mine == self.mine {
            return false;
        }
        self.mine = mine;
        self.elections += 1;
        true
    }

    /// This router's view for the election, and its messages' alias and port entries: every
    /// alias it specifies, in address order, every client port with an address (at most
    /// [`MAX_PORTS`]), taken as up (aliasd has no link state yet).
    fn own(&self, state: &ControlState) -> (RouterView, Vec<RouterAlias>, Vec<RouterPort>) {
        let ports: Vec<RouterPort> = state
            .cluster
            .ports
            .iter()
            .filter(|p| p.role == PortRole::Client)
            .filter_map(|p| {
                let a = p.address?;
                (1..=32).contains(&a.len).then(|| RouterPort {
                    name: p.name.clone(),
                    addr: a.addr,
                    prefix_len: a.len,
                    up: true,
                })
            })
            .take(MAX_PORTS)
            .collect();
        let mut specified: Vec<(Ipv4Addr, u32)> = state
            .cluster
            .aliases
            .iter()
            .map(|a| (a.address, a.rpri))
            .collect();
        specified.sort();
        let mut view = RouterView::default();
        let mut aliases = Vec::with_capacity(specified.len());
        for (addr, rpri) in specified {
            let up_interfaces = ports
                .iter()
                .filter(|p| same_subnet(p.addr, p.prefix_len, addr))
                .map(|p| p.name.clone())
                .collect();
            view.aliases.insert(
                addr,
                AliasView {
                    rpri,
                    up_interfaces,
                },
            );
            aliases.push(RouterAlias {
                addr,
                rpri,
                joined: false,
                master: self.mine.contains(&addr),
            });
        }
        (view, aliases, ports)
    }

    fn frame(&self, payload: &[u8]) -> Option<Transmit> {
        self.ic
            .broadcast_frame(self.tracker.settings().udp_port, payload)
    }

    /// This interval's announcement: as many messages as it takes for every alias to fit a
    /// frame of the interconnect port's MTU (each message with every port).
    fn announce(&mut self, state: &ControlState) -> Vec<Transmit> {
        let (_, aliases, ports) = self.own(state);
        let mtu = state
            .cluster
            .ports
            .get(usize::from(self.ic.port))
            .map_or(1500, |p| usize::from(p.mtu));
        let per_message = aliases_per_message(mtu, ports.len());
        let mut out = Vec::new();
        let mut chunks: Vec<&[RouterAlias]> = aliases.chunks(per_message).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let Ok(bytes) = self.tracker.message(
                RouterKind::Announce,
                Health::Healthy,
                chunk.to_vec(),
                ports.clone(),
            ) else {
                continue;
            };
            out.extend(self.frame(&bytes));
        }
        out
    }

    /// The goodbye of a clean shutdown: peers take over at once instead of after the dead
    /// interval. This router answers for nothing afterwards.
    pub fn goodbye(&mut self) -> Option<Transmit> {
        self.mine.clear();
        let bytes = self
            .tracker
            .message(RouterKind::Goodbye, Health::Healthy, vec![], vec![])
            .ok()?;
        self.frame(&bytes)
    }
}
