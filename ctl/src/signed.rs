//! What the two signed datagram formats share: member adverts ([`crate::advert`]) and router
//! messages ([`crate::routers::wire`]). Both are `magic (4) | version (1) | ... | entries |
//! HMAC-SHA-256 tag (32)`, framed and authenticated the same way; only their fields differ.

use core::ops::Range;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the HMAC-SHA-256 tag that ends every signed datagram.
pub const TAG_LEN: usize = 32;

/// Where a format's magic and version sit, and the lengths it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framing {
    /// The magic bytes.
    pub magic: [u8; 4],
    /// Their place.
    pub magic_at: Range<usize>,
    /// The only version understood.
    pub version: u8,
    /// Its place.
    pub version_at: usize,
    /// The fixed header's length (the tag comes on top).
    pub header_len: usize,
    /// The longest datagram accepted.
    pub max_len: usize,
}

/// Why a datagram's framing is refused. Each format maps these onto its own error type, whose
/// variants of the same names count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// Longer than the format allows, or counts over its limits.
    Oversized,
    /// Shorter than the header and tag, or than its counts imply.
    Truncated,
    /// Not the format's magic.
    BadMagic,
    /// Another version.
    UnsupportedVersion,
    /// Longer than its counts imply.
    Malformed,
}

impl Framing {
    /// Checks, in this order: length at most `max_len` (`Oversized`), at least header and tag
    /// (`Truncated`), magic (`BadMagic`), version (`UnsupportedVersion`: the layout depends on
    /// it), counts within the limits (`needed` returns `None`: `Oversized`), and the length the
    /// counts imply equal to the buffer's (`Truncated` if shorter, `Malformed` if longer).
    /// `needed` is called only once the header is known to be there.
    pub fn check(
        &self,
        b: &[u8],
        needed: impl FnOnce() -> Option<usize>,
    ) -> Result<(), FramingError> {
        if b.len() > self.max_len {
            return Err(FramingError::Oversized);
        }
        if b.len() < self.header_len + TAG_LEN {
            return Err(FramingError::Truncated);
        }
        if b[self.magic_at.clone()] != self.magic {
            return Err(FramingError::BadMagic);
        }
        if b[self.version_at] != self.version {
            return Err(FramingError::UnsupportedVersion);
        }
        let need = needed().ok_or(FramingError::Oversized)?;
        match b.len().cmp(&need) {
            core::cmp::Ordering::Less => Err(FramingError::Truncated),
            core::cmp::Ordering::Greater => Err(FramingError::Malformed),
            core::cmp::Ordering::Equal => Ok(()),
        }
    }
}

fn new_mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// The HMAC-SHA-256 of `signed` under `key`.
pub fn tag(signed: &[u8], key: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = new_mac(key);
    mac.update(signed);
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA-256 of `signed` under `key` (compared in constant time).
pub fn verify(signed: &[u8], tag: &[u8], key: &[u8]) -> bool {
    let mut mac = new_mac(key);
    mac.update(signed);
    mac.verify_slice(tag).is_ok()
}

/// A big-endian u16 from the first 2 bytes of `b`.
pub fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// A big-endian u32 from the first 4 bytes of `b`.
pub fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A big-endian u64 from the first 8 bytes of `b`.
pub fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Whether a message is new, by the member-advert replay rule (docs/member-protocol.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Accept it (first message seen from the sender, a larger boot_id, or a larger seq).
    Fresh,
    /// Same boot, seq not above the last accepted one: a replay.
    Replayed,
    /// An older boot than the last accepted one.
    StaleBoot,
}

/// The replay rule: `last` is the `(boot_id, seq)` last accepted from the sender (`None`: none
/// yet).
pub fn freshness(last: Option<(u64, u64)>, boot_id: u64, seq: u64) -> Freshness {
    match last {
        None => Freshness::Fresh,
        Some((b, _)) if boot_id > b => Freshness::Fresh,
        Some((b, _)) if boot_id < b => Freshness::StaleBoot,
        Some((_, s)) if seq > s => Freshness::Fresh,
        Some(_) => Freshness::Replayed,
    }
}

/// The replay rule with a window (RFC 4303 §3.4.3 style, 64 messages): like [`freshness`],
/// but a message of the current boot up to 63 below the highest seq seen is also fresh, once.
/// For senders whose messages of one interval may arrive out of order (a router's announcement
/// over several frames, received by several workers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    boot_id: u64,
    top: u64,
    /// Bit i: seq `top - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// The window after accepting `(boot_id, seq)`, or why it is refused (`last` `None`: the
    /// first message from the sender).
    pub fn check(
        last: Option<ReplayWindow>,
        boot_id: u64,
        seq: u64,
    ) -> Result<ReplayWindow, Freshness> {
        let Some(w) = last else {
            return Ok(ReplayWindow {
                boot_id,
                top: seq,
                seen: 1,
            });
        };
        if boot_id < w.boot_id {
            return Err(Freshness::StaleBoot);
        }
        if boot_id > w.boot_id {
            return Ok(ReplayWindow {
                boot_id,
                top: seq,
                seen: 1,
            });
        }
        if seq > w.top {
            let shift = seq - w.top;
            let seen = if shift >= 64 { 0 } else { w.seen << shift };
            return Ok(ReplayWindow {
                boot_id,
                top: seq,
                seen: seen | 1,
            });
        }
        let back = w.top - seq;
        if back >= 64 || w.seen & (1 << back) != 0 {
            return Err(Freshness::Replayed);
        }
        Ok(ReplayWindow {
            seen: w.seen | (1 << back),
            ..w
        })
    }

    /// The sender's boot id.
    pub fn boot_id(&self) -> u64 {
        self.boot_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Framing = Framing {
        magic: *b"TEST",
        magic_at: 0..4,
        version: 1,
        version_at: 4,
        header_len: 8,
        max_len: 100,
    };

    fn frame(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[..4].copy_from_slice(b"TEST");
        b[4] = 1;
        b
    }

    #[test]
    fn the_replay_window_takes_reordered_messages_once() {
        let w = ReplayWindow::check(None, 5, 10).unwrap();
        let w = ReplayWindow::check(Some(w), 5, 12).unwrap();
        // 11 arrives late: fresh once, then a replay.
        let w = ReplayWindow::check(Some(w), 5, 11).unwrap();
        assert_eq!(
            ReplayWindow::check(Some(w), 5, 11),
            Err(Freshness::Replayed)
        );
        assert_eq!(
            ReplayWindow::check(Some(w), 5, 12),
            Err(Freshness::Replayed)
        );
        assert_eq!(
            ReplayWindow::check(Some(w), 5, 10),
            Err(Freshness::Replayed)
        );
        // Far below the window: refused; far above: the window moves.
        let w = ReplayWindow::check(Some(w), 5, 200).unwrap();
        assert_eq!(
            ReplayWindow::check(Some(w), 5, 136),
            Err(Freshness::Replayed)
        );
        assert!(ReplayWindow::check(Some(w), 5, 137).is_ok());
        assert_eq!(
            ReplayWindow::check(Some(w), 4, 999),
            Err(Freshness::StaleBoot)
        );
        assert_eq!(ReplayWindow::check(Some(w), 6, 1).unwrap().boot_id(), 6);
    }

    #[test]
    fn framing_is_checked_in_order() {
        let ok = frame(8 + TAG_LEN);
        assert_eq!(F.check(&ok, || Some(40)), Ok(()));
        assert_eq!(
            F.check(&frame(101), || Some(101)),
            Err(FramingError::Oversized)
        );
        assert_eq!(
            F.check(&ok[..39], || Some(40)),
            Err(FramingError::Truncated)
        );
        let mut bad = ok.clone();
        bad[0] = b'X';
        assert_eq!(F.check(&bad, || Some(40)), Err(FramingError::BadMagic));
        let mut v2 = ok.clone();
        v2[4] = 2;
        assert_eq!(
            F.check(&v2, || Some(40)),
            Err(FramingError::UnsupportedVersion)
        );
        assert_eq!(F.check(&ok, || None), Err(FramingError::Oversized));
        assert_eq!(F.check(&ok, || Some(41)), Err(FramingError::Truncated));
        assert_eq!(F.check(&ok, || Some(39)), Err(FramingError::Malformed));
    }

    #[test]
    fn tags_verify_only_under_their_key_and_bytes() {
        let t = tag(b"signed part", b"a key of sixteen+");
        assert!(verify(b"signed part", &t, b"a key of sixteen+"));
        assert!(!verify(b"signed parT", &t, b"a key of sixteen+"));
        assert!(!verify(b"signed part", &t, b"another key, 16+"));
        assert!(!verify(b"signed part", &t[..31], b"a key of sixteen+"));
    }
}
