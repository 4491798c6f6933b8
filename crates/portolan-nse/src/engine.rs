//! The engine: one Lua state running Nmap's `nse_main.lua` over the C interface of
//! host.lua and the Rust primitives here, as Nmap's nse_main.cc runs it.

use crate::hosts::{items_from_lua, HostContext, Hosts};
use crate::io::{Guard, Hub, Op, Outcome, Started};
use mlua::{
    Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Thread, Value, VmState,
};
use portolan_model::{Host, Protocol, Script};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The most Lua memory the engine may hold: a script that allocates without end fails
/// alone ("not enough memory") instead of taking the machine.
pub const MEMORY_LIMIT: usize = 1 << 30;
/// The longest a script may compute without yielding (Nmap has no such limit: a script in
/// an endless loop hangs it). `--script-timeout` lowers it.
pub const CPU_LIMIT: Duration = Duration::from_secs(30);
/// How often (in VM instructions) the CPU limit is checked.
const CPU_CHECK_EVERY: u32 = 1_000_000;

/// What went wrong starting the engine or running a phase.
#[derive(Debug, thiserror::Error)]
pub enum NseError {
    #[error(
        "Nmap's scripting engine (nse_main.lua, nselib/, scripts/) was not found in {looked}; \
         install it with `apt install nmap-common` (or nmap), or name Nmap's data folder \
         with --datadir"
    )]
    NotInstalled { looked: String },
    #[error("script engine: {0}")]
    Lua(String),
}

impl From<mlua::Error> for NseError {
    fn from(e: mlua::Error) -> Self {
        NseError::Lua(e.to_string())
    }
}

/// The three script phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    PreScan,
    Scan,
    PostScan,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::PreScan => "NSE_PRE_SCAN",
            Phase::Scan => "NSE_SCAN",
            Phase::PostScan => "NSE_POST_SCAN",
        }
    }
}

/// A port range that nmap-service-probes' `Exclude` names (`nmap.port_is_excluded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExcludedPorts {
    pub proto: Protocol,
    pub first: u16,
    pub last: u16,
}

/// How the engine runs: Nmap's options that nse_main.lua and the scripts read.
#[derive(Clone)]
pub struct Config {
    /// Nmap's data folders, in the order Nmap searches them.
    pub search_dirs: Vec<PathBuf>,
    /// `--script` rules (categories, names, files, folders, expressions).
    pub rules: Vec<String>,
    /// `-sC` (or `-A`): the default category when no rule is given.
    pub default: bool,
    /// `-sV`: the version category runs too.
    pub version: bool,
    pub script_args: Option<String>,
    pub script_args_file: Option<String>,
    pub script_help: bool,
    pub script_updatedb: bool,
    pub script_trace: bool,
    /// `--script-timeout`, seconds.
    pub script_timeout: Option<f64>,
    pub verbosity: i64,
    pub debugging: i64,
    pub timing_level: i64,
    pub version_intensity: i64,
    /// Nmap's `o.min_parallelism` (0 by default).
    pub min_parallelism: i64,
    /// `--max-parallelism` (0: not given); script threads holding sockets at once are at
    /// most the larger of this and 20, as nsock's.
    pub max_parallelism: i64,
    pub privileged: bool,
    pub inet6: bool,
    pub excluded_ports: Vec<ExcludedPorts>,
    pub host_context: HostContext,
    /// Every address scripts connect or send to passes this first.
    pub guard: Guard,
    /// Where log lines go (Nmap writes them to stdout; Portolan keeps stdout for the report).
    pub log: Rc<dyn Fn(&str)>,
    /// Checked by the event pump: true stops the phase (a signal).
    pub cancelled: Rc<dyn Fn() -> bool>,
    /// How long a script may compute without yielding.
    pub cpu_limit: Duration,
}

impl Config {
    /// Settings as Nmap's defaults, for these data folders and rules.
    pub fn new(search_dirs: Vec<PathBuf>, rules: Vec<String>, guard: Guard) -> Config {
        Config {
            search_dirs,
            rules,
            default: false,
            version: false,
            script_args: None,
            script_args_file: None,
            script_help: false,
            script_updatedb: false,
            script_trace: false,
            script_timeout: None,
            verbosity: 0,
            debugging: 0,
            timing_level: 3,
            version_intensity: 7,
            min_parallelism: 0,
            max_parallelism: 0,
            privileged: false,
            inet6: false,
            excluded_ports: vec![ExcludedPorts {
                proto: Protocol::Tcp,
                first: 9100,
                last: 9107,
            }],
            host_context: HostContext::default(),
            guard,
            log: Rc::new(|line: &str| eprint!("{line}")),
            cancelled: Rc::new(|| false),
            cpu_limit: CPU_LIMIT,
        }
    }
}

/// Finds a file or folder under Nmap's data folders (nmap_fetchfile): the first folder
/// holding it wins. Returns the path and whether it is a folder.
fn fetchfile(dirs: &[PathBuf], name: &str) -> Option<(PathBuf, bool)> {
    for d in dirs {
        let p = d.join(name);
        if let Ok(m) = std::fs::metadata(&p) {
            if m.is_dir() {
                return Some((p, true));
            }
            if std::fs::File::open(&p).is_ok() {
                return Some((p, false));
            }
        }
    }
    None
}

fn path_string(p: &Path, dir: bool) -> String {
    let mut s = p.to_string_lossy().into_owned();
    if dir && !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// Where nse_main.lua is, or the error naming where it was looked for.
pub fn locate(search_dirs: &[PathBuf]) -> Result<PathBuf, NseError> {
    match fetchfile(search_dirs, "nse_main.lua") {
        Some((p, false)) if fetchfile(search_dirs, "nselib").is_some() => Ok(p),
        _ => Err(NseError::NotInstalled {
            looked: search_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

struct State {
    hub: RefCell<Hub>,
    hosts: RefCell<Hosts>,
    /// Threads waiting on an operation or timer, by its id.
    waiting: RefCell<HashMap<u64, Thread>>,
    /// When the script threads last gave control back (the last pump).
    last_pump: Cell<Instant>,
    /// `--script-trace`: the socket and what each pending operation is, by its id.
    traced: RefCell<HashMap<u64, (u64, &'static str)>>,
}

/// Nmap's scripting engine, loaded and ready to run phases.
pub struct Engine {
    lua: Lua,
    state: Rc<State>,
    set_current: Function,
    ctx: HostContext,
}

impl Engine {
    /// Loads nse_main.lua with the scripts the rules select. Fails when Nmap's scripts are
    /// not installed, or when the engine itself rejects the rules (an unknown script name,
    /// a bad expression), with nse_main.lua's message.
    pub fn new(cfg: Config) -> Result<Engine, NseError> {
        let main_path = locate(&cfg.search_dirs)?;
        // The whole standard library, `debug` included: nse_main.lua uses
        // debug.getregistry, and Nmap's scripts have `io` and `os` as under Nmap.
        // SAFETY: `debug` can break Lua's invariants only from Lua code that pokes at
        // internals; Nmap's engine and scripts run with it under Nmap too.
        let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL, LuaOptions::new()) };
        let state = Rc::new(State {
            hub: RefCell::new(Hub::new(cfg.guard.clone())),
            hosts: RefCell::new(Hosts::default()),
            waiting: RefCell::new(HashMap::new()),
            last_pump: Cell::new(Instant::now()),
            traced: RefCell::new(HashMap::new()),
        });
        lua.set_memory_limit(MEMORY_LIMIT)?;
        let cpu_limit = match cfg.script_timeout {
            Some(t) if t > 0.0 => cfg.cpu_limit.min(Duration::from_secs_f64(t)),
            _ => cfg.cpu_limit,
        };
        let main_thread = lua.current_thread();
        let st = state.clone();
        // Coroutines inherit the hook of the thread that creates them: every script thread
        // has it. Only a script thread is stopped, never the engine's own main thread.
        lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(CPU_CHECK_EVERY),
            move |lua, _| {
                if st.last_pump.get().elapsed() > cpu_limit && lua.current_thread() != main_thread {
                    st.last_pump.set(Instant::now());
                    return Err(mlua::Error::runtime(format!(
                        "script ran {} s without yielding: stopped",
                        cpu_limit.as_secs_f64()
                    )));
                }
                Ok(VmState::Continue)
            },
        )?;
        let prims = primitives(&lua, &state, &cfg)?;
        let settings = settings(&lua, &cfg)?;
        let host_lua = lua
            .load(include_str!("host.lua"))
            .set_name("=portolan/host.lua");
        let (nmap, socket, dnet, lfs, cnse, set_current): (
            Table,
            Table,
            Table,
            Table,
            Table,
            Function,
        ) = host_lua.call((prims, settings))?;

        let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
        let lpeg = crate::lpeg::open(&lua)?;
        for (name, module) in [
            ("nmap", &nmap),
            ("nmap.socket", &socket),
            ("nmap.dnet", &dnet),
            ("lfs", &lfs),
            ("lpeg", &lpeg),
        ] {
            loaded.set(name, module.clone())?;
        }
        for (name, module) in [("nmap", &nmap), ("lfs", &lfs), ("lpeg", &lpeg)] {
            lua.globals().set(name, module.clone())?;
        }
        crate::modules::register(&lua, &loaded)?;

        let chunk = std::fs::read(&main_path)
            .map_err(|e| NseError::Lua(format!("{}: {e}", main_path.display())))?;
        lua.load(GC_SETTINGS).set_name("=portolan/gc").exec()?;
        if written_for_lua53(&chunk) {
            lua.load(LUA53_UNPACK_Z)
                .set_name("=portolan/lua53-unpack")
                .exec()?;
        }
        let rules = lua.create_sequence_from(cfg.rules.iter().map(String::as_str))?;
        let main: Function = lua
            .load(chunk)
            .set_name(format!("@{}", main_path.display()))
            .call((cnse, rules))?;
        lua.set_named_registry_value("NSE_MAIN", main)?;
        lua.set_named_registry_value("NSE_PARALLELISM", cfg.min_parallelism)?;
        Ok(Engine {
            lua,
            state,
            set_current,
            ctx: cfg.host_context.clone(),
        })
    }

    /// Runs one phase over these hosts (none for the pre- and post-scan phases). Gives back
    /// the hosts with their script results and any port changes scripts made, and the
    /// phase's own results (pre- or post-scan scripts), also when the phase stopped early
    /// (an interrupt, an engine error): then `error` says why.
    pub fn run(&self, phase: Phase, hosts: Vec<Host>) -> PhaseResult {
        *self.state.hosts.borrow_mut() = Hosts {
            hosts,
            run_scripts: Vec::new(),
        };
        let error = self.run_main(phase).err();
        let done = std::mem::take(&mut *self.state.hosts.borrow_mut());
        PhaseResult {
            hosts: done.hosts,
            scripts: done.run_scripts,
            error,
        }
    }

    fn run_main(&self, phase: Phase) -> Result<(), NseError> {
        let tables = self.lua.create_table()?;
        {
            let hosts = self.state.hosts.borrow();
            for i in 0..hosts.hosts.len() {
                tables.push(hosts.host_table(&self.lua, i, &self.ctx)?)?;
            }
        }
        self.set_current.call::<()>(tables.clone())?;
        let main: Function = self.lua.named_registry_value("NSE_MAIN")?;
        main.call::<()>((tables, phase.as_str()))?;
        Ok(())
    }
}

/// What a phase gave.
#[derive(Debug)]
pub struct PhaseResult {
    pub hosts: Vec<Host>,
    /// Pre-scan or post-scan results.
    pub scripts: Vec<Script>,
    /// Why the phase stopped early, if it did.
    pub error: Option<NseError>,
}

/// The engine's heap is large and long-lived (nse_main, nselib, every loaded script,
/// http-enum's 2,200 fingerprints) while scripts allocate many small short-lived strings,
/// and nse_main.lua asks for a collection step after every socket event. Under Lua 5.4's
/// incremental collector each of those steps went on marking the whole heap: profiled on
/// http-enum over TLS, 40% of the engine's time, 3.8 s against Nmap's 1.8 s. Lua 5.4's
/// generational mode, made for this shape of heap, brought it to 2.3 s (CPU 0.9 s, Nmap's
/// 0.84 s).
const GC_SETTINGS: &str = r#"collectgarbage("generational")"#;

/// Whether this nse_main.lua is of the releases built on Lua 5.3 (Nmap 7.93 and older):
/// those ask for "Lua 5.3 or newer"; 7.94 and later ask for 5.4.
fn written_for_lua53(nse_main: &[u8]) -> bool {
    let text = String::from_utf8_lossy(nse_main);
    text.contains("NSE requires Lua 5.3") && !text.contains("NSE requires Lua 5.4")
}

/// Lua 5.3's `string.unpack` read a `z` string without its terminating zero to the end of
/// the data; 5.4 raises "unfinished string for format 'z'". Nmap 7.93's libraries (mysql,
/// mongodb, ...) were written against 5.3 and rely on it, so for them the 5.3 reading is
/// kept: on that one error the data is read again with the missing zero supplied.
const LUA53_UNPACK_Z: &str = r#"
local unpack, pack, pcall, error, tostring, find = string.unpack, table.pack, pcall, error, tostring, string.find
string.unpack = function(fmt, s, ...)
  local r = pack(pcall(unpack, fmt, s, ...))
  if r[1] then return table.unpack(r, 2, r.n) end
  if type(s) == "string" and find(tostring(r[2]), "unfinished string for format 'z'", 1, true) then
    return unpack(fmt, s .. "\0", ...)
  end
  error(r[2], 0)
end
"#;

fn settings(lua: &Lua, cfg: &Config) -> mlua::Result<Table> {
    let c = lua.create_table()?;
    c.set("verbosity", cfg.verbosity)?;
    c.set("debugging", cfg.debugging)?;
    c.set("timing_level", cfg.timing_level)?;
    c.set("version_intensity", cfg.version_intensity)?;
    c.set("privileged", cfg.privileged)?;
    c.set("address_family", if cfg.inet6 { "inet6" } else { "inet" })?;
    if let Some(i) = &cfg.host_context.interface {
        c.set("interface", i.as_str())?;
    }
    c.set("ttl", 64)?;
    // nse_nsock.cc: MAX_PARALLELISM (20), or --max-parallelism when larger.
    c.set("socket_threads", cfg.max_parallelism.max(20))?;
    // The fields of cnse that nse_main.lua reads.
    let cnse = lua.create_table()?;
    cnse.set("default", cfg.default)?;
    cnse.set("scriptversion", cfg.version)?;
    cnse.set("scriptupdatedb", cfg.script_updatedb)?;
    cnse.set("scripthelp", cfg.script_help)?;
    cnse.set("script_dbpath", "scripts/script.db")?;
    if let Some(a) = &cfg.script_args {
        cnse.set("scriptargs", a.as_str())?;
    }
    if let Some(f) = &cfg.script_args_file {
        cnse.set("scriptargsfile", f.as_str())?;
    }
    cnse.set("NMAP_URL", "https://nmap.org")?;
    if let Some(t) = cfg.script_timeout {
        cnse.set("script_timeout", t)?;
    }
    c.set("cnse", cnse)?;
    Ok(c)
}

fn lua_bytes(v: &mlua::LuaString) -> Vec<u8> {
    v.as_bytes().to_vec()
}

fn outcome_values(lua: &Lua, o: Outcome) -> mlua::Result<MultiValue> {
    Ok(match o {
        Outcome::Ok => MultiValue::from_vec(vec![Value::Boolean(true)]),
        Outcome::Data(d) => MultiValue::from_vec(vec![
            Value::Boolean(true),
            Value::String(lua.create_string(&d)?),
        ]),
        Outcome::Err(e) => {
            MultiValue::from_vec(vec![Value::Nil, Value::String(lua.create_string(&e)?)])
        }
        Outcome::Wake => MultiValue::new(),
    })
}

/// nmap_fetchfile and nse_fetchscript: ("file" | "directory", path) or (nil, message).
fn fetch_values(lua: &Lua, dirs: &[PathBuf], name: &str, script: bool) -> mlua::Result<MultiValue> {
    let found = if Path::new(name).is_absolute() {
        std::fs::metadata(name)
            .ok()
            .map(|m| (PathBuf::from(name), m.is_dir()))
    } else if script {
        fetchfile(dirs, &format!("scripts/{name}")).or_else(|| {
            std::fs::metadata(name)
                .ok()
                .map(|m| (PathBuf::from(name), m.is_dir()))
        })
    } else {
        fetchfile(dirs, name)
    };
    Ok(match found {
        Some((p, dir)) => MultiValue::from_vec(vec![
            Value::String(lua.create_string(if dir { "directory" } else { "file" })?),
            Value::String(lua.create_string(path_string(&p, dir))?),
        ]),
        None => fail(lua, format!("no path to file/directory: {name}"))?,
    })
}

fn primitives(lua: &Lua, state: &Rc<State>, cfg: &Config) -> mlua::Result<Table> {
    let p = lua.create_table()?;
    let dirs = Rc::new(cfg.search_dirs.clone());

    let d = dirs.clone();
    p.set(
        "fetch",
        lua.create_function(move |lua, (name, script): (String, bool)| {
            fetch_values(lua, &d, &name, script)
        })?,
    )?;
    let d = dirs.clone();
    p.set(
        "fetchfile",
        lua.create_function(move |_, name: String| {
            Ok(match fetchfile(&d, &name) {
                Some((path, false)) => Some(path.to_string_lossy().into_owned()),
                _ => None,
            })
        })?,
    )?;
    p.set(
        "timed_out",
        lua.create_function(|_, _idx: usize| Ok(false))?,
    )?;
    let st = state.clone();
    p.set(
        "ports",
        lua.create_function(move |lua, idx: usize| st.hosts.borrow().script_ports(lua, idx))?,
    )?;
    p.set(
        "protect_xml",
        lua.create_function(|lua, s: mlua::LuaString| {
            lua.create_string(protect_xml(&s.as_bytes()))
        })?,
    )?;
    let log = cfg.log.clone();
    p.set(
        "log",
        lua.create_function(move |_, (_where, msg): (String, mlua::LuaString)| {
            log(&String::from_utf8_lossy(&msg.as_bytes()));
            Ok(())
        })?,
    )?;
    let log = cfg.log.clone();
    let debugging = cfg.debugging;
    p.set(
        "debug",
        lua.create_function(move |_, (level, msg): (i64, String)| {
            if debugging >= level {
                log(&format!("{msg}\n"));
            }
            Ok(())
        })?,
    )?;
    let st = state.clone();
    p.set(
        "set_output",
        lua.create_function(
            move |_,
                  (idx, number, proto, id, text, items): (
                Option<usize>,
                Option<u16>,
                Option<String>,
                String,
                mlua::LuaString,
                Option<Table>,
            )| {
                let content = match items {
                    Some(t) => items_from_lua(&t)?,
                    None => Vec::new(),
                };
                let script = Script {
                    id,
                    output: String::from_utf8_lossy(&text.as_bytes()).into_owned(),
                    content,
                };
                let port = match (number, proto.as_deref()) {
                    (Some(n), Some(pr)) => Some((n, pr)),
                    _ => None,
                };
                st.hosts.borrow_mut().set_output(idx, port, script);
                Ok(())
            },
        )?,
    )?;
    let st = state.clone();
    p.set(
        "port_info",
        lua.create_function(move |lua, (idx, number, proto): (usize, u16, String)| {
            st.hosts.borrow().port_table(lua, idx, number, &proto)
        })?,
    )?;
    let st = state.clone();
    p.set(
        "next_port",
        lua.create_function(
            move |lua, (idx, after, proto, state): (usize, Option<u16>, String, String)| {
                st.hosts.borrow().next_port(lua, idx, after, &proto, &state)
            },
        )?,
    )?;
    let st = state.clone();
    p.set(
        "set_port_state",
        lua.create_function(
            move |_, (idx, number, proto, s): (usize, u16, String, String)| {
                st.hosts
                    .borrow_mut()
                    .set_port_state(idx, number, &proto, &s);
                Ok(())
            },
        )?,
    )?;
    let st = state.clone();
    p.set(
        "set_port_version",
        lua.create_function(
            move |_, (idx, number, proto, probestate, v): (usize, u16, String, String, Table)| {
                st.hosts
                    .borrow_mut()
                    .set_port_version(idx, number, &proto, &probestate, &v)
            },
        )?,
    )?;
    let excluded = cfg.excluded_ports.clone();
    p.set(
        "port_is_excluded",
        lua.create_function(move |_, (number, proto): (u16, String)| {
            Ok(excluded
                .iter()
                .any(|e| e.proto.as_str() == proto && (e.first..=e.last).contains(&number)))
        })?,
    )?;
    p.set(
        "clock_ms",
        lua.create_function(|_, ()| {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Ok((t.as_micros() as f64 / 1000.0).ceil())
        })?,
    )?;
    p.set(
        "clock",
        lua.create_function(|_, ()| {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            Ok(t.as_secs_f64())
        })?,
    )?;
    p.set("have_ssl", true)?;
    p.set(
        "dns_servers",
        lua.create_function(|lua, ()| {
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let servers: Vec<String> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .map(|s| s.trim().to_string())
                .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
                .collect();
            lua.create_sequence_from(servers)
        })?,
    )?;
    p.set(
        "resolve",
        lua.create_function(|lua, (name, family): (String, Option<String>)| {
            use std::net::ToSocketAddrs;
            let want6 = match family.as_deref() {
                Some("inet6") => Some(true),
                Some("inet") => Some(false),
                _ => None,
            };
            let addrs: Vec<String> = match (name.as_str(), 0u16).to_socket_addrs() {
                Ok(it) => {
                    let mut v: Vec<String> = Vec::new();
                    for a in it {
                        if want6.is_none_or(|w| a.is_ipv6() == w) {
                            let s = a.ip().to_string();
                            if !v.contains(&s) {
                                v.push(s);
                            }
                        }
                    }
                    v
                }
                Err(_) => Vec::new(),
            };
            if addrs.is_empty() {
                return Ok(MultiValue::from_vec(vec![
                    Value::Boolean(false),
                    Value::String(lua.create_string("Failed to resolve")?),
                ]));
            }
            Ok(MultiValue::from_vec(vec![
                Value::Boolean(true),
                Value::Table(lua.create_sequence_from(addrs)?),
            ]))
        })?,
    )?;
    p.set(
        "list_interfaces",
        lua.create_function(|lua, ()| lua.create_table())?,
    )?;
    p.set(
        "random_bytes",
        lua.create_function(|lua, n: usize| {
            let mut buf = vec![0u8; n.min(1 << 20)];
            // SAFETY: getrandom writes at most buf.len() bytes into buf.
            let _ = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
            lua.create_string(&buf)
        })?,
    )?;

    // Sockets.
    let st = state.clone();
    p.set(
        "socket_new",
        lua.create_function(move |_, (proto, af): (String, String)| {
            Ok(st
                .hub
                .borrow_mut()
                .socket_new(proto == "udp", af == "inet6"))
        })?,
    )?;
    let st = state.clone();
    let trace = cfg.script_trace.then(|| cfg.log.clone());
    p.set(
        "start",
        lua.create_function(move |lua, args: MultiValue| {
            let mut it = args.into_iter();
            let id: u64 = lua.unpack(it.next().unwrap_or(Value::Nil))?;
            let co: Thread = lua.unpack(it.next().unwrap_or(Value::Nil))?;
            let what: String = lua.unpack(it.next().unwrap_or(Value::Nil))?;
            let rest: Vec<Value> = it.collect();
            let arg = |i: usize| rest.get(i).cloned().unwrap_or(Value::Nil);
            let op = match what.as_str() {
                "connect" => Op::Connect {
                    addr: lua.unpack(arg(0))?,
                    hostname: lua.unpack(arg(1))?,
                    port: lua.unpack(arg(2))?,
                    proto: lua.unpack(arg(3))?,
                },
                "reconnect_ssl" => Op::ReconnectSsl,
                "send" => Op::Send(lua_bytes(&lua.unpack::<mlua::LuaString>(arg(0))?)),
                "sendto" => Op::SendTo {
                    addr: lua.unpack(arg(0))?,
                    port: lua.unpack(arg(1))?,
                    data: lua_bytes(&lua.unpack::<mlua::LuaString>(arg(2))?),
                },
                "receive" => Op::Receive,
                "receive_bytes" => Op::ReceiveBytes(lua.unpack::<i64>(arg(0))?.max(0) as usize),
                "receive_lines" => Op::ReceiveLines(lua.unpack::<i64>(arg(0))?.max(0) as usize),
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "unknown socket operation {other}"
                    )))
                }
            };
            if let (Some(log), Op::Send(data) | Op::SendTo { data, .. }) = (&trace, &op) {
                log(&trace_line(&st.hub.borrow(), id, ">", &hexify(data)));
            }
            let kind = match &op {
                Op::Connect { .. } => "CONNECT",
                Op::ReconnectSsl => "SSL RECONNECT",
                Op::Send(_) | Op::SendTo { .. } => "",
                _ => "<",
            };
            let started = st.hub.borrow_mut().start(id, op);
            match started {
                Started::Now(o) => outcome_values(lua, o),
                Started::Pending(op_id) => {
                    if trace.is_some() && !kind.is_empty() {
                        st.traced.borrow_mut().insert(op_id, (id, kind));
                    }
                    st.waiting.borrow_mut().insert(op_id, co);
                    Ok(MultiValue::from_vec(vec![Value::String(
                        lua.create_string("pending")?,
                    )]))
                }
            }
        })?,
    )?;
    let st = state.clone();
    p.set(
        "socket_info",
        lua.create_function(move |lua, id: u64| {
            let info = st.hub.borrow().info(id);
            Ok(match info {
                Some((local, remote)) => MultiValue::from_vec(vec![
                    Value::Boolean(true),
                    Value::String(lua.create_string(local.ip().to_string())?),
                    Value::Integer(local.port().into()),
                    Value::String(lua.create_string(remote.ip().to_string())?),
                    Value::Integer(remote.port().into()),
                ]),
                None => fail(lua, "socket must be connected")?,
            })
        })?,
    )?;
    let st = state.clone();
    p.set(
        "socket_timeout",
        lua.create_function(move |_, (id, ms): (u64, i64)| {
            st.hub.borrow_mut().set_timeout(id, ms);
            Ok(())
        })?,
    )?;
    let st = state.clone();
    p.set(
        "socket_bind",
        lua.create_function(
            move |lua, (id, addr, port): (u64, Option<String>, Option<u16>)| {
                let bound = st
                    .hub
                    .borrow_mut()
                    .bind(id, addr.as_deref(), port.unwrap_or(0));
                status(lua, bound)
            },
        )?,
    )?;
    let st = state.clone();
    p.set(
        "socket_close",
        lua.create_function(move |lua, id: u64| {
            let closed = st.hub.borrow_mut().close(id);
            status(
                lua,
                if closed {
                    Ok(())
                } else {
                    Err("socket already closed")
                },
            )
        })?,
    )?;
    let st = state.clone();
    p.set(
        "socket_open",
        lua.create_function(move |_, id: u64| Ok(st.hub.borrow().is_open(id)))?,
    )?;
    let st = state.clone();
    p.set(
        "socket_forget",
        lua.create_function(move |_, id: u64| {
            st.hub.borrow_mut().forget(id);
            Ok(())
        })?,
    )?;
    let st = state.clone();
    p.set(
        "socket_certificate",
        lua.create_function(move |lua, id: u64| {
            let hub = st.hub.borrow();
            if !hub.is_tls(id) {
                return Err(mlua::Error::runtime("bad argument #1 (not a SSL socket)"));
            }
            match hub.peer_certificate(id).map(|d| d.to_vec()) {
                Some(der) => {
                    drop(hub);
                    crate::modules::certificate(lua, &der)
                }
                None => Ok(MultiValue::from_vec(vec![Value::Nil])),
            }
        })?,
    )?;
    let st = state.clone();
    p.set(
        "sleep",
        lua.create_function(move |_, (co, ms): (Thread, u64)| {
            let id = st.hub.borrow_mut().sleep(ms);
            st.waiting.borrow_mut().insert(id, co);
            Ok(id)
        })?,
    )?;
    let st = state.clone();
    p.set(
        "cancel_sleep",
        lua.create_function(move |_, id: u64| {
            st.hub.borrow_mut().cancel_sleep(id);
            st.waiting.borrow_mut().remove(&id);
            Ok(())
        })?,
    )?;
    let st = state.clone();
    let cancelled = cfg.cancelled.clone();
    let trace_log = cfg.log.clone();
    p.set(
        "pump",
        lua.create_function(move |lua, ms: i64| {
            let deadline = Instant::now() + Duration::from_millis(ms.max(0) as u64);
            let restore: Function = lua.named_registry_value("NSE_WAITING_TO_RUNNING")?;
            let mut first = true;
            loop {
                if cancelled() {
                    return Err(mlua::Error::runtime("script scan interrupted"));
                }
                let next = st.hub.borrow_mut().next(deadline, first);
                first = false;
                st.last_pump.set(Instant::now());
                let Some((op, outcome)) = next else {
                    return Ok(());
                };
                if let Some((sock, kind)) = st.traced.borrow_mut().remove(&op) {
                    let what = match (&outcome, kind) {
                        (Outcome::Data(d), "<") => hexify(d),
                        (Outcome::Err(e), _) => e.clone(),
                        (_, k) => k.to_string(),
                    };
                    let dir = if kind == "<" { "<" } else { ">" };
                    trace_log(&trace_line(&st.hub.borrow(), sock, dir, &what));
                }
                let co = st.waiting.borrow_mut().remove(&op);
                if let Some(co) = co {
                    let mut args = vec![Value::Thread(co)];
                    args.extend(outcome_values(lua, outcome)?);
                    restore.call::<()>(MultiValue::from_vec(args))?;
                }
            }
        })?,
    )?;

    // lfs
    p.set(
        "dir",
        lua.create_function(|lua, path: String| match std::fs::read_dir(&path) {
            Ok(rd) => {
                let mut names = vec![".".to_string(), "..".to_string()];
                names.extend(
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
                Ok(MultiValue::from_vec(vec![Value::Table(
                    lua.create_sequence_from(names)?,
                )]))
            }
            Err(e) => fail(lua, format!("cannot open {path}: {e}")),
        })?,
    )?;
    p.set(
        "link",
        lua.create_function(|lua, (old, new, symbolic): (String, String, bool)| {
            let r = if symbolic {
                std::os::unix::fs::symlink(&old, &new)
            } else {
                std::fs::hard_link(&old, &new)
            };
            status(lua, r)
        })?,
    )?;
    p.set(
        "mkdir",
        lua.create_function(|lua, path: String| status(lua, std::fs::create_dir(&path)))?,
    )?;
    p.set(
        "rmdir",
        lua.create_function(|lua, path: String| status(lua, std::fs::remove_dir(&path)))?,
    )?;
    Ok(p)
}

/// Nmap's convention for a call that can fail: `true`, or `nil, message`.
fn status<E: std::fmt::Display>(lua: &Lua, r: Result<(), E>) -> mlua::Result<MultiValue> {
    match r {
        Ok(()) => Ok(MultiValue::from_vec(vec![Value::Boolean(true)])),
        Err(e) => fail(lua, e),
    }
}

/// `nil, message`.
fn fail(lua: &Lua, message: impl std::fmt::Display) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![
        Value::Nil,
        Value::String(lua.create_string(message.to_string())?),
    ]))
}

/// One `--script-trace` line, as nsock's trace: `NSE: TCP local > remote | what`.
fn trace_line(hub: &Hub, sock: u64, dir: &str, what: &str) -> String {
    let (local, remote) = match hub.info(sock) {
        Some((l, r)) => (l.to_string(), r.to_string()),
        None => ("0.0.0.0:0".into(), "0.0.0.0:0".into()),
    };
    format!(
        "NSE: {} {local} {dir} {remote} | {what}\n",
        hub.proto_name(sock)
    )
}

/// Data as nsock's trace shows it: the text with unprintable bytes as `\NNN` when nearly
/// all of it is printable, else a hex dump of 16 bytes a line.
pub fn hexify(data: &[u8]) -> String {
    let printable = data.iter().filter(|b| (0x20..0x7f).contains(*b)).count();
    if !data.is_empty() && printable as f64 / data.len() as f64 >= 0.95 {
        let mut out = String::new();
        for &b in data {
            if (0x20..0x7f).contains(&b) || b.is_ascii_whitespace() || b == 0x0b {
                out.push(b as char);
            } else {
                // C++'s setw(3) pads the backslash, then the byte in decimal.
                out.push_str(&format!("  \\{b}"));
            }
        }
        return out;
    }
    let mut out = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        out.push_str(&format!("{:08x}: ", i * 16));
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => out.push_str(&format!("{b:02x} ")),
                None => out.push_str("   "),
            }
        }
        for &b in chunk {
            out.push(if b.is_ascii_graphic() { b as char } else { ' ' });
        }
        out.push('\n');
    }
    out
}

/// Nmap's protect_xml: bytes outside tab, newline, carriage return and printable ASCII
/// become `\xNN`.
pub fn protect_xml(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        if b == b'\t' || b == b'\n' || b == b'\r' || (0x20..0x7f).contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("\\x{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua53_engines_get_53s_unpack_z() {
        assert!(written_for_lua53(
            b"error \"NSE requires Lua 5.3 or newer.\""
        ));
        assert!(!written_for_lua53(
            b"error \"NSE requires Lua 5.4 or newer.\""
        ));
        let lua = Lua::new();
        let strict: bool = lua
            .load(r#"return not pcall(string.unpack, "z", "abc")"#)
            .eval()
            .unwrap();
        assert!(strict, "Lua 5.4 refuses an unterminated z");
        lua.load(LUA53_UNPACK_Z).exec().unwrap();
        let (s, next): (String, i64) = lua
            .load(r#"return string.unpack("z", "abc")"#)
            .eval()
            .unwrap();
        assert_eq!((s.as_str(), next), ("abc", 5));
        let (a, b): (String, String) = lua
            .load(r#"return string.unpack("zz", "ab\0cd\0")"#)
            .eval()
            .unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("ab", "cd"));
        let err = lua
            .load(r#"return string.unpack("i4", "ab")"#)
            .exec()
            .unwrap_err();
        assert!(err.to_string().contains("data string too short"), "{err}");
    }

    #[test]
    fn hexify_as_nsock_trace() {
        // Line ends count against the 95% of printable bytes, as in nsock's trace.
        assert!(hexify(b"GET / HTTP/1.0\r\n\r\n").starts_with("00000000: 47 45 54 20"));
        assert_eq!(
            hexify(b"A long enough line of plain text, to pass.\n"),
            "A long enough line of plain text, to pass.\n"
        );
        assert_eq!(
            hexify(&[0x16, 0x03, 0x01, 0x00, 0x41, b'A']),
            format!("00000000: 16 03 01 00 41 41 {}    AA\n", " ".repeat(30))
        );
        let mostly_text: Vec<u8> = [b"x".repeat(40), vec![1]].concat();
        assert_eq!(hexify(&mostly_text), format!("{}  \\1", "x".repeat(40)));
    }

    #[test]
    fn protect_xml_hexes_what_is_not_printable() {
        assert_eq!(protect_xml(b"a\tb\n\x01\xff"), b"a\tb\n\\x01\\xFF".to_vec());
    }
}
