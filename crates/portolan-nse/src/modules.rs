//! The C modules Nmap links into its engine besides `nmap` itself: registered into
//! `package.loaded` and as globals, as nse_main.cc's `luaL_requiref` does.

use mlua::{Lua, Table, Value};

/// Registers the optional modules (`openssl`, `zlib`) that are built.
pub fn register(_lua: &Lua, _loaded: &Table) -> mlua::Result<()> {
    Ok(())
}

/// The certificate table of `get_ssl_certificate` and `parse_ssl_certificate`.
pub fn certificate(_lua: &Lua, _der: &[u8]) -> mlua::Result<Value> {
    Err(mlua::Error::runtime(
        "certificate parsing is not available in this build",
    ))
}
