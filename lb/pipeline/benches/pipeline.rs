//! Packet-rate benchmarks of the real pipeline over `VecBuf`s, no DPDK.
//!
//! Each iteration resets a burst of 32 buffers with 60-byte TCP ACK frames (64 bytes on the wire
//! with the FCS) of 32 different established flows, taken in a scattered order from a set of
//! flows that are all in the connection table, and runs `Pipeline::process_burst` on it.
//! Throughput is in packets. The buffer resets (a 188-byte copy each) are part of the measured
//! time, as an RX path's descriptor refill would be. Each frame is written from one template
//! (the flow's source address, port and IPv4 checksum patched in), not copied from a stored
//! frame per flow: at 1M flows those would be a 60 MiB array read at random, a cache miss per
//! packet that only the bench has (a NIC writes each packet into a buffer of a small ring).
//!
//! The `l2` rows at 1,024, 65,536 and 1,048,576 flows (in a table of twice as many slots) show
//! what the connection table's size costs (issue 12): compare them within one run.
//!
//! `cargo bench -p clua-pipeline --bench pipeline -- --warm-up-time 1 --measurement-time 3`
//!
//! With `CLUA_BENCH_CLOCK=cpu` criterion measures this thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) instead of wall time: on a machine shared with other work the
//! rates then leave out the time the bench was not running (cache and memory contention stay).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use clua_pipeline::snapshot::ServiceSpec;
use clua_pipeline::wire::checksum::checksum;
use clua_pipeline::{
    AliasMember, CoreCounters, DropReason, Encap, Member, MemberId, Pipeline, PipelineConfig,
    PortInfo, PortRole, ServiceMode, Snapshot, VecBuf, Verdict, BURST,
};
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput};

const FRAME_LEN: usize = 60;
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const ALIAS: [u8; 4] = [198, 51, 100, 100];

/// client + ic0; eight members on ic0 with `encap`; one alias with all of them, tcp/80 in_multi.
fn snapshot(encap: Encap) -> Snapshot {
    let port = |name: &str, role, last: u8, ip: [u8; 4]| PortInfo {
        name: name.into(),
        role,
        mac: [2, 0, 0, 0, 0, last],
        ipv4: Some(Ipv4Addr::from(ip)),
        prefix_len: 24,
        mtu: 1600,
        flow_source: None,
    };
    let ports = vec![
        port("client", PortRole::Client, 1, [198, 51, 100, 2]),
        port("ic0", PortRole::Interconnect, 2, [192, 0, 2, 2]),
    ];
    let members = (0..8u32)
        .map(|i| {
            Some(Member {
                id: MemberId(i),
                name: format!("m{i}"),
                port: 1,
                mac: [2, 0, 0, 0, 1, i as u8],
                ipv4: Ipv4Addr::new(192, 0, 2, 10 + i as u8),
                encap,
                up: true,
                listening: None,
            })
        })
        .collect();
    let ams = (0..8)
        .map(|i| AliasMember {
            member: MemberId(i),
            selw: 1 + i % 3,
            selp: 1,
        })
        .collect();
    Snapshot::build(
        1,
        ports,
        members,
        vec![("web".into(), Ipv4Addr::from(ALIAS), ams)],
        &[ServiceSpec {
            proto: 6,
            port: 80,
            mode: ServiceMode::InMulti,
        }],
    )
    .expect("bench snapshot")
}

/// Flow `i`'s client address and port (10.x.y.z:port -> alias:80).
#[inline(always)]
fn client(i: u32) -> ([u8; 4], u16) {
    (
        [10, (i >> 22) as u8 | 0x40, (i >> 14) as u8, (i >> 6) as u8],
        1024 + (i & 0x3f) as u16,
    )
}

/// Offsets in the frame of the IPv4 checksum, source address and TCP source port.
const IP_CSUM: usize = 14 + 10;
const IP_SRC: usize = 14 + 12;
const TCP_SPORT: usize = 14 + 20;

/// Rewrites `f` (a [`frame`] of some flow) into flow `i`'s: its source address, port and
/// IPv4 checksum (RFC 1624 style: the header sum without the source, plus the new source).
#[inline(always)]
fn patch(f: &mut [u8; FRAME_LEN], i: u32, sum_without_src: u32) {
    let (src, sport) = client(i);
    f[IP_SRC..IP_SRC + 4].copy_from_slice(&src);
    f[TCP_SPORT..TCP_SPORT + 2].copy_from_slice(&sport.to_be_bytes());
    let mut sum = sum_without_src
        + u32::from(u16::from_be_bytes([src[0], src[1]]))
        + u32::from(u16::from_be_bytes([src[2], src[3]]));
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    f[IP_CSUM..IP_CSUM + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// The one's-complement sum of `f`'s IPv4 header without its checksum and source address.
fn header_sum_without_src(f: &[u8]) -> u32 {
    (14..34)
        .step_by(2)
        .filter(|&o| o != IP_CSUM && o != IP_SRC && o != IP_SRC + 2)
        .map(|o| u32::from(u16::from_be_bytes([f[o], f[o + 1]])))
        .sum()
}

/// A 60-byte TCP frame of flow `i` (client 10.x.y.z:port -> alias:80).
fn frame(i: u32, flags: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&ROUTER_MAC);
    out.extend_from_slice(&[2, 0, 0, 0, 0, 0x10, 0x08, 0x00]);
    let (src, sport) = client(i);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&ALIAS);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&ip);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 0x50;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    out.extend_from_slice(&tcp);
    out.resize(start + FRAME_LEN, 0);
}

struct Setup {
    pipeline: Pipeline,
    /// An ACK frame, [`patch`]ed into each packet's flow.
    template: [u8; FRAME_LEN],
    sum_without_src: u32,
    flows: u32,
    bufs: Vec<VecBuf>,
    verdicts: [Verdict; BURST],
    next: u32,
}

impl Setup {
    /// A pipeline with `flows` (a power of two) established flows in its table.
    fn new(encap: Encap, flows: u32) -> Setup {
        assert!(flows.is_power_of_two());
        let cfg = PipelineConfig {
            conn_capacity: flows as usize * 2,
            ..Default::default()
        };
        let counters = Arc::new(CoreCounters::new(cfg.max_members));
        let mut pipeline = Pipeline::new(&cfg, Arc::new(snapshot(encap)), counters);
        let mut syn = Vec::with_capacity(BURST * FRAME_LEN);
        let mut bufs: Vec<VecBuf> = (0..BURST).map(|_| VecBuf::new(&[0; FRAME_LEN])).collect();
        let mut verdicts = [Verdict::Drop(DropReason::TxFull); BURST];
        for base in (0..flows).step_by(BURST) {
            syn.clear();
            for i in base..base + BURST as u32 {
                frame(i, 0x02, &mut syn);
            }
            for (k, b) in bufs.iter_mut().enumerate() {
                b.reset(&syn[k * FRAME_LEN..(k + 1) * FRAME_LEN], 128);
            }
            pipeline.process_burst(0, 0, &mut bufs, &mut verdicts);
        }
        let c = pipeline.counters();
        assert_eq!(
            CoreCounters::get(&c.forwarded),
            flows as u64,
            "setup flows forwarded"
        );
        let mut ack = Vec::with_capacity(FRAME_LEN);
        frame(0, 0x10, &mut ack);
        let mut template = [0; FRAME_LEN];
        template.copy_from_slice(&ack);
        let sum_without_src = header_sum_without_src(&template);
        for i in [0, 1, flows / 3, flows - 1] {
            let mut want = Vec::new();
            frame(i, 0x10, &mut want);
            patch(&mut template, i, sum_without_src);
            assert_eq!(&template[..], &want[..], "patched frame of flow {i}");
        }
        Setup {
            pipeline,
            template,
            sum_without_src,
            flows,
            bufs,
            verdicts,
            next: 0,
        }
    }

    /// One burst of 32 established flows, scattered over the whole set.
    #[inline]
    fn burst(&mut self) {
        let mask = self.flows - 1;
        for b in self.bufs.iter_mut() {
            // An odd multiplier permutes 0..2^k: every flow comes up once per pass.
            let i = self.next.wrapping_mul(0x9e37_79b1) & mask;
            self.next = self.next.wrapping_add(1);
            patch(&mut self.template, i, self.sum_without_src);
            b.reset(&self.template, 128);
        }
        self.pipeline
            .process_burst(0, 1_000, &mut self.bufs, &mut self.verdicts);
        black_box(&self.verdicts);
    }
}

/// The vxlan member encap of the encap rows.
const VXLAN: Encap = Encap::Vxlan {
    vni: 42,
    inner_mac: [2, 0, 0, 0, 2, 0x81],
    udp_port: 4789,
};

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    let mut g = c.benchmark_group("process_burst");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, encap, flows) in [
        ("l2", Encap::L2, 1u32 << 10),
        ("l2", Encap::L2, 1 << 16),
        ("l2", Encap::L2, 1 << 20),
        ("ipip", Encap::Ipip, 1 << 20),
        (
            "vxlan",
            Encap::Vxlan {
                vni: 42,
                inner_mac: [2, 0, 0, 0, 2, 0x81],
                udp_port: 4789,
            },
            1 << 16,
        ),
        // Encap's own cost (issue 12): ipip and vxlan next to l2 where the table is cheap and
        // at 1M flows.
        ("ipip", Encap::Ipip, 1 << 10),
        ("vxlan", VXLAN, 1 << 10),
        ("vxlan", VXLAN, 1 << 20),
    ] {
        let mut s = Setup::new(encap, flows);
        s.burst();
        assert!(
            s.verdicts.iter().all(|v| *v == Verdict::Forward(1)),
            "{:?}",
            s.verdicts[0]
        );
        g.bench_function(BenchmarkId::new(name, format!("{flows}_flows")), |b| {
            b.iter(|| s.burst())
        });
    }
    g.finish();
}

/// This thread's CPU time (`CLUA_BENCH_CLOCK=cpu`, see the module docs).
struct ThreadCpu(WallTime);

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a live, writable local;
    // CLOCK_THREAD_CPUTIME_ID is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, as wall time's.
        self.0.formatter()
    }
}

fn main() {
    if std::env::var_os("CLUA_BENCH_CLOCK").is_some_and(|v| v == "cpu") {
        let mut c = Criterion::default()
            .with_measurement(ThreadCpu(WallTime))
            .configure_from_args();
        bench(&mut c);
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        bench(&mut c);
        c.final_summary();
    }
}
