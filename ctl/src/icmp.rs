//! ICMP in alias context (CA7): the router answers echo requests to alias addresses and to its
//! own port addresses itself, so `ping alias` works whichever members are up.

use clua_pipeline::snapshot::{PortId, Snapshot};
use clua_pipeline::wire::ethernet::{parse_l2, EtherType, EthernetFrame};
use clua_pipeline::wire::icmpv4::{Icmpv4Packet, ECHO_REPLY, ECHO_REQUEST};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet};

/// What the responder did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpOutcome {
    /// Rewritten in place into the echo reply; transmit on the same port.
    Reply,
    /// Not an echo request to an alias or router address.
    Ignored,
    /// Malformed (bad lengths or checksums).
    Malformed,
}

/// Turns an ICMP echo request to an alias or router address into the echo reply, in place.
pub fn respond_echo(frame: &mut [u8], snapshot: &Snapshot, port: PortId) -> IcmpOutcome {
    let Ok(l2) = parse_l2(frame) else {
        return IcmpOutcome::Malformed;
    };
    if l2.ethertype != EtherType::IPV4 {
        return IcmpOutcome::Malformed;
    }
    let Some(port_info) = snapshot.ports.get(port as usize) else {
        return IcmpOutcome::Ignored;
    };
    let l3 = l2.l3_offset;
    let (src, dst) = {
        let Ok(ip) = Ipv4Packet::new_checked(&frame[l3..]) else {
            return IcmpOutcome::Malformed;
        };
        if !ip.verify_checksum() || ip.is_fragment() || ip.next_header() != protocol::ICMP {
            return IcmpOutcome::Malformed;
        }
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            return IcmpOutcome::Malformed;
        };
        if !icmp.verify_checksum() {
            return IcmpOutcome::Malformed;
        }
        if icmp.msg_type() != ECHO_REQUEST || icmp.msg_code() != 0 {
            return IcmpOutcome::Ignored;
        }
        (ip.src_addr(), ip.dst_addr())
    };
    let d = u32::from(dst);
    if snapshot.alias_by_addr(d).is_none() && !snapshot.is_router_addr(d) {
        return IcmpOutcome::Ignored;
    }
    {
        let mut eth = EthernetFrame::new_unchecked(&mut *frame);
        let peer = eth.src_addr();
        eth.set_dst_addr(peer);
        eth.set_src_addr(port_info.mac);
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[l3..]);
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_hop_limit(64);
    ip.fill_checksum();
    let mut icmp = Icmpv4Packet::new_unchecked(ip.payload_mut());
    icmp.set_msg_type(ECHO_REPLY);
    icmp.fill_checksum();
    IcmpOutcome::Reply
}
