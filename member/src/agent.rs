//! The member agent loop: adverts every interval (and at once on a change), cluamgr on the
//! member's socket, a goodbye and the undoing of the host preparation on SIGTERM/SIGINT.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::listen::read_listening_ports;
use crate::member_state::{apply_member, MemberCommandError, MemberState};
use clua_ctl::advert::{AdvertKind, AdvertRepr, AliasEntry, MAX_PORTS};
use clua_ctl::alias_config::{parse_alias_config, AliasConfigErrors};
use clua_ctl::command::Command;
use clua_ctl::keyfile::KeyFileError;
use clua_ctl::model::Proto;
use clua_ctl::protocol::{Reply, Request};

use crate::config::MemberConfig;
use crate::host::{HostError, HostGuard};
use clua_ctl::socket::AdminSocket;

/// How often the cluamgr socket and the stop flag are looked at.
const POLL: Duration = Duration::from_millis(20);

/// Why the agent could not start (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The key file.
    #[error("`key_file`: {0}")]
    Key(#[source] KeyFileError),
    /// The clu_alias.config file cannot be read.
    #[error("alias_config: {}: {source}", .path.display())]
    AliasConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The clu_alias.config file cannot be applied.
    #[error("alias_config: {0}")]
    AliasConfig(#[source] InitialStateError),
    /// The boot counter (`state_file`).
    #[error("`state_file`: {0}")]
    Boots(#[source] crate::boots::BootsError),
    /// Host preparation.
    #[error("preparing the host: {0}")]
    Host(#[source] HostError),
    /// The cluamgr socket.
    #[error("cluamgr socket: {}: {source}", .path.display())]
    Socket {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The advert socket.
    #[error("advert socket: binding {address}: {source}")]
    Advert {
        /// The address it was bound to.
        address: Ipv4Addr,
        /// Why.
        source: std::io::Error,
    },
    /// Signal handlers.
    #[error("installing signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The clua_services file (`services`) cannot be read.
    #[error("`services`: {}: {source}", .path.display())]
    ServicesRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The clua_services file has errors.
    #[error("`services`: {0}")]
    Services(#[source] clua_ctl::services::ServicesErrors),
    /// `[out_alias] ports` holds a port clua_services lists (CA9).
    #[error("`out_alias.ports`: {range} includes {port}/{} (`{service}` in clua_services); the range must hold no service port, static ones least of all", .proto.name())]
    RangeHoldsService {
        /// The range.
        range: clua_pipeline::out_alias::PortRange,
        /// The port.
        port: u16,
        /// Its protocol.
        proto: Proto,
        /// The service.
        service: String,
    },
}

/// The static and out_alias ports of the clua_services text `text` (named `file` in errors),
/// checked against this member's out_alias range (CA9, docs/out_alias.md).
pub fn service_plan(
    config: &MemberConfig,
    text: &str,
    file: &str,
) -> Result<crate::host::ServicePlan, AgentError> {
    let specs = clua_ctl::services::parse_services(text, file).map_err(AgentError::Services)?;
    if let Some(range) = config.out_alias {
        if let Some(s) = specs
            .iter()
            .filter(|s| range.contains(s.port))
            .min_by_key(|s| (!s.options.static_port, s.port))
        {
            return Err(AgentError::RangeHoldsService {
                range,
                port: s.port,
                proto: s.proto,
                service: s.name.clone(),
            });
        }
    }
    let mut static_ports: Vec<u16> = specs
        .iter()
        .filter(|s| s.options.static_port)
        .map(|s| s.port)
        .collect();
    static_ports.sort_unstable();
    static_ports.dedup();
    Ok(crate::host::ServicePlan {
        static_ports,
        out_alias_ports: specs
            .iter()
            .filter(|s| s.options.out_alias)
            .map(|s| (s.port, s.proto))
            .collect(),
    })
}

/// Why a cluamgr command was refused on this member.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefused {
    /// The command itself is not one a member carries out.
    #[error(transparent)]
    Command(#[from] MemberCommandError),
    /// The command names an alias outside the configuration's `aliases`.
    #[error("alias {0} is not one of this member's aliases (the `aliases` of its configuration)")]
    NotConfigured(Ipv4Addr),
}

/// Why the clu_alias.config could not be applied at start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InitialStateError {
    /// A line that is not a boot-time cluamgr command.
    #[error(transparent)]
    Parse(#[from] AliasConfigErrors),
    /// Commands that were refused, each with its line (1-based).
    #[error("{}", RefusedLines(.file, .refused))]
    Refused {
        /// The file, as errors name it.
        file: String,
        /// Every refused line and why.
        refused: Vec<(usize, CommandRefused)>,
    },
}

/// Refused clu_alias.config lines, one a line: `FILE:LINE: WHY`.
struct RefusedLines<'a>(&'a str, &'a [(usize, CommandRefused)]);

impl fmt::Display for RefusedLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (line, why)) in self.1.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{line}: {why}", self.0)?;
        }
        Ok(())
    }
}

/// The agent's state without any I/O: the member state, the advert sequence, cluamgr handling.
#[derive(Clone, Debug)]
pub struct Agent {
    /// The configuration.
    pub config: MemberConfig,
    /// The member's aliases.
    pub state: MemberState,
    /// This start's number from the boot counter ([`crate::boots`]): larger than every earlier
    /// start's, so routers tell a restarted agent from a replayed or late advert.
    pub boot_id: u64,
    /// The last sequence number sent.
    pub seq: u64,
}

/// The member state at start: every configured alias known, the default alias joined (CA1),
/// then the clu_alias.config commands (`text`, named `file` in errors) applied in order.
pub fn initial_state(
    config: &MemberConfig,
    alias_config: Option<(&str, &str)>,
) -> Result<MemberState, InitialStateError> {
    let mut state = MemberState::default();
    for &addr in &config.aliases {
        state.aliases.push(crate::member_state::MemberAlias {
            addr,
            joined: addr == config.default_alias,
            selw: crate::member_state::DEFAULT_SELW,
            selp: crate::member_state::DEFAULT_SELP,
        });
    }
    if let Some((text, file)) = alias_config {
        let cmds = parse_alias_config(text, file)?;
        let mut refused = Vec::new();
        for (line, cmd) in cmds {
            let cmd = resolve_names(cmd);
            match apply_checked(config, &state, &cmd) {
                Ok((s, _)) => state = s,
                Err(e) => refused.push((line, e)),
            }
        }
        if !refused.is_empty() {
            return Err(InitialStateError::Refused {
                file: file.to_string(),
                refused,
            });
        }
    }
    Ok(state)
}

/// A host name in a clu_alias.config line, resolved from /etc/hosts as cluamgr would.
fn resolve_names(cmd: Command) -> Command {
    use clua_ctl::command::{resolve_hosts, AliasRef, ShowWhat};
    let hosts = || std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let res = |a: AliasRef| match &a {
        AliasRef::Name(_) => resolve_hosts(&a, &hosts()).map_or(a, AliasRef::Addr),
        _ => a,
    };
    match cmd {
        Command::Alias {
            alias,
            options,
            member,
        } => Command::Alias {
            alias: res(alias),
            options,
            member,
        },
        Command::Show(ShowWhat::Alias(a)) => Command::Show(ShowWhat::Alias(res(a))),
        c => c,
    }
}

/// [`apply_member`], refusing aliases that are not in the configuration's `aliases` (their
/// addresses are not on `lo`, so this member cannot answer for them).
fn apply_checked(
    config: &MemberConfig,
    state: &MemberState,
    cmd: &Command,
) -> Result<(MemberState, Vec<String>), CommandRefused> {
    let (next, out) = apply_member(state, cmd, config.default_alias)?;
    if let Some(a) = next
        .aliases
        .iter()
        .find(|a| !config.aliases.contains(&a.addr))
    {
        return Err(CommandRefused::NotConfigured(a.addr));
    }
    Ok((next, out))
}

impl Agent {
    /// An agent for `config` with `state`, in its boot `boot_id` (from
    /// [`crate::boots::next_boot_id`]).
    pub fn new(config: MemberConfig, state: MemberState, boot_id: u64) -> Agent {
        Agent {
            config,
            state,
            boot_id,
            seq: 0,
        }
    }

    /// Handles one cluamgr request; the reply and whether the member state changed.
    pub fn handle(&mut self, req: &Request) -> (Reply, bool) {
        if req.json {
            // Issue 11: the read command (`-s`) in its JSON form (MemberShow, docs/cluamgr.md);
            // the CLI allows --json only with read commands, and a script must never get text
            // where it asked for JSON.
            let reply = match &req.command {
                Command::Show(what) => {
                    match self
                        .state
                        .show_json(&self.config.node, what, self.config.default_alias)
                    {
                        Ok(show) => match serde_json::to_string_pretty(&show) {
                            Ok(output) => Reply { ok: true, output },
                            Err(e) => Reply {
                                ok: false,
                                output: format!("--json: {e}"),
                            },
                        },
                        Err(e) => Reply {
                            ok: false,
                            output: e.to_string(),
                        },
                    }
                }
                c => Reply {
                    ok: false,
                    output: format!("--json: {} has no JSON form on a member", c.flag()),
                },
            };
            return (reply, false);
        }
        match apply_checked(&self.config, &self.state, &req.command) {
            Ok((next, out)) => {
                let changed = next != self.state;
                self.state = next;
                (
                    Reply {
                        ok: true,
                        output: out.join("\n"),
                    },
                    changed,
                )
            }
            Err(e) => (
                Reply {
                    ok: false,
                    output: e.to_string(),
                },
                false,
            ),
        }
    }

    /// The next advert (or goodbye) with `ports`: the sequence number goes up by one.
    pub fn next_advert(&mut self, kind: AdvertKind, ports: Vec<(Proto, u16)>) -> AdvertRepr {
        self.seq += 1;
        AdvertRepr {
            kind,
            node: self.config.node.clone(),
            boot_id: self.boot_id,
            seq: self.seq,
            interval_ms: self.config.interval_ms,
            aliases: self
                .state
                .aliases
                .iter()
                .map(|a| AliasEntry {
                    addr: a.addr,
                    joined: a.joined,
                    selw: a.selw,
                    selp: a.selp,
                })
                .collect(),
            ports,
            out_alias: self.config.out_alias,
        }
    }
}

struct Sender {
    sock: UdpSocket,
    routers: Vec<SocketAddrV4>,
    key: Vec<u8>,
}

impl Sender {
    fn send(&self, advert: &AdvertRepr) {
        let bytes = match advert.emit_signed(&self.key) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("clua-member: cannot encode advert: {e}");
                return;
            }
        };
        for r in &self.routers {
            if let Err(e) = self.sock.send_to(&bytes, r) {
                eprintln!("clua-member: sending advert to {r}: {e}");
            }
        }
    }
}

fn ports_for(agent: &Agent, last: &mut Vec<(Proto, u16)>) -> Vec<(Proto, u16)> {
    match read_listening_ports(&agent.state.joined()) {
        Ok(mut p) => {
            if p.len() > MAX_PORTS {
                eprintln!(
                    "clua-member: listening on {} ports; advertising the first {MAX_PORTS}",
                    p.len()
                );
                p.truncate(MAX_PORTS);
            }
            *last = p.clone();
            p
        }
        Err(e) => {
            eprintln!("clua-member: reading listening ports: {e} (sending the last known)");
            last.clone()
        }
    }
}

/// The `STATUS=` line at readiness: who this agent is and where its adverts go.
fn ready_status(agent: &Agent, seq: u64) -> String {
    format!(
        "advertising node {} boot_id {} (seq {seq}) to {} router(s) every {} ms",
        agent.config.node,
        agent.boot_id,
        agent.config.routers.len(),
        agent.config.interval_ms
    )
}

/// Runs the member agent until SIGTERM or SIGINT: prepares the host, sends adverts, serves
/// cluamgr; at the end sends a goodbye and undoes the host preparation.
pub fn run(config: MemberConfig) -> Result<(), AgentError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(AgentError::Signals)?;
    }
    // systemd's notification socket (Type=notify): nothing without NOTIFY_SOCKET; a bad value
    // is reported, not fatal.
    let mut notifier = crate::notify::Notifier::from_env().unwrap_or_else(|e| {
        eprintln!("clua-member: {e}; not notifying systemd");
        None
    });
    let key = clua_ctl::keyfile::load_key(&config.key_file).map_err(AgentError::Key)?;
    let state = match &config.alias_config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|source| AgentError::AliasConfigRead {
                    path: p.clone(),
                    source,
                })?;
            initial_state(&config, Some((&text, &p.display().to_string())))
                .map_err(AgentError::AliasConfig)?
        }
        None => initial_state(&config, None).map_err(AgentError::AliasConfig)?,
    };
    // Counted before the host is touched and before the first advert: every advert of this
    // start carries a boot id no earlier start used.
    let boot_id = crate::boots::next_boot_id(&config.state_file).map_err(AgentError::Boots)?;
    let plan = match &config.services {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| AgentError::ServicesRead {
                path: p.clone(),
                source,
            })?;
            Some(service_plan(&config, &text, &p.display().to_string())?)
        }
        None => None,
    };
    let mut agent = Agent::new(config, state, boot_id);
    let mut guard = HostGuard::prepare(&agent.config).map_err(AgentError::Host)?;
    if let Some(plan) = &plan {
        guard
            .prepare_services(&agent.config, plan)
            .map_err(AgentError::Host)?;
        eprintln!(
            "clua-member: static ports reserved: {:?}; out_alias ports {:?} from {} ports {}",
            plan.static_ports,
            plan.out_alias_ports
                .iter()
                .map(|(p, proto)| format!("{p}/{}", proto.name()))
                .collect::<Vec<_>>(),
            agent.config.default_alias,
            agent
                .config
                .out_alias
                .map_or_else(|| "none".to_string(), |r| r.to_string())
        );
    }
    let admin = AdminSocket::bind(&agent.config.socket).map_err(|source| AgentError::Socket {
        path: agent.config.socket.clone(),
        source,
    })?;
    let sock = UdpSocket::bind((agent.config.address, 0)).map_err(|source| AgentError::Advert {
        address: agent.config.address,
        source,
    })?;
    let sender = Sender {
        sock,
        routers: agent.config.routers.clone(),
        key,
    };
    eprintln!(
        "clua-member: node {} boot_id {} adverts every {} ms from {} to {}",
        agent.config.node,
        agent.boot_id,
        agent.config.interval_ms,
        agent.config.address,
        agent
            .config
            .routers
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!("clua-member: ready");
    let interval = Duration::from_millis(agent.config.interval_ms as u64);
    let mut last_ports = Vec::new();
    let mut next_at = Instant::now();
    let mut announced = false;
    while !stop.load(Ordering::Relaxed) {
        let mut changed = false;
        admin.poll(|req| {
            let (reply, c) = agent.handle(&req);
            changed |= c;
            reply
        });
        if changed || Instant::now() >= next_at {
            let ports = ports_for(&agent, &mut last_ports);
            let a = agent.next_advert(AdvertKind::Advert, ports);
            sender.send(&a);
            next_at = Instant::now() + interval;
            // Ready once the first advert left: host prepared, sockets bound, the routers
            // hear of this member from now on.
            if !announced {
                announced = true;
                if let Some(n) = &mut notifier {
                    let status = ready_status(&agent, a.seq);
                    if let Err(e) = n.ready(&status) {
                        eprintln!("clua-member: notifying systemd: {e}");
                    }
                }
            }
        }
        // Pinged from the advert loop itself: an agent that stops sending adverts (hung in
        // cluamgr handling or reading /proc) stops the pings too, and systemd restarts it.
        if let Some(n) = &mut notifier {
            n.tick(Instant::now());
        }
        std::thread::sleep(POLL);
    }
    if let Some(n) = &notifier {
        let _ = n.stopping("stopping: goodbye to the routers, undoing host preparation");
    }
    let a = agent.next_advert(AdvertKind::Goodbye, last_ports);
    sender.send(&a);
    eprintln!(
        "clua-member: goodbye sent (seq {}), undoing host preparation",
        a.seq
    );
    drop(admin);
    drop(guard);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clua_ctl::command::parse_args;
    use std::net::Ipv4Addr;

    const D: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);
    const G: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 101);

    fn cfg() -> MemberConfig {
        MemberConfig::parse(
            r#"
node = "m1"
address = "192.0.2.141"
routers = ["192.0.2.2"]
key_file = "/k"
default_alias = "198.51.100.100"
aliases = ["198.51.100.100", "198.51.100.101"]
"#,
            "m.toml",
        )
        .unwrap()
    }

    fn req(s: &str) -> Request {
        Request {
            command: parse_args(s.split_whitespace()).unwrap(),
            json: false,
        }
    }

    /// CA9: clua_services gives the static and out_alias ports; a range holding a service
    /// port is refused before the host is touched.
    #[test]
    fn service_plan_from_clua_services() {
        let text = "telnet 23/tcp in_multi,out_alias\nlogin 513/tcp in_multi,out_alias,static\nwho 513/udp in_noalias,static\nntp 123/udp out_alias\nhold 40003/tcp static\n";
        let plan = service_plan(&cfg(), text, "clua_services").unwrap();
        assert_eq!(plan.static_ports, vec![513, 40003]);
        assert_eq!(
            plan.out_alias_ports,
            vec![(23, Proto::Tcp), (513, Proto::Tcp), (123, Proto::Udp)]
        );
        let mut c = cfg();
        c.out_alias = Some("40000-40009".parse().unwrap());
        let e = service_plan(&c, text, "clua_services").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`out_alias.ports`: 40000-40009 includes 40003/tcp (`hold` in clua_services); the range must hold no service port, static ones least of all"
        );
        c.out_alias = Some("61000-61999".parse().unwrap());
        assert!(service_plan(&c, text, "clua_services").is_ok());
        let mut a = Agent::new(c.clone(), initial_state(&c, None).unwrap(), 1);
        assert_eq!(
            a.next_advert(AdvertKind::Advert, vec![]).out_alias,
            c.out_alias,
            "the range is advertised"
        );
        assert!(matches!(
            service_plan(&c, "x 1/tcp in_foo\n", "f").unwrap_err(),
            AgentError::Services(_)
        ));
    }

    #[test]
    fn initial_state_joins_the_default_alias_then_applies_clu_alias_config() {
        let s = initial_state(&cfg(), None).unwrap();
        assert_eq!(s.joined(), vec![D]);
        assert_eq!(s.aliases.len(), 2);
        let s = initial_state(
            &cfg(),
            Some((
                "/usr/sbin/cluamgr -a alias=DEFAULTALIAS,selw=3,selp=1,join\ncluamgr -a alias=198.51.100.101,join,selw=50\n",
                "clu_alias.config",
            )),
        )
        .unwrap();
        assert_eq!(s.joined(), vec![D, G]);
        assert_eq!((s.get(D).unwrap().selw, s.get(G).unwrap().selw), (3, 50));
        let e = initial_state(
            &cfg(),
            Some((
                "cluamgr -a alias=mailfeed-unknown-host,rpri=100\ncluamgr -a alias=198.51.100.7,join\n",
                "clu_alias.config",
            )),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "clu_alias.config:1: rpri is a router attribute; this is a member (set it on the alias routers)\n\
             clu_alias.config:2: alias 198.51.100.7 is not one of this member's aliases (the `aliases` of its configuration)"
        );
    }

    #[test]
    fn cluamgr_changes_the_next_advert() {
        let c = cfg();
        let s = initial_state(&c, None).unwrap();
        let mut a = Agent::new(c, s, 7);
        let ad = a.next_advert(AdvertKind::Advert, vec![(Proto::Tcp, 80)]);
        assert_eq!(
            (ad.boot_id, ad.seq, ad.node.as_str(), ad.interval_ms),
            (7, 1, "m1", 1000)
        );
        assert_eq!(
            ad.aliases,
            vec![
                AliasEntry {
                    addr: D,
                    joined: true,
                    selw: 1,
                    selp: 1
                },
                AliasEntry {
                    addr: G,
                    joined: false,
                    selw: 1,
                    selp: 1
                }
            ]
        );
        let (r, changed) = a.handle(&req("-a alias=198.51.100.100,selw=5"));
        assert!(r.ok && changed, "{r:?}");
        assert_eq!(r.output, "alias 198.51.100.100: selw 1 -> 5");
        let (r, changed) = a.handle(&req("-a alias=198.51.100.100,selw=5"));
        assert!(r.ok && !changed);
        let (r, changed) = a.handle(&req("-a alias=198.51.100.100,rpri=3"));
        assert!(!r.ok && !changed);
        let (r, _) = a.handle(&req("-a alias=198.51.100.9,join"));
        assert!(!r.ok);
        assert!(r.output.contains("not one of this member's aliases"));
        // Issue 11: `-s --json` answers MemberShow (schema 1); an unknown alias is an error.
        let (r, changed) = a.handle(&Request {
            json: true,
            ..req("-s")
        });
        assert!(r.ok && !changed, "{r:?}");
        let show: crate::member_state::MemberShow = serde_json::from_str(&r.output).unwrap();
        assert_eq!((show.schema, show.scope.as_str()), (1, "member"));
        assert_eq!(show.node, a.config.node);
        let d = show
            .aliases
            .iter()
            .find(|x| x.address == D.to_string())
            .expect("the default alias is listed");
        assert!(d.joined && d.selw == 5, "{show:?}");
        let (r, _) = a.handle(&Request {
            json: true,
            ..req("-s 198.51.100.9")
        });
        assert!(!r.ok && r.output.contains("not known"), "{r:?}");
        assert!(a.handle(&req("-s")).0.ok);
        let (r, changed) = a.handle(&req("-a alias=DEFAULTALIAS,leave"));
        assert!(r.ok && changed);
        let ad = a.next_advert(AdvertKind::Goodbye, vec![]);
        assert_eq!(ad.seq, 2);
        assert_eq!(ad.kind, AdvertKind::Goodbye);
        assert_eq!(
            ad.aliases[0],
            AliasEntry {
                addr: D,
                joined: false,
                selw: 5,
                selp: 1
            },
            "a left alias is listed, joined false"
        );
        let (r, changed) = a.handle(&req("-s"));
        assert!(r.ok && !changed);
        assert_eq!(
            r.output,
            "alias 198.51.100.100 not joined selw=5 selp=1\nalias 198.51.100.101 not joined selw=1 selp=1"
        );
    }
}
