//! `portolan check`: exit codes 0 (clean), 1 (violations), 2 (errors, named with file and
//! line), on XML and JSON scan files, text and --json reports, and the example of
//! docs/policy.md.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use portolan_model::*;
use portolan_report::{JsonWriter, XmlWriter};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("check")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run portolan")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const POLICY: &str = r#"version = 1

[[rule]]
name = "no redis anywhere"
forbid_services = ["redis"]
why = "standard 4.2"

[[rule]]
name = "database subnet"
hosts = ["198.51.100.0/24"]
allow_ports = ["5432/tcp", "22/tcp"]
must_be_up = ["198.51.100.5"]
"#;

fn open(proto: Protocol, port: u16, name: &str) -> Port {
    let mut p = Port::new(proto, port, PortState::Open, "syn-ack");
    p.service = Some(Service::from_table(name));
    p
}

/// A scan: the database host with `extra` open besides 22 and 5432.
fn scan(extra: Option<Port>) -> ScanRun {
    let mut run = ScanRun::new("portolan -sT 198.51.100.0/24", 1_795_344_023);
    let mut db = Host::new("198.51.100.5".parse().unwrap(), HostStatus::up("syn-ack"));
    db.ports = vec![
        open(Protocol::Tcp, 22, "ssh"),
        open(Protocol::Tcp, 5432, "postgresql"),
    ];
    db.ports.extend(extra);
    db.ports.push(Port::new(
        Protocol::Tcp,
        8080,
        PortState::Closed,
        "conn-refused",
    ));
    run.hosts.push(db);
    run.runstats = Some(RunStats {
        finished: 1_795_344_030,
        elapsed: 7.0,
        exit: RunExit::Success,
        errormsg: None,
        hosts_up: 1,
        hosts_down: 0,
        hosts_total: 1,
        completeness: None,
    });
    run
}

fn feed(sink: &mut dyn Sink, run: &ScanRun) {
    sink.begin(run).unwrap();
    for h in &run.hosts {
        sink.host(run, h).unwrap();
    }
    sink.end(run).unwrap();
}

fn xml(run: &ScanRun) -> String {
    let mut w = XmlWriter::new(Vec::new(), OutputOptions::default());
    feed(&mut w, run);
    String::from_utf8(w.into_inner()).unwrap()
}

fn json(run: &ScanRun) -> String {
    let mut w = JsonWriter::new(Vec::new(), OutputOptions::default());
    feed(&mut w, run);
    String::from_utf8(w.into_inner()).unwrap()
}

struct Files {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    policy: String,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let policy = write(&path, "policy.toml", POLICY);
    Files {
        _dir: dir,
        dir: path,
        policy,
    }
}

#[test]
fn clean_scan_exits_0() {
    let f = files();
    let s = write(&f.dir, "clean.xml", &xml(&scan(None)));
    let o = run(&["--policy", &f.policy, &s]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).starts_with("No violation: 1 host up checked against 2 rules"),
        "{}",
        out(&o)
    );
}

#[test]
fn violations_exit_1_from_xml_and_json() {
    let f = files();
    let bad = scan(Some(open(Protocol::Tcp, 6379, "redis")));
    for (name, text) in [("bad.xml", xml(&bad)), ("bad.json", json(&bad))] {
        let s = write(&f.dir, name, &text);
        let o = run(&["--policy", &f.policy, &s]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", err(&o));
        let text = out(&o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "198.51.100.5 6379/tcp redis: forbidden [rule \"no redis anywhere\"]: service redis is forbidden (forbid_services redis): standard 4.2",
            "{name}"
        );
        assert!(
            lines[1]
                .starts_with("198.51.100.5 6379/tcp redis: unexpected [rule \"database subnet\"]"),
            "{name}: {text}"
        );
        assert!(
            lines[2].starts_with("2 violations on 1 host: 1 host up"),
            "{name}: {text}"
        );
        assert_eq!(lines.len(), 3, "{name}: {text}");
    }
}

#[test]
fn json_report_lists_every_violation() {
    let f = files();
    let mut bad = scan(Some(open(Protocol::Udp, 161, "snmp")));
    bad.hosts[0].status = HostStatus::down("no-response");
    let mut other = Host::new("198.51.100.9".parse().unwrap(), HostStatus::up("syn-ack"));
    other.ports.push(open(Protocol::Tcp, 80, "http"));
    bad.hosts.push(other);
    let s = write(&f.dir, "bad.xml", &xml(&bad));
    let o = run(&["--json", "--policy", &f.policy, &s]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let doc: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(doc["rules"], 2);
    assert_eq!(doc["scan"], s.as_str());
    let v = doc["violations"].as_array().unwrap();
    assert_eq!(v.len(), 2, "{doc}");
    assert_eq!(v[0]["host"], "198.51.100.9");
    assert_eq!(v[0]["port"], 80);
    assert_eq!(v[0]["protocol"], "tcp");
    assert_eq!(v[0]["kind"], "unexpected");
    assert_eq!(v[0]["rule"], "database subnet");
    assert_eq!(v[1]["host"], "198.51.100.5");
    assert_eq!(v[1]["kind"], "down");
    assert!(v[1].get("port").is_none());
}

/// Exit 2, nothing on stdout, and stderr naming every `needle`.
fn fails(args: &[&str], needles: &[&str]) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}{}", out(&o), err(&o));
    assert!(out(&o).is_empty(), "{args:?}: {}", out(&o));
    for n in needles {
        assert!(err(&o).contains(n), "{args:?}: {:?} lacks {n:?}", err(&o));
    }
}

#[test]
fn errors_exit_2_with_file_and_line() {
    let f = files();
    let good = write(&f.dir, "good.xml", &xml(&scan(None)));
    // Malformed policies.
    let p = write(
        &f.dir,
        "typo.toml",
        "version = 1\n\n[[rule]]\nname = \"x\"\nforbid_port = [1]\n",
    );
    fails(
        &["--policy", &p, &good],
        &["typo.toml", "line 5", "forbid_port"],
    );
    let p = write(
        &f.dir,
        "cidr.toml",
        "[[rule]]\nname = \"x\"\nhosts = [\"10.0.0.0/40\"]\nforbid_ports = [1]\n",
    );
    fails(
        &["--policy", &p, &good],
        &["cidr.toml", "line 3", "prefix length"],
    );
    let p = write(&f.dir, "nottoml.toml", "[[rule]\n");
    fails(&["--policy", &p, &good], &["nottoml.toml", "line 1"]);
    fails(
        &["--policy", "/nonexistent/policy.toml", &good],
        &["cannot read policy file /nonexistent/policy.toml"],
    );
    // Malformed scan files.
    let truncated = xml(&scan(None));
    let cut = &truncated[..truncated.find("</host>").unwrap()];
    let s = write(&f.dir, "cut.xml", cut);
    let line = cut.matches('\n').count() + 1; // where the text stops
    fails(
        &["--policy", &f.policy, &s],
        &["cut.xml", &format!("line {line}"), "ends before </nmaprun>"],
    );
    let s = write(
        &f.dir,
        "bad.json",
        &json(&scan(None)).replacen("\"state\":\"open\"", "\"state\":\"opne\"", 1),
    );
    fails(&["--policy", &f.policy, &s], &["bad.json", "line 2"]);
    let s = write(&f.dir, "empty.xml", "");
    fails(&["--policy", &f.policy, &s], &["empty.xml", "line 1"]);
    fails(
        &["--policy", &f.policy, "/nonexistent/scan.xml"],
        &["/nonexistent/scan.xml"],
    );
    // Usage, and a store that cannot be opened.
    fails(&[&good], &["--policy FILE is required"]);
    fails(&["--policy", &f.policy], &["no scan file"]);
    let not_a_store = write(&f.dir, "not-a-store.db", "this is not SQLite");
    fails(
        &["--policy", &f.policy, "--db", &not_a_store],
        &["history store", "not-a-store.db"],
    );
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("Exit status: 0 no violation, 1 violations found, 2 error."));
}

/// The example policy of docs/policy.md parses and means what the page says.
#[test]
fn docs_example_policy_works() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/policy.md"))
            .unwrap();
    let from = page.find("## Example").unwrap();
    let start = from + page[from..].find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + page[start..].find("```").unwrap();
    let f = files();
    let policy = write(&f.dir, "example.toml", &page[start..end]);
    let mut run_ = ScanRun::new("portolan -sV 10.0.20.0/24 192.0.2.0/28", 1);
    let mut db = Host::new("10.0.20.5".parse().unwrap(), HostStatus::up("syn-ack"));
    db.ports = vec![
        open(Protocol::Tcp, 5432, "postgresql"),
        open(Protocol::Tcp, 8080, "http-proxy"),
    ];
    let mut web = Host::new("192.0.2.4".parse().unwrap(), HostStatus::up("syn-ack"));
    web.ports = vec![
        open(Protocol::Tcp, 443, "https"),
        open(Protocol::Tcp, 6379, "redis"),
    ];
    let mut lb = Host::new("192.0.2.1".parse().unwrap(), HostStatus::up("syn-ack"));
    lb.hostnames.push(Hostname {
        name: "www.example.com".into(),
        kind: HostnameType::User,
    });
    lb.ports = vec![open(Protocol::Tcp, 80, "http")];
    run_.hosts = vec![db, web, lb];
    let s = write(&f.dir, "scan.xml", &xml(&run_));
    let o = run(&["--policy", &policy, &s]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    let kinds: Vec<&str> = lines[..lines.len() - 1]
        .iter()
        .map(|l| l.split(": ").nth(1).unwrap_or(""))
        .collect();
    assert!(
        lines[lines.len() - 1]
            .starts_with("4 violations on 3 hosts: 3 hosts up checked against 4 rules"),
        "{text}"
    );
    assert_eq!(
        kinds,
        vec![
            "unexpected [rule \"database subnet\"]",
            "forbidden [rule \"no redis, memcached or SMB anywhere\"]",
            "unexpected [rule \"web front ends\"]",
            "missing [rule \"database subnet\"]",
        ],
        "{text}"
    );
}

/// --db: the latest complete scan in the history store is checked.
#[test]
fn the_latest_scan_in_the_store_is_checked() {
    let f = files();
    let bad = write(
        &f.dir,
        "bad.xml",
        &xml(&scan(Some(open(Protocol::Tcp, 6379, "redis")))),
    );
    let db = format!("{}/history.db", f.dir.display());
    let imported = Command::new(BIN)
        .args(["import", "--db", &db, &bad])
        .output()
        .expect("import");
    assert!(imported.status.success(), "{}", err(&imported));
    let o = run(&["--policy", &f.policy, "--db", &db]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("6379/tcp redis: forbidden"), "{}", out(&o));
}

/// Appends a run to a file the way `--append-output` does: the file opened for appending and
/// a whole document written after what is there.
fn append_xml(path: &str, run: &ScanRun) {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut w = XmlWriter::new(f, OutputOptions::default());
    feed(&mut w, run);
}

/// A file written with --append-output: check read only the first run, so it never saw the
/// ports of the later runs. The last run is judged and named; --run picks another.
#[test]
fn the_last_run_of_an_appended_file_is_judged_and_named() {
    let f = files();
    let path = format!("{}/appended.xml", f.dir.display());
    let mut second = scan(Some(open(Protocol::Tcp, 6379, "redis")));
    second.start += 86_400;
    append_xml(&path, &scan(None));
    append_xml(&path, &second);

    let o = run(&["--policy", &f.policy, &path]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("6379/tcp redis: forbidden"), "{}", out(&o));
    assert!(out(&o).contains("appended.xml, run 2 of 2"), "{}", out(&o));

    let o = run(&["--policy", &f.policy, "--run", "1", &path]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("appended.xml, run 1 of 2"), "{}", out(&o));

    let o = run(&["--policy", &f.policy, "--run", "3", &path]);
    assert_eq!(o.status.code(), Some(2), "{}{}", out(&o), err(&o));
    assert!(
        err(&o).contains("--run 3: the file holds 2 runs"),
        "{}",
        err(&o)
    );
    let o = run(&["--policy", &f.policy, "--run", "0", &path]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
}

/// An interrupted scan lacks what it never reached: judged as complete it reported the
/// hosts it had not scanned as missing. Refused (exit 2) unless --allow-incomplete, and then
/// said to be incomplete.
#[test]
fn an_interrupted_scan_is_refused_unless_allowed() {
    let f = files();
    let mut cut = scan(None);
    cut.hosts.clear();
    if let Some(rs) = cut.runstats.as_mut() {
        rs.exit = RunExit::Error;
        rs.errormsg = Some("interrupted by SIGTERM".into());
        rs.hosts_up = 0;
        rs.hosts_total = 0;
    }
    for (name, text) in [("cut.xml", xml(&cut)), ("cut.json", json(&cut))] {
        let s = write(&f.dir, name, &text);
        let o = run(&["--policy", &f.policy, &s]);
        assert_eq!(o.status.code(), Some(2), "{name}: {}{}", out(&o), err(&o));
        assert!(out(&o).is_empty(), "{name}: {}", out(&o));
        for needle in [
            name,
            "incomplete",
            "interrupted by SIGTERM",
            "--allow-incomplete",
        ] {
            assert!(err(&o).contains(needle), "{name}: {needle}: {}", err(&o));
        }

        let o = run(&["--policy", &f.policy, "--allow-incomplete", &s]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}{}", out(&o), err(&o));
        assert!(out(&o).contains("198.51.100.5: missing"), "{}", out(&o));
        assert!(out(&o).contains("an incomplete scan"), "{}", out(&o));
        let o = run(&["--policy", &f.policy, "--allow-incomplete", "--json", &s]);
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(doc["complete"], false, "{doc}");
    }
    // A complete scan says so in JSON.
    let s = write(&f.dir, "clean.xml", &xml(&scan(None)));
    let o = run(&["--policy", &f.policy, "--json", &s]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["complete"], true, "{doc}");
}

/// `check --db` judged the latest complete scan without saying that a later one was cut
/// short; now it says so, and --allow-incomplete judges the latest.
#[test]
fn the_store_says_which_incomplete_scans_it_skipped() {
    let f = files();
    let done = write(&f.dir, "done.xml", &xml(&scan(None)));
    let mut cut = scan(None);
    cut.start += 3_600;
    cut.hosts.clear();
    if let Some(rs) = cut.runstats.as_mut() {
        rs.exit = RunExit::Error;
        rs.errormsg = Some("interrupted".into());
    }
    let cut = write(&f.dir, "cut.xml", &xml(&cut));
    let db = format!("{}/history.db", f.dir.display());
    let imported = Command::new(BIN)
        .args(["import", "--db", &db, &done, &cut])
        .output()
        .expect("import");
    assert!(imported.status.success(), "{}", err(&imported));
    let o = run(&["--policy", &f.policy, "--db", &db]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(
        out(&o).contains("(scan 1); 1 later incomplete scan skipped"),
        "{}",
        out(&o)
    );
    let o = run(&["--policy", &f.policy, "--db", &db, "--allow-incomplete"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("198.51.100.5: missing"), "{}", out(&o));
    assert!(
        out(&o).contains("(scan 2); an incomplete scan"),
        "{}",
        out(&o)
    );
}
