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

#[cfg(test)]
mod tests {
    use super::*;
    use clua_pipeline::snapshot::{PortInfo, PortRole};
    use clua_pipeline::wire::checksum;
    use std::net::Ipv4Addr;

    fn snapshot() -> Snapshot {
        Snapshot::build(
            1,
            vec![PortInfo {
                name: "client".into(),
                role: PortRole::Client,
                mac: [2, 0, 0, 0, 0, 1],
                ipv4: Some(Ipv4Addr::new(198, 51, 100, 2)),
                prefix_len: 24,
                mtu: 1500,
                flow_source: None,
            }],
            vec![],
            vec![("web".into(), Ipv4Addr::new(198, 51, 100, 100), vec![])],
            &[],
        )
        .unwrap()
    }

    /// An echo request built by hand, checksums computed with the RFC 1071 sum.
    fn echo(dst: [u8; 4], icmp_type: u8) -> Vec<u8> {
        let mut icmp = vec![icmp_type, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
        let c = checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![
            0x45,
            0,
            0,
            20 + icmp.len() as u8,
            0,
            7,
            0x40,
            0,
            64,
            1,
            0,
            0,
        ];
        ip.extend_from_slice(&[198, 51, 100, 10]);
        ip.extend_from_slice(&dst);
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0x10, 0x08, 0x00];
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn echo_to_alias_is_answered_from_the_alias() {
        let s = snapshot();
        let mut f = echo([198, 51, 100, 100], 8);
        assert_eq!(respond_echo(&mut f, &s, 0), IcmpOutcome::Reply);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 0x10]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[26..30], &[198, 51, 100, 100], "source is the alias");
        assert_eq!(&f[30..34], &[198, 51, 100, 10]);
        assert_eq!(f[34], 0, "echo reply");
        assert_eq!(
            &f[38..],
            &[0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'],
            "ident, seq, data kept"
        );
        assert_eq!(checksum::checksum(&f[14..34]), 0, "IPv4 checksum valid");
        assert_eq!(checksum::checksum(&f[34..]), 0, "ICMP checksum valid");
        // The router's own address is answered too.
        assert_eq!(
            respond_echo(&mut echo([198, 51, 100, 2], 8), &s, 0),
            IcmpOutcome::Reply
        );
    }

    #[test]
    fn other_icmp_and_other_hosts_are_ignored_and_bad_checksums_malformed() {
        let s = snapshot();
        assert_eq!(
            respond_echo(&mut echo([198, 51, 100, 7], 8), &s, 0),
            IcmpOutcome::Ignored
        );
        assert_eq!(
            respond_echo(&mut echo([198, 51, 100, 100], 13), &s, 0),
            IcmpOutcome::Ignored
        );
        let mut bad = echo([198, 51, 100, 100], 8);
        bad[40] ^= 0xff;
        assert_eq!(respond_echo(&mut bad, &s, 0), IcmpOutcome::Malformed);
        let mut short = echo([198, 51, 100, 100], 8);
        short.truncate(36);
        assert_eq!(respond_echo(&mut short, &s, 0), IcmpOutcome::Malformed);
    }
}
