//! aliasd in member mode (`aliasd --member-config FILE`): no DPDK. The agent joins aliases with
//! the member's own attributes (selw, selp), reports the service ports it listens on, sends
//! signed adverts (heartbeats) to the routers, and holds the alias addresses on `lo` so the
//! member answers clients directly from them (CA12).
//!
//! - [`config`]: the TOML configuration;
//! - [`host`]: host preparation (aliases on `lo`, ARP sysctls, VXLAN device, nftables) and its
//!   undoing;
//! - [`agent`]: the advert loop, cluamgr on the member, goodbye on SIGTERM.

pub mod agent;
pub mod config;
pub mod host;

/// `aliasd --member-config FILE [--check]`: the process exit code.
pub fn main(path: &std::path::Path, check: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    let config = match config::MemberConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aliasd-member: configuration rejected:\n{e}");
            return ExitCode::from(2);
        }
    };
    if check {
        println!("{}: configuration ok", path.display());
        return ExitCode::SUCCESS;
    }
    match agent::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aliasd-member: {e}");
            ExitCode::FAILURE
        }
    }
}
