//! A subject fingerprint (what one host answered) and its text form.
// OWNER: helper "os-db". The types below are the agreed interface; keep their names and
// fields (add fields or functions freely).

/// The tests computed from one host's replies, in Nmap's order (SEQ, OPS, WIN, ECN,
/// T1-T7, U1, IE). A test that got no answer is present with `R=N` where Nmap writes it so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    pub tests: Vec<Test>,
}

/// One test line: `T1(R=Y%DF=Y%...)`. Values are as Nmap writes them (hex numbers in upper
/// case, option strings such as `M5B4ST11NW7`, empty strings allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Test {
    pub name: String,
    pub attrs: Vec<(String, String)>,
}

impl Fingerprint {
    pub fn test(&self, name: &str) -> Option<&Test> {
        self.tests.iter().find(|t| t.name == name)
    }

    pub fn get(&self, test: &str, attr: &str) -> Option<&str> {
        self.test(test)?
            .attrs
            .iter()
            .find(|(a, _)| a == attr)
            .map(|(_, v)| v.as_str())
    }
}

/// The facts of the `SCAN(...)` line Nmap puts first in a printed fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanInfo {
    /// `V=`: the version we claim to be compatible with (Nmap's, e.g. "7.93").
    pub version: String,
    /// `E=4` (IPv4).
    pub engine: u8,
    /// `D=M/D` date of the scan (month/day).
    pub month: u8,
    pub day: u8,
    /// `OT`, `CT`, `CU`: the open TCP, closed TCP and closed UDP ports used.
    pub open_tcp: Option<u16>,
    pub closed_tcp: Option<u16>,
    pub closed_udp: Option<u16>,
    /// `PV=Y`: the target has a private address.
    pub private: bool,
    /// `DS=` network distance and `DC=` how it was found (`L` local, `D` direct, `I` ICMP,
    /// `T` traceroute).
    pub distance: Option<u32>,
    pub distance_method: Option<char>,
    /// `G=Y`: good conditions (an open and a closed port, enough answers).
    pub good: bool,
    /// `M=`: the first three bytes of the target's MAC, when it is on our link.
    pub mac_prefix: Option<[u8; 3]>,
    /// `TM=`: Unix time of the scan, hex.
    pub time: i64,
    /// `P=`: the platform string (e.g. "x86_64-pc-linux-gnu").
    pub platform: String,
}
