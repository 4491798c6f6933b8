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
use rusqlite::Connection;
use serde::Serialize;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

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

/// A CVE that applies to a service. Its texts are shared with the matcher's caches and the
/// other services' findings of the same CVE: a large scan has millions of findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cve: Arc<str>,
    pub cvss: Option<f64>,
    pub cvss_version: Option<Arc<str>>,
    pub severity: Option<Arc<str>>,
    /// In CISA's Known Exploited Vulnerabilities catalog: the date it was added.
    pub kev_date_added: Option<Arc<str>>,
    pub kev_ransomware: Option<Arc<str>>,
    pub epss: Option<f64>,
    pub epss_percentile: Option<f64>,
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
    pub basis: Basis,
    pub description: Arc<str>,
}

impl Finding {
    pub fn kev(&self) -> bool {
        self.kev_date_added.is_some()
    }
    /// What orders it among findings ([`Urgency::first`]).
    pub fn urgency(&self) -> Urgency<'_> {
        Urgency {
            kev: self.kev(),
            epss: self.epss,
            cvss: self.cvss,
            cve: &self.cve,
        }
    }
    /// Whether the verdict rests on the upstream version alone (no distribution's word).
    pub fn upstream_only(&self) -> bool {
        matches!(self.basis, Basis::Upstream { .. })
    }
    /// `https://nvd.nist.gov/vuln/detail/CVE-…`
    pub fn reference(&self) -> String {
        format!("https://nvd.nist.gov/vuln/detail/{}", self.cve)
    }
}

/// The order a defender acts in: known exploited first, then EPSS, then CVSS (then id).
pub fn priority(a: &Finding, b: &Finding) -> Ordering {
    a.urgency().first(&b.urgency())
}

/// A `cpe_match` row, read once per product.
#[derive(Debug, Clone)]
struct MatchRow {
    cve: Arc<str>,
    /// The CVE's scores and description, shared by its rows.
    info: Option<Arc<CveInfo>>,
    version: String,
    bounds: Bounds,
    /// How the entry matches, the same for every version it covers: `criteria (>= 8.5p1,
    /// < 9.8p1)`, `criteria (exact version)`.
    why: Arc<str>,
    /// In an AND configuration: (configuration, node).
    and_node: Option<(i64, i64)>,
}

impl MatchRow {
    /// A row as read: its bounds parsed and its explanation written once.
    fn new(
        cve: Arc<str>,
        info: Option<Arc<CveInfo>>,
        version: String,
        texts: [Option<String>; 4],
        criteria: &str,
        and_node: Option<(i64, i64)>,
    ) -> MatchRow {
        let said: Vec<String> = [">=", ">", "<=", "<"]
            .iter()
            .zip(&texts)
            .filter_map(|(op, t)| t.as_ref().map(|t| format!("{op} {t}")))
            .collect();
        let why = match version.as_str() {
            "*" | "-" if said.is_empty() => format!("{criteria} (every version)"),
            "*" | "-" => format!("{criteria} ({})", said.join(", ")),
            _ => format!("{criteria} (exact version)"),
        };
        MatchRow {
            cve,
            info,
            bounds: Bounds::parse(texts.each_ref().map(|t| t.as_deref())),
            version,
            why: why.into(),
            and_node,
        }
    }

    /// Whether the entry covers `version`. A `-` (NA: "no version") entry covers none: in
    /// CPE name matching a specific version and NA are disjoint, and NVD writes `-` for
    /// software it does not track by version (Debian's own Redis build in CVE-2022-0543).
    fn covers(&self, version: &Version) -> bool {
        match self.version.as_str() {
            "-" => false,
            "*" => self.bounds.contain(version),
            exact => Version::parse(exact).key() == version.key(),
        }
    }
}

#[derive(Debug, Clone)]
struct CveInfo {
    cvss: Option<f64>,
    cvss_version: Option<Arc<str>>,
    severity: Option<Arc<str>>,
    description: Arc<str>,
    kev: Option<(Arc<str>, Option<Arc<str>>)>,
    epss: Option<(f64, f64)>,
}

/// Whether a cpeMatch covers `version`, and how; None when not.
#[cfg(test)]
fn covers(row: &MatchRow, version: &str) -> Option<String> {
    row.covers(&Version::parse(version))
        .then(|| row.why.to_string())
}

/// A product's cpeMatch entries, indexed: exact versions by [`Version::key`], ranges apart;
/// and the nodes of the AND configurations its entries are in.
struct ProductIndex {
    /// `vendor:product`.
    name: Arc<str>,
    rows: Vec<MatchRow>,
    exact: HashMap<String, Vec<usize>>,
    ranges: Vec<usize>,
    platforms: Platforms,
}

impl ProductIndex {
    fn new(name: Arc<str>, rows: Vec<MatchRow>, platforms: Platforms) -> ProductIndex {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut ranges = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            match row.version.as_str() {
                "-" => {}
                "*" => ranges.push(i),
                v => exact.entry(Version::parse(v).key()).or_default().push(i),
            }
        }
        ProductIndex {
            name,
            rows,
            exact,
            ranges,
            platforms,
        }
    }

    /// The entries covering `version`, in the order read.
    fn matching(&self, version: &Version) -> Vec<usize> {
        let mut out: Vec<usize> = self.exact.get(&version.key()).cloned().unwrap_or_default();
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

/// The nodes of the AND configurations of a product's entries, by (CVE, configuration).
type Platforms = HashMap<(Arc<str>, i64), Vec<platform::Node>>;

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

/// Matches services against an open database, caching per product and per service.
pub struct Matcher {
    db: VulnDb,
    rows: HashMap<(String, String), Arc<ProductIndex>>,
    /// The entries of a product covering a version: (vendor, product, version key).
    covered: HashMap<(String, String, String), Arc<Vec<usize>>>,
    debian_packages: HashMap<String, Option<Arc<DebianPackage>>>,
    results: HashMap<ServiceQuery, Arc<Vec<Finding>>>,
    /// The same, by what the matching depends on (services that differ in other words).
    by_identity: HashMap<Identity, Arc<Vec<Finding>>>,
}

impl VulnDb {
    /// A matcher that owns the database (it can then live in a scan's output sink, sent
    /// to the engine's threads); [`Matcher::db`] gives it back for reading.
    pub fn into_matcher(self) -> Matcher {
        Matcher {
            db: self,
            rows: HashMap::new(),
            covered: HashMap::new(),
            debian_packages: HashMap::new(),
            results: HashMap::new(),
            by_identity: HashMap::new(),
        }
    }
}

fn text(s: Option<String>) -> Option<Arc<str>> {
    s.map(Arc::from)
}

impl Matcher {
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
                    let f = Arc::new(self.findings(&id)?);
                    self.by_identity.insert(id, f.clone());
                    f
                }
            },
            None => Arc::new(Vec::new()),
        };
        self.results.insert(q.clone(), found.clone());
        Ok(found)
    }

    /// A product's entries with their CVEs' scores, KEV and EPSS, in one query, and the
    /// nodes of its AND configurations in another (the matching of a large scan reads each
    /// product once).
    fn rows_of(&mut self, vendor: &str, product: &str) -> Result<Arc<ProductIndex>, VulnError> {
        let key = (vendor.to_string(), product.to_string());
        if let Some(r) = self.rows.get(&key) {
            return Ok(r.clone());
        }
        let mut infos: HashMap<String, Arc<CveInfo>> = HashMap::new();
        let rows = self
            .conn()
            .prepare_cached(
                "SELECT m.cve, m.version, m.start_incl, m.start_excl, m.end_incl, m.end_excl, \
                 m.criteria, c.id, c.cvss, c.cvss_version, c.severity, c.description, \
                 k.date_added, k.ransomware, e.epss, e.percentile, m.config, m.node \
                 FROM cpe_match m LEFT JOIN cve c ON c.id = m.cve \
                 LEFT JOIN kev k ON k.cve = m.cve LEFT JOIN epss e ON e.cve = m.cve \
                 WHERE m.product = ?1 AND m.vendor = ?2",
            )
            .and_then(|mut s| {
                let mut q = s.query([product, vendor])?;
                let mut rows = Vec::new();
                let mut ids: HashMap<String, Arc<str>> = HashMap::new();
                while let Some(r) = q.next()? {
                    let cve: String = r.get(0)?;
                    let known: Option<String> = r.get(7)?;
                    let info = match (known, infos.get(&cve)) {
                        (None, _) => None,
                        (Some(_), Some(i)) => Some(i.clone()),
                        (Some(_), None) => {
                            let kev: Option<String> = r.get(12)?;
                            let epss: Option<f64> = r.get(14)?;
                            let pct: Option<f64> = r.get(15)?;
                            let ransomware: Option<String> = r.get(13)?;
                            let i = Arc::new(CveInfo {
                                cvss: r.get(8)?,
                                cvss_version: text(r.get(9)?),
                                severity: text(r.get(10)?),
                                description: r.get::<_, String>(11)?.into(),
                                kev: kev.map(|d| (d.into(), text(ransomware))),
                                epss: epss.zip(pct),
                            });
                            infos.insert(cve.clone(), i.clone());
                            Some(i)
                        }
                    };
                    let config: Option<i64> = r.get(16)?;
                    let node: Option<i64> = r.get(17)?;
                    let id = ids
                        .entry(cve)
                        .or_insert_with_key(|c| Arc::from(c.as_str()))
                        .clone();
                    let criteria: String = r.get(6)?;
                    rows.push(MatchRow::new(
                        id,
                        info,
                        r.get(1)?,
                        [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?],
                        &criteria,
                        config.zip(node),
                    ));
                }
                Ok(rows)
            })
            .map_err(|e| self.err(e))?;
        let platforms = if rows.iter().any(|r| r.and_node.is_some()) {
            self.platforms_of(vendor, product, &rows)?
        } else {
            HashMap::new()
        };
        let name: Arc<str> = format!("{vendor}:{product}").into();
        let rows = Arc::new(ProductIndex::new(name, rows, platforms));
        self.rows.insert(key, rows.clone());
        Ok(rows)
    }

    /// The nodes of the AND configurations a product's entries are in, by (CVE,
    /// configuration).
    fn platforms_of(
        &self,
        vendor: &str,
        product: &str,
        rows: &[MatchRow],
    ) -> Result<Platforms, VulnError> {
        let ids: HashMap<&str, &Arc<str>> = rows.iter().map(|r| (&*r.cve, &r.cve)).collect();
        let mut out: Platforms = HashMap::new();
        self.conn()
            .prepare_cached(
                "SELECT n.cve, n.config, n.node, n.negate, n.part, n.vendor, n.product, \
                 n.version, n.start_incl, n.start_excl, n.end_incl, n.end_excl, n.criteria \
                 FROM cpe_node n WHERE (n.cve, n.config) IN \
                 (SELECT cve, config FROM cpe_match \
                  WHERE product = ?1 AND vendor = ?2 AND config IS NOT NULL) \
                 ORDER BY n.cve, n.config, n.node",
            )
            .and_then(|mut s| {
                let mut q = s.query([product, vendor])?;
                while let Some(r) = q.next()? {
                    let cve: String = r.get(0)?;
                    let Some(id) = ids.get(cve.as_str()) else {
                        continue;
                    };
                    let nodes = out.entry(((*id).clone(), r.get(1)?)).or_default();
                    let node: i64 = r.get(2)?;
                    if nodes.last().is_none_or(|n| n.node != node) {
                        nodes.push(platform::Node {
                            node,
                            negate: r.get(3)?,
                            entries: Vec::new(),
                        });
                    }
                    if let Some(n) = nodes.last_mut() {
                        n.entries.push(platform::Entry {
                            part: r.get(4)?,
                            vendor: r.get(5)?,
                            product: r.get(6)?,
                            version: r.get(7)?,
                            bounds: [r.get(8)?, r.get(9)?, r.get(10)?, r.get(11)?],
                            criteria: r.get(12)?,
                        });
                    }
                }
                Ok(())
            })
            .map_err(|e| self.err(e))?;
        Ok(out)
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
        // Where each CVE's finding is in `out`.
        let mut seen: HashMap<Arc<str>, usize> = HashMap::new();
        let version = Version::parse(&id.version);
        let version_text: Arc<str> = id.version.as_str().into();
        let judge = self.judge(id)?;
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
            for &i in covered.iter() {
                let Some(row) = index.rows.get(i) else {
                    continue;
                };
                let Some(info) = row.info.as_deref() else {
                    continue;
                };
                let before = seen.get(&row.cve).copied();
                // A CVE found unconditionally stays so.
                if before.is_some_and(|b| out.get(b).is_some_and(|f| f.condition.is_none())) {
                    continue;
                }
                let (matched, condition) = match row.and_node {
                    None => (row.why.clone(), None),
                    Some((config, node)) => {
                        let nodes = index
                            .platforms
                            .get(&(row.cve.clone(), config))
                            .map(Vec::as_slice)
                            .unwrap_or_default();
                        match platform::condition(nodes, node, &id.platform) {
                            (Holds::No, _) => continue,
                            (Holds::Yes, why) => (format!("{}; {why}", row.why).into(), None),
                            (Holds::Unknown, why) => (row.why.clone(), Some(why.into())),
                        }
                    }
                };
                if before.is_some() && condition.is_some() {
                    continue;
                }
                let Some(basis) = basis(&judge, &id.version, &row.cve) else {
                    continue;
                };
                let finding = Finding {
                    cve: row.cve.clone(),
                    cvss: info.cvss,
                    cvss_version: info.cvss_version.clone(),
                    severity: info.severity.clone(),
                    kev_date_added: info.kev.as_ref().map(|k| k.0.clone()),
                    kev_ransomware: info.kev.as_ref().and_then(|k| k.1.clone()),
                    epss: info.epss.map(|e| e.0),
                    epss_percentile: info.epss.map(|e| e.1),
                    product: index.name.clone(),
                    version: version_text.clone(),
                    matched,
                    condition,
                    basis,
                    description: info.description.clone(),
                };
                match before.and_then(|b| out.get_mut(b)) {
                    Some(slot) => *slot = finding,
                    None => {
                        seen.insert(row.cve.clone(), out.len());
                        out.push(finding);
                    }
                }
            }
        }
        out.sort_by(priority);
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

/// Why a finding stands: Debian's word for a Debian build when the tracker has it, else
/// the upstream version. None when Debian says the installed build is fixed or was never
/// affected.
fn basis(judge: &Judge, version: &str, cve: &str) -> Option<Basis> {
    let upstream = |note: &'static str| {
        Some(Basis::Upstream {
            note: Cow::Borrowed(note),
        })
    };
    let (package, release, installed_text, revision, tracker) = match judge {
        Judge::Upstream(note) => return upstream(note),
        Judge::Debian {
            package,
            release,
            installed,
            revision,
            tracker,
        } => (package, release, installed, revision, tracker),
    };
    let Some((status, fixed)) = tracker.entry(cve, release) else {
        return upstream(
            "upstream version only: Debian's tracker has no entry for this CVE and release",
        );
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
            Some("0") => return None,
            Some(f) if debian_compare(&installed_text, f) != Ordering::Less => return None,
            _ => {}
        },
        "not-affected" => return None,
        _ => {}
    }
    Some(Basis::Debian {
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
            None,
            version.into(),
            b.map(|b| b.map(Into::into)),
            "cpe:2.3:a:x:y:*:*:*:*:*:*:*:*",
            None,
        )
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
