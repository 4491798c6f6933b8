//! Without nmap-os-db (or with --builtin-data): a coarse class from our own knowledge of
//! initial TTLs, windows and option orders, always labelled as a coarse guess.
//!
//! The rules (ours, from how the common stacks are known to behave):
//! - the initial TTL, rounded up to 32, 64, 128 or 255 from the `TG` (or `T`) of the
//!   responses: Windows starts at 128; Linux, the BSDs and macOS at 64; many routers,
//!   printers and other appliances at 255 (Solaris too, so 255 alone says little);
//! - the order of the SYN/ACK's TCP options (`O1`, else another `O`): Linux sends
//!   MSS, SACK-permitted, timestamps, then window scale last (`M5B4ST11NW7`); Windows and
//!   the BSDs put window scale right after MSS (`M5B4NW8NNS`, `M5B4NW6ST11`), and macOS ends
//!   with two end-of-list bytes (`...SLL`); small stacks send no options or only an MSS;
//! - the window (`W1`) only colours the reason, it decides nothing.
//!
//! Verdicts: TTL 128 with window scale before SACK (or no options seen) is Windows;
//! TTL 64 with Linux's order is Linux, with the BSD order BSD/macOS, with no options or an
//! MSS alone "embedded"; TTL 255 with no options or an MSS alone "embedded". Anything else
//! (conflicting signs, no TTL) is None: we would rather say nothing than guess wrong.
// OWNER: helper "os-db".

use crate::fingerprint::Fingerprint;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coarse {
    /// "Linux", "Windows", "BSD/macOS" or "embedded".
    pub family: &'static str,
    /// What the guess rests on, in words (e.g. "initial TTL 64, TCP options M5B4ST11NW7").
    pub reason: String,
}

/// The TCP options of a reply, by kind, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Mss,
    Nop,
    Scale,
    Timestamp,
    Sack,
    End,
}

/// Reads Nmap's option string (`M5B4NW7ST11`, ...); None on anything unexpected.
fn options(s: &str) -> Option<Vec<Opt>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        i += 1;
        let hex_run = |i: &mut usize| {
            while b.get(*i).is_some_and(u8::is_ascii_hexdigit) {
                *i += 1;
            }
        };
        match c {
            b'M' => {
                hex_run(&mut i);
                out.push(Opt::Mss);
            }
            b'W' => {
                hex_run(&mut i);
                out.push(Opt::Scale);
            }
            b'T' => {
                // Two flags: whether TSval and TSecr were non-zero.
                if !b.get(i..i + 2)?.iter().all(|d| matches!(d, b'0' | b'1')) {
                    return None;
                }
                i += 2;
                out.push(Opt::Timestamp);
            }
            b'N' => out.push(Opt::Nop),
            b'S' => out.push(Opt::Sack),
            b'L' => out.push(Opt::End),
            _ => return None,
        }
    }
    Some(out)
}

/// The stack family an option order points to (TTL aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// Window scale last, after SACK/timestamps: Linux.
    Linux,
    /// Window scale right after MSS, SACK/timestamps later: Windows, BSD.
    ScaleFirst,
    /// ScaleFirst ending in end-of-list padding: macOS.
    ScaleFirstPadded,
    /// Nothing, or an MSS alone: small stacks.
    Minimal,
    Other,
}

fn order(opts: &[Opt]) -> Order {
    let kinds: Vec<Opt> = opts.iter().copied().filter(|o| *o != Opt::Nop).collect();
    let pos = |k: Opt| kinds.iter().position(|o| *o == k);
    match kinds.as_slice() {
        [] | [Opt::Mss] => return Order::Minimal,
        [Opt::Mss, ..] => {}
        _ => return Order::Other,
    }
    let (scale, sack, ts) = (pos(Opt::Scale), pos(Opt::Sack), pos(Opt::Timestamp));
    let Some(scale) = scale else {
        return Order::Other;
    };
    let after_scale = |p: Option<usize>| p.is_none_or(|p| p > scale);
    let before_scale = |p: Option<usize>| p.is_none_or(|p| p < scale);
    if scale == kinds.len() - 1 && (sack.is_some() || ts.is_some()) && before_scale(sack) {
        Order::Linux
    } else if scale == 1 && after_scale(sack) && after_scale(ts) {
        if kinds.ends_with(&[Opt::End, Opt::End]) {
            Order::ScaleFirstPadded
        } else {
            Order::ScaleFirst
        }
    } else {
        Order::Other
    }
}

/// The initial TTL: the first `TG` (Nmap's guess) or `T` of the response tests, rounded up
/// to the usual starting values.
fn initial_ttl(fp: &Fingerprint) -> Option<u32> {
    const TESTS: [&str; 10] = ["T1", "T2", "T3", "T4", "T5", "T6", "T7", "ECN", "IE", "U1"];
    let raw = TESTS.iter().find_map(|t| {
        let v = fp.get(t, "TG").or_else(|| fp.get(t, "T"))?;
        u32::from_str_radix(v, 16).ok()
    })?;
    [32, 64, 128, 255].into_iter().find(|&t| raw <= t)
}

/// The first option string the host sent (`O1`..`O6`, then ECN's `O`).
fn first_options(fp: &Fingerprint) -> Option<&str> {
    ["O1", "O2", "O3", "O4", "O5", "O6"]
        .iter()
        .find_map(|a| fp.get("OPS", a))
        .or_else(|| fp.get("ECN", "O"))
}

/// Our guess, or None when the signs are missing or disagree.
pub fn guess(subject: &Fingerprint) -> Option<Coarse> {
    let ttl = initial_ttl(subject)?;
    let opts_text = first_options(subject);
    let ord = match opts_text {
        Some(text) => Some(order(&options(text)?)),
        None => None,
    };
    let family = match (ttl, ord) {
        (128, Some(Order::ScaleFirst) | None) => "Windows",
        (64, Some(Order::Linux)) => "Linux",
        (64, Some(Order::ScaleFirst | Order::ScaleFirstPadded)) => "BSD/macOS",
        (64 | 255, Some(Order::Minimal)) => "embedded",
        _ => return None,
    };
    let mut reason = format!("initial TTL {ttl}");
    match opts_text {
        Some("") => reason.push_str(", no TCP options"),
        Some(text) => reason.push_str(&format!(", TCP options {text}")),
        None => {}
    }
    if let Some(w) = subject.get("WIN", "W1") {
        reason.push_str(&format!(", window {w}"));
    }
    Some(Coarse { family, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::parse;

    fn family(text: &str) -> Option<&'static str> {
        guess(&parse(text).unwrap()).map(|c| c.family)
    }

    #[test]
    fn linux_from_nmaps_own_prints() {
        // Nmap's fingerprint of this machine (loopback) and of a lab Linux host.
        let xml = include_str!("../testdata/loopback-nmap.xml");
        let at = xml.find("fingerprint=\"").unwrap() + 13;
        let end = xml[at..].find('"').unwrap();
        let fp = parse(&xml[at..at + end].replace("&#xa;", "\n")).unwrap();
        let c = guess(&fp).unwrap();
        assert_eq!(c.family, "Linux");
        assert_eq!(
            c.reason,
            "initial TTL 64, TCP options MFFD7ST11NWA, window FFCB"
        );
        assert_eq!(
            family("OPS(O1=M5B4NNSNW7)T1(R=Y%DF=Y%TG=40%A=S+)"),
            Some("Linux")
        );
    }

    #[test]
    fn other_families() {
        assert_eq!(
            family("OPS(O1=M5B4NW8NNS)WIN(W1=FFFF)T1(R=Y%DF=Y%T=80)"),
            Some("Windows")
        );
        assert_eq!(family("T1(R=Y%DF=Y%TG=80)IE(R=Y%T=7E)"), Some("Windows"));
        assert_eq!(
            family("OPS(O1=M5B4NW6NNT11SLL)T1(R=Y%DF=Y%T=40)"),
            Some("BSD/macOS")
        );
        assert_eq!(
            family("OPS(O1=M5B4NW6ST11)T1(R=Y%DF=Y%T=3E)"),
            Some("BSD/macOS")
        );
        assert_eq!(family("OPS(O1=M218)T1(R=Y%DF=N%T=FF)"), Some("embedded"));
        assert_eq!(family("OPS(O1=)T1(R=Y%DF=N%TG=40)"), Some("embedded"));
    }

    #[test]
    fn unsure_is_none() {
        // No TTL at all.
        assert_eq!(family("OPS(O1=M5B4ST11NW7)"), None);
        // Linux's option order with Windows's TTL: the signs disagree.
        assert_eq!(family("OPS(O1=M5B4ST11NW7)T1(R=Y%T=80)"), None);
        // TTL 64 alone: Linux, a BSD or an appliance.
        assert_eq!(family("T1(R=Y%T=40)"), None);
        // A full option set at TTL 255 (Solaris, network gear...).
        assert_eq!(family("OPS(O1=M5B4NW0NNT11SLL)T1(R=Y%T=FF)"), None);
        // Unreadable option text.
        assert_eq!(family("OPS(O1=M5B4Q)T1(R=Y%T=40)"), None);
    }
}
