//! `cluamgr -s`: each alias's attributes, members and state, the members' traffic totals, and
//! the services, as a readable table.
//!
//! Only per-alias facts are shown under an alias. The data plane counts packets and new flows
//! per member (per-core counters indexed by member id, `clua_pipeline::CoreCounters`), not per
//! alias and member, so those totals are shown once per member, in their own section: an idle
//! alias never shows a busy alias's numbers (issue 7). A per-(alias, member) counter would add
//! an alias-indexed lookup per packet, and a table of up to 102,400 aliases × members per core.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use clua_pipeline::snapshot::{MemberId, PortRole, ServiceMode, Snapshot};

use crate::apply::{find_alias, service_notes, ControlState, RPRI_NOTE};
use crate::command::ShowWhat;
use crate::model::{fmt_mac, AliasSpec, Cluster};
use crate::status::{AliasStatus, Status};

/// Per-member counters summed over the workers: (packets forwarded, new flows).
pub type MemberCounters<'a> = &'a dyn Fn(MemberId) -> (u64, u64);

/// How a non-virtual alias outside every client subnet is reached (issue 7). Accepted, not
/// refused: CA2 lets a router route for an alias without answering ARP for it.
pub const ROUTED: &str = "routed (outside every client subnet: no proxy ARP; reachable by a route to it: RIP's host route with [rip], else a static route)";

/// The client ports on which the router answers ARP for alias address `addr`: those whose
/// subnet contains it, and those without an address. The same rule as
/// [`crate::arp::answers_for`], on the model rather than a snapshot (a test keeps them equal).
pub fn proxy_arp_ports(cluster: &Cluster, addr: Ipv4Addr) -> Vec<usize> {
    cluster
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.role == PortRole::Client)
        .filter(|(_, p)| match p.address {
            None => true,
            Some(pre) => pre.contains(addr),
        })
        .map(|(i, _)| i)
        .collect()
}

/// How clients reach alias `a`, in words: proxy ARP on which ports, or a route.
pub fn reach(cluster: &Cluster, a: &AliasSpec) -> String {
    let ports: Vec<String> = proxy_arp_ports(cluster, a.address)
        .into_iter()
        .map(|i| {
            let p = &cluster.ports[i];
            match p.address {
                Some(pre) => format!("{} ({pre})", p.name),
                None => format!("{} (no address: every alias)", p.name),
            }
        })
        .collect();
    let mask = a.mask.map(|m| format!(" mask {m}")).unwrap_or_default();
    match (a.virtual_subnet, ports.is_empty()) {
        (false, false) => format!("common subnet: proxy ARP on port {}", ports.join(", port ")),
        (false, true) => ROUTED.to_string(),
        (true, true) => format!(
            "virtual subnet{mask}: no proxy ARP; reachable by a route to it (RIP advertises its host route, and the network route when it has a mask, with [rip])"
        ),
        (true, false) => format!(
            "virtual subnet{mask}, but inside a client subnet: proxy ARP on port {} (the network route comes with RIP)",
            ports.join(", port ")
        ),
    }
}

/// Renders `-s` for the state in force (`snapshot` is the one built from it: up/down state,
/// the in_single active member).
/// What `-s` shows of the routers (issue 8).
pub struct RoutingShow<'a> {
    /// This router among several (`None`: alone).
    pub role: Option<&'a crate::routers::role::RouterRole>,
    /// The ARP view in force.
    pub arp: &'a crate::arp::ArpView,
    /// The time now (for "heard N ms ago").
    pub now_ms: u64,
    /// BFD, if it runs.
    pub bfd: Option<&'a crate::bfd::Bfd>,
    /// RIP, if it runs.
    pub rip: Option<&'a crate::rip::RipSpeaker>,
    /// The flow hand-off, if it runs (issue 9).
    pub sync: Option<&'a crate::sync::Handoff>,
    /// The probes of static members (issue 10).
    pub health: &'a crate::members::health::Health,
}

/// `cluamgr -s` with the routers' part: the router and its peers at the top, per alias its
/// proxy-ARP master and vMAC.
pub fn render_show_routing(
    state: &ControlState,
    snapshot: &Snapshot,
    what: &ShowWhat,
    counters: MemberCounters,
    routing: &RoutingShow<'_>,
    status: Option<&Status>,
) -> String {
    let mut o = String::new();
    let cl = &state.cluster;
    if matches!(what, ShowWhat::All) {
        match routing.role {
            None => o.push_str(
                "routers: this router alone (no [router] section): it answers ARP for every alias\n",
            ),
            Some(r) => {
                let s = r.tracker().settings();
                let _ = writeln!(
                    o,
                    "routers: this router {} (boot {}), interval {} ms, dead after {} missed{}",
                    s.node,
                    s.boot_id,
                    s.interval_ms,
                    s.dead_misses,
                    if r.listening(routing.now_ms) {
                        ", still listening to its peers (answers ARP for nothing yet)"
                    } else {
                        ""
                    }
                );
                for (node, p) in r.tracker().peers() {
                    let _ = writeln!(
                        o,
                        "  peer {node}: boot {}, heard {} ms ago, interval {} ms, {} aliases",
                        p.boot_id,
                        routing.now_ms.saturating_sub(p.heard_ms),
                        p.interval_ms,
                        p.aliases.len()
                    );
                }
                if r.tracker().peers().is_empty() {
                    o.push_str("  no live peer routers\n");
                }
            }
        }
    }
    if let (ShowWhat::All, Some(r)) = (what, routing.rip) {
        let c = r.counters();
        let _ = writeln!(
            o,
            "rip: {} routes advertised ({} withdrawn, metric 16), {} packets sent, {} requests answered, {} responses heard (not installed), {} refused",
            r.routes().filter(|(_, m)| *m < 16).count(),
            r.routes().filter(|(_, m)| *m >= 16).count(),
            c.updates_sent,
            c.requests_answered,
            c.responses_received,
            c.refused.iter().sum::<u64>()
        );
    }
    if let (ShowWhat::All, Some(b)) = (what, routing.bfd) {
        for s in b.sessions() {
            let _ = writeln!(
                o,
                "bfd peer {} from {}: {} (peer says {}), tx every {} ms, detection {} ms, last diag {}{}",
                s.peer,
                s.local_addr,
                s.state,
                s.remote_state,
                s.tx_interval_ms,
                s.detection_time_ms,
                s.diag,
                if s.peer_mac.is_none() {
                    ", passive until the peer is heard"
                } else {
                    ""
                }
            );
        }
    }
    if let (ShowWhat::All, Some(h)) = (what, routing.sync) {
        render_sync(&mut o, h);
    }
    let body = render_show_health(
        state,
        snapshot,
        what,
        counters,
        Some(routing.health),
        status,
    );
    // Per alias, after its header line: the master and the vMAC.
    for line in body.lines() {
        o.push_str(line);
        o.push('\n');
        let Some(rest) = line.strip_prefix("alias ") else {
            continue;
        };
        let Some(a) = cl
            .aliases
            .iter()
            .find(|a| rest.starts_with(&format!("{} {}", a.name, a.address)))
        else {
            continue;
        };
        match routing.role {
            None => {}
            Some(r) => {
                let this = &r.tracker().settings().node;
                match r.masters().get(&a.address) {
                    Some(n) if n == this => {
                        let _ = writeln!(o, "  arp master: {n} (this router)");
                    }
                    Some(n) => {
                        let _ = writeln!(o, "  arp master: {n}");
                    }
                    None if r.listening(routing.now_ms) => {
                        o.push_str("  arp master: not yet elected (listening)\n")
                    }
                    None => o.push_str(
                        "  arp master: none (no live router has a client port on its subnet)\n",
                    ),
                }
            }
        }
        if let Some(r) = routing.rip {
            let routes: Vec<String> = r
                .routes()
                .filter(|(route, m)| {
                    *m < 16
                        && crate::routers::tracker::same_subnet(route.prefix, route.len, a.address)
                })
                .map(|(route, _)| route.to_string())
                .collect();
            if routes.is_empty() {
                o.push_str("  rip: not advertised (CA6 rules: RFC 1918 without resvok, or a reserved or interconnect address)\n");
            } else {
                let _ = writeln!(o, "  rip: advertised {}", routes.join(", "));
            }
        }
        if let Some(v) = routing.arp.vmacs.get(&a.address) {
            let _ = writeln!(o, "  vmac: {} (CA5)", crate::model::fmt_mac(v));
        }
    }
    if let (ShowWhat::All, Some(st)) = (what, status) {
        render_ports(&mut o, st);
        render_workers(&mut o, st);
    }
    o
}

/// An alias's state word for a member: `left`, `up` or `down`.
pub fn join_state(joined: bool, up: bool) -> &'static str {
    match (joined, up) {
        (false, _) => "left",
        (true, true) => "up",
        (true, false) => "down",
    }
}

/// A member's part in an alias's default schedule.
pub fn traffic(
    joined: bool,
    alias: Option<&clua_pipeline::snapshot::Alias>,
    id: Option<MemberId>,
) -> &'static str {
    match (alias, id) {
        _ if !joined => "-",
        (Some(sa), Some(id)) => {
            let multi = sa.multi_schedule.contains(&id);
            let single = sa.single_active == Some(id);
            match (multi, single) {
                (true, true) => "in_multi+single",
                (true, false) => "in_multi",
                (false, true) => "in_single",
                (false, false) => "standby",
            }
        }
        _ => "-",
    }
}

/// One member line under an alias (member, selw, selp, state, traffic). Parts that add a
/// column or a line per member (health, out_alias) add it here.
fn render_alias_member(o: &mut String, j: &crate::model::JoinSpec, state: &str, traffic: &str) {
    let _ = writeln!(
        o,
        "  {:<12} {:>5} {:>6}  {:<5} {}",
        j.member, j.selw, j.selp, state, traffic
    );
}

/// Under an alias: its own packets and new flows (per-alias counters, issue 11) and the
/// in_single active member, per reported port.
fn render_alias_traffic(o: &mut String, a: &AliasStatus) {
    let _ = writeln!(
        o,
        "  alias traffic: {} packets, {} new flows (this alias only, all workers)",
        a.packets, a.flows
    );
    let mut active = vec![format!(
        "{} (unreported ports)",
        a.single_active.as_deref().unwrap_or("none")
    )];
    for p in &a.port_single_active {
        active.push(format!(
            "{} ({}/{})",
            p.member.as_deref().unwrap_or("none"),
            p.port,
            p.proto
        ));
    }
    let _ = writeln!(o, "  in_single active: {}", active.join(", "));
}

fn rate_note(st: &Status) -> String {
    match &st.rates {
        Some(r) if r.since == "start" => format!("per second since start ({} ms)", r.interval_ms),
        Some(r) => format!("per second since the previous -s ({} ms)", r.interval_ms),
        None => "no rates".into(),
    }
}

/// The ports and their PMD counters (`cluamgr -s`, issue 11).
pub fn render_ports(o: &mut String, st: &Status) {
    let _ = writeln!(
        o,
        "
ports (PMD counters; rates {})",
        rate_note(st)
    );
    let _ = writeln!(
        o,
        "  {:<10} {:<12} {:<5} {:>12} {:>12} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "port", "role", "link", "rx", "tx", "rx/s", "tx/s", "missed", "rx_err", "tx_err"
    );
    for p in &st.ports {
        let link = match p.link_up {
            Some(true) => "up",
            Some(false) => "down",
            None => "-",
        };
        let _ = writeln!(
            o,
            "  {:<10} {:<12} {:<5} {:>12} {:>12} {:>10.0} {:>10.0} {:>8} {:>8} {:>8}",
            p.name,
            p.role,
            link,
            p.rx_packets,
            p.tx_packets,
            p.rx_pps,
            p.tx_pps,
            p.rx_missed,
            p.rx_errors,
            p.tx_errors
        );
    }
}

/// The workers: rates, connection-table occupancy, drops by reason (`cluamgr -s`, issue 11).
pub fn render_workers(o: &mut String, st: &Status) {
    let _ = writeln!(
        o,
        "
workers (rates {})",
        rate_note(st)
    );
    let _ = writeln!(
        o,
        "  {:<6} {:>12} {:>12} {:>10} {:>10}  table (live/slots)",
        "worker", "rx", "forwarded", "rx/s", "fwd/s"
    );
    for w in &st.workers {
        let table = if w.conn_sweeps == 0 {
            format!("-/{} (not swept yet)", w.conn_capacity)
        } else {
            let pct = if w.conn_capacity == 0 {
                0.0
            } else {
                w.conn_live as f64 * 100.0 / w.conn_capacity as f64
            };
            format!("{}/{} ({pct:.1}%)", w.conn_live, w.conn_capacity)
        };
        let _ = writeln!(
            o,
            "  {:<6} {:>12} {:>12} {:>10.0} {:>10.0}  {table}",
            w.worker, w.rx_packets, w.forwarded_packets, w.rx_pps, w.forwarded_pps
        );
        let drops: Vec<String> = w
            .drops
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        let _ = writeln!(
            o,
            "         drops: {}",
            if drops.is_empty() {
                "none".to_string()
            } else {
                drops.join(", ")
            }
        );
    }
}

/// The flow hand-off's lines of `cluamgr -s` (issue 9, docs/sync-protocol.md): what was sent
/// and received, and every drop by reason.
pub fn render_sync(o: &mut String, h: &crate::sync::Handoff) {
    let s = h.settings();
    let c = h.counters();
    let _ = writeln!(
        o,
        "sync: flow hand-off on UDP {}, at most {} records/s, {} records per datagram, refresh every {} ms",
        s.udp_port,
        s.max_records_per_sec,
        h.records_per_message(),
        s.refresh_ms
    );
    let _ = writeln!(
        o,
        "  sent: {} records in {} datagrams, {} whole-table requests",
        c.records_sent, c.messages_sent, c.requests_sent
    );
    let _ = writeln!(
        o,
        "  received: {} records in {} datagrams, {} installed, {} whole-table requests",
        c.records_received, c.messages_received, c.records_installed, c.requests_received
    );
    let drops: Vec<String> = c
        .record_drops()
        .iter()
        .map(|(n, v)| format!("{v} {n}"))
        .collect();
    let _ = writeln!(o, "  records dropped: {}", drops.join(", "));
    let refused: Vec<String> = c
        .refusals()
        .filter(|(_, v)| *v > 0)
        .map(|(n, v)| format!("{v} {n}"))
        .collect();
    let _ = writeln!(
        o,
        "  datagrams refused: {}",
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    );
}

/// `cluamgr -s` of the cluster and its members (see [`render_show_routing`] for the routers'
/// part).
pub fn render_show(
    state: &ControlState,
    snapshot: &Snapshot,
    what: &ShowWhat,
    counters: MemberCounters,
    status: Option<&Status>,
) -> String {
    render_show_health(state, snapshot, what, counters, None, status)
}

/// [`render_show`] with the static members' health probes (issue 10) on their member lines.
pub fn render_show_health(
    state: &ControlState,
    snapshot: &Snapshot,
    what: &ShowWhat,
    counters: MemberCounters,
    health: Option<&crate::members::health::Health>,
    status: Option<&Status>,
) -> String {
    let cl = &state.cluster;
    let mut o = String::new();
    let selected: Vec<usize> = match what {
        ShowWhat::All => (0..cl.aliases.len()).collect(),
        ShowWhat::Alias(a) => find_alias(cl, a).into_iter().collect(),
    };
    if matches!(what, ShowWhat::All) {
        let _ = writeln!(
            o,
            "cluster {}: {} of at most {} aliases, default alias {}, resvok {}",
            cl.name,
            cl.aliases.len(),
            cl.max_aliases,
            cl.default_alias,
            if state.resvok { "on" } else { "off" }
        );
    }
    let mut shown_members = vec![false; cl.members.len()];
    for &i in &selected {
        let a = &cl.aliases[i];
        let snap_alias = snapshot.aliases.iter().find(|s| s.addr == a.address);
        let snap_alias = snap_alias.map(|s| s as &clua_pipeline::snapshot::Alias);
        let default = if a.name == cl.default_alias {
            " (default alias)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "\nalias {} {}{default}\n  {}\n  rpri {}: {RPRI_NOTE}",
            a.name,
            a.address,
            reach(cl, a),
            a.rpri
        );
        if a.joined().next().is_none() {
            let _ = writeln!(
                o,
                "  no members joined (the router answers for it itself, CA2)"
            );
        }
        if a.members.is_empty() {
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<12} {:>5} {:>6}  {:<5} traffic",
            "member", "selw", "selp", "state"
        );
        for j in &a.members {
            let id = cl.member_id(&j.member);
            if let Some(id) = id {
                if let Some(seen) = shown_members.get_mut(id.0 as usize) {
                    *seen = true;
                }
            }
            let up = id.and_then(|id| snapshot.member(id)).is_some_and(|m| m.up);
            render_alias_member(
                &mut o,
                j,
                join_state(j.joined, up),
                traffic(j.joined, snap_alias, id),
            );
        }
        if let Some(st) = status.and_then(|st| st.aliases.iter().find(|x| x.name == a.name)) {
            render_alias_traffic(&mut o, st);
        }
    }
    let all = matches!(what, ShowWhat::All);
    if all || shown_members.iter().any(|s| *s) {
        let _ = writeln!(
            o,
            "\nmembers (member-wide totals over every alias: the data plane counts per member)"
        );
        let _ = writeln!(
            o,
            "  {:<12} {:<5} {:<17} {:<13} {:>12} {:>10}",
            "member", "state", "mac", "mac from", "packets", "flows"
        );
        for (i, m) in cl.members.iter().enumerate() {
            if (!all && !shown_members[i]) || crate::reload::is_retired(m) {
                continue;
            }
            let id = MemberId(i as u32);
            let up = snapshot.member(id).is_some_and(|m| m.up);
            let (packets, flows) = counters(id);
            // A member without a usable MAC is down whatever its adverts say (CA3); the
            // `mac from` column says why.
            let mac = m
                .mac
                .current()
                .map_or_else(|| "-".to_string(), |m| fmt_mac(&m));
            // Static members' probes (issue 10): why a static member is down.
            let health = health
                .and_then(|h| h.member(&m.name))
                .map_or_else(String::new, |h| {
                    format!(
                        "  health: {} ({}), {} fails",
                        if h.up { "up" } else { "down" },
                        h.check,
                        h.fails
                    )
                });
            let _ = writeln!(
                o,
                "  {:<12} {:<5} {:<17} {:<13} {:>12} {:>10}{health}",
                m.name,
                if up { "up" } else { "down" },
                mac,
                m.mac.source(),
                packets,
                flows
            );
        }
    }
    // out_alias (CA9): only when some member has a range, so other clusters' output is as before.
    let ranges = crate::out_alias::ranges(cl);
    if all && !(ranges.used.is_empty() && ranges.refused.is_empty()) {
        let _ = writeln!(
            o,
            "\nout_alias source ports (replies steered by range, docs/out_alias.md)"
        );
        for (i, m) in cl.members.iter().enumerate() {
            if m.out_alias.is_some() {
                let _ = writeln!(o, "  {:<12} {}", m.name, ranges.of(i));
            }
        }
    }
    if all {
        let _ = writeln!(
            o,
            "\nservices (unlisted ports are in_single; policies: docs/clua_services.md)"
        );
        if cl.services.is_empty() {
            let _ = writeln!(o, "  none");
        }
        for s in &cl.services {
            let mode = match s.options.mode() {
                ServiceMode::InMulti => "in_multi",
                ServiceMode::InNoalias => "in_noalias",
                ServiceMode::InSingle => "in_single",
            };
            let mut extra = Vec::new();
            for (on, n) in [
                (s.options.in_nolocal, "in_nolocal"),
                (s.options.out_alias, "out_alias"),
                (s.options.static_port, "static"),
            ] {
                if on {
                    extra.push(n);
                }
            }
            // The load-balancing policy of an in_multi port (issue 9; SC1–SC3); other ports
            // have none ("-").
            let policy = crate::services::effective_policy(&s.options);
            let _ = writeln!(
                o,
                "  {:<14} {:>5}/{:<4} {:<10} {:<15} {}",
                s.name,
                s.port,
                s.proto.name(),
                mode,
                policy,
                extra.join(",")
            );
        }
        for note in service_notes(&cl.services) {
            let _ = writeln!(o, "  {note}");
        }
    }
    o
}

/// One port's drop-related counters for `cluamgr -s` (issue 11, capture part): the PMD's
/// extended statistics and the AF_XDP sockets' own counters. aliasd reads them (clua_dpdk);
/// the control plane has no port handles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortDrops {
    /// The port.
    pub name: String,
    /// xstats by name, in the driver's order.
    pub xstats: Vec<(String, u64)>,
    /// Per AF_XDP socket (RX queue): `rx_ring_full`, `fill_ring_empty`, `rx_dropped`,
    /// `rx_invalid_descs`, `tx_invalid_descs`, in that order.
    pub xsk: Vec<(u32, [u64; 5])>,
}

/// The `ports (PMD xstats ...)` section of `cluamgr -s`: per port its non-zero xstats and every
/// AF_XDP socket drop counter (zeros included: a zero is what an operator checks for).
pub fn render_port_drops(o: &mut String, ports: &[PortDrops]) {
    if ports.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nports: PMD extended statistics (non-zero; clua_port_xstats_total) and AF_XDP socket drops"
    );
    for p in ports {
        let nonzero: Vec<String> = p
            .xstats
            .iter()
            .filter(|(_, v)| *v != 0)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let _ = writeln!(
            o,
            "  {}: {}",
            p.name,
            if nonzero.is_empty() {
                "no non-zero xstats".to_string()
            } else {
                nonzero.join(" ")
            }
        );
        for (q, [full, empty, dropped, rx_inv, tx_inv]) in &p.xsk {
            let _ = writeln!(
                o,
                "    xsk queue {q}: rx_ring_full={full} fill_ring_empty={empty} rx_dropped={dropped} rx_invalid_descs={rx_inv} tx_invalid_descs={tx_inv}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use clua_pipeline::snapshot::{MemberId, PortId};

    use super::*;
    use crate::apply::tests::{run, state, MACS};
    use crate::apply::{IN_NOLOCAL_NOTE, OUT_ALIAS_NOTE, STATIC_NOTE};

    fn show(s: &ControlState, what: ShowWhat, counters: MemberCounters) -> String {
        let snap = s.cluster.snapshot(5, &MACS).unwrap();
        render_show(s, &snap, &what, counters, None)
    }

    /// The blocks of `-s` output, separated by blank lines, by their first line.
    fn block<'a>(out: &'a str, first: &str) -> &'a str {
        out.split("\n\n")
            .map(|b| b.trim_start_matches('\n'))
            .find(|b| b.starts_with(first))
            .unwrap_or_else(|| panic!("no block starting `{first}` in\n{out}"))
    }

    /// Issue 7: the data plane counts packets and flows per member, not per alias, so an
    /// alias must not show them as its own: m1 is busy (on web), `cluster` is idle.
    #[test]
    fn an_idle_alias_does_not_show_a_busy_members_totals() {
        let s = state();
        let counters = |id: MemberId| if id.0 == 0 { (123_456, 789) } else { (0, 0) };
        let out = show(&s, ShowWhat::All, &counters);
        for alias in ["alias cluster", "alias web"] {
            let b = block(&out, alias);
            assert!(!b.contains("123456") && !b.contains("789"), "{b}");
            assert!(b.contains("m1"), "the alias lists its members: {b}");
        }
        assert_eq!(out.matches("123456").count(), 1, "{out}");
        let members = block(&out, "members");
        assert!(members.contains("member-wide"), "{members}");
        let m1 = members
            .lines()
            .find(|l| l.trim_start().starts_with("m1 "))
            .unwrap();
        assert_eq!(
            m1.split_whitespace().collect::<Vec<_>>(),
            [
                "m1",
                "up",
                "02:00:00:00:01:01",
                "configured",
                "123456",
                "789"
            ]
        );
        // One alias: its block, and the totals of its members only.
        let cmd = crate::command::parse_args(["-s", "cluster"]).unwrap();
        let crate::command::Command::Show(what) = cmd else {
            panic!("{cmd:?}")
        };
        let one = show(&s, what, &counters);
        assert!(!block(&one, "alias cluster").contains("123456"), "{one}");
        assert!(block(&one, "members").contains("123456"), "{one}");
    }

    /// Issue 8: a member's MAC and where it comes from (configured, or ARP and its state); a
    /// member whose MAC ARP has not resolved, or that stopped answering, is down (CA3).
    #[test]
    fn member_macs_say_whether_configured_or_learned() {
        use crate::model::MemberMac;
        let mut s = state();
        s.cluster.members[1].mac = MemberMac::Unresolved;
        s.cluster.members[2].mac = MemberMac::Expired([2, 0, 0, 0, 9, 3]);
        let out = show(&s, ShowWhat::All, &|_| (0, 0));
        let members = block(&out, "members");
        let row = |name: &str| -> Vec<String> {
            let l = members
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} in {members}"));
            l.split_whitespace().map(str::to_string).collect()
        };
        assert_eq!(row("m1")[1..4], ["up", "02:00:00:00:01:01", "configured"]);
        assert_eq!(row("m2")[1..4], ["down", "-", "arp:resolving"]);
        assert_eq!(
            row("m3")[1..4],
            ["down", "02:00:00:00:09:03", "arp:expired"]
        );
        s.cluster.members[1].mac = MemberMac::Learned([2, 0, 0, 0, 9, 2]);
        let out = show(&s, ShowWhat::All, &|_| (0, 0));
        let members = block(&out, "members");
        assert!(
            members
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()[..4]
                    == ["m2", "up", "02:00:00:00:09:02", "arp:learned"]),
            "{members}"
        );
    }

    /// A member that left an alias is listed as left with the attributes it keeps.
    #[test]
    fn a_member_that_left_is_shown_as_left_with_its_attributes() {
        let (s, _) = run(&state(), &["-a", "alias=web,leave", "--member", "m1"]).unwrap();
        let out = show(&s, ShowWhat::All, &|_| (0, 0));
        let web = block(&out, "alias web");
        let m1 = web
            .lines()
            .find(|l| l.trim_start().starts_with("m1 "))
            .unwrap();
        assert_eq!(
            m1.split_whitespace().collect::<Vec<_>>(),
            ["m1", "3", "1", "left", "-"]
        );
    }

    /// Issue 7 / CA2, CA4: an alias outside every client subnet gets no proxy ARP; it is shown
    /// as routed, not as a common-subnet alias. The words follow the data plane's own ARP rule.
    #[test]
    fn how_an_alias_is_reached_is_said_as_the_router_does_it() {
        let s = state();
        let (s, changes) = run(&s, &["-a", "alias=203.0.113.5"]).unwrap();
        assert!(changes[0].contains(ROUTED), "{changes:?}");
        let (s, _) = run(&s, &["-a", "alias=203.0.113.6,virtual"]).unwrap();
        let (s, _) = run(&s, &["-a", "alias=198.51.100.120,virtual"]).unwrap();
        let out = show(&s, ShowWhat::All, &|_| (0, 0));
        let web = block(&out, "alias web");
        assert!(
            web.contains("common subnet: proxy ARP on port client (198.51.100.2/24)"),
            "{web}"
        );
        let routed = block(&out, "alias 203.0.113.5");
        assert!(
            routed.contains(ROUTED) && !routed.contains("common"),
            "{routed}"
        );
        let virt = block(&out, "alias 203.0.113.6");
        assert!(
            virt.contains("virtual subnet") && virt.contains("no proxy ARP"),
            "{virt}"
        );
        let virt_in = block(&out, "alias 198.51.100.120");
        assert!(virt_in.contains("proxy ARP on port client"), "{virt_in}");
        // The same rule as the ARP responder's.
        let snap = s.cluster.snapshot(6, &MACS).unwrap();
        for a in &s.cluster.aliases {
            let answered = (0..snap.ports.len()).any(|p| {
                crate::arp::answers_for(&snap, &Default::default(), p as PortId, a.address)
                    .is_some()
            });
            assert_eq!(answered, !proxy_arp_ports(&s.cluster, a.address).is_empty());
        }
    }

    /// Issue 7: attributes stored but not acted on by this router say where and when they take
    /// effect, in `-s` as in the reply.
    #[test]
    fn stored_attributes_say_where_they_take_effect() {
        let (s, _) = run(&state(), &["-a", "alias=web,rpri=100"]).unwrap();
        let (s, _) = run(&s, &["--register", "22/tcp,in_nolocal"]).unwrap();
        let (s, _) = run(&s, &["--register", "513/tcp,in_multi,out_alias,static"]).unwrap();
        let out = show(&s, ShowWhat::All, &|_| (0, 0));
        let web = block(&out, "alias web");
        assert!(web.contains(&format!("rpri 100: {RPRI_NOTE}")), "{web}");
        let services = block(&out, "services");
        for note in [IN_NOLOCAL_NOTE, OUT_ALIAS_NOTE, STATIC_NOTE] {
            assert!(services.contains(note), "{services}");
        }
        assert!(services.contains("in_nolocal (22/tcp)"), "{services}");
    }

    /// Issue 9: each service line says its policy (SC1–SC3): in_multi ports their policy or
    /// `wrr (default)`, other ports `-`.
    #[test]
    fn services_show_their_policy() {
        let (s, _) = run(&state(), &["--register", "21/tcp,in_multi,wildcard_sticky"]).unwrap();
        let (s, _) = run(&s, &["--register", "8080/tcp,in_multi"]).unwrap();
        let (s, _) = run(&s, &["--register", "53/udp,in_multi,weighted"]).unwrap();
        let (s, _) = run(&s, &["--register", "22/tcp,in_single"]).unwrap();
        let out = show(&s, ShowWhat::All, &|_| (0, 0));
        let services = block(&out, "services");
        let line = |port: &str| {
            services
                .lines()
                .find(|l| l.contains(port))
                .unwrap_or_else(|| panic!("{port} in {services}"))
                .split_whitespace()
                .skip(2)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(line("21/tcp"), "in_multi wildcard_sticky");
        assert_eq!(line("8080/tcp"), "in_multi wrr");
        assert!(services.contains("wrr (default)"), "{services}");
        assert_eq!(line("53/udp"), "in_multi weighted");
        assert_eq!(line("22/tcp"), "in_single -");
    }

    /// CA9: each member's out_alias range, in use or refused (and why); no section without one.
    #[test]
    fn out_alias_ranges_are_shown() {
        let s = state();
        assert!(!show(&s, ShowWhat::All, &|_| (0, 0)).contains("out_alias source ports"));
        let mut s = s;
        s.cluster.members[0].out_alias = Some("61000-61999".parse().unwrap());
        s.cluster.members[1].out_alias = Some("61500-62999".parse().unwrap());
        s.cluster.members[1].agent = true;
        let out = show(&s, ShowWhat::All, &|_| (0, 0));
        let b = block(&out, "out_alias source ports");
        let m0 = &s.cluster.members[0].name;
        let m1 = &s.cluster.members[1].name;
        assert!(b.contains(&format!("{m0:<12} 61000-61999")), "{b}");
        assert!(
            b.contains(&format!(
                "{m1:<12} refused: out_alias ports 61500-62999 overlap member {m0}'s 61000-61999"
            )),
            "{b}"
        );
    }

    #[test]
    fn port_drops_show_nonzero_xstats_and_every_socket_counter() {
        let mut o = String::new();
        render_port_drops(&mut o, &[]);
        assert_eq!(o, "", "no ports, no section");
        render_port_drops(
            &mut o,
            &[
                PortDrops {
                    name: "client".into(),
                    xstats: vec![("rx_good_packets".into(), 12), ("rx_errors".into(), 0)],
                    xsk: vec![(0, [171, 2, 0, 0, 0])],
                },
                PortDrops {
                    name: "ic0".into(),
                    ..PortDrops::default()
                },
            ],
        );
        assert!(o.contains("\n  client: rx_good_packets=12\n"), "{o}");
        assert!(!o.contains("rx_errors"), "{o}");
        assert!(
            o.contains("    xsk queue 0: rx_ring_full=171 fill_ring_empty=2 rx_dropped=0 rx_invalid_descs=0 tx_invalid_descs=0\n"),
            "{o}"
        );
        assert!(o.contains("  ic0: no non-zero xstats\n"), "{o}");
    }
}
