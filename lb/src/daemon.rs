//! Start-up, the control thread and shutdown.
//!
//! Order matters and is kept in one place: EAL -> mempool -> ports (configured, started) ->
//! snapshot (needs the ports' MACs) -> workers launched -> gratuitous ARP -> `aliasd: ready` ->
//! control loop until SIGTERM/SIGINT -> workers stopped -> ports stopped and closed -> mempool
//! freed -> EAL cleaned up.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clua_ctl::arp::{self, ArpOutcome};
use clua_ctl::icmp::{self, IcmpOutcome};
use clua_ctl::model::fmt_mac;
use clua_dpdk::{Eal, Mbuf, Mempool, Port, PortConf};
use clua_pipeline::snapshot::{Encap, PortRole};
use clua_pipeline::{CoreCounters, Pipeline, Snapshot};
use crossbeam_queue::ArrayQueue;

use crate::admin::AdminSocket;
use crate::config::{port_name, Config};
use crate::members::MemberTracker;
use crate::metrics::{self, ControlCounters, MetricsServer, PortCounters};
use crate::worker::{Punted, Worker};
use clua_ctl::apply::{apply, Applied, ControlState};
use clua_ctl::command::{Command, USAGE};
use clua_ctl::protocol::Reply;
use clua_ctl::show::render_show;

/// Why aliasd could not run.
#[derive(Debug)]
pub enum DaemonError {
    /// A DPDK call failed.
    Dpdk(&'static str, clua_dpdk::Error),
    /// A port the configuration names did not appear.
    MissingPort {
        port: String,
        device: String,
        error: clua_dpdk::Error,
    },
    /// The configuration gives a port a MAC the device can neither take nor receive for
    /// (no promiscuous mode).
    MacMismatch {
        port: String,
        expected: [u8; 6],
        actual: [u8; 6],
    },
    /// A configured worker lcore is not available.
    Lcore(u32),
    /// The snapshot could not be built.
    Snapshot(clua_pipeline::snapshot::SnapshotError),
    /// The metrics endpoint could not be bound.
    Metrics(std::io::Error),
    /// The cluamgr socket could not be bound.
    Admin(String, std::io::Error),
    /// Installing the signal handlers failed.
    Signals(std::io::Error),
}

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonError::Dpdk(what, e) => write!(f, "{what}: {e}"),
            DaemonError::MissingPort {
                port,
                device,
                error,
            } => {
                write!(f, "port \"{port}\": DPDK device `{device}` not found ({error}); check its devargs")
            }
            DaemonError::MacMismatch {
                port,
                expected,
                actual,
            } => write!(
                f,
                "port \"{port}\": the device's MAC is {} and it can neither be set to {} nor be made promiscuous",
                fmt_mac(actual),
                fmt_mac(expected)
            ),
            DaemonError::Lcore(l) => {
                write!(f, "dpdk.worker_lcores: lcore {l} is not available to EAL")
            }
            DaemonError::Snapshot(e) => write!(f, "building the configuration snapshot: {e}"),
            DaemonError::Metrics(e) => write!(f, "metrics.listen: {e}"),
            DaemonError::Admin(path, e) => write!(f, "control.socket {path}: {e}"),
            DaemonError::Signals(e) => write!(f, "installing signal handlers: {e}"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// A human-readable summary of a validated configuration (for `--check`).
pub fn summary(c: &Config) -> String {
    let mut o = String::new();
    let cl = &c.cluster;
    let _ = writeln!(
        o,
        "cluster {} (default alias {}, up to {} aliases)",
        cl.name, cl.default_alias, cl.max_aliases
    );
    for (p, d) in cl.ports.iter().zip(&c.port_devargs) {
        let role = if p.role == PortRole::Client {
            "client"
        } else {
            "interconnect"
        };
        let addr = p
            .address
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "port   {:<10} {:<12} {:<18} mtu {:<5} {}",
            p.name, role, addr, p.mtu, d
        );
    }
    for m in &cl.members {
        let encap = match m.encap {
            Encap::L2 => "l2".to_string(),
            Encap::Ipip => "ipip".to_string(),
            Encap::Vxlan {
                vni,
                inner_mac,
                udp_port,
            } => format!(
                "vxlan vni {vni} inner {} port {udp_port}",
                fmt_mac(&inner_mac)
            ),
        };
        let _ = writeln!(
            o,
            "member {:<10} via {:<8} {:<15} {} {}",
            m.name,
            m.port,
            m.address,
            fmt_mac(&m.mac),
            encap
        );
    }
    for a in &cl.aliases {
        let joins: Vec<String> = a
            .members
            .iter()
            .map(|j| format!("{}(selw={},selp={})", j.member, j.selw, j.selp))
            .collect();
        let _ = writeln!(
            o,
            "alias  {:<10} {:<15} {}",
            a.name,
            a.address,
            joins.join(" ")
        );
    }
    for s in &cl.services {
        let mut opts = vec![];
        let so = &s.options;
        for (on, n) in [
            (so.in_single, "in_single"),
            (so.in_multi, "in_multi"),
            (so.in_noalias, "in_noalias"),
            (so.in_nolocal, "in_nolocal"),
            (so.out_alias, "out_alias"),
            (so.static_port, "static"),
        ] {
            if on {
                opts.push(n);
            }
        }
        let _ = writeln!(
            o,
            "service {:<10} {}/{} {}",
            s.name,
            s.port,
            s.proto.name(),
            opts.join(",")
        );
    }
    o
}

/// Runs aliasd until SIGTERM or SIGINT.
pub fn run(config: Config) -> Result<(), DaemonError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(DaemonError::Signals)?;
    }
    let metrics_server = match config.metrics_listen {
        Some(a) => Some(MetricsServer::bind(a).map_err(DaemonError::Metrics)?),
        None => None,
    };
    let admin = AdminSocket::bind(&config.control.socket)
        .map_err(|e| DaemonError::Admin(config.control.socket.display().to_string(), e))?;
    let mut state = ControlState {
        cluster: config.cluster.clone(),
        services_file: config.control.services_file.clone(),
        resvok: config.resvok,
    };
    let mut tracker = config
        .adverts
        .as_ref()
        .map(|a| MemberTracker::new(a, &state));
    let started = std::time::Instant::now();

    // Declared before the EAL so that it is dropped after it, on every exit path.
    let _runtime_dir = RuntimeDir(format!("/var/run/dpdk/clua-{}", std::process::id()));
    let eal = Eal::init(&config.dpdk.eal_args(&config.port_devargs))
        .map_err(|e| DaemonError::Dpdk("EAL init", e))?;
    let available = eal.worker_lcores();
    for l in &config.dpdk.worker_lcores {
        if !available.contains(l) {
            return Err(DaemonError::Lcore(*l));
        }
    }
    let workers = config.dpdk.worker_lcores.len() as u16;
    let pool = Mempool::new("clua_mbufs", config.dpdk.mbufs, 256, 2048 + 128, -1)
        .map_err(|e| DaemonError::Dpdk("creating the mbuf pool", e))?;

    let mut ports = Vec::new();
    let mut macs = Vec::new();
    for (spec, devargs) in config.cluster.ports.iter().zip(&config.port_devargs) {
        let device = port_name(devargs).to_string();
        let port = Port::by_name(&device).map_err(|error| DaemonError::MissingPort {
            port: spec.name.clone(),
            device: device.clone(),
            error,
        })?;
        let conf = PortConf {
            rx_queues: workers,
            tx_queues: workers,
            rx_desc: config.dpdk.descriptors,
            tx_desc: config.dpdk.descriptors,
            rss: workers > 1,
            mtu: None,
        };
        port.configure(&conf, &pool)
            .map_err(|e| DaemonError::Dpdk("configuring a port", e))?;
        let promiscuous = port.set_promiscuous(true).is_ok();
        port.start()
            .map_err(|e| DaemonError::Dpdk("starting a port", e))?;
        let mut mac = port.mac();
        if let Some(wanted) = spec.mac {
            // The configured MAC is the port's MAC as far as aliasd is concerned (the source of
            // everything it sends, the destination it accepts). Program the device if it lets
            // us; otherwise promiscuous mode delivers the frames and the MAC lives in software,
            // as a vMAC will (CA5).
            if mac != wanted && port.set_mac(wanted).is_err() && !promiscuous {
                return Err(DaemonError::MacMismatch {
                    port: spec.name.clone(),
                    expected: wanted,
                    actual: mac,
                });
            }
            mac = wanted;
        }
        macs.push(mac);
        ports.push(port);
    }
    let snapshot = Arc::new(
        config
            .cluster
            .snapshot(1, &macs)
            .map_err(DaemonError::Snapshot)?,
    );
    let shared = Arc::new(ArcSwap::new(snapshot.clone()));
    let punt = Arc::new(ArrayQueue::new(1024));
    let inject: Arc<ArrayQueue<Punted>> = Arc::new(ArrayQueue::new(1024));
    let tsc_per_ms = (eal.tsc_hz() / 1000).max(1);

    // A fresh connection-table hash key at every start (issue 7): flows that share a
    // connection's two buckets cannot be precomputed.
    let pipeline_config = clua_pipeline::PipelineConfig {
        hash_key: clua_pipeline::hash::FlowHashKey::random(),
        ..config.pipeline.clone()
    };
    let mut cores = Vec::new();
    let mut launched = Vec::new();
    for (i, lcore) in config.dpdk.worker_lcores.iter().enumerate() {
        let counters = Arc::new(CoreCounters::new(config.pipeline.max_members));
        cores.push(counters.clone());
        let worker = Worker {
            queue: i as u16,
            ports: ports
                .iter()
                .map(|p| Port::from_id(p.id()))
                .collect::<Result<_, _>>()
                .map_err(|e| DaemonError::Dpdk("opening a port handle", e))?,
            pipeline: Pipeline::new(&pipeline_config, snapshot.clone(), counters),
            punt: punt.clone(),
            inject: (i == 0).then(|| inject.clone()),
            snapshot: shared.clone(),
            stop: stop.clone(),
            idle_sleep_us: config.dpdk.idle_sleep_us,
            tsc_per_ms,
        };
        launched.push(
            clua_dpdk::launch(*lcore, move || worker.run())
                .map_err(|e| DaemonError::Dpdk("launching a worker", e))?,
        );
    }

    let control = ControlCounters::default();
    announce(&snapshot, &pool, &inject, &control);
    eprintln!(
        "aliasd: ready: cluster {} with {} ports, {} members, {} aliases, {} workers",
        config.cluster.name,
        ports.len(),
        config.cluster.members.len(),
        config.cluster.aliases.len(),
        workers
    );

    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        let now_ms = started.elapsed().as_millis() as u64;
        let mut members_changed = tracker.as_mut().is_some_and(|t| t.expire(now_ms));
        while let Some(Punted { port, mut mbuf }) = punt.pop() {
            busy = true;
            let snap = shared.load();
            if let Some(t) = tracker.as_mut() {
                if let Some(outcome) = t.on_frame(mbuf_data(&mut mbuf), now_ms) {
                    members_changed |= outcome.changed();
                    continue;
                }
            }
            let reply = {
                let data = mbuf_data(&mut mbuf);
                match arp::respond(data, &snap, port) {
                    ArpOutcome::Reply => {
                        bump(&control.arp_replies);
                        true
                    }
                    ArpOutcome::Ignored => {
                        bump(&control.arp_ignored);
                        false
                    }
                    ArpOutcome::Malformed => match icmp::respond_echo(data, &snap, port) {
                        IcmpOutcome::Reply => {
                            bump(&control.icmp_replies);
                            true
                        }
                        IcmpOutcome::Ignored => {
                            bump(&control.icmp_ignored);
                            false
                        }
                        IcmpOutcome::Malformed => {
                            // Neither well-formed ARP nor ICMP: count it as malformed ARP if it
                            // claimed to be ARP, else as ignored ICMP.
                            if is_arp(data) {
                                bump(&control.arp_malformed);
                            } else {
                                bump(&control.icmp_ignored);
                            }
                            false
                        }
                    },
                }
            };
            if reply {
                send(&inject, port, mbuf, &control);
            }
        }
        if members_changed {
            if let Some(t) = &tracker {
                let mut next = state.clone();
                t.apply(&mut next);
                let generation = shared.load().generation + 1;
                match next
                    .cluster
                    .validate()
                    .map_err(|e| format!("{e:?}"))
                    .and_then(|()| {
                        next.cluster
                            .snapshot(generation, &macs)
                            .map_err(|e| e.to_string())
                    }) {
                    Ok(snapshot) => {
                        shared.store(Arc::new(snapshot));
                        state = next;
                    }
                    Err(e) => eprintln!("aliasd: member state not applied: {e}"),
                }
            }
        }
        busy |= admin.poll(|req| {
            let (reply, next) = handle_command(&state, &req.command, &shared, &macs, &cores);
            if let Some(next) = next {
                state = next;
            }
            reply
        }) > 0;
        if let Some(m) = &metrics_server {
            busy |= m.poll(|| {
                let pc: Vec<PortCounters> = config
                    .cluster
                    .ports
                    .iter()
                    .zip(&ports)
                    .map(|(spec, p)| {
                        let s = p.stats();
                        PortCounters {
                            name: spec.name.clone(),
                            ipackets: s.ipackets,
                            opackets: s.opackets,
                            imissed: s.imissed,
                            ierrors: s.ierrors,
                            oerrors: s.oerrors,
                            rx_nombuf: s.rx_nombuf,
                        }
                    })
                    .collect();
                metrics::render(
                    &shared.load(),
                    &cores,
                    &control,
                    &pc,
                    tracker.as_ref().map(|t| t.counters()),
                )
            }) > 0;
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    eprintln!("aliasd: stopping");
    for l in launched {
        l.wait();
    }
    while let Some(p) = punt.pop() {
        drop(p.mbuf);
    }
    let final_snapshot = shared.load_full();
    eprint!(
        "{}",
        metrics::render(
            &final_snapshot,
            &cores,
            &control,
            &[],
            tracker.as_ref().map(|t| t.counters())
        )
    );
    for p in ports {
        let _ = p.stop();
        let _ = p.close();
    }
    drop(pool);
    drop(eal);
    Ok(())
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn is_arp(frame: &[u8]) -> bool {
    clua_pipeline::wire::ethernet::parse_l2(frame)
        .is_ok_and(|l2| l2.ethertype == clua_pipeline::wire::ethernet::EtherType::ARP)
}

fn mbuf_data(m: &mut Mbuf) -> &mut [u8] {
    use clua_pipeline::PacketBuf;
    m.data_mut()
}

/// Queues a control packet for worker 0 to transmit on `port`.
fn send(inject: &ArrayQueue<Punted>, port: u16, mbuf: Mbuf, control: &ControlCounters) {
    if inject.push(Punted { port, mbuf }).is_err() {
        bump(&control.tx_failed);
    }
}

/// Gratuitous ARP for every alias answered on each client port (CA4: a new proxy-ARP master
/// announces itself so neighbours update their caches at once).
fn announce(
    snapshot: &Snapshot,
    pool: &Mempool,
    inject: &ArrayQueue<Punted>,
    control: &ControlCounters,
) {
    for (i, info) in snapshot.ports.iter().enumerate() {
        if info.role != PortRole::Client {
            continue;
        }
        for alias in &snapshot.aliases {
            if !arp::answers_for(snapshot, i as u16, alias.addr) {
                continue;
            }
            let mut frame = [0u8; arp::ARP_FRAME_LEN];
            arp::gratuitous(&mut frame, info.mac, alias.addr);
            match Mbuf::from_bytes(pool, &frame) {
                Some(m) => {
                    send(inject, i as u16, m, control);
                    bump(&control.garp_sent);
                }
                None => bump(&control.tx_failed),
            }
        }
    }
}

/// EAL's runtime directory for this process (`--file-prefix clua-PID`), which EAL leaves behind
/// (empty, thanks to `--no-shconf`): removed when aliasd exits, however it exits.
struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Carries out one cluamgr command: applied to a copy of the state, validated, turned into a
/// snapshot and published, or refused with nothing changed. Returns the reply and, if the
/// command changed anything, the new state.
fn handle_command(
    state: &ControlState,
    command: &Command,
    shared: &ArcSwap<Snapshot>,
    macs: &[[u8; 6]],
    cores: &[Arc<CoreCounters>],
) -> (Reply, Option<ControlState>) {
    let refused = |output: String| (Reply { ok: false, output }, None);
    match apply(state, command, &|p| std::fs::read_to_string(p)) {
        Err(e) => refused(e.to_string()),
        Ok(Applied::Help) => (
            Reply {
                ok: true,
                output: USAGE.to_string(),
            },
            None,
        ),
        Ok(Applied::Show(what)) => {
            let snapshot = shared.load();
            let counters = |id: clua_pipeline::MemberId| {
                let sum = |f: fn(&CoreCounters) -> &[AtomicU64]| -> u64 {
                    cores
                        .iter()
                        .map(|c| {
                            f(c).get(id.0 as usize)
                                .map_or(0, |a| a.load(Ordering::Relaxed))
                        })
                        .sum()
                };
                (sum(|c| &c.member_packets), sum(|c| &c.member_flows))
            };
            (
                Reply {
                    ok: true,
                    output: render_show(state, &snapshot, &what, &counters),
                },
                None,
            )
        }
        Ok(Applied::Changed(next, changes)) => {
            if changes.is_empty() {
                return (
                    Reply {
                        ok: true,
                        output: "no change".into(),
                    },
                    None,
                );
            }
            let generation = shared.load().generation + 1;
            match next.cluster.snapshot(generation, macs) {
                Err(e) => refused(format!("building the new configuration: {e}")),
                Ok(snapshot) => {
                    shared.store(Arc::new(snapshot));
                    let mut output = changes.join("\n");
                    output.push_str(&format!(
                        "\n(configuration generation {generation} in force)"
                    ));
                    (Reply { ok: true, output }, Some(*next))
                }
            }
        }
    }
}
