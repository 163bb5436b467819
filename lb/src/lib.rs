//! aliasd, the clua alias router: configuration, the per-core worker loop over DPDK ports, the
//! control thread (ARP, ICMP, snapshots) and metrics.

pub mod capture;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod flows_file;
pub mod idle;
pub mod metrics;
pub mod notify;
pub mod punt;
pub mod records;
pub mod reload;
pub mod worker;
