//! The one way subcommands read a scan file: our JSON or XML (Nmap's or ours), told apart by
//! the first byte that is not white space, after a UTF-8 byte-order mark if there is one.
//!
//! Every command (`diff`, `check`, `import`, ...) goes through [`read_any`], so a file reads
//! the same way whichever command is given it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use portolan_model::ScanRun;

use crate::json;
use crate::xml_reader::{for_each_xml_run, stream_xml, ReadError, RunStream};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The formats [`read_any`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Portolan's JSON document (`-oJ`).
    Json,
    /// Nmap's XML (`-oX`, ours or Nmap's).
    Xml,
}

/// Reads a scan file, JSON or XML. A file written with `--append-output` holds several runs
/// (Nmap's appended XML is several `<nmaprun>` documents in one file); this is the last one,
/// the newest. [`read_all`] gives every run.
pub fn read_any(path: impl AsRef<Path>) -> Result<ScanRun, ReadError> {
    read_any_from(BufReader::new(File::open(path)?))
}

/// [`read_any`] on an open reader.
pub fn read_any_from(reader: impl BufRead) -> Result<ScanRun, ReadError> {
    let mut last = None;
    for_each_run_from(reader, |run| {
        last = Some(run);
        Ok(())
    })?;
    last.ok_or(ReadError::NoRoot { line: 1 })
}

/// Every run in a scan file, JSON or XML, oldest first (one for a file not appended to).
pub fn read_all(path: impl AsRef<Path>) -> Result<Vec<ScanRun>, ReadError> {
    read_all_from(BufReader::new(File::open(path)?))
}

/// [`read_all`] on an open reader.
pub fn read_all_from(reader: impl BufRead) -> Result<Vec<ScanRun>, ReadError> {
    let mut runs = Vec::new();
    for_each_run_from(reader, |run| {
        runs.push(run);
        Ok(())
    })?;
    Ok(runs)
}

/// Hands each run of a scan file to `each` as it is read, oldest first, holding one run at a
/// time (`import` records each as it comes).
pub fn for_each_run(
    path: impl AsRef<Path>,
    each: impl FnMut(ScanRun) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    for_each_run_from(BufReader::new(File::open(path)?), each)
}

/// Streams every run of a scan file to `stream`, a host at a time: memory grows with the
/// largest host, not with the file.
pub fn stream_runs(path: impl AsRef<Path>, stream: &mut dyn RunStream) -> Result<(), ReadError> {
    stream_runs_from(BufReader::new(File::open(path)?), stream)
}

/// [`stream_runs`] on an open reader.
pub fn stream_runs_from(reader: impl BufRead, stream: &mut dyn RunStream) -> Result<(), ReadError> {
    let (format, reader) = sniff(reader)?;
    match format {
        Format::Json => json::stream(reader, stream),
        Format::Xml => stream_xml(reader, stream),
    }
}

/// [`for_each_run`] on an open reader.
pub fn for_each_run_from(
    reader: impl BufRead,
    each: impl FnMut(ScanRun) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let (format, reader) = sniff(reader)?;
    match format {
        Format::Json => json::for_each_run(reader, each),
        Format::Xml => for_each_xml_run(reader, each),
    }
}

/// Reads Nmap's logs, the files its `--resume` takes: normal (-oN) or grepable (-oG)
/// output, Nmap's or ours, told apart by the first line that is not a comment (`Host: `
/// begins every grepable one). The last run, for a file appended to.
pub fn read_log(path: impl AsRef<Path>) -> Result<ScanRun, ReadError> {
    read_log_from(BufReader::new(File::open(path)?))
}

/// [`read_log`] on an open reader.
pub fn read_log_from(mut reader: impl BufRead) -> Result<ScanRun, ReadError> {
    let mut text = Vec::new();
    reader.read_to_end(&mut text)?;
    let grepable = text
        .split(|b| *b == b'\n')
        .map(|l| l.trim_ascii())
        .find(|l| !l.is_empty() && !l.starts_with(b"#"))
        .is_none_or(|l| l.starts_with(b"Host: "));
    if grepable {
        crate::grepable_reader::read_grepable(&text[..])
    } else {
        crate::normal_reader::read_normal(&text[..])
    }
}

/// Skips a byte-order mark and tells the format from the first non-white byte. The white
/// space before it is kept, so that line numbers in errors still count from the file's start.
pub fn sniff<R: BufRead>(mut reader: R) -> Result<(Format, impl BufRead), ReadError> {
    // The mark may in principle straddle two reads; gather up to its three bytes.
    let mut head: Vec<u8> = Vec::with_capacity(BOM.len());
    while head.len() < BOM.len() {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let want = BOM.len() - head.len();
        let take = want.min(buf.len());
        let chunk = buf.get(..take).unwrap_or_default();
        if !BOM.starts_with(&[head.as_slice(), chunk].concat()) {
            break;
        }
        head.extend_from_slice(chunk);
        reader.consume(take);
    }
    // Bytes taken that were not a whole mark belong to the document.
    let kept = if head == BOM { Vec::new() } else { head };
    let mut skipped: Vec<u8> = kept;
    // Newlines before the first byte that is not white, for the line of an error.
    let mut newlines = 0;
    let first = loop {
        if let Some(i) = skipped.iter().position(|b| !b.is_ascii_whitespace()) {
            newlines = skipped.iter().take(i).filter(|b| **b == b'\n').count();
            break skipped.get(i).copied();
        }
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break None;
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                newlines = skipped
                    .iter()
                    .chain(buf.iter().take(i))
                    .filter(|b| **b == b'\n')
                    .count();
                break buf.get(i).copied();
            }
            None => {
                let n = buf.len();
                skipped.extend_from_slice(buf);
                reader.consume(n);
            }
        }
    };
    let format = match first {
        Some(b'{') => Format::Json,
        // Empty (or blank) input is left to the XML reader, which says so.
        Some(b'<') | None => Format::Xml,
        // Neither markup nor JSON: notes, a normal (-oN) or grepable (-oG) output, ...
        Some(_) => {
            return Err(ReadError::NotAScanFile {
                line: 1 + newlines as u64,
            })
        }
    };
    Ok((
        format,
        BufReader::new(std::io::Cursor::new(skipped).chain(reader)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" args=\"nmap x\" start=\"1\" version=\"7.93\" xmloutputversion=\"1.05\">\n<verbose level=\"0\"/><debugging level=\"0\"/>\n<runstats><finished time=\"2\" elapsed=\"1\"/><hosts up=\"0\" down=\"0\" total=\"0\"/></runstats>\n</nmaprun>\n";

    fn json_doc() -> Vec<u8> {
        let run = read_any_from(XML.as_bytes()).unwrap();
        let mut out = Vec::new();
        {
            use portolan_model::{OutputOptions, Sink};
            let mut w = crate::JsonWriter::new(&mut out, OutputOptions::default());
            w.begin(&run).unwrap();
            w.end(&run).unwrap();
        }
        out
    }

    #[test]
    fn a_bom_is_skipped_for_both_formats() {
        let plain = read_any_from(XML.as_bytes()).unwrap();
        let with_bom = [BOM, XML.as_bytes()].concat();
        assert_eq!(read_any_from(&with_bom[..]).unwrap(), plain);

        let json = json_doc();
        let from_json = read_any_from(&json[..]).unwrap();
        assert_eq!(from_json.args, "nmap x");
        let json_bom = [BOM, b"\n  ", &json[..]].concat();
        assert_eq!(read_any_from(&json_bom[..]).unwrap(), from_json);
    }

    #[test]
    fn white_space_before_the_document_is_kept_for_line_numbers() {
        let bad = b"\xEF\xBB\xBF\n\n<nmaprun><bogus";
        let e = read_any_from(&bad[..]).unwrap_err();
        assert_eq!(e.line(), Some(3), "{e}");
        let (f, _) = sniff(&b"  \n {\"a\":1}"[..]).unwrap();
        assert_eq!(f, Format::Json);
    }

    /// A text file was reported as "line 3: malformed XML" (of a two-line file).
    #[test]
    fn a_file_that_is_neither_xml_nor_json_is_said_to_be_no_scan_file() {
        for (text, line) in [
            (&b"some notes\nabout a scan\n"[..], 1),
            (b"\n\n# Nmap 7.93 scan initiated\n", 3),
            (b"Host: 127.0.0.1 ()\tStatus: Up\n", 1),
        ] {
            let e = read_any_from(text).unwrap_err();
            assert!(matches!(e, ReadError::NotAScanFile { .. }), "{e}");
            assert_eq!(e.line(), Some(line), "{e}");
            assert!(
                e.to_string()
                    .contains("not an Nmap XML or Portolan JSON scan file"),
                "{e}"
            );
        }
    }

    #[test]
    fn logs_are_told_apart_by_content() {
        let head = "# Nmap 7.93 scan initiated Sun Nov 22 10:40:23 2026 as: nmap -p 22 192.0.2.7\n";
        let g = format!("{head}Host: 192.0.2.7 ()\tStatus: Up\nHost: 192.0.2.7 ()\tPorts: 22/open/tcp//ssh///\n");
        let n = format!("{head}Nmap scan report for 192.0.2.7\nHost is up.\n\nPORT   STATE SERVICE\n22/tcp open  ssh\n");
        for text in [g, n] {
            let run = read_log_from(text.as_bytes()).unwrap();
            assert_eq!(run.args, "nmap -p 22 192.0.2.7", "{text}");
            assert_eq!(run.hosts.len(), 1, "{text}");
            assert_eq!(run.hosts[0].ports.len(), 1, "{text}");
            assert!(run.hosts[0].is_up(), "{text}");
        }
        let run = read_log_from(head.as_bytes()).unwrap();
        assert!(run.hosts.is_empty() && run.runstats.is_none());
        assert!(read_log_from(&b"<nmaprun/>"[..]).is_err());
    }

    #[test]
    fn a_partial_bom_is_not_eaten() {
        // EF BB followed by something else is not a mark: the bytes stay (and are not XML).
        let e = read_any_from(&b"\xEF\xBB<nmaprun/>"[..]).unwrap_err();
        assert!(e.line().is_some(), "{e}");
        assert!(read_any_from(&b""[..]).is_err());
    }

    #[test]
    fn a_bom_split_across_reads_is_skipped() {
        let with_bom = [BOM, XML.as_bytes()].concat();
        // A one-byte buffer makes every fill_buf return a single byte.
        let r = BufReader::with_capacity(1, &with_bom[..]);
        assert_eq!(read_any_from(r).unwrap().args, "nmap x");
    }
}
