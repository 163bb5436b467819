//! Classify: parse L2/L3/L4 and decide what a received frame is.
//!
//! For each frame, in this order (the first rule that applies wins):
//!
//! 1. The rx port must be in the snapshot, else [`DropReason::WrongPort`].
//! 2. [`parse_l2`]: shorter than its Ethernet (+ tag) header → `Truncated`; QinQ or stacked
//!    tags → `UnsupportedEthertype`. One 802.1Q tag is accepted (and removed by encap).
//! 3. The destination MAC must be the rx port's MAC or broadcast, else `WrongPort`.
//! 4. ARP → [`PuntReason::Arp`]; anything but ARP and IPv4 → `UnsupportedEthertype`.
//! 5. IPv4 header: shorter than 20 bytes or than its total length → `Truncated`; bad version,
//!    header length, total length or checksum → `BadIpv4Header`.
//! 6. Broadcast destination MAC (with IPv4) → `NotAlias`.
//! 7. Destination address neither an alias nor one of the router's own → `NotAlias`.
//! 8. Fragment (MF set or offset ≠ 0) → `Fragment`: without ports it has no flow.
//! 9. ICMP echo request (type 8) to an alias or a router address → [`PuntReason::IcmpEcho`]
//!    (CA7: ICMP is handled in alias context); a truncated ICMP header → `BadL4Header`; other
//!    ICMP to an alias → `UnsupportedIcmp`; anything else to a router address → `NotAlias`.
//! 10. TCP and UDP: the header must pass `new_checked` (`BadL4Header`); other protocols →
//!     `UnsupportedProtocol`.
//!
//! The output is a [`PacketMeta`]: the flow key and its hash, TCP flags, where the IP header
//! is, and the alias. L4 checksums are not checked: the members verify them.

use crate::hash::FlowKey;
use crate::snapshot::{AliasId, MemberId, PortId, Snapshot};
use crate::verdict::{DropReason, PuntReason, Verdict};
use crate::wire::ethernet::{self, is_broadcast, parse_l2, EtherType, EthernetFrame};
use crate::wire::icmpv4::Icmpv4Packet;
use crate::wire::ipv4::{protocol, Ipv4Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;
use crate::wire::WireError;

/// TCP FIN flag.
pub const TCP_FIN: u8 = 0x01;
/// TCP SYN flag.
pub const TCP_SYN: u8 = 0x02;
/// TCP RST flag.
pub const TCP_RST: u8 = 0x04;
/// TCP ACK flag.
pub const TCP_ACK: u8 = 0x10;

/// ICMP echo request message type.
const ICMP_ECHO_REQUEST: u8 = 8;

/// What classify learned about a packet that goes on to select and encap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    /// The flow (client address and port → alias address and port, protocol).
    pub key: FlowKey,
    /// `key.hash()`, computed once.
    pub hash: u32,
    /// TCP flags (0 for UDP).
    pub tcp_flags: u8,
    /// Offset of the IPv4 header in the frame (14, or 18 behind an 802.1Q tag).
    pub l3_offset: u16,
    /// The IPv4 total length (the frame may carry Ethernet padding after it).
    pub ip_len: u16,
    /// The alias the packet is addressed to.
    pub alias: AliasId,
    /// Filled in by select.
    pub member: MemberId,
}

impl Default for PacketMeta {
    fn default() -> Self {
        PacketMeta {
            key: FlowKey::default(),
            hash: 0,
            tcp_flags: 0,
            l3_offset: ethernet::HEADER_LEN as u16,
            ip_len: 0,
            alias: AliasId(0),
            member: MemberId(0),
        }
    }
}

#[inline(always)]
fn drop(reason: DropReason) -> Verdict {
    Verdict::Drop(reason)
}

/// Classifies one frame received on `rx_port`. `Ok` means "alias traffic for select";
/// `Err` carries the final verdict (a drop or a punt).
#[inline]
pub fn classify(snap: &Snapshot, rx_port: PortId, frame: &[u8]) -> Result<PacketMeta, Verdict> {
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
    if dst_mac != port.mac && !broadcast {
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
    if !ip.verify_checksum() {
        return Err(drop(DropReason::BadIpv4Header));
    }
    if broadcast {
        return Err(drop(DropReason::NotAlias));
    }
    let dst = u32::from(ip.dst_addr());
    let alias = snap.alias_by_addr(dst);
    if alias.is_none() && !snap.is_router_addr(dst) {
        return Err(drop(DropReason::NotAlias));
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(drop(DropReason::Fragment));
    }
    let proto = ip.next_header();
    let payload = ip.payload();
    if proto == protocol::ICMP {
        let Ok(icmp) = Icmpv4Packet::new_checked(payload) else {
            return Err(drop(DropReason::BadL4Header));
        };
        if icmp.msg_type() == ICMP_ECHO_REQUEST {
            return Err(Verdict::Punt(PuntReason::IcmpEcho));
        }
        return Err(drop(if alias.is_some() {
            DropReason::UnsupportedIcmp
        } else {
            DropReason::NotAlias
        }));
    }
    let Some(alias) = alias else {
        return Err(drop(DropReason::NotAlias));
    };
    let (src_port, dst_port, tcp_flags) = match proto {
        protocol::TCP => match TcpPacket::new_checked(payload) {
            Ok(tcp) => (tcp.src_port(), tcp.dst_port(), tcp.flags()),
            Err(_) => return Err(drop(DropReason::BadL4Header)),
        },
        protocol::UDP => match UdpPacket::new_checked(payload) {
            Ok(udp) => (udp.src_port(), udp.dst_port(), 0),
            Err(_) => return Err(drop(DropReason::BadL4Header)),
        },
        _ => return Err(drop(DropReason::UnsupportedProtocol)),
    };
    let key = FlowKey { src: u32::from(ip.src_addr()), dst, src_port, dst_port, proto };
    Ok(PacketMeta {
        key,
        hash: key.hash(),
        tcp_flags,
        l3_offset: l2.l3_offset as u16,
        ip_len: ip.total_len(),
        alias,
        member: MemberId(0),
    })
}
