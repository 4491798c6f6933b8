//! The authorised scope of a scan (`--scope FILE`, or `$PORTOLAN_SCOPE`): the networks it
//! may touch, the hosts it must never touch, the time windows it may run in and a rate
//! ceiling. A scan reaching outside its scope is refused before any packet leaves, naming
//! what is out of scope. The format is documented in docs/scope.md.

use anyhow::{bail, Context, Result};
use chrono::{Datelike, Local, NaiveTime, Timelike, Weekday};
use portolan_engine::plan::targets::{parse_exclude_arg, ExcludeSet, SystemResolver};
use portolan_engine::ScanPlan;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// The environment variable naming the default scope file.
pub const SCOPE_ENV: &str = "PORTOLAN_SCOPE";

/// The most target addresses checked against a scope (a /6 of IPv4).
const CHECK_CAP: u64 = 1 << 26;

/// How many out-of-scope addresses a refusal names.
const NAMED: usize = 5;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeFile {
    /// Networks (CIDR, ranges, addresses) the scan may touch.
    allow: Vec<String>,
    /// Hosts or networks it must never touch, even when allowed.
    #[serde(default)]
    never: Vec<String>,
    /// When scans may run, local time: "Mon-Fri 19:00-07:00", "Sat 00:00-24:00", "daily
    /// 22:00-06:00". None: any time.
    #[serde(default)]
    windows: Vec<String>,
    /// The most probes per second any scan may send.
    max_rate: Option<f64>,
}

/// A time window: these days, from `start` to `end` (past midnight when `end <= start`:
/// the window belongs to the day it starts on).
#[derive(Debug, Clone, PartialEq)]
struct Window {
    days: [bool; 7],
    start: u32,
    end: u32,
}

/// A scope, loaded and checked.
#[derive(Debug)]
pub struct Scope {
    path: String,
    allow: ExcludeSet,
    never: ExcludeSet,
    windows: Vec<Window>,
    max_rate: Option<f64>,
}

/// The scope file `flag` or `$PORTOLAN_SCOPE` names, if any.
pub fn scope_path(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var(SCOPE_ENV).ok())
        .filter(|p| !p.is_empty())
}

fn day_index(name: &str) -> Option<usize> {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let lower = name.to_ascii_lowercase();
    days.iter()
        .position(|d| lower.starts_with(d) && lower.len() >= 3)
}

/// Minutes since midnight of "HH:MM" (24:00 allowed as an end).
fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

fn parse_window(text: &str) -> Option<Window> {
    let (days_part, times) = text.trim().rsplit_once(' ')?;
    let mut days = [false; 7];
    for part in days_part.split(',') {
        let part = part.trim();
        if part.eq_ignore_ascii_case("daily") || part == "*" {
            days = [true; 7];
            continue;
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day_index(part)?] = true,
        }
    }
    let (start, end) = times.split_once('-')?;
    let (start, end) = (minutes(start)?, minutes(end)?);
    (start < 24 * 60).then_some(Window { days, start, end })
}

impl Window {
    /// Whether the window is open on `day` (0 = Monday) at minute `m`.
    fn open_at(&self, day: usize, m: u32) -> bool {
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&m)
        } else {
            // Past midnight: open from start on its own day, until end on the next.
            (self.days[day] && m >= self.start) || (self.days[(day + 6) % 7] && m < self.end)
        }
    }
}

fn addresses(list: &[String], what: &str, path: &str) -> Result<ExcludeSet> {
    let mut specs = Vec::new();
    for entry in list {
        specs.extend(
            parse_exclude_arg(entry).with_context(|| format!("{path}: {what}: {entry:?}"))?,
        );
    }
    ExcludeSet::build(&specs, false, &SystemResolver).with_context(|| format!("{path}: {what}"))
}

impl Scope {
    /// Reads and checks a scope file.
    pub fn load(path: &str) -> Result<Scope> {
        let text = std::fs::read_to_string(Path::new(path))
            .with_context(|| format!("cannot read scope file {path}"))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &str) -> Result<Scope> {
        let file: ScopeFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{path}: {}", e.message()))?;
        if file.allow.is_empty() {
            bail!("{path}: 'allow' names no network: a scope must say what may be scanned");
        }
        let windows = file
            .windows
            .iter()
            .map(|w| {
                parse_window(w).with_context(|| {
                    format!("{path}: window {w:?} is not like \"Mon-Fri 19:00-07:00\"")
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(r) = file.max_rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("{path}: max_rate must be a positive number of probes per second");
            }
        }
        Ok(Scope {
            path: path.to_string(),
            allow: addresses(&file.allow, "allow", path)?,
            never: addresses(&file.never, "never", path)?,
            windows,
            max_rate: file.max_rate,
        })
    }

    /// Checks `plan` against the scope and applies its rate ceiling: every target must be
    /// allowed and none never-touch; the time must be inside a window; an explicit rate
    /// above the ceiling is refused. Returns the error naming what is out of scope.
    pub fn apply(&self, plan: &mut ScanPlan) -> Result<()> {
        let now = Local::now();
        let (day, minute) = (
            now.weekday().num_days_from_monday() as usize,
            now.hour() * 60 + now.minute(),
        );
        if !self.windows.is_empty() && !self.windows.iter().any(|w| w.open_at(day, minute)) {
            bail!(
                "out of scope: {} allows scans only in its windows, and it is {} {}",
                self.path,
                weekday_name(now.weekday()),
                NaiveTime::from_hms_opt(now.hour(), now.minute(), 0)
                    .map(|t| t.format("%H:%M").to_string())
                    .unwrap_or_default()
            );
        }
        if let Some(ceiling) = self.max_rate {
            if let Some(min) = plan.timing.min_rate.filter(|&m| m > ceiling) {
                bail!(
                    "out of scope: --min-rate {min} is above the rate ceiling of {} ({ceiling}/s)",
                    self.path
                );
            }
            if plan.timing.max_rate.is_some_and(|m| m > ceiling) {
                bail!(
                    "out of scope: --max-rate {} is above the rate ceiling of {} ({ceiling}/s)",
                    plan.timing.max_rate.unwrap_or_default(),
                    self.path
                );
            }
            plan.timing.max_rate = Some(plan.timing.max_rate.unwrap_or(ceiling).min(ceiling));
        }
        let mut outside: Vec<IpAddr> = Vec::new();
        let mut forbidden: Vec<IpAddr> = Vec::new();
        let (mut n_outside, mut n_forbidden) = (0u64, 0u64);
        let excludes = &plan.targets.excludes;
        let mut checked = 0u64;
        for e in &plan.targets.expansions {
            for ip in e.addrs.clone().filter(|ip| !excludes.contains(*ip)) {
                checked += 1;
                if checked > CHECK_CAP {
                    bail!(
                        "out of scope: more than {CHECK_CAP} targets to check against {}: split the scan",
                        self.path
                    );
                }
                if !self.allow.contains(ip) {
                    n_outside += 1;
                    if outside.len() < NAMED {
                        outside.push(ip);
                    }
                } else if self.never.contains(ip) {
                    n_forbidden += 1;
                    if forbidden.len() < NAMED {
                        forbidden.push(ip);
                    }
                }
            }
        }
        let list = |v: &[IpAddr], n: u64| {
            let mut s: Vec<String> = v.iter().map(IpAddr::to_string).collect();
            if n > v.len() as u64 {
                s.push(format!("and {} more", n - v.len() as u64));
            }
            s.join(", ")
        };
        if n_forbidden > 0 {
            bail!(
                "out of scope: {} says never to touch {} (exclude them with --exclude to scan the rest)",
                self.path,
                list(&forbidden, n_forbidden)
            );
        }
        if n_outside > 0 {
            bail!(
                "out of scope: {} is outside the networks {} allows",
                list(&outside, n_outside),
                self.path
            );
        }
        Ok(())
    }
}

fn weekday_name(d: Weekday) -> &'static str {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][d.num_days_from_monday() as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_open_past_midnight() {
        let w = parse_window("Mon-Fri 19:00-07:00").unwrap();
        assert!(w.open_at(0, 20 * 60)); // Monday 20:00
        assert!(w.open_at(1, 6 * 60)); // Tuesday 06:00, from Monday night
        assert!(!w.open_at(1, 12 * 60)); // Tuesday noon
        assert!(w.open_at(5, 6 * 60)); // Saturday 06:00, from Friday night
        assert!(!w.open_at(5, 20 * 60)); // Saturday evening
        assert!(!w.open_at(0, 6 * 60)); // Monday 06:00: Sunday night is not in it
        let d = parse_window("daily 00:00-24:00").unwrap();
        assert!((0..7).all(|day| d.open_at(day, 0) && d.open_at(day, 23 * 60 + 59)));
        let wrap = parse_window("Sat-Mon 08:00-09:00").unwrap();
        assert_eq!(wrap.days, [true, false, false, false, false, true, true]);
        for bad in [
            "Mon 25:00-26:00",
            "Funday 10:00-11:00",
            "Mon",
            "Mon 10-11",
            "Mon 10:60-11:00",
        ] {
            assert_eq!(parse_window(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_scope_file_is_checked_when_read() {
        let ok = Scope::parse(
            "allow = [\"198.18.0.0/15\"]\nnever = [\"198.18.0.50\"]\nwindows = [\"daily 00:00-24:00\"]\nmax_rate = 500\n",
            "s.toml",
        )
        .unwrap();
        assert!(ok.allow.contains("198.18.3.4".parse().unwrap()));
        assert!(ok.never.contains("198.18.0.50".parse().unwrap()));
        assert_eq!(ok.max_rate, Some(500.0));
        for (bad, says) in [
            ("allow = []\n", "names no network"),
            ("allow = [\"198.18.0.0/15\"]\nmax_rate = 0\n", "positive"),
            (
                "allow = [\"198.18.0.0/15\"]\nwindows = [\"someday\"]\n",
                "window",
            ),
            ("allow = [\"not an address!\"]\n", "allow"),
            ("allow = [\"198.18.0.0/15\"]\ntypo = 1\n", "typo"),
        ] {
            let e = format!("{:#}", Scope::parse(bad, "s.toml").unwrap_err());
            assert!(e.contains("s.toml") && e.contains(says), "{bad}: {e}");
        }
    }
}
