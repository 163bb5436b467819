//! Every wire-format parser over arbitrary bytes: `new_checked`, then every accessor and setter of
//! whatever parsed, then `Repr::parse → emit → parse`, down through Ethernet/802.1Q, IPv4, UDP,
//! VXLAN and the inner frame. cargo-fuzz builds with `--cfg fuzzing`, which compiles
//! `clua_pipeline::wire::fuzz` and turns off the IPv4 header checksum check in `Ipv4Repr::parse`
//! so that mutated packets get past it.
//!
//! Run: `cargo +nightly fuzz run wire` from the repository root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    clua_pipeline::wire::fuzz::exercise(data);
});
