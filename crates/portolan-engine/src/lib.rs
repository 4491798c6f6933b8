//! Portolan's scanning engine: what to scan (targets, ports, services table), and how.
pub mod connect;
pub mod datadir;
pub mod discovery;
pub mod dns;
pub mod driver;
pub mod payloads;
pub mod permutation;
pub mod ports;
pub mod raw;
pub mod report;
pub mod scan;
pub mod scheduler;
pub mod services;
pub mod sys;
pub mod targets;
pub mod timing;
