//! The history store's commands (`import`, `history`, `changes`, `hosts`, `services`) and a
//! loopback scan recorded with `--db`. No packet to anything but 127.0.0.1.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PORTOLAN_DB")
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

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../portolan-report/tests/data")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn json(args: &[&str]) -> serde_json::Value {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", err(&o));
    serde_json::from_str(&out(&o)).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out(&o)))
}

fn db(dir: &tempfile::TempDir) -> String {
    dir.path().join("h.db").to_string_lossy().into_owned()
}

#[test]
fn imported_files_answer_history_hosts_and_services() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let o = run(&[
        "import",
        "--db",
        &db,
        &fixture("nmap-sv.xml"),
        &fixture("nmap-v6.xml"),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("added as scan 1"), "{}", out(&o));

    let h = json(&["history", "--db", &db, "--json"]);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["targets"], "127.0.0.1");
    assert_eq!(h[0]["complete"], true);
    assert_eq!(h[0]["source"], "import");

    let table = out(&run(&["history", "--db", &db]));
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("complete"), "{table}");

    let hosts = json(&["hosts", "--db", &db, "--json"]);
    let addrs: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, vec!["127.0.0.1", "::1"]);

    let s = json(&["services", "--db", &db, "--product", "openssh", "--json"]);
    let s = s.as_array().unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["port"], 22);
    assert_eq!(s[0]["version"], "9.2p1 Debian 2+deb12u3");
    let table = out(&run(&["services", "--db", &db, "--port", "8080"]));
    assert!(
        table.contains("SimpleHTTPServer 0.6 (Python 3.11.7)"),
        "{table}"
    );

    // One scan of each target set: nothing to compare yet.
    let o = run(&["changes", "--db", &db, "--since", "100000d"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("No changes."), "{}", out(&o));
}

#[test]
fn a_malformed_file_is_named_with_its_line_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    assert!(run(&["import", "--db", &db, &fixture("nmap-sv.xml")])
        .status
        .success());
    let bad = dir.path().join("cut.xml");
    let text = std::fs::read_to_string(fixture("nmap-basic.xml")).unwrap();
    std::fs::write(&bad, &text[..text.len() / 2]).unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let o = run(&["import", "--db", &db, &fixture("nmap-two.xml"), &bad]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("cut.xml: line "), "{}", err(&o));
    assert!(err(&o).contains("nothing imported"), "{}", err(&o));
    let h = json(&["history", "--db", &db, "--json"]);
    assert_eq!(
        h.as_array().unwrap().len(),
        1,
        "the good file was not imported either"
    );

    let o = run(&["import", "--db", &db, "/nonexistent/scan.xml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("/nonexistent/scan.xml"), "{}", err(&o));
}

#[test]
fn store_errors_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["history"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("--db PATH or set PORTOLAN_DB"),
        "{}",
        err(&o)
    );

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database, my notes\n".repeat(100)).unwrap();
    let o = run(&["hosts", "--db", &notes.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("not an SQLite database"), "{}", err(&o));
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "not a database, my notes\n".repeat(100)
    );

    let db = db(&dir);
    for bad in [
        &["changes", "--db", &db, "--since", "7y"][..],
        &["changes", "--db", &db, "--target", "10.0.0.0/99"],
        &["services", "--db", &db, "--port", "http"],
        &["hosts", "--db", &db, "--bogus"],
    ] {
        let o = run(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(!err(&o).is_empty(), "{bad:?}");
    }
}

/// Scans of the loopback recorded with --db (and PORTOLAN_DB): complete, with the listener.
#[test]
fn a_scan_with_db_is_recorded_and_a_new_port_shows_as_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = second.local_addr().unwrap().port();
    drop(second);
    let ports = format!("{port},{other}");
    let scan = |env_db: bool| {
        let mut c = Command::new(BIN);
        c.args(["-sT", "-Pn", "-n", "-p", &ports, "127.0.0.1"])
            .stdin(Stdio::null());
        if env_db {
            c.env("PORTOLAN_DB", &db);
        } else {
            c.args(["--db", &db]).env_remove("PORTOLAN_DB");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
    };
    scan(false);
    // The other port opens before the second scan.
    let _second = TcpListener::bind(("127.0.0.1", other));
    if _second.is_err() {
        return; // taken by someone else meanwhile: nothing to compare reliably
    }
    scan(true);

    let h = json(&["history", "--db", &db, "--json"]);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 2);
    for s in h {
        assert_eq!(s["complete"], true, "{s}");
        assert_eq!(s["source"], "scan");
        assert_eq!(s["targets"], "127.0.0.1");
        assert_eq!(s["hosts_up"], 1);
    }
    let hosts = json(&["hosts", "--db", &db, "--json"]);
    let open: Vec<u64> = hosts[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert!(open.contains(&(port as u64)), "{hosts}");
    let changes = json(&["changes", "--db", &db, "--json"]);
    let c = changes.as_array().unwrap();
    assert!(
        c.iter()
            .any(|c| c["kind"] == "port_opened" && c["port"] == other as u64),
        "{changes}"
    );
    // The same change as a SIEM event (NDJSON, ECS names).
    let o = run(&["changes", "--db", &db, "--events"]);
    assert!(o.status.success(), "{}", err(&o));
    let events: Vec<serde_json::Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"]["action"] == "port-opened"
                && e["destination"]["port"] == other as u64),
        "{}",
        out(&o)
    );
    // diff --last: the two scans of the same targets, as Ndiff would show them.
    let o = run(&["diff", "--db", &db, "--last"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains(&format!("+{other}/tcp")), "{}", out(&o));
    drop(first);
}

/// Runs rebuilt from the store carry OS matches and scripts, so `diff --db --last` sees a
/// change of OS match or of a post-scan script as `diff` on the files does.
#[test]
fn diff_from_the_store_compares_os_matches_and_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let old = fixture("nmap-os-trace.xml");
    let text = std::fs::read_to_string(&old).unwrap();
    let start = text
        .split("start=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let later = (start.parse::<i64>().unwrap() + 86_400).to_string();
    let new_text = text
        .replacen(
            &format!("start=\"{start}\""),
            &format!("start=\"{later}\""),
            1,
        )
        .replacen(
            "osmatch name=\"Linux 3.2\"",
            "osmatch name=\"Linux 3.3\"",
            1,
        )
        .replacen("Possible duplicate hosts", "Possibly duplicate hosts", 1);
    assert_ne!(new_text, text);
    let new = dir.path().join("later.xml");
    std::fs::write(&new, new_text).unwrap();
    let new = new.to_string_lossy().into_owned();
    let o = run(&["import", "--db", &db, &old, &new]);
    assert!(o.status.success(), "{}", err(&o));

    let from_files = run(&["diff", &old, &new]);
    let from_store = run(&["diff", "--db", &db, "--last"]);
    assert_eq!(from_store.status.code(), Some(1), "{}", err(&from_store));
    assert_eq!(from_store.status.code(), from_files.status.code());
    let text = out(&from_store);
    assert!(text.contains("-  Linux 3.2\n+  Linux 3.3\n"), "{text}");
    assert!(
        text.contains("+|  ssh-hostkey: Possibly duplicate hosts"),
        "{text}"
    );
    // Everything but the header lines (the store keeps no startstr) is the same.
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.contains(" scan initiated "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&text), body(&out(&from_files)));
}

/// `--append-output` of a second run into the same files: import, diff and check read only
/// the first run. Each run is imported; diff compares the last (saying so) or `--run N`.
#[test]
fn every_run_of_an_appended_file_is_imported_and_the_last_compared() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let (xml, json_out, single) = (p("runs.xml"), p("runs.json"), p("first.xml"));
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = first.local_addr().unwrap().port();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = second.local_addr().unwrap().port();
    drop(second);
    let ports = format!("{port},{other}");
    let scan = |extra: &[&str]| {
        let o = Command::new(BIN)
            .args(["-sT", "-Pn", "-n", "-p", &ports, "--append-output"])
            .args(["-oX", &xml, "-oJ", &json_out])
            .args(extra)
            .arg("127.0.0.1")
            .env_remove("PORTOLAN_DB")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", err(&o));
    };
    scan(&["-oN", &p("first.nmap")]);
    std::fs::copy(&xml, &single).unwrap();
    let Ok(_second) = TcpListener::bind(("127.0.0.1", other)) else {
        return; // taken by someone else meanwhile: nothing to compare reliably
    };
    // Runs are told apart by their start second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    scan(&[]);

    let imported = json(&["import", "--db", &db, "--json", &xml]);
    let imported = imported.as_array().unwrap();
    assert_eq!(imported.len(), 2, "{imported:?}");
    for (i, r) in imported.iter().enumerate() {
        assert_eq!(r["run"], i + 1, "{r}");
        assert_eq!(r["runs"], 2, "{r}");
        assert_eq!(r["status"], "added", "{r}");
    }
    let o = run(&["import", "--db", &db, &json_out]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("runs.json (run 2 of 2): added"),
        "{}",
        out(&o)
    );
    let h = json(&["history", "--db", &db, "--json"]);
    assert_eq!(h.as_array().unwrap().len(), 4, "{h}");

    // The last run has the port opened in between.
    let o = run(&["diff", &single, &xml]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains(&format!("+{other}/tcp")), "{}", out(&o));
    assert!(
        err(&o).contains("runs.xml holds 2 runs (--append-output): comparing run 2, the last"),
        "{}",
        err(&o)
    );
    let o = run(&["diff", "--run", "1", &single, &xml]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(err(&o).contains("comparing run 1, started"), "{}", err(&o));
    let o = run(&["diff", &single, &json_out]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
}

/// A text file given to diff was reported as "line 3: malformed XML" of a two-line file.
#[test]
fn a_file_that_is_no_scan_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "some notes\nabout a scan\n").unwrap();
    let notes = notes.to_string_lossy().into_owned();
    for args in [
        vec!["diff", &notes, &fixture("nmap-basic.xml")],
        vec!["import", "--db", &db(&dir), &notes],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        let e = err(&o);
        assert!(
            e.contains(&format!(
                "{notes}: line 1: not an Nmap XML or Portolan JSON scan file"
            )),
            "{args:?}: {e}"
        );
        assert!(!e.contains("malformed"), "{e}");
    }
}

/// Commands that only read never create a store: a mistyped path in a cron job is an error
/// naming it (exit 2), not an empty store that reports "No changes.".
#[test]
fn commands_that_read_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo1.db");
    let typo_s = typo.to_string_lossy().into_owned();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "version = 1\n\n[[rule]]\nname = \"no telnet\"\nforbid_ports = [23]\n",
    )
    .unwrap();
    let policy_s = policy.to_string_lossy().into_owned();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let empty_s = empty.to_string_lossy().into_owned();
    for db in [&typo_s, &empty_s] {
        for args in [
            &["history", "--db", db][..],
            &["changes", "--db", db],
            &["changes", "--db", db, "--json"],
            &["hosts", "--db", db],
            &["services", "--db", db],
            &["diff", "--db", db, "--last"],
            &["check", "--policy", &policy_s, "--db", db],
        ] {
            let o = run(args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
            assert!(err(&o).contains(db.as_str()), "{args:?}: {}", err(&o));
            assert_eq!(
                err(&o).matches(db.as_str()).count(),
                1,
                "{args:?} names it once: {}",
                err(&o)
            );
            assert!(!out(&o).contains("No changes"), "{args:?}: {}", out(&o));
        }
    }
    assert!(!typo.exists(), "a reading command created the store");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
    let o = run(&["changes", "--db", &typo_s]);
    assert!(err(&o).contains("no such history store"), "{}", err(&o));
    // PORTOLAN_DB is read the same way.
    let o = Command::new(BIN)
        .args(["hosts"])
        .env("PORTOLAN_DB", &typo_s)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(!typo.exists());
    // import writes, so it creates the store.
    let o = run(&["import", "--db", &typo_s, &fixture("nmap-sv.xml")]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(run(&["changes", "--db", &typo_s]).status.success());
}

/// Many processes recording into one store at once: every run lands, complete.
#[test]
fn parallel_imports_into_one_store_all_land() {
    const N: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let text = std::fs::read_to_string(fixture("nmap-sv.xml")).unwrap();
    let files: Vec<String> = (0..N)
        .map(|i| {
            let p = dir.path().join(format!("night-{i}.xml"));
            std::fs::write(&p, &text).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect();
    // All start at once, on a store that does not exist yet.
    let children: Vec<std::process::Child> = files
        .iter()
        .map(|f| {
            Command::new(BIN)
                .args(["import", "--db", &db, f])
                .env_remove("PORTOLAN_DB")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
    }
    let h = json(&["history", "--db", &db, "--json"]);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), N, "{h:?}");
    assert!(h.iter().all(|s| s["complete"] == true), "{h:?}");
    let mut imported: Vec<&str> = h.iter().map(|s| s["file"].as_str().unwrap()).collect();
    imported.sort_unstable();
    let mut want: Vec<&str> = files.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(imported, want);
}

/// Many processes scanning into one store at once (`db`: a file or a PostgreSQL URL): every
/// scan lands, complete, and the inventory reads them.
fn parallel_scans_all_land(db: &str) {
    const N: usize = 6;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port_n = l.local_addr().unwrap().port();
    let port = port_n.to_string();
    let children: Vec<std::process::Child> = (0..N)
        .map(|_| {
            Command::new(BIN)
                .args(["-sT", "-p", &port, "--db", db, "127.0.0.1"])
                .env_remove("PORTOLAN_DB")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
    }
    let h = json(&["history", "--db", db, "--json"]);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), N, "{h:?}");
    assert!(
        h.iter()
            .all(|s| s["complete"] == true && s["hosts_up"] == 1),
        "{h:?}"
    );
    let svc = json(&["services", "--db", db, "--json"]);
    assert!(
        svc.as_array().unwrap().iter().any(|s| s["port"] == port_n),
        "{svc}"
    );
}

#[test]
fn parallel_scans_into_one_store_all_land() {
    let dir = tempfile::tempdir().unwrap();
    parallel_scans_all_land(&db(&dir));
}

/// The same on PostgreSQL (the test process's own cluster; "skipped" without root or
/// PostgreSQL, as in store_pg.rs).
#[test]
fn parallel_scans_into_one_postgres_store_all_land() {
    let Some(pg) = portolan_testpg::TestPg::shared() else {
        return;
    };
    parallel_scans_all_land(&pg.fresh_db("cli_parallel"));
}

/// `portolan serve`: a far address is refused without --auth (and without opening the
/// store); on loopback, pages answer over a real socket with their CSP, and a token file
/// is enforced.
#[test]
fn serve_answers_on_loopback_and_refuses_far_addresses_without_auth() {
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let o = run(&["serve", "--db", &db, "--listen", "0.0.0.0:0"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("without --auth FILE"), "{}", err(&o));
    assert!(!Path::new(&db).exists(), "the refusal opened the store");

    let o = run(&["import", "--db", &db, &fixture("nmap-sv.xml")]);
    assert!(o.status.success(), "{}", err(&o));
    let auth = dir.path().join("web.auth");
    std::fs::write(&auth, "token loopback-test-token-0123\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let served = common::serve(&[
        "--db".as_ref(),
        db.as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--auth".as_ref(),
        auth.as_os_str(),
    ]);
    // The address comes after a warning: the file is readable by others.
    assert!(
        served.said.contains("can be read by other users"),
        "no warning about a readable auth file"
    );
    let page = served.get(
        "/hosts",
        "Authorization: Bearer loopback-test-token-0123\r\n",
    );
    let refused = served.get("/hosts", "");
    served.stop();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page
        .to_lowercase()
        .contains("content-security-policy: default-src 'none'"));
    assert!(page.contains("<h1>Hosts</h1>"));
    assert!(!page.contains(&db), "the page shows the store's path");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}

/// `portolan serve --hash-password NAME` reads a password from standard input and prints
/// the auth file line; a server given that line lets the password in, and no other.
#[test]
fn serve_hash_password_makes_a_line_the_server_accepts() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let db = db(&dir);
    let o = run(&["import", "--db", &db, &fixture("nmap-sv.xml")]);
    assert!(o.status.success(), "{}", err(&o));
    let hash = |name: &str, input: &str| {
        let mut child = Command::new(BIN)
            .args(["serve", "--hash-password", name])
            .env_remove("PORTOLAN_DB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let o = hash("alice", "correct horse\n");
    assert!(o.status.success(), "{}", err(&o));
    let line = out(&o);
    assert!(line.starts_with("user alice $argon2id$v=19$"), "{line}");
    assert!(!line.contains("correct horse"));
    let o = hash("al:ice", "pw\n");
    assert_eq!(o.status.code(), Some(2));
    let o = hash("alice", "\n");
    assert_eq!(o.status.code(), Some(2), "an empty password was hashed");

    let auth = dir.path().join("web.auth");
    std::fs::write(&auth, &line).unwrap();
    let served = common::serve(&[
        "--db".as_ref(),
        db.as_ref(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--auth".as_ref(),
        auth.as_os_str(),
    ]);
    let fetch = |basic: &str| {
        served.get(
            "/api/overview",
            &format!("Authorization: Basic {basic}\r\n"),
        )
    };
    // "alice:correct horse" and "alice:correct hors" in base64.
    let right = fetch("YWxpY2U6Y29ycmVjdCBob3JzZQ==");
    let wrong = fetch("YWxpY2U6Y29ycmVjdCBob3Jz");
    served.stop();
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
}
