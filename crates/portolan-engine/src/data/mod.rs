//! Nmap's data tables, read at run time where installed, and our built-in ones.
pub mod datadir;
pub mod macvendor;
pub mod payloads;
pub mod services;
