//! Several alias routers (issue 8; CA4, CA5, PH1): the sans-I/O pieces, in the control plane's
//! style (no sockets, threads or clocks; bytes, views and `now` in, decisions out).
//!
//! - [`election`]: which router is the proxy-ARP master of each common-subnet alias (CA4, PH1).
//! - [`wire`]: the router protocol message routers announce themselves with over the
//!   interconnect (docs/router-protocol.md).
//!
//! - [`tracker`]: which peers are live and what they say (replay protection, claims).
//! - [`role`]: this router's part: listen first, announce, elect, goodbye. The control plane
//!   (`crate::plane`) answers ARP by its result. See docs/routing.md.

pub mod election;
pub mod role;
pub mod tracker;
pub mod wire;
