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
//!   the workers' connection tables and finish there (drain).
//! - `rpri`, `virtual`, `mask` are the router's attributes for the alias; stored and shown
//!   (proxy-ARP master election and RIP use them later).
//! - `-f` re-reads the configured clua_services file, `-F FILE` reads another one; `--register`
//!   adds or replaces one service entry (clua_registerservice, CA11).

use std::path::{Path, PathBuf};

use crate::command::{AliasRef, Command, ShowWhat};
use crate::model::{AliasSpec, Cluster, JoinSpec, ModelError, ServiceSpec, DEFAULT_RPRI};
use crate::services::parse_services;

/// What the control plane holds besides the cluster itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlState {
    /// The cluster model.
    pub cluster: Cluster,
    /// The clua_services file that `-f` reloads, if one is configured.
    pub services_file: Option<PathBuf>,
    /// `-r resvok`: RFC 1918 aliases may be advertised (stored; RIP comes later).
    pub resvok: bool,
}

/// Why a command was refused. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// The command's result would not be a valid cluster.
    Invalid(Vec<ModelError>),
    /// The command cannot be carried out as asked.
    Refused(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Invalid(errs) => {
                for (i, e) in errs.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            ApplyError::Refused(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ApplyError {}

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

fn refused(why: impl Into<String>) -> ApplyError {
    ApplyError::Refused(why.into())
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
        Command::Show(what) => {
            if let ShowWhat::Alias(a) = what {
                if find_alias(&state.cluster, a).is_none() {
                    return Err(refused(format!("no alias {}", describe(a))));
                }
            }
            return Ok(Applied::Show(what.clone()));
        }
        Command::Router { resvok } => {
            if let Some(r) = resvok {
                if *r != state.resvok {
                    changes.push(format!("resvok {} -> {}", state.resvok, r));
                }
                next.resvok = *r;
            }
        }
        Command::ReloadServices => {
            let path = state.services_file.clone().ok_or_else(|| {
                refused("no clua_services file is configured (cluster.services_file); use -F FILE")
            })?;
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
            options
                .check()
                .map_err(|e| refused(format!("{port}/{}: {e}", proto.name())))?;
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
                    s.options = *options;
                }
                None => {
                    changes.push(format!("service {port}/{} registered", proto.name()));
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
                        return Err(refused(format!(
                            "no alias {}; name a new alias by its address (or an /etc/hosts name)",
                            describe(alias)
                        )));
                    };
                    next.cluster.aliases.push(AliasSpec {
                        name: addr.to_string(),
                        address: *addr,
                        members: Vec::new(),
                        rpri: DEFAULT_RPRI,
                        virtual_subnet: false,
                        mask: None,
                    });
                    changes.push(format!("alias {addr} specified (routed, no members yet)"));
                    next.cluster.aliases.len() - 1
                }
            };
            let a = &mut next.cluster.aliases[idx];
            let an = a.name.clone();
            if let Some(r) = options.rpri {
                if r != a.rpri {
                    changes.push(format!("alias {an}: rpri {} -> {r}", a.rpri));
                    a.rpri = r;
                }
            }
            if let Some(v) = options.virtual_subnet {
                if v != a.virtual_subnet {
                    changes.push(format!("alias {an}: virtual {} -> {v}", a.virtual_subnet));
                    a.virtual_subnet = v;
                }
            }
            if let Some(m) = options.mask {
                if Some(m) != a.mask {
                    changes.push(format!("alias {an}: mask {m}"));
                    a.mask = Some(m);
                }
            }
            let member_attrs =
                options.join || options.leave || options.selw.is_some() || options.selp.is_some();
            match member {
                None if member_attrs => {
                    return Err(refused(
                        "join, leave, selw and selp are a member's attributes: on a router give --member NAME",
                    ))
                }
                None => {}
                Some(m) => {
                    if next.cluster.member_id(m).is_none() {
                        return Err(refused(format!("no member \"{m}\" is configured")));
                    }
                    let a = &mut next.cluster.aliases[idx];
                    let pos = a.members.iter().position(|j| &j.member == m);
                    if options.leave {
                        match pos {
                            Some(p) => {
                                a.members.remove(p);
                                changes.push(format!(
                                    "alias {an}: member {m} left (new flows avoid it; its established connections finish)"
                                ));
                            }
                            None => return Err(refused(format!("member {m} has not joined alias {an}"))),
                        }
                    } else {
                        let p = match (pos, options.join) {
                            (Some(p), _) => p,
                            (None, true) => {
                                a.members.push(JoinSpec { member: m.clone(), selw: 1, selp: 1 });
                                changes.push(format!("alias {an}: member {m} joined"));
                                a.members.len() - 1
                            }
                            (None, false) => {
                                return Err(refused(format!(
                                    "member {m} has not joined alias {an} (add join)"
                                )))
                            }
                        };
                        let j = &mut a.members[p];
                        if let Some(w) = options.selw {
                            if w != j.selw {
                                changes.push(format!("alias {an}: member {m} selw {} -> {w}", j.selw));
                                j.selw = w;
                            }
                        }
                        if let Some(sp) = options.selp {
                            if sp != j.selp {
                                changes.push(format!("alias {an}: member {m} selp {} -> {sp}", j.selp));
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
    let text = read_file(path).map_err(|e| refused(format!("{shown}: cannot read: {e}")))?;
    let services = parse_services(&text, &shown).map_err(|e| refused(e.to_string()))?;
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
    next.cluster.services = services;
    Ok(())
}

fn describe(a: &AliasRef) -> String {
    match a {
        AliasRef::Default => "DEFAULTALIAS".into(),
        AliasRef::Addr(x) => x.to_string(),
        AliasRef::Name(n) => format!("\"{n}\""),
    }
}
