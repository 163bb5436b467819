//! Router protocol messages (`clua_ctl::routers::wire`, docs/router-protocol.md) over arbitrary
//! bytes: the zero-copy view (`RouterPacket::new_checked`, then every accessor), the content
//! checks (`RouterRepr::parse_contents`), and what parses must survive
//! `emit_signed -> parse_verified` unchanged, with exactly the received bytes before the tag (the
//! format has one encoding per message). The replay rule then must refuse the same message a
//! second time. Built with `--cfg fuzzing`, `parse_verified` does not check the HMAC tag, so
//! mutated datagrams reach the content checks.
//!
//! Run: `cargo +nightly fuzz run router` (see fuzz/README.md).
#![no_main]

use std::hint::black_box;

use clua_ctl::routers::wire::{freshness, Freshness, RouterPacket, RouterRepr, TAG_LEN};
use libfuzzer_sys::fuzz_target;

/// A fixed key: the fuzzer does not attack HMAC-SHA-256, the tag check is bypassed.
const KEY: &[u8] = b"clua fuzz key 0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Ok(p) = RouterPacket::new_checked(data) else {
        assert!(RouterRepr::parse_verified(data, KEY).is_err());
        return;
    };
    black_box((p.magic(), p.version(), p.kind(), p.health(), p.reserved()));
    black_box((p.node_field(), p.node(), p.boot_id(), p.seq(), p.interval_ms()));
    assert_eq!(p.aliases().count(), usize::from(p.alias_count()));
    assert_eq!(p.ports().count(), usize::from(p.port_count()));
    assert_eq!(p.signed_part().len() + p.tag().len(), data.len());
    if let Ok(repr) = RouterRepr::parse_contents(&p) {
        let bytes = repr.emit_signed(KEY).expect("a parsed message emits");
        assert_eq!(bytes.len(), repr.buffer_len());
        assert_eq!(bytes.len(), data.len());
        assert_eq!(&bytes[..bytes.len() - TAG_LEN], &data[..data.len() - TAG_LEN]);
        let again = RouterRepr::parse_verified(&bytes, KEY).expect("an emitted message parses");
        assert_eq!(again, repr);
        let last = Some((repr.boot_id, repr.seq));
        assert_ne!(freshness(last, repr.boot_id, repr.seq), Freshness::Fresh);
    }
});
