//! The scan's outputs, opened before any packet leaves: every `-o` file (or stdout), normal
//! output on stdout unless another output claimed it, and the history store (`--db`). They
//! are joined in one [`Tee`] that the engine pushes results into.
//!
//! Nothing is lost to an error:
//! - every file and the store are opened before any existing file is emptied, so a bad
//!   `-oE` path or `--db` leaves last night's `-oX` as it was (and removes the files this
//!   run had just created); a scan run as root gives root up in between ([`Opened`]), so a
//!   drop that fails empties nothing either;
//! - a symbolic link at an output path is refused (`O_NOFOLLOW`, and `O_EXCL` where the
//!   file is new), so a link planted in a shared folder cannot redirect root's output;
//! - an output that cannot be written (disk full) stops the scan once, with the other
//!   outputs closed validly; a store that fails mid-scan is reported once and the scan goes
//!   on without it (see [`store_failed`]); outputs the engine leaves open on an error are
//!   closed validly when the sink is dropped.

use crate::args::{Format, Options};
use crate::outname;
use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Local};
use portolan_model::{Host, OutputError, OutputOptions, RunExit, RunStats, ScanRun, Sink, Tee};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when the history store failed during the scan: the scan went on, and exits 1.
static STORE_FAILED: AtomicBool = AtomicBool::new(false);

/// Whether the history store failed while the scan ran (it was said on stderr then).
pub fn store_failed() -> bool {
    STORE_FAILED.load(Ordering::Relaxed)
}

/// Every output and the store, opened (files created, none emptied yet): what a scan run
/// as root opens before it gives root up.
pub struct Opened {
    outputs: Vec<Output>,
    store: Option<(String, crate::store_cmd::StoreSink)>,
}

/// Opens every output the options name (files are named with `start`, for `%D` and the
/// like) and the store; an error names the first that cannot be opened, and then no
/// existing file has been changed. [`Opened::start`] empties the existing files.
pub fn open(
    o: &Options,
    start: &DateTime<Local>,
    part: Option<portolan_store::ShardPart>,
) -> Result<Opened> {
    let outputs = open_outputs(o, start)?;
    // The history store, opened (and checked) before a packet leaves, and before any file
    // is emptied.
    let store = match crate::store_cmd::db_path(o.db.as_deref()).filter(|_| !o.dry_run) {
        Some(db) => {
            match crate::store_cmd::StoreSink::open(&db, crate::store_cmd::targets_text(o)) {
                Ok(s) => Some((db, s.named(part, o.scan_id.clone()))),
                Err(e) => {
                    discard(outputs);
                    // Its own words only: the error already names the path once.
                    return Err(anyhow!("{e}"));
                }
            }
        }
        None => None,
    };
    Ok(Opened { outputs, store })
}

impl Opened {
    /// Empties the existing files (through their descriptors: root is no longer needed)
    /// and joins every output and the store in one sink.
    pub fn start(self, opts: &OutputOptions, o: &Options) -> Result<Tee> {
        for out in &self.outputs {
            if let Some(f) = &out.file {
                if !o.append_output && !f.created && !f.system {
                    truncate(f)?;
                }
            }
        }
        Ok(build_sink(self.outputs, self.store, opts, o))
    }

    /// The scan will not run: the files this run created are removed, existing ones were
    /// never changed.
    pub fn discard(self) {
        discard(self.outputs);
    }
}

/// An output file, opened but not yet emptied.
struct OpenFile {
    path: PathBuf,
    file: File,
    /// This run made it (so it is removed again if another output cannot be opened).
    created: bool,
    /// Under /dev or /proc (`/dev/stdout`): never emptied.
    system: bool,
}

/// An output destination, opened.
struct Output {
    format: Format,
    to_stdout: bool,
    file: Option<OpenFile>,
}

/// Opens (creating if need be) without emptying, never through a symbolic link, except
/// under /dev (but its world-writable /dev/shm) and /proc, where no one plants links and
/// `-oX /dev/stdout` is a common idiom (written as the descriptor it names is, never
/// emptied).
fn open_file(path: &Path, append: bool) -> std::io::Result<OpenFile> {
    let shared = ["/dev/shm", "/dev/mqueue"]
        .iter()
        .any(|d| path.starts_with(d));
    if (path.starts_with("/dev") && !shared) || path.starts_with("/proc") {
        return Ok(OpenFile {
            path: path.to_path_buf(),
            file: OpenOptions::new().write(true).append(append).open(path)?,
            created: false,
            system: true,
        });
    }
    let mut oo = OpenOptions::new();
    oo.write(true)
        .append(append)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    // O_EXCL: a new file is made here, and a link (even a dangling one) is refused.
    match oo.clone().create_new(true).open(path) {
        Ok(file) => Ok(OpenFile {
            path: path.to_path_buf(),
            file,
            created: true,
            system: false,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(OpenFile {
            path: path.to_path_buf(),
            file: oo.open(path)?,
            created: false,
            system: false,
        }),
        Err(e) => Err(e),
    }
}

/// Empties an existing regular file (a device or pipe is written as it is).
fn truncate(f: &OpenFile) -> Result<()> {
    let regular = f.file.metadata().map(|m| m.is_file()).unwrap_or(false);
    if regular {
        f.file
            .set_len(0)
            .map_err(|e| anyhow!("cannot empty output file {:?}: {e}", f.path))?;
    }
    Ok(())
}

/// Undoes the opening of outputs after a later one failed: files this run created are
/// removed, existing ones were never changed.
fn discard(outputs: Vec<Output>) {
    for f in outputs.into_iter().filter_map(|o| o.file) {
        if f.created {
            let _ = std::fs::remove_file(&f.path);
        }
    }
}

fn open_outputs(o: &Options, start: &DateTime<Local>) -> Result<Vec<Output>> {
    let mut out: Vec<Output> = Vec::new();
    let mut stdout_taken = false;
    for (format, name) in &o.outputs {
        if name == "-" {
            if stdout_taken {
                discard(out);
                bail!("only one output can go to stdout ('-')");
            }
            stdout_taken = true;
            out.push(Output {
                format: *format,
                to_stdout: true,
                file: None,
            });
            continue;
        }
        let path = outname::expand(name, start);
        let file = match open_file(Path::new(&path), o.append_output) {
            Ok(f) => f,
            Err(e) => {
                discard(out);
                if e.raw_os_error() == Some(libc::ELOOP) {
                    bail!(
                        "output file {path:?} is a symbolic link: refusing to write through \
                         it (remove the link or name the file it points to)"
                    );
                }
                bail!("cannot open output file {path:?} for writing: {e}");
            }
        };
        out.push(Output {
            format: *format,
            to_stdout: false,
            file: Some(file),
        });
    }
    // Normal output goes to stdout unless some other output claimed it.
    if !stdout_taken {
        out.push(Output {
            format: Format::Normal,
            to_stdout: true,
            file: None,
        });
    }
    Ok(out)
}

fn build_sink(
    outputs: Vec<Output>,
    store: Option<(String, crate::store_cmd::StoreSink)>,
    opts: &OutputOptions,
    o: &Options,
) -> Tee {
    let mut guard = Guarded::default();
    let stylesheet = if o.no_stylesheet {
        None
    } else {
        Some(
            o.stylesheet
                .clone()
                .unwrap_or_else(|| portolan_report::xml::DEFAULT_STYLESHEET.to_string()),
        )
    };
    for out in outputs {
        let label = match &out.file {
            Some(f) => format!("output file {:?}", f.path),
            None => "standard output".to_string(),
        };
        let w: Box<dyn Write + Send> = match out.file {
            Some(f) => Box::new(BufWriter::new(f.file)),
            None => Box::new(std::io::stdout()),
        };
        let is_file = !out.to_stdout;
        let sink: Box<dyn Sink + Send> = match out.format {
            // Nmap shows the VERSION column whenever -sV ran, even if nothing was named.
            Format::Normal => Box::new(
                portolan_report::normal::NormalWriter::new(w, opts.clone(), is_file)
                    .version_scan(o.version),
            ),
            Format::Xml => {
                let x = portolan_report::xml::XmlWriter::new(w, opts.clone())
                    .with_stylesheet(stylesheet.clone());
                Box::new(x)
            }
            Format::Grepable => Box::new(portolan_report::grepable::GrepableWriter::new(
                w,
                opts.clone(),
            )),
            Format::Json => Box::new(portolan_report::json::JsonWriter::new(w, opts.clone())),
            Format::Events => Box::new(portolan_report::events::EventsWriter::new(w, opts.clone())),
        };
        guard.outputs.push((label, sink));
    }
    guard.store = store.map(|(path, sink)| (path, Box::new(sink) as Box<dyn Sink + Send>));
    Tee {
        sinks: vec![Box::new(guard)],
    }
}

/// Every output and the store behind one sink that keeps them valid whatever fails.
#[derive(Default)]
struct Guarded {
    /// Each output with what to call it in a message.
    outputs: Vec<(String, Box<dyn Sink + Send>)>,
    /// The store and its path; taken away when it fails.
    store: Option<(String, Box<dyn Sink + Send>)>,
    /// The run's header, from `begin`: what the outputs are ended with if the scan stops.
    run: Option<ScanRun>,
    up: u32,
    total: u32,
    ended: bool,
}

impl Guarded {
    /// Says once that the store failed, and goes on without it.
    fn store_failed(&mut self, e: OutputError) {
        if let Some((path, _)) = self.store.take() {
            let path = portolan_store::pg::shown(&path);
            STORE_FAILED.store(true, Ordering::Relaxed);
            eprintln!(
                "portolan: cannot record the scan in the history store {path}: {e}\n\
                 portolan: the scan goes on without the store (its other outputs stay \
                 complete) and will exit 1"
            );
        }
    }

    /// The header with run statistics for a scan stopped by `why`, up to the last host.
    fn stopped(&self, why: &str) -> Option<ScanRun> {
        let mut run = self.run.clone()?;
        let now = chrono::Utc::now().timestamp();
        run.runstats = Some(RunStats {
            finished: now,
            elapsed: (now - run.start).max(0) as f64,
            exit: RunExit::Error,
            errormsg: Some(why.to_string()),
            hosts_up: self.up,
            hosts_down: self.total - self.up.min(self.total),
            hosts_total: self.total,
            completeness: None,
        });
        Some(run)
    }

    /// Ends every output but `failed` (and the store) with `run`; ends nothing twice.
    fn end_all(&mut self, run: &ScanRun, failed: Option<usize>) -> Result<(), OutputError> {
        self.ended = true;
        let mut first: Option<OutputError> = None;
        for (i, (label, sink)) in self.outputs.iter_mut().enumerate() {
            if Some(i) == failed {
                continue;
            }
            if let Err(e) = sink.end(run) {
                first.get_or_insert(named(label, e));
            }
        }
        if let Some((_, store)) = self.store.as_mut() {
            if let Err(e) = store.end(run) {
                self.store_failed(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Output `i` failed: the others are closed validly, and the scan is told to stop.
    fn output_failed(&mut self, i: usize, e: OutputError) -> OutputError {
        let e = named(&self.outputs[i].0, e);
        let why = format!("{e}; the scan stopped");
        if let Some(run) = self.stopped(&why) {
            let _ = self.end_all(&run, Some(i));
        }
        self.ended = true;
        OutputError::Io(std::io::Error::other(format!(
            "{e}: the scan stopped, the other outputs were closed"
        )))
    }
}

/// An output's error with the output named.
fn named(label: &str, e: OutputError) -> OutputError {
    let kind = match &e {
        OutputError::Io(io) => io.kind(),
        OutputError::Json(_) => std::io::ErrorKind::Other,
    };
    OutputError::Io(std::io::Error::new(
        kind,
        format!("cannot write {label}: {e}"),
    ))
}

impl Sink for Guarded {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        self.run = Some(run.clone());
        for i in 0..self.outputs.len() {
            if let Err(e) = self.outputs[i].1.begin(run) {
                return Err(self.output_failed(i, e));
            }
        }
        if let Some((_, store)) = self.store.as_mut() {
            if let Err(e) = store.begin(run) {
                self.store_failed(e);
            }
        }
        Ok(())
    }

    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        if self.ended {
            return Ok(());
        }
        self.total += 1;
        self.up += u32::from(host.is_up());
        for i in 0..self.outputs.len() {
            if let Err(e) = self.outputs[i].1.host(run, host) {
                return Err(self.output_failed(i, e));
            }
        }
        if let Some((_, store)) = self.store.as_mut() {
            if let Err(e) = store.host(run, host) {
                self.store_failed(e);
            }
        }
        Ok(())
    }

    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        if self.ended {
            return Ok(());
        }
        self.end_all(run, None)
    }
}

impl Drop for Guarded {
    /// The engine stopped on an error without ending the outputs: they are closed validly,
    /// with the hosts written so far.
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Some(run) = self.stopped("the scan stopped on an error") {
            let _ = self.end_all(&run, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::HostStatus;
    use std::sync::{Arc, Mutex};

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A sink that fails at its `fail_at`-th host (counting from 1), or never.
    struct Failing {
        fail_at: usize,
        seen: usize,
    }

    impl Sink for Failing {
        fn begin(&mut self, _: &ScanRun) -> Result<(), OutputError> {
            Ok(())
        }
        fn host(&mut self, _: &ScanRun, _: &Host) -> Result<(), OutputError> {
            self.seen += 1;
            if self.seen == self.fail_at {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC).into());
            }
            Ok(())
        }
        fn end(&mut self, _: &ScanRun) -> Result<(), OutputError> {
            Ok(())
        }
    }

    fn xml(buf: &Shared) -> Guarded {
        let x = portolan_report::xml::XmlWriter::new(buf.clone(), OutputOptions::default());
        let mut g = Guarded::default();
        g.outputs
            .push(("output file \"x.xml\"".into(), Box::new(x)));
        g
    }

    fn host(last: u8) -> Host {
        Host::new(
            std::net::IpAddr::from([127, 0, 0, last]),
            HostStatus::up("syn-ack"),
        )
    }

    fn read_back(buf: &Shared) -> ScanRun {
        let bytes = buf.0.lock().unwrap().clone();
        portolan_report::read::read_any_from(&bytes[..]).expect("a whole XML document")
    }

    /// The engine returned on an error without ending the sink: dropping it closes the
    /// outputs validly, with the hosts written so far.
    #[test]
    fn outputs_left_open_by_an_error_are_closed_when_dropped() {
        let buf = Shared::default();
        let mut g = xml(&buf);
        let run = ScanRun::new("portolan 127.0.0.0/30", 100);
        g.begin(&run).unwrap();
        g.host(&run, &host(1)).unwrap();
        g.host(&run, &host(2)).unwrap();
        drop(g);
        let back = read_back(&buf);
        assert_eq!(back.hosts.len(), 2);
        let rs = back.runstats.expect("runstats");
        assert_eq!(rs.exit, RunExit::Error);
        assert_eq!((rs.hosts_up, rs.hosts_total), (2, 2));
    }

    /// A failing output stops the scan once and the others are ended; a failing store is
    /// dropped and the scan goes on.
    #[test]
    fn a_failing_output_ends_the_others_and_a_failing_store_is_left_behind() {
        let buf = Shared::default();
        let mut g = xml(&buf);
        g.store = Some((
            "h.db".into(),
            Box::new(Failing {
                fail_at: 1,
                seen: 0,
            }),
        ));
        let run = ScanRun::new("portolan 127.0.0.0/30", 100);
        g.begin(&run).unwrap();
        g.host(&run, &host(1)).unwrap();
        assert!(g.store.is_none() && store_failed());
        g.host(&run, &host(2)).unwrap();
        g.outputs.push((
            "output file \"full.nmap\"".into(),
            Box::new(Failing {
                fail_at: 1,
                seen: 0,
            }),
        ));
        let e = g.host(&run, &host(3)).unwrap_err().to_string();
        assert!(
            e.contains("full.nmap") && e.contains("No space left"),
            "{e}"
        );
        // Ended once: later calls write nothing more.
        g.host(&run, &host(4)).unwrap();
        g.end(&run).unwrap();
        drop(g);
        let back = read_back(&buf);
        assert_eq!(back.hosts.len(), 3, "hosts up to the failure");
        let rs = back.runstats.expect("runstats");
        assert_eq!(rs.exit, RunExit::Error);
        assert!(rs.errormsg.unwrap().contains("full.nmap"));
    }
}
