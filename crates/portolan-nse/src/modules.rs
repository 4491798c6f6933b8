//! The C modules Nmap links into its engine besides `nmap` itself (`openssl`, `zlib`):
//! registered into `package.loaded` and as globals, as nse_main.cc's `luaL_requiref` does.

use mlua::{Lua, MultiValue, Table};

/// Registers `openssl` and `zlib`, and gives `nmap.socket` Nmap's `parse_ssl_certificate`.
pub fn register(lua: &Lua, loaded: &Table) -> mlua::Result<()> {
    let openssl = crate::openssl::open(lua)?;
    let zlib = crate::zlib::open(lua)?;
    for (name, module) in [("openssl", openssl), ("zlib", zlib)] {
        loaded.set(name, module.clone())?;
        lua.globals().set(name, module)?;
    }
    let socket: Table = loaded.get("nmap.socket")?;
    socket.set(
        "parse_ssl_certificate",
        crate::cert::parse_ssl_certificate_function(lua)?,
    )?;
    Ok(())
}

/// What `socket:get_ssl_certificate()` returns for the peer's DER certificate.
pub fn certificate(lua: &Lua, der: &[u8]) -> mlua::Result<MultiValue> {
    crate::cert::certificate_results(lua, der)
}
