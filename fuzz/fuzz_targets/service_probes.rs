//! `nmap-service-probes` parsing and response matching: must never panic on any text or
//! bytes; every reported error carries a real line number; matching stays bounded.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portolan_probes::{parse, ProbeDb, Proto};

/// A small database of our own exercising every template function, softmatches,
/// fallbacks and both protocols.
const DB_TEXT: &str = r#"Exclude T:9100-9107
Probe TCP NULL q||
match ssh m|^SSH-([\d.]+)-(\S+)\r?\n| p/$P(2)/ i/protocol $1/ cpe:/a:x:ssh:$2/
softmatch ftp m|^220 .*ftp|i
match ftp m|^220 (\w+) FTP (\S+)| p/$1/ v/$SUBST(2,"_",".")/
Probe TCP Get q|GET / HTTP/1.0\r\n\r\n|
ports 80
fallback Help
match http m|^HTTP/1\.[01] \d\d\d.*?\r\nServer: ([^\r\n/]+)/?([^\r\n]*)|s p/$1/ v/$2/
softmatch http m|^HTTP/|
Probe TCP Help q|HELP\r\n|
rarity 8
match bin m|^\x00(.{2})(.{4})|s v/$I(1,">")/ i/$I(2,"<")/
match evil m|^(a+)+$|
Probe UDP Stat q|\0\x01| no-payload
match stat m|^\x01(.*)$|s p/$P(1)/
"#;

fn db() -> &'static ProbeDb {
    static DB: OnceLock<ProbeDb> = OnceLock::new();
    DB.get_or_init(|| {
        let (db, errors) = parse(DB_TEXT);
        assert!(errors.is_empty(), "{errors:?}");
        db
    })
}

fuzz_target!(|data: &[u8]| {
    // 1. The input as a probe file.
    let text = String::from_utf8_lossy(data);
    let (parsed, errors) = parse(&text);
    let lines = text.lines().count().max(1);
    for e in &errors {
        assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
        let _ = e.to_string();
    }
    for (i, p) in parsed.probes.iter().enumerate().take(8) {
        assert!((1..=9).contains(&p.rarity));
        assert!(p
            .fallback
            .iter()
            .all(|&f| f < parsed.probes.len() && f != i));
        let _ = parsed.match_response(i, b"SSH-2.0-x\r\n\0\xff", None);
    }
    let _ = parsed.probe_order(Proto::Tcp, 80, false, 9);

    // 2. The input as a response to each probe of our own database.
    let db = db();
    for p in 0..db.probes.len() {
        for soft in [None, Some("ftp"), Some("http")] {
            if let Some(f) = db.match_response(p, data, soft) {
                if let Some(s) = soft {
                    assert_eq!(f.service, s, "softmatch narrowing");
                }
                for field in [&f.product, &f.version, &f.info].into_iter().flatten() {
                    assert!(field.len() <= 4 * portolan_probes::template::MAX_FIELD_LEN);
                }
                assert!(f.cpes.iter().all(|c| c.starts_with("cpe:/")));
            }
        }
    }
});
