//! Findings as a port's script result (`vulns`), so that normal, XML, grepable and JSON
//! output and every Nmap-XML reader show them: text like the vulners script's, and the same
//! as structured elements (one table per CVE).

use crate::error::VulnError;
use crate::matcher::{host_os, Basis, Finding, Matcher, ServiceQuery};
use portolan_model::{Host, PortState, Script, ScriptItem};

/// The script id the findings are reported under.
pub const SCRIPT_ID: &str = "vulns";

/// One line of a finding: id, CVSS, KEV, EPSS, reference, basis.
pub fn line(f: &Finding) -> String {
    let mut s = format!("{}\t{}", f.cve.id, score(f));
    if f.kev() {
        s.push_str("\tKEV");
    }
    if let Some(e) = f.cve.epss {
        s.push_str(&format!("\tEPSS {e:.3}"));
    }
    s.push('\t');
    s.push_str(&f.reference());
    s.push_str(&format!("\t({})", basis_text(&f.basis)));
    if let Some(c) = &f.condition {
        s.push_str(&format!(" ({c})"));
    }
    s
}

/// A finding's title: the first sentence of its description, cut to 120 characters.
pub fn title(f: &Finding) -> String {
    let first = f.cve.description.split(". ").next().unwrap_or("").trim();
    let mut t: String = first.chars().take(120).collect();
    if t.len() < first.len() {
        t.push('…');
    }
    if t.is_empty() {
        t = f.cve.id.to_string();
    }
    t
}

/// The CVSS base score as text, `-` when NVD gives none.
pub fn score(f: &Finding) -> String {
    f.cve
        .cvss
        .map(|c| format!("{c:.1}"))
        .unwrap_or_else(|| "-".into())
}

/// What the verdict rests on, in a few words.
pub fn basis_text(b: &Basis) -> String {
    match b {
        Basis::Upstream { note } => note.to_string(),
        Basis::Debian {
            package,
            release,
            installed,
            status,
            fixed_version,
        } => match fixed_version {
            Some(f) if &**status == "resolved" => {
                format!("Debian {release} {package}: fixed in {f}, installed {installed}")
            }
            _ => format!("Debian {release} {package}: {status}, no fix, installed {installed}"),
        },
    }
}

/// The `vulns` script result of one service's findings (not empty).
pub fn script(findings: &[Finding]) -> Script {
    let mut output = String::new();
    let mut content = Vec::new();
    if let Some(first) = findings.first() {
        output.push_str(&format!("\n  {} {}:", first.product, first.version));
    }
    for f in findings {
        output.push_str("\n    ");
        output.push_str(&line(f));
        let elem = |k: &str, v: String| ScriptItem::Elem {
            key: Some(k.into()),
            value: v,
        };
        let list = |k: &str, v: String| ScriptItem::Table {
            key: Some(k.into()),
            items: vec![ScriptItem::Elem {
                key: None,
                value: v,
            }],
        };
        // Nmap's vulns library layout (title, state, ids, description, refs), which the
        // events writer turns into ECS alerts, then our own fields.
        let state = if f.upstream_only() || f.condition.is_some() {
            "LIKELY VULNERABLE"
        } else {
            "VULNERABLE"
        };
        let mut items = vec![
            elem("title", title(f)),
            elem("state", state.into()),
            list("ids", format!("CVE:{}", f.cve.id)),
            list("description", f.cve.description.to_string()),
            list("refs", f.reference()),
            elem("id", f.cve.id.to_string()),
            elem("cvss", score(f)),
            elem("type", "cve".into()),
            elem("is_exploit", f.kev().to_string()),
        ];
        if let Some(v) = &f.cve.cvss_version {
            items.push(elem("cvss_version", v.to_string()));
        }
        if let Some(s) = &f.cve.severity {
            items.push(elem("severity", s.to_string()));
        }
        if let Some(d) = &f.cve.kev_date_added {
            items.push(elem("kev_date_added", d.to_string()));
        }
        if let Some(e) = f.cve.epss {
            items.push(elem("epss", format!("{e:.5}")));
        }
        items.push(elem("product", f.product.to_string()));
        items.push(elem("version", f.version.to_string()));
        items.push(elem("matched", f.matched.to_string()));
        if let Some(c) = &f.condition {
            items.push(elem("condition", c.to_string()));
        }
        items.push(elem("basis", basis_text(&f.basis)));
        items.push(elem("upstream_only", f.upstream_only().to_string()));
        content.push(ScriptItem::Table {
            key: Some(f.cve.id.to_string()),
            items,
        });
    }
    Script {
        id: SCRIPT_ID.into(),
        output,
        content,
    }
}

/// Adds a `vulns` result to every open port of `host` whose service has findings (and
/// replaces one already there); returns the number of findings.
pub fn annotate_host(m: &mut Matcher, host: &mut Host) -> Result<usize, VulnError> {
    let mut count = 0;
    let os = host_os(host);
    for port in host.ports.iter_mut() {
        if port.state != PortState::Open {
            continue;
        }
        let Some(service) = &port.service else {
            continue;
        };
        let found = m.service(&ServiceQuery {
            host_os: os.clone(),
            ..ServiceQuery::of(service)
        })?;
        port.scripts.retain(|s| s.id != SCRIPT_ID);
        if found.is_empty() {
            continue;
        }
        count += found.len();
        port.scripts.push(script(&found));
    }
    Ok(count)
}
