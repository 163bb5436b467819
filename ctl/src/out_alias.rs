//! The members' out_alias source-port ranges as the router uses them (CA9, docs/out_alias.md).
//!
//! Each member that originates out_alias traffic has its own range: configured for a static
//! member (aliasd.toml `[[member]] out_alias_ports`), advertised by an agent member (its
//! member.toml `[out_alias] ports`). The router steers replies by the range
//! (`clua_pipeline::out_alias`), so ranges must be disjoint and must not hold a port that
//! clua_services lists (a static port, seed 002: "never assigned as a dynamic port"; or any
//! service port, whose clients would otherwise be taken for replies).
//!
//! Configured ranges are checked when the configuration is loaded (an error refuses it). An
//! advertised range that breaks the rules cannot refuse anything: it is **refused** — not used,
//! so that member's out_alias replies are not steered — and shown by `cluamgr -s` and logged
//! once when it starts or stops being refused. Configured ranges are placed first, then agents'
//! in member order, so an agent cannot take a range from a static member; between two agents
//! the one configured first keeps it.

use std::fmt;

use clua_pipeline::out_alias::{OutAliasTable, PortRange};
use clua_pipeline::snapshot::{AliasId, MemberId};

use crate::model::{Cluster, Proto};

/// Why a member's range is not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeRefusal {
    /// It shares ports with another member's range, which is used.
    #[error("out_alias ports {range} overlap member {other}'s {other_range}")]
    Overlaps {
        /// The refused range.
        range: PortRange,
        /// The member whose range is used.
        other: String,
        /// That range.
        other_range: PortRange,
    },
    /// It holds a port that clua_services lists.
    #[error("out_alias ports {range} include {port}/{} (`{service}` in clua_services{}); ranges must hold no service port", .proto.name(), if *.is_static { ", static" } else { "" })]
    ServicePort {
        /// The refused range.
        range: PortRange,
        /// The port.
        port: u16,
        /// Its protocol.
        proto: Proto,
        /// The service's name.
        service: String,
        /// Whether the port is static.
        is_static: bool,
    },
}

/// Where the members' ranges stand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranges {
    /// Ranges in use: member index (into `Cluster::members`) and range, in placement order.
    pub used: Vec<(usize, PortRange)>,
    /// Ranges not used: member index and why.
    pub refused: Vec<(usize, RangeRefusal)>,
}

impl Ranges {
    /// The state of member `i`'s range: in use, refused (why), or none.
    pub fn of(&self, i: usize) -> RangeState<'_> {
        if let Some((_, r)) = self.used.iter().find(|(m, _)| *m == i) {
            return RangeState::Used(*r);
        }
        match self.refused.iter().find(|(m, _)| *m == i) {
            Some((_, why)) => RangeState::Refused(why),
            None => RangeState::None,
        }
    }
}

/// One member's range as [`Ranges::of`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeState<'a> {
    /// No range: the member originates no out_alias traffic (or its replies are not steered).
    None,
    /// In use.
    Used(PortRange),
    /// Not used.
    Refused(&'a RangeRefusal),
}

impl fmt::Display for RangeState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeState::None => f.write_str("none"),
            RangeState::Used(r) => write!(f, "{r}"),
            RangeState::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// The first clua_services port inside `range`.
fn service_in(cluster: &Cluster, range: PortRange) -> Option<RangeRefusal> {
    cluster
        .services
        .iter()
        .filter(|s| range.contains(s.port))
        .min_by_key(|s| (!s.options.static_port, s.port, s.proto.number()))
        .map(|s| RangeRefusal::ServicePort {
            range,
            port: s.port,
            proto: s.proto,
            service: s.name.clone(),
            is_static: s.options.static_port,
        })
}

/// Places the members' ranges (see the module docs).
pub fn ranges(cluster: &Cluster) -> Ranges {
    let mut out = Ranges::default();
    let order = cluster
        .members
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.agent)
        .chain(cluster.members.iter().enumerate().filter(|(_, m)| m.agent));
    for (i, m) in order {
        let Some(range) = m.out_alias else { continue };
        if let Some(why) = service_in(cluster, range) {
            out.refused.push((i, why));
            continue;
        }
        if let Some(&(o, other_range)) = out.used.iter().find(|(_, r)| r.overlaps(&range)) {
            out.refused.push((
                i,
                RangeRefusal::Overlaps {
                    range,
                    other: cluster.members[o].name.clone(),
                    other_range,
                },
            ));
            continue;
        }
        out.used.push((i, range));
    }
    out
}

/// The problems of the configured (static members') ranges, by member index: what
/// [`ranges`] would refuse among them. Agent members' ranges come from their adverts and are
/// never a configuration error.
pub fn configured_problems(cluster: &Cluster) -> Vec<(usize, RangeRefusal)> {
    let r = ranges(cluster);
    r.refused
        .into_iter()
        .filter(|(i, _)| !cluster.members[*i].agent)
        .collect()
}

/// The pipeline's table: the used ranges on the default alias (its index in
/// `cluster.aliases`, which is its `AliasId` in the snapshot), member indexes being member ids.
/// Empty without a default alias.
pub fn table(cluster: &Cluster) -> Result<OutAliasTable, clua_pipeline::out_alias::OverlapError> {
    let Some(alias) = cluster
        .aliases
        .iter()
        .position(|a| a.name == cluster.default_alias)
    else {
        return Ok(OutAliasTable::default());
    };
    OutAliasTable::new(
        AliasId(alias as u32),
        ranges(cluster)
            .used
            .into_iter()
            .map(|(i, r)| (r, MemberId(i as u32)))
            .collect(),
    )
}

/// The (proto, port) pairs clua_services flags out_alias.
pub fn out_alias_ports(cluster: &Cluster) -> Vec<(u8, u16)> {
    cluster
        .services
        .iter()
        .filter(|s| s.options.out_alias)
        .map(|s| (s.proto.number(), s.port))
        .collect()
}

/// What changed in the refusals between two models, for the log: `(member, Some(why))` for a
/// range newly refused (or refused for another reason), `(member, None)` for one no longer
/// refused (now in use or gone).
pub fn refusal_changes(old: &Cluster, new: &Cluster) -> Vec<(String, Option<RangeRefusal>)> {
    let (ro, rn) = (ranges(old), ranges(new));
    let named = |c: &Cluster, r: Ranges| -> Vec<(String, RangeRefusal)> {
        r.refused
            .into_iter()
            .map(|(i, why)| (c.members[i].name.clone(), why))
            .collect()
    };
    let (o, n) = (named(old, ro), named(new, rn));
    let mut out = Vec::new();
    for (name, why) in &n {
        if !o.iter().any(|(on, ow)| on == name && ow == why) {
            out.push((name.clone(), Some(why.clone())));
        }
    }
    for (name, _) in &o {
        if !n.iter().any(|(nn, _)| nn == name) {
            out.push((name.clone(), None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        AliasSpec, JoinSpec, MemberMac, MemberSpec, PortSpec, ServiceOptions, ServiceSpec,
    };
    use clua_pipeline::snapshot::{Encap, PortRole};
    use std::net::Ipv4Addr;

    fn r(lo: u16, hi: u16) -> PortRange {
        PortRange::new(lo, hi).unwrap()
    }

    fn cluster(members: &[(&str, bool, Option<PortRange>)]) -> Cluster {
        let member = |(name, agent, out_alias): &(&str, bool, Option<PortRange>)| MemberSpec {
            name: name.to_string(),
            port: "ic0".into(),
            address: Ipv4Addr::new(192, 0, 2, 11),
            mac: MemberMac::Configured([2, 0, 0, 0, 1, 1]),
            encap: Encap::L2,
            up: true,
            agent: *agent,
            listening: None,
            out_alias: *out_alias,
        };
        let opts = |words: &[&str]| {
            let mut o = ServiceOptions::default();
            for w in words {
                o.set(w).unwrap();
            }
            o
        };
        Cluster {
            name: "lab".into(),
            default_alias: "cluster".into(),
            max_aliases: 8,
            ports: vec![PortSpec {
                name: "ic0".into(),
                role: PortRole::Interconnect,
                address: None,
                mtu: 1500,
                mac: None,
                flow_source: None,
            }],
            members: members.iter().map(member).collect(),
            aliases: vec![
                AliasSpec {
                    name: "web".into(),
                    address: Ipv4Addr::new(198, 51, 100, 101),
                    members: vec![],
                    rpri: 1,
                    virtual_subnet: false,
                    mask: None,
                    vmac: false,
                },
                AliasSpec {
                    name: "cluster".into(),
                    address: Ipv4Addr::new(198, 51, 100, 100),
                    members: vec![JoinSpec {
                        member: "m1".into(),
                        selw: 1,
                        selp: 1,
                        joined: true,
                    }],
                    rpri: 1,
                    virtual_subnet: false,
                    mask: None,
                    vmac: false,
                },
            ],
            services: vec![
                ServiceSpec {
                    name: "telnet".into(),
                    port: 23,
                    proto: Proto::Tcp,
                    options: opts(&["in_multi", "out_alias"]),
                },
                ServiceSpec {
                    name: "x".into(),
                    port: 6000,
                    proto: Proto::Tcp,
                    options: opts(&["out_alias", "static"]),
                },
                ServiceSpec {
                    name: "hold".into(),
                    port: 40003,
                    proto: Proto::Udp,
                    options: opts(&["static"]),
                },
            ],
            advert_port: 0,
        }
    }

    #[test]
    fn static_ranges_first_then_agents_in_order() {
        let c = cluster(&[
            ("a1", true, Some(r(61000, 61999))),
            ("s1", false, Some(r(61500, 62499))),
            ("a2", true, Some(r(62000, 62999))),
            ("a3", true, Some(r(63000, 63999))),
            ("a4", true, None),
            ("a5", true, Some(r(63999, 64100))),
        ]);
        let got = ranges(&c);
        assert_eq!(got.used, vec![(1, r(61500, 62499)), (3, r(63000, 63999))]);
        assert_eq!(got.refused.len(), 3);
        assert_eq!(
            got.of(0).to_string(),
            "refused: out_alias ports 61000-61999 overlap member s1's 61500-62499"
        );
        assert_eq!(
            got.of(2).to_string(),
            "refused: out_alias ports 62000-62999 overlap member s1's 61500-62499"
        );
        assert_eq!(
            got.of(5).to_string(),
            "refused: out_alias ports 63999-64100 overlap member a3's 63000-63999"
        );
        assert_eq!(got.of(4), RangeState::None);
        assert_eq!(got.of(3), RangeState::Used(r(63000, 63999)));
        // Agents' conflicts are not configuration errors; the table holds the used ranges.
        assert!(configured_problems(&c).is_empty());
        let t = table(&c).unwrap();
        assert_eq!(t.alias(), Some(AliasId(1)), "the default alias `cluster`");
        assert_eq!(t.member_for(62000), Some(MemberId(1)));
        assert_eq!(t.member_for(63500), Some(MemberId(3)));
        assert_eq!(t.member_for(61000), None);
        assert_eq!(out_alias_ports(&c), vec![(6, 23), (6, 6000)]);
    }

    #[test]
    fn ranges_holding_a_service_port_are_refused() {
        let c = cluster(&[
            ("s1", false, Some(r(40000, 40009))),
            ("s2", false, Some(r(5000, 6000))),
            ("s3", false, Some(r(20, 30))),
            ("s4", false, Some(r(41000, 41999))),
            ("s5", false, Some(r(41999, 42000))),
        ]);
        let p: Vec<String> = configured_problems(&c)
            .iter()
            .map(|(i, w)| format!("{i}: {w}"))
            .collect();
        assert_eq!(
            p,
            vec![
                "0: out_alias ports 40000-40009 include 40003/udp (`hold` in clua_services, static); ranges must hold no service port",
                "1: out_alias ports 5000-6000 include 6000/tcp (`x` in clua_services, static); ranges must hold no service port",
                "2: out_alias ports 20-30 include 23/tcp (`telnet` in clua_services); ranges must hold no service port",
                "4: out_alias ports 41999-42000 overlap member s4's 41000-41999",
            ]
        );
    }

    #[test]
    fn refusal_changes_are_reported_once() {
        let old = cluster(&[("s1", false, Some(r(61000, 61999))), ("a1", true, None)]);
        let new = cluster(&[
            ("s1", false, Some(r(61000, 61999))),
            ("a1", true, Some(r(61900, 62999))),
        ]);
        let ch = refusal_changes(&old, &new);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].0, "a1");
        assert!(ch[0].1.is_some());
        assert!(refusal_changes(&new, &new).is_empty());
        let fixed = cluster(&[
            ("s1", false, Some(r(61000, 61999))),
            ("a1", true, Some(r(62000, 62999))),
        ]);
        assert_eq!(
            refusal_changes(&new, &fixed),
            vec![("a1".to_string(), None)]
        );
        // No default alias: nothing is steered.
        let mut c = fixed.clone();
        c.default_alias = "nope".into();
        assert!(table(&c).unwrap().is_empty());
    }
}
