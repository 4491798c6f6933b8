//! Portolan's scanning engine: what to scan (targets, ports, services table), and how.
pub mod connect;
pub mod discovery;
pub mod dns;
pub mod scheduler;
pub mod sys;
pub mod timing;
