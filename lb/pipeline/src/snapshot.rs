//! The immutable configuration a worker reads: ports, members, aliases, services.
//!
//! Built by the control plane (`clua-ctl`), swapped into workers between bursts. Invariants
//! established by [`Snapshot::build`] and relied on by the stages without re-checking:
//! - every `MemberId` in an alias refers to a member present in `members`;
//! - every member's `port` indexes `ports`;
//! - alias addresses are unique and `alias_by_addr` finds each one in O(1);
//! - each alias's `multi_schedule` holds, in join order, the up members of the highest selp tier
//!   that has any up member, each repeated `selw` times (CA7, CA8), and `single_active` is the
//!   first up member of that tier (in_single, CA9).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::hash::IntHashBuilder;

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

/// An alias as the pipeline sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// Name from the configuration.
    pub name: String,
    /// The alias address.
    pub addr: Ipv4Addr,
    /// Joined members with their attributes, in join order.
    pub members: Vec<AliasMember>,
    /// The weighted round-robin schedule for in_multi ports (see the module invariants).
    pub multi_schedule: Box<[MemberId]>,
    /// The member that gets in_single traffic.
    pub single_active: Option<MemberId>,
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
        }
    }
}

impl std::error::Error for SnapshotError {}

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
    alias_by_addr: HashMap<u32, AliasId, IntHashBuilder>,
    tcp_services: Box<[ServiceMode]>,
    udp_services: Box<[ServiceMode]>,
}

impl Snapshot {
    /// Builds a snapshot, computing each alias's schedule and the O(1) indexes.
    /// `members[i]`, when `Some`, must have id `MemberId(i)`.
    pub fn build(
        generation: u64,
        ports: Vec<PortInfo>,
        members: Vec<Option<Member>>,
        aliases: Vec<(String, Ipv4Addr, Vec<AliasMember>)>,
        services: &[ServiceSpec],
    ) -> Result<Snapshot, SnapshotError> {
        for (i, m) in members.iter().enumerate() {
            if let Some(m) = m {
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
            let is_up = |id: MemberId| members[id.0 as usize].as_ref().is_some_and(|m| m.up);
            let top = alias_members
                .iter()
                .filter(|am| is_up(am.member))
                .map(|am| am.selp)
                .max();
            let tier: Vec<&AliasMember> = match top {
                Some(top) => alias_members
                    .iter()
                    .filter(|am| am.selp == top && is_up(am.member))
                    .collect(),
                None => Vec::new(),
            };
            let multi_schedule = tier
                .iter()
                .flat_map(|am| std::iter::repeat_n(am.member, am.selw as usize))
                .collect();
            let single_active = tier.first().map(|am| am.member);
            built.push(Alias {
                name,
                addr,
                members: alias_members,
                multi_schedule,
                single_active,
            });
        }
        let mut tcp_services = vec![ServiceMode::InSingle; 65536].into_boxed_slice();
        let mut udp_services = vec![ServiceMode::InSingle; 65536].into_boxed_slice();
        for s in services {
            match s.proto {
                6 => tcp_services[s.port as usize] = s.mode,
                17 => udp_services[s.port as usize] = s.mode,
                proto => return Err(SnapshotError::ServiceProto { proto }),
            }
        }
        Ok(Snapshot {
            generation,
            ports,
            members,
            aliases: built,
            alias_by_addr,
            tcp_services,
            udp_services,
        })
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

    /// The service mode of a TCP (6) or UDP (17) port; in_single for anything unlisted.
    #[inline]
    pub fn service_mode(&self, proto: u8, port: u16) -> ServiceMode {
        match proto {
            6 => self.tcp_services[port as usize],
            17 => self.udp_services[port as usize],
            _ => ServiceMode::InSingle,
        }
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
