//! The one argument parser of Portolan's own subcommands (`diff`, `check`, `import`, ...),
//! as flags.rs is the one definition of Nmap's grammar. Each command declares a [`Spec`]:
//! its usage lines and its options (name, value or not, help); this module parses the words
//! after the command word against it, answers `-h`/`--help` with the help text generated
//! from it, and words the usage errors. The history store option `--db` and its
//! `PORTOLAN_DB` fallback are defined here once, for every command (and the scan's `--db`).
//!
//! The grammar, GNU-like and the same for every command: `--name`, `--name VALUE`,
//! `--name=VALUE`; short options (`-v`, bundled `-vh`, `-xVALUE`/`-x VALUE` when one takes a
//! value); options and operands in any order; `-` is an operand; `--` ends the options.

use std::fmt::Display;
use std::process::ExitCode;

/// An option of a subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    /// Without its dashes: `db`, `policy`.
    pub long: &'static str,
    pub short: Option<char>,
    /// What its value is called in the help (`PATH`); `None` for a switch.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

impl Opt {
    /// An option without a value.
    pub const fn switch(long: &'static str, help: &'static str) -> Opt {
        Opt {
            long,
            short: None,
            value: None,
            help,
        }
    }

    /// An option with a value, named `metavar` in the help.
    pub const fn value(long: &'static str, metavar: &'static str, help: &'static str) -> Opt {
        Opt {
            long,
            short: None,
            value: Some(metavar),
            help,
        }
    }

    /// The same option, also spelled `-c`.
    pub const fn short(self, c: char) -> Opt {
        Opt {
            short: Some(c),
            ..self
        }
    }

    /// The same option with the help line of a command that reads it its own way.
    pub const fn help(self, help: &'static str) -> Opt {
        Opt { help, ..self }
    }
}

/// `-h`, `--help`: every command has it, first in its help.
pub const HELP: Opt = Opt::switch("help", "display this help").short('h');

/// `--db PATH`: the history store. Commands give it their own help line with
/// [`Opt::help`]; [`Parsed::db`] applies the `PORTOLAN_DB` fallback.
pub const DB: Opt = Opt::value("db", "PATH", "the history store (default: $PORTOLAN_DB)");

/// `--json`: the answer as JSON.
pub const JSON: Opt = Opt::switch("json", "print JSON instead of a table");

/// The environment variable naming the history store when `--db` is not given.
pub const DB_ENV: &str = "PORTOLAN_DB";

/// The history store: `--db PATH` (`flag`), else `PORTOLAN_DB`, else none. The one place
/// the fallback is decided, for the subcommands and for a scan's `--db`.
pub fn db_path(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var(DB_ENV).ok().filter(|s| !s.is_empty()))
}

/// A subcommand's declaration: what its help says and which options it takes.
#[derive(Debug)]
pub struct Spec {
    /// The command word: `diff`.
    pub name: &'static str,
    /// One line for the top-level `--help`.
    pub summary: &'static str,
    /// What follows `portolan NAME` on each usage line.
    pub usage: &'static [&'static str],
    /// What the command does, after the usage lines.
    pub about: &'static str,
    /// Its options, besides [`HELP`].
    pub opts: &'static [Opt],
    /// Whether it takes operands (files); a word that is not an option is refused if not.
    pub operands: bool,
    /// After the options: exit status and the like.
    pub footer: &'static str,
}

/// A usage error: the option as written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubError {
    #[error("unknown option {0}")]
    Unknown(String),
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("option {0} doesn't take a value")]
    UnexpectedValue(String),
    #[error("unexpected argument {0:?}")]
    UnexpectedArgument(String),
}

/// `--run N`: which run of a file written with `--append-output` a command reads.
pub const RUN: Opt = Opt::value(
    "run",
    "N",
    "in a file holding several runs (--append-output), use run N (1 is the oldest; default: the last)",
);

/// Why no run could be picked.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    #[error("{0}")]
    Read(#[from] portolan_report::ReadError),
    #[error("--run {want}: the file holds {count} run{}", if *count == 1 { "" } else { "s" })]
    NoSuchRun { want: usize, count: usize },
}

/// The value of `--run`: None when not given (the last run).
pub fn run_number(p: &Parsed) -> Result<Option<usize>, String> {
    match p.value(&RUN) {
        None => Ok(None),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!(
                "--run {v:?}: give a run number, 1 for the oldest run in the file"
            )),
        },
    }
}

/// The words of a command line, parsed against its [`Spec`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Every option given, in order, by its long name, with its value.
    given: Vec<(&'static str, Option<String>)>,
    /// The words that are not options, in order.
    pub operands: Vec<String>,
    /// `-h` or `--help` was given.
    pub help: bool,
}

impl Parsed {
    /// Whether the option was given.
    pub fn flag(&self, opt: &Opt) -> bool {
        self.given.iter().any(|(n, _)| *n == opt.long)
    }

    /// The option's value, the last one when it was given more than once.
    pub fn value(&self, opt: &Opt) -> Option<&str> {
        self.given
            .iter()
            .rev()
            .find(|(n, _)| *n == opt.long)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The options given, by long name, in order.
    pub fn given(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.given.iter().map(|(n, _)| *n)
    }

    /// The history store: `--db PATH`, else `PORTOLAN_DB`.
    pub fn db(&self) -> Option<String> {
        db_path(self.value(&DB))
    }
}

/// Parses the words after the command word.
pub fn parse(spec: &Spec, args: &[String]) -> Result<Parsed, SubError> {
    let mut out = Parsed::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            out.operands.extend(words.by_ref().cloned());
            break;
        }
        if let Some(body) = word.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let opt = find(spec, |o| o.long == name)
                .ok_or_else(|| SubError::Unknown(format!("--{name}")))?;
            let value = match (opt.value, inline) {
                (None, Some(_)) => return Err(SubError::UnexpectedValue(format!("--{name}"))),
                (None, None) => None,
                (Some(_), Some(v)) => Some(v),
                (Some(_), None) => Some(
                    words
                        .next()
                        .cloned()
                        .ok_or_else(|| SubError::MissingValue(format!("--{name}")))?,
                ),
            };
            out.record(opt, value);
            continue;
        }
        let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) else {
            out.operands.push(word.clone());
            continue;
        };
        // Bundled short options (-vh); one that takes a value takes the rest of the word,
        // or the next word.
        for (at, c) in shorts.char_indices() {
            let opt = find(spec, |o| o.short == Some(c))
                .ok_or_else(|| SubError::Unknown(format!("-{c}")))?;
            if opt.value.is_none() {
                out.record(opt, None);
                continue;
            }
            let rest = &shorts[at + c.len_utf8()..];
            let value = if rest.is_empty() {
                words
                    .next()
                    .cloned()
                    .ok_or_else(|| SubError::MissingValue(format!("-{c}")))?
            } else {
                rest.to_string()
            };
            out.record(opt, Some(value));
            break;
        }
    }
    match out.operands.first() {
        Some(word) if !spec.operands => Err(SubError::UnexpectedArgument(word.clone())),
        _ => Ok(out),
    }
}

fn find(spec: &Spec, matches: impl Fn(&Opt) -> bool) -> Option<&Opt> {
    std::iter::once(&HELP).chain(spec.opts).find(|o| matches(o))
}

impl Parsed {
    fn record(&mut self, opt: &Opt, value: Option<String>) {
        if opt.long == HELP.long {
            self.help = true;
        } else {
            self.given.push((opt.long, value));
        }
    }
}

/// The command's `--help`, generated from its spec.
pub fn help(spec: &Spec) -> String {
    let mut out = String::new();
    for (i, usage) in spec.usage.iter().enumerate() {
        let lead = if i == 0 { "Usage:" } else { "      " };
        out.push_str(&format!("{lead} portolan {} {usage}\n", spec.name));
    }
    out.push('\n');
    out.push_str(spec.about.trim());
    out.push_str("\n\n");
    let left = |o: &Opt| {
        let mut s = match o.short {
            Some(c) => format!("-{c}, --{}", o.long),
            None => format!("--{}", o.long),
        };
        if let Some(v) = o.value {
            s.push(' ');
            s.push_str(v);
        }
        s
    };
    let opts: Vec<&Opt> = std::iter::once(&HELP).chain(spec.opts).collect();
    let width = opts.iter().map(|o| left(o).len()).max().unwrap_or(0);
    for o in opts {
        out.push_str(&format!("  {:<width$}  {}\n", left(o), o.help));
    }
    if !spec.footer.is_empty() {
        out.push('\n');
        out.push_str(spec.footer);
        out.push('\n');
    }
    out
}

/// Reports a usage error of the command (exit 2), pointing at its help.
pub fn usage_error(spec: &Spec, msg: impl Display) -> ExitCode {
    eprintln!("portolan {}: {msg}", spec.name);
    eprintln!("Try 'portolan {} --help' for help.", spec.name);
    ExitCode::from(2)
}

/// Parses the words as [`parse`] does, for a command's `run`: Err is the exit code, the
/// help printed (0) or the usage error reported (2).
pub fn parse_or_exit(spec: &Spec, args: &[String]) -> Result<Parsed, ExitCode> {
    match parse(spec, args) {
        Ok(p) if p.help => {
            print!("{}", help(spec));
            Err(ExitCode::SUCCESS)
        }
        Ok(p) => Ok(p),
        Err(e) => Err(usage_error(spec, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Opt = Opt::value("policy", "FILE", "the policy");
    const VERBOSE: Opt = Opt::switch("verbose", "say more").short('v');
    const LEVEL: Opt = Opt::value("level", "N", "how much").short('l');

    const SPEC: Spec = Spec {
        name: "demo",
        summary: "a command for the tests",
        usage: &["[-v] --policy FILE SCAN", "--db PATH"],
        about: "Does nothing, carefully.",
        opts: &[POLICY, VERBOSE, LEVEL, DB, JSON],
        operands: true,
        footer: "Exit status: 0.",
    };

    fn p(line: &str) -> Result<Parsed, SubError> {
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse(&SPEC, &words)
    }

    #[test]
    fn long_short_bundled_and_attached() {
        let a = p("scan.xml --policy p.toml -v --db=h.db - --json").unwrap();
        assert_eq!(a.value(&POLICY), Some("p.toml"));
        assert_eq!(a.value(&DB), Some("h.db"));
        assert!(a.flag(&VERBOSE) && a.flag(&JSON) && !a.help);
        assert_eq!(a.operands, vec!["scan.xml", "-"]);
        assert_eq!(
            a.given().collect::<Vec<_>>(),
            vec!["policy", "verbose", "db", "json"]
        );
        let b = p("-vh -l3 --policy a --policy b").unwrap();
        assert!(b.help && b.flag(&VERBOSE));
        assert_eq!(b.value(&LEVEL), Some("3"));
        assert_eq!(b.value(&POLICY), Some("b"), "the last one wins");
        assert_eq!(p("-vl 4").unwrap().value(&LEVEL), Some("4"));
        assert_eq!(p("--policy -v").unwrap().value(&POLICY), Some("-v"));
        assert_eq!(p("-- -v --x").unwrap().operands, vec!["-v", "--x"]);
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(p("--bogus"), Err(SubError::Unknown("--bogus".into())));
        assert_eq!(p("-vx"), Err(SubError::Unknown("-x".into())));
        assert_eq!(p("--polic x"), Err(SubError::Unknown("--polic".into())));
        assert_eq!(
            p("--policy"),
            Err(SubError::MissingValue("--policy".into()))
        );
        assert_eq!(p("-l"), Err(SubError::MissingValue("-l".into())));
        assert_eq!(
            p("--json=yes"),
            Err(SubError::UnexpectedValue("--json".into()))
        );
        assert_eq!(
            SubError::MissingValue("--policy".into()).to_string(),
            "option --policy needs a value"
        );
        assert_eq!(p("-é"), Err(SubError::Unknown("-é".into())));
    }

    #[test]
    fn operands_only_where_the_command_takes_them() {
        const NONE: Spec = Spec {
            operands: false,
            ..SPEC
        };
        let w = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert!(parse(&NONE, &w("--json -v")).is_ok());
        assert_eq!(
            parse(&NONE, &w("--json extra")),
            Err(SubError::UnexpectedArgument("extra".into()))
        );
        assert!(parse(&NONE, &w("-- -v")).is_err());
    }

    #[test]
    fn help_is_generated_from_the_spec() {
        let h = help(&SPEC);
        assert!(h.starts_with(
            "Usage: portolan demo [-v] --policy FILE SCAN\n       portolan demo --db PATH\n\n\
             Does nothing, carefully.\n\n  -h, --help"
        ));
        for line in [
            "  -h, --help     display this help",
            "  --policy FILE  the policy",
            "  -v, --verbose  say more",
            "  -l, --level N  how much",
            "  --db PATH      the history store (default: $PORTOLAN_DB)",
        ] {
            assert!(h.lines().any(|l| l == line), "{line:?} not in\n{h}");
        }
        assert!(h.ends_with("\nExit status: 0.\n"));
    }

    #[test]
    fn db_falls_back_to_the_environment_only_without_the_flag() {
        // The environment is not touched (tests run in parallel): only the flag's side.
        assert_eq!(db_path(Some("h.db")), Some("h.db".into()));
        assert_eq!(p("--db x.db").unwrap().db(), Some("x.db".into()));
    }
}
