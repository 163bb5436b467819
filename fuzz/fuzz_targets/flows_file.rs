//! The flows file (`clua_lb::flows_file`, issue 9: a lone router's flows across a restart):
//! `decode` over arbitrary bytes, and over the same bytes sealed with a correct checksum (so the
//! fuzzer reaches the counts, member names, states and member indexes behind the check). Never
//! panics, never allocates more than the input can describe; whatever decodes encodes back to
//! the very same bytes.
//!
//! Run: `cargo +nightly fuzz run flows_file` (or see fuzz/README.md for stable).
#![no_main]

use clua_lb::flows_file::{decode, encode, fnv1a64};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(saved) = decode(bytes) {
        assert_eq!(encode(&saved), bytes, "decode -> encode is the identity");
        assert!(saved
            .flows
            .iter()
            .all(|f| (f.member as usize) < saved.members.len()));
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&fnv1a64(data).to_le_bytes());
    check(&sealed);
});
