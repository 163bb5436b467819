//! Issue 11: the per-alias counters and the connection-table occupancy sweep that `cluamgr -s`
//! shows.

mod common;

use std::sync::Arc;

use clua_pipeline::{CoreCounters, Pipeline, PipelineConfig, VecBuf, Verdict};
use common::*;

fn pipeline(capacity: usize) -> Pipeline {
    let cfg = PipelineConfig {
        conn_capacity: capacity,
        ..PipelineConfig::default()
    };
    Pipeline::new(&cfg, Arc::new(topology()), Arc::new(cfg.new_counters()))
}

fn syns(p: &mut Pipeline, dst: [u8; 4], n: u16, now_ms: u64) {
    let mut bufs: Vec<VecBuf> = (0..n)
        .map(|i| VecBuf::new(&tcp_frame(CLIENT, 40000 + i, dst, 80, SYN)))
        .collect();
    let mut verdicts = vec![Verdict::Drop(clua_pipeline::DropReason::Truncated); bufs.len()];
    p.process_burst(0, now_ms, &mut bufs, &mut verdicts);
    assert!(
        verdicts.iter().all(|v| matches!(v, Verdict::Forward(_))),
        "{verdicts:?}"
    );
}

/// Packets and new flows are counted under the alias they were addressed to (its `AliasId`,
/// the position in the snapshot), beside the member-wide totals.
#[test]
fn packets_and_flows_are_counted_per_alias() {
    let mut p = pipeline(1024);
    syns(&mut p, WEB, 5, 1);
    syns(&mut p, TUN, 2, 1);
    let c = p.counters().clone();
    let web = p.snapshot().alias_by_addr(u32::from_be_bytes(WEB)).unwrap();
    let tun = p.snapshot().alias_by_addr(u32::from_be_bytes(TUN)).unwrap();
    let get = |a: &[std::sync::atomic::AtomicU64], i: usize| CoreCounters::get(&a[i]);
    assert_eq!(get(&c.alias_packets, web.0 as usize), 5);
    assert_eq!(get(&c.alias_flows, web.0 as usize), 5);
    assert_eq!(get(&c.alias_packets, tun.0 as usize), 2);
    assert_eq!(get(&c.alias_flows, tun.0 as usize), 2);
    let cluster = p.snapshot().alias_by_addr(0xc633_6463).unwrap();
    assert_eq!(get(&c.alias_packets, cluster.0 as usize), 0);
}

/// The sweep stores the live entries once per pass over the table, paced by its budget, and
/// expired entries leave the count without traffic.
#[test]
fn the_occupancy_sweep_counts_live_entries_once_per_pass() {
    let mut p = pipeline(64);
    let c = p.counters().clone();
    assert_eq!(CoreCounters::get(&c.conn_capacity), 64);
    syns(&mut p, WEB, 10, 1);
    let live = p.selector().conns().live(2) as u64;
    assert!(live >= 9, "{live}");
    // Half a pass: nothing stored yet.
    p.sweep_occupancy(32, 2);
    assert_eq!(CoreCounters::get(&c.conn_sweeps), 0);
    assert_eq!(CoreCounters::get(&c.conn_live), 0);
    p.sweep_occupancy(32, 2);
    assert_eq!(CoreCounters::get(&c.conn_sweeps), 1);
    assert_eq!(CoreCounters::get(&c.conn_live), live);
    // Half-open entries expire after tcp_half_open_ms (5 s); a budget above the table does one
    // pass, not two.
    p.sweep_occupancy(1000, 10_000);
    assert_eq!(CoreCounters::get(&c.conn_sweeps), 2);
    assert_eq!(CoreCounters::get(&c.conn_live), 0);
}
