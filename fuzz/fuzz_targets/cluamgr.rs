//! The cluamgr grammar (the clap definition and its value parsers) over arbitrary argv: the
//! input is split into arguments at NUL bytes. Never panics; an accepted command survives
//! `to_args` and the JSON wire form unchanged.
//!
//! Run: `cargo +nightly fuzz run cluamgr` (or see fuzz/README.md for stable).
#![no_main]

use clua_ctl::command::{parse_args, parse_invocation, Command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args: Vec<&str> = if text.is_empty() {
        vec![]
    } else {
        text.split('\0').collect()
    };
    match parse_invocation(&args) {
        Ok(inv) => {
            let c = inv.command;
            assert_eq!(parse_args(c.to_args()).as_ref(), Ok(&c), "{args:?}");
            let j = serde_json::to_string(&c).unwrap();
            let back: Command = serde_json::from_str(&j).unwrap();
            assert_eq!(back, c);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
