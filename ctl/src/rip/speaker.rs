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
//! - Requests are answered (§3.9.1) by unicast to the requester (whole-table ones at most
//!   [`TABLE_ANSWERS_PER_S`] a second); responses from other routers
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

/// Whole-table requests answered per second at most; more are refused as
/// [`RipError::RateLimited`]. Routers ask once at start (BIRD) or on demand; ten a second leaves
/// room for a whole LAN of them starting together, while a flood of 24-byte requests cannot make
/// the speaker send its whole table (hundreds of packets with 10,000 aliases) for each.
pub const TABLE_ANSWERS_PER_S: u32 = 10;

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
    /// The last RFC 4822 sequence number sent.
    seq: u32,
    /// The last sequence number accepted from each source address.
    last_seq: HashMap<Ipv4Addr, u32>,
    /// The latest `now_ms` seen (shutdown has none of its own).
    now: u64,
    /// The current window of whole-table answers: its start, and answers given in it.
    table_answers: (u64, u32),
    counters: RipCounters,
}

impl RipSpeaker {
    /// A speaker on `settings.ports` with no routes yet. `seed` drives the jitter (no global
    /// randomness: the same seed gives the same timings). The first periodic update of each
    /// port is one jittered period after `now_ms`; the first [`set_routes`](Self::set_routes)
    /// announces the routes at once.
    ///
    /// The RFC 4822 sequence number of every packet is the larger of the last one sent and
    /// `now_ms / 1000`: packets sent within one second share it (the RFC asks for
    /// non-decreasing numbers, not increasing ones). With a wall-clock `now_ms` (ms since the
    /// Unix epoch; BIRD uses seconds too) it keeps rising across restarts however many packets
    /// were sent before, so peers do not take a restarted speaker's packets for replays (BIRD
    /// refuses a lower number from a neighbour it remembers).
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
            table_answers: (now_ms, 0),
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
        if info.dst_port != RIP_PORT {
            return Err(RipError::BadPort);
        }
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
                let whole = repr.is_whole_table_request();
                if whole {
                    self.table_answer_budget()?;
                }
                self.counters.requests_answered += 1;
                let entries: Vec<RipEntry> = if whole {
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

    /// Takes one whole-table answer from the budget: [`TABLE_ANSWERS_PER_S`] a second.
    fn table_answer_budget(&mut self) -> Result<(), RipError> {
        let (start, n) = &mut self.table_answers;
        if self.now >= *start + 1000 || self.now < *start {
            *start = self.now;
            *n = 0;
        }
        if *n >= TABLE_ANSWERS_PER_S {
            return Err(RipError::RateLimited);
        }
        *n += 1;
        Ok(())
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
        // Callers may tick far more often than anything is due: nothing is built then.
        if self
            .table
            .values()
            .any(|k| k.forget_at.is_some_and(|at| at <= now_ms))
        {
            self.table
                .retain(|_, k| k.forget_at.is_none_or(|at| at > now_ms));
        }
        let mut out = Vec::new();
        self.triggered(now_ms, &mut out);
        let mut all: Option<Vec<RipEntry>> = None;
        for i in 0..self.settings.ports.len() {
            if self.next_periodic[i] > now_ms {
                continue;
            }
            let at = now_ms + self.period();
            self.next_periodic[i] = at;
            let entries = all.get_or_insert_with(|| self.entries(|_| true));
            if entries.is_empty() {
                continue;
            }
            let p = self.settings.ports[i].clone();
            self.send(p.port, &update_addrs(&p), entries, &mut out);
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
    /// a periodic update, a held-back triggered update, or a withdrawn route to forget
    /// (`u64::MAX` if none: no ports).
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
            let clock = (self.now / 1000).min(u64::from(u32::MAX)) as u32;
            self.seq = self.seq.max(clock);
            let seq = self.seq;
            let auth = self.settings.auth.as_ref().map(|a| (a, seq));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rip::wire::tests::{
        hex, BIRD_AUTH_REQUEST, BIRD_AUTH_RESPONSE, BIRD_PASSWORD, BIRD_REQUEST, BIRD_RESPONSE,
    };
    use crate::rip::wire::{verify, FrameInfo};
    use crate::rip::RipAuth;

    const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 3];
    const BIRD_MAC: [u8; 6] = [0x36, 0xdd, 0x13, 0xbd, 0x34, 0x05];

    /// Port 0: 198.51.100.2/24, broadcast (where the BIRD captures were made); port 1:
    /// 192.0.2.129/25, multicast.
    fn settings(auth: bool) -> RipSettings {
        RipSettings {
            ports: vec![
                RipPort {
                    port: 0,
                    mac: MAC0,
                    addr: Ipv4Addr::new(198, 51, 100, 2),
                    prefix_len: 24,
                    mode: RipMode::Broadcast,
                },
                RipPort {
                    port: 1,
                    mac: MAC1,
                    addr: Ipv4Addr::new(192, 0, 2, 129),
                    prefix_len: 25,
                    mode: RipMode::Multicast,
                },
            ],
            auth: auth.then(|| RipAuth {
                key_id: 1,
                key: BIRD_PASSWORD.to_vec(),
            }),
            ..RipSettings::default()
        }
    }

    fn r(a: [u8; 4], len: u8) -> RipRoute {
        RipRoute {
            prefix: a.into(),
            len,
        }
    }

    fn set(routes: &[RipRoute]) -> BTreeSet<RipRoute> {
        routes.iter().copied().collect()
    }

    /// A sent frame, taken apart; its authentication checked with the BIRD password.
    fn decode(t: &Transmit) -> (FrameInfo, RipRepr) {
        let info = parse_frame(&t.frame).expect("we send valid frames");
        let d = &t.frame[info.payload.clone()];
        let p = RipPacket::new_checked(d).expect("we send valid datagrams");
        let repr = RipRepr::parse(&p).expect("we send valid datagrams");
        if repr.auth.is_some() {
            assert!(verify(&p, BIRD_PASSWORD), "our digest verifies");
        }
        (info, repr)
    }

    /// (route, metric) of every entry of the frames sent on `port`.
    fn advertised(out: &[Transmit], port: PortId) -> Vec<(RipRoute, u32)> {
        out.iter()
            .filter(|t| t.port == port)
            .flat_map(|t| decode(t).1.entries)
            .map(|e| {
                (
                    RipRoute {
                        prefix: e.addr,
                        len: e.prefix_len().unwrap(),
                    },
                    e.metric,
                )
            })
            .collect()
    }

    fn a() -> RipRoute {
        r([203, 0, 113, 5], 32)
    }
    fn b() -> RipRoute {
        r([203, 0, 113, 0], 24)
    }
    fn c() -> RipRoute {
        r([198, 51, 100, 100], 32)
    }

    #[test]
    fn ca6_first_routes_go_out_at_once_on_every_port_per_mode() {
        let mut s = RipSpeaker::new(settings(false), 1, 0);
        let out = s.set_routes(&set(&[a(), b()]), 10);
        assert_eq!(out.len(), 2);
        let (i0, r0) = decode(&out[0]);
        assert_eq!(out[0].port, 0);
        assert_eq!(&out[0].frame[0..6], &[0xff; 6]);
        assert_eq!(&out[0].frame[6..12], &MAC0);
        assert_eq!(i0.dst_addr, Ipv4Addr::new(198, 51, 100, 255));
        assert_eq!(i0.src_addr, Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!((i0.src_port, i0.dst_port), (520, 520));
        assert_eq!(r0.command, Command::Response);
        assert_eq!(r0.auth, None);
        for e in &r0.entries {
            assert_eq!(
                (e.afi, e.tag, e.next_hop, e.metric),
                (2, 0, Ipv4Addr::UNSPECIFIED, 1)
            );
        }
        let (i1, _) = decode(&out[1]);
        assert_eq!(out[1].port, 1);
        assert_eq!(&out[1].frame[0..6], &MULTICAST_MAC);
        assert_eq!(i1.dst_addr, MULTICAST_GROUP);
        assert_eq!(i1.src_addr, Ipv4Addr::new(192, 0, 2, 129));
        assert_eq!(advertised(&out, 1), vec![(b(), 1), (a(), 1)]);
        assert_eq!(s.counters().triggered, 2);
        assert_eq!(s.counters().updates_sent, 2);
        assert_eq!(s.routes().collect::<Vec<_>>(), vec![(b(), 1), (a(), 1)]);
        // The same routes again change nothing.
        assert!(s.set_routes(&set(&[a(), b()]), 5000).is_empty());
        assert!(s.on_tick(5000).is_empty());
    }

    #[test]
    fn triggered_updates_carry_changes_only_and_are_rate_limited() {
        let mut st = settings(false);
        st.triggered_min_ms = 2000;
        let mut s = RipSpeaker::new(st, 1, 0);
        assert_eq!(s.set_routes(&set(&[a(), b()]), 0).len(), 2);
        // Inside the window: held back.
        assert!(s.set_routes(&set(&[a(), c()]), 500).is_empty());
        assert_eq!(s.next_wakeup(), 2000);
        assert!(s.on_tick(1999).is_empty());
        let out = s.on_tick(2000);
        // b withdrawn (16), c new (1); a unchanged is not repeated.
        assert_eq!(advertised(&out, 0), vec![(c(), 1), (b(), 16)]);
        assert_eq!(advertised(&out, 1), vec![(c(), 1), (b(), 16)]);
        // A change and its undoing inside one window still go out (as the state now is).
        assert!(s.set_routes(&set(&[a()]), 2500).is_empty());
        assert!(s.set_routes(&set(&[a(), c()]), 2600).is_empty());
        let out = s.on_tick(4000);
        assert_eq!(advertised(&out, 0), vec![(c(), 1)]);
        // Past the window, a change goes out at once.
        let out = s.set_routes(&set(&[c()]), 7000);
        assert_eq!(advertised(&out, 0), vec![(a(), 16)]);
        assert_eq!(s.counters().triggered, 8);
    }

    #[test]
    fn withdrawn_routes_are_advertised_with_16_until_garbage_collected() {
        let mut st = settings(false);
        st.ports.truncate(1);
        let mut s = RipSpeaker::new(st, 7, 0);
        s.set_routes(&set(&[a(), b()]), 0);
        s.set_routes(&set(&[a()]), 10_000);
        assert_eq!(s.routes().collect::<Vec<_>>(), vec![(b(), 16), (a(), 1)]);
        // Periodic updates until the garbage-collection time carry b with 16.
        let mut t = 10_000;
        let mut periodic_with_b = 0;
        while t < 10_000 + GARBAGE_MS {
            t = s.next_wakeup();
            let out = s.on_tick(t);
            let adv = advertised(&out, 0);
            if t < 10_000 + GARBAGE_MS && !adv.is_empty() {
                assert_eq!(adv, vec![(b(), 16), (a(), 1)], "at {t}");
                periodic_with_b += 1;
            }
        }
        assert!(periodic_with_b >= 3, "{periodic_with_b}");
        assert_eq!(s.routes().collect::<Vec<_>>(), vec![(a(), 1)]);
        let t = s.next_wakeup();
        assert_eq!(advertised(&s.on_tick(t), 0), vec![(a(), 1)]);
        // A withdrawn route that comes back is advertised with 1 again.
        s.set_routes(&set(&[a(), b()]), t + 1);
        s.set_routes(&set(&[a()]), t + 2);
        let out = s.set_routes(&set(&[a(), b()]), t + 5000);
        assert_eq!(advertised(&out, 0), vec![(b(), 1)]);
        assert_eq!(s.routes().collect::<Vec<_>>(), vec![(b(), 1), (a(), 1)]);
    }

    #[test]
    fn periodic_updates_every_30s_with_jitter_per_port_deterministic() {
        let times = |seed| {
            let mut s = RipSpeaker::new(settings(false), seed, 1_000);
            s.set_routes(&set(&[a()]), 1_000);
            let mut sent: [Vec<u64>; 2] = [vec![], vec![]];
            let mut t = 1_000;
            while t < 1_000 + 600_000 {
                t = s.next_wakeup();
                for tx in s.on_tick(t) {
                    assert_eq!(
                        advertised(std::slice::from_ref(&tx), tx.port),
                        vec![(a(), 1)]
                    );
                    sent[usize::from(tx.port)].push(t);
                }
            }
            assert_eq!(
                s.counters().periodic as usize,
                sent[0].len() + sent[1].len()
            );
            sent
        };
        let x = times(42);
        assert_eq!(x, times(42), "the same seed gives the same timings");
        assert_ne!(x, times(43));
        assert_ne!(x[0], x[1], "ports are jittered independently");
        for port in &x {
            let mut last = 1_000;
            for &t in port {
                let gap = t - last;
                assert!((25_000..=35_000).contains(&gap), "gap {gap}");
                last = t;
            }
            assert!(port.len() >= 17 && port.len() <= 24, "{}", port.len());
        }
        // Not all gaps equal: there is jitter.
        let gaps: BTreeSet<u64> = x[0].windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() > 5);
    }

    fn many(n: u32) -> BTreeSet<RipRoute> {
        (0..n)
            .map(|i| RipRoute {
                prefix: Ipv4Addr::from(0xcb00_7100 + i),
                len: 32,
            })
            .collect()
    }

    #[test]
    fn large_tables_are_split_25_or_24_with_authentication() {
        for (auth, sizes) in [(false, vec![25, 25, 10]), (true, vec![24, 24, 12])] {
            let mut st = settings(auth);
            st.ports.truncate(1);
            let mut s = RipSpeaker::new(st, 1, 0);
            let out = s.set_routes(&many(60), 0);
            let got: Vec<usize> = out.iter().map(|t| decode(t).1.entries.len()).collect();
            assert_eq!(got, sizes);
            for t in &out {
                assert!(t.frame.len() <= 14 + 20 + 8 + wire::MAX_LEN);
            }
            assert_eq!(advertised(&out, 0).len(), 60);
            assert_eq!(s.counters().updates_sent, 3);
            if auth {
                let seqs: Vec<u32> = out
                    .iter()
                    .map(|t| match decode(t).1.auth {
                        Some(AuthInfo::Crypto { key_id: 1, seq }) => seq,
                        other => panic!("{other:?}"),
                    })
                    .collect();
                // One second: one sequence number (non-decreasing, RFC 4822 §3.2.2).
                assert_eq!(seqs, vec![0, 0, 0]);
                let later = s.set_routes(&many(61), 2_500);
                assert!(matches!(
                    decode(&later[0]).1.auth,
                    Some(AuthInfo::Crypto { seq: 2, .. })
                ));
            }
        }
    }

    /// A frame from `src`:`sport` (MAC `smac`) to `dst`:520 carrying `repr`, signed with `key`.
    fn frame(src: [u8; 4], sport: u16, dst: [u8; 4], repr: &RipRepr, key: &[u8]) -> Vec<u8> {
        let mut d = vec![0; repr.buffer_len()];
        repr.emit(&mut d);
        wire::sign(&mut d, key);
        let mut f = build_frame(
            &FrameAddrs {
                src_mac: BIRD_MAC,
                dst_mac: [0xff; 6],
                vlan_tci: None,
                src_addr: src.into(),
                dst_addr: dst.into(),
                dst_port: RIP_PORT,
            },
            &d,
        );
        // build_frame always sends from 520; set the source port and redo the checksum.
        let udp = 14 + 20;
        f[udp..udp + 2].copy_from_slice(&sport.to_be_bytes());
        let mut p = clua_pipeline::wire::udp::UdpPacket::new_unchecked(&mut f[udp..]);
        p.fill_checksum(src.into(), dst.into());
        f
    }

    const BIRD: [u8; 4] = [198, 51, 100, 1];
    const BCAST: [u8; 4] = [198, 51, 100, 255];

    #[test]
    fn bird_whole_table_request_is_answered_by_unicast() {
        let mut s = RipSpeaker::new(settings(false), 1, 0);
        s.set_routes(&set(&[a(), b(), c()]), 0);
        let out = s.on_frame(0, &hex(BIRD_REQUEST), 100);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].port, 0);
        assert_eq!(&out[0].frame[0..6], &BIRD_MAC);
        assert_eq!(&out[0].frame[6..12], &MAC0);
        let (info, repr) = decode(&out[0]);
        assert_eq!(info.dst_addr, Ipv4Addr::from(BIRD));
        assert_eq!(info.dst_port, 520);
        assert_eq!(repr.command, Command::Response);
        assert_eq!(advertised(&out, 0), vec![(c(), 1), (b(), 1), (a(), 1)]);
        assert_eq!(s.counters().requests_answered, 1);
        // Withdrawn routes are answered with 16 while they are kept.
        s.set_routes(&set(&[a()]), 5000);
        let out = s.on_frame(0, &hex(BIRD_REQUEST), 5100);
        assert_eq!(advertised(&out, 0), vec![(c(), 16), (b(), 16), (a(), 1)]);
        // A request on a port without RIP is refused.
        assert!(s.on_frame(5, &hex(BIRD_REQUEST), 5200).is_empty());
        assert_eq!(s.counters().refused_for(RipError::NotRipPort), 1);
    }

    #[test]
    fn whole_table_answers_are_rate_limited() {
        let mut s = RipSpeaker::new(settings(false), 1, 0);
        s.set_routes(&set(&[a()]), 0);
        let req = hex(BIRD_REQUEST);
        for _ in 0..TABLE_ANSWERS_PER_S {
            assert_eq!(s.on_frame(0, &req, 500).len(), 1);
        }
        assert!(s.on_frame(0, &req, 999).is_empty());
        assert_eq!(s.counters().refused_for(RipError::RateLimited), 1);
        // Specific requests are not limited (their answer is no bigger than the request).
        let q = RipRepr {
            command: Command::Request,
            auth: None,
            entries: vec![RipEntry::route(Ipv4Addr::new(203, 0, 113, 5), 32, 0)],
        };
        assert_eq!(
            s.on_frame(0, &frame(BIRD, 520, BCAST, &q, b""), 999).len(),
            1
        );
        // A second later the budget is back.
        assert_eq!(s.on_frame(0, &req, 1500).len(), 1);
        assert_eq!(
            s.counters().requests_answered,
            u64::from(TABLE_ANSWERS_PER_S) + 2
        );
    }

    #[test]
    fn specific_requests_get_our_metric_or_16_and_go_back_to_the_querying_port() {
        let mut s = RipSpeaker::new(settings(false), 1, 0);
        s.set_routes(&set(&[a(), b()]), 0);
        let mut odd = RipEntry::route(Ipv4Addr::new(203, 0, 113, 0), 24, 0);
        odd.mask = Ipv4Addr::new(255, 0, 255, 0);
        let q = RipRepr {
            command: Command::Request,
            auth: None,
            entries: vec![
                RipEntry::route(Ipv4Addr::new(203, 0, 113, 5), 32, 0),
                RipEntry::route(Ipv4Addr::new(203, 0, 113, 6), 32, 0),
                RipEntry::route(Ipv4Addr::new(203, 0, 113, 0), 24, 16),
                odd,
            ],
        };
        // From a query program on port 40000 (RFC 2453 §3.9.1: answered to that port).
        let out = s.on_frame(
            0,
            &frame([198, 51, 100, 9], 40000, [198, 51, 100, 2], &q, b""),
            1,
        );
        assert_eq!(out.len(), 1);
        let (info, repr) = decode(&out[0]);
        assert_eq!(info.dst_port, 40000);
        assert_eq!(info.src_port, 520);
        assert_eq!(info.dst_addr, Ipv4Addr::new(198, 51, 100, 9));
        let metrics: Vec<u32> = repr.entries.iter().map(|e| e.metric).collect();
        assert_eq!(metrics, vec![1, 16, 1, 16]);
        assert_eq!(
            repr.entries[3].mask, odd.mask,
            "entries are answered as asked"
        );
    }

    #[test]
    fn responses_are_counted_and_ignored() {
        let mut s = RipSpeaker::new(settings(false), 1, 0);
        s.set_routes(&set(&[a()]), 0);
        assert!(s.on_frame(0, &hex(BIRD_RESPONSE), 10).is_empty());
        assert_eq!(s.counters().responses_received, 1);
        assert_eq!(s.routes().collect::<Vec<_>>(), vec![(a(), 1)]);
        assert_eq!(s.counters().refused, [0; RipError::COUNT]);
        // A response from another source port than 520.
        let (_, d) = {
            let f = hex(BIRD_RESPONSE);
            let i = parse_frame(&f).unwrap();
            (i.clone(), f[i.payload].to_vec())
        };
        let repr = RipRepr::parse(&RipPacket::new_checked(&d).unwrap()).unwrap();
        assert!(s
            .on_frame(0, &frame(BIRD, 521, BCAST, &repr, b""), 20)
            .is_empty());
        assert_eq!(s.counters().refused_for(RipError::BadPort), 1);
        assert_eq!(s.counters().responses_received, 1);
    }

    #[test]
    fn refused_by_reason() {
        let mut s = RipSpeaker::new(settings(false), 1, 0);
        s.set_routes(&set(&[a()]), 0);
        let q = RipRepr::whole_table_request(None);
        let count = |s: &mut RipSpeaker, port, f: Vec<u8>, e: RipError| {
            let before = s.counters().refused_for(e);
            assert!(s.on_frame(port, &f, 1).is_empty(), "{e:?}");
            assert_eq!(s.counters().refused_for(e), before + 1, "{e:?}");
        };
        count(
            &mut s,
            0,
            frame([203, 0, 113, 9], 520, BCAST, &q, b""),
            RipError::NotOurSubnet,
        );
        count(
            &mut s,
            0,
            frame([0, 0, 0, 0], 520, BCAST, &q, b""),
            RipError::NotOurSubnet,
        );
        count(
            &mut s,
            1,
            frame(BIRD, 520, BCAST, &q, b""),
            RipError::NotForUs,
        );
        count(
            &mut s,
            0,
            frame(BIRD, 520, [198, 51, 100, 77], &q, b""),
            RipError::NotForUs,
        );
        let mut v1 = frame(BIRD, 520, BCAST, &q, b"");
        v1[14 + 28 + 1] = 1;
        count(&mut s, 0, v1, RipError::Malformed); // the UDP checksum no longer matches
        let mut v1 = frame(BIRD, 520, BCAST, &q, b"");
        v1[14 + 28 + 1] = 1;
        v1[14 + 26..14 + 28].fill(0); // no UDP checksum
        count(&mut s, 0, v1, RipError::BadVersion);
        let mut big = RipRepr::whole_table_request(None);
        big.command = Command::Response;
        big.entries = many(26)
            .iter()
            .map(|r| RipEntry::route(r.prefix, r.len, 1))
            .collect();
        count(
            &mut s,
            0,
            frame(BIRD, 520, BCAST, &big, b""),
            RipError::Oversized,
        );
        count(&mut s, 0, hex(BIRD_AUTH_RESPONSE), RipError::BadAuth);
        count(
            &mut s,
            0,
            hex(BIRD_RESPONSE)[..60].to_vec(),
            RipError::Malformed,
        );
        let mut to_521 = hex(BIRD_REQUEST);
        to_521[14 + 23] = 0x09; // UDP destination port 521 (checksum now wrong, zero it)
        to_521[14 + 26..14 + 28].fill(0);
        count(&mut s, 0, to_521, RipError::BadPort);
        assert_eq!(s.counters().requests_answered, 0);
        assert_eq!(s.counters().responses_received, 0);
        // The limited broadcast is for us on any RIP port's subnet.
        assert_eq!(
            s.on_frame(0, &frame(BIRD, 520, [255; 4], &q, b""), 2).len(),
            1
        );
    }

    #[test]
    fn rfc4822_bird_packets_accepted_and_answers_signed() {
        let mut s = RipSpeaker::new(settings(true), 1, 1_796_164_000_000);
        s.set_routes(&set(&[a(), b()]), 1_796_164_000_000);
        // BIRD's authenticated request (sequence number 0), answered, signed.
        let out = s.on_frame(0, &hex(BIRD_AUTH_REQUEST), 1_796_164_000_100);
        assert_eq!(out.len(), 1);
        let (_, repr) = decode(&out[0]);
        assert!(
            matches!(repr.auth, Some(AuthInfo::Crypto { key_id: 1, seq }) if seq >= 1_796_164_000)
        );
        assert_eq!(repr.entries.len(), 2);
        // Its authenticated response is heard.
        assert!(s.on_frame(0, &hex(BIRD_AUTH_RESPONSE), 1).is_empty());
        assert_eq!(s.counters().responses_received, 1);
        // Replayed: BIRD's request (seq 0) now lies below its response's (0x6b0f4d84).
        assert!(s.on_frame(0, &hex(BIRD_AUTH_REQUEST), 2).is_empty());
        assert_eq!(s.counters().refused_for(RipError::Replayed), 1);
        // The same sequence number again is accepted (non-decreasing, RFC 4822 §3.2.2).
        assert!(s.on_frame(0, &hex(BIRD_AUTH_RESPONSE), 3).is_empty());
        assert_eq!(s.counters().responses_received, 2);
        // Without authentication, a wrong key id, a wrong key, simple password: refused.
        assert!(s.on_frame(0, &hex(BIRD_RESPONSE), 4).is_empty());
        assert_eq!(s.counters().refused_for(RipError::Unauthenticated), 1);
        let q = |auth| RipRepr::whole_table_request(Some(auth));
        let crypto = |key_id, seq| AuthInfo::Crypto { key_id, seq };
        let f = frame(
            [198, 51, 100, 9],
            520,
            BCAST,
            &q(crypto(2, 5)),
            BIRD_PASSWORD,
        );
        assert!(s.on_frame(0, &f, 5).is_empty());
        let f = frame(
            [198, 51, 100, 9],
            520,
            BCAST,
            &q(crypto(1, 5)),
            b"not the password",
        );
        assert!(s.on_frame(0, &f, 6).is_empty());
        let simple = AuthInfo::Other {
            auth_type: wire::AUTH_PASSWORD,
            data: *b"clua-rip-test-pa",
        };
        assert!(s
            .on_frame(0, &frame([198, 51, 100, 9], 520, BCAST, &q(simple), b""), 7)
            .is_empty());
        assert_eq!(s.counters().refused_for(RipError::BadAuth), 3);
        // A refused packet does not move the replay window: seq 5 from .9 is still fresh.
        let f = frame(
            [198, 51, 100, 9],
            520,
            BCAST,
            &q(crypto(1, 5)),
            BIRD_PASSWORD,
        );
        assert_eq!(s.on_frame(0, &f, 8).len(), 1);
        let f = frame(
            [198, 51, 100, 9],
            520,
            BCAST,
            &q(crypto(1, 4)),
            BIRD_PASSWORD,
        );
        assert!(s.on_frame(0, &f, 9).is_empty());
        assert_eq!(s.counters().refused_for(RipError::Replayed), 2);
        assert_eq!(s.counters().requests_answered, 2);
    }

    #[test]
    fn our_signed_updates_are_accepted_by_a_second_speaker_once() {
        let mut tx = RipSpeaker::new(settings(true), 1, 0);
        let mut st = settings(true);
        st.ports[0].addr = Ipv4Addr::new(198, 51, 100, 3);
        let mut rx = RipSpeaker::new(st, 2, 0);
        let out = tx.set_routes(&many(30), 0);
        for t in out.iter().filter(|t| t.port == 0) {
            assert!(rx.on_frame(0, &t.frame, 1).is_empty());
        }
        assert_eq!(rx.counters().responses_received, 2);
        // Later packets carry higher sequence numbers; an earlier one is then a replay.
        let later = tx.set_routes(&many(31), 5000);
        assert!(rx.on_frame(0, &later[0].frame, 5001).is_empty());
        assert!(rx.on_frame(0, &out[0].frame, 5002).is_empty());
        assert_eq!(rx.counters().responses_received, 3);
        assert_eq!(rx.counters().refused_for(RipError::Replayed), 1);
        // However many packets it sent, a speaker restarted a second later is not a replay.
        let mut heard = 0;
        for t in 0..50 {
            let out = tx.set_routes(&many(if t % 2 == 0 { 200 } else { 1 }), 6000 + t * 1000);
            for f in out.iter().filter(|f| f.port == 0) {
                rx.on_frame(0, &f.frame, 6000 + t * 1000);
                heard += 1;
            }
        }
        assert!(tx.counters().updates_sent > 200);
        assert_eq!(rx.counters().responses_received, 3 + heard);
        let mut restarted = RipSpeaker::new(settings(true), 3, 56_000);
        let out = restarted.set_routes(&many(1), 56_000);
        assert!(rx.on_frame(0, &out[0].frame, 56_001).is_empty());
        assert_eq!(rx.counters().responses_received, 4 + heard);
        assert_eq!(rx.counters().refused_for(RipError::Replayed), 1);
    }

    #[test]
    fn vlan_tagged_request_answered_on_the_same_vlan() {
        let mut s = RipSpeaker::new(settings(false), 1, 0);
        s.set_routes(&set(&[a()]), 0);
        let untagged = hex(BIRD_REQUEST);
        let mut tagged = untagged[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x20, 0x64]);
        tagged.extend_from_slice(&untagged[12..]);
        let out = s.on_frame(0, &tagged, 1);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].frame[12..16], &[0x81, 0x00, 0x20, 0x64]);
        assert_eq!(decode(&out[0]).0.vlan_tci, Some(0x2064));
    }

    #[test]
    fn shutdown_withdraws_everything_at_once_on_every_port() {
        let mut s = RipSpeaker::new(settings(false), 1, 0);
        s.set_routes(&set(&[a(), b()]), 0);
        // Inside the triggered window, with a change pending: shutdown does not wait.
        assert!(s.set_routes(&set(&[a(), b(), c()]), 100).is_empty());
        let out = s.shutdown();
        assert_eq!(advertised(&out, 0), vec![(c(), 16), (b(), 16), (a(), 16)]);
        assert_eq!(advertised(&out, 1), vec![(c(), 16), (b(), 16), (a(), 16)]);
        assert!(s.routes().all(|(_, m)| m == 16));
        // Nothing is pending any more; the withdrawn routes are forgotten in time.
        assert!(s.on_tick(1000).is_empty());
        assert_eq!(s.routes().count(), 3);
        s.on_tick(100 + GARBAGE_MS);
        assert_eq!(s.routes().count(), 0);
        // An empty speaker sends nothing.
        assert!(s.shutdown().is_empty());
    }

    #[test]
    fn settings_are_clamped() {
        let st = RipSettings {
            update_ms: 0,
            jitter_ms: 10,
            triggered_min_ms: 0,
            ..RipSettings::default()
        };
        let s = RipSpeaker::new(st, 0, 0);
        assert_eq!(s.settings().update_ms, 1);
        assert_eq!(s.settings().jitter_ms, 0);
        assert_eq!(s.settings().triggered_min_ms, 1000);
        assert_eq!(s.next_wakeup(), u64::MAX);
        let d = RipSettings::default();
        assert_eq!(
            (d.update_ms, d.jitter_ms, d.triggered_min_ms),
            (30_000, 5_000, 1_000)
        );
        assert!(d.ports.is_empty() && d.auth.is_none());
    }

    #[test]
    fn random_frames_never_panic() {
        let mut s = RipSpeaker::new(settings(true), 1, 0);
        s.set_routes(&set(&[a(), b()]), 0);
        let mut st = 99u64;
        let seeds = [
            hex(BIRD_REQUEST),
            hex(BIRD_AUTH_RESPONSE),
            hex(BIRD_AUTH_REQUEST),
        ];
        for i in 0..20_000u64 {
            let mut f = seeds[(i % 3) as usize].clone();
            for _ in 0..1 + i % 4 {
                let r = splitmix64(&mut st);
                let at = (r as usize) % f.len();
                f[at] = (r >> 32) as u8;
            }
            let n = f.len() - (splitmix64(&mut st) as usize % 8).min(f.len());
            let _ = s.on_frame((i % 3) as u16, &f[..n], i);
        }
        let total: u64 = s.counters().refused.iter().sum();
        assert!(total > 10_000);
    }

    /// The frames of the BIRD interop lab (docs/rip.md, "Peering with BIRD"): with
    /// `CLUA_RIP_FRAMES=DIR`, writes into DIR, one hex frame a line, what a router on
    /// 198.51.100.2/24 (MAC 02:00:00:00:00:02, broadcast) sends for the aliases web
    /// (198.51.100.100) and virt (203.0.113.5, virtual, mask 255.255.255.0): `FLAVOUR-announce.hex`
    /// (the first triggered update) and `FLAVOUR-withdraw.hex` (shutdown), FLAVOUR `noauth` or
    /// `auth` (key id 1, the BIRD captures' password, sequence numbers from the wall clock),
    /// `mcast` (authenticated, to 224.0.0.9), or `second` (unauthenticated, from a second router
    /// at 198.51.100.3, MAC 02:00:00:00:00:03).
    #[test]
    #[ignore = "writes the frames for the BIRD lab; run with CLUA_RIP_FRAMES=DIR"]
    fn bird_interop_frames() {
        use crate::apply::ControlState;
        use crate::model::{AliasSpec, Cluster, PortSpec, Prefix};
        use clua_pipeline::snapshot::PortRole;
        let dir = std::env::var("CLUA_RIP_FRAMES").expect("CLUA_RIP_FRAMES=DIR");
        let alias = |name: &str, addr: [u8; 4], virtual_subnet, mask: Option<[u8; 4]>| AliasSpec {
            name: name.into(),
            address: addr.into(),
            members: vec![],
            rpri: 1,
            virtual_subnet,
            mask: mask.map(Ipv4Addr::from),
            vmac: false,
        };
        let state = ControlState {
            cluster: Cluster {
                name: "lab".into(),
                default_alias: "web".into(),
                max_aliases: 8,
                ports: vec![PortSpec {
                    name: "client".into(),
                    role: PortRole::Client,
                    address: Some(Prefix {
                        addr: Ipv4Addr::new(198, 51, 100, 2),
                        len: 24,
                    }),
                    mtu: 1500,
                    mac: Some(MAC0),
                    flow_source: None,
                }],
                members: vec![],
                aliases: vec![
                    alias("web", [198, 51, 100, 100], false, None),
                    alias("virt", [203, 0, 113, 5], true, Some([255, 255, 255, 0])),
                ],
                services: vec![],
                advert_port: 9471,
            },
            services_file: None,
            resvok: false,
        };
        let routes = crate::rip::routes(&state);
        assert_eq!(routes.len(), 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let write = |name: String, out: &[Transmit]| {
            let text: String = out
                .iter()
                .map(|t| {
                    t.frame
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        + "\n"
                })
                .collect();
            std::fs::write(format!("{dir}/{name}"), text).unwrap();
        };
        for (flavour, auth, mode) in [
            ("noauth", false, RipMode::Broadcast),
            ("auth", true, RipMode::Broadcast),
            ("mcast", true, RipMode::Multicast),
            ("second", false, RipMode::Broadcast),
        ] {
            let mut st = settings(auth);
            st.ports.truncate(1);
            st.ports[0].mode = mode;
            if flavour == "second" {
                // A second alias router on the LAN, for ECMP at BIRD.
                st.ports[0].addr = Ipv4Addr::new(198, 51, 100, 3);
                st.ports[0].mac = [2, 0, 0, 0, 0, 3];
            }
            let mut s = RipSpeaker::new(st, 1, now);
            write(
                format!("{flavour}-announce.hex"),
                &s.set_routes(&routes, now),
            );
            write(format!("{flavour}-withdraw.hex"), &s.shutdown());
        }
    }
}
