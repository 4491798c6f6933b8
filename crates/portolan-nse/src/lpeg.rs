//! LPeg, linked from Debian's static `liblua5.4-lpeg.a` (see build.rs).

use mlua::{ffi, Lua, Table};

extern "C-unwind" {
    fn luaopen_lpeg(state: *mut ffi::lua_State) -> std::os::raw::c_int;
}

/// Opens LPeg and returns its module table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    // SAFETY: luaopen_lpeg is a standard Lua C module opener built for Lua 5.4's ABI (LPeg
    // checks the version at open with luaL_checkversion).
    let opener = unsafe { lua.create_c_function(luaopen_lpeg)? };
    opener.call(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpeg_matches_and_captures() {
        let lua = Lua::new();
        let lpeg = open(&lua).unwrap();
        lua.globals().set("lpeg", lpeg).unwrap();
        let v: String = lua
            .load(r#"return lpeg.match(lpeg.C(lpeg.R("az")^1), "hello world")"#)
            .eval()
            .unwrap();
        assert_eq!(v, "hello");
        let pos: i64 = lua
            .load(r#"return lpeg.match(lpeg.P("ab")^1 * lpeg.Cp(), "ababx")"#)
            .eval()
            .unwrap();
        assert_eq!(pos, 5);
        let none: Option<i64> = lua
            .load(r#"return lpeg.match(lpeg.P("z"), "abc")"#)
            .eval()
            .unwrap();
        assert_eq!(none, None);
    }
}
