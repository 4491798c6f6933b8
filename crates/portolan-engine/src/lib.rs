//! Portolan's scanning engine: what to scan (targets, ports, services table), and how.
pub mod connect;
pub mod datadir;
pub mod discovery;
pub mod dns;
pub mod echo_ping;
pub mod netif;
pub mod permutation;
pub mod ports;
pub mod raw;
pub mod report;
pub mod scheduler;
pub mod services;
pub mod syn;
pub mod syn_driver;
pub mod sys;
pub mod targets;
pub mod timing;
