//! aliasd's configuration file (TOML; format in docs/aliasd.toml.md).
//!
//! Loading is all-or-nothing, in three steps, each with its own function:
//! 1. [`RawConfig::deserialise`]: TOML to the file's own shape (unknown fields are errors, with
//!    the TOML line and column);
//! 2. [`RawConfig::validate`]: converted to the control plane's [`Cluster`] model and checked,
//!    without touching the file system; every problem found is reported, each naming its field;
//! 3. [`ValidConfig::load_files`]: the files the configuration refers to (the advert key file,
//!    `control.services_file`, `control.alias_config`) are read and applied, last.
//!
//! [`Config::parse`] runs all three; [`Config::check`] the first two (what the fuzz target runs).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use clua_ctl::alias_config::{parse_alias_config, AliasConfigError};
use clua_ctl::apply::{apply, Applied, ApplyError, ControlState};
use clua_ctl::command::Command;

use clua_ctl::members::health::{self, HealthCheck, HealthCheckError, HealthSpec};
use clua_ctl::model::{
    parse_mac, AliasSpec, Cluster, JoinSpec, MacError, MemberMac, MemberSpec, ModelError, PortSpec,
    Prefix, PrefixError, Proto, ServiceOptionError, ServiceOptions, ServiceSpec,
    DEFAULT_MAX_ALIASES, DEFAULT_RPRI,
};
use clua_pipeline::snapshot::{Encap, PortRole};
use clua_pipeline::PipelineConfig;
use serde::Deserialize;

use crate::idle::IdlePolicy;

/// Everything aliasd needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// The cluster: ports, members, aliases, services.
    pub cluster: Cluster,
    /// DPDK settings, one entry per port in `cluster.ports` order for `port_devargs`.
    pub dpdk: DpdkConfig,
    /// How workers wait when idle: `dpdk.idle` and its keys, resolved.
    pub idle: IdlePolicy,
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
    /// The router protocol (`[router]`): absent when this router is alone.
    pub router: Option<RouterConfig>,
    /// RIPv2 (`[rip]`): absent, no routes are advertised.
    pub rip: Option<RipConfig>,
    /// BFD (`[bfd]`).
    pub bfd: Option<BfdConfig>,
    /// Flow hand-off and the flows file (`[sync]`, issue 9).
    pub sync: SyncConfig,
    /// Health probes of static members (`[[member]] health`, issue 10): one entry per member
    /// with a check other than `none`.
    pub health: Vec<HealthSpec>,
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
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DpdkConfig {
    /// lcore of the control thread.
    pub main_lcore: u32,
    /// lcores of the workers (one worker each).
    pub worker_lcores: Vec<u32>,
    /// EAL's `--lcores` map (e.g. `"0@0,1@1,2@0"`), passed instead of the `-l` list made of
    /// `main_lcore` and `worker_lcores`: lets lcores share a CPU (issue 12: two workers on a
    /// 2-CPU lab). It must name those lcores; aliasd checks that EAL has them.
    pub lcores: Option<String>,
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
    /// What a worker does after a poll that found nothing (issue 12, [`crate::idle`]):
    /// `"adaptive"` (the default: spin, pause, then sleeps doubling up to
    /// `idle_max_sleep_us`, busy again at the first packet), `"poll"` (flat out) or `"sleep"`
    /// (`idle_sleep_us` after every empty poll). Resolved into [`Config::idle`].
    pub idle: Option<String>,
    /// `idle = "sleep"`: the sleep after every empty poll, 1..=10000 us. Without `idle` it
    /// keeps its old meaning, so old configurations run as before: 0 polls flat out, more
    /// sleeps this long (`"sleep"`). Not valid with the other modes.
    pub idle_sleep_us: Option<u32>,
    /// `idle = "adaptive"`: the longest sleep, the bound on the wake-up latency, 1..=10000 us;
    /// default [`crate::idle::DEFAULT_MAX_SLEEP_US`].
    pub idle_max_sleep_us: Option<u32>,
    /// RX/TX descriptors per queue. On net_af_xdp this is the size of the socket's RX ring
    /// (issue 11: at 1024, 64 parallel 100 KB downloads through the alias overflowed it,
    /// `clua_port_xsk_rx_ring_full_total`; at 4096 nothing was lost, docs/capture.md).
    pub descriptors: u16,
    /// DPDK's telemetry socket (`/var/run/dpdk/clua-PID/dpdk_telemetry.v2`, for
    /// `dpdk-telemetry.py -f clua-PID`); issue 11 (capture part). Off: `--no-telemetry`.
    pub telemetry: bool,
    /// Keep EAL's shared configuration and multi-process socket (no `--no-shconf`): net_memif
    /// needs them to probe (scripts/bench's memif set-up). The file prefix stays per process.
    pub shared_config: bool,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            main_lcore: 0,
            worker_lcores: vec![1],
            lcores: None,
            memory_mb: 256,
            hugepages: false,
            pci_allow: vec![],
            extra_args: vec![],
            mbufs: 32767,
            idle: None,
            idle_sleep_us: None,
            idle_max_sleep_us: None,
            descriptors: 4096,
            telemetry: true,
            shared_config: false,
        }
    }
}

impl DpdkConfig {
    /// The EAL arguments (without argv[0], which `clua_dpdk::Eal::init` adds). `--no-pci` unless
    /// a PCI allow-list is given; a per-process file prefix and `--no-shconf` so that several
    /// aliasd processes (tests, labs) never share runtime files (the telemetry socket is in
    /// that per-process directory too); `--no-telemetry` unless `telemetry`.
    pub fn eal_args(&self, port_devargs: &[String]) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(map) = &self.lcores {
            args.push("--lcores".into());
            args.push(map.clone());
        } else {
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
        }
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
        if !self.shared_config {
            args.push("--no-shconf".into());
        }
        if !self.telemetry {
            args.push("--no-telemetry".into());
        }
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

/// aliasd's configuration error.
pub type RouterConfigError = ConfigError<Problem>;

/// One problem in aliasd's configuration: the field it is about (none for the file as a whole
/// and for model errors, which name their own place) and what is wrong. Displays as
/// `FIELD: KIND`.
#[derive(Debug, thiserror::Error)]
#[error("{}{kind}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct Problem {
    /// E.g. `port[0] "client" address`, `dpdk.mbufs`, `control.alias_config`.
    pub field: Option<String>,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with a field of aliasd's configuration.
#[derive(Debug, thiserror::Error)]
pub enum ProblemKind {
    /// The file cannot be read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// Not TOML, or not the configuration's shape (continuation lines indented).
    #[error("{}", .0.to_string().trim_end().replace('\n', "\n    "))]
    Toml(#[from] toml::de::Error),
    /// `role` other than client / interconnect.
    #[error("`{0}` is not client or interconnect")]
    Role(String),
    /// `ADDRESS/LENGTH` expected.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    /// A MAC address expected.
    #[error(transparent)]
    Mac(#[from] MacError),
    /// An IPv4 address expected.
    #[error("`{0}` is not an IPv4 address")]
    NotIpv4(String),
    /// An empty string.
    #[error("must not be empty")]
    Empty,
    /// Not a contiguous dotted netmask.
    #[error("`{0}` is not a netmask (dotted and contiguous, e.g. 255.255.255.0)")]
    Mask(String),
    /// Two ports on one DPDK device.
    #[error("device `{device}` is already port \"{port}\"")]
    DeviceTaken {
        /// The device.
        device: String,
        /// The port that has it.
        port: String,
    },
    /// A PCI device not in `dpdk.pci_allow`.
    #[error("PCI device `{0}` is not in dpdk.pci_allow")]
    PciNotAllowed(String),
    /// No `[[port]]`.
    #[error("at least one [[port]] is required")]
    NoPort,
    /// A VXLAN field on a non-VXLAN member.
    #[error("only valid with encap = \"vxlan\"")]
    VxlanOnly,
    /// out_alias: not a port range.
    #[error(transparent)]
    PortRange(#[from] clua_pipeline::out_alias::PortRangeError),
    /// out_alias: `out_alias_ports` on an agent member.
    #[error("an agent member advertises its out_alias range (`[out_alias] ports` in its member.toml); remove it here")]
    OutAliasOnAgent,
    /// A VXLAN field missing.
    #[error("required with encap = \"vxlan\"")]
    VxlanRequired,
    /// `encap` other than l2 / ipip / vxlan.
    #[error("`{0}` is not l2, ipip or vxlan")]
    Encap(String),
    /// `proto` other than tcp / udp.
    #[error("`{0}` is not tcp or udp")]
    Proto(String),
    /// A service option (clua_services(4) words, CA9).
    #[error(transparent)]
    ServiceOption(#[from] ServiceOptionError),
    /// A number outside its range.
    #[error("{value} is out of range {min}..={max}")]
    OutOfRange {
        /// The value.
        value: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// `dpdk.idle` other than poll / sleep / adaptive.
    #[error("`{0}` is not poll, sleep or adaptive")]
    IdleMode(String),
    /// An idle key that the chosen `dpdk.idle` does not use.
    #[error("only valid with idle = \"{0}\"")]
    IdleOnly(&'static str),
    /// `idle = "sleep"` without `idle_sleep_us`.
    #[error("required with idle = \"sleep\"")]
    IdleSleepRequired,
    /// `dpdk.worker_lcores` empty.
    #[error("at least one worker lcore is required")]
    NoWorker,
    /// A worker on the main lcore.
    #[error("lcore {0} is already dpdk.main_lcore")]
    LcoreIsMain(u32),
    /// A worker lcore twice.
    #[error("an lcore is listed twice")]
    LcoreTwice,
    /// `ADDRESS:PORT` expected.
    #[error("`{0}` is not ADDRESS:PORT")]
    NotSocketAddr(String),
    /// UDP port 0.
    #[error("0 is not a UDP port")]
    PortZero,
    /// Not a valid name (`clua_ctl::name` rules).
    #[error(transparent)]
    Name(#[from] clua_ctl::name::NameError),
    /// `router.interconnect` names no interconnect port with an address.
    #[error("`{0}` is not an interconnect [[port]] with an address")]
    NotInterconnect(String),
    /// `[router]` without any interconnect port with an address.
    #[error("the router protocol needs an interconnect [[port]] with an address")]
    NoInterconnect,
    /// `rip.mode` other than broadcast / multicast.
    #[error("`{0}` is not broadcast or multicast")]
    RipMode(String),
    /// `rip.ports` names no client port with an address.
    #[error("`{0}` is not a client [[port]] with an address")]
    NotClientPort(String),
    /// RIP without any client port with an address.
    #[error("RIP needs a client [[port]] with an address")]
    NoRipPort,
    /// A BFD peer on no client port's subnet.
    #[error("{0} is in no client [[port]]'s subnet (single-hop BFD, RFC 5881)")]
    NoPortForPeer(Ipv4Addr),
    /// The router protocol and member adverts on one UDP port.
    #[error("{0} is adverts.port too")]
    PortClash(u16),
    /// Flow hand-off on another protocol's UDP port.
    #[error("{port} is {other} too")]
    PortTaken {
        /// The port.
        port: u16,
        /// The field that has it.
        other: &'static str,
    },
    /// `sync.enabled = true` without `[router]`.
    #[error("flow hand-off needs a [router] section (it shares router.node, router.key_file and router.interconnect)")]
    SyncWithoutRouter,
    /// A `health` value the router cannot probe with.
    #[error(transparent)]
    HealthCheck(#[from] HealthCheckError),
    /// A health key on a member that runs the agent.
    #[error("only for members without agent (an agent member's adverts say whether it is up)")]
    HealthWithAgent,
    /// `health = "tcp:PORT"` for a member whose port has no address to send the SYN from.
    #[error("a TCP probe is sent from the address of port \"{0}\", which has none")]
    HealthNoAddress(String),
    /// Agent members without `adverts.key_file`.
    #[error("required when a member has agent = true")]
    KeyFileRequired,
    /// The key file was refused.
    #[error(transparent)]
    KeyFile(#[from] clua_ctl::keyfile::KeyFileError),
    /// The cluster model's validation.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Both `control.services_file` and `[[service]]`.
    #[error("the services come from {} or from [[service]] entries, not both", .0.display())]
    ServicesTwice(PathBuf),
    /// A referenced file (services file, clu_alias.config line) was refused when applied.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// `control.alias_config` cannot be read.
    #[error("{}: cannot read: {source}", .path.display())]
    AliasConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A clu_alias.config line that is not a boot-time cluamgr command.
    #[error(transparent)]
    AliasConfig(#[from] AliasConfigError),
}

impl Problem {
    fn at(field: impl Into<String>, kind: impl Into<ProblemKind>) -> Problem {
        Problem {
            field: Some(field.into()),
            kind: kind.into(),
        }
    }

    fn whole(kind: impl Into<ProblemKind>) -> Problem {
        Problem {
            field: None,
            kind: kind.into(),
        }
    }

    /// A refused command or file as problems at `field`: one per model error.
    fn applied(field: &str, e: ApplyError) -> Vec<Problem> {
        match e {
            ApplyError::Invalid(errs) => errs.into_iter().map(|m| Problem::at(field, m)).collect(),
            other => vec![Problem::at(field, other)],
        }
    }
}

fn out_of_range(value: impl Into<u64>, min: impl Into<u64>, max: impl Into<u64>) -> ProblemKind {
    ProblemKind::OutOfRange {
        value: value.into(),
        min: min.into(),
        max: max.into(),
    }
}

/// The configuration file as written: step 1's result, step 2's input.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
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
    router: Option<RawRouter>,
    rip: Option<RawRip>,
    bfd: Option<RawBfd>,
    #[serde(default)]
    sync: RawSync,
    /// `[fragments]` (issue 10, the fragments part).
    #[serde(default)]
    fragments: RawFragments,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTables {
    connections: usize,
    tcp_idle_secs: u64,
    tcp_closing_secs: u64,
    tcp_half_open_ms: u64,
    sticky_timeout_ms: u64,
}

/// `[tables] sticky_timeout_ms`: how long a sticky client's affinity outlives its last new
/// connection (issue 9; docs/clua_services.md): 1 s to 24 h.
const STICKY_MS: std::ops::RangeInclusive<u64> = 1_000..=86_400_000;

/// `[tables] tcp_half_open_ms`: at least a slow handshake's round trip, at most IPVS's
/// SYN_RECV timeout (60 s).
const HALF_OPEN_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

// The connection table's wrapping 32-bit clock holds timeouts of at most
// `conntrack::MAX_TIMEOUT_MS` (~12 days; issue 12): every `[tables]` timeout's maximum (tcp_*_secs
// at most 86,400 s, checked below) must stay under it.
const _: () = assert!(
    *STICKY_MS.end() <= clua_pipeline::conntrack::MAX_TIMEOUT_MS
        && *HALF_OPEN_MS.end() <= clua_pipeline::conntrack::MAX_TIMEOUT_MS
        && 86_400 * 1000 <= clua_pipeline::conntrack::MAX_TIMEOUT_MS
);

impl Default for RawTables {
    fn default() -> Self {
        let d = PipelineConfig::default();
        RawTables {
            connections: d.conn_capacity,
            tcp_idle_secs: d.tcp_idle_ms / 1000,
            tcp_closing_secs: d.tcp_closing_ms / 1000,
            tcp_half_open_ms: d.tcp_half_open_ms,
            sticky_timeout_ms: d.sticky_timeout_ms,
        }
    }
}

/// `[fragments]` (issue 10, the fragments part; docs/aliasd.toml.md): the per-core fragment
/// table that lets IPv4 fragments follow their datagram's first one
/// ([`clua_pipeline::fragments`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFragments {
    capacity: usize,
    timeout_ms: u64,
    max_held: usize,
}

impl Default for RawFragments {
    fn default() -> Self {
        let d = clua_pipeline::fragments::FragmentConfig::default();
        RawFragments {
            capacity: d.capacity,
            timeout_ms: d.timeout_ms,
            max_held: d.max_held,
        }
    }
}

/// `[fragments] capacity`: datagrams in flight per core.
const FRAGMENT_CAPACITY: std::ops::RangeInclusive<usize> = 4..=(1 << 20);
/// `[fragments] timeout_ms`: long enough for reordering, short enough that a lost first
/// fragment does not pin a hold slot (Linux's `ipfrag_time` is 30 s).
const FRAGMENT_TIMEOUT_MS: std::ops::RangeInclusive<u64> = 10..=30_000;
/// `[fragments] max_held`: held fragments are mbufs taken from the pool, so all workers
/// together may hold at most a quarter of `dpdk.mbufs`, and one core at most this many.
const MAX_HELD: usize = 4096;

impl RawFragments {
    /// Checks the section against the mbuf pool it draws held fragments from.
    fn check(&self, mbufs: u32, workers: usize, p: &mut impl FnMut(String, ProblemKind)) {
        if !FRAGMENT_CAPACITY.contains(&self.capacity) {
            p(
                "fragments.capacity".into(),
                out_of_range(
                    self.capacity as u64,
                    *FRAGMENT_CAPACITY.start() as u64,
                    *FRAGMENT_CAPACITY.end() as u64,
                ),
            );
        }
        if !FRAGMENT_TIMEOUT_MS.contains(&self.timeout_ms) {
            p(
                "fragments.timeout_ms".into(),
                out_of_range(
                    self.timeout_ms,
                    *FRAGMENT_TIMEOUT_MS.start(),
                    *FRAGMENT_TIMEOUT_MS.end(),
                ),
            );
        }
        let max = (mbufs as usize / 4 / workers.max(1)).min(MAX_HELD);
        if self.max_held > max {
            p(
                "fragments.max_held".into(),
                out_of_range(self.max_held as u64, 0u64, max as u64),
            );
        }
    }

    fn config(&self) -> clua_pipeline::fragments::FragmentConfig {
        clua_pipeline::fragments::FragmentConfig {
            capacity: self.capacity,
            timeout_ms: self.timeout_ms,
            max_held: self.max_held,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    refusals_per_sec: u32,
    /// ICMP errors in alias context (issue 10, CA7): errors to an alias forwarded to the member
    /// owning the quoted flow, per second per worker.
    icmp_errors_per_sec: u32,
}

impl Default for RawLimits {
    fn default() -> Self {
        let d = PipelineConfig::default();
        RawLimits {
            refusals_per_sec: d.refusals_per_sec,
            icmp_errors_per_sec: d.icmp_errors_per_sec,
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
    /// The member's (or next hop's) MAC; absent: learned by ARP on `port` (ctl::neighbors),
    /// which needs `address` on the port's subnet. A configured one is never replaced by ARP.
    mac: Option<String>,
    #[serde(default = "default_encap")]
    encap: String,
    vni: Option<u32>,
    inner_mac: Option<String>,
    vxlan_port: Option<u16>,
    #[serde(default)]
    agent: bool,
    // Health of static members (issue 10, ctl::members::health; docs/aliasd.toml.md).
    /// `none`, `arp` or `tcp:PORT`; default `arp` for a static member without `mac`, `none`
    /// otherwise.
    health: Option<String>,
    health_interval_ms: Option<u64>,
    health_fails: Option<u32>,
    health_rises: Option<u32>,
    /// out_alias (CA9, docs/out_alias.md): the source-port range of this static member's
    /// out_alias connections, "LO-HI". Agent members advertise theirs.
    out_alias_ports: Option<String>,
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

/// `[router]` as written (docs/aliasd.toml.md).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    node: String,
    key_file: PathBuf,
    #[serde(default = "default_router_port")]
    port: u16,
    #[serde(default = "default_router_interval")]
    interval_ms: u32,
    #[serde(default = "default_router_dead_misses")]
    dead_misses: u32,
    #[serde(default = "default_router_state_file")]
    state_file: PathBuf,
    #[serde(default = "default_garp_count")]
    garp_count: u32,
    #[serde(default = "default_garp_interval")]
    garp_interval_ms: u32,
    interconnect: Option<String>,
}

fn default_router_port() -> u16 {
    clua_ctl::routers::wire::ROUTER_PORT
}
fn default_router_interval() -> u32 {
    clua_ctl::routers::wire::DEFAULT_INTERVAL_MS
}
fn default_router_dead_misses() -> u32 {
    clua_ctl::routers::wire::DEFAULT_DEAD_MISSES
}
fn default_router_state_file() -> PathBuf {
    PathBuf::from(clua_ctl::boots::DEFAULT_ROUTER_STATE_FILE)
}
fn default_garp_count() -> u32 {
    3
}
fn default_garp_interval() -> u32 {
    100
}
/// `router.garp_count`: at least one announcement, at most RFC 5227's order of magnitude.
const GARP_COUNT: std::ops::RangeInclusive<u32> = 1..=10;
/// `router.garp_interval_ms`.
const GARP_INTERVAL_MS: std::ops::RangeInclusive<u32> = 10..=10_000;
/// `router.dead_misses`.
const ROUTER_DEAD_MISSES: std::ops::RangeInclusive<u32> = 2..=100;

/// `[sync]` as written (docs/aliasd.toml.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSync {
    enabled: Option<bool>,
    port: u16,
    refresh_secs: u64,
    max_records_per_sec: u32,
    flows_file: PathBuf,
}

impl Default for RawSync {
    fn default() -> Self {
        let d = clua_ctl::sync::SyncSettings::default();
        RawSync {
            enabled: None,
            port: d.udp_port,
            refresh_secs: d.refresh_ms / 1000,
            max_records_per_sec: d.max_records_per_sec,
            flows_file: PathBuf::from(DEFAULT_FLOWS_FILE),
        }
    }
}

/// `[sync] flows_file` by default.
pub const DEFAULT_FLOWS_FILE: &str = "/var/lib/clua/flows";
/// `sync.refresh_secs`: often enough to outrun the shortest idle timeout people set, rarely
/// enough that a million flows stay a modest share of the interconnect.
const SYNC_REFRESH_SECS: std::ops::RangeInclusive<u64> = 1..=3600;
/// `sync.max_records_per_sec`.
const SYNC_MAX_RECORDS: std::ops::RangeInclusive<u32> = 1..=100_000_000;

/// The `[sync]` section: flow hand-off between routers, and the flows file (issue 9).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// Flow hand-off with peer routers is on (needs `[router]`; its default is whether
    /// `[router]` is configured).
    pub enabled: bool,
    /// Its UDP port on the interconnect.
    pub udp_port: u16,
    /// Every live entry is handed again within this period.
    pub refresh_ms: u64,
    /// The most flow records sent per second.
    pub max_records_per_sec: u32,
    /// Where the flows are kept across a restart (written at SIGTERM, read at start); `None`:
    /// nowhere. Works without `[router]`.
    pub flows_file: Option<PathBuf>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let d = clua_ctl::sync::SyncSettings::default();
        SyncConfig {
            enabled: false,
            udp_port: d.udp_port,
            refresh_ms: d.refresh_ms,
            max_records_per_sec: d.max_records_per_sec,
            flows_file: Some(PathBuf::from(DEFAULT_FLOWS_FILE)),
        }
    }
}

impl SyncConfig {
    /// The control plane's settings, when hand-off is on.
    pub fn settings(&self) -> Option<clua_ctl::sync::SyncSettings> {
        self.enabled.then_some(clua_ctl::sync::SyncSettings {
            udp_port: self.udp_port,
            refresh_ms: self.refresh_ms,
            max_records_per_sec: self.max_records_per_sec,
        })
    }
}

/// `[rip]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRip {
    ports: Option<Vec<String>>,
    #[serde(default = "default_rip_mode")]
    mode: String,
    #[serde(default)]
    port_modes: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_rip_update")]
    update_secs: u64,
    #[serde(default = "default_rip_jitter")]
    jitter_secs: u64,
    #[serde(default = "default_rip_triggered")]
    triggered_min_secs: u64,
    key_file: Option<PathBuf>,
    #[serde(default = "default_rip_key_id")]
    key_id: u8,
}
fn default_rip_mode() -> String {
    "broadcast".into()
}
fn default_rip_update() -> u64 {
    30
}
fn default_rip_jitter() -> u64 {
    5
}
fn default_rip_triggered() -> u64 {
    1
}
fn default_rip_key_id() -> u8 {
    1
}
/// `rip.update_secs`: RFC 2453's 30 s by default; a route times out at the peer after 180 s.
const RIP_UPDATE_SECS: std::ops::RangeInclusive<u64> = 5..=300;
/// `rip.triggered_min_secs`: RFC 2453 §3.10.1 (1 to 5 s).
const RIP_TRIGGERED_SECS: std::ops::RangeInclusive<u64> = 1..=5;

/// `[bfd]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBfd {
    peers: Vec<String>,
    #[serde(default = "default_bfd_interval")]
    min_tx_ms: u32,
    #[serde(default = "default_bfd_interval")]
    min_rx_ms: u32,
    #[serde(default = "default_bfd_multiplier")]
    multiplier: u8,
    #[serde(default)]
    strict_source_port: bool,
}
fn default_bfd_interval() -> u32 {
    100
}
fn default_bfd_multiplier() -> u8 {
    3
}
/// `bfd.min_tx_ms` / `min_rx_ms`.
const BFD_INTERVAL_MS: std::ops::RangeInclusive<u32> = 10..=10_000;

/// RIPv2's send mode on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RipSendMode {
    /// To the subnet's broadcast address.
    Broadcast,
    /// To 224.0.0.9.
    Multicast,
}

/// The `[rip]` section (CA6, docs/rip.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RipConfig {
    /// The client ports RIP runs on.
    pub ports: Vec<String>,
    /// Broadcast or multicast, per port in `ports` order.
    pub modes: Vec<RipSendMode>,
    /// Unsolicited updates every this many ms (± jitter).
    pub update_ms: u64,
    /// Their random offset.
    pub jitter_ms: u64,
    /// Least spacing of triggered updates.
    pub triggered_min_ms: u64,
    /// RFC 4822 HMAC-SHA-256: the key file.
    pub key_file: Option<PathBuf>,
    /// The key (read by `load_files`).
    pub key: Option<Vec<u8>>,
    /// Its key id.
    pub key_id: u8,
}

/// The `[bfd]` section (RFC 5880/5881, docs/bfd.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdConfig {
    /// Each peer with the client port whose subnet holds it.
    pub peers: Vec<(String, Ipv4Addr)>,
    /// Desired min TX interval.
    pub min_tx_ms: u32,
    /// Required min RX interval.
    pub min_rx_ms: u32,
    /// Detection multiplier.
    pub multiplier: u8,
    /// Refuse peers' packets from source ports outside 49152..=65535.
    pub strict_source_port: bool,
}

/// The `[router]` section: this router is one of several (issue 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// The node name in router messages.
    pub node: String,
    /// Where the HMAC key is (read by `load_files`).
    pub key_file: PathBuf,
    /// The key (empty until `load_files`).
    pub key: Vec<u8>,
    /// UDP port of the router protocol.
    pub udp_port: u16,
    /// Announcement interval.
    pub interval_ms: u32,
    /// Missed intervals before a peer is dead.
    pub dead_misses: u32,
    /// The boot counter file.
    pub state_file: PathBuf,
    /// Gratuitous ARPs per alias a new master sends.
    pub garp_count: u32,
    /// Their spacing.
    pub garp_interval_ms: u32,
    /// The interconnect port the protocol runs on.
    pub interconnect: String,
}

/// The `[adverts]` section, present when members run the member agent.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    mask: Option<String>,
    #[serde(default)]
    vmac: bool,
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

/// A configuration that passed validation (step 2) and whose referenced files are not yet read.
#[derive(Debug)]
pub struct ValidConfig {
    file: String,
    cluster: Cluster,
    dpdk: DpdkConfig,
    idle: IdlePolicy,
    port_devargs: Vec<String>,
    tables: RawTables,
    refusals_per_sec: u32,
    icmp_errors_per_sec: u32,
    metrics_listen: Option<std::net::SocketAddr>,
    control: ControlConfig,
    /// `Some` when a member runs the agent: the key file and the advert settings.
    adverts: Option<(PathBuf, u16, u32)>,
    router: Option<RouterConfig>,
    rip: Option<RipConfig>,
    bfd: Option<BfdConfig>,
    sync: SyncConfig,
    health: Vec<HealthSpec>,
    fragments: clua_pipeline::fragments::FragmentConfig,
}

/// Configuration keys a reload (SIGHUP, `cluamgr --reload`; issue 11) cannot change: they size
/// or start what runs (EAL, ports and their queues, workers and their tables, the sockets and
/// threads), or belong to protocols whose state machines are built at start. Everything else
/// (members, aliases, joins and weights, services, `services_file`, `alias_config`, the
/// default alias) is applied live.
pub const RESTART_ONLY: &str = "[cluster] name and max_aliases, [[port]], [dpdk], [tables] (sizes and timers), [limits], [fragments], [metrics], [control] socket and punt_queue, [adverts], [router], [rip], [bfd], [sync]";

impl Config {
    /// The restart-only keys (see [`RESTART_ONLY`]) whose value differs in `new`, by name
    /// (empty: `new` can be applied live).
    pub fn restart_only_changes(&self, new: &Config) -> Vec<String> {
        let mut changed = Vec::new();
        let mut check = |differs: bool, key: &str| {
            if differs {
                changed.push(key.to_string());
            }
        };
        check(self.cluster.name != new.cluster.name, "cluster.name");
        check(
            self.cluster.max_aliases != new.cluster.max_aliases,
            "cluster.max_aliases",
        );
        check(self.cluster.ports != new.cluster.ports, "[[port]]");
        check(self.port_devargs != new.port_devargs, "[[port]] devargs");
        check(self.dpdk != new.dpdk, "[dpdk]");
        // max_members follows the member count (the counters are sized with headroom at
        // start); the rest of the pipeline settings come from [tables] and [limits].
        let pipeline = |c: &Config| PipelineConfig {
            max_members: 0,
            ..c.pipeline.clone()
        };
        check(
            pipeline(self) != pipeline(new),
            "[tables] / [limits] / [fragments]",
        );
        check(
            self.metrics_listen != new.metrics_listen,
            "[metrics] listen",
        );
        check(self.control.socket != new.control.socket, "control.socket");
        check(
            self.control.punt_queue != new.control.punt_queue,
            "control.punt_queue",
        );
        check(self.adverts != new.adverts, "[adverts]");
        check(self.router != new.router, "[router]");
        check(self.rip != new.rip, "[rip]");
        check(self.bfd != new.bfd, "[bfd]");
        check(self.sync != new.sync, "[sync]");
        changed
    }

    /// Reads a configuration file and runs [`Config::parse`] on it.
    pub fn load(path: &Path) -> Result<Config, RouterConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            problems: vec![Problem::whole(ProblemKind::Read(e))],
        })?;
        Config::parse(&text, &file)
    }

    /// Deserialises, validates and loads the referenced files; `file` names the text in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, RouterConfigError> {
        RawConfig::deserialise(text, file)?
            .validate(file)?
            .load_files()
    }

    /// Deserialises and validates, reading no file: the configuration is well-formed and
    /// consistent, though a file it refers to may still be refused.
    pub fn check(text: &str, file: &str) -> Result<ValidConfig, RouterConfigError> {
        RawConfig::deserialise(text, file)?.validate(file)
    }
}

impl RawConfig {
    /// Step 1: TOML text to the file's shape. Unknown fields are errors.
    pub fn deserialise(text: &str, file: &str) -> Result<RawConfig, RouterConfigError> {
        toml::from_str(text).map_err(|e: toml::de::Error| ConfigError {
            file: file.to_string(),
            problems: vec![Problem::whole(e)],
        })
    }

    /// Step 2: converts to the cluster model and checks everything that needs no file, reporting
    /// every problem found.
    pub fn validate(self, file: &str) -> Result<ValidConfig, RouterConfigError> {
        let raw = self;
        let mut problems: Vec<Problem> = Vec::new();
        let mut p = |at: String, what: ProblemKind| problems.push(Problem::at(at, what));

        let mut ports = Vec::new();
        let mut port_devargs = Vec::new();
        for (i, rp) in raw.port.iter().enumerate() {
            let at = format!("port[{i}] \"{}\"", rp.name);
            let role = match rp.role.as_str() {
                "client" => PortRole::Client,
                "interconnect" => PortRole::Interconnect,
                other => {
                    p(format!("{at} role"), ProblemKind::Role(other.into()));
                    PortRole::Client
                }
            };
            let mut prefix = |field: &str, v: &Option<String>| {
                v.as_deref().and_then(|a| match a.parse::<Prefix>() {
                    Ok(x) => Some(x),
                    Err(e) => {
                        p(format!("{at} {field}"), e.into());
                        None
                    }
                })
            };
            let address = prefix("address", &rp.address);
            let flow_source = prefix("flow_source", &rp.flow_source);
            let mac = rp.mac.as_deref().and_then(|m| match parse_mac(m) {
                Ok(x) => Some(x),
                Err(e) => {
                    p(format!("{at} mac"), e.into());
                    None
                }
            });
            if rp.devargs.trim().is_empty() {
                p(format!("{at} devargs"), ProblemKind::Empty);
            }
            if let Some(o) = raw.port[..i]
                .iter()
                .find(|o| port_name(&o.devargs) == port_name(&rp.devargs))
            {
                p(
                    format!("{at} devargs"),
                    ProblemKind::DeviceTaken {
                        device: port_name(&rp.devargs).into(),
                        port: o.name.clone(),
                    },
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
                    ProblemKind::PciNotAllowed(port_name(&rp.devargs).into()),
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
            p("port".into(), ProblemKind::NoPort);
        }

        let mut members = Vec::new();
        let mut health = Vec::new();
        for (i, rm) in raw.member.iter().enumerate() {
            let at = format!("member[{i}] \"{}\"", rm.name);
            let address = rm.address.parse::<Ipv4Addr>().unwrap_or_else(|_| {
                p(
                    format!("{at} address"),
                    ProblemKind::NotIpv4(rm.address.clone()),
                );
                Ipv4Addr::UNSPECIFIED
            });
            // Without `mac` the router learns it by ARP on the member's port (ctl::neighbors).
            let mac = match rm.mac.as_deref().map(parse_mac) {
                None => MemberMac::Unresolved,
                Some(Ok(m)) => MemberMac::Configured(m),
                Some(Err(e)) => {
                    p(format!("{at} mac"), e.into());
                    MemberMac::Configured([0; 6])
                }
            };
            let vx_only = |p: &mut dyn FnMut(String, ProblemKind), field: &str, set: bool| {
                if set {
                    p(format!("{at} {field}"), ProblemKind::VxlanOnly);
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
                        p(format!("{at} vni"), ProblemKind::VxlanRequired);
                        0
                    });
                    let inner_mac = match rm.inner_mac.as_deref() {
                        None => {
                            p(format!("{at} inner_mac"), ProblemKind::VxlanRequired);
                            [0; 6]
                        }
                        Some(m) => parse_mac(m).unwrap_or_else(|e| {
                            p(format!("{at} inner_mac"), e.into());
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
                    p(format!("{at} encap"), ProblemKind::Encap(other.into()));
                    Encap::L2
                }
            };
            if let Some(spec) = member_health(rm, &at, &ports, &mut p) {
                health.push(spec);
            }
            // out_alias: overlaps and service ports are Cluster::validate's.
            let out_alias = match rm.out_alias_ports.as_deref().map(str::parse) {
                Some(Ok(_)) if rm.agent => {
                    p(
                        format!("{at} out_alias_ports"),
                        ProblemKind::OutAliasOnAgent,
                    );
                    None
                }
                Some(Ok(r)) => Some(r),
                Some(Err(e)) => {
                    p(format!("{at} out_alias_ports"), ProblemKind::PortRange(e));
                    None
                }
                None => None,
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
                out_alias,
            });
        }

        let mut aliases = Vec::new();
        for (i, ra) in raw.alias.iter().enumerate() {
            let address = ra.address.parse::<Ipv4Addr>().unwrap_or_else(|_| {
                p(
                    format!("alias[{i}] \"{}\" address", ra.name),
                    ProblemKind::NotIpv4(ra.address.clone()),
                );
                Ipv4Addr::UNSPECIFIED
            });
            let mask = ra.mask.as_ref().and_then(|m| {
                clua_ctl::command::parse_mask(m)
                    .map_err(|_| {
                        p(
                            format!("alias[{i}] \"{}\" mask", ra.name),
                            ProblemKind::Mask(m.clone()),
                        )
                    })
                    .ok()
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
                mask,
                vmac: ra.vmac,
            });
        }

        let mut services = Vec::new();
        for (i, rs) in raw.service.iter().enumerate() {
            let at = format!("service[{i}] \"{}\"", rs.name);
            let proto = match rs.proto.as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                other => {
                    p(format!("{at} proto"), ProblemKind::Proto(other.into()));
                    Proto::Tcp
                }
            };
            let mut options = ServiceOptions::default();
            for o in &rs.options {
                if let Err(e) = options.set(o) {
                    p(format!("{at} options"), e.into());
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
                out_of_range(t.connections as u64, 8u64, MAX_CONNECTIONS as u64),
            );
        }
        for (name, v) in [
            ("tcp_idle_secs", t.tcp_idle_secs),
            ("tcp_closing_secs", t.tcp_closing_secs),
        ] {
            if !(1..=86_400).contains(&v) {
                p(format!("tables.{name}"), out_of_range(v, 1u64, 86_400u64));
            }
        }
        if !HALF_OPEN_MS.contains(&t.tcp_half_open_ms) {
            p(
                "tables.tcp_half_open_ms".into(),
                out_of_range(
                    t.tcp_half_open_ms,
                    *HALF_OPEN_MS.start(),
                    *HALF_OPEN_MS.end(),
                ),
            );
        }
        if !STICKY_MS.contains(&t.sticky_timeout_ms) {
            p(
                "tables.sticky_timeout_ms".into(),
                out_of_range(t.sticky_timeout_ms, *STICKY_MS.start(), *STICKY_MS.end()),
            );
        }
        let d = &raw.dpdk;
        if d.worker_lcores.is_empty() {
            p("dpdk.worker_lcores".into(), ProblemKind::NoWorker);
        }
        if d.worker_lcores.contains(&d.main_lcore) {
            p(
                "dpdk.worker_lcores".into(),
                ProblemKind::LcoreIsMain(d.main_lcore),
            );
        }
        let mut sorted = d.worker_lcores.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            p("dpdk.worker_lcores".into(), ProblemKind::LcoreTwice);
        }
        if !(1023..=(1 << 24)).contains(&d.mbufs) {
            p(
                "dpdk.mbufs".into(),
                out_of_range(d.mbufs, 1023u32, 1u32 << 24),
            );
        }
        raw.fragments.check(d.mbufs, d.worker_lcores.len(), &mut p);
        if !(64..=16384).contains(&d.memory_mb) {
            p(
                "dpdk.memory_mb".into(),
                out_of_range(d.memory_mb, 64u32, 16384u32),
            );
        }
        if !(64..=4096).contains(&d.descriptors) {
            p(
                "dpdk.descriptors".into(),
                out_of_range(d.descriptors, 64u16, 4096u16),
            );
        }
        let idle = idle_policy(d, &mut p);
        let metrics_listen = raw.metrics.listen.as_deref().and_then(|l| match l.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                p(
                    "metrics.listen".into(),
                    ProblemKind::NotSocketAddr(l.into()),
                );
                None
            }
        });

        let mut cluster = Cluster {
            name: raw.cluster.name,
            default_alias: raw.cluster.default_alias,
            max_aliases: raw.cluster.max_aliases.unwrap_or(DEFAULT_MAX_ALIASES),
            ports,
            members,
            aliases,
            services,
            advert_port: 0,
        };
        let mut adverts = None;
        if raw.member.iter().any(|m| m.agent) {
            let a = &raw.adverts;
            if a.port == 0 {
                p("adverts.port".into(), ProblemKind::PortZero);
            }
            if !(1..=100).contains(&a.dead_misses) {
                p(
                    "adverts.dead_misses".into(),
                    out_of_range(a.dead_misses, 1u32, 100u32),
                );
            }
            match &a.key_file {
                None => p("adverts.key_file".into(), ProblemKind::KeyFileRequired),
                Some(path) => {
                    adverts = Some((path.clone(), a.port, a.dead_misses));
                    cluster.advert_port = a.port;
                }
            }
        }
        let router = raw.router.as_ref().map(|r| {
            if let Err(e) = clua_ctl::name::validate_name(r.node.as_bytes()) {
                p("router.node".into(), e.into());
            }
            if r.port == 0 {
                p("router.port".into(), ProblemKind::PortZero);
            } else if adverts.is_some() && r.port == raw.adverts.port {
                p("router.port".into(), ProblemKind::PortClash(r.port));
            }
            let interval = clua_ctl::routers::wire::INTERVAL_RANGE;
            if !interval.contains(&r.interval_ms) {
                p(
                    "router.interval_ms".into(),
                    out_of_range(r.interval_ms, *interval.start(), *interval.end()),
                );
            }
            for (field, v, range) in [
                ("router.dead_misses", r.dead_misses, ROUTER_DEAD_MISSES),
                ("router.garp_count", r.garp_count, GARP_COUNT),
                (
                    "router.garp_interval_ms",
                    r.garp_interval_ms,
                    GARP_INTERVAL_MS,
                ),
            ] {
                if !range.contains(&v) {
                    p(field.into(), out_of_range(v, *range.start(), *range.end()));
                }
            }
            let with_address = |name: &str| {
                cluster.ports.iter().any(|port| {
                    port.name == name
                        && port.role == PortRole::Interconnect
                        && port.address.is_some()
                })
            };
            let interconnect = match &r.interconnect {
                Some(name) => {
                    if !with_address(name) {
                        p(
                            "router.interconnect".into(),
                            ProblemKind::NotInterconnect(name.clone()),
                        );
                    }
                    name.clone()
                }
                None => match cluster
                    .ports
                    .iter()
                    .find(|port| port.role == PortRole::Interconnect && port.address.is_some())
                {
                    Some(port) => port.name.clone(),
                    None => {
                        p("router.interconnect".into(), ProblemKind::NoInterconnect);
                        String::new()
                    }
                },
            };
            RouterConfig {
                node: r.node.clone(),
                key_file: r.key_file.clone(),
                key: Vec::new(),
                udp_port: r.port,
                interval_ms: r.interval_ms,
                dead_misses: r.dead_misses,
                state_file: r.state_file.clone(),
                garp_count: r.garp_count,
                garp_interval_ms: r.garp_interval_ms,
                interconnect,
            }
        });
        let sync = {
            let r = &raw.sync;
            let enabled = r.enabled.unwrap_or(router.is_some());
            if enabled && router.is_none() {
                p("sync.enabled".into(), ProblemKind::SyncWithoutRouter);
            }
            if enabled {
                if r.port == 0 {
                    p("sync.port".into(), ProblemKind::PortZero);
                } else if router.as_ref().is_some_and(|rt| rt.udp_port == r.port) {
                    p(
                        "sync.port".into(),
                        ProblemKind::PortTaken {
                            port: r.port,
                            other: "router.port",
                        },
                    );
                } else if adverts.is_some() && r.port == raw.adverts.port {
                    p(
                        "sync.port".into(),
                        ProblemKind::PortTaken {
                            port: r.port,
                            other: "adverts.port",
                        },
                    );
                }
            }
            if !SYNC_REFRESH_SECS.contains(&r.refresh_secs) {
                p(
                    "sync.refresh_secs".into(),
                    out_of_range(
                        r.refresh_secs,
                        *SYNC_REFRESH_SECS.start(),
                        *SYNC_REFRESH_SECS.end(),
                    ),
                );
            }
            if !SYNC_MAX_RECORDS.contains(&r.max_records_per_sec) {
                p(
                    "sync.max_records_per_sec".into(),
                    out_of_range(
                        r.max_records_per_sec,
                        *SYNC_MAX_RECORDS.start(),
                        *SYNC_MAX_RECORDS.end(),
                    ),
                );
            }
            SyncConfig {
                enabled,
                udp_port: r.port,
                refresh_ms: r.refresh_secs.saturating_mul(1000),
                max_records_per_sec: r.max_records_per_sec,
                flows_file: (!r.flows_file.as_os_str().is_empty()).then(|| r.flows_file.clone()),
            }
        };
        let client_port = |name: &str| {
            cluster
                .ports
                .iter()
                .find(|port| port.name == name && port.role == PortRole::Client)
                .and_then(|port| port.address)
        };
        let rip = raw.rip.as_ref().map(|r| {
            let mut parse_mode = |field: String, text: &str| match text {
                "broadcast" => RipSendMode::Broadcast,
                "multicast" => RipSendMode::Multicast,
                other => {
                    p(field, ProblemKind::RipMode(other.into()));
                    RipSendMode::Broadcast
                }
            };
            let mode = parse_mode("rip.mode".into(), &r.mode);
            let port_modes: Vec<(String, RipSendMode)> = r
                .port_modes
                .iter()
                .map(|(name, m)| {
                    (
                        name.clone(),
                        parse_mode(format!("rip.port_modes.{name}"), m),
                    )
                })
                .collect();
            let ports: Vec<String> = match &r.ports {
                Some(list) => {
                    for name in list {
                        if client_port(name).is_none() {
                            p("rip.ports".into(), ProblemKind::NotClientPort(name.clone()));
                        }
                    }
                    list.clone()
                }
                None => cluster
                    .ports
                    .iter()
                    .filter(|port| port.role == PortRole::Client && port.address.is_some())
                    .map(|port| port.name.clone())
                    .collect(),
            };
            if ports.is_empty() {
                p("rip.ports".into(), ProblemKind::NoRipPort);
            }
            for (name, _) in &port_modes {
                if !ports.contains(name) {
                    p(
                        format!("rip.port_modes.{name}"),
                        ProblemKind::NotClientPort(name.clone()),
                    );
                }
            }
            let modes = ports
                .iter()
                .map(|name| {
                    port_modes
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or(mode, |(_, m)| *m)
                })
                .collect();
            if !RIP_UPDATE_SECS.contains(&r.update_secs) {
                p(
                    "rip.update_secs".into(),
                    out_of_range(
                        r.update_secs,
                        *RIP_UPDATE_SECS.start(),
                        *RIP_UPDATE_SECS.end(),
                    ),
                );
            }
            if r.jitter_secs * 2 >= r.update_secs {
                p(
                    "rip.jitter_secs".into(),
                    out_of_range(r.jitter_secs, 0u64, r.update_secs.saturating_sub(1) / 2),
                );
            }
            if !RIP_TRIGGERED_SECS.contains(&r.triggered_min_secs) {
                p(
                    "rip.triggered_min_secs".into(),
                    out_of_range(
                        r.triggered_min_secs,
                        *RIP_TRIGGERED_SECS.start(),
                        *RIP_TRIGGERED_SECS.end(),
                    ),
                );
            }
            RipConfig {
                ports,
                modes,
                update_ms: r.update_secs * 1000,
                jitter_ms: r.jitter_secs * 1000,
                triggered_min_ms: r.triggered_min_secs * 1000,
                key_file: r.key_file.clone(),
                key: None,
                key_id: r.key_id,
            }
        });
        let bfd = raw.bfd.as_ref().map(|b| {
            let mut peers = Vec::new();
            for (i, text) in b.peers.iter().enumerate() {
                let at = format!("bfd.peers[{i}]");
                let Ok(addr) = text.parse::<Ipv4Addr>() else {
                    p(at, ProblemKind::NotIpv4(text.clone()));
                    continue;
                };
                let port = cluster.ports.iter().find(|port| {
                    port.role == PortRole::Client
                        && port
                            .address
                            .is_some_and(|a| a.contains(addr) && a.addr != addr)
                });
                match port {
                    Some(port) => peers.push((port.name.clone(), addr)),
                    None => p(at, ProblemKind::NoPortForPeer(addr)),
                }
            }
            if b.peers.is_empty() {
                p("bfd.peers".into(), ProblemKind::Empty);
            }
            for (field, v) in [
                ("bfd.min_tx_ms", b.min_tx_ms),
                ("bfd.min_rx_ms", b.min_rx_ms),
            ] {
                if !BFD_INTERVAL_MS.contains(&v) {
                    p(
                        field.into(),
                        out_of_range(v, *BFD_INTERVAL_MS.start(), *BFD_INTERVAL_MS.end()),
                    );
                }
            }
            if b.multiplier == 0 {
                p("bfd.multiplier".into(), out_of_range(0u8, 1u8, 255u8));
            }
            BfdConfig {
                peers,
                min_tx_ms: b.min_tx_ms,
                min_rx_ms: b.min_rx_ms,
                multiplier: b.multiplier,
                strict_source_port: b.strict_source_port,
            }
        });
        if let Some(path) = &raw.control.services_file {
            if !raw.service.is_empty() {
                p(
                    "control.services_file".into(),
                    ProblemKind::ServicesTwice(path.clone()),
                );
            }
        }
        if let Err(errs) = cluster.validate() {
            problems.extend(errs.into_iter().map(Problem::whole));
        }
        if !problems.is_empty() {
            return Err(ConfigError {
                file: file.to_string(),
                problems,
            });
        }
        cluster.join_default_alias();
        Ok(ValidConfig {
            file: file.to_string(),
            cluster,
            dpdk: raw.dpdk,
            idle,
            port_devargs,
            tables: raw.tables,
            refusals_per_sec: raw.limits.refusals_per_sec,
            icmp_errors_per_sec: raw.limits.icmp_errors_per_sec,
            metrics_listen,
            control: raw.control,
            adverts,
            router,
            rip,
            bfd,
            sync,
            health,
            fragments: raw.fragments.config(),
        })
    }
}

/// `[dpdk] idle`, `idle_sleep_us` and `idle_max_sleep_us` as an [`IdlePolicy`] (issue 12),
/// every problem reported at its key. Without `idle`, `idle_sleep_us` means what it always
/// did (0: poll, more: sleep), so old configurations (the lab's `idle_sleep_us = 20`) run as
/// before; with neither, the default: adaptive.
fn idle_policy(d: &DpdkConfig, p: &mut dyn FnMut(String, ProblemKind)) -> IdlePolicy {
    let max = crate::idle::MAX_SLEEP_LIMIT_US;
    let mut in_range = |key: &str, us: u32| {
        if (1..=max).contains(&us) {
            us
        } else {
            p(format!("dpdk.{key}"), out_of_range(us, 1u32, max));
            1
        }
    };
    let mode = match (d.idle.as_deref(), d.idle_sleep_us) {
        (None, Some(0)) => "poll",
        (None, Some(_)) => "sleep",
        (None, None) => "adaptive",
        (Some(m), _) => m,
    };
    let policy = match mode {
        "poll" => IdlePolicy::Poll,
        "sleep" => match d.idle_sleep_us {
            Some(us) => IdlePolicy::Sleep {
                us: in_range("idle_sleep_us", us),
            },
            None => {
                p("dpdk.idle_sleep_us".into(), ProblemKind::IdleSleepRequired);
                IdlePolicy::Poll
            }
        },
        "adaptive" => IdlePolicy::Adaptive {
            max_sleep_us: match d.idle_max_sleep_us {
                Some(us) => in_range("idle_max_sleep_us", us),
                None => crate::idle::DEFAULT_MAX_SLEEP_US,
            },
        },
        other => {
            p("dpdk.idle".into(), ProblemKind::IdleMode(other.into()));
            return IdlePolicy::default();
        }
    };
    // The legacy `idle_sleep_us = 0` (no `idle`) is "poll" and may stand alone.
    if d.idle.is_some() && d.idle_sleep_us.is_some() && mode != "sleep" {
        p("dpdk.idle_sleep_us".into(), ProblemKind::IdleOnly("sleep"));
    }
    if d.idle_max_sleep_us.is_some() && mode != "adaptive" {
        p(
            "dpdk.idle_max_sleep_us".into(),
            ProblemKind::IdleOnly("adaptive"),
        );
    }
    policy
}

/// A member's `health*` keys (issue 10): the probing spec, or `None` for `none` (and for
/// agent members, which must not have any; an error each).
fn member_health(
    rm: &RawMember,
    at: &str,
    ports: &[PortSpec],
    p: &mut dyn FnMut(String, ProblemKind),
) -> Option<HealthSpec> {
    if rm.agent {
        for (field, set) in [
            ("health", rm.health.is_some()),
            ("health_interval_ms", rm.health_interval_ms.is_some()),
            ("health_fails", rm.health_fails.is_some()),
            ("health_rises", rm.health_rises.is_some()),
        ] {
            if set {
                p(format!("{at} {field}"), ProblemKind::HealthWithAgent);
            }
        }
        return None;
    }
    // A configured MAC means "do not ARP" (a next hop, a LAN without ARP): no probe unless
    // asked for. Without one the member answers ARP already (ctl::neighbors needs it).
    let check = match rm.health.as_deref() {
        None if rm.mac.is_some() => HealthCheck::None,
        None => HealthCheck::Arp,
        Some(text) => match HealthCheck::parse(text) {
            Ok(c) => c,
            Err(e) => {
                p(format!("{at} health"), e.into());
                HealthCheck::None
            }
        },
    };
    let interval_ms = rm.health_interval_ms.unwrap_or(health::DEFAULT_INTERVAL_MS);
    if !health::INTERVAL_MS.contains(&interval_ms) {
        p(
            format!("{at} health_interval_ms"),
            out_of_range(
                interval_ms,
                *health::INTERVAL_MS.start(),
                *health::INTERVAL_MS.end(),
            ),
        );
    }
    let mut threshold = |field: &str, v: Option<u32>, default: u32| {
        let v = v.unwrap_or(default);
        if !health::THRESHOLD.contains(&v) {
            p(
                format!("{at} {field}"),
                out_of_range(v, *health::THRESHOLD.start(), *health::THRESHOLD.end()),
            );
        }
        v
    };
    let fails = threshold("health_fails", rm.health_fails, health::DEFAULT_FAILS);
    let rises = threshold("health_rises", rm.health_rises, health::DEFAULT_RISES);
    if let HealthCheck::Tcp(_) = check {
        if let Some(port) = ports.iter().find(|x| x.name == rm.port) {
            if port.address.is_none() {
                p(
                    format!("{at} health"),
                    ProblemKind::HealthNoAddress(port.name.clone()),
                );
            }
        }
    }
    (check != HealthCheck::None).then(|| HealthSpec {
        member: rm.name.clone(),
        check,
        interval_ms,
        fails,
        rises,
    })
}

impl ValidConfig {
    /// The validated cluster (default-alias joins done; referenced files not yet applied).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The `[sync]` section as validated.
    pub fn sync(&self) -> &SyncConfig {
        &self.sync
    }

    /// Step 3: reads the advert key file, then applies `control.services_file` and the
    /// commands of `control.alias_config`, in that order, as cluamgr would.
    pub fn load_files(self) -> Result<Config, RouterConfigError> {
        let file = self.file;
        let fail = |problems: Vec<Problem>| ConfigError {
            file: file.clone(),
            problems,
        };
        let adverts = match self.adverts {
            None => None,
            Some((path, port, dead_misses)) => match clua_ctl::keyfile::load_key(&path) {
                Ok(key) => Some(AdvertConfig {
                    key,
                    port,
                    dead_misses,
                }),
                Err(e) => return Err(fail(vec![Problem::at("adverts.key_file", e)])),
            },
        };
        let router = match self.router {
            None => None,
            Some(r) => match clua_ctl::keyfile::load_key(&r.key_file) {
                Ok(key) => Some(RouterConfig { key, ..r }),
                Err(e) => return Err(fail(vec![Problem::at("router.key_file", e)])),
            },
        };
        let rip = match self.rip {
            Some(r) => match &r.key_file {
                None => Some(r),
                Some(path) => match clua_ctl::keyfile::load_key(path) {
                    Ok(key) => Some(RipConfig {
                        key: Some(key),
                        ..r
                    }),
                    Err(e) => return Err(fail(vec![Problem::at("rip.key_file", e)])),
                },
            },
            None => None,
        };
        let read = |p: &Path| std::fs::read_to_string(p);
        let mut state = ControlState {
            cluster: self.cluster,
            services_file: self.control.services_file.clone(),
            resvok: false,
        };
        if self.control.services_file.is_some() {
            match apply(&state, &Command::ReloadServices, &read) {
                Ok(Applied::Changed(next, _)) => state = *next,
                Ok(_) => {}
                Err(e) => return Err(fail(Problem::applied("control.services_file", e))),
            }
        }
        if let Some(path) = &self.control.alias_config {
            let text = std::fs::read_to_string(path).map_err(|source| {
                fail(vec![Problem::at(
                    "control.alias_config",
                    ProblemKind::AliasConfigRead {
                        path: path.clone(),
                        source,
                    },
                )])
            })?;
            let shown = path.display().to_string();
            let commands = parse_alias_config(&text, &shown)
                .map_err(|e| fail(e.0.into_iter().map(Problem::whole).collect()))?;
            for (line, cmd) in commands {
                match apply(&state, &cmd, &read) {
                    Ok(Applied::Changed(next, _)) => state = *next,
                    Ok(_) => {}
                    Err(e) => return Err(fail(Problem::applied(&format!("{shown}:{line}"), e))),
                }
            }
        }
        let ControlState {
            cluster, resvok, ..
        } = state;
        let t = &self.tables;
        let pipeline = PipelineConfig {
            conn_capacity: t.connections,
            tcp_idle_ms: t.tcp_idle_secs * 1000,
            tcp_closing_ms: t.tcp_closing_secs * 1000,
            tcp_half_open_ms: t.tcp_half_open_ms,
            sticky_timeout_ms: t.sticky_timeout_ms,
            max_members: cluster.members.len().max(1),
            refusals_per_sec: self.refusals_per_sec,
            icmp_errors_per_sec: self.icmp_errors_per_sec,
            handoff: self.sync.enabled,
            fragments: self.fragments,
            ..PipelineConfig::default()
        };
        Ok(Config {
            cluster,
            dpdk: self.dpdk,
            idle: self.idle,
            port_devargs: self.port_devargs,
            pipeline,
            metrics_listen: self.metrics_listen,
            control: self.control,
            resvok,
            adverts,
            router,
            rip,
            bfd: self.bfd,
            sync: self.sync,
            health: self.health,
        })
    }
}
