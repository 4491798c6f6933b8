//! `portolan`: Nmap's command line in front of Portolan's engine.
//!
//! Flow: parse the words (no side effects) → resolve them into the engine's plan (targets,
//! ports, timing, data files) → open every output and the store ([`outputs`]), so every
//! error is reported before a packet leaves → run the scan in the engine, which pushes each
//! finished host to every output → close outputs validly, even on Ctrl-C.

mod args;
mod audit;
mod commands;
mod diff_cmd;
mod flags;
mod generate;
mod outname;
mod outputs;
mod plan;
mod progress;
mod run;
mod scope;
mod store_cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
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
    let mut resolved = match plan::Resolved::resolve(&opts, &argv) {
        Ok(r) => r,
        Err(e) => return quit(&e),
    };
    // The audit line is begun, and the scope checked, before any output is opened.
    let scope_file = scope::scope_path(opts.scope.as_deref());
    let mut audit = audit::audit_path(opts.audit_log.as_deref())
        .filter(|_| !resolved.plan.dry_run)
        .map(|path| {
            let record =
                audit::Record::planned(&resolved.start, &resolved.plan, scope_file.clone());
            (path, record)
        });
    if let Some(path) = &scope_file {
        if let Err(e) = scope::Scope::load(path).and_then(|s| s.apply(&mut resolved.plan)) {
            finish_audit(&mut audit, format!("refused: {e:#}"), 2);
            return quit(&e);
        }
    }
    let sink = match outputs::open(&opts, &resolved.plan.out_opts, &resolved.start) {
        Ok(sink) => sink,
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
    let (outcome, code) = match rt.block_on(run::run(resolved, sink)) {
        // The store failed mid-scan (said then): the outputs are complete, the record not.
        Ok(run::Ended::Completed) if outputs::store_failed() => {
            ("completed; the store failed".to_string(), 1)
        }
        Ok(run::Ended::Completed) => ("completed".to_string(), 0),
        Ok(run::Ended::Interrupted) => ("interrupted".to_string(), 130),
        Err(e) => {
            eprintln!("portolan: {e:#}");
            (format!("error: {e:#}"), 1)
        }
    };
    finish_audit(&mut audit, outcome, code);
    ExitCode::from(code)
}

/// Reports a user error before the scan, as Nmap does, and exits 2.
fn quit(e: &anyhow::Error) -> ExitCode {
    eprintln!("portolan: {e:#}");
    eprintln!("QUITTING!");
    ExitCode::from(2)
}

/// Ends the scan's audit line, if it keeps one; a log that cannot be written is said, and
/// does not change the scan's outcome.
fn finish_audit(
    audit: &mut Option<(std::path::PathBuf, audit::Record)>,
    outcome: String,
    code: u8,
) {
    if let Some((path, record)) = audit.as_mut() {
        record.finish(outcome, code);
        if let Err(e) = audit::append(path, record) {
            eprintln!("WARNING: {e:#}");
        }
    }
}
