//! Portolan's own subcommands (`portolan diff`, `portolan history`, ...), beside Nmap's
//! command line. Each lives in a module of its own and is listed in [`COMMANDS`] with the
//! function that runs it and returns its exit code.

use std::process::ExitCode;

/// A subcommand: its word, and what runs it on the words after it.
type Command = (&'static str, fn(&[String]) -> ExitCode);

/// Every subcommand.
const COMMANDS: &[Command] = &[("diff", crate::diff_cmd::run)];

/// Runs the subcommand named `word` with `args`, or returns None when `word` names none
/// (the words are then Nmap's command line).
pub fn dispatch(word: &str, args: &[String]) -> Option<ExitCode> {
    COMMANDS
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(_, run)| run(args))
}
