//! `portolan diff` against Nmap's own `ndiff` on the same pairs of files: same exit status and
//! the same output, byte for byte, in text and XML form, plain and verbose.
//!
//! ndiff is installed in CI; when it is missing these tests are skipped with a message,
//! except under PORTOLAN_LAB=required (set by scripts/test.sh as root), where they fail.
//!
//! One documented difference: our XML files say "nmap" in nmaprun@scanner (as nmap.dtd
//! requires) and name Portolan in their prologue comment; our reader restores "portolan", so
//! our header line says `portolan 0.1.0 scan ...` where ndiff says `Nmap 0.1.0 scan ...`.
//! Headers are only shown when they differ; the test that makes them differ maps the word.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use portolan_model::*;
use portolan_report::{JsonWriter, XmlWriter};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");
const NDIFF: &str = "/usr/bin/ndiff";

fn have_ndiff() -> bool {
    let ok = Command::new(NDIFF)
        .arg("--help")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("PORTOLAN_LAB").as_deref() == Ok("required") {
        panic!("{NDIFF} is required for this test (PORTOLAN_LAB=required): run scripts/install-lab-deps.sh as root");
    }
    eprintln!("skipped: needs {NDIFF} (Nmap's ndiff); run scripts/test.sh as root to install it");
    false
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../portolan-report/tests/data")
        .join(name)
}

fn feed(sink: &mut dyn Sink, run: &ScanRun) {
    sink.begin(run).unwrap();
    for h in &run.hosts {
        sink.host(run, h).unwrap();
    }
    sink.end(run).unwrap();
}

fn write_xml(dir: &Path, name: &str, run: &ScanRun) -> PathBuf {
    let mut w = XmlWriter::new(Vec::new(), OutputOptions::default());
    feed(&mut w, run);
    let path = dir.join(name);
    std::fs::write(&path, w.into_inner()).unwrap();
    path
}

fn write_json(dir: &Path, name: &str, run: &ScanRun) -> PathBuf {
    let mut w = JsonWriter::new(Vec::new(), OutputOptions::default());
    feed(&mut w, run);
    let path = dir.join(name);
    std::fs::write(&path, w.into_inner()).unwrap();
    path
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ndiff(opts: &[&str], a: &Path, b: &Path) -> Output {
    run(Command::new(NDIFF).args(opts).arg(a).arg(b))
}

fn portolan(opts: &[&str], a: &Path, b: &Path) -> Output {
    run(Command::new(BIN).arg("diff").args(opts).arg(a).arg(b))
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The header words our reader restores, mapped back to what ndiff reads in the file: the
/// first word of a header line (`-portolan 0.1.0 scan ...`) and nmaprun@scanner.
fn as_ndiff_reads(s: &str) -> String {
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        let mut chars = line.chars();
        match (chars.next(), chars.as_str().strip_prefix("portolan ")) {
            (Some(mark @ ('-' | '+' | ' ')), Some(rest)) => {
                out.push(mark);
                out.push_str("Nmap ");
                out.push_str(rest);
            }
            _ => out.push_str(
                &line.replace("<nmaprun scanner=\"portolan\"", "<nmaprun scanner=\"nmap\""),
            ),
        }
    }
    out
}

/// Both tools, every output form: same status and same bytes.
///
/// One deliberate difference in status: with -v, ndiff 7.93 counts every unchanged script
/// result as a difference (exit 1 for two copies of one file). Our -v status is the one
/// without -v, so for verbose forms the reference status is ndiff's `--xml` one.
fn same_as_ndiff(what: &str, a: &Path, b: &Path, forms: &[&[&str]]) {
    let reference = ndiff(&["--xml"], a, b).status.code();
    for opts in forms {
        let n = ndiff(opts, a, b);
        let p = portolan(opts, a, b);
        assert!(
            n.status.code() != Some(2),
            "{what} {opts:?}: ndiff failed: {}",
            String::from_utf8_lossy(&n.stderr)
        );
        let verbose = opts.contains(&"-v");
        let expected = if verbose { reference } else { n.status.code() };
        if verbose && n.status.code() != reference {
            let files = std::fs::read_to_string(a).unwrap() + &std::fs::read_to_string(b).unwrap();
            assert!(
                files.contains("<script"),
                "{what} {opts:?}: ndiff -v status differs without scripts"
            );
        }
        assert_eq!(
            p.status.code(),
            expected,
            "{what} {opts:?}: exit status\nndiff:\n{}\nportolan:\n{}{}",
            out(&n),
            out(&p),
            String::from_utf8_lossy(&p.stderr)
        );
        assert_eq!(
            as_ndiff_reads(&out(&p)),
            out(&n),
            "{what} {opts:?}: output differs"
        );
    }
}

const ALL: &[&[&str]] = &[&[], &["-v"], &["--xml"], &["--xml", "-v"]];
/// ndiff 7.93 crashes in text mode on a port whose only change is its script output.
const NOT_PLAIN_TEXT: &[&[&str]] = &[&["-v"], &["--xml"], &["--xml", "-v"]];

fn svc(name: &str, product: Option<&str>, version: Option<&str>) -> Option<Service> {
    Some(Service {
        name: name.into(),
        product: product.map(Into::into),
        version: version.map(Into::into),
        method: if product.is_some() {
            ServiceMethod::Probed
        } else {
            ServiceMethod::Table
        },
        conf: if product.is_some() { 10 } else { 3 },
        ..Service::default()
    })
}

fn base() -> ScanRun {
    let mut r = ScanRun::new(
        "portolan -sV -p 1-1000 192.0.2.0/29 2001:db8::5",
        1_795_344_023,
    );
    let mut web = Host::new("192.0.2.1".parse().unwrap(), HostStatus::up("syn-ack"));
    web.hostnames.push(Hostname {
        name: "www.example".into(),
        kind: HostnameType::User,
    });
    web.addresses.push(Address {
        addr: "00:16:3E:12:34:56".into(),
        addrtype: AddrType::Mac,
        vendor: Some("Xensource".into()),
    });
    web.extraports.push(ExtraPorts {
        state: PortState::Closed,
        count: 996,
        reasons: Vec::new(),
    });
    let mut ssh = Port::new(Protocol::Tcp, 22, PortState::Open, "syn-ack");
    ssh.service = svc("ssh", Some("OpenSSH"), Some("9.0"));
    let mut http = Port::new(Protocol::Tcp, 80, PortState::Open, "syn-ack");
    http.service = svc("http", Some("nginx"), Some("1.22.1"));
    http.scripts.push(Script {
        id: "http-title".into(),
        output: "Welcome to nginx!".into(),
        content: Vec::new(),
    });
    let mut https = Port::new(Protocol::Tcp, 443, PortState::Open, "syn-ack");
    https.service = svc("http", Some("nginx"), None);
    https.service.as_mut().unwrap().tunnel = Some("ssl".into());
    let mut smtp = Port::new(Protocol::Tcp, 25, PortState::Filtered, "no-response");
    smtp.service = svc("smtp", None, None);
    web.ports = vec![ssh, smtp, http, https];

    let mut db = Host::new("192.0.2.3".parse().unwrap(), HostStatus::up("syn-ack"));
    let mut pg = Port::new(Protocol::Tcp, 5432, PortState::Open, "syn-ack");
    pg.service = svc("postgresql", Some("PostgreSQL DB"), Some("15.3 - 15.7"));
    db.ports = vec![pg];
    db.extraports.push(ExtraPorts {
        state: PortState::Filtered,
        count: 999,
        reasons: Vec::new(),
    });

    let down = Host::new(
        "192.0.2.4".parse().unwrap(),
        HostStatus::down("no-response"),
    );
    let mut v6 = Host::new("2001:db8::5".parse().unwrap(), HostStatus::up("syn-ack"));
    let mut dns = Port::new(Protocol::Udp, 53, PortState::Open, "udp-response");
    dns.service = svc("domain", Some("ISC BIND"), Some("9.18"));
    v6.ports = vec![dns];
    r.hosts = vec![web, db, down, v6];
    r
}

type Change = (
    &'static str,
    fn(&mut ScanRun),
    &'static [&'static [&'static str]],
);

const CHANGES: &[Change] = &[
    ("nothing", |_| {}, ALL),
    (
        "port opened",
        |r| {
            let mut p = Port::new(Protocol::Tcp, 8080, PortState::Open, "syn-ack");
            p.service = svc("http-proxy", None, None);
            r.hosts[1].ports.push(p);
        },
        ALL,
    ),
    (
        "port closed (into Not shown)",
        |r| {
            r.hosts[0].ports.remove(0);
            r.hosts[0].extraports[0].count = 997;
        },
        ALL,
    ),
    (
        "port filtered",
        |r| r.hosts[0].ports[2].state = PortState::Filtered,
        ALL,
    ),
    (
        "service version changed",
        |r| {
            r.hosts[0].ports[0].service = svc("ssh", Some("OpenSSH"), Some("9.2"));
        },
        ALL,
    ),
    (
        "extrainfo added",
        |r| r.hosts[1].ports[0].service.as_mut().unwrap().extrainfo = Some("protocol 3.0".into()),
        ALL,
    ),
    (
        "tunnel alone (not a difference to ndiff)",
        |r| r.hosts[0].ports[3].service.as_mut().unwrap().tunnel = None,
        ALL,
    ),
    (
        "host down",
        |r| {
            let h = &mut r.hosts[1];
            h.status = HostStatus::down("no-response");
            h.ports.clear();
            h.extraports.clear();
        },
        ALL,
    ),
    (
        "host up",
        |r| r.hosts[2].status = HostStatus::up("echo-reply"),
        ALL,
    ),
    (
        "host added",
        |r| {
            let mut h = Host::new("192.0.2.2".parse().unwrap(), HostStatus::up("syn-ack"));
            let mut p = Port::new(Protocol::Tcp, 3389, PortState::Open, "syn-ack");
            p.service = svc("ms-wbt-server", None, None);
            h.ports.push(p);
            r.hosts.insert(1, h);
        },
        ALL,
    ),
    ("host removed", |r| drop(r.hosts.remove(3)), ALL),
    (
        "hostname added",
        |r| {
            r.hosts[1].hostnames.push(Hostname {
                name: "db.example".into(),
                kind: HostnameType::Ptr,
            })
        },
        ALL,
    ),
    (
        "second hostname added",
        |r| {
            r.hosts[0].hostnames.push(Hostname {
                name: "www2.example".into(),
                kind: HostnameType::Ptr,
            })
        },
        ALL,
    ),
    (
        "hostname changed",
        |r| r.hosts[0].hostnames[0].name = "web.example".into(),
        ALL,
    ),
    (
        "MAC address gone",
        |r| drop(r.hosts[0].addresses.pop()),
        ALL,
    ),
    (
        "Not shown counts changed",
        |r| {
            r.hosts[1].extraports[0].count = 500;
            r.hosts[1].extraports.push(ExtraPorts {
                state: PortState::Closed,
                count: 499,
                reasons: Vec::new(),
            });
        },
        ALL,
    ),
    (
        "script output changed",
        |r| r.hosts[0].ports[2].scripts[0].output = "403 Forbidden\nnginx".into(),
        NOT_PLAIN_TEXT,
    ),
    (
        "script added",
        |r| {
            r.hosts[1].ports[0].scripts.push(Script {
                id: "ssl-cert".into(),
                output: "Subject: commonName=db\nIssuer: commonName=db".into(),
                content: Vec::new(),
            })
        },
        &[&["--xml"], &["--xml", "-v"]],
    ),
    (
        "udp port closed",
        |r| r.hosts[3].ports[0].state = PortState::Closed,
        ALL,
    ),
    (
        "many at once",
        |r| {
            r.hosts[0].ports[0].service = svc("ssh", Some("OpenSSH"), Some("9.2"));
            r.hosts[0].ports[1].state = PortState::Open;
            r.hosts[1].status = HostStatus::down("no-response");
            r.hosts.remove(2);
        },
        ALL,
    ),
];

#[test]
fn same_as_ndiff_on_synthetic_pairs() {
    if !have_ndiff() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let before = base();
    let a = write_xml(dir.path(), "a.xml", &before);
    for (i, (what, change, forms)) in CHANGES.iter().enumerate() {
        let mut after = base();
        change(&mut after);
        let b = write_xml(dir.path(), &format!("b{i}.xml"), &after);
        same_as_ndiff(what, &a, &b, forms);
        // The reverse direction too: an opened port is a closed one the other way round.
        same_as_ndiff(&format!("{what} (reversed)"), &b, &a, forms);
    }
}

#[test]
fn our_json_compares_as_our_xml() {
    if !have_ndiff() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let before = base();
    let mut after = base();
    after.hosts[0].ports[0].service = svc("ssh", Some("OpenSSH"), Some("9.2"));
    after.hosts.remove(2);
    let a = write_xml(dir.path(), "a.xml", &before);
    let b = write_xml(dir.path(), "b.xml", &after);
    let bj = write_json(dir.path(), "b.json", &after);
    let aj = write_json(dir.path(), "a.json", &before);
    for opts in ALL {
        let n = ndiff(opts, &a, &b);
        for (x, y) in [(&a, &bj), (&aj, &b), (&aj, &bj)] {
            let p = portolan(opts, x, y);
            assert_eq!(p.status.code(), n.status.code(), "{x:?} {y:?} {opts:?}");
            assert_eq!(as_ndiff_reads(&out(&p)), out(&n), "{x:?} {y:?} {opts:?}");
        }
    }
}

#[test]
fn headers_shown_when_they_differ() {
    if !have_ndiff() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = write_xml(dir.path(), "a.xml", &base());
    let mut later = base();
    later.start += 86_400;
    later.args = "portolan -sV -T4 -p 1-1000 192.0.2.0/29 2001:db8::5".into();
    later.hosts[0].ports[0].service = svc("ssh", Some("OpenSSH"), Some("9.2"));
    let b = write_xml(dir.path(), "b.xml", &later);
    same_as_ndiff("later scan", &a, &b, ALL);
    let p = portolan(&[], &a, &b);
    let text = out(&p);
    assert!(text.starts_with("-portolan "), "{text}");
    assert!(text.contains("\n+portolan "), "{text}");
    // Only the header differs: still "the same" (exit 0), as ndiff says.
    let mut same_but_later = base();
    same_but_later.start += 60;
    let c = write_xml(dir.path(), "c.xml", &same_but_later);
    same_as_ndiff("start time only", &a, &c, ALL);
    assert_eq!(portolan(&[], &a, &c).status.code(), Some(0));
}

/// Nmap's own files, as they are and with the second one edited.
#[test]
fn same_as_ndiff_on_nmap_files() {
    if !have_ndiff() {
        return;
    }
    // nmap-full.xml holds two scripts on one port, which ndiff 7.93 cannot read (Python 3
    // cannot sort them); it is compared with ours in diff_reads_files_ndiff_cannot.
    let pairs = [
        ("nmap-sv.xml", "nmap-svr.xml"),
        ("nmap-sv.xml", "nmap-sv.xml"),
        ("nmap-basic.xml", "nmap-two.xml"),
        ("nmap-multi.xml", "nmap-multir.xml"),
        ("nmap-two.xml", "nmap-sn.xml"),
        ("nmap-ign.xml", "nmap-ign3.xml"),
        ("nmap-udp.xml", "nmap-v6.xml"),
        ("nmap-basic.xml", "nmap-sv.xml"),
    ];
    for (x, y) in pairs {
        let (a, b) = (fixture(x), fixture(y));
        same_as_ndiff(&format!("{x} {y}"), &a, &b, ALL);
        same_as_ndiff(&format!("{y} {x}"), &b, &a, ALL);
    }
    // Edited copies of nmap-sv.xml: a version bump, a port gone, the host renamed.
    let dir = tempfile::tempdir().unwrap();
    let sv = std::fs::read_to_string(fixture("nmap-sv.xml")).unwrap();
    assert!(sv.contains("9.2p1 Debian 2+deb12u3") && sv.contains("portid=\"2024\""));
    let edits: [(&str, String); 4] = [
        (
            "version",
            sv.replace("9.2p1 Debian 2+deb12u3", "9.6p1 Debian 4"),
        ),
        (
            "port closed",
            sv.replace(
                "portid=\"2024\"><state state=\"open\"",
                "portid=\"2024\"><state state=\"closed\"",
            ),
        ),
        (
            "hostname",
            sv.replace("name=\"localhost\"", "name=\"loopback\""),
        ),
        ("host down", sv.replace("state=\"up\"", "state=\"down\"")),
    ];
    for (what, text) in edits {
        assert_ne!(text, sv, "{what}: the edit did nothing");
        let b = dir.path().join(format!("{what}.xml"));
        std::fs::write(&b, text).unwrap();
        same_as_ndiff(what, &fixture("nmap-sv.xml"), &b, ALL);
    }
}

/// `text` with `from` replaced by `to` once; the edit must change something.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found");
    text.replacen(from, to, 1)
}

/// `text` without the first span from `start` through the next `end` (both included).
fn cut(text: &str, start: &str, end: &str) -> String {
    let i = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not found"));
    let len = text[i..]
        .find(end)
        .unwrap_or_else(|| panic!("{end:?} not found"))
        + end.len();
    format!("{}{}", &text[..i], &text[i + len..])
}

/// Every edit compared both ways (old → new and new → old) with `base`.
fn same_as_ndiff_on_edits(
    dir: &Path,
    base_name: &str,
    base: &str,
    edits: &[(&str, String, &[&[&str]])],
) {
    let a = dir.join(format!("{base_name}.xml"));
    std::fs::write(&a, base).unwrap();
    same_as_ndiff(base_name, &a, &a, ALL);
    for (i, (what, text, forms)) in edits.iter().enumerate() {
        assert_ne!(text, base, "{what}: the edit did nothing");
        let b = dir.join(format!("{base_name}-{i}.xml"));
        std::fs::write(&b, text).unwrap();
        same_as_ndiff(&format!("{base_name}: {what}"), &a, &b, forms);
        same_as_ndiff(&format!("{base_name}: {what} (reversed)"), &b, &a, forms);
    }
}

/// OS matches, host, port, pre- and post-scan scripts and traceroutes in files made by
/// `nmap -O --traceroute -sC`, `nmap -A` and `nmap -sV --script ...` in the lab, edited.
#[test]
fn same_as_ndiff_on_os_and_script_changes() {
    if !have_ndiff() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let read = |name: &str| std::fs::read_to_string(fixture(name)).unwrap();

    // -O --traceroute -sC: two hosts, one port script each, a post-scan script.
    let trace = read("nmap-os-trace.xml");
    let edits: Vec<(&str, String, &[&[&str]])> = vec![
        (
            "OS match renamed",
            edit(
                &trace,
                "osmatch name=\"Linux 3.2\"",
                "osmatch name=\"Linux 3.3\"",
            ),
            ALL,
        ),
        (
            "OS match gone",
            cut(&trace, "<osmatch name=\"Linux 3.1\"", "</osmatch>\n"),
            ALL,
        ),
        (
            "OS matches reordered",
            edit(
                &edit(&trace, "osmatch name=\"Linux 3.2\"", "osmatch name=\"@\""),
                "osmatch name=\"Linux 3.1\"",
                "osmatch name=\"Linux 3.2\"",
            )
            .replacen("osmatch name=\"@\"", "osmatch name=\"Linux 3.1\"", 1),
            ALL,
        ),
        ("no OS detection", cut(&trace, "<os>", "</os>\n"), ALL),
        (
            "port script output",
            edit(
                &trace,
                "p9fx fixture &amp;amp; page",
                "p9fx fixture\nsecond line",
            ),
            NOT_PLAIN_TEXT,
        ),
        (
            "port script table only (output unchanged)",
            edit(
                &trace,
                "<elem key=\"bits\">256</elem>",
                "<elem key=\"bits\">4096</elem>",
            ),
            ALL,
        ),
        (
            "post-scan script output",
            edit(
                &trace,
                "Possible duplicate hosts",
                "Possible duplicate hosts (2)",
            ),
            ALL,
        ),
        (
            "post-scan scripts gone",
            cut(&trace, "<postscript>", "</postscript>"),
            ALL,
        ),
        (
            "host script added",
            edit(
                &trace,
                "<trace port=",
                "<hostscript><script id=\"p9fx-plain\" output=\"plain\"/></hostscript><trace port=",
            ),
            ALL,
        ),
        (
            "a host gone (with its OS matches and port scripts)",
            cut(&trace, "<host starttime=", "</host>\n"),
            ALL,
        ),
        (
            "traceroute hop (not compared)",
            edit(
                &trace,
                "<hop ttl=\"1\" ipaddr=\"198.18.200.62\" rtt=\"0.",
                "<hop ttl=\"1\" ipaddr=\"198.18.200.61\" rtt=\"9.",
            ),
            ALL,
        ),
    ];
    same_as_ndiff_on_edits(dir.path(), "os-trace", &trace, &edits);

    // -A: ndiff 7.93 cannot read two scripts on one port, so one of port 80's goes.
    let aggressive = cut(
        &read("nmap-os-a.xml"),
        "<script id=\"http-server-header\"",
        "</script>",
    );
    let edits: Vec<(&str, String, &[&[&str]])> = vec![
        (
            "best OS match gone",
            cut(
                &aggressive,
                "<osmatch name=\"Linux 5.3 - 5.4\"",
                "</osmatch>\n",
            ),
            ALL,
        ),
        (
            "OS match added and service changed",
            edit(
                &edit(
                    &aggressive,
                    "<osfingerprint",
                    "<osmatch name=\"Linux 6.1\" accuracy=\"91\" line=\"1\"/>\n<osfingerprint",
                ),
                "version=\"0.6\"",
                "version=\"0.7\"",
            ),
            ALL,
        ),
        (
            "script gone from a port",
            cut(&aggressive, "<script id=\"http-title\"", "</script>"),
            &[&["--xml"], &["--xml", "-v"]],
        ),
    ];
    same_as_ndiff_on_edits(dir.path(), "os-a", &aggressive, &edits);

    // Pre-, host and post-scan scripts with tables: one host script per host and one
    // script per port, which is what ndiff 7.93 can read.
    let scripts = read("nmap-scripts.xml");
    let scripts = cut(&scripts, "<script id=\"p9fx-plain\"", "/>");
    let scripts = cut(&scripts, "<script id=\"p9fx-plain\"", "/>");
    let scripts = cut(&scripts, "<script id=\"http-server-header\"", "</script>");
    let edits: Vec<(&str, String, &[&[&str]])> = vec![
        (
            "pre-scan script output",
            edit(&scripts, "  list: &#xa;    alpha", "  list: &#xa;    gamma"),
            ALL,
        ),
        (
            "pre-scan scripts gone",
            cut(&scripts, "<prescript>", "</prescript>"),
            ALL,
        ),
        (
            "host script output",
            edit(
                &scripts,
                "custom text for 198.18.200.66&#xa;  second line",
                "custom text for 198.18.200.66&#xa;  third line",
            ),
            ALL,
        ),
        (
            "host scripts gone",
            cut(&scripts, "<hostscript>", "</hostscript>"),
            ALL,
        ),
        (
            "host script table only (output unchanged)",
            edit(
                &scripts,
                "<elem key=\"bits\">2048</elem>",
                "<elem key=\"bits\">4096</elem>",
            ),
            ALL,
        ),
        (
            "a host gone (with its host and port scripts)",
            cut(&scripts, "<host starttime=", "</host>\n"),
            ALL,
        ),
        (
            "post-scan script replaced",
            edit(
                &scripts,
                "<script id=\"reverse-index\"",
                "<script id=\"a-first\"",
            ),
            ALL,
        ),
    ];
    same_as_ndiff_on_edits(dir.path(), "scripts", &scripts, &edits);
}

#[test]
fn os_and_script_changes_count_as_ndiff_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let trace = std::fs::read_to_string(fixture("nmap-os-trace.xml")).unwrap();
    let a = dir.path().join("a.xml");
    std::fs::write(&a, &trace).unwrap();
    let status = |text: String| {
        let b = dir.path().join("b.xml");
        std::fs::write(&b, text).unwrap();
        portolan(&[], &a, &b).status.code()
    };
    // OS matches and host scripts make hosts differ.
    assert_eq!(
        status(edit(&trace, "name=\"Linux 3.2\"", "name=\"Linux 9\"")),
        Some(1)
    );
    assert_eq!(
        status(edit(
            &trace,
            "<trace port=",
            "<hostscript><script id=\"x\" output=\"y\"/></hostscript><trace port="
        )),
        Some(1)
    );
    // Post-scan results are shown but, as in Ndiff, not counted; traceroutes and script
    // tables are not compared.
    let b = dir.path().join("post.xml");
    std::fs::write(
        &b,
        edit(
            &trace,
            "Possible duplicate hosts",
            "Possibly duplicate hosts",
        ),
    )
    .unwrap();
    let p = portolan(&[], &a, &b);
    assert_eq!(p.status.code(), Some(0));
    assert!(out(&p).contains("\n Post-scan script results:\n-|  ssh-hostkey: Possible duplicate hosts\n+|  ssh-hostkey: Possibly duplicate hosts\n"), "{}", out(&p));
    // The JSON form carries both sides of the OS list.
    let b = dir.path().join("os.xml");
    std::fs::write(&b, edit(&trace, "name=\"Linux 3.2\"", "name=\"Linux 9\"")).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&portolan(&["--json"], &a, &b).stdout).unwrap();
    assert_eq!(v["hosts"][0]["os"]["before"][0], "Linux 3.2");
    assert_eq!(v["hosts"][0]["os"]["after"][0], "Linux 9");
    assert_eq!(v["postscripts"]["before"][0]["id"], "ssh-hostkey");
    assert_eq!(status(edit(&trace, "rtt=\"0.", "rtt=\"7.")), Some(0));
    assert_eq!(
        status(edit(
            &trace,
            "<elem key=\"bits\">256</elem>",
            "<elem key=\"bits\">1</elem>"
        )),
        Some(0)
    );
}

#[test]
fn diff_reads_files_ndiff_cannot() {
    // Two scripts on one port: ndiff 7.93 fails; we compare them as it means to.
    let full = fixture("nmap-full.xml");
    let p = portolan(&[], &fixture("nmap-basic.xml"), &full);
    assert_eq!(
        p.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&p.stderr)
    );
    let text = out(&p);
    assert!(
        text.contains("|  http-server-header") || text.contains("http-title"),
        "{text}"
    );
    let p = portolan(&["-v"], &full, &full);
    assert_eq!(p.status.code(), Some(0), "{}", out(&p));
}

/// Files are read once, front to back: a pipe does as well as a file. A reader that goes
/// away early (`| head`) leaves the exit status as it would be.
#[test]
fn a_pipe_is_read_and_a_closed_output_keeps_the_status() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let (a, b) = (fixture("nmap-basic.xml"), fixture("nmap-full.xml"));
    let want = portolan(&[], &a, &b);
    assert_eq!(want.status.code(), Some(1));
    let mut child = Command::new(BIN)
        .args(["diff", "/dev/stdin"])
        .arg(&b)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(&a).unwrap()).unwrap();
    drop(stdin);
    let got = child.wait_with_output().unwrap();
    assert_eq!(got.status.code(), Some(1));
    assert_eq!(out(&got), out(&want));

    // Far more output than a pipe holds, of which one byte is read.
    let dir = tempfile::tempdir().unwrap();
    let mut many = base();
    many.hosts = (0..4000u32)
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            Host::new(ip.into(), HostStatus::up("syn-ack"))
        })
        .collect();
    let many = write_xml(dir.path(), "many.xml", &many);
    let mut child = Command::new(BIN)
        .arg("diff")
        .args([&a, &many])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let got = child.wait_with_output().unwrap();
    assert_eq!(
        got.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(
        got.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
}

#[test]
fn json_output_names_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_xml(dir.path(), "a.xml", &base());
    let mut after = base();
    after.hosts[0].ports[0].service = svc("ssh", Some("OpenSSH"), Some("9.2"));
    after.hosts[1].status = HostStatus::down("no-response");
    let b = write_xml(dir.path(), "b.xml", &after);
    let p = portolan(&["--json"], &a, &b);
    assert_eq!(p.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(v["portolan_diff_version"], 1);
    assert_eq!(v["changed"], true);
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2);
    assert_eq!(hosts[0]["address"], "192.0.2.1");
    assert_eq!(hosts[0]["ports"][0]["before"]["version"], "9.0");
    assert_eq!(hosts[0]["ports"][0]["after"]["version"], "9.2");
    assert_eq!(hosts[1]["state"]["before"], "up");
    assert_eq!(hosts[1]["state"]["after"], "down");
    let p = portolan(&["--json"], &a, &a);
    assert_eq!(p.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(v["hosts"].as_array().unwrap().len(), 0);
}

/// Exit 2, and a message naming the file (and the line, when there is one).
fn refused(a: &Path, b: &Path, needles: &[&str]) {
    let p = portolan(&[], a, b);
    assert_eq!(p.status.code(), Some(2), "{}", out(&p));
    let err = String::from_utf8_lossy(&p.stderr);
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_is_an_error_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_xml(dir.path(), "good.xml", &base());
    let text = std::fs::read_to_string(&good).unwrap();

    let cut = dir.path().join("cut.xml");
    std::fs::write(&cut, &text[..text.len() / 2]).unwrap();
    refused(&good, &cut, &["cut.xml", "line ", "truncated"]);

    let other = dir.path().join("other.xml");
    std::fs::write(&other, "<?xml version=\"1.0\"?>\n\n<svg width=\"1\"/>\n").unwrap();
    refused(
        &other,
        &good,
        &["other.xml", "line 3", "not an Nmap XML file"],
    );

    let missing = dir.path().join("missing.xml");
    refused(&good, &missing, &["missing.xml"]);

    let bad_start = dir.path().join("start.xml");
    std::fs::write(&bad_start, text.replacen("start=\"", "start=\"x", 1)).unwrap();
    refused(&bad_start, &good, &["start.xml", "line ", "start"]);

    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{\"portolan_json_version\": 1,\n \"hosts\": [}").unwrap();
    refused(&good, &bad_json, &["bad.json", "line 2"]);

    // ndiff agrees that these are errors (it has no line numbers of its own to compare).
    if have_ndiff() {
        for (x, y) in [(&good, &cut), (&good, &missing), (&bad_start, &good)] {
            assert_eq!(ndiff(&[], x, y).status.code(), Some(2), "{x:?} {y:?}");
        }
    }
}

#[test]
fn usage_errors_and_help() {
    let o = run(Command::new(BIN).args(["diff", "--help"]));
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("Usage: portolan diff"), "{}", out(&o));
    let o = run(Command::new(BIN).args(["diff", "only-one.xml"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("need exactly two input filenames"));
    let o = run(Command::new(BIN).args(["diff", "--xml", "--text", "a", "b"]));
    assert_eq!(o.status.code(), Some(2));
}
