//! Several alias routers (issue 8; CA4, CA5, PH1) through the control plane, the way aliasd
//! drives it, with byte buffers and fake time: each router's router-protocol frames are
//! delivered to the others' interconnect port as classify would punt them, and ARP requests
//! from a client are asked of every router. A "LAN" here is just which routers hear which.

use std::collections::BTreeSet;
use std::sync::Arc;

use clua_ctl::apply::ControlState;
use clua_ctl::command::parse_args;
use clua_ctl::model::{fmt_mac, vmac, Prefix};
use clua_ctl::plane::{ControlPlane, Effects, Start, Transmit};
use clua_ctl::routers::tracker::RouterSettings;
use clua_lb::config::Config;
use clua_pipeline::classify::classify;
use clua_pipeline::{CoreCounters, PuntReason, Verdict};

const GOLDEN: &str = include_str!("fixtures/golden.toml");
const KEY: &[u8] = b"routers test key, long enough";
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const WEB: [u8; 4] = [198, 51, 100, 100];
const TUN: [u8; 4] = [198, 51, 100, 101];
const CLIENT_PORT: u16 = 0;
const IC0: u16 = 1;

fn macs(k: u8) -> Vec<[u8; 6]> {
    vec![[2, 0, 0, 0, k, 1], [2, 0, 0, 0, k, 2], [2, 0, 0, 0, k, 3]]
}

/// Router `k` (1..): client 198.51.100.(1+k), ic0 192.0.2.(1+k), rpri per alias address.
fn state(k: u8, rpri: &[([u8; 4], u32)], vmac_for: &[[u8; 4]]) -> ControlState {
    let mut c = Config::parse(GOLDEN, "golden.toml").unwrap().cluster;
    let addrs = [
        Prefix {
            addr: [198, 51, 100, 1 + k].into(),
            len: 24,
        },
        Prefix {
            addr: [192, 0, 2, 1 + k].into(),
            len: 25,
        },
        Prefix {
            addr: [192, 0, 2, 129 + k].into(),
            len: 25,
        },
    ];
    for (p, a) in c.ports.iter_mut().zip(addrs) {
        p.address = Some(a);
        p.mac = None;
    }
    for a in c.aliases.iter_mut() {
        if let Some((_, r)) = rpri.iter().find(|(addr, _)| a.address.octets() == *addr) {
            a.rpri = *r;
        }
        a.vmac = vmac_for.contains(&a.address.octets());
    }
    ControlState {
        cluster: c,
        services_file: None,
        resvok: false,
    }
}

struct Router {
    name: String,
    plane: ControlPlane,
    boot: u64,
    alive: bool,
    /// Frames sent, with when.
    sent: Vec<(u64, Transmit)>,
}

struct Lan {
    routers: Vec<Router>,
    now: u64,
    /// Pairs of router indexes that cannot hear each other.
    cut: BTreeSet<(usize, usize)>,
}

fn settings(name: &str, boot: u64) -> RouterSettings {
    RouterSettings {
        node: name.into(),
        key: KEY.to_vec(),
        udp_port: 9472,
        interval_ms: 100,
        dead_misses: 3,
        boot_id: boot,
        garp_count: 3,
        garp_interval_ms: 100,
        interconnect: "ic0".into(),
    }
}

fn plane(k: u8, name: &str, boot: u64, st: ControlState, now: u64) -> (ControlPlane, Effects) {
    ControlPlane::start_with(Start {
        state: st,
        macs: macs(k),
        adverts: None,
        routers: Some(settings(name, boot)),
        bfd: None,
        rip: None,
        sync: None,
        wall_clock_ms: 0,
        cores: vec![Arc::new(CoreCounters::new(16))],
        files: Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
        now_ms: now,
    })
    .expect("starts")
}

impl Lan {
    fn new(states: Vec<ControlState>) -> Lan {
        let mut lan = Lan {
            routers: Vec::new(),
            now: 1000,
            cut: BTreeSet::new(),
        };
        for (i, st) in states.into_iter().enumerate() {
            let name = format!("r{}", i + 1);
            let (p, fx) = plane(i as u8 + 1, &name, 1, st, lan.now);
            assert!(
                fx.transmit.is_empty(),
                "a router among several announces nothing before it listened"
            );
            lan.routers.push(Router {
                name,
                plane: p,
                boot: 1,
                alive: true,
                sent: Vec::new(),
            });
        }
        lan
    }

    fn hears(&self, a: usize, b: usize) -> bool {
        !self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Delivers frames `from` sent: router frames on the interconnect to every router that
    /// hears it, through classify as aliasd would.
    fn deliver(&mut self, from: usize, fx: Effects) {
        let now = self.now;
        let mut queue: Vec<(usize, Transmit)> =
            fx.transmit.into_iter().map(|t| (from, t)).collect();
        while let Some((src, t)) = queue.pop() {
            self.routers[src].sent.push((now, t.clone()));
            if t.port != IC0 {
                continue;
            }
            for dst in 0..self.routers.len() {
                if dst == src || !self.routers[dst].alive || !self.hears(src, dst) {
                    continue;
                }
                let r = &mut self.routers[dst];
                let verdict = classify(r.plane.snapshot(), IC0, &t.frame);
                assert_eq!(verdict.err(), Some(Verdict::Punt(PuntReason::Router)));
                let mut f = t.frame.clone();
                let out = r.plane.on_frame(IC0, PuntReason::Router, &mut f, now);
                queue.extend(out.transmit.into_iter().map(|t| (dst, t)));
            }
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now += 10;
            for i in 0..self.routers.len() {
                if self.routers[i].alive {
                    let fx = self.routers[i].plane.on_tick(self.now);
                    self.deliver(i, fx);
                }
            }
        }
    }

    /// The routers that answer a client's ARP request for `target`, with the MAC they give.
    fn answerers(&mut self, target: [u8; 4]) -> Vec<(String, [u8; 6])> {
        let mut out = Vec::new();
        for r in self.routers.iter_mut().filter(|r| r.alive) {
            let mut f = arp_request(target);
            let fx = r
                .plane
                .on_frame(CLIENT_PORT, PuntReason::Arp, &mut f, self.now);
            if fx.reply_in_place {
                let mut mac = [0; 6];
                mac.copy_from_slice(&f[22..28]);
                out.push((r.name.clone(), mac));
            }
        }
        out
    }

    fn names(&mut self, target: [u8; 4]) -> Vec<String> {
        self.answerers(target).into_iter().map(|(n, _)| n).collect()
    }

    fn kill(&mut self, i: usize) {
        self.routers[i].alive = false;
    }

    fn restart(&mut self, i: usize, st: ControlState) {
        let r = &mut self.routers[i];
        r.boot += 1;
        let (p, fx) = plane(i as u8 + 1, &r.name.clone(), r.boot, st, self.now);
        r.plane = p;
        r.alive = true;
        self.deliver(i, fx);
    }

    /// Gratuitous ARPs router `i` sent for `alias` at or after `since`, with their source MAC.
    fn garps(&self, i: usize, alias: [u8; 4], since: u64) -> Vec<(u64, [u8; 6])> {
        self.routers[i]
            .sent
            .iter()
            .filter(|(t, tx)| {
                *t >= since
                    && tx.port == CLIENT_PORT
                    && tx.frame.len() >= 42
                    && tx.frame[12..14] == [0x08, 0x06]
                    && tx.frame[28..32] == alias
                    && tx.frame[38..42] == alias
            })
            .map(|(t, tx)| {
                let mut m = [0; 6];
                m.copy_from_slice(&tx.frame[6..12]);
                (*t, m)
            })
            .collect()
    }
}

fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[198, 51, 100, 10]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f.extend_from_slice(&[0; 18]);
    f
}

/// CA4: only the highest rpri answers; a starting router listens first; the master's death
/// moves the alias within the dead interval; its return with a strictly higher rpri takes it
/// back (PH1); a goodbye moves it at once.
#[test]
fn the_highest_rpri_answers_and_the_survivor_takes_over() {
    let web = |r| state_rpri(&[(WEB, r)]);
    let mut lan = Lan::new(vec![web(100), web(10)]);
    assert!(lan.names(WEB).is_empty(), "nobody answers while listening");
    lan.run(200);
    assert!(lan.names(WEB).is_empty(), "still listening at 200 ms");
    lan.run(200);
    assert_eq!(lan.names(WEB), ["r1"]);
    lan.run(300);
    let since = 1000;
    let g = lan.garps(0, WEB, since);
    assert_eq!(g.len(), 3, "garp_count announcements: {g:?}");
    assert!(
        g.windows(2).all(|w| w[1].0 - w[0].0 >= 100),
        "spaced: {g:?}"
    );
    assert!(
        lan.garps(1, WEB, since).is_empty(),
        "the loser announces nothing"
    );

    // SIGKILL of r1: r2 answers after the dead interval (3 x 100 ms), not before.
    lan.kill(0);
    let killed = lan.now;
    lan.run(200);
    assert!(lan.names(WEB).is_empty());
    lan.run(200);
    assert_eq!(lan.names(WEB), ["r2"]);
    let g = lan.garps(1, WEB, killed);
    assert!(!g.is_empty() && g[0].0 - killed <= 320, "{g:?}");

    // r1 returns with its rpri of 100, strictly higher: it takes the alias back after it
    // listened, and r2 stops at once.
    lan.restart(0, web(100));
    lan.run(500);
    assert_eq!(lan.names(WEB), ["r1"]);

    // Clean shutdown of r1: its goodbye moves the alias to r2 at the next tick.
    let fx = lan.routers[0].plane.shutdown();
    assert!(lan.routers[0]
        .plane
        .arp_view()
        .masters
        .as_ref()
        .unwrap()
        .is_empty());
    lan.deliver(0, fx);
    lan.kill(0);
    lan.run(20);
    assert_eq!(lan.names(WEB), ["r2"]);
}

fn state_rpri(rpri: &[([u8; 4], u32)]) -> ControlState {
    state(0, rpri, &[])
}

/// PH1: a router returning with an equal rpri takes nothing back (no re-balancing).
#[test]
fn an_equal_rpri_does_not_move_an_alias_back() {
    let st = || state_rpri(&[(WEB, 50)]);
    let mut lan = Lan::new(vec![st(), st()]);
    lan.run(500);
    let first = lan.names(WEB);
    assert_eq!(first.len(), 1, "{first:?}");
    let i = if first[0] == "r1" { 0 } else { 1 };
    lan.kill(i);
    lan.run(500);
    let survivor = lan.names(WEB);
    assert_eq!(survivor.len(), 1);
    assert_ne!(survivor, first);
    lan.restart(i, st());
    lan.run(1000);
    assert_eq!(lan.names(WEB), survivor, "stays with the survivor");
}

/// After a partition of the interconnect heals, one master remains within one interval.
#[test]
fn a_healed_partition_leaves_one_master_within_one_interval() {
    let mut lan = Lan::new(vec![
        state_rpri(&[(WEB, 100), (TUN, 10)]),
        state_rpri(&[(WEB, 10), (TUN, 100)]),
    ]);
    lan.run(500);
    assert_eq!(lan.names(WEB), ["r1"]);
    assert_eq!(lan.names(TUN), ["r2"]);
    lan.cut.insert((0, 1));
    lan.run(500);
    // Partitioned, each router thinks the other dead and answers for both (clients on the
    // client LAN still get an answer; the interconnect is what is cut).
    assert_eq!(lan.names(WEB).len(), 2);
    lan.cut.clear();
    lan.run(110);
    assert_eq!(lan.names(WEB), ["r1"]);
    assert_eq!(lan.names(TUN), ["r2"]);
}

/// PH1 with 4 aliases over 3 routers with equal rpri: the router with the fewest aliases gets
/// the next, then interface name, then node name; a dead router's aliases go the same way and
/// stay when it returns.
#[test]
fn placement_follows_the_powerha_rule() {
    let st = || state_rpri(&[]);
    let mut lan = Lan::new(vec![st(), st(), st()]);
    lan.run(500);
    // golden.toml's client-subnet aliases: .99 cluster, .100 web, .101 tun, .102 vx, .103 spare.
    let aliases: Vec<[u8; 4]> = (99..=103).map(|d| [198, 51, 100, d]).collect();
    let placed: Vec<Vec<String>> = aliases.iter().map(|&a| lan.names(a)).collect();
    // In address order, each to the router with the fewest so far, ties by node name.
    let want = [["r1"], ["r2"], ["r3"], ["r1"], ["r2"]];
    for (p, w) in placed.iter().zip(want) {
        assert_eq!(p, &w);
    }
    lan.kill(0);
    lan.run(400);
    // r1's .99 and .102 are placed in address order: r2 kept 2 (.100, .103), r3 kept 1
    // (.101), so .99 goes to r3 (fewest); then both have 2 and the same interface name, so
    // .102 goes to r2 by node name.
    assert_eq!(lan.names(aliases[0]), ["r3"]);
    assert_eq!(lan.names(aliases[3]), ["r2"]);
    for (a, w) in [(1, "r2"), (2, "r3"), (4, "r2")] {
        assert_eq!(lan.names(aliases[a]), [w], "incumbents keep theirs");
    }
    // r1 returns with an equal rpri: nothing moves back.
    lan.restart(0, st());
    lan.run(1000);
    let back: Vec<Vec<String>> = aliases.iter().map(|&a| lan.names(a)).collect();
    assert_eq!(back, [["r3"], ["r2"], ["r3"], ["r2"], ["r2"]]);
}

/// CA5: with a vMAC the ARP reply carries it on whichever router is master, the master's
/// snapshot receives for it, and the new master's announcements come from it.
#[test]
fn the_vmac_follows_the_master() {
    let st = |r| state(0, &[(WEB, r)], &[WEB]);
    let mut lan = Lan::new(vec![st(100), st(10)]);
    lan.run(500);
    let v = vmac(&st(1).cluster.name, WEB.into());
    assert_eq!(v[0] & 0x03, 0x02, "locally administered unicast");
    assert_eq!(lan.answerers(WEB), [("r1".to_string(), v)]);
    assert!(lan.routers[0]
        .plane
        .snapshot()
        .vmacs
        .contains(&(CLIENT_PORT, v)));
    assert!(lan.routers[1].plane.snapshot().vmacs.is_empty());
    lan.kill(0);
    let killed = lan.now;
    lan.run(500);
    assert_eq!(lan.answerers(WEB), [("r2".to_string(), v)]);
    assert!(lan.routers[1]
        .plane
        .snapshot()
        .vmacs
        .contains(&(CLIENT_PORT, v)));
    let g = lan.garps(1, WEB, killed);
    assert!(!g.is_empty() && g.iter().all(|(_, m)| *m == v), "{g:?}");
    // cluamgr -s on both routers: who is master, and the vMAC.
    let show = |lan: &mut Lan, i: usize| {
        let now = lan.now;
        let (reply, _) = lan.routers[i]
            .plane
            .on_command(&parse_args(["-s"]).unwrap(), now);
        assert!(reply.ok);
        reply.output
    };
    let s2 = show(&mut lan, 1);
    assert!(s2.contains("routers: this router r2"), "{s2}");
    assert!(s2.contains("arp master: r2 (this router)"), "{s2}");
    assert!(s2.contains(&format!("vmac: {}", fmt_mac(&v))), "{s2}");
    lan.restart(0, st(100));
    lan.run(500);
    let (s1, s2) = (show(&mut lan, 0), show(&mut lan, 1));
    assert!(s1.contains("arp master: r1 (this router)"), "{s1}");
    assert!(s2.contains("peer r1: boot 2"), "{s2}");
    assert!(s2.contains("arp master: r1\n"), "{s2}");
    // Another alias without a vMAC is answered from the port's MAC.
    let other = lan.answerers(TUN);
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].1, macs(2)[0]);
}

/// Forged and replayed router messages change nothing.
#[test]
fn forged_and_replayed_messages_change_nothing() {
    let mut lan = Lan::new(vec![state_rpri(&[(WEB, 100)]), state_rpri(&[(WEB, 10)])]);
    lan.run(500);
    assert_eq!(lan.names(WEB), ["r1"]);
    // r1 dies; replaying its last announcement to r2 must not keep it alive.
    let last = lan.routers[0]
        .sent
        .iter()
        .rev()
        .find(|(_, t)| t.port == IC0)
        .unwrap()
        .1
        .clone();
    lan.kill(0);
    for _ in 0..10 {
        let mut f = last.frame.clone();
        lan.routers[1]
            .plane
            .on_frame(IC0, PuntReason::Router, &mut f, lan.now);
        let mut forged = last.frame.clone();
        let n = forged.len();
        forged[n - 40] ^= 1; // inside the signed part (the UDP checksum is not checked)
        lan.routers[1]
            .plane
            .on_frame(IC0, PuntReason::Router, &mut forged, lan.now);
        lan.run(40);
    }
    assert_eq!(lan.names(WEB), ["r2"]);
    let status = lan.routers[1].plane.counters().routers().unwrap();
    assert!(status.counters.replayed >= 10, "{status:?}");
    assert!(
        status
            .counters
            .refusals()
            .any(|(n, c)| n == "bad_tag" && c >= 10),
        "{status:?}"
    );
    assert_eq!(status.peers, 0);
}

/// More aliases than fit one frame: each interval's announcement is split over several
/// messages within the interconnect MTU, and the election still sees every alias.
#[test]
fn many_aliases_are_announced_over_several_frames() {
    let many = |odd_wins: bool| {
        let mut st = state_rpri(&[]);
        st.cluster.max_aliases = 1000;
        for d in 110..=249u8 {
            let addr = std::net::Ipv4Addr::new(198, 51, 100, d);
            let mut a = st.cluster.aliases[1].clone();
            a.name = format!("a{d}");
            a.address = addr;
            a.members.clear();
            a.rpri = if (d % 2 == 1) == odd_wins { 100 } else { 10 };
            st.cluster.aliases.push(a);
        }
        st
    };
    let mut lan = Lan::new(vec![many(false), many(true)]);
    lan.run(600);
    for d in 110..=249u8 {
        let want = if d % 2 == 1 { "r2" } else { "r1" };
        assert_eq!(lan.names([198, 51, 100, d]), [want], ".{d}");
    }
    let frames: Vec<&Transmit> = lan.routers[0]
        .sent
        .iter()
        .filter(|(_, t)| t.port == IC0)
        .map(|(_, t)| t)
        .collect();
    assert!(
        frames.iter().all(|t| t.frame.len() <= 14 + 1600),
        "within the ic0 MTU"
    );
    assert!(
        frames.iter().any(|t| t.frame.len() > 1400),
        "big messages are used"
    );
    let per_interval = frames.len() as f64 / 6.0;
    assert!(per_interval >= 2.0, "{per_interval} messages per interval");
}

/// BFD (RFC 5880/5881) between a router and its upstream, through the control plane: the
/// punted frames of the upstream reach the plane as classify punts them, the session comes
/// Up on both sides, and the router's clean shutdown takes the upstream's session down at once
/// (AdminDown) instead of after its detection time.
#[test]
fn bfd_with_the_upstream_comes_up_and_goes_down_at_shutdown() {
    use clua_ctl::bfd::{Bfd, BfdPeer, BfdSettings, BfdState};
    let up_mac = [2, 0, 0, 0, 0, 0x20];
    let up_addr = std::net::Ipv4Addr::new(198, 51, 100, 1);
    let router_addr = std::net::Ipv4Addr::new(198, 51, 100, 2);
    let st = state(1, &[], &[]);
    let settings = BfdSettings {
        peers: vec![BfdPeer {
            port: CLIENT_PORT,
            local_mac: macs(1)[0],
            local_addr: router_addr,
            peer_addr: up_addr,
        }],
        ..BfdSettings::default()
    };
    let (mut plane, _) = ControlPlane::start_with(Start {
        state: st,
        macs: macs(1),
        adverts: None,
        routers: None,
        bfd: Some((settings, 7)),
        rip: None,
        sync: None,
        wall_clock_ms: 0,
        cores: vec![Arc::new(CoreCounters::new(16))],
        files: Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
        now_ms: 0,
    })
    .unwrap();
    assert!(plane.snapshot().control.bfd, "classify punts BFD now");
    let mut upstream = Bfd::new(
        BfdSettings {
            peers: vec![BfdPeer {
                port: 0,
                local_mac: up_mac,
                local_addr: up_addr,
                peer_addr: router_addr,
            }],
            ..BfdSettings::default()
        },
        99,
        0,
    );
    upstream.set_peer_mac(router_addr, macs(1)[0]);
    let mut to_router: Vec<Vec<u8>> = Vec::new();
    for now in (0..5000).step_by(10) {
        for mut f in std::mem::take(&mut to_router) {
            assert_eq!(
                classify(plane.snapshot(), CLIENT_PORT, &f).err(),
                Some(Verdict::Punt(PuntReason::Bfd))
            );
            let fx = plane.on_frame(CLIENT_PORT, PuntReason::Bfd, &mut f, now);
            for t in fx.transmit {
                to_router.extend(
                    upstream
                        .on_frame(0, &t.frame, now)
                        .into_iter()
                        .map(|t| t.frame),
                );
            }
        }
        for t in plane.on_tick(now).transmit {
            to_router.extend(
                upstream
                    .on_frame(0, &t.frame, now)
                    .into_iter()
                    .map(|t| t.frame),
            );
        }
        to_router.extend(upstream.on_tick(now).into_iter().map(|t| t.frame));
    }
    let ours: Vec<_> = plane.bfd().unwrap().sessions().collect();
    assert_eq!(ours[0].state, BfdState::Up, "{ours:?}");
    assert_eq!(upstream.sessions().next().unwrap().state, BfdState::Up);
    let status = plane.counters().bfd().unwrap();
    assert_eq!(status.sessions, vec![(up_addr, true)]);
    assert!(status.counters.received > 10);
    let (reply, _) = plane.on_command(&parse_args(["-s"]).unwrap(), 5000);
    assert!(
        reply
            .output
            .contains("bfd peer 198.51.100.1 from 198.51.100.2: up (peer says up)"),
        "{}",
        reply.output
    );
    // SIGTERM: AdminDown reaches the upstream at once.
    for t in plane.shutdown().transmit {
        upstream.on_frame(0, &t.frame, 5001);
    }
    assert_eq!(upstream.sessions().next().unwrap().state, BfdState::Down);
}

/// RIPv2 through the control plane (CA6): at start a triggered update carries a host route
/// per alias; a whole-table request from the upstream is answered to it; a virtual alias with
/// a mask adds its network route once a command says so; shutdown withdraws every route with
/// metric 16 at once.
#[test]
fn rip_advertises_the_aliases_and_withdraws_them_at_shutdown() {
    use clua_ctl::rip::wire::{parse_frame, Command as RipCommand, RipPacket, RipRepr};
    use clua_ctl::rip::{RipMode, RipPort, RipSettings};
    let st = state(1, &[], &[]);
    let settings = RipSettings {
        ports: vec![RipPort {
            port: CLIENT_PORT,
            mac: macs(1)[0],
            addr: [198, 51, 100, 2].into(),
            prefix_len: 24,
            mode: RipMode::Broadcast,
        }],
        ..RipSettings::default()
    };
    let (mut plane, fx) = ControlPlane::start_with(Start {
        state: st,
        macs: macs(1),
        adverts: None,
        routers: None,
        bfd: None,
        rip: Some((settings, 3)),
        sync: None,
        wall_clock_ms: 1_800_000_000_000,
        cores: vec![Arc::new(CoreCounters::new(16))],
        files: Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
        now_ms: 0,
    })
    .unwrap();
    assert!(plane.snapshot().control.rip);
    let routes_in = |frames: &[Transmit]| -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for t in frames.iter().filter(|t| t.port == CLIENT_PORT) {
            let Ok(info) = parse_frame(&t.frame) else {
                continue;
            };
            if info.dst_port != 520 {
                continue;
            }
            let p = RipPacket::new_checked(&t.frame[info.payload.clone()]).unwrap();
            let r = RipRepr::parse(&p).unwrap();
            assert_eq!(r.command, RipCommand::Response);
            for e in r.entries {
                let len = u32::from(e.mask).leading_ones();
                out.push((format!("{}/{len}", e.addr), e.metric));
            }
        }
        out.sort();
        out
    };
    // golden.toml: five aliases in 198.51.100.0/24, none virtual; "spare" (.103) has no
    // member, so nothing would serve traffic routed to it: not advertised.
    let first = routes_in(&fx.transmit);
    let mut want: Vec<(String, u32)> = (99..=102)
        .map(|d| (format!("198.51.100.{d}/32"), 1))
        .collect();
    want.sort();
    assert_eq!(first, want);
    // A whole-table request (RFC 2453 3.9.1) from the upstream, by hand.
    let mut req = Vec::new();
    req.extend_from_slice(&macs(1)[0]);
    req.extend_from_slice(&[2, 0, 0, 0, 0, 0x20, 0x08, 0x00]);
    let rip = [&[1u8, 2, 0, 0][..], &[0, 0, 0, 0], &[0; 12], &[0, 0, 0, 16]].concat();
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 1, 17, 0, 0, 198, 51, 100, 1, 198, 51, 100, 2,
    ];
    let total = (20 + 8 + rip.len()) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let c = clua_pipeline::wire::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    req.extend_from_slice(&ip);
    let mut udp = vec![2, 8, 2, 8, 0, 0, 0, 0];
    udp[4..6].copy_from_slice(&((8 + rip.len()) as u16).to_be_bytes());
    let mut seg = udp.clone();
    seg.extend_from_slice(&rip);
    let sum = clua_pipeline::wire::checksum::pseudo_header(
        [198, 51, 100, 1].into(),
        [198, 51, 100, 2].into(),
        17,
        seg.len() as u16,
    );
    use clua_pipeline::wire::checksum as ck;
    let c = !ck::fold(ck::combine(&[sum, ck::sum(&seg)]));
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    req.extend_from_slice(&seg);
    assert_eq!(
        classify(plane.snapshot(), CLIENT_PORT, &req).err(),
        Some(Verdict::Punt(PuntReason::Rip))
    );
    let fx = plane.on_frame(CLIENT_PORT, PuntReason::Rip, &mut req, 10);
    assert_eq!(
        routes_in(&fx.transmit),
        want,
        "the whole table, to the requester"
    );
    assert_eq!(&fx.transmit[0].frame[..6], &[2, 0, 0, 0, 0, 0x20]);
    // A virtual alias with a mask: a triggered update adds its network route.
    let (reply, fx) = plane.on_command(
        &parse_args([
            "-a",
            "alias=203.0.113.10,virtual,mask=255.255.255.128,join",
            "--member",
            "m1",
        ])
        .unwrap(),
        2000,
    );
    assert!(reply.ok, "{}", reply.output);
    let added = routes_in(&fx.transmit);
    assert!(added.contains(&("203.0.113.0/25".into(), 1)), "{added:?}");
    assert!(added.contains(&("203.0.113.10/32".into(), 1)), "{added:?}");
    let (reply, _) = plane.on_command(&parse_args(["-s"]).unwrap(), 2001);
    assert!(
        reply.output.contains("rip: 6 routes advertised"),
        "{}",
        reply.output
    );
    assert!(
        reply
            .output
            .contains("rip: advertised 203.0.113.0/25, 203.0.113.10/32"),
        "{}",
        reply.output
    );
    // The last member leaving an alias withdraws its routes (metric 16) at once.
    let (reply, fx) = plane.on_command(
        &parse_args(["-a", "alias=203.0.113.10,leave", "--member", "m1"]).unwrap(),
        9000,
    );
    assert!(reply.ok, "{}", reply.output);
    let withdrawn = routes_in(&fx.transmit);
    assert_eq!(
        withdrawn,
        [
            ("203.0.113.0/25".to_string(), 16),
            ("203.0.113.10/32".to_string(), 16)
        ]
    );
    // SIGTERM: every route with metric 16, at once (the two withdrawn still go out with 16
    // until garbage collection).
    let gone = routes_in(&plane.shutdown().transmit);
    assert_eq!(gone.len(), 6, "{gone:?}");
    assert!(gone.iter().all(|(_, m)| *m == 16), "{gone:?}");
    let status = plane.counters().rip().unwrap();
    assert!(status.counters.requests_answered >= 1);
}
