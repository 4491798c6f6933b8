//! The stages of a scan, each one module.
pub mod version;
