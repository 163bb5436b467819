//! The one rule for the names an operator gives ports, members and aliases.
//!
//! A member's name travels in its adverts' 64-byte node field (see [`crate::advert`]) and on
//! cluamgr's command line (`--member NAME`); port and alias names become metric labels and
//! `cluamgr -s` output. So every such name is what all of them can carry unchanged:
//!
//! - 1..=[`NAME_MAX`] bytes (the advert node field's size);
//! - ASCII letters, digits, `.`, `_` and `-` only (no spaces, quotes, `/` or `=`, which would
//!   need quoting on a command line, in a label or in clu_alias.config, which has none);
//! - the first byte a letter or a digit (a leading `-` reads as a cluamgr flag, a leading `.`
//!   as a hidden or relative name).
//!
//! The router's configuration ([[port]], [[member]] and [[alias]] names), the advert codec
//! (node name, on emit and on parse) and cluamgr's `--member` all call [`validate_name`]; a
//! member the router accepts can therefore always send an advert the router accepts.

/// The longest name: the size of an advert's node field.
pub const NAME_MAX: usize = crate::advert::NODE_LEN;

/// Why a string is not a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The empty string.
    #[error("a name must not be empty")]
    Empty,
    /// More than [`NAME_MAX`] bytes.
    #[error("a name is at most {NAME_MAX} bytes, this one has {len}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A byte outside `[A-Za-z0-9._-]`, at `offset`.
    #[error("byte {offset} is not a letter, digit, `.`, `_` or `-`")]
    BadByte {
        /// 0-based byte offset.
        offset: usize,
    },
    /// The first byte is `.`, `_` or `-`.
    #[error("a name starts with a letter or a digit")]
    BadStart,
}

/// Whether `name` is a port, member or alias name (module docs).
///
/// # Errors
/// The first rule `name` breaks.
pub fn validate_name(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong { len: name.len() });
    }
    if let Some(offset) = name
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
    {
        return Err(NameError::BadByte { offset });
    }
    if !name[0].is_ascii_alphanumeric() {
        return Err(NameError::BadStart);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_an_advert_carries() {
        for ok in ["m1", "M", "0", "node-2.example_x", &"a".repeat(NAME_MAX)] {
            assert_eq!(validate_name(ok.as_bytes()), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_the_rest_naming_why() {
        assert_eq!(validate_name(b""), Err(NameError::Empty));
        assert_eq!(
            validate_name("a".repeat(NAME_MAX + 1).as_bytes()),
            Err(NameError::TooLong { len: NAME_MAX + 1 })
        );
        assert_eq!(validate_name(b"m 1"), Err(NameError::BadByte { offset: 1 }));
        assert_eq!(
            validate_name("mé".as_bytes()),
            Err(NameError::BadByte { offset: 1 })
        );
        for bad in ["a/b", "a=b", "a,b", "a\"b", "a\0"] {
            assert_eq!(
                validate_name(bad.as_bytes()),
                Err(NameError::BadByte { offset: 1 }),
                "{bad}"
            );
        }
        for bad in ["-m", ".m", "_m"] {
            assert_eq!(validate_name(bad.as_bytes()), Err(NameError::BadStart));
        }
        assert_eq!(
            validate_name(b"m 1").unwrap_err().to_string(),
            "byte 1 is not a letter, digit, `.`, `_` or `-`"
        );
    }

    /// The advert codec applies the same rule on emit and on parse (issue 7: a member named
    /// `m 1` was accepted by the router and could never come up).
    #[test]
    fn adverts_carry_only_names() {
        use crate::advert::AdvertError::BadNode;
        use crate::advert::{AdvertKind, AdvertPacket, AdvertRepr};
        const KEY: &[u8] = b"clua test key 0123456789abcdef";
        let repr = |node: &str| AdvertRepr {
            kind: AdvertKind::Advert,
            node: node.into(),
            boot_id: 1,
            seq: 1,
            interval_ms: 1000,
            aliases: vec![],
            ports: vec![],
            out_alias: None,
        };
        for bad in ["m 1", "-m1", ".m1"] {
            assert_eq!(repr(bad).emit_signed(KEY), Err(BadNode), "emit {bad}");
            let mut b = repr("m1").emit_signed(KEY).unwrap();
            let mut p = AdvertPacket::new_unchecked(&mut b[..]);
            p.set_node(bad.as_bytes());
            p.sign(KEY);
            assert_eq!(
                AdvertRepr::parse_verified(&b, KEY),
                Err(BadNode),
                "parse {bad}"
            );
        }
        let b = repr("m-1.x_y").emit_signed(KEY).unwrap();
        assert_eq!(AdvertRepr::parse_verified(&b, KEY).unwrap().node, "m-1.x_y");
    }
}
