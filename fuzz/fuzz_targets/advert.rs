//! Member adverts (`clua_ctl::advert`, docs/member-protocol.md) over arbitrary bytes: the
//! zero-copy view (`AdvertPacket::new_checked`, then every accessor), the content checks
//! (`AdvertRepr::parse_contents`), and what parses must survive `emit_signed -> parse_verified`
//! unchanged, with exactly the received bytes before the tag (the format has one encoding per
//! advert). The same datagram then goes to the router's liveness tracker twice: the second copy
//! must never be accepted (replay protection). Built with `--cfg fuzzing`, `parse_verified` does
//! not check the HMAC tag, so mutated datagrams reach the content checks and the tracker.
//!
//! Run: see fuzz/README.md (`advert`).
#![no_main]

use std::hint::black_box;

use clua_ctl::advert::{AdvertPacket, AdvertRepr};
use clua_ctl::members::liveness::{AdvertOutcome, Liveness};
use libfuzzer_sys::fuzz_target;

/// A fixed key: the fuzzer does not attack HMAC-SHA-256, the tag check is bypassed.
const KEY: &[u8] = b"clua fuzz key 0123456789abcdef";
/// The HMAC-SHA-256 tag at the end of every advert.
const TAG_LEN: usize = 32;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = AdvertPacket::new_checked(data) {
        black_box((p.magic(), p.version(), p.kind(), p.flags(), p.node_field(), p.node()));
        black_box((p.boot_id(), p.seq(), p.interval_ms(), p.alias_count(), p.port_count()));
        assert_eq!(p.aliases().count(), usize::from(p.alias_count()));
        assert_eq!(p.ports().count(), usize::from(p.port_count()));
        black_box(p.out_alias());
        assert_eq!(p.signed_part().len() + p.tag().len(), data.len());
        if let Ok(repr) = AdvertRepr::parse_contents(&p) {
            let bytes = repr.emit_signed(KEY).expect("a parsed advert emits");
            assert_eq!(bytes.len(), repr.buffer_len());
            assert_eq!(bytes.len(), data.len());
            assert_eq!(&bytes[..bytes.len() - TAG_LEN], &data[..data.len() - TAG_LEN]);
            let again = AdvertRepr::parse_verified(&bytes, KEY).expect("an emitted advert parses");
            assert_eq!(again, repr);
        }
    }

    let mut live = Liveness::new(&["m1".to_string(), "m2".to_string()], 3);
    let first = live.on_datagram(data, KEY, 1_000);
    let second = live.on_datagram(data, KEY, 1_001);
    assert!(
        !matches!(second, AdvertOutcome::Accepted { .. } | AdvertOutcome::Left { .. }),
        "a replayed datagram was applied: {first:?} then {second:?}"
    );
    if matches!(first, AdvertOutcome::Accepted { .. }) {
        assert!(live.members().any(|(_, m)| m.up));
    }
    black_box(live.next_deadline());
    let down = live.expire(u64::MAX);
    assert!(live.members().all(|(_, m)| !m.up));
    black_box(down);
});
