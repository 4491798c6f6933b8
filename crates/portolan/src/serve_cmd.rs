//! `portolan serve`: the read-only web view of the history store (crates/portolan-web,
//! docs/serve.md), on loopback unless `--auth FILE` is given.

use crate::commands::subargs::{self, Opt, Spec};
use std::path::PathBuf;
use std::process::ExitCode;

const LISTEN: Opt = Opt::value(
    "listen",
    "ADDR:PORT",
    "where to listen (default 127.0.0.1:8080); any non-loopback address needs --auth",
);
const AUTH: Opt = Opt::value(
    "auth",
    "FILE",
    "credentials: lines `token TOKEN` or `user NAME $argon2id$...` (docs/serve.md)",
);
const HASH_PASSWORD: Opt = Opt::value(
    "hash-password",
    "NAME",
    "read a password (one line) from standard input and print the --auth line for user NAME",
);

pub const SPEC: Spec = Spec {
    name: "serve",
    summary: "a read-only web view and JSON API over the history store",
    usage: &[
        "[--db PATH] [--listen ADDR:PORT] [--auth FILE]",
        "--hash-password NAME < password",
    ],
    about: "Serves the history store as web pages (overview, hosts, host timelines, \
            changes, scans and their diffs)\nand the JSON behind each under /api/. \
            Nothing is ever written. Ctrl-C stops it.",
    opts: &[subargs::DB, LISTEN, AUTH, HASH_PASSWORD],
    operands: false,
    footer: "\
The history store is --db PATH, else $PORTOLAN_DB; it must exist. PATH may be a
PostgreSQL URL (postgres://USER@HOST/DB), read through read-only sessions.
Exit status: 0 stopped, 1 the server failed, 2 bad usage, a refused address or an unreadable
store or auth file.",
};

fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("portolan: {msg}");
    ExitCode::from(code)
}

/// `portolan serve`.
pub fn run(args: &[String]) -> ExitCode {
    let p = match subargs::parse_or_exit(&SPEC, args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(name) = p.value(&HASH_PASSWORD) {
        return hash_password(name);
    }
    let Some(db) = p.db() else {
        return fail(
            format!(
                "no history store: give --db PATH or set {}",
                subargs::DB_ENV
            ),
            2,
        );
    };
    let listen_text = p.value(&LISTEN).unwrap_or(portolan_web::DEFAULT_LISTEN);
    let Ok(listen) = listen_text.parse() else {
        return subargs::usage_error(
            &SPEC,
            format!("--listen {listen_text:?}: not ADDR:PORT (127.0.0.1:8080, [::1]:8080)"),
        );
    };
    let cfg = portolan_web::Config {
        db: PathBuf::from(db),
        listen,
        auth: p.value(&AUTH).map(PathBuf::from),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e, 1),
    };
    match rt.block_on(portolan_web::serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ portolan_web::WebError::Listen { .. }) => fail(e, 1),
        Err(e) => fail(e, 2),
    }
}

/// `--hash-password NAME`: the password is the first line of standard input (so it is
/// never an argument others can see in `ps`, nor in the shell's history).
fn hash_password(name: &str) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        return fail(format!("--hash-password: cannot read the password: {e}"), 2);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    match portolan_web::auth::hash_password(name, password) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("--hash-password: {e}"), 2),
    }
}
