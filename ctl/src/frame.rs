//! Frames the control plane originates (router messages; RIP and BFD use the same shape):
//! untagged Ethernet II, a 20-byte IPv4 header, UDP with its checksum. Built from the pipeline's
//! wire `Repr`s so there is one encoder of each header in the workspace.

use std::net::Ipv4Addr;

use clua_pipeline::wire::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use clua_pipeline::wire::udp::{UdpPacket, UdpRepr};

use crate::model::Mac;

/// Ethernet + IPv4 + UDP header bytes.
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
}

impl UdpFrame {
    /// The whole frame carrying `payload` (at most 65,507 bytes, else `None`).
    pub fn build(&self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() > 65_507 {
            return None;
        }
        let mut f = vec![0u8; UDP_HEADERS_LEN + payload.len()];
        f[UDP_HEADERS_LEN..].copy_from_slice(payload);
        EthernetRepr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: EtherType::IPV4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        UdpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
        }
        .emit(
            &mut UdpPacket::new_unchecked(&mut f[34..]),
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
            dscp_ecn: 0,
            dont_frag: false,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
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
    }
}
