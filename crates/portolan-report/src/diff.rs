//! Comparing two scans as Ndiff (Nmap's `ndiff`) does, with its text and XML output, and a
//! JSON form of our own.
//!
//! Ndiff's rules, reimplemented from its documented behaviour and output:
//! - Hosts pair by an id: the lowest address (IPv4 < IPv6 < MAC, then by text) padded to 40
//!   characters, followed by the lowest hostname. Hosts with different ids are never paired.
//! - A host changes when its state, its set of addresses or hostnames, its "Not shown" counts,
//!   one of its listed ports, its OS matches (the list of osmatch names, compared as a
//!   sequence) or its host script results change. A port changes when its state, its service
//!   (name, product, version, extrainfo: not the tunnel) or its script output changes.
//! - Script results are compared by id and output text (not their structured elements), in a
//!   merge of the two lists by id: port and host scripts sorted, pre- and post-scan scripts
//!   in file order, as Ndiff keeps them.
//! - A port whose state is collapsed into "Not shown" on both sides is left out.
//! - The scan headers are shown when they differ, but do not make the scans different; nor
//!   do pre- and post-scan script results, which are shown but not counted (Ndiff's cost is
//!   the sum over hosts).
//!
//! Where Ndiff 7.93 fails under Python 3 (two scripts on one port or host, a port whose only
//! change is its script output, `-v` on files with scripts), this module does what Ndiff
//! evidently means to do instead: see docs/diff.md.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::timefmt::Zone;
use portolan_model::{AddrType, Host, ScanRun, Script};

/// What to compare and show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Also show hosts and ports that did not change (Ndiff's `-v`).
    pub verbose: bool,
}

/// An address as Ndiff orders them: IPv4, then IPv6, then MAC; by text within a kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Addr {
    rank: u8,
    addr: String,
}

impl Addr {
    fn kind(&self) -> &'static str {
        match self.rank {
            0 => "ipv4",
            1 => "ipv6",
            _ => "mac",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Svc {
    /// Called "service" in our JSON, beside the port's state.
    #[serde(rename = "service", skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extrainfo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<String>,
}

/// Ndiff's service equality leaves the tunnel out.
impl PartialEq for Svc {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
            && self.product == o.product
            && self.version == o.version
            && self.extrainfo == o.extrainfo
    }
}

impl Svc {
    /// The SERVICE column: `ssl/http`.
    fn name_string(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.tunnel, &self.name]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// The VERSION column: `product version (extrainfo)`.
    fn version_string(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.product.clone());
        parts.extend(self.version.clone());
        parts.extend(self.extrainfo.as_ref().map(|e| format!("({e})")));
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    fn attrs(&self) -> Vec<(&'static str, String)> {
        [
            ("name", &self.name),
            ("product", &self.product),
            ("version", &self.version),
            ("extrainfo", &self.extrainfo),
            ("tunnel", &self.tunnel),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct ScriptOut {
    id: String,
    output: String,
}

impl ScriptOut {
    /// The lines Ndiff shows: `|  id: first`, ..., `|_ last`.
    fn lines(&self) -> Vec<String> {
        let mut lines = py_splitlines(&self.output);
        if let Some(first) = lines.first_mut() {
            *first = format!("{}: {first}", self.id);
        }
        let n = lines.len();
        lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == n {
                    format!("|_ {l}")
                } else {
                    format!("|  {l}")
                }
            })
            .collect()
    }

    fn elem(&self) -> El {
        El::new("script")
            .attr("id", &self.id)
            .attr("output", &self.output)
    }
}

type Spec = (u16, String);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PortView {
    spec: Spec,
    /// None: not listed in that scan.
    state: Option<String>,
    service: Svc,
    scripts: Vec<ScriptOut>,
}

impl PortView {
    fn missing(spec: &Spec) -> Self {
        PortView {
            spec: spec.clone(),
            state: None,
            service: Svc::default(),
            scripts: Vec::new(),
        }
    }

    fn spec_string(&self) -> String {
        format!("{}/{}", self.spec.0, self.spec.1)
    }

    fn columns(&self) -> [Option<String>; 4] {
        [
            Some(self.spec_string()),
            Some(self.state.clone().unwrap_or_else(|| "unknown".into())),
            self.service.name_string(),
            self.service.version_string(),
        ]
    }

    fn elem(&self) -> El {
        let mut e = El::new("port")
            .attr("portid", &self.spec.0.to_string())
            .attr("protocol", &self.spec.1);
        if let Some(s) = &self.state {
            e.push(El::new("state").attr("state", s));
        }
        e.extend(service_frag(&self.service));
        for s in &self.scripts {
            e.push(s.elem());
        }
        e
    }
}

fn service_frag(s: &Svc) -> Vec<El> {
    let attrs = s.attrs();
    if attrs.is_empty() {
        return Vec::new();
    }
    let mut e = El::new("service");
    e.attrs = attrs;
    vec![e]
}

/// One host as Ndiff sees it. `state == None` is the empty stand-in for a host that one
/// of the scans does not have. A streamed diff keeps it in a temporary file as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct HostView {
    state: Option<String>,
    addresses: Vec<Addr>,
    hostnames: Vec<String>,
    #[serde(with = "port_list")]
    ports: BTreeMap<Spec, PortView>,
    /// (state, count) in first-seen order; a repeated state keeps its place, takes the count.
    extraports: Vec<(String, u32)>,
    /// osmatch names, in file order.
    os: Vec<String>,
    /// Host script results, sorted by (id, output).
    scripts: Vec<ScriptOut>,
}

/// Serializes a host's ports as a list (JSON keys must be strings; each port holds its spec).
mod port_list {
    use super::{PortView, Spec};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        ports: &BTreeMap<Spec, PortView>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(ports.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Spec, PortView>, D::Error> {
        let list = Vec::<PortView>::deserialize(d)?;
        Ok(list.into_iter().map(|p| (p.spec.clone(), p)).collect())
    }
}

/// What pairs hosts, and orders them (Ndiff's host id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum HostId {
    Named(String),
    /// A host with neither address nor name: never paired (sorted last, in file order).
    Anonymous(usize),
}

impl HostView {
    fn from_model(h: &Host) -> Self {
        let mut v = HostView {
            state: Some(h.status.state.as_str().to_string()),
            ..HostView::default()
        };
        for a in &h.addresses {
            let addr = Addr {
                rank: match a.addrtype {
                    AddrType::Ipv4 => 0,
                    AddrType::Ipv6 => 1,
                    AddrType::Mac => 2,
                },
                addr: a.addr.clone(),
            };
            if !v.addresses.contains(&addr) {
                v.addresses.push(addr);
            }
        }
        for n in &h.hostnames {
            if !v.hostnames.contains(&n.name) {
                v.hostnames.push(n.name.clone());
            }
        }
        for e in &h.extraports {
            let state = e.state.as_str().to_string();
            match v.extraports.iter_mut().find(|(s, _)| *s == state) {
                Some(slot) => slot.1 = e.count,
                None => v.extraports.push((state, e.count)),
            }
        }
        if let Some(os) = &h.os {
            v.os = os.matches.iter().map(|m| m.name.clone()).collect();
        }
        v.scripts = script_outs(&h.hostscripts);
        v.scripts.sort();
        for p in &h.ports {
            let spec = (p.portid, p.protocol.as_str().to_string());
            let mut scripts = script_outs(&p.scripts);
            scripts.sort();
            let service = p
                .service
                .as_ref()
                .map(|s| Svc {
                    name: Some(s.name.clone()),
                    product: s.product.clone(),
                    version: s.version.clone(),
                    extrainfo: s.extrainfo.clone(),
                    tunnel: s.tunnel.clone(),
                })
                .unwrap_or_default();
            v.ports.insert(
                spec.clone(),
                PortView {
                    spec,
                    state: Some(p.state.as_str().to_string()),
                    service,
                    scripts,
                },
            );
        }
        v
    }

    fn sorted_addresses(&self) -> Vec<&Addr> {
        let mut a: Vec<&Addr> = self.addresses.iter().collect();
        a.sort();
        a
    }

    fn sorted_hostnames(&self) -> Vec<&String> {
        let mut n: Vec<&String> = self.hostnames.iter().collect();
        n.sort();
        n
    }

    fn id(&self, index: usize) -> HostId {
        let addr = self.sorted_addresses().first().map(|a| pad(&a.addr, 40));
        match (addr, self.sorted_hostnames().first()) {
            (a, Some(name)) => HostId::Named(a.unwrap_or_else(|| " ".repeat(40)) + name),
            (Some(a), None) => HostId::Named(a),
            (None, None) => HostId::Anonymous(index),
        }
    }

    /// `name1, name2 (addr1, addr2)`.
    fn format_name(&self) -> String {
        let addrs: Vec<&str> = self
            .sorted_addresses()
            .iter()
            .map(|a| a.addr.as_str())
            .collect();
        let addrs = addrs.join(", ");
        let names: Vec<&str> = self.sorted_hostnames().iter().map(|n| n.as_str()).collect();
        let names = names.join(", ");
        match (names.is_empty(), addrs.is_empty()) {
            (false, false) => format!("{names} ({addrs})"),
            (false, true) => names,
            (true, false) => addrs,
            (true, true) => "<no name>".into(),
        }
    }

    fn is_extraports(&self, state: Option<&str>) -> bool {
        match state {
            None => true,
            Some(s) => self.extraports.iter().any(|(e, _)| e == s),
        }
    }

    /// `995 closed ports, 3 filtered ports`: most numerous first.
    fn extraports_string(&self) -> String {
        let mut l: Vec<(u32, &str)> = self
            .extraports
            .iter()
            .map(|(s, c)| (*c, s.as_str()))
            .collect();
        l.sort_by(|a, b| b.cmp(a));
        l.iter()
            .map(|(c, s)| format!("{c} {s} ports"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn extraports_equal_as_sets(&self, o: &HostView) -> bool {
        self.extraports.len() == o.extraports.len()
            && self.extraports.iter().all(|e| o.extraports.contains(e))
    }

    fn status_frag(&self) -> Vec<El> {
        self.state
            .iter()
            .map(|s| El::new("status").attr("state", s))
            .collect()
    }

    fn extraports_frag(&self) -> Vec<El> {
        self.extraports
            .iter()
            .map(|(s, c)| {
                El::new("extraports")
                    .attr("state", s)
                    .attr("count", &c.to_string())
            })
            .collect()
    }

    /// The whole host, for a host only one scan has.
    fn elem(&self) -> El {
        let mut e = El::new("host");
        e.extend(self.status_frag());
        for a in &self.addresses {
            e.push(addr_elem(a));
        }
        if !self.hostnames.is_empty() {
            let mut hn = El::new("hostnames");
            for n in &self.hostnames {
                hn.push(hostname_elem(n));
            }
            e.push(hn);
        }
        let mut ports = El::new("ports");
        ports.extend(self.extraports_frag());
        for p in self.ports.values() {
            if !self.is_extraports(p.state.as_deref()) {
                ports.push(p.elem());
            }
        }
        if !ports.kids.is_empty() {
            e.push(ports);
        }
        if !self.os.is_empty() {
            e.push(El::new("os").children(self.os.iter().map(|n| osmatch_elem(n)).collect()));
        }
        if !self.scripts.is_empty() {
            e.push(
                El::new("hostscript").children(self.scripts.iter().map(ScriptOut::elem).collect()),
            );
        }
        e
    }
}

fn script_outs(scripts: &[Script]) -> Vec<ScriptOut> {
    scripts
        .iter()
        .map(|s| ScriptOut {
            id: s.id.clone(),
            output: s.output.clone(),
        })
        .collect()
}

fn osmatch_elem(name: &str) -> El {
    El::new("osmatch").attr("name", name)
}

/// Ndiff's print_script_result_diffs_text: a titled block of script lines, when any.
fn script_diffs_text(
    out: &mut String,
    title: &str,
    a: &[ScriptOut],
    b: &[ScriptOut],
    diffs: &[ScriptDiff],
    verbose: bool,
) {
    let mut table = Table::default();
    for d in diffs {
        d.append_to_table(&mut table, verbose);
    }
    if table.rows.is_empty() {
        return;
    }
    let mark = if b.is_empty() {
        '-'
    } else if a.is_empty() {
        '+'
    } else {
        ' '
    };
    let _ = writeln!(out, "\n{mark}{title}:");
    out.push_str(&table.render());
    out.push('\n');
}

/// Ndiff's script_result_diffs_to_dom_fragment: `<a><x>..</x></a>` when only the first scan
/// has results, `<b>..` when only the second, else `<x>` with one entry per difference.
fn script_diffs_elem(
    name: &'static str,
    a: &[ScriptOut],
    b: &[ScriptOut],
    diffs: &[ScriptDiff],
) -> Option<El> {
    let all = |v: &[ScriptOut]| El::new(name).children(v.iter().map(ScriptOut::elem).collect());
    match (a.is_empty(), b.is_empty()) {
        (true, true) => None,
        (false, true) => Some(El::new("a").child(all(a))),
        (true, false) => Some(El::new("b").child(all(b))),
        (false, false) => {
            Some(El::new(name).children(diffs.iter().flat_map(ScriptDiff::frag).collect()))
        }
    }
}

fn sorted(mut v: Vec<&Addr>) -> Vec<&Addr> {
    v.sort();
    v
}

fn names_sorted(mut v: Vec<&String>) -> Vec<El> {
    v.sort();
    v.into_iter().map(|n| hostname_elem(n)).collect()
}

fn addr_elem(a: &Addr) -> El {
    El::new("address")
        .attr("addr", &a.addr)
        .attr("addrtype", a.kind())
}

fn hostname_elem(n: &str) -> El {
    El::new("hostname").attr("name", n)
}

/// The scan-level facts Ndiff shows and compares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    pub scanner: Option<String>,
    pub version: Option<String>,
    pub args: Option<String>,
    /// Epoch seconds.
    pub start: Option<i64>,
    /// Epoch seconds (runstats/finished@time).
    pub end: Option<i64>,
}

impl RunInfo {
    fn from_model(r: &ScanRun) -> Self {
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        RunInfo {
            scanner: nonempty(&r.scanner),
            version: nonempty(&r.version),
            args: nonempty(&r.args),
            // The reader makes a missing start 0; no real scan started in 1970.
            start: (r.start != 0).then_some(r.start),
            end: r.runstats.as_ref().map(|s| s.finished),
        }
    }

    fn start_string(&self) -> Option<String> {
        self.start
            .map(|s| Zone::Local.format(s, "%a %b %d %H:%M:%S %Y"))
    }

    /// `Nmap 7.93 scan initiated Sun Nov 22 10:40:27 2026 as: nmap ...`
    fn banner(&self) -> String {
        let mut parts = vec![match self.scanner.as_deref() {
            None | Some("nmap") => "Nmap".to_string(),
            Some(s) => s.to_string(),
        }];
        parts.extend(self.version.clone());
        parts.push("scan".into());
        if let Some(s) = self.start_string() {
            parts.push(format!("initiated {s}"));
        }
        if let Some(a) = &self.args {
            parts.push(format!("as: {a}"));
        }
        parts.join(" ")
    }

    fn elem(&self) -> El {
        let mut e = El::new("nmaprun");
        if let Some(s) = &self.scanner {
            e = e.attr("scanner", s);
        }
        if let Some(a) = &self.args {
            e = e.attr("args", a);
        }
        if let (Some(s), Some(text)) = (self.start, self.start_string()) {
            e = e.attr("start", &s.to_string()).attr("startstr", &text);
        }
        if let Some(v) = &self.version {
            e = e.attr("version", v);
        }
        e
    }
}

#[derive(Debug, Clone)]
struct ScriptDiff {
    a: Option<ScriptOut>,
    b: Option<ScriptOut>,
}

impl ScriptDiff {
    fn changed(&self) -> bool {
        self.a != self.b
    }

    /// Merges two lists sorted by id; equal results are kept only when verbose.
    fn lists(a: &[ScriptOut], b: &[ScriptOut], verbose: bool) -> Vec<ScriptDiff> {
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < a.len() && j < b.len() {
            match a[i].id.cmp(&b[j].id) {
                std::cmp::Ordering::Less => {
                    out.push(ScriptDiff {
                        a: Some(a[i].clone()),
                        b: None,
                    });
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(ScriptDiff {
                        a: None,
                        b: Some(b[j].clone()),
                    });
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if a[i].output != b[j].output || verbose {
                        out.push(ScriptDiff {
                            a: Some(a[i].clone()),
                            b: Some(b[j].clone()),
                        });
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend(a[i..].iter().map(|s| ScriptDiff {
            a: Some(s.clone()),
            b: None,
        }));
        out.extend(b[j..].iter().map(|s| ScriptDiff {
            a: None,
            b: Some(s.clone()),
        }));
        out
    }

    fn append_to_table(&self, table: &mut Table, verbose: bool) {
        let a = self.a.as_ref().map(ScriptOut::lines).unwrap_or_default();
        let b = self.b.as_ref().map(ScriptOut::lines).unwrap_or_default();
        if a == b && !verbose {
            return;
        }
        for op in opcodes(&a, &b) {
            match op.tag {
                Tag::Equal => {
                    for l in &a[op.a.clone()] {
                        table.raw(format!(" {l}"));
                    }
                }
                Tag::Replace | Tag::Delete | Tag::Insert => {
                    for l in &a[op.a.clone()] {
                        table.raw(format!("-{l}"));
                    }
                    for l in &b[op.b.clone()] {
                        table.raw(format!("+{l}"));
                    }
                }
            }
        }
    }

    fn frag(&self) -> Vec<El> {
        match (&self.a, &self.b) {
            (Some(a), Some(b)) if a == b => vec![a.elem()],
            (a, b) => {
                let mut out = Vec::new();
                if let Some(a) = a {
                    out.push(El::new("a").child(a.elem()));
                }
                if let Some(b) = b {
                    out.push(El::new("b").child(b.elem()));
                }
                out
            }
        }
    }
}

#[derive(Debug, Clone)]
struct PortDiff {
    a: PortView,
    b: PortView,
    /// The port as listed in the first scan, else the second.
    a_listed: bool,
    scripts: Vec<ScriptDiff>,
    /// Ndiff's cost (which, when verbose, counts unchanged script results too).
    cost: usize,
    /// Real differences.
    changes: usize,
}

impl PortDiff {
    fn new(a: Option<&PortView>, b: Option<&PortView>, spec: &Spec, verbose: bool) -> Self {
        let a_listed = a.is_some();
        let a = a.cloned().unwrap_or_else(|| PortView::missing(spec));
        let b = b.cloned().unwrap_or_else(|| PortView::missing(spec));
        let scripts = ScriptDiff::lists(&a.scripts, &b.scripts, verbose);
        let base = usize::from(a.state != b.state) + usize::from(a.service != b.service);
        let cost = base + scripts.len();
        let changes = base + scripts.iter().filter(|s| s.changed()).count();
        PortDiff {
            a,
            b,
            a_listed,
            scripts,
            cost,
            changes,
        }
    }

    fn port(&self) -> &PortView {
        if self.a_listed {
            &self.a
        } else {
            &self.b
        }
    }

    fn append_to_table(&self, table: &mut Table, ha: &HostView, hb: &HostView, verbose: bool) {
        let a = self.a.columns();
        let b = self.b.columns();
        if a == b {
            // Ndiff 7.93 crashes here unless verbose (it compares a list with 0); showing
            // the unchanged row above the script lines is what it means to do.
            if verbose || !self.scripts.is_empty() {
                table.row(" ", &a);
            }
        } else {
            if !ha.is_extraports(self.a.state.as_deref()) {
                table.row("-", &a);
            }
            if !hb.is_extraports(self.b.state.as_deref()) {
                table.row("+", &b);
            }
        }
        for s in &self.scripts {
            s.append_to_table(table, verbose);
        }
    }

    fn elem(&self) -> El {
        let mut pd = El::new("portdiff");
        if self.a.state == self.b.state {
            let mut port = El::new("port")
                .attr("portid", &self.a.spec.0.to_string())
                .attr("protocol", &self.a.spec.1);
            if let Some(s) = &self.a.state {
                port.push(El::new("state").attr("state", s));
            }
            if self.a.service == self.b.service {
                port.extend(service_frag(&self.a.service));
            } else {
                port.push(El::new("a").children(service_frag(&self.a.service)));
                port.push(El::new("b").children(service_frag(&self.b.service)));
            }
            for s in &self.scripts {
                port.extend(s.frag());
            }
            pd.push(port);
        } else {
            pd.push(El::new("a").child(self.a.elem()));
            pd.push(El::new("b").child(self.b.elem()));
        }
        pd
    }
}

#[derive(Debug, Clone)]
struct HostDiff {
    a: HostView,
    b: HostView,
    state_changed: bool,
    id_changed: bool,
    extraports_changed: bool,
    ports: Vec<PortDiff>,
    /// difflib's opcodes from the first OS list to the second.
    os_ops: Vec<Opcode>,
    os_changed: bool,
    scripts: Vec<ScriptDiff>,
    changes: usize,
}

impl HostDiff {
    fn new(a: HostView, b: HostView, verbose: bool) -> Self {
        let state_changed = a.state != b.state;
        let set = |v: &[Addr]| v.iter().cloned().collect::<HashSet<_>>();
        let names = |v: &[String]| v.iter().cloned().collect::<HashSet<_>>();
        let id_changed =
            set(&a.addresses) != set(&b.addresses) || names(&a.hostnames) != names(&b.hostnames);
        let mut specs: Vec<&Spec> = a.ports.keys().chain(b.ports.keys()).collect();
        specs.sort();
        specs.dedup();
        let mut ports = Vec::new();
        for spec in specs {
            let d = PortDiff::new(a.ports.get(spec), b.ports.get(spec), spec, verbose);
            let hidden =
                a.is_extraports(d.a.state.as_deref()) && b.is_extraports(d.b.state.as_deref());
            if !hidden && (verbose || d.cost > 0) {
                ports.push(d);
            }
        }
        // Ndiff compares the counts in file order here (and as sets in its XML output).
        let extraports_changed = a.extraports != b.extraports;
        let os_ops = opcodes(&a.os, &b.os);
        let os_cost = os_ops.iter().filter(|o| o.tag != Tag::Equal).count();
        let scripts = ScriptDiff::lists(&a.scripts, &b.scripts, verbose);
        let changes = usize::from(state_changed)
            + usize::from(id_changed)
            + usize::from(extraports_changed)
            + ports.iter().map(|p| p.changes).sum::<usize>()
            + os_cost
            + scripts.iter().filter(|s| s.changed()).count();
        HostDiff {
            a,
            b,
            state_changed,
            id_changed,
            extraports_changed,
            ports,
            os_ops,
            os_changed: os_cost > 0,
            scripts,
            changes,
        }
    }

    /// The host's block of Ndiff's text, after the blank line that separates hosts.
    fn text(&self, out: &mut String, verbose: bool) {
        out.push('\n');
        self.write_text(out, verbose);
    }

    fn write_text(&self, out: &mut String, verbose: bool) {
        let (a, b) = (&self.a, &self.b);
        if self.id_changed {
            if a.state.is_some() {
                let _ = writeln!(out, "-{}:", a.format_name());
            }
            if b.state.is_some() {
                let _ = writeln!(out, "+{}:", b.format_name());
            }
        } else {
            let _ = writeln!(out, " {}:", a.format_name());
        }
        if self.state_changed {
            if let Some(s) = &a.state {
                let _ = writeln!(out, "-Host is {s}.");
            }
            if let Some(s) = &b.state {
                let _ = writeln!(out, "+Host is {s}.");
            }
        } else if verbose {
            let _ = writeln!(out, " Host is {}.", b.state.as_deref().unwrap_or("None"));
        }
        if self.extraports_changed {
            if !a.extraports.is_empty() {
                let _ = writeln!(out, "-Not shown: {}", a.extraports_string());
            }
            if !b.extraports.is_empty() {
                let _ = writeln!(out, "+Not shown: {}", b.extraports_string());
            }
        } else if verbose && !a.extraports.is_empty() {
            let _ = writeln!(out, " Not shown: {}", a.extraports_string());
        }
        let mark = if a.state.is_none() {
            "+"
        } else if b.state.is_none() {
            "-"
        } else {
            " "
        };
        let mut table = Table::default();
        table.row(
            mark,
            &[
                Some("PORT".into()),
                Some("STATE".into()),
                Some("SERVICE".into()),
                Some("VERSION".into()),
            ],
        );
        for p in &self.ports {
            p.append_to_table(&mut table, a, b, verbose);
        }
        if table.rows.len() > 1 {
            out.push_str(&table.render());
            out.push('\n');
        }
        if self.os_changed || verbose {
            match (a.os.is_empty(), b.os.is_empty()) {
                (false, false) => out.push_str(" OS details:\n"),
                (false, true) => out.push_str("-OS details:\n"),
                (true, false) => out.push_str("+OS details:\n"),
                (true, true) => {}
            }
            for op in &self.os_ops {
                if op.tag == Tag::Equal {
                    for n in &a.os[op.a.clone()] {
                        let _ = writeln!(out, "   {n}");
                    }
                    continue;
                }
                for n in &a.os[op.a.clone()] {
                    let _ = writeln!(out, "-  {n}");
                }
                for n in &b.os[op.b.clone()] {
                    let _ = writeln!(out, "+  {n}");
                }
            }
        }
        script_diffs_text(
            out,
            "Host script results",
            &a.scripts,
            &b.scripts,
            &self.scripts,
            verbose,
        );
    }

    fn elem(&self, verbose: bool) -> El {
        let (a, b) = (&self.a, &self.b);
        let mut hd = El::new("hostdiff");
        if a.state.is_none() || b.state.is_none() {
            if a.state.is_some() {
                hd.push(El::new("a").child(a.elem()));
            } else if b.state.is_some() {
                hd.push(El::new("b").child(b.elem()));
            }
            return hd;
        }
        let mut host = El::new("host");
        if a.state == b.state {
            if verbose {
                host.extend(a.status_frag());
            }
        } else {
            host.push(El::new("a").children(a.status_frag()));
            host.push(El::new("b").children(b.status_frag()));
        }

        let (sa, sb): (HashSet<&Addr>, HashSet<&Addr>) =
            (a.addresses.iter().collect(), b.addresses.iter().collect());
        for x in sorted(sa.intersection(&sb).copied().collect()) {
            host.push(addr_elem(x));
        }
        let only_a = sorted(sa.difference(&sb).copied().collect());
        if !only_a.is_empty() {
            host.push(El::new("a").children(only_a.into_iter().map(addr_elem).collect()));
        }
        let only_b = sorted(sb.difference(&sa).copied().collect());
        if !only_b.is_empty() {
            host.push(El::new("b").children(only_b.into_iter().map(addr_elem).collect()));
        }

        let (na, nb): (HashSet<&String>, HashSet<&String>) =
            (a.hostnames.iter().collect(), b.hostnames.iter().collect());
        let mut hostnames = El::new("hostnames");
        hostnames.extend(names_sorted(na.intersection(&nb).copied().collect()));
        let only_a = names_sorted(na.difference(&nb).copied().collect());
        if !only_a.is_empty() {
            hostnames.push(El::new("a").children(only_a));
        }
        let only_b = names_sorted(nb.difference(&na).copied().collect());
        if !only_b.is_empty() {
            hostnames.push(El::new("b").children(only_b));
        }
        if !hostnames.kids.is_empty() {
            host.push(hostnames);
        }

        let mut ports = El::new("ports");
        if a.extraports_equal_as_sets(b) {
            ports.extend(a.extraports_frag());
        } else {
            ports.push(El::new("a").children(a.extraports_frag()));
            ports.push(El::new("b").children(b.extraports_frag()));
        }
        for p in &self.ports {
            if p.cost == 0 {
                if verbose {
                    ports.push(p.port().elem());
                }
            } else {
                ports.push(p.elem());
            }
        }
        if !ports.kids.is_empty() {
            host.push(ports);
        }
        if self.os_changed || verbose {
            let mut os = El::new("os");
            for op in &self.os_ops {
                let names = |v: &[String]| v.iter().map(|n| osmatch_elem(n)).collect::<Vec<_>>();
                if op.tag == Tag::Equal {
                    os.extend(names(&a.os[op.a.clone()]));
                    continue;
                }
                if matches!(op.tag, Tag::Replace | Tag::Delete) {
                    os.push(El::new("a").children(names(&a.os[op.a.clone()])));
                }
                if matches!(op.tag, Tag::Replace | Tag::Insert) {
                    os.push(El::new("b").children(names(&b.os[op.b.clone()])));
                }
            }
            if !os.kids.is_empty() {
                host.push(os);
            }
        }
        if !self.scripts.is_empty() || verbose {
            host.extend(
                script_diffs_elem("hostscript", &a.scripts, &b.scripts, &self.scripts)
                    .into_iter()
                    .collect(),
            );
        }
        hd.push(host);
        hd
    }
}

/// The comparison of two scans, ready to be written in any of the three forms.
#[derive(Debug, Clone)]
pub struct ScanDiff {
    verbose: bool,
    pub before: RunInfo,
    pub after: RunInfo,
    /// Every pair of hosts, in Ndiff's order (shown: changed ones, or all when verbose).
    hosts: Vec<HostDiff>,
    pre: ScriptListDiff,
    post: ScriptListDiff,
}

/// Pre- or post-scan script results of both scans, in file order, and their differences.
#[derive(Debug, Clone)]
struct ScriptListDiff {
    a: Vec<ScriptOut>,
    b: Vec<ScriptOut>,
    diffs: Vec<ScriptDiff>,
}

impl ScriptListDiff {
    fn new(a: &[Script], b: &[Script], verbose: bool) -> Self {
        let (a, b) = (script_outs(a), script_outs(b));
        let diffs = ScriptDiff::lists(&a, &b, verbose);
        ScriptListDiff { a, b, diffs }
    }

    fn text(&self, out: &mut String, title: &str, verbose: bool) {
        script_diffs_text(out, title, &self.a, &self.b, &self.diffs, verbose);
    }

    /// Ndiff writes the children of what script_result_diffs_to_dom_fragment returns, so the
    /// outer element (`<a>`, `<b>` or `<prescript>`) itself is not written.
    fn xml(&self, out: &mut String, name: &'static str, verbose: bool) {
        if self.diffs.is_empty() && !verbose {
            return;
        }
        if let Some(e) = script_diffs_elem(name, &self.a, &self.b, &self.diffs) {
            for k in &e.kids {
                k.write(out);
            }
        }
    }
}

/// Ndiff's text before the hosts: the banners, and the pre-scan script results.
fn text_head(
    out: &mut String,
    before: &RunInfo,
    after: &RunInfo,
    pre: &ScriptListDiff,
    verbose: bool,
) {
    let (ba, bb) = (before.banner(), after.banner());
    if ba != bb {
        let _ = writeln!(out, "-{ba}");
        let _ = writeln!(out, "+{bb}");
    } else if verbose {
        let _ = writeln!(out, " {ba}");
    }
    pre.text(out, "Pre-scan script results", verbose);
}

/// Ndiff's text after the hosts: the post-scan script results.
fn text_tail(out: &mut String, post: &ScriptListDiff, verbose: bool) {
    post.text(out, "Post-scan script results", verbose);
}

/// Ndiff's XML before the hosts: the document's start, the run headers, the pre-scan scripts.
fn xml_head(
    out: &mut String,
    before: &RunInfo,
    after: &RunInfo,
    pre: &ScriptListDiff,
    verbose: bool,
) {
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<nmapdiff version=\"1\"><scandiff>");
    if before != after {
        out.push_str("<a>");
        before.elem().write(out);
        out.push_str("</a><b>");
        after.elem().write(out);
        out.push_str("</b>");
    } else if verbose {
        before.elem().write(out);
    }
    pre.xml(out, "prescript", verbose);
}

/// Ndiff's XML after the hosts: the post-scan scripts and the document's end.
fn xml_tail(out: &mut String, post: &ScriptListDiff, verbose: bool) {
    post.xml(out, "postscript", verbose);
    out.push_str("</scandiff></nmapdiff>");
}

/// Compares `before` with `after`.
pub fn diff(before: &ScanRun, after: &ScanRun, opts: DiffOptions) -> ScanDiff {
    let views = |r: &ScanRun| {
        let mut v: Vec<(HostId, HostView)> = r
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let v = HostView::from_model(h);
                (v.id(i), v)
            })
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0)); // stable, as Python's sort
        v
    };
    let (a, b) = (views(before), views(after));
    let mut hosts = Vec::new();
    let (mut i, mut j) = (0, 0);
    let anon = |id: &HostId| matches!(id, HostId::Anonymous(_));
    while i < a.len() && j < b.len() {
        let (ia, ib) = (&a[i].0, &b[j].0);
        if ia < ib || (anon(ia) && anon(ib)) {
            hosts.push((a[i].1.clone(), HostView::default()));
            i += 1;
        } else if ia > ib {
            hosts.push((HostView::default(), b[j].1.clone()));
            j += 1;
        } else {
            hosts.push((a[i].1.clone(), b[j].1.clone()));
            i += 1;
            j += 1;
        }
    }
    hosts.extend(a[i..].iter().map(|h| (h.1.clone(), HostView::default())));
    hosts.extend(b[j..].iter().map(|h| (HostView::default(), h.1.clone())));
    ScanDiff {
        verbose: opts.verbose,
        before: RunInfo::from_model(before),
        after: RunInfo::from_model(after),
        hosts: hosts
            .into_iter()
            .map(|(x, y)| HostDiff::new(x, y, opts.verbose))
            .collect(),
        pre: ScriptListDiff::new(&before.prescripts, &after.prescripts, opts.verbose),
        post: ScriptListDiff::new(&before.postscripts, &after.postscripts, opts.verbose),
    }
}

impl ScanDiff {
    /// Whether the scans differ (Ndiff's exit status 1). The headers do not count.
    pub fn changed(&self) -> bool {
        self.changes() > 0
    }

    /// How many differences were found.
    pub fn changes(&self) -> usize {
        self.hosts.iter().map(|h| h.changes).sum()
    }

    fn shown(&self) -> impl Iterator<Item = &HostDiff> {
        self.hosts
            .iter()
            .filter(move |h| self.verbose || h.changes > 0)
    }

    /// Ndiff's text output.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        text_head(&mut out, &self.before, &self.after, &self.pre, self.verbose);
        for h in self.shown() {
            h.text(&mut out, self.verbose);
        }
        text_tail(&mut out, &self.post, self.verbose);
        out
    }

    /// Ndiff's XML output (`<nmapdiff version="1">`), laid out as Ndiff writes it.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        xml_head(&mut out, &self.before, &self.after, &self.pre, self.verbose);
        for h in self.shown() {
            h.elem(self.verbose).write(&mut out);
        }
        xml_tail(&mut out, &self.post, self.verbose);
        out
    }

    /// Portolan's JSON form (docs/diff.md), one line.
    pub fn to_json(&self) -> String {
        let doc = JsonDiff {
            portolan_diff_version: 1,
            changed: self.changed(),
            before: &self.before,
            after: &self.after,
            prescripts: Change {
                before: &self.pre.a,
                after: &self.pre.b,
            },
            hosts: self.shown().map(JsonHost::new).collect(),
            postscripts: Change {
                before: &self.post.a,
                after: &self.post.b,
            },
        };
        serde_json::to_string(&doc).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct JsonDiff<'a> {
    portolan_diff_version: u32,
    changed: bool,
    before: &'a RunInfo,
    after: &'a RunInfo,
    prescripts: Change<&'a [ScriptOut]>,
    hosts: Vec<JsonHost>,
    postscripts: Change<&'a [ScriptOut]>,
}

#[derive(Serialize)]
struct JsonHost {
    /// The host's lowest address (or hostname), to name it.
    address: String,
    name: String,
    /// added, removed, changed or unchanged.
    change: &'static str,
    state: Change<Option<String>>,
    addresses: Change<Vec<String>>,
    hostnames: Change<Vec<String>>,
    extraports: Change<Vec<JsonExtra>>,
    ports: Vec<JsonPort>,
    /// osmatch names, best first.
    os: Change<Vec<String>>,
    hostscripts: Change<Vec<ScriptOut>>,
}

#[derive(Serialize)]
struct Change<T> {
    before: T,
    after: T,
}

#[derive(Serialize, PartialEq)]
struct JsonExtra {
    state: String,
    count: u32,
}

#[derive(Serialize)]
struct JsonPort {
    port: u16,
    protocol: String,
    change: &'static str,
    before: Option<JsonPortSide>,
    after: Option<JsonPortSide>,
}

#[derive(Serialize)]
struct JsonPortSide {
    state: String,
    #[serde(flatten)]
    service: Svc,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    scripts: Vec<ScriptOut>,
}

impl JsonPortSide {
    fn new(p: &PortView) -> Option<Self> {
        p.state.as_ref().map(|s| JsonPortSide {
            state: s.clone(),
            service: p.service.clone(),
            scripts: p.scripts.clone(),
        })
    }
}

impl JsonHost {
    fn new(h: &HostDiff) -> Self {
        let named = if h.a.state.is_some() { &h.a } else { &h.b };
        let address = named
            .sorted_addresses()
            .first()
            .map(|a| a.addr.clone())
            .or_else(|| named.sorted_hostnames().first().map(|n| n.to_string()))
            .unwrap_or_default();
        let change = match (&h.a.state, &h.b.state) {
            (None, _) => "added",
            (_, None) => "removed",
            _ if h.changes > 0 => "changed",
            _ => "unchanged",
        };
        let addrs = |v: &HostView| -> Vec<String> {
            v.sorted_addresses()
                .iter()
                .map(|a| a.addr.clone())
                .collect()
        };
        let names = |v: &HostView| -> Vec<String> {
            v.sorted_hostnames().iter().map(|n| n.to_string()).collect()
        };
        let extra = |v: &HostView| -> Vec<JsonExtra> {
            v.extraports
                .iter()
                .map(|(s, c)| JsonExtra {
                    state: s.clone(),
                    count: *c,
                })
                .collect()
        };
        JsonHost {
            address,
            name: named.format_name(),
            change,
            state: Change {
                before: h.a.state.clone(),
                after: h.b.state.clone(),
            },
            addresses: Change {
                before: addrs(&h.a),
                after: addrs(&h.b),
            },
            hostnames: Change {
                before: names(&h.a),
                after: names(&h.b),
            },
            extraports: Change {
                before: extra(&h.a),
                after: extra(&h.b),
            },
            ports: h
                .ports
                .iter()
                .map(|p| JsonPort {
                    port: p.a.spec.0,
                    protocol: p.a.spec.1.clone(),
                    change: match (&p.a.state, &p.b.state) {
                        (None, _) => "added",
                        (_, None) => "removed",
                        _ if p.changes > 0 => "changed",
                        _ => "unchanged",
                    },
                    before: JsonPortSide::new(&p.a),
                    after: JsonPortSide::new(&p.b),
                })
                .collect(),
            os: Change {
                before: h.a.os.clone(),
                after: h.b.os.clone(),
            },
            hostscripts: Change {
                before: h.a.scripts.clone(),
                after: h.b.scripts.clone(),
            },
        }
    }
}

/// Ndiff's port table: left-justified columns, widths from the widest cell, trailing blanks
/// cut; raw rows (script output) are printed as they are.
#[derive(Default)]
struct Table {
    rows: Vec<Row>,
    widths: Vec<usize>,
}

enum Row {
    Cells(Vec<String>),
    Raw(String),
}

impl Table {
    fn row(&mut self, mark: &str, cols: &[Option<String>; 4]) {
        let mut cells: Vec<Option<String>> = vec![Some(mark.to_string())];
        cells.extend(cols.iter().cloned());
        while cells.last().is_some_and(|c| c.is_none()) {
            cells.pop();
        }
        let cells: Vec<String> = cells.into_iter().map(Option::unwrap_or_default).collect();
        for (i, c) in cells.iter().enumerate() {
            let w = c.chars().count();
            if i == self.widths.len() {
                self.widths.push(w);
            } else if w > self.widths[i] {
                self.widths[i] = w;
            }
        }
        self.rows.push(Row::Cells(cells));
    }

    fn raw(&mut self, s: String) {
        self.rows.push(Row::Raw(s));
    }

    fn render(&self) -> String {
        // Between the columns: nothing after the +/- mark, one space elsewhere.
        const PADDING: [&str; 4] = ["", " ", " ", " "];
        let lines: Vec<String> = self
            .rows
            .iter()
            .map(|r| match r {
                Row::Raw(s) => s.clone(),
                Row::Cells(cells) => {
                    let mut line = String::new();
                    for (i, c) in cells.iter().enumerate() {
                        line.push_str(&pad(c, self.widths[i]));
                        if let Some(p) = PADDING.get(i) {
                            line.push_str(p);
                        }
                    }
                    py_rstrip(&line).to_string()
                }
            })
            .collect();
        lines.join("\n")
    }
}

/// Left-justifies `s` in `width` characters (Python's `ljust`).
fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    let mut out = s.to_string();
    out.push_str(&" ".repeat(width.saturating_sub(n)));
    out
}

/// Python's `str.isspace` for one character.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(py_space)
}

/// Python's `str.splitlines()`: every line boundary Python knows, no empty last line.
fn py_splitlines(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            '\n' | '\u{b}' | '\u{c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Replace,
    Delete,
    Insert,
    Equal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Opcode {
    tag: Tag,
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
}

/// The edit script Python's `difflib.SequenceMatcher(None, a, b).get_opcodes()` gives
/// (longest matching blocks, recursively, with its "popular element" heuristic), so that
/// changed script output is shown line for line as Ndiff shows it.
fn opcodes(a: &[String], b: &[String]) -> Vec<Opcode> {
    let mut b2j: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (j, x) in b.iter().enumerate() {
        b2j.entry(x.as_str()).or_default().push(j);
    }
    if b.len() >= 200 {
        let limit = b.len() / 100 + 1;
        b2j.retain(|_, v| v.len() <= limit);
    }
    let longest = |alo: usize, ahi: usize, blo: usize, bhi: usize| {
        let (mut bi, mut bj, mut bs) = (alo, blo, 0usize);
        let mut j2len: BTreeMap<usize, usize> = BTreeMap::new();
        for (i, x) in a.iter().enumerate().take(ahi).skip(alo) {
            let mut next: BTreeMap<usize, usize> = BTreeMap::new();
            for &j in b2j.get(x.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                if j < blo {
                    continue;
                }
                if j >= bhi {
                    break;
                }
                let k = j
                    .checked_sub(1)
                    .and_then(|p| j2len.get(&p))
                    .copied()
                    .unwrap_or(0)
                    + 1;
                next.insert(j, k);
                if k > bs {
                    (bi, bj, bs) = (i + 1 - k, j + 1 - k, k);
                }
            }
            j2len = next;
        }
        while bi > alo && bj > blo && a[bi - 1] == b[bj - 1] {
            bi -= 1;
            bj -= 1;
            bs += 1;
        }
        while bi + bs < ahi && bj + bs < bhi && a[bi + bs] == b[bj + bs] {
            bs += 1;
        }
        (bi, bj, bs)
    };
    let mut queue = vec![(0, a.len(), 0, b.len())];
    let mut blocks = Vec::new();
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = longest(alo, ahi, blo, bhi);
        if k > 0 {
            blocks.push((i, j, k));
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    blocks.sort();
    let mut merged: Vec<(usize, usize, usize)> = Vec::new();
    for (i, j, k) in blocks {
        match merged.last_mut() {
            Some(last) if last.0 + last.2 == i && last.1 + last.2 == j => last.2 += k,
            _ => merged.push((i, j, k)),
        }
    }
    merged.push((a.len(), b.len(), 0));
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    for (ai, bj, size) in merged {
        let tag = match (i < ai, j < bj) {
            (true, true) => Some(Tag::Replace),
            (true, false) => Some(Tag::Delete),
            (false, true) => Some(Tag::Insert),
            (false, false) => None,
        };
        if let Some(tag) = tag {
            out.push(Opcode {
                tag,
                a: i..ai,
                b: j..bj,
            });
        }
        (i, j) = (ai + size, bj + size);
        if size > 0 {
            out.push(Opcode {
                tag: Tag::Equal,
                a: ai..i,
                b: bj..j,
            });
        }
    }
    out
}

/// An element as Python's minidom writes it with `newl="\n"` and no indent: attributes in
/// the order set, `<x/>` when empty, children each on their own line.
#[derive(Debug, Clone)]
struct El {
    name: &'static str,
    attrs: Vec<(&'static str, String)>,
    kids: Vec<El>,
}

impl El {
    fn new(name: &'static str) -> Self {
        El {
            name,
            attrs: Vec::new(),
            kids: Vec::new(),
        }
    }

    fn attr(mut self, k: &'static str, v: &str) -> Self {
        self.attrs.push((k, v.to_string()));
        self
    }

    fn child(mut self, e: El) -> Self {
        self.kids.push(e);
        self
    }

    fn children(mut self, e: Vec<El>) -> Self {
        self.kids.extend(e);
        self
    }

    fn push(&mut self, e: El) {
        self.kids.push(e);
    }

    fn extend(&mut self, e: Vec<El>) {
        self.kids.extend(e);
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        for (k, v) in &self.attrs {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '"' => out.push_str("&quot;"),
                    '>' => out.push_str("&gt;"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        if self.kids.is_empty() {
            out.push_str("/>\n");
        } else {
            out.push_str(">\n");
            for k in &self.kids {
                k.write(out);
            }
            let _ = writeln!(out, "</{}>", self.name);
        }
    }
}

mod stream;
pub use stream::{spool_run, write_diff, DiffFormat, SpoolError, SpooledRun, WriteError};

#[cfg(test)]
mod tests;
