//! Flow hand-off between alias routers (issue 9, SC4; the IPVS sync-daemon model;
//! docs/sync-protocol.md).
//!
//! Workers report TCP flows that became established (and, on a periodic walk of their tables,
//! every live entry); the control plane batches them, authenticated like the router protocol,
//! into datagrams on the interconnect, within a bandwidth bound; peers turn them back into
//! entries of their own connection tables. A starting router asks its peers for their whole
//! tables. Sans I/O, like the rest of this crate: records in, frames and installs out.

/// What the flow hand-off needs besides the router protocol's settings (node, key,
/// interconnect), which it shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// The UDP port on the interconnect (default 9473, beside the router protocol's 9472).
    pub udp_port: u16,
    /// How often the workers' walk hands every live entry again (long-lived flows' refresh).
    pub refresh_ms: u64,
    /// The most flow records sent per second; records over it are dropped and counted (a
    /// flood of new flows must not flood the interconnect).
    pub max_records_per_sec: u32,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            udp_port: 9473,
            refresh_ms: 30_000,
            max_records_per_sec: 1_000_000,
        }
    }
}

pub mod handoff;
pub mod wire;

pub use handoff::{Handoff, Received, SyncCounters, FLUSH_MS};
