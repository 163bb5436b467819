//! aliasd's worker loop (lb/src/worker.rs) over in-memory queue pairs and fake time: no EAL, no
//! root. The world is the golden topology (lb/pipeline/tests/fixtures/golden.txt): port 0 the
//! client LAN, ports 1 and 2 interconnects; members m1-m3 behind ic0, m4 (vxlan) behind ic1.

#[path = "../pipeline/tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use clua_lb::idle::IdlePolicy;
use clua_lb::punt::{PuntQueues, Punted};
use clua_lb::records::RecordRing;
use clua_lb::worker::{Poll, Running, Transmit, Worker, WorkerSync, SNAPSHOT_POLL};
use clua_packet::{PacketBuf, QueuePort, VecBuf, BURST};
use clua_pipeline::conntrack::FlowState;
use clua_pipeline::handoff::FlowRecord;
use clua_pipeline::hash::FlowKey;
use clua_pipeline::snapshot::MemberId;
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
        Self::with_sync(queue, cfg, punt_capacity, WorkerSync::default())
    }

    /// [`Rig::new`] with flow hand-off (issue 9).
    fn with_sync(
        queue: u16,
        cfg: PipelineConfig,
        punt_capacity: usize,
        sync: WorkerSync,
    ) -> (Self, TestWorker<B>) {
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
            idle: IdlePolicy::Poll,
            clock: Box::new(move || now.load(Ordering::Relaxed)) as Box<dyn Fn() -> u64 + Send>,
            sync,
            capture: None,
            relay: None,
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

fn rig(queue: u16) -> (Rig<VecBuf>, TestRunning) {
    let (rig, worker) = Rig::new(queue, PipelineConfig::default(), 1024);
    (rig, worker.start())
}

fn syn(sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    tcp_frame(CLIENT, sport, dst, dport, SYN)
}

fn dst_mac(frame: &[u8]) -> [u8; 6] {
    frame[..6].try_into().unwrap()
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
fn rig_with_shared_inject(other: &Rig<VecBuf>) -> (Rig<VecBuf>, TestRunning) {
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
    worker.idle = IdlePolicy::Sleep { us: 50 };
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

// Flow hand-off (issue 9): the worker's rings to and from the control thread.

/// The rings of one worker's hand-off, held by the test as the control thread would.
struct SyncRig {
    out: Arc<RecordRing>,
    install: Arc<ArrayQueue<FlowRecord>>,
    walk_all: Arc<AtomicBool>,
    dump: Arc<Mutex<Vec<FlowRecord>>>,
}

type TestRunning = Running<Port<VecBuf>, Box<dyn Fn() -> u64 + Send>>;

/// Worker 1 with hand-off on, an outgoing ring of `out_capacity` records and a periodic walk
/// every `refresh_ms` (0: none).
fn sync_rig(
    conn_capacity: usize,
    out_capacity: usize,
    refresh_ms: u64,
) -> (Rig<VecBuf>, SyncRig, TestRunning) {
    let s = SyncRig {
        // Batches of 4 records, so that small rings still have several.
        out: RecordRing::new(out_capacity, 4),
        install: Arc::new(ArrayQueue::new(4096)),
        walk_all: Arc::new(AtomicBool::new(false)),
        dump: Arc::new(Mutex::new(Vec::new())),
    };
    let cfg = PipelineConfig {
        conn_capacity,
        handoff: true,
        ..PipelineConfig::default()
    };
    let sync = WorkerSync {
        handoff: Some(s.out.clone()),
        refresh_ms,
        install: Some(s.install.clone()),
        walk_all: Some(s.walk_all.clone()),
        siblings: None,
        dump: Some(s.dump.clone()),
    };
    let (rig, worker) = Rig::with_sync(1, cfg, 1024, sync);
    (rig, s, worker.start())
}

fn drain(q: &RecordRing) -> Vec<FlowRecord> {
    q.drain_all()
}

fn web_key(sport: u16) -> FlowKey {
    FlowKey {
        src: u32::from_be_bytes(CLIENT),
        dst: u32::from_be_bytes(WEB),
        src_port: sport,
        dst_port: 80,
        proto: 6,
    }
}

fn established(sport: u16, member: u32, remaining_ms: u32) -> FlowRecord {
    FlowRecord {
        key: web_key(sport),
        member: MemberId(member),
        state: FlowState::Established,
        isn: 1000 + u32::from(sport),
        remaining_ms,
    }
}

fn member_of(w: &TestRunning, key: &FlowKey, now_ms: u64) -> Option<MemberId> {
    let conns = w.worker().pipeline.selector().conns();
    conns.find(key, conns.hash(key), now_ms).map(|s| s.member)
}

/// Issue 9: a TCP flow that becomes established (the client's ACK after its SYN) is handed to
/// the control thread after the burst, once, with its member.
#[test]
fn flows_that_become_established_are_handed_to_the_control_thread() {
    let (rig, s, mut w) = sync_rig(1024, 64, 0);
    let client = rig.port(CLIENT_PORT);
    for i in 0..3 {
        client
            .push_rx(1, VecBuf::new(&syn(43000 + i, WEB, 80)))
            .unwrap();
    }
    w.poll();
    assert!(s.out.is_empty(), "half-open flows are not handed over");
    for i in 0..3 {
        client
            .push_rx(1, VecBuf::new(&tcp_frame(CLIENT, 43000 + i, WEB, 80, ACK)))
            .unwrap();
    }
    w.poll();
    let got = drain(&s.out);
    assert_eq!(got.len(), 3);
    for (r, i) in got.iter().zip(0..) {
        assert_eq!(r.key, web_key(43000 + i));
        assert_eq!(r.state, FlowState::Established);
        assert_eq!(Some(r.member), member_of(&w, &r.key, 1_000));
    }
    assert_eq!(CoreCounters::get(&rig.counters.handoff_emitted), 3);
    // Later segments of the same flows hand nothing over again.
    for i in 0..3 {
        client
            .push_rx(1, VecBuf::new(&tcp_frame(CLIENT, 43000 + i, WEB, 80, ACK)))
            .unwrap();
    }
    w.poll();
    assert!(s.out.is_empty());
}

/// Issue 9: a full ring never holds a worker up: the records that do not fit are dropped and
/// counted, and packets are forwarded as usual.
#[test]
fn a_full_handoff_ring_drops_and_counts_and_never_blocks() {
    let (rig, s, mut w) = sync_rig(1024, 4, 0);
    let client = rig.port(CLIENT_PORT);
    // Mid-flow ACKs: each is a non-SYN miss inserted as established, and handed over.
    for i in 0..10 {
        client
            .push_rx(1, VecBuf::new(&tcp_frame(CLIENT, 44000 + i, WEB, 80, ACK)))
            .unwrap();
    }
    assert_eq!(w.poll(), Poll::Received(10));
    assert_eq!(rig.port(IC0).take_tx(1).len(), 10, "every packet forwarded");
    assert_eq!(s.out.len(), 4);
    assert_eq!(CoreCounters::get(&rig.counters.handoff_emitted), 4);
    assert_eq!(CoreCounters::get(&rig.counters.handoff_ring_full), 6);
}

/// Issue 9: the periodic walk hands every live entry over once per `refresh_ms`, paced by the
/// clock (not all at once), and again in the next period.
#[test]
fn the_periodic_walk_covers_the_table_once_per_refresh_period() {
    let (rig, s, mut w) = sync_rig(4096, 8192, 1_000);
    // 300 flows, installed as a peer would hand them.
    for i in 0..300 {
        s.install
            .push(established(i, 1 + u32::from(i) % 3, 60_000))
            .unwrap();
    }
    // The first loops install them (a budget per loop) and start the pass at t = 1000.
    for _ in 0..2 {
        w.poll();
    }
    assert_eq!(CoreCounters::get(&rig.counters.handoff_installed), 300);
    assert!(drain(&s.out).len() <= 300);
    // Halfway through the period about half of the table has been walked.
    let mut seen = Vec::new();
    rig.now.store(1_500, Ordering::Relaxed);
    for _ in 0..20 {
        w.poll();
    }
    seen.extend(drain(&s.out));
    let half = seen.len();
    // Repeating loops at the same time walk nothing more.
    for _ in 0..20 {
        w.poll();
    }
    assert!(s.out.is_empty(), "the walk is paced by time, not by loops");
    rig.now.store(2_000, Ordering::Relaxed);
    for _ in 0..20 {
        w.poll();
    }
    seen.extend(drain(&s.out));
    // The first pass, counting the part walked at t = 1000 before the installs, saw each flow
    // at most once; by the end of the period every flow has been handed over.
    let mut keys: Vec<u16> = seen.iter().map(|r| r.key.src_port).collect();
    keys.sort_unstable();
    let before = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), before, "no flow twice in one pass");
    assert!(
        (50..=250).contains(&half),
        "{half} of 300 flows after half the period"
    );
    // The next period hands every one over again, each with its member and time left.
    rig.now.store(3_000, Ordering::Relaxed);
    for _ in 0..40 {
        w.poll();
    }
    let again = drain(&s.out);
    assert_eq!(again.len(), 300, "the whole table within the second period");
    for r in &again {
        assert_eq!(r.member, MemberId(1 + u32::from(r.key.src_port) % 3));
        assert_eq!(r.remaining_ms, 60_000 - 2_000);
    }
    assert_eq!(CoreCounters::get(&rig.counters.handoff_ring_full), 0);
}

/// Issue 9: with the ring full the walk waits instead of dropping: nothing is lost, and it
/// continues where it stopped once the control thread has drained the ring.
#[test]
fn a_full_ring_holds_the_walk_without_losing_entries() {
    let (rig, s, mut w) = sync_rig(1024, 16, 1_000);
    for i in 0..100 {
        s.install.push(established(i, 1, 60_000)).unwrap();
    }
    w.poll();
    rig.now.store(5_000, Ordering::Relaxed);
    let mut seen = Vec::new();
    for _ in 0..200 {
        w.poll();
        assert!(s.out.len() <= 16);
        // The control thread takes a batch at a time.
        s.out
            .drain(1, |r| seen.extend(r.iter().map(|r| r.key.src_port)));
    }
    seen.extend(drain(&s.out).iter().map(|r| r.key.src_port));
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 100, "every entry handed over");
    assert_eq!(CoreCounters::get(&rig.counters.handoff_ring_full), 0);
}

/// Issue 9: a starting peer's request (walk_all) walks the whole table once, without waiting
/// for the refresh period, a bounded number of slots per loop.
#[test]
fn walk_all_hands_the_whole_table_over_once() {
    // No periodic walk: only the request walks.
    let (rig, s, mut w) = sync_rig(1 << 16, 1 << 16, 0);
    for i in 0..2000 {
        s.install.push(established(i, 2, 60_000)).unwrap();
    }
    for _ in 0..(2000 / clua_lb::worker::INSTALL_BUDGET + 1) {
        w.poll();
    }
    assert_eq!(CoreCounters::get(&rig.counters.handoff_installed), 2000);
    assert!(s.out.is_empty());
    s.walk_all.store(true, Ordering::Relaxed);
    // Seen at the next stop-flag check; then 4096 slots per loop: 16 loops for 65536.
    let loops = SNAPSHOT_POLL as usize + (1 << 16) / clua_lb::worker::WALK_ALL_SLOTS_PER_LOOP;
    let mut after_one_check = 0;
    for i in 0..loops {
        w.poll();
        if i == SNAPSHOT_POLL as usize {
            after_one_check = s.out.len();
        }
    }
    assert!(
        !s.walk_all.load(Ordering::Relaxed),
        "the worker took the request"
    );
    assert!(
        after_one_check > 0 && after_one_check < 2000,
        "bounded per loop: {after_one_check} after the first walking loops"
    );
    let got = drain(&s.out);
    assert_eq!(got.len(), 2000);
    for _ in 0..200 {
        w.poll();
    }
    assert!(s.out.is_empty(), "once");
}

/// Issue 9: records the control thread passes are installed, a budget per loop, and then
/// decide where the flow's packets go; a flow whose SYN this worker saw keeps its member.
#[test]
fn installed_flows_steer_their_packets_and_local_syn_flows_keep_theirs() {
    let (rig, s, mut w) = sync_rig(1024, 1024, 0);
    let client = rig.port(CLIENT_PORT);
    // A local flow: SYN seen here.
    client
        .push_rx(1, VecBuf::new(&syn(45000, WEB, 80)))
        .unwrap();
    w.poll();
    let local = member_of(&w, &web_key(45000), 1_000).unwrap();
    drop(rig.port(IC0).take_tx(1));
    let other = MemberId(if local.0 == 0 { 1 } else { 0 });
    // A peer claims it for another member, and hands over 600 more flows, all to m3 (id 2).
    s.install
        .push(FlowRecord {
            member: other,
            ..established(45000, 0, 60_000)
        })
        .unwrap();
    for i in 0..600 {
        s.install.push(established(46000 + i, 2, 60_000)).unwrap();
    }
    w.poll();
    assert_eq!(
        s.install.len(),
        601 - clua_lb::worker::INSTALL_BUDGET,
        "a budget per loop"
    );
    for _ in 0..3 {
        w.poll();
    }
    assert!(s.install.is_empty());
    assert_eq!(CoreCounters::get(&rig.counters.handoff_installed), 600);
    assert_eq!(CoreCounters::get(&rig.counters.handoff_kept), 1);
    assert_eq!(member_of(&w, &web_key(45000), 1_000), Some(local));
    // Mid-flow packets of the handed-over flows go to m3 (02:00:00:00:01:03), whatever the
    // consistent hash would say.
    for i in 0..20 {
        client
            .push_rx(1, VecBuf::new(&tcp_frame(CLIENT, 46000 + i, WEB, 80, ACK)))
            .unwrap();
    }
    w.poll();
    let out = rig.port(IC0).take_tx(1);
    assert_eq!(out.len(), 20);
    for b in &out {
        assert_eq!(dst_mac(b.data()), [2, 0, 0, 0, 1, 3]);
    }
}

/// Issue 9: once stopped, the worker hands its whole table back (for the flows file).
#[test]
fn a_stopped_worker_hands_its_table_back() {
    let (rig, s, mut w) = sync_rig(1024, 1024, 0);
    for i in 0..50 {
        s.install.push(established(i, 1, 60_000)).unwrap();
    }
    w.poll();
    rig.stop.store(true, Ordering::Relaxed);
    while w.poll() != Poll::Stopped {}
    w.hand_back();
    let mut got = s.dump.lock().unwrap().clone();
    got.sort_by_key(|r| r.key.src_port);
    assert_eq!(got.len(), 50);
    for (r, i) in got.iter().zip(0..) {
        assert_eq!(*r, established(i, 1, 60_000));
    }
}

/// Issue 9: `Worker::run` hands the table back on its way out, on its own thread.
#[test]
fn run_hands_the_table_back_when_stopped() {
    let dump = Arc::new(Mutex::new(Vec::new()));
    let install = Arc::new(ArrayQueue::new(64));
    let cfg = PipelineConfig::default();
    let sync = WorkerSync {
        install: Some(install.clone()),
        dump: Some(dump.clone()),
        ..WorkerSync::default()
    };
    let (rig, worker) = Rig::<VecBuf>::with_sync(0, cfg, 16, sync);
    for i in 0..10 {
        install.push(established(i, 2, 60_000)).unwrap();
    }
    let t = std::thread::spawn(move || worker.run());
    while !install.is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    rig.stop.store(true, Ordering::Relaxed);
    assert_eq!(t.join().unwrap(), 0);
    assert_eq!(dump.lock().unwrap().len(), 10);
}

/// Issue 12: an adaptive worker that has been idle long enough to sleep at its bound still
/// does everything its loop does between bursts: it sends injected frames, sees the stop
/// flag, picks up a new snapshot and a walk request (every SNAPSHOT_POLL loops), installs
/// handed-over flows, walks its table; and the first packet after the silence is forwarded.
/// Deadlines only catch a hang; nothing here is timed.
#[test]
fn an_adaptive_worker_keeps_its_loop_work_going_while_it_sleeps() {
    let out = RecordRing::new(1 << 12, 4);
    let install = Arc::new(ArrayQueue::new(64));
    let walk_all = Arc::new(AtomicBool::new(false));
    let cfg = PipelineConfig {
        conn_capacity: 1 << 12,
        handoff: true,
        ..PipelineConfig::default()
    };
    let sync = WorkerSync {
        handoff: Some(out.clone()),
        install: Some(install.clone()),
        walk_all: Some(walk_all.clone()),
        ..WorkerSync::default()
    };
    let (rig, mut worker) = Rig::<VecBuf>::with_sync(0, cfg, 1024, sync);
    worker.idle = IdlePolicy::Adaptive { max_sleep_us: 200 };
    let thread = std::thread::spawn(move || worker.run());
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "idle worker: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    // Long past the spin and pause polls: sleeping at the bound.
    std::thread::sleep(Duration::from_millis(50));

    rig.inject
        .push(Transmit {
            port: CLIENT_PORT,
            buf: VecBuf::new(&[7; 42]),
        })
        .unwrap();
    wait_for("an injected frame sent", &|| {
        rig.port(CLIENT_PORT).tx_len(0) == 1
    });

    for i in 0..10 {
        install.push(established(i, 2, 60_000)).unwrap();
    }
    wait_for("handed-over flows installed", &|| {
        CoreCounters::get(&rig.counters.handoff_installed) == 10
    });

    // Generation 2 takes m3 (tun's only member) down; the walk request comes after it, so
    // once the worker has taken the request it has the snapshot too (same check).
    rig.shared.store(Arc::new(topology_with(
        2,
        [true, true, false, true],
        vec![am(0, 1)],
    )));
    walk_all.store(true, Ordering::Relaxed);
    wait_for("the walk request taken", &|| {
        !walk_all.load(Ordering::Relaxed)
    });
    let walked = std::cell::RefCell::new(Vec::new());
    wait_for("the table walked", &|| {
        walked.borrow_mut().extend(drain(&out));
        walked.borrow().len() >= 10
    });
    assert_eq!(walked.borrow().len(), 10, "each installed flow once");

    std::thread::sleep(Duration::from_millis(20));
    rig.port(CLIENT_PORT)
        .push_rx(0, VecBuf::new(&syn(43000, TUN, 80)))
        .unwrap();
    wait_for("the new snapshot applied", &|| {
        rig.drops(DropReason::NoMember) == 1
    });
    std::thread::sleep(Duration::from_millis(20));
    rig.port(CLIENT_PORT)
        .push_rx(0, VecBuf::new(&syn(43001, WEB, 80)))
        .unwrap();
    wait_for("the first packet after idle forwarded", &|| {
        rig.port(IC0).tx_len(0) == 1
    });

    std::thread::sleep(Duration::from_millis(20));
    rig.stop.store(true, Ordering::Relaxed);
    assert_eq!(thread.join().unwrap(), 0);
}

// ---------------------------------------------------------------- cluamgr capture (issue 11)

mod capture {
    use super::*;
    use clua_ctl::capture::{decode, CaptureReply, CaptureRequest};
    use clua_ctl::protocol::Reply;
    use clua_lb::capture::{CaptureTap, Capturer};

    const NOT_ALIAS: [u8; 4] = [198, 51, 100, 77];

    fn tapped() -> (Rig<VecBuf>, TestRunning, Arc<CaptureTap>, Capturer) {
        let (rig, mut worker) = Rig::new(0, PipelineConfig::default(), 1024);
        let tap = CaptureTap::new(1, 64);
        worker.capture = Some(tap.clone());
        let names = ["client", "ic0", "ic1"].map(String::from).to_vec();
        let capturer = Capturer::new(tap.clone(), names);
        (rig, worker.start(), tap, capturer)
    }

    fn req(port: &str, rx: bool, tx: bool, drop: bool, count: u32) -> CaptureRequest {
        CaptureRequest {
            port: port.into(),
            rx,
            tx,
            drop,
            count,
            seconds: 10,
            snaplen: 2048,
            file: "-".into(),
            json: false,
        }
    }

    fn answer(rx: &mpsc::Receiver<Reply>) -> (CaptureReply, Vec<u8>) {
        let r = rx.try_recv().expect("answered");
        assert!(r.ok, "{r:?}");
        let c: CaptureReply = serde_json::from_str(&r.output).unwrap();
        let file = decode(&c.pcapng).unwrap();
        (c, file)
    }

    fn contains(file: &[u8], frame: &[u8]) -> bool {
        file.windows(frame.len()).any(|w| w == frame)
    }

    #[test]
    fn disarmed_the_worker_copies_nothing() {
        let (rig, mut w, tap, _c) = tapped();
        rig.port(CLIENT_PORT)
            .push_rx(0, VecBuf::new(&syn(40000, WEB, 80)))
            .unwrap();
        assert_eq!(w.poll(), Poll::Received(1));
        assert_eq!(rig.port(IC0).take_tx(0).len(), 1);
        assert!(tap.armed().is_off());
        assert_eq!(tap.rings()[0].lost(), 0, "no frame was even asked for");
    }

    #[test]
    fn received_and_dropped_frames_of_the_port_are_captured_as_they_arrived() {
        let (rig, mut w, _tap, mut c) = tapped();
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("client", true, true, true, 3), 0, tx);
        let to_web = syn(40000, WEB, 80);
        let to_nobody = syn(40001, NOT_ALIAS, 80);
        let client = rig.port(CLIENT_PORT);
        client.push_rx(0, VecBuf::new(&to_web)).unwrap();
        client.push_rx(0, VecBuf::new(&to_nobody)).unwrap();
        assert_eq!(w.poll(), Poll::Received(2));
        assert_eq!(rig.drops(DropReason::NotAlias), 1);
        let sent = rig.port(IC0).take_tx(0);
        assert_eq!(sent.len(), 1, "forwarding goes on while capturing");
        assert_ne!(sent[0].data(), &to_web[..], "rewritten for its member");
        c.poll(1);
        let (r, file) = answer(&rx);
        // Forwarded out of ic0, not client: no tx frame here.
        assert_eq!((r.summary.rx, r.summary.dropped, r.summary.tx), (2, 1, 0));
        assert!(
            contains(&file, &to_web),
            "the received frame, before the rewrite"
        );
        assert!(contains(&file, &to_nobody));
        assert!(contains(&file, b"drop: not_alias"));
        assert!(!contains(&file, sent[0].data()));
    }

    #[test]
    fn sent_frames_are_captured_as_they_leave_forwarded_and_injected() {
        let (rig, mut w, tap, mut c) = tapped();
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("ic0", false, true, false, 2), 0, tx);
        rig.port(CLIENT_PORT)
            .push_rx(0, VecBuf::new(&syn(40000, WEB, 80)))
            .unwrap();
        // A frame of the control thread on ic0, and one on client (not captured).
        let control = [0x5a; 60];
        for port in [IC0, CLIENT_PORT] {
            rig.inject
                .push(Transmit {
                    port,
                    buf: VecBuf::new(&control),
                })
                .unwrap();
        }
        w.poll();
        let sent = rig.port(IC0).take_tx(0);
        assert_eq!(sent.len(), 2);
        assert!(tap.rings()[0].lost() == 0);
        c.poll(1);
        let (r, file) = answer(&rx);
        assert_eq!((r.summary.tx, r.summary.rx, r.summary.packets), (2, 0, 2));
        for s in &sent {
            assert!(contains(&file, s.data()), "what ic0 sent is in the file");
        }
        assert!(tap.armed().is_off(), "disarmed at the count");
        // Disarmed: the next frames are not copied.
        rig.port(CLIENT_PORT)
            .push_rx(0, VecBuf::new(&syn(40002, WEB, 80)))
            .unwrap();
        w.poll();
        let (tx, rx) = mpsc::sync_channel(1);
        c.start(&req("ic0", false, true, false, 1), 10, tx);
        c.poll(11);
        assert!(
            rx.try_recv().is_err(),
            "nothing left over from before the start"
        );
    }
}

/// An IPv4 fragment from the client to web: datagram `id`, payload `l4` at byte `offset`.
fn fragment(id: u16, offset: u16, more: bool, l4: &[u8]) -> Vec<u8> {
    let mut f = ipv4_frame(CLIENT, WEB, 17, l4);
    let flags = (offset / 8) | if more { 0x2000 } else { 0 };
    f[18..20].copy_from_slice(&id.to_be_bytes());
    f[20..22].copy_from_slice(&flags.to_be_bytes());
    f[24..26].fill(0);
    let c = clua_pipeline::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// Issue 10 (CA7, 000 §6.6.5): a fragment that arrives before its first is held by the worker
/// (its buffer parked, nothing sent) and sent to the first fragment's member once that
/// arrives; a lone one is freed when it times out; what is parked at stop is freed and
/// counted (`fragment_flushed`). No buffer leaks.
#[test]
fn held_fragments_are_released_timed_out_or_freed_at_stop() {
    let cfg = PipelineConfig {
        fragments: clua_pipeline::fragments::FragmentConfig {
            timeout_ms: 100,
            ..Default::default()
        },
        ..PipelineConfig::default()
    };
    let (rig, worker) = Rig::<Tracked>::new(0, cfg, 64);
    let mut w = worker.start();
    let live = Arc::new(AtomicUsize::new(0));
    let client = rig.port(CLIENT_PORT);
    let first = {
        let mut u = vec![0x9c, 0x41, 0, 53, 0, 32, 0, 0];
        u.extend_from_slice(&[7; 16]);
        u
    };
    // The tail of datagram 1 first: held.
    client
        .push_rx(0, Tracked::new(&fragment(1, 24, false, &[9; 8]), &live))
        .unwrap();
    assert_eq!(w.poll(), Poll::Received(1));
    assert_eq!((w.held(), rig.port(IC0).tx_len(0)), (1, 0));
    assert_eq!(CoreCounters::get(&rig.counters.frag_held), 1);
    // Its first: both go to the same member.
    client
        .push_rx(0, Tracked::new(&fragment(1, 0, true, &first), &live))
        .unwrap();
    assert_eq!(w.poll(), Poll::Received(1));
    assert_eq!(w.held(), 0);
    let out = rig.port(IC0).take_tx(0);
    assert_eq!(out.len(), 2, "the first fragment and the released tail");
    assert_eq!(dst_mac(out[0].data()), dst_mac(out[1].data()));
    assert_eq!(CoreCounters::get(&rig.counters.frag_released), 1);
    drop(out);
    // A lone tail times out (on an idle loop), another is parked at stop.
    client
        .push_rx(0, Tracked::new(&fragment(2, 24, false, &[9; 8]), &live))
        .unwrap();
    w.poll();
    assert_eq!(w.held(), 1);
    rig.now.store(1_000 + 100, Ordering::Relaxed);
    assert_eq!(w.poll(), Poll::Received(0));
    assert_eq!(w.held(), 0);
    assert_eq!(rig.drops(DropReason::FragmentTimeout), 1);
    client
        .push_rx(0, Tracked::new(&fragment(3, 24, false, &[9; 8]), &live))
        .unwrap();
    w.poll();
    assert_eq!(w.held(), 1);
    assert_eq!(w.free_held(), 1);
    assert_eq!(rig.drops(DropReason::FragmentFlushed), 1);
    assert_eq!(live.load(Ordering::Relaxed), 0, "every buffer freed");
    assert_eq!(rig.port(IC0).tx_len(0), 0);
}
