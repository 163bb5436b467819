//! The cluamgr(8) command grammar: argv in, one typed [`Command`] out.
//!
//! ```text
//! cluamgr -a alias=NAME,option[=value][,option]... [--member MEMBER]
//! cluamgr -f
//! cluamgr -F FILE
//! cluamgr -h
//! cluamgr -r option[,option]...
//! cluamgr -s [ALIAS | all]
//! cluamgr --register PORT/PROTO[,option]...
//! ```
//!
//! Exactly one primary flag per call (seed README), enforced by clap's `primary` argument group
//! ([`CommandArgs`]); each flag's value is parsed by its own value parser into a typed value
//! (`-a`'s option list into [`AliasList`], `-r`'s into [`RouterList`], `--register`'s into
//! [`Registration`], `--member` by [`crate::name::validate_name`]). A flag's value may be the
//! next argument (`-a alias=x,join`) or, getopt style, attached to a one-letter flag
//! (`-aalias=x,join`) or joined with `=` to a long flag (`--member=m1`); `-f` and `-h` take no
//! value and do not cluster. The same definition parses cluamgr's argv, clu_alias.config lines
//! and the member agent's commands ([`parse_args`]). [`Command`] is what travels as JSON over
//! aliasd's socket; the CLI turns `-F FILE` into an absolute path before sending it.
//!
//! `-F FILE --check` is the CLI's local validation mode; see [`parse_invocation`].

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::{Proto, ServiceOptionError, ServiceOptions, RPRI_RANGE, SELP_RANGE, SELW_RANGE};
use crate::services::{parse_port_proto, PortProtoError};
use crate::simulate::{parse_addr_port, parse_proto, Query, Segment, SimulateError};

/// The alias a `-a` or `-s` names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AliasRef {
    /// `DEFAULTALIAS` (any letter case): the cluster's default alias.
    Default,
    /// A dotted-quad address.
    Addr(Ipv4Addr),
    /// A host name (letters, digits, `-`, `.`), an alias name or one to look up in /etc/hosts.
    Name(String),
}

impl fmt::Display for AliasRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AliasRef::Default => f.write_str("DEFAULTALIAS"),
            AliasRef::Addr(a) => a.fmt(f),
            AliasRef::Name(n) => f.write_str(n),
        }
    }
}

/// The attributes a `-a` sets; `None`/`false` means "not given, leave as is".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasOptions {
    /// `join`: the member joins the alias.
    pub join: bool,
    /// `leave`: the member leaves the alias (its established connections drain).
    pub leave: bool,
    /// `selw=N`, N in [`SELW_RANGE`] (default 1).
    pub selw: Option<u32>,
    /// `selp=N`, N in [`SELP_RANGE`] (default 1).
    pub selp: Option<u32>,
    /// `rpri=N`, N in [`RPRI_RANGE`] (default [`crate::model::DEFAULT_RPRI`]).
    pub rpri: Option<u32>,
    /// `virtual` / `virtual=t` (true), `virtual=f` (false).
    pub virtual_subnet: Option<bool>,
    /// `mask=NETMASK`: a contiguous dotted netmask.
    pub mask: Option<Ipv4Addr>,
    /// `vmac` / `vmac=t` (true), `vmac=f` (false): the alias's virtual MAC (CA5). Absent in
    /// JSON from an older cluamgr: not given.
    #[serde(default)]
    pub vmac: Option<bool>,
}

/// What `-s` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShowWhat {
    /// `-s`, `-s all`.
    All,
    /// `-s ALIAS`.
    Alias(AliasRef),
}

/// serde mirror of [`Proto`] (the model type carries no serde derives).
#[derive(Serialize, Deserialize)]
#[serde(remote = "Proto", rename_all = "lowercase")]
pub(crate) enum ProtoDef {
    Tcp,
    Udp,
}

/// serde mirror of [`ServiceOptions`]; absent fields are false.
#[derive(Serialize, Deserialize)]
#[serde(remote = "ServiceOptions", default)]
struct ServiceOptionsDef {
    in_single: bool,
    in_multi: bool,
    in_noalias: bool,
    in_nolocal: bool,
    out_alias: bool,
    static_port: bool,
    // The load-balancing policies (issue 9), sent only when set, so commands without one read
    // the same as before.
    #[serde(skip_serializing_if = "is_false")]
    wrr: bool,
    #[serde(skip_serializing_if = "is_false")]
    weighted: bool,
    #[serde(skip_serializing_if = "is_false")]
    sticky: bool,
    #[serde(skip_serializing_if = "is_false")]
    wildcard_sticky: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for ServiceOptionsDef {
    fn default() -> Self {
        let o = ServiceOptions::default();
        ServiceOptionsDef {
            in_single: o.in_single,
            in_multi: o.in_multi,
            in_noalias: o.in_noalias,
            in_nolocal: o.in_nolocal,
            out_alias: o.out_alias,
            static_port: o.static_port,
            wrr: o.wrr,
            weighted: o.weighted,
            sticky: o.sticky,
            wildcard_sticky: o.wildcard_sticky,
        }
    }
}

/// One cluamgr command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `-a alias=NAME,option[=value]...`. `member`: the `--member NAME` extension: an
    /// administrator on a router acts for that configured member.
    Alias {
        /// The alias.
        alias: AliasRef,
        /// What to set.
        options: AliasOptions,
        /// `--member NAME`, if given.
        member: Option<String>,
    },
    /// `-f`: reload the configured clua_services file.
    ReloadServices,
    /// `-F FILE`: load another clua_services file (path as given; the CLI makes it absolute).
    LoadServices {
        /// The file.
        path: String,
    },
    /// `-r option[,option]...` (`resvok` / `noresvok`: allow RFC 1918 aliases to be
    /// advertised).
    Router {
        /// `Some(true)` for resvok, `Some(false)` for noresvok.
        resvok: Option<bool>,
    },
    /// `-s [ALIAS|all]`.
    Show(ShowWhat),
    /// clua_registerservice equivalent (CA11): `--register PORT/PROTO[,option...]`, e.g.
    /// `--register 7001/udp,in_multi`.
    Register {
        /// Port.
        port: u16,
        /// Protocol.
        #[serde(with = "ProtoDef")]
        proto: Proto,
        /// clua_services(4) options.
        #[serde(with = "ServiceOptionsDef")]
        options: ServiceOptions,
    },
    /// `-h`.
    Help,
    /// `simulate PROTO SOURCE:PORT DESTINATION:PORT [--syn|--ack] [--json]` (issue 11): which
    /// member the snapshot gives this 5-tuple and why; changes nothing.
    Simulate(Query),
    /// `capture PORT [--rx] [--tx] [--drop] [--all] [--count N] [--seconds S] [--snaplen N]
    /// [-w FILE] [--json]` (issue 11): a port's frames into a pcapng file, bounded by count
    /// and time (ctl::capture). aliasd serves it, not the control plane.
    Capture(crate::capture::CaptureRequest),
    /// `--reload` (issue 11): aliasd re-reads its configuration file, as on SIGHUP; all or
    /// nothing. Answered by the daemon, which reads the file
    /// ([`crate::plane::ControlPlane::reload`]).
    Reload,
}

impl Command {
    /// The primary flag of this command, as typed.
    pub fn flag(&self) -> &'static str {
        match self {
            Command::Alias { .. } => "-a",
            Command::ReloadServices => "-f",
            Command::LoadServices { .. } => "-F",
            Command::Router { .. } => "-r",
            Command::Show(_) => "-s",
            Command::Register { .. } => "--register",
            Command::Help => "-h",
            Command::Simulate(_) => "simulate",
            Command::Capture(_) => "capture",
            Command::Reload => "--reload",
        }
    }

    /// The cluamgr arguments (without argv\[0\]) that [`parse_args`] turns back into this command.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![self.flag().to_string()];
        match self {
            Command::Alias {
                alias,
                options: o,
                member,
            } => {
                let mut list = vec![format!("alias={alias}")];
                if o.join {
                    list.push("join".into());
                }
                if o.leave {
                    list.push("leave".into());
                }
                for (name, val) in [("selw", o.selw), ("selp", o.selp), ("rpri", o.rpri)] {
                    if let Some(n) = val {
                        list.push(format!("{name}={n}"));
                    }
                }
                match o.virtual_subnet {
                    Some(true) => list.push("virtual=t".into()),
                    Some(false) => list.push("virtual=f".into()),
                    None => {}
                }
                match o.vmac {
                    Some(true) => list.push("vmac=t".into()),
                    Some(false) => list.push("vmac=f".into()),
                    None => {}
                }
                if let Some(m) = o.mask {
                    list.push(format!("mask={m}"));
                }
                v.push(list.join(","));
                if let Some(m) = member {
                    v.push("--member".into());
                    v.push(m.clone());
                }
            }
            // A path that starts with `-` would read as a flag: attach it (`-F-x`).
            Command::LoadServices { path } if path.starts_with('-') => v[0] = format!("-F{path}"),
            Command::LoadServices { path } => v.push(path.clone()),
            Command::Router { resvok } => match resvok {
                Some(true) => v.push("resvok".into()),
                Some(false) => v.push("noresvok".into()),
                None => {}
            },
            Command::Show(ShowWhat::All) => v.push("all".into()),
            Command::Show(ShowWhat::Alias(a)) => v.push(a.to_string()),
            Command::Register {
                port,
                proto,
                options,
            } => {
                let mut s = format!("{port}/{}", proto.name());
                let o = crate::services::format_options(options);
                if o != "-" {
                    s.push(',');
                    s.push_str(&o);
                }
                v.push(s);
            }
            Command::Simulate(q) => v.extend(q.to_args()),
            Command::Capture(c) => v.extend(c.to_args()),
            Command::ReloadServices | Command::Help | Command::Reload => {}
        }
        v
    }
}

/// What was wrong with a cluamgr command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// No primary flag.
    NoCommand,
    /// More than one primary flag (or one twice).
    TooManyCommands,
    /// A flag that needs a value was last.
    MissingArgument {
        /// The flag.
        flag: &'static str,
        /// What it needs, e.g. `FILE`.
        needs: &'static str,
    },
    /// An argument cluamgr does not know.
    UnknownArgument(String),
    /// A positional argument nothing takes.
    UnexpectedArgument(String),
    /// `--member` without `-a`.
    MemberWithoutAlias,
    /// `--member` twice.
    MemberTwice,
    /// `--member` with a name that is not a member name ([`crate::name::validate_name`]).
    BadMember {
        /// The name as given.
        name: String,
        /// The rule it breaks.
        why: crate::name::NameError,
    },
    /// `--json` with a command that is not a read command (`-s`, `simulate`).
    JsonMisplaced,
    /// `--check` given to [`parse_args`], or without `-F`.
    CheckMisplaced,
    /// An option the flag's list does not define.
    UnknownOption {
        /// `-a`, `-r` or `--register`.
        flag: &'static str,
        /// The option name as written.
        option: String,
        /// The options the flag accepts.
        expected: &'static str,
    },
    /// An empty element in an option list.
    EmptyOption {
        /// The flag.
        flag: &'static str,
    },
    /// The same option twice.
    DuplicateOption {
        /// The flag.
        flag: &'static str,
        /// The option.
        option: String,
    },
    /// `selw` / `selp` / `rpri` / `mask` / `alias` without `=value`.
    MissingValue {
        /// The option.
        option: &'static str,
        /// The accepted values.
        expected: String,
    },
    /// `join=...` and the like.
    UnexpectedValue {
        /// The option.
        option: String,
        /// The value given.
        value: String,
    },
    /// A numeric option whose value is not a decimal number.
    NotANumber {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// A numeric option outside its range.
    OutOfRange {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// Two options that exclude each other.
    Exclusive {
        /// The first.
        a: &'static str,
        /// The second.
        b: &'static str,
    },
    /// `-a` without `alias=`.
    MissingAlias,
    /// `alias=` value that is not DEFAULTALIAS, an address or a host name.
    BadAlias(String),
    /// `virtual=` value other than `t` / `f`.
    BadVirtual(String),
    /// `vmac=` value other than `t` / `f`.
    BadVmac(String),
    /// `mask=` value that is not a contiguous netmask.
    BadMask(String),
    /// `--register` port/protocol.
    Register(PortProtoError),
    /// `--register` service options (unknown option or CA9 exclusion).
    ServiceOptions(ServiceOptionError),
    /// `simulate`'s arguments.
    Simulate(SimulateError),
    /// `capture`'s bounds.
    Capture(crate::capture::CaptureError),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CommandError::*;
        match self {
            NoCommand => f.write_str(
                "no command given (one of -a, -f, -F, -h, -r, -s, --register; -h for help)",
            ),
            TooManyCommands => {
                f.write_str("only one of -a, -f, -F, -h, -r, -s, --register may be given")
            }
            MissingArgument { flag, needs } => write!(f, "{flag} needs {needs}"),
            UnknownArgument(a) => write!(f, "unknown argument `{a}` (-h for help)"),
            UnexpectedArgument(a) => write!(f, "unexpected argument `{a}`"),
            MemberWithoutAlias => f.write_str("--member NAME only goes with -a"),
            MemberTwice => f.write_str("--member is given twice"),
            BadMember { name, .. } => write!(
                f,
                "--member `{name}` is not a member name (letters, digits, `-`, `_`, `.`)"
            ),
            JsonMisplaced => f.write_str("--json only goes with -s and simulate (the read commands)"),
            CheckMisplaced => f.write_str(
                "--check only goes with -F FILE, and is done by cluamgr itself, not by aliasd",
            ),
            UnknownOption {
                flag,
                option,
                expected,
            } => write!(f, "unknown {flag} option `{option}` (expected {expected})"),
            EmptyOption { flag } => write!(
                f,
                "empty option in the {flag} list (two commas in a row, or a comma at either end)"
            ),
            DuplicateOption { flag, option } => {
                write!(f, "{flag} option `{option}` is given twice")
            }
            MissingValue { option, expected } => {
                write!(f, "`{option}` needs a value: {expected}")
            }
            UnexpectedValue { option, value } => {
                write!(f, "`{option}` takes no value (got `{option}={value}`)")
            }
            NotANumber {
                option,
                value,
                min,
                max,
            } => write!(
                f,
                "{option}=`{value}` is not a number (expected {option}=N, N in {min}..={max})"
            ),
            OutOfRange {
                option,
                value,
                min,
                max,
            } => write!(f, "{option}={value} is out of range {min}..={max}"),
            Exclusive { a, b } => write!(f, "{a} and {b} are mutually exclusive"),
            MissingAlias => f.write_str("-a needs alias=NAME (DEFAULTALIAS, an address or a host name)"),
            BadAlias(a) => write!(
                f,
                "alias `{a}` is not DEFAULTALIAS, an IPv4 address or a host name (letters, digits, `-`, `.`)"
            ),
            BadVirtual(v) => write!(
                f,
                "virtual=`{v}`: expected `virtual`, `virtual=t` or `virtual=f`"
            ),
            BadVmac(v) => write!(f, "vmac=`{v}`: expected `vmac`, `vmac=t` or `vmac=f`"),
            BadMask(m) => write!(
                f,
                "mask=`{m}` is not a netmask (a dotted quad of contiguous one bits, e.g. 255.255.255.0)"
            ),
            Register(e) => write!(f, "--register: {e}"),
            ServiceOptions(m) => write!(f, "--register: {m}"),
            Simulate(e) => e.fmt(f),
            Capture(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CommandError {}

const A_OPTIONS: &str = "alias, join, leave, selw, selp, rpri, virtual, mask or vmac";
const R_OPTIONS: &str = "resvok or noresvok";

/// The `-h` text.
pub const USAGE: &str = "\
usage: cluamgr -a alias=ALIAS,option[=value][,option]... [--member MEMBER]
       cluamgr -f
       cluamgr -F FILE [--check]
       cluamgr -h
       cluamgr -r option[,option]...
       cluamgr -s [ALIAS | all] [--json]
       cluamgr --reload
       cluamgr --register PORT/PROTO[,option]...
       cluamgr simulate tcp|udp SOURCE:PORT DESTINATION:PORT [--syn | --ack] [--json]

Exactly one of -a, -f, -F, -h, -r, -s, --reload, --register, simulate per call.

  -a alias=ALIAS,...  set this member's attributes for ALIAS; ALIAS is DEFAULTALIAS (the
                      default cluster alias), a dotted-quad address or a host name.
                      Options (comma-separated, no spaces):
        join            join the alias (receive its connections)
        leave           leave the alias; established connections drain (not with join)
        selw=N          selection weight, 1..=100, default 1: connections per round-robin turn
        selp=N          selection priority, 0..=100000, default 1: only the members with the
                        highest selp receive new connections
        rpri=N          router priority, 0..=100000, default 1: the highest answers ARP for the
                        alias on a common subnet
        virtual[=t|f]   the alias is (t, the default when no value is given) or is not (f) on a
                        virtual subnet
        mask=NETMASK    the alias's subnet mask, dotted (e.g. 255.255.255.0)
        vmac[=t|f]      the alias has (t) or has not (f) a virtual MAC that follows its
                        proxy-ARP master (CA5)
  --member MEMBER     with -a only (clua extension): act for configured member MEMBER
  -f                  reload the configured clua_services file
  -F FILE             load clua_services file FILE instead
  -h                  print this help
  -r option,...       router options: resvok (advertise RFC 1918 alias addresses) or noresvok
                      (default: do not)
  -s [ALIAS | all]    show one alias, or everything (default all): members, per-alias
                      traffic, in_single active members, ports, workers (rates since the
                      previous -s, table occupancy, drops); --json: the stable JSON form
  --reload            re-read aliasd's configuration file, as SIGHUP does: all or nothing,
                      established connections kept; the reply says what changed
  --register PORT/PROTO[,option]...
                      register a service as clua_registerservice() would: options are the
                      clua_services(4) ones (in_single, in_multi, in_noalias, in_nolocal,
                      out_alias, static), default in_single; in_multi takes one policy:
                      wrr (default), weighted, sticky or wildcard_sticky
  simulate PROTO SOURCE:PORT DESTINATION:PORT [--syn | --ack] [--json]
                      which member the router's snapshot gives this flow and why (alias,
                      service mode and policy, eligible tier, members); changes nothing.
                      --syn (default for tcp): a new connection; --ack: a non-SYN segment
                      that misses the connection table; --json: the stable JSON form
  capture PORT [--rx] [--tx] [--drop] [--all] [-c|--count N] [--seconds S]
          [-s|--snaplen N] [-w FILE|-] [--json]
                      the port's frames (default --rx --tx; --drop: dropped ones, the
                      reason as the packet's comment) into a pcapng file tcpdump and
                      Wireshark read (default PORT.pcapng); stops after N packets (default
                      1000, at most 10000) or S seconds (default 10, at most 300)
";

/// A parsed command line plus the CLI-local `--check` flag (valid only with `-F`) and
/// `--json` (read commands only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// The command.
    pub command: Command,
    /// `-F FILE --check`: validate the file locally instead of sending the command.
    pub check: bool,
    /// `--json`: the reply of a read command in its JSON form (sent as
    /// [`crate::protocol::Request::json`]).
    pub json: bool,
}

/// `-a`'s value: the alias and the attributes to set (clap value parser [`parse_alias_list`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasList {
    /// `alias=`.
    pub alias: AliasRef,
    /// The other options.
    pub options: AliasOptions,
}

/// `-r`'s value: `Some(true)` resvok, `Some(false)` noresvok.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouterList(pub Option<bool>);

/// `--register`'s value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Port.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
    /// clua_services(4) options.
    pub options: ServiceOptions,
}

/// cluamgr's arguments as clap sees them: one primary flag (the `primary` group), each value
/// parsed into its typed form by its value parser. `cluamgr` itself flattens this into its own
/// arguments (`--socket`); clu_alias.config lines and the member agent go through
/// [`parse_args`].
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("primary")
        .required(true)
        .multiple(false)
        .args(["alias", "reload", "load", "help", "router", "show", "register", "reload_config"])
))]
pub struct CommandArgs {
    /// `-a alias=NAME,option[=value]...`.
    #[arg(short = 'a', value_name = "alias=NAME[,option[=value]]...", value_parser = parse_alias_list_arg)]
    pub alias: Option<AliasList>,
    /// `-f`.
    #[arg(short = 'f')]
    pub reload: bool,
    /// `-F FILE`.
    #[arg(short = 'F', value_name = "FILE", value_parser = parse_file)]
    pub load: Option<String>,
    /// `-h`, `--help`.
    #[arg(short = 'h', long = "help")]
    pub help: bool,
    /// `-r option[,option]...`.
    #[arg(short = 'r', value_name = "option[,option]...", value_parser = parse_router_list_arg)]
    pub router: Option<RouterList>,
    /// `-s [ALIAS | all]`.
    #[arg(short = 's', value_name = "ALIAS", num_args = 0..=1, default_missing_value = "all", value_parser = parse_show)]
    pub show: Option<ShowWhat>,
    /// `--register PORT/PROTO[,option]...`.
    #[arg(long = "register", value_name = "PORT/PROTO[,option]...", value_parser = parse_register)]
    pub register: Option<Registration>,
    /// `--member NAME` (with `-a` only).
    #[arg(long = "member", value_name = "NAME", value_parser = parse_member)]
    pub member: Option<String>,
    /// `--check` (with `-F` only; the CLI's local mode).
    #[arg(long = "check")]
    pub check: bool,
    /// `--json` (with `-s` only; `simulate` takes its own).
    #[arg(long = "json")]
    pub json: bool,
    /// `--reload`: re-read aliasd's configuration file (SIGHUP).
    #[arg(long = "reload")]
    pub reload_config: bool,
    /// `simulate ...`: a subcommand, for its positional arguments; it is a primary command too
    /// (checked in [`CommandArgs::into_invocation`]).
    #[command(subcommand)]
    pub simulate: Option<SimulateCommand>,
}

/// The subcommands: `simulate`, `capture`.
#[derive(clap::Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum SimulateCommand {
    /// `simulate PROTO SOURCE:PORT DESTINATION:PORT [--syn|--ack] [--json]`.
    #[command(disable_help_flag = true)]
    Simulate(SimulateArgs),
    /// `capture PORT [--rx|--tx|--drop|--all]... [--count N] [--seconds S] [-w FILE]`.
    #[command(disable_help_flag = true)]
    Capture(CaptureArgs),
}

/// `capture`'s arguments (see [`crate::capture`]). No direction given: `--rx --tx`, like
/// dumpcap; `--all` is all three (a dropped frame then appears twice: received, and dropped
/// with its reason).
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct CaptureArgs {
    /// The port's name (aliasd.toml `[[port]] name`).
    #[arg(value_name = "PORT")]
    pub port: String,
    /// Frames received on the port.
    #[arg(long = "rx")]
    pub rx: bool,
    /// Frames sent on the port.
    #[arg(long = "tx")]
    pub tx: bool,
    /// Frames received on the port and dropped, with the reason.
    #[arg(long = "drop")]
    pub drop: bool,
    /// `--rx --tx --drop`.
    #[arg(long = "all")]
    pub all: bool,
    /// Stop after N packets.
    #[arg(long = "count", short = 'c', value_name = "N", default_value_t = crate::capture::DEFAULT_COUNT)]
    pub count: u32,
    /// Stop after S seconds.
    #[arg(long = "seconds", value_name = "S", default_value_t = crate::capture::DEFAULT_SECONDS)]
    pub seconds: u32,
    /// Bytes kept per frame.
    #[arg(long = "snaplen", short = 's', value_name = "N", default_value_t = crate::capture::DEFAULT_SNAPLEN)]
    pub snaplen: u32,
    /// The pcapng file (`-`: standard output). Default `PORT.pcapng` in the current directory.
    #[arg(short = 'w', value_name = "FILE")]
    pub file: Option<String>,
    /// Print the summary as JSON.
    #[arg(long = "json")]
    pub json: bool,
}

impl CaptureArgs {
    /// The request, its bounds checked.
    ///
    /// # Errors
    /// [`CommandError::Capture`] for a bound out of range.
    pub fn into_request(self) -> Result<crate::capture::CaptureRequest, CommandError> {
        let none = !(self.rx || self.tx || self.drop);
        let r = crate::capture::CaptureRequest {
            file: self.file.unwrap_or_else(|| format!("{}.pcapng", self.port)),
            port: self.port,
            rx: self.all || self.rx || none,
            tx: self.all || self.tx || none,
            drop: self.all || self.drop,
            count: self.count,
            seconds: self.seconds,
            snaplen: self.snaplen,
            json: self.json,
        };
        r.validate().map_err(CommandError::Capture)?;
        Ok(r)
    }
}

/// `simulate`'s arguments, each typed by its value parser.
#[derive(clap::Args, Clone, Debug, PartialEq, Eq)]
pub struct SimulateArgs {
    /// tcp or udp.
    #[arg(value_name = "PROTO", value_parser = parse_sim_proto)]
    pub proto: Proto,
    /// The client's address and port.
    #[arg(value_name = "SOURCE:PORT", value_parser = parse_sim_source)]
    pub src: std::net::SocketAddrV4,
    /// The alias address and port.
    #[arg(value_name = "DESTINATION:PORT", value_parser = parse_sim_destination)]
    pub dst: std::net::SocketAddrV4,
    /// A client SYN (the default for tcp).
    #[arg(long = "syn")]
    pub syn: bool,
    /// A non-SYN segment that misses the connection table.
    #[arg(long = "ack")]
    pub ack: bool,
    /// Reply in JSON.
    #[arg(long = "json")]
    pub json: bool,
}

impl SimulateArgs {
    /// The query, once `--syn`/`--ack` are checked against each other and the protocol.
    ///
    /// # Errors
    /// [`SimulateError::SynAndAck`], [`SimulateError::FlagWithUdp`].
    pub fn into_query(self) -> Result<Query, SimulateError> {
        if self.syn && self.ack {
            return Err(SimulateError::SynAndAck);
        }
        if self.proto == Proto::Udp && (self.syn || self.ack) {
            return Err(SimulateError::FlagWithUdp(if self.syn {
                "--syn"
            } else {
                "--ack"
            }));
        }
        Ok(Query {
            proto: self.proto,
            src: self.src,
            dst: self.dst,
            segment: if self.ack { Segment::Ack } else { Segment::Syn },
            json: self.json,
        })
    }
}

fn parse_sim_proto(v: &str) -> Result<Proto, CommandError> {
    parse_proto(v).map_err(CommandError::Simulate)
}

fn parse_sim_source(v: &str) -> Result<std::net::SocketAddrV4, CommandError> {
    parse_addr_port("source", v).map_err(CommandError::Simulate)
}

fn parse_sim_destination(v: &str) -> Result<std::net::SocketAddrV4, CommandError> {
    parse_addr_port("destination", v).map_err(CommandError::Simulate)
}

#[derive(clap::Parser, Debug)]
#[command(
    name = "cluamgr",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    subcommand_negates_reqs = true
)]
struct Argv {
    #[command(flatten)]
    args: CommandArgs,
}

impl CommandArgs {
    /// The command, once the rules clap's definition cannot say are checked: `--member` only
    /// with `-a`, `--check` only with `-F`.
    ///
    /// # Errors
    /// [`CommandError::MemberWithoutAlias`], [`CommandError::CheckMisplaced`].
    pub fn into_invocation(self) -> Result<Invocation, CommandError> {
        if self.member.is_some() && self.alias.is_none() {
            return Err(CommandError::MemberWithoutAlias);
        }
        if self.check && self.load.is_none() {
            return Err(CommandError::CheckMisplaced);
        }
        let others = self.primary_given();
        if let Some(SimulateCommand::Capture(args)) = self.simulate {
            return capture_invocation(others, args);
        }
        if self.json && self.show.is_none() {
            return Err(CommandError::JsonMisplaced);
        }
        if let Some(SimulateCommand::Simulate(args)) = self.simulate {
            let others = self.alias.is_some()
                || self.reload
                || self.load.is_some()
                || self.help
                || self.router.is_some()
                || self.show.is_some()
                || self.reload_config
                || self.register.is_some();
            if others {
                return Err(CommandError::TooManyCommands);
            }
            let query = args.into_query().map_err(CommandError::Simulate)?;
            return Ok(Invocation {
                json: query.json,
                command: Command::Simulate(query),
                check: false,
            });
        }
        let command = if let Some(AliasList { alias, options }) = self.alias {
            Command::Alias {
                alias,
                options,
                member: self.member,
            }
        } else if self.reload {
            Command::ReloadServices
        } else if let Some(path) = self.load {
            Command::LoadServices { path }
        } else if self.help {
            Command::Help
        } else if let Some(RouterList(resvok)) = self.router {
            Command::Router { resvok }
        } else if let Some(what) = self.show {
            Command::Show(what)
        } else if self.reload_config {
            Command::Reload
        } else if let Some(Registration {
            port,
            proto,
            options,
        }) = self.register
        {
            Command::Register {
                port,
                proto,
                options,
            }
        } else {
            return Err(CommandError::NoCommand);
        };
        Ok(Invocation {
            command,
            check: self.check,
            json: self.json,
        })
    }
}

impl CommandArgs {
    /// Whether a primary flag (other than a subcommand) is given.
    fn primary_given(&self) -> bool {
        self.alias.is_some()
            || self.reload
            || self.load.is_some()
            || self.help
            || self.router.is_some()
            || self.show.is_some()
            || self.reload_config
            || self.register.is_some()
    }
}

/// `capture ...` as a command: alone on the line.
fn capture_invocation(others: bool, args: CaptureArgs) -> Result<Invocation, CommandError> {
    if others {
        return Err(CommandError::TooManyCommands);
    }
    Ok(Invocation {
        command: Command::Capture(args.into_request()?),
        check: false,
        json: false,
    })
}

/// Parses cluamgr's arguments (without argv\[0\]) into a [`Command`]. `--check` is refused here:
/// it is the CLI's local mode (see [`parse_invocation`]).
pub fn parse_args<I, S>(args: I) -> Result<Command, CommandError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let inv = parse_invocation(args)?;
    if inv.check {
        return Err(CommandError::CheckMisplaced);
    }
    Ok(inv.command)
}

/// Like [`parse_args`], but also accepts `--check` after `-F FILE` (and nowhere else).
pub fn parse_invocation<I, S>(args: I) -> Result<Invocation, CommandError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    use clap::Parser;
    let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_string()).collect();
    refuse_clusters(&args)?;
    Argv::try_parse_from(&args)
        .map_err(|e| from_clap(&e))?
        .args
        .into_invocation()
}

/// The value-less flags do not cluster (`-fx` is not `-f -x`): one primary flag per call, and a
/// typo next to one must not read as a second command. clap would split them; call this first.
///
/// # Errors
/// [`CommandError::UnknownArgument`] naming the whole argument.
pub fn refuse_clusters<S: AsRef<str>>(args: &[S]) -> Result<(), CommandError> {
    match args
        .iter()
        .map(AsRef::as_ref)
        .find(|a| (a.starts_with("-f") || a.starts_with("-h")) && a.len() > 2)
    {
        Some(a) => Err(CommandError::UnknownArgument(a.to_string())),
        None => Ok(()),
    }
}

/// The [`CommandError`] for what clap refused. The value parsers' own errors come back as they
/// were; clap's kinds map onto the grammar's.
pub fn from_clap(e: &clap::Error) -> CommandError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if let Some(c) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<CommandError>()) {
        return c.clone();
    }
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(a)) => a.clone(),
        Some(ContextValue::Strings(a)) => a.join(" "),
        _ => String::new(),
    };
    if e.kind() == ErrorKind::MissingRequiredArgument
        && ["<PROTO>", "<SOURCE:PORT>", "<DESTINATION:PORT>"]
            .iter()
            .any(|p| arg.contains(p))
    {
        return CommandError::MissingArgument {
            flag: "simulate",
            needs:
                "PROTO SOURCE:PORT DESTINATION:PORT (e.g. tcp 203.0.113.7:40000 198.51.100.100:80)",
        };
    }
    if e.kind() == ErrorKind::InvalidSubcommand {
        if let Some(ContextValue::String(a)) = e.get(ContextKind::InvalidSubcommand) {
            return CommandError::UnexpectedArgument(a.clone());
        }
    }
    // clap names an option with its value name (`-F <FILE>`); the flag is the first word.
    let flag = arg.split([' ', '=']).next().unwrap_or("");
    match e.kind() {
        ErrorKind::MissingRequiredArgument => CommandError::NoCommand,
        ErrorKind::ArgumentConflict if flag == "--member" => CommandError::MemberTwice,
        ErrorKind::ArgumentConflict => CommandError::TooManyCommands,
        ErrorKind::InvalidValue | ErrorKind::NoEquals => match missing(flag) {
            Some(m) => m,
            None => CommandError::UnknownArgument(arg),
        },
        ErrorKind::UnknownArgument if arg.starts_with('-') && arg.len() > 1 => {
            CommandError::UnknownArgument(arg)
        }
        ErrorKind::UnknownArgument => CommandError::UnexpectedArgument(arg),
        _ => CommandError::UnknownArgument(arg),
    }
}

fn missing(flag: &str) -> Option<CommandError> {
    let needs = match flag {
        "-a" => "alias=NAME[,option[=value]]...",
        "-F" => "a FILE",
        "-r" => "an option list (resvok or noresvok)",
        "--register" => "PORT/PROTO[,option]...",
        "--member" => "a member NAME",
        _ => return None,
    };
    let flag = ["-a", "-F", "-r", "--register", "--member"]
        .into_iter()
        .find(|f| *f == flag)?;
    Some(CommandError::MissingArgument { flag, needs })
}

fn parse_file(v: &str) -> Result<String, CommandError> {
    if v.is_empty() {
        return Err(CommandError::MissingArgument {
            flag: "-F",
            needs: "a FILE",
        });
    }
    Ok(v.to_string())
}

fn parse_member(v: &str) -> Result<String, CommandError> {
    match crate::name::validate_name(v.as_bytes()) {
        Ok(()) => Ok(v.to_string()),
        Err(why) => Err(CommandError::BadMember {
            name: v.to_string(),
            why,
        }),
    }
}

fn parse_show(v: &str) -> Result<ShowWhat, CommandError> {
    if v.is_empty() || v == "all" {
        Ok(ShowWhat::All)
    } else {
        Ok(ShowWhat::Alias(parse_alias_ref(v)?))
    }
}

fn parse_alias_list_arg(v: &str) -> Result<AliasList, CommandError> {
    parse_alias_list(v).map(|(alias, options)| AliasList { alias, options })
}

fn parse_router_list_arg(v: &str) -> Result<RouterList, CommandError> {
    parse_router_list(v).map(RouterList)
}

/// Parses an `alias=` value: `DEFAULTALIAS`, a dotted quad, or a host name.
pub fn parse_alias_ref(s: &str) -> Result<AliasRef, CommandError> {
    if s.eq_ignore_ascii_case("DEFAULTALIAS") {
        return Ok(AliasRef::Default);
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(AliasRef::Addr(a));
    }
    if is_hostname(s) {
        Ok(AliasRef::Name(s.to_string()))
    } else {
        Err(CommandError::BadAlias(s.to_string()))
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and `-`, each 1..=63 long, not
/// starting or ending with `-`; at most 253 characters; not all-numeric (a malformed address).
fn is_hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels_ok = s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    labels_ok && !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn parse_num(
    option: &'static str,
    value: &str,
    range: core::ops::RangeInclusive<u32>,
) -> Result<u32, CommandError> {
    let (min, max) = (*range.start(), *range.end());
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::NotANumber {
            option,
            value: value.to_string(),
            min,
            max,
        });
    }
    match value.parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(CommandError::OutOfRange {
            option,
            value: value.to_string(),
            min,
            max,
        }),
    }
}

/// A contiguous netmask with at least one bit set.
/// Parses a contiguous dotted netmask (`255.255.255.0`); 0.0.0.0 is refused.
pub fn parse_mask(s: &str) -> Result<Ipv4Addr, CommandError> {
    let m: Ipv4Addr = s.parse().map_err(|_| CommandError::BadMask(s.into()))?;
    let bits = u32::from(m);
    if bits == 0 || bits.leading_ones() + bits.trailing_zeros() != 32 {
        return Err(CommandError::BadMask(s.into()));
    }
    Ok(m)
}

fn range_text(option: &str, r: &core::ops::RangeInclusive<u32>) -> String {
    format!("{option}=N, N in {}..={}", r.start(), r.end())
}

fn parse_alias_list(list: &str) -> Result<(AliasRef, AliasOptions), CommandError> {
    const F: &str = "-a";
    let mut alias = None;
    let mut o = AliasOptions::default();
    let mut seen: Vec<&str> = Vec::new();
    for item in list.split(',') {
        if item.is_empty() {
            return Err(CommandError::EmptyOption { flag: F });
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        let known = [
            "alias", "join", "leave", "selw", "selp", "rpri", "virtual", "mask", "vmac",
        ];
        let Some(&name) = known.iter().find(|k| **k == name) else {
            return Err(CommandError::UnknownOption {
                flag: F,
                option: name.to_string(),
                expected: A_OPTIONS,
            });
        };
        if seen.contains(&name) {
            return Err(CommandError::DuplicateOption {
                flag: F,
                option: name.to_string(),
            });
        }
        seen.push(name);
        let need = |expected: String| {
            value.ok_or(CommandError::MissingValue {
                option: name,
                expected,
            })
        };
        let no_value = || match value {
            Some(v) => Err(CommandError::UnexpectedValue {
                option: name.to_string(),
                value: v.to_string(),
            }),
            None => Ok(()),
        };
        match name {
            "alias" => {
                let v = need("alias=NAME (DEFAULTALIAS, an address or a host name)".into())?;
                alias = Some(parse_alias_ref(v)?);
            }
            "join" => {
                no_value()?;
                o.join = true;
            }
            "leave" => {
                no_value()?;
                o.leave = true;
            }
            "selw" => {
                o.selw = Some(parse_num(
                    "selw",
                    need(range_text("selw", &SELW_RANGE))?,
                    SELW_RANGE,
                )?)
            }
            "selp" => {
                o.selp = Some(parse_num(
                    "selp",
                    need(range_text("selp", &SELP_RANGE))?,
                    SELP_RANGE,
                )?)
            }
            "rpri" => {
                o.rpri = Some(parse_num(
                    "rpri",
                    need(range_text("rpri", &RPRI_RANGE))?,
                    RPRI_RANGE,
                )?)
            }
            "virtual" => {
                o.virtual_subnet = Some(match value {
                    None | Some("t") => true,
                    Some("f") => false,
                    Some(v) => return Err(CommandError::BadVirtual(v.to_string())),
                })
            }
            "vmac" => {
                o.vmac = Some(match value {
                    None | Some("t") => true,
                    Some("f") => false,
                    Some(v) => return Err(CommandError::BadVmac(v.to_string())),
                })
            }
            "mask" => {
                o.mask = Some(parse_mask(need(
                    "mask=NETMASK (dotted, e.g. 255.255.255.0)".into(),
                )?)?)
            }
            _ => unreachable!("checked against `known`"),
        }
    }
    if o.join && o.leave {
        return Err(CommandError::Exclusive {
            a: "join",
            b: "leave",
        });
    }
    let alias = alias.ok_or(CommandError::MissingAlias)?;
    Ok((alias, o))
}

fn parse_router_list(list: &str) -> Result<Option<bool>, CommandError> {
    const F: &str = "-r";
    let mut resvok = None;
    let mut seen: Vec<&str> = Vec::new();
    for item in list.split(',') {
        if item.is_empty() {
            return Err(CommandError::EmptyOption { flag: F });
        }
        let v = match item {
            "resvok" => true,
            "noresvok" => false,
            other => {
                return Err(CommandError::UnknownOption {
                    flag: F,
                    option: other.to_string(),
                    expected: R_OPTIONS,
                })
            }
        };
        if seen.contains(&item) {
            return Err(CommandError::DuplicateOption {
                flag: F,
                option: item.to_string(),
            });
        }
        seen.push(item);
        if resvok.is_some_and(|r| r != v) {
            return Err(CommandError::Exclusive {
                a: "resvok",
                b: "noresvok",
            });
        }
        resvok = Some(v);
    }
    Ok(resvok)
}

fn parse_register(v: &str) -> Result<Registration, CommandError> {
    let (pp, opts) = match v.split_once(',') {
        Some((pp, o)) => (pp, Some(o)),
        None => (v, None),
    };
    let (port, proto) = parse_port_proto(pp).map_err(CommandError::Register)?;
    let mut options = ServiceOptions::default();
    if let Some(list) = opts {
        let mut seen: Vec<&str> = Vec::new();
        for word in list.split(',') {
            if word.is_empty() {
                return Err(CommandError::EmptyOption { flag: "--register" });
            }
            if seen.contains(&word) {
                return Err(CommandError::DuplicateOption {
                    flag: "--register",
                    option: word.to_string(),
                });
            }
            seen.push(word);
            options.set(word).map_err(CommandError::ServiceOptions)?;
        }
        options.check().map_err(CommandError::ServiceOptions)?;
    }
    Ok(Registration {
        port,
        proto,
        options,
    })
}

/// The address of `alias` from /etc/hosts-format text (`ADDRESS NAME [ALIASES...]`, `#`
/// comments): an `Addr` is itself, a `Name` is the first IPv4 line naming it (letter case
/// ignored), `Default` is `None` (aliasd knows the default alias's address).
pub fn resolve_hosts(alias: &AliasRef, hosts_text: &str) -> Option<Ipv4Addr> {
    let name = match alias {
        AliasRef::Default => return None,
        AliasRef::Addr(a) => return Some(*a),
        AliasRef::Name(n) => n,
    };
    hosts_text.lines().find_map(|line| {
        let line = line.split_once('#').map_or(line, |(c, _)| c);
        let mut fields = line.split_ascii_whitespace();
        let addr: Ipv4Addr = fields.next()?.parse().ok()?;
        fields.any(|f| f.eq_ignore_ascii_case(name)).then_some(addr)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, CommandError> {
        parse_args(s.split_ascii_whitespace())
    }

    fn err(s: &str) -> String {
        p(s).unwrap_err().to_string()
    }

    fn alias(alias: AliasRef, options: AliasOptions) -> Command {
        Command::Alias {
            alias,
            options,
            member: None,
        }
    }

    #[test]
    fn seed_readme_examples() {
        assert_eq!(
            p("-a alias=DEFAULTALIAS,selw=3,selp=1,join").unwrap(),
            alias(
                AliasRef::Default,
                AliasOptions {
                    join: true,
                    selw: Some(3),
                    selp: Some(1),
                    ..Default::default()
                }
            )
        );
        assert_eq!(
            p("-a alias=gourmet,join,selw=50").unwrap(),
            alias(
                AliasRef::Name("gourmet".into()),
                AliasOptions {
                    join: true,
                    selw: Some(50),
                    ..Default::default()
                }
            )
        );
        assert_eq!(
            p("-a alias=mailfeed,rpri=100").unwrap(),
            alias(
                AliasRef::Name("mailfeed".into()),
                AliasOptions {
                    rpri: Some(100),
                    ..Default::default()
                }
            )
        );
    }

    #[test]
    fn every_a_option() {
        let c = p("-a join,alias=10.0.0.100,selw=100,selp=0,rpri=100000,virtual,mask=255.255.255.0,vmac --member m2").unwrap();
        assert_eq!(
            c,
            Command::Alias {
                alias: AliasRef::Addr(Ipv4Addr::new(10, 0, 0, 100)),
                options: AliasOptions {
                    join: true,
                    leave: false,
                    selw: Some(100),
                    selp: Some(0),
                    rpri: Some(100_000),
                    virtual_subnet: Some(true),
                    mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
                    vmac: Some(true),
                },
                member: Some("m2".into()),
            }
        );
        let o = |s: &str| match p(s).unwrap() {
            Command::Alias { options, .. } => options,
            _ => panic!(),
        };
        assert!(o("-a alias=x,leave").leave);
        assert_eq!(o("-a alias=x,virtual=t").virtual_subnet, Some(true));
        assert_eq!(o("-a alias=x,vmac=f").vmac, Some(false));
        assert_eq!(
            p("-a alias=x,vmac=yes").unwrap_err().to_string(),
            "vmac=`yes`: expected `vmac`, `vmac=t` or `vmac=f`"
        );
        assert_eq!(o("-a alias=x,virtual=f").virtual_subnet, Some(false));
        assert_eq!(o("-a alias=x,selw=1").selw, Some(1));
        assert_eq!(o("-a alias=x,rpri=0").rpri, Some(0));
        assert_eq!(
            o("-a alias=x,mask=255.255.255.255").mask,
            Some(Ipv4Addr::BROADCAST)
        );
        assert_eq!(
            o("-a alias=x,mask=128.0.0.0").mask,
            Some(Ipv4Addr::new(128, 0, 0, 0))
        );
        assert_eq!(o("-a alias=x"), AliasOptions::default());
        // Attached and `=` forms.
        assert_eq!(
            p("-aalias=x,join --member=m1").unwrap(),
            Command::Alias {
                alias: AliasRef::Name("x".into()),
                options: AliasOptions {
                    join: true,
                    ..Default::default()
                },
                member: Some("m1".into()),
            }
        );
        assert_eq!(
            p("--member m1 -a alias=defaultalias").unwrap(),
            Command::Alias {
                alias: AliasRef::Default,
                options: AliasOptions::default(),
                member: Some("m1".into()),
            }
        );
    }

    /// Issue 11: `--json` goes with the read commands only; `--reload` is a primary command.
    #[test]
    fn json_and_reload() {
        let inv = |s: &str| parse_invocation(s.split_whitespace());
        let i = inv("-s --json").unwrap();
        assert_eq!((i.command, i.json), (Command::Show(ShowWhat::All), true));
        let i = inv("-s web --json").unwrap();
        assert_eq!(
            (i.command, i.json),
            (
                Command::Show(ShowWhat::Alias(AliasRef::Name("web".into()))),
                true
            )
        );
        assert!(!inv("-s").unwrap().json);
        let i = inv("simulate tcp 203.0.113.7:40000 198.51.100.100:80 --json").unwrap();
        assert!(i.json);
        for bad in [
            "-f --json",
            "-a alias=web,selw=2 --member m1 --json",
            "--reload --json",
        ] {
            assert_eq!(inv(bad).unwrap_err(), CommandError::JsonMisplaced, "{bad}");
        }
        assert_eq!(p("--reload").unwrap(), Command::Reload);
        assert_eq!(Command::Reload.to_args(), ["--reload"]);
        assert_eq!(p("--reload -f").unwrap_err(), CommandError::TooManyCommands);
        // On the wire: absent `json` is text (an older cluamgr), and false is not sent.
        let r: crate::protocol::Request = serde_json::from_str(r#"{"command":"Help"}"#).unwrap();
        assert!(!r.json);
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"command":"Help"}"#);
    }

    #[test]
    fn every_other_flag() {
        assert_eq!(p("-f").unwrap(), Command::ReloadServices);
        assert_eq!(
            p("-F /etc/clua_services.new").unwrap(),
            Command::LoadServices {
                path: "/etc/clua_services.new".into()
            }
        );
        assert_eq!(
            p("-Fsvc").unwrap(),
            Command::LoadServices { path: "svc".into() }
        );
        assert_eq!(p("-h").unwrap(), Command::Help);
        assert_eq!(p("--help").unwrap(), Command::Help);
        assert_eq!(
            p("-r resvok").unwrap(),
            Command::Router { resvok: Some(true) }
        );
        assert_eq!(
            p("-r noresvok").unwrap(),
            Command::Router {
                resvok: Some(false)
            }
        );
        assert_eq!(
            p("-r resvok,resvok").unwrap_err(),
            CommandError::DuplicateOption {
                flag: "-r",
                option: "resvok".into()
            }
        );
        assert_eq!(p("-s").unwrap(), Command::Show(ShowWhat::All));
        assert_eq!(p("-s all").unwrap(), Command::Show(ShowWhat::All));
        assert_eq!(
            p("-s gourmet").unwrap(),
            Command::Show(ShowWhat::Alias(AliasRef::Name("gourmet".into())))
        );
        assert_eq!(
            p("-s DEFAULTALIAS").unwrap(),
            Command::Show(ShowWhat::Alias(AliasRef::Default))
        );
        assert_eq!(
            p("-s 10.1.2.3").unwrap(),
            Command::Show(ShowWhat::Alias(AliasRef::Addr(Ipv4Addr::new(10, 1, 2, 3))))
        );
        assert_eq!(
            p("--register 7001/udp,in_multi").unwrap(),
            Command::Register {
                port: 7001,
                proto: Proto::Udp,
                options: ServiceOptions {
                    in_multi: true,
                    ..Default::default()
                }
            }
        );
        assert_eq!(
            p("--register 513/tcp,in_multi,out_alias,static").unwrap(),
            Command::Register {
                port: 513,
                proto: Proto::Tcp,
                options: ServiceOptions {
                    in_multi: true,
                    out_alias: true,
                    static_port: true,
                    ..Default::default()
                }
            }
        );
        assert_eq!(
            p("--register=80/tcp").unwrap(),
            Command::Register {
                port: 80,
                proto: Proto::Tcp,
                options: ServiceOptions::default()
            }
        );
    }

    #[test]
    fn check_only_through_parse_invocation_with_f() {
        assert_eq!(
            parse_invocation(["-F", "x", "--check"]).unwrap(),
            Invocation {
                command: Command::LoadServices { path: "x".into() },
                check: true,
                json: false
            }
        );
        assert!(!parse_invocation(["-F", "x"]).unwrap().check);
        let m = "--check only goes with -F FILE, and is done by cluamgr itself, not by aliasd";
        assert_eq!(
            parse_invocation(["-f", "--check"]).unwrap_err().to_string(),
            m
        );
        assert_eq!(err("-F x --check"), m);
    }

    #[test]
    fn flag_errors() {
        assert_eq!(
            err(""),
            "no command given (one of -a, -f, -F, -h, -r, -s, --register; -h for help)"
        );
        let many = "only one of -a, -f, -F, -h, -r, -s, --register may be given";
        assert_eq!(err("-f -s"), many);
        assert_eq!(err("-a alias=x -a alias=y"), many);
        assert_eq!(err("-s all -h"), many);
        assert_eq!(err("-f --register 1/tcp"), many);
        assert_eq!(err("-F"), "-F needs a FILE");
        assert_eq!(
            parse_args(["-F", ""]).unwrap_err().to_string(),
            "-F needs a FILE"
        );
        assert_eq!(err("-a"), "-a needs alias=NAME[,option[=value]]...");
        assert_eq!(err("-r"), "-r needs an option list (resvok or noresvok)");
        assert_eq!(err("--register"), "--register needs PORT/PROTO[,option]...");
        assert_eq!(err("-a alias=x --member"), "--member needs a member NAME");
        assert_eq!(err("-x"), "unknown argument `-x` (-h for help)");
        assert_eq!(err("-f -fx"), "unknown argument `-fx` (-h for help)");
        assert_eq!(err("-f extra"), "unexpected argument `extra`");
        assert_eq!(err("-s a b"), "unexpected argument `b`");
        assert_eq!(err("-f --member m1"), "--member NAME only goes with -a");
        assert_eq!(
            err("-a alias=x --member m1 --member m2"),
            "--member is given twice"
        );
        assert_eq!(
            err("-a alias=x --member a/b"),
            "--member `a/b` is not a member name (letters, digits, `-`, `_`, `.`)"
        );
    }

    /// Issue 7: `--member` takes what the router's config and adverts take (`clua_ctl::name`).
    #[test]
    fn member_names_follow_the_shared_rule() {
        let e = parse_args(["-a", "alias=x,join", "--member", "m 1"]).unwrap_err();
        assert_eq!(
            e,
            CommandError::BadMember {
                name: "m 1".into(),
                why: crate::name::NameError::BadByte { offset: 1 },
            }
        );
        assert_eq!(
            e.to_string(),
            "--member `m 1` is not a member name (letters, digits, `-`, `_`, `.`)"
        );
        for bad in [".m1", "_m1", &"m".repeat(65)] {
            assert!(
                matches!(
                    parse_args(["-a", "alias=x", "--member", bad]),
                    Err(CommandError::BadMember { .. })
                ),
                "{bad}"
            );
        }
        assert!(parse_args(["-a", "alias=x", "--member", &"m".repeat(64)]).is_ok());
    }

    /// The clap definition is well-formed and says the grammar: one primary flag (a required
    /// group of which at most one), `--member` and `--check` outside it.
    #[test]
    fn clap_definition_has_one_primary_group() {
        use clap::CommandFactory;
        let cmd = Argv::command();
        cmd.clone().debug_assert();
        let g = cmd
            .get_groups()
            .find(|g| g.get_id() == "primary")
            .expect("primary group");
        assert!(g.is_required_set());
        let ids: Vec<&str> = g.get_args().map(|a| a.as_str()).collect();
        assert_eq!(
            ids,
            [
                "alias",
                "reload",
                "load",
                "help",
                "router",
                "show",
                "register",
                "reload_config"
            ]
        );
        // Each value arrives typed: `-a`'s list is parsed by its value parser.
        use clap::FromArgMatches;
        let m = cmd
            .try_get_matches_from(["-a", "alias=gourmet,join,selw=50"])
            .unwrap();
        let a = CommandArgs::from_arg_matches(&m).unwrap();
        assert_eq!(
            a.alias,
            Some(AliasList {
                alias: AliasRef::Name("gourmet".into()),
                options: AliasOptions {
                    join: true,
                    selw: Some(50),
                    ..Default::default()
                }
            })
        );
    }

    #[test]
    fn a_option_errors() {
        assert_eq!(
            err("-a alias=x,sticky"),
            "unknown -a option `sticky` (expected alias, join, leave, selw, selp, rpri, virtual, mask or vmac)"
        );
        assert_eq!(
            err("-a alias=x,,join"),
            "empty option in the -a list (two commas in a row, or a comma at either end)"
        );
        assert_eq!(
            err("-a alias=x,join,join"),
            "-a option `join` is given twice"
        );
        assert_eq!(
            err("-a alias=x,selw=2,selw=3"),
            "-a option `selw` is given twice"
        );
        assert_eq!(
            err("-a alias=x,alias=y"),
            "-a option `alias` is given twice"
        );
        assert_eq!(
            err("-a alias=x,selw"),
            "`selw` needs a value: selw=N, N in 1..=100"
        );
        assert_eq!(
            err("-a alias=x,selp"),
            "`selp` needs a value: selp=N, N in 0..=100000"
        );
        assert_eq!(
            err("-a alias=x,rpri"),
            "`rpri` needs a value: rpri=N, N in 0..=100000"
        );
        assert_eq!(
            err("-a alias=x,mask"),
            "`mask` needs a value: mask=NETMASK (dotted, e.g. 255.255.255.0)"
        );
        assert_eq!(
            err("-a alias,join"),
            "`alias` needs a value: alias=NAME (DEFAULTALIAS, an address or a host name)"
        );
        assert_eq!(
            err("-a alias=x,join=1"),
            "`join` takes no value (got `join=1`)"
        );
        assert_eq!(
            err("-a alias=x,leave="),
            "`leave` takes no value (got `leave=`)"
        );
        assert_eq!(
            err("-a alias=x,selw=abc"),
            "selw=`abc` is not a number (expected selw=N, N in 1..=100)"
        );
        assert_eq!(
            err("-a alias=x,selp=-1"),
            "selp=`-1` is not a number (expected selp=N, N in 0..=100000)"
        );
        assert_eq!(
            err("-a alias=x,rpri="),
            "rpri=`` is not a number (expected rpri=N, N in 0..=100000)"
        );
        assert_eq!(err("-a alias=x,selw=0"), "selw=0 is out of range 1..=100");
        assert_eq!(
            err("-a alias=x,selw=101"),
            "selw=101 is out of range 1..=100"
        );
        assert_eq!(
            err("-a alias=x,selp=100001"),
            "selp=100001 is out of range 0..=100000"
        );
        assert_eq!(
            err("-a alias=x,rpri=99999999999"),
            "rpri=99999999999 is out of range 0..=100000"
        );
        assert_eq!(
            err("-a alias=x,join,leave"),
            "join and leave are mutually exclusive"
        );
        assert_eq!(
            err("-a join,selw=2"),
            "-a needs alias=NAME (DEFAULTALIAS, an address or a host name)"
        );
        assert_eq!(
            err("-a alias=x,virtual=yes"),
            "virtual=`yes`: expected `virtual`, `virtual=t` or `virtual=f`"
        );
        for bad in ["255.0.255.0", "0.0.0.0", "255.255.255", "/24", "24"] {
            assert_eq!(
                err(&format!("-a alias=x,mask={bad}")),
                format!("mask=`{bad}` is not a netmask (a dotted quad of contiguous one bits, e.g. 255.255.255.0)")
            );
        }
    }

    #[test]
    fn alias_name_syntax() {
        let ok = |s: &str| parse_alias_ref(s).unwrap();
        assert_eq!(ok("DEFAULTALIAS"), AliasRef::Default);
        assert_eq!(
            ok("192.168.1.10"),
            AliasRef::Addr(Ipv4Addr::new(192, 168, 1, 10))
        );
        assert_eq!(ok("deli"), AliasRef::Name("deli".into()));
        assert_eq!(
            ok("another-alias.example.com"),
            AliasRef::Name("another-alias.example.com".into())
        );
        assert_eq!(ok("3com"), AliasRef::Name("3com".into()));
        for bad in [
            "",
            "a_b",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-",
            "10.0.0.256",
            "10.0.0",
            "a b",
            "gourmet!",
        ] {
            assert_eq!(
                parse_alias_ref(bad).unwrap_err().to_string(),
                format!("alias `{bad}` is not DEFAULTALIAS, an IPv4 address or a host name (letters, digits, `-`, `.`)")
            );
        }
        assert_eq!(
            err("-s a_b"),
            "alias `a_b` is not DEFAULTALIAS, an IPv4 address or a host name (letters, digits, `-`, `.`)"
        );
    }

    #[test]
    fn router_and_register_errors() {
        assert_eq!(
            err("-r start"),
            "unknown -r option `start` (expected resvok or noresvok)"
        );
        assert_eq!(
            err("-r resvok,noresvok"),
            "resvok and noresvok are mutually exclusive"
        );
        assert_eq!(
            err("-r resvok,"),
            "empty option in the -r list (two commas in a row, or a comma at either end)"
        );
        assert_eq!(
            err("--register 7001"),
            "--register: `7001` is not PortNumber/ProtocolName (e.g. `7/tcp`)"
        );
        assert_eq!(
            err("--register 0/udp"),
            "--register: port 0 is not a service port (expected 1..=65535)"
        );
        assert_eq!(
            err("--register 70000/udp"),
            "--register: port 70000 is out of range 1..=65535"
        );
        assert_eq!(
            err("--register 7/icmp"),
            "--register: protocol `icmp` is not supported (only tcp and udp)"
        );
        assert_eq!(
            err("--register 7/tcp,in_fast"),
            "--register: unknown service option `in_fast` (expected in_single, in_multi, in_noalias, in_nolocal, out_alias, static, wrr, weighted, sticky or wildcard_sticky)"
        );
        assert_eq!(
            err("--register 7/tcp,in_multi,in_single"),
            "--register: in_single and in_multi are mutually exclusive"
        );
        assert_eq!(
            err("--register 7/tcp,in_noalias,in_nolocal"),
            "--register: in_nolocal and in_noalias are mutually exclusive"
        );
        assert_eq!(
            err("--register 7/tcp,static,static"),
            "--register option `static` is given twice"
        );
        assert_eq!(
            err("--register 7/tcp,"),
            "empty option in the --register list (two commas in a row, or a comma at either end)"
        );
    }

    #[test]
    fn hosts_resolution() {
        let hosts = "\
# /etc/hosts
127.0.0.1   localhost
::1         localhost ip6-localhost
10.0.0.100  deli.example.com deli   # default alias
10.0.0.101  gourmet
10.0.0.102  Mailfeed mail
10.0.0.200  gourmet   # later duplicate: the first line wins
";
        let r = |a: AliasRef| resolve_hosts(&a, hosts);
        assert_eq!(
            r(AliasRef::Name("deli".into())),
            Some(Ipv4Addr::new(10, 0, 0, 100))
        );
        assert_eq!(
            r(AliasRef::Name("deli.example.com".into())),
            Some(Ipv4Addr::new(10, 0, 0, 100))
        );
        assert_eq!(
            r(AliasRef::Name("gourmet".into())),
            Some(Ipv4Addr::new(10, 0, 0, 101))
        );
        assert_eq!(
            r(AliasRef::Name("mailfeed".into())),
            Some(Ipv4Addr::new(10, 0, 0, 102))
        );
        assert_eq!(r(AliasRef::Name("ip6-localhost".into())), None);
        assert_eq!(r(AliasRef::Name("default".into())), None);
        assert_eq!(
            r(AliasRef::Name("alias".into())),
            None,
            "comments are not names"
        );
        assert_eq!(r(AliasRef::Default), None);
        assert_eq!(
            r(AliasRef::Addr(Ipv4Addr::new(1, 2, 3, 4))),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
    }

    fn all_variants() -> Vec<Command> {
        vec![
            p("-a alias=DEFAULTALIAS,selw=3,selp=1,join").unwrap(),
            p("-a alias=10.0.0.5,leave,rpri=7,virtual=f,mask=255.255.0.0 --member m1").unwrap(),
            p("-a alias=gourmet,virtual").unwrap(),
            Command::ReloadServices,
            Command::LoadServices {
                path: "/etc/clua_services.test".into(),
            },
            Command::Router { resvok: Some(true) },
            Command::Router { resvok: None },
            Command::Show(ShowWhat::All),
            Command::Show(ShowWhat::Alias(AliasRef::Name("gourmet".into()))),
            p("--register 7001/udp,in_multi,in_nolocal,out_alias,static").unwrap(),
            p("--register 7002/tcp,in_noalias").unwrap(),
            Command::Help,
            p("simulate tcp 203.0.113.7:40000 198.51.100.100:80").unwrap(),
            p("simulate tcp 203.0.113.7:40000 198.51.100.100:80 --ack --json").unwrap(),
            p("simulate udp 203.0.113.7:5353 198.51.100.100:53").unwrap(),
        ]
    }

    /// Issue 11: `simulate PROTO SOURCE:PORT DESTINATION:PORT [--syn|--ack] [--json]`.
    #[test]
    fn simulate_grammar() {
        use crate::simulate::{Query, Segment};
        let q = |proto, segment, json| {
            Command::Simulate(Query {
                proto,
                src: "203.0.113.7:40000".parse().unwrap(),
                dst: "198.51.100.100:80".parse().unwrap(),
                segment,
                json,
            })
        };
        let t = "simulate tcp 203.0.113.7:40000 198.51.100.100:80";
        assert_eq!(p(t).unwrap(), q(Proto::Tcp, Segment::Syn, false));
        assert_eq!(
            p(&format!("{t} --syn")).unwrap(),
            q(Proto::Tcp, Segment::Syn, false)
        );
        assert_eq!(
            p(&format!("{t} --ack --json")).unwrap(),
            q(Proto::Tcp, Segment::Ack, true)
        );
        assert_eq!(
            p("simulate udp 203.0.113.7:40000 198.51.100.100:80 --json").unwrap(),
            q(Proto::Udp, Segment::Syn, true)
        );
        assert_eq!(p(t).unwrap().flag(), "simulate");
        // `-s`'s optional value still takes the word: an alias may be named `simulate`.
        assert_eq!(
            p("-s simulate").unwrap(),
            Command::Show(ShowWhat::Alias(AliasRef::Name("simulate".into())))
        );
        // The wire form is stable (docs/cluamgr.md).
        assert_eq!(
            serde_json::to_string(&p(&format!("{t} --ack")).unwrap()).unwrap(),
            r#"{"Simulate":{"proto":"tcp","src":"203.0.113.7:40000","dst":"198.51.100.100:80","segment":"ack","json":false}}"#
        );
    }

    /// Every bad `simulate` argument is refused with an error naming the field.
    #[test]
    fn simulate_errors_name_the_field() {
        let d = "198.51.100.100:80";
        assert_eq!(
            err(&format!("simulate icmp 1.2.3.4:5 {d}")),
            "simulate: protocol `icmp` is not supported (expected tcp or udp)"
        );
        assert_eq!(
            err(&format!("simulate TCP 1.2.3.4:5 {d}")),
            "simulate: protocol `TCP` is not supported (expected tcp or udp)"
        );
        assert_eq!(
            err(&format!("simulate tcp 1.2.3.4 {d}")),
            "simulate: source `1.2.3.4` is not ADDRESS:PORT (e.g. 203.0.113.7:40000)"
        );
        assert_eq!(
            err(&format!("simulate tcp 1.2.3:5 {d}")),
            "simulate: source address `1.2.3` is not an IPv4 address"
        );
        assert_eq!(
            err("simulate tcp 1.2.3.4:5 alias:80"),
            "simulate: destination address `alias` is not an IPv4 address"
        );
        assert_eq!(
            err(&format!("simulate tcp 1.2.3.4:x {d}")),
            "simulate: source port `x` is not a number (expected 1..=65535)"
        );
        assert_eq!(
            err("simulate tcp 1.2.3.4:5 198.51.100.100:"),
            "simulate: destination port `` is not a number (expected 1..=65535)"
        );
        assert_eq!(
            err(&format!("simulate tcp 1.2.3.4:70000 {d}")),
            "simulate: source port 70000 is out of range 1..=65535"
        );
        assert_eq!(
            err("simulate tcp 1.2.3.4:5 198.51.100.100:0"),
            "simulate: destination port 0 is out of range 1..=65535"
        );
        assert_eq!(
            err(&format!("simulate tcp 1.2.3.4:5 {d} --syn --ack")),
            "simulate: --syn and --ack are mutually exclusive"
        );
        assert_eq!(
            err(&format!("simulate udp 1.2.3.4:5 {d} --syn")),
            "simulate: --syn only goes with tcp (a UDP datagram has no flags)"
        );
        let needs = "simulate needs PROTO SOURCE:PORT DESTINATION:PORT (e.g. tcp 203.0.113.7:40000 198.51.100.100:80)";
        assert_eq!(err("simulate"), needs);
        assert_eq!(err("simulate tcp 1.2.3.4:5"), needs);
        assert_eq!(
            err(&format!("simulate tcp 1.2.3.4:5 {d} --rst")),
            "unknown argument `--rst` (-h for help)"
        );
        assert_eq!(
            err(&format!("-s all simulate tcp 1.2.3.4:5 {d}")),
            "only one of -a, -f, -F, -h, -r, -s, --register may be given"
        );
        assert_eq!(
            err(&format!("-f simulate tcp 1.2.3.4:5 {d}")),
            "only one of -a, -f, -F, -h, -r, -s, --register may be given"
        );
    }

    #[test]
    fn json_round_trip_of_every_variant() {
        for c in all_variants() {
            let j = serde_json::to_string(&c).unwrap();
            let back: Command = serde_json::from_str(&j).unwrap();
            assert_eq!(back, c, "{j}");
        }
        // The wire form is stable and readable.
        assert_eq!(
            serde_json::to_string(&p("--register 7001/udp,in_multi").unwrap()).unwrap(),
            r#"{"Register":{"port":7001,"proto":"udp","options":{"in_single":false,"in_multi":true,"in_noalias":false,"in_nolocal":false,"out_alias":false,"static_port":false}}}"#
        );
        assert_eq!(
            serde_json::to_string(&Command::ReloadServices).unwrap(),
            r#""ReloadServices""#
        );
        // The form shown in docs/cluamgr.md.
        assert_eq!(
            serde_json::to_string(&p("-a alias=DEFAULTALIAS,selw=3,selp=1,join").unwrap()).unwrap(),
            r#"{"Alias":{"alias":"Default","options":{"join":true,"leave":false,"selw":3,"selp":1,"rpri":null,"virtual_subnet":null,"mask":null,"vmac":null},"member":null}}"#
        );
        // Absent service options are false.
        let c: Command = serde_json::from_str(
            r#"{"Register":{"port":7,"proto":"tcp","options":{"in_multi":true}}}"#,
        )
        .unwrap();
        assert_eq!(c, p("--register 7/tcp,in_multi").unwrap());
    }

    #[test]
    fn to_args_parses_back() {
        // Found by the cluamgr fuzz target: `-F--x` is a file named `--x`.
        let dashed = Command::LoadServices { path: "--`".into() };
        assert_eq!(p("-F--`").unwrap(), dashed);
        assert_eq!(dashed.to_args(), ["-F--`"]);
        assert_eq!(parse_args(dashed.to_args()).unwrap(), dashed);
        for c in all_variants() {
            if c == (Command::Router { resvok: None }) {
                continue; // `-r` needs an option; not producible from argv.
            }
            assert_eq!(parse_args(c.to_args()).unwrap(), c, "{:?}", c.to_args());
        }
    }

    #[test]
    fn usage_lists_every_flag_and_option() {
        for w in [
            "-a ",
            "-f",
            "-F FILE",
            "--check",
            "-h",
            "-r ",
            "-s ",
            "--register",
            "--member",
            "join",
            "leave",
            "selw=N",
            "1..=100",
            "selp=N",
            "0..=100000",
            "rpri=N",
            "virtual[=t|f]",
            "mask=NETMASK",
            "vmac[=t|f]",
            "resvok",
            "noresvok",
            "DEFAULTALIAS",
            "default 1",
            "simulate PROTO SOURCE:PORT DESTINATION:PORT",
            "--ack",
            "--json",
        ] {
            assert!(USAGE.contains(w), "{w}");
        }
        assert_eq!(crate::model::DEFAULT_RPRI, 1);
    }
}
