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
//! - at most `max_aliases` aliases (default 8, at most 102,400), and the default alias exists;
//! - service (port, protocol) pairs are unique and their options obey CA9's exclusions.
//!
//! Member ids are positions in `members`: members are never removed while aliasd runs (a later
//! "gone" state keeps the slot), so connection-table entries never point at a reused id.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use clua_pipeline::snapshot::{
    AliasMember, Encap, Member, MemberId, PortInfo, PortRole, ServiceMode,
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

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not ADDRESS/LENGTH"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("`{l}` is not a prefix length 0..=32"))?;
        Ok(Prefix { addr, len })
    }
}

/// Parses `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Result<Mac, String> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts
            .next()
            .ok_or_else(|| format!("`{s}` is not a MAC address (six hex bytes)"))?;
        if p.len() != 2 {
            return Err(format!("`{s}` is not a MAC address (six hex bytes)"));
        }
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| format!("`{s}` is not a MAC address (six hex bytes)"))?;
    }
    if parts.next().is_some() {
        return Err(format!("`{s}` is not a MAC address (six hex bytes)"));
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
    /// Its MAC (or its next hop's) on that port.
    pub mac: Mac,
    /// How packets are carried to it.
    pub encap: Encap,
    /// Whether it is up (CA3). Until members send adverts, configured members are up.
    pub up: bool,
    /// Whether the member runs the member agent: its state (up, joins, listening ports) then
    /// comes from its authenticated adverts (issue 4), and it is down until the first one.
    pub agent: bool,
    /// The ports it reported listening on (agent members); `None`: eligible for every port.
    pub listening: Option<Vec<(Proto, u16)>>,
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
    /// proxy-ARPed; seed 000 Table 6-1). Stored; RIP comes later.
    pub virtual_subnet: bool,
    /// The alias's subnet mask (cluamgr `mask=`), if given.
    pub mask: Option<Ipv4Addr>,
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
}

impl ServiceOptions {
    /// Parses one option word, returning an error naming it if unknown.
    pub fn set(&mut self, word: &str) -> Result<(), String> {
        match word {
            "in_single" => self.in_single = true,
            "in_multi" => self.in_multi = true,
            "in_noalias" => self.in_noalias = true,
            "in_nolocal" => self.in_nolocal = true,
            "out_alias" => self.out_alias = true,
            "static" => self.static_port = true,
            other => {
                return Err(format!(
                    "unknown service option `{other}` (expected in_single, in_multi, in_noalias, in_nolocal, out_alias or static)"
                ))
            }
        }
        Ok(())
    }

    /// CA9: in_multi, in_single and in_noalias are mutually exclusive; so are in_nolocal and
    /// in_noalias.
    pub fn check(&self) -> Result<(), String> {
        let dist = [
            (self.in_single, "in_single"),
            (self.in_multi, "in_multi"),
            (self.in_noalias, "in_noalias"),
        ];
        let set: Vec<&str> = dist.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect();
        if set.len() > 1 {
            return Err(format!("{} are mutually exclusive", set.join(" and ")));
        }
        if self.in_nolocal && self.in_noalias {
            return Err("in_nolocal and in_noalias are mutually exclusive".into());
        }
        Ok(())
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

/// A validation error: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelError {
    /// The place, e.g. `alias "web" address` or `member "m2"`.
    pub at: String,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.what)
    }
}

impl std::error::Error for ModelError {}

fn err(at: impl Into<String>, what: impl Into<String>) -> ModelError {
    ModelError {
        at: at.into(),
        what: what.into(),
    }
}

/// Why `addr` cannot be an alias address given the router's ports, if it cannot.
pub fn alias_address_problem(addr: Ipv4Addr, ports: &[PortSpec]) -> Option<String> {
    let a = u32::from(addr);
    if addr.is_unspecified() {
        return Some("0.0.0.0 cannot be an alias".into());
    }
    if addr.is_broadcast() {
        return Some("255.255.255.255 is the limited broadcast address".into());
    }
    if addr.is_multicast() {
        return Some(format!("{addr} is a multicast address"));
    }
    if addr.is_loopback() {
        return Some(format!("{addr} is a loopback address"));
    }
    if a >> 28 == 0xf {
        return Some(format!(
            "{addr} is in the reserved class E range 240.0.0.0/4"
        ));
    }
    for p in ports {
        let Some(pre) = p.address else { continue };
        if pre.addr == addr {
            return Some(format!(
                "{addr} is the router's own address on port \"{}\"",
                p.name
            ));
        }
        if pre.len < 31 && pre.contains(addr) {
            if a == pre.broadcast() {
                return Some(format!(
                    "{addr} is the broadcast address of port \"{}\"'s subnet {pre}",
                    p.name
                ));
            }
            if a == pre.network() {
                return Some(format!(
                    "{addr} is the network address of port \"{}\"'s subnet {pre}",
                    p.name
                ));
            }
        }
        if p.role == PortRole::Interconnect && pre.contains(addr) {
            return Some(format!(
                "{addr} is in interconnect subnet {pre} of port \"{}\"",
                p.name
            ));
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
        let mut errs = Vec::new();
        if self.name.is_empty() {
            errs.push(err("cluster.name", "must not be empty"));
        }
        if !(1..=MAX_ALIASES_LIMIT).contains(&self.max_aliases) {
            errs.push(err(
                "cluster.max_aliases",
                format!(
                    "{} is out of range 1..={MAX_ALIASES_LIMIT}",
                    self.max_aliases
                ),
            ));
        }
        if self.aliases.len() > self.max_aliases {
            errs.push(err(
                "alias",
                format!(
                    "{} aliases configured but cluster.max_aliases is {}",
                    self.aliases.len(),
                    self.max_aliases
                ),
            ));
        }
        for (i, p) in self.ports.iter().enumerate() {
            let at = format!("port \"{}\"", p.name);
            if p.name.is_empty() {
                errs.push(err(format!("port[{i}].name"), "must not be empty"));
            }
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                errs.push(err(&at, "duplicate port name"));
            }
            if !MTU_RANGE.contains(&p.mtu) {
                errs.push(err(
                    format!("{at} mtu"),
                    format!(
                        "{} is out of range {}..={}",
                        p.mtu,
                        MTU_RANGE.start(),
                        MTU_RANGE.end()
                    ),
                ));
            }
            if let Some(a) = p.address {
                if a.addr.is_multicast() || a.addr.is_broadcast() || a.addr.is_unspecified() {
                    errs.push(err(
                        format!("{at} address"),
                        format!("{} is not a unicast address", a.addr),
                    ));
                }
            }
        }
        if !self.ports.iter().any(|p| p.role == PortRole::Client) {
            errs.push(err("port", "no port has role = \"client\""));
        }
        for (i, m) in self.members.iter().enumerate() {
            let at = format!("member \"{}\"", m.name);
            if self.members[..i].iter().any(|o| o.name == m.name) {
                errs.push(err(&at, "duplicate member name"));
            }
            match self.port_index(&m.port) {
                None => errs.push(err(
                    format!("{at} port"),
                    format!("port \"{}\" does not exist", m.port),
                )),
                Some(pi) => {
                    let p = &self.ports[pi];
                    if p.role != PortRole::Interconnect {
                        errs.push(err(
                            format!("{at} port"),
                            format!("port \"{}\" is not an interconnect", m.port),
                        ));
                    }
                    if m.encap != Encap::L2 && p.address.is_none() {
                        errs.push(err(
                            format!("{at} encap"),
                            format!(
                                "tunnel encapsulation needs an address on port \"{}\"",
                                m.port
                            ),
                        ));
                    }
                }
            }
            if m.address.is_multicast() || m.address.is_broadcast() || m.address.is_unspecified() {
                errs.push(err(
                    format!("{at} address"),
                    format!("{} is not a unicast address", m.address),
                ));
            }
            if m.mac[0] & 1 == 1 {
                errs.push(err(
                    format!("{at} mac"),
                    format!("{} is a multicast MAC", fmt_mac(&m.mac)),
                ));
            }
            if let Encap::Vxlan { vni, inner_mac, .. } = m.encap {
                if vni >= 1 << 24 {
                    errs.push(err(
                        format!("{at} vni"),
                        format!("{vni} does not fit in 24 bits"),
                    ));
                }
                if inner_mac[0] & 1 == 1 {
                    errs.push(err(
                        format!("{at} inner_mac"),
                        format!("{} is a multicast MAC", fmt_mac(&inner_mac)),
                    ));
                }
            }
        }
        let mut seen_default = false;
        // Hash indexes keep validation linear: it runs on every cluamgr command, and a cluster
        // may have 102,400 aliases (CA1).
        let member_names: HashSet<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        let mut alias_names: HashSet<&str> = HashSet::with_capacity(self.aliases.len());
        let mut alias_addrs: HashMap<Ipv4Addr, &str> = HashMap::with_capacity(self.aliases.len());
        for a in self.aliases.iter() {
            let at = format!("alias \"{}\"", a.name);
            if a.name == self.default_alias {
                seen_default = true;
            }
            if !alias_names.insert(a.name.as_str()) {
                errs.push(err(&at, "duplicate alias name"));
            }
            if let Some(o) = alias_addrs.insert(a.address, a.name.as_str()) {
                errs.push(err(
                    format!("{at} address"),
                    format!("{} is already alias \"{}\"", a.address, o),
                ));
                alias_addrs.insert(a.address, o);
            }
            if let Some(problem) = alias_address_problem(a.address, &self.ports) {
                errs.push(err(format!("{at} address"), problem));
            }
            if !RPRI_RANGE.contains(&a.rpri) {
                errs.push(err(
                    format!("{at} rpri"),
                    format!(
                        "{} is out of range {}..={}",
                        a.rpri,
                        RPRI_RANGE.start(),
                        RPRI_RANGE.end()
                    ),
                ));
            }
            for (j, jn) in a.members.iter().enumerate() {
                let jat = format!("{at} member \"{}\"", jn.member);
                if !member_names.contains(jn.member.as_str()) {
                    errs.push(err(&jat, "no such member"));
                }
                if a.members[..j].iter().any(|o| o.member == jn.member) {
                    errs.push(err(&jat, "joined twice"));
                }
                if !SELW_RANGE.contains(&jn.selw) {
                    errs.push(err(
                        format!("{jat} selw"),
                        format!(
                            "{} is out of range {}..={}",
                            jn.selw,
                            SELW_RANGE.start(),
                            SELW_RANGE.end()
                        ),
                    ));
                }
                if !SELP_RANGE.contains(&jn.selp) {
                    errs.push(err(
                        format!("{jat} selp"),
                        format!(
                            "{} is out of range {}..={}",
                            jn.selp,
                            SELP_RANGE.start(),
                            SELP_RANGE.end()
                        ),
                    ));
                }
            }
        }
        if !seen_default {
            errs.push(err(
                "cluster.default_alias",
                format!("no alias is named \"{}\"", self.default_alias),
            ));
        }
        for (i, s) in self.services.iter().enumerate() {
            let at = format!("service \"{}\" ({}/{})", s.name, s.port, s.proto.name());
            if self.services[..i]
                .iter()
                .any(|o| o.port == s.port && o.proto == s.proto)
            {
                errs.push(err(&at, "the same port/protocol is listed twice"));
            }
            if s.port == 0 {
                errs.push(err(&at, "port 0 is not a service port"));
            }
            if let Err(e) = s.options.check() {
                errs.push(err(format!("{at} options"), e));
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
                    mac: m.mac,
                    ipv4: m.address,
                    encap: m.encap,
                    up: m.up,
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
        Snapshot::build(generation, ports, members, aliases, &services)
            .map(|s| s.with_advert_port(self.advert_port))
    }
}
