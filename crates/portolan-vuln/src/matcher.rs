//! Matching a service (product, version, CPEs from `-sV`) against the database: which NVD
//! products it is (CPEs and a small alias table), which `cpeMatch` entries cover its
//! version, and, for a Debian build, whether Debian's tracker says the installed package
//! carries the fix. Each [`Finding`] says why it matched.

use crate::cpe;
use crate::db::VulnDb;
use crate::error::VulnError;
#[cfg(test)]
use crate::version::compare;
use crate::version::{self, debian_compare, DebianVersion, Version};
use portolan_model::Urgency;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What a service announced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceQuery {
    pub product: Option<String>,
    pub version: Option<String>,
    pub extrainfo: Option<String>,
    pub ostype: Option<String>,
    pub cpes: Vec<String>,
}

impl ServiceQuery {
    pub fn of(s: &portolan_model::Service) -> ServiceQuery {
        ServiceQuery {
            product: s.product.clone(),
            version: s.version.clone(),
            extrainfo: s.extrainfo.clone(),
            ostype: s.ostype.clone(),
            cpes: s.cpes.clone(),
        }
    }
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
    Upstream { note: String },
    /// Debian's tracker says the installed build lacks the fix (or there is none yet).
    Debian {
        package: String,
        release: String,
        installed: String,
        status: String,
        fixed_version: Option<String>,
    },
}

/// A CVE that applies to a service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub cve: String,
    pub cvss: Option<f64>,
    pub cvss_version: Option<String>,
    pub severity: Option<String>,
    /// In CISA's Known Exploited Vulnerabilities catalog: the date it was added.
    pub kev_date_added: Option<String>,
    pub kev_ransomware: Option<String>,
    pub epss: Option<f64>,
    pub epss_percentile: Option<f64>,
    /// The NVD `vendor:product` matched and the version compared.
    pub product: String,
    pub version: String,
    /// The `cpeMatch` entry that matched and how: `cpe:2.3:a:openbsd:openssh:*:… (>= 8.5p1, < 9.8p1)`.
    pub matched: String,
    pub basis: Basis,
    pub description: String,
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

/// A `cpe_match` row.
#[derive(Debug, Clone)]
struct MatchRow {
    cve: String,
    /// The CVE's scores and description, shared by its rows.
    info: Option<Arc<CveInfo>>,
    version: String,
    start_incl: Option<String>,
    start_excl: Option<String>,
    end_incl: Option<String>,
    end_excl: Option<String>,
    criteria: String,
}

#[derive(Debug, Clone)]
struct CveInfo {
    cvss: Option<f64>,
    cvss_version: Option<String>,
    severity: Option<String>,
    description: String,
    kev: Option<(String, Option<String>)>,
    epss: Option<(f64, f64)>,
}

/// A cpeMatch's bounds, read once.
#[derive(Debug, Clone)]
struct Bounds([Option<Version>; 4]);

impl Bounds {
    fn of(row: &MatchRow) -> Bounds {
        let p = |b: &Option<String>| b.as_deref().map(Version::parse);
        Bounds([
            p(&row.start_incl),
            p(&row.start_excl),
            p(&row.end_incl),
            p(&row.end_excl),
        ])
    }
}

/// Whether `version` is in a cpeMatch's range (`*` or `-` with up to four bounds), and how
/// it was decided; None when not.
fn in_range(row: &MatchRow, bounds: &Bounds, version: &Version) -> Option<String> {
    let texts = [
        &row.start_incl,
        &row.start_excl,
        &row.end_incl,
        &row.end_excl,
    ];
    let rules = [
        (">=", [Ordering::Greater, Ordering::Equal]),
        (">", [Ordering::Greater, Ordering::Greater]),
        ("<=", [Ordering::Less, Ordering::Equal]),
        ("<", [Ordering::Less, Ordering::Less]),
    ];
    let mut said = Vec::new();
    for ((bound, text), (op, ok)) in bounds.0.iter().zip(texts).zip(rules) {
        if let (Some(b), Some(t)) = (bound, text) {
            if !ok.contains(&version.cmp(b)) {
                return None;
            }
            said.push(format!("{op} {t}"));
        }
    }
    Some(if said.is_empty() {
        match row.version.as_str() {
            "-" => format!("{} (NVD gives no version: every version)", row.criteria),
            _ => format!("{} (every version)", row.criteria),
        }
    } else {
        format!("{} ({})", row.criteria, said.join(", "))
    })
}

/// Whether `version` is in a cpeMatch, and how it was decided; None when not.
#[cfg(test)]
fn covers(row: &MatchRow, version: &str) -> Option<String> {
    match row.version.as_str() {
        "*" | "-" => in_range(row, &Bounds::of(row), &Version::parse(version)),
        exact => (compare(version, exact) == Ordering::Equal)
            .then(|| format!("{} (exact version)", row.criteria)),
    }
}

/// The entries of a product that cover a version, each with how (index in its rows).
type Covered = Vec<(usize, String)>;

/// A product's cpeMatch entries, indexed: exact versions by [`Version::key`], ranges with
/// their bounds read.
struct ProductIndex {
    rows: Vec<MatchRow>,
    exact: HashMap<String, Vec<usize>>,
    ranges: Vec<(usize, Bounds)>,
}

impl ProductIndex {
    fn new(rows: Vec<MatchRow>) -> ProductIndex {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut ranges = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            match row.version.as_str() {
                "*" | "-" => ranges.push((i, Bounds::of(row))),
                v => exact.entry(Version::parse(v).key()).or_default().push(i),
            }
        }
        ProductIndex {
            rows,
            exact,
            ranges,
        }
    }

    /// The entries covering `version`, each with how.
    fn matching(&self, version: &Version) -> Covered {
        let mut out: Covered = self
            .exact
            .get(&version.key())
            .into_iter()
            .flatten()
            .filter_map(|&i| {
                let row = self.rows.get(i)?;
                Some((i, format!("{} (exact version)", row.criteria)))
            })
            .collect();
        for (i, bounds) in &self.ranges {
            if let Some(row) = self.rows.get(*i) {
                if let Some(why) = in_range(row, bounds, version) {
                    out.push((*i, why));
                }
            }
        }
        out.sort_by_key(|(i, _)| *i);
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

fn release_of(revision: &str) -> Option<String> {
    let i = revision.find("deb")?;
    let digits: String = revision
        .get(i + 3..)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let n: u32 = digits.parse().ok()?;
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
    Some(Identity {
        nvd,
        version,
        debian_package,
        debian_build,
        says_debian,
    })
}

/// Matches services against an open database, caching per product and per service.
pub struct Matcher {
    db: VulnDb,
    rows: HashMap<(String, String), Arc<ProductIndex>>,
    /// The entries of a product covering a version: (vendor, product, version key).
    covered: HashMap<(String, String, String), Arc<Covered>>,
    debian_packages: HashMap<String, Option<u64>>,
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

    /// A product's entries with their CVEs' scores, KEV and EPSS, in one query (the
    /// matching of a large scan reads each product once).
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
                 k.date_added, k.ransomware, e.epss, e.percentile \
                 FROM cpe_match m LEFT JOIN cve c ON c.id = m.cve \
                 LEFT JOIN kev k ON k.cve = m.cve LEFT JOIN epss e ON e.cve = m.cve \
                 WHERE m.product = ?1 AND m.vendor = ?2",
            )
            .and_then(|mut s| {
                let mut q = s.query([product, vendor])?;
                let mut rows = Vec::new();
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
                            let i = Arc::new(CveInfo {
                                cvss: r.get(8)?,
                                cvss_version: r.get(9)?,
                                severity: r.get(10)?,
                                description: r.get(11)?,
                                kev: kev.map(|d| (d, r.get(13).ok().flatten())),
                                epss: epss.zip(pct),
                            });
                            infos.insert(cve.clone(), i.clone());
                            Some(i)
                        }
                    };
                    rows.push(MatchRow {
                        cve,
                        info,
                        version: r.get(1)?,
                        start_incl: r.get(2)?,
                        start_excl: r.get(3)?,
                        end_incl: r.get(4)?,
                        end_excl: r.get(5)?,
                        criteria: r.get(6)?,
                    });
                }
                Ok(rows)
            })
            .map_err(|e| self.err(e))?;
        let rows = Arc::new(ProductIndex::new(rows));
        self.rows.insert(key, rows.clone());
        Ok(rows)
    }

    /// Whether the tracker data holds `package`, and then its epoch (from any version it
    /// gives: the banner carries none).
    fn debian_package(&mut self, package: &str) -> Result<Option<u64>, VulnError> {
        if let Some(b) = self.debian_packages.get(package) {
            return Ok(*b);
        }
        let versions: Vec<Option<String>> = self
            .conn()
            .prepare_cached(
                "SELECT fixed_version FROM debian WHERE package = ?1 \
                 ORDER BY fixed_version LIKE '%:%' DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_map([package], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| self.err(e))?;
        let known = versions.first().map(|v| {
            v.as_deref()
                .map(|v| DebianVersion::parse(v).epoch)
                .unwrap_or(0)
        });
        self.debian_packages.insert(package.to_string(), known);
        Ok(known)
    }

    fn debian_entry(
        &self,
        package: &str,
        cve: &str,
        release: &str,
    ) -> Result<Option<(String, Option<String>)>, VulnError> {
        self.conn()
            .prepare_cached(
                "SELECT status, fixed_version FROM debian \
                 WHERE package = ?1 AND cve = ?2 AND release = ?3",
            )
            .and_then(|mut s| {
                s.query_row([package, cve, release], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))
    }

    fn findings(&mut self, id: &Identity) -> Result<Vec<Finding>, VulnError> {
        let mut out: Vec<Finding> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let version = Version::parse(&id.version);
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
            for (i, matched) in covered.iter() {
                let Some(row) = index.rows.get(*i) else {
                    continue;
                };
                if seen.contains(&row.cve) {
                    continue;
                }
                let matched = matched.clone();
                let Some(basis) = self.basis(id, &row.cve)? else {
                    continue;
                };
                let Some(info) = row.info.as_deref() else {
                    continue;
                };
                seen.insert(row.cve.clone());
                out.push(Finding {
                    cve: row.cve.clone(),
                    cvss: info.cvss,
                    cvss_version: info.cvss_version.clone(),
                    severity: info.severity.clone(),
                    kev_date_added: info.kev.as_ref().map(|k| k.0.clone()),
                    kev_ransomware: info.kev.as_ref().and_then(|k| k.1.clone()),
                    epss: info.epss.map(|e| e.0),
                    epss_percentile: info.epss.map(|e| e.1),
                    product: format!("{vendor}:{product}"),
                    version: id.version.clone(),
                    matched,
                    basis,
                    description: info.description.clone(),
                });
            }
        }
        out.sort_by(priority);
        Ok(out)
    }

    /// Why the finding stands: Debian's word for a Debian build when the tracker has it,
    /// else the upstream version. None when Debian says the installed build is fixed or was
    /// never affected.
    fn basis(&mut self, id: &Identity, cve: &str) -> Result<Option<Basis>, VulnError> {
        let upstream = |note: &str| Ok(Some(Basis::Upstream { note: note.into() }));
        if !id.says_debian {
            return upstream("upstream version only");
        }
        let Some(package) = &id.debian_package else {
            return upstream(
                "upstream version only: no Debian source package known for this product",
            );
        };
        let Some(epoch) = self.debian_package(package)? else {
            return upstream("upstream version only: no Debian tracker data for this package");
        };
        let Some((revision, release)) = &id.debian_build else {
            return upstream("upstream version only: the banner names no Debian revision");
        };
        let Some(release) = release else {
            return upstream(
                "upstream version only: the Debian release is not known from the revision",
            );
        };
        let Some((status, fixed)) = self.debian_entry(package, cve, release)? else {
            return upstream(
                "upstream version only: Debian's tracker has no entry for this CVE and release",
            );
        };
        // The banner carries no epoch: the installed package is taken to have the fixed
        // version's, else the package's (Debian epochs of a package rarely change).
        let epoch = fixed
            .as_deref()
            .filter(|f| *f != "0")
            .map(|f| DebianVersion::parse(f).epoch)
            .unwrap_or(epoch);
        let installed = if epoch > 0 {
            format!("{epoch}:{}-{revision}", id.version)
        } else {
            format!("{}-{revision}", id.version)
        };
        if status == "resolved" {
            match fixed.as_deref() {
                Some("0") => return Ok(None),
                Some(f) if debian_compare(&installed, f) != Ordering::Less => return Ok(None),
                _ => {}
            }
        } else if status == "not-affected" {
            return Ok(None);
        }
        Ok(Some(Basis::Debian {
            package: package.clone(),
            release: release.clone(),
            installed,
            status,
            fixed_version: fixed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: &str, b: [Option<&str>; 4]) -> MatchRow {
        MatchRow {
            cve: "CVE-0000-0001".into(),
            info: None,
            version: version.into(),
            start_incl: b[0].map(Into::into),
            start_excl: b[1].map(Into::into),
            end_incl: b[2].map(Into::into),
            end_excl: b[3].map(Into::into),
            criteria: "cpe:2.3:a:x:y:*:*:*:*:*:*:*:*".into(),
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
        assert!(covers(&row("-", [None; 4]), "1.0")
            .unwrap()
            .contains("no version"));
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
