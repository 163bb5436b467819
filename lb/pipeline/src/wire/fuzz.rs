//! Shared by the stable "fuzz" tests in [`super`] and the cargo-fuzz target in `fuzz/` (built with
//! `--cfg fuzzing`): runs every parser over a byte slice, reads every field of whatever parses,
//! writes every field back to a copy (which must not change), and checks that each `Repr`
//! survives `parse → emit → parse`. Panics (that is the point) on a violated contract.
//!
//! Not part of the API: only compiled for tests and fuzzing.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::vec;

use super::arp::{ArpPacket, ArpRepr};
use super::checksum::ChecksumCapabilities;
use super::ethernet::{parse_l2, EthernetFrame, EthernetRepr};
use super::icmp_quote::{QuotedPacket, QuotedRepr};
use super::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use super::ipv4::{Ipv4Packet, Ipv4Repr};
use super::tcp::{TcpPacket, TcpRepr};
use super::udp::{UdpPacket, UdpRepr};
use super::vxlan::{VxlanPacket, VxlanRepr};

const SRC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const DST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

/// Sample packets for the stable tests: each is mutated and truncated.
#[cfg(test)]
pub(crate) static SAMPLES: &[&[u8]] = &[
    &super::ethernet::tests::FRAME_BYTES,
    &super::ethernet::tests::TAGGED_BYTES,
    &super::arp::tests::REQUEST_BYTES,
    &super::arp::tests::REPLY_BYTES,
    &super::ipv4::tests::SYN_BYTES,
    &super::ipv4::tests::SYN_OPTS_BYTES,
    &super::udp::tests::IPV4_UDP_BYTES,
    &super::icmpv4::tests::IPV4_ECHO_BYTES,
    &super::icmp_quote::tests::QUOTE_BYTES,
    &super::vxlan::tests::VXLAN_BYTES,
    &OUTER_VXLAN_BYTES,
];

/// A whole VXLAN-encapsulated SYN: outer Ethernet/IPv4/UDP(4789, checksum 0)/VXLAN(VNI 100),
/// inner Ethernet/IPv4/TCP. Built by `vxlan_sample` below and compared with it in a test.
#[cfg(test)]
static OUTER_VXLAN_BYTES: [u8; 104] = {
    let mut b = [0u8; 104];
    // Outer Ethernet: 02:00:00:00:00:02 <- 02:00:00:00:00:01, IPv4.
    let eth = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    // Outer IPv4 10.0.0.1 -> 10.0.0.2, UDP, total 90, TTL 64, DF, checksum 0x2691 (checked with Python).
    let ip = [
        0x45, 0x00, 0x00, 0x5a, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x26, 0x91, 10, 0, 0, 1, 10, 0,
        0, 2,
    ];
    // UDP 49152 -> 4789, length 70, no checksum; VXLAN VNI 100.
    let udp = [0xc0, 0x00, 0x12, 0xb5, 0x00, 0x46, 0x00, 0x00];
    let vxlan = [0x08, 0, 0, 0, 0, 0, 100, 0];
    // Inner Ethernet: member MAC <- router MAC, IPv4.
    let inner_eth = [0x02, 0, 0, 0, 0, 0x10, 0x02, 0, 0, 0, 0, 0x20, 0x08, 0x00];
    let mut i = 0;
    while i < 14 {
        b[i] = eth[i];
        b[50 + i] = inner_eth[i];
        i += 1;
    }
    let mut i = 0;
    while i < 20 {
        b[14 + i] = ip[i];
        i += 1;
    }
    let mut i = 0;
    while i < 8 {
        b[34 + i] = udp[i];
        b[42 + i] = vxlan[i];
        i += 1;
    }
    let syn = super::ipv4::tests::SYN_BYTES;
    let mut i = 0;
    while i < 40 {
        b[64 + i] = syn[i];
        i += 1;
    }
    b
};

/// Every parser over `data`, and over the layers found inside it.
pub fn exercise(data: &[u8]) {
    all(data);
    if let Ok(l2) = parse_l2(data) {
        assert!(l2.l3_offset <= data.len());
        if let Some(vlan) = l2.vlan {
            assert!(vlan < 4096);
        }
        all(&data[l2.l3_offset..]);
        if let Ok(ip) = Ipv4Packet::new_checked(&data[l2.l3_offset..]) {
            let payload = ip.payload();
            all(payload);
            if let Ok(udp) = UdpPacket::new_checked(payload) {
                all(udp.payload());
                if let Ok(vx) = VxlanPacket::new_checked(udp.payload()) {
                    exercise_inner(vx.payload());
                }
            }
        }
    }
    if let Ok(ip) = Ipv4Packet::new_checked(data) {
        all(ip.payload());
    }
}

/// The inner frame of a VXLAN packet: one more level, no further recursion.
fn exercise_inner(frame: &[u8]) {
    all(frame);
    if let Ok(l2) = parse_l2(frame) {
        all(&frame[l2.l3_offset..]);
        if let Ok(ip) = Ipv4Packet::new_checked(&frame[l2.l3_offset..]) {
            all(ip.payload());
        }
    }
}

/// Each parser on `data` alone.
pub fn all(data: &[u8]) {
    let _ = black_box(parse_l2(data));
    ethernet(data);
    arp(data);
    ipv4(data);
    tcp(data);
    udp(data);
    icmpv4(data);
    quoted(data);
    vxlan(data);
}

fn ethernet(data: &[u8]) {
    let Ok(f) = EthernetFrame::new_checked(data) else {
        return;
    };
    black_box((f.dst_addr(), f.src_addr(), f.ethertype(), f.payload()));
    let mut copy = data.to_vec();
    let mut m = EthernetFrame::new_checked(&mut copy[..]).unwrap();
    m.set_dst_addr(f.dst_addr());
    m.set_src_addr(f.src_addr());
    m.set_ethertype(f.ethertype());
    let _ = m.payload_mut();
    assert_eq!(copy, data);
    let repr = EthernetRepr::parse(&f).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    let again = EthernetRepr::parse(&EthernetFrame::new_checked(&out[..]).unwrap());
    assert_eq!(again, Ok(repr));
}

fn arp(data: &[u8]) {
    let Ok(p) = ArpPacket::new_checked(data) else {
        return;
    };
    black_box((
        p.hardware_type(),
        p.protocol_type(),
        p.hardware_len(),
        p.protocol_len(),
    ));
    black_box((
        p.operation(),
        p.source_hardware_addr(),
        p.source_protocol_addr(),
    ));
    black_box((p.target_hardware_addr(), p.target_protocol_addr()));
    let mut copy = data.to_vec();
    let mut m = ArpPacket::new_checked(&mut copy[..]).unwrap();
    m.set_fixed_fields();
    m.set_operation(p.operation());
    m.set_source_hardware_addr(p.source_hardware_addr());
    m.set_source_protocol_addr(p.source_protocol_addr());
    m.set_target_hardware_addr(p.target_hardware_addr());
    m.set_target_protocol_addr(p.target_protocol_addr());
    assert_eq!(copy, data);
    let repr = ArpRepr::parse(&p).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    assert_eq!(out, data[..28]);
    assert_eq!(
        ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()),
        Ok(repr)
    );
}

fn ipv4(data: &[u8]) {
    let Ok(p) = Ipv4Packet::new_checked(data) else {
        return;
    };
    black_box((
        p.version(),
        p.header_len(),
        p.dscp_ecn(),
        p.total_len(),
        p.ident(),
    ));
    black_box((
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.is_fragment(),
    ));
    black_box((
        p.hop_limit(),
        p.next_header(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
    ));
    black_box((p.verify_checksum(), p.payload()));
    assert_eq!(
        p.payload().len(),
        usize::from(p.total_len() - u16::from(p.header_len()))
    );
    let mut copy = data.to_vec();
    let mut m = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
    m.set_version(p.version());
    m.set_header_len(p.header_len());
    m.set_dscp_ecn(p.dscp_ecn());
    m.set_total_len(p.total_len());
    m.set_ident(p.ident());
    m.set_dont_frag(p.dont_frag());
    m.set_more_frags(p.more_frags());
    m.set_frag_offset(p.frag_offset());
    m.set_hop_limit(p.hop_limit());
    m.set_next_header(p.next_header());
    m.set_checksum(p.checksum());
    m.set_src_addr(p.src_addr());
    m.set_dst_addr(p.dst_addr());
    let _ = m.payload_mut();
    // A correct checksum refills to itself, except 0xffff (one's complement -0), which
    // `fill_checksum` writes as 0x0000.
    if p.verify_checksum() && p.checksum() != 0xffff {
        m.fill_checksum();
    }
    assert_eq!(copy, data);
    let Ok(repr) = Ipv4Repr::parse(&p) else {
        assert!(ChecksumCapabilities::default().ipv4.rx() && !p.verify_checksum());
        return;
    };
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
    let q = Ipv4Packet::new_checked(&out[..]).unwrap();
    assert!(q.verify_checksum());
    assert_eq!(Ipv4Repr::parse(&q), Ok(repr));
}

fn tcp(data: &[u8]) {
    let Ok(p) = TcpPacket::new_checked(data) else {
        return;
    };
    black_box((
        p.src_port(),
        p.dst_port(),
        p.seq_number(),
        p.ack_number(),
        p.header_len(),
    ));
    black_box((
        p.flags(),
        p.fin(),
        p.syn(),
        p.rst(),
        p.psh(),
        p.ack(),
        p.window_len(),
    ));
    black_box((p.checksum(), p.urgent_at(), p.options(), p.payload()));
    black_box(p.verify_checksum(SRC, DST));
    let mut copy = data.to_vec();
    let mut m = TcpPacket::new_checked(&mut copy[..]).unwrap();
    m.set_src_port(p.src_port());
    m.set_dst_port(p.dst_port());
    m.set_seq_number(p.seq_number());
    m.set_ack_number(p.ack_number());
    m.set_header_len(p.header_len());
    m.set_flags(p.flags());
    m.set_fin(p.fin());
    m.set_syn(p.syn());
    m.set_rst(p.rst());
    m.set_psh(p.psh());
    m.set_ack(p.ack());
    m.set_window_len(p.window_len());
    m.set_urgent_at(p.urgent_at());
    m.set_checksum(p.checksum());
    let _ = m.payload_mut();
    // As for IPv4: a correct checksum other than 0xffff refills to itself.
    if data.len() <= usize::from(u16::MAX) && p.verify_checksum(SRC, DST) && p.checksum() != 0xffff
    {
        m.fill_checksum(SRC, DST);
    }
    assert_eq!(copy, data);
    let repr = TcpRepr::parse(&p).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), SRC, DST);
    let q = TcpPacket::new_checked(&out[..]).unwrap();
    assert!(q.verify_checksum(SRC, DST));
    assert_eq!(TcpRepr::parse(&q), Ok(repr));
}

fn udp(data: &[u8]) {
    let Ok(p) = UdpPacket::new_checked(data) else {
        return;
    };
    black_box((
        p.src_port(),
        p.dst_port(),
        p.len(),
        p.checksum(),
        p.payload(),
    ));
    black_box(p.verify_checksum(SRC, DST));
    let mut copy = data.to_vec();
    let mut m = UdpPacket::new_checked(&mut copy[..]).unwrap();
    m.set_src_port(p.src_port());
    m.set_dst_port(p.dst_port());
    m.set_len(p.len());
    m.set_checksum(p.checksum());
    let _ = m.payload_mut();
    assert_eq!(copy, data);
    let repr = UdpRepr::parse(&p).unwrap();
    let payload = p.payload();
    let mut out = vec![0u8; repr.buffer_len() + payload.len()];
    out[repr.buffer_len()..].copy_from_slice(payload);
    for with_checksum in [false, true] {
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut out[..]),
            payload.len(),
            SRC,
            DST,
            with_checksum,
        );
        let q = UdpPacket::new_checked(&out[..]).unwrap();
        assert_eq!(q.payload(), payload);
        assert!(q.verify_checksum(SRC, DST));
        assert_eq!(with_checksum, q.checksum() != 0);
        assert_eq!(UdpRepr::parse(&q), Ok(repr));
    }
}

fn icmpv4(data: &[u8]) {
    let Ok(p) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    black_box((
        p.msg_type(),
        p.msg_code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq_no(),
    ));
    black_box((p.data(), p.verify_checksum()));
    let mut copy = data.to_vec();
    let mut m = Icmpv4Packet::new_checked(&mut copy[..]).unwrap();
    m.set_msg_type(p.msg_type());
    m.set_msg_code(p.msg_code());
    m.set_checksum(p.checksum());
    m.set_echo_ident(p.echo_ident());
    m.set_echo_seq_no(p.echo_seq_no());
    let _ = m.data_mut();
    m.fill_checksum();
    assert!(m.verify_checksum());
    if p.verify_checksum() {
        // 0x0000 and 0xffff are the same one's complement number; fill writes the former.
        if p.checksum() != 0xffff {
            assert_eq!(copy, data);
        }
    }
    let caps = ChecksumCapabilities::software();
    let Ok(repr) = Icmpv4Repr::parse_with(&p, &ChecksumCapabilities::no_rx_verification()) else {
        return;
    };
    let mut out = data.to_vec();
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]), &caps);
    let q = Icmpv4Packet::new_checked(&out[..]).unwrap();
    assert!(q.verify_checksum());
    assert_eq!(Icmpv4Repr::parse_with(&q, &caps), Ok(repr));
    assert_eq!(q.data(), p.data());
}

fn quoted(data: &[u8]) {
    let Ok(p) = QuotedPacket::new_checked(data) else {
        return;
    };
    black_box((
        p.version(),
        p.header_len(),
        p.dscp_ecn(),
        p.total_len(),
        p.ident(),
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.hop_limit(),
        p.next_header(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
    ));
    black_box((p.l4(), p.src_port(), p.dst_port(), p.l4_word()));
    let mut copy = data.to_vec();
    let mut m = QuotedPacket::new_checked(&mut copy[..]).unwrap();
    m.set_version_and_header_len(p.header_len());
    m.set_dscp_ecn(p.dscp_ecn());
    m.set_total_len(p.total_len());
    m.set_ident(p.ident());
    m.set_hop_limit(p.hop_limit());
    m.set_next_header(p.next_header());
    m.set_checksum(p.checksum());
    m.set_src_addr(p.src_addr());
    m.set_dst_addr(p.dst_addr());
    m.set_src_port(p.src_port());
    m.set_dst_port(p.dst_port());
    m.set_l4_word(p.l4_word());
    // The flags word's reserved bit is not a Repr field: only compare when it is clear.
    if data[6] & 0x80 == 0 {
        m.set_flags_and_offset(p.dont_frag(), p.more_frags(), p.frag_offset());
        assert_eq!(copy, data);
    }
    let repr = QuotedRepr::parse(&p).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut QuotedPacket::new_unchecked(&mut out[..]));
    let q = QuotedPacket::new_checked(&out[..]).unwrap();
    assert_eq!(QuotedRepr::parse(&q), Ok(repr));
}

fn vxlan(data: &[u8]) {
    let Ok(p) = VxlanPacket::new_checked(data) else {
        return;
    };
    black_box((p.flags(), p.vni_valid(), p.vni(), p.payload()));
    assert!(p.vni() <= super::vxlan::MAX_VNI);
    let mut copy = data.to_vec();
    let mut m = VxlanPacket::new_checked(&mut copy[..]).unwrap();
    m.set_flags(p.flags());
    m.set_vni(p.vni());
    let _ = m.payload_mut();
    assert_eq!(copy, data);
    let Ok(repr) = VxlanRepr::parse(&p) else {
        assert!(!p.vni_valid());
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut VxlanPacket::new_unchecked(&mut out[..]));
    assert_eq!(
        VxlanRepr::parse(&VxlanPacket::new_checked(&out[..]).unwrap()),
        Ok(repr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::EtherType;
    use crate::wire::ipv4::protocol;
    use crate::wire::vxlan::VXLAN_PORT;

    /// Regression (found by cargo-fuzz): a checksum field of 0xffff where the computed checksum
    /// is 0x0000 is correct (one's complement -0) and refills as 0x0000.
    #[test]
    fn negative_zero_checksums() {
        // The SYN's TCP header with the urgent pointer chosen so the sum is exactly 0xffff.
        let mut tcp = [0u8; 20];
        tcp.copy_from_slice(&super::super::ipv4::tests::SYN_BYTES[20..]);
        tcp[16..20].copy_from_slice(&[0xff, 0xff, 0x1f, 0xfc]);
        let p = TcpPacket::new_checked(&tcp[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        exercise(&tcp);
        let mut m = TcpPacket::new_checked(&mut tcp[..]).unwrap();
        m.fill_checksum(SRC, DST);
        assert_eq!(m.checksum(), 0);
        assert!(m.verify_checksum(SRC, DST));
        exercise(&tcp);
    }

    /// The hand-assembled encapsulated sample equals what the Reprs emit, and every layer parses
    /// with correct checksums.
    #[test]
    fn outer_vxlan_sample_is_consistent() {
        let mut b = [0u8; 104];
        b[64..].copy_from_slice(&super::super::ipv4::tests::SYN_BYTES);
        let outer_src = Ipv4Addr::new(10, 0, 0, 1);
        let outer_dst = Ipv4Addr::new(10, 0, 0, 2);
        EthernetRepr {
            dst_addr: [2, 0, 0, 0, 0, 2],
            src_addr: [2, 0, 0, 0, 0, 1],
            ethertype: EtherType::IPV4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut b[..]));
        Ipv4Repr {
            src_addr: outer_src,
            dst_addr: outer_dst,
            next_header: protocol::UDP,
            payload_len: 70,
            hop_limit: 64,
            dscp_ecn: 0,
            dont_frag: true,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut b[14..]));
        VxlanRepr { vni: 100 }.emit(&mut VxlanPacket::new_unchecked(&mut b[42..]));
        EthernetRepr {
            dst_addr: [2, 0, 0, 0, 0, 0x10],
            src_addr: [2, 0, 0, 0, 0, 0x20],
            ethertype: EtherType::IPV4,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut b[50..]));
        UdpRepr {
            src_port: 49152,
            dst_port: VXLAN_PORT,
        }
        .emit(
            &mut UdpPacket::new_unchecked(&mut b[34..]),
            62,
            outer_src,
            outer_dst,
            false,
        );
        assert_eq!(b, OUTER_VXLAN_BYTES);

        let ip = Ipv4Packet::new_checked(&b[14..]).unwrap();
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), VXLAN_PORT);
        let vx = VxlanPacket::new_checked(udp.payload()).unwrap();
        assert_eq!(VxlanRepr::parse(&vx), Ok(VxlanRepr { vni: 100 }));
        let inner = EthernetFrame::new_checked(vx.payload()).unwrap();
        assert_eq!(inner.payload(), &super::super::ipv4::tests::SYN_BYTES[..]);
    }
}
