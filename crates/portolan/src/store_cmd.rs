//! The history store's commands (`import`, `history`, `changes`, `hosts`, `services`) and
//! the sink that records a scan run with `--db PATH` (or `PORTOLAN_DB`).

use crate::commands::subargs::{self, Opt, Parsed, Spec};
use portolan_model::{Host, OutputError, RunExit, ScanRun, Sink};
use portolan_store::{
    Cidr, FinishStats, Imported, ScanId, ScanMeta, ShardPart, ShardedScan, Source, Store,
    StoreError,
};
use std::process::ExitCode;
use std::time::Duration;

pub use crate::commands::subargs::{db_path, DB_ENV};

const DB: Opt = subargs::DB;
const JSON: Opt = subargs::JSON;
const SINCE: Opt = Opt::value(
    "since",
    "AGE",
    "changes seen by scans started this long ago or later: 45s, 30m, 12h, 7d, 2w (default 7d)",
);
const TARGET: Opt = Opt::value("target", "CIDR", "only addresses in this network");
const EVENTS: Opt = Opt::switch(
    "events",
    "print SIEM events instead (NDJSON with ECS field names, docs/events.md)",
);
const PORT: Opt = Opt::value("port", "N", "only this port number");
const PRODUCT: Opt = Opt::value(
    "product",
    "TEXT",
    "only products containing TEXT (any case)",
);

/// What every store command's help ends with.
const FOOTER: &str = "\
The history store is --db PATH, else $PORTOLAN_DB. Only `import` and a scan with --db
create it; the other commands refuse a path where no store is. A writer waits for others
holding the store (about ten minutes; PORTOLAN_DB_WAIT=SECONDS to change that).
PATH may be a PostgreSQL database instead: postgres://USER@HOST[:PORT]/DB?sslmode=MODE
or service=NAME (the password from PGPASSWORD or ~/.pgpass; see docs/store.md).
Exit status: 0 done, 1 the store failed, 2 bad usage or an unreadable store or file.";

pub const IMPORT: Spec = Spec {
    name: "import",
    summary: "record scan files (Nmap's XML, Portolan's XML or JSON) in the history store",
    usage: &["[--db PATH] [--json] FILE..."],
    about: "Records each scan FILE in the history store, once (a file imported again is \
            said so).\nA file holding several runs (--append-output) has each run recorded.\n\
            All are recorded in one transaction, each host as it is read (a file is never \
            held whole): one bad file imports none.",
    opts: &[DB, JSON.help("print the report as JSON")],
    operands: true,
    footer: FOOTER,
};

pub const HISTORY: Spec = Spec {
    name: "history",
    summary: "list the scans in the history store",
    usage: &["[--db PATH] [--json]"],
    about: "Lists every scan in the history store: when, complete or not, hosts up, and \
            its command line.",
    opts: &[DB, JSON],
    operands: false,
    footer: FOOTER,
};

pub const CHANGES: Spec = Spec {
    name: "changes",
    summary: "what changed between scans of the same targets in the history store",
    usage: &["[--db PATH] [--since AGE] [--target CIDR] [--json | --events]"],
    about: "Lists what changed between each complete scan and the complete scan of the \
            same targets\nbefore it: hosts appeared or disappeared, ports opened or closed, \
            services changed,\nand known vulnerabilities found or gone (vuln new, vuln gone: \
            between two scans run\nwith --vulns, docs/vulns.md).",
    opts: &[DB, SINCE, TARGET, JSON, EVENTS],
    operands: false,
    footer: FOOTER,
};

pub const HOSTS: Spec = Spec {
    name: "hosts",
    summary: "the current inventory: hosts up in the newest scan of each set of targets",
    usage: &["[--db PATH] [--json]"],
    about: "Lists the current inventory: the hosts up in the newest complete scan of each \
            set of\ntargets, with their open ports.",
    opts: &[DB, JSON],
    operands: false,
    footer: FOOTER,
};

pub const SERVICES: Spec = Spec {
    name: "services",
    summary: "the open ports of the current inventory, by port or product",
    usage: &["[--db PATH] [--port N] [--product TEXT] [--json]"],
    about: "Lists the open ports of the current inventory, with their service and version.",
    opts: &[DB, PORT, PRODUCT, JSON],
    operands: false,
    footer: FOOTER,
};

/// `7d`, `12h`, `30m`, `45s`, `2w`: a duration back from now.
fn parse_since(s: &str) -> Result<Duration, String> {
    let bad = || format!("--since {s:?}: expected a number and a unit (s, m, h, d, w), like 7d");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "" | "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs).map(Duration::from_secs).ok_or_else(bad)
}

fn local(t: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(t, 0).single() {
        Some(d) => d.format("%Y-%m-%d %H:%M").to_string(),
        None => t.to_string(),
    }
}

/// Prints rows as a table with aligned columns (the last one unpadded).
fn table(head: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(head.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("portolan: {msg}");
    ExitCode::from(code)
}

/// Parses the words and opens the store they name; Err is the exit code, already explained
/// (or the help printed). Only `import` writes, so only it may create the store: a command
/// that reads refuses a path where no store is (a typo in a cron job must not read as "no
/// changes").
fn open(spec: &Spec, args: &[String]) -> Result<(Parsed, Store), ExitCode> {
    let p = subargs::parse_or_exit(spec, args)?;
    let Some(path) = p.db() else {
        return Err(fail(
            format!("no history store: give --db PATH or set {DB_ENV}"),
            2,
        ));
    };
    let store = if spec.name == IMPORT.name {
        Store::open(&path).and_then(|mut s| {
            if let Some(wait) = patience() {
                s.set_patience(wait)?;
            }
            Ok(s)
        })
    } else {
        Store::open_existing(&path)
    };
    Ok((p, store.map_err(|e| fail(e, 2))?))
}

fn print_json<T: serde::Serialize>(v: &T) -> ExitCode {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e, 1),
    }
}

fn or_fail<T>(r: Result<T, StoreError>) -> Result<T, ExitCode> {
    r.map_err(|e| fail(e, 1))
}

/// The targets of a run, from its command line: what Portolan's grammar takes as targets,
/// else the last word.
fn targets_of(run: &ScanRun) -> String {
    let words: Vec<&str> = run.args.split_whitespace().skip(1).collect();
    if let Ok(o) = crate::args::parse(words.iter().copied()) {
        let t = targets_text(&o);
        if !t.is_empty() {
            return t;
        }
    }
    words
        .last()
        .filter(|w| !w.starts_with('-'))
        .map(|w| w.to_string())
        .unwrap_or_default()
}

/// The targets of a command line as the store groups scans by: the target words, and the
/// input list file.
pub fn targets_text(o: &crate::args::Options) -> String {
    let mut t = o.targets.clone();
    if let Some(f) = &o.input_file {
        t.push(format!("-iL {f}"));
    }
    t.join(" ")
}

/// One run of an import, for the report.
struct ImportedRun {
    file: String,
    /// 1-based, in its file; and how many runs the file holds (known at its end).
    run: usize,
    runs: usize,
    targets: String,
    status: Imported,
    hosts: usize,
    ports: usize,
}

/// Records the runs of one file in an import as they are read, a host at a time: a file is
/// never held whole.
struct ImportStream<'a, 's> {
    import: &'a mut portolan_store::StreamedImport<'s>,
    file: &'a str,
    done: &'a mut Vec<ImportedRun>,
    /// Runs of this file ended so far.
    count: usize,
    /// The store's error, when it stopped the reading.
    store_error: Option<StoreError>,
}

impl ImportStream<'_, '_> {
    fn store<T>(&mut self, r: Result<T, StoreError>) -> Result<T, portolan_report::ReadError> {
        r.map_err(|e| {
            self.store_error = Some(e);
            portolan_report::ReadError::Io(std::io::Error::other("the history store failed"))
        })
    }
}

impl portolan_report::xml_reader::RunStream for ImportStream<'_, '_> {
    fn begin(&mut self, header: &ScanRun) -> Result<(), portolan_report::ReadError> {
        let targets = targets_of(header);
        let status = self.import.begin_run(header, Some(self.file), &targets);
        let status = self.store(status)?;
        self.done.push(ImportedRun {
            file: self.file.to_string(),
            run: self.count + 1,
            runs: 0,
            targets,
            status,
            hosts: 0,
            ports: 0,
        });
        Ok(())
    }

    fn host(&mut self, host: Host) -> Result<(), portolan_report::ReadError> {
        if let Some(r) = self.done.last_mut() {
            r.hosts += 1;
            r.ports += host.ports.len();
        }
        let added = self.import.add_host(&host);
        self.store(added)
    }

    fn run(&mut self, run: ScanRun) -> Result<(), portolan_report::ReadError> {
        self.count += 1;
        let ended = self.import.end_run(&run);
        self.store(ended)
    }
}

/// `portolan import FILE...`: every run of every file recorded in one transaction, each
/// host as it is read; one bad file imports none.
pub fn import(args: &[String]) -> ExitCode {
    let (w, mut store) = match open(&IMPORT, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if w.operands.is_empty() {
        return fail("import: no file given (portolan import FILE...)", 2);
    }
    let mut import = match or_fail(store.begin_import()) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let mut done: Vec<ImportedRun> = Vec::new();
    for f in &w.operands {
        let first = done.len();
        let mut s = ImportStream {
            import: &mut import,
            file: f,
            done: &mut done,
            count: 0,
            store_error: None,
        };
        let read = portolan_report::read::stream_runs(f, &mut s);
        let (count, store_error) = (s.count, s.store_error.take());
        // Dropping the import on an error records nothing.
        if let Some(e) = store_error {
            return fail(e, 1);
        }
        if let Err(e) = read {
            return fail(format!("{f}: {e}\nnothing imported"), 2);
        }
        for r in done.iter_mut().skip(first) {
            r.runs = count;
        }
    }
    if let Err(code) = or_fail(import.commit()) {
        return code;
    }
    let report: Vec<serde_json::Value> = done
        .iter()
        .map(|r| {
            let (status, id) = match r.status {
                Imported::Added(id) => ("added", id.0),
                Imported::AlreadyThere(id) => ("already imported", id.0),
            };
            serde_json::json!({"file": r.file, "run": r.run, "runs": r.runs,
                               "scan_id": id, "status": status, "targets": r.targets,
                               "hosts": r.hosts, "ports": r.ports})
        })
        .collect();
    if w.flag(&JSON) {
        return print_json(&report);
    }
    for r in &report {
        let run = match (r["run"].as_u64(), r["runs"].as_u64()) {
            (Some(n), Some(count)) if count > 1 => format!(" (run {n} of {count})"),
            _ => String::new(),
        };
        println!(
            "{}{run}: {} as scan {} ({} hosts, {} ports; targets {})",
            r["file"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["scan_id"],
            r["hosts"],
            r["ports"],
            r["targets"].as_str().unwrap_or("")
        );
    }
    ExitCode::SUCCESS
}

/// "nightly (round 2)": a sharded scan's name in messages.
fn round_name(s: &ShardedScan) -> String {
    format!("{} (round {})", s.scan_key, s.round)
}

/// Says on stderr which sharded scans are not counted yet (their parts still missing),
/// for the commands whose answer leaves them out.
fn note_incomplete(store: &Store) {
    for s in store.incomplete_sharded().unwrap_or_default() {
        eprintln!(
            "scan {}: {} of {} parts complete, not counted yet",
            round_name(&s),
            s.parts_complete(),
            s.parts
        );
    }
}

/// A round's parts, as `history` lists them: "part 1 complete (scan 3), part 2 missing".
fn parts_text(s: &ShardedScan) -> String {
    s.part_list
        .iter()
        .map(|p| {
            let scans = p
                .scans
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if scans.is_empty() {
                format!("part {} {}", p.part, p.state.as_str())
            } else {
                let s = if p.scans.len() > 1 { "scans" } else { "scan" };
                format!("part {} {} ({s} {scans})", p.part, p.state.as_str())
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A history row as JSON: the scan's record, and for a part or union of a sharded scan
/// where its whole scan stands (`shard`: every part's state, missing ones included).
fn history_json(s: &portolan_store::ScanRecord, rounds: &[ShardedScan]) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    let round = rounds
        .iter()
        .find(|r| Some(&r.scan_key) == s.scan_key.as_ref() && Some(r.round) == s.round);
    if let (Some(r), Some(obj)) = (round, v.as_object_mut()) {
        obj.insert(
            "shard".into(),
            serde_json::json!({
                "scan_key": r.scan_key, "round": r.round, "parts": r.parts,
                "parts_complete": r.parts_complete(), "complete": r.is_complete(),
                "union_id": r.union_id, "part_states": r.part_list,
            }),
        );
    }
    v
}

/// `portolan history`: every scan in the store.
pub fn history(args: &[String]) -> ExitCode {
    let (w, store) = match open(&HISTORY, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let scans = match or_fail(store.history()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let rounds = match or_fail(store.sharded_scans()) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if w.flag(&JSON) {
        let rows: Vec<serde_json::Value> = scans.iter().map(|s| history_json(s, &rounds)).collect();
        return print_json(&rows);
    }
    let rows: Vec<Vec<String>> = scans
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                local(s.started),
                match (s.part, s.parts) {
                    (Some(k), Some(n)) => {
                        let state = if s.part_done {
                            "done"
                        } else if s.finished.is_none() {
                            "running"
                        } else {
                            "interrupted"
                        };
                        format!("part {k}/{n} {state}")
                    }
                    (None, Some(n)) if s.complete => format!("complete ({n} parts)"),
                    _ if s.complete => "complete".into(),
                    _ => "incomplete".into(),
                },
                format!("{}/{}", s.hosts_up, s.hosts_total),
                s.source.clone(),
                s.targets.clone(),
                s.args.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "STARTED", "STATUS", "UP", "SOURCE", "TARGETS", "COMMAND",
        ],
        &rows,
    );
    if !rounds.is_empty() {
        println!("\nSharded scans:");
        for r in &rounds {
            let status = match r.union_id {
                Some(id) => format!("complete as scan {id}"),
                None => format!(
                    "{} of {} parts complete, not counted yet",
                    r.parts_complete(),
                    r.parts
                ),
            };
            println!("  {}: {status}; {}", round_name(r), parts_text(r));
        }
    }
    ExitCode::SUCCESS
}

/// `changes --events`: the same changes as SIEM events (docs/events.md), computed by
/// comparing each pair of scans the changes came from.
fn print_change_events(
    store: &portolan_store::Store,
    changes: &[portolan_store::Change],
    target: Option<&Cidr>,
) -> ExitCode {
    // Findings that appeared or went away are events of their own (below), and may compare
    // a scan with an earlier one than the scan just before it: their pairs would bring
    // other changes.
    let mut pairs: Vec<(i64, i64)> = changes
        .iter()
        .filter(|c| c.cve.is_none())
        .map(|c| (c.previous_scan_id, c.scan_id))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut events = Vec::new();
    for (old, new) in pairs {
        let runs = store
            .load_run(portolan_store::ScanId(old))
            .and_then(|o| store.load_run(portolan_store::ScanId(new)).map(|n| (o, n)));
        let (old, new) = match or_fail(runs) {
            Ok(r) => r,
            Err(code) => return code,
        };
        events.extend(
            portolan_report::events::change_events(&old, &new)
                .into_iter()
                .filter(|e| {
                    target.is_none_or(|t| {
                        e.host
                            .as_ref()
                            .is_some_and(|h| h.ip.iter().any(|a| t.contains_str(a)))
                    })
                }),
        );
    }
    // `changes` filtered them by --target already.
    let mut runs: std::collections::HashMap<i64, portolan_model::ScanRun> = Default::default();
    for c in changes.iter().filter(|c| c.cve.is_some()) {
        let run = match runs.entry(c.scan_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                match or_fail(store.load_run(portolan_store::ScanId(c.scan_id))) {
                    Ok(r) => e.insert(r),
                    Err(code) => return code,
                }
            }
        };
        let run = &*run;
        let port = run
            .hosts
            .iter()
            .find(|h| h.addr_str() == c.address)
            .and_then(|h| {
                let p = h.ports.iter().find(|p| {
                    Some(p.portid) == c.port && Some(p.protocol.as_str()) == c.protocol.as_deref()
                })?;
                Some((h, p))
            });
        if let (Some((host, port)), Some(cve)) = (port, &c.cve) {
            events.push(portolan_report::events::finding_change_event(
                run,
                host,
                port,
                cve,
                c.cvss,
                c.kind == portolan_store::ChangeKind::VulnGone,
            ));
        }
    }
    let mut out = std::io::stdout().lock();
    match portolan_report::events::write_events(&mut out, &events) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(format!("cannot write the events: {e}"), 2),
    }
}

/// `portolan changes [--since 7d] [--target CIDR] [--events]`.
pub fn changes(args: &[String]) -> ExitCode {
    let (w, store) = match open(&CHANGES, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let since = match parse_since(w.value(&SINCE).unwrap_or("7d")) {
        Ok(d) => d,
        Err(e) => return fail(e, 2),
    };
    let target: Option<Cidr> = match w.value(&TARGET).map(str::parse).transpose() {
        Ok(t) => t,
        Err(e) => return fail(format!("--target: {e}"), 2),
    };
    let changes = match or_fail(store.changes(since, target)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    note_incomplete(&store);
    if w.flag(&EVENTS) {
        return print_change_events(&store, &changes, target.as_ref());
    }
    if w.flag(&JSON) {
        return print_json(&changes);
    }
    if changes.is_empty() {
        println!("No changes.");
        return ExitCode::SUCCESS;
    }
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            let port = match (&c.protocol, c.port) {
                (Some(p), Some(n)) => format!("{n}/{p}"),
                _ => String::new(),
            };
            let detail = match (&c.before, &c.after) {
                (Some(b), Some(a)) => format!("{b} -> {a}"),
                (None, Some(a)) => a.clone(),
                // A finding that went away: the kind says so.
                (Some(b), None) if c.cve.is_some() => b.clone(),
                (Some(b), None) => format!("{b} -> gone"),
                (None, None) => String::new(),
            };
            vec![
                local(c.first_seen),
                c.address.clone(),
                c.kind.as_str().into(),
                port,
                detail,
            ]
        })
        .collect();
    table(&["FIRST SEEN", "HOST", "CHANGE", "PORT", "DETAIL"], &rows);
    ExitCode::SUCCESS
}

/// `portolan hosts`: the current inventory.
pub fn hosts(args: &[String]) -> ExitCode {
    let (w, store) = match open(&HOSTS, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let hosts = match or_fail(store.hosts()) {
        Ok(h) => h,
        Err(code) => return code,
    };
    note_incomplete(&store);
    if w.flag(&JSON) {
        return print_json(&hosts);
    }
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.address.clone(),
                h.hostnames.first().cloned().unwrap_or_default(),
                h.mac.clone().unwrap_or_default(),
                local(h.last_seen),
                h.ports
                    .iter()
                    .map(|p| format!("{}/{}", p.port, p.protocol))
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    table(&["HOST", "NAME", "MAC", "LAST SEEN", "OPEN PORTS"], &rows);
    ExitCode::SUCCESS
}

/// `portolan services [--port N] [--product P]`: open ports of the current inventory.
pub fn services(args: &[String]) -> ExitCode {
    let (w, store) = match open(&SERVICES, args) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let port = match w.value(&PORT).map(str::parse::<u16>).transpose() {
        Ok(p) => p,
        Err(_) => {
            return fail(
                format!(
                    "--port {:?}: not a port number (0-65535)",
                    w.value(&PORT).unwrap_or_default()
                ),
                2,
            )
        }
    };
    let services = match or_fail(store.services(port, w.value(&PRODUCT))) {
        Ok(s) => s,
        Err(code) => return code,
    };
    note_incomplete(&store);
    if w.flag(&JSON) {
        return print_json(&services);
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            let p = &s.port;
            vec![
                s.address.clone(),
                format!("{}/{}", p.port, p.protocol),
                p.service.clone().unwrap_or_default(),
                local(s.last_seen),
                [p.product.as_deref(), p.version.as_deref()]
                    .iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ")
                    + &p.extrainfo
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default(),
            ]
        })
        .collect();
    table(&["HOST", "PORT", "SERVICE", "LAST SEEN", "VERSION"], &rows);
    ExitCode::SUCCESS
}

/// `PORTOLAN_DB_WAIT=SECONDS`: how long a scan (or `import`) waits for another writer
/// holding the store before it gives up (default: about ten minutes, with retries); a scan
/// then goes on without recording.
pub const DB_WAIT_ENV: &str = "PORTOLAN_DB_WAIT";

fn patience() -> Option<Duration> {
    let secs: f64 = std::env::var(DB_WAIT_ENV).ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// Records a scan in the store as it runs: begun at `begin`, each host committed as it is
/// reported, complete at `end` unless the scan was interrupted.
pub struct StoreSink {
    store: Store,
    targets: String,
    scan: Option<ScanId>,
    /// With --shard: the part this run is (docs/shards.md).
    part: Option<ShardPart>,
    /// --scan-id of an unsharded scan.
    name: Option<String>,
}

impl StoreSink {
    pub fn open(path: &str, targets: String) -> Result<StoreSink, StoreError> {
        let mut store = Store::open(path)?;
        if let Some(wait) = patience() {
            store.set_patience(wait)?;
        }
        // Before any output is emptied: can it be written at all (not locked past the
        // wait by another writer, not read-only)?
        store.check_writable().map_err(|e| match e {
            StoreError::Sqlite(source) => StoreError::Open {
                path: path.into(),
                source,
            },
            e => e,
        })?;
        Ok(StoreSink {
            store,
            targets,
            scan: None,
            part: None,
            name: None,
        })
    }

    /// Records the run as `part` of a sharded scan, or under the name `name`.
    pub fn named(mut self, part: Option<ShardPart>, name: Option<String>) -> StoreSink {
        self.part = part;
        self.name = name;
        self
    }
}

fn out_err(e: StoreError) -> OutputError {
    OutputError::Io(std::io::Error::other(e))
}

impl Sink for StoreSink {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let meta = ScanMeta::of_run(run, self.targets.clone(), Source::Scan);
        let id = match &self.part {
            Some(part) => self.store.begin_part(&meta, part),
            None => self.store.begin_scan(&meta),
        }
        .map_err(out_err)?;
        if let (None, Some(name)) = (&self.part, &self.name) {
            self.store.set_scan_name(id, name).map_err(out_err)?;
        }
        self.scan = Some(id);
        Ok(())
    }

    fn host(&mut self, _run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        match self.scan {
            Some(id) => self.store.add_host(id, host).map_err(out_err),
            None => Ok(()),
        }
    }

    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let (Some(id), Some(rs)) = (self.scan, &run.runstats) else {
            return Ok(());
        };
        let stats = FinishStats {
            finished: rs.finished,
            hosts_up: rs.hosts_up,
            hosts_total: rs.hosts_total,
        };
        if !run.prescripts.is_empty() || !run.postscripts.is_empty() {
            self.store.set_run_scripts(id, run).map_err(out_err)?;
        }
        if rs.exit == RunExit::Success {
            self.store.finish_scan(id, stats).map_err(out_err)
        } else {
            self.store.interrupt_scan(id, stats).map_err(out_err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_units() {
        assert_eq!(parse_since("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_since("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_since("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_since("30"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_since("7y").is_err());
        assert!(parse_since("d").is_err());
        assert!(parse_since("99999999999999999999d").is_err());
    }

    #[test]
    fn targets_come_from_the_command_line() {
        let mut run = ScanRun::new("nmap -sT -p 1-100 -oX out.xml 10.0.0.0/24 10.0.1.1", 0);
        assert_eq!(targets_of(&run), "10.0.0.0/24 10.0.1.1");
        run.args = "nmap --some-future-flag 10.0.0.5".into();
        assert_eq!(targets_of(&run), "10.0.0.5");
    }

    #[test]
    fn commands_take_their_own_options_only() {
        let a: Vec<String> = ["--since", "3d", "--target=10.0.0.0/8", "--json"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let w = subargs::parse(&CHANGES, &a).unwrap();
        assert_eq!(w.value(&SINCE), Some("3d"));
        assert_eq!(w.value(&TARGET), Some("10.0.0.0/8"));
        assert!(w.flag(&JSON));
        assert!(subargs::parse(&SERVICES, &a).is_err());
        assert!(subargs::parse(&CHANGES, &["--since".to_string()]).is_err());
        assert!(subargs::parse(&HOSTS, &["10.0.0.0/8".to_string()]).is_err());
        assert!(subargs::parse(&IMPORT, &["a.xml".to_string()]).is_ok());
    }

    /// What run.rs does through the sink: an interrupted scan keeps its hosts and stays
    /// incomplete; a finished one is complete.
    #[test]
    fn the_sink_marks_interrupted_scans_incomplete() {
        use portolan_model::{HostStatus, RunStats};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.db").to_string_lossy().into_owned();
        for exit in [RunExit::Error, RunExit::Success] {
            let mut sink = StoreSink::open(&db, "127.0.0.1".into()).unwrap();
            let mut run = ScanRun::new("portolan 127.0.0.1", 100);
            sink.begin(&run).unwrap();
            let h = Host::new(
                "127.0.0.1".parse().unwrap(),
                HostStatus::up("localhost-response"),
            );
            sink.host(&run, &h).unwrap();
            run.runstats = Some(RunStats {
                finished: 110,
                elapsed: 10.0,
                exit,
                errormsg: None,
                hosts_up: 1,
                hosts_down: 0,
                hosts_total: 1,
                completeness: None,
            });
            sink.end(&run).unwrap();
        }
        let history = Store::open(&db).unwrap().history().unwrap();
        let complete: Vec<bool> = history.iter().map(|s| s.complete).collect();
        assert_eq!(complete, vec![false, true]);
        assert_eq!(history[0].finished, Some(110));
    }
}
