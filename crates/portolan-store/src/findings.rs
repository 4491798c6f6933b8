//! Vulnerability findings as the store holds them: a port's `vulns` script result (written by
//! a scan run with `--vulns`, docs/vulns.md), one table per CVE. This module reads them back
//! for `changes`, `vulns --db` and the web view; it needs no schema of its own.
//!
//! Whether a scan looked for findings at all matters: a port without a `vulns` result in a
//! scan run with `--vulns` has none, in a scan run without it nothing is known.

use crate::PortRecord;
use portolan_model::{Script, ScriptItem, Urgency};
use serde::Serialize;
use std::cmp::Ordering;

/// The script id the findings are stored under (portolan-vuln's `report::SCRIPT_ID`).
pub const SCRIPT_ID: &str = "vulns";

/// One finding of a port, as its `vulns` table gives it. Every field is text from the
/// user's feed files: show it escaped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredFinding {
    pub cve: String,
    pub title: String,
    /// `VULNERABLE` (Debian's tracker confirmed it) or `LIKELY VULNERABLE` (upstream only).
    pub state: String,
    pub cvss: Option<f64>,
    pub severity: Option<String>,
    pub kev: bool,
    pub kev_date_added: Option<String>,
    pub epss: Option<f64>,
    pub product: String,
    pub version: String,
    pub matched: String,
    pub basis: String,
    pub upstream_only: bool,
    /// What must hold for it to apply, when the scan did not tell the platform an NVD AND
    /// configuration requires ("only when running on …").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

impl StoredFinding {
    /// `CVE-2024-6387 (CVSS 8.1, KEV)`: what `changes` shows of it.
    pub fn summary(&self) -> String {
        let mut s = format!("{} (CVSS {}", self.cve, score_text(self.cvss));
        if self.kev {
            s.push_str(", KEV");
        }
        s.push(')');
        s
    }
}

/// A CVSS score as text, `-` when there is none.
pub fn score_text(cvss: Option<f64>) -> String {
    cvss.map(|c| format!("{c:.1}"))
        .unwrap_or_else(|| "-".into())
}

/// The order a defender acts in: known exploited first, then EPSS, then CVSS (then id),
/// as portolan-vuln's `priority`.
pub fn priority(a: &StoredFinding, b: &StoredFinding) -> Ordering {
    a.urgency().first(&b.urgency())
}

impl StoredFinding {
    /// What orders it among findings ([`Urgency::first`]).
    pub fn urgency(&self) -> Urgency<'_> {
        Urgency {
            kev: self.kev,
            epss: self.epss,
            cvss: self.cvss,
            cve: &self.cve,
        }
    }
}

/// The findings of a `vulns` script result; a table that names no CVE is skipped.
pub fn of_script(script: &Script) -> Vec<StoredFinding> {
    let mut out = Vec::new();
    for item in &script.content {
        let ScriptItem::Table {
            key: Some(key),
            items,
        } = item
        else {
            continue;
        };
        let elem = |name: &str| {
            items.iter().find_map(|i| match i {
                ScriptItem::Elem {
                    key: Some(k),
                    value,
                } if k == name => Some(value.as_str()),
                _ => None,
            })
        };
        let text = |name: &str| elem(name).unwrap_or("").to_string();
        let number = |name: &str| elem(name).and_then(|v| v.parse::<f64>().ok());
        let cve = elem("id").unwrap_or(key).to_string();
        if cve.is_empty() {
            continue;
        }
        out.push(StoredFinding {
            title: text("title"),
            state: text("state"),
            cvss: number("cvss").filter(|c| c.is_finite()),
            severity: elem("severity").map(str::to_string),
            kev: elem("is_exploit") == Some("true"),
            kev_date_added: elem("kev_date_added").map(str::to_string),
            epss: number("epss").filter(|e| e.is_finite()),
            product: text("product"),
            version: text("version"),
            matched: text("matched"),
            basis: text("basis"),
            upstream_only: elem("upstream_only") == Some("true"),
            condition: elem("condition").map(str::to_string),
            cve,
        });
    }
    out
}

/// The findings of a port's scripts (JSON, the store's form): None when it has no `vulns`
/// result (or its scripts cannot be read).
pub fn of_scripts_json(scripts: &str) -> Option<Vec<StoredFinding>> {
    if !scripts.contains(SCRIPT_ID) {
        return None; // most ports: no need to parse
    }
    let scripts: Vec<Script> = serde_json::from_str(scripts).ok()?;
    scripts.iter().find(|s| s.id == SCRIPT_ID).map(of_script)
}

/// The findings of a stored port: None when it has no `vulns` result.
pub fn of_port(port: &PortRecord) -> Option<Vec<StoredFinding>> {
    of_scripts_json(&port.scripts)
}

/// Whether a scan's command line asked for findings (`--vulns`): then a port without a
/// `vulns` result has none.
pub fn args_ask_vulns(args: &str) -> bool {
    args.split_whitespace().any(|w| w == "--vulns")
}

/// The findings that appeared and went away on a port between two records, in CVE order;
/// None when either record says nothing about findings (`checked` tells whether each scan
/// ran with `--vulns`; a port with a `vulns` result was checked in any case).
#[allow(clippy::type_complexity)]
pub fn difference(
    before: &PortRecord,
    before_checked: bool,
    after: &PortRecord,
    after_checked: bool,
) -> Option<(Vec<StoredFinding>, Vec<StoredFinding>)> {
    let known = |p: &PortRecord, checked: bool| match of_port(p) {
        Some(f) => Some(f),
        None if checked => Some(Vec::new()),
        None => None,
    };
    let old = known(before, before_checked)?;
    let new = known(after, after_checked)?;
    let has = |list: &[StoredFinding], cve: &str| list.iter().any(|f| f.cve == cve);
    let mut appeared: Vec<StoredFinding> =
        new.iter().filter(|f| !has(&old, &f.cve)).cloned().collect();
    let mut gone: Vec<StoredFinding> = old.into_iter().filter(|f| !has(&new, &f.cve)).collect();
    appeared.sort_by(|a, b| a.cve.cmp(&b.cve));
    gone.sort_by(|a, b| a.cve.cmp(&b.cve));
    Some((appeared, gone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(k: &str, v: &str) -> ScriptItem {
        ScriptItem::Elem {
            key: Some(k.into()),
            value: v.into(),
        }
    }

    fn vulns(cves: &[(&str, &str, bool)]) -> Script {
        Script {
            id: SCRIPT_ID.into(),
            output: String::new(),
            content: cves
                .iter()
                .map(|(cve, cvss, kev)| ScriptItem::Table {
                    key: Some(cve.to_string()),
                    items: vec![
                        elem("title", "t"),
                        elem("id", cve),
                        elem("cvss", cvss),
                        elem("is_exploit", &kev.to_string()),
                    ],
                })
                .collect(),
        }
    }

    fn port(scripts: &[Script]) -> PortRecord {
        PortRecord {
            protocol: "tcp".into(),
            port: 22,
            state: "open".into(),
            reason: "syn-ack".into(),
            service: Some("ssh".into()),
            product: Some("OpenSSH".into()),
            version: Some("9.2p1".into()),
            extrainfo: None,
            tunnel: None,
            scripts: serde_json::to_string(scripts).unwrap(),
        }
    }

    #[test]
    fn reads_the_tables_of_a_vulns_result() {
        let p = port(&[
            Script::text("other", "x"),
            vulns(&[("CVE-1", "8.1", true), ("CVE-2", "-", false)]),
        ]);
        let f = of_port(&p).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].cve.as_str(), f[0].cvss, f[0].kev),
            ("CVE-1", Some(8.1), true)
        );
        assert_eq!(
            (f[1].cve.as_str(), f[1].cvss, f[1].kev),
            ("CVE-2", None, false)
        );
        assert_eq!(f[0].summary(), "CVE-1 (CVSS 8.1, KEV)");
        assert!(of_port(&port(&[Script::text("other", "vulns")])).is_none());
        assert!(of_scripts_json("[not json vulns").is_none());
    }

    #[test]
    fn a_difference_needs_both_records_to_say_something() {
        let a = port(&[vulns(&[("CVE-1", "8.1", true), ("CVE-2", "5.0", false)])]);
        let b = port(&[vulns(&[("CVE-2", "5.0", false), ("CVE-3", "9.8", false)])]);
        let none = port(&[]);
        let (new, gone) = difference(&a, false, &b, false).unwrap();
        assert_eq!(new.iter().map(|f| &f.cve).collect::<Vec<_>>(), ["CVE-3"]);
        assert_eq!(gone.iter().map(|f| &f.cve).collect::<Vec<_>>(), ["CVE-1"]);
        // A later scan without --vulns says nothing; with it, no result means none left.
        assert!(difference(&a, false, &none, false).is_none());
        let (new, gone) = difference(&a, false, &none, true).unwrap();
        assert!(new.is_empty());
        assert_eq!(gone.len(), 2);
        assert!(difference(&none, false, &b, true).is_none());
    }

    #[test]
    fn the_vulns_option_is_a_whole_word() {
        assert!(args_ask_vulns("portolan -sV --vulns 10.0.0.0/24"));
        assert!(!args_ask_vulns("portolan -sV --vulndb x 10.0.0.0/24"));
        assert!(!args_ask_vulns("portolan -sV --vulnsx"));
    }

    #[test]
    fn priority_is_kev_then_epss_then_cvss() {
        let mut f = of_script(&vulns(&[
            ("CVE-A", "9.8", false),
            ("CVE-B", "5.0", true),
            ("CVE-C", "7.0", false),
        ]));
        f.sort_by(priority);
        let ids: Vec<&str> = f.iter().map(|f| f.cve.as_str()).collect();
        assert_eq!(ids, ["CVE-B", "CVE-A", "CVE-C"]);
    }
}
