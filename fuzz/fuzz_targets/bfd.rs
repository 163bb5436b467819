//! BFD (`clua_ctl::bfd`, docs/bfd.md) over arbitrary bytes, two ways:
//! - the Control packet parser: `BfdPacket::new_checked` and every accessor, `BfdRepr::parse`,
//!   and for what parses without the A bit, `emit` then `parse` giving the same packet;
//! - the speaker: the input as a whole Ethernet frame into `Bfd::on_frame`, and the input as the
//!   UDP payload of an otherwise valid frame from the configured peer (so the session checks
//!   and the state machine are reached), each followed by ticks. Every frame sent must be a
//!   valid IPv4/UDP/BFD frame (tagged only as the peer's were) with a correct IPv4 header checksum, and refusals must
//!   change no counter but `refused`.
//!
//! Built with `--cfg fuzzing`, received checksums are not verified (clua_pipeline's
//! `ChecksumCapabilities::default()`), so mutated frames get past them.
//!
//! Run: `cargo +nightly fuzz run bfd -- -max_len=256` (see fuzz/README.md).
#![no_main]

use std::hint::black_box;
use std::net::Ipv4Addr;

use clua_ctl::bfd::{Bfd, BfdPacket, BfdPeer, BfdRepr, BfdSettings};
use clua_ctl::plane::Transmit;
use clua_pipeline::wire::ethernet::{parse_l2, EtherType};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use clua_pipeline::wire::udp::{UdpPacket, UdpRepr};
use libfuzzer_sys::fuzz_target;

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];
const OURS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

fn speaker() -> Bfd {
    Bfd::new(
        BfdSettings {
            peers: vec![BfdPeer {
                port: 0,
                local_mac: OUR_MAC,
                local_addr: OURS,
                peer_addr: PEER,
            }],
            ..BfdSettings::default()
        },
        0x5eed,
        0,
    )
}

/// `payload` as the UDP payload of a frame from the peer (TTL 255, source port 49152).
fn from_peer(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 8 + payload.len()];
    f[0..6].copy_from_slice(&OUR_MAC);
    f[6..12].copy_from_slice(&PEER_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[42..].copy_from_slice(payload);
    UdpRepr {
        src_port: 49152,
        dst_port: 3784,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut f[34..]),
        payload.len(),
        PEER,
        OURS,
        true,
    );
    Ipv4Repr {
        src_addr: PEER,
        dst_addr: OURS,
        next_header: protocol::UDP,
        payload_len: 8 + payload.len(),
        hop_limit: 255,
        dscp_ecn: 0,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
    f
}

fn check_sent(frames: &[Transmit]) {
    for t in frames {
        let f = &t.frame;
        assert_eq!(t.port, 0);
        // Tagged if the peer's packets were (the whole-frame input may carry a tag).
        let l2 = parse_l2(f).expect("Ethernet");
        assert_eq!(l2.ethertype, EtherType::IPV4);
        assert_eq!(f.len(), l2.l3_offset + 52);
        assert_eq!(&f[6..12], &OUR_MAC);
        let ip = Ipv4Packet::new_checked(&f[l2.l3_offset..]).expect("IPv4");
        assert!(ip.verify_checksum());
        assert_eq!((ip.hop_limit(), ip.src_addr(), ip.dst_addr()), (255, OURS, PEER));
        let udp = UdpPacket::new_checked(ip.payload()).expect("UDP");
        assert!(udp.verify_checksum(OURS, PEER));
        assert_eq!(udp.dst_port(), 3784);
        assert!(udp.src_port() >= 49152);
        let r = BfdRepr::parse_bytes(udp.payload()).expect("a valid control packet");
        assert!(!(r.poll && r.final_) && !r.demand && !r.auth);
    }
}

fn drive(bfd: &mut Bfd, frame: &[u8], now: u64) {
    let before = bfd.counters().clone();
    let sent = bfd.on_frame(0, frame, now);
    check_sent(&sent);
    let after = bfd.counters();
    let refused: u64 = after.refused.iter().sum::<u64>() - before.refused.iter().sum::<u64>();
    assert_eq!(refused + (after.received - before.received), 1);
    if refused == 1 {
        assert!(sent.is_empty());
        assert_eq!(after.state_changes, before.state_changes);
    }
    for t in [now + 1, now + 400, now + 5_000] {
        check_sent(&bfd.on_tick(t));
    }
    black_box(bfd.sessions().count());
    black_box(bfd.take_events());
    black_box(bfd.next_wakeup());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = BfdPacket::new_checked(data) {
        black_box((p.version(), p.diag(), p.state(), p.flags(), p.detect_mult(), p.length()));
        black_box((p.my_discr(), p.your_discr(), p.desired_min_tx(), p.required_min_rx()));
        black_box((p.required_min_echo_rx(), p.auth_section()));
        if let Ok(r) = BfdRepr::parse(&p) {
            if !r.auth {
                let again = BfdRepr::parse_bytes(&r.to_bytes()).expect("emitted packet parses");
                assert_eq!(again, r);
            }
        }
    }
    let mut bfd = speaker();
    drive(&mut bfd, data, 10);
    let framed = from_peer(data);
    drive(&mut bfd, &framed, 20);
    // Twice: the second sees the state the first left.
    drive(&mut bfd, &framed, 30);
    check_sent(&bfd.shutdown());
});
