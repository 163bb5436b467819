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
        /// Stand-in encoding: one text line, the key appended.
        pub fn emit_signed(&self, key: &[u8]) -> Result<Vec<u8>, String> {
            let al: Vec<String> = self
                .aliases
                .iter()
                .map(|a| format!("{},{},{},{}", a.addr, a.joined as u8, a.selw, a.selp))
                .collect();
            let po: Vec<String> = self
                .ports
                .iter()
                .map(|(p, n)| format!("{}/{n}", p.name()))
                .collect();
            let mut v = format!(
                "{} {} {} {} {} {} {}|",
                self.kind == AdvertKind::Goodbye,
                self.node,
                self.boot_id,
                self.seq,
                self.interval_ms,
                al.join(";"),
                po.join(";")
            )
            .into_bytes();
            v.extend_from_slice(key);
            Ok(v)
        }

        /// Stand-in decoding.
        pub fn parse_signed(b: &[u8], key: &[u8]) -> Result<AdvertRepr, String> {
            let s = String::from_utf8_lossy(b).into_owned();
            let (body, k) = s.split_once('|').ok_or("no key")?;
            if k.as_bytes() != key {
                return Err("bad key".into());
            }
            let f: Vec<&str> = body.split(' ').collect();
            let bad = |_| "bad".to_string();
            Ok(AdvertRepr {
                kind: if f[0] == "true" {
                    AdvertKind::Goodbye
                } else {
                    AdvertKind::Advert
                },
                node: f[1].into(),
                boot_id: f[2].parse().map_err(bad)?,
                seq: f[3].parse().map_err(bad)?,
                interval_ms: f[4].parse().map_err(bad)?,
                aliases: f[5]
                    .split(';')
                    .filter(|x| !x.is_empty())
                    .map(|a| {
                        let p: Vec<&str> = a.split(',').collect();
                        AliasEntry {
                            addr: p[0].parse().unwrap(),
                            joined: p[1] == "1",
                            selw: p[2].parse().unwrap(),
                            selp: p[3].parse().unwrap(),
                        }
                    })
                    .collect(),
                ports: f[6]
                    .split(';')
                    .filter(|x| !x.is_empty())
                    .map(|p| {
                        let (a, n) = p.split_once('/').unwrap();
                        (
                            if a == "tcp" { Proto::Tcp } else { Proto::Udp },
                            n.parse().unwrap(),
                        )
                    })
                    .collect(),
            })
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
