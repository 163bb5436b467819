//! `cluamgr -s --json` (issue 11): the state of the router as one serde struct, [`Status`],
//! built from the same inputs as the text of `cluamgr -s` ([`crate::show`]). The schema is
//! documented in docs/cluamgr.md ("JSON output") and stable: fields are only ever added.
//!
//! What the data plane counts is read from the workers' [`CoreCounters`] (plain per-core
//! atomics, summed here); what the NICs count comes in as [`PortSample`]s, read by the daemon
//! (this crate does no I/O). Rates need two samples: the control plane keeps the previous one
//! ([`RateSample`]) and a rate is the difference divided by the time between them, i.e. per
//! second since the previous `-s` (text or JSON, any client), or since start for the first.

use std::collections::BTreeMap;
use std::sync::Arc;

use clua_pipeline::snapshot::{MemberId, PortRole, ServiceMode, Snapshot};
use clua_pipeline::{CoreCounters, DropReason, PuntReason};
use serde::{Deserialize, Serialize};

use crate::apply::{find_alias, ControlState};
use crate::command::ShowWhat;
use crate::model::fmt_mac;
use crate::show::{reach, RoutingShow};

/// The JSON schema's version: raised only if a field ever had to change meaning (never so far;
/// fields are only added).
pub const SCHEMA_VERSION: u32 = 1;

/// One port's PMD statistics as the daemon read them (`rte_eth_stats_get`, link without
/// waiting).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSample {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets the NIC dropped for lack of RX descriptors (`imissed`).
    pub rx_missed: u64,
    /// RX errors.
    pub rx_errors: u64,
    /// TX errors.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Whether the link is up.
    pub link_up: bool,
}

/// Reads every port's statistics, in `cluster.ports` order (the daemon's closure over its DPDK
/// ports; absent in tests and on the member).
pub type PortReader = Box<dyn Fn() -> Vec<PortSample> + Send>;

/// The counters a rate is computed from, as they were at `at_ms`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateSample {
    /// When the sample was taken (the control plane's clock).
    pub at_ms: u64,
    /// Per worker: (received, forwarded).
    pub workers: Vec<(u64, u64)>,
    /// Per port: (received, sent).
    pub ports: Vec<(u64, u64)>,
}

/// `cluamgr -s` as data. See docs/cluamgr.md for every field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// What was asked: `"all"` or the alias as given.
    pub scope: String,
    /// The cluster.
    pub cluster: ClusterStatus,
    /// The aliases shown (all, or the one asked for), in configuration order.
    pub aliases: Vec<AliasStatus>,
    /// The members (all, or those of the alias asked for), in configuration order.
    pub members: Vec<MemberStatus>,
    /// The services (empty with `-s ALIAS`).
    pub services: Vec<ServiceStatus>,
    /// The ports (empty with `-s ALIAS`).
    pub ports: Vec<PortStatus>,
    /// The workers (empty with `-s ALIAS`).
    pub workers: Vec<WorkerStatus>,
    /// The interval the rates are over (absent with `-s ALIAS`, which takes no sample).
    pub rates: Option<RateWindow>,
    /// This router among several (absent when alone).
    pub routers: Option<RoutersStatus>,
}

/// The cluster line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Cluster name.
    pub name: String,
    /// The default alias (CA1).
    pub default_alias: String,
    /// Configured alias capacity.
    pub max_aliases: usize,
    /// Aliases configured.
    pub aliases: usize,
    /// `-r resvok` in force.
    pub resvok: bool,
    /// The configuration snapshot's generation (every change, reload included, adds one).
    pub generation: u64,
}

/// One alias.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AliasStatus {
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Whether it is the default alias.
    pub default: bool,
    /// How clients reach it, in words (as in the text).
    pub reach: String,
    /// Router priority (CA4).
    pub rpri: u32,
    /// `virtual`.
    pub virtual_subnet: bool,
    /// Its vMAC (CA5), if it has one.
    pub vmac: Option<String>,
    /// The proxy-ARP master elected among the routers (absent when alone or none).
    pub arp_master: Option<String>,
    /// Whether this router is its proxy-ARP master (alone: always).
    pub arp_master_here: bool,
    /// Routes RIP advertises for it (empty without `[rip]`).
    pub rip_routes: Vec<String>,
    /// Packets forwarded for it, over all workers.
    pub packets: u64,
    /// New flows for it, over all workers.
    pub flows: u64,
    /// The in_single active member of the ports no member reported (absent: none up).
    pub single_active: Option<String>,
    /// The in_single active member of each port some member reported listening on.
    pub port_single_active: Vec<PortActive>,
    /// Its members, in join order.
    pub members: Vec<AliasMemberStatus>,
}

/// The in_single active member of one port of an alias.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortActive {
    /// `tcp` or `udp`.
    pub proto: String,
    /// The port.
    pub port: u16,
    /// The member (absent: none up listening on it).
    pub member: Option<String>,
}

/// A member as a member of one alias.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AliasMemberStatus {
    /// Member name.
    pub name: String,
    /// Selection weight.
    pub selw: u32,
    /// Selection priority.
    pub selp: u32,
    /// `up`, `down` or `left`.
    pub state: String,
    /// Its part in the alias's default schedule: `in_multi`, `in_single`, `in_multi+single`,
    /// `standby`, or `-` (left).
    pub traffic: String,
}

/// A member, cluster-wide.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Name.
    pub name: String,
    /// `up` or `down`.
    pub state: String,
    /// Its interconnect address.
    pub address: String,
    /// The MAC frames to it go to (absent: not resolved).
    pub mac: Option<String>,
    /// Where the MAC comes from: `configured`, `arp:learned`, ...
    pub mac_from: String,
    /// Ports it reported listening on, as `PORT/PROTO` (absent: no reports, eligible for
    /// every port).
    pub listening: Option<Vec<String>>,
    /// Packets forwarded to it, over all workers and aliases.
    pub packets: u64,
    /// New flows given to it, over all workers and aliases.
    pub flows: u64,
    /// A static member's health probes (issue 10; absent: not probed).
    #[serde(default)]
    pub health: Option<HealthStatus>,
    /// Its out_alias source-port range `LO-HI`, or `refused: WHY` (CA9; absent: none).
    #[serde(default)]
    pub out_alias: Option<String>,
}

/// A static member's health probes (issue 10, docs/aliasd.toml.md).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// The check: `arp` or `tcp:PORT`.
    pub check: String,
    /// Up by its probes.
    pub up: bool,
    /// Consecutive failed probes now.
    pub fails: u32,
}

/// A service (clua_services entry or registration).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// Port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
    /// `in_single`, `in_multi` or `in_noalias`.
    pub mode: String,
    /// The load-balancing policy of an in_multi port, `-` otherwise.
    pub policy: String,
    /// The other options set (`in_nolocal`, `out_alias`, `static`).
    pub options: Vec<String>,
}

/// A port and its PMD counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortStatus {
    /// Name.
    pub name: String,
    /// `client` or `interconnect`.
    pub role: String,
    /// Whether the link is up (absent: not read, e.g. no data plane).
    pub link_up: Option<bool>,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets dropped by the NIC for lack of RX descriptors.
    pub rx_missed: u64,
    /// RX errors.
    pub rx_errors: u64,
    /// TX errors.
    pub tx_errors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// Packets received per second over [`Status::rates`].
    pub rx_pps: f64,
    /// Packets sent per second over [`Status::rates`].
    pub tx_pps: f64,
}

/// A worker (one lcore, one RX/TX queue per port).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Index (the `worker` label of the metrics).
    pub worker: usize,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets handed to a port for transmission.
    pub forwarded_packets: u64,
    /// Received per second over [`Status::rates`].
    pub rx_pps: f64,
    /// Forwarded per second over [`Status::rates`].
    pub forwarded_pps: f64,
    /// Live connection-table entries (flows and sticky affinities) at the worker's last
    /// occupancy sweep.
    pub conn_live: u64,
    /// Connection-table slots.
    pub conn_capacity: u64,
    /// Complete occupancy sweeps so far (0: `conn_live` not measured yet).
    pub conn_sweeps: u64,
    /// Connection-table hits.
    pub conn_hits: u64,
    /// Connection-table entries created.
    pub conn_inserts: u64,
    /// Live entries evicted from a full bucket.
    pub conn_evictions: u64,
    /// Drops by reason: every reason, 0 included (the metric labels).
    pub drops: BTreeMap<String, u64>,
    /// Punts to the control thread by reason.
    pub punts: BTreeMap<String, u64>,
}

/// The interval the rates are computed over.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateWindow {
    /// Milliseconds between the previous sample and this one.
    pub interval_ms: u64,
    /// `previous_show` or `start`.
    pub since: String,
}

/// This router among several.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutersStatus {
    /// This router's node name.
    pub node: String,
    /// Live peer routers' node names.
    pub peers: Vec<String>,
    /// Still listening to its peers after start (answers ARP for nothing yet).
    pub listening: bool,
}

/// Everything [`build`] reads.
pub struct StatusInputs<'a> {
    /// The state in force.
    pub state: &'a ControlState,
    /// The snapshot in force.
    pub snapshot: &'a Snapshot,
    /// What is asked.
    pub what: &'a ShowWhat,
    /// The routers' part.
    pub routing: &'a RoutingShow<'a>,
    /// The workers' counters.
    pub cores: &'a [Arc<CoreCounters>],
    /// The ports' statistics now (empty: not read).
    pub ports: &'a [PortSample],
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    CoreCounters::get(c)
}

fn per_index(
    cores: &[Arc<CoreCounters>],
    f: fn(&CoreCounters) -> &[std::sync::atomic::AtomicU64],
    i: usize,
) -> u64 {
    cores.iter().map(|c| f(c).get(i).map_or(0, get)).sum()
}

/// Per second between two counter readings `dt_ms` apart (0 when no time passed).
pub fn per_second(before: u64, now: u64, dt_ms: u64) -> f64 {
    if dt_ms == 0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 * 1000.0 / dt_ms as f64
}

/// Builds the status. With everything shown, takes a new rate sample at `now_ms` and returns
/// it; `previous` is the one the rates are computed against (`None`: since start, at
/// `start_ms`).
pub fn build(
    inp: &StatusInputs<'_>,
    previous: Option<&RateSample>,
    start_ms: u64,
    now_ms: u64,
) -> (Status, Option<RateSample>) {
    let cl = &inp.state.cluster;
    let snap = inp.snapshot;
    let all = matches!(inp.what, ShowWhat::All);
    let selected: Vec<usize> = match inp.what {
        ShowWhat::All => (0..cl.aliases.len()).collect(),
        ShowWhat::Alias(a) => find_alias(cl, a).into_iter().collect(),
    };
    let name_of = |id: MemberId| {
        snap.member(id)
            .map(|m| m.name.clone())
            .or_else(|| cl.members.get(id.0 as usize).map(|m| m.name.clone()))
    };
    let mut status = Status {
        schema: SCHEMA_VERSION,
        scope: match inp.what {
            ShowWhat::All => "all".into(),
            ShowWhat::Alias(a) => a.to_string(),
        },
        cluster: ClusterStatus {
            name: cl.name.clone(),
            default_alias: cl.default_alias.clone(),
            max_aliases: cl.max_aliases,
            aliases: cl.aliases.len(),
            resvok: inp.state.resvok,
            generation: snap.generation,
        },
        ..Status::default()
    };
    let mut shown_members = vec![false; cl.members.len()];
    for &i in &selected {
        let a = &cl.aliases[i];
        let sa = snap
            .alias_by_addr(u32::from(a.address))
            .map(|id| (id, snap.alias(id)));
        let (packets, flows) = sa.map_or((0, 0), |(id, _)| {
            (
                per_index(inp.cores, |c| &c.alias_packets, id.0 as usize),
                per_index(inp.cores, |c| &c.alias_flows, id.0 as usize),
            )
        });
        let arp_master = inp
            .routing
            .role
            .and_then(|r| r.masters().get(&a.address).cloned());
        let arp_master_here = match inp.routing.role {
            None => true,
            Some(r) => arp_master.as_deref() == Some(r.tracker().settings().node.as_str()),
        };
        let rip_routes = inp.routing.rip.map_or_else(Vec::new, |r| {
            r.routes()
                .filter(|(route, m)| {
                    *m < 16
                        && crate::routers::tracker::same_subnet(route.prefix, route.len, a.address)
                })
                .map(|(route, _)| route.to_string())
                .collect()
        });
        let members = a
            .members
            .iter()
            .map(|j| {
                let id = cl.member_id(&j.member);
                if let Some(seen) = id.and_then(|id| shown_members.get_mut(id.0 as usize)) {
                    *seen = true;
                }
                let up = id.and_then(|id| snap.member(id)).is_some_and(|m| m.up);
                AliasMemberStatus {
                    name: j.member.clone(),
                    selw: j.selw,
                    selp: j.selp,
                    state: crate::show::join_state(j.joined, up).into(),
                    traffic: crate::show::traffic(j.joined, sa.map(|(_, s)| s), id).into(),
                }
            })
            .collect();
        status.aliases.push(AliasStatus {
            name: a.name.clone(),
            address: a.address.to_string(),
            default: a.name == cl.default_alias,
            reach: reach(cl, a),
            rpri: a.rpri,
            virtual_subnet: a.virtual_subnet,
            vmac: inp.routing.arp.vmacs.get(&a.address).map(fmt_mac),
            arp_master,
            arp_master_here,
            rip_routes,
            packets,
            flows,
            single_active: sa.and_then(|(_, s)| s.single_active).and_then(name_of),
            port_single_active: sa.map_or_else(Vec::new, |(_, s)| {
                s.port_schedules
                    .iter()
                    .map(|p| PortActive {
                        proto: proto_name(p.proto).into(),
                        port: p.port,
                        member: p.single_active.and_then(name_of),
                    })
                    .collect()
            }),
            members,
        });
    }
    let out_alias = crate::out_alias::ranges(cl);
    for (i, m) in cl.members.iter().enumerate() {
        if (!all && !shown_members[i]) || crate::reload::is_retired(m) {
            continue;
        }
        let id = MemberId(i as u32);
        status.members.push(MemberStatus {
            name: m.name.clone(),
            state: if snap.member(id).is_some_and(|m| m.up) {
                "up"
            } else {
                "down"
            }
            .into(),
            address: m.address.to_string(),
            mac: m.mac.current().map(|mac| fmt_mac(&mac)),
            mac_from: m.mac.source().into(),
            listening: m.listening.as_ref().map(|l| {
                l.iter()
                    .map(|(proto, port)| format!("{port}/{}", proto.name()))
                    .collect()
            }),
            packets: per_index(inp.cores, |c| &c.member_packets, i),
            flows: per_index(inp.cores, |c| &c.member_flows, i),
            health: inp.routing.health.member(&m.name).map(|h| HealthStatus {
                check: h.check.to_string(),
                up: h.up,
                fails: h.fails,
            }),
            out_alias: m.out_alias.map(|_| out_alias.of(i).to_string()),
        });
    }
    if let Some(r) = inp.routing.role {
        status.routers = Some(RoutersStatus {
            node: r.tracker().settings().node.clone(),
            peers: r.tracker().peers().keys().cloned().collect(),
            listening: r.listening(inp.routing.now_ms),
        });
    }
    if !all {
        return (status, None);
    }
    for s in &cl.services {
        let mut options = Vec::new();
        for (on, n) in [
            (s.options.in_nolocal, "in_nolocal"),
            (s.options.out_alias, "out_alias"),
            (s.options.static_port, "static"),
        ] {
            if on {
                options.push(n.to_string());
            }
        }
        status.services.push(ServiceStatus {
            name: s.name.clone(),
            port: s.port,
            proto: s.proto.name().into(),
            mode: mode_name(s.options.mode()).into(),
            policy: crate::services::effective_policy(&s.options).into(),
            options,
        });
    }
    let sample = RateSample {
        at_ms: now_ms,
        workers: inp
            .cores
            .iter()
            .map(|c| (get(&c.rx), get(&c.forwarded)))
            .collect(),
        ports: inp
            .ports
            .iter()
            .map(|p| (p.rx_packets, p.tx_packets))
            .collect(),
    };
    let since_start = RateSample {
        at_ms: start_ms,
        ..RateSample::default()
    };
    let prev = previous.unwrap_or(&since_start);
    let dt = now_ms.saturating_sub(prev.at_ms);
    status.rates = Some(RateWindow {
        interval_ms: dt,
        since: if previous.is_some() {
            "previous_show"
        } else {
            "start"
        }
        .into(),
    });
    for (i, p) in cl.ports.iter().enumerate() {
        let s = inp.ports.get(i);
        let before = prev.ports.get(i).copied().unwrap_or_default();
        let s0 = s.cloned().unwrap_or_default();
        status.ports.push(PortStatus {
            name: p.name.clone(),
            role: if p.role == PortRole::Client {
                "client"
            } else {
                "interconnect"
            }
            .into(),
            link_up: s.map(|s| s.link_up),
            rx_packets: s0.rx_packets,
            tx_packets: s0.tx_packets,
            rx_missed: s0.rx_missed,
            rx_errors: s0.rx_errors,
            tx_errors: s0.tx_errors,
            rx_nombuf: s0.rx_nombuf,
            rx_pps: per_second(before.0, s0.rx_packets, dt),
            tx_pps: per_second(before.1, s0.tx_packets, dt),
        });
    }
    for (i, c) in inp.cores.iter().enumerate() {
        let before = prev.workers.get(i).copied().unwrap_or_default();
        let (rx, fwd) = (get(&c.rx), get(&c.forwarded));
        status.workers.push(WorkerStatus {
            worker: i,
            rx_packets: rx,
            forwarded_packets: fwd,
            rx_pps: per_second(before.0, rx, dt),
            forwarded_pps: per_second(before.1, fwd, dt),
            conn_live: get(&c.conn_live),
            conn_capacity: get(&c.conn_capacity),
            conn_sweeps: get(&c.conn_sweeps),
            conn_hits: get(&c.conn_hits),
            conn_inserts: get(&c.conn_inserts),
            conn_evictions: get(&c.conn_evictions),
            drops: DropReason::ALL
                .iter()
                .map(|r| (r.name().to_string(), c.drops_for(*r)))
                .collect(),
            punts: PuntReason::ALL
                .iter()
                .map(|r| (r.name().to_string(), get(&c.punts[*r as usize])))
                .collect(),
        });
    }
    (status, Some(sample))
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        _ => "other",
    }
}

fn mode_name(m: ServiceMode) -> &'static str {
    match m {
        ServiceMode::InMulti => "in_multi",
        ServiceMode::InNoalias => "in_noalias",
        ServiceMode::InSingle => "in_single",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::tests::{state, MACS};

    fn build_with(
        st: &ControlState,
        what: ShowWhat,
        cores: &[Arc<CoreCounters>],
        ports: &[PortSample],
        previous: Option<&RateSample>,
        now_ms: u64,
    ) -> (Status, Option<RateSample>) {
        let snap = st.cluster.snapshot(5, &MACS).unwrap();
        let arp = crate::arp::ArpView::default();
        let health = crate::members::health::Health::default();
        let routing = RoutingShow {
            role: None,
            arp: &arp,
            now_ms,
            bfd: None,
            rip: None,
            sync: None,
            health: &health,
        };
        build(
            &StatusInputs {
                state: st,
                snapshot: &snap,
                what: &what,
                routing: &routing,
                cores,
                ports,
            },
            previous,
            0,
            now_ms,
        )
    }

    /// Issue 11: the JSON carries the counters summed over workers, per alias (by its
    /// snapshot position) and per member; it parses back into the same struct, and its field
    /// names are the documented ones (docs/cluamgr.md, "JSON output").
    #[test]
    fn the_json_sums_the_workers_and_parses_back() {
        let st = state();
        let snap = st.cluster.snapshot(5, &MACS).unwrap();
        let web = snap.alias_by_addr(u32::from(std::net::Ipv4Addr::new(198, 51, 100, 100)));
        let web = web.unwrap().0 as usize;
        let cores: Vec<Arc<CoreCounters>> =
            (0..2).map(|_| Arc::new(CoreCounters::new(8))).collect();
        for (i, c) in cores.iter().enumerate() {
            let n = i as u64 + 1;
            CoreCounters::add(&c.alias_packets[web], 100 * n);
            CoreCounters::add(&c.alias_flows[web], 10 * n);
            CoreCounters::add(&c.member_flows[0], 7 * n);
            CoreCounters::add(&c.rx, 1000 * n);
            CoreCounters::add(&c.conn_live, 5 * n);
            CoreCounters::add(&c.conn_capacity, 64);
            CoreCounters::drop(c, DropReason::NotAlias);
        }
        let ports = [PortSample {
            rx_packets: 5000,
            tx_packets: 4000,
            rx_missed: 3,
            link_up: true,
            ..PortSample::default()
        }];
        let (s, sample) = build_with(&st, ShowWhat::All, &cores, &ports, None, 2000);
        let a = s.aliases.iter().find(|a| a.name == "web").unwrap();
        assert_eq!((a.packets, a.flows), (300, 30));
        let idle = s.aliases.iter().find(|a| a.name == "cluster").unwrap();
        assert_eq!((idle.packets, idle.flows), (0, 0));
        assert_eq!(s.members[0].flows, 21);
        assert_eq!(s.workers[1].conn_live, 10);
        assert_eq!(s.workers[0].drops["not_alias"], 1);
        assert_eq!(s.workers[0].drops.len(), DropReason::COUNT);
        assert_eq!(s.ports[0].rx_missed, 3);
        assert_eq!(s.ports[0].link_up, Some(true));
        // Rates since start (0 ms) over 2 s.
        assert_eq!(s.rates.as_ref().unwrap().since, "start");
        assert_eq!(s.ports[0].rx_pps, 2500.0);
        assert_eq!(s.workers[1].rx_pps, 1000.0);
        // The next show: since the previous one.
        CoreCounters::add(&cores[0].rx, 500);
        let (s2, _) = build_with(&st, ShowWhat::All, &cores, &ports, sample.as_ref(), 2500);
        let r = s2.rates.as_ref().unwrap();
        assert_eq!((r.since.as_str(), r.interval_ms), ("previous_show", 500));
        assert_eq!(s2.workers[0].rx_pps, 1000.0);
        assert_eq!(s2.ports[0].rx_pps, 0.0);
        let text = serde_json::to_string(&s).unwrap();
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "schema", "scope", "cluster", "aliases", "members", "services", "ports", "workers",
            "rates", "routers",
        ] {
            assert!(v.get(key).is_some(), "{key} in {v}");
        }
        for key in [
            "packets",
            "flows",
            "single_active",
            "port_single_active",
            "arp_master",
        ] {
            assert!(v["aliases"][0].get(key).is_some(), "{key}");
        }
        for key in ["conn_live", "conn_capacity", "rx_pps", "drops"] {
            assert!(v["workers"][0].get(key).is_some(), "{key}");
        }
    }

    /// `-s ALIAS`: that alias and its members only, no sample taken (rates stay over the
    /// interval of whole shows).
    #[test]
    fn one_alias_takes_no_rate_sample() {
        let st = state();
        let cores = vec![Arc::new(CoreCounters::new(8))];
        let what = ShowWhat::Alias(crate::command::AliasRef::Name("web".into()));
        let (s, sample) = build_with(&st, what, &cores, &[], None, 10);
        assert!(sample.is_none() && s.rates.is_none() && s.workers.is_empty());
        assert_eq!(s.aliases.len(), 1);
        assert_eq!(s.scope, "web");
        let web = &st.cluster.aliases.iter().find(|a| a.name == "web").unwrap();
        assert_eq!(s.members.len(), web.members.len());
    }
}
