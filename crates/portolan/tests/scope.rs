//! The authorised scope (`--scope`) and the audit log (`--audit-log`). List scans with -n
//! send nothing, so these need no privileges and touch no network.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PORTOLAN_SCOPE")
        .env("PORTOLAN_AUDIT_LOG", dir.join("audit.log"))
        .stdin(Stdio::null())
        .output()
        .expect("run portolan")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn audit_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each audit line is JSON"))
        .collect()
}

fn scope(dir: &Path, text: &str) -> String {
    let p = dir.join("scope.toml");
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

/// Refused with exit 2, naming `needle`, before any output is opened; the audit log
/// records the refusal.
fn refused(dir: &Path, args: &[&str], needle: &str) {
    let xml = dir.join("out.xml");
    let _ = std::fs::remove_file(&xml);
    let mut all = vec!["-oX", xml.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = run(dir, &all);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    assert!(!xml.exists(), "{args:?}: an output was opened");
    let last = audit_lines(dir).pop().expect("an audit line");
    assert!(last["outcome"]
        .as_str()
        .unwrap()
        .starts_with("refused: out of scope"));
    assert_eq!(last["exit_code"], 2);
}

#[test]
fn targets_outside_the_scope_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = scope(
        d,
        "allow = [\"198.18.0.0/24\"]\nnever = [\"198.18.0.50\"]\n",
    );
    refused(d, &["--scope", &s, "-sL", "-n", "198.18.1.7"], "198.18.1.7");
    refused(
        d,
        &[
            "--scope",
            &s,
            "-sL",
            "-n",
            "198.18.0.254-255",
            "198.18.1.0/30",
        ],
        "198.18.1.0, 198.18.1.1, 198.18.1.2, 198.18.1.3",
    );
    refused(
        d,
        &["--scope", &s, "-sL", "-n", "198.18.0.40-60"],
        "never to touch 198.18.0.50",
    );
    // The same range with the fragile host excluded is inside the scope.
    let o = run(
        d,
        &[
            "--scope",
            &s,
            "-sL",
            "-n",
            "--exclude",
            "198.18.0.50",
            "198.18.0.40-60",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let last = audit_lines(d).pop().unwrap();
    assert_eq!(last["outcome"], "completed");
    assert_eq!(last["targets"], 20);
    assert!(last["command"].as_str().unwrap().contains("198.18.0.40-60"));
    assert_eq!(last["scope"].as_str(), Some(s.as_str()));
}

#[test]
fn the_scope_comes_from_the_environment_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = scope(d, "allow = [\"198.18.0.0/24\"]\n");
    let o = Command::new(BIN)
        .args(["-sL", "-n", "198.19.0.1"])
        .env("PORTOLAN_SCOPE", &s)
        .env("PORTOLAN_AUDIT_LOG", "none")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("198.19.0.1"), "{}", stderr(&o));
}

#[test]
fn windows_and_the_rate_ceiling_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A one-minute window twelve hours from now is closed now.
    let hour = (chrono::Local::now()
        .format("%H")
        .to_string()
        .parse::<u32>()
        .unwrap()
        + 12)
        % 24;
    let closed = scope(
        d,
        &format!("allow = [\"198.18.0.0/24\"]\nwindows = [\"daily {hour:02}:00-{hour:02}:01\"]\n"),
    );
    refused(
        d,
        &["--scope", &closed, "-sL", "-n", "198.18.0.1"],
        "only in its windows",
    );
    let open = scope(
        d,
        "allow = [\"198.18.0.0/24\"]\nwindows = [\"daily 00:00-24:00\"]\nmax_rate = 100\n",
    );
    refused(
        d,
        &[
            "--scope",
            &open,
            "--max-rate",
            "5000",
            "-sL",
            "-n",
            "198.18.0.1",
        ],
        "rate ceiling",
    );
    let o = run(d, &["--scope", &open, "-sL", "-n", "198.18.0.1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_bad_scope_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = scope(d, "allow = [\"198.18.0.0/24\"]\nmax_rate = -3\n");
    let o = run(d, &["--scope", &s, "-sL", "-n", "198.18.0.1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("scope.toml") && stderr(&o).contains("max_rate"));
    let o = run(
        d,
        &[
            "--scope",
            "/nonexistent/scope.toml",
            "-sL",
            "-n",
            "198.18.0.1",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/scope.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn every_scan_appends_one_audit_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for _ in 0..2 {
        let o = run(d, &["-sL", "-n", "198.18.0.0/30"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let lines = audit_lines(d);
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["targets"], 4);
        assert_eq!(l["outcome"], "completed");
        assert!(!l["start"].as_str().unwrap().is_empty());
        assert!(!l["end"].as_str().unwrap().is_empty());
        assert!(l["uid"].is_number());
    }
    // `none` keeps no log.
    let o = run(d, &["--audit-log", "none", "-sL", "-n", "198.18.0.1"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(audit_lines(d).len(), 2);
}
