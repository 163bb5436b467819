//! The advert key file: the shared secret members sign adverts with and routers verify them
//! with (`docs/member-protocol.md`).
//!
//! The key is the file's bytes with one trailing newline (`\n` or `\r\n`) removed, so both
//! `head -c 32 /dev/urandom > key` and `openssl rand -hex 32 > key` work. It must be at least
//! [`MIN_KEY_LEN`] bytes. The file must be a regular file (symbolic links are followed) owned by
//! root with no group or other permission bits (`chmod 600`, or `400`): anyone who can read it
//! can forge adverts, so a key that others can read is refused rather than used.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use crate::advert::MIN_KEY_LEN;

/// Why a key file was refused. `Display` names the path and the problem.
#[derive(Debug)]
pub struct KeyFileError {
    /// The key file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: KeyFileProblem,
}

/// What is wrong with a key file.
#[derive(Debug)]
pub enum KeyFileProblem {
    /// It cannot be read (missing, no permission, ...).
    Io(io::Error),
    /// Not a regular file.
    NotRegular,
    /// Owned by a user other than root.
    NotRootOwned {
        /// The owner's uid.
        uid: u32,
    },
    /// Group or others have permission bits.
    Permissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// The key (after removing one trailing newline) is too short.
    TooShort {
        /// Its length in bytes.
        len: usize,
    },
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        match &self.problem {
            KeyFileProblem::Io(e) => write!(f, "key file {p}: {e}"),
            KeyFileProblem::NotRegular => write!(f, "key file {p}: is not a regular file"),
            KeyFileProblem::NotRootOwned { uid } => write!(
                f,
                "key file {p}: is owned by uid {uid}, not root; chown root:root {p}"
            ),
            KeyFileProblem::Permissions { mode } => {
                let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
                    (true, true) => "its group and others",
                    (true, false) => "its group",
                    _ => "others",
                };
                write!(
                    f,
                    "key file {p}: is mode {mode:04o}: accessible to {who}; chmod 600 {p}"
                )
            }
            KeyFileProblem::TooShort { len } => write!(
                f,
                "key file {p}: key is {len} bytes, at least {MIN_KEY_LEN} needed (e.g. `openssl rand -hex 32 > {p}`)"
            ),
        }
    }
}

impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            KeyFileProblem::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Loads the advert key from `path`: checks ownership (uid 0) and mode (no group/other bits)
/// first, then reads it, removes one trailing newline and checks its length.
///
/// # Errors
/// A [`KeyFileError`] naming `path` and the problem.
pub fn load_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    load_key_owned_by(path, 0)
}

/// [`load_key`] with another required owner (for tests and unprivileged tools).
pub fn load_key_owned_by(path: &Path, owner: u32) -> Result<Vec<u8>, KeyFileError> {
    let err = |problem| KeyFileError {
        path: path.to_path_buf(),
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(KeyFileProblem::Io(e)))?;
    if !meta.is_file() {
        return Err(err(KeyFileProblem::NotRegular));
    }
    if meta.uid() != owner {
        return Err(err(KeyFileProblem::NotRootOwned { uid: meta.uid() }));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(err(KeyFileProblem::Permissions { mode }));
    }
    let mut key = std::fs::read(path).map_err(|e| err(KeyFileProblem::Io(e)))?;
    if key.last() == Some(&b'\n') {
        key.pop();
        if key.last() == Some(&b'\r') {
            key.pop();
        }
    }
    if key.len() < MIN_KEY_LEN {
        return Err(err(KeyFileProblem::TooShort { len: key.len() }));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct TmpDir(PathBuf);
    impl TmpDir {
        fn new(tag: &str) -> TmpDir {
            let d = std::env::temp_dir().join(format!("clua-keyfile-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            TmpDir(d)
        }
        fn file(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, contents).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }
    impl Drop for TmpDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The uid files made by this process get (the directory's owner).
    fn me(d: &TmpDir) -> u32 {
        std::fs::metadata(&d.0).unwrap().uid()
    }

    #[test]
    fn loads_and_strips_one_newline() {
        let d = TmpDir::new("ok");
        let uid = me(&d);
        let k = b"0123456789abcdef0123456789abcdef";
        let p = d.file("a", k, 0o600);
        assert_eq!(load_key_owned_by(&p, uid).unwrap(), k);
        let p = d.file("b", b"0123456789abcdef0123456789abcdef\n", 0o400);
        assert_eq!(load_key_owned_by(&p, uid).unwrap(), k);
        let p = d.file("c", b"0123456789abcdef0123456789abcdef\r\n", 0o600);
        assert_eq!(load_key_owned_by(&p, uid).unwrap(), k);
        // Only one newline is removed: the second one is part of the key.
        let p = d.file("d", b"0123456789abcdef0123456789abcdef\n\n", 0o600);
        assert_eq!(load_key_owned_by(&p, uid).unwrap().len(), 33);
        // Binary keys are used as they are.
        let bin: Vec<u8> = (0u8..32).collect();
        let p = d.file("e", &bin, 0o600);
        assert_eq!(load_key_owned_by(&p, uid).unwrap(), bin);
    }

    #[test]
    fn refuses_short_keys() {
        let d = TmpDir::new("short");
        let uid = me(&d);
        let p = d.file("k", b"fifteen bytes!!\n", 0o600);
        let e = load_key_owned_by(&p, uid).unwrap_err();
        assert!(matches!(e.problem, KeyFileProblem::TooShort { len: 15 }));
        assert!(e.to_string().contains(&p.display().to_string()));
        assert!(e.to_string().contains("15 bytes, at least 16"), "{e}");
        let p = d.file("k2", b"sixteen bytes!!!\n", 0o600);
        assert!(load_key_owned_by(&p, uid).is_ok());
        let p = d.file("k3", b"", 0o600);
        assert!(load_key_owned_by(&p, uid).is_err());
    }

    #[test]
    fn refuses_group_or_other_access() {
        let d = TmpDir::new("mode");
        let uid = me(&d);
        let key = b"0123456789abcdef0123456789abcdef";
        for (mode, who) in [
            (0o644, "its group and others"),
            (0o640, "its group"),
            (0o604, "others"),
            (0o601, "others"),
            (0o610, "its group"),
        ] {
            let p = d.file(&format!("k{mode:o}"), key, mode);
            let e = load_key_owned_by(&p, uid).unwrap_err();
            assert!(matches!(e.problem, KeyFileProblem::Permissions { .. }));
            let s = e.to_string();
            assert!(s.contains(&format!("is mode {mode:04o}")), "{s}");
            assert!(s.contains(who), "{s}");
            assert!(s.contains("chmod 600"), "{s}");
            assert!(s.contains(&p.display().to_string()), "{s}");
        }
    }

    #[test]
    fn refuses_other_owners() {
        let d = TmpDir::new("owner");
        let uid = me(&d);
        let p = d.file("k", b"0123456789abcdef0123456789abcdef", 0o600);
        let e = load_key_owned_by(&p, uid.wrapping_add(1)).unwrap_err();
        assert!(matches!(e.problem, KeyFileProblem::NotRootOwned { uid: u } if u == uid));
        assert!(e.to_string().contains("not root"), "{e}");
        // When the tests run as root, load_key itself refuses a file chowned away from root.
        if uid == 0 {
            assert!(load_key(&p).is_ok());
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            let e = load_key(&p).unwrap_err();
            assert!(matches!(
                e.problem,
                KeyFileProblem::NotRootOwned { uid: 65534 }
            ));
        } else {
            assert!(matches!(
                load_key(&p).unwrap_err().problem,
                KeyFileProblem::NotRootOwned { .. }
            ));
        }
    }

    #[test]
    fn refuses_missing_and_non_regular_files() {
        let d = TmpDir::new("kind");
        let e = load_key(&d.0.join("missing")).unwrap_err();
        assert!(matches!(e.problem, KeyFileProblem::Io(_)));
        assert!(e.to_string().contains("missing"));
        let e = load_key(&d.0).unwrap_err();
        assert!(matches!(e.problem, KeyFileProblem::NotRegular));
        assert!(e.to_string().contains("not a regular file"));
    }
}
