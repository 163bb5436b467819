//! The RIPv2 speaker (RFC 2453; CA6, seed 000 §6.5–6.6, 001 §6.6): the only routing protocol
//! aliasd speaks, and only to advertise. It announces a host route for every alias the router
//! specifies and a network route for `virtual` aliases ([`routes`]), on every RIP port, and never
//! installs what it hears (aliasd is not a general-purpose router, seed 000 §6.6.1).
//!
//! - [`wire`]: the datagram (views, `Repr`, RFC 4822 HMAC-SHA-256) and its Ethernet/IPv4/UDP
//!   frame.
//! - [`speaker`]: [`RipSpeaker`], the sans-I/O state machine: routes, frames and `now` in,
//!   frames out (periodic and triggered updates, answers to requests, withdrawal on shutdown).
//! - [`routes`](mod@routes): the CA6 policy, `ControlState` -> routes.
//!
//! docs/rip.md describes what is sent, the timers, the counters, and the BIRD configuration that
//! peers with it.

use std::net::Ipv4Addr;

use clua_pipeline::snapshot::PortId;

use crate::model::Mac;

pub mod routes;
pub mod speaker;
pub mod wire;

pub use routes::routes;
pub use speaker::{RipCounters, RipSpeaker};
pub use wire::RipError;

/// A route the speaker advertises: `prefix/len`, the prefix with its host bits clear. Sent with
/// metric 1 (the router is next to every alias it routes for), 16 once withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RipRoute {
    /// The network address (an alias's address for a host route).
    pub prefix: Ipv4Addr,
    /// Prefix length, 1..=32.
    pub len: u8,
}

impl std::fmt::Display for RipRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.prefix, self.len)
    }
}

/// Where a port's updates go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RipMode {
    /// To the port subnet's broadcast address (255.255.255.255 on a /31 or /32), MAC
    /// ff:ff:ff:ff:ff:ff: every RIPv2 and RIPv1-compatible listener hears it.
    #[default]
    Broadcast,
    /// To 224.0.0.9, MAC 01:00:5e:00:00:09 (RFC 2453 §4.5): only RIPv2 routers hear it.
    Multicast,
}

/// A client-facing port the speaker runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RipPort {
    /// The port frames are sent on and arrive from.
    pub port: PortId,
    /// Its MAC: the source of what the speaker sends.
    pub mac: Mac,
    /// Its address: the source of what the speaker sends.
    pub addr: Ipv4Addr,
    /// Its subnet's prefix length (1..=32): only neighbours inside it are answered.
    pub prefix_len: u8,
    /// Broadcast or multicast.
    pub mode: RipMode,
}

/// RFC 4822 cryptographic authentication with HMAC-SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct RipAuth {
    /// The key id sent, and the only one accepted.
    pub key_id: u8,
    /// The key (BIRD's `password`); longer than 32 bytes, its SHA-256 hash is used (RFC 4822
    /// §2.5).
    pub key: Vec<u8>,
}

impl std::fmt::Debug for RipAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("RipAuth")
            .field("key_id", &self.key_id)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .finish()
    }
}

/// The default period of unsolicited updates (RFC 2453 §3.8).
pub const DEFAULT_UPDATE_MS: u64 = 30_000;
/// The default jitter: each period is `update_ms` ± up to this.
pub const DEFAULT_JITTER_MS: u64 = 5_000;
/// The default least time between two triggered updates.
pub const DEFAULT_TRIGGERED_MIN_MS: u64 = 1_000;
/// The range `triggered_min_ms` is held to (RFC 2453 §3.10.1: 1 to 5 seconds).
pub const TRIGGERED_MIN_RANGE: core::ops::RangeInclusive<u64> = 1_000..=5_000;
/// How long a withdrawn route is still advertised with metric 16 before it is forgotten (RFC
/// 2453 §3.8's garbage-collection timer).
pub const GARBAGE_MS: u64 = 120_000;

/// The speaker's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RipSettings {
    /// The ports it runs on (client-facing ones; never the interconnect).
    pub ports: Vec<RipPort>,
    /// Period of unsolicited whole-table updates, per port (default 30 s).
    pub update_ms: u64,
    /// Each period is `update_ms` ± a random amount up to this (default 5 s; held to at most
    /// half of `update_ms`), so that routers do not synchronise (RFC 2453 §3.8).
    pub jitter_ms: u64,
    /// Least time between two triggered updates (RFC 2453 §3.10.1); held to 1000..=5000 ms.
    /// A change inside the window is sent when it ends.
    pub triggered_min_ms: u64,
    /// RFC 4822 authentication of everything sent and received, if set.
    pub auth: Option<RipAuth>,
}

impl Default for RipSettings {
    fn default() -> Self {
        RipSettings {
            ports: Vec::new(),
            update_ms: DEFAULT_UPDATE_MS,
            jitter_ms: DEFAULT_JITTER_MS,
            triggered_min_ms: DEFAULT_TRIGGERED_MIN_MS,
            auth: None,
        }
    }
}
