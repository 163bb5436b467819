//! The control plane as a sans-I/O state machine (quinn-proto style): inputs in, effects out.
//!
//! [`ControlPlane`] owns everything an alias router decides outside the packet path: the
//! cluster model with the commands applied to it, the router's view of its members (adverts,
//! CA3), the snapshot the workers run on, and the answers to the packets the data plane punts
//! (ARP for aliases CA4, ICMP echo in alias context CA7, member adverts). It has no sockets,
//! threads or clocks of its own:
//!
//! - [`ControlPlane::start`] builds the first snapshot and announces the aliases (gratuitous ARP);
//! - [`ControlPlane::on_frame`] takes a punted frame with its [`PuntReason`] and port;
//! - [`ControlPlane::on_command`] takes a cluamgr command and returns its reply;
//! - [`ControlPlane::on_tick`] takes the time (`now_ms`, any monotonic millisecond clock);
//! - [`ControlPlane::on_flows`] takes the workers' flow records for the peer routers (issue 9,
//!   [`crate::sync`]).
//!
//! Each returns [`Effects`]: frames to transmit, a snapshot to publish, log events. aliasd's
//! threads only move bytes between these calls and the world, so everything here is tested with
//! byte buffers and fake time.
//!
//! Invariants:
//! - The published snapshot is always built from [`ControlPlane::state`]; a change that fails
//!   validation or snapshot building changes neither, and says why.
//! - Member state is derived: whenever the members' adverts changed something, the plane
//!   re-applies the members' view to the model until it succeeds (retrying every
//!   [`MEMBER_RETRY_MS`]), so the data plane never keeps a member up that its adverts say is
//!   down because one rebuild failed.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clua_pipeline::snapshot::{ControlPorts, PortId, PortRole, Snapshot};
use clua_pipeline::{CoreCounters, MemberId, PuntReason};

use crate::apply::{apply, Applied, ControlState};
use crate::arp::{self, ArpOutcome, ArpView};
use crate::bfd::{Bfd, BfdCounters, BfdEvent, BfdSettings, BfdState};
use crate::command::{Command, USAGE};
use crate::frame::udp_payload;
use crate::icmp::{self, IcmpOutcome};
use crate::members::health::{Health, HealthEvent, HealthSpec, MemberHealth, ProbeFrame};
use crate::members::{AdvertCounters, AdvertSettings, MemberTracker};
use crate::model::{Cluster, Mac, ModelError};
use crate::neighbors::{Heard, NeighborCounters, NeighborEvent, NeighborSettings, Neighbors};
use crate::protocol::Reply;
use crate::rip::{RipCounters, RipSettings, RipSpeaker};
use crate::routers::role::{InterconnectPort, RoleEvent, RouterRole};
use crate::routers::tracker::{RouterCounters, RouterSettings};
use crate::show::render_show_routing;
use crate::sync::{Handoff, Received, SyncCounters};

/// How long a failed re-application of the members' state waits before it is tried again.
pub const MEMBER_RETRY_MS: u64 = 1000;

/// Reads the files commands name (`cluamgr -f`, `-F FILE`). aliasd passes
/// `std::fs::read_to_string`; tests pass a map.
pub type FileReader = Box<dyn Fn(&Path) -> std::io::Result<String> + Send>;

/// Counters of the control plane, readable from other threads (the metrics endpoint) while the
/// control plane runs.
#[derive(Debug, Default)]
pub struct ControlCounters {
    /// ARP replies sent for aliases or router addresses.
    pub arp_replies: AtomicU64,
    /// ARP packets not for us.
    pub arp_ignored: AtomicU64,
    /// Malformed ARP packets.
    pub arp_malformed: AtomicU64,
    /// ICMP echo replies sent.
    pub icmp_replies: AtomicU64,
    /// ICMP packets ignored or malformed.
    pub icmp_ignored: AtomicU64,
    /// Gratuitous ARPs sent.
    pub garp_sent: AtomicU64,
    /// Control packets the port would not take (counted by the I/O side).
    pub tx_failed: AtomicU64,
    /// Punted frames whose reason the control plane had no handler for (a member advert when
    /// no member runs the agent).
    pub unexpected: AtomicU64,
    /// Member advert outcomes, copied after every advert (`None` when no member runs the
    /// agent).
    pub adverts: Mutex<Option<AdvertCounters>>,
    /// The router protocol's state, copied after every change (`None` when this router is
    /// alone).
    pub routers: Mutex<Option<RoutingStatus>>,
    /// BFD's counters and sessions, copied after every change (`None` without `[bfd]`).
    pub bfd: Mutex<Option<BfdStatus>>,
    /// RIP's counters and routes, copied after every change (`None` without `[rip]`).
    pub rip: Mutex<Option<RipStatus>>,
    /// The flow hand-off's counters, copied after every change (`None` without it).
    pub sync: Mutex<Option<SyncCounters>>,
    /// Member MACs learned by ARP (members without a configured `mac`).
    pub neighbors: Arc<NeighborCounters>,
    /// Health of the probed static members, copied after every probe (issue 10; empty when
    /// none is probed).
    pub health: Mutex<Vec<MemberHealth>>,
}

/// What the metrics endpoint shows of RIP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RipStatus {
    /// The counters.
    pub counters: RipCounters,
    /// Routes advertised now with metric 1 (withdrawn ones still sent with 16 not counted).
    pub routes: usize,
}

/// What the metrics endpoint shows of BFD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BfdStatus {
    /// The counters.
    pub counters: BfdCounters,
    /// Each session: peer and whether it is up.
    pub sessions: Vec<(std::net::Ipv4Addr, bool)>,
}

/// What the metrics endpoint shows of the router protocol (issue 8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingStatus {
    /// Live peer routers.
    pub peers: usize,
    /// Elections that changed what this router answers ARP for.
    pub elections: u64,
    /// The protocol's counters.
    pub counters: RouterCounters,
    /// Per alias (name): whether this router is its proxy-ARP master.
    pub masters: Vec<(String, bool)>,
}

impl ControlCounters {
    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A counter's current value.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// A copy of the advert counters.
    pub fn adverts(&self) -> Option<AdvertCounters> {
        self.adverts.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// A copy of RIP's status.
    pub fn rip(&self) -> Option<RipStatus> {
        self.rip.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// A copy of BFD's status.
    pub fn bfd(&self) -> Option<BfdStatus> {
        self.bfd.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// A copy of the router protocol's status.
    pub fn routers(&self) -> Option<RoutingStatus> {
        self.routers.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// A copy of the probed members' health.
    pub fn health(&self) -> Vec<MemberHealth> {
        self.health.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// A copy of the flow hand-off's counters.
    pub fn sync(&self) -> Option<SyncCounters> {
        self.sync.lock().map(|g| g.clone()).unwrap_or(None)
    }
}

/// A frame for the I/O side to transmit on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Egress port.
    pub port: PortId,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
}

/// What caused a new configuration generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Start-up.
    Start,
    /// A cluamgr command.
    Command,
    /// Member adverts (or their absence: a member's dead interval passed).
    Members,
    /// The proxy-ARP election: the vMACs this router receives for changed.
    Routers,
    /// A member MAC learned, changed or expired (ARP on the interconnect).
    Neighbors,
    /// A static member's health probes took it down or up (issue 10).
    Health,
    /// The configuration file re-read (SIGHUP, `cluamgr --reload`; issue 11).
    Reload,
}

impl Cause {
    fn name(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Command => "command",
            Cause::Members => "member adverts",
            Cause::Routers => "proxy-ARP election",
            Cause::Neighbors => "member MACs by ARP",
            Cause::Health => "member health probes",
            Cause::Reload => "configuration reload",
        }
    }
}

/// Something worth one log line (aliasd logs each with `tracing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A configuration generation is in force.
    Generation {
        /// Its number.
        generation: u64,
        /// Why.
        cause: Cause,
    },
    /// A member became up (CA3).
    MemberUp {
        /// Member name.
        member: String,
    },
    /// A member became down: no new flows go to it (CA3).
    MemberDown {
        /// Member name.
        member: String,
    },
    /// A member joined an alias (CA8 attributes).
    Joined {
        /// Member name.
        member: String,
        /// Alias name.
        alias: String,
        /// Selection weight.
        selw: u32,
        /// Selection priority.
        selp: u32,
    },
    /// A member's attributes for an alias changed.
    Reweighted {
        /// Member name.
        member: String,
        /// Alias name.
        alias: String,
        /// Selection weight.
        selw: u32,
        /// Selection priority.
        selp: u32,
    },
    /// A member left an alias: no new flows, established ones drain.
    Left {
        /// Member name.
        member: String,
        /// Alias name.
        alias: String,
    },
    /// A cluamgr command changed the configuration.
    CommandApplied {
        /// The command, as cluamgr arguments.
        command: String,
        /// Number of changes.
        changes: usize,
    },
    /// A cluamgr command was refused; nothing changed.
    CommandRefused {
        /// The command, as cluamgr arguments.
        command: String,
        /// Why.
        why: String,
    },
    /// The members' reported state could not be applied (validation or snapshot building
    /// failed); it is retried every [`MEMBER_RETRY_MS`]. Logged once per distinct reason.
    MemberStateNotApplied {
        /// Why.
        why: RebuildError,
    },
    /// The members' reported state is in force again after failures.
    MemberStateApplied,
    /// Peer routers and the proxy-ARP election (issue 8).
    Router(RoleEvent),
    /// A BFD session changed state.
    Bfd(BfdEvent),
    /// A member MAC learned by ARP, changed or expired.
    Neighbor(NeighborEvent),
    /// A static member's health probes crossed a threshold (issue 10).
    Health(HealthEvent),
    /// A member's out_alias range is refused (overlap, service port; CA9), or no longer.
    OutAlias {
        /// Member name.
        member: String,
        /// Why it is refused; `None`: no longer refused.
        refused: Option<crate::out_alias::RangeRefusal>,
    },
}

impl Event {
    /// Whether this is a warning (something refused or failing) rather than information.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Event::CommandRefused { .. }
                | Event::MemberStateNotApplied { .. }
                | Event::OutAlias {
                    refused: Some(_),
                    ..
                }
        ) || matches!(self, Event::Neighbor(e) if e.is_warning())
            || matches!(
                self,
                Event::Health(HealthEvent::Down { .. } | HealthEvent::NotApplied { .. })
            )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Generation { generation, cause } => write!(
                f,
                "configuration generation {generation} in force ({})",
                cause.name()
            ),
            Event::MemberUp { member } => write!(f, "member {member} up"),
            Event::OutAlias {
                member,
                refused: Some(why),
            } => write!(
                f,
                "member {member}: {why}; its out_alias replies are not steered"
            ),
            Event::OutAlias {
                member,
                refused: None,
            } => write!(f, "member {member}: out_alias range no longer refused"),
            Event::MemberDown { member } => {
                write!(f, "member {member} down: no new flows go to it")
            }
            Event::Joined {
                member,
                alias,
                selw,
                selp,
            } => write!(
                f,
                "member {member} joined alias {alias} (selw {selw}, selp {selp})"
            ),
            Event::Reweighted {
                member,
                alias,
                selw,
                selp,
            } => write!(
                f,
                "member {member} in alias {alias} now selw {selw}, selp {selp}"
            ),
            Event::Left { member, alias } => write!(
                f,
                "member {member} left alias {alias}: established connections drain"
            ),
            Event::CommandApplied { command, changes } => {
                write!(f, "cluamgr {command}: {changes} change(s) applied")
            }
            Event::CommandRefused { command, why } => {
                write!(f, "cluamgr {command} refused: {}", why.replace('\n', "; "))
            }
            Event::MemberStateNotApplied { why } => write!(
                f,
                "member state from adverts not applied, retrying every {MEMBER_RETRY_MS} ms: {why}"
            ),
            Event::MemberStateApplied => f.write_str("member state from adverts applied again"),
            Event::Bfd(e) => write!(
                f,
                "BFD session with {}: {} -> {} ({})",
                e.peer, e.from, e.to, e.diag
            ),
            Event::Router(RoleEvent::PeerUp(n)) => write!(f, "router {n} up"),
            Event::Router(RoleEvent::PeerDown(n)) => {
                write!(f, "router {n} down (dead interval passed or goodbye)")
            }
            Event::Router(RoleEvent::Master {
                alias,
                node: Some(n),
                this_router,
            }) => write!(
                f,
                "proxy-ARP master of alias {alias}: {n}{}",
                if *this_router { " (this router)" } else { "" }
            ),
            Event::Router(RoleEvent::Master {
                alias, node: None, ..
            }) => write!(
                f,
                "alias {alias} has no proxy-ARP master: no live router has a port on its subnet"
            ),
            Event::Neighbor(e) => e.fmt(f),
            Event::Health(e) => e.fmt(f),
        }
    }
}

/// What one input produced. Every field is to be acted on by the caller; nothing is queued
/// inside the control plane.
#[derive(Debug, Default)]
pub struct Effects {
    /// The frame passed to [`ControlPlane::on_frame`] was rewritten in place into a reply:
    /// transmit it on the port it came from.
    pub reply_in_place: bool,
    /// Other frames to transmit, in order.
    pub transmit: Vec<Transmit>,
    /// A new snapshot for the workers (publish it; they pick it up between bursts).
    pub publish: Option<Arc<Snapshot>>,
    /// Log events, in order.
    pub events: Vec<Event>,
    /// Flow records (in this router's member ids) every worker installs in its connection
    /// table: flows handed over by peer routers (issue 9).
    pub install: Vec<clua_pipeline::handoff::FlowRecord>,
    /// A peer asked for this router's whole table (it is starting): every worker walks its
    /// table once, handing every live entry to [`ControlPlane::on_flows`].
    pub walk_all: bool,
}

impl Effects {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        !self.reply_in_place
            && self.transmit.is_empty()
            && self.publish.is_none()
            && self.events.is_empty()
            && self.install.is_empty()
            && !self.walk_all
    }
}

/// Why a new model could not be put in force. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    /// The model does not validate.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ModelError>),
    /// The snapshot could not be built from it.
    #[error("{0}")]
    Snapshot(#[from] clua_pipeline::snapshot::SnapshotError),
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The first snapshot could not be built.
    #[error("building the configuration snapshot: {0}")]
    Snapshot(#[from] clua_pipeline::snapshot::SnapshotError),
    /// The router protocol's port is not an interconnect port with an address and a MAC.
    #[error("router protocol port `{0}` is not a port with an address and a MAC")]
    Interconnect(String),
    /// Flow hand-off without the router protocol (it shares its node, key and interconnect).
    #[error("flow hand-off ([sync]) needs the router protocol ([router])")]
    SyncWithoutRouters,
}

/// The control plane. See the module docs.
pub struct ControlPlane {
    state: ControlState,
    macs: Vec<Mac>,
    snapshot: Arc<Snapshot>,
    members: Option<MemberTracker>,
    /// The members' view changed and is not yet in `state`.
    members_pending: bool,
    /// When a failed re-application may be tried again.
    members_retry_at: u64,
    /// The last reason re-application failed (logged once).
    members_error: Option<RebuildError>,
    /// Member MACs by ARP (members without a configured `mac`).
    neighbors: Neighbors,
    /// Probes of static members (issue 10); empty until [`ControlPlane::set_health`].
    health: Health,
    counters: Arc<ControlCounters>,
    cores: Vec<Arc<CoreCounters>>,
    files: FileReader,
    /// This router among several (`None`: alone, it answers ARP for every alias).
    role: Option<RouterRole>,
    /// Which aliases this router answers ARP for, and with which MAC.
    arp_view: ArpView,
    /// Gratuitous ARPs still to send (a new master sends `garp_count`, spaced).
    garps: Vec<PendingGarp>,
    /// The last time an input carried.
    now_ms: u64,
    /// BFD sessions with the upstream routers.
    bfd: Option<Bfd>,
    /// The RIPv2 speaker.
    rip: Option<RipSpeaker>,
    /// Added to `now_ms` for RIP (wall-clock milliseconds).
    rip_offset: u64,
    /// Flow hand-off with the peer routers (issue 9).
    sync: Option<SyncPlane>,
    /// The ports' PMD statistics for `cluamgr -s` (issue 11).
    port_reader: Option<crate::status::PortReader>,
    /// The counters at the previous `cluamgr -s`, for rates.
    rate_sample: Option<crate::status::RateSample>,
    /// When the plane started (rates of the first `-s`).
    start_ms: u64,
}

/// The flow hand-off's part of the control plane: the state machine, the interconnect it
/// speaks on, and the member addresses of the snapshot in force.
struct SyncPlane {
    handoff: Handoff,
    ic: InterconnectPort,
    /// (interconnect address, member id), sorted, of snapshot generation `by_addr_generation`:
    /// a binary search per received record (cheaper than hashing for the few members of a
    /// cluster).
    by_addr: Vec<(std::net::Ipv4Addr, MemberId)>,
    by_addr_generation: u64,
    /// Whether the request repeated at the first peer's appearance has gone (or is moot).
    asked_again: bool,
    /// Scratch for the datagrams of one input.
    out: Vec<Vec<u8>>,
}

impl SyncPlane {
    /// Sends the signed payloads in `out` as broadcast frames on the interconnect.
    fn transmit(&mut self, fx: &mut Effects) {
        let port = self.handoff.settings().udp_port;
        for p in self.out.drain(..) {
            fx.transmit.extend(self.ic.broadcast_frame(port, &p));
        }
    }

    fn request(&mut self, fx: &mut Effects) {
        if let Some(p) = self.handoff.request() {
            self.out.push(p);
        }
        self.transmit(fx);
    }

    /// Makes `by_addr` the member ids of `snapshot` by interconnect address (rebuilt once per
    /// generation).
    fn refresh_members(&mut self, snapshot: &Snapshot) {
        if self.by_addr_generation != snapshot.generation {
            self.by_addr.clear();
            self.by_addr
                .extend(snapshot.members.iter().flatten().map(|m| (m.ipv4, m.id)));
            self.by_addr.sort_unstable();
            self.by_addr_generation = snapshot.generation;
        }
    }
}

/// A gratuitous ARP announcement in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingGarp {
    port: PortId,
    alias: std::net::Ipv4Addr,
    mac: Mac,
    left: u32,
    next_at: u64,
}

/// Everything [`ControlPlane::start_with`] needs.
pub struct Start {
    /// The configuration in force at start.
    pub state: ControlState,
    /// Port MACs, indexed like `state.cluster.ports`.
    pub macs: Vec<Mac>,
    /// Member adverts, when members run the agent.
    pub adverts: Option<AdvertSettings>,
    /// The router protocol, when this router is one of several (issue 8).
    pub routers: Option<RouterSettings>,
    /// BFD with upstream routers (RFC 5880/5881), with its seed (discriminators, source
    /// ports, jitter: differ per start).
    pub bfd: Option<(BfdSettings, u64)>,
    /// RIPv2 on client ports (CA6), with its seed (jitter).
    pub rip: Option<(RipSettings, u64)>,
    /// Flow hand-off with peer routers (issue 9); needs `routers` (it shares its node, key and
    /// interconnect).
    pub sync: Option<crate::sync::SyncSettings>,
    /// Milliseconds since the Unix epoch at `now_ms`: RIP's RFC 4822 sequence numbers follow
    /// the wall clock so that they keep growing across restarts (peers refuse a lower one).
    pub wall_clock_ms: u64,
    /// The workers' counters.
    pub cores: Vec<Arc<CoreCounters>>,
    /// Reads the files commands name.
    pub files: FileReader,
    /// The time of start on the clock later inputs use.
    pub now_ms: u64,
}

impl ControlPlane {
    /// Starts the control plane for `state` on ports with MACs `macs` (indexed like
    /// `state.cluster.ports`), with member adverts when `adverts` is given. `cores` are the
    /// workers' counters (read for `cluamgr -s`). Returns the plane and its first effects: the
    /// snapshot of generation 1 and gratuitous ARP for every alias it answers for (CA4).
    pub fn start(
        state: ControlState,
        macs: Vec<Mac>,
        adverts: Option<&AdvertSettings>,
        cores: Vec<Arc<CoreCounters>>,
        files: FileReader,
    ) -> Result<(ControlPlane, Effects), StartError> {
        Self::start_with(Start {
            state,
            macs,
            adverts: adverts.cloned(),
            routers: None,
            bfd: None,
            rip: None,
            sync: None,
            wall_clock_ms: 0,
            cores,
            files,
            now_ms: 0,
        })
    }

    /// [`ControlPlane::start`] with every option. With `routers`, this router first listens to
    /// its peers for one dead interval and answers ARP for no alias until the election says
    /// which are its own ([`crate::routers::role`]); the router protocol runs on the
    /// `interconnect` port the settings name.
    pub fn start_with(start: Start) -> Result<(ControlPlane, Effects), StartError> {
        let Start {
            state,
            macs,
            adverts,
            routers,
            bfd,
            rip,
            sync,
            wall_clock_ms,
            cores,
            files,
            now_ms,
        } = start;
        let rip_offset = wall_clock_ms.saturating_sub(now_ms);
        let rip = rip.map(|(settings, seed)| RipSpeaker::new(settings, seed, now_ms + rip_offset));
        let bfd = bfd.map(|(settings, seed)| Bfd::new(settings, seed, now_ms));
        let members = adverts.as_ref().map(|a| MemberTracker::new(a, &state));
        if sync.is_some() && routers.is_none() {
            return Err(StartError::SyncWithoutRouters);
        }
        let mut sync_plane = None;
        let role = match routers {
            None => None,
            Some(settings) => {
                let ic = state
                    .cluster
                    .ports
                    .iter()
                    .enumerate()
                    .find(|(_, p)| p.name == settings.interconnect)
                    .and_then(|(i, p)| {
                        let a = p.address?;
                        Some(InterconnectPort {
                            port: i as PortId,
                            mac: macs.get(i).copied().or(p.mac)?,
                            addr: a.addr,
                            prefix_len: a.len,
                        })
                    })
                    .ok_or_else(|| StartError::Interconnect(settings.interconnect.clone()))?;
                sync_plane = sync.map(|s| {
                    let mtu = state
                        .cluster
                        .ports
                        .get(usize::from(ic.port))
                        .map_or(1500, |p| usize::from(p.mtu));
                    SyncPlane {
                        handoff: Handoff::new(
                            s,
                            settings.node.clone(),
                            settings.key.clone(),
                            settings.boot_id,
                            mtu,
                            now_ms,
                        ),
                        ic,
                        by_addr: Vec::new(),
                        by_addr_generation: 0,
                        asked_again: false,
                        out: Vec::new(),
                    }
                });
                Some(RouterRole::new(settings, ic))
            }
        };
        let counters = Arc::new(ControlCounters::default());
        if let Some(t) = &members {
            if let Ok(mut g) = counters.adverts.lock() {
                *g = Some(t.counters().clone());
            }
        }
        let neighbors = Neighbors::new(
            &state.cluster,
            NeighborSettings::default(),
            counters.neighbors.clone(),
        );
        let arp_view = arp_view(&state, role.as_ref());
        let protocols = Protocols {
            rip: rip.is_some(),
            bfd: bfd.is_some(),
            sync: sync_plane
                .as_ref()
                .map_or(0, |s| s.handoff.settings().udp_port),
        };
        let snapshot = Arc::new(build_snapshot(
            &state,
            &macs,
            &arp_view,
            role.as_ref(),
            protocols,
            1,
        )?);
        let mut plane = ControlPlane {
            neighbors,
            health: Health::default(),
            state,
            macs,
            snapshot: snapshot.clone(),
            members,
            members_pending: false,
            members_retry_at: 0,
            members_error: None,
            counters,
            cores,
            files,
            role,
            arp_view,
            garps: Vec::new(),
            now_ms,
            bfd,
            rip,
            rip_offset,
            sync: sync_plane,
            port_reader: None,
            rate_sample: None,
            start_ms: now_ms,
        };
        let mut fx = Effects {
            publish: Some(snapshot.clone()),
            events: vec![Event::Generation {
                generation: 1,
                cause: Cause::Start,
            }],
            ..Effects::default()
        };
        plane.announce(None, &mut fx);
        plane.routing_status(true);
        plane.rip_routes(&mut fx);
        // A starting router learns its peers' flows before it forwards: they walk their tables
        // while it listens (docs/sync-protocol.md "Start-up").
        if let Some(s) = plane.sync.as_mut() {
            s.request(&mut fx);
        }
        plane.sync_status();
        Ok((plane, fx))
    }

    /// The state in force (the published snapshot is built from it).
    pub fn state(&self) -> &ControlState {
        &self.state
    }

    /// The snapshot in force.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// Gives `cluamgr -s` the ports' PMD statistics (the daemon's reader over its DPDK ports).
    pub fn set_port_reader(&mut self, reader: crate::status::PortReader) {
        self.port_reader = Some(reader);
    }

    /// `cluamgr -s` as text or JSON. With everything shown, the rates are over the time since
    /// the previous such `-s` (or start), whose sample is kept here.
    fn show(&mut self, what: &crate::command::ShowWhat, json: bool) -> String {
        let ports = self.port_reader.as_ref().map(|r| r()).unwrap_or_default();
        let cores = &self.cores;
        let routing = crate::show::RoutingShow {
            role: self.role.as_ref(),
            arp: &self.arp_view,
            now_ms: self.now_ms,
            bfd: self.bfd.as_ref(),
            rip: self.rip.as_ref(),
            sync: self.sync.as_ref().map(|s| &s.handoff),
            health: &self.health,
        };
        let (status, sample) = crate::status::build(
            &crate::status::StatusInputs {
                state: &self.state,
                snapshot: &self.snapshot,
                what,
                routing: &routing,
                cores,
                ports: &ports,
            },
            self.rate_sample.as_ref(),
            self.start_ms,
            self.now_ms,
        );
        let out = if json {
            serde_json::to_string_pretty(&status)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        } else {
            let counters = |id: MemberId| member_totals(cores, id);
            render_show_routing(
                &self.state,
                &self.snapshot,
                what,
                &counters,
                &routing,
                Some(&status),
            )
        };
        if let Some(sample) = sample {
            self.rate_sample = Some(sample);
        }
        out
    }

    /// The counters, shared with whoever reads them.
    pub fn counters(&self) -> &Arc<ControlCounters> {
        &self.counters
    }

    /// A punted frame that arrived on `port` at `now_ms`. ARP requests and echo requests we
    /// answer are rewritten in place ([`Effects::reply_in_place`]).
    pub fn on_frame(
        &mut self,
        port: PortId,
        reason: PuntReason,
        frame: &mut [u8],
        now_ms: u64,
    ) -> Effects {
        let mut fx = Effects::default();
        self.now_ms = self.now_ms.max(now_ms);
        if matches!(reason, PuntReason::Arp) {
            self.hear_arp(port, frame, now_ms, &mut fx);
            let mut events = Vec::new();
            if self.health.on_arp(port, frame, &mut events) {
                self.after_health(events, Vec::new(), now_ms, &mut fx);
            }
        }
        let c = &self.counters;
        match reason {
            PuntReason::Arp => match arp::respond(frame, &self.snapshot, &self.arp_view, port) {
                ArpOutcome::Reply => {
                    ControlCounters::bump(&c.arp_replies);
                    fx.reply_in_place = true;
                }
                ArpOutcome::Ignored => ControlCounters::bump(&c.arp_ignored),
                ArpOutcome::Malformed => ControlCounters::bump(&c.arp_malformed),
            },
            PuntReason::IcmpEcho => match icmp::respond_echo(frame, &self.snapshot, port) {
                IcmpOutcome::Reply => {
                    ControlCounters::bump(&c.icmp_replies);
                    fx.reply_in_place = true;
                }
                IcmpOutcome::Ignored | IcmpOutcome::Malformed => {
                    ControlCounters::bump(&c.icmp_ignored)
                }
            },
            PuntReason::Router => {
                let Some(role) = self.role.as_mut() else {
                    ControlCounters::bump(&c.unexpected);
                    return fx;
                };
                if port != role.interconnect() {
                    ControlCounters::bump(&c.unexpected);
                    return fx;
                }
                role.on_frame(frame, now_ms);
                // Nothing is elected here (at the next tick); the events and counters are new.
                self.after_routing(false, now_ms, &mut fx);
            }
            PuntReason::Bfd => {
                let Some(b) = self.bfd.as_mut() else {
                    ControlCounters::bump(&c.unexpected);
                    return fx;
                };
                fx.transmit.extend(b.on_frame(port, frame, now_ms));
                self.bfd_status(&mut fx);
            }
            PuntReason::Rip => {
                let Some(r) = self.rip.as_mut() else {
                    ControlCounters::bump(&c.unexpected);
                    return fx;
                };
                fx.transmit
                    .extend(r.on_frame(port, frame, now_ms + self.rip_offset));
                self.rip_status();
            }
            PuntReason::Sync => {
                let Some(s) = self.sync.as_mut() else {
                    ControlCounters::bump(&c.unexpected);
                    return fx;
                };
                if port != s.ic.port {
                    ControlCounters::bump(&c.unexpected);
                    return fx;
                }
                match udp_payload(frame) {
                    None => s
                        .handoff
                        .on_refused(crate::sync::wire::SyncError::Malformed),
                    Some((_, _, _, payload)) => {
                        s.refresh_members(&self.snapshot);
                        let by_addr = &s.by_addr;
                        let got = s.handoff.on_datagram(
                            payload,
                            |a| {
                                by_addr
                                    .binary_search_by_key(&a, |e| e.0)
                                    .ok()
                                    .map(|i| by_addr[i].1)
                            },
                            &mut fx.install,
                        );
                        fx.walk_all = got == Received::Request;
                    }
                }
                self.sync_status();
            }
            PuntReason::Probe => {
                let (mut events, mut out) = (Vec::new(), Vec::new());
                if !self.health.on_tcp(port, frame, &mut out, &mut events) {
                    ControlCounters::bump(&c.unexpected);
                    return fx;
                }
                self.after_health(events, out, now_ms, &mut fx);
            }
            PuntReason::MemberAdvert => {
                let Some(t) = self.members.as_mut() else {
                    ControlCounters::bump(&c.unexpected);
                    return fx;
                };
                match t.on_frame(frame, now_ms) {
                    Some(outcome) => {
                        if let Ok(mut g) = c.adverts.lock() {
                            *g = Some(t.counters().clone());
                        }
                        if outcome.changed() {
                            self.members_pending = true;
                            // A new report is worth trying at once, even after a failure.
                            self.members_retry_at = now_ms;
                        }
                    }
                    None => ControlCounters::bump(&c.unexpected),
                }
                self.apply_members(now_ms, &mut fx);
            }
        }
        fx
    }

    /// The passage of time: members whose dead interval passed go down (CA3), draining members
    /// that said goodbye end, a failed member-state application is retried.
    pub fn on_tick(&mut self, now_ms: u64) -> Effects {
        let mut fx = Effects::default();
        self.now_ms = self.now_ms.max(now_ms);
        if let Some(role) = self.role.as_mut() {
            let (out, changed) = role.on_tick(&self.state, now_ms);
            fx.transmit.extend(out);
            self.after_routing(changed, now_ms, &mut fx);
        }
        self.flush_garps(now_ms, &mut fx);
        if let Some(r) = self.rip.as_mut() {
            let now = now_ms + self.rip_offset;
            if now >= r.next_wakeup() {
                fx.transmit.extend(r.on_tick(now));
                self.rip_status();
            }
        }
        if let Some(b) = self.bfd.as_mut() {
            let out = b.on_tick(now_ms);
            if !out.is_empty() {
                fx.transmit.extend(out);
                self.bfd_status(&mut fx);
            }
        }
        if let Some(t) = self.members.as_mut() {
            if t.expire(now_ms) {
                self.members_pending = true;
                self.members_retry_at = self.members_retry_at.min(now_ms);
                if let Ok(mut g) = self.counters.adverts.lock() {
                    *g = Some(t.counters().clone());
                }
            }
        }
        self.apply_members(now_ms, &mut fx);
        self.tick_neighbors(now_ms, &mut fx);
        if self.health.next_wakeup().is_some_and(|t| now_ms >= t) {
            let (mut events, mut out) = (Vec::new(), Vec::new());
            self.health
                .on_tick(now_ms, &self.snapshot, &mut out, &mut events);
            self.after_health(events, out, now_ms, &mut fx);
        } else if self.health.due(now_ms) {
            self.after_health(Vec::new(), Vec::new(), now_ms, &mut fx);
        }
        if let Some(s) = self.sync.as_mut() {
            if s.handoff.next_flush().is_some_and(|t| now_ms >= t) {
                s.handoff.flush(now_ms, &mut s.out);
                s.transmit(&mut fx);
                self.sync_status();
            }
        }
        fx
    }

    /// Every ARP packet, request or reply, before the responder may rewrite it: a member's
    /// own ARP packets tell its MAC (crate::neighbors).
    fn hear_arp(&mut self, port: PortId, frame: &[u8], now_ms: u64, fx: &mut Effects) {
        if let Heard::Member(Some(e)) = self.neighbors.on_arp(port, frame, now_ms) {
            fx.events.push(Event::Neighbor(e));
        }
    }

    /// The resolver's due ARP requests, and a new generation when a member MAC was learned,
    /// changed or expired.
    fn tick_neighbors(&mut self, now_ms: u64, fx: &mut Effects) {
        let mut requests = Vec::new();
        let mut events = Vec::new();
        self.neighbors
            .on_tick(now_ms, &self.snapshot, &mut requests, &mut events);
        fx.transmit.extend(requests.into_iter().map(|r| Transmit {
            port: r.port,
            frame: r.frame.to_vec(),
        }));
        fx.events.extend(events.into_iter().map(Event::Neighbor));
        if !self.neighbors.due(now_ms) {
            return;
        }
        let mut next = self.state.clone();
        self.neighbors.apply(&mut next);
        if next == self.state {
            self.neighbors.applied(now_ms);
            return;
        }
        match self.publish(next, Cause::Neighbors, fx) {
            Ok(_) => self.neighbors.applied(now_ms),
            Err(why) => {
                self.neighbors.retry_at(now_ms + MEMBER_RETRY_MS);
                let why = why.to_string();
                fx.events
                    .push(Event::Neighbor(NeighborEvent::NotApplied { why }));
            }
        }
    }

    /// Probes the static members `specs` name (issue 10, [`crate::members::health`]) from now
    /// on, replacing any probing before: every probed member starts up, and members no longer
    /// probed are left as they are. `seed` should differ per start (probe source ports and
    /// sequence numbers).
    pub fn set_health(&mut self, specs: &[HealthSpec], seed: u64) {
        self.health = Health::new(&self.state.cluster, specs, seed);
        self.health_status();
    }

    /// After a successful [`reload`](Self::reload): probes as the reloaded file says, kept
    /// state for unchanged members ([`Health::reconfigure`]).
    pub fn reconfigure_health(&mut self, specs: &[HealthSpec]) {
        self.health.reconfigure(&self.state.cluster, specs);
        self.health_status();
    }

    /// The probes of static members.
    pub fn health(&self) -> &Health {
        &self.health
    }

    fn health_status(&self) {
        if let Ok(mut g) = self.counters.health.lock() {
            *g = self.health.status();
        }
    }

    /// After probes were sent or answered: the frames out, the events logged, and a new
    /// generation when a member crossed a threshold (CA3: a down member gets no new flows).
    fn after_health(
        &mut self,
        events: Vec<HealthEvent>,
        out: Vec<ProbeFrame>,
        now_ms: u64,
        fx: &mut Effects,
    ) {
        fx.transmit.extend(out.into_iter().map(|f| Transmit {
            port: f.port,
            frame: f.frame,
        }));
        fx.events.extend(events.into_iter().map(Event::Health));
        self.health_status();
        if !self.health.due(now_ms) {
            return;
        }
        let mut next = self.state.clone();
        self.health.apply(&mut next);
        if next == self.state {
            self.health.applied();
            return;
        }
        match self.publish(next, Cause::Health, fx) {
            Ok(_) => self.health.applied(),
            Err(why) => {
                self.health.retry_at(now_ms + MEMBER_RETRY_MS);
                fx.events.push(Event::Health(HealthEvent::NotApplied {
                    why: why.to_string(),
                }));
            }
        }
    }

    /// A cluamgr command: applied to a copy of the state, validated, turned into a snapshot and
    /// published, or refused with nothing changed.
    pub fn on_command(&mut self, command: &Command, now_ms: u64) -> (Reply, Effects) {
        self.on_command_as(command, false, now_ms)
    }

    /// [`on_command`](Self::on_command), with the reply of a read command (`-s`, `simulate`)
    /// in its JSON form when `json` ([`crate::status::Status`], [`crate::simulate`]); commands
    /// that change something reply in text either way.
    pub fn on_command_as(
        &mut self,
        command: &Command,
        json: bool,
        now_ms: u64,
    ) -> (Reply, Effects) {
        if let Command::Capture(_) = command {
            // The frames are the workers'; aliasd's daemon loop serves capture itself.
            let reply = Reply {
                ok: false,
                output: "capture is served by aliasd's data plane, not by this control plane"
                    .into(),
            };
            return (reply, Effects::default());
        }
        if let Command::Simulate(q) = command {
            let q = crate::simulate::Query {
                json: q.json || json,
                ..*q
            };
            let q = &q;
            // Read-only by construction: no tick, no event, only the snapshot in force is read.
            let reply = Reply {
                ok: true,
                output: crate::simulate::render(&self.snapshot, q),
            };
            return (reply, Effects::default());
        }
        let mut fx = Effects::default();
        self.now_ms = self.now_ms.max(now_ms);
        let text = command.to_args().join(" ");
        let refuse = |why: String, fx: &mut Effects| {
            fx.events.push(Event::CommandRefused {
                command: text.clone(),
                why: why.clone(),
            });
            Reply {
                ok: false,
                output: why,
            }
        };
        let reply = match apply(&self.state, command, &*self.files) {
            Err(e) => refuse(e.to_string(), &mut fx),
            Ok(Applied::Help) => Reply {
                ok: true,
                output: USAGE.to_string(),
            },
            Ok(Applied::Show(what)) => Reply {
                ok: true,
                output: self.show(&what, json),
            },
            Ok(Applied::Changed(_, changes)) if changes.is_empty() => Reply {
                ok: true,
                output: "no change".into(),
            },
            Ok(Applied::Changed(mut next, changes)) => {
                // Commands change the configured model; the members' reported state stays on
                // top of it (an agent member's joins come from its adverts).
                if let Some(t) = &self.members {
                    t.apply(&mut next);
                }
                match self.publish(*next, Cause::Command, &mut fx) {
                    Err(why) => refuse(format!("building the new configuration: {why}"), &mut fx),
                    Ok(generation) => {
                        fx.events.insert(
                            0,
                            Event::CommandApplied {
                                command: text.clone(),
                                changes: changes.len(),
                            },
                        );
                        let mut output = changes.join("\n");
                        output.push_str(&format!(
                            "\n(configuration generation {generation} in force)"
                        ));
                        Reply { ok: true, output }
                    }
                }
            }
        };
        // The command may have been the first input in a while: expire and retry as a tick would.
        let tick = self.on_tick(now_ms);
        fx.merge(tick);
        (reply, fx)
    }

    /// A configuration reload (issue 11): `next` is the new file's live part, parsed and
    /// validated by the caller (aliasd, which also refused changed restart-only keys). Merged
    /// onto the state in force ([`crate::reload::merge`]: member ids kept, learned MACs and
    /// member state kept), validated and published as one new snapshot, or refused with
    /// nothing changed. The connection tables are the workers' and are not touched, so
    /// established connections keep their members. The reply lists what changed.
    pub fn reload(&mut self, next: ControlState, now_ms: u64) -> (Reply, Effects) {
        let mut fx = Effects::default();
        self.now_ms = self.now_ms.max(now_ms);
        let capacity = self
            .cores
            .iter()
            .map(|c| c.member_packets.len())
            .min()
            .unwrap_or(usize::MAX);
        let refuse = |why: String, fx: &mut Effects| {
            fx.events.push(Event::CommandRefused {
                command: "--reload".into(),
                why: why.clone(),
            });
            Reply {
                ok: false,
                output: format!("reload refused, nothing changed: {why}"),
            }
        };
        let reply = match crate::reload::merge(&self.state, next, capacity) {
            Err(e) => refuse(e.to_string(), &mut fx),
            Ok((_, changes)) if changes.is_empty() => Reply {
                ok: true,
                output: "reload: no change".into(),
            },
            Ok((mut next, changes)) => {
                if let Some(t) = &self.members {
                    t.apply(&mut next);
                }
                let result = next
                    .cluster
                    .validate()
                    .map_err(RebuildError::Invalid)
                    .and_then(|()| {
                        let cluster = next.cluster.clone();
                        let g = self.publish(next, Cause::Reload, &mut fx)?;
                        self.neighbors.reconfigure(&cluster);
                        Ok(g)
                    });
                match result {
                    Err(why) => refuse(why.to_string(), &mut fx),
                    Ok(generation) => {
                        fx.events.insert(
                            0,
                            Event::CommandApplied {
                                command: "--reload".into(),
                                changes: changes.len(),
                            },
                        );
                        let mut output = format!("reload: {} change(s)\n", changes.len());
                        output.push_str(&changes.join("\n"));
                        output.push_str(&format!(
                            "\n(configuration generation {generation} in force)"
                        ));
                        Reply { ok: true, output }
                    }
                }
            }
        };
        let tick = self.on_tick(now_ms);
        fx.merge(tick);
        (reply, fx)
    }

    /// Re-applies the members' view to the model if it changed (or a retry is due).
    fn apply_members(&mut self, now_ms: u64, fx: &mut Effects) {
        if !self.members_pending || now_ms < self.members_retry_at {
            return;
        }
        let Some(t) = &self.members else {
            self.members_pending = false;
            return;
        };
        let mut next = self.state.clone();
        t.apply(&mut next);
        if next == self.state {
            self.members_pending = false;
            return;
        }
        let result = next
            .cluster
            .validate()
            .map_err(RebuildError::Invalid)
            .and_then(|()| self.publish(next, Cause::Members, fx));
        match result {
            Ok(_) => {
                self.members_pending = false;
                if self.members_error.take().is_some() {
                    fx.events.push(Event::MemberStateApplied);
                }
            }
            Err(why) => {
                self.members_retry_at = now_ms + MEMBER_RETRY_MS;
                if self.members_error.as_ref() != Some(&why) {
                    fx.events
                        .push(Event::MemberStateNotApplied { why: why.clone() });
                    self.members_error = Some(why);
                }
            }
        }
    }

    /// Builds the snapshot of `next` and, if that works, makes `next` the state in force.
    /// Returns the new generation.
    fn publish(
        &mut self,
        next: ControlState,
        cause: Cause,
        fx: &mut Effects,
    ) -> Result<u64, RebuildError> {
        let generation = self.snapshot.generation + 1;
        if let Some(role) = self.role.as_mut() {
            // The router's own view (aliases, rpri) may have changed: elect again.
            role.on_state_change();
            let (out, _) = role.on_tick(&next, self.now_ms);
            fx.transmit.extend(out);
        }
        let view = arp_view(&next, self.role.as_ref());
        let snapshot = Arc::new(build_snapshot(
            &next,
            &self.macs,
            &view,
            self.role.as_ref(),
            self.protocols(),
            generation,
        )?);
        diff_members(&self.state.cluster, &next.cluster, &mut fx.events);
        fx.events.push(Event::Generation { generation, cause });
        let before = (
            self.snapshot.clone(),
            std::mem::replace(&mut self.arp_view, view),
        );
        self.state = next;
        self.snapshot = snapshot.clone();
        self.announce(Some((&before.0, &before.1)), fx);
        self.take_role_events(fx);
        self.routing_status(true);
        self.rip_routes(fx);
        fx.publish = Some(snapshot);
        Ok(generation)
    }

    /// After the router protocol ran: if what this router answers ARP for changed, a new ARP
    /// view (at once: a router that lost an alias stops answering now), a snapshot with the
    /// vMACs it now receives for, and gratuitous ARP for what it gained.
    fn after_routing(&mut self, changed: bool, now_ms: u64, fx: &mut Effects) {
        if changed {
            let view = arp_view(&self.state, self.role.as_ref());
            let generation = self.snapshot.generation + 1;
            match build_snapshot(
                &self.state,
                &self.macs,
                &view,
                self.role.as_ref(),
                self.protocols(),
                generation,
            ) {
                Ok(s) => {
                    let snapshot = Arc::new(s);
                    let before = (
                        std::mem::replace(&mut self.snapshot, snapshot.clone()),
                        std::mem::replace(&mut self.arp_view, view),
                    );
                    fx.events.push(Event::Generation {
                        generation,
                        cause: Cause::Routers,
                    });
                    self.announce(Some((&before.0, &before.1)), fx);
                    fx.publish = Some(snapshot);
                }
                // The state built a snapshot before; only the vMACs differ, which cannot fail.
                // Should it fail anyway, answer by the new view and keep the old snapshot.
                Err(_) => self.arp_view = view,
            }
            self.flush_garps(now_ms, fx);
        }
        self.take_role_events(fx);
        self.routing_status(changed);
    }

    fn take_role_events(&mut self, fx: &mut Effects) {
        let Some(role) = self.role.as_mut() else {
            return;
        };
        let events = role.take_events();
        let peer_up = events.iter().any(|e| matches!(e, RoleEvent::PeerUp(_)));
        fx.events.extend(events.into_iter().map(Event::Router));
        // The start-up request again when the first peer is heard, unless a peer's flows came
        // already: the first may have gone before the interconnect carried anything.
        if let (true, Some(s)) = (peer_up, self.sync.as_mut()) {
            if !s.asked_again {
                s.asked_again = true;
                if s.handoff.counters().messages_received == 0 {
                    s.request(fx);
                    self.sync_status();
                }
            }
        }
    }

    /// Copies the flow hand-off's counters for the metrics endpoint.
    fn sync_status(&self) {
        let Some(s) = &self.sync else {
            return;
        };
        if let Ok(mut g) = self.counters.sync.lock() {
            match g.as_mut() {
                Some(c) => c.clone_from(s.handoff.counters()),
                None => *g = Some(s.handoff.counters().clone()),
            }
        }
    }

    /// The flow hand-off, if it runs.
    pub fn sync(&self) -> Option<&Handoff> {
        self.sync.as_ref().map(|s| &s.handoff)
    }

    /// Copies the router protocol's state for the metrics endpoint: the counters after every
    /// input, the per-alias masters only when they (or the aliases) may have changed, since
    /// that list is as long as the aliases.
    fn routing_status(&self, masters_changed: bool) {
        let Some(role) = &self.role else {
            return;
        };
        let Ok(mut g) = self.counters.routers.lock() else {
            return;
        };
        let status = g.get_or_insert_with(RoutingStatus::default);
        status.peers = role.tracker().peers().len();
        status.elections = role.elections();
        status.counters.clone_from(role.tracker().counters());
        if masters_changed || status.masters.len() != self.state.cluster.aliases.len() {
            let mine = role.masters_of_this_router();
            status.masters = self
                .state
                .cluster
                .aliases
                .iter()
                .map(|a| (a.name.clone(), mine.contains(&a.address)))
                .collect();
        }
    }

    /// Flow records from this router's workers (TCP flows that became established, and the
    /// entries of their periodic or requested table walks), in this router's member ids: batched
    /// and handed to the peer routers (issue 9, docs/sync-protocol.md).
    /// Without the hand-off, the records are dropped.
    pub fn on_flows(
        &mut self,
        records: &[clua_pipeline::handoff::FlowRecord],
        now_ms: u64,
    ) -> Effects {
        let mut fx = Effects::default();
        self.now_ms = self.now_ms.max(now_ms);
        let Some(s) = self.sync.as_mut() else {
            return fx;
        };
        let members = &self.snapshot.members;
        let address = |id: MemberId| {
            members
                .get(id.0 as usize)
                .and_then(|m| m.as_ref())
                .map(|m| m.ipv4)
        };
        s.handoff.offer(records, address, now_ms, &mut s.out);
        s.transmit(&mut fx);
        self.sync_status();
        fx
    }

    /// A clean shutdown: the flow hand-off's batch in progress, and the router protocol's
    /// goodbye (peers take this router's aliases at once). The plane answers nothing afterwards.
    pub fn shutdown(&mut self) -> Effects {
        let mut fx = Effects::default();
        if let Some(s) = self.sync.as_mut() {
            // The batch in progress goes now: its flows are about to move to the peers.
            s.handoff.flush_all(&mut s.out);
            s.transmit(&mut fx);
            self.sync_status();
        }
        if let Some(r) = self.rip.as_mut() {
            // Every route with metric 16 at once: the upstream drops them now (CA6).
            fx.transmit.extend(r.shutdown());
            self.rip_status();
        }
        if let Some(b) = self.bfd.as_mut() {
            fx.transmit.extend(b.shutdown());
            self.bfd_status(&mut fx);
        }
        if let Some(role) = self.role.as_mut() {
            fx.transmit.extend(role.goodbye());
            self.arp_view.masters = Some(Default::default());
            self.garps.clear();
        }
        fx
    }

    /// The routes of the state in force to the RIP speaker: what is new goes out at once
    /// (triggered update), what is gone goes out with metric 16.
    fn rip_routes(&mut self, fx: &mut Effects) {
        let Some(r) = self.rip.as_mut() else {
            return;
        };
        let routes = crate::rip::routes(&self.state);
        fx.transmit
            .extend(r.set_routes(&routes, self.now_ms + self.rip_offset));
        self.rip_status();
    }

    fn rip_status(&self) {
        let Some(r) = &self.rip else {
            return;
        };
        let status = RipStatus {
            counters: r.counters().clone(),
            routes: r.routes().filter(|(_, m)| *m < 16).count(),
        };
        if let Ok(mut g) = self.counters.rip.lock() {
            *g = Some(status);
        }
    }

    /// RIP, if it runs.
    pub fn rip(&self) -> Option<&RipSpeaker> {
        self.rip.as_ref()
    }

    /// BFD's events as log lines, its counters and sessions for the metrics endpoint.
    fn bfd_status(&mut self, fx: &mut Effects) {
        let Some(b) = self.bfd.as_mut() else {
            return;
        };
        fx.events
            .extend(b.take_events().into_iter().map(Event::Bfd));
        let status = BfdStatus {
            counters: b.counters().clone(),
            sessions: b
                .sessions()
                .map(|s| (s.peer, s.state == BfdState::Up))
                .collect(),
        };
        if let Ok(mut g) = self.counters.bfd.lock() {
            *g = Some(status);
        }
    }

    fn protocols(&self) -> Protocols {
        Protocols {
            rip: self.rip.is_some(),
            bfd: self.bfd.is_some(),
            sync: self
                .sync
                .as_ref()
                .map_or(0, |s| s.handoff.settings().udp_port),
        }
    }

    /// BFD, if it runs.
    pub fn bfd(&self) -> Option<&Bfd> {
        self.bfd.as_ref()
    }

    /// This router among several, if it is.
    pub fn role(&self) -> Option<&RouterRole> {
        self.role.as_ref()
    }

    /// The ARP view in force.
    pub fn arp_view(&self) -> &ArpView {
        &self.arp_view
    }

    /// Schedules gratuitous ARP for every (client port, alias, MAC) answered now and not
    /// `before` (all of them at start): a router that starts answering for an alias announces
    /// it, so neighbours update their caches at once (CA4), and from the vMAC so switches
    /// learn where it is now (CA5). Announcements in progress for what is no longer answered
    /// stop. Alone, one announcement per alias; among several routers `garp_count`, spaced.
    fn announce(&mut self, before: Option<(&Snapshot, &ArpView)>, fx: &mut Effects) {
        let now = answered(&self.snapshot, &self.arp_view);
        let was = before.map(|(s, v)| answered(s, v)).unwrap_or_default();
        self.garps
            .retain(|g| now.contains(&(g.port, g.alias, g.mac)));
        let (count, _) = self.garp_spacing();
        for &(port, alias, mac) in now.difference(&was) {
            self.garps.retain(|g| !(g.port == port && g.alias == alias));
            self.garps.push(PendingGarp {
                port,
                alias,
                mac,
                left: count,
                next_at: self.now_ms,
            });
        }
        self.flush_garps(self.now_ms, fx);
    }

    fn garp_spacing(&self) -> (u32, u64) {
        match &self.role {
            None => (1, 0),
            Some(r) => {
                let s = r.tracker().settings();
                (s.garp_count.max(1), u64::from(s.garp_interval_ms))
            }
        }
    }

    /// Sends the gratuitous ARPs that are due.
    fn flush_garps(&mut self, now_ms: u64, fx: &mut Effects) {
        if self.garps.is_empty() {
            return;
        }
        let (_, spacing) = self.garp_spacing();
        for g in self.garps.iter_mut().filter(|g| g.next_at <= now_ms) {
            let mut frame = [0u8; arp::ARP_FRAME_LEN];
            arp::gratuitous(&mut frame, g.mac, g.alias);
            ControlCounters::bump(&self.counters.garp_sent);
            fx.transmit.push(Transmit {
                port: g.port,
                frame: frame.to_vec(),
            });
            g.left -= 1;
            g.next_at = now_ms + spacing;
        }
        self.garps.retain(|g| g.left > 0);
    }
}

/// Every (client port, alias, MAC) the router answers ARP for under `view`.
fn answered(s: &Snapshot, view: &ArpView) -> BTreeSet<(PortId, std::net::Ipv4Addr, Mac)> {
    let mut out = BTreeSet::new();
    for (i, info) in s.ports.iter().enumerate() {
        if info.role != PortRole::Client {
            continue;
        }
        for alias in &s.aliases {
            if let Some(mac) = arp::answers_for(s, view, i as PortId, alias.addr) {
                out.insert((i as PortId, alias.addr, mac));
            }
        }
    }
    out
}

/// The ARP view of `state`: alone, every alias; among several routers, the ones the election
/// gave this router; vMACs for the aliases that have one (CA5).
fn arp_view(state: &ControlState, role: Option<&RouterRole>) -> ArpView {
    ArpView {
        masters: role.map(|r| r.masters_of_this_router().clone()),
        vmacs: state
            .cluster
            .aliases
            .iter()
            .filter(|a| a.vmac)
            .map(|a| {
                (
                    a.address,
                    crate::model::vmac(&state.cluster.name, a.address),
                )
            })
            .collect(),
    }
}

/// Which of RIP and BFD run, and the flow hand-off's port (0: off): classify punts their
/// datagrams.
#[derive(Clone, Copy, Debug, Default)]
struct Protocols {
    rip: bool,
    bfd: bool,
    sync: u16,
}

/// The workers' snapshot of `state`: the model's, with the control protocols classify punts
/// and the vMACs this router receives for (those of the aliases it answers ARP for).
fn build_snapshot(
    state: &ControlState,
    macs: &[Mac],
    view: &ArpView,
    role: Option<&RouterRole>,
    protocols: Protocols,
    generation: u64,
) -> Result<Snapshot, clua_pipeline::snapshot::SnapshotError> {
    let s = state.cluster.snapshot(generation, macs)?;
    let mut vmacs: Vec<(PortId, Mac)> = answered(&s, view)
        .into_iter()
        .filter(|(port, alias, mac)| {
            view.vmacs.get(alias) == Some(mac) && s.ports[*port as usize].mac != *mac
        })
        .map(|(port, _, mac)| (port, mac))
        .collect();
    vmacs.dedup();
    let control = ControlPorts {
        router: role.map_or(0, |r| r.tracker().settings().udp_port),
        rip: protocols.rip,
        bfd: protocols.bfd,
        sync: protocols.sync,
    };
    Ok(s.with_control(control).with_vmacs(vmacs))
}

impl Effects {
    fn merge(&mut self, other: Effects) {
        self.reply_in_place |= other.reply_in_place;
        self.transmit.extend(other.transmit);
        if other.publish.is_some() {
            self.publish = other.publish;
        }
        self.events.extend(other.events);
        self.install.extend(other.install);
        self.walk_all |= other.walk_all;
    }
}

/// A member's packets and new flows summed over the workers.
pub fn member_totals(cores: &[Arc<CoreCounters>], id: MemberId) -> (u64, u64) {
    let sum = |f: fn(&CoreCounters) -> &[AtomicU64]| -> u64 {
        cores
            .iter()
            .map(|c| {
                f(c).get(id.0 as usize)
                    .map_or(0, |a| a.load(Ordering::Relaxed))
            })
            .sum()
    };
    (sum(|c| &c.member_packets), sum(|c| &c.member_flows))
}

/// Events for what differs between two models: members up or down, joins, leaves, new weights.
fn diff_members(old: &Cluster, new: &Cluster, events: &mut Vec<Event>) {
    for (member, refused) in crate::out_alias::refusal_changes(old, new) {
        events.push(Event::OutAlias { member, refused });
    }
    for m in &new.members {
        let was = old.members.iter().find(|o| o.name == m.name).map(|o| o.up);
        match (was, m.up) {
            (Some(false) | None, true) => events.push(Event::MemberUp {
                member: m.name.clone(),
            }),
            (Some(true), false) => events.push(Event::MemberDown {
                member: m.name.clone(),
            }),
            _ => {}
        }
    }
    for a in &new.aliases {
        let before = old.aliases.iter().find(|o| o.address == a.address);
        for j in a.joined() {
            let prev = before.and_then(|b| b.joined().find(|p| p.member == j.member));
            match prev {
                None => events.push(Event::Joined {
                    member: j.member.clone(),
                    alias: a.name.clone(),
                    selw: j.selw,
                    selp: j.selp,
                }),
                Some(p) if p.selw != j.selw || p.selp != j.selp => events.push(Event::Reweighted {
                    member: j.member.clone(),
                    alias: a.name.clone(),
                    selw: j.selw,
                    selp: j.selp,
                }),
                Some(_) => {}
            }
        }
        if let Some(b) = before {
            let now: BTreeSet<&str> = a.joined().map(|j| j.member.as_str()).collect();
            for p in b.joined() {
                if !now.contains(p.member.as_str()) {
                    events.push(Event::Left {
                        member: p.member.clone(),
                        alias: a.name.clone(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advert::{AdvertKind, AdvertRepr, AliasEntry};
    use crate::model::{AliasSpec, JoinSpec, MemberMac, MemberSpec, PortSpec, Prefix, Proto};
    use clua_pipeline::snapshot::Encap;
    use std::net::Ipv4Addr;

    const KEY: &[u8] = b"plane test key, long enough";
    const WEB: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
    const MACS: [Mac; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];

    fn state() -> ControlState {
        let port = |name: &str, role, addr: [u8; 4], len| PortSpec {
            name: name.into(),
            role,
            address: Some(Prefix {
                addr: addr.into(),
                len,
            }),
            mtu: 1500,
            mac: None,
            flow_source: None,
        };
        let member = |name: &str, last: u8| MemberSpec {
            name: name.into(),
            port: "ic0".into(),
            address: Ipv4Addr::new(192, 0, 2, last),
            mac: MemberMac::Configured([2, 0, 0, 0, 1, last]),
            encap: Encap::L2,
            up: false,
            agent: true,
            listening: None,
            out_alias: None,
        };
        let alias = |name: &str, last: u8| AliasSpec {
            name: name.into(),
            address: Ipv4Addr::new(198, 51, 100, last),
            members: vec![],
            rpri: 1,
            virtual_subnet: false,
            mask: None,
            vmac: false,
        };
        let mut cluster = Cluster {
            name: "t".into(),
            default_alias: "cluster".into(),
            max_aliases: 8,
            ports: vec![
                port("client", PortRole::Client, [198, 51, 100, 2], 24),
                port("ic0", PortRole::Interconnect, [192, 0, 2, 2], 24),
            ],
            members: vec![member("m1", 11), member("m2", 12)],
            aliases: vec![alias("cluster", 99), alias("web", 100)],
            services: vec![],
            advert_port: 9471,
        };
        cluster.validate().expect("test cluster is valid");
        // Members start down (agents); nothing joined yet.
        cluster.members.iter_mut().for_each(|m| m.up = false);
        ControlState {
            cluster,
            services_file: None,
            resvok: false,
        }
    }

    fn plane() -> ControlPlane {
        let settings = AdvertSettings {
            key: KEY.to_vec(),
            port: 9471,
            dead_misses: 3,
        };
        let (p, fx) = ControlPlane::start(
            state(),
            MACS.to_vec(),
            Some(&settings),
            vec![],
            Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
        )
        .unwrap();
        assert_eq!(fx.publish.as_ref().map(|s| s.generation), Some(1));
        p
    }

    /// An advert from `node` joining web, wrapped in Ethernet/IPv4/UDP to the router's
    /// interconnect address.
    fn advert_frame(node: &str, seq: u64) -> Vec<u8> {
        advert_frame_with(node, seq, None)
    }

    /// [`advert_frame`] with an out_alias range (CA9).
    fn advert_frame_with(
        node: &str,
        seq: u64,
        out_alias: Option<clua_pipeline::out_alias::PortRange>,
    ) -> Vec<u8> {
        let repr = AdvertRepr {
            kind: AdvertKind::Advert,
            node: node.into(),
            boot_id: 1,
            seq,
            interval_ms: 1000,
            aliases: vec![AliasEntry {
                addr: WEB,
                joined: true,
                selw: 2,
                selp: 1,
            }],
            ports: vec![(Proto::Tcp, 80)],
            out_alias,
        };
        let payload = repr.emit_signed(KEY).unwrap();
        let mut f = vec![];
        f.extend_from_slice(&MACS[1]);
        f.extend_from_slice(&[2, 0, 0, 0, 1, 11]);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = (20 + 8 + payload.len()) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[192, 0, 2, 11]);
        ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
        let sum = clua_pipeline::wire::checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&9471u16.to_be_bytes());
        f.extend_from_slice(&9471u16.to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&payload);
        f
    }

    fn m1_up(p: &ControlPlane) -> bool {
        p.snapshot()
            .members
            .iter()
            .flatten()
            .any(|m| m.name == "m1" && m.up)
    }

    /// CA9: advertised out_alias ranges reach the workers' table; an overlapping one is refused,
    /// with one warning, and used once it no longer overlaps.
    #[test]
    fn advertised_out_alias_ranges_overlapping_ones_refused_and_logged_once() {
        let r = |s: &str| Some(s.parse().unwrap());
        let out_alias_events = |fx: &Effects| -> Vec<String> {
            fx.events
                .iter()
                .filter(|e| matches!(e, Event::OutAlias { .. }))
                .map(|e| format!("{}{e}", if e.is_warning() { "warning: " } else { "" }))
                .collect()
        };
        let mut p = plane();
        let mut f = advert_frame_with("m1", 1, r("61000-61999"));
        let fx = p.on_frame(1, PuntReason::MemberAdvert, &mut f, 10);
        assert!(out_alias_events(&fx).is_empty());
        let s = p.snapshot();
        assert_eq!(s.out_alias.member_for(61500), Some(MemberId(0)));
        assert_eq!(s.out_alias.alias(), Some(clua_pipeline::AliasId(0)));
        let mut f = advert_frame_with("m2", 1, r("61500-62999"));
        let fx = p.on_frame(1, PuntReason::MemberAdvert, &mut f, 20);
        assert_eq!(
            out_alias_events(&fx),
            vec!["warning: member m2: out_alias ports 61500-62999 overlap member m1's 61000-61999; its out_alias replies are not steered"]
        );
        assert_eq!(p.snapshot().out_alias.member_for(62500), None);
        assert_eq!(p.snapshot().out_alias.member_for(61500), Some(MemberId(0)));
        // The same advert again: no second warning.
        let mut f = advert_frame_with("m2", 2, r("61500-62999"));
        let fx = p.on_frame(1, PuntReason::MemberAdvert, &mut f, 30);
        assert!(out_alias_events(&fx).is_empty(), "{:?}", fx.events);
        let mut f = advert_frame_with("m2", 3, r("62000-62999"));
        let fx = p.on_frame(1, PuntReason::MemberAdvert, &mut f, 40);
        assert_eq!(
            out_alias_events(&fx),
            vec!["member m2: out_alias range no longer refused"]
        );
        assert_eq!(p.snapshot().out_alias.member_for(62500), Some(MemberId(1)));
    }

    #[test]
    fn member_state_that_fails_to_apply_is_retried_until_it_does() {
        let mut p = plane();
        // Break the model so that validation fails whatever the adverts say: a join of a member
        // that does not exist (no input can do this; it stands for any failure of rebuilding).
        p.state.cluster.aliases[0].members.push(JoinSpec {
            member: "ghost".into(),
            selw: 1,
            selp: 1,
            joined: true,
        });
        let mut f = advert_frame("m1", 1);
        let fx = p.on_frame(1, PuntReason::MemberAdvert, &mut f, 10);
        assert!(fx.publish.is_none());
        assert!(
            matches!(&fx.events[..], [Event::MemberStateNotApplied { why }] if why.to_string().contains("ghost")),
            "{:?}",
            fx.events
        );
        assert!(!m1_up(&p));
        // Logged once, not every tick.
        assert!(p.on_tick(20).events.is_empty());
        // Repaired: the next retry applies what the adverts said.
        p.state.cluster.aliases[0].members.clear();
        assert!(p.on_tick(10 + MEMBER_RETRY_MS - 1).publish.is_none());
        let fx = p.on_tick(10 + MEMBER_RETRY_MS);
        assert!(fx.publish.is_some(), "{:?}", fx.events);
        assert!(fx.events.contains(&Event::MemberStateApplied));
        assert!(fx.events.contains(&Event::MemberUp {
            member: "m1".into()
        }));
        assert!(m1_up(&p));
        // And its dead interval (3 x 1000 ms after the advert) takes it down again.
        let fx = p.on_tick(10 + 3000);
        assert!(fx.events.contains(&Event::MemberDown {
            member: "m1".into()
        }));
        assert!(!m1_up(&p));
    }
}
