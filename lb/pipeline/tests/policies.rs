//! Property tests of the load-balancing policies at the selection level (issue 9; SC1–SC3, seed
//! 004), over the snapshot's real per-port Maglev tables (4,099 entries for small tiers, not the
//! 65,537 of tests/maglev.rs): `weighted` gives each member its selw share of 1 M new flows
//! within 1 %, and so do `sticky`'s first choices of 1 M client addresses; when one of N
//! members goes down, at most 1/N + 1 % of the other members' flows (clients) move.
//!
//! tests/maglev.rs proves the same of the table alone; this checks that select really uses it:
//! the right table (the port schedule's), under the fixed key, with the flow (or client) hash.

use std::net::Ipv4Addr;

use clua_pipeline::classify::{PacketMeta, TCP_SYN};
use clua_pipeline::hash::{FlowHashKey, FlowKey};
use clua_pipeline::select::{Selection, Selector, Timeouts};
use clua_pipeline::snapshot::{ServicePolicy, ServiceSpec};
use clua_pipeline::{
    AliasMember, CoreCounters, Encap, Member, MemberId, Policy, PortInfo, PortRole, ServiceMode,
    Snapshot,
};

const FLOWS: u32 = 1_000_000;
const ALIAS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

const T: Timeouts = Timeouts {
    tcp_idle_ms: 300_000,
    tcp_closing_ms: 10_000,
    tcp_half_open_ms: 5_000,
    sticky_ms: 300_000,
};

/// One alias over members with `weights` (ids 0..n), `down` down; tcp/80 in_multi with
/// `policy`.
fn snap(weights: &[u32], down: Option<u32>, policy: Policy) -> Snapshot {
    let port = |name: &str, role, last| PortInfo {
        name: name.into(),
        role,
        mac: [2, 0, 0, 0, 0, last],
        ipv4: Some(Ipv4Addr::new(192, 0, 2, last)),
        prefix_len: 24,
        mtu: 1500,
        flow_source: None,
    };
    let members = (0..weights.len() as u32)
        .map(|i| {
            Some(Member {
                id: MemberId(i),
                name: format!("m{i}"),
                port: 1,
                mac: [2, 0, 0, 0, 1, i as u8],
                ipv4: Ipv4Addr::new(192, 0, 2, 10 + i as u8),
                encap: Encap::L2,
                up: Some(i) != down,
                listening: None,
            })
        })
        .collect();
    let ams = weights
        .iter()
        .enumerate()
        .map(|(i, &selw)| AliasMember {
            member: MemberId(i as u32),
            selw,
            selp: 1,
        })
        .collect();
    Snapshot::build(
        1,
        vec![
            port("client", PortRole::Client, 1),
            port("ic0", PortRole::Interconnect, 2),
        ],
        members,
        vec![("web".into(), ALIAS, ams)],
        &[ServiceSpec {
            proto: 6,
            port: 80,
            mode: ServiceMode::InMulti,
        }],
    )
    .unwrap()
    .with_policies(&[ServicePolicy {
        proto: 6,
        port: 80,
        policy,
    }])
    .unwrap()
}

/// splitmix64, so failures reproduce.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `i`-th new connection: a SYN from a random client address and port (`distinct_clients`:
/// client `i` is its own address; else a few thousand addresses share the flows).
fn syn(i: u32, distinct_clients: bool) -> PacketMeta {
    let r = mix(u64::from(i));
    let src = if distinct_clients {
        0x0a00_0000 | i
    } else {
        0x0a00_0000 | (r as u32 & 0xfff)
    };
    let key = FlowKey {
        src,
        dst: u32::from(ALIAS),
        src_port: 1024 + (r >> 32) as u16 % 60_000,
        dst_port: 80,
        proto: 6,
    };
    PacketMeta {
        key,
        hash: key.hash_keyed(&FlowHashKey::FIXED),
        tcp_flags: TCP_SYN,
        tcp_seq: 1,
        ..PacketMeta::default()
    }
}

/// The member of each of the FLOWS new connections under `s` (a small table: the SYNs are
/// half-open and evict one another, as in a flood; selection does not depend on it).
fn members_of(s: &Snapshot, distinct_clients: bool) -> Vec<u32> {
    let mut sel = Selector::new(1024, T, s);
    let c = CoreCounters::new(8);
    (0..FLOWS)
        .map(|i| match sel.select(s, &syn(i, distinct_clients), 0, &c) {
            Selection::Member { member, .. } => member.0,
            other => panic!("flow {i}: {other:?}"),
        })
        .collect()
}

fn check_shares(weights: &[u32], policy: Policy, distinct_clients: bool) {
    let got = members_of(&snap(weights, None, policy), distinct_clients);
    let total: u32 = weights.iter().sum();
    for (m, &w) in weights.iter().enumerate() {
        let share = got.iter().filter(|&&x| x == m as u32).count() as f64 / f64::from(FLOWS);
        let want = f64::from(w) / f64::from(total);
        assert!(
            (share - want).abs() <= 0.01,
            "{policy:?} {weights:?}: member {m} has {share:.4}, selw share {want:.4}"
        );
    }
}

fn check_disruption(weights: &[u32], policy: Policy, distinct_clients: bool) {
    let before = members_of(&snap(weights, None, policy), distinct_clients);
    let n = weights.len() as u32;
    for gone in [0, n - 1] {
        let after = members_of(&snap(weights, Some(gone), policy), distinct_clients);
        let others = before.iter().filter(|&&m| m != gone).count();
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(&b, &a)| b != gone && a != b)
            .count();
        assert!(
            after.iter().all(|&m| m != gone),
            "a down member gets nothing"
        );
        let frac = moved as f64 / others as f64;
        let bound = 1.0 / f64::from(n) + 0.01;
        assert!(
            frac <= bound,
            "{policy:?} {weights:?} m{gone} down: {frac:.4} of the others' flows moved (bound {bound:.4})"
        );
    }
}

/// SC1: `weighted` new flows follow selw within 1 % over 1 M flows.
#[test]
fn weighted_shares_follow_the_weights() {
    check_shares(&[3, 2, 1], Policy::Weighted, false);
    check_shares(&[1, 1, 1, 1, 1], Policy::Weighted, false);
}

/// SC2: `sticky` first choices (one per client address) follow selw within 1 % over 1 M
/// clients.
#[test]
fn sticky_first_choices_follow_the_weights() {
    check_shares(&[3, 2, 1], Policy::Sticky, true);
}

/// Issue 9: one of N members going moves at most 1/N + 1 % of the other members' flows.
#[test]
fn weighted_member_down_moves_few_other_flows() {
    check_disruption(&[1, 1, 1, 1], Policy::Weighted, false);
    check_disruption(&[5, 3, 2, 1, 1], Policy::Weighted, false);
}

/// The same for sticky clients without an affinity yet (their first choices).
#[test]
fn sticky_member_down_moves_few_other_clients() {
    check_disruption(&[2, 1, 1], Policy::Sticky, true);
}
