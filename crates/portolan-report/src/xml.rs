//! Nmap XML output (-oX), xmloutputversion 1.05, laid out byte for byte like Nmap 7.93's so
//! that ndiff, python-libnmap, Metasploit's importer and XSL stylesheets read it unchanged.
//!
//! The document is streamed: the prologue at `begin`, each `<host>` as it is finished (flushed,
//! so the file is useful while a scan runs), `<runstats>` and the closing tag at `end`.
//!
//! nmap.dtd enumerates only "nmap" for `nmaprun@scanner`, so that is what we write: files
//! must validate against the stock DTD. Who wrote the file is said by the prologue comment
//! ("Portolan 0.1.0 scan initiated ...") and `version`; the reader restores it from there.

use std::fmt::Write as _;
use std::io::Write;

use crate::escape;
use crate::text::{self, Tally};
use crate::timefmt::Zone;
use portolan_model::{Host, HostState, Port, ScanRun, Script, ScriptItem, Service};
use portolan_model::{OutputError, OutputOptions, Sink};

/// Where Nmap's stylesheet is installed on most systems; browsers use it to render the file.
pub const DEFAULT_STYLESHEET: &str = "file:///usr/share/nmap/nmap.xsl";

/// Writes Nmap-compatible XML to any byte sink.
pub struct XmlWriter<W: Write> {
    out: W,
    opts: OutputOptions,
    stylesheet: Option<String>,
    zone: Zone,
    tally: Tally,
}

impl<W: Write> XmlWriter<W> {
    pub fn new(out: W, opts: OutputOptions) -> Self {
        XmlWriter {
            out,
            opts,
            stylesheet: Some(DEFAULT_STYLESHEET.to_string()),
            zone: Zone::Local,
            tally: Tally::default(),
        }
    }

    /// The `xml-stylesheet` reference: Nmap's `--stylesheet <href>`, or `None` for
    /// `--no-stylesheet`. Defaults to [`DEFAULT_STYLESHEET`].
    pub fn with_stylesheet(mut self, href: Option<String>) -> Self {
        self.stylesheet = href;
        self
    }

    /// Renders the human-readable times (`startstr`, `timestr`, the comment) in UTC instead
    /// of the local time zone; the epoch attributes are unaffected.
    pub fn with_utc(mut self, utc: bool) -> Self {
        self.zone = Zone::from_utc_flag(utc);
        self
    }

    /// The options this writer was made with.
    pub fn options(&self) -> &OutputOptions {
        &self.opts
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
}

/// Appends ` name="value"` with the value escaped.
fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    out.push_str(&escape::xml(value));
    out.push('"');
}

fn opt_attr(out: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        attr(out, name, v);
    }
}

/// The prologue and `<nmaprun>` start tag through `<debugging>`.
pub(crate) fn render_begin(run: &ScanRun, stylesheet: Option<&str>, zone: Zone) -> String {
    let mut s = String::new();
    s.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str("<!DOCTYPE nmaprun>\n");
    if let Some(href) = stylesheet {
        // Escaping `>` also keeps a `?>` in the href from ending the instruction early.
        let href = escape::xml(href);
        let _ = writeln!(s, "<?xml-stylesheet href=\"{href}\" type=\"text/xsl\"?>");
    }
    let startstr = zone.ctime(run.start);
    let _ = writeln!(
        s,
        "<!-- {} scan initiated {} as: {} -->",
        escape::xml(&text::scanner_title(run)),
        startstr,
        escape::xml(&run.args)
    );
    s.push_str("<nmaprun");
    attr(&mut s, "scanner", "nmap");
    attr(&mut s, "args", &run.args);
    attr(&mut s, "start", &run.start.to_string());
    attr(&mut s, "startstr", &startstr);
    attr(&mut s, "version", &run.version);
    attr(&mut s, "xmloutputversion", "1.05");
    s.push_str(">\n");
    for si in &run.scaninfo {
        s.push_str("<scaninfo");
        attr(&mut s, "type", si.scan_type.as_str());
        attr(&mut s, "protocol", si.protocol.as_str());
        attr(&mut s, "numservices", &si.numservices.to_string());
        attr(&mut s, "services", &si.services);
        s.push_str("/>\n");
    }
    let _ = writeln!(s, "<verbose level=\"{}\"/>", run.verbose);
    let _ = writeln!(s, "<debugging level=\"{}\"/>", run.debugging);
    render_scripts(&mut s, "prescript", &run.prescripts);
    s
}

/// `<prescript>`, `<postscript>` or `<hostscript>` around its scripts; Nmap ends the element
/// without a newline, so whatever follows starts on the same line.
fn render_scripts(s: &mut String, element: &str, scripts: &[Script]) {
    if scripts.is_empty() {
        return;
    }
    let _ = write!(s, "<{element}>");
    for sc in scripts {
        render_script(s, sc);
    }
    let _ = write!(s, "</{element}>");
}

/// One `<script>`: empty when the script returned text only, else its structured output with
/// one element per line, as NSE's format_xml writes it.
fn render_script(s: &mut String, sc: &Script) {
    s.push_str("<script");
    attr(s, "id", &sc.id);
    attr(s, "output", &sc.output);
    if sc.content.is_empty() {
        s.push_str("/>");
        return;
    }
    s.push('>');
    render_items(s, &sc.content);
    s.push_str("</script>");
}

fn render_items(s: &mut String, items: &[ScriptItem]) {
    for item in items {
        match item {
            ScriptItem::Elem { key, value } => {
                s.push_str("<elem");
                opt_attr(s, "key", key.as_deref());
                s.push('>');
                s.push_str(&escape::xml(value));
                s.push_str("</elem>\n");
            }
            ScriptItem::Table { key, items } => {
                s.push_str("<table");
                opt_attr(s, "key", key.as_deref());
                s.push_str(">\n");
                render_items(s, items);
                s.push_str("</table>\n");
            }
        }
    }
}

/// `<os>` and the elements after it, in Nmap's order (printosscanoutput), through `<trace>`.
fn render_os_and_after(s: &mut String, host: &Host) {
    if let Some(os) = &host.os {
        s.push_str("<os>");
        for pu in &os.ports_used {
            s.push_str("<portused");
            attr(s, "state", pu.state.as_str());
            attr(s, "proto", pu.proto.as_str());
            attr(s, "portid", &pu.portid.to_string());
            s.push_str("/>\n");
        }
        for m in &os.matches {
            s.push_str("<osmatch");
            attr(s, "name", &m.name);
            attr(s, "accuracy", &m.accuracy.to_string());
            attr(s, "line", &m.line.to_string());
            if m.classes.is_empty() {
                s.push_str("/>\n");
                continue;
            }
            s.push_str(">\n");
            for c in &m.classes {
                s.push_str("<osclass");
                opt_attr(s, "type", c.kind.as_deref());
                attr(s, "vendor", &c.vendor);
                attr(s, "osfamily", &c.osfamily);
                opt_attr(s, "osgen", c.osgen.as_deref());
                attr(s, "accuracy", &c.accuracy.to_string());
                if c.cpes.is_empty() {
                    s.push_str("/>\n");
                } else {
                    s.push('>');
                    for cpe in &c.cpes {
                        s.push_str("<cpe>");
                        s.push_str(&escape::xml(cpe));
                        s.push_str("</cpe>");
                    }
                    s.push_str("</osclass>\n");
                }
            }
            s.push_str("</osmatch>\n");
        }
        for fp in &os.fingerprints {
            s.push_str("<osfingerprint");
            attr(s, "fingerprint", fp);
            s.push_str("/>\n");
        }
        s.push_str("</os>\n");
    }
    if let Some(u) = &host.uptime {
        s.push_str("<uptime");
        attr(s, "seconds", &u.seconds.to_string());
        opt_attr(s, "lastboot", u.lastboot.as_deref());
        s.push_str("/>\n");
    }
    if let Some(d) = host.distance {
        let _ = writeln!(s, "<distance value=\"{d}\"/>");
    }
    if let Some(t) = &host.tcpsequence {
        s.push_str("<tcpsequence");
        attr(s, "index", &t.index.to_string());
        attr(s, "difficulty", &t.difficulty);
        attr(s, "values", &t.values);
        s.push_str("/>\n");
    }
    if let Some(t) = &host.ipidsequence {
        s.push_str("<ipidsequence");
        attr(s, "class", &t.class);
        attr(s, "values", &t.values);
        s.push_str("/>\n");
    }
    if let Some(t) = &host.tcptssequence {
        s.push_str("<tcptssequence");
        attr(s, "class", &t.class);
        opt_attr(s, "values", t.values.as_deref());
        s.push_str("/>\n");
    }
    render_scripts(s, "hostscript", &host.hostscripts);
    if let Some(t) = &host.trace {
        s.push_str("<trace");
        if let Some(port) = t.port {
            attr(s, "port", &port.to_string());
        }
        opt_attr(s, "proto", t.proto.as_deref());
        s.push_str(">\n");
        // Nmap's XML leaves out the hops that timed out.
        for h in t.hops.iter().filter(|h| h.ipaddr.is_some()) {
            s.push_str("<hop");
            attr(s, "ttl", &h.ttl.to_string());
            opt_attr(s, "ipaddr", h.ipaddr.as_deref());
            opt_attr(s, "rtt", h.rtt.as_deref());
            opt_attr(s, "host", h.host.as_deref());
            s.push_str("/>\n");
        }
        s.push_str("</trace>\n");
    }
}

/// One `<host>` element with its trailing newline.
pub(crate) fn render_host(host: &Host) -> String {
    let mut s = String::new();
    s.push_str("<host");
    if let Some(t) = host.starttime {
        attr(&mut s, "starttime", &t.to_string());
    }
    if let Some(t) = host.endtime {
        attr(&mut s, "endtime", &t.to_string());
    }
    s.push_str("><status");
    attr(&mut s, "state", host.status.state.as_str());
    attr(&mut s, "reason", &host.status.reason);
    attr(&mut s, "reason_ttl", &host.status.reason_ttl.to_string());
    s.push_str("/>\n");
    for a in &host.addresses {
        s.push_str("<address");
        attr(&mut s, "addr", &a.addr);
        attr(&mut s, "addrtype", a.addrtype.as_str());
        opt_attr(&mut s, "vendor", a.vendor.as_deref());
        s.push_str("/>\n");
    }
    // Nmap always writes the (possibly empty) list for hosts that are up, and omits it for
    // down hosts that have no name.
    if host.status.state == HostState::Up || !host.hostnames.is_empty() {
        s.push_str("<hostnames>\n");
        for h in &host.hostnames {
            s.push_str("<hostname");
            attr(&mut s, "name", &h.name);
            attr(&mut s, "type", h.kind.as_str());
            s.push_str("/>\n");
        }
        s.push_str("</hostnames>\n");
    }
    if !host.ports.is_empty() || !host.extraports.is_empty() {
        s.push_str("<ports>");
        for ep in &host.extraports {
            s.push_str("<extraports");
            attr(&mut s, "state", ep.state.as_str());
            attr(&mut s, "count", &ep.count.to_string());
            s.push_str(">\n");
            for r in &ep.reasons {
                s.push_str("<extrareasons");
                attr(&mut s, "reason", &r.reason);
                attr(&mut s, "count", &r.count.to_string());
                opt_attr(&mut s, "proto", r.proto.map(|p| p.as_str()));
                if !r.port_list.is_empty() {
                    attr(
                        &mut s,
                        "ports",
                        &portolan_model::compact_port_list(&r.port_list),
                    );
                }
                s.push_str("/>\n");
            }
            s.push_str("</extraports>\n");
        }
        for p in &host.ports {
            render_port(&mut s, p);
        }
        s.push_str("</ports>\n");
    }
    render_os_and_after(&mut s, host);
    if let Some(t) = &host.times {
        let _ = writeln!(
            s,
            "<times srtt=\"{}\" rttvar=\"{}\" to=\"{}\"/>",
            t.srtt, t.rttvar, t.to
        );
    }
    s.push_str("</host>\n");
    s
}

fn render_port(s: &mut String, p: &Port) {
    s.push_str("<port");
    attr(s, "protocol", p.protocol.as_str());
    attr(s, "portid", &p.portid.to_string());
    s.push_str("><state");
    attr(s, "state", p.state.as_str());
    attr(s, "reason", &p.reason);
    attr(s, "reason_ttl", &p.reason_ttl.to_string());
    opt_attr(s, "reason_ip", p.reason_ip.as_deref());
    s.push_str("/>");
    if let Some(svc) = &p.service {
        render_service(s, svc);
    }
    for sc in &p.scripts {
        render_script(s, sc);
    }
    s.push_str("</port>\n");
}

/// Attribute order as Nmap's print_xml_service.
fn render_service(s: &mut String, svc: &Service) {
    s.push_str("<service");
    attr(s, "name", &svc.name);
    opt_attr(s, "product", svc.product.as_deref());
    opt_attr(s, "version", svc.version.as_deref());
    opt_attr(s, "extrainfo", svc.extrainfo.as_deref());
    opt_attr(s, "hostname", svc.hostname.as_deref());
    opt_attr(s, "ostype", svc.ostype.as_deref());
    opt_attr(s, "devicetype", svc.devicetype.as_deref());
    opt_attr(s, "servicefp", svc.servicefp.as_deref());
    opt_attr(s, "tunnel", svc.tunnel.as_deref());
    attr(s, "method", svc.method.as_str());
    attr(s, "conf", &svc.conf.to_string());
    if svc.cpes.is_empty() {
        s.push_str("/>");
    } else {
        s.push('>');
        for cpe in &svc.cpes {
            s.push_str("<cpe>");
            s.push_str(&escape::xml(cpe));
            s.push_str("</cpe>");
        }
        s.push_str("</service>");
    }
}

/// `<runstats>` and the closing tag.
pub(crate) fn render_end(run: &ScanRun, tally: Tally, zone: Zone) -> String {
    let stats = tally.stats(run);
    let timestr = zone.ctime(stats.finished);
    let elapsed = text::elapsed(stats.elapsed);
    let summary = format!(
        "{} done at {}; {} scanned in {} seconds",
        text::scanner_name(run),
        timestr,
        text::hosts_summary(stats.hosts_total, stats.hosts_up),
        elapsed
    );
    // nmap.dtd allows free-text output elements among the hosts: the completeness goes
    // there, where ndiff and other readers pass over it.
    let mut s = String::new();
    render_scripts(&mut s, "postscript", &run.postscripts);
    if let Some(c) = &stats.completeness {
        s.push_str("<output type=\"interactive\">");
        s.push_str(&escape::xml(&text::completeness(c)));
        s.push_str("</output>\n");
    }
    s.push_str("<runstats><finished");
    attr(&mut s, "time", &stats.finished.to_string());
    attr(&mut s, "timestr", &timestr);
    attr(&mut s, "summary", &summary);
    attr(&mut s, "elapsed", &elapsed);
    attr(&mut s, "exit", stats.exit.as_str());
    opt_attr(&mut s, "errormsg", stats.errormsg.as_deref());
    s.push_str("/><hosts");
    attr(&mut s, "up", &stats.hosts_up.to_string());
    attr(&mut s, "down", &stats.hosts_down.to_string());
    attr(&mut s, "total", &stats.hosts_total.to_string());
    s.push_str("/>\n</runstats>\n</nmaprun>\n");
    s
}

impl<W: Write> Sink for XmlWriter<W> {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let s = render_begin(run, self.stylesheet.as_deref(), self.zone);
        self.emit(&s)
    }

    fn host(&mut self, _run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        self.tally.add(host);
        let s = render_host(host);
        self.emit(&s)
    }

    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let s = render_end(run, self.tally, self.zone);
        self.emit(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::*;

    fn run() -> ScanRun {
        let mut run = ScanRun::new("portolan -sT -p 22 --reason 127.0.0.1", 1795344023);
        run.scaninfo.push(ScanInfo {
            scan_type: ScanType::Connect,
            protocol: Protocol::Tcp,
            numservices: 1,
            services: "22".into(),
        });
        run
    }

    #[test]
    fn prologue_matches_nmap_layout() {
        let s = render_begin(&run(), Some(DEFAULT_STYLESHEET), Zone::Utc);
        let expected = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!DOCTYPE nmaprun>\n\
<?xml-stylesheet href=\"file:///usr/share/nmap/nmap.xsl\" type=\"text/xsl\"?>\n\
<!-- Portolan 0.1.0 scan initiated Sun Nov 22 10:40:23 2026 as: portolan -sT -p 22 -&#45;reason 127.0.0.1 -->\n\
<nmaprun scanner=\"nmap\" args=\"portolan -sT -p 22 -&#45;reason 127.0.0.1\" start=\"1795344023\" startstr=\"Sun Nov 22 10:40:23 2026\" version=\"0.1.0\" xmloutputversion=\"1.05\">\n\
<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"1\" services=\"22\"/>\n\
<verbose level=\"0\"/>\n\
<debugging level=\"0\"/>\n";
        assert_eq!(s, expected);
    }

    #[test]
    fn stylesheet_can_be_changed_or_left_out() {
        let none = render_begin(&run(), None, Zone::Utc);
        assert!(!none.contains("xml-stylesheet"));
        let web = render_begin(&run(), Some("https://example.org/a.xsl?x=1&y=2"), Zone::Utc);
        assert!(web.contains(
            "<?xml-stylesheet href=\"https://example.org/a.xsl?x=1&amp;y=2\" type=\"text/xsl\"?>\n"
        ));
    }

    #[test]
    fn timed_out_hops_stay_out_of_the_trace() {
        let mut h = Host::new("198.18.2.10".parse().unwrap(), HostStatus::up("echo-reply"));
        let hop = |ttl, ip: Option<&str>| Hop {
            ttl,
            ipaddr: ip.map(str::to_string),
            rtt: ip.map(|_| "0.10".to_string()),
            host: None,
            tag: Some("198.18.2.10".into()),
        };
        h.trace = Some(Trace {
            port: None,
            proto: Some("icmp".into()),
            hops: vec![
                hop(1, Some("198.18.0.2")),
                hop(2, None),
                hop(3, Some("198.18.2.10")),
            ],
        });
        let xml = render_host(&h);
        assert!(
            xml.contains(
                "<trace proto=\"icmp\">\n\
<hop ttl=\"1\" ipaddr=\"198.18.0.2\" rtt=\"0.10\"/>\n\
<hop ttl=\"3\" ipaddr=\"198.18.2.10\" rtt=\"0.10\"/>\n\
</trace>\n"
            ),
            "{xml}"
        );
    }

    #[test]
    fn down_host_is_short() {
        let h = Host::new(
            "192.0.2.7".parse().unwrap(),
            HostStatus::down("no-response"),
        );
        assert_eq!(
            render_host(&h),
            "<host><status state=\"down\" reason=\"no-response\" reason_ttl=\"0\"/>\n\
<address addr=\"192.0.2.7\" addrtype=\"ipv4\"/>\n</host>\n"
        );
    }

    #[test]
    fn service_with_cpes_and_tunnel() {
        let mut p = Port::new(Protocol::Tcp, 443, PortState::Open, "syn-ack");
        p.service = Some(Service {
            name: "http".into(),
            product: Some("nginx".into()),
            tunnel: Some("ssl".into()),
            method: ServiceMethod::Probed,
            conf: 10,
            cpes: vec!["cpe:/a:igor_sysoev:nginx".into()],
            ..Service::default()
        });
        let mut s = String::new();
        render_port(&mut s, &p);
        assert_eq!(
            s,
            "<port protocol=\"tcp\" portid=\"443\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"0\"/>\
<service name=\"http\" product=\"nginx\" tunnel=\"ssl\" method=\"probed\" conf=\"10\">\
<cpe>cpe:/a:igor_sysoev:nginx</cpe></service></port>\n"
        );
    }
}
