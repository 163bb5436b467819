//! Classify: parse L2/L3/L4 and decide what a received frame is.
//!
//! For each frame, in this order (the first rule that applies wins):
//!
//! 1. The rx port must be in the snapshot, else [`DropReason::WrongPort`].
//! 2. [`parse_l2`]: shorter than its Ethernet (+ tag) header → `Truncated`; QinQ or stacked
//!    tags → `UnsupportedEthertype`. One 802.1Q tag is accepted (and removed by encap).
//! 3. The destination MAC must be the rx port's MAC, broadcast, or one the snapshot says the
//!    port accepts ([`Snapshot::accepts_mac`]: its vMACs, RIP's multicast MAC), else `WrongPort`.
//! 4. ARP → [`PuntReason::Arp`]; anything but ARP and IPv4 → `UnsupportedEthertype`.
//! 5. IPv4 header: shorter than 20 bytes or than its total length → `Truncated`; bad version,
//!    header length, total length or checksum → `BadIpv4Header`. The checksum is verified only
//!    when [`ClassifyConfig::checksum`]`.ipv4.rx()` (not when the NIC has, nor when fuzzing).
//! 6. Routing protocols (issue 8, when the snapshot's [`ControlPorts`](crate::snapshot::ControlPorts)
//!    enable them; unfragmented UDP with a valid header): router messages on an interconnect
//!    port to a router address or broadcast → [`PuntReason::Router`]; RIP (520) on a client
//!    port to its address, broadcast or 224.0.0.9 → [`PuntReason::Rip`]; BFD (3784) on a client
//!    port to its address → [`PuntReason::Bfd`]. Any other broadcast or RIP-multicast
//!    destination MAC (with IPv4) → `NotAlias`.
//! 7. Destination address neither an alias nor one of the router's own → `NotAlias`.
//! 8. Fragment (MF set or offset ≠ 0; issue 10, [`crate::fragments`]): to a router address,
//!    or ICMP → `Fragment`; TCP or UDP to an alias → alias traffic with
//!    [`PacketMeta::frag`] set. A first fragment (offset 0) must hold its whole TCP header or
//!    UDP's 8 bytes and yields its flow like a whole packet (source port 0 → `SourcePortZero`);
//!    a later one yields no ports (select leaves it to the fragment table). A first fragment
//!    too short, or a TCP fragment at offset 8 (RFC 1858 §4) → `FragmentMalformed`; other
//!    protocols → `UnsupportedProtocol`.
//! 9. ICMP echo request (type 8) to an alias or a router address → [`PuntReason::IcmpEcho`]
//!    (CA7: ICMP is handled in alias context); a truncated ICMP header → `BadL4Header`; other
//!    ICMP to a router address → `NotAlias`. An ICMP error (destination unreachable, time
//!    exceeded, parameter problem) to an alias is alias traffic of the flow it quotes
//!    ([`crate::icmp_error::quoted_flow`]: the reversed quoted 5-tuple, with
//!    [`PacketMeta::icmp_error`] set), or an `icmp_error_*` drop; other ICMP to an alias →
//!    `UnsupportedIcmp`.
//! 10. To a router address (not an alias): a UDP datagram (valid header) to
//!     [`Snapshot::advert_port`] (when non-zero) received on an interconnect port →
//!     [`PuntReason::MemberAdvert`]; on a client port, and anything else → `NotAlias` (members
//!     advertise over the interconnect only). TCP (valid header) to a port in
//!     [`PROBE_PORTS`] received on an interconnect port → [`PuntReason::Probe`] (the answer to
//!     a static member's health probe, issue 10).
//! 11. TCP and UDP to an alias: the header must pass `new_checked` (`BadL4Header`); other
//!     protocols → `UnsupportedProtocol`; source port 0 → `SourcePortZero` (reserved, and the
//!     source port of the connection table's sticky-affinity keys, see `crate::select`).
//!
//! The output is a [`PacketMeta`]: the flow key and its hash (keyed with
//! [`ClassifyConfig::hash_key`], see [`crate::hash`]), TCP flags, where the IP header is, and
//! the alias. L4 checksums are not checked: the members verify them.

use crate::fragments::{Frag, FragKind};
use crate::hash::{FlowHashKey, FlowKey};
use crate::icmp_error;
use crate::snapshot::{
    AliasId, MemberId, PortId, PortInfo, PortRole, Snapshot, BFD_PORT, PROBE_PORTS,
    RIP_MULTICAST_MAC, RIP_PORT,
};
use crate::verdict::{DropReason, PuntReason, Verdict};
use crate::wire::checksum::ChecksumCapabilities;
use crate::wire::ethernet::{self, is_broadcast, parse_l2, EtherType, EthernetFrame};
use crate::wire::icmpv4::{Icmpv4Packet, ECHO_REQUEST};
use crate::wire::ipv4::{protocol, Ipv4Packet};
use crate::wire::tcp::{TcpFlags, TcpPacket};
use crate::wire::udp::UdpPacket;
use crate::wire::WireError;

/// TCP FIN flag ([`TcpFlags::FIN`]).
pub const TCP_FIN: u8 = TcpFlags::FIN;
/// TCP SYN flag ([`TcpFlags::SYN`]).
pub const TCP_SYN: u8 = TcpFlags::SYN;
/// TCP RST flag ([`TcpFlags::RST`]).
pub const TCP_RST: u8 = TcpFlags::RST;
/// TCP ACK flag ([`TcpFlags::ACK`]).
pub const TCP_ACK: u8 = TcpFlags::ACK;

/// What classify takes from the pipeline's configuration
/// ([`PipelineConfig`](crate::PipelineConfig)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassifyConfig {
    /// The IPv4 header checksum is verified when `checksum.ipv4.rx()`.
    pub checksum: ChecksumCapabilities,
    /// The key of [`PacketMeta::hash`]: the connection table's.
    pub hash_key: FlowHashKey,
}

/// What classify learned about a packet that goes on to select and encap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// The flow (client address and port → alias address and port, protocol).
    pub key: FlowKey,
    /// `key.hash_keyed(hash_key)`, computed once: places the flow in the connection table and,
    /// without an RSS hash, spreads outer sources and VXLAN source ports.
    pub hash: u32,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
    /// The TCP sequence number (0 for UDP): on a SYN, the initial sequence number, which tells a
    /// retransmitted SYN from a new connection on a reused 4-tuple.
    pub tcp_seq: u32,
    /// Offset of the IPv4 header in the frame (14, or 18 behind an 802.1Q tag).
    pub l3_offset: u16,
    /// The IPv4 total length (the frame may carry Ethernet padding after it).
    pub ip_len: u16,
    /// The alias the packet is addressed to.
    pub alias: AliasId,
    /// Filled in by select (for a later fragment: by the fragment table).
    pub member: MemberId,
    /// An ICMP error to the alias quoting a packet of `key`'s flow (CA7, [`crate::icmp_error`]):
    /// select finds the flow's owner without writing any state, encap treats it as the flow's.
    pub icmp_error: bool,
    /// Where in its datagram the packet is (issue 10); [`FragKind::Whole`] for most.
    pub frag: Frag,
}

impl Default for PacketMeta {
    fn default() -> Self {
        PacketMeta {
            key: FlowKey::default(),
            hash: 0,
            tcp_flags: 0,
            tcp_seq: 0,
            l3_offset: ethernet::HEADER_LEN as u16,
            ip_len: 0,
            alias: AliasId(0),
            member: MemberId(0),
            icmp_error: false,
            frag: Frag::default(),
        }
    }
}

#[inline(always)]
fn drop(reason: DropReason) -> Verdict {
    Verdict::Drop(reason)
}

/// [`classify_with`] under the default [`ClassifyConfig`] (software checksums, the fixed hash
/// key): for tests and tools.
/// The routing protocols' datagrams (issue 8): router messages on an interconnect port (to a
/// router address or broadcast), RIP on a client port (to the router's address, broadcast or
/// 224.0.0.9), BFD on a client port (to the router's address). Unfragmented UDP with a valid
/// header only; the control plane checks the rest (authentication, TTL, subnet).
#[inline]
fn control_punt(
    snap: &Snapshot,
    port: &PortInfo,
    broadcast: bool,
    dst: u32,
    ip: &Ipv4Packet<&[u8]>,
) -> Option<PuntReason> {
    let c = snap.control;
    if ip.next_header() != protocol::UDP
        || (c.router == 0 && c.sync == 0 && !c.rip && !c.bfd)
        || ip.more_frags()
        || ip.frag_offset() != 0
    {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    let own = port.ipv4.map(u32::from) == Some(dst);
    let subnet_broadcast = port.ipv4.is_some_and(|a| {
        let mask = if port.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - port.prefix_len as u32)
        };
        dst == u32::from(a) | !mask
    });
    let to_all = broadcast && (dst == u32::MAX || subnet_broadcast);
    match port.role {
        PortRole::Interconnect if c.router != 0 && udp.dst_port() == c.router => {
            (own || to_all || snap.is_router_addr(dst)).then_some(PuntReason::Router)
        }
        PortRole::Interconnect if c.sync != 0 && udp.dst_port() == c.sync => {
            (own || to_all || snap.is_router_addr(dst)).then_some(PuntReason::Sync)
        }
        PortRole::Client if c.rip && udp.dst_port() == RIP_PORT => {
            (own || to_all || dst == RIP_MULTICAST_ADDR).then_some(PuntReason::Rip)
        }
        PortRole::Client if c.bfd && udp.dst_port() == BFD_PORT => own.then_some(PuntReason::Bfd),
        _ => None,
    }
}

/// 224.0.0.9, RIPv2's multicast group.
const RIP_MULTICAST_ADDR: u32 = 0xe000_0009;

#[inline]
pub fn classify(snap: &Snapshot, rx_port: PortId, frame: &[u8]) -> Result<PacketMeta, Verdict> {
    classify_with(&ClassifyConfig::default(), snap, rx_port, frame)
}

/// Classifies one frame received on `rx_port`. `Ok` means "alias traffic for select";
/// `Err` carries the final verdict (a drop or a punt).
#[inline]
pub fn classify_with(
    cfg: &ClassifyConfig,
    snap: &Snapshot,
    rx_port: PortId,
    frame: &[u8],
) -> Result<PacketMeta, Verdict> {
    let Some(port) = snap.ports.get(rx_port as usize) else {
        return Err(drop(DropReason::WrongPort));
    };
    let l2 = match parse_l2(frame) {
        Ok(l2) => l2,
        Err(WireError::Truncated) => return Err(drop(DropReason::Truncated)),
        Err(WireError::Malformed) => return Err(drop(DropReason::UnsupportedEthertype)),
    };
    // parse_l2 succeeded, so the frame holds a full Ethernet header.
    let dst_mac = EthernetFrame::new_unchecked(frame).dst_addr();
    let broadcast = is_broadcast(&dst_mac);
    if dst_mac != port.mac && !broadcast && !snap.accepts_mac(rx_port, &dst_mac) {
        return Err(drop(DropReason::WrongPort));
    }
    match l2.ethertype {
        EtherType::IPV4 => {}
        EtherType::ARP => return Err(Verdict::Punt(PuntReason::Arp)),
        _ => return Err(drop(DropReason::UnsupportedEthertype)),
    }
    let l3 = frame.get(l2.l3_offset..).unwrap_or(&[]);
    let ip = match Ipv4Packet::new_checked(l3) {
        Ok(ip) => ip,
        Err(WireError::Truncated) => return Err(drop(DropReason::Truncated)),
        Err(WireError::Malformed) => return Err(drop(DropReason::BadIpv4Header)),
    };
    if cfg.checksum.ipv4.rx() && !ip.verify_checksum() {
        return Err(drop(DropReason::BadIpv4Header));
    }
    let dst = u32::from(ip.dst_addr());
    let alias = snap.alias_by_addr(dst);
    // Control datagrams are never to an alias, so alias traffic (the per-packet case) skips the
    // check.
    if alias.is_none() {
        if let Some(reason) = control_punt(snap, port, broadcast, dst, &ip) {
            return Err(Verdict::Punt(reason));
        }
    }
    if broadcast || dst_mac == RIP_MULTICAST_MAC {
        return Err(drop(DropReason::NotAlias));
    }
    if alias.is_none() && !snap.is_router_addr(dst) {
        return Err(drop(DropReason::NotAlias));
    }
    let proto = ip.next_header();
    if ip.is_fragment() {
        return match (alias, proto) {
            (Some(alias), protocol::TCP | protocol::UDP) => {
                classify_fragment(cfg, &ip, alias, l2.l3_offset)
            }
            (Some(_), p) if p != protocol::ICMP => Err(drop(DropReason::UnsupportedProtocol)),
            _ => Err(drop(DropReason::Fragment)),
        };
    }
    let payload = ip.payload();
    if proto == protocol::ICMP {
        let Ok(icmp) = Icmpv4Packet::new_checked(payload) else {
            return Err(drop(DropReason::BadL4Header));
        };
        if icmp.msg_type() == ECHO_REQUEST {
            return Err(Verdict::Punt(PuntReason::IcmpEcho));
        }
        let Some(alias) = alias else {
            return Err(drop(DropReason::NotAlias));
        };
        if !icmp_error::is_error(icmp.msg_type()) {
            return Err(drop(DropReason::UnsupportedIcmp));
        }
        let key = icmp_error::quoted_flow(dst, &icmp).map_err(drop)?;
        return Ok(PacketMeta {
            key,
            hash: key.hash_keyed(&cfg.hash_key),
            tcp_flags: 0,
            tcp_seq: 0,
            l3_offset: l2.l3_offset as u16,
            ip_len: ip.total_len(),
            alias,
            member: MemberId(0),
            icmp_error: true,
            frag: Frag::default(),
        });
    }
    let Some(alias) = alias else {
        if proto == protocol::UDP && snap.advert_port != 0 && port.role == PortRole::Interconnect {
            if let Ok(udp) = UdpPacket::new_checked(payload) {
                if udp.dst_port() == snap.advert_port {
                    return Err(Verdict::Punt(PuntReason::MemberAdvert));
                }
            }
        }
        // A health probe's answer (issue 10): members reply to the router's interconnect
        // address, to the probe's source port.
        if proto == protocol::TCP && port.role == PortRole::Interconnect {
            if let Ok(tcp) = TcpPacket::new_checked(payload) {
                if PROBE_PORTS.contains(&tcp.dst_port()) {
                    return Err(Verdict::Punt(PuntReason::Probe));
                }
            }
        }
        return Err(drop(DropReason::NotAlias));
    };
    let (src_port, dst_port, tcp_flags, tcp_seq) = match proto {
        protocol::TCP => match TcpPacket::new_checked(payload) {
            Ok(tcp) => (
                tcp.src_port(),
                tcp.dst_port(),
                tcp.flags(),
                tcp.seq_number(),
            ),
            Err(_) => return Err(drop(DropReason::BadL4Header)),
        },
        protocol::UDP => match UdpPacket::new_checked(payload) {
            Ok(udp) => (udp.src_port(), udp.dst_port(), 0, 0),
            Err(_) => return Err(drop(DropReason::BadL4Header)),
        },
        _ => return Err(drop(DropReason::UnsupportedProtocol)),
    };
    // Port 0 is reserved (RFC 6335 §6) and names the connection table's sticky affinities
    // (issue 9): a real packet must never share their keys.
    if src_port == 0 {
        return Err(drop(DropReason::SourcePortZero));
    }
    let key = FlowKey {
        src: u32::from(ip.src_addr()),
        dst,
        src_port,
        dst_port,
        proto,
    };
    Ok(PacketMeta {
        key,
        hash: key.hash_keyed(&cfg.hash_key),
        tcp_flags,
        tcp_seq,
        l3_offset: l2.l3_offset as u16,
        ip_len: ip.total_len(),
        alias,
        member: MemberId(0),
        icmp_error: false,
        frag: Frag::default(),
    })
}

/// A TCP or UDP fragment to `alias` (see rule 8 in the module docs).
#[inline]
fn classify_fragment(
    cfg: &ClassifyConfig,
    ip: &Ipv4Packet<&[u8]>,
    alias: AliasId,
    l3_offset: usize,
) -> Result<PacketMeta, Verdict> {
    let proto = ip.next_header();
    let payload = ip.payload();
    let offset = ip.frag_offset();
    let mut frag = Frag {
        kind: FragKind::Rest,
        id: ip.ident(),
        offset,
        // At most total_len − 20: fits.
        len: payload.len() as u16,
        more: ip.more_frags(),
    };
    let (src_port, dst_port, tcp_flags, tcp_seq) = if offset == 0 {
        frag.kind = FragKind::First;
        match proto {
            protocol::TCP => match TcpPacket::new_checked(payload) {
                Ok(tcp) => (
                    tcp.src_port(),
                    tcp.dst_port(),
                    tcp.flags(),
                    tcp.seq_number(),
                ),
                Err(_) => return Err(drop(DropReason::FragmentMalformed)),
            },
            // The UDP length field covers the whole datagram, so only the ports are read.
            _ => match payload.get(..4) {
                Some(p) => (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                    0,
                    0,
                ),
                None => return Err(drop(DropReason::FragmentMalformed)),
            },
        }
    } else {
        if proto == protocol::TCP && offset == 8 {
            return Err(drop(DropReason::FragmentMalformed));
        }
        (0, 0, 0, 0)
    };
    if frag.kind == FragKind::First && payload.len() < 8 {
        return Err(drop(DropReason::FragmentMalformed));
    }
    if frag.kind == FragKind::First && src_port == 0 {
        return Err(drop(DropReason::SourcePortZero));
    }
    let key = FlowKey {
        src: u32::from(ip.src_addr()),
        dst: u32::from(ip.dst_addr()),
        src_port,
        dst_port,
        proto,
    };
    Ok(PacketMeta {
        key,
        hash: key.hash_keyed(&cfg.hash_key),
        tcp_flags,
        tcp_seq,
        l3_offset: l3_offset as u16,
        ip_len: ip.total_len(),
        alias,
        member: MemberId(0),
        icmp_error: false,
        frag,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::snapshot::tests::{member, port};
    use crate::snapshot::{AliasMember, PortRole, ServiceSpec};
    use crate::wire::checksum::checksum;
    use std::net::Ipv4Addr;

    pub(crate) const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    pub(crate) const ALIAS: [u8; 4] = [198, 51, 100, 100];
    pub(crate) const CLIENT: [u8; 4] = [198, 51, 100, 10];

    /// client, ic0 (router .2 and 192.0.2.2); alias web = 198.51.100.100 with members 0, 1.
    pub(crate) fn snap() -> Snapshot {
        let ports = vec![
            port("client", PortRole::Client, 1, Some([198, 51, 100, 2])),
            port("ic0", PortRole::Interconnect, 2, Some([192, 0, 2, 2])),
        ];
        let ams = vec![
            AliasMember {
                member: MemberId(0),
                selw: 2,
                selp: 1,
            },
            AliasMember {
                member: MemberId(1),
                selw: 1,
                selp: 1,
            },
        ];
        Snapshot::build(
            1,
            ports,
            vec![member(0, true), member(1, true)],
            vec![("web".into(), Ipv4Addr::from(ALIAS), ams)],
            &[
                ServiceSpec {
                    proto: 6,
                    port: 80,
                    mode: crate::ServiceMode::InMulti,
                },
                ServiceSpec {
                    proto: 17,
                    port: 53,
                    mode: crate::ServiceMode::InMulti,
                },
                ServiceSpec {
                    proto: 6,
                    port: 513,
                    mode: crate::ServiceMode::InNoalias,
                },
            ],
        )
        .unwrap()
    }

    /// Ethernet (to the router's client MAC) + IPv4 (`flags_frag` in bytes 6..8) + `l4`.
    pub(crate) fn frame(dst: [u8; 4], proto: u8, flags_frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&ROUTER_MAC);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 0x10, 0x08, 0x00]);
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&flags_frag.to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&CLIENT);
        ip[16..20].copy_from_slice(&dst);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(l4);
        f
    }

    pub(crate) fn tcp(sport: u16, dport: u16, flags: u8) -> [u8; 20] {
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50;
        t[13] = flags;
        t
    }

    fn udp(sport: u16, dport: u16) -> [u8; 8] {
        let mut u = [0u8; 8];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&8u16.to_be_bytes());
        u
    }

    fn dropped(r: Result<PacketMeta, Verdict>) -> DropReason {
        match r {
            Err(Verdict::Drop(d)) => d,
            other => panic!("expected a drop, got {other:?}"),
        }
    }

    /// Issue 9: source port 0 is the connection table's sticky-affinity key, so no real TCP or
    /// UDP packet to an alias may have it; port 1 is fine.
    #[test]
    fn source_port_zero_is_dropped() {
        let s = snap();
        for (proto, l4) in [
            (6u8, tcp(0, 80, TCP_SYN).to_vec()),
            (17, udp(0, 53).to_vec()),
        ] {
            assert_eq!(
                dropped(classify(&s, 0, &frame(ALIAS, proto, 0, &l4))),
                DropReason::SourcePortZero,
                "proto {proto}"
            );
        }
        let m = classify(&s, 0, &frame(ALIAS, 17, 0, &udp(1, 53))).unwrap();
        assert_eq!(m.key.src_port, 1);
    }

    #[test]
    fn tcp_and_udp_to_an_alias_yield_the_flow() {
        let s = snap();
        let m = classify(&s, 0, &frame(ALIAS, 6, 0x4000, &tcp(40001, 80, TCP_SYN))).unwrap();
        let key = FlowKey {
            src: u32::from(Ipv4Addr::from(CLIENT)),
            dst: u32::from(Ipv4Addr::from(ALIAS)),
            src_port: 40001,
            dst_port: 80,
            proto: 6,
        };
        assert_eq!(m.key, key);
        assert_eq!(m.hash, key.hash());
        assert_eq!(
            (m.tcp_flags, m.l3_offset, m.ip_len, m.alias),
            (TCP_SYN, 14, 40, AliasId(0))
        );
        let m = classify(&s, 0, &frame(ALIAS, 17, 0, &udp(5353, 53))).unwrap();
        assert_eq!(
            (m.key.src_port, m.key.dst_port, m.key.proto, m.tcp_flags),
            (5353, 53, 17, 0)
        );
    }

    #[test]
    fn vlan_tagged_frames_report_the_l3_offset() {
        let mut f = frame(ALIAS, 6, 0, &tcp(1, 80, TCP_SYN));
        f.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        let m = classify(&snap(), 0, &f).unwrap();
        assert_eq!(m.l3_offset, 18);
        // Two tags: refused.
        f.splice(12..12, [0x81, 0x00, 0x00, 0x65]);
        assert_eq!(
            dropped(classify(&snap(), 0, &f)),
            DropReason::UnsupportedEthertype
        );
    }

    #[test]
    fn every_rule_has_its_verdict() {
        let s = snap();
        let good = frame(ALIAS, 6, 0, &tcp(1, 80, TCP_SYN));
        assert_eq!(dropped(classify(&s, 9, &good)), DropReason::WrongPort);
        assert_eq!(
            dropped(classify(&s, 1, &good)),
            DropReason::WrongPort,
            "ic0 has another MAC"
        );
        assert_eq!(dropped(classify(&s, 0, &good[..13])), DropReason::Truncated);
        assert_eq!(
            dropped(classify(&s, 0, &good[..14 + 19])),
            DropReason::Truncated
        );
        assert_eq!(
            dropped(classify(&s, 0, &good[..14 + 30])),
            DropReason::Truncated
        );
        let mut bad = good.clone();
        bad[24] ^= 1; // checksum
        assert_eq!(dropped(classify(&s, 0, &bad)), DropReason::BadIpv4Header);
        let mut bad = good.clone();
        bad[14] = 0x65; // version 6
        assert_eq!(dropped(classify(&s, 0, &bad)), DropReason::BadIpv4Header);
        let mut v6 = good.clone();
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(
            dropped(classify(&s, 0, &v6)),
            DropReason::UnsupportedEthertype
        );
        let mut bcast = good.clone();
        bcast[0..6].fill(0xff);
        assert_eq!(dropped(classify(&s, 0, &bcast)), DropReason::NotAlias);
        let other = frame([198, 51, 100, 200], 6, 0, &tcp(1, 80, TCP_SYN));
        assert_eq!(dropped(classify(&s, 0, &other)), DropReason::NotAlias);
        let to_router = frame([192, 0, 2, 2], 6, 0, &tcp(1, 80, TCP_SYN));
        assert_eq!(dropped(classify(&s, 0, &to_router)), DropReason::NotAlias);
        // Issue 10: TCP/UDP fragments to an alias are alias traffic (see
        // fragments_to_an_alias_are_classified); ICMP fragments and fragments to a router
        // address are still `fragment`.
        let frag = frame(ALIAS, 1, 0x2000, &[8, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(dropped(classify(&s, 0, &frag)), DropReason::Fragment);
        let frag = frame([198, 51, 100, 2], 6, 0x0010, &tcp(1, 80, TCP_SYN));
        assert_eq!(dropped(classify(&s, 0, &frag)), DropReason::Fragment);
        let frag = frame(ALIAS, 47, 0x0010, &[0; 8]);
        assert_eq!(
            dropped(classify(&s, 0, &frag)),
            DropReason::UnsupportedProtocol
        );
        let gre = frame(ALIAS, 47, 0, &[0; 8]);
        assert_eq!(
            dropped(classify(&s, 0, &gre)),
            DropReason::UnsupportedProtocol
        );
        let short_tcp = frame(ALIAS, 6, 0, &[0; 12]);
        assert_eq!(
            dropped(classify(&s, 0, &short_tcp)),
            DropReason::BadL4Header
        );
        let mut bad_udp = udp(1, 53);
        bad_udp[4..6].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(
            dropped(classify(&s, 0, &frame(ALIAS, 17, 0, &bad_udp))),
            DropReason::BadL4Header
        );
        let timestamp = frame(ALIAS, 1, 0, &[13, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            dropped(classify(&s, 0, &timestamp)),
            DropReason::UnsupportedIcmp
        );
        // An error quoting nothing (CA7, crate::icmp_error).
        let unreach = frame(ALIAS, 1, 0, &[3, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            dropped(classify(&s, 0, &unreach)),
            DropReason::IcmpErrorBadQuote
        );
        let unreach = frame([198, 51, 100, 2], 1, 0, &[3, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(dropped(classify(&s, 0, &unreach)), DropReason::NotAlias);
        assert_eq!(
            dropped(classify(&s, 0, &frame(ALIAS, 1, 0, &[8]))),
            DropReason::BadL4Header
        );
    }

    /// Issue 10 (CA7): a first fragment yields its flow like a whole packet; a later one
    /// yields the datagram's addresses, protocol and id and no ports; shapes that cannot be
    /// followed safely are `fragment_malformed` (RFC 1858).
    #[test]
    fn fragments_to_an_alias_are_classified() {
        use crate::fragments::{Frag, FragKind};
        let s = snap();
        let mut first = frame(ALIAS, 17, 0x2000, &[0x13, 0x89, 0, 53, 0x0f, 0xa8, 0, 0]);
        first[18..20].copy_from_slice(&0x1234u16.to_be_bytes());
        first[24..26].fill(0);
        let c = checksum(&first[14..34]);
        first[24..26].copy_from_slice(&c.to_be_bytes());
        let m = classify(&s, 0, &first).unwrap();
        assert_eq!(
            (m.key.src_port, m.key.dst_port, m.key.proto),
            (5001, 53, 17)
        );
        assert_eq!(
            m.frag,
            Frag {
                kind: FragKind::First,
                id: 0x1234,
                offset: 0,
                len: 8,
                more: true
            }
        );
        let rest = frame(ALIAS, 17, 0x00b9, &[0xab; 100]); // offset 185 × 8, last
        let m = classify(&s, 0, &rest).unwrap();
        assert_eq!((m.key.src_port, m.key.dst_port), (0, 0));
        assert_eq!(
            (m.frag.kind, m.frag.offset, m.frag.len, m.frag.more),
            (FragKind::Rest, 1480, 100, false)
        );
        assert_eq!(m.alias, AliasId(0));
        let tcp_first = frame(ALIAS, 6, 0x2000, &tcp(40001, 80, TCP_SYN));
        let m = classify(&s, 0, &tcp_first).unwrap();
        assert_eq!(
            (m.key.src_port, m.tcp_flags, m.frag.kind),
            (40001, TCP_SYN, FragKind::First)
        );
        // Too short for the ports / the TCP header; TCP at offset 8.
        for f in [
            frame(ALIAS, 17, 0x2000, &[0x13, 0x89]),
            frame(ALIAS, 6, 0x2000, &tcp(40001, 80, TCP_SYN)[..16]),
            frame(ALIAS, 6, 0x0001, &[0; 8]),
        ] {
            assert_eq!(dropped(classify(&s, 0, &f)), DropReason::FragmentMalformed);
        }
        assert!(classify(&s, 0, &frame(ALIAS, 17, 0x0001, &[0; 8])).is_ok());
        assert_eq!(
            dropped(classify(
                &s,
                0,
                &frame(ALIAS, 17, 0x2000, &[0, 0, 0, 53, 0, 8, 0, 0])
            )),
            DropReason::SourcePortZero
        );
    }

    /// The checksum capabilities decide whether a bad IPv4 header checksum is looked at; the
    /// hash key decides the flow hash. Nothing else changes.
    #[test]
    fn checksum_capabilities_and_hash_key_come_from_the_config() {
        use crate::wire::checksum::Checksum;
        let s = snap();
        let good = frame(ALIAS, 6, 0, &tcp(1, 80, TCP_SYN));
        let mut bad = good.clone();
        bad[24] ^= 1;
        let nic_verified = ClassifyConfig {
            checksum: ChecksumCapabilities {
                ipv4: Checksum::Tx,
                ..ChecksumCapabilities::software()
            },
            ..ClassifyConfig::default()
        };
        let m = classify_with(&nic_verified, &s, 0, &bad).expect("not verified in software");
        assert_eq!(m, classify(&s, 0, &good).unwrap());
        // Still malformed headers are refused whatever the capabilities.
        bad[14] = 0x65;
        assert_eq!(
            dropped(classify_with(&nic_verified, &s, 0, &bad)),
            DropReason::BadIpv4Header
        );
        let key = FlowHashKey::new([5, 6]);
        let keyed = ClassifyConfig {
            hash_key: key,
            ..ClassifyConfig::default()
        };
        let m = classify_with(&keyed, &s, 0, &good).unwrap();
        assert_eq!(m.hash, m.key.hash_keyed(&key));
        assert_ne!(m.hash, m.key.hash());
    }

    #[test]
    fn arp_and_echo_requests_are_punted() {
        let s = snap();
        let echo = [8, 0, 0, 0, 0, 1, 0, 1];
        assert_eq!(
            classify(&s, 0, &frame(ALIAS, 1, 0, &echo)),
            Err(Verdict::Punt(PuntReason::IcmpEcho))
        );
        assert_eq!(
            classify(&s, 0, &frame([198, 51, 100, 2], 1, 0, &echo)),
            Err(Verdict::Punt(PuntReason::IcmpEcho))
        );
        assert_eq!(
            classify(&s, 0, &frame([192, 0, 2, 2], 1, 0, &echo)),
            Err(Verdict::Punt(PuntReason::IcmpEcho)),
            "any of the router's addresses"
        );
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 0x10, 0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        assert_eq!(classify(&s, 0, &arp), Err(Verdict::Punt(PuntReason::Arp)));
    }

    /// Issue 8: router messages, RIP and BFD are punted only where and when they are expected.
    #[test]
    fn routing_protocols_are_punted_by_port_role_and_destination() {
        use crate::snapshot::ControlPorts;
        let with_dst_mac = |mut f: Vec<u8>, mac: [u8; 6]| {
            f[..6].copy_from_slice(&mac);
            f
        };
        let bcast = [0xff; 6];
        let ic0_mac = [2, 0, 0, 0, 0, 2];
        let router_msg = with_dst_mac(frame([192, 0, 2, 127], 17, 0, &udp(9472, 9472)), bcast);
        let rip_bcast = with_dst_mac(frame([198, 51, 100, 255], 17, 0, &udp(520, 520)), bcast);
        let rip_mcast = with_dst_mac(
            frame([224, 0, 0, 9], 17, 0, &udp(520, 520)),
            RIP_MULTICAST_MAC,
        );
        let rip_unicast = frame([198, 51, 100, 2], 17, 0, &udp(520, 520));
        let bfd = frame([198, 51, 100, 2], 17, 0, &udp(49152, 3784));
        // Nothing is punted while the protocols are off.
        let off = snap();
        for f in [&rip_bcast, &rip_mcast, &rip_unicast, &bfd] {
            assert!(matches!(classify(&off, 0, f), Err(Verdict::Drop(_))));
        }
        assert!(matches!(
            classify(&off, 1, &router_msg),
            Err(Verdict::Drop(_))
        ));
        let s = snap().with_control(ControlPorts {
            router: 9472,
            rip: true,
            bfd: true,
            sync: 9473,
        });
        // ic0 is 192.0.2.2 with prefix 24 in the fixture's port(): broadcast .255.
        let ic_bcast = with_dst_mac(frame([192, 0, 2, 255], 17, 0, &udp(9472, 9472)), bcast);
        assert_eq!(
            classify(&s, 1, &ic_bcast),
            Err(Verdict::Punt(PuntReason::Router))
        );
        let ic_unicast = with_dst_mac(frame([192, 0, 2, 2], 17, 0, &udp(9472, 9472)), ic0_mac);
        assert_eq!(
            classify(&s, 1, &ic_unicast),
            Err(Verdict::Punt(PuntReason::Router))
        );
        // Flow hand-off (issue 9): like the router protocol, on its own port.
        let sync_bcast = with_dst_mac(frame([192, 0, 2, 255], 17, 0, &udp(9473, 9473)), bcast);
        assert_eq!(
            classify(&s, 1, &sync_bcast),
            Err(Verdict::Punt(PuntReason::Sync))
        );
        let sync_unicast = with_dst_mac(frame([192, 0, 2, 2], 17, 0, &udp(9473, 9473)), ic0_mac);
        assert_eq!(
            classify(&s, 1, &sync_unicast),
            Err(Verdict::Punt(PuntReason::Sync))
        );
        let sync_client = with_dst_mac(frame([198, 51, 100, 255], 17, 0, &udp(9473, 9473)), bcast);
        assert_eq!(dropped(classify(&s, 0, &sync_client)), DropReason::NotAlias);
        // Not on the client port, and not to another subnet's broadcast.
        assert_eq!(dropped(classify(&s, 0, &router_msg)), DropReason::NotAlias);
        assert_eq!(
            dropped(classify(&s, 1, &router_msg)),
            DropReason::NotAlias,
            "192.0.2.127 is not ic0's broadcast address"
        );
        for f in [&rip_bcast, &rip_mcast, &rip_unicast] {
            assert_eq!(classify(&s, 0, f), Err(Verdict::Punt(PuntReason::Rip)));
        }
        assert_eq!(classify(&s, 0, &bfd), Err(Verdict::Punt(PuntReason::Bfd)));
        // RIP and BFD are client-port protocols; BFD to a broadcast address is not punted.
        let rip_ic = with_dst_mac(frame([192, 0, 2, 2], 17, 0, &udp(520, 520)), ic0_mac);
        assert_eq!(dropped(classify(&s, 1, &rip_ic)), DropReason::NotAlias);
        let bfd_bcast = with_dst_mac(frame([198, 51, 100, 255], 17, 0, &udp(49152, 3784)), bcast);
        assert_eq!(dropped(classify(&s, 0, &bfd_bcast)), DropReason::NotAlias);
        // Other multicast traffic to RIP's group MAC is not ours.
        let other = with_dst_mac(
            frame([224, 0, 0, 9], 17, 0, &udp(520, 999)),
            RIP_MULTICAST_MAC,
        );
        assert_eq!(dropped(classify(&s, 0, &other)), DropReason::NotAlias);
        // A fragment never is a control datagram.
        let frag = with_dst_mac(
            frame([198, 51, 100, 255], 17, 0x2000, &udp(520, 520)),
            bcast,
        );
        assert_eq!(dropped(classify(&s, 0, &frag)), DropReason::NotAlias);
    }

    /// CA5: a port receives for the vMACs the snapshot gives it, and only those.
    #[test]
    fn vmacs_are_received_only_on_their_port() {
        let vmac = [2, 0xc1, 198, 51, 100, 100];
        let f = |mac: [u8; 6]| {
            let mut f = frame(ALIAS, 6, 0, &tcp(40001, 80, TCP_SYN));
            f[..6].copy_from_slice(&mac);
            f
        };
        assert_eq!(
            dropped(classify(&snap(), 0, &f(vmac))),
            DropReason::WrongPort
        );
        let s = snap().with_vmacs(vec![(0, vmac)]);
        assert!(classify(&s, 0, &f(vmac)).is_ok());
        assert_eq!(dropped(classify(&s, 1, &f(vmac))), DropReason::WrongPort);
        let mut other = vmac;
        other[5] = 101;
        assert_eq!(dropped(classify(&s, 0, &f(other))), DropReason::WrongPort);
    }

    #[test]
    fn member_adverts_are_punted_only_from_the_interconnect() {
        let s = snap().with_advert_port(9471);
        // From member m0 on ic0 to the router's ic0 address.
        let on_ic0 = |dst: [u8; 4], l4: &[u8]| {
            let mut f = frame(dst, 17, 0, l4);
            f[5] = 2; // ic0's MAC
            f
        };
        let advert = on_ic0([192, 0, 2, 2], &udp(9471, 9471));
        assert_eq!(
            classify(&s, 1, &advert),
            Err(Verdict::Punt(PuntReason::MemberAdvert))
        );
        // Any of the router's addresses will do.
        let advert = on_ic0([198, 51, 100, 2], &udp(40000, 9471));
        assert_eq!(
            classify(&s, 1, &advert),
            Err(Verdict::Punt(PuntReason::MemberAdvert))
        );
        // The same datagram from the client side is not accepted.
        let from_client = frame([192, 0, 2, 2], 17, 0, &udp(9471, 9471));
        assert_eq!(dropped(classify(&s, 0, &from_client)), DropReason::NotAlias);
        // Another port, a bad UDP header, or no advert port configured: not ours.
        assert_eq!(
            dropped(classify(&s, 1, &on_ic0([192, 0, 2, 2], &udp(9471, 9472)))),
            DropReason::NotAlias
        );
        let mut bad = udp(9471, 9471);
        bad[4..6].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            dropped(classify(&s, 1, &on_ic0([192, 0, 2, 2], &bad))),
            DropReason::NotAlias
        );
        assert_eq!(
            dropped(classify(
                &snap(),
                1,
                &on_ic0([192, 0, 2, 2], &udp(9471, 9471))
            )),
            DropReason::NotAlias
        );
        // UDP to an alias on that port is alias traffic as ever.
        let m = classify(&s, 1, &on_ic0(ALIAS, &udp(9471, 9471))).unwrap();
        assert_eq!(m.key.dst_port, 9471);
    }
}
