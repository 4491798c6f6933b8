//! The `nmap-service-probes` parser.

use std::time::Duration;

use pcre2::bytes::{Regex, RegexBuilder};

use crate::ports::{parse_exclude, parse_port_list};
use crate::template::{Template, VersionInfo};
use crate::{Match, Probe, ProbeDb, Proto, MAX_FALLBACKS};

/// Nmap's default `totalwaitms` (`DEFAULT_SERVICEWAITMS`).
pub const DEFAULT_TOTAL_WAIT: Duration = Duration::from_millis(5000);
/// Nmap's default `tcpwrappedms` (`DEFAULT_TCPWRAPPEDMS`).
pub const DEFAULT_TCPWRAPPED_WAIT: Duration = Duration::from_millis(2000);
/// Rarity of a probe without a `rarity` line (Nmap's default).
pub const DEFAULT_RARITY: u8 = 5;

/// PCRE2 match limit put on every pattern (`(*LIMIT_MATCH=…)`): the number of internal
/// backtracking steps one match attempt may take (PCRE2's own default is 10,000,000). Nmap
/// also limits its matching; these values are ours, chosen so that every pattern of Nmap's
/// file still matches its intended banners. A pattern that hits the limit counts as not
/// matching.
pub const MATCH_LIMIT: u32 = 100_000;
/// PCRE2 depth limit (`(*LIMIT_DEPTH=…)`). Only the interpreter honours it;
/// JIT-compiled patterns are bounded by the match limit and by PCRE2's default 32 KiB JIT
/// stack (a pattern that overflows it counts as not matching).
pub const DEPTH_LIMIT: u32 = 10_000;

/// A line of the file that could not be loaded. The line is skipped; the rest of the file
/// loads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ParseErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The first word is not a directive of the format.
    #[error("unknown directive `{0}`")]
    UnknownDirective(String),
    /// A probe-level directive (`match`, `ports`, …) before the first `Probe`.
    #[error("`{0}` before any Probe directive")]
    OutsideProbe(&'static str),
    /// A directive that may appear once (per file or per probe) appears again.
    #[error("duplicate `{0}` directive")]
    Duplicate(&'static str),
    /// The directive's syntax is wrong.
    #[error("malformed `{directive}`: {reason}")]
    Malformed {
        directive: &'static str,
        reason: String,
    },
    /// PCRE2 refused the pattern of a `match` / `softmatch` line.
    #[error("bad regex: {0}")]
    Regex(String),
    /// A version template (`p/…/` etc.) is malformed.
    #[error("bad version template: {0}")]
    Template(String),
    /// A `fallback` names no probe of the same protocol.
    #[error("unknown fallback probe `{0}`")]
    UnknownFallback(String),
}

fn malformed(directive: &'static str, reason: impl Into<String>) -> ParseErrorKind {
    ParseErrorKind::Malformed {
        directive,
        reason: reason.into(),
    }
}

/// Decodes a probe string's C-style escapes: `\0 \\ \a \b \f \n \r \t \v \xHH`. Any other
/// escaped character stands for itself (`\|` is `|`).
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let Some(&c) = b.get(i + 1) else {
            return Err("trailing backslash".into());
        };
        i += 2;
        let byte = match c {
            b'0' => 0,
            b'\\' => b'\\',
            b'a' => 0x07,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'v' => 0x0b,
            b'x' => {
                let hex = b.get(i..i + 2).ok_or("\\x needs two hex digits")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "\\x needs two hex digits")?;
                let v = u8::from_str_radix(hex, 16).map_err(|_| "\\x needs two hex digits")?;
                i += 2;
                v
            }
            other => other,
        };
        out.push(byte);
    }
    Ok(out)
}

/// Splits `X<d>body<d>rest` where `X` is `lead`: returns the delimiter, the body and what
/// follows the closing delimiter. The body ends at the next delimiter (no escaping, as in
/// Nmap).
fn delimited<'a>(s: &'a str, lead: &str, what: &str) -> Result<(char, &'a str, &'a str), String> {
    let after = s
        .strip_prefix(lead)
        .ok_or_else(|| format!("{what} must start with `{lead}<delimiter>`"))?;
    let mut chars = after.chars();
    let delim = chars
        .next()
        .ok_or_else(|| format!("{what}: missing delimiter"))?;
    let body_start = &after[delim.len_utf8()..];
    let end = body_start
        .find(delim)
        .ok_or_else(|| format!("{what}: no closing `{delim}`"))?;
    Ok((
        delim,
        &body_start[..end],
        &body_start[end + delim.len_utf8()..],
    ))
}

/// Compiles a match pattern the way Nmap does: raw bytes (no UTF mode), `i` → caseless,
/// `s` → dotall, with the match and depth limits prepended, JIT when available.
pub fn compile_regex(pattern: &str, caseless: bool, dotall: bool) -> Result<Regex, String> {
    if pattern.contains("(*LIMIT_") {
        // Would let the file override the limits that bound hostile responses.
        return Err("(*LIMIT_…) settings are not allowed in patterns".into());
    }
    let full = format!("(*LIMIT_MATCH={MATCH_LIMIT})(*LIMIT_DEPTH={DEPTH_LIMIT}){pattern}");
    RegexBuilder::new()
        .caseless(caseless)
        .dotall(dotall)
        .jit_if_available(true)
        .build(&full)
        .map_err(|e| e.to_string())
}

/// Parses a `match` / `softmatch` line's arguments (after the directive word).
fn parse_match(rest: &str, soft: bool, line: usize) -> Result<Match, ParseErrorKind> {
    let directive = if soft { "softmatch" } else { "match" };
    let rest = rest.trim_start();
    let (service, rest) = rest
        .split_once(|c: char| c.is_ascii_whitespace())
        .ok_or_else(|| malformed(directive, "expected `<service> m/<regex>/`"))?;
    let (_, pattern, rest) =
        delimited(rest.trim_start(), "m", "pattern").map_err(|r| malformed(directive, r))?;
    // Flags run up to the first whitespace.
    let flags_end = rest
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let (flags, mut rest) = rest.split_at(flags_end);
    let (mut caseless, mut dotall) = (false, false);
    for f in flags.chars() {
        match f {
            'i' => caseless = true,
            's' => dotall = true,
            other => {
                return Err(malformed(
                    directive,
                    format!("unknown regex flag `{other}`"),
                ))
            }
        }
    }
    let mut info = VersionInfo::default();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (is_cpe, field, body, after) = if rest.starts_with("cpe:") {
            let (_, body, after) =
                delimited(rest, "cpe:", "cpe field").map_err(|r| malformed(directive, r))?;
            // `cpe:/…/a`: the optional `a` flag after the closing delimiter.
            let after = after.strip_prefix('a').unwrap_or(after);
            (true, 'c', body, after)
        } else {
            let field = rest.chars().next().unwrap_or(' ');
            if !"pvihod".contains(field) {
                return Err(malformed(
                    directive,
                    format!("unknown version field starting `{}`", truncate(rest, 16)),
                ));
            }
            let (_, body, after) = delimited(rest, &rest[..field.len_utf8()], "version field")
                .map_err(|r| malformed(directive, r))?;
            (false, field, body, after)
        };
        let t = Template::parse(body).map_err(ParseErrorKind::Template)?;
        if is_cpe {
            info.cpes.push(t);
        } else {
            let slot = match field {
                'p' => &mut info.product,
                'v' => &mut info.version,
                'i' => &mut info.info,
                'h' => &mut info.hostname,
                'o' => &mut info.ostype,
                _ => &mut info.devicetype,
            };
            if slot.is_some() {
                return Err(malformed(
                    directive,
                    format!("version field `{field}` given twice"),
                ));
            }
            *slot = Some(t);
        }
        rest = after;
    }
    let regex = compile_regex(pattern, caseless, dotall).map_err(ParseErrorKind::Regex)?;
    // captures_len counts group 0.
    let groups = regex.captures_len().saturating_sub(1);
    if info.max_group() > groups {
        return Err(ParseErrorKind::Template(format!(
            "uses capture ${} but the pattern has {groups} group(s)",
            info.max_group()
        )));
    }
    Ok(Match {
        service: service.to_string(),
        soft,
        pattern: pattern.to_string(),
        caseless,
        dotall,
        regex,
        version: info,
        line,
    })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_probe(rest: &str, line: usize) -> Result<Probe, ParseErrorKind> {
    let mut words = rest
        .trim_start()
        .splitn(3, |c: char| c.is_ascii_whitespace());
    let proto = match words.next() {
        Some("TCP") => Proto::Tcp,
        Some("UDP") => Proto::Udp,
        _ => return Err(malformed("Probe", "protocol must be TCP or UDP")),
    };
    let name = words
        .next()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| malformed("Probe", "missing probe name"))?;
    let probe_str = words
        .next()
        .ok_or_else(|| malformed("Probe", "missing probe string q|…|"))?;
    let (_, body, after) = delimited(probe_str.trim_start(), "q", "probe string")
        .map_err(|r| malformed("Probe", r))?;
    let payload = unescape(body).map_err(|r| malformed("Probe", r))?;
    let no_payload = match after.trim() {
        "" => false,
        "no-payload" => true,
        other => {
            return Err(malformed(
                "Probe",
                format!(
                    "unexpected `{}` after the probe string",
                    truncate(other, 32)
                ),
            ))
        }
    };
    Ok(Probe {
        proto,
        name: name.to_string(),
        payload,
        no_payload,
        ports: Default::default(),
        sslports: Default::default(),
        total_wait: DEFAULT_TOTAL_WAIT,
        tcpwrapped_wait: DEFAULT_TCPWRAPPED_WAIT,
        rarity: DEFAULT_RARITY,
        fallback: Vec::new(),
        matches: Vec::new(),
        line,
    })
}

fn parse_ms(directive: &'static str, rest: &str) -> Result<Duration, ParseErrorKind> {
    let ms: u64 = rest
        .trim()
        .parse()
        .map_err(|_| malformed(directive, "expected milliseconds"))?;
    if !(1..=300_000).contains(&ms) {
        return Err(malformed(directive, "must be 1 to 300000 ms"));
    }
    Ok(Duration::from_millis(ms))
}

/// What the parser knows about the probe being read.
#[derive(Default)]
struct ProbeState {
    seen_ports: bool,
    seen_sslports: bool,
    seen_totalwait: bool,
    seen_tcpwrapped: bool,
    seen_rarity: bool,
    /// (line, names) of the `fallback` line, resolved once every probe is known.
    fallback: Option<(usize, Vec<String>)>,
}

/// Parses the text of an `nmap-service-probes` file. Never fails as a whole: each line that
/// cannot be loaded is reported (with its 1-based number) and skipped. Lines that belong to a
/// `Probe` line that failed are skipped without further errors.
pub fn parse(text: &str) -> (ProbeDb, Vec<ParseError>) {
    let mut db = ProbeDb::default();
    let mut errors = Vec::new();
    let mut states: Vec<ProbeState> = Vec::new();
    let mut seen_exclude = false;
    // None: no probe yet. Some(None): the last Probe line was bad.
    let mut current: Option<Option<usize>> = None;

    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (word, rest) = l
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((l, ""));
        let mut err = |kind| errors.push(ParseError { line, kind });

        let directive: &'static str = match word {
            "Exclude" => {
                if seen_exclude {
                    err(ParseErrorKind::Duplicate("Exclude"));
                } else {
                    match parse_exclude(rest) {
                        Ok(ex) => {
                            db.excludes = ex;
                            seen_exclude = true;
                        }
                        Err(r) => err(malformed("Exclude", r)),
                    }
                }
                continue;
            }
            "Probe" => {
                match parse_probe(rest, line) {
                    Ok(p) => {
                        db.probes.push(p);
                        states.push(ProbeState::default());
                        current = Some(Some(db.probes.len() - 1));
                    }
                    Err(k) => {
                        err(k);
                        current = Some(None);
                    }
                }
                continue;
            }
            "match" => "match",
            "softmatch" => "softmatch",
            "ports" => "ports",
            "sslports" => "sslports",
            "totalwaitms" => "totalwaitms",
            "tcpwrappedms" => "tcpwrappedms",
            "rarity" => "rarity",
            "fallback" => "fallback",
            other => {
                err(ParseErrorKind::UnknownDirective(
                    truncate(other, 40).to_string(),
                ));
                continue;
            }
        };
        let idx = match current {
            None => {
                err(ParseErrorKind::OutsideProbe(directive));
                continue;
            }
            Some(None) => continue,
            Some(Some(idx)) => idx,
        };
        let probe = &mut db.probes[idx];
        let st = &mut states[idx];
        let once = |seen: &mut bool| {
            if *seen {
                Err(ParseErrorKind::Duplicate(directive))
            } else {
                *seen = true;
                Ok(())
            }
        };
        let result: Result<(), ParseErrorKind> = match directive {
            "match" | "softmatch" => {
                parse_match(rest, directive == "softmatch", line).map(|m| probe.matches.push(m))
            }
            "ports" => parse_port_list(rest)
                .map_err(|r| malformed("ports", r))
                .and_then(|p| {
                    once(&mut st.seen_ports)?;
                    probe.ports = p;
                    Ok(())
                }),
            "sslports" => parse_port_list(rest)
                .map_err(|r| malformed("sslports", r))
                .and_then(|p| {
                    once(&mut st.seen_sslports)?;
                    probe.sslports = p;
                    Ok(())
                }),
            "totalwaitms" => parse_ms("totalwaitms", rest).and_then(|d| {
                once(&mut st.seen_totalwait)?;
                probe.total_wait = d;
                Ok(())
            }),
            "tcpwrappedms" => parse_ms("tcpwrappedms", rest).and_then(|d| {
                once(&mut st.seen_tcpwrapped)?;
                probe.tcpwrapped_wait = d;
                Ok(())
            }),
            "rarity" => match rest.trim().parse::<u8>() {
                Ok(r) if (1..=9).contains(&r) => once(&mut st.seen_rarity).map(|()| {
                    probe.rarity = r;
                }),
                _ => Err(malformed("rarity", "must be a number 1-9")),
            },
            _ => {
                // fallback
                let names: Vec<String> = rest
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                    .collect();
                if names.is_empty() {
                    Err(malformed("fallback", "no probe names"))
                } else if names.len() > MAX_FALLBACKS {
                    Err(malformed(
                        "fallback",
                        format!("more than {MAX_FALLBACKS} probes"),
                    ))
                } else if st.fallback.is_some() {
                    Err(ParseErrorKind::Duplicate("fallback"))
                } else {
                    st.fallback = Some((line, names));
                    Ok(())
                }
            }
        };
        if let Err(k) = result {
            err(k);
        }
    }

    // Resolve fallback names to probe indices: a probe of the same protocol first, else one
    // of the other (Nmap's own file has TCP DNS probes fall back to the UDP ones).
    for (idx, st) in states.iter().enumerate() {
        let Some((line, names)) = &st.fallback else {
            continue;
        };
        let proto = db.probes[idx].proto;
        let other = match proto {
            Proto::Tcp => Proto::Udp,
            Proto::Udp => Proto::Tcp,
        };
        let mut resolved = Vec::new();
        for name in names {
            match db
                .probe_by_name(proto, name)
                .or_else(|| db.probe_by_name(other, name))
            {
                Some(f) if f == idx => {}
                Some(f) => {
                    if !resolved.contains(&f) {
                        resolved.push(f);
                    }
                }
                None => errors.push(ParseError {
                    line: *line,
                    kind: ParseErrorKind::UnknownFallback(truncate(name, 40).to_string()),
                }),
            }
        }
        db.probes[idx].fallback = resolved;
    }
    errors.sort_by_key(|e| e.line);
    (db, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            unescape(r"a\0\\\a\b\f\n\r\t\v\x41\xff\|").unwrap(),
            b"a\0\\\x07\x08\x0c\n\r\t\x0bA\xff|"
        );
        assert!(unescape(r"\x4").is_err());
        assert!(unescape(r"\xZZ").is_err());
        assert!(unescape("abc\\").is_err());
    }

    #[test]
    fn delimiters() {
        assert_eq!(delimited("q|ab|c", "q", "x").unwrap(), ('|', "ab", "c"));
        assert_eq!(delimited("m=a/b=i", "m", "x").unwrap(), ('=', "a/b", "i"));
        assert_eq!(delimited("m§é§", "m", "x").unwrap(), ('§', "é", ""));
        assert!(delimited("m|abc", "m", "x").is_err());
        assert!(delimited("m", "m", "x").is_err());
        assert!(delimited("x|a|", "m", "x").is_err());
    }

    #[test]
    fn limits_cannot_be_overridden() {
        assert!(compile_regex("(*LIMIT_MATCH=99999999)a", false, false).is_err());
        assert!(compile_regex("^a(?=b)", false, false).is_ok());
    }
}
