//! `portolan`: Nmap's command line in front of Portolan's engine.
//!
//! Flow: parse the words (no side effects) → resolve them into the engine's plan (targets,
//! ports, timing, data files) → open every output and the store ([`outputs`]), so every
//! error is reported before a packet leaves → run the scan in the engine, which pushes each
//! finished host to every output → close outputs validly, even on Ctrl-C. A scan run as
//! root drops root between the opening of the outputs and the scan ([`privs`]).

mod args;
mod audit;
mod commands;
mod diff_cmd;
mod flags;
mod generate;
mod iflist;
mod outname;
mod outputs;
mod plan;
mod privs;
mod progress;
mod resume;
mod run;
mod scope;
mod scripts;
mod serve_cmd;
mod shard_id;
mod store_cmd;
mod vulns_cmd;

use anyhow::Context;
use std::process::ExitCode;

/// How long the end of the process waits for work still running in the background (a
/// reverse lookup an interrupt left behind) before it exits anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// The words of the command line; a word that is not UTF-8 is an error naming it.
fn utf8_args(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Vec<String>, String> {
    args.enumerate()
        .map(|(i, a)| {
            a.into_string().map_err(|bad| {
                format!(
                    "argument {i} ({}) is not valid UTF-8",
                    bad.to_string_lossy().escape_debug()
                )
            })
        })
        .collect()
}

fn main() -> ExitCode {
    let argv: Vec<String> = match utf8_args(std::env::args_os()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("portolan: {e}");
            eprintln!("QUITTING!");
            return ExitCode::from(2);
        }
    };
    // `portolan diff ...`, `portolan history ...`: Portolan's own commands, before Nmap's
    // grammar (no Nmap target is spelled like a command word).
    if let Some(code) = argv
        .get(1)
        .and_then(|word| commands::dispatch(word, &argv[2..]))
    {
        return code;
    }
    let opts = match args::parse(argv.iter().skip(1).cloned()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("portolan: {e}");
            eprintln!("QUITTING!");
            return ExitCode::from(2);
        }
    };
    if let Some(kind) = opts.generate {
        print!("{}", generate::generate(kind));
        return ExitCode::SUCCESS;
    }
    if opts.show_help || argv.len() == 1 {
        print!("{}", flags::help_text());
        return ExitCode::SUCCESS;
    }
    if opts.show_version {
        println!(
            "Portolan version {} ( a network mapper with Nmap's command line )",
            env!("CARGO_PKG_VERSION")
        );
        println!(
            "Platform: {}-{}",
            std::env::consts::ARCH,
            std::env::consts::OS
        );
        return ExitCode::SUCCESS;
    }
    // --iflist: Nmap prints the lists and ends, whatever else was asked.
    if opts.iflist {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        return match iflist::text(now) {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => quit(&e),
        };
    }
    // --script-help, and --script-updatedb without targets: the engine does it and the run
    // ends, as Nmap's.
    if opts.script_help.is_some()
        || (opts.script_updatedb && opts.targets.is_empty() && opts.input_file.is_none())
    {
        return match scripts::engine_only(&opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => quit(&e),
        };
    }
    // --resume FILE: the interrupted scan's own command line, run again for what is left.
    let (opts, prior) = match &opts.resume {
        None => (opts, None),
        Some(path) => match resume_options(&argv, path) {
            Ok((o, p)) => (o, Some(p)),
            Err(e) => return quit(&e),
        },
    };
    let mut resolved = match plan::Resolved::resolve(&opts, &argv) {
        Ok(r) => r,
        Err(e) => return quit(&e),
    };
    if let Some((source, p)) = prior {
        match p.apply(&mut resolved.plan) {
            Ok((finished, cut)) => eprintln!(
                "Resuming {source}: {finished} hosts finished are kept, {cut} cut short are scanned again"
            ),
            Err(e) => return quit(&e),
        }
    }
    // The audit line is begun, and the scope checked, before any output is opened.
    let scope_file = scope::scope_path(opts.scope.as_deref());
    let mut audit = audit::audit_path(opts.audit_log.as_deref())
        .filter(|_| !resolved.plan.dry_run)
        .map(|path| {
            let record =
                audit::Record::planned(&resolved.start, &resolved.plan, scope_file.clone());
            (audit::Log::open(path), record)
        });
    if let Some(path) = &scope_file {
        if let Err(e) = scope::Scope::load(path).and_then(|s| s.apply(&mut resolved.plan)) {
            finish_audit(&mut audit, format!("refused: {e:#}"), 2);
            return quit(&e);
        }
    }
    // Nmap's script engine loads (and checks the script selection) before any output is
    // opened or packet sent: an unknown script or missing Nmap install stops here.
    let nse = if scripts::wanted(&opts) && !resolved.plan.dry_run {
        let allowed = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        // Engine::new itself says where it looked when Nmap's scripts are not installed.
        let loaded =
            portolan_nse::Engine::new(scripts::config(&opts, &resolved.plan, allowed.clone()))
                .map_err(|e| anyhow::anyhow!("{e}"));
        match loaded {
            Ok(engine) => Some((engine, scripts::shown(&opts), allowed)),
            Err(e) => {
                finish_audit(&mut audit, format!("error: {e:#}"), 2);
                return quit(&e);
            }
        }
    } else {
        None
    };
    // --vulns: the database is opened (and checked) before any output or packet.
    let vulns = match (opts.vulns && !resolved.plan.dry_run)
        .then(|| vulns_cmd::open_for_scan(opts.vulndb.as_deref()))
        .transpose()
    {
        Ok(v) => v,
        Err(e) => {
            finish_audit(&mut audit, format!("error: {e:#}"), 2);
            return quit(&e);
        }
    };
    if vulns.is_some() && !opts.version {
        eprintln!("WARNING: --vulns without -sV: only services with a product and version are matched, and without -sV there are none");
    }
    let opened = match outputs::open(&opts, &resolved.start, resolved.shard_part.clone()) {
        Ok(opened) => opened,
        Err(e) => {
            finish_audit(&mut audit, format!("error: {e:#}"), 2);
            return quit(&e);
        }
    };
    // Everything that needs root is open: a scan run as root gives it up, while the
    // process has one thread (capabilities are per thread), before any packet leaves.
    if let Err(e) = privs::give_up_root(&opts) {
        opened.discard();
        finish_audit(&mut audit, format!("error: {e:#}"), 2);
        return quit(&e);
    }
    // Only now, with nothing left to refuse the scan, are existing files emptied.
    let sink = match opened.start(&resolved.plan.out_opts, &opts) {
        Ok(sink) => match vulns {
            Some(matcher) => portolan_model::Tee {
                sinks: vec![Box::new(vulns_cmd::VulnSink {
                    matcher,
                    inner: sink,
                })],
            },
            None => sink,
        },
        Err(e) => {
            finish_audit(&mut audit, format!("error: {e:#}"), 2);
            return quit(&e);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portolan: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // A second signal exits from within the run: the audit line is ended there.
    let audit = std::sync::Arc::new(std::sync::Mutex::new(audit));
    let at_exit: run::AtExit = {
        let audit = audit.clone();
        Box::new(move |outcome, code| {
            if let Ok(mut a) = audit.lock() {
                finish_audit(&mut a, outcome, code);
            }
        })
    };
    let ended = rt.block_on(run::run(resolved, sink, nse, at_exit));
    // Dropping the runtime would wait for every blocking task, e.g. a reverse lookup an
    // interrupt abandoned, which can take seconds: the outputs are closed already.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    let (outcome, code) = match ended {
        // The store failed mid-scan (said then): the outputs are complete, the record not.
        Ok(run::Ended::Completed) if outputs::store_failed() => {
            ("completed; the store failed".to_string(), 1)
        }
        Ok(run::Ended::Completed) => ("completed".to_string(), 0),
        Ok(run::Ended::Interrupted(sig)) => {
            (format!("interrupted by {}", sig.name()), sig.exit_code())
        }
        Err(e) => {
            eprintln!("portolan: {e:#}");
            (format!("error: {e:#}"), 1)
        }
    };
    if let Ok(mut a) = audit.lock() {
        finish_audit(&mut a, outcome, code);
    }
    ExitCode::from(code)
}

/// The options of the scan `--resume path` (or `--resume --db [PATH]`) continues (it takes
/// no other option, as in Nmap), what that scan had written, and where it came from.
fn resume_options(
    argv: &[String],
    path: &str,
) -> anyhow::Result<(args::Options, (String, resume::Prior))> {
    let rest: Vec<&String> = argv.iter().skip(1).collect();
    let (source, prior) = if path == "--db" {
        // `--resume --db [PATH]`: the store's latest incomplete scan.
        let db = match rest.as_slice() {
            [_, _] => store_cmd::db_path(None),
            [_, _, db] => Some(db.to_string()),
            _ => None,
        }
        .context("--resume --db needs the store's path (or PORTOLAN_DB), and no other option")?;
        (format!("--db {db}"), resume::load_from_store(&db)?)
    } else {
        let alone = match rest.first() {
            Some(a) if a.starts_with("--resume=") => rest.len() == 1,
            _ => rest.len() == 2,
        };
        if !alone {
            anyhow::bail!(
                "--resume takes no other option: it runs the interrupted scan's own command line"
            );
        }
        (path.to_string(), resume::load(path)?)
    };
    let opts = args::parse(prior.args.iter().cloned())
        .map_err(|e| anyhow::anyhow!("--resume {source}: its command line: {e}"))?;
    Ok((opts, (source, prior)))
}

/// Reports a user error before the scan, as Nmap does, and exits 2.
fn quit(e: &anyhow::Error) -> ExitCode {
    eprintln!("portolan: {e:#}");
    eprintln!("QUITTING!");
    ExitCode::from(2)
}

/// Ends the scan's audit line, if it keeps one; a log that cannot be written is said, and
/// does not change the scan's outcome.
fn finish_audit(audit: &mut Option<(audit::Log, audit::Record)>, outcome: String, code: u8) {
    if let Some((log, record)) = audit.as_mut() {
        record.finish(outcome, code);
        if let Err(e) = log.append(record) {
            eprintln!("WARNING: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    /// Regression: `portolan -sL $'\xff'` panicked (exit 101) in std::env::args.
    #[test]
    fn non_utf8_argument_is_an_error_not_a_panic() {
        let args = ["portolan", "-sL"]
            .map(std::ffi::OsString::from)
            .into_iter();
        let bad = std::ffi::OsString::from_vec(vec![0xff]);
        let e = utf8_args(args.chain([bad])).unwrap_err();
        assert!(e.contains("argument 2") && e.contains("UTF-8"), "{e}");
        let good = ["portolan", "-sL", "x"].map(std::ffi::OsString::from);
        assert_eq!(utf8_args(good.into_iter()).unwrap().len(), 3);
    }
}
