//! The platform a service runs on, as far as a scan tells (a Debian revision or the word
//! Debian in the banner, the service's `ostype` and OS CPEs, the host's OS detection), and
//! whether the other nodes of an NVD AND configuration hold there. NVD writes "Redis on
//! Debian 11" as an AND of a vulnerable `redis` node and a non-vulnerable `debian_linux:11.0`
//! node: the Redis entry alone does not make the finding. The answer is yes, no, or not
//! known; a scan rarely knows the OS precisely, so "not known" is common and is reported as
//! a condition on the finding rather than dropped.

use crate::cpe::Cpe;
use crate::version::{compare, Bounds, Version};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// A three-valued answer, ordered no < not known < yes (OR takes the greatest, AND the
/// least).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holds {
    No,
    Unknown,
    Yes,
}

/// A product the service or host is known to run on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Known {
    vendor: String,
    product: String,
    /// None: the product is known, its version not.
    version: Option<String>,
    /// Where it was learnt, for the explanation.
    how: &'static str,
}

/// The operating system family, enough to rule out another OS's entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    Debian,
    Linux,
    Windows,
}

/// What is known of the platform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Platform {
    known: Vec<Known>,
    family: Option<Family>,
}

impl Platform {
    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty() && self.family.is_none()
    }

    fn add(&mut self, vendor: &str, product: &str, version: Option<String>, how: &'static str) {
        let k = Known {
            vendor: vendor.into(),
            product: product.into(),
            version,
            how,
        };
        if !self.known.contains(&k) {
            self.known.push(k);
        }
    }

    fn family(&mut self, f: Family) {
        // The most precise wins: Debian over Linux; a contradiction leaves what came first.
        self.family = match (self.family, f) {
            (None, f) | (Some(Family::Linux), f @ Family::Debian) => Some(f),
            (kept, _) => kept,
        };
    }

    /// Debian, with its major release when the banner's revision names it (`+deb12u3`).
    pub fn debian(&mut self, major: Option<u32>, how: &'static str) {
        self.add(
            "debian",
            "debian_linux",
            major.map(|m| format!("{m}.0")),
            how,
        );
        self.add("linux", "linux_kernel", None, how);
        self.family(Family::Debian);
    }

    /// An `ostype` from `-sV` ("Linux", "Windows", "Unix").
    pub fn ostype(&mut self, ostype: &str) {
        let l = ostype.to_ascii_lowercase();
        if l.contains("linux") {
            self.add("linux", "linux_kernel", None, "the service's ostype");
            self.family(Family::Linux);
        } else if l.contains("windows") {
            self.family(Family::Windows);
        }
    }

    /// An OS or hardware CPE of the service or of the host's OS detection. Its version is
    /// not taken: Nmap's OS CPEs name a family of versions (`linux_kernel:5`).
    pub fn cpe(&mut self, c: &Cpe, how: &'static str) {
        if c.part == "a" {
            return;
        }
        self.add(&c.vendor, &c.product, None, how);
        match (c.vendor.as_str(), c.product.as_str()) {
            ("debian", "debian_linux") => self.family(Family::Debian),
            ("linux", "linux_kernel") => self.family(Family::Linux),
            ("microsoft", p) if p.starts_with("windows") => self.family(Family::Windows),
            _ => {}
        }
    }
}

/// A `cpeMatch` of an AND configuration's node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub part: String,
    pub vendor: String,
    pub product: String,
    /// An exact version, `*` (with the bounds) or `-`.
    pub version: String,
    pub bounds: [Option<String>; 4],
    pub criteria: String,
}

impl Entry {
    fn every_version(&self) -> bool {
        self.version == "*" && self.bounds.iter().all(Option::is_none)
    }

    fn covers(&self, v: &str) -> bool {
        match self.version.as_str() {
            "-" => false,
            "*" => Bounds::parse(self.bounds.each_ref().map(|b| b.as_deref()))
                .contain(&Version::parse(v)),
            exact => compare(v, exact) == Ordering::Equal,
        }
    }

    /// Whether the platform runs this entry's product, and how it is known.
    fn holds(&self, p: &Platform) -> (Holds, Option<&'static str>) {
        let mut best = (Holds::No, None);
        let mut same = false;
        for k in p
            .known
            .iter()
            .filter(|k| k.vendor == self.vendor && k.product == self.product)
        {
            same = true;
            let h = match &k.version {
                Some(v) if self.covers(v) => Holds::Yes,
                Some(_) => Holds::No,
                None if self.every_version() => Holds::Yes,
                None => Holds::Unknown,
            };
            if h > best.0 {
                best = (h, Some(k.how));
            }
        }
        if same {
            return best;
        }
        // Another OS than the one known: a host runs one.
        let other_os = self.part == "o"
            && match p.family {
                Some(Family::Debian) => true,
                Some(Family::Windows) => self.vendor != "microsoft",
                Some(Family::Linux) => matches!(self.vendor.as_str(), "microsoft" | "apple"),
                None => false,
            };
        if other_os {
            (Holds::No, None)
        } else {
            (Holds::Unknown, None)
        }
    }
}

/// A node of an AND configuration: any of its entries (none, when negated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub node: i64,
    pub negate: bool,
    pub entries: Vec<Entry>,
}

/// Whether the nodes other than `own` hold on `p`, with the explanation: for yes, what
/// held and how it is known; for not known, what would have to hold.
pub fn condition(nodes: &[Node], own: i64, p: &Platform) -> (Holds, String) {
    let mut all = Holds::Yes;
    let mut held = Vec::new();
    let mut open = Vec::new();
    for node in nodes.iter().filter(|n| n.node != own) {
        let mut any = (Holds::No, None, None);
        for e in &node.entries {
            let (h, how) = e.holds(p);
            if h > any.0 {
                any = (h, Some(e), how);
            }
        }
        let h = match (node.negate, any.0) {
            (true, Holds::Yes) => Holds::No,
            (true, Holds::No) => Holds::Yes,
            (_, h) => h,
        };
        all = all.min(h);
        match h {
            Holds::Yes => held.push(match (node.negate, any.1, any.2) {
                (false, Some(e), Some(how)) => format!("running on {} ({how})", e.criteria),
                (false, Some(e), None) => format!("running on {}", e.criteria),
                _ => "not running on the platforms NVD excludes".to_string(),
            }),
            Holds::Unknown => open.push(describe(node)),
            Holds::No => {}
        }
    }
    let why = match all {
        Holds::Yes => held.join("; "),
        Holds::Unknown => format!("only when {}", open.join(" and ")),
        Holds::No => String::new(),
    };
    (all, why)
}

/// "running on A or B (or N more)", "not running on A".
fn describe(node: &Node) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<&str> = node
        .entries
        .iter()
        .take(SHOWN)
        .map(|e| e.criteria.as_str())
        .collect();
    names.dedup();
    let more = node.entries.len().saturating_sub(SHOWN);
    let mut t = format!(
        "{} {}",
        if node.negate {
            "not running on"
        } else {
            "running on"
        },
        names.join(" or ")
    );
    if more > 0 {
        t.push_str(&format!(" (or {more} more)"));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpe;

    fn entry(criteria: &str, bounds: [Option<&str>; 4]) -> Entry {
        let c = cpe::parse_23(criteria).unwrap();
        Entry {
            part: c.part.clone(),
            vendor: c.vendor.clone(),
            product: c.product.clone(),
            version: c.full_version(),
            bounds: bounds.map(|b| b.map(Into::into)),
            criteria: criteria.into(),
        }
    }

    /// CVE-2022-0543's shape: Redis (node 0, vulnerable) AND Debian 9, 10 or 11 (node 1).
    fn redis_on_debian() -> Vec<Node> {
        vec![
            Node {
                node: 0,
                negate: false,
                entries: vec![entry("cpe:2.3:a:redis:redis:-:*:*:*:*:*:*:*", [None; 4])],
            },
            Node {
                node: 1,
                negate: false,
                entries: ["9.0", "10.0", "11.0"]
                    .iter()
                    .map(|v| {
                        entry(
                            &format!("cpe:2.3:o:debian:debian_linux:{v}:*:*:*:*:*:*:*"),
                            [None; 4],
                        )
                    })
                    .collect(),
            },
        ]
    }

    /// Redis (node 0) on the one platform entry of node 1.
    fn redis_on(criteria: &str, bounds: [Option<&str>; 4], negate: bool) -> Vec<Node> {
        vec![
            redis_on_debian().remove(0),
            Node {
                node: 1,
                negate,
                entries: vec![entry(criteria, bounds)],
            },
        ]
    }

    #[test]
    fn a_debian_release_from_the_banner_decides() {
        let nodes = redis_on_debian();
        let mut bullseye = Platform::default();
        bullseye.debian(Some(11), "the banner's Debian revision");
        let (h, why) = condition(&nodes, 0, &bullseye);
        assert_eq!(h, Holds::Yes);
        assert!(
            why.contains("debian_linux:11.0") && why.contains("banner"),
            "{why}"
        );
        let mut bookworm = Platform::default();
        bookworm.debian(Some(12), "the banner's Debian revision");
        assert_eq!(condition(&nodes, 0, &bookworm).0, Holds::No);
        // Debian without a release: not known.
        let mut debian = Platform::default();
        debian.debian(None, "the banner says Debian");
        assert_eq!(condition(&nodes, 0, &debian).0, Holds::Unknown);
    }

    #[test]
    fn another_os_rules_out_and_nothing_known_stays_open() {
        let nodes = redis_on_debian();
        let mut windows = Platform::default();
        windows.ostype("Windows");
        assert_eq!(condition(&nodes, 0, &windows).0, Holds::No);
        // Linux of an unknown distribution could be Debian.
        let mut linux = Platform::default();
        linux.ostype("Linux");
        assert_eq!(condition(&nodes, 0, &linux).0, Holds::Unknown);
        let (h, why) = condition(&nodes, 0, &Platform::default());
        assert_eq!(h, Holds::Unknown);
        assert!(
            why.starts_with("only when running on cpe:2.3:o:debian:debian_linux:9.0"),
            "{why}"
        );
        // A Debian host rules out Ubuntu; a Linux one rules out Windows.
        let ubuntu = redis_on(
            "cpe:2.3:o:canonical:ubuntu_linux:20.04:*:*:*:lts:*:*:*",
            [None; 4],
            false,
        );
        let mut debian = Platform::default();
        debian.debian(None, "the banner says Debian");
        assert_eq!(condition(&ubuntu, 0, &debian).0, Holds::No);
        assert_eq!(condition(&ubuntu, 0, &linux).0, Holds::Unknown);
    }

    #[test]
    fn ranges_negation_and_os_detection() {
        let old_kernel = redis_on(
            "cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*",
            [None, None, None, Some("5.0")],
            false,
        );
        // OS detection names the kernel, not its version: a bounded entry is not known...
        let mut p = Platform::default();
        p.cpe(
            &cpe::parse("cpe:/o:linux:linux_kernel:4").unwrap(),
            "OS detection",
        );
        assert_eq!(condition(&old_kernel, 0, &p).0, Holds::Unknown);
        // ...an every-version entry is.
        let any_kernel = redis_on(
            "cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*",
            [None; 4],
            false,
        );
        let (h, why) = condition(&any_kernel, 0, &p);
        assert_eq!(h, Holds::Yes);
        assert!(why.contains("OS detection"), "{why}");
        // Negated: "not on Windows" holds on Linux, fails on Windows.
        let not_windows = redis_on(
            "cpe:2.3:o:microsoft:windows:*:*:*:*:*:*:*:*",
            [None; 4],
            true,
        );
        assert_eq!(condition(&not_windows, 0, &p).0, Holds::Yes);
        let mut w = Platform::default();
        w.cpe(
            &cpe::parse("cpe:/o:microsoft:windows").unwrap(),
            "OS detection",
        );
        assert_eq!(condition(&not_windows, 0, &w).0, Holds::No);
        // A version range checked against a known version.
        let deb = |major| {
            let mut p = Platform::default();
            p.debian(Some(major), "the banner's Debian revision");
            p
        };
        let range = redis_on(
            "cpe:2.3:o:debian:debian_linux:*:*:*:*:*:*:*:*",
            [Some("10.0"), None, None, Some("12.0")],
            false,
        );
        assert_eq!(condition(&range, 0, &deb(11)).0, Holds::Yes);
        assert_eq!(condition(&range, 0, &deb(12)).0, Holds::No);
        // The node the match is in is not its own condition: from node 1, what remains
        // is node 0 (Redis, which the platform does not tell), not the Debian range.
        assert_eq!(condition(&range, 1, &deb(12)).0, Holds::Unknown);
    }
}
