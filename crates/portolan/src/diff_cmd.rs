//! `portolan diff OLD NEW`: Ndiff's comparison of two scans, built in.
//!
//! Reads Nmap's XML or ours, or our JSON (told apart by the first byte that is not blank),
//! and writes Ndiff's text (default) or XML form, or our JSON. Exit status as Ndiff's:
//! 0 the scans are the same, 1 they differ, 2 an error (the message names the file and line).
//!
//! A file written with `--append-output` holds several runs: the last of each file is
//! compared unless `--run N` says which, and a note on stderr names the run compared.

use std::io::Write;
use std::process::ExitCode;

use crate::commands::subargs::{self, Opt, Spec, RUN};
use portolan_report::diff::{self, DiffOptions};

const EXIT_EQUAL: u8 = 0;
const EXIT_DIFFERENT: u8 = 1;
const EXIT_ERROR: u8 = 2;

/// `portolan diff`'s options: Ndiff's (-h, -v, --text, --xml) and ours.
const VERBOSE: Opt =
    Opt::switch("verbose", "also show hosts and ports that haven't changed.").short('v');
const TEXT: Opt = Opt::switch("text", "display output in text format (default)");
const XML: Opt = Opt::switch("xml", "display output in XML format (Ndiff's)");
const JSON: Opt = subargs::JSON.help("display output in Portolan's JSON format (see docs/diff.md)");
const LAST: Opt = Opt::switch(
    "last",
    "compare the two most recent complete scans of the same targets",
);

pub const SPEC: Spec = Spec {
    name: "diff",
    summary: "compare two scans as Ndiff does (files, or the last two in the history store)",
    usage: &[
        "[option] FILE1 FILE2",
        "[option] --run N FILE1 FILE2",
        "[option] --db PATH --last",
    ],
    about: "\
Compare two scans (Nmap XML files, or Portolan's XML or JSON) and display a list of
their differences, as Ndiff does. Differences include host state changes, port state
changes, and changes to service detection and script output.
In a file holding several runs (--append-output) the last is compared, unless --run N.
",
    opts: &[
        VERBOSE,
        TEXT,
        XML,
        JSON,
        subargs::DB.help("the history store (default: $PORTOLAN_DB), with --last:"),
        LAST,
        RUN.help(
            "in files holding several runs (--append-output), compare run N of each (1 is the oldest; default: the last)",
        ),
    ],
    operands: true,
    footer: "Exit status: 0 if the scans are the same, 1 if they differ, 2 on error.",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Xml,
    Json,
}

#[derive(Debug, PartialEq, Eq)]
struct Args {
    verbose: bool,
    format: Format,
    files: Vec<String>,
    help: bool,
    db: Option<String>,
    last: bool,
    /// `--run N` of each file (None: the last).
    run: Option<usize>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let p = subargs::parse(&SPEC, args).map_err(|e| e.to_string())?;
    let mut format: Option<Format> = None;
    for name in p.given() {
        let f = match name {
            n if n == TEXT.long => Format::Text,
            n if n == XML.long => Format::Xml,
            n if n == JSON.long => Format::Json,
            _ => continue,
        };
        match format {
            Some(prev) if prev != f => return Err("contradictory output format options.".into()),
            _ => format = Some(f),
        }
    }
    let last = p.flag(&LAST);
    let out = Args {
        verbose: p.flag(&VERBOSE),
        format: format.unwrap_or(Format::Text),
        help: p.help,
        db: if last { p.db() } else { None },
        last,
        run: subargs::run_number(&p)?,
        files: p.operands,
    };
    if out.help {
        return Ok(out);
    }
    if last {
        if !out.files.is_empty() {
            return Err("--last compares scans from the store: give no files.".into());
        }
        if out.run.is_some() {
            return Err("--run picks a run of each file: not with --last.".into());
        }
        if out.db.is_none() {
            return Err("--last needs --db PATH (or PORTOLAN_DB).".into());
        }
    } else if out.files.len() != 2 {
        return Err("need exactly two input filenames.".into());
    }
    Ok(out)
}

pub fn run(args: &[String]) -> ExitCode {
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => return subargs::usage_error(&SPEC, e),
    };
    if args.help {
        print!("{}", subargs::help(&SPEC));
        return ExitCode::from(EXIT_EQUAL);
    }
    let mut scans = Vec::with_capacity(2);
    if let (true, Some(db)) = (args.last, &args.db) {
        // Only read: a path where no store is is an error, never a new empty store.
        let store = match portolan_store::Store::open_existing(db) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("portolan diff: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        };
        match store.last_two_of_same_targets(None) {
            Ok(Some((old, new))) => scans.extend([old, new]),
            Ok(None) => {
                eprintln!("portolan diff: {db}: fewer than two complete scans of the same targets");
                return ExitCode::from(EXIT_ERROR);
            }
            Err(e) => {
                eprintln!("portolan diff: {db}: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    }
    for f in &args.files {
        match subargs::pick_run(f, args.run) {
            Ok(p) => {
                if p.count > 1 {
                    eprintln!(
                        "portolan diff: {f} holds {} runs (--append-output): comparing run {}{}, started {}: {}",
                        p.count,
                        p.index,
                        if p.index == p.count { ", the last" } else { "" },
                        p.run.start,
                        p.run.args
                    );
                }
                scans.push(p.run)
            }
            Err(e) => {
                eprintln!("portolan diff: {f}: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    }
    let d = diff::diff(
        &scans[0],
        &scans[1],
        DiffOptions {
            verbose: args.verbose,
        },
    );
    let text = match args.format {
        Format::Text => d.to_text(),
        Format::Xml => d.to_xml(),
        Format::Json => d.to_json() + "\n",
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("portolan diff: cannot write the output: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    }
    ExitCode::from(if d.changed() {
        EXIT_DIFFERENT
    } else {
        EXIT_EQUAL
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_as_ndiff_takes_them() {
        let a = parse(&words("a.xml -v b.xml --xml")).unwrap();
        assert!(a.verbose);
        assert_eq!(a.format, Format::Xml);
        assert_eq!(a.files, words("a.xml b.xml"));
        assert!(parse(&words("-h")).unwrap().help);
        assert!(parse(&words("a.xml")).is_err());
        assert!(parse(&words("--xml --text a b")).is_err());
        assert!(parse(&words("--bogus a b")).is_err());
        assert_eq!(parse(&words("-- -a b")).unwrap().files, words("-a b"));
    }
}
