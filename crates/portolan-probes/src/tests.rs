//! Parser and matcher tests on hand-written fixtures (not Nmap's file; see
//! `tests/nmap_file.rs` for that).

use super::*;
use crate::parse::ParseErrorKind as K;

/// Every directive once, with odd delimiters, flags, escapes and both match kinds.
/// Line numbers matter: the tests below refer to them.
const FIXTURE: &str = "\
# a comment
Exclude 53,T:9100-9102,U:30000-30010

Probe TCP NULL q||
totalwaitms 6000
tcpwrappedms 3000
match ftp m|^220 \\(toyFTPd ([\\d.]+)\\)\\r\\n| p/toyFTPd/ v/$1/ cpe:/a:toy:toyftpd:$1/
softmatch ftp m/^220 [-.\\w ]+ftp.*\\r\\n$/i
match ftp m|^220 Welcome to ([\\w]+) FTP| p/$1/ i/generic/
match banner m=BANNER (\\w+)= p/banner/ v/$1/ o|Linux| d{router{ h/host-$1/ cpe:/o:linux:linux_kernel/a
Probe TCP GetReq q|GET / HTTP/1.0\\r\\n\\r\\n|
rarity 1
ports 80,8000-8010
sslports 443
fallback Help
match http m|^HTTP/1\\.[01] \\d\\d\\d .*\\r\\nServer: toyhttpd/([\\d.]+)\\r\\n|s p/toyhttpd/ v/$1/
softmatch http m|^HTTP/1\\.[01] \\d\\d\\d|
Probe TCP Help q/HELP\\r\\n/
rarity 8
ports 2121
match help-svc m|^HELP-OK (\\S+)| p/helper/ v/$SUBST(1,\"_\",\".\")/
match ftp m|^214 toyFTPd| p/toyFTPd/
Probe UDP Stat q|\\0\\x01\\xff| no-payload
rarity 3
match stat m|^\\x01(..)$|s p/stat/ v/$I(1,\">\")/ i/le $I(1,\"<\")/
Probe TCP Binary q=\\a\\b\\f\\t\\v\\\\=
rarity 9
match bin m|^(.+)$|s p/$P(1)/
";

fn db() -> ProbeDb {
    let (db, errors) = parse(FIXTURE);
    assert!(errors.is_empty(), "{errors:#?}");
    db
}

fn idx(db: &ProbeDb, proto: Proto, name: &str) -> usize {
    db.probe_by_name(proto, name).expect(name)
}

#[test]
fn fixture_parses_every_directive() {
    let db = db();
    assert_eq!(db.probes.len(), 5);
    assert!(db.is_excluded(Proto::Tcp, 53) && db.is_excluded(Proto::Udp, 53));
    assert!(db.is_excluded(Proto::Tcp, 9101) && !db.is_excluded(Proto::Udp, 9101));
    assert!(db.is_excluded(Proto::Udp, 30005) && !db.is_excluded(Proto::Tcp, 30005));
    assert!(!db.is_excluded(Proto::Tcp, 80));

    let null = &db.probes[0];
    assert_eq!(
        (null.proto, null.name.as_str(), null.line),
        (Proto::Tcp, "NULL", 4)
    );
    assert!(null.payload.is_empty());
    assert_eq!(null.total_wait, Duration::from_millis(6000));
    assert_eq!(null.tcpwrapped_wait, Duration::from_millis(3000));
    assert_eq!(null.rarity, parse::DEFAULT_RARITY);
    assert_eq!(null.matches.len(), 4);
    assert_eq!(db.null_probe(), Some(0));

    let m = &null.matches[1];
    assert_eq!(
        (m.service.as_str(), m.soft, m.caseless, m.dotall, m.line),
        ("ftp", true, true, false, 8)
    );
    let m = &null.matches[3];
    assert_eq!(m.service, "banner");
    assert_eq!(m.version.ostype.as_ref().unwrap().source(), "Linux");
    assert_eq!(m.version.devicetype.as_ref().unwrap().source(), "router");
    assert_eq!(m.version.cpes.len(), 1);

    let get = &db.probes[1];
    assert_eq!(get.payload, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(get.rarity, 1);
    assert_eq!(get.total_wait, parse::DEFAULT_TOTAL_WAIT);
    assert!(get.ports.contains(80) && get.ports.contains(8005) && !get.ports.contains(443));
    assert!(get.sslports.contains(443));
    assert_eq!(get.fallback, vec![2]);
    assert!(get.matches[0].dotall && !get.matches[0].caseless);

    let stat = &db.probes[3];
    assert_eq!(stat.proto, Proto::Udp);
    assert_eq!(stat.payload, b"\0\x01\xff");
    assert!(stat.no_payload);
    assert!(!db.probes[1].no_payload);

    assert_eq!(db.probes[4].payload, b"\x07\x08\x0c\t\x0b\\");
}

#[test]
fn hard_match_with_version_fields() {
    let db = db();
    let f = db
        .match_response(0, b"220 (toyFTPd 3.0.3)\r\n", None)
        .unwrap();
    assert_eq!(f.service, "ftp");
    assert!(!f.soft);
    assert_eq!(f.product.as_deref(), Some("toyFTPd"));
    assert_eq!(f.version.as_deref(), Some("3.0.3"));
    assert_eq!(f.info, None);
    assert_eq!(f.cpes, vec!["cpe:/a:toy:toyftpd:3.0.3"]);
    assert_eq!((f.matched_probe, f.line), (0, 7));

    let f = db.match_response(0, b"BANNER r2d2", None).unwrap();
    assert_eq!(f.product.as_deref(), Some("banner"));
    assert_eq!(f.version.as_deref(), Some("r2d2"));
    assert_eq!(f.hostname.as_deref(), Some("host-r2d2"));
    assert_eq!(f.ostype.as_deref(), Some("Linux"));
    assert_eq!(f.devicetype.as_deref(), Some("router"));
    assert_eq!(f.cpes, vec!["cpe:/o:linux:linux_kernel"]);

    assert_eq!(db.match_response(0, b"nothing here", None), None);
    assert_eq!(db.match_response(99, b"220 (toyFTPd 1)\r\n", None), None);
}

#[test]
fn softmatch_then_hard_match_of_same_service() {
    let db = db();
    // Line 8 (soft ftp) matches first; line 9 (hard ftp) still counts after it.
    let f = db
        .match_response(0, b"220 Welcome to Acme FTP\r\n", None)
        .unwrap();
    assert!(!f.soft);
    assert_eq!((f.service.as_str(), f.line), ("ftp", 9));
    assert_eq!(f.product.as_deref(), Some("Acme"));
    assert_eq!(f.info.as_deref(), Some("generic"));

    // Only the softmatch: returned as soft.
    let f = db
        .match_response(0, b"220 some ftp server\r\n", None)
        .unwrap();
    assert!(f.soft);
    assert_eq!((f.service.as_str(), f.line), ("ftp", 8));
    assert_eq!(f.product, None);
}

#[test]
fn softmatch_narrows_later_matches() {
    let db = db();
    let help = idx(&db, Proto::Tcp, "Help");
    // Without narrowing, the Help probe's first line (help-svc) wins.
    let f = db.match_response(help, b"HELP-OK 1_2_3", None).unwrap();
    assert_eq!(f.service, "help-svc");
    assert_eq!(f.version.as_deref(), Some("1.2.3"));
    // After an ftp softmatch only ftp lines count.
    assert_eq!(db.match_response(help, b"HELP-OK 1_2_3", Some("ftp")), None);
    let f = db
        .match_response(help, b"214 toyFTPd ready", Some("ftp"))
        .unwrap();
    assert_eq!((f.service.as_str(), f.soft), ("ftp", false));
    // Within one response: the http softmatch (line 17) narrows, so the NULL probe's
    // banner line (unanchored) is not taken even though it matches.
    let get_only = db.match_response(0, b"HTTP/1.0 200 OK\r\nX: y\r\n\r\nBANNER x", None);
    assert_eq!(get_only.unwrap().service, "banner");
    let get = idx(&db, Proto::Tcp, "GetReq");
    let f = db
        .match_response(get, b"HTTP/1.0 200 OK\r\nX: y\r\n\r\nBANNER x", None)
        .unwrap();
    assert_eq!((f.service.as_str(), f.soft, f.line), ("http", true, 17));
}

#[test]
fn fallback_order_then_null() {
    let db = db();
    let get = idx(&db, Proto::Tcp, "GetReq");
    let help = idx(&db, Proto::Tcp, "Help");
    assert_eq!(db.match_chain(get), vec![get, help, 0]);
    assert_eq!(db.match_chain(help), vec![help, 0]);
    assert_eq!(db.match_chain(0), vec![0]);
    let stat = idx(&db, Proto::Udp, "Stat");
    // UDP: no NULL fallback.
    assert_eq!(db.match_chain(stat), vec![stat]);

    // GetReq's own line first (dotall: `.*` crosses lines).
    let f = db
        .match_response(
            get,
            b"HTTP/1.1 200 OK\r\nDate: x\r\nServer: toyhttpd/2.4\r\n\r\n",
            None,
        )
        .unwrap();
    assert_eq!(
        (f.service.as_str(), f.version.as_deref(), f.matched_probe),
        ("http", Some("2.4"), get)
    );
    // Then its fallback Help's lines.
    let f = db.match_response(get, b"HELP-OK 9_9", None).unwrap();
    assert_eq!((f.service.as_str(), f.matched_probe), ("help-svc", help));
    // Then NULL's.
    let f = db
        .match_response(get, b"220 (toyFTPd 1.0)\r\n", None)
        .unwrap();
    assert_eq!((f.service.as_str(), f.matched_probe), ("ftp", 0));
    // A UDP probe never falls back to the TCP NULL probe.
    assert_eq!(
        db.match_response(stat, b"220 (toyFTPd 1.0)\r\n", None),
        None
    );
}

#[test]
fn int_and_printable_templates_on_binary_responses() {
    let db = db();
    let stat = idx(&db, Proto::Udp, "Stat");
    let f = db.match_response(stat, b"\x01\x01\x00", None).unwrap();
    assert_eq!(f.version.as_deref(), Some("256"));
    assert_eq!(f.info.as_deref(), Some("le 1"));
    // Dotall: `.` matches \n too.
    let f = db.match_response(stat, b"\x01\n\n", None).unwrap();
    assert_eq!(f.version.as_deref(), Some("2570"));

    let bin = idx(&db, Proto::Tcp, "Binary");
    let f = db
        .match_response(bin, b"A\x00B\xffC\r\n\xe9", None)
        .unwrap();
    assert_eq!(f.product.as_deref(), Some("ABC"));
}

#[test]
fn non_utf8_captures_come_out_lossy() {
    let db = db();
    let f = db.match_response(0, b"BANNER caf\xe9", None);
    // \w does not match 0xe9 without UTF/UCP: capture is "caf".
    assert_eq!(f.unwrap().version.as_deref(), Some("caf"));
    let text = "Probe TCP X q|x|\nmatch raw m|^R (.*)| v/$1/\n";
    let (db, errors) = parse(text);
    assert!(errors.is_empty());
    let f = db.match_response(0, b"R caf\xe9 \xff\xfe", None).unwrap();
    assert_eq!(f.version.as_deref(), Some("caf\u{fffd} \u{fffd}\u{fffd}"));
}

#[test]
fn caseless_flag() {
    let db = db();
    let f = db
        .match_response(0, b"220 My FTP Server\r\n", None)
        .unwrap();
    assert!(f.soft);
    let text = "Probe TCP X q|x|\nmatch a m|^abc|\n";
    let (db2, _) = parse(text);
    assert!(db2.match_response(0, b"ABC", None).is_none());
    assert!(db2.match_response(0, b"abc", None).is_some());
}

#[test]
fn response_is_capped() {
    let text = "Probe TCP X q|x|\nmatch tail m|TAIL$|\n";
    let (db, _) = parse(text);
    let mut resp = vec![b'a'; MAX_SUBJECT - 4];
    resp.extend_from_slice(b"TAIL");
    assert!(db.match_response(0, &resp, None).is_some());
    resp.insert(0, b'a');
    assert!(db.match_response(0, &resp, None).is_none());
}

#[test]
fn catastrophic_backtracking_is_bounded() {
    // (a+)+$ on "aaaa…b" backtracks exponentially; the match limit stops it.
    let text = "Probe TCP X q|x|\nmatch evil m|^(a+)+$|\nmatch good m|^a|\n";
    let (db, errors) = parse(text);
    assert!(errors.is_empty());
    let mut resp = vec![b'a'; 40];
    resp.push(b'b');
    // The evil pattern's own attempt ends in a limit error, not a match or a hang...
    let evil = &db.probes[0].matches[0];
    assert_eq!(evil.service, "evil");
    assert!(
        evil.regex.captures(&resp).is_err(),
        "the match limit stops the backtracking"
    );
    // ... which counts as no match, so the next line decides.
    let f = db.match_response(0, &resp, None).unwrap();
    assert_eq!(f.service, "good");
}

#[test]
fn malformed_lines_are_reported_and_skipped() {
    let text = "\
ports 80
Probe TCP NULL q||
match ok1 m|^ok1|
match bad m|^(unclosed|
bogus directive
match nodelim m|abc
match flags m|x|q
match tmpl m|^x(y)| v/$2/
match tmpl2 m|^x| p/$Q(1)/
match field m|^x| z/what/
Probe SCTP X q|x|
match orphan m|^o|
Probe TCP Esc q|\\xZZ|
Probe TCP Trail q|x| extra
Probe TCP Good q|hi|
rarity 10
rarity 4
rarity 5
ports 1-x
totalwaitms soon
fallback Nope, NULL
match ok2 m|^ok2|
Exclude 1
Exclude 2
match dup m|^d| p/a/ p/b/
match lim m|(*LIMIT_MATCH=1)x|
";
    let (db, errors) = parse(text);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(
        lines,
        vec![1, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 16, 18, 19, 20, 21, 24, 25, 26],
        "{errors:#?}"
    );
    assert_eq!(errors[0].kind, K::OutsideProbe("ports"));
    assert!(matches!(errors[1].kind, K::Regex(_)));
    assert_eq!(errors[2].kind, K::UnknownDirective("bogus".into()));
    assert!(matches!(errors[5].kind, K::Template(_)));
    assert!(matches!(errors[6].kind, K::Template(_)));
    assert_eq!(
        errors[11].kind,
        K::Malformed {
            directive: "rarity",
            reason: "must be a number 1-9".into()
        }
    );
    assert_eq!(errors[12].kind, K::Duplicate("rarity"));
    assert_eq!(errors[15].kind, K::UnknownFallback("Nope".into()));
    assert_eq!(errors[16].kind, K::Duplicate("Exclude"));
    // Displayed with the line number.
    assert!(errors[0].to_string().starts_with("line 1: "));

    // What was good still loaded: line 12's match belongs to the bad SCTP probe and is
    // skipped silently.
    let names: Vec<&str> = db.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["NULL", "Good"]);
    assert_eq!(db.probes[0].matches.len(), 1);
    assert_eq!(db.probes[1].rarity, 4);
    assert_eq!(db.probes[1].fallback, vec![0], "NULL may be named");
    // A fallback may name a probe of the other protocol when its own has none by that name.
    let (cross, cross_errors) =
        parse("Probe UDP U q|u|\nmatch u m|^u|\nProbe TCP T q|t|\nfallback U\n");
    assert!(cross_errors.is_empty(), "{cross_errors:?}");
    assert_eq!(cross.probes[1].fallback, vec![0]);
    let f = cross.match_response(1, b"u", None);
    assert_eq!(f.map(|f| f.service), Some("u".into()));
    assert_eq!(db.probes[1].matches.len(), 1);
    assert!(db.is_excluded(Proto::Tcp, 1) && !db.is_excluded(Proto::Tcp, 2));
    assert!(db.match_response(1, b"ok2", None).is_some());
    assert!(
        db.match_response(1, b"ok1", None).is_some(),
        "NULL fallback"
    );
}

#[test]
fn never_panics_on_odd_text() {
    for text in [
        "",
        "\n\n",
        "Probe",
        "Probe TCP",
        "Probe TCP X",
        "Probe TCP X q",
        "Probe TCP X q|",
        "Probe TCP X qé€é",
        "Probe TCP X q||\nmatch",
        "Probe TCP X q||\nmatch x",
        "Probe TCP X q||\nmatch x m",
        "Probe TCP X q||\nmatch x m€",
        "Probe TCP X q||\nmatch x m€a€ p€",
        "Probe TCP X q||\nmatch x m|a| cpe:",
        "Probe TCP X q||\nmatch x m|a| cpe:€x€a",
        "Probe TCP X q||\nmatch x m|(a)| v/$P(",
        "Probe TCP X q||\nmatch x m|(a)| v/$SUBST(1,\"",
        "Probe TCP X q||\nfallback ,,,\nExclude T:\nExclude -",
        "\u{0}\u{1}Probe\tTCP\tX\tq||\r\nrarity\t\r\n",
    ] {
        let (db, _errors) = parse(text);
        for p in 0..db.probes.len() {
            let _ = db.match_response(p, b"a\0\xff", None);
        }
        let _ = db.probe_order(Proto::Tcp, 80, false, 9);
    }
}

#[test]
fn probe_order_intensity_and_ports() {
    let db = db();
    let get = idx(&db, Proto::Tcp, "GetReq"); // rarity 1, ports 80,8000-8010, ssl 443
    let help = idx(&db, Proto::Tcp, "Help"); // rarity 8, ports 2121
    let bin = idx(&db, Proto::Tcp, "Binary"); // rarity 9
    let stat = idx(&db, Proto::Udp, "Stat"); // rarity 3

    // NULL first, then port-matching, then by rarity.
    assert_eq!(
        db.probe_order(Proto::Tcp, 80, false, INTENSITY_DEFAULT),
        vec![0, get]
    );
    assert_eq!(
        db.probe_order(Proto::Tcp, 80, false, INTENSITY_ALL),
        vec![0, get, help, bin]
    );
    assert_eq!(db.probe_order(Proto::Tcp, 81, false, 8), vec![0, get, help]);
    // A port-listed probe is sent whatever its rarity, and comes before the others.
    assert_eq!(
        db.probe_order(Proto::Tcp, 2121, false, INTENSITY_LIGHT),
        vec![0, help, get]
    );
    assert_eq!(db.probe_order(Proto::Tcp, 2121, false, 0), vec![0, help]);
    assert_eq!(db.probe_order(Proto::Tcp, 22, false, 0), vec![0]);
    // sslports are used instead of ports inside SSL.
    assert_eq!(db.probe_order(Proto::Tcp, 443, true, 0), vec![0, get]);
    assert_eq!(db.probe_order(Proto::Tcp, 80, true, 0), vec![0]);
    // UDP: no NULL probe.
    assert_eq!(
        db.probe_order(Proto::Udp, 161, false, INTENSITY_DEFAULT),
        vec![stat]
    );
    assert_eq!(
        db.probe_order(Proto::Udp, 161, false, INTENSITY_LIGHT),
        Vec::<usize>::new()
    );
}

#[test]
fn probe_order_after_softmatch() {
    let db = db();
    let get = idx(&db, Proto::Tcp, "GetReq");
    let help = idx(&db, Proto::Tcp, "Help");
    // After an ftp softmatch only probes with ftp lines: Help (rarity 8, ignored now).
    assert_eq!(
        db.probe_order_with(Proto::Tcp, 21, false, INTENSITY_LIGHT, Some("ftp")),
        vec![0, help]
    );
    assert_eq!(
        db.probe_order_with(Proto::Tcp, 80, false, INTENSITY_DEFAULT, Some("http")),
        vec![0, get]
    );
    // --version-all keeps every probe.
    assert_eq!(
        db.probe_order_with(Proto::Tcp, 80, false, INTENSITY_ALL, Some("http"))
            .len(),
        4
    );
}
