//! `portolan`: Nmap's command line in front of Portolan's engine.
//!
//! Flow: parse the words (no side effects) → resolve them into the engine's plan (targets,
//! ports, timing, data files) → open every output and the store ([`outputs`]), so every
//! error is reported before a packet leaves → run the scan in the engine, which pushes each
//! finished host to every output → close outputs validly, even on Ctrl-C.

mod args;
mod commands;
mod diff_cmd;
mod flags;
mod generate;
mod outname;
mod outputs;
mod plan;
mod progress;
mod run;
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
    let resolved = plan::Resolved::resolve(&opts, &argv)
        .and_then(|r| outputs::open(&opts, &r.plan.out_opts, &r.start).map(|sink| (r, sink)));
    let (resolved, sink) = match resolved {
        Ok(p) => p,
        Err(e) => {
            eprintln!("portolan: {e:#}");
            eprintln!("QUITTING!");
            return ExitCode::from(2);
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
    match rt.block_on(run::run(resolved, sink)) {
        // The store failed mid-scan (said then): the outputs are complete, the record not.
        Ok(run::Ended::Completed) if outputs::store_failed() => ExitCode::from(1),
        Ok(run::Ended::Completed) => ExitCode::SUCCESS,
        Ok(run::Ended::Interrupted) => ExitCode::from(130),
        Err(e) => {
            eprintln!("portolan: {e:#}");
            ExitCode::from(1)
        }
    }
}
