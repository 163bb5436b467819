//! The boot counter: each start of the member agent, or of aliasd among several routers, gets a
//! `boot_id` one larger than the last, kept in a small state file (like SNMPv3's
//! snmpEngineBoots, RFC 3414 §2.2). Shared by both, so it lives here rather than in either
//! binary (it is one of the control crate's few pieces of file I/O, like the key files).
//!
//! Routers accept an advert (or a peer router's message) only if its boot id is larger than the
//! last one they accepted from the sender, or equal with a larger sequence number
//! (docs/member-protocol.md, docs/router-protocol.md, replay protection). The boot id must therefore grow with every start, and nothing here reads the
//! clock: a member whose clock steps back still restarts with a larger boot id.
//!
//! The file holds the last boot id in decimal and a newline. [`next_boot_id`] reads it, adds one
//! and replaces it atomically (a temporary file beside it, fsync, rename, fsync of the directory)
//! before the agent sends its first advert, so a crash at any point leaves either the old or the
//! new count, never a torn one. A missing file is a first boot (boot id 1); a file that cannot be
//! read or does not hold a count is an error naming the file: resetting it silently would lock
//! the member out of every router that saw a larger boot id.

use std::fmt;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the member agent keeps its counter unless `state_file` says otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/clua/member-boots";
/// Where aliasd keeps its counter unless `[router] state_file` says otherwise.
pub const DEFAULT_ROUTER_STATE_FILE: &str = "/var/lib/clua/router-boots";

/// Why the next boot id could not be had.
#[derive(Debug)]
pub enum BootsError {
    /// The file exists but could not be read.
    Read {
        /// The state file.
        file: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
    /// The file does not hold a boot count.
    Corrupt {
        /// The state file.
        file: PathBuf,
        /// The start of what it holds (at most 40 characters, escaped).
        found: String,
    },
    /// The count is `u64::MAX`: no larger boot id exists.
    Exhausted {
        /// The state file.
        file: PathBuf,
    },
    /// The new count could not be written (the old one is still in place).
    Write {
        /// The state file.
        file: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
}

impl fmt::Display for BootsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootsError::Read { file, error } => {
                write!(f, "boot counter {}: cannot read: {error}", file.display())
            }
            BootsError::Corrupt { file, found } => write!(
                f,
                "boot counter {}: not a boot count (expected a decimal number and a newline, found \"{found}\"); \
                 it is not reset by itself, see docs/member-protocol.md (boot_id) before replacing it",
                file.display()
            ),
            BootsError::Exhausted { file } => write!(
                f,
                "boot counter {}: at its maximum {}, no larger boot id exists",
                file.display(),
                u64::MAX
            ),
            BootsError::Write { file, error } => {
                write!(f, "boot counter {}: cannot write: {error}", file.display())
            }
        }
    }
}

impl std::error::Error for BootsError {}

/// The last boot id in `text` (a state file's content), if it is one.
pub fn parse_count(text: &str) -> Option<u64> {
    let digits = text.strip_suffix('\n').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads the count in `file` (0 when there is none yet), adds one, stores it and returns it:
/// the boot id of this start. The parent directory is created (mode 0700) if missing.
///
/// # Errors
/// [`BootsError`]: the file is unreadable or corrupt (it is left as it is), the count cannot
/// grow, or the new count cannot be stored.
pub fn next_boot_id(file: &Path) -> Result<u64, BootsError> {
    let last = match std::fs::read(file) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            parse_count(&text).ok_or_else(|| BootsError::Corrupt {
                file: file.to_path_buf(),
                found: text
                    .chars()
                    .take(40)
                    .collect::<String>()
                    .escape_default()
                    .to_string(),
            })?
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(error) => {
            return Err(BootsError::Read {
                file: file.to_path_buf(),
                error,
            })
        }
    };
    let next = last.checked_add(1).ok_or_else(|| BootsError::Exhausted {
        file: file.to_path_buf(),
    })?;
    store(file, next).map_err(|error| BootsError::Write {
        file: file.to_path_buf(),
        error,
    })?;
    Ok(next)
}

/// Replaces `file` with `count` so that a crash leaves the old or the new file whole.
fn store(file: &Path, count: u64) -> io::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = file
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{count}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable only once the directory entry is.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct TmpDir(PathBuf);

    impl Drop for TmpDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tmpdir(tag: &str) -> TmpDir {
        let d = std::env::temp_dir().join(format!("clua-boots-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TmpDir(d)
    }

    #[test]
    fn consecutive_starts_count_up_from_one() {
        let d = tmpdir("count");
        // The directory does not exist yet: created 0700.
        let f = d.0.join("lib/clua/member-boots");
        assert_eq!(next_boot_id(&f).unwrap(), 1);
        assert_eq!(next_boot_id(&f).unwrap(), 2);
        assert_eq!(next_boot_id(&f).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "3\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(f.parent().unwrap()), 0o700);
        assert_eq!(mode(&f), 0o600);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(f.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("member-boots")]);
    }

    #[test]
    fn the_count_continues_from_the_file_not_from_the_clock() {
        let d = tmpdir("seeded");
        let f = d.0.join("member-boots");
        // Far below any wall-clock value in ms (a clock-based id would be ~1.7e12) ...
        std::fs::write(&f, "41\n").unwrap();
        assert_eq!(next_boot_id(&f).unwrap(), 42);
        // ... and far above one: a clock stepped back would not bring it down either.
        std::fs::write(&f, "9000000000000000000").unwrap();
        assert_eq!(next_boot_id(&f).unwrap(), 9_000_000_000_000_000_001);
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "9000000000000000001\n"
        );
    }

    #[test]
    fn a_corrupt_or_unreadable_file_is_an_error_naming_it_and_is_left_alone() {
        let d = tmpdir("corrupt");
        let f = d.0.join("member-boots");
        for bad in [
            "",
            "\n",
            "seven\n",
            "+5\n",
            "-1\n",
            "12 \n",
            "1\n2\n",
            "99999999999999999999\n",
        ] {
            std::fs::write(&f, bad).unwrap();
            let e = next_boot_id(&f).unwrap_err();
            assert!(matches!(e, BootsError::Corrupt { .. }), "{bad:?}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("boot counter {}: not a boot count", f.display())),
                "{msg}"
            );
            assert_eq!(std::fs::read_to_string(&f).unwrap(), bad, "not reset");
        }
        std::fs::write(&f, "seven\n").unwrap();
        assert!(next_boot_id(&f)
            .unwrap_err()
            .to_string()
            .contains("found \"seven\\n\""));
        // A directory where the file should be: unreadable.
        let g = d.0.join("dir");
        std::fs::create_dir(&g).unwrap();
        let e = next_boot_id(&g).unwrap_err();
        assert!(matches!(e, BootsError::Read { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("boot counter {}: cannot read", g.display())),
            "{e}"
        );
        std::fs::write(&f, format!("{}\n", u64::MAX)).unwrap();
        let e = next_boot_id(&f).unwrap_err();
        assert!(matches!(e, BootsError::Exhausted { .. }), "{e:?}");
    }

    #[test]
    fn parse_count_accepts_only_a_decimal_count() {
        assert_eq!(parse_count("0\n"), Some(0));
        assert_eq!(parse_count("17"), Some(17));
        assert_eq!(parse_count("17\n\n"), None);
        assert_eq!(parse_count(" 17\n"), None);
    }
}
