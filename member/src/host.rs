//! Host preparation for a member: what the kernel needs so the member answers clients directly
//! from an alias address (CA12), and its undoing.
//!
//! - every alias address on `lo` as a /32 (the member accepts traffic for it; routers, not the
//!   member, answer ARP for it);
//! - `net.ipv4.conf.all.arp_ignore=1` (answer ARP only for addresses on the receiving interface,
//!   so never for the aliases on `lo`) and `arp_announce=2` (never use an alias as the source of
//!   an ARP request);
//! - with `[vxlan]`: the VXLAN device with the configured MAC, up, `rp_filter` 0 on it and on
//!   `all` (decapsulated client packets arrive on the device while the route back to the client
//!   leaves by another interface);
//! - with `in_nolocal_ports`: an nftables table `clua_member` refusing those ports unless
//!   addressed to an alias (TCP reset, UDP drop), hooked on `input` so that traffic the host
//!   sends to its own addresses is refused too. The table names its agent's process id; one
//!   left by an agent that is gone is replaced, one of a running agent makes preparation fail.
//!
//! - with `services` (CA9, docs/out_alias.md, [`HostGuard::prepare_services`]): the static ports
//!   added to `net.ipv4.ip_local_reserved_ports` (merged with what is there, which is put back
//!   at exit), so no ephemeral port is one of them; and with `[out_alias]` an nftables table
//!   `clua_out_alias` whose `postrouting` nat chain gives every connection or UDP flow this
//!   host originates to an out_alias port the default alias as source and a source port of the
//!   member's range (`snat to ALIAS:LO-HI`). Only the first packet of a connection passes a nat
//!   chain, so replies of connections clients made to the member are never rewritten. The
//!   table is owned like `clua_member` (by process id).
//!
//! [`HostGuard::prepare`] is idempotent (an address or device that is already there is used as
//! it is and left in place at exit) and records what it changed; dropping the guard undoes it in
//! reverse order, also when preparation failed half-way.

use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};

use clua_ctl::model::Proto;

use crate::config::MemberConfig;
use clua_pipeline::out_alias::PortRange;

/// The nftables table for in_nolocal ports.
pub const NFT_TABLE: &str = "clua_member";
/// The nftables table for out_alias (CA9).
pub const NFT_OUT_ALIAS_TABLE: &str = "clua_out_alias";
/// The kernel's list of ports never handed out as ephemeral ports (per network namespace).
pub const RESERVED_PORTS: &str = "net.ipv4.ip_local_reserved_ports";

/// A preparation (or undoing) step that failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A program could not be started or waited for.
    #[error("`{}`: {source}", Shown(.program, .args))]
    Spawn {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Why.
        source: std::io::Error,
    },
    /// A program exited unsuccessfully.
    #[error("`{}` failed: {stderr}", Shown(.program, .args))]
    Failed {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// How it exited.
        status: ExitStatus,
        /// What it wrote to stderr, trimmed.
        stderr: String,
    },
    /// A sysctl cannot be read.
    #[error("reading {}: {source}", .path.display())]
    SysctlRead {
        /// Its file under /proc/sys.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A sysctl cannot be set.
    #[error("writing {value} to {}: {source}", .path.display())]
    SysctlWrite {
        /// Its file under /proc/sys.
        path: PathBuf,
        /// The value.
        value: String,
        /// Why.
        source: std::io::Error,
    },
    /// A sysctl cannot be set back at exit.
    #[error("restoring {} to {old}: {source}", .path.display())]
    SysctlRestore {
        /// Its file under /proc/sys.
        path: PathBuf,
        /// The value it had before preparation.
        old: String,
        /// Why.
        source: std::io::Error,
    },
    /// `in_nolocal_ports` without a runnable `nft`.
    #[error("`in_nolocal_ports` is enforced with nftables, but `nft` cannot be run here (install the nftables package, or remove the list)")]
    NftMissing,
    /// The nftables table belongs to another agent that is running.
    #[error("`in_nolocal_ports`: the nftables table `{NFT_TABLE}` belongs to a running clua-member agent (pid {pid})")]
    NftTableInUse {
        /// The other agent's process id.
        pid: u32,
    },
    /// `[out_alias]` without a runnable `nft`.
    #[error("`[out_alias]` is enforced with nftables, but `nft` cannot be run here (install the nftables package, or remove the table)")]
    OutAliasNftMissing,
    /// The out_alias table belongs to another agent that is running.
    #[error("`[out_alias]`: the nftables table `{NFT_OUT_ALIAS_TABLE}` belongs to a running clua-member agent (pid {pid})")]
    OutAliasTableInUse {
        /// The other agent's process id.
        pid: u32,
    },
}

/// A command line as the errors show it: the program and its arguments, space-separated.
struct Shown<'a>(&'a str, &'a [String]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)?;
        for a in self.1 {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

enum Undo {
    Addr(Ipv4Addr),
    Sysctl {
        path: PathBuf,
        old: String,
    },
    Link(String),
    /// The nftables table, deleted with this program.
    NftTable(String),
    /// The out_alias nftables table, deleted with this program.
    NftOutAliasTable(String),
}

/// What [`HostGuard::prepare`] changed; undone on drop.
pub struct HostGuard {
    undo: Vec<Undo>,
    /// Alias addresses that were on `lo` already (left there at exit).
    pub already_present: Vec<Ipv4Addr>,
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), HostError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let spawn = |source| HostError::Spawn {
        program: program.to_string(),
        args: owned(args),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn)?;
    if let (Some(text), Some(mut si)) = (stdin, child.stdin.take()) {
        let _ = si.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn)?;
    succeeded(program, args, &out)
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// [`HostError::Failed`] unless `out` is a success.
fn succeeded(program: &str, args: &[&str], out: &Output) -> Result<(), HostError> {
    if out.status.success() {
        Ok(())
    } else {
        Err(HostError::Failed {
            program: program.to_string(),
            args: owned(args),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn ip(args: &[&str]) -> Result<(), HostError> {
    run("ip", args, None)
}

/// The IPv4 addresses on `lo` (any prefix length).
fn lo_addrs() -> Result<Vec<Ipv4Addr>, HostError> {
    let args = ["-4", "-o", "addr", "show", "dev", "lo"];
    let out = Command::new("ip")
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| HostError::Spawn {
            program: "ip".into(),
            args: owned(&args),
            source,
        })?;
    succeeded("ip", &args, &out)?;
    Ok(parse_inet(&String::from_utf8_lossy(&out.stdout)))
}

/// The addresses of `inet ADDR/LEN` words in `ip -o addr` output.
fn parse_inet(text: &str) -> Vec<Ipv4Addr> {
    let mut v = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        while let Some(x) = w.next() {
            if x == "inet" {
                if let Some(a) = w
                    .next()
                    .and_then(|c| c.split('/').next())
                    .and_then(|a| a.parse().ok())
                {
                    v.push(a);
                }
            }
        }
    }
    v
}

/// The program that manages nftables.
const NFT: &str = "nft";

/// Whether `nft` can be run here.
pub fn nft_available() -> bool {
    program_runs(NFT)
}

fn program_runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The comment that marks the table as owned by the agent with process id `pid`.
fn nft_owner_comment(pid: u32) -> String {
    format!("clua-member pid {pid}")
}

/// The pid of another running agent that owns nftables table `table` (a table of a running
/// agent is not taken over, and then removed at our exit), if any.
fn live_owner(nft: &str, table: &str) -> Option<u32> {
    let listing = Command::new(nft)
        .args(["list", "table", "ip", table])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())?;
    parse_nft_owner(&listing).filter(|&pid| other_agent_alive(pid))
}

/// The owner's process id from `nft list table` output (see [`nft_owner_comment`]).
fn parse_nft_owner(listing: &str) -> Option<u32> {
    listing.lines().find_map(|l| {
        l.trim()
            .strip_prefix("comment \"clua-member pid ")?
            .strip_suffix('"')?
            .parse()
            .ok()
    })
}

/// Whether `pid` is a running member agent other than this process.
fn other_agent_alive(pid: u32) -> bool {
    pid != std::process::id()
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim_end() == "clua-member")
}

/// The nftables script for in_nolocal ports, run by the agent with process id `owner`: TCP
/// connections to those ports are reset and UDP datagrams to them dropped unless addressed to
/// one of `aliases`.
///
/// The rules hook `input`, which sees every packet delivered locally: those from the network,
/// decapsulated VXLAN traffic, and the ones this host sends to its own addresses (they loop
/// through `lo`). The script replaces a table of the same name (left by an agent that crashed)
/// in one transaction, so the ports are never unprotected in between.
pub fn nft_script(aliases: &[Ipv4Addr], ports: &[(u16, Proto)], owner: u32) -> String {
    let set = aliases
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = format!(
        "table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\ntable ip {NFT_TABLE} {{\n  comment \"{}\"\n  chain input {{\n    type filter hook input priority 0; policy accept;\n",
        nft_owner_comment(owner)
    );
    for (port, proto) in ports {
        match proto {
            Proto::Tcp => s.push_str(&format!(
                "    ip daddr != {{ {set} }} tcp dport {port} reject with tcp reset\n"
            )),
            Proto::Udp => s.push_str(&format!(
                "    ip daddr != {{ {set} }} udp dport {port} drop\n"
            )),
        }
    }
    s.push_str("  }\n}\n");
    s
}

/// The nftables script for out_alias (CA9), run by the agent with process id `owner`: every
/// connection or UDP flow this host originates to one of `ports` (not over `lo`) leaves with
/// source `alias` and a source port in `range`. Replaces a table of the same name in one
/// transaction, like [`nft_script`]. No ports of a protocol: no rule for it.
pub fn nft_out_alias_script(
    alias: Ipv4Addr,
    range: PortRange,
    ports: &[(u16, Proto)],
    owner: u32,
) -> String {
    let mut s = format!(
        "table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n  comment \"{}\"\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n",
        nft_owner_comment(owner),
        t = NFT_OUT_ALIAS_TABLE
    );
    for (proto, name) in [(Proto::Tcp, "tcp"), (Proto::Udp, "udp")] {
        let list: Vec<String> = ports
            .iter()
            .filter(|(_, p)| *p == proto)
            .map(|(port, _)| port.to_string())
            .collect();
        if !list.is_empty() {
            s.push_str(&format!(
                "    oifname != \"lo\" {name} dport {{ {} }} snat to {alias}:{}-{}\n",
                list.join(", "),
                range.lo,
                range.hi
            ));
        }
    }
    s.push_str("  }\n}\n");
    s
}

/// The ports of an `ip_local_reserved_ports` value (`8080,9000-9010`, possibly empty).
/// Words that are not ports or ranges are ignored (the kernel writes none).
pub fn parse_reserved_ports(text: &str) -> std::collections::BTreeSet<u16> {
    let mut set = std::collections::BTreeSet::new();
    for w in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if let Ok(r) = w.parse::<PortRange>() {
            set.extend(r.lo..=r.hi);
        }
    }
    set
}

/// An `ip_local_reserved_ports` value for `ports`: ranges of consecutive ports, comma-separated.
pub fn format_reserved_ports(ports: &std::collections::BTreeSet<u16>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = ports.iter().copied().peekable();
    while let Some(lo) = it.next() {
        let mut hi = lo;
        while it.peek() == Some(&hi.wrapping_add(1)) && hi != u16::MAX {
            hi += 1;
            it.next();
        }
        out.push(if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        });
    }
    out.join(",")
}

/// What [`HostGuard::prepare_services`] sets up, from the member's clua_services (CA9).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServicePlan {
    /// Ports flagged static: reserved against ephemeral use (both protocols share the kernel's
    /// one list).
    pub static_ports: Vec<u16>,
    /// Ports flagged out_alias, with their protocol.
    pub out_alias_ports: Vec<(u16, Proto)>,
}

fn sysctl_path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

impl HostGuard {
    fn set_sysctl(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        let path = sysctl_path(name);
        let old = std::fs::read_to_string(&path).map_err(|source| HostError::SysctlRead {
            path: path.clone(),
            source,
        })?;
        let old = old.trim().to_string();
        if old == value {
            return Ok(());
        }
        std::fs::write(&path, value).map_err(|source| HostError::SysctlWrite {
            path: path.clone(),
            value: value.to_string(),
            source,
        })?;
        self.undo.push(Undo::Sysctl { path, old });
        Ok(())
    }

    /// Prepares the host for `cfg`. On an error, what was done so far is undone before the error
    /// is returned.
    pub fn prepare(cfg: &MemberConfig) -> Result<HostGuard, HostError> {
        Self::prepare_with(cfg, NFT)
    }

    /// [`HostGuard::prepare`] with `nft` the program that manages nftables.
    fn prepare_with(cfg: &MemberConfig, nft: &str) -> Result<HostGuard, HostError> {
        if !cfg.in_nolocal_ports.is_empty() {
            if !program_runs(nft) {
                return Err(HostError::NftMissing);
            }
            // A table of a running agent is not taken over (and then removed at our exit).
            if let Some(pid) = live_owner(nft, NFT_TABLE) {
                return Err(HostError::NftTableInUse { pid });
            }
        }
        let mut g = HostGuard {
            undo: Vec::new(),
            already_present: Vec::new(),
        };
        ip(&["link", "set", "lo", "up"])?;
        let present = lo_addrs()?;
        for a in &cfg.aliases {
            if present.contains(a) {
                g.already_present.push(*a);
                continue;
            }
            ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])?;
            g.undo.push(Undo::Addr(*a));
        }
        g.set_sysctl("net.ipv4.conf.all.arp_ignore", "1")?;
        g.set_sysctl("net.ipv4.conf.all.arp_announce", "2")?;
        if let Some(v) = &cfg.vxlan {
            if ip(&["link", "show", "dev", &v.device]).is_err() {
                let mac = clua_ctl::model::fmt_mac(&v.mac);
                ip(&[
                    "link",
                    "add",
                    &v.device,
                    "address",
                    &mac,
                    "type",
                    "vxlan",
                    "id",
                    &v.vni.to_string(),
                    "local",
                    &v.local.to_string(),
                    "dstport",
                    &v.dstport.to_string(),
                    "nolearning",
                ])?;
                g.undo.push(Undo::Link(v.device.clone()));
            }
            ip(&["link", "set", &v.device, "up"])?;
            g.set_sysctl(&format!("net.ipv4.conf.{}.rp_filter", v.device), "0")?;
            g.set_sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        }
        if !cfg.in_nolocal_ports.is_empty() {
            // Replaces a table left by an agent that crashed.
            run(
                nft,
                &["-f", "-"],
                Some(&nft_script(
                    &cfg.aliases,
                    &cfg.in_nolocal_ports,
                    std::process::id(),
                )),
            )?;
            g.undo.push(Undo::NftTable(nft.to_string()));
        }
        Ok(g)
    }

    /// Sets up static and out_alias (CA9) from `plan` for `cfg`: reserves the static ports
    /// (merged with the reserved ports already there, restored at exit), and with
    /// `cfg.out_alias` installs the out_alias nftables table (removed at exit). Idempotent: a
    /// port already reserved stays; a table left by a crashed agent is replaced. On an error,
    /// nothing of this step is left behind once the guard is dropped.
    pub fn prepare_services(
        &mut self,
        cfg: &MemberConfig,
        plan: &ServicePlan,
    ) -> Result<(), HostError> {
        self.prepare_services_with(cfg, plan, NFT)
    }

    fn prepare_services_with(
        &mut self,
        cfg: &MemberConfig,
        plan: &ServicePlan,
        nft: &str,
    ) -> Result<(), HostError> {
        let range = cfg.out_alias.filter(|_| !plan.out_alias_ports.is_empty());
        if range.is_some() {
            if !program_runs(nft) {
                return Err(HostError::OutAliasNftMissing);
            }
            if let Some(pid) = live_owner(nft, NFT_OUT_ALIAS_TABLE) {
                return Err(HostError::OutAliasTableInUse { pid });
            }
        }
        if !plan.static_ports.is_empty() {
            let path = sysctl_path(RESERVED_PORTS);
            let old = std::fs::read_to_string(&path).map_err(|source| HostError::SysctlRead {
                path: path.clone(),
                source,
            })?;
            let mut set = parse_reserved_ports(&old);
            let before = set.len();
            set.extend(plan.static_ports.iter().copied());
            if set.len() != before {
                let value = format_reserved_ports(&set);
                std::fs::write(&path, &value).map_err(|source| HostError::SysctlWrite {
                    path: path.clone(),
                    value: value.clone(),
                    source,
                })?;
                // A newline: an empty write would leave the list as it is.
                self.undo.push(Undo::Sysctl {
                    path,
                    old: format!("{}\n", old.trim()),
                });
            }
        }
        if let Some(range) = range {
            run(
                nft,
                &["-f", "-"],
                Some(&nft_out_alias_script(
                    cfg.default_alias,
                    range,
                    &plan.out_alias_ports,
                    std::process::id(),
                )),
            )?;
            self.undo.push(Undo::NftOutAliasTable(nft.to_string()));
        }
        Ok(())
    }

    /// Undoes everything, newest first; returns the steps that failed (it goes on after one).
    pub fn undo(&mut self) -> Vec<HostError> {
        let mut errors = Vec::new();
        while let Some(u) = self.undo.pop() {
            let r = match u {
                Undo::Addr(a) => ip(&["addr", "del", &format!("{a}/32"), "dev", "lo"]),
                Undo::Sysctl { path, old } => std::fs::write(&path, &old)
                    .map_err(|source| HostError::SysctlRestore { path, old, source }),
                Undo::Link(d) => ip(&["link", "del", "dev", &d]),
                Undo::NftTable(nft) => run(&nft, &["delete", "table", "ip", NFT_TABLE], None),
                Undo::NftOutAliasTable(nft) => {
                    run(&nft, &["delete", "table", "ip", NFT_OUT_ALIAS_TABLE], None)
                }
            };
            if let Err(e) = r {
                errors.push(e);
            }
        }
        errors
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        for e in self.undo() {
            eprintln!("clua-member: undoing host preparation: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_script_shape() {
        let s = nft_script(
            &[
                Ipv4Addr::new(198, 51, 100, 100),
                Ipv4Addr::new(198, 51, 100, 101),
            ],
            &[(80, Proto::Tcp), (53, Proto::Udp)],
            4242,
        );
        assert_eq!(
            s,
            "table ip clua_member
delete table ip clua_member
table ip clua_member {
  comment \"clua-member pid 4242\"
  chain input {
    type filter hook input priority 0; policy accept;
    ip daddr != { 198.51.100.100, 198.51.100.101 } tcp dport 80 reject with tcp reset
    ip daddr != { 198.51.100.100, 198.51.100.101 } udp dport 53 drop
  }
}
"
        );
        assert_eq!(
            sysctl_path("net.ipv4.conf.all.arp_ignore"),
            PathBuf::from("/proc/sys/net/ipv4/conf/all/arp_ignore")
        );
    }

    #[test]
    fn nft_out_alias_script_shape() {
        let s = nft_out_alias_script(
            Ipv4Addr::new(198, 51, 100, 100),
            PortRange::new(61000, 61999).unwrap(),
            &[(23, Proto::Tcp), (6000, Proto::Tcp), (123, Proto::Udp)],
            4242,
        );
        assert_eq!(
            s,
            "table ip clua_out_alias
delete table ip clua_out_alias
table ip clua_out_alias {
  comment \"clua-member pid 4242\"
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname != \"lo\" tcp dport { 23, 6000 } snat to 198.51.100.100:61000-61999
    oifname != \"lo\" udp dport { 123 } snat to 198.51.100.100:61000-61999
  }
}
"
        );
        let t = nft_out_alias_script(
            Ipv4Addr::new(198, 51, 100, 100),
            PortRange::new(7, 7).unwrap(),
            &[(53, Proto::Udp)],
            1,
        );
        assert!(
            !t.contains("tcp dport") && t.contains("udp dport { 53 } snat to 198.51.100.100:7-7")
        );
    }

    #[test]
    fn reserved_ports_merge() {
        let set = parse_reserved_ports("8080,9000-9003\n");
        assert_eq!(set.len(), 5);
        assert_eq!(format_reserved_ports(&set), "8080,9000-9003");
        assert!(parse_reserved_ports("\n").is_empty());
        assert_eq!(format_reserved_ports(&parse_reserved_ports("")), "");
        let mut set = parse_reserved_ports("1,3,65535");
        set.extend([2, 513, 6000, 65534]);
        assert_eq!(format_reserved_ports(&set), "1-3,513,6000,65534-65535");
    }

    #[test]
    fn out_alias_without_nft_is_refused_before_touching_the_host() {
        let cfg = MemberConfig::parse(
            r#"
node = "m1"
address = "192.0.2.141"
routers = ["192.0.2.2"]
key_file = "/k"
default_alias = "198.51.100.100"
aliases = ["198.51.100.100"]
services = "/etc/clua_services"
[out_alias]
ports = "61000-61999"
"#,
            "m.toml",
        )
        .unwrap();
        let mut g = HostGuard {
            undo: Vec::new(),
            already_present: Vec::new(),
        };
        let plan = ServicePlan {
            static_ports: vec![513],
            out_alias_ports: vec![(23, Proto::Tcp)],
        };
        let e = g
            .prepare_services_with(&cfg, &plan, "/nonexistent/clua-test/nft")
            .unwrap_err();
        assert!(matches!(e, HostError::OutAliasNftMissing), "{e:?}");
        assert!(g.undo.is_empty(), "nothing was changed");
    }

    #[test]
    fn nft_owner_from_listing() {
        // As `nft list table` prints it.
        let t = "table ip clua_member {
\tcomment \"clua-member pid 4242\"
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t}
}
";
        assert_eq!(parse_nft_owner(t), Some(4242));
        assert_eq!(
            parse_nft_owner("table ip clua_member {\n\tchain input {\n\t}\n}\n"),
            None
        );
        assert!(!other_agent_alive(std::process::id()));
    }

    #[test]
    fn ip_o_addr_output() {
        let t = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
1: lo    inet 198.51.100.100/32 scope global lo\\       valid_lft forever preferred_lft forever
";
        assert_eq!(
            parse_inet(t),
            vec![Ipv4Addr::LOCALHOST, Ipv4Addr::new(198, 51, 100, 100)]
        );
    }

    #[test]
    fn in_nolocal_without_nft_is_refused_before_touching_the_host() {
        let cfg = MemberConfig::parse(
            r#"
node = "m1"
address = "192.0.2.141"
routers = ["192.0.2.2"]
key_file = "/k"
default_alias = "198.51.100.100"
aliases = ["198.51.100.100"]
in_nolocal_ports = ["80/tcp"]
"#,
            "m.toml",
        )
        .unwrap();
        // A program that cannot be run stands in for a missing `nft`; the real one when it is
        // missing too.
        let e = HostGuard::prepare_with(&cfg, "/nonexistent/clua-test/nft")
            .err()
            .unwrap();
        assert!(matches!(e, HostError::NftMissing), "{e:?}");
        assert!(
            e.to_string().starts_with(
                "`in_nolocal_ports` is enforced with nftables, but `nft` cannot be run here"
            ),
            "{e}"
        );
        if !nft_available() {
            let e = HostGuard::prepare(&cfg).err().unwrap();
            assert!(e.to_string().contains("`nft` cannot be run here"), "{e}");
        }
    }
}
