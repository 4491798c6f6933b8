//! `--resume FILE` on loopback (connect scans, no privileges): finished hosts are carried
//! over unchanged and not scanned again, hosts cut short are scanned again, and the resumed
//! output is whole, like an uninterrupted run's.

use portolan_model::{OutputOptions, RunExit, ScanRun, Sink};
use portolan_report::read_log;
use portolan_report::xml::XmlWriter;
use portolan_report::xml_reader::read_xml_file;
use portolan_report::{GrepableWriter, NormalWriter};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("PORTOLAN_AUDIT_LOG", "none")
        .stdin(Stdio::null())
        .output()
        .expect("run portolan")
}

fn states(run: &ScanRun, ip: &str) -> Vec<(u16, String)> {
    let h = run.hosts.iter().find(|h| h.addr_str() == ip).expect(ip);
    h.ports
        .iter()
        .map(|p| (p.portid, p.state.as_str().to_string()))
        .collect()
}

/// Writes `full` (a finished run) again as an interrupted run would have: exit "error",
/// the host `dropped` not reached, `cut` cut short to its first port, and `kept`'s start
/// time marked so a rescan would show.
fn interrupt(full: &Path, kept: &str, cut: &str, dropped: &str) {
    let mut run = read_xml_file(full).unwrap();
    run.hosts.retain(|h| h.addr_str() != dropped);
    for h in &mut run.hosts {
        if h.addr_str() == cut {
            h.extraports.clear();
            h.ports.truncate(1);
        }
        if h.addr_str() == kept {
            h.starttime = Some(1000);
        }
    }
    if let Some(s) = run.runstats.as_mut() {
        s.exit = RunExit::Error;
    }
    let mut out = Vec::new();
    {
        let mut w = XmlWriter::new(&mut out, OutputOptions::default());
        w.begin(&run).unwrap();
        for h in &run.hosts {
            w.host(&run, h).unwrap();
        }
        w.end(&run).unwrap();
    }
    std::fs::write(full, out).unwrap();
}

#[test]
fn resume_keeps_finished_hosts_and_scans_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let open = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ports = format!("{port},{closed},1-40");
    let full = dir.path().join("full.xml");
    let f = full.to_str().unwrap();
    let o = run(&[
        "-sT",
        "-Pn",
        "-n",
        "-p",
        &ports,
        "-oX",
        f,
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = read_xml_file(&full).unwrap();
    assert_eq!(whole.hosts.len(), 3);

    // The interrupted run wrote its output under the name its command line gives (-oX full.xml).
    interrupt(&full, "127.0.0.1", "127.0.0.2", "127.0.0.3");
    let before = read_xml_file(&full).unwrap();
    assert_eq!(before.hosts.len(), 2);
    assert_eq!(before.runstats.as_ref().unwrap().exit, RunExit::Error);

    let o = run(&["--resume", f]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("1 hosts finished are kept, 1 cut short"),
        "{err}"
    );
    let resumed = read_xml_file(&full).unwrap();
    assert_eq!(resumed.runstats.as_ref().unwrap().exit, RunExit::Success);
    assert_eq!(
        resumed.args, whole.args,
        "the original command line is kept"
    );
    assert_eq!(
        resumed.start, whole.start,
        "the original start time is kept"
    );
    let addrs: Vec<&str> = resumed.hosts.iter().map(|h| h.addr_str()).collect();
    assert_eq!(addrs[0], "127.0.0.1", "finished hosts come first");
    assert_eq!(addrs.len(), 3);
    // Not scanned again: its marked start time is as the interrupted file had it.
    assert_eq!(resumed.hosts[0].starttime, before.hosts[0].starttime);
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        assert_eq!(states(&resumed, ip), states(&whole, ip), "{ip}");
    }
    let stats = resumed.runstats.unwrap();
    assert_eq!((stats.hosts_up, stats.hosts_total), (3, 3));
}

/// `--resume` from grepable output (-oG): the same as from XML, with the command line and
/// start time from its header, the finished hosts carried over as the format has them.
#[test]
fn resume_from_grepable_output() {
    resume_from_log("-oG");
}

/// `--resume` from normal output (-oN), as from grepable output.
#[test]
fn resume_from_normal_output() {
    resume_from_log("-oN");
}

/// A scan of three loopback hosts with `-oX` and `flag` (-oG or -oN); that file rewritten
/// as an interrupt leaves it, then resumed from.
fn resume_from_log(flag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let open = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = open.local_addr().unwrap().port();
    let ports = format!("{port},1-40");
    let (xml, log) = (dir.path().join("full.xml"), dir.path().join("full.log"));
    let (x, l) = (xml.to_str().unwrap(), log.to_str().unwrap());
    let targets = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
    let mut args = vec!["-sT", "-Pn", "-n", "-p", &ports, "-oX", x, flag, l];
    args.extend(targets);
    let o = run(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let whole = read_xml_file(&xml).unwrap();
    let whole_log = read_log(&log).unwrap();
    assert_eq!(whole_log.args, whole.args);
    assert_eq!(whole_log.start, whole.start);

    // What an interrupt leaves: 127.0.0.1 finished (its open port's service renamed, so
    // that a rescan would show), 127.0.0.2 cut short, 127.0.0.3 not reached, and the
    // "stopped" trailer.
    let mut cut = whole_log.clone();
    cut.hosts.retain(|h| h.addr_str() != "127.0.0.3");
    for h in &mut cut.hosts {
        if h.addr_str() == "127.0.0.2" {
            h.extraports.clear();
            h.ports.truncate(1);
        }
        if h.addr_str() == "127.0.0.1" {
            let p = h.ports.iter_mut().find(|p| p.portid == port).unwrap();
            p.service = Some(portolan_model::Service::from_table("marked"));
        }
    }
    let stats = cut.runstats.as_mut().unwrap();
    stats.exit = RunExit::Error;
    stats.errormsg = Some("Interrupted by the user (SIGINT)".into());
    let text = if flag == "-oG" {
        let mut w = GrepableWriter::new(Vec::new(), OutputOptions::default());
        write_run(&mut w, &cut);
        w.into_inner()
    } else {
        let mut w = NormalWriter::new(Vec::new(), OutputOptions::default(), true);
        write_run(&mut w, &cut);
        w.into_inner()
    };
    assert!(String::from_utf8_lossy(&text).contains("# Portolan stopped at "));
    std::fs::write(&log, text).unwrap();

    let o = run(&["--resume", l]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{flag}: {err}");
    assert!(
        err.contains("1 hosts finished are kept, 1 cut short"),
        "{flag}: {err}"
    );
    // Both outputs of the command line are whole again, with its start and command line.
    let resumed = read_xml_file(&xml).unwrap();
    let resumed_log = read_log(&log).unwrap();
    for (what, r) in [("xml", &resumed), (flag, &resumed_log)] {
        assert_eq!(
            r.runstats.as_ref().unwrap().exit,
            RunExit::Success,
            "{what}"
        );
        assert_eq!(r.args, whole.args, "{what}");
        assert_eq!(r.start, whole.start, "{what}");
        let addrs: Vec<&str> = r.hosts.iter().map(|h| h.addr_str()).collect();
        assert_eq!(addrs[0], "127.0.0.1", "{what}: finished hosts come first");
        assert_eq!(addrs.len(), 3, "{what}");
        for ip in targets {
            assert_eq!(states(r, ip), states(&whole, ip), "{what}: {ip}");
        }
        let kept = r.hosts[0].ports.iter().find(|p| p.portid == port).unwrap();
        assert_eq!(
            kept.service.as_ref().map(|s| s.name.as_str()),
            Some("marked"),
            "{what}: the finished host was scanned again"
        );
    }
}

fn write_run(w: &mut dyn Sink, run: &ScanRun) {
    w.begin(run).unwrap();
    for h in &run.hosts {
        w.host(run, h).unwrap();
    }
    w.end(run).unwrap();
}

#[test]
fn resume_refuses_other_options_and_finished_scans() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("done.xml");
    let fs = f.to_str().unwrap();
    let o = run(&["-sL", "-n", "-oX", fs, "198.18.0.1"]);
    assert!(o.status.success());
    let o = run(&["--resume", fs]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to resume"));
    let o = run(&["--resume", fs, "-p", "80"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no other option"));
    let o = run(&["--resume", "/nonexistent/scan.xml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/scan.xml"));
}

/// `--resume --db PATH`: the store's latest incomplete scan, interrupted for real (SIGINT
/// between the first host's end and the second's), is finished; the store then holds a
/// complete scan with both hosts, and the first was not scanned again.
#[test]
fn resume_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.db");
    let dbs = db.to_str().unwrap();
    // Ten ports 200 ms apart: about 2 s a host, one host at a time.
    let args = [
        "-sT",
        "-Pn",
        "-n",
        "-p",
        "1-10",
        "--scan-delay",
        "200ms",
        "--max-hostgroup",
        "1",
        "--db",
        dbs,
        "127.0.0.1",
        "127.0.0.2",
    ];
    let child = Command::new(BIN)
        .args(args)
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
    assert_eq!(
        o.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = run(&["--resume", "--db", dbs]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("Resuming --db"), "{err}");
    let o = run(&["history", "--db", dbs, "--json"]);
    let history: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let scans = history.as_array().expect("a list of scans");
    assert_eq!(scans.len(), 2, "{history}");
    let last = scans.last().unwrap();
    assert_eq!(last["complete"], true, "{history}");
    assert_eq!(last["hosts_total"], 2, "{history}");
    assert_eq!(last["hosts_up"], 2, "{history}");
    assert!(
        err.contains("1 hosts finished are kept"),
        "the first host was scanned again: {err}"
    );
}
