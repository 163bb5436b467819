//! Health of static members (issue 10, CA3): a member without the agent sends no adverts, so
//! the router probes it itself and takes it out of selection after `fails` failed probes in a
//! row, back in after `rises` good ones (keepalived's `retry` and `alpha`-less rise, IPVS's
//! real-server state). Sans-I/O like [`crate::neighbors`]: ARP packets, punted probe replies
//! and `now` in; probe frames, events and the members' up state out ([`Health::apply`] writes
//! it into the model the snapshot is built from).
//!
//! Checks, per member (`[[member]] health`, docs/aliasd.toml.md):
//!
//! | check | probe every `interval_ms` | success | failure |
//! | --- | --- | --- | --- |
//! | `arp` | ARP request for the member's address on its port: unicast to its MAC while it answers, broadcast after a failure | any ARP packet from the member (its address, its port, a unicast sender MAC) before the next probe | none by the next probe |
//! | `tcp:PORT` | TCP SYN from the router's interconnect address, source port in [`PROBE_PORTS`], to PORT | SYN-ACK for that SYN (answered with RST, so the member keeps no half-open socket) | RST (host up, port closed; at once), or nothing by the next probe, or no MAC known to send to |
//! | `none` | nothing | - | - |
//!
//! Invariants:
//! - Entries exist only for configured members with a check, made once by [`Health::new`]: no
//!   packet adds one; a reply counts only for the probe in flight (its port, source port and
//!   sequence number for TCP), at most once.
//! - One probe in flight per member: a probe is sent only when the previous one was answered
//!   or counted as failed, so every probe is counted exactly once, ok or failed.
//! - Every member starts up (as static members always have): the first `fails` probes decide.
//! - The model changes only when a member crosses a threshold (up → down or down → up), so
//!   probe traffic alone never rebuilds a snapshot.

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use clua_pipeline::snapshot::{MemberId, PortId, Snapshot, PROBE_PORTS};
use clua_pipeline::wire::checksum::ChecksumCapabilities;
use clua_pipeline::wire::ethernet::{parse_l2, EtherType, EthernetFrame, EthernetRepr, BROADCAST};
use clua_pipeline::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use clua_pipeline::wire::tcp::{TcpFlags, TcpPacket, TcpRepr};

use crate::apply::ControlState;
use crate::arp::{request, ARP_FRAME_LEN};
use crate::model::Cluster;

/// Probe interval when `health_interval_ms` is not given.
pub const DEFAULT_INTERVAL_MS: u64 = 500;
/// Consecutive failed probes before a member is down, when `health_fails` is not given.
pub const DEFAULT_FAILS: u32 = 3;
/// Consecutive good probes before a down member is up again, when `health_rises` is not given.
pub const DEFAULT_RISES: u32 = 2;
/// Accepted `health_interval_ms`.
pub const INTERVAL_MS: std::ops::RangeInclusive<u64> = 50..=60_000;
/// Accepted `health_fails` and `health_rises`.
pub const THRESHOLD: std::ops::RangeInclusive<u32> = 1..=100;

/// Ethernet + IPv4 + TCP (no options) bytes of a probe frame.
pub const TCP_FRAME_LEN: usize = 14 + 20 + 20;

/// How a member is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HealthCheck {
    /// Not probed: up as configured.
    None,
    /// ARP on the interconnect.
    Arp,
    /// A TCP SYN to this port (keepalived TCP_CHECK without the connect).
    Tcp(u16),
}

impl HealthCheck {
    /// Parses `none`, `arp` or `tcp:PORT` (PORT 1..=65535).
    ///
    /// # Errors
    /// [`HealthCheckError`] for anything else.
    pub fn parse(s: &str) -> Result<HealthCheck, HealthCheckError> {
        match s {
            "none" => Ok(HealthCheck::None),
            "arp" => Ok(HealthCheck::Arp),
            _ => {
                let port = s
                    .strip_prefix("tcp:")
                    .ok_or_else(|| HealthCheckError(s.to_string()))?;
                match port.parse::<u16>() {
                    Ok(p) if p != 0 => Ok(HealthCheck::Tcp(p)),
                    _ => Err(HealthCheckError(s.to_string())),
                }
            }
        }
    }
}

impl fmt::Display for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthCheck::None => f.write_str("none"),
            HealthCheck::Arp => f.write_str("arp"),
            HealthCheck::Tcp(p) => write!(f, "tcp:{p}"),
        }
    }
}

/// A `health` value that is not `none`, `arp` or `tcp:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not none, arp or tcp:PORT (PORT 1..=65535)")]
pub struct HealthCheckError(pub String);

/// One member's probing (`[[member]] health`, `health_interval_ms`, `health_fails`,
/// `health_rises`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    /// The member's name.
    pub member: String,
    /// The check.
    pub check: HealthCheck,
    /// Time between probes; a probe unanswered by the next one failed.
    pub interval_ms: u64,
    /// Consecutive failures before the member is down.
    pub fails: u32,
    /// Consecutive successes before a down member is up.
    pub rises: u32,
}

/// A member's health as the metrics endpoint and `cluamgr -s` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberHealth {
    /// Member name.
    pub member: String,
    /// Its check.
    pub check: HealthCheck,
    /// Up by its probes.
    pub up: bool,
    /// Consecutive failed probes now.
    pub fails: u32,
    /// Probes counted since start, per result, indexed like [`ProbeResult::ALL`].
    pub probes: [u64; 4],
}

impl MemberHealth {
    /// Probes with `result`.
    pub fn probes(&self, result: ProbeResult) -> u64 {
        self.probes[result as usize]
    }
}

/// A member crossed a threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// `fails` probes failed in a row: no new flows to it (CA3).
    Down {
        /// Member name.
        member: String,
        /// Its check.
        check: HealthCheck,
        /// Consecutive failures.
        fails: u32,
        /// What the last probe got.
        last: ProbeResult,
    },
    /// `rises` probes succeeded in a row: it gets new flows again.
    Up {
        /// Member name.
        member: String,
        /// Its check.
        check: HealthCheck,
        /// Consecutive successes.
        rises: u32,
    },
    /// The new state could not be put in force (the rebuild failed); retried.
    NotApplied {
        /// Why.
        why: String,
    },
}

impl fmt::Display for HealthEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthEvent::Down {
                member,
                check,
                fails,
                last,
            } => write!(
                f,
                "member {member} failed {fails} {check} probes in a row (last: {}): no new flows go to it",
                last.name()
            ),
            HealthEvent::Up {
                member,
                check,
                rises,
            } => write!(
                f,
                "member {member} passed {rises} {check} probes in a row: it gets new flows again"
            ),
            HealthEvent::NotApplied { why } => {
                write!(f, "member health not applied, retrying: {why}")
            }
        }
    }
}

/// What one probe got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// Answered (ARP from the member, or a SYN-ACK).
    Ok,
    /// Nothing by the next probe.
    Timeout,
    /// A RST to the SYN: the host is up, the port closed.
    Refused,
    /// Could not be sent: no MAC known for the member, or its port has no address (TCP).
    NotSent,
}

impl ProbeResult {
    /// The metric label (`result`).
    pub fn name(self) -> &'static str {
        match self {
            ProbeResult::Ok => "ok",
            ProbeResult::Timeout => "timeout",
            ProbeResult::Refused => "refused",
            ProbeResult::NotSent => "not_sent",
        }
    }

    /// Every result, in label order.
    pub const ALL: [ProbeResult; 4] = [
        ProbeResult::Ok,
        ProbeResult::Timeout,
        ProbeResult::Refused,
        ProbeResult::NotSent,
    ];
}

/// A frame to transmit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeFrame {
    /// The member's port.
    pub port: PortId,
    /// The Ethernet frame.
    pub frame: Vec<u8>,
}

/// The probe in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    /// TCP: our source port and initial sequence number.
    src_port: u16,
    isn: u32,
    /// The probe's MACs (ours, the member's) and source address: the RST goes the same way,
    /// whatever the answer's headers say.
    macs: ([u8; 6], [u8; 6]),
    src: Ipv4Addr,
}

#[derive(Clone, Debug)]
struct Entry {
    member: usize,
    spec: HealthSpec,
    port: PortId,
    addr: Ipv4Addr,
    up: bool,
    fails: u32,
    rises: u32,
    in_flight: Option<InFlight>,
    due_at: u64,
    counts: [u64; 4],
}

impl Entry {
    fn status(&self) -> MemberHealth {
        MemberHealth {
            member: self.spec.member.clone(),
            check: self.spec.check,
            up: self.up,
            fails: self.fails,
            probes: self.counts,
        }
    }
}

/// The prober. See the module docs.
#[derive(Debug, Default)]
pub struct Health {
    entries: Vec<Entry>,
    by_addr: HashMap<(PortId, Ipv4Addr), usize>,
    /// The model's view differs from the entries.
    changed: bool,
    not_before: u64,
    /// xorshift64* state: TCP source ports and initial sequence numbers, so a blind sender
    /// cannot answer a probe it did not see.
    rng: u64,
    /// The next source port's offset in [`PROBE_PORTS`].
    next_port: u16,
}

impl Health {
    /// Entries for the members of `cluster` named in `specs` with a check other than `none`
    /// (names that are not members, or members whose port is unknown, are skipped: the
    /// configuration refuses them). `seed` differs per start.
    pub fn new(cluster: &Cluster, specs: &[HealthSpec], seed: u64) -> Health {
        let mut entries = Vec::new();
        let mut by_addr = HashMap::new();
        for spec in specs {
            if spec.check == HealthCheck::None {
                continue;
            }
            let Some(i) = cluster.members.iter().position(|m| m.name == spec.member) else {
                continue;
            };
            let m = &cluster.members[i];
            let Some(port) = cluster.port_index(&m.port) else {
                continue;
            };
            let port = port as PortId;
            by_addr.insert((port, m.address), entries.len());
            entries.push(Entry {
                member: i,
                spec: HealthSpec {
                    interval_ms: spec.interval_ms.max(*INTERVAL_MS.start()),
                    fails: spec.fails.max(1),
                    rises: spec.rises.max(1),
                    ..spec.clone()
                },
                port,
                addr: m.address,
                up: true,
                fails: 0,
                rises: 0,
                in_flight: None,
                due_at: 0,
                counts: [0; 4],
            });
        }
        Health {
            entries,
            by_addr,
            changed: false,
            not_before: 0,
            rng: seed | 1,
            next_port: 0,
        }
    }

    /// Whether any member is probed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every probed member's health.
    pub fn status(&self) -> Vec<MemberHealth> {
        self.entries.iter().map(Entry::status).collect()
    }

    /// Member `name`'s health (`None`: not probed).
    pub fn member(&self, name: &str) -> Option<MemberHealth> {
        self.entries
            .iter()
            .find(|e| e.spec.member == name)
            .map(Entry::status)
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An ARP packet received on `port` (before the responder rewrites it): from a member with
    /// an ARP probe in flight, the probe succeeded. Returns whether it counted.
    pub fn on_arp(&mut self, port: PortId, frame: &[u8], events: &mut Vec<HealthEvent>) -> bool {
        let Some((mac, addr)) = arp_sender(frame) else {
            return false;
        };
        if mac[0] & 1 == 1 || mac == [0; 6] {
            return false;
        }
        let Some(&i) = self.by_addr.get(&(port, addr)) else {
            return false;
        };
        let e = &self.entries[i];
        if e.spec.check != HealthCheck::Arp || e.in_flight.is_none() {
            return false;
        }
        self.record(i, ProbeResult::Ok, events);
        true
    }

    /// A punted TCP segment ([`PuntReason::Probe`](clua_pipeline::PuntReason::Probe)) received
    /// on `port`: the answer to a TCP probe in flight, or nothing. A SYN-ACK is answered with
    /// a RST in `out`. Returns whether it counted.
    pub fn on_tcp(
        &mut self,
        port: PortId,
        frame: &[u8],
        out: &mut Vec<ProbeFrame>,
        events: &mut Vec<HealthEvent>,
    ) -> bool {
        let Some(seg) = tcp_segment(frame) else {
            return false;
        };
        let Some(&i) = self.by_addr.get(&(port, seg.src)) else {
            return false;
        };
        let e = &self.entries[i];
        let (HealthCheck::Tcp(dport), Some(f)) = (e.spec.check, e.in_flight) else {
            return false;
        };
        if seg.src_port != dport || seg.dst_port != f.src_port || seg.dst != f.src {
            return false;
        }
        let acks_syn = seg.flags & TcpFlags::ACK != 0 && seg.ack == f.isn.wrapping_add(1);
        let result = if seg.flags & TcpFlags::RST != 0 && acks_syn {
            ProbeResult::Refused
        } else if seg.flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN | TcpFlags::ACK
            && acks_syn
        {
            // RST with our next sequence number: the member drops its half-open socket at
            // once (keepalived's connect would close the connection instead).
            let mut rst = vec![0u8; TCP_FRAME_LEN];
            tcp_frame(
                &mut rst,
                f.macs.0,
                f.macs.1,
                f.src,
                e.addr,
                TcpRepr {
                    src_port: f.src_port,
                    dst_port: dport,
                    seq_number: seg.ack,
                    ack_number: 0,
                    flags: TcpFlags::RST,
                    window_len: 0,
                },
            );
            out.push(ProbeFrame { port, frame: rst });
            ProbeResult::Ok
        } else {
            return false;
        };
        self.record(i, result, events);
        true
    }

    /// Counts a probe's result, clears it from flight and moves the thresholds.
    fn record(&mut self, i: usize, result: ProbeResult, events: &mut Vec<HealthEvent>) {
        let e = &mut self.entries[i];
        e.in_flight = None;
        e.counts[result as usize] += 1;
        if result == ProbeResult::Ok {
            e.fails = 0;
            e.rises = e.rises.saturating_add(1);
            if !e.up && e.rises >= e.spec.rises {
                e.up = true;
                self.changed = true;
                events.push(HealthEvent::Up {
                    member: e.spec.member.clone(),
                    check: e.spec.check,
                    rises: e.rises,
                });
            }
        } else {
            e.rises = 0;
            e.fails = e.fails.saturating_add(1);
            if e.up && e.fails >= e.spec.fails {
                e.up = false;
                self.changed = true;
                events.push(HealthEvent::Down {
                    member: e.spec.member.clone(),
                    check: e.spec.check,
                    fails: e.fails,
                    last: result,
                });
            }
        }
    }

    /// The time at which [`Health::on_tick`] has something to do (`None`: never).
    pub fn next_wakeup(&self) -> Option<u64> {
        self.entries.iter().map(|e| e.due_at).min()
    }

    /// The passage of time: probes unanswered since the last interval failed; the next probes
    /// go out, built with `snapshot`'s port addresses and member MACs.
    pub fn on_tick(
        &mut self,
        now_ms: u64,
        snapshot: &Snapshot,
        out: &mut Vec<ProbeFrame>,
        events: &mut Vec<HealthEvent>,
    ) {
        for i in 0..self.entries.len() {
            if self.entries[i].due_at > now_ms {
                continue;
            }
            if self.entries[i].in_flight.is_some() {
                self.record(i, ProbeResult::Timeout, events);
            }
            let src_port = PROBE_PORTS.start + self.next_port;
            let isn = self.random() as u32;
            let e = &mut self.entries[i];
            e.due_at = now_ms.saturating_add(e.spec.interval_ms);
            let p = snapshot.ports.get(e.port as usize);
            let m = snapshot.member(MemberId(e.member as u32));
            let mac = m.map(|m| m.mac).filter(|m| *m != [0; 6]);
            let sent = match (e.spec.check, p) {
                (HealthCheck::Arp, Some(p)) => {
                    // Unicast to the MAC in use while it answers (RFC 5227-style, the other
                    // hosts are not bothered); broadcast once it did not, so a member whose
                    // MAC changed is found.
                    let to = mac.filter(|_| e.fails == 0).unwrap_or(BROADCAST);
                    let mut frame = [0u8; ARP_FRAME_LEN];
                    request(
                        &mut frame,
                        to,
                        p.mac,
                        p.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED),
                        e.addr,
                    );
                    out.push(ProbeFrame {
                        port: e.port,
                        frame: frame.to_vec(),
                    });
                    Some(InFlight {
                        src_port: 0,
                        isn: 0,
                        macs: (p.mac, to),
                        src: p.ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    })
                }
                (HealthCheck::Tcp(dport), Some(p)) => match (mac, p.ipv4) {
                    (Some(mac), Some(src)) => {
                        let mut frame = vec![0u8; TCP_FRAME_LEN];
                        tcp_frame(
                            &mut frame,
                            p.mac,
                            mac,
                            src,
                            e.addr,
                            TcpRepr {
                                src_port,
                                dst_port: dport,
                                seq_number: isn,
                                ack_number: 0,
                                flags: TcpFlags::SYN,
                                window_len: 1024,
                            },
                        );
                        out.push(ProbeFrame {
                            port: e.port,
                            frame,
                        });
                        Some(InFlight {
                            src_port,
                            isn,
                            macs: (p.mac, mac),
                            src,
                        })
                    }
                    _ => None,
                },
                _ => None,
            };
            match sent {
                Some(f) => {
                    e.in_flight = Some(f);
                    if f.src_port != 0 {
                        // Each probe from the next source port: a late answer to an earlier
                        // probe never matches, and the member sees a fresh 4-tuple each time.
                        self.next_port = (self.next_port + 1) % PROBE_PORTS.len() as u16;
                    }
                }
                None => self.record(i, ProbeResult::NotSent, events),
            }
        }
    }

    /// Whether the model should take the entries' state now; then [`Health::apply`], publish,
    /// and [`Health::applied`] (or [`Health::retry_at`] when that failed).
    pub fn due(&self, now_ms: u64) -> bool {
        self.changed && now_ms >= self.not_before
    }

    /// The model took the entries' state.
    pub fn applied(&mut self) {
        self.changed = false;
    }

    /// A rebuild failed: try again at `at_ms`.
    pub fn retry_at(&mut self, at_ms: u64) {
        self.not_before = at_ms;
    }

    /// After a configuration reload (issue 11): the probes `specs` name over the reloaded
    /// `cluster`. A member whose check and address are unchanged keeps its state (up/down,
    /// fails, rises, counts, the probe in flight); a new or changed one starts from the
    /// member's state in `cluster` (so a member health took down stays down until its probes
    /// rise again), with nothing in flight. The random state carries on.
    pub fn reconfigure(&mut self, cluster: &Cluster, specs: &[HealthSpec]) {
        let mut next = Health::new(cluster, specs, self.rng);
        next.rng = self.rng;
        next.next_port = self.next_port;
        for e in &mut next.entries {
            let old = self.entries.iter().find(|o| {
                o.member == e.member && o.spec == e.spec && o.addr == e.addr && o.port == e.port
            });
            match old {
                Some(o) => {
                    e.up = o.up;
                    e.fails = o.fails;
                    e.rises = o.rises;
                    e.in_flight = o.in_flight;
                    e.due_at = o.due_at;
                    e.counts = o.counts;
                }
                None => e.up = cluster.members.get(e.member).is_none_or(|m| m.up),
            }
        }
        *self = next;
    }

    /// Writes each probed member's up state into `state` (agent members are left alone: their
    /// adverts say whether they are up).
    pub fn apply(&self, state: &mut ControlState) {
        for e in &self.entries {
            if let Some(m) = state.cluster.members.get_mut(e.member) {
                if m.name == e.spec.member && !m.agent {
                    m.up = e.up;
                }
            }
        }
    }
}

use crate::neighbors::arp_sender;

/// What a probe answer carries.
struct Segment {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    ack: u32,
    flags: u8,
}

/// An untagged, unfragmented IPv4/TCP segment with valid IPv4 and TCP checksums.
fn tcp_segment(frame: &[u8]) -> Option<Segment> {
    let l2 = parse_l2(frame).ok()?;
    if l2.ethertype != EtherType::IPV4 || l2.l3_offset != 14 {
        return None;
    }
    // Verified as everywhere else on receive (not under `cfg(fuzzing)`, so a fuzzer reaches
    // the matching below).
    let caps = ChecksumCapabilities::default();
    let ip = Ipv4Packet::new_checked(frame.get(14..)?).ok()?;
    if ip.next_header() != protocol::TCP
        || ip.is_fragment()
        || (caps.ipv4.rx() && !ip.verify_checksum())
    {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    if caps.tcp.rx() && !tcp.verify_checksum(ip.src_addr(), ip.dst_addr()) {
        return None;
    }
    Some(Segment {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        ack: tcp.ack_number(),
        flags: tcp.flags(),
    })
}

/// Writes an Ethernet/IPv4/TCP frame (no options, no payload) into `f`
/// ([`TCP_FRAME_LEN`] bytes).
fn tcp_frame(
    f: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tcp: TcpRepr,
) {
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: EtherType::IPV4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    tcp.emit(&mut TcpPacket::new_unchecked(&mut f[34..]), src, dst);
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: protocol::TCP,
        payload_len: 20,
        hop_limit: 64,
        dscp_ecn: 0,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MemberMac, MemberSpec, PortSpec, Prefix};
    use clua_pipeline::snapshot::{Encap, PortRole};

    const IC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const M1_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
    const ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const M1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    fn cluster() -> Cluster {
        let port = |name: &str, role, address: &str| PortSpec {
            name: name.into(),
            role,
            address: Some(address.parse::<Prefix>().unwrap()),
            mtu: 1500,
            mac: None,
            flow_source: None,
        };
        let member = |i: u8, agent: bool| MemberSpec {
            name: format!("m{i}"),
            port: "ic0".into(),
            address: Ipv4Addr::new(192, 0, 2, 10 + i),
            mac: MemberMac::Configured([2, 0, 0, 0, 1, i]),
            encap: Encap::L2,
            up: !agent,
            agent,
            listening: None,
            out_alias: None,
        };
        Cluster {
            name: "t".into(),
            default_alias: "a".into(),
            max_aliases: 8,
            ports: vec![
                port("client", PortRole::Client, "198.51.100.2/24"),
                port("ic0", PortRole::Interconnect, "192.0.2.2/24"),
            ],
            members: vec![member(1, false), member(2, false), member(3, true)],
            aliases: vec![],
            services: vec![],
            advert_port: 0,
        }
    }

    fn snapshot(c: &Cluster) -> Snapshot {
        c.snapshot(1, &[[2, 0, 0, 0, 0, 1], IC_MAC]).unwrap()
    }

    fn spec(member: &str, check: HealthCheck) -> HealthSpec {
        HealthSpec {
            member: member.into(),
            check,
            interval_ms: 100,
            fails: 3,
            rises: 2,
        }
    }

    fn arp_from(mac: [u8; 6], addr: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
        let mut f = [0u8; ARP_FRAME_LEN];
        // A reply is built like a request here: the prober takes any ARP packet of the member.
        request(&mut f, IC_MAC, mac, addr, ROUTER);
        f
    }

    /// The member's answer to probe `syn` with `flags` (SYN|ACK or RST|ACK), checksums right.
    fn answer(syn: &[u8], flags: u8) -> Vec<u8> {
        let ip = Ipv4Packet::new_checked(&syn[14..]).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let mut f = vec![0u8; TCP_FRAME_LEN];
        tcp_frame(
            &mut f,
            M1_MAC,
            IC_MAC,
            ip.dst_addr(),
            ip.src_addr(),
            TcpRepr {
                src_port: tcp.dst_port(),
                dst_port: tcp.src_port(),
                seq_number: 777,
                ack_number: tcp.seq_number().wrapping_add(1),
                flags,
                window_len: 64240,
            },
        );
        f
    }

    /// Runs ticks every `step` ms from `from` to `to` (exclusive); `answer` decides per probe
    /// frame whether the member answers it (with the frame to feed back).
    fn run(
        h: &mut Health,
        snap: &Snapshot,
        from: u64,
        to: u64,
        mut answer: impl FnMut(&ProbeFrame) -> Option<Vec<u8>>,
        events: &mut Vec<(u64, HealthEvent)>,
    ) -> Vec<ProbeFrame> {
        let mut sent = Vec::new();
        let mut t = from;
        while t < to {
            let (mut out, mut ev) = (Vec::new(), Vec::new());
            h.on_tick(t, snap, &mut out, &mut ev);
            for f in &out {
                if let Some(reply) = answer(f) {
                    if reply[12..14] == [0x08, 0x06] {
                        h.on_arp(f.port, &reply, &mut ev);
                    } else {
                        let mut rst = Vec::new();
                        h.on_tcp(f.port, &reply, &mut rst, &mut ev);
                        sent.extend(rst);
                    }
                }
            }
            sent.extend(out);
            events.extend(ev.into_iter().map(|e| (t, e)));
            t += 10;
        }
        sent
    }

    #[test]
    fn checks_parse_and_refuse_what_they_do_not_know() {
        assert_eq!(HealthCheck::parse("arp"), Ok(HealthCheck::Arp));
        assert_eq!(HealthCheck::parse("none"), Ok(HealthCheck::None));
        assert_eq!(HealthCheck::parse("tcp:80"), Ok(HealthCheck::Tcp(80)));
        for bad in ["tcp:0", "tcp:", "tcp:65536", "http:80", "ARP", "", "tcp:8o"] {
            assert!(HealthCheck::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(HealthCheck::Tcp(443).to_string(), "tcp:443");
    }

    #[test]
    fn arp_probe_fails_after_the_interval_and_goes_down_after_fails_in_a_row() {
        let c = cluster();
        let s = snapshot(&c);
        let mut h = Health::new(&c, &[spec("m1", HealthCheck::Arp)], 7);
        let mut ev = Vec::new();
        // Answered for 1 s: up, no event, one probe per 100 ms, unicast to the member's MAC.
        let sent = run(
            &mut h,
            &s,
            0,
            1000,
            |_| Some(arp_from(M1_MAC, M1).to_vec()),
            &mut ev,
        );
        assert_eq!(sent.len(), 10);
        assert!(sent.iter().all(|f| f.frame[..6] == M1_MAC && f.port == 1));
        assert_eq!(
            &sent[0].frame[38..42],
            &M1.octets(),
            "target: the member's address"
        );
        assert!(ev.is_empty());
        let st = h.member("m1").unwrap();
        assert!(st.up);
        assert_eq!(st.probes(ProbeResult::Ok), 10);
        // Silent from 1000: probes at 1000, 1100, 1200 fail at 1100, 1200, 1300: down at 1300.
        let sent = run(&mut h, &s, 1000, 2000, |_| None, &mut ev);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(matches!(
            &ev[0],
            (1300, HealthEvent::Down { member, fails: 3, last: ProbeResult::Timeout, .. }) if member == "m1"
        ));
        assert_eq!(sent[0].frame[..6], M1_MAC, "the first one still unicast");
        assert!(
            sent[1..].iter().all(|f| f.frame[..6] == BROADCAST),
            "after a failure: broadcast"
        );
        assert!(h.due(1300));
        let mut st = ControlState {
            cluster: c.clone(),
            services_file: None,
            resvok: false,
        };
        h.apply(&mut st);
        assert!(!st.cluster.members[0].up);
        assert!(st.cluster.members[1].up, "not probed: untouched");
        h.applied();
        assert!(!h.due(1300));
        // Ten probes from 1000 to 1900: nine timed out, the last is still in flight.
        assert_eq!(h.member("m1").unwrap().fails, 9);
        assert_eq!(h.member("m1").unwrap().probes(ProbeResult::Timeout), 9);
    }

    #[test]
    fn a_down_member_is_up_after_rises_answers_in_a_row_and_one_miss_restarts_the_count() {
        let c = cluster();
        let s = snapshot(&c);
        let mut h = Health::new(&c, &[spec("m1", HealthCheck::Arp)], 7);
        let mut ev = Vec::new();
        run(&mut h, &s, 0, 500, |_| None, &mut ev);
        assert!(!h.member("m1").unwrap().up);
        ev.clear();
        // Answers every other probe (500, 700, ..., 1300; not 1400): never two in a row, stays
        // down.
        let mut n = 0;
        run(
            &mut h,
            &s,
            500,
            1500,
            |_| {
                n += 1;
                (n % 2 == 1).then(|| arp_from(M1_MAC, M1).to_vec())
            },
            &mut ev,
        );
        assert!(ev.is_empty(), "{ev:?}");
        assert!(!h.member("m1").unwrap().up);
        // 1400 times out at 1500; the probes at 1500 and 1600 are answered at once: up at 1600.
        run(
            &mut h,
            &s,
            1500,
            1700,
            |_| Some(arp_from(M1_MAC, M1).to_vec()),
            &mut ev,
        );
        assert!(
            matches!(&ev[..], [(1600, HealthEvent::Up { rises: 2, .. })]),
            "{ev:?}"
        );
        assert!(h.member("m1").unwrap().up);
        assert_eq!(h.member("m1").unwrap().fails, 0);
    }

    #[test]
    fn arp_from_elsewhere_or_without_a_probe_in_flight_does_not_count() {
        let c = cluster();
        let s = snapshot(&c);
        let mut h = Health::new(&c, &[spec("m1", HealthCheck::Arp)], 7);
        let mut ev = Vec::new();
        assert!(
            !h.on_arp(1, &arp_from(M1_MAC, M1), &mut ev),
            "nothing in flight"
        );
        let (mut out, mut e2) = (Vec::new(), Vec::new());
        h.on_tick(0, &s, &mut out, &mut e2);
        assert!(!h.on_arp(0, &arp_from(M1_MAC, M1), &mut ev), "wrong port");
        let m2 = Ipv4Addr::new(192, 0, 2, 12);
        assert!(
            !h.on_arp(1, &arp_from(M1_MAC, m2), &mut ev),
            "m2 is not probed"
        );
        let multicast = [1, 0, 0x5e, 0, 0, 1];
        assert!(
            !h.on_arp(1, &arp_from(multicast, M1), &mut ev),
            "multicast sender"
        );
        assert!(!h.on_arp(1, &[0u8; 20], &mut ev), "malformed");
        assert!(h.on_arp(1, &arp_from(M1_MAC, M1), &mut ev));
        assert!(!h.on_arp(1, &arp_from(M1_MAC, M1), &mut ev), "counted once");
        assert_eq!(h.member("m1").unwrap().probes(ProbeResult::Ok), 1);
    }

    #[test]
    fn tcp_probe_syn_ack_is_up_and_reset_rst_is_a_failure_at_once() {
        let c = cluster();
        let s = snapshot(&c);
        let mut h = Health::new(&c, &[spec("m1", HealthCheck::Tcp(80))], 7);
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        h.on_tick(0, &s, &mut out, &mut ev);
        assert_eq!(out.len(), 1);
        let syn = out[0].frame.clone();
        // Ethernet to the member's MAC, IPv4 router -> member, TCP SYN to 80 from a probe port.
        assert_eq!(syn[..12], [M1_MAC, IC_MAC].concat());
        let ip = Ipv4Packet::new_checked(&syn[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (ROUTER, M1));
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(ROUTER, M1));
        assert_eq!((tcp.dst_port(), tcp.flags()), (80, TcpFlags::SYN));
        assert!(PROBE_PORTS.contains(&tcp.src_port()));
        let isn = tcp.seq_number();

        // A SYN-ACK that acknowledges something else, or from another port, does not count.
        let mut wrong = answer(&syn, TcpFlags::SYN | TcpFlags::ACK);
        wrong[14 + 20 + 11] ^= 1; // ack number
        let mut rst = Vec::new();
        assert!(
            !h.on_tcp(1, &wrong, &mut rst, &mut ev),
            "bad checksum and ack"
        );
        // Addressed to another router address: not our probe's answer.
        let mut elsewhere = vec![0u8; TCP_FRAME_LEN];
        tcp_frame(
            &mut elsewhere,
            M1_MAC,
            IC_MAC,
            M1,
            Ipv4Addr::new(192, 0, 2, 3),
            TcpRepr {
                src_port: 80,
                dst_port: tcp.src_port(),
                seq_number: 777,
                ack_number: isn.wrapping_add(1),
                flags: TcpFlags::SYN | TcpFlags::ACK,
                window_len: 64240,
            },
        );
        assert!(
            !h.on_tcp(1, &elsewhere, &mut rst, &mut ev),
            "to another address"
        );
        // The right SYN-ACK: ok, and a RST with sequence number ISN+1 back to the member.
        let good = answer(&syn, TcpFlags::SYN | TcpFlags::ACK);
        assert!(h.on_tcp(1, &good, &mut rst, &mut ev));
        assert_eq!(rst.len(), 1);
        let rip = Ipv4Packet::new_checked(&rst[0].frame[14..]).unwrap();
        let rtcp = TcpPacket::new_checked(rip.payload()).unwrap();
        assert!(rtcp.verify_checksum(ROUTER, M1));
        assert_eq!(rtcp.flags(), TcpFlags::RST);
        assert_eq!(rtcp.seq_number(), isn.wrapping_add(1));
        assert_eq!((rtcp.src_port(), rtcp.dst_port()), (tcp.src_port(), 80));
        assert!(
            !h.on_tcp(1, &good, &mut rst, &mut ev),
            "a duplicate counts once"
        );
        assert_eq!(h.member("m1").unwrap().probes(ProbeResult::Ok), 1);

        // The port closes: RST+ACK fails each probe at once; down at the third.
        for k in 1..=3u64 {
            out.clear();
            h.on_tick(100 * k, &s, &mut out, &mut ev);
            assert_eq!(out.len(), 1);
            let syn = &out[0].frame;
            let next_port = TcpPacket::new_checked(&syn[34..]).unwrap().src_port();
            assert_ne!(next_port, tcp.src_port(), "every probe its own source port");
            let r = answer(syn, TcpFlags::RST | TcpFlags::ACK);
            assert!(h.on_tcp(1, &r, &mut rst, &mut ev));
        }
        assert!(matches!(
            &ev[..],
            [HealthEvent::Down {
                fails: 3,
                last: ProbeResult::Refused,
                ..
            }]
        ));
        assert_eq!(h.member("m1").unwrap().probes(ProbeResult::Refused), 3);
    }

    #[test]
    fn tcp_probe_without_a_member_mac_is_a_failure_not_a_frame() {
        let mut c = cluster();
        c.members[0].mac = MemberMac::Unresolved;
        let s = snapshot(&c);
        let mut h = Health::new(&c, &[spec("m1", HealthCheck::Tcp(80))], 7);
        let mut ev = Vec::new();
        let sent = run(&mut h, &s, 0, 300, |_| None, &mut ev);
        assert!(sent.is_empty());
        assert_eq!(h.member("m1").unwrap().probes(ProbeResult::NotSent), 3);
        assert!(matches!(
            &ev[..],
            [(
                200,
                HealthEvent::Down {
                    last: ProbeResult::NotSent,
                    ..
                }
            )]
        ));
    }

    #[test]
    fn none_and_agent_members_are_not_touched() {
        let c = cluster();
        let s = snapshot(&c);
        let specs = [
            spec("m2", HealthCheck::None),
            spec("m3", HealthCheck::Arp),
            spec("mx", HealthCheck::Arp),
        ];
        let mut h = Health::new(&c, &specs, 7);
        let mut ev = Vec::new();
        run(&mut h, &s, 0, 1000, |_| None, &mut ev);
        assert!(h.member("m2").is_none());
        assert!(h.member("mx").is_none());
        // m3 runs the agent: probed if asked (config refuses it), but apply leaves it alone.
        let mut st = ControlState {
            cluster: c.clone(),
            services_file: None,
            resvok: false,
        };
        st.cluster.members[2].up = true;
        h.apply(&mut st);
        assert!(st.cluster.members[2].up);
        assert!(st.cluster.members[1].up);
    }

    #[test]
    fn probes_keep_their_interval_whatever_the_tick_rate() {
        let c = cluster();
        let s = snapshot(&c);
        let mut h = Health::new(&c, &[spec("m1", HealthCheck::Arp)], 7);
        let (mut out, mut ev) = (Vec::new(), Vec::new());
        for t in 0..1000 {
            h.on_tick(t, &s, &mut out, &mut ev);
        }
        assert_eq!(out.len(), 10, "one per 100 ms at 1 ms ticks");
        assert_eq!(h.next_wakeup(), Some(1000));
    }

    /// Issue 11 reload: an unchanged probe keeps its state (a member its probes took down stays
    /// down); a new or changed one starts from the member's state in the reloaded cluster.
    #[test]
    fn reconfigure_keeps_unchanged_probes_and_starts_new_ones_from_the_model() {
        let mut c = cluster();
        let snap = snapshot(&c);
        let mut h = Health::new(&c, &[spec("m1", HealthCheck::Arp)], 7);
        let mut events = Vec::new();
        // m1 never answers: down after 3 failed probes.
        run(&mut h, &snap, 0, 1_000, |_| None, &mut events);
        assert!(!h.member("m1").unwrap().up, "{events:?}");
        let probes = h.member("m1").unwrap().probes;
        c.members[0].up = false;
        h.reconfigure(
            &c,
            &[spec("m1", HealthCheck::Arp), spec("m2", HealthCheck::Arp)],
        );
        let m1 = h.member("m1").unwrap();
        assert!(!m1.up, "unchanged probe keeps its down state");
        assert_eq!(m1.probes, probes, "and its counts");
        assert!(
            h.member("m2").unwrap().up,
            "new probe starts as the model says (up)"
        );
        // A changed probe (another interval) starts from the model: m1 is down there.
        let slower = HealthSpec {
            interval_ms: 200,
            ..spec("m1", HealthCheck::Arp)
        };
        h.reconfigure(&c, &[slower]);
        assert!(!h.member("m1").unwrap().up);
        assert!(h.member("m2").is_none(), "no longer probed");
    }
}
