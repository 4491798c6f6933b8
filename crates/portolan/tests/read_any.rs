//! One scan file, four spellings (XML or our JSON, each with and without a UTF-8 byte-order
//! mark): `portolan diff`, `portolan check` and `portolan import` must read all four as the
//! same scan, since they share one reader (portolan_report::read_any).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use portolan_model::{OutputOptions, Sink};
use portolan_report::{read_xml_file, JsonWriter};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PORTOLAN_DB")
        .stdin(Stdio::null())
        .output()
        .expect("run portolan")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../portolan-report/tests/data")
        .join(name)
}

/// The four spellings of nmap-sv.xml, as (label, path).
fn variants(dir: &Path) -> Vec<(&'static str, String)> {
    let xml = std::fs::read(fixture("nmap-sv.xml")).unwrap();
    let run = read_xml_file(fixture("nmap-sv.xml")).unwrap();
    let mut json = Vec::new();
    {
        let mut w = JsonWriter::new(&mut json, OutputOptions::default());
        w.begin(&run).unwrap();
        for h in &run.hosts {
            w.host(&run, h).unwrap();
        }
        w.end(&run).unwrap();
    }
    let files: [(&str, Vec<u8>); 4] = [
        ("xml", xml.clone()),
        ("bom-xml", [BOM, &xml[..]].concat()),
        ("json", json.clone()),
        ("bom-json", [BOM, b"\n", &json[..]].concat()),
    ];
    files
        .into_iter()
        .map(|(label, bytes)| {
            let p = dir.join(format!("{label}.scan"));
            std::fs::write(&p, bytes).unwrap();
            (label, p.to_string_lossy().into_owned())
        })
        .collect()
}

const POLICY: &str = r#"version = 1

[[rule]]
name = "loopback runs ssh only"
hosts = ["127.0.0.0/8"]
allow_ports = ["22/tcp"]
"#;

/// `check --json` with the path of the scan taken out (it names the file it read).
fn check_json(policy: &str, source: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["check", "--policy", policy, "--json"];
    args.extend_from_slice(source);
    let o = run(&args);
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o.stderr)));
    v.as_object_mut().unwrap().remove("scan");
    (o.status.code(), v)
}

#[test]
fn bom_and_format_do_not_change_what_diff_check_and_import_see() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let policy = policy.to_string_lossy().into_owned();
    let old = fixture("nmap-basic.xml").to_string_lossy().into_owned();

    let mut diffs = Vec::new();
    let mut checks = Vec::new();
    for (label, path) in variants(dir.path()) {
        // diff: Ndiff's text, and its exit code (1: the scans differ).
        let d = run(&["diff", &old, &path]);
        assert_eq!(d.status.code(), Some(1), "{label}: {}", text(&d.stderr));
        diffs.push((label, text(&d.stdout)));

        // check on the file: 8080 and 2024 are open besides 22.
        let (code, report) = check_json(&policy, &[&path]);
        assert_eq!(code, Some(1), "{label}: {report}");
        assert_eq!(report["violations"].as_array().map(Vec::len), Some(2));
        checks.push((label, report.clone()));

        // import, then check the store's latest scan: the same run went in.
        let db = dir.path().join(format!("{label}.db"));
        let db = db.to_string_lossy().into_owned();
        let i = run(&["import", "--db", &db, &path]);
        assert!(i.status.success(), "{label}: {}", text(&i.stderr));
        assert!(text(&i.stdout).contains("added as scan 1"), "{label}");
        let (code, from_db) = check_json(&policy, &["--db", &db]);
        assert_eq!(code, Some(1), "{label}");
        assert_eq!(from_db, report, "{label}: store and file disagree");
    }
    let (first, d0) = &diffs[0];
    assert!(d0.contains("8080/tcp"), "{d0}");
    for (label, d) in &diffs {
        assert_eq!(d, d0, "diff of {label} differs from diff of {first}");
    }
    let (_, c0) = &checks[0];
    for (label, c) in &checks {
        assert_eq!(c, c0, "check of {label} differs from check of {first}");
    }
}

#[test]
fn errors_keep_each_command_s_format() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(&bad, [BOM, b"<nmaprun>\n<host>"].concat()).unwrap();
    let bad = bad.to_string_lossy().into_owned();

    let d = run(&["diff", &bad, &bad]);
    assert_eq!(d.status.code(), Some(2));
    let e = text(&d.stderr);
    assert!(
        e.starts_with(&format!("portolan diff: {bad}: line ")),
        "{e}"
    );

    let db = dir.path().join("h.db").to_string_lossy().into_owned();
    let i = run(&["import", "--db", &db, &bad]);
    assert_eq!(i.status.code(), Some(2));
    let e = text(&i.stderr);
    assert!(e.contains(&format!("{bad}: line ")), "{e}");
    assert!(e.contains("nothing imported"), "{e}");
}
