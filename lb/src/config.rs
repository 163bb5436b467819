//! aliasd's configuration file (TOML; format in docs/aliasd.toml.md).
//!
//! Loading is all-or-nothing: the file is parsed (unknown fields are errors, with the TOML line
//! and column), converted to the control plane's [`Cluster`] model and validated; every problem
//! found is reported, each naming the field it is about.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use clua_ctl::alias_config::parse_alias_config;
use clua_ctl::apply::{apply, Applied, ControlState};
use clua_ctl::command::Command;

use clua_ctl::model::{
    parse_mac, AliasSpec, Cluster, JoinSpec, MemberSpec, PortSpec, Prefix, Proto, ServiceOptions,
    ServiceSpec, DEFAULT_MAX_ALIASES, DEFAULT_RPRI,
};
use clua_pipeline::snapshot::{Encap, PortRole};
use clua_pipeline::PipelineConfig;
use serde::Deserialize;

/// Everything aliasd needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster: ports, members, aliases, services.
    pub cluster: Cluster,
    /// DPDK settings, one entry per port in `cluster.ports` order for `port_devargs`.
    pub dpdk: DpdkConfig,
    /// `devargs` of each port, in `cluster.ports` order.
    pub port_devargs: Vec<String>,
    /// Connection-table sizing and timeouts.
    pub pipeline: PipelineConfig,
    /// Prometheus endpoint.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The `[control]` section: the cluamgr socket and the files of the cluster alias.
    pub control: ControlConfig,
    /// `-r resvok` was given at start-up (clu_alias.config).
    pub resvok: bool,
    /// Member adverts (when any member has `agent = true`).
    pub adverts: Option<AdvertConfig>,
}

/// The `[control]` section.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// The Unix socket cluamgr talks to (created mode 0600: root only).
    pub socket: PathBuf,
    /// A clua_services(4) file: the services table (instead of `[[service]]` entries); `cluamgr
    /// -f` reloads it.
    pub services_file: Option<PathBuf>,
    /// A clu_alias.config(4) file: cluamgr command lines applied at start-up, in order.
    pub alias_config: Option<PathBuf>,
    /// Punted packets the control thread's queue for each punt reason (ARP, ICMP echo, member
    /// advert) holds; more of one kind are dropped and counted per reason. Default 1024.
    pub punt_queue: usize,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(clua_ctl::protocol::DEFAULT_SOCKET),
            services_file: None,
            alias_config: None,
            punt_queue: crate::punt::PuntQueues::<()>::DEFAULT_CAPACITY,
        }
    }
}

/// The `[dpdk]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpdkConfig {
    /// lcore of the control thread.
    pub main_lcore: u32,
    /// lcores of the workers (one worker each).
    pub worker_lcores: Vec<u32>,
    /// Memory in MiB when hugepages are off.
    pub memory_mb: u32,
    /// Use hugepages (the scripts mount them) instead of `--no-huge`.
    pub hugepages: bool,
    /// PCI allow-list; empty means `--no-pci`.
    pub pci_allow: Vec<String>,
    /// Extra EAL arguments, appended.
    pub extra_args: Vec<String>,
    /// Mbufs in the pool.
    pub mbufs: u32,
    /// If > 0, a worker whose poll found nothing sleeps this many microseconds.
    pub idle_sleep_us: u32,
    /// RX/TX descriptors per queue.
    pub descriptors: u16,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            main_lcore: 0,
            worker_lcores: vec![1],
            memory_mb: 256,
            hugepages: false,
            pci_allow: vec![],
            extra_args: vec![],
            mbufs: 32767,
            idle_sleep_us: 0,
            descriptors: 1024,
        }
    }
}

impl DpdkConfig {
    /// The EAL arguments (without argv[0], which `clua_dpdk::Eal::init` adds). `--no-pci` unless
    /// a PCI allow-list is given; a per-process file prefix, `--no-shconf` and `--no-telemetry`
    /// so that several aliasd processes (tests, labs) never share runtime files.
    pub fn eal_args(&self, port_devargs: &[String]) -> Vec<String> {
        let mut args = Vec::new();
        let mut lcores = vec![self.main_lcore];
        lcores.extend(&self.worker_lcores);
        args.push("-l".into());
        args.push(
            lcores
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
        args.push("--main-lcore".into());
        args.push(self.main_lcore.to_string());
        if self.pci_allow.is_empty() {
            args.push("--no-pci".into());
        } else {
            for a in &self.pci_allow {
                args.push("-a".into());
                args.push(a.clone());
            }
        }
        if !self.hugepages {
            args.push("--no-huge".into());
            args.push("-m".into());
            args.push(self.memory_mb.to_string());
        }
        args.push("--no-shconf".into());
        args.push("--no-telemetry".into());
        args.push("--file-prefix".into());
        args.push(format!("clua-{}", std::process::id()));
        args.push("--log-level".into());
        args.push("*:warning".into());
        for d in port_devargs {
            if !looks_like_pci(d) {
                args.push("--vdev".into());
                args.push(d.clone());
            }
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// `0000:00:1f.6`-style addresses are PCI devices (taken through the allow-list), anything else
/// is a vdev.
pub fn looks_like_pci(devargs: &str) -> bool {
    let name = devargs.split(',').next().unwrap_or("");
    name.contains(':') && name.contains('.') && !name.starts_with("net_")
}

/// The DPDK port name a devargs string creates (the part before the first comma).
pub fn port_name(devargs: &str) -> &str {
    devargs.split(',').next().unwrap_or(devargs)
}

pub use clua_ctl::config_error::ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: RawCluster,
    #[serde(default)]
    dpdk: DpdkConfig,
    #[serde(default)]
    tables: RawTables,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    control: ControlConfig,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    adverts: RawAdverts,
    #[serde(default)]
    port: Vec<RawPort>,
    #[serde(default)]
    member: Vec<RawMember>,
    #[serde(default)]
    alias: Vec<RawAlias>,
    #[serde(default)]
    service: Vec<RawService>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    default_alias: String,
    #[serde(default)]
    max_aliases: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTables {
    connections: usize,
    tcp_idle_secs: u64,
    tcp_closing_secs: u64,
}

impl Default for RawTables {
    fn default() -> Self {
        let d = PipelineConfig::default();
        RawTables {
            connections: d.conn_capacity,
            tcp_idle_secs: d.tcp_idle_ms / 1000,
            tcp_closing_secs: d.tcp_closing_ms / 1000,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    refusals_per_sec: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            refusals_per_sec: PipelineConfig::default().refusals_per_sec,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: String,
    devargs: String,
    role: String,
    address: Option<String>,
    mtu: Option<u16>,
    mac: Option<String>,
    flow_source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: String,
    port: String,
    address: String,
    mac: String,
    #[serde(default = "default_encap")]
    encap: String,
    vni: Option<u32>,
    inner_mac: Option<String>,
    vxlan_port: Option<u16>,
    #[serde(default)]
    agent: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdverts {
    key_file: Option<PathBuf>,
    #[serde(default = "default_advert_port")]
    port: u16,
    #[serde(default = "default_dead_misses")]
    dead_misses: u32,
}

impl Default for RawAdverts {
    fn default() -> Self {
        RawAdverts {
            key_file: None,
            port: default_advert_port(),
            dead_misses: default_dead_misses(),
        }
    }
}

fn default_advert_port() -> u16 {
    clua_ctl::advert::ADVERT_PORT
}

fn default_dead_misses() -> u32 {
    clua_ctl::members::DEFAULT_DEAD_MISSES
}

/// The `[adverts]` section, present when members run the member agent.
#[derive(Clone, Debug)]
pub struct AdvertConfig {
    /// The shared HMAC-SHA-256 key (from a root-only key file).
    pub key: Vec<u8>,
    /// UDP port on the router's interconnect addresses.
    pub port: u16,
    /// Missed adverts before a member is marked down.
    pub dead_misses: u32,
}

fn default_encap() -> String {
    "l2".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlias {
    name: String,
    address: String,
    #[serde(default)]
    members: Vec<RawJoin>,
    rpri: Option<u32>,
    #[serde(default)]
    r#virtual: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJoin {
    name: String,
    #[serde(default = "one")]
    selw: u32,
    #[serde(default = "one")]
    selp: u32,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    port: u16,
    proto: String,
    #[serde(default)]
    options: Vec<String>,
}

/// Largest connection table per worker (entries).
pub const MAX_CONNECTIONS: usize = 1 << 26;

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![format!("cannot read: {e}")],
        })?;
        Config::parse(&text, &file)
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<String>| ConfigError {
            file: file.to_string(),
            problems,
        };
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| fail(vec![e.to_string().trim_end().replace('\n', "\n    ")]))?;
        let mut problems = Vec::new();
        let mut p = |at: String, what: String| problems.push(format!("{at}: {what}"));

        let mut ports = Vec::new();
        let mut port_devargs = Vec::new();
        for (i, rp) in raw.port.iter().enumerate() {
            let at = format!("port[{i}] \"{}\"", rp.name);
            let role = match rp.role.as_str() {
                "client" => PortRole::Client,
                "interconnect" => PortRole::Interconnect,
                other => {
                    p(
                        format!("{at} role"),
                        format!("`{other}` is not client or interconnect"),
                    );
                    PortRole::Client
                }
            };
            let address = rp
                .address
                .as_deref()
                .and_then(|a| match a.parse::<Prefix>() {
                    Ok(x) => Some(x),
                    Err(e) => {
                        p(format!("{at} address"), e);
                        None
                    }
                });
            let flow_source = rp
                .flow_source
                .as_deref()
                .and_then(|a| match a.parse::<Prefix>() {
                    Ok(x) => Some(x),
                    Err(e) => {
                        p(format!("{at} flow_source"), e);
                        None
                    }
                });
            let mac = rp.mac.as_deref().and_then(|m| match parse_mac(m) {
                Ok(x) => Some(x),
                Err(e) => {
                    p(format!("{at} mac"), e);
                    None
                }
            });
            if rp.devargs.trim().is_empty() {
                p(format!("{at} devargs"), "must not be empty".into());
            }
            if let Some(o) = raw.port[..i]
                .iter()
                .find(|o| port_name(&o.devargs) == port_name(&rp.devargs))
            {
                p(
                    format!("{at} devargs"),
                    format!(
                        "device `{}` is already port \"{}\"",
                        port_name(&rp.devargs),
                        o.name
                    ),
                );
            }
            if looks_like_pci(&rp.devargs)
                && !raw
                    .dpdk
                    .pci_allow
                    .iter()
                    .any(|a| a == port_name(&rp.devargs))
            {
                p(
                    format!("{at} devargs"),
                    format!(
                        "PCI device `{}` is not in dpdk.pci_allow",
                        port_name(&rp.devargs)
                    ),
                );
            }
            port_devargs.push(rp.devargs.clone());
            ports.push(PortSpec {
                name: rp.name.clone(),
                role,
                address,
                mtu: rp.mtu.unwrap_or(1500),
                mac,
                flow_source,
            });
        }
        if ports.is_empty() {
            p("port".into(), "at least one [[port]] is required".into());
        }

        let mut members = Vec::new();
        for (i, rm) in raw.member.iter().enumerate() {
            let at = format!("member[{i}] \"{}\"", rm.name);
            let address = rm.address.parse::<Ipv4Addr>().unwrap_or_else(|_| {
                p(
                    format!("{at} address"),
                    format!("`{}` is not an IPv4 address", rm.address),
                );
                Ipv4Addr::UNSPECIFIED
            });
            let mac = parse_mac(&rm.mac).unwrap_or_else(|e| {
                p(format!("{at} mac"), e);
                [0; 6]
            });
            let vx_only = |p: &mut dyn FnMut(String, String), field: &str, set: bool| {
                if set {
                    p(
                        format!("{at} {field}"),
                        "only valid with encap = \"vxlan\"".into(),
                    );
                }
            };
            let encap = match rm.encap.as_str() {
                "l2" | "ipip" => {
                    vx_only(&mut p, "vni", rm.vni.is_some());
                    vx_only(&mut p, "inner_mac", rm.inner_mac.is_some());
                    vx_only(&mut p, "vxlan_port", rm.vxlan_port.is_some());
                    if rm.encap == "l2" {
                        Encap::L2
                    } else {
                        Encap::Ipip
                    }
                }
                "vxlan" => {
                    let vni = rm.vni.unwrap_or_else(|| {
                        p(
                            format!("{at} vni"),
                            "required with encap = \"vxlan\"".into(),
                        );
                        0
                    });
                    let inner_mac = match rm.inner_mac.as_deref() {
                        None => {
                            p(
                                format!("{at} inner_mac"),
                                "required with encap = \"vxlan\"".into(),
                            );
                            [0; 6]
                        }
                        Some(m) => parse_mac(m).unwrap_or_else(|e| {
                            p(format!("{at} inner_mac"), e);
                            [0; 6]
                        }),
                    };
                    Encap::Vxlan {
                        vni,
                        inner_mac,
                        udp_port: rm.vxlan_port.unwrap_or(4789),
                    }
                }
                other => {
                    p(
                        format!("{at} encap"),
                        format!("`{other}` is not l2, ipip or vxlan"),
                    );
                    Encap::L2
                }
            };
            members.push(MemberSpec {
                name: rm.name.clone(),
                port: rm.port.clone(),
                address,
                mac,
                encap,
                // An agent member is down until its first valid advert (CA3).
                up: !rm.agent,
                agent: rm.agent,
                listening: None,
            });
        }

        let mut aliases = Vec::new();
        for (i, ra) in raw.alias.iter().enumerate() {
            let address = ra.address.parse::<Ipv4Addr>().unwrap_or_else(|_| {
                p(
                    format!("alias[{i}] \"{}\" address", ra.name),
                    format!("`{}` is not an IPv4 address", ra.address),
                );
                Ipv4Addr::UNSPECIFIED
            });
            let members = ra
                .members
                .iter()
                .map(|j| JoinSpec {
                    member: j.name.clone(),
                    selw: j.selw,
                    selp: j.selp,
                    joined: true,
                })
                .collect();
            aliases.push(AliasSpec {
                name: ra.name.clone(),
                address,
                members,
                rpri: ra.rpri.unwrap_or(DEFAULT_RPRI),
                virtual_subnet: ra.r#virtual,
                mask: None,
            });
        }

        let mut services = Vec::new();
        for (i, rs) in raw.service.iter().enumerate() {
            let at = format!("service[{i}] \"{}\"", rs.name);
            let proto = match rs.proto.as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                other => {
                    p(
                        format!("{at} proto"),
                        format!("`{other}` is not tcp or udp"),
                    );
                    Proto::Tcp
                }
            };
            let mut options = ServiceOptions::default();
            for o in &rs.options {
                if let Err(e) = options.set(o) {
                    p(format!("{at} options"), e);
                }
            }
            services.push(ServiceSpec {
                name: rs.name.clone(),
                port: rs.port,
                proto,
                options,
            });
        }

        let t = &raw.tables;
        if !(8..=MAX_CONNECTIONS).contains(&t.connections) {
            p(
                "tables.connections".into(),
                format!("{} is out of range 8..={MAX_CONNECTIONS}", t.connections),
            );
        }
        for (name, v) in [
            ("tcp_idle_secs", t.tcp_idle_secs),
            ("tcp_closing_secs", t.tcp_closing_secs),
        ] {
            if !(1..=86_400).contains(&v) {
                p(
                    format!("tables.{name}"),
                    format!("{v} is out of range 1..=86400"),
                );
            }
        }
        let d = &raw.dpdk;
        if d.worker_lcores.is_empty() {
            p(
                "dpdk.worker_lcores".into(),
                "at least one worker lcore is required".into(),
            );
        }
        if d.worker_lcores.contains(&d.main_lcore) {
            p(
                "dpdk.worker_lcores".into(),
                format!("lcore {} is already dpdk.main_lcore", d.main_lcore),
            );
        }
        let mut sorted = d.worker_lcores.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            p(
                "dpdk.worker_lcores".into(),
                "an lcore is listed twice".into(),
            );
        }
        if !(1023..=(1 << 24)).contains(&d.mbufs) {
            p(
                "dpdk.mbufs".into(),
                format!("{} is out of range 1023..=16777216", d.mbufs),
            );
        }
        if !(64..=16384).contains(&d.memory_mb) {
            p(
                "dpdk.memory_mb".into(),
                format!("{} is out of range 64..=16384", d.memory_mb),
            );
        }
        if !(64..=4096).contains(&d.descriptors) {
            p(
                "dpdk.descriptors".into(),
                format!("{} is out of range 64..=4096", d.descriptors),
            );
        }
        let metrics_listen = raw.metrics.listen.as_deref().and_then(|l| match l.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                p(
                    "metrics.listen".into(),
                    format!("`{l}` is not ADDRESS:PORT"),
                );
                None
            }
        });

        let cluster = Cluster {
            name: raw.cluster.name,
            default_alias: raw.cluster.default_alias,
            max_aliases: raw.cluster.max_aliases.unwrap_or(DEFAULT_MAX_ALIASES),
            ports,
            members,
            aliases,
            services,
            advert_port: 0,
        };
        let any_agent = raw.member.iter().any(|m| m.agent);
        let mut adverts = None;
        let mut cluster = cluster;
        if any_agent {
            let a = &raw.adverts;
            if a.port == 0 {
                p("adverts.port".into(), "0 is not a UDP port".into());
            }
            if !(1..=100).contains(&a.dead_misses) {
                p(
                    "adverts.dead_misses".into(),
                    format!("{} is out of range 1..=100", a.dead_misses),
                );
            }
            match &a.key_file {
                None => p(
                    "adverts.key_file".into(),
                    "required when a member has agent = true".into(),
                ),
                Some(path) => match clua_ctl::keyfile::load_key(path) {
                    Ok(key) => {
                        adverts = Some(AdvertConfig {
                            key,
                            port: a.port,
                            dead_misses: a.dead_misses,
                        });
                        cluster.advert_port = a.port;
                    }
                    Err(e) => p("adverts.key_file".into(), e.to_string()),
                },
            }
        }
        if let Err(errs) = cluster.validate() {
            problems.extend(errs.iter().map(|e| e.to_string()));
        }
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        let mut cluster = cluster;
        cluster.join_default_alias();
        let mut state = ControlState {
            cluster,
            services_file: raw.control.services_file.clone(),
            resvok: false,
        };
        if let Some(path) = &raw.control.services_file {
            if !raw.service.is_empty() {
                return Err(fail(vec![format!(
                    "control.services_file: the services come from {} or from [[service]] entries, not both",
                    path.display()
                )]));
            }
            match apply(&state, &Command::ReloadServices, &|p| {
                std::fs::read_to_string(p)
            }) {
                Ok(Applied::Changed(next, _)) => state = *next,
                Ok(_) => {}
                Err(e) => return Err(fail(vec![format!("control.services_file: {e}")])),
            }
        }
        if let Some(path) = &raw.control.alias_config {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                fail(vec![format!(
                    "control.alias_config: {shown}: cannot read: {e}"
                )])
            })?;
            let commands = parse_alias_config(&text, &shown)
                .map_err(|e| fail(e.to_string().lines().map(str::to_string).collect()))?;
            for (line, cmd) in commands {
                match apply(&state, &cmd, &|p| std::fs::read_to_string(p)) {
                    Ok(Applied::Changed(next, _)) => state = *next,
                    Ok(_) => {}
                    Err(e) => {
                        return Err(fail(
                            e.to_string()
                                .lines()
                                .map(|l| format!("{shown}:{line}: {l}"))
                                .collect(),
                        ))
                    }
                }
            }
        }
        let ControlState {
            cluster, resvok, ..
        } = state;
        let pipeline = PipelineConfig {
            conn_capacity: t.connections,
            tcp_idle_ms: t.tcp_idle_secs * 1000,
            tcp_closing_ms: t.tcp_closing_secs * 1000,
            max_members: cluster.members.len().max(1),
            refusals_per_sec: raw.limits.refusals_per_sec,
            ..PipelineConfig::default()
        };
        Ok(Config {
            cluster,
            dpdk: raw.dpdk,
            port_devargs,
            pipeline,
            metrics_listen,
            control: raw.control,
            resvok,
            adverts,
        })
    }
}
