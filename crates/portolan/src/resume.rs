//! `--resume FILE`: continue an interrupted scan from its XML, JSON, normal (-oN) or
//! grepable (-oG) output, as Nmap's `--resume` does from its logs. The file gives the command line (run again as it was)
//! and the hosts the scan finished; those are not scanned again, and are written first,
//! unchanged, so the resumed outputs are whole, as if the scan had never stopped.
//!
//! `--resume --db [PATH]` does the same from the history store (PATH, or `$PORTOLAN_DB`):
//! its latest incomplete scan.
//!
//! A host counts as finished when every port the scan covers (as its command line resolves)
//! is accounted for (listed, or in an `extraports` count): an interrupted scan writes the
//! hosts it cut short with only the ports that had answered, and those are scanned again.
//! Hosts reported down are finished, as are all hosts of a scan without ports (-sn, -sL).

use anyhow::{bail, Context, Result};
use portolan_engine::plan::targets::TargetSpec;
use portolan_engine::ScanPlan;
use portolan_model::{Host, RunExit, ScanRun};

/// What an interrupted scan's output says.
pub struct Prior {
    /// The command line, without the program's name.
    pub args: Vec<String>,
    /// The whole command line, as the report shows it.
    pub args_line: String,
    /// Its start time (Unix seconds): the resumed report keeps it.
    pub start: i64,
    /// The hosts it wrote, finished or cut short.
    pub hosts: Vec<Host>,
}

/// Reads the interrupted scan `path` wrote: XML or JSON, or else normal (-oN) or grepable
/// (-oG) output, told apart by content.
pub fn load(path: &str) -> Result<Prior> {
    let run = match portolan_report::read_any(path) {
        Err(portolan_report::ReadError::NotAScanFile { .. }) => portolan_report::read_log(path),
        r => r,
    }
    .with_context(|| format!("--resume {path}: cannot read it as a scan"))?;
    prior(run, path)
}

/// The latest incomplete scan in the history store at `db`.
pub fn load_from_store(spec: &str) -> Result<Prior> {
    let db = &portolan_store::pg::shown(spec);
    let store = portolan_store::Store::open_existing(spec)
        .with_context(|| format!("--resume --db {db}"))?;
    let last = store
        .history()
        .with_context(|| format!("--resume --db {db}"))?
        .into_iter()
        .rev()
        .find(|s| !s.complete)
        .with_context(|| format!("--resume --db {db}: no incomplete scan to resume"))?;
    let mut run = store
        .load_run(portolan_store::ScanId(last.id))
        .with_context(|| format!("--resume --db {db}: scan {}", last.id))?;
    // The store keeps an interrupted scan without its end.
    run.runstats = None;
    prior(run, &format!("--db {db}"))
}

fn prior(run: ScanRun, path: &str) -> Result<Prior> {
    if run
        .runstats
        .as_ref()
        .is_some_and(|s| matches!(s.exit, RunExit::Success))
    {
        bail!("--resume {path}: that scan finished; there is nothing to resume");
    }
    let mut words = run.args.split_whitespace();
    // The first word is the program (portolan, nmap, a path to either).
    if words.next().is_none() {
        bail!("--resume {path}: the file holds no command line");
    }
    let args: Vec<String> = words.map(str::to_string).collect();
    if args
        .iter()
        .any(|a| a == "--resume" || a.starts_with("--resume="))
    {
        bail!("--resume {path}: that scan was itself resumed from another file: resume that one");
    }
    Ok(Prior {
        args,
        args_line: run.args,
        start: run.start,
        hosts: run.hosts,
    })
}

impl Prior {
    /// Splits the hosts into finished and cut short, for a scan of `ports` ports a host.
    fn split(self, ports: usize) -> (Vec<Host>, Vec<Host>) {
        self.hosts.into_iter().partition(|h| {
            let covered =
                h.ports.len() as u64 + h.extraports.iter().map(|e| u64::from(e.count)).sum::<u64>();
            !h.is_up() || ports == 0 || covered >= ports as u64
        })
    }

    /// Makes `plan` (its command line resolved) the rest of the scan: its finished hosts
    /// carried over and left out of the targets, its start time and command line kept.
    /// Returns how many were finished and how many cut short.
    pub fn apply(self, plan: &mut ScanPlan) -> Result<(usize, usize)> {
        let ports = if plan.port_scan() {
            plan.ports.len() + plan.udp_ports.len()
        } else {
            0
        };
        let (args_line, start) = (self.args_line.clone(), self.start);
        let (finished, cut) = self.split(ports);
        let done = finished
            .iter()
            .map(|h| {
                h.ip()
                    .map(TargetSpec::Ip)
                    .with_context(|| format!("host {} has no IP address", h.addr_str()))
            })
            .collect::<Result<Vec<_>>>()?;
        plan.targets
            .excludes
            .extend(&done)
            .context("leaving out the finished hosts")?;
        plan.args_line = args_line;
        plan.start = start;
        let counts = (finished.len(), cut.len());
        plan.carried = finished;
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::{
        ExtraPorts, HostStatus, Port, PortState, Protocol, RunStats, ScanInfo, ScanType,
    };

    fn run_with(hosts: Vec<Host>, exit: RunExit) -> ScanRun {
        let mut run = ScanRun::new("/usr/bin/portolan -sS -p 1-100 -oX a.xml 198.18.0.0/28", 1);
        run.scaninfo.push(ScanInfo {
            scan_type: ScanType::Syn,
            protocol: Protocol::Tcp,
            numservices: 100,
            services: "1-100".into(),
        });
        run.hosts = hosts;
        run.runstats = Some(RunStats {
            finished: 2,
            elapsed: 1.0,
            exit,
            errormsg: None,
            hosts_up: 0,
            hosts_down: 0,
            hosts_total: 0,
            completeness: None,
        });
        run
    }

    fn host(ip: &str, listed: u16, extra: u32) -> Host {
        let mut h = Host::new(ip.parse().unwrap(), HostStatus::up("user-set"));
        h.ports = (1..=listed)
            .map(|p| Port::new(Protocol::Tcp, p, PortState::Open, "syn-ack"))
            .collect();
        if extra > 0 {
            h.extraports.push(ExtraPorts {
                state: PortState::Closed,
                count: extra,
                reasons: Vec::new(),
            });
        }
        h
    }

    #[test]
    fn finished_hosts_are_those_whose_every_port_is_accounted_for() {
        let run = run_with(
            vec![
                host("198.18.0.1", 2, 98),
                host("198.18.0.2", 100, 0),
                host("198.18.0.3", 5, 0), // cut short: 5 of 100
                Host::new(
                    "198.18.0.4".parse().unwrap(),
                    HostStatus::down("no-response"),
                ),
            ],
            RunExit::Error,
        );
        let p = prior(run, "a.xml").unwrap();
        assert_eq!(
            p.args,
            ["-sS", "-p", "1-100", "-oX", "a.xml", "198.18.0.0/28"]
        );
        assert_eq!(p.start, 1);
        let (finished, cut) = p.split(100);
        let ips: Vec<&str> = finished.iter().map(|h| h.addr_str()).collect();
        assert_eq!(ips, ["198.18.0.1", "198.18.0.2", "198.18.0.4"]);
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].addr_str(), "198.18.0.3");
    }

    #[test]
    fn a_finished_or_resumed_scan_is_not_resumed() {
        let e = prior(run_with(vec![], RunExit::Success), "a.xml")
            .err()
            .unwrap();
        assert!(e.to_string().contains("nothing to resume"), "{e}");
        let mut run = run_with(vec![], RunExit::Error);
        run.args = "portolan --resume b.xml".into();
        assert!(prior(run, "a.xml").is_err());
    }
}
