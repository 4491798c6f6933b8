//! The binary's behaviour on bad input and on a loopback scan. No privileges, and no
//! packet to anything but 127.0.0.1.

use portolan_model::PortState;
use portolan_report::xml_reader::read_xml_file;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run portolan")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Refused with exit 2 and a message naming `needle`; nothing scanned.
fn refused(args: &[&str], needle: &str) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        stderr(&o)
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("scan report"),
        "{args:?} scanned anyway"
    );
}

#[test]
fn malformed_targets_name_the_bad_token() {
    refused(&["-p", "80", "127.0.0.1", "10.0.0.300"], "10.0.0.300");
    refused(&["-p", "80", "198.18.0.0/33"], "198.18.0.0/33");
    refused(&["-p", "80", "198.18.0.5-3"], "198.18.0.5-3");
    refused(&["-p", "80", "fd00::/120"], "-6");
}

#[test]
fn malformed_ports_and_values_give_the_valid_range() {
    refused(&["-p", "70000", "127.0.0.1"], "70000");
    refused(&["-p", "70000", "127.0.0.1"], "0-65535");
    refused(&["-T9", "127.0.0.1"], "0 (paranoid) to 5 (insane)");
    refused(&["-p", "nosuchservice", "127.0.0.1"], "nosuchservice");
    refused(&["--max-retries", "x", "127.0.0.1"], "--max-retries");
    refused(&["--host-timeout", "5y", "127.0.0.1"], "5y");
}

#[test]
fn unsupported_and_unknown_flags_are_refused() {
    refused(&["-sF", "127.0.0.1"], "not supported yet: -sF");
    refused(&["-sI", "zombie", "127.0.0.1"], "not supported yet: -sI");
    refused(
        &["--frobnicate", "127.0.0.1"],
        "unrecognized option '--frobnicate'",
    );
}

#[test]
fn missing_input_file_and_unwritable_output_are_reported_first() {
    refused(
        &["-p", "80", "-iL", "/nonexistent/targets.txt"],
        "/nonexistent/targets.txt",
    );
    refused(
        &["-p", "80", "-oX", "/nonexistent/dir/out.xml", "127.0.0.1"],
        "/nonexistent/dir/out.xml",
    );
    refused(
        &[
            "-p",
            "80",
            "--excludefile",
            "/nonexistent/ex.txt",
            "127.0.0.1",
        ],
        "/nonexistent/ex.txt",
    );
}

#[test]
fn help_and_version() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let h = String::from_utf8_lossy(&o.stdout);
    assert!(h.contains("--max-retries") && h.contains("-oJ") && h.contains("[not supported yet]"));
    let o = run(&["--version"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("Portolan version"));
}

#[test]
fn loopback_scan_finds_a_listener_in_every_output() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("scan-%Y").to_string_lossy().into_owned();
    let ports = format!("{port},1-100");
    let o = run(&[
        "-sT",
        "-Pn",
        "-n",
        "-p",
        &ports,
        "-oA",
        &base,
        "-oJ",
        &format!("{base}.json"),
        "127.0.0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let year = chrono::Local::now().format("%Y").to_string();
    let expanded = dir.path().join(format!("scan-{year}"));
    let xml = format!("{}.xml", expanded.display());
    let run = read_xml_file(&xml).expect("XML written under the expanded name");
    let host = &run.hosts[0];
    let p = host
        .ports
        .iter()
        .find(|p| p.portid == port)
        .expect("listener reported");
    assert_eq!(p.state, PortState::Open);
    assert_eq!(p.reason, "syn-ack");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(&format!("{port}/tcp")), "{stdout}");
    for ext in ["nmap", "gnmap", "json"] {
        let text = std::fs::read_to_string(format!("{}.{ext}", expanded.display())).unwrap();
        assert!(text.contains(&port.to_string()), "{ext} lacks the port");
    }
}

#[test]
fn open_hides_closed_ports_and_xml_to_stdout_is_alone() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ports = format!("{port},1-30");
    let o = run(&["-Pn", "-n", "--open", "-p", &ports, "-oX", "-", "127.0.0.1"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("<?xml"), "stdout must hold only XML: {out}");
    assert!(out.contains(&format!("portid=\"{port}\"")));
    assert!(
        !out.contains("state=\"closed\" reason"),
        "closed ports listed with --open"
    );
}

/// -oE - : stdout holds only NDJSON events, one per open port, with ECS names.
#[test]
fn events_to_stdout_are_one_line_per_open_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ports = format!("{port},1-20");
    let o = run(&["-sT", "-Pn", "-n", "-p", &ports, "-oE", "-", "127.0.0.1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(events.len(), 1, "{out}");
    let e = &events[0];
    assert_eq!(e["event"]["action"], "port-open");
    assert_eq!(e["destination"]["ip"], "127.0.0.1");
    assert_eq!(e["destination"]["port"], port);
    assert_eq!(e["network"]["transport"], "tcp");
    assert_eq!(e["portolan"]["reason"], "syn-ack");
}

#[test]
fn no_targets_warns_and_succeeds() {
    let o = run(&["-p", "80"]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("No targets were specified"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 IP addresses (0 hosts up)"));
}

/// Regression: -sL listed no target in normal or grepable output (hosts in state
/// "unknown" were dropped); Nmap names each one.
#[test]
fn list_scan_names_every_target_and_sends_nothing() {
    let o = run(&["-sL", "-n", "127.0.0.0/31"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Portolan scan report for 127.0.0.0\n"),
        "{out}"
    );
    assert!(
        out.contains("Portolan scan report for 127.0.0.1\n"),
        "{out}"
    );
    assert!(out.contains("2 IP addresses (0 hosts up)"), "{out}");
    let o = run(&["-sL", "-n", "127.0.0.0/31", "-oG", "-"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Host: 127.0.0.1 ()\tStatus: Unknown\n"),
        "{out}"
    );
}

/// With only 100 descriptors allowed (hard limit), the scan sizes its concurrency to
/// them instead of failing with "too many open files".
#[test]
fn low_descriptor_limit_still_scans_everything() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!("ulimit -n 100 && exec {BIN} -sT -Pn -n -p {port},1-3000 -oX - 127.0.0.1");
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&format!("portid=\"{port}\"><state state=\"open\"")),
        "{out}"
    );
    assert!(!stderr(&o).to_lowercase().contains("too many open files"));
    let closed: u32 = out
        .split("<extraports state=\"closed\" count=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(closed >= 2900, "closed ports counted: {closed}");
}

/// Without raw-socket privileges -sS says how to get them, and the default scan falls back
/// to a connect scan, as Nmap's does. Run as "nobody" when the tests run as root.
#[test]
fn unprivileged_syn_scan_is_refused_with_advice_and_default_falls_back() {
    if !is_root() {
        // Already unprivileged: run directly.
        let o = run(&["-sS", "-p", "80", "127.0.0.1"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("CAP_NET_RAW") && stderr(&o).contains("-sT"));
        return;
    }
    let o = as_nobody(&["-sS", "-p", "80", "-n", "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("CAP_NET_RAW") && e.contains("setcap") && e.contains("-sT"),
        "{e}"
    );
    let o = as_nobody(&["-p", "80", "-n", "-Pn", "-oX", "-", "127.0.0.1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("<scaninfo type=\"connect\""));
}

extern "C" {
    fn geteuid() -> u32;
}

/// -sV with a probe database given by --datadir: a malformed line is reported with its
/// line number, the rest loads, and a banner on loopback is named from it.
#[test]
fn version_scan_reports_a_bad_probe_line_and_uses_the_rest() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let _ = std::io::Write::write_all(&mut s, b"SSH-2.0-TestSSH_4.2 lab\r\n");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("nmap-service-probes"),
        "# test database\nProbe TCP NULL q||\nmatch ssh m|^SSH-([\\d.]+)-TestSSH_([\\d.]+)| p/TestSSH/ v/$2/ i/protocol $1/\nmatch broken m|(unclosed| p/x/\n",
    )
    .unwrap();
    let datadir = dir.path().to_string_lossy().into_owned();
    let ports = port.to_string();
    let o = run(&[
        "-sT",
        "-sV",
        "-Pn",
        "-n",
        "--datadir",
        &datadir,
        "-p",
        &ports,
        "-oX",
        "-",
        "127.0.0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 4"), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(r#"name="ssh" product="TestSSH" version="4.2" extrainfo="protocol 2.0""#),
        "{out}"
    );
}

/// Portolan's own commands, each with the options its --help must name.
const SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "diff",
        &[
            "-v, --verbose",
            "--text",
            "--xml",
            "--json",
            "--db PATH",
            "--last",
        ],
    ),
    ("check", &["--policy FILE", "--json", "--db PATH"]),
    ("import", &["--db PATH", "--json"]),
    ("history", &["--db PATH", "--json"]),
    (
        "changes",
        &[
            "--db PATH",
            "--since AGE",
            "--target CIDR",
            "--json",
            "--events",
        ],
    ),
    ("hosts", &["--db PATH", "--json"]),
    (
        "services",
        &["--db PATH", "--port N", "--product TEXT", "--json"],
    ),
];

fn run_without_db(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PORTOLAN_DB")
        .stdin(Stdio::null())
        .output()
        .expect("run portolan")
}

#[test]
fn every_subcommand_answers_help_with_its_own_usage() {
    let top = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    for (cmd, options) in SUBCOMMANDS {
        assert!(
            top.lines().any(|l| l.starts_with(&format!("  {cmd} "))),
            "top-level --help misses {cmd}"
        );
        let long = run_without_db(&[cmd, "--help"]);
        assert_eq!(
            long.status.code(),
            Some(0),
            "{cmd} --help: {}",
            stderr(&long)
        );
        let text = String::from_utf8_lossy(&long.stdout).into_owned();
        assert!(
            text.starts_with(&format!("Usage: portolan {cmd} ")),
            "{cmd}: {text}"
        );
        for o in options.iter().chain(&["-h, --help"]) {
            assert!(text.contains(o), "{cmd} --help does not name {o}: {text}");
        }
        let short = run_without_db(&[cmd, "-h"]);
        assert_eq!(short.status.code(), Some(0), "{cmd} -h");
        assert_eq!(short.stdout, long.stdout, "{cmd} -h");
    }
}

#[test]
fn every_subcommand_refuses_an_unknown_option_by_name() {
    for (cmd, _) in SUBCOMMANDS {
        for bad in ["--frobnicate", "-Z"] {
            let o = run_without_db(&[cmd, bad, "a.xml", "b.xml"]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {bad}: {}", stderr(&o));
            let e = stderr(&o);
            assert!(
                e.contains(&format!("portolan {cmd}: unknown option {bad}")),
                "{cmd} {bad}: {e}"
            );
            assert!(o.stdout.is_empty(), "{cmd} {bad}");
        }
    }
    // A value where none is taken, and none where one is needed.
    let o = run_without_db(&["history", "--json=yes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--json"), "{}", stderr(&o));
    let o = run_without_db(&["services", "--port"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--port needs a value"),
        "{}",
        stderr(&o)
    );
}

/// Messages that misled, each with what it says now: `-oj` was "unrecognized option '-o'";
/// `-sU` and raw pings without privileges suggested "or use -sT", which does neither; an
/// empty `--exclude` was accepted, excluding nothing.
#[test]
fn misleading_messages_say_what_works() {
    refused(
        &["-oj", "x.json", "127.0.0.1"],
        "unrecognized option '-oj'; did you mean '-oJ'?",
    );
    refused(&["--exclude", "", "127.0.0.1"], "--exclude");
    refused(
        &["--exclude=,", "127.0.0.1"],
        "names no host or network to exclude",
    );

    // --unprivileged stands for a user without raw sockets, root or not.
    for (args, needles) in [
        (
            &["--unprivileged", "-sU", "-p", "53", "127.0.0.1"][..],
            &["-sU:", "UDP scanning needs raw sockets"][..],
        ),
        (
            &["--unprivileged", "-PE", "-sn", "127.0.0.1"],
            &["-PE sends raw packets", "connect ping (-PS", "-Pn"],
        ),
        (
            &["--unprivileged", "-sS", "-p", "80", "127.0.0.1"],
            &["-sS:", "or use -sT (connect scan)"],
        ),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        for n in needles {
            assert!(e.contains(n), "{args:?}: {e:?} lacks {n:?}");
        }
        if args.contains(&"-sU") || args.contains(&"-PE") {
            assert!(!e.contains("or use -sT"), "{args:?}: {e}");
        }
    }
}

/// `--help` did not mention -sV nor -sC, nor the subcommands; each subcommand has its help.
#[test]
fn help_names_version_detection_scripts_and_every_command() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "-sV: probe open ports",
        "-sC: run Nmap's default scripts",
        "--generate",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
    for cmd in [
        "diff", "check", "import", "history", "changes", "hosts", "services",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "--help lacks {cmd}"
        );
        let o = run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd} --help: {}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.starts_with(&format!("Usage: portolan {cmd} ")),
            "{text}"
        );
    }
}

/// Regression: `portolan -sL $'\xff'` panicked in std::env::args (exit 101). A word that
/// is not UTF-8 is refused with exit 2 and a message, like any other bad argument.
#[test]
fn non_utf8_argument_is_refused_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let o = Command::new(BIN)
        .arg("-sL")
        .arg(std::ffi::OsStr::from_bytes(b"\xff"))
        .stdin(Stdio::null())
        .output()
        .expect("run portolan");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("not valid UTF-8") && !e.contains("panicked"),
        "{e}"
    );
}

/// Regression: where stderr is not a terminal (cron, systemd), a scan printed a status line
/// every 10 s, so an unattended job was never quiet. As in Nmap, status lines now come only
/// with --stats-every.
#[test]
fn no_status_lines_without_stats_every() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = open.local_addr().unwrap().port().to_string();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let ports = format!("{port},{closed},1,2");
    // Four probes 3.5 s apart: the scan outlasts the 10 s after which a line was due.
    let started = std::time::Instant::now();
    let o = run(&[
        "-sT",
        "-Pn",
        "-n",
        "--scan-delay",
        "3500ms",
        "-p",
        &ports,
        "127.0.0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(started.elapsed() > std::time::Duration::from_secs(10));
    assert!(!stderr(&o).contains("Stats:"), "{}", stderr(&o));
    let o = run(&[
        "-sT",
        "-Pn",
        "-n",
        "--scan-delay",
        "600ms",
        "--stats-every",
        "1s",
        "-p",
        &ports,
        "127.0.0.1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Stats:"),
        "--stats-every prints them: {}",
        stderr(&o)
    );
}

/// Runs the binary as "nobody" without capabilities (the tests may run as root).
fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux)")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { geteuid() == 0 }
}

/// The OS detection flags refuse what Nmap refuses, before anything is sent.
#[test]
fn os_detection_values_are_checked_as_nmap_checks_them() {
    for bad in ["0", "51", "abc", "-3"] {
        refused(
            &["-O", "--max-os-tries", bad, "-p", "80", "127.0.0.1"],
            "--max-os-tries",
        );
    }
    refused(&["--max-os-tries=0", "127.0.0.1"], "from 1 to 50");
    refused(
        &["-O1", "127.0.0.1"],
        "(-O1) is no longer supported. Use -O instead",
    );
    refused(&["-O3", "127.0.0.1"], "unknown argument to -O");
    // Nmap's order: without raw sockets the privilege message comes first.
    refused(
        &["--unprivileged", "-O", "-sn", "127.0.0.1"],
        "TCP/IP fingerprinting (for OS scan) requires root privileges.",
    );
    if is_root() {
        refused(
            &["-O", "-sn", "127.0.0.1"],
            "OS Scan is unreliable without a port scan",
        );
        refused(
            &["-A", "-sn", "127.0.0.1"],
            "OS Scan is unreliable without a port scan",
        );
        refused(&["-O", "-6", "-p", "80", "::1"], "-O with -6");
    }
}

/// -O and --traceroute without raw sockets: Nmap's messages, then QUITTING!, exit 2, and
/// nothing sent (no scan report, no "Starting" line). -A drops the two parts silently and
/// runs the rest, as Nmap does for a user without root.
#[test]
fn os_detection_and_traceroute_need_raw_sockets() {
    let unprivileged = |args: &[&str]| {
        if is_root() {
            as_nobody(args)
        } else {
            run(args)
        }
    };
    for (args, message) in [
        (
            &["-O", "-p", "80", "-n", "127.0.0.1"][..],
            "TCP/IP fingerprinting (for OS scan) requires root privileges.\nQUITTING!\n",
        ),
        (
            &["-sT", "--traceroute", "-p", "80", "-n", "127.0.0.1"],
            "Traceroute has to be run as root\nQUITTING!\n",
        ),
        (
            &["-O", "--traceroute", "-p", "80", "-n", "127.0.0.1"],
            "TCP/IP fingerprinting (for OS scan) requires root privileges.\nQUITTING!\n",
        ),
    ] {
        for o in [
            unprivileged(args),
            run(&[&["--unprivileged"], args].concat()),
        ] {
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            assert!(stderr(&o).ends_with(message), "{args:?}: {}", stderr(&o));
            assert!(o.stdout.is_empty(), "{args:?} printed {:?}", o.stdout);
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let o = unprivileged(&["-A", "-p", &port, "-n", "-Pn", "-oX", "-", "127.0.0.1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let xml = String::from_utf8_lossy(&o.stdout);
    assert!(xml.contains("<scaninfo type=\"connect\""), "{xml}");
    assert!(!xml.contains("<os>") && !xml.contains("<trace"), "{xml}");
    assert!(!stderr(&o).contains("not supported"), "{}", stderr(&o));
}

/// A copy of the installed nmap-os-db with `bad` lines put first, in a fresh --datadir.
fn os_db_with_bad_lines(bad: usize) -> Option<tempfile::TempDir> {
    let db = std::fs::read_to_string("/usr/share/nmap/nmap-os-db").ok()?;
    let dir = tempfile::tempdir().unwrap();
    let mut text: String = (1..=bad)
        .map(|i| format!("not a line of nmap-os-db {i}\n"))
        .collect();
    text.push_str(&db);
    std::fs::write(dir.path().join("nmap-os-db"), text).unwrap();
    Some(dir)
}

/// A malformed nmap-os-db in --datadir: each bad line named by number (ten at most, then a
/// count), and the scan goes on with the rest. --builtin-data reads no nmap-os-db at all.
#[test]
fn malformed_os_db_lines_are_named_and_the_scan_goes_on() {
    if !is_root() {
        eprintln!("skipped: -O needs raw sockets");
        return;
    }
    let Some(dir) = os_db_with_bad_lines(13) else {
        eprintln!("skipped: no /usr/share/nmap/nmap-os-db");
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let datadir = dir.path().to_str().unwrap();
    let o = run(&[
        "-O",
        "--datadir",
        datadir,
        "-p",
        &port,
        "-n",
        "-oX",
        "-",
        "127.0.0.1",
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    for line in 1..=10 {
        assert!(
            e.contains(&format!("nmap-os-db line {line}: unexpected line")),
            "line {line} not named: {e}"
        );
    }
    assert!(!e.contains("nmap-os-db line 11:"), "{e}");
    assert!(e.contains("3 more malformed lines skipped"), "{e}");
    assert!(
        !e.contains("coarse guess"),
        "the rest of the file was not used: {e}"
    );
    let xml = String::from_utf8_lossy(&o.stdout);
    assert!(xml.contains(&format!("portid=\"{port}\"")), "{xml}");

    // --builtin-data: the bad file is not even read.
    let o = run(&[
        "-O",
        "-v",
        "--builtin-data",
        "--datadir",
        datadir,
        "-p",
        &port,
        "-n",
        "-oX",
        "-",
        "127.0.0.1",
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(!e.contains("nmap-os-db line"), "{e}");
    assert!(e.contains("only a coarse guess"), "{e}");

    // No nmap-os-db anywhere: said once, the scan goes on.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("nmap-os-db"), "# nothing\n").unwrap();
    let o = run(&[
        "-O",
        "--datadir",
        empty.path().to_str().unwrap(),
        "-p",
        &port,
        "-n",
        "127.0.0.1",
    ]);
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert_eq!(e.matches("coarse guess").count(), 1, "{e}");
    drop(listener);
}

/// -A as root plans OS detection (and -sV, -sC, traceroute): a dry run prints Nmap's OS
/// probes, sending nothing; without -O or -A there are none.
#[test]
fn aggressive_as_root_plans_os_detection() {
    if !is_root() {
        eprintln!("skipped: needs raw sockets");
        return;
    }
    let printed = |args: &[&str]| {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    for flag in ["-A", "-O"] {
        let out = printed(&[flag, "--dryrun", "-p", "22", "127.0.0.1"]);
        for probe in ["OS probe IE 1", "OS probe U1", "OS probe T7"] {
            assert!(out.contains(probe), "{flag}: no {probe:?} in {out}");
        }
    }
    let out = printed(&["-sV", "--dryrun", "-p", "22", "127.0.0.1"]);
    assert!(!out.contains("OS probe"), "{out}");
}
