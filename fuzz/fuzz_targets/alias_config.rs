//! clu_alias.config(4) parser over arbitrary text: never panics, and every command it accepts
//! is a boot-time command that `Command::to_args` writes back as the same command.
//!
//! Run: `cargo +nightly fuzz run alias_config` (or see fuzz/README.md for stable).
#![no_main]

use clua_ctl::command::{parse_args, Command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match clua_ctl::alias_config::parse_alias_config(text, "fuzz") {
        Ok(cmds) => {
            let mut last = 0;
            for (line, cmd) in cmds {
                assert!(line > last, "line numbers out of order");
                last = line;
                assert!(
                    !matches!(cmd, Command::Show(_) | Command::Help | Command::Reload),
                    "{cmd:?}"
                );
                assert_eq!(parse_args(cmd.to_args()).as_ref(), Ok(&cmd));
            }
        }
        Err(errs) => {
            assert!(!errs.0.is_empty());
            let _ = errs.to_string();
        }
    }
});
