//! The clua control plane: the cluster model and the snapshots it builds for the workers, and
//! the packets the router answers itself (ARP for aliases, ICMP echo in alias context).
#![forbid(unsafe_code)]

pub mod advert;
pub mod alias_config;
pub mod apply;
pub mod arp;
pub mod command;
pub mod icmp;
pub mod keyfile;
pub mod line_error;
pub mod listen;
pub mod liveness;
pub mod member_state;
pub mod model;
pub mod name;
pub mod protocol;
pub mod services;
pub mod show;
