//! Frames the control plane originates (router messages, RIP, BFD): Ethernet II with at most
//! one 802.1Q tag, a 20-byte IPv4 header, UDP with its checksum. Built from the pipeline's wire
//! `Repr`s so there is one encoder of each header in the workspace, and one frame builder for
//! the control plane.

use std::net::Ipv4Addr;

use clua_pipeline::wire::ethernet::{EtherType, EthernetFrame, EthernetRepr, VLAN_TAG_LEN};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use clua_pipeline::wire::udp::{UdpPacket, UdpRepr};

use crate::model::Mac;

/// Ethernet + IPv4 + UDP header bytes (untagged).
pub const UDP_HEADERS_LEN: usize = 14 + 20 + 8;

/// Addresses and ports of one UDP datagram in an Ethernet frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpFrame {
    /// Ethernet source.
    pub src_mac: Mac,
    /// Ethernet destination.
    pub dst_mac: Mac,
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// TTL.
    pub ttl: u8,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// The IPv4 TOS byte (DSCP and ECN).
    pub dscp_ecn: u8,
    /// The IPv4 DF flag.
    pub dont_frag: bool,
    /// An 802.1Q TCI to tag the frame with (an answer goes back on the VLAN it came on).
    pub vlan_tci: Option<u16>,
}

impl UdpFrame {
    /// The whole frame carrying `payload` (at most 65,507 bytes, else `None`).
    pub fn build(&self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() > 65_507 {
            return None;
        }
        let l3 = 14 + self.vlan_tci.map_or(0, |_| VLAN_TAG_LEN);
        let l4 = l3 + 20;
        let mut f = vec![0u8; l4 + 8 + payload.len()];
        f[l4 + 8..].copy_from_slice(payload);
        EthernetRepr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: if self.vlan_tci.is_some() {
                EtherType::VLAN
            } else {
                EtherType::IPV4
            },
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        if let Some(tci) = self.vlan_tci {
            f[14..16].copy_from_slice(&tci.to_be_bytes());
            f[16..18].copy_from_slice(&EtherType::IPV4.to_be_bytes());
        }
        UdpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
        }
        .emit(
            &mut UdpPacket::new_unchecked(&mut f[l4..]),
            payload.len(),
            self.src,
            self.dst,
            true,
        );
        Ipv4Repr {
            src_addr: self.src,
            dst_addr: self.dst,
            next_header: protocol::UDP,
            payload_len: 8 + payload.len(),
            hop_limit: self.ttl,
            dscp_ecn: self.dscp_ecn,
            dont_frag: self.dont_frag,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[l3..]));
        Some(f)
    }
}

/// The UDP payload of a punted frame (one 802.1Q tag allowed), with the IPv4 source and TTL and
/// the UDP source port, if it is an unfragmented IPv4/UDP datagram whose IPv4 checksum is right.
pub fn udp_payload(frame: &[u8]) -> Option<(Ipv4Addr, u8, u16, &[u8])> {
    use clua_pipeline::wire::ethernet::parse_l2;
    let l2 = parse_l2(frame).ok()?;
    if l2.ethertype != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(frame.get(l2.l3_offset..)?).ok()?;
    if ip.next_header() != protocol::UDP || ip.is_fragment() || !ip.verify_checksum() {
        return None;
    }
    let src = ip.src_addr();
    let ttl = ip.hop_limit();
    let start = l2.l3_offset + usize::from(ip.header_len());
    let end = l2.l3_offset + usize::from(ip.total_len());
    let udp = UdpPacket::new_checked(frame.get(start..end)?).ok()?;
    let sport = udp.src_port();
    let len = usize::from(udp.len());
    frame
        .get(start + 8..start + len)
        .map(|payload| (src, ttl, sport, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checksums() {
        let spec = UdpFrame {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [0xff; 6],
            src: Ipv4Addr::new(192, 0, 2, 2),
            dst: Ipv4Addr::new(192, 0, 2, 127),
            ttl: 1,
            src_port: 9472,
            dst_port: 9472,
            dscp_ecn: 0,
            dont_frag: false,
            vlan_tci: None,
        };
        let f = spec.build(b"hello").unwrap();
        assert_eq!(f.len(), UDP_HEADERS_LEN + 5);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.hop_limit(), 1);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(spec.src, spec.dst));
        assert_eq!(
            udp_payload(&f),
            Some((spec.src, 1, 9472, &b"hello"[..])),
            "what was built is what is read"
        );
        // A broken IPv4 checksum, a truncated datagram, a fragment: nothing.
        let mut bad = f.clone();
        bad[22] ^= 1;
        assert_eq!(udp_payload(&bad), None);
        assert_eq!(udp_payload(&f[..f.len() - 1]), None);
        let mut frag = f.clone();
        frag[20] = 0x20;
        assert_eq!(udp_payload(&frag), None);
        assert_eq!(spec.build(&vec![0; 65_508]), None);
        // Tagged, with a TOS and DF: the same datagram behind the tag.
        let tagged = UdpFrame {
            vlan_tci: Some(0x2064),
            dscp_ecn: 0xc0,
            dont_frag: true,
            ..spec
        }
        .build(b"hello")
        .unwrap();
        assert_eq!(&tagged[12..18], &[0x81, 0x00, 0x20, 0x64, 0x08, 0x00]);
        let ip = Ipv4Packet::new_checked(&tagged[18..]).unwrap();
        assert!(ip.verify_checksum() && ip.dont_frag() && ip.dscp_ecn() == 0xc0);
        assert_eq!(
            udp_payload(&tagged),
            Some((spec.src, 1, 9472, &b"hello"[..]))
        );
    }
}
