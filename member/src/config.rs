//! The member agent's configuration file (TOML), `clua-member --config FILE` (docs/member.toml.md):
//!
//! ```toml
//! node = "m1"                          # the router's [[member]] name
//! address = "192.0.2.141"              # interconnect address: the source of adverts
//! routers = ["192.0.2.2:9471", "192.0.2.3"]   # where adverts go (port 9471 if left out)
//! key_file = "/etc/clua/member.key"    # shared advert key
//! interval_ms = 1000                   # advert interval, 100..=60000 (default 1000)
//! default_alias = "198.51.100.100"     # what DEFAULTALIAS names; joined at start (CA1)
//! aliases = ["198.51.100.100", "198.51.100.101"]  # every alias this member may serve
//! alias_config = "/etc/clu_alias.config"          # optional, applied at start
//! socket = "/run/clua/member.sock"     # cluamgr socket (default)
//! state_file = "/var/lib/clua/member-boots"      # the boot counter (default)
//! in_nolocal_ports = ["80/tcp"]        # optional, enforced with nftables
//! services = "/etc/clua_services"      # optional: static ports reserved, out_alias ports (CA9)
//!
//! [out_alias]                          # optional (needs `services`, docs/out_alias.md)
//! ports = "61000-61999"                # this member's own source-port range, advertised
//!
//! [vxlan]                              # optional: the VXLAN device routers encapsulate to
//! device = "vx0"
//! vni = 42
//! local = "192.0.2.141"
//! mac = "02:00:00:00:02:01"
//! dstport = 4789
//! ```
//!
//! Unknown fields are errors; every problem is reported, each naming its field.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use clua_ctl::model::{parse_mac, Mac, MacError, Proto};
use clua_ctl::name::{validate_name, NameError, NAME_MAX};
use clua_ctl::services::{parse_port_proto, PortProtoError};
use clua_pipeline::out_alias::{PortRange, PortRangeError};
use serde::Deserialize;

/// Where adverts go when a router entry has no port (the advert protocol's UDP port).
pub const DEFAULT_ROUTER_PORT: u16 = clua_ctl::advert::ADVERT_PORT;
/// The cluamgr socket of a member unless configured.
pub const DEFAULT_MEMBER_SOCKET: &str = "/run/clua/member.sock";
pub use clua_ctl::advert::{DEFAULT_INTERVAL_MS, INTERVAL_RANGE};

/// The `[vxlan]` table: the VXLAN device the agent creates at start and deletes at exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanConfig {
    /// Device name (at most 15 bytes).
    pub device: String,
    /// VXLAN network identifier, 0..2^24.
    pub vni: u32,
    /// Local tunnel endpoint (usually `address`).
    pub local: Ipv4Addr,
    /// The device's MAC (the inner destination MAC routers use).
    pub mac: Mac,
    /// UDP destination port (4789 unless set).
    pub dstport: u16,
}

/// A validated member configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberConfig {
    /// The member's name (the router's `[[member]] name`).
    pub node: String,
    /// Interconnect address; adverts are sent from it.
    pub address: Ipv4Addr,
    /// Routers to send adverts to.
    pub routers: Vec<SocketAddrV4>,
    /// The advert key file.
    pub key_file: PathBuf,
    /// Advert interval.
    pub interval_ms: u32,
    /// The default alias.
    pub default_alias: Ipv4Addr,
    /// Every alias address this member may serve (held on `lo` while the agent runs).
    pub aliases: Vec<Ipv4Addr>,
    /// A clu_alias.config applied at start.
    pub alias_config: Option<PathBuf>,
    /// The cluamgr socket.
    pub socket: PathBuf,
    /// The boot counter ([`crate::boots`]): the last boot id, kept across starts.
    pub state_file: PathBuf,
    /// The VXLAN device, if routers reach this member by VXLAN.
    pub vxlan: Option<VxlanConfig>,
    /// in_nolocal ports: refused unless addressed to an alias.
    pub in_nolocal_ports: Vec<(u16, Proto)>,
    /// The clua_services file (CA9): its static ports are reserved against ephemeral use, its
    /// out_alias ports get the default alias as source ([`MemberConfig::out_alias`]).
    pub services: Option<PathBuf>,
    /// This member's out_alias source-port range (`[out_alias] ports`), advertised to the
    /// routers, which steer the replies by it.
    pub out_alias: Option<PortRange>,
}

/// A configuration error: the file and one line per problem, each naming its field (the same
/// type as the router's, with the member's [`Problem`]).
pub type MemberConfigError = clua_ctl::config_error::ConfigError<Problem>;

/// One problem in a member configuration: the field it is about (none for the file as a whole)
/// and what is wrong. Displays as `` `FIELD`: WHAT `` or `WHAT`.
#[derive(Debug, thiserror::Error)]
#[error("{}{kind}", Field(*.field))]
pub struct Problem {
    /// E.g. `routers`, `vxlan.mac`.
    pub field: Option<&'static str>,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// A field as a problem names it.
struct Field(Option<&'static str>);

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(field) => write!(f, "`{field}`: "),
            None => Ok(()),
        }
    }
}

/// What is wrong with a member configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProblemKind {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// Not TOML, an unknown or missing field, a value of the wrong type.
    #[error("{}", .0.to_string().trim_end().replace('\n', " "))]
    Toml(#[source] toml::de::Error),
    /// `node` breaks the name rule ([`clua_ctl::name`]).
    #[error("`{name}` is not a member name (1..={NAME_MAX} letters, digits, `-`, `_`, `.`{})", if matches!(.why, NameError::BadStart) { ", the first a letter or a digit" } else { "" })]
    NotMemberName {
        /// The name given.
        name: String,
        /// The rule it breaks.
        #[source]
        why: NameError,
    },
    /// Not a dotted quad.
    #[error("`{0}` is not an IPv4 address (expected a dotted quad)")]
    NotIpv4(String),
    /// The unspecified, broadcast, a multicast or a loopback address.
    #[error("{0} is not a unicast address (expected a dotted quad)")]
    NotUnicast(Ipv4Addr),
    /// `routers` is empty.
    #[error("at least one router is needed (\"ADDRESS[:PORT]\")")]
    NoRouters,
    /// A `routers` entry that is not an address with an optional port.
    #[error("`{0}` is not ADDRESS or ADDRESS:PORT (e.g. \"192.0.2.2:{DEFAULT_ROUTER_PORT}\")")]
    NotRouter(String),
    /// A list entry given twice (as written).
    #[error("`{0}` is listed twice")]
    ListedTwice(String),
    /// An alias address given twice.
    #[error("{0} is listed twice")]
    AliasTwice(Ipv4Addr),
    /// A number outside its range.
    #[error("{value} is out of range {min}..={max}")]
    OutOfRange {
        /// The value given.
        value: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// An empty path.
    #[error("empty path")]
    EmptyPath,
    /// `state_file` names a directory.
    #[error("`{}` is not a file path (e.g. \"{}\")", .0.display(), crate::boots::DEFAULT_STATE_FILE)]
    NotFilePath(PathBuf),
    /// `aliases` is empty.
    #[error("at least one alias address is needed")]
    NoAliases,
    /// More aliases than an advert carries.
    #[error(
        "{count} addresses; an advert carries at most {}",
        clua_ctl::advert::MAX_ALIASES
    )]
    TooManyAliases {
        /// How many `aliases` lists.
        count: usize,
    },
    /// `default_alias` not among `aliases`.
    #[error("{0} is not one of `aliases` (every alias this member serves is listed there)")]
    DefaultNotAlias(Ipv4Addr),
    /// `address` is also an alias.
    #[error("{0} is also an alias; adverts need the member's own address")]
    AddressIsAlias(Ipv4Addr),
    /// `vxlan.device` is not an interface name.
    #[error("`{0}` is not an interface name (1..=15 letters, digits, `-`, `_`, `.`)")]
    NotInterface(String),
    /// `vxlan.mac`.
    #[error(transparent)]
    Mac(#[from] MacError),
    /// Port 0.
    #[error("0 is not a port (expected 1..=65535)")]
    PortZero,
    /// An `in_nolocal_ports` entry that is not PORT/PROTO.
    #[error(transparent)]
    PortProto(#[from] PortProtoError),
    /// `out_alias.ports` is not a port range.
    #[error(transparent)]
    PortRange(#[from] PortRangeError),
    /// `[out_alias]` without `services`.
    #[error("out_alias needs `services` (the clua_services file naming the out_alias ports)")]
    OutAliasWithoutServices,
}

impl Problem {
    fn at(field: &'static str, kind: ProblemKind) -> Problem {
        Problem {
            field: Some(field),
            kind,
        }
    }

    fn whole(kind: ProblemKind) -> Problem {
        Problem { field: None, kind }
    }
}

fn out_of_range(value: impl Into<u64>, min: impl Into<u64>, max: impl Into<u64>) -> ProblemKind {
    ProblemKind::OutOfRange {
        value: value.into(),
        min: min.into(),
        max: max.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    node: String,
    address: String,
    routers: Vec<String>,
    key_file: PathBuf,
    interval_ms: Option<u32>,
    default_alias: String,
    aliases: Vec<String>,
    alias_config: Option<PathBuf>,
    socket: Option<PathBuf>,
    state_file: Option<PathBuf>,
    vxlan: Option<RawVxlan>,
    #[serde(default)]
    in_nolocal_ports: Vec<String>,
    services: Option<PathBuf>,
    out_alias: Option<RawOutAlias>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutAlias {
    ports: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVxlan {
    device: String,
    vni: u32,
    local: String,
    mac: String,
    dstport: Option<u16>,
}

fn addr(field: &'static str, s: &str, problems: &mut Vec<Problem>) -> Option<Ipv4Addr> {
    match s.parse::<Ipv4Addr>() {
        Ok(a) if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() => {
            problems.push(Problem::at(field, ProblemKind::NotUnicast(a)));
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            problems.push(Problem::at(field, ProblemKind::NotIpv4(s.to_string())));
            None
        }
    }
}

impl MemberConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<MemberConfig, MemberConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MemberConfigError {
            file: file.clone(),
            problems: vec![Problem::whole(ProblemKind::Read(e))],
        })?;
        Self::parse(&text, &file)
    }

    /// Validates the text of a configuration; `file` only names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<MemberConfig, MemberConfigError> {
        let fail = |problems: Vec<Problem>| MemberConfigError {
            file: file.to_string(),
            problems,
        };
        let raw: Raw =
            toml::from_str(text).map_err(|e| fail(vec![Problem::whole(ProblemKind::Toml(e))]))?;
        let mut p = Vec::new();
        if let Err(why) = validate_name(raw.node.as_bytes()) {
            p.push(Problem::at(
                "node",
                ProblemKind::NotMemberName {
                    name: raw.node.clone(),
                    why,
                },
            ));
        }
        let address = addr("address", &raw.address, &mut p);
        let mut routers = Vec::new();
        if raw.routers.is_empty() {
            p.push(Problem::at("routers", ProblemKind::NoRouters));
        }
        for r in &raw.routers {
            let parsed = r
                .parse::<SocketAddrV4>()
                .ok()
                .or_else(|| {
                    r.parse::<Ipv4Addr>()
                        .ok()
                        .map(|a| SocketAddrV4::new(a, DEFAULT_ROUTER_PORT))
                })
                .filter(|s| s.port() != 0 && !s.ip().is_unspecified());
            match parsed {
                Some(s) if routers.contains(&s) => {
                    p.push(Problem::at("routers", ProblemKind::ListedTwice(r.clone())))
                }
                Some(s) => routers.push(s),
                None => p.push(Problem::at("routers", ProblemKind::NotRouter(r.clone()))),
            }
        }
        let interval_ms = raw.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
        if !INTERVAL_RANGE.contains(&interval_ms) {
            p.push(Problem::at(
                "interval_ms",
                out_of_range(interval_ms, *INTERVAL_RANGE.start(), *INTERVAL_RANGE.end()),
            ));
        }
        if raw.key_file.as_os_str().is_empty() {
            p.push(Problem::at("key_file", ProblemKind::EmptyPath));
        }
        let state_file = raw
            .state_file
            .unwrap_or_else(|| PathBuf::from(crate::boots::DEFAULT_STATE_FILE));
        if state_file.file_name().is_none() || state_file.to_string_lossy().ends_with('/') {
            p.push(Problem::at(
                "state_file",
                ProblemKind::NotFilePath(state_file.clone()),
            ));
        }
        let mut aliases = Vec::new();
        if raw.aliases.is_empty() {
            p.push(Problem::at("aliases", ProblemKind::NoAliases));
        }
        for a in &raw.aliases {
            if let Some(a) = addr("aliases", a, &mut p) {
                if aliases.contains(&a) {
                    p.push(Problem::at("aliases", ProblemKind::AliasTwice(a)));
                } else {
                    aliases.push(a);
                }
            }
        }
        if aliases.len() > clua_ctl::advert::MAX_ALIASES {
            p.push(Problem::at(
                "aliases",
                ProblemKind::TooManyAliases {
                    count: aliases.len(),
                },
            ));
        }
        let default_alias = addr("default_alias", &raw.default_alias, &mut p);
        if let Some(d) = default_alias {
            if !raw.aliases.is_empty() && !aliases.contains(&d) {
                p.push(Problem::at(
                    "default_alias",
                    ProblemKind::DefaultNotAlias(d),
                ));
            }
        }
        if let Some(a) = address {
            if aliases.contains(&a) {
                p.push(Problem::at("address", ProblemKind::AddressIsAlias(a)));
            }
        }
        let vxlan = raw.vxlan.as_ref().and_then(|v| {
            let mut ok = true;
            if v.device.is_empty()
                || v.device.len() > 15
                || !v
                    .device
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                p.push(Problem::at(
                    "vxlan.device",
                    ProblemKind::NotInterface(v.device.clone()),
                ));
                ok = false;
            }
            if v.vni >= 1 << 24 {
                p.push(Problem::at(
                    "vxlan.vni",
                    out_of_range(v.vni, 0u32, (1u32 << 24) - 1),
                ));
                ok = false;
            }
            let local = addr("vxlan.local", &v.local, &mut p);
            let mac = match parse_mac(&v.mac) {
                Ok(m) => Some(m),
                Err(e) => {
                    p.push(Problem::at("vxlan.mac", e.into()));
                    None
                }
            };
            let dstport = v.dstport.unwrap_or(4789);
            if dstport == 0 {
                p.push(Problem::at("vxlan.dstport", ProblemKind::PortZero));
                ok = false;
            }
            Some(VxlanConfig {
                device: v.device.clone(),
                vni: v.vni,
                local: local?,
                mac: mac?,
                dstport,
            })
            .filter(|_| ok)
        });
        let mut in_nolocal_ports = Vec::new();
        for s in &raw.in_nolocal_ports {
            match parse_port_proto(s) {
                Ok(pp) if in_nolocal_ports.contains(&pp) => p.push(Problem::at(
                    "in_nolocal_ports",
                    ProblemKind::ListedTwice(s.clone()),
                )),
                Ok(pp) => in_nolocal_ports.push(pp),
                Err(e) => p.push(Problem::at("in_nolocal_ports", e.into())),
            }
        }
        if raw
            .services
            .as_ref()
            .is_some_and(|s| s.as_os_str().is_empty())
        {
            p.push(Problem::at("services", ProblemKind::EmptyPath));
        }
        let out_alias = raw
            .out_alias
            .as_ref()
            .and_then(|o| match o.ports.parse::<PortRange>() {
                Ok(r) => Some(r),
                Err(e) => {
                    p.push(Problem::at("out_alias.ports", e.into()));
                    None
                }
            });
        if raw.out_alias.is_some() && raw.services.is_none() {
            p.push(Problem::at(
                "out_alias",
                ProblemKind::OutAliasWithoutServices,
            ));
        }
        if !p.is_empty() {
            return Err(fail(p));
        }
        Ok(MemberConfig {
            node: raw.node,
            address: address.expect("checked"),
            routers,
            key_file: raw.key_file,
            interval_ms,
            default_alias: default_alias.expect("checked"),
            aliases,
            alias_config: raw.alias_config,
            socket: raw
                .socket
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MEMBER_SOCKET)),
            state_file,
            vxlan,
            in_nolocal_ports,
            services: raw.services,
            out_alias,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
node = "m1"
address = "192.0.2.141"
routers = ["192.0.2.2:9471", "192.0.2.3"]
key_file = "/etc/clua/member.key"
default_alias = "198.51.100.100"
aliases = ["198.51.100.100", "198.51.100.101"]
"#;

    fn errs(extra: &str, base: &str) -> Vec<String> {
        MemberConfig::parse(&format!("{base}{extra}"), "m.toml")
            .unwrap_err()
            .to_string()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn minimal_and_full() {
        let c = MemberConfig::parse(MIN, "m.toml").unwrap();
        assert_eq!(c.node, "m1");
        assert_eq!(c.interval_ms, 1000);
        assert_eq!(
            c.routers,
            vec![
                "192.0.2.2:9471".parse().unwrap(),
                "192.0.2.3:9471".parse().unwrap()
            ]
        );
        assert_eq!(c.socket, PathBuf::from("/run/clua/member.sock"));
        assert_eq!(c.state_file, PathBuf::from("/var/lib/clua/member-boots"));
        assert!(c.vxlan.is_none() && c.in_nolocal_ports.is_empty() && c.alias_config.is_none());
        assert!(c.services.is_none() && c.out_alias.is_none());
        let full = format!(
            "{MIN}interval_ms = 250\nalias_config = \"/etc/clu_alias.config\"\nsocket = \"/tmp/m.sock\"\nstate_file = \"/tmp/m/boots\"\nin_nolocal_ports = [\"80/tcp\", \"53/udp\"]\n[vxlan]\ndevice = \"vx0\"\nvni = 42\nlocal = \"192.0.2.141\"\nmac = \"02:00:00:00:02:01\"\n"
        );
        let c = MemberConfig::parse(&full, "m.toml").unwrap();
        assert_eq!(c.interval_ms, 250);
        assert_eq!(c.state_file, PathBuf::from("/tmp/m/boots"));
        assert_eq!(c.in_nolocal_ports, vec![(80, Proto::Tcp), (53, Proto::Udp)]);
        let v = c.vxlan.unwrap();
        assert_eq!(
            (v.device.as_str(), v.vni, v.dstport, v.mac),
            ("vx0", 42, 4789, [2, 0, 0, 0, 2, 1])
        );
    }

    /// CA9: `services` and `[out_alias] ports` (docs/out_alias.md).
    #[test]
    fn out_alias_and_services() {
        let c = MemberConfig::parse(
            &format!(
                "{MIN}services = \"/etc/clua_services\"\n[out_alias]\nports = \"61000-61999\"\n"
            ),
            "m.toml",
        )
        .unwrap();
        assert_eq!(c.services, Some(PathBuf::from("/etc/clua_services")));
        assert_eq!(c.out_alias, Some(PortRange::new(61000, 61999).unwrap()));
        let e = errs("[out_alias]\nports = \"62000-61000\"\n", MIN);
        assert_eq!(
            e,
            vec![
                "m.toml: `out_alias.ports`: 62000-61000 ends before it starts",
                "m.toml: `out_alias`: out_alias needs `services` (the clua_services file naming the out_alias ports)",
            ]
        );
        let e = errs("services = \"\"\n[out_alias]\nports = \"x\"\n", MIN);
        assert_eq!(
            e,
            vec![
                "m.toml: `services`: empty path",
                "m.toml: `out_alias.ports`: `x` is not a port range (expected LO-HI, e.g. \"61000-61999\")",
            ]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = errs("colour = 1\n", MIN);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("unknown field `colour`"), "{e:?}");
        let e = errs("", "node = \"m1\"\n");
        assert!(e[0].contains("missing field `address`"), "{e:?}");
        let e = errs(
            "interval_ms = 50\nin_nolocal_ports = [\"80\"]\n",
            &MIN.replace("\"m1\"", "\"m 1\"")
                .replace("192.0.2.141", "192.0.2.300")
                .replace("\"192.0.2.3\"", "\"192.0.2.2:9471\", \"x:1\"")
                .replace(
                    "default_alias = \"198.51.100.100\"",
                    "default_alias = \"198.51.100.9\"",
                ),
        );
        assert_eq!(
            e,
            vec![
                "m.toml: `node`: `m 1` is not a member name (1..=64 letters, digits, `-`, `_`, `.`)",
                "m.toml: `address`: `192.0.2.300` is not an IPv4 address (expected a dotted quad)",
                "m.toml: `routers`: `192.0.2.2:9471` is listed twice",
                "m.toml: `routers`: `x:1` is not ADDRESS or ADDRESS:PORT (e.g. \"192.0.2.2:9471\")",
                "m.toml: `interval_ms`: 50 is out of range 100..=60000",
                "m.toml: `default_alias`: 198.51.100.9 is not one of `aliases` (every alias this member serves is listed there)",
                "m.toml: `in_nolocal_ports`: `80` is not PortNumber/ProtocolName (e.g. `7/tcp`)",
            ]
        );
        let e = errs(
            "[vxlan]\ndevice = \"a-very-long-device-name\"\nvni = 16777216\nlocal = \"x\"\nmac = \"02:00\"\ndstport = 0\n",
            MIN,
        );
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].starts_with("m.toml: `vxlan.device`"), "{e:?}");
        assert!(e[1].starts_with("m.toml: `vxlan.vni`: 16777216"), "{e:?}");
        assert!(e[2].starts_with("m.toml: `vxlan.local`"), "{e:?}");
        assert!(e[3].starts_with("m.toml: `vxlan.mac`"), "{e:?}");
        assert!(e[4].starts_with("m.toml: `vxlan.dstport`"), "{e:?}");
        // The shared name rule (clua_ctl::name): a leading `-` would read as a cluamgr flag.
        let e = MemberConfig::parse(&MIN.replace("\"m1\"", "\"-m1\""), "m.toml").unwrap_err();
        assert!(
            matches!(
                &e.problems[..],
                [Problem {
                    field: Some("node"),
                    kind: ProblemKind::NotMemberName {
                        why: NameError::BadStart,
                        ..
                    }
                }]
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "m.toml: `node`: `-m1` is not a member name (1..=64 letters, digits, `-`, `_`, `.`, the first a letter or a digit)"
        );
        let e = errs("state_file = \"/var/lib/clua/\"\n", MIN);
        assert_eq!(
            e,
            vec!["m.toml: `state_file`: `/var/lib/clua/` is not a file path (e.g. \"/var/lib/clua/member-boots\")"]
        );
        assert_eq!(errs("state_file = \"\"\n", MIN).len(), 1);
        let e = errs("", &MIN.replace("192.0.2.141", "198.51.100.101"));
        assert_eq!(
            e,
            vec!["m.toml: `address`: 198.51.100.101 is also an alias; adverts need the member's own address"]
        );
        let e = errs(
            "",
            &MIN.replace("[\"198.51.100.100\", \"198.51.100.101\"]", "[]")
                .replace("[\"192.0.2.2:9471\", \"192.0.2.3\"]", "[]"),
        );
        assert_eq!(
            e,
            vec![
                "m.toml: `routers`: at least one router is needed (\"ADDRESS[:PORT]\")",
                "m.toml: `aliases`: at least one alias address is needed"
            ]
        );
    }
}
