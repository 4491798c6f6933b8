//! The web view's filter language (and, on the same bytes, the --auth file parser and the
//! Authorization header check): must never panic, whatever a browser sends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_store::{Change, ChangeKind, InventoryHost, PortRecord, StoredFinding};
use portolan_web::auth::Auth;
use portolan_web::filter::Filter;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = Filter::parse(s) {
        let host = InventoryHost {
            address: "198.18.0.1".into(),
            hostnames: vec!["web.example".into()],
            mac: None,
            vendor: None,
            last_seen: 0,
            scan_id: 1,
            os: Some("Linux 5.4".into()),
            ports: vec![PortRecord {
                protocol: "tcp".into(),
                port: 22,
                state: "open".into(),
                reason: "syn-ack".into(),
                service: Some("ssh".into()),
                product: Some("OpenSSH".into()),
                version: Some("9.6".into()),
                extrainfo: None,
                tunnel: None,
                scripts: "[]".into(),
            }],
        };
        let _ = f.matches_host(&host, &HashSet::new());
        let finding = StoredFinding {
            cve: "CVE-2024-6387".into(),
            title: "regreSSHion".into(),
            state: "LIKELY VULNERABLE".into(),
            cvss: Some(8.1),
            severity: Some("HIGH".into()),
            kev: true,
            kev_date_added: None,
            epss: Some(0.4),
            product: "openbsd:openssh".into(),
            version: "9.6".into(),
            matched: String::new(),
            basis: String::new(),
            upstream_only: true,
            condition: None,
        };
        if let Some(port) = host.ports.first() {
            let _ = f.matches_finding(&host, port, &finding, &HashSet::new());
        }
        let change = Change {
            first_seen: 0,
            scan_id: 2,
            previous_scan_id: 1,
            address: "198.18.0.1".into(),
            kind: ChangeKind::PortOpened,
            protocol: Some("tcp".into()),
            port: Some(22),
            before: None,
            after: Some("ssh OpenSSH 9.6".into()),
            cve: None,
            cvss: None,
        };
        let _ = f.matches_change(&change, |_| Some("Linux"));
        let vuln = Change {
            kind: ChangeKind::VulnGone,
            before: Some(finding.summary()),
            after: None,
            cve: Some(finding.cve.clone()),
            cvss: finding.cvss,
            ..change
        };
        let _ = f.matches_change(&vuln, |_| None);
    }
    if let Ok(auth) = Auth::parse(s) {
        let _ = auth.check(Some(b"Bearer 0123456789abcdef"));
    }
    // A user at a tiny Argon2 cost, so an iteration stays fast.
    let cheap = portolan_web::auth::Params::new(8, 1, 1, None).ok();
    let user = cheap.and_then(|p| portolan_web::auth::user_line_with("a", "pw", p).ok());
    let auth = user.and_then(|u| Auth::parse(&format!("token 0123456789abcdef\n{u}")).ok());
    if let Some(a) = auth {
        let _ = a.check(Some(data));
    }
});
