//! Every wire-format parser over arbitrary bytes: `new_checked`, then every accessor and setter of
//! whatever parsed, then `Repr::parse → emit → parse`, down through Ethernet/802.1Q, IPv4, UDP,
//! VXLAN and the inner frame. cargo-fuzz builds with `--cfg fuzzing`, which compiles
//! `clua_pipeline::wire::fuzz` and makes `ChecksumCapabilities::default()` verify nothing on
//! receive, so that `Repr::parse` lets mutated packets past their checksums.
//!
//! Run: see fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clua_pipeline::wire::fuzz::exercise(data);
});
