//! Issue 10: health of static members through [`ControlPlane`], as aliasd drives it: ticks
//! with fake time, ARP and punted TCP (`PuntReason::Probe`) in, probe frames and snapshots out.
//! A static member that stops answering is taken out of selection after `fails` probes (CA3)
//! and comes back after `rises`.
//!
//! The cluster: a client port and interconnect ic0 (192.0.2.2/24); static members m1 (ARP
//! check) and m2 (TCP check on port 80), both with configured MACs, joined to web (tcp/80
//! in_multi).

use std::net::Ipv4Addr;

use clua_ctl::apply::ControlState;
use clua_ctl::command::parse_args;
use clua_ctl::members::health::{HealthCheck, HealthSpec, ProbeResult};
use clua_ctl::model::{AliasSpec, Cluster, JoinSpec, Mac, MemberMac, MemberSpec, PortSpec, Prefix};
use clua_ctl::plane::{Cause, ControlPlane, Event};
use clua_pipeline::snapshot::{Encap, MemberId, PortRole};
use clua_pipeline::wire::ipv4::Ipv4Packet;
use clua_pipeline::wire::tcp::TcpPacket;
use clua_pipeline::PuntReason;

const CLIENT_PORT_MAC: Mac = [2, 0, 0, 0, 0, 1];
const IC0_MAC: Mac = [2, 0, 0, 0, 0, 2];
const IC0: u16 = 1;
const ROUTER_IC: [u8; 4] = [192, 0, 2, 2];
const M1: [u8; 4] = [192, 0, 2, 11];
const M2: [u8; 4] = [192, 0, 2, 12];
const M1_MAC: Mac = [2, 0, 0, 0, 1, 1];
const M2_MAC: Mac = [2, 0, 0, 0, 1, 2];

fn state() -> ControlState {
    let port = |name: &str, role, addr: &str| PortSpec {
        name: name.into(),
        role,
        address: Some(addr.parse::<Prefix>().unwrap()),
        mtu: 1500,
        mac: None,
        flow_source: None,
    };
    let member = |name: &str, addr: [u8; 4], mac| MemberSpec {
        name: name.into(),
        port: "ic0".into(),
        address: addr.into(),
        mac: MemberMac::Configured(mac),
        encap: Encap::L2,
        up: true,
        agent: false,
        listening: None,
        out_alias: None,
    };
    let join = |m: &str| JoinSpec {
        member: m.into(),
        selw: 1,
        selp: 1,
        joined: true,
    };
    let cluster = Cluster {
        name: "t".into(),
        default_alias: "web".into(),
        max_aliases: 8,
        ports: vec![
            port("client", PortRole::Client, "198.51.100.2/24"),
            port("ic0", PortRole::Interconnect, "192.0.2.2/24"),
        ],
        members: vec![member("m1", M1, M1_MAC), member("m2", M2, M2_MAC)],
        aliases: vec![AliasSpec {
            name: "web".into(),
            address: Ipv4Addr::new(198, 51, 100, 100),
            members: vec![join("m1"), join("m2")],
            rpri: 1,
            virtual_subnet: false,
            mask: None,
            vmac: false,
        }],
        services: vec![],
        advert_port: 0,
    };
    cluster.validate().expect("test cluster is valid");
    ControlState {
        cluster,
        services_file: None,
        resvok: false,
    }
}

fn start() -> ControlPlane {
    let (mut p, _) = ControlPlane::start(
        state(),
        vec![CLIENT_PORT_MAC, IC0_MAC],
        None,
        vec![],
        Box::new(|_| Err(std::io::ErrorKind::NotFound.into())),
    )
    .unwrap();
    let spec = |m: &str, check| HealthSpec {
        member: m.into(),
        check,
        interval_ms: 100,
        fails: 3,
        rises: 2,
    };
    p.set_health(
        &[
            spec("m1", HealthCheck::Arp),
            spec("m2", HealthCheck::Tcp(80)),
        ],
        42,
    );
    p
}

/// An ARP reply from `sha`/`spa` to the router, padded to 60 bytes.
fn arp_reply(sha: Mac, spa: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&IC0_MAC);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&IC0_MAC);
    f.extend_from_slice(&ROUTER_IC);
    f.extend_from_slice(&[0; 18]);
    f
}

/// The member's SYN-ACK to a probe SYN (checksums filled by the pipeline's encoders).
fn syn_ack(syn: &[u8]) -> Vec<u8> {
    use clua_pipeline::wire::ethernet::{EtherType, EthernetFrame, EthernetRepr};
    use clua_pipeline::wire::ipv4::{protocol, Ipv4Repr};
    use clua_pipeline::wire::tcp::{TcpFlags, TcpRepr};
    let ip = Ipv4Packet::new_checked(&syn[14..]).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    let mut f = vec![0u8; 54];
    EthernetRepr {
        src_addr: M2_MAC,
        dst_addr: IC0_MAC,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    TcpRepr {
        src_port: 80,
        dst_port: tcp.src_port(),
        seq_number: 1000,
        ack_number: tcp.seq_number().wrapping_add(1),
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window_len: 64240,
    }
    .emit(
        &mut TcpPacket::new_unchecked(&mut f[34..]),
        M2.into(),
        ROUTER_IC.into(),
    );
    Ipv4Repr {
        src_addr: M2.into(),
        dst_addr: ROUTER_IC.into(),
        next_header: protocol::TCP,
        payload_len: 20,
        hop_limit: 64,
        dscp_ecn: 0,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
    f
}

fn up(p: &ControlPlane, id: u32) -> bool {
    p.snapshot().member(MemberId(id)).unwrap().up
}

/// Ticks every 10 ms over `[from, to)`; the members answer while `m1_alive` / `m2_alive`.
/// Returns the causes of the generations published, with their time.
fn run(
    p: &mut ControlPlane,
    from: u64,
    to: u64,
    m1_alive: bool,
    m2_alive: bool,
) -> Vec<(u64, Cause)> {
    let mut gens = Vec::new();
    let mut t = from;
    while t < to {
        let fx = p.on_tick(t);
        let mut replies = Vec::new();
        for tx in &fx.transmit {
            let f = &tx.frame;
            if f[12..14] == [0x08, 0x06] && f[38..42] == M1 && m1_alive {
                replies.push((PuntReason::Arp, arp_reply(M1_MAC, M1)));
            }
            if f[12..14] == [0x08, 0x00] && f[30..34] == M2 && f[47] == 0x02 && m2_alive {
                replies.push((PuntReason::Probe, syn_ack(f)));
            }
        }
        let mut all = vec![fx];
        for (reason, mut r) in replies {
            all.push(p.on_frame(IC0, reason, &mut r, t));
        }
        for fx in all {
            for e in fx.events {
                if let Event::Generation { cause, .. } = e {
                    gens.push((t, cause));
                }
            }
        }
        t += 10;
    }
    gens
}

#[test]
fn a_silent_static_member_leaves_selection_after_fails_probes_and_returns_after_rises() {
    let mut p = start();
    assert!(
        run(&mut p, 0, 1000, true, true).is_empty(),
        "answered: no change"
    );
    assert!(up(&p, 0) && up(&p, 1));
    // m1 stops answering ARP at 1000: probes at 1000, 1100, 1200 time out, down at 1300.
    let gens = run(&mut p, 1000, 2000, false, true);
    assert_eq!(gens, [(1300, Cause::Health)]);
    assert!(!up(&p, 0) && up(&p, 1));
    let web = &p.snapshot().aliases[0];
    assert!(
        !web.multi_schedule.contains(&MemberId(0)),
        "no new flows to m1 (CA3)"
    );
    // m2's port closes at 2000 too.
    let gens = run(&mut p, 2000, 3000, false, false);
    assert_eq!(gens, [(2300, Cause::Health)]);
    assert!(!up(&p, 1));
    // Both back at 3000: the probes at 3000 and 3100 answered, both up at 3100, one generation
    // per answer that crosses the threshold.
    let gens = run(&mut p, 3000, 4000, true, true);
    assert_eq!(gens, [(3100, Cause::Health), (3100, Cause::Health)]);
    assert!(up(&p, 0) && up(&p, 1));
    let m1 = p.health().member("m1").unwrap();
    assert_eq!((m1.up, m1.fails), (true, 0));
    assert!(m1.probes(ProbeResult::Timeout) >= 3);
    let m2 = p.counters().health();
    assert_eq!(m2[1].member, "m2");
    assert!(m2[1].probes(ProbeResult::Ok) > 10);
}

#[test]
fn syn_acks_are_reset_and_stray_probe_punts_are_unexpected() {
    let mut p = start();
    let fx = p.on_tick(0);
    let syn = fx
        .transmit
        .iter()
        .find(|t| t.frame[12..14] == [0x08, 0x00])
        .expect("a SYN to m2")
        .frame
        .clone();
    let mut sa = syn_ack(&syn);
    let fx = p.on_frame(IC0, PuntReason::Probe, &mut sa, 5);
    assert_eq!(fx.transmit.len(), 1, "the RST");
    let rst = &fx.transmit[0].frame;
    assert_eq!(rst[..6], M2_MAC);
    assert_eq!(rst[47], 0x04, "RST");
    // The same SYN-ACK again matches no probe in flight.
    let fx = p.on_frame(IC0, PuntReason::Probe, &mut sa, 6);
    assert!(fx.transmit.is_empty());
    assert_eq!(
        p.counters()
            .unexpected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn health_down_survives_commands_and_shows_in_cluamgr_s() {
    let mut p = start();
    run(&mut p, 0, 500, false, true);
    assert!(!up(&p, 0));
    // A command rebuilds the model from the state in force: m1 stays down.
    let cmd = parse_args(["-a", "alias=web,selw=2", "--member", "m2"]).unwrap();
    let (reply, _) = p.on_command(&cmd, 500);
    assert!(reply.ok, "{}", reply.output);
    assert!(
        !up(&p, 0),
        "a command does not bring a member up its probes took down"
    );
    let (reply, _) = p.on_command(&parse_args(["-s"]).unwrap(), 510);
    let line = |m: &str| {
        reply
            .output
            .lines()
            .find(|l| l.trim_start().starts_with(m) && l.contains("health:"))
            .unwrap_or_else(|| panic!("no health for {m} in\n{}", reply.output))
            .to_string()
    };
    assert!(
        line("m1").ends_with("health: down (arp), 5 fails"),
        "{}",
        line("m1")
    );
    assert!(
        line("m2").ends_with("health: up (tcp:80), 0 fails"),
        "{}",
        line("m2")
    );
}
