//! The `nmap-os-db` reader: MatchPoints and the reference fingerprints, and the expression
//! language of their values.
//!
//! We follow Nmap 7.93, the version installed and the one Portolan claims to be (its
//! matcher differs from later Nmap sources: no implied `R=Y`, and the expression quirks
//! listed at [`Expr::matches`]); its results are checked against 7.93's XML in matching.rs.
//!
//! The reader follows Nmap's `parse_fingerprint_file`: a malformed line is reported with its
//! line number and skipped, the rest loads. Where Nmap would stop with a fatal error (a bad
//! Class, CPE or MatchPoints line) we report the line and go on. A test line without its
//! parentheses ends its entry's block as in Nmap: the entry is KEPT with the tests read
//! before that line, and the remaining lines of the block are read as top-level lines (each
//! reported, as Nmap does). A test line Nmap would store but we check against its test
//! schema (unknown test or attribute, an attribute twice, `=` missing) is reported and
//! skipped alone, the entry keeping its other tests.
// OWNER: helper "os-db". The types below are the agreed interface; keep their names and
// fields (add fields or functions freely).

use std::path::Path;

/// The tests of a fingerprint and their attributes, in Nmap's order (its `test_attrs`).
/// Printing, matching and the MatchPoints section all go by this order.
pub const SCHEMA: &[(&str, &[&str])] = &[
    ("SEQ", &["SP", "GCD", "ISR", "TI", "CI", "II", "SS", "TS"]),
    ("OPS", &["O1", "O2", "O3", "O4", "O5", "O6"]),
    ("WIN", &["W1", "W2", "W3", "W4", "W5", "W6"]),
    ("ECN", &["R", "DF", "T", "TG", "W", "O", "CC", "Q"]),
    ("T1", &["R", "DF", "T", "TG", "S", "A", "F", "RD", "Q"]),
    ("T2", T_ATTRS),
    ("T3", T_ATTRS),
    ("T4", T_ATTRS),
    ("T5", T_ATTRS),
    ("T6", T_ATTRS),
    ("T7", T_ATTRS),
    (
        "U1",
        &[
            "R", "DF", "T", "TG", "IPL", "UN", "RIPL", "RID", "RIPCK", "RUCK", "RUD",
        ],
    ),
    ("IE", &["R", "DFI", "T", "TG", "CD"]),
];

const T_ATTRS: &[&str] = &["R", "DF", "T", "TG", "W", "S", "A", "F", "O", "RD", "Q"];

/// Index of a test in [`SCHEMA`].
pub fn test_index(name: &str) -> Option<usize> {
    SCHEMA.iter().position(|(t, _)| *t == name)
}

/// Index of an attribute within test `test` of [`SCHEMA`].
pub fn attr_index(test: usize, attr: &str) -> Option<usize> {
    SCHEMA.get(test)?.1.iter().position(|a| *a == attr)
}

/// The whole database.
#[derive(Debug, Clone, Default)]
pub struct OsDb {
    /// The `MatchPoints` section: points per test attribute.
    pub match_points: MatchPoints,
    pub prints: Vec<RefPrint>,
}

/// Points per attribute, per test: `SEQ(SP=25%GCD=75%...)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchPoints {
    pub tests: Vec<(String, Vec<(String, u32)>)>,
}

impl MatchPoints {
    /// The points of `test.attr`; 0 when the section does not name it (as Nmap's default).
    pub fn points(&self, test: &str, attr: &str) -> u32 {
        self.tests
            .iter()
            .find(|(t, _)| t == test)
            .and_then(|(_, attrs)| attrs.iter().find(|(a, _)| a == attr))
            .map_or(0, |(_, p)| *p)
    }
}

/// One `Fingerprint` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefPrint {
    /// The text after `Fingerprint `.
    pub name: String,
    /// 1-based line of the `Fingerprint` line (Nmap's `osmatch@line`).
    pub line: u32,
    pub classes: Vec<RefClass>,
    /// In [`SCHEMA`] order, attributes too, as written: Nmap 7.93 does not add the `R=Y`
    /// a line like `U1(DF=N%...)` implies (later versions do), so such an `R` is not scored.
    pub tests: Vec<RefTest>,
}

impl RefPrint {
    pub fn test(&self, name: &str) -> Option<&RefTest> {
        self.tests.iter().find(|t| t.name == name)
    }
}

/// One `Class vendor | family | gen | type` line and the `CPE` lines after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefClass {
    pub vendor: String,
    pub family: String,
    pub gen: Option<String>,
    /// Device type ("general purpose", "router", ...).
    pub kind: String,
    /// Without the `auto` flag: `cpe:/o:linux:linux_kernel:2.6`.
    pub cpes: Vec<String>,
}

/// One reference test line: each attribute's expression.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefTest {
    pub name: String,
    pub attrs: Vec<(String, Expr)>,
}

impl RefTest {
    pub fn get(&self, attr: &str) -> Option<&Expr> {
        self.attrs.iter().find(|(a, _)| a == attr).map(|(_, e)| e)
    }
}

/// An attribute's expression: alternatives separated by `|`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expr {
    pub alts: Vec<Alt>,
}

/// One alternative. Numbers are hex, as in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alt {
    /// A literal value (may be empty): compared as a string, or as a number when both are
    /// hex numbers.
    Str(String),
    /// `A-B`, inclusive.
    Range(u64, u64),
    /// `>A`.
    Gt(u64),
    /// `<A`.
    Lt(u64),
}

/// A line the reader could not take; the rest of the file still loads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nmap-os-db line {line}: {message}")]
pub struct DbError {
    pub line: u32,
    pub message: String,
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex_u64(s: &str) -> Option<u64> {
    if is_hex(s) {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// C's `strtol(s, &end, 16)`: optional blanks and sign, an optional `0x`, hex digits,
/// saturating at the `long` limits. Returns the value and how many bytes were read (0 when
/// there was no digit, as C then sets `end` to the start).
fn strtol16(s: &[u8]) -> (i64, usize) {
    let mut i = 0;
    while s
        .get(i)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
    {
        i += 1;
    }
    let negative = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    if s.get(i) == Some(&b'0')
        && matches!(s.get(i + 1), Some(b'x' | b'X'))
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
    {
        i += 2;
    }
    let digits_start = i;
    let mut value: i64 = 0;
    let mut overflow = false;
    while let Some(d) = s.get(i).and_then(|b| (*b as char).to_digit(16)) {
        match value
            .checked_mul(16)
            .and_then(|v| v.checked_add(i64::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        return (0, 0);
    }
    let value = match (overflow, negative) {
        (true, false) => i64::MAX,
        (true, true) => i64::MIN,
        (false, false) => value,
        (false, true) => -value,
    };
    (value, i)
}

/// A `long` stored in a C `unsigned int`, as Nmap 7.93 keeps its numbers.
fn c_uint(v: i64) -> u32 {
    v as u32
}

/// A bound read from the file as Nmap 7.93 holds it (`strtol` then `unsigned int`).
fn bound(n: u64) -> u32 {
    c_uint(i64::try_from(n).unwrap_or(i64::MAX))
}

impl Alt {
    fn parse(s: &str) -> Alt {
        if let Some(rest) = s.strip_prefix('>') {
            if let Some(n) = hex_u64(rest) {
                return Alt::Gt(n);
            }
        } else if let Some(rest) = s.strip_prefix('<') {
            if let Some(n) = hex_u64(rest) {
                return Alt::Lt(n);
            }
        } else if let Some((a, b)) = s.split_once('-') {
            if let (Some(a), Some(b)) = (hex_u64(a), hex_u64(b)) {
                return Alt::Range(a, b);
            }
        }
        Alt::Str(s.to_string())
    }

    fn has_dash(&self) -> bool {
        match self {
            Alt::Range(..) => true,
            Alt::Str(s) => s.contains('-'),
            Alt::Gt(_) | Alt::Lt(_) => false,
        }
    }
}

/// A literal alternative that reads as `<N`/`>N` or `A-B` under C's strtol rules (blanks,
/// signs, `0x`) without being plain hex: Nmap 7.93 still compares it as a number.
fn str_numeric_branch(s: &str, num: u32) -> Option<bool> {
    let b = s.as_bytes();
    match b.first() {
        Some(op @ (b'<' | b'>')) => {
            let rest = b.get(1..).unwrap_or(&[]);
            let (n, used) = strtol16(rest);
            // Nmap wants the number to fill the alternative; an empty one reads as 0.
            if used != rest.len() && !(used == 0 && rest.is_empty()) {
                return Some(false);
            }
            let n = c_uint(n);
            Some(if *op == b'<' { num < n } else { num > n })
        }
        _ => None,
    }
}
impl Expr {
    /// Parses a reference value: `|`-separated alternatives, each a literal (possibly empty),
    /// a hex range `A-B`, `>A` or `<A`.
    pub fn parse(s: &str) -> Result<Expr, String> {
        if let Some(c) = s
            .chars()
            .find(|c| matches!(c, '%' | '(' | ')' | '[' | ']' | '\n'))
        {
            return Err(format!("unexpected {c:?} in expression {s:?}"));
        }
        Ok(Expr {
            alts: s.split('|').map(Alt::parse).collect(),
        })
    }

    /// Whether an observed value satisfies the expression, with Nmap 7.93's `expr_match`
    /// (the version installed and the one we claim to be compatible with), quirks included:
    /// - a value that reads entirely as hex (the empty value too, as 0) is "numeric";
    /// - with a numeric value, `>N`/`<N` compare numbers; an alternative is compared as a
    ///   range when the first `-` of the REST of the expression is its own (so in `0|5-8`
    ///   the `0` never matches); a range never falls back to a string comparison;
    /// - otherwise strings: every alternative but the last matches when the value STARTS
    ///   with it (`40|80` matches `400`; an empty alternative before a `|` matches
    ///   anything), the last one must be equal.
    pub fn matches(&self, value: &str) -> bool {
        self.matches_observed(&Observed::new(value))
    }

    /// [`Expr::matches`] for a value read once ([`Observed`]), when one value meets many
    /// expressions.
    pub fn matches_observed(&self, value: &Observed<'_>) -> bool {
        let (numeric, num) = (value.numeric, value.num);
        // Alternatives up to the last one holding a '-' are ranges or nothing (numeric value).
        let last_dash = if numeric {
            self.alts.iter().rposition(Alt::has_dash)
        } else {
            None
        };
        let last = self.alts.len().saturating_sub(1);
        for (i, alt) in self.alts.iter().enumerate() {
            if numeric {
                match alt {
                    Alt::Gt(n) => {
                        if num > bound(*n) {
                            return true;
                        }
                        continue;
                    }
                    Alt::Lt(n) => {
                        if num < bound(*n) {
                            return true;
                        }
                        continue;
                    }
                    Alt::Str(s) => {
                        if let Some(hit) = str_numeric_branch(s, num) {
                            if hit {
                                return true;
                            }
                            continue;
                        }
                    }
                    Alt::Range(..) => {}
                }
                if last_dash.is_some_and(|d| i <= d) {
                    if alt.has_dash() && in_range(alt, num) {
                        return true;
                    }
                    continue;
                }
            }
            let text = value.text;
            let hit = match alt {
                Alt::Str(s) if i < last => text.starts_with(s.as_str()),
                Alt::Str(s) => text == s,
                // Only a value holding '<', '>' or '-' could equal such text.
                other => {
                    if text.contains(['<', '>', '-']) {
                        let alt_text = other.to_string();
                        if i < last {
                            text.starts_with(&alt_text)
                        } else {
                            text == alt_text
                        }
                    } else {
                        false
                    }
                }
            };
            if hit {
                return true;
            }
        }
        false
    }
}

/// An observed value as Nmap 7.93's `expr_match` reads it: the text, and whether it is
/// entirely a hex number (the empty value is, as 0) with that number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed<'a> {
    pub text: &'a str,
    pub numeric: bool,
    pub num: u32,
}

impl<'a> Observed<'a> {
    pub fn new(text: &'a str) -> Observed<'a> {
        let (num, used) = strtol16(text.as_bytes());
        Observed {
            text,
            numeric: used == text.len(),
            num: c_uint(num),
        }
    }
}

/// The range test of Nmap 7.93 for an alternative holding a `-`: the number before it must
/// end exactly at the dash, the one after it must fill the rest.
fn in_range(alt: &Alt, num: u32) -> bool {
    match alt {
        Alt::Range(a, b) => num >= bound(*a) && num <= bound(*b),
        Alt::Str(s) => {
            let Some(dash) = s.find('-') else {
                return false;
            };
            let (lo, lo_used) = strtol16(s.as_bytes());
            if lo_used != dash || dash == 0 {
                return false;
            }
            let rest = s.get(dash + 1..).unwrap_or("");
            let (hi, hi_used) = strtol16(rest.as_bytes());
            if hi_used != rest.len() {
                return false;
            }
            num >= c_uint(lo) && num <= c_uint(hi)
        }
        _ => false,
    }
}

impl std::fmt::Display for Alt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Alt::Str(s) => f.write_str(s),
            Alt::Range(a, b) => write!(f, "{a:X}-{b:X}"),
            Alt::Gt(n) => write!(f, ">{n:X}"),
            Alt::Lt(n) => write!(f, "<{n:X}"),
        }
    }
}

impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.alts.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// `NAME(a=v%b=w)` split into the name and the text between the parentheses (Nmap reads up
/// to the first `)`, ignoring what follows).
fn split_test(line: &str) -> Result<(&str, &str), String> {
    let (name, rest) = line
        .split_once('(')
        .ok_or_else(|| "no '(' in test line".to_string())?;
    let (body, _) = rest
        .split_once(')')
        .ok_or_else(|| "no ')' in test line".to_string())?;
    Ok((name, body))
}

/// A reference test line, checked against [`SCHEMA`] as Nmap's `str2AVal`.
fn parse_test(line: &str) -> Result<RefTest, String> {
    let (name, body) = split_test(line)?;
    let ti = test_index(name).ok_or_else(|| format!("unknown test {name:?}"))?;
    let attrs_def = SCHEMA.get(ti).map_or(&[][..], |t| t.1);
    let has_r = attrs_def.first() == Some(&"R");
    // Nmap: a test without R written as R=N (or empty) has no values at all.
    if !has_r && "R=N".starts_with(body) {
        return Ok(RefTest {
            name: name.to_string(),
            attrs: Vec::new(),
        });
    }
    let mut values: Vec<Option<Expr>> = vec![None; attrs_def.len()];
    if !body.is_empty() {
        for pair in body.split('%') {
            let (attr, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("no '=' in {pair:?}"))?;
            let ai =
                attr_index(ti, attr).ok_or_else(|| format!("unknown attribute {name}.{attr}"))?;
            let slot = values
                .get_mut(ai)
                .ok_or_else(|| format!("unknown attribute {name}.{attr}"))?;
            if slot.is_some() {
                return Err(format!("attribute {name}.{attr} given twice"));
            }
            *slot = Some(Expr::parse(value)?);
        }
    }
    let attrs = values
        .into_iter()
        .zip(attrs_def.iter())
        .filter_map(|(v, a)| v.map(|v| (a.to_string(), v)))
        .collect();
    Ok(RefTest {
        name: name.to_string(),
        attrs,
    })
}

/// A MatchPoints line: `T1(R=100%DF=20%...)`, every value a positive decimal.
fn parse_points(line: &str) -> Result<(String, Vec<(String, u32)>), String> {
    let (name, body) = split_test(line)?;
    let ti = test_index(name).ok_or_else(|| format!("unknown test {name:?}"))?;
    let mut out = Vec::new();
    for pair in body.split('%').filter(|p| !p.is_empty()) {
        let (attr, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("no '=' in {pair:?}"))?;
        attr_index(ti, attr).ok_or_else(|| format!("unknown attribute {name}.{attr}"))?;
        let points: u32 = value
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("bad points {value:?} for {name}.{attr}"))?;
        out.push((attr.to_string(), points));
    }
    Ok((name.to_string(), out))
}

/// `Class vendor | family | gen | type`. `Ok(None)`: a line with nothing in it, which Nmap
/// ignores.
fn parse_class(line: &str) -> Result<Option<RefClass>, String> {
    let rest = line.get(6..).unwrap_or("");
    if rest.chars().all(|c| c == '|' || c.is_whitespace()) {
        return Ok(None);
    }
    let mut parts = rest.splitn(4, '|');
    let mut next = || {
        parts
            .next()
            .ok_or_else(|| "Class line needs 4 fields".to_string())
    };
    let vendor = next()?.trim().to_string();
    let family = next()?.trim().to_string();
    let gen = next()?.trim();
    let kind = next()?.trim().to_string();
    Ok(Some(RefClass {
        vendor,
        family,
        gen: (!gen.is_empty()).then(|| gen.to_string()),
        kind,
        cpes: Vec::new(),
    }))
}

/// Where the reader is: between entries, inside the MatchPoints block, inside an entry.
enum State {
    Top,
    Points,
    Print,
}

impl OsDb {
    /// Reads the whole file; never fails, the lines it could not take come back as errors.
    pub fn parse(text: &str) -> (OsDb, Vec<DbError>) {
        let mut db = OsDb::default();
        let mut errors = Vec::new();
        let mut state = State::Top;
        let mut seen_points = false;
        let mut err = |line: u32, message: String| errors.push(DbError { line, message });

        for (i, raw) in text.split('\n').enumerate() {
            let lineno = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.starts_with('#') {
                continue;
            }
            // Within a block, "Fingerprint " starts the next entry; at the top any line
            // starting "Fingerprint" or "MatchPoints" in any case does (as Nmap 7.93).
            let starts = |word: &str| {
                line.get(..word.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(word))
            };
            let header = match state {
                State::Top => starts("Fingerprint") || starts("MatchPoints"),
                _ => line.starts_with("Fingerprint "),
            };
            if header {
                state = State::Top;
            }
            match state {
                State::Top => {
                    if line.is_empty() || line.starts_with("This nmap-os-db") {
                        continue;
                    }
                    if starts("MatchPoints") {
                        if seen_points {
                            err(lineno, "a second MatchPoints section".into());
                            // Read and drop it, as a block.
                            state = State::Points;
                            continue;
                        }
                        seen_points = true;
                        state = State::Points;
                        continue;
                    }
                    if starts("Fingerprint") {
                        // Nmap skips the separator after the word, whatever it is.
                        let rest = line.get(12..).unwrap_or("");
                        let name = rest.split('#').next().unwrap_or("").trim();
                        if name.is_empty() {
                            err(lineno, "Fingerprint line without a name".into());
                            continue;
                        }
                        db.prints.push(RefPrint {
                            name: name.to_string(),
                            line: lineno,
                            classes: Vec::new(),
                            tests: Vec::new(),
                        });
                        state = State::Print;
                        continue;
                    }
                    err(lineno, format!("unexpected line {line:?}"));
                }
                State::Points => {
                    if line.is_empty() {
                        state = State::Top;
                        continue;
                    }
                    match parse_points(line) {
                        Ok(t) if db.match_points.tests.iter().all(|(n, _)| *n != t.0) => {
                            db.match_points.tests.push(t);
                        }
                        Ok(t) => err(lineno, format!("MatchPoints for {} given twice", t.0)),
                        Err(e) => err(lineno, e),
                    }
                }
                State::Print => {
                    if line.is_empty() {
                        state = State::Top;
                        continue;
                    }
                    let Some(print) = db.prints.last_mut() else {
                        state = State::Top;
                        continue;
                    };
                    if line.starts_with("Class ") {
                        match parse_class(line) {
                            Ok(Some(c)) => print.classes.push(c),
                            Ok(None) => {}
                            Err(e) => err(lineno, e),
                        }
                    } else if let Some(rest) = line.strip_prefix("CPE ") {
                        // Flags after the CPE ("auto") are dropped, as Nmap does.
                        match (print.classes.last_mut(), rest.split_whitespace().next()) {
                            (Some(class), Some(cpe)) => class.cpes.push(cpe.to_string()),
                            (None, _) => err(lineno, "CPE line without a Class before it".into()),
                            (_, None) => err(lineno, "empty CPE line".into()),
                        }
                    } else {
                        match parse_test(line) {
                            Ok(t) => {
                                // A repeated test replaces the earlier one, as in Nmap.
                                print.tests.retain(|old| old.name != t.name);
                                print.tests.push(t);
                            }
                            Err(e) => {
                                // A line without its parentheses makes Nmap leave the entry
                                // (the rest of its block is read as top-level lines); one
                                // it could store but we cannot check (unknown test or
                                // attribute...) is skipped alone.
                                if split_test(line).is_err() {
                                    state = State::Top;
                                }
                                err(lineno, e);
                            }
                        }
                    }
                }
            }
        }
        if let (false, Some(first)) = (seen_points, db.prints.first()) {
            err(
                first.line,
                "no MatchPoints section in the file: every reference scores 0".into(),
            );
        }
        for p in &mut db.prints {
            p.tests
                .sort_by_key(|t| test_index(&t.name).unwrap_or(usize::MAX));
        }
        (db, errors)
    }

    /// Reads a file (the installed `nmap-os-db`, usually).
    pub fn load(path: &Path) -> std::io::Result<(OsDb, Vec<DbError>)> {
        let bytes = std::fs::read(path)?;
        Ok(OsDb::parse(&String::from_utf8_lossy(&bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Expr {
        Expr::parse(s).unwrap()
    }

    #[test]
    fn expressions_follow_nmap() {
        assert!(e("3B-45").matches("40"));
        assert!(e("3B-45").matches("3B"));
        assert!(e("3B-45").matches("045"));
        assert!(!e("3B-45").matches("46"));
        assert!(!e("3B-45").matches("3A"));
        assert!(e("FA-104").matches("100"));
        assert!(!e("FA-104").matches("F9"));
        assert!(e(">10").matches("11"));
        assert!(!e(">10").matches("10"));
        assert!(e("<10").matches("F"));
        assert!(!e("<10").matches("10"));
        assert!(e("8|A").matches("A"));
        assert!(!e("8|A").matches("08"));
        assert!(!e("8|A").matches("9"));
        assert!(e("I|RD").matches("RD"));
        assert!(!e("I|RD").matches("RI"));
        assert!(e("M5B4ST11NW7").matches("M5B4ST11NW7"));
        assert!(!e("M5B4ST11NW7").matches("M5B4ST11NW8"));
        // Empty values and alternatives.
        assert!(e("").matches(""));
        assert!(!e("").matches("0"));
        assert!(e("Z|").matches(""));
        assert!(!e("Z|A").matches(""));
        assert!(e("AS").matches("AS"));
        assert!(!e("AS").matches("AR"));
        assert!(!e(">5").matches("BI"));
        // Nmap 7.93's quirks: a '-' later in the expression spoils the literals before it;
        // literals but the last match a prefix; the empty value is the number 0.
        assert!(!e("0|5-8").matches("0"));
        assert!(e("0|5-8").matches("6"));
        assert!(e("5-8|0").matches("0"));
        assert!(e("40|80").matches("400"));
        assert!(!e("80|40").matches("400"));
        assert!(e("|Z").matches("anything"));
        assert!(e("0-5").matches(""));
        assert!(e("0x10").matches("0x10"));
        assert!(e(">F").matches("0x10"));
    }

    #[test]
    fn expression_rejects_structure_characters() {
        assert!(Expr::parse("A%B").is_err());
        assert!(Expr::parse("M[>500]").is_err());
        assert_eq!(e("0-5|>A|Z").to_string(), "0-5|>A|Z");
    }

    const SMALL: &str = "\
# our own test data
MatchPoints
SEQ(SP=25%GCD=75)
T1(R=100%DF=20%T=15)
U1(R=50%DF=20)

Fingerprint Test OS one
Class Acme | AcmeOS | 1.X | general purpose
CPE cpe:/o:acme:acmeos:1 auto
CPE cpe:/o:acme:acmeos
SEQ(SP=0-5%GCD=1|2)
T1(DF=Y%T=40)
U1(R=N)

Fingerprint Test OS two
Class Acme | AcmeOS | | router
T1(DF=Y%BOGUS=1)
T2(R=N)
Class Acme | Never | 2 | router

Fingerprint Test OS three # comment
SEQ(R=N)
T1(R=N)
T2 R=N
T3(R=N)

fingerprint Test OS four
T1(R=N)
";

    #[test]
    fn reads_entries_and_reports_bad_lines() {
        let (db, errors) = OsDb::parse(SMALL);
        assert_eq!(db.match_points.points("T1", "DF"), 20);
        assert_eq!(db.match_points.points("IE", "CD"), 0);
        let one = &db.prints[0];
        assert_eq!(one.name, "Test OS one");
        assert_eq!(one.line, 7);
        assert_eq!(
            one.classes[0].cpes,
            ["cpe:/o:acme:acmeos:1", "cpe:/o:acme:acmeos"]
        );
        assert_eq!(one.classes[0].gen.as_deref(), Some("1.X"));
        let t1 = one.test("T1").unwrap();
        assert_eq!(t1.attrs[0].0, "DF");
        assert!(t1.get("R").is_none());
        assert!(one.test("U1").unwrap().get("R").unwrap().matches("N"));
        // A test line naming an unknown attribute is named and skipped alone.
        let two = &db.prints[1];
        assert_eq!(two.classes.len(), 2);
        assert_eq!(two.classes[0].gen, None);
        assert_eq!(two.tests.len(), 1);
        // A line without parentheses ends its entry, as in Nmap: the entry stays with what
        // came before, the rest of the block is read at the top level and reported.
        let lines: Vec<u32> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [17, 24, 25]);
        let three = &db.prints[2];
        assert_eq!(three.name, "Test OS three");
        assert!(three.test("SEQ").unwrap().attrs.is_empty());
        assert!(three.test("T3").is_none());
        // Nmap 7.93 takes the keyword in any case at the top.
        assert_eq!(db.prints[3].name, "Test OS four");
        assert_eq!(db.prints.len(), 4);
    }

    #[test]
    fn installed_db_loads_cleanly() {
        let path = Path::new("/usr/share/nmap/nmap-os-db");
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("no {}: skipped", path.display());
            return;
        };
        let (db, errors) = OsDb::parse(&text);
        assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
        let count = text
            .lines()
            .filter(|l| l.starts_with("Fingerprint "))
            .count();
        assert_eq!(db.prints.len(), count);
        assert_eq!(db.match_points.tests.len(), SCHEMA.len());
        assert!(db.prints.iter().all(|p| !p.tests.is_empty()));
    }

    #[test]
    fn installed_db_with_damage_still_loads() {
        let Ok(text) = std::fs::read_to_string("/usr/share/nmap/nmap-os-db") else {
            return;
        };
        let good = OsDb::parse(&text).0.prints.len();
        // Break one test line somewhere in the middle.
        let target = text
            .lines()
            .position(|l| l.starts_with("T3(") && l.contains("W="))
            .unwrap();
        let damaged: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == target {
                    l.replacen("W=", "XX=", 1)
                } else {
                    l.to_string()
                }
            })
            .collect();
        let (db, errors) = OsDb::parse(&damaged.join("\n"));
        assert_eq!(db.prints.len(), good);
        assert_eq!(errors.first().map(|e| e.line), Some(target as u32 + 1));
    }
}
