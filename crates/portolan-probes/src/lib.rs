//! Nmap's service-probe database (`nmap-service-probes`) and response matcher, for `-sV`.
//!
//! Pure data and matching, no I/O: the scanner engine sends [`Probe::payload`]s in the
//! order [`ProbeDb::probe_order`] gives, and hands each response to
//! [`ProbeDb::match_response`].
//!
//! * [`parse()`] reads the file's text. Bad lines are reported as [`ParseError`]s (with their
//!   line numbers) and skipped; the rest loads.
//! * Patterns are PCRE2 (bytes, no UTF mode, JIT when available), compiled up front, so a
//!   bad pattern is reported by [`parse()`] and matching never compiles anything.
//! * Work per response is bounded: only the first [`MAX_SUBJECT`] bytes are matched, and
//!   every pattern carries PCRE2's `(*LIMIT_MATCH=…)`/`(*LIMIT_DEPTH=…)` (see
//!   [`MATCH_LIMIT`](parse::MATCH_LIMIT)) since the `pcre2` crate (0.2) has no match-limit setting. A
//!   match attempt that hits a limit (or overflows the default 32 KiB JIT stack) counts as
//!   "no match". No custom JIT stack is set (`max_jit_stack_size`): the crate would then
//!   allocate one per pattern per thread, 32 KiB × ~12,000 patterns.
//! * Version strings come out as UTF-8 (invalid bytes replaced), at most
//!   [`template::MAX_FIELD_LEN`] bytes each, ready for XML.

use std::time::Duration;

use pcre2::bytes::{Captures, Regex};

pub mod parse;
pub mod ports;
pub mod servicefp;
pub mod template;

pub use parse::{parse, ParseError, ParseErrorKind};
pub use ports::{Excludes, PortSet};
pub use template::{Template, VersionInfo};

/// Portolan's own probe database (data/builtin-service-probes), in Nmap's format: used
/// when no nmap-service-probes is installed, and with --builtin-data.
pub const BUILTIN_PROBES: &str = include_str!("../data/builtin-service-probes");

/// The built-in database, parsed (its errors are a bug: a test checks there are none).
pub fn builtin() -> (ProbeDb, Vec<ParseError>) {
    parse(BUILTIN_PROBES)
}

/// Only this many leading bytes of a response are matched against the patterns. Nmap's
/// patterns look at banners and headers; 64 KiB bounds the regex work a hostile peer can
/// cause per response.
pub const MAX_SUBJECT: usize = 64 * 1024;

/// Most fallbacks one probe may name (Nmap's `MAXFALLBACKS`).
pub const MAX_FALLBACKS: usize = 20;

/// `--version-light`.
pub const INTENSITY_LIGHT: u8 = 2;
/// The default version intensity.
pub const INTENSITY_DEFAULT: u8 = 7;
/// `--version-all`.
pub const INTENSITY_ALL: u8 = 9;

/// Transport of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// One `Probe` section.
#[derive(Debug, Clone)]
pub struct Probe {
    pub proto: Proto,
    pub name: String,
    /// What to send (escapes decoded). Empty for the NULL probe.
    pub payload: Vec<u8>,
    /// `no-payload` flag: the payload is for version detection only, not for `-sU` port
    /// scanning.
    pub no_payload: bool,
    /// `ports`: ports where this probe is likely to work (always sent there).
    pub ports: PortSet,
    /// `sslports`: the same, for services inside SSL/TLS.
    pub sslports: PortSet,
    /// `totalwaitms` (default 5 s).
    pub total_wait: Duration,
    /// `tcpwrappedms` (default 2 s; meaningful for the NULL probe).
    pub tcpwrapped_wait: Duration,
    /// `rarity` 1-9 (default 5).
    pub rarity: u8,
    /// `fallback`: indices of the probes whose matches are tried after this probe's own (the
    /// NULL probe is not listed: [`ProbeDb::match_chain`] adds it for TCP).
    pub fallback: Vec<usize>,
    /// `match` and `softmatch` lines, in file order.
    pub matches: Vec<Match>,
    /// Line of the `Probe` directive.
    pub line: usize,
}

impl Probe {
    /// Whether one of this probe's own matches names `service` (Nmap's
    /// `serviceIsPossible`).
    pub fn service_is_possible(&self, service: &str) -> bool {
        self.matches.iter().any(|m| m.service == service)
    }

    /// Whether `port` is in this probe's `ports` (or `sslports` when `ssl`).
    pub fn port_is_probable(&self, port: u16, ssl: bool) -> bool {
        if ssl {
            self.sslports.contains(port)
        } else {
            self.ports.contains(port)
        }
    }
}

/// One `match` or `softmatch` line.
#[derive(Debug, Clone)]
pub struct Match {
    /// Service name (`http`, `ssl/http`, …).
    pub service: String,
    /// `softmatch`: names the service but not the version; probing goes on.
    pub soft: bool,
    /// The pattern as written.
    pub pattern: String,
    pub caseless: bool,
    pub dotall: bool,
    /// The compiled pattern (with the limits prepended).
    pub regex: Regex,
    /// Version fields.
    pub version: VersionInfo,
    /// Line number in the file.
    pub line: usize,
}

/// What a response matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub service: String,
    /// From a `softmatch`: the service is known but probing should go on (see
    /// [`ProbeDb::probe_order_with`]).
    pub soft: bool,
    pub product: Option<String>,
    pub version: Option<String>,
    /// Nmap's "extrainfo".
    pub info: Option<String>,
    pub hostname: Option<String>,
    pub ostype: Option<String>,
    pub devicetype: Option<String>,
    /// Full CPE names (`cpe:/a:openbsd:openssh:9.2p1`).
    pub cpes: Vec<String>,
    /// The probe whose match line matched (the probe itself, a fallback or NULL).
    pub matched_probe: usize,
    /// Line of the match line in the file.
    pub line: usize,
}

/// The whole database.
#[derive(Debug, Clone, Default)]
pub struct ProbeDb {
    /// Probes in file order.
    pub probes: Vec<Probe>,
    /// The `Exclude` directive.
    pub excludes: Excludes,
}

/// Nmap keeps one CPE per part (application, hardware, operating system), the last given
/// of each, and reports them in that order: a match line's `cpe:/o:debian:debian_linux/
/// cpe:/o:linux:linux_kernel/` comes out as the kernel alone.
fn one_cpe_per_part(cpes: impl Iterator<Item = String>) -> Vec<String> {
    let mut last: [Option<String>; 3] = [None, None, None];
    for c in cpes {
        let slot = match c.as_bytes().get(5) {
            Some(b'a') => 0,
            Some(b'h') => 1,
            Some(b'o') => 2,
            _ => continue,
        };
        last[slot] = Some(c);
    }
    last.into_iter().flatten().collect()
}

fn opt<'s>(t: &Option<Template>, group: &impl Fn(usize) -> &'s [u8]) -> Option<String> {
    t.as_ref()
        .map(|t| t.render(group, false))
        .filter(|s| !s.is_empty())
}

impl ProbeDb {
    /// Reads and parses a file (e.g. `/usr/share/nmap/nmap-service-probes`).
    pub fn load(path: &std::path::Path) -> std::io::Result<(ProbeDb, Vec<ParseError>)> {
        let bytes = std::fs::read(path)?;
        Ok(parse(&String::from_utf8_lossy(&bytes)))
    }

    /// The first probe of `proto` named `name`.
    pub fn probe_by_name(&self, proto: Proto, name: &str) -> Option<usize> {
        self.probes
            .iter()
            .position(|p| p.proto == proto && p.name == name)
    }

    /// The NULL probe: the first TCP probe with an empty payload (Nmap's `isNullProbe`). It
    /// only waits for a banner.
    pub fn null_probe(&self) -> Option<usize> {
        self.probes
            .iter()
            .position(|p| p.proto == Proto::Tcp && p.payload.is_empty())
    }

    /// Whether version detection must leave `port` alone (`Exclude`).
    pub fn is_excluded(&self, proto: Proto, port: u16) -> bool {
        self.excludes.contains(proto, port)
    }

    /// The probes whose matches are tried, in order, on a response to `probe`: the probe
    /// itself, its `fallback`s left to right, then (TCP only) the NULL probe.
    pub fn match_chain(&self, probe: usize) -> Vec<usize> {
        let Some(p) = self.probes.get(probe) else {
            return Vec::new();
        };
        let mut chain = vec![probe];
        for &f in &p.fallback {
            if f < self.probes.len() && !chain.contains(&f) {
                chain.push(f);
            }
        }
        if p.proto == Proto::Tcp {
            if let Some(n) = self.null_probe() {
                if !chain.contains(&n) {
                    chain.push(n);
                }
            }
        }
        chain
    }

    /// Matches a response to `probe` against [`match_chain`](Self::match_chain)'s match lines,
    /// in order. Returns the first hard match; a softmatch narrows the search: from then on
    /// only lines for its service count, and it is returned (with `soft: true`) if no hard
    /// match for that service follows. `soft_service` is a service an earlier probe
    /// softmatched: only lines for it count at all. Only the first [`MAX_SUBJECT`] bytes of
    /// `response` are looked at.
    pub fn match_response(
        &self,
        probe: usize,
        response: &[u8],
        soft_service: Option<&str>,
    ) -> Option<Found> {
        let subject = &response[..response.len().min(MAX_SUBJECT)];
        let mut narrowed = soft_service;
        let mut soft_found: Option<Found> = None;
        for pi in self.match_chain(probe) {
            for m in &self.probes[pi].matches {
                if narrowed.is_some_and(|s| s != m.service) {
                    continue;
                }
                if m.soft && soft_found.is_some() {
                    continue;
                }
                // A match error (a limit hit) is "no match".
                let Ok(Some(caps)) = m.regex.captures(subject) else {
                    continue;
                };
                let found = Self::found(m, &caps, pi);
                if !m.soft {
                    return Some(found);
                }
                narrowed = Some(&m.service);
                soft_found = Some(found);
            }
        }
        soft_found
    }

    fn found(m: &Match, caps: &Captures<'_>, probe: usize) -> Found {
        let group = |n: usize| caps.get(n).map_or(&b""[..], |g| g.as_bytes());
        let v = &m.version;
        Found {
            service: m.service.clone(),
            soft: m.soft,
            product: opt(&v.product, &group),
            version: opt(&v.version, &group),
            info: opt(&v.info, &group),
            hostname: opt(&v.hostname, &group),
            ostype: opt(&v.ostype, &group),
            devicetype: opt(&v.devicetype, &group),
            cpes: one_cpe_per_part(
                v.cpes
                    .iter()
                    .map(|t| t.render(group, true))
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("cpe:/{s}")),
            ),
            matched_probe: probe,
            line: m.line,
        }
    }

    /// The probes to send to `port`, in Nmap's order, before any softmatch: see
    /// [`probe_order_with`](Self::probe_order_with).
    pub fn probe_order(&self, proto: Proto, port: u16, ssl: bool, intensity: u8) -> Vec<usize> {
        self.probe_order_with(proto, port, ssl, intensity, None)
    }

    /// The probes to send to `port`, in Nmap's order (`ServiceNFO::nextProbe`):
    ///
    /// 1. for TCP, the NULL probe;
    /// 2. the probes of `proto` whose `ports` (`sslports` when `ssl`) list `port`, in file
    ///    order, whatever their rarity;
    /// 3. the other probes of `proto` in file order whose rarity is at most `intensity`
    ///    (`--version-light` = 2, default 7, `--version-all` = 9).
    ///
    /// With `soft_service` (a softmatch was found), steps 2 and 3 keep only probes with a
    /// match line for that service, and step 3 ignores rarity; at intensity 9 that filter is
    /// off (as in Nmap). The relative order never changes, so after a softmatch the engine
    /// recomputes the list and goes on with the probes it has not sent yet.
    pub fn probe_order_with(
        &self,
        proto: Proto,
        port: u16,
        ssl: bool,
        intensity: u8,
        soft_service: Option<&str>,
    ) -> Vec<usize> {
        let null = self.null_probe();
        let possible = |p: &Probe| match soft_service {
            None => true,
            Some(s) => intensity >= INTENSITY_ALL || p.service_is_possible(s),
        };
        let mut order = Vec::new();
        if proto == Proto::Tcp {
            order.extend(null);
        }
        let candidates = || {
            self.probes
                .iter()
                .enumerate()
                .filter(move |&(i, p)| Some(i) != null && p.proto == proto)
        };
        order.extend(
            candidates()
                .filter(|(_, p)| p.port_is_probable(port, ssl) && possible(p))
                .map(|(i, _)| i),
        );
        order.extend(
            candidates()
                .filter(|(_, p)| {
                    !p.port_is_probable(port, ssl)
                        && match soft_service {
                            None => p.rarity <= intensity,
                            Some(_) => possible(p),
                        }
                })
                .map(|(i, _)| i),
        );
        order
    }
}

#[cfg(test)]
mod tests;
