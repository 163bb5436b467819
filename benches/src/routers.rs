//! `clua-bench routers [--routers 3] [--aliases 10000] [--secs 10]`: what the router protocol
//! costs the control thread (issue 8 "Performance").
//!
//! In process, no packet is sent: `--routers` control planes, each specifying the same
//! `--aliases` aliases (rpri by address so each router masters a third), exchange their
//! router-protocol frames at the default 100 ms interval over `--secs` simulated seconds, ticked
//! every millisecond as aliasd does. Reported: the control-thread time per simulated second of
//! one router (ticks, announcements it builds and signs, and the peers' messages it verifies and
//! merges), the frames per interval, and the time of the re-election after one router dies.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clua_ctl::plane::{ControlPlane, Start, Transmit};
use clua_ctl::routers::tracker::RouterSettings;
use clua_lb::config::Config;
use clua_pipeline::{CoreCounters, PuntReason};

fn cluster(aliases: u32, k: u32, routers: u32) -> clua_ctl::apply::ControlState {
    // Addresses are only bytes in memory here; 100.64.0.0/10 holds 10,000 aliases in one
    // client subnet (the advert bench uses the same range).
    let mut toml = format!(
        "[cluster]\nname = \"bench\"\ndefault_alias = \"a0\"\nmax_aliases = 102400\n\
         [[port]]\nname = \"client\"\ndevargs = \"net_null0\"\nrole = \"client\"\naddress = \"100.64.0.{}/10\"\n\
         [[port]]\nname = \"ic0\"\ndevargs = \"net_null1\"\nrole = \"interconnect\"\naddress = \"192.0.2.{}/24\"\nmtu = 1600\n",
        k + 1,
        k + 1
    );
    for i in 0..aliases {
        let rpri = if i % routers == k { 100 } else { 10 };
        toml += &format!(
            "[[alias]]\nname = \"a{i}\"\naddress = \"{}\"\nrpri = {rpri}\n",
            Ipv4Addr::from(0x6440_0100u32 + i)
        );
    }
    let c = Config::parse(&toml, "bench.toml").unwrap_or_else(|e| panic!("{e}"));
    clua_ctl::apply::ControlState {
        cluster: c.cluster,
        services_file: None,
        resvok: false,
    }
}

pub fn run(routers: u32, aliases: u32, secs: u32) {
    let mut planes: Vec<ControlPlane> = (0..routers)
        .map(|k| {
            let macs = vec![[2, 0, 0, 0, k as u8, 1], [2, 0, 0, 0, k as u8, 2]];
            ControlPlane::start_with(Start {
                state: cluster(aliases, k, routers),
                macs,
                adverts: None,
                routers: Some(RouterSettings {
                    node: format!("r{k}"),
                    key: b"bench router key 0123456789".to_vec(),
                    udp_port: 9472,
                    interval_ms: 100,
                    dead_misses: 3,
                    boot_id: 1,
                    garp_count: 3,
                    garp_interval_ms: 100,
                    interconnect: "ic0".into(),
                }),
                bfd: None,
                rip: None,
                sync: None,
                wall_clock_ms: 0,
                cores: vec![Arc::new(CoreCounters::new(1))],
                files: Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
                now_ms: 0,
            })
            .expect("bench cluster starts")
            .0
        })
        .collect();
    let mut busy = vec![Duration::ZERO; routers as usize];
    let mut frames_sent = 0u64;
    let mut alive = vec![true; routers as usize];
    let step = |planes: &mut Vec<ControlPlane>,
                busy: &mut Vec<Duration>,
                alive: &[bool],
                now: u64|
     -> u64 {
        // In order, as one RX queue delivers them (one flow: RSS keeps it on one queue).
        let mut out: std::collections::VecDeque<(usize, Transmit)> = Default::default();
        for (i, p) in planes.iter_mut().enumerate().filter(|(i, _)| alive[*i]) {
            let t = Instant::now();
            let fx = p.on_tick(now);
            busy[i] += t.elapsed();
            out.extend(fx.transmit.into_iter().map(|t| (i, t)));
        }
        let mut sent = 0;
        while let Some((src, t)) = out.pop_front() {
            if t.port != 1 {
                continue;
            }
            sent += 1;
            for (i, p) in planes.iter_mut().enumerate() {
                if i == src || !alive[i] {
                    continue;
                }
                let mut f = t.frame.clone();
                let s = Instant::now();
                let fx = p.on_frame(1, PuntReason::Router, &mut f, now);
                busy[i] += s.elapsed();
                out.extend(fx.transmit.into_iter().map(|t| (i, t)));
            }
        }
        sent
    };
    // Warm-up: listening period, first election, gratuitous ARPs.
    for now in 1..=1000 {
        step(&mut planes, &mut busy, &alive, now);
    }
    busy.iter_mut().for_each(|b| *b = Duration::ZERO);
    let end = 1000 + u64::from(secs) * 1000;
    for now in 1001..=end {
        frames_sent += step(&mut planes, &mut busy, &alive, now);
    }
    let masters = planes[0]
        .role()
        .map_or(0, |r| r.masters_of_this_router().len());
    let per_sec = busy[0].as_secs_f64() * 1e3 / f64::from(secs);
    println!(
        "routers: {routers} routers x {aliases} aliases, 100 ms interval: router r0 spends {per_sec:.2} ms of control thread per second \
         ({:.2} % of one core); {:.1} frames per interval per router; r0 masters {masters}",
        per_sec / 10.0,
        frames_sent as f64 / (f64::from(secs) * 10.0) / f64::from(routers)
    );
    // Takeover: r{last} dies; time the survivors spend until its aliases are placed.
    let dead = routers as usize - 1;
    alive[dead] = false;
    busy.iter_mut().for_each(|b| *b = Duration::ZERO);
    let mut placed_at = None;
    for now in end + 1..=end + 1000 {
        step(&mut planes, &mut busy, &alive, now);
        let held: usize = planes
            .iter()
            .take(dead)
            .filter_map(|p| p.role().map(|r| r.masters_of_this_router().len()))
            .sum();
        if placed_at.is_none() && held == aliases as usize {
            placed_at = Some(now - end);
        }
    }
    println!(
        "routers: after r{dead} died, its aliases were placed {} ms later; r0 spent {:.2} ms of control thread in that second",
        placed_at.map_or("never".into(), |t| t.to_string()),
        busy[0].as_secs_f64() * 1e3
    );
}
