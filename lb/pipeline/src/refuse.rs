//! Refuse: answer traffic to an in_noalias port the way a host answers a closed port (CA9,
//! seed 002: in_noalias "indicates a port that will not receive inbound alias messages").
//!
//! Select decides ([`Selection::Refuse`](crate::select::Selection::Refuse)); this stage builds
//! the answer **in place**, in the received buffer, and the worker transmits it on the port the
//! packet arrived on:
//!
//! - **TCP** (RFC 9293 §3.10.7.1, "if the connection does not exist (CLOSED)"): a RST from the
//!   alias. If the segment has ACK: `<SEQ=SEG.ACK><CTL=RST>`; otherwise
//!   `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`, where SEG.LEN counts the payload plus one for
//!   SYN and one for FIN. The TCP header is 20 bytes (no options), window 0, urgent pointer 0,
//!   no payload. A RST is never answered.
//! - **UDP** (RFC 792, RFC 1122 §3.2.2 and §4.1.3.1): ICMP destination unreachable, code 3
//!   (port unreachable), from the alias, quoting the received IP header (options included) and
//!   the first 8 bytes of its payload (the UDP header). The new Ethernet + IPv4 + ICMP headers
//!   (42 bytes) go in front of the quoted header, taken from headroom; not enough headroom →
//!   [`DropReason::NoHeadroom`].
//!
//! Both answers: Ethernet destination = the sender's MAC, source = the receiving port's MAC,
//! untagged (an 802.1Q tag on the received frame is removed, as [`crate::encap`] does for
//! everything the router sends); IPv4 header of 20 bytes, TOS 0, ident 0, TTL 64 (DF set on the
//! RST, clear on the ICMP error), source = the alias, destination = the client; IPv4 and TCP /
//! ICMP checksums filled where the pipeline's [`ChecksumCapabilities`] say `tx()` (else left as
//! the NIC's offload wants them). Every header is written by its `wire` Repr. The answer is not
//! padded to 60 bytes (the NIC pads on transmit).
//!
//! Answers share a per-core [`RefusalLimiter`] (a token bucket, like the kernel's
//! `icmp_ratelimit`); a refusal over the limit is dropped as [`DropReason::InNoalias`], and so
//! is anything that does not deserve an answer: a RST, a sender whose MAC is multicast, a
//! client address that is not a unicast host address (0/8, 127/8, 224/4, 240/4 — RFC 1122
//! §3.2.2 for ICMP; the same for RSTs), or a packet whose headers no longer parse. Nothing here
//! allocates or panics; a packet that is not answered may be left partly rewritten only after
//! `NoHeadroom` (it is dropped anyway).

use core::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::classify::PacketMeta;
use crate::snapshot::PortInfo;
use crate::verdict::DropReason;
use crate::wire::checksum::ChecksumCapabilities;
use crate::wire::ethernet::{self, is_multicast, EtherType, EthernetFrame, EthernetRepr};
use crate::wire::icmpv4::{self, Icmpv4Packet, Icmpv4Repr, ERROR_QUOTED_PAYLOAD};
use crate::wire::ipv4::{self, protocol, Ipv4Packet, Ipv4Repr};
use crate::wire::tcp::{self, TcpFlags, TcpPacket, TcpRepr};
use crate::wire::udp::UdpPacket;

/// ICMP destination-unreachable code: port unreachable.
pub const PORT_UNREACHABLE: u8 = icmpv4::PORT_UNREACHABLE;
/// TTL of answers.
pub const ANSWER_TTL: u8 = 64;
/// Length of a RST frame: Ethernet + IPv4 + TCP, none with options.
pub const RST_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + tcp::MIN_HEADER_LEN;
/// Bytes in front of the quoted IP header in an ICMP answer: Ethernet + IPv4 + ICMP.
pub const ICMP_PREFIX_LEN: usize = ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN + icmpv4::HEADER_LEN;

/// A token bucket limiting the answers one core sends: `per_sec` tokens a second, at most
/// `per_sec` stored (the burst), one per answer. Starts full. Kept in thousandths of a token so
/// that a millisecond clock refills exactly (`per_sec` thousandths per millisecond).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusalLimiter {
    per_sec: u64,
    /// Thousandths of a token available.
    milli_tokens: u64,
    /// When `milli_tokens` was last brought up to date.
    last_ms: u64,
}

impl RefusalLimiter {
    /// A full bucket for `per_sec` answers a second (0: never answer).
    pub const fn new(per_sec: u32) -> Self {
        let per_sec = per_sec as u64;
        RefusalLimiter {
            per_sec,
            milli_tokens: per_sec * 1000,
            last_ms: 0,
        }
    }

    /// The configured rate (and burst).
    pub const fn per_sec(&self) -> u32 {
        self.per_sec as u32
    }

    /// Whole tokens available at `now_ms` (without taking one).
    pub fn available(&self, now_ms: u64) -> u64 {
        self.refilled(now_ms) / 1000
    }

    #[inline]
    fn refilled(&self, now_ms: u64) -> u64 {
        let cap = self.per_sec * 1000;
        // A clock that goes backwards refills nothing; a full second refills everything.
        let elapsed = now_ms.saturating_sub(self.last_ms).min(1000);
        (self.milli_tokens + elapsed * self.per_sec).min(cap)
    }

    /// Takes one token at `now_ms`; false when the bucket is empty.
    #[inline]
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        let tokens = self.refilled(now_ms);
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
        }
        if tokens >= 1000 {
            self.milli_tokens = tokens - 1000;
            true
        } else {
            self.milli_tokens = tokens;
            false
        }
    }
}

/// Whether `addr` may receive an answer: a unicast host address (not 0/8, 127/8, 224/4 or
/// 240/4, which includes the limited broadcast).
#[inline]
fn answerable(addr: Ipv4Addr) -> bool {
    let first = addr.octets()[0];
    first != 0 && first != 127 && first < 224
}

/// What the received packet needs for its answer, read before anything is written.
#[derive(Clone, Copy, Debug)]
struct Received {
    client_mac: [u8; 6],
    client: Ipv4Addr,
    alias: Ipv4Addr,
    l3: usize,
    ihl: usize,
}

/// Reads and checks the L2/L3 headers of a packet classified as `meta`.
#[inline]
fn received(data: &[u8], meta: &PacketMeta) -> Option<Received> {
    let l3 = meta.l3_offset as usize;
    if l3 < ethernet::HEADER_LEN {
        return None;
    }
    let eth = EthernetFrame::new_checked(data).ok()?;
    let client_mac = eth.src_addr();
    if is_multicast(&client_mac) {
        return None;
    }
    let ip = Ipv4Packet::new_checked(data.get(l3..)?).ok()?;
    if ip.next_header() != meta.key.proto || ip.is_fragment() {
        return None;
    }
    let client = ip.src_addr();
    if !answerable(client) {
        return None;
    }
    Some(Received {
        client_mac,
        client,
        alias: ip.dst_addr(),
        l3,
        ihl: usize::from(ip.header_len()),
    })
}

impl Received {
    /// The Ethernet header of the answer: back to the sender, from the receiving port.
    fn eth(&self, port: &PortInfo) -> EthernetRepr {
        EthernetRepr {
            dst_addr: self.client_mac,
            src_addr: port.mac,
            ethertype: EtherType::IPV4,
        }
    }

    /// The IPv4 header of the answer: alias to client, TOS 0, TTL 64.
    fn ipv4(&self, proto: u8, payload_len: usize, df: bool) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: self.alias,
            dst_addr: self.client,
            next_header: proto,
            payload_len,
            hop_limit: ANSWER_TTL,
            dscp_ecn: 0,
            dont_frag: df,
        }
    }
}

/// Writes the Ethernet and IPv4 headers at the start of `frame` and returns what follows them.
#[inline]
fn emit_eth_ipv4<'a>(
    frame: &'a mut [u8],
    eth: &EthernetRepr,
    ip: &Ipv4Repr,
    caps: &ChecksumCapabilities,
) -> Option<&'a mut [u8]> {
    eth.emit(&mut EthernetFrame::new_checked(&mut *frame).ok()?);
    let rest = frame.get_mut(eth.buffer_len()..)?;
    if rest.len() < ip.buffer_len() {
        return None;
    }
    ip.emit_with(&mut Ipv4Packet::new_unchecked(&mut *rest), caps);
    rest.get_mut(ip.buffer_len()..)
}

/// Turns `pkt` (classified as `meta`, received on `port`, to an in_noalias port) into its
/// refusal — a TCP RST or an ICMP port unreachable, see the module docs — if `limiter` has a
/// token at `now_ms`. `Ok` means "transmit `pkt` on the port it came from"; `Err` carries the
/// drop reason: [`DropReason::InNoalias`] when no answer is due or the limit is reached,
/// [`DropReason::NoHeadroom`] when an ICMP answer does not fit. A token is taken only for an
/// answer that is sent. Checksums are computed as `caps` says (else left for the NIC).
#[inline]
pub fn refuse<B: PacketBuf>(
    pkt: &mut B,
    meta: &PacketMeta,
    port: &PortInfo,
    limiter: &mut RefusalLimiter,
    now_ms: u64,
    caps: &ChecksumCapabilities,
) -> Result<(), DropReason> {
    let Some(rx) = received(pkt.data(), meta) else {
        return Err(DropReason::InNoalias);
    };
    match meta.key.proto {
        protocol::TCP => refuse_tcp(pkt, &rx, port, limiter, now_ms, caps),
        protocol::UDP => refuse_udp(pkt, &rx, port, limiter, now_ms, caps),
        _ => Err(DropReason::InNoalias),
    }
}

fn refuse_tcp<B: PacketBuf>(
    pkt: &mut B,
    rx: &Received,
    port: &PortInfo,
    limiter: &mut RefusalLimiter,
    now_ms: u64,
    caps: &ChecksumCapabilities,
) -> Result<(), DropReason> {
    let d = pkt.data();
    let Some(ip) = d.get(rx.l3..).and_then(|b| Ipv4Packet::new_checked(b).ok()) else {
        return Err(DropReason::InNoalias);
    };
    let Ok(seg) = TcpPacket::new_checked(ip.payload()) else {
        return Err(DropReason::InNoalias);
    };
    let flags = seg.flags();
    if flags & TcpFlags::RST != 0 {
        return Err(DropReason::InNoalias);
    }
    // RFC 9293 §3.10.7.1, CLOSED.
    let (seq, ack, rst_flags) = if flags & TcpFlags::ACK != 0 {
        (seg.ack_number(), 0, TcpFlags::RST)
    } else {
        // SEG.LEN: payload octets plus SYN and FIN, which occupy one sequence number each.
        // new_checked bounds header_len by the payload, so this does not underflow.
        let payload = seg.payload().len() as u32;
        let syn = u32::from(flags & TcpFlags::SYN != 0);
        let fin = u32::from(flags & TcpFlags::FIN != 0);
        let seg_len = payload.wrapping_add(syn).wrapping_add(fin);
        (
            0,
            seg.seq_number().wrapping_add(seg_len),
            TcpFlags::RST | TcpFlags::ACK,
        )
    };
    let repr = TcpRepr {
        src_port: seg.dst_port(),
        dst_port: seg.src_port(),
        seq_number: seq,
        ack_number: ack,
        flags: rst_flags,
        window_len: 0,
    };
    // The RST (54 bytes) is never longer than what it answers: L2 ≥ 14, IPv4 ≥ 20, TCP ≥ 20.
    let tag = rx.l3 - ethernet::HEADER_LEN;
    if d.len() < tag + RST_FRAME_LEN {
        return Err(DropReason::InNoalias);
    }
    if !limiter.try_take(now_ms) {
        return Err(DropReason::InNoalias);
    }
    // Drop the 802.1Q tag, if any, then everything after the RST.
    if tag > 0 && !pkt.adj(tag) {
        return Err(DropReason::InNoalias);
    }
    let extra = pkt.data().len() - RST_FRAME_LEN;
    if extra > 0 && !pkt.trim(extra) {
        return Err(DropReason::InNoalias);
    }
    let ip = rx.ipv4(protocol::TCP, repr.buffer_len(), true);
    let d = pkt.data_mut();
    let Some(seg) = d
        .get_mut(..RST_FRAME_LEN)
        .and_then(|frame| emit_eth_ipv4(frame, &rx.eth(port), &ip, caps))
    else {
        return Err(DropReason::InNoalias);
    };
    repr.emit_with(
        &mut TcpPacket::new_unchecked(seg),
        rx.alias,
        rx.client,
        caps,
    );
    Ok(())
}

fn refuse_udp<B: PacketBuf>(
    pkt: &mut B,
    rx: &Received,
    port: &PortInfo,
    limiter: &mut RefusalLimiter,
    now_ms: u64,
    caps: &ChecksumCapabilities,
) -> Result<(), DropReason> {
    let d = pkt.data();
    let Some(ip) = d.get(rx.l3..).and_then(|b| Ipv4Packet::new_checked(b).ok()) else {
        return Err(DropReason::InNoalias);
    };
    if UdpPacket::new_checked(ip.payload()).is_err() {
        return Err(DropReason::InNoalias);
    }
    // The quoted datagram: its IP header and the 8-byte UDP header, which it holds.
    let quoted = rx.ihl + ERROR_QUOTED_PAYLOAD;
    // The new headers end where the received IP header starts.
    let Some(grow) = ICMP_PREFIX_LEN.checked_sub(rx.l3) else {
        return Err(DropReason::InNoalias);
    };
    if !pkt.prepend(grow) {
        return Err(DropReason::NoHeadroom);
    }
    if !limiter.try_take(now_ms) {
        return Err(DropReason::InNoalias);
    }
    let frame_len = ICMP_PREFIX_LEN + quoted;
    let extra = pkt.data().len().saturating_sub(frame_len);
    if extra > 0 && !pkt.trim(extra) {
        return Err(DropReason::InNoalias);
    }
    let icmp = Icmpv4Repr::DstUnreachable {
        code: PORT_UNREACHABLE,
    };
    let ip = rx.ipv4(protocol::ICMP, icmp.buffer_len() + quoted, false);
    let d = pkt.data_mut();
    let Some(msg) = d
        .get_mut(..frame_len)
        .and_then(|frame| emit_eth_ipv4(frame, &rx.eth(port), &ip, caps))
    else {
        return Err(DropReason::InNoalias);
    };
    // The message buffer ends with the quoted datagram, so the checksum covers exactly it.
    icmp.emit(&mut Icmpv4Packet::new_unchecked(msg), caps);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::VecBuf;
    use crate::classify::tests::{frame, snap, ALIAS, CLIENT};
    use crate::classify::{classify, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
    use crate::wire::checksum::{self, pseudo_header};

    /// Parses `HEX...` (whitespace ignored).
    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A TCP header (20 bytes) + payload.
    fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 0x50;
        t[13] = flags;
        t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        t.extend_from_slice(payload);
        t
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    /// Runs `f` (received on the client port) through classify and refuse.
    fn run(
        f: &[u8],
        headroom: usize,
        lim: &mut RefusalLimiter,
    ) -> (Result<(), DropReason>, Vec<u8>) {
        let s = snap();
        let meta = classify(&s, 0, f).expect("classified");
        let mut b = VecBuf::with_headroom(f, headroom);
        let caps = ChecksumCapabilities::software();
        let r = refuse(&mut b, &meta, &s.ports[0], lim, 1000, &caps);
        (r, b.data().to_vec())
    }

    fn answer(f: &[u8]) -> Vec<u8> {
        let (r, out) = run(f, 128, &mut RefusalLimiter::new(100));
        assert_eq!(r, Ok(()));
        out
    }

    /// IPv4 header and L4 checksums of an answer verify independently of the writer.
    fn assert_checksums(out: &[u8]) {
        let ip = &out[14..34];
        assert_eq!(checksum::checksum(ip), 0, "ipv4 header checksum");
        let l4 = &out[34..];
        let sum = match ip[9] {
            6 => checksum::combine(&[
                pseudo_header(ALIAS.into(), CLIENT.into(), 6, l4.len() as u16),
                checksum::sum(l4),
            ]),
            _ => checksum::sum(l4),
        };
        assert_eq!(!checksum::fold(sum), 0, "l4 checksum");
    }

    // Expected bytes are assembled by hand; checksums computed separately with python3
    // (RFC 1071 over the header, pseudo-header included for TCP, checksum field 0).

    #[test]
    fn syn_gets_rst_ack_for_seq_plus_one() {
        let out = answer(&frame(
            ALIAS,
            6,
            0x4000,
            &tcp(40040, 513, 1, 0, TCP_SYN, &[]),
        ));
        let want = hex("020000000010 020000000001 0800
                        4500 0028 0000 4000 4006 e5fa c6336464 c633640a
                        0201 9c68 00000000 00000002 5014 0000 bc8f 0000");
        assert_eq!(out, want);
        assert_checksums(&out);
    }

    /// With TX checksum offload the RST carries what the NIC completes: 0 in the IPv4 header,
    /// the pseudo-header sum in TCP; the rest is the same answer.
    #[test]
    fn rst_leaves_checksums_to_the_nic_when_it_offloads() {
        use crate::wire::Checksum;
        let f = frame(ALIAS, 6, 0x4000, &tcp(40040, 513, 1, 0, TCP_SYN, &[]));
        let want = answer(&f);
        let s = snap();
        let meta = classify(&s, 0, &f).unwrap();
        let mut b = VecBuf::with_headroom(&f, 128);
        let caps = ChecksumCapabilities {
            ipv4: Checksum::Rx,
            tcp: Checksum::Rx,
            ..ChecksumCapabilities::software()
        };
        let mut lim = RefusalLimiter::new(1);
        assert_eq!(
            refuse(&mut b, &meta, &s.ports[0], &mut lim, 0, &caps),
            Ok(())
        );
        let out = b.data();
        assert_eq!(&out[24..26], &[0, 0]);
        let pseudo = checksum::fold(pseudo_header(ALIAS.into(), CLIENT.into(), 6, 20));
        assert_eq!(&out[50..52], &pseudo.to_be_bytes());
        assert_eq!((&out[..24], &out[26..50]), (&want[..24], &want[26..50]));
        assert_eq!(
            checksum::checksum(&out[34..]).to_be_bytes(),
            [want[50], want[51]]
        );
    }

    #[test]
    fn ack_with_payload_gets_rst_at_seg_ack() {
        let f = frame(
            ALIAS,
            6,
            0x4000,
            &tcp(40041, 513, 0x11223344, 0x55667788, TCP_ACK | 0x08, b"hello"),
        );
        let out = answer(&f);
        let want = hex("020000000010 020000000001 0800
                        4500 0028 0000 4000 4006 e5fa c6336464 c633640a
                        0201 9c69 55667788 00000000 5004 0000 efb1 0000");
        assert_eq!(out, want);
        assert_checksums(&out);
    }

    #[test]
    fn seg_len_counts_payload_syn_and_fin_and_wraps() {
        // seq 0xfffffffe + 3 payload + SYN + FIN = 3 (mod 2^32).
        let f = frame(
            ALIAS,
            6,
            0,
            &tcp(40042, 513, 0xffff_fffe, 0, TCP_SYN | TCP_FIN, b"xyz"),
        );
        let out = answer(&f);
        let want = hex("020000000010 020000000001 0800
                        4500 0028 0000 4000 4006 e5fa c6336464 c633640a
                        0201 9c6a 00000000 00000003 5014 0000 bc8c 0000");
        assert_eq!(out, want);
        assert_checksums(&out);
    }

    #[test]
    fn vlan_tag_and_ip_options_are_not_carried_into_the_rst() {
        // Same SYN as above behind an 802.1Q tag and with 4 bytes of IP options.
        let mut f = frame(ALIAS, 6, 0x4000, &tcp(40040, 513, 1, 0, TCP_SYN, &[]));
        f.splice(34..34, [1, 1, 1, 0]);
        f[14] = 0x46;
        f[16..18].copy_from_slice(&44u16.to_be_bytes());
        f[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&f[14..38]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        f.extend_from_slice(&[0; 6]); // Ethernet padding
        let out = answer(&f);
        let want = hex("020000000010 020000000001 0800
                        4500 0028 0000 4000 4006 e5fa c6336464 c633640a
                        0201 9c68 00000000 00000002 5014 0000 bc8f 0000");
        assert_eq!(out, want);
    }

    #[test]
    fn udp_gets_port_unreachable_quoting_header_and_8_bytes() {
        let out = answer(&frame(ALIAS, 17, 0, &udp(5353, 513, b"abcd")));
        let want = hex("020000000010 020000000001 0800
                        4500 0038 0000 0000 4001 25f0 c6336464 c633640a
                        0303 e606 00000000
                        4500 0020 0000 0000 4011 25f8 c633640a c6336464
                        14e9 0201 000c 0000");
        assert_eq!(out, want);
        assert_checksums(&out);
        let icmp = Icmpv4Packet::new_checked(&out[34..]).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.msg_type(), icmp.msg_code()), (3, 3));
    }

    #[test]
    fn port_unreachable_quotes_ip_options_and_drops_the_vlan_tag() {
        let mut f = hex("020000000001 020000000010 8100 0064 0800
                         4600 0024 0000 0000 4011 22f3 c633640a c6336464 01010100
                         14e9 0201 000c 0000 61626364");
        f.extend_from_slice(&[0; 4]); // Ethernet padding
                                      // 42 - 18 = 24 bytes of headroom are needed.
        let (r, _) = run(&f, 23, &mut RefusalLimiter::new(100));
        assert_eq!(r, Err(DropReason::NoHeadroom));
        let (r, out) = run(&f, 24, &mut RefusalLimiter::new(100));
        assert_eq!(r, Ok(()));
        let want = hex("020000000010 020000000001 0800
                        4500 003c 0000 0000 4001 25ec c6336464 c633640a
                        0303 e606 00000000
                        4600 0024 0000 0000 4011 22f3 c633640a c6336464 01010100
                        14e9 0201 000c 0000");
        assert_eq!(out, want);
        assert_checksums(&out);
    }

    #[test]
    fn no_headroom_for_icmp_costs_no_token() {
        let f = frame(ALIAS, 17, 0, &udp(5353, 513, b"abcd"));
        let mut lim = RefusalLimiter::new(1);
        assert_eq!(run(&f, 27, &mut lim).0, Err(DropReason::NoHeadroom));
        assert_eq!(run(&f, 28, &mut lim).0, Ok(()));
        assert_eq!(
            run(&f, 28, &mut lim).0,
            Err(DropReason::InNoalias),
            "limited"
        );
    }

    #[test]
    fn what_is_never_answered() {
        let mut lim = RefusalLimiter::new(100);
        // A RST, with or without ACK.
        for flags in [TCP_RST, TCP_RST | TCP_ACK] {
            let f = frame(ALIAS, 6, 0, &tcp(1, 513, 1, 1, flags, &[]));
            assert_eq!(run(&f, 128, &mut lim).0, Err(DropReason::InNoalias));
        }
        // A multicast sender MAC.
        let mut f = frame(ALIAS, 6, 0, &tcp(1, 513, 1, 0, TCP_SYN, &[]));
        f[6] = 0x01;
        assert_eq!(run(&f, 128, &mut lim).0, Err(DropReason::InNoalias));
        // Sources that are not unicast host addresses.
        for src in [
            [0, 0, 0, 0],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [255, 255, 255, 255],
        ] {
            for l4 in [(6, tcp(1, 513, 1, 0, TCP_SYN, &[])), (17, udp(1, 513, b""))] {
                let mut f = frame(ALIAS, l4.0, 0, &l4.1);
                f[26..30].copy_from_slice(&src);
                f[24..26].copy_from_slice(&[0, 0]);
                let c = checksum::checksum(&f[14..34]);
                f[24..26].copy_from_slice(&c.to_be_bytes());
                assert_eq!(
                    run(&f, 128, &mut lim).0,
                    Err(DropReason::InNoalias),
                    "{src:?}"
                );
            }
        }
        assert_eq!(lim.available(1000), 100, "no token spent");
        // Rate 0: nothing is answered.
        let f = frame(ALIAS, 6, 0, &tcp(1, 513, 1, 0, TCP_SYN, &[]));
        assert_eq!(
            run(&f, 128, &mut RefusalLimiter::new(0)).0,
            Err(DropReason::InNoalias)
        );
    }

    #[test]
    fn limiter_bursts_then_refills_per_millisecond() {
        let mut l = RefusalLimiter::new(100);
        assert_eq!(l.per_sec(), 100);
        assert!((0..100).all(|_| l.try_take(5000)));
        assert!(!l.try_take(5000));
        assert!(!l.try_take(5009), "9 ms refill 0.9 tokens");
        assert!(l.try_take(5010), "10 ms refill one");
        assert!(!l.try_take(5010));
        // A clock going backwards refills nothing.
        assert!(!l.try_take(4000));
        // Refill is capped at the burst.
        assert_eq!(l.available(1_000_000), 100);
        let mut l = RefusalLimiter::new(0);
        assert!(!l.try_take(0) && !l.try_take(u64::MAX));
        let mut l = RefusalLimiter::new(u32::MAX);
        assert!(l.try_take(u64::MAX));
    }
}
