//! The `zlib` Lua module of Nmap's scripting engine (Nmap's `nse_zlib.cc`, lzlib 0.4-work3):
//! one-shot `compress`/`decompress`, `inflate`/`deflate` streams with `read`, `lines`, `write`,
//! `flush`, `close` and `adler`, the `crc32`/`adler32` checksums and `version`. http.lua reads
//! gzip bodies through `zlib.inflate`.
//!
//! Built on the system's zlib through libz-sys, as Nmap's is, so that every window-bits form
//! (raw, zlib, gzip, and the zlib-or-gzip detection `inflate` asks for), memory level, strategy,
//! preset dictionary and zlib return code behaves as under Nmap. The zlib calls are wrapped in
//! [`ZStream`]; the rest is safe code.

use std::ffi::{c_int, CStr};

use libz_sys as z;
use mlua::{AnyUserData, Function, Lua, MultiValue, ObjectLike, Table, UserData, Value};

use crate::openssl::{function, plain_error, Args};

/// lzlib's stream output buffer.
const LZ_BUFFER_SIZE: usize = 8192;
/// Lua 5.4's LUAL_BUFFERSIZE on 64-bit builds: the chunk the one-shot functions work in.
const CHUNK: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Closed,
    Deflate,
    Inflate,
}

unsafe extern "C" fn zalloc(_: z::voidpf, items: z::uInt, size: z::uInt) -> z::voidpf {
    libc::calloc(items as usize, size as usize)
}

unsafe extern "C" fn zfree(_: z::voidpf, p: z::voidpf) {
    libc::free(p)
}

/// A zlib stream: the only unsafe part of the module. The `z_stream` is boxed because zlib's
/// state points back at it; input and output pointers are set for one call and cleared after.
struct ZStream {
    strm: Box<z::z_stream>,
    kind: Kind,
}

/// One zlib call's outcome: its return code and the bytes it consumed and produced.
struct Step {
    ret: c_int,
    consumed: usize,
    produced: usize,
}

impl ZStream {
    fn new() -> ZStream {
        ZStream {
            strm: Box::new(z::z_stream {
                next_in: std::ptr::null_mut(),
                avail_in: 0,
                total_in: 0,
                next_out: std::ptr::null_mut(),
                avail_out: 0,
                total_out: 0,
                msg: std::ptr::null_mut(),
                state: std::ptr::null_mut(),
                zalloc,
                zfree,
                opaque: std::ptr::null_mut(),
                data_type: 0,
                adler: 0,
                reserved: 0,
            }),
            kind: Kind::Closed,
        }
    }

    fn stream_size() -> c_int {
        std::mem::size_of::<z::z_stream>() as c_int
    }

    /// inflateInit2.
    fn inflate_init(window_bits: c_int) -> Result<ZStream, c_int> {
        let mut s = ZStream::new();
        // SAFETY: a fresh, boxed z_stream with allocator functions set.
        let ret = unsafe {
            z::inflateInit2_(
                &mut *s.strm,
                window_bits,
                z::zlibVersion(),
                Self::stream_size(),
            )
        };
        if ret != z::Z_OK {
            return Err(ret);
        }
        s.kind = Kind::Inflate;
        Ok(s)
    }

    /// deflateInit2.
    fn deflate_init(
        level: c_int,
        method: c_int,
        window_bits: c_int,
        mem_level: c_int,
        strategy: c_int,
    ) -> Result<ZStream, c_int> {
        let mut s = ZStream::new();
        // SAFETY: as in inflate_init.
        let ret = unsafe {
            z::deflateInit2_(
                &mut *s.strm,
                level,
                method,
                window_bits,
                mem_level,
                strategy,
                z::zlibVersion(),
                Self::stream_size(),
            )
        };
        if ret != z::Z_OK {
            return Err(ret);
        }
        s.kind = Kind::Deflate;
        Ok(s)
    }

    /// One inflate or deflate call over `input` into `output`.
    fn step(&mut self, input: &[u8], output: &mut [u8], flush: c_int) -> Step {
        if self.kind == Kind::Closed {
            return Step {
                ret: z::Z_STREAM_ERROR,
                consumed: 0,
                produced: 0,
            };
        }
        let avail_in = input.len().min(z::uInt::MAX as usize) as z::uInt;
        let avail_out = output.len().min(z::uInt::MAX as usize) as z::uInt;
        self.strm.next_in = if avail_in == 0 {
            std::ptr::null_mut()
        } else {
            input.as_ptr() as *mut u8
        };
        self.strm.avail_in = avail_in;
        self.strm.next_out = output.as_mut_ptr();
        self.strm.avail_out = avail_out;
        // SAFETY: an initialised stream whose next_in/next_out describe live buffers of the
        // given lengths (zlib never writes through next_in); they are cleared below.
        let ret = unsafe {
            if self.kind == Kind::Inflate {
                z::inflate(&mut *self.strm, flush)
            } else {
                z::deflate(&mut *self.strm, flush)
            }
        };
        let step = Step {
            ret,
            consumed: (avail_in - self.strm.avail_in) as usize,
            produced: (avail_out - self.strm.avail_out) as usize,
        };
        self.strm.next_in = std::ptr::null_mut();
        self.strm.avail_in = 0;
        self.strm.next_out = std::ptr::null_mut();
        self.strm.avail_out = 0;
        step
    }

    fn set_dictionary(&mut self, dict: &[u8]) -> c_int {
        let Ok(len) = z::uInt::try_from(dict.len()) else {
            return z::Z_STREAM_ERROR;
        };
        // SAFETY: an initialised stream and a live dictionary buffer of that length.
        unsafe {
            match self.kind {
                Kind::Inflate => z::inflateSetDictionary(&mut *self.strm, dict.as_ptr(), len),
                Kind::Deflate => z::deflateSetDictionary(&mut *self.strm, dict.as_ptr(), len),
                Kind::Closed => z::Z_STREAM_ERROR,
            }
        }
    }

    // z_checksum is a C unsigned long: 64 bits here, 32 on some targets.
    #[allow(clippy::unnecessary_cast)]
    fn adler(&self) -> u64 {
        self.strm.adler as u64
    }

    /// inflateEnd/deflateEnd; the stream is closed afterwards.
    fn end(&mut self) {
        // SAFETY: the stream was initialised for this kind and is ended once.
        unsafe {
            match self.kind {
                Kind::Inflate => {
                    z::inflateEnd(&mut *self.strm);
                }
                Kind::Deflate => {
                    z::deflateEnd(&mut *self.strm);
                }
                Kind::Closed => {}
            }
        }
        self.kind = Kind::Closed;
    }
}

impl Drop for ZStream {
    fn drop(&mut self) {
        self.end();
    }
}

/// zlib's zlibVersion().
fn zlib_version() -> String {
    // SAFETY: zlibVersion returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(z::zlibVersion()) }
        .to_string_lossy()
        .into_owned()
}

// ---------------------------------------------------------------------------------------------
// Streams

/// An lzlib stream userdata (`zlib:zstream`).
pub struct LzStream {
    z: ZStream,
    peek: bool,
    eos: bool,
    /// The last inflate call could do nothing: no input came and no output went.
    stalled: bool,
    /// The source (inflate: function, or object with read/peek) or sink (deflate: function,
    /// or object with write).
    io_cb: Option<Value>,
    /// The input being consumed; None once used up or at the end of the stream.
    input: Option<Vec<u8>>,
    input_pos: usize,
    input_len: usize,
    /// Inflated bytes not yet read.
    out: Vec<u8>,
    dictionary: Option<Vec<u8>>,
}

impl UserData for LzStream {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_meta_field("__name", "zlib:zstream");
        fields.add_meta_field_with("__index", |lua| {
            let methods = lua.create_table()?;
            for (name, f) in STREAM_METHODS {
                methods.set(name, function(lua, name, f)?)?;
            }
            Ok(methods)
        });
        fields.add_meta_field_with("__tostring", |lua| {
            function(lua, "__tostring", stream_tostring)
        });
    }
}

type LuaFn = fn(&Lua, &Args) -> mlua::Result<MultiValue>;

const STREAM_METHODS: [(&str, LuaFn); 6] = [
    ("write", stream_write),
    ("read", stream_read),
    ("lines", stream_lines),
    ("flush", stream_flush),
    ("close", stream_close),
    ("adler", stream_adler),
];

fn ret1(v: Value) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([v]))
}

fn lstr(lua: &Lua, b: &[u8]) -> mlua::Result<Value> {
    Ok(Value::String(lua.create_string(b)?))
}

/// `lzstream_get`: argument `i` as a stream userdata.
fn get_stream(a: &Args, i: usize) -> mlua::Result<AnyUserData> {
    match a.get(i) {
        Value::UserData(ud) if ud.is::<LzStream>() => Ok(ud),
        _ => Err(a.type_error(i, "zlib:zstream")),
    }
}

/// `lzstream_check`: a stream that is open, and of the given kind when one is given.
fn check_stream(a: &Args, i: usize, kind: Option<Kind>) -> mlua::Result<AnyUserData> {
    let ud = get_stream(a, i)?;
    let actual = ud.borrow::<LzStream>()?.z.kind;
    if actual == Kind::Closed || kind.is_some_and(|k| k != actual) {
        return Err(a.error(i, "attempt to use invalid zlib stream"));
    }
    Ok(ud)
}

/// `obj.name` with Lua's indexing (metatables included).
fn field(v: &Value, name: &str) -> mlua::Result<Value> {
    match v {
        Value::Table(t) => t.get(name),
        Value::UserData(ud) => ud.get(name),
        _ => Ok(Value::Nil),
    }
}

impl LzStream {
    fn new(z: ZStream, src: &Value, lua: &Lua) -> mlua::Result<LzStream> {
        let mut s = LzStream {
            z,
            peek: false,
            eos: false,
            stalled: false,
            io_cb: None,
            input: None,
            input_pos: 0,
            input_len: 0,
            out: Vec::with_capacity(LZ_BUFFER_SIZE),
            dictionary: None,
        };
        match src {
            Value::String(_) | Value::Integer(_) | Value::Number(_) => {
                let bytes = lua
                    .coerce_string(src.clone())?
                    .map(|s| s.as_bytes().to_vec())
                    .unwrap_or_default();
                s.input_len = bytes.len();
                s.input = Some(bytes);
            }
            other => s.io_cb = Some(other.clone()),
        }
        Ok(s)
    }

    /// `lzstream_fetch_block`: when the input is used up, asks the source for more. Returns
    /// whether there is an input buffer (possibly empty).
    fn fetch_block(&mut self, lua: &Lua, hint: usize) -> mlua::Result<bool> {
        if self.input_pos >= self.input_len {
            self.input = None;
            if let Some(cb) = &self.io_cb {
                let got: Value = match cb {
                    Value::Function(f) => f.call(hint)?,
                    obj => {
                        let name = if self.peek { "peek" } else { "read" };
                        let f: Function = match field(obj, name)? {
                            Value::Function(f) => f,
                            _ => return Err(plain_error("attempt to call a nil value")),
                        };
                        f.call((obj.clone(), hint))?
                    }
                };
                match got {
                    Value::String(_) | Value::Integer(_) | Value::Number(_) => {
                        let bytes = lua
                            .coerce_string(got)?
                            .map(|s| s.as_bytes().to_vec())
                            .unwrap_or_default();
                        self.input_pos = 0;
                        self.input_len = bytes.len();
                        self.input = Some(bytes);
                    }
                    Value::Nil => {}
                    _ => return Err(plain_error("deflate callback must return string or nil")),
                }
            }
        }
        Ok(self.input.is_some())
    }

    /// `lzstream_inflate_block`: inflates more into the output buffer; returns its length.
    fn inflate_block(&mut self, lua: &Lua) -> mlua::Result<usize> {
        if self.fetch_block(lua, LZ_BUFFER_SIZE)? || !self.eos {
            let mut buf = vec![0u8; LZ_BUFFER_SIZE - self.out.len()];
            let start = self.input_pos.min(self.input_len);
            let input: &[u8] = match &self.input {
                Some(b) => &b[start..],
                None => &[],
            };
            let mut step = self.z.step(input, &mut buf, z::Z_SYNC_FLUSH);
            let mut consumed = step.consumed;
            let mut produced = step.produced;
            if step.ret == z::Z_NEED_DICT {
                let Some(dict) = self.dictionary.clone() else {
                    return Err(plain_error("no inflate dictionary provided"));
                };
                if self.z.set_dictionary(&dict) != z::Z_OK {
                    return Err(plain_error("call to inflateSetDictionnary failed"));
                }
                step = self
                    .z
                    .step(&input[consumed..], &mut buf[produced..], z::Z_SYNC_FLUSH);
                consumed += step.consumed;
                produced += step.produced;
            }
            let r = step.ret;
            if r != z::Z_OK && r != z::Z_STREAM_END && r != z::Z_BUF_ERROR {
                self.z.end();
                return Err(plain_error(format!("failed to decompress [{r}]")));
            }
            let avail_in = input.len() - consumed;
            if r == z::Z_STREAM_END {
                self.input = None;
                self.eos = true;
            }
            if self.peek {
                if let Some(obj) = self.io_cb.clone() {
                    let processed = consumed;
                    let read: Function = match field(&obj, "read")? {
                        Value::Function(f) => f,
                        _ => return Err(plain_error("attempt to call a nil value")),
                    };
                    read.call::<()>((obj, processed))?;
                }
            }
            self.input_pos = self.input_len - avail_in;
            self.out.extend_from_slice(&buf[..produced]);
            self.stalled = consumed == 0 && produced == 0;
        }
        Ok(self.out.len())
    }

    /// `lz_test_eof`: whether there is more to read.
    fn test_eof(&mut self, lua: &Lua) -> mlua::Result<bool> {
        if !self.out.is_empty() {
            Ok(true)
        } else if self.eos {
            Ok(false)
        } else {
            Ok(self.inflate_block(lua)? > 0)
        }
    }

    /// `lz_read_line`: a line without its end (\n, \r or \r\n), and whether one was read.
    fn read_line(&mut self, lua: &Lua) -> mlua::Result<(Vec<u8>, bool)> {
        let mut line = Vec::new();
        if !self.out.is_empty() || !self.eos {
            loop {
                if let Some(n) = self.out.iter().position(|&c| c == b'\n' || c == b'\r') {
                    let eat_nl = self.out[n] == b'\r';
                    line.extend_from_slice(&self.out[..n]);
                    self.out.drain(..=n);
                    if eat_nl && self.inflate_block(lua)? > 0 && self.out.first() == Some(&b'\n') {
                        self.out.remove(0);
                    }
                    return Ok((line, true));
                }
                line.append(&mut self.out);
                if self.inflate_block(lua)? == 0 {
                    break;
                }
            }
        }
        // Nmap's lzlib also counts "not at the end of the stream" as success, so on a
        // truncated stream every later read gives "" and a lines() loop never ends; a stream
        // that can make no more progress ends the lines here instead.
        let ok = !line.is_empty() || (!self.eos && !self.stalled) || !self.out.is_empty();
        Ok((line, ok))
    }

    /// `lz_read_chars`: up to `n` bytes, and whether the read succeeded.
    fn read_chars(&mut self, lua: &Lua, mut n: usize) -> mlua::Result<(Vec<u8>, bool)> {
        let mut got = Vec::new();
        if !self.out.is_empty() || !self.eos {
            loop {
                let take = n.min(self.out.len());
                got.extend(self.out.drain(..take));
                n -= take;
                if n == 0 || self.inflate_block(lua)? == 0 {
                    break;
                }
            }
        }
        let ok = n == 0 || !got.is_empty();
        Ok((got, ok))
    }

    /// `lzstream_docompress`: deflates each input and hands the output to the sink.
    fn compress(
        &mut self,
        lua: &Lua,
        inputs: &[Vec<u8>],
        flush: c_int,
    ) -> mlua::Result<MultiValue> {
        let sink = self.io_cb.clone().unwrap_or(Value::Nil);
        let (write, this) = match &sink {
            Value::Function(f) => (f.clone(), None),
            obj => match field(obj, "write")? {
                Value::Function(f) => (f, Some(obj.clone())),
                _ => return Err(plain_error("attempt to call a nil value")),
            },
        };
        let mut buf = vec![0u8; LZ_BUFFER_SIZE];
        for input in inputs {
            let mut pos = 0;
            loop {
                let step = self.z.step(&input[pos..], &mut buf, flush);
                pos += step.consumed;
                let r = step.ret;
                if r != z::Z_OK && r != z::Z_STREAM_END && r != z::Z_BUF_ERROR {
                    self.z.end();
                    return Ok(MultiValue::from_iter([
                        Value::Boolean(false),
                        lstr(lua, format!("failed to compress [{r}]").as_bytes())?,
                    ]));
                }
                if step.produced > 0 {
                    let data = lua.create_string(&buf[..step.produced])?;
                    match &this {
                        Some(obj) => write.call::<()>((obj.clone(), data))?,
                        None => write.call::<()>(data)?,
                    }
                }
                if r == z::Z_STREAM_END {
                    self.z.end();
                    break;
                }
                if pos >= input.len() && step.produced < buf.len() {
                    break;
                }
            }
        }
        ret1(Value::Boolean(true))
    }
}

fn stream_tostring(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = get_stream(a, 1)?;
    let s = ud.borrow::<LzStream>()?;
    let text = match s.z.kind {
        Kind::Closed => "zlib stream (closed)".to_string(),
        Kind::Deflate => format!("zlib deflate stream ({:p})", &*s.z.strm),
        Kind::Inflate => format!("zlib inflate stream ({:p})", &*s.z.strm),
    };
    ret1(lstr(lua, text.as_bytes())?)
}

fn stream_close(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = get_stream(a, 1)?;
    let mut s = ud.borrow_mut::<LzStream>()?;
    if s.z.kind == Kind::Deflate {
        return s.compress(lua, &[Vec::new()], z::Z_FINISH);
    }
    s.z.end();
    ret1(Value::Boolean(true))
}

/// The running checksum of the stream (a float, as lzlib pushes it).
fn stream_adler(_: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = check_stream(a, 1, None)?;
    let adler = ud.borrow::<LzStream>()?.z.adler();
    ret1(Value::Number(adler as f64))
}

fn stream_write(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = check_stream(a, 1, Some(Kind::Deflate))?;
    let mut inputs = Vec::new();
    for i in 2..=a.len() {
        inputs.push(a.bytes(lua, i)?);
    }
    let mut s = ud.borrow_mut::<LzStream>()?;
    s.compress(lua, &inputs, z::Z_NO_FLUSH)
}

fn stream_flush(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = check_stream(a, 1, Some(Kind::Deflate))?;
    let opt = match a.get(2) {
        Value::Nil => b"sync".to_vec(),
        _ => a.c_string(lua, 2)?,
    };
    let flush = match opt.as_slice() {
        b"sync" => z::Z_SYNC_FLUSH,
        b"full" => z::Z_FULL_FLUSH,
        b"finish" => z::Z_FINISH,
        other => {
            let msg = format!("invalid option '{}'", String::from_utf8_lossy(other));
            return Err(a.error(2, &msg));
        }
    };
    let mut s = ud.borrow_mut::<LzStream>()?;
    s.compress(lua, &[Vec::new()], flush)
}

/// `z:read(...)`: like `file:read`, with formats `n` (bytes; 0 tests for the end), `"*l"` and
/// `"*a"`; no format reads a line. A failed read gives nil and ends the list.
fn stream_read(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = check_stream(a, 1, Some(Kind::Inflate))?;
    let mut s = ud.borrow_mut::<LzStream>()?;
    let mut results: Vec<Value> = Vec::new();
    let mut success = true;
    if a.len() <= 1 {
        let (line, ok) = s.read_line(lua)?;
        results.push(lstr(lua, &line)?);
        success = ok;
    } else {
        for i in 2..=a.len() {
            if !success {
                break;
            }
            let (data, ok) = match a.get(i) {
                Value::Integer(_) | Value::Number(_) => {
                    // lua_tointeger: a non-integral number counts as 0.
                    let n = match a.get(i) {
                        Value::Integer(n) => n,
                        Value::Number(f) if f.fract() == 0.0 => f as i64,
                        _ => 0,
                    };
                    if n == 0 {
                        (Vec::new(), s.test_eof(lua)?)
                    } else {
                        s.read_chars(lua, n as usize)?
                    }
                }
                v => {
                    let fmt = match &v {
                        Value::String(st) => st.as_bytes().to_vec(),
                        _ => Vec::new(),
                    };
                    if fmt.len() < 2 {
                        return Err(a.error(i, "invalid format"));
                    }
                    if fmt[0] != b'*' {
                        return Err(a.error(i, "invalid option"));
                    }
                    match fmt[1] {
                        b'l' => s.read_line(lua)?,
                        b'a' => (s.read_chars(lua, usize::MAX)?.0, true),
                        _ => return Err(a.error(i, "invalid format")),
                    }
                }
            };
            results.push(lstr(lua, &data)?);
            success = ok;
        }
    }
    if !success {
        results.pop();
        results.push(Value::Nil);
    }
    Ok(MultiValue::from_iter(results))
}

/// `z:lines()`: an iterator over the lines of an inflate stream.
fn stream_lines(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let ud = check_stream(a, 1, Some(Kind::Inflate))?;
    let iter = function(lua, "lines", move |lua, a| {
        let open = ud.borrow::<LzStream>()?.z.kind == Kind::Inflate;
        if !open {
            return Err(a.error(1, "attempt to use invalid zlib stream"));
        }
        let (line, ok) = ud.borrow_mut::<LzStream>()?.read_line(lua)?;
        if ok {
            ret1(lstr(lua, &line)?)
        } else {
            Ok(MultiValue::new())
        }
    })?;
    ret1(Value::Function(iter))
}

// ---------------------------------------------------------------------------------------------
// Module functions

fn version(lua: &Lua, _: &Args) -> mlua::Result<MultiValue> {
    ret1(lstr(lua, zlib_version().as_bytes())?)
}

/// A checksum update over `data` in pieces zlib's 32-bit length can take; None for data
/// gives the checksum's initial value (zlib's `f(0, Z_NULL, 0)`).
fn checksum(
    f: unsafe extern "C" fn(z::uLong, *const u8, z::uInt) -> z::uLong,
    start: z::uLong,
    data: Option<&[u8]>,
) -> z::uLong {
    let Some(data) = data else {
        // SAFETY: zlib returns the initial value for a null buffer.
        return unsafe { f(start, std::ptr::null(), 0) };
    };
    let mut sum = start;
    let mut chunks = data.chunks(z::uInt::MAX as usize).peekable();
    if chunks.peek().is_none() {
        // SAFETY: a non-null pointer with length 0: zlib reads nothing.
        return unsafe { f(sum, data.as_ptr(), 0) };
    }
    for chunk in chunks {
        // SAFETY: a live buffer of chunk.len() bytes, which fits a uInt.
        sum = unsafe { f(sum, chunk.as_ptr(), chunk.len() as z::uInt) };
    }
    sum
}

/// adler32() or adler32(adler, data), pushed as a float like lzlib's.
fn adler32(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    checksum_fn(lua, a, z::adler32)
}

/// crc32() or crc32(crc, data).
fn crc32(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    checksum_fn(lua, a, z::crc32)
}

fn checksum_fn(
    lua: &Lua,
    a: &Args,
    f: unsafe extern "C" fn(z::uLong, *const u8, z::uInt) -> z::uLong,
) -> mlua::Result<MultiValue> {
    if a.len() == 0 {
        return ret1(Value::Number(checksum(f, 0, None) as f64));
    }
    // `(int) luaL_checkinteger(...)` passed on as a uLong: truncated, then sign-extended.
    let start = a.integer(lua, 1)? as i32 as i64 as z::uLong;
    let data = a.bytes(lua, 2)?;
    ret1(Value::Number(checksum(f, start, Some(&data)) as f64))
}

/// `(int) luaL_optinteger(L, i, default)`.
fn opt_int(lua: &Lua, a: &Args, i: usize, default: c_int) -> mlua::Result<c_int> {
    Ok(a.opt_integer(lua, i, i64::from(default))? as c_int)
}

/// compress(data, level, method, windowBits, memLevel, strategy): the deflated data and
/// zlib's last return code (a float), or nil and the code when the parameters are refused.
fn compress(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let data = a.bytes(lua, 1)?;
    let level = opt_int(lua, a, 2, z::Z_DEFAULT_COMPRESSION)?;
    let method = opt_int(lua, a, 3, z::Z_DEFLATED)?;
    let window_bits = opt_int(lua, a, 4, 15)?;
    let mem_level = opt_int(lua, a, 5, 8)?;
    let strategy = opt_int(lua, a, 6, z::Z_DEFAULT_STRATEGY)?;
    let mut zs = match ZStream::deflate_init(level, method, window_bits, mem_level, strategy) {
        Ok(zs) => zs,
        Err(ret) => {
            return Ok(MultiValue::from_iter([
                Value::Nil,
                Value::Number(ret.into()),
            ]))
        }
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0;
    let ret = loop {
        let step = zs.step(&data[pos..], &mut buf, z::Z_FINISH);
        pos += step.consumed;
        out.extend_from_slice(&buf[..step.produced]);
        if step.ret != z::Z_OK {
            break step.ret;
        }
    };
    Ok(MultiValue::from_iter([
        lstr(lua, &out)?,
        Value::Number(ret.into()),
    ]))
}

/// decompress(data, windowBits, limit): the inflated data, at most `limit` bytes (10 MiB).
fn decompress(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let data = a.bytes(lua, 1)?;
    let window_bits = opt_int(lua, a, 2, 15)?;
    let mut limit = i64::from(opt_int(lua, a, 3, 10 * 1024 * 1024)?);
    let Ok(mut zs) = ZStream::inflate_init(window_bits) else {
        return Err(plain_error("failed to initialize zstream structures"));
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0;
    while limit > 0 {
        let size = CHUNK.min(limit as usize);
        let step = zs.step(&data[pos..], &mut buf[..size], z::Z_FINISH);
        pos += step.consumed;
        out.extend_from_slice(&buf[..step.produced]);
        limit -= step.produced as i64;
        if step.ret == z::Z_STREAM_END {
            break;
        }
        // Nmap's loop spins forever on truncated input (Z_BUF_ERROR with no progress); that
        // case is an error here.
        let stuck = step.ret == z::Z_BUF_ERROR && step.consumed == 0 && step.produced == 0;
        if (step.ret != z::Z_OK && step.ret != z::Z_BUF_ERROR) || stuck {
            return Err(plain_error("failed to process zlib stream"));
        }
    }
    ret1(lstr(lua, &out)?)
}

/// inflate(source, windowBits, dictionary): a stream reading from a string, a function, or
/// an object with `read` (and optionally `peek`).
fn inflate(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let src = a.get(1);
    let mut peek = false;
    match &src {
        Value::Table(_) | Value::UserData(_) => {
            if !matches!(field(&src, "read")?, Value::Function(_)) {
                return Err(a.error(1, "input parameter does not provide :read function"));
            }
            peek = matches!(field(&src, "peek")?, Value::Function(_));
        }
        Value::String(_) | Value::Integer(_) | Value::Number(_) | Value::Function(_) => {}
        _ => {
            return Err(a.error(
                1,
                "input parameter must be a string, function, table or userdata value",
            ))
        }
    }
    let mut window_bits = opt_int(lua, a, 2, 15)?;
    let dictionary = a.opt_bytes(lua, 3)?;
    if window_bits > 0 && window_bits < 16 {
        // zlib or gzip, detected from the header.
        window_bits |= 32;
    }
    let Ok(zs) = ZStream::inflate_init(window_bits) else {
        return Err(plain_error("call to inflateInit2 failed"));
    };
    let mut s = LzStream::new(zs, &src, lua)?;
    s.dictionary = dictionary;
    s.peek = peek;
    ret1(Value::UserData(lua.create_userdata(s)?))
}

/// deflate(sink, level, method, windowBits, memLevel, strategy, dictionary): a stream whose
/// `write` output goes to a function or an object with `write`.
fn deflate(lua: &Lua, a: &Args) -> mlua::Result<MultiValue> {
    let sink = a.get(1);
    match &sink {
        Value::Table(_) | Value::UserData(_) => {
            if !matches!(field(&sink, "write")?, Value::Function(_)) {
                return Err(a.error(1, "output parameter does not provide :write function"));
            }
        }
        Value::Function(_) => {}
        _ => {
            return Err(a.error(
                1,
                "output parameter must be a function, table or userdata value",
            ))
        }
    }
    let level = opt_int(lua, a, 2, z::Z_DEFAULT_COMPRESSION)?;
    let method = opt_int(lua, a, 3, z::Z_DEFLATED)?;
    let window_bits = opt_int(lua, a, 4, 15)?;
    let mem_level = opt_int(lua, a, 5, 8)?;
    let strategy = opt_int(lua, a, 6, z::Z_DEFAULT_STRATEGY)?;
    let dictionary = a.opt_bytes(lua, 7)?;
    let Ok(mut zs) = ZStream::deflate_init(level, method, window_bits, mem_level, strategy) else {
        return Err(plain_error("call to deflateInit2 failed"));
    };
    if let Some(dict) = dictionary {
        if zs.set_dictionary(&dict) != z::Z_OK {
            return Err(plain_error("call to deflateSetDictionnary failed"));
        }
    }
    let s = LzStream::new(zs, &sink, lua)?;
    ret1(Value::UserData(lua.create_userdata(s)?))
}

/// Opens the module: returns the `zlib` table.
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    let m = lua.create_table()?;
    m.set("_COPYRIGHT", "Copyright (C) 2003-2010 Tiago Dionizio")?;
    m.set(
        "_DESCRIPTION",
        "Lua 5 interface to access zlib library functions",
    )?;
    m.set("_VERSION", "lzlib 0.4-work3")?;
    let constants: [(&str, i64); 17] = [
        ("NO_COMPRESSION", z::Z_NO_COMPRESSION.into()),
        ("BEST_SPEED", z::Z_BEST_SPEED.into()),
        ("BEST_COMPRESSION", z::Z_BEST_COMPRESSION.into()),
        ("DEFAULT_COMPRESSION", z::Z_DEFAULT_COMPRESSION.into()),
        ("FILTERED", z::Z_FILTERED.into()),
        ("HUFFMAN_ONLY", z::Z_HUFFMAN_ONLY.into()),
        ("RLE", z::Z_RLE.into()),
        ("FIXED", z::Z_FIXED.into()),
        ("DEFAULT_STRATEGY", z::Z_DEFAULT_STRATEGY.into()),
        ("MINIMUM_MEMLEVEL", 1),
        ("MAXIMUM_MEMLEVEL", 9),
        ("DEFAULT_MEMLEVEL", 8),
        ("DEFAULT_WINDOWBITS", 15),
        ("MINIMUM_WINDOWBITS", 8),
        ("MAXIMUM_WINDOWBITS", 15),
        ("GZIP_WINDOWBITS", 16),
        ("RAW_WINDOWBITS", -1),
    ];
    for (name, v) in constants {
        m.set(name, v)?;
    }
    let functions: [(&'static str, LuaFn); 7] = [
        ("version", version),
        ("adler32", adler32),
        ("crc32", crc32),
        ("deflate", deflate),
        ("inflate", inflate),
        ("compress", compress),
        ("decompress", decompress),
    ];
    for (name, f) in functions {
        m.set(name, function(lua, name, f)?)?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.globals().set("zlib", open(&lua).unwrap()).unwrap();
        lua
    }

    fn set_bytes(lua: &Lua, name: &str, b: &[u8]) {
        lua.globals()
            .set(name, lua.create_string(b).unwrap())
            .unwrap();
    }

    fn eval<T: mlua::FromLuaMulti>(lua: &Lua, code: &str) -> T {
        lua.load(code).eval().unwrap()
    }

    /// The message a Lua caller gets from pcall.
    fn err(lua: &Lua, code: &str) -> String {
        let f = lua.load(code).set_name("=t").into_function().unwrap();
        lua.globals().set("f", f).unwrap();
        eval(
            lua,
            "local ok, e = pcall(f) assert(not ok, 'no error') return tostring(e)",
        )
    }

    /// Text of many lines, some ending \r\n, long enough to span several output buffers.
    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..3000 {
            let end = if i % 3 == 0 { "\r\n" } else { "\n" };
            v.extend_from_slice(format!("line {i} of the sample body{end}").as_bytes());
        }
        v
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn http_lua_reads_a_gzip_body() {
        let lua = lua();
        let body = sample();
        set_bytes(&lua, "body", &gzip(&body));
        // decode_body's calls, as http.lua makes them.
        let got: mlua::LuaString = eval(
            &lua,
            r#"local stream = zlib.inflate(body)
               local status, newbody = pcall(stream.read, stream, "*a")
               assert(status, newbody)
               assert(stream:close() == true)
               return newbody"#,
        );
        assert_eq!(got.as_bytes().to_vec(), body);
        // With http.lua's size limit: maxlen + 1 bytes.
        let n: i64 = eval(&lua, "local s = zlib.inflate(body) return #s:read(1001)");
        assert_eq!(n, 1001);
        // A corrupted body is an error, which http.lua catches.
        let mut bad = gzip(&body);
        bad[20] ^= 0xff;
        bad[30] ^= 0xff;
        set_bytes(&lua, "bad", &bad);
        assert_eq!(
            err(&lua, "local s = zlib.inflate(bad) s:read('*a')"),
            "failed to decompress [-3]"
        );
        assert_eq!(
            err(
                &lua,
                "local s = zlib.inflate(bad) pcall(s.read, s, '*a') s:read('*a')"
            ),
            "t:1: calling 'read' on bad self (attempt to use invalid zlib stream)"
        );
    }

    #[test]
    fn inflate_reads_zlib_and_raw_streams_and_lines() {
        let lua = lua();
        let body = sample();
        let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
        z.write_all(&body).unwrap();
        set_bytes(&lua, "zdata", &z.finish().unwrap());
        let mut r = DeflateEncoder::new(Vec::new(), Compression::fast());
        r.write_all(&body).unwrap();
        set_bytes(&lua, "raw", &r.finish().unwrap());
        let n: i64 = eval(
            &lua,
            "return #zlib.inflate(zdata):read('*a') + #zlib.inflate(raw, -15):read('*a')",
        );
        assert_eq!(n as usize, 2 * body.len());
        // Lines end at \n, \r or \r\n and lose their ends.
        let (count, first, last): (i64, String, String) = eval(
            &lua,
            "local n, first, last = 0 for l in zlib.inflate(zdata):lines() do n = n + 1 first = first or l last = l end return n, first, last",
        );
        assert_eq!(
            (count, first.as_str(), last.as_str()),
            (
                3000,
                "line 0 of the sample body",
                "line 2999 of the sample body"
            )
        );
        // read with several formats; 0 tests for more data (""); at the end, nil stops the list.
        let s: String = eval(
            &lua,
            "local s = zlib.inflate(zdata)
             local a, b, c, d = s:read(4, 0, '*l', '*l')
             local rest = s:read('*a')
             local e, f = s:read(0, 1)
             return a .. '|' .. b .. '|' .. c .. '|' .. d .. '|' .. #rest .. '|' .. tostring(e) .. '|' .. tostring(f)",
        );
        assert_eq!(
            s,
            format!(
                "line|| 0 of the sample body|line 1 of the sample body|{}|nil|nil",
                body.len() - 53
            )
        );
        assert_eq!(
            err(&lua, "zlib.inflate(zdata):read('x')"),
            "t:1: bad argument #1 to 'read' (invalid format)"
        );
        assert_eq!(
            err(&lua, "zlib.inflate(zdata):read('xl')"),
            "t:1: bad argument #1 to 'read' (invalid option)"
        );
    }

    #[test]
    fn inflate_from_functions_and_objects() {
        let lua = lua();
        let body = sample();
        set_bytes(&lua, "gz", &gzip(&body));
        // A function source handing 100 bytes at a time, then nil.
        let n: i64 = eval(
            &lua,
            "local pos = 1
             local s = zlib.inflate(function() local c = gz:sub(pos, pos + 99) pos = pos + 100 if c ~= '' then return c end end)
             return #s:read('*a')",
        );
        assert_eq!(n as usize, body.len());
        // An object with read; and one with peek, which is told how much was used.
        let n: i64 = eval(
            &lua,
            "local src = {pos = 1}
             function src:read(n) local c = gz:sub(self.pos, self.pos + 999) self.pos = self.pos + 1000 if c ~= '' then return c end end
             local a = #zlib.inflate(src):read('*a')
             local p = {pos = 1, used = 0}
             function p:peek(n) return gz:sub(self.pos, self.pos + 499) end
             function p:read(n) self.pos = self.pos + n self.used = self.used + n end
             local b = #zlib.inflate(p):read('*a')
             assert(p.used == #gz, p.used)
             return a + b",
        );
        assert_eq!(n as usize, 2 * body.len());
        assert_eq!(
            err(&lua, "zlib.inflate({})"),
            "t:1: bad argument #1 to 'inflate' (input parameter does not provide :read function)"
        );
        assert_eq!(
            err(&lua, "zlib.inflate(true)"),
            "t:1: bad argument #1 to 'inflate' (input parameter must be a string, function, table or userdata value)"
        );
        assert_eq!(
            err(&lua, "zlib.inflate(function() return {} end):read('*a')"),
            "deflate callback must return string or nil"
        );
    }

    #[test]
    fn deflate_streams_round_trip_with_a_dictionary() {
        let lua = lua();
        let s: String = eval(
            &lua,
            r#"local parts = {}
               local d = zlib.deflate(function(c) parts[#parts + 1] = c end, 9, nil, nil, nil, nil, "hello dictionary")
               assert(tostring(d):match("^zlib deflate stream %(0x%x+%)$"), tostring(d))
               assert(d:write("hello ", "dictionary ", 42) == true)
               assert(d:flush() == true)
               assert(d:write(string.rep("x", 100000)) == true)
               assert(d:close() == true)
               assert(tostring(d) == "zlib stream (closed)")
               local packed = table.concat(parts)
               local ok, e = pcall(function() return zlib.inflate(packed):read("*a") end)
               assert(not ok and e == "no inflate dictionary provided", e)
               local out = zlib.inflate(packed, 15, "hello dictionary"):read("*a")
               return out:sub(1, 25) .. #out"#,
        );
        assert_eq!(s, "hello dictionary 42xxxxxx100019");
        // An object sink gets itself and the data; flush options are checked.
        let n: i64 = eval(
            &lua,
            r#"local sink = {n = 0}
               function sink:write(c) self.n = self.n + #c end
               local d = zlib.deflate(sink)
               d:write("abc")
               d:flush("full")
               d:flush("finish")
               return sink.n"#,
        );
        assert!(n > 0);
        assert_eq!(
            err(&lua, "zlib.deflate(function() end):flush('sometimes')"),
            "t:1: bad argument #1 to 'flush' (invalid option 'sometimes')"
        );
        assert_eq!(
            err(&lua, "zlib.deflate(function() end, 99)"),
            "call to deflateInit2 failed"
        );
        assert_eq!(
            err(&lua, "zlib.deflate({})"),
            "t:1: bad argument #1 to 'deflate' (output parameter does not provide :write function)"
        );
        assert_eq!(
            err(&lua, "zlib.deflate(function() end):read()"),
            "t:1: calling 'read' on bad self (attempt to use invalid zlib stream)"
        );
    }

    #[test]
    fn one_shot_compress_and_decompress() {
        let lua = lua();
        let s: String = eval(
            &lua,
            r#"local data = string.rep("compress me ", 5000)
               local c, code = zlib.compress(data)
               assert(math.type(code) == "float" and code == 1, code)
               assert(zlib.decompress(c) == data)
               assert(#zlib.decompress(c, 15, 100) == 100)
               local g = zlib.compress(data, 1, 8, 31, 9, zlib.RLE)
               assert(g:sub(1, 2) == "\x1f\x8b")
               assert(zlib.decompress(g, 31) == data)
               local r = zlib.compress(data, 0, 8, -15)
               assert(zlib.decompress(r, -15) == data)
               local none, bad = zlib.compress(data, 42)
               return tostring(none) .. " " .. tostring(bad)"#,
        );
        assert_eq!(s, "nil -2.0");
        // Truncated input is an error (Nmap's loop never ends there), garbage too.
        assert_eq!(
            err(
                &lua,
                "local c = zlib.compress(string.rep('x', 1000)) zlib.decompress(c:sub(1, #c - 6))"
            ),
            "failed to process zlib stream"
        );
        assert_eq!(
            err(&lua, "zlib.decompress('not zlib data at all')"),
            "failed to process zlib stream"
        );
        assert_eq!(
            err(&lua, "zlib.decompress('x', 99)"),
            "failed to initialize zstream structures"
        );
    }

    /// Corrupted and random input to every reading path ends in data or an error, never a
    /// crash or a hang.
    #[test]
    fn corrupted_input_never_crashes_or_hangs() {
        let lua = lua();
        let mut inputs = vec![gzip(b"some text to corrupt, repeated, repeated, repeated")];
        let mut state: u32 = 12345;
        for len in [0usize, 1, 2, 10, 100, 1000] {
            let random: Vec<u8> = (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (state >> 16) as u8
                })
                .collect();
            inputs.push(random);
        }
        let base = inputs[0].clone();
        for i in 0..base.len() {
            let mut bad = base.clone();
            bad[i] ^= 0x5a;
            inputs.push(bad);
            inputs.push(base[..i].to_vec());
        }
        let f: Function = lua
            .load(
                r#"return function(data)
                  for _, wb in ipairs({15, 31, 47, -15, 0, 8}) do
                    pcall(zlib.decompress, data, wb)
                    pcall(function() return zlib.inflate(data, wb):read("*a") end)
                    pcall(function() for l in zlib.inflate(data, wb):lines() do end end)
                    pcall(function() return zlib.inflate(data, wb):read(3, 0, "*l", 100) end)
                  end
                  return true
                end"#,
            )
            .eval()
            .unwrap();
        for input in &inputs {
            let ok: bool = f.call(lua.create_string(input).unwrap()).unwrap();
            assert!(ok);
        }
        // A truncated stream's lines end (under Nmap this loop never ends).
        set_bytes(&lua, "cut", &gzip(&sample())[..500]);
        let (n, after): (i64, Option<String>) = eval(
            &lua,
            "local s = zlib.inflate(cut) local n = 0 for l in s:lines() do n = n + 1 end return n, s:read('*l')",
        );
        assert!(n > 10, "{n}");
        assert_eq!(after, None);
    }

    #[test]
    fn checksums_and_version() {
        let lua = lua();
        let s: String = eval(
            &lua,
            r#"return table.concat({zlib.crc32(), zlib.crc32(0, "123456789"), zlib.adler32(),
                 zlib.adler32(1, "Wikipedia"), zlib.crc32(zlib.crc32(0, "1234"), "56789"),
                 zlib.adler32(-1, ""),
                 math.type(zlib.crc32())}, " ")"#,
        );
        assert_eq!(
            s,
            "0.0 3421780262.0 1.0 300286872.0 3421780262.0 917518.0 float"
        );
        let v: String = eval(&lua, "return zlib.version()");
        assert_eq!(v, zlib_version());
        assert!(v.starts_with("1."), "{v}");
        let c: i64 = eval(
            &lua,
            "return zlib.BEST_COMPRESSION + zlib.RAW_WINDOWBITS + zlib.GZIP_WINDOWBITS",
        );
        assert_eq!(c, 24);
        // The stream's running checksum is the adler32 of what it inflated.
        let a: bool = eval(
            &lua,
            r#"local c = zlib.compress("some data")
               local s = zlib.inflate(c) s:read("*a")
               return s:adler() == zlib.adler32(1, "some data")"#,
        );
        assert!(a);
    }
}
