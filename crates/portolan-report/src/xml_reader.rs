//! Reads Nmap XML (files from Nmap 7.x and our own) back into a [`ScanRun`].
//!
//! Streaming, with quick-xml: memory grows with the model, not with the file. Every element of
//! nmap.dtd that a scan result holds is read (ports, services, scripts with their structured
//! `<elem>`/`<table>` output, OS detection, uptime, distance, sequence analyses, traceroute,
//! host, pre- and post-scan scripts); elements the model does not carry (taskbegin,
//! taskprogress, hosthint, output, ...) are skipped whole. An element that only has meaning
//! inside another one (`<elem>` outside a script, `<osmatch>` outside `<os>`, ...) is refused.
//! Every error names the line where it was found; no input makes it panic.
//!
//! Strictness: attributes nmap.dtd marks #REQUIRED and that the model needs are required
//! (port@portid, state@state, ...); ones other writers commonly leave out and that have an
//! obvious default (status@reason, service@method, ...) default. A document that ends before
//! `</nmaprun>` (an interrupted scan, a partial copy) is an error, [`ReadError::Truncated`].

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::str::FromStr;

use quick_xml::errors::{IllFormedError, SyntaxError};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::Reader;

use portolan_model::*;

/// Why a scan file could not be read. Errors about the file's content carry its line (1-based).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: malformed XML: {message}")]
    Syntax { line: u64, message: String },
    #[error("line {line}: not an Nmap XML or Portolan JSON scan file (it starts with neither '<' nor '{{')")]
    NotAScanFile { line: u64 },
    #[error("line {line}: no XML element found (empty file, or not XML)")]
    NoRoot { line: u64 },
    #[error("line {line}: the root element is <{found}>, not <nmaprun>: not an Nmap XML file")]
    NotNmapRun { line: u64, found: String },
    #[error("line {line}: <{element}> lacks the required attribute {attribute:?}")]
    MissingAttribute {
        line: u64,
        element: String,
        attribute: &'static str,
    },
    #[error("line {line}: <{parent}> lacks the required element <{element}>")]
    MissingElement {
        line: u64,
        parent: &'static str,
        element: &'static str,
    },
    #[error("line {line}: <{element}> attribute {attribute}={value:?} is not {expected}")]
    InvalidAttribute {
        line: u64,
        element: String,
        attribute: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("line {line}: unknown port state {value:?}")]
    UnknownPortState { line: u64, value: String },
    #[error("line {line}: the document ends before </nmaprun> (truncated, or written by a scan that was interrupted or is still running)")]
    Truncated { line: u64 },
    #[error("line {line}: <{element}> does not belong in <{parent}>")]
    Misplaced {
        line: u64,
        element: String,
        parent: String,
    },
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("line {line}: {message}")]
    Text { line: u64, message: String },
    #[error("unsupported portolan_json_version {found} (this build reads version 1)")]
    UnsupportedJsonVersion { found: u64 },
}

impl ReadError {
    /// The line of the input where the problem was found, when known.
    pub fn line(&self) -> Option<u64> {
        match self {
            ReadError::Syntax { line, .. }
            | ReadError::NoRoot { line }
            | ReadError::NotAScanFile { line }
            | ReadError::NotNmapRun { line, .. }
            | ReadError::MissingAttribute { line, .. }
            | ReadError::MissingElement { line, .. }
            | ReadError::InvalidAttribute { line, .. }
            | ReadError::UnknownPortState { line, .. }
            | ReadError::Misplaced { line, .. }
            | ReadError::Text { line, .. }
            | ReadError::Truncated { line } => Some(*line),
            ReadError::Json(e) => Some(e.line() as u64),
            ReadError::Io(_) | ReadError::UnsupportedJsonVersion { .. } => None,
        }
    }
}

/// Reads an Nmap XML document. A file written with `--append-output` holds several runs;
/// this is the last one (see [`read_xml_runs`] for all).
pub fn read_xml(reader: impl BufRead) -> Result<ScanRun, ReadError> {
    let mut last = None;
    Parser::new(reader).documents(&mut Collect(|run| {
        last = Some(run);
        Ok(())
    }))?;
    last.ok_or(ReadError::NoRoot { line: 1 })
}

/// Takes a scan file's content as it is read, a host at a time, so that a reader holds one
/// host, not the whole run (`check` judges each host as it comes).
pub trait RunStream {
    /// A run starts: what is known of it before its first host (start, command line,
    /// scanner, scan info), hosts empty. Called once per run, before its hosts (or, for a
    /// run without hosts, before [`RunStream::run`]).
    fn begin(&mut self, _header: &ScanRun) -> Result<(), ReadError> {
        Ok(())
    }
    /// The next host of the current run, in file order.
    fn host(&mut self, host: Host) -> Result<(), ReadError>;
    /// The end of a run: everything but its hosts (`hosts` is empty), runstats included.
    fn run(&mut self, run: ScanRun) -> Result<(), ReadError>;
}

/// Streams every run of an Nmap XML file to `stream`, host by host.
pub fn stream_xml(reader: impl BufRead, stream: &mut dyn RunStream) -> Result<(), ReadError> {
    let mut once = BeginOnce::new(stream);
    Parser::new(reader).documents(&mut Stream(&mut once))
}

/// Calls the stream's `begin` once per run: readers call it before every host, and this
/// passes on the first; a run that ended with no host is begun at its end.
pub(crate) struct BeginOnce<'a> {
    inner: &'a mut dyn RunStream,
    begun: bool,
}

impl<'a> BeginOnce<'a> {
    pub(crate) fn new(inner: &'a mut dyn RunStream) -> Self {
        BeginOnce {
            inner,
            begun: false,
        }
    }
}

impl RunStream for BeginOnce<'_> {
    fn begin(&mut self, header: &ScanRun) -> Result<(), ReadError> {
        if !self.begun {
            self.begun = true;
            self.inner.begin(header)?;
        }
        Ok(())
    }
    fn host(&mut self, host: Host) -> Result<(), ReadError> {
        self.inner.host(host)
    }
    fn run(&mut self, run: ScanRun) -> Result<(), ReadError> {
        if !self.begun {
            self.inner.begin(&run)?;
        }
        self.begun = false;
        self.inner.run(run)
    }
}

/// Where the parser puts what it reads: whole runs, or a [`RunStream`].
trait Receive {
    fn host(&mut self, run: &mut ScanRun, host: Host) -> Result<(), ReadError>;
    fn run(&mut self, run: ScanRun) -> Result<(), ReadError>;
}

/// Whole runs, each handed to the function.
struct Collect<F>(F);

impl<F: FnMut(ScanRun) -> Result<(), ReadError>> Receive for Collect<F> {
    fn host(&mut self, run: &mut ScanRun, host: Host) -> Result<(), ReadError> {
        run.hosts.push(host);
        Ok(())
    }
    fn run(&mut self, run: ScanRun) -> Result<(), ReadError> {
        (self.0)(run)
    }
}

struct Stream<'a>(&'a mut dyn RunStream);

impl Receive for Stream<'_> {
    fn host(&mut self, run: &mut ScanRun, host: Host) -> Result<(), ReadError> {
        self.0.begin(run)?;
        self.0.host(host)
    }
    fn run(&mut self, run: ScanRun) -> Result<(), ReadError> {
        self.0.run(run)
    }
}

/// Every run of an Nmap XML file, in file order: `--append-output` (Nmap's and ours) writes
/// each run as a whole document (`<?xml ...?>`, `<nmaprun>...</nmaprun>`) after the last.
pub fn read_xml_runs(reader: impl BufRead) -> Result<Vec<ScanRun>, ReadError> {
    let mut runs = Vec::new();
    Parser::new(reader).documents(&mut Collect(|run| {
        runs.push(run);
        Ok(())
    }))?;
    Ok(runs)
}

/// Hands each run of an Nmap XML file to `each` as soon as it is read, so that only one run
/// is held at a time. Stops at the first error, `each`'s included.
pub fn for_each_xml_run(
    reader: impl BufRead,
    each: impl FnMut(ScanRun) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    Parser::new(reader).documents(&mut Collect(each))
}

/// Reads an Nmap XML file.
pub fn read_xml_file(path: impl AsRef<Path>) -> Result<ScanRun, ReadError> {
    read_xml(BufReader::new(File::open(path)?))
}

/// Remembers where newlines fall in the bytes read so far, so that byte offsets reported by
/// quick-xml become line numbers without keeping the document in memory: offsets before the
/// start of the current event are folded into a count.
struct LineTracker<R> {
    inner: R,
    offset: u64,
    newlines: VecDeque<u64>,
    lines_forgotten: u64,
}

impl<R> LineTracker<R> {
    fn line_at(&self, pos: u64) -> u64 {
        1 + self.lines_forgotten + self.newlines.partition_point(|&o| o < pos) as u64
    }

    fn forget_before(&mut self, pos: u64) {
        while self.newlines.front().is_some_and(|&o| o < pos) {
            self.newlines.pop_front();
            self.lines_forgotten += 1;
        }
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf.iter().take(n).enumerate() {
            if *b == b'\n' {
                self.newlines.push_back(self.offset + i as u64);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// One element's start: its name, attributes (unescaped) and line.
struct Elem {
    name: String,
    attrs: Vec<(String, String)>,
    line: u64,
}

enum Ev {
    /// An element with content to come (`<x>`).
    Start(Elem),
    /// A self-closed element (`<x/>`).
    Empty(Elem),
    End,
    Text(String),
    Eof,
}

struct Parser<R: BufRead> {
    xml: Reader<BufReader<LineTracker<R>>>,
    buf: Vec<u8>,
    /// The prologue's comment named Portolan: nmaprun@scanner must say "nmap" to satisfy
    /// nmap.dtd, so the comment is where our own files say who wrote them.
    written_by_portolan: bool,
}

impl<R: BufRead> Parser<R> {
    fn new(reader: R) -> Self {
        let tracker = LineTracker {
            inner: reader,
            offset: 0,
            newlines: VecDeque::new(),
            lines_forgotten: 0,
        };
        let mut xml = Reader::from_reader(BufReader::new(tracker));
        xml.config_mut().check_end_names = true;
        Parser {
            xml,
            buf: Vec::new(),
            written_by_portolan: false,
        }
    }

    fn line_at(&self, pos: u64) -> u64 {
        self.xml.get_ref().get_ref().line_at(pos)
    }

    fn current_line(&self) -> u64 {
        self.line_at(self.xml.buffer_position())
    }

    fn xml_error(&self, e: quick_xml::Error) -> ReadError {
        let line = self.line_at(self.xml.error_position());
        match e {
            quick_xml::Error::Io(io) => {
                ReadError::Io(std::io::Error::new(io.kind(), io.to_string()))
            }
            // All of these mean the input ended inside some markup.
            quick_xml::Error::Syntax(
                SyntaxError::InvalidBangMarkup
                | SyntaxError::UnclosedComment
                | SyntaxError::UnclosedCData
                | SyntaxError::UnclosedDoctype
                | SyntaxError::UnclosedPIOrXmlDecl
                | SyntaxError::UnclosedTag,
            )
            | quick_xml::Error::IllFormed(IllFormedError::MissingEndTag(_)) => {
                ReadError::Truncated {
                    line: self.current_line().max(line),
                }
            }
            other => ReadError::Syntax {
                line,
                message: other.to_string(),
            },
        }
    }

    /// The next event that matters (declarations, comments and PIs are passed over).
    fn next(&mut self) -> Result<Ev, ReadError> {
        loop {
            let start = self.xml.buffer_position();
            self.xml.get_mut().get_mut().forget_before(start);
            let line = self.line_at(start);
            self.buf.clear();
            let ev = match self.xml.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.xml_error(e)),
            };
            return Ok(match ev {
                Event::Start(e) => Ev::Start(elem(&e, line)?),
                Event::Empty(e) => Ev::Empty(elem(&e, line)?),
                Event::End(_) => Ev::End,
                Event::Text(t) => match t.unescape() {
                    Ok(text) => Ev::Text(text.into_owned()),
                    Err(err) => {
                        let bad = ReadError::Syntax {
                            line,
                            message: err.to_string(),
                        };
                        // Text cut short by the end of the file (`&am`) is a truncation.
                        self.buf.clear();
                        return match self.xml.read_event_into(&mut self.buf) {
                            Ok(Event::Eof) => Err(self.truncated()),
                            _ => Err(bad),
                        };
                    }
                },
                Event::CData(t) => Ev::Text(String::from_utf8_lossy(&t).into_owned()),
                Event::Eof => Ev::Eof,
                Event::Comment(c) => {
                    if c.starts_with(b" Portolan ") {
                        self.written_by_portolan = true;
                    }
                    continue;
                }
                Event::Decl(_) | Event::PI(_) | Event::DocType(_) => continue,
            });
        }
    }

    /// Passes over the rest of an element whose start was just read.
    fn skip(&mut self, name: &str) -> Result<(), ReadError> {
        self.buf.clear();
        match self
            .xml
            .read_to_end_into(QName(name.as_bytes()), &mut self.buf)
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.xml_error(e)),
        }
    }

    fn document(&mut self, rx: &mut dyn Receive) -> Result<ScanRun, ReadError> {
        loop {
            match self.next()? {
                Ev::Start(el) if el.name == "nmaprun" => return self.nmaprun(el, true, rx),
                Ev::Empty(el) if el.name == "nmaprun" => return self.nmaprun(el, false, rx),
                Ev::Start(el) | Ev::Empty(el) => {
                    return Err(ReadError::NotNmapRun {
                        line: el.line,
                        found: el.name,
                    })
                }
                Ev::Text(t) if t.trim().is_empty() => {}
                Ev::Text(_) | Ev::End => {
                    return Err(ReadError::Syntax {
                        line: self.current_line(),
                        message: "content before the root element".into(),
                    })
                }
                Ev::Eof => {
                    return Err(ReadError::NoRoot {
                        line: self.current_line(),
                    })
                }
            }
        }
    }

    /// The first document, then every further `<nmaprun>` appended after it. Between runs
    /// only white space, declarations, comments and processing instructions may come.
    fn documents(&mut self, rx: &mut dyn Receive) -> Result<(), ReadError> {
        let first = self.document(rx)?;
        // The next run's prologue says again whether Portolan wrote it.
        self.written_by_portolan = false;
        rx.run(first)?;
        loop {
            let run = match self.next()? {
                Ev::Start(el) if el.name == "nmaprun" => self.nmaprun(el, true, rx)?,
                Ev::Empty(el) if el.name == "nmaprun" => self.nmaprun(el, false, rx)?,
                Ev::Start(el) | Ev::Empty(el) => {
                    return Err(ReadError::NotNmapRun {
                        line: el.line,
                        found: el.name,
                    })
                }
                Ev::Text(t) if t.trim().is_empty() => continue,
                Ev::Text(_) | Ev::End => {
                    return Err(ReadError::Syntax {
                        line: self.current_line(),
                        message: "content after </nmaprun>".into(),
                    })
                }
                Ev::Eof => return Ok(()),
            };
            self.written_by_portolan = false;
            rx.run(run)?;
        }
    }

    fn nmaprun(
        &mut self,
        el: Elem,
        open: bool,
        rx: &mut dyn Receive,
    ) -> Result<ScanRun, ReadError> {
        let mut run = ScanRun {
            scanner: match required(&el, "scanner")? {
                "nmap" if self.written_by_portolan => "portolan".to_string(),
                other => other.to_string(),
            },
            version: attr(&el, "version").unwrap_or_default().to_string(),
            args: attr(&el, "args").unwrap_or_default().to_string(),
            start: opt_int(&el, "start")?.unwrap_or(0),
            scaninfo: Vec::new(),
            verbose: 0,
            debugging: 0,
            prescripts: Vec::new(),
            hosts: Vec::new(),
            postscripts: Vec::new(),
            runstats: None,
        };
        if !open {
            return Ok(run);
        }
        // Hosts up and hosts read, for runstats that lack their counts.
        let mut seen: (u32, u32) = (0, 0);
        loop {
            let (el, open) = match self.next()? {
                Ev::Start(el) => (el, true),
                Ev::Empty(el) => (el, false),
                Ev::Text(_) => continue,
                Ev::End => return Ok(run),
                Ev::Eof => return Err(self.truncated()),
            };
            match el.name.as_str() {
                "scaninfo" => {
                    run.scaninfo.push(ScanInfo {
                        scan_type: parsed(&el, "type", "a scan type")?,
                        protocol: parsed(&el, "protocol", "a protocol")?,
                        numservices: opt_int(&el, "numservices")?.unwrap_or(0),
                        services: attr(&el, "services").unwrap_or_default().to_string(),
                    });
                    self.finish(&el, open)?;
                }
                "verbose" => {
                    run.verbose = opt_int(&el, "level")?.unwrap_or(0);
                    self.finish(&el, open)?;
                }
                "debugging" => {
                    run.debugging = opt_int(&el, "level")?.unwrap_or(0);
                    self.finish(&el, open)?;
                }
                "host" => {
                    let host = self.host(el, open)?;
                    seen.1 += 1;
                    if host.is_up() {
                        seen.0 += 1;
                    }
                    rx.host(&mut run, host)?;
                }
                "runstats" => {
                    run.runstats = Some(self.runstats(el, open, seen)?);
                }
                "prescript" => {
                    let scripts = self.scripts(&el, open)?;
                    run.prescripts.extend(scripts);
                }
                "postscript" => {
                    let scripts = self.scripts(&el, open)?;
                    run.postscripts.extend(scripts);
                }
                _ => self.other(&el, open, "nmaprun")?,
            }
        }
    }

    fn truncated(&self) -> ReadError {
        ReadError::Truncated {
            line: self.current_line(),
        }
    }

    /// Skips what is left of an element whose attributes were all we needed.
    fn finish(&mut self, el: &Elem, open: bool) -> Result<(), ReadError> {
        if open {
            self.skip(&el.name)
        } else {
            Ok(())
        }
    }

    /// Calls `child` for each child element of an element just opened, until its end tag.
    fn children(
        &mut self,
        open: bool,
        mut child: impl FnMut(&mut Self, Elem, bool) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        if !open {
            return Ok(());
        }
        loop {
            match self.next()? {
                Ev::Start(el) => child(self, el, true)?,
                Ev::Empty(el) => child(self, el, false)?,
                Ev::Text(_) => {}
                Ev::End => return Ok(()),
                Ev::Eof => return Err(self.truncated()),
            }
        }
    }

    /// The text content of an element just opened (for `<cpe>`); nested elements are skipped.
    fn text_content(&mut self, open: bool) -> Result<String, ReadError> {
        let mut text = String::new();
        if !open {
            return Ok(text);
        }
        loop {
            match self.next()? {
                Ev::Text(t) => text.push_str(&t),
                Ev::Start(el) => self.skip(&el.name)?,
                Ev::Empty(_) => {}
                Ev::End => return Ok(text),
                Ev::Eof => return Err(self.truncated()),
            }
        }
    }

    fn host(&mut self, el: Elem, open: bool) -> Result<Host, ReadError> {
        let mut host = Host {
            starttime: opt_int(&el, "starttime")?,
            endtime: opt_int(&el, "endtime")?,
            status: HostStatus::up(""),
            addresses: Vec::new(),
            hostnames: Vec::new(),
            extraports: Vec::new(),
            ports: Vec::new(),
            os: None,
            uptime: None,
            distance: None,
            tcpsequence: None,
            ipidsequence: None,
            tcptssequence: None,
            hostscripts: Vec::new(),
            trace: None,
            times: None,
        };
        let mut status = None;
        self.children(open, |p, el, open| {
            match el.name.as_str() {
                "status" => {
                    status = Some(HostStatus {
                        state: parsed(&el, "state", "a host state")?,
                        reason: attr(&el, "reason").unwrap_or_default().to_string(),
                        reason_ttl: opt_int(&el, "reason_ttl")?.unwrap_or(0),
                    });
                    p.finish(&el, open)?;
                }
                "address" => {
                    host.addresses.push(Address {
                        addr: required(&el, "addr")?.to_string(),
                        addrtype: match attr(&el, "addrtype") {
                            Some(_) => parsed(&el, "addrtype", "ipv4, ipv6 or mac")?,
                            None => AddrType::Ipv4, // the DTD's default
                        },
                        vendor: attr(&el, "vendor").map(str::to_string),
                    });
                    p.finish(&el, open)?;
                }
                "hostnames" => {
                    p.children(open, |p, el, open| {
                        if el.name == "hostname" {
                            if let Some(name) = attr(&el, "name") {
                                let kind = match attr(&el, "type") {
                                    None | Some("PTR") => HostnameType::Ptr,
                                    Some("user") => HostnameType::User,
                                    Some(other) => {
                                        return Err(invalid(&el, "type", other, "user or PTR"))
                                    }
                                };
                                host.hostnames.push(Hostname {
                                    name: name.to_string(),
                                    kind,
                                });
                            }
                        }
                        p.finish(&el, open)
                    })?;
                }
                "ports" => {
                    p.children(open, |p, el, open| match el.name.as_str() {
                        "extraports" => {
                            let ep = p.extraports(el, open)?;
                            host.extraports.push(ep);
                            Ok(())
                        }
                        "port" => {
                            let port = p.port(el, open)?;
                            host.ports.push(port);
                            Ok(())
                        }
                        _ => p.other(&el, open, "ports"),
                    })?;
                }
                "os" => host.os = Some(p.os(open)?),
                "uptime" => {
                    host.uptime = Some(Uptime {
                        seconds: req_int(&el, "seconds")?,
                        lastboot: attr(&el, "lastboot").map(str::to_string),
                    });
                    p.finish(&el, open)?;
                }
                "distance" => {
                    host.distance = Some(req_int(&el, "value")?);
                    p.finish(&el, open)?;
                }
                "tcpsequence" => {
                    host.tcpsequence = Some(TcpSequence {
                        index: req_int(&el, "index")?,
                        difficulty: required(&el, "difficulty")?.to_string(),
                        values: required(&el, "values")?.to_string(),
                    });
                    p.finish(&el, open)?;
                }
                "ipidsequence" => {
                    host.ipidsequence = Some(IpIdSequence {
                        class: required(&el, "class")?.to_string(),
                        values: required(&el, "values")?.to_string(),
                    });
                    p.finish(&el, open)?;
                }
                "tcptssequence" => {
                    host.tcptssequence = Some(TcpTsSequence {
                        class: required(&el, "class")?.to_string(),
                        values: attr(&el, "values").map(str::to_string),
                    });
                    p.finish(&el, open)?;
                }
                "hostscript" => {
                    let scripts = p.scripts(&el, open)?;
                    host.hostscripts.extend(scripts);
                }
                "trace" => host.trace = Some(p.trace(&el, open)?),
                "times" => {
                    host.times = Some(Times {
                        srtt: req_int(&el, "srtt")?,
                        rttvar: req_int(&el, "rttvar")?,
                        to: req_int(&el, "to")?,
                    });
                    p.finish(&el, open)?;
                }
                _ => p.other(&el, open, "host")?,
            }
            Ok(())
        })?;
        host.status = match status {
            Some(s) => s,
            // masscan and other Nmap look-alikes list hosts without a status: a host that has
            // ports listed answered, so it is up.
            None if !host.ports.is_empty() => HostStatus::up(""),
            None => HostStatus {
                state: HostState::Unknown,
                reason: String::new(),
                reason_ttl: 0,
            },
        };
        Ok(host)
    }

    fn extraports(&mut self, el: Elem, open: bool) -> Result<ExtraPorts, ReadError> {
        let mut ep = ExtraPorts {
            state: port_state(&el)?,
            count: req_int(&el, "count")?,
            reasons: Vec::new(),
        };
        self.children(open, |p, el, open| {
            if el.name == "extrareasons" {
                let port_list = match attr(&el, "ports") {
                    Some(list) => parse_port_list(list)
                        .ok_or_else(|| invalid(&el, "ports", list, "a port list like 1-21,23"))?,
                    None => Vec::new(),
                };
                ep.reasons.push(ExtraReason {
                    reason: required(&el, "reason")?.to_string(),
                    count: req_int(&el, "count")?,
                    proto: match attr(&el, "proto") {
                        Some(_) => Some(parsed(&el, "proto", "a protocol")?),
                        None => None,
                    },
                    port_list,
                });
            }
            p.finish(&el, open)
        })?;
        Ok(ep)
    }

    fn port(&mut self, el: Elem, open: bool) -> Result<Port, ReadError> {
        let protocol: Protocol = parsed(&el, "protocol", "a protocol")?;
        let portid: u16 = req_int(&el, "portid")?;
        let line = el.line;
        let mut state: Option<(PortState, String, u8, Option<String>)> = None;
        let mut service = None;
        let mut scripts = Vec::new();
        self.children(open, |p, el, open| {
            match el.name.as_str() {
                "state" => {
                    state = Some((
                        port_state(&el)?,
                        attr(&el, "reason").unwrap_or_default().to_string(),
                        opt_int(&el, "reason_ttl")?.unwrap_or(0),
                        attr(&el, "reason_ip").map(str::to_string),
                    ));
                    p.finish(&el, open)?;
                }
                "service" => {
                    let mut svc = Service {
                        name: required(&el, "name")?.to_string(),
                        product: attr(&el, "product").map(str::to_string),
                        version: attr(&el, "version").map(str::to_string),
                        extrainfo: attr(&el, "extrainfo").map(str::to_string),
                        hostname: attr(&el, "hostname").map(str::to_string),
                        ostype: attr(&el, "ostype").map(str::to_string),
                        devicetype: attr(&el, "devicetype").map(str::to_string),
                        method: match attr(&el, "method") {
                            Some("probed") => ServiceMethod::Probed,
                            Some("table") | None => ServiceMethod::Table,
                            Some(other) => {
                                return Err(invalid(&el, "method", other, "table or probed"))
                            }
                        },
                        conf: opt_int(&el, "conf")?.unwrap_or(0),
                        tunnel: attr(&el, "tunnel").map(str::to_string),
                        servicefp: attr(&el, "servicefp").map(str::to_string),
                        cpes: Vec::new(),
                    };
                    p.children(open, |p, el, open| {
                        if el.name == "cpe" {
                            let cpe = p.text_content(open)?;
                            svc.cpes.push(cpe);
                            Ok(())
                        } else {
                            p.finish(&el, open)
                        }
                    })?;
                    service = Some(svc);
                }
                "script" => {
                    let script = p.script(&el, open)?;
                    scripts.push(script);
                }
                _ => p.other(&el, open, "port")?,
            }
            Ok(())
        })?;
        let Some((state, reason, reason_ttl, reason_ip)) = state else {
            return Err(ReadError::MissingElement {
                line,
                parent: "port",
                element: "state",
            });
        };
        Ok(Port {
            protocol,
            portid,
            state,
            reason,
            reason_ttl,
            reason_ip,
            service,
            scripts,
        })
    }

    /// An element the model does not carry: skipped, unless it is one that only has meaning
    /// inside another element, which means the file is malformed.
    fn other(&mut self, el: &Elem, open: bool, parent: &str) -> Result<(), ReadError> {
        const NESTED: &[&str] = &[
            "elem",
            "table",
            "script",
            "osmatch",
            "osclass",
            "portused",
            "osfingerprint",
            "hop",
            "port",
            "extraports",
            "extrareasons",
            "service",
            "state",
            "cpe",
        ];
        if NESTED.contains(&el.name.as_str()) {
            return Err(ReadError::Misplaced {
                line: el.line,
                element: el.name.clone(),
                parent: parent.to_string(),
            });
        }
        self.finish(el, open)
    }

    /// The `<script>` children of `hostscript`, `prescript` or `postscript`.
    fn scripts(&mut self, parent: &Elem, open: bool) -> Result<Vec<Script>, ReadError> {
        let mut scripts = Vec::new();
        self.children(open, |p, el, open| {
            if el.name == "script" {
                let script = p.script(&el, open)?;
                scripts.push(script);
                Ok(())
            } else {
                p.other(&el, open, &parent.name)
            }
        })?;
        Ok(scripts)
    }

    fn script(&mut self, el: &Elem, open: bool) -> Result<Script, ReadError> {
        Ok(Script {
            id: required(el, "id")?.to_string(),
            output: attr(el, "output").unwrap_or_default().to_string(),
            content: self.script_items(el, open)?,
        })
    }

    /// The `<elem>` and `<table>` children of a script or table, in order. Text between them
    /// is the indentation Nmap writes; anything else is refused.
    fn script_items(&mut self, parent: &Elem, open: bool) -> Result<Vec<ScriptItem>, ReadError> {
        let mut items = Vec::new();
        self.children(open, |p, el, open| {
            let key = attr(&el, "key").map(str::to_string);
            match el.name.as_str() {
                "elem" => {
                    let value = p.leaf_text(&el, open)?;
                    items.push(ScriptItem::Elem { key, value });
                }
                "table" => {
                    let inner = p.script_items(&el, open)?;
                    items.push(ScriptItem::Table { key, items: inner });
                }
                _ => {
                    return Err(ReadError::Misplaced {
                        line: el.line,
                        element: el.name,
                        parent: parent.name.clone(),
                    })
                }
            }
            Ok(())
        })?;
        Ok(items)
    }

    /// The text of an element that may hold text only (`<elem>`, `<cpe>`).
    fn leaf_text(&mut self, parent: &Elem, open: bool) -> Result<String, ReadError> {
        let mut text = String::new();
        if !open {
            return Ok(text);
        }
        loop {
            match self.next()? {
                Ev::Text(t) => text.push_str(&t),
                Ev::Start(el) | Ev::Empty(el) => {
                    return Err(ReadError::Misplaced {
                        line: el.line,
                        element: el.name,
                        parent: parent.name.clone(),
                    })
                }
                Ev::End => return Ok(text),
                Ev::Eof => return Err(self.truncated()),
            }
        }
    }

    fn os(&mut self, open: bool) -> Result<Os, ReadError> {
        let mut os = Os::default();
        self.children(open, |p, el, open| {
            match el.name.as_str() {
                "portused" => {
                    os.ports_used.push(PortUsed {
                        state: port_state(&el)?,
                        proto: parsed(&el, "proto", "a protocol")?,
                        portid: req_int(&el, "portid")?,
                    });
                    p.finish(&el, open)?;
                }
                "osmatch" => {
                    let mut m = OsMatch {
                        name: required(&el, "name")?.to_string(),
                        accuracy: percent(&el)?,
                        line: req_int(&el, "line")?,
                        classes: Vec::new(),
                    };
                    p.children(open, |p, el, open| {
                        if el.name != "osclass" {
                            return p.other(&el, open, "osmatch");
                        }
                        let mut c = OsClass {
                            kind: attr(&el, "type").map(str::to_string),
                            vendor: required(&el, "vendor")?.to_string(),
                            osfamily: required(&el, "osfamily")?.to_string(),
                            osgen: attr(&el, "osgen").map(str::to_string),
                            accuracy: percent(&el)?,
                            cpes: Vec::new(),
                        };
                        p.children(open, |p, el, open| {
                            if el.name == "cpe" {
                                let cpe = p.leaf_text(&el, open)?;
                                c.cpes.push(cpe);
                                Ok(())
                            } else {
                                p.other(&el, open, "osclass")
                            }
                        })?;
                        m.classes.push(c);
                        Ok(())
                    })?;
                    os.matches.push(m);
                }
                "osfingerprint" => {
                    os.fingerprints
                        .push(required(&el, "fingerprint")?.to_string());
                    p.finish(&el, open)?;
                }
                // Nmap's --deprecated-xml-osclass writes the classes beside the matches
                // (the pre-2012 layout); the model keeps classes under their match only.
                "osclass" => p.finish(&el, open)?,
                _ => p.other(&el, open, "os")?,
            }
            Ok(())
        })?;
        Ok(os)
    }

    fn trace(&mut self, el: &Elem, open: bool) -> Result<Trace, ReadError> {
        let mut trace = Trace {
            port: opt_int(el, "port")?,
            proto: attr(el, "proto").map(str::to_string),
            hops: Vec::new(),
        };
        self.children(open, |p, el, open| {
            if el.name != "hop" {
                return p.other(&el, open, "trace");
            }
            trace.hops.push(Hop {
                ttl: req_int(&el, "ttl")?,
                ipaddr: attr(&el, "ipaddr").map(str::to_string),
                rtt: attr(&el, "rtt").map(str::to_string),
                host: attr(&el, "host").map(str::to_string),
                tag: None,
            });
            p.finish(&el, open)
        })?;
        Ok(trace)
    }

    fn runstats(
        &mut self,
        el: Elem,
        open: bool,
        (up, seen): (u32, u32),
    ) -> Result<RunStats, ReadError> {
        let line = el.line;
        let mut finished = None;
        let mut counts = None;
        self.children(open, |p, el, open| {
            match el.name.as_str() {
                "finished" => {
                    let elapsed = required(&el, "elapsed")?;
                    finished = Some((
                        req_int::<i64>(&el, "time")?,
                        elapsed
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite())
                            .ok_or_else(|| invalid(&el, "elapsed", elapsed, "a number"))?,
                        match attr(&el, "exit") {
                            Some("success") | None => RunExit::Success,
                            Some("error") => RunExit::Error,
                            Some(other) => {
                                return Err(invalid(&el, "exit", other, "success or error"))
                            }
                        },
                        attr(&el, "errormsg").map(str::to_string),
                    ));
                }
                "hosts" => {
                    counts = Some((
                        opt_int::<u32>(&el, "up")?.unwrap_or(0),
                        opt_int::<u32>(&el, "down")?.unwrap_or(0),
                        req_int::<u32>(&el, "total")?,
                    ));
                }
                _ => {}
            }
            p.finish(&el, open)
        })?;
        let Some((time, elapsed, exit, errormsg)) = finished else {
            return Err(ReadError::MissingElement {
                line,
                parent: "runstats",
                element: "finished",
            });
        };
        let (up, down, total) = counts.unwrap_or((up, seen - up, seen));
        Ok(RunStats {
            finished: time,
            elapsed,
            exit,
            errormsg,
            hosts_up: up,
            hosts_down: down,
            hosts_total: total,
            completeness: None,
        })
    }
}

/// Copies an element's name and unescaped attributes out of quick-xml's buffer.
fn elem(e: &BytesStart<'_>, line: u64) -> Result<Elem, ReadError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| ReadError::Syntax {
            line,
            message: format!("in <{name}>: {err}"),
        })?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let bad = |message: String| ReadError::Syntax {
            line,
            message: format!("in <{name} {key}>: {message}"),
        };
        let raw = std::str::from_utf8(&a.value).map_err(|e| bad(e.to_string()))?;
        // XML's attribute-value normalisation: a literal line break or tab is a space (only
        // a character reference such as &#xa; stands for the character itself), as every
        // conforming parser, Ndiff's included, reads it.
        let normalised;
        let raw = if raw.contains(['\t', '\n', '\r']) {
            normalised = raw.replace("\r\n", " ").replace(['\t', '\n', '\r'], " ");
            normalised.as_str()
        } else {
            raw
        };
        let value = quick_xml::escape::unescape(raw)
            .map_err(|e| bad(e.to_string()))?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Elem { name, attrs, line })
}

fn attr<'a>(el: &'a Elem, name: &str) -> Option<&'a str> {
    el.attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn required<'a>(el: &'a Elem, name: &'static str) -> Result<&'a str, ReadError> {
    attr(el, name).ok_or_else(|| ReadError::MissingAttribute {
        line: el.line,
        element: el.name.clone(),
        attribute: name,
    })
}

fn invalid(el: &Elem, name: &'static str, value: &str, expected: &'static str) -> ReadError {
    ReadError::InvalidAttribute {
        line: el.line,
        element: el.name.clone(),
        attribute: name,
        value: value.to_string(),
        expected,
    }
}

/// An attribute parsed with `FromStr`; absent is an error.
fn parsed<T: FromStr>(
    el: &Elem,
    name: &'static str,
    expected: &'static str,
) -> Result<T, ReadError> {
    let v = required(el, name)?;
    v.parse().map_err(|_| invalid(el, name, v, expected))
}

/// An integer attribute that must be present (and fit the type).
fn req_int<T: FromStr>(el: &Elem, name: &'static str) -> Result<T, ReadError> {
    let v = required(el, name)?;
    v.trim()
        .parse()
        .map_err(|_| invalid(el, name, v, "an integer in range"))
}

/// An integer attribute that may be absent, but not malformed.
fn opt_int<T: FromStr>(el: &Elem, name: &'static str) -> Result<Option<T>, ReadError> {
    match attr(el, name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| invalid(el, name, v, "an integer in range")),
    }
}

/// `accuracy`: a whole percentage, 0 to 100.
fn percent(el: &Elem) -> Result<u8, ReadError> {
    let v = required(el, "accuracy")?;
    v.trim()
        .parse::<u8>()
        .ok()
        .filter(|a| *a <= 100)
        .ok_or_else(|| invalid(el, "accuracy", v, "a percentage from 0 to 100"))
}

fn port_state(el: &Elem) -> Result<PortState, ReadError> {
    let v = required(el, "state")?;
    v.parse().map_err(|_| ReadError::UnknownPortState {
        line: el.line,
        value: v.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Result<ScanRun, ReadError> {
        read_xml(s.as_bytes())
    }

    const MINIMAL: &str = "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" start=\"5\" version=\"7.93\">\n<runstats><finished time=\"6\" elapsed=\"1.00\"/><hosts total=\"0\"/></runstats>\n</nmaprun>\n";

    #[test]
    fn minimal_document() {
        let run = read(MINIMAL).unwrap();
        assert_eq!(run.scanner, "nmap");
        assert_eq!(run.start, 5);
        let rs = run.runstats.unwrap();
        assert_eq!((rs.finished, rs.elapsed, rs.hosts_total), (6, 1.0, 0));
    }

    #[test]
    fn errors_name_their_line() {
        let e = read("<?xml version=\"1.0\"?>\n\n<foo/>").unwrap_err();
        assert!(matches!(e, ReadError::NotNmapRun { line: 3, .. }), "{e}");
        let e = read(&MINIMAL.replace("start=\"5\"", "start=\"soon\"")).unwrap_err();
        assert!(
            matches!(e, ReadError::InvalidAttribute { line: 2, .. }),
            "{e}"
        );
        assert!(e
            .to_string()
            .starts_with("line 2: <nmaprun> attribute start=\"soon\""));
        let e = read(&MINIMAL.replace("time=\"6\" ", "")).unwrap_err();
        assert!(
            matches!(e, ReadError::MissingAttribute { line: 3, .. }),
            "{e}"
        );
        let e = read(&MINIMAL[..MINIMAL.len() - 12]).unwrap_err();
        assert!(matches!(e, ReadError::Truncated { .. }), "{e}");
        let e = read("").unwrap_err();
        assert!(matches!(e, ReadError::NoRoot { line: 1 }), "{e}");
    }

    #[test]
    fn line_tracker_counts_across_reads() {
        let mut t = LineTracker {
            inner: "a\nb\n\nc".as_bytes(),
            offset: 0,
            newlines: VecDeque::new(),
            lines_forgotten: 0,
        };
        let mut buf = [0u8; 2];
        while t.read(&mut buf).unwrap() > 0 {}
        assert_eq!(t.line_at(0), 1);
        assert_eq!(t.line_at(2), 2);
        assert_eq!(t.line_at(5), 4);
        t.forget_before(3);
        assert_eq!(t.line_at(5), 4);
    }
}
