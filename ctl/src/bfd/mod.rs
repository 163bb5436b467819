//! BFD (RFC 5880, single hop over IPv4/UDP as RFC 5881 says, asynchronous mode) with the
//! upstream router, so that when an alias router dies the upstream drops the routes it learnt
//! from it by RIP within the BFD Detection Time (300 ms at the defaults) instead of RIP's
//! 180 s (CA6, issue 8 "RIPv2"). docs/bfd.md is the operator's page.
//!
//! Sans-I/O like the rest of the control plane: punted frames ([`Bfd::on_frame`]) and ticks
//! ([`Bfd::on_tick`]) with the caller's `now` in milliseconds go in; frames to send
//! ([`Transmit`]) come out, and state changes wait in [`Bfd::take_events`]. Discriminators,
//! source ports and jitter come from the `seed` given to [`Bfd::new`], so tests are
//! deterministic.
//!
//! One session per configured [`BfdPeer`]. A session is passive (RFC 5880 §6.1) until it knows
//! the peer's MAC, learnt from the source of the peer's valid packets or given by
//! [`Bfd::set_peer_mac`]; BIRD is active, so its first packet starts the session.
//!
//! Not supported: authentication (packets with the A bit are refused, `unexpected_auth`),
//! Demand mode (we never set D; a peer's D is obeyed as RFC 5880 §6.8.7 says), the Echo
//! function (Required Min Echo RX is always 0), multihop (RFC 5883), IPv6.

mod session;
pub mod wire;

use std::net::Ipv4Addr;

use clua_pipeline::snapshot::PortId;
use clua_pipeline::wire::checksum::ChecksumCapabilities;
use clua_pipeline::wire::ethernet::{is_multicast, parse_l2, EtherType, EthernetFrame};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet};
use clua_pipeline::wire::udp::UdpPacket;
use clua_pipeline::wire::WireError;

use crate::model::Mac;
use crate::plane::Transmit;
pub use session::SLOW_TX_US;
use session::{RxOutcome, Session};
pub use wire::{BfdError, BfdPacket, BfdRepr, BfdState, Diag, BFD_PORT, SOURCE_PORTS, TTL};

/// The default Desired Min TX Interval once Up (ms).
pub const DEFAULT_MIN_TX_MS: u32 = 100;
/// The default Required Min RX Interval (ms).
pub const DEFAULT_MIN_RX_MS: u32 = 100;
/// The default Detect Mult.
pub const DEFAULT_MULTIPLIER: u8 = 3;
/// The largest interval the wire can carry, in ms (u32 microseconds).
pub const MAX_INTERVAL_MS: u32 = u32::MAX / 1000;
/// IPv4 DSCP CS6 (network control, RFC 4594), the class routing protocols use.
pub const DSCP_CS6: u8 = 0xc0;
/// Length of an untagged frame we send: Ethernet, IPv4, UDP, a 24-byte Control packet.
pub const FRAME_LEN: usize = 14 + 20 + 8 + wire::HEADER_LEN;
/// The most events kept between two [`Bfd::take_events`] calls (the oldest are kept, the rest
/// counted in [`BfdCounters::events_dropped`]), so a caller that never takes them does not make
/// the speaker grow without bound.
pub const MAX_EVENTS: usize = 4096;

/// One BFD peer (the upstream router) on one client-facing port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdPeer {
    /// The port the peer is reached on.
    pub port: PortId,
    /// Our MAC on that port (the source of our frames).
    pub local_mac: Mac,
    /// Our address on that port (the source of our packets, where the peer sends to).
    pub local_addr: Ipv4Addr,
    /// The peer's address (on the same link: single hop).
    pub peer_addr: Ipv4Addr,
}

/// BFD configuration: the peers and the timers every session uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdSettings {
    /// One session per peer; a second entry for the same port and peer address is ignored.
    pub peers: Vec<BfdPeer>,
    /// Desired Min TX Interval once Up (ms; 1 s at least while not Up, RFC 5880 §6.8.3).
    /// Default 100.
    pub min_tx_ms: u32,
    /// Required Min RX Interval (ms). Default 100.
    pub min_rx_ms: u32,
    /// Detect Mult: packets the peer may miss before we declare it down. Default 3.
    pub multiplier: u8,
    /// Refuse packets whose UDP source port is outside 49152..=65535 (`bad_source_port`).
    /// RFC 5881 §4 asks this range of senders, not receivers, and BIRD 2.0.12 sends from the
    /// kernel's ephemeral range (32768..=60999 on Linux), so the default is `false`: only
    /// source port 0 is refused then. Our own packets always use the RFC 5881 range.
    pub strict_source_port: bool,
}

impl Default for BfdSettings {
    fn default() -> Self {
        BfdSettings {
            peers: Vec::new(),
            min_tx_ms: DEFAULT_MIN_TX_MS,
            min_rx_ms: DEFAULT_MIN_RX_MS,
            multiplier: DEFAULT_MULTIPLIER,
            strict_source_port: false,
        }
    }
}

/// Why [`BfdSettings::validate`] refused a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BfdSettingsError {
    /// `min_tx_ms` or `min_rx_ms` is 0 or above [`MAX_INTERVAL_MS`].
    #[error("BFD intervals must be 1..=4294967 ms")]
    BadInterval,
    /// `multiplier` is 0.
    #[error("BFD multiplier must be at least 1")]
    BadMultiplier,
    /// The same peer address twice on one port.
    #[error("BFD peer {0} listed twice on one port")]
    DuplicatePeer(Ipv4Addr),
    /// A peer or local address that is not a unicast address, or a multicast local MAC.
    #[error("BFD peer {0}: addresses must be unicast")]
    BadAddress(Ipv4Addr),
}

impl BfdSettings {
    /// Checks what [`Bfd::new`] would otherwise clamp or ignore; for the configuration loader.
    pub fn validate(&self) -> Result<(), BfdSettingsError> {
        for ms in [self.min_tx_ms, self.min_rx_ms] {
            if ms == 0 || ms > MAX_INTERVAL_MS {
                return Err(BfdSettingsError::BadInterval);
            }
        }
        if self.multiplier == 0 {
            return Err(BfdSettingsError::BadMultiplier);
        }
        let unicast = |a: Ipv4Addr| {
            !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
        };
        for (i, p) in self.peers.iter().enumerate() {
            if !unicast(p.peer_addr) || !unicast(p.local_addr) || is_multicast(&p.local_mac) {
                return Err(BfdSettingsError::BadAddress(p.peer_addr));
            }
            if self.peers[..i]
                .iter()
                .any(|q| q.port == p.port && q.peer_addr == p.peer_addr)
            {
                return Err(BfdSettingsError::DuplicatePeer(p.peer_addr));
            }
        }
        Ok(())
    }
}

/// A session state change, for the log and the `state_changes` counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdEvent {
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// The state before.
    pub from: BfdState,
    /// The state after.
    pub to: BfdState,
    /// Our diagnostic after the change (why we went down; `None` on the way up).
    pub diag: Diag,
}

/// One session as `cluamgr -s` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// The port.
    pub port: PortId,
    /// Our address on the port.
    pub local_addr: Ipv4Addr,
    /// The peer's MAC, once known (None: the session is passive).
    pub peer_mac: Option<Mac>,
    /// Our state.
    pub state: BfdState,
    /// The state the peer last reported.
    pub remote_state: BfdState,
    /// Our discriminator.
    pub local_discr: u32,
    /// The peer's discriminator (0: not heard since the last Detection Time expiry).
    pub remote_discr: u32,
    /// Our diagnostic: why the session last went down.
    pub diag: Diag,
    /// The peer's last diagnostic.
    pub remote_diag: Diag,
    /// The negotiated transmit interval (ms, rounded up; before jitter).
    pub tx_interval_ms: u64,
    /// The Detection Time (ms, rounded up; 0 before the peer is heard).
    pub detection_time_ms: u64,
    /// Whether a Poll Sequence of ours is waiting for the peer's Final.
    pub poll: bool,
}

/// Packet and state counters (the lead exports them to Prometheus).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BfdCounters {
    /// Control packets accepted.
    pub received: u64,
    /// Control packets sent.
    pub sent: u64,
    /// Session state changes (also reported as [`BfdEvent`]s).
    pub state_changes: u64,
    /// Events not kept because [`Bfd::take_events`] was not called for a long time.
    pub events_dropped: u64,
    /// Frames refused, by [`BfdError::index`].
    pub refused: [u64; BfdError::COUNT],
}

impl BfdCounters {
    /// The refusals with their metric labels.
    pub fn refused_by_label(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        BfdError::ALL
            .iter()
            .map(|e| (e.name(), self.refused[e.index()]))
    }
}

/// A small deterministic PRNG (SplitMix64): discriminators, source ports and jitter come from
/// the seed, never from global randomness.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A value in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// The BFD speaker: every session of this router.
#[derive(Clone, Debug)]
pub struct Bfd {
    sessions: Vec<Session>,
    rng: Rng,
    events: Vec<BfdEvent>,
    counters: BfdCounters,
    strict_source_port: bool,
}

fn us(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}
fn ms_up(us: u64) -> u64 {
    us.div_ceil(1000)
}

impl Bfd {
    /// Sessions for `settings.peers`, all Down. Out-of-range timers are clamped (intervals to
    /// 1..=[`MAX_INTERVAL_MS`], the multiplier to at least 1) and duplicate peers dropped:
    /// [`BfdSettings::validate`] reports them. `now_ms` is the clock the other calls use.
    pub fn new(settings: BfdSettings, seed: u64, now_ms: u64) -> Bfd {
        let _ = now_ms; // Nothing is due before the first packet or tick.
        let mut rng = Rng::new(seed);
        let clamp = |ms: u32| ms.clamp(1, MAX_INTERVAL_MS) * 1000;
        let (tx, rx) = (clamp(settings.min_tx_ms), clamp(settings.min_rx_ms));
        let mult = settings.multiplier.max(1);
        let mut sessions: Vec<Session> = Vec::new();
        for p in settings.peers {
            if sessions
                .iter()
                .any(|s| s.peer.port == p.port && s.peer.peer_addr == p.peer_addr)
            {
                continue;
            }
            // Discriminators: non-zero and unique among ours (RFC 5880 §6.8.1).
            let discr = loop {
                let d = rng.next_u64() as u32;
                if d != 0 && sessions.iter().all(|s| s.local_discr != d) {
                    break d;
                }
            };
            let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
            let src_port = SOURCE_PORTS.start() + rng.below(span) as u16;
            sessions.push(Session::new(p, discr, src_port, tx, rx, mult));
        }
        Bfd {
            sessions,
            rng,
            events: Vec::new(),
            counters: BfdCounters::default(),
            strict_source_port: settings.strict_source_port,
        }
    }

    /// A punted frame received on `port`: IPv4/UDP to port 3784, untagged or with one 802.1Q
    /// tag. Refusals are counted ([`BfdCounters::refused`]) and change nothing. Returns what
    /// must be sent at once: the answer to a Poll, or the news of a state change.
    pub fn on_frame(&mut self, port: PortId, frame: &[u8], now_ms: u64) -> Vec<Transmit> {
        match self.receive(port, frame, us(now_ms)) {
            Ok(Some(t)) => vec![t],
            Ok(None) => Vec::new(),
            Err(e) => {
                self.counters.refused[e.index()] += 1;
                Vec::new()
            }
        }
    }

    fn receive(
        &mut self,
        port: PortId,
        frame: &[u8],
        now_us: u64,
    ) -> Result<Option<Transmit>, BfdError> {
        let wire_err = |e: WireError| match e {
            WireError::Truncated => BfdError::Truncated,
            _ => BfdError::Malformed,
        };
        let l2 = parse_l2(frame).map_err(wire_err)?;
        if l2.ethertype != EtherType::IPV4 {
            return Err(BfdError::Malformed);
        }
        let eth = EthernetFrame::new_unchecked(frame);
        let src_mac = eth.src_addr();
        if is_multicast(&src_mac) {
            return Err(BfdError::Malformed);
        }
        // Checksums are not verified under cfg(fuzzing), so that mutated input gets through.
        let caps = ChecksumCapabilities::default();
        let ip = Ipv4Packet::new_checked(&frame[l2.l3_offset..]).map_err(wire_err)?;
        if caps.ipv4.rx() && !ip.verify_checksum() {
            return Err(BfdError::BadChecksum);
        }
        if ip.next_header() != protocol::UDP || ip.is_fragment() {
            return Err(BfdError::Malformed);
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let udp = UdpPacket::new_checked(ip.payload()).map_err(wire_err)?;
        if udp.dst_port() != BFD_PORT {
            return Err(BfdError::BadDestPort);
        }
        if caps.udp.rx() && !udp.verify_checksum(src, dst) {
            return Err(BfdError::BadChecksum);
        }
        let idx = self
            .sessions
            .iter()
            .position(|s| s.peer.port == port && s.peer.peer_addr == src)
            .filter(|&i| self.sessions[i].peer.local_addr == dst)
            .ok_or(BfdError::UnknownPeer)?;
        if ip.hop_limit() != TTL {
            return Err(BfdError::BadTtl);
        }
        let sport = udp.src_port();
        if sport == 0 || (self.strict_source_port && !SOURCE_PORTS.contains(&sport)) {
            return Err(BfdError::BadSourcePort);
        }
        let r = BfdRepr::parse_bytes(udp.payload())?;
        // Conforming senders put nothing after the packet (Ethernet padding is outside the
        // IPv4 total length); RFC 5880 only asks Length <= payload, we ask equality.
        if udp.payload().len() > usize::from(udp.payload()[3]) {
            return Err(BfdError::Oversized);
        }
        let s = &mut self.sessions[idx];
        let before = self.events.len();
        let out = s.receive(
            &r,
            src_mac,
            l2.vlan,
            now_us,
            &mut self.rng,
            &mut self.events,
        );
        self.note_events(before);
        let out = out?;
        self.counters.received += 1;
        Ok(self.send_outcome(idx, out, now_us))
    }

    /// Counts the events sessions pushed since `before`, and keeps at most
    /// [`MAX_EVENTS`] of them (the oldest) for a caller that does not take them.
    fn note_events(&mut self, before: usize) {
        let n = self.events.len();
        self.counters.state_changes += (n - before) as u64;
        if n > MAX_EVENTS {
            self.counters.events_dropped += (n - MAX_EVENTS) as u64;
            self.events.truncate(MAX_EVENTS);
        }
    }

    fn send_outcome(&mut self, idx: usize, out: RxOutcome, now_us: u64) -> Option<Transmit> {
        if !out.send {
            return None;
        }
        let s = &mut self.sessions[idx];
        let t = frame(s, &s.packet(out.final_))?;
        s.sent_now(now_us, &mut self.rng);
        self.counters.sent += 1;
        Some(t)
    }

    /// Timers: Detection Time expiries (Down, diag 1) and the periodic packets, jittered
    /// (RFC 5880 §6.8.7). Call it at least every few milliseconds, or at [`Bfd::next_wakeup`].
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Transmit> {
        let now_us = us(now_ms);
        let mut out = Vec::new();
        let before = self.events.len();
        for s in &mut self.sessions {
            if let Some(r) = s.tick(now_us, &mut self.rng, &mut self.events) {
                if let Some(t) = frame(s, &r) {
                    out.push(t);
                }
            }
        }
        self.note_events(before);
        self.counters.sent += out.len() as u64;
        out
    }

    /// Every session to AdminDown (diag 7, RFC 5880 §6.8.16), and that packet at once to every
    /// peer whose MAC is known, so the peer takes the routes down now rather than a Detection
    /// Time later. Sessions stay AdminDown: nothing more is sent, received packets are
    /// discarded.
    pub fn shutdown(&mut self) -> Vec<Transmit> {
        let mut out = Vec::new();
        let before = self.events.len();
        for s in &mut self.sessions {
            s.admin_down(&mut self.events);
            if let Some(t) = frame(s, &s.packet(false)) {
                out.push(t);
            }
        }
        self.note_events(before);
        self.counters.sent += out.len() as u64;
        out
    }

    /// The MAC of `peer` learnt elsewhere (ARP): its sessions become active. A later packet
    /// from the peer overrides it with the packet's source MAC.
    pub fn set_peer_mac(&mut self, peer: Ipv4Addr, mac: Mac) {
        if is_multicast(&mac) {
            return;
        }
        for s in self
            .sessions
            .iter_mut()
            .filter(|s| s.peer.peer_addr == peer)
        {
            s.peer_mac = Some(mac);
        }
    }

    /// The state changes since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<BfdEvent> {
        std::mem::take(&mut self.events)
    }

    /// Every session, in configuration order.
    pub fn sessions(&self) -> impl Iterator<Item = SessionView> + '_ {
        self.sessions.iter().map(|s| SessionView {
            peer: s.peer.peer_addr,
            port: s.peer.port,
            local_addr: s.peer.local_addr,
            peer_mac: s.peer_mac,
            state: s.state,
            remote_state: s.remote_state,
            local_discr: s.local_discr,
            remote_discr: s.remote_discr,
            diag: s.local_diag,
            remote_diag: s.remote_diag,
            tx_interval_ms: ms_up(s.tx_interval_us()),
            detection_time_ms: ms_up(s.detection_time_us()),
            poll: s.poll,
        })
    }

    /// The counters.
    pub fn counters(&self) -> &BfdCounters {
        &self.counters
    }

    /// When [`Bfd::on_tick`] next has something to do (ms, on the caller's clock; `u64::MAX`
    /// if nothing is pending).
    pub fn next_wakeup(&self) -> u64 {
        self.sessions
            .iter()
            .filter_map(Session::next_wakeup_us)
            .min()
            .map_or(u64::MAX, ms_up)
    }
}

/// The frame carrying `r` for session `s`, if its peer's MAC is known: Ethernet from our MAC
/// to the peer's (tagged if the peer's packets were), IPv4 TTL 255 DSCP CS6 from our address to
/// the peer's, UDP from the session's source port to 3784, both checksums computed.
fn frame(s: &Session, r: &BfdRepr) -> Option<Transmit> {
    let mut datagram = [0u8; wire::HEADER_LEN];
    r.emit(&mut BfdPacket::new_unchecked(&mut datagram[..]));
    let frame = crate::frame::UdpFrame {
        src_mac: s.peer.local_mac,
        dst_mac: s.peer_mac?,
        src: s.peer.local_addr,
        dst: s.peer.peer_addr,
        ttl: TTL,
        src_port: s.src_port,
        dst_port: BFD_PORT,
        dscp_ecn: DSCP_CS6,
        dont_frag: true,
        vlan_tci: s.vlan.map(|vid| vid & 0x0fff),
    }
    .build(&datagram)?;
    Some(Transmit {
        port: s.peer.port,
        frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use wire::tests::{BIRD_DOWN, BIRD_FRAME};
    use wire::{flag, HEADER_LEN};

    /// aliasd's side (A) and the upstream router's (B), each the other's peer on port 0.
    const A_MAC: Mac = [2, 0, 0, 0, 0, 0x0a];
    const B_MAC: Mac = [2, 0, 0, 0, 0, 0x0b];
    const A_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
    const B_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

    fn settings(local_mac: Mac, local: Ipv4Addr, peer: Ipv4Addr) -> BfdSettings {
        BfdSettings {
            peers: vec![BfdPeer {
                port: 0,
                local_mac,
                local_addr: local,
                peer_addr: peer,
            }],
            ..BfdSettings::default()
        }
    }

    fn speaker_a() -> Bfd {
        Bfd::new(settings(A_MAC, A_ADDR, B_ADDR), 1, 0)
    }
    fn speaker_b() -> Bfd {
        Bfd::new(settings(B_MAC, B_ADDR, A_ADDR), 2, 0)
    }

    /// The Control packet in an untagged frame we sent, checked independently of `frame()`.
    fn bfd_of(f: &[u8]) -> BfdRepr {
        BfdRepr::parse_bytes(&f[42..]).expect("a valid control packet")
    }

    /// Two speakers on one link with fake time: A knows B's MAC (the upstream is active),
    /// B learns A's from its packets. `cut` drops what B sends to A.
    struct Net {
        a: Bfd,
        b: Bfd,
        now: u64,
        cut: bool,
        /// Every packet on the wire: (time, sender 'a' or 'b', packet).
        log: Vec<(u64, char, BfdRepr)>,
        /// Every (sender, UDP source port) seen.
        sports: std::collections::HashSet<(char, u16)>,
    }

    impl Net {
        fn new() -> Net {
            let mut b = speaker_b();
            b.set_peer_mac(A_ADDR, A_MAC);
            Net {
                a: speaker_a(),
                b,
                now: 0,
                cut: false,
                log: Vec::new(),
                sports: Default::default(),
            }
        }
        fn deliver(&mut self, from: char, frames: Vec<Transmit>) {
            let mut q: VecDeque<(char, Transmit)> = frames.into_iter().map(|t| (from, t)).collect();
            while let Some((from, t)) = q.pop_front() {
                self.log.push((self.now, from, bfd_of(&t.frame)));
                self.sports
                    .insert((from, u16::from_be_bytes([t.frame[34], t.frame[35]])));
                let (to, reply_from) = match from {
                    'a' => (&mut self.b, 'b'),
                    _ if self.cut => continue,
                    _ => (&mut self.a, 'a'),
                };
                for r in to.on_frame(0, &t.frame, self.now) {
                    q.push_back((reply_from, r));
                }
            }
        }
        fn step(&mut self) {
            self.now += 1;
            let ta = self.a.on_tick(self.now);
            let tb = self.b.on_tick(self.now);
            self.deliver('a', ta);
            self.deliver('b', tb);
        }
        fn run_until(&mut self, t: u64) {
            while self.now < t {
                self.step();
            }
        }
        fn state(b: &Bfd) -> BfdState {
            b.sessions().next().unwrap().state
        }
        fn up(&mut self) {
            while !(Net::state(&self.a) == BfdState::Up && Net::state(&self.b) == BfdState::Up) {
                assert!(self.now < 5_000, "no bring-up within 5 s");
                self.step();
            }
        }
        fn sent_by(&self, who: char, from: u64) -> Vec<(u64, BfdRepr)> {
            self.log
                .iter()
                .filter(|(t, w, _)| *w == who && *t >= from)
                .map(|(t, _, r)| (*t, *r))
                .collect()
        }
    }

    fn transitions(b: &mut Bfd) -> Vec<(BfdState, BfdState, Diag)> {
        b.take_events()
            .into_iter()
            .map(|e| (e.from, e.to, e.diag))
            .collect()
    }

    #[test]
    fn bring_up_down_init_up_between_two_speakers() {
        use BfdState::*;
        let mut n = Net::new();
        n.up();
        // B (active, knows A's MAC) sends Down; A goes Init and answers at once; B goes
        // straight to Up on A's Init; A to Up on B's Up (RFC 5880 §6.8.6).
        assert_eq!(
            transitions(&mut n.a),
            [(Down, Init, Diag::None), (Init, Up, Diag::None)]
        );
        assert_eq!(transitions(&mut n.b), [(Down, Up, Diag::None)]);
        assert!(n.now <= 2, "the exchange is immediate, took {} ms", n.now);
        assert_eq!(n.a.counters().state_changes, 2);
        // The first packets carried the slow rate (§6.8.3).
        let first = n.sent_by('b', 0)[0].1;
        assert_eq!((first.state, first.your_discr), (Down, 0));
        assert_eq!(first.desired_min_tx_us, 1_000_000);
        // Once both Polls are answered the configured rate applies.
        n.run_until(n.now + 1_000);
        let (va, vb) = (
            n.a.sessions().next().unwrap(),
            n.b.sessions().next().unwrap(),
        );
        assert_eq!((va.state, va.remote_state), (Up, Up));
        assert_eq!(
            (va.remote_discr, vb.remote_discr),
            (vb.local_discr, va.local_discr)
        );
        assert_ne!(va.local_discr, 0);
        assert_eq!((va.tx_interval_ms, va.detection_time_ms), (100, 300));
        assert!(!va.poll && !vb.poll);
        assert_eq!(va.peer_mac, Some(B_MAC));
        assert_eq!(n.a.counters().refused, [0; BfdError::COUNT]);
        assert_eq!(n.b.counters().refused, [0; BfdError::COUNT]);
    }

    #[test]
    fn poll_sequence_on_going_up_is_answered_with_final() {
        let mut n = Net::new();
        n.up();
        n.run_until(n.now + 500);
        for who in ['a', 'b'] {
            let other = if who == 'a' { 'b' } else { 'a' };
            let sent = n.sent_by(who, 0);
            // The first Up packet polls with the new Desired Min TX (100 ms).
            let (t_poll, p) = *sent.iter().find(|(_, r)| r.poll).expect("a poll");
            assert_eq!((p.state, p.desired_min_tx_us), (BfdState::Up, 100_000));
            // The peer answers at once with F set and P clear.
            let (t_fin, f) = *n
                .sent_by(other, t_poll)
                .iter()
                .find(|(_, r)| r.final_)
                .expect("a final");
            assert_eq!(t_fin, t_poll, "a Final is not delayed");
            assert!(!f.poll);
            // After the Final, no more polls.
            assert!(n.sent_by(who, t_fin + 1).iter().all(|(_, r)| !r.poll));
        }
        // Never P and F together, never D, M, A or C.
        for (_, _, r) in &n.log {
            assert!(!(r.poll && r.final_));
            assert!(!(r.demand || r.auth || r.cpi));
        }
    }

    /// Gaps between periodic packets of `who` from `from`, Finals and state-change packets left
    /// out (they do not follow the timer).
    fn gaps(n: &Net, who: char, from: u64) -> Vec<u64> {
        let t: Vec<u64> = n
            .sent_by(who, from)
            .iter()
            .filter(|(_, r)| !r.final_)
            .map(|(t, _)| *t)
            .collect();
        t.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[test]
    fn periodic_rate_with_jitter_up_and_slow_while_down() {
        let mut n = Net::new();
        n.up();
        let t0 = n.now + 200;
        n.run_until(t0 + 10_000);
        let g = gaps(&n, 'a', t0);
        // RFC 5880 §6.8.7: the interval reduced by 0-25 %: 75..=100 ms at 100 ms.
        assert!(g.iter().all(|&d| (75..=100).contains(&d)), "{g:?}");
        assert!(g.iter().min() != g.iter().max(), "no jitter: {g:?}");
        assert!(
            (100..=134).contains(&g.len()),
            "{} packets in 10 s",
            g.len()
        );
        // A peer that never answers: Down packets at the slow rate, 750..=1000 ms.
        let mut lone = Bfd::new(settings(A_MAC, A_ADDR, B_ADDR), 7, 0);
        lone.set_peer_mac(B_ADDR, B_MAC);
        let mut times = Vec::new();
        for now in 0..10_000 {
            for t in lone.on_tick(now) {
                assert_eq!(bfd_of(&t.frame).state, BfdState::Down);
                times.push(now);
            }
        }
        let g: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(g.iter().all(|&d| (750..=1000).contains(&d)), "{g:?}");
        assert!(g.len() >= 9);
    }

    #[test]
    fn jitter_with_multiplier_one_is_10_to_25_percent() {
        let mut s = settings(A_MAC, A_ADDR, B_ADDR);
        s.multiplier = 1;
        let mut lone = Bfd::new(s, 3, 0);
        lone.set_peer_mac(B_ADDR, B_MAC);
        let mut times = Vec::new();
        for now in 0..60_000 {
            if !lone.on_tick(now).is_empty() {
                times.push(now);
            }
        }
        let g: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(g.iter().all(|&d| (750..=900).contains(&d)), "{g:?}");
        assert!(g.len() > 60);
    }

    #[test]
    fn detection_timeout_goes_down_with_diag_1() {
        let mut n = Net::new();
        n.up();
        n.run_until(n.now + 1_000);
        transitions(&mut n.a);
        n.cut = true;
        let last_rx = n.log.iter().rev().find(|(_, w, _)| *w == 'b').unwrap().0;
        n.run_until(last_rx + 299);
        assert_eq!(
            Net::state(&n.a),
            BfdState::Up,
            "down before the detection time"
        );
        n.run_until(last_rx + 300);
        assert_eq!(Net::state(&n.a), BfdState::Down);
        assert_eq!(
            transitions(&mut n.a),
            [(BfdState::Up, BfdState::Down, Diag::DetectionTimeExpired)]
        );
        let v = n.a.sessions().next().unwrap();
        assert_eq!((v.diag, v.remote_discr), (Diag::DetectionTimeExpired, 0));
        // A says so at once, then at the slow rate, Your Discriminator forgotten.
        let after = n.sent_by('a', last_rx + 300);
        assert_eq!(after[0].0, last_rx + 300);
        assert_eq!(after[0].1.state, BfdState::Down);
        assert_eq!(after[0].1.diag, Diag::DetectionTimeExpired);
        n.run_until(n.now + 5_000);
        let after = n.sent_by('a', last_rx + 301);
        assert!(after
            .iter()
            .all(|(_, r)| r.your_discr == 0 && r.state == BfdState::Down));
        assert!(gaps(&n, 'a', last_rx + 301).iter().all(|&d| d >= 750));
        // B heard A go down and came down too (diag 3), then Init: it hears A, A not it.
        let b: Vec<_> = transitions(&mut n.b)
            .into_iter()
            .skip_while(|t| t.0 != BfdState::Up)
            .collect();
        assert_eq!(
            b,
            [
                (BfdState::Up, BfdState::Down, Diag::NeighborDown),
                (BfdState::Down, BfdState::Init, Diag::None)
            ]
        );
        // Healing brings both up again.
        n.cut = false;
        n.run_until(n.now + 3_000);
        assert_eq!(
            (Net::state(&n.a), Net::state(&n.b)),
            (BfdState::Up, BfdState::Up)
        );
    }

    #[test]
    fn admin_down_from_the_peer_and_our_shutdown() {
        let mut n = Net::new();
        n.up();
        n.run_until(n.now + 500);
        transitions(&mut n.a);
        transitions(&mut n.b);
        // B (the upstream here) shuts down: one AdminDown, diag 7, at once.
        let frames = n.b.shutdown();
        assert_eq!(frames.len(), 1);
        let r = bfd_of(&frames[0].frame);
        assert_eq!((r.state, r.diag), (BfdState::AdminDown, Diag::AdminDown));
        assert_eq!(
            transitions(&mut n.b),
            [(BfdState::Up, BfdState::AdminDown, Diag::AdminDown)]
        );
        n.deliver('b', frames);
        assert_eq!(
            transitions(&mut n.a),
            [(BfdState::Up, BfdState::Down, Diag::NeighborDown)]
        );
        // B stays AdminDown: it sends nothing more and discards what A sends.
        let t = n.now;
        n.run_until(t + 5_000);
        assert!(n.sent_by('b', t + 1).is_empty());
        assert_eq!(Net::state(&n.b), BfdState::AdminDown);
        assert_eq!(Net::state(&n.a), BfdState::Down);
        assert!(transitions(&mut n.b).is_empty());
    }

    #[test]
    fn frames_are_addressed_and_checksummed() {
        let mut n = Net::new();
        n.up();
        n.run_until(n.now + 300);
        let f =
            n.a.on_tick(n.now + 200)
                .pop()
                .expect("a periodic packet")
                .frame;
        assert_eq!(f.len(), FRAME_LEN);
        assert_eq!(&f[0..6], &B_MAC);
        assert_eq!(&f[6..12], &A_MAC);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.hop_limit(), ip.next_header(), ip.dscp_ecn()),
            (255, 17, 0xc0)
        );
        assert_eq!((ip.src_addr(), ip.dst_addr()), (A_ADDR, B_ADDR));
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.checksum() != 0 && udp.verify_checksum(A_ADDR, B_ADDR));
        assert_eq!(udp.dst_port(), 3784);
        assert!(SOURCE_PORTS.contains(&udp.src_port()));
        assert_eq!(udp.payload().len(), HEADER_LEN);
        // One source port for the whole session (RFC 5881 §4), each side its own.
        n.run_until(n.now + 2_000);
        assert!(n.log.len() > 40);
        let a_ports: Vec<u16> = n
            .sports
            .iter()
            .filter(|p| p.0 == 'a')
            .map(|p| p.1)
            .collect();
        assert_eq!(a_ports, [udp.src_port()]);
        assert_eq!(n.sports.len(), 2);
        let r = bfd_of(&f);
        let v = n.a.sessions().next().unwrap();
        assert_eq!((r.my_discr, r.your_discr), (v.local_discr, v.remote_discr));
        assert_eq!(
            (
                r.detect_mult,
                r.required_min_rx_us,
                r.required_min_echo_rx_us
            ),
            (3, 100_000, 0)
        );
    }

    #[test]
    fn same_seed_same_choices() {
        let view = |seed| {
            let b = Bfd::new(settings(A_MAC, A_ADDR, B_ADDR), seed, 0);
            let v = b.sessions().next().unwrap();
            (v.local_discr, b.sessions[0].src_port)
        };
        assert_eq!(view(5), view(5));
        assert_ne!(view(5), view(6));
        // Many peers: distinct non-zero discriminators, ports in range.
        let mut s = BfdSettings::default();
        for i in 0..200u8 {
            s.peers.push(BfdPeer {
                port: (i % 3) as PortId,
                local_mac: A_MAC,
                local_addr: A_ADDR,
                peer_addr: Ipv4Addr::new(198, 51, 100, i),
            });
        }
        let b = Bfd::new(s, 0, 0);
        let d: std::collections::HashSet<u32> = b.sessions().map(|v| v.local_discr).collect();
        assert_eq!(d.len(), 200);
        assert!(!d.contains(&0));
        assert!(b
            .sessions
            .iter()
            .all(|s| SOURCE_PORTS.contains(&s.src_port)));
    }

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Our side of the interop lab: the addresses and MAC the BIRD frame was sent to.
    fn lab_side(strict: bool) -> Bfd {
        let mut s = settings([0xb6, 0xfc, 0xc4, 0x0a, 0x54, 0xf4], A_ADDR, B_ADDR);
        s.strict_source_port = strict;
        Bfd::new(s, 9, 0)
    }

    #[test]
    fn a_frame_captured_from_bird_starts_the_session() {
        let f = unhex(BIRD_FRAME);
        assert_eq!(&f[42..], &BIRD_DOWN);
        let mut b = lab_side(false);
        let out = b.on_frame(0, &f, 10);
        assert_eq!(b.counters().received, 1);
        assert_eq!(b.counters().refused, [0; BfdError::COUNT]);
        assert_eq!(
            transitions(&mut b),
            [(BfdState::Down, BfdState::Init, Diag::None)]
        );
        // The answer goes to BIRD's MAC (learnt), with its discriminator.
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].frame[0..6], &f[6..12]);
        let r = bfd_of(&out[0].frame);
        assert_eq!((r.state, r.your_discr), (BfdState::Init, 0x72e1_1ba3));
        // BIRD's source port (41090) is below RFC 5881's range: refused only when strict.
        let mut strict = lab_side(true);
        assert!(strict.on_frame(0, &f, 10).is_empty());
        assert_eq!(
            strict.counters().refused[BfdError::BadSourcePort.index()],
            1
        );
    }

    /// A frame from B to A carrying `r`, with the encapsulation fields `edit` may change before
    /// the checksums are computed. Built by hand, not with `frame()`.
    struct Raw {
        src_mac: Mac,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ttl: u8,
        sport: u16,
        dport: u16,
        proto: u8,
        bfd: Vec<u8>,
    }

    impl Raw {
        fn new(r: &BfdRepr) -> Raw {
            Raw {
                src_mac: B_MAC,
                src: B_ADDR,
                dst: A_ADDR,
                ttl: 255,
                sport: 50_000,
                dport: 3784,
                proto: 17,
                bfd: r.to_bytes().to_vec(),
            }
        }
        fn bytes(&self) -> Vec<u8> {
            let udp_len = 8 + self.bfd.len();
            let mut f = Vec::new();
            f.extend_from_slice(&A_MAC);
            f.extend_from_slice(&self.src_mac);
            f.extend_from_slice(&[0x08, 0x00]);
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0]);
            f.extend_from_slice(&[self.ttl, self.proto, 0, 0]);
            f.extend_from_slice(&self.src.octets());
            f.extend_from_slice(&self.dst.octets());
            f.extend_from_slice(&self.sport.to_be_bytes());
            f.extend_from_slice(&self.dport.to_be_bytes());
            f.extend_from_slice(&(udp_len as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            f.extend_from_slice(&self.bfd);
            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
            ip.fill_checksum();
            UdpPacket::new_unchecked(&mut f[34..]).fill_checksum(self.src, self.dst);
            f
        }
    }

    fn peer_packet(state: BfdState, your: u32) -> BfdRepr {
        BfdRepr {
            diag: Diag::None,
            state,
            poll: false,
            final_: false,
            cpi: false,
            auth: false,
            demand: false,
            detect_mult: 3,
            my_discr: 0xb0b0_b0b0,
            your_discr: your,
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[test]
    fn every_refusal_is_counted_and_changes_nothing() {
        use BfdError::*;
        let a = speaker_a();
        let mine = a.sessions().next().unwrap().local_discr;
        let down = peer_packet(BfdState::Down, 0);
        let raw = |f: fn(&mut Raw)| {
            let mut r = Raw::new(&down);
            f(&mut r);
            r.bytes()
        };
        let good = raw(|_| {});
        let mut cases: Vec<(BfdError, Vec<u8>)> = vec![
            (UnknownPeer, raw(|r| r.src = Ipv4Addr::new(198, 51, 100, 9))),
            (UnknownPeer, raw(|r| r.dst = Ipv4Addr::new(198, 51, 100, 3))),
            (BadTtl, raw(|r| r.ttl = 254)),
            (BadTtl, raw(|r| r.ttl = 1)),
            (BadSourcePort, raw(|r| r.sport = 0)),
            (BadDestPort, raw(|r| r.dport = 4784)), // multihop (RFC 5883): not ours
            (BadDestPort, raw(|r| r.dport = 3785)), // echo
            (Malformed, raw(|r| r.proto = 6)),
            (Malformed, raw(|r| r.src_mac = [1, 0, 0x5e, 0, 0, 1])),
            (BadVersion, raw(|r| r.bfd[0] = 0x40)),
            (BadLength, raw(|r| r.bfd[3] = 20)),
            (BadLength, raw(|r| r.bfd[3] = 30)),
            (ZeroDetectMult, raw(|r| r.bfd[2] = 0)),
            (Multipoint, raw(|r| r.bfd[1] |= flag::M)),
            (ZeroMyDiscriminator, raw(|r| r.bfd[4..8].fill(0))),
            (
                UnknownDiscriminator,
                raw(|r| r.bfd[8..12].copy_from_slice(&[0, 0, 0, 1])),
            ),
            (NoDiscriminator, raw(|r| r.bfd[1] = 0xc0)), // Up, Your Discriminator 0
            (NoDiscriminator, raw(|r| r.bfd[1] = 0x80)), // Init
            (
                UnexpectedAuth,
                raw(|r| {
                    r.bfd[1] |= flag::A;
                    r.bfd[3] = 28;
                    r.bfd.extend_from_slice(&[1, 4, b'p', b'w']);
                }),
            ),
            (Oversized, raw(|r| r.bfd.extend_from_slice(&[0; 8]))),
            (Oversized, raw(|r| r.bfd.resize(1400, 0xaa))),
            (Truncated, good[..40].to_vec()),
            (Truncated, good[..10].to_vec()),
            (Truncated, raw(|r| r.bfd.truncate(20))),
        ];
        let mut bad = good.clone();
        bad[24] ^= 1; // IPv4 header checksum
        cases.push((BadChecksum, bad));
        let mut bad = good.clone();
        bad[40] ^= 1; // UDP checksum
        cases.push((BadChecksum, bad));
        let mut bad = good.clone();
        bad[20] = 0x20; // more fragments
        UdpPacket::new_unchecked(&mut bad[34..]).fill_checksum(B_ADDR, A_ADDR);
        Ipv4Packet::new_unchecked(&mut bad[14..]).fill_checksum();
        cases.push((Malformed, bad));
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        cases.push((Malformed, arp));
        let mut qinq = good.clone();
        qinq[12..14].copy_from_slice(&[0x88, 0xa8]);
        cases.push((Malformed, qinq));
        for (i, (want, f)) in cases.iter().enumerate() {
            let mut b = a.clone();
            assert!(b.on_frame(0, f, 5).is_empty(), "case {i}");
            assert_eq!(
                b.counters().refused[want.index()],
                1,
                "case {i}: want {want:?}"
            );
            assert_eq!(b.counters().refused.iter().sum::<u64>(), 1, "case {i}");
            assert_eq!(b.counters().received, 0, "case {i}");
            assert!(b.take_events().is_empty(), "case {i}");
            let v = b.sessions().next().unwrap();
            assert_eq!(
                (v.state, v.remote_discr, v.peer_mac),
                (BfdState::Down, 0, None)
            );
        }
        // The wrong port is an unknown peer too.
        let mut b = a.clone();
        assert!(b.on_frame(1, &good, 5).is_empty());
        assert_eq!(b.counters().refused[UnknownPeer.index()], 1);
        // And the unchanged frame is accepted, as is one with our discriminator.
        let mut b = a.clone();
        assert_eq!(b.on_frame(0, &good, 5).len(), 1);
        assert_eq!(b.counters().received, 1);
        let mut init = Raw::new(&peer_packet(BfdState::Init, mine)).bytes();
        let mut b = a.clone();
        assert_eq!(b.on_frame(0, &init, 5).len(), 1);
        assert_eq!(Net::state(&b), BfdState::Up);
        // Zero UDP checksum means none (RFC 768) and is accepted.
        init[40..42].fill(0);
        let mut b = a.clone();
        b.on_frame(0, &init, 5);
        assert_eq!(b.counters().received, 1);
    }

    #[test]
    fn vlan_tagged_peer_is_answered_on_its_vlan() {
        let plain = Raw::new(&peer_packet(BfdState::Down, 0)).bytes();
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]); // VLAN 42
        f.extend_from_slice(&plain[12..]);
        let mut a = speaker_a();
        let out = a.on_frame(0, &f, 1);
        assert_eq!(out.len(), 1);
        let o = &out[0].frame;
        assert_eq!(o.len(), FRAME_LEN + 4);
        assert_eq!(&o[12..18], &[0x81, 0x00, 0x00, 0x2a, 0x08, 0x00]);
        assert_eq!(
            BfdRepr::parse_bytes(&o[46..]).unwrap().state,
            BfdState::Init
        );
        assert!(Ipv4Packet::new_checked(&o[18..]).unwrap().verify_checksum());
    }

    #[test]
    fn peer_demand_mode_stops_our_periodic_packets_and_min_rx_zero_too() {
        let mut a = speaker_a();
        let mine = a.sessions().next().unwrap().local_discr;
        let send = |a: &mut Bfd, r: BfdRepr, now| a.on_frame(0, &Raw::new(&r).bytes(), now);
        send(&mut a, peer_packet(BfdState::Init, mine), 0);
        assert_eq!(Net::state(&a), BfdState::Up);
        let mut demand = peer_packet(BfdState::Up, mine);
        demand.demand = true;
        let mut sent = 0;
        for now in 1..1_000 {
            if now % 50 == 0 {
                send(&mut a, demand, now);
            }
            sent += a.on_tick(now).len();
        }
        assert_eq!(sent, 0, "periodic packets while the peer is in Demand mode");
        // A Poll is still answered with a Final (RFC 5880 §6.6).
        let mut poll = demand;
        poll.poll = true;
        let out = send(&mut a, poll, 1_000);
        assert_eq!(out.len(), 1);
        assert!(bfd_of(&out[0].frame).final_);
        // Demand off: periodic packets resume.
        send(&mut a, peer_packet(BfdState::Up, mine), 1_001);
        assert!((1_002..1_200).any(|now| !a.on_tick(now).is_empty()));
        // Required Min RX 0: the peer wants no periodic packets.
        let mut quiet = peer_packet(BfdState::Up, mine);
        quiet.required_min_rx_us = 0;
        send(&mut a, quiet, 1_200);
        assert!((1_201..1_250).all(|now| a.on_tick(now).is_empty()));
    }

    #[test]
    fn next_wakeup_is_when_something_happens() {
        let mut a = speaker_a();
        assert_eq!(
            a.next_wakeup(),
            u64::MAX,
            "passive and unheard: nothing to do"
        );
        a.set_peer_mac(B_ADDR, B_MAC);
        assert_eq!(a.on_tick(0).len(), 1);
        let w = a.next_wakeup();
        assert!((750..=1000).contains(&w), "{w}");
        assert!((1..w).all(|now| a.on_tick(now).is_empty()));
        assert_eq!(a.on_tick(w).len(), 1);
    }

    #[test]
    fn settings_validation() {
        let ok = settings(A_MAC, A_ADDR, B_ADDR);
        assert_eq!(ok.validate(), Ok(()));
        let d = BfdSettings::default();
        assert_eq!((d.min_tx_ms, d.min_rx_ms, d.multiplier), (100, 100, 3));
        let mut s = ok.clone();
        s.min_tx_ms = 0;
        assert_eq!(s.validate(), Err(BfdSettingsError::BadInterval));
        let mut s = ok.clone();
        s.min_rx_ms = MAX_INTERVAL_MS + 1;
        assert_eq!(s.validate(), Err(BfdSettingsError::BadInterval));
        let mut s = ok.clone();
        s.multiplier = 0;
        assert_eq!(s.validate(), Err(BfdSettingsError::BadMultiplier));
        let mut s = ok.clone();
        s.peers.push(s.peers[0]);
        assert_eq!(s.validate(), Err(BfdSettingsError::DuplicatePeer(B_ADDR)));
        // Bfd::new keeps one session for the duplicate and clamps the rest.
        s.multiplier = 0;
        s.min_tx_ms = 0;
        let b = Bfd::new(s, 0, 0);
        assert_eq!(b.sessions().count(), 1);
        assert_eq!(b.sessions[0].detect_mult, 1);
        let mut s = ok;
        s.peers[0].peer_addr = Ipv4Addr::BROADCAST;
        assert_eq!(
            s.validate(),
            Err(BfdSettingsError::BadAddress(Ipv4Addr::BROADCAST))
        );
    }

    use crate::test_rng::Rng as XRng;

    #[test]
    fn no_panic_on_truncated_or_mutated_frames() {
        let mine = speaker_a().sessions().next().unwrap().local_discr;
        let bases = [
            Raw::new(&peer_packet(BfdState::Down, 0)).bytes(),
            Raw::new(&peer_packet(BfdState::Up, mine)).bytes(),
            unhex(BIRD_FRAME),
        ];
        let mut a = speaker_a();
        let mut lab = lab_side(false);
        for base in &bases {
            for n in 0..base.len() {
                a.on_frame(0, &base[..n], 0);
                lab.on_frame(0, &base[..n], 0);
            }
        }
        let mut rng = XRng(0xbfd0_5880);
        let mut now = 0;
        for i in 0..30_000 {
            let mut b = bases[i % bases.len()].clone();
            for _ in 0..1 + rng.next() % 4 {
                let j = (rng.next() as usize) % b.len();
                b[j] = rng.next() as u8;
            }
            if rng.next().is_multiple_of(4) {
                let n = (rng.next() as usize) % b.len();
                b.truncate(n);
            }
            now += rng.next() % 20;
            for t in a.on_frame(0, &b, now).into_iter().chain(a.on_tick(now)) {
                assert!(BfdRepr::parse_bytes(&t.frame[42..]).is_ok());
            }
            lab.on_frame(0, &b, now);
            lab.on_tick(now);
        }
        // Mutations hit the checksums almost always: the bulk is refused, and counted.
        let c = a.counters();
        assert!(c.refused.iter().sum::<u64>() + c.received >= 30_000);
    }
}
