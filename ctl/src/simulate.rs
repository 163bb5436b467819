//! `cluamgr simulate`: which member a 5-tuple gets right now and why (issue 11; Katran's
//! simulator), computed over the control plane's snapshot, with nothing changed.
//!
//! ```text
//! cluamgr simulate tcp 203.0.113.7:40000 198.51.100.100:80 [--syn | --ack] [--json]
//! cluamgr simulate udp 203.0.113.7:40000 198.51.100.100:53 [--json]
//! ```
//!
//! The answer follows `clua_pipeline::select` step by step over the same snapshot the workers
//! run: the alias of the destination address, the port's service mode (CA9) and policy
//! (SC1–SC3), the eligible tier (the highest selp among the members that are up and listen on
//! the port, CA7/CA8), and the member a **new** flow gets. What it cannot see is the workers'
//! per-core state, which lives without locks on their cores: the round-robin cursors (so a
//! `wrr` SYN's member is "the next in the round robin", and the consistent-hash member is
//! given as the one a non-SYN miss or a SYN without a table slot would get) and the
//! connection tables (an established flow keeps its member, a sticky or wildcard_sticky
//! affinity of the client wins over the first choice while its member holds). `simulate`
//! answers for the snapshot and says so in its notes.
//!
//! The JSON form ([`Simulation`], `--json`) is stable: fields are only ever added.

use std::net::SocketAddrV4;

use clua_pipeline::hash::{FlowHashKey, FlowKey};
use clua_pipeline::snapshot::{MemberId, Policy, ServiceMode, Snapshot};
use serde::{Deserialize, Serialize};

use crate::model::Proto;

/// Which TCP segment is simulated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Segment {
    /// `--syn` (the default for TCP): a client's SYN, a new connection.
    #[default]
    Syn,
    /// `--ack`: a non-SYN segment (an ACK, data) that misses the connection table.
    Ack,
}

/// What is simulated: one packet of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Query {
    /// tcp or udp.
    #[serde(with = "crate::command::ProtoDef")]
    pub proto: Proto,
    /// The client's address and port.
    pub src: SocketAddrV4,
    /// The alias address and port.
    pub dst: SocketAddrV4,
    /// The TCP segment (always `syn` for UDP, which has no flags).
    pub segment: Segment,
    /// Reply with the JSON form instead of text.
    pub json: bool,
}

impl Query {
    /// The cluamgr arguments (after `simulate`) that parse back into this query.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            self.proto.name().to_string(),
            self.src.to_string(),
            self.dst.to_string(),
        ];
        if self.proto == Proto::Tcp {
            v.push(match self.segment {
                Segment::Syn => "--syn".into(),
                Segment::Ack => "--ack".into(),
            });
        }
        if self.json {
            v.push("--json".into());
        }
        v
    }
}

/// What was wrong with a `simulate` command line; each names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimulateError {
    /// A protocol other than tcp and udp.
    #[error("simulate: protocol `{0}` is not supported (expected tcp or udp)")]
    Proto(String),
    /// Not `ADDRESS:PORT`.
    #[error("simulate: {field} `{value}` is not ADDRESS:PORT (e.g. 203.0.113.7:40000)")]
    NotAddrPort {
        /// `source` or `destination`.
        field: &'static str,
        /// As given.
        value: String,
    },
    /// The address part is not a dotted-quad IPv4 address.
    #[error("simulate: {field} address `{value}` is not an IPv4 address")]
    BadAddress {
        /// `source` or `destination`.
        field: &'static str,
        /// As given.
        value: String,
    },
    /// The port part is not a decimal number.
    #[error("simulate: {field} port `{value}` is not a number (expected 1..=65535)")]
    PortNotANumber {
        /// `source` or `destination`.
        field: &'static str,
        /// As given.
        value: String,
    },
    /// The port is 0 or above 65535 (port 0 is never a real flow's: classify drops it).
    #[error("simulate: {field} port {value} is out of range 1..=65535")]
    PortRange {
        /// `source` or `destination`.
        field: &'static str,
        /// As given.
        value: String,
    },
    /// `--syn` and `--ack` together.
    #[error("simulate: --syn and --ack are mutually exclusive")]
    SynAndAck,
    /// `--syn` / `--ack` with udp.
    #[error("simulate: {0} only goes with tcp (a UDP datagram has no flags)")]
    FlagWithUdp(&'static str),
}

/// Parses the protocol word.
///
/// # Errors
/// [`SimulateError::Proto`].
pub fn parse_proto(s: &str) -> Result<Proto, SimulateError> {
    match s {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        other => Err(SimulateError::Proto(other.to_string())),
    }
}

/// Parses `ADDRESS:PORT`; `field` names it in errors (`source`, `destination`).
///
/// # Errors
/// [`SimulateError::NotAddrPort`], [`SimulateError::BadAddress`],
/// [`SimulateError::PortNotANumber`], [`SimulateError::PortRange`].
pub fn parse_addr_port(field: &'static str, s: &str) -> Result<SocketAddrV4, SimulateError> {
    let Some((addr, port)) = s.rsplit_once(':') else {
        return Err(SimulateError::NotAddrPort {
            field,
            value: s.to_string(),
        });
    };
    let addr = addr.parse().map_err(|_| SimulateError::BadAddress {
        field,
        value: addr.to_string(),
    })?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SimulateError::PortNotANumber {
            field,
            value: port.to_string(),
        });
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(SocketAddrV4::new(addr, p)),
        _ => Err(SimulateError::PortRange {
            field,
            value: port.to_string(),
        }),
    }
}

/// The alias a simulation found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAlias {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
}

/// One joined member of the alias as the port sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimMember {
    /// Name.
    pub name: String,
    /// Selection weight for the alias.
    pub selw: u32,
    /// Selection priority for the alias.
    pub selp: u32,
    /// `up` or `down`.
    pub state: String,
    /// On the simulated (proto, port): `yes`, `no` or `not reported` (eligible everywhere).
    pub listening: String,
    /// Whether it is in the port's eligible tier (may get new flows).
    pub eligible: bool,
}

/// The answer of `cluamgr simulate` (`--json`). Stable: fields are only added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Simulation {
    /// The query: `tcp` / `udp`.
    pub proto: String,
    /// Client `ADDRESS:PORT`.
    pub src: String,
    /// Alias `ADDRESS:PORT`.
    pub dst: String,
    /// `syn` / `ack` (TCP), `datagram` (UDP).
    pub segment: String,
    /// The snapshot generation the answer is for.
    pub generation: u64,
    /// The alias of the destination address; `None`: not an alias of this router.
    pub alias: Option<SimAlias>,
    /// `in_single`, `in_multi` or `in_noalias` (`None` without an alias).
    pub mode: Option<String>,
    /// `wrr`, `weighted`, `sticky` or `wildcard_sticky` (in_multi only; others `None`).
    pub policy: Option<String>,
    /// The eligible tier's selp (`None`: no member is eligible).
    pub tier_selp: Option<u32>,
    /// The alias's joined members in join order.
    pub members: Vec<SimMember>,
    /// `member` (the snapshot decides: `member`), `round_robin` (a worker's cursor decides),
    /// `refused` (in_noalias), `no_alias`, `no_member`.
    pub outcome: String,
    /// The member a new flow gets, when the snapshot decides it.
    pub member: Option<String>,
    /// The port schedule's consistent-hash (Maglev) member of this 5-tuple: what a non-SYN
    /// miss, or a SYN without a table slot, gets (in_multi only).
    pub consistent_hash_member: Option<String>,
    /// One sentence: why.
    pub reason: String,
    /// What per-core worker state (cursors, connection tables, affinities) would change.
    pub notes: Vec<String>,
}

fn mode_name(m: ServiceMode) -> &'static str {
    match m {
        ServiceMode::InSingle => "in_single",
        ServiceMode::InMulti => "in_multi",
        ServiceMode::InNoalias => "in_noalias",
    }
}

/// Simulates `q` over `snap`: pure, reads nothing else and changes nothing.
pub fn simulate(snap: &Snapshot, q: &Query) -> Simulation {
    let proto = q.proto.number();
    let is_tcp = q.proto == Proto::Tcp;
    let key = FlowKey {
        src: u32::from(*q.src.ip()),
        dst: u32::from(*q.dst.ip()),
        src_port: q.src.port(),
        dst_port: q.dst.port(),
        proto,
    };
    let mut sim = Simulation {
        proto: q.proto.name().into(),
        src: q.src.to_string(),
        dst: q.dst.to_string(),
        segment: match (is_tcp, q.segment) {
            (false, _) => "datagram".into(),
            (true, Segment::Syn) => "syn".into(),
            (true, Segment::Ack) => "ack".into(),
        },
        generation: snap.generation,
        alias: None,
        mode: None,
        policy: None,
        tier_selp: None,
        members: Vec::new(),
        outcome: String::new(),
        member: None,
        consistent_hash_member: None,
        reason: String::new(),
        notes: Vec::new(),
    };
    let Some(id) = snap.alias_by_addr(key.dst) else {
        sim.outcome = "no_alias".into();
        sim.reason = format!(
            "{} is not an alias address of this router: the packet is not load-balanced",
            q.dst.ip()
        );
        return sim;
    };
    let alias = snap.alias(id);
    sim.alias = Some(SimAlias {
        name: alias.name.clone(),
        address: alias.addr.to_string(),
    });
    let (mode, policy) = snap.service(proto, key.dst_port);
    sim.mode = Some(mode_name(mode).into());
    let port = format!("{}/{}", key.dst_port, q.proto.name());
    let s = alias.schedule(proto, key.dst_port);
    let name = |m: MemberId| {
        snap.member(m)
            .map_or_else(|| format!("#{}", m.0), |m| m.name.clone())
    };
    // The schedule holds exactly the eligible tier (selw repeats), whatever the port's mode.
    let eligible = |m: MemberId| s.multi.contains(&m);
    for am in &alias.members {
        let m = snap.member(am.member);
        sim.members.push(SimMember {
            name: name(am.member),
            selw: am.selw,
            selp: am.selp,
            state: if m.is_some_and(|m| m.up) {
                "up"
            } else {
                "down"
            }
            .into(),
            listening: match m.and_then(|m| m.listening.as_deref()) {
                None => "not reported".into(),
                Some(l) if l.contains(&(proto, key.dst_port)) => "yes".into(),
                Some(_) => "no".into(),
            },
            eligible: eligible(am.member),
        });
    }
    sim.tier_selp = alias
        .members
        .iter()
        .find(|am| eligible(am.member))
        .map(|am| am.selp);
    if mode == ServiceMode::InNoalias {
        sim.outcome = "refused".into();
        sim.reason = if is_tcp {
            format!("{port} is in_noalias: refused like a closed port (TCP RST)")
        } else {
            format!("{port} is in_noalias: refused like a closed port (ICMP port unreachable)")
        };
        return sim;
    }
    if snap.wildcard_sticky() {
        sim.notes.push(format!(
            "some port is wildcard_sticky: a wildcard affinity of client {} in a worker's \
             connection table wins while its member is up and joined to {} (SC3); simulate \
             cannot see the workers' tables",
            q.src.ip(),
            alias.name
        ));
    }
    if is_tcp {
        sim.notes.push(
            "an established flow in a worker's connection table keeps its member whatever this \
             says (only a miss is simulated)"
                .into(),
        );
    }
    if mode == ServiceMode::InSingle {
        match s.single_active {
            Some(m) => {
                sim.outcome = "member".into();
                sim.member = Some(name(m));
                sim.reason = format!(
                    "{port} is in_single: all its traffic goes to the active member, the first \
                     eligible one in join order (CA9)"
                );
            }
            None => no_member(&mut sim, &alias.name, &port),
        }
        return sim;
    }
    sim.policy = Some(policy.name().into());
    if s.multi.is_empty() {
        no_member(&mut sim, &alias.name, &port);
        return sim;
    }
    let hashed = s.maglev.lookup_flow(&key, &FlowHashKey::FIXED);
    let client = s.maglev.lookup_client(key.src, key.dst);
    sim.consistent_hash_member = hashed.map(name);
    let stateless = is_tcp && q.segment == Segment::Ack;
    // What select's pick_policy does, minus the table look-ups.
    let (chosen, reason) = match policy {
        Policy::Wrr if !stateless => (
            None,
            format!(
                "wrr: the next member of the round robin over the tier ({}), which depends on \
                 each worker's cursor, which the control thread cannot see",
                s.multi
                    .iter()
                    .map(|m| name(*m))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        Policy::Wrr | Policy::Weighted if stateless => (
            hashed,
            "a non-SYN segment that misses the connection table belongs to a flow begun \
             elsewhere: it goes to the consistent-hash (Maglev) member, never the round robin"
                .into(),
        ),
        Policy::Wrr | Policy::Weighted => (
            hashed,
            "weighted: the port schedule's Maglev member of the 5-tuple (selw as weights), the \
             same on every router and after every restart (SC1)"
                .into(),
        ),
        Policy::Sticky | Policy::WildcardSticky => (
            client,
            format!(
                "{}: the first choice by the client address's hash over the tier (selw as \
                 weights)",
                policy.name()
            ),
        ),
    };
    if policy.is_sticky() {
        sim.notes.push(format!(
            "an existing {} affinity of client {} in a worker's connection table wins while its \
             member is up and in the tier (SC2/SC3)",
            policy.name(),
            q.src.ip()
        ));
    }
    sim.reason = reason;
    match chosen {
        Some(m) => {
            sim.outcome = "member".into();
            sim.member = Some(name(m));
        }
        None => {
            sim.outcome = "round_robin".into();
            if policy != Policy::Wrr || stateless {
                // An empty Maglev table (a tier too large for it) falls back to the round robin.
                sim.reason
                    .push_str("; the tier has no Maglev table, so the round robin decides");
            }
        }
    }
    sim
}

fn no_member(sim: &mut Simulation, alias: &str, port: &str) {
    sim.outcome = "no_member".into();
    sim.reason = format!(
        "no member of {alias} is eligible for {port} (none joined, up and listening on it): \
         dropped (no_member)"
    );
}

/// The text form of `sim`.
pub fn render_text(sim: &Simulation) -> String {
    let mut out = format!(
        "simulate {} {} -> {} ({}), snapshot generation {}\n",
        sim.proto, sim.src, sim.dst, sim.segment, sim.generation
    );
    if let Some(a) = &sim.alias {
        out.push_str(&format!("alias {} {}", a.name, a.address));
        if let Some(m) = &sim.mode {
            out.push_str(&format!(", {m}"));
        }
        if let Some(p) = &sim.policy {
            out.push_str(&format!(",{p}"));
        }
        out.push('\n');
        match sim.tier_selp {
            Some(t) => out.push_str(&format!("eligible tier: selp {t}\n")),
            None => out.push_str("eligible tier: none\n"),
        }
        if !sim.members.is_empty() {
            out.push_str(&format!(
                "  {:<16} {:>4} {:>6} {:<5} {:<13} eligible\n",
                "member", "selw", "selp", "state", "listening"
            ));
            for m in &sim.members {
                out.push_str(&format!(
                    "  {:<16} {:>4} {:>6} {:<5} {:<13} {}\n",
                    m.name,
                    m.selw,
                    m.selp,
                    m.state,
                    m.listening,
                    if m.eligible { "yes" } else { "no" }
                ));
            }
        }
    }
    let verdict = match (sim.outcome.as_str(), &sim.member) {
        ("member", Some(m)) => format!("member: {m}"),
        ("round_robin", _) => "member: next in the round robin".into(),
        ("refused", _) => "refused".into(),
        ("no_alias", _) => "not an alias".into(),
        _ => "no member".into(),
    };
    out.push_str(&format!("{verdict}\nwhy: {}\n", sim.reason));
    if let Some(h) = &sim.consistent_hash_member {
        out.push_str(&format!(
            "consistent-hash member: {h} (what a non-SYN miss or a SYN without a table slot \
             gets)\n"
        ));
    }
    for n in &sim.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The reply to `simulate`: text, or with `q.json` the JSON of [`Simulation`].
pub fn render(snap: &Snapshot, q: &Query) -> String {
    let sim = simulate(snap, q);
    if q.json {
        // A struct of strings, numbers and options: serialising it cannot fail.
        serde_json::to_string(&sim).unwrap_or_default()
    } else {
        render_text(&sim)
    }
}
