//! Portolan's own subcommands (`portolan diff`, `portolan history`, ...), beside Nmap's
//! command line. Each lives in a module of its own and is listed in [`COMMANDS`] with the
//! function that runs it and returns its exit code.

mod check;

use std::process::ExitCode;

/// A subcommand: its word, and what runs it on the words after it.
type Command = (&'static str, fn(&[String]) -> ExitCode);

/// Every subcommand.
const COMMANDS: &[Command] = &[
    // Two scan files compared as Ndiff compares them (docs/diff.md).
    ("diff", crate::diff_cmd::run),
    // Baseline policies: every violation in a scan file (docs/policy.md).
    ("check", check::run),
    ("import", crate::store_cmd::import),
    ("history", crate::store_cmd::history),
    ("changes", crate::store_cmd::changes),
    ("hosts", crate::store_cmd::hosts),
    ("services", crate::store_cmd::services),
];

/// Runs the subcommand named `word` with `args`, or returns None when `word` names none
/// (the words are then Nmap's command line).
pub fn dispatch(word: &str, args: &[String]) -> Option<ExitCode> {
    COMMANDS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, run)| run(args))
}
