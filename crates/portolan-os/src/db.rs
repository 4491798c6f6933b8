//! The `nmap-os-db` reader: MatchPoints and the reference fingerprints.
// OWNER: helper "os-db". The types below are the agreed interface; keep their names and
// fields (add fields or functions freely).

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

/// One `Fingerprint` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefPrint {
    /// The text after `Fingerprint `.
    pub name: String,
    /// 1-based line of the `Fingerprint` line (Nmap's `osmatch@line`).
    pub line: u32,
    pub classes: Vec<RefClass>,
    pub tests: Vec<RefTest>,
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
