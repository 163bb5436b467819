//! Several alias routers (issue 8; CA4, CA5, PH1): the sans-I/O pieces, in the control plane's
//! style (no sockets, threads or clocks; bytes, views and `now` in, decisions out).
//!
//! - [`election`]: which router is the proxy-ARP master of each common-subnet alias (CA4, PH1).
//! - [`wire`]: the router protocol message routers announce themselves with over the
//!   interconnect (docs/router-protocol.md).
//!
//! **Not wired into aliasd yet**: no thread sends or receives router messages and aliasd still
//! answers ARP for every alias alone. A later session connects these pieces to the control plane
//! (a liveness tracker over [`wire::RouterRepr`] feeding [`election::elect`]).

pub mod election;
pub mod role;
pub mod tracker;
pub mod wire;
