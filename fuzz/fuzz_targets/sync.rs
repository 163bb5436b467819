//! Flow hand-off messages (`clua_ctl::sync::wire`, docs/sync-protocol.md) over arbitrary bytes:
//! the zero-copy view (`SyncPacket::new_checked`, then every accessor), the content checks
//! (`SyncRepr::parse_contents`), and what parses must survive `emit_signed -> parse_verified`
//! unchanged, with exactly the received bytes before the tag (one encoding per message). The
//! same datagram then goes twice into a receiving `Handoff`: the second copy must never install
//! anything or be taken as a request (replay window), and every record installed names a member
//! the receiver knows. Built with `--cfg fuzzing`, `parse_verified` does not check the HMAC tag,
//! so mutated datagrams reach the content checks and the state machine.
//!
//! Run: see fuzz/README.md (`sync`, `-max_len=2048`).
#![no_main]

use std::hint::black_box;
use std::net::Ipv4Addr;

use clua_ctl::sync::wire::{SyncPacket, SyncRepr, TAG_LEN};
use clua_ctl::sync::{Handoff, Received, SyncSettings};
use clua_pipeline::MemberId;
use libfuzzer_sys::fuzz_target;

/// A fixed key: the fuzzer does not attack HMAC-SHA-256, the tag check is bypassed.
const KEY: &[u8] = b"clua fuzz key 0123456789abcdef";

/// The receiver knows 192.0.2.11..=13 as its members 0..=2.
fn member(a: Ipv4Addr) -> Option<MemberId> {
    let o = a.octets();
    (o[..3] == [192, 0, 2] && (11..=13).contains(&o[3])).then(|| MemberId(u32::from(o[3] - 11)))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = SyncPacket::new_checked(data) {
        black_box((p.magic(), p.version(), p.kind(), p.record_count()));
        black_box((p.node_field(), p.node(), p.boot_id(), p.seq()));
        assert_eq!(p.records().count(), usize::from(p.record_count()));
        assert_eq!(p.signed_part().len() + p.tag().len(), data.len());
        if let Ok(repr) = SyncRepr::parse_contents(&p) {
            let bytes = repr.emit_signed(KEY).expect("a parsed message emits");
            assert_eq!(bytes.len(), repr.buffer_len());
            assert_eq!(bytes.len(), data.len());
            assert_eq!(&bytes[..bytes.len() - TAG_LEN], &data[..data.len() - TAG_LEN]);
            let again = SyncRepr::parse_verified(&bytes, KEY).expect("an emitted message parses");
            assert_eq!(again, repr);
        }
    } else {
        assert!(SyncRepr::parse_verified(data, KEY).is_err());
    }

    let mut h = Handoff::new(SyncSettings::default(), "rx".into(), KEY.to_vec(), 1, 1500, 0);
    let mut install = Vec::new();
    let first = h.on_datagram(data, member, &mut install);
    let n = install.len();
    assert!(install.iter().all(|r| r.member.0 <= 2));
    if let Received::Flows(k) = first {
        assert_eq!(k, n);
    }
    let second = h.on_datagram(data, member, &mut install);
    assert_eq!(second, Received::Refused, "a replay after {first:?}");
    assert_eq!(install.len(), n);
    let c = h.counters();
    assert_eq!(c.records_installed + c.unknown_member, c.records_received);
});
