//! `portolan vulndb import|status` (the offline vulnerability database, docs/vulns.md),
//! `portolan vulns SCAN_FILE | --db PATH` (the findings of a scan or of the history store's
//! inventory), and the sink behind a scan's `--vulns`, which adds the findings to each
//! port as a `vulns` script result before the outputs see the host.

use crate::commands::subargs::{self, Opt, Parsed, Spec};
use portolan_model::{Host, OutputError, ScanRun, Service, Sink};
use portolan_store::StoredFinding;
use portolan_vuln::{Finding, Matcher, ServiceQuery, VulnDb, VulnError};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// The environment variable naming the vulnerability database when `--vulndb` is not given.
pub const VULNDB_ENV: &str = "PORTOLAN_VULNDB";

const VULNDB: Opt = Opt::value(
    "vulndb",
    "PATH",
    "the vulnerability database (default: $PORTOLAN_VULNDB, else $XDG_DATA_HOME/portolan/vulndb.sqlite or ~/.local/share/portolan/vulndb.sqlite)",
);
const JSON: Opt = subargs::JSON;
const DB: Opt =
    subargs::DB.help("the latest inventory of this history store instead of a scan file");
const MIN_CVSS: Opt = Opt::value(
    "min-cvss",
    "N",
    "only findings with a CVSS base score of N or more",
);
const KEV: Opt = Opt::switch("kev", "only known exploited vulnerabilities (CISA KEV)");
const STATS: Opt = Opt::switch(
    "stats",
    "say on stderr how many services were matched, and how fast",
);

pub const VULNDB_SPEC: Spec = Spec {
    name: "vulndb",
    summary: "import vulnerability feeds (NVD, CISA KEV, EPSS, Debian) and show the database (docs/vulns.md)",
    usage: &["import [--vulndb PATH] [--json] FILE...", "status [--vulndb PATH] [--json]"],
    about: "
import: reads each FILE (NVD CVE JSON 2.0 yearly or modified feed, CISA KEV JSON, FIRST EPSS
CSV, Debian security tracker JSON; plain or .gz, the format told from the content) and
records them all in one transaction: a bad file is named with its line or JSON path and
nothing is imported. A CVE whose configurations are malformed is reported and skipped.
status: the sources imported, counts and dates.
",
    opts: &[VULNDB, JSON],
    operands: true,
    footer: "Exit status: 0 done, 2 bad usage or a file or database that cannot be used.",
};

pub const VULNS_SPEC: Spec = Spec {
    name: "vulns",
    summary:
        "known vulnerabilities of the services in a scan or the inventory, offline (docs/vulns.md)",
    usage: &[
        "[--vulndb PATH] [--json] [--min-cvss N] [--kev] SCAN_FILE",
        "[--vulndb PATH] [--json] [--min-cvss N] [--kev] --db PATH",
    ],
    about: "
Matches every open port's service (-sV product, version and CPEs) of SCAN_FILE (Nmap's or
Portolan's XML, or Portolan's JSON; the last run of the file) or of the history store's
current inventory against the vulnerability database, and lists the findings: known
exploited first, then by EPSS, then by CVSS. Each finding says which NVD cpeMatch entry
matched, and whether Debian's tracker confirmed it for a Debian build or it rests on the
upstream version only.
With --db, the services of scans run with --vulns keep the findings those scans stored
(without the database); the others are matched now. The output says which (`source`:
stored or matched).
",
    opts: &[VULNDB, JSON, DB, MIN_CVSS, KEV, STATS],
    operands: true,
    footer: "Exit status: 0 no finding, 1 findings, 2 error.",
};

/// The database path: `--vulndb`, else `PORTOLAN_VULNDB`, else the default under the
/// user's data directory.
pub fn vulndb_path(flag: Option<&str>) -> Option<PathBuf> {
    flag.map(PathBuf::from)
        .or_else(|| {
            std::env::var_os(VULNDB_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(portolan_vuln::default_path)
}

fn path_or_usage(spec: &Spec, p: &Parsed) -> Result<PathBuf, ExitCode> {
    vulndb_path(p.value(&VULNDB)).ok_or_else(|| {
        subargs::usage_error(
            spec,
            "no vulnerability database: give --vulndb PATH (or set PORTOLAN_VULNDB, XDG_DATA_HOME or HOME)",
        )
    })
}

fn fail(cmd: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("portolan {cmd}: {e}");
    ExitCode::from(2)
}

/// Runs `portolan vulndb`; the words after it.
pub fn vulndb(args: &[String]) -> ExitCode {
    let p = match subargs::parse_or_exit(&VULNDB_SPEC, args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let path = match path_or_usage(&VULNDB_SPEC, &p) {
        Ok(path) => path,
        Err(code) => return code,
    };
    let json = p.flag(&JSON);
    match p.operands.split_first() {
        Some((cmd, files)) if cmd == "import" => {
            if files.is_empty() {
                return subargs::usage_error(&VULNDB_SPEC, "import needs FILE...");
            }
            let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
            match VulnDb::open(&path).and_then(|mut db| db.import(&files)) {
                Ok(r) => print_import(&path, &r, json),
                Err(e) => fail("vulndb import", format!("{e}\nNothing was imported.")),
            }
        }
        Some((cmd, rest)) if cmd == "status" && rest.is_empty() => {
            match VulnDb::open_existing(&path).and_then(|db| db.status()) {
                Ok(st) => print_status(&st, json),
                Err(e) => fail("vulndb status", e),
            }
        }
        Some((cmd, _)) => subargs::usage_error(
            &VULNDB_SPEC,
            format!("unknown vulndb command {cmd:?}: import FILE... or status"),
        ),
        None => subargs::usage_error(&VULNDB_SPEC, "give a command: import FILE... or status"),
    }
}

fn print_import(path: &std::path::Path, r: &portolan_vuln::ImportReport, json: bool) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = if json {
        let files: Vec<serde_json::Value> = r
            .files
            .iter()
            .map(|(f, s)| {
                serde_json::json!({
                    "file": f.display().to_string(),
                    "format": s.format.as_str(),
                    "records": s.records,
                    "data_date": s.data_date,
                    "skipped": s.skipped.iter().map(|k| serde_json::json!({
                        "cve": k.cve, "path": k.path, "reason": k.reason
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "database": path.display().to_string(),
            "files": files,
            "older_than_stored": r.older_than_stored,
        });
        writeln!(out, "{doc}")
    } else {
        let mut text = String::new();
        for (f, s) in &r.files {
            text.push_str(&format!(
                "{}: {} {} record{}{}\n",
                f.display(),
                s.format.as_str(),
                s.records,
                if s.records == 1 { "" } else { "s" },
                s.data_date
                    .as_deref()
                    .map(|d| format!(" (data of {d})"))
                    .unwrap_or_default()
            ));
            for k in &s.skipped {
                text.push_str(&format!(
                    "  skipped {} at {}: {}\n",
                    k.cve, k.path, k.reason
                ));
            }
        }
        if r.older_than_stored > 0 {
            text.push_str(&format!(
                "{} CVE record(s) kept: the database holds a newer version\n",
                r.older_than_stored
            ));
        }
        text.push_str(&format!("Imported into {}\n", path.display()));
        out.write_all(text.as_bytes())
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("vulndb import", e),
    }
}

fn print_status(st: &portolan_vuln::Status, json: bool) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let written = if json {
        serde_json::to_string(st)
            .map_err(std::io::Error::other)
            .and_then(|s| writeln!(out, "{s}"))
    } else {
        let mut t = format!(
            "Vulnerability database {} (schema {})\n\
             CVEs: {}  cpeMatch entries: {}  AND configurations: {}  known exploited: {}  \
             EPSS scores: {}  Debian entries: {}\n",
            st.path,
            st.schema_version,
            st.cves,
            st.cpe_matches,
            st.and_configurations,
            st.kev,
            st.epss,
            st.debian
        );
        if let Some(d) = &st.newest_cve_change {
            t.push_str(&format!("Newest CVE change: {d}\n"));
        }
        if let Some(n) = st.platforms_missing {
            t.push_str(&format!(
                "Note: {n} CVEs were imported by an older Portolan that did not keep the \
                 platforms their AND configurations require; import the NVD files again.\n"
            ));
        }
        if st.sources.is_empty() {
            t.push_str("Nothing imported yet.\n");
        } else {
            t.push_str(
                "\nIMPORTED             FORMAT  RECORDS  SKIPPED  DATA OF                   FILE\n",
            );
            for s in &st.sources {
                t.push_str(&format!(
                    "{:<20} {:<7} {:>7}  {:>7}  {:<24}  {}\n",
                    chrono::DateTime::from_timestamp(s.imported_at, 0)
                        .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default(),
                    s.format,
                    s.records,
                    s.skipped,
                    s.data_date.as_deref().unwrap_or("-"),
                    s.file
                ));
            }
        }
        out.write_all(t.as_bytes())
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("vulndb status", e),
    }
}

/// A finding: matched now against the database, or as a scan run with `--vulns` stored it
/// in the history store.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Found<'a> {
    Matched(&'a Finding),
    Stored(&'a StoredFinding),
}

impl<'a> Found<'a> {
    fn urgency(&self) -> portolan_model::Urgency<'a> {
        match self {
            Found::Matched(f) => f.urgency(),
            Found::Stored(f) => f.urgency(),
        }
    }
    fn cve(&self) -> &str {
        match self {
            Found::Matched(f) => f.id(),
            Found::Stored(f) => &f.cve,
        }
    }
    fn cvss(&self) -> Option<f64> {
        match self {
            Found::Matched(f) => f.cve.cvss,
            Found::Stored(f) => f.cvss,
        }
    }
    fn epss(&self) -> Option<f64> {
        match self {
            Found::Matched(f) => f.cve.epss,
            Found::Stored(f) => f.epss,
        }
    }
    fn kev(&self) -> bool {
        match self {
            Found::Matched(f) => f.kev(),
            Found::Stored(f) => f.kev,
        }
    }
    fn basis(&self) -> String {
        match self {
            Found::Matched(f) => portolan_vuln::report::basis_text(&f.basis),
            Found::Stored(f) => f.basis.clone(),
        }
    }
    fn matched(&self) -> &str {
        match self {
            Found::Matched(f) => &f.matched,
            Found::Stored(f) => &f.matched,
        }
    }
    fn condition(&self) -> Option<&str> {
        match self {
            Found::Matched(f) => f.condition.as_deref(),
            Found::Stored(f) => f.condition.as_deref(),
        }
    }
    /// "matched" or "stored": where the finding comes from (in the JSON and the table).
    fn source(&self) -> &'static str {
        match self {
            Found::Matched(_) => "matched",
            Found::Stored(_) => "stored",
        }
    }
}

/// A finding on a port of a host (borrowed: a large scan has millions).
#[derive(Debug, Serialize)]
struct Row<'a> {
    address: &'a str,
    port: u16,
    protocol: &'a str,
    service: &'a str,
    source: &'static str,
    #[serde(flatten)]
    finding: Found<'a>,
}

/// Only the findings the filters keep.
struct Filter {
    min_cvss: Option<f64>,
    kev: bool,
}

impl Filter {
    fn keeps(&self, f: &Found) -> bool {
        (!self.kev || f.kev())
            && self
                .min_cvss
                .is_none_or(|m| f.cvss().is_some_and(|c| c >= m))
    }
}

/// One open port's service to match, or whose findings the store holds.
struct Target {
    address: String,
    port: u16,
    protocol: String,
    service: String,
    query: ServiceQuery,
    /// The findings a scan run with `--vulns` stored for it (empty: it had none); None:
    /// to be matched against the database.
    stored: Option<Vec<StoredFinding>>,
}

fn service_text(s: &Service) -> String {
    [
        Some(s.name.as_str()),
        s.product.as_deref(),
        s.version.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|t| !t.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
}

fn targets_of_run(run: &ScanRun) -> Vec<Target> {
    let mut out = Vec::new();
    for h in &run.hosts {
        for p in &h.ports {
            if p.state != portolan_model::PortState::Open {
                continue;
            }
            if let Some(s) = &p.service {
                out.push(Target {
                    address: h.addr_str().to_string(),
                    port: p.portid,
                    protocol: p.protocol.as_str().to_string(),
                    service: service_text(s),
                    query: ServiceQuery::on(h, s),
                    stored: None,
                });
            }
        }
    }
    out
}

/// The inventory's open ports: those of a scan run with `--vulns` (or with a `vulns` result)
/// with their stored findings, the others to match.
fn targets_of_store(path: &str) -> Result<Vec<Target>, String> {
    let store = portolan_store::Store::open_read_only(path).map_err(|e| e.to_string())?;
    let failed = |e: portolan_store::StoreError| format!("history store {path}: {e}");
    let hosts = store.hosts().map_err(failed)?;
    let asked: std::collections::HashSet<i64> = store
        .history()
        .map_err(failed)?
        .into_iter()
        .filter(|s| portolan_store::findings::args_ask_vulns(&s.args))
        .map(|s| s.id)
        .collect();
    let mut out = Vec::new();
    for h in hosts {
        for p in h.ports {
            let stored = portolan_store::findings::of_port(&p)
                .or_else(|| asked.contains(&h.scan_id).then(Vec::new));
            let service = [
                p.service.as_deref(),
                p.product.as_deref(),
                p.version.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
            out.push(Target {
                address: h.address.clone(),
                port: p.port,
                protocol: p.protocol.clone(),
                service,
                query: ServiceQuery {
                    product: p.product,
                    version: p.version,
                    extrainfo: p.extrainfo,
                    ostype: None,
                    cpes: Vec::new(),
                    host_os: Vec::new(),
                },
                stored,
            });
        }
    }
    Ok(out)
}

/// Runs `portolan vulns`; the words after it.
pub fn vulns(args: &[String]) -> ExitCode {
    let p = match subargs::parse_or_exit(&VULNS_SPEC, args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let path = match path_or_usage(&VULNS_SPEC, &p) {
        Ok(path) => path,
        Err(code) => return code,
    };
    let min_cvss = match p.value(&MIN_CVSS).map(str::parse::<f64>) {
        None => None,
        Some(Ok(n)) if (0.0..=10.0).contains(&n) => Some(n),
        Some(_) => {
            return subargs::usage_error(&VULNS_SPEC, "--min-cvss takes a score from 0 to 10")
        }
    };
    let filter = Filter {
        min_cvss,
        kev: p.flag(&KEV),
    };
    let (targets, shown) = match (p.value(&DB), p.operands.as_slice()) {
        (Some(db), []) => match targets_of_store(db) {
            Ok(t) => (t, format!("history store {db} (current inventory)")),
            Err(e) => return fail("vulns", e),
        },
        (None, [file]) => match portolan_report::read_all(file) {
            Ok(runs) => match runs.last() {
                Some(run) => (targets_of_run(run), file.clone()),
                None => return fail("vulns", format!("{file}: no scan run in the file")),
            },
            Err(e) => return fail("vulns", format!("{file}: {e}")),
        },
        (Some(_), _) => {
            return subargs::usage_error(&VULNS_SPEC, "give either a scan file or --db, not both")
        }
        (None, []) => return subargs::usage_error(&VULNS_SPEC, "give a scan file or --db PATH"),
        (None, _) => return subargs::usage_error(&VULNS_SPEC, "one scan file at a time"),
    };
    let stored = targets.iter().filter(|t| t.stored.is_some()).count();
    // Only the services without stored findings need the database.
    let started = std::time::Instant::now();
    let mut found = Vec::with_capacity(targets.len());
    // Let go after matching, on a thread of its own (see below).
    let mut matcher = None;
    if stored < targets.len() {
        let db = match VulnDb::open_existing(&path) {
            Ok(db) => db,
            Err(e) => return fail("vulns", e),
        };
        let m = matcher.insert(db.into_matcher());
        let asked: Vec<&ServiceQuery> = targets
            .iter()
            .filter(|t| t.stored.is_none())
            .map(|t| &t.query)
            .collect();
        let mut matched = match m.services(&asked) {
            Ok(f) => f.into_iter(),
            Err(e) => return fail("vulns", e),
        };
        for t in &targets {
            found.push(match t.stored {
                Some(_) => Default::default(),
                None => matched.next().unwrap_or_default(),
            });
        }
    }
    let matched_in = started.elapsed();
    // The matcher's caches, its workers' connections and their mapped pages are no part of
    // the listing: dropped while the rows are built (the findings are shared, not copied).
    let released = std::thread::spawn(move || drop(matcher));
    let rows: Vec<Row> = targets
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            let filter = &filter;
            let matched = found
                .get(i)
                .into_iter()
                .flat_map(|f| f.iter())
                .map(Found::Matched);
            let kept = t.stored.iter().flatten().map(Found::Stored);
            matched
                .chain(kept)
                .filter(move |f| filter.keeps(f))
                .map(move |f| Row {
                    address: &t.address,
                    port: t.port,
                    protocol: &t.protocol,
                    service: &t.service,
                    source: f.source(),
                    finding: f,
                })
        })
        .collect();
    // Each row's urgency read once: compared through the shared CVE records, millions of
    // rows made the sort chase pointers.
    let mut keyed: Vec<(portolan_model::Urgency, Row)> =
        rows.into_iter().map(|r| (r.finding.urgency(), r)).collect();
    keyed.sort_by(|a, b| a.0.first(&b.0).then_with(|| a.1.address.cmp(b.1.address)));
    let rows: Vec<Row> = keyed.into_iter().map(|(_, r)| r).collect();
    let how = Sources {
        stored,
        matched: targets.len() - stored,
    };
    if p.flag(&STATS) {
        eprintln!(
            "portolan vulns: matched {} services in {:.3} s ({} more from stored findings): {} findings (listed and sorted in {:.3} s more)",
            how.matched,
            matched_in.as_secs_f64(),
            how.stored,
            rows.len(),
            (started.elapsed() - matched_in).as_secs_f64()
        );
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = if p.flag(&JSON) {
        write_json(&mut out, &path, &shown, how, &rows)
    } else {
        write_table(&mut out, &rows, &shown, how)
    }
    .and_then(|()| out.flush());
    // A thread that panicked dropping caches has nothing to report.
    let _ = released.join();
    match written {
        Err(e) => fail("vulns", e),
        Ok(()) if rows.is_empty() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(1),
    }
}

/// How many services' findings were matched now, and how many read as the store holds
/// them (scans run with `--vulns`).
#[derive(Debug, Clone, Copy)]
struct Sources {
    matched: usize,
    stored: usize,
}

/// The JSON document, written a finding at a time.
fn write_json(
    out: &mut impl Write,
    path: &std::path::Path,
    shown: &str,
    how: Sources,
    rows: &[Row],
) -> std::io::Result<()> {
    let text = |s: &str| serde_json::to_string(s).map_err(std::io::Error::other);
    write!(
        out,
        "{{\"database\":{},\"scan\":{},\"services\":{},\"services_matched\":{},\
         \"services_stored\":{},\"findings\":[",
        text(&path.display().to_string())?,
        text(shown)?,
        how.matched + how.stored,
        how.matched,
        how.stored,
    )?;
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, r).map_err(std::io::Error::other)?;
    }
    out.write_all(b"]}\n")
}

fn write_table(
    out: &mut impl Write,
    rows: &[Row],
    shown: &str,
    how: Sources,
) -> std::io::Result<()> {
    write!(out, "{}", table_head(rows, shown, how))?;
    let (w_host, w_svc) = widths(rows);
    for r in rows {
        let f = &r.finding;
        let svc: String = r.service.chars().take(w_svc).collect();
        writeln!(
            out,
            "{:<w_host$}  {:<9}  {:<w_svc$}  {:<16}  {:>4}  {:<3}  {:>5}  {}",
            r.address,
            format!("{}/{}", r.port, r.protocol),
            svc,
            f.cve(),
            portolan_store::findings::score_text(f.cvss()),
            if f.kev() { "yes" } else { "" },
            f.epss()
                .map(|e| format!("{e:.3}"))
                .unwrap_or_else(|| "-".into()),
            f.basis(),
        )?;
        let from = match f {
            Found::Matched(_) => "",
            Found::Stored(_) => " (stored by a scan run with --vulns)",
        };
        writeln!(out, "{:w_host$}  matched {}{from}", "", f.matched())?;
        if let Some(c) = f.condition() {
            writeln!(out, "{:w_host$}  applies {c}", "")?;
        }
    }
    Ok(())
}

/// The summary line (and, when some findings are stored ones, where each kind comes from),
/// and the column heads when there are findings.
/// The table's host and service column widths (the service column is cut at 40).
fn widths(rows: &[Row]) -> (usize, usize) {
    let widest = |f: fn(&Row) -> usize| rows.iter().map(f).max().unwrap_or(0);
    (
        widest(|r| r.address.len()).max(4),
        widest(|r| r.service.len()).clamp(7, 40),
    )
}

fn table_head(rows: &[Row], shown: &str, how: Sources) -> String {
    let services = how.matched + how.stored;
    let mut t = format!(
        "{} finding{} on {services} open service{} of {shown}\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if services == 1 { "" } else { "s" },
    );
    if how.stored > 0 {
        t.push_str(&format!(
            "{} service{} with the findings stored by scans run with --vulns, {} matched now against the database\n",
            how.stored,
            if how.stored == 1 { "" } else { "s" },
            how.matched
        ));
    }
    if rows.is_empty() {
        return t;
    }
    let (w_host, w_svc) = widths(rows);
    t.push_str(&format!(
        "\n{:<w_host$}  {:<9}  {:<w_svc$}  {:<16}  {:>4}  {:<3}  {:>5}  BASIS\n",
        "HOST", "PORT", "SERVICE", "CVE", "CVSS", "KEV", "EPSS"
    ));
    t
}

/// Opens the database for a scan's `--vulns`, before any packet is sent.
pub fn open_for_scan(flag: Option<&str>) -> anyhow::Result<Matcher> {
    let path = vulndb_path(flag).ok_or_else(|| {
        anyhow::anyhow!("--vulns: no vulnerability database (give --vulndb PATH)")
    })?;
    let db = VulnDb::open_existing(&path).map_err(|e| anyhow::anyhow!("--vulns: {e}"))?;
    Ok(db.into_matcher())
}

/// A sink that adds the `vulns` script result to each host's ports, then hands the host on.
pub struct VulnSink<S> {
    pub matcher: Matcher,
    pub inner: S,
}

impl<S: Sink> Sink for VulnSink<S> {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        self.inner.begin(run)
    }
    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        let mut annotated = host.clone();
        match portolan_vuln::report::annotate_host(&mut self.matcher, &mut annotated) {
            Ok(_) => self.inner.host(run, &annotated),
            Err(VulnError::Db { path, source }) => Err(OutputError::Io(std::io::Error::other(
                format!("vulnerability database {}: {source}", path.display()),
            ))),
            Err(e) => Err(OutputError::Io(std::io::Error::other(e.to_string()))),
        }
    }
    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        self.inner.end(run)
    }
}
