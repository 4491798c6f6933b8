//! The streamed diff against the in-memory one ([`super::super::diff`]), which holds both
//! runs whole and is the oracle: the same bytes in every form, plain and verbose.

use super::*;
use crate::diff::diff;
use crate::read::read_all_from;
use crate::{JsonWriter, XmlWriter};
use portolan_model::*;

fn xml(runs: &[&ScanRun]) -> Vec<u8> {
    let mut out = Vec::new();
    for run in runs {
        let mut w = XmlWriter::new(&mut out, OutputOptions::default());
        feed(&mut w, run);
    }
    out
}

fn json(run: &ScanRun) -> Vec<u8> {
    let mut w = JsonWriter::new(Vec::new(), OutputOptions::default());
    feed(&mut w, run);
    w.into_inner()
}

fn feed(w: &mut dyn Sink, run: &ScanRun) {
    w.begin(run).unwrap();
    for h in &run.hosts {
        w.host(run, h).unwrap();
    }
    w.end(run).unwrap();
}

const FORMATS: [DiffFormat; 3] = [DiffFormat::Text, DiffFormat::Xml, DiffFormat::Json];

/// Streams the two files, with `buffer` bytes of sorting buffer, in one form.
fn streamed(a: &[u8], b: &[u8], buffer: usize, verbose: bool, f: DiffFormat) -> (String, bool) {
    let sa = spool_run_buffered(a, None, buffer).unwrap();
    let sb = spool_run_buffered(b, None, buffer).unwrap();
    let mut out = Vec::new();
    let changed = write_diff(&sa, &sb, DiffOptions { verbose }, f, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), changed)
}

/// Each file read whole (its last run) and compared in memory, and streamed: the same
/// output in every form, plain and verbose.
fn assert_same(a: &[u8], b: &[u8], buffer: usize) {
    let last = |bytes: &[u8]| read_all_from(bytes).unwrap().pop().unwrap();
    let (ra, rb) = (last(a), last(b));
    let sa = spool_run_buffered(a, None, buffer).unwrap();
    let sb = spool_run_buffered(b, None, buffer).unwrap();
    for verbose in [false, true] {
        let opts = DiffOptions { verbose };
        let d = diff(&ra, &rb, opts);
        for f in FORMATS {
            let text = match f {
                DiffFormat::Text => d.to_text(),
                DiffFormat::Xml => d.to_xml(),
                DiffFormat::Json => d.to_json() + "\n",
            };
            let want = (text, d.changed());
            let mut out = Vec::new();
            let changed = write_diff(&sa, &sb, opts, f, &mut out).unwrap();
            let got = (String::from_utf8(out).unwrap(), changed);
            assert!(
                got == want,
                "{f:?} verbose={verbose} buffer={buffer}\n--- streamed ---\n{}\n--- in memory ---\n{}",
                got.0,
                want.0
            );
        }
    }
}

fn host(addr: &str) -> Host {
    Host::new(addr.parse().unwrap(), HostStatus::up("syn-ack"))
}

fn named(h: Host, name: &str) -> Host {
    let mut h = h;
    h.hostnames.push(Hostname {
        name: name.into(),
        kind: HostnameType::User,
    });
    h
}

/// A host with neither address nor name: never paired.
fn anonymous(port: u16) -> Host {
    let mut h = host("192.0.2.1");
    h.addresses.clear();
    h.ports
        .push(Port::new(Protocol::Tcp, port, PortState::Open, "syn-ack"));
    h
}

fn with_port(mut h: Host, port: u16, state: PortState, service: Option<&str>) -> Host {
    let mut p = Port::new(Protocol::Tcp, port, state, "syn-ack");
    p.service = service.map(|name| Service {
        name: name.into(),
        method: ServiceMethod::Table,
        conf: 3,
        ..Service::default()
    });
    h.ports.push(p);
    h
}

fn run(args: &str, hosts: Vec<Host>) -> ScanRun {
    let mut r = ScanRun::new(args, 1_700_000_000);
    r.scanner = "nmap".into();
    r.version = "7.93".into();
    r.hosts = hosts;
    r.runstats = Some(RunStats {
        finished: 1_700_000_100,
        elapsed: 100.0,
        exit: RunExit::Success,
        errormsg: None,
        hosts_up: 0,
        hosts_down: 0,
        hosts_total: 0,
        completeness: None,
    });
    r
}

/// Hosts out of id order ("10.0.0.10" sorts before "10.0.0.9"), the same id twice,
/// hosts only one side has, names without addresses, IPv6 and MAC, hosts no one can
/// pair, and pre- and post-scan scripts.
fn tricky() -> (ScanRun, ScanRun) {
    let mut mac = host("10.0.0.3");
    mac.addresses.push(Address {
        addr: "00:11:22:33:44:55".into(),
        addrtype: AddrType::Mac,
        vendor: None,
    });
    let mut name_only = named(host("192.0.2.9"), "only.example");
    name_only.addresses.clear();
    let a = vec![
        with_port(host("10.0.0.9"), 22, PortState::Open, Some("ssh")),
        anonymous(1),
        with_port(host("10.0.0.10"), 80, PortState::Open, Some("http")),
        with_port(host("10.0.0.2"), 80, PortState::Open, None),
        with_port(host("10.0.0.2"), 443, PortState::Open, None),
        named(host("10.0.0.5"), "five.example"),
        mac.clone(),
        with_port(host("2001:db8::1"), 53, PortState::Open, Some("domain")),
        anonymous(2),
        name_only.clone(),
        host("10.0.0.7"),
    ];
    let mut down = host("10.0.0.7");
    down.status = HostStatus::down("no-response");
    let b = vec![
        anonymous(3),
        with_port(host("2001:db8::1"), 53, PortState::Closed, Some("domain")),
        with_port(host("10.0.0.2"), 80, PortState::Open, None),
        with_port(host("10.0.0.10"), 80, PortState::Open, Some("http")),
        with_port(host("10.0.0.2"), 443, PortState::Filtered, None),
        with_port(host("10.0.0.2"), 8080, PortState::Open, None),
        named(host("10.0.0.5"), "renamed.example"),
        with_port(host("10.0.0.9"), 22, PortState::Open, Some("ssh")),
        mac,
        with_port(name_only, 25, PortState::Open, Some("smtp")),
        down,
        host("10.0.0.11"),
    ];
    let mut ra = run("nmap -sV 10.0.0.0/24", a);
    let mut rb = run("nmap -sV 10.0.0.0/24", b);
    ra.prescripts
        .push(Script::text("broadcast-ping", "one\ntwo"));
    rb.prescripts
        .push(Script::text("broadcast-ping", "one\nthree"));
    rb.postscripts
        .push(Script::text("ssh-hostkey-summary", "x"));
    rb.runstats.as_mut().unwrap().finished += 1;
    (ra, rb)
}

#[test]
fn tricky_pairs_stream_as_they_diff_in_memory() {
    let (a, b) = tricky();
    let (xa, xb) = (xml(&[&a]), xml(&[&b]));
    let (ja, jb) = (json(&a), json(&b));
    // 1: a sorted run a host, merged; 300: a few hosts a run; the default: one run.
    for buffer in [1, 300, SORT_BUFFER] {
        assert_same(&xa, &xb, buffer);
        assert_same(&ja, &jb, buffer);
        assert_same(&xb, &xa, buffer);
    }
    // Equal inputs: nothing shown unless verbose, not changed; but hosts with neither
    // address nor name are never paired, so the same file shows them gone and come.
    let (text, changed) = streamed(&xa, &xa, 300, false, DiffFormat::Text);
    assert!(changed);
    assert_eq!(text.matches(" <no name>:").count(), 4, "{text}");
    let mut paired = a.clone();
    paired.hosts.retain(|h| !h.addresses.is_empty());
    let xp = xml(&[&paired]);
    let (text, changed) = streamed(&xp, &xp, 300, false, DiffFormat::Text);
    assert_eq!((text.as_str(), changed), ("", false));
    assert_same(&xa, &ja, 300);
}

#[test]
fn runs_without_hosts() {
    let (a, _) = tricky();
    let empty = run("nmap -sn 10.0.0.0/30", Vec::new());
    let (xa, xe) = (xml(&[&a]), xml(&[&empty]));
    assert_same(&xe, &xe, 300);
    assert_same(&xa, &xe, 300);
    assert_same(&xe, &xa, 300);
}

#[test]
fn the_run_compared_is_the_last_or_the_one_asked_for() {
    let (a, b) = tricky();
    let empty = run("nmap -sn 10.0.0.0/30", Vec::new());
    let three = xml(&[&a, &empty, &b]);
    let last = spool_run_buffered(&three[..], None, 300).unwrap();
    assert_eq!((last.index, last.count), (3, 3));
    let second = spool_run_buffered(&three[..], Some(2), 300).unwrap();
    assert_eq!((second.index, second.count), (2, 3));
    assert!(second.hosts.runs.is_empty());
    let first = spool_run_buffered(&three[..], Some(1), 300).unwrap();
    assert_eq!(first.run.args, "nmap -sV 10.0.0.0/24");
    assert!(first.run.hosts.is_empty(), "hosts are spooled, not held");

    let only_b = xml(&[&b]);
    let mut out = Vec::new();
    let alone = spool_run(&only_b[..], None).unwrap();
    write_diff(
        &first,
        &last,
        DiffOptions::default(),
        DiffFormat::Text,
        &mut out,
    )
    .unwrap();
    let mut want = Vec::new();
    let a_alone = spool_run(&xml(&[&a])[..], None).unwrap();
    write_diff(
        &a_alone,
        &alone,
        DiffOptions::default(),
        DiffFormat::Text,
        &mut want,
    )
    .unwrap();
    assert_eq!(String::from_utf8(out), String::from_utf8(want));

    match spool_run(&three[..], Some(4)) {
        Err(e @ SpoolError::NoSuchRun { want: 4, count: 3 }) => {
            assert_eq!(e.to_string(), "--run 4: the file holds 3 runs")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_input_is_a_read_error_with_its_line() {
    let (a, _) = tricky();
    let text = String::from_utf8(xml(&[&a])).unwrap();
    let cut = text.find("<port ").unwrap();
    let line = 1 + text[..cut].matches('\n').count();
    let bad = format!("{}<bogus", &text[..cut]);
    let e = spool_run(bad.as_bytes(), None).unwrap_err();
    assert!(matches!(e, SpoolError::Read(_)), "{e}");
    assert!(e.to_string().starts_with(&format!("line {line}:")), "{e}");
}

/// 20,000 hosts a side, sorted in many runs: the same output as the in-memory diff.
#[test]
fn a_large_pair_streams_as_it_diffs_in_memory() {
    const HOSTS: u32 = 20_000;
    let addr = |i: u32| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
    let make = |second: bool| {
        let hosts = (0..HOSTS)
            // Every 97th host only in the first scan, every 89th only in the second.
            .filter(|i| if second { i % 97 != 0 } else { i % 89 != 0 })
            .map(|i| {
                let mut h = host(&addr(i));
                if i % 13 == 0 {
                    h = named(h, &format!("h{i}.example"));
                }
                let state = if second && i % 31 == 0 {
                    PortState::Closed
                } else {
                    PortState::Open
                };
                h = with_port(h, 22, PortState::Open, Some("ssh"));
                h = with_port(h, 80, state, Some("http"));
                if second && i % 53 == 0 {
                    h = with_port(h, 443, PortState::Open, Some("https"));
                }
                h
            })
            .collect();
        xml(&[&run("nmap -sV 10.0.0.0/17", hosts)])
    };
    let (a, b) = (make(false), make(true));
    let buffer = 128 << 10;
    let spooled = spool_run_buffered(&a[..], None, buffer).unwrap();
    assert!(
        spooled.hosts.runs.len() > 10,
        "{}",
        spooled.hosts.runs.len()
    );
    assert_same(&a, &b, buffer);
}
