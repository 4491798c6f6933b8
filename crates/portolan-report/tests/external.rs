//! Our files as the tools of the Nmap world read them: xmllint against nmap.dtd, ndiff,
//! python-libnmap, and a JSON Schema validator for our own JSON. These tools are installed
//! in CI; a missing one skips the test with a message, or fails it under PORTOLAN_LAB=required
//! (which scripts/test.sh sets as root, after installing them).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use portolan_model::*;
use portolan_report::*;

const DTD: &str = "/usr/share/nmap/nmap.dtd";

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn have_xmllint() -> bool {
    external("xmllint", Command::new("xmllint").arg("--version"))
        && external_if(
            "/usr/share/nmap/nmap.dtd (package nmap-common)",
            Path::new(DTD).exists(),
        )
}

fn xmllint_valid(dtd: &Path, file: &Path) -> Output {
    run(Command::new("xmllint")
        .arg("--noout")
        .arg("--dtdvalid")
        .arg(dtd)
        .arg(file))
}

#[test]
fn xml_is_valid_against_nmap_dtd() {
    if !have_xmllint() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, scan) in [("sample", sample_run()), ("nasty", nasty_run())] {
        let file = write(dir.path(), &format!("{name}.xml"), &xml_of(&scan));
        let o = xmllint_valid(Path::new(DTD), &file);
        assert!(o.status.success(), "{name}: {}", text(&o));
        // Our own files say who wrote them, and the reader restores it.
        let back = read_xml_file(&file).unwrap();
        assert_eq!(back.scanner, "portolan");
    }
    // The nasty run also survives a reader other than ours, and reads back.
    let nasty = xml_of(&nasty_run());
    assert!(read_xml(nasty.as_bytes()).is_ok());
}

#[test]
fn imported_nmap_scans_written_back_are_valid_as_is() {
    if !have_xmllint() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for name in ["basic", "full", "two", "multi", "sn", "udp", "v6"] {
        let run = read_xml_file(data(&format!("nmap-{name}.xml"))).unwrap();
        let file = write(dir.path(), &format!("{name}.xml"), &xml_of(&run));
        let o = xmllint_valid(Path::new(DTD), &file);
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
}

#[test]
fn ndiff_reads_our_xml() {
    if !external("ndiff", Command::new("ndiff").arg("--help")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let before = sample_run();
    let a = write(dir.path(), "a.xml", &xml_of(&before));
    let a2 = write(dir.path(), "a2.xml", &xml_of(&before));

    let o = run(Command::new("ndiff").arg(&a).arg(&a2));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let mut after = before.clone();
    after.hosts[0].ports[2].state = PortState::Filtered; // 80/tcp
    let b = write(dir.path(), "b.xml", &xml_of(&after));
    let o = run(Command::new("ndiff").arg(&a).arg(&b));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(" scanme.example, web-1.example.net (192.0.2.10, 00:16:3E:12:34:56):"),
        "{out}"
    );
    assert!(
        out.contains("\n-80/tcp open     http    nginx 1.22.1\n"),
        "{out}"
    );
    assert!(
        out.contains("\n+80/tcp filtered http    nginx 1.22.1\n"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with(['+', '-'])).count(),
        2,
        "{out}"
    );

    // A hostile file is still one ndiff can parse.
    let n = write(dir.path(), "n.xml", &xml_of(&nasty_run()));
    let o = run(Command::new("ndiff").arg(&a).arg(&n));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

const LIBNMAP_SNIPPET: &str = r#"
import sys
from libnmap.parser import NmapParser
r = NmapParser.parse_fromfile(sys.argv[1])
print("run", r.hosts_total, r.hosts_up, r.elapsed, r.commandline)
for h in r.hosts:
    print("host", h.address, h.status, ",".join(h.hostnames), h.mac)
    for s in h.services:
        print("port", s.port, s.protocol, s.state, s.service, s.tunnel, s.reason, s.reason_ttl)
"#;

#[test]
fn python_libnmap_reads_our_xml() {
    if !external(
        "python3 with libnmap (pip install python-libnmap)",
        Command::new("python3").args(["-c", "import libnmap.parser"]),
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "scan.xml", &xml_of(&sample_run()));
    let o = run(Command::new("python3")
        .args(["-c", LIBNMAP_SNIPPET])
        .arg(&file));
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let expected = "\
run 2 1 8.25 portolan -sS -sV -p 1-1000 --reason -oA out scanme.example 192.0.2.9
host 192.0.2.10 up scanme.example,web-1.example.net 00:16:3E:12:34:56
port 22 tcp open ssh  syn-ack 63
port 25 tcp filtered smtp  no-response 0
port 80 tcp open http  syn-ack 63
port 443 tcp open http ssl syn-ack 63
port 631 tcp open ipp  syn-ack 63
host 192.0.2.9 down  
";
    assert_eq!(out, expected);

    let nasty = write(dir.path(), "nasty.xml", &xml_of(&nasty_run()));
    let o = run(Command::new("python3")
        .args(["-c", LIBNMAP_SNIPPET])
        .arg(&nasty));
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn json_matches_its_schema() {
    if !external(
        "python3 with jsonschema (pip install jsonschema)",
        Command::new("python3").args(["-c", "import jsonschema"]),
    ) {
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/portolan.schema.json");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, scan) in [("sample", sample_run()), ("nasty", nasty_run())] {
        files.push(write(dir.path(), &format!("{name}.json"), &json_of(&scan)));
    }
    for name in ["full", "os-a", "os-trace", "scripts"] {
        let imported = read_xml_file(data(&format!("nmap-{name}.xml"))).unwrap();
        files.push(write(
            dir.path(),
            &format!("{name}.json"),
            &json_of(&imported),
        ));
    }
    let check = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
bad = 0
for f in sys.argv[2:]:
    for e in v.iter_errors(json.load(open(f))):
        bad += 1
        print(f, "/".join(map(str, e.absolute_path)), e.message)
sys.exit(1 if bad else 0)
"#;
    let o = run(Command::new("python3")
        .args(["-c", check])
        .arg(&schema)
        .args(&files));
    assert!(o.status.success(), "{}", text(&o));

    // And the schema rejects what it should: a misspelt port state.
    let bad = json_of(&sample_run()).replace("\"state\":\"filtered\"", "\"state\":\"filterd\"");
    let bad = write(dir.path(), "bad.json", &bad);
    let o = run(Command::new("python3")
        .args(["-c", check])
        .arg(&schema)
        .arg(&bad));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// The completeness figures ride in an `<output>` element: still valid against the stock
/// DTD, and every text output carries the same line.
#[test]
fn completeness_stays_valid_in_every_output() {
    if !have_xmllint() {
        return;
    }
    let mut scan = sample_run();
    if let Some(rs) = scan.runstats.as_mut() {
        rs.completeness = Some(Completeness::estimate(67_551, 2_016, 65_531, 4, 1_966, 5));
    }
    let dir = tempfile::tempdir().unwrap();
    let xml = xml_of(&scan);
    assert!(
        xml.contains("<output type=\"interactive\">Completeness: 67551 probes sent"),
        "{xml}"
    );
    let file = write(dir.path(), "completeness.xml", &xml);
    let o = xmllint_valid(Path::new(DTD), &file);
    assert!(o.status.success(), "{}", text(&o));
    assert!(read_xml_file(&file).is_ok());
    let normal = normal_of(&scan, OutputOptions::default(), false);
    assert!(normal.contains("Completeness: 67551 probes sent (2016 retransmissions), 65531 answered, 4 unanswered, about 0.00 responsive ports missed\n"), "{normal}");
    let back = json::read(json_of(&scan).as_bytes()).unwrap();
    assert_eq!(
        back.runstats.and_then(|r| r.completeness),
        scan.runstats.and_then(|r| r.completeness)
    );
}

/// Run by [`a_missing_tool_skips_unless_required`] in a child process, with the environment
/// it chooses; ignored otherwise.
#[test]
#[ignore = "run by a_missing_tool_skips_unless_required"]
fn missing_tool_probe() {
    let ok = external(
        "no-such-tool",
        &mut Command::new("/nonexistent/no-such-tool"),
    );
    assert!(!ok, "a tool that cannot run was reported available");
}

/// Without root (nothing installed), a test whose tool is missing says "skipped" and passes;
/// under PORTOLAN_LAB=required (scripts/test.sh as root) it fails, naming the tool.
#[test]
fn a_missing_tool_skips_unless_required() {
    let exe = std::env::current_exe().unwrap();
    let child = |required: bool| {
        let mut cmd = Command::new(&exe);
        cmd.args(["--ignored", "--exact", "missing_tool_probe", "--nocapture"])
            .env_remove("PORTOLAN_LAB");
        if required {
            cmd.env("PORTOLAN_LAB", "required");
        }
        run(&mut cmd)
    };
    let o = child(false);
    assert!(o.status.success(), "skipping failed:\n{}", text(&o));
    assert!(
        text(&o).contains("skipped: needs no-such-tool; run scripts/test.sh as root to install it"),
        "no skip message:\n{}",
        text(&o)
    );
    let o = child(true);
    assert!(
        !o.status.success(),
        "PORTOLAN_LAB=required did not fail:\n{}",
        text(&o)
    );
    assert!(
        text(&o).contains("no-such-tool is required for this test (PORTOLAN_LAB=required)"),
        "no failure message:\n{}",
        text(&o)
    );
}
