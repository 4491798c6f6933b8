//! The scan's outputs, opened before any packet leaves: every `-o` file (or stdout), normal
//! output on stdout unless another output claimed it, and the history store (`--db`). They
//! are joined in one [`Tee`] that the engine pushes results into.

use crate::args::{Format, Options};
use crate::outname;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Local};
use portolan_model::{OutputOptions, Sink, Tee};
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};

/// Opens every output the options name (files are named with `start`, for `%D` and the
/// like) and the store; an error names the first that cannot be opened.
pub fn open(o: &Options, opts: &OutputOptions, start: &DateTime<Local>) -> Result<Tee> {
    let outputs = open_outputs(o, start)?;
    build_sink(outputs, opts, o)
}

/// An output destination, opened.
struct Output {
    format: Format,
    to_stdout: bool,
    file: Option<std::fs::File>,
}

fn open_outputs(o: &Options, start: &DateTime<Local>) -> Result<Vec<Output>> {
    let mut out = Vec::new();
    let mut stdout_taken = false;
    for (format, name) in &o.outputs {
        if name == "-" {
            if stdout_taken {
                bail!("only one output can go to stdout ('-')");
            }
            stdout_taken = true;
            out.push(Output {
                format: *format,
                to_stdout: true,
                file: None,
            });
            continue;
        }
        let path = outname::expand(name, start);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .append(o.append_output)
            .truncate(!o.append_output)
            .open(&path)
            .with_context(|| format!("cannot open output file {path:?} for writing"))?;
        out.push(Output {
            format: *format,
            to_stdout: false,
            file: Some(file),
        });
    }
    // Normal output goes to stdout unless some other output claimed it.
    if !stdout_taken {
        out.push(Output {
            format: Format::Normal,
            to_stdout: true,
            file: None,
        });
    }
    Ok(out)
}

fn build_sink(outputs: Vec<Output>, opts: &OutputOptions, o: &Options) -> Result<Tee> {
    let mut tee = Tee::default();
    let stylesheet = if o.no_stylesheet {
        None
    } else {
        Some(
            o.stylesheet
                .clone()
                .unwrap_or_else(|| portolan_report::xml::DEFAULT_STYLESHEET.to_string()),
        )
    };
    for out in outputs {
        let w: Box<dyn Write + Send> = match out.file {
            Some(f) => Box::new(BufWriter::new(f)),
            None => Box::new(std::io::stdout()),
        };
        let is_file = !out.to_stdout;
        let sink: Box<dyn Sink + Send> = match out.format {
            Format::Normal => Box::new(portolan_report::normal::NormalWriter::new(
                w,
                opts.clone(),
                is_file,
            )),
            Format::Xml => {
                let x = portolan_report::xml::XmlWriter::new(w, opts.clone())
                    .with_stylesheet(stylesheet.clone());
                Box::new(x)
            }
            Format::Grepable => Box::new(portolan_report::grepable::GrepableWriter::new(
                w,
                opts.clone(),
            )),
            Format::Json => Box::new(portolan_report::json::JsonWriter::new(w, opts.clone())),
            Format::Events => Box::new(portolan_report::events::EventsWriter::new(w, opts.clone())),
        };
        tee.sinks.push(sink);
    }
    // The history store, opened (and checked) before a packet leaves.
    if let Some(db) = crate::store_cmd::db_path(o.db.as_deref()).filter(|_| !o.dry_run) {
        let store = crate::store_cmd::StoreSink::open(&db, crate::store_cmd::targets_text(o))?;
        tee.sinks.push(Box::new(store));
    }
    Ok(tee)
}
