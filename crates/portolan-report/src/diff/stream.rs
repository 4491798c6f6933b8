//! `diff` of two files without holding either: memory grows with the largest host and a
//! fixed sorting buffer, not with the files.
//!
//! Ndiff pairs hosts by id and shows them in id order, so each side is sorted first, as an
//! external merge sort: [`spool_run`] reads a file host by host, turns each host into the
//! little Ndiff compares ([`HostView`]), and writes runs of them, each sorted by id, to a
//! temporary file. [`write_diff`] then merges the runs of each side (the smallest id first,
//! the earlier run on a tie, which keeps the file order of equal ids as a stable sort
//! does), pairs the two sides as [`diff`](super::diff) does, and writes each pair's
//! difference as it comes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use portolan_model::{Host, ScanRun};

use super::{
    text_head, text_tail, xml_head, xml_tail, Change, DiffOptions, HostDiff, HostId, HostView,
    JsonHost, RunInfo, ScriptListDiff,
};
use crate::read::stream_runs_from;
use crate::xml_reader::{ReadError, RunStream};

/// Bytes of hosts (as JSON) sorted in memory before they are written out as one sorted run.
const SORT_BUFFER: usize = 4 << 20;

/// The read buffer of each sorted run while they are merged: one per 4 MB of hosts.
const RUN_READ_BUFFER: usize = 16 << 10;

/// The three forms a diff is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    /// Ndiff's text.
    Text,
    /// Ndiff's XML (`ndiff --xml`).
    Xml,
    /// Portolan's JSON (docs/diff.md), one line and a newline.
    Json,
}

/// Why a file could not be made one side of a diff.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{0}")]
    Read(#[from] ReadError),
    /// `--run N` beyond the file's runs.
    #[error("--run {want}: the file holds {count} run{}", if *count == 1 { "" } else { "s" })]
    NoSuchRun { want: usize, count: usize },
    #[error("temporary file: {0}")]
    Temp(std::io::Error),
}

/// Why a diff could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("temporary file: {0}")]
    Temp(std::io::Error),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

/// One side of a streamed diff: the run compared (its hosts left out), where it stands
/// among the file's runs, and its hosts sorted by id in a temporary file.
#[derive(Debug)]
pub struct SpooledRun {
    /// The run's header and ending (scan info, scripts, runstats); `hosts` is empty.
    pub run: ScanRun,
    /// 1-based.
    pub index: usize,
    /// The runs in the file (several when written with `--append-output`).
    pub count: usize,
    hosts: SortedHosts,
}

/// Reads run `want` (1-based; None: the last) of a scan file, XML or JSON, and sorts its
/// hosts into a temporary file. The reader is read once, so it may be a pipe.
pub fn spool_run(reader: impl BufRead, want: Option<usize>) -> Result<SpooledRun, SpoolError> {
    spool_run_buffered(reader, want, SORT_BUFFER)
}

fn spool_run_buffered(
    reader: impl BufRead,
    want: Option<usize>,
    buffer: usize,
) -> Result<SpooledRun, SpoolError> {
    let mut s = Spooler {
        want,
        buffer,
        count: 0,
        current: None,
        kept: None,
        temp_error: None,
    };
    let read = stream_runs_from(reader, &mut s);
    if let Some(e) = s.temp_error {
        return Err(SpoolError::Temp(e));
    }
    read?;
    s.kept.ok_or(SpoolError::NoSuchRun {
        want: want.unwrap_or(s.count),
        count: s.count,
    })
}

/// The [`RunStream`] that spools the wanted run (the last: every run, each replacing the
/// one before once it has ended).
struct Spooler {
    want: Option<usize>,
    buffer: usize,
    /// Runs ended so far.
    count: usize,
    current: Option<Sorter>,
    kept: Option<SpooledRun>,
    /// A temporary file failed (the reader is stopped with an error of its own).
    temp_error: Option<std::io::Error>,
}

impl Spooler {
    fn wanted(&self) -> bool {
        self.want.unwrap_or(self.count + 1) == self.count + 1
    }

    /// Notes a temporary file's failure and stops the reader.
    fn stop(&mut self, e: std::io::Error) -> ReadError {
        let stop = ReadError::Io(std::io::Error::new(e.kind(), e.to_string()));
        self.temp_error = Some(e);
        stop
    }
}

impl RunStream for Spooler {
    fn host(&mut self, host: Host) -> Result<(), ReadError> {
        if !self.wanted() {
            return Ok(());
        }
        if self.current.is_none() {
            match Sorter::new(self.buffer) {
                Ok(s) => self.current = Some(s),
                Err(e) => return Err(self.stop(e)),
            }
        }
        let pushed = match &mut self.current {
            Some(s) => s.push(&host),
            None => Ok(()),
        };
        pushed.map_err(|e| self.stop(e))
    }

    fn run(&mut self, run: ScanRun) -> Result<(), ReadError> {
        if self.wanted() {
            let sorted = match self.current.take() {
                Some(s) => s.finish(),
                None => Ok(SortedHosts::empty()),
            };
            match sorted {
                Ok(hosts) => {
                    self.kept = Some(SpooledRun {
                        run,
                        index: self.count + 1,
                        count: 0,
                        hosts,
                    })
                }
                Err(e) => return Err(self.stop(e)),
            }
        }
        self.count += 1;
        if let Some(k) = &mut self.kept {
            k.count = self.count;
        }
        Ok(())
    }
}

/// Sorts one run's hosts by id: up to `buffer` bytes in memory, then written out as a sorted
/// run (one `[id, host]` JSON line a host) to the temporary file.
struct Sorter {
    file: File,
    /// Bytes written to the file so far.
    written: u64,
    /// (start, end) in the file of each sorted run.
    runs: Vec<(u64, u64)>,
    /// Hosts not yet written: id and the host's JSON.
    pending: Vec<(HostId, String)>,
    pending_bytes: usize,
    buffer: usize,
    /// Hosts seen: the position that names a host with neither address nor name.
    seen: usize,
}

impl Sorter {
    fn new(buffer: usize) -> Result<Self, std::io::Error> {
        Ok(Sorter {
            file: tempfile::tempfile()?,
            written: 0,
            runs: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            buffer,
            seen: 0,
        })
    }

    fn push(&mut self, host: &Host) -> Result<(), std::io::Error> {
        let view = HostView::from_model(host);
        let id = view.id(self.seen);
        self.seen += 1;
        let json = serde_json::to_string(&view)?;
        self.pending_bytes += json.len();
        self.pending.push((id, json));
        if self.pending_bytes >= self.buffer {
            self.write_run()?;
        }
        Ok(())
    }

    /// Writes the pending hosts out, sorted by id (stably: equal ids keep file order).
    fn write_run(&mut self) -> Result<(), std::io::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending.sort_by(|x, y| x.0.cmp(&y.0));
        let start = self.written;
        let mut w = BufWriter::new(&self.file);
        for (id, json) in self.pending.drain(..) {
            let line = format!("[{},{json}]\n", serde_json::to_string(&id)?);
            w.write_all(line.as_bytes())?;
            self.written += line.len() as u64;
        }
        w.flush()?;
        self.runs.push((start, self.written));
        self.pending_bytes = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<SortedHosts, std::io::Error> {
        self.write_run()?;
        Ok(SortedHosts {
            file: Some(self.file),
            runs: self.runs,
        })
    }
}

/// A run's hosts, in sorted runs in a temporary file (removed when dropped).
#[derive(Debug)]
struct SortedHosts {
    file: Option<File>,
    runs: Vec<(u64, u64)>,
}

impl SortedHosts {
    /// A run without hosts.
    fn empty() -> Self {
        SortedHosts {
            file: None,
            runs: Vec::new(),
        }
    }

    /// The hosts in id order, merged from the sorted runs.
    fn merged(&self) -> Result<Merge<'_>, std::io::Error> {
        let mut m = Merge {
            readers: Vec::new(),
            heads: BinaryHeap::new(),
            views: Vec::new(),
        };
        if let Some(file) = &self.file {
            for &(pos, end) in &self.runs {
                m.readers.push(BufReader::with_capacity(
                    RUN_READ_BUFFER,
                    Section { file, pos, end },
                ));
                m.views.push(None);
                m.advance(m.readers.len() - 1)?;
            }
        }
        Ok(m)
    }
}

/// Part of a file, read by position so that several can be read at once.
struct Section<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        let Some(buf) = buf.get_mut(..n) else {
            return Ok(0);
        };
        let got = self.file.read_at(buf, self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// A k-way merge of sorted runs: the smallest id next, the earliest run on a tie.
struct Merge<'f> {
    readers: Vec<BufReader<Section<'f>>>,
    heads: BinaryHeap<Reverse<(HostId, usize)>>,
    /// The head host of each run.
    views: Vec<Option<HostView>>,
}

impl Merge<'_> {
    /// Reads run `i`'s next host into its head.
    fn advance(&mut self, i: usize) -> Result<(), std::io::Error> {
        let Some(r) = self.readers.get_mut(i) else {
            return Ok(());
        };
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let (id, view): (HostId, HostView) = serde_json::from_str(&line)?;
        if let Some(slot) = self.views.get_mut(i) {
            *slot = Some(view);
        }
        self.heads.push(Reverse((id, i)));
        Ok(())
    }

    fn next(&mut self) -> Result<Option<(HostId, HostView)>, std::io::Error> {
        let Some(Reverse((id, i))) = self.heads.pop() else {
            return Ok(None);
        };
        let view = self.views.get_mut(i).and_then(Option::take);
        self.advance(i)?;
        Ok(view.map(|v| (id, v)))
    }
}

/// Where the differences go: straight to the output, or (JSON, whose "changed" comes
/// before the hosts) to a temporary file first.
enum HostsOut<'o> {
    Direct(&'o mut dyn Write),
    Held { file: BufWriter<File>, first: bool },
}

/// Writes the difference of two spooled runs in `format`, a pair of hosts at a time.
/// Returns whether they differ (Ndiff's exit status 1). The output is byte for byte what
/// [`super::ScanDiff`]'s `to_text`, `to_xml` and `to_json` (and a newline) give.
pub fn write_diff(
    before: &SpooledRun,
    after: &SpooledRun,
    opts: DiffOptions,
    format: DiffFormat,
    out: &mut dyn Write,
) -> Result<bool, WriteError> {
    let verbose = opts.verbose;
    let (ra, rb) = (
        RunInfo::from_model(&before.run),
        RunInfo::from_model(&after.run),
    );
    let pre = ScriptListDiff::new(&before.run.prescripts, &after.run.prescripts, verbose);
    let post = ScriptListDiff::new(&before.run.postscripts, &after.run.postscripts, verbose);

    let mut head = String::new();
    match format {
        DiffFormat::Text => text_head(&mut head, &ra, &rb, &pre, verbose),
        DiffFormat::Xml => xml_head(&mut head, &ra, &rb, &pre, verbose),
        DiffFormat::Json => {}
    }
    put(out, &head)?;
    let mut hosts = match format {
        DiffFormat::Json => HostsOut::Held {
            file: BufWriter::new(tempfile::tempfile().map_err(WriteError::Temp)?),
            first: true,
        },
        _ => HostsOut::Direct(&mut *out),
    };
    let mut changed = false;
    let mut each = |a: Option<HostView>, b: Option<HostView>| -> Result<(), WriteError> {
        let d = HostDiff::new(a.unwrap_or_default(), b.unwrap_or_default(), verbose);
        changed |= d.changes > 0;
        if !verbose && d.changes == 0 {
            return Ok(());
        }
        match (&mut hosts, format) {
            (HostsOut::Direct(out), DiffFormat::Text) => {
                let mut s = String::new();
                d.text(&mut s, verbose);
                put(&mut **out, &s)
            }
            (HostsOut::Direct(out), _) => {
                let mut s = String::new();
                d.elem(verbose).write(&mut s);
                put(&mut **out, &s)
            }
            (HostsOut::Held { file, first }, _) => {
                if !*first {
                    file.write_all(b",").map_err(WriteError::Temp)?;
                }
                *first = false;
                serde_json::to_writer(&mut *file, &JsonHost::new(&d))
                    .map_err(|e| WriteError::Temp(e.into()))
            }
        }
    };
    pair(&before.hosts, &after.hosts, &mut each)?;

    let mut tail = String::new();
    match format {
        DiffFormat::Text => text_tail(&mut tail, &post, verbose),
        DiffFormat::Xml => xml_tail(&mut tail, &post, verbose),
        DiffFormat::Json => {
            let HostsOut::Held { file, .. } = hosts else {
                return Err(WriteError::Temp(std::io::Error::other("no held hosts")));
            };
            write_json(out, changed, &ra, &rb, &pre, &post, file)?;
        }
    }
    put(out, &tail)?;
    Ok(changed)
}

/// Our JSON document (the shape of [`super::ScanDiff::to_json`]), its hosts copied from
/// where they were held.
fn write_json(
    out: &mut dyn Write,
    changed: bool,
    before: &RunInfo,
    after: &RunInfo,
    pre: &ScriptListDiff,
    post: &ScriptListDiff,
    held: BufWriter<File>,
) -> Result<(), WriteError> {
    let head = format!(
        "{{\"portolan_diff_version\":1,\"changed\":{changed},\"before\":{},\"after\":{},\"prescripts\":{},\"hosts\":[",
        json(before)?,
        json(after)?,
        json(&Change {
            before: &pre.a,
            after: &pre.b
        })?,
    );
    let tail = format!(
        "],\"postscripts\":{}}}\n",
        json(&Change {
            before: &post.a,
            after: &post.b
        })?
    );
    out.write_all(head.as_bytes()).map_err(WriteError::Output)?;
    let mut file = held
        .into_inner()
        .map_err(|e| WriteError::Temp(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(WriteError::Temp)?;
    copy(&mut file, out)?;
    out.write_all(tail.as_bytes()).map_err(WriteError::Output)
}

/// Copies a held file to the output, telling the file's errors from the output's.
fn copy(from: &mut File, out: &mut dyn Write) -> Result<(), WriteError> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = from.read(&mut buf).map_err(WriteError::Temp)?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        out.write_all(chunk).map_err(WriteError::Output)?;
    }
}

fn put(out: &mut dyn Write, s: &str) -> Result<(), WriteError> {
    out.write_all(s.as_bytes()).map_err(WriteError::Output)
}

fn json(v: &impl serde::Serialize) -> Result<String, WriteError> {
    serde_json::to_string(v).map_err(|e| WriteError::Temp(e.into()))
}

/// Pairs the two sides' hosts as [`super::diff`] does: in id order, equal ids together (the
/// first of each side, then the second, ...); hosts with neither address nor name are never
/// paired and come last, the first scan's before the second's.
fn pair(
    a: &SortedHosts,
    b: &SortedHosts,
    each: &mut dyn FnMut(Option<HostView>, Option<HostView>) -> Result<(), WriteError>,
) -> Result<(), WriteError> {
    let (mut a, mut b) = (
        a.merged().map_err(WriteError::Temp)?,
        b.merged().map_err(WriteError::Temp)?,
    );
    let next = |m: &mut Merge| m.next().map_err(WriteError::Temp);
    let anon = |id: &HostId| matches!(id, HostId::Anonymous(_));
    let (mut x, mut y) = (next(&mut a)?, next(&mut b)?);
    loop {
        match (x.take(), y.take()) {
            (None, None) => return Ok(()),
            (Some((_, va)), None) => {
                each(Some(va), None)?;
                x = next(&mut a)?;
            }
            (None, Some((_, vb))) => {
                each(None, Some(vb))?;
                y = next(&mut b)?;
            }
            (Some((ia, va)), Some((ib, vb))) => {
                if ia < ib || (anon(&ia) && anon(&ib)) {
                    each(Some(va), None)?;
                    x = next(&mut a)?;
                    y = Some((ib, vb));
                } else if ia > ib {
                    each(None, Some(vb))?;
                    x = Some((ia, va));
                    y = next(&mut b)?;
                } else {
                    each(Some(va), Some(vb))?;
                    x = next(&mut a)?;
                    y = next(&mut b)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
