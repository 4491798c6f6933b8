//! Nmap's grepable output (-oG): one `Host:` line for the status and one for the ports,
//! tab-separated fields, `port/state/proto/owner/service/rpcinfo/version/` entries.

use std::fmt::Write as _;
use std::io::Write;

use crate::escape;
use crate::text::{self, Tally};
use crate::timefmt::Zone;
use portolan_model::{Host, HostState, HostnameType, Protocol, ScanRun};
use portolan_model::{OutputError, OutputOptions, Sink};

/// Writes Nmap's grepable format to any byte sink.
pub struct GrepableWriter<W: Write> {
    out: W,
    opts: OutputOptions,
    version_scan: bool,
    zone: Zone,
    tally: Tally,
}

impl<W: Write> GrepableWriter<W> {
    pub fn new(out: W, opts: OutputOptions) -> Self {
        GrepableWriter {
            out,
            opts,
            version_scan: false,
            zone: Zone::Local,
            tally: Tally::default(),
        }
    }

    /// Declares that version detection ran (adds the `?` to unconfirmed names, as Nmap);
    /// otherwise inferred per host.
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

    fn render_host(&self, host: &Host) -> String {
        // The grepable format names the host by its reverse-DNS name only.
        let ptr = host
            .hostnames
            .iter()
            .find(|h| h.kind == HostnameType::Ptr)
            .map(|h| h.name.as_str())
            .unwrap_or("");
        let who = format!("Host: {} ({})", field(host.addr_str()), field(ptr));
        let mut s = String::new();
        match host.status.state {
            HostState::Up => {}
            HostState::Down => {
                if self.opts.verbose > 0 {
                    let _ = writeln!(s, "{who}\tStatus: Down");
                }
                return s;
            }
            // A list scan (-sL): the target, not probed.
            HostState::Unknown => {
                let _ = writeln!(s, "{who}\tStatus: Unknown");
                return s;
            }
            HostState::Skipped => return s,
        }
        let _ = writeln!(s, "{who}\tStatus: Up");
        if host.ports.is_empty() && host.extraports.is_empty() {
            return s;
        }
        let version_scan = self.version_scan || text::version_scanned(host);
        let entries: Vec<String> = host
            .ports
            .iter()
            .map(|p| {
                let service = match &p.service {
                    Some(_) => slashless(&text::service_label(p, version_scan)),
                    None => String::new(),
                };
                let version = p
                    .service
                    .as_ref()
                    .map(|svc| slashless(&text::full_version(svc)))
                    .unwrap_or_default();
                format!(
                    "{}/{}/{}//{}//{}/",
                    p.portid, p.state, p.protocol, service, version
                )
            })
            .collect();
        let _ = write!(s, "{who}\tPorts: {}", entries.join(", "));
        // Nmap's format has room for one ignored state only; with several it names none.
        let mut states = Vec::new();
        for e in &host.extraports {
            if !states.contains(&e.state) {
                states.push(e.state);
            }
        }
        if let [state] = states.as_slice() {
            let count: u32 = host.extraports.iter().map(|e| e.count).sum();
            if count > 0 {
                let _ = write!(s, "\tIgnored State: {state} ({count})");
            }
        }
        // OS detection's fields, as printosscanoutput appends them: the perfect matches
        // (when there are few enough to be named), then the sequence analyses.
        if let Some(os) = &host.os {
            let perfect: Vec<String> = os
                .matches
                .iter()
                .take_while(|m| m.accuracy >= 100)
                .map(|m| field(&m.name))
                .collect();
            if !perfect.is_empty() && perfect.len() <= 8 {
                let _ = write!(s, "\tOS: {}", perfect.join("|"));
            }
        }
        if let Some(t) = &host.tcpsequence {
            let _ = write!(s, "\tSeq Index: {}", t.index);
        }
        if let Some(t) = &host.ipidsequence {
            let _ = write!(s, "\tIP ID Seq: {}", field(&t.class));
        }
        s.push('\n');
        s
    }
}

/// Keeps a value inside its field: `/` would start the next one (Nmap writes `|`), and
/// control characters would break the line.
fn slashless(s: &str) -> String {
    field(&s.replace('/', "|"))
}

fn field(s: &str) -> String {
    escape::text(s)
}

/// `# Ports scanned: TCP(5;20-23,8080) UDP(0;) SCTP(0;) PROTOCOLS(0;)` (verbose only).
fn ports_scanned(run: &ScanRun) -> String {
    let mut s = String::from("# Ports scanned:");
    for (proto, label) in [
        (Protocol::Tcp, "TCP"),
        (Protocol::Udp, "UDP"),
        (Protocol::Sctp, "SCTP"),
        (Protocol::Ip, "PROTOCOLS"),
    ] {
        match run.scaninfo.iter().find(|si| si.protocol == proto) {
            Some(si) => {
                let _ = write!(s, " {label}({};{})", si.numservices, field(&si.services));
            }
            None => {
                let _ = write!(s, " {label}(0;)");
            }
        }
    }
    s.push('\n');
    s
}

impl<W: Write> Sink for GrepableWriter<W> {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let mut s = format!(
            "# {} scan initiated {} as: {}\n",
            text::scanner_title(run),
            self.zone.ctime(run.start),
            field(&run.args)
        );
        if self.opts.verbose > 0 {
            s.push_str(&ports_scanned(run));
        }
        self.emit(&s)
    }

    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        self.tally.add(host);
        let mut s = self.render_host(host);
        // A traced (or scripted) ping-scan host ends with the newline that closes a
        // port-scanned host's Ports line: here, a blank line.
        if host.is_up() && text::ping_scan_in_full(run) {
            s.push('\n');
        }
        self.emit(&s)
    }

    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let stats = self.tally.stats(run);
        let mut s = String::new();
        if let Some(c) = &stats.completeness {
            s.push_str(&format!("# {}\n", text::completeness(c)));
        }
        s += &text::file_trailer(run, &stats, self.zone);
        self.emit(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::*;

    #[test]
    fn slashes_become_pipes() {
        let mut h = Host::new("192.0.2.1".parse().unwrap(), HostStatus::up("syn-ack"));
        let mut p = Port::new(Protocol::Tcp, 443, PortState::Open, "syn-ack");
        p.service = Some(Service {
            name: "http".into(),
            tunnel: Some("ssl".into()),
            product: Some("nginx".into()),
            version: Some("1.22.1".into()),
            extrainfo: Some("a/b".into()),
            method: ServiceMethod::Probed,
            conf: 10,
            ..Service::default()
        });
        h.ports.push(p);
        let w = GrepableWriter::new(Vec::new(), OutputOptions::default());
        assert_eq!(
            w.render_host(&h),
            "Host: 192.0.2.1 ()\tStatus: Up\n\
Host: 192.0.2.1 ()\tPorts: 443/open/tcp//ssl|http//nginx 1.22.1 (a|b)/\n"
        );
    }
}
