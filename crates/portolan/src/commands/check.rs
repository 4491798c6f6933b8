//! `portolan check --policy FILE [--json] SCAN_FILE`: lists every violation of a baseline
//! policy (docs/policy.md) in a scan file (Nmap's XML or ours, or our JSON).
//!
//! Exit codes: 0 no violation, 1 violations, 2 error (bad usage, or a policy or scan file
//! that cannot be read, named with its line).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::subargs::{self, Opt, Parsed, Spec};
use portolan_model::ScanRun;
use portolan_report::policy::{Policy, PolicyError, Violation};
use portolan_report::{read_any, ReadError};

const POLICY: Opt = Opt::value("policy", "FILE", "the policy to check against (required)");
const JSON: Opt = subargs::JSON.help("print the violations as one JSON document instead of text");
const DB: Opt = subargs::DB.help(
    "check the latest complete scan in the history store (without a scan file: $PORTOLAN_DB)",
);

pub const SPEC: Spec = Spec {
    name: "check",
    summary: "list every violation of a baseline policy in a scan (docs/policy.md)",
    usage: &[
        "--policy FILE [--json] SCAN_FILE",
        "--policy FILE [--json] --db PATH",
    ],
    about: "
Lists every violation of the baseline policy FILE (TOML, see docs/policy.md) in SCAN_FILE,
an Nmap or Portolan XML file (-oX) or a Portolan JSON file (-oJ).
",
    opts: &[POLICY, JSON, DB],
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
    Ok(CheckArgs {
        policy,
        source,
        json: p.flag(&JSON),
    })
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
    let (run, shown) = load_scan(&a.source)?;
    let violations = policy.evaluate(&run);
    let mut out = std::io::stdout().lock();
    if a.json {
        write_json(&mut out, a, &shown, &policy, &run, &violations)?;
    } else {
        write_text(&mut out, a, &shown, &policy, &run, &violations)?;
    }
    out.flush()?;
    Ok(violations.len())
}

/// The scan to check, and how to name it in the report.
fn load_scan(source: &ScanSource) -> Result<(ScanRun, String), CheckError> {
    match source {
        ScanSource::File(path) => {
            let run = read_any(path).map_err(|source| CheckError::Scan {
                path: path.clone(),
                source,
            })?;
            Ok((run, path.display().to_string()))
        }
        // The history store: its latest complete scan.
        ScanSource::Db(path) => {
            let store_err = |source| CheckError::Store {
                path: path.clone(),
                source,
            };
            let store =
                portolan_store::Store::open_existing(path).map_err(CheckError::StoreOpen)?;
            let latest = store
                .history()
                .map_err(store_err)?
                .into_iter()
                .filter(|s| s.complete)
                .max_by_key(|s| (s.started, s.id))
                .ok_or_else(|| CheckError::NoScan { path: path.clone() })?;
            let run = store
                .load_run(portolan_store::ScanId(latest.id))
                .map_err(store_err)?;
            Ok((run, format!("{} (scan {})", path.display(), latest.id)))
        }
    }
}

fn write_text(
    out: &mut impl Write,
    a: &CheckArgs,
    shown: &str,
    policy: &Policy,
    run: &ScanRun,
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
    let checked = run.hosts.iter().filter(|h| h.is_up()).count();
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
    violations: &[Violation],
) -> Result<(), CheckError> {
    let doc = serde_json::json!({
        "policy": a.policy.display().to_string(),
        "scan": shown,
        "scan_start": run.start,
        "rules": policy.rules.len(),
        "hosts_up": run.hosts.iter().filter(|h| h.is_up()).count(),
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
