//! Every drop visible (issue 11): the PMD's extended statistics and the AF_XDP sockets' own
//! counters, per port, folded at scrape time like the rest.
//!
//! Under 100 KB HTTP downloads the router's veth dropped frames its XDP program could not hand
//! to aliasd's AF_XDP socket (RX ring full) while `clua_port_rx_missed_total` stayed 0: net_af_xdp
//! in DPDK 22.11 has no xstats of its own and adds only the socket's `rx_dropped` to `imissed`.
//! The socket's ring-full and fill-ring-empty counts come from the kernel
//! ([`clua_dpdk::xsk_stats`]).

use clua_dpdk::XskStats;
use metrics::counter;

use super::PortCounters;

/// Descriptions (`# HELP`) of the families below.
pub(super) const COUNTERS: &[(&str, &str)] = &[
    (
        "clua_port_xstats_total",
        "The PMD's extended statistics (rte_eth_xstats), by port and xstat name.",
    ),
    (
        "clua_port_xsk_rx_ring_full_total",
        "Frames the kernel dropped because the AF_XDP socket's RX ring was full (aliasd too slow or the ring too small), by port and queue.",
    ),
    (
        "clua_port_xsk_fill_ring_empty_total",
        "Times the kernel found the AF_XDP socket's fill ring empty (no buffer to receive into), by port and queue.",
    ),
    (
        "clua_port_xsk_rx_dropped_total",
        "Frames the AF_XDP socket dropped for other reasons (e.g. larger than a frame), by port and queue.",
    ),
    (
        "clua_port_xsk_rx_invalid_descs_total",
        "Invalid descriptors the kernel found in the AF_XDP fill ring, by port and queue.",
    ),
    (
        "clua_port_xsk_tx_invalid_descs_total",
        "Invalid descriptors in the AF_XDP TX ring, by port and queue.",
    ),
    (
        "clua_port_xsk_tx_ring_empty_total",
        "Times the kernel was woken to send and found the AF_XDP TX ring empty, by port and queue.",
    ),
];

const XSK: &[(&str, fn(&XskStats) -> u64)] = &[
    ("clua_port_xsk_rx_ring_full_total", |s| s.rx_ring_full),
    ("clua_port_xsk_fill_ring_empty_total", |s| s.fill_ring_empty),
    ("clua_port_xsk_rx_dropped_total", |s| s.rx_dropped),
    ("clua_port_xsk_rx_invalid_descs_total", |s| s.rx_invalid),
    ("clua_port_xsk_tx_invalid_descs_total", |s| s.tx_invalid),
    ("clua_port_xsk_tx_ring_empty_total", |s| s.tx_ring_empty),
];

/// Folds the ports' xstats and AF_XDP socket counters (inside the exporter's recorder).
pub(super) fn fold(ports: &[PortCounters]) {
    for p in ports {
        for (name, v) in &p.xstats {
            counter!("clua_port_xstats_total", "port" => p.name.clone(), "name" => name.clone())
                .absolute(*v);
        }
        for s in &p.xsk {
            for &(metric, f) in XSK {
                counter!(metric, "port" => p.name.clone(), "queue" => s.queue_id.to_string())
                    .absolute(f(s));
            }
        }
    }
}

/// The interface an `net_af_xdp` port's devargs name (`iface=NAME`), if it is one.
pub fn af_xdp_iface(devargs: &str) -> Option<&str> {
    let mut parts = devargs.split(',');
    if !parts.next()?.starts_with("net_af_xdp") {
        return None;
    }
    parts.find_map(|kv| kv.strip_prefix("iface="))
}

/// The sockets of `all` bound to interface `ifindex`, by queue.
pub fn port_sockets(all: &[XskStats], ifindex: Option<u32>) -> Vec<XskStats> {
    let Some(i) = ifindex else {
        return Vec::new();
    };
    let mut v: Vec<XskStats> = all.iter().filter(|s| s.ifindex == i).copied().collect();
    v.sort_by_key(|s| s.queue_id);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn af_xdp_devargs_name_their_interface() {
        assert_eq!(af_xdp_iface("net_af_xdp0,iface=cl12-rc"), Some("cl12-rc"));
        assert_eq!(
            af_xdp_iface("net_af_xdp1,start_queue=0,iface=v1,queue_count=2"),
            Some("v1")
        );
        assert_eq!(af_xdp_iface("net_af_packet0,iface=v1"), None);
        assert_eq!(af_xdp_iface("net_af_xdp0"), None);
    }

    #[test]
    fn sockets_are_those_of_the_port_by_queue() {
        let s = |ifindex, queue_id| XskStats {
            ifindex,
            queue_id,
            ..XskStats::default()
        };
        let all = [s(5, 1), s(6, 0), s(5, 0)];
        let got: Vec<_> = port_sockets(&all, Some(5))
            .iter()
            .map(|x| x.queue_id)
            .collect();
        assert_eq!(got, vec![0, 1]);
        assert!(port_sockets(&all, None).is_empty());
    }
}
