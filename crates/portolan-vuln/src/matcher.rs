//! Matching a service (product, version, CPEs from `-sV`) against the database: which NVD
//! products it is (CPEs and a small alias table), which `cpeMatch` entries cover its
//! version, whether the platform an AND configuration requires is the service's
//! ([`crate::platform`]), and, for a Debian build, whether Debian's tracker says the installed
//! package carries the fix. Each [`Finding`] says why it matched.

use crate::cpe;
use crate::db::VulnDb;
use crate::error::VulnError;
use crate::platform::{self, Holds, Platform};
use crate::version::{self, debian_compare, Bounds, DebianVersion, Version};
use portolan_model::Urgency;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// What a service announced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceQuery {
    pub product: Option<String>,
    pub version: Option<String>,
    pub extrainfo: Option<String>,
    pub ostype: Option<String>,
    pub cpes: Vec<String>,
    /// The CPEs of the host's operating system, from OS detection (its best match).
    pub host_os: Vec<String>,
}

impl ServiceQuery {
    pub fn of(s: &portolan_model::Service) -> ServiceQuery {
        ServiceQuery {
            product: s.product.clone(),
            version: s.version.clone(),
            extrainfo: s.extrainfo.clone(),
            ostype: s.ostype.clone(),
            cpes: s.cpes.clone(),
            host_os: Vec::new(),
        }
    }

    /// A service with what OS detection found of its host ([`host_os`]).
    pub fn on(host: &portolan_model::Host, s: &portolan_model::Service) -> ServiceQuery {
        ServiceQuery {
            host_os: host_os(host),
            ..ServiceQuery::of(s)
        }
    }
}

/// The OS CPEs of a host's best OS match, when it is a confident one (95% or more).
pub fn host_os(host: &portolan_model::Host) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(best) = host
        .os
        .as_ref()
        .and_then(|os| os.matches.first())
        .filter(|m| m.accuracy >= 95)
    {
        for c in best.classes.iter().flat_map(|c| &c.cpes) {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
    }
    out
}

/// A known product: how `-sV` names it, its NVD vendor:product pairs, its Debian source
/// package.
struct Alias {
    /// Lower-case prefixes of the product name `-sV` reports.
    names: &'static [&'static str],
    nvd: &'static [(&'static str, &'static str)],
    debian: Option<&'static str>,
}

/// The built-in alias table: the lab's products and a few common ones.
const ALIASES: &[Alias] = &[
    Alias {
        names: &["openssh"],
        nvd: &[("openbsd", "openssh")],
        debian: Some("openssh"),
    },
    Alias {
        names: &["nginx"],
        nvd: &[("f5", "nginx"), ("nginx", "nginx")],
        debian: Some("nginx"),
    },
    Alias {
        names: &["redis"],
        nvd: &[("redis", "redis"), ("redislabs", "redis")],
        debian: Some("redis"),
    },
    Alias {
        names: &["vsftpd"],
        nvd: &[("beasts", "vsftpd")],
        debian: Some("vsftpd"),
    },
    Alias {
        names: &["dnsmasq"],
        nvd: &[("thekelleys", "dnsmasq")],
        debian: Some("dnsmasq"),
    },
    Alias {
        names: &["mariadb"],
        nvd: &[("mariadb", "mariadb")],
        debian: Some("mariadb"),
    },
    Alias {
        names: &["mysql"],
        nvd: &[("oracle", "mysql"), ("mysql", "mysql")],
        debian: None,
    },
    Alias {
        names: &["postgresql"],
        nvd: &[("postgresql", "postgresql")],
        // postgresql-MAJOR: see debian_package.
        debian: Some("postgresql"),
    },
    Alias {
        names: &["apache httpd"],
        nvd: &[("apache", "http_server")],
        debian: Some("apache2"),
    },
    Alias {
        names: &["proftpd"],
        nvd: &[("proftpd", "proftpd")],
        debian: Some("proftpd-dfsg"),
    },
    Alias {
        names: &["exim"],
        nvd: &[("exim", "exim")],
        debian: Some("exim4"),
    },
    Alias {
        names: &["postfix"],
        nvd: &[("postfix", "postfix")],
        debian: Some("postfix"),
    },
    Alias {
        names: &["isc bind"],
        nvd: &[("isc", "bind")],
        debian: Some("bind9"),
    },
    Alias {
        names: &["samba"],
        nvd: &[("samba", "samba")],
        debian: Some("samba"),
    },
    Alias {
        names: &["lighttpd"],
        nvd: &[("lighttpd", "lighttpd")],
        debian: Some("lighttpd"),
    },
];

/// Debian's code names by major release.
const DEBIAN_RELEASES: &[(u32, &str)] = &[
    (8, "jessie"),
    (9, "stretch"),
    (10, "buster"),
    (11, "bullseye"),
    (12, "bookworm"),
    (13, "trixie"),
    (14, "forky"),
];

/// What a finding's verdict rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Basis {
    /// The upstream version only: distribution fixes are not accounted for.
    Upstream { note: Cow<'static, str> },
    /// Debian's tracker says the installed build lacks the fix (or there is none yet).
    Debian {
        package: Arc<str>,
        release: Arc<str>,
        installed: Arc<str>,
        status: Arc<str>,
        fixed_version: Option<Arc<str>>,
    },
}

/// What the database holds of a CVE: its scores, KEV and EPSS entries and description,
/// shared by every finding of it (a scan of 20,000 services has millions of findings).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cve {
    #[serde(rename = "cve")]
    pub id: Arc<str>,
    pub cvss: Option<f64>,
    pub cvss_version: Option<Arc<str>>,
    pub severity: Option<Arc<str>>,
    /// In CISA's Known Exploited Vulnerabilities catalog: the date it was added.
    pub kev_date_added: Option<Arc<str>>,
    pub kev_ransomware: Option<Arc<str>>,
    pub epss: Option<f64>,
    pub epss_percentile: Option<f64>,
    pub description: Arc<str>,
}

/// A CVE that applies to a service (in JSON, the CVE's fields and the finding's side by
/// side).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    #[serde(flatten)]
    pub cve: Arc<Cve>,
    /// The NVD `vendor:product` matched and the version compared.
    pub product: Arc<str>,
    pub version: Arc<str>,
    /// The `cpeMatch` entry that matched and how: `cpe:2.3:a:openbsd:openssh:*:… (>= 8.5p1,
    /// < 9.8p1)`, with the platform that held for an AND configuration.
    pub matched: Arc<str>,
    /// For an AND configuration whose platform the scan does not tell: what must hold for
    /// the finding to apply ("only when running on cpe:2.3:o:debian:debian_linux:11.0…").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Arc<str>>,
    pub basis: Arc<Basis>,
}

impl Cve {
    pub fn kev(&self) -> bool {
        self.kev_date_added.is_some()
    }
    /// What orders it among findings ([`Urgency::first`]).
    pub fn urgency(&self) -> Urgency<'_> {
        Urgency {
            kev: self.kev(),
            epss: self.epss,
            cvss: self.cvss,
            cve: &self.id,
        }
    }
}

impl Finding {
    pub fn id(&self) -> &str {
        &self.cve.id
    }
    pub fn kev(&self) -> bool {
        self.cve.kev()
    }
    /// What orders it among findings ([`Urgency::first`]).
    pub fn urgency(&self) -> Urgency<'_> {
        self.cve.urgency()
    }
    /// Whether the verdict rests on the upstream version alone (no distribution's word).
    pub fn upstream_only(&self) -> bool {
        matches!(*self.basis, Basis::Upstream { .. })
    }
    /// `https://nvd.nist.gov/vuln/detail/CVE-…`
    pub fn reference(&self) -> String {
        format!("https://nvd.nist.gov/vuln/detail/{}", self.cve.id)
    }
}

/// The order a defender acts in: known exploited first, then EPSS, then CVSS (then id).
pub fn priority(a: &Finding, b: &Finding) -> Ordering {
    a.urgency().first(&b.urgency())
}

/// The versions a `cpe_match` entry covers.
#[derive(Debug, Clone)]
enum Covers {
    /// NVD's `-` (NA, "no version").
    None,
    /// One version, by its [`Version::key`] (as written: boxing it would copy it again).
    Exact(String),
    /// `*`, within its bounds (every version without any). Boxed: a large product's
    /// hundred thousand rows are then half the size to grow and copy.
    Range(Box<Bounds>),
}

/// A `cpe_match` row, read once per product.
#[derive(Debug, Clone)]
struct MatchRow {
    cve: Arc<str>,
    /// The CVE's place among the product's ([`ProductIndex::cves`]).
    slot: u32,
    covers: Covers,
    /// How the entry matches, the same for every version it covers: `criteria (>= 8.5p1,
    /// < 9.8p1)`, `criteria (exact version)`.
    why: Arc<str>,
    /// In an AND configuration: (configuration, node).
    and_node: Option<(i64, i64)>,
}

impl MatchRow {
    /// A row as read: its bounds parsed and its explanation written once (the texts are
    /// borrowed from the statement, the explanation written in `why`, a buffer reused from
    /// row to row: a large product has a hundred thousand rows).
    fn new(
        cve: Arc<str>,
        slot: u32,
        version: &str,
        texts: [Option<&str>; 4],
        criteria: &str,
        and_node: Option<(i64, i64)>,
        why: &mut String,
    ) -> MatchRow {
        why.clear();
        why.push_str(criteria);
        let covers = match version {
            "*" | "-" => {
                let mut first = true;
                for (op, t) in [">=", ">", "<=", "<"].iter().zip(texts) {
                    if let Some(t) = t {
                        why.push_str(if first { " (" } else { ", " });
                        why.push_str(op);
                        why.push(' ');
                        why.push_str(t);
                        first = false;
                    }
                }
                why.push_str(if first { " (every version)" } else { ")" });
                if version == "-" {
                    Covers::None
                } else {
                    Covers::Range(Box::new(Bounds::parse(texts)))
                }
            }
            exact => {
                why.push_str(" (exact version)");
                Covers::Exact(Version::parse(exact).key())
            }
        };
        MatchRow {
            cve,
            slot,
            covers,
            why: Arc::from(why.as_str()),
            and_node,
        }
    }

    /// Whether the entry covers `version`. A `-` (NA: "no version") entry covers none: in
    /// CPE name matching a specific version and NA are disjoint, and NVD writes `-` for
    /// software it does not track by version (Debian's own Redis build in CVE-2022-0543).
    fn covers(&self, version: &Version) -> bool {
        match &self.covers {
            Covers::None => false,
            Covers::Range(bounds) => bounds.contain(version),
            Covers::Exact(key) => *key == version.key(),
        }
    }
}

/// Whether a cpeMatch covers `version`, and how; None when not.
#[cfg(test)]
fn covers(row: &MatchRow, version: &str) -> Option<String> {
    row.covers(&Version::parse(version))
        .then(|| row.why.to_string())
}

/// A product's cpeMatch entries, indexed: exact versions by [`Version::key`], ranges apart.
struct ProductIndex {
    /// `vendor:product`.
    name: Arc<str>,
    rows: Vec<MatchRow>,
    /// What the database holds of each of its CVEs, read when one of its entries first
    /// covers a service (None inside: only its entries are known).
    cves: Vec<OnceLock<Option<Arc<Cve>>>>,
    /// For each entry of an AND configuration, whether its other nodes hold where nothing
    /// is known of the platform (most services): decided once.
    bare: Vec<OnceLock<(Holds, Arc<str>)>>,
    /// The exact-version entries, ordered by their key (then as read): searched, not
    /// hashed, so that the keys are not copied.
    exact: Vec<usize>,
    ranges: Vec<usize>,
}

impl ProductIndex {
    fn new(name: Arc<str>, rows: Vec<MatchRow>, cves: usize) -> ProductIndex {
        let bare = (0..rows.len()).map(|_| OnceLock::new()).collect();
        let mut exact = Vec::new();
        let mut ranges = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            match row.covers {
                Covers::None => {}
                Covers::Range(_) => ranges.push(i),
                Covers::Exact(_) => exact.push(i),
            }
        }
        let key = |i: &usize| match rows.get(*i).map(|r| &r.covers) {
            Some(Covers::Exact(k)) => k.as_str(),
            _ => "",
        };
        // Stable: a key's entries stay in the order read.
        exact.sort_by(|a, b| key(a).cmp(key(b)));
        ProductIndex {
            name,
            cves: (0..cves).map(|_| OnceLock::new()).collect(),
            bare,
            exact,
            ranges,
            rows,
        }
    }

    fn exact_key(&self, i: usize) -> &str {
        match self.rows.get(i).map(|r| &r.covers) {
            Some(Covers::Exact(k)) => k,
            _ => "",
        }
    }

    /// The entries covering `version`, in the order read.
    fn matching(&self, version: &Version) -> Vec<usize> {
        let key = version.key();
        let from = self
            .exact
            .partition_point(|&i| self.exact_key(i) < key.as_str());
        let mut out: Vec<usize> = self
            .exact
            .get(from..)
            .unwrap_or_default()
            .iter()
            .copied()
            .take_while(|&i| self.exact_key(i) == key)
            .collect();
        out.extend(
            self.ranges
                .iter()
                .copied()
                .filter(|&i| self.rows.get(i).is_some_and(|row| row.covers(version))),
        );
        out.sort_unstable();
        out
    }
}

/// The product `-sV` found, as the matcher understands it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    nvd: Vec<(String, String)>,
    /// The upstream version compared.
    version: String,
    debian_package: Option<String>,
    /// A Debian build named by the banner: (revision, release code name if known).
    debian_build: Option<(String, Option<String>)>,
    /// Whether something (banner, extrainfo, ostype) says Debian even without a revision.
    says_debian: bool,
    /// What is known of the platform it runs on, for AND configurations.
    platform: Platform,
}

fn alias_by_name(product: &str) -> Option<&'static Alias> {
    let p = product.to_ascii_lowercase();
    ALIASES
        .iter()
        .find(|a| a.names.iter().any(|n| p.starts_with(n)))
}

fn alias_by_cpe(c: &cpe::Cpe) -> Option<&'static Alias> {
    // By product name only: Nmap's CPE vendors differ from NVD's (igor_sysoev:nginx).
    ALIASES
        .iter()
        .find(|a| a.nvd.iter().any(|(_, p)| *p == c.product))
}

/// A version that names a range or a guess ("2.0.8 or later", "9.6.0 - 9.6.7", "5.X"):
/// nothing precise enough to compare.
fn imprecise(v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    l.contains("or later")
        || l.contains("or earlier")
        || l.contains(" - ")
        || l.split(['.', ' ']).any(|p| p == "x")
        || !l.starts_with(|c: char| c.is_ascii_digit())
}

/// The Debian revision a banner names: "9.2p1 Debian 2+deb12u3" → "2+deb12u3",
/// "10.11.6-MariaDB-0+deb12u1" → "0+deb12u1".
fn debian_revision(version: &str) -> Option<String> {
    let words: Vec<&str> = version.split_whitespace().collect();
    if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case("debian")) {
        if let Some(rev) = words.get(i + 1) {
            if rev.starts_with(|c: char| c.is_ascii_digit()) {
                return Some(rev.trim_end_matches([',', ')']).to_string());
            }
        }
    }
    // An inline revision: the last "-N+debXXuY" / "-N~debXXuY" piece.
    let first = words.first()?;
    let i = first.find("deb")?;
    let start = first.get(..i)?.rfind('-')? + 1;
    first.get(start..).map(str::to_string)
}

/// The Debian major release a revision names: "2+deb12u3" → 12.
fn release_major(revision: &str) -> Option<u32> {
    let i = revision.find("deb")?;
    let digits: String = revision
        .get(i + 3..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn release_of(revision: &str) -> Option<String> {
    let n = release_major(revision)?;
    DEBIAN_RELEASES
        .iter()
        .find(|(m, _)| *m == n)
        .map(|(_, name)| name.to_string())
}

fn identify(q: &ServiceQuery) -> Option<Identity> {
    let raw_version = q.version.as_deref().unwrap_or("").trim();
    let product = q.product.as_deref().unwrap_or("");
    let mut mariadb = raw_version.to_ascii_lowercase().contains("mariadb");
    let cpes: Vec<cpe::Cpe> = q.cpes.iter().filter_map(|c| cpe::parse(c)).collect();
    let alias = if mariadb {
        alias_by_name("mariadb")
    } else {
        alias_by_name(product).or_else(|| cpes.iter().find_map(alias_by_cpe))
    };
    if alias.is_some_and(|a| a.names.first() == Some(&"mariadb")) {
        mariadb = true;
    }
    let mut nvd: Vec<(String, String)> = match alias {
        Some(a) => a
            .nvd
            .iter()
            .map(|(v, p)| (v.to_string(), p.to_string()))
            .collect(),
        None => Vec::new(),
    };
    // A CPE not in the table is taken as NVD names it (application CPEs only).
    if alias.is_none() {
        for c in cpes.iter().filter(|c| c.part == "a") {
            nvd.push((c.vendor.clone(), c.product.clone()));
        }
    }
    if nvd.is_empty() {
        return None;
    }
    // The version: the banner's, else the first CPE's.
    let mut text = raw_version.to_string();
    if mariadb {
        // MySQL protocol banners of MariaDB: "5.5.5-10.11.6-MariaDB-0+deb12u1".
        let lower = text.to_ascii_lowercase();
        if let Some(i) = lower.find("-mariadb") {
            let head = text.get(..i).unwrap_or("");
            let tail = text.get(i..).unwrap_or("").to_string();
            let head = head.strip_prefix("5.5.5-").unwrap_or(head);
            text = format!("{head}{tail}");
        }
    }
    if text.is_empty() {
        text = cpes
            .iter()
            .find(|c| !matches!(c.version.as_str(), "*" | "-"))
            .map(|c| c.version.clone())
            .unwrap_or_default();
    }
    if text.is_empty() || imprecise(&text) {
        return None;
    }
    let version = version::upstream(&text).to_string();
    let debian_package = alias.and_then(|a| a.debian).map(|p| {
        if p == "postgresql" {
            let major = version.split('.').next().unwrap_or("");
            format!("postgresql-{major}")
        } else {
            p.to_string()
        }
    });
    let debian_build = debian_revision(&text).map(|rev| {
        let rel = release_of(&rev);
        (rev, rel)
    });
    let mentions = |s: &Option<String>| {
        s.as_deref()
            .is_some_and(|t| t.to_ascii_lowercase().contains("debian"))
    };
    let says_debian = debian_build.is_some()
        || mentions(&q.version)
        || mentions(&q.extrainfo)
        || mentions(&q.ostype);
    let mut platform = Platform::default();
    match debian_revision(&text).as_deref().map(release_major) {
        Some(Some(major)) => platform.debian(Some(major), "the banner's Debian revision"),
        _ if says_debian => platform.debian(None, "the service says Debian"),
        _ => {}
    }
    if let Some(os) = &q.ostype {
        platform.ostype(os);
    }
    for c in q.cpes.iter().filter_map(|c| cpe::parse(c)) {
        platform.cpe(&c, "the service's CPE");
    }
    for c in q.host_os.iter().filter_map(|c| cpe::parse(c)) {
        platform.cpe(&c, "OS detection");
    }
    Some(Identity {
        nvd,
        version,
        debian_package,
        debian_build,
        says_debian,
        platform,
    })
}

/// Debian's word on a CVE in one release: (release, status, fixed version).
type TrackerEntry = (String, Arc<str>, Option<Arc<str>>);

/// What a worker of [`Matcher::services`] matched: each service's place and findings.
type Share = Vec<(usize, Arc<Vec<Finding>>)>;

/// From how many services [`Matcher::services`] matches on several threads, and on how
/// many at most.
const PARALLEL_FROM: usize = 2_000;
const MAX_THREADS: usize = 4;
/// The most services of a product one worker takes at a time.
const CHUNK: usize = 1024;

/// How many CVE records one statement reads ([`Matcher::read_cves`]).
const CVE_BATCH: usize = 64;

/// The statements reading a batch of CVE records: without, then with their EPSS scores
/// (`id IN (?1, …)`).
static CVE_SQL: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
    let places: Vec<String> = (1..=CVE_BATCH).map(|i| format!("?{i}")).collect();
    let places = places.join(", ");
    [
        format!(
            "SELECT c.id, c.cvss, c.cvss_version, c.severity, c.description, NULL, NULL \
             FROM cve c WHERE c.id IN ({places})"
        ),
        format!(
            "SELECT c.id, c.cvss, c.cvss_version, c.severity, c.description, e.epss, \
             e.percentile FROM cve c LEFT JOIN epss e ON e.cve = c.id WHERE c.id IN ({places})"
        ),
    ]
});

/// After how many CVEs read the matcher reads the whole EPSS table.
const EPSS_WHOLE_AFTER: u64 = 20_000;

/// Every EPSS score, by CVE number ([`cve_number`]): a table of a few MB read without an
/// allocation per row, hashed (a binary search of 300,000 scores per CVE read missed the
/// processor's caches at every step).
struct EpssTable(HashMap<u64, (f64, f64)>);

impl EpssTable {
    fn get(&self, cve: &str) -> Option<(f64, f64)> {
        self.0.get(&cve_number(cve)?).copied()
    }
}

/// `CVE-2024-6387` as one number (year, then the sequence, up to 12 digits); None for
/// anything else.
fn cve_number(id: &str) -> Option<u64> {
    let rest = id.strip_prefix("CVE-")?;
    let (year, seq) = rest.split_once('-')?;
    if year.len() != 4 || seq.is_empty() || seq.len() > 12 {
        return None;
    }
    let year: u64 = year.parse().ok()?;
    let seq: u64 = seq.parse().ok()?;
    Some(year * 1_000_000_000_000 + seq)
}

/// CISA's catalog by CVE: the date added and the ransomware use.
type KevMap = HashMap<String, (Arc<str>, Option<Arc<str>>)>;

/// What Debian's tracker says of one source package: per CVE, per release, the status and
/// the fixed version; and the package's epoch (from any version it gives: banners carry
/// none).
struct DebianPackage {
    epoch: u64,
    entries: HashMap<Arc<str>, Vec<TrackerEntry>>,
}

impl DebianPackage {
    fn entry(&self, cve: &str, release: &str) -> Option<(&Arc<str>, Option<&Arc<str>>)> {
        self.entries
            .get(cve)?
            .iter()
            .find(|(r, _, _)| r == release)
            .map(|(_, s, f)| (s, f.as_ref()))
    }
}

/// How a service's findings are judged, decided once per service: on the upstream version
/// (and why), or on a Debian build the tracker knows.
enum Judge {
    Upstream(&'static str),
    Debian {
        package: Arc<str>,
        release: Arc<str>,
        /// The installed version with the package's epoch.
        installed: Arc<str>,
        revision: String,
        tracker: Arc<DebianPackage>,
    },
}

/// A product's entries once read ([`Shared::products`]).
type ProductSlot = Mutex<Option<Arc<ProductIndex>>>;

/// The nodes of each AND configuration met: (CVE, configuration).
type Configs = HashMap<(Arc<str>, i64), Arc<Vec<platform::Node>>>;

/// A CVE record to read, and where it goes.
type CveCell<'a> = (&'a Arc<str>, &'a OnceLock<Option<Arc<Cve>>>);

/// What a matcher and the workers of its [`Matcher::services`] share: each product, CVE
/// record, AND configuration and table is read once for all of them (a large scan's
/// products are shared out between the workers, and their CVEs overlap).
#[derive(Default)]
struct Shared {
    /// Each product's entries, behind a lock of its own: a worker that wants a product
    /// another is reading waits for it rather than reading it again.
    products: Mutex<HashMap<(String, String), Arc<ProductSlot>>>,
    /// CVE records by id, whichever product's entries they were read for.
    cves: Mutex<HashMap<Arc<str>, Option<Arc<Cve>>>>,
    configs: Mutex<Configs>,
    kev: Mutex<Option<Arc<KevMap>>>,
    epss: Mutex<Option<Arc<EpssTable>>>,
    /// CVE records read from the database, by all of them.
    cves_read: AtomicU64,
}

/// The few texts that CVE records repeat (CVSS versions, severities), shared rather than
/// allocated for each of a hundred thousand records.
#[derive(Default)]
struct Words(std::collections::HashSet<Arc<str>>);

impl Words {
    fn get(&mut self, text: Option<&str>) -> Option<Arc<str>> {
        let text = text?;
        if let Some(w) = self.0.get(text) {
            return Some(w.clone());
        }
        let w: Arc<str> = text.into();
        self.0.insert(w.clone());
        Some(w)
    }
}

/// A lock whose holder panicked still guards complete entries (each is inserted whole).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Matches services against an open database, caching per product and per service.
pub struct Matcher {
    db: VulnDb,
    shared: Arc<Shared>,
    /// The products this matcher met (a first look before [`Shared::products`]).
    rows: HashMap<(String, String), Arc<ProductIndex>>,
    /// The entries of a product covering a version: (vendor, product, version key).
    covered: HashMap<(String, String, String), Arc<Vec<usize>>>,
    debian_packages: HashMap<String, Option<Arc<DebianPackage>>>,
    kev: Option<Arc<KevMap>>,
    words: Words,
    /// Every EPSS score, once many CVEs have been read ([`Matcher::epss_whole_after`]).
    epss: Option<Arc<EpssTable>>,
    epss_whole_after: u64,
    /// The nodes of each AND configuration met: (CVE, configuration).
    configs: Configs,
    results: HashMap<ServiceQuery, Arc<Vec<Finding>>>,
    /// The same, by what the matching depends on (services that differ in other words).
    by_identity: HashMap<Identity, Arc<Vec<Finding>>>,
    /// The matchers of [`Matcher::services`]' threads, each with its connection, kept
    /// for the next batch (and their caches dropped with this one, not while matching).
    workers: Vec<Matcher>,
}

impl VulnDb {
    /// A matcher that owns the database (it can then live in a scan's output sink, sent
    /// to the engine's threads); [`Matcher::db`] gives it back for reading.
    pub fn into_matcher(self) -> Matcher {
        self.matcher_sharing(Arc::default())
    }

    fn matcher_sharing(self, shared: Arc<Shared>) -> Matcher {
        Matcher {
            db: self,
            shared,
            rows: HashMap::new(),
            covered: HashMap::new(),
            debian_packages: HashMap::new(),
            kev: None,
            words: Words::default(),
            epss: None,
            epss_whole_after: EPSS_WHOLE_AFTER,
            configs: HashMap::new(),
            results: HashMap::new(),
            by_identity: HashMap::new(),
            workers: Vec::new(),
        }
    }
}

fn text(s: Option<String>) -> Option<Arc<str>> {
    s.map(Arc::from)
}

impl Matcher {
    /// Reads the whole EPSS table once `n` CVEs have been read (20,000 by default): for
    /// tests, and for tuning.
    pub fn epss_whole_after(mut self, n: u64) -> Matcher {
        self.epss_whole_after = n;
        self
    }

    /// The database matched against.
    pub fn db(&self) -> &VulnDb {
        &self.db
    }

    fn conn(&self) -> &Connection {
        self.db().connection()
    }

    fn err(&self, source: rusqlite::Error) -> VulnError {
        VulnError::Db {
            path: self.db().path().into(),
            source,
        }
    }

    /// The findings of many services, in their order: on several threads for a large
    /// batch, each with its own connection and caches and its own share of the products
    /// (so that each product is still read once).
    pub fn services(
        &mut self,
        queries: &[&ServiceQuery],
    ) -> Result<Vec<Arc<Vec<Finding>>>, VulnError> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_THREADS);
        if threads < 2 || queries.len() < PARALLEL_FROM {
            return queries.iter().map(|q| self.service(q)).collect();
        }
        // The services of a product together, in chunks that the workers take in turn,
        // the largest first: a product of many services is shared out (reading it once
        // per worker costs less than one worker building all its findings).
        let mut groups: HashMap<Option<(String, String)>, Vec<usize>> = HashMap::new();
        for (i, q) in queries.iter().enumerate() {
            let product = identify(q).and_then(|id| id.nvd.into_iter().next());
            groups.entry(product).or_default().push(i);
        }
        let mut chunks: Vec<(usize, Vec<usize>)> = Vec::new();
        for g in groups.into_values() {
            chunks.extend(g.chunks(CHUNK).map(<[usize]>::to_vec).enumerate());
        }
        // Of chunks of one size, each product's first, then each one's second...: the
        // workers do not start on the same product (one would read it while the others
        // wait).
        chunks.sort_by_key(|(round, c)| (std::cmp::Reverse(c.len()), *round));
        let chunks: Vec<Vec<usize>> = chunks.into_iter().map(|(_, c)| c).collect();
        let next = AtomicUsize::new(0);
        let path = self.db().path().to_path_buf();
        let whole_after = self.epss_whole_after;
        let shared = &self.shared;
        let mut kept = std::mem::take(&mut self.workers).into_iter();
        let done: Vec<Result<(Share, Matcher), VulnError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (path, chunks, next) = (&path, &chunks, &next);
                    let kept = kept.next();
                    scope.spawn(move || {
                        let mut m = match kept {
                            Some(m) => m,
                            None => VulnDb::open_existing(path)?
                                .matcher_sharing(shared.clone())
                                .epss_whole_after(whole_after),
                        };
                        let mut done = Vec::new();
                        while let Some(chunk) = chunks.get(next.fetch_add(1, Relaxed)) {
                            for &i in chunk {
                                if let Some(q) = queries.get(i) {
                                    done.push((i, m.service(q)?));
                                }
                            }
                        }
                        Ok((done, m))
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(VulnError::Corrupt {
                            path: path.clone(),
                            what: "a matching thread failed".into(),
                        })
                    })
                })
                .collect()
        });
        let mut out: Vec<Arc<Vec<Finding>>> = vec![Arc::default(); queries.len()];
        for part in done {
            let (part, worker) = part?;
            self.workers.push(worker);
            for (i, f) in part {
                if let Some(slot) = out.get_mut(i) {
                    *slot = f;
                }
            }
        }
        Ok(out)
    }

    /// The findings of one service, most urgent first; empty when the service is not a
    /// known product or has no precise version.
    pub fn service(&mut self, q: &ServiceQuery) -> Result<Arc<Vec<Finding>>, VulnError> {
        if let Some(r) = self.results.get(q) {
            return Ok(r.clone());
        }
        let found = match identify(q) {
            Some(id) => match self.by_identity.get(&id) {
                Some(f) => f.clone(),
                None => {
                    // One read transaction for the service's queries: SQLite otherwise
                    // takes and drops its file locks around each of them.
                    self.conn()
                        .execute_batch("BEGIN")
                        .map_err(|e| self.err(e))?;
                    let found = self.findings(&id);
                    let end = if found.is_ok() { "COMMIT" } else { "ROLLBACK" };
                    self.conn().execute_batch(end).map_err(|e| self.err(e))?;
                    let f = Arc::new(found?);
                    self.by_identity.insert(id, f.clone());
                    f
                }
            },
            None => Arc::new(Vec::new()),
        };
        self.results.insert(q.clone(), found.clone());
        Ok(found)
    }

    /// Every EPSS score, by CVE.
    fn all_epss(&self) -> Result<EpssTable, VulnError> {
        let out: HashMap<u64, (f64, f64)> = self
            .conn()
            .prepare("SELECT cve, epss, percentile FROM epss")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    let n = cve_number(r.get_ref(0)?.as_str()?);
                    let (e, p): (f64, f64) = (r.get(1)?, r.get(2)?);
                    Ok(n.map(|n| (n, (e, p))))
                })?
                .filter_map(Result::transpose)
                .collect()
            })
            .map_err(|e| self.err(e))?;
        Ok(EpssTable(out))
    }

    /// CISA's catalog, read whole once (about a thousand entries): by CVE, the date added
    /// and the ransomware use.
    fn kev(&mut self) -> Result<Arc<KevMap>, VulnError> {
        if let Some(k) = &self.kev {
            return Ok(k.clone());
        }
        let shared = self.shared.clone();
        let mut known = lock(&shared.kev);
        if let Some(k) = &*known {
            self.kev = Some(k.clone());
            return Ok(k.clone());
        }
        let map: KevMap = self
            .conn()
            .prepare("SELECT cve, date_added, ransomware FROM kev")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        (
                            Arc::from(r.get::<_, String>(1)?),
                            text(r.get::<_, Option<String>>(2)?),
                        ),
                    ))
                })?
                .collect()
            })
            .map_err(|e| self.err(e))?;
        let map = Arc::new(map);
        *known = Some(map.clone());
        self.kev = Some(map.clone());
        Ok(map)
    }

    /// What the database holds of a CVE (scores, EPSS, description; KEV from
    /// [`Matcher::kev`]), read when one of its entries first covers a service.
    fn cve(&mut self, index: &ProductIndex, row: &MatchRow) -> Result<Option<Arc<Cve>>, VulnError> {
        let Some(cell) = index.cves.get(row.slot as usize) else {
            return Ok(None);
        };
        if let Some(c) = cell.get() {
            return Ok(c.clone());
        }
        self.read_cves(index, std::iter::once(row))?;
        Ok(cell.get().cloned().flatten())
    }

    /// Reads the CVE records of the product's entries `rows` that are not known yet (not
    /// read for this product, another or by another worker), [`CVE_BATCH`] in one
    /// statement: SQLite then seeks them in order, and one statement for many costs far
    /// less than one each.
    fn read_cves<'r>(
        &mut self,
        index: &ProductIndex,
        rows: impl Iterator<Item = &'r MatchRow>,
    ) -> Result<(), VulnError> {
        let mut missing: Vec<CveCell> = Vec::new();
        {
            let known = lock(&self.shared.cves);
            let mut last = None;
            for row in rows {
                // A CVE's entries are together.
                if last == Some(row.slot) {
                    continue;
                }
                last = Some(row.slot);
                let Some(cell) = index.cves.get(row.slot as usize) else {
                    continue;
                };
                if cell.get().is_some() {
                    continue;
                }
                match known.get(&row.cve) {
                    Some(c) => {
                        let _ = cell.set(c.clone());
                    }
                    None => missing.push((&row.cve, cell)),
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let kev = self.kev()?;
        for batch in missing.chunks(CVE_BATCH) {
            // EPSS scores from the join while few CVEs have been read; past that, all of
            // them at once (a large scan reads most CVEs of its products, and a lookup per
            // CVE in a second index costs more than the one scan of the EPSS table).
            let read = self.shared.cves_read.fetch_add(batch.len() as u64, Relaxed);
            if self.epss.is_none() && read + batch.len() as u64 > self.epss_whole_after {
                let shared = self.shared.clone();
                let mut whole = lock(&shared.epss);
                let table = match &*whole {
                    Some(t) => t.clone(),
                    None => Arc::new(self.all_epss()?),
                };
                *whole = Some(table.clone());
                self.epss = Some(table);
            }
            let all_epss = self.epss.as_deref();
            let sql = &CVE_SQL[usize::from(all_epss.is_none())];
            let words = &mut self.words;
            let mut found: Vec<Option<Arc<Cve>>> = vec![None; batch.len()];
            self.db
                .connection()
                .prepare_cached(sql)
                .and_then(|mut s| {
                    // Unused places are NULL, which no id equals: one statement for
                    // every batch.
                    let ids = batch
                        .iter()
                        .map(|(id, _)| Some(&***id))
                        .chain(std::iter::repeat(None))
                        .take(CVE_BATCH);
                    let mut q = s.query(rusqlite::params_from_iter(ids))?;
                    while let Some(r) = q.next()? {
                        let got = r.get_ref(0)?.as_str()?;
                        // The product's entries are in CVE order, and so the batch.
                        let at = batch
                            .binary_search_by(|(id, _)| (***id).cmp(got))
                            .ok()
                            .or_else(|| batch.iter().position(|(id, _)| ***id == *got));
                        let Some((at, (id, _))) = at.and_then(|a| batch.get(a).map(|b| (a, b)))
                        else {
                            continue;
                        };
                        let (epss, pct): (Option<f64>, Option<f64>) = match all_epss {
                            Some(t) => t
                                .get(id)
                                .map(|(e, p)| (Some(e), Some(p)))
                                .unwrap_or_default(),
                            None => (r.get(5)?, r.get(6)?),
                        };
                        let known = kev.get(&***id);
                        let cve = Arc::new(Cve {
                            id: (*id).clone(),
                            cvss: r.get(1)?,
                            cvss_version: words.get(r.get_ref(2)?.as_str_or_null()?),
                            severity: words.get(r.get_ref(3)?.as_str_or_null()?),
                            kev_date_added: known.map(|k| k.0.clone()),
                            kev_ransomware: known.and_then(|k| k.1.clone()),
                            // A score comes with its percentile.
                            epss: epss.filter(|_| pct.is_some()),
                            epss_percentile: pct.filter(|_| epss.is_some()),
                            description: r.get_ref(4)?.as_str()?.into(),
                        });
                        if let Some(f) = found.get_mut(at) {
                            *f = Some(cve);
                        }
                    }
                    Ok(())
                })
                .map_err(|e| self.err(e))?;
            let mut known = lock(&self.shared.cves);
            for ((id, cell), cve) in batch.iter().zip(found) {
                known.insert((*id).clone(), cve.clone());
                let _ = cell.set(cve);
            }
        }
        Ok(())
    }

    /// The nodes of an AND configuration, read when one of its entries first covers a
    /// service.
    fn config(
        &mut self,
        cve: &Arc<str>,
        config: i64,
    ) -> Result<Arc<Vec<platform::Node>>, VulnError> {
        let key = (cve.clone(), config);
        if let Some(n) = self.configs.get(&key) {
            return Ok(n.clone());
        }
        if let Some(n) = lock(&self.shared.configs).get(&key) {
            self.configs.insert(key, n.clone());
            return Ok(n.clone());
        }
        let json: Option<String> = self
            .conn()
            .prepare_cached("SELECT nodes FROM cpe_config WHERE cve = ?1 AND config = ?2")
            .and_then(|mut s| {
                s.query_row(rusqlite::params![&**cve, config], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        let nodes: Vec<platform::Node> = match json {
            Some(j) => serde_json::from_str(&j).map_err(|e| VulnError::Corrupt {
                path: self.db().path().into(),
                what: format!("{cve}: configuration {config}: {e}"),
            })?,
            None => Vec::new(),
        };
        let nodes = Arc::new(nodes);
        lock(&self.shared.configs).insert(key.clone(), nodes.clone());
        self.configs.insert(key, nodes.clone());
        Ok(nodes)
    }

    /// A product's entries (one range of the clustered table): the matching of a large
    /// scan reads each product once.
    fn rows_of(&mut self, vendor: &str, product: &str) -> Result<Arc<ProductIndex>, VulnError> {
        let key = (vendor.to_string(), product.to_string());
        if let Some(r) = self.rows.get(&key) {
            return Ok(r.clone());
        }
        let slot = lock(&self.shared.products)
            .entry(key.clone())
            .or_default()
            .clone();
        let mut read = lock(&slot);
        if let Some(r) = &*read {
            self.rows.insert(key, r.clone());
            return Ok(r.clone());
        }
        let mut rows: Vec<MatchRow> = Vec::new();
        let mut cves = 0;
        let mut why = String::new();
        self.conn()
            .prepare_cached(
                "SELECT cve, version, start_incl, start_excl, end_incl, end_excl, criteria, \
                 config, node FROM cpe_match WHERE product = ?1 AND vendor = ?2",
            )
            .and_then(|mut s| {
                let mut q = s.query([product, vendor])?;
                while let Some(r) = q.next()? {
                    let bound = |i: usize| -> rusqlite::Result<Option<&str>> {
                        Ok(r.get_ref(i)?.as_str_or_null()?)
                    };
                    let cve = r.get_ref(0)?.as_str()?;
                    let config: Option<i64> = r.get(7)?;
                    let node: Option<i64> = r.get(8)?;
                    // Clustered by CVE: a CVE's rows are together, and share its place.
                    let (id, slot) = match rows.last() {
                        Some(last) if *last.cve == *cve => (last.cve.clone(), last.slot),
                        _ => {
                            cves += 1;
                            (Arc::from(cve), cves - 1)
                        }
                    };
                    rows.push(MatchRow::new(
                        id,
                        slot,
                        r.get_ref(1)?.as_str()?,
                        [bound(2)?, bound(3)?, bound(4)?, bound(5)?],
                        r.get_ref(6)?.as_str()?,
                        config.zip(node),
                        &mut why,
                    ));
                }
                Ok(())
            })
            .map_err(|e| self.err(e))?;
        let name: Arc<str> = format!("{vendor}:{product}").into();
        let rows = Arc::new(ProductIndex::new(name, rows, cves as usize));
        *read = Some(rows.clone());
        self.rows.insert(key, rows.clone());
        Ok(rows)
    }

    /// What the tracker data holds of `package` (None: nothing), read once.
    fn debian_package(&mut self, package: &str) -> Result<Option<Arc<DebianPackage>>, VulnError> {
        if let Some(b) = self.debian_packages.get(package) {
            return Ok(b.clone());
        }
        let mut entries: HashMap<Arc<str>, Vec<TrackerEntry>> = HashMap::new();
        let mut epoch = None;
        self.conn()
            .prepare_cached(
                "SELECT cve, release, status, fixed_version FROM debian WHERE package = ?1",
            )
            .and_then(|mut s| {
                let mut q = s.query([package])?;
                while let Some(r) = q.next()? {
                    let cve: String = r.get(0)?;
                    let fixed: Option<String> = r.get(3)?;
                    if epoch.is_none() {
                        epoch = fixed
                            .as_deref()
                            .filter(|f| f.contains(':'))
                            .map(|f| DebianVersion::parse(f).epoch);
                    }
                    entries.entry(cve.into()).or_default().push((
                        r.get(1)?,
                        r.get::<_, String>(2)?.into(),
                        text(fixed),
                    ));
                }
                Ok(())
            })
            .map_err(|e| self.err(e))?;
        let known = (!entries.is_empty()).then(|| {
            Arc::new(DebianPackage {
                epoch: epoch.unwrap_or(0),
                entries,
            })
        });
        self.debian_packages
            .insert(package.to_string(), known.clone());
        Ok(known)
    }

    /// How the findings of a service are judged: Debian's tracker when the banner names a
    /// Debian build of a package it knows, else the upstream version and why.
    fn judge(&mut self, id: &Identity) -> Result<Judge, VulnError> {
        if !id.says_debian {
            return Ok(Judge::Upstream("upstream version only"));
        }
        let Some(package) = &id.debian_package else {
            return Ok(Judge::Upstream(
                "upstream version only: no Debian source package known for this product",
            ));
        };
        let Some(tracker) = self.debian_package(package)? else {
            return Ok(Judge::Upstream(
                "upstream version only: no Debian tracker data for this package",
            ));
        };
        let Some((revision, release)) = &id.debian_build else {
            return Ok(Judge::Upstream(
                "upstream version only: the banner names no Debian revision",
            ));
        };
        let Some(release) = release else {
            return Ok(Judge::Upstream(
                "upstream version only: the Debian release is not known from the revision",
            ));
        };
        Ok(Judge::Debian {
            package: package.as_str().into(),
            release: release.as_str().into(),
            installed: installed(tracker.epoch, &id.version, revision).into(),
            revision: revision.clone(),
            tracker,
        })
    }

    fn findings(&mut self, id: &Identity) -> Result<Vec<Finding>, VulnError> {
        let mut out: Vec<Finding> = Vec::new();
        // Where each CVE's finding is in `out`: the last one's (a product's entries of a CVE
        // are together), and, for a service of two NVD products, every one's.
        let mut seen: Option<HashMap<Arc<str>, usize>> = (id.nvd.len() > 1).then(HashMap::new);
        let version = Version::parse(&id.version);
        let version_text: Arc<str> = id.version.as_str().into();
        let judge = self.judge(id)?;
        // The upstream basis is the same for every finding of the service.
        let upstream = match &judge {
            Judge::Upstream(note) => Arc::new(Basis::Upstream {
                note: Cow::Borrowed(note),
            }),
            Judge::Debian { .. } => Arc::new(Basis::Upstream {
                note: Cow::Borrowed(NO_TRACKER_ENTRY),
            }),
        };
        for (vendor, product) in &id.nvd {
            let index = self.rows_of(vendor, product)?;
            let key = (vendor.clone(), product.clone(), version.key());
            let covered = match self.covered.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(index.matching(&version));
                    self.covered.insert(key, c.clone());
                    c
                }
            };
            // The CVE records of the entries, the ones not known yet read together.
            self.read_cves(&index, covered.iter().filter_map(|&i| index.rows.get(i)))?;
            out.reserve(covered.len());
            let mut last: Option<(u32, usize)> = None;
            for &i in covered.iter() {
                let Some(row) = index.rows.get(i) else {
                    continue;
                };
                let before = match last {
                    Some((slot, at)) if slot == row.slot => Some(at),
                    _ => seen.as_ref().and_then(|m| m.get(&row.cve)).copied(),
                };
                // A CVE found unconditionally stays so.
                if before.is_some_and(|b| out.get(b).is_some_and(|f| f.condition.is_none())) {
                    continue;
                }
                let Some(cve) = self.cve(&index, row)? else {
                    continue;
                };
                let (matched, condition) = match row.and_node {
                    None => (row.why.clone(), None),
                    Some((config, node)) => {
                        let bare = id.platform.is_empty().then(|| index.bare.get(i)).flatten();
                        let (holds, why) = match bare.and_then(|b| b.get()) {
                            Some(known) => known.clone(),
                            None => {
                                let nodes = self.config(&row.cve, config)?;
                                let (h, why) = platform::condition(&nodes, node, &id.platform);
                                let decided = (h, Arc::<str>::from(why));
                                if let Some(b) = bare {
                                    let _ = b.set(decided.clone());
                                }
                                decided
                            }
                        };
                        match holds {
                            Holds::No => continue,
                            Holds::Yes => (format!("{}; {why}", row.why).into(), None),
                            Holds::Unknown => (row.why.clone(), Some(why)),
                        }
                    }
                };
                if before.is_some() && condition.is_some() {
                    continue;
                }
                let basis = match debian_basis(&judge, &id.version, &row.cve) {
                    Verdict::Fixed => continue,
                    Verdict::Upstream => upstream.clone(),
                    Verdict::Debian(b) => Arc::new(b),
                };
                let finding = Finding {
                    cve,
                    product: index.name.clone(),
                    version: version_text.clone(),
                    matched,
                    condition,
                    basis,
                };
                match before.and_then(|b| out.get_mut(b).map(|f| (b, f))) {
                    Some((at, f)) => {
                        *f = finding;
                        last = Some((row.slot, at));
                    }
                    None => {
                        if let Some(m) = &mut seen {
                            m.insert(row.cve.clone(), out.len());
                        }
                        last = Some((row.slot, out.len()));
                        out.push(finding);
                    }
                }
            }
        }
        // Unstable is enough: a service's findings are of distinct CVEs.
        out.sort_unstable_by(priority);
        Ok(out)
    }
}

/// A Debian package version from the banner's upstream version and revision.
fn installed(epoch: u64, version: &str, revision: &str) -> String {
    if epoch > 0 {
        format!("{epoch}:{version}-{revision}")
    } else {
        format!("{version}-{revision}")
    }
}

const NO_TRACKER_ENTRY: &str =
    "upstream version only: Debian's tracker has no entry for this CVE and release";

/// What Debian's tracker makes of a finding.
enum Verdict {
    /// The installed build is fixed, or was never affected: no finding.
    Fixed,
    /// The tracker has no word on it (or the service is not judged by it): the upstream
    /// version decides.
    Upstream,
    /// The installed build lacks the fix, or there is none yet.
    Debian(Basis),
}

/// Why a finding stands: Debian's word for a Debian build when the tracker has it, else
/// the upstream version.
fn debian_basis(judge: &Judge, version: &str, cve: &str) -> Verdict {
    let Judge::Debian {
        package,
        release,
        installed: installed_text,
        revision,
        tracker,
    } = judge
    else {
        return Verdict::Upstream;
    };
    let Some((status, fixed)) = tracker.entry(cve, release) else {
        return Verdict::Upstream;
    };
    // The banner carries no epoch: the installed package is taken to have the fixed
    // version's, else the package's (Debian epochs of a package rarely change).
    let epoch = fixed
        .filter(|f| &***f != "0")
        .map(|f| DebianVersion::parse(f).epoch)
        .unwrap_or(tracker.epoch);
    let installed_text: Arc<str> = if epoch == tracker.epoch {
        installed_text.clone()
    } else {
        installed(epoch, version, revision).into()
    };
    match &**status {
        "resolved" => match fixed.map(|f| &**f) {
            Some("0") => return Verdict::Fixed,
            Some(f) if debian_compare(&installed_text, f) != Ordering::Less => {
                return Verdict::Fixed
            }
            _ => {}
        },
        "not-affected" => return Verdict::Fixed,
        _ => {}
    }
    Verdict::Debian(Basis::Debian {
        package: package.clone(),
        release: release.clone(),
        installed: installed_text,
        status: status.clone(),
        fixed_version: fixed.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: &str, b: [Option<&str>; 4]) -> MatchRow {
        MatchRow::new(
            "CVE-0000-0001".into(),
            0,
            version,
            b,
            "cpe:2.3:a:x:y:*:*:*:*:*:*:*:*",
            None,
            &mut String::new(),
        )
    }

    #[test]
    fn cve_numbers_for_the_epss_table() {
        assert_eq!(cve_number("CVE-2024-6387"), Some(2_024_000_000_006_387));
        assert_eq!(cve_number("CVE-2021-0001"), Some(2_021_000_000_000_001));
        assert!(cve_number("CVE-2021-10001") > cve_number("CVE-2021-9999"));
        for bad in [
            "GHSA-xxxx",
            "CVE-24-1",
            "CVE-2024-",
            "CVE-2024-12a",
            "cve-2024-1",
        ] {
            assert_eq!(cve_number(bad), None, "{bad}");
        }
        let t = EpssTable(HashMap::from([(2_021_000_000_000_001, (0.5, 0.9))]));
        assert_eq!(t.get("CVE-2021-0001"), Some((0.5, 0.9)));
        assert_eq!(t.get("CVE-2021-0002"), None);
    }

    /// A database of `n` CVEs of x:y, each covering every version below 2.0, with scores,
    /// EPSS for the even ones and KEV for every seventh; and an entry of a CVE without a
    /// record.
    fn many_cves(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
        let path = dir.join("v.sqlite");
        let db = VulnDb::open(&path).unwrap();
        let c = db.connection();
        for i in 0..n {
            let id = format!("CVE-2020-{}", 1000 + i);
            c.execute(
                "INSERT INTO cve(id, cvss, cvss_version, severity, description) \
                 VALUES(?1, ?2, '3.1', 'HIGH', ?3)",
                rusqlite::params![id, (i % 10) as f64, format!("flaw {i}")],
            )
            .unwrap();
            c.execute(
                "INSERT INTO cpe_match(product, vendor, cve, seq, part, version, end_excl, \
                 criteria) VALUES('y', 'x', ?1, 0, 'a', '*', '2.0', 'cpe:2.3:a:x:y:*')",
                [&id],
            )
            .unwrap();
            if i % 2 == 0 {
                c.execute(
                    "INSERT INTO epss(cve, epss, percentile) VALUES(?1, ?2, 0.5)",
                    rusqlite::params![id, i as f64 / 1000.0],
                )
                .unwrap();
            }
            if i % 7 == 0 {
                c.execute(
                    "INSERT INTO kev(cve, date_added) VALUES(?1, '2024-01-01')",
                    [&id],
                )
                .unwrap();
            }
        }
        c.execute(
            "INSERT INTO cpe_match(product, vendor, cve, seq, part, version, criteria) \
             VALUES('y', 'x', 'CVE-2020-0001', 0, 'a', '*', 'cpe:2.3:a:x:y:*')",
            [],
        )
        .unwrap();
        path
    }

    fn at(version: &str) -> ServiceQuery {
        ServiceQuery {
            cpes: vec![format!("cpe:/a:x:y:{version}")],
            ..Default::default()
        }
    }

    #[test]
    fn cve_records_read_in_batches_are_the_records() {
        let dir = tempfile::tempdir().unwrap();
        // Several batches, the last one partial.
        let n = 2 * CVE_BATCH + 7;
        let path = many_cves(dir.path(), n);
        let found = VulnDb::open(&path)
            .unwrap()
            .into_matcher()
            .service(&at("1.0"))
            .unwrap();
        // The CVE without a record gives none.
        assert_eq!(found.len(), n);
        for f in found.iter() {
            let i: usize = f.id().trim_start_matches("CVE-2020-").parse().unwrap();
            let i = i - 1000;
            assert_eq!(f.cve.cvss, Some((i % 10) as f64), "{}", f.id());
            assert_eq!(&*f.cve.description, format!("flaw {i}"));
            assert_eq!(f.cve.severity.as_deref(), Some("HIGH"));
            assert_eq!(f.cve.epss, i.is_multiple_of(2).then(|| i as f64 / 1000.0));
            assert_eq!(f.kev(), i.is_multiple_of(7), "{}", f.id());
        }
        // EPSS from the whole table, read at once, gives the same.
        let whole = VulnDb::open(&path)
            .unwrap()
            .into_matcher()
            .epss_whole_after(0)
            .service(&at("1.0"))
            .unwrap();
        assert_eq!(whole, found);
    }

    #[test]
    fn batches_on_threads_share_their_reads_and_keep_their_workers() {
        let dir = tempfile::tempdir().unwrap();
        let path = many_cves(dir.path(), CVE_BATCH + 3);
        let queries: Vec<ServiceQuery> = (0..PARALLEL_FROM + 500)
            .map(|i| at(&format!("1.{}.{}", i % 3, i)))
            .collect();
        let refs: Vec<&ServiceQuery> = queries.iter().collect();
        let mut m = VulnDb::open(&path).unwrap().into_matcher();
        let first = m.services(&refs).unwrap();
        let workers = m.workers.len();
        // Again, on the workers kept (and their caches).
        let again = m.services(&refs).unwrap();
        assert_eq!(m.workers.len(), workers);
        let mut one = VulnDb::open(&path).unwrap().into_matcher();
        for ((q, a), b) in queries.iter().zip(&first).zip(&again) {
            let want = one.service(q).unwrap();
            assert_eq!(**a, *want, "{q:?}");
            assert_eq!(**b, *want, "{q:?}");
            assert_eq!(want.len(), CVE_BATCH + 3);
        }
    }

    #[test]
    fn a_matcher_can_live_in_a_scan_sink() {
        fn send<T: Send>() {}
        send::<Matcher>();
    }

    #[test]
    fn every_cpe_match_form() {
        // Exact.
        assert!(covers(&row("9.3p1", [None; 4]), "9.3p1").is_some());
        assert!(covers(&row("9.3p1", [None; 4]), "9.3p2").is_none());
        // Every version.
        assert!(covers(&row("*", [None; 4]), "1.0")
            .unwrap()
            .contains("every version"));
        // `-` is NA ("no version"): disjoint from any version a service announces.
        assert!(covers(&row("-", [None; 4]), "1.0").is_none());
        // Each bound alone, at and beside its edge.
        let si = row("*", [Some("8.5p1"), None, None, None]);
        assert!(covers(&si, "8.5p1").is_some() && covers(&si, "8.4p1").is_none());
        let se = row("*", [None, Some("8.5p1"), None, None]);
        assert!(covers(&se, "8.5p1").is_none() && covers(&se, "8.6p1").is_some());
        let ei = row("*", [None, None, Some("2.77"), None]);
        assert!(covers(&ei, "2.77").is_some() && covers(&ei, "2.78").is_none());
        let ee = row("*", [None, None, None, Some("9.3p2")]);
        assert!(covers(&ee, "9.3p1").is_some() && covers(&ee, "9.3p2").is_none());
        // Two bounds: regreSSHion's.
        let both = row("*", [Some("8.5p1"), None, None, Some("9.8p1")]);
        let why = covers(&both, "9.2p1").unwrap();
        assert!(why.contains(">= 8.5p1, < 9.8p1"), "{why}");
        assert!(covers(&both, "8.4p1").is_none() && covers(&both, "9.8p1").is_none());
    }

    #[test]
    fn identities_of_real_banners() {
        let q = |p: &str, v: &str| ServiceQuery {
            product: Some(p.into()),
            version: Some(v.into()),
            ..Default::default()
        };
        let id = identify(&q("OpenSSH", "9.2p1 Debian 2+deb12u3")).unwrap();
        assert_eq!(id.nvd, vec![("openbsd".to_string(), "openssh".to_string())]);
        assert_eq!(id.version, "9.2p1");
        assert_eq!(
            id.debian_build,
            Some(("2+deb12u3".to_string(), Some("bookworm".to_string())))
        );
        let id = identify(&q("MySQL", "5.5.5-10.11.6-MariaDB-0+deb12u1")).unwrap();
        assert_eq!(id.nvd, vec![("mariadb".to_string(), "mariadb".to_string())]);
        assert_eq!(id.version, "10.11.6");
        assert_eq!(id.debian_package.as_deref(), Some("mariadb"));
        assert_eq!(
            id.debian_build,
            Some(("0+deb12u1".to_string(), Some("bookworm".to_string())))
        );
        let id = identify(&q("MySQL", "5.7.44-log")).unwrap();
        assert_eq!(id.version, "5.7.44");
        assert_eq!(id.debian_build, None);
        let id = identify(&q("nginx", "1.22.1")).unwrap();
        assert_eq!(id.nvd.len(), 2);
        let id = identify(&q("PostgreSQL DB", "15.4")).unwrap();
        assert_eq!(id.debian_package.as_deref(), Some("postgresql-15"));
        assert_eq!(identify(&q("vsftpd", "2.0.8 or later")), None);
        assert_eq!(identify(&q("PostgreSQL DB", "9.6.0 - 9.6.7")), None);
        assert_eq!(identify(&q("Unknown thing", "1.0")), None);
        // From a CPE alone, with the vendor Nmap uses.
        let id = identify(&ServiceQuery {
            cpes: vec!["cpe:/a:igor_sysoev:nginx:1.20.0".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!((id.nvd.len(), id.version.as_str()), (2, "1.20.0"));
        let id = identify(&ServiceQuery {
            cpes: vec!["cpe:/a:somevendor:someproduct:2.1".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(id.nvd, vec![("somevendor".into(), "someproduct".into())]);
    }

    #[test]
    fn debian_revisions_and_releases() {
        assert_eq!(
            debian_revision("9.2p1 Debian 2+deb12u3").as_deref(),
            Some("2+deb12u3")
        );
        assert_eq!(
            debian_revision("10.11.6-MariaDB-0+deb12u1").as_deref(),
            Some("0+deb12u1")
        );
        assert_eq!(debian_revision("1.22.1"), None);
        assert_eq!(release_of("2+deb12u3").as_deref(), Some("bookworm"));
        assert_eq!(release_of("1~deb11u1").as_deref(), Some("bullseye"));
        assert_eq!(release_of("2"), None);
    }
}
