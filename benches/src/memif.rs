//! `clua-bench memif-gen`: the traffic generator of scripts/bench's memif set-up.
//!
//! A DPDK process with one `net_memif` port in the server role. The engine under test
//! (dpdk-testpmd or aliasd) is the memif client with `zero-copy=yes`: its RX descriptors point
//! into its own mbufs, so the engine receives without copying the frame (as from a NIC's DMA).
//! The copy into those buffers happens here, on the generator's CPU, inside the memif PMD's TX.
//!
//! The generator holds every frame of the traffic (the same flows and order as the pcap of
//! `clua-bench pcap`) in its own mbufs, built once, and transmits them over and over as fast as
//! the memif ring takes them: per packet it only adds a reference to a prepared mbuf
//! ([`clua_dpdk::SharedMbuf`]); no allocation, no copy of its own.
//!
//! Output (stdout, line-buffered): `connected`, then every 100 ms
//! `STAT <unix time> <frames sent> <tx calls> <tx calls that found the ring full>` so the
//! script can take the generator's rate over exactly the engine's window, and at the end a
//! `RESULT` line. It stops when the client disconnects (the engine exited) or after `--secs`.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clua_dpdk::{Eal, Mbuf, Mempool, Port, PortConf, SharedMbuf};

use crate::{die, traffic};

/// What `memif-gen` needs to know.
pub struct GenArgs<'a> {
    /// Flows in the traffic (a power of two).
    pub flows: u32,
    /// Packets per flow.
    pub ppf: u32,
    /// The memif control socket (a file path; the engine connects to the same one).
    pub socket: &'a str,
    /// Longest run, seconds (the generator also stops when the engine disconnects).
    pub secs: u32,
    /// How long to wait for the engine to connect, seconds.
    pub connect_secs: u32,
    /// EAL memory, MiB (`--no-huge -m`).
    pub memory_mb: u32,
    /// The lcore (CPU) the generator runs on.
    pub lcore: u32,
}

/// 128 bytes of headroom plus 128 of frame: the largest benchmark frame is 124 bytes.
const DATA_ROOM: u16 = 256;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs the generator (see the module documentation).
pub fn run(g: &GenArgs) {
    let t = traffic(g.flows, g.ppf);
    let frames_n = t.index.len() as u32;
    let prefix = format!("clua-memif-gen-{}", std::process::id());
    // No --no-shconf: net_memif registers a multi-process action at probe and fails without
    // EAL's shared configuration; the file prefix keeps this process apart from the engine.
    let eal_args: Vec<String> = [
        "-l".to_string(),
        g.lcore.to_string(),
        "--main-lcore".into(),
        g.lcore.to_string(),
        "--no-pci".into(),
        "--no-huge".into(),
        "-m".into(),
        g.memory_mb.to_string(),
        "--no-telemetry".into(),
        "--file-prefix".into(),
        prefix.clone(),
        "--log-level".into(),
        "*:warning".into(),
        "--vdev".into(),
        format!(
            "net_memif0,role=server,socket={},socket-abstract=no",
            g.socket
        ),
    ]
    .to_vec();
    let eal = Eal::init(&eal_args).unwrap_or_else(|e| die(&format!("EAL init: {e}")));
    let pool = Mempool::new("gen_frames", frames_n + 4096, 256, DATA_ROOM, -1)
        .unwrap_or_else(|e| die(&format!("mempool of {frames_n} frames: {e}")));
    let port = Port::by_name("net_memif0").unwrap_or_else(|e| die(&format!("memif port: {e}")));
    port.configure(&PortConf::default(), &pool)
        .unwrap_or_else(|e| die(&format!("configure: {e}")));
    port.start().unwrap_or_else(|e| die(&format!("start: {e}")));
    // The socket exists from EAL's probe on, but a client that connects before the port is
    // configured and started gets no usable connection and does not retry (DPDK 22.11's
    // memif client): at 1M flows the pool above takes long enough for that to happen. The
    // engine is started on this line, not on the socket (scripts/bench).
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening");
        let _ = out.flush();
    }
    let frames: Vec<SharedMbuf> = t
        .index
        .iter()
        .map(|&(off, len)| {
            let bytes = &t.bytes[off as usize..off as usize + usize::from(len)];
            SharedMbuf::from(
                Mbuf::from_bytes(&pool, bytes).unwrap_or_else(|| die("generator pool exhausted")),
            )
        })
        .collect();
    drop(t);
    let out = std::io::stdout();
    let mut out = out.lock();
    let started = Instant::now();
    while !port.link_up() {
        if started.elapsed() > Duration::from_secs(g.connect_secs.into()) {
            die("no memif client connected");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = writeln!(out, "connected");
    let _ = out.flush();
    let deadline = Instant::now() + Duration::from_secs(g.secs.into());
    let total = frames.len();
    let (mut next, mut sent, mut calls, mut full) = (0usize, 0u64, 0u64, 0u64);
    let mut next_stat = Instant::now();
    let first = Instant::now();
    loop {
        let end = (next + clua_pipeline::BURST).min(total);
        let want = end - next;
        let n = port.tx_burst_shared(0, &frames[next..end]);
        next += n;
        if next == total {
            next = 0;
        }
        sent += n as u64;
        calls += 1;
        if n < want {
            full += 1;
        }
        // The clock and the link once per 256 calls: a few ns per burst at most.
        if calls % 256 == 0 {
            let now = Instant::now();
            if now >= next_stat {
                next_stat = now + Duration::from_millis(100);
                let _ = writeln!(out, "STAT {:.6} {sent} {calls} {full}", unix_now());
                let _ = out.flush();
                if !port.link_up() || now >= deadline {
                    break;
                }
            }
        }
    }
    let secs = first.elapsed().as_secs_f64();
    let _ = writeln!(
        out,
        "RESULT engine=memif-gen flows={} frames={total} secs={secs:.3} sent={sent} mpps={:.3} \
         tx_calls={calls} ring_full_calls={full} ring_full={:.1}%",
        g.flows,
        sent as f64 / secs / 1e6,
        100.0 * full as f64 / calls.max(1) as f64
    );
    let _ = out.flush();
    let _ = port.stop();
    let _ = port.close();
    // The driver may still hold references of frames it has not copied yet; they are gone
    // with the port. Then the frames, the pool, EAL.
    drop(frames);
    drop(pool);
    drop(eal);
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let _ = std::fs::remove_file(g.socket);
}
