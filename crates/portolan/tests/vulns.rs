//! `portolan vulndb`, `portolan vulns` and `portolan check --vulndb` as a user runs them, on
//! the fixture feeds of crates/portolan-vuln and a hand-written Nmap XML file (no network).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../portolan-vuln/tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PORTOLAN_VULNDB")
        .env_remove("PORTOLAN_DB")
        .output()
        .expect("portolan runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A scan of one host: vsftpd 2.3.4, OpenSSH of a bookworm build, Redis, and nginx known by
/// its CPE only.
const SCAN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap -sV 192.0.2.10" start="1700000000" version="7.93" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="4" services="21,22,80,6379"/>
<host starttime="1700000000" endtime="1700000010"><status state="up" reason="syn-ack" reason_ttl="64"/>
<address addr="192.0.2.10" addrtype="ipv4"/>
<ports>
<port protocol="tcp" portid="21"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="ftp" product="vsftpd" version="2.3.4" method="probed" conf="10"><cpe>cpe:/a:vsftpd:vsftpd:2.3.4</cpe></service></port>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="ssh" product="OpenSSH" version="9.2p1 Debian 2+deb12u2" extrainfo="protocol 2.0" method="probed" conf="10"><cpe>cpe:/a:openbsd:openssh:9.2p1</cpe></service></port>
<port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="http" method="probed" conf="10"><cpe>cpe:/a:igor_sysoev:nginx:1.20.0</cpe></service></port>
<port protocol="tcp" portid="6379"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="redis" product="Redis key-value store" version="7.0.15" method="probed" conf="10"/></port>
</ports></host>
<runstats><finished time="1700000010" timestr="x" elapsed="10" summary="x" exit="success"/><hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"#;

fn setup(dir: &Path) -> (String, String) {
    let db = dir.join("v.sqlite").to_string_lossy().into_owned();
    let out = run(&[
        "vulndb",
        "import",
        "--vulndb",
        &db,
        &fixture("nvd-lab.json"),
        &fixture("kev-lab.json"),
        &fixture("epss-lab.csv"),
        &fixture("debian-lab.json"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let scan = dir.join("scan.xml");
    std::fs::write(&scan, SCAN).unwrap();
    (db, scan.to_string_lossy().into_owned())
}

#[test]
fn vulns_lists_findings_most_urgent_first_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (db, scan) = setup(dir.path());
    let out = run(&["vulns", "--vulndb", &db, "--json", &scan]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(u64, &str)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["port"].as_u64().unwrap(), f["cve"].as_str().unwrap()))
        .collect();
    // KEV (Redis), then by EPSS: vsftpd .91, nginx .70, regreSSHion .45, 51767.
    assert_eq!(
        got,
        [
            (6379, "CVE-2022-0543"),
            (21, "CVE-2011-2523"),
            (80, "CVE-2021-23017"),
            (22, "CVE-2024-6387"),
            (22, "CVE-2023-51767"),
        ]
    );
    assert_eq!(doc["findings"][3]["basis"]["kind"], "debian");
    let table = run(&["vulns", "--vulndb", &db, "--kev", &scan]);
    let t = text(&table);
    assert!(t.starts_with("1 finding on 4 open services"), "{t}");
    assert!(
        t.contains("CVE-2022-0543") && !t.contains("CVE-2011-2523"),
        "{t}"
    );
    let high = run(&["vulns", "--vulndb", &db, "--min-cvss", "9", "--json", &scan]);
    let doc: serde_json::Value = serde_json::from_slice(&high.stdout).unwrap();
    assert_eq!(doc["findings"].as_array().unwrap().len(), 2);
    let bad = run(&["vulns", "--vulndb", &db, "--min-cvss", "eleven", &scan]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn status_and_a_bad_import_that_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, scan) = setup(dir.path());
    let st = run(&["vulndb", "status", "--vulndb", &db, "--json"]);
    assert!(st.status.success(), "{}", text(&st));
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        (doc["cves"].as_i64(), doc["kev"].as_i64()),
        (Some(10), Some(1))
    );
    assert_eq!(doc["sources"].as_array().unwrap().len(), 4);
    // The scan file is no feed: named, and nothing of the import is kept.
    let out = run(&[
        "vulndb",
        "import",
        "--vulndb",
        &db,
        &fixture("kev-lab.json"),
        &scan,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(
        t.contains("scan.xml") && t.contains("Nothing was imported"),
        "{t}"
    );
    let st = run(&["vulndb", "status", "--vulndb", &db, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(doc["sources"].as_array().unwrap().len(), 4);
    // No database: said, exit 2.
    let none: PathBuf = dir.path().join("none.sqlite");
    let out = run(&["vulns", "--vulndb", &none.to_string_lossy(), &scan]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not found"), "{}", text(&out));
}

#[test]
fn check_judges_no_kev_and_max_cvss_with_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (db, scan) = setup(dir.path());
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"no known exploited\"\nno_kev = true\n\n\
         [[rule]]\nname = \"nothing critical\"\nmax_cvss = 8.9\n",
    )
    .unwrap();
    let p = policy.to_string_lossy();
    let out = run(&["check", "--policy", &p, "--vulndb", &db, "--json", &scan]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<(u64, &str)> = doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["port"].as_u64().unwrap(), v["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [(21, "cvss"), (6379, "known-exploited"), (6379, "cvss")]
    );
    // Without the database, the scan has no findings to judge.
    let out = run(&["check", "--policy", &p, &scan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
