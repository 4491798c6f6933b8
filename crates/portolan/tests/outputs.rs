//! Outputs and the history store never lose data: every output and the store are opened
//! before an existing file is emptied, planted links are refused, a full disk stops the scan
//! with the other outputs valid, and a store that fails mid-scan leaves the outputs whole.
//! Packets only to 127.0.0.1 (the list scan sends none); the tmpfs and read-only mount tests
//! need root and say so when skipped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env_remove("PORTOLAN_DB").stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run portolan")
}

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The XML at `path` is a whole document that the readers take, with its run statistics.
fn assert_valid_xml(path: &Path) -> portolan_model::ScanRun {
    let run = portolan_report::read_any(path)
        .unwrap_or_else(|e| panic!("{}: not valid: {e}", path.display()));
    assert!(run.runstats.is_some(), "{}: no runstats", path.display());
    run
}

fn assert_valid_json(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not valid JSON: {e}", path.display()));
    assert!(v.is_object(), "{}", path.display());
}

const KEEP: &str = "<!-- last night's scan, keep me -->\n";

/// Every way an output or the store can fail to open leaves the existing files as they
/// were, and removes the files this run had just created.
#[test]
fn an_output_or_store_that_cannot_be_opened_touches_no_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let keep = dir.path().join("keepme.xml");
    let fresh = dir.path().join("fresh.gnmap");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "my notes, not a database\n".repeat(50)).unwrap();
    let (keep_s, fresh_s, notes_s) = (s(&keep), s(&fresh), s(&notes));
    let cases: [(&[&str], &str); 3] = [
        (
            &["-oE", "/nonexistent/e.ndjson"],
            "cannot open output file \"/nonexistent/e.ndjson\"",
        ),
        (&["--db", "/nonexistent/h.db"], "/nonexistent/h.db"),
        (&["--db", &notes_s], "not an SQLite database"),
    ];
    for (bad, needle) in cases {
        std::fs::write(&keep, KEEP).unwrap();
        let mut args = vec!["-sT", "-p", "1", "-oX", &keep_s, "-oG", &fresh_s];
        args.extend_from_slice(bad);
        args.push("127.0.0.1");
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(needle), "{args:?}: {}", err(&o));
        assert_eq!(
            std::fs::read_to_string(&keep).unwrap(),
            KEEP,
            "{args:?} emptied an existing output"
        );
        assert!(!fresh.exists(), "{args:?} left the file it created");
    }
    assert_eq!(
        std::fs::read_to_string(&notes).unwrap(),
        "my notes, not a database\n".repeat(50)
    );
    // A store another writer holds past the scan's wait is refused before anything is
    // emptied.
    let db = s(&dir.path().join("h.db"));
    drop(portolan_store::Store::open(&db).unwrap());
    let holder = portolan_store::Store::open(&db).unwrap();
    holder
        .connection()
        .execute_batch("BEGIN IMMEDIATE")
        .unwrap();
    std::fs::write(&keep, KEEP).unwrap();
    let o = run_env(
        &["-sT", "-p", "1", "-oX", &keep_s, "--db", &db, "127.0.0.1"],
        &[("PORTOLAN_DB_WAIT", "0.3")],
    );
    holder.connection().execute_batch("ROLLBACK").unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("is locked"), "{}", err(&o));
    assert!(err(&o).contains(&db), "{}", err(&o));
    assert_eq!(std::fs::read_to_string(&keep).unwrap(), KEEP);
    // The store's error is said once, not repeated by each layer under it.
    let o = run(&["-sT", "-p", "1", "--db", "/nonexistent/h.db", "127.0.0.1"]);
    assert_eq!(
        err(&o).matches("/nonexistent/h.db").count(),
        1,
        "{}",
        err(&o)
    );
    assert_eq!(err(&o).matches("nonexistent").count(), 2, "{}", err(&o));

    // Once everything opens, the existing file is replaced as before.
    let o = run(&["-sT", "-p", "1", "-oX", &keep_s, "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(!std::fs::read_to_string(&keep).unwrap().contains(KEEP));
    assert_valid_xml(&keep);
}

/// A store locked by another writer mid-scan, for longer than the scan waits: reported
/// once, the scan goes on, its outputs are whole, and it exits 1.
#[test]
fn a_store_locked_mid_scan_leaves_the_outputs_whole_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("h.db"));
    let o = run(&["-sT", "-p", "1", "--db", &db, "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (xml, json) = (dir.path().join("s.xml"), dir.path().join("s.json"));
    // A full-range scan at a bounded rate: seconds between recording its start and its host.
    let child = Command::new(BIN)
        .args(["-sT", "-p-", "--max-rate", "40000", "--db", &db])
        .args(["-oX", &s(&xml), "-oJ", &s(&json), "127.0.0.1"])
        .env_remove("PORTOLAN_DB")
        .env("PORTOLAN_DB_WAIT", "0.5")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the scan is recorded as begun, another connection takes the write lock.
    let holder = portolan_store::Store::open_existing(&db).unwrap();
    let t = std::time::Instant::now();
    while holder.history().unwrap().len() < 2 {
        assert!(t.elapsed().as_secs() < 30, "the scan never began");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    holder
        .connection()
        .execute_batch("BEGIN IMMEDIATE")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    holder.connection().execute_batch("ROLLBACK").unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert_eq!(
        err(&o).matches("cannot record the scan").count(),
        1,
        "said once: {}",
        err(&o)
    );
    assert!(err(&o).contains(&db), "{}", err(&o));
    let run = assert_valid_xml(&xml);
    assert_eq!(run.runstats.unwrap().exit, portolan_model::RunExit::Success);
    assert_valid_json(&json);
    let open: Vec<u16> = run.hosts[0]
        .ports
        .iter()
        .filter(|p| p.state == portolan_model::PortState::Open)
        .map(|p| p.portid)
        .collect();
    assert!(open.contains(&l.local_addr().unwrap().port()), "{open:?}");
    // The store is sound, and the scan it could not finish recording stays incomplete.
    let h = holder.history().unwrap();
    assert_eq!(h.len(), 2);
    assert!(h[0].complete && !h[1].complete, "{h:?}");
}

#[test]
fn outputs_refuse_a_planted_symbolic_link() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("only-root-writes-this");
    std::fs::write(&target, "precious\n").unwrap();
    let link = dir.path().join("out.xml");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let dangling = dir.path().join("out.json");
    std::os::unix::fs::symlink(dir.path().join("not-yet"), &dangling).unwrap();
    for (flag, path) in [("-oX", &link), ("-oJ", &dangling)] {
        let o = run(&["-sT", "-p", "1", flag, &s(path), "127.0.0.1"]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", err(&o));
        assert!(err(&o).contains("symbolic link"), "{flag}: {}", err(&o));
        assert!(err(&o).contains(&s(path)), "{flag}: {}", err(&o));
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert!(!dir.path().join("not-yet").exists());
    // The links of /dev are the system's, and `-oX /dev/stdout` is a common idiom.
    let o = run(&["-sT", "-p", "1", "-oX", "/dev/stdout", "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("<nmaprun") && text.contains("</nmaprun>"),
        "{text}"
    );
    // With --append-output too.
    let o = run(&[
        "-sT",
        "-p",
        "1",
        "--append-output",
        "-oX",
        &s(&link),
        "127.0.0.1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
}

/// Mounts a tmpfs of `size` at `dir` for the life of the guard.
struct Mount(std::path::PathBuf);

impl Mount {
    fn new(dir: &Path, args: &[&str]) -> Option<Mount> {
        let ok = Command::new("mount")
            .args(args)
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A full disk under one output: said once, the scan stops (exit 1), and the outputs on
/// other disks are closed validly.
#[test]
fn a_full_disk_stops_the_scan_once_with_the_other_outputs_valid() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let Some(_m) = Mount::new(&small, &["-t", "tmpfs", "-o", "size=64k", "tmpfs"]) else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    let (xml, json) = (dir.path().join("l.xml"), dir.path().join("l.json"));
    // A list scan of a /16 sends nothing and writes far more than 64 KiB of normal output.
    let o = run(&[
        "-sL",
        "-n",
        "-oN",
        &s(&small.join("out.nmap")),
        "-oX",
        &s(&xml),
        "-oJ",
        &s(&json),
        "198.18.0.0/16",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let e = err(&o);
    assert_eq!(e.matches("No space left on device").count(), 1, "{e}");
    assert!(e.contains("out.nmap"), "{e}");
    let run = assert_valid_xml(&xml);
    assert!(!run.hosts.is_empty() && run.hosts.len() < 65536);
    assert_eq!(
        run.runstats.unwrap().exit,
        portolan_model::RunExit::Error,
        "marked as stopped"
    );
    assert_valid_json(&json);
}

/// A store on a read-only file system cannot be written: refused before the scan, the
/// existing output untouched.
#[test]
fn a_read_only_store_is_refused_before_any_output_is_emptied() {
    if !is_root() {
        eprintln!("skipped: a read-only bind mount needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let db = s(&ro.join("h.db"));
    let o = run(&["-sT", "-p", "1", "--db", &db, "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let Some(_bind) = Mount::new(&ro, &["--bind", &s(&ro)]) else {
        eprintln!("skipped: cannot bind-mount here");
        return;
    };
    let remount = Command::new("mount")
        .args(["-o", "remount,ro,bind"])
        .arg(&ro)
        .status();
    assert!(remount.is_ok_and(|s| s.success()));
    let keep = dir.path().join("keepme.xml");
    std::fs::write(&keep, KEEP).unwrap();
    let o = run(&["-sT", "-p", "1", "--db", &db, "-oX", &s(&keep), "127.0.0.1"]);
    assert_ne!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains(&db), "{}", err(&o));
    if o.status.code() == Some(2) {
        assert_eq!(std::fs::read_to_string(&keep).unwrap(), KEEP);
    } else {
        assert_valid_xml(&keep);
    }
}

/// As root, a scan gives up root before its first packet, after opening its outputs: in a
/// folder only root may enter, its XML and JSON, the audit log, a new store and one an
/// earlier scan left (its -wal file closed and gone) are all written to the end by the
/// process that is root no more.
#[test]
fn outputs_opened_as_root_are_written_after_root_is_dropped() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        eprintln!("skipped: dropping root needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let p = |f: &str| s(&dir.path().join(f));
    let (old_db, new_db, audit) = (p("old.db"), p("new.db"), p("state/audit.log"));
    let (xml, json) = (p("scan.xml"), p("scan.json"));
    let base = [
        "-sT",
        "-n",
        "-Pn",
        "-p",
        &port,
        "127.0.0.1",
        "--audit-log",
        &audit,
    ];
    let mut first = base.to_vec();
    first.extend(["--db", &old_db, "--keep-privileges", "-v"]);
    let o = run(&first);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("Dropped privileges"), "{}", err(&o));
    assert!(!Path::new(&format!("{old_db}-wal")).exists());
    for db in [&old_db, &new_db] {
        let mut args = base.to_vec();
        args.extend(["--db", db.as_str(), "-oX", &xml, "-oJ", &json, "-v"]);
        let o = run_env(&args, &[("SUDO_UID", ""), ("SUDO_GID", "")]);
        assert!(o.status.success(), "{db}: {}", err(&o));
        assert!(
            err(&o).contains("Dropped privileges to nobody (uid "),
            "{}",
            err(&o)
        );
        let run = assert_valid_xml(Path::new(&xml));
        assert_eq!(run.hosts[0].ports[0].state.as_str(), "open");
        assert_valid_json(Path::new(&json));
        for f in [&xml, &json, db, &format!("{db}-wal"), &audit] {
            let meta = std::fs::metadata(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(meta.uid(), 0, "{f}: made by root before the drop");
        }
    }
    let history = |db: &str| -> Vec<serde_json::Value> {
        let o = run(&["history", "--db", db, "--json"]);
        assert!(o.status.success(), "{}", err(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let (old, new) = (history(&old_db), history(&new_db));
    assert_eq!((old.len(), new.len()), (2, 1), "{old:?} {new:?}");
    assert!(old.iter().chain(&new).all(|s| s["complete"] == true));
    let log = std::fs::read_to_string(&audit).unwrap();
    let outcomes: Vec<String> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["outcome"].to_string())
        .collect();
    assert_eq!(outcomes, vec!["\"completed\""; 3], "{log}");
}
