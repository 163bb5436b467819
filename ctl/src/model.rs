//! The cluster model: what the control plane knows about ports, members, aliases and services,
//! its validation, and the snapshots it builds for the workers ("control computes, data plane
//! reads").
//!
//! Invariants of a [`Cluster`] that passed [`Cluster::validate`]:
//! - port, member and alias names are unique; alias addresses are unique;
//! - every alias address is a usable unicast address (CA1): not 0.0.0.0, loopback, multicast,
//!   class E, limited broadcast, nor the network or broadcast address of a port's subnet, nor in
//!   an interconnect subnet, nor a router address;
//! - every member is reached through an interconnect port; every joined member exists once;
//! - a member without a configured MAC has its address on its port's subnet (or the port has
//!   no address), so that ARP on the port can resolve it;
//! - at most `max_aliases` aliases (default 8, at most 102,400), and the default alias exists;
//! - service (port, protocol) pairs are unique and their options obey CA9's exclusions.
//!
//! Member ids are positions in `members`: members are never removed while aliasd runs (a later
//! "gone" state keeps the slot), so connection-table entries never point at a reused id.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use clua_pipeline::snapshot::{
    AliasMember, Encap, Member, MemberId, Policy, PortInfo, PortRole, ServiceMode, ServicePolicy,
    ServiceSpec as PipelineService, Snapshot, SnapshotError,
};

/// CA1: the largest number of aliases a cluster may be configured for.
pub const MAX_ALIASES_LIMIT: usize = 102_400;
/// CA1: the default number of aliases.
pub const DEFAULT_MAX_ALIASES: usize = 8;
/// Allowed selection weights (connections per round-robin turn).
pub const SELW_RANGE: core::ops::RangeInclusive<u32> = 1..=100;
/// Allowed selection priorities.
pub const SELP_RANGE: core::ops::RangeInclusive<u32> = 0..=100_000;
/// Allowed port MTUs.
pub const MTU_RANGE: core::ops::RangeInclusive<u16> = 576..=9000;

/// A MAC address.
pub type Mac = [u8; 6];

/// An IPv4 prefix `address/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    /// The address as written (may have host bits set: a router's own address on the subnet).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Prefix {
    /// The subnet mask.
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len as u32)
        }
    }
    /// The network address.
    pub fn network(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }
    /// The subnet's broadcast address.
    pub fn broadcast(&self) -> u32 {
        self.network() | !self.mask()
    }
    /// Whether `a` lies in the subnet.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == self.network()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Why a string is not `ADDRESS/LENGTH`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// No `/`.
    #[error("`{0}` is not ADDRESS/LENGTH")]
    NoSlash(String),
    /// The part before `/`.
    #[error("`{0}` is not an IPv4 address")]
    Address(String),
    /// The part after `/`.
    #[error("`{0}` is not a prefix length 0..=32")]
    Length(String),
}

impl std::str::FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| PrefixError::NoSlash(s.into()))?;
        let addr: Ipv4Addr = a.parse().map_err(|_| PrefixError::Address(a.into()))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| PrefixError::Length(l.into()))?;
        Ok(Prefix { addr, len })
    }
}

/// A string that is not six colon-separated hex bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a MAC address (six hex bytes)")]
pub struct MacError(pub String);

/// Parses `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Result<Mac, MacError> {
    let bad = || MacError(s.into());
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Formats a MAC address.
pub fn fmt_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// A DPDK port of the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// Unique name.
    pub name: String,
    /// What it faces.
    pub role: PortRole,
    /// The router's own address and subnet on it.
    pub address: Option<Prefix>,
    /// L3 MTU.
    pub mtu: u16,
    /// Expected MAC (checked against the PMD at start-up).
    pub mac: Option<Mac>,
    /// Outer source prefix for tunnels (see `PortInfo::flow_source`).
    pub flow_source: Option<Prefix>,
}

/// A member as configured on the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    /// Unique name.
    pub name: String,
    /// The interconnect port it is reached through (by name).
    pub port: String,
    /// Its interconnect address.
    pub address: Ipv4Addr,
    /// The MAC frames to it are sent to on that port (for ipip/vxlan the outer destination):
    /// configured, or learned by ARP on the port (`crate::neighbors`).
    pub mac: MemberMac,
    /// How packets are carried to it.
    pub encap: Encap,
    /// Whether it is up (CA3). Until members send adverts, configured members are up.
    pub up: bool,
    /// Whether the member runs the member agent: its state (up, joins, listening ports) then
    /// comes from its authenticated adverts (issue 4), and it is down until the first one.
    pub agent: bool,
    /// The ports it reported listening on (agent members); `None`: eligible for every port.
    pub listening: Option<Vec<(Proto, u16)>>,
    /// Its out_alias source-port range (CA9, [`crate::out_alias`]): configured for a static
    /// member, from its adverts for an agent member.
    pub out_alias: Option<clua_pipeline::out_alias::PortRange>,
}

/// Where a member's MAC comes from and what is known of it.
///
/// A configured MAC is used as is and never replaced by ARP (an operator who writes one means
/// it: a next hop, a static entry on a LAN without ARP). Without one, the router resolves the
/// member's address by ARP on the member's port (`crate::neighbors` keeps this field up to
/// date); a member whose MAC is not [usable](MemberMac::usable) gets no new flows, as if it
/// were down (CA3), and shows so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberMac {
    /// `mac` in the configuration.
    Configured(Mac),
    /// No `mac` configured and no ARP answer yet.
    Unresolved,
    /// Learned by ARP and answering.
    Learned(Mac),
    /// Learned once, but the member stopped answering ARP: no new flows until it answers
    /// again; established flows still go to this last MAC (a MAC change is learned from any
    /// ARP packet of the member, so the last one heard is the best guess).
    Expired(Mac),
}

impl MemberMac {
    /// The configured MAC, if any.
    pub fn configured(&self) -> Option<Mac> {
        match *self {
            MemberMac::Configured(m) => Some(m),
            _ => None,
        }
    }

    /// The MAC frames go to, if one is known (configured, learned, or the last one learned).
    pub fn current(&self) -> Option<Mac> {
        match *self {
            MemberMac::Configured(m) | MemberMac::Learned(m) | MemberMac::Expired(m) => Some(m),
            MemberMac::Unresolved => None,
        }
    }

    /// Whether new flows may go to the member as far as its MAC is concerned.
    pub fn usable(&self) -> bool {
        matches!(self, MemberMac::Configured(_) | MemberMac::Learned(_))
    }

    /// Where the MAC comes from and its ARP state, in words (`cluamgr -s`).
    pub fn source(&self) -> &'static str {
        match self {
            MemberMac::Configured(_) => "configured",
            MemberMac::Unresolved => "arp:resolving",
            MemberMac::Learned(_) => "arp:learned",
            MemberMac::Expired(_) => "arp:expired",
        }
    }
}

/// A member's join of an alias with its attributes (CA8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinSpec {
    /// Member name.
    pub member: String,
    /// Selection weight.
    pub selw: u32,
    /// Selection priority.
    pub selp: u32,
    /// Whether the member is joined now. A member that leaves keeps its entry with its
    /// attributes and its place in the join order, joined false: cluamgr(8) says an option not
    /// given leaves the value unchanged, so a later `join` restores them (CA8). Such an entry
    /// gets no new flows; its established connections drain (they are in the workers'
    /// connection tables by member id).
    pub joined: bool,
}

/// An alias.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasSpec {
    /// Unique name.
    pub name: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// Members that joined it, in join order, and those that left it (`joined` false, their
    /// attributes and place kept).
    pub members: Vec<JoinSpec>,
    /// This router's priority for being the alias's proxy-ARP master (CA4, CA8). Stored; the
    /// election among several routers comes with the router protocol.
    pub rpri: u32,
    /// Whether the alias is on a virtual subnet (advertised by a network route, never
    /// proxy-ARPed; seed 000 Table 6-1): RIP advertises its network route (`crate::rip`).
    pub virtual_subnet: bool,
    /// The alias's subnet mask (cluamgr `mask=`), if given.
    pub mask: Option<Ipv4Addr>,
    /// Whether the alias has a virtual MAC (CA5, [`vmac`]): ARP replies and gratuitous ARP
    /// carry it, and it follows the proxy-ARP master, so clients' ARP entries never change.
    pub vmac: bool,
}

/// The virtual MAC of alias `addr` in cluster `cluster` (CA5): locally administered unicast,
/// the same on every router of the cluster. Bytes 2..6 are the alias address, so two aliases of
/// one cluster never share one; bytes 0..2 are 14 bits of SHA-256 of the cluster name, so two
/// clusters on one LAN with the same alias address differ unless those 14 bits collide (1 in
/// 16,384: give the clusters other names if they do).
pub fn vmac(cluster: &str, addr: Ipv4Addr) -> Mac {
    use sha2::Digest;
    let h = sha2::Sha256::digest(cluster.as_bytes());
    let a = addr.octets();
    [(h[0] & 0xfc) | 0x02, h[1], a[0], a[1], a[2], a[3]]
}

impl AliasSpec {
    /// The members joined now, in join order.
    pub fn joined(&self) -> impl Iterator<Item = &JoinSpec> {
        self.members.iter().filter(|j| j.joined)
    }
}

/// cluamgr's default router priority.
pub const DEFAULT_RPRI: u32 = 1;
/// Allowed router priorities.
pub const RPRI_RANGE: core::ops::RangeInclusive<u32> = 0..=100_000;

/// Transport protocol of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
    /// Name as in clua_services.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Service options of clua_services(4) (CA9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceOptions {
    /// in_single (explicit; also the default when no distribution option is given).
    pub in_single: bool,
    /// in_multi.
    pub in_multi: bool,
    /// in_noalias.
    pub in_noalias: bool,
    /// in_nolocal (enforced on members; stored here).
    pub in_nolocal: bool,
    /// out_alias (outbound traffic from members; stored here).
    pub out_alias: bool,
    /// static (port reservation on members; stored here).
    pub static_port: bool,
    /// wrr: weighted round robin (the in_multi default, written out).
    pub wrr: bool,
    /// weighted: weighted consistent hashing of the flow (SC1).
    pub weighted: bool,
    /// sticky: a client address sticks to one member for the port (SC2).
    pub sticky: bool,
    /// wildcard_sticky: a client address sticks to one member for every port of the alias
    /// (SC3).
    pub wildcard_sticky: bool,
}

/// What is wrong with a clua_services(4) option list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceOptionError {
    /// A word that is not an option.
    #[error("unknown service option `{0}` (expected in_single, in_multi, in_noalias, in_nolocal, out_alias, static, wrr, weighted, sticky or wildcard_sticky)")]
    Unknown(String),
    /// CA9: options that exclude each other, all of those given (the distribution modes; the
    /// load-balancing policies, of which a port has one).
    #[error("{} are mutually exclusive", .0.join(" and "))]
    Exclusive(Vec<&'static str>),
    /// A load-balancing policy on a port that is not in_multi: only in_multi ports choose
    /// among members.
    #[error("{policy} is a policy of in_multi ports: {}", policy_without_multi(.mode))]
    PolicyWithoutInMulti {
        /// The policy as written.
        policy: &'static str,
        /// The port's mode: `in_single`, `in_single (default)` or `in_noalias`.
        mode: &'static str,
    },
}

/// What a port that is not in_multi does instead of a policy (for
/// [`ServiceOptionError::PolicyWithoutInMulti`]).
fn policy_without_multi(mode: &str) -> &'static str {
    match mode {
        "in_noalias" => "an in_noalias port is refused on aliases, no member is chosen",
        "in_single" => {
            "an in_single port sends every client to its one active member already (write in_multi instead of in_single)"
        }
        _ => {
            "a port without in_multi is in_single and sends every client to its one active member already (add in_multi)"
        }
    }
}

impl ServiceOptions {
    /// Parses one option word, returning an error naming it if unknown.
    pub fn set(&mut self, word: &str) -> Result<(), ServiceOptionError> {
        match word {
            "in_single" => self.in_single = true,
            "in_multi" => self.in_multi = true,
            "in_noalias" => self.in_noalias = true,
            "in_nolocal" => self.in_nolocal = true,
            "out_alias" => self.out_alias = true,
            "static" => self.static_port = true,
            "wrr" => self.wrr = true,
            "weighted" => self.weighted = true,
            "sticky" => self.sticky = true,
            "wildcard_sticky" => self.wildcard_sticky = true,
            other => return Err(ServiceOptionError::Unknown(other.into())),
        }
        Ok(())
    }

    /// The load-balancing policies given, as written, in a fixed order.
    fn policies(&self) -> Vec<&'static str> {
        [
            (self.wrr, "wrr"),
            (self.weighted, "weighted"),
            (self.sticky, "sticky"),
            (self.wildcard_sticky, "wildcard_sticky"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect()
    }

    /// CA9: in_multi, in_single and in_noalias are mutually exclusive; so are in_nolocal and
    /// in_noalias. Issue 9: wrr, weighted, sticky and wildcard_sticky are mutually exclusive,
    /// and only in_multi ports take one.
    pub fn check(&self) -> Result<(), ServiceOptionError> {
        let dist = [
            (self.in_single, "in_single"),
            (self.in_multi, "in_multi"),
            (self.in_noalias, "in_noalias"),
        ];
        let set: Vec<&'static str> = dist.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
        if set.len() > 1 {
            return Err(ServiceOptionError::Exclusive(set));
        }
        let policies = self.policies();
        if policies.len() > 1 {
            return Err(ServiceOptionError::Exclusive(policies));
        }
        if let (Some(&policy), false) = (policies.first(), self.in_multi) {
            let mode = match set.first() {
                Some(&m) => m,
                None => "in_single (default)",
            };
            return Err(ServiceOptionError::PolicyWithoutInMulti { policy, mode });
        }
        if self.in_nolocal && self.in_noalias {
            return Err(ServiceOptionError::Exclusive(vec![
                "in_nolocal",
                "in_noalias",
            ]));
        }
        Ok(())
    }

    /// The load-balancing policy (issue 9): the one given, else `wrr`. Meaningful for
    /// in_multi ports only (see [`check`](Self::check)).
    pub fn policy(&self) -> Policy {
        if self.weighted {
            Policy::Weighted
        } else if self.sticky {
            Policy::Sticky
        } else if self.wildcard_sticky {
            Policy::WildcardSticky
        } else {
            Policy::Wrr
        }
    }

    /// The data-plane distribution mode.
    pub fn mode(&self) -> ServiceMode {
        if self.in_multi {
            ServiceMode::InMulti
        } else if self.in_noalias {
            ServiceMode::InNoalias
        } else {
            ServiceMode::InSingle
        }
    }
}

/// A clua_services entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
    /// Options.
    pub options: ServiceOptions,
}

/// The whole cluster as one router sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Cluster name.
    pub name: String,
    /// Name of the default alias, which every member joins (CA1).
    pub default_alias: String,
    /// Configured alias capacity (CA1).
    pub max_aliases: usize,
    /// Router ports.
    pub ports: Vec<PortSpec>,
    /// Members; a member's id is its index.
    pub members: Vec<MemberSpec>,
    /// Aliases.
    pub aliases: Vec<AliasSpec>,
    /// Services.
    pub services: Vec<ServiceSpec>,
    /// The UDP port on the router's interconnect addresses where member adverts arrive; 0 when
    /// no member runs the agent.
    pub advert_port: u16,
}

/// Where a validation problem is: a top-level field, or a field of one named entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A dotted field path such as `cluster.name`, or a section such as `port`.
    Field(&'static str),
    /// A port's field by index (its name being the problem).
    PortIndex {
        /// Position in the port list.
        index: usize,
        /// The field.
        field: &'static str,
    },
    /// A port, or one of its fields.
    Port {
        /// Its name.
        name: String,
        /// The field, if one.
        field: Option<&'static str>,
    },
    /// A member, or one of its fields.
    Member {
        /// Its name.
        name: String,
        /// The field, if one.
        field: Option<&'static str>,
    },
    /// An alias, or one of its fields.
    Alias {
        /// Its name.
        name: String,
        /// The field, if one.
        field: Option<&'static str>,
    },
    /// A member's join of an alias, or one of its attributes.
    Join {
        /// The alias's name.
        alias: String,
        /// The member's name.
        member: String,
        /// The attribute, if one.
        field: Option<&'static str>,
    },
    /// A service, or one of its fields.
    Service {
        /// Its name.
        name: String,
        /// Port.
        port: u16,
        /// Protocol.
        proto: Proto,
        /// The field, if one.
        field: Option<&'static str>,
    },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, r) = match self {
            Place::Field(x) => return f.write_str(x),
            Place::PortIndex { index, field } => return write!(f, "port[{index}].{field}"),
            Place::Port { name, field } => (field, write!(f, "port \"{name}\"")),
            Place::Member { name, field } => (field, write!(f, "member \"{name}\"")),
            Place::Alias { name, field } => (field, write!(f, "alias \"{name}\"")),
            Place::Join {
                alias,
                member,
                field,
            } => (field, write!(f, "alias \"{alias}\" member \"{member}\"")),
            Place::Service {
                name,
                port,
                proto,
                field,
            } => (
                field,
                write!(f, "service \"{name}\" ({port}/{})", proto.name()),
            ),
        };
        r?;
        match field {
            Some(x) => write!(f, " {x}"),
            None => Ok(()),
        }
    }
}

/// What is wrong at a [`Place`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// An empty name.
    #[error("must not be empty")]
    Empty,
    /// A name that breaks [`crate::name::validate_name`].
    #[error("`{name}` is not a name: {why}")]
    BadName {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        why: crate::name::NameError,
    },
    /// A number outside its range.
    #[error("{value} is out of range {min}..={max}")]
    OutOfRange {
        /// The value.
        value: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// More aliases than `cluster.max_aliases`.
    #[error("{count} aliases configured but cluster.max_aliases is {max}")]
    TooManyAliases {
        /// Configured.
        count: usize,
        /// Allowed.
        max: usize,
    },
    /// A port, member or alias name used twice.
    #[error("duplicate {0} name")]
    Duplicate(&'static str),
    /// A multicast, broadcast or unspecified address where a host's is needed.
    #[error("{0} is not a unicast address")]
    NotUnicast(Ipv4Addr),
    /// No client-facing port.
    #[error("no port has role = \"client\"")]
    NoClientPort,
    /// A member names a port that is not configured.
    #[error("port \"{0}\" does not exist")]
    NoSuchPort(String),
    /// A member names a client port.
    #[error("port \"{0}\" is not an interconnect")]
    NotInterconnect(String),
    /// A tunnel member behind a port with no address to send from.
    #[error("tunnel encapsulation needs an address on port \"{0}\"")]
    TunnelNeedsAddress(String),
    /// A multicast MAC where a station's is needed.
    #[error("{} is a multicast MAC", fmt_mac(.0))]
    MulticastMac(Mac),
    /// A member without a configured MAC that ARP cannot resolve: its address is not on its
    /// port's subnet (the MAC would be a next hop's, which the router has no route to find).
    #[error("required: {address} is outside port \"{port}\"'s subnet {subnet}, so ARP cannot resolve it")]
    MacNeeded {
        /// The member's address.
        address: Ipv4Addr,
        /// Its port.
        port: String,
        /// The port's subnet.
        subnet: Prefix,
    },
    /// A VXLAN VNI of more than 24 bits.
    #[error("{0} does not fit in 24 bits")]
    VniTooLarge(u32),
    /// Two aliases with one address.
    #[error("{address} is already alias \"{alias}\"")]
    AddressTaken {
        /// The address.
        address: Ipv4Addr,
        /// The alias that has it.
        alias: String,
    },
    /// An address that cannot be an alias (CA1).
    #[error(transparent)]
    AliasAddress(#[from] AliasAddressProblem),
    /// A join of a member that is not configured.
    #[error("no such member")]
    NoSuchMember,
    /// A member listed twice in one alias.
    #[error("joined twice")]
    JoinedTwice,
    /// `cluster.default_alias` names no alias.
    #[error("no alias is named \"{0}\"")]
    NoDefaultAlias(String),
    /// Two services on one port/protocol.
    #[error("the same port/protocol is listed twice")]
    DuplicateService,
    /// A service on port 0.
    #[error("port 0 is not a service port")]
    PortZero,
    /// Service options that break CA9.
    #[error(transparent)]
    Options(#[from] ServiceOptionError),
    /// A configured out_alias range that overlaps another or holds a service port (CA9).
    #[error(transparent)]
    OutAlias(#[from] crate::out_alias::RangeRefusal),
}

/// A validation error: where, and what is wrong. Displays as `PLACE: PROBLEM`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {what}")]
pub struct ModelError {
    /// The place, e.g. `alias "web" address` or `member "m2"`.
    pub at: Place,
    /// What is wrong.
    pub what: Problem,
}

fn err(at: Place, what: impl Into<Problem>) -> ModelError {
    ModelError {
        at,
        what: what.into(),
    }
}

fn out_of_range<T: Into<u64> + Copy>(v: T, r: &core::ops::RangeInclusive<T>) -> Problem {
    Problem::OutOfRange {
        value: v.into(),
        min: (*r.start()).into(),
        max: (*r.end()).into(),
    }
}

/// Why an address cannot be an alias address (CA1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AliasAddressProblem {
    /// 0.0.0.0.
    #[error("0.0.0.0 cannot be an alias")]
    Unspecified,
    /// 255.255.255.255.
    #[error("255.255.255.255 is the limited broadcast address")]
    LimitedBroadcast,
    /// 224.0.0.0/4.
    #[error("{0} is a multicast address")]
    Multicast(Ipv4Addr),
    /// 127.0.0.0/8.
    #[error("{0} is a loopback address")]
    Loopback(Ipv4Addr),
    /// 240.0.0.0/4.
    #[error("{0} is in the reserved class E range 240.0.0.0/4")]
    ClassE(Ipv4Addr),
    /// A router port's own address.
    #[error("{addr} is the router's own address on port \"{port}\"")]
    RouterAddress {
        /// The address.
        addr: Ipv4Addr,
        /// The port.
        port: String,
    },
    /// A port subnet's broadcast address.
    #[error("{addr} is the broadcast address of port \"{port}\"'s subnet {subnet}")]
    SubnetBroadcast {
        /// The address.
        addr: Ipv4Addr,
        /// The port.
        port: String,
        /// Its subnet.
        subnet: Prefix,
    },
    /// A port subnet's network address.
    #[error("{addr} is the network address of port \"{port}\"'s subnet {subnet}")]
    SubnetNetwork {
        /// The address.
        addr: Ipv4Addr,
        /// The port.
        port: String,
        /// Its subnet.
        subnet: Prefix,
    },
    /// Inside an interconnect subnet (members' side, never a client's destination).
    #[error("{addr} is in interconnect subnet {subnet} of port \"{port}\"")]
    Interconnect {
        /// The address.
        addr: Ipv4Addr,
        /// The port.
        port: String,
        /// Its subnet.
        subnet: Prefix,
    },
}

/// Why `addr` cannot be an alias address given the router's ports, if it cannot.
pub fn alias_address_problem(addr: Ipv4Addr, ports: &[PortSpec]) -> Option<AliasAddressProblem> {
    use AliasAddressProblem as P;
    let a = u32::from(addr);
    if addr.is_unspecified() {
        return Some(P::Unspecified);
    }
    if addr.is_broadcast() {
        return Some(P::LimitedBroadcast);
    }
    if addr.is_multicast() {
        return Some(P::Multicast(addr));
    }
    if addr.is_loopback() {
        return Some(P::Loopback(addr));
    }
    if a >> 28 == 0xf {
        return Some(P::ClassE(addr));
    }
    for p in ports {
        let Some(pre) = p.address else { continue };
        let port = || p.name.clone();
        if pre.addr == addr {
            return Some(P::RouterAddress { addr, port: port() });
        }
        if pre.len < 31 && pre.contains(addr) {
            if a == pre.broadcast() {
                return Some(P::SubnetBroadcast {
                    addr,
                    port: port(),
                    subnet: pre,
                });
            }
            if a == pre.network() {
                return Some(P::SubnetNetwork {
                    addr,
                    port: port(),
                    subnet: pre,
                });
            }
        }
        if p.role == PortRole::Interconnect && pre.contains(addr) {
            return Some(P::Interconnect {
                addr,
                port: port(),
                subnet: pre,
            });
        }
    }
    None
}

impl Cluster {
    /// The index of the port with this name.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// The id of the member with this name.
    pub fn member_id(&self, name: &str) -> Option<MemberId> {
        self.members
            .iter()
            .position(|m| m.name == name)
            .map(|i| MemberId(i as u32))
    }

    /// Checks every invariant in the module docs, returning all problems found.
    pub fn validate(&self) -> Result<(), Vec<ModelError>> {
        use Place::Field;
        let mut errs = Vec::new();
        let name_check = |name: &str| {
            crate::name::validate_name(name.as_bytes())
                .err()
                .map(|why| Problem::BadName {
                    name: name.into(),
                    why,
                })
        };
        if self.name.is_empty() {
            errs.push(err(Field("cluster.name"), Problem::Empty));
        }
        if !(1..=MAX_ALIASES_LIMIT).contains(&self.max_aliases) {
            errs.push(err(
                Field("cluster.max_aliases"),
                Problem::OutOfRange {
                    value: self.max_aliases as u64,
                    min: 1,
                    max: MAX_ALIASES_LIMIT as u64,
                },
            ));
        }
        if self.aliases.len() > self.max_aliases {
            errs.push(err(
                Field("alias"),
                Problem::TooManyAliases {
                    count: self.aliases.len(),
                    max: self.max_aliases,
                },
            ));
        }
        for (i, p) in self.ports.iter().enumerate() {
            let at = |field| Place::Port {
                name: p.name.clone(),
                field,
            };
            if p.name.is_empty() {
                errs.push(err(
                    Place::PortIndex {
                        index: i,
                        field: "name",
                    },
                    Problem::Empty,
                ));
            } else if let Some(bad) = name_check(&p.name) {
                errs.push(err(at(Some("name")), bad));
            }
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                errs.push(err(at(None), Problem::Duplicate("port")));
            }
            if !MTU_RANGE.contains(&p.mtu) {
                errs.push(err(at(Some("mtu")), out_of_range(p.mtu, &MTU_RANGE)));
            }
            if let Some(a) = p.address {
                if a.addr.is_multicast() || a.addr.is_broadcast() || a.addr.is_unspecified() {
                    errs.push(err(at(Some("address")), Problem::NotUnicast(a.addr)));
                }
            }
        }
        if !self.ports.iter().any(|p| p.role == PortRole::Client) {
            errs.push(err(Field("port"), Problem::NoClientPort));
        }
        for (i, m) in self.members.iter().enumerate() {
            let at = |field| Place::Member {
                name: m.name.clone(),
                field,
            };
            if let Some(bad) = name_check(&m.name) {
                errs.push(err(at(Some("name")), bad));
            }
            if self.members[..i].iter().any(|o| o.name == m.name) {
                errs.push(err(at(None), Problem::Duplicate("member")));
            }
            match self.port_index(&m.port) {
                None => errs.push(err(at(Some("port")), Problem::NoSuchPort(m.port.clone()))),
                Some(pi) => {
                    let p = &self.ports[pi];
                    if p.role != PortRole::Interconnect {
                        errs.push(err(
                            at(Some("port")),
                            Problem::NotInterconnect(m.port.clone()),
                        ));
                    }
                    if m.encap != Encap::L2 && p.address.is_none() {
                        errs.push(err(
                            at(Some("encap")),
                            Problem::TunnelNeedsAddress(m.port.clone()),
                        ));
                    }
                }
            }
            if m.address.is_multicast() || m.address.is_broadcast() || m.address.is_unspecified() {
                errs.push(err(at(Some("address")), Problem::NotUnicast(m.address)));
            }
            if let Some(mac) = m.mac.configured() {
                if mac[0] & 1 == 1 {
                    errs.push(err(at(Some("mac")), Problem::MulticastMac(mac)));
                }
            } else if let Some(subnet) = self
                .port_index(&m.port)
                .and_then(|pi| self.ports[pi].address)
                .filter(|pre| !pre.contains(m.address))
            {
                errs.push(err(
                    at(Some("mac")),
                    Problem::MacNeeded {
                        address: m.address,
                        port: m.port.clone(),
                        subnet,
                    },
                ));
            }
            if let Encap::Vxlan { vni, inner_mac, .. } = m.encap {
                if vni >= 1 << 24 {
                    errs.push(err(at(Some("vni")), Problem::VniTooLarge(vni)));
                }
                if inner_mac[0] & 1 == 1 {
                    errs.push(err(at(Some("inner_mac")), Problem::MulticastMac(inner_mac)));
                }
            }
        }
        for (i, why) in crate::out_alias::configured_problems(self) {
            let at = Place::Member {
                name: self.members[i].name.clone(),
                field: Some("out_alias_ports"),
            };
            errs.push(err(at, why));
        }
        let mut seen_default = false;
        // Hash indexes keep validation linear: it runs on every cluamgr command, and a cluster
        // may have 102,400 aliases (CA1).
        let member_names: HashSet<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        let mut alias_names: HashSet<&str> = HashSet::with_capacity(self.aliases.len());
        let mut alias_addrs: HashMap<Ipv4Addr, &str> = HashMap::with_capacity(self.aliases.len());
        for a in self.aliases.iter() {
            let at = |field| Place::Alias {
                name: a.name.clone(),
                field,
            };
            if a.name == self.default_alias {
                seen_default = true;
            }
            if let Some(bad) = name_check(&a.name) {
                errs.push(err(at(Some("name")), bad));
            }
            if !alias_names.insert(a.name.as_str()) {
                errs.push(err(at(None), Problem::Duplicate("alias")));
            }
            if let Some(o) = alias_addrs.insert(a.address, a.name.as_str()) {
                errs.push(err(
                    at(Some("address")),
                    Problem::AddressTaken {
                        address: a.address,
                        alias: o.into(),
                    },
                ));
                alias_addrs.insert(a.address, o);
            }
            if let Some(problem) = alias_address_problem(a.address, &self.ports) {
                errs.push(err(at(Some("address")), problem));
            }
            if !RPRI_RANGE.contains(&a.rpri) {
                errs.push(err(at(Some("rpri")), out_of_range(a.rpri, &RPRI_RANGE)));
            }
            for (j, jn) in a.members.iter().enumerate() {
                let jat = |field| Place::Join {
                    alias: a.name.clone(),
                    member: jn.member.clone(),
                    field,
                };
                if !member_names.contains(jn.member.as_str()) {
                    errs.push(err(jat(None), Problem::NoSuchMember));
                }
                if a.members[..j].iter().any(|o| o.member == jn.member) {
                    errs.push(err(jat(None), Problem::JoinedTwice));
                }
                if !SELW_RANGE.contains(&jn.selw) {
                    errs.push(err(jat(Some("selw")), out_of_range(jn.selw, &SELW_RANGE)));
                }
                if !SELP_RANGE.contains(&jn.selp) {
                    errs.push(err(jat(Some("selp")), out_of_range(jn.selp, &SELP_RANGE)));
                }
            }
        }
        if !seen_default {
            errs.push(err(
                Field("cluster.default_alias"),
                Problem::NoDefaultAlias(self.default_alias.clone()),
            ));
        }
        for (i, s) in self.services.iter().enumerate() {
            let at = |field| Place::Service {
                name: s.name.clone(),
                port: s.port,
                proto: s.proto,
                field,
            };
            if self.services[..i]
                .iter()
                .any(|o| o.port == s.port && o.proto == s.proto)
            {
                errs.push(err(at(None), Problem::DuplicateService));
            }
            if s.port == 0 {
                errs.push(err(at(None), Problem::PortZero));
            }
            if let Err(e) = s.options.check() {
                errs.push(err(at(Some("options")), e));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// CA1: every member joins the default alias, with selw=1, selp=1 unless the alias lists it
    /// explicitly. Done once when the configuration is loaded, so that a member can later
    /// `leave` the default alias like any other.
    pub fn join_default_alias(&mut self) {
        let names: Vec<String> = self.members.iter().map(|m| m.name.clone()).collect();
        let default = self.default_alias.clone();
        if let Some(alias) = self.aliases.iter_mut().find(|a| a.name == default) {
            for name in names {
                if !alias.members.iter().any(|j| j.member == name) {
                    alias.members.push(JoinSpec {
                        member: name,
                        selw: 1,
                        selp: 1,
                        joined: true,
                    });
                }
            }
        }
    }

    /// Builds the workers' snapshot. `port_macs[i]` is the MAC the PMD reports for port `i`.
    /// Call only on a validated cluster.
    pub fn snapshot(&self, generation: u64, port_macs: &[Mac]) -> Result<Snapshot, SnapshotError> {
        let ports = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortInfo {
                name: p.name.clone(),
                role: p.role,
                mac: port_macs.get(i).copied().or(p.mac).unwrap_or([0; 6]),
                ipv4: p.address.map(|a| a.addr),
                prefix_len: p.address.map_or(32, |a| a.len),
                mtu: p.mtu,
                flow_source: p.flow_source.map(|f| (Ipv4Addr::from(f.network()), f.len)),
            })
            .collect();
        let members = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Some(Member {
                    id: MemberId(i as u32),
                    name: m.name.clone(),
                    port: self.port_index(&m.port).unwrap_or(usize::MAX) as u16,
                    mac: m.mac.current().unwrap_or([0; 6]),
                    ipv4: m.address,
                    encap: m.encap,
                    // CA3: without a usable MAC the member is as good as down.
                    up: m.up && m.mac.usable(),
                    listening: m
                        .listening
                        .as_ref()
                        .map(|l| l.iter().map(|(p, port)| (p.number(), *port)).collect()),
                })
            })
            .collect();
        let member_ids: HashMap<&str, MemberId> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.as_str(), MemberId(i as u32)))
            .collect();
        let aliases = self
            .aliases
            .iter()
            .map(|a| {
                let joins = a
                    .joined()
                    .filter_map(|j| {
                        member_ids.get(j.member.as_str()).map(|&id| AliasMember {
                            member: id,
                            selw: j.selw,
                            selp: j.selp,
                        })
                    })
                    .collect();
                (a.name.clone(), a.address, joins)
            })
            .collect();
        let services: Vec<PipelineService> = self
            .services
            .iter()
            .map(|s| PipelineService {
                proto: s.proto.number(),
                port: s.port,
                mode: s.options.mode(),
            })
            .collect();
        let policies: Vec<ServicePolicy> = self
            .services
            .iter()
            .filter(|s| s.options.mode() == ServiceMode::InMulti)
            .map(|s| ServicePolicy {
                proto: s.proto.number(),
                port: s.port,
                policy: s.options.policy(),
            })
            .collect();
        let out_alias = crate::out_alias::table(self).map_err(SnapshotError::OutAliasOverlap)?;
        Snapshot::build(generation, ports, members, aliases, &services)
            .and_then(|s| s.with_policies(&policies))
            .and_then(|s| s.with_out_alias(&crate::out_alias::out_alias_ports(self), out_alias))
            .map(|s| s.with_advert_port(self.advert_port))
    }
}
