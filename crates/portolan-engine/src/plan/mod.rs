//! What a scan is, resolved: targets, ports, timing and the options of every stage.
pub mod ports;
pub mod targets;
pub mod timing;
