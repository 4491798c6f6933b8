//! The pages and their JSON: Overview, Hosts, Host, Vulnerabilities, Changes, Scans and
//! the diff of two scans. Each is one function from the store and the query's parameters to a reply (HTML,
//! JSON or CSV), run on a blocking thread by the router. The JSON of a page is the data
//! the HTML shows, built first; the HTML is drawn from it.

use crate::changes::{Seen, SharedChanges};
use crate::filter::{parse_age, Filter};
use crate::html::{self, bars, esc, page, table, time, url, E};
use portolan_model::Script;
use portolan_report::diff::{diff as diff_runs, DiffOptions};
use portolan_store::findings::{self, StoredFinding};
use portolan_store::query::now;
use portolan_store::{
    Change, HostSnapshot, InventoryHost, PartState, PortRecord, ScanId, ScanRecord, ShardedScan,
    Store, StoreError,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

/// A page's answer.
pub enum Reply {
    Html(String),
    Json(String),
    Csv(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// A 400 with a page of its own (already HTML).
    #[error("bad request")]
    BadPage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
    Csv,
}

/// The query parameters any page may take (each page reads those it knows).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Params {
    /// The filter (docs/serve.md).
    pub q: Option<String>,
    /// Hosts: address, name, ports, seen, os.
    pub sort: Option<String>,
    /// "1": descending.
    pub desc: Option<String>,
    /// 1-based page, or "all".
    pub page: Option<String>,
    pub per: Option<usize>,
    /// Changes: how far back (45m, 12h, 7d, 2w); `changed:` in the filter wins.
    pub since: Option<String>,
    /// Diff: the two scan ids.
    pub a: Option<i64>,
    pub b: Option<i64>,
}

const PER_PAGE: usize = 100;
const MAX_PER_PAGE: usize = 1000;

fn json<T: Serialize>(v: &T) -> Result<Reply, PageError> {
    serde_json::to_string(v)
        .map(Reply::Json)
        .map_err(|e| PageError::Store(StoreError::BadValue(e.to_string())))
}

fn filter_of(p: &Params) -> Result<Filter, PageError> {
    Filter::parse(p.q.as_deref().unwrap_or("")).map_err(|e| PageError::BadRequest(e.to_string()))
}

/// A page whose filter was refused: the filter box again, with the reason (status 400).
fn bad_filter_page(title: &str, path: &str, q: &str, why: &str) -> PageError {
    let body = format!(
        "{}<p class=\"error\">Filter refused: {} (docs/serve.md lists the terms)</p>\n",
        filter_form(path, q, ""),
        E(why)
    );
    PageError::BadPage(page(title, path, "/api/overview", &body))
}

/// A page of `items`: the slice asked, and (page, pages).
fn paged<T>(items: &[T], p: &Params) -> (usize, usize, usize, usize) {
    let per = p.per.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE);
    let pages = items.len().div_ceil(per).max(1);
    if p.page.as_deref() == Some("all") {
        return (0, items.len(), 1, 1);
    }
    let n = p
        .page
        .as_deref()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let start = (n - 1) * per;
    (
        start.min(items.len()),
        (start + per).min(items.len()),
        n,
        pages,
    )
}

/// Links to the pages of a paged list, keeping the other parameters.
fn pager(base: &str, keep: &str, n: usize, pages: usize) -> String {
    if pages <= 1 {
        return String::new();
    }
    let link =
        |k: usize, label: &str| format!("<a href=\"{}?{}page={k}\">{label}</a>", base, esc(keep),);
    let mut s = String::from("<p class=\"pager\">");
    if n > 1 {
        s.push_str(&link(n - 1, "← previous"));
    }
    let _ = write!(s, " page {n} of {pages} ");
    if n < pages {
        s.push_str(&link(n + 1, "next →"));
    }
    s.push_str("</p>\n");
    s
}

/// The filter box, with the filter given (escaped) and a short help.
fn filter_form(action: &str, q: &str, extra: &str) -> String {
    format!(
        "<form class=\"filter\" method=\"get\" action=\"{action}\">\
         <input type=\"search\" name=\"q\" value=\"{}\" size=\"60\" \
         placeholder=\"port:22 product:openssh net:198.18.0.0/16 os:linux changed:7d\">\
         {extra}<button>Filter</button></form>\n",
        E(q)
    )
}

fn ports_text(ports: &[PortRecord]) -> String {
    ports
        .iter()
        .map(|p| format!("{}/{}", p.port, p.protocol))
        .collect::<Vec<_>>()
        .join(" ")
}

fn host_link(addr: &str) -> String {
    format!("<a href=\"/host/{}\">{}</a>", url(addr), E(addr))
}

/// The store and what the pages keep between requests.
pub struct Data {
    pub store: Store,
    /// The change list, shared with the pool's other connections.
    changes: Arc<SharedChanges>,
    /// This connection's last sight of the store's generation.
    seen: Seen,
}

impl Data {
    /// A connection with a change list of its own.
    pub fn new(store: Store) -> Data {
        Data::sharing(store, Arc::default())
    }

    /// A connection of a pool whose connections share `changes`.
    pub fn sharing(store: Store, changes: Arc<SharedChanges>) -> Data {
        Data {
            store,
            changes,
            seen: Seen::default(),
        }
    }

    /// [`Store::changes_since`], from the shared list when it covers `since`.
    pub fn changes_since(&mut self, since: i64) -> Result<Vec<Change>, StoreError> {
        self.changes.since(&self.store, &mut self.seen, since)
    }

    /// Whether the shared list should be computed for the whole history now (marked as
    /// started; see [`SharedChanges::should_warm`]).
    pub fn changes_need_warming(&mut self) -> bool {
        // A store that cannot answer now: the page that needs the list will say so.
        self.changes
            .should_warm(&self.store, &mut self.seen)
            .unwrap_or(false)
    }

    /// How many change lists the pool's connections computed (the rest were kept ones).
    pub fn changes_computed(&self) -> u64 {
        self.changes.computed()
    }

    /// Computes the shared list for the whole history.
    pub fn warm_changes(&mut self) -> Result<(), StoreError> {
        self.changes.warm(&self.store, &mut self.seen)
    }

    /// [`Data::warm_changes`], its older half computed on `helper`'s connection at the
    /// same time (see [`SharedChanges::warm_with`]).
    pub fn warm_changes_with(&mut self, helper: &mut Data) -> Result<(), StoreError> {
        self.changes.warm_with(
            &self.store,
            &mut self.seen,
            Some((&mut helper.store, &mut helper.seen)),
        )
    }
}

// ---------------------------------------------------------------- Overview

#[derive(Serialize)]
struct Overview {
    hosts_up: usize,
    open_ports: usize,
    services: usize,
    /// Findings stored with the inventory's open ports, and how many are known exploited.
    vulns: usize,
    vulns_kev: usize,
    latest_scans: Vec<ScanRecord>,
    changes_7d: usize,
    changes_7d_by_kind: BTreeMap<&'static str, usize>,
    top_ports: Vec<(String, usize)>,
    top_products: Vec<(String, usize)>,
}

fn top(counts: HashMap<String, usize>, n: usize) -> Vec<(String, usize)> {
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

pub fn overview(d: &mut Data, _p: &Params, as_json: bool) -> Result<Reply, PageError> {
    let hosts = d.store.hosts()?;
    let mut ports: HashMap<String, usize> = HashMap::new();
    let mut products: HashMap<String, usize> = HashMap::new();
    let mut services = HashSet::new();
    let mut open = 0;
    let (mut vulns, mut vulns_kev) = (0, 0);
    for h in &hosts {
        for p in &h.ports {
            open += 1;
            if let Some(found) = findings::of_port(p) {
                vulns += found.len();
                vulns_kev += found.iter().filter(|f| f.kev).count();
            }
            *ports
                .entry(format!("{}/{}", p.port, p.protocol))
                .or_default() += 1;
            if let Some(prod) = &p.product {
                *products.entry(prod.clone()).or_default() += 1;
            }
            if let Some(svc) = &p.service {
                services.insert(svc.clone());
            }
        }
    }
    let mut latest = d.store.history()?;
    latest.reverse();
    latest.truncate(10);
    let changes = d.changes_since(now() - 7 * 86_400)?;
    let mut by_kind = BTreeMap::new();
    for c in &changes {
        *by_kind.entry(c.kind.as_str()).or_default() += 1;
    }
    let o = Overview {
        hosts_up: hosts.len(),
        open_ports: open,
        services: services.len(),
        vulns,
        vulns_kev,
        latest_scans: latest,
        changes_7d: changes.len(),
        changes_7d_by_kind: by_kind,
        top_ports: top(ports, 10),
        top_products: top(products, 10),
    };
    if as_json {
        return json(&o);
    }
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<ul class=\"stats\"><li><a href=\"/hosts\"><b>{}</b> hosts up</a></li>\
         <li><b>{}</b> open ports</li><li><b>{}</b> services</li>\
         <li><a href=\"/vulns\"><b>{}</b> known vulnerabilities ({} known exploited)</a></li>\
         <li><a href=\"/changes?since=7d\"><b>{}</b> changes in the last 7 days</a></li></ul>",
        o.hosts_up, o.open_ports, o.services, o.vulns, o.vulns_kev, o.changes_7d
    );
    if !o.changes_7d_by_kind.is_empty() {
        b.push_str("<p>");
        let parts: Vec<String> = o
            .changes_7d_by_kind
            .iter()
            .map(|(k, n)| format!("{}: {n}", E(k)))
            .collect();
        b.push_str(&parts.join(", "));
        b.push_str("</p>\n");
    }
    b.push_str("<div class=\"charts\">");
    b.push_str(&bars("Top open ports (hosts)", &o.top_ports));
    b.push_str(&bars("Top products (ports)", &o.top_products));
    b.push_str("</div>\n<h2>Latest scans</h2>\n");
    b.push_str(&scan_table(&o.latest_scans, &HashMap::new()));
    Ok(Reply::Html(page("Overview", "/", "/api/overview", &b)))
}

// ---------------------------------------------------------------- Hosts

#[derive(Serialize)]
struct HostsPage<'a> {
    total: usize,
    page: usize,
    pages: usize,
    hosts: &'a [InventoryHost],
}

/// The addresses with a change in the last `window` seconds.
fn changed_addresses(d: &mut Data, window: i64) -> Result<HashSet<String>, StoreError> {
    Ok(d.changes_since(now() - window)?
        .into_iter()
        .map(|c| c.address)
        .collect())
}

fn csv_field(s: &str) -> String {
    // A leading = + - @ would be a formula to a spreadsheet: banners are hostile.
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut l = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    l.push_str("\r\n");
    l
}

pub fn hosts(d: &mut Data, p: &Params, fmt: Format) -> Result<Reply, PageError> {
    let f = match filter_of(p) {
        Err(PageError::BadRequest(why)) if fmt == Format::Html => {
            return Err(bad_filter_page(
                "Hosts",
                "/hosts",
                p.q.as_deref().unwrap_or(""),
                &why,
            ))
        }
        r => r?,
    };
    let changed = match f.changed {
        Some(w) => changed_addresses(d, w)?,
        None => HashSet::new(),
    };
    let mut hosts: Vec<InventoryHost> = d
        .store
        .hosts()?
        .into_iter()
        .filter(|h| f.matches_host(h, &changed))
        .collect();
    // The store gives address order; other orders are stable sorts over it.
    match p.sort.as_deref().unwrap_or("address") {
        "name" => hosts.sort_by(|a, b| a.hostnames.first().cmp(&b.hostnames.first())),
        "ports" => hosts.sort_by_key(|h| h.ports.len()),
        "seen" => hosts.sort_by_key(|h| h.last_seen),
        "os" => hosts.sort_by(|a, b| a.os.cmp(&b.os)),
        _ => {}
    }
    let desc = p.desc.as_deref() == Some("1");
    if desc {
        hosts.reverse();
    }
    if fmt == Format::Csv {
        let mut out = csv_line(&[
            "address".into(),
            "hostname".into(),
            "mac".into(),
            "vendor".into(),
            "os".into(),
            "last_seen".into(),
            "scan_id".into(),
            "open_ports".into(),
        ]);
        for h in &hosts {
            out.push_str(&csv_line(&[
                h.address.clone(),
                h.hostnames.first().cloned().unwrap_or_default(),
                h.mac.clone().unwrap_or_default(),
                h.vendor.clone().unwrap_or_default(),
                h.os.clone().unwrap_or_default(),
                html::time_text(h.last_seen),
                h.scan_id.to_string(),
                h.ports
                    .iter()
                    .map(|p| format!("{}/{} {}", p.port, p.protocol, p.service_text()))
                    .collect::<Vec<_>>()
                    .join("; "),
            ]));
        }
        return Ok(Reply::Csv(out));
    }
    let (a, b, n, pages) = paged(&hosts, p);
    let shown = &hosts[a..b];
    if fmt == Format::Json {
        return json(&HostsPage {
            total: hosts.len(),
            page: n,
            pages,
            hosts: shown,
        });
    }
    let q = p.q.clone().unwrap_or_default();
    let sort = p.sort.clone().unwrap_or_else(|| "address".into());
    let qs = format!("q={}&sort={}&desc={}&", url(&q), url(&sort), u8::from(desc));
    let head_link = |key: &str, label: &str| {
        let d = u8::from(key == sort && !desc);
        format!(
            "<a href=\"/hosts?q={}&amp;sort={key}&amp;desc={d}\">{label}</a>",
            url(&q)
        )
    };
    // The order chosen survives a new filter.
    let keep = format!(
        "<input type=\"hidden\" name=\"sort\" value=\"{}\">\
         <input type=\"hidden\" name=\"desc\" value=\"{}\">",
        E(&sort),
        u8::from(desc)
    );
    let mut body = filter_form("/hosts", &q, &keep);
    let _ = writeln!(
        body,
        "<p>{} hosts. Export: <a href=\"/api/hosts.csv?{}\">CSV</a> · \
         <a href=\"/api/hosts?{}page=all\">JSON</a></p>",
        hosts.len(),
        esc(&qs),
        esc(&qs)
    );
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|h| {
            vec![
                host_link(&h.address),
                esc(&h.hostnames.join(", ")),
                esc(h.os.as_deref().unwrap_or("")),
                esc(&ports_text(&h.ports)),
                esc(&h
                    .ports
                    .iter()
                    .filter_map(|p| p.product.as_deref())
                    .collect::<Vec<_>>()
                    .join(", ")),
                time(h.last_seen),
            ]
        })
        .collect();
    // Header cells are links: built here as HTML, not through table()'s escaping.
    let mut t = table(&[], &rows);
    let head: String = [
        ("address", "Address"),
        ("name", "Name"),
        ("os", "OS"),
        ("ports", "Open ports"),
    ]
    .iter()
    .map(|(k, l)| format!("<th>{}</th>", head_link(k, l)))
    .chain([
        "<th>Products</th>".to_string(),
        format!("<th>{}</th>", head_link("seen", "Last seen")),
    ])
    .collect();
    t = t.replacen("<tr></tr>", &format!("<tr>{head}</tr>"), 1);
    body.push_str(&t);
    body.push_str(&pager("/hosts", &qs, n, pages));
    let api = format!("/api/hosts?{qs}page={n}");
    Ok(Reply::Html(page("Hosts", "/hosts", &api, &body)))
}

// ---------------------------------------------------------------- Host

/// One event of a host's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: i64,
    pub scan_id: i64,
    pub what: &'static str,
    pub port: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Serialize)]
struct HostPage<'a> {
    address: &'a str,
    current: &'a HostSnapshot,
    /// Each listed port's scripts, keyed "22/tcp".
    port_scripts: BTreeMap<String, Vec<Script>>,
    /// The findings of its open ports (their `vulns` script results), most urgent first.
    vulns: Vec<PortFinding>,
    scans: usize,
    timeline: Vec<Event>,
}

/// When each port opened and closed and each version changed, comparing every snapshot
/// with the one before it from scans of the same targets; and when each finding appeared or
/// went away (as `changes` says: `asked` holds the scans run with `--vulns`).
pub fn timeline(history: &[HostSnapshot], asked: &HashSet<i64>) -> Vec<Event> {
    let mut last: HashMap<&str, &HostSnapshot> = HashMap::new();
    let mut out = Vec::new();
    let mut found = finding_events(history, asked);
    for snap in history {
        let ev = |what, port: Option<&PortRecord>, before, after| Event {
            time: snap.started,
            scan_id: snap.scan_id,
            what,
            port: port.map(|p| format!("{}/{}", p.port, p.protocol)),
            before,
            after,
        };
        let prev = last.insert(&snap.targets, snap);
        let Some(prev) = prev else {
            out.push(ev(
                if snap.up {
                    "first seen up"
                } else {
                    "first seen down"
                },
                None,
                None,
                Some(snap.state.clone()),
            ));
            if snap.up {
                for p in snap.ports.iter().filter(|p| p.state == "open") {
                    out.push(ev("port open", Some(p), None, Some(p.service_text())));
                }
            }
            continue;
        };
        if prev.up != snap.up {
            out.push(ev(
                if snap.up { "host up" } else { "host down" },
                None,
                Some(prev.state.clone()),
                Some(snap.state.clone()),
            ));
        }
        if prev.portset == snap.portset && prev.up == snap.up {
            continue;
        }
        let open = |s: &'_ HostSnapshot| -> BTreeMap<(u16, String), PortRecord> {
            if !s.up {
                return BTreeMap::new();
            }
            s.ports
                .iter()
                .filter(|p| p.state == "open")
                .map(|p| ((p.port, p.protocol.clone()), p.clone()))
                .collect()
        };
        let (before, after) = (open(prev), open(snap));
        for (k, p) in &after {
            match before.get(k) {
                None => out.push(ev("port opened", Some(p), None, Some(p.service_text()))),
                Some(b) if b.service_text() != p.service_text() => out.push(ev(
                    "service changed",
                    Some(p),
                    Some(b.service_text()),
                    Some(p.service_text()),
                )),
                _ => {}
            }
        }
        for (k, b) in &before {
            if !after.contains_key(k) {
                let now_state = snap
                    .ports
                    .iter()
                    .find(|p| (p.port, &p.protocol) == (k.0, &k.1))
                    .map(|p| p.state.clone());
                out.push(ev(
                    "port closed",
                    Some(b),
                    Some(b.service_text()),
                    now_state,
                ));
            }
        }
    }
    // After the port events: a stable sort by scan keeps them last within their scan.
    out.append(&mut found);
    out
}

/// The findings that appeared and went away on the host's ports open in both of two
/// snapshots of the same targets: a snapshot of a scan run with `--vulns` against the last
/// such snapshot, any other against the one before it (then only ports whose `vulns`
/// results say something count, see [`findings::difference`]).
fn finding_events(history: &[HostSnapshot], asked: &HashSet<i64>) -> Vec<Event> {
    let mut prev: HashMap<&str, &HostSnapshot> = HashMap::new();
    let mut last_asked: HashMap<&str, &HostSnapshot> = HashMap::new();
    let mut out = Vec::new();
    for snap in history {
        let did = |s: &HostSnapshot| asked.contains(&s.scan_id);
        let base = if did(snap) {
            last_asked.get(snap.targets.as_str())
        } else {
            prev.get(snap.targets.as_str())
        };
        if let Some(base) = base.filter(|b| b.up && snap.up && b.portset != snap.portset) {
            for p in snap.ports.iter().filter(|p| p.state == "open") {
                let Some(b) = base
                    .ports
                    .iter()
                    .find(|b| (b.port, &b.protocol) == (p.port, &p.protocol) && b.state == "open")
                else {
                    continue;
                };
                if b.scripts == p.scripts {
                    continue;
                }
                let Some((new, gone)) = findings::difference(b, did(base), p, did(snap)) else {
                    continue;
                };
                let ev = |what, before, after| Event {
                    time: snap.started,
                    scan_id: snap.scan_id,
                    what,
                    port: Some(format!("{}/{}", p.port, p.protocol)),
                    before,
                    after,
                };
                out.extend(
                    gone.iter()
                        .map(|f| ev("vuln gone", Some(f.summary()), None)),
                );
                out.extend(new.iter().map(|f| ev("vuln new", None, Some(f.summary()))));
            }
        }
        prev.insert(&snap.targets, snap);
        if did(snap) {
            last_asked.insert(&snap.targets, snap);
        }
    }
    out
}

pub fn host(d: &mut Data, addr: &str, as_json: bool) -> Result<Reply, PageError> {
    let history = d.store.host_history(addr)?;
    let Some(current) = history.last() else {
        return Err(PageError::NotFound(format!("no complete scan saw {addr}")));
    };
    let port_scripts = current
        .ports
        .iter()
        .filter_map(|p| {
            let v: Vec<Script> = serde_json::from_str(&p.scripts).ok()?;
            (!v.is_empty()).then(|| (format!("{}/{}", p.port, p.protocol), v))
        })
        .collect();
    let asked: HashSet<i64> = d
        .store
        .history()?
        .into_iter()
        .filter(|s| findings::args_ask_vulns(&s.args))
        .map(|s| s.id)
        .collect();
    // Newest scan first, each scan's events in their own order.
    let mut tl = timeline(&history, &asked);
    tl.sort_by_key(|e| std::cmp::Reverse((e.time, e.scan_id)));
    let mut vulns: Vec<PortFinding> = current
        .ports
        .iter()
        .filter(|p| current.up && p.state == "open")
        .flat_map(|p| {
            findings::of_port(p)
                .unwrap_or_default()
                .into_iter()
                .map(|f| PortFinding::of(p, f))
        })
        .collect();
    vulns.sort_by(|a, b| findings::priority(&a.finding, &b.finding).then(a.port.cmp(&b.port)));
    let hp = HostPage {
        address: addr,
        current,
        port_scripts,
        vulns,
        scans: history.len(),
        timeline: tl,
    };
    if as_json {
        return json(&hp);
    }
    let c = hp.current;
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<dl class=\"facts\"><dt>State</dt><dd>{}</dd><dt>Names</dt><dd>{}</dd>\
         <dt>MAC</dt><dd>{} {}</dd><dt>Last scan</dt><dd><a href=\"/scans#s{}\">#{}</a> {}</dd>\
         <dt>Seen by</dt><dd>{} complete scans</dd></dl>",
        E(&c.state),
        esc(&c.hostnames.join(", ")),
        E(c.mac.as_deref().unwrap_or("")),
        E(c.vendor.as_deref().unwrap_or("")),
        c.scan_id,
        c.scan_id,
        time(c.started),
        hp.scans
    );
    if !hp.vulns.is_empty() {
        let _ = writeln!(
            b,
            "<h2>Vulnerabilities</h2>\n<p>{} on its open ports \
             (found by a scan run with <code>--vulns</code>), most urgent first. \
             <a href=\"/vulns?q={}\">On the Vulnerabilities page</a></p>",
            count(
                hp.vulns.len(),
                "known vulnerability",
                "known vulnerabilities"
            ),
            url(&format!("net:{addr}"))
        );
        let rows: Vec<Vec<String>> = hp.vulns.iter().map(|v| finding_cells(v, false)).collect();
        b.push_str(&table(FINDING_HEAD_HOST, &rows));
    }
    b.push_str("<h2>Ports</h2>\n");
    let rows: Vec<Vec<String>> = c
        .ports
        .iter()
        .map(|p| {
            let key = format!("{}/{}", p.port, p.protocol);
            let scripts = hp
                .port_scripts
                .get(&key)
                .map(|v| scripts_html(v))
                .unwrap_or_default();
            vec![
                esc(&key),
                esc(&p.state),
                esc(p.service.as_deref().unwrap_or("")),
                esc(p.product.as_deref().unwrap_or("")),
                esc(p.version.as_deref().unwrap_or("")),
                esc(p.extrainfo.as_deref().unwrap_or("")),
                scripts,
            ]
        })
        .collect();
    b.push_str(&table(
        &[
            "Port", "State", "Service", "Product", "Version", "Extra", "Scripts",
        ],
        &rows,
    ));
    if !c.hostscripts.is_empty() {
        b.push_str("<h2>Host scripts</h2>\n");
        b.push_str(&scripts_html(&c.hostscripts));
    }
    if let Some(os) = &c.os {
        b.push_str("<h2>OS</h2>\n");
        let rows: Vec<Vec<String>> = os
            .matches
            .iter()
            .map(|m| vec![esc(&m.name), format!("{}%", m.accuracy)])
            .collect();
        if rows.is_empty() {
            let _ = writeln!(
                b,
                "<p>No match{}</p>",
                os.coarse
                    .as_deref()
                    .map(|g| format!(" (guess: {})", esc(g)))
                    .unwrap_or_default()
            );
        } else {
            b.push_str(&table(&["Match", "Accuracy"], &rows));
        }
    }
    b.push_str("<h2>Timeline</h2>\n");
    let rows: Vec<Vec<String>> = hp
        .timeline
        .iter()
        .map(|e| {
            vec![
                time(e.time),
                format!(
                    "<span class=\"k {}\">{}</span>",
                    e.what.replace(' ', "-"),
                    e.what
                ),
                esc(e.port.as_deref().unwrap_or("")),
                esc(e.before.as_deref().unwrap_or("")),
                esc(e.after.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    b.push_str(&table(&["When", "What", "Port", "Before", "After"], &rows));
    let api = format!("/api/host/{}", url(addr));
    Ok(Reply::Html(page(addr, "/hosts", &api, &b)))
}

fn scripts_html(v: &[Script]) -> String {
    v.iter()
        .map(|s| {
            format!(
                "<details><summary>{}</summary><pre>{}</pre></details>",
                E(&s.id),
                E(&s.output)
            )
        })
        .collect()
}

// ---------------------------------------------------------------- Vulnerabilities

/// A finding of a port (the Host and Vulnerabilities pages).
#[derive(Debug, Clone, Serialize)]
pub struct PortFinding {
    pub port: u16,
    pub protocol: String,
    /// "ssh OpenSSH 9.2p1": the service it was found on.
    pub service: String,
    #[serde(flatten)]
    pub finding: StoredFinding,
}

impl PortFinding {
    fn of(p: &PortRecord, finding: StoredFinding) -> PortFinding {
        PortFinding {
            port: p.port,
            protocol: p.protocol.clone(),
            service: p.service_text(),
            finding,
        }
    }
}

/// A finding of a host of the current inventory.
#[derive(Debug, Clone, Serialize)]
struct VulnRow {
    address: String,
    hostname: Option<String>,
    last_seen: i64,
    scan_id: i64,
    #[serde(flatten)]
    port: PortFinding,
}

#[derive(Serialize)]
struct VulnsPage<'a> {
    total: usize,
    /// Hosts and open services with at least one finding (after the filter).
    hosts: usize,
    services: usize,
    page: usize,
    pages: usize,
    findings: &'a [VulnRow],
}

const FINDING_HEAD_HOST: &[&str] = &[
    "Port", "Service", "CVE", "CVSS", "KEV", "EPSS", "Title", "Basis",
];

/// A finding's cells (escaped: every field is text from a feed file or a banner), with the
/// host's own first when `with_host`.
fn finding_cells(v: &PortFinding, with_host: bool) -> Vec<String> {
    let f = &v.finding;
    let cve = format!(
        "<a href=\"https://nvd.nist.gov/vuln/detail/{}\" rel=\"noreferrer\">{}</a>",
        url(&f.cve),
        E(&f.cve)
    );
    let mut cells = Vec::new();
    if !with_host {
        cells.push(esc(&format!("{}/{}", v.port, v.protocol)));
    }
    cells.extend([
        esc(&v.service),
        cve,
        format!(
            "<span class=\"sev {}\">{}</span>",
            severity_class(f.cvss),
            findings::score_text(f.cvss)
        ),
        if f.kev {
            format!(
                "<span class=\"bad\" title=\"in CISA's catalog since {}\">known exploited</span>",
                E(f.kev_date_added.as_deref().unwrap_or("?"))
            )
        } else {
            String::new()
        },
        f.epss.map(|e| format!("{e:.3}")).unwrap_or_default(),
        esc(&f.title),
        match &f.condition {
            Some(c) => format!(
                "{}<br><small>{}</small><br><small>applies {}</small>",
                esc(&f.basis),
                esc(&f.matched),
                esc(c)
            ),
            None => format!("{}<br><small>{}</small>", esc(&f.basis), esc(&f.matched)),
        },
    ]);
    cells
}

/// "1 finding", "3 findings".
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The CSS class of a score: CVSS v3's bands.
fn severity_class(cvss: Option<f64>) -> &'static str {
    match cvss {
        Some(c) if c >= 9.0 => "critical",
        Some(c) if c >= 7.0 => "high",
        Some(c) if c >= 4.0 => "medium",
        Some(_) => "low",
        None => "none",
    }
}

/// The findings of the current inventory: every open port's stored `vulns` result, most
/// urgent first (known exploited, EPSS, CVSS), then by address and port.
pub fn vulns(d: &mut Data, p: &Params, fmt: Format) -> Result<Reply, PageError> {
    let f = match filter_of(p) {
        Err(PageError::BadRequest(why)) if fmt == Format::Html => {
            let q = p.q.as_deref().unwrap_or("");
            return Err(bad_filter_page("Vulnerabilities", "/vulns", q, &why));
        }
        r => r?,
    };
    let changed = match f.changed {
        Some(w) => changed_addresses(d, w)?,
        None => HashSet::new(),
    };
    let hosts = d.store.hosts()?;
    let mut rows = Vec::new();
    for h in &hosts {
        for port in &h.ports {
            let Some(found) = findings::of_port(port) else {
                continue;
            };
            for fd in found {
                if !f.matches_finding(h, port, &fd, &changed) {
                    continue;
                }
                rows.push(VulnRow {
                    address: h.address.clone(),
                    hostname: h.hostnames.first().cloned(),
                    last_seen: h.last_seen,
                    scan_id: h.scan_id,
                    port: PortFinding::of(port, fd),
                });
            }
        }
    }
    // The store gives address order; a stable sort keeps it within equal findings.
    rows.sort_by(|a, b| {
        findings::priority(&a.port.finding, &b.port.finding)
            .then_with(|| (a.port.port, &a.port.protocol).cmp(&(b.port.port, &b.port.protocol)))
    });
    let affected: HashSet<&str> = rows.iter().map(|r| r.address.as_str()).collect();
    let services: HashSet<(&str, u16, &str)> = rows
        .iter()
        .map(|r| (r.address.as_str(), r.port.port, r.port.protocol.as_str()))
        .collect();
    if fmt == Format::Csv {
        let mut out = csv_line(
            &[
                "address",
                "hostname",
                "port",
                "service",
                "cve",
                "cvss",
                "severity",
                "kev",
                "kev_date_added",
                "epss",
                "state",
                "title",
                "basis",
                "matched",
                "condition",
                "last_seen",
                "scan_id",
            ]
            .map(String::from),
        );
        for r in &rows {
            let v = &r.port;
            let fd = &v.finding;
            out.push_str(&csv_line(&[
                r.address.clone(),
                r.hostname.clone().unwrap_or_default(),
                format!("{}/{}", v.port, v.protocol),
                v.service.clone(),
                fd.cve.clone(),
                findings::score_text(fd.cvss),
                fd.severity.clone().unwrap_or_default(),
                if fd.kev { "yes" } else { "no" }.into(),
                fd.kev_date_added.clone().unwrap_or_default(),
                fd.epss.map(|e| format!("{e:.5}")).unwrap_or_default(),
                fd.state.clone(),
                fd.title.clone(),
                fd.basis.clone(),
                fd.matched.clone(),
                fd.condition.clone().unwrap_or_default(),
                html::time_text(r.last_seen),
                r.scan_id.to_string(),
            ]));
        }
        return Ok(Reply::Csv(out));
    }
    let (a, b, n, pages) = paged(&rows, p);
    if fmt == Format::Json {
        return json(&VulnsPage {
            total: rows.len(),
            hosts: affected.len(),
            services: services.len(),
            page: n,
            pages,
            findings: &rows[a..b],
        });
    }
    let q = p.q.clone().unwrap_or_default();
    let qs = format!("q={}&", url(&q));
    let mut body = filter_form("/vulns", &q, "");
    let kev = rows.iter().filter(|r| r.port.finding.kev).count();
    let _ = writeln!(
        body,
        "<p>{} ({kev} known exploited) on {} of {}, most urgent \
         first: known exploited, then EPSS, then CVSS. Findings are those recorded by scans \
         run with <code>--vulns</code> (docs/vulns.md). Export: \
         <a href=\"/api/vulns.csv?{}\">CSV</a> · <a href=\"/api/vulns?{}page=all\">JSON</a></p>",
        count(rows.len(), "finding", "findings"),
        count(services.len(), "service", "services"),
        count(affected.len(), "host", "hosts"),
        esc(&qs),
        esc(&qs)
    );
    let cells: Vec<Vec<String>> = rows[a..b]
        .iter()
        .map(|r| {
            let mut c = vec![
                host_link(&r.address),
                esc(&format!("{}/{}", r.port.port, r.port.protocol)),
            ];
            c.extend(finding_cells(&r.port, true));
            c
        })
        .collect();
    body.push_str(&table(
        &[
            "Host", "Port", "Service", "CVE", "CVSS", "KEV", "EPSS", "Title", "Basis",
        ],
        &cells,
    ));
    body.push_str(&pager("/vulns", &qs, n, pages));
    let api = format!("/api/vulns?{qs}page={n}");
    Ok(Reply::Html(page("Vulnerabilities", "/vulns", &api, &body)))
}

// ---------------------------------------------------------------- Changes

#[derive(Serialize)]
struct ChangesPage<'a> {
    since: i64,
    total: usize,
    page: usize,
    pages: usize,
    changes: &'a [Change],
}

pub fn changes(d: &mut Data, p: &Params, fmt: Format) -> Result<Reply, PageError> {
    let f = match filter_of(p) {
        Err(PageError::BadRequest(why)) if fmt == Format::Html => {
            let q = p.q.as_deref().unwrap_or("");
            return Err(bad_filter_page("Changes", "/changes", q, &why));
        }
        r => r?,
    };
    let since_text = p.since.clone().unwrap_or_else(|| "7d".into());
    let window = match f.changed {
        Some(w) => w,
        None => parse_age(&since_text)
            .ok_or_else(|| PageError::BadRequest(format!("since: {since_text:?} is not an age")))?,
    };
    let since = now().saturating_sub(window);
    let mut all = d.changes_since(since)?;
    let needs_os = f
        .terms
        .iter()
        .any(|t| matches!(t.test, crate::filter::Test::Os(_)));
    let os: HashMap<String, String> = if needs_os {
        d.store
            .hosts()?
            .into_iter()
            .filter_map(|h| Some((h.address, h.os?)))
            .collect()
    } else {
        HashMap::new()
    };
    all.retain(|c| f.matches_change(c, |a| os.get(a).map(String::as_str)));
    // Newest first: a feed.
    all.reverse();
    if fmt == Format::Csv {
        let mut out = csv_line(&[
            "first_seen".into(),
            "address".into(),
            "change".into(),
            "port".into(),
            "before".into(),
            "after".into(),
            "scan_id".into(),
            "previous_scan_id".into(),
        ]);
        for c in &all {
            out.push_str(&csv_line(&[
                html::time_text(c.first_seen),
                c.address.clone(),
                c.kind.as_str().into(),
                port_of(c),
                c.before.clone().unwrap_or_default(),
                c.after.clone().unwrap_or_default(),
                c.scan_id.to_string(),
                c.previous_scan_id.to_string(),
            ]));
        }
        return Ok(Reply::Csv(out));
    }
    let (a, b, n, pages) = paged(&all, p);
    if fmt == Format::Json {
        return json(&ChangesPage {
            since,
            total: all.len(),
            page: n,
            pages,
            changes: &all[a..b],
        });
    }
    let q = p.q.clone().unwrap_or_default();
    let qs = format!("q={}&since={}&", url(&q), url(&since_text));
    let extra = format!(
        "<label> since <input name=\"since\" value=\"{}\" size=\"5\"></label>",
        E(&since_text)
    );
    let mut body = filter_form("/changes", &q, &extra);
    let _ = writeln!(
        body,
        "<p>{} changes since {}. Export: <a href=\"/api/changes.csv?{}\">CSV</a> · \
         <a href=\"/api/changes?{}page=all\">JSON</a></p>",
        all.len(),
        time(since),
        esc(&qs),
        esc(&qs)
    );
    let rows: Vec<Vec<String>> = all[a..b]
        .iter()
        .map(|c| {
            vec![
                time(c.first_seen),
                host_link(&c.address),
                format!(
                    "<span class=\"k {}\">{}</span>",
                    c.kind.as_str().replace(' ', "-"),
                    c.kind.as_str()
                ),
                esc(&port_of(c)),
                esc(c.before.as_deref().unwrap_or("")),
                esc(c.after.as_deref().unwrap_or("")),
                format!(
                    "<a href=\"/diff?a={}&amp;b={}\">diff</a>",
                    c.previous_scan_id, c.scan_id
                ),
            ]
        })
        .collect();
    body.push_str(&table(
        &[
            "First seen",
            "Host",
            "Change",
            "Port",
            "Before",
            "After",
            "Scans",
        ],
        &rows,
    ));
    body.push_str(&pager("/changes", &qs, n, pages));
    let api = format!("/api/changes?{qs}page={n}");
    Ok(Reply::Html(page("Changes", "/changes", &api, &body)))
}

fn port_of(c: &Change) -> String {
    match (c.port, &c.protocol) {
        (Some(p), Some(proto)) => format!("{p}/{proto}"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------- Scans

#[derive(Serialize)]
struct ScanRow<'a> {
    #[serde(flatten)]
    scan: &'a ScanRecord,
    /// The complete scan of the same targets before it (what a diff compares with).
    previous_of_same_targets: Option<i64>,
}

/// A scan's state: complete or not; for a sharded scan, its part or its union, and its
/// name (`--scan-id`, or the derived identity).
fn scan_state(s: &ScanRecord) -> String {
    let name = match (&s.scan_key, s.round) {
        (Some(k), Some(r)) => format!(" <small>{} round {r}</small>", E(k)),
        (Some(k), None) => format!(" <small>{}</small>", E(k)),
        _ => String::new(),
    };
    let state = match (s.part, s.parts) {
        (Some(k), Some(n)) if s.part_done => {
            format!("<span class=\"ok\">part {k}/{n} done</span>")
        }
        (Some(k), Some(n)) if s.finished.is_none() => {
            format!("<span class=\"bad\">part {k}/{n} running</span>")
        }
        (Some(k), Some(n)) => format!("<span class=\"bad\">part {k}/{n} interrupted</span>"),
        (None, Some(n)) if s.complete => {
            format!("<span class=\"ok\">complete</span> ({n} parts)")
        }
        _ if s.complete => "<span class=\"ok\">complete</span>".into(),
        _ => "<span class=\"bad\">incomplete</span>".into(),
    };
    state + &name
}

/// The sharded scans, newest first: each with its parts' states and whether it counts yet.
fn sharded_table(rounds: &[ShardedScan]) -> String {
    let rows: Vec<Vec<String>> = rounds
        .iter()
        .rev()
        .map(|r| {
            let status = match r.union_id {
                Some(id) => {
                    format!("<span class=\"ok\">complete</span> as <a href=\"#s{id}\">#{id}</a>")
                }
                None => format!(
                    "<span class=\"bad\">{} of {} parts complete, not counted yet</span>",
                    r.parts_complete(),
                    r.parts
                ),
            };
            let parts: Vec<String> = r
                .part_list
                .iter()
                .map(|p| {
                    let links: Vec<String> = p
                        .scans
                        .iter()
                        .map(|i| format!("<a href=\"#s{i}\">#{i}</a>"))
                        .collect();
                    let class = if p.state == PartState::Complete {
                        "ok"
                    } else {
                        "bad"
                    };
                    format!(
                        "{}: <span class=\"{class}\">{}</span> {}",
                        p.part,
                        p.state.as_str(),
                        links.join(" ")
                    )
                })
                .collect();
            vec![
                esc(&r.scan_key),
                r.round.to_string(),
                time(r.started),
                esc(&r.targets),
                status,
                parts.join("<br>"),
            ]
        })
        .collect();
    table(
        &["Scan", "Round", "Started", "Targets", "State", "Parts"],
        &rows,
    )
}

fn scan_table(scans: &[ScanRecord], prev: &HashMap<i64, i64>) -> String {
    let rows: Vec<Vec<String>> = scans
        .iter()
        .map(|s| {
            vec![
                format!("<span id=\"s{}\">{}</span>", s.id, s.id),
                time(s.started),
                scan_state(s),
                format!("{}/{}", s.hosts_up, s.hosts_total),
                esc(&s.source),
                esc(&s.targets),
                format!("<code>{}</code>", E(&s.args)),
                prev.get(&s.id)
                    .map(|p| format!("<a href=\"/diff?a={p}&amp;b={}\">diff with #{p}</a>", s.id))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "#", "Started", "State", "Up/total", "Source", "Targets", "Command", "Diff",
        ],
        &rows,
    )
}

pub fn scans(d: &mut Data, p: &Params, as_json: bool) -> Result<Reply, PageError> {
    let history = d.store.history()?;
    let rounds = d.store.sharded_scans()?;
    let mut last: HashMap<&str, i64> = HashMap::new();
    let mut prev = HashMap::new();
    for sc in history.iter().filter(|s| s.complete) {
        if let Some(p) = last.insert(&sc.targets, sc.id) {
            prev.insert(sc.id, p);
        }
    }
    let mut newest: Vec<ScanRecord> = history.iter().rev().cloned().collect();
    let (a, b, n, pages) = paged(&newest, p);
    newest = newest[a..b].to_vec();
    if as_json {
        let rows: Vec<ScanRow> = newest
            .iter()
            .map(|s| ScanRow {
                scan: s,
                previous_of_same_targets: prev.get(&s.id).copied(),
            })
            .collect();
        return json(&serde_json::json!({
            "total": history.len(), "page": n, "pages": pages, "scans": rows,
            "sharded": rounds,
        }));
    }
    let mut body = String::from(
        "<form class=\"filter\" method=\"get\" action=\"/diff\">Compare scan \
         <input name=\"a\" size=\"6\" inputmode=\"numeric\"> with scan \
         <input name=\"b\" size=\"6\" inputmode=\"numeric\"> <button>Diff</button></form>\n",
    );
    let _ = writeln!(
        body,
        "<p>{} scans, {} complete.</p>",
        history.len(),
        history.iter().filter(|s| s.complete).count()
    );
    if !rounds.is_empty() {
        body.push_str(
            "<h2>Sharded scans</h2>\n<p>A scan run in parts (<code>--shard K/N</code>) counts \
             once every part is complete, as one scan.</p>\n",
        );
        body.push_str(&sharded_table(&rounds));
        body.push_str("<h2>All scans</h2>\n");
    }
    body.push_str(&scan_table(&newest, &prev));
    body.push_str(&pager("/scans", "", n, pages));
    let api = format!("/api/scans?page={n}");
    Ok(Reply::Html(page("Scans", "/scans", &api, &body)))
}

pub fn diff(d: &mut Data, p: &Params, as_json: bool) -> Result<Reply, PageError> {
    let (Some(a), Some(b)) = (p.a, p.b) else {
        return Err(PageError::BadRequest(
            "give two scans: /diff?a=ID&b=ID".into(),
        ));
    };
    let load = |id| match d.store.load_run(ScanId(id)) {
        Err(StoreError::NoSuchScan(_)) => Err(PageError::NotFound(format!("no scan {id}"))),
        r => r.map_err(PageError::from),
    };
    let (ra, rb) = (load(a)?, load(b)?);
    let d = diff_runs(&ra, &rb, DiffOptions::default());
    if as_json {
        return Ok(Reply::Json(d.to_json()));
    }
    let body = format!(
        "<p>Scan <a href=\"/scans#s{a}\">#{a}</a> against scan <a href=\"/scans#s{b}\">#{b}</a>: \
         {} differences, as Ndiff shows them.</p>\n<pre class=\"diff\">{}</pre>\n",
        d.changes(),
        E(&d.to_text())
    );
    let api = format!("/api/diff?a={a}&b={b}");
    Ok(Reply::Html(page(
        &format!("Diff #{a} → #{b}"),
        "/scans",
        &api,
        &body,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn pages_are_clamped() {
        let items: Vec<u32> = (0..250).collect();
        let p = |page: &str| Params {
            page: Some(page.into()),
            ..Params::default()
        };
        assert_eq!(paged(&items, &p("1")), (0, 100, 1, 3));
        assert_eq!(paged(&items, &p("3")), (200, 250, 3, 3));
        assert_eq!(paged(&items, &p("99")), (200, 250, 3, 3));
        assert_eq!(paged(&items, &p("x")), (0, 100, 1, 3));
        assert_eq!(paged(&items, &p("all")), (0, 250, 1, 1));
        assert_eq!(paged::<u32>(&[], &p("1")), (0, 0, 1, 1));
    }

    /// A store with one sharded scan of two parts, `done` of them complete; the name is
    /// hostile HTML (a --scan-id is the user's text).
    fn sharded_store(dir: &std::path::Path, done: u32) -> Data {
        let path = dir.join("h.db");
        let mut store = Store::open(&path).unwrap();
        for k in 1..=2 {
            let meta = portolan_store::ScanMeta {
                started: 100,
                args: format!("portolan -sS --shard {k}/2 198.18.0.0/24"),
                targets: "198.18.0.0/24".into(),
                source: portolan_store::Source::Scan,
                file: None,
                scanner: "portolan".into(),
                version: "0".into(),
            };
            let part = portolan_store::ShardPart {
                scan_key: "<b>night</b>".into(),
                part: k,
                parts: 2,
            };
            let id = store.begin_part(&meta, &part).unwrap();
            if k <= done {
                let stats = portolan_store::FinishStats {
                    finished: 200,
                    hosts_up: 0,
                    hosts_total: 256,
                };
                store.finish_scan(id, stats).unwrap();
            }
        }
        Data::new(Store::open_read_only(&path).unwrap())
    }

    fn text(r: Reply) -> String {
        match r {
            Reply::Html(s) | Reply::Json(s) | Reply::Csv(s) => s,
        }
    }

    #[test]
    fn the_scans_page_shows_parts_and_completeness() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = sharded_store(dir.path(), 1);
        let html = text(scans(&mut d, &Params::default(), false).unwrap());
        assert!(
            html.contains("1 of 2 parts complete, not counted yet"),
            "{html}"
        );
        assert!(html.contains("part 2/2 running"), "{html}");
        assert!(!html.contains("<b>night"), "the name is escaped: {html}");
        let api: serde_json::Value =
            serde_json::from_str(&text(scans(&mut d, &Params::default(), true).unwrap())).unwrap();
        let round = &api["sharded"][0];
        assert_eq!(round["union_id"], serde_json::Value::Null, "{api}");
        assert_eq!(round["part_list"][0]["state"], "complete", "{api}");
        assert_eq!(round["part_list"][1]["state"], "running", "{api}");
        assert_eq!(api["scans"][0]["part"], 2, "{api}");

        let dir = tempfile::tempdir().unwrap();
        let mut d = sharded_store(dir.path(), 2);
        let api: serde_json::Value =
            serde_json::from_str(&text(scans(&mut d, &Params::default(), true).unwrap())).unwrap();
        let union = api["sharded"][0]["union_id"].as_i64().expect("a union");
        let row = api["scans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == union)
            .expect("the union is listed");
        assert_eq!(row["complete"], true, "{api}");
        let html = text(scans(&mut d, &Params::default(), false).unwrap());
        assert!(html.contains("(2 parts)"), "{html}");
    }
}
