//! The XML reader on real Nmap 7.93 files, on our own output (round trips), and on broken
//! input: errors must name a line, and no input may make it panic.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::*;
use portolan_model::*;
use portolan_report::read::read_all_from;
use portolan_report::*;

fn nmap(name: &str) -> ScanRun {
    read_xml_file(data(&format!("nmap-{name}.xml")))
        .unwrap_or_else(|e| panic!("nmap-{name}.xml: {e}"))
}

#[test]
fn reads_a_plain_connect_scan() {
    let run = nmap("basic");
    assert_eq!(run.scanner, "nmap");
    assert_eq!(run.version, "7.93");
    assert_eq!(run.args, "nmap -sT -p 1-100,22,80 -oA basic 127.0.0.1");
    assert_eq!(run.start, 1795344023);
    assert_eq!(
        run.scaninfo,
        vec![ScanInfo {
            scan_type: ScanType::Connect,
            protocol: Protocol::Tcp,
            numservices: 100,
            services: "1-100".into(),
        }]
    );
    assert_eq!(run.hosts.len(), 1);
    let h = &run.hosts[0];
    assert_eq!(
        (h.starttime, h.endtime),
        (Some(1795344023), Some(1795344023))
    );
    assert_eq!(h.status, HostStatus::up("localhost-response"));
    assert_eq!(h.ip(), Some("127.0.0.1".parse().unwrap()));
    assert_eq!(h.hostname(), Some("localhost"));
    assert_eq!(h.extraports.len(), 1);
    let ep = &h.extraports[0];
    assert_eq!((ep.state, ep.count), (PortState::Closed, 99));
    assert_eq!(ep.reasons[0].reason, "conn-refused");
    assert_eq!(ep.reasons[0].proto, Some(Protocol::Tcp));
    assert_eq!(ep.reasons[0].port_list.len(), 99);
    assert!(!ep.reasons[0].port_list.contains(&22));
    assert_eq!(h.ports.len(), 1);
    let p = &h.ports[0];
    assert_eq!(
        (p.protocol, p.portid, p.state),
        (Protocol::Tcp, 22, PortState::Open)
    );
    assert_eq!(p.reason, "syn-ack");
    assert_eq!(p.service, Some(Service::from_table("ssh")));
    assert_eq!(
        h.times,
        Some(Times {
            srtt: 503,
            rttvar: 493,
            to: 100000
        })
    );
    let rs = run.runstats.as_ref().unwrap();
    assert_eq!(
        (rs.finished, rs.elapsed, rs.exit),
        (1795344023, 0.12, RunExit::Success)
    );
    assert_eq!((rs.hosts_up, rs.hosts_down, rs.hosts_total), (1, 0, 1));
}

#[test]
fn reads_an_aggressive_scan() {
    // -A: os, uptime, distance, tcpsequence, ipidsequence, tcptssequence, structured scripts.
    let run = nmap("full");
    let h = &run.hosts[0];
    let ids: Vec<u16> = h.ports.iter().map(|p| p.portid).collect();
    assert_eq!(ids, vec![22, 25, 2024, 8080]);
    let ssh = h.ports[0].service.as_ref().unwrap();
    assert_eq!(ssh.product.as_deref(), Some("OpenSSH"));
    assert_eq!(ssh.version.as_deref(), Some("9.2p1 Debian 2+deb12u3"));
    assert_eq!(ssh.extrainfo.as_deref(), Some("protocol 2.0"));
    assert_eq!(ssh.ostype.as_deref(), Some("Linux"));
    assert_eq!((ssh.method, ssh.conf), (ServiceMethod::Probed, 10));
    assert_eq!(ssh.cpes.len(), 2);
    assert_eq!(h.ports[0].reason_ttl, 64);
    assert_eq!(h.ports[1].state, PortState::Closed);
    assert_eq!(h.ports[1].reason, "reset");
    assert_eq!(h.ports[2].service.as_ref().unwrap().name, "tcpwrapped");
    let scripts: Vec<(&str, &str)> = h.ports[3]
        .scripts
        .iter()
        .map(|s| (s.id.as_str(), s.output.as_str()))
        .collect();
    assert_eq!(
        scripts,
        vec![
            ("http-server-header", "SimpleHTTP/0.6 Python/3.11.7"),
            ("http-title", "Directory listing for /"),
        ]
    );
    assert_eq!(h.times.map(|t| t.srtt), Some(67));
    assert!(run.runstats.is_some());
    let os = h.os.as_ref().expect("os");
    assert_eq!(os.matches[0].name, "Linux 5.0 - 5.2");
    assert_eq!((os.matches[0].accuracy, os.matches[0].line), (97, 68062));
    assert_eq!(h.distance, Some(0));
    assert_eq!(
        h.ipidsequence.as_ref().map(|s| s.class.as_str()),
        Some("All zeros")
    );
}

#[test]
fn reads_os_detection_and_traceroute() {
    // -A across a router: two hops.
    let run = nmap("os-a");
    let h = &run.hosts[0];
    let os = h.os.as_ref().expect("os");
    let used: Vec<(PortState, Protocol, u16)> = os
        .ports_used
        .iter()
        .map(|p| (p.state, p.proto, p.portid))
        .collect();
    assert_eq!(
        used,
        vec![
            (PortState::Open, Protocol::Tcp, 22),
            (PortState::Closed, Protocol::Tcp, 1),
            (PortState::Closed, Protocol::Udp, 35716),
        ]
    );
    assert_eq!(os.matches.len(), 10);
    let axis = &os.matches[3];
    assert_eq!(axis.name, "AXIS 210A or 211 Network Camera (Linux 2.6.17)");
    assert_eq!(axis.classes.len(), 2);
    assert_eq!(axis.classes[1].kind.as_deref(), Some("webcam"));
    assert_eq!(axis.classes[1].vendor, "AXIS");
    assert_eq!(axis.classes[1].osgen, None);
    assert_eq!(
        axis.classes[1].cpes,
        vec![
            "cpe:/h:axis:210a_network_camera",
            "cpe:/h:axis:211_network_camera"
        ]
    );
    assert_eq!(os.fingerprints.len(), 1);
    assert!(os.fingerprints[0].starts_with("OS:SCAN(V=7.93%"));
    assert!(os.fingerprints[0].ends_with(")\n"));
    assert_eq!(h.distance, Some(2));
    let up = h.uptime.as_ref().expect("uptime");
    assert!(up.lastboot.as_deref().is_some_and(|b| b.ends_with("2026")));
    let seq = h.tcpsequence.as_ref().expect("tcpsequence");
    assert_eq!(seq.difficulty, "Good luck!");
    assert_eq!(seq.values.split(',').count(), 6);
    assert_eq!(
        h.tcptssequence.as_ref().map(|t| t.class.as_str()),
        Some("other")
    );
    let trace = h.trace.as_ref().expect("trace");
    assert_eq!(
        (trace.port, trace.proto.as_deref()),
        (Some(1025), Some("tcp"))
    );
    let hops: Vec<(u32, Option<&str>)> = trace
        .hops
        .iter()
        .map(|h| (h.ttl, h.ipaddr.as_deref()))
        .collect();
    assert_eq!(
        hops,
        vec![(1, Some("198.18.200.62")), (2, Some("198.18.200.66"))]
    );
    // The directly connected host's trace names no probe.
    let near = &nmap("os-trace").hosts[0];
    let t = near.trace.as_ref().expect("trace");
    assert_eq!((t.port, t.proto.as_deref(), t.hops.len()), (None, None, 1));
}

#[test]
fn reads_structured_script_output_in_order() {
    let run = nmap("scripts");
    let pre = &run.prescripts[0];
    assert_eq!(pre.id, "p9fx-pre");
    let elem = |k: Option<&str>, v: &str| ScriptItem::Elem {
        key: k.map(str::to_string),
        value: v.to_string(),
    };
    let table = |k: Option<&str>, items: Vec<ScriptItem>| ScriptItem::Table {
        key: k.map(str::to_string),
        items,
    };
    assert_eq!(
        pre.content,
        vec![
            elem(Some("greeting"), "hello <&> \"world\" 'q'"),
            table(Some("list"), vec![elem(None, "alpha"), elem(None, "beta")]),
            table(
                Some("nested"),
                vec![
                    elem(Some("inner"), "x"),
                    elem(Some("count"), "3"),
                    table(Some("empty"), vec![]),
                ]
            ),
        ]
    );
    let h = &run.hosts[0];
    let ids: Vec<&str> = h.hostscripts.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, vec!["p9fx-host", "p9fx-plain"]);
    let host = &h.hostscripts[0];
    assert_eq!(host.output, "custom text for 198.18.200.62\n  second line");
    assert_eq!(
        host.content.last(),
        Some(&elem(Some("note"), "line one\nline two\ttab"))
    );
    assert!(h.hostscripts[1].content.is_empty());
    let post: Vec<&str> = run.postscripts.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(post, vec!["reverse-index", "ssh-hostkey", "p9fx-post"]);
    let rows = &run.postscripts[2].content[1];
    assert_eq!(
        rows,
        &table(
            Some("rows"),
            vec![
                elem(None, "r1"),
                table(None, vec![elem(Some("k"), "v")]),
                elem(None, "r3")
            ]
        )
    );
}

#[test]
fn reads_several_hosts_and_states() {
    let two = nmap("two");
    assert_eq!(two.verbose, 1);
    assert_eq!(two.hosts.len(), 2);
    let names: Vec<(HostnameType, &str)> = two.hosts[1]
        .hostnames
        .iter()
        .map(|h| (h.kind, h.name.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            (HostnameType::User, "localhost"),
            (HostnameType::Ptr, "localhost")
        ]
    );
    assert_eq!(two.hosts[0].ports.len(), 5);

    let multi = nmap("multi");
    let states: Vec<(PortState, u32)> = multi.hosts[0]
        .extraports
        .iter()
        .map(|e| (e.state, e.count))
        .collect();
    assert_eq!(
        states,
        vec![(PortState::Closed, 68), (PortState::Filtered, 31)]
    );
    assert_eq!(
        multi.hosts[0].extraports[1].reasons[0].port_list,
        (30..=60).collect::<Vec<_>>()
    );

    let udp = nmap("udp");
    assert_eq!(udp.scaninfo.len(), 2);
    assert_eq!(udp.scaninfo[1].scan_type, ScanType::Udp);
    let p = udp.hosts[0].ports.iter().find(|p| p.portid == 161).unwrap();
    assert_eq!(
        (p.protocol, p.state, p.reason.as_str()),
        (Protocol::Udp, PortState::Closed, "port-unreach")
    );

    let v6 = nmap("v6");
    assert_eq!(v6.hosts[0].addresses[0].addrtype, AddrType::Ipv6);
    assert_eq!(v6.hosts[0].ip(), Some("::1".parse().unwrap()));

    let sn = nmap("sn");
    let h = &sn.hosts[0];
    assert!(h.is_up() && h.ports.is_empty() && h.extraports.is_empty());
    assert_eq!((h.starttime, h.times), (None, None));
    assert!(sn.scaninfo.is_empty());
}

#[test]
fn every_reference_file_reads() {
    for entry in std::fs::read_dir(data("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            let run = read_xml_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!run.hosts.is_empty(), "{}", path.display());
        }
    }
    read_xml_file(data("golden/sample.xml")).unwrap();
}

#[test]
fn xml_round_trip_keeps_the_model() {
    let run = sample_run();
    let back = read_xml(xml_of(&run).as_bytes()).unwrap();
    assert_eq!(back, run);
}

/// Everything optional filled in, and text that needs escaping (but no character XML
/// cannot carry: those are written as `\xHH` text and so do not come back as they were).
fn busy_run() -> ScanRun {
    let mut run = sample_run();
    run.args = "portolan --script 'x' -p- \"a&b\" <c> -- ---".into();
    run.verbose = 2;
    run.debugging = 1;
    run.scaninfo.push(ScanInfo {
        scan_type: ScanType::Udp,
        protocol: Protocol::Udp,
        numservices: 2,
        services: "53,161".into(),
    });
    let h = &mut run.hosts[0];
    let mut udp = Port::new(Protocol::Udp, 161, PortState::OpenFiltered, "no-response");
    udp.reason_ip = Some("192.0.2.1".into());
    udp.service = Some(Service {
        name: "snmp".into(),
        product: Some("<&>\"' --".into()),
        version: Some("1.0\t(beta)".into()),
        extrainfo: Some("line1\nline2\r\nline3".into()),
        hostname: Some("dev.example".into()),
        ostype: Some("Linux".into()),
        devicetype: Some("router".into()),
        method: ServiceMethod::Probed,
        conf: 7,
        tunnel: None,
        servicefp: Some("SF-Port161-UDP:V=7.93%I=7%D=11/22%Time=1%P=x;".into()),
        cpes: vec!["cpe:/h:vendor:device".into()],
    });
    udp.scripts.push(Script {
        id: "snmp-info".into(),
        output: "\n  enterprise: net-snmp\n  engineIDFormat: unknown ✓ é".into(),
        content: Vec::new(),
    });
    h.ports.push(udp);
    h.extraports.push(ExtraPorts {
        state: PortState::OpenFiltered,
        count: 1,
        reasons: vec![ExtraReason {
            reason: "no-responses".into(),
            count: 1,
            proto: None,
            port_list: Vec::new(),
        }],
    });
    let rs = run.runstats.as_mut().unwrap();
    rs.exit = RunExit::Error;
    rs.errormsg = Some("Interrupted by user (Ctrl-C) -- results are partial".into());
    run
}

#[test]
fn xml_round_trip_with_escaping_and_every_field() {
    let run = busy_run();
    let xml = xml_of(&run);
    assert!(xml.contains("product=\"&lt;&amp;&gt;&quot;&apos; -&#45;\""));
    let back = read_xml(xml.as_bytes()).unwrap();
    assert_eq!(back, run);
}

#[test]
fn json_round_trip() {
    for run in [sample_run(), busy_run()] {
        let back = json::read(json_of(&run).as_bytes()).unwrap();
        assert_eq!(back, run);
    }
    // Each host is one line, between the header and the runstats.
    let text = json_of(&sample_run());
    assert_eq!(text.lines().count(), 4);
    serde_json::from_str::<serde_json::Value>(&text).unwrap();
}

#[test]
fn imported_runs_convert_to_json_and_back() {
    for name in [
        "basic", "full", "two", "multi", "sn", "udp", "v6", "os-a", "os-trace", "os-v", "scripts",
        "trace2",
    ] {
        let run = nmap(name);
        let mut w = JsonWriter::new(Vec::new(), OutputOptions::default());
        feed(&mut w, &run);
        let back = json::read(&w.into_inner()[..]).unwrap();
        assert_eq!(back, run, "{name}");
    }
}

// ---- broken input -------------------------------------------------------------------

fn err(doc: &str) -> ReadError {
    match read_xml(doc.as_bytes()) {
        Ok(_) => panic!("accepted:\n{doc}"),
        Err(e) => e,
    }
}

fn basic_text() -> String {
    std::fs::read_to_string(data("nmap-basic.xml")).unwrap()
}

#[test]
fn truncated_file() {
    let text = basic_text();
    let cut = &text[..text.find("<port ").unwrap()];
    let e = err(cut);
    assert!(matches!(e, ReadError::Truncated { line: 17 }), "{e}");
    assert!(e.to_string().starts_with("line 17: "), "{e}");
    // An interrupted scan: everything but runstats and the closing tag.
    let e = err(&text[..text.find("<runstats>").unwrap()]);
    assert!(matches!(e, ReadError::Truncated { .. }), "{e}");
}

#[test]
fn wrong_root() {
    let e = err("<?xml version=\"1.0\"?>\n<!DOCTYPE html>\n<html><body/></html>\n");
    assert!(
        matches!(e, ReadError::NotNmapRun { line: 3, ref found } if found == "html"),
        "{e}"
    );
}

#[test]
fn non_integer_start_and_time() {
    let text = basic_text();
    let e = err(&text.replace("start=\"1795344023\"", "start=\"yesterday\""));
    assert!(
        matches!(
            e,
            ReadError::InvalidAttribute {
                line: 5,
                attribute: "start",
                ..
            }
        ),
        "{e}"
    );
    let e = err(&text.replace("<finished time=\"1795344023\"", "<finished time=\"1.5e9\""));
    assert!(
        matches!(
            e,
            ReadError::InvalidAttribute {
                line: 21,
                attribute: "time",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn unknown_port_state_and_missing_attributes() {
    let text = basic_text();
    let e = err(&text.replace("state state=\"open\"", "state state=\"ajar\""));
    assert!(
        matches!(e, ReadError::UnknownPortState { line: 17, ref value } if value == "ajar"),
        "{e}"
    );
    let e = err(&text.replace(" portid=\"22\"", ""));
    assert!(
        matches!(
            e,
            ReadError::MissingAttribute {
                line: 17,
                attribute: "portid",
                ..
            }
        ),
        "{e}"
    );
    let e = err(&text.replace("portid=\"22\"", "portid=\"70000\""));
    assert!(
        matches!(e, ReadError::InvalidAttribute { line: 17, .. }),
        "{e}"
    );
    let e = err(&text.replace(
        "<state state=\"open\" reason=\"syn-ack\" reason_ttl=\"0\"/>",
        "",
    ));
    assert!(
        matches!(
            e,
            ReadError::MissingElement {
                line: 17,
                element: "state",
                ..
            }
        ),
        "{e}"
    );
    let e = err(&text.replace("scanner=\"nmap\" ", ""));
    assert!(
        matches!(
            e,
            ReadError::MissingAttribute {
                line: 5,
                attribute: "scanner",
                ..
            }
        ),
        "{e}"
    );
}

/// `nmap-scripts.xml` with `from` replaced by `to` (once), and the line of the change.
fn scripts_with(from: &str, to: &str) -> (String, u64) {
    let text = std::fs::read_to_string(data("nmap-scripts.xml")).unwrap();
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in the fixture"));
    let line = text[..at].matches('\n').count() as u64 + 1;
    (text.replacen(from, to, 1), line)
}

/// `nmap-os-a.xml` with `from` replaced by `to` (once), and the line of the change.
fn os_with(from: &str, to: &str) -> (String, u64) {
    let text = std::fs::read_to_string(data("nmap-os-a.xml")).unwrap();
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in the fixture"));
    let line = text[..at].matches('\n').count() as u64 + 1;
    (text.replacen(from, to, 1), line)
}

fn assert_misplaced(e: &ReadError, want_line: u64, want_element: &str, want_parent: &str) {
    match e {
        ReadError::Misplaced {
            line,
            element,
            parent,
        } => assert_eq!(
            (*line, element.as_str(), parent.as_str()),
            (want_line, want_element, want_parent),
            "{e}"
        ),
        other => panic!("expected Misplaced, got {other}"),
    }
    assert!(
        e.to_string().starts_with(&format!("line {want_line}: ")),
        "{e}"
    );
}

#[test]
fn attribute_line_breaks_are_normalised_as_xml_requires() {
    // A literal line break or tab in an attribute is a space; &#xa; is a line break.
    let (doc, _) = scripts_with(
        "output=\"plain: 198.18.200.62\"",
        "output=\"plain:\r\n198.18.200.62\tx&#xa;y\"",
    );
    let run = read_xml(doc.as_bytes()).unwrap();
    let plain = run.hosts[0]
        .hostscripts
        .iter()
        .find(|s| s.id == "p9fx-plain")
        .unwrap();
    assert_eq!(plain.output, "plain: 198.18.200.62 x\ny");
}

#[test]
fn malformed_os_elements_are_refused_with_their_line() {
    // An osmatch without its name.
    let (doc, line) = os_with("<osmatch name=\"Linux 3.2\" ", "<osmatch ");
    let e = err(&doc);
    assert!(
        matches!(e, ReadError::MissingAttribute { line: l, ref element, attribute: "name" }
            if l == line && element == "osmatch"),
        "{e}"
    );
    // Accuracies that are not a whole percentage.
    for bad in ["96%", "101", "-1", "9.5", ""] {
        let (doc, line) = os_with(
            "accuracy=\"96\" line=\"68140\"",
            &format!("accuracy=\"{bad}\" line=\"68140\""),
        );
        let e = err(&doc);
        assert!(
            matches!(e, ReadError::InvalidAttribute { line: l, attribute: "accuracy", .. } if l == line),
            "{bad}: {e}"
        );
    }
    let (doc, line) = os_with(
        "osgen=\"5.X\" accuracy=\"96\"",
        "osgen=\"5.X\" accuracy=\"1000\"",
    );
    let e = err(&doc);
    assert!(
        matches!(e, ReadError::InvalidAttribute { line: l, ref element, attribute: "accuracy", .. }
            if l == line && element == "osclass"),
        "{e}"
    );
    // osclass without the vendor nmap.dtd requires.
    let (doc, line) = os_with(" vendor=\"AXIS\"", "");
    let e = err(&doc);
    assert!(
        matches!(e, ReadError::MissingAttribute { line: l, attribute: "vendor", .. } if l == line),
        "{e}"
    );
    // OS elements outside <os>, and foreign elements inside it.
    let (doc, line) = os_with(
        "<distance ",
        "<osmatch name=\"x\" accuracy=\"1\" line=\"2\"/><distance ",
    );
    assert_misplaced(&err(&doc), line, "osmatch", "host");
    let (doc, line) = os_with("<osfingerprint", "<elem>x</elem><osfingerprint");
    assert_misplaced(&err(&doc), line, "elem", "os");
    // Classes beside the matches (Nmap's --deprecated-xml-osclass) are passed over.
    let (doc, _) = os_with(
        "<osmatch name=\"Linux 3.2\"",
        "<osclass vendor=\"v\" osfamily=\"f\" accuracy=\"9\"/>\n<osmatch name=\"Linux 3.2\"",
    );
    assert_eq!(read_xml(doc.as_bytes()).unwrap(), nmap("os-a"));
    let (doc, line) = os_with("<cpe>cpe:/o:linux:linux_kernel:5</cpe>", "<elem>x</elem>");
    assert_misplaced(&err(&doc), line, "elem", "osclass");
    // The other host elements: required attributes and numbers.
    let (doc, line) = os_with("<distance value=\"2\"/>", "<distance value=\"two\"/>");
    let e = err(&doc);
    assert!(
        matches!(e, ReadError::InvalidAttribute { line: l, attribute: "value", .. } if l == line),
        "{e}"
    );
    let (doc, line) = os_with("<tcpsequence index=\"", "<tcpsequence idx=\"");
    let e = err(&doc);
    assert!(
        matches!(e, ReadError::MissingAttribute { line: l, attribute: "index", .. } if l == line),
        "{e}"
    );
    let (doc, line) = os_with("<hop ttl=\"2\"", "<hop ttl=\"second\"");
    let e = err(&doc);
    assert!(
        matches!(e, ReadError::InvalidAttribute { line: l, attribute: "ttl", .. } if l == line),
        "{e}"
    );
    let (doc, line) = os_with("<times ", "<hop ttl=\"3\"/><times ");
    assert_misplaced(&err(&doc), line, "hop", "host");
}

#[test]
fn malformed_script_elements_are_refused_with_their_line() {
    // elem outside a script: in a port, in a host, in hostscript, at the top.
    let (doc, line) = scripts_with("</service>", "</service><elem key=\"k\">v</elem>");
    assert_misplaced(&err(&doc), line, "elem", "port");
    let (doc, line) = scripts_with("<hostscript>", "<table key=\"t\"/><hostscript>");
    assert_misplaced(&err(&doc), line, "table", "host");
    let (doc, line) = scripts_with("<hostscript>", "<hostscript><elem>x</elem>");
    assert_misplaced(&err(&doc), line, "elem", "hostscript");
    let (doc, line) = scripts_with("<prescript>", "<elem>x</elem><prescript>");
    assert_misplaced(&err(&doc), line, "elem", "nmaprun");
    // Inside a script only elem and table; inside an elem only text.
    let (doc, line) = scripts_with(
        "<elem key=\"inner\">x</elem>",
        "<script id=\"x\" output=\"\"/>",
    );
    assert_misplaced(&err(&doc), line, "script", "table");
    let (doc, line) = scripts_with(
        "<elem key=\"inner\">x</elem>",
        "<elem key=\"inner\">x<b/></elem>",
    );
    assert_misplaced(&err(&doc), line, "b", "elem");
    // A script without its id.
    let (doc, line) = scripts_with("<script id=\"p9fx-plain\"", "<script");
    let e = err(&doc);
    assert!(
        matches!(e, ReadError::MissingAttribute { line: l, attribute: "id", .. } if l == line),
        "{e}"
    );
    // A table that is never closed is a syntax error, not a silent truncation of the script.
    let (doc, _) = scripts_with(
        "</table>\n</table>\n</script></prescript>",
        "</table>\n</script></prescript>",
    );
    assert!(err(&doc).line().is_some());
}

#[test]
fn malformed_xml_names_the_line() {
    let text = basic_text();
    let e = err(&text.replace("</hostnames>", "</hostname>"));
    assert!(matches!(e, ReadError::Syntax { line: 13, .. }), "{e}");
    let e = err(&text.replace("addrtype=\"ipv4\"", "addrtype=\"ipv4\" addrtype=\"ipv6\""));
    assert!(matches!(e, ReadError::Syntax { line: 10, .. }), "{e}");
    let e = err(&text.replace("name=\"localhost\"", "name=\"local&bogus;host\""));
    assert!(matches!(e, ReadError::Syntax { line: 12, .. }), "{e}");
}

#[test]
fn garbage_bytes() {
    let garbage: &[&[u8]] = &[
        b"",
        b"\x00\x01\x02\xff\xfe\xfd",
        b"\xef\xbb\xbf",
        b"hello world\n",
        b"{\"portolan_json_version\":1}",
        b"<",
        b"<<<<>>>>",
        b"<nmaprun",
        b"<nmaprun scanner=\"nmap\"><host><ports><port protocol=\"tcp\" portid=\"1\">",
        b"<nmaprun scanner=\"\xff\xfe\"></nmaprun>",
        b"<nmaprun scanner='nmap'>\n<host>\n<status state='up'/>\n<ports>\n<port protocol='tcp' portid='1'><state state='open'/></port></ports></host></nmaprun>",
    ];
    for (i, g) in garbage.iter().enumerate() {
        let r = catch_unwind(|| read_xml(*g));
        match r {
            Ok(Ok(run)) => assert!(i >= 10, "garbage {i} accepted: {run:?}"),
            Ok(Err(e)) => assert!(e.line().is_some_and(|l| l >= 1), "garbage {i}: {e}"),
            Err(_) => panic!("garbage {i} made the reader panic"),
        }
    }
}

/// Tiny deterministic PRNG (xorshift64*), to need no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    for name in [
        "nmap-full.xml",
        "nmap-two.xml",
        "nmap-scripts.xml",
        "golden/sample.xml",
    ] {
        let bytes = std::fs::read(data(name)).unwrap();
        let end = bytes
            .windows(b"</nmaprun>".len())
            .position(|w| w == b"</nmaprun>")
            .unwrap()
            + b"</nmaprun>".len();
        for len in 0..bytes.len() {
            let r = catch_unwind(AssertUnwindSafe(|| read_xml(&bytes[..len])))
                .unwrap_or_else(|_| panic!("{name} cut at {len}: panic"));
            match r {
                Ok(_) => assert!(len >= end, "{name} cut at {len} was accepted"),
                Err(ReadError::Truncated { line } | ReadError::NoRoot { line }) => {
                    assert!(line >= 1)
                }
                Err(e) => panic!("{name} cut at {len}: unexpected {e}"),
            }
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for name in [
        "nmap-full.xml",
        "nmap-multi.xml",
        "nmap-scripts.xml",
        "golden/sample.xml",
    ] {
        let original = std::fs::read(data(name)).unwrap();
        for round in 0..1500 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                // Mostly bytes that matter to XML, sometimes anything.
                const SPICY: &[u8] = b"<>&;\"'/=!?-\n\x00\xff";
                bytes[at] = if rng.below(3) == 0 {
                    rng.next() as u8
                } else {
                    SPICY[rng.below(SPICY.len())]
                };
            }
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            let r = catch_unwind(AssertUnwindSafe(|| read_xml(&bytes[..])))
                .unwrap_or_else(|_| panic!("{name} round {round}: panic"));
            if let Err(e) = r {
                let line = e.line();
                assert!(
                    line.is_some_and(|l| (1..=lines).contains(&l)),
                    "{name} round {round}: line {line:?} out of range: {e}"
                );
            }
        }
    }
}

/// Nmap's `--append-output -oX` writes each run as a whole document after the last: this
/// fixture is two Nmap files one after the other, as Nmap leaves them.
#[test]
fn an_appended_nmap_file_gives_every_run_and_the_last_by_default() {
    let path = data("nmap-appended.xml");
    let runs = read_all(&path).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0], nmap("basic"));
    assert_eq!(runs[1], nmap("sv"));
    assert_eq!(read_any(&path).unwrap(), nmap("sv"));
    assert_eq!(read_xml_file(&path).unwrap(), nmap("sv"));
}

/// Our own writers, with the file opened for appending as `--append-output` opens it.
#[test]
fn runs_appended_by_our_writers_are_all_read() {
    let dir = std::env::temp_dir().join(format!("portolan-append-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let first = sample_run();
    let mut second = nmap("sv");
    second.scanner = "portolan".into();
    for ext in ["xml", "json"] {
        let path = dir.join(format!("runs.{ext}"));
        let _ = std::fs::remove_file(&path);
        for run in [&first, &second] {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            if ext == "xml" {
                let mut w = XmlWriter::new(f, OutputOptions::default());
                feed(&mut w, run);
            } else {
                let mut w = JsonWriter::new(f, OutputOptions::default());
                feed(&mut w, run);
            }
        }
        let runs = read_all(&path).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_eq!(runs.len(), 2, "{ext}");
        assert_eq!(runs[0].start, first.start, "{ext}");
        assert_eq!(runs[0].hosts.len(), first.hosts.len(), "{ext}");
        assert_eq!(runs[1].args, second.args, "{ext}");
        assert_eq!(runs[1].hosts, second.hosts, "{ext}");
        assert_eq!(read_any(&path).unwrap().args, second.args, "{ext}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// After the last `</nmaprun>` only another run (with its prologue) may come, and a second
/// run cut short is reported as such, with its line.
#[test]
fn what_follows_a_run_must_be_another_whole_run() {
    let one = std::fs::read_to_string(data("nmap-basic.xml")).unwrap();
    let lines = one.lines().count() as u64;
    let e = read_all_from(format!("{one}<host/>").as_bytes()).unwrap_err();
    assert!(matches!(e, ReadError::NotNmapRun { .. }), "{e}");
    assert_eq!(e.line(), Some(lines + 1), "{e}");
    let e = read_all_from(format!("{one}stray words\n").as_bytes()).unwrap_err();
    assert!(e.to_string().contains("after </nmaprun>"), "{e}");
    let cut = &one[..one.len() / 2];
    let e = read_all_from(format!("{one}{cut}").as_bytes()).unwrap_err();
    assert!(matches!(e, ReadError::Truncated { .. }), "{e}");
    assert!(e.line().unwrap() > lines, "{e}");
}

/// Records what a stream is handed, in order.
#[derive(Default)]
struct Events(Vec<String>);

impl xml_reader::RunStream for Events {
    fn host(&mut self, host: Host) -> Result<(), ReadError> {
        self.0.push(format!("host {}", host.addr_str()));
        Ok(())
    }
    fn run(&mut self, run: ScanRun) -> Result<(), ReadError> {
        assert!(run.hosts.is_empty(), "streamed hosts are not kept");
        self.0.push(format!("run {}", run.args));
        Ok(())
    }
}

/// Streaming readers hand each host over as it is read, not after the run: a file cut after
/// its first host has given that host before the error (so no run is held whole).
#[test]
fn streaming_hands_each_host_over_as_it_is_read() {
    let mut run = sample_run();
    run.hosts.truncate(2);
    assert_eq!(run.hosts.len(), 2, "the sample has two hosts");
    let first = run.hosts[0].addr_str().to_string();
    let second = run.hosts[1].addr_str().to_string();
    for (kind, text) in [("xml", xml_of(&run)), ("json", json_of(&run))] {
        let mut ev = Events::default();
        let twice = format!("{text}{text}");
        read::stream_runs_from(twice.as_bytes(), &mut ev).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let one = [
            format!("host {first}"),
            format!("host {second}"),
            format!("run {}", run.args),
        ];
        assert_eq!(ev.0, [one.clone(), one].concat(), "{kind}");

        // Cut inside the second host.
        let at = text
            .rfind(&format!("\"{second}\""))
            .unwrap_or_else(|| panic!("{kind}: {second}"));
        let mut ev = Events::default();
        let e = read::stream_runs_from(&text.as_bytes()[..at], &mut ev).unwrap_err();
        assert_eq!(ev.0, [format!("host {first}")], "{kind}: {e}");
    }
}
