//! The clua control plane: the cluster model and the snapshots it builds for the workers, and
//! the packets the router answers itself (ARP for aliases, ICMP echo in alias context).
#![forbid(unsafe_code)]

pub mod advert;
pub mod alias_config;
pub mod apply;
pub mod arp;
pub mod bfd;
pub mod boots;
pub mod capture;
pub mod command;
pub mod config_error;
pub mod frame;
pub mod icmp;
pub mod keyfile;
pub mod line_error;
pub mod members;
pub mod model;
pub mod name;
pub mod neighbors;
pub mod out_alias;
pub mod plane;
pub mod protocol;
pub mod reload;
pub mod rip;
pub mod routers;
pub mod services;
pub mod show;
pub mod signed;
pub mod simulate;
pub mod socket;
pub mod status;
pub mod sync;
#[cfg(test)]
mod test_rng;
