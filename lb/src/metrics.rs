//! Metrics: per-core counters summed, rendered in the Prometheus text format (0.0.4), served on
//! a small HTTP endpoint that the control thread polls (no extra thread, nothing on the hot path).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clua_pipeline::{CoreCounters, DropReason, PuntReason, Snapshot};

pub use clua_ctl::plane::ControlCounters;

/// Port statistics as read from the PMD.
#[derive(Clone, Debug, Default)]
pub struct PortCounters {
    /// Port name.
    pub name: String,
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Packets the NIC dropped for lack of RX descriptors.
    pub imissed: u64,
    /// RX errors.
    pub ierrors: u64,
    /// TX errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn metric(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders every counter.
pub fn render(
    snapshot: &Snapshot,
    cores: &[Arc<CoreCounters>],
    control: &ControlCounters,
    ports: &[PortCounters],
    adverts: Option<&clua_ctl::members::AdvertCounters>,
) -> String {
    let mut o = String::with_capacity(4096);
    if let Some(a) = adverts {
        metric(
            &mut o,
            "clua_member_adverts_total",
            "Member adverts by outcome (accepted, goodbye, replayed, rejections by reason).",
            "counter",
        );
        for (outcome, n) in a.iter() {
            let _ = writeln!(o, "clua_member_adverts_total{{outcome=\"{outcome}\"}} {n}");
        }
    }
    metric(
        &mut o,
        "clua_rx_packets_total",
        "Packets received by workers.",
        "counter",
    );
    for (i, c) in cores.iter().enumerate() {
        let _ = writeln!(o, "clua_rx_packets_total{{worker=\"{i}\"}} {}", get(&c.rx));
    }
    metric(
        &mut o,
        "clua_forwarded_packets_total",
        "Packets transmitted by workers: forwarded to members, plus in_noalias refusals.",
        "counter",
    );
    for (i, c) in cores.iter().enumerate() {
        let _ = writeln!(
            o,
            "clua_forwarded_packets_total{{worker=\"{i}\"}} {}",
            get(&c.forwarded)
        );
    }
    metric(
        &mut o,
        "clua_dropped_packets_total",
        "Packets dropped, by reason.",
        "counter",
    );
    for r in DropReason::ALL {
        let n: u64 = cores.iter().map(|c| c.drops_for(*r)).sum();
        let _ = writeln!(
            o,
            "clua_dropped_packets_total{{reason=\"{}\"}} {n}",
            r.name()
        );
    }
    metric(
        &mut o,
        "clua_punted_packets_total",
        "Packets handed to the control thread, by reason.",
        "counter",
    );
    for r in PuntReason::ALL {
        let n: u64 = cores.iter().map(|c| get(&c.punts[r as usize])).sum();
        let _ = writeln!(
            o,
            "clua_punted_packets_total{{reason=\"{}\"}} {n}",
            r.name()
        );
    }
    metric(
        &mut o,
        "clua_member_packets_total",
        "Packets forwarded to each member.",
        "counter",
    );
    for m in snapshot.members.iter().flatten() {
        let n: u64 = cores
            .iter()
            .map(|c| c.member_packets.get(m.id.0 as usize).map_or(0, get))
            .sum();
        let _ = writeln!(o, "clua_member_packets_total{{member=\"{}\"}} {n}", m.name);
    }
    metric(
        &mut o,
        "clua_member_flows_total",
        "New flows (TCP connections, in_multi UDP datagrams) given to each member.",
        "counter",
    );
    for m in snapshot.members.iter().flatten() {
        let n: u64 = cores
            .iter()
            .map(|c| c.member_flows.get(m.id.0 as usize).map_or(0, get))
            .sum();
        let _ = writeln!(o, "clua_member_flows_total{{member=\"{}\"}} {n}", m.name);
    }
    metric(
        &mut o,
        "clua_member_up",
        "Whether the member is up.",
        "gauge",
    );
    for m in snapshot.members.iter().flatten() {
        let _ = writeln!(o, "clua_member_up{{member=\"{}\"}} {}", m.name, m.up as u8);
    }
    for (name, help, f) in [
        (
            "clua_conn_hits_total",
            "Connection-table hits.",
            (|c: &CoreCounters| get(&c.conn_hits)) as fn(&CoreCounters) -> u64,
        ),
        (
            "clua_conn_inserts_total",
            "Connection-table entries created.",
            |c| get(&c.conn_inserts),
        ),
        (
            "clua_conn_evictions_total",
            "Live connection-table entries evicted.",
            |c| get(&c.conn_evictions),
        ),
        (
            "clua_refusals_sent_total",
            "in_noalias packets answered with a TCP RST or ICMP port unreachable.",
            |c| get(&c.refusals_sent),
        ),
    ] {
        metric(&mut o, name, help, "counter");
        let n: u64 = cores.iter().map(|c| f(c)).sum();
        let _ = writeln!(o, "{name} {n}");
    }
    for (name, help, v) in [
        (
            "clua_arp_replies_total",
            "ARP replies sent.",
            get(&control.arp_replies),
        ),
        (
            "clua_arp_ignored_total",
            "ARP packets not for us.",
            get(&control.arp_ignored),
        ),
        (
            "clua_arp_malformed_total",
            "Malformed ARP packets.",
            get(&control.arp_malformed),
        ),
        (
            "clua_icmp_echo_replies_total",
            "ICMP echo replies sent.",
            get(&control.icmp_replies),
        ),
        (
            "clua_icmp_ignored_total",
            "ICMP packets punted but not answered.",
            get(&control.icmp_ignored),
        ),
        (
            "clua_gratuitous_arp_total",
            "Gratuitous ARP announcements sent.",
            get(&control.garp_sent),
        ),
        (
            "clua_control_tx_failed_total",
            "Control packets the port did not accept.",
            get(&control.tx_failed),
        ),
    ] {
        metric(&mut o, name, help, "counter");
        let _ = writeln!(o, "{name} {v}");
    }
    for (name, help, f) in [
        (
            "clua_port_rx_packets_total",
            "Packets received by the port (PMD).",
            (|p: &PortCounters| p.ipackets) as fn(&PortCounters) -> u64,
        ),
        (
            "clua_port_tx_packets_total",
            "Packets sent by the port (PMD).",
            |p| p.opackets,
        ),
        (
            "clua_port_rx_missed_total",
            "Packets the port dropped for lack of RX descriptors.",
            |p| p.imissed,
        ),
        ("clua_port_rx_errors_total", "Port RX errors.", |p| {
            p.ierrors
        }),
        ("clua_port_tx_errors_total", "Port TX errors.", |p| {
            p.oerrors
        }),
        (
            "clua_port_rx_nombuf_total",
            "Port RX mbuf allocation failures.",
            |p| p.rx_nombuf,
        ),
    ] {
        metric(&mut o, name, help, "counter");
        for p in ports {
            let _ = writeln!(o, "{name}{{port=\"{}\"}} {}", p.name, f(p));
        }
    }
    metric(
        &mut o,
        "clua_snapshot_generation",
        "Generation of the configuration snapshot in force.",
        "gauge",
    );
    let _ = writeln!(o, "clua_snapshot_generation {}", snapshot.generation);
    o
}

/// A non-blocking HTTP endpoint serving `GET /metrics`.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Binds the endpoint.
    pub fn bind(addr: SocketAddr) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers every pending request. Returns how many were served.
    pub fn poll(&self, body: impl Fn() -> String) -> usize {
        let mut served = 0;
        while let Ok((mut s, _)) = self.listener.accept() {
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
            let mut req = [0u8; 1024];
            let n = s.read(&mut req).unwrap_or(0);
            let line = String::from_utf8_lossy(&req[..n]);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let response = if line.starts_with("GET ") && (path == "/metrics" || path == "/") {
                let b = body();
                format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{b}", b.len())
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n".to_string()
            };
            let _ = s.write_all(response.as_bytes());
            served += 1;
        }
        served
    }
}

/// A short summary for the log when aliasd stops: uptime, packets, drops by reason, control
/// answers, new flows per member.
pub fn stop_summary(
    uptime: Duration,
    cores: &[Arc<CoreCounters>],
    control: &ControlCounters,
    ports: &[PortCounters],
    snapshot: &Snapshot,
) -> String {
    let sum = |f: &dyn Fn(&CoreCounters) -> u64| -> u64 { cores.iter().map(|c| f(c)).sum() };
    let rx = sum(&|c| get(&c.rx));
    let fwd = sum(&|c| get(&c.forwarded));
    let mut drops: Vec<(&str, u64)> = DropReason::ALL
        .iter()
        .map(|&r| (r.name(), sum(&|c| get(&c.drops[r as usize]))))
        .filter(|&(_, n)| n > 0)
        .collect();
    drops.sort_by(|a, b| b.1.cmp(&a.1));
    let dropped: u64 = drops.iter().map(|d| d.1).sum();
    let punted: u64 = PuntReason::ALL
        .iter()
        .map(|&r| sum(&|c| get(&c.punts[r as usize])))
        .sum();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "aliasd: stopped after {:.1} s: {rx} packets received, {fwd} forwarded, {dropped} dropped, {punted} punted",
        uptime.as_secs_f64()
    );
    if !drops.is_empty() {
        let top: Vec<String> = drops
            .iter()
            .take(4)
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        let _ = writeln!(o, "aliasd: drops by reason: {}", top.join(", "));
    }
    let _ = writeln!(
        o,
        "aliasd: answered {} ARP, {} ICMP echo; {} gratuitous ARP sent",
        get(&control.arp_replies),
        get(&control.icmp_replies),
        get(&control.garp_sent)
    );
    let flows: Vec<String> = snapshot
        .members
        .iter()
        .flatten()
        .map(|m| {
            let n = sum(&|c| c.member_flows.get(m.id.0 as usize).map_or(0, get));
            format!("{} {n}", m.name)
        })
        .collect();
    if !flows.is_empty() {
        let _ = writeln!(o, "aliasd: new flows per member: {}", flows.join(", "));
    }
    for p in ports {
        let _ = writeln!(
            o,
            "aliasd: port {}: {} in, {} out, {} missed, {} errors",
            p.name,
            p.ipackets,
            p.opackets,
            p.imissed,
            p.ierrors + p.oerrors
        );
    }
    o
}
