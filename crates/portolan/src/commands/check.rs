//! `portolan check --policy FILE [--json] SCAN_FILE`: lists every violation of a baseline
//! policy (docs/policy.md) in a scan file (Nmap's XML or ours, or our JSON).
//!
//! Exit codes: 0 no violation, 1 violations, 2 error (bad usage, or a policy or scan file
//! that cannot be read, named with its line, or an incomplete scan: see below).
//!
//! A file written with `--append-output` holds several runs: the last is judged unless
//! `--run N` says which, and the report names it. An interrupted scan (runstats say
//! exit="error", or none) lacks hosts and ports it never reached, which would be reported as
//! missing or down: it is refused unless `--allow-incomplete`, and then said to be
//! incomplete. With `--db`, the latest complete scan is judged (and later incomplete ones
//! said to be skipped), or with `--allow-incomplete` the latest scan.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::subargs::{self, Opt, Parsed, PickError, Spec, RUN};
use portolan_model::{RunExit, ScanRun};
use portolan_report::policy::{Policy, PolicyError, Violation};
use portolan_report::ReadError;

const POLICY: Opt = Opt::value("policy", "FILE", "the policy to check against (required)");
const JSON: Opt = subargs::JSON.help("print the violations as one JSON document instead of text");
const DB: Opt = subargs::DB.help(
    "check the latest complete scan in the history store (without a scan file: $PORTOLAN_DB)",
);

const VULNDB: Opt = Opt::value(
    "vulndb",
    "PATH",
    "match the scan's services against this vulnerability database first, for no_kev and max_cvss rules (docs/vulns.md)",
);

const ALLOW_INCOMPLETE: Opt = Opt::switch(
    "allow-incomplete",
    "judge an interrupted scan too (what it did not reach is reported missing or down)",
);

pub const SPEC: Spec = Spec {
    name: "check",
    summary: "list every violation of a baseline policy in a scan (docs/policy.md)",
    usage: &[
        "--policy FILE [--json] [--run N] [--allow-incomplete] [--vulndb PATH] SCAN_FILE",
        "--policy FILE [--json] [--allow-incomplete] [--vulndb PATH] --db PATH",
    ],
    about: "
Lists every violation of the baseline policy FILE (TOML, see docs/policy.md) in SCAN_FILE,
an Nmap or Portolan XML file (-oX) or a Portolan JSON file (-oJ). In a file holding
several runs (--append-output) the last is judged, unless --run N. An interrupted scan is
refused (exit 2) unless --allow-incomplete.
",
    opts: &[POLICY, JSON, DB, RUN, ALLOW_INCOMPLETE, VULNDB],
    operands: true,
    footer: "Exit status: 0 no violation, 1 violations found, 2 error.",
};

/// Where the scan to check comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ScanSource {
    File(PathBuf),
    /// The latest complete scan of the history store at this path.
    Db(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct CheckArgs {
    policy: PathBuf,
    source: ScanSource,
    json: bool,
    /// `--run N` of a scan file (None: the last).
    run: Option<usize>,
    allow_incomplete: bool,
    /// `--vulndb PATH`: findings added to the scan before it is judged.
    vulndb: Option<PathBuf>,
}

/// Why `check` could not give an answer (exit code 2).
#[derive(Debug, thiserror::Error)]
enum CheckError {
    /// Reported with a pointer to `--help`.
    #[error("{0}")]
    Usage(String),
    #[error("cannot read policy file {}: {source}", path.display())]
    PolicyIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file {}: {source}", path.display())]
    Policy { path: PathBuf, source: PolicyError },
    #[error("scan file {}: {source}", path.display())]
    Scan { path: PathBuf, source: ReadError },
    #[error("scan file {}: {source}", path.display())]
    Pick { path: PathBuf, source: PickError },
    #[error("{shown}: the scan is incomplete ({why}): hosts and ports it did not reach would be judged missing or down. Check a complete scan, or pass --allow-incomplete to judge what it holds")]
    Incomplete { shown: String, why: String },
    #[error("history store {}: {source}", path.display())]
    Store {
        path: PathBuf,
        source: portolan_store::StoreError,
    },
    /// The store could not be opened (the error names its path, once).
    #[error("history store: {0}")]
    StoreOpen(portolan_store::StoreError),
    #[error("history store {}: no complete scan recorded", path.display())]
    NoScan { path: PathBuf },
    #[error("{0}")]
    Vulns(portolan_vuln::VulnError),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs `portolan check`; the words after `check`.
pub fn run(args: &[String]) -> ExitCode {
    let parsed = match subargs::parse_or_exit(&SPEC, args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    match check_args(parsed).and_then(|a| check(&a)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(CheckError::Usage(msg)) => subargs::usage_error(&SPEC, msg),
        Err(e) => {
            eprintln!("portolan check: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
fn parse_args(args: &[String]) -> Result<CheckArgs, CheckError> {
    let parsed = subargs::parse(&SPEC, args).map_err(|e| CheckError::Usage(e.to_string()))?;
    check_args(parsed)
}

/// What to check, from the parsed words.
fn check_args(p: Parsed) -> Result<CheckArgs, CheckError> {
    let policy = p
        .value(&POLICY)
        .map(PathBuf::from)
        .ok_or_else(|| CheckError::Usage("--policy FILE is required".into()))?;
    let source = match (p.value(&DB), p.operands.as_slice()) {
        (Some(path), []) => ScanSource::Db(path.into()),
        (Some(_), _) => {
            return Err(CheckError::Usage(
                "give either a scan file or --db, not both".into(),
            ))
        }
        (None, [file]) => ScanSource::File(file.into()),
        (None, []) => match p.db() {
            Some(path) => ScanSource::Db(path.into()),
            None => {
                return Err(CheckError::Usage(
                    "no scan file given (nor --db PATH, nor PORTOLAN_DB)".into(),
                ))
            }
        },
        (None, _) => {
            return Err(CheckError::Usage(
                "one scan file at a time (run check once per file)".into(),
            ))
        }
    };
    let run = subargs::run_number(&p).map_err(CheckError::Usage)?;
    if run.is_some() && matches!(source, ScanSource::Db(_)) {
        return Err(CheckError::Usage(
            "--run picks a run of a scan file; with --db the latest scan is checked".into(),
        ));
    }
    Ok(CheckArgs {
        policy,
        source,
        json: p.flag(&JSON),
        run,
        allow_incomplete: p.flag(&ALLOW_INCOMPLETE),
        vulndb: p.value(&VULNDB).map(PathBuf::from),
    })
}

/// Why a run is incomplete, or None when it ran to its end.
fn incomplete(run: &ScanRun) -> Option<String> {
    match &run.runstats {
        None => Some("it has no end: no runstats".into()),
        Some(rs) if rs.exit != RunExit::Success => Some(match rs.errormsg.as_deref() {
            Some(m) if !m.trim().is_empty() => format!("it ended in error: {}", m.trim()),
            _ => "it was interrupted".into(),
        }),
        Some(_) => None,
    }
}

/// Checks and prints; returns the number of violations.
fn check(a: &CheckArgs) -> Result<usize, CheckError> {
    let text = std::fs::read_to_string(&a.policy).map_err(|source| CheckError::PolicyIo {
        path: a.policy.clone(),
        source,
    })?;
    let policy = Policy::parse(&text).map_err(|source| CheckError::Policy {
        path: a.policy.clone(),
        source,
    })?;
    let Judged {
        run,
        mut shown,
        violations,
        hosts_up,
    } = judge(a, &policy)?;
    let unfinished = incomplete(&run);
    if let Some(why) = &unfinished {
        if !a.allow_incomplete {
            return Err(CheckError::Incomplete {
                shown,
                why: why.clone(),
            });
        }
        shown.push_str("; an incomplete scan: ");
        shown.push_str(why);
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        write_json(&mut out, a, &shown, &policy, &run, hosts_up, &violations)?;
    } else {
        write_text(&mut out, a, &shown, &policy, hosts_up, &violations)?;
    }
    out.flush()?;
    Ok(violations.len())
}

/// A run judged: the run without its hosts (a file's hosts are judged as they are read, not
/// kept), how to name it, its violations and its hosts up.
struct Judged {
    run: ScanRun,
    shown: String,
    violations: Vec<Violation>,
    hosts_up: usize,
}

/// Judges the runs of a file as they are read, a host at a time, keeping the judgement of
/// the wanted run (`--run N`, else the last): memory grows with the largest host and the
/// violations, not with the file.
struct Streamed<'p> {
    policy: &'p Policy,
    /// `--vulndb`: each host's findings are added before it is judged.
    vulns: Option<portolan_vuln::Matcher>,
    want: Option<usize>,
    /// Runs ended so far.
    count: usize,
    current: Option<portolan_report::policy::Evaluation<'p>>,
    kept: Option<(ScanRun, Vec<Violation>, usize)>,
}

impl Streamed<'_> {
    /// Whether the run being read is the one to judge (the last: every run, until the end).
    fn wanted(&self) -> bool {
        self.want.unwrap_or(self.count + 1) == self.count + 1
    }
}

impl portolan_report::xml_reader::RunStream for Streamed<'_> {
    fn host(&mut self, mut host: portolan_model::Host) -> Result<(), ReadError> {
        if self.wanted() {
            if let Some(m) = self.vulns.as_mut() {
                portolan_vuln::report::annotate_host(m, &mut host)
                    .map_err(|e| ReadError::Io(std::io::Error::other(e.to_string())))?;
            }
            self.current
                .get_or_insert_with(|| self.policy.evaluation())
                .host(&host);
        }
        Ok(())
    }

    fn run(&mut self, run: ScanRun) -> Result<(), ReadError> {
        if self.wanted() {
            let e = self
                .current
                .take()
                .unwrap_or_else(|| self.policy.evaluation());
            let up = e.hosts_up();
            self.kept = Some((run, e.finish(), up));
        }
        self.count += 1;
        Ok(())
    }
}

/// The scan to check, judged, and how to name it in the report.
fn judge(a: &CheckArgs, policy: &Policy) -> Result<Judged, CheckError> {
    let mut vulns = match &a.vulndb {
        Some(path) => Some(
            portolan_vuln::VulnDb::open_existing(path)
                .map_err(CheckError::Vulns)?
                .into_matcher(),
        ),
        None => None,
    };
    let (mut run, shown) = match &a.source {
        ScanSource::File(path) => {
            let mut s = Streamed {
                policy,
                vulns: vulns.take(),
                want: a.run,
                count: 0,
                current: None,
                kept: None,
            };
            portolan_report::read::stream_runs(path, &mut s).map_err(|source| {
                CheckError::Scan {
                    path: path.clone(),
                    source,
                }
            })?;
            let (run, violations, hosts_up) = s.kept.ok_or_else(|| CheckError::Pick {
                path: path.clone(),
                source: PickError::NoSuchRun {
                    want: a.run.unwrap_or(s.count),
                    count: s.count,
                },
            })?;
            let shown = path.display().to_string();
            let shown = if s.count == 1 {
                shown
            } else {
                let index = a.run.unwrap_or(s.count);
                format!("{shown}, run {index} of {}", s.count)
            };
            return Ok(Judged {
                run,
                shown,
                violations,
                hosts_up,
            });
        }
        // The history store: its latest complete scan.
        ScanSource::Db(path) => {
            let store =
                portolan_store::Store::open_existing(path).map_err(CheckError::StoreOpen)?;
            // As it may be shown: a PostgreSQL store's location without its password.
            let path = &store.path().to_path_buf();
            let store_err = |source| CheckError::Store {
                path: path.clone(),
                source,
            };
            let scans = store.history().map_err(store_err)?;
            let latest = scans
                .iter()
                .filter(|s| s.complete || a.allow_incomplete)
                .max_by_key(|s| (s.started, s.id))
                .ok_or_else(|| CheckError::NoScan { path: path.clone() })?;
            // Incomplete scans after the one judged: said, so that a scan that keeps failing
            // is not mistaken for the one checked.
            let skipped = scans
                .iter()
                .filter(|s| !s.complete && (s.started, s.id) > (latest.started, latest.id))
                .count();
            let mut run = store
                .load_run(portolan_store::ScanId(latest.id))
                .map_err(store_err)?;
            if !latest.complete && run.runstats.as_ref().map(|r| r.exit) == Some(RunExit::Success) {
                // The store knows the scan was cut short even where its runstats do not say.
                if let Some(rs) = run.runstats.as_mut() {
                    rs.exit = RunExit::Error;
                }
            }
            let mut shown = format!("{} (scan {})", path.display(), latest.id);
            if skipped > 0 {
                shown.push_str(&format!(
                    "; {skipped} later incomplete scan{} skipped (--allow-incomplete to check the latest)",
                    if skipped == 1 { "" } else { "s" }
                ));
            }
            (run, shown)
        }
    };
    if let Some(m) = vulns.as_mut() {
        for h in run.hosts.iter_mut() {
            portolan_vuln::report::annotate_host(m, h).map_err(CheckError::Vulns)?;
        }
    }
    Ok(Judged {
        violations: policy.evaluate(&run),
        hosts_up: run.hosts.iter().filter(|h| h.is_up()).count(),
        run,
        shown,
    })
}

fn write_text(
    out: &mut impl Write,
    a: &CheckArgs,
    shown: &str,
    policy: &Policy,
    checked: usize,
    violations: &[Violation],
) -> std::io::Result<()> {
    for v in violations {
        writeln!(out, "{v}")?;
    }
    let hosts_with = {
        let mut h: Vec<&str> = violations.iter().map(|v| v.host.as_str()).collect();
        h.sort_unstable();
        h.dedup();
        h.len()
    };
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if violations.is_empty() {
        writeln!(
            out,
            "No violation: {} up checked against {} of {} ({shown}).",
            plural(checked, "host", "hosts"),
            plural(policy.rules.len(), "rule", "rules"),
            a.policy.display()
        )
    } else {
        writeln!(
            out,
            "{} on {}: {} up checked against {} of {} ({shown}).",
            plural(violations.len(), "violation", "violations"),
            plural(hosts_with, "host", "hosts"),
            plural(checked, "host", "hosts"),
            plural(policy.rules.len(), "rule", "rules"),
            a.policy.display()
        )
    }
}

fn write_json(
    out: &mut impl Write,
    a: &CheckArgs,
    shown: &str,
    policy: &Policy,
    run: &ScanRun,
    hosts_up: usize,
    violations: &[Violation],
) -> Result<(), CheckError> {
    let doc = serde_json::json!({
        "policy": a.policy.display().to_string(),
        "scan": shown,
        "scan_start": run.start,
        "complete": incomplete(run).is_none(),
        "rules": policy.rules.len(),
        "hosts_up": hosts_up,
        "violations": violations,
    });
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &str) -> Result<CheckArgs, CheckError> {
        let v: Vec<String> = words.split_whitespace().map(String::from).collect();
        parse_args(&v)
    }

    #[test]
    fn arguments() {
        let a = p("--policy pol.toml scan.xml --json").unwrap();
        assert_eq!(a.policy, PathBuf::from("pol.toml"));
        assert_eq!(a.source, ScanSource::File("scan.xml".into()));
        assert!(a.json);
        let a = p("--policy=pol.toml --db /var/lib/portolan/history.db").unwrap();
        assert_eq!(
            a.source,
            ScanSource::Db("/var/lib/portolan/history.db".into())
        );
        assert!(!a.json);
        for (bad, needle) in [
            ("scan.xml", "--policy FILE is required"),
            ("--policy", "needs a value"),
            ("--policy p", "no scan file"),
            ("--policy p a b", "one scan file"),
            ("--policy p --db d a", "not both"),
            ("--policy p --frobnicate a", "unknown option --frobnicate"),
        ] {
            let e = p(bad).unwrap_err();
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
    }
}
