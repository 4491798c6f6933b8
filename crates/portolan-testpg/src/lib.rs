//! Tests only: a throwaway PostgreSQL cluster for the tests of the PostgreSQL store, in any
//! crate. [`TestPg::shared`] starts one per test process (initdb and the server run as the
//! `postgres` user, since PostgreSQL refuses to run as root), listening on 127.0.0.1 at a
//! free port and on a unix socket in its temporary directory, with TLS on (a self-signed
//! certificate made here, [`TestPg::ca_cert`]) and password authentication over TCP. Each
//! test takes a database of its own ([`TestPg::fresh_db`]). A watcher stops the server and
//! removes its directory once the test process has exited, however it ended.
//!
//! Without root or without PostgreSQL's binaries (`/usr/lib/postgresql/*/bin`, package
//! `postgresql`), [`TestPg::shared`] says "skipped" and gives None, unless
//! `PORTOLAN_PG=required` (set by scripts/test.sh as root), where it panics instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// A running cluster.
pub struct TestPg {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    next: AtomicU32,
}

/// Runs `cmd`, its error output in the error.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `prog` run as the postgres user.
fn as_postgres(prog: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(prog);
    c
}

/// The newest PostgreSQL's binaries.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl TestPg {
    /// The test process's cluster, started on first use; None (after saying "skipped") when
    /// this machine cannot run one and PostgreSQL tests are not required.
    pub fn shared() -> Option<&'static TestPg> {
        static SHARED: OnceLock<Option<TestPg>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let required = std::env::var("PORTOLAN_PG").as_deref() == Ok("required");
                match TestPg::start() {
                    Ok(pg) => Some(pg),
                    Err(why) if required => panic!("PORTOLAN_PG=required: {why}"),
                    Err(why) => {
                        eprintln!("skipped: PostgreSQL tests need root and PostgreSQL ({why})");
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Starts a new cluster (see the crate's docs).
    pub fn start() -> Result<TestPg, String> {
        if !is_root() {
            return Err("not root".into());
        }
        let bin = pg_bin().ok_or("no /usr/lib/postgresql/*/bin/initdb")?;
        let dir = tempfile::Builder::new()
            .prefix("portolan-testpg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let data = dir.join("data");
        // A password nobody guesses, without a random-number crate.
        let password = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u32(std::process::id());
            format!("pw{:016x}", h.finish())
        };
        std::fs::write(dir.join("pw"), &password).map_err(|e| e.to_string())?;
        run(Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(&dir))?;
        run(as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth-local=trust"])
            .args(["--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", dir.join("pw").display())))?;
        // TLS: a self-signed certificate for 127.0.0.1 and localhost, its own authority.
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(data.join("server.key"))
            .arg("-out")
            .arg(data.join("server.crt")))?;
        std::fs::copy(data.join("server.crt"), dir.join("ca.crt")).map_err(|e| e.to_string())?;
        run(Command::new("chown")
            .arg("postgres:postgres")
            .arg(data.join("server.key"))
            .arg(data.join("server.crt")))?;
        run(Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key")))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c ssl=on -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        // The watcher first, so that nothing outlives the test process.
        let stop = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; \
             setpriv --reuid=postgres --regid=postgres --init-groups -- \
             {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display()
        );
        Command::new("setsid")
            .args(["sh", "-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        run(as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-o", &opts, "start"])
            .stdout(Stdio::null()))
        .map_err(|e| {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            format!("{e}\n{log}")
        })?;
        Ok(TestPg {
            dir,
            bin,
            port,
            password,
            next: AtomicU32::new(0),
        })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser `postgres`'s password (TCP connections need it).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The directory of the unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's certificate, which is its own authority (for `sslrootcert`).
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A URL of database `db` over the unix socket (no password needed).
    pub fn url(&self, db: &str) -> String {
        let sock = self.dir.to_string_lossy().replace('/', "%2F");
        format!("postgresql://postgres@{sock}:{}/{db}", self.port)
    }

    /// A URL of database `db` over TCP on 127.0.0.1, with the password when `password`.
    pub fn tcp_url(&self, db: &str, password: bool) -> String {
        let user = if password {
            format!("postgres:{}", self.password)
        } else {
            "postgres".into()
        };
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL in database `db` with psql, as the superuser; its output, unaligned.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        run(Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]))
    }

    /// Creates a new empty database (its name made from `name`, unique in the cluster) and
    /// gives its socket URL.
    pub fn fresh_db(&self, name: &str) -> String {
        let db = self.fresh_db_name(name);
        self.url(&db)
    }

    /// Creates a new empty database as [`TestPg::fresh_db`] does and gives its name.
    pub fn fresh_db_name(&self, name: &str) -> String {
        let clean: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let db = format!("{clean}_{}", self.next.fetch_add(1, Ordering::Relaxed));
        if let Err(e) = self.psql("postgres", &format!("CREATE DATABASE \"{db}\"")) {
            panic!("cannot create test database {db}: {e}");
        }
        db
    }
}
