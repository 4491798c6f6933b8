//! The audit log: every scan appends one JSON line saying who scanned what, from where,
//! when, and how it ended (`--audit-log FILE`, `$PORTOLAN_AUDIT_LOG`, or
//! `~/.local/state/portolan/audit.log`; `--audit-log none` keeps none). The line is written
//! with one `write(2)` on a file opened for appending, so a crash cannot leave half a line
//! and concurrent scans never interleave theirs. The file is opened before the scan, while
//! the process may still be root: a scan that dropped root (see `privs`) writes its line
//! through that descriptor.

use anyhow::{Context, Result};
use chrono::{DateTime, Local, SecondsFormat};
use portolan_engine::ScanPlan;
use serde::Serialize;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Targets are counted up to this many (a larger scan records this figure).
pub const COUNT_CAP: u64 = 1 << 26;

/// How many targets' routes are looked up for the source addresses.
const SOURCE_SAMPLE: u64 = 256;

/// The environment variable naming the audit log.
pub const AUDIT_ENV: &str = "PORTOLAN_AUDIT_LOG";

/// Where this scan's audit line goes; `None`: no log (`none`, or no home to keep it in).
pub fn audit_path(flag: Option<&str>) -> Option<PathBuf> {
    let chosen = flag
        .map(str::to_string)
        .or_else(|| std::env::var(AUDIT_ENV).ok())
        .filter(|p| !p.is_empty());
    match chosen.as_deref() {
        Some("none") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let state = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state"))
                })?;
            Some(state.join("portolan").join("audit.log"))
        }
    }
}

/// One scan, as the audit log records it.
#[derive(Debug, Serialize)]
pub struct Record {
    pub start: String,
    pub end: String,
    /// The user that ran it: name (from the environment) and uid.
    pub user: String,
    pub uid: u32,
    /// The addresses its probes left from.
    pub source_addresses: Vec<IpAddr>,
    /// The command line, as typed.
    pub command: String,
    /// The scope file it was checked against, if any.
    pub scope: Option<String>,
    /// Addresses to scan (after exclusions; at most [`COUNT_CAP`]) and the probes that
    /// makes, as planned.
    pub targets: u64,
    pub probes: u64,
    /// "completed", "interrupted by SIGINT" (or SIGTERM, SIGHUP) or "error: ...".
    pub outcome: String,
    pub exit_code: u8,
}

impl Record {
    /// The record of `plan`, made before it runs (its targets are counted here, up to
    /// [`COUNT_CAP`]); [`Record::finish`] says how it ended.
    pub fn planned(start: &DateTime<Local>, plan: &ScanPlan, scope: Option<String>) -> Record {
        let excludes = &plan.targets.excludes;
        let addrs = plan
            .targets
            .expansions
            .iter()
            .flat_map(|e| e.addrs.clone())
            .filter(|ip| !excludes.contains(*ip));
        let (mut targets, mut sources) = (0u64, Vec::new());
        for ip in addrs.take(COUNT_CAP as usize) {
            targets += 1;
            // The source addresses of the first targets (one route lookup each).
            if targets <= SOURCE_SAMPLE {
                if let Ok(src) = portolan_engine::io::raw::source_for_ip(ip) {
                    if !sources.contains(&src) {
                        sources.push(src);
                    }
                }
            }
        }
        // SAFETY: getuid cannot fail and has no preconditions.
        let uid = unsafe { libc::getuid() };
        Record {
            start: start.to_rfc3339_opts(SecondsFormat::Secs, false),
            end: String::new(),
            user: std::env::var("SUDO_USER")
                .or_else(|_| std::env::var("USER"))
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_default(),
            uid,
            source_addresses: sources,
            command: plan.args_line.clone(),
            scope,
            targets,
            probes: targets * plan.probes_per_host() as u64,
            outcome: "running".into(),
            exit_code: 0,
        }
    }

    /// The scan ended now, this way.
    pub fn finish(&mut self, outcome: impl Into<String>, exit_code: u8) {
        self.end = Local::now().to_rfc3339_opts(SecondsFormat::Secs, false);
        self.outcome = outcome.into();
        self.exit_code = exit_code;
    }
}

/// The audit log, opened before the scan (while the process may still be root, so the
/// log can live where only root writes) and written once, at its end.
pub struct Log {
    path: PathBuf,
    /// The open file, or why it could not be opened (said when the line is written).
    file: std::result::Result<std::fs::File, String>,
}

impl Log {
    /// Opens the log at `path` for appending, creating it and its folder; an error is kept
    /// for [`Log::append`] to report, so the scan goes on as it would with a full disk.
    pub fn open(path: PathBuf) -> Log {
        let file = open_file(&path).map_err(|e| format!("{e:#}"));
        Log { path, file }
    }

    /// Appends `record` as one line, in one write.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let f = match &mut self.file {
            Ok(f) => f,
            Err(e) => anyhow::bail!("{e}"),
        };
        let mut line = serde_json::to_vec(record).context("audit record")?;
        line.push(b'\n');
        let n = f
            .write(&line)
            .with_context(|| format!("cannot write the audit log {}", self.path.display()))?;
        if n != line.len() {
            anyhow::bail!(
                "the audit log {} took only part of a line",
                self.path.display()
            );
        }
        Ok(())
    }
}

fn open_file(path: &std::path::Path) -> Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the audit log's folder {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("cannot open the audit log {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            start: "2026-12-04T22:00:00+00:00".into(),
            end: "2026-12-04T22:01:00+00:00".into(),
            user: "root".into(),
            uid: 0,
            source_addresses: Vec::new(),
            command: "portolan".into(),
            scope: Some("scope.toml".into()),
            targets: 1,
            probes: 1000,
            outcome: "completed".into(),
            exit_code: 0,
        }
    }

    #[test]
    fn lines_append_whole_and_parse_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.log");
        for i in 0..3u32 {
            let r = Record {
                command: format!("portolan -sT 198.18.0.{i}"),
                source_addresses: vec!["198.18.0.1".parse().unwrap()],
                ..record()
            };
            Log::open(path.clone()).append(&r).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["command"], format!("portolan -sT 198.18.0.{i}"));
            assert_eq!(v["source_addresses"][0], "198.18.0.1");
            assert_eq!(v["outcome"], "completed");
        }
    }

    #[test]
    fn none_keeps_no_log_and_a_link_is_refused() {
        assert_eq!(audit_path(Some("none")), None);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = Log::open(link).append(&record()).unwrap_err().to_string();
        assert!(e.contains("cannot open the audit log"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
