//! Reads grepable output (-oG, Nmap's or ours) back into the model, as far as the format
//! goes: the command line and start time (header), each host's address, reverse-DNS name
//! and status, its ports with their states and service names, the single ignored state's
//! count, and the end (trailer), if the file has one. This is what `--resume` needs.
//!
//! The format has no reasons, TTLs, times, scripts or OS details beyond a few names, and
//! writes a service's product, version and extra information as one text: that text is
//! kept whole as the product. A down host is written only with `-v`.
//!
//! The trailer tells how the scan ended: `# ... done at` (finished), `# ... stopped at`
//! (Portolan's interrupted scan), or none (Nmap killed, or a scan still running).

use std::io::BufRead;
use std::net::IpAddr;

use portolan_model::{
    ExtraPorts, Host, HostState, HostStatus, Hostname, HostnameType, Port, PortState, Protocol,
    RunExit, RunStats, ScanRun, Service, ServiceMethod,
};

use crate::timefmt::Zone;
use crate::xml_reader::ReadError;

/// The last run in a grepable file (the newest, for a file written with `--append-output`).
pub fn read_grepable(reader: impl BufRead) -> Result<ScanRun, ReadError> {
    read_grepable_runs(reader)?
        .pop()
        .ok_or_else(|| ReadError::Text {
            line: 1,
            message: "no \"# ... scan initiated ... as:\" header: not a grepable scan output"
                .into(),
        })
}

/// Every run in a grepable file, oldest first.
pub fn read_grepable_runs(reader: impl BufRead) -> Result<Vec<ScanRun>, ReadError> {
    let mut runs: Vec<ScanRun> = Vec::new();
    for_each_line(reader, |line, last| {
        if let Some(comment) = line.strip_prefix('#') {
            match header(comment.trim_start()) {
                Some(run) => runs.push(run?),
                None => {
                    let run = runs.last_mut().ok_or(NO_HEADER)?;
                    if let Some(stats) = trailer(comment.trim_start()) {
                        run.runstats = Some(stats);
                    }
                    // Other comments ("Ports scanned", "Completeness") are not needed.
                }
            }
            return Ok(());
        }
        let run = runs.last_mut().ok_or(NO_HEADER)?;
        match line.strip_prefix("Host: ") {
            // A host line the writer did not finish (the disk filled, the process was
            // killed): that host was cut short, and is left out.
            Some(rest) => {
                let hosts = run.hosts.len();
                match host_line(run, rest) {
                    Err(_) if last => {
                        run.hosts.truncate(hosts);
                        Ok(())
                    }
                    r => r,
                }
            }
            None => Err(format!("not a grepable line: {:?}", clip(line))),
        }
    })?;
    Ok(runs)
}

const NO_HEADER: &str = "a line before the \"# ... scan initiated ... as:\" header";

/// Hands each line that is not blank to `each`, without its line end, with whether it is
/// the file's last (and unterminated) line. A byte that is not UTF-8 becomes U+FFFD.
pub(crate) fn for_each_line(
    mut reader: impl BufRead,
    mut each: impl FnMut(&str, bool) -> Result<(), String>,
) -> Result<(), ReadError> {
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        number += 1;
        let unterminated = buf.last() != Some(&b'\n');
        let text = String::from_utf8_lossy(&buf);
        let mut line = text.trim_end_matches(['\n', '\r']);
        if number == 1 {
            line = line.trim_start_matches('\u{feff}');
        }
        if line.trim().is_empty() {
            continue;
        }
        each(line, unterminated).map_err(|message| ReadError::Text {
            line: number,
            message,
        })?;
    }
}

/// A line shortened for an error message.
pub(crate) fn clip(line: &str) -> String {
    line.chars().take(60).collect()
}

/// `Portolan 0.1.0 scan initiated Fri Dec  4 23:06:49 2026 as: portolan -sT ...`: a new
/// run; `None` for any other comment.
pub(crate) fn header(comment: &str) -> Option<Result<ScanRun, String>> {
    let (title, rest) = comment.split_once(" scan initiated ")?;
    let (name, version) = title.split_once(' ').unwrap_or((title, ""));
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        return Some(Err(format!(
            "the scanner's name {:?} is not a word",
            clip(name)
        )));
    }
    let Some((when, args)) = rest.split_once(" as: ") else {
        return Some(Err("the header has no \"as:\" command line".into()));
    };
    let Some(start) = Zone::Local.parse_ctime(when) else {
        return Some(Err(format!(
            "the start time {:?} is not a date",
            clip(when)
        )));
    };
    let mut run = ScanRun::new(args, start);
    run.scanner = name.to_lowercase();
    run.version = version.to_string();
    Some(Ok(run))
}

/// `Portolan done at <time> -- 3 IP addresses (2 hosts up) scanned in 1.23 seconds`, or
/// `Portolan stopped at <time> (<why>) -- <same summary>`: the run's end.
pub(crate) fn trailer(comment: &str) -> Option<RunStats> {
    let (ended, rest) = [" done at ", " stopped at "]
        .iter()
        .find_map(|w| comment.split_once(w).map(|(_, rest)| (*w, rest)))?;
    let (when, summary) = rest.rsplit_once(" -- ")?;
    let (when, why) = match when.split_once(" (") {
        Some((t, why)) => (t, why.strip_suffix(')').map(str::to_string)),
        None => (when, None),
    };
    let finished = Zone::Local.parse_ctime(when)?;
    // "3 IP addresses (2 hosts up) scanned in 1.23 seconds"
    let words: Vec<&str> = summary.split_whitespace().collect();
    let total: u32 = words.first()?.parse().ok()?;
    let up: u32 = words
        .iter()
        .find_map(|w| w.strip_prefix('('))?
        .parse()
        .ok()?;
    let elapsed: f64 = words
        .iter()
        .position(|w| *w == "seconds")
        .and_then(|i| words.get(i.checked_sub(1)?))
        .and_then(|w| w.parse().ok())
        .filter(|e: &f64| e.is_finite())
        .unwrap_or(0.0);
    let finished_ok = ended == " done at ";
    Some(RunStats {
        finished,
        elapsed,
        exit: if finished_ok {
            RunExit::Success
        } else {
            RunExit::Error
        },
        errormsg: if finished_ok { None } else { why },
        hosts_up: up,
        hosts_down: total.saturating_sub(up),
        hosts_total: total,
        completeness: None,
    })
}

/// `<addr> (<name>)\t<Field>: <value>\t...`, added to the run's last host when it is the
/// same address (a `Status` line, then its `Ports` line), else as a new host.
fn host_line(run: &mut ScanRun, rest: &str) -> Result<(), String> {
    let mut fields = rest.split('\t');
    let who = fields.next().unwrap_or_default();
    let (addr, name) = match who.split_once(" (") {
        Some((addr, name)) => (addr, name.strip_suffix(')').unwrap_or(name)),
        None => (who, ""),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("the host {:?} is not an IP address", clip(addr)))?;
    let same = run.hosts.last().is_some_and(|h| h.ip() == Some(ip));
    if !same {
        let mut host = Host::new(ip, HostStatus::up(""));
        if !name.is_empty() {
            host.hostnames.push(Hostname {
                name: name.to_string(),
                kind: HostnameType::Ptr,
            });
        }
        run.hosts.push(host);
    }
    let host = run.hosts.last_mut().ok_or("no host")?;
    for field in fields {
        let Some((key, value)) = field.split_once(": ") else {
            return Err(format!("the field {:?} has no \"name: \"", clip(field)));
        };
        match key {
            "Status" => {
                host.status.state = match value {
                    "Up" => HostState::Up,
                    "Down" => HostState::Down,
                    "Unknown" => HostState::Unknown,
                    _ => return Err(format!("unknown host status {:?}", clip(value))),
                }
            }
            "Ports" => host.ports.extend(ports(value)?),
            "Ignored State" => host.extraports.push(ignored(value)?),
            // OS names, sequence classes, IP protocols (-sO): not read.
            _ => {}
        }
    }
    Ok(())
}

/// `22/open/tcp//ssh//OpenSSH 9.2p1/, 53/open|filtered/udp//domain///`: each entry is seven
/// fields, each ended by `/` (which no field holds: the writer turns it into `|`), so a `, `
/// inside a version text does not split it.
/// Empty for a host whose every port is in the ignored state.
fn ports(mut rest: &str) -> Result<Vec<Port>, String> {
    let mut out = Vec::new();
    if rest.is_empty() {
        return Ok(out);
    }
    loop {
        let mut fields = [""; 7];
        for f in &mut fields {
            let (value, tail) = rest
                .split_once('/')
                .ok_or_else(|| format!("a port entry ends early: {:?}", clip(rest)))?;
            *f = value;
            rest = tail;
        }
        out.push(port(fields)?);
        if rest.is_empty() {
            return Ok(out);
        }
        rest = rest
            .strip_prefix(", ")
            .ok_or_else(|| format!("no \", \" between port entries: {:?}", clip(rest)))?;
    }
}

/// One entry's fields: port, state, protocol, owner, service, RPC information, version.
fn port([id, state, proto, _owner, service, _rpc, version]: [&str; 7]) -> Result<Port, String> {
    let id: u16 = id
        .parse()
        .map_err(|_| format!("the port {:?} is not a number", clip(id)))?;
    let state: PortState = state
        .parse()
        .map_err(|_| format!("unknown port state {:?}", clip(state)))?;
    let proto: Protocol = proto
        .parse()
        .map_err(|_| format!("unknown protocol {:?}", clip(proto)))?;
    let mut p = Port::new(proto, id, state, "");
    if !service.is_empty() {
        // "ssl|http?": a TLS tunnel, and a `?` for a name guessed while -sV ran.
        p.service = Some(match service.strip_prefix("ssl|") {
            Some(name) => logged_service(Some("ssl".to_string()), name, version),
            None => logged_service(None, service, version),
        });
    }
    Ok(p)
}

/// A service as the text outputs show it: a name, `?` after it when -sV only guessed it,
/// and the version text (kept whole as the product). A name with version text that was not
/// guessed was found by a probe.
pub(crate) fn logged_service(tunnel: Option<String>, name: &str, version: &str) -> Service {
    let (name, guessed) = match name.strip_suffix('?') {
        Some(name) => (name, true),
        None => (name, false),
    };
    let probed = !guessed && !version.is_empty();
    Service {
        name: name.to_string(),
        product: (!version.is_empty()).then(|| version.to_string()),
        tunnel,
        method: if probed {
            ServiceMethod::Probed
        } else {
            ServiceMethod::Table
        },
        conf: if probed { 10 } else { 3 },
        ..Service::default()
    }
}

/// `closed (998)`.
fn ignored(value: &str) -> Result<ExtraPorts, String> {
    let bad = || {
        format!(
            "the ignored state {:?} is not \"state (count)\"",
            clip(value)
        )
    };
    let (state, count) = value.split_once(" (").ok_or_else(bad)?;
    let count: u32 = count
        .strip_suffix(')')
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let state: PortState = state.parse().map_err(|_| bad())?;
    Ok(ExtraPorts {
        state,
        count,
        reasons: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GrepableWriter;
    use portolan_model::{OutputOptions, ScanInfo, ScanType, Sink};

    /// A run with what the format carries: an up host with open, filtered and closed ports
    /// (services with and without version text, a TLS tunnel, a guessed name, a version
    /// text holding ", "), one with a name and only an ignored state, an IPv6 host.
    fn sample(exit: RunExit) -> ScanRun {
        let mut run = ScanRun::new(
            "portolan -sS -sU -sV -p T:1-1000,U:53 -oG x.gnmap 192.0.2.0/30",
            1_795_344_023,
        );
        run.scaninfo.push(ScanInfo {
            scan_type: ScanType::Syn,
            protocol: Protocol::Tcp,
            numservices: 1000,
            services: "1-1000".into(),
        });
        let mut a = Host::new("192.0.2.1".parse().unwrap(), HostStatus::up(""));
        let mut ssh = Port::new(Protocol::Tcp, 22, PortState::Open, "");
        ssh.service = Some(Service {
            name: "ssh".into(),
            product: Some("OpenSSH 9.2p1 (protocol 2.0, Debian)".into()),
            method: ServiceMethod::Probed,
            conf: 10,
            ..Service::default()
        });
        let mut https = Port::new(Protocol::Tcp, 443, PortState::Open, "");
        https.service = Some(Service {
            name: "https".into(),
            tunnel: Some("ssl".into()),
            ..Service::from_table("https")
        });
        let mut dns = Port::new(Protocol::Udp, 53, PortState::OpenFiltered, "");
        dns.service = Some(Service::from_table("domain"));
        a.ports = vec![
            ssh,
            Port::new(Protocol::Tcp, 25, PortState::Filtered, ""),
            https,
            dns,
        ];
        a.extraports.push(ExtraPorts {
            state: PortState::Closed,
            count: 997,
            reasons: Vec::new(),
        });
        let mut b = Host::new("192.0.2.2".parse().unwrap(), HostStatus::up(""));
        b.hostnames.push(Hostname {
            name: "b.example".into(),
            kind: HostnameType::Ptr,
        });
        b.extraports.push(ExtraPorts {
            state: PortState::Filtered,
            count: 1001,
            reasons: Vec::new(),
        });
        let c = Host::new("2001:db8::1".parse().unwrap(), HostStatus::up(""));
        run.hosts = vec![a, b, c];
        run.runstats = Some(RunStats {
            finished: 1_795_344_100,
            elapsed: 77.25,
            exit,
            errormsg: (exit == RunExit::Error).then(|| "Interrupted by the user (SIGINT)".into()),
            hosts_up: 3,
            hosts_down: 1,
            hosts_total: 4,
            completeness: None,
        });
        run
    }

    fn grepable(run: &ScanRun) -> Vec<u8> {
        let mut w = GrepableWriter::new(Vec::new(), OutputOptions::default());
        w.begin(run).unwrap();
        for h in &run.hosts {
            w.host(run, h).unwrap();
        }
        w.end(run).unwrap();
        w.into_inner()
    }

    #[test]
    fn a_written_run_reads_back() {
        for exit in [RunExit::Success, RunExit::Error] {
            let run = sample(exit);
            let text = grepable(&run);
            let back = read_grepable(&text[..]).unwrap();
            assert_eq!(back.args, run.args);
            assert_eq!(back.start, run.start);
            assert_eq!(back.scanner, "portolan");
            assert_eq!(back.version, run.version);
            // Everything the format carries of each host comes back as it was.
            assert_eq!(back.hosts, run.hosts, "{}", String::from_utf8_lossy(&text));
            let (want, got) = (run.runstats.unwrap(), back.runstats.unwrap());
            assert_eq!(got.exit, exit);
            assert_eq!(got.errormsg, want.errormsg);
            assert_eq!(got.finished, want.finished);
            assert_eq!(got.elapsed, want.elapsed);
            assert_eq!((got.hosts_up, got.hosts_total), (3, 4));
        }
    }

    #[test]
    fn a_file_without_a_trailer_is_a_run_not_ended() {
        let run = sample(RunExit::Success);
        let text = String::from_utf8(grepable(&run)).unwrap();
        let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        let back = read_grepable(cut.as_bytes()).unwrap();
        assert!(back.runstats.is_none());
        assert_eq!(back.hosts.len(), 1);
        // A last line cut mid-entry: that host is left out, the rest kept.
        let torn = format!("{cut}Host: 192.0.2.2 ()\tPorts: 22/op");
        assert_eq!(read_grepable(torn.as_bytes()).unwrap().hosts.len(), 1);
    }

    #[test]
    fn nmaps_own_grepable_output_reads() {
        let text = "# Nmap 7.93 scan initiated Sun Nov 22 10:40:23 2026 as: nmap -sV -oG - 192.0.2.7\n\
Host: 192.0.2.7 (web.example)\tStatus: Up\n\
Host: 192.0.2.7 (web.example)\tPorts: 22/open/tcp//ssh//OpenSSH 8.9p1 Ubuntu 3ubuntu0.1 (Ubuntu Linux; protocol 2.0)/, 80/open/tcp//http//nginx 1.18.0 (Ubuntu)/, 111/filtered/tcp//rpcbind///\tIgnored State: closed (997)\n\
# Nmap done at Sun Nov 22 10:40:40 2026 -- 1 IP address (1 host up) scanned in 17.02 seconds\n";
        let run = read_grepable(text.as_bytes()).unwrap();
        assert_eq!(
            (run.scanner.as_str(), run.version.as_str()),
            ("nmap", "7.93")
        );
        assert_eq!(run.args, "nmap -sV -oG - 192.0.2.7");
        let h = &run.hosts[0];
        assert_eq!(h.hostname(), Some("web.example"));
        let ports: Vec<(u16, PortState, &str)> = h
            .ports
            .iter()
            .map(|p| (p.portid, p.state, p.service.as_ref().unwrap().name.as_str()))
            .collect();
        assert_eq!(
            ports,
            [
                (22, PortState::Open, "ssh"),
                (80, PortState::Open, "http"),
                (111, PortState::Filtered, "rpcbind")
            ]
        );
        assert_eq!(h.count_state(PortState::Closed), 997);
        assert_eq!(run.runstats.unwrap().exit, RunExit::Success);
    }

    #[test]
    fn appended_runs_are_each_read() {
        let mut text = grepable(&sample(RunExit::Success));
        let mut second = sample(RunExit::Error);
        second.args = "portolan -sn 192.0.2.9".into();
        second.hosts.truncate(1);
        text.extend(grepable(&second));
        let runs = read_grepable_runs(&text[..]).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(read_grepable(&text[..]).unwrap().args, second.args);
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        let head = "# Nmap 7.93 scan initiated Sun Nov 22 10:40:23 2026 as: nmap x\n";
        for (body, line) in [
            ("Host: 192.0.2.7 ()\tStatus: Up\nfoo\n", 3),
            ("\nHost: not-an-ip ()\tStatus: Up\n", 3),
            ("Host: 192.0.2.7 ()\tStatus: Sideways\n", 2),
            ("Host: 192.0.2.7 ()\tPorts: 99999/open/tcp//x///\n", 2),
            ("Host: 192.0.2.7 ()\tPorts: 22/ajar/tcp//x///\n", 2),
            (
                "Host: 192.0.2.7 ()\tPorts: 22/open/tcp//x///;23/open/tcp//x///\n",
                2,
            ),
            (
                "Host: 192.0.2.7 ()\tPorts: 22/open/tcp//x///\tIgnored State: closed\n",
                2,
            ),
            ("Host: 192.0.2.7 ()\tnothing\n", 2),
        ] {
            let e = read_grepable(format!("{head}{body}").as_bytes()).unwrap_err();
            assert_eq!(e.line(), Some(line), "{body:?}: {e}");
        }
        let e = read_grepable(&b"Host: 192.0.2.7 ()\tStatus: Up\n"[..]).unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
        assert!(read_grepable(&b""[..]).is_err());
        let e =
            read_grepable(&b"# Nmap 7.93 scan initiated yesterday as: nmap x\n"[..]).unwrap_err();
        assert!(e.to_string().contains("not a date"), "{e}");
        let head = b"# N|map 7.93 scan initiated Sun Nov 22 10:40:23 2026 as: x\n";
        let e = read_grepable(&head[..]).unwrap_err();
        assert!(e.to_string().contains("not a word"), "{e}");
    }

    /// Garbage never panics: random lines, random bytes, and every prefix of a good file.
    #[test]
    fn garbage_is_an_error_or_a_run_never_a_panic() {
        let good = grepable(&sample(RunExit::Error));
        for end in 0..good.len() {
            let _ = read_grepable(&good[..end]);
        }
        let pieces: [&[u8]; 12] = [
            b"# Nmap 7.93 scan initiated Sun Nov 22 10:40:23 2026 as: nmap x\n",
            b"Host: ",
            b"192.0.2.1 (",
            b")\t",
            b"Ports: ",
            b"1/open/tcp//",
            b"/",
            b", ",
            b"\tIgnored State: closed (",
            b"\xff\xfe\x00",
            b"\n",
            b"# Nmap done at Sun Nov 22 10:40:23 2026 -- 1 IP address (",
        ];
        // A small xorshift generator: the same sequence every run.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut readable = 0;
        for _ in 0..3000 {
            let mut doc = pieces[0].to_vec();
            for _ in 0..(next() % 24) {
                doc.extend_from_slice(pieces[(next() % 12) as usize]);
            }
            if read_grepable(&doc[..]).is_ok() {
                readable += 1;
            }
        }
        // The generator does reach both outcomes.
        assert!(readable > 0 && readable < 3000, "{readable}");
    }
}
