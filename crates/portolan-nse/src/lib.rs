//! Hosts Nmap's scripting engine: Nmap's own `nse_main.lua`, nselib and scripts, read from the
//! installed Nmap at run time, on an embedded Lua 5.4 with the C interface they expect
//! implemented in Rust (see docs/nse.md).
//!
//! - host.lua: the `nmap`, `nmap.socket`, `nmap.dnet`, `lfs` and `cnse` interfaces, in Lua
//!   over the Rust primitives of engine.rs; blocking calls yield through nse_main.lua's
//!   registry protocol.
//! - io.rs: the socket and timer pump (nsock's part).
//! - hosts.rs: the host and port tables, and results written back into the model.

pub mod cert;
pub mod engine;
pub mod hosts;
pub mod io;
pub mod lpeg;
pub mod modules;
pub mod openssl;
pub mod zlib;

pub use engine::{locate, Config, Engine, ExcludedPorts, NseError, Phase, PhaseResult};
pub use hosts::HostContext;
pub use io::Guard;
