//! The tests computed from the replies (osscan2.cc's HostOsScanStats and makeFP), as a
//! subject fingerprint plus the sequence reports Nmap prints (TCP sequence prediction, IP
//! ID sequence, TCP timestamps, uptime) and the network distance.
//!
//! Replies are taken in arrival order and, as in Nmap, the first answer to a probe counts.
//! Checksums of replies are not verified (Nmap does not either); only U1's quoted headers
//! are judged (RIPCK, RUCK).
// OWNER: helper "os-probes".

use std::time::{Duration, Instant};

use portolan_wire::{checksum, ipv4, tcp};

use crate::fingerprint::{Fingerprint, Test};
use crate::probes::{self, locate, HostProbes, OsProbe, Slot, SEQ_GAP, U1_BYTE, U1_IP_ID};

/// One received packet and the probe it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What [`probes::classify`] said; the analysis re-reads the packet itself (a SEQ
    /// probe's resend, Nmap's TOPS, counts for OPS and WIN only).
    pub probe: OsProbe,
    pub at: Instant,
    /// The whole IPv4 packet, header on.
    pub packet: Vec<u8>,
}

/// What was sent and received for one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// When SEQ 1-6 left (their rates are per second of sending).
    pub seq_sent: [Option<Instant>; 6],
    pub replies: Vec<Reply>,
}

/// Where the target is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// Directly connected: distance 1.
    pub on_link: bool,
    pub localhost: bool,
}

/// `<tcpsequence>`: Nmap's difficulty index and the ISNs of the SEQ replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqReport {
    pub index: u32,
    pub difficulty: String,
    pub values: Vec<u32>,
}

/// `<ipidsequence>`: the class of the SEQ replies' IP IDs, and those IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdReport {
    pub class: String,
    pub values: Vec<u16>,
}

/// `<tcptssequence>`: the timestamp class and the SEQ replies' timestamps (none when the
/// class is "none returned (unsupported)", as Nmap omits them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsReport {
    pub class: String,
    pub values: Vec<u32>,
}

/// Everything OS detection learnt from one round of probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub fingerprint: Fingerprint,
    /// Printed when more than three SEQ probes were answered.
    pub tcp_seq: Option<SeqReport>,
    /// Printed when more than two were.
    pub ip_id: Option<IdReport>,
    pub tcp_ts: Option<TsReport>,
    /// From the first timestamp and its rate (Nmap's `lastboot`, relative to SEQ 1's send).
    pub uptime_seconds: Option<u64>,
    /// Hops, and how they were found: `L` localhost, `D` on the link, `I` from U1's quote.
    pub distance: Option<(u32, char)>,
    /// Nmap's `G=Y`: an open and a closed TCP port known, a U1 answer or closed UDP port
    /// known, and a plausible distance.
    pub good: bool,
}

/// Nmap's IPID_SEQ_* classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpIdClass {
    Unknown,
    Constant,
    Incr,
    IncrBy2,
    BrokenIncr,
    Rpi,
    Random,
    Zero,
}

impl IpIdClass {
    fn describe(self) -> &'static str {
        match self {
            Self::Constant => "Duplicated ipid (!)",
            Self::Incr => "Incremental",
            Self::IncrBy2 => "Incrementing by 2",
            Self::BrokenIncr => "Broken little-endian incremental",
            Self::Random => "Randomized",
            Self::Rpi => "Random positive increments",
            Self::Zero => "All zeros",
            Self::Unknown => "Busy server or unknown class",
        }
    }

    /// The TI/CI/II value, `None` to omit the attribute.
    fn attr(self, first: u32) -> Option<String> {
        Some(match self {
            Self::Constant => hex(first),
            Self::Incr | Self::IncrBy2 => "I".into(),
            Self::BrokenIncr => "BI".into(),
            Self::Rpi => "RI".into(),
            Self::Random => "RD".into(),
            Self::Zero => "Z".into(),
            Self::Unknown => return None,
        })
    }

    fn incremental(self) -> bool {
        matches!(self, Self::Incr | Self::BrokenIncr | Self::Rpi)
    }
}

/// Nmap's TS_SEQ_* classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsClass {
    Unknown,
    Zero,
    Hz2,
    Hz100,
    Hz1000,
    Other,
    Unsupported,
}

impl TsClass {
    fn describe(self) -> &'static str {
        match self {
            Self::Zero => "zero timestamp",
            Self::Hz2 => "2HZ",
            Self::Hz100 => "100HZ",
            Self::Hz1000 => "1000HZ",
            Self::Other => "other",
            Self::Unsupported => "none returned (unsupported)",
            Self::Unknown => "unknown class",
        }
    }
}

/// Nmap's difficulty words for a sequence index.
pub fn difficulty(index: u32) -> &'static str {
    match index {
        0..=2 => "Trivial joke",
        3..=5 => "Easy",
        6..=10 => "Medium",
        11 => "Formidable",
        12..=15 => "Worthy challenge",
        _ => "Good luck!",
    }
}

/// Nmap's initial TTL guess from a received one (`get_initial_ttl_guess`): the common
/// starting TTL at or above it.
pub fn initial_ttl_guess(ttl: u8) -> u8 {
    match ttl {
        0..=32 => 32,
        33..=64 => 64,
        65..=128 => 128,
        _ => 255,
    }
}

fn hex(v: u32) -> String {
    format!("{v:X}")
}

fn attr(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

fn no_reply(name: &str) -> Test {
    Test {
        name: name.to_string(),
        attrs: vec![attr("R", "N")],
    }
}

/// The TCP options of a segment as Nmap's `get_tcpopt_string` writes them (`M5B4ST11NW7`);
/// empty when they do not parse. As Nmap, an end-of-list does not stop the walk: padding
/// after it shows as more `L`s; unknown kinds print nothing.
pub fn options_string(segment: &[u8]) -> String {
    options_walk(segment).unwrap_or_default()
}

fn options_walk(segment: &[u8]) -> Option<String> {
    let offset = usize::from(segment.get(12)? >> 4) * 4;
    if segment.len() < tcp::HEADER_LEN || offset < tcp::HEADER_LEN {
        return None;
    }
    let opts = segment.get(tcp::HEADER_LEN..offset.min(segment.len()))?;
    let mut out = String::new();
    let mut i = 0;
    while i < opts.len() {
        let kind = opts[i];
        let len = match kind {
            0 | 1 => 1,
            _ => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || len > opts.len() - i {
                    return None;
                }
                len
            }
        };
        let data = &opts[i..i + len];
        match kind {
            0 => out.push('L'),
            1 => out.push('N'),
            2 => {
                let q = data.get(2..4)?;
                out.push_str(&format!("M{:X}", u16::from_be_bytes([q[0], q[1]])));
            }
            3 => out.push_str(&format!("W{:X}", data.get(2)?)),
            4 => out.push('S'),
            8 => {
                let q = data.get(2..10)?;
                let bit = |b: &[u8]| if b.iter().any(|&x| x != 0) { '1' } else { '0' };
                out.push('T');
                out.push(bit(&q[..4]));
                out.push(bit(&q[4..]));
            }
            _ => {}
        }
        i += len;
    }
    Some(out)
}

/// The TSval of a segment's timestamp option (Nmap's `gettcpopt_ts`: kind 8, length 10,
/// the first such), `None` without one.
fn timestamp(segment: &[u8]) -> Option<u32> {
    let offset = usize::from(segment.get(12)? >> 4) * 4;
    let opts = segment.get(tcp::HEADER_LEN..offset.min(segment.len()))?;
    let mut i = 0;
    while i < opts.len() {
        let len = match opts[i] {
            0 | 1 => 1,
            _ => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || len > opts.len() - i {
                    return None;
                }
                len
            }
        };
        if opts[i] == 8 && len == 10 {
            let q = &opts[i + 2..i + 6];
            return Some(u32::from_be_bytes([q[0], q[1], q[2], q[3]]));
        }
        i += len;
    }
    None
}

/// What the reply packets told, slot by slot (Nmap's HostOsScanStats).
struct State<'h> {
    h: &'h HostProbes,
    localhost: bool,
    /// SEQ replies: ISN (0: none, as Nmap), IP ID, TSval, per probe.
    seqs: [u32; 6],
    seq_ids: [u32; 6],
    seq_ts: [u32; 6],
    seq_responses: usize,
    ts_class: TsClass,
    last_ip_id: u16,
    tcp_ids: [Option<u32>; 6],
    closed_ids: [Option<u32>; 3],
    icmp_ids: [Option<u32>; 2],
    ops: [Option<String>; 6],
    win: [Option<String>; 6],
    ecn: Option<Test>,
    t: [Option<Test>; 7],
    u1: Option<Test>,
    echo: [Option<(bool, u8)>; 2],
    ie: Option<Test>,
    /// Hops from U1's quoted TTL.
    distance: Option<i64>,
}

/// A reply's headers, already checked to be as long as they say.
struct Parsed<'a> {
    ip: ipv4::Packet<&'a [u8]>,
    l4: &'a [u8],
}

impl<'h> State<'h> {
    fn new(h: &'h HostProbes, localhost: bool) -> Self {
        State {
            h,
            localhost,
            seqs: [0; 6],
            seq_ids: [0; 6],
            seq_ts: [0; 6],
            seq_responses: 0,
            ts_class: TsClass::Unknown,
            last_ip_id: 0,
            tcp_ids: [None; 6],
            closed_ids: [None; 3],
            icmp_ids: [None; 2],
            ops: Default::default(),
            win: Default::default(),
            ecn: None,
            t: Default::default(),
            u1: None,
            echo: [None; 2],
            ie: None,
            distance: None,
        }
    }

    fn take(&mut self, packet: &[u8]) {
        let Some(slot) = locate(self.h, packet) else {
            return;
        };
        let Ok(ip) = ipv4::Packet::new_checked(packet) else {
            return;
        };
        let p = Parsed {
            l4: ip.payload(),
            ip,
        };
        match slot {
            Slot::Tcp(off) => self.take_tcp(&p, usize::from(off)),
            Slot::Echo(n) => self.take_echo(&p, usize::from(n)),
            Slot::Unreach => self.take_unreach(&p),
        }
    }

    fn take_tcp(&mut self, p: &Parsed, off: usize) {
        if tcp::Packet::new_checked(p.l4).is_err() {
            return;
        }
        match off {
            0..=5 => {
                if self.seq_reply(p, off) {
                    self.tcp_ids[off] = Some(u32::from(p.ip.ident()));
                }
                // The first SEQ answer is also T1, whatever it is.
                if off == 0 {
                    self.t_reply(p, 0);
                }
                self.ops_win(p, off);
            }
            6..=11 => self.ops_win(p, off - 6),
            12 => self.ecn_reply(p),
            _ => {
                let n = off - 13;
                if self.t_reply(p, n) && n >= 4 {
                    self.closed_ids[n - 4] = Some(u32::from(p.ip.ident()));
                }
            }
        }
    }

    /// Nmap's processTSeqResp: a new SYN/ACK to SEQ probe `n`.
    fn seq_reply(&mut self, p: &Parsed, n: usize) -> bool {
        let id = p.ip.ident();
        // Localhost sometimes shows a packet twice.
        if self.last_ip_id != 0 && id == self.last_ip_id {
            return false;
        }
        self.last_ip_id = id;
        let Ok(seg) = tcp::Packet::new_checked(p.l4) else {
            return false;
        };
        let flags = seg.flags();
        if flags.contains(tcp::Flags::RST) || !flags.contains(tcp::Flags::SYN | tcp::Flags::ACK) {
            return false;
        }
        if self.seqs[n] != 0 {
            return false;
        }
        self.seq_responses += 1;
        self.seqs[n] = seg.seq_number();
        self.seq_ids[n] = u32::from(id);
        match timestamp(p.l4) {
            None => self.ts_class = TsClass::Unsupported,
            Some(0) => self.ts_class = TsClass::Zero,
            Some(_) => {}
        }
        self.seq_ts[n] = timestamp(p.l4).unwrap_or(0);
        true
    }

    fn ops_win(&mut self, p: &Parsed, n: usize) {
        if self.ops[n].is_none() {
            self.ops[n] = Some(options_string(p.l4));
        }
        if self.win[n].is_none() {
            if let Ok(seg) = tcp::Packet::new_checked(p.l4) {
                self.win[n] = Some(hex(u32::from(seg.window_len())));
            }
        }
    }

    fn quirks(seg: &tcp::Packet<&[u8]>) -> String {
        let mut q = String::new();
        // Nmap's th_x2: the reserved bits and AE.
        if seg.flags().intersects(tcp::Flags(0xf00)) {
            q.push('R');
        }
        if !seg.flags().contains(tcp::Flags::URG) && seg.urgent_at() != 0 {
            q.push('U');
        }
        q
    }

    fn df(p: &Parsed) -> &'static str {
        if p.ip.dont_frag() {
            "Y"
        } else {
            "N"
        }
    }

    fn ecn_reply(&mut self, p: &Parsed) {
        if self.ecn.is_some() {
            return;
        }
        let Ok(seg) = tcp::Packet::new_checked(p.l4) else {
            return;
        };
        let f = seg.flags();
        let (ece, cwr) = (f.contains(tcp::Flags::ECE), f.contains(tcp::Flags::CWR));
        let cc = match (ece, cwr) {
            (true, true) => "S",
            (true, false) => "Y",
            (false, false) => "N",
            (false, true) => "O",
        };
        self.ecn = Some(Test {
            name: "ECN".into(),
            attrs: vec![
                attr("R", "Y"),
                attr("DF", Self::df(p)),
                attr("T", hex(u32::from(p.ip.ttl()))),
                attr("W", hex(u32::from(seg.window_len()))),
                attr("O", options_string(p.l4)),
                attr("CC", cc),
                attr("Q", Self::quirks(&seg)),
            ],
        });
    }

    /// Nmap's processT1_7Resp for T(n+1).
    fn t_reply(&mut self, p: &Parsed, n: usize) -> bool {
        if self.t[n].is_some() {
            return false;
        }
        let Ok(seg) = tcp::Packet::new_checked(p.l4) else {
            return false;
        };
        let (seq, ack) = (seg.seq_number(), seg.ack_number());
        let probe_ack = self.h.ack_number();
        let probe_seq = self.h.seq_number(1);
        let s = if seq == 0 {
            "Z"
        } else if seq == probe_ack {
            "A"
        } else if seq == probe_ack.wrapping_add(1) {
            "A+"
        } else {
            "O"
        };
        let a = if ack == 0 {
            "Z"
        } else if ack == probe_seq {
            "S"
        } else if ack == probe_seq.wrapping_add(1) {
            "S+"
        } else {
            "O"
        };
        let flags = seg.flags();
        let mut f = String::new();
        for (bit, c) in [
            (tcp::Flags::ECE, 'E'),
            (tcp::Flags::URG, 'U'),
            (tcp::Flags::ACK, 'A'),
            (tcp::Flags::PSH, 'P'),
            (tcp::Flags::RST, 'R'),
            (tcp::Flags::SYN, 'S'),
            (tcp::Flags::FIN, 'F'),
        ] {
            if flags.contains(bit) {
                f.push(c);
            }
        }
        let data = p.l4.get(seg.header_len()..).unwrap_or_default();
        let rd = if flags.contains(tcp::Flags::RST) && !data.is_empty() {
            hex(crc32fast::hash(data))
        } else {
            "0".into()
        };
        let mut attrs = vec![
            attr("R", "Y"),
            attr("DF", Self::df(p)),
            attr("T", hex(u32::from(p.ip.ttl()))),
        ];
        // T1 has neither W nor O (the SEQ tests cover them).
        if n != 0 {
            attrs.push(attr("W", hex(u32::from(seg.window_len()))));
        }
        attrs.extend([attr("S", s), attr("A", a), attr("F", f)]);
        if n != 0 {
            attrs.push(attr("O", options_string(p.l4)));
        }
        attrs.extend([attr("RD", rd), attr("Q", Self::quirks(&seg))]);
        self.t[n] = Some(Test {
            name: format!("T{}", n + 1),
            attrs,
        });
        true
    }

    fn take_echo(&mut self, p: &Parsed, n: usize) {
        if self.ie.is_some() || self.echo[n].is_some() {
            return;
        }
        let code = p.l4.get(1).copied().unwrap_or(0);
        self.echo[n] = Some((p.ip.dont_frag(), code));
        self.icmp_ids[n] = Some(u32::from(p.ip.ident()));
        let (Some((df1, code1)), Some((df2, code2))) = (self.echo[0], self.echo[1]) else {
            return;
        };
        let dfi = match (df1, df2) {
            (true, true) => "Y",
            (true, false) => "S",
            (false, false) => "N",
            (false, true) => "O",
        };
        let cd = if code1 == code2 {
            if code1 == 0 {
                "Z".to_string()
            } else {
                hex(u32::from(code1))
            }
        } else if code1 == 9 && code2 == 0 {
            "S".into()
        } else {
            "O".into()
        };
        // The TTL is the later reply's, as Nmap's.
        self.ie = Some(Test {
            name: "IE".into(),
            attrs: vec![
                attr("R", "Y"),
                attr("DFI", dfi),
                attr("T", hex(u32::from(p.ip.ttl()))),
                attr("CD", cd),
            ],
        });
    }

    /// Nmap's processTUdpResp; `locate` has checked the quoted UDP ports.
    fn take_unreach(&mut self, p: &Parsed) {
        if self.u1.is_some() {
            return;
        }
        let icmp = p.l4;
        let Some(quoted) = icmp.get(8..) else { return };
        let hlen = usize::from(quoted.first().map_or(0, |b| b & 0x0f)) * 4;
        if hlen < 20 || icmp.len() < 8 + hlen + 8 {
            return;
        }
        let be16 = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let sent = self.sent_u1();
        let ripl = be16(quoted, 2);
        let rid = be16(quoted, 4);
        let ripck = match be16(quoted, 10) {
            0 => "Z",
            stored => {
                let mut header = [0u8; 20];
                header.copy_from_slice(&quoted[..20]);
                header[10] = 0;
                header[11] = 0;
                if checksum::checksum(&header) == stored {
                    "G"
                } else {
                    "I"
                }
            }
        };
        let udp = &quoted[hlen..];
        let ruck = be16(udp, 6);
        let data = &udp[8..];
        let rud = if data.iter().all(|&b| b == U1_BYTE) {
            "G"
        } else {
            "I"
        };
        let un = u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]);
        self.u1 = Some(Test {
            name: "U1".into(),
            attrs: vec![
                attr("R", "Y"),
                attr("DF", Self::df(p)),
                attr("T", hex(u32::from(p.ip.ttl()))),
                attr("IPL", hex(u32::from(p.ip.total_len()))),
                attr("UN", hex(un)),
                attr(
                    "RIPL",
                    if ripl == 328 {
                        "G".into()
                    } else {
                        hex(u32::from(ripl))
                    },
                ),
                attr(
                    "RID",
                    if rid == U1_IP_ID {
                        "G".into()
                    } else {
                        hex(u32::from(rid))
                    },
                ),
                attr("RIPCK", ripck),
                attr(
                    "RUCK",
                    if Some(ruck) == sent {
                        "G".into()
                    } else {
                        hex(u32::from(ruck))
                    },
                ),
                attr("RUD", rud),
            ],
        });
        if self.distance.is_none() {
            self.distance = Some(i64::from(self.h.udp_ttl()) - i64::from(quoted[8]) + 1);
        }
    }

    /// The UDP checksum U1 went out with.
    fn sent_u1(&self) -> Option<u16> {
        let mut buf = Vec::new();
        probes::build(self.h, OsProbe::U1, 0, &mut buf).ok()?;
        Some(u16::from_be_bytes([*buf.get(26)?, *buf.get(27)?]))
    }
}

/// Nmap's get_diffs + identify_sequence over 16-bit IP IDs.
fn ipid_class(ids: &[u32], localhost: bool) -> IpIdClass {
    if ids.len() < 2 {
        return IpIdClass::Unknown;
    }
    let mut diffs: Vec<u32> = ids.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    // Before masking: a step back or a big jump is random.
    if ids.len() > 2 && diffs.iter().any(|&d| d > 20000) {
        // Nmap returns at the first such difference; all zeros cannot come before it.
        return IpIdClass::Random;
    }
    if ids.iter().all(|&i| i == 0) {
        return IpIdClass::Zero;
    }
    for d in &mut diffs {
        *d &= 0xffff;
    }
    if localhost && diffs.iter().all(|&d| d >= 2) {
        // On localhost, our own RSTs take an ID between the replies.
        for d in &mut diffs {
            *d = if *d % 256 == 0 { *d - 256 } else { *d - 1 };
        }
    }
    if diffs.iter().all(|&d| d == 0) {
        return IpIdClass::Constant;
    }
    if diffs
        .iter()
        .any(|&d| d > 1000 && (d % 256 != 0 || d >= 25600))
    {
        return IpIdClass::Rpi;
    }
    if diffs.iter().all(|&d| d <= 5120 && d % 256 == 0) {
        return IpIdClass::BrokenIncr;
    }
    if diffs.iter().all(|&d| d % 2 == 0) {
        return IpIdClass::IncrBy2;
    }
    if diffs.iter().all(|&d| d <= 9) {
        return IpIdClass::Incr;
    }
    IpIdClass::Unknown
}

/// Nmap's gcd_n_uint.
fn gcd(values: &[u32]) -> u32 {
    let Some((&first, rest)) = values.split_first() else {
        return 1;
    };
    rest.iter().fold(first, |mut a, &b| {
        let mut b = b;
        if a < b {
            std::mem::swap(&mut a, &mut b);
        }
        while b != 0 {
            let c = a % b;
            a = b;
            b = c;
        }
        a
    })
}

fn mod_diff(a: u32, b: u32) -> u32 {
    a.wrapping_sub(b).min(b.wrapping_sub(a))
}

/// What makeTSeqFP yields besides the SEQ test.
struct SeqOut {
    test: Test,
    tcp_seq: Option<SeqReport>,
    ip_id: Option<IdReport>,
    tcp_ts: Option<TsReport>,
    uptime: Option<u64>,
}

/// As Nmap computes it (`log(x) / log(2.0)`), to round the same way at the edges.
fn log2(x: f64) -> f64 {
    x.ln() / 2f64.ln()
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn seq_test(st: &State, sent: &[Option<Instant>; 6]) -> SeqOut {
    // Close the gaps: answered probes only, in probe order.
    let got: Vec<usize> = (0..6).filter(|&i| st.seqs[i] != 0).collect();
    let n = got.len();
    let mut seq_diffs = Vec::new();
    let mut ts_diffs = Vec::new();
    let mut usec = Vec::new();
    let mut rates: Vec<f32> = Vec::new();
    let mut avg_rate = 0f64;
    for w in got.windows(2) {
        let (a, b) = (w[0], w[1]);
        seq_diffs.push(mod_diff(st.seqs[b], st.seqs[a]));
        ts_diffs.push(mod_diff(st.seq_ts[b], st.seq_ts[a]));
        // Without both send times, assume Nmap's spacing.
        let t = match (sent[a], sent[b]) {
            (Some(x), Some(y)) => micros(y.saturating_duration_since(x)),
            _ => micros(SEQ_GAP) * (b - a) as u64,
        }
        .max(1);
        usec.push(t);
        let rate = (f64::from(*seq_diffs.last().unwrap_or(&0)) * 1_000_000.0 / t as f64) as f32;
        rates.push(rate);
        avg_rate += f64::from(rate);
    }
    let mut attrs = Vec::new();
    let mut index = 0u32;
    if n >= 4 {
        avg_rate /= (n - 1) as f64;
        let g = gcd(&seq_diffs);
        let mut isr = 0u32;
        if g != 0 {
            isr = (log2(avg_rate) * 8.0 + 0.5) as i64 as u32;
            // Nmap divides the single-precision rates in single precision.
            let div = if g > 9 { g } else { 1 };
            let mut var = 0f64;
            for &r in &rates {
                let d = f64::from(r / div as f32) - avg_rate / f64::from(div);
                var += d * d;
            }
            var /= (n - 2) as f64;
            let sd = var.sqrt();
            index = if sd <= 1.0 {
                0
            } else {
                (log2(sd) * 8.0 + 0.5) as i64 as u32
            };
        }
        attrs.push(attr("SP", hex(index)));
        attrs.push(attr("GCD", hex(g)));
        attrs.push(attr("ISR", hex(isr)));
    }

    // IP IDs: SEQ answers, closed port answers (T5-T7), echo answers.
    let ids = |v: &[Option<u32>]| v.iter().flatten().copied().collect::<Vec<u32>>();
    let (tcp_ids, closed_ids, icmp_ids) =
        (ids(&st.tcp_ids), ids(&st.closed_ids), ids(&st.icmp_ids));
    let class_of = |v: &[u32], min: usize| {
        if v.len() >= min {
            ipid_class(v, st.localhost)
        } else {
            IpIdClass::Unknown
        }
    };
    let ti = class_of(&tcp_ids, 3);
    let ci = class_of(&closed_ids, 2);
    let ii = class_of(&icmp_ids, 2);
    for (name, class, v) in [
        ("TI", ti, &tcp_ids),
        ("CI", ci, &closed_ids),
        ("II", ii, &icmp_ids),
    ] {
        if let Some(value) = class.attr(v.first().copied().unwrap_or(0)) {
            attrs.push(attr(name, value));
        }
    }
    // SS: do echo replies take their IDs from the TCP counter?
    if let (true, true, Some(&first), Some(&last), Some(&echo)) = (
        ti.incremental(),
        ii.incremental(),
        tcp_ids.first(),
        tcp_ids.last(),
        icmp_ids.first(),
    ) {
        let steps = (tcp_ids.len() as u32).saturating_sub(1).max(1);
        let avg = last.wrapping_sub(first) / steps;
        let shared = echo < last.wrapping_add(avg.wrapping_mul(3));
        attrs.push(attr("SS", if shared { "S" } else { "O" }));
    }

    // Timestamps.
    let mut ts_class = st.ts_class;
    let mut avg_hz = 0f64;
    let mut uptime = None;
    let first_ts = got.first().map_or(0, |&i| st.seq_ts[i]);
    if ts_class == TsClass::Unknown && n >= 2 {
        for (d, t) in ts_diffs.iter().zip(&usec) {
            avg_hz += (f64::from(*d) / (*t as f64 / 1_000_000.0)) / (n - 1) as f64;
        }
        let mut up = 0u64;
        if avg_hz > 0.0 && avg_hz < 5.66 {
            ts_class = TsClass::Hz2;
            up = u64::from(first_ts / 2);
        } else if avg_hz > 70.0 && avg_hz < 150.0 {
            ts_class = TsClass::Hz100;
            up = u64::from(first_ts / 100);
        } else if avg_hz > 724.0 && avg_hz < 1448.0 {
            ts_class = TsClass::Hz1000;
            up = u64::from(first_ts / 1000);
        } else if avg_hz > 0.0 {
            ts_class = TsClass::Other;
            // Nmap divides by an unsigned int: a huge rate wraps; never divide by zero.
            let hz = (0.5 + avg_hz) as i64 as u32;
            up = u64::from(first_ts.checked_div(hz).unwrap_or(0));
        }
        // Up two years? Probably lying.
        if up > 63_072_000 {
            up = 0;
        }
        uptime = Some(up);
    }
    match ts_class {
        TsClass::Zero => attrs.push(attr("TS", "0")),
        TsClass::Hz2 | TsClass::Hz100 | TsClass::Hz1000 | TsClass::Other => {
            let v = if avg_hz <= 5.66 {
                1
            } else if avg_hz > 70.0 && avg_hz <= 150.0 {
                7
            } else if avg_hz > 150.0 && avg_hz <= 350.0 {
                8
            } else {
                (0.5 + log2(avg_hz)) as i64 as u32
            };
            attrs.push(attr("TS", hex(v)));
        }
        TsClass::Unsupported => attrs.push(attr("TS", "U")),
        TsClass::Unknown => {}
    }

    let seqs: Vec<u32> = got.iter().map(|&i| st.seqs[i]).collect();
    SeqOut {
        test: Test {
            name: "SEQ".into(),
            attrs,
        },
        tcp_seq: (n > 3).then(|| SeqReport {
            index,
            difficulty: difficulty(index).into(),
            values: seqs,
        }),
        ip_id: (n > 2).then(|| IdReport {
            class: ti.describe().into(),
            values: got.iter().map(|&i| st.seq_ids[i] as u16).collect(),
        }),
        tcp_ts: (n > 2).then(|| TsReport {
            class: ts_class.describe().into(),
            values: if ts_class == TsClass::Unsupported {
                Vec::new()
            } else {
                got.iter().map(|&i| st.seq_ts[i]).collect()
            },
        }),
        uptime,
    }
}

/// Replaces a test's received TTL with the initial one: with U1's hop count, `T` plus the
/// hops; without, `TG`, Nmap's guess, in `T`'s place.
fn settle_ttl(test: &mut Test, distance: Option<i64>) {
    let Some(pos) = test.attrs.iter().position(|(a, _)| a == "T") else {
        return;
    };
    let ttl = u32::from_str_radix(&test.attrs[pos].1, 16).unwrap_or(0);
    match distance {
        Some(d) => test.attrs[pos].1 = hex((i64::from(ttl) + d - 1) as u32),
        None => {
            test.attrs[pos] = attr("TG", hex(u32::from(initial_ttl_guess(ttl.min(255) as u8))));
        }
    }
}

/// Computes Nmap's fingerprint tests and reports from one round of replies.
pub fn analyse(h: &HostProbes, obs: &Observations, cx: &Context) -> Analysis {
    let mut st = State::new(h, cx.localhost);
    let mut order: Vec<&Reply> = obs.replies.iter().collect();
    order.sort_by_key(|r| r.at);
    for r in order {
        st.take(&r.packet);
    }

    let seq = seq_test(&st, &obs.seq_sent);
    let mut tests = vec![seq.test];
    let all = |v: &[Option<String>; 6]| v.iter().all(Option::is_some);
    if all(&st.ops) {
        tests.push(Test {
            name: "OPS".into(),
            attrs: (0..6)
                .map(|i| {
                    attr(
                        &format!("O{}", i + 1),
                        st.ops[i].clone().unwrap_or_default(),
                    )
                })
                .collect(),
        });
    }
    if all(&st.win) {
        tests.push(Test {
            name: "WIN".into(),
            attrs: (0..6)
                .map(|i| {
                    attr(
                        &format!("W{}", i + 1),
                        st.win[i].clone().unwrap_or_default(),
                    )
                })
                .collect(),
        });
    }
    let given = h.given_ports();
    let open = given.open_tcp.is_some();
    let closed = given.closed_tcp.is_some();
    let mut rest: Vec<(String, Option<Test>, bool)> = vec![("ECN".into(), st.ecn.take(), open)];
    for (i, t) in st.t.iter_mut().enumerate() {
        rest.push((
            format!("T{}", i + 1),
            t.take(),
            if i < 4 { open } else { closed },
        ));
    }
    rest.push(("U1".into(), st.u1.take(), true));
    rest.push(("IE".into(), st.ie.take(), true));
    for (name, test, answerable) in rest {
        match test {
            Some(mut t) => {
                settle_ttl(&mut t, st.distance);
                tests.push(t);
            }
            None if answerable => tests.push(no_reply(&name)),
            None => {}
        }
    }

    let distance = if cx.localhost {
        Some((0, 'L'))
    } else if cx.on_link {
        Some((1, 'D'))
    } else {
        st.distance
            .and_then(|d| u32::try_from(d).ok())
            .map(|d| (d, 'I'))
    };
    let hops = match distance {
        Some((d, _)) => i64::from(d),
        None => st.distance.unwrap_or(-1),
    };
    let u1_seen = tests
        .iter()
        .any(|t| t.name == "U1" && t.attrs.first().is_some_and(|(_, v)| v == "Y"));
    let good =
        open && closed && (given.closed_udp.is_some() || u1_seen) && (-1..=5).contains(&hops);

    Analysis {
        fingerprint: Fingerprint { tests },
        tcp_seq: seq.tcp_seq,
        ip_id: seq.ip_id,
        tcp_ts: seq.tcp_ts,
        uptime_seconds: seq.uptime,
        distance,
        good,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::probes::capture::{self, Frame};
    use crate::probes::{build, classify, OsPorts};

    /// Parses `SEQ(SP=1%GCD=2)OPS(...)` into tests.
    fn parse_fp(text: &str) -> Vec<Test> {
        text.trim()
            .split_inclusive(')')
            .map(|t| {
                let (name, body) = t.trim_end_matches(')').split_once('(').unwrap();
                Test {
                    name: name.into(),
                    attrs: body
                        .split('%')
                        .filter(|a| !a.is_empty())
                        .map(|a| {
                            let (k, v) = a.split_once('=').unwrap();
                            (k.into(), v.into())
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Observations of one round of the capture: the replies classify takes, and the SEQ
    /// probes' send times, as Instants on a clock starting at the capture's first frame.
    fn observe(frames: &[Frame], h: &HostProbes, start: usize, end: usize) -> Observations {
        let zero = Instant::now();
        let origin = frames[0].at;
        let at = |f: &Frame| zero + (f.at - origin);
        let mut obs = Observations::default();
        for f in &frames[start..end] {
            let ip = &f.ip;
            if ip[9] == 6 && capture::u16_at(ip, 22) == capture::OPEN {
                let sport = capture::u16_at(ip, 20);
                for n in 1..=6u8 {
                    if Some(sport) == h.tcp_port(OsProbe::Seq(n), 0)
                        && obs.seq_sent[usize::from(n - 1)].is_none()
                    {
                        obs.seq_sent[usize::from(n - 1)] = Some(at(f));
                    }
                }
            }
            if let Some(probe) = classify(h, ip) {
                obs.replies.push(Reply {
                    probe,
                    at: at(f),
                    packet: ip.clone(),
                });
            }
        }
        obs
    }

    fn localhost() -> Context {
        Context {
            on_link: false,
            localhost: true,
        }
    }

    #[test]
    fn nmaps_fingerprint_from_its_own_capture() {
        let frames = capture::frames();
        let fp =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/nmap-lo.fp"))
                .unwrap();
        let nmap = parse_fp(&fp);
        // Every round printed the same tests (Nmap merged them into one); check each round.
        for round in 0..5 {
            let (h, start) = capture::round(&frames, round);
            let end = if round < 4 {
                capture::round(&frames, round + 1).1
            } else {
                frames.len()
            };
            let obs = observe(&frames, &h, start, end);
            let a = analyse(&h, &obs, &localhost());
            let ours = &a.fingerprint.tests;
            let names: Vec<&str> = ours.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(
                names,
                [
                    "SEQ", "OPS", "WIN", "ECN", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "U1",
                    "IE"
                ]
            );
            for theirs in nmap.iter().filter(|t| t.name != "SCAN") {
                let mine = a.fingerprint.test(&theirs.name).unwrap();
                if round == 3 && theirs.name == "SEQ" {
                    // Nmap printed the fingerprint of its best round; round 4's ISN
                    // differences happen to share a factor of 3, everything else agrees.
                    let v = &a.tcp_seq.as_ref().unwrap().values;
                    let diffs: Vec<u32> = v.windows(2).map(|w| mod_diff(w[1], w[0])).collect();
                    assert_eq!(gcd(&diffs), 3);
                    let mut fixed = mine.clone();
                    fixed.attrs[1].1 = "1".into();
                    assert_eq!(&fixed, theirs);
                    continue;
                }
                assert_eq!(mine, theirs, "round {round}");
            }
            assert_eq!(a.distance, Some((0, 'L')));
            assert!(a.good);
            let seq = a.tcp_seq.as_ref().unwrap();
            assert_eq!(seq.values.len(), 6);
            assert_eq!(seq.difficulty, difficulty(seq.index));
            assert_eq!(a.ip_id.as_ref().unwrap().class, "All zeros");
            assert_eq!(a.tcp_ts.as_ref().unwrap().class, "other");
            if round == 4 {
                // Nmap's XML (-oX) reports the last round's sequences:
                // <tcpsequence index="263" difficulty="Good luck!" values="2D0A8EE7,...">
                // <ipidsequence class="All zeros" values="0,0,0,0,0,0"/>
                // <tcptssequence class="other" values="63AF3830,..."/>
                // <uptime seconds="2" lastboot="Sat Dec  5 02:09:36 2026"/>, SEQ 1 left
                // at 02:09:37.30: an uptime of 1 s at that moment.
                let hexes = |v: Vec<String>| v.join(",");
                assert_eq!(seq.index, 263);
                assert_eq!(seq.difficulty, "Good luck!");
                assert_eq!(
                    hexes(seq.values.iter().map(|v| format!("{v:X}")).collect()),
                    "2D0A8EE7,87F100F1,105FBA1,B13AA2AA,B8207194,3FFFB810"
                );
                assert_eq!(a.ip_id.as_ref().unwrap().values, vec![0; 6]);
                assert_eq!(
                    hexes(
                        a.tcp_ts
                            .as_ref()
                            .unwrap()
                            .values
                            .iter()
                            .map(|v| format!("{v:X}"))
                            .collect()
                    ),
                    "63AF3830,93D329B2,E58EF167,AC3BD0C4,72A89318,A961E080"
                );
                assert_eq!(a.uptime_seconds, Some(1));
            }
        }
    }

    #[test]
    fn nmaps_fingerprint_two_hops_away() {
        let fx = capture::ROUTED;
        let frames = capture::frames_of(fx);
        let fp = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/nmap-routed.fp"
        ))
        .unwrap();
        let nmap = parse_fp(&fp);
        let mut exact = 0;
        for round in 0..5 {
            let (h, start) = capture::round_of(fx, &frames, round);
            let end = if round < 4 {
                capture::round_of(fx, &frames, round + 1).1
            } else {
                frames.len()
            };
            let obs = observe(&frames, &h, start, end);
            let a = analyse(&h, &obs, &Context::default());
            assert_eq!(a.distance, Some((2, 'I')), "U1's quoted TTL");
            assert!(a.good);
            let mut same = true;
            for theirs in nmap.iter().filter(|t| t.name != "SCAN") {
                let mine = a.fingerprint.test(&theirs.name).unwrap();
                if theirs.name == "SEQ" {
                    // A round's ISNs may share a factor by chance (GCD); SP and ISR are
                    // from this round's times. The rest must agree.
                    let skip = ["SP", "GCD", "ISR"];
                    let keep = |t: &Test| -> Vec<(String, String)> {
                        t.attrs
                            .iter()
                            .filter(|(k, _)| !skip.contains(&k.as_str()))
                            .cloned()
                            .collect()
                    };
                    assert_eq!(keep(mine), keep(theirs), "round {round}");
                    same &= mine == theirs;
                } else {
                    assert_eq!(mine, theirs, "round {round}");
                }
            }
            exact += usize::from(same);
            if round == 4 {
                // Nmap's -oX for the last round.
                let seq = a.tcp_seq.unwrap();
                assert_eq!(seq.index, 256);
                assert_eq!(seq.values.first().copied(), Some(0xE2D5_9D8E));
                assert_eq!(a.tcp_ts.unwrap().values.first().copied(), Some(0xCB40_0F20));
                // <uptime seconds="3" lastboot="02:28:52">, printed at 02:28:55; SEQ 1 left
                // at 02:28:53.96: 1 s of uptime then.
                assert_eq!(a.uptime_seconds, Some(1));
            }
        }
        assert!(exact >= 1, "Nmap printed one of the rounds");
    }

    fn host() -> HostProbes {
        let ports = OsPorts {
            open_tcp: Some(80),
            closed_tcp: Some(81),
            closed_udp: Some(82),
        };
        HostProbes::new(
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
            ports,
            9,
        )
    }

    /// A reply from the target: IPv4 header (TTL 64, DF) around `l4`, checksums right.
    fn ip_reply(h: &HostProbes, proto: u8, l4: &[u8], id: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
        p.extend(h.dst().octets());
        p.extend(h.src().octets());
        let total = (20 + l4.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let c = checksum::checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend(l4);
        p
    }

    /// A TCP reply to `probe` (from the port it went to), with raw option bytes.
    fn tcp_reply(
        h: &HostProbes,
        probe: OsProbe,
        flags: u16,
        seq: u32,
        ack: u32,
        opts: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let sport = if matches!(probe, OsProbe::T(5..=7)) {
            81u16
        } else {
            80
        };
        let dport = h.tcp_port(probe, 0).unwrap();
        let hlen = 20 + opts.len().next_multiple_of(4);
        let mut s = Vec::new();
        s.extend(sport.to_be_bytes());
        s.extend(dport.to_be_bytes());
        s.extend(seq.to_be_bytes());
        s.extend(ack.to_be_bytes());
        s.extend((((hlen as u16 / 4) << 12) | flags).to_be_bytes());
        s.extend(1000u16.to_be_bytes());
        s.extend([0, 0, 0, 0]);
        s.extend(opts);
        s.resize(hlen, 0);
        s.extend(payload);
        ip_reply(h, 6, &s, 0)
    }

    fn reply(probe: OsProbe, packet: Vec<u8>, ms: u64, zero: Instant) -> Reply {
        Reply {
            probe,
            at: zero + Duration::from_millis(ms),
            packet,
        }
    }

    fn remote() -> Context {
        Context::default()
    }

    #[test]
    fn no_reply_gives_r_n_where_nmap_writes_it() {
        let h = host();
        let a = analyse(&h, &Observations::default(), &remote());
        let text: Vec<String> = a
            .fingerprint
            .tests
            .iter()
            .map(|t| format!("{}{:?}", t.name, t.attrs))
            .collect();
        assert_eq!(text[0], "SEQ[]");
        assert_eq!(a.fingerprint.tests.len(), 1 + 1 + 7 + 2);
        assert!(a.fingerprint.tests[1..]
            .iter()
            .all(|t| t.attrs == vec![attr("R", "N")]));
        assert_eq!(
            (a.tcp_seq, a.ip_id, a.tcp_ts, a.uptime_seconds, a.distance),
            (None, None, None, None, None)
        );
        // Nmap's G=Y is about the conditions (ports known, distance), not the answers.
        assert!(a.good);
        // Ports not known: no SEQ replies expected of ECN and T1-T7.
        let bare = HostProbes::new(h.src(), h.dst(), OsPorts::default(), 1);
        let names: Vec<String> = analyse(&bare, &Observations::default(), &remote())
            .fingerprint
            .tests
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["SEQ", "U1", "IE"]);
        assert!(!analyse(&bare, &Observations::default(), &remote()).good);
    }

    #[test]
    fn t_tests_flags_options_quirks_and_rst_data() {
        let h = host();
        let zero = Instant::now();
        // T5: RST|ACK with data, a reserved bit and an urgent pointer without URG.
        let mut t5 = tcp_reply(
            &h,
            OsProbe::T(5),
            0x814,
            0,
            h.seq_number(1) + 1,
            &[],
            b"hello",
        );
        t5[20 + 18] = 0x12; // urgent pointer
        let t7 = tcp_reply(
            &h,
            OsProbe::T(7),
            0x014,
            h.ack_number() + 1,
            5,
            &[
                2, 4, 5, 0xb4, 1, 1, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
            ],
            &[],
        );
        // Bad options (MSS of length 3): O is empty, as Nmap's.
        let t6 = tcp_reply(
            &h,
            OsProbe::T(6),
            0x004,
            h.ack_number(),
            0,
            &[2, 3, 5, 0],
            &[],
        );
        let obs = Observations {
            seq_sent: [None; 6],
            replies: vec![
                reply(OsProbe::T(5), t5, 1, zero),
                reply(OsProbe::T(6), t6, 2, zero),
                reply(OsProbe::T(7), t7, 3, zero),
            ],
        };
        let a = analyse(&h, &obs, &remote());
        let fp = &a.fingerprint;
        assert_eq!(fp.get("T5", "F"), Some("AR"));
        assert_eq!(fp.get("T5", "S"), Some("Z"));
        assert_eq!(fp.get("T5", "A"), Some("S+"));
        assert_eq!(
            fp.get("T5", "RD"),
            Some(format!("{:X}", crc32fast::hash(b"hello")).as_str())
        );
        assert_eq!(fp.get("T5", "Q"), Some("RU"));
        assert_eq!(fp.get("T5", "TG"), Some("40"));
        assert_eq!(fp.get("T5", "T"), None);
        assert_eq!(fp.get("T5", "W"), Some("3E8"));
        assert_eq!(fp.get("T6", "O"), Some(""));
        assert_eq!(fp.get("T6", "S"), Some("A"));
        assert_eq!(fp.get("T7", "S"), Some("A+"));
        assert_eq!(fp.get("T7", "A"), Some("O"));
        assert_eq!(fp.get("T7", "O"), Some("M5B4NNST10NW7LL"));
        assert_eq!(fp.get("T7", "RD"), Some("0"));
        // Three closed-port IDs, all zero.
        assert_eq!(fp.get("SEQ", "CI"), Some("Z"));
    }

    #[test]
    fn options_strings_as_nmap_writes_them() {
        let seg = |opts: &[u8]| {
            let hlen = 20 + opts.len().next_multiple_of(4);
            let mut s = vec![0u8; 20];
            s[12] = ((hlen / 4) as u8) << 4;
            s.extend(opts);
            s.resize(hlen, 0);
            s
        };
        assert_eq!(
            options_string(&seg(&[
                2, 4, 0xff, 0xd7, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 10
            ])),
            "MFFD7ST10NWA"
        );
        // End of list does not stop Nmap's walk: the padding shows.
        assert_eq!(options_string(&seg(&[2, 4, 1, 0, 0])), "M100LLLL");
        assert_eq!(options_string(&seg(&[])), "");
        assert_eq!(
            options_string(&seg(&[8, 10, 1, 2])),
            "",
            "truncated timestamp"
        );
        assert_eq!(options_string(&seg(&[3, 0])), "", "length below 2");
        assert_eq!(
            options_string(&seg(&[99, 2, 1])),
            "NL",
            "unknown kinds print nothing"
        );
        // A data offset beyond the segment: what there is.
        let mut cut = seg(&[1, 1, 1, 1]);
        cut[12] = 0xf0;
        assert_eq!(options_string(&cut), "NNNN");
        assert_eq!(options_string(&[0u8; 10]), "");
    }

    fn unreach(h: &HostProbes, quote_len: usize, mutate: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
        let mut u1 = Vec::new();
        build(h, OsProbe::U1, 0, &mut u1).unwrap();
        u1[8] -= 2; // two routers on the way
        let c = checksum::checksum(&{
            let mut x = u1[..20].to_vec();
            x[10] = 0;
            x[11] = 0;
            x
        });
        u1[10..12].copy_from_slice(&c.to_be_bytes());
        mutate(&mut u1);
        u1.truncate(quote_len);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend(&u1);
        let c = checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        ip_reply(h, 1, &icmp, 7)
    }

    #[test]
    fn u1_judges_the_quote() {
        let h = host();
        let zero = Instant::now();
        let run = |p: Vec<u8>| {
            let obs = Observations {
                seq_sent: [None; 6],
                replies: vec![reply(OsProbe::U1, p, 1, zero)],
            };
            analyse(&h, &obs, &remote())
        };
        let a = run(unreach(&h, 328, |_| {}));
        let fp = &a.fingerprint;
        let u1: Vec<_> = fp
            .test("U1")
            .unwrap()
            .attrs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(
            u1.join("%"),
            "R=Y%DF=Y%T=42%IPL=164%UN=0%RIPL=G%RID=G%RIPCK=G%RUCK=G%RUD=G"
        );
        assert_eq!(a.distance, Some((3, 'I')));
        assert!(a.good);
        // Quoted header truncated to 28 bytes: the data check sees nothing, as Nmap's.
        let a = run(unreach(&h, 28, |_| {}));
        assert_eq!(a.fingerprint.get("U1", "RUD"), Some("G"));
        assert_eq!(a.fingerprint.get("U1", "IPL"), Some("38"));
        // Shorter than IP + UDP headers: no test (Nmap ignores it), so R=N.
        let a = run(unreach(&h, 24, |_| {}));
        assert_eq!(a.fingerprint.get("U1", "R"), Some("N"));
        // Rewritten quote: zeroed IP checksum, other ID and length, bad UDP sum, data.
        let a = run(unreach(&h, 328, |p| {
            p[3] = 0x00;
            p[5] = 0x43;
            p[10] = 0;
            p[11] = 0;
            p[26] ^= 0xff;
            p[100] = 0;
        }));
        let fp = &a.fingerprint;
        assert_eq!(fp.get("U1", "RIPCK"), Some("Z"));
        assert_eq!(fp.get("U1", "RID"), Some("1043"));
        assert_eq!(fp.get("U1", "RIPL"), Some("100"));
        assert_eq!(fp.get("U1", "RUD"), Some("I"));
        assert_ne!(fp.get("U1", "RUCK"), Some("G"));
        // Nmap matches the quote by UDP ports only: a rewritten source is a bad checksum.
        let a = run(unreach(&h, 328, |p| p[12] ^= 1));
        assert_eq!(a.fingerprint.get("U1", "RIPCK"), Some("I"));
    }

    #[test]
    fn seq_tests_from_crafted_replies() {
        let h = host();
        let zero = Instant::now();
        let mut obs = Observations::default();
        for n in 1..=6u8 {
            let i = usize::from(n - 1);
            obs.seq_sent[i] = Some(zero + SEQ_GAP * u32::from(n - 1));
            // ISNs 64000 apart per 100 ms, timestamps at 100 Hz, IDs incrementing.
            let ts = 1_000_000 + 10 * u32::from(n);
            let mut opts = vec![2, 4, 5, 0xb4, 8, 10];
            opts.extend(ts.to_be_bytes());
            opts.extend([0xff; 4]);
            let mut p = tcp_reply(
                &h,
                OsProbe::Seq(n),
                0x12,
                64000 * u32::from(n),
                h.seq_number(n) + 1,
                &opts,
                &[],
            );
            p[4..6].copy_from_slice(&(1000 + u16::from(n)).to_be_bytes());
            obs.replies
                .push(reply(OsProbe::Seq(n), p, 100 * u64::from(n), zero));
        }
        // The echo replies share the counter.
        for n in 1..=2u8 {
            let mut icmp = vec![0, if n == 1 { 9 } else { 0 }, 0, 0];
            icmp.extend(h.icmp_id().wrapping_add(u16::from(n - 1)).to_be_bytes());
            icmp.extend((294 + u16::from(n)).to_be_bytes());
            let mut p = ip_reply(&h, 1, &icmp, 1006 + u16::from(n));
            p[6] = if n == 1 { 0x40 } else { 0 };
            obs.replies
                .push(reply(OsProbe::Ie(n), p, 700 + u64::from(n), zero));
        }
        let a = analyse(&h, &obs, &remote());
        let fp = &a.fingerprint;
        assert_eq!(fp.get("SEQ", "GCD"), Some("FA00"));
        assert_eq!(
            fp.get("SEQ", "ISR"),
            Some("9A"),
            "640000/s: log2 * 8 = 154.3"
        );
        assert_eq!(fp.get("SEQ", "SP"), Some("0"));
        assert_eq!(fp.get("SEQ", "TI"), Some("I"));
        assert_eq!(fp.get("SEQ", "II"), Some("I"));
        assert_eq!(fp.get("SEQ", "SS"), Some("S"));
        assert_eq!(fp.get("SEQ", "TS"), Some("7"));
        assert_eq!(fp.get("OPS", "O1"), Some("M5B4T11LL"), "padding");
        assert_eq!(fp.get("WIN", "W6"), Some("3E8"));
        assert_eq!(fp.get("IE", "DFI"), Some("S"));
        assert_eq!(fp.get("IE", "CD"), Some("S"));
        assert_eq!(a.uptime_seconds, Some(10_000));
        assert_eq!(a.tcp_ts.unwrap().class, "100HZ");
        assert_eq!(a.ip_id.unwrap().class, "Incremental");
        assert_eq!(a.tcp_seq.unwrap().difficulty, "Trivial joke");
        // A duplicate answer does not count twice; the first one wins.
        let mut dup = obs.clone();
        let mut late = dup.replies[0].clone();
        late.at += Duration::from_secs(1);
        late.packet[24..28].copy_from_slice(&7u32.to_be_bytes());
        dup.replies.push(late);
        assert_eq!(analyse(&h, &dup, &remote()).fingerprint, a_fp(&h, &obs));
    }

    fn a_fp(h: &HostProbes, obs: &Observations) -> Fingerprint {
        analyse(h, obs, &remote()).fingerprint
    }

    #[test]
    fn ipid_classes_as_nmap() {
        assert_eq!(ipid_class(&[0, 0, 0], false), IpIdClass::Zero);
        assert_eq!(ipid_class(&[5, 5, 5], false), IpIdClass::Constant);
        assert_eq!(ipid_class(&[1, 2, 3], false), IpIdClass::Incr);
        assert_eq!(ipid_class(&[1, 3, 5], false), IpIdClass::IncrBy2);
        assert_eq!(
            ipid_class(&[1, 3, 5], true),
            IpIdClass::Incr,
            "localhost: our RSTs"
        );
        assert_eq!(ipid_class(&[256, 512, 768], false), IpIdClass::BrokenIncr);
        assert_eq!(ipid_class(&[1, 2000, 4001], false), IpIdClass::Rpi);
        assert_eq!(ipid_class(&[100, 50, 200], false), IpIdClass::Random);
        assert_eq!(
            ipid_class(&[65535, 1, 3], false),
            IpIdClass::Random,
            "Nmap sees the wrap as a jump"
        );
        assert_eq!(ipid_class(&[1, 13, 25], false), IpIdClass::IncrBy2);
        assert_eq!(ipid_class(&[1, 14, 27], false), IpIdClass::Unknown);
        assert_eq!(IpIdClass::Constant.attr(0x1c), Some("1C".into()));
    }

    #[test]
    fn cut_and_flipped_replies_never_panic() {
        let frames = capture::frames();
        let (h, start) = capture::round(&frames, 0);
        let obs = observe(&frames, &h, start, frames.len());
        let zero = Instant::now();
        for r in &obs.replies {
            for cut in 0..r.packet.len() {
                let mut p = r.packet.clone();
                p.truncate(cut);
                let _ = analyse(
                    &h,
                    &Observations {
                        seq_sent: obs.seq_sent,
                        replies: vec![reply(r.probe, p, 0, zero)],
                    },
                    &localhost(),
                );
            }
            for i in 0..r.packet.len().min(64) {
                let mut p = r.packet.clone();
                p[i] ^= 0xff;
                let _ = analyse(
                    &h,
                    &Observations {
                        seq_sent: obs.seq_sent,
                        replies: vec![reply(r.probe, p, 0, zero)],
                    },
                    &localhost(),
                );
            }
        }
        // Bad IP and TCP checksums are not Nmap's concern either: the replies still count.
        let mut bad = obs.clone();
        for r in &mut bad.replies {
            r.packet[10] ^= 0x55;
            if r.packet[9] == 6 {
                r.packet[36] ^= 0x55;
            }
        }
        assert_eq!(
            analyse(&h, &bad, &localhost()).fingerprint,
            analyse(&h, &obs, &localhost()).fingerprint
        );
    }
}
