//! Script scanning (`-sC`, `--script`, the script part of `-A`): Nmap's own engine and
//! scripts (crates/portolan-nse) run between the scan and the outputs. The pre-scan phase
//! runs before the first host is written, each group of finished hosts goes through the
//! host phase, and the post-scan phase runs before the outputs end, so every format, the
//! store and `diff` see script results as they see ports.
//!
//! Scripts may reach only hosts this scan found and did not exclude: every connect and
//! send passes that guard.

use crate::args::Options;
use anyhow::{anyhow, Result};
use portolan_engine::plan::ScanPlan;
use portolan_model::{Host, HostState, OutputError, ScanRun, Sink};
use portolan_nse::{Config, Engine, Phase};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The addresses scripts may reach: the hosts this scan found.
pub type Allowed = Arc<Mutex<HashSet<IpAddr>>>;

/// Hosts whose scripts run together, as Nmap runs a host group.
const GROUP: usize = 16;

/// Whether script results are shown: scripts were asked for, not only `-sV`'s.
pub fn shown(o: &Options) -> bool {
    o.script_default || !o.scripts.is_empty()
}

/// Whether these options ask for scripts.
pub fn wanted(o: &Options) -> bool {
    o.script_default || !o.scripts.is_empty() || o.script_updatedb || version_scripts(o)
}

/// As Nmap: `-sV` runs the `version` category too, where Nmap's scripts are installed
/// (never with `--builtin-data`, which reads nothing of Nmap's).
fn version_scripts(o: &Options) -> bool {
    o.version && !o.builtin_data && check_installed(o).is_ok()
}

/// `--script-help` (the help of the scripts named, on stdout) and `--script-updatedb`
/// without a scan: the engine loads, does it, and that is all.
pub fn engine_only(o: &Options) -> Result<()> {
    let dirs = data_dirs(o);
    let nobody: portolan_nse::Guard =
        Arc::new(|ip: IpAddr| Err(format!("{ip}: no scan is running")));
    let rules = match &o.script_help {
        Some(h) => h.split(',').map(str::to_string).collect(),
        None => Vec::new(),
    };
    let mut c = Config::new(dirs, rules, nobody);
    c.script_help = o.script_help.is_some();
    c.script_updatedb = o.script_updatedb;
    c.verbosity = o.verbose.into();
    c.debugging = o.debug.into();
    c.log = std::rc::Rc::new(|line: &str| {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = out.write_all(line.as_bytes());
        if !line.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    });
    Engine::new(c).map(|_| ()).map_err(|e| anyhow!("{e}"))
}

/// The engine's settings for these options. `search_dirs` are Nmap's data folders.
pub fn config(o: &Options, plan: &ScanPlan, allowed: Arc<Mutex<HashSet<IpAddr>>>) -> Config {
    let excludes = plan.targets.excludes.clone();
    let guard: portolan_nse::Guard = Arc::new(move |ip: IpAddr| {
        if excludes.contains(ip) {
            return Err(format!("{ip} is excluded from this scan"));
        }
        let ok = allowed.lock().map(|a| a.contains(&ip)).unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(format!("{ip} is not a target of this scan"))
        }
    });
    let dirs = data_dirs(o);
    let mut c = Config::new(dirs, o.scripts.clone(), guard);
    c.default = o.script_default;
    c.version = version_scripts(o);
    c.script_args = o.script_args.clone();
    c.script_args_file = o.script_args_file.clone();
    c.script_trace = o.script_trace;
    c.script_updatedb = o.script_updatedb;
    c.script_timeout = o.script_timeout.map(|d| d.as_secs_f64());
    c.verbosity = o.verbose.into();
    c.debugging = o.debug.into();
    // Scripts are told they are not privileged: the engine offers them no raw packets yet
    // (nmap.new_dnet, pcap), and the scripts that need those check this first and then stand
    // aside quietly, as under an unprivileged Nmap, instead of failing on the missing calls.
    c.privileged = false;
    c.inet6 = o.ipv6;
    c.cancelled = std::rc::Rc::new(cancelled);
    c.min_parallelism = o.min_parallelism.unwrap_or(0).into();
    c.max_parallelism = o.max_parallelism.unwrap_or(0).into();
    if let Some(i) = o.version_intensity {
        c.version_intensity = i.into();
    }
    c
}

/// Set by the signal handler: the script phases stop at their next event pump.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Stops the script phases (a signal arrived).
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

fn cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// Nmap's data folders, in the order Nmap searches them (`--datadir` first).
fn data_dirs(o: &Options) -> Vec<std::path::PathBuf> {
    portolan_engine::data::datadir::search_dirs(o.datadir.as_deref().map(std::path::Path::new))
}

/// Checks that Nmap's scripts are installed, before anything is opened or sent.
pub fn check_installed(o: &Options) -> Result<()> {
    let dirs = data_dirs(o);
    portolan_nse::locate(&dirs)
        .map(|_| ())
        .map_err(|e| anyhow!("{e}"))
}

/// A sink that runs the script phases between the scan and the outputs.
pub struct ScriptSink<'a> {
    engine: Engine,
    /// Whether script results are written: as Nmap, only when scripts were asked for
    /// (`-sC`, `--script`), not for the version category that `-sV` runs on its own (its
    /// scripts still set services).
    show: bool,
    inner: &'a mut dyn Sink,
    group: Vec<Host>,
    allowed: Arc<Mutex<HashSet<IpAddr>>>,
    run: Option<ScanRun>,
}

impl<'a> ScriptSink<'a> {
    pub fn new(
        engine: Engine,
        show: bool,
        inner: &'a mut dyn Sink,
        allowed: Arc<Mutex<HashSet<IpAddr>>>,
    ) -> Self {
        ScriptSink {
            engine,
            show,
            inner,
            group: Vec::new(),
            allowed,
            run: None,
        }
    }

    fn flush(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        if self.group.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.group);
        let (up, down): (Vec<Host>, Vec<Host>) = group
            .into_iter()
            .partition(|h| h.status.state == HostState::Up);
        let r = self.engine.run(Phase::Scan, up);
        if let Some(e) = r.error {
            eprintln!("NSE: script scan stopped: {e}");
        }
        let mut hosts = r.hosts;
        if !self.show {
            for h in &mut hosts {
                h.hostscripts.clear();
                for p in &mut h.ports {
                    p.scripts.clear();
                }
            }
        }
        for h in hosts.iter().chain(down.iter()) {
            self.inner.host(run, h)?;
        }
        Ok(())
    }
}

impl Sink for ScriptSink<'_> {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let mut run = run.clone();
        let r = self.engine.run(Phase::PreScan, Vec::new());
        if let Some(e) = r.error {
            eprintln!("NSE: pre-scan scripts stopped: {e}");
        }
        if self.show {
            run.prescripts = r.scripts;
        }
        self.run = Some(run.clone());
        self.inner.begin(&run)
    }

    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        if let (Some(ip), Ok(mut a)) = (host.addr_str().parse::<IpAddr>().ok(), self.allowed.lock())
        {
            a.insert(ip);
        }
        self.group.push(host.clone());
        if self.group.len() >= GROUP {
            self.flush(run)?;
        }
        Ok(())
    }

    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let began = std::time::Instant::now();
        self.flush(run)?;
        let mut run = run.clone();
        if let Some(begun) = &self.run {
            run.prescripts = begun.prescripts.clone();
        }
        if !cancelled() {
            let r = self.engine.run(Phase::PostScan, Vec::new());
            if let Some(e) = r.error {
                eprintln!("NSE: post-scan scripts stopped: {e}");
            }
            if self.show {
                run.postscripts = r.scripts;
            }
        }
        // The run ends when its scripts do, as Nmap's "scanned in" counts them: the last
        // group and the post-scan phase ran after the scan's own clock stopped.
        if let Some(rs) = run.runstats.as_mut() {
            let extra = began.elapsed().as_secs_f64();
            rs.elapsed += extra;
            rs.finished = portolan_engine::pipeline::now_epoch().max(rs.finished);
        }
        self.inner.end(&run)
    }
}
