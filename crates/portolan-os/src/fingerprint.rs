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

use crate::db::{attr_index, test_index};
use std::fmt::Write as _;

/// Nmap's wrap width: `OS:` and 72 characters of the fingerprint per line
/// (FP_RESULT_WRAP_LINE_LEN is 74 and Nmap copies while the line length is at most that).
const WRAP_CHARS: usize = 72;

impl ScanInfo {
    /// `PV=Y` as Nmap 7.93 decides it (isipprivate): IPv4 in 10/8, 172.16/12, 169.254/16 or
    /// 192.168/16; never for IPv6 or anything else (loopback and 198.18/15 print `PV=N`).
    pub fn private_address(ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                a == 10
                    || (a == 172 && (16..=31).contains(&b))
                    || (a, b) == (169, 254)
                    || (a, b) == (192, 168)
            }
            std::net::IpAddr::V6(_) => false,
        }
    }
}

/// A printed fingerprint we could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FpError {
    #[error("fingerprint: no test in the text")]
    Empty,
    #[error("fingerprint: test {0:?} is not closed by ')'")]
    Unclosed(String),
    #[error("fingerprint: bad test name {0:?}")]
    BadName(String),
    #[error("fingerprint: no '=' in {test}({pair})")]
    NoEquals { test: String, pair: String },
    #[error("fingerprint: bad SCAN value {0:?}")]
    BadScan(String),
}

/// The `SCAN(...)` pseudo-test as Nmap's WriteSInfo writes it. OT, CT and CU are always
/// present (empty when no such port was found); DS and DC only when known; M only with a MAC.
fn scan_line(scan: &ScanInfo) -> String {
    let port = |p: Option<u16>| p.map(|p| p.to_string()).unwrap_or_default();
    let mut s = format!(
        "SCAN(V={}%E={}%D={}/{}%OT={}%CT={}%CU={}%PV={}",
        scan.version,
        scan.engine,
        scan.month,
        scan.day,
        port(scan.open_tcp),
        port(scan.closed_tcp),
        port(scan.closed_udp),
        if scan.private { 'Y' } else { 'N' },
    );
    if let Some(d) = scan.distance {
        let _ = write!(s, "%DS={d}");
    }
    if let Some(m) = scan.distance_method {
        let _ = write!(s, "%DC={m}");
    }
    let _ = write!(s, "%G={}", if scan.good { 'Y' } else { 'N' });
    if let Some([a, b, c]) = scan.mac_prefix {
        let _ = write!(s, "%M={a:02X}{b:02X}{c:02X}");
    }
    // Nmap prints the time as a C int with %X: the low 32 bits.
    let _ = write!(s, "%TM={:X}%P={})", scan.time as u32, scan.platform);
    s
}

/// One test as Nmap's test2str: `T1(R=Y%DF=Y)`, attributes in Nmap's order.
fn test_text(t: &Test) -> String {
    let mut attrs: Vec<&(String, String)> = t.attrs.iter().collect();
    if let Some(ti) = test_index(&t.name) {
        attrs.sort_by_key(|(a, _)| attr_index(ti, a).unwrap_or(usize::MAX));
    }
    let body: Vec<String> = attrs.iter().map(|(a, v)| format!("{a}={v}")).collect();
    format!("{}({})", t.name, body.join("%"))
}

/// The tests in Nmap's order (SEQ, OPS, WIN, ECN, T1-T7, U1, IE; others after).
/// The tests of every try in Nmap's order (SEQ, OPS, WIN, ECN, T1-T7, U1, IE; others
/// after), tries in turn within a name. Nmap 7.93 (mergeFPs) prints a test of a later try
/// only when its attribute NAMES differ from an earlier one's: values are not compared, so
/// what is printed is, in effect, the first try's.
fn merged(tries: &[Fingerprint]) -> Vec<&Test> {
    let mut all: Vec<&Test> = tries.iter().flat_map(|fp| fp.tests.iter()).collect();
    all.sort_by_key(|t| test_index(&t.name).unwrap_or(usize::MAX));
    let mut kept: Vec<&Test> = Vec::with_capacity(all.len());
    for t in all {
        let same_names = |k: &&Test| {
            k.name == t.name
                && k.attrs.len() == t.attrs.len()
                && k.attrs.iter().zip(&t.attrs).all(|(a, b)| a.0 == b.0)
        };
        if !kept.iter().any(same_names) {
            kept.push(t);
        }
    }
    kept
}

/// The fingerprint as Nmap prints it for submission (XML `osfingerprint@fingerprint` and the
/// normal output's block after "TCP/IP fingerprint:"): the SCAN line and the tests run
/// together, cut into `OS:` lines of 72 characters, each line ending in a newline.
pub fn format(fp: &Fingerprint, scan: &ScanInfo) -> String {
    format_tries(std::slice::from_ref(fp), scan)
}

/// [`format`] for all the tries Nmap made on a host (it prints them merged).
pub fn format_tries(tries: &[Fingerprint], scan: &ScanInfo) -> String {
    let mut flat = scan_line(scan);
    for t in merged(tries) {
        flat.push_str(&test_text(t));
    }
    let mut out = String::with_capacity(flat.len() + flat.len() / WRAP_CHARS * 4 + 4);
    let chars: Vec<char> = flat.chars().collect();
    for chunk in chars.chunks(WRAP_CHARS) {
        out.push_str("OS:");
        out.extend(chunk);
        out.push('\n');
    }
    out
}

/// The unwrapped form Nmap prints when conditions were not ideal: one line per test, the
/// SCAN line first, each ending in a newline.
pub fn format_plain(fp: &Fingerprint, scan: &ScanInfo) -> String {
    format_tries_plain(std::slice::from_ref(fp), scan)
}

/// [`format_plain`] for all the tries Nmap made on a host.
pub fn format_tries_plain(tries: &[Fingerprint], scan: &ScanInfo) -> String {
    let mut out = scan_line(scan);
    out.push('\n');
    for t in merged(tries) {
        out.push_str(&test_text(t));
        out.push('\n');
    }
    out
}

/// Reads a printed fingerprint, wrapped (`OS:` lines) or plain (one test per line); the SCAN
/// line is skipped (see [`parse_full`]).
pub fn parse(text: &str) -> Result<Fingerprint, FpError> {
    parse_full(text).map(|(fp, _)| fp)
}

/// [`parse`], also returning the SCAN line's facts when there is one.
pub fn parse_full(text: &str) -> Result<(Fingerprint, Option<ScanInfo>), FpError> {
    // Joining the lines undoes the wrapping; plain lines join the same way since every test
    // ends with ')'.
    // A wrapped line is taken as is after its prefix (a value may hold blanks, and a cut
    // may fall anywhere); a plain line is trimmed.
    let mut flat = String::with_capacity(text.len());
    for line in text.lines() {
        match line.strip_prefix("OS:") {
            Some(chunk) => flat.push_str(chunk),
            None => {
                let line = line.trim();
                if line != "TCP/IP fingerprint:" {
                    flat.push_str(line);
                }
            }
        }
    }
    let mut fp = Fingerprint::default();
    let mut scan = None;
    let mut rest = flat.as_str();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('(')
            .ok_or_else(|| FpError::BadName(rest.to_string()))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(FpError::BadName(name.to_string()));
        }
        let (body, after) = after
            .split_once(')')
            .ok_or_else(|| FpError::Unclosed(name.to_string()))?;
        rest = after;
        let mut attrs = Vec::new();
        for pair in body.split('%').filter(|p| !p.is_empty()) {
            let (a, v) = pair.split_once('=').ok_or_else(|| FpError::NoEquals {
                test: name.to_string(),
                pair: pair.to_string(),
            })?;
            attrs.push((a.to_string(), v.to_string()));
        }
        if name == "SCAN" {
            scan = Some(scan_info(&attrs)?);
        } else {
            fp.tests.push(Test {
                name: name.to_string(),
                attrs,
            });
        }
    }
    if fp.tests.is_empty() {
        return Err(FpError::Empty);
    }
    Ok((fp, scan))
}

fn scan_info(attrs: &[(String, String)]) -> Result<ScanInfo, FpError> {
    let bad = |v: &str| FpError::BadScan(v.to_string());
    let port = |v: &str| -> Result<Option<u16>, FpError> {
        if v.is_empty() {
            Ok(None)
        } else {
            v.parse().map(Some).map_err(|_| bad(v))
        }
    };
    let mut s = ScanInfo::default();
    for (a, v) in attrs {
        match a.as_str() {
            "V" => s.version = v.clone(),
            "E" => s.engine = v.parse().map_err(|_| bad(v))?,
            "D" => {
                let (m, d) = v.split_once('/').ok_or_else(|| bad(v))?;
                s.month = m.parse().map_err(|_| bad(v))?;
                s.day = d.parse().map_err(|_| bad(v))?;
            }
            "OT" => s.open_tcp = port(v)?,
            "CT" => s.closed_tcp = port(v)?,
            "CU" => s.closed_udp = port(v)?,
            "PV" => s.private = v == "Y",
            "DS" => s.distance = Some(v.parse().map_err(|_| bad(v))?),
            "DC" => s.distance_method = v.chars().next(),
            "G" => s.good = v == "Y",
            "M" => {
                let n = u32::from_str_radix(v, 16).map_err(|_| bad(v))?;
                if v.len() != 6 {
                    return Err(bad(v));
                }
                let [_, a, b, c] = n.to_be_bytes();
                s.mac_prefix = Some([a, b, c]);
            }
            "TM" => s.time = i64::from(u32::from_str_radix(v, 16).map_err(|_| bad(v))?),
            "P" => s.platform = v.clone(),
            // Fields of later Nmap versions: ignored.
            _ => {}
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fingerprint Nmap 7.93 printed for a Linux host in our lab (from
    /// crates/portolan-report/tests/data/nmap-os-a.xml, our own scan).
    const LAB_LINUX: &str = "\
OS:SCAN(V=7.93%E=4%D=12/4%OT=22%CT=1%CU=35716%PV=N%DS=2%DC=T%G=Y%TM=6B132B2
OS:F%P=x86_64-pc-linux-gnu)SEQ(SP=107%GCD=1%ISR=106%TI=Z%CI=Z%II=I%TS=21)OP
OS:S(O1=M5B4ST11NWA%O2=M5B4ST11NWA%O3=M5B4NNT11NWA%O4=M5B4ST11NWA%O5=M5B4ST
OS:11NWA%O6=M5B4ST11)WIN(W1=FE88%W2=FE88%W3=FE88%W4=FE88%W5=FE88%W6=FE88)EC
OS:N(R=Y%DF=Y%T=40%W=FAF0%O=M5B4NNSNWA%CC=Y%Q=)T1(R=Y%DF=Y%T=40%S=O%A=S+%F=
OS:AS%RD=0%Q=)T2(R=N)T3(R=N)T4(R=Y%DF=Y%T=40%W=0%S=A%A=Z%F=R%O=%RD=0%Q=)T5(
OS:R=Y%DF=Y%T=40%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)T6(R=Y%DF=Y%T=40%W=0%S=A%A=Z%
OS:F=R%O=%RD=0%Q=)T7(R=Y%DF=Y%T=40%W=0%S=Z%A=S+%F=AR%O=%RD=0%Q=)U1(R=Y%DF=N
OS:%T=40%IPL=164%UN=0%RIPL=G%RID=G%RIPCK=G%RUCK=G%RUD=G)IE(R=Y%DFI=N%T=40%C
OS:D=S)
";

    #[test]
    fn nmap_text_round_trips_exactly() {
        let (fp, scan) = parse_full(LAB_LINUX).unwrap();
        let scan = scan.unwrap();
        assert_eq!(scan.open_tcp, Some(22));
        assert_eq!(scan.distance, Some(2));
        assert_eq!(scan.distance_method, Some('T'));
        assert_eq!(scan.time, 0x6B132B2F);
        assert_eq!(fp.tests.len(), 13);
        assert_eq!(fp.get("T1", "F"), Some("AS"));
        assert_eq!(fp.get("T4", "O"), Some(""));
        assert_eq!(fp.test("T2").unwrap().attrs, [("R".into(), "N".into())]);
        assert_eq!(format(&fp, &scan), LAB_LINUX);
        // The plain form reads back to the same thing.
        let plain = format_plain(&fp, &scan);
        assert!(plain.starts_with("SCAN(V=7.93%E=4%D=12/4%OT=22%"));
        assert!(plain.contains("\nT2(R=N)\n"));
        assert_eq!(parse_full(&plain).unwrap(), (fp, Some(scan)));
    }

    #[test]
    fn scan_line_omits_what_nmap_omits() {
        let scan = ScanInfo {
            version: "7.93".into(),
            engine: 4,
            month: 12,
            day: 5,
            closed_tcp: Some(1),
            closed_udp: Some(38867),
            distance: Some(0),
            distance_method: Some('L'),
            time: 0x6B1372AB,
            platform: "x86_64-pc-linux-gnu".into(),
            ..ScanInfo::default()
        };
        assert_eq!(
            scan_line(&scan),
            "SCAN(V=7.93%E=4%D=12/5%OT=%CT=1%CU=38867%PV=N%DS=0%DC=L%G=N%TM=6B1372AB%P=x86_64-pc-linux-gnu)"
        );
        let with_mac = ScanInfo {
            mac_prefix: Some([0x02, 0xab, 0x0c]),
            distance: None,
            distance_method: None,
            good: true,
            ..scan
        };
        let line = scan_line(&with_mac);
        assert!(line.contains("%PV=N%G=Y%M=02AB0C%TM="), "{line}");
        let fp = Fingerprint {
            tests: vec![Test {
                name: "IE".into(),
                attrs: vec![("R".into(), "Y".into())],
            }],
        };
        let (_, back) = parse_full(&format(&fp, &with_mac)).unwrap();
        assert_eq!(back, Some(with_mac));
    }

    #[test]
    fn private_as_nmap_7_93() {
        let private = |s: &str| ScanInfo::private_address(s.parse().unwrap());
        assert!(private("10.1.2.3"));
        assert!(private("172.31.0.1"));
        assert!(!private("172.32.0.1"));
        assert!(private("169.254.9.9"));
        assert!(private("192.168.0.1"));
        assert!(!private("127.0.0.1"));
        assert!(!private("198.18.200.66"));
        assert!(!private("fd00::1"));
    }

    #[test]
    fn tests_and_attributes_come_out_in_nmap_order() {
        let fp = Fingerprint {
            tests: vec![
                Test {
                    name: "T1".into(),
                    attrs: vec![("DF".into(), "Y".into()), ("R".into(), "Y".into())],
                },
                Test {
                    name: "SEQ".into(),
                    attrs: vec![("CI".into(), "Z".into())],
                },
            ],
        };
        let plain = format_plain(&fp, &ScanInfo::default());
        assert!(plain.ends_with("\nSEQ(CI=Z)\nT1(R=Y%DF=Y)\n"), "{plain}");
    }

    #[test]
    fn tries_merge_as_nmap_7_93_does() {
        let one = parse("SEQ(SP=1%TS=U)T1(R=Y%DF=Y)U1(R=N)").unwrap();
        // Same attribute names, other values: not printed again. Other names: printed.
        let two = parse("SEQ(SP=2%TS=U)T1(R=N)U1(R=N)").unwrap();
        let plain = format_tries_plain(&[one, two], &ScanInfo::default());
        let tests: Vec<&str> = plain.lines().skip(1).collect();
        assert_eq!(
            tests,
            ["SEQ(SP=1%TS=U)", "T1(R=Y%DF=Y)", "T1(R=N)", "U1(R=N)"]
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(""), Err(FpError::Empty));
        assert!(matches!(parse("T1(R=Y"), Err(FpError::Unclosed(_))));
        assert!(matches!(parse("T 1(R=Y)"), Err(FpError::BadName(_))));
        assert!(matches!(parse("T1(RY)"), Err(FpError::NoEquals { .. })));
        assert!(matches!(
            parse("SCAN(E=x)T1(R=N)"),
            Err(FpError::BadScan(_))
        ));
    }
}
