//! RIPv2 (`clua_ctl::rip`, docs/rip.md) over arbitrary bytes, twice: as a RIP datagram and as a
//! whole Ethernet frame.
//!
//! - The datagram: `RipPacket::new_checked` and every accessor, `RipRepr::parse`, and for what
//!   parses `emit` (+ `sign`) gives back the same bytes before the digest (one encoding per
//!   datagram).
//! - The speaker: the input as a punted frame, and the datagram wrapped in a valid frame from a
//!   neighbour, into `RipSpeaker::on_frame` of a speaker without and one with authentication.
//!   Whatever they send must be a valid, signed (when configured) RIPv2 response of at most 25
//!   entries (24 and the authentication entry), and every input must be either answered or
//!   counted.
//!
//! Built with `--cfg fuzzing`, checksums and the HMAC digest are not checked on receive, so
//! mutated datagrams reach the content checks.
//!
//! Run: `cargo +nightly fuzz run rip -- -max_len=600` (see fuzz/README.md).
#![no_main]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use clua_ctl::rip::wire::{
    build_frame, parse_frame, sign, verify, Command, FrameAddrs, RipPacket, RipRepr, DIGEST_LEN,
    MAX_ENTRIES, RIP_PORT,
};
use clua_ctl::rip::{RipAuth, RipMode, RipPort, RipRoute, RipSettings, RipSpeaker};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"clua fuzz key";

fn speaker(auth: bool) -> RipSpeaker {
    let settings = RipSettings {
        ports: vec![RipPort {
            port: 0,
            mac: [2, 0, 0, 0, 0, 2],
            addr: Ipv4Addr::new(198, 51, 100, 2),
            prefix_len: 24,
            mode: RipMode::Broadcast,
        }],
        auth: auth.then(|| RipAuth {
            key_id: 1,
            key: KEY.to_vec(),
        }),
        ..RipSettings::default()
    };
    let mut s = RipSpeaker::new(settings, 1, 0);
    let routes: BTreeSet<RipRoute> = (0..30u32)
        .map(|i| RipRoute {
            prefix: Ipv4Addr::from(0xcb00_7100 + i),
            len: 32,
        })
        .collect();
    s.set_routes(&routes, 0);
    s
}

fn check_sent(frames: &[clua_ctl::plane::Transmit], auth: bool) {
    for t in frames {
        let info = parse_frame(&t.frame).expect("we send valid frames");
        assert_eq!(info.src_port, RIP_PORT);
        let p = RipPacket::new_checked(&t.frame[info.payload.clone()]).expect("valid datagram");
        let r = RipRepr::parse(&p).expect("valid datagram");
        assert_eq!(r.command, Command::Response);
        assert_eq!(r.auth.is_some(), auth);
        assert!(r.entries.len() + usize::from(auth) <= MAX_ENTRIES);
        if auth {
            assert!(verify(&p, KEY));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = RipPacket::new_checked(data) {
        let _ = (p.command(), p.version(), p.entry_count(), p.auth_entry());
        let _ = (p.signed_part(), p.digest(), p.entries_end());
        for i in 0..p.entry_count() {
            let _ = p.entry_bytes(i);
        }
        if let Ok(repr) = RipRepr::parse(&p) {
            let mut again = vec![0; repr.buffer_len()];
            repr.emit(&mut again);
            assert_eq!(again.len(), data.len());
            let body = if p.is_crypto() { data.len() - DIGEST_LEN } else { data.len() };
            assert_eq!(&again[..body], &data[..body]);
            sign(&mut again, KEY);
            let q = RipPacket::new_checked(&again[..]).expect("an emitted datagram checks");
            assert_eq!(RipRepr::parse(&q).as_ref(), Ok(&repr));
        }
    }
    let wrapped = build_frame(
        &FrameAddrs {
            src_mac: [2, 0, 0, 0, 0, 9],
            dst_mac: [0xff; 6],
            vlan_tci: None,
            src_addr: Ipv4Addr::new(198, 51, 100, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 255),
            dst_port: RIP_PORT,
        },
        &data[..data.len().min(1400)],
    );
    for auth in [false, true] {
        let mut s = speaker(auth);
        for (i, frame) in [data, &wrapped[..]].into_iter().enumerate() {
            let before = s.counters().clone();
            let out = s.on_frame(0, frame, 1 + i as u64);
            check_sent(&out, auth);
            let c = s.counters();
            let refused: u64 = c.refused.iter().sum::<u64>() - before.refused.iter().sum::<u64>();
            let handled = (c.requests_answered - before.requests_answered)
                + (c.responses_received - before.responses_received);
            assert_eq!(refused + handled, 1, "every frame is answered, heard or refused");
            assert!(out.is_empty() || c.requests_answered > before.requests_answered);
        }
        check_sent(&s.on_tick(60_000), auth);
        check_sent(&s.shutdown(), auth);
    }
});
