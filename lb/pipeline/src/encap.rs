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
//! The data path does not build these headers per packet: [`Snapshot::build`](crate::Snapshot::build)
//! computes one [`EncapTemplate`] per member (the control plane computes, the data plane reads),
//! and [`EncapTemplate::apply`] copies the member's header bytes with one slice copy and patches
//! only what varies per packet: the TOS byte, DF, lengths, the flow-derived bits of the outer
//! source, the VXLAN source port, and the outer IPv4 checksum, finished from the template's
//! precomputed partial sum (RFC 1071 §2(B): the sum is order-independent, so the constant words
//! are summed once) instead of summed over the header. [`encap`] is the field-by-field builder
//! it replaces, kept as the reference the template is tested against byte for byte.
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
use crate::wire::checksum::{self, Checksum, ChecksumCapabilities};
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

/// Bytes of an [`EncapTemplate`]'s headers: the most any mode writes in front of the inner IP
/// packet (vxlan: outer Ethernet, IPv4, UDP, VXLAN and the inner Ethernet header).
const TEMPLATE_LEN: usize = VXLAN_OVERHEAD + ethernet::HEADER_LEN;
/// Offset of the outer IPv4 header in a template (behind the outer Ethernet header).
const OUTER_IP: usize = ethernet::HEADER_LEN;
/// Offset of the outer UDP header in a vxlan template.
const OUTER_UDP: usize = OUTER_IP + ipv4::MIN_HEADER_LEN;

/// The host bits of outer sources that come from the flow hash (see [`outer_source`]).
#[inline]
fn flow_host_mask(port: &PortInfo) -> u32 {
    match port.flow_source {
        Some((_, plen)) if plen < 32 => u32::MAX >> plen,
        _ => 0,
    }
}

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

/// Rewrites `pkt` (classified as `meta`) for `member`, which is reached through `port`, field
/// by field (the reference for [`EncapTemplate::apply`], which the pipeline uses).
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

/// What a template writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TemplateMode {
    /// The member is not in the snapshot (or its port is not): `NoMember`.
    NoMember,
    L2,
    Ipip,
    Vxlan,
}

/// One member's encapsulation, precomputed when the snapshot is built: the header bytes that
/// are the same for every packet to the member, and what [`apply`](Self::apply) needs to
/// finish them. Two cache lines, read instead of the member's and its port's entries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct EncapTemplate {
    /// l2: the Ethernet header (14 bytes). ipip: Ethernet + outer IPv4 with TOS, total length,
    /// DF and checksum 0 and the source's flow bits clear (34). vxlan: Ethernet + outer IPv4
    /// (DF set) + UDP with source port, length and checksum 0 + VXLAN + the inner Ethernet
    /// header (64).
    bytes: [u8; TEMPLATE_LEN],
    /// The unfolded one's complement sum of the template's outer IPv4 header.
    ip_sum: u32,
    /// The outer source's host bits taken from the flow hash (0: none).
    src_host_mask: u32,
    /// The egress port's MTU.
    mtu: u16,
    /// The egress port.
    port: PortId,
    mode: TemplateMode,
    /// Whether the egress port has an outer source (ipip and vxlan need one).
    has_source: bool,
}

impl EncapTemplate {
    /// The template of a member id absent from the snapshot.
    pub const NO_MEMBER: EncapTemplate = EncapTemplate {
        bytes: [0; TEMPLATE_LEN],
        ip_sum: 0,
        src_host_mask: 0,
        mtu: 0,
        port: 0,
        mode: TemplateMode::NoMember,
        has_source: false,
    };

    /// The template of `member`, reached through `port` (`None`: the member's port is not in
    /// the snapshot, and the template drops with `NoMember` as the worker always did). Built
    /// with the same wire emitters as [`encap`], over zeroed bytes.
    pub fn new(member: &Member, port: Option<&PortInfo>) -> EncapTemplate {
        let Some(port) = port else {
            return EncapTemplate::NO_MEMBER;
        };
        let src = outer_source(port, 0);
        let mut t = EncapTemplate {
            mtu: port.mtu,
            port: member.port,
            has_source: src.is_some(),
            src_host_mask: flow_host_mask(port),
            ..EncapTemplate::NO_MEMBER
        };
        let eth = eth_repr(member, port);
        // Writes into fixed-size arrays of sufficient length cannot fail.
        let _ = emit_eth(&mut t.bytes, &eth);
        // Checksums are finished per packet; the template's field stays 0.
        let no_tx = ChecksumCapabilities {
            ipv4: Checksum::Rx,
            ..ChecksumCapabilities::software()
        };
        let src = src.unwrap_or(0);
        match member.encap {
            Encap::L2 => t.mode = TemplateMode::L2,
            Encap::Ipip => {
                t.mode = TemplateMode::Ipip;
                let outer = outer_ipv4(src, member, protocol::IPIP, 0, 0, false);
                outer.emit_with(
                    &mut Ipv4Packet::new_unchecked(&mut t.bytes[OUTER_IP..]),
                    &no_tx,
                );
            }
            Encap::Vxlan {
                vni,
                inner_mac,
                udp_port,
            } => {
                t.mode = TemplateMode::Vxlan;
                let outer = outer_ipv4(src, member, protocol::UDP, 0, 0, true);
                outer.emit_with(
                    &mut Ipv4Packet::new_unchecked(&mut t.bytes[OUTER_IP..]),
                    &no_tx,
                );
                let udp = UdpRepr {
                    src_port: 0,
                    dst_port: udp_port,
                };
                let l4 = &mut t.bytes[OUTER_UDP..];
                udp.emit(
                    &mut UdpPacket::new_unchecked(&mut *l4),
                    0,
                    outer.src_addr,
                    outer.dst_addr,
                    false,
                );
                VxlanRepr { vni }.emit(&mut VxlanPacket::new_unchecked(&mut l4[udp::HEADER_LEN..]));
                let inner_eth = EthernetRepr {
                    dst_addr: inner_mac,
                    src_addr: port.mac,
                    ethertype: EtherType::IPV4,
                };
                let _ = emit_eth(&mut t.bytes[VXLAN_OVERHEAD..], &inner_eth);
            }
        }
        if t.mode != TemplateMode::L2 {
            // The lengths are added per packet: keep them out of the template.
            t.bytes[OUTER_IP + 2..OUTER_IP + 4].fill(0);
            t.bytes[OUTER_UDP + 4..OUTER_UDP + 6].fill(0);
            t.ip_sum = checksum::sum(&t.bytes[OUTER_IP..OUTER_UDP]);
        }
        t
    }

    /// Rewrites `pkt` (classified as `meta`) for the template's member: the same bytes and the
    /// same verdict as [`encap`] with the member and its port, from the precomputed headers.
    #[inline]
    pub fn apply<B: PacketBuf>(
        &self,
        pkt: &mut B,
        meta: &PacketMeta,
        caps: &ChecksumCapabilities,
    ) -> Result<PortId, DropReason> {
        let ip_len = meta.ip_len as usize;
        let l3 = meta.l3_offset as usize;
        let mtu = self.mtu as usize;
        match self.mode {
            TemplateMode::NoMember => return Err(DropReason::NoMember),
            TemplateMode::L2 => {
                if ip_len > mtu {
                    return Err(DropReason::TooBig);
                }
                if !untag(pkt, meta) {
                    return Err(DropReason::Truncated);
                }
                let Some(h) = pkt.data_mut().first_chunk_mut::<{ ethernet::HEADER_LEN }>() else {
                    return Err(DropReason::Truncated);
                };
                h.copy_from_slice(&self.bytes[..ethernet::HEADER_LEN]);
            }
            TemplateMode::Ipip => {
                if ipv4::MIN_HEADER_LEN + ip_len > mtu {
                    return Err(DropReason::TooBig);
                }
                if !self.has_source {
                    return Err(DropReason::NoSourceAddress);
                }
                let flow_bits = self.flow_bits(pkt, meta);
                let (tos, flags) = inner_fields_and_trim(pkt, l3, ip_len)?;
                // One move of the packet's start instead of dropping the Ethernet header and
                // then prepending: the same headroom condition (headroom + l3 >= 34).
                let moved = if l3 <= IPIP_OVERHEAD {
                    pkt.prepend(IPIP_OVERHEAD - l3)
                } else {
                    pkt.adj(l3 - IPIP_OVERHEAD)
                };
                if !moved {
                    return Err(if l3 <= IPIP_OVERHEAD {
                        DropReason::NoHeadroom
                    } else {
                        DropReason::Truncated
                    });
                }
                let Some(h) = pkt.data_mut().first_chunk_mut::<IPIP_OVERHEAD>() else {
                    return Err(DropReason::Truncated);
                };
                h.copy_from_slice(&self.bytes[..IPIP_OVERHEAD]);
                // RFC 2003 §3.1: TOS and DF copied from the inner header.
                self.finish_ipv4(h, tos, flags & DF_BYTE, ip_len, flow_bits, caps);
            }
            TemplateMode::Vxlan => {
                let inner_frame = ethernet::HEADER_LEN + ip_len;
                let udp_len = udp::HEADER_LEN + vxlan::HEADER_LEN + inner_frame;
                if ipv4::MIN_HEADER_LEN + udp_len > mtu {
                    return Err(DropReason::TooBig);
                }
                if !self.has_source {
                    return Err(DropReason::NoSourceAddress);
                }
                let hash = pkt.rss_hash().unwrap_or(meta.hash);
                let (tos, _) = inner_fields_and_trim(pkt, l3, ip_len)?;
                if !untag(pkt, meta) {
                    return Err(DropReason::Truncated);
                }
                if !pkt.prepend(VXLAN_OVERHEAD) {
                    return Err(DropReason::NoHeadroom);
                }
                let Some(h) = pkt.data_mut().first_chunk_mut::<TEMPLATE_LEN>() else {
                    return Err(DropReason::Truncated);
                };
                *h = self.bytes;
                // DF is in the template (always set for vxlan).
                self.finish_ipv4(h, tos, 0, udp_len, hash & self.src_host_mask, caps);
                let src_port = VXLAN_SRC_PORT_BASE + (hash % VXLAN_SRC_PORTS) as u16;
                h[OUTER_UDP..OUTER_UDP + 2].copy_from_slice(&src_port.to_be_bytes());
                h[OUTER_UDP + 4..OUTER_UDP + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            }
        }
        Ok(self.port)
    }

    /// The outer source's flow bits of an ipip packet (only read the hash when they are used).
    #[inline(always)]
    fn flow_bits<B: PacketBuf>(&self, pkt: &B, meta: &PacketMeta) -> u32 {
        if self.src_host_mask == 0 {
            return 0;
        }
        pkt.rss_hash().unwrap_or(meta.hash) & self.src_host_mask
    }

    /// Patches the outer IPv4 header copied from the template into `h` (behind the Ethernet
    /// header): TOS, the flag byte's extra bits, the total length for `payload_len`, the
    /// source's flow bits, and the checksum from the template's partial sum plus those words.
    /// Only narrow stores, values taken from the template: nothing just copied is read back
    /// (a narrow load of a wide store's bytes, or the reverse, can stall store forwarding).
    #[inline(always)]
    fn finish_ipv4(
        &self,
        h: &mut [u8],
        tos: u8,
        flags: u8,
        payload_len: usize,
        flow_bits: u32,
        caps: &ChecksumCapabilities,
    ) {
        let Some(ip) = h
            .get_mut(OUTER_IP..)
            .and_then(|b| b.first_chunk_mut::<{ ipv4::MIN_HEADER_LEN }>())
        else {
            return;
        };
        let total = (ipv4::MIN_HEADER_LEN + payload_len) as u16;
        ip[1] = tos;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let t = &self.bytes;
        ip[6] = t[OUTER_IP + 6] | flags;
        if flow_bits != 0 {
            let src = u32::from_be_bytes([
                t[OUTER_IP + 12],
                t[OUTER_IP + 13],
                t[OUTER_IP + 14],
                t[OUTER_IP + 15],
            ]) | flow_bits;
            ip[12..16].copy_from_slice(&src.to_be_bytes());
        }
        if caps.ipv4.tx() {
            // The template's bits and the added ones are disjoint, so adding the words is
            // adding the fields.
            let sum = self.ip_sum
                + u32::from(tos)
                + u32::from(total)
                + (u32::from(flags) << 8)
                + (flow_bits >> 16)
                + (flow_bits & 0xffff);
            // At most 17 bits: two folds finish it.
            let sum = (sum & 0xffff) + (sum >> 16);
            let sum = (sum & 0xffff) + (sum >> 16);
            ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        }
    }
}

/// The TOS byte and the flags byte of the inner IPv4 header at `l3` (see [`inner_tos_flags`]),
/// then the Ethernet padding behind the IP packet trimmed: one look at the buffer for both.
#[inline(always)]
fn inner_fields_and_trim<B: PacketBuf>(
    pkt: &mut B,
    l3: usize,
    ip_len: usize,
) -> Result<(u8, u8), DropReason> {
    let d = pkt.data();
    let extra = d.len().saturating_sub(l3 + ip_len);
    let fields = inner_tos_flags(d, l3)?;
    if extra > 0 {
        pkt.trim(extra);
    }
    Ok(fields)
}

/// The DF bit in the high byte of the IPv4 flags/fragment-offset field.
const DF_BYTE: u8 = 0x40;

/// The TOS byte and the flags byte (DF, MF and the top of the fragment offset) of the inner
/// IPv4 header at `l3`. Classify validated the header; the length check keeps this panic-free.
#[inline(always)]
fn inner_tos_flags(d: &[u8], l3: usize) -> Result<(u8, u8), DropReason> {
    match d
        .get(l3..)
        .and_then(|b| b.first_chunk::<{ ipv4::MIN_HEADER_LEN }>())
    {
        Some(ip) => Ok((ip[1], ip[6])),
        None => Err(DropReason::Truncated),
    }
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

    /// A splitmix64 stream: deterministic cases, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn bytes<const N: usize>(&mut self) -> [u8; N] {
            core::array::from_fn(|_| self.next() as u8)
        }
    }

    /// Issue 12: the template path writes the same bytes and gives the same verdict as the
    /// field-by-field builder, for random members (every encap, flow sources of every prefix
    /// length, ports without an address, small MTUs), random packets (TCP/UDP, TOS, DF/MF,
    /// 802.1Q tags, Ethernet padding, RSS hash or not), scarce headroom full of stale bytes,
    /// and both checksum settings.
    #[test]
    fn template_matches_the_field_by_field_builder() {
        let s = snap();
        let offload = ChecksumCapabilities {
            ipv4: crate::wire::Checksum::Rx,
            ..CAPS
        };
        let mut rng = Rng(12);
        let (mut forwarded, mut dropped, mut modes) = (0, 0, [0; 3]);
        for case in 0..4000 {
            let mut port = s.ports[1].clone();
            port.mac = rng.bytes();
            port.ipv4 = (rng.below(10) != 0).then(|| Ipv4Addr::from(rng.bytes::<4>()));
            port.flow_source = (rng.below(2) == 0)
                .then(|| (Ipv4Addr::from(rng.bytes::<4>()), rng.below(34) as u8));
            port.mtu = if rng.below(4) == 0 {
                40 + rng.below(200) as u16
            } else {
                1500
            };
            let mut m = s.member(MemberId(0)).unwrap().clone();
            m.mac = rng.bytes();
            m.ipv4 = Ipv4Addr::from(rng.bytes::<4>());
            let mode = rng.below(3) as usize;
            m.encap = match mode {
                0 => Encap::L2,
                1 => Encap::Ipip,
                _ => Encap::Vxlan {
                    vni: rng.next() as u32,
                    inner_mac: rng.bytes(),
                    udp_port: rng.next() as u16,
                },
            };

            let (proto, l4) = if rng.below(2) == 0 {
                let mut t = tcp(1024 + rng.below(60000) as u16, 80, rng.next() as u8).to_vec();
                t.extend((0..rng.below(200)).map(|_| rng.next() as u8));
                (6, t)
            } else {
                let n = rng.below(200) as usize;
                let mut u = vec![0u8; 8 + n];
                u[0..2].copy_from_slice(&(1024 + rng.below(60000) as u16).to_be_bytes());
                u[2..4].copy_from_slice(&53u16.to_be_bytes());
                u[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
                (17, u)
            };
            let flags_frag = [0, 0x4000, 0x2000][rng.below(3) as usize];
            let mut f = frame(ALIAS, proto, flags_frag, &l4);
            f[15] = rng.next() as u8;
            f[24..26].fill(0);
            let c = crate::wire::checksum::checksum(&f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f.extend((0..rng.below(3) * rng.below(24)).map(|_| rng.next() as u8));
            if rng.below(4) == 0 {
                f.splice(12..12, [0x81, 0x00, 0x00, rng.next() as u8 & 0x0f]);
            }
            let meta = classify(&s, 0, &f).unwrap_or_else(|v| panic!("case {case}: {v:?}"));

            // Headroom 0..=128 holding stale bytes, which both must overwrite.
            let headroom = rng.below(129) as usize;
            let stale: Vec<u8> = (0..headroom).map(|_| rng.next() as u8).collect();
            let mut old = VecBuf::with_headroom(&[stale, f].concat(), 0);
            assert!(old.adj(headroom));
            old.set_rss_hash((rng.below(2) == 0).then(|| rng.next() as u32));
            let mut new = old.clone();
            let caps = if rng.below(2) == 0 { CAPS } else { offload };

            let want = encap(&mut old, &meta, &m, &port, &caps);
            let got = EncapTemplate::new(&m, Some(&port)).apply(&mut new, &meta, &caps);
            assert_eq!(got, want, "case {case}: verdict");
            if want.is_ok() {
                assert_eq!(new.data(), old.data(), "case {case}: bytes ({:?})", m.encap);
                forwarded += 1;
                modes[mode] += 1;
            } else {
                dropped += 1;
            }
        }
        // The cases cover every mode and both outcomes.
        assert!(forwarded > 2000 && dropped > 200, "{forwarded} {dropped}");
        assert!(modes.iter().all(|&n| n > 500), "{modes:?}");
    }

    #[test]
    fn absent_members_and_ports_drop_with_no_member() {
        let s = snap();
        let (mut b, meta, m, _) = setup(syn(), false);
        assert_eq!(
            EncapTemplate::new(&m, None).apply(&mut b, &meta, &CAPS),
            Err(DropReason::NoMember)
        );
        assert_eq!(
            s.encap_template(MemberId(99)).apply(&mut b, &meta, &CAPS),
            Err(DropReason::NoMember)
        );
        // The snapshot's templates are its members' (built with it).
        let port = &s.ports[m.port as usize];
        assert_eq!(s.encap_template(m.id), &EncapTemplate::new(&m, Some(port)));
        assert_eq!(s.encap_template(m.id).apply(&mut b, &meta, &CAPS), Ok(1));
    }
}
