//! Several workers (issue 12): two of aliasd's worker loops (lb/src/worker.rs) on in-memory
//! ports with two queues each, worker i on RX/TX queue i of every port, as aliasd runs one
//! worker per `[dpdk] worker_lcores` entry. The test plays the NIC: it spreads flows over the
//! RX queues by a Toeplitz hash of the 4-tuple with the usual 40-byte key, as RSS does, and
//! hands the hash to the pipeline as the receive metadata. The world is the golden topology
//! (lb/pipeline/tests/fixtures/golden.txt): port 0 the client LAN, ports 1 and 2
//! interconnects; web (198.51.100.100) is joined by m1-m3 behind ic0, m4 (vxlan) is behind ic1.
//!
//! What must hold (docs/workers.md): every packet of a flow is handled by the one worker whose
//! queue RSS picked (CA7: an established flow keeps its member), ARP, ICMP echo and member
//! adverts punted by either worker reach the control side's queues, the per-core counters add
//! up in the metrics fold, a published snapshot reaches every worker, and a client's
//! wildcard_sticky affinity written by one worker is used by the other (SC3).

#[path = "../pipeline/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clua_ctl::plane::ControlCounters;
use clua_lb::metrics::{Exporter, MetricsSource};
use clua_lb::punt::{PuntQueues, Punted};
use clua_lb::worker::{Poll, Running, Worker, WorkerSync, SNAPSHOT_POLL};
use clua_packet::{PacketBuf, QueuePort, VecBuf};
use clua_pipeline::{CoreCounters, Pipeline, PipelineConfig, PuntReason, Snapshot};
use common::*;

const WORKERS: u16 = 2;
const CLIENT_PORT: u16 = 0;
const IC0: u16 = 1;
const IC1: u16 = 2;
const IC0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// m1-m3 (web's members in generation 1) and m4 (vxlan, web's only member in generation 2).
const WEB_MACS: [[u8; 6]; 3] = [[2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 1, 3]];

/// The RSS key most NICs ship with (Microsoft's RSS verification key).
const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The Toeplitz hash of `input` under [`RSS_KEY`].
fn toeplitz(input: &[u8]) -> u32 {
    let key = |bit: usize| -> u32 {
        // The 32 key bits starting at `bit`.
        let mut v = 0u32;
        for i in 0..32 {
            let b = bit + i;
            let set = RSS_KEY[b / 8] >> (7 - b % 8) & 1;
            v = v << 1 | u32::from(set);
        }
        v
    };
    let mut h = 0;
    for (i, byte) in input.iter().enumerate() {
        for j in 0..8 {
            if byte >> (7 - j) & 1 == 1 {
                h ^= key(i * 8 + j);
            }
        }
    }
    h
}

/// The RSS hash of a TCP/UDP frame (IPv4 src, dst, src port, dst port) and the queue a NIC
/// with the default redirection table (entry i -> queue i mod n) gives it.
fn rss(frame: &[u8]) -> (u32, u16) {
    let mut t = Vec::with_capacity(12);
    t.extend_from_slice(&frame[26..34]);
    t.extend_from_slice(&frame[34..38]);
    let h = toeplitz(&t);
    (h, (h % u32::from(WORKERS)) as u16)
}

/// The verification vector of the Microsoft RSS spec: the generator hashes as a NIC does.
#[test]
fn the_generators_hash_is_the_nics_toeplitz() {
    // 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to 0x51ccc178.
    let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
    assert_eq!(toeplitz(&input), 0x51cc_c178);
}

type Port = Arc<QueuePort<VecBuf>>;
type Clk = Box<dyn Fn() -> u64 + Send>;

/// Two workers' world: shared ports, punt queues, snapshot and stop flag; counters per core.
struct Rig {
    ports: Vec<Port>,
    punt: Arc<PuntQueues<VecBuf>>,
    shared: Arc<ArcSwap<Snapshot>>,
    stop: Arc<AtomicBool>,
    cores: Vec<Arc<CoreCounters>>,
}

fn rig(now: Arc<AtomicU64>) -> (Rig, Vec<Worker<Port, Clk>>) {
    rig_with(now, PipelineConfig::default(), topology(), |_| {
        WorkerSync::default()
    })
}

/// [`rig`] with a pipeline configuration, a snapshot and each worker's [`WorkerSync`].
fn rig_with(
    now: Arc<AtomicU64>,
    cfg: PipelineConfig,
    snapshot: Snapshot,
    sync: impl Fn(u16) -> WorkerSync,
) -> (Rig, Vec<Worker<Port, Clk>>) {
    let snapshot = Arc::new(snapshot);
    let rig = Rig {
        ports: (0..3).map(|_| Arc::new(QueuePort::new(WORKERS))).collect(),
        punt: Arc::new(PuntQueues::new(1024)),
        shared: Arc::new(ArcSwap::new(snapshot.clone())),
        stop: Arc::new(AtomicBool::new(false)),
        cores: (0..WORKERS).map(|_| Arc::new(cfg.new_counters())).collect(),
    };
    let workers = (0..WORKERS)
        .map(|q| {
            let now = now.clone();
            Worker {
                queue: q,
                ports: rig.ports.clone(),
                pipeline: Pipeline::new(&cfg, snapshot.clone(), rig.cores[usize::from(q)].clone()),
                punt: rig.punt.clone(),
                inject: None,
                snapshot: rig.shared.clone(),
                stop: rig.stop.clone(),
                idle: clua_lb::idle::IdlePolicy::Sleep { us: 50 },
                clock: Box::new(move || now.load(Ordering::Relaxed)) as Clk,
                sync: sync(q),
                capture: None,
                relay: None,
            }
        })
        .collect();
    (rig, workers)
}

impl Rig {
    fn port(&self, p: u16) -> &QueuePort<VecBuf> {
        &self.ports[usize::from(p)]
    }

    /// Receives `frame` on `port` as a NIC with RSS would: on the queue of its hash, the hash
    /// in the metadata. Returns the queue.
    fn receive(&self, port: u16, frame: &[u8]) -> u16 {
        let (hash, queue) = rss(frame);
        let mut b = VecBuf::new(frame);
        b.set_rss_hash(Some(hash));
        self.port(port).push_rx(queue, b).unwrap();
        queue
    }

    /// Receives a frame without a hash (ARP: RSS hashes IP only) on `queue`.
    fn receive_on(&self, port: u16, queue: u16, frame: &[u8]) {
        self.port(port).push_rx(queue, VecBuf::new(frame)).unwrap();
    }

    fn rx_total(&self) -> u64 {
        self.cores.iter().map(|c| CoreCounters::get(&c.rx)).sum()
    }

    /// Waits (real time: the workers run on threads) until the workers received `n` in all.
    fn wait_rx(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.rx_total() < n {
            assert!(
                Instant::now() < deadline,
                "workers received {} of {n}",
                self.rx_total()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A flow's identity in a forwarded frame, and which member (destination MAC) it went to:
/// l2 frames keep their IP header at 14, ipip ones (IP protocol 4) carry the client's behind
/// a 20-byte outer header.
fn forwarded_flow(frame: &[u8]) -> (u16, [u8; 6]) {
    let inner = if frame[23] == 4 { 34 } else { 14 };
    let sport = u16::from_be_bytes([frame[inner + 20], frame[inner + 21]]);
    (sport, frame[..6].try_into().unwrap())
}

fn echo_request(dst: [u8; 4], id: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0, 0, 0, 1, b'p', b'i', b'n', b'g'];
    icmp[4..6].copy_from_slice(&id.to_be_bytes());
    let c = clua_pipeline::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4_frame(CLIENT, dst, 1, &icmp)
}

/// A member advert (udp/9471) from `member_ip` to the router's ic0 address.
fn advert(member_ip: [u8; 4]) -> Vec<u8> {
    let mut f = udp_frame(member_ip, 9471, [192, 0, 2, 2], 9471, b"advert");
    f[..6].copy_from_slice(&IC0_MAC);
    f
}

/// The samples of the Prometheus text, by name and label text (`{worker="0"}`, or "").
fn samples(text: &str) -> BTreeMap<(String, String), f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = match series.find('{') {
                Some(i) => (&series[..i], &series[i..]),
                None => (series, ""),
            };
            Some(((name.to_string(), labels.to_string()), value.parse().ok()?))
        })
        .collect()
}

fn sample(s: &BTreeMap<(String, String), f64>, name: &str, labels: &str) -> u64 {
    *s.get(&(name.to_string(), labels.to_string()))
        .unwrap_or_else(|| panic!("no sample {name}{labels}")) as u64
}

const FLOWS: u16 = 64;
/// Packets per flow after the SYN.
const ACKS: u16 = 4;

/// Two workers on their own threads, as on two lcores: flows spread by RSS are each handled
/// whole by the worker of their queue, punts from both reach the control side, the counters
/// add up in the metrics fold, and a new snapshot reaches both workers while established
/// flows keep their members (CA7).
#[test]
fn two_workers_share_the_flows_by_rss_and_the_control_side_sees_both() {
    let now = Arc::new(AtomicU64::new(1_000));
    let (rig, workers) = rig(now.clone());
    let threads: Vec<_> = workers
        .into_iter()
        .map(|w| std::thread::spawn(move || w.run()))
        .collect();

    // SYNs of every flow first, then rounds of ACKs: flows interleave as on a wire.
    let mut queue_of = BTreeMap::new();
    for i in 0..FLOWS {
        let q = rig.receive(CLIENT_PORT, &tcp_frame(CLIENT, 40000 + i, WEB, 80, SYN));
        queue_of.insert(40000 + i, q);
    }
    rig.wait_rx(u64::from(FLOWS));
    for _ in 0..ACKS {
        for i in 0..FLOWS {
            rig.receive(CLIENT_PORT, &tcp_frame(CLIENT, 40000 + i, WEB, 80, ACK));
        }
    }
    let total = u64::from(FLOWS) * u64::from(1 + ACKS);
    rig.wait_rx(total);
    // Punts from either worker: ARP for the alias and an echo request on each queue, and an
    // advert from m1 on queue 0 and from m2 on queue 1 of ic0.
    let arp = arp_request(WEB);
    let echoes: Vec<Vec<u8>> = (0..WORKERS).map(|q| echo_request(WEB, q)).collect();
    let adverts = [advert([192, 0, 2, 11]), advert([192, 0, 2, 12])];
    for q in 0..WORKERS {
        rig.receive_on(CLIENT_PORT, q, &arp);
        rig.receive_on(CLIENT_PORT, q, &echoes[usize::from(q)]);
        rig.receive_on(IC0, q, &adverts[usize::from(q)]);
    }
    rig.wait_rx(total + 6);

    // Every flow's packets left on its own queue's TX, to one member, in full.
    let per_queue: Vec<u64> = (0..WORKERS)
        .map(|q| queue_of.values().filter(|&&x| x == q).count() as u64)
        .collect();
    assert!(
        per_queue.iter().all(|&n| n >= u64::from(FLOWS) / 4),
        "RSS spreads {FLOWS} flows over both queues: {per_queue:?}"
    );
    let mut seen: BTreeMap<u16, (u16, [u8; 6], u16)> = BTreeMap::new();
    for q in 0..WORKERS {
        assert_eq!(rig.port(IC1).tx_len(q), 0, "web has no member behind ic1");
        assert_eq!(rig.port(CLIENT_PORT).tx_len(q), 0, "nothing refused");
        for f in rig.port(IC0).take_tx(q) {
            let (sport, mac) = forwarded_flow(f.data());
            assert!(WEB_MACS.contains(&mac), "{mac:02x?}");
            let e = seen.entry(sport).or_insert((q, mac, 0));
            assert_eq!((e.0, e.1), (q, mac), "flow {sport}: one worker, one member");
            e.2 += 1;
        }
    }
    assert_eq!(seen.len(), usize::from(FLOWS));
    for (sport, (q, _, n)) in &seen {
        assert_eq!(n, &(1 + ACKS), "flow {sport}: every packet forwarded");
        assert_eq!(
            q, &queue_of[sport],
            "flow {sport} on its RSS queue's worker"
        );
    }
    for (q, c) in rig.cores.iter().enumerate() {
        let flows = per_queue[q];
        let get = CoreCounters::get;
        assert_eq!(get(&c.rx), flows * u64::from(1 + ACKS) + 3, "worker {q} rx");
        assert_eq!(
            get(&c.conn_inserts),
            flows,
            "worker {q}: one entry per flow"
        );
        assert_eq!(
            get(&c.conn_hits),
            flows * u64::from(ACKS),
            "worker {q}: no flow missed its table"
        );
        for r in [
            PuntReason::Arp,
            PuntReason::IcmpEcho,
            PuntReason::MemberAdvert,
        ] {
            assert_eq!(get(&c.punts[r as usize]), 1, "worker {q} punted one {r:?}");
        }
    }

    // The control side receives all of them, with their port.
    let mut punted: Vec<(PuntReason, u16, Vec<u8>)> = Vec::new();
    while rig.punt.drain(64, |p: Punted<VecBuf>| {
        punted.push((p.reason, p.port, p.buf.data().to_vec()))
    }) > 0
    {}
    punted.sort_by_key(|(r, p, f)| (*r as u8, *p, f.clone()));
    let mut want = vec![
        (PuntReason::Arp, CLIENT_PORT, arp.clone()),
        (PuntReason::Arp, CLIENT_PORT, arp.clone()),
        (PuntReason::IcmpEcho, CLIENT_PORT, echoes[0].clone()),
        (PuntReason::IcmpEcho, CLIENT_PORT, echoes[1].clone()),
        (PuntReason::MemberAdvert, IC0, adverts[0].clone()),
        (PuntReason::MemberAdvert, IC0, adverts[1].clone()),
    ];
    want.sort_by_key(|(r, p, f)| (*r as u8, *p, f.clone()));
    assert_eq!(punted, want);

    // The metrics fold: per-worker series, totals the sum over the workers.
    let source = MetricsSource {
        cores: rig.cores.clone(),
        control: Arc::new(ControlCounters::default()),
        snapshot: rig.shared.clone(),
        ports: Box::new(Vec::new),
        adverts: None,
    };
    let s = samples(&Exporter::new().render(&source));
    for q in 0..usize::from(WORKERS) {
        let l = format!("{{worker=\"{q}\"}}");
        assert_eq!(
            sample(&s, "clua_rx_packets_total", &l),
            per_queue[q] * u64::from(1 + ACKS) + 3
        );
        assert_eq!(
            sample(&s, "clua_forwarded_packets_total", &l),
            per_queue[q] * u64::from(1 + ACKS)
        );
    }
    assert_eq!(sample(&s, "clua_conn_inserts_total", ""), u64::from(FLOWS));
    assert_eq!(
        sample(&s, "clua_conn_hits_total", ""),
        u64::from(FLOWS) * u64::from(ACKS)
    );
    let by_member: u64 = ["m1", "m2", "m3"]
        .iter()
        .map(|m| {
            sample(
                &s,
                "clua_member_packets_total",
                &format!("{{member=\"{m}\"}}"),
            )
        })
        .sum();
    assert_eq!(by_member, total);
    let flows_by_member: u64 = ["m1", "m2", "m3"]
        .iter()
        .map(|m| {
            sample(
                &s,
                "clua_member_flows_total",
                &format!("{{member=\"{m}\"}}"),
            )
        })
        .sum();
    assert_eq!(flows_by_member, u64::from(FLOWS));
    for r in ["arp", "icmp_echo", "member_advert"] {
        assert_eq!(
            sample(
                &s,
                "clua_punted_packets_total",
                &format!("{{reason=\"{r}\"}}")
            ),
            2,
            "{r}"
        );
    }

    // A snapshot swap: generation 2 gives web to m4 alone (behind ic1). New flows on either
    // queue go there once its worker has the new snapshot; established flows keep theirs.
    rig.shared
        .store(Arc::new(topology_with(2, [true; 4], vec![am(3, 1)])));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut probe = 50000u16;
    for q in 0..WORKERS {
        loop {
            assert!(
                Instant::now() < deadline,
                "worker {q} never took generation 2"
            );
            // A new flow that RSS puts on queue q.
            let syn = loop {
                probe += 1;
                let f = tcp_frame(CLIENT, probe, WEB, 80, SYN);
                if rss(&f).1 == q {
                    break f;
                }
            };
            let before = rig.rx_total();
            rig.receive(CLIENT_PORT, &syn);
            rig.wait_rx(before + 1);
            let on_ic1 = rig.port(IC1).take_tx(q);
            let on_ic0 = rig.port(IC0).take_tx(q);
            if on_ic1.len() == 1 {
                assert!(on_ic0.is_empty());
                break;
            }
            assert_eq!(on_ic0.len(), 1, "still generation 1 on worker {q}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for (sport, (q, mac, _)) in seen.iter().take(8) {
        let f = tcp_frame(CLIENT, *sport, WEB, 80, ACK);
        let before = rig.rx_total();
        assert_eq!(rig.receive(CLIENT_PORT, &f), *q);
        rig.wait_rx(before + 1);
        let out = rig.port(IC0).take_tx(*q);
        assert_eq!(out.len(), 1, "established flow {sport} still forwarded");
        assert_eq!(
            forwarded_flow(out[0].data()),
            (*sport, *mac),
            "and to its member"
        );
    }

    rig.stop.store(true, Ordering::Relaxed);
    for t in threads {
        assert_eq!(t.join().unwrap(), 0);
    }
}

/// Polled in lock step: a published generation is in force on every worker within
/// [`SNAPSHOT_POLL`] loops of each, whichever worker's queue carries traffic.
#[test]
fn a_published_snapshot_reaches_every_worker_within_snapshot_poll_loops() {
    let now = Arc::new(AtomicU64::new(1_000));
    let (rig, workers) = rig(now);
    let mut running: Vec<Running<Port, Clk>> = workers.into_iter().map(Worker::start).collect();
    // Traffic on queue 1 only: worker 0 idles, and must still pick the new snapshot up.
    for i in 0..8 {
        let f = tcp_frame(CLIENT, 41000 + i, WEB, 80, SYN);
        rig.receive_on(CLIENT_PORT, 1, &f);
    }
    rig.shared
        .store(Arc::new(topology_with(2, [true; 4], vec![am(3, 1)])));
    for _ in 0..SNAPSHOT_POLL {
        for w in running.iter_mut() {
            assert!(matches!(w.poll(), Poll::Received(_)));
        }
    }
    for (q, w) in running.iter().enumerate() {
        assert_eq!(
            w.worker().pipeline.snapshot().generation,
            2,
            "worker {q} after {SNAPSHOT_POLL} loops"
        );
    }
    // The first loop ran generation 1 (queue 1's SYNs went to web's ic0 members); after the
    // swap a SYN on queue 0 goes to m4.
    assert_eq!(rig.port(IC0).take_tx(1).len(), 8);
    rig.receive_on(CLIENT_PORT, 0, &tcp_frame(CLIENT, 41100, WEB, 80, SYN));
    assert_eq!(running[0].poll(), Poll::Received(1));
    assert_eq!(rig.port(IC1).take_tx(0).len(), 1);
}

/// SC3 across workers (issue 12): a passive FTP data connection has its own 4-tuple, so RSS
/// may give it to the worker that did not see the control connection. With
/// `share_affinities`, the worker that completed the control connection records the
/// client's wildcard affinity (and nothing else: no hand-off here), the control thread
/// (played here as lb/src/daemon.rs `share_affinities` does it: records with source port 0
/// to the other workers) passes it on, the other worker adopts it, and the data connection
/// goes to the control connection's member instead of the unlisted port's in_single one.
#[test]
fn a_wildcard_sticky_affinity_made_on_one_worker_steers_the_other() {
    use clua_lb::records::RecordRing;
    use crossbeam_queue::ArrayQueue;
    let now = Arc::new(AtomicU64::new(1_000));
    let cfg = PipelineConfig {
        share_affinities: true,
        ..PipelineConfig::default()
    };
    let outs: Vec<Arc<RecordRing>> = (0..WORKERS).map(|_| RecordRing::new(1024, 4)).collect();
    let siblings: Vec<Arc<ArrayQueue<clua_pipeline::handoff::FlowRecord>>> = (0..WORKERS)
        .map(|_| Arc::new(ArrayQueue::new(1024)))
        .collect();
    let (rig, workers) = rig_with(now, cfg, policy_topology(), |q| WorkerSync {
        handoff: Some(outs[usize::from(q)].clone()),
        siblings: Some(siblings[usize::from(q)].clone()),
        ..WorkerSync::default()
    });
    let mut running: Vec<Running<Port, Clk>> = workers.into_iter().map(Worker::start).collect();
    let mut poll_all = || {
        for w in running.iter_mut() {
            assert!(matches!(w.poll(), Poll::Received(_)));
        }
    };
    // Where each forwarded frame went: (client address, source port) -> (TX queue, member).
    let take = |rig: &Rig| {
        let mut out = BTreeMap::new();
        for q in 0..WORKERS {
            for f in rig.port(IC0).take_tx(q) {
                let d = f.data();
                let (sport, mac) = forwarded_flow(d);
                let inner = if d[23] == 4 { 34 } else { 14 };
                let src: [u8; 4] = d[inner + 12..inner + 16].try_into().unwrap();
                out.insert((src, sport), (q, mac));
            }
        }
        out
    };
    const CLIENTS: u8 = 24;
    let client = |i: u8| [198, 51, 100, 20 + i];
    // Control connections to ftp (21, wildcard_sticky): SYN, then the ACK that completes
    // the handshake and writes the affinity.
    let mut control_queue = BTreeMap::new();
    for i in 0..CLIENTS {
        let q = rig.receive(CLIENT_PORT, &tcp_frame(client(i), 50000, WEB, 21, SYN));
        control_queue.insert(i, q);
    }
    poll_all();
    for i in 0..CLIENTS {
        rig.receive(CLIENT_PORT, &tcp_frame(client(i), 50000, WEB, 21, ACK));
    }
    poll_all();
    let control = take(&rig);
    assert_eq!(control.len(), usize::from(CLIENTS));
    // The control thread's part: only affinities came out (no hand-off), one per client.
    let mut shared = 0;
    for (from, out) in outs.iter().enumerate() {
        let records = out.drain_all();
        assert!(
            records
                .iter()
                .all(|r| r.key.src_port == 0 && r.key.dst_port == 0),
            "{records:?}"
        );
        shared += records.len();
        for (to, ring) in siblings.iter().enumerate().filter(|(to, _)| *to != from) {
            for r in &records {
                ring.push(*r)
                    .unwrap_or_else(|_| panic!("worker {to}'s ring is full"));
            }
        }
    }
    assert_eq!(shared, usize::from(CLIENTS));
    poll_all();
    let adopted: u64 = rig
        .cores
        .iter()
        .map(|c| CoreCounters::get(&c.affinity_adopted))
        .sum();
    assert_eq!(adopted, u64::from(CLIENTS));
    // Each client's data connection to an unlisted port, from a source port RSS gives to the
    // worker that did not see its control connection.
    let mut data_port = BTreeMap::new();
    for i in 0..CLIENTS {
        let other = 1 - control_queue[&i];
        let sport = (40000..)
            .find(|&p| rss(&tcp_frame(client(i), p, WEB, 30000, SYN)).1 == other)
            .unwrap();
        assert_eq!(
            rig.receive(CLIENT_PORT, &tcp_frame(client(i), sport, WEB, 30000, SYN)),
            other
        );
        data_port.insert(i, sport);
    }
    poll_all();
    let data = take(&rig);
    let mut not_in_single = 0;
    for i in 0..CLIENTS {
        let (cq, cmac) = control[&(client(i), 50000)];
        let (dq, dmac) = data[&(client(i), data_port[&i])];
        assert_ne!(
            cq, dq,
            "client {i}: the data connection is on the other worker"
        );
        assert_eq!(
            dmac, cmac,
            "client {i}: data connection on its control connection's member"
        );
        not_in_single += usize::from(cmac != WEB_MACS[0]);
    }
    // The round robin (3:2:1) put some control connections on members other than m1, the
    // unlisted port's in_single member: without the shared affinity those would fail.
    assert!(
        not_in_single >= 4,
        "{not_in_single} of {CLIENTS} clients off m1"
    );
}

/// An ICMP "fragmentation needed" (next-hop MTU 1280) from a router on the client's side to
/// web, quoting the first 28 bytes of web's segment 80 -> `client_port` to the client (what a
/// member sent through a small-MTU hop).
fn frag_needed(client_port: u16) -> Vec<u8> {
    let mut q = [0u8; 28];
    q[0] = 0x45;
    q[2..4].copy_from_slice(&1500u16.to_be_bytes());
    q[6] = 0x40;
    q[8] = 63;
    q[9] = 6;
    q[12..16].copy_from_slice(&WEB);
    q[16..20].copy_from_slice(&CLIENT);
    let c = clua_pipeline::wire::checksum::checksum(&q[..20]);
    q[10..12].copy_from_slice(&c.to_be_bytes());
    q[20..22].copy_from_slice(&80u16.to_be_bytes());
    q[22..24].copy_from_slice(&client_port.to_be_bytes());
    q[24..28].copy_from_slice(&7u32.to_be_bytes());
    let mut icmp = vec![3, 4, 0, 0, 0, 0, 0x05, 0x00];
    icmp.extend_from_slice(&q);
    let c = clua_pipeline::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4_frame([198, 51, 100, 1], WEB, 1, &icmp)
}

/// Issue 12 (CA7 with several workers): an ICMP error reaches the worker RSS hashes its outer
/// addresses to; the TCP flow it quotes may be the other worker's. The first worker passes it
/// on (`Verdict::ToWorker`, a `Relay` ring of workers), the second finds the flow and sends the
/// error to the flow's member, as one worker would. An error about a flow neither holds goes
/// to the miss choice at the last worker and is not passed on again.
#[test]
fn an_icmp_error_for_the_other_workers_flow_reaches_that_flows_member() {
    let now = Arc::new(AtomicU64::new(1_000));
    let cfg = PipelineConfig {
        icmp_errors_to_other_workers: true,
        ..PipelineConfig::default()
    };
    let mut relays = clua_lb::worker::relays(usize::from(WORKERS), 64).into_iter();
    let (rig, mut workers) = rig_with(now, cfg, topology(), |_| WorkerSync::default());
    for w in workers.iter_mut() {
        w.relay = relays.next();
    }
    let mut running: Vec<Running<Port, Clk>> = workers.into_iter().map(Worker::start).collect();
    let mut poll_all = || {
        for w in running.iter_mut() {
            assert!(matches!(w.poll(), Poll::Received(_)));
        }
    };
    // 12 connections, all on worker 1 (their SYNs and ACKs on its queue): round robin 3:2:1.
    let ports: Vec<u16> = (42000..42012).collect();
    for &p in &ports {
        rig.receive_on(CLIENT_PORT, 1, &tcp_frame(CLIENT, p, WEB, 80, SYN));
    }
    poll_all();
    for &p in &ports {
        rig.receive_on(CLIENT_PORT, 1, &tcp_frame(CLIENT, p, WEB, 80, ACK));
    }
    poll_all();
    let mut member_of = BTreeMap::new();
    for f in rig.port(IC0).take_tx(1) {
        let (sport, mac) = forwarded_flow(f.data());
        assert_eq!(*member_of.entry(sport).or_insert(mac), mac);
    }
    assert_eq!(member_of.len(), ports.len());
    assert!(rig.port(IC0).take_tx(0).is_empty());
    assert!(
        member_of
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == 3
    );
    // Their ICMP errors all arrive on worker 0, which holds none of the flows.
    for &p in &ports {
        rig.receive_on(CLIENT_PORT, 0, &frag_needed(p));
    }
    poll_all();
    let get = CoreCounters::get;
    assert_eq!(get(&rig.cores[0].icmp_errors_handed), ports.len() as u64);
    assert_eq!(get(&rig.cores[1].icmp_errors_handed), 0);
    assert_eq!(get(&rig.cores[1].icmp_errors_forwarded), ports.len() as u64);
    let errors = rig.port(IC0).take_tx(1);
    assert_eq!(errors.len(), ports.len(), "worker 1 sent every error on");
    for f in &errors {
        let d = f.data();
        // The quoted segment's destination port (the client's) names the flow.
        let inner = if d[23] == 4 { 34 } else { 14 };
        assert_eq!(d[inner + 9], 1, "an ICMP error");
        let q = inner + 20 + 8;
        let client_port = u16::from_be_bytes([d[q + 22], d[q + 23]]);
        assert_eq!(
            d[..6],
            member_of[&client_port][..],
            "error about flow {client_port} at its member"
        );
    }
    // A flow nobody holds: passed on once, then the miss choice at the last worker.
    rig.receive_on(CLIENT_PORT, 0, &frag_needed(43000));
    poll_all();
    assert_eq!(
        get(&rig.cores[0].icmp_errors_handed),
        ports.len() as u64 + 1
    );
    assert_eq!(
        get(&rig.cores[1].icmp_errors_handed),
        0,
        "not passed on again"
    );
    let out = rig.port(IC0).take_tx(1).len() + rig.port(IC1).take_tx(1).len();
    let dropped =
        get(&rig.cores[1].drops[clua_pipeline::DropReason::IcmpErrorUnknownFlow as usize]);
    assert_eq!(
        out as u64 + dropped,
        1,
        "forwarded to the miss choice, or dropped, once"
    );
}
