//! What a scan is, resolved: targets, ports, timing and the options of every stage. A
//! [`ScanPlan`] is validated and has its defaults applied (the CLI's resolution makes it
//! from Nmap's flags); it opens no file and sends nothing. [`crate::Scanner::run`] runs it.

pub mod ports;
pub mod targets;
pub mod timing;

use crate::core::scan::{Share, Slot};
use crate::data::macvendor::MacPrefixTable;
use crate::data::payloads::PayloadTable;
use crate::data::services::ServiceTable;
use crate::stages::version::VersionOptions;
use portolan_model::{compact_port_list, OutputOptions, Protocol, ScanInfo, ScanType};
use portolan_probes::ProbeDb;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use targets::{ExcludeSet, Expansion};
use timing::Timing;
use tokio_rustls::TlsConnector;

/// The scan technique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanKind {
    /// -sT, and the default without raw-socket privileges (as Nmap).
    #[default]
    Connect,
    /// -sS, and the default with them.
    Syn,
    /// -sU alone: no TCP scan.
    Udp,
    /// -sn: host discovery only.
    PingOnly,
    /// -sL: list targets, send nothing.
    List,
}

/// When hosts get reverse DNS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dns {
    /// Reverse-resolve hosts found up (Nmap's default).
    #[default]
    Default,
    /// -n
    Never,
    /// -R
    Always,
}

/// How hosts are found up.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Discovery {
    /// Connect ping to these ports (without raw sockets; -PS then means this).
    pub connect_ports: Vec<u16>,
    /// Raw probes, every one sent to every host until it answers.
    pub slots: Vec<Slot>,
    /// ARP for on-link IPv4 targets (neighbour discovery for IPv6), in place of the raw
    /// probes (Nmap's default on a LAN).
    pub arp: bool,
}

/// What -sV needs.
pub struct VersionPlan {
    pub db: Arc<ProbeDb>,
    pub opts: VersionOptions,
    /// --allports: also probe the ports the database's Exclude lists.
    pub all_ports: bool,
    pub tls: TlsConnector,
}

/// Every address to scan, with the name the user gave it, excluded ones left out.
#[derive(Default)]
pub struct Targets {
    pub expansions: Vec<Expansion>,
    pub excludes: ExcludeSet,
    /// --randomize-hosts: shuffled in blocks of 2048, as Nmap does.
    pub randomize: bool,
}

/// One scan, resolved.
pub struct ScanPlan {
    /// The command line, for the report.
    pub args_line: String,
    /// Start time, Unix epoch seconds.
    pub start: i64,
    pub scan: ScanKind,
    /// -sU (beside the TCP scan, or alone with `scan == Udp`).
    pub udp: bool,
    /// -Pn: every host is taken as up.
    pub no_ping: bool,
    pub discovery: Discovery,
    pub dns: Dns,
    pub services: ServiceTable,
    /// TCP ports to scan, ascending (empty without a TCP scan).
    pub ports: Vec<u16>,
    /// UDP ports to scan, ascending (empty without -sU).
    pub udp_ports: Vec<u16>,
    /// This machine's part of the probes (--shard); everything by default.
    pub share: Share,
    /// --dryrun: print the probes, send nothing.
    pub dry_run: bool,
    /// Payloads of UDP probes, by port.
    pub payloads: Arc<PayloadTable>,
    /// -sV: service and version detection.
    pub version: Option<VersionPlan>,
    /// -O: OS detection.
    pub os: Option<OsPlan>,
    /// --traceroute (and -A).
    pub traceroute: bool,
    /// MAC vendors, when MACs can be learnt (raw sockets: Nmap prints MACs only as root).
    pub mac_vendors: Option<Arc<MacPrefixTable>>,
    /// -r: ports in order.
    pub sequential_ports: bool,
    pub timing: Timing,
    /// Hosts port-scanned at once by the connect scan.
    pub host_group: usize,
    /// Shapes the report (-v, -d, --reason, --open).
    pub out_opts: OutputOptions,
    pub targets: Targets,
    /// --seed, or one drawn at start: the probe order and host shuffling.
    pub seed: u64,
    /// Hosts an earlier, interrupted run of this scan finished (--resume): written first, as
    /// they were, and counted in the summary; the targets leave them out.
    pub carried: Vec<portolan_model::Host>,
}

/// How OS detection (-O) runs.
#[derive(Debug, Clone)]
pub struct OsPlan {
    /// Nmap's nmap-os-db as read at run time; `None` (not installed, or --builtin-data):
    /// only the coarse guess from our own data, never presented as an Nmap match.
    pub db: Option<Arc<portolan_os::db::OsDb>>,
    /// --osscan-limit: only hosts with at least one open and one closed TCP port.
    pub limit: bool,
    /// --osscan-guess / --fuzzy: guess aggressively.
    pub guess: bool,
    /// --max-os-tries (Nmap's default 5).
    pub max_tries: u32,
}

impl ScanPlan {
    /// The scaninfo elements of a port scan: TCP first, then UDP, as Nmap writes them.
    pub fn scaninfo(&self) -> Vec<ScanInfo> {
        let mut out = Vec::new();
        if matches!(self.scan, ScanKind::Connect | ScanKind::Syn) {
            out.push(ScanInfo {
                scan_type: if self.scan == ScanKind::Syn {
                    ScanType::Syn
                } else {
                    ScanType::Connect
                },
                protocol: Protocol::Tcp,
                numservices: self.ports.len() as u32,
                services: compact_port_list(&self.ports),
            });
        }
        if self.udp {
            out.push(ScanInfo {
                scan_type: ScanType::Udp,
                protocol: Protocol::Udp,
                numservices: self.udp_ports.len() as u32,
                services: compact_port_list(&self.udp_ports),
            });
        }
        out
    }

    /// Whether hosts get a port scan (not -sn, not -sL).
    pub fn port_scan(&self) -> bool {
        !matches!(self.scan, ScanKind::PingOnly | ScanKind::List)
    }

    /// Whether the port scan runs on raw packets (-sS and/or -sU).
    pub fn raw_port_scan(&self) -> bool {
        matches!(self.scan, ScanKind::Syn | ScanKind::Udp)
    }

    /// The probes of the raw port scan, in probe order: TCP ports then UDP ports (the
    /// engine's permutation decides the order on the wire).
    pub fn port_slots(&self) -> Vec<Slot> {
        let mut slots: Vec<Slot> = Vec::new();
        if self.scan == ScanKind::Syn {
            slots.extend(self.ports.iter().map(|&p| Slot::Syn(p)));
        }
        if self.udp {
            slots.extend(self.udp_ports.iter().map(|&p| Slot::Udp(p)));
        }
        slots
    }

    /// Probes per host, for sizing batches.
    pub fn probes_per_host(&self) -> usize {
        if self.port_scan() {
            self.ports.len() + self.udp_ports.len()
        } else {
            self.discovery.slots.len()
        }
        .max(1)
    }

    /// TCP ports in the order the connect scan probes them: shuffled (as Nmap does)
    /// unless -r.
    pub fn port_order(&self) -> Vec<u16> {
        let mut ports = self.ports.clone();
        if !self.sequential_ports {
            shuffle(&mut ports, self.seed);
        }
        ports
    }

    /// Every address to scan with the name the user gave it, excluded ones left out.
    /// Lazy: a /8 is never held in memory whole. Takes the targets out of the plan.
    pub fn take_targets(&mut self) -> Box<dyn Iterator<Item = (IpAddr, Option<String>)> + Send> {
        let Targets {
            expansions,
            excludes,
            randomize,
        } = std::mem::take(&mut self.targets);
        let it = expansions
            .into_iter()
            .flat_map(|e| {
                let name = e.hostname.clone();
                e.addrs.map(move |ip| (ip, name.clone()))
            })
            .filter(move |(ip, _)| !excludes.contains(*ip));
        if !randomize {
            return Box::new(it);
        }
        // Nmap shuffles hosts in blocks of 2048 so memory stays bounded.
        let mut it = it;
        let mut state = self.seed;
        Box::new(
            std::iter::from_fn(move || {
                let mut block: Vec<_> = it.by_ref().take(2048).collect();
                if block.is_empty() {
                    return None;
                }
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                shuffle(&mut block, state);
                Some(block)
            })
            .flatten(),
        )
    }
}

/// How long a reverse lookup may take before the host is reported without a name.
pub const RDNS_DEADLINE: Duration = Duration::from_secs(3);

/// Fisher–Yates with xorshift64*: order only needs to be unpredictable enough to spread
/// load, not secret.
pub fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut x = seed | 1;
    for i in (1..v.len()).rev() {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let j = (r % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u16> = (1..=1000).collect();
        shuffle(&mut v, 42);
        assert_ne!(v, (1..=1000).collect::<Vec<_>>());
        let mut s = v.clone();
        s.sort_unstable();
        assert_eq!(s, (1..=1000).collect::<Vec<_>>());
    }
}
