//! Every drop visible (issue 11): the PMD's extended statistics and the AF_XDP sockets' own
//! counters, per port, folded at scrape time like the rest.
//!
//! Under 100 KB HTTP downloads the router's veth dropped frames its XDP program could not hand
//! to aliasd's AF_XDP socket (RX ring full) while `clua_port_rx_missed_total` stayed 0: net_af_xdp
//! in DPDK 22.11 has no xstats of its own and adds only the socket's `rx_dropped` to `imissed`.
//! The socket's ring-full and fill-ring-empty counts come from the kernel
//! ([`clua_dpdk::XskSocket::stats`]), per socket; aliasd learns which sockets are a port's by
//! listing them around the port's set-up ([`new_sockets`]).

use clua_dpdk::{XskSocket, XskStats};
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

/// A socket counter family and how to read it.
type XskField = (&'static str, fn(&XskStats) -> u64);

const XSK: &[XskField] = &[
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

/// The AF_XDP sockets that appeared while `setup` ran (a port's queues being set up: one
/// socket per RX queue, in queue order), whatever `setup` returns.
pub fn new_sockets<T>(setup: impl FnOnce() -> T) -> (T, Vec<XskSocket>) {
    let before = clua_dpdk::xsk_sockets();
    let r = setup();
    let mut new = clua_dpdk::xsk_sockets();
    new.retain(|s| !before.contains(s));
    (r, new)
}

/// The counters of a port's sockets, queue `i` for the `i`th; closed ones are left out.
pub fn read_sockets(sockets: &[XskSocket]) -> Vec<XskStats> {
    sockets
        .iter()
        .enumerate()
        .filter_map(|(q, s)| s.stats(q as u32))
        .collect()
}

/// The ports' drop counters for `cluamgr -s` ([`clua_ctl::show::render_port_drops`]): xstats
/// and AF_XDP socket counters, read now (control thread).
pub fn port_drops<'a>(
    names: impl Iterator<Item = &'a str>,
    ports: &[clua_dpdk::Port],
    sockets: &[Vec<clua_dpdk::XskSocket>],
) -> Vec<clua_ctl::show::PortDrops> {
    names
        .zip(ports)
        .enumerate()
        .map(|(i, (name, p))| clua_ctl::show::PortDrops {
            name: name.to_string(),
            xstats: p.xstats().unwrap_or_default(),
            xsk: sockets
                .get(i)
                .map(|s| read_sockets(s))
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    let c = [
                        s.rx_ring_full,
                        s.fill_ring_empty,
                        s.rx_dropped,
                        s.rx_invalid,
                        s.tx_invalid,
                    ];
                    (s.queue_id, c)
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_opened_during_setup_are_the_ports() {
        // Ordinary sockets are not AF_XDP ones: none appear.
        let (udp, new) = new_sockets(|| std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        assert!(new.is_empty(), "{new:?}");
        drop(udp);
        assert!(read_sockets(&[]).is_empty());
    }
}
