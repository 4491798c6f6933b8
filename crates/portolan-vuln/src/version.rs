//! Version order: [`compare`] for the upstream version strings services announce and NVD
//! ranges use (`9.2p1`, `1.22.1`, `1.0rc1`), [`debian_compare`] for Debian package versions
//! (dpkg's algorithm), and [`upstream`], which cuts a banner's version down to the upstream
//! part (`5.7.44-log` → `5.7.44`).

use std::cmp::Ordering;

/// A piece of an upstream version: a number, or a word (lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    Num(u64),
    /// A word that marks a release before the one it is attached to (`rc`, `beta`, `alpha`).
    Pre(String),
    /// Any other word (`p` in OpenSSH's `9.2p1`, `a` in OpenSSL's `1.0.2a`): after it.
    Post(String),
}

const PRE_WORDS: &[&str] = &[
    "alpha", "beta", "rc", "pre", "preview", "dev", "snapshot", "cr", "m",
];

fn tokens(v: &str) -> Vec<Token> {
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes.get(i).copied().unwrap_or(b'.');
        if c.is_ascii_digit() {
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            // Leading zeros and huge numbers: compare by value, saturating.
            let n = v
                .get(start..i)
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap_or(u64::MAX);
            out.push(Token::Num(n));
        } else if c.is_ascii_alphabetic() {
            while bytes.get(i).is_some_and(u8::is_ascii_alphabetic) {
                i += 1;
            }
            let word = v.get(start..i).unwrap_or("").to_ascii_lowercase();
            // `a`/`b` followed by a number are alpha/beta (1.0a1); alone they are a letter
            // release (1.0.2a).
            let followed_by_digit = bytes.get(i).is_some_and(u8::is_ascii_digit);
            let pre = PRE_WORDS.contains(&word.as_str())
                || ((word == "a" || word == "b") && followed_by_digit);
            out.push(if pre {
                Token::Pre(word)
            } else {
                Token::Post(word)
            });
        } else {
            i += 1;
        }
    }
    out
}

/// Rank of a token that has no counterpart on the other side: a pre-release word makes the
/// version older than the end, a number other than 0 or another word newer.
fn alone(t: &Token) -> Ordering {
    match t {
        Token::Pre(_) => Ordering::Less,
        Token::Num(0) => Ordering::Equal,
        Token::Num(_) | Token::Post(_) => Ordering::Greater,
    }
}

fn cmp_tokens(ta: &[Token], tb: &[Token]) -> Ordering {
    let mut ia = ta.iter();
    let mut ib = tb.iter();
    loop {
        let o = match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (Some(x), None) => alone(x),
            (None, Some(y)) => alone(y).reverse(),
            (Some(x), Some(y)) => match (x, y) {
                (Token::Num(m), Token::Num(n)) => m.cmp(n),
                (Token::Pre(m), Token::Pre(n)) | (Token::Post(m), Token::Post(n)) => m.cmp(n),
                (Token::Pre(_), _) => Ordering::Less,
                (_, Token::Pre(_)) => Ordering::Greater,
                // A further number is a later release than a letter one (1.0.1 > 1.0a).
                (Token::Num(_), Token::Post(_)) => Ordering::Greater,
                (Token::Post(_), Token::Num(_)) => Ordering::Less,
            },
        };
        if o != Ordering::Equal {
            return o;
        }
    }
}

/// An upstream version, read once to be compared many times (see [`compare`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<Token>);

impl Version {
    pub fn parse(v: &str) -> Version {
        Version(tokens(v))
    }

    /// A text equal for two versions exactly when [`compare`] finds them equal (trailing
    /// zeros dropped, words lower-cased): for looking exact versions up.
    pub fn key(&self) -> String {
        let mut end = self.0.len();
        while end > 0 && self.0.get(end - 1) == Some(&Token::Num(0)) {
            end -= 1;
        }
        // Written in place: a product's exact versions are keyed when it is read.
        use std::fmt::Write;
        let mut out = String::with_capacity(4 * end);
        for t in self.0.get(..end).unwrap_or_default() {
            let _ = match t {
                Token::Num(n) => write!(out, "{n}."),
                Token::Pre(w) => write!(out, "-{w}."),
                Token::Post(w) => write!(out, "+{w}."),
            };
        }
        out
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_tokens(&self.0, &other.0)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A cpeMatch's bounds (start including, start excluding, end including, end excluding),
/// read once to be checked against many versions.
#[derive(Debug, Clone, Default)]
pub struct Bounds([Option<Version>; 4]);

impl Bounds {
    pub fn parse(texts: [Option<&str>; 4]) -> Bounds {
        Bounds(texts.map(|t| t.map(Version::parse)))
    }

    /// Whether no bound is given.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    /// Whether `v` is within every bound given.
    pub fn contain(&self, v: &Version) -> bool {
        let [si, se, ei, ee] = &self.0;
        si.as_ref().is_none_or(|b| v >= b)
            && se.as_ref().is_none_or(|b| v > b)
            && ei.as_ref().is_none_or(|b| v <= b)
            && ee.as_ref().is_none_or(|b| v < b)
    }
}

/// Orders two upstream versions: numbers by value, `rc`/`beta`/`alpha` before the release,
/// other words (`p1`) after it, separators ignored, trailing `.0`s insignificant.
pub fn compare(a: &str, b: &str) -> Ordering {
    cmp_tokens(&tokens(a), &tokens(b))
}

/// The upstream part of a version as a service announces it: the first word, without
/// distribution or build suffixes. "9.2p1 Debian 2+deb12u3" → "9.2p1", "5.7.44-log" →
/// "5.7.44", "10.11.6-MariaDB-0+deb12u1" → "10.11.6", "1.0-rc1" stays.
pub fn upstream(version: &str) -> &str {
    let first = version.split_whitespace().next().unwrap_or("");
    let mut end = first.len();
    for (i, _) in first.match_indices(['-', '+', '~']) {
        let rest = first.get(i + 1..).unwrap_or("");
        let word: String = rest
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_ascii_lowercase();
        let pre = PRE_WORDS.contains(&word.as_str()) || word == "a" || word == "b";
        if !pre {
            end = i;
            break;
        }
    }
    first.get(..end).unwrap_or(first)
}

/// A Debian package version split as dpkg does: epoch, upstream, revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianVersion<'a> {
    pub epoch: u64,
    pub upstream: &'a str,
    pub revision: &'a str,
}

impl<'a> DebianVersion<'a> {
    /// Splits `[epoch:]upstream[-revision]`; the revision is after the last hyphen.
    pub fn parse(v: &'a str) -> DebianVersion<'a> {
        let v = v.trim();
        let (epoch, rest) = match v.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (e.parse().unwrap_or(u64::MAX), rest)
            }
            _ => (0, v),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        DebianVersion {
            epoch,
            upstream,
            revision,
        }
    }
}

/// dpkg's character order: `~` before everything (even the end), then the end, then
/// letters, then the other characters.
fn deb_order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's verrevcmp: alternating non-digit and digit runs.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0;
        while a.get(i).is_some_and(|c| !c.is_ascii_digit())
            || b.get(j).is_some_and(|c| !c.is_ascii_digit())
        {
            let ac = deb_order(a.get(i).copied().filter(|c| !c.is_ascii_digit()));
            let bc = deb_order(b.get(j).copied().filter(|c| !c.is_ascii_digit()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            if a.get(i).is_some_and(|c| !c.is_ascii_digit()) {
                i += 1;
            }
            if b.get(j).is_some_and(|c| !c.is_ascii_digit()) {
                j += 1;
            }
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        while a.get(i).is_some_and(u8::is_ascii_digit) && b.get(j).is_some_and(u8::is_ascii_digit) {
            if first_diff == 0 {
                first_diff = i32::from(a.get(i).copied().unwrap_or(0))
                    - i32::from(b.get(j).copied().unwrap_or(0));
            }
            i += 1;
            j += 1;
        }
        if a.get(i).is_some_and(u8::is_ascii_digit) {
            return Ordering::Greater;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

/// Orders two Debian package versions as `dpkg --compare-versions` does.
pub fn debian_compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (DebianVersion::parse(a), DebianVersion::parse(b));
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream, b.upstream))
        .then_with(|| verrevcmp(a.revision, b.revision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[track_caller]
    fn order(a: &str, b: &str, want: Ordering) {
        assert_eq!(compare(a, b), want, "{a} vs {b}");
        assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
    }

    #[test]
    fn openssh_portable_versions() {
        order("9.2p1", "9.3p2", Less);
        order("9.3p1", "9.3p2", Less);
        order("9.3p2", "9.3p2", Equal);
        order("8.5p1", "9.8p1", Less);
        order("9.2", "9.2p1", Less);
        order("7.4", "7.4p1", Less);
    }

    #[test]
    fn numbers_compare_by_value_not_text() {
        order("7.4", "7.10", Less);
        order("1.22.1", "1.20.0", Greater);
        order("2.4.41", "2.4.9", Greater);
        order("1.0", "1.0.0", Equal);
        order("1.0", "1.0.1", Less);
        order("2.78", "2.90", Less);
        order("10.11.6", "10.5.22", Greater);
    }

    #[test]
    fn prereleases_come_before_the_release() {
        order("1.0rc1", "1.0", Less);
        order("1.0-rc1", "1.0", Less);
        order("1.0beta2", "1.0rc1", Less);
        order("1.0a1", "1.0", Less);
        order("1.0rc1", "1.0.1", Less);
    }

    #[test]
    fn keys_are_equal_exactly_when_versions_are() {
        let vs = [
            "1.0", "1.0.0", "1", "1.0a", "1.0a1", "1.0rc1", "1.0-RC1", "9.3p1", "9.3P1", "9.3.p1",
            "7.10", "7.1", "1.0.2a", "0", "",
        ];
        for a in vs {
            for b in vs {
                let (ka, kb) = (Version::parse(a).key(), Version::parse(b).key());
                assert_eq!(ka == kb, compare(a, b) == Equal, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn letter_releases_come_after() {
        order("1.0.2a", "1.0.2", Greater);
        order("1.0.2a", "1.0.2b", Less);
        order("1.0.2z", "1.0.3", Less);
    }

    #[test]
    fn upstream_cuts_distribution_suffixes() {
        assert_eq!(upstream("9.2p1 Debian 2+deb12u3"), "9.2p1");
        assert_eq!(upstream("5.7.44-log"), "5.7.44");
        assert_eq!(upstream("10.11.6-MariaDB-0+deb12u1"), "10.11.6");
        assert_eq!(upstream("1.0-rc1"), "1.0-rc1");
        assert_eq!(upstream("2.4.41"), "2.4.41");
        assert_eq!(upstream("1.22.1"), "1.22.1");
        assert_eq!(upstream(""), "");
        assert_eq!(compare(upstream("5.7.44-log"), "5.7.45"), Less);
    }

    #[track_caller]
    fn deb(a: &str, b: &str, want: Ordering) {
        assert_eq!(debian_compare(a, b), want, "{a} vs {b}");
        assert_eq!(debian_compare(b, a), want.reverse(), "{b} vs {a}");
    }

    #[test]
    fn debian_versions_follow_dpkg() {
        deb("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u2", Greater);
        deb("1:9.2p1-2+deb12u10", "1:9.2p1-2+deb12u3", Greater);
        deb("1:9.2p1-2", "1:9.2p1-2+deb12u3", Less);
        deb("9.9", "1:1.0", Less);
        deb("1.0~rc1-1", "1.0-1", Less);
        deb("1.0~~", "1.0~", Less);
        deb("1.0", "1.0-0", Equal);
        deb("5:7.0.15-1~deb12u1", "5:7.0.15-1", Less);
        deb("5:7.0.15-1~deb12u10", "5:7.0.15-1~deb12u9", Greater);
        deb("1.22.1-9+deb12u12", "1.22.1-9", Greater);
        deb("2.0a", "2.0+", Less);
        deb("1.2.3", "1.2.3", Equal);
    }

    #[test]
    fn debian_version_parts() {
        let v = DebianVersion::parse("1:9.2p1-2+deb12u3");
        assert_eq!((v.epoch, v.upstream, v.revision), (1, "9.2p1", "2+deb12u3"));
        let v = DebianVersion::parse("10.11.6-0+deb12u1");
        assert_eq!(
            (v.epoch, v.upstream, v.revision),
            (0, "10.11.6", "0+deb12u1")
        );
        let v = DebianVersion::parse("3.0.3");
        assert_eq!((v.epoch, v.upstream, v.revision), (0, "3.0.3", ""));
    }
}
