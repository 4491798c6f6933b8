//! Reads normal output (-oN, Nmap's or ours) back into the model, as far as `--resume`
//! needs it: the command line and start time (header), each host's address and name, its
//! status, the "Not shown" counts by state, protocol and reason, and the port table (state,
//! service name, reason when `--reason` printed it, and the VERSION column's text, kept
//! whole as the product), and the end (trailer), if the file has one.
//!
//! Everything else a report shows (script output, OS detection, MAC addresses, traceroute,
//! latency) is passed over.

use std::io::BufRead;
use std::net::IpAddr;

use portolan_model::{
    ExtraPorts, ExtraReason, Host, HostState, HostStatus, Hostname, HostnameType, Port, PortState,
    Protocol, ScanRun,
};

use crate::grepable_reader::{clip, for_each_line, header, logged_service, trailer};
use crate::xml_reader::ReadError;

/// The last run in a normal-output file (the newest, for `--append-output`).
pub fn read_normal(reader: impl BufRead) -> Result<ScanRun, ReadError> {
    read_normal_runs(reader)?
        .pop()
        .ok_or_else(|| ReadError::Text {
            line: 1,
            message: "no \"# ... scan initiated ... as:\" header: not a normal scan output".into(),
        })
}

/// Where each column of the port table starts (in characters), from its header line.
#[derive(Default)]
struct Columns {
    service: usize,
    reason: Option<usize>,
    version: Option<usize>,
}

/// Every run in a normal-output file, oldest first.
pub fn read_normal_runs(reader: impl BufRead) -> Result<Vec<ScanRun>, ReadError> {
    let mut runs: Vec<ScanRun> = Vec::new();
    // The port table being read, if any.
    let mut table: Option<Columns> = None;
    for_each_line(reader, |line, _last| {
        if let Some(comment) = line.strip_prefix('#') {
            table = None;
            match header(comment.trim_start()) {
                Some(run) => runs.push(run?),
                None => {
                    if let Some(stats) = trailer(comment.trim_start()) {
                        runs.last_mut().ok_or(NO_HEADER)?.runstats = Some(stats);
                    }
                }
            }
            return Ok(());
        }
        // Before the header: "Starting ..." and warnings of a terminal capture.
        let Some(run) = runs.last_mut() else {
            return Ok(());
        };
        // "Nmap scan report for ...", "Portolan scan report for ...".
        let report = line
            .split_once(" scan report for ")
            .filter(|(name, _)| !name.is_empty() && !name.contains(' ') && !name.starts_with('|'))
            .map(|(_, rest)| rest);
        if let Some(rest) = report {
            table = None;
            run.hosts.push(report_line(rest)?);
            return Ok(());
        }
        let Some(host) = run.hosts.last_mut() else {
            return Ok(());
        };
        if let Some(rest) = line.strip_prefix("Host is up") {
            host.status.state = HostState::Up;
            if let Some(why) = rest.split_once("received ").map(|(_, w)| w) {
                host.status.reason = why.split([' ', '.']).next().unwrap_or_default().to_string();
            }
        } else if let Some(rest) = line.strip_prefix("Not shown: ") {
            not_shown(host, rest)?;
        } else if line.starts_with("PORT ") {
            table = Some(columns(line)?);
        } else if let Some(cols) = &table {
            // Script output ("|", "|_") sits between rows; anything else ends the table.
            if !line.starts_with('|') {
                match port_row(line, cols)? {
                    Some(p) => host.ports.push(p),
                    None => table = None,
                }
            }
        }
        Ok(())
    })?;
    Ok(runs)
}

const NO_HEADER: &str = "a line before the \"# ... scan initiated ... as:\" header";

/// `name (192.0.2.1)`, `192.0.2.1`, `192.0.2.1 [host down]`, `name (ip) [host down, received
/// no-response]`: a host, up until said otherwise (a list scan's is not probed: unknown).
fn report_line(rest: &str) -> Result<Host, String> {
    let (who, down) = match rest.split_once(" [host down") {
        Some((who, _)) => (who, true),
        None => (rest, false),
    };
    let (name, addr) = match who.strip_suffix(')').and_then(|w| w.rsplit_once(" (")) {
        Some((name, addr)) => (Some(name), addr),
        None => (None, who),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("the host {:?} is not an IP address", clip(addr)))?;
    let status = if down {
        HostStatus::down("")
    } else {
        HostStatus {
            state: HostState::Unknown,
            reason: String::new(),
            reason_ttl: 0,
        }
    };
    let mut host = Host::new(ip, status);
    if let Some(name) = name {
        host.hostnames.push(Hostname {
            name: name.to_string(),
            kind: HostnameType::Ptr,
        });
    }
    Ok(host)
}

/// `996 closed tcp ports (reset), 3 filtered tcp ports (no-response)`, or Nmap's form
/// without protocol and reason (`998 closed ports`).
fn not_shown(host: &mut Host, rest: &str) -> Result<(), String> {
    for part in rest.split(", ") {
        let bad = || {
            format!(
                "\"Not shown\" part {:?} is not \"N state ports\"",
                clip(part)
            )
        };
        let (words, reason) = match part.split_once(" (") {
            Some((w, r)) => (w, r.strip_suffix(')')),
            None => (part, None),
        };
        let words: Vec<&str> = words.split(' ').collect();
        let (count, state, proto) = match words.as_slice() {
            [n, state, "port" | "ports"] => (n, state, None),
            [n, state, proto, "port" | "ports"] => (n, state, Some(*proto)),
            _ => return Err(bad()),
        };
        let count: u32 = count.parse().map_err(|_| bad())?;
        let state: PortState = state.parse().map_err(|_| bad())?;
        let proto: Option<Protocol> = match proto {
            Some(p) => Some(p.parse().map_err(|_| bad())?),
            None => None,
        };
        let i = match host.extraports.iter().position(|e| e.state == state) {
            Some(i) => i,
            None => {
                host.extraports.push(ExtraPorts {
                    state,
                    count: 0,
                    reasons: Vec::new(),
                });
                host.extraports.len() - 1
            }
        };
        let e = host.extraports.get_mut(i).ok_or("no extraports")?;
        e.count = e.count.saturating_add(count);
        if let Some(reason) = reason {
            e.reasons.push(ExtraReason {
                reason: reason.to_string(),
                count,
                proto,
                port_list: Vec::new(),
            });
        }
    }
    Ok(())
}

/// `PORT     STATE SERVICE REASON  VERSION`.
fn columns(line: &str) -> Result<Columns, String> {
    let at = |name: &str| {
        line.find(&format!(" {name}"))
            .map(|b| line.get(..b).map_or(0, |s| s.chars().count()) + 1)
    };
    Ok(Columns {
        service: at("SERVICE").ok_or("the port table's header has no SERVICE column")?,
        reason: at("REASON"),
        version: at("VERSION"),
    })
}

/// `22/tcp open  ssh     syn-ack ttl 64 OpenSSH 9.2p1`: a port, or `None` for a line that
/// is not one (the table has ended).
fn port_row(line: &str, cols: &Columns) -> Result<Option<Port>, String> {
    let mut words = line.split_whitespace();
    let (Some(first), Some(state)) = (words.next(), words.next()) else {
        return Ok(None);
    };
    let Some((id, proto)) = first.split_once('/') else {
        return Ok(None);
    };
    let (Ok(id), Ok(proto)) = (id.parse::<u16>(), proto.parse::<Protocol>()) else {
        return Ok(None);
    };
    let state: PortState = state
        .parse()
        .map_err(|_| format!("unknown port state {:?}", clip(state)))?;
    let chars: Vec<char> = line.chars().collect();
    let cell = |from: usize, to: Option<usize>| -> String {
        let to = to.unwrap_or(chars.len()).min(chars.len());
        chars
            .get(from.min(to)..to)
            .map(|c| c.iter().collect::<String>().trim().to_string())
            .unwrap_or_default()
    };
    let next = |after: usize| {
        [cols.reason, cols.version]
            .into_iter()
            .flatten()
            .filter(|c| *c > after)
            .min()
    };
    let service = cell(cols.service, next(cols.service));
    let version = cols.version.map(|v| cell(v, None)).unwrap_or_default();
    let mut p = Port::new(proto, id, state, "");
    if let Some(r) = cols.reason {
        let reason = cell(r, next(r));
        let words: Vec<&str> = reason.split(' ').collect();
        p.reason = words.first().copied().unwrap_or_default().to_string();
        for pair in words.windows(2) {
            match pair {
                ["ttl", ttl] => p.reason_ttl = ttl.parse().unwrap_or(0),
                ["from", ip] => p.reason_ip = Some(ip.to_string()),
                _ => {}
            }
        }
    }
    // A port without a service shows "unknown", as does one named so: both are read as none.
    let none = service.is_empty() || (service == "unknown" && version.is_empty());
    if !none {
        p.service = Some(match service.strip_prefix("ssl/") {
            Some(name) => logged_service(Some("ssl".to_string()), name, &version),
            None => logged_service(None, &service, &version),
        });
    }
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NormalWriter;
    use portolan_model::{OutputOptions, RunExit, RunStats, Script, Service, ServiceMethod, Sink};

    fn sample() -> ScanRun {
        let mut run = ScanRun::new(
            "portolan -sS -sU -sV -p T:1-1000,U:53 198.18.0.0/30",
            1_795_344_023,
        );
        let mut a = Host::new("198.18.0.1".parse().unwrap(), HostStatus::up("syn-ack"));
        a.hostnames.push(Hostname {
            name: "a.example".into(),
            kind: HostnameType::Ptr,
        });
        let mut ssh = Port::new(Protocol::Tcp, 22, PortState::Open, "syn-ack");
        ssh.reason_ttl = 64;
        ssh.service = Some(Service {
            name: "ssh".into(),
            product: Some("OpenSSH 9.2p1 (protocol 2.0, Debian)".into()),
            method: ServiceMethod::Probed,
            conf: 10,
            ..Service::default()
        });
        ssh.scripts.push(Script::text("ssh-hostkey", "one\ntwo"));
        let mut https = Port::new(Protocol::Tcp, 443, PortState::Open, "syn-ack");
        https.service = Some(Service {
            tunnel: Some("ssl".into()),
            ..Service::from_table("https")
        });
        let mut dns = Port::new(Protocol::Udp, 53, PortState::Closed, "port-unreach");
        dns.reason_ip = Some("198.18.0.9".into());
        dns.service = Some(Service::from_table("domain"));
        a.ports = vec![
            ssh,
            Port::new(Protocol::Tcp, 25, PortState::Filtered, "no-response"),
            https,
            dns,
        ];
        a.extraports.push(ExtraPorts {
            state: PortState::Closed,
            count: 996,
            reasons: vec![ExtraReason {
                reason: "reset".into(),
                count: 996,
                proto: Some(Protocol::Tcp),
                port_list: Vec::new(),
            }],
        });
        let mut b = Host::new("198.18.0.2".parse().unwrap(), HostStatus::up("echo-reply"));
        b.extraports.push(ExtraPorts {
            state: PortState::Filtered,
            count: 1001,
            reasons: vec![
                ExtraReason {
                    reason: "no-response".into(),
                    count: 1000,
                    proto: Some(Protocol::Tcp),
                    port_list: Vec::new(),
                },
                ExtraReason {
                    reason: "admin-prohibited".into(),
                    count: 1,
                    proto: Some(Protocol::Udp),
                    port_list: Vec::new(),
                },
            ],
        });
        let c = Host::new(
            "198.18.0.3".parse().unwrap(),
            HostStatus::down("no-response"),
        );
        run.hosts = vec![a, b, c];
        run.runstats = Some(RunStats {
            finished: 1_795_344_100,
            elapsed: 77.25,
            exit: RunExit::Error,
            errormsg: Some("Interrupted by SIGTERM".into()),
            hosts_up: 2,
            hosts_down: 1,
            hosts_total: 3,
            completeness: None,
        });
        run
    }

    fn normal(run: &ScanRun, opts: OutputOptions) -> Vec<u8> {
        let mut w = NormalWriter::new(Vec::new(), opts, true);
        w.begin(run).unwrap();
        for h in &run.hosts {
            w.host(run, h).unwrap();
        }
        w.end(run).unwrap();
        w.into_inner()
    }

    #[test]
    fn a_written_run_reads_back() {
        let run = sample();
        let opts = OutputOptions {
            reason: true,
            verbose: 1,
            ..OutputOptions::default()
        };
        let text = normal(&run, opts);
        let shown = String::from_utf8_lossy(&text);
        let back = read_normal(&text[..]).unwrap();
        assert_eq!(
            (back.args.as_str(), back.start),
            (run.args.as_str(), run.start)
        );
        let mut want = run.hosts.clone();
        for h in &mut want {
            h.status.reason.clear(); // "received ..." is read for up hosts only
            for p in &mut h.ports {
                p.scripts.clear(); // not read
            }
        }
        want[0].status.reason = "syn-ack".into();
        want[1].status.reason = "echo-reply".into();
        assert_eq!(back.hosts, want, "{shown}");
        let stats = back.runstats.unwrap();
        assert_eq!(stats.exit, RunExit::Error);
        assert_eq!(stats.errormsg.as_deref(), Some("Interrupted by SIGTERM"));
    }

    #[test]
    fn without_reasons_the_states_and_counts_read_back() {
        let run = sample();
        let text = normal(&run, OutputOptions::default());
        let back = read_normal(&text[..]).unwrap();
        // Down hosts are not written without -v.
        assert_eq!(back.hosts.len(), 2);
        for (b, r) in back.hosts.iter().zip(&run.hosts) {
            let states = |h: &Host| -> Vec<(u16, PortState)> {
                h.ports.iter().map(|p| (p.portid, p.state)).collect()
            };
            assert_eq!(states(b), states(r));
            assert_eq!(b.extraports, r.extraports);
            assert!(b.ports.iter().all(|p| p.reason.is_empty()));
        }
    }

    #[test]
    fn nmaps_own_normal_output_reads() {
        let text =
            "# Nmap 7.93 scan initiated Sun Nov 22 10:40:23 2026 as: nmap -sV -oN - 192.0.2.7\n\
Nmap scan report for web.example (192.0.2.7)\n\
Host is up (0.00012s latency).\n\
Not shown: 997 closed tcp ports (reset)\n\
PORT    STATE    SERVICE VERSION\n\
22/tcp  open     ssh     OpenSSH 8.9p1 Ubuntu 3ubuntu0.1 (Ubuntu Linux; protocol 2.0)\n\
| ssh-hostkey: \n\
|_  256 aa:bb (ED25519)\n\
80/tcp  open     http    nginx 1.18.0 (Ubuntu)\n\
111/tcp filtered rpcbind\n\
1 service unrecognized despite returning data. If you know the service/version, please submit the following fingerprint at https://nmap.org/cgi-bin/submit.cgi?new-service :\n\
SF-Port47811-TCP:V=7.93%I=7%D=12/5%Time=6B139F57%P=x86_64-pc-linux-gnu%r(N\n\
SF:ULL,5,\"12/tcp\");\n\
MAC Address: 02:00:00:00:00:01 (Unknown)\n\
Service Info: OS: Linux; CPE: cpe:/o:linux:linux_kernel\n\
\n\
Service detection performed. Please report any incorrect results at https://nmap.org/submit/ .\n\
# Nmap done at Sun Nov 22 10:40:40 2026 -- 1 IP address (1 host up) scanned in 17.02 seconds\n";
        let run = read_normal(text.as_bytes()).unwrap();
        assert_eq!(run.scanner, "nmap");
        let h = &run.hosts[0];
        assert_eq!(
            (h.addr_str(), h.hostname()),
            ("192.0.2.7", Some("web.example"))
        );
        assert!(h.is_up());
        let ports: Vec<(u16, PortState, &str, Option<&str>)> = h
            .ports
            .iter()
            .map(|p| {
                let s = p.service.as_ref().unwrap();
                (p.portid, p.state, s.name.as_str(), s.product.as_deref())
            })
            .collect();
        assert_eq!(
            ports,
            [
                (
                    22,
                    PortState::Open,
                    "ssh",
                    Some("OpenSSH 8.9p1 Ubuntu 3ubuntu0.1 (Ubuntu Linux; protocol 2.0)")
                ),
                (80, PortState::Open, "http", Some("nginx 1.18.0 (Ubuntu)")),
                (111, PortState::Filtered, "rpcbind", None),
            ]
        );
        assert_eq!(h.count_state(PortState::Closed), 997);
        assert_eq!(run.runstats.unwrap().exit, RunExit::Success);
    }

    #[test]
    fn bad_lines_are_errors_and_garbage_never_panics() {
        let head = "# Nmap 7.93 scan initiated Sun Nov 22 10:40:23 2026 as: nmap x\n";
        for (body, line) in [
            ("Nmap scan report for nowhere\n", 2),
            (
                "Nmap scan report for 192.0.2.1\nNot shown: many closed ports\n",
                3,
            ),
            ("Nmap scan report for 192.0.2.1\nPORT STATE\n", 3),
            (
                "Nmap scan report for 192.0.2.1\nPORT STATE SERVICE\n22/tcp ajar ssh\n",
                4,
            ),
        ] {
            let e = read_normal(format!("{head}{body}").as_bytes()).unwrap_err();
            assert_eq!(e.line(), Some(line), "{body:?}: {e}");
        }
        assert!(read_normal(&b"Nmap scan report for 192.0.2.1\n"[..]).is_err());
        // Found by fuzzing: a scanner's name with a `|` was read from the header, but its
        // report lines were not taken for reports.
        let pipe = "# Porto|an 0.1 scan initiated Sun Nov 22 10:40:23 2026 as: x\n";
        assert!(read_normal(pipe.as_bytes()).is_err());
        let good = normal(
            &sample(),
            OutputOptions {
                reason: true,
                verbose: 1,
                ..Default::default()
            },
        );
        for end in 0..good.len() {
            let _ = read_normal(&good[..end]);
        }
        // Every line of a good file cut at every character, spliced into another file.
        let text = String::from_utf8(good).unwrap();
        for (i, line) in text.lines().enumerate() {
            for (cut, _) in line.char_indices() {
                let mut lines: Vec<&str> = text.lines().collect();
                lines.insert(i, &line[cut..]);
                let _ = read_normal(lines.join("\n").as_bytes());
            }
        }
    }
}
