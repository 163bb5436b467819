//! A connection-table entry as it travels between a worker, the control thread and peer routers
//! (issue 9: flow hand-off, the IPVS sync-daemon model; docs/sync-protocol.md).
//!
//! Workers emit a [`FlowRecord`] when a TCP flow becomes established in their table (select's
//! `handoff`), and again for every live entry on a periodic walk of the table (refresh of
//! long-lived flows, and a full walk when a starting peer asks). The control thread batches
//! them into authenticated datagrams on the interconnect; a peer's control thread turns received
//! ones back into records of its own snapshot's member ids and hands them to its workers, which
//! install them. Sticky affinities (issue 9, SC2/SC3) are entries of the same table under
//! synthetic keys ([`FlowKey::src_port`] 0) and travel the same way.

use crate::conntrack::FlowState;
use crate::hash::FlowKey;
use crate::snapshot::MemberId;

/// One connection-table entry, outside the table. `Copy`, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow (or affinity) key.
    pub key: FlowKey,
    /// Its member, as an id of the snapshot of whoever holds the record (the control thread
    /// translates ids to member addresses on the wire and back).
    pub member: MemberId,
    /// The entry's state.
    pub state: FlowState,
    /// The initial sequence number of the SYN that opened it (0: unknown).
    pub isn: u32,
    /// Milliseconds the entry has left before it expires, as seen by its sender.
    pub remaining_ms: u32,
}

impl Default for FlowRecord {
    fn default() -> Self {
        FlowRecord {
            key: FlowKey::default(),
            member: MemberId(0),
            state: FlowState::Established,
            isn: 0,
            remaining_ms: 0,
        }
    }
}
