//! Hosts Nmap's scripting engine: Nmap's own `nse_main.lua`, nselib and scripts, read from the
//! installed Nmap at run time, on an embedded Lua 5.4 with the C interface they expect
//! implemented in Rust (see docs/nse.md).

pub mod cert;
pub mod lpeg;
pub mod openssl;
pub mod zlib;
