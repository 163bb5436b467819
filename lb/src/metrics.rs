//! Metrics. The packet path counts in plain per-core atomics ([`CoreCounters`], written by one
//! core each), the control thread in [`ControlCounters`]; nothing is recorded through the
//! `metrics` facade per packet. At each scrape an [`Exporter`] folds those counters in (summed
//! over cores) on its own `metrics-exporter-prometheus` recorder and renders the Prometheus text
//! format (0.0.4). There is no global recorder: every [`Exporter`] is independent, so tests
//! build as many as they like.
//!
//! [`MetricsServer`] serves the text on its own threads, never on the control thread (issue 7:
//! an idle HTTP client on the control thread delayed ARP replies for seconds).

pub mod drops;
mod http;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use clua_pipeline::{CoreCounters, DropReason, PuntReason, Snapshot};
use metrics::{counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use metrics_util::MetricKindMask;

pub use http::MetricsServer;

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
    /// The PMD's extended statistics, by name (issue 11).
    pub xstats: Vec<(String, u64)>,
    /// The port's AF_XDP sockets' own counters, one per queue (issue 11; empty on other PMDs).
    pub xsk: Vec<clua_dpdk::XskStats>,
}

/// Reads the ports' PMD statistics at scrape time.
pub type PortStatsFn = Box<dyn Fn() -> Vec<PortCounters> + Send + Sync>;

/// Reads labelled counters at scrape time, e.g. advert outcomes
/// (`clua_ctl::members::AdvertCounters::iter`).
pub type LabelledCountsFn = Box<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// Everything a scrape reads. The daemon builds it once; every field is shared with the thread
/// that writes it, so a scrape never has to ask the control thread or a worker for anything.
pub struct MetricsSource {
    /// One per worker, in worker order (the `worker` label is the index).
    pub cores: Vec<Arc<CoreCounters>>,
    /// The control thread's counters.
    pub control: Arc<ControlCounters>,
    /// The snapshot in force: member names and states, generation.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// PMD port statistics.
    pub ports: PortStatsFn,
    /// Member advert outcomes (`clua_member_adverts_total{outcome=..}`), when adverts are on.
    pub adverts: Option<LabelledCountsFn>,
}

impl MetricsSource {
    /// The short stop summary (see [`stop_summary`]) of the counters as they are now.
    pub fn stop_summary(&self, uptime: Option<Duration>) -> String {
        stop_summary(&self.snapshot.load(), &self.cores, &self.control, uptime)
    }
}

/// Counters with their `# HELP` text. Labelled ones carry the label in the name's comment.
const COUNTERS: &[(&str, &str)] = &[
    (
        "clua_member_arp_requests_total",
        "ARP requests sent to resolve or refresh member MACs (members without `mac`).",
    ),
    (
        "clua_member_mac_learned_total",
        "Member MACs learned by ARP where none was known.",
    ),
    (
        "clua_member_mac_changed_total",
        "Member MACs that changed (followed at once).",
    ),
    (
        "clua_member_mac_expired_total",
        "Member MACs that expired (refreshes unanswered): no new flows until answered.",
    ),
    (
        "clua_rip_updates_sent_total",
        "RIP response packets sent (periodic, triggered, answers, shutdown).",
    ),
    (
        "clua_rip_triggered_updates_total",
        "RIP triggered updates (per port per change).",
    ),
    ("clua_rip_requests_answered_total", "RIP requests answered."),
    (
        "clua_rip_responses_received_total",
        "Valid RIP responses heard from other routers (never installed).",
    ),
    ("clua_rip_refused_total", "RIP packets refused, by reason."),
    (
        "clua_bfd_packets_received_total",
        "BFD control packets accepted.",
    ),
    ("clua_bfd_packets_sent_total", "BFD control packets sent."),
    (
        "clua_bfd_state_changes_total",
        "BFD session state changes (each also logged).",
    ),
    (
        "clua_bfd_refused_total",
        "BFD packets refused, by reason (RFC 5880 6.8.6 and RFC 5881 checks).",
    ),
    (
        "clua_router_messages_sent_total",
        "Router protocol announcements and goodbyes sent.",
    ),
    (
        "clua_router_messages_received_total",
        "Router protocol messages received, by outcome (accepted, or the refusal's reason).",
    ),
    (
        "clua_router_elections_total",
        "Proxy-ARP elections that changed the aliases this router answers ARP for.",
    ),
    (
        "clua_member_adverts_total",
        "Member adverts by outcome (accepted, goodbye, replayed, rejections by reason).",
    ),
    (
        "clua_sync_messages_sent_total",
        "Flow hand-off datagrams of flow records sent to the peer routers (issue 9).",
    ),
    (
        "clua_sync_records_sent_total",
        "Flow records handed to the peer routers.",
    ),
    (
        "clua_sync_requests_sent_total",
        "Whole-table requests sent (this router starting).",
    ),
    (
        "clua_sync_messages_received_total",
        "Authentic, fresh flow hand-off datagrams received.",
    ),
    (
        "clua_sync_records_received_total",
        "Flow records received in them.",
    ),
    (
        "clua_sync_records_installed_total",
        "Received flow records handed to the workers to install.",
    ),
    (
        "clua_sync_requests_received_total",
        "Whole-table requests received from starting peers (each starts a table walk).",
    ),
    (
        "clua_sync_records_dropped_total",
        "Flow records dropped, by reason (rate_limit, unknown_member, unmapped).",
    ),
    (
        "clua_sync_messages_refused_total",
        "Flow hand-off datagrams refused, by reason (bad_tag, replayed, truncated, ...).",
    ),
    ("clua_rx_packets_total", "Packets received by workers."),
    (
        "clua_forwarded_packets_total",
        "Packets transmitted by workers: forwarded to members, plus in_noalias refusals.",
    ),
    ("clua_dropped_packets_total", "Packets dropped, by reason."),
    (
        "clua_punted_packets_total",
        "Packets handed to the control thread, by reason.",
    ),
    (
        "clua_punt_dropped_packets_total",
        "Punted packets dropped because the control thread's queue for their reason was full.",
    ),
    (
        "clua_member_packets_total",
        "Packets forwarded to each member.",
    ),
    (
        "clua_member_flows_total",
        "New flows (TCP connections, in_multi UDP datagrams) given to each member.",
    ),
    (
        "clua_member_health_probes_total",
        "Health probes of static members, by member and result (ok, timeout, refused, not_sent; issue 10).",
    ),
    ("clua_conn_hits_total", "Connection-table hits."),
    (
        "clua_conn_inserts_total",
        "Connection-table entries created.",
    ),
    (
        "clua_conn_evictions_total",
        "Live connection-table entries evicted.",
    ),
    (
        "clua_conn_syn_without_slot_total",
        "Client SYNs forwarded without a connection-table entry (no half-open or free slot).",
    ),
    (
        "clua_refusals_sent_total",
        "in_noalias packets answered with a TCP RST or ICMP port unreachable.",
    ),
    (
        "clua_icmp_errors_forwarded_total",
        "ICMP errors to an alias forwarded to the member owning the quoted flow (CA7).",
    ),
    (
        "clua_icmp_errors_handed_total",
        "ICMP errors passed to another worker, whose table may hold the quoted flow (issue 12).",
    ),
    (
        "clua_out_alias_steered_packets_total",
        "Replies to members' out_alias connections steered to the member by its source-port range (CA9).",
    ),
    (
        "clua_fragments_held_total",
        "IPv4 fragments held until their datagram's first fragment arrived (issue 10).",
    ),
    (
        "clua_fragments_released_total",
        "Held IPv4 fragments released to their datagram's member.",
    ),
    (
        "clua_handoff_records_emitted_total",
        "Flow records the workers handed to the control thread, for peer routers (issue 9) or other workers (affinities, issue 12).",
    ),
    (
        "clua_handoff_ring_full_total",
        "Flow records dropped because a worker's hand-off ring was full.",
    ),
    (
        "clua_handoff_installed_total",
        "Flows handed over by peers (or the flows file) installed in a worker's table.",
    ),
    (
        "clua_handoff_refreshed_total",
        "Handed-over flows whose local entry had the same member (expiry extended).",
    ),
    (
        "clua_handoff_kept_total",
        "Handed-over flows ignored: the local entry names another member and stays.",
    ),
    (
        "clua_handoff_refused_total",
        "Handed-over flows not installed: no slot, or no time left.",
    ),
    (
        "clua_handoff_install_ring_full_total",
        "Handed-over flows dropped because a worker's install ring was full.",
    ),
    (
        "clua_affinities_adopted_total",
        "Sticky/wildcard_sticky affinities another worker wrote, taken into a worker's table (issue 12).",
    ),
    (
        "clua_affinities_kept_total",
        "Affinities from another worker ignored: the local one names another member and is newer.",
    ),
    (
        "clua_affinities_refused_total",
        "Affinities from another worker not installed: no slot, or no time left.",
    ),
    (
        "clua_affinities_ring_full_total",
        "Affinities from another worker dropped because a worker's ring of them was full.",
    ),
    ("clua_arp_replies_total", "ARP replies sent."),
    ("clua_arp_ignored_total", "ARP packets not for us."),
    ("clua_arp_malformed_total", "Malformed ARP packets."),
    ("clua_icmp_echo_replies_total", "ICMP echo replies sent."),
    (
        "clua_icmp_ignored_total",
        "ICMP packets punted but not answered.",
    ),
    (
        "clua_gratuitous_arp_total",
        "Gratuitous ARP announcements sent.",
    ),
    (
        "clua_control_tx_failed_total",
        "Control packets the port did not accept.",
    ),
    (
        "clua_port_rx_packets_total",
        "Packets received by the port (PMD).",
    ),
    (
        "clua_port_tx_packets_total",
        "Packets sent by the port (PMD).",
    ),
    (
        "clua_port_rx_missed_total",
        "Packets the port dropped for lack of RX descriptors.",
    ),
    ("clua_port_rx_errors_total", "Port RX errors."),
    ("clua_port_tx_errors_total", "Port TX errors."),
    (
        "clua_port_rx_nombuf_total",
        "Port RX mbuf allocation failures.",
    ),
];

const GAUGES: &[(&str, &str)] = &[
    (
        "clua_member_health_up",
        "Whether a probed static member is up by its health probes (1) or down (0).",
    ),
    (
        "clua_member_health_fails",
        "Consecutive failed health probes of a static member now.",
    ),
    ("clua_member_up", "Whether the member is up."),
    (
        "clua_conn_table_entries",
        "Live connection-table entries (flows and sticky affinities) of the worker at its last occupancy sweep.",
    ),
    (
        "clua_conn_table_slots",
        "Connection-table slots of the worker (its capacity).",
    ),
    (
        "clua_rip_routes",
        "Routes RIP advertises now with metric 1 (CA6).",
    ),
    (
        "clua_bfd_session_up",
        "1 while the BFD session with the peer is Up (RFC 5880), else 0.",
    ),
    (
        "clua_router_peers",
        "Peer alias routers live now (router protocol, issue 8).",
    ),
    (
        "clua_alias_arp_master",
        "1 if this router is the alias's proxy-ARP master (it answers ARP for it), else 0.",
    ),
    (
        "clua_snapshot_generation",
        "Generation of the configuration snapshot in force.",
    ),
];

/// The per-core counters without labels, summed over cores.
/// A metric name and where its value is read.
type Field<T> = (&'static str, fn(&T) -> u64);

const CORE_TOTALS: &[Field<CoreCounters>] = &[
    ("clua_conn_hits_total", |c| get(&c.conn_hits)),
    ("clua_conn_inserts_total", |c| get(&c.conn_inserts)),
    ("clua_conn_evictions_total", |c| get(&c.conn_evictions)),
    ("clua_conn_syn_without_slot_total", |c| {
        get(&c.syn_without_slot)
    }),
    ("clua_refusals_sent_total", |c| get(&c.refusals_sent)),
    ("clua_icmp_errors_forwarded_total", |c| {
        get(&c.icmp_errors_forwarded)
    }),
    ("clua_icmp_errors_handed_total", |c| {
        get(&c.icmp_errors_handed)
    }),
    ("clua_out_alias_steered_packets_total", |c| {
        get(&c.out_alias_steered)
    }),
    ("clua_fragments_held_total", |c| get(&c.frag_held)),
    ("clua_fragments_released_total", |c| get(&c.frag_released)),
    ("clua_handoff_records_emitted_total", |c| {
        get(&c.handoff_emitted)
    }),
    (
        "clua_handoff_ring_full_total",
        |c| get(&c.handoff_ring_full),
    ),
    (
        "clua_handoff_installed_total",
        |c| get(&c.handoff_installed),
    ),
    (
        "clua_handoff_refreshed_total",
        |c| get(&c.handoff_refreshed),
    ),
    ("clua_handoff_kept_total", |c| get(&c.handoff_kept)),
    ("clua_handoff_refused_total", |c| get(&c.handoff_refused)),
    ("clua_handoff_install_ring_full_total", |c| {
        get(&c.handoff_install_full)
    }),
    (
        "clua_affinities_adopted_total",
        |c| get(&c.affinity_adopted),
    ),
    ("clua_affinities_kept_total", |c| get(&c.affinity_kept)),
    (
        "clua_affinities_refused_total",
        |c| get(&c.affinity_refused),
    ),
    ("clua_affinities_ring_full_total", |c| {
        get(&c.affinity_ring_full)
    }),
];

const CONTROL: &[Field<ControlCounters>] = &[
    ("clua_arp_replies_total", |c| get(&c.arp_replies)),
    ("clua_arp_ignored_total", |c| get(&c.arp_ignored)),
    ("clua_arp_malformed_total", |c| get(&c.arp_malformed)),
    ("clua_icmp_echo_replies_total", |c| get(&c.icmp_replies)),
    ("clua_icmp_ignored_total", |c| get(&c.icmp_ignored)),
    ("clua_gratuitous_arp_total", |c| get(&c.garp_sent)),
    ("clua_control_tx_failed_total", |c| get(&c.tx_failed)),
    ("clua_member_arp_requests_total", |c| {
        get(&c.neighbors.requests_sent)
    }),
    ("clua_member_mac_learned_total", |c| {
        get(&c.neighbors.learned)
    }),
    ("clua_member_mac_changed_total", |c| {
        get(&c.neighbors.changed)
    }),
    ("clua_member_mac_expired_total", |c| {
        get(&c.neighbors.expired)
    }),
];

const PORT: &[Field<PortCounters>] = &[
    ("clua_port_rx_packets_total", |p| p.ipackets),
    ("clua_port_tx_packets_total", |p| p.opackets),
    ("clua_port_rx_missed_total", |p| p.imissed),
    ("clua_port_rx_errors_total", |p| p.ierrors),
    ("clua_port_tx_errors_total", |p| p.oerrors),
    ("clua_port_rx_nombuf_total", |p| p.rx_nombuf),
];

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn sum(cores: &[Arc<CoreCounters>], f: impl Fn(&CoreCounters) -> u64) -> u64 {
    cores.iter().map(|c| f(c)).fold(0, u64::wrapping_add)
}

fn member_sum(
    cores: &[Arc<CoreCounters>],
    per_member: fn(&CoreCounters) -> &[AtomicU64],
    id: usize,
) -> u64 {
    sum(cores, |c| per_member(c).get(id).map_or(0, get))
}

/// A Prometheus recorder of its own and the handle that renders it.
pub struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Exporter {
    fn default() -> Self {
        Exporter::new()
    }
}

impl Exporter {
    /// A recorder with every metric described. A series that a scrape does not fold (a member
    /// gone from the snapshot, a port no longer listed) is dropped at that scrape: every live
    /// series is set at every scrape, so an idle timeout of zero removes exactly the others.
    pub fn new() -> Exporter {
        let recorder = PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::ALL, Some(Duration::ZERO))
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for &(name, help) in COUNTERS {
                describe_counter!(name, help);
            }
            for &(name, help) in GAUGES {
                describe_gauge!(name, help);
            }
            for &(name, help) in drops::COUNTERS {
                describe_counter!(name, help);
            }
        });
        Exporter { recorder, handle }
    }

    /// Folds the current counters in and renders the text. `&mut self`: two renders must not
    /// interleave, or one of them could see the other's fold as stale and drop live series.
    pub fn render(&mut self, source: &MetricsSource) -> String {
        self.fold(source);
        self.handle.render()
    }

    fn fold(&self, src: &MetricsSource) {
        let snapshot = src.snapshot.load();
        let ports = (src.ports)();
        let adverts = src.adverts.as_ref().map(|f| f());
        let cores = &src.cores;
        metrics::with_local_recorder(&self.recorder, || {
            for (outcome, n) in adverts.into_iter().flatten() {
                counter!("clua_member_adverts_total", "outcome" => outcome).absolute(n);
            }
            for (i, c) in cores.iter().enumerate() {
                counter!("clua_rx_packets_total", "worker" => i.to_string()).absolute(get(&c.rx));
                counter!("clua_forwarded_packets_total", "worker" => i.to_string())
                    .absolute(get(&c.forwarded));
                // Table occupancy (issue 11): entries over slots is the fill ratio.
                gauge!("clua_conn_table_entries", "worker" => i.to_string())
                    .set(get(&c.conn_live) as f64);
                gauge!("clua_conn_table_slots", "worker" => i.to_string())
                    .set(get(&c.conn_capacity) as f64);
            }
            for &r in DropReason::ALL {
                counter!("clua_dropped_packets_total", "reason" => r.name())
                    .absolute(sum(cores, |c| c.drops_for(r)));
            }
            for r in PuntReason::ALL {
                counter!("clua_punted_packets_total", "reason" => r.name())
                    .absolute(sum(cores, |c| get(&c.punts[r as usize])));
                counter!("clua_punt_dropped_packets_total", "reason" => r.name())
                    .absolute(sum(cores, |c| c.punt_dropped_for(r)));
            }
            for m in snapshot.members.iter().flatten() {
                let id = m.id.0 as usize;
                counter!("clua_member_packets_total", "member" => m.name.clone())
                    .absolute(member_sum(cores, |c| &c.member_packets, id));
                counter!("clua_member_flows_total", "member" => m.name.clone())
                    .absolute(member_sum(cores, |c| &c.member_flows, id));
                let up = f64::from(u8::from(m.up));
                gauge!("clua_member_up", "member" => m.name.clone()).set(up);
            }
            for &(name, f) in CORE_TOTALS {
                counter!(name).absolute(sum(cores, f));
            }
            for &(name, f) in CONTROL {
                counter!(name).absolute(f(&src.control));
            }
            for &(name, f) in PORT {
                for p in &ports {
                    counter!(name, "port" => p.name.clone()).absolute(f(p));
                }
            }
            drops::fold(&ports);
            if let Some(r) = src.control.rip() {
                counter!("clua_rip_updates_sent_total").absolute(r.counters.updates_sent);
                counter!("clua_rip_triggered_updates_total").absolute(r.counters.triggered);
                counter!("clua_rip_requests_answered_total").absolute(r.counters.requests_answered);
                counter!("clua_rip_responses_received_total")
                    .absolute(r.counters.responses_received);
                for e in clua_ctl::rip::RipError::ALL {
                    counter!("clua_rip_refused_total", "reason" => e.name())
                        .absolute(r.counters.refused_for(e));
                }
                gauge!("clua_rip_routes").set(r.routes as f64);
            }
            if let Some(b) = src.control.bfd() {
                counter!("clua_bfd_packets_received_total").absolute(b.counters.received);
                counter!("clua_bfd_packets_sent_total").absolute(b.counters.sent);
                counter!("clua_bfd_state_changes_total").absolute(b.counters.state_changes);
                for (reason, n) in b.counters.refused_by_label() {
                    counter!("clua_bfd_refused_total", "reason" => reason).absolute(n);
                }
                for (peer, up) in b.sessions {
                    gauge!("clua_bfd_session_up", "peer" => peer.to_string())
                        .set(f64::from(u8::from(up)));
                }
            }
            if let Some(r) = src.control.routers() {
                gauge!("clua_router_peers").set(r.peers as f64);
                counter!("clua_router_messages_sent_total").absolute(r.counters.sent);
                counter!("clua_router_elections_total").absolute(r.elections);
                counter!("clua_router_messages_received_total", "outcome" => "accepted")
                    .absolute(r.counters.accepted);
                for (outcome, n) in r.counters.refusals() {
                    counter!("clua_router_messages_received_total", "outcome" => outcome)
                        .absolute(n);
                }
                for (alias, master) in r.masters {
                    gauge!("clua_alias_arp_master", "alias" => alias)
                        .set(f64::from(u8::from(master)));
                }
            }
            if let Some(c) = src.control.sync() {
                fold_sync(&c);
            }
            fold_health(&src.control.health());
            // Exact as f64 up to 2^53 generations.
            gauge!("clua_snapshot_generation").set(snapshot.generation as f64);
        });
    }
}

/// The health probes of static members (issue 10), inside a fold.
fn fold_health(members: &[clua_ctl::members::health::MemberHealth]) {
    use clua_ctl::members::health::ProbeResult;
    for h in members {
        for r in ProbeResult::ALL {
            counter!("clua_member_health_probes_total", "member" => h.member.clone(), "result" => r.name())
                .absolute(h.probes(r));
        }
        gauge!("clua_member_health_up", "member" => h.member.clone())
            .set(f64::from(u8::from(h.up)));
        gauge!("clua_member_health_fails", "member" => h.member.clone()).set(f64::from(h.fails));
    }
}

/// The flow hand-off's counters (issue 9, docs/sync-protocol.md), inside a fold.
fn fold_sync(c: &clua_ctl::sync::SyncCounters) {
    counter!("clua_sync_messages_sent_total").absolute(c.messages_sent);
    counter!("clua_sync_records_sent_total").absolute(c.records_sent);
    counter!("clua_sync_requests_sent_total").absolute(c.requests_sent);
    counter!("clua_sync_messages_received_total").absolute(c.messages_received);
    counter!("clua_sync_records_received_total").absolute(c.records_received);
    counter!("clua_sync_records_installed_total").absolute(c.records_installed);
    counter!("clua_sync_requests_received_total").absolute(c.requests_received);
    for (reason, n) in c.record_drops() {
        counter!("clua_sync_records_dropped_total", "reason" => reason).absolute(n);
    }
    for (reason, n) in c.refusals() {
        counter!("clua_sync_messages_refused_total", "reason" => reason).absolute(n);
    }
}

/// A few lines for the log when aliasd stops: uptime (if given), packets received, forwarded
/// and dropped (the top reasons), punts by reason, control-thread answers, and new flows per
/// member. Lines end in `\n` and carry no program prefix; the caller adds one if it wants.
pub fn stop_summary(
    snapshot: &Snapshot,
    cores: &[Arc<CoreCounters>],
    control: &ControlCounters,
    uptime: Option<Duration>,
) -> String {
    let mut o = String::new();
    let rx = sum(cores, |c| get(&c.rx));
    let fwd = sum(cores, |c| get(&c.forwarded));
    let mut drops: Vec<(&str, u64)> = DropReason::ALL
        .iter()
        .map(|&r| (r.name(), sum(cores, |c| c.drops_for(r))))
        .filter(|&(_, n)| n > 0)
        .collect();
    // Largest first; ties in reason order (a stable sort).
    drops.sort_by_key(|d| std::cmp::Reverse(d.1));
    let dropped: u64 = drops.iter().map(|d| d.1).sum();
    let _ = write!(o, "stop summary");
    if let Some(u) = uptime {
        let _ = write!(o, " after {:.1} s", u.as_secs_f64());
    }
    let _ = write!(
        o,
        ": {rx} packets received, {fwd} forwarded, {dropped} dropped"
    );
    const TOP: usize = 3;
    if !drops.is_empty() {
        let top: Vec<String> = drops
            .iter()
            .take(TOP)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = write!(o, " ({}", top.join(", "));
        if drops.len() > TOP {
            let rest: u64 = drops[TOP..].iter().map(|d| d.1).sum();
            let _ = write!(o, ", other {rest}");
        }
        o.push(')');
    }
    o.push('\n');

    let punts: Vec<String> = PuntReason::ALL
        .iter()
        .map(|&r| (r.name(), sum(cores, |c| get(&c.punts[r as usize]))))
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    let _ = writeln!(
        o,
        "punted: {}; ARP replies {}, echo replies {}, gratuitous ARPs {}, control TX failures {}",
        punts.join(", "),
        get(&control.arp_replies),
        get(&control.icmp_replies),
        get(&control.garp_sent),
        get(&control.tx_failed),
    );

    let flows: Vec<String> = snapshot
        .members
        .iter()
        .flatten()
        .map(|m| {
            let n = member_sum(cores, |c| &c.member_flows, m.id.0 as usize);
            format!("{} {n}", m.name)
        })
        .collect();
    if flows.is_empty() {
        let _ = writeln!(o, "new flows by member: no members");
    } else {
        let _ = writeln!(o, "new flows by member: {}", flows.join(", "));
    }
    if let Some(c) = control.sync() {
        let refused: u64 = c.refusals().map(|(_, n)| n).sum();
        let _ = writeln!(
            o,
            "flow hand-off: {} records sent ({} over the rate limit), {} received, {} installed, {} unknown members, {} datagrams refused",
            c.records_sent, c.rate_limited, c.records_received, c.records_installed, c.unknown_member, refused
        );
    }
    o
}

/// A strict reader of the Prometheus text format (0.0.4), for tests: every sample line must be
/// `name{labels} value`, after a `# TYPE` line for its name (and a `# HELP` line, which we always
/// write), with labels quoted and escaped as the format says.
#[cfg(test)]
pub(crate) mod text_format {
    use std::collections::BTreeMap;

    /// One sample: the label values unescaped.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub value: f64,
    }

    /// Parses `text`, panicking with the line on any violation.
    pub fn parse(text: &str) -> Vec<Sample> {
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut helps: BTreeMap<String, String> = BTreeMap::new();
        let mut family: Option<String> = None;
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = || format!("line {}: {line:?}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(valid_name(name), "{}", at());
                assert!(
                    helps.insert(name.into(), help.into()).is_none(),
                    "second HELP, {}",
                    at()
                );
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{}", at()));
                assert!(valid_name(name), "{}", at());
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{}",
                    at()
                );
                assert!(
                    types.insert(name.into(), kind.into()).is_none(),
                    "second TYPE, {}",
                    at()
                );
                family = Some(name.into());
                continue;
            }
            assert!(!line.starts_with('#'), "unknown comment, {}", at());
            let s = sample(line).unwrap_or_else(|| panic!("not a sample, {}", at()));
            assert_eq!(
                family.as_deref(),
                Some(s.name.as_str()),
                "sample outside its TYPE block, {}",
                at()
            );
            assert!(helps.contains_key(&s.name), "no HELP, {}", at());
            if types[&s.name] == "counter" {
                assert!(s.value >= 0.0, "negative counter, {}", at());
            }
            samples.push(s);
        }
        samples
    }

    fn valid_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
    }

    fn sample(line: &str) -> Option<Sample> {
        let end = line.find(['{', ' '])?;
        let name = &line[..end];
        if !valid_name(name) {
            return None;
        }
        let mut rest = &line[end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let eq = rest.find('=')?;
                let key = &rest[..eq];
                if !valid_name(key) || key.contains(':') {
                    return None;
                }
                let mut chars = rest[eq + 1..].strip_prefix('"')?.char_indices();
                let mut value = String::new();
                let close = loop {
                    match chars.next()? {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next()?.1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            _ => return None,
                        },
                        (_, '\n') => return None,
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key.to_string(), value));
                rest = &rest[eq + 1..][1 + close + 1..];
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else if !rest.starts_with('}') {
                    return None;
                }
            }
        }
        let rest = rest.strip_prefix(' ')?;
        let mut fields = rest.split(' ');
        let v = fields.next()?;
        let value = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse().ok()?,
        };
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().ok()?;
        }
        if fields.next().is_some() {
            return None;
        }
        Some(Sample {
            name: name.into(),
            labels,
            value,
        })
    }

    /// The value of the one sample named `name` with exactly these labels.
    pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = samples.iter().filter(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        });
        let v = found.next()?.value;
        assert!(found.next().is_none(), "{name}{labels:?} twice");
        Some(v)
    }

    #[test]
    fn the_reader_refuses_what_prometheus_refuses() {
        let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"q\\\"\\\\\"} 3\n";
        assert_eq!(parse(ok)[0].labels[0].1, "q\"\\");
        for bad in [
            "# HELP a x\n# TYPE a gauge\na{l=\"unterminated} 1\n",
            "# HELP a x\n# TYPE a gauge\na{l=\"bad \\x escape\"} 1\n",
            "# HELP a x\n# TYPE a gauge\na{l=\"v\"}1\n",
            "# HELP a x\n# TYPE a gauge\na 1 2 3\n",
            "# HELP a x\n# TYPE a gauge\na one\n",
            "# HELP a x\n# TYPE a gauge\nb 1\n",
            "# TYPE a gauge\na 1\n",
        ] {
            let r = std::panic::catch_unwind(|| parse(bad));
            assert!(r.is_err(), "accepted {bad:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::text_format::{parse, value};
    use super::*;
    use clua_pipeline::snapshot::{PortInfo, PortRole};
    use clua_pipeline::{Encap, Member, MemberId};
    use std::net::Ipv4Addr;
    use std::sync::Mutex;

    fn member(id: u32, name: &str, up: bool) -> Option<Member> {
        Some(Member {
            id: MemberId(id),
            name: name.into(),
            port: 0,
            mac: [2, 0, 0, 0, 1, id as u8],
            ipv4: Ipv4Addr::new(192, 0, 2, 10 + id as u8),
            encap: Encap::L2,
            up,
            listening: None,
        })
    }

    fn snapshot(generation: u64, members: Vec<Option<Member>>) -> Snapshot {
        let ic = PortInfo {
            name: "ic0".into(),
            role: PortRole::Interconnect,
            mac: [2, 0, 0, 0, 0, 2],
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            prefix_len: 24,
            mtu: 1500,
            flow_source: None,
        };
        Snapshot::build(generation, vec![ic], members, vec![], &[]).expect("a valid snapshot")
    }

    struct Fixture {
        source: MetricsSource,
        ports: Arc<Mutex<Vec<PortCounters>>>,
        adverts: Arc<Mutex<Vec<(&'static str, u64)>>>,
    }

    fn fixture() -> Fixture {
        let cores: Vec<_> = (0..2).map(|_| Arc::new(CoreCounters::new(4))).collect();
        let ports = Arc::new(Mutex::new(vec![PortCounters {
            name: "client".into(),
            ipackets: 10,
            ..PortCounters::default()
        }]));
        let adverts = Arc::new(Mutex::new(vec![("accepted", 0), ("replayed", 0)]));
        let (p, a) = (ports.clone(), adverts.clone());
        let source = MetricsSource {
            cores,
            control: Arc::new(ControlCounters::default()),
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot(
                7,
                vec![member(0, "m1", true), None, member(2, "m2", false)],
            ))),
            ports: Box::new(move || p.lock().unwrap().clone()),
            adverts: Some(Box::new(move || a.lock().unwrap().clone())),
        };
        Fixture {
            source,
            ports,
            adverts,
        }
    }

    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Every name today's dashboards, the e2e tests and scripts/demo.py read.
    const NAMES: &[&str] = &[
        "clua_member_adverts_total",
        "clua_rx_packets_total",
        "clua_forwarded_packets_total",
        "clua_dropped_packets_total",
        "clua_punted_packets_total",
        "clua_member_packets_total",
        "clua_member_flows_total",
        "clua_member_up",
        "clua_conn_table_entries",
        "clua_conn_table_slots",
        "clua_conn_hits_total",
        "clua_conn_inserts_total",
        "clua_conn_evictions_total",
        "clua_conn_syn_without_slot_total",
        "clua_refusals_sent_total",
        "clua_icmp_errors_forwarded_total",
        "clua_icmp_errors_handed_total",
        "clua_out_alias_steered_packets_total",
        "clua_arp_replies_total",
        "clua_arp_ignored_total",
        "clua_arp_malformed_total",
        "clua_icmp_echo_replies_total",
        "clua_icmp_ignored_total",
        "clua_gratuitous_arp_total",
        "clua_control_tx_failed_total",
        "clua_port_rx_packets_total",
        "clua_port_tx_packets_total",
        "clua_port_rx_missed_total",
        "clua_port_rx_errors_total",
        "clua_port_tx_errors_total",
        "clua_port_rx_nombuf_total",
        "clua_snapshot_generation",
    ];

    #[test]
    fn every_metric_is_rendered_with_its_labels_summed_over_cores() {
        let f = fixture();
        let s = &f.source;
        add(&s.cores[0].rx, 5);
        add(&s.cores[1].rx, 6);
        add(&s.cores[1].forwarded, 4);
        CoreCounters::drop(&s.cores[0], DropReason::NoMember);
        CoreCounters::drop(&s.cores[1], DropReason::NoMember);
        CoreCounters::drop(&s.cores[1], DropReason::Fragment);
        add(&s.cores[0].punts[PuntReason::Arp as usize], 3);
        add(&s.cores[0].member_packets[2], 8);
        add(&s.cores[1].member_packets[2], 1);
        add(&s.cores[1].member_flows[0], 2);
        add(&s.cores[0].conn_hits, 9);
        add(&s.cores[1].conn_live, 17);
        add(&s.cores[1].conn_capacity, 1024);
        add(&s.cores[0].syn_without_slot, 2);
        add(&s.cores[1].syn_without_slot, 3);
        add(&s.control.arp_replies, 3);
        f.adverts.lock().unwrap()[1].1 = 4;

        let text = Exporter::new().render(s);
        let samples = parse(&text);
        for name in NAMES {
            assert!(
                samples.iter().any(|x| x.name == *name),
                "{name} missing:\n{text}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: no HELP");
        }
        let v = |name: &str, labels: &[(&str, &str)]| {
            value(&samples, name, labels).unwrap_or_else(|| panic!("{name}{labels:?}:\n{text}"))
        };
        assert_eq!(v("clua_rx_packets_total", &[("worker", "0")]), 5.0);
        assert_eq!(v("clua_rx_packets_total", &[("worker", "1")]), 6.0);
        assert_eq!(v("clua_forwarded_packets_total", &[("worker", "1")]), 4.0);
        assert_eq!(
            v("clua_dropped_packets_total", &[("reason", "no_member")]),
            2.0
        );
        assert_eq!(
            v("clua_dropped_packets_total", &[("reason", "fragment")]),
            1.0
        );
        assert_eq!(
            v("clua_dropped_packets_total", &[("reason", "truncated")]),
            0.0
        );
        let reasons = samples
            .iter()
            .filter(|x| x.name == "clua_dropped_packets_total")
            .count();
        assert_eq!(reasons, DropReason::COUNT, "one series per drop reason");
        assert_eq!(v("clua_punted_packets_total", &[("reason", "arp")]), 3.0);
        assert_eq!(v("clua_member_packets_total", &[("member", "m2")]), 9.0);
        assert_eq!(v("clua_member_packets_total", &[("member", "m1")]), 0.0);
        assert_eq!(v("clua_member_flows_total", &[("member", "m1")]), 2.0);
        assert_eq!(v("clua_member_up", &[("member", "m1")]), 1.0);
        assert_eq!(v("clua_member_up", &[("member", "m2")]), 0.0);
        assert_eq!(v("clua_conn_hits_total", &[]), 9.0);
        assert_eq!(v("clua_conn_table_entries", &[("worker", "1")]), 17.0);
        assert_eq!(v("clua_conn_table_slots", &[("worker", "1")]), 1024.0);
        assert_eq!(v("clua_conn_syn_without_slot_total", &[]), 5.0);
        assert_eq!(v("clua_arp_replies_total", &[]), 3.0);
        assert_eq!(v("clua_port_rx_packets_total", &[("port", "client")]), 10.0);
        assert_eq!(
            v("clua_member_adverts_total", &[("outcome", "replayed")]),
            4.0
        );
        assert_eq!(v("clua_snapshot_generation", &[]), 7.0);
        // The line shapes the e2e tests and lb/tests/dpdk_golden.rs match on.
        assert!(text.contains("\nclua_dropped_packets_total{reason=\"no_member\"} 2\n"));
        assert!(text.contains("\nclua_member_up{member=\"m1\"} 1\n"));
    }

    #[test]
    fn xstats_and_xdp_socket_drops_are_exported_per_port_and_queue() {
        let f = fixture();
        {
            let mut p = f.ports.lock().unwrap();
            p[0].xstats = vec![("rx_good_packets".into(), 10), ("rx_q0_errors".into(), 0)];
            p[0].xsk = vec![
                clua_dpdk::XskStats {
                    queue_id: 0,
                    rx_ring_full: 171,
                    fill_ring_empty: 3,
                    ..Default::default()
                },
                clua_dpdk::XskStats {
                    queue_id: 1,
                    rx_dropped: 2,
                    ..Default::default()
                },
            ];
        }
        let text = Exporter::new().render(&f.source);
        let samples = parse(&text);
        let v = |name: &str, labels: &[(&str, &str)]| {
            value(&samples, name, labels).unwrap_or_else(|| panic!("{name}{labels:?}:\n{text}"))
        };
        let xs = "clua_port_xstats_total";
        assert_eq!(
            v(xs, &[("port", "client"), ("name", "rx_good_packets")]),
            10.0
        );
        assert_eq!(v(xs, &[("port", "client"), ("name", "rx_q0_errors")]), 0.0);
        let full = "clua_port_xsk_rx_ring_full_total";
        assert_eq!(v(full, &[("port", "client"), ("queue", "0")]), 171.0);
        assert_eq!(v(full, &[("port", "client"), ("queue", "1")]), 0.0);
        let empty = "clua_port_xsk_fill_ring_empty_total";
        assert_eq!(v(empty, &[("port", "client"), ("queue", "0")]), 3.0);
        let dropped = "clua_port_xsk_rx_dropped_total";
        assert_eq!(v(dropped, &[("port", "client"), ("queue", "1")]), 2.0);
        for (name, _) in drops::COUNTERS {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: no HELP");
            assert!(text.contains(&format!("# TYPE {name} counter")), "{name}");
        }
    }

    #[test]
    fn the_flow_hand_off_is_exported_when_it_runs() {
        let f = fixture();
        let text = Exporter::new().render(&f.source);
        assert!(
            !text.contains("\nclua_sync_"),
            "not without [sync]:\n{text}"
        );
        let mut c = clua_ctl::sync::SyncCounters {
            records_sent: 120,
            records_installed: 77,
            rate_limited: 9,
            unknown_member: 2,
            replayed: 3,
            requests_received: 1,
            ..Default::default()
        };
        c.refused[clua_ctl::sync::wire::SyncError::BadTag.index()] = 4;
        *f.source.control.sync.lock().unwrap() = Some(c);
        let text = Exporter::new().render(&f.source);
        let samples = parse(&text);
        let v = |name: &str, labels: &[(&str, &str)]| {
            value(&samples, name, labels).unwrap_or_else(|| panic!("{name}{labels:?}:\n{text}"))
        };
        assert_eq!(v("clua_sync_records_sent_total", &[]), 120.0);
        assert_eq!(v("clua_sync_records_installed_total", &[]), 77.0);
        assert_eq!(v("clua_sync_requests_received_total", &[]), 1.0);
        assert_eq!(v("clua_sync_records_received_total", &[]), 0.0);
        assert_eq!(
            v(
                "clua_sync_records_dropped_total",
                &[("reason", "rate_limit")]
            ),
            9.0
        );
        assert_eq!(
            v(
                "clua_sync_records_dropped_total",
                &[("reason", "unknown_member")]
            ),
            2.0
        );
        assert_eq!(
            v("clua_sync_messages_refused_total", &[("reason", "bad_tag")]),
            4.0
        );
        assert_eq!(
            v(
                "clua_sync_messages_refused_total",
                &[("reason", "replayed")]
            ),
            3.0
        );
        assert!(text.contains("# HELP clua_sync_records_dropped_total "));
        assert!(text.contains("# TYPE clua_sync_records_sent_total counter"));
    }

    #[test]
    fn static_members_health_probes_are_exported_per_member_and_result() {
        use clua_ctl::members::health::{HealthCheck, MemberHealth};
        let f = fixture();
        let text = Exporter::new().render(&f.source);
        assert!(
            !text.contains("\nclua_member_health"),
            "none probed:\n{text}"
        );
        *f.source.control.health.lock().unwrap() = vec![MemberHealth {
            member: "m2".into(),
            check: HealthCheck::Tcp(80),
            up: false,
            fails: 4,
            probes: [10, 3, 1, 0],
        }];
        let text = Exporter::new().render(&f.source);
        let samples = parse(&text);
        let v = |name: &str, labels: &[(&str, &str)]| {
            value(&samples, name, labels).unwrap_or_else(|| panic!("{name}{labels:?}:\n{text}"))
        };
        let probes = "clua_member_health_probes_total";
        assert_eq!(v(probes, &[("member", "m2"), ("result", "ok")]), 10.0);
        assert_eq!(v(probes, &[("member", "m2"), ("result", "timeout")]), 3.0);
        assert_eq!(v(probes, &[("member", "m2"), ("result", "refused")]), 1.0);
        assert_eq!(v(probes, &[("member", "m2"), ("result", "not_sent")]), 0.0);
        assert_eq!(v("clua_member_health_up", &[("member", "m2")]), 0.0);
        assert_eq!(v("clua_member_health_fails", &[("member", "m2")]), 4.0);
        assert!(text.contains("# TYPE clua_member_health_probes_total counter"));
        assert!(text.contains("# TYPE clua_member_health_up gauge"));
    }

    #[test]
    fn label_values_are_escaped() {
        let f = fixture();
        let odd = "p\"1\\x\ny";
        f.ports.lock().unwrap()[0].name = odd.into();
        let text = Exporter::new().render(&f.source);
        assert!(
            text.contains("clua_port_rx_packets_total{port=\"p\\\"1\\\\x\\ny\"} 10\n"),
            "{text}"
        );
        let samples = parse(&text);
        assert_eq!(
            value(&samples, "clua_port_rx_packets_total", &[("port", odd)]),
            Some(10.0)
        );
    }

    #[test]
    fn each_scrape_folds_the_counters_as_they_are_then() {
        let f = fixture();
        let mut e = Exporter::new();
        let first = parse(&e.render(&f.source));
        assert_eq!(
            value(&first, "clua_rx_packets_total", &[("worker", "1")]),
            Some(0.0)
        );
        add(&f.source.cores[1].rx, 41);
        add(&f.source.control.garp_sent, 2);
        f.ports.lock().unwrap()[0].ipackets = 12;
        f.adverts.lock().unwrap()[0].1 = 1;
        let second = parse(&e.render(&f.source));
        assert_eq!(
            value(&second, "clua_rx_packets_total", &[("worker", "1")]),
            Some(41.0)
        );
        assert_eq!(value(&second, "clua_gratuitous_arp_total", &[]), Some(2.0));
        assert_eq!(
            value(&second, "clua_port_rx_packets_total", &[("port", "client")]),
            Some(12.0)
        );
        assert_eq!(
            value(
                &second,
                "clua_member_adverts_total",
                &[("outcome", "accepted")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn series_of_a_member_gone_from_the_snapshot_go_with_it() {
        let f = fixture();
        let mut e = Exporter::new();
        let before = parse(&e.render(&f.source));
        assert!(value(&before, "clua_member_up", &[("member", "m2")]).is_some());
        f.source
            .snapshot
            .store(Arc::new(snapshot(8, vec![member(0, "m1", false)])));
        f.ports.lock().unwrap().clear();
        let after = parse(&e.render(&f.source));
        for name in [
            "clua_member_up",
            "clua_member_packets_total",
            "clua_member_flows_total",
        ] {
            assert!(value(&after, name, &[("member", "m2")]).is_none(), "{name}");
        }
        assert_eq!(
            value(&after, "clua_member_up", &[("member", "m1")]),
            Some(0.0)
        );
        assert!(!after.iter().any(|s| s.name.starts_with("clua_port_")));
        assert_eq!(value(&after, "clua_snapshot_generation", &[]), Some(8.0));
        // And the live series survive many scrapes in a row.
        for _ in 0..3 {
            let again = parse(&e.render(&f.source));
            assert_eq!(again.len(), after.len());
        }
    }

    #[test]
    fn exporters_are_independent() {
        let (a, b) = (fixture(), fixture());
        add(&a.source.control.arp_replies, 5);
        let (mut ea, mut eb) = (Exporter::new(), Exporter::new());
        let ta = parse(&ea.render(&a.source));
        let tb = parse(&eb.render(&b.source));
        assert_eq!(value(&ta, "clua_arp_replies_total", &[]), Some(5.0));
        assert_eq!(value(&tb, "clua_arp_replies_total", &[]), Some(0.0));
    }

    #[test]
    fn stop_summary_is_short_and_names_the_top_drop_reasons() {
        let f = fixture();
        let s = &f.source;
        add(&s.cores[0].rx, 100);
        add(&s.cores[1].rx, 20);
        add(&s.cores[0].forwarded, 90);
        for (r, n) in [
            (DropReason::NoMember, 10),
            (DropReason::Fragment, 3),
            (DropReason::NotAlias, 5),
            (DropReason::Truncated, 1),
            (DropReason::TxFull, 1),
        ] {
            for _ in 0..n {
                CoreCounters::drop(&s.cores[1], r);
            }
        }
        add(&s.cores[0].punts[PuntReason::Arp as usize], 4);
        add(&s.control.arp_replies, 4);
        add(&s.control.garp_sent, 2);
        add(&s.cores[0].member_flows[0], 7);
        add(&s.cores[1].member_flows[2], 3);

        let text = s.stop_summary(Some(Duration::from_millis(12_340)));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            "stop summary after 12.3 s: 120 packets received, 90 forwarded, 20 dropped \
             (no_member 10, not_alias 5, fragment 3, other 2)"
        );
        assert!(
            lines[1].starts_with("punted: arp 4, icmp_echo 0, "),
            "{text}"
        );
        assert!(lines[1].contains("ARP replies 4"), "{text}");
        assert!(lines[1].contains("gratuitous ARPs 2"), "{text}");
        assert_eq!(lines[2], "new flows by member: m1 7, m2 3");
        assert!(!text.contains("# HELP"), "not the Prometheus text");
        // With the flow hand-off, one line more.
        let mut c = clua_ctl::sync::SyncCounters {
            records_sent: 40,
            rate_limited: 2,
            records_received: 9,
            records_installed: 8,
            unknown_member: 1,
            replayed: 3,
            ..Default::default()
        };
        c.refused[0] = 1;
        *s.control.sync.lock().unwrap() = Some(c);
        let text = s.stop_summary(None);
        assert_eq!(
            text.lines().nth(3),
            Some("flow hand-off: 40 records sent (2 over the rate limit), 9 received, 8 installed, 1 unknown members, 4 datagrams refused"),
            "{text}"
        );

        let idle = stop_summary(&snapshot(1, vec![]), &[], &ControlCounters::default(), None);
        assert!(
            idle.starts_with("stop summary: 0 packets received, 0 forwarded, 0 dropped\n"),
            "{idle}"
        );
        assert!(
            idle.ends_with("new flows by member: no members\n"),
            "{idle}"
        );
    }
}
