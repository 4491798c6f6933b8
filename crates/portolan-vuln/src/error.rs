//! The errors of importing feeds and of the database.

use std::path::PathBuf;

/// Why a feed could not be imported (nothing of the import is then written), or the
/// database could not be used. File errors name the file, and the line or JSON path.
#[derive(Debug, thiserror::Error)]
pub enum VulnError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A gzip stream that ends early or is corrupt.
    #[error("{}: bad gzip data (truncated or corrupt): {source}", file.display())]
    Gzip {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a known feed ({found}); expected NVD CVE JSON 2.0, CISA KEV JSON, FIRST EPSS CSV or Debian security tracker JSON", file.display())]
    UnknownFormat { file: PathBuf, found: String },
    #[error("{}: {path}: {message} (line {line}, column {column})", file.display())]
    Json {
        file: PathBuf,
        /// Where in the document: `vulnerabilities[12].cve`, `openssh.CVE-2024-6387`.
        path: String,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("{}: line {line}: {message}", file.display())]
    Csv {
        file: PathBuf,
        line: usize,
        message: String,
    },
    #[error("vulnerability database {}: {source}", path.display())]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("vulnerability database {}: schema version {found} is newer than this Portolan's ({supported}); use a newer Portolan", path.display())]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("vulnerability database {}: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("vulnerability database {}: not found (import feeds first: portolan vulndb import FILE...)", path.display())]
    NoDatabase { path: PathBuf },
}
