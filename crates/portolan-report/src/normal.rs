//! Nmap's human-readable output, for the terminal and for -oN files, with Nmap 7.93's exact
//! layout ("Nmap" replaced by our own name): report header, "Host is up", "Not shown",
//! the port table with its optional REASON and VERSION columns, script output under its
//! port, MAC address, "Service Info", and the footer.

use std::fmt::Write as _;
use std::io::Write;

use crate::escape;
use crate::text::{self, Tally};
use crate::timefmt::Zone;
use portolan_model::{AddrType, Host, HostState, HostnameType, PortState, ScanRun};
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
        render_service_info(&mut s, host);
        // Nmap closes each port-scanned host with a blank line (not ping-only ones).
        if has_ports {
            s.push('\n');
        }
        s
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
                rows.push(Row::Full(script_block(&sc.id, &sc.output)));
            }
        }
        s.push_str(&render_table(&rows));
    }
}

enum Row {
    Cells(Vec<String>),
    /// A row that spans the table (script output) and does not widen columns.
    Full(String),
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
        }
    }
    out
}

/// Script output under its port: `|_id: line` for one line, else `| id: first`, `| ...`,
/// `|_last` (Nmap's formatScriptOutput).
fn script_block(id: &str, output: &str) -> String {
    let lines: Vec<&str> = output.split('\n').collect();
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
    out
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
        self.emit(&s)
    }

    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        self.tally.add(host);
        let s = self.render_host(run, host);
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
        if let Some(c) = &stats.completeness {
            s.push_str(&escape::text(&text::completeness(c)));
            s.push('\n');
        }
        if self.file_header {
            s.push_str(&format!(
                "# {} done at {} -- {summary}\n",
                text::scanner_name(run),
                self.zone.ctime(stats.finished)
            ));
        } else {
            s.push_str(&format!("{} done: {summary}\n", text::scanner_name(run)));
        }
        self.emit(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn script_output_framing() {
        assert_eq!(script_block("http-title", "Hi"), "|_http-title: Hi");
        assert_eq!(
            script_block("ssh-hostkey", "\n  3072 aa (RSA)\n  256 bb (ED25519)"),
            "| ssh-hostkey: \n|   3072 aa (RSA)\n|_  256 bb (ED25519)"
        );
        assert_eq!(script_block("x", "\u{1b}[2J"), "|_x: \\x1B[2J");
    }
}
