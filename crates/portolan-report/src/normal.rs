//! Nmap's human-readable output, for the terminal and for -oN files, with Nmap 7.93's exact
//! layout ("Nmap" replaced by our own name): report header, "Host is up", "Not shown",
//! the port table with its optional REASON and VERSION columns, script output under its
//! port, MAC address, OS detection ("Device type", "Running", "OS CPE", "OS details",
//! "Aggressive OS guesses", the fingerprint), uptime, distance, sequence analyses, "Service
//! Info", host script results, the traceroute, pre- and post-scan script results, and the
//! footer.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use crate::escape;
use crate::text::{self, Tally};
use crate::timefmt::Zone;
use portolan_model::{
    AddrType, Hop, Host, HostState, HostnameType, Os, PortState, ScanRun, Script,
};
use portolan_model::{OutputError, OutputOptions, Sink};

/// Nmap keeps at most this many distinct values per "Service Info" field.
const MAX_SERVICE_INFO_FIELDS: usize = 5;

/// Writes Nmap's normal output to any byte sink.
pub struct NormalWriter<W: Write> {
    out: W,
    opts: OutputOptions,
    file_header: bool,
    version_scan: bool,
    zone: Zone,
    tally: Tally,
    /// Every hop of the traces written so far, with the address of the first host whose
    /// trace had it: a later host whose first hops are known shows them as one "Hops 1-N
    /// are the same as for X" row, as Nmap does.
    hops_seen: HashMap<Hop, String>,
    /// A host with OS results was written: the run did OS detection (-A says so only when
    /// it ran with raw sockets).
    os_seen: bool,
}

impl<W: Write> NormalWriter<W> {
    /// `file_header`: true for an -oN file (`# Portolan ... scan initiated ...` header and
    /// `# Portolan done at ...` footer), false for the terminal (`Starting Portolan ...` and
    /// `Portolan done: ...`).
    pub fn new(out: W, opts: OutputOptions, file_header: bool) -> Self {
        NormalWriter {
            out,
            opts,
            file_header,
            version_scan: false,
            zone: Zone::Local,
            tally: Tally::default(),
            hops_seen: HashMap::new(),
            os_seen: false,
        }
    }

    /// Declares that version detection (-sV) ran: every port table gets a VERSION column and
    /// unconfirmed names on open ports a `?`, as Nmap does. Without it, that is inferred per
    /// host from the services (any probed service or version detail).
    pub fn version_scan(mut self, on: bool) -> Self {
        self.version_scan = on;
        self
    }

    /// Renders times in UTC instead of the local time zone.
    pub fn with_utc(mut self, utc: bool) -> Self {
        self.zone = Zone::from_utc_flag(utc);
        self
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn emit(&mut self, s: &str) -> Result<(), OutputError> {
        self.out.write_all(s.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }

    fn render_host(&self, run: &ScanRun, host: &Host) -> String {
        let mut s = String::new();
        let name = text::scanner_name(run);
        match host.status.state {
            HostState::Up => {}
            HostState::Down => {
                // Nmap mentions down hosts only when asked to be verbose.
                if self.opts.verbose > 0 {
                    let _ = write!(
                        s,
                        "{name} scan report for {} [host down",
                        escape::text(&text::name_ip(host))
                    );
                    if self.opts.reason {
                        let _ = write!(s, ", {}", escape::text(&text::host_reason(host)));
                    }
                    s.push_str("]\n");
                }
                return s;
            }
            // A list scan (-sL) names each target without probing it.
            HostState::Unknown => {
                let _ = writeln!(
                    s,
                    "{name} scan report for {}",
                    escape::text(&text::name_ip(host))
                );
                return s;
            }
            HostState::Skipped => return s,
        }

        let _ = writeln!(
            s,
            "{name} scan report for {}",
            escape::text(&text::name_ip(host))
        );
        s.push_str("Host is up");
        if self.opts.reason {
            let _ = write!(s, ", {}", escape::text(&text::host_reason(host)));
        }
        if let Some(t) = host.times.filter(|t| t.srtt >= 0) {
            let _ = write!(
                s,
                " ({}s latency)",
                text::two_sig_digits(t.srtt as f64 / 1_000_000.0)
            );
        }
        s.push_str(".\n");

        // The name the user typed resolved to an address whose PTR record says otherwise.
        let user = host.hostnames.iter().find(|h| h.kind == HostnameType::User);
        let ptr = host.hostnames.iter().find(|h| h.kind == HostnameType::Ptr);
        if let (Some(u), Some(p)) = (user, ptr) {
            if u.name != p.name {
                let _ = writeln!(
                    s,
                    "rDNS record for {}: {}",
                    escape::text(host.addr_str()),
                    escape::text(&p.name)
                );
            }
        }

        let has_ports = !host.ports.is_empty() || !host.extraports.is_empty();
        if has_ports {
            self.render_ports(&mut s, host);
        }

        for a in host
            .addresses
            .iter()
            .filter(|a| a.addrtype == AddrType::Mac)
        {
            let _ = writeln!(
                s,
                "MAC Address: {} ({})",
                escape::text(&a.addr),
                escape::text(a.vendor.as_deref().unwrap_or("Unknown"))
            );
        }
        if let Some(os) = &host.os {
            render_os(&mut s, os, os_guess(run));
        }
        self.render_host_details(&mut s, host);
        render_service_info(&mut s, host);
        if !host.hostscripts.is_empty() {
            s.push_str("\nHost script results:\n");
            render_script_list(&mut s, &host.hostscripts);
        }
        if let Some(t) = &host.trace {
            let debugging = self.opts.debugging > 0;
            let shared = if debugging {
                None
            } else if t.hops.iter().any(|h| h.tag.is_some()) {
                tagged_hops(&t.hops, host.addr_str())
            } else {
                shared_hops(&self.hops_seen, &t.hops)
            };
            render_trace(&mut s, t, shared, debugging);
        }
        // Nmap closes each port-scanned host with a blank line (not ping-only ones, unless
        // they were traced or had scripts run).
        if has_ports || text::ping_scan_in_full(run) {
            s.push('\n');
        }
        s
    }

    /// Uptime, distance and the sequence analyses that follow the OS results.
    fn render_host_details(&self, s: &mut String, host: &Host) {
        let verbose = self.opts.verbose > 0;
        if let (Some(u), true) = (&host.uptime, verbose) {
            let days = u.seconds as f64 / 86400.0;
            match &u.lastboot {
                Some(b) => {
                    let _ = writeln!(
                        s,
                        "Uptime guess: {days:.3} days (since {})",
                        escape::text(b)
                    );
                }
                None => {
                    let _ = writeln!(s, "Uptime guess: {days:.3} days");
                }
            }
        }
        if let Some(d) = host.distance {
            let _ = writeln!(
                s,
                "Network Distance: {d} hop{}",
                if d == 1 { "" } else { "s" }
            );
        }
        if let (Some(t), true) = (&host.tcpsequence, verbose) {
            let _ = writeln!(
                s,
                "TCP Sequence Prediction: Difficulty={} ({})",
                t.index,
                escape::text(&t.difficulty)
            );
        }
        if let (Some(t), true) = (&host.ipidsequence, verbose) {
            let _ = writeln!(s, "IP ID Sequence Generation: {}", escape::text(&t.class));
        }
    }

    fn render_ports(&self, s: &mut String, host: &Host) {
        let ignored: u32 = host.extraports.iter().map(|e| e.count).sum();
        if (self.opts.verbose > 1 || self.opts.debugging > 0) && !host.ports.is_empty() {
            if let (Some(a), Some(b)) = (host.starttime, host.endtime) {
                let _ = writeln!(
                    s,
                    "Scanned at {} for {}s",
                    self.zone.seconds(a),
                    b.saturating_sub(a)
                );
            }
        }
        if host.ports.is_empty() {
            let _ = writeln!(
                s,
                "{} {} scanned {} on {} {} in ignored states.",
                if ignored == 1 { "The" } else { "All" },
                ignored,
                text::plural(ignored, "port", "ports"),
                escape::text(&text::name_ip(host)),
                text::plural(ignored, "is", "are"),
            );
        }
        if host.extraports.is_empty() {
            s.push('\n');
        } else {
            let mut parts = Vec::new();
            for ep in &host.extraports {
                if ep.reasons.is_empty() {
                    parts.push(format!(
                        "{} {} {}",
                        ep.count,
                        ep.state,
                        text::plural(ep.count, "port", "ports")
                    ));
                }
                for r in &ep.reasons {
                    let proto = r.proto.map(|p| format!("{p} ")).unwrap_or_default();
                    parts.push(format!(
                        "{} {} {}{} ({})",
                        r.count,
                        ep.state,
                        proto,
                        text::plural(r.count, "port", "ports"),
                        escape::text(&r.reason)
                    ));
                }
            }
            let _ = writeln!(s, "Not shown: {}", parts.join(", "));
        }
        if host.ports.is_empty() {
            return;
        }

        let version_scan = self.version_scan || text::version_scanned(host);
        let mut header = vec!["PORT", "STATE", "SERVICE"];
        if self.opts.reason {
            header.push("REASON");
        }
        if version_scan {
            header.push("VERSION");
        }
        let mut rows: Vec<Row> = vec![Row::Cells(header.iter().map(|h| h.to_string()).collect())];
        for p in &host.ports {
            let mut cells = vec![
                format!("{}/{}", p.portid, p.protocol),
                p.state.to_string(),
                escape::text(&text::service_label(p, version_scan)),
            ];
            if self.opts.reason {
                cells.push(escape::text(&text::port_reason(p)));
            }
            if version_scan {
                cells.push(escape::text(
                    &p.service
                        .as_ref()
                        .map(text::full_version)
                        .unwrap_or_default(),
                ));
            }
            rows.push(Row::Cells(cells));
            for sc in &p.scripts {
                if let Some(block) = script_block(&sc.id, &sc.output) {
                    rows.push(Row::Full(block));
                }
            }
        }
        s.push_str(&render_table(&rows));
        render_servicefps(s, host);
    }
}

/// The most fingerprints printed for one host (Nmap keeps one more once it has 8).
const MAX_SERVICEFPS: usize = 9;
/// Characters on each line of a printed fingerprint, its `SF:` prefix included.
const SERVICEFP_WRAP: usize = 74;

/// After the port table, as Nmap: the fingerprints of the services -sV could not name, for
/// the user to submit.
fn render_servicefps(s: &mut String, host: &Host) {
    let fps: Vec<&str> = host
        .ports
        .iter()
        .filter_map(|p| p.service.as_ref()?.servicefp.as_deref())
        .take(MAX_SERVICEFPS)
        .collect();
    if fps.is_empty() {
        return;
    }
    let n = fps.len();
    let _ = writeln!(
        s,
        "{n} {} unrecognized despite returning data. If you know the service/version, please \
         submit the following {} at https://nmap.org/cgi-bin/submit.cgi?new-service :",
        text::plural(n as u32, "service", "services"),
        text::plural(n as u32, "fingerprint", "fingerprints"),
    );
    for fp in fps {
        if n > 1 {
            s.push_str(
                "==============NEXT SERVICE FINGERPRINT (SUBMIT INDIVIDUALLY)==============\n",
            );
        }
        // Control characters (none in a fingerprint Nmap or Portolan wrote) escaped, as
        // everywhere in normal output.
        s.push_str(&escape::text_lines(&wrap_servicefp(fp)));
        s.push('\n');
    }
}

/// A service fingerprint as Nmap prints it (XML holds it on one line): lines of
/// [`SERVICEFP_WRAP`] characters, each after the first starting with `SF:`; the final `;` is
/// never wrapped.
fn wrap_servicefp(fp: &str) -> String {
    let fp = fp.replace("\nSF:", "");
    let body = fp.strip_suffix(';').unwrap_or(&fp);
    let mut out = String::with_capacity(fp.len() + fp.len() / 16);
    for (i, c) in body.chars().enumerate() {
        if i >= SERVICEFP_WRAP && (i - SERVICEFP_WRAP).is_multiple_of(SERVICEFP_WRAP - 3) {
            out.push_str("\nSF:");
        }
        out.push(c);
    }
    if fp.ends_with(';') {
        out.push(';');
    }
    out
}

enum Row {
    Cells(Vec<String>),
    /// A row that spans the table (script output) and does not widen columns.
    Full(String),
    /// Leading cells, then text that spans the rest of the row without widening columns.
    Lead(Vec<String>, String),
}

/// The terminal's first line, `Starting Portolan 0.1.0 ( ... ) at 2026-12-05 14:41 UTC`,
/// for a run that prints something other than hosts (`--iflist`).
pub fn starting_line(run: &ScanRun) -> String {
    format!(
        "Starting {} ( {} ) at {}\n",
        text::scanner_title(run),
        text::project_url(run),
        Zone::Local.starting(run.start)
    )
}

/// Rows of cells aligned as Nmap's tables are (see [`render_table`]).
pub fn table(rows: &[Vec<String>]) -> String {
    let rows: Vec<Row> = rows.iter().map(|r| Row::Cells(r.clone())).collect();
    render_table(&rows)
}

/// Columns left-aligned, each as wide as its widest cell plus one space, trailing blanks cut.
fn render_table(rows: &[Row]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        if let Row::Cells(cells) = row {
            for (i, c) in cells.iter().enumerate() {
                let w = c.chars().count();
                match widths.get_mut(i) {
                    Some(cur) => *cur = (*cur).max(w),
                    None => widths.push(w),
                }
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        match row {
            Row::Cells(cells) => {
                let mut line = String::new();
                for (i, c) in cells.iter().enumerate() {
                    if i + 1 < cells.len() {
                        let w = widths.get(i).copied().unwrap_or(0);
                        let _ = write!(line, "{c:<w$} ");
                    } else {
                        line.push_str(c);
                    }
                }
                out.push_str(line.trim_end_matches(' '));
                out.push('\n');
            }
            Row::Full(text) => {
                out.push_str(text);
                out.push('\n');
            }
            Row::Lead(cells, text) => {
                let mut line = String::new();
                for (i, c) in cells.iter().enumerate() {
                    let w = widths.get(i).copied().unwrap_or(0);
                    let _ = write!(line, "{c:<w$} ");
                }
                line.push_str(text);
                out.push_str(line.trim_end_matches(' '));
                out.push('\n');
            }
        }
    }
    out
}

/// Script output under its port: `|_id: line` for one line, else `| id: first`, `| ...`,
/// `|_last` (Nmap's formatScriptOutput); nothing for a script whose output is empty.
fn script_block(id: &str, output: &str) -> Option<String> {
    if output.is_empty() {
        return None;
    }
    // As Nmap's loop: a newline ends a line, so a final newline adds no empty line.
    let body = output.strip_suffix('\n').unwrap_or(output);
    let lines: Vec<&str> = body.split('\n').collect();
    let n = lines.len();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push_str(if i + 1 < n { "| " } else { "|_" });
        if i == 0 {
            out.push_str(&escape::text(id));
            out.push_str(": ");
        }
        out.push_str(&escape::text(line.strip_suffix('\r').unwrap_or(line)));
        if i + 1 < n {
            out.push('\n');
        }
    }
    Some(out)
}

/// Host, pre- or post-scan scripts, one block each (Nmap's printscriptresults).
fn render_script_list(s: &mut String, scripts: &[Script]) {
    for sc in scripts {
        if let Some(block) = script_block(&sc.id, &sc.output) {
            s.push_str(&block);
            s.push('\n');
        }
    }
}

/// Whether Nmap was told to print OS guesses (`--osscan-guess`, or its alias `--fuzzy`).
fn os_guess(run: &ScanRun) -> bool {
    run.args
        .split_whitespace()
        .any(|a| a == "--osscan-guess" || a == "--fuzzy")
}

/// Nmap gives up on a classification list longer than this (MAX_OS_CLASSMEMBERS).
const MAX_OS_CLASS_MEMBERS: usize = 8;

/// The OS section, as Nmap's printosscanoutput. What the file does not say is inferred:
/// Nmap prints the fingerprint exactly when it judged it fit for submission, so a file
/// without one is a scan whose conditions were not ideal (and then Nmap shows its guesses).
fn render_os(s: &mut String, os: &Os, guess_flag: bool) {
    let perfect = os.matches.iter().take_while(|m| m.accuracy >= 100).count();
    let fingerprint = os.fingerprints.first();
    // The ports used say whether Nmap found both an open and a closed TCP port.
    let used = |state: PortState| {
        os.ports_used
            .iter()
            .any(|p| p.state == state && p.proto == portolan_model::Protocol::Tcp)
    };
    // Too many perfect matches: Nmap writes neither matches nor fingerprint. Without an open
    // port most references match what little the closed ports say, so an empty result there
    // is that case (an empty result with an open port is "No OS matches").
    // (Our coarse guess, made without nmap-os-db, has no match either.)
    let too_many = perfect > 8
        || (os.matches.is_empty()
            && fingerprint.is_none()
            && os.coarse.is_none()
            && !used(PortState::Open));
    let reliable = used(PortState::Open) && used(PortState::Closed);
    if !reliable && !too_many {
        s.push_str("Warning: OSScan results may be unreliable because we could not find at least 1 open and 1 closed port\n");
    }
    if !too_many {
        render_os_classes(s, os, perfect, guess_flag || fingerprint.is_none());
    }
    let print_fp = |s: &mut String| {
        if let Some(fp) = fingerprint {
            let _ = writeln!(s, "TCP/IP fingerprint:\n{}", escape::text_lines(fp));
        }
    };
    if too_many {
        s.push_str("Too many fingerprints match this host to give specific OS details\n");
        print_fp(s);
    } else if perfect > 0 {
        let names: Vec<String> = os.matches[..perfect]
            .iter()
            .map(|m| escape::text(&m.name))
            .collect();
        let _ = writeln!(s, "OS details: {}", names.join(", "));
        print_fp(s);
    } else if !os.matches.is_empty() {
        if guess_flag || fingerprint.is_none() {
            let best = os.matches[0].accuracy;
            let guesses: Vec<String> = os
                .matches
                .iter()
                .take(10)
                .filter(|m| u32::from(m.accuracy) + 10 > u32::from(best))
                .map(|m| format!("{} ({}%)", escape::text(&m.name), m.accuracy))
                .collect();
            let _ = writeln!(s, "Aggressive OS guesses: {}", guesses.join(", "));
        }
        if fingerprint.is_some() {
            s.push_str("No exact OS matches for host (If you know what OS is running on it, see https://nmap.org/submit/ ).\n");
            print_fp(s);
        } else {
            s.push_str("No exact OS matches for host (test conditions non-ideal).\n");
        }
    } else if fingerprint.is_some() {
        s.push_str("No OS matches for host (If you know what OS is running on it, see https://nmap.org/submit/ ).\n");
        print_fp(s);
    } else {
        s.push_str("No OS matches for host\n");
    }
    // Ours, not Nmap's: the guess made without nmap-os-db.
    if let Some(c) = &os.coarse {
        let _ = writeln!(s, "Coarse OS guess: {}", escape::text(c));
    }
}

/// "Device type:", "Running:" and "OS CPE:" from the classes of the matches, as Nmap's
/// printosclassificationoutput over the classification its populateClassification builds.
fn render_os_classes(s: &mut String, os: &Os, perfect: usize, guess: bool) {
    // The distinct classes, best match first, each with its match's accuracy.
    let mut classes: Vec<(&portolan_model::OsClass, u8, bool)> = Vec::new();
    for (i, m) in os.matches.iter().enumerate() {
        for c in &m.classes {
            let dup = classes.iter().any(|(k, _, _)| {
                k.vendor == c.vendor
                    && k.osfamily == c.osfamily
                    && k.kind == c.kind
                    && k.osgen == c.osgen
            });
            if dup {
                continue;
            }
            if classes.iter().any(|(_, _, p)| *p) && i >= perfect {
                break;
            }
            classes.push((c, m.accuracy, i < perfect));
        }
    }
    let perfect_classes = classes.iter().filter(|(_, _, p)| *p).count();
    let Some(&(_, best, _)) = classes.first() else {
        return;
    };
    let mut types: Vec<&str> = Vec::new();
    let mut cpes: Vec<&str> = Vec::new();
    let mut families: Vec<(String, String, u8)> = Vec::new();
    let mut overflow = false;
    fn add<'a>(list: &mut Vec<&'a str>, v: &'a str) -> bool {
        if list.contains(&v) {
            return true;
        }
        if list.len() >= MAX_OS_CLASS_MEMBERS {
            return false;
        }
        list.push(v);
        true
    }
    for (n, (c, acc, _)) in classes.iter().enumerate() {
        if (!guess && n >= perfect_classes)
            || u32::from(*acc) + 10 <= u32::from(best)
            || (*acc < 100 && n > 9)
        {
            break;
        }
        overflow |= !add(&mut types, c.kind.as_deref().unwrap_or(""));
        for cpe in &c.cpes {
            overflow |= !add(&mut cpes, cpe);
        }
        let full = if c.vendor == c.osfamily {
            c.osfamily.clone()
        } else {
            format!("{} {}", c.vendor, c.osfamily)
        };
        match families.iter_mut().find(|(f, _, _)| *f == full) {
            Some((_, gens, _)) => {
                if let Some(g) = &c.osgen {
                    if !gens.contains(g.as_str()) {
                        if !gens.is_empty() {
                            gens.push('|');
                        }
                        gens.push_str(g);
                    }
                }
            }
            None => {
                if families.len() >= MAX_OS_CLASS_MEMBERS {
                    overflow = true;
                    break;
                }
                families.push((full, c.osgen.clone().unwrap_or_default(), *acc));
            }
        }
    }
    if overflow || families.is_empty() {
        return;
    }
    let types: Vec<String> = types.iter().map(|t| escape::text(t)).collect();
    let _ = writeln!(s, "Device type: {}", types.join("|"));
    let running: Vec<String> = families
        .iter()
        .enumerate()
        .map(|(i, (f, gens, acc))| {
            let mut r = escape::text(f);
            if !gens.is_empty() {
                r.push(' ');
                r.push_str(&escape::text(gens));
            }
            if i >= perfect_classes {
                let _ = write!(r, " ({acc}%)");
            }
            r
        })
        .collect();
    let _ = writeln!(
        s,
        "Running{}: {}",
        if perfect_classes == 0 {
            " (JUST GUESSING)"
        } else {
            ""
        },
        running.join(", ")
    );
    if !cpes.is_empty() {
        let cpes: Vec<String> = cpes.iter().map(|c| escape::text(c)).collect();
        let _ = writeln!(s, "OS CPE: {}", cpes.join(" "));
    }
}

/// Protocol numbers of the names a traceroute may use, for "TRACEROUTE (using proto 1/icmp)".
fn proto_number(name: &str) -> Option<u8> {
    Some(match name {
        "icmp" => 1,
        "igmp" => 2,
        "tcp" => 6,
        "udp" => 17,
        "ipv6-icmp" => 58,
        "sctp" => 132,
        _ => return None,
    })
}

/// How many of `hops`, from the first, an earlier host's trace already holds (the same
/// ttl, address, name and rtt: Nmap writes a shared hop once per host that goes through
/// it), and the address of the host whose trace the last of them came from.
fn shared_hops(earlier: &HashMap<Hop, String>, hops: &[Hop]) -> Option<(usize, String)> {
    let mut shared = None;
    for (i, h) in hops.iter().enumerate() {
        match earlier.get(h) {
            Some(addr) => shared = Some((i + 1, addr.clone())),
            None => break,
        }
    }
    // The host's own hop is never shared: a trace wholly found in another is not folded.
    shared.filter(|(n, _)| *n < hops.len())
}

/// How many of a scan's own trace's hops, from the first, another target's trace found
/// (their tag is not `addr`), and that target: Nmap's folding, exactly.
fn tagged_hops(hops: &[Hop], addr: &str) -> Option<(usize, String)> {
    let n = hops
        .iter()
        .take_while(|h| h.tag.as_deref().is_some_and(|t| t != addr))
        .count();
    let tag = hops.get(n.checked_sub(1)?)?.tag.clone()?;
    Some((n, tag))
}

/// The TRACEROUTE table (Nmap's printtraceroute_normal). Hops that timed out are `...`
/// rows, consecutive ones in one row unless `debugging`; a trace read from XML has none,
/// and the gaps they left in its ttls are shown the same way. `shared`: the first hops
/// another target's trace found, folded into one row.
fn render_trace(
    s: &mut String,
    t: &portolan_model::Trace,
    shared: Option<(usize, String)>,
    debugging: bool,
) {
    if t.hops.is_empty() {
        return;
    }
    match (t.port, t.proto.as_deref()) {
        (Some(port), Some(proto)) => {
            let _ = writeln!(
                s,
                "\nTRACEROUTE (using port {port}/{})",
                escape::text(proto)
            );
        }
        (None, Some(proto)) => match (proto_number(proto), proto.parse::<u8>()) {
            (Some(n), _) => {
                let _ = writeln!(s, "\nTRACEROUTE (using proto {n}/{})", escape::text(proto));
            }
            (None, Ok(n)) => {
                let _ = writeln!(s, "\nTRACEROUTE (using proto {n}/unknown)");
            }
            (None, Err(_)) => {
                let _ = writeln!(s, "\nTRACEROUTE (using proto {})", escape::text(proto));
            }
        },
        _ => s.push_str("\nTRACEROUTE\n"),
    }
    let mut rows = vec![Row::Cells(vec![
        "HOP".to_string(),
        "RTT".to_string(),
        "ADDRESS".to_string(),
    ])];
    let mut next_ttl = 1u32;
    let mut hops = t.hops.as_slice();
    if let Some((n, addr)) = shared {
        let (folded, rest) = hops.split_at(n.min(hops.len()));
        if let Some(last) = folded.last() {
            let text = if last.ttl == 1 {
                format!("Hop 1 is the same as for {}", escape::text(&addr))
            } else {
                format!(
                    "Hops 1-{} are the same as for {}",
                    last.ttl,
                    escape::text(&addr)
                )
            };
            rows.push(Row::Lead(vec!["-".to_string()], text));
            next_ttl = last.ttl.saturating_add(1);
        }
        hops = rest;
    }
    let mut rest = hops.iter().peekable();
    while let Some(h) = rest.next() {
        if h.ipaddr.is_none() {
            // Timed out: with the ones that follow, unless debugging (Nmap's rows).
            let mut last = h.ttl;
            while let Some(next) = rest.peek().filter(|n| n.ipaddr.is_none() && !debugging) {
                last = next.ttl;
                rest.next();
            }
            let rtt = if last == h.ttl {
                "...".to_string()
            } else {
                format!("... {last}")
            };
            rows.push(Row::Cells(vec![h.ttl.to_string(), rtt]));
            next_ttl = last.saturating_add(1);
            continue;
        }
        if h.ttl > next_ttl {
            let last = h.ttl - 1;
            let rtt = if last == next_ttl {
                "...".to_string()
            } else {
                format!("... {last}")
            };
            rows.push(Row::Cells(vec![next_ttl.to_string(), rtt]));
        }
        let rtt = match h.rtt.as_deref() {
            None | Some("--") => "--".to_string(),
            Some(r) => format!("{} ms", escape::text(r)),
        };
        let ip = h.ipaddr.as_deref().unwrap_or("");
        let name = match h.host.as_deref() {
            Some(n) if !n.is_empty() => format!("{} ({})", escape::text(n), escape::text(ip)),
            _ => escape::text(ip),
        };
        rows.push(Row::Cells(vec![h.ttl.to_string(), rtt, name]));
        next_ttl = h.ttl.saturating_add(1);
    }
    s.push_str(&render_table(&rows));
}

/// `Service Info: Host: x; OS: Linux; Device: router; CPE: cpe:/o:...` from open ports'
/// services, as Nmap's printserviceinfooutput (application CPEs are left out).
fn render_service_info(s: &mut String, host: &Host) {
    let mut hostnames: Vec<&str> = Vec::new();
    let mut ostypes: Vec<&str> = Vec::new();
    let mut devices: Vec<&str> = Vec::new();
    let mut cpes: Vec<&str> = Vec::new();
    fn add<'a>(list: &mut Vec<&'a str>, v: &'a str) {
        if !v.is_empty() && !list.contains(&v) && list.len() < MAX_SERVICE_INFO_FIELDS {
            list.push(v);
        }
    }
    for p in host.ports.iter().filter(|p| p.state == PortState::Open) {
        let Some(svc) = &p.service else { continue };
        if let Some(h) = &svc.hostname {
            add(&mut hostnames, h);
        }
        if let Some(o) = &svc.ostype {
            add(&mut ostypes, o);
        }
        if let Some(d) = &svc.devicetype {
            add(&mut devices, d);
        }
        for c in svc.cpes.iter().filter(|c| !c.starts_with("cpe:/a")) {
            add(&mut cpes, c);
        }
    }
    if hostnames.is_empty() && ostypes.is_empty() && devices.is_empty() && cpes.is_empty() {
        return;
    }
    let mut fields = Vec::new();
    for (list, one, many) in [
        (&hostnames, "Host", "Hosts"),
        (&ostypes, "OS", "OSs"),
        (&devices, "Device", "Devices"),
        (&cpes, "CPE", "CPE"),
    ] {
        if !list.is_empty() {
            let label = if list.len() == 1 { one } else { many };
            let values: Vec<String> = list.iter().map(|v| escape::text(v)).collect();
            fields.push(format!("{label}: {}", values.join(", ")));
        }
    }
    let _ = writeln!(s, "Service Info: {}", fields.join("; "));
}

impl<W: Write> Sink for NormalWriter<W> {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let s = if self.file_header {
            format!(
                "# {} scan initiated {} as: {}\n",
                text::scanner_title(run),
                self.zone.ctime(run.start),
                escape::text(&run.args)
            )
        } else {
            format!(
                "Starting {} ( {} ) at {}\n",
                text::scanner_title(run),
                text::project_url(run),
                self.zone.starting(run.start)
            )
        };
        let mut s = s;
        if !run.prescripts.is_empty() {
            s.push_str("Pre-scan script results:\n");
            render_script_list(&mut s, &run.prescripts);
        }
        self.emit(&s)
    }

    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        self.tally.add(host);
        self.os_seen |= host.os.is_some();
        let s = self.render_host(run, host);
        if let Some(t) = &host.trace {
            for h in &t.hops {
                if !self.hops_seen.contains_key(h) {
                    self.hops_seen
                        .insert(h.clone(), host.addr_str().to_string());
                }
            }
        }
        self.emit(&s)
    }

    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let stats = self.tally.stats(run);
        let summary = format!(
            "{} scanned in {} seconds",
            text::hosts_summary(stats.hosts_total, stats.hosts_up),
            text::elapsed(stats.elapsed)
        );
        let mut s = String::new();
        if !run.postscripts.is_empty() {
            s.push_str("Post-scan script results:\n");
            render_script_list(&mut s, &run.postscripts);
        }
        if stats.hosts_up > 0 {
            if let Some(plea) = text::detection_plea(run, self.os_seen) {
                s.push_str(plea);
                s.push('\n');
            }
        }
        if let Some(c) = &stats.completeness {
            s.push_str(&escape::text(&text::completeness(c)));
            s.push('\n');
        }
        if self.file_header {
            s.push_str(&text::file_trailer(run, &stats, self.zone));
        } else {
            s.push_str(&format!("{} done: {summary}\n", text::scanner_name(run)));
        }
        self.emit(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::{OsClass, OsMatch, Port, PortUsed, Protocol, Service, Trace};

    #[test]
    fn table_pads_and_trims() {
        let rows = vec![
            Row::Cells(vec!["PORT".into(), "STATE".into(), "SERVICE".into()]),
            Row::Cells(vec!["22/tcp".into(), "open".into(), "ssh".into()]),
            Row::Full("|_x: y".into()),
            Row::Cells(vec!["8080/tcp".into(), "closed".into(), "".into()]),
        ];
        assert_eq!(
            render_table(&rows),
            "PORT     STATE  SERVICE\n22/tcp   open   ssh\n|_x: y\n8080/tcp closed\n"
        );
    }

    fn class(
        kind: &str,
        vendor: &str,
        family: &str,
        gen: Option<&str>,
        acc: u8,
        cpe: &str,
    ) -> OsClass {
        OsClass {
            kind: Some(kind.into()),
            vendor: vendor.into(),
            osfamily: family.into(),
            osgen: gen.map(str::to_string),
            accuracy: acc,
            cpes: vec![cpe.into()],
        }
    }

    fn os_match(name: &str, accuracy: u8, classes: Vec<OsClass>) -> OsMatch {
        OsMatch {
            name: name.into(),
            accuracy,
            line: 1,
            classes,
        }
    }

    /// What a reliable OS scan used: an open and a closed TCP port.
    fn open_and_closed() -> Vec<PortUsed> {
        [(PortState::Open, 22), (PortState::Closed, 1)]
            .into_iter()
            .map(|(state, portid)| PortUsed {
                state,
                proto: Protocol::Tcp,
                portid,
            })
            .collect()
    }

    #[test]
    fn perfect_os_matches_are_classified_as_nmap_does() {
        let os = Os {
            ports_used: open_and_closed(),
            matches: vec![
                os_match(
                    "Linux 4.15 - 5.6",
                    100,
                    vec![
                        class(
                            "general purpose",
                            "Linux",
                            "Linux",
                            Some("4.X"),
                            100,
                            "cpe:/o:linux:linux_kernel:4",
                        ),
                        class(
                            "general purpose",
                            "Linux",
                            "Linux",
                            Some("5.X"),
                            100,
                            "cpe:/o:linux:linux_kernel:5",
                        ),
                    ],
                ),
                // Its class repeats the one above, so its CPE is not listed (Nmap dedups classes).
                os_match(
                    "Linux 5.4",
                    100,
                    vec![class(
                        "general purpose",
                        "Linux",
                        "Linux",
                        Some("5.X"),
                        100,
                        "cpe:/o:linux:linux_kernel:5.4",
                    )],
                ),
                // Lesser matches are not shown once there are perfect ones.
                os_match(
                    "AXIS camera",
                    95,
                    vec![class(
                        "webcam",
                        "AXIS",
                        "embedded",
                        None,
                        95,
                        "cpe:/h:axis:210a",
                    )],
                ),
            ],
            fingerprints: Vec::new(),
            coarse: None,
        };
        let mut s = String::new();
        render_os(&mut s, &os, false);
        assert_eq!(
            s,
            "Device type: general purpose\n\
Running: Linux 4.X|5.X\n\
OS CPE: cpe:/o:linux:linux_kernel:4 cpe:/o:linux:linux_kernel:5\n\
OS details: Linux 4.15 - 5.6, Linux 5.4\n"
        );
    }

    #[test]
    fn os_results_without_an_open_and_a_closed_port_come_with_nmaps_warning() {
        let used = |state, portid| PortUsed {
            state,
            proto: Protocol::Tcp,
            portid,
        };
        let mut os = Os {
            ports_used: vec![used(PortState::Open, 22)],
            matches: Vec::new(),
            fingerprints: Vec::new(),
            coarse: None,
        };
        let mut s = String::new();
        render_os(&mut s, &os, false);
        assert_eq!(
            s,
            "Warning: OSScan results may be unreliable because we could not find at least 1 open and 1 closed port\n\
No OS matches for host\n"
        );
        os.ports_used.push(used(PortState::Closed, 1));
        let mut s = String::new();
        render_os(&mut s, &os, false);
        assert_eq!(s, "No OS matches for host\n");
    }

    /// Nmap's XML of a host whose ports were all closed holds no match and no fingerprint:
    /// every reference matched the little it said ("Too many fingerprints", no warning).
    #[test]
    fn an_empty_result_without_an_open_port_is_too_many_matches() {
        let os = Os {
            ports_used: vec![PortUsed {
                state: PortState::Closed,
                proto: Protocol::Tcp,
                portid: 1,
            }],
            matches: Vec::new(),
            fingerprints: Vec::new(),
            coarse: None,
        };
        let mut s = String::new();
        render_os(&mut s, &os, false);
        assert_eq!(
            s,
            "Too many fingerprints match this host to give specific OS details\n"
        );
    }

    #[test]
    fn a_coarse_guess_is_labelled_as_ours() {
        let os = Os {
            ports_used: open_and_closed(),
            matches: Vec::new(),
            fingerprints: Vec::new(),
            coarse: Some("Linux (from initial TTL 64; no nmap-os-db, not an Nmap match)".into()),
        };
        let mut s = String::new();
        render_os(&mut s, &os, false);
        assert_eq!(
            s,
            "No OS matches for host\n\
Coarse OS guess: Linux (from initial TTL 64; no nmap-os-db, not an Nmap match)\n"
        );
    }

    #[test]
    fn os_guesses_when_conditions_were_not_ideal() {
        let os = Os {
            ports_used: open_and_closed(),
            matches: vec![
                os_match(
                    "Linux 5.3 - 5.4",
                    96,
                    vec![class(
                        "general purpose",
                        "Linux",
                        "Linux",
                        Some("5.X"),
                        96,
                        "cpe:/o:linux:linux_kernel:5",
                    )],
                ),
                os_match(
                    "AXIS camera (Linux 2.6.17)",
                    94,
                    vec![
                        class(
                            "webcam",
                            "Linux",
                            "Linux",
                            Some("2.6.X"),
                            94,
                            "cpe:/o:linux:linux_kernel:2.6.17",
                        ),
                        class("webcam", "AXIS", "embedded", None, 94, "cpe:/h:axis:210a"),
                    ],
                ),
            ],
            // No fingerprint printed: Nmap judged it unfit for submission, and guesses.
            fingerprints: Vec::new(),
            coarse: None,
        };
        let mut s = String::new();
        render_os(&mut s, &os, false);
        assert_eq!(
            s,
            "Device type: general purpose|webcam\n\
Running (JUST GUESSING): Linux 5.X|2.6.X (96%), AXIS embedded (94%)\n\
OS CPE: cpe:/o:linux:linux_kernel:5 cpe:/o:linux:linux_kernel:2.6.17 cpe:/h:axis:210a\n\
Aggressive OS guesses: Linux 5.3 - 5.4 (96%), AXIS camera (Linux 2.6.17) (94%)\n\
No exact OS matches for host (test conditions non-ideal).\n"
        );
    }

    /// A fingerprint as nmap 7.93 printed it (a listener answering with a banner).
    const NMAP_FP: &str = "\
SF-Port47811-TCP:V=7.93%I=7%D=12/5%Time=6B139F57%P=x86_64-pc-linux-gnu%r(N
SF:ULL,3A,\"ZORGLUB-7\\x20\\0\\x01\\x02\\x20weird\\tbanner\\x20ready\\x20\\(x=1\\)\\x2
SF:0\\[ok\\]\\x20\\$\\^\\|\\*\\+\\?\\.\\\\\\x20\\\"q\\\"\\r\\n\");";

    fn host_with_fps(fps: &[Option<&str>]) -> Host {
        let mut h = Host::new(
            "192.0.2.1".parse().unwrap(),
            portolan_model::HostStatus::up("syn-ack"),
        );
        for (i, fp) in fps.iter().enumerate() {
            let mut p = Port::new(Protocol::Tcp, 1000 + i as u16, PortState::Open, "syn-ack");
            p.service = Some(Service {
                servicefp: fp.map(|f| f.replace("\nSF:", "")),
                ..Service::from_table("unknown")
            });
            h.ports.push(p);
        }
        h
    }

    #[test]
    fn one_fingerprint_is_printed_wrapped_as_nmap_does() {
        let mut s = String::new();
        render_servicefps(&mut s, &host_with_fps(&[None, Some(NMAP_FP)]));
        assert_eq!(
            s,
            format!(
                "1 service unrecognized despite returning data. If you know the \
                 service/version, please submit the following fingerprint at \
                 https://nmap.org/cgi-bin/submit.cgi?new-service :\n{NMAP_FP}\n"
            )
        );
        let mut s = String::new();
        render_servicefps(&mut s, &host_with_fps(&[None]));
        assert_eq!(s, "");
    }

    #[test]
    fn several_fingerprints_are_separated_and_at_most_nine() {
        let fps = vec![Some(NMAP_FP); 12];
        let mut s = String::new();
        render_servicefps(&mut s, &host_with_fps(&fps));
        assert!(s.starts_with(
            "9 services unrecognized despite returning data. If you know the service/version, \
             please submit the following fingerprints at"
        ));
        let sep = "==============NEXT SERVICE FINGERPRINT (SUBMIT INDIVIDUALLY)==============\n";
        assert_eq!(s.matches(sep).count(), 9);
        assert!(s.contains(&format!("{sep}{NMAP_FP}\n{sep}")));
    }

    #[test]
    fn the_final_semicolon_is_never_wrapped() {
        let line = "x".repeat(SERVICEFP_WRAP);
        assert_eq!(wrap_servicefp(&format!("{line};")), format!("{line};"));
        assert_eq!(
            wrap_servicefp(&format!("{line}y;")),
            format!("{line}\nSF:y;")
        );
        let second = "y".repeat(SERVICEFP_WRAP - 3);
        assert_eq!(
            wrap_servicefp(&format!("{line}{second}z;")),
            format!("{line}\nSF:{second}\nSF:z;")
        );
    }

    #[test]
    fn trace_gaps_show_as_timed_out_rows() {
        let hop = |ttl: u32, ip: &str, rtt: &str, host: Option<&str>| Hop {
            ttl,
            ipaddr: Some(ip.into()),
            rtt: Some(rtt.into()),
            host: host.map(str::to_string),
            tag: None,
        };
        let t = Trace {
            port: None,
            proto: Some("icmp".into()),
            hops: vec![
                hop(1, "192.0.2.1", "0.50", Some("gw.example")),
                hop(3, "192.0.2.3", "--", None),
                hop(7, "192.0.2.7", "12.25", None),
            ],
        };
        let mut s = String::new();
        render_trace(&mut s, &t, None, false);
        assert_eq!(
            s,
            "\nTRACEROUTE (using proto 1/icmp)\n\
HOP RTT      ADDRESS\n\
1   0.50 ms  gw.example (192.0.2.1)\n\
2   ...\n\
3   --       192.0.2.3\n\
4   ... 6\n\
7   12.25 ms 192.0.2.7\n"
        );
    }

    #[test]
    fn a_scans_own_trace_folds_by_tag_and_shows_its_timeouts() {
        let hop = |ttl: u32, ip: Option<&str>, tag: &str| Hop {
            ttl,
            ipaddr: ip.map(str::to_string),
            rtt: ip.map(|_| "0.10".to_string()),
            host: None,
            tag: Some(tag.into()),
        };
        // Hops 1-3 found by 198.18.2.10's trace (the second timed out), the host itself at
        // 4: as Nmap prints it, even though that host comes later in the output.
        let (other, me) = ("198.18.2.10", "198.18.2.99");
        let mut hops = vec![
            hop(1, Some("198.18.0.2"), other),
            hop(2, None, other),
            hop(3, Some("198.18.1.6"), other),
            hop(4, Some("198.18.1.6"), me),
        ];
        hops.extend((5..=30).map(|ttl| hop(ttl, None, me)));
        let shared = tagged_hops(&hops, me);
        assert_eq!(shared, Some((3, other.to_string())));
        let t = Trace {
            port: None,
            proto: Some("icmp".into()),
            hops,
        };
        let mut s = String::new();
        render_trace(&mut s, &t, shared, false);
        assert_eq!(
            s,
            "\nTRACEROUTE (using proto 1/icmp)\n\
HOP RTT     ADDRESS\n\
-   Hops 1-3 are the same as for 198.18.2.10\n\
4   0.10 ms 198.18.1.6\n\
5   ... 30\n"
        );
        // Debugging: nothing folded, every timed-out hop its own row.
        let mut s = String::new();
        render_trace(&mut s, &t, None, true);
        assert!(s.contains("\n2   ...\n3   0.10 ms 198.18.1.6\n"), "{s}");
        assert!(s.contains("\n5   ...\n6   ...\n"), "{s}");
        assert!(s.ends_with("\n30  ...\n"), "{s}");
        // A trace all its own is not folded.
        assert_eq!(tagged_hops(&t.hops[3..], me), None);
    }

    #[test]
    fn hops_an_earlier_trace_holds_are_folded() {
        let hop = |ttl: u32, ip: &str, rtt: &str| Hop {
            ttl,
            ipaddr: Some(ip.into()),
            rtt: Some(rtt.into()),
            host: None,
            tag: None,
        };
        let first = vec![
            hop(1, "192.0.2.1", "0.50"),
            hop(2, "192.0.2.2", "1.00"),
            hop(3, "192.0.2.30", "1.50"),
        ];
        let earlier: HashMap<Hop, String> = first
            .iter()
            .map(|h| (h.clone(), "192.0.2.30".to_string()))
            .collect();
        let second = vec![
            hop(1, "192.0.2.1", "0.50"),
            hop(2, "192.0.2.2", "1.00"),
            hop(3, "192.0.2.40", "1.75"),
        ];
        let shared = shared_hops(&earlier, &second);
        assert_eq!(shared, Some((2, "192.0.2.30".to_string())));
        // The same router answering with another rtt is another probe: not folded.
        let third = vec![hop(1, "192.0.2.1", "0.75"), hop(2, "192.0.2.50", "1.00")];
        assert_eq!(shared_hops(&earlier, &third), None);
        // A trace wholly held by an earlier one (the same target twice) is not folded.
        assert_eq!(shared_hops(&earlier, &first), None);
        let t = Trace {
            port: Some(80),
            proto: Some("tcp".into()),
            hops: second,
        };
        let mut s = String::new();
        render_trace(&mut s, &t, shared, false);
        assert_eq!(
            s,
            "\nTRACEROUTE (using port 80/tcp)\n\
HOP RTT     ADDRESS\n\
-   Hops 1-2 are the same as for 192.0.2.30\n\
3   1.75 ms 192.0.2.40\n"
        );
    }

    #[test]
    fn script_output_framing() {
        assert_eq!(
            script_block("http-title", "Hi").as_deref(),
            Some("|_http-title: Hi")
        );
        assert_eq!(
            script_block("ssh-hostkey", "\n  3072 aa (RSA)\n  256 bb (ED25519)").as_deref(),
            Some("| ssh-hostkey: \n|   3072 aa (RSA)\n|_  256 bb (ED25519)")
        );
        assert_eq!(
            script_block("x", "\u{1b}[2J").as_deref(),
            Some("|_x: \\x1B[2J")
        );
        // Nmap prints nothing at all for a script whose output is empty.
        assert_eq!(script_block("x", ""), None);
        // A final newline adds no empty `|_` line (Nmap's vulns reports end with one).
        assert_eq!(
            script_block("v", "VULNERABLE:\n  refs\n").as_deref(),
            Some("| v: VULNERABLE:\n|_  refs")
        );
        assert_eq!(script_block("v", "\n").as_deref(), Some("|_v: "));
    }
}
