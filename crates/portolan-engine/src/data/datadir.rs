//! Finding Nmap's data files, in Nmap's search order, and loading the services table.
//!
//! Order: `--datadir DIR`, `$NMAPDIR`, `~/.nmap`, `/usr/local/share/nmap`,
//! `/usr/share/nmap`. The first directory holding a readable regular file of that name wins.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::data::services::{load_nmap_services, ServiceTable};

/// The system-wide directories searched after the user's.
pub const SYSTEM_DATA_DIRS: [&str; 2] = ["/usr/local/share/nmap", "/usr/share/nmap"];

/// The directories searched, in order, given `--datadir`, `$NMAPDIR` and `$HOME`.
/// Empty environment values are ignored. Pure: no file system or environment access.
pub fn search_dirs_with(
    datadir: Option<&Path>,
    nmapdir: Option<OsString>,
    home: Option<OsString>,
) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = datadir {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = nmapdir.filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Some(h) = home.filter(|h| !h.is_empty()) {
        dirs.push(PathBuf::from(h).join(".nmap"));
    }
    dirs.extend(SYSTEM_DATA_DIRS.iter().map(PathBuf::from));
    dirs
}

/// The directories searched, in order, reading `$NMAPDIR` and `$HOME` from the environment.
pub fn search_dirs(datadir: Option<&Path>) -> Vec<PathBuf> {
    search_dirs_with(
        datadir,
        std::env::var_os("NMAPDIR"),
        std::env::var_os("HOME"),
    )
}

/// The first readable regular file `name` in `dirs`.
pub fn find_data_file_in(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_readable_file(p))
}

/// Finds data file `name` (e.g. `nmap-services`) in Nmap's search order.
pub fn find_data_file(name: &str, datadir: Option<&Path>) -> Option<PathBuf> {
    find_data_file_in(name, &search_dirs(datadir))
}

fn is_readable_file(p: &Path) -> bool {
    p.metadata().map(|m| m.is_file()).unwrap_or(false) && File::open(p).is_ok()
}

/// Where a data table (services, MAC prefixes) came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Nmap's `nmap-services` at this path.
    Nmap(PathBuf),
    /// Portolan's built-in table: asked for, or no `nmap-services` found.
    Builtin,
    /// Portolan's built-in table because the `nmap-services` found could not be used.
    BuiltinFallback { path: PathBuf, reason: String },
}

/// Loads an Nmap data file located by `path` with `parse`, or `builtin()` when there is
/// none, when it cannot be read, or when `parse` refuses it (the reason is kept in
/// [`Source::BuiltinFallback`]). Stray non-UTF-8 bytes (comments, vendor names) are
/// tolerated: such lines parse or are skipped. The one rule for every data table.
pub fn load_table_from<T>(
    path: Option<PathBuf>,
    builtin: fn() -> T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> (T, Source) {
    let Some(path) = path else {
        return (builtin(), Source::Builtin);
    };
    let parsed = std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| parse(&String::from_utf8_lossy(&bytes)));
    match parsed {
        Ok(table) => (table, Source::Nmap(path)),
        Err(reason) => (builtin(), Source::BuiltinFallback { path, reason }),
    }
}

/// [`load_table_from`] for the file `name` on the search path, or `builtin()` alone when
/// `builtin_only` (--builtin-data).
pub fn load_table<T>(
    name: &str,
    datadir: Option<&Path>,
    builtin_only: bool,
    builtin: fn() -> T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> (T, Source) {
    if builtin_only {
        return (builtin(), Source::Builtin);
    }
    load_table_from(find_data_file(name, datadir), builtin, parse)
}

/// Loads `nmap-services` from the search path, or the built-in table when `builtin_only`,
/// when none is found, or when the file found cannot be read or holds no entries.
/// Malformed lines of a loaded file are in [`ServiceTable::warnings`].
pub fn load_services(datadir: Option<&Path>, builtin_only: bool) -> (ServiceTable, Source) {
    load_table(
        "nmap-services",
        datadir,
        builtin_only,
        ServiceTable::builtin,
        parse_services,
    )
}

/// [`load_services`] once the file has been located (or not).
pub fn load_services_from(path: Option<PathBuf>) -> (ServiceTable, Source) {
    load_table_from(path, ServiceTable::builtin, parse_services)
}

fn parse_services(text: &str) -> Result<ServiceTable, String> {
    load_nmap_services(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::Protocol;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "portolan-datadir-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn search_order() {
        let dirs = search_dirs_with(
            Some(Path::new("/opt/data")),
            Some("/env/nmapdir".into()),
            Some("/home/u".into()),
        );
        assert_eq!(
            dirs,
            [
                "/opt/data",
                "/env/nmapdir",
                "/home/u/.nmap",
                "/usr/local/share/nmap",
                "/usr/share/nmap"
            ]
            .map(PathBuf::from)
        );
        let dirs = search_dirs_with(None, Some("".into()), None);
        assert_eq!(
            dirs,
            ["/usr/local/share/nmap", "/usr/share/nmap"].map(PathBuf::from)
        );
    }

    #[test]
    fn first_readable_file_wins() {
        let a = TempDir::new("a");
        let b = TempDir::new("b");
        std::fs::write(b.0.join("nmap-services"), "x\t1/tcp\t0.5\n").unwrap();
        // A directory of that name is skipped.
        std::fs::create_dir(a.0.join("nmap-services")).unwrap();
        let dirs = vec![a.0.clone(), b.0.clone()];
        assert_eq!(
            find_data_file_in("nmap-services", &dirs),
            Some(b.0.join("nmap-services"))
        );
        assert_eq!(find_data_file_in("nmap-os-db", &dirs), None);
        std::fs::write(a.0.join("nmap-os-db"), "").unwrap();
        assert_eq!(
            find_data_file_in("nmap-os-db", &dirs),
            Some(a.0.join("nmap-os-db"))
        );
        // --datadir comes first.
        assert_eq!(
            find_data_file("nmap-services", Some(&b.0)),
            Some(b.0.join("nmap-services"))
        );
    }

    #[test]
    fn load_from_paths() {
        let d = TempDir::new("load");
        let good = d.0.join("good");
        std::fs::write(&good, b"web\t80/tcp\t0.5\n# \xff\xfe comment\nbad line\n").unwrap();
        let (t, src) = load_services_from(Some(good.clone()));
        assert_eq!(src, Source::Nmap(good));
        assert_eq!(t.lookup(80, Protocol::Tcp), Some("web"));
        assert_eq!(t.warnings().len(), 1);
        assert_eq!(t.warnings()[0].0, 3);

        let empty = d.0.join("empty");
        std::fs::write(&empty, "").unwrap();
        let (t, src) = load_services_from(Some(empty.clone()));
        assert!(t.is_builtin());
        assert!(matches!(src, Source::BuiltinFallback { path, .. } if path == empty));

        let missing = d.0.join("missing");
        let (t, src) = load_services_from(Some(missing.clone()));
        assert!(t.is_builtin());
        assert!(matches!(src, Source::BuiltinFallback { path, .. } if path == missing));

        let (t, src) = load_services_from(None);
        assert!(t.is_builtin());
        assert_eq!(src, Source::Builtin);

        let (t, src) = load_services(Some(&d.0), true);
        assert!(t.is_builtin());
        assert_eq!(src, Source::Builtin);

        std::fs::write(d.0.join("nmap-services"), "dd\t9/udp\t0.1\n").unwrap();
        let (t, src) = load_services(Some(&d.0), false);
        assert_eq!(src, Source::Nmap(d.0.join("nmap-services")));
        assert_eq!(t.lookup(9, Protocol::Udp), Some("dd"));
    }

    #[test]
    fn installed_file_is_found() {
        let Some(_) = crate::data::services::tests::installed() else {
            return;
        };
        let dirs = search_dirs_with(None, None, None);
        assert!(find_data_file_in("nmap-services", &dirs).is_some());
    }
}
