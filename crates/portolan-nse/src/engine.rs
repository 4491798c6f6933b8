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
        None => MultiValue::from_vec(vec![
            Value::Nil,
            Value::String(lua.create_string(format!("no path to file/directory: {name}"))?),
        ]),
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
    let guard = cfg.guard.clone();
    let _ = guard;
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
            let started = st.hub.borrow_mut().start(id, op);
            match started {
                Started::Now(o) => outcome_values(lua, o),
                Started::Pending(op_id) => {
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
                None => MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string("socket must be connected")?),
                ]),
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
            move |lua, (id, addr, port): (u64, Option<String>, Option<u16>)| match st
                .hub
                .borrow_mut()
                .bind(id, addr.as_deref(), port.unwrap_or(0))
            {
                Ok(()) => Ok(MultiValue::from_vec(vec![Value::Boolean(true)])),
                Err(e) => Ok(MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string(e)?),
                ])),
            },
        )?,
    )?;
    let st = state.clone();
    p.set(
        "socket_close",
        lua.create_function(move |lua, id: u64| {
            if st.hub.borrow_mut().close(id) {
                Ok(MultiValue::from_vec(vec![Value::Boolean(true)]))
            } else {
                Ok(MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string("socket already closed")?),
                ]))
            }
        })?,
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
    p.set(
        "woken",
        lua.create_function(move |_, ()| {
            st.hub.borrow_mut().woken = true;
            Ok(())
        })?,
    )?;
    let st = state.clone();
    let cancelled = cfg.cancelled.clone();
    p.set(
        "pump",
        lua.create_function(move |lua, ms: i64| {
            if cancelled() {
                return Err(mlua::Error::runtime("script scan interrupted"));
            }
            let ready = st.hub.borrow_mut().pump(ms.max(0) as u64);
            st.last_pump.set(Instant::now());
            if ready.is_empty() {
                return Ok(());
            }
            let restore: Function = lua.named_registry_value("NSE_WAITING_TO_RUNNING")?;
            for (op, outcome) in ready {
                let co = st.waiting.borrow_mut().remove(&op);
                if let Some(co) = co {
                    let mut args = vec![Value::Thread(co)];
                    args.extend(outcome_values(lua, outcome)?);
                    restore.call::<()>(MultiValue::from_vec(args))?;
                }
            }
            Ok(())
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
            Err(e) => Ok(MultiValue::from_vec(vec![
                Value::Nil,
                Value::String(lua.create_string(format!("cannot open {path}: {e}"))?),
            ])),
        })?,
    )?;
    p.set(
        "attributes",
        lua.create_function(|lua, (path, field): (String, Option<String>)| {
            let Ok(m) = std::fs::metadata(&path) else {
                return Ok(MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(
                        lua.create_string(format!("cannot obtain information from file '{path}'"))?,
                    ),
                ]));
            };
            let mode = if m.is_dir() {
                "directory"
            } else if m.is_file() {
                "file"
            } else {
                "other"
            };
            let t = lua.create_table()?;
            t.set("mode", mode)?;
            t.set("size", m.len())?;
            if let Ok(mt) = m.modified() {
                t.set(
                    "modification",
                    mt.duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0),
                )?;
            }
            match field {
                Some(f) => Ok(MultiValue::from_vec(vec![t.get::<Value>(f)?])),
                None => Ok(MultiValue::from_vec(vec![Value::Table(t)])),
            }
        })?,
    )?;
    p.set(
        "currentdir",
        lua.create_function(|_, ()| {
            Ok(std::env::current_dir()
                .ok()
                .map(|p| p.to_string_lossy().into_owned()))
        })?,
    )?;
    p.set(
        "mkdir",
        lua.create_function(|lua, path: String| {
            Ok(match std::fs::create_dir(&path) {
                Ok(()) => MultiValue::from_vec(vec![Value::Boolean(true)]),
                Err(e) => MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string(e.to_string())?),
                ]),
            })
        })?,
    )?;
    p.set(
        "rmdir",
        lua.create_function(|lua, path: String| {
            Ok(match std::fs::remove_dir(&path) {
                Ok(()) => MultiValue::from_vec(vec![Value::Boolean(true)]),
                Err(e) => MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string(e.to_string())?),
                ]),
            })
        })?,
    )?;
    Ok(p)
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
