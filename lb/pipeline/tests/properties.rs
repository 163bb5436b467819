//! Property-style tests of selection over the real pipeline: weighted shares (CA7, CA8), selp
//! tiers (seed 000 §6.8), established flows across snapshot swaps, member failure (CA3), and
//! connection-table timeouts.

mod common;

use std::sync::Arc;

use clua_pipeline::{
    CoreCounters, DropReason, PacketBuf, Pipeline, PipelineConfig, Snapshot, VecBuf, Verdict, BURST,
};
use common::*;

fn pipeline(cfg: PipelineConfig, snap: Snapshot) -> Pipeline {
    let counters = Arc::new(cfg.new_counters());
    Pipeline::new(&cfg, Arc::new(snap), counters)
}

/// Sends `frames` (received on the client port at `now`) in bursts; returns, per frame, the
/// member it went to (by the outer destination MAC) or the verdict if it was not forwarded.
fn send(p: &mut Pipeline, now: u64, frames: &[Vec<u8>]) -> Vec<Result<u32, Verdict>> {
    let mut out = Vec::with_capacity(frames.len());
    for chunk in frames.chunks(BURST) {
        let mut bufs: Vec<VecBuf> = chunk.iter().map(|f| VecBuf::new(f)).collect();
        let mut verdicts = vec![Verdict::Drop(DropReason::TxFull); chunk.len()];
        p.process_burst(0, now, &mut bufs, &mut verdicts);
        let snap = p.snapshot().clone();
        for (b, v) in bufs.iter().zip(verdicts) {
            out.push(match v {
                Verdict::Forward(_) => {
                    let mac = &b.data()[0..6];
                    let m = snap
                        .members
                        .iter()
                        .flatten()
                        .find(|m| m.mac == mac)
                        .expect("forwarded to a member's MAC");
                    Ok(m.id.0)
                }
                v => Err(v),
            });
        }
    }
    out
}

fn syns(dport: u16, ports: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    ports
        .map(|i| {
            // Vary the client address too so that more than 64k flows are possible.
            let src = [198, 51, (i >> 16) as u8, 10 + (i >> 8 & 0x3f) as u8];
            tcp_frame(src, (i & 0xffff) as u16 | 1024, WEB, dport, SYN)
        })
        .collect()
}

fn acks(dport: u16, ports: std::ops::Range<u32>, flags: u8) -> Vec<Vec<u8>> {
    ports
        .map(|i| {
            let src = [198, 51, (i >> 16) as u8, 10 + (i >> 8 & 0x3f) as u8];
            tcp_frame(src, (i & 0xffff) as u16 | 1024, WEB, dport, flags)
        })
        .collect()
}

fn members(r: &[Result<u32, Verdict>]) -> Vec<u32> {
    r.iter().map(|x| *x.as_ref().expect("forwarded")).collect()
}

#[test]
fn in_multi_shares_are_exactly_proportional_to_selw_in_every_turn() {
    // web: m1 selw 3, m2 selw 2, m3 selw 1 -> one turn is 6 connections.
    let mut p = pipeline(PipelineConfig::default(), topology());
    let got = members(&send(&mut p, 1000, &syns(80, 0..6000)));
    for (t, turn) in got.chunks(6).enumerate() {
        let mut n = [0; 4];
        for &m in turn {
            n[m as usize] += 1;
        }
        assert_eq!(n, [3, 2, 1, 0], "turn {t}: {turn:?}");
    }
    let c = p.counters();
    let flows: Vec<u64> = (0..4)
        .map(|i| CoreCounters::get(&c.member_flows[i]))
        .collect();
    assert_eq!(flows, vec![3000, 2000, 1000, 0]);
    assert_eq!(CoreCounters::get(&c.conn_inserts), 6000);
    assert_eq!(CoreCounters::get(&c.conn_evictions), 0);
}

#[test]
fn in_multi_udp_is_round_robin_per_datagram_without_table_entries() {
    let mut p = pipeline(PipelineConfig::default(), topology());
    let frames: Vec<Vec<u8>> = (0..12)
        .map(|_| udp_frame(CLIENT, 5353, WEB, 53, b"q"))
        .collect();
    let got = members(&send(&mut p, 1000, &frames));
    assert_eq!(got, vec![0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 1, 2]);
    assert_eq!(p.selector().conns().live(1000), 0);
    assert_eq!(CoreCounters::get(&p.counters().member_flows[0]), 6);
    // in_single UDP (port 54) always goes to the active member, and is not a new flow.
    let frames: Vec<Vec<u8>> = (0..5)
        .map(|i| udp_frame(CLIENT, 5000 + i, WEB, 54, b"q"))
        .collect();
    assert_eq!(members(&send(&mut p, 1000, &frames)), vec![0; 5]);
    assert_eq!(CoreCounters::get(&p.counters().member_flows[0]), 6);
}

#[test]
fn selp_tiers_lower_tier_only_when_the_higher_is_all_down() {
    // Seed 000 §6.8: two members selp=10 and one selp=5.
    let web = || vec![amp(0, 1, 10), amp(1, 1, 10), amp(2, 1, 5)];
    let mut p = pipeline(
        PipelineConfig::default(),
        topology_with(1, [true; 4], web()),
    );
    let got = members(&send(&mut p, 1000, &syns(80, 0..300)));
    assert!(
        !got.contains(&2),
        "selp=5 member got a connection while selp=10 members are up"
    );
    assert_eq!(got.iter().filter(|&&m| m == 0).count(), 150);

    // One selp=10 member down: the other takes all new connections.
    p.set_snapshot(Arc::new(topology_with(2, [false, true, true, true], web())));
    let got = members(&send(&mut p, 1000, &syns(80, 1000..1300)));
    assert!(got.iter().all(|&m| m == 1), "{got:?}");

    // Both selp=10 members down: everything goes to selp=5, including established flows of
    // the members that went down.
    p.set_snapshot(Arc::new(topology_with(
        3,
        [false, false, true, true],
        web(),
    )));
    let got = members(&send(&mut p, 1000, &syns(80, 2000..2300)));
    assert!(got.iter().all(|&m| m == 2), "{got:?}");
    let got = members(&send(&mut p, 1000, &acks(80, 0..300, ACK)));
    assert!(got.iter().all(|&m| m == 2), "{got:?}");

    // A selp=10 member returns: new connections go back to it, m3's flows stay on m3.
    p.set_snapshot(Arc::new(topology_with(4, [true, false, true, true], web())));
    let got = members(&send(&mut p, 1000, &syns(80, 3000..3100)));
    assert!(got.iter().all(|&m| m == 0), "{got:?}");
    let got = members(&send(&mut p, 1000, &acks(80, 0..300, ACK)));
    assert!(got.iter().all(|&m| m == 2), "{got:?}");

    // Nobody up at all: no_member.
    p.set_snapshot(Arc::new(topology_with(5, [false; 4], web())));
    let got = send(&mut p, 1000, &syns(80, 4000..4010));
    assert!(got
        .iter()
        .all(|r| *r == Err(Verdict::Drop(DropReason::NoMember))));
}

#[test]
fn established_flows_keep_their_member_across_weight_changes() {
    let mut p = pipeline(PipelineConfig::default(), topology());
    let first = members(&send(&mut p, 1000, &syns(80, 0..600)));
    // Reverse the weights: m1 1, m2 2, m3 3.
    p.set_snapshot(Arc::new(topology_with(
        2,
        [true; 4],
        vec![am(0, 1), am(1, 2), am(2, 3)],
    )));
    let again = members(&send(&mut p, 2000, &acks(80, 0..600, ACK)));
    assert_eq!(first, again, "established flows moved");
    // New connections follow the new weights (the alias set is unchanged, so the cursor is kept
    // at the start of a turn).
    let new = members(&send(&mut p, 2000, &syns(80, 10_000..10_600)));
    for turn in new.chunks(6) {
        let mut n = [0; 4];
        for &m in turn {
            n[m as usize] += 1;
        }
        assert_eq!(n, [1, 2, 3, 0]);
    }
}

#[test]
fn a_member_going_down_has_its_flows_reselected() {
    let mut p = pipeline(PipelineConfig::default(), topology());
    let first = members(&send(&mut p, 1000, &syns(80, 0..60)));
    p.set_snapshot(Arc::new(topology_with(
        2,
        [true, false, true, true],
        vec![am(0, 3), am(1, 2), am(2, 1)],
    )));
    let flows_before = CoreCounters::get(&p.counters().member_flows[0]);
    let again = members(&send(&mut p, 2000, &acks(80, 0..60, ACK)));
    let mut moved = 0;
    for (a, b) in first.iter().zip(&again) {
        if *a == 1 {
            assert_ne!(*b, 1, "a down member got traffic");
            moved += 1;
        } else {
            assert_eq!(a, b, "a flow of an up member moved");
        }
    }
    assert_eq!(moved, 20);
    // The moved flows are new flows for their new members.
    let flows_after: u64 = (0..4)
        .map(|i| CoreCounters::get(&p.counters().member_flows[i]))
        .sum();
    assert_eq!(flows_after, 60 + 20);
    assert!(CoreCounters::get(&p.counters().member_flows[0]) >= flows_before);
    // And they stay where they moved.
    let third = members(&send(&mut p, 3000, &acks(80, 0..60, ACK)));
    assert_eq!(again, third);
}

#[test]
fn fin_and_rst_shorten_the_entry_timeout() {
    let cfg = PipelineConfig {
        tcp_idle_ms: 100_000,
        tcp_closing_ms: 1_000,
        ..Default::default()
    };
    let mut p = pipeline(cfg, topology());
    send(&mut p, 0, &syns(80, 0..3));
    send(&mut p, 10, &acks(80, 0..1, FIN | ACK));
    send(&mut p, 10, &acks(80, 1..2, RST));
    let conns = p.selector().conns();
    assert_eq!(conns.live(500), 3);
    assert_eq!(
        conns.live(1_010),
        1,
        "FIN and RST flows expire after the closing timeout"
    );
    assert_eq!(conns.live(100_000), 0);
    // A later ACK on a closing flow keeps the closing timeout.
    send(&mut p, 500, &acks(80, 0..1, ACK));
    assert_eq!(p.selector().conns().live(1_499), 2);
    assert_eq!(p.selector().conns().live(1_500), 1);
    // Packets refresh the idle timeout.
    send(&mut p, 90_000, &acks(80, 2..3, ACK));
    assert_eq!(p.selector().conns().live(150_000), 1);
}

#[test]
fn expired_flows_are_reselected_as_new_flows() {
    let cfg = PipelineConfig {
        tcp_idle_ms: 1_000,
        ..Default::default()
    };
    let mut p = pipeline(cfg, topology());
    send(&mut p, 0, &syns(80, 0..6));
    let hits = CoreCounters::get(&p.counters().conn_hits);
    send(&mut p, 999, &acks(80, 0..6, ACK));
    assert_eq!(CoreCounters::get(&p.counters().conn_hits), hits + 6);
    send(&mut p, 1_999 + 1_000, &acks(80, 0..6, ACK));
    assert_eq!(
        CoreCounters::get(&p.counters().conn_hits),
        hits + 6,
        "expired: misses"
    );
    assert_eq!(CoreCounters::get(&p.counters().conn_inserts), 12);
}

#[test]
fn bursts_longer_than_burst_are_processed_in_chunks() {
    let mut p = pipeline(PipelineConfig::default(), topology());
    let frames = syns(80, 0..100);
    let mut bufs: Vec<VecBuf> = frames.iter().map(|f| VecBuf::new(f)).collect();
    let mut verdicts = vec![Verdict::Drop(DropReason::TxFull); 100];
    p.process_burst(0, 1, &mut bufs, &mut verdicts);
    assert!(verdicts.iter().all(|v| *v == Verdict::Forward(1)));
    assert_eq!(CoreCounters::get(&p.counters().rx), 100);
    assert_eq!(CoreCounters::get(&p.counters().forwarded), 100);
}

/// Refusals (in_noalias) share one per-core token bucket: `refusals_per_sec` answers within
/// one millisecond, then drops counted as `in_noalias`; tokens come back at `refusals_per_sec`
/// a second (one per `1000 / refusals_per_sec` ms), never above the burst. Every in_noalias
/// packet is counted once, as a refusal sent or as a drop.
#[test]
fn refusals_are_rate_limited_per_core_and_refill_with_time() {
    use clua_pipeline::wire::checksum::checksum;

    for rate in [1u32, 7, 50, 100, 250] {
        let cfg = PipelineConfig {
            refusals_per_sec: rate,
            ..Default::default()
        };
        let mut p = pipeline(cfg, topology());
        // Alternate TCP SYNs and UDP datagrams to the in_noalias port 513: both kinds of
        // answer draw on the same bucket.
        let frames: Vec<Vec<u8>> = (0..rate as u16 + 5)
            .map(|i| {
                if i % 2 == 0 {
                    tcp_frame(CLIENT, 20000 + i, WEB, 513, SYN)
                } else {
                    udp_frame(CLIENT, 20000 + i, WEB, 513, b"who")
                }
            })
            .collect();
        let run = |p: &mut Pipeline, now: u64, frames: &[Vec<u8>]| -> Vec<Verdict> {
            let mut out = Vec::new();
            for chunk in frames.chunks(BURST) {
                let mut bufs: Vec<VecBuf> = chunk.iter().map(|f| VecBuf::new(f)).collect();
                let mut verdicts = vec![Verdict::Drop(DropReason::TxFull); chunk.len()];
                p.process_burst(0, now, &mut bufs, &mut verdicts);
                for (b, v) in bufs.iter().zip(&verdicts) {
                    if *v == Verdict::Forward(0) {
                        let d = b.data();
                        assert_eq!(&d[0..6], &CLIENT_MAC, "answer to the sender");
                        assert_eq!(&d[6..12], &ROUTER_MAC);
                        assert_eq!(checksum(&d[14..34]), 0);
                        assert_eq!((&d[26..30], &d[30..34]), (&WEB[..], &CLIENT[..]));
                    }
                }
                out.extend(verdicts);
            }
            out
        };
        let answered = |v: &[Verdict]| v.iter().filter(|v| **v == Verdict::Forward(0)).count();
        let limited = Verdict::Drop(DropReason::InNoalias);

        // Within one millisecond: exactly `rate` answers, then drops.
        let t0 = 10_000;
        let v = run(&mut p, t0, &frames);
        assert_eq!(answered(&v), rate as usize, "rate {rate}");
        assert!(v[..rate as usize].iter().all(|v| *v == Verdict::Forward(0)));
        assert!(v[rate as usize..].iter().all(|v| *v == limited));
        let one = &frames[..1];
        assert_eq!(
            run(&mut p, t0, one),
            vec![limited],
            "rate {rate}: still empty"
        );

        // The next token is due ceil(1000 / rate) ms later, not before.
        let due = 1000u64.div_ceil(rate as u64);
        assert_eq!(
            run(&mut p, t0 + due - 1, one),
            vec![limited],
            "rate {rate}: just before a token is due"
        );
        assert_eq!(
            run(&mut p, t0 + due, one),
            vec![Verdict::Forward(0)],
            "rate {rate}: a token is due"
        );
        assert_eq!(run(&mut p, t0 + due, one), vec![limited], "rate {rate}");
        // Past a whole second the bucket is full again, and no fuller than the burst.
        let v = run(&mut p, t0 + 5_000, &frames);
        assert_eq!(
            answered(&v),
            rate as usize,
            "rate {rate}: refilled to the burst"
        );

        // Every in_noalias packet counted once.
        let c = p.counters();
        let sent = CoreCounters::get(&c.refusals_sent);
        let dropped = c.drops_for(DropReason::InNoalias);
        assert_eq!(sent + dropped, CoreCounters::get(&c.rx), "rate {rate}");
        assert_eq!(sent, CoreCounters::get(&c.forwarded), "rate {rate}");
    }

    // Refills accumulate across milliseconds: at 100/s, 10 ms give exactly one token.
    let cfg = PipelineConfig {
        refusals_per_sec: 100,
        ..Default::default()
    };
    let mut p = pipeline(cfg, topology());
    let one = [tcp_frame(CLIENT, 30000, WEB, 513, SYN)];
    let send_one = |p: &mut Pipeline, now: u64| {
        let mut bufs = [VecBuf::new(&one[0])];
        let mut v = [Verdict::Drop(DropReason::TxFull)];
        p.process_burst(0, now, &mut bufs, &mut v);
        v[0]
    };
    for _ in 0..100 {
        assert_eq!(send_one(&mut p, 1), Verdict::Forward(0));
    }
    assert_eq!(send_one(&mut p, 1), Verdict::Drop(DropReason::InNoalias));
    for t in 2..11 {
        assert_eq!(
            send_one(&mut p, t),
            Verdict::Drop(DropReason::InNoalias),
            "t {t}"
        );
    }
    assert_eq!(send_one(&mut p, 11), Verdict::Forward(0), "10 ms later");
    assert_eq!(send_one(&mut p, 11), Verdict::Drop(DropReason::InNoalias));

    // 0 disables answers: everything is a counted drop.
    let cfg = PipelineConfig {
        refusals_per_sec: 0,
        ..Default::default()
    };
    let mut p = pipeline(cfg, topology());
    assert_eq!(send_one(&mut p, 0), Verdict::Drop(DropReason::InNoalias));
    assert_eq!(
        send_one(&mut p, 1_000_000),
        Verdict::Drop(DropReason::InNoalias)
    );
    assert_eq!(CoreCounters::get(&p.counters().refusals_sent), 0);
}

/// Two-choice connection table: a table at half its capacity evicts no live flow (an eviction
/// may re-select an established TCP connection to another member); past capacity it evicts,
/// and every eviction is counted.
#[test]
fn half_full_connection_table_evicts_no_live_flow() {
    let cfg = PipelineConfig {
        conn_capacity: 1 << 16,
        ..Default::default()
    };
    let mut p = pipeline(cfg, topology());
    let n = 1u32 << 15;
    let got = send(&mut p, 1000, &syns(80, 0..n));
    assert!(got.iter().all(|r| r.is_ok()));
    let c = p.counters().clone();
    assert_eq!(CoreCounters::get(&c.conn_inserts), n as u64);
    assert_eq!(CoreCounters::get(&c.conn_evictions), 0);
    // Every flow still goes to the member it was given.
    let again = send(&mut p, 1001, &acks(80, 0..n, ACK));
    assert_eq!(again, got);
    assert_eq!(CoreCounters::get(&c.conn_hits), n as u64);
    // 150 % of capacity: evictions, each one counted. (Mid-flow segments, which insert
    // established entries: half-open SYNs at one instant evict nothing, see conntrack's grace.)
    send(&mut p, 1002, &acks(80, n..n * 4, ACK));
    let evictions = CoreCounters::get(&c.conn_evictions);
    assert!(evictions >= (n as u64) * 2, "{evictions} evictions");
    assert_eq!(
        p.selector().conns().live(1002) as u64,
        CoreCounters::get(&c.conn_inserts) - evictions
    );
}

/// `n` SYNs from distinct pseudo-random clients (SplitMix64 over `seed`), none from the
/// client ranges `syns` uses.
fn flood(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut x = seed;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let src = [10, (z >> 40) as u8, (z >> 32) as u8, (z >> 24) as u8 | 1];
        let sport = (z as u16) | 1024;
        if seen.insert((src, sport)) {
            out.push(tcp_frame(src, sport, WEB, 80, SYN));
        }
    }
    out
}

/// Issue 9: with 400 established flows in a 1024-entry table, a flood of 20 000 SYNs (20x the
/// table) from distinct sources is forwarded in full and leaves every established flow on its
/// member; a genuine connection opened during the flood completes; the flood's half-open
/// entries are gone after `tcp_half_open_ms`. Every SYN is accounted for exactly.
#[test]
fn a_syn_flood_of_twenty_times_the_table_leaves_every_established_flow_on_its_member() {
    let cfg = PipelineConfig {
        conn_capacity: 1024,
        tcp_idle_ms: 300_000,
        tcp_half_open_ms: 5_000,
        ..Default::default()
    };
    let mut p = pipeline(cfg, topology());
    let c = p.counters().clone();
    let owners = members(&send(&mut p, 1000, &syns(80, 0..400)));
    assert_eq!(members(&send(&mut p, 1001, &acks(80, 0..400, ACK))), owners);
    assert_eq!(CoreCounters::get(&c.conn_inserts), 400);
    assert_eq!(CoreCounters::get(&c.conn_hits), 400);

    let got = send(&mut p, 2000, &flood(9, 20_000));
    assert!(got.iter().all(|r| r.is_ok()), "every SYN is forwarded");
    let inserts = CoreCounters::get(&c.conn_inserts) - 400;
    let evictions = CoreCounters::get(&c.conn_evictions);
    let without_slot = CoreCounters::get(&c.syn_without_slot);
    assert_eq!(inserts + without_slot, 20_000);
    // The free slots filled up with half-open entries; the later SYNs (all within a half-open
    // entry's grace) took none of those and were served without an entry.
    assert_eq!(inserts - evictions, 1024 - 400);
    assert_eq!(p.selector().conns().live(2000), 1024);
    assert_eq!(evictions, 0, "{evictions} evictions");
    assert_eq!(without_slot, 20_000 - (1024 - 400));

    // Every established flow is still on its member, as a table hit.
    assert_eq!(members(&send(&mut p, 3000, &acks(80, 0..400, ACK))), owners);
    assert_eq!(CoreCounters::get(&c.conn_hits), 800);
    // A genuine client opening a connection during the flood gets through the handshake.
    let genuine = [203, 0, 113, 7];
    let syn = members(&send(
        &mut p,
        3000,
        &[tcp_frame(genuine, 4242, WEB, 80, SYN)],
    ));
    let ack = members(&send(
        &mut p,
        3001,
        &[tcp_frame(genuine, 4242, WEB, 80, ACK)],
    ));
    assert_eq!(syn, ack);
    assert_eq!(CoreCounters::get(&c.conn_hits), 801);

    // The flood's entries expire after the half-open timeout; the established ones do not.
    assert_eq!(p.selector().conns().live(2000 + 4_999), 1024);
    assert_eq!(p.selector().conns().live(3000 + 5_000), 401);
    // New connections then find free slots again.
    let ev = CoreCounters::get(&c.conn_evictions);
    send(&mut p, 9000, &syns(80, 1000..1100));
    assert_eq!(CoreCounters::get(&c.conn_evictions), ev);
    assert_eq!(p.selector().conns().live(9000), 501);
}

/// Issue 9: a table full of established flows takes no SYN's entry: 20 000 SYNs are forwarded
/// without one, each counted in `syn_without_slot`, and not one entry changes.
#[test]
fn syns_into_a_table_full_of_established_flows_are_forwarded_without_an_entry() {
    let cfg = PipelineConfig {
        conn_capacity: 1024,
        ..Default::default()
    };
    let mut p = pipeline(cfg, topology());
    let c = p.counters().clone();
    // Mid-flow segments (e.g. after a router restart) make established entries: 4096 of them
    // fill every slot.
    send(&mut p, 1000, &acks(80, 0..4096, ACK));
    assert_eq!(p.selector().conns().live(1000), 1024);
    let (inserts, evictions) = (
        CoreCounters::get(&c.conn_inserts),
        CoreCounters::get(&c.conn_evictions),
    );
    let got = send(&mut p, 1001, &flood(10, 20_000));
    assert!(got.iter().all(|r| r.is_ok()), "every SYN is forwarded");
    assert_eq!(CoreCounters::get(&c.syn_without_slot), 20_000);
    assert_eq!(CoreCounters::get(&c.conn_inserts), inserts);
    assert_eq!(CoreCounters::get(&c.conn_evictions), evictions);
    assert_eq!(p.selector().conns().live(1001), 1024);
    // Each SYN is still a new flow for the member it went to.
    let flows: u64 = (0..4).map(|i| CoreCounters::get(&c.member_flows[i])).sum();
    assert_eq!(flows, 4096 + 20_000);
}
