//! The fixture feeds imported into a database, matched against real banners of the lab's
//! products, and the bad inputs that must import nothing.

use portolan_vuln::import::{read_bytes, Format};
use portolan_vuln::matcher::priority;
use portolan_vuln::{Basis, Finding, ServiceQuery, VulnDb, VulnError};
use std::io::Write;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// The four fixture feeds (EPSS gzipped, as FIRST publishes it) in `dir`.
fn feeds(dir: &Path) -> Vec<PathBuf> {
    let epss = dir.join("epss_scores-current.csv.gz");
    std::fs::write(
        &epss,
        gzip(&std::fs::read(fixture("epss-lab.csv")).unwrap()),
    )
    .unwrap();
    vec![
        fixture("nvd-lab.json"),
        fixture("kev-lab.json"),
        epss,
        fixture("debian-lab.json"),
    ]
}

fn imported(dir: &Path) -> VulnDb {
    let mut db = VulnDb::open(dir.join("vulndb.sqlite")).unwrap();
    db.import(&feeds(dir)).unwrap();
    db
}

fn service(product: &str, version: &str) -> ServiceQuery {
    ServiceQuery {
        product: Some(product.into()),
        version: Some(version.into()),
        ..Default::default()
    }
}

fn ids(found: &[Finding]) -> Vec<&str> {
    found.iter().map(|f| f.id()).collect()
}

#[test]
fn formats_are_told_from_the_content_and_status_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    // Names that say nothing: the content decides.
    let mut renamed = Vec::new();
    for (i, f) in feeds(dir.path()).into_iter().enumerate() {
        let to = dir.path().join(format!("feed{i}.dat"));
        std::fs::copy(&f, &to).unwrap();
        renamed.push(to);
    }
    let mut db = VulnDb::open(dir.path().join("v.sqlite")).unwrap();
    let report = db.import(&renamed).unwrap();
    let formats: Vec<Format> = report.files.iter().map(|(_, s)| s.format).collect();
    assert_eq!(
        formats,
        [Format::Nvd, Format::Kev, Format::Epss, Format::Debian]
    );
    let st = db.status().unwrap();
    assert_eq!((st.cves, st.kev, st.epss), (11, 2, 11));
    // Ten vulnerable cpeMatch entries of the single-product CVEs, plus PostgreSQL's five and
    // MySQL's three; the Debian platforms of the Redis CVE are not vulnerable and are kept
    // apart, with the Redis entry, as its AND configuration.
    assert_eq!(st.cpe_matches, 10 + 5 + 3);
    assert_eq!(st.and_configurations, 1);
    assert_eq!(st.debian, 13);
    assert_eq!(st.sources.len(), 4);
    assert_eq!(
        st.sources[0].data_date.as_deref(),
        Some("2025-01-15T03:00:00.000")
    );
    assert_eq!(
        st.sources[2].data_date.as_deref(),
        Some("2025-01-15T00:00:00+0000")
    );
    assert_eq!(st.sources[2].file, "feed2.dat");
    assert!(st.newest_cve_change.is_some());
}

#[test]
fn openssh_upstream_and_debian_builds() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = imported(dir.path()).into_matcher();
    // Upstream 9.2p1: every OpenSSH CVE of the fixture whose range holds it.
    let up = m.service(&service("OpenSSH", "9.2p1")).unwrap();
    let mut got = ids(&up);
    got.sort();
    assert_eq!(
        got,
        [
            "CVE-2023-38408",
            "CVE-2023-48795",
            "CVE-2023-51767",
            "CVE-2024-6387"
        ]
    );
    assert!(up.iter().all(Finding::upstream_only));
    let regression = up.iter().find(|f| f.id() == "CVE-2024-6387").unwrap();
    assert!(
        regression.matched.contains(">= 8.5p1, < 9.8p1"),
        "{}",
        regression.matched
    );
    // Bookworm's deb12u2 has the fixes of u1 and u2 but not regreSSHion's (u3).
    let u2 = m
        .service(&service("OpenSSH", "9.2p1 Debian 2+deb12u2"))
        .unwrap();
    let mut got = ids(&u2);
    got.sort();
    assert_eq!(got, ["CVE-2023-51767", "CVE-2024-6387"]);
    let f = u2.iter().find(|f| f.id() == "CVE-2024-6387").unwrap();
    assert_eq!(
        *f.basis,
        Basis::Debian {
            package: "openssh".into(),
            release: "bookworm".into(),
            installed: "1:9.2p1-2+deb12u2".into(),
            status: "resolved".into(),
            fixed_version: Some("1:9.2p1-2+deb12u3".into()),
        }
    );
    // The lab's own build: only what Debian has not fixed.
    let u10 = m
        .service(&service("OpenSSH", "9.2p1 Debian 2+deb12u10"))
        .unwrap();
    assert_eq!(ids(&u10), ["CVE-2023-51767"]);
    assert!(
        matches!(&*u10[0].basis, Basis::Debian { status, installed, .. }
            if &**status == "open" && &**installed == "1:9.2p1-2+deb12u10"),
        "{:?}",
        u10[0].basis
    );
    // Newer than every range.
    assert!(m.service(&service("OpenSSH", "9.8p1")).unwrap().is_empty());
    // A Debian build of a release the revision does not name: upstream only, said so.
    let plain = m.service(&service("OpenSSH", "9.2p1 Debian 2")).unwrap();
    assert_eq!(plain.len(), 4);
    assert!(plain.iter().all(|f| matches!(&*f.basis,
        Basis::Upstream { note } if note.contains("no Debian revision") || note.contains("release"))));
}

#[test]
fn the_lab_products_against_their_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = imported(dir.path()).into_matcher();
    let mut check = |p: &str, v: &str, want: &[&str]| {
        let found = m.service(&service(p, v)).unwrap();
        assert_eq!(ids(&found), want, "{p} {v}");
    };
    check("nginx", "1.20.0", &["CVE-2023-44487", "CVE-2021-23017"]);
    check("nginx", "0.6.18", &["CVE-2021-23017"]);
    check("nginx", "0.6.17", &[]);
    check("nginx", "1.20.1", &["CVE-2023-44487"]);
    check("nginx", "1.22.1", &["CVE-2023-44487"]);
    check("nginx", "1.25.2", &["CVE-2023-44487"]);
    check("nginx", "1.25.3", &[]);
    check("vsftpd", "2.3.4", &["CVE-2011-2523"]);
    check("vsftpd", "3.0.3", &[]);
    check("vsftpd", "2.0.8 or later", &[]);
    check("dnsmasq", "2.77", &["CVE-2017-14491"]);
    check("dnsmasq", "2.78", &[]);
    check("dnsmasq", "2.90", &[]);
    check("MySQL", "5.7.43", &["CVE-2023-22084"]);
    check("MySQL", "5.7.44-log", &[]);
    check("MySQL", "8.1.0", &["CVE-2023-22084"]);
    check("MySQL", "8.0.35", &[]);
    check("PostgreSQL DB", "15.3", &["CVE-2023-39417"]);
    check("PostgreSQL DB", "15.18", &[]);
    check("PostgreSQL DB", "14.9", &[]);
    // NVD names Debian's Redis build without a version (`-`, NA) and only on Debian 9 to
    // 11: no Redis version is it (CPE matching: a version and NA are disjoint).
    check("Redis key-value store", "7.0.15", &[]);
    check("Redis key-value store", "6.0.16", &[]);
    check("Unknown server", "1.0", &[]);
}

#[test]
fn scores_kev_epss_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = imported(dir.path()).into_matcher();
    let mut all: Vec<Finding> = Vec::new();
    for (p, v) in [
        ("OpenSSH", "9.2p1"),
        ("nginx", "1.22.1"),
        ("dnsmasq", "2.77"),
        ("vsftpd", "2.3.4"),
    ] {
        all.extend(m.service(&service(p, v)).unwrap().iter().cloned());
    }
    all.sort_by(priority);
    // Known exploited first (HTTP/2 Rapid Reset on nginx), then by EPSS: vsftpd .91,
    // dnsmasq/Terrapin .60 (CVSS breaks the tie: 9.8 before 5.9), 38408 .55, regreSSHion
    // .45, 51767.
    assert_eq!(
        ids(&all),
        [
            "CVE-2023-44487",
            "CVE-2011-2523",
            "CVE-2017-14491",
            "CVE-2023-48795",
            "CVE-2023-38408",
            "CVE-2024-6387",
            "CVE-2023-51767"
        ]
    );
    let rapid_reset = &all[0];
    assert_eq!(
        rapid_reset.cve.kev_date_added.as_deref(),
        Some("2023-10-10")
    );
    assert_eq!(rapid_reset.cve.cvss, Some(7.5));
    assert_eq!(rapid_reset.cve.severity.as_deref(), Some("HIGH"));
    let dns = &all[2];
    // CVSS 3.0 taken before 2.0.
    assert_eq!(
        (dns.cve.cvss, dns.cve.cvss_version.as_deref()),
        (Some(9.8), Some("3.0"))
    );
    assert!(dns.matched.contains("<= 2.77"));
}

#[test]
fn cpes_from_nmap_xml_match_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = imported(dir.path()).into_matcher();
    let q = ServiceQuery {
        cpes: vec!["cpe:/a:igor_sysoev:nginx:1.18.0".into()],
        ..Default::default()
    };
    assert_eq!(
        ids(&m.service(&q).unwrap()),
        ["CVE-2023-44487", "CVE-2021-23017"]
    );
    let q = ServiceQuery {
        cpes: vec!["cpe:/a:openbsd:openssh:9.7p1".into()],
        ..Default::default()
    };
    assert_eq!(ids(&m.service(&q).unwrap()), ["CVE-2024-6387"]);
}

#[test]
fn a_truncated_gzip_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = imported(dir.path());
    let before = db.status().unwrap();
    let whole = gzip(&std::fs::read(fixture("nvd-lab.json")).unwrap());
    let cut = dir.path().join("nvdcve-2.0-2024.json.gz");
    std::fs::write(&cut, whole.get(..whole.len() / 2).unwrap()).unwrap();
    let e = db
        .import(&[fixture("kev-lab.json"), cut.clone()])
        .unwrap_err();
    assert!(matches!(e, VulnError::Gzip { .. }), "{e}");
    assert!(e.to_string().contains("nvdcve-2.0-2024.json.gz"), "{e}");
    let after = db.status().unwrap();
    assert_eq!(
        (after.cves, after.kev, after.sources.len()),
        (before.cves, before.kev, before.sources.len())
    );
    // Cut inside the 8-byte trailer: the data is whole, its checksum is not.
    std::fs::write(&cut, whole.get(..whole.len() - 4).unwrap()).unwrap();
    assert!(matches!(db.import(&[cut]), Err(VulnError::Gzip { .. })));
}

#[test]
fn a_file_of_no_known_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = VulnDb::open(dir.path().join("v.sqlite")).unwrap();
    for (name, body) in [
        ("scan.xml", &b"<?xml version=\"1.0\"?><nmaprun/>"[..]),
        ("empty.json", b""),
        ("other.json", b"{\"hello\": 1}"),
    ] {
        let f = dir.path().join(name);
        std::fs::write(&f, body).unwrap();
        let e = db.import(&[f]).unwrap_err();
        assert!(matches!(e, VulnError::UnknownFormat { .. }), "{e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    assert_eq!(db.status().unwrap().sources.len(), 0);
}

#[test]
fn a_cve_with_malformed_configurations_is_skipped_and_the_rest_imports() {
    let doc = br#"{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [
      {"cve": {"id": "CVE-2000-0001", "descriptions": [{"lang": "en", "value": "good"}],
        "configurations": [{"nodes": [{"operator": "OR", "cpeMatch": [
          {"vulnerable": true, "criteria": "cpe:2.3:a:x:y:1.0:*:*:*:*:*:*:*"}]}]}]}},
      {"cve": {"id": "CVE-2000-0002", "configurations": [{"nodes": "not a list"}]}},
      {"cve": {"id": "CVE-2000-0003", "configurations": [{"nodes": [{"cpeMatch": [
          {"vulnerable": true, "criteria": "not a cpe"}]}]}]}},
      {"cve": {"id": "CVE-2000-0004"}}
    ]}"#;
    let (summary, got) = read_bytes(doc, "feed.json").unwrap();
    assert_eq!(summary.records, 2);
    let ids: Vec<&str> = got.cves.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["CVE-2000-0001", "CVE-2000-0004"]);
    assert_eq!(summary.skipped.len(), 2);
    assert_eq!(summary.skipped[0].cve, "CVE-2000-0002");
    assert_eq!(
        summary.skipped[0].path,
        "vulnerabilities[1].cve.configurations"
    );
    assert!(summary.skipped[1].reason.contains("not a CPE 2.3 name"));
    assert_eq!(got.cves[0].matches[0].version, "1.0");
}

#[test]
fn json_errors_name_the_path_and_line() {
    // A CVE without its id, on line 3.
    let doc = b"{\"format\": \"NVD_CVE\", \"vulnerabilities\": [\n{\"cve\": {\"id\": \"CVE-1\"}},\n{\"cve\": {\"published\": \"x\"}}\n]}";
    let e = read_bytes(doc, "n.json").unwrap_err();
    match &e {
        VulnError::Json { path, line, .. } => {
            assert_eq!((path.as_str(), *line), ("vulnerabilities[1]", 3), "{e}")
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("missing field `id`"), "{e}");
    // Cut mid-document.
    let e = read_bytes(
        b"{\"format\": \"NVD_CVE\", \"vulnerabilities\": [{\"cve\"",
        "n.json",
    )
    .unwrap_err();
    assert!(matches!(e, VulnError::Json { .. }), "{e}");
    // A KEV entry without its dateAdded.
    let kev = br#"{"catalogVersion": "1", "vulnerabilities": [
      {"cveID": "CVE-2022-0543", "dateAdded": "2022-03-28"},
      {"cveID": "CVE-2011-2523"}]}"#;
    let e = read_bytes(kev, "kev.json").unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("vulnerabilities[1]") && text.contains("dateAdded"),
        "{text}"
    );
    // A Debian entry without its status names package and CVE.
    let deb =
        br#"{"openssh": {"CVE-2024-6387": {"releases": {"bookworm": {"fixed_version": "1"}}}}}"#;
    let e = read_bytes(deb, "deb.json").unwrap_err();
    assert!(e.to_string().contains("openssh.CVE-2024-6387"), "{e}");
}

#[test]
fn epss_errors_name_the_line() {
    let bad = b"#model_version:v1,score_date:2025-01-01\ncve,epss,percentile\nCVE-1,0.5,0.5\nCVE-2,high,0.5\n";
    let e = read_bytes(bad, "e.csv").unwrap_err();
    assert!(
        matches!(&e, VulnError::Csv { line: 4, message, .. } if message.contains("epss")),
        "{e}"
    );
    let (s, got) = read_bytes(&gzip(b"cve,epss,percentile\nCVE-1,0.5,0.25\n"), "e.gz").unwrap();
    assert_eq!((s.records, got.epss[0].percentile), (1, 0.25));
}

#[test]
fn a_newer_record_replaces_an_older_one_and_not_the_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = VulnDb::open(dir.path().join("v.sqlite")).unwrap();
    let feed = |modified: &str, end: &str| {
        format!(
            r#"{{"format": "NVD_CVE", "vulnerabilities": [{{"cve": {{"id": "CVE-2000-0001",
            "lastModified": "{modified}", "configurations": [{{"nodes": [{{"cpeMatch": [
            {{"vulnerable": true, "criteria": "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*",
              "versionEndExcluding": "{end}"}}]}}]}}]}}}}]}}"#
        )
    };
    let write = |name: &str, body: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let year = write("year.json", feed("2024-01-01T00:00:00.000", "9.0"));
    let modified = write("modified.json", feed("2024-06-01T00:00:00.000", "9.9"));
    db.import(&[year.clone(), modified]).unwrap();
    let r = db.import(&[year]).unwrap();
    assert_eq!(r.older_than_stored, 1);
    let mut m = db.into_matcher();
    assert_eq!(
        ids(&m.service(&service("OpenSSH", "9.5")).unwrap()),
        ["CVE-2000-0001"]
    );
    assert_eq!(m.db().status().unwrap().cpe_matches, 1);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sqlite");
    drop(VulnDb::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let e = VulnDb::open(&path).err().unwrap();
    assert!(
        matches!(e, VulnError::SchemaTooNew { found: 99, .. }),
        "{e}"
    );
    assert!(matches!(
        VulnDb::open_existing(dir.path().join("none.sqlite")),
        Err(VulnError::NoDatabase { .. })
    ));
}

/// A feed of one CVE: `x:server` from 2.0 below 2.4 only on Debian 12 (NVD's "running on"
/// AND configuration), and unconditionally on 1.x.
const RUNNING_ON: &str = r#"{"format": "NVD_CVE", "vulnerabilities": [
  {"cve": {"id": "CVE-2000-0100", "descriptions": [{"lang": "en", "value": "x"}],
   "configurations": [
    {"operator": "AND", "nodes": [
      {"operator": "OR", "negate": false, "cpeMatch": [
        {"vulnerable": true, "criteria": "cpe:2.3:a:x:server:*:*:*:*:*:*:*:*",
         "versionStartIncluding": "2.0", "versionEndExcluding": "2.4"}]},
      {"operator": "OR", "negate": false, "cpeMatch": [
        {"vulnerable": false, "criteria": "cpe:2.3:o:debian:debian_linux:12.0:*:*:*:*:*:*:*"}]}]},
    {"nodes": [{"operator": "OR", "negate": false, "cpeMatch": [
        {"vulnerable": true, "criteria": "cpe:2.3:a:x:server:*:*:*:*:*:*:*:*",
         "versionEndExcluding": "2.0"}]}]}]}}]}"#;

#[test]
fn and_configurations_apply_only_on_their_platform() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("nvd.json");
    std::fs::write(&feed, RUNNING_ON).unwrap();
    let mut db = VulnDb::open(dir.path().join("v.sqlite")).unwrap();
    db.import(&[feed]).unwrap();
    assert_eq!(db.status().unwrap().and_configurations, 1);
    let mut m = db.into_matcher();
    let q = |version: &str, ostype: Option<&str>, host_os: &[&str]| ServiceQuery {
        cpes: vec![format!(
            "cpe:/a:x:server:{}",
            version.split(' ').next().unwrap()
        )],
        version: Some(version.into()),
        ostype: ostype.map(Into::into),
        host_os: host_os.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    };
    // The banner names a Debian 12 build: the platform holds, and the finding says how.
    let on = m.service(&q("2.2 Debian 1+deb12u1", None, &[])).unwrap();
    assert_eq!(ids(&on), ["CVE-2000-0100"]);
    assert!(on[0].condition.is_none());
    assert!(
        on[0].matched.contains(">= 2.0, < 2.4")
            && on[0]
                .matched
                .contains("running on cpe:2.3:o:debian:debian_linux:12.0")
            && on[0].matched.contains("the banner's Debian revision"),
        "{}",
        on[0].matched
    );
    // A Debian 11 build, or a Windows host: it does not apply.
    assert!(m
        .service(&q("2.2 Debian 1+deb11u1", None, &[]))
        .unwrap()
        .is_empty());
    assert!(m
        .service(&q("2.2", Some("Windows"), &[]))
        .unwrap()
        .is_empty());
    assert!(m
        .service(&q("2.2", None, &["cpe:/o:microsoft:windows_server_2019"]))
        .unwrap()
        .is_empty());
    // Nothing known of the platform (or only "Linux"): reported, with the condition.
    for (ostype, os) in [
        (None, &[][..]),
        (Some("Linux"), &["cpe:/o:linux:linux_kernel:5"][..]),
    ] {
        let open = m.service(&q("2.2", ostype, os)).unwrap();
        assert_eq!(ids(&open), ["CVE-2000-0100"]);
        let c = open[0].condition.as_deref().unwrap_or("");
        assert_eq!(
            c,
            "only when running on cpe:2.3:o:debian:debian_linux:12.0:*:*:*:*:*:*:*"
        );
        let line = portolan_vuln::report::line(&open[0]);
        assert!(line.contains(c), "{line}");
        let script = portolan_vuln::report::script(&open);
        assert!(format!("{:?}", script.content).contains("LIKELY VULNERABLE"));
    }
    // Outside the AND configuration's range, the plain one decides, on any platform.
    let old = m.service(&q("1.9", Some("Windows"), &[])).unwrap();
    assert_eq!(ids(&old), ["CVE-2000-0100"]);
    assert!(old[0].condition.is_none() && !old[0].matched.contains("running on"));
    assert!(m.service(&q("2.4", None, &[])).unwrap().is_empty());
}

#[test]
fn a_schema_1_database_is_migrated_and_asks_for_a_new_import() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.sqlite");
    // Schema 1 as an earlier Portolan wrote it: no platforms, no nodes.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT INTO meta VALUES('schema_version', '1');
         CREATE TABLE cve(id TEXT PRIMARY KEY, published TEXT, last_modified TEXT, cvss REAL,
           cvss_version TEXT, severity TEXT, description TEXT NOT NULL) WITHOUT ROWID;
         INSERT INTO cve(id, description) VALUES('CVE-2000-0100', 'x');
         CREATE TABLE cpe_match(cve TEXT NOT NULL, part TEXT NOT NULL, vendor TEXT NOT NULL,
           product TEXT NOT NULL, version TEXT NOT NULL, start_incl TEXT, start_excl TEXT,
           end_incl TEXT, end_excl TEXT, criteria TEXT NOT NULL);
         INSERT INTO cpe_match VALUES('CVE-2000-0100', 'a', 'x', 'server', '*', '2.0', NULL,
           NULL, '2.4', 'cpe:2.3:a:x:server:*:*:*:*:*:*:*:*');",
    )
    .unwrap();
    drop(conn);
    let mut db = VulnDb::open(&path).unwrap();
    let st = db.status().unwrap();
    assert_eq!((st.schema_version, st.platforms_missing), (2, Some(1)));
    // The new table is the schema's, clustered by product, with its index on the CVE.
    let plan: String = db
        .connection()
        .query_row(
            "SELECT group_concat(name) FROM sqlite_master WHERE tbl_name = 'cpe_match' \
             AND (type = 'index' OR sql LIKE '%WITHOUT ROWID%')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        plan.contains("cpe_match_cve") && plan.split(',').any(|n| n == "cpe_match"),
        "{plan}"
    );
    // Its rows still match (unconditionally, as schema 1 knew them)...
    let mut m = db.into_matcher();
    assert_eq!(
        ids(&m
            .service(&ServiceQuery {
                cpes: vec!["cpe:/a:x:server:2.2".into()],
                ..Default::default()
            })
            .unwrap()),
        ["CVE-2000-0100"]
    );
    // ...until the feed is imported again.
    db = VulnDb::open(&path).unwrap();
    drop(m);
    let feed = dir.path().join("nvd.json");
    std::fs::write(&feed, RUNNING_ON).unwrap();
    db.import(&[feed]).unwrap();
    let st = db.status().unwrap();
    assert_eq!((st.platforms_missing, st.and_configurations), (None, 1));
}

#[test]
fn epss_read_whole_or_per_cve_gives_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    let path = imported(dir.path()).path().to_path_buf();
    let services = [
        ("OpenSSH", "9.2p1 Debian 2+deb12u2"),
        ("nginx", "1.20.0"),
        ("dnsmasq", "2.77"),
        ("vsftpd", "2.3.4"),
    ];
    let mut per_cve = VulnDb::open(&path).unwrap().into_matcher();
    // From the second CVE read on, every score comes from the whole table.
    let mut whole = VulnDb::open(&path)
        .unwrap()
        .into_matcher()
        .epss_whole_after(1);
    let mut seen = 0;
    for (p, v) in services {
        let a = per_cve.service(&service(p, v)).unwrap();
        let b = whole.service(&service(p, v)).unwrap();
        assert_eq!(a, b, "{p} {v}");
        seen += a.iter().filter(|f| f.cve.epss.is_some()).count();
    }
    assert!(seen >= 5, "scores were compared: {seen}");
}

#[test]
fn a_large_batch_matched_on_threads_equals_one_service_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = imported(dir.path()).path().to_path_buf();
    let products = [
        "OpenSSH",
        "nginx",
        "dnsmasq",
        "vsftpd",
        "MySQL",
        "PostgreSQL DB",
        "Unknown",
    ];
    // Enough services for the threaded path (2,000 or more), at many versions.
    let queries: Vec<ServiceQuery> = (0..3000)
        .map(|i| {
            let p = products[i % products.len()];
            let v = match p {
                "OpenSSH" if i % 2 == 0 => format!("9.{}p1 Debian 2+deb12u{}", i % 9, i % 11),
                "OpenSSH" => format!("{}.{}p1", 7 + i % 3, i % 10),
                _ => format!("{}.{}.{}", i % 16, i % 30, i % 7),
            };
            service(p, &v)
        })
        .collect();
    let refs: Vec<&ServiceQuery> = queries.iter().collect();
    let batch = VulnDb::open(&path)
        .unwrap()
        .into_matcher()
        .services(&refs)
        .unwrap();
    let mut one = VulnDb::open(&path).unwrap().into_matcher();
    assert_eq!(batch.len(), queries.len());
    let mut findings = 0;
    for (q, b) in queries.iter().zip(&batch) {
        let a = one.service(q).unwrap();
        assert_eq!(*a, **b, "{q:?}");
        findings += a.len();
    }
    assert!(findings > 1000, "{findings} findings compared");
}
