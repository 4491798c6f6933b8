//! `portolan diff OLD NEW`: Ndiff's comparison of two scans, built in.
//!
//! Reads Nmap's XML or ours, or our JSON (told apart by the first byte that is not blank),
//! and writes Ndiff's text (default) or XML form, or our JSON. Exit status as Ndiff's:
//! 0 the scans are the same, 1 they differ, 2 an error (the message names the file and line).

use std::io::Write;
use std::process::ExitCode;

use portolan_report::diff::{self, DiffOptions};
use portolan_report::read_any;

const EXIT_EQUAL: u8 = 0;
const EXIT_DIFFERENT: u8 = 1;
const EXIT_ERROR: u8 = 2;

const HELP: &str = "\
Usage: portolan diff [option] FILE1 FILE2
       portolan diff [option] --db PATH --last
Compare two scans (Nmap XML files, or Portolan's XML or JSON) and display a list of
their differences, as Ndiff does. Differences include host state changes, port state
changes, and changes to service detection and script output.

  -h, --help     display this help
  -v, --verbose  also show hosts and ports that haven't changed.
  --text         display output in text format (default)
  --xml          display output in XML format (Ndiff's)
  --json         display output in Portolan's JSON format (see docs/diff.md)
  --db PATH      the history store (default: $PORTOLAN_DB), with --last:
  --last         compare the two most recent complete scans of the same targets

Exit status: 0 if the scans are the same, 1 if they differ, 2 on error.
";

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
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        verbose: false,
        format: Format::Text,
        files: Vec::new(),
        help: false,
        db: None,
        last: false,
    };
    let mut format: Option<Format> = None;
    let mut set = |f: Format| -> Result<(), String> {
        match format {
            Some(prev) if prev != f => Err("contradictory output format options.".into()),
            _ => {
                format = Some(f);
                Ok(())
            }
        }
    };
    let mut only_files = false;
    let mut words = args.iter();
    while let Some(a) = words.next() {
        if only_files || a == "-" || !a.starts_with('-') {
            out.files.push(a.clone());
            continue;
        }
        match a.as_str() {
            "--" => only_files = true,
            "-h" | "--help" => out.help = true,
            "-v" | "--verbose" => out.verbose = true,
            "--text" => set(Format::Text)?,
            "--xml" => set(Format::Xml)?,
            "--json" => set(Format::Json)?,
            "--last" => out.last = true,
            "--db" => match words.next() {
                Some(p) => out.db = Some(p.clone()),
                None => return Err("--db needs a path.".into()),
            },
            s if s.starts_with("--db=") => out.db = Some(s["--db=".len()..].to_string()),
            s if s.starts_with("--") => return Err(format!("option {s} not recognized")),
            s => {
                // Bundled short options: -vh.
                for c in s[1..].chars() {
                    match c {
                        'h' => out.help = true,
                        'v' => out.verbose = true,
                        c => return Err(format!("option -{c} not recognized")),
                    }
                }
            }
        }
    }
    out.format = format.unwrap_or(Format::Text);
    if out.last {
        if !out.files.is_empty() {
            return Err("--last compares scans from the store: give no files.".into());
        }
        out.db = crate::store_cmd::db_path(out.db.as_deref());
        if out.db.is_none() {
            return Err("--last needs --db PATH (or PORTOLAN_DB).".into());
        }
    } else if !out.help && out.files.len() != 2 {
        return Err("need exactly two input filenames.".into());
    }
    Ok(out)
}

pub fn run(args: &[String]) -> ExitCode {
    let args = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("portolan diff: {e}");
            eprintln!("Try 'portolan diff -h' for help.");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if args.help {
        print!("{HELP}");
        return ExitCode::from(EXIT_EQUAL);
    }
    let mut scans = Vec::with_capacity(2);
    if let (true, Some(db)) = (args.last, &args.db) {
        let two = portolan_store::Store::open(db).and_then(|s| s.last_two_of_same_targets(None));
        match two {
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
        match read_any(f) {
            Ok(s) => scans.push(s),
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
