//! aliasd's worker loop (lb/src/worker.rs) over in-memory queue pairs and fake time: no EAL, no
//! root. The world is the golden topology (lb/pipeline/tests/fixtures/golden.txt): port 0 the
//! client LAN, ports 1 and 2 interconnects; members m1-m3 behind ic0, m4 (vxlan) behind ic1.

#[path = "../pipeline/tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use arc_swap::ArcSwap;
use clua_lb::punt::{PuntQueues, Punted};
use clua_lb::worker::{Poll, Running, Transmit, Worker, WorkerSync, SNAPSHOT_POLL};
use clua_packet::{PacketBuf, QueuePort, VecBuf, BURST};
use clua_pipeline::{CoreCounters, DropReason, Pipeline, PipelineConfig, PuntReason, Snapshot};
use common::*;
use crossbeam_queue::ArrayQueue;

const CLIENT_PORT: u16 = 0;
const IC0: u16 = 1;
const IC1: u16 = 2;
const IC0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// A VecBuf that knows how many of its kind are alive, to check that what the worker does not
/// send is freed.
#[derive(Debug)]
struct Tracked {
    buf: VecBuf,
    live: Arc<AtomicUsize>,
}

impl Tracked {
    fn new(frame: &[u8], live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::Relaxed);
        Tracked {
            buf: VecBuf::new(frame),
            live: live.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PacketBuf for Tracked {
    fn data(&self) -> &[u8] {
        self.buf.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.buf.data_mut()
    }
    fn prepend(&mut self, n: usize) -> bool {
        self.buf.prepend(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        self.buf.adj(n)
    }
    fn trim(&mut self, n: usize) -> bool {
        self.buf.trim(n)
    }
}

type Port<B> = Arc<QueuePort<B>>;

/// A worker and everything a test needs to drive and observe it.
struct Rig<B: PacketBuf> {
    ports: Vec<Port<B>>,
    punt: Arc<PuntQueues<B>>,
    inject: Arc<ArrayQueue<Transmit<B>>>,
    shared: Arc<ArcSwap<Snapshot>>,
    stop: Arc<AtomicBool>,
    now: Arc<AtomicU64>,
    counters: Arc<CoreCounters>,
}

type TestWorker<B> = Worker<Port<B>, Box<dyn Fn() -> u64 + Send>>;

impl<B: PacketBuf> Rig<B> {
    /// Three ports with two queues each; the worker uses queue `queue` and, as worker 0,
    /// transmits injected frames.
    fn new(queue: u16, cfg: PipelineConfig, punt_capacity: usize) -> (Self, TestWorker<B>) {
        let snapshot = Arc::new(topology());
        let counters = Arc::new(cfg.new_counters());
        let rig = Rig {
            ports: (0..3).map(|_| Arc::new(QueuePort::new(2))).collect(),
            punt: Arc::new(PuntQueues::new(punt_capacity)),
            inject: Arc::new(ArrayQueue::new(64)),
            shared: Arc::new(ArcSwap::new(snapshot.clone())),
            stop: Arc::new(AtomicBool::new(false)),
            now: Arc::new(AtomicU64::new(1_000)),
            counters: counters.clone(),
        };
        let now = rig.now.clone();
        let worker = Worker {
            queue,
            ports: rig.ports.clone(),
            pipeline: Pipeline::new(&cfg, snapshot, counters),
            punt: rig.punt.clone(),
            inject: (queue == 0).then(|| rig.inject.clone()),
            snapshot: rig.shared.clone(),
            stop: rig.stop.clone(),
            idle_sleep_us: 0,
            clock: Box::new(move || now.load(Ordering::Relaxed)) as Box<dyn Fn() -> u64 + Send>,
            sync: WorkerSync::default(),
        };
        (rig, worker)
    }

    fn port(&self, p: u16) -> &QueuePort<B> {
        &self.ports[usize::from(p)]
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.counters.drops_for(r)
    }
}

fn rig(
    queue: u16,
) -> (
    Rig<VecBuf>,
    Running<Port<VecBuf>, Box<dyn Fn() -> u64 + Send>>,
) {
    let (rig, worker) = Rig::new(queue, PipelineConfig::default(), 1024);
    (rig, worker.start())
}

fn syn(sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    tcp_frame(CLIENT, sport, dst, dport, SYN)
}

fn dst_mac(frame: &[u8]) -> [u8; 6] {
    frame[..6].try_into().unwrap()
}

/// An ARP request from the client for `target`.
fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&CLIENT);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// An ICMP echo request from the client to `dst`.
fn echo_request(dst: [u8; 4]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
    let c = clua_pipeline::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4_frame(CLIENT, dst, 1, &icmp)
}

/// A member advert datagram arriving on ic0 for the router's ic0 address (udp/9471).
fn advert_on_ic0() -> Vec<u8> {
    let mut f = udp_frame([192, 0, 2, 11], 9471, [192, 0, 2, 2], 9471, b"advert");
    f[..6].copy_from_slice(&IC0_MAC);
    f
}

#[test]
fn forwards_each_packet_to_its_members_port_on_the_workers_queue() {
    // Worker 1: its RX and TX queue is 1 on every port.
    let (rig, mut w) = rig(1);
    let client = rig.port(CLIENT_PORT);
    client
        .push_rx(1, VecBuf::new(&syn(40000, WEB, 80)))
        .unwrap();
    client.push_rx(1, VecBuf::new(&syn(40001, VX, 80))).unwrap();
    client
        .push_rx(0, VecBuf::new(&syn(40002, WEB, 80)))
        .unwrap();
    assert_eq!(
        w.poll(),
        Poll::Received(2),
        "queue 0 belongs to another worker"
    );
    assert_eq!(client.rx_len(0), 1);

    let to_ic0 = rig.port(IC0).take_tx(1);
    assert_eq!(to_ic0.len(), 1, "web (m1-m3, l2) goes out of ic0");
    let m = dst_mac(to_ic0[0].data());
    assert!(
        [[2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 1, 3]].contains(&m),
        "rewritten for a web member, not {m:02x?}"
    );
    let to_ic1 = rig.port(IC1).take_tx(1);
    assert_eq!(to_ic1.len(), 1, "vx (m4, vxlan) goes out of ic1");
    assert_eq!(dst_mac(to_ic1[0].data()), [2, 0, 0, 0, 2, 1]);
    assert!(
        to_ic1[0].data().len() > syn(40001, VX, 80).len(),
        "vxlan-encapsulated"
    );
    for p in [CLIENT_PORT, IC0, IC1] {
        assert_eq!(rig.port(p).tx_len(0), 0, "nothing on queue 0 of port {p}");
    }
    assert_eq!(rig.port(CLIENT_PORT).tx_len(1), 0);
    assert_eq!(CoreCounters::get(&rig.counters.forwarded), 2);
    assert_eq!(CoreCounters::get(&rig.counters.rx), 2);
}

#[test]
fn tx_is_buffered_per_port_and_flushed_after_every_rx_burst() {
    let (rig, mut w) = rig(0);
    let client = rig.port(CLIENT_PORT);
    // 40 packets, alternating web (ic0) and vx (ic1).
    for i in 0..40u16 {
        let dst = if i % 2 == 0 { WEB } else { VX };
        client
            .push_rx(0, VecBuf::new(&syn(41000 + i, dst, 80)))
            .unwrap();
    }
    assert_eq!(w.poll(), Poll::Received(BURST));
    assert_eq!(rig.port(IC0).tx_len(0), BURST / 2);
    assert_eq!(rig.port(IC1).tx_len(0), BURST / 2);
    assert_eq!(client.rx_len(0), 40 - BURST);
    assert_eq!(w.poll(), Poll::Received(40 - BURST));
    assert_eq!(w.poll(), Poll::Received(0));
    let ic0 = rig.port(IC0).take_tx(0);
    let ic1 = rig.port(IC1).take_tx(0);
    assert_eq!((ic0.len(), ic1.len()), (20, 20));
    // In order within each port: the source ports rise. (The TCP header, without payload, ends
    // the frame whether or not it was encapsulated.)
    let sports: Vec<u16> = ic0
        .iter()
        .map(|b| {
            let tcp = &b.data()[b.data().len() - 20..];
            u16::from_be_bytes([tcp[0], tcp[1]])
        })
        .collect();
    assert_eq!(sports, (0..20).map(|i| 41000 + 2 * i).collect::<Vec<_>>());
    assert_eq!(rig.drops(DropReason::TxFull), 0);
}

#[test]
fn a_port_that_takes_part_of_a_burst_costs_tx_full_drops_and_frees_the_rest() {
    let live = Arc::new(AtomicUsize::new(0));
    let (rig, worker) = Rig::<Tracked>::new(0, PipelineConfig::default(), 1024);
    let mut w = worker.start();
    rig.port(IC0).set_tx_capacity(Some(10));
    for i in 0..BURST as u16 {
        rig.port(CLIENT_PORT)
            .push_rx(0, Tracked::new(&syn(42000 + i, WEB, 80), &live))
            .unwrap();
    }
    assert_eq!(live.load(Ordering::Relaxed), BURST);
    assert_eq!(w.poll(), Poll::Received(BURST));
    assert_eq!(rig.port(IC0).tx_len(0), 10, "the port took 10");
    assert_eq!(rig.drops(DropReason::TxFull), (BURST - 10) as u64);
    assert_eq!(
        live.load(Ordering::Relaxed),
        10,
        "the 22 not taken were freed, not kept for later"
    );
    assert_eq!(CoreCounters::get(&rig.counters.forwarded), BURST as u64);
    drop(rig.port(IC0).take_tx(0));
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

#[test]
fn worker_0_transmits_injected_frames_on_its_queue() {
    let (rig, mut w) = rig(0);
    // More than a burst for one port: the TX buffer is flushed when full.
    for i in 0..(BURST + 8) as u8 {
        rig.inject
            .push(Transmit {
                port: CLIENT_PORT,
                buf: VecBuf::new(&[i; 42]),
            })
            .unwrap();
    }
    rig.inject
        .push(Transmit {
            port: IC1,
            buf: VecBuf::new(&[0xaa; 42]),
        })
        .unwrap();
    rig.inject
        .push(Transmit {
            port: 7,
            buf: VecBuf::new(&[0xbb; 42]),
        })
        .unwrap();
    assert_eq!(w.poll(), Poll::Received(0));
    assert!(rig.inject.is_empty());
    let sent = rig.port(CLIENT_PORT).take_tx(0);
    assert_eq!(sent.len(), BURST + 8);
    for (i, b) in sent.iter().enumerate() {
        assert_eq!(b.data(), &[i as u8; 42][..], "frame {i} in order");
    }
    assert_eq!(rig.port(IC1).take_tx(0).len(), 1);
    assert_eq!(
        rig.drops(DropReason::WrongPort),
        1,
        "a frame for a port the worker lacks is dropped and counted"
    );
    assert_eq!(
        CoreCounters::get(&rig.counters.rx),
        0,
        "injected frames are not received"
    );

    // Other workers leave the inject queue alone.
    let (rig1, mut w1) = rig_with_shared_inject(&rig);
    rig.inject
        .push(Transmit {
            port: CLIENT_PORT,
            buf: VecBuf::new(&[1; 42]),
        })
        .unwrap();
    w1.poll();
    assert_eq!(rig.inject.len(), 1);
    assert_eq!(rig1.port(CLIENT_PORT).tx_len(1), 0);
}

/// A worker on queue 1 whose rig shares `other`'s inject queue (which it must not serve).
fn rig_with_shared_inject(
    other: &Rig<VecBuf>,
) -> (
    Rig<VecBuf>,
    Running<Port<VecBuf>, Box<dyn Fn() -> u64 + Send>>,
) {
    let (mut rig, worker) = Rig::new(1, PipelineConfig::default(), 1024);
    rig.inject = other.inject.clone();
    assert!(worker.inject.is_none());
    (rig, worker.start())
}

#[test]
fn punted_packets_reach_their_reasons_queue_unchanged_with_their_port() {
    let (rig, mut w) = rig(0);
    let arp = arp_request([198, 51, 100, 100]);
    let echo = echo_request(WEB);
    let advert = advert_on_ic0();
    rig.port(CLIENT_PORT).push_rx(0, VecBuf::new(&arp)).unwrap();
    rig.port(CLIENT_PORT)
        .push_rx(0, VecBuf::new(&echo))
        .unwrap();
    rig.port(IC0).push_rx(0, VecBuf::new(&advert)).unwrap();
    assert_eq!(w.poll(), Poll::Received(3));
    for r in PuntReason::ALL {
        let want = usize::from(matches!(
            r,
            PuntReason::Arp | PuntReason::IcmpEcho | PuntReason::MemberAdvert
        ));
        assert_eq!(rig.punt.len(r), want, "{r:?}");
    }
    let mut got = Vec::new();
    rig.punt.drain(8, |p: Punted<VecBuf>| {
        got.push((p.reason, p.port, p.buf.data().to_vec()))
    });
    assert_eq!(
        got,
        vec![
            (PuntReason::Arp, CLIENT_PORT, arp),
            (PuntReason::IcmpEcho, CLIENT_PORT, echo),
            (PuntReason::MemberAdvert, IC0, advert),
        ]
    );
    for p in [CLIENT_PORT, IC0, IC1] {
        assert_eq!(rig.port(p).tx_len(0), 0, "punted packets are not sent");
    }
}

#[test]
fn a_full_punt_queue_drops_only_its_own_reason_counted_per_reason() {
    let (rig, worker) = Rig::<VecBuf>::new(0, PipelineConfig::default(), 4);
    let mut w = worker.start();
    for _ in 0..10 {
        rig.port(IC0)
            .push_rx(0, VecBuf::new(&advert_on_ic0()))
            .unwrap();
    }
    rig.port(CLIENT_PORT)
        .push_rx(0, VecBuf::new(&arp_request(WEB)))
        .unwrap();
    assert_eq!(w.poll(), Poll::Received(11));
    assert_eq!(rig.punt.len(PuntReason::MemberAdvert), 4);
    assert_eq!(rig.punt.len(PuntReason::Arp), 1);
    assert_eq!(rig.counters.punt_dropped_for(PuntReason::MemberAdvert), 6);
    assert_eq!(rig.counters.punt_dropped_for(PuntReason::Arp), 0);
    assert_eq!(rig.drops(DropReason::PuntQueueFull), 6);
    let mut first = None;
    rig.punt.drain(1, |p| {
        first.get_or_insert(p.reason);
    });
    assert_eq!(first, Some(PuntReason::Arp));
}

#[test]
fn a_new_snapshot_takes_effect_between_bursts() {
    let (rig, mut w) = rig(0);
    // tun's only member is m3. Generation 2 takes m3 down.
    rig.shared.store(Arc::new(topology_with(
        2,
        [true, true, false, true],
        vec![am(0, 1)],
    )));
    rig.port(CLIENT_PORT)
        .push_rx(0, VecBuf::new(&syn(43000, TUN, 80)))
        .unwrap();
    assert_eq!(w.poll(), Poll::Received(1));
    assert_eq!(
        w.worker().pipeline.snapshot().generation,
        1,
        "not re-read every loop"
    );
    assert_eq!(rig.port(IC0).take_tx(0).len(), 1, "generation 1: m3 is up");

    let mut polls = 1;
    while w.worker().pipeline.snapshot().generation == 1 {
        assert_eq!(w.poll(), Poll::Received(0));
        polls += 1;
        assert!(
            polls <= SNAPSHOT_POLL,
            "no swap within {SNAPSHOT_POLL} loops"
        );
    }
    assert_eq!(polls, SNAPSHOT_POLL);
    assert_eq!(w.worker().pipeline.snapshot().generation, 2);
    rig.port(CLIENT_PORT)
        .push_rx(0, VecBuf::new(&syn(43001, TUN, 80)))
        .unwrap();
    assert_eq!(w.poll(), Poll::Received(1));
    assert_eq!(rig.port(IC0).tx_len(0), 0);
    assert_eq!(
        rig.drops(DropReason::NoMember),
        1,
        "generation 2: tun has no member up"
    );
}

#[test]
fn the_workers_clock_is_the_pipelines_time() {
    // One refusal per second: a second SYN to the in_noalias port 513 in the same second is
    // dropped, one a second later (fake time) is answered.
    let cfg = PipelineConfig {
        refusals_per_sec: 1,
        ..PipelineConfig::default()
    };
    let (rig, worker) = Rig::<VecBuf>::new(0, cfg, 1024);
    let mut w = worker.start();
    let client = rig.port(CLIENT_PORT);
    let mut send = |sport: u16| {
        client
            .push_rx(0, VecBuf::new(&syn(sport, WEB, 513)))
            .unwrap();
        w.poll();
        client.take_tx(0).len()
    };
    assert_eq!(send(44000), 1, "refused with a RST on the client port");
    assert_eq!(send(44001), 0, "over the limit");
    rig.now.fetch_add(1_000, Ordering::Relaxed);
    assert_eq!(send(44002), 1, "a second later, by the worker's clock");
    assert_eq!(rig.drops(DropReason::InNoalias), 1);
}

#[test]
fn the_stop_flag_ends_the_loop() {
    let (rig, mut w) = rig(0);
    rig.stop.store(true, Ordering::Relaxed);
    let mut polls = 0;
    while w.poll() != Poll::Stopped {
        polls += 1;
        assert!(polls < SNAPSHOT_POLL, "still running after {polls} loops");
    }

    // And run() on its own thread returns once the flag is set, having forwarded meanwhile.
    let (rig, mut worker) = Rig::<VecBuf>::new(0, PipelineConfig::default(), 1024);
    worker.idle_sleep_us = 50;
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || done_tx.send(worker.run()).unwrap());
    rig.port(CLIENT_PORT)
        .push_rx(0, VecBuf::new(&syn(45000, WEB, 80)))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rig.port(IC0).tx_len(0) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the running worker forwarded nothing"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    rig.stop.store(true, Ordering::Relaxed);
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(0));
    thread.join().unwrap();
}
