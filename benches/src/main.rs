//! `clua-bench`: helpers for `scripts/bench` (see docs/performance.md).
//!
//! - `clua-bench routers [--routers 3] [--aliases 10000] [--secs 10]`: the router protocol's
//!   control-thread cost (benches/src/routers.rs).
//! - `clua-bench handoff [--records 1000000] [--batch 32] [--members 64] [--mtu 1500]`: the
//!   flow hand-off's control-thread cost at 1 M new flows/s (benches/src/handoff.rs).
//! - `clua-bench policies [--flows 1048576] [--secs 3]`: the load-balancing policies' cost in
//!   the pipeline, established Mpps and new-flow rate per core (benches/src/policies.rs).
//! - `clua-bench pcap --flows N [--ppf K] --out FILE`: the benchmark traffic as a pcap.
//! - `clua-bench config --flows N --client DEVARGS --ic DEVARGS [--metrics ADDR]
//!   [--mbufs M] [--memory-mb MB] [--memif 1]`: the aliasd configuration (TOML on stdout);
//!   `--memif 1` for a zero-copy memif client port (EAL's shared config, one file per segment).
//! - `clua-bench ring --flows N [--ppf K] [--warmup S] [--secs S] [--memory-mb MB]`: the real
//!   `clua_lb::worker::Worker` on lcore 1 between two net_ring ports, fed by a generator on
//!   the main lcore 0 from the same traffic (in memory), with every flow established in the
//!   connection table before the measured window. Prints a `RESULT` line.
//! - `clua-bench memif-gen --socket PATH [--flows N] [--ppf K] [--secs S] [--memory-mb MB]
//!   [--lcore C]`: the same traffic over a net_memif server port to an engine that is the
//!   zero-copy memif client (benches/src/memif.rs).
//!
//! Traffic: flow `i` is client 10.a.b.c (unique per flow) to the alias 198.51.100.100; 7 flows
//! in 8 are TCP to port 80 (in_multi), 1 in 8 UDP to port 53 (in_multi). No SYNs: a non-SYN
//! miss is selected and inserted (lb/pipeline/src/select.rs), so the first pass over the flows
//! fills the table and every later packet is a connection-table hit (TCP) or a selection (UDP
//! in_multi datagrams are per-packet selections by design). Frames are 60..=124 bytes (64..=128
//! on the wire with the FCS): ~40% pure 60-byte ACKs, the rest PSH|ACK / UDP with a payload.
//! Packet order: `ppf` passes, each over all flows in a scattered order (an odd-multiplier
//! permutation), so consecutive packets belong to distant flows, as on a loaded link.

mod advert;
mod handoff;
mod idle;
mod memif;
mod policies;
mod routers;
mod workers;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use clua_dpdk::{Burst, Eal, Mbuf, Mempool, Port, PortConf, Ring};
use clua_lb::clock::TscClock;
use clua_lb::config::Config;
use clua_lb::punt::PuntQueues;
use clua_lb::worker::Worker;
use clua_pipeline::{CoreCounters, Pipeline};

const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const ALIAS: [u8; 4] = [198, 51, 100, 100];

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Client address and source port of flow `i` (unique per flow up to 2^24 flows).
fn flow_src(i: u32) -> ([u8; 4], u16) {
    let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    let sport = 1024 + (mix(u64::from(i)) % 60000) as u16;
    (ip, sport)
}

/// Appends packet `k` of flow `i` to `out`.
fn frame(i: u32, k: u32, out: &mut Vec<u8>) {
    let h = mix(u64::from(i) << 32 | u64::from(k));
    let udp = i % 8 == 7;
    let pure_ack = !udp && h % 10 < 4;
    let len: usize = if pure_ack {
        60
    } else {
        60 + (h >> 8) as usize % 65
    };
    let (src, sport) = flow_src(i);
    let start = out.len();
    out.extend_from_slice(&ROUTER_MAC);
    out.extend_from_slice(&PEER_MAC);
    out.extend_from_slice(&[0x08, 0x00]);
    let (proto, l4_len) = if udp {
        (17u8, len - 34)
    } else if pure_ack {
        (6, 20)
    } else {
        (6, len - 34)
    };
    let ip_len = 20 + l4_len;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&(k as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&ALIAS);
    let c = csum_fold(csum_add(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&ip);
    let l4_start = out.len();
    if udp {
        out.extend_from_slice(&sport.to_be_bytes());
        out.extend_from_slice(&53u16.to_be_bytes());
        out.extend_from_slice(&(l4_len as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
    } else {
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&(1000 + k * 1448).to_be_bytes());
        tcp[8..12].copy_from_slice(&(h as u32).to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = if pure_ack { 0x10 } else { 0x18 };
        tcp[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        out.extend_from_slice(&tcp);
    }
    let payload = l4_len - if udp { 8 } else { 20 };
    out.extend((0..payload).map(|b| (b as u8) ^ (h as u8)));
    // L4 checksum over the pseudo-header.
    let mut sum = csum_add(0, &src);
    sum = csum_add(sum, &ALIAS);
    sum += u32::from(proto) + l4_len as u32;
    let c = csum_fold(csum_add(sum, &out[l4_start..]));
    let off = l4_start + if udp { 6 } else { 16 };
    out[off..off + 2].copy_from_slice(&c.to_be_bytes());
    out.resize(start + len, 0); // Ethernet padding for the 54-byte ACK
}

/// All frames in replay order: `(offset, len)` into one byte vector.
struct Traffic {
    bytes: Vec<u8>,
    index: Vec<(u32, u16)>,
}

fn traffic(flows: u32, ppf: u32) -> Traffic {
    assert!(flows.is_power_of_two(), "--flows must be a power of two");
    let mask = flows - 1;
    let mut bytes = Vec::with_capacity(flows as usize * ppf as usize * 96);
    let mut index = Vec::with_capacity(flows as usize * ppf as usize);
    for k in 0..ppf {
        for j in 0..flows {
            let i = j
                .wrapping_mul(0x9e37_79b1)
                .wrapping_add(k.wrapping_mul(0x51))
                & mask;
            let off = bytes.len();
            frame(i, k, &mut bytes);
            index.push((off as u32, (bytes.len() - off) as u16));
        }
    }
    Traffic { bytes, index }
}

fn write_pcap(path: &str, t: &Traffic) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
    w.write_all(&2u16.to_le_bytes())?;
    w.write_all(&4u16.to_le_bytes())?;
    w.write_all(&[0; 8])?;
    w.write_all(&65535u32.to_le_bytes())?;
    w.write_all(&1u32.to_le_bytes())?;
    for (n, &(off, len)) in t.index.iter().enumerate() {
        let len = u32::from(len);
        for v in [1u32 + n as u32 / 1_000_000, n as u32 % 1_000_000, len, len] {
            w.write_all(&v.to_le_bytes())?;
        }
        w.write_all(&t.bytes[off as usize..off as usize + len as usize])?;
    }
    w.flush()
}

/// The aliasd configuration of the benchmark: a client port, an interconnect port, three l2
/// members behind it, alias `web` with all three (tcp/80 and udp/53 in_multi).
fn config_toml(
    client: &str,
    ic: &str,
    flows: u32,
    mbufs: u32,
    memory_mb: u32,
    metrics: Option<&str>,
    memif: bool,
) -> String {
    let connections = (u64::from(flows) * 4).next_power_of_two().max(65536);
    let mut s = format!(
        r#"# aliasd configuration generated by `clua-bench config` for scripts/bench.
[cluster]
name = "bench"
default_alias = "cluster"

[dpdk]
main_lcore = 0
worker_lcores = [1]
memory_mb = {memory_mb}
mbufs = {mbufs}
idle_sleep_us = 0
{memif_keys}
[tables]
connections = {connections}

# No flows file: one bench run's flows never reach the next.
[sync]
flows_file = ""

[[port]]
name = "client"
devargs = "{client}"
role = "client"
address = "198.51.100.2/24"
mac = "02:00:00:00:00:01"

[[port]]
name = "ic0"
devargs = "{ic}"
role = "interconnect"
address = "192.0.2.2/24"
mac = "02:00:00:00:00:02"

[[member]]
name = "m1"
port = "ic0"
address = "192.0.2.11"
mac = "02:00:00:00:01:01"
encap = "l2"

[[member]]
name = "m2"
port = "ic0"
address = "192.0.2.12"
mac = "02:00:00:00:01:02"
encap = "l2"

[[member]]
name = "m3"
port = "ic0"
address = "192.0.2.13"
mac = "02:00:00:00:01:03"
encap = "l2"

[[alias]]
name = "cluster"
address = "198.51.100.99"

[[alias]]
name = "web"
address = "{alias}"
members = [{{ name = "m1", selw = 3 }}, {{ name = "m2", selw = 2 }}, {{ name = "m3" }}]

[[service]]
name = "http"
port = 80
proto = "tcp"
options = ["in_multi"]

[[service]]
name = "domain"
port = 53
proto = "udp"
options = ["in_multi"]
"#,
        alias = Ipv4Addr::from(ALIAS),
        // A zero-copy memif client exposes its memory to the generator: one file per memory
        // segment list (--single-file-segments), and net_memif needs EAL's multi-process
        // socket (benches/src/memif.rs).
        memif_keys = if memif {
            "shared_config = true\nextra_args = [\"--single-file-segments\"]\n"
        } else {
            ""
        },
    );
    if let Some(m) = metrics {
        s += &format!("\n[metrics]\nlisten = \"{m}\"\n");
    }
    // A socket of its own, so a bench never collides with another aliasd on the machine.
    s += &format!(
        "\n[control]\nsocket = \"/tmp/clua-bench-{}-{flows}.sock\"\n",
        std::process::id()
    );
    s
}

struct Args(Vec<String>);

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        let i = self.0.iter().position(|a| a == name)?;
        Some(
            self.0
                .get(i + 1)
                .unwrap_or_else(|| die(&format!("{name} needs a value"))),
        )
    }
    fn num(&self, name: &str, default: u32) -> u32 {
        self.get(name)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| die(&format!("{name}: bad number {v}")))
            })
            .unwrap_or(default)
    }
    fn req(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| die(&format!("{name} is required")))
    }
}

/// EAL for the in-process net_ring harnesses (`ring`, `idle`): lcores 0 (main, the generator)
/// and 1 (the worker), no PCI, `memory_mb` of ordinary memory, no shared config or telemetry,
/// the file prefix `prefix`.
fn ring_eal(prefix: &str, memory_mb: impl std::fmt::Display) -> Eal {
    let eal_args: Vec<String> = [
        "-l",
        "0,1",
        "--main-lcore",
        "0",
        "--no-pci",
        "--no-huge",
        "-m",
        &memory_mb.to_string(),
        "--no-shconf",
        "--no-telemetry",
        "--file-prefix",
        prefix,
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Eal::init(&eal_args).unwrap_or_else(|e| die(&format!("EAL init: {e}")))
}

fn die(msg: &str) -> ! {
    eprintln!("clua-bench: {msg}");
    std::process::exit(2)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        die("usage: clua-bench pcap|config|ring|memif-gen|advert|routers|handoff|policies ... (see benches/src/main.rs)")
    };
    let a = Args(argv[1..].to_vec());
    match cmd.as_str() {
        "pcap" => {
            let t = traffic(a.num("--flows", 65536), a.num("--ppf", 2));
            write_pcap(a.req("--out"), &t).unwrap_or_else(|e| die(&e.to_string()));
            eprintln!(
                "clua-bench: wrote {} frames ({} bytes of frames) to {}",
                t.index.len(),
                t.bytes.len(),
                a.req("--out")
            );
        }
        "config" => print!(
            "{}",
            config_toml(
                a.req("--client"),
                a.req("--ic"),
                a.num("--flows", 65536),
                a.num("--mbufs", 32767),
                a.num("--memory-mb", 1024),
                a.get("--metrics"),
                a.num("--memif", 0) != 0,
            )
        ),
        "ring" => ring(&a),
        "idle" => idle::run(&a),
        "advert" => advert::run(
            a.num("--members", 64),
            a.num("--aliases", 8),
            a.num("--n", 200_000),
        ),
        "routers" => routers::run(
            a.num("--routers", 3),
            a.num("--aliases", 10_000),
            a.num("--secs", 10),
        ),
        "handoff" => handoff::run(
            a.num("--records", 1_000_000),
            a.num("--batch", 32),
            a.num("--members", 64),
            a.num("--mtu", 1500),
        ),
        "memif-gen" => memif::run(&memif::GenArgs {
            flows: a.num("--flows", 65536),
            ppf: a.num("--ppf", 2),
            socket: a.req("--socket"),
            secs: a.num("--secs", 60),
            connect_secs: a.num("--connect-secs", 60),
            memory_mb: a.num("--memory-mb", 1024),
            lcore: a.num("--lcore", 0),
        }),
        "policies" => policies::run(a.num("--flows", 1 << 20), f64::from(a.num("--secs", 3))),
        "workers" => workers::run(
            a.num("--flows", 1 << 16),
            f64::from(a.num("--secs", 3)),
            a.num("--max", 2),
            a.num("--rounds", 1),
        ),
        other => die(&format!("unknown command {other}")),
    }
}

/// The control frames of `ring --control 1`: two peer routers' signed announcements (8
/// aliases, one port) to ic0's broadcast, a BFD control packet and a RIP response from the
/// upstream 198.51.100.1 on the client port. Valid frames, so the worker punts them as it
/// would in a cluster of 3 routers.
fn control_frames(macs: &[[u8; 6]]) -> Vec<(&'static str, Vec<u8>)> {
    use clua_ctl::frame::UdpFrame;
    use clua_ctl::routers::tracker::{RouterSettings, RouterTracker};
    use clua_ctl::routers::wire::{Health, RouterAlias, RouterKind, RouterPort};
    let mut out = Vec::new();
    for k in 2..=3u8 {
        let mut t = RouterTracker::new(RouterSettings {
            node: format!("r{k}"),
            key: b"bench router key 0123456789".to_vec(),
            udp_port: 9472,
            interval_ms: 100,
            dead_misses: 3,
            boot_id: 1,
            garp_count: 3,
            garp_interval_ms: 100,
            interconnect: "ic0".into(),
        });
        let aliases = (0..8)
            .map(|i| RouterAlias {
                addr: Ipv4Addr::new(198, 51, 100, 100 + i),
                rpri: 1,
                joined: false,
                master: false,
            })
            .collect();
        let ports = vec![RouterPort {
            name: "client".into(),
            addr: Ipv4Addr::new(198, 51, 100, k + 1),
            prefix_len: 24,
            up: true,
        }];
        let msg = t
            .message(RouterKind::Announce, Health::Healthy, aliases, ports)
            .unwrap_or_else(|e| die(&format!("router message: {e:?}")));
        let f = UdpFrame {
            src_mac: [2, 0, 0, 0, k, 2],
            dst_mac: [0xff; 6],
            src: Ipv4Addr::new(192, 0, 2, k + 1),
            dst: Ipv4Addr::new(192, 0, 2, 255), // ic0 is 192.0.2.2/24 in config_toml
            ttl: 1,
            src_port: 9472,
            dst_port: 9472,
            dscp_ecn: 0,
            dont_frag: false,
            vlan_tci: None,
        };
        out.push(("ic0", f.build(&msg).unwrap_or_default()));
    }
    let upstream = |dst: Ipv4Addr, dst_mac, ttl, sport, dport, payload: &[u8]| {
        UdpFrame {
            src_mac: [2, 0, 0, 0, 0, 0x20],
            dst_mac,
            src: Ipv4Addr::new(198, 51, 100, 1),
            dst,
            ttl,
            src_port: sport,
            dst_port: dport,
            dscp_ecn: 0,
            dont_frag: false,
            vlan_tci: None,
        }
        .build(payload)
        .unwrap_or_default()
    };
    // BFD (RFC 5880 §4.1): version 1, state Up, detect mult 3, length 24, intervals 100 ms.
    let mut bfd = vec![0x20, 0xc0, 3, 24];
    bfd.extend_from_slice(&1u32.to_be_bytes());
    bfd.extend_from_slice(&2u32.to_be_bytes());
    for _ in 0..3 {
        bfd.extend_from_slice(&100_000u32.to_be_bytes());
    }
    out.push((
        "client",
        upstream(
            Ipv4Addr::new(198, 51, 100, 2),
            macs[0],
            255,
            49152,
            3784,
            &bfd,
        ),
    ));
    // RIP response (RFC 2453 §4): one route, to the subnet broadcast.
    let mut rip = vec![2, 2, 0, 0, 0, 2, 0, 0];
    rip.extend_from_slice(&[203, 0, 113, 0, 255, 255, 255, 0, 0, 0, 0, 0]);
    rip.extend_from_slice(&1u32.to_be_bytes());
    out.push((
        "rip",
        upstream(
            Ipv4Addr::new(198, 51, 100, 255),
            [0xff; 6],
            1,
            520,
            520,
            &rip,
        ),
    ));
    out
}

/// In-flight packets the generator keeps queued in front of the worker.
const IN_FLIGHT: u32 = 4096;

fn ring(a: &Args) {
    let flows = a.num("--flows", 1 << 20);
    let ppf = a.num("--ppf", 1);
    let warmup = Duration::from_secs(a.num("--warmup", 2).into());
    let window = Duration::from_secs(a.num("--secs", 10).into());
    let memory_mb = a.num("--memory-mb", 512);
    // --control 1: the routing protocols run beside the traffic, as among 3 routers with RIP
    // and BFD (issue 8 "Performance"): see control_frames().
    let control = a.num("--control", 0) != 0;
    // Issue 12 "a snapshot swap (live reweight) and a metrics scrape under full load lose no
    // packet": --swap-ms N publishes a reweighted snapshot every N ms, --scrape-ms N renders
    // the Prometheus text (clua_lb::metrics::Exporter, aliasd's own path) every N ms, both
    // from the generator's lcore while it keeps the worker saturated.
    let swap_every = Duration::from_millis(a.num("--swap-ms", 0).into());
    let scrape_every = Duration::from_millis(a.num("--scrape-ms", 0).into());
    let t = traffic(flows, ppf);
    let pid = std::process::id();
    let prefix = format!("clua-bench-{pid}");
    let eal = ring_eal(&prefix, memory_mb);
    let toml = config_toml(
        "net_ring_client",
        "net_ring_ic0",
        flows,
        32767,
        memory_mb,
        None,
        false,
    );
    let config =
        Config::parse(&toml, "clua-bench ring config").unwrap_or_else(|e| die(&e.to_string()));
    // The reweight: selw 3/2/1 and 1/2/3 alternately (alias web, members m1..m3).
    let reweighted = Config::parse(
        &toml
            .replace("{ name = \"m1\", selw = 3 }", "{ name = \"m1\", selw = 1 }")
            .replace("{ name = \"m3\" }", "{ name = \"m3\", selw = 3 }"),
        "clua-bench ring config (reweighted)",
    )
    .unwrap_or_else(|e| die(&e.to_string()));
    let pool = Mempool::new("bench_mbufs", 32767, 256, Mempool::DEFAULT_DATA_ROOM, -1)
        .unwrap_or_else(|e| die(&format!("mempool: {e}")));
    let flags = Ring::SP_ENQ | Ring::SC_DEQ;
    let mk =
        |n: &str| Ring::new(n, 16384, flags).unwrap_or_else(|e| die(&format!("ring {n}: {e}")));
    let (c_rx, c_tx, i_rx, i_tx) = (mk("b_c_rx"), mk("b_c_tx"), mk("b_i_rx"), mk("b_i_tx"));
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
    let build = |cluster: &clua_ctl::model::Cluster, generation: u64| {
        Arc::new(
            cluster
                .snapshot(generation, &macs)
                .unwrap_or_else(|e| die(&format!("snapshot: {e}")))
                .with_control(clua_pipeline::snapshot::ControlPorts {
                    router: if control { 9472 } else { 0 },
                    rip: control,
                    bfd: control,
                    sync: 0,
                }),
        )
    };
    let snapshot = build(&config.cluster, 1);
    let published = Arc::new(ArcSwap::new(snapshot.clone()));
    let control_set = control.then(|| control_frames(&macs));
    let punt = Arc::new(PuntQueues::default());
    let mut next_control = Instant::now();
    let mut control_sent = 0u64;
    let mut control_punted = 0u64;
    let counters = Arc::new(CoreCounters::new(config.pipeline.max_members));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = Worker {
        queue: 0,
        ports: vec![
            Port::from_id(client.id()).unwrap(),
            Port::from_id(ic.id()).unwrap(),
        ],
        pipeline: Pipeline::new(&config.pipeline, snapshot.clone(), counters.clone()),
        punt: punt.clone(),
        inject: None,
        snapshot: published.clone(),
        stop: stop.clone(),
        idle: clua_lb::idle::IdlePolicy::Poll,
        clock: TscClock::new(eal.tsc_hz()),
        sync: Default::default(),
        capture: None,
        relay: None,
    };
    let launched =
        clua_dpdk::launch(1, move || worker.run()).unwrap_or_else(|e| die(&format!("launch: {e}")));

    // The generator: frees what the worker sent (ic0 TX, client TX), keeps IN_FLIGHT frames
    // queued on the client RX ring, in replay order, wrapping around.
    let get = |c: &std::sync::atomic::AtomicU64| CoreCounters::get(c);
    let total = t.index.len();
    let mut next = 0usize;
    let mut sink = Burst::new();
    let mut fill = Burst::new();
    let mut polls = 0u64;
    let mut empty_polls = 0u64;
    let started = Instant::now();
    let mut mark: Option<(Instant, u64, u64, u64, u64, u64)> = None;
    let mut established_at = None;
    // Loss accounting over the whole run: frames the generator enqueued, frames that came out
    // of the worker's TX rings.
    let mut generated = 0u64;
    let mut out = 0u64;
    let drain = |sink: &mut Burst, out: &mut u64| {
        for r in [&i_tx, &c_tx] {
            while r.dequeue_burst(sink) > 0 {
                *out += sink.len() as u64;
                sink.clear();
            }
        }
    };
    let mut generation = 1u64;
    let mut next_swap = Instant::now() + swap_every;
    let mut swaps = 0u64;
    let mut exporter = clua_lb::metrics::Exporter::new();
    let source = clua_lb::metrics::MetricsSource {
        cores: vec![counters.clone()],
        control: Default::default(),
        snapshot: published.clone(),
        ports: Box::new(Vec::new),
        adverts: None,
    };
    let mut next_scrape = Instant::now() + scrape_every;
    let mut scrapes = 0u64;
    let mut scrape_bytes = 0usize;
    let result = loop {
        drain(&mut sink, &mut out);
        let queued = c_rx.count();
        if mark.is_some() {
            polls += 1;
            if queued == 0 {
                empty_polls += 1;
            }
        }
        let mut want = IN_FLIGHT.saturating_sub(queued);
        while want > 0 {
            while !fill.is_full() && want > 0 {
                let (off, len) = t.index[next];
                next += 1;
                if next == total {
                    next = 0;
                }
                match Mbuf::from_bytes(&pool, &t.bytes[off as usize..off as usize + len as usize]) {
                    Some(m) => {
                        let _ = fill.push(m);
                    }
                    None => break,
                }
                want -= 1;
            }
            generated += c_rx.enqueue_burst(&mut fill) as u64;
            fill.clear();
            if fill.is_empty() && want > 0 && pool.available() == 0 {
                break;
            }
        }
        let now = Instant::now();
        if let Some(set) = &control_set {
            // Every 100 ms what a router hears: 2 peers' announcements on ic0, BFD from the
            // upstream on the client port; RIP from the upstream every 30 s (here: 1 in 300
            // rounds). The main lcore plays the control thread: it drains the punt queues.
            if now >= next_control {
                next_control += Duration::from_millis(100);
                let round = control_sent / 3;
                for (port, frame) in set.iter() {
                    if port == &"rip" && !round.is_multiple_of(300) {
                        continue;
                    }
                    let ring = if *port == "ic0" { &i_rx } else { &c_rx };
                    if let Some(m) = Mbuf::from_bytes(&pool, frame) {
                        let mut b = Burst::new();
                        let _ = b.push(m);
                        ring.enqueue_burst(&mut b);
                        control_sent += 1;
                    }
                }
            }
            // Drained when frames were sent (the worker punts within microseconds), so the
            // generator loop costs the same as without control traffic in between.
            if control_sent > control_punted {
                control_punted += punt.drain(64, drop) as u64;
            }
        }
        if !swap_every.is_zero() && mark.is_some() && now >= next_swap {
            next_swap = now + swap_every;
            generation += 1;
            let cluster = if generation % 2 == 0 {
                &reweighted.cluster
            } else {
                &config.cluster
            };
            published.store(build(cluster, generation));
            swaps += 1;
        }
        if !scrape_every.is_zero() && mark.is_some() && now >= next_scrape {
            next_scrape = now + scrape_every;
            let text = exporter.render(&source);
            // The scrape is a real one: its rx count is one the worker had reached.
            let scraped = text
                .lines()
                .find(|l| l.starts_with("clua_rx_packets_total{"))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| die("scrape without clua_rx_packets_total"));
            if scraped as u64 > get(&counters.rx) {
                die("scrape ahead of the worker's counter");
            }
            scrapes += 1;
            scrape_bytes += text.len();
        }
        let rx = get(&counters.rx);
        if established_at.is_none() && rx >= total as u64 {
            established_at = Some(now);
        }
        match mark {
            None if established_at.is_some() && now - started >= warmup => {
                mark = Some((
                    now,
                    rx,
                    get(&counters.forwarded),
                    get(&counters.conn_hits),
                    get(&counters.conn_inserts),
                    get(&counters.conn_evictions),
                ));
            }
            Some((t0, rx0, fwd0, hits0, ins0, ev0)) if now - t0 >= window => {
                break (
                    (now - t0).as_secs_f64(),
                    rx - rx0,
                    get(&counters.forwarded) - fwd0,
                    get(&counters.conn_hits) - hits0,
                    get(&counters.conn_inserts) - ins0,
                    get(&counters.conn_evictions) - ev0,
                );
            }
            _ => {}
        }
        if now - started > warmup + window + Duration::from_secs(60) {
            die("the worker did not get through one pass over the flows in 60 s");
        }
    };
    // Let the worker empty its RX rings, then stop it and collect what it sent.
    let settle = Instant::now();
    while (c_rx.count() > 0 || i_rx.count() > 0) && settle.elapsed() < Duration::from_secs(10) {
        drain(&mut sink, &mut out);
    }
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    launched.wait();
    drain(&mut sink, &mut out);
    let (secs, rx, fwd, hits, inserts, evictions) = result;
    let drops: u64 = counters.drops.iter().map(get).sum();
    let punts: u64 = counters.punts.iter().map(get).sum();
    let dropped_by: Vec<String> = clua_pipeline::DropReason::ALL
        .iter()
        .zip(&counters.drops)
        .filter(|(_, c)| get(c) > 0)
        .map(|(r, c)| format!("{}:{}", r.name(), get(c)))
        .collect();
    // Every frame in is out, dropped (by reason) or punted; anything else is lost.
    let lost = (generated + control_sent) as i64 - (out + drops + punts) as i64;
    println!(
        "RESULT engine=aliasd-ring flows={flows} packets_in_file={total} secs={secs:.3} rx={rx} \
         forwarded={fwd} mpps={:.3} fwd_mpps={:.3} conn_hits={hits} conn_inserts={inserts} conn_evictions={evictions} \
         drops_total={drops} table_entries={} generator_empty_polls={:.2}% control={} control_sent={control_sent} control_punted={control_punted} \
         generated={generated} out={out} punts={punts} lost={lost} dropped_by={} swaps={swaps} \
         last_generation={generation} scrapes={scrapes} scrape_bytes={}",
        rx as f64 / secs / 1e6,
        fwd as f64 / secs / 1e6,
        get(&counters.conn_inserts),
        100.0 * empty_polls as f64 / polls.max(1) as f64,
        u8::from(control),
        if dropped_by.is_empty() {
            "-".to_string()
        } else {
            dropped_by.join(",")
        },
        scrape_bytes / scrapes.max(1) as usize,
    );
    for p in [client, ic] {
        let _ = p.stop();
        let _ = p.close();
    }
    drop(sink);
    drop(fill);
    drop((c_rx, c_tx, i_rx, i_tx));
    drop(pool);
    drop(eal);
    let _ = std::fs::remove_dir(format!("/var/run/dpdk/{prefix}"));
    // Exit 3 when a frame was lost, or dropped while the swaps or scrapes ran (scripts/bench
    // flags it); the control frames of --control 1 are punted, not dropped.
    if lost != 0 || ((swaps > 0 || scrapes > 0) && drops > 0) {
        eprintln!("clua-bench ring: lost {lost} frames, dropped {drops} ({dropped_by:?})");
        std::process::exit(3);
    }
}
