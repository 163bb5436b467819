//! clua-member, the member agent (`clua-member --config FILE`): no DPDK is linked, so a member
//! host needs no DPDK libraries. The agent joins aliases with the member's own attributes (selw,
//! selp), reports the service ports it listens on, sends signed adverts (heartbeats) to the
//! routers, and holds the alias addresses on `lo` so the member answers clients directly from
//! them (CA12).
//!
//! - [`config`]: the TOML configuration (docs/member.toml.md);
//! - [`boots`]: the persisted boot counter that makes each start's `boot_id` larger than the last;
//! - [`member_state`]: the member's aliases and attributes as cluamgr on the member changes them;
//! - [`listen`]: which service ports the member listens on (from /proc/net);
//! - [`host`]: host preparation (aliases on `lo`, ARP sysctls, VXLAN device, nftables for
//!   in_nolocal and out_alias, static ports reserved; CA9) and its undoing;
//! - [`agent`]: the advert loop, cluamgr on the member, goodbye on SIGTERM;
//! - [`notify`]: systemd readiness, status and watchdog (docs/systemd.md).

pub mod agent;
pub use clua_ctl::boots;
pub mod config;
pub mod host;
pub mod listen;
pub mod member_state;
// The same protocol code as aliasd's, compiled in by path: this crate must not depend on
// clua-lb (it would link DPDK, see tests/no_dpdk.rs).
#[path = "../../lb/src/notify.rs"]
pub mod notify;
