//! Portolan's JSON output (-oJ): one JSON document, streamed so the file fills while the scan
//! runs — the run's header at `begin`, one host per line as each finishes, `runstats` at
//! `end`. Hosts are `model::Host` as serde renders it, except that the port lists of
//! collapsed ports are written as Nmap's compact ranges (`"1-21,23-79"`) rather than one
//! number per port, which would make a full-range scan's file enormous. The format is
//! documented in docs/json-schema.md and described by docs/portolan.schema.json.

use std::io::{BufRead, Read, Write};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::escape::json_to_writer;
use crate::text::Tally;
use crate::xml_reader::{ReadError, RunStream};
use portolan_model::{
    compact_port_list, parse_port_list, Address, ExtraPorts, ExtraReason, Host, HostStatus,
    Hostname, IpIdSequence, Os, Port, PortState, Protocol, RunStats, ScanInfo, ScanRun, Script,
    TcpSequence, TcpTsSequence, Times, Trace, Uptime,
};
use portolan_model::{OutputError, OutputOptions, Sink};

/// The version of the document layout, written as `portolan_json_version`. Bumped on any
/// change that an older reader would misread.
pub const JSON_VERSION: u64 = 1;

/// The fields written before the host list, in document order.
#[derive(Serialize)]
struct Head<'a> {
    portolan_json_version: u64,
    scanner: &'a str,
    version: &'a str,
    args: &'a str,
    start: i64,
    scaninfo: &'a [ScanInfo],
    verbose: u8,
    debugging: u8,
    prescripts: &'a [Script],
}

/// A host as written: the model's fields in the model's order, with compact port lists.
/// Built by exhaustive destructuring, so a field added to the model fails to compile here
/// until the format says what to do with it.
#[derive(Serialize)]
struct HostOut<'a> {
    starttime: Option<i64>,
    endtime: Option<i64>,
    status: &'a HostStatus,
    addresses: &'a [Address],
    hostnames: &'a [Hostname],
    extraports: Vec<ExtraPortsOut<'a>>,
    ports: &'a [Port],
    os: &'a Option<Os>,
    uptime: &'a Option<Uptime>,
    distance: Option<u32>,
    tcpsequence: &'a Option<TcpSequence>,
    ipidsequence: &'a Option<IpIdSequence>,
    tcptssequence: &'a Option<TcpTsSequence>,
    hostscripts: &'a [Script],
    trace: &'a Option<Trace>,
    times: Option<Times>,
}

#[derive(Serialize)]
struct ExtraPortsOut<'a> {
    state: PortState,
    count: u32,
    reasons: Vec<ExtraReasonOut<'a>>,
}

#[derive(Serialize)]
struct ExtraReasonOut<'a> {
    reason: &'a str,
    count: u32,
    proto: Option<Protocol>,
    port_list: String,
}

impl<'a> From<&'a Host> for HostOut<'a> {
    fn from(host: &'a Host) -> Self {
        let Host {
            starttime,
            endtime,
            status,
            addresses,
            hostnames,
            extraports,
            ports,
            os,
            uptime,
            distance,
            tcpsequence,
            ipidsequence,
            tcptssequence,
            hostscripts,
            trace,
            times,
        } = host;
        HostOut {
            starttime: *starttime,
            endtime: *endtime,
            status,
            addresses,
            hostnames,
            extraports: extraports
                .iter()
                .map(|ep| {
                    let ExtraPorts {
                        state,
                        count,
                        reasons,
                    } = ep;
                    ExtraPortsOut {
                        state: *state,
                        count: *count,
                        reasons: reasons
                            .iter()
                            .map(|r| {
                                let ExtraReason {
                                    reason,
                                    count,
                                    proto,
                                    port_list,
                                } = r;
                                ExtraReasonOut {
                                    reason,
                                    count: *count,
                                    proto: *proto,
                                    port_list: compact_port_list(port_list),
                                }
                            })
                            .collect(),
                    }
                })
                .collect(),
            ports,
            os,
            uptime,
            distance: *distance,
            tcpsequence,
            ipidsequence,
            tcptssequence,
            hostscripts,
            trace,
            times: *times,
        }
    }
}

/// Writes the JSON document to any byte sink.
pub struct JsonWriter<W: Write> {
    out: W,
    opts: OutputOptions,
    hosts_written: usize,
    tally: Tally,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W, opts: OutputOptions) -> Self {
        JsonWriter {
            out,
            opts,
            hosts_written: 0,
            tally: Tally::default(),
        }
    }

    /// The options this writer was made with (the JSON carries results, not their rendering).
    pub fn options(&self) -> &OutputOptions {
        &self.opts
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for JsonWriter<W> {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        // Exhaustive, so that a field added to ScanRun is not silently left out.
        let ScanRun {
            scanner,
            version,
            args,
            start,
            scaninfo,
            verbose,
            debugging,
            prescripts,
            hosts: _,       // streamed by `host`
            postscripts: _, // written by `end`
            runstats: _,    // written by `end`
        } = run;
        let head = Head {
            portolan_json_version: JSON_VERSION,
            scanner,
            version,
            args,
            start: *start,
            scaninfo,
            verbose: *verbose,
            debugging: *debugging,
            prescripts,
        };
        let mut s = Vec::new();
        json_to_writer(&mut s, &head).map_err(OutputError::json)?;
        // Reopen the object to append the host list.
        s.pop();
        s.extend_from_slice(b",\"hosts\":[\n");
        self.out.write_all(&s)?;
        self.out.flush()?;
        Ok(())
    }

    fn host(&mut self, _run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        self.tally.add(host);
        if self.hosts_written > 0 {
            self.out.write_all(b",\n")?;
        }
        json_to_writer(&mut self.out, &HostOut::from(host)).map_err(OutputError::json)?;
        self.hosts_written += 1;
        self.out.flush()?;
        Ok(())
    }

    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        let stats: RunStats = self.tally.stats(run);
        if self.hosts_written > 0 {
            self.out.write_all(b"\n")?;
        }
        self.out.write_all(b"],\"postscripts\":")?;
        json_to_writer(&mut self.out, &run.postscripts).map_err(OutputError::json)?;
        self.out.write_all(b",\"runstats\":")?;
        json_to_writer(&mut self.out, &stats).map_err(OutputError::json)?;
        self.out.write_all(b"}\n")?;
        self.out.flush()?;
        Ok(())
    }
}

/// Reads a document written by [`JsonWriter`]. Fields it does not know are ignored. A file
/// written with `--append-output` holds several documents; this is the last one (see
/// [`read_runs`] for all).
pub fn read(reader: impl Read) -> Result<ScanRun, ReadError> {
    let mut last = None;
    for_each_run(reader, |run| {
        last = Some(run);
        Ok(())
    })?;
    last.ok_or_else(|| {
        ReadError::Json(<serde_json::Error as de::Error>::custom(
            "no JSON document (empty file)",
        ))
    })
}

/// Every document of a file written by [`JsonWriter`], in file order (`--append-output`
/// writes one after another, each on its own lines).
pub fn read_runs(reader: impl Read) -> Result<Vec<ScanRun>, ReadError> {
    let mut runs = Vec::new();
    for_each_run(reader, |run| {
        runs.push(run);
        Ok(())
    })?;
    Ok(runs)
}

/// Hands each document to `each` as soon as it is read, so that only one is held at a time.
pub fn for_each_run(
    reader: impl Read,
    mut each: impl FnMut(ScanRun) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    for doc in de.into_iter::<Doc>() {
        let run = doc?
            .0
            .map_err(|found| ReadError::UnsupportedJsonVersion { found })?;
        each(run)?;
    }
    Ok(())
}

/// One document, read with [`DocVisitor`].
struct Doc(Result<ScanRun, u64>);

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(DocVisitor { stream: None }).map(Doc)
    }
}

/// Streams every document of the file to `stream`, host by host, holding one host at a time
/// (hosts written before `portolan_json_version`, which our writer never does, are held
/// until it is known). Errors in a second or later document count lines from its start.
pub fn stream(mut reader: impl BufRead, stream: &mut dyn RunStream) -> Result<(), ReadError> {
    let mut once = crate::xml_reader::BeginOnce::new(stream);
    let stream = &mut once;
    loop {
        // White space between documents; the end of the file ends the list.
        loop {
            let buf = reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            match buf.iter().position(|b| !b.is_ascii_whitespace()) {
                Some(i) => {
                    reader.consume(i);
                    break;
                }
                None => {
                    let n = buf.len();
                    reader.consume(n);
                }
            }
        }
        // serde_json reads no further than the closing brace, so the next document starts
        // where this one ends.
        let mut de = serde_json::Deserializer::from_reader(&mut reader);
        let doc = de.deserialize_map(DocVisitor {
            stream: Some(&mut *stream),
        })?;
        let run = doc.map_err(|found| ReadError::UnsupportedJsonVersion { found })?;
        stream.run(run)?;
    }
}

/// Reads the document straight into the model (no intermediate JSON tree, which would cost
/// several times the file's size). `Err(version)` when the layout version is not ours: it is
/// checked as soon as it is seen, so a newer layout is reported as such rather than as
/// whatever field it changed.
struct DocVisitor<'a> {
    /// Where hosts go as they are read, instead of into the run.
    stream: Option<&'a mut dyn RunStream>,
}

impl<'de> Visitor<'de> for DocVisitor<'_> {
    type Value = Result<ScanRun, u64>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Portolan JSON document (an object with portolan_json_version)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut stream = self.stream;
        let mut version = None;
        let mut slots = Slots::default();
        // Fields met before the version are kept as plain JSON and typed once it is known.
        let mut pending: Vec<(String, serde_json::Value)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "portolan_json_version" {
                let v: u64 = map.next_value()?;
                if v != JSON_VERSION {
                    // Consume the rest so that the document still parses as JSON.
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    return Ok(Err(v));
                }
                version = Some(v);
            } else if !Slots::KNOWN.contains(&key.as_str()) {
                map.next_value::<IgnoredAny>()?;
            } else if version.is_some() {
                map.next_value_seed(Slot {
                    slots: &mut slots,
                    key: &key,
                    stream: stream.as_deref_mut(),
                })?;
            } else {
                pending.push((key, map.next_value()?));
            }
        }
        if version.is_none() {
            return Ok(Err(0));
        }
        for (key, value) in pending {
            Slot {
                slots: &mut slots,
                key: &key,
                stream: stream.as_deref_mut(),
            }
            .deserialize(value)
            .map_err(de::Error::custom)?;
        }
        slots.finish().map(Ok)
    }
}

/// The top-level fields of the document, as they are found.
#[derive(Default)]
struct Slots {
    scanner: Option<String>,
    version: Option<String>,
    args: Option<String>,
    start: Option<i64>,
    scaninfo: Option<Vec<ScanInfo>>,
    verbose: Option<u8>,
    debugging: Option<u8>,
    prescripts: Option<Vec<Script>>,
    hosts: Option<Vec<HostIn>>,
    postscripts: Option<Vec<Script>>,
    runstats: Option<Option<RunStats>>,
}

impl Slots {
    const KNOWN: &'static [&'static str] = &[
        "scanner",
        "version",
        "args",
        "start",
        "scaninfo",
        "verbose",
        "debugging",
        "prescripts",
        "hosts",
        "postscripts",
        "runstats",
    ];

    /// What is known of the run so far, the rest left empty (for a stream's `begin`).
    fn header(&self) -> ScanRun {
        ScanRun {
            scanner: self.scanner.clone().unwrap_or_default(),
            version: self.version.clone().unwrap_or_default(),
            args: self.args.clone().unwrap_or_default(),
            start: self.start.unwrap_or_default(),
            scaninfo: self.scaninfo.clone().unwrap_or_default(),
            verbose: self.verbose.unwrap_or_default(),
            debugging: self.debugging.unwrap_or_default(),
            prescripts: self.prescripts.clone().unwrap_or_default(),
            hosts: Vec::new(),
            postscripts: Vec::new(),
            runstats: None,
        }
    }

    fn finish<E: de::Error>(self) -> Result<ScanRun, E> {
        fn need<T, E: de::Error>(v: Option<T>, name: &'static str) -> Result<T, E> {
            v.ok_or_else(|| E::missing_field(name))
        }
        Ok(ScanRun {
            scanner: need(self.scanner, "scanner")?,
            version: need(self.version, "version")?,
            args: need(self.args, "args")?,
            start: need(self.start, "start")?,
            scaninfo: need(self.scaninfo, "scaninfo")?,
            verbose: need(self.verbose, "verbose")?,
            debugging: need(self.debugging, "debugging")?,
            // Absent in documents written before scripts were carried.
            prescripts: self.prescripts.unwrap_or_default(),
            postscripts: self.postscripts.unwrap_or_default(),
            hosts: need(self.hosts, "hosts")?
                .into_iter()
                .map(Host::from)
                .collect(),
            runstats: need(self.runstats, "runstats")?,
        })
    }
}

/// Deserialises one top-level field into its slot.
struct Slot<'a, 's> {
    slots: &'a mut Slots,
    key: &'a str,
    stream: Option<&'a mut (dyn RunStream + 's)>,
}

/// The host list, each host handed to the stream as soon as it is read, after the run's
/// header as known so far.
struct HostSeq<'a, 's>(&'a mut (dyn RunStream + 's), ScanRun);

impl<'de> Visitor<'de> for HostSeq<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of hosts")
    }

    fn visit_seq<S: de::SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while let Some(h) = seq.next_element::<HostIn>()? {
            self.0.begin(&self.1).map_err(de::Error::custom)?;
            self.0.host(Host::from(h)).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Slot<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let s = self.slots;
        match self.key {
            "scanner" => s.scanner = Some(Deserialize::deserialize(d)?),
            "version" => s.version = Some(Deserialize::deserialize(d)?),
            "args" => s.args = Some(Deserialize::deserialize(d)?),
            "start" => s.start = Some(Deserialize::deserialize(d)?),
            "scaninfo" => s.scaninfo = Some(Deserialize::deserialize(d)?),
            "verbose" => s.verbose = Some(Deserialize::deserialize(d)?),
            "debugging" => s.debugging = Some(Deserialize::deserialize(d)?),
            "prescripts" => s.prescripts = Some(Deserialize::deserialize(d)?),
            "hosts" => match self.stream {
                Some(stream) => {
                    d.deserialize_seq(HostSeq(stream, s.header()))?;
                    s.hosts = Some(Vec::new());
                }
                None => s.hosts = Some(Deserialize::deserialize(d)?),
            },
            "postscripts" => s.postscripts = Some(Deserialize::deserialize(d)?),
            "runstats" => s.runstats = Some(Deserialize::deserialize(d)?),
            _ => {
                IgnoredAny::deserialize(d)?;
            }
        }
        Ok(())
    }
}

/// A host as read: like [`Host`] but with compact port lists.
#[derive(Deserialize)]
struct HostIn {
    starttime: Option<i64>,
    endtime: Option<i64>,
    status: HostStatus,
    addresses: Vec<Address>,
    hostnames: Vec<Hostname>,
    extraports: Vec<ExtraPortsIn>,
    ports: Vec<Port>,
    // Absent in documents written before the model carried them.
    #[serde(default)]
    os: Option<Os>,
    #[serde(default)]
    uptime: Option<Uptime>,
    #[serde(default)]
    distance: Option<u32>,
    #[serde(default)]
    tcpsequence: Option<TcpSequence>,
    #[serde(default)]
    ipidsequence: Option<IpIdSequence>,
    #[serde(default)]
    tcptssequence: Option<TcpTsSequence>,
    #[serde(default)]
    hostscripts: Vec<Script>,
    #[serde(default)]
    trace: Option<Trace>,
    times: Option<Times>,
}

#[derive(Deserialize)]
struct ExtraPortsIn {
    state: PortState,
    count: u32,
    reasons: Vec<ExtraReasonIn>,
}

#[derive(Deserialize)]
struct ExtraReasonIn {
    reason: String,
    count: u32,
    proto: Option<Protocol>,
    #[serde(deserialize_with = "port_list")]
    port_list: Vec<u16>,
}

/// `"1-3,5"` → `[1, 2, 3, 5]`.
fn port_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    let text = String::deserialize(d)?;
    parse_port_list(&text).ok_or_else(|| {
        de::Error::invalid_value(de::Unexpected::Str(&text), &"a port list like \"1-21,23\"")
    })
}

impl From<HostIn> for Host {
    fn from(h: HostIn) -> Self {
        Host {
            starttime: h.starttime,
            endtime: h.endtime,
            status: h.status,
            addresses: h.addresses,
            hostnames: h.hostnames,
            extraports: h
                .extraports
                .into_iter()
                .map(|ep| ExtraPorts {
                    state: ep.state,
                    count: ep.count,
                    reasons: ep
                        .reasons
                        .into_iter()
                        .map(|r| ExtraReason {
                            reason: r.reason,
                            count: r.count,
                            proto: r.proto,
                            port_list: r.port_list,
                        })
                        .collect(),
                })
                .collect(),
            ports: h.ports,
            os: h.os,
            uptime: h.uptime,
            distance: h.distance,
            tcpsequence: h.tcpsequence,
            ipidsequence: h.ipidsequence,
            tcptssequence: h.tcptssequence,
            hostscripts: h.hostscripts,
            trace: h.trace,
            times: h.times,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_model::*;

    #[test]
    fn empty_run_is_valid_json() {
        let mut run = ScanRun::new("portolan -sn 192.0.2.0/30", 10);
        let mut w = JsonWriter::new(Vec::new(), OutputOptions::default());
        w.begin(&run).unwrap();
        run.runstats = Some(RunStats {
            finished: 11,
            elapsed: 1.0,
            exit: RunExit::Success,
            errormsg: None,
            hosts_up: 0,
            hosts_down: 4,
            hosts_total: 4,
            completeness: None,
        });
        w.end(&run).unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert!(text.starts_with("{\"portolan_json_version\":1,\"scanner\":\"portolan\""));
        assert_eq!(read(text.as_bytes()).unwrap(), run);
    }

    #[test]
    fn reading_tolerates_additions_and_reports_bad_lists() {
        let run = ScanRun::new("x", 1);
        let mut w = JsonWriter::new(Vec::new(), OutputOptions::default());
        w.begin(&run).unwrap();
        let mut h = Host::new("192.0.2.1".parse().unwrap(), HostStatus::up("syn-ack"));
        h.extraports.push(ExtraPorts {
            state: PortState::Closed,
            count: 3,
            reasons: vec![ExtraReason {
                reason: "reset".into(),
                count: 3,
                proto: Some(Protocol::Tcp),
                port_list: vec![1, 2, 3],
            }],
        });
        w.host(&run, &h).unwrap();
        w.end(&run).unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert!(text.contains("\"port_list\":\"1-3\""));
        let extra = text.replacen(
            "{\"portolan_json_version\":1,",
            "{\"future\":[1,{}],\"portolan_json_version\":1,",
            1,
        );
        assert_eq!(read(extra.as_bytes()).unwrap().hosts, vec![h]);
        let bad = text.replace("\"1-3\"", "\"3-1\"");
        let e = read(bad.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("port list"), "{e}");
        assert_eq!(e.line(), Some(2));
    }

    #[test]
    fn other_versions_are_refused() {
        let e = read(&b"{\"hosts\":\"new shape\",\"portolan_json_version\":2}"[..]).unwrap_err();
        assert!(
            matches!(e, ReadError::UnsupportedJsonVersion { found: 2 }),
            "{e}"
        );
        let e =
            read(&b"{\"portolan_json_version\":2,\"hosts\":{\"new\":\"shape\"}}"[..]).unwrap_err();
        assert!(
            matches!(e, ReadError::UnsupportedJsonVersion { found: 2 }),
            "{e}"
        );
        let e = read(&b"{}"[..]).unwrap_err();
        assert!(
            matches!(e, ReadError::UnsupportedJsonVersion { found: 0 }),
            "{e}"
        );
        let e = read(&b"[]"[..]).unwrap_err();
        assert!(matches!(e, ReadError::Json(_)), "{e}");
        let e = read(&b"{\"portolan_json_version\":2}"[..]).unwrap_err();
        assert!(matches!(e, ReadError::UnsupportedJsonVersion { found: 2 }));
        let e = read(&b"{\"portolan_json_version\":1,"[..]).unwrap_err();
        assert_eq!(e.line(), Some(1));
    }
}
