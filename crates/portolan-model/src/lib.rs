//! Portolan's result model and everything that reads or writes it.
//!
//! - [`model`]: `ScanRun` → `Host` → `Port` → `Service`, shaped like Nmap's XML.
//! - [`sink`]: the push interface every output implements.
//! - writers: [`normal`], [`xml`], [`grepable`], [`json`]; reader: [`xml_reader`].

pub mod model;
pub mod sink;

pub use model::*;
pub use sink::{OutputError, OutputOptions, Sink, Tee};
