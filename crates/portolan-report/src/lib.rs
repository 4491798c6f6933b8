//! Everything that reads or writes Portolan's result model (`portolan-model`).
//!
//! - writers: [`normal`] (stdout and -oN), [`xml`] (-oX), [`grepable`] (-oG), [`json`] (-oJ),
//!   [`events`] (-oE, NDJSON for SIEMs, and the change events between two runs);
//! - readers: [`read::read_any`] (the one entry every subcommand uses), built on
//!   [`xml_reader`] (Nmap's XML and ours) and [`json::read`]; [`read::read_log`] (for
//!   `--resume`: [`grepable_reader`] for -oG, [`normal_reader`] for -oN);
//! - [`policy`]: baseline policies (TOML) and their violations in a run (`portolan check`);
//! - [`diff`]: two scans compared as Ndiff compares them (`portolan diff`).

pub mod diff;
pub mod events;
pub mod grepable;
pub mod grepable_reader;
pub mod json;
pub mod normal;
pub mod normal_reader;
pub mod policy;
pub mod read;
pub mod xml;
pub mod xml_reader;

mod escape;
mod text;
mod timefmt;

pub use events::{change_events, Event, EventsWriter};
pub use grepable::GrepableWriter;
pub use grepable_reader::read_grepable;
pub use json::JsonWriter;
pub use normal::NormalWriter;
pub use read::{read_all, read_any, read_log};
pub use xml::XmlWriter;
pub use xml_reader::{read_xml, read_xml_file, read_xml_runs, ReadError};
