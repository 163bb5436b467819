//! clua_services(4) parser over arbitrary text: never panics; what it accepts obeys CA9's
//! exclusions, and its table renders.
//!
//! Run: `cargo +nightly fuzz run services` (or see fuzz/README.md for stable).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match clua_ctl::services::parse_services(text, "fuzz") {
        Ok(specs) => {
            for s in &specs {
                assert!(s.port != 0, "port 0 accepted");
                assert!(s.options.check().is_ok(), "CA9 exclusion accepted: {s:?}");
            }
            let _ = clua_ctl::services::render_table(&specs);
        }
        Err(errs) => {
            assert!(!errs.0.is_empty());
            let _ = errs.to_string();
        }
    }
});
