//! X.509 certificates as NSE scripts see them (Nmap's `nse_ssl_cert.cc`): the object that
//! `socket:get_ssl_certificate()` and `nmap.socket.parse_ssl_certificate(der)` return.
//!
//! It is a userdata whose fields are looked up in a table of attributes: `subject`, `issuer`
//! (tables keyed by OpenSSL's long attribute names, or by an array of OID components for names
//! OpenSSL does not know), `sig_algorithm`, `validity` (`notBefore`/`notAfter` as date tables
//! like `os.date("!*t")` without wday/yday, or the raw time string when it does not parse),
//! `pem`, `extensions` (an array of `{name, critical?, value | error}`, absent when there are
//! none) and `pubkey` (`type`, `bits`, and for RSA `exponent`/`modulus` bignums, for EC
//! `ecdhparams.curve_params`). `cert:digest(algorithm)` hashes the DER.

use std::ffi::{c_char, c_int, c_long, CStr, CString};

use foreign_types::ForeignTypeRef;
use mlua::{Function, Lua, MultiValue, Table, UserData, Value, Variadic};
use openssl::asn1::{Asn1ObjectRef, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Public};
use openssl::x509::{X509NameRef, X509};
use openssl_sys as ffi;

use crate::openssl::{function, push_bignum, ssl_error_text, Args};

extern "C" {
    fn ASN1_TIME_to_tm(s: *const ffi::ASN1_TIME, tm: *mut libc::tm) -> c_int;
    fn EVP_PKEY_get_base_id(pkey: *const ffi::EVP_PKEY) -> c_int;
}

/// The certificate userdata; its metatable's `__name` is "SSL_CERT", as Nmap's.
pub struct SslCert {
    cert: X509,
    attributes: Table,
}

impl UserData for SslCert {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field("__name", "SSL_CERT");
        fields.add_meta_field_with("__index", |lua| function(lua, "__index", cert_index));
    }
}

fn cert_index(_: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = check_cert(a)?;
    let cert = ud.borrow::<SslCert>()?;
    Ok(MultiValue::from_iter([cert
        .attributes
        .get::<Value>(a.get(2))?]))
}

fn check_cert(a: &Args) -> mlua::Result<mlua::AnyUserData> {
    match a.get(1) {
        Value::UserData(ud) if ud.is::<SslCert>() => Ok(ud),
        _ => Err(a.type_error(1, "SSL_CERT")),
    }
}

/// `cert:digest(algorithm)`: the digest of the DER, or nothing for an unknown algorithm.
fn cert_digest(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = check_cert(a)?;
    let algorithm = a.c_string(lua, 2)?;
    let cert = ud.borrow::<SslCert>()?;
    let md = std::str::from_utf8(&algorithm)
        .ok()
        .and_then(MessageDigest::from_name);
    let Some(md) = md else {
        return Ok(MultiValue::new());
    };
    match cert.cert.digest(md) {
        Ok(d) => Ok(MultiValue::from_iter([Value::String(
            lua.create_string(&*d)?,
        )])),
        Err(_) => Ok(MultiValue::new()),
    }
}

/// The metatable shared by every attributes table: its `__index` holds `digest`.
fn attributes_metatable(lua: &Lua) -> mlua::Result<Table> {
    const KEY: &str = "portolan.nse.ssl_cert_methods";
    if let Some(t) = lua.named_registry_value::<Option<Table>>(KEY)? {
        return Ok(t);
    }
    let methods = lua.create_table()?;
    methods.set("digest", function(lua, "digest", cert_digest)?)?;
    let meta = lua.create_table()?;
    meta.set("__index", methods)?;
    lua.set_named_registry_value(KEY, &meta)?;
    Ok(meta)
}

/// OBJ_obj2txt: the object's name (`numeric` false) or its dotted OID.
fn obj_text(obj: &Asn1ObjectRef, numeric: bool) -> String {
    let mut buf = [0 as c_char; 256];
    // SAFETY: OBJ_obj2txt writes at most buf.len() bytes, NUL-terminated.
    let n = unsafe {
        ffi::OBJ_obj2txt(
            buf.as_mut_ptr(),
            buf.len() as c_int,
            obj.as_ptr(),
            c_int::from(numeric),
        )
    };
    if n <= 0 {
        return String::new();
    }
    // SAFETY: as above, the buffer holds a NUL-terminated string.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// A name attribute's key: OpenSSL's long name, or the OID's components as an array.
fn name_key(lua: &Lua, obj: &Asn1ObjectRef) -> mlua::Result<Value> {
    let nid = obj.nid();
    if nid != Nid::UNDEF {
        if let Ok(ln) = nid.long_name() {
            return Ok(Value::String(lua.create_string(ln)?));
        }
    }
    let parts = lua.create_table()?;
    for (i, part) in obj_text(obj, true).split('.').enumerate() {
        parts.raw_set(i + 1, part)?;
    }
    Ok(Value::Table(parts))
}

/// A distinguished name as a table; a repeated attribute keeps its last value, as in Nmap.
fn name_table(lua: &Lua, name: &X509NameRef) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for entry in name.entries() {
        let key = name_key(lua, entry.object())?;
        t.set(key, lua.create_string(entry.data().as_slice())?)?;
    }
    Ok(t)
}

/// A validity time: a date table, or the raw string when OpenSSL cannot read it.
fn time_value(lua: &Lua, t: &Asn1TimeRef) -> mlua::Result<Value> {
    // SAFETY: libc::tm is plain data; all zeros is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a live ASN1_TIME and `tm` a writable struct tm.
    let ok = unsafe { ASN1_TIME_to_tm(t.as_ptr(), &mut tm) } == 1;
    if !ok {
        // SAFETY: an ASN1_TIME is an ASN1_STRING; the data pointer and length describe it.
        let raw = unsafe {
            let s = t.as_ptr() as *const ffi::ASN1_STRING;
            let len = usize::try_from(ffi::ASN1_STRING_length(s)).unwrap_or(0);
            let data = ffi::ASN1_STRING_get0_data(s);
            if data.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data, len).to_vec()
            }
        };
        return Ok(Value::String(lua.create_string(raw)?));
    }
    let d = lua.create_table()?;
    d.set("year", i64::from(tm.tm_year) + 1900)?;
    d.set("month", i64::from(tm.tm_mon) + 1)?;
    d.set("day", i64::from(tm.tm_mday))?;
    d.set("hour", i64::from(tm.tm_hour))?;
    d.set("min", i64::from(tm.tm_min))?;
    d.set("sec", i64::from(tm.tm_sec))?;
    Ok(Value::Table(d))
}

/// X509V3_EXT_print's text for one extension, None where OpenSSL cannot print it.
fn extension_text(ext: *mut ffi::X509_EXTENSION) -> Option<Vec<u8>> {
    // SAFETY: a fresh memory BIO, freed below; `ext` is a live extension of the certificate.
    unsafe {
        let bio = ffi::BIO_new(ffi::BIO_s_mem());
        if bio.is_null() {
            return None;
        }
        let text = if ffi::X509V3_EXT_print(bio, ext, 0, 0) == 1 {
            let mut p: *mut c_char = std::ptr::null_mut();
            let len: c_long = ffi::BIO_get_mem_data(bio, &mut p);
            let len = usize::try_from(len).unwrap_or(0);
            if p.is_null() || len == 0 {
                Some(Vec::new())
            } else {
                Some(std::slice::from_raw_parts(p as *const u8, len).to_vec())
            }
        } else {
            None
        };
        ffi::BIO_free_all(bio);
        text
    }
}

/// The extensions array, or None when the certificate has none.
fn extensions_table(lua: &Lua, cert: &X509) -> mlua::Result<Option<Table>> {
    // SAFETY: a live certificate; X509_get_ext returns borrowed pointers valid while it lives.
    let count = unsafe { ffi::X509_get_ext_count(cert.as_ptr()) };
    if count <= 0 {
        return Ok(None);
    }
    let list = lua.create_table()?;
    for i in 0..count {
        // SAFETY: 0 <= i < count.
        let ext = unsafe { ffi::X509_get_ext(cert.as_ptr(), i) };
        if ext.is_null() {
            continue;
        }
        // SAFETY: `ext` is live; the object pointer is borrowed from it.
        let obj_ptr = unsafe { ffi::X509_EXTENSION_get_object(ext) };
        if obj_ptr.is_null() {
            continue;
        }
        // SAFETY: as above, and checked non-null.
        let (obj, critical) = unsafe {
            (
                Asn1ObjectRef::from_ptr(obj_ptr),
                ffi::X509_EXTENSION_get_critical(ext) != 0,
            )
        };
        let t = lua.create_table()?;
        t.set("name", obj_text(obj, false))?;
        if critical {
            t.set("critical", true)?;
        }
        match extension_text(ext) {
            Some(text) => t.set("value", lua.create_string(text)?)?,
            None => t.set("error", true)?,
        }
        list.raw_set(i + 1, t)?;
    }
    Ok(Some(list))
}

/// EVP_PKEY_get_utf8_string_param.
fn pkey_string_param(pkey: &PKey<Public>, name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    let mut buf = [0 as c_char; 64];
    let mut len: usize = 0;
    // SAFETY: a live key, a NUL-terminated parameter name and a buffer of the given size.
    let ok = unsafe {
        ffi::EVP_PKEY_get_utf8_string_param(
            pkey.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut len,
        )
    };
    if ok != 1 {
        return None;
    }
    let bytes: Vec<u8> = buf[..len.min(buf.len())].iter().map(|&c| c as u8).collect();
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `ecdhparams = {curve_params = {curve = name, ec_curve_type = "namedcurve"}}`, the shape
/// tls.lua uses; explicit curves give "explicit_prime" or "explicit_char2" and no name.
fn ecdh_params(lua: &Lua, pkey: &PKey<Public>) -> mlua::Result<Table> {
    let curve_params = lua.create_table()?;
    if let Some(group) = pkey_string_param(pkey, "group") {
        curve_params.set("curve", group)?;
        curve_params.set("ec_curve_type", "namedcurve")?;
    } else if let Some(field) = pkey_string_param(pkey, "field-type") {
        let kind = match field.as_str() {
            "prime-field" => "explicit_prime".to_string(),
            "characteristic-two-field" => "explicit_char2".to_string(),
            _ => field,
        };
        curve_params.set("ec_curve_type", kind)?;
    }
    let ecdh = lua.create_table()?;
    ecdh.set("curve_params", curve_params)?;
    Ok(ecdh)
}

fn pubkey_table(lua: &Lua, pkey: &PKey<Public>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    // SAFETY: a live key.
    let id = Id::from_raw(unsafe { EVP_PKEY_get_base_id(pkey.as_ptr()) });
    if id == Id::EC {
        t.set("ecdhparams", ecdh_params(lua, pkey)?)?;
    } else if id == Id::RSA {
        if let Ok(rsa) = pkey.rsa() {
            if let (Ok(e), Ok(n)) = (rsa.e().to_owned(), rsa.n().to_owned()) {
                t.set("exponent", push_bignum(lua, e)?)?;
                t.set("modulus", push_bignum(lua, n)?)?;
            }
        }
    }
    let kind = match id {
        Id::RSA => "rsa",
        Id::DSA => "dsa",
        Id::DH => "dh",
        Id::EC => "ec",
        _ => "unknown",
    };
    t.set("type", kind)?;
    t.set("bits", i64::from(pkey.bits()))?;
    Ok(t)
}

/// Nmap's `parse_ssl_cert`: the certificate object, or `nil, "Error parsing cert: ..."` when
/// its public key cannot be read.
fn cert_results(lua: &Lua, cert: X509) -> mlua::Result<MultiValue> {
    let attrs = lua.create_table()?;
    attrs.set("subject", name_table(lua, cert.subject_name())?)?;
    // SAFETY: a live certificate.
    let sig_nid = Nid::from_raw(unsafe { ffi::X509_get_signature_nid(cert.as_ptr()) });
    attrs.set("sig_algorithm", sig_nid.long_name().ok())?;
    attrs.set("issuer", name_table(lua, cert.issuer_name())?)?;
    let validity = lua.create_table()?;
    validity.set("notBefore", time_value(lua, cert.not_before())?)?;
    validity.set("notAfter", time_value(lua, cert.not_after())?)?;
    attrs.set("validity", validity)?;
    if let Ok(pem) = cert.to_pem() {
        attrs.set("pem", lua.create_string(pem)?)?;
    }
    if let Some(ext) = extensions_table(lua, &cert)? {
        attrs.set("extensions", ext)?;
    }
    let pkey = match cert.public_key() {
        Ok(k) => k,
        Err(e) => {
            let msg = format!("Error parsing cert: {}", ssl_error_text(&e));
            return Ok(MultiValue::from_iter([
                Value::Nil,
                Value::String(lua.create_string(msg)?),
            ]));
        }
    };
    attrs.set("pubkey", pubkey_table(lua, &pkey)?)?;
    attrs.set_metatable(Some(attributes_metatable(lua)?))?;
    let ud = lua.create_userdata(SslCert {
        cert,
        attributes: attrs,
    })?;
    Ok(MultiValue::from_iter([Value::UserData(ud)]))
}

/// The certificate object for a DER certificate, as `socket:get_ssl_certificate()` returns
/// it: the object, `nil` when the DER does not parse, or `nil, message` when the public key
/// cannot be read.
pub fn certificate_results(lua: &Lua, der: &[u8]) -> mlua::Result<MultiValue> {
    match X509::from_der(der) {
        Ok(cert) => cert_results(lua, cert),
        Err(_) => Ok(MultiValue::from_iter([Value::Nil])),
    }
}

/// The certificate object for a DER certificate, or nil (see [`certificate_results`], which
/// also carries the message of a certificate whose key cannot be read).
pub fn certificate_to_lua(lua: &Lua, der: &[u8]) -> mlua::Result<Value> {
    Ok(certificate_results(lua, der)?
        .into_iter()
        .next()
        .unwrap_or(Value::Nil))
}

/// `nmap.socket.parse_ssl_certificate(der)` on the arguments as Lua passes them. Its argument
/// error is an `Args` error; register [`parse_ssl_certificate_function`] instead to give Lua
/// Nmap's plain-string message.
pub fn parse_ssl_certificate(lua: &Lua, args: Variadic<Value>) -> mlua::Result<MultiValue> {
    let a = Args::new("parse_ssl_certificate", args);
    let der = a.bytes(lua, 1)?;
    certificate_results(lua, &der)
}

/// `nmap.socket.parse_ssl_certificate` as a Lua function raising Nmap's plain-string errors.
pub fn parse_ssl_certificate_function(lua: &Lua) -> mlua::Result<Function> {
    function(lua, "parse_ssl_certificate", |lua, a| {
        let der = a.bytes(lua, 1)?;
        certificate_results(lua, &der)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::{Asn1Integer, Asn1Object, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509Builder, X509NameBuilder};

    /// A self-signed certificate with a SAN, a critical basicConstraints, an unknown name
    /// attribute and the given validity (ASN.1 time strings).
    fn make_cert(key: &PKey<Private>, not_before: &str, not_after: &str) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("C", "US").unwrap();
        name.append_entry_by_text("O", "Portolan Test").unwrap();
        name.append_entry_by_text("CN", "test.example").unwrap();
        let unknown = Asn1Object::from_str("1.3.6.1.4.1.55555.1").unwrap();
        name.append_entry_by_text(&unknown.to_string(), "odd")
            .unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = Asn1Integer::from_bn(&BigNum::from_u32(4660).unwrap()).unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::from_str_x509(not_before).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::from_str_x509(not_after).unwrap())
            .unwrap();
        let bc = BasicConstraints::new().critical().ca().build().unwrap();
        b.append_extension(bc).unwrap();
        let san = SubjectAlternativeName::new()
            .dns("test.example")
            .dns("www.test.example")
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn rsa_key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn ec_key() -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    fn lua_with(der: &[u8]) -> Lua {
        let lua = Lua::new();
        let openssl = crate::openssl::open(&lua).unwrap();
        lua.globals().set("openssl", openssl).unwrap();
        lua.globals()
            .set("parse", parse_ssl_certificate_function(&lua).unwrap())
            .unwrap();
        lua.globals()
            .set("der", lua.create_string(der).unwrap())
            .unwrap();
        lua.load("cert = parse(der)").exec().unwrap();
        lua
    }

    fn eval(lua: &Lua, code: &str) -> String {
        lua.load(code).eval::<String>().unwrap()
    }

    #[test]
    fn rsa_certificate_fields() {
        let key = rsa_key();
        let cert = make_cert(&key, "19990101000000Z", "20491231235959Z");
        let lua = lua_with(&cert.to_der().unwrap());
        assert_eq!(
            eval(&lua, "return cert.subject.commonName .. '|' .. cert.subject.organizationName .. '|' .. cert.subject.countryName"),
            "test.example|Portolan Test|US"
        );
        assert_eq!(
            eval(&lua, "for k, v in pairs(cert.subject) do if type(k) == 'table' then return table.concat(k, '.') .. '=' .. v end end"),
            "1.3.6.1.4.1.55555.1=odd"
        );
        assert_eq!(eval(&lua, "return cert.issuer.commonName"), "test.example");
        assert_eq!(
            eval(&lua, "return cert.sig_algorithm"),
            "sha256WithRSAEncryption"
        );
        let nb = "local d = cert.validity.notBefore return string.format('%d-%d-%d %d:%d:%d', d.year, d.month, d.day, d.hour, d.min, d.sec)";
        assert_eq!(eval(&lua, nb), "1999-1-1 0:0:0");
        let na = "local d = cert.validity.notAfter return string.format('%d-%d-%d %d:%d:%d', d.year, d.month, d.day, d.hour, d.min, d.sec) .. tostring(d.wday)";
        assert_eq!(eval(&lua, na), "2049-12-31 23:59:59nil");
        assert_eq!(
            eval(&lua, "return cert.pubkey.type .. cert.pubkey.bits .. ' ' .. cert.pubkey.exponent:todec()"),
            "rsa2048 65537"
        );
        let modulus = key.rsa().unwrap().n().to_hex_str().unwrap().to_string();
        assert_eq!(eval(&lua, "return cert.pubkey.modulus:tohex()"), modulus);
        assert_eq!(eval(&lua, "return tostring(cert.pubkey.ecdhparams)"), "nil");
        assert_eq!(
            eval(&lua, "return cert.pem"),
            String::from_utf8(cert.to_pem().unwrap()).unwrap()
        );
        let exts = "local r = {} for i, e in ipairs(cert.extensions) do r[#r+1] = e.name .. '=' .. tostring(e.critical) .. '=' .. e.value end return table.concat(r, ';')";
        assert_eq!(
            eval(&lua, exts),
            "X509v3 Basic Constraints=true=CA:TRUE;\
             X509v3 Subject Alternative Name=nil=DNS:test.example, DNS:www.test.example, IP Address:127.0.0.1"
        );
        let sha1: String = cert
            .digest(MessageDigest::sha1())
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            eval(&lua, "return (cert:digest('sha1'):gsub('.', function(c) return string.format('%02x', c:byte()) end))"),
            sha1
        );
        assert_eq!(
            eval(
                &lua,
                "return tostring((cert:digest('nosuch'))) .. select('#', cert:digest('nosuch'))"
            ),
            "nil0"
        );
        assert_eq!(
            eval(&lua, "return #cert:digest('md5') .. type(cert)"),
            "16userdata"
        );
    }

    #[test]
    fn ec_certificate_and_generalized_time() {
        let key = ec_key();
        let cert = make_cert(&key, "20200229120000Z", "20600101000000Z");
        let lua = lua_with(&cert.to_der().unwrap());
        assert_eq!(
            eval(&lua, "local p = cert.pubkey return p.type .. p.bits .. ' ' .. p.ecdhparams.curve_params.curve .. ' ' .. p.ecdhparams.curve_params.ec_curve_type .. tostring(p.modulus)"),
            "ec256 prime256v1 namedcurvenil"
        );
        assert_eq!(eval(&lua, "return cert.sig_algorithm"), "ecdsa-with-SHA256");
        assert_eq!(
            eval(&lua, "local a, b = cert.validity.notBefore, cert.validity.notAfter return a.year .. '-' .. a.month .. '-' .. a.day .. ' ' .. b.year"),
            "2020-2-29 2060"
        );
    }

    #[test]
    fn bad_input_gives_nil_or_errors() {
        let lua = Lua::new();
        lua.globals()
            .set("parse", parse_ssl_certificate_function(&lua).unwrap())
            .unwrap();
        let r: String = lua
            .load("return tostring(parse('not a certificate')) .. select('#', parse('')) .. tostring(parse(''))")
            .eval()
            .unwrap();
        assert_eq!(r, "nil1nil");
        let e: String = lua
            .load("local ok, e = pcall(parse) return e")
            .eval()
            .unwrap();
        assert_eq!(
            e,
            "bad argument #1 to 'parse' (string expected, got no value)"
        );
        // A truncated certificate is nil, never a crash.
        let key = ec_key();
        let der = make_cert(&key, "20200101000000Z", "20300101000000Z")
            .to_der()
            .unwrap();
        for cut in [1, 10, der.len() / 2, der.len() - 1] {
            let v = certificate_to_lua(&lua, &der[..cut]).unwrap();
            assert!(v.is_nil(), "cut at {cut}");
        }
        assert!(certificate_to_lua(&lua, &der).unwrap().is_userdata());
    }

    /// Every one-byte corruption of a certificate parses to nil or to an object whose every
    /// field can be read: never a crash.
    #[test]
    fn corrupted_certificates_never_crash() {
        let key = ec_key();
        let der = make_cert(&key, "20200101000000Z", "20300101000000Z")
            .to_der()
            .unwrap();
        let lua = Lua::new();
        lua.globals()
            .set("parse", parse_ssl_certificate_function(&lua).unwrap())
            .unwrap();
        let read_all = lua
            .load(
                r#"return function(der)
                  local c, err = parse(der)
                  if not c then return err and 2 or 0 end
                  local n = 0
                  local function walk(v) if type(v) == "table" then for k, x in pairs(v) do n = n + 1 walk(x) end end end
                  for _, k in ipairs({"subject", "issuer", "sig_algorithm", "validity", "pem", "extensions", "pubkey"}) do walk(c[k]) end
                  assert(c:digest("sha256"))
                  return 1
                end"#,
            )
            .eval::<Function>()
            .unwrap();
        let (mut objects, mut nils) = (0, 0);
        for i in 0..der.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = der.clone();
                bad[i] ^= flip;
                let kind: i64 = read_all.call(lua.create_string(&bad).unwrap()).unwrap();
                if kind == 1 {
                    objects += 1;
                } else {
                    nils += 1;
                }
            }
        }
        // Both outcomes occur: corrupted signatures still parse, broken framing does not.
        assert!(objects > 0 && nils > 0, "{objects} {nils}");
    }

    #[test]
    fn methods_check_their_self() {
        let key = ec_key();
        let der = make_cert(&key, "20200101000000Z", "20300101000000Z")
            .to_der()
            .unwrap();
        let lua = lua_with(&der);
        let e: String = lua
            .load("local ok, e = pcall(cert.digest, {}, 'sha1') return e")
            .eval()
            .unwrap();
        // Called through pcall, the function has no name Lua can find, as under Nmap.
        assert_eq!(e, "bad argument #1 to '?' (SSL_CERT expected, got table)");
        let e: String = lua
            .load("local ok, e = pcall(function() local d = cert:digest({}) end) return e")
            .set_name("=t")
            .eval()
            .unwrap();
        assert_eq!(
            e,
            "t:1: bad argument #1 to 'digest' (string expected, got table)"
        );
        assert_eq!(eval(&lua, "return tostring(cert.nosuch)"), "nil");
    }
}

/// The same certificates read by Nmap 7.93 itself: `socket:get_ssl_certificate()` against
/// `openssl s_server` on 127.0.0.1 serving them, every field serialized by `DUMP` in an NSE
/// script (the output below is what that script wrote), and `nmap --script ssl-cert` on them.
/// Ours must serialize the same, and ssl-cert.nse run on ours must print the same.
#[cfg(test)]
mod nmap_reference {
    use super::*;

    const DUMP: &str = r##"-- Serializes an NSE certificate object's fields into canonical text.
local function ser(v, ind)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys+1] = k end
    local function kstr(k) if type(k) == "table" then return "{" .. table.concat(k, ".") .. "}" end return tostring(k) end
    table.sort(keys, function(a, b) return kstr(a) < kstr(b) end)
    local out = {}
    for _, k in ipairs(keys) do out[#out+1] = ind .. kstr(k) .. " = " .. ser(v[k], ind .. "  ") end
    return "{\n" .. table.concat(out, "\n") .. "\n" .. ind .. "}"
  elseif t == "userdata" then
    return "BIGNUM " .. v:tohex() .. " " .. v:num_bits()
  elseif t == "string" then
    return string.format("%q", v)
  else
    return t .. ":" .. tostring(v)
  end
end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
function dump_cert(cert)
  local fields = {}
  for _, k in ipairs({"subject", "issuer", "sig_algorithm", "validity", "pem", "extensions", "pubkey", "version", "serial"}) do
    fields[k] = cert[k]
  end
  return ser(fields, "") .. "\nmd5=" .. hex(cert:digest("md5")) .. " sha1=" .. hex(cert:digest("sha1")) .. " sha256=" .. hex(cert:digest("sha256")) .. " nosuch=" .. select("#", cert:digest("nosuch"))
end
"##;

    /// RSA 2048, UTCTime validity 1999-2049, SAN and a critical basicConstraints.
    const RSA_PEM: &str = r##"-----BEGIN CERTIFICATE-----
MIIDYDCCAkigAwIBAgICEjQwDQYJKoZIhvcNAQELBQAwUDELMAkGA1UEBhMCVVMx
FjAUBgNVBAoMDVBvcnRvbGFuIFRlc3QxFTATBgNVBAMMDHRlc3QuZXhhbXBsZTES
MBAGCSsGAQQBg7IDAQwDb2RkMB4XDTk5MDEwMTAwMDAwMFoXDTQ5MTIzMTIzNTk1
OVowUDELMAkGA1UEBhMCVVMxFjAUBgNVBAoMDVBvcnRvbGFuIFRlc3QxFTATBgNV
BAMMDHRlc3QuZXhhbXBsZTESMBAGCSsGAQQBg7IDAQwDb2RkMIIBIjANBgkqhkiG
9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0HRldjk7AAoeG22TlFa/pT76PQKzfTxbgTGJ
hmjsG8umsZdZB9DzHUBSzQdULFFvR/Ft42vkE/VrU8/l2T9xGrYLCOctTESdbits
PVpf7x1/TvzZ/C1cJyZshM6gwS9sMP3V3TveT1g94Vr7AWoLiM0k0OKnZxDwd/ER
HeCpMma+S1JvhNok2p4lSJolsGux3GrwTCcEk46Oy4nqT3OGjTs9t/jZALaVJFLD
ZRHx2sp0SAnt/ShC3yDad0UWahfsIEbbQsZ3JSXgMHQV3Q2nYZIDFABDodBJSCum
+rTeQ/cVYpI8iwfvlVQj4Yc0RfWeOgdc/7na4DYHjXEbQRl8pQIDAQABo0QwQjAP
BgNVHRMBAf8EBTADAQH/MC8GA1UdEQQoMCaCDHRlc3QuZXhhbXBsZYIQd3d3LnRl
c3QuZXhhbXBsZYcEfwAAATANBgkqhkiG9w0BAQsFAAOCAQEAX6zPqDEDiakB3Ydm
u1CiwU6q6Pp3qDIK9VCwvf+jMaQ3OyBXOJl5WIWBQhgZKooyI4Mr55Ly5WhVeLE6
FWivYiAa21rl/P1t+/2MoJ+/pEuoCbPKoYm+Kb/mbJQvZCN1Y860FSeEOxVZxuu2
ZEtdC9UiOV/MR+vGcdqYye9BRo7TvNMl6m44lU7l/uaLJr1JxsfKXcDSfyEFXPku
vqgPyCIbedTUGwhIQpImxn7o8YYjALSj4gW4O93D+H/ImAXdx+A55MMgHVBQWMUk
4vY14791UWj/64Y/ArJaQPF2qONe7Wh+oGocGyKw5Evk+D1scyueZQ9A0Bx+yobT
Y86ESg==
-----END CERTIFICATE-----
"##;
    const RSA_NMAP: &str = r##"{
extensions = {
  1 = {
    critical = boolean:true
    name = "X509v3 Basic Constraints"
    value = "CA:TRUE"
    }
  2 = {
    name = "X509v3 Subject Alternative Name"
    value = "DNS:test.example, DNS:www.test.example, IP Address:127.0.0.1"
    }
  }
issuer = {
  commonName = "test.example"
  countryName = "US"
  organizationName = "Portolan Test"
  {1.3.6.1.4.1.55555.1} = "odd"
  }
pem = "-----BEGIN CERTIFICATE-----\
MIIDYDCCAkigAwIBAgICEjQwDQYJKoZIhvcNAQELBQAwUDELMAkGA1UEBhMCVVMx\
FjAUBgNVBAoMDVBvcnRvbGFuIFRlc3QxFTATBgNVBAMMDHRlc3QuZXhhbXBsZTES\
MBAGCSsGAQQBg7IDAQwDb2RkMB4XDTk5MDEwMTAwMDAwMFoXDTQ5MTIzMTIzNTk1\
OVowUDELMAkGA1UEBhMCVVMxFjAUBgNVBAoMDVBvcnRvbGFuIFRlc3QxFTATBgNV\
BAMMDHRlc3QuZXhhbXBsZTESMBAGCSsGAQQBg7IDAQwDb2RkMIIBIjANBgkqhkiG\
9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0HRldjk7AAoeG22TlFa/pT76PQKzfTxbgTGJ\
hmjsG8umsZdZB9DzHUBSzQdULFFvR/Ft42vkE/VrU8/l2T9xGrYLCOctTESdbits\
PVpf7x1/TvzZ/C1cJyZshM6gwS9sMP3V3TveT1g94Vr7AWoLiM0k0OKnZxDwd/ER\
HeCpMma+S1JvhNok2p4lSJolsGux3GrwTCcEk46Oy4nqT3OGjTs9t/jZALaVJFLD\
ZRHx2sp0SAnt/ShC3yDad0UWahfsIEbbQsZ3JSXgMHQV3Q2nYZIDFABDodBJSCum\
+rTeQ/cVYpI8iwfvlVQj4Yc0RfWeOgdc/7na4DYHjXEbQRl8pQIDAQABo0QwQjAP\
BgNVHRMBAf8EBTADAQH/MC8GA1UdEQQoMCaCDHRlc3QuZXhhbXBsZYIQd3d3LnRl\
c3QuZXhhbXBsZYcEfwAAATANBgkqhkiG9w0BAQsFAAOCAQEAX6zPqDEDiakB3Ydm\
u1CiwU6q6Pp3qDIK9VCwvf+jMaQ3OyBXOJl5WIWBQhgZKooyI4Mr55Ly5WhVeLE6\
FWivYiAa21rl/P1t+/2MoJ+/pEuoCbPKoYm+Kb/mbJQvZCN1Y860FSeEOxVZxuu2\
ZEtdC9UiOV/MR+vGcdqYye9BRo7TvNMl6m44lU7l/uaLJr1JxsfKXcDSfyEFXPku\
vqgPyCIbedTUGwhIQpImxn7o8YYjALSj4gW4O93D+H/ImAXdx+A55MMgHVBQWMUk\
4vY14791UWj/64Y/ArJaQPF2qONe7Wh+oGocGyKw5Evk+D1scyueZQ9A0Bx+yobT\
Y86ESg==\
-----END CERTIFICATE-----\
"
pubkey = {
  bits = number:2048
  exponent = BIGNUM 010001 17
  modulus = BIGNUM D0746576393B000A1E1B6D939456BFA53EFA3D02B37D3C5B8131898668EC1BCBA6B1975907D0F31D4052CD07542C516F47F16DE36BE413F56B53CFE5D93F711AB60B08E72D4C449D6E2B6C3D5A5FEF1D7F4EFCD9FC2D5C27266C84CEA0C12F6C30FDD5DD3BDE4F583DE15AFB016A0B88CD24D0E2A76710F077F1111DE0A93266BE4B526F84DA24DA9E25489A25B06BB1DC6AF04C2704938E8ECB89EA4F73868D3B3DB7F8D900B6952452C36511F1DACA744809EDFD2842DF20DA7745166A17EC2046DB42C6772525E0307415DD0DA7619203140043A1D049482BA6FAB4DE43F71562923C8B07EF955423E1873445F59E3A075CFFB9DAE036078D711B41197CA5 2048
  type = "rsa"
  }
sig_algorithm = "sha256WithRSAEncryption"
subject = {
  commonName = "test.example"
  countryName = "US"
  organizationName = "Portolan Test"
  {1.3.6.1.4.1.55555.1} = "odd"
  }
validity = {
  notAfter = {
    day = number:31
    hour = number:23
    min = number:59
    month = number:12
    sec = number:59
    year = number:2049
    }
  notBefore = {
    day = number:1
    hour = number:0
    min = number:0
    month = number:1
    sec = number:0
    year = number:1999
    }
  }
}
md5=ac6ec4c26f00302b05795bbccd2977d6 sha1=07b123b5d1e51efe4013aac202abed9863e5b3a2 sha256=d2a9f3ec22b569ea5b7144a5582fc0c6bc5e3983f9c10e96aabe5a39bebdf388 nosuch=0"##;

    /// EC P-256, UTCTime notBefore (2020-02-29), GeneralizedTime notAfter (2060).
    const EC_PEM: &str = r##"-----BEGIN CERTIFICATE-----
MIIB1jCCAXygAwIBAgICEjQwCgYIKoZIzj0EAwIwUDELMAkGA1UEBhMCVVMxFjAU
BgNVBAoMDVBvcnRvbGFuIFRlc3QxFTATBgNVBAMMDHRlc3QuZXhhbXBsZTESMBAG
CSsGAQQBg7IDAQwDb2RkMCAXDTIwMDIyOTEyMDAwMFoYDzIwNjAwMTAxMDAwMDAw
WjBQMQswCQYDVQQGEwJVUzEWMBQGA1UECgwNUG9ydG9sYW4gVGVzdDEVMBMGA1UE
AwwMdGVzdC5leGFtcGxlMRIwEAYJKwYBBAGDsgMBDANvZGQwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAATTLuEHvP0nzRaijox7IeAelM3gZd/VcTUEuHJ4EGP1jAX5
xWmqFnUjZXaztAUAVY5E9DJ0pLWFT9y5ewwFjtXEo0QwQjAPBgNVHRMBAf8EBTAD
AQH/MC8GA1UdEQQoMCaCDHRlc3QuZXhhbXBsZYIQd3d3LnRlc3QuZXhhbXBsZYcE
fwAAATAKBggqhkjOPQQDAgNIADBFAiB1IF7OlsTlS1z/z1tLWo7L5AvOb4MupGru
9Mc9y6lXEgIhAJOoDqA80UNC2fcFm94DuDoMe3RaITRss5SppBrps+hu
-----END CERTIFICATE-----
"##;
    const EC_NMAP: &str = r##"{
extensions = {
  1 = {
    critical = boolean:true
    name = "X509v3 Basic Constraints"
    value = "CA:TRUE"
    }
  2 = {
    name = "X509v3 Subject Alternative Name"
    value = "DNS:test.example, DNS:www.test.example, IP Address:127.0.0.1"
    }
  }
issuer = {
  commonName = "test.example"
  countryName = "US"
  organizationName = "Portolan Test"
  {1.3.6.1.4.1.55555.1} = "odd"
  }
pem = "-----BEGIN CERTIFICATE-----\
MIIB1jCCAXygAwIBAgICEjQwCgYIKoZIzj0EAwIwUDELMAkGA1UEBhMCVVMxFjAU\
BgNVBAoMDVBvcnRvbGFuIFRlc3QxFTATBgNVBAMMDHRlc3QuZXhhbXBsZTESMBAG\
CSsGAQQBg7IDAQwDb2RkMCAXDTIwMDIyOTEyMDAwMFoYDzIwNjAwMTAxMDAwMDAw\
WjBQMQswCQYDVQQGEwJVUzEWMBQGA1UECgwNUG9ydG9sYW4gVGVzdDEVMBMGA1UE\
AwwMdGVzdC5leGFtcGxlMRIwEAYJKwYBBAGDsgMBDANvZGQwWTATBgcqhkjOPQIB\
BggqhkjOPQMBBwNCAATTLuEHvP0nzRaijox7IeAelM3gZd/VcTUEuHJ4EGP1jAX5\
xWmqFnUjZXaztAUAVY5E9DJ0pLWFT9y5ewwFjtXEo0QwQjAPBgNVHRMBAf8EBTAD\
AQH/MC8GA1UdEQQoMCaCDHRlc3QuZXhhbXBsZYIQd3d3LnRlc3QuZXhhbXBsZYcE\
fwAAATAKBggqhkjOPQQDAgNIADBFAiB1IF7OlsTlS1z/z1tLWo7L5AvOb4MupGru\
9Mc9y6lXEgIhAJOoDqA80UNC2fcFm94DuDoMe3RaITRss5SppBrps+hu\
-----END CERTIFICATE-----\
"
pubkey = {
  bits = number:256
  ecdhparams = {
    curve_params = {
      curve = "prime256v1"
      ec_curve_type = "namedcurve"
      }
    }
  type = "ec"
  }
sig_algorithm = "ecdsa-with-SHA256"
subject = {
  commonName = "test.example"
  countryName = "US"
  organizationName = "Portolan Test"
  {1.3.6.1.4.1.55555.1} = "odd"
  }
validity = {
  notAfter = {
    day = number:1
    hour = number:0
    min = number:0
    month = number:1
    sec = number:0
    year = number:2060
    }
  notBefore = {
    day = number:29
    hour = number:12
    min = number:0
    month = number:2
    sec = number:0
    year = number:2020
    }
  }
}
md5=2113007ed4e1d292d4349e19b940f929 sha1=5ff6419c7e363ba3390a76ddebbd3c404bab35a6 sha256=4fd6a0135fc9e4f0ce39a2dcd7c327d3e5d74b7680f471051602cb9a44576f1e nosuch=0"##;

    fn ours(pem: &str) -> String {
        let der = X509::from_pem(pem.as_bytes()).unwrap().to_der().unwrap();
        let lua = Lua::new();
        lua.globals()
            .set("cert", certificate_to_lua(&lua, &der).unwrap())
            .unwrap();
        lua.load(DUMP).exec().unwrap();
        lua.load("return dump_cert(cert)").eval().unwrap()
    }

    /// ssl-cert's text output for the two certificates, from the same `nmap` run.
    const RSA_SSL_CERT: &str = r##"Subject: commonName=test.example/organizationName=Portolan Test/countryName=US
Subject Alternative Name: DNS:test.example, DNS:www.test.example, IP Address:127.0.0.1
Issuer: commonName=test.example/organizationName=Portolan Test/countryName=US
Public Key type: rsa
Public Key bits: 2048
Signature Algorithm: sha256WithRSAEncryption
Not valid before: 1999-01-01T00:00:00
Not valid after:  2049-12-31T23:59:59
MD5:   ac6ec4c26f00302b05795bbccd2977d6
SHA-1: 07b123b5d1e51efe4013aac202abed9863e5b3a2"##;
    const EC_SSL_CERT: &str = r##"Subject: commonName=test.example/organizationName=Portolan Test/countryName=US
Subject Alternative Name: DNS:test.example, DNS:www.test.example, IP Address:127.0.0.1
Issuer: commonName=test.example/organizationName=Portolan Test/countryName=US
Public Key type: ec
Public Key bits: 256
Signature Algorithm: ecdsa-with-SHA256
Not valid before: 2020-02-29T12:00:00
Not valid after:  2060-01-01T00:00:00
MD5:   2113007ed4e1d292d4349e19b940f929
SHA-1: 5ff6419c7e363ba3390a76ddebbd3c404bab35a6"##;

    /// Runs Nmap's own ssl-cert.nse `action` on our certificate object, with `sslcert`'s
    /// certificate fetch (a TLS socket) stood in for; returns its text output.
    fn ssl_cert_output(pem: &str) -> Option<String> {
        let script = std::path::Path::new("/usr/share/nmap/scripts/ssl-cert.nse");
        if !script.is_file() {
            eprintln!("skipped: {} is not installed", script.display());
            return None;
        }
        let der = X509::from_pem(pem.as_bytes()).unwrap().to_der().unwrap();
        // SAFETY: all standard libraries, as Nmap opens them; only Nmap's own Lua runs.
        let lua = unsafe { Lua::unsafe_new() };
        let loaded: Table = lua.named_registry_value("_LOADED").unwrap();
        loaded
            .set("openssl", crate::openssl::open(&lua).unwrap())
            .unwrap();
        loaded
            .set("lpeg", crate::lpeg::open(&lua).unwrap())
            .unwrap();
        lua.globals()
            .set("CERT", certificate_to_lua(&lua, &der).unwrap())
            .unwrap();
        lua.globals()
            .set("SCRIPT", std::fs::read_to_string(script).unwrap())
            .unwrap();
        let out: String = lua
            .load(
                r#"package.path = "/usr/share/nmap/nselib/?.lua"
                nmap = {
                  socket = {sleep = function() end},
                  registry = {args = {}},
                  debugging = function() return 0 end,
                  -- nse_main.lua adds 1 for a script selected by name, as --script ssl-cert.
                  verbosity = function() return 1 end,
                  log_write = function() end,
                  clock = os.clock,
                  address_family = function() return "inet" end,
                }
                package.loaded.nmap = nmap
                package.loaded.sslcert = {
                  getCertificate = function() return true, CERT end,
                  isPortSupported = function() return false end,
                  getPrepareTLSWithoutReconnect = function() return false end,
                }
                local env = setmetatable({SCRIPT_NAME = "ssl-cert"}, {__index = _G})
                assert(load(SCRIPT, "=ssl-cert", "t", env))()
                local host = {ip = "127.0.0.1", targetname = nil, registry = {}}
                local port = {number = 443, protocol = "tcp", service = "https",
                  version = {service_tunnel = "ssl"}}
                local tab, text = env.action(host, port)
                assert(tab.pubkey.type, "structured output")
                return text"#,
            )
            .eval()
            .unwrap();
        Some(out)
    }

    #[test]
    fn ssl_cert_script_prints_what_nmap_prints() {
        if let Some(out) = ssl_cert_output(RSA_PEM) {
            assert_eq!(out, RSA_SSL_CERT);
        }
        if let Some(out) = ssl_cert_output(EC_PEM) {
            assert_eq!(out, EC_SSL_CERT);
        }
    }

    #[test]
    fn rsa_certificate_reads_as_nmap_reads_it() {
        assert_eq!(ours(RSA_PEM), RSA_NMAP);
    }

    #[test]
    fn ec_certificate_reads_as_nmap_reads_it() {
        assert_eq!(ours(EC_PEM), EC_NMAP);
    }
}
