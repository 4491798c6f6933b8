//! Portolan's offline vulnerability database (issue 15): feeds the user downloads
//! elsewhere (NVD CVE JSON 2.0, CISA KEV, FIRST EPSS, Debian's security tracker) imported
//! into a SQLite file of its own ([`db`], read by [`import`]), and the matching of the
//! services `-sV` found against it ([`matcher`]), with a version order for real version
//! strings ([`version`]) and CPE names ([`cpe`]). Script results for scans are made by
//! [`report`].

pub mod cpe;
pub mod db;
mod error;
pub mod import;
pub mod matcher;
pub mod platform;
pub mod report;
pub mod version;

pub use db::{default_path, ImportReport, Status, VulnDb};
pub use error::VulnError;
pub use matcher::{Basis, Cve, Finding, Matcher, ServiceQuery};
