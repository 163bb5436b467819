//! Issue 12: "a snapshot swap (live reweight) and a metrics scrape under full load lose no
//! packet", as a functional test (no timing): the real worker loop over in-memory queues is
//! kept busy with full bursts of established flows while a reweighted snapshot is published
//! every few loops and the Prometheus text is rendered (aliasd's own path,
//! `clua_lb::metrics::Exporter`) in between; every frame in must come out or be counted as a
//! drop or a punt. The timed version is `clua-bench ring --swap-ms 10 --scrape-ms 100`
//! (scripts/bench).

#[path = "../pipeline/tests/common/mod.rs"]
mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clua_lb::metrics::{Exporter, MetricsSource};
use clua_lb::punt::PuntQueues;
use clua_lb::worker::{Poll, Worker, SNAPSHOT_POLL};
use clua_packet::{QueuePort, VecBuf, BURST};
use clua_pipeline::{CoreCounters, Pipeline, PipelineConfig};
use common::*;

const CLIENT_PORT: usize = 0;
/// Flows in the load: far more than a burst, so every burst mixes flows.
const FLOWS: u16 = 512;
/// Loops of the worker; a swap every SNAPSHOT_POLL / 2 loops, a scrape every 3 swaps.
const LOOPS: usize = 64 * SNAPSHOT_POLL as usize;

fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
fn reweights_and_scrapes_under_full_bursts_lose_no_frame() {
    let cfg = PipelineConfig::default();
    let snapshot = Arc::new(topology());
    let counters: Arc<CoreCounters> = Arc::new(cfg.new_counters());
    let ports: Vec<Arc<QueuePort<VecBuf>>> = (0..3).map(|_| Arc::new(QueuePort::new(1))).collect();
    let shared = Arc::new(ArcSwap::new(snapshot.clone()));
    let worker = Worker {
        queue: 0,
        ports: ports.clone(),
        pipeline: Pipeline::new(&cfg, snapshot, counters.clone()),
        punt: Arc::new(PuntQueues::new(1024)),
        inject: None,
        snapshot: shared.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        idle: clua_lb::idle::IdlePolicy::Poll,
        clock: Box::new(|| 1_000u64) as Box<dyn Fn() -> u64 + Send>,
        sync: Default::default(),
        capture: None,
        relay: None,
    };
    let mut w = worker.start();
    let source = MetricsSource {
        cores: vec![counters.clone()],
        control: Default::default(),
        snapshot: shared.clone(),
        ports: Box::new(Vec::new),
        adverts: None,
    };
    let mut exporter = Exporter::new();

    // Open the flows (SYN) so that the load is established traffic, as in the bench.
    let mut generated = 0u64;
    let mut out = 0u64;
    for sport in 0..FLOWS {
        ports[CLIENT_PORT]
            .push_rx(
                0,
                VecBuf::new(&tcp_frame(CLIENT, 40000 + sport, WEB, 80, SYN)),
            )
            .unwrap();
        generated += 1;
        if (sport + 1) % BURST as u16 == 0 {
            w.poll();
        }
    }
    let (mut generation, mut swaps, mut scrapes, mut next) = (1u64, 0u64, 0u64, 0u16);
    let mut seen_generations = std::collections::BTreeSet::new();
    for i in 0..LOOPS {
        // A full burst of ACKs of open flows, every loop: the worker never idles.
        for _ in 0..BURST {
            let f = tcp_frame(CLIENT, 40000 + next, WEB, 80, ACK);
            next = (next + 1) % FLOWS;
            ports[CLIENT_PORT].push_rx(0, VecBuf::new(&f)).unwrap();
            generated += 1;
        }
        assert_eq!(w.poll(), Poll::Received(BURST), "loop {i}");
        seen_generations.insert(w.worker().pipeline.snapshot().generation);
        if i % (SNAPSHOT_POLL as usize / 2) == 0 {
            // Reweight alias web: selw 3/2/1 and 1/2/3 in turn (seed 000 §6.8 selw).
            generation += 1;
            let web = if generation % 2 == 0 {
                vec![am(0, 1), am(1, 2), am(2, 3)]
            } else {
                vec![am(0, 3), am(1, 2), am(2, 1)]
            };
            shared.store(Arc::new(topology_with(generation, [true; 4], web)));
            swaps += 1;
            if swaps % 3 == 0 {
                let text = exporter.render(&source);
                assert_eq!(
                    counter(&text, "clua_rx_packets_total"),
                    CoreCounters::get(&counters.rx),
                    "the scrape reports the worker's rx count"
                );
                scrapes += 1;
            }
        }
        for p in &ports {
            out += p.take_tx(0).len() as u64;
        }
    }
    let drops: u64 = counters.drops.iter().map(CoreCounters::get).sum();
    let punts: u64 = counters.punts.iter().map(CoreCounters::get).sum();
    assert!(
        swaps >= 100 && scrapes >= 30,
        "{swaps} swaps, {scrapes} scrapes"
    );
    assert!(
        seen_generations.len() as u64 > swaps / 2,
        "the worker took up the swaps: {} generations seen of {swaps}",
        seen_generations.len()
    );
    assert_eq!(CoreCounters::get(&counters.rx), generated);
    assert_eq!(drops, 0, "no frame dropped");
    assert_eq!(punts, 0, "no frame punted");
    assert_eq!(out, generated, "every frame in came out");
}
