//! Safe RAII types over DPDK: [`Eal`], [`Mempool`], [`Mbuf`] (implementing
//! [`clua_packet::PacketBuf`]), fixed-size [`Burst`]s, ethdev [`Port`]s (implementing
//! [`clua_packet::PacketPort`]), [`Ring`]s and lcore [`launch`].
//!
//! This crate knows DPDK and the leaf crate `clua-packet`, nothing of the load balancer: the
//! pipeline and aliasd's worker loop are written against the leaf crate's traits.
//!
//! All of clua's DPDK `unsafe` code lives in this crate, each block with a `// SAFETY:` note;
//! the raw bindings are in `clua-dpdk-sys`.
//!
//! Lifetimes DPDK does not let the type system see, which callers must respect:
//! - [`Eal`] is dropped last (its drop runs `rte_eal_cleanup`);
//! - a [`Port`] is stopped and closed before the [`Mempool`] it receives into, and before the
//!   [`Ring`]s it was made from, are dropped (a pool with mbufs still out is leaked rather than
//!   freed);
//! - each RX/TX queue is used by one thread at a time (see [`Port`]).
//!
//! Constructors return [`Error::NotInitialized`] until [`Eal::init`] succeeds.

#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;
mod timer_slack;
mod xsk;

pub use eal::{
    is_initialized, lcore_id, pause, restricts_devices, rte_errno, socket_id, tsc, Eal, ARGV0,
};
pub use error::Error;
pub use lcore::{launch, Launched};
pub use mbuf::{Burst, Drain, Mbuf, SharedMbuf};
pub use mempool::Mempool;
pub use port::{probe_vdev, Port, PortConf, PortStats};
pub use ring::Ring;
pub use timer_slack::{set_timer_slack_ns, timer_slack_ns};
pub use xsk::{xsk_sockets, XskSocket, XskStats};

pub use clua_dpdk_sys as sys;
