//! One BFD session (RFC 5880 §6.8): its state variables, the reception procedure of §6.8.6 from
//! Your Discriminator on, the timers of §6.8.2–6.8.4 and the transmission rules of §6.8.7. No
//! frames here: [`super::Bfd`] demultiplexes frames to sessions and writes what they send.
//!
//! Times are microseconds (the unit of the wire intervals) on the caller's clock.

use super::wire::{BfdError, BfdRepr, BfdState, Diag};
use super::{BfdEvent, BfdPeer, Rng};
use crate::model::Mac;

/// RFC 5880 §6.8.3: while a session is not Up, Desired Min TX is at least one second.
pub const SLOW_TX_US: u32 = 1_000_000;
/// RFC 5880 §6.8.1: bfd.RemoteMinRxInterval starts at 1 µs.
const INITIAL_REMOTE_MIN_RX_US: u32 = 1;

/// What a received packet asks the session to send at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxOutcome {
    /// A packet must go out now (the state changed, or a Poll must be answered).
    pub send: bool,
    /// That packet answers a Poll: F set, P clear (RFC 5880 §6.5).
    pub final_: bool,
}

/// The state of one session (RFC 5880 §6.8.1 names in the comments).
#[derive(Clone, Debug)]
pub struct Session {
    pub peer: BfdPeer,
    /// RFC 5881 §4: one source port per session, in 49152..=65535.
    pub src_port: u16,
    /// Learnt from the peer's valid packets or set by `set_peer_mac`; until then the session
    /// is passive (RFC 5880 §6.1) because it cannot address a frame.
    pub peer_mac: Option<Mac>,
    /// The VLAN the peer's packets came on (None: untagged); ours go back on it.
    pub vlan: Option<u16>,
    /// bfd.SessionState.
    pub state: BfdState,
    /// bfd.RemoteSessionState.
    pub remote_state: BfdState,
    /// bfd.LocalDiscr.
    pub local_discr: u32,
    /// bfd.RemoteDiscr.
    pub remote_discr: u32,
    /// bfd.LocalDiag.
    pub local_diag: Diag,
    /// The Diag of the last packet received.
    pub remote_diag: Diag,
    /// bfd.DesiredMinTxInterval (what we advertise; 1 s while not Up).
    pub desired_min_tx_us: u32,
    /// bfd.RequiredMinRxInterval.
    pub required_min_rx_us: u32,
    /// The configured Desired Min TX, used once Up.
    configured_min_tx_us: u32,
    /// bfd.DetectMult.
    pub detect_mult: u8,
    /// bfd.RemoteMinRxInterval.
    pub remote_min_rx_us: u32,
    /// The last received Desired Min TX Interval.
    pub remote_desired_min_tx_us: u32,
    /// The last received Detect Mult.
    pub remote_detect_mult: u8,
    /// bfd.RemoteDemandMode.
    pub remote_demand: bool,
    /// A Poll Sequence of ours is in progress (RFC 5880 §6.5).
    pub poll: bool,
    /// When the next periodic packet is due (None: at once, when sending is allowed).
    next_tx_us: Option<u64>,
    /// When the Detection Time expires (None: nothing received since the last expiry).
    detect_deadline_us: Option<u64>,
}

impl Session {
    pub fn new(
        peer: BfdPeer,
        local_discr: u32,
        src_port: u16,
        min_tx_us: u32,
        min_rx_us: u32,
        detect_mult: u8,
    ) -> Session {
        Session {
            peer,
            src_port,
            peer_mac: None,
            vlan: None,
            state: BfdState::Down,
            remote_state: BfdState::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diag::None,
            remote_diag: Diag::None,
            desired_min_tx_us: min_tx_us.max(SLOW_TX_US),
            required_min_rx_us: min_rx_us,
            configured_min_tx_us: min_tx_us,
            detect_mult,
            remote_min_rx_us: INITIAL_REMOTE_MIN_RX_US,
            remote_desired_min_tx_us: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            poll: false,
            next_tx_us: None,
            detect_deadline_us: None,
        }
    }

    /// The negotiated transmit interval (RFC 5880 §6.8.2): the larger of our Desired Min TX
    /// and the peer's Required Min RX.
    pub fn tx_interval_us(&self) -> u64 {
        u64::from(self.desired_min_tx_us.max(self.remote_min_rx_us))
    }

    /// The Detection Time (RFC 5880 §6.8.4, asynchronous mode): the peer's Detect Mult times
    /// the larger of our Required Min RX and its Desired Min TX. 0 before anything is heard.
    pub fn detection_time_us(&self) -> u64 {
        u64::from(self.remote_detect_mult)
            * u64::from(self.required_min_rx_us.max(self.remote_desired_min_tx_us))
    }

    /// Whether periodic packets go out (RFC 5880 §6.8.7): not in AdminDown, not while passive
    /// (no MAC yet), not if the peer's Required Min RX is zero, not while Demand mode is
    /// active on the peer.
    pub fn periodic_allowed(&self) -> bool {
        self.state != BfdState::AdminDown
            && self.peer_mac.is_some()
            && self.remote_min_rx_us != 0
            && !(self.remote_demand
                && self.state == BfdState::Up
                && self.remote_state == BfdState::Up)
    }

    /// When this session next needs `tick` (µs), if ever.
    pub fn next_wakeup_us(&self) -> Option<u64> {
        let tx = if self.periodic_allowed() {
            Some(self.next_tx_us.unwrap_or(0))
        } else {
            None
        };
        match (tx, self.detect_deadline_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The interval until the next periodic packet, jittered as RFC 5880 §6.8.7 says: reduced
    /// by a random 0–25 %, or by 10–25 % if our Detect Mult is 1 (never more than 90 %).
    fn jittered_interval_us(&self, rng: &mut Rng) -> u64 {
        let i = self.tx_interval_us();
        let max_cut = i / 4;
        let min_cut = if self.detect_mult == 1 { i / 10 } else { 0 };
        i - (min_cut + rng.below(max_cut - min_cut + 1))
    }

    fn set_state(&mut self, to: BfdState, diag: Diag, events: &mut Vec<BfdEvent>) -> bool {
        if to == self.state {
            return false;
        }
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        if to == BfdState::Up {
            // §6.8.3: the configured rate only once Up; the change needs a Poll Sequence.
            if self.desired_min_tx_us != self.configured_min_tx_us {
                self.desired_min_tx_us = self.configured_min_tx_us;
                self.poll = true;
            }
        } else {
            // Not Up: back to at least 1 s at once (an increase while not Up needs no Poll),
            // and a Poll Sequence left unanswered by a peer that went away ends here.
            self.desired_min_tx_us = self.configured_min_tx_us.max(SLOW_TX_US);
            self.poll = false;
        }
        events.push(BfdEvent {
            peer: self.peer.peer_addr,
            from,
            to,
            diag,
        });
        true
    }

    /// RFC 5880 §6.8.6 from "If the Your Discriminator field is nonzero" on, for a packet whose
    /// earlier checks passed and whose source is this session's peer.
    ///
    /// # Errors
    /// `UnknownDiscriminator`, `NoDiscriminator` or `UnexpectedAuth`; nothing changes then.
    pub fn receive(
        &mut self,
        r: &BfdRepr,
        src_mac: Mac,
        vlan: Option<u16>,
        now_us: u64,
        rng: &mut Rng,
        events: &mut Vec<BfdEvent>,
    ) -> Result<RxOutcome, BfdError> {
        if r.your_discr != 0 && r.your_discr != self.local_discr {
            return Err(BfdError::UnknownDiscriminator);
        }
        if r.your_discr == 0 && !matches!(r.state, BfdState::Down | BfdState::AdminDown) {
            return Err(BfdError::NoDiscriminator);
        }
        // No session uses authentication (it is not implemented), so the A bit is refused.
        if r.auth {
            return Err(BfdError::UnexpectedAuth);
        }
        self.peer_mac = Some(src_mac);
        self.vlan = vlan;
        self.remote_discr = r.my_discr;
        self.remote_state = r.state;
        self.remote_diag = r.diag;
        self.remote_demand = r.demand;
        self.remote_min_rx_us = r.required_min_rx_us;
        self.remote_desired_min_tx_us = r.desired_min_tx_us;
        self.remote_detect_mult = r.detect_mult;
        if r.final_ {
            self.poll = false;
        }
        if self.state == BfdState::AdminDown {
            return Ok(RxOutcome::default());
        }
        let changed = if r.state == BfdState::AdminDown {
            self.state != BfdState::Down
                && self.set_state(BfdState::Down, Diag::NeighborDown, events)
        } else {
            match (self.state, r.state) {
                (BfdState::Down, BfdState::Down) => {
                    self.set_state(BfdState::Init, Diag::None, events)
                }
                (BfdState::Down, BfdState::Init)
                | (BfdState::Init, BfdState::Init | BfdState::Up) => {
                    self.set_state(BfdState::Up, Diag::None, events)
                }
                (BfdState::Up, BfdState::Down) => {
                    self.set_state(BfdState::Down, Diag::NeighborDown, events)
                }
                _ => false,
            }
        };
        // The packet counts for the Detection Time (§6.8.4), with the peer's new values.
        let detect = self.detection_time_us();
        self.detect_deadline_us = Some(now_us.saturating_add(detect));
        let soonest = now_us.saturating_add(self.jittered_interval_us(rng));
        if changed {
            // Tell the peer at once rather than a slow interval later.
            self.next_tx_us = None;
        } else if let Some(t) = self.next_tx_us {
            // A shorter interval (the peer lowered its Required Min RX) applies from now.
            self.next_tx_us = Some(t.min(soonest));
        }
        Ok(RxOutcome {
            send: r.poll || (changed && self.periodic_allowed()),
            final_: r.poll,
        })
    }

    /// Timers at `now_us`: the Detection Time (§6.8.4), then the periodic packet (§6.8.7).
    /// Returns the packet to send, if one is due (with F set if `final_`).
    pub fn tick(
        &mut self,
        now_us: u64,
        rng: &mut Rng,
        events: &mut Vec<BfdEvent>,
    ) -> Option<BfdRepr> {
        if self.detect_deadline_us.is_some_and(|d| now_us >= d) {
            self.detect_deadline_us = None;
            if matches!(self.state, BfdState::Init | BfdState::Up)
                && self.set_state(BfdState::Down, Diag::DetectionTimeExpired, events)
            {
                self.next_tx_us = None;
            }
            // §6.8.1: the peer is forgotten; the session starts over from Down.
            self.remote_discr = 0;
            self.remote_state = BfdState::Down;
            self.remote_min_rx_us = INITIAL_REMOTE_MIN_RX_US;
            self.remote_demand = false;
        }
        if !self.periodic_allowed() || self.next_tx_us.is_some_and(|t| now_us < t) {
            return None;
        }
        self.next_tx_us = Some(now_us.saturating_add(self.jittered_interval_us(rng)));
        Some(self.packet(false))
    }

    /// Marks the packet sent by `receive`'s outcome: a state-change packet restarts the
    /// periodic timer, a Final does not (§6.8.7: it is sent regardless of the timer).
    pub fn sent_now(&mut self, now_us: u64, rng: &mut Rng) {
        if self.next_tx_us.is_none() && self.periodic_allowed() {
            self.next_tx_us = Some(now_us.saturating_add(self.jittered_interval_us(rng)));
        }
    }

    /// RFC 5880 §6.8.16: AdminDown with diag 7. Returns whether the state changed.
    pub fn admin_down(&mut self, events: &mut Vec<BfdEvent>) -> bool {
        let changed = self.set_state(BfdState::AdminDown, Diag::AdminDown, events);
        self.next_tx_us = None;
        changed
    }

    /// The Control packet this session sends now (RFC 5880 §6.8.7). A Final never carries P
    /// (§6.5); the Poll goes out again with the next periodic packet.
    pub fn packet(&self, final_: bool) -> BfdRepr {
        BfdRepr {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll && !final_,
            final_,
            // aliasd's control thread is BFD: it shares fate with the control plane.
            cpi: false,
            auth: false,
            // Demand mode is not supported: D is never set.
            demand: false,
            detect_mult: self.detect_mult,
            my_discr: self.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx_us: self.desired_min_tx_us,
            required_min_rx_us: self.required_min_rx_us,
            // The Echo function is not supported: we do not want echo packets.
            required_min_echo_rx_us: 0,
        }
    }
}
