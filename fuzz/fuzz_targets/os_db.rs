//! nmap-os-db reading, expressions, printed fingerprints and the matcher: must never panic
//! on any text; every reported error names a real line; printing what was read and reading
//! it back is stable.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portolan_os::db::{Expr, OsDb};
use portolan_os::fingerprint::{self, Fingerprint};
use portolan_os::{coarse, matching};

/// A small database of our own: every expression form, classes with and without CPEs.
const DB_TEXT: &str = "\
MatchPoints
SEQ(SP=25%GCD=75%ISR=25%TI=100%CI=50%II=100%SS=80%TS=100)
OPS(O1=20%O2=20)
WIN(W1=15%W2=15)
T1(R=100%DF=20%T=15%TG=15%S=20%A=20%F=30%RD=20%Q=20)
U1(R=50%DF=20%T=15%IPL=100%UN=100)
IE(R=50%DFI=40%T=15%CD=100)

Fingerprint Our test OS A
Class Acme | AcmeOS | 1.X | general purpose
CPE cpe:/o:acme:acmeos:1 auto
SEQ(SP=0-5%GCD=1|2|>A%ISR=<10|C8-D2%TI=I|RD%TS=U)
OPS(O1=M5B4ST11NW7|%O2=M5B4ST11)
T1(R=Y%DF=Y|N%T=3B-45%TG=40%S=O%A=S+%F=AS%RD=0%Q=)
U1(DF=N%T=FA-104%IPL=164%UN=0)

Fingerprint Our test OS B
Class Acme | Embedded | | router
T1(R=N)
IE(DFI=N%T=3B-45%CD=S|Z)
";

fn db() -> &'static OsDb {
    static DB: OnceLock<OsDb> = OnceLock::new();
    DB.get_or_init(|| OsDb::parse(DB_TEXT).0)
}

/// A subject of our own to score against whatever the input parses to.
fn subject() -> &'static Fingerprint {
    static FP: OnceLock<Fingerprint> = OnceLock::new();
    FP.get_or_init(|| {
        fingerprint::parse("SEQ(SP=3%GCD=1%TS=U)OPS(O1=M5B4ST11NW7)T1(R=Y%DF=Y%T=40%Q=)U1(R=N)")
            .expect("our subject parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let opts = matching::JudgeOptions::default();

    // 1. The input as nmap-os-db.
    let (parsed, errors) = OsDb::parse(&text);
    let lines = text.split('\n').count().max(1) as u32;
    for e in &errors {
        assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
        let _ = e.to_string();
    }
    let verdict = matching::judge(&parsed, subject(), &opts);
    assert!(verdict.matches.len() <= matching::MAX_RESULTS);
    assert!(verdict.all.iter().all(|m| m.print < parsed.prints.len()));
    assert!(verdict
        .all
        .iter()
        .all(|m| (0.0..=1.0).contains(&m.accuracy)));
    let _ = matching::to_model(&parsed, &verdict);
    let _ = matching::classify(&parsed, &verdict);

    // 2. The input as one expression, and as values for our expressions.
    if let Ok(expr) = Expr::parse(&text) {
        for v in ["", "0", "40", "M5B4", "S+", "0x10", "FFFFFFFFFFFFFFFFF"] {
            let _ = expr.matches(v);
        }
        let _ = expr.to_string();
    }
    for p in &db().prints {
        for t in &p.tests {
            for (_, e) in &t.attrs {
                let _ = e.matches(&text);
            }
        }
    }

    // 3. The input as a printed fingerprint: judged, guessed at, printed and read back.
    if let Ok((fp, scan)) = fingerprint::parse_full(&text) {
        let v = matching::judge(db(), &fp, &opts);
        let _ = matching::to_model(db(), &v);
        let _ = coarse::guess(&fp);
        let scan = scan.unwrap_or_default();
        let printed = fingerprint::format(&fp, &scan);
        // Printing what we read and reading it back prints the same text.
        let (fp2, scan2) = fingerprint::parse_full(&printed).expect("our own print reads back");
        assert_eq!(
            fingerprint::format(&fp2, &scan2.unwrap_or_default()),
            printed
        );
    }
});
