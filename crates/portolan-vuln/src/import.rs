//! The feed readers: NVD CVE JSON 2.0, CISA KEV JSON, FIRST EPSS CSV and Debian's security
//! tracker JSON, plain or gzip, the format told from the content. Each reads as a stream
//! (an NVD year is 50-100 MB: one vulnerability is held at a time) and hands typed records
//! to a [`Records`] sink; an error names the file and its line or JSON path.

use crate::cpe;
use crate::error::VulnError;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The kinds of feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Nvd,
    Kev,
    Epss,
    Debian,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Nvd => "nvd",
            Format::Kev => "kev",
            Format::Epss => "epss",
            Format::Debian => "debian",
        }
    }
}

/// One CVE of an NVD feed.
#[derive(Debug, Clone, PartialEq)]
pub struct CveRecord {
    pub id: String,
    pub published: Option<String>,
    pub last_modified: Option<String>,
    /// The base score of the newest CVSS version given (3.1, 3.0, then 2), NVD's own
    /// (Primary) score first.
    pub cvss: Option<f64>,
    pub cvss_version: Option<String>,
    pub severity: Option<String>,
    /// The English description.
    pub description: String,
    /// Every vulnerable `cpeMatch` of its configurations.
    pub matches: Vec<MatchRecord>,
    /// Its AND configurations, every entry of them (vulnerable or not): a vulnerable match
    /// of such a configuration applies only where the configuration's other nodes hold.
    pub and_configs: Vec<AndConfig>,
}

/// A vulnerable `cpeMatch`: the product, and the versions it covers (an exact version, or
/// `*` with up to four bounds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRecord {
    pub part: String,
    pub vendor: String,
    pub product: String,
    /// The criteria's version with its update (`9.3p1`), `*` or `-`.
    pub version: String,
    pub start_including: Option<String>,
    pub start_excluding: Option<String>,
    pub end_including: Option<String>,
    pub end_excluding: Option<String>,
    pub criteria: String,
    /// In an AND configuration: its index in the CVE's configurations and its node's.
    pub and_node: Option<(u32, u32)>,
}

/// An AND configuration: every node must hold (a vulnerable product and the platform it
/// runs on, most often).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndConfig {
    /// Its index in the CVE's configurations.
    pub config: u32,
    pub nodes: Vec<crate::platform::Node>,
}

/// An entry of CISA's Known Exploited Vulnerabilities catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevRecord {
    pub cve: String,
    pub date_added: String,
    pub due_date: Option<String>,
    /// `Known` or `Unknown`.
    pub ransomware: Option<String>,
    pub name: Option<String>,
}

/// An EPSS score.
#[derive(Debug, Clone, PartialEq)]
pub struct EpssRecord {
    pub cve: String,
    pub epss: f64,
    pub percentile: f64,
}

/// What Debian's tracker says of a CVE in a source package and release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianRecord {
    pub package: String,
    pub cve: String,
    pub release: String,
    /// `resolved`, `open`, `undetermined`.
    pub status: String,
    /// The first fixed version; `0` when the release was never affected.
    pub fixed_version: Option<String>,
    pub urgency: Option<String>,
}

/// Where the records of a feed go.
pub trait Records {
    fn cve(&mut self, r: CveRecord) -> Result<(), VulnError>;
    fn kev(&mut self, r: KevRecord) -> Result<(), VulnError>;
    fn epss(&mut self, r: EpssRecord) -> Result<(), VulnError>;
    fn debian(&mut self, r: DebianRecord) -> Result<(), VulnError>;
}

/// A CVE left out of an import, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub cve: String,
    /// Its JSON path: `vulnerabilities[3].cve.configurations`.
    pub path: String,
    pub reason: String,
}

/// What a file held.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    pub format: Format,
    pub records: u64,
    pub skipped: Vec<Skipped>,
    /// The date the feed gives for its data (NVD `timestamp`, KEV `dateReleased`, EPSS
    /// `score_date`); None when it gives none (Debian).
    pub data_date: Option<String>,
}

/// How much of the (decompressed) start of a file the format is told from.
const SNIFF: usize = 64 * 1024;

/// Reads the feed at `path` into `sink`.
pub fn read_file(path: &Path, sink: &mut dyn Records) -> Result<FileSummary, VulnError> {
    let f = std::fs::File::open(path).map_err(|source| VulnError::Io {
        file: path.into(),
        source,
    })?;
    read(BufReader::with_capacity(1 << 20, f), path, sink)
}

/// Records the first read error, so that a failure serde_json or the CSV reader reports
/// as a bare I/O error can be named (a truncated gzip).
struct Watched<R> {
    inner: R,
    gzip: bool,
    error: Option<std::io::Error>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                let copy = std::io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(copy);
                Err(e)
            }
        }
    }
}

impl<R> Watched<R> {
    /// The error to report: the first read error seen, else `fallback`.
    fn io_error(&mut self, file: &Path, fallback: std::io::Error) -> VulnError {
        let source = self.error.take().unwrap_or(fallback);
        if self.gzip {
            VulnError::Gzip {
                file: file.into(),
                source,
            }
        } else {
            VulnError::Io {
                file: file.into(),
                source,
            }
        }
    }
}

/// Reads a feed from `input` (`file` names it in errors) into `sink`.
pub fn read(
    mut input: impl BufRead,
    file: &Path,
    sink: &mut dyn Records,
) -> Result<FileSummary, VulnError> {
    let io = |source| VulnError::Io {
        file: file.into(),
        source,
    };
    let head = input.fill_buf().map_err(io)?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let inner: Box<dyn Read + '_> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };
    let mut reader = Watched {
        inner,
        gzip,
        error: None,
    };
    let mut prefix = Vec::with_capacity(SNIFF);
    (&mut reader)
        .take(SNIFF as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| reader.io_error(file, e))?;
    let format = sniff(&prefix).ok_or_else(|| VulnError::UnknownFormat {
        file: file.into(),
        found: describe(&prefix),
    })?;
    let mut whole = BufReader::with_capacity(1 << 20, std::io::Cursor::new(prefix).chain(reader));
    let result = match format {
        Format::Nvd => read_nvd(&mut whole, file, sink),
        Format::Kev => read_kev(&mut whole, file, sink),
        Format::Epss => read_epss(&mut whole, file, sink),
        Format::Debian => read_debian(&mut whole, file, sink),
    };
    // A read error inside the parser surfaces as a JSON or CSV error: name it as what it is.
    let (_, mut watched) = whole.into_inner().into_inner();
    match watched.error.take() {
        Some(source) => Err(watched.io_error(file, source)),
        None => result,
    }
}

/// The format, from the start of the (decompressed) content.
fn sniff(prefix: &[u8]) -> Option<Format> {
    let text = String::from_utf8_lossy(prefix);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('{') {
        if t.contains("\"NVD_CVE\"") {
            Some(Format::Nvd)
        } else if t.contains("\"catalogVersion\"") || t.contains("\"cveID\"") {
            Some(Format::Kev)
        } else if t.contains("\"releases\"") {
            Some(Format::Debian)
        } else {
            None
        }
    } else if t.starts_with("#model_version") || t.starts_with("cve,epss") {
        Some(Format::Epss)
    } else {
        None
    }
}

/// A few words on what an unknown file starts with.
fn describe(prefix: &[u8]) -> String {
    if prefix.is_empty() {
        return "the file is empty".into();
    }
    let text = String::from_utf8_lossy(prefix.get(..40).unwrap_or(prefix));
    format!("it starts with {:?}", text.trim())
}

/// Errors raised inside the visitors carry the whole error here; serde only sees a marker.
#[derive(Default)]
struct Side {
    error: Option<VulnError>,
    /// The JSON path of the element being read.
    path: String,
}

fn json_error(file: &Path, side: &mut Side, e: serde_json::Error) -> VulnError {
    if let Some(err) = side.error.take() {
        return err;
    }
    VulnError::Json {
        file: file.into(),
        path: if side.path.is_empty() {
            "(document)".into()
        } else {
            side.path.clone()
        },
        message: strip_position(&e.to_string()),
        line: e.line(),
        column: e.column(),
    }
}

/// serde_json's messages end with " at line L column C", which the error says itself.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg.get(..i).unwrap_or(msg).to_string(),
        None => msg.to_string(),
    }
}

// ---- NVD ----

#[derive(Deserialize)]
struct RawVuln {
    cve: RawCve,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCve {
    id: String,
    published: Option<String>,
    last_modified: Option<String>,
    #[serde(default)]
    descriptions: Vec<RawText>,
    #[serde(default)]
    metrics: RawMetrics,
    /// Read as a value and checked apart: a malformed one skips its CVE, not the file.
    #[serde(default)]
    configurations: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawText {
    lang: String,
    value: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMetrics {
    #[serde(default)]
    cvss_metric_v31: Vec<RawMetric>,
    #[serde(default)]
    cvss_metric_v30: Vec<RawMetric>,
    #[serde(default)]
    cvss_metric_v2: Vec<RawMetric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMetric {
    #[serde(rename = "type")]
    kind: Option<String>,
    cvss_data: RawCvssData,
    /// CVSS 2 gives the severity beside cvssData.
    base_severity: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCvssData {
    version: Option<String>,
    base_score: f64,
    base_severity: Option<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    /// `AND`: every node must hold; absent or `OR`: any node.
    operator: Option<String>,
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNode {
    #[serde(default)]
    negate: bool,
    cpe_match: Vec<RawCpeMatch>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCpeMatch {
    vulnerable: bool,
    criteria: String,
    version_start_including: Option<String>,
    version_start_excluding: Option<String>,
    version_end_including: Option<String>,
    version_end_excluding: Option<String>,
}

impl RawCve {
    fn score(&self) -> (Option<f64>, Option<String>, Option<String>) {
        for (list, fallback) in [
            (&self.metrics.cvss_metric_v31, "3.1"),
            (&self.metrics.cvss_metric_v30, "3.0"),
            (&self.metrics.cvss_metric_v2, "2.0"),
        ] {
            let best = list
                .iter()
                .find(|m| m.kind.as_deref() == Some("Primary"))
                .or_else(|| list.first());
            if let Some(m) = best {
                let version = m.cvss_data.version.clone().unwrap_or(fallback.into());
                let severity = m
                    .cvss_data
                    .base_severity
                    .clone()
                    .or_else(|| m.base_severity.clone());
                return (Some(m.cvss_data.base_score), Some(version), severity);
            }
        }
        (None, None, None)
    }
}

/// The vulnerable matches of a CVE's configurations and the entries of its AND
/// configurations, or why they are malformed.
fn matches_of(value: serde_json::Value) -> Result<(Vec<MatchRecord>, Vec<AndConfig>), String> {
    let configs: Vec<RawConfig> = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut and_configs = Vec::new();
    for (c, config) in configs.into_iter().enumerate() {
        let and = match config.operator.as_deref() {
            None | Some("OR") => false,
            Some("AND") => config.nodes.len() > 1,
            Some(other) => return Err(format!("[{c}].operator: neither AND nor OR: {other:?}")),
        };
        let mut nodes = Vec::new();
        for (n, node) in config.nodes.into_iter().enumerate() {
            let mut entries = Vec::new();
            for (m, raw) in node.cpe_match.into_iter().enumerate() {
                let parsed = cpe::parse_23(&raw.criteria).ok_or_else(|| {
                    format!(
                        "[{c}].nodes[{n}].cpeMatch[{m}].criteria: not a CPE 2.3 name: {:?}",
                        raw.criteria
                    )
                })?;
                let record = MatchRecord {
                    version: parsed.full_version(),
                    part: parsed.part,
                    vendor: parsed.vendor,
                    product: parsed.product,
                    start_including: raw.version_start_including,
                    start_excluding: raw.version_start_excluding,
                    end_including: raw.version_end_including,
                    end_excluding: raw.version_end_excluding,
                    criteria: raw.criteria,
                    and_node: and.then_some((c as u32, n as u32)),
                };
                if and {
                    entries.push(crate::platform::Entry {
                        part: record.part.clone(),
                        vendor: record.vendor.clone(),
                        product: record.product.clone(),
                        version: record.version.clone(),
                        bounds: [
                            record.start_including.clone(),
                            record.start_excluding.clone(),
                            record.end_including.clone(),
                            record.end_excluding.clone(),
                        ],
                        criteria: record.criteria.clone(),
                    });
                }
                // Negated nodes and non-vulnerable platforms ("running on") name what is
                // not the vulnerable software.
                if raw.vulnerable && !node.negate {
                    out.push(record);
                }
            }
            if and {
                nodes.push(crate::platform::Node {
                    node: n as i64,
                    negate: node.negate,
                    entries,
                });
            }
        }
        if and {
            and_configs.push(AndConfig {
                config: c as u32,
                nodes,
            });
        }
    }
    Ok((out, and_configs))
}

struct NvdState<'a> {
    sink: &'a mut dyn Records,
    side: Side,
    records: u64,
    skipped: Vec<Skipped>,
    timestamp: Option<String>,
}

struct NvdDoc<'s, 'a>(&'s mut NvdState<'a>);

impl<'de> DeserializeSeed<'de> for NvdDoc<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for NvdDoc<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an NVD CVE JSON 2.0 document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "vulnerabilities" => {
                    seen = true;
                    map.next_value_seed(NvdList(&mut *self.0))?;
                    self.0.side.path.clear();
                }
                "timestamp" => self.0.timestamp = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen {
            return Err(de::Error::missing_field("vulnerabilities"));
        }
        Ok(())
    }
}

struct NvdList<'s, 'a>(&'s mut NvdState<'a>);

impl<'de> DeserializeSeed<'de> for NvdList<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for NvdList<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of vulnerabilities")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.0;
        let mut i = 0usize;
        loop {
            st.side.path = format!("vulnerabilities[{i}]");
            let Some(raw) = seq.next_element::<RawVuln>()? else {
                break;
            };
            let cve = raw.cve;
            let (cvss, cvss_version, severity) = cve.score();
            let (matches, and_configs) = match cve.configurations {
                None => (Vec::new(), Vec::new()),
                Some(v) => match matches_of(v) {
                    Ok(m) => m,
                    Err(reason) => {
                        st.skipped.push(Skipped {
                            path: format!("vulnerabilities[{i}].cve.configurations"),
                            cve: cve.id,
                            reason,
                        });
                        i += 1;
                        continue;
                    }
                },
            };
            let description = cve
                .descriptions
                .into_iter()
                .find(|d| d.lang == "en")
                .map(|d| d.value)
                .unwrap_or_default();
            let rec = CveRecord {
                id: cve.id,
                published: cve.published,
                last_modified: cve.last_modified,
                cvss,
                cvss_version,
                severity,
                description,
                matches,
                and_configs,
            };
            if let Err(e) = st.sink.cve(rec) {
                st.side.error = Some(e);
                return Err(de::Error::custom("the database refused a record"));
            }
            st.records += 1;
            i += 1;
        }
        Ok(())
    }
}

fn read_nvd(
    input: &mut dyn BufRead,
    file: &Path,
    sink: &mut dyn Records,
) -> Result<FileSummary, VulnError> {
    let mut st = NvdState {
        sink,
        side: Side::default(),
        records: 0,
        skipped: Vec::new(),
        timestamp: None,
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    let done = NvdDoc(&mut st).deserialize(&mut de).and_then(|()| de.end());
    done.map_err(|e| json_error(file, &mut st.side, e))?;
    Ok(FileSummary {
        format: Format::Nvd,
        records: st.records,
        skipped: st.skipped,
        data_date: st.timestamp,
    })
}

// ---- CISA KEV ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKevDoc {
    date_released: Option<String>,
    vulnerabilities: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKev {
    #[serde(rename = "cveID")]
    cve_id: String,
    date_added: String,
    due_date: Option<String>,
    known_ransomware_campaign_use: Option<String>,
    vulnerability_name: Option<String>,
}

fn read_kev(
    input: &mut dyn BufRead,
    file: &Path,
    sink: &mut dyn Records,
) -> Result<FileSummary, VulnError> {
    // The catalog is small (about 1,500 entries): read whole, each entry checked apart so
    // that an error names its index.
    let mut side = Side::default();
    let doc: RawKevDoc =
        serde_json::from_reader(input).map_err(|e| json_error(file, &mut side, e))?;
    let mut records = 0;
    for (i, v) in doc.vulnerabilities.into_iter().enumerate() {
        let k: RawKev = serde_json::from_value(v).map_err(|e| VulnError::Json {
            file: file.into(),
            path: format!("vulnerabilities[{i}]"),
            message: strip_position(&e.to_string()),
            line: e.line(),
            column: e.column(),
        })?;
        sink.kev(KevRecord {
            cve: k.cve_id,
            date_added: k.date_added,
            due_date: k.due_date,
            ransomware: k.known_ransomware_campaign_use,
            name: k.vulnerability_name,
        })?;
        records += 1;
    }
    Ok(FileSummary {
        format: Format::Kev,
        records,
        skipped: Vec::new(),
        data_date: doc.date_released,
    })
}

// ---- FIRST EPSS ----

fn read_epss(
    input: &mut dyn BufRead,
    file: &Path,
    sink: &mut dyn Records,
) -> Result<FileSummary, VulnError> {
    let bad = |line: usize, message: String| VulnError::Csv {
        file: file.into(),
        line,
        message,
    };
    let mut data_date = None;
    let mut header_seen = false;
    let mut records = 0;
    let mut buf = String::new();
    let mut n = 0;
    loop {
        buf.clear();
        let got = input.read_line(&mut buf).map_err(|source| VulnError::Io {
            file: file.into(),
            source,
        })?;
        if got == 0 {
            break;
        }
        n += 1;
        let line = buf.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            // #model_version:v2023.03.01,score_date:2023-03-05T00:00:00+0000
            data_date = comment
                .split(',')
                .find_map(|kv| kv.trim().strip_prefix("score_date:"))
                .map(str::to_string)
                .or(data_date);
            continue;
        }
        if !header_seen {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.get(..3) != Some(&["cve", "epss", "percentile"][..]) {
                return Err(bad(
                    n,
                    format!("expected the header cve,epss,percentile, found {line:?}"),
                ));
            }
            header_seen = true;
            continue;
        }
        let mut cols = line.split(',').map(str::trim);
        let (Some(cve), Some(epss), Some(pct)) = (cols.next(), cols.next(), cols.next()) else {
            return Err(bad(n, format!("expected 3 columns, found {line:?}")));
        };
        if !cve.starts_with("CVE-") {
            return Err(bad(n, format!("not a CVE id: {cve:?}")));
        }
        let prob = |v: &str, what: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or_else(|| bad(n, format!("{what} {v:?} is not a number from 0 to 1")))
        };
        let epss = prob(epss, "epss")?;
        let percentile = prob(pct, "percentile")?;
        sink.epss(EpssRecord {
            cve: cve.to_string(),
            epss,
            percentile,
        })?;
        records += 1;
    }
    if !header_seen {
        return Err(bad(n, "no cve,epss,percentile header".into()));
    }
    Ok(FileSummary {
        format: Format::Epss,
        records,
        skipped: Vec::new(),
        data_date,
    })
}

// ---- Debian security tracker ----

#[derive(Deserialize)]
struct RawDebCve {
    #[serde(default)]
    releases: BTreeMap<String, RawDebRelease>,
}

#[derive(Deserialize)]
struct RawDebRelease {
    status: String,
    fixed_version: Option<String>,
    urgency: Option<String>,
}

struct DebState<'a> {
    sink: &'a mut dyn Records,
    side: Side,
    records: u64,
}

struct DebDoc<'s, 'a>(&'s mut DebState<'a>);

impl<'de> DeserializeSeed<'de> for DebDoc<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DebDoc<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Debian's tracker JSON: source package -> CVE -> releases")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(package) = map.next_key::<String>()? {
            self.0.side.path = package.clone();
            map.next_value_seed(DebPackage(&mut *self.0, package))?;
        }
        self.0.side.path.clear();
        Ok(())
    }
}

struct DebPackage<'s, 'a>(&'s mut DebState<'a>, String);

impl<'de> DeserializeSeed<'de> for DebPackage<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DebPackage<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of CVE ids")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let DebPackage(st, package) = self;
        while let Some(cve) = map.next_key::<String>()? {
            st.side.path = format!("{package}.{cve}");
            let raw: RawDebCve = map.next_value()?;
            // TEMP- entries have no CVE id yet: nothing to match.
            if !cve.starts_with("CVE-") {
                continue;
            }
            for (release, r) in raw.releases {
                let rec = DebianRecord {
                    package: package.clone(),
                    cve: cve.clone(),
                    release,
                    status: r.status,
                    fixed_version: r.fixed_version,
                    urgency: r.urgency,
                };
                if let Err(e) = st.sink.debian(rec) {
                    st.side.error = Some(e);
                    return Err(de::Error::custom("the database refused a record"));
                }
                st.records += 1;
            }
        }
        Ok(())
    }
}

fn read_debian(
    input: &mut dyn BufRead,
    file: &Path,
    sink: &mut dyn Records,
) -> Result<FileSummary, VulnError> {
    let mut st = DebState {
        sink,
        side: Side::default(),
        records: 0,
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    let done = DebDoc(&mut st).deserialize(&mut de).and_then(|()| de.end());
    done.map_err(|e| json_error(file, &mut st.side, e))?;
    Ok(FileSummary {
        format: Format::Debian,
        records: st.records,
        skipped: Vec::new(),
        data_date: None,
    })
}

/// A sink that keeps every record: for tests and the fuzz targets.
#[derive(Debug, Default)]
pub struct Collected {
    pub cves: Vec<CveRecord>,
    pub kev: Vec<KevRecord>,
    pub epss: Vec<EpssRecord>,
    pub debian: Vec<DebianRecord>,
}

impl Records for Collected {
    fn cve(&mut self, r: CveRecord) -> Result<(), VulnError> {
        self.cves.push(r);
        Ok(())
    }
    fn kev(&mut self, r: KevRecord) -> Result<(), VulnError> {
        self.kev.push(r);
        Ok(())
    }
    fn epss(&mut self, r: EpssRecord) -> Result<(), VulnError> {
        self.epss.push(r);
        Ok(())
    }
    fn debian(&mut self, r: DebianRecord) -> Result<(), VulnError> {
        self.debian.push(r);
        Ok(())
    }
}

/// Reads a feed held in memory (tests, fuzzing).
pub fn read_bytes(bytes: &[u8], name: &str) -> Result<(FileSummary, Collected), VulnError> {
    let mut c = Collected::default();
    let s = read(bytes, &PathBuf::from(name), &mut c)?;
    Ok((s, c))
}
