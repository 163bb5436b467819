//! What clua's data plane is written against, and nothing else: the packet-buffer trait
//! ([`PacketBuf`]), fixed-size [`Burst`]s of at most [`BURST`] buffers, and the port trait
//! ([`PacketPort`]: rx_burst / tx_burst on numbered queues).
//!
//! Two implementations of each: DPDK's (`clua_dpdk::Mbuf`, `clua_dpdk::Port`, in the only crate
//! with DPDK `unsafe`) and the heap-backed ones here ([`VecBuf`], [`QueuePort`]), so the pipeline
//! (`clua-pipeline`) and aliasd's worker loop are unit-tested, fuzzed and benchmarked without
//! EAL. This crate has no dependencies and no `unsafe`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod buf;
pub mod burst;
pub mod port;

pub use buf::{PacketBuf, VecBuf, DEFAULT_HEADROOM};
pub use burst::{Burst, Drain};
pub use port::{PacketPort, QueuePort};

/// Packets per burst: the unit every stage iterates over (DPDK l3fwd's MAX_PKT_BURST).
pub const BURST: usize = 32;
