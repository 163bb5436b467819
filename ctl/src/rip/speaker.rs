//! [`RipSpeaker`]: the RIPv2 speaker as a state machine with no I/O (CA6). Routes
//! ([`RipSpeaker::set_routes`]), punted frames ([`RipSpeaker::on_frame`]) and the time
//! ([`RipSpeaker::on_tick`]) go in; the frames to send come out, as [`Transmit`]s.
//!
//! - Every port sends its whole table every `update_ms` ± `jitter_ms` (RFC 2453 §3.8), the
//!   periods of the ports drawn independently from a PRNG seeded by the caller.
//! - A change of the routes is a triggered update (§3.10.1) of the changed routes only: new ones
//!   with metric 1, withdrawn ones with 16. Two triggered updates are at least
//!   `triggered_min_ms` apart; a change inside that window goes out when it ends.
//! - A withdrawn route keeps being advertised with metric 16 for [`GARBAGE_MS`] (the
//!   garbage-collection timer of §3.8), then is forgotten.
//! - Requests are answered (§3.9.1) by unicast to the requester; responses from other routers
//!   are checked, counted and ignored: aliasd installs no routes (seed 000 §6.6.1).
//! - [`RipSpeaker::shutdown`] advertises every route with metric 16 on every port at once.
//!
//! What arrives is refused, and counted by [`RipError`], unless it is a well-formed RIPv2 packet
//! to UDP port 520 on a RIP port, from inside that port's subnet, to us (the port's address, its
//! subnet's broadcast, 255.255.255.255 or 224.0.0.9), a response coming from port 520, carrying
//! valid authentication exactly when authentication is configured, with a sequence number not
//! lower than the last one accepted from its source address.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use clua_pipeline::snapshot::PortId;
use clua_pipeline::wire::ethernet::BROADCAST;

use super::wire::{
    self, build_frame, mask_of, parse_frame, AuthInfo, Command, FrameAddrs, RipEntry, RipError,
    RipPacket, RipRepr, INFINITY, MAX_ENTRIES, MULTICAST_GROUP, MULTICAST_MAC, RIP_PORT,
};
use super::{RipMode, RipPort, RipRoute, RipSettings, GARBAGE_MS, TRIGGERED_MIN_RANGE};
use crate::plane::Transmit;

/// What the speaker did, for metrics and `cluamgr -s`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RipCounters {
    /// Packets sent: periodic, triggered, answers and shutdown.
    pub updates_sent: u64,
    /// Periodic whole-table updates sent (one per port per period, however many packets).
    pub periodic: u64,
    /// Triggered updates sent (one per port per change, and per port at shutdown).
    pub triggered: u64,
    /// Requests answered.
    pub requests_answered: u64,
    /// Valid responses heard from other routers (and ignored).
    pub responses_received: u64,
    /// Packets refused, indexed by [`RipError::index`].
    pub refused: [u64; RipError::COUNT],
}

impl RipCounters {
    /// Refusals of one reason.
    pub fn refused_for(&self, e: RipError) -> u64 {
        self.refused[e.index()]
    }
}

/// A route the speaker knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    /// 1 while advertised, 16 once withdrawn.
    metric: u8,
    /// When a withdrawn route is forgotten.
    forget_at: Option<u64>,
    /// Changed since the last triggered update.
    changed: bool,
}

/// The RIPv2 speaker (see the module documentation).
#[derive(Debug)]
pub struct RipSpeaker {
    settings: RipSettings,
    rng: u64,
    /// Per port of `settings.ports`: when its next periodic update is due.
    next_periodic: Vec<u64>,
    table: BTreeMap<RipRoute, Known>,
    /// Some route changed and no triggered update has carried it yet.
    pending: bool,
    /// No triggered update before this.
    hold_until: u64,
    /// The next RFC 4822 sequence number to send.
    seq: u32,
    /// The last sequence number accepted from each source address.
    last_seq: HashMap<Ipv4Addr, u32>,
    /// The latest `now_ms` seen (shutdown has none of its own).
    now: u64,
    counters: RipCounters,
}

impl RipSpeaker {
    /// A speaker on `settings.ports` with no routes yet. `seed` drives the jitter (no global
    /// randomness: the same seed gives the same timings). The first periodic update of each
    /// port is one jittered period after `now_ms`; the first [`set_routes`](Self::set_routes)
    /// announces the routes at once.
    ///
    /// The RFC 4822 sequence number starts at `now_ms / 1000`, so that with a wall-clock
    /// `now_ms` (ms since the Unix epoch, as BIRD uses seconds) it keeps rising across restarts
    /// and peers do not take a restarted speaker's packets for replays.
    ///
    /// `triggered_min_ms` is held to [`TRIGGERED_MIN_RANGE`], `update_ms` to at least 1 ms and
    /// `jitter_ms` to at most half of `update_ms`.
    pub fn new(mut settings: RipSettings, seed: u64, now_ms: u64) -> RipSpeaker {
        settings.triggered_min_ms = settings
            .triggered_min_ms
            .clamp(*TRIGGERED_MIN_RANGE.start(), *TRIGGERED_MIN_RANGE.end());
        settings.update_ms = settings.update_ms.max(1);
        settings.jitter_ms = settings.jitter_ms.min(settings.update_ms / 2);
        let mut s = RipSpeaker {
            next_periodic: Vec::with_capacity(settings.ports.len()),
            settings,
            rng: seed,
            table: BTreeMap::new(),
            pending: false,
            hold_until: now_ms,
            seq: (now_ms / 1000).min(u64::from(u32::MAX)) as u32,
            last_seq: HashMap::new(),
            now: now_ms,
            counters: RipCounters::default(),
        };
        for _ in 0..s.settings.ports.len() {
            let at = now_ms + s.period();
            s.next_periodic.push(at);
        }
        s
    }

    /// The settings in force (after the clamping [`new`](Self::new) describes).
    pub fn settings(&self) -> &RipSettings {
        &self.settings
    }

    /// Replaces the advertised routes: a triggered update of what changed, now or when the
    /// rate limit allows (then from [`on_tick`](Self::on_tick)). New routes go out with metric
    /// 1, withdrawn ones with 16 (and keep going out with 16 for [`GARBAGE_MS`]).
    pub fn set_routes(&mut self, routes: &BTreeSet<RipRoute>, now_ms: u64) -> Vec<Transmit> {
        self.now = self.now.max(now_ms);
        for r in routes {
            let k = self.table.entry(*r).or_insert(Known {
                metric: INFINITY as u8,
                forget_at: None,
                changed: false,
            });
            if k.metric != 1 {
                *k = Known {
                    metric: 1,
                    forget_at: None,
                    changed: true,
                };
                self.pending = true;
            }
        }
        for (r, k) in self.table.iter_mut() {
            if k.metric == 1 && !routes.contains(r) {
                *k = Known {
                    metric: INFINITY as u8,
                    forget_at: Some(now_ms + GARBAGE_MS),
                    changed: true,
                };
                self.pending = true;
            }
        }
        let mut out = Vec::new();
        self.triggered(now_ms, &mut out);
        out
    }

    /// A frame punted to the control plane because it is IPv4/UDP to port 520, received on
    /// `port`. Requests are answered; everything else is counted and produces nothing.
    pub fn on_frame(&mut self, port: PortId, frame: &[u8], now_ms: u64) -> Vec<Transmit> {
        self.now = self.now.max(now_ms);
        match self.receive(port, frame) {
            Ok(out) => out,
            Err(e) => {
                self.counters.refused[e.index()] += 1;
                Vec::new()
            }
        }
    }

    fn receive(&mut self, port: PortId, frame: &[u8]) -> Result<Vec<Transmit>, RipError> {
        let pi = self
            .settings
            .ports
            .iter()
            .position(|p| p.port == port)
            .ok_or(RipError::NotRipPort)?;
        let info = parse_frame(frame)?;
        let (addr, mask) = {
            let p = &self.settings.ports[pi];
            (u32::from(p.addr), mask_of(p.prefix_len))
        };
        let dst = u32::from(info.dst_addr);
        let for_us = dst == addr
            || info.dst_addr == Ipv4Addr::BROADCAST
            || info.dst_addr == MULTICAST_GROUP
            || (mask != u32::MAX && dst == addr | !mask);
        if !for_us {
            return Err(RipError::NotForUs);
        }
        if u32::from(info.src_addr) & mask != addr & mask || info.src_addr.is_unspecified() {
            return Err(RipError::NotOurSubnet);
        }
        let packet = RipPacket::new_checked(&frame[info.payload.clone()])?;
        let repr = RipRepr::parse(&packet)?;
        if repr.command == Command::Response && info.src_port != RIP_PORT {
            return Err(RipError::BadPort);
        }
        self.authenticate(&packet, &repr, info.src_addr)?;
        match repr.command {
            Command::Response => {
                self.counters.responses_received += 1;
                Ok(Vec::new())
            }
            Command::Request => {
                self.counters.requests_answered += 1;
                let entries: Vec<RipEntry> = if repr.is_whole_table_request() {
                    self.entries(|_| true)
                } else {
                    repr.entries
                        .iter()
                        .map(|e| {
                            let mut e = *e;
                            if e.afi == wire::AFI_INET {
                                e.metric = self.metric_of(&e);
                            }
                            e
                        })
                        .collect()
                };
                let to = FrameAddrs {
                    src_mac: self.settings.ports[pi].mac,
                    dst_mac: info.src_mac,
                    vlan_tci: info.vlan_tci,
                    src_addr: self.settings.ports[pi].addr,
                    dst_addr: info.src_addr,
                    dst_port: info.src_port,
                };
                let mut out = Vec::new();
                self.send(port, &to, &entries, &mut out);
                Ok(out)
            }
        }
    }

    /// Authentication as configured (RFC 4822 §2.5, §3): without a key nothing may carry
    /// authentication; with one, everything must, with our key id, a good digest and a
    /// sequence number not below the last one accepted from `src`.
    fn authenticate<T: AsRef<[u8]>>(
        &mut self,
        packet: &RipPacket<T>,
        repr: &RipRepr,
        src: Ipv4Addr,
    ) -> Result<(), RipError> {
        let Some(auth) = &self.settings.auth else {
            return match repr.auth {
                None => Ok(()),
                Some(_) => Err(RipError::BadAuth),
            };
        };
        let seq = match repr.auth {
            None => return Err(RipError::Unauthenticated),
            Some(AuthInfo::Other { .. }) => return Err(RipError::BadAuth),
            Some(AuthInfo::Crypto { key_id, seq }) => {
                if key_id != auth.key_id || !wire::verify(packet, &auth.key) {
                    return Err(RipError::BadAuth);
                }
                seq
            }
        };
        if self.last_seq.get(&src).is_some_and(|&last| seq < last) {
            return Err(RipError::Replayed);
        }
        self.last_seq.insert(src, seq);
        Ok(())
    }

    /// Our metric for a requested IPv4 entry: its route's, or 16.
    fn metric_of(&self, e: &RipEntry) -> u32 {
        let Some(len) = e.prefix_len() else {
            return INFINITY;
        };
        let r = RipRoute {
            prefix: e.addr,
            len,
        };
        self.table.get(&r).map_or(INFINITY, |k| u32::from(k.metric))
    }

    /// The passage of time: routes withdrawn long enough are forgotten, a triggered update
    /// held back by the rate limit goes out, and ports whose period ended send their whole
    /// table.
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Transmit> {
        self.now = self.now.max(now_ms);
        self.table
            .retain(|_, k| k.forget_at.is_none_or(|at| at > now_ms));
        let mut out = Vec::new();
        self.triggered(now_ms, &mut out);
        let all = self.entries(|_| true);
        for i in 0..self.settings.ports.len() {
            if self.next_periodic[i] > now_ms {
                continue;
            }
            let at = now_ms + self.period();
            self.next_periodic[i] = at;
            if all.is_empty() {
                continue;
            }
            let p = self.settings.ports[i].clone();
            self.send(p.port, &update_addrs(&p), &all, &mut out);
            self.counters.periodic += 1;
        }
        out
    }

    /// Clean shutdown: every route with metric 16 on every port, at once (no rate limit). The
    /// routes stay withdrawn (and are forgotten after [`GARBAGE_MS`]) unless set again.
    pub fn shutdown(&mut self) -> Vec<Transmit> {
        let forget = self.now + GARBAGE_MS;
        for k in self.table.values_mut() {
            if k.metric == 1 {
                k.forget_at = Some(forget);
            }
            *k = Known {
                metric: INFINITY as u8,
                forget_at: k.forget_at,
                changed: false,
            };
        }
        self.pending = false;
        let all = self.entries(|_| true);
        let mut out = Vec::new();
        if all.is_empty() {
            return out;
        }
        for p in self.settings.ports.clone() {
            self.send(p.port, &update_addrs(&p), &all, &mut out);
            self.counters.triggered += 1;
        }
        out
    }

    /// Every route known and the metric now advertised for it: 1, or 16 while withdrawn.
    pub fn routes(&self) -> impl Iterator<Item = (RipRoute, u8)> + '_ {
        self.table.iter().map(|(r, k)| (*r, k.metric))
    }

    /// The counters.
    pub fn counters(&self) -> &RipCounters {
        &self.counters
    }

    /// The earliest `now_ms` at which [`on_tick`](Self::on_tick) has something to do:
    /// a periodic update, a held-back triggered update, or a withdrawn route to forget.
    pub fn next_wakeup(&self) -> u64 {
        let periodic = self.next_periodic.iter().copied().min();
        let triggered = self.pending.then_some(self.hold_until);
        let forget = self.table.values().filter_map(|k| k.forget_at).min();
        [periodic, triggered, forget]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Sends the changed routes if any and the rate limit allows.
    fn triggered(&mut self, now_ms: u64, out: &mut Vec<Transmit>) {
        if !self.pending || now_ms < self.hold_until {
            return;
        }
        let changed = self.entries(|k| k.changed);
        self.table.values_mut().for_each(|k| k.changed = false);
        self.pending = false;
        self.hold_until = now_ms + self.settings.triggered_min_ms;
        if changed.is_empty() {
            return;
        }
        for p in self.settings.ports.clone() {
            self.send(p.port, &update_addrs(&p), &changed, out);
            self.counters.triggered += 1;
        }
    }

    fn entries(&self, which: impl Fn(&Known) -> bool) -> Vec<RipEntry> {
        self.table
            .iter()
            .filter(|(_, k)| which(k))
            .map(|(r, k)| RipEntry::route(r.prefix, r.len, u32::from(k.metric)))
            .collect()
    }

    /// One period: `update_ms` ± up to `jitter_ms`, uniformly.
    fn period(&mut self) -> u64 {
        let j = self.settings.jitter_ms;
        let r = splitmix64(&mut self.rng) % (2 * j + 1);
        self.settings.update_ms - j + r
    }

    /// Responses carrying `entries`, as many packets as they need (25 entries each, 24 with
    /// authentication), signed if authentication is configured.
    fn send(
        &mut self,
        port: PortId,
        to: &FrameAddrs,
        entries: &[RipEntry],
        out: &mut Vec<Transmit>,
    ) {
        let per_packet = if self.settings.auth.is_some() {
            MAX_ENTRIES - 1
        } else {
            MAX_ENTRIES
        };
        for chunk in entries.chunks(per_packet) {
            let auth = self.settings.auth.as_ref().map(|a| {
                let seq = self.seq;
                // Non-decreasing (RFC 4822 §3): at the top it stays there.
                self.seq = self.seq.saturating_add(1);
                (a, seq)
            });
            let repr = RipRepr {
                command: Command::Response,
                auth: auth.map(|(a, seq)| AuthInfo::Crypto {
                    key_id: a.key_id,
                    seq,
                }),
                entries: chunk.to_vec(),
            };
            let mut d = vec![0u8; repr.buffer_len()];
            repr.emit(&mut d);
            if let Some((a, _)) = auth {
                wire::sign(&mut d, &a.key);
            }
            out.push(Transmit {
                port,
                frame: build_frame(to, &d),
            });
            self.counters.updates_sent += 1;
        }
    }
}

/// Where a port's unsolicited updates go (its mode).
fn update_addrs(p: &RipPort) -> FrameAddrs {
    let (dst_addr, dst_mac) = match p.mode {
        RipMode::Multicast => (MULTICAST_GROUP, MULTICAST_MAC),
        RipMode::Broadcast => {
            let mask = mask_of(p.prefix_len);
            let bcast = if p.prefix_len >= 31 {
                Ipv4Addr::BROADCAST
            } else {
                Ipv4Addr::from(u32::from(p.addr) | !mask)
            };
            (bcast, BROADCAST)
        }
    };
    FrameAddrs {
        src_mac: p.mac,
        dst_mac,
        vlan_tci: None,
        src_addr: p.addr,
        dst_addr,
        dst_port: RIP_PORT,
    }
}

/// SplitMix64: a tiny, good-enough PRNG for timer jitter (not for anything secret).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
