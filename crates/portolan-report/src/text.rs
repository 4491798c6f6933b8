//! Wording shared by the human-oriented writers (normal, grepable, XML summaries), kept
//! identical to Nmap 7.93's so that tools and eyes used to Nmap feel at home.

use portolan_model::{Host, HostState, Port, PortState, RunStats, ScanRun, Service, ServiceMethod};

/// The scanner's name as shown to people: "Portolan" for our runs, "Nmap" for imported ones.
pub(crate) fn scanner_name(run: &ScanRun) -> String {
    let mut chars = run.scanner.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Portolan".to_string(),
    }
}

/// "Portolan 0.1.0".
pub(crate) fn scanner_title(run: &ScanRun) -> String {
    format!("{} {}", scanner_name(run), run.version)
}

/// The home page printed on the "Starting" line.
pub(crate) fn project_url(run: &ScanRun) -> &'static str {
    if run.scanner.eq_ignore_ascii_case("nmap") {
        "https://nmap.org"
    } else {
        "https://github.com/portolan"
    }
}

/// "1 IP address (1 host up)", "2 IP addresses (0 hosts up)".
pub(crate) fn hosts_summary(total: u32, up: u32) -> String {
    format!(
        "{total} IP address{} ({up} host{} up)",
        if total == 1 { "" } else { "es" },
        if up == 1 { "" } else { "s" }
    )
}

/// Counts hosts as they pass, for a footer when `end` comes without runstats.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tally {
    pub up: u32,
    pub total: u32,
}

impl Tally {
    pub(crate) fn add(&mut self, host: &Host) {
        self.total = self.total.saturating_add(1);
        if host.status.state == HostState::Up {
            self.up = self.up.saturating_add(1);
        }
    }

    /// The run's own statistics, or ours when the run has none.
    pub(crate) fn stats(self, run: &ScanRun) -> RunStats {
        run.runstats.clone().unwrap_or(RunStats {
            finished: run.start,
            elapsed: 0.0,
            exit: portolan_model::RunExit::Success,
            errormsg: None,
            hosts_up: self.up,
            hosts_down: self.total.saturating_sub(self.up),
            hosts_total: self.total,
            completeness: None,
        })
    }
}

/// The completeness line every human-readable output carries.
pub(crate) fn completeness(c: &portolan_model::Completeness) -> String {
    format!(
        "Completeness: {} probes sent ({} retransmissions), {} answered, {} unanswered, about {:.2} responsive ports missed",
        c.probes_sent, c.retransmissions, c.answered, c.unanswered, c.estimated_missed
    )
}

/// The last line of an -oN or -oG file: `# Portolan done at <time> -- <summary>` for a
/// scan that finished; for one that did not, `# Portolan stopped at <time> (<why>) --
/// <summary>`, so that neither a reader nor `--resume` takes it for finished (Nmap, killed,
/// writes no last line at all).
pub(crate) fn file_trailer(run: &ScanRun, stats: &RunStats, zone: crate::timefmt::Zone) -> String {
    let summary = format!(
        "{} scanned in {} seconds",
        hosts_summary(stats.hosts_total, stats.hosts_up),
        elapsed(stats.elapsed)
    );
    let at = zone.ctime(stats.finished);
    let name = scanner_name(run);
    match (stats.exit, stats.errormsg.as_deref()) {
        (portolan_model::RunExit::Success, _) => format!("# {name} done at {at} -- {summary}\n"),
        (_, Some(why)) => format!(
            "# {name} stopped at {at} ({}) -- {summary}\n",
            crate::escape::text(why)
        ),
        (_, None) => format!("# {name} stopped at {at} -- {summary}\n"),
    }
}

/// Seconds with two decimals, as in every Nmap footer.
pub(crate) fn elapsed(secs: f64) -> String {
    if secs.is_finite() {
        format!("{secs:.2}")
    } else {
        "0.00".to_string()
    }
}

/// Nmap's `num_to_string_sigdigit(x, 2)`: two significant digits in fixed notation
/// (`0.00050`, `0.0040`, `0.12`, `1.5`, `12`).
pub(crate) fn two_sig_digits(x: f64) -> String {
    if !x.is_finite() {
        return "0.00".to_string();
    }
    let shift = if x == 0.0 {
        -2
    } else {
        x.abs().log10().floor() as i64 - 1
    };
    let decimals = (-shift).clamp(0, 30) as usize;
    format!("{x:.decimals$}")
}

/// "syn-ack", "syn-ack ttl 64", "host-unreach from 10.0.0.1 ttl 254" (Nmap's port_reason_str).
pub(crate) fn port_reason(port: &Port) -> String {
    let mut s = port.reason.clone();
    if let Some(ip) = &port.reason_ip {
        s.push_str(" from ");
        s.push_str(ip);
    }
    if port.reason_ttl != 0 {
        s.push_str(&format!(" ttl {}", port.reason_ttl));
    }
    s
}

/// "received localhost-response", "received echo-reply ttl 64" (Nmap's target_reason_str).
pub(crate) fn host_reason(host: &Host) -> String {
    let mut s = format!("received {}", host.status.reason);
    if host.status.reason_ttl != 0 {
        s.push_str(&format!(" ttl {}", host.status.reason_ttl));
    }
    s
}

/// "name (ip)" when a name is known, else the address (Nmap's `NameIP`).
pub(crate) fn name_ip(host: &Host) -> String {
    match host.hostname() {
        Some(name) if !name.is_empty() => format!("{name} ({})", host.addr_str()),
        _ => host.addr_str().to_string(),
    }
}

/// VERSION column: `product version (extrainfo)`.
pub(crate) fn full_version(svc: &Service) -> String {
    let mut out = String::new();
    for part in [&svc.product, &svc.version].into_iter().flatten() {
        if part.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    if let Some(info) = svc.extrainfo.as_deref().filter(|s| !s.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('(');
        out.push_str(info);
        out.push(')');
    }
    out
}

/// Whether version detection evidently ran on this host (so the table gets a VERSION column
/// and weak guesses a `?`), since the options do not say whether -sV was given.
pub(crate) fn version_scanned(host: &Host) -> bool {
    host.ports
        .iter()
        .filter_map(|p| p.service.as_ref())
        .any(|s| {
            s.method == ServiceMethod::Probed
                || s.product.is_some()
                || s.version.is_some()
                || s.extrainfo.is_some()
        })
}

/// SERVICE column (Nmap's `getNmapServiceName`): `ssl/` for TLS tunnels, a `?` on an open
/// port whose name is only a guess while version detection ran, `unknown` when unnamed.
pub(crate) fn service_label(port: &Port, version_scan: bool) -> String {
    let svc = port.service.as_ref();
    let prefix = match svc.and_then(|s| s.tunnel.as_deref()) {
        Some("ssl") => "ssl/",
        _ => "",
    };
    match svc.map(|s| s.name.as_str()) {
        Some(name) if !name.is_empty() && name != "unknown" => {
            let weak = svc.is_some_and(|s| s.conf <= 5);
            let q = if version_scan && port.state == PortState::Open && weak {
                "?"
            } else {
                ""
            };
            format!("{prefix}{name}{q}")
        }
        _ => format!("{prefix}unknown"),
    }
}

/// "port"/"ports" by count.
/// Whether a run without a port scan (`-sn`) still reports each host in full, as Nmap does
/// when it traced routes or ran scripts: such a host ends with a blank line in normal and
/// grepable output, as a port-scanned one does.
pub(crate) fn ping_scan_in_full(run: &ScanRun) -> bool {
    run.scaninfo.is_empty()
        && run.args.split_whitespace().any(|a| {
            matches!(a, "--traceroute" | "-A" | "-sC" | "--script") || a.starts_with("--script=")
        })
}

/// The line Nmap ends a run with when it detected versions or OSes on a host that was up
/// (its printfinaloutput). The options are read from the command line; OS detection also
/// from the hosts (`-A` adds it only with raw sockets). Version detection needs a port scan.
pub(crate) fn detection_plea(run: &ScanRun, os_seen: bool) -> Option<&'static str> {
    let words = || run.args.split_whitespace().skip(1);
    let os = os_seen || words().any(|w| w == "-O" || w == "-O2");
    let service = !run.scaninfo.is_empty()
        && words().any(|w| {
            w == "-A"
                || w.strip_prefix("-s")
                    .is_some_and(|t| !t.starts_with('-') && t.contains(['V', 'R']))
        });
    match (os, service) {
        (true, true) => Some("OS and Service detection performed. Please report any incorrect results at https://nmap.org/submit/ ."),
        (true, false) => Some("OS detection performed. Please report any incorrect results at https://nmap.org/submit/ ."),
        (false, true) => Some("Service detection performed. Please report any incorrect results at https://nmap.org/submit/ ."),
        (false, false) => None,
    }
}

pub(crate) fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_pluralise_like_nmap() {
        assert_eq!(hosts_summary(1, 1), "1 IP address (1 host up)");
        assert_eq!(hosts_summary(2, 2), "2 IP addresses (2 hosts up)");
        assert_eq!(hosts_summary(0, 0), "0 IP addresses (0 hosts up)");
        assert_eq!(hosts_summary(256, 1), "256 IP addresses (1 host up)");
    }

    #[test]
    fn latency_keeps_two_significant_digits() {
        // Values from real Nmap runs: srtt 503, 4041, 77 µs.
        assert_eq!(two_sig_digits(503.0 / 1e6), "0.00050");
        assert_eq!(two_sig_digits(4041.0 / 1e6), "0.0040");
        assert_eq!(two_sig_digits(77.0 / 1e6), "0.000077");
        assert_eq!(two_sig_digits(0.18), "0.18");
        assert_eq!(two_sig_digits(1.7), "1.7");
        assert_eq!(two_sig_digits(12.3), "12");
        assert_eq!(two_sig_digits(0.0), "0.00");
        assert_eq!(two_sig_digits(f64::NAN), "0.00");
    }

    #[test]
    fn version_string_joins_parts() {
        let svc = Service {
            name: "ssh".into(),
            product: Some("OpenSSH".into()),
            version: Some("9.2p1".into()),
            extrainfo: Some("protocol 2.0".into()),
            ..Service::default()
        };
        assert_eq!(full_version(&svc), "OpenSSH 9.2p1 (protocol 2.0)");
        let only_info = Service {
            extrainfo: Some("x".into()),
            ..Service::default()
        };
        assert_eq!(full_version(&only_info), "(x)");
        assert_eq!(full_version(&Service::default()), "");
    }
}
