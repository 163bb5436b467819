//! Start-up, the control thread and shutdown.
//!
//! Order matters and is kept in one place: EAL -> mempool -> ports (configured, started) ->
//! snapshot (needs the ports' MACs) -> workers launched -> gratuitous ARP -> `aliasd: ready` ->
//! control loop until SIGTERM/SIGINT -> workers stopped -> ports stopped and closed -> mempool
//! freed -> EAL cleaned up.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::sync::mpsc;

use arc_swap::ArcSwap;
use clua_ctl::apply::ControlState;
use clua_ctl::command::Command;
use clua_ctl::members::AdvertSettings;
use clua_ctl::model::fmt_mac;
use clua_ctl::plane::{ControlCounters, ControlPlane, Effects, Start, StartError};
use clua_ctl::protocol::{Reply, Request};
use clua_ctl::routers::tracker::RouterSettings;
use clua_dpdk::{Eal, Mbuf, Mempool, Port, PortConf};
use clua_pipeline::snapshot::{Encap, PortRole};
use clua_pipeline::{CoreCounters, PacketBuf, Pipeline, Snapshot};
use crossbeam_queue::ArrayQueue;

use crate::clock::TscClock;
use crate::config::{port_name, Config};
use crate::metrics::{self, MetricsServer, MetricsSource, PortCounters};
use crate::punt::{PuntQueues, Punted};
use crate::worker::{Transmit, Worker, WorkerSync};
use clua_ctl::socket::AdminSocket;
use clua_pipeline::handoff::FlowRecord;

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
    /// The control plane could not start.
    Start(StartError),
    /// A thread could not be started.
    Thread(std::io::Error),
    /// The metrics endpoint could not be bound.
    Metrics(std::io::Error),
    /// The cluamgr socket could not be bound.
    Admin(String, std::io::Error),
    /// Installing the signal handlers failed.
    Signals(std::io::Error),
    /// The router protocol's boot counter (`[router] state_file`).
    Boots(clua_ctl::boots::BootsError),
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
            DaemonError::Start(e) => write!(f, "{e}"),
            DaemonError::Thread(e) => write!(f, "starting a thread: {e}"),
            DaemonError::Metrics(e) => write!(f, "metrics.listen: {e}"),
            DaemonError::Admin(path, e) => write!(f, "control.socket {path}: {e}"),
            DaemonError::Signals(e) => write!(f, "installing signal handlers: {e}"),
            DaemonError::Boots(e) => write!(f, "[router] state_file: {e}"),
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
            m.mac
                .configured()
                .map_or_else(|| "mac by ARP".to_string(), |mac| fmt_mac(&mac)),
            encap
        );
    }
    for a in &cl.aliases {
        let joins: Vec<String> = a
            .members
            .iter()
            // A member that left (e.g. by a clu_alias.config line) keeps its entry for a rejoin.
            .map(|j| {
                let left = if j.joined { "" } else { ",left" };
                format!("{}(selw={},selp={}{left})", j.member, j.selw, j.selp)
            })
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

/// Runs aliasd until SIGTERM or SIGINT, with no file to reload (SIGHUP and `cluamgr --reload`
/// are refused).
pub fn run(config: Config) -> Result<(), DaemonError> {
    run_with_file(config, None)
}

/// Member slots the workers' per-member counters have at least: members added by a reload
/// are counted up to this many (more need a restart, `clua_ctl::reload`).
pub const MEMBER_SLOTS: usize = 1024;

/// Runs aliasd until SIGTERM or SIGINT; SIGHUP and `cluamgr --reload` re-read `file` (issue
/// 11, [`crate::reload`]).
pub fn run_with_file(config: Config, file: Option<std::path::PathBuf>) -> Result<(), DaemonError> {
    let stop = Arc::new(AtomicBool::new(false));
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
        .map_err(DaemonError::Signals)?;
    // The workers stop after the control thread said goodbye to its peers.
    let workers_stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(DaemonError::Signals)?;
    }
    // systemd's notification socket (Type=notify): nothing without NOTIFY_SOCKET. A bad value
    // is logged, not fatal: the daemon still serves, systemd then reports a start timeout.
    let mut notifier = crate::notify::Notifier::from_env().unwrap_or_else(|e| {
        tracing::warn!("{e}; not notifying systemd");
        None
    });
    // Bound before the EAL starts so that a busy address fails fast; served on their own
    // threads once the control plane exists.
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(std::net::TcpListener::bind(a).map_err(DaemonError::Metrics)?),
        None => None,
    };
    let admin = AdminSocket::bind(&config.control.socket)
        .map_err(|e| DaemonError::Admin(config.control.socket.display().to_string(), e))?;
    let state = ControlState {
        cluster: config.cluster.clone(),
        services_file: config.control.services_file.clone(),
        resvok: config.resvok,
    };
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
    let mut xsk_sockets = Vec::new();
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
        if workers > 1 && port.rss_hash_types().unwrap_or(0) == 0 {
            // Not an error: virtual PMDs spread over their queues by their own means (AF_PACKET's
            // fanout hash); a NIC without RSS puts everything on queue 0 (docs/workers.md).
            tracing::warn!(
                "port \"{}\" ({}): no RSS over IP/TCP/UDP; the driver decides which of the {workers} queues (workers) a frame takes",
                spec.name,
                port.driver_name()
            );
        }
        // The AF_XDP sockets the PMD opens for the queues are this port's (issue 11: their
        // own drop counters on /metrics).
        let (configured, sockets) = metrics::drops::new_sockets(|| port.configure(&conf, &pool));
        configured.map_err(|e| DaemonError::Dpdk("configuring a port", e))?;
        xsk_sockets.push(sockets);
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

    let cores: Vec<Arc<CoreCounters>> = config
        .dpdk
        .worker_lcores
        .iter()
        .map(|_| {
            Arc::new(CoreCounters::with_aliases(
                config.pipeline.max_members.max(MEMBER_SLOTS),
                config.cluster.max_aliases,
            ))
        })
        .collect();
    let adverts = config.adverts.as_ref().map(|a| AdvertSettings {
        key: a.key.clone(),
        port: a.port,
        dead_misses: a.dead_misses,
    });
    let routers = match &config.router {
        None => None,
        Some(r) => Some(RouterSettings {
            node: r.node.clone(),
            key: r.key.clone(),
            udp_port: r.udp_port,
            interval_ms: r.interval_ms,
            dead_misses: r.dead_misses,
            boot_id: clua_ctl::boots::next_boot_id(&r.state_file).map_err(DaemonError::Boots)?,
            garp_count: r.garp_count,
            garp_interval_ms: r.garp_interval_ms,
            interconnect: r.interconnect.clone(),
        }),
    };
    let bfd = config.bfd.as_ref().map(|b| {
        let peers = b
            .peers
            .iter()
            .filter_map(|(port, peer)| {
                let i = config.cluster.port_index(port)?;
                Some(clua_ctl::bfd::BfdPeer {
                    port: i as u16,
                    local_mac: *macs.get(i)?,
                    local_addr: config.cluster.ports[i].address?.addr,
                    peer_addr: *peer,
                })
            })
            .collect();
        let settings = clua_ctl::bfd::BfdSettings {
            peers,
            min_tx_ms: b.min_tx_ms,
            min_rx_ms: b.min_rx_ms,
            multiplier: b.multiplier,
            strict_source_port: b.strict_source_port,
        };
        // Discriminators and source ports must differ per start: std's per-process random
        // hasher keys are enough for that (no security rests on them, RFC 5880 §6.3).
        let seed = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            std::process::id(),
        );
        (settings, seed)
    });
    let rip = config.rip.as_ref().map(|r| {
        let ports = r
            .ports
            .iter()
            .zip(&r.modes)
            .filter_map(|(name, mode)| {
                let mode = match mode {
                    crate::config::RipSendMode::Broadcast => clua_ctl::rip::RipMode::Broadcast,
                    crate::config::RipSendMode::Multicast => clua_ctl::rip::RipMode::Multicast,
                };
                let i = config.cluster.port_index(name)?;
                let a = config.cluster.ports[i].address?;
                Some(clua_ctl::rip::RipPort {
                    port: i as u16,
                    mac: *macs.get(i)?,
                    addr: a.addr,
                    prefix_len: a.len,
                    mode,
                })
            })
            .collect();
        let settings = clua_ctl::rip::RipSettings {
            ports,
            update_ms: r.update_ms,
            jitter_ms: r.jitter_ms,
            triggered_min_ms: r.triggered_min_ms,
            auth: r.key.clone().map(|key| clua_ctl::rip::RipAuth {
                key_id: r.key_id,
                key,
            }),
        };
        // The jitter's seed: differs per start (std's per-process random hasher keys).
        let seed = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            "rip",
        );
        (settings, seed)
    });
    let wall_clock_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (mut plane, first) = ControlPlane::start_with(Start {
        state,
        macs,
        adverts: adverts.clone(),
        routers,
        bfd,
        rip,
        // Config validation guarantees [router] when hand-off is on.
        sync: config.sync.settings().filter(|_| config.router.is_some()),
        wall_clock_ms,
        cores: cores.clone(),
        files: Box::new(|p| std::fs::read_to_string(p)),
        now_ms: started.elapsed().as_millis() as u64,
    })
    .map_err(DaemonError::Start)?;
    // Static members' health probes (issue 10); the seed (probe ports, sequence numbers)
    // differs per start.
    plane.set_health(
        &config.health,
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), "health"),
    );
    // `cluamgr -s` reads the ports' PMD counters through its own handles.
    let show_ports: Vec<Port> = ports
        .iter()
        .map(|p| Port::from_id(p.id()))
        .collect::<Result<_, _>>()
        .map_err(|e| DaemonError::Dpdk("opening a port handle", e))?;
    plane.set_port_reader(Box::new(move || {
        show_ports.iter().map(port_sample).collect()
    }));
    let snapshot = plane.snapshot().clone();
    let shared = Arc::new(ArcSwap::new(snapshot.clone()));
    let punt = Arc::new(PuntQueues::new(config.control.punt_queue));
    let inject: Arc<ArrayQueue<Transmit<Mbuf>>> = Arc::new(ArrayQueue::new(INJECT_QUEUE));
    let clock = TscClock::new(eal.tsc_hz());

    // A fresh connection-table hash key at every start (issue 7): flows that share a
    // connection's two buckets cannot be precomputed.
    // With several workers, sticky and wildcard_sticky affinities are shared (issue 12): each
    // worker records those it writes, the control thread copies them to the others
    // (`share_affinities` below), so that a client's connections agree on a member whichever
    // worker RSS gives them (SC2, SC3: a passive FTP data connection has its own 4-tuple).
    let share = cores.len() > 1;
    let pipeline_config = clua_pipeline::PipelineConfig {
        hash_key: clua_pipeline::hash::FlowHashKey::random(),
        share_affinities: share,
        // ICMP errors reach the worker of their outer addresses; the flow they quote may be
        // another's (issue 12): passed round the workers (`crate::worker::Relay`).
        icmp_errors_to_other_workers: share,
        ..config.pipeline.clone()
    };
    let mut relays = if share {
        crate::worker::relays::<Mbuf>(cores.len(), RELAY_INBOX)
    } else {
        Vec::new()
    }
    .into_iter();
    // Flow hand-off (issue 9): per worker a ring of records to the control thread, a ring of
    // records to install, and the walk-all flag; the flows file needs the table back at stop.
    // Sharing affinities needs the ring to the control thread and one of siblings' records.
    let handoff = config.pipeline.handoff;
    let rings: Vec<WorkerRings> = cores
        .iter()
        .map(|_| WorkerRings {
            out: (handoff || share)
                .then(|| crate::records::RecordRing::new(HANDOFF_RING, crate::records::MAX_BATCH)),
            install: handoff.then(|| Arc::new(ArrayQueue::new(INSTALL_RING))),
            walk_all: handoff.then(|| Arc::new(AtomicBool::new(false))),
            siblings: share.then(|| Arc::new(ArrayQueue::new(SIBLING_RING))),
        })
        .collect();
    let dump = config
        .sync
        .flows_file
        .as_ref()
        .map(|_| Arc::new(std::sync::Mutex::new(Vec::<FlowRecord>::new())));
    let mut pipelines: Vec<Pipeline> = cores
        .iter()
        .map(|c| Pipeline::new(&pipeline_config, snapshot.clone(), c.clone()))
        .collect();
    if let Some(path) = &config.sync.flows_file {
        // Installed on the workers' clock (the TSC), which their tables age by.
        restore_flows(
            path,
            &snapshot,
            &mut pipelines,
            wall_clock_ms,
            crate::clock::Clock::now_ms(&clock),
        );
    }
    // cluamgr capture (issue 11): one tap shared by the workers, disarmed until asked.
    let tap = crate::capture::CaptureTap::new(cores.len(), crate::capture::RING_FRAMES);
    let mut capturer = crate::capture::Capturer::new(
        tap.clone(),
        config
            .cluster
            .ports
            .iter()
            .map(|p| p.name.clone())
            .collect(),
    );
    let mut launched = Vec::new();
    for ((i, lcore), pipeline) in config.dpdk.worker_lcores.iter().enumerate().zip(pipelines) {
        let worker = Worker {
            queue: i as u16,
            ports: ports
                .iter()
                .map(|p| Port::from_id(p.id()))
                .collect::<Result<_, _>>()
                .map_err(|e| DaemonError::Dpdk("opening a port handle", e))?,
            pipeline,
            punt: punt.clone(),
            inject: (i == 0).then(|| inject.clone()),
            snapshot: shared.clone(),
            stop: workers_stop.clone(),
            idle: config.idle,
            clock,
            sync: WorkerSync {
                handoff: rings[i].out.clone(),
                refresh_ms: if handoff { config.sync.refresh_ms } else { 0 },
                install: rings[i].install.clone(),
                walk_all: rings[i].walk_all.clone(),
                siblings: rings[i].siblings.clone(),
                dump: dump.clone(),
            },
            capture: Some(tap.clone()),
            relay: relays.next(),
        };
        launched.push(
            clua_dpdk::launch(*lcore, move || worker.run())
                .map_err(|e| DaemonError::Dpdk("launching a worker", e))?,
        );
    }

    let io = ControlIo {
        shared: shared.clone(),
        inject: inject.clone(),
        pool: &pool,
        counters: plane.counters().clone(),
        rings: &rings,
        cores: &cores,
    };
    io.apply(first);

    // The cluamgr socket and the metrics endpoint are served on their own threads: a slow or
    // idle client there never delays an ARP reply. Commands reach the control plane through a
    // channel and are answered in order.
    let (commands, command_rx) = mpsc::sync_channel::<(Request, mpsc::SyncSender<Reply>)>(16);
    let admin_thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("clua-cluamgr".into())
            .spawn(move || serve_admin(admin, commands, stop))
            .map_err(DaemonError::Thread)?
    };
    let metrics_server = match metrics_listener {
        None => None,
        Some(listener) => {
            let port_stats: Vec<(String, Port, Vec<clua_dpdk::XskSocket>)> = config
                .cluster
                .ports
                .iter()
                .zip(&ports)
                .zip(&xsk_sockets)
                .map(|((spec, p), sockets)| {
                    Port::from_id(p.id()).map(|h| (spec.name.clone(), h, sockets.clone()))
                })
                .collect::<Result<_, _>>()
                .map_err(|e| DaemonError::Dpdk("opening a port handle", e))?;
            let control = plane.counters().clone();
            let source = MetricsSource {
                cores: cores.clone(),
                control: plane.counters().clone(),
                snapshot: shared.clone(),
                ports: Box::new(move || {
                    port_stats
                        .iter()
                        .map(|(name, p, sockets)| port_counters(name, p, sockets))
                        .collect()
                }),
                adverts: adverts.is_some().then(|| {
                    Box::new(move || {
                        control
                            .adverts()
                            .map(|a| a.iter().collect())
                            .unwrap_or_default()
                    }) as metrics::LabelledCountsFn
                }),
            };
            Some(MetricsServer::serve(listener, source).map_err(DaemonError::Metrics)?)
        }
    };

    let ready = format!(
        "ready: cluster {} with {} ports, {} members, {} aliases, {} workers",
        config.cluster.name,
        ports.len(),
        config.cluster.members.len(),
        config.cluster.aliases.len(),
        workers
    );
    eprintln!("aliasd: {ready}");
    // Ports started, workers launched, gratuitous ARP out: only now may systemd order dependent
    // units after this one.
    if let Some(n) = &mut notifier {
        if let Err(e) = n.ready(&ready) {
            tracing::warn!("notifying systemd: {e}");
        }
    }

    let mut last_tick = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        let now_ms = started.elapsed().as_millis() as u64;
        // Control frames first: one round over the punt queues, a budget per reason, so a
        // flood of one kind cannot delay the others (ARP above all, CA4). Then commands, then
        // time.
        let drained = punt.drain(PuntQueues::<Mbuf>::DEFAULT_BUDGET, |p| {
            let Punted {
                port,
                reason,
                buf: mut mbuf,
            } = p;
            let fx = plane.on_frame(port, reason, mbuf.data_mut(), now_ms);
            if fx.reply_in_place {
                io.send(port, mbuf);
            }
            io.apply(fx);
        });
        busy |= drained > 0;
        // The workers' hand-off records, a budget per round and per worker, to the peers;
        // their affinities to the other workers.
        for (i, r) in rings.iter().enumerate() {
            let Some(out) = &r.out else { continue };
            let handed = out.drain(BATCHES_PER_LOOP, |records| {
                if share {
                    share_affinities(i, records, &rings, &cores);
                }
                if handoff {
                    io.apply(plane.on_flows(records, now_ms));
                }
            });
            busy |= handed > 0;
        }
        while let Ok((request, reply_to)) = command_rx.try_recv() {
            busy = true;
            if let Command::Capture(req) = &request.command {
                // Answered when it ends (capturer.poll below), not here.
                capturer.start(req, crate::clock::Clock::now_us(&clock), reply_to);
                continue;
            }
            let (mut reply, fx) = match request.command {
                Command::Reload => {
                    let (reply, fx) = reload(file.as_deref(), &config, &mut plane, now_ms);
                    if !reply.ok {
                        tracing::warn!("cluamgr --reload: {}", reply.output.replace('\n', "; "));
                    }
                    (reply, fx)
                }
                ref c => plane.on_command_as(c, request.json, now_ms),
            };
            if reply.ok
                && !request.json
                && request.command == Command::Show(clua_ctl::command::ShowWhat::All)
            {
                // The ports' drop counters (issue 11) are read here: the control plane has no
                // port handles.
                let names = config.cluster.ports.iter().map(|p| p.name.as_str());
                let drops = metrics::drops::port_drops(names, &ports, &xsk_sockets);
                clua_ctl::show::render_port_drops(&mut reply.output, &drops);
            }
            io.apply(fx);
            let _ = reply_to.send(reply);
        }
        if capturer.is_running() {
            busy |= capturer.poll(crate::clock::Clock::now_us(&clock));
        }
        if hangup.swap(false, Ordering::Relaxed) {
            busy = true;
            let (reply, fx) = reload(file.as_deref(), &config, &mut plane, now_ms);
            io.apply(fx);
            if reply.ok {
                tracing::info!("SIGHUP: {}", reply.output.replace('\n', "; "));
            } else {
                tracing::warn!("SIGHUP: {}", reply.output.replace('\n', "; "));
            }
        }
        if now_ms != last_tick {
            last_tick = now_ms;
            io.apply(plane.on_tick(now_ms));
        }
        // The watchdog is pinged from this loop, not from a thread of its own: a control thread
        // that hangs (stuck in a command, a punt, a tick) stops the pings and systemd restarts
        // aliasd (docs/systemd.md).
        if let Some(n) = &mut notifier {
            n.tick(std::time::Instant::now());
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    tracing::info!("stopping");
    if let Some(n) = &notifier {
        let _ = n.stopping("stopping: goodbye to peers, workers stopping, saving flows");
    }
    // The goodbye (peers take this router's aliases at once) goes out through worker 0 before
    // the workers stop: wait until it left the inject queue, a few milliseconds at most.
    io.apply(plane.shutdown());
    let deadline = std::time::Instant::now() + Duration::from_millis(100);
    while !inject.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(5));
    workers_stop.store(true, Ordering::Relaxed);
    for l in launched {
        l.wait();
    }
    // The workers handed their tables back when they stopped (issue 9: flows survive a
    // restart of this router).
    if let (Some(path), Some(dump)) = (&config.sync.flows_file, &dump) {
        let records = std::mem::take(&mut *dump.lock().unwrap_or_else(|p| p.into_inner()));
        save_flows(path, &records, plane.snapshot());
    }
    let _ = admin_thread.join();
    drop(metrics_server);
    // Frames still queued between the threads hold mbufs of the pool: free them before it goes.
    punt.clear();
    while let Some(t) = inject.pop() {
        drop(t.buf);
    }
    eprint!(
        "{}",
        metrics::stop_summary(
            plane.snapshot(),
            &cores,
            plane.counters(),
            Some(started.elapsed())
        )
    );
    drop(io);
    for p in ports {
        let _ = p.stop();
        let _ = p.close();
    }
    // Every mbuf aliasd held is back: workers stopped, queues drained, ports closed. What is
    // still out belongs to a PMD that keeps its fill ring past close (AF_XDP in DPDK 22.11);
    // nothing can reach those mbufs any more, and the EAL cleanup below releases the memory,
    // so the pool is left to it rather than freed under the PMD's feet.
    let held = pool.in_use();
    if held == 0 {
        drop(pool);
    } else {
        tracing::debug!(
            mbufs = held,
            "mbufs kept by closed ports; released by EAL cleanup"
        );
        std::mem::forget(pool);
    }
    drop(eal);
    Ok(())
}

/// SIGHUP or `cluamgr --reload`: the file re-read and applied, or why not.
fn reload(
    file: Option<&std::path::Path>,
    started: &Config,
    plane: &mut ControlPlane,
    now_ms: u64,
) -> (Reply, Effects) {
    match file {
        Some(path) => crate::reload::reload_file(path, started, plane, now_ms),
        None => (
            Reply {
                ok: false,
                output: "reload refused: aliasd was started without a configuration file".into(),
            },
            Effects::default(),
        ),
    }
}

fn port_sample(p: &Port) -> clua_ctl::status::PortSample {
    let s = p.stats();
    clua_ctl::status::PortSample {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        link_up: p.link_up(),
    }
}

fn port_counters(name: &str, p: &Port, sockets: &[clua_dpdk::XskSocket]) -> PortCounters {
    let s = p.stats();
    PortCounters {
        name: name.to_string(),
        ipackets: s.ipackets,
        opackets: s.opackets,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        xstats: p.xstats().unwrap_or_default(),
        xsk: metrics::drops::read_sockets(sockets),
    }
}

/// Serves the cluamgr socket until `stop`, a thread per client: each request goes to the
/// control thread, whose reply goes back to the client.
fn serve_admin(
    admin: AdminSocket,
    commands: mpsc::SyncSender<(Request, mpsc::SyncSender<Reply>)>,
    stop: Arc<AtomicBool>,
) {
    admin.serve(stop, move |req| {
        let (tx, rx) = mpsc::sync_channel(1);
        let unanswered = Reply {
            ok: false,
            output: "aliasd is stopping; nothing was changed".into(),
        };
        if commands.send((req, tx)).is_err() {
            return unanswered;
        }
        rx.recv().unwrap_or(unanswered)
    });
}

/// Frames queued for worker 0 to transmit. Sized for bursts of flow hand-off datagrams (a
/// walk of a million-entry table at `max_records_per_sec`) on top of ARP and protocol
/// frames; a full queue drops the frame and counts it (`tx_failed`). Each queued frame holds
/// an mbuf of the pool (`dpdk.mbufs`).
pub const INJECT_QUEUE: usize = 4096;

/// Flow records one worker can have waiting for the control thread (32 bytes each).
pub const HANDOFF_RING: usize = 65536;

/// Records the control thread can have waiting for one worker to install.
pub const INSTALL_RING: usize = 65536;

/// Batches (of up to [`crate::records::MAX_BATCH`] records) the control thread takes from one
/// worker's ring per round.
const BATCHES_PER_LOOP: usize = 64;

/// ICMP errors other workers can have waiting for one worker (each holds an mbuf).
pub const RELAY_INBOX: usize = 1024;

/// Affinities from other workers the control thread can have waiting for one worker.
pub const SIBLING_RING: usize = 16384;

/// One worker's hand-off rings (all `None` without flow hand-off and with one worker).
struct WorkerRings {
    /// Its records to the control thread: flows and affinities for peer routers (with
    /// hand-off), affinities for the other workers (with several workers).
    out: Option<Arc<crate::records::RecordRing>>,
    install: Option<Arc<ArrayQueue<FlowRecord>>>,
    walk_all: Option<Arc<AtomicBool>>,
    /// The other workers' affinities (with several workers).
    siblings: Option<Arc<ArrayQueue<FlowRecord>>>,
}

/// Reads the flows file and installs its flows in every pipeline. Never fails: a missing file
/// is normal, and a bad one is a warning (crate::flows_file).
fn restore_flows(
    path: &std::path::Path,
    snapshot: &Snapshot,
    pipelines: &mut [Pipeline],
    wall_clock_ms: u64,
    now_ms: u64,
) {
    let saved = match crate::flows_file::read(path) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("flows file ignored: {e}");
            return;
        }
    };
    let restored = crate::flows_file::restore(&saved, snapshot, wall_clock_ms);
    let mut installed = 0;
    for p in pipelines.iter_mut() {
        for r in &restored.records {
            if p.install(r, now_ms) == clua_pipeline::conntrack::InstallOutcome::Installed {
                installed += 1;
            }
        }
    }
    tracing::info!(
        "flows file {}: {} flows restored ({} installs over {} workers), {} expired, {} of members no longer configured",
        path.display(),
        restored.records.len(),
        installed,
        pipelines.len(),
        restored.expired,
        restored.unknown_member
    );
}

/// Writes the workers' tables to the flows file; a failure is a warning (the next start just
/// has empty tables).
fn save_flows(path: &std::path::Path, records: &[FlowRecord], snapshot: &Snapshot) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let saved = crate::flows_file::collect(records, snapshot, now);
    match crate::flows_file::write(path, &saved) {
        Ok(()) => tracing::info!(
            "flows file {}: {} flows written",
            path.display(),
            saved.flows.len()
        ),
        Err(e) => tracing::warn!("flows file not written: {e}"),
    }
}

/// Carries the control plane's effects out: snapshots published for the workers, frames handed
/// to worker 0's TX queue, flows to the workers' install rings, events logged.
struct ControlIo<'a> {
    shared: Arc<ArcSwap<Snapshot>>,
    inject: Arc<ArrayQueue<Transmit<Mbuf>>>,
    pool: &'a Mempool,
    counters: Arc<ControlCounters>,
    rings: &'a [WorkerRings],
    cores: &'a [Arc<CoreCounters>],
}

impl ControlIo<'_> {
    fn apply(&self, fx: Effects) {
        if let Some(s) = fx.publish {
            self.shared.store(s);
        }
        deliver_flows(&fx.install, fx.walk_all, self.rings, self.cores);
        for t in fx.transmit {
            match Mbuf::from_bytes(self.pool, &t.frame) {
                Some(m) => self.send(t.port, m),
                None => {
                    self.counters.tx_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for e in fx.events {
            if e.is_warning() {
                tracing::warn!("{e}");
            } else {
                tracing::info!("{e}");
            }
        }
    }

    /// Queues a control packet for worker 0 to transmit on `port`.
    fn send(&self, port: u16, mbuf: Mbuf) {
        if let Err(p) = self.inject.push(Transmit { port, buf: mbuf }) {
            drop(p);
            self.counters.tx_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Hands peers' flows to every worker's install ring (a full ring drops the record for that
/// worker and counts it in its `handoff_install_full`), and raises every worker's walk-all
/// flag when a peer asked for the whole table.
fn deliver_flows(
    install: &[FlowRecord],
    walk_all: bool,
    rings: &[WorkerRings],
    cores: &[Arc<CoreCounters>],
) {
    for (r, c) in rings.iter().zip(cores) {
        if let Some(ring) = &r.install {
            let mut full = 0;
            for rec in install {
                if ring.push(*rec).is_err() {
                    full += 1;
                }
            }
            if full > 0 {
                // The control thread is this counter's only writer.
                c.handoff_install_full.fetch_add(full, Ordering::Relaxed);
            }
        }
        if walk_all {
            if let Some(flag) = &r.walk_all {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Copies the affinities among worker `from`'s records (keys with source port 0, which no
/// flow has: classify drops such packets) to every other worker's ring of siblings'
/// records (issue 12). A full ring drops the record for that worker and counts it in its
/// `affinity_ring_full`. Flows stay where they are: RSS sends a flow's packets to one worker.
fn share_affinities(
    from: usize,
    records: &[FlowRecord],
    rings: &[WorkerRings],
    cores: &[Arc<CoreCounters>],
) {
    for (i, (r, c)) in rings.iter().zip(cores).enumerate() {
        let Some(ring) = r.siblings.as_ref().filter(|_| i != from) else {
            continue;
        };
        let mut full = 0;
        for rec in records.iter().filter(|r| r.key.src_port == 0) {
            if ring.push(*rec).is_err() {
                full += 1;
            }
        }
        if full > 0 {
            // The control thread is this counter's only writer.
            c.affinity_ring_full.fetch_add(full, Ordering::Relaxed);
        }
    }
}

/// EAL's runtime directory for this process (`--file-prefix clua-PID`), which EAL leaves behind
/// (`--no-shconf`: empty but for the telemetry sockets, `dpdk.telemetry`; with `[dpdk]
/// shared_config`, also its `config`, `fbarray_*` and `mp_socket` files): removed when aliasd
/// exits, however it exits.
struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        use std::os::unix::fs::FileTypeExt;
        // Sockets and plain files only, no recursion: the directory is this process's own
        // (the prefix has its PID), so nothing in it belongs to another process.
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_socket() || t.is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clua_pipeline::conntrack::FlowState;
    use clua_pipeline::snapshot::MemberId;

    fn rings(n: usize, capacity: usize) -> (Vec<WorkerRings>, Vec<Arc<CoreCounters>>) {
        let rings = (0..n)
            .map(|_| WorkerRings {
                out: Some(crate::records::RecordRing::new(capacity, 4)),
                install: Some(Arc::new(ArrayQueue::new(capacity))),
                walk_all: Some(Arc::new(AtomicBool::new(false))),
                siblings: Some(Arc::new(ArrayQueue::new(capacity))),
            })
            .collect();
        let cores = (0..n).map(|_| Arc::new(CoreCounters::new(4))).collect();
        (rings, cores)
    }

    fn rec(i: u16) -> FlowRecord {
        FlowRecord {
            key: clua_pipeline::hash::FlowKey {
                src: 1,
                dst: 2,
                src_port: i,
                dst_port: 80,
                proto: 6,
            },
            member: MemberId(1),
            state: FlowState::Established,
            isn: 0,
            remaining_ms: 1000,
        }
    }

    /// Issue 12: a worker's affinities (source port 0) reach every other worker, not itself;
    /// its flows reach none; a full ring drops the rest for that worker only, counted.
    #[test]
    fn affinities_go_to_the_other_workers_and_flows_to_none() {
        let (rings, cores) = rings(3, 4);
        let batch: Vec<FlowRecord> = (0..6)
            .map(|i| rec(if i % 2 == 0 { 0 } else { 40000 + i }))
            .collect();
        let affinity = FlowRecord {
            member: MemberId(7),
            ..rec(0)
        };
        // Worker 2's ring already holds three.
        for _ in 0..3 {
            rings[2].siblings.as_ref().unwrap().push(affinity).unwrap();
        }
        share_affinities(1, &batch, &rings, &cores);
        let taken = |i: usize| {
            let q = rings[i].siblings.as_ref().unwrap();
            std::iter::from_fn(|| q.pop()).collect::<Vec<_>>()
        };
        assert!(taken(1).is_empty(), "not to the worker that wrote them");
        let w0 = taken(0);
        assert_eq!(w0.len(), 3);
        assert!(w0
            .iter()
            .all(|r| r.key.src_port == 0 && r.member == MemberId(1)));
        assert_eq!(taken(2).len(), 4);
        assert_eq!(CoreCounters::get(&cores[2].affinity_ring_full), 2);
        assert_eq!(CoreCounters::get(&cores[0].affinity_ring_full), 0);
        assert!(rings.iter().all(|r| r.install.as_ref().unwrap().is_empty()));
    }

    /// Issue 9: `Effects.install` reaches every worker (each has its own table); a full ring
    /// drops the rest for that worker only, counted; `Effects.walk_all` raises every flag.
    #[test]
    fn installs_go_to_every_worker_and_a_full_ring_is_counted() {
        let (rings, cores) = rings(3, 8);
        // Worker 1's ring is already half full.
        for i in 0..4 {
            rings[1]
                .install
                .as_ref()
                .unwrap()
                .push(rec(1000 + i))
                .unwrap();
        }
        let batch: Vec<FlowRecord> = (0..6).map(rec).collect();
        deliver_flows(&batch, false, &rings, &cores);
        for (w, (r, c)) in rings.iter().zip(&cores).enumerate() {
            let q = r.install.as_ref().unwrap();
            let full = CoreCounters::get(&c.handoff_install_full);
            if w == 1 {
                assert_eq!((q.len(), full), (8, 2));
            } else {
                assert_eq!((q.len(), full), (6, 0));
                let got: Vec<FlowRecord> = std::iter::from_fn(|| q.pop()).collect();
                assert_eq!(got, batch, "in order");
            }
            assert!(!r.walk_all.as_ref().unwrap().load(Ordering::Relaxed));
        }
        deliver_flows(&[], true, &rings, &cores);
        assert!(rings
            .iter()
            .all(|r| r.walk_all.as_ref().unwrap().load(Ordering::Relaxed)));
        // Without hand-off (no rings) nothing happens, and nothing panics.
        let off = [WorkerRings {
            out: None,
            install: None,
            walk_all: None,
            siblings: None,
        }];
        deliver_flows(&batch, true, &off, &cores[..1]);
    }
}
