//! Member adverts in, member state (up, joins with selw/selp, listening ports) out into the
//! cluster model.
//!
//! Adverts reach the control thread as punted packets (UDP to a router interconnect address on
//! the advert port; the data plane punts them only from interconnect ports). [`Liveness`] does
//! the authentication, replay protection and dead-interval bookkeeping; this module maps its
//! view onto the model, which the control thread then turns into a new snapshot.
//!
//! Leaving never cuts established connections: a member that leaves an alias (or says goodbye
//! on a clean shutdown) stops getting new flows at once, but stays "up" for the data plane until
//! its dead interval has passed, so flows in the workers' connection tables drain. A member that
//! goes silent (crash, kill -9) is marked down after the dead interval (CA3).

use std::collections::HashMap;

use crate::apply::ControlState;
use crate::members::liveness::{AdvertCounters, AdvertOutcome, Liveness};
use crate::members::AdvertSettings;
use crate::model::JoinSpec;
use clua_pipeline::wire::ethernet::{parse_l2, EtherType};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet};
use clua_pipeline::wire::udp::UdpPacket;

/// Tracks the members that run the agent.
pub struct MemberTracker {
    key: Vec<u8>,
    port: u16,
    liveness: Liveness,
    /// Members that said goodbye, with the time until which they stay up for draining.
    draining: HashMap<String, u64>,
}

impl MemberTracker {
    /// A tracker for the members of `state` with `agent = true`.
    pub fn new(config: &AdvertSettings, state: &ControlState) -> MemberTracker {
        let managed: Vec<String> = state
            .cluster
            .members
            .iter()
            .filter(|m| m.agent)
            .map(|m| m.name.clone())
            .collect();
        MemberTracker {
            key: config.key.clone(),
            port: config.port,
            liveness: Liveness::new(&managed, config.dead_misses),
            draining: HashMap::new(),
        }
    }

    /// Handles a punted frame if it is an advert datagram (`None` otherwise).
    pub fn on_frame(&mut self, frame: &[u8], now_ms: u64) -> Option<AdvertOutcome> {
        let l2 = parse_l2(frame).ok()?;
        if l2.ethertype != EtherType::IPV4 {
            return None;
        }
        let ip = Ipv4Packet::new_checked(&frame[l2.l3_offset..]).ok()?;
        if ip.next_header() != protocol::UDP || ip.is_fragment() || !ip.verify_checksum() {
            return None;
        }
        let udp = UdpPacket::new_checked(ip.payload()).ok()?;
        if udp.dst_port() != self.port {
            return None;
        }
        let outcome = self.liveness.on_datagram(udp.payload(), &self.key, now_ms);
        match outcome {
            AdvertOutcome::Left { .. } => {
                let node = crate::advert::AdvertPacket::new_checked(udp.payload())
                    .ok()
                    .map(|p| String::from_utf8_lossy(p.node()).into_owned());
                if let Some(node) = node {
                    let interval = self
                        .liveness
                        .view(&node)
                        .map_or(1000, |v| v.interval_ms.max(100));
                    self.draining.insert(
                        node,
                        now_ms + u64::from(interval) * u64::from(self.liveness.dead_misses()),
                    );
                }
            }
            AdvertOutcome::Accepted { .. } => {
                if let Ok(p) = crate::advert::AdvertPacket::new_checked(udp.payload()) {
                    self.draining
                        .remove(String::from_utf8_lossy(p.node()).as_ref());
                }
            }
            _ => {}
        }
        Some(outcome)
    }

    /// Marks members whose dead interval passed as down, and ends the draining of members that
    /// said goodbye. Returns whether anything changed.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let expired = !self.liveness.expire(now_ms).is_empty();
        let before = self.draining.len();
        self.draining.retain(|_, until| *until > now_ms);
        expired || self.draining.len() != before
    }

    /// Writes the tracked members' state into the model: up (or draining), listening ports,
    /// and their joins — an agent member's joins come from its adverts alone (it "joins only
    /// the aliases it names"); aliases it names that this router does not route are ignored.
    pub fn apply(&self, state: &mut ControlState) {
        let cluster = &mut state.cluster;
        for m in cluster.members.iter_mut().filter(|m| m.agent) {
            let view = self.liveness.view(&m.name);
            m.up = view.is_some_and(|v| v.up) || self.draining.contains_key(&m.name);
            m.listening = Some(view.map(|v| v.ports.clone()).unwrap_or_default());
            // A goodbye clears it: the member's out_alias connections end with it.
            m.out_alias = view.and_then(|v| v.out_alias);
        }
        let agents: Vec<String> = cluster
            .members
            .iter()
            .filter(|m| m.agent)
            .map(|m| m.name.clone())
            .collect();
        for alias in cluster.aliases.iter_mut() {
            for name in &agents {
                let entry = self.liveness.view(name).and_then(|v| {
                    v.aliases
                        .iter()
                        .find(|a| a.addr == alias.address && a.joined)
                });
                let pos = alias.members.iter().position(|j| &j.member == name);
                match (entry, pos) {
                    (Some(e), Some(p)) => {
                        alias.members[p].selw = e.selw;
                        alias.members[p].selp = e.selp;
                        alias.members[p].joined = true;
                    }
                    (Some(e), None) => alias.members.push(JoinSpec {
                        member: name.clone(),
                        selw: e.selw,
                        selp: e.selp,
                        joined: true,
                    }),
                    // Left: the entry keeps its place in the join order for a rejoin.
                    (None, Some(p)) => alias.members[p].joined = false,
                    (None, None) => {}
                }
            }
        }
    }

    /// The advert counters.
    pub fn counters(&self) -> &AdvertCounters {
        self.liveness.counters()
    }
}
