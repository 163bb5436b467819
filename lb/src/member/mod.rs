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

/// The advert wire format and key file. TEMPORARY stand-in until ctl/src/advert.rs and
/// ctl/src/keyfile.rs land; same names.
pub mod advert {
    use std::net::Ipv4Addr;

    use clua_ctl::model::Proto;

    /// Advert or goodbye.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum AdvertKind {
        /// Periodic advert.
        Advert,
        /// The member is going away.
        Goodbye,
    }

    /// One alias in an advert.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct AliasEntry {
        /// Address.
        pub addr: Ipv4Addr,
        /// Joined.
        pub joined: bool,
        /// selw.
        pub selw: u32,
        /// selp.
        pub selp: u32,
    }

    /// An advert.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct AdvertRepr {
        /// Kind.
        pub kind: AdvertKind,
        /// Node.
        pub node: String,
        /// Boot id.
        pub boot_id: u64,
        /// Sequence.
        pub seq: u64,
        /// Interval.
        pub interval_ms: u32,
        /// Aliases.
        pub aliases: Vec<AliasEntry>,
        /// Ports.
        pub ports: Vec<(Proto, u16)>,
    }

    impl AdvertRepr {
        /// Stand-in encoding: a text line.
        pub fn emit_signed(&self, _key: &[u8]) -> Result<Vec<u8>, String> {
            Ok(format!("{self:?}").into_bytes())
        }
    }

    /// Stand-in key loader.
    pub fn load_key(path: &std::path::Path) -> Result<Vec<u8>, std::io::Error> {
        std::fs::read(path)
    }
}

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
