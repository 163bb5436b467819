//! The router's side of the member protocol: everything aliasd knows about members that run the
//! member agent, gathered in one place.
//!
//! - [`liveness`]: authentication, replay protection and the dead interval, per member (CA3).
//! - [`tracker`]: punted advert frames in, the members' state (up, joins with selw/selp,
//!   listening ports, CA7/CA8) out into the cluster model.
//! - [`health`]: members without the agent, probed by the router (ARP, TCP SYN; issue 10).
//!
//! The wire format itself is [`crate::advert`]; it is shared with the member agent
//! (crate `clua-member`), which builds and sends the adverts.

pub mod health;
pub mod liveness;
pub mod tracker;

pub use liveness::{AdvertCounters, AdvertOutcome, Liveness, MemberView, DEFAULT_DEAD_MISSES};
pub use tracker::MemberTracker;

/// How this router receives member adverts (aliasd.toml `[adverts]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertSettings {
    /// The shared HMAC-SHA-256 key (from a root-only key file).
    pub key: Vec<u8>,
    /// UDP port on the router's interconnect addresses.
    pub port: u16,
    /// Missed adverts before a member is marked down.
    pub dead_misses: u32,
}
