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

/// A scan of one host: vsftpd 2.3.4, OpenSSH of a bookworm build, Redis (which NVD's
/// CVE-2022-0543, Debian's own build on Debian 9 to 11 named without a version, is not), and
/// nginx known by its CPE only.
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
    // KEV (HTTP/2 Rapid Reset on nginx), then by EPSS: vsftpd .91, nginx .70, regreSSHion
    // .45, 51767; nothing on Redis.
    assert_eq!(
        got,
        [
            (80, "CVE-2023-44487"),
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
        t.contains("CVE-2023-44487") && !t.contains("CVE-2011-2523"),
        "{t}"
    );
    let high = run(&["vulns", "--vulndb", &db, "--min-cvss", "9", "--json", &scan]);
    let doc: serde_json::Value = serde_json::from_slice(&high.stdout).unwrap();
    assert_eq!(doc["findings"].as_array().unwrap().len(), 1);
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
        (Some(11), Some(2))
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
    assert_eq!(kinds, [(21, "cvss"), (80, "known-exploited")]);
    // Without the database, the scan has no findings to judge.
    let out = run(&["check", "--policy", &p, &scan]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// A scan run with `--vulns` of another host: OpenSSH with one stored finding (a CVE the
/// database does not have), and Redis with none.
const VULNS_SCAN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="portolan" args="portolan -sV --vulns 192.0.2.20" start="1700000100" version="0.1.0" xmloutputversion="1.05">
<scaninfo type="syn" protocol="tcp" numservices="2" services="22,6379"/>
<host starttime="1700000100" endtime="1700000110"><status state="up" reason="syn-ack" reason_ttl="64"/>
<address addr="192.0.2.20" addrtype="ipv4"/>
<ports>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="ssh" product="OpenSSH" version="9.2p1" method="probed" conf="10"/><script id="vulns" output="&#xa;  openbsd:openssh 9.2p1:&#xa;    CVE-2099-0001&#x9;9.1&#x9;KEV"><table key="CVE-2099-0001">
<elem key="title">A &lt;b&gt;made-up&lt;/b&gt; flaw</elem><elem key="state">LIKELY VULNERABLE</elem>
<elem key="id">CVE-2099-0001</elem><elem key="cvss">9.1</elem><elem key="is_exploit">true</elem>
<elem key="kev_date_added">2099-01-01</elem><elem key="epss">0.12345</elem>
<elem key="product">openbsd:openssh</elem><elem key="version">9.2p1</elem>
<elem key="matched">cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:* (&lt; 9.9)</elem>
<elem key="basis">upstream version only</elem><elem key="upstream_only">true</elem>
</table></script></port>
<port protocol="tcp" portid="6379"><state state="open" reason="syn-ack" reason_ttl="64"/><service name="redis" product="Redis key-value store" version="7.0.15" method="probed" conf="10"/></port>
</ports></host>
<runstats><finished time="1700000110" timestr="x" elapsed="10" summary="x" exit="success"/><hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"#;

#[test]
fn vulns_from_the_store_reads_stored_findings_and_matches_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (db, scan) = setup(dir.path());
    let store = dir.path().join("h.db").to_string_lossy().into_owned();
    let vscan = dir.path().join("vulns.xml");
    std::fs::write(&vscan, VULNS_SCAN).unwrap();
    // Only the scan run with --vulns: its findings, without the database at all.
    let out = run(&["import", "--db", &store, &vscan.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out));
    let none = dir
        .path()
        .join("absent.sqlite")
        .to_string_lossy()
        .into_owned();
    let out = run(&["vulns", "--vulndb", &none, "--db", &store]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(t.starts_with("1 finding on 2 open services"), "{t}");
    assert!(
        t.contains("2 services with the findings stored by scans run with --vulns, 0 matched now"),
        "{t}"
    );
    assert!(
        t.contains("CVE-2099-0001") && t.contains("stored by a scan run with --vulns"),
        "{t}"
    );
    // With a scan without --vulns too: its services are matched against the database.
    let out = run(&["import", "--db", &store, &scan]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["vulns", "--vulndb", &db, "--db", &store, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            doc["services_stored"].clone(),
            doc["services_matched"].clone()
        ),
        (2.into(), 4.into())
    );
    let got: Vec<(&str, u64, &str, &str)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["address"].as_str().unwrap(),
                f["port"].as_u64().unwrap(),
                f["cve"].as_str().unwrap(),
                f["source"].as_str().unwrap(),
            )
        })
        .collect();
    // The stored KEV first, nothing on either Redis.
    assert!(
        got.contains(&("192.0.2.20", 22, "CVE-2099-0001", "stored")),
        "{got:?}"
    );
    assert!(!got.iter().any(|g| g.1 == 6379), "{got:?}");
    assert_eq!(got.iter().filter(|g| g.3 == "stored").count(), 1);
    // As from the file, less nginx: known by its CPE only, which the store does not keep.
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(!got.iter().any(|g| g.1 == 80), "{got:?}");
    assert_eq!(
        &got[..2].iter().map(|g| g.2).collect::<Vec<_>>(),
        &["CVE-2099-0001", "CVE-2011-2523"]
    );
}

#[test]
fn changes_name_the_findings_that_appeared_and_went_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("h.db").to_string_lossy().into_owned();
    // The same targets scanned again a day later: CVE-2099-0001 is gone (no result on 22).
    let later = VULNS_SCAN
        .replace("1700000100", "1700086500")
        .replace("1700000110", "1700086510");
    let cut = later.find("<script id=\"vulns\"").unwrap();
    let end = later.find("</script>").unwrap() + "</script>".len();
    let later = format!("{}{}", &later[..cut], &later[end..]);
    for (name, xml) in [("a.xml", VULNS_SCAN), ("b.xml", later.as_str())] {
        let f = dir.path().join(name);
        std::fs::write(&f, xml).unwrap();
        let out = run(&["import", "--db", &store, &f.to_string_lossy()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = run(&["changes", "--db", &store, "--since", "5200w", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = doc.as_array().unwrap();
    assert_eq!(list.len(), 1, "{doc}");
    assert_eq!(list[0]["kind"], "vuln_gone");
    assert_eq!(list[0]["cve"], "CVE-2099-0001");
    assert_eq!(list[0]["cvss"], 9.1);
    assert_eq!(list[0]["port"], 22);
    let out = run(&["changes", "--db", &store, "--since", "5200w"]);
    let t = text(&out);
    assert!(
        t.contains("vuln gone") && t.contains("CVE-2099-0001 (CVSS 9.1, KEV)"),
        "{t}"
    );
}

#[test]
fn changes_compare_findings_across_scans_without_vulns() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("h.db").to_string_lossy().into_owned();
    let at = |xml: &str, day: i64| {
        xml.replace("1700000100", &(1_700_000_100 + day * 86_400).to_string())
            .replace("1700000110", &(1_700_000_110 + day * 86_400).to_string())
    };
    let cut = VULNS_SCAN.find("<script id=\"vulns\"").unwrap();
    let end = VULNS_SCAN.find("</script>").unwrap() + "</script>".len();
    let clean = format!("{}{}", &VULNS_SCAN[..cut], &VULNS_SCAN[end..]);
    // Day 0 with --vulns and the finding; day 1 a scan without --vulns; day 2 with --vulns
    // and no finding left.
    let plain = at(&clean, 1).replace("portolan -sV --vulns", "portolan -sV");
    for (i, xml) in [at(VULNS_SCAN, 0), plain, at(&clean, 2)].iter().enumerate() {
        let f = dir.path().join(format!("{i}.xml"));
        std::fs::write(&f, xml).unwrap();
        let out = run(&["import", "--db", &store, &f.to_string_lossy()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = run(&["changes", "--db", &store, "--since", "5200w", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = doc.as_array().unwrap();
    assert_eq!(list.len(), 1, "{doc}");
    assert_eq!(list[0]["kind"], "vuln_gone");
    let id = |k: &str| list[0][k].as_i64().unwrap();
    assert_eq!(
        id("scan_id") - id("previous_scan_id"),
        2,
        "compared with day 0"
    );
    // As a SIEM event: one, for it (no other change between day 0 and day 2).
    let out = run(&["changes", "--db", &store, "--since", "5200w", "--events"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", text(&out));
    let e = &lines[0];
    assert_eq!(e["event"]["action"], "vuln-gone");
    assert_eq!(e["event"]["type"][0], "change");
    assert_eq!(e["event"]["category"][0], "vulnerability");
    assert_eq!(e["vulnerability"]["id"][0], "CVE-2099-0001");
    assert_eq!(e["vulnerability"]["score"]["base"], 9.1);
    assert_eq!(e["destination"]["port"], 22);
}

#[test]
fn a_finding_that_appears_is_an_alert_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("h.db").to_string_lossy().into_owned();
    let cut = VULNS_SCAN.find("<script id=\"vulns\"").unwrap();
    let end = VULNS_SCAN.find("</script>").unwrap() + "</script>".len();
    // Day 0 clean, day 1 with the finding (both with --vulns).
    let clean = format!("{}{}", &VULNS_SCAN[..cut], &VULNS_SCAN[end..]);
    let later = VULNS_SCAN
        .replace("1700000100", "1700086500")
        .replace("1700000110", "1700086510");
    for (i, xml) in [clean, later].iter().enumerate() {
        let f = dir.path().join(format!("{i}.xml"));
        std::fs::write(&f, xml).unwrap();
        let out = run(&["import", "--db", &store, &f.to_string_lossy()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = run(&["changes", "--db", &store, "--since", "5200w", "--events"]);
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["event"]["action"], "vuln-new");
    assert_eq!(e["event"]["kind"], "alert");
    assert_eq!(e["vulnerability"]["scanner"]["vendor"], "Portolan");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("CVE-2099-0001 found"));
}
