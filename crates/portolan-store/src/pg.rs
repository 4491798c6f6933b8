//! Where a PostgreSQL store is, as libpq would understand it: a `postgres://` (or
//! `postgresql://`) URL, a `key=value` connection string, or `service=NAME` from
//! `pg_service.conf`; then libpq's environment defaults (PGHOST, PGPORT, PGUSER,
//! PGDATABASE, PGPASSWORD, PGSSLMODE, PGSSLROOTCERT, PGSERVICE...), the password file
//! (`~/.pgpass` or PGPASSFILE, ignored unless private to its owner, as libpq does), and the
//! TLS modes (sslmode disable, allow, prefer, require, verify-ca, verify-full; sslrootcert).
//!
//! The password is never part of what is shown of a target ([`PgTarget::shown`]), nor of any
//! error.

use crate::StoreError;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres::config::{Host, SslMode};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Whether `spec` names a PostgreSQL store rather than an SQLite file.
pub fn is_postgres(spec: &str) -> bool {
    let s = spec.trim_start();
    s.starts_with("postgres://")
        || s.starts_with("postgresql://")
        || ["service=", "host=", "dbname=", "user=", "port="]
            .iter()
            .any(|k| s.starts_with(k))
}

/// libpq's TLS modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A PostgreSQL server and database, with everything needed to connect.
#[derive(Clone)]
pub struct PgTarget {
    config: postgres::Config,
    tls: Tls,
    root_cert: Option<PathBuf>,
    shown: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A store's location as it may be shown (messages, pages, logs, recorded command lines):
/// a file's path as it is, a PostgreSQL location without its password.
pub fn shown(spec: &str) -> String {
    if is_postgres(spec) {
        redact(spec)
    } else {
        spec.to_string()
    }
}

/// A command line's word as it may be shown: a PostgreSQL location (alone or as
/// `--db=LOCATION`) without its password, any other word as it is.
pub fn shown_word(word: &str) -> String {
    match word.strip_prefix("--db=") {
        Some(v) => format!("--db={}", shown(v)),
        None => shown(word),
    }
}

/// `spec` without any password: the URL's user-info password and `password=` options.
fn redact(spec: &str) -> String {
    let s = spec.trim();
    if let Some((scheme, rest)) = s.split_once("://") {
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split_once(':').map_or(user, |(u, _)| u);
                format!("{user}@{host}")
            }
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|kv| !kv.starts_with("password="))
                    .collect();
                if kept.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{}", kept.join("&"))
                }
            }
            None => tail.to_string(),
        };
        return format!("{scheme}://{authority}{tail}");
    }
    keywords(s)
        .into_iter()
        .filter(|(k, _)| k != "password")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `key=value` pairs of a connection string (values may be single-quoted).
fn keywords(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() == Some(&'=') {
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
    out
}

/// Percent-decoding of a URL part.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home() -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

impl PgTarget {
    /// Reads a store's location (see the module's docs); nothing is connected yet.
    pub fn parse(spec: &str) -> Result<PgTarget, StoreError> {
        let shown = redact(spec);
        let bad = |detail: String| StoreError::BadLocation {
            location: shown.clone(),
            detail,
        };
        // Everything as key=value pairs, the URL's parts included, so that the options this
        // module handles itself (TLS, service) are taken out before the client parses it.
        let mut pairs: Vec<(String, String)> = Vec::new();
        let s = spec.trim();
        if let Some(rest) = s
            .strip_prefix("postgres://")
            .or_else(|| s.strip_prefix("postgresql://"))
        {
            let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (authority, db) = main.split_once('/').unwrap_or((main, ""));
            let (userinfo, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            if let Some(u) = userinfo {
                let (user, pass) = match u.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (u, None),
                };
                if !user.is_empty() {
                    pairs.push(("user".into(), decode(user)));
                }
                if let Some(p) = pass {
                    pairs.push(("password".into(), decode(p)));
                }
            }
            let (mut hosts, mut ports) = (Vec::new(), Vec::new());
            for hp in hostport.split(',').filter(|h| !h.is_empty()) {
                // [::1]:5432, host:5432, host, %2Frun%2Fpostgresql
                let (h, p) = if let Some(r) = hp.strip_prefix('[') {
                    match r.split_once(']') {
                        Some((h, p)) => (h, p.strip_prefix(':')),
                        None => return Err(bad(format!("bad host {hp:?}"))),
                    }
                } else {
                    match hp.rsplit_once(':') {
                        Some((h, p)) => (h, Some(p)),
                        None => (hp, None),
                    }
                };
                if !h.is_empty() {
                    hosts.push(decode(h));
                }
                if let Some(p) = p.filter(|p| !p.is_empty()) {
                    ports.push(p.to_string());
                }
            }
            if !hosts.is_empty() {
                pairs.push(("host".into(), hosts.join(",")));
            }
            if !ports.is_empty() {
                pairs.push(("port".into(), ports.join(",")));
            }
            if !db.is_empty() {
                pairs.push(("dbname".into(), decode(db)));
            }
            for kv in query.split('&').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                pairs.push((decode(k), decode(v)));
            }
        } else {
            pairs = keywords(s);
        }
        // A service's settings come under those given.
        let service = pairs
            .iter()
            .find(|(k, _)| k == "service")
            .map(|(_, v)| v.clone())
            .or_else(|| env("PGSERVICE"));
        if let Some(name) = service {
            let from = service_settings(&name).map_err(bad)?;
            for (k, v) in from {
                if !pairs.iter().any(|(k2, _)| *k2 == k) {
                    pairs.push((k, v));
                }
            }
        }
        let take = |pairs: &mut Vec<(String, String)>, key: &str| -> Option<String> {
            let i = pairs.iter().position(|(k, _)| k == key)?;
            Some(pairs.remove(i).1)
        };
        let _ = take(&mut pairs, "service");
        let tls = match take(&mut pairs, "sslmode")
            .or_else(|| env("PGSSLMODE"))
            .as_deref()
        {
            None | Some("prefer") | Some("allow") => Tls::Prefer,
            Some("disable") => Tls::Disable,
            Some("require") => Tls::Require,
            Some("verify-ca") => Tls::VerifyCa,
            Some("verify-full") => Tls::VerifyFull,
            Some(other) => return Err(bad(format!("unknown sslmode {other:?}"))),
        };
        let root_cert = take(&mut pairs, "sslrootcert")
            .or_else(|| env("PGSSLROOTCERT"))
            .map(PathBuf::from);
        // Defaults from the environment, as libpq takes them.
        for (key, var) in [
            ("host", "PGHOST"),
            ("port", "PGPORT"),
            ("user", "PGUSER"),
            ("dbname", "PGDATABASE"),
            ("password", "PGPASSWORD"),
            ("connect_timeout", "PGCONNECT_TIMEOUT"),
        ] {
            if !pairs.iter().any(|(k, _)| k == key) {
                if let Some(v) = env(var) {
                    pairs.push((key.into(), v));
                }
            }
        }
        if !pairs.iter().any(|(k, _)| k == "host") {
            let socket = Path::new("/var/run/postgresql");
            let host = if socket.is_dir() {
                socket.to_string_lossy().into_owned()
            } else {
                "localhost".into()
            };
            pairs.push(("host".into(), host));
        }
        if !pairs.iter().any(|(k, _)| k == "user") {
            let user = env("USER")
                .or_else(|| env("LOGNAME"))
                .unwrap_or_else(|| "postgres".into());
            pairs.push(("user".into(), user));
        }
        let text = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect::<Vec<_>>()
            .join(" ");
        // The client's own message may quote the string: give only the option's name.
        let mut config = postgres::Config::from_str(&text)
            .map_err(|e| bad(format!("{}", e).replace(&text, "")))?;
        if config.get_dbname().is_none() {
            let user = config.get_user().unwrap_or("postgres").to_string();
            config.dbname(&user);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(30));
        }
        if config.get_application_name().is_none() {
            config.application_name("portolan");
        }
        if config.get_password().is_none() {
            if let Some(p) = pgpass(&config) {
                config.password(p);
            }
        }
        config.ssl_mode(match tls {
            Tls::Disable => SslMode::Disable,
            Tls::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        Ok(PgTarget {
            config,
            tls,
            root_cert,
            shown,
        })
    }

    /// The location without its password, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Connects. Errors name the location (without password) and say why.
    pub(crate) fn connect(&self) -> Result<postgres::Client, StoreError> {
        let fail = |detail: String| StoreError::Connect {
            location: self.shown.clone(),
            detail,
        };
        let client = if self.tls == Tls::Disable {
            self.config.connect(postgres::NoTls)
        } else {
            let mut b = SslConnector::builder(SslMethod::tls_client())
                .map_err(|e| fail(format!("TLS: {e}")))?;
            // libpq's rules: a root certificate file given with `require` verifies the chain
            // as verify-ca does; without one, `require` and `prefer` only encrypt.
            let verify = match self.tls {
                Tls::VerifyCa | Tls::VerifyFull => true,
                Tls::Require => self.root_cert.is_some(),
                _ => false,
            };
            if verify {
                let root = self
                    .root_cert
                    .clone()
                    .or_else(|| home().map(|h| h.join(".postgresql/root.crt")))
                    .ok_or_else(|| fail("no root certificate (sslrootcert)".into()))?;
                b.set_ca_file(&root)
                    .map_err(|e| fail(format!("root certificate {}: {e}", root.display())))?;
                b.set_verify(SslVerifyMode::PEER);
            } else {
                b.set_verify(SslVerifyMode::NONE);
            }
            let mut tls = postgres_openssl::MakeTlsConnector::new(b.build());
            let full = self.tls == Tls::VerifyFull;
            tls.set_callback(move |c, _| {
                c.set_verify_hostname(full);
                Ok(())
            });
            self.config.connect(tls)
        };
        client.map_err(|e| fail(connect_detail(&e)))
    }
}

/// Why a connection failed, in a line (the client's error and its cause).
fn connect_detail(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// The settings of service `name` in the user's `~/.pg_service.conf` (or PGSERVICEFILE),
/// else in the system's `pg_service.conf` (PGSYSCONFDIR, or Debian's /etc/postgresql-common).
fn service_settings(name: &str) -> Result<Vec<(String, String)>, String> {
    let mut files = Vec::new();
    match env("PGSERVICEFILE") {
        Some(f) => files.push(PathBuf::from(f)),
        None => files.extend(home().map(|h| h.join(".pg_service.conf"))),
    }
    files.push(
        env("PGSYSCONFDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/etc/postgresql-common"))
            .join("pg_service.conf"),
    );
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let mut inside = false;
        let mut found = false;
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = section.trim() == name;
                found |= inside;
                continue;
            }
            if inside {
                if let Some((k, v)) = line.split_once('=') {
                    out.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
        if found {
            return Ok(out);
        }
    }
    Err(format!("no service {name:?} in pg_service.conf"))
}

/// The password for `config`'s first host, port, database and user in the password file
/// (PGPASSFILE or `~/.pgpass`), which libpq ignores, and so does this, when others than its
/// owner may read it.
fn pgpass(config: &postgres::Config) -> Option<String> {
    let file = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(".pgpass")))?;
    let text = pgpass_text(&file)?;
    let host = match config.get_hosts().first()? {
        Host::Tcp(h) => h.clone(),
        // libpq matches a socket connection as "localhost".
        Host::Unix(_) => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config.get_dbname().unwrap_or("");
    let user = config.get_user().unwrap_or("");
    pgpass_lookup(&text, &host, &port, db, user)
}

fn pgpass_text(file: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    std::fs::read_to_string(file).ok()
}

/// The first line of a password file matching the connection (`*` matches anything;
/// `\:` and `\\` are escapes).
pub(crate) fn pgpass_lookup(
    text: &str,
    host: &str,
    port: &str,
    db: &str,
    user: &str,
) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        let [h, p, d, u, pw] = fields.as_slice() else {
            continue;
        };
        let ok = |f: &str, v: &str| f == "*" || f == v;
        if ok(h, host) && ok(p, port) && ok(d, db) && ok(u, user) {
            return Some(pw.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://bob:s3cret@db.example:5433/inv?sslmode=require"),
            "postgres://bob@db.example:5433/inv?sslmode=require"
        );
        assert_eq!(
            redact("postgresql://h/inv?password=s3cret&sslmode=disable"),
            "postgresql://h/inv?sslmode=disable"
        );
        assert_eq!(
            redact("host=h password='s3 cret' dbname=inv"),
            "host=h dbname=inv"
        );
        assert_eq!(shown("/var/lib/a=b.db"), "/var/lib/a=b.db");
        assert_eq!(
            shown_word("--db=postgres://u:pw@h/d"),
            "--db=postgres://u@h/d"
        );
        assert_eq!(shown_word("-sS"), "-sS");
    }

    #[test]
    fn reads_urls() {
        let t = PgTarget::parse("postgres://bob:p%40ss@127.0.0.1:5433/inv?sslmode=verify-full")
            .unwrap();
        assert_eq!(t.config.get_user(), Some("bob"));
        assert_eq!(t.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(t.config.get_ports(), &[5433]);
        assert_eq!(t.config.get_dbname(), Some("inv"));
        assert_eq!(t.tls, Tls::VerifyFull);
        assert!(!t.shown().contains("p%40ss"));
        let t = PgTarget::parse("postgresql://bob@%2Ftmp%2Fsock:7/inv").unwrap();
        assert_eq!(t.config.get_hosts(), &[Host::Unix("/tmp/sock".into())]);
        assert!(matches!(
            PgTarget::parse("postgres://h/inv?sslmode=sometimes"),
            Err(StoreError::BadLocation { .. })
        ));
        assert!(is_postgres("postgres://h/x") && is_postgres("service=inv"));
        assert!(!is_postgres("/var/lib/h.db") && !is_postgres("h.db"));
    }

    #[test]
    fn services_come_from_the_service_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg_service.conf");
        std::fs::write(
            &file,
            "# inventory\n[other]\nhost=nowhere\n[inv]\nhost=db.example\nport=6543\n\
             dbname=inventory\nsslmode=disable\n",
        )
        .unwrap();
        // Read only when a service is named: no other test depends on it.
        std::env::set_var("PGSERVICEFILE", &file);
        let t = PgTarget::parse("service=inv user=bob").unwrap();
        let missing = PgTarget::parse("service=nope");
        std::env::remove_var("PGSERVICEFILE");
        assert_eq!(t.config.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(t.config.get_ports(), &[6543]);
        assert_eq!(t.config.get_dbname(), Some("inventory"));
        assert_eq!(t.config.get_user(), Some("bob"));
        assert_eq!(t.tls, Tls::Disable);
        assert!(matches!(missing, Err(StoreError::BadLocation { .. })));
    }

    #[test]
    fn password_file_lines() {
        let text = "# comment\nother:5432:*:bob:no\ndb\\:x:*:inv:bob:yes\\:1\n*:*:*:*:any\n";
        assert_eq!(
            pgpass_lookup(text, "db:x", "5432", "inv", "bob").as_deref(),
            Some("yes:1")
        );
        assert_eq!(
            pgpass_lookup(text, "else", "1", "d", "u").as_deref(),
            Some("any")
        );
        assert_eq!(pgpass_lookup("h:1:d:u:p\n", "h", "2", "d", "u"), None);
    }
}
