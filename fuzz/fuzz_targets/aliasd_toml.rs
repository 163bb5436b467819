//! aliasd.toml without file loading: `Config::check` (deserialise, then validate) over arbitrary
//! text. Never panics, reads no file; whatever validates builds a snapshot.
//!
//! Run: `cargo +nightly fuzz run aliasd_toml` (or see fuzz/README.md for stable).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match clua_lb::config::Config::check(text, "fuzz.toml") {
        Ok(valid) => {
            let c = valid.cluster();
            assert!(c.validate().is_ok());
            let _ = c.snapshot(1, &[]);
        }
        Err(e) => {
            assert!(!e.problems.is_empty());
            let _ = e.to_string();
        }
    }
});
