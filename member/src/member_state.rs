//! A member's own view of the aliases it serves, as cluamgr on the member changes it.
//!
//! On a member, `cluamgr -a alias=X,join,selw=N,selp=N` sets the member's attributes for alias X
//! (CA8: selw and selp are per member and per alias), and `leave` withdraws it. The member agent
//! advertises this state to the routers. Router attributes (`rpri`, `virtual`, `mask`), `-r`,
//! `-f`, `-F`, `--register` and `--member` belong to routers and are refused here with a message
//! saying so. Applying a command is all-or-nothing: on an error the state is unchanged.

use std::fmt;
use std::net::Ipv4Addr;

use clua_ctl::command::{AliasOptions, AliasRef, Command, ShowWhat, USAGE};
use clua_ctl::model::{SELP_RANGE, SELW_RANGE};

/// Default `selw` and `selp` of a newly known alias (cluamgr(8)).
pub const DEFAULT_SELW: u32 = 1;
/// See [`DEFAULT_SELW`].
pub const DEFAULT_SELP: u32 = 1;

/// One alias this member knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberAlias {
    /// The alias address.
    pub addr: Ipv4Addr,
    /// Whether the member has joined it (a left alias stays listed, joined false, so that the
    /// next advert says so explicitly).
    pub joined: bool,
    /// Selection weight: connections per turn.
    pub selw: u32,
    /// Selection priority: only the highest tier of joined members gets traffic.
    pub selp: u32,
}

/// The member's aliases, in the order they became known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberState {
    /// The aliases.
    pub aliases: Vec<MemberAlias>,
}

impl MemberState {
    /// The alias with address `addr`.
    pub fn get(&self, addr: Ipv4Addr) -> Option<&MemberAlias> {
        self.aliases.iter().find(|a| a.addr == addr)
    }

    /// The addresses of the joined aliases.
    pub fn joined(&self) -> Vec<Ipv4Addr> {
        self.aliases
            .iter()
            .filter(|a| a.joined)
            .map(|a| a.addr)
            .collect()
    }

    /// `cluamgr -s` output: one line per alias.
    pub fn show(&self, only: Option<Ipv4Addr>) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.aliases {
            if only.is_some_and(|o| o != a.addr) {
                continue;
            }
            out.push(format!(
                "alias {} {} selw={} selp={}",
                a.addr,
                if a.joined { "joined" } else { "not joined" },
                a.selw,
                a.selp
            ));
        }
        if out.is_empty() {
            out.push(match only {
                Some(a) => format!("alias {a}: not known to this member"),
                None => "no aliases".into(),
            });
        }
        out
    }
}

/// `cluamgr -s --json` on a member (issue 11; docs/cluamgr.md "On a member"): schema 1, fields
/// only ever added.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberShow {
    /// Schema version: 1.
    pub schema: u32,
    /// Always `member` (aliasd's replies say `all` or `alias`).
    pub scope: String,
    /// The member's node name (the routers' `[[member]]` name).
    pub node: String,
    /// Its aliases (one, with `-s ALIAS`).
    pub aliases: Vec<MemberShowAlias>,
}

/// One alias of [`MemberShow`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberShowAlias {
    /// The alias address.
    pub address: String,
    /// Joined (a left alias stays listed, false).
    pub joined: bool,
    /// Selection weight.
    pub selw: u32,
    /// Selection priority.
    pub selp: u32,
}

impl MemberState {
    /// The `-s` (`what`) reply in its JSON form; an alias this member does not know is an
    /// error, as in the text form.
    pub fn show_json(
        &self,
        node: &str,
        what: &ShowWhat,
        resolve_default: Ipv4Addr,
    ) -> Result<MemberShow, MemberCommandError> {
        let only = match what {
            ShowWhat::All => None,
            ShowWhat::Alias(a) => Some(resolve(a, resolve_default)?),
        };
        let aliases: Vec<MemberShowAlias> = self
            .aliases
            .iter()
            .filter(|a| only.is_none_or(|o| o == a.addr))
            .map(|a| MemberShowAlias {
                address: a.addr.to_string(),
                joined: a.joined,
                selw: a.selw,
                selp: a.selp,
            })
            .collect();
        if let (Some(a), true) = (only, aliases.is_empty()) {
            return Err(MemberCommandError::UnknownAlias(a));
        }
        Ok(MemberShow {
            schema: 1,
            scope: "member".into(),
            node: node.into(),
            aliases,
        })
    }
}

/// Why a command was refused on a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberCommandError {
    /// `rpri`, `virtual` or `mask`: router attributes.
    RouterAttribute(&'static str),
    /// `-r`, `-f`, `-F`, `--register`: router commands.
    RouterCommand(&'static str),
    /// `--member NAME`.
    MemberFlag,
    /// A host name the CLI did not resolve.
    Unresolved(String),
    /// `-s ALIAS --json` for an alias this member does not have.
    UnknownAlias(Ipv4Addr),
    /// `join` and `leave` together.
    JoinAndLeave,
    /// A selw/selp value out of range (a request that did not come through the parser).
    OutOfRange {
        /// `selw` or `selp`.
        option: &'static str,
        /// The value.
        value: u32,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
}

impl fmt::Display for MemberCommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RouterAttribute(o) => write!(
                f,
                "{o} is a router attribute; this is a member (set it on the alias routers)"
            ),
            Self::RouterCommand(c) => write!(
                f,
                "cluamgr {c} is a router command; this is a member (run it on the alias routers)"
            ),
            Self::MemberFlag => f.write_str("this is a member; --member is for routers"),
            Self::Unresolved(n) => write!(
                f,
                "alias `{n}` is not an address (cluamgr resolves host names from /etc/hosts)"
            ),
            Self::UnknownAlias(a) => write!(f, "alias {a}: not known to this member"),
            Self::JoinAndLeave => f.write_str("join and leave are mutually exclusive"),
            Self::OutOfRange {
                option,
                value,
                min,
                max,
            } => write!(f, "{option}={value} is out of range {min}..={max}"),
        }
    }
}

impl std::error::Error for MemberCommandError {}

fn resolve(alias: &AliasRef, default: Ipv4Addr) -> Result<Ipv4Addr, MemberCommandError> {
    match alias {
        AliasRef::Default => Ok(default),
        AliasRef::Addr(a) => Ok(*a),
        AliasRef::Name(n) => Err(MemberCommandError::Unresolved(n.clone())),
    }
}

fn check_range(
    option: &'static str,
    v: Option<u32>,
    r: &core::ops::RangeInclusive<u32>,
) -> Result<(), MemberCommandError> {
    match v {
        Some(value) if !r.contains(&value) => Err(MemberCommandError::OutOfRange {
            option,
            value,
            min: *r.start(),
            max: *r.end(),
        }),
        _ => Ok(()),
    }
}

fn check_options(o: &AliasOptions) -> Result<(), MemberCommandError> {
    if o.rpri.is_some() {
        return Err(MemberCommandError::RouterAttribute("rpri"));
    }
    if o.virtual_subnet.is_some() {
        return Err(MemberCommandError::RouterAttribute("virtual"));
    }
    if o.mask.is_some() {
        return Err(MemberCommandError::RouterAttribute("mask"));
    }
    if o.join && o.leave {
        return Err(MemberCommandError::JoinAndLeave);
    }
    check_range("selw", o.selw, &SELW_RANGE)?;
    check_range("selp", o.selp, &SELP_RANGE)
}

/// Applies `cmd` to `state`: the new state and the lines to print. `resolve_default` is the
/// address `DEFAULTALIAS` names. `-a` on an alias not yet known adds it (joined only with
/// `join`; selw and selp default to 1); `leave` keeps the alias, joined false. `-s` and `-h`
/// leave the state as it is.
pub fn apply_member(
    state: &MemberState,
    cmd: &Command,
    resolve_default: Ipv4Addr,
) -> Result<(MemberState, Vec<String>), MemberCommandError> {
    match cmd {
        Command::Alias {
            alias,
            options,
            member,
        } => {
            if member.is_some() {
                return Err(MemberCommandError::MemberFlag);
            }
            check_options(options)?;
            let addr = resolve(alias, resolve_default)?;
            let mut next = state.clone();
            let i = match next.aliases.iter().position(|a| a.addr == addr) {
                Some(i) => i,
                None => {
                    next.aliases.push(MemberAlias {
                        addr,
                        joined: false,
                        selw: DEFAULT_SELW,
                        selp: DEFAULT_SELP,
                    });
                    next.aliases.len() - 1
                }
            };
            let before = state.get(addr).copied();
            let a = &mut next.aliases[i];
            if options.join {
                a.joined = true;
            }
            if options.leave {
                a.joined = false;
            }
            if let Some(w) = options.selw {
                a.selw = w;
            }
            if let Some(p) = options.selp {
                a.selp = p;
            }
            let after = *a;
            let line = match before {
                Some(b) if b == after => format!("alias {addr}: unchanged"),
                Some(b) => {
                    let mut what = Vec::new();
                    if b.joined != after.joined {
                        what.push(if after.joined { "joined" } else { "left" }.to_string());
                    }
                    if b.selw != after.selw {
                        what.push(format!("selw {} -> {}", b.selw, after.selw));
                    }
                    if b.selp != after.selp {
                        what.push(format!("selp {} -> {}", b.selp, after.selp));
                    }
                    format!("alias {addr}: {}", what.join(", "))
                }
                None => format!(
                    "alias {addr}: {} selw={} selp={}",
                    if after.joined {
                        "joined"
                    } else {
                        "known, not joined"
                    },
                    after.selw,
                    after.selp
                ),
            };
            Ok((next, vec![line]))
        }
        Command::Show(ShowWhat::All) => Ok((state.clone(), state.show(None))),
        Command::Show(ShowWhat::Alias(a)) => {
            let addr = resolve(a, resolve_default)?;
            Ok((state.clone(), state.show(Some(addr))))
        }
        Command::Help => Ok((state.clone(), USAGE.lines().map(String::from).collect())),
        Command::Router { .. }
        | Command::ReloadServices
        | Command::LoadServices { .. }
        | Command::Register { .. }
        | Command::Simulate(_)
        | Command::Capture(_)
        | Command::Reload => Err(MemberCommandError::RouterCommand(cmd.flag())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clua_ctl::alias_config::parse_alias_config;
    use clua_ctl::command::parse_args;

    const DEFAULT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
    const GOURMET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);

    fn cmd(s: &str) -> Command {
        let c = parse_args(s.split_whitespace()).unwrap();
        // The CLI resolves host names before sending.
        match c {
            Command::Alias {
                alias: AliasRef::Name(n),
                options,
                member,
            } if n == "gourmet" => Command::Alias {
                alias: AliasRef::Addr(GOURMET),
                options,
                member,
            },
            Command::Show(ShowWhat::Alias(AliasRef::Name(n))) if n == "gourmet" => {
                Command::Show(ShowWhat::Alias(AliasRef::Addr(GOURMET)))
            }
            c => c,
        }
    }

    fn run(state: &MemberState, s: &str) -> Result<(MemberState, Vec<String>), String> {
        apply_member(state, &cmd(s), DEFAULT).map_err(|e| e.to_string())
    }

    #[test]
    fn seed_readme_clu_alias_config() {
        let text = "\
/usr/sbin/cluamgr -a alias=DEFAULTALIAS,selw=3,selp=1,join
/usr/sbin/cluamgr -a alias=gourmet,join,selw=50
/usr/sbin/cluamgr -a alias=mailfeed,rpri=100
";
        let cmds = parse_alias_config(text, "clu_alias.config").unwrap();
        let s0 = MemberState::default();
        let (s1, out) = run(&s0, &cmds[0].1.to_args().join(" ")).unwrap();
        assert_eq!(out, vec!["alias 198.51.100.100: joined selw=3 selp=1"]);
        let (s2, out) = run(&s1, &cmds[1].1.to_args().join(" ")).unwrap();
        assert_eq!(out, vec!["alias 198.51.100.101: joined selw=50 selp=1"]);
        assert_eq!(
            s2.aliases,
            vec![
                MemberAlias {
                    addr: DEFAULT,
                    joined: true,
                    selw: 3,
                    selp: 1
                },
                MemberAlias {
                    addr: GOURMET,
                    joined: true,
                    selw: 50,
                    selp: 1
                }
            ]
        );
        assert_eq!(
            apply_member(&s2, &cmds[2].1, DEFAULT)
                .unwrap_err()
                .to_string(),
            "rpri is a router attribute; this is a member (set it on the alias routers)"
        );
        assert_eq!(s2.joined(), vec![DEFAULT, GOURMET]);
        assert_eq!(
            s2.show(None),
            vec![
                "alias 198.51.100.100 joined selw=3 selp=1",
                "alias 198.51.100.101 joined selw=50 selp=1"
            ]
        );
    }

    #[test]
    fn leave_keeps_the_alias_and_attributes_change() {
        let (s, _) = run(&MemberState::default(), "-a alias=DEFAULTALIAS,join").unwrap();
        assert_eq!(
            s.get(DEFAULT),
            Some(&MemberAlias {
                addr: DEFAULT,
                joined: true,
                selw: 1,
                selp: 1
            })
        );
        let (s, out) = run(&s, "-a alias=198.51.100.100,leave").unwrap();
        assert_eq!(out, vec!["alias 198.51.100.100: left"]);
        assert!(!s.get(DEFAULT).unwrap().joined);
        assert_eq!(s.aliases.len(), 1);
        assert!(s.joined().is_empty());
        let (s2, out) = run(&s, "-a alias=198.51.100.100,leave").unwrap();
        assert_eq!(out, vec!["alias 198.51.100.100: unchanged"]);
        assert_eq!(s2, s);
        let (s, out) = run(&s, "-a alias=DEFAULTALIAS,join,selw=5,selp=2").unwrap();
        assert_eq!(
            out,
            vec!["alias 198.51.100.100: joined, selw 1 -> 5, selp 1 -> 2"]
        );
        // Attributes of an alias not joined yet: known, not joined.
        let (s, out) = run(&s, "-a alias=gourmet,selw=7").unwrap();
        assert_eq!(
            out,
            vec!["alias 198.51.100.101: known, not joined selw=7 selp=1"]
        );
        assert_eq!(s.joined(), vec![DEFAULT]);
        let (_, out) = run(&s, "-s gourmet").unwrap();
        assert_eq!(out, vec!["alias 198.51.100.101 not joined selw=7 selp=1"]);
        let (_, out) = run(&s, "-s 198.51.100.9").unwrap();
        assert_eq!(out, vec!["alias 198.51.100.9: not known to this member"]);
        let (same, out) = run(&s, "-h").unwrap();
        assert_eq!(same, s);
        assert!(out.iter().any(|l| l.contains("-a ")));
        assert_eq!(
            run(&MemberState::default(), "-s").unwrap().1,
            vec!["no aliases"]
        );
    }

    #[test]
    fn router_things_are_refused() {
        let s = MemberState::default();
        for (c, m) in [
            (
                "-a alias=DEFAULTALIAS,virtual",
                "virtual is a router attribute; this is a member (set it on the alias routers)",
            ),
            (
                "-a alias=DEFAULTALIAS,mask=255.255.255.0",
                "mask is a router attribute; this is a member (set it on the alias routers)",
            ),
            (
                "-a alias=DEFAULTALIAS,join --member m1",
                "this is a member; --member is for routers",
            ),
            (
                "-r resvok",
                "cluamgr -r is a router command; this is a member (run it on the alias routers)",
            ),
            (
                "-f",
                "cluamgr -f is a router command; this is a member (run it on the alias routers)",
            ),
            (
                "-F /etc/clua_services",
                "cluamgr -F is a router command; this is a member (run it on the alias routers)",
            ),
            (
                "--register 7/udp",
                "cluamgr --register is a router command; this is a member (run it on the alias routers)",
            ),
            (
                "-a alias=mailfeed,join",
                "alias `mailfeed` is not an address (cluamgr resolves host names from /etc/hosts)",
            ),
        ] {
            assert_eq!(run(&s, c).unwrap_err(), m, "{c}");
        }
        // Requests that bypass the parser are checked too.
        let bad = Command::Alias {
            alias: AliasRef::Default,
            options: AliasOptions {
                selw: Some(0),
                ..Default::default()
            },
            member: None,
        };
        assert_eq!(
            apply_member(&s, &bad, DEFAULT).unwrap_err().to_string(),
            "selw=0 is out of range 1..=100"
        );
        let both = Command::Alias {
            alias: AliasRef::Default,
            options: AliasOptions {
                join: true,
                leave: true,
                ..Default::default()
            },
            member: None,
        };
        assert_eq!(
            apply_member(&s, &both, DEFAULT).unwrap_err(),
            MemberCommandError::JoinAndLeave
        );
    }
}
