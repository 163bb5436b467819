//! ARP in alias context: the proxy-ARP master answers requests for its aliases (CA4) and
//! announces them with gratuitous ARP (RFC 5227 §2.3 announcements) when it takes them over.
//!
//! Only aliases in the port's own subnet are answered on a client port: an alias on a virtual
//! subnet is reached through a route, not proxy ARP (seed 000 Table 6-1). The router also
//! answers for its own port address, on any port.

use std::net::Ipv4Addr;

use clua_pipeline::snapshot::{PortId, PortRole, Snapshot};
use clua_pipeline::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
use clua_pipeline::wire::ethernet::{parse_l2, EtherType, EthernetFrame, BROADCAST};

/// What the responder did with an ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOutcome {
    /// The frame was rewritten in place into a reply; transmit it on the same port.
    Reply,
    /// A valid ARP packet not for us (another host's address, a reply, a virtual-subnet alias).
    Ignored,
    /// Not a well-formed Ethernet/IPv4 ARP packet.
    Malformed,
}

/// Whether the router answers ARP for `target` on `port`.
pub fn answers_for(snapshot: &Snapshot, port: PortId, target: Ipv4Addr) -> bool {
    let Some(p) = snapshot.ports.get(port as usize) else {
        return false;
    };
    if p.ipv4 == Some(target) {
        return true;
    }
    if p.role != PortRole::Client || snapshot.alias_by_addr(u32::from(target)).is_none() {
        return false;
    }
    match p.ipv4 {
        None => true,
        Some(own) => {
            let mask = if p.prefix_len == 0 {
                0
            } else {
                u32::MAX << (32 - p.prefix_len as u32)
            };
            u32::from(own) & mask == u32::from(target) & mask
        }
    }
}

/// Turns an ARP request for an address we answer for into the reply, in place.
/// A VLAN tag, if present, is kept so the reply goes back on the same VLAN.
pub fn respond(frame: &mut [u8], snapshot: &Snapshot, port: PortId) -> ArpOutcome {
    let Ok(l2) = parse_l2(frame) else {
        return ArpOutcome::Malformed;
    };
    if l2.ethertype != EtherType::ARP {
        return ArpOutcome::Malformed;
    }
    let Some(port_info) = snapshot.ports.get(port as usize) else {
        return ArpOutcome::Ignored;
    };
    let our_mac = port_info.mac;
    let request = {
        let Ok(pkt) = ArpPacket::new_checked(&frame[l2.l3_offset..]) else {
            return ArpOutcome::Malformed;
        };
        match ArpRepr::parse(&pkt) {
            Ok(r) => r,
            Err(_) => return ArpOutcome::Malformed,
        }
    };
    if request.operation != ArpOperation::Request
        || !answers_for(snapshot, port, request.target_protocol_addr)
    {
        return ArpOutcome::Ignored;
    }
    // Never answer a probe's zero sender address with a unicast to nobody: RFC 5227 probes use
    // sender 0.0.0.0 and still deserve a reply (conflict detection), sent to the sender MAC.
    let reply = ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: our_mac,
        source_protocol_addr: request.target_protocol_addr,
        target_hardware_addr: request.source_hardware_addr,
        target_protocol_addr: request.source_protocol_addr,
    };
    {
        let mut eth = EthernetFrame::new_unchecked(&mut *frame);
        eth.set_dst_addr(request.source_hardware_addr);
        eth.set_src_addr(our_mac);
    }
    let mut pkt = ArpPacket::new_unchecked(&mut frame[l2.l3_offset..]);
    reply.emit(&mut pkt);
    ArpOutcome::Reply
}

/// Length of an untagged ARP frame (without padding).
pub const ARP_FRAME_LEN: usize = 14 + 28;

/// Writes a gratuitous ARP announcement for `addr` at `mac` (RFC 5227 §2.3: an ARP request with
/// sender and target protocol address both `addr`, broadcast).
pub fn gratuitous(buf: &mut [u8; ARP_FRAME_LEN], mac: [u8; 6], addr: Ipv4Addr) {
    {
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.set_dst_addr(BROADCAST);
        eth.set_src_addr(mac);
        eth.set_ethertype(EtherType::ARP);
    }
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: addr,
        target_hardware_addr: [0; 6],
        target_protocol_addr: addr,
    };
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
}
