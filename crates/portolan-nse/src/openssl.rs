//! The `openssl` Lua module of Nmap's scripting engine (Nmap's `nse_openssl.cc`): digests, HMAC,
//! symmetric ciphers, bignums and random bytes, computed by the system's OpenSSL so that every
//! algorithm name OpenSSL knows works as it does under Nmap. Same function names, argument
//! orders, return values and error messages as Nmap's C.
//!
//! Also holds the argument checks shared with the `zlib` module and the certificate tables:
//! they raise the messages Lua's own `luaL_check*` functions raise.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString};
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use mlua::{
    Function, Lua, MultiValue, Table, UserData, UserDataRef, UserDataRefMut, Value, Variadic,
};
use openssl::bn::{BigNum, BigNumContext, MsbOption};
use openssl::cipher::CipherRef;
use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use openssl::hash::{hash, MessageDigest};
use openssl::provider::Provider;

// libcrypto functions openssl-sys does not declare. Their signatures are OpenSSL 3's.
#[repr(C)]
struct ObjName {
    kind: c_int,
    alias: c_int,
    name: *const c_char,
    data: *const c_char,
}
const OBJ_NAME_TYPE_MD_METH: c_int = 1;
const OBJ_NAME_TYPE_CIPHER_METH: c_int = 2;
extern "C" {
    fn ERR_error_string_n(e: c_ulong, buf: *mut c_char, len: usize);
    fn OBJ_NAME_do_all_sorted(
        kind: c_int,
        callback: unsafe extern "C" fn(*const ObjName, *mut c_void),
        arg: *mut c_void,
    );
    fn HMAC(
        md: *const openssl_sys::EVP_MD,
        key: *const c_void,
        key_len: c_int,
        data: *const u8,
        data_len: usize,
        md_out: *mut u8,
        md_len: *mut c_uint,
    ) -> *mut u8;
}

/// The providers loaded for the life of the process. OpenSSL 3 moved MD4, DES, RC4 and the
/// other old algorithms into the "legacy" provider, which is not loaded by default; NTLM
/// (smbauth: MD4 and DES) and other scripts need them, so Nmap loads it. Loading any provider
/// explicitly stops OpenSSL from loading "default" on its own, so "default" is loaded too.
/// Never unloaded: every Lua state of the process shares them.
struct Providers {
    _legacy: Option<Provider>,
    _default: Option<Provider>,
}

fn load_providers() {
    static PROVIDERS: OnceLock<Providers> = OnceLock::new();
    PROVIDERS.get_or_init(|| Providers {
        _legacy: Provider::load(None, "legacy").ok(),
        _default: Provider::load(None, "default").ok(),
    });
}

// ---------------------------------------------------------------------------------------------
// Argument checks, as lauxlib's

/// The arguments of one call, with the function's name for error messages.
pub(crate) struct Args {
    name: &'static str,
    vals: Vec<Value>,
}

impl Args {
    pub(crate) fn new(name: &'static str, vals: Variadic<Value>) -> Args {
        Args {
            name,
            vals: vals.into_iter().collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.vals.len()
    }

    /// Argument `i` (1-based); nil when absent.
    pub(crate) fn get(&self, i: usize) -> Value {
        self.vals.get(i - 1).cloned().unwrap_or(Value::Nil)
    }

    /// `luaL_argerror`.
    pub(crate) fn error(&self, i: usize, msg: &str) -> mlua::Error {
        mlua::Error::runtime(format!("bad argument #{i} to '{}' ({msg})", self.name))
    }

    /// `luaL_typeerror`.
    pub(crate) fn type_error(&self, i: usize, expected: &str) -> mlua::Error {
        let got = match self.vals.get(i - 1) {
            None => "no value".to_string(),
            Some(Value::UserData(ud)) => ud
                .metatable()
                .and_then(|mt| mt.get::<String>("__name"))
                .unwrap_or_else(|_| "userdata".to_string()),
            Some(Value::LightUserData(_)) => "light userdata".to_string(),
            Some(Value::Integer(_) | Value::Number(_)) => "number".to_string(),
            Some(v) => v.type_name().to_string(),
        };
        self.error(i, &format!("{expected} expected, got {got}"))
    }

    /// `luaL_checklstring`: a string, or a number turned into one.
    pub(crate) fn bytes(&self, lua: &Lua, i: usize) -> mlua::Result<Vec<u8>> {
        match self.get(i) {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            v @ (Value::Integer(_) | Value::Number(_)) => match lua.coerce_string(v)? {
                Some(s) => Ok(s.as_bytes().to_vec()),
                None => Err(self.type_error(i, "string")),
            },
            _ => Err(self.type_error(i, "string")),
        }
    }

    /// `luaL_checkstring` as C reads it: the bytes before the first NUL.
    pub(crate) fn c_string(&self, lua: &Lua, i: usize) -> mlua::Result<Vec<u8>> {
        let mut b = self.bytes(lua, i)?;
        if let Some(nul) = b.iter().position(|&c| c == 0) {
            b.truncate(nul);
        }
        Ok(b)
    }

    /// `luaL_optlstring`: None when the argument is nil or absent.
    pub(crate) fn opt_bytes(&self, lua: &Lua, i: usize) -> mlua::Result<Option<Vec<u8>>> {
        match self.get(i) {
            Value::Nil => Ok(None),
            _ => self.bytes(lua, i).map(Some),
        }
    }

    /// `luaL_checkinteger`.
    pub(crate) fn integer(&self, lua: &Lua, i: usize) -> mlua::Result<i64> {
        match self.get(i) {
            Value::Integer(n) => Ok(n),
            v @ (Value::Number(_) | Value::String(_)) => {
                let is_number = matches!(v, Value::Number(_))
                    || lua.coerce_number(v.clone()).ok().flatten().is_some();
                match lua.coerce_integer(v) {
                    Ok(Some(n)) => Ok(n),
                    _ if is_number => Err(self.error(i, "number has no integer representation")),
                    _ => Err(self.type_error(i, "number")),
                }
            }
            _ => Err(self.type_error(i, "number")),
        }
    }

    /// `luaL_optinteger`.
    pub(crate) fn opt_integer(&self, lua: &Lua, i: usize, default: i64) -> mlua::Result<i64> {
        match self.get(i) {
            Value::Nil => Ok(default),
            _ => self.integer(lua, i),
        }
    }

    /// `lua_toboolean`.
    pub(crate) fn boolean(&self, i: usize) -> bool {
        !matches!(self.get(i), Value::Nil | Value::Boolean(false))
    }

    /// `luaL_checkudata(L, i, "BIGNUM")`.
    fn bignum(&self, i: usize) -> mlua::Result<UserDataRef<Bignum>> {
        match self.get(i) {
            Value::UserData(ud) if ud.is::<Bignum>() => ud.borrow::<Bignum>(),
            _ => Err(self.type_error(i, "BIGNUM")),
        }
    }

    fn bignum_mut(&self, i: usize) -> mlua::Result<UserDataRefMut<Bignum>> {
        match self.get(i) {
            Value::UserData(ud) if ud.is::<Bignum>() => ud.borrow_mut::<Bignum>(),
            _ => Err(self.type_error(i, "BIGNUM")),
        }
    }
}

/// OpenSSL's text (ERR_error_string) for the oldest error of a stack.
pub(crate) fn ssl_error_text(stack: &ErrorStack) -> String {
    let code = stack.errors().first().map_or(0, |e| e.code());
    let mut buf = [0 as c_char; 256];
    // SAFETY: ERR_error_string_n writes at most buf.len() bytes, NUL included.
    unsafe { ERR_error_string_n(code, buf.as_mut_ptr(), buf.len()) };
    // SAFETY: the buffer holds a NUL-terminated string (ERR_error_string_n always terminates).
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
    text.to_string_lossy().into_owned()
}

/// Nmap's `NSE_SSL_LUA_ERR`: "OpenSSL error: " and OpenSSL's text for the oldest queued error.
pub(crate) fn ssl_error(stack: &ErrorStack) -> mlua::Error {
    mlua::Error::runtime(format!("OpenSSL error: {}", ssl_error_text(stack)))
}

fn lua_bytes(lua: &Lua, b: impl AsRef<[u8]>) -> mlua::Result<Value> {
    Ok(Value::String(lua.create_string(b)?))
}

/// Makes a Lua function of `f` whose errors reach Lua as Nmap's C functions raise them: a
/// plain string message (`luaL_error` from C adds no position), not mlua's error object with
/// its "" prefix and Rust-side traceback. `f`'s `mlua::Error::RuntimeError`s are
/// handed to a small Lua wrapper that raises the message with `error(msg, 0)`.
pub(crate) fn function<F>(lua: &Lua, name: &'static str, f: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &Args) -> mlua::Result<MultiValue> + 'static,
{
    const KEY: &str = "portolan.nse.c_function";
    let wrap: Function = match lua.named_registry_value::<Option<Function>>(KEY)? {
        Some(w) => w,
        None => {
            let w: Function = lua
                .load(
                    r#"local fail, error, rawequal, select = {}, error, rawequal, select
                    local function check(...)
                      if rawequal((...), fail) then error((select(2, ...)), 0) end
                      return ...
                    end
                    return function(raw)
                      return function(...) return check(raw(...)) end
                    end, fail"#,
                )
                .set_name("=[C]")
                .call::<(Function, Table)>(())
                .map(|(w, fail)| {
                    let _ = lua.set_named_registry_value("portolan.nse.c_function_fail", fail);
                    w
                })?;
            lua.set_named_registry_value(KEY, &w)?;
            w
        }
    };
    let fail: Table = lua.named_registry_value("portolan.nse.c_function_fail")?;
    let raw = lua.create_function(move |lua, vals: Variadic<Value>| {
        match f(lua, &Args::new(name, vals)) {
            Err(mlua::Error::RuntimeError(msg)) => Ok(MultiValue::from_iter([
                Value::Table(fail.clone()),
                Value::String(lua.create_string(msg)?),
            ])),
            other => other,
        }
    })?;
    wrap.call(raw)
}

// ---------------------------------------------------------------------------------------------
// Bignums

/// An OpenSSL BIGNUM as a Lua userdata; its metatable's `__name` is "BIGNUM", as Nmap's.
pub struct Bignum(pub BigNum);

impl UserData for Bignum {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field("__name", "BIGNUM");
        // Methods come from a table of functions made by `function`, so that their errors
        // are Nmap's plain strings too.
        fields.add_meta_field_with("__index", |lua| {
            let methods = lua.create_table()?;
            for (name, f) in BIGNUM_METHODS {
                methods.set(name, function(lua, name, f)?)?;
            }
            Ok(methods)
        });
        fields.add_meta_field_with("__tostring", |lua| function(lua, "tohex", bn_bn2hex));
    }
}

/// Nmap's `bignum_methods` (`__gc` is Rust's drop).
const BIGNUM_METHODS: [(&str, LuaFn); 11] = [
    ("num_bits", bn_num_bits),
    ("num_bytes", bn_num_bytes),
    ("tobin", bn_bn2bin),
    ("tompi", bn_bn2mpi),
    ("todec", bn_bn2dec),
    ("tohex", bn_bn2hex),
    ("is_bit_set", bn_is_bit_set),
    ("set_bit", bn_set_bit),
    ("clear_bit", bn_clear_bit),
    ("is_prime", bn_is_prime),
    ("is_safe_prime", bn_is_safe_prime),
];

/// Pushes a bignum userdata.
pub fn push_bignum(lua: &Lua, bn: BigNum) -> mlua::Result<Value> {
    Ok(Value::UserData(lua.create_userdata(Bignum(bn))?))
}

fn one(v: Value) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([v]))
}

fn new_bn() -> mlua::Result<BigNum> {
    BigNum::new().map_err(|e| ssl_error(&e))
}

fn new_ctx() -> mlua::Result<BigNumContext> {
    BigNumContext::new().map_err(|e| ssl_error(&e))
}

fn bn_bin2bn(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let s = a.bytes(lua, 1)?;
    let bn = BigNum::from_slice(&s).map_err(|e| ssl_error(&e))?;
    one(push_bignum(lua, bn)?)
}

/// BN_dec2bn / BN_hex2bn into a zero BIGNUM: the leading digits (after an optional '-') are
/// read; no digits leaves zero.
fn parse_digits(s: &[u8], hex: bool) -> mlua::Result<BigNum> {
    let neg = s.first() == Some(&b'-');
    let body = if neg { &s[1..] } else { s };
    let n = body
        .iter()
        .take_while(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            }
        })
        .count();
    if n == 0 {
        return new_bn();
    }
    // The digits are ASCII, so the slice is valid UTF-8.
    let text = String::from_utf8_lossy(&s[..n + usize::from(neg)]).into_owned();
    let parsed = if hex {
        BigNum::from_hex_str(&text)
    } else {
        BigNum::from_dec_str(&text)
    };
    parsed.map_err(|e| ssl_error(&e))
}

fn bn_dec2bn(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let s = a.c_string(lua, 1)?;
    one(push_bignum(lua, parse_digits(&s, false)?)?)
}

fn bn_hex2bn(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let s = a.c_string(lua, 1)?;
    one(push_bignum(lua, parse_digits(&s, true)?)?)
}

fn bn_rand(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let bits = a.integer(lua, 1)?;
    let mut bn = new_bn()?;
    // BN_rand(num, bits, -1, 0); on failure (bad size) Nmap returns the zero it started with.
    if let Ok(bits) = i32::try_from(bits) {
        let _ = bn.rand(bits, MsbOption::MAYBE_ZERO, false);
    }
    one(push_bignum(lua, bn)?)
}

fn bn_mod_exp(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let (x, p, m) = (a.bignum(1)?, a.bignum(2)?, a.bignum(3)?);
    let mut r = new_bn()?;
    let mut ctx = new_ctx()?;
    // Nmap ignores BN_mod_exp's failure (a zero modulus) and returns the result as it is.
    let _ = r.mod_exp(&x.0, &p.0, &m.0, &mut ctx);
    one(push_bignum(lua, r)?)
}

fn bn_div(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let (x, d) = (a.bignum(1)?, a.bignum(2)?);
    let (mut dv, mut rem) = (new_bn()?, new_bn()?);
    let mut ctx = new_ctx()?;
    // Nmap ignores BN_div's failure (division by zero, which leaves both zero).
    let _ = dv.div_rem(&mut rem, &x.0, &d.0, &mut ctx);
    Ok(MultiValue::from_iter([
        push_bignum(lua, dv)?,
        push_bignum(lua, rem)?,
    ]))
}

fn bn_add(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let (x, y) = (a.bignum(1)?, a.bignum(2)?);
    let mut r = new_bn()?;
    r.checked_add(&x.0, &y.0).map_err(|e| ssl_error(&e))?;
    one(push_bignum(lua, r)?)
}

fn bn_num_bits(_: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    one(Value::Integer(a.bignum(1)?.0.num_bits().into()))
}

fn bn_num_bytes(_: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    one(Value::Integer(a.bignum(1)?.0.num_bytes().into()))
}

/// The bit position as C's `int position = luaL_checkinteger(...)` holds it.
fn bit_position(lua: &Lua, a: &Args) -> mlua::Result<i32> {
    // Truncation to C's int, as the C assignment does.
    Ok(a.integer(lua, 2)? as i32)
}

fn bn_set_bit(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let mut bn = a.bignum_mut(1)?;
    let pos = bit_position(lua, a)?;
    // BN_set_bit's failure (negative position) is ignored by Nmap.
    let _ = bn.0.set_bit(pos);
    Ok(MultiValue::new())
}

fn bn_clear_bit(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let mut bn = a.bignum_mut(1)?;
    let pos = bit_position(lua, a)?;
    let _ = bn.0.clear_bit(pos);
    Ok(MultiValue::new())
}

fn bn_is_bit_set(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let bn = a.bignum(1)?;
    let pos = bit_position(lua, a)?;
    one(Value::Boolean(bn.0.is_bit_set(pos)))
}

/// BN_check_prime with OpenSSL's default number of rounds.
fn check_prime(bn: &BigNum, ctx: &mut BigNumContext) -> bool {
    bn.is_prime(0, ctx).unwrap_or(false)
}

fn bn_is_prime(_: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let bn = a.bignum(1)?;
    let mut ctx = new_ctx()?;
    one(Value::Boolean(check_prime(&bn.0, &mut ctx)))
}

/// Returns `is_safe, is_prime`: p is prime and (p-1)/2 is prime.
fn bn_is_safe_prime(_: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let bn = a.bignum(1)?;
    let mut ctx = new_ctx()?;
    let is_prime = check_prime(&bn.0, &mut ctx);
    let mut is_safe = false;
    if is_prime {
        let mut n = bn.0.to_owned().map_err(|e| ssl_error(&e))?;
        n.sub_word(1).map_err(|e| ssl_error(&e))?;
        n.div_word(2).map_err(|e| ssl_error(&e))?;
        is_safe = check_prime(&n, &mut ctx);
    }
    Ok(MultiValue::from_iter([
        Value::Boolean(is_safe),
        Value::Boolean(is_prime),
    ]))
}

fn bn_bn2bin(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    one(lua_bytes(lua, a.bignum(1)?.0.to_vec())?)
}

/// OpenSSL's MPI form (BN_bn2mpi): a 4-byte big-endian length, then the magnitude big-endian
/// with a leading zero byte when its top bit is set; the sign is the top bit of the first
/// magnitude byte.
fn to_mpi(bn: &BigNum) -> Vec<u8> {
    let bits = bn.num_bits();
    let magnitude = bn.to_vec();
    let ext = bits > 0 && bits % 8 == 0;
    let len = magnitude.len() + usize::from(ext);
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    if ext {
        out.push(0);
    }
    out.extend_from_slice(&magnitude);
    if bn.is_negative() && len > 0 {
        out[4] |= 0x80;
    }
    out
}

fn bn_bn2mpi(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    one(lua_bytes(lua, to_mpi(&a.bignum(1)?.0))?)
}

fn bn_bn2dec(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let s = a.bignum(1)?.0.to_dec_str().map_err(|e| ssl_error(&e))?;
    one(lua_bytes(lua, s.as_bytes())?)
}

fn bn_bn2hex(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let s = a.bignum(1)?.0.to_hex_str().map_err(|e| ssl_error(&e))?;
    one(lua_bytes(lua, s.as_bytes())?)
}

// ---------------------------------------------------------------------------------------------
// Random bytes, digests, HMAC, ciphers

fn random_bytes(lua: &Lua, a: &Args, failure: &str) -> mlua::Result<MultiValue> {
    let len = a.integer(lua, 1)?;
    // A negative count is a huge size_t in C: malloc fails.
    let len =
        usize::try_from(len).map_err(|_| mlua::Error::runtime("Couldn't allocate memory."))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|_| mlua::Error::runtime("Couldn't allocate memory."))?;
    buf.resize(len, 0);
    openssl::rand::rand_bytes(&mut buf).map_err(|_| mlua::Error::runtime(failure.to_string()))?;
    one(lua_bytes(lua, buf)?)
}

fn rand_bytes(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    random_bytes(lua, a, "Failure in RAND_bytes.")
}

/// Nmap fills these from its own non-cryptographic generator; OpenSSL's is as good a source.
fn rand_pseudo_bytes(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    random_bytes(lua, a, "Couldn't allocate memory.")
}

/// EVP_get_digestbyname on the argument's C string.
fn digest_by_name(name: &[u8]) -> Option<MessageDigest> {
    MessageDigest::from_name(std::str::from_utf8(name).ok()?)
}

fn digest_with(lua: &Lua, a: &Args, algorithm: &[u8], msg_arg: usize) -> mlua::Result<MultiValue> {
    let msg = a.bytes(lua, msg_arg)?;
    let md = digest_by_name(algorithm).ok_or_else(|| {
        mlua::Error::runtime(format!(
            "Unknown digest algorithm: {}",
            String::from_utf8_lossy(algorithm)
        ))
    })?;
    let out = hash(md, &msg).map_err(|e| ssl_error(&e))?;
    one(lua_bytes(lua, &*out)?)
}

fn digest(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let algorithm = a.c_string(lua, 1)?;
    digest_with(lua, a, &algorithm, 2)
}

fn hmac(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let algorithm = a.c_string(lua, 1)?;
    let key = a.bytes(lua, 2)?;
    let msg = a.bytes(lua, 3)?;
    let md = digest_by_name(&algorithm).ok_or_else(|| {
        mlua::Error::runtime(format!(
            "Unknown digest algorithm: {}",
            String::from_utf8_lossy(&algorithm)
        ))
    })?;
    let key_len = c_int::try_from(key.len()).map_err(|_| a.error(2, "key too long"))?;
    let mut out = [0u8; openssl_sys::EVP_MAX_MD_SIZE as usize];
    let mut out_len: c_uint = 0;
    // SAFETY: md is a valid digest; the key and message pointers and lengths describe live
    // buffers; `out` holds EVP_MAX_MD_SIZE bytes, the most HMAC writes.
    let done = unsafe {
        HMAC(
            md.as_ptr(),
            key.as_ptr().cast(),
            key_len,
            msg.as_ptr(),
            msg.len(),
            out.as_mut_ptr(),
            &mut out_len,
        )
    };
    if done.is_null() {
        return Err(ssl_error(&ErrorStack::get()));
    }
    one(lua_bytes(lua, &out[..out_len as usize])?)
}

/// EVP_get_cipherbyname on the argument's C string.
fn cipher_by_name(name: &[u8]) -> Option<&'static CipherRef> {
    let name = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name; the result is NULL or one of libcrypto's static cipher
    // tables, which live as long as the process.
    unsafe {
        let p = openssl_sys::EVP_get_cipherbyname(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(CipherRef::from_ptr(p as *mut _))
        }
    }
}

/// encrypt/decrypt(algorithm, key, iv, data, padding).
fn crypt(lua: &Lua, a: &Args, encrypt: bool) -> mlua::Result<MultiValue> {
    let algorithm = a.c_string(lua, 1)?;
    let cipher = cipher_by_name(&algorithm).ok_or_else(|| {
        mlua::Error::runtime(format!(
            "Unknown cipher algorithm: {}",
            String::from_utf8_lossy(&algorithm)
        ))
    })?;
    let key = a.bytes(lua, 2)?;
    let iv = a.opt_bytes(lua, 3)?.filter(|iv| !iv.is_empty());
    let data = a.bytes(lua, 4)?;
    let padding = a.boolean(5);

    let mut ctx = CipherCtx::new().map_err(|e| ssl_error(&e))?;
    let init = if encrypt {
        ctx.encrypt_init(Some(cipher), None, None)
    } else {
        ctx.decrypt_init(Some(cipher), None, None)
    };
    init.and_then(|()| ctx.set_key_length(key.len()))
        .map_err(|e| ssl_error(&e))?;
    ctx.set_padding(padding);
    if let Some(iv) = &iv {
        if iv.len() != ctx.iv_length() {
            return Err(mlua::Error::runtime(format!(
                "Length of iv is {}; should be {}",
                iv.len(),
                ctx.iv_length()
            )));
        }
    }
    // The key length now equals the context's (set_key_length succeeded), and the iv's was
    // checked above, so the crate's length assertions hold.
    let mut out = Vec::new();
    let result = if encrypt {
        ctx.encrypt_init(None, Some(&key), iv.as_deref())
    } else {
        ctx.decrypt_init(None, Some(&key), iv.as_deref())
    }
    .and_then(|()| ctx.cipher_update_vec(&data, &mut out))
    .and_then(|_| ctx.cipher_final_vec(&mut out));
    result.map_err(|e| ssl_error(&e))?;
    one(lua_bytes(lua, out)?)
}

fn encrypt(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    crypt(lua, a, true)
}

fn decrypt(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    crypt(lua, a, false)
}

/// Spreads 56 key bits over 8 bytes, 7 bits each with the low (parity) bit clear, as NTLM's
/// LM and NTLMv1 responses need. Parity is left unset, as in Nmap.
fn des_string_to_key(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let data = a.bytes(lua, 1)?;
    if data.len() != 7 {
        return Err(mlua::Error::runtime("String must have length of 7 bytes."));
    }
    let mut key = [0u8; 8];
    key[0] = data[0] & !1;
    for i in 1..8 {
        let high = data[i - 1] << (8 - i);
        let low = if i < 7 { data[i] >> i } else { 0 };
        key[i] = (high | low) & !1;
    }
    one(lua_bytes(lua, key)?)
}

unsafe extern "C" fn collect_name(name: *const ObjName, arg: *mut c_void) {
    // SAFETY: OBJ_NAME_do_all_sorted hands valid entries and our own `arg`, a Vec<String>.
    let names = &mut *(arg as *mut Vec<String>);
    let name = &*name;
    if !name.name.is_null() {
        names.push(CStr::from_ptr(name.name).to_string_lossy().into_owned());
    }
}

/// OpenSSL's names (and aliases) of one kind, sorted as OBJ_NAME_do_all_sorted sorts them.
fn algorithm_names(kind: c_int) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    // SAFETY: the callback only pushes onto `names`, which outlives the call.
    unsafe {
        OBJ_NAME_do_all_sorted(
            kind,
            collect_name,
            &mut names as *mut Vec<String> as *mut c_void,
        )
    };
    names
}

fn supported(lua: &Lua, kind: c_int) -> mlua::Result<MultiValue> {
    let t = lua.create_table()?;
    for (i, name) in algorithm_names(kind).into_iter().enumerate() {
        t.raw_set(i + 1, name)?;
    }
    one(Value::Table(t))
}

fn supported_digests(lua: &Lua, _: &Args) -> mlua::Result<MultiValue> {
    supported(lua, OBJ_NAME_TYPE_MD_METH)
}

fn supported_ciphers(lua: &Lua, _: &Args) -> mlua::Result<MultiValue> {
    supported(lua, OBJ_NAME_TYPE_CIPHER_METH)
}

macro_rules! named_digest {
    ($fn:ident, $name:literal) => {
        fn $fn(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
            digest_with(lua, a, $name, 1)
        }
    };
}
named_digest!(md4, b"md4");
named_digest!(md5, b"md5");
named_digest!(sha1, b"sha1");
named_digest!(ripemd160, b"ripemd160");

type LuaFn = fn(&Lua, &Args) -> mlua::Result<MultiValue>;

/// Every function Nmap's `openssllib` registers.
const FUNCTIONS: [(&str, LuaFn); 32] = [
    ("bignum_num_bits", bn_num_bits),
    ("bignum_num_bytes", bn_num_bytes),
    ("bignum_set_bit", bn_set_bit),
    ("bignum_clear_bit", bn_clear_bit),
    ("bignum_is_bit_set", bn_is_bit_set),
    ("bignum_is_prime", bn_is_prime),
    ("bignum_is_safe_prime", bn_is_safe_prime),
    ("bignum_bin2bn", bn_bin2bn),
    ("bignum_dec2bn", bn_dec2bn),
    ("bignum_hex2bn", bn_hex2bn),
    ("bignum_rand", bn_rand),
    ("bignum_pseudo_rand", bn_rand),
    ("bignum_bn2bin", bn_bn2bin),
    ("bignum_bn2mpi", bn_bn2mpi),
    ("bignum_bn2dec", bn_bn2dec),
    ("bignum_bn2hex", bn_bn2hex),
    ("bignum_add", bn_add),
    ("bignum_mod_exp", bn_mod_exp),
    ("bignum_div", bn_div),
    ("rand_bytes", rand_bytes),
    ("rand_pseudo_bytes", rand_pseudo_bytes),
    ("md4", md4),
    ("md5", md5),
    ("sha1", sha1),
    ("ripemd160", ripemd160),
    ("digest", digest),
    ("hmac", hmac),
    ("encrypt", encrypt),
    ("decrypt", decrypt),
    ("DES_string_to_key", des_string_to_key),
    ("supported_digests", supported_digests),
    ("supported_ciphers", supported_ciphers),
];

/// Opens the module: returns the `openssl` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    openssl_sys::init();
    load_providers();
    let module = lua.create_table()?;
    for (name, f) in FUNCTIONS {
        module.set(name, function(lua, name, f)?)?;
    }
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        let m = open(&lua).unwrap();
        lua.globals().set("openssl", m).unwrap();
        lua
    }

    fn hex(lua: &Lua, code: &str) -> String {
        let s: mlua::LuaString = lua.load(code).eval().unwrap();
        s.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The message a Lua caller gets from pcall, as a string.
    fn err(lua: &Lua, code: &str) -> String {
        let f = lua.load(code).into_function().unwrap();
        lua.globals().set("f", f).unwrap();
        lua.load("local ok, e = pcall(f) assert(not ok, 'no error') return tostring(e)")
            .eval()
            .unwrap()
    }

    #[test]
    fn registers_every_function_nmap_registers() {
        let lua = lua();
        let n: i64 = lua
            .load("local n = 0 for k, v in pairs(openssl) do assert(type(v) == 'function') n = n + 1 end return n")
            .eval()
            .unwrap();
        assert_eq!(n, 32);
    }

    #[test]
    fn digests_of_abc() {
        let lua = lua();
        assert_eq!(
            hex(&lua, "return openssl.md4('abc')"),
            "a448017aaf21d8525fc10ae87aa6729d"
        );
        assert_eq!(
            hex(&lua, "return openssl.md5('abc')"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hex(&lua, "return openssl.sha1('abc')"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&lua, "return openssl.ripemd160('abc')"),
            "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"
        );
        assert_eq!(
            hex(&lua, "return openssl.digest('SHA256', 'abc')"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // A number is taken as its string, as luaL_checklstring does.
        assert_eq!(
            hex(&lua, "return openssl.md5(12)"),
            hex(&lua, "return openssl.md5('12')")
        );
        assert_eq!(
            err(&lua, "openssl.digest('nosuch', 'x')"),
            "Unknown digest algorithm: nosuch"
        );
        assert!(err(&lua, "openssl.md5()")
            .contains("bad argument #1 to 'md5' (string expected, got no value)"));
    }

    #[test]
    fn hmac_md5_rfc2202() {
        let lua = lua();
        assert_eq!(
            hex(
                &lua,
                "return openssl.hmac('md5', string.rep('\\x0b', 16), 'Hi There')"
            ),
            "9294727a3638bb1c13f48ef8158bfc9d"
        );
        assert_eq!(
            hex(
                &lua,
                "return openssl.hmac('MD5', 'Jefe', 'what do ya want for nothing?')"
            ),
            "750c783e6ab0b503eaa86e310a5db738"
        );
        assert_eq!(
            hex(&lua, "return openssl.hmac('md5', string.rep('\\xaa', 80), 'Test Using Larger Than Block-Size Key - Hash Key First')"),
            "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"
        );
        // RFC 2202 HMAC-SHA1 case 2, and an empty key.
        assert_eq!(
            hex(
                &lua,
                "return openssl.hmac('sha1', 'Jefe', 'what do ya want for nothing?')"
            ),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(&lua, "return openssl.hmac('md5', '', '')"),
            "74e6f7298a9c2d168935f58c001bad88"
        );
        assert_eq!(
            err(&lua, "openssl.hmac('x', 'k', 'm')"),
            "Unknown digest algorithm: x"
        );
    }

    #[test]
    fn des_string_to_key_spreads_56_bits() {
        let lua = lua();
        // The LM "KGS!@#$%" key halves of the empty password are 7 zero bytes; a known
        // non-trivial vector: 0xff * 7 gives every byte 0xfe.
        assert_eq!(
            hex(
                &lua,
                "return openssl.DES_string_to_key(string.rep('\\xff', 7))"
            ),
            "fefefefefefefefe"
        );
        assert_eq!(
            hex(
                &lua,
                "return openssl.DES_string_to_key('\\x01\\x23\\x45\\x67\\x89\\xab\\xcd')"
            ),
            "0090d0ac784cae9a"
        );
        assert_eq!(
            err(&lua, "openssl.DES_string_to_key('short')"),
            "String must have length of 7 bytes."
        );
    }

    #[test]
    fn aes_128_cbc_known_answer_and_round_trip() {
        let lua = lua();
        // NIST SP 800-38A F.2.1, first block.
        let code = "return openssl.encrypt('aes-128-cbc', \
            '\\x2b\\x7e\\x15\\x16\\x28\\xae\\xd2\\xa6\\xab\\xf7\\x15\\x88\\x09\\xcf\\x4f\\x3c', \
            '\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\x09\\x0a\\x0b\\x0c\\x0d\\x0e\\x0f', \
            '\\x6b\\xc1\\xbe\\xe2\\x2e\\x40\\x9f\\x96\\xe9\\x3d\\x7e\\x11\\x73\\x93\\x17\\x2a')";
        assert_eq!(hex(&lua, code), "7649abac8119b246cee98e9b12e9197d");
        let ok: bool = lua
            .load(
                "local k, iv = string.rep('k', 16), string.rep('i', 16)
                 local ct = openssl.encrypt('AES-128-CBC', k, iv, 'hello world', true)
                 assert(#ct == 16)
                 return openssl.decrypt('aes-128-cbc', k, iv, ct, true) == 'hello world'",
            )
            .eval()
            .unwrap();
        assert!(ok);
        // Without padding, data must fill whole blocks.
        assert!(err(
            &lua,
            "openssl.encrypt('aes-128-cbc', string.rep('k', 16), nil, 'abc')"
        )
        .starts_with("OpenSSL error: error:"));
        assert_eq!(
            err(
                &lua,
                "openssl.encrypt('aes-128-cbc', string.rep('k', 16), 'short', string.rep('a', 16))"
            ),
            "Length of iv is 5; should be 16"
        );
        assert_eq!(
            err(&lua, "openssl.encrypt('nosuch', 'k', nil, 'x')"),
            "Unknown cipher algorithm: nosuch"
        );
        // A wrong key length for a fixed-length cipher is OpenSSL's error.
        assert!(
            err(&lua, "openssl.encrypt('aes-128-cbc', 'short', nil, 'x')")
                .starts_with("OpenSSL error: error:")
        );
    }

    #[test]
    fn des_ecb_needs_the_legacy_provider_and_works() {
        let lua = lua();
        // FIPS 81 / the classic DES test: key 133457799BBCDFF1, plaintext 0123456789ABCDEF.
        assert_eq!(
            hex(&lua, "return openssl.encrypt('DES-ECB', '\\x13\\x34\\x57\\x79\\x9b\\xbc\\xdf\\xf1', nil, '\\x01\\x23\\x45\\x67\\x89\\xab\\xcd\\xef')"),
            "85e813540f0ab405"
        );
    }

    #[test]
    fn bignum_arithmetic() {
        let lua = lua();
        let dec: String = lua
            .load(
                "local a = openssl.bignum_dec2bn('4')
                 local p = openssl.bignum_dec2bn('13')
                 local m = openssl.bignum_dec2bn('497')
                 return openssl.bignum_mod_exp(a, p, m):todec()",
            )
            .eval()
            .unwrap();
        assert_eq!(dec, "445");
        let (q, r): (String, String) = lua
            .load(
                "local q, r = openssl.bignum_div(openssl.bignum_dec2bn('100'), openssl.bignum_dec2bn('7'))
                 return q:todec(), openssl.bignum_bn2dec(r)",
            )
            .eval()
            .unwrap();
        assert_eq!((q.as_str(), r.as_str()), ("14", "2"));
        let s: String = lua
            .load(
                "local a = openssl.bignum_hex2bn('ff')
                 local b = openssl.bignum_bin2bn('\\x01')
                 local c = openssl.bignum_add(a, b)
                 return tostring(c) .. ' ' .. c:tohex() .. ' ' .. c:num_bits() .. ' ' .. c:num_bytes()
                   .. ' ' .. #c:tobin() .. ' ' .. openssl.bignum_bn2hex(openssl.bignum_dec2bn('15'))",
            )
            .eval()
            .unwrap();
        assert_eq!(s, "0100 0100 9 2 2 0F");
        // Division by zero gives zeros (Nmap ignores the failure); x^0 mod 0 is OpenSSL's 1.
        let z: String = lua
            .load(
                "local z = openssl.bignum_dec2bn('0')
                 local q, r = openssl.bignum_div(openssl.bignum_dec2bn('5'), z)
                 return q:todec() .. r:todec() .. openssl.bignum_mod_exp(z, z, z):todec()",
            )
            .eval()
            .unwrap();
        assert_eq!(z, "001");
        // Unparsable text is zero; leading digits are read.
        let p: String = lua
            .load("return openssl.bignum_dec2bn('x'):todec() .. ',' .. openssl.bignum_dec2bn('-12ab'):todec() .. ',' .. openssl.bignum_hex2bn('1g'):todec()")
            .eval()
            .unwrap();
        assert_eq!(p, "0,-12,1");
        assert!(err(&lua, "openssl.bignum_add(1, 2)")
            .contains("bad argument #1 to 'bignum_add' (BIGNUM expected, got number)"));
    }

    #[test]
    fn bignum_bits_and_primes() {
        let lua = lua();
        let s: String = lua
            .load(
                "local b = openssl.bignum_dec2bn('0')
                 b:set_bit(3) openssl.bignum_set_bit(b, 0)
                 local r = b:todec() .. tostring(b:is_bit_set(3)) .. tostring(openssl.bignum_is_bit_set(b, 2))
                 b:clear_bit(3)
                 r = r .. b:todec()
                 local safe, prime = openssl.bignum_dec2bn('23'):is_safe_prime()
                 r = r .. tostring(safe) .. tostring(prime)
                 safe, prime = openssl.bignum_is_safe_prime(openssl.bignum_dec2bn('13'))
                 r = r .. tostring(safe) .. tostring(prime)
                 r = r .. tostring(openssl.bignum_dec2bn('15'):is_prime())
                 return r",
            )
            .eval()
            .unwrap();
        assert_eq!(s, "9truefalse1truetruefalsetruefalse");
        let bits: i64 = lua
            .load("return openssl.bignum_rand(64):num_bits() <= 64 and openssl.bignum_pseudo_rand(16):num_bytes()")
            .eval()
            .unwrap();
        assert!(bits <= 2);
    }

    #[test]
    fn bignum_mpi_form() {
        let lua = lua();
        assert_eq!(
            hex(
                &lua,
                "return openssl.bignum_bn2mpi(openssl.bignum_dec2bn('0'))"
            ),
            "00000000"
        );
        assert_eq!(
            hex(&lua, "return openssl.bignum_hex2bn('7f'):tompi()"),
            "000000017f"
        );
        assert_eq!(
            hex(&lua, "return openssl.bignum_hex2bn('80'):tompi()"),
            "000000020080"
        );
        assert_eq!(
            hex(&lua, "return openssl.bignum_hex2bn('-80'):tompi()"),
            "000000028080"
        );
        assert_eq!(
            hex(&lua, "return openssl.bignum_hex2bn('-1234'):tompi()"),
            "000000029234"
        );
    }

    #[test]
    fn random_bytes_have_the_asked_length() {
        let lua = lua();
        let n: i64 = lua
            .load("return #openssl.rand_bytes(33) + #openssl.rand_pseudo_bytes(7) + #openssl.rand_bytes(0)")
            .eval()
            .unwrap();
        assert_eq!(n, 40);
        let differ: bool = lua
            .load("return openssl.rand_bytes(16) ~= openssl.rand_bytes(16)")
            .eval()
            .unwrap();
        assert!(differ);
        assert_eq!(
            err(&lua, "openssl.rand_bytes(-1)"),
            "Couldn't allocate memory."
        );
        assert!(err(&lua, "openssl.rand_bytes(1.5)")
            .contains("bad argument #1 to 'rand_bytes' (number has no integer representation)"));
    }

    #[test]
    fn supported_lists_name_the_algorithms() {
        let lua = lua();
        let ok: bool = lua
            .load(
                "local function has(t, n) for _, v in ipairs(t) do if v == n then return true end end end
                 return has(openssl.supported_digests(), 'md5') and has(openssl.supported_digests(), 'sha256')
                   and has(openssl.supported_ciphers(), 'aes-128-cbc') and has(openssl.supported_ciphers(), 'des-ecb')",
            )
            .eval()
            .unwrap();
        assert!(ok);
    }

    /// Nmap's own nselib unit tests (`unittest.lua` suites) of the libraries that use
    /// `openssl` and `zlib`, run on these modules with a minimal stand-in `nmap` module.
    #[test]
    fn nmap_nselib_unit_tests_pass() {
        let nselib = std::path::Path::new("/usr/share/nmap/nselib");
        if !nselib.join("smbauth.lua").is_file() {
            eprintln!(
                "skipped: Nmap's nselib is not installed at {}",
                nselib.display()
            );
            return;
        }
        // SAFETY: all standard libraries, `debug` included, as Nmap opens them (strict.lua
        // needs `debug`); the test runs only Nmap's own Lua.
        let lua = unsafe { Lua::unsafe_new() };
        let loaded: Table = lua
            .globals()
            .get::<Table>("package")
            .unwrap()
            .get("loaded")
            .unwrap();
        loaded.set("openssl", open(&lua).unwrap()).unwrap();
        loaded
            .set("zlib", crate::zlib::open(&lua).unwrap())
            .unwrap();
        loaded
            .set("lpeg", crate::lpeg::open(&lua).unwrap())
            .unwrap();
        let report: String = lua
            .load(
                r#"package.path = "/usr/share/nmap/nselib/?.lua"
                local log = {}
                nmap = {
                  socket = {sleep = function() end},
                  registry = {args = {}},
                  debugging = function() return 1 end,
                  verbosity = function() return 0 end,
                  log_write = function(_, s) log[#log + 1] = s end,
                  clock = os.clock,
                  address_family = function() return "inet" end,
                }
                package.loaded.nmap = nmap
                local unittest = require "unittest"
                unittest.run_tests({})  -- turns testing on
                local out = {}
                for _, lib in ipairs({"smbauth", "sasl", "vnc", "tls", "mssql", "http"}) do
                  local m = require(lib)
                  local failed, total = m.test_suite()
                  out[#out + 1] = lib .. "=" .. failed .. "/" .. total
                end
                -- Direct calls, with the known NTLM hash of "password".
                local smbauth = require "smbauth"
                local stdnse = require "stdnse"
                out[#out + 1] = stdnse.tohex(select(-1, smbauth.ntlm_create_hash("password")))
                return table.concat(out, " ") .. "\n" .. table.concat(log, "\n")"#,
            )
            .eval()
            .unwrap();
        let first = report.lines().next().unwrap_or_default();
        eprintln!("nselib suites (failed/total): {first}");
        let mut words = first.split(' ');
        for lib in ["smbauth", "sasl", "vnc", "tls", "mssql", "http"] {
            let w = words.next().unwrap_or_default();
            let (name, counts) = w.split_once('=').unwrap_or_default();
            let (failed, total) = counts.split_once('/').unwrap_or_default();
            assert_eq!(name, lib, "{report}");
            assert_eq!(failed, "0", "{report}");
            assert_ne!(total, "0", "{report}");
        }
        assert_eq!(
            words.next(),
            Some("8846f7eaee8fb117ad06bdd830b7586c"),
            "{report}"
        );
    }
}
