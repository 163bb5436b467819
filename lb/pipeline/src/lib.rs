//! The clua packet pipeline: everything an alias router does to a packet, with no DPDK in sight.
//!
//! `RX -> classify -> select -> encap -> TX`, one stage per module, each run over a whole burst
//! (at most [`BURST`] packets); packets to in_noalias ports go `select -> refuse -> TX` instead
//! and leave, answered, by the port they came in on; replies to members' out_alias connections
//! (CA9) go `out_alias -> encap -> TX`, past select. The pipeline works on any [`PacketBuf`]:
//! the DPDK mbuf (`clua-dpdk`) and the heap-backed [`VecBuf`] used by unit tests, golden
//! fixtures, fuzzing and benches. Those, and [`BURST`], come from the leaf crate `clua-packet`
//! and are re-exported here.
//!
//! Invariants:
//! - Nothing on the per-packet path allocates, locks, logs or panics. Every packet ends with a
//!   [`Verdict`]; drops carry a [`DropReason`] that bumps a per-core counter.
//! - Configuration arrives as an immutable [`Snapshot`] built by the control plane (crate
//!   `clua-ctl`); a worker swaps to a new one between bursts. Established flows survive a swap
//!   because the connection table stores stable [`MemberId`]s.
#![forbid(unsafe_code)]

pub mod classify;
pub mod conntrack;
pub mod encap;
pub mod fragments;
pub mod handoff;
pub mod hash;
pub mod icmp_error;
pub mod maglev;
pub mod out_alias;
pub mod refuse;
pub mod select;
pub mod snapshot;
pub mod verdict;
pub mod wire;
pub mod worker;

/// The buffer trait and [`VecBuf`], from `clua-packet` (kept at this path for existing users).
pub use clua_packet::buf;
pub use clua_packet::{PacketBuf, VecBuf, BURST};
pub use snapshot::{
    Alias, AliasId, AliasMember, Encap, Member, MemberId, Policy, PortId, PortInfo, PortRole,
    PortSchedule, ScheduleRef, ServiceMode, Snapshot,
};
pub use verdict::{CoreCounters, DropReason, PuntReason, Verdict};
pub use worker::{Pipeline, PipelineConfig};
