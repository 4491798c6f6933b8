//! Byte-for-byte parity with Nmap 7.93: each reference scan in tests/data was written by
//! Nmap as -oA (XML, normal, grepable). We read its XML, render it with our writers, and
//! compare with what Nmap itself printed. Lines that come from parts of Nmap outside the
//! writers (warnings, data-file notices, the -sV submission plea) are dropped first.

mod common;

use common::*;
use portolan_model::*;
use portolan_report::*;

/// Lines Nmap prints from outside its per-host output.
fn outside_the_writers(line: &str) -> bool {
    ["Warning: ", "WARNING: ", "Read data files from:"]
        .iter()
        .any(|p| line.starts_with(p))
}

fn nmap_text(name: &str) -> String {
    let raw = std::fs::read_to_string(data(name)).unwrap();
    raw.lines()
        .filter(|l| !outside_the_writers(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn reference(name: &str) -> ScanRun {
    read_xml_file(data(&format!("nmap-{name}.xml"))).unwrap()
}

fn opts(reason: bool, verbose: u8) -> OutputOptions {
    OutputOptions {
        reason,
        verbose,
        ..OutputOptions::default()
    }
}

/// (scan, --reason given, -v level)
const CASES: &[(&str, bool, u8)] = &[
    ("basic", false, 0),
    ("sv", true, 0),
    ("svr", true, 0),
    ("two", false, 1),
    ("multi", false, 0),
    ("multir", true, 2),
    ("ign", false, 0),
    ("ign3", true, 0),
    ("sn", false, 0),
    ("v6", false, 0),
    ("udp", false, 0),
    // Our own lab (198.18.200.0/24, two hops): -A; -O --traceroute -sC; -sV with default,
    // reverse-index and fixture scripts (pre-, host-, port- and post-scan, nested tables).
    ("os-a", false, 0),
    ("os-trace", false, 0),
    ("scripts", false, 0),
    // -O -v --osscan-guess: the guesses, uptime and sequence lines only -v prints.
    ("os-v", false, 1),
    // --traceroute of two hosts behind one router: the second folds the shared hop.
    ("trace2", false, 0),
    // -sn --traceroute: ICMP traces, and hosts reported in full without a port scan.
    ("sn-trace", false, 0),
    // -A against 127.0.0.1 (OS matches without a fingerprint line).
    ("full", false, 0),
    // -O --traceroute on 127.0.0.1 with every port closed: too many fingerprints match.
    ("os-closed", false, 0),
    // -v -O --traceroute on 127.0.0.1 with a listener: no exact match, the fingerprint,
    // uptime and sequence lines.
    ("os-lo-v", false, 1),
];

#[test]
fn normal_output_matches_nmap() {
    for &(name, reason, verbose) in CASES {
        let run = reference(name);
        let ours = normal_of(&run, opts(reason, verbose), true);
        let theirs = nmap_text(&format!("nmap-{name}.nmap"));
        assert_eq!(ours, theirs, "normal output differs for {name}");
    }
}

#[test]
fn grepable_output_matches_nmap() {
    for &(name, reason, verbose) in CASES {
        let run = reference(name);
        let ours = grepable_of(&run, opts(reason, verbose));
        let theirs = nmap_text(&format!("nmap-{name}.gnmap"));
        assert_eq!(ours, theirs, "grepable output differs for {name}");
    }
}

#[test]
fn xml_output_matches_nmap() {
    for &(name, _, _) in CASES {
        let run = reference(name);
        let ours = xml_of(&run);
        let raw = std::fs::read_to_string(data(&format!("nmap-{name}.xml"))).unwrap();
        // Nmap points at its stylesheet through its binary's path; we use the usual install
        // path. Task progress elements are engine chatter the model does not keep.
        let theirs: String = raw
            .replace(
                "file:///usr/bin/../share/nmap/nmap.xsl",
                "file:///usr/share/nmap/nmap.xsl",
            )
            .lines()
            .filter(|l| !l.starts_with("<taskbegin") && !l.starts_with("<taskend"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(ours, theirs, "XML differs for {name}");
    }
}

#[test]
fn stdout_style_header_and_footer() {
    let run = reference("basic");
    let out = normal_of(&run, OutputOptions::default(), false);
    assert!(out.starts_with("Starting Nmap 7.93 ( https://nmap.org ) at 2026-11-22 10:40 UTC\n"));
    assert!(out.ends_with("\nNmap done: 1 IP address (1 host up) scanned in 0.12 seconds\n"));
    // The rest is the -oN body.
    let file = normal_of(&run, OutputOptions::default(), true);
    let body = |s: &str| s.lines().skip(1).take(5).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&out), body(&file));
}
