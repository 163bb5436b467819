//! `clua-bench idle`: what an idle worker costs and how late it is (issue 12, lb/src/idle.rs).
//!
//! The real `clua_lb::worker::Worker` runs on lcore 1 between two net_ring ports (as in
//! `clua-bench ring`), once per idle policy: poll flat out, a fixed sleep (the lab's
//! `idle_sleep_us = 20`) and adaptive with each bound of `--bounds`. For each:
//!
//! - CPU: the worker thread's on-CPU time (`/proc/self/task/TID/schedstat`) over `--secs`
//!   seconds with no traffic, as a percentage of one core, and its voluntary context switches
//!   (wake-ups) per second;
//! - latency of the first packet after `--gap-us` microseconds of silence: one frame put on
//!   the client port's RX ring, timed (TSC) until the worker has put it on a TX ring, over
//!   `--samples` samples (median, p99, max); the same for a frame the control thread injects
//!   (worker 0's `inject` queue, ARP replies and the like), timed until it is on ic0's TX ring.
//!
//! "Added latency" is a policy's figure minus poll's, from the same run. Prints first how late
//! `std::thread::sleep` wakes with the default and a 1 us timer slack, then one `RESULT` line
//! per policy, then a table.
//!
//! `clua-bench idle [--secs 3] [--samples 300] [--gap-us 5000] [--sleep-us 20]
//! [--bounds 50,100,200] [--memory-mb 256]`

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clua_dpdk::{Burst, Mbuf, Mempool, Port, PortConf, Ring};
use clua_lb::clock::TscClock;
use clua_lb::config::Config;
use clua_lb::idle::IdlePolicy;
use clua_lb::punt::PuntQueues;
use clua_lb::worker::{Transmit, Worker};
use clua_pipeline::{CoreCounters, Pipeline};
use crossbeam_queue::ArrayQueue;

use crate::{config_toml, die, ring_eal, traffic, Args};

/// Flows of the timed frames (each timed frame is the next one, wrapping).
const FLOWS: u32 = 64;

/// A sample whose frame has not come out after this long is counted as lost.
const LOST_AFTER: Duration = Duration::from_secs(1);

/// Median, p99 and max of a set of latencies in microseconds (sorted in place).
fn quantiles(v: &mut [f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

/// The on-CPU nanoseconds of a thread of this process (first field of its schedstat).
fn cpu_ns(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| die(&format!("cannot read /proc/self/task/{tid}/schedstat")))
}

/// A thread's voluntary context switches (each sleep is one).
fn wakeups(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The calling thread's id, from the `/proc/thread-self` link (`PID/task/TID`).
fn gettid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

fn label(p: IdlePolicy) -> String {
    match p {
        IdlePolicy::Poll => "poll".into(),
        IdlePolicy::Sleep { us } => format!("sleep {us} us"),
        IdlePolicy::Adaptive { max_sleep_us } => format!("adaptive <= {max_sleep_us} us"),
    }
}

/// How late `std::thread::sleep` wakes on this thread, with the thread's timer slack as it
/// is and lowered to 1 us (what an adaptive worker does): median and p99 of the time slept,
/// per requested sleep. Restores the slack.
fn sleep_overshoot(samples: usize) {
    let before = clua_dpdk::timer_slack_ns().unwrap_or(50_000);
    println!(
        "\n| requested sleep (us) | slept p50 / p99, slack {} us | slept p50 / p99, slack 1 us |",
        before / 1000
    );
    println!("|---:|---|---|");
    for us in [1u64, 10, 20, 50, 100, 200] {
        let mut row = Vec::new();
        for slack in [before, 1_000] {
            let _ = clua_dpdk::set_timer_slack_ns(slack);
            let mut v: Vec<f64> = (0..samples)
                .map(|_| {
                    let t0 = Instant::now();
                    std::thread::sleep(Duration::from_micros(us));
                    t0.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            let (p50, p99, _) = quantiles(&mut v);
            row.push(format!("{p50:.1} / {p99:.1}"));
        }
        println!("| {us} | {} | {} |", row[0], row[1]);
    }
    let _ = clua_dpdk::set_timer_slack_ns(before);
}

/// One policy's figures.
struct Figures {
    policy: IdlePolicy,
    cpu_pct: f64,
    wakeups_per_s: f64,
    rx: (f64, f64, f64),
    inject: (f64, f64, f64),
    lost: usize,
}

pub fn run(a: &Args) {
    let secs = a.num("--secs", 3);
    let samples = a.num("--samples", 300) as usize;
    let gap = Duration::from_micros(a.num("--gap-us", 5000).into());
    let sleep_us = a.num("--sleep-us", 20);
    let memory_mb = a.num("--memory-mb", 256);
    let bounds: Vec<u32> = a
        .get("--bounds")
        .unwrap_or("50,100,200")
        .split(',')
        .map(|b| {
            b.trim()
                .parse()
                .unwrap_or_else(|_| die(&format!("--bounds: bad number {b}")))
        })
        .collect();
    let mut policies = vec![IdlePolicy::Poll, IdlePolicy::Sleep { us: sleep_us }];
    policies.extend(
        bounds
            .iter()
            .map(|&max_sleep_us| IdlePolicy::Adaptive { max_sleep_us }),
    );

    let prefix = format!("clua-bench-idle-{}", std::process::id());
    let eal = ring_eal(&prefix, memory_mb);
    let config = Config::parse(
        &config_toml(
            "net_ring_client",
            "net_ring_ic0",
            FLOWS,
            8191,
            memory_mb,
            None,
            false,
        ),
        "clua-bench idle config",
    )
    .unwrap_or_else(|e| die(&e.to_string()));
    let pool = Mempool::new("idle_mbufs", 8191, 256, Mempool::DEFAULT_DATA_ROOM, -1)
        .unwrap_or_else(|e| die(&format!("mempool: {e}")));
    let flags = Ring::SP_ENQ | Ring::SC_DEQ;
    let mk = |n: &str| Ring::new(n, 1024, flags).unwrap_or_else(|e| die(&format!("ring {n}: {e}")));
    let (c_rx, c_tx, i_rx, i_tx) = (mk("i_c_rx"), mk("i_c_tx"), mk("i_i_rx"), mk("i_i_tx"));
    let client = Port::from_rings("client", &[&c_rx], &[&c_tx], -1)
        .unwrap_or_else(|e| die(&format!("client port: {e}")));
    let ic = Port::from_rings("ic0", &[&i_rx], &[&i_tx], -1)
        .unwrap_or_else(|e| die(&format!("ic0 port: {e}")));
    let mut macs = Vec::new();
    for (p, spec) in [&client, &ic].into_iter().zip(&config.cluster.ports) {
        p.configure(&PortConf::default(), &pool)
            .unwrap_or_else(|e| die(&format!("configure: {e}")));
        let _ = p.set_promiscuous(true);
        p.start().unwrap_or_else(|e| die(&format!("start: {e}")));
        macs.push(spec.mac.unwrap_or_else(|| p.mac()));
    }
    let snapshot = Arc::new(
        config
            .cluster
            .snapshot(1, &macs)
            .unwrap_or_else(|e| die(&format!("snapshot: {e}"))),
    );
    let t = traffic(FLOWS, 1);
    let frames: Vec<&[u8]> = t
        .index
        .iter()
        .map(|&(off, len)| &t.bytes[off as usize..off as usize + usize::from(len)])
        .collect();
    sleep_overshoot(1000);
    // The timing thread's own sleeps (the gaps) end close to when asked, too.
    let _ = clua_dpdk::set_timer_slack_ns(1_000);
    let hz = eal.tsc_hz() as f64;
    let us_since = |t0: u64| (clua_dpdk::tsc() - t0) as f64 * 1e6 / hz;

    let mut sink = Burst::new();
    let drain = |sink: &mut Burst| {
        for r in [&i_tx, &c_tx] {
            while r.dequeue_burst(sink) > 0 {
                sink.clear();
            }
        }
    };
    let mut figures = Vec::new();
    for &policy in &policies {
        let counters = Arc::new(CoreCounters::new(config.pipeline.max_members));
        let stop = Arc::new(AtomicBool::new(false));
        let inject = Arc::new(ArrayQueue::new(64));
        let punt = Arc::new(PuntQueues::default());
        let worker = Worker {
            queue: 0,
            ports: vec![
                Port::from_id(client.id()).unwrap_or_else(|e| die(&e.to_string())),
                Port::from_id(ic.id()).unwrap_or_else(|e| die(&e.to_string())),
            ],
            pipeline: Pipeline::new(&config.pipeline, snapshot.clone(), counters.clone()),
            punt: punt.clone(),
            inject: Some(inject.clone()),
            snapshot: Arc::new(ArcSwap::new(snapshot.clone())),
            stop: stop.clone(),
            idle: policy,
            clock: TscClock::new(eal.tsc_hz()),
            sync: Default::default(),
            capture: None,
            relay: None,
        };
        let tid = Arc::new(AtomicU32::new(0));
        let tid_w = tid.clone();
        let launched = clua_dpdk::launch(1, move || {
            tid_w.store(gettid(), Ordering::Relaxed);
            worker.run()
        })
        .unwrap_or_else(|e| die(&format!("launch: {e}")));
        while tid.load(Ordering::Relaxed) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let tid = tid.load(Ordering::Relaxed);

        // Idle CPU: no traffic at all, after the backoff has settled.
        std::thread::sleep(Duration::from_millis(200));
        let (c0, w0, t0) = (cpu_ns(tid), wakeups(tid), Instant::now());
        std::thread::sleep(Duration::from_secs(secs.into()));
        let (c1, w1, wall) = (cpu_ns(tid), wakeups(tid), t0.elapsed().as_secs_f64());
        let cpu_pct = 100.0 * (c1 - c0) as f64 / 1e9 / wall;
        let wakeups_per_s = (w1 - w0) as f64 / wall;

        // First packet after a gap: through the pipeline, then injected by the control thread.
        let mut rx_lat = Vec::with_capacity(samples);
        let mut inj_lat = Vec::with_capacity(samples);
        let mut lost = 0;
        let mut one = Burst::new();
        for i in 0..samples {
            let frame = frames[i % frames.len()];
            std::thread::sleep(gap);
            drain(&mut sink);
            let m = Mbuf::from_bytes(&pool, frame).unwrap_or_else(|| die("mempool empty"));
            let _ = one.push(m);
            let t0 = clua_dpdk::tsc();
            c_rx.enqueue_burst(&mut one);
            one.clear();
            let deadline = Instant::now() + LOST_AFTER;
            loop {
                if i_tx.count() + c_tx.count() > 0 {
                    rx_lat.push(us_since(t0));
                    break;
                }
                if Instant::now() > deadline {
                    lost += 1;
                    break;
                }
            }

            std::thread::sleep(gap);
            drain(&mut sink);
            let m = Mbuf::from_bytes(&pool, frame).unwrap_or_else(|| die("mempool empty"));
            let t0 = clua_dpdk::tsc();
            if inject.push(Transmit { port: 1, buf: m }).is_err() {
                die("inject queue full");
            }
            let deadline = Instant::now() + LOST_AFTER;
            loop {
                if i_tx.count() > 0 {
                    inj_lat.push(us_since(t0));
                    break;
                }
                if Instant::now() > deadline {
                    lost += 1;
                    break;
                }
            }
        }
        drain(&mut sink);
        stop.store(true, Ordering::Relaxed);
        let stopped = Instant::now();
        launched.wait();
        let stop_ms = stopped.elapsed().as_secs_f64() * 1e3;
        let rx = quantiles(&mut rx_lat);
        let inj = quantiles(&mut inj_lat);
        let get = |c: &std::sync::atomic::AtomicU64| CoreCounters::get(c);
        println!(
            "RESULT bench=idle policy=\"{}\" secs={secs} cpu_pct={cpu_pct:.2} wakeups_per_s={wakeups_per_s:.0} \
             gap_us={} samples={samples} rx_p50_us={:.2} rx_p99_us={:.2} rx_max_us={:.2} \
             inject_p50_us={:.2} inject_p99_us={:.2} inject_max_us={:.2} lost={lost} forwarded={} stop_ms={stop_ms:.2}",
            label(policy),
            gap.as_micros(),
            rx.0,
            rx.1,
            rx.2,
            inj.0,
            inj.1,
            inj.2,
            get(&counters.forwarded),
        );
        figures.push(Figures {
            policy,
            cpu_pct,
            wakeups_per_s,
            rx,
            inject: inj,
            lost,
        });
    }

    let base = figures.first().map(|f| (f.rx.0, f.inject.0));
    println!(
        "\n| policy | idle CPU % | wake-ups/s | CPU us per wake-up | first packet p50 / p99 / max (us) | added p50 (us) | injected p50 / p99 / max (us) | lost |"
    );
    println!("|---|---:|---:|---:|---|---:|---|---:|");
    for f in &figures {
        let added = base.map_or(f64::NAN, |(b, _)| f.rx.0 - b);
        println!(
            "| {} | {:.1} | {:.0} | {} | {:.1} / {:.1} / {:.1} | {:+.1} | {:.1} / {:.1} / {:.1} | {} |",
            label(f.policy),
            f.cpu_pct,
            f.wakeups_per_s,
            if f.wakeups_per_s > 0.0 {
                format!("{:.1}", f.cpu_pct / 100.0 * 1e6 / f.wakeups_per_s)
            } else {
                "-".into()
            },
            f.rx.0,
            f.rx.1,
            f.rx.2,
            added,
            f.inject.0,
            f.inject.1,
            f.inject.2,
            f.lost
        );
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("\nload: {}", load.trim());
    }

    for p in [client, ic] {
        let _ = p.stop();
        let _ = p.close();
    }
    drop(sink);
    drop((c_rx, c_tx, i_rx, i_tx));
    drop(pool);
    drop(eal);
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/{prefix}"));
}
