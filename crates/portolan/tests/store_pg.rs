//! The history store in PostgreSQL through the command line: a loopback scan recorded with
//! `--db postgres://...` (or `PORTOLAN_DB`) and read back by every store command, and
//! `serve` (parallel scans into one database: store_cli.rs, on both backends). The cluster
//! is the test process's own (portolan-testpg); without root or PostgreSQL these tests say
//! "skipped". No packet to anything but 127.0.0.1.

mod common;

use portolan_testpg::TestPg;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn run(args: &[&str], env_db: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("PORTOLAN_DB").stdin(Stdio::null());
    if let Some(db) = env_db {
        c.env("PORTOLAN_DB", db);
    }
    c.output().expect("run portolan")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn json(args: &[&str], env_db: Option<&str>) -> serde_json::Value {
    let o = run(args, env_db);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// A database of its own over TCP with the password in the URL, as a user would give it.
fn url_with_password(pg: &TestPg, name: &str) -> String {
    let db = pg.fresh_db_name(name);
    format!("{}?sslmode=require", pg.tcp_url(&db, true))
}

#[test]
fn a_loopback_scan_recorded_in_postgres_is_read_back_by_every_command() {
    let Some(pg) = TestPg::shared() else { return };
    let url = url_with_password(pg, "cli_scan");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port_n = l.local_addr().unwrap().port();
    let port = port_n.to_string();
    // Twice, the port open then closed: a change to find.
    let o = run(
        &["-sT", "-p", &port, "--db", &url, "-oX", "-", "127.0.0.1"],
        None,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains(&format!("portid=\"{port}\"")), "{out}");
    assert!(!out.contains(pg.password()), "the XML shows the password");
    assert!(!err.contains(pg.password()), "{err}");
    drop(l);
    let o = run(&["-sT", "-p", &port, "127.0.0.1"], Some(&url));
    assert!(o.status.success(), "{}", text(&o).1);

    let h = json(&["history", "--db", &url, "--json"], None);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(h.iter().all(|s| s["complete"] == true), "{h:?}");
    assert!(!h[0]["args"].as_str().unwrap().contains(pg.password()));
    // PORTOLAN_DB names the store when --db is absent.
    let hosts = json(&["hosts", "--json"], Some(&url));
    let hosts = hosts.as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0]["address"], "127.0.0.1");
    let changes = json(&["changes", "--db", &url, "--json"], None);
    assert!(
        changes
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "port_closed" && c["port"] == port_n),
        "{changes}"
    );
    let o = run(&["diff", "--db", &url, "--last"], None);
    let (out, err) = text(&o);
    assert!(out.contains(&port), "diff: {out}{err}");

    // An unreachable store: a clear error, without the password.
    let wrong = url.replace(&pg.port().to_string(), "1");
    let o = run(&["history", "--db", &wrong], None);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot connect to the PostgreSQL store"),
        "{err}"
    );
    assert!(!err.contains(pg.password()), "{err}");
}

/// `portolan serve` on a PostgreSQL store: pages answer, and never show the password.
#[test]
fn serve_reads_a_postgres_store() {
    let Some(pg) = TestPg::shared() else { return };
    let url = url_with_password(pg, "cli_serve");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../portolan-report/tests/data/nmap-sv.xml"
    );
    let o = run(&["import", "--db", &url, fixture], None);
    assert!(o.status.success(), "{}", text(&o).1);
    let served = common::serve(&["--db", &url, "--listen", "127.0.0.1:0"]);
    let hosts = served.get("/hosts", "");
    let history = served.get("/", "");
    let said = served.said.clone();
    served.stop();
    assert!(hosts.starts_with("HTTP/1.1 200"), "{hosts}");
    assert!(hosts.contains("127.0.0.1"), "{hosts}");
    for page in [&hosts, &history, &said] {
        assert!(
            !page.contains(pg.password()),
            "the password is shown: {page}"
        );
    }
}

/// `--resume --db` and `check --db` on PostgreSQL: a scan interrupted for real (SIGINT
/// after its first host of two) stays incomplete, is finished by `--resume --db`, and
/// `check` judges the completed scan.
#[test]
fn resume_and_check_from_a_postgres_store() {
    let Some(pg) = TestPg::shared() else { return };
    let url = pg.fresh_db("cli_resume");
    // Ten ports 200 ms apart: about 2 s a host, one host at a time.
    let child = Command::new(BIN)
        .args(["-sT", "-Pn", "-n", "-p", "1-10", "--scan-delay", "200ms"])
        .args([
            "--max-hostgroup",
            "1",
            "--db",
            &url,
            "127.0.0.1",
            "127.0.0.2",
        ])
        .env_remove("PORTOLAN_DB")
        .env("PORTOLAN_AUDIT_LOG", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3200));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o).1);
    let h = json(&["history", "--db", &url, "--json"], None);
    assert_eq!(h[0]["complete"], false, "{h}");
    assert!(json(&["hosts", "--db", &url, "--json"], None)
        .as_array()
        .unwrap()
        .is_empty());

    let o = Command::new(BIN)
        .args(["--resume", "--db", &url])
        .env_remove("PORTOLAN_DB")
        .env("PORTOLAN_AUDIT_LOG", "none")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("1 hosts finished are kept"), "{err}");
    let h = json(&["history", "--db", &url, "--json"], None);
    let last = h.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&last["complete"], &last["hosts_up"]),
        (&true.into(), &2.into()),
        "{h}"
    );

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "version = 1\n\n[[rule]]\nname = \"no telnet\"\nforbid_ports = [23]\n",
    )
    .unwrap();
    let o = run(
        &["check", "--policy", policy.to_str().unwrap(), "--db", &url],
        None,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        format!("{out}{err}").contains(&format!("(scan {})", last["id"])),
        "{out}{err}"
    );
}
