//! The immutable configuration a worker reads: ports, members, aliases, services.
//!
//! Built by the control plane (`clua-ctl`), swapped into workers between bursts. Invariants
//! established by [`Snapshot::build`] and relied on by the stages without re-checking:
//! - every `MemberId` in an alias refers to a member present in `members`;
//! - every member's `port` indexes `ports`;
//! - alias addresses are unique and `alias_by_addr` finds each one in O(1);
//! - every member's `listening` list, when reported, is sorted, free of duplicates and names only
//!   TCP (6) and UDP (17);
//! - each alias has a schedule per (proto, port) (CA7, CA8, CA9): the **eligible** members for
//!   a (proto, port) are the alias's members that are up and either have not reported their
//!   listens (`listening == None`: eligible for every port) or listen on it. The port's tier is
//!   the highest selp among them; its `multi_schedule` holds, in join order, the eligible
//!   members of that tier, each repeated `selw` times, and its `single_active` is the first of
//!   them. The alias stores this for every (proto, port) that some up member of it lists in
//!   [`Alias::port_schedules`] (sorted, found by binary search); every other port has the
//!   alias's default `multi_schedule` / `single_active`, computed the same way with only the
//!   members whose listening is not reported (nobody else listens there). With no member
//!   reporting listens this is the plain rule: the up members of the highest selp tier that
//!   has any up member;
//! - every schedule's round-robin cursor has an index below [`Snapshot::cursor_count`]: alias
//!   `i`'s default schedule uses cursor `i`, port schedules [`PortSchedule::cursor`].

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::encap::EncapTemplate;
use crate::hash::IntHashBuilder;
use crate::maglev::MaglevTable;

/// Index of a DPDK port (and of [`Snapshot::ports`]).
pub type PortId = u16;

/// A member's stable id. The control plane never reuses an id for a different member while
/// aliasd runs, so connection-table entries stay meaningful across snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u32);

/// Index of an alias in [`Snapshot::aliases`] (valid only within one snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AliasId(pub u32);

/// What a port faces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortRole {
    /// The client LAN (the common subnet on which aliases are proxy-ARPed).
    Client,
    /// An interconnect towards members.
    Interconnect,
}

/// A port as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Name from the configuration.
    pub name: String,
    /// What the port faces.
    pub role: PortRole,
    /// The port's MAC address (source of everything the router sends on it).
    pub mac: [u8; 6],
    /// The router's own address on the port, if it has one (required for ipip/vxlan egress).
    pub ipv4: Option<Ipv4Addr>,
    /// Prefix length of the port's subnet.
    pub prefix_len: u8,
    /// Largest IPv4 packet the port may carry (L3 MTU).
    pub mtu: u16,
    /// Outer source addresses for ipip/vxlan: `(network, prefix_len)`. The host bits are taken
    /// from the flow hash so that members' RSS spreads the tunnelled flows. `None` means always
    /// the port's own address.
    pub flow_source: Option<(Ipv4Addr, u8)>,
}

/// How packets reach a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    /// Rewrite the MACs and send the original IP packet (direct server return on a shared L2).
    L2,
    /// IPv4-in-IPv4, RFC 2003.
    Ipip,
    /// VXLAN, RFC 7348: the client's Ethernet frame, with the inner destination MAC rewritten to
    /// `inner_mac` (the member's VXLAN device), inside UDP to `udp_port`.
    Vxlan {
        /// VXLAN network identifier (24 bits).
        vni: u32,
        /// The MAC address of the member's VXLAN device.
        inner_mac: [u8; 6],
        /// Destination UDP port (4789 by default).
        udp_port: u16,
    },
}

/// A member as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Stable id.
    pub id: MemberId,
    /// Name from the configuration.
    pub name: String,
    /// The interconnect port the member is reached through.
    pub port: PortId,
    /// The member's (or next hop's) MAC on that port.
    pub mac: [u8; 6],
    /// The member's interconnect address (outer destination for ipip/vxlan).
    pub ipv4: Ipv4Addr,
    /// How packets are carried to it.
    pub encap: Encap,
    /// Whether the member is up (CA3: a down member gets no new traffic).
    pub up: bool,
    /// The (proto, port) pairs (proto 6 or 17) the member has an active listen on, as it
    /// reports them (CA7: new connections go only to members listening on the port). `None`:
    /// not reported, eligible for every port (statically configured members). `Some(&[])`
    /// listens nowhere: no new traffic. [`Snapshot::build`] sorts and deduplicates the list.
    /// Established flows keep their member when it stops listening (they drain).
    pub listening: Option<Box<[(u8, u16)]>>,
}

/// A member's attributes for one alias (CA8: attributes are per member and per alias).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AliasMember {
    /// The member.
    pub member: MemberId,
    /// Selection weight: connections per round-robin turn (>= 1).
    pub selw: u32,
    /// Selection priority: only the highest tier with an up member gets new traffic.
    pub selp: u32,
}

/// The schedule of one (proto, port) of an alias that some member reported listening on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSchedule {
    /// IP protocol: 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// The port.
    pub port: u16,
    /// The weighted round-robin schedule for the port when it is in_multi.
    pub multi_schedule: Box<[MemberId]>,
    /// The member that gets the port's traffic when it is in_single.
    pub single_active: Option<MemberId>,
    /// Index of the schedule's round-robin cursor (below [`Snapshot::cursor_count`]).
    pub cursor: u32,
    /// The weighted consistent hash over the same tier (selw as weights).
    pub maglev: Arc<MaglevTable>,
}

/// The schedule that applies to one packet: see [`Alias::schedule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleRef<'a> {
    /// Weighted round-robin schedule (in_multi).
    pub multi: &'a [MemberId],
    /// Active member (in_single).
    pub single_active: Option<MemberId>,
    /// Index of the round-robin cursor.
    pub cursor: usize,
    /// The weighted consistent hash over the same members (in_multi flows that must not go
    /// through the round robin: a non-SYN miss, a SYN with no table slot).
    pub maglev: &'a MaglevTable,
}

/// An alias as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// Name from the configuration.
    pub name: String,
    /// The alias address.
    pub addr: Ipv4Addr,
    /// Joined members with their attributes, in join order.
    pub members: Vec<AliasMember>,
    /// The default weighted round-robin schedule for in_multi ports: that of every port no
    /// member of the alias reported listening on (see the module invariants).
    pub multi_schedule: Box<[MemberId]>,
    /// The default member for in_single ports (same rule).
    pub single_active: Option<MemberId>,
    /// Schedules of the (proto, port) pairs that up members reported listening on, sorted by
    /// (proto, port). Empty when no member reports its listens.
    pub port_schedules: Box<[PortSchedule]>,
    /// Cursor index of the default schedule (the alias's index).
    cursor: u32,
    /// The default schedule's weighted consistent hash.
    pub maglev: Arc<MaglevTable>,
}

impl Alias {
    /// The schedule for new traffic to `(proto, port)`: the port's own if some member reported
    /// listening on it, else the alias's default. O(log n) in the alias's reported ports,
    /// O(1) when there are none; no allocation.
    #[inline]
    pub fn schedule(&self, proto: u8, port: u16) -> ScheduleRef<'_> {
        if !self.port_schedules.is_empty() {
            if let Ok(i) = self
                .port_schedules
                .binary_search_by_key(&(proto, port), |p| (p.proto, p.port))
            {
                let p = &self.port_schedules[i];
                return ScheduleRef {
                    multi: &p.multi_schedule,
                    single_active: p.single_active,
                    cursor: p.cursor as usize,
                    maglev: &p.maglev,
                };
            }
        }
        ScheduleRef {
            multi: &self.multi_schedule,
            single_active: self.single_active,
            cursor: self.cursor as usize,
            maglev: &self.maglev,
        }
    }
}

/// How an alias port's traffic is distributed (CA9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum ServiceMode {
    /// All traffic to one active member (the default for unlisted ports).
    #[default]
    InSingle = 0,
    /// New TCP connections and each UDP datagram by weighted round robin.
    InMulti = 1,
    /// Traffic to alias addresses refused.
    InNoalias = 2,
}

/// How an in_multi port picks the member of a new flow (SC1–SC3, seed 004; issue 9). Only
/// in_multi ports have one: [`Snapshot::service`] gives [`Policy::Wrr`] for every other port.
/// See `crate::select` for what each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[repr(u8)]
pub enum Policy {
    /// TruCluster's weighted round robin over the highest selp tier (CA7, CA8): `selw`
    /// consecutive connections per member and turn. The default.
    #[default]
    Wrr = 0,
    /// Sun Cluster's weighted policy (SC1) as weighted consistent hashing: the port schedule's
    /// Maglev table (selw as weights) of the flow under the fixed key, so every router and every
    /// restart computes the same member.
    Weighted = 1,
    /// Sun Cluster's ordinary sticky (SC2): a client address sticks to one member for the port.
    Sticky = 2,
    /// Sun Cluster's wildcard sticky (SC3): a client address sticks to one member for every port
    /// of the alias (passive FTP).
    WildcardSticky = 3,
}

impl Policy {
    /// The word in clua_services.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::Wrr => "wrr",
            Policy::Weighted => "weighted",
            Policy::Sticky => "sticky",
            Policy::WildcardSticky => "wildcard_sticky",
        }
    }

    /// Whether the policy keeps client affinities (sticky or wildcard_sticky).
    #[inline(always)]
    pub const fn is_sticky(self) -> bool {
        matches!(self, Policy::Sticky | Policy::WildcardSticky)
    }
}

/// One port's entry in the snapshot's per-protocol service tables (3 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Service {
    mode: ServiceMode,
    policy: Policy,
    /// out_alias (CA9): replies from this port to a member's out_alias range are steered to
    /// that member ([`crate::out_alias`]).
    out_alias: bool,
}

/// A policy for [`Snapshot::with_policies`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServicePolicy {
    /// IP protocol: 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// The port.
    pub port: u16,
    /// Its policy (applies only if the port is in_multi).
    pub policy: Policy,
}

/// A service entry for [`Snapshot::build`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// IP protocol: 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// The port.
    pub port: u16,
    /// Its distribution mode.
    pub mode: ServiceMode,
}

/// Why a snapshot could not be built. The control plane validates configuration first, so
/// these are internal-consistency errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotError {
    /// A member's port index is out of range.
    MemberPort { member: String, port: PortId },
    /// Two members share an id, or an id is out of range.
    MemberId { member: String },
    /// An alias names a member id that does not exist.
    AliasMember { alias: String, member: MemberId },
    /// Two aliases share an address.
    DuplicateAlias { addr: Ipv4Addr },
    /// A selection weight of zero.
    ZeroSelw { alias: String, member: MemberId },
    /// A service with a protocol other than TCP or UDP.
    ServiceProto { proto: u8 },
    /// A member reports listening on a protocol other than TCP or UDP.
    ListeningProto { member: String, proto: u8 },
    /// Two members' out_alias ranges overlap (CA9; the control plane refuses the later one
    /// before it gets here).
    OutAliasOverlap(crate::out_alias::OverlapError),
}

impl core::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SnapshotError::MemberPort { member, port } => {
                write!(f, "member {member}: port index {port} does not exist")
            }
            SnapshotError::MemberId { member } => write!(f, "member {member}: id reused"),
            SnapshotError::AliasMember { alias, member } => {
                write!(f, "alias {alias}: member id {} does not exist", member.0)
            }
            SnapshotError::DuplicateAlias { addr } => write!(f, "alias address {addr} given twice"),
            SnapshotError::ZeroSelw { alias, member } => {
                write!(f, "alias {alias}: member id {} has selw=0", member.0)
            }
            SnapshotError::ServiceProto { proto } => {
                write!(f, "service protocol {proto} is neither TCP nor UDP")
            }
            SnapshotError::ListeningProto { member, proto } => {
                write!(
                    f,
                    "member {member}: listening protocol {proto} is neither TCP nor UDP"
                )
            }
            SnapshotError::OutAliasOverlap(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// The MAC of RIPv2's multicast group 224.0.0.9 (RFC 1112 §6.4 mapping).
pub const RIP_MULTICAST_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x09];
/// RIP's UDP port (RFC 2453).
pub const RIP_PORT: u16 = 520;
/// BFD's single-hop control UDP port (RFC 5881).
pub const BFD_PORT: u16 = 3784;

/// The TCP source ports of the router's health probes of static members (issue 10,
/// ctl::members::health): TCP to a router address on an interconnect port, to one of these
/// ports, is a probe's answer and punted
/// ([`PuntReason::Probe`](crate::PuntReason::Probe)). Fixed rather than in the snapshot: the
/// router's interconnect address has no other TCP, and the per-reason punt queue bounds what
/// a sender can make the control thread look at.
pub const PROBE_PORTS: core::ops::Range<u16> = 9480..9544;

/// Which control protocols the router speaks, so classify knows what to punt (issue 8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlPorts {
    /// The router protocol's UDP port on the interconnect (docs/router-protocol.md); 0: the
    /// router is alone.
    pub router: u16,
    /// RIPv2 (UDP 520) on client ports, including broadcast and 224.0.0.9.
    pub rip: bool,
    /// Single-hop BFD (UDP 3784) on client ports, to the router's own address.
    pub bfd: bool,
    /// The flow hand-off protocol's UDP port on the interconnect (issue 9,
    /// docs/sync-protocol.md); 0: flows are not handed to peers.
    pub sync: u16,
}

/// Everything a worker needs to process packets. Immutable once built.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every snapshot the control plane publishes.
    pub generation: u64,
    /// Ports, indexed by `PortId`.
    pub ports: Vec<PortInfo>,
    /// Members, indexed by `MemberId.0`; `None` for ids not (or no longer) in use.
    pub members: Vec<Option<Member>>,
    /// Aliases, indexed by `AliasId.0`.
    pub aliases: Vec<Alias>,
    /// The UDP port members send their adverts to (issue 4), on one of the router's own
    /// addresses; such datagrams from an interconnect port are punted
    /// ([`PuntReason::MemberAdvert`](crate::PuntReason::MemberAdvert)). 0 (what
    /// [`Snapshot::build`] sets): no adverts are expected. See [`Snapshot::with_advert_port`].
    pub advert_port: u16,
    /// The control protocols whose datagrams classify punts (issue 8). All off by default.
    pub control: ControlPorts,
    /// Extra unicast MACs a port receives for (the vMACs of the aliases this router is the
    /// proxy-ARP master of, CA5): `(port, mac)`, few. Frames to another router's vMAC are not
    /// ours (`WrongPort`), so a frame flooded by a switch before it learnt the vMAC's port is
    /// forwarded by the master alone.
    pub vmacs: Box<[(PortId, [u8; 6])]>,
    alias_by_addr: HashMap<u32, AliasId, IntHashBuilder>,
    tcp_services: Box<[Service]>,
    udp_services: Box<[Service]>,
    cursor_count: usize,
    /// Whether some in_multi port is wildcard_sticky: only then does a new flow to an alias
    /// look for its client's wildcard affinity (everyone else pays nothing).
    wildcard_sticky: bool,
    /// The members' out_alias source-port ranges on the default alias (CA9, see
    /// [`crate::out_alias`]); empty unless [`Snapshot::with_out_alias`] set it.
    pub out_alias: crate::out_alias::OutAliasTable,
    /// Each member's precomputed headers, indexed like `members` (absent ids:
    /// [`EncapTemplate::NO_MEMBER`]): encap reads these, not the members and ports.
    encap_templates: Box<[EncapTemplate]>,
}

/// A tier's members with their selw, sorted by id: a Maglev table's input.
type WeightedTier = Vec<(MemberId, u32)>;

/// Maglev tables of one snapshot, shared by every schedule over the same weighted members (many
/// aliases usually have the same members: one table, not one per alias and port).
#[derive(Default)]
struct MaglevCache(HashMap<WeightedTier, Arc<MaglevTable>>);

impl MaglevCache {
    /// The table over `tier`. Small tiers get a small table (4,099 entries: 16 KiB, still
    /// ≥ 128 entries per member up to 32 members, so shares stay within about 1 % of the
    /// weights), larger ones the default 65,537. A tier the table cannot hold (more members
    /// than entries) gets an empty table: its lookups fall back to the round robin.
    fn get(&mut self, tier: WeightedTier) -> Arc<MaglevTable> {
        if let Some(t) = self.0.get(&tier) {
            return t.clone();
        }
        let size = if tier.len() <= 32 {
            4099
        } else {
            MaglevTable::DEFAULT_SIZE
        };
        let t = Arc::new(
            MaglevTable::build(&tier, size)
                .or_else(|_| MaglevTable::build(&[], size))
                .unwrap_or_else(|_| MaglevTable::empty()),
        );
        self.0.insert(tier, t.clone());
        t
    }
}

/// The weighted round-robin schedule and the in_single member over the members of `ams` that
/// `eligible` accepts: the highest selp tier among them, join order, `selw` repeats; and the
/// tier with its weights, for its Maglev table.
fn tier_schedule(
    ams: &[AliasMember],
    eligible: impl Fn(MemberId) -> bool,
) -> (Box<[MemberId]>, Option<MemberId>, WeightedTier) {
    let Some(top) = ams
        .iter()
        .filter(|am| eligible(am.member))
        .map(|am| am.selp)
        .max()
    else {
        return (Box::new([]), None, Vec::new());
    };
    let eligible = &eligible;
    let tier = || {
        ams.iter()
            .filter(move |am| am.selp == top && eligible(am.member))
    };
    let schedule = tier()
        .flat_map(|am| std::iter::repeat_n(am.member, am.selw as usize))
        .collect();
    let mut weighted: Vec<(MemberId, u32)> = tier().map(|am| (am.member, am.selw)).collect();
    weighted.sort_unstable();
    (schedule, tier().next().map(|am| am.member), weighted)
}

impl Snapshot {
    /// Builds a snapshot, computing each alias's schedule and the O(1) indexes.
    /// `members[i]`, when `Some`, must have id `MemberId(i)`.
    pub fn build(
        generation: u64,
        ports: Vec<PortInfo>,
        mut members: Vec<Option<Member>>,
        aliases: Vec<(String, Ipv4Addr, Vec<AliasMember>)>,
        services: &[ServiceSpec],
    ) -> Result<Snapshot, SnapshotError> {
        for (i, m) in members.iter_mut().enumerate() {
            if let Some(m) = m {
                if let Some(list) = &mut m.listening {
                    if let Some(&(proto, _)) = list.iter().find(|(p, _)| *p != 6 && *p != 17) {
                        return Err(SnapshotError::ListeningProto {
                            member: m.name.clone(),
                            proto,
                        });
                    }
                    list.sort_unstable();
                    if list.windows(2).any(|w| w[0] == w[1]) {
                        let mut v = list.to_vec();
                        v.dedup();
                        *list = v.into_boxed_slice();
                    }
                }
                if m.id.0 as usize != i {
                    return Err(SnapshotError::MemberId {
                        member: m.name.clone(),
                    });
                }
                if m.port as usize >= ports.len() {
                    return Err(SnapshotError::MemberPort {
                        member: m.name.clone(),
                        port: m.port,
                    });
                }
            }
        }
        let mut alias_by_addr =
            HashMap::with_capacity_and_hasher(aliases.len(), Default::default());
        let mut built = Vec::with_capacity(aliases.len());
        let mut tables = MaglevCache::default();
        for (idx, (name, addr, alias_members)) in aliases.into_iter().enumerate() {
            for am in &alias_members {
                if !matches!(members.get(am.member.0 as usize), Some(Some(_))) {
                    return Err(SnapshotError::AliasMember {
                        alias: name,
                        member: am.member,
                    });
                }
                if am.selw == 0 {
                    return Err(SnapshotError::ZeroSelw {
                        alias: name,
                        member: am.member,
                    });
                }
            }
            if alias_by_addr
                .insert(u32::from(addr), AliasId(idx as u32))
                .is_some()
            {
                return Err(SnapshotError::DuplicateAlias { addr });
            }
            // Checked above: every alias member exists.
            let up = |id: MemberId| members[id.0 as usize].as_ref().filter(|m| m.up);
            let (multi_schedule, single_active, tier) = tier_schedule(&alias_members, |id| {
                up(id).is_some_and(|m| m.listening.is_none())
            });
            let maglev = tables.get(tier);
            // Every (proto, port) an up member of the alias reports listening on.
            let mut listed: Vec<(u8, u16)> = alias_members
                .iter()
                .filter_map(|am| up(am.member)?.listening.as_deref())
                .flatten()
                .copied()
                .collect();
            listed.sort_unstable();
            listed.dedup();
            let port_schedules = listed
                .into_iter()
                .map(|(proto, port)| {
                    let (multi_schedule, single_active, tier) =
                        tier_schedule(&alias_members, |id| {
                            up(id).is_some_and(|m| {
                                m.listening
                                    .as_deref()
                                    .is_none_or(|l| l.binary_search(&(proto, port)).is_ok())
                            })
                        });
                    PortSchedule {
                        proto,
                        port,
                        multi_schedule,
                        single_active,
                        cursor: 0,
                        maglev: tables.get(tier),
                    }
                })
                .collect();
            built.push(Alias {
                name,
                addr,
                members: alias_members,
                multi_schedule,
                single_active,
                port_schedules,
                cursor: idx as u32,
                maglev,
            });
        }
        // Port-schedule cursors follow the aliases' default ones, in alias and port order.
        let mut cursor_count = built.len();
        for a in &mut built {
            for p in a.port_schedules.iter_mut() {
                p.cursor = cursor_count as u32;
                cursor_count += 1;
            }
        }
        let mut tcp_services = vec![Service::default(); 65536].into_boxed_slice();
        let mut udp_services = vec![Service::default(); 65536].into_boxed_slice();
        for s in services {
            match s.proto {
                6 => tcp_services[s.port as usize].mode = s.mode,
                17 => udp_services[s.port as usize].mode = s.mode,
                proto => return Err(SnapshotError::ServiceProto { proto }),
            }
        }
        let encap_templates = members
            .iter()
            .map(|m| match m {
                Some(m) => EncapTemplate::new(m, ports.get(m.port as usize)),
                None => EncapTemplate::NO_MEMBER,
            })
            .collect();
        Ok(Snapshot {
            encap_templates,
            generation,
            ports,
            members,
            aliases: built,
            advert_port: 0,
            control: ControlPorts::default(),
            vmacs: Box::new([]),
            alias_by_addr,
            tcp_services,
            udp_services,
            cursor_count,
            wildcard_sticky: false,
            out_alias: Default::default(),
        })
    }

    /// The snapshot with out_alias set (CA9, [`crate::out_alias`]): `ports` are the (proto,
    /// port) pairs flagged out_alias in clua_services, `table` the members' ranges on the
    /// default alias.
    ///
    /// # Errors
    /// [`SnapshotError::ServiceProto`] for a protocol other than TCP or UDP.
    pub fn with_out_alias(
        mut self,
        ports: &[(u8, u16)],
        table: crate::out_alias::OutAliasTable,
    ) -> Result<Snapshot, SnapshotError> {
        for &(proto, port) in ports {
            match proto {
                6 => self.tcp_services[port as usize].out_alias = true,
                17 => self.udp_services[port as usize].out_alias = true,
                proto => return Err(SnapshotError::ServiceProto { proto }),
            }
        }
        self.out_alias = table;
        Ok(self)
    }

    /// Whether a TCP (6) or UDP (17) port is flagged out_alias (CA9).
    #[inline]
    pub fn is_out_alias(&self, proto: u8, port: u16) -> bool {
        match proto {
            6 => self.tcp_services[port as usize].out_alias,
            17 => self.udp_services[port as usize].out_alias,
            _ => false,
        }
    }

    /// The snapshot with the load-balancing policies of in_multi ports set (issue 9; every
    /// port not given is [`Policy::Wrr`]). A policy given for a port that is not in_multi is
    /// ignored: the control plane refuses such a configuration before it gets here.
    ///
    /// # Errors
    /// [`SnapshotError::ServiceProto`] for a protocol other than TCP or UDP.
    pub fn with_policies(mut self, policies: &[ServicePolicy]) -> Result<Snapshot, SnapshotError> {
        for p in policies {
            let table = match p.proto {
                6 => &mut self.tcp_services,
                17 => &mut self.udp_services,
                proto => return Err(SnapshotError::ServiceProto { proto }),
            };
            let s = &mut table[p.port as usize];
            if s.mode == ServiceMode::InMulti {
                s.policy = p.policy;
            }
        }
        self.wildcard_sticky = self
            .tcp_services
            .iter()
            .chain(self.udp_services.iter())
            .any(|s| s.policy == Policy::WildcardSticky);
        Ok(self)
    }

    /// The snapshot with [`advert_port`](Self::advert_port) set (0: none).
    pub fn with_advert_port(mut self, port: u16) -> Snapshot {
        self.advert_port = port;
        self
    }

    /// The snapshot with the control protocols' ports set (see [`ControlPorts`]).
    pub fn with_control(mut self, control: ControlPorts) -> Snapshot {
        self.control = control;
        self
    }

    /// The snapshot with the vMACs its ports receive for (see [`Snapshot::vmacs`]).
    pub fn with_vmacs(mut self, vmacs: Vec<(PortId, [u8; 6])>) -> Snapshot {
        self.vmacs = vmacs.into_boxed_slice();
        self
    }

    /// Whether `port` receives frames sent to `mac` besides its own MAC and broadcast: one of
    /// its vMACs, or RIP's multicast group 224.0.0.9 (01:00:5e:00:00:09) when RIP runs.
    #[inline]
    pub fn accepts_mac(&self, port: PortId, mac: &[u8; 6]) -> bool {
        (self.control.rip && *mac == RIP_MULTICAST_MAC)
            || self.vmacs.iter().any(|(p, m)| *p == port && m == mac)
    }

    /// Number of round-robin cursors the schedules of this snapshot use (see the module
    /// invariants); a selector keeps that many per core.
    #[inline]
    pub fn cursor_count(&self) -> usize {
        self.cursor_count
    }

    /// The alias with this address (host-order IPv4), in O(1).
    #[inline]
    pub fn alias_by_addr(&self, addr: u32) -> Option<AliasId> {
        self.alias_by_addr.get(&addr).copied()
    }

    /// The alias with this id.
    #[inline]
    pub fn alias(&self, id: AliasId) -> &Alias {
        &self.aliases[id.0 as usize]
    }

    /// The member with this id, if it exists in this snapshot.
    #[inline]
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.members.get(id.0 as usize).and_then(Option::as_ref)
    }

    /// The encapsulation template of the member with this id (issue 12), built with the
    /// snapshot from the member and its port; [`EncapTemplate::NO_MEMBER`] for an id not in
    /// this snapshot.
    #[inline]
    pub fn encap_template(&self, id: MemberId) -> &EncapTemplate {
        self.encap_templates
            .get(id.0 as usize)
            .unwrap_or(&EncapTemplate::NO_MEMBER)
    }

    /// The service mode of a TCP (6) or UDP (17) port; in_single for anything unlisted.
    #[inline]
    pub fn service_mode(&self, proto: u8, port: u16) -> ServiceMode {
        self.service(proto, port).0
    }

    /// The service mode and load-balancing policy of a TCP (6) or UDP (17) port: in_single
    /// and [`Policy::Wrr`] for anything unlisted; the policy is `Wrr` unless the mode is
    /// in_multi. One load.
    #[inline]
    pub fn service(&self, proto: u8, port: u16) -> (ServiceMode, Policy) {
        let s = match proto {
            6 => self.tcp_services[port as usize],
            17 => self.udp_services[port as usize],
            _ => Service::default(),
        };
        (s.mode, s.policy)
    }

    /// Whether some in_multi port is wildcard_sticky (SC3): then every new flow to any port of
    /// an alias (but in_noalias ones) first looks for its client's wildcard affinity.
    #[inline]
    pub fn wildcard_sticky(&self) -> bool {
        self.wildcard_sticky
    }

    /// Whether `addr` (host order) is one of the router's own port addresses.
    pub fn is_router_addr(&self, addr: u32) -> bool {
        self.ports
            .iter()
            .any(|p| p.ipv4.map(u32::from) == Some(addr))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn port(name: &str, role: PortRole, mac_last: u8, ip: Option<[u8; 4]>) -> PortInfo {
        PortInfo {
            name: name.into(),
            role,
            mac: [0x02, 0, 0, 0, 0, mac_last],
            ipv4: ip.map(Ipv4Addr::from),
            prefix_len: 24,
            mtu: 1500,
            flow_source: None,
        }
    }

    pub(crate) fn member(id: u32, up: bool) -> Option<Member> {
        Some(Member {
            id: MemberId(id),
            name: format!("m{id}"),
            port: 1,
            mac: [0x02, 0, 0, 0, 1, id as u8],
            ipv4: Ipv4Addr::new(192, 0, 2, 10 + id as u8),
            encap: Encap::L2,
            up,
            listening: None,
        })
    }

    fn am(id: u32, selw: u32, selp: u32) -> AliasMember {
        AliasMember {
            member: MemberId(id),
            selw,
            selp,
        }
    }

    fn build(members: Vec<Option<Member>>, ams: Vec<AliasMember>) -> Snapshot {
        let ports = vec![
            port("client", PortRole::Client, 1, Some([198, 51, 100, 2])),
            port("ic0", PortRole::Interconnect, 2, Some([192, 0, 2, 2])),
        ];
        Snapshot::build(
            1,
            ports,
            members,
            vec![("web".into(), Ipv4Addr::new(198, 51, 100, 100), ams)],
            &[],
        )
        .unwrap()
    }

    #[test]
    fn schedule_repeats_each_member_selw_times_in_join_order() {
        // CA8: selw = connections per turn.
        let s = build(
            vec![member(0, true), member(1, true), member(2, true)],
            vec![am(0, 3, 1), am(1, 2, 1), am(2, 1, 1)],
        );
        let ids: Vec<u32> = s.aliases[0].multi_schedule.iter().map(|m| m.0).collect();
        assert_eq!(ids, vec![0, 0, 0, 1, 1, 2]);
        assert_eq!(s.aliases[0].single_active, Some(MemberId(0)));
    }

    #[test]
    fn only_highest_selp_tier_with_an_up_member_is_scheduled() {
        // CA8, seed 000 §6.8: two members selp=10, one selp=5.
        let ams = vec![am(0, 1, 10), am(1, 1, 10), am(2, 1, 5)];
        let s = build(
            vec![member(0, true), member(1, true), member(2, true)],
            ams.clone(),
        );
        let ids: Vec<u32> = s.aliases[0].multi_schedule.iter().map(|m| m.0).collect();
        assert_eq!(ids, vec![0, 1]);
        let s = build(
            vec![member(0, false), member(1, true), member(2, true)],
            ams.clone(),
        );
        let ids: Vec<u32> = s.aliases[0].multi_schedule.iter().map(|m| m.0).collect();
        assert_eq!(ids, vec![1]);
        assert_eq!(s.aliases[0].single_active, Some(MemberId(1)));
        let s = build(
            vec![member(0, false), member(1, false), member(2, true)],
            ams.clone(),
        );
        let ids: Vec<u32> = s.aliases[0].multi_schedule.iter().map(|m| m.0).collect();
        assert_eq!(ids, vec![2]);
        let s = build(
            vec![member(0, false), member(1, false), member(2, false)],
            ams,
        );
        assert!(s.aliases[0].multi_schedule.is_empty());
        assert_eq!(s.aliases[0].single_active, None);
    }

    fn listening(id: u32, up: bool, ports: &[(u8, u16)]) -> Option<Member> {
        let mut m = member(id, up);
        m.as_mut().unwrap().listening = Some(ports.into());
        m
    }

    fn ids(s: ScheduleRef<'_>) -> (Vec<u32>, Option<u32>) {
        (
            s.multi.iter().map(|m| m.0).collect(),
            s.single_active.map(|m| m.0),
        )
    }

    #[test]
    fn schedules_are_per_port_over_the_members_listening_on_it() {
        // CA7 + CA8: m0 (selp 10) listens on tcp/80 only; m1, m2 (selp 5) do not report;
        // m3 (selp 5) listens on tcp/8080 only.
        let s = build(
            vec![
                listening(0, true, &[(6, 80)]),
                member(1, true),
                member(2, true),
                listening(3, true, &[(6, 8080)]),
            ],
            vec![am(0, 1, 10), am(1, 2, 5), am(2, 1, 5), am(3, 1, 5)],
        );
        let a = &s.aliases[0];
        // tcp/80: m0 is eligible and alone in the top tier.
        assert_eq!(ids(a.schedule(6, 80)), (vec![0], Some(0)));
        // tcp/8080: the only selp=10 member does not listen there -> the selp=5 tier, in join
        // order, with m3 that does.
        assert_eq!(ids(a.schedule(6, 8080)), (vec![1, 1, 2, 3], Some(1)));
        // Anything else (udp/80 included): only the members that report nothing.
        for (proto, port) in [(17, 80), (6, 22), (17, 8080)] {
            assert_eq!(ids(a.schedule(proto, port)), (vec![1, 1, 2], Some(1)));
        }
        assert_eq!(
            (a.multi_schedule.len(), a.single_active),
            (3, Some(MemberId(1)))
        );
        let keys: Vec<(u8, u16)> = a.port_schedules.iter().map(|p| (p.proto, p.port)).collect();
        assert_eq!(keys, vec![(6, 80), (6, 8080)]);
        // Cursors: the alias's default one, then one per port schedule.
        assert_eq!(s.cursor_count(), 3);
        let cursors: Vec<usize> = [(6, 80), (6, 8080), (6, 1)]
            .iter()
            .map(|&(p, q)| a.schedule(p, q).cursor)
            .collect();
        assert_eq!(cursors, vec![1, 2, 0]);
    }

    #[test]
    fn listening_members_that_are_down_or_listen_nowhere_get_nothing() {
        let ams = vec![am(0, 1, 10), am(1, 1, 5), am(2, 1, 5)];
        // m0 down: its list adds no port schedule; m2 listens nowhere.
        let s = build(
            vec![
                listening(0, false, &[(6, 80)]),
                member(1, true),
                listening(2, true, &[]),
            ],
            ams.clone(),
        );
        let a = &s.aliases[0];
        assert!(a.port_schedules.is_empty());
        assert_eq!(s.cursor_count(), 1);
        assert_eq!(ids(a.schedule(6, 80)), (vec![1], Some(1)));
        // Every member reports, none listens on tcp/22: no member for it.
        let s = build(
            vec![
                listening(0, true, &[(6, 80)]),
                listening(1, true, &[(6, 80), (17, 53)]),
                listening(2, true, &[]),
            ],
            ams,
        );
        let a = &s.aliases[0];
        assert_eq!(ids(a.schedule(6, 22)), (vec![], None));
        assert_eq!(ids(a.schedule(6, 80)), (vec![0], Some(0)));
        assert_eq!(ids(a.schedule(17, 53)), (vec![1], Some(1)));
    }

    #[test]
    fn listening_lists_are_normalised_and_checked() {
        let s = build(
            vec![listening(0, true, &[(17, 53), (6, 80), (17, 53), (6, 22)])],
            vec![am(0, 1, 1)],
        );
        let l = s.members[0].as_ref().unwrap().listening.as_deref().unwrap();
        assert_eq!(l, &[(6, 22), (6, 80), (17, 53)]);
        assert_eq!(s.aliases[0].port_schedules.len(), 3);
        let ports = vec![port("client", PortRole::Client, 1, None)];
        assert_eq!(
            Snapshot::build(1, ports, vec![listening(0, true, &[(1, 0)])], vec![], &[])
                .unwrap_err(),
            SnapshotError::ListeningProto {
                member: "m0".into(),
                proto: 1
            }
        );
    }

    #[test]
    fn lookups_and_service_defaults() {
        let ports = vec![port("client", PortRole::Client, 1, Some([198, 51, 100, 2]))];
        let s = Snapshot::build(
            7,
            ports,
            vec![],
            vec![
                ("a".into(), Ipv4Addr::new(198, 51, 100, 100), vec![]),
                ("b".into(), Ipv4Addr::new(203, 0, 113, 5), vec![]),
            ],
            &[ServiceSpec {
                proto: 17,
                port: 53,
                mode: ServiceMode::InMulti,
            }],
        )
        .unwrap();
        assert_eq!(
            s.alias_by_addr(u32::from(Ipv4Addr::new(203, 0, 113, 5))),
            Some(AliasId(1))
        );
        assert_eq!(
            s.alias_by_addr(u32::from(Ipv4Addr::new(203, 0, 113, 6))),
            None
        );
        assert_eq!(s.service_mode(17, 53), ServiceMode::InMulti);
        assert_eq!(s.service_mode(6, 53), ServiceMode::InSingle);
        assert!(s.is_router_addr(u32::from(Ipv4Addr::new(198, 51, 100, 2))));
    }

    #[test]
    fn inconsistent_input_is_rejected() {
        let ports = vec![port("client", PortRole::Client, 1, None)];
        let a = |ms| vec![("a".to_string(), Ipv4Addr::new(198, 51, 100, 100), ms)];
        assert!(matches!(
            Snapshot::build(1, ports.clone(), vec![], a(vec![am(3, 1, 1)]), &[]),
            Err(SnapshotError::AliasMember { .. })
        ));
        let mut m = member(0, true);
        m.as_mut().unwrap().port = 5;
        assert!(matches!(
            Snapshot::build(1, ports.clone(), vec![m], vec![], &[]),
            Err(SnapshotError::MemberPort { .. })
        ));
        let two = vec![
            ("a".to_string(), Ipv4Addr::new(198, 51, 100, 100), vec![]),
            ("b".to_string(), Ipv4Addr::new(198, 51, 100, 100), vec![]),
        ];
        assert!(matches!(
            Snapshot::build(1, ports, vec![], two, &[]),
            Err(SnapshotError::DuplicateAlias { .. })
        ));
    }
}
