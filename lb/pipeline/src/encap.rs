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
//! The flow hash is the NIC's RSS hash when there is one, else [`crate::hash::FlowKey::hash`].
//! Ethernet padding behind the IP packet is trimmed before ipip/vxlan encapsulation, so outer
//! lengths are exact.
//!
//! Failures: the resulting IPv4 packet longer than the egress port's MTU → `TooBig` (checked
//! before anything is written); not enough headroom → `NoHeadroom`; ipip/vxlan out of a port
//! with neither an address nor a `flow_source` → `NoSourceAddress`. After a failure the buffer
//! may be partly rewritten; it is dropped anyway.

use crate::buf::PacketBuf;
use crate::classify::PacketMeta;
use crate::snapshot::{Encap, Member, PortId, PortInfo};
use crate::verdict::DropReason;
use crate::wire::checksum::checksum;

/// Ethernet header length.
const ETH_LEN: usize = 14;
/// Outer IPv4 header length (no options).
const IP_LEN: usize = 20;
/// UDP header length.
const UDP_LEN: usize = 8;
/// VXLAN header length.
const VXLAN_LEN: usize = 8;
/// Bytes ipip adds in front of the inner IP packet (Ethernet + IPv4).
pub const IPIP_OVERHEAD: usize = ETH_LEN + IP_LEN;
/// Bytes vxlan adds in front of the inner Ethernet frame.
pub const VXLAN_OVERHEAD: usize = ETH_LEN + IP_LEN + UDP_LEN + VXLAN_LEN;
/// TTL of outer headers.
pub const OUTER_TTL: u8 = 64;
/// First VXLAN source port (RFC 7348 §5: the dynamic range 49152–65535).
pub const VXLAN_SRC_PORT_BASE: u16 = 49152;

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

/// Writes an outer Ethernet header (`dst` ← `src`, IPv4) at the start of `b`.
#[inline(always)]
fn write_eth(b: &mut [u8], dst: &[u8; 6], src: &[u8; 6]) {
    b[0..6].copy_from_slice(dst);
    b[6..12].copy_from_slice(src);
    b[12..14].copy_from_slice(&[0x08, 0x00]);
}

/// Writes an outer IPv4 header (20 bytes, ident 0, TTL 64) with its checksum.
#[inline(always)]
fn write_ipv4(b: &mut [u8], tos: u8, total_len: u16, df: bool, proto: u8, src: u32, dst: u32) {
    let h = &mut b[..IP_LEN];
    h[0] = 0x45;
    h[1] = tos;
    h[2..4].copy_from_slice(&total_len.to_be_bytes());
    h[4..6].copy_from_slice(&[0, 0]);
    h[6..8].copy_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
    h[8] = OUTER_TTL;
    h[9] = proto;
    h[10..12].copy_from_slice(&[0, 0]);
    h[12..16].copy_from_slice(&src.to_be_bytes());
    h[16..20].copy_from_slice(&dst.to_be_bytes());
    let c = checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Removes an 802.1Q tag (4 bytes after the MAC addresses) from a frame whose IP header is at
/// `l3_offset` 18. Returns false if the buffer refused.
#[inline(always)]
fn untag<B: PacketBuf>(pkt: &mut B, meta: &PacketMeta) -> bool {
    if meta.l3_offset as usize == ETH_LEN {
        return true;
    }
    let d = pkt.data_mut();
    if d.len() < 18 {
        return false;
    }
    d.copy_within(0..12, 4);
    pkt.adj(4)
}

/// Trims everything after the IP packet (Ethernet padding), given where the IP header is.
#[inline(always)]
fn trim_padding<B: PacketBuf>(pkt: &mut B, l3_offset: usize, ip_len: usize) {
    let extra = pkt.data().len().saturating_sub(l3_offset + ip_len);
    if extra > 0 {
        pkt.trim(extra);
    }
}

/// Rewrites `pkt` (classified as `meta`) for `member`, which is reached through `port`.
/// Returns the egress port, or why the packet is dropped.
#[inline]
pub fn encap<B: PacketBuf>(
    pkt: &mut B,
    meta: &PacketMeta,
    member: &Member,
    port: &PortInfo,
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
            let d = pkt.data_mut();
            d[0..6].copy_from_slice(&member.mac);
            d[6..12].copy_from_slice(&port.mac);
        }
        Encap::Ipip => {
            let outer_len = ip_len + IP_LEN;
            if outer_len > mtu {
                return Err(DropReason::TooBig);
            }
            let hash = pkt.rss_hash().unwrap_or(meta.hash);
            let Some(src) = outer_source(port, hash) else {
                return Err(DropReason::NoSourceAddress);
            };
            trim_padding(pkt, l3, ip_len);
            let inner = pkt.data();
            let (tos, df) = (inner[l3 + 1], inner[l3 + 6] & 0x40 != 0);
            if !pkt.adj(l3) {
                return Err(DropReason::Truncated);
            }
            if !pkt.prepend(IPIP_OVERHEAD) {
                return Err(DropReason::NoHeadroom);
            }
            let d = pkt.data_mut();
            write_eth(d, &member.mac, &port.mac);
            write_ipv4(
                &mut d[ETH_LEN..],
                tos,
                outer_len as u16,
                df,
                4,
                src,
                u32::from(member.ipv4),
            );
        }
        Encap::Vxlan {
            vni,
            inner_mac,
            udp_port,
        } => {
            let inner_frame = ETH_LEN + ip_len;
            let outer_len = IP_LEN + UDP_LEN + VXLAN_LEN + inner_frame;
            if outer_len > mtu {
                return Err(DropReason::TooBig);
            }
            let hash = pkt.rss_hash().unwrap_or(meta.hash);
            let Some(src) = outer_source(port, hash) else {
                return Err(DropReason::NoSourceAddress);
            };
            trim_padding(pkt, l3, ip_len);
            let tos = pkt.data()[l3 + 1];
            if !untag(pkt, meta) {
                return Err(DropReason::Truncated);
            }
            let d = pkt.data_mut();
            d[0..6].copy_from_slice(&inner_mac);
            d[6..12].copy_from_slice(&port.mac);
            if !pkt.prepend(VXLAN_OVERHEAD) {
                return Err(DropReason::NoHeadroom);
            }
            let d = pkt.data_mut();
            write_eth(d, &member.mac, &port.mac);
            write_ipv4(
                &mut d[ETH_LEN..],
                tos,
                outer_len as u16,
                true,
                17,
                src,
                u32::from(member.ipv4),
            );
            let u = &mut d[ETH_LEN + IP_LEN..];
            let sport = VXLAN_SRC_PORT_BASE + (hash % 16384) as u16;
            u[0..2].copy_from_slice(&sport.to_be_bytes());
            u[2..4].copy_from_slice(&udp_port.to_be_bytes());
            u[4..6].copy_from_slice(&((UDP_LEN + VXLAN_LEN + inner_frame) as u16).to_be_bytes());
            u[6..8].copy_from_slice(&[0, 0]);
            let v = &mut u[UDP_LEN..UDP_LEN + VXLAN_LEN];
            v.copy_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 0]);
            v[4..7].copy_from_slice(&(vni & 0x00ff_ffff).to_be_bytes()[1..4]);
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
        assert_eq!(encap(&mut b, &meta, &m, &port), Ok(1));
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
        assert_eq!(encap(&mut b, &meta, &m, &port), Ok(1));
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
        assert_eq!(encap(&mut b, &meta, &m, &port), Ok(1));
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

    #[test]
    fn failures_have_their_reasons() {
        // No source address.
        let (mut b, meta, mut m, mut port) = setup(syn(), false);
        m.encap = Encap::Ipip;
        port.ipv4 = None;
        assert_eq!(
            encap(&mut b, &meta, &m, &port),
            Err(DropReason::NoSourceAddress)
        );
        // No headroom: ipip needs 20 bytes in front of the frame.
        let (_, meta, mut m, port) = setup(syn(), false);
        m.encap = Encap::Ipip;
        let mut b = VecBuf::with_headroom(&syn(), 19);
        assert_eq!(encap(&mut b, &meta, &m, &port), Err(DropReason::NoHeadroom));
        let mut b = VecBuf::with_headroom(&syn(), 20);
        assert_eq!(encap(&mut b, &meta, &m, &port), Ok(1));
        // MTU: 40-byte packet, ipip 60, vxlan 90.
        let (mut b, meta, mut m, mut port) = setup(syn(), false);
        port.mtu = 59;
        m.encap = Encap::Ipip;
        assert_eq!(encap(&mut b, &meta, &m, &port), Err(DropReason::TooBig));
        port.mtu = 89;
        m.encap = Encap::Vxlan {
            vni: 1,
            inner_mac: [0; 6],
            udp_port: 4789,
        };
        assert_eq!(encap(&mut b, &meta, &m, &port), Err(DropReason::TooBig));
        port.mtu = 39;
        m.encap = Encap::L2;
        assert_eq!(encap(&mut b, &meta, &m, &port), Err(DropReason::TooBig));
        assert_eq!(
            b.data(),
            syn().as_slice(),
            "too_big is decided before writing"
        );
    }
}
