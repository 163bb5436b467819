//! What the router advertises by RIP (CA6; seed 000 §6.5, §6.6.1–6.6.4, Table 6-1; 001 §6.6).
//!
//! - A host route (/32) for every alias the router specifies: every alias in
//!   `state.cluster.aliases`, joined or not (a router routes for an alias it only specifies,
//!   seed 000 §6.6.1, CA2), common subnet or virtual alike (Table 6-1: host route "Yes" for both).
//! - For a `virtual` alias with a mask, also the network route `address & mask / len(mask)`
//!   (Table 6-1, §6.6.3). A virtual alias without a mask gets its host route only: the router has
//!   no subnet to announce, and guessing one (a classful /24?) could capture addresses that are
//!   not the cluster's.
//! - An alias in RFC 1918 space (10/8, 172.16/12, 192.168/16) only once `cluamgr -r resvok` set
//!   `ControlState::resvok` (§6.5).
//! - Never a broadcast address (255.255.255.255, any port subnet's broadcast or network address), a multicast or
//!   class E address, 0/8, loopback, nor an address inside an interconnect port's subnet (§6.5:
//!   "should not be a broadcast address or a multicast address, nor should it reside in the
//!   subnet used by the cluster interconnect"). A network route is dropped when it overlaps any of
//!   these ranges, an interconnect subnet, or (without resvok) RFC 1918 space, and a /0 is never
//!   sent: a virtual alias's mask must not turn into a default route.
//!
//! The validator refuses most of these addresses already ([`crate::model::alias_address_problem`]);
//! this policy does not rely on it, because what goes on the wire is the last place to stop a
//! route that would pull other hosts' traffic to the cluster.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use clua_pipeline::snapshot::PortRole;

use super::wire::{len_of, mask_of};
use super::RipRoute;
use crate::apply::ControlState;

/// A prefix as (network, len), for overlap tests.
type Net = (u32, u8);

/// RFC 1918 private space.
const RFC1918: [Net; 3] = [(0x0a00_0000, 8), (0xac10_0000, 12), (0xc0a8_0000, 16)];
/// Never advertised: "this network" 0/8, loopback, multicast, class E (with the limited
/// broadcast address).
const NEVER: [Net; 3] = [(0, 8), (0x7f00_0000, 8), (0xe000_0000, 3)];

fn overlaps(a: Net, b: Net) -> bool {
    let len = a.1.min(b.1);
    a.0 & mask_of(len) == b.0 & mask_of(len)
}

/// The routes `state` asks this router to advertise (CA6), each with metric 1 when sent.
///
/// Only aliases some member serves are advertised: at least one joined member that is up. An
/// alias nobody serves would draw traffic (through the upstream's ECMP) that the router can
/// only drop, so its routes are withdrawn (metric 16) when its last member leaves or goes down,
/// and come back when one joins or comes up. The router still routes for it otherwise (CA2:
/// proxy ARP, ICMP in alias context).
pub fn routes(state: &ControlState) -> BTreeSet<RipRoute> {
    let ports = &state.cluster.ports;
    let interconnects: Vec<Net> = ports
        .iter()
        .filter(|p| p.role == PortRole::Interconnect)
        .filter_map(|p| p.address)
        .map(|p| (p.network(), p.len))
        .collect();
    // A subnet's network address was its broadcast address for 4.2BSD hosts; neither is a host.
    let broadcasts: Vec<u32> = ports
        .iter()
        .filter_map(|p| p.address)
        .filter(|p| p.len < 31)
        .flat_map(|p| [p.broadcast(), p.network()])
        .collect();
    let forbidden = |net: Net| {
        net.1 == 0
            || NEVER.iter().any(|&n| overlaps(n, net))
            || interconnects.iter().any(|&n| overlaps(n, net))
            || (!state.resvok && RFC1918.iter().any(|&n| overlaps(n, net)))
            || (net.1 == 32 && broadcasts.contains(&net.0))
    };
    let serving = |alias: &crate::model::AliasSpec| {
        alias.joined().any(|j| {
            state
                .cluster
                .members
                .iter()
                .any(|m| m.name == j.member && m.up)
        })
    };
    let mut out = BTreeSet::new();
    for alias in &state.cluster.aliases {
        let a = u32::from(alias.address);
        if forbidden((a, 32)) || !serving(alias) {
            continue;
        }
        out.insert(RipRoute {
            prefix: alias.address,
            len: 32,
        });
        if !alias.virtual_subnet {
            continue;
        }
        let Some(len) = alias.mask.and_then(|m| len_of(u32::from(m))) else {
            continue;
        };
        let net = a & mask_of(len);
        if !forbidden((net, len)) {
            out.insert(RipRoute {
                prefix: Ipv4Addr::from(net),
                len,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AliasSpec, Cluster, JoinSpec, MemberMac, MemberSpec, PortSpec, Prefix};
    use clua_pipeline::snapshot::Encap;

    fn port(name: &str, role: PortRole, addr: [u8; 4], len: u8) -> PortSpec {
        PortSpec {
            name: name.into(),
            role,
            address: Some(Prefix {
                addr: addr.into(),
                len,
            }),
            mtu: 1500,
            mac: None,
            flow_source: None,
        }
    }

    fn alias(name: &str, addr: [u8; 4], virtual_subnet: bool, mask: Option<[u8; 4]>) -> AliasSpec {
        // Served by m1 (up), so that only the CA6 rules decide.
        AliasSpec {
            name: name.into(),
            address: addr.into(),
            members: vec![JoinSpec {
                member: "m1".into(),
                selw: 1,
                selp: 1,
                joined: true,
            }],
            rpri: 1,
            virtual_subnet,
            mask: mask.map(Ipv4Addr::from),
            vmac: false,
        }
    }

    /// A router with a client port on 198.51.100.0/24 and the interconnect 192.0.2.0/24. The
    /// cluster is not validated: the policy must hold on its own.
    fn state(aliases: Vec<AliasSpec>, resvok: bool) -> ControlState {
        ControlState {
            cluster: Cluster {
                name: "t".into(),
                default_alias: "cluster".into(),
                max_aliases: 64,
                ports: vec![
                    port("client", PortRole::Client, [198, 51, 100, 2], 24),
                    port("ic0", PortRole::Interconnect, [192, 0, 2, 2], 24),
                ],
                members: vec![MemberSpec {
                    name: "m1".into(),
                    port: "ic0".into(),
                    address: [192, 0, 2, 11].into(),
                    mac: MemberMac::Configured([2, 0, 0, 0, 1, 1]),
                    encap: Encap::L2,
                    up: true,
                    agent: false,
                    listening: None,
                    out_alias: None,
                }],
                aliases,
                services: vec![],
                advert_port: 9471,
            },
            services_file: None,
            resvok,
        }
    }

    fn r(a: [u8; 4], len: u8) -> RipRoute {
        RipRoute {
            prefix: a.into(),
            len,
        }
    }

    fn got(aliases: Vec<AliasSpec>, resvok: bool) -> Vec<RipRoute> {
        routes(&state(aliases, resvok)).into_iter().collect()
    }

    /// An alias nobody serves (no joined member up) is not advertised: upstream ECMP would send
    /// traffic the router can only drop. It comes back when a member is up and joined again.
    #[test]
    fn only_aliases_a_member_serves_are_advertised() {
        let web = || alias("web", [198, 51, 100, 100], false, None);
        let mut st = state(vec![web()], false);
        assert_eq!(routes(&st).len(), 1);
        st.cluster.members[0].up = false;
        assert!(routes(&st).is_empty(), "its only member is down");
        st.cluster.members[0].up = true;
        st.cluster.aliases[0].members[0].joined = false;
        assert!(routes(&st).is_empty(), "its only member left");
        st.cluster.aliases[0].members.clear();
        assert!(routes(&st).is_empty(), "no member at all");
        st.cluster.aliases[0].members = web().members;
        assert_eq!(routes(&st).len(), 1);
    }

    #[test]
    fn ca6_host_route_for_every_served_alias() {
        let v = got(
            vec![
                alias("cluster", [198, 51, 100, 99], false, None),
                alias("web", [198, 51, 100, 100], false, Some([255, 255, 255, 0])),
            ],
            false,
        );
        // The common-subnet alias's mask brings no network route (Table 6-1: "No").
        assert_eq!(
            v,
            vec![r([198, 51, 100, 99], 32), r([198, 51, 100, 100], 32)]
        );
    }

    #[test]
    fn ca6_virtual_alias_gets_host_and_network_route() {
        let v = got(
            vec![alias("v", [203, 0, 113, 5], true, Some([255, 255, 255, 0]))],
            false,
        );
        assert_eq!(v, vec![r([203, 0, 113, 0], 24), r([203, 0, 113, 5], 32)]);
        // Two aliases of one virtual subnet give one network route.
        let v = got(
            vec![
                alias("v", [203, 0, 113, 5], true, Some([255, 255, 255, 128])),
                alias("w", [203, 0, 113, 6], true, Some([255, 255, 255, 128])),
            ],
            false,
        );
        assert_eq!(
            v,
            vec![
                r([203, 0, 113, 0], 25),
                r([203, 0, 113, 5], 32),
                r([203, 0, 113, 6], 32)
            ]
        );
    }

    #[test]
    fn ca6_virtual_alias_without_or_with_bad_mask_gets_host_route_only() {
        let v = got(vec![alias("v", [203, 0, 113, 5], true, None)], false);
        assert_eq!(v, vec![r([203, 0, 113, 5], 32)]);
        // A non-contiguous mask (the grammar refuses it; the policy still does not guess).
        let v = got(
            vec![alias("v", [203, 0, 113, 5], true, Some([255, 0, 255, 0]))],
            false,
        );
        assert_eq!(v, vec![r([203, 0, 113, 5], 32)]);
        // A mask that would make a default route, or one reaching multicast space.
        let v = got(
            vec![alias("v", [203, 0, 113, 5], true, Some([0; 4]))],
            false,
        );
        assert_eq!(v, vec![r([203, 0, 113, 5], 32)]);
        let v = got(
            vec![alias("v", [203, 0, 113, 5], true, Some([128, 0, 0, 0]))],
            false,
        );
        assert_eq!(v, vec![r([203, 0, 113, 5], 32)]);
    }

    #[test]
    fn ca6_rfc1918_aliases_only_with_resvok() {
        let aliases = || {
            vec![
                alias("a", [10, 1, 2, 3], false, None),
                alias("b", [172, 16, 0, 9], false, None),
                alias("c", [172, 31, 255, 1], true, Some([255, 255, 255, 0])),
                alias("d", [192, 168, 7, 7], false, None),
                alias("e", [172, 32, 0, 1], false, None), // just outside 172.16/12
                alias("f", [203, 0, 113, 5], false, None),
            ]
        };
        assert_eq!(
            got(aliases(), false),
            vec![r([172, 32, 0, 1], 32), r([203, 0, 113, 5], 32)]
        );
        assert_eq!(
            got(aliases(), true),
            vec![
                r([10, 1, 2, 3], 32),
                r([172, 16, 0, 9], 32),
                r([172, 31, 255, 0], 24),
                r([172, 31, 255, 1], 32),
                r([172, 32, 0, 1], 32),
                r([192, 168, 7, 7], 32),
                r([203, 0, 113, 5], 32)
            ]
        );
        // A public virtual alias whose network route would swallow 10/8 needs resvok too.
        let wide = || vec![alias("w", [11, 0, 0, 1], true, Some([254, 0, 0, 0]))];
        assert_eq!(got(wide(), false), vec![r([11, 0, 0, 1], 32)]);
        assert_eq!(
            got(wide(), true),
            vec![r([10, 0, 0, 0], 7), r([11, 0, 0, 1], 32)]
        );
    }

    #[test]
    fn ca6_never_broadcast_multicast_loopback_zero_net_or_class_e() {
        let bad = [
            [255, 255, 255, 255],
            [198, 51, 100, 255], // the client port's subnet broadcast
            [198, 51, 100, 0],   // and its network address
            [224, 0, 0, 9],
            [239, 1, 2, 3],
            [127, 0, 0, 1],
            [0, 0, 0, 0],
            [0, 1, 2, 3],
            [240, 0, 0, 1],
        ];
        for a in bad {
            let v = got(vec![alias("x", a, true, Some([255, 255, 255, 0]))], true);
            assert!(v.is_empty(), "{a:?} advertised: {v:?}");
        }
    }

    #[test]
    fn ca6_never_interconnect_addresses() {
        let v = got(
            vec![
                alias("ic", [192, 0, 2, 50], false, None),
                // A virtual subnet that contains the interconnect: the network route is dropped.
                alias("v", [192, 0, 3, 1], true, Some([255, 255, 252, 0])),
            ],
            true,
        );
        assert_eq!(v, vec![r([192, 0, 3, 1], 32)]);
        // A client-port subnet is fine (common-subnet aliases live there, CA4).
        let v = got(vec![alias("web", [198, 51, 100, 100], false, None)], false);
        assert_eq!(v, vec![r([198, 51, 100, 100], 32)]);
    }
}
