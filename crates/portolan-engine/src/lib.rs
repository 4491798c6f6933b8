//! Portolan's scanning engine: what to scan, and how.
//!
//! - [`plan`]: the resolved scan ([`plan::ScanPlan`]) and what it is made of: targets,
//!   ports, timing.
//! - [`data`]: Nmap's data tables (services, payloads, MAC prefixes) and our built-in ones,
//!   found by one loader.
//! - [`core`]: sans-I/O state machines only (the raw-packet scan, the connect scheduler,
//!   ARP/ND pings, the target permutation, OS detection rounds), all speaking one
//!   [`core::Poll`].
//! - [`io`]: everything that touches sockets: the [`io::Backend`] trait with the Linux
//!   raw/AF_PACKET backend, the dry run and a simulated network for tests; the one driver
//!   loop over the sans-I/O cores; connect sockets, reverse DNS.
//! - [`stages`]: discovery, port scan, version detection, reverse DNS, OS detection: each
//!   one module.
//! - [`pipeline`]: [`Scanner::run`]: stage order, batching, and the one conversion from
//!   engine results to model hosts.
pub mod core;
pub mod data;
pub mod io;
pub mod pipeline;
pub mod plan;
pub mod stages;

pub use pipeline::{RunSummary, Scanner};
pub use plan::ScanPlan;
