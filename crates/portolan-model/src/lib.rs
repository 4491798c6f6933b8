//! Portolan's result model: the contract between the engine and everything downstream.
//!
//! - [`model`]: `ScanRun` → `Host` → `Port` → `Service`, shaped like Nmap's XML.
//! - [`sink`]: the push interface every output implements.
//!
//! Writers, readers, diff and policies live in `portolan-report`; this crate holds types
//! only, so that the engine depends on nothing heavier than serde.

pub mod model;
pub mod sink;

pub use model::*;
pub use sink::{OutputError, OutputOptions, Sink, Tee};
