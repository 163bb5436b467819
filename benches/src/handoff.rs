//! `clua-bench handoff [--records 1000000] [--batch 32] [--members 64] [--mtu 1500]`: what the
//! flow hand-off (issue 9, docs/sync-protocol.md) costs the control thread at 1 M new flows/s.
//!
//! In process, no packet is sent: two control planes (routers r1 and r2, the same members listed
//! in opposite orders so their member ids differ), r1 handed `--records` flow records in batches
//! of `--batch` (as a worker ring delivers them) at 1,000 records per simulated millisecond
//! (1 M/s, within the default `max_records_per_sec`), ticked every millisecond as aliasd does;
//! every hand-off frame r1 sends goes to r2's `on_frame` at once. Reported per record: r1's
//! `on_flows` + `on_tick` (member id to address, batching, encoding, HMAC-SHA-256 signing,
//! framing) and r2's `on_frame` (IPv4/UDP, framing, HMAC check, replay window, decoding, member
//! address to id), and what that is of one core at 1 M records/s; and the HMAC-SHA-256 of one
//! full datagram alone, for comparison.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clua_ctl::plane::{ControlPlane, Start};
use clua_ctl::routers::tracker::RouterSettings;
use clua_ctl::sync::SyncSettings;
use clua_lb::config::Config;
use clua_pipeline::conntrack::FlowState;
use clua_pipeline::handoff::FlowRecord;
use clua_pipeline::hash::FlowKey;
use clua_pipeline::{CoreCounters, MemberId, PuntReason};

const KEY: &[u8] = b"bench router key 0123456789";

fn cluster(k: u32, members: u32, mtu: u32, reversed: bool) -> clua_ctl::apply::ControlState {
    let mut toml = format!(
        "[cluster]\nname = \"bench\"\ndefault_alias = \"cluster\"\n\
         [[port]]\nname = \"client\"\ndevargs = \"net_null0\"\nrole = \"client\"\naddress = \"198.51.100.{}/24\"\n\
         [[port]]\nname = \"ic0\"\ndevargs = \"net_null1\"\nrole = \"interconnect\"\naddress = \"10.0.0.{}/16\"\nmtu = {mtu}\n",
        k + 1,
        k + 1
    );
    let mut names: Vec<u32> = (0..members).collect();
    if reversed {
        names.reverse();
    }
    for i in names {
        toml += &format!(
            "[[member]]\nname = \"m{i}\"\nport = \"ic0\"\naddress = \"{}\"\nmac = \"02:00:00:01:{:02x}:{:02x}\"\nencap = \"l2\"\n",
            Ipv4Addr::from(0x0a00_0100u32 + i),
            i >> 8,
            i & 0xff
        );
    }
    toml += "[[alias]]\nname = \"cluster\"\naddress = \"198.51.100.99\"\n";
    let c = Config::parse(&toml, "bench.toml").unwrap_or_else(|e| panic!("{e}"));
    clua_ctl::apply::ControlState {
        cluster: c.cluster,
        services_file: None,
        resvok: false,
    }
}

fn plane(k: u32, members: u32, mtu: u32) -> ControlPlane {
    ControlPlane::start_with(Start {
        state: cluster(k, members, mtu, k % 2 == 1),
        macs: vec![[2, 0, 0, 0, k as u8, 1], [2, 0, 0, 0, k as u8, 2]],
        adverts: None,
        routers: Some(RouterSettings {
            node: format!("r{}", k + 1),
            key: KEY.to_vec(),
            udp_port: 9472,
            interval_ms: 100,
            dead_misses: 3,
            boot_id: 1,
            garp_count: 1,
            garp_interval_ms: 100,
            interconnect: "ic0".into(),
        }),
        bfd: None,
        rip: None,
        sync: Some(SyncSettings::default()),
        wall_clock_ms: 0,
        cores: vec![Arc::new(CoreCounters::new(members as usize))],
        files: Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
        now_ms: 0,
    })
    .expect("bench cluster starts")
    .0
}

fn record(i: u32, members: u32) -> FlowRecord {
    FlowRecord {
        key: FlowKey {
            src: 0x6440_0000 + i,
            dst: u32::from(Ipv4Addr::new(198, 51, 100, 99)),
            src_port: 1024 + (i % 60_000) as u16,
            dst_port: 80,
            proto: 6,
        },
        member: MemberId(i % members),
        state: FlowState::Established,
        isn: i.wrapping_mul(2_654_435_761),
        remaining_ms: 7_200_000,
    }
}

pub fn run(records: u32, batch: u32, members: u32, mtu: u32) {
    let mut a = plane(0, members, mtu);
    let mut b = plane(1, members, mtu);
    let recs: Vec<FlowRecord> = (0..records).map(|i| record(i, members)).collect();
    let (mut send, mut recv) = (Duration::ZERO, Duration::ZERO);
    let (mut frames, mut installed) = (0u64, 0u64);
    let mut deliver = |fx: clua_ctl::plane::Effects, recv: &mut Duration, now: u64| {
        for t in fx.transmit.into_iter().filter(|t| t.port == 1) {
            // Only hand-off frames (UDP to 9473); r1's router announcements are not measured.
            if t.frame.get(36..38) != Some(&9473u16.to_be_bytes()[..]) {
                continue;
            }
            frames += 1;
            let mut f = t.frame;
            let s = Instant::now();
            let got = b.on_frame(1, PuntReason::Sync, &mut f, now);
            *recv += s.elapsed();
            installed += got.install.len() as u64;
        }
    };
    let per_ms = 1000usize;
    let mut now = 1u64;
    for ms in recs.chunks(per_ms) {
        let t = Instant::now();
        let mut fxs = Vec::new();
        for chunk in ms.chunks(batch.max(1) as usize) {
            fxs.push(a.on_flows(chunk, now));
        }
        send += t.elapsed();
        for fx in fxs {
            deliver(fx, &mut recv, now);
        }
        now += 1;
        let t = Instant::now();
        let fx = a.on_tick(now);
        send += t.elapsed();
        deliver(fx, &mut recv, now);
    }
    for _ in 0..20 {
        now += 1;
        let t = Instant::now();
        let fx = a.on_tick(now);
        send += t.elapsed();
        deliver(fx, &mut recv, now);
    }
    let ca = a.sync().expect("sync").counters().clone();
    let per_msg = a.sync().expect("sync").records_per_message();
    assert_eq!(ca.rate_limited, 0, "1 M/s is within the default bucket");
    assert_eq!(installed, u64::from(records), "every record installed");
    // The HMAC-SHA-256 of one full datagram's signed part, alone.
    let signed = vec![0x5au8; clua_ctl::sync::wire::buffer_len(per_msg) - 32];
    let n = 20_000u32;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(clua_ctl::signed::tag(std::hint::black_box(&signed), KEY));
    }
    let hmac = t.elapsed().as_nanos() as f64 / f64::from(n) / per_msg as f64;
    let ns = |d: Duration| d.as_nanos() as f64 / f64::from(records);
    let (s, r) = (ns(send), ns(recv));
    println!(
        "handoff: {records} records, batches of {batch}, {members} members, MTU {mtu}: {frames} datagrams of up to {per_msg} records"
    );
    println!(
        "handoff: sending router (on_flows + flush: map, encode, sign, frame): {s:.0} ns/record = {:.1} % of one core at 1 M records/s",
        s / 10.0
    );
    println!(
        "handoff: receiving router (on_frame: verify, replay, decode, map): {r:.0} ns/record = {:.1} % of one core at 1 M records/s",
        r / 10.0
    );
    println!(
        "handoff: of which HMAC-SHA-256 of a full datagram alone: {hmac:.0} ns/record (each side)"
    );
}
