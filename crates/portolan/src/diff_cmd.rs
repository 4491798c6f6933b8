//! `portolan diff OLD NEW`: Ndiff's comparison of two scans, built in.
//!
//! Reads Nmap's XML or ours, or our JSON (told apart by the first byte that is not blank),
//! and writes Ndiff's text (default) or XML form, or our JSON. Exit status as Ndiff's:
//! 0 the scans are the same, 1 they differ, 2 an error (the message names the file and line).
//!
//! A file written with `--append-output` holds several runs: the last of each file is
//! compared unless `--run N` says which, and a note on stderr names the run compared.
//!
//! Files are compared streaming (portolan_report::diff::spool_run and write_diff): memory
//! stays near a host's and a sorting buffer's, whatever the files' size.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::process::ExitCode;

use crate::commands::subargs::{self, Opt, Spec, RUN};
use portolan_report::diff::{self, DiffFormat, DiffOptions};

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
    let opts = DiffOptions {
        verbose: args.verbose,
    };
    let result = match (&args.db, args.last) {
        (Some(db), true) => diff_store(db, opts, args.format),
        _ => diff_files(&args.files, args.run, opts, args.format),
    };
    match result {
        Ok(changed) => ExitCode::from(if changed { EXIT_DIFFERENT } else { EXIT_EQUAL }),
        Err(message) => {
            eprintln!("portolan diff: {message}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The last two complete scans of the same targets in the store, compared in memory.
fn diff_store(db: &str, opts: DiffOptions, format: Format) -> Result<bool, String> {
    // Only read: a path where no store is is an error, never a new empty store.
    let store = portolan_store::Store::open_existing(db).map_err(|e| e.to_string())?;
    // A sharded scan still missing parts is not a scan yet: say so, as `changes` does.
    for s in store.incomplete_sharded().unwrap_or_default() {
        eprintln!(
            "scan {} (round {}): {} of {} parts complete, not counted yet",
            s.scan_key,
            s.round,
            s.parts_complete(),
            s.parts
        );
    }
    let db = &portolan_store::pg::shown(db);
    let (old, new) = match store.last_two_of_same_targets(None) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            return Err(format!(
                "{db}: fewer than two complete scans of the same targets"
            ))
        }
        Err(e) => return Err(format!("{db}: {e}")),
    };
    let d = diff::diff(&old, &new, opts);
    let text = match format {
        Format::Text => d.to_text(),
        Format::Xml => d.to_xml(),
        Format::Json => d.to_json() + "\n",
    };
    let mut out = stdout();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| format!("cannot write the output: {e}"))?;
    Ok(d.changed())
}

/// Two files compared a pair of hosts at a time: each file's hosts are first sorted by
/// Ndiff's host id into a temporary file, so memory does not grow with the files.
fn diff_files(
    files: &[String],
    run: Option<usize>,
    opts: DiffOptions,
    format: Format,
) -> Result<bool, String> {
    let mut sides = Vec::with_capacity(2);
    for f in files {
        let side = File::open(f)
            .map_err(|e| diff::SpoolError::Read(e.into()))
            .and_then(|file| diff::spool_run(BufReader::new(file), run))
            .map_err(|e| format!("{f}: {e}"))?;
        if side.count > 1 {
            eprintln!(
                "portolan diff: {f} holds {} runs (--append-output): comparing run {}{}, started {}: {}",
                side.count,
                side.index,
                if side.index == side.count { ", the last" } else { "" },
                side.run.start,
                side.run.args
            );
        }
        sides.push(side);
    }
    let [a, b] = &sides[..] else {
        return Err("need exactly two input filenames.".into());
    };
    let format = match format {
        Format::Text => DiffFormat::Text,
        Format::Xml => DiffFormat::Xml,
        Format::Json => DiffFormat::Json,
    };
    let mut out = stdout();
    let changed = diff::write_diff(a, b, opts, format, &mut out).map_err(|e| e.to_string())?;
    out.flush()
        .map_err(|e| format!("cannot write the output: {e}"))?;
    Ok(changed)
}

/// Standard output, buffered; once the reader has gone (`| head`), the rest is dropped
/// quietly and the comparison still runs to its end for the exit status, as before.
fn stdout() -> BufWriter<Quiet<std::io::StdoutLock<'static>>> {
    BufWriter::with_capacity(
        64 << 10,
        Quiet {
            inner: std::io::stdout().lock(),
            gone: false,
        },
    )
}

struct Quiet<W> {
    inner: W,
    /// The pipe was closed.
    gone: bool,
}

impl<W: Write> Write for Quiet<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.gone {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(buf.len())
            }
            r => r,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.gone {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.gone = true;
                Ok(())
            }
            r => r,
        }
    }
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
