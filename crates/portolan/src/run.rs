//! Running a resolved scan: the backend (raw sockets, or printing for --dryrun), progress
//! on stderr, signals, and the engine's [`Scanner::run`] pushing every finished host into
//! the outputs.
//!
//! SIGINT, SIGTERM and SIGHUP (Ctrl-C, `timeout`, systemd, a closed terminal) all stop the
//! scan: sending stops, what was found is written, every output is closed validly (exit
//! "error", naming the signal) and the process exits 128 + the signal's number. A second
//! signal does not wait for the scan to wind down: the outputs are closed at once, valid
//! up to the last host written, and the process exits.

use crate::plan::Resolved;
use crate::progress;
use anyhow::Result;
use portolan_engine::io::backend::Backend;
use portolan_engine::io::connect::Progress;
use portolan_engine::io::dryrun::DryRunBackend;
use portolan_engine::io::linux::LinuxBackend;
use portolan_engine::io::packet_trace::TraceBackend;
use portolan_engine::pipeline::{BoxFuture, Observer};
use portolan_engine::Scanner;
use portolan_model::{HostState, OutputError, RunExit, RunStats, ScanRun, Sink, Tee};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

pub enum Ended {
    Completed,
    Interrupted(Signal),
}

/// The signals that stop a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
    Hup,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
            Signal::Hup => "SIGHUP",
        }
    }

    /// What a shell reports for a process the signal ended: 128 + its number.
    pub fn exit_code(self) -> u8 {
        128 + match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
            Signal::Hup => libc::SIGHUP,
        } as u8
    }
}

/// The outputs, shared between the scan and the signal handler, so that a second signal
/// can close them while the scan is still running.
#[derive(Default)]
struct Outputs {
    sink: Tee,
    /// The run as begun (header only), to end it with.
    run: Option<ScanRun>,
    hosts: u32,
    up: u32,
    /// The first signal caught.
    signal: Option<Signal>,
    /// Ended: nothing more is written.
    closed: bool,
}

impl Outputs {
    /// Ends the outputs now, with what was written so far (the second signal).
    fn close_now(&mut self, signal: Signal) -> Result<(), OutputError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let Some(mut run) = self.run.take() else {
            return Ok(());
        };
        let now = portolan_engine::pipeline::now_epoch();
        run.runstats = Some(RunStats {
            finished: now,
            elapsed: (now - run.start).max(0) as f64,
            exit: RunExit::Error,
            errormsg: Some(format!(
                "Interrupted by {} (stopped at once)",
                signal.name()
            )),
            hosts_up: self.up,
            hosts_down: self.hosts - self.up,
            hosts_total: self.hosts,
            completeness: None,
        });
        self.sink.end(&run)
    }
}

/// The scan's view of [`Outputs`].
struct Shared(Arc<Mutex<Outputs>>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Outputs> {
        // A panic while writing leaves the outputs as they are; go on with them.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Sink for Shared {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let mut o = self.lock();
        o.run = Some(run.clone());
        o.sink.begin(run)
    }
    fn host(&mut self, run: &ScanRun, host: &portolan_model::Host) -> Result<(), OutputError> {
        let mut o = self.lock();
        if o.closed {
            return Ok(());
        }
        o.sink.host(run, host)?;
        o.hosts += 1;
        if host.status.state == HostState::Up {
            o.up += 1;
        }
        Ok(())
    }
    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let mut o = self.lock();
        if o.closed {
            return Ok(());
        }
        o.closed = true;
        match o.signal {
            Some(sig) if sig != Signal::Int => {
                let mut run = run.clone();
                if let Some(rs) = run.runstats.as_mut() {
                    rs.errormsg = Some(format!("Interrupted by {}", sig.name()));
                }
                o.sink.end(&run)
            }
            _ => o.sink.end(run),
        }
    }
}

/// Called when a second signal ends the process from within the run (the outcome, the
/// exit code): what main would do after the run, such as ending the audit line.
pub type AtExit = Box<dyn FnOnce(String, u8) + Send>;

/// Listens for SIGINT, SIGTERM and SIGHUP: the first cancels the scan, the second closes
/// the outputs and exits.
fn watch_signals(
    cancel: CancellationToken,
    outputs: Arc<Mutex<Outputs>>,
    at_exit: AtExit,
) -> Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            let sig = tokio::select! {
                Some(()) = int.recv() => Signal::Int,
                Some(()) = term.recv() => Signal::Term,
                Some(()) = hup.recv() => Signal::Hup,
                else => return,
            };
            let mut o = outputs.lock().unwrap_or_else(|e| e.into_inner());
            if o.signal.is_none() {
                o.signal = Some(sig);
                drop(o);
                eprintln!("caught {} signal, cleaning up", sig.name());
                cancel.cancel();
                crate::scripts::cancel();
                continue;
            }
            // Held until the exit: the scan writes nothing more.
            eprintln!("caught {} signal again, stopping now", sig.name());
            let code = o.signal.unwrap_or(sig).exit_code();
            if let Err(e) = o.close_now(sig) {
                eprintln!("portolan: {e}");
            }
            at_exit(
                format!(
                    "interrupted by {}, stopped at once by {}",
                    o.signal.unwrap_or(sig).name(),
                    sig.name()
                ),
                code,
            );
            std::process::exit(i32::from(code));
        }
    });
    Ok(())
}

/// Progress bars and status lines on stderr, and the engine's notes.
struct Terminal {
    stats_every: Option<Duration>,
    phase: Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
    bar: progress::Bar,
}

impl Observer for Terminal {
    fn phase_started(&self, label: &'static str, counters: Arc<Progress>) {
        let stop = CancellationToken::new();
        let task = progress::spawn(
            counters,
            self.stats_every,
            label,
            stop.clone(),
            self.bar.clone(),
        );
        if let Ok(mut p) = self.phase.lock() {
            *p = Some((stop, task));
        }
    }

    fn phase_ended(&self) -> BoxFuture<'_, ()> {
        let phase = self.phase.lock().ok().and_then(|mut p| p.take());
        Box::pin(async move {
            if let Some((stop, task)) = phase {
                stop.cancel();
                let _ = task.await;
            }
        })
    }

    fn note(&self, line: &str) {
        // -v's "Discovered open port" lines come while a bar may be shown.
        progress::print_line(&self.bar, line);
    }
}

/// The parts of a scan that send through sockets rather than raw packets, which
/// --packet-trace does not show (Nmap shows them as CONN and NSOCK lines). The names the
/// scan resolves before it starts are not among them: Nmap does not trace those either.
fn untraced_parts(plan: &portolan_engine::plan::ScanPlan, scripts: bool) -> Option<String> {
    use portolan_engine::plan::ScanKind;
    let mut parts = Vec::new();
    if plan.scan == ScanKind::Connect || !plan.discovery.connect_ports.is_empty() {
        parts.push("connect() probes");
    }
    if plan.version.is_some() {
        parts.push("-sV's sockets");
    }
    if scripts {
        parts.push("-sC/--script sockets");
    }
    if plan.dns != portolan_engine::plan::Dns::Never {
        parts.push("reverse-DNS queries");
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(", "))
    }
}

pub async fn run(
    resolved: Resolved,
    sink: Tee,
    nse: Option<(portolan_nse::Engine, bool, crate::scripts::Allowed)>,
    at_exit: AtExit,
) -> Result<Ended> {
    let Resolved {
        mut plan,
        stats_every,
        packet_trace,
        ..
    } = resolved;
    // --packet-trace times its lines from here, the scan's start.
    let started = std::time::Instant::now();
    let cancel = CancellationToken::new();
    let outputs = Arc::new(Mutex::new(Outputs {
        sink,
        ..Outputs::default()
    }));
    watch_signals(cancel.clone(), outputs.clone(), at_exit)?;
    let mut sink = Shared(outputs.clone());
    // A dry run prints its probes on stdout, in large writes.
    let stdout: Arc<Mutex<std::io::BufWriter<std::io::Stdout>>> = Arc::new(Mutex::new(
        std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
    ));
    let backend: Arc<dyn Backend> = if plan.dry_run {
        // The dry run's lines already show every probe; --packet-trace adds nothing to them.
        Arc::new(DryRunBackend::new(stdout.clone(), plan.payloads.clone()))
    } else if packet_trace {
        if let Some(untraced) = untraced_parts(&plan, nse.is_some()) {
            eprintln!("--packet-trace: only raw packets are traced; {untraced} are not");
        }
        // Straight to stdout, a batch of lines at a time, so that they come before the
        // report lines of the hosts they found, as Nmap's do.
        let lines: Arc<Mutex<dyn std::io::Write + Send>> = Arc::new(Mutex::new(std::io::stdout()));
        Arc::new(TraceBackend::new(
            Arc::new(LinuxBackend::default()),
            lines,
            started,
        ))
    } else {
        Arc::new(LinuxBackend::default())
    };
    let observer = Terminal {
        stats_every,
        phase: Mutex::new(None),
        bar: progress::Bar::default(),
    };
    let scanner = Scanner {
        backend,
        observer: &observer,
    };
    let summary = match nse {
        Some((engine, show, allowed)) => {
            let mut scripted = crate::scripts::ScriptSink::new(engine, show, &mut sink, allowed);
            scanner.run(&mut plan, &mut scripted, &cancel).await
        }
        None => scanner.run(&mut plan, &mut sink, &cancel).await,
    };
    if let Ok(mut out) = stdout.lock() {
        let _ = out.flush();
    }
    let signal = sink.lock().signal;
    Ok(if summary?.interrupted {
        Ended::Interrupted(signal.unwrap_or(Signal::Int))
    } else {
        Ended::Completed
    })
}
