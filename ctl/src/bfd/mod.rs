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

pub mod session;
pub mod wire;

use std::net::Ipv4Addr;

use clua_pipeline::snapshot::PortId;
use clua_pipeline::wire::checksum::ChecksumCapabilities;
use clua_pipeline::wire::ethernet::{is_multicast, parse_l2, EtherType, EthernetFrame};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use clua_pipeline::wire::udp::{UdpPacket, UdpRepr};
use clua_pipeline::wire::WireError;

use crate::model::Mac;
use crate::plane::Transmit;
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
pub struct Rng(u64);

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
    let mac = s.peer_mac?;
    let l2_len = if s.vlan.is_some() { 18 } else { 14 };
    let mut f = vec![0u8; l2_len + 20 + 8 + wire::HEADER_LEN];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(mac);
        eth.set_src_addr(s.peer.local_mac);
        match s.vlan {
            Some(vid) => {
                eth.set_ethertype(EtherType::VLAN);
                f[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
                f[16..18].copy_from_slice(&EtherType::IPV4.to_be_bytes());
            }
            None => eth.set_ethertype(EtherType::IPV4),
        }
    }
    let l4 = l2_len + 20;
    r.emit(&mut BfdPacket::new_unchecked(&mut f[l4 + 8..]));
    let udp_len = 8 + wire::HEADER_LEN;
    UdpRepr {
        src_port: s.src_port,
        dst_port: BFD_PORT,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut f[l4..]),
        wire::HEADER_LEN,
        s.peer.local_addr,
        s.peer.peer_addr,
        true,
    );
    Ipv4Repr {
        src_addr: s.peer.local_addr,
        dst_addr: s.peer.peer_addr,
        next_header: protocol::UDP,
        payload_len: udp_len,
        hop_limit: TTL,
        dscp_ecn: DSCP_CS6,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[l2_len..]));
    Some(Transmit {
        port: s.peer.port,
        frame: f,
    })
}
