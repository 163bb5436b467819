//! Encap: rewrite a selected packet, in place, for its member.
//!
//! The member's port is the egress port; everything the router sends there carries that port's
//! MAC as Ethernet source. An 802.1Q tag on the received frame is removed first, in every mode.
//!
//! - [`Encap::L2`]: destination MAC = member MAC, source MAC = port MAC; the IP packet is not
//!   touched (direct server return on a shared L2).
//! - [`Encap::Ipip`] (RFC 2003): the client's Ethernet header is replaced by
//!   Ethernet(member MAC ← port MAC, IPv4) + an outer IPv4 header: version 4, IHL 5, TOS copied
//!   from the inner header, ident 0, DF copied from the inner header, TTL 64, protocol 4, source
//!   = the port address (or, with `flow_source = (net, plen)`, `net | (flow_hash & host_mask)`),
//!   destination = the member's address.
//! - [`Encap::Vxlan`] (RFC 7348): the client's frame stays as the inner frame, with inner
//!   destination MAC = `inner_mac` and inner source MAC = port MAC, behind outer Ethernet +
//!   IPv4 (as for ipip, but protocol 17 and DF always set) + UDP (source port
//!   `49152 + flow_hash % 16384`, RFC 7348 §5; destination `udp_port`; checksum 0) + VXLAN
//!   (flags 0x08, the VNI).
//!
//! Every header is written by its `wire` Repr. Outer IPv4 header checksums are computed when
//! the pipeline's [`ChecksumCapabilities`] say `ipv4.tx()`, else left 0 for the NIC's offload.
//!
//! The flow hash is the NIC's RSS hash when there is one, else the keyed
//! [`crate::hash::FlowKey::hash_keyed`] that classify computed.
//! Ethernet padding behind the IP packet is trimmed before ipip/vxlan encapsulation, so outer
//! lengths are exact.
//!
//! Failures: the resulting IPv4 packet longer than the egress port's MTU → `TooBig` (checked
//! before anything is written); not enough headroom → `NoHeadroom`; ipip/vxlan out of a port
//! with neither an address nor a `flow_source` → `NoSourceAddress`. After a failure the buffer
//! may be partly rewritten; it is dropped anyway.

use core::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::classify::PacketMeta;
use crate::snapshot::{Encap, Member, PortId, PortInfo};
use crate::verdict::DropReason;
use crate::wire::checksum::ChecksumCapabilities;
use crate::wire::ethernet::{self, remove_vlan_tag, EtherType, EthernetFrame, EthernetRepr};
use crate::wire::ipv4::{self, protocol, Ipv4Packet, Ipv4Repr};
use crate::wire::udp::{self, UdpPacket, UdpRepr};
use crate::wire::vxlan::{self, VxlanPacket, VxlanRepr};

/// Bytes ipip adds in front of the inner IP packet (Ethernet + IPv4).
pub const IPIP_OVERHEAD: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
/// Bytes vxlan adds in front of the inner Ethernet frame.
pub const VXLAN_OVERHEAD: usize =
    ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + udp::HEADER_LEN + vxlan::HEADER_LEN;
/// TTL of outer headers.
pub const OUTER_TTL: u8 = 64;
/// First VXLAN source port (RFC 7348 §5: the dynamic range 49152–65535).
pub const VXLAN_SRC_PORT_BASE: u16 = 49152;
/// Number of VXLAN source ports (49152..=65535).
const VXLAN_SRC_PORTS: u32 = 16384;

/// The outer IPv4 source for a packet leaving `port` with flow hash `hash`.
#[inline]
pub fn outer_source(port: &PortInfo, hash: u32) -> Option<u32> {
    match port.flow_source {
        Some((net, plen)) => {
            let host_mask = if plen >= 32 { 0 } else { u32::MAX >> plen };
            Some((u32::from(net) & !host_mask) | (hash & host_mask))
        }
        None => port.ipv4.map(u32::from),
    }
}

/// The Ethernet header of everything sent to `member` out of `port`.
#[inline(always)]
fn eth_repr(member: &Member, port: &PortInfo) -> EthernetRepr {
    EthernetRepr {
        dst_addr: member.mac,
        src_addr: port.mac,
        ethertype: EtherType::IPV4,
    }
}

/// Writes `repr` at the start of `d`.
#[inline(always)]
fn emit_eth(d: &mut [u8], repr: &EthernetRepr) -> Result<(), DropReason> {
    let mut frame = EthernetFrame::new_checked(d).map_err(|_| DropReason::Truncated)?;
    repr.emit(&mut frame);
    Ok(())
}

/// The outer IPv4 header from `src` to `member` (ident 0, as [`Ipv4Repr::emit_with`] writes).
#[inline(always)]
fn outer_ipv4(
    src: u32,
    member: &Member,
    proto: u8,
    payload_len: usize,
    tos: u8,
    df: bool,
) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: Ipv4Addr::from(src),
        dst_addr: member.ipv4,
        next_header: proto,
        payload_len,
        hop_limit: OUTER_TTL,
        dscp_ecn: tos,
        dont_frag: df,
    }
}

/// Removes an 802.1Q tag (when the IP header is not right after an untagged Ethernet header).
/// Returns false if the buffer refused.
#[inline(always)]
fn untag<B: PacketBuf>(pkt: &mut B, meta: &PacketMeta) -> bool {
    if meta.l3_offset as usize == ethernet::HEADER_LEN {
        return true;
    }
    remove_vlan_tag(pkt.data_mut()).is_ok() && pkt.adj(ethernet::VLAN_TAG_LEN)
}

/// Trims everything after the IP packet (Ethernet padding), given where the IP header is.
#[inline(always)]
fn trim_padding<B: PacketBuf>(pkt: &mut B, l3_offset: usize, ip_len: usize) {
    let extra = pkt.data().len().saturating_sub(l3_offset + ip_len);
    if extra > 0 {
        pkt.trim(extra);
    }
}

/// The TOS byte and DF flag of the inner IPv4 header at `l3`.
#[inline(always)]
fn inner_tos_df(d: &[u8], l3: usize) -> Result<(u8, bool), DropReason> {
    let ip = d
        .get(l3..)
        .and_then(|b| Ipv4Packet::new_checked(b).ok())
        .ok_or(DropReason::Truncated)?;
    Ok((ip.dscp_ecn(), ip.dont_frag()))
}

/// Rewrites `pkt` (classified as `meta`) for `member`, which is reached through `port`.
/// Outer checksums are computed when `caps` says so (else left for the NIC, see
/// [`Checksum::tx`](crate::wire::Checksum::tx)). Returns the egress port, or why the packet is
/// dropped.
#[inline]
pub fn encap<B: PacketBuf>(
    pkt: &mut B,
    meta: &PacketMeta,
    member: &Member,
    port: &PortInfo,
    caps: &ChecksumCapabilities,
) -> Result<PortId, DropReason> {
    let ip_len = meta.ip_len as usize;
    let l3 = meta.l3_offset as usize;
    let mtu = port.mtu as usize;
    match member.encap {
        Encap::L2 => {
            if ip_len > mtu {
                return Err(DropReason::TooBig);
            }
            if !untag(pkt, meta) {
                return Err(DropReason::Truncated);
            }
            emit_eth(pkt.data_mut(), &eth_repr(member, port))?;
        }
        Encap::Ipip => {
            if ipv4::MIN_HEADER_LEN + ip_len > mtu {
                return Err(DropReason::TooBig);
            }
            let hash = pkt.rss_hash().unwrap_or(meta.hash);
            let Some(src) = outer_source(port, hash) else {
                return Err(DropReason::NoSourceAddress);
            };
            trim_padding(pkt, l3, ip_len);
            // RFC 2003 §3.1: TOS copied from the inner header, and DF too (so that path MTU
            // discovery keeps working through the tunnel).
            let (tos, df) = inner_tos_df(pkt.data(), l3)?;
            let outer = outer_ipv4(src, member, protocol::IPIP, ip_len, tos, df);
            let eth = eth_repr(member, port);
            if !pkt.adj(l3) {
                return Err(DropReason::Truncated);
            }
            if !pkt.prepend(IPIP_OVERHEAD) {
                return Err(DropReason::NoHeadroom);
            }
            let d = pkt.data_mut();
            emit_eth(d, &eth)?;
            outer.emit_with(
                &mut Ipv4Packet::new_unchecked(&mut d[eth.buffer_len()..]),
                caps,
            );
        }
        Encap::Vxlan {
            vni,
            inner_mac,
            udp_port,
        } => {
            let inner_frame = ethernet::HEADER_LEN + ip_len;
            let udp_payload = vxlan::HEADER_LEN + inner_frame;
            let ip_payload = udp::HEADER_LEN + udp_payload;
            if ipv4::MIN_HEADER_LEN + ip_payload > mtu {
                return Err(DropReason::TooBig);
            }
            let hash = pkt.rss_hash().unwrap_or(meta.hash);
            let Some(src) = outer_source(port, hash) else {
                return Err(DropReason::NoSourceAddress);
            };
            trim_padding(pkt, l3, ip_len);
            let (tos, _) = inner_tos_df(pkt.data(), l3)?;
            if !untag(pkt, meta) {
                return Err(DropReason::Truncated);
            }
            let inner_eth = EthernetRepr {
                dst_addr: inner_mac,
                src_addr: port.mac,
                ethertype: EtherType::IPV4,
            };
            emit_eth(pkt.data_mut(), &inner_eth)?;
            if !pkt.prepend(VXLAN_OVERHEAD) {
                return Err(DropReason::NoHeadroom);
            }
            let eth = eth_repr(member, port);
            let outer = outer_ipv4(src, member, protocol::UDP, ip_payload, tos, true);
            let udp = UdpRepr {
                src_port: VXLAN_SRC_PORT_BASE + (hash % VXLAN_SRC_PORTS) as u16,
                dst_port: udp_port,
            };
            let d = pkt.data_mut();
            emit_eth(d, &eth)?;
            let ip = &mut d[eth.buffer_len()..];
            outer.emit_with(&mut Ipv4Packet::new_unchecked(&mut *ip), caps);
            let l4 = &mut ip[outer.buffer_len()..];
            // RFC 7348 §5: over IPv4 the outer UDP checksum SHOULD be 0.
            udp.emit(
                &mut UdpPacket::new_unchecked(&mut *l4),
                udp_payload,
                outer.src_addr,
                outer.dst_addr,
                false,
            );
            VxlanRepr { vni }.emit(&mut VxlanPacket::new_unchecked(&mut l4[udp.buffer_len()..]));
        }
    }
    Ok(member.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::classify::tests::{frame, snap, tcp, ALIAS};
    use crate::classify::{classify, TCP_SYN};
    use crate::snapshot::MemberId;
    use crate::wire::ipv4::Ipv4Packet;
    use std::net::Ipv4Addr;

    const CAPS: ChecksumCapabilities = ChecksumCapabilities::software();

    fn setup(mut f: Vec<u8>, vlan: bool) -> (VecBuf, PacketMeta, Member, PortInfo) {
        if vlan {
            f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        }
        let s = snap();
        let meta = classify(&s, 0, &f).unwrap();
        let m = s.member(MemberId(0)).unwrap().clone();
        let port = s.ports[1].clone();
        (VecBuf::new(&f), meta, m, port)
    }

    fn syn() -> Vec<u8> {
        frame(ALIAS, 6, 0x4000, &tcp(40001, 80, TCP_SYN))
    }

    #[test]
    fn l2_rewrites_macs_and_removes_the_tag() {
        let plain = syn();
        let (mut b, meta, m, port) = setup(plain.clone(), true);
        assert_eq!(encap(&mut b, &meta, &m, &port, &CAPS), Ok(1));
        assert_eq!(&b.data()[0..6], &m.mac);
        assert_eq!(&b.data()[6..12], &port.mac);
        assert_eq!(&b.data()[12..], &plain[12..]);
    }

    #[test]
    fn ipip_outer_header_is_valid_and_uses_the_flow_source() {
        let (mut b, meta, mut m, mut port) = setup(syn(), true);
        m.encap = Encap::Ipip;
        port.flow_source = Some((Ipv4Addr::new(192, 0, 2, 64), 26));
        b.set_rss_hash(Some(0xffff_ff05));
        assert_eq!(encap(&mut b, &meta, &m, &port, &CAPS), Ok(1));
        let d = b.data();
        assert_eq!(d.len(), 14 + 20 + 40);
        let outer = Ipv4Packet::new_checked(&d[14..]).unwrap();
        assert!(outer.verify_checksum());
        assert_eq!(outer.next_header(), 4);
        assert_eq!(outer.src_addr(), Ipv4Addr::new(192, 0, 2, 64 + 5));
        assert_eq!(outer.dst_addr(), m.ipv4);
        assert!(outer.dont_frag());
        assert_eq!(outer.total_len(), 60);
        assert_eq!(&d[34..], &syn()[14..]);
    }

    #[test]
    fn outer_source_masks_the_hash_into_the_host_bits() {
        let mut port = snap().ports[1].clone();
        assert_eq!(
            outer_source(&port, 0x1234_5678),
            Some(u32::from(Ipv4Addr::new(192, 0, 2, 2)))
        );
        port.flow_source = Some((Ipv4Addr::new(10, 1, 2, 3), 24));
        assert_eq!(
            outer_source(&port, 0xaabb_ccdd),
            Some(u32::from(Ipv4Addr::new(10, 1, 2, 0xdd)))
        );
        port.flow_source = Some((Ipv4Addr::new(10, 1, 2, 3), 32));
        assert_eq!(
            outer_source(&port, 0xaabb_ccdd),
            Some(u32::from(Ipv4Addr::new(10, 1, 2, 3)))
        );
        port.flow_source = Some((Ipv4Addr::new(10, 1, 2, 3), 0));
        assert_eq!(outer_source(&port, 0xaabb_ccdd), Some(0xaabb_ccdd));
        port.flow_source = None;
        port.ipv4 = None;
        assert_eq!(outer_source(&port, 1), None);
    }

    #[test]
    fn vxlan_masks_the_vni_and_spreads_source_ports() {
        let (mut b, meta, mut m, port) = setup(syn(), false);
        m.encap = Encap::Vxlan {
            vni: 0xff12_3456,
            inner_mac: [2, 0, 0, 0, 9, 9],
            udp_port: 8472,
        };
        b.set_rss_hash(Some(16384 * 7 + 3));
        assert_eq!(encap(&mut b, &meta, &m, &port, &CAPS), Ok(1));
        let d = b.data();
        assert_eq!(d.len(), 50 + 54);
        assert_eq!(&d[34..36], &(49152u16 + 3).to_be_bytes());
        assert_eq!(&d[36..38], &8472u16.to_be_bytes());
        assert_eq!(&d[38..40], &(8u16 + 8 + 54).to_be_bytes());
        assert_eq!(&d[42..50], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        assert_eq!(&d[50..56], &[2, 0, 0, 0, 9, 9]);
        assert_eq!(&d[56..62], &port.mac);
        assert!(Ipv4Packet::new_checked(&d[14..]).unwrap().verify_checksum());
    }

    /// With the NIC computing IPv4 header checksums (TX offload) the outer header leaves the
    /// field 0 and is otherwise the same.
    #[test]
    fn outer_checksum_is_left_to_the_nic_when_it_offloads() {
        let offload = ChecksumCapabilities {
            ipv4: crate::wire::Checksum::Rx,
            ..CAPS
        };
        for encap_mode in [
            Encap::Ipip,
            Encap::Vxlan {
                vni: 7,
                inner_mac: [2, 0, 0, 0, 9, 9],
                udp_port: 4789,
            },
        ] {
            let (mut sw, meta, mut m, port) = setup(syn(), false);
            m.encap = encap_mode;
            let mut hw = sw.clone();
            assert_eq!(encap(&mut sw, &meta, &m, &port, &CAPS), Ok(1));
            assert_eq!(encap(&mut hw, &meta, &m, &port, &offload), Ok(1));
            let (sw, hw) = (sw.data(), hw.data());
            assert_eq!(&hw[24..26], &[0, 0]);
            assert_eq!((&sw[..24], &sw[26..]), (&hw[..24], &hw[26..]));
            assert!(Ipv4Packet::new_checked(&sw[14..])
                .unwrap()
                .verify_checksum());
        }
    }

    #[test]
    fn failures_have_their_reasons() {
        // No source address.
        let (mut b, meta, mut m, mut port) = setup(syn(), false);
        m.encap = Encap::Ipip;
        port.ipv4 = None;
        assert_eq!(
            encap(&mut b, &meta, &m, &port, &CAPS),
            Err(DropReason::NoSourceAddress)
        );
        // No headroom: ipip needs 20 bytes in front of the frame.
        let (_, meta, mut m, port) = setup(syn(), false);
        m.encap = Encap::Ipip;
        let mut b = VecBuf::with_headroom(&syn(), 19);
        assert_eq!(
            encap(&mut b, &meta, &m, &port, &CAPS),
            Err(DropReason::NoHeadroom)
        );
        let mut b = VecBuf::with_headroom(&syn(), 20);
        assert_eq!(encap(&mut b, &meta, &m, &port, &CAPS), Ok(1));
        // MTU: 40-byte packet, ipip 60, vxlan 90.
        let (mut b, meta, mut m, mut port) = setup(syn(), false);
        port.mtu = 59;
        m.encap = Encap::Ipip;
        assert_eq!(
            encap(&mut b, &meta, &m, &port, &CAPS),
            Err(DropReason::TooBig)
        );
        port.mtu = 89;
        m.encap = Encap::Vxlan {
            vni: 1,
            inner_mac: [0; 6],
            udp_port: 4789,
        };
        assert_eq!(
            encap(&mut b, &meta, &m, &port, &CAPS),
            Err(DropReason::TooBig)
        );
        port.mtu = 39;
        m.encap = Encap::L2;
        assert_eq!(
            encap(&mut b, &meta, &m, &port, &CAPS),
            Err(DropReason::TooBig)
        );
        assert_eq!(
            b.data(),
            syn().as_slice(),
            "too_big is decided before writing"
        );
    }
}
