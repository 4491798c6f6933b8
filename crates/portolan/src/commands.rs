//! Portolan's own subcommands (`portolan diff`, `portolan history`, ...), beside Nmap's
//! command line. Each lives in a module of its own, declares its options as a
//! [`subargs::Spec`] (one parser for all of them, and their `--help`), and is listed in
//! [`COMMANDS`] with the function that runs it and returns its exit code.

mod check;
pub mod subargs;

use std::process::ExitCode;
use subargs::Spec;

/// A subcommand: its spec (word, options, help), and what runs it on the words after it.
type Command = (&'static Spec, fn(&[String]) -> ExitCode);

/// Every subcommand, in the order the top-level `--help` lists them.
const COMMANDS: &[Command] = &[
    // Two scan files compared as Ndiff compares them (docs/diff.md).
    (&crate::diff_cmd::SPEC, crate::diff_cmd::run),
    // Baseline policies: every violation in a scan file (docs/policy.md).
    (&check::SPEC, check::run),
    (&crate::store_cmd::IMPORT, crate::store_cmd::import),
    (&crate::store_cmd::HISTORY, crate::store_cmd::history),
    (&crate::store_cmd::CHANGES, crate::store_cmd::changes),
    (&crate::store_cmd::HOSTS, crate::store_cmd::hosts),
    (&crate::store_cmd::SERVICES, crate::store_cmd::services),
    // The store as web pages and JSON (docs/serve.md).
    (&crate::serve_cmd::SPEC, crate::serve_cmd::run),
    // The offline vulnerability database and the findings of a scan (docs/vulns.md).
    (&crate::vulns_cmd::VULNDB_SPEC, crate::vulns_cmd::vulndb),
    (&crate::vulns_cmd::VULNS_SPEC, crate::vulns_cmd::vulns),
];

/// Runs the subcommand named `word` with `args`, or returns None when `word` names none
/// (the words are then Nmap's command line).
pub fn dispatch(word: &str, args: &[String]) -> Option<ExitCode> {
    COMMANDS
        .iter()
        .find(|(spec, _)| spec.name == word)
        .map(|(_, run)| run(args))
}

/// Every subcommand's spec, in the order `--help` lists them (for the man page and the
/// completions).
pub fn specs() -> impl Iterator<Item = &'static Spec> {
    COMMANDS.iter().map(|(spec, _)| *spec)
}

/// The subcommands for the top-level `--help`: one line each.
pub fn summary() -> String {
    let width = COMMANDS
        .iter()
        .map(|(s, _)| s.name.len())
        .max()
        .unwrap_or(0);
    COMMANDS
        .iter()
        .map(|(s, _)| format!("  {:<width$}  {}\n", s.name, s.summary))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_help_and_a_line_in_the_summary() {
        let summary = summary();
        for (spec, _) in COMMANDS {
            let line = format!("  {}  ", spec.name);
            assert!(
                summary.lines().any(|l| l.starts_with(line.trim_end())),
                "{summary}"
            );
            let help = subargs::help(spec);
            assert!(help.starts_with(&format!("Usage: portolan {} ", spec.name)));
            for o in spec.opts {
                assert!(help.contains(&format!("--{}", o.long)), "{help}");
            }
        }
        assert_eq!(summary.lines().count(), COMMANDS.len());
    }
}
