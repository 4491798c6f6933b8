//! Portolan's result model and everything that reads or writes it.
//!
//! - [`model`]: `ScanRun` → `Host` → `Port` → `Service`, shaped like Nmap's XML.
//! - [`sink`]: the push interface every output implements.
//! - writers: [`normal`] (stdout and -oN), [`xml`] (-oX), [`grepable`] (-oG), [`json`] (-oJ),
//!   [`events`] (-oE, NDJSON for SIEMs, and the change events between two runs);
//!   readers: [`xml_reader`] (Nmap's XML and ours) and [`json::read`].
//! - [`policy`]: baseline policies (TOML) and their violations in a run (`portolan check`).
//! - [`diff`]: two scans compared as Ndiff compares them (`portolan diff`).

pub mod diff;
pub mod events;
pub mod grepable;
pub mod json;
pub mod model;
pub mod normal;
pub mod policy;
pub mod sink;
pub mod xml;
pub mod xml_reader;

mod escape;
mod text;
mod timefmt;

pub use events::{change_events, Event, EventsWriter};
pub use grepable::GrepableWriter;
pub use json::JsonWriter;
pub use model::*;
pub use normal::NormalWriter;
pub use sink::{OutputError, OutputOptions, Sink, Tee};
pub use xml::XmlWriter;
pub use xml_reader::{read_xml, read_xml_file, ReadError};
