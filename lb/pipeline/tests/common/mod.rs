//! Shared by the integration tests: the golden topology and frame builders.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use clua_pipeline::snapshot::{Policy, ServicePolicy, ServiceSpec};
use clua_pipeline::wire::checksum::checksum;
use clua_pipeline::{
    AliasMember, Encap, Member, MemberId, PortInfo, PortRole, ServiceMode, Snapshot,
};

pub fn port(name: &str, role: PortRole, mac_last: u8, ip: [u8; 4], plen: u8, mtu: u16) -> PortInfo {
    PortInfo {
        name: name.into(),
        role,
        mac: [0x02, 0, 0, 0, 0, mac_last],
        ipv4: Some(Ipv4Addr::from(ip)),
        prefix_len: plen,
        mtu,
        flow_source: None,
    }
}

pub fn member(id: u32, port: u16, ip: [u8; 4], mac: [u8; 6], encap: Encap) -> Option<Member> {
    Some(Member {
        id: MemberId(id),
        name: format!("m{}", id + 1),
        port,
        mac,
        ipv4: Ipv4Addr::from(ip),
        encap,
        up: true,
        listening: None,
    })
}

pub fn am(id: u32, selw: u32) -> AliasMember {
    AliasMember {
        member: MemberId(id),
        selw,
        selp: 1,
    }
}

pub fn amp(id: u32, selw: u32, selp: u32) -> AliasMember {
    AliasMember {
        member: MemberId(id),
        selw,
        selp,
    }
}

/// The golden topology (see golden.txt); member adverts on udp/9471.
pub fn topology() -> Snapshot {
    topology_with(1, [true; 4], vec![am(0, 3), am(1, 2), am(2, 1)])
}

/// The golden topology with the services of fixtures/policies.txt (issue 9): tcp/80 sticky,
/// tcp/21 wildcard_sticky, udp/53 weighted (all in_multi), tcp/513 and udp/513 in_noalias.
pub fn policy_topology() -> Snapshot {
    let s = build_topology(
        1,
        [true; 4],
        vec![am(0, 3), am(1, 2), am(2, 1)],
        &[(6, 21, ServiceMode::InMulti)],
    );
    let policy = |proto, port, policy| ServicePolicy {
        proto,
        port,
        policy,
    };
    s.with_policies(&[
        policy(6, 80, Policy::Sticky),
        policy(6, 21, Policy::WildcardSticky),
        policy(17, 53, Policy::Weighted),
    ])
    .expect("policy topology")
}

/// The golden topology with out_alias (CA9; fixtures/out_alias.txt): tcp/6000 and udp/123
/// flagged out_alias, the default alias `cluster` (198.51.100.99), m1's range 61000-61999,
/// m2's 62000-62999.
pub fn out_alias_topology() -> Snapshot {
    use clua_pipeline::out_alias::{OutAliasTable, PortRange};
    use clua_pipeline::AliasId;
    let table = OutAliasTable::new(
        AliasId(0),
        vec![
            (PortRange::new(61000, 61999).unwrap(), MemberId(0)),
            (PortRange::new(62000, 62999).unwrap(), MemberId(1)),
        ],
    )
    .expect("disjoint ranges");
    topology()
        .with_out_alias(&[(6, 6000), (17, 123)], table)
        .expect("out_alias topology")
}

/// The golden topology with members' up flags and the `web` alias's members replaced.
pub fn topology_with(generation: u64, up: [bool; 4], web: Vec<AliasMember>) -> Snapshot {
    build_topology(generation, up, web, &[])
}

/// The golden topology with `extra` services (proto, port, mode) beside the usual ones.
fn build_topology(
    generation: u64,
    up: [bool; 4],
    web: Vec<AliasMember>,
    extra: &[(u8, u16, ServiceMode)],
) -> Snapshot {
    let ports = vec![
        port("client", PortRole::Client, 1, [198, 51, 100, 2], 24, 1500),
        port("ic0", PortRole::Interconnect, 2, [192, 0, 2, 2], 25, 1600),
        port("ic1", PortRole::Interconnect, 3, [192, 0, 2, 130], 25, 1600),
    ];
    let members = vec![
        member(0, 1, [192, 0, 2, 11], [2, 0, 0, 0, 1, 1], Encap::L2),
        member(1, 1, [192, 0, 2, 12], [2, 0, 0, 0, 1, 2], Encap::L2),
        member(2, 1, [192, 0, 2, 13], [2, 0, 0, 0, 1, 3], Encap::Ipip),
        member(
            3,
            2,
            [192, 0, 2, 141],
            [2, 0, 0, 0, 2, 1],
            Encap::Vxlan {
                vni: 42,
                inner_mac: [2, 0, 0, 0, 2, 0x81],
                udp_port: 4789,
            },
        ),
    ];
    let mut members = members;
    for (m, up) in members.iter_mut().zip(up) {
        m.as_mut().unwrap().up = up;
    }
    let aliases = vec![
        (
            "cluster".to_string(),
            Ipv4Addr::new(198, 51, 100, 99),
            vec![am(0, 1), am(1, 1), am(2, 1), am(3, 1)],
        ),
        ("web".to_string(), Ipv4Addr::new(198, 51, 100, 100), web),
        (
            "tun".to_string(),
            Ipv4Addr::new(198, 51, 100, 101),
            vec![am(2, 1)],
        ),
        (
            "vx".to_string(),
            Ipv4Addr::new(198, 51, 100, 102),
            vec![am(3, 1)],
        ),
        // Routed for, joined by no member (CA2): new flows to it are no_member.
        (
            "spare".to_string(),
            Ipv4Addr::new(198, 51, 100, 103),
            vec![],
        ),
    ];
    let mut services = vec![
        ServiceSpec {
            proto: 6,
            port: 80,
            mode: ServiceMode::InMulti,
        },
        ServiceSpec {
            proto: 17,
            port: 53,
            mode: ServiceMode::InMulti,
        },
        ServiceSpec {
            proto: 6,
            port: 513,
            mode: ServiceMode::InNoalias,
        },
        ServiceSpec {
            proto: 17,
            port: 513,
            mode: ServiceMode::InNoalias,
        },
    ];
    services.extend(
        extra
            .iter()
            .map(|&(proto, port, mode)| ServiceSpec { proto, port, mode }),
    );
    Snapshot::build(generation, ports, members, aliases, &services)
        .expect("golden topology")
        .with_advert_port(9471)
}

/// The router's MAC on the client port.
pub const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
/// The client's MAC.
pub const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
/// The client's address.
pub const CLIENT: [u8; 4] = [198, 51, 100, 10];
/// The web alias.
pub const WEB: [u8; 4] = [198, 51, 100, 100];
/// The tun alias.
pub const TUN: [u8; 4] = [198, 51, 100, 101];
/// The vx alias.
pub const VX: [u8; 4] = [198, 51, 100, 102];
/// The spare alias (no members).
pub const SPARE: [u8; 4] = [198, 51, 100, 103];

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// An Ethernet + IPv4 frame from the client to the router, carrying `l4` (TTL 64, DF).
pub fn ipv4_frame(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + l4.len());
    f.extend_from_slice(&ROUTER_MAC);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&[0x12, 0x34]);
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

/// A TCP segment (20-byte header, no payload) from the client.
pub fn tcp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&1u32.to_be_bytes());
    t[12] = 0x50;
    t[13] = flags;
    t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    ipv4_frame(src, dst, 6, &t)
}

/// An ARP request from the client for `target` (broadcast, 42 bytes, no padding).
pub fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&CLIENT);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// A UDP datagram from the client.
pub fn udp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    ipv4_frame(src, dst, 17, &u)
}
