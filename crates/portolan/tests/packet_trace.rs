//! `--packet-trace` end to end, on 127.0.0.1 only: a SYN scan of a port this test listens
//! on and of one it does not prints SENT and RCVD lines with the right ports and flags, in
//! the shapes nmap prints for the same scan (fields, not values). The SYN scan needs root;
//! without it the test says "skipped", unless PORTOLAN_LAB=required (then it fails).

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{bin} runs: {e}"))
}

/// The trace lines of an output (SENT/RCVD).
fn trace_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("SENT (") || l.starts_with("RCVD ("))
        .map(str::to_string)
        .collect()
}

/// A line's shape: every run of digits as `#`, so that times, ports, ids and sequence
/// numbers compare equal and the fields and their order do not.
fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// A port nothing listens on: one the kernel just gave a listener that is now closed.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binds");
    l.local_addr().expect("address").port()
}

/// A port this test listens on (open while the listener lives) and one nothing listens on.
fn open_and_closed_ports() -> (TcpListener, u16, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let open = listener.local_addr().expect("address").port();
    (listener, open, closed_port())
}

#[test]
fn syn_scan_on_loopback_is_traced_as_nmap_traces_it() {
    if !is_root() {
        if std::env::var("PORTOLAN_LAB").as_deref() == Ok("required") {
            panic!("the --packet-trace test is required but needs root");
        }
        eprintln!("skipped: the --packet-trace SYN scan needs root");
        return;
    }
    let (listener, open, closed) = open_and_closed_ports();
    let ports = format!("{open},{closed}");
    let args = ["-sS", "-n", "-p", &ports, "--packet-trace", "127.0.0.1"];
    let out = run(BIN, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = trace_lines(&out);
    let sent_to = |port: u16| {
        lines.iter().any(|l| {
            l.starts_with("SENT (")
                && l.contains(&format!(" > 127.0.0.1:{port} S ttl="))
                && l.ends_with("win=1024 <mss 1460>")
        })
    };
    assert!(sent_to(open) && sent_to(closed), "{lines:#?}");
    let answered = |port: u16, flags: &str| {
        lines.iter().any(|l| {
            l.starts_with("RCVD (")
                && l.contains(&format!(" TCP 127.0.0.1:{port} > 127.0.0.1:"))
                && l.contains(&format!(" {flags} ttl="))
        })
    };
    assert!(answered(open, "SA"), "no SYN/ACK from {open}: {lines:#?}");
    assert!(
        answered(closed, "RA"),
        "no RST/ACK from {closed}: {lines:#?}"
    );
    // The report still follows, after the trace.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{open}/tcp open")), "{stdout}");
    drop(listener);

    // Nmap's lines for the same scan, where nmap is installed: every shape we print is one
    // of its shapes.
    if Command::new("nmap").arg("-V").output().is_err() {
        eprintln!("nmap not installed: line shapes not compared");
        return;
    }
    let (listener, open, closed) = open_and_closed_ports();
    let ports = format!("{open},{closed}");
    let args = ["-sS", "-n", "-p", &ports, "--packet-trace", "127.0.0.1"];
    let ours: BTreeSet<String> = trace_lines(&run(BIN, &args))
        .iter()
        .map(|l| shape(l))
        .collect();
    let theirs: BTreeSet<String> = trace_lines(&run("nmap", &args))
        .iter()
        .map(|l| shape(l))
        .collect();
    drop(listener);
    assert!(!ours.is_empty());
    let missing: Vec<&String> = ours.difference(&theirs).collect();
    assert!(
        missing.is_empty(),
        "shapes nmap does not print: {missing:#?}\nnmap's: {theirs:#?}"
    );
}

#[test]
fn connect_scan_says_it_is_not_traced() {
    // -sT needs no root: the scan runs and the note is on stderr, once.
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
    let port = listener.local_addr().expect("address").port().to_string();
    let out = run(
        BIN,
        &[
            "-sT",
            "-Pn",
            "-n",
            "-p",
            &port,
            "--packet-trace",
            "127.0.0.1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let note = "--packet-trace: only raw packets are traced; connect() probes are not";
    assert_eq!(stderr.matches(note).count(), 1, "{stderr}");
    assert!(trace_lines(&out).is_empty());
}
