//! Each writer on a hand-built scan (a host up with open, filtered and collapsed closed
//! ports, versions, scripts, a MAC address and a user-typed name; a host down), compared with
//! the reviewed files in tests/data/golden. After an intended change to a format, regenerate
//! them with `PORTOLAN_BLESS=1 cargo test -p portolan-report --test golden` and review the diff.

mod common;

use common::*;
use portolan_model::*;
use portolan_report::*;

fn check(name: &str, actual: &str) {
    let path = data("golden").join(name);
    if std::env::var("PORTOLAN_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with PORTOLAN_BLESS=1)", path.display()));
    if expected != actual {
        for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
            if e != a {
                panic!(
                    "{name}: first difference at line {}\nexpected: {e}\n  actual: {a}",
                    i + 1
                );
            }
        }
        panic!("{name}: outputs differ in length\n--- actual ---\n{actual}");
    }
}

fn verbose_reason() -> OutputOptions {
    OutputOptions {
        reason: true,
        verbose: 1,
        ..OutputOptions::default()
    }
}

#[test]
fn normal_file() {
    check(
        "sample.nmap",
        &normal_of(&sample_run(), OutputOptions::default(), true),
    );
}

#[test]
fn normal_stdout_verbose_with_reasons() {
    check(
        "sample-stdout-v-reason.txt",
        &normal_of(&sample_run(), verbose_reason(), false),
    );
}

#[test]
fn grepable() {
    check(
        "sample.gnmap",
        &grepable_of(&sample_run(), OutputOptions::default()),
    );
    check(
        "sample-v.gnmap",
        &grepable_of(&sample_run(), verbose_reason()),
    );
}

#[test]
fn xml() {
    check("sample.xml", &xml_of(&sample_run()));
}

#[test]
fn json() {
    check("sample.json", &json_of(&sample_run()));
}

#[test]
fn down_hosts_are_silent_unless_verbose() {
    let run = sample_run();
    let quiet = normal_of(&run, OutputOptions::default(), true);
    assert!(!quiet.contains("scan report for 192.0.2.9"));
    assert!(!grepable_of(&run, OutputOptions::default()).contains("Host: 192.0.2.9"));
    // XML carries every host it is given: the engine decides which.
    assert!(xml_of(&run).contains("<address addr=\"192.0.2.9\""));
}

#[test]
fn all_ports_ignored_and_ping_only_hosts() {
    let mut run = sample_run();
    let host = &mut run.hosts[0];
    host.ports.clear();
    host.addresses.truncate(1);
    let out = normal_of(&run, OutputOptions::default(), true);
    assert!(out.contains(
        "Host is up (0.012s latency).\nrDNS record for 192.0.2.10: web-1.example.net\n\
All 995 scanned ports on scanme.example (192.0.2.10) are in ignored states.\n\
Not shown: 995 closed tcp ports (reset)\n\n\
Service detection performed. Please report any incorrect results at https://nmap.org/submit/ .\n\
# Portolan done"
    ));
    let g = grepable_of(&run, OutputOptions::default());
    assert!(g.contains("\tPorts: \tIgnored State: closed (995)\n"));

    // -sn: no port section at all, no latency without times (and no version detection).
    run.scaninfo.clear();
    let host = &mut run.hosts[0];
    host.extraports.clear();
    host.times = None;
    host.hostnames.clear();
    let out = normal_of(&run, OutputOptions::default(), true);
    assert!(out.contains("Portolan scan report for 192.0.2.10\nHost is up.\n# Portolan done"));
    let g = grepable_of(&run, OutputOptions::default());
    assert!(g.contains("Host: 192.0.2.10 ()\tStatus: Up\n# Portolan done"));
}

#[test]
fn several_ignored_states_and_reasons() {
    let mut run = sample_run();
    let host = &mut run.hosts[0];
    host.extraports.push(ExtraPorts {
        state: PortState::Filtered,
        count: 3,
        reasons: vec![
            ExtraReason {
                reason: "no-response".into(),
                count: 2,
                proto: Some(Protocol::Udp),
                port_list: vec![53, 161],
            },
            ExtraReason {
                reason: "admin-prohibited".into(),
                count: 1,
                proto: Some(Protocol::Udp),
                port_list: vec![123],
            },
        ],
    });
    let out = normal_of(&run, OutputOptions::default(), true);
    assert!(out.contains(
        "Not shown: 995 closed tcp ports (reset), 2 filtered udp ports (no-response), \
1 filtered udp port (admin-prohibited)\n"
    ));
    // Nmap's grepable format names an ignored state only when there is one.
    let g = grepable_of(&run, OutputOptions::default());
    assert!(!g.contains("Ignored State"));
}

#[test]
fn hostile_strings_cannot_break_the_text_formats() {
    let mut run = sample_run();
    let svc = run.hosts[0].ports[0].service.as_mut().unwrap();
    svc.product = Some("evil\u{1b}[2J\tproduct/1.0\nnext".into());
    let out = normal_of(&run, OutputOptions::default(), true);
    assert!(out.contains("evil\\x1B[2J\\x09product/1.0\\x0Anext"));
    let g = grepable_of(&run, OutputOptions::default());
    assert!(g.contains("//evil\\x1B[2J\\x09product|1.0\\x0Anext 9.2p1"));
    assert_eq!(g.lines().count(), 4);
}

#[test]
fn footer_without_runstats_counts_hosts() {
    let mut run = sample_run();
    run.runstats = None;
    let out = normal_of(&run, OutputOptions::default(), false);
    assert!(out.ends_with("Portolan done: 2 IP addresses (1 host up) scanned in 0.00 seconds\n"));
}

#[test]
fn files_fill_while_the_scan_runs() {
    // Each host is flushed through to the writer's sink as soon as it is handed over.
    let run = sample_run();
    let mut w = XmlWriter::new(Vec::new(), OutputOptions::default());
    w.begin(&run).unwrap();
    w.host(&run, &run.hosts[0]).unwrap();
    let so_far = String::from_utf8(w.get_ref().clone()).unwrap();
    assert!(so_far.ends_with("</host>\n"));
}
