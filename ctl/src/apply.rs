//! Applying cluamgr commands to the cluster, all or nothing.
//!
//! [`apply`] works on a copy: the command is applied to a clone of the [`ControlState`], the
//! result is validated completely (the same [`Cluster::validate`] as at start-up) and only then
//! handed back. The caller (aliasd's control thread) builds the new snapshot from it and swaps it
//! in; a command that fails leaves nothing changed. The reply lists every change, in words.
//!
//! Semantics on a router (the member agent comes later, issue 4):
//! - `-a alias=X` alone specifies the alias: the router routes for it (creating it if the
//!   address is new) without any member joining (CA2).
//! - `join`, `leave`, `selw`, `selp` are a member's attributes for an alias (CA8); on a router
//!   they need `--member NAME` (the clua extension acting for a configured member).
//! - `leave` takes the member out of the alias's schedule; its established connections stay in
//!   the workers' connection tables and finish there (drain). Its selw, selp and place in the
//!   join order are kept (the entry stays, `joined` false): an option not given leaves the
//!   value unchanged (cluamgr(8)), so a later `join` restores them.
//! - `rpri`, `virtual`, `mask` (and `-r resvok`) are the router's attributes for the alias;
//!   stored and shown, and the reply says where they take effect (proxy-ARP master election
//!   and RIP use them later). So do the service options in_nolocal, out_alias and static.
//! - `-f` re-reads the configured clua_services file, `-F FILE` reads another one; `--register`
//!   adds or replaces one service entry (clua_registerservice, CA11).

use std::path::{Path, PathBuf};

use crate::command::{AliasRef, Command, ShowWhat};
use crate::model::{
    AliasSpec, Cluster, JoinSpec, ModelError, Proto, ServiceOptionError, ServiceSpec, DEFAULT_RPRI,
};
use crate::services::{parse_services, ServicesErrors};

/// Where `rpri` takes effect: said in the reply and in `-s` (issue 7).
pub const RPRI_NOTE: &str = "the proxy-ARP master election among several routers (CA4, aliasd.toml [router]): the highest rpri answers ARP; a router alone answers for the alias itself";
/// Where `virtual` takes effect.
pub const VIRTUAL_NOTE: &str = "with [rip], the alias's network route (its mask) is advertised besides its host route (CA6); proxy ARP depends only on whether the address is in a client port's subnet";
/// Where `mask` takes effect.
pub const MASK_NOTE: &str = "the network route RIP advertises for a virtual alias (CA6)";
/// Where `-r resvok` takes effect.
pub const RESVOK_NOTE: &str = "RIP advertises RFC 1918 aliases only while resvok is on (CA6)";
/// Where the service option in_nolocal takes effect (CA9).
pub const IN_NOLOCAL_NOTE: &str = "enforced on members by the member agent (nftables, from in_nolocal_ports in the member's member.toml), not by the router, which forwards the port's alias traffic as usual";
/// Where out_alias takes effect (CA9).
pub const OUT_ALIAS_NOTE: &str = "members' agents give their connections to the port the default alias as source, from their own out_alias port range; the router steers the replies by that range (docs/out_alias.md)";
/// Where static takes effect (CA9).
pub const STATIC_NOTE: &str = "reserved against ephemeral use on members by their agents (ip_local_reserved_ports, from the clua_services their member.toml names); never inside an out_alias range (docs/out_alias.md)";

/// What the control plane holds besides the cluster itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlState {
    /// The cluster model.
    pub cluster: Cluster,
    /// The clua_services file that `-f` reloads, if one is configured.
    pub services_file: Option<PathBuf>,
    /// `-r resvok`: RFC 1918 aliases may be advertised by RIP (CA6).
    pub resvok: bool,
}

/// Why a command was refused. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The command's result would not be a valid cluster.
    #[error("{}", Lines(.0))]
    Invalid(Vec<ModelError>),
    /// The command cannot be carried out as asked.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Model errors one a line.
struct Lines<'a>(&'a [ModelError]);

impl std::fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Why a command cannot be carried out as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `-s -a` names an alias that does not exist.
    #[error("no alias {}", Described(.0))]
    NoAlias(AliasRef),
    /// `-a` names an unknown alias by name (or DEFAULTALIAS): only an address makes a new one.
    #[error("no alias {}; name a new alias by its address (or an /etc/hosts name)", Described(.0))]
    NoAliasByName(AliasRef),
    /// `--reload` where no configuration file is read (only aliasd's daemon reads it; the
    /// control plane applies what it parsed, [`crate::plane::ControlPlane::reload`]).
    #[error("--reload: only aliasd re-reads its configuration file")]
    ReloadNotHere,
    /// `-f` without a configured clua_services file.
    #[error("no clua_services file is configured (cluster.services_file); use -F FILE")]
    NoServicesFile,
    /// A clua_services file cannot be read.
    #[error("{}: cannot read: {message}", .path.display())]
    ReadServices {
        /// The file.
        path: PathBuf,
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error's text (kept as text: `std::io::Error` is neither `Clone` nor `Eq`).
        message: String,
    },
    /// A clua_services file has errors.
    #[error(transparent)]
    Services(#[from] ServicesErrors),
    /// `--register` with options that do not go together (CA9).
    #[error("{port}/{}: {why}", .proto.name())]
    RegisterOptions {
        /// The service's port.
        port: u16,
        /// Its protocol.
        proto: Proto,
        /// What is wrong.
        why: ServiceOptionError,
    },
    /// join, leave, selw or selp on a router without `--member`.
    #[error(
        "join, leave, selw and selp are a member's attributes: on a router give --member NAME"
    )]
    NeedsMember,
    /// `--member` names a member the cluster does not configure.
    #[error("no member \"{0}\" is configured")]
    NoSuchMember(String),
    /// `leave` for a member that is not joined.
    #[error("member {member} has not joined alias {alias}")]
    NotJoined {
        /// The member.
        member: String,
        /// The alias's name.
        alias: String,
    },
    /// selw or selp without join for a member that never joined.
    #[error("member {member} has not joined alias {alias} (add join)")]
    NeverJoined {
        /// The member.
        member: String,
        /// The alias's name.
        alias: String,
    },
}

/// An alias as a refusal names it: a name quoted, an address bare.
struct Described<'a>(&'a AliasRef);

impl std::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            AliasRef::Default => f.write_str("DEFAULTALIAS"),
            AliasRef::Addr(x) => write!(f, "{x}"),
            AliasRef::Name(n) => write!(f, "\"{n}\""),
        }
    }
}

/// The result of a command that changes nothing (`-s`, `-h`) or of one that does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The new state and the changes, one line each (empty if the command changed nothing).
    Changed(Box<ControlState>, Vec<String>),
    /// `-s`: what to show (the caller renders it with live counters).
    Show(ShowWhat),
    /// `-h`.
    Help,
}

/// Finds the alias a command names: the default alias, by address, or by name.
pub fn find_alias(cluster: &Cluster, alias: &AliasRef) -> Option<usize> {
    match alias {
        AliasRef::Default => cluster
            .aliases
            .iter()
            .position(|a| a.name == cluster.default_alias),
        AliasRef::Addr(addr) => cluster.aliases.iter().position(|a| a.address == *addr),
        AliasRef::Name(n) => cluster.aliases.iter().position(|a| &a.name == n),
    }
}

/// Applies `cmd` to a copy of `state`. `read_file` reads clua_services files (the daemon passes
/// `std::fs::read_to_string`; tests pass a map).
pub fn apply(
    state: &ControlState,
    cmd: &Command,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Applied, ApplyError> {
    let mut next = state.clone();
    let mut changes = Vec::new();
    match cmd {
        Command::Help => return Ok(Applied::Help),
        Command::Reload => return Err(Refusal::ReloadNotHere.into()),
        // Changes nothing; the control plane answers it over its snapshot (ctl::simulate).
        Command::Simulate(_) | Command::Capture(_) => {
            return Ok(Applied::Changed(Box::new(next), changes))
        }
        Command::Show(what) => {
            if let ShowWhat::Alias(a) = what {
                if find_alias(&state.cluster, a).is_none() {
                    return Err(Refusal::NoAlias(a.clone()).into());
                }
            }
            return Ok(Applied::Show(what.clone()));
        }
        Command::Router { resvok } => {
            if let Some(r) = resvok {
                if *r != state.resvok {
                    changes.push(format!("resvok {} -> {}: {RESVOK_NOTE}", state.resvok, r));
                }
                next.resvok = *r;
            }
        }
        Command::ReloadServices => {
            let path = state.services_file.clone().ok_or(Refusal::NoServicesFile)?;
            load_services(&mut next, &path, read_file, &mut changes)?;
        }
        Command::LoadServices { path } => {
            load_services(&mut next, Path::new(path), read_file, &mut changes)?;
        }
        Command::Register {
            port,
            proto,
            options,
        } => {
            options.check().map_err(|why| Refusal::RegisterOptions {
                port: *port,
                proto: *proto,
                why,
            })?;
            let entry = ServiceSpec {
                name: format!("registered-{port}-{}", proto.name()),
                port: *port,
                proto: *proto,
                options: *options,
            };
            let services = &mut next.cluster.services;
            match services
                .iter_mut()
                .find(|s| s.port == *port && s.proto == *proto)
            {
                Some(s) if s.options == *options => {}
                Some(s) => {
                    changes.push(format!(
                        "service {port}/{}: options changed ({})",
                        proto.name(),
                        s.name
                    ));
                    let after = ServiceSpec {
                        options: *options,
                        ..s.clone()
                    };
                    changes.extend(policy_changes(
                        std::slice::from_ref(s),
                        std::slice::from_ref(&after),
                    ));
                    s.options = *options;
                    changes.extend(service_notes(std::slice::from_ref(s)));
                }
                None => {
                    changes.push(format!("service {port}/{} registered", proto.name()));
                    changes.extend(policy_changes(&[], std::slice::from_ref(&entry)));
                    changes.extend(service_notes(std::slice::from_ref(&entry)));
                    services.push(entry);
                }
            }
        }
        Command::Alias {
            alias,
            options,
            member,
        } => {
            let idx = match find_alias(&next.cluster, alias) {
                Some(i) => i,
                None => {
                    let AliasRef::Addr(addr) = alias else {
                        return Err(Refusal::NoAliasByName(alias.clone()).into());
                    };
                    next.cluster.aliases.push(AliasSpec {
                        name: addr.to_string(),
                        address: *addr,
                        members: Vec::new(),
                        rpri: DEFAULT_RPRI,
                        virtual_subnet: false,
                        mask: None,
                        vmac: false,
                    });
                    let spec = next.cluster.aliases.last().expect("just pushed");
                    changes.push(format!(
                        "alias {addr} specified, no members yet (CA2); {}",
                        crate::show::reach(&next.cluster, spec)
                    ));
                    next.cluster.aliases.len() - 1
                }
            };
            let cluster_name = next.cluster.name.clone();
            let a = &mut next.cluster.aliases[idx];
            let an = a.name.clone();
            if let Some(r) = options.rpri {
                if r != a.rpri {
                    changes.push(format!("alias {an}: rpri {} -> {r}: {RPRI_NOTE}", a.rpri));
                    a.rpri = r;
                }
            }
            if let Some(v) = options.virtual_subnet {
                if v != a.virtual_subnet {
                    changes.push(format!(
                        "alias {an}: virtual {} -> {v}: {VIRTUAL_NOTE}",
                        a.virtual_subnet
                    ));
                    a.virtual_subnet = v;
                }
            }
            if let Some(v) = options.vmac {
                if v != a.vmac {
                    changes.push(format!(
                        "alias {an}: vmac {} -> {v}{}",
                        a.vmac,
                        if v {
                            format!(
                                " ({})",
                                crate::model::fmt_mac(&crate::model::vmac(
                                    &cluster_name,
                                    a.address
                                ))
                            )
                        } else {
                            String::new()
                        }
                    ));
                    a.vmac = v;
                }
            }
            if let Some(m) = options.mask {
                if Some(m) != a.mask {
                    changes.push(format!("alias {an}: mask {m}: {MASK_NOTE}"));
                    a.mask = Some(m);
                }
            }
            let member_attrs =
                options.join || options.leave || options.selw.is_some() || options.selp.is_some();
            match member {
                None if member_attrs => return Err(Refusal::NeedsMember.into()),
                None => {}
                Some(m) => {
                    if next.cluster.member_id(m).is_none() {
                        return Err(Refusal::NoSuchMember(m.clone()).into());
                    }
                    let a = &mut next.cluster.aliases[idx];
                    let pos = a.members.iter().position(|j| &j.member == m);
                    if options.leave {
                        match pos {
                            Some(p) if a.members[p].joined => {
                                // The entry stays, joined false: its attributes and place in
                                // the join order outlive the leave (cluamgr(8), CA8).
                                a.members[p].joined = false;
                                changes.push(format!(
                                    "alias {an}: member {m} left (new flows avoid it; its established connections finish; selw {}, selp {} kept for a rejoin)",
                                    a.members[p].selw, a.members[p].selp
                                ));
                            }
                            _ => {
                                return Err(Refusal::NotJoined {
                                    member: m.clone(),
                                    alias: an,
                                }
                                .into())
                            }
                        }
                    } else {
                        let p = match (pos, options.join) {
                            (Some(p), true) if !a.members[p].joined => {
                                let j = &mut a.members[p];
                                j.joined = true;
                                changes.push(format!(
                                    "alias {an}: member {m} joined (selw {}, selp {}, its place in the join order kept)",
                                    j.selw, j.selp
                                ));
                                p
                            }
                            (Some(p), _) => p,
                            (None, true) => {
                                a.members.push(JoinSpec {
                                    member: m.clone(),
                                    selw: 1,
                                    selp: 1,
                                    joined: true,
                                });
                                changes.push(format!("alias {an}: member {m} joined"));
                                a.members.len() - 1
                            }
                            (None, false) => {
                                return Err(Refusal::NeverJoined {
                                    member: m.clone(),
                                    alias: an,
                                }
                                .into())
                            }
                        };
                        let j = &mut a.members[p];
                        let later = if j.joined {
                            ""
                        } else {
                            " (it has left the alias: applies when it joins again)"
                        };
                        if let Some(w) = options.selw {
                            if w != j.selw {
                                changes.push(format!(
                                    "alias {an}: member {m} selw {} -> {w}{later}",
                                    j.selw
                                ));
                                j.selw = w;
                            }
                        }
                        if let Some(sp) = options.selp {
                            if sp != j.selp {
                                changes.push(format!(
                                    "alias {an}: member {m} selp {} -> {sp}{later}",
                                    j.selp
                                ));
                                j.selp = sp;
                            }
                        }
                    }
                }
            }
        }
    }
    next.cluster.validate().map_err(ApplyError::Invalid)?;
    Ok(Applied::Changed(Box::new(next), changes))
}

fn load_services(
    next: &mut ControlState,
    path: &Path,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
    changes: &mut Vec<String>,
) -> Result<(), ApplyError> {
    let shown = path.display().to_string();
    let text = read_file(path).map_err(|e| Refusal::ReadServices {
        path: path.to_path_buf(),
        kind: e.kind(),
        message: e.to_string(),
    })?;
    let services = parse_services(&text, &shown).map_err(Refusal::Services)?;
    let before = &next.cluster.services;
    let mut added = 0;
    let mut changed = 0;
    for s in &services {
        match before
            .iter()
            .find(|b| b.port == s.port && b.proto == s.proto)
        {
            None => added += 1,
            Some(b) if b.options != s.options => changed += 1,
            Some(_) => {}
        }
    }
    let removed = before
        .iter()
        .filter(|b| {
            !services
                .iter()
                .any(|s| s.port == b.port && s.proto == b.proto)
        })
        .count();
    changes.push(format!(
        "services loaded from {shown}: {} entries ({added} added, {changed} changed, {removed} removed)",
        services.len()
    ));
    changes.extend(policy_changes(before, &services));
    changes.extend(service_notes(&services));
    next.cluster.services = services;
    Ok(())
}

/// What a change of a port's load-balancing policy (issue 9; SC1–SC3) does, one line per
/// port of `after` whose policy differs from `before` (an unlisted port has none, `-`) and is
/// or was other than the default `wrr`.
pub fn policy_changes(before: &[ServiceSpec], after: &[ServiceSpec]) -> Vec<String> {
    let policy = |s: Option<&ServiceSpec>| {
        s.map_or("-", |s| {
            crate::services::effective_policy(&s.options).trim_end_matches(" (default)")
        })
    };
    after
        .iter()
        .filter_map(|s| {
            let b = before
                .iter()
                .find(|b| b.port == s.port && b.proto == s.proto);
            let (old, new) = (policy(b), policy(Some(s)));
            // Between "none" and the default round robin nothing changes for anyone.
            let plain = |p: &str| p == "-" || p == "wrr";
            (old != new && !(plain(old) && plain(new))).then(|| {
                let mut line = format!(
                    "service {}/{} policy {old} -> {new}: {POLICY_CHANGE_NOTE}",
                    s.port,
                    s.proto.name()
                );
                if matches!(old, "sticky" | "wildcard_sticky") {
                    line.push_str(STICKY_DROPPED_NOTE);
                }
                line
            })
        })
        .collect()
}

/// What any policy change does (docs/clua_services.md).
pub const POLICY_CHANGE_NOTE: &str =
    "new connections follow it, established connections keep their member";
/// Added when the old policy kept client affinities (SC2: "while the policy is unchanged").
pub const STICKY_DROPPED_NOTE: &str = "; the clients' affinities for the port are no longer used \
and expire [tables] sticky_timeout_ms after their last refresh";

/// The service options the router stores but does not act on, each with where it takes effect
/// (CA9; issue 7): `(option, note)`.
pub const STORED_SERVICE_OPTIONS: [(&str, &str); 3] = [
    ("in_nolocal", IN_NOLOCAL_NOTE),
    ("out_alias", OUT_ALIAS_NOTE),
    ("static", STATIC_NOTE),
];

fn stored_option(o: &crate::model::ServiceOptions, name: &str) -> bool {
    match name {
        "in_nolocal" => o.in_nolocal,
        "out_alias" => o.out_alias,
        _ => o.static_port,
    }
}

/// `note: OPTION (PORT/PROTO, ...): where it takes effect`, one line per stored-only option
/// that some of `services` carry.
pub fn service_notes(services: &[ServiceSpec]) -> Vec<String> {
    STORED_SERVICE_OPTIONS
        .iter()
        .filter_map(|(name, note)| {
            let ports: Vec<String> = services
                .iter()
                .filter(|s| stored_option(&s.options, name))
                .map(|s| format!("{}/{}", s.port, s.proto.name()))
                .collect();
            (!ports.is_empty()).then(|| format!("note: {name} ({}): {note}", ports.join(", ")))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::Ipv4Addr;

    use clua_pipeline::snapshot::{Encap, MemberId, PortRole, ServiceMode};

    use super::*;
    use crate::command::parse_args;
    use crate::model::{MemberMac, MemberSpec, PortSpec, Prefix};

    pub(crate) const MACS: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];

    /// A router with a client port on 198.51.100.0/24 and an interconnect, members m1..m3, the
    /// default alias `cluster` (every member joined, selw 1) and `web`, which m1, m2, m3 join
    /// with selw 3, 2, 1 (seed 000 §6.8's example weights), all through cluamgr commands.
    pub(crate) fn state() -> ControlState {
        let port = |name: &str, role, addr: &str| PortSpec {
            name: name.into(),
            role,
            address: Some(addr.parse::<Prefix>().unwrap()),
            mtu: 1500,
            mac: None,
            flow_source: None,
        };
        let member = |i: u8| MemberSpec {
            name: format!("m{i}"),
            port: "ic0".into(),
            address: Ipv4Addr::new(192, 0, 2, 10 + i),
            mac: MemberMac::Configured([2, 0, 0, 0, 1, i]),
            encap: Encap::L2,
            up: true,
            agent: false,
            listening: None,
            out_alias: None,
        };
        let alias = |name: &str, last: u8| AliasSpec {
            name: name.into(),
            address: Ipv4Addr::new(198, 51, 100, last),
            members: Vec::new(),
            rpri: DEFAULT_RPRI,
            virtual_subnet: false,
            mask: None,
            vmac: false,
        };
        let mut cluster = Cluster {
            name: "lab".into(),
            default_alias: "cluster".into(),
            max_aliases: 8,
            ports: vec![
                port("client", PortRole::Client, "198.51.100.2/24"),
                port("ic0", PortRole::Interconnect, "192.0.2.2/25"),
            ],
            members: (1..=3).map(member).collect(),
            aliases: vec![alias("cluster", 101), alias("web", 100)],
            services: Vec::new(),
            advert_port: 0,
        };
        cluster.join_default_alias();
        let mut s = ControlState {
            cluster,
            services_file: None,
            resvok: false,
        };
        for (m, w) in [("m1", 3), ("m2", 2), ("m3", 1)] {
            s = run(
                &s,
                &["-a", &format!("alias=web,join,selw={w}"), "--member", m],
            )
            .unwrap()
            .0;
        }
        s
    }

    pub(crate) fn run(
        s: &ControlState,
        args: &[&str],
    ) -> Result<(ControlState, Vec<String>), ApplyError> {
        let cmd = parse_args(args).unwrap();
        let files = |p: &Path| match p.to_str() {
            Some("/etc/clua_services") => Ok(
                "ssh 22/tcp in_single,in_nolocal\nlogin 513/tcp in_multi,out_alias,static\n".into(),
            ),
            Some("/etc/clua_services.sticky") => Ok(
                "ssh 22/tcp in_single,in_nolocal\nlogin 513/tcp in_multi,out_alias,static,sticky\n"
                    .into(),
            ),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        match apply(s, &cmd, &files)? {
            Applied::Changed(next, changes) => {
                next.cluster
                    .snapshot(2, &MACS)
                    .expect("an applied state builds a snapshot");
                Ok((*next, changes))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn web_schedule(s: &ControlState) -> (Vec<u32>, Option<MemberId>) {
        let snap = s.cluster.snapshot(3, &MACS).unwrap();
        let web = snap.aliases.iter().find(|a| a.name == "web").unwrap();
        (
            web.multi_schedule.iter().map(|m| m.0).collect(),
            web.single_active,
        )
    }

    /// cluamgr(8): an option not given leaves the value unchanged; CA8: selw and selp are the
    /// member's attributes for the alias, so they outlive a leave, and so does its place in
    /// the join order (which picks the in_single active member, CA9).
    #[test]
    fn a_rejoin_keeps_selw_selp_and_the_join_order() {
        let s = state();
        let (s, _) = run(&s, &["-a", "alias=web,selp=7", "--member", "m1"]).unwrap();
        let (s, _) = run(&s, &["-a", "alias=web,selp=7", "--member", "m2"]).unwrap();
        let before = web_schedule(&s);
        assert_eq!(before, (vec![0, 0, 0, 1, 1], Some(MemberId(0))));
        let (left, changes) = run(&s, &["-a", "alias=web,leave", "--member", "m1"]).unwrap();
        assert!(changes[0].contains("m1 left"), "{changes:?}");
        assert_eq!(
            web_schedule(&left),
            (vec![1, 1], Some(MemberId(1))),
            "a member that left gets no new flows (CA3-like drain)"
        );
        let (back, changes) = run(&left, &["-a", "alias=web,join", "--member", "m1"]).unwrap();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(
            changes[0].contains("m1 joined") && changes[0].contains("selw 3, selp 7"),
            "{changes:?}"
        );
        assert_eq!(web_schedule(&back), before);
        assert_eq!(back, s, "leave then join is no change at all");
        // Leaving twice is refused: it has already left.
        let e = run(&left, &["-a", "alias=web,leave", "--member", "m1"]).unwrap_err();
        assert!(e.to_string().contains("has not joined"), "{e}");
        // A left member's attributes can be set; they apply when it joins again.
        let (left2, _) = run(&left, &["-a", "alias=web,selw=5", "--member", "m1"]).unwrap();
        assert_eq!(web_schedule(&left2), (vec![1, 1], Some(MemberId(1))));
        let (back2, _) = run(&left2, &["-a", "alias=web,join", "--member", "m1"]).unwrap();
        assert_eq!(web_schedule(&back2).0, vec![0, 0, 0, 0, 0, 1, 1]);
    }

    /// Issue 7: router-side attributes that this router stores but does not act on are
    /// accepted, and the reply says where and when they take effect.
    #[test]
    fn the_reply_says_where_stored_attributes_take_effect() {
        let s = state();
        let (_, changes) = run(&s, &["-a", "alias=web,rpri=100"]).unwrap();
        assert_eq!(changes, [format!("alias web: rpri 1 -> 100: {RPRI_NOTE}")]);
        let (_, changes) = run(&s, &["-a", "alias=web,virtual,mask=255.255.255.0"]).unwrap();
        assert_eq!(
            changes,
            [
                format!("alias web: virtual false -> true: {VIRTUAL_NOTE}"),
                format!("alias web: mask 255.255.255.0: {MASK_NOTE}"),
            ]
        );
        let (_, changes) = run(&s, &["-r", "resvok"]).unwrap();
        assert_eq!(changes, [format!("resvok false -> true: {RESVOK_NOTE}")]);
        let (_, changes) = run(&s, &["--register", "22/tcp,in_nolocal"]).unwrap();
        assert_eq!(
            changes,
            [
                "service 22/tcp registered".to_string(),
                format!("note: in_nolocal (22/tcp): {IN_NOLOCAL_NOTE}"),
            ]
        );
        let (_, changes) = run(&s, &["-F", "/etc/clua_services"]).unwrap();
        assert_eq!(
            changes[1..],
            [
                format!("note: in_nolocal (22/tcp): {IN_NOLOCAL_NOTE}"),
                format!("note: out_alias (513/tcp): {OUT_ALIAS_NOTE}"),
                format!("note: static (513/tcp): {STATIC_NOTE}"),
            ]
        );
        // in_multi alone is acted on: no note.
        let (_, changes) = run(&s, &["--register", "7001/udp,in_multi"]).unwrap();
        assert_eq!(changes, ["service 7001/udp registered"]);
    }

    /// Each refusal is a typed reason; its text is the reply cluamgr prints.
    #[test]
    fn refusals_are_typed_and_read_as_before() {
        let s = state();
        let refusal = |args: &[&str]| match run(&s, args).unwrap_err() {
            ApplyError::Refused(r) => (r.clone(), r.to_string()),
            other => panic!("not a refusal: {other:?}"),
        };
        let (r, text) = refusal(&["-s", "nosuch"]);
        assert_eq!(r, Refusal::NoAlias(AliasRef::Name("nosuch".into())));
        assert_eq!(text, "no alias \"nosuch\"");
        let (r, text) = refusal(&["-a", "alias=nosuch,rpri=3"]);
        assert_eq!(r, Refusal::NoAliasByName(AliasRef::Name("nosuch".into())));
        assert_eq!(
            text,
            "no alias \"nosuch\"; name a new alias by its address (or an /etc/hosts name)"
        );
        let (r, text) = refusal(&["-f"]);
        assert_eq!(r, Refusal::NoServicesFile);
        assert_eq!(
            text,
            "no clua_services file is configured (cluster.services_file); use -F FILE"
        );
        let (r, text) = refusal(&["-F", "/nonexistent"]);
        assert!(
            matches!(&r, Refusal::ReadServices { path, kind: std::io::ErrorKind::NotFound, .. } if path == Path::new("/nonexistent")),
            "{r:?}"
        );
        assert!(text.starts_with("/nonexistent: cannot read: "), "{text}");
        // The parser refuses this too; a command built by other means is refused here.
        let mut options = crate::model::ServiceOptions::default();
        options.set("in_single").unwrap();
        options.set("in_multi").unwrap();
        let register = Command::Register {
            port: 22,
            proto: Proto::Tcp,
            options,
        };
        let e = apply(&s, &register, &|_| unreachable!()).unwrap_err();
        let ApplyError::Refused(r) = e else {
            panic!("not a refusal: {e:?}")
        };
        let text = r.to_string();
        assert!(
            matches!(
                &r,
                Refusal::RegisterOptions {
                    port: 22,
                    proto: Proto::Tcp,
                    why: ServiceOptionError::Exclusive(_)
                }
            ),
            "{r:?}"
        );
        assert_eq!(
            text,
            "22/tcp: in_single and in_multi are mutually exclusive"
        );
        let (r, _) = refusal(&["-a", "alias=web,join"]);
        assert_eq!(r, Refusal::NeedsMember);
        let (r, text) = refusal(&["-a", "alias=web,join", "--member", "m9"]);
        assert_eq!(r, Refusal::NoSuchMember("m9".into()));
        assert_eq!(text, "no member \"m9\" is configured");
        let (r, text) = refusal(&["-a", "alias=198.51.100.50,leave", "--member", "m1"]);
        assert_eq!(
            r,
            Refusal::NotJoined {
                member: "m1".into(),
                alias: "198.51.100.50".into()
            }
        );
        assert_eq!(text, "member m1 has not joined alias 198.51.100.50");
        let (r, text) = refusal(&["-a", "alias=198.51.100.50,selw=2", "--member", "m1"]);
        assert_eq!(
            r,
            Refusal::NeverJoined {
                member: "m1".into(),
                alias: "198.51.100.50".into()
            }
        );
        assert_eq!(
            text,
            "member m1 has not joined alias 198.51.100.50 (add join)"
        );
    }

    /// Issue 9 (SC2: "while the policy is unchanged"): a policy change, by `-F`/`-f` or
    /// `--register`, reaches the snapshot and says what happens to connections and affinities.
    #[test]
    fn a_policy_change_is_applied_and_explained() {
        let (s, _) = run(&state(), &["-F", "/etc/clua_services"]).unwrap();
        let (s, changes) = run(&s, &["-F", "/etc/clua_services.sticky"]).unwrap();
        assert!(
            changes.contains(&format!(
                "service 513/tcp policy wrr -> sticky: {POLICY_CHANGE_NOTE}"
            )),
            "{changes:?}"
        );
        let snap = s.cluster.snapshot(3, &MACS).unwrap();
        assert_eq!(
            snap.service(6, 513),
            (
                ServiceMode::InMulti,
                clua_pipeline::snapshot::Policy::Sticky
            )
        );
        assert_eq!(
            snap.service(6, 22),
            (ServiceMode::InSingle, clua_pipeline::snapshot::Policy::Wrr)
        );
        let (s, changes) = run(&s, &["--register", "513/tcp,in_multi,weighted"]).unwrap();
        assert!(
            changes.contains(&format!(
                "service 513/tcp policy sticky -> weighted: {POLICY_CHANGE_NOTE}{STICKY_DROPPED_NOTE}"
            )),
            "{changes:?}"
        );
        let snap = s.cluster.snapshot(4, &MACS).unwrap();
        assert_eq!(
            snap.service(6, 513).1,
            clua_pipeline::snapshot::Policy::Weighted
        );
        let (s, changes) = run(&s, &["--register", "21/tcp,in_multi,wildcard_sticky"]).unwrap();
        assert!(
            changes.contains(&format!(
                "service 21/tcp policy - -> wildcard_sticky: {POLICY_CHANGE_NOTE}"
            )),
            "{changes:?}"
        );
        assert!(s.cluster.snapshot(5, &MACS).unwrap().wildcard_sticky());
        // Unchanged policy: no line.
        let (_, changes) = run(
            &s,
            &["--register", "21/tcp,in_multi,wildcard_sticky,out_alias"],
        )
        .unwrap();
        assert!(!changes.iter().any(|c| c.contains("policy")), "{changes:?}");
        // A policy without in_multi is refused with the parser's words.
        let e = parse_args(["--register", "80/tcp,sticky"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("sticky is a policy of in_multi ports"),
            "{e}"
        );
    }
}
