//! `clua-bench advert`: what the member protocol costs the router's control thread.
//!
//! Measures (1) verifying and applying one advert (HMAC-SHA-256 over the datagram, parse,
//! replay check, liveness update) for a member of 4 aliases listening on 8 ports, and (2) the
//! work an advert that changes something triggers: mapping member state into the model,
//! validation and a new snapshot, for a cluster of N members and A aliases. Adverts are a few
//! per member per second, so (1) × members × rate is the steady-state cost.

use std::net::Ipv4Addr;
use std::time::Instant;

use clua_ctl::advert::{AdvertKind, AdvertRepr, AliasEntry};
use clua_ctl::members::Liveness;
use clua_ctl::model::Proto;
use clua_lb::config::Config;

pub fn run(members: u32, aliases: u32, n: u32) {
    let key = b"bench-key-0123456789abcdef".to_vec();
    let names: Vec<String> = (0..members).map(|i| format!("m{i}")).collect();
    let repr = |node: &str, seq: u64| AdvertRepr {
        kind: AdvertKind::Advert,
        node: node.into(),
        boot_id: 1_700_000_000_000,
        seq,
        interval_ms: 1000,
        aliases: (0..4)
            .map(|i| AliasEntry {
                addr: Ipv4Addr::new(198, 51, 100, 100 + i),
                joined: true,
                selw: 1,
                selp: 1,
            })
            .collect(),
        ports: (0..8).map(|i| (Proto::Tcp, 8000 + i)).collect(),
        out_alias: None,
    };
    let datagrams: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            repr(&names[(i % members) as usize], 1 + u64::from(i / members))
                .emit_signed(&key)
                .unwrap()
        })
        .collect();
    let mut live = Liveness::new(&names, 3);
    let t = Instant::now();
    let mut accepted = 0;
    for (i, d) in datagrams.iter().enumerate() {
        if matches!(
            live.on_datagram(d, &key, i as u64),
            clua_ctl::members::AdvertOutcome::Accepted { .. }
        ) {
            accepted += 1;
        }
    }
    let per = t.elapsed().as_nanos() as f64 / f64::from(n);
    assert_eq!(accepted, n, "every advert must be accepted");
    println!(
        "advert verify+apply: {per:.0} ns each ({} bytes, {:.2} M adverts/s on one core)",
        datagrams[0].len(),
        1e3 / per
    );

    // A cluster of `members` agent members and `aliases` aliases: rebuild cost per change.
    let mut toml = String::from(
        "[cluster]\nname = \"bench\"\ndefault_alias = \"a0\"\nmax_aliases = 102400\n\
         [[port]]\nname = \"client\"\ndevargs = \"net_null0\"\nrole = \"client\"\naddress = \"198.51.100.2/24\"\n\
         [[port]]\nname = \"ic0\"\ndevargs = \"net_null1\"\nrole = \"interconnect\"\naddress = \"192.0.2.2/24\"\n",
    );
    for i in 0..members {
        toml += &format!(
            "[[member]]\nname = \"m{i}\"\nport = \"ic0\"\naddress = \"192.0.2.{}\"\nmac = \"02:00:00:00:{:02x}:{:02x}\"\n",
            10 + i % 200,
            i / 256,
            i % 256
        );
    }
    for i in 0..aliases {
        toml += &format!(
            "[[alias]]\nname = \"a{i}\"\naddress = \"{}\"\n",
            Ipv4Addr::from(0x6440_0000u32 + i + 1)
        );
    }
    let c = Config::parse(&toml, "bench.toml").unwrap();
    let macs = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
    let rounds = 20;
    let t = Instant::now();
    for g in 0..rounds {
        let mut next = c.cluster.clone();
        next.members[g % members as usize].up ^= true;
        next.validate().unwrap();
        std::hint::black_box(next.snapshot(g as u64 + 2, &macs).unwrap());
    }
    let per = t.elapsed().as_secs_f64() * 1e3 / f64::from(rounds as u32);
    println!("state change -> validated model -> new snapshot: {per:.2} ms ({members} members, {aliases} aliases)");
}
