//! -oE events against docs/events.schema.json, with the Python `jsonschema` module (installed
//! in CI; a missing one skips the test with a message, or fails it under PORTOLAN_LAB=required): every event written
//! for several runs (hand-built, hostile, with scripts, vulnerabilities and OS matches,
//! imported from Nmap, read back from our JSON) and every change event between them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use portolan_model::*;
use portolan_report::events::{change_events, write_events, Event, EventsWriter};
use portolan_report::*;

fn events_of(run: &ScanRun) -> String {
    let mut w = EventsWriter::new(Vec::new(), OutputOptions::default());
    feed(&mut w, run);
    String::from_utf8(w.into_inner()).unwrap()
}

fn ndjson(events: &[Event]) -> String {
    let mut out = Vec::new();
    write_events(&mut out, events).unwrap();
    String::from_utf8(out).unwrap()
}

const VALIDATE: &str = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
bad = 0
count = 0
for f in sys.argv[2:]:
    for n, line in enumerate(open(f, encoding="utf-8"), 1):
        count += 1
        for e in v.iter_errors(json.loads(line)):
            bad += 1
            print(f"{f}:{n}", "/".join(map(str, e.absolute_path)), e.message)
print("events", count)
sys.exit(1 if bad else 0)
"#;

fn validate(files: &[PathBuf]) -> (Option<i32>, String) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.schema.json");
    let o = Command::new("python3")
        .args(["-c", VALIDATE])
        .arg(&schema)
        .args(files)
        .output()
        .expect("python3 runs");
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

fn have_validator() -> bool {
    external(
        "python3 with jsonschema (pip install jsonschema)",
        Command::new("python3").args(["-c", "import jsonschema"]),
    )
}

/// The runs the events are drawn from, by name.
fn runs() -> Vec<(String, ScanRun)> {
    let mut out = vec![
        ("sample".to_string(), sample_run()),
        ("nasty".to_string(), nasty_run()),
        (
            "empty".to_string(),
            ScanRun::new("portolan -sn 192.0.2.0/30", 1),
        ),
        ("vulns".to_string(), vulns_run()),
        ("offline-vulns".to_string(), offline_vulns_run()),
    ];
    for name in [
        "full", "sv", "udp", "v6", "multi", "sn", "scripts", "os-a", "os-v", "os-trace",
    ] {
        let run = read_xml_file(data(&format!("nmap-{name}.xml"))).unwrap();
        out.push((format!("nmap-{name}"), run));
    }
    // Our JSON, written and read back: the events are those of the original.
    let back = json::read(json_of(&sample_run()).as_bytes()).unwrap();
    assert_eq!(events_of(&back), events_of(&sample_run()));
    out.push(("json-round-trip".to_string(), back));
    out
}

/// `sample_run` with `--vulns` findings (portolan-vuln's script result) on a port: one
/// upstream-only, one confirmed by Debian's tracker, one without a score.
fn offline_vulns_run() -> ScanRun {
    use portolan_vuln::matcher::Cve;
    use portolan_vuln::{Basis, Finding};
    use std::sync::Arc;
    let finding = |cve: &str, cvss: Option<f64>, basis: Basis| Finding {
        cve: Arc::new(Cve {
            id: cve.into(),
            cvss,
            cvss_version: cvss.map(|_| "3.1".into()),
            severity: cvss.map(|_| "HIGH".into()),
            kev_date_added: None,
            kev_ransomware: None,
            epss: Some(0.5),
            epss_percentile: Some(0.9),
            description: "A flaw. More words.".into(),
        }),
        product: "openbsd:openssh".into(),
        version: "9.2p1".into(),
        matched: "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:* (< 9.8p1)".into(),
        condition: None,
        basis: Arc::new(basis),
    };
    let upstream = Basis::Upstream {
        note: "upstream version only".into(),
    };
    let debian = Basis::Debian {
        package: "openssh".into(),
        release: "bookworm".into(),
        installed: "1:9.2p1-2+deb12u2".into(),
        status: "resolved".into(),
        fixed_version: Some("1:9.2p1-2+deb12u3".into()),
    };
    let mut run = sample_run();
    let all = [
        finding("CVE-2024-6387", Some(8.1), debian),
        finding("CVE-2023-38408", Some(9.8), upstream.clone()),
        finding("CVE-2000-0001", None, upstream),
    ];
    run.hosts[0].ports[0]
        .scripts
        .push(portolan_vuln::report::script(&all));
    run.hosts[0].ports[1]
        .scripts
        .push(portolan_vuln::report::script(&all[..1]));
    run
}

#[test]
fn offline_findings_are_one_alert_each_with_their_score() {
    let text = events_of(&offline_vulns_run());
    let alerts: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"]["kind"] == "alert")
        .collect();
    assert_eq!(alerts.len(), 4, "{text}");
    let v = &alerts[0]["vulnerability"];
    assert_eq!(v["id"], serde_json::json!(["CVE-2024-6387"]));
    assert_eq!(v["score"]["base"], 8.1);
    assert_eq!(v["severity"], "HIGH");
    assert_eq!(v["scanner"]["vendor"], "Portolan");
    assert_eq!(v["classification"], "CVSS");
    assert_eq!(v["enumeration"], "CVE");
    assert!(v["reference"][0]
        .as_str()
        .unwrap()
        .ends_with("/CVE-2024-6387"));
    assert!(alerts[2]["vulnerability"].get("score").is_none());
    assert!(alerts[0]["message"]
        .as_str()
        .unwrap()
        .contains("VULNERABLE CVE-2024-6387"));
    assert!(alerts[1]["message"]
        .as_str()
        .unwrap()
        .contains("LIKELY VULNERABLE CVE-2023-38408"));
}

/// `sample_run` with an OS match, a vulnerability found (and one not found) by scripts using
/// Nmap's vulns library, and pre- and post-scan script results.
fn vulns_run() -> ScanRun {
    let elem = |key: Option<&str>, value: &str| ScriptItem::Elem {
        key: key.map(str::to_string),
        value: value.into(),
    };
    let vuln = |cve: &str, state: &str| ScriptItem::Table {
        key: Some(cve.into()),
        items: vec![
            elem(Some("title"), "A flaw in something"),
            elem(Some("state"), state),
            ScriptItem::Table {
                key: Some("ids".into()),
                items: vec![elem(None, &format!("CVE:{cve}"))],
            },
            elem(
                Some("description"),
                "  Something can be made to run code.\n",
            ),
            ScriptItem::Table {
                key: Some("refs".into()),
                items: vec![elem(None, "https://www.cve.org/CVERecord?id=")],
            },
        ],
    };
    let mut run = sample_run();
    run.prescripts
        .push(Script::text("broadcast-ping", "IP: 192.0.2.7"));
    run.postscripts.push(Script::text("ssh-hostkey", "none"));
    let h = &mut run.hosts[0];
    h.os = Some(Os {
        matches: vec![OsMatch {
            name: "Microsoft Windows Server 2016".into(),
            accuracy: 98,
            line: 1,
            classes: vec![OsClass {
                kind: Some("general purpose".into()),
                vendor: "Microsoft".into(),
                osfamily: "Windows".into(),
                osgen: Some("2016".into()),
                accuracy: 98,
                cpes: vec!["cpe:/o:microsoft:windows_server_2016".into()],
            }],
        }],
        ..Os::default()
    });
    h.ports[4].scripts.push(Script {
        id: "smb-vuln-x".into(),
        output: "VULNERABLE".into(),
        content: vec![vuln("CVE-2017-0143", "VULNERABLE")],
    });
    h.hostscripts.push(Script {
        id: "smb-vuln-y".into(),
        output: "NOT VULNERABLE".into(),
        content: vec![vuln("CVE-2010-2550", "NOT VULNERABLE")],
    });
    run
}

/// `sample_run` a day later: 22 upgraded, 80 filtered, 6379 new, the down host up.
fn later() -> ScanRun {
    let mut run = sample_run();
    run.start += 86_400;
    let h = &mut run.hosts[0];
    h.endtime = h.endtime.map(|t| t + 86_400);
    h.ports[0].service.as_mut().unwrap().version = Some("9.6p1".into());
    h.ports[2].state = PortState::Filtered;
    let mut redis = Port::new(Protocol::Tcp, 6379, PortState::Open, "syn-ack");
    redis.service = Some(Service::from_table("redis"));
    h.ports.push(redis);
    let mut back = Host::new("192.0.2.9".parse().unwrap(), HostStatus::up("echo-reply"));
    back.ports.push(Port::new(
        Protocol::Udp,
        161,
        PortState::Open,
        "udp-response",
    ));
    run.hosts[1] = back;
    run
}

#[test]
fn every_event_written_matches_the_schema() {
    if !have_validator() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut lines = 0;
    for (name, run) in runs() {
        let text = events_of(&run);
        for line in text.lines() {
            let e: Event = serde_json::from_str(line).unwrap();
            assert_eq!(e.to_line().unwrap(), line, "{name}: lines read back alike");
        }
        lines += text.lines().count();
        let path = dir.path().join(format!("{name}.ndjson"));
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let (code, out) = validate(&files);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("events {lines}\n")), "{out}");
    assert!(lines >= 10, "too few events to mean anything: {lines}");
    // Every kind of event -oE writes is among them.
    let all: Vec<serde_json::Value> = runs()
        .iter()
        .flat_map(|(_, run)| {
            events_of(run)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    for scope in ["port", "host", "prescan", "postscan"] {
        assert!(
            all.iter()
                .any(|e| e["portolan"]["script"]["scope"] == scope),
            "no {scope} script result"
        );
    }
    assert!(all.iter().any(|e| e["event"]["kind"] == "alert"));
    assert!(all.iter().any(|e| e["host"]["os"]["type"] == "windows"));
    // Nmap's OS matches, read from its XML.
    assert!(all.iter().any(|e| e["host"]["os"]["type"] == "linux"));
    assert!(all
        .iter()
        .any(|e| e["portolan"]["script"]["content"].is_array()));
}

#[test]
fn every_change_event_matches_the_schema() {
    if !have_validator() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pairs = [
        (sample_run(), later()),
        (later(), sample_run()),
        (ScanRun::new("x", 1), sample_run()),
        (sample_run(), ScanRun::new("x", 1)),
        (
            read_xml_file(data("nmap-basic.xml")).unwrap(),
            read_xml_file(data("nmap-full.xml")).unwrap(),
        ),
        (nasty_run(), sample_run()),
    ];
    let mut files = Vec::new();
    let mut actions = Vec::new();
    for (i, (old, new)) in pairs.iter().enumerate() {
        let events = change_events(old, new);
        actions.extend(events.iter().map(|e| e.event.action));
        let path = dir.path().join(format!("changes-{i}.ndjson"));
        std::fs::write(&path, ndjson(&events)).unwrap();
        files.push(path);
    }
    // A finding that appeared and one that went away (`changes --events`), on an open port.
    let run = sample_run();
    let (host, port) = run
        .hosts
        .iter()
        .find_map(|h| Some((h, h.ports.iter().find(|p| p.state == PortState::Open)?)))
        .expect("an open port");
    let found: Vec<Event> = [(Some(9.8), false), (None, true)]
        .iter()
        .map(|&(cvss, gone)| {
            events::finding_change_event(&run, host, port, "CVE-2024-6387", cvss, gone)
        })
        .collect();
    assert_eq!(found[0].event.kind, "alert");
    assert_eq!(found[1].event.kind, "event");
    actions.extend(found.iter().map(|e| e.event.action));
    let path = dir.path().join("findings.ndjson");
    std::fs::write(&path, ndjson(&found)).unwrap();
    files.push(path);
    // Every kind of change is covered.
    for a in [
        events::Action::PortOpened,
        events::Action::PortClosed,
        events::Action::HostAppeared,
        events::Action::HostDisappeared,
        events::Action::ServiceChanged,
        events::Action::VulnNew,
        events::Action::VulnGone,
    ] {
        assert!(actions.contains(&a), "no {a:?} event in the test pairs");
    }
    let (code, out) = validate(&files);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn the_schema_rejects_what_it_should() {
    if !have_validator() {
        return;
    }
    let good = events_of(&sample_run());
    let first = good.lines().next().unwrap().to_string();
    let vulns = events_of(&vulns_run());
    let find = |what: &str| {
        vulns
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line with {what}"))
            .to_string()
    };
    let pre = find("\"scope\":\"prescan\"");
    let alert = find("\"kind\":\"alert\"");
    let host_script = find("\"scope\":\"host\"");
    let run = sample_run();
    let (host, port) = run
        .hosts
        .iter()
        .find_map(|h| Some((h, h.ports.iter().find(|p| p.state == PortState::Open)?)))
        .expect("an open port");
    let gone = ndjson(&[events::finding_change_event(
        &run, host, port, "CVE-1", None, true,
    )]);
    let gone = gone.trim_end().to_string();
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        // A finding gone is no alert, and names the finding.
        gone.replace("\"kind\":\"event\"", "\"kind\":\"alert\""),
        gone.replace("\"vulnerability\":{", "\"vulnerabilities\":{"),
        gone.replace("\"vuln-gone\"", "\"port-opened\""),
        // An alert must say what the vulnerability is, and only script results alert.
        alert.replace("\"vulnerability\":{", "\"vulnerabilities\":{"),
        first.replace("\"kind\":\"event\"", "\"kind\":\"alert\""),
        alert.replace(
            "\"category\":[\"vulnerability\"]",
            "\"category\":[\"network\"]",
        ),
        // A pre-scan result belongs to no host; a host script result to no port.
        pre.replace(
            "\"portolan\":{",
            "\"host\":{\"ip\":[\"192.0.2.1\"]},\"portolan\":{",
        ),
        host_script.replace("\"ip\":\"192.0.2.10\"", "\"ip\":\"192.0.2.10\",\"port\":1"),
        alert.replace("\"scope\":\"port\"", "\"scope\":\"service\""),
        alert.replace("\"type\":\"windows\"", "\"type\":\"Windows\""),
        first.replace(
            "\"portolan\":{",
            "\"portolan\":{\"script\":{\"id\":\"x\",\"scope\":\"port\",\"output\":\"\"},",
        ),
        first.replace("\"port-open\"", "\"port-opne\""),
        first.replace("\"transport\":\"tcp\"", "\"transport\":\"TCP\""),
        first.replace("\"@timestamp\":\"2026", "\"@timestamp\":\"26"),
        first.replace("\"type\":[\"info\"]", "\"type\":[\"change\"]"),
        first.replace("\"observer\":{", "\"observer\":{\"extra\":1,"),
    ];
    for (i, line) in bad.iter().enumerate() {
        assert_ne!(line, &first, "case {i} changed nothing");
        let path = dir.path().join(format!("bad-{i}.ndjson"));
        std::fs::write(&path, format!("{line}\n")).unwrap();
        let (code, out) = validate(&[path]);
        assert_eq!(code, Some(1), "case {i} passed: {out}");
    }
}

#[test]
fn sample_events_say_what_a_siem_needs() {
    let text = events_of(&sample_run());
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 22, 80, 443, 631 are open; 25 is filtered; the down host has no ports. 80 and 443 have
    // a script result each, after their port-open event.
    let ports: Vec<(u64, &str)> = events
        .iter()
        .map(|e| {
            (
                e["destination"]["port"].as_u64().unwrap(),
                e["event"]["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![
            (22, "port-open"),
            (80, "port-open"),
            (80, "script-result"),
            (443, "port-open"),
            (443, "script-result"),
            (631, "port-open")
        ]
    );
    assert_eq!(
        events[4]["message"],
        "ssl-cert 443/tcp on 192.0.2.10 (scanme.example): Subject: commonName=web-1.example.net"
    );
    let events: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"]["action"] == "port-open")
        .collect();
    let ssh = &events[0];
    assert_eq!(ssh["@timestamp"], "2026-11-22T10:40:31Z");
    assert_eq!(ssh["host"]["ip"][0], "192.0.2.10");
    assert_eq!(ssh["host"]["hostname"], "scanme.example");
    assert_eq!(ssh["host"]["mac"][0], "00-16-3E-12-34-56");
    assert_eq!(ssh["service"]["name"], "ssh");
    assert_eq!(ssh["service"]["version"], "9.2p1 Debian 2+deb12u3");
    assert_eq!(ssh["portolan"]["service"]["product"], "OpenSSH");
    assert_eq!(ssh["portolan"]["reason_ttl"], 63);
    assert_eq!(events[2]["portolan"]["service"]["tunnel"], "ssl");
    assert_eq!(
        events[1]["message"],
        "80/tcp open on 192.0.2.10 (scanme.example): http nginx 1.22.1"
    );
}
