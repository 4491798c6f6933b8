//! `--packet-trace`: a [`Backend`] that wraps another and prints, for every packet its paths
//! send and every packet they hand back to the scan, one line as Nmap 7.93 prints it
//! (`SENT (0.0450s) TCP 198.18.0.5:60153 > 198.18.0.1:80 S ttl=41 ...`). The time is seconds
//! since the scan started. IP paths print IPv4/IPv6 packets as Nmap's `ippackethdrinfo` does
//! at its low detail; the ARP path prints "who-has"/"reply ... is-at"; the neighbour-discovery
//! path prints its solicitations as ICMPv6 packets and the advertisements it receives as
//! "neighbor advertisement", as Nmap does.
//!
//! The formatters take untrusted bytes (what came back from the network) and never panic:
//! every read goes through the checked views of `portolan-wire` or `get`.

use crate::core::arp_ping::ArpProbe;
use crate::core::nd_ping::NdProbe;
use crate::core::scan::Probe;
use crate::io::backend::{Backend, Described, Outgoing, PacketIo};
use crate::io::dryrun::Lines;
use crate::io::netif::{Interface, NetifError};
use crate::io::raw::{RawError, Received};
use portolan_wire::ethernet::{self, EtherType, MacAddr};
use portolan_wire::{icmpv4, icmpv6, ipv4, ipv6, tcp, udp, IpProtocol};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Instant;

/// Which way a packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// What a path carries, which decides how its packets are described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// IPv4 or IPv6 packets from their IP header on.
    Ip,
    /// Ethernet frames carrying ARP.
    Arp,
    /// Ethernet frames carrying IPv6 neighbour discovery.
    Nd,
}

/// One trace line without its newline: direction, time, and the packet as Nmap describes it.
pub fn trace_line(dir: Direction, secs: f64, kind: PathKind, bytes: &[u8]) -> String {
    let word = match dir {
        Direction::Sent => "SENT",
        Direction::Received => "RCVD",
    };
    format!("{word} ({secs:.4}s) {}", describe(dir, kind, bytes))
}

/// The description of one packet of a path of `kind`.
pub fn describe(dir: Direction, kind: PathKind, bytes: &[u8]) -> String {
    match kind {
        PathKind::Ip => describe_ip(bytes),
        PathKind::Arp => match ethernet_payload(bytes) {
            Some((EtherType::ARP, arp)) => describe_arp(arp),
            Some((_, payload)) => describe_ip(payload),
            None => describe_ip(&[]),
        },
        PathKind::Nd => {
            let ip = ethernet_payload(bytes).map_or(&[][..], |(_, p)| p);
            // Nmap traces the advertisements it reads with its ND tracer and the
            // solicitations it sends as plain ICMPv6 packets.
            match (dir, describe_nd(ip)) {
                (Direction::Received, Some(line)) => line,
                _ => describe_ip(ip),
            }
        }
    }
}

/// The Ethernet type and payload of a frame (a VLAN tag is skipped), by portolan-wire's
/// frame view.
fn ethernet_payload(frame: &[u8]) -> Option<(EtherType, &[u8])> {
    let f = ethernet::Packet::new_checked(frame).ok()?;
    Some((f.payload_ethertype(), f.payload()))
}

/// An ARP packet (from its hardware type on) as Nmap's ARP tracer prints it.
pub fn describe_arp(arp: &[u8]) -> String {
    let ipv4_at = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = arp.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let (Some(op), Some(sha), Some(spa), Some(tpa)) =
        (arp.get(7), arp.get(8..14), ipv4_at(14), ipv4_at(24))
    else {
        return format!("ARP (truncated: {} bytes)", arp.len());
    };
    if *op == 1 {
        format!("ARP who-has {tpa} tell {spa}")
    } else {
        let mac: Vec<String> = sha.iter().map(|b| format!("{b:02X}")).collect();
        format!("ARP reply {spa} is-at {}", mac.join(":"))
    }
}

/// A neighbour solicitation or advertisement (an IPv6 packet) as Nmap's ND tracer prints it;
/// `None` for anything else.
pub fn describe_nd(ip: &[u8]) -> Option<String> {
    let packet = ipv6::Packet::new_checked_quoted(ip).ok()?;
    if packet.version() != 6 || packet.next_header() != IpProtocol::ICMPV6 {
        return None;
    }
    let icmp = icmpv6::Packet::new_checked(packet.payload()).ok()?;
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    let (label, desc) = match icmp.msg_type() {
        icmpv6::Message::NEIGHBOR_SOLICIT => (
            "neighbor solicitation",
            match icmp.target_addr() {
                Some(t) => format!("who has {t}"),
                None => "packet too short".to_string(),
            },
        ),
        icmpv6::Message::NEIGHBOR_ADVERT => (
            "neighbor advertisement",
            match icmp.target_addr() {
                None => "packet too short".to_string(),
                Some(t) => {
                    // As Nmap: only a target link-layer address as the first option counts.
                    let first = icmpv6::ndp_options(icmp.ndp_options()).next();
                    match first {
                        Some(Ok(icmpv6::NdpOption::TargetLinkLayerAddr(mac))) => {
                            match MacAddr::from_bytes(mac) {
                                Some(mac) => format!("{t} is at {mac}"),
                                None => "no link-layer address".to_string(),
                            }
                        }
                        _ => "no link-layer address".to_string(),
                    }
                }
            },
        ),
        _ => return None,
    };
    Some(format!("{label} {src} > {dst} {desc}"))
}

/// The bytes an IP header covers, from `start` on, within what was captured.
fn covered(bytes: &[u8], start: usize, end: usize) -> &[u8] {
    bytes.get(start..end.min(bytes.len())).unwrap_or_default()
}

/// An IPv4 or IPv6 packet as Nmap 7.93's `ippackethdrinfo` prints it at low detail.
pub fn describe_ip(bytes: &[u8]) -> String {
    const BOGUS: &str = "BOGUS!  Can't parse supposed IP packet";
    match bytes.first().map(|b| b >> 4) {
        Some(4) => {
            let Ok(ip) = ipv4::Packet::new_checked_quoted(bytes) else {
                return BOGUS.to_string();
            };
            let frag_off = usize::from(ip.frag_offset()) * 8;
            let frag = if frag_off > 0 || ip.more_frags() {
                format!(
                    " frag offset={frag_off}{}",
                    if ip.more_frags() { "+" } else { "" }
                )
            } else {
                String::new()
            };
            let opts = ip.options();
            let opts = if opts.is_empty() {
                String::new()
            } else {
                let hex: String = opts.iter().map(|b| format!("\\x{b:02x}")).collect();
                format!("ipopts={{{hex}}}")
            };
            let info = format!(
                "ttl={} id={} iplen={}{frag} {opts}",
                ip.ttl(),
                ip.ident(),
                ip.total_len()
            );
            let data = covered(bytes, ip.header_len(), usize::from(ip.total_len()));
            let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
            upper(ip.protocol(), data, frag_off, src, dst, &info)
        }
        Some(6) => {
            let Ok(ip) = ipv6::Packet::new_checked_quoted(bytes) else {
                return BOGUS.to_string();
            };
            let info = format!(
                "hopl={} flow={:x} payloadlen={}",
                ip.hop_limit(),
                ip.flow_label(),
                ip.payload_len()
            );
            let data = covered(
                bytes,
                ipv6::HEADER_LEN,
                ipv6::HEADER_LEN + usize::from(ip.payload_len()),
            );
            let (src, dst) = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
            upper(ip.next_header(), data, 0, src, dst, &info)
        }
        _ => BOGUS.to_string(),
    }
}

/// The transport part of the line, with the IP part `info` where Nmap puts it.
fn upper(
    proto: IpProtocol,
    data: &[u8],
    frag_off: usize,
    src: IpAddr,
    dst: IpAddr,
    info: &str,
) -> String {
    match proto {
        IpProtocol::TCP => describe_tcp(data, frag_off, src, dst, info),
        IpProtocol::UDP => match udp::Packet::new_checked(data) {
            Ok(u) if frag_off == 0 => {
                format!("UDP {src}:{} > {dst}:{} {info}", u.src_port(), u.dst_port())
            }
            _ => format!("UDP {src}:?? > {dst}:?? fragment {info} (incomplete)"),
        },
        IpProtocol::ICMP if frag_off == 0 => describe_icmp(data, src, dst, info),
        IpProtocol::ICMP => format!("ICMP {src} > {dst} fragment {info} (incomplete)"),
        IpProtocol::ICMPV6 => match data.get(..2) {
            Some(&[t, c]) if frag_off == 0 => {
                format!("ICMPv6 (58) {src} > {dst} (type={t}/code={c}) {info}")
            }
            _ => format!("ICMPv6 (58) {src} > {dst} (type=?/code=?) {info}"),
        },
        other => format!(
            "{} ({}) {src} > {dst}: {info}",
            protocol_name(other),
            other.0
        ),
    }
}

fn protocol_name(p: IpProtocol) -> &'static str {
    match p.0 {
        0 => "IPv6 Hop-by-Hop",
        2 => "IGMP",
        4 => "IPv4",
        41 => "IPv6",
        43 => "IPv6 Routing",
        44 => "IPv6 Fragment",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        59 => "IPv6 NoNext",
        60 => "IPv6 Options",
        132 => "SCTP",
        _ => "Unknown protocol",
    }
}

fn describe_tcp(data: &[u8], frag_off: usize, src: IpAddr, dst: IpAddr, info: &str) -> String {
    let ports = match (data.get(..2), data.get(2..4)) {
        (Some(s), Some(d)) if frag_off == 0 => Some((
            u16::from_be_bytes([s[0], s[1]]),
            u16::from_be_bytes([d[0], d[1]]),
        )),
        _ => None,
    };
    let Some((sport, dport)) = ports.filter(|_| data.len() >= 8) else {
        return format!("TCP {src}:?? > {dst}:?? ?? {info} (incomplete)");
    };
    let Ok(seg) = tcp::Packet::new_checked(data) else {
        // Ports and sequence number but not the whole header.
        return format!("TCP {src}:{sport} > {dst}:{dport} ?? {info} (incomplete)");
    };
    let options = tcp_options(seg.options());
    format!(
        "TCP {src}:{sport} > {dst}:{dport} {} {info} seq={} win={} {options}",
        tcp_flags(seg.flags()),
        seg.seq_number(),
        seg.window_len()
    )
}

/// Flags in Nmap's (tcpdump's) order.
fn tcp_flags(f: tcp::Flags) -> String {
    use tcp::Flags as F;
    [
        (F::SYN, 'S'),
        (F::FIN, 'F'),
        (F::RST, 'R'),
        (F::PSH, 'P'),
        (F::ACK, 'A'),
        (F::URG, 'U'),
        (F::ECE, 'E'),
        (F::CWR, 'C'),
    ]
    .iter()
    .filter(|(flag, _)| f.contains(*flag))
    .map(|&(_, c)| c)
    .collect()
}

/// TCP options as Nmap lists them: `<mss 1460,sackOK,timestamp 1 0,nop,wscale 7>`.
fn tcp_options(raw: &[u8]) -> String {
    if raw.is_empty() {
        return String::new();
    }
    let mut parts: Vec<String> = Vec::new();
    for option in tcp::options(raw) {
        match option {
            Ok(tcp::TcpOption::EndOfList) => parts.push("eol".into()),
            Ok(tcp::TcpOption::NoOperation) => parts.push("nop".into()),
            Ok(tcp::TcpOption::MaxSegmentSize(m)) => parts.push(format!("mss {m}")),
            Ok(tcp::TcpOption::WindowScale(s)) => parts.push(format!("wscale {s}")),
            Ok(tcp::TcpOption::SackPermitted) => parts.push("sackOK".into()),
            Ok(tcp::TcpOption::Timestamps { tsval, tsecr }) => {
                parts.push(format!("timestamp {tsval} {tsecr}"))
            }
            Ok(tcp::TcpOption::Unknown { kind: 5, data }) => {
                if data.is_empty() || data.len() % 8 != 0 {
                    parts.push("malformed sack".into());
                } else {
                    let mut s = format!("sack {} ", data.len() / 8);
                    for block in data.chunks_exact(8) {
                        let (l, r) = block.split_at(4);
                        let word = |b: &[u8]| b.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
                        let _ = write!(s, "{{{}:{}}}", word(l), word(r));
                    }
                    parts.push(s);
                }
            }
            // Nmap skips kinds it has no words for.
            Ok(tcp::TcpOption::Unknown { .. }) => {}
            Err(_) => {
                parts.push("malformed".into());
                break;
            }
        }
    }
    format!("<{}>", parts.join(","))
}

fn describe_icmp(data: &[u8], src: IpAddr, dst: IpAddr, info: &str) -> String {
    let Ok(icmp) = icmpv4::Packet::new_checked(data) else {
        return format!("ICMP {src} > {dst} fragment {info} (incomplete)");
    };
    let (t, code) = (icmp.msg_type().0, icmp.msg_code());
    let echo = || format!("id={} seq={}", icmp.echo_ident(), icmp.echo_seq_no());
    // The type's words and fields; `None` fields: the message is too short for them.
    let (kind, fields): (String, Option<String>) = match t {
        0 => ("Echo reply".into(), Some(echo())),
        8 => ("Echo request".into(), Some(echo())),
        3 => {
            let mtu = icmp.next_hop_mtu();
            return describe_unreachable(icmp.data(), code, mtu, src, dst, info);
        }
        4 => ("Source quench".into(), Some(String::new())),
        5 => (
            match code {
                0 => "Network redirect",
                1 => "Host redirect",
                _ => "Redirect (unknown code)",
            }
            .into(),
            Some(format!("addr={}", Ipv4Addr::from(icmp.rest_of_header()))),
        ),
        9 => (
            if code == 16 {
                "Router advertisement (Mobile Agent Only)"
            } else {
                "Router advertisement"
            }
            .into(),
            data.get(4..8).map(|b| {
                format!(
                    "addrs={} addrlen={} lifetime={}",
                    b[0],
                    b[1],
                    u16::from_be_bytes([b[2], b[3]])
                )
            }),
        ),
        10 => ("Router solicitation".into(), Some(String::new())),
        11 => (
            match code {
                0 => "TTL=0 during transit",
                1 => "TTL=0 during reassembly",
                _ => "TTL exceeded (unknown code)",
            }
            .into(),
            Some(String::new()),
        ),
        12 => (
            match code {
                0 => "Parameter problem (pointer indicates error)",
                1 => "Parameter problem (option missing)",
                2 => "Parameter problem (bad length)",
                _ => "Parameter problem (unknown code)",
            }
            .into(),
            data.get(4).map(|p| format!("pointer={p}")),
        ),
        13 | 14 => (
            format!("Timestamp {}", if t == 13 { "request" } else { "reply" }),
            icmp.timestamps().map(|(o, r, x)| {
                format!(
                    "id={} seq={} orig={o} recv={r} trans={x}",
                    icmp.echo_ident(),
                    icmp.echo_seq_no()
                )
            }),
        ),
        15 => ("Information request".into(), Some(echo())),
        16 => ("Information reply".into(), Some(echo())),
        17 | 18 => (
            format!("Address mask {}", if t == 17 { "request" } else { "reply" }),
            icmp.address_mask().map(|m| {
                format!(
                    "id={} seq={} mask={m}",
                    icmp.echo_ident(),
                    icmp.echo_seq_no()
                )
            }),
        ),
        30 => ("Traceroute".into(), Some(String::new())),
        37 => ("Domain name request".into(), Some(String::new())),
        38 => ("Domain name reply".into(), Some(String::new())),
        40 => ("Security failures".into(), Some(String::new())),
        _ => ("Unknown type".into(), Some(String::new())),
    };
    match fields {
        Some(f) => icmp_full(src, dst, &kind, t, code, &f, info),
        None => icmp_short(src, dst, &kind, t, code, info),
    }
}

fn icmp_full(
    src: IpAddr,
    dst: IpAddr,
    kind: &str,
    t: u8,
    code: u8,
    fields: &str,
    info: &str,
) -> String {
    format!("ICMP [{src} > {dst} {kind} (type={t}/code={code}) {fields}] IP [{info}]")
}

/// A message shorter than its type needs: its words without its fields.
fn icmp_short(src: IpAddr, dst: IpAddr, kind: &str, t: u8, code: u8, info: &str) -> String {
    format!("ICMP {src} > {dst} {kind} (type={t}/code={code}) IP [{info}]")
}

/// A destination unreachable, with what it quotes of our datagram (its destination, or the
/// port of a port unreachable).
fn describe_unreachable(
    quote: &[u8],
    code: u8,
    mtu: u16,
    src: IpAddr,
    dst: IpAddr,
    info: &str,
) -> String {
    const T: u8 = 3;
    let Ok(inner) = ipv4::Packet::new_checked_quoted(quote) else {
        let kind = match quote.first() {
            None => "Destination unreachable",
            Some(b) if b >> 4 != 4 => "Destination unreachable (bogus original datagram)",
            Some(_) if quote.len() < ipv4::HEADER_LEN => "Destination unreachable",
            Some(_) => "Destination unreachable (bogus original datagram)",
        };
        return icmp_short(src, dst, kind, T, code, info);
    };
    if inner.version() != 4 {
        let kind = "Destination unreachable (bogus original datagram)";
        return icmp_short(src, dst, kind, T, code, info);
    }
    let to = inner.dst_addr();
    let mut fields = String::new();
    let kind = match code {
        0 => format!("Network {to} unreachable"),
        1 => format!("Host {to} unreachable"),
        2 => format!("Protocol {} unreachable", inner.protocol().0),
        3 => {
            let l4 = inner.payload();
            match inner.protocol() {
                IpProtocol::TCP | IpProtocol::UDP | IpProtocol::SCTP => match l4.get(2..4) {
                    Some(p) => format!("Port {} unreachable", u16::from_be_bytes([p[0], p[1]])),
                    None => "Port unreachable".into(),
                },
                p if l4.len() >= 8 => format!("Port unreachable (unknown protocol {})", p.0),
                _ => "Port unreachable".into(),
            }
        }
        4 => {
            fields = format!("Next-Hop-MTU={mtu}");
            "Fragmentation required".into()
        }
        5 => "Source route failed".into(),
        6 => format!("Destination network {to} unknown"),
        7 => format!("Destination host {to} unknown"),
        8 => "Source host isolated".into(),
        9 => format!("Destination network {to} administratively prohibited"),
        10 => format!("Destination host {to} administratively prohibited"),
        11 => format!("Network {to} unreachable for TOS"),
        12 => format!("Host {to} unreachable for TOS"),
        13 => "Communication administratively prohibited by filtering".into(),
        14 => "Host precedence violation".into(),
        15 => "Precedence cutoff in effect".into(),
        _ => "Destination unreachable (unknown code)".into(),
    };
    icmp_full(src, dst, &kind, T, code, &fields, info)
}

/// The `--packet-trace` wrapper around a backend: its paths print every packet sent and
/// every packet handed back to the scan to `out`.
pub struct TraceBackend {
    inner: Arc<dyn Backend>,
    out: Lines,
    start: Instant,
}

impl TraceBackend {
    /// Traces the paths of `inner` to `out`, timed from `start` (the scan's start).
    pub fn new(inner: Arc<dyn Backend>, out: Lines, start: Instant) -> Self {
        TraceBackend { inner, out, start }
    }

    fn wrap<P: 'static>(
        &self,
        path: Box<dyn PacketIo<P> + Send>,
        kind: PathKind,
    ) -> Box<dyn PacketIo<P> + Send> {
        Box::new(Traced {
            inner: path,
            kind,
            out: self.out.clone(),
            start: self.start,
            text: String::new(),
        })
    }
}

impl Backend for TraceBackend {
    fn source_for(&self, dst: IpAddr) -> Result<IpAddr, RawError> {
        self.inner.source_for(dst)
    }
    fn open_ip(
        &self,
        src: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Probe> + Send>, RawError> {
        Ok(self.wrap(self.inner.open_ip(src, ports)?, PathKind::Ip))
    }
    fn open_ip_described(
        &self,
        src: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Described> + Send>, RawError> {
        Ok(self.wrap(self.inner.open_ip_described(src, ports)?, PathKind::Ip))
    }
    fn open_arp(
        &self,
        ifindex: u32,
        local: Ipv4Addr,
    ) -> Result<Box<dyn PacketIo<ArpProbe> + Send>, RawError> {
        Ok(self.wrap(self.inner.open_arp(ifindex, local)?, PathKind::Arp))
    }
    fn open_nd(&self, ifindex: u32) -> Result<Box<dyn PacketIo<NdProbe> + Send>, RawError> {
        Ok(self.wrap(self.inner.open_nd(ifindex)?, PathKind::Nd))
    }
    fn interfaces(&self) -> Result<Vec<Interface>, NetifError> {
        self.inner.interfaces()
    }
    fn neighbours(&self) -> Vec<(Ipv4Addr, MacAddr)> {
        self.inner.neighbours()
    }
    fn is_dry_run(&self) -> bool {
        self.inner.is_dry_run()
    }
}

/// A traced path: everything is the inner path's; the packets are printed on the way.
struct Traced<P> {
    inner: Box<dyn PacketIo<P> + Send>,
    kind: PathKind,
    out: Lines,
    start: Instant,
    text: String,
}

impl<P> Traced<P> {
    fn line(&mut self, dir: Direction, at: Instant, bytes: &[u8]) {
        let secs = at.saturating_duration_since(self.start).as_secs_f64();
        self.text.push_str(&trace_line(dir, secs, self.kind, bytes));
        self.text.push('\n');
    }

    /// Writes the lines gathered, in one write, so that paths on other threads do not
    /// split them.
    fn flush(&mut self) {
        if self.text.is_empty() {
            return;
        }
        if let Ok(mut w) = self.out.lock() {
            // A closed stdout (`| head`) does not stop the scan.
            let _ = w.write_all(self.text.as_bytes());
            let _ = w.flush();
        }
        self.text.clear();
    }
}

impl<P> PacketIo<P> for Traced<P> {
    fn send(&mut self, batch: &[Outgoing<'_, P>]) -> Result<usize, RawError> {
        let at = self.inner.now();
        let sent = self.inner.send(batch)?;
        for o in batch.iter().take(sent) {
            // A path that only describes probes has no bytes to show.
            if !o.packet.is_empty() {
                self.line(Direction::Sent, at, o.packet);
            }
        }
        self.flush();
        Ok(sent)
    }
    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        let before = out.len();
        let n = self.inner.recv(out, max)?;
        for r in out.get(before..).unwrap_or_default() {
            self.line(Direction::Received, r.at, &r.data);
        }
        self.flush();
        Ok(n)
    }
    fn wait(&mut self, until: Option<Instant>) -> Result<(), RawError> {
        self.inner.wait(until)
    }
    fn now(&self) -> Instant {
        self.inner.now()
    }
    fn drops(&self) -> u64 {
        self.inner.drops()
    }
    fn needs_packets(&self) -> bool {
        self.inner.needs_packets()
    }
    fn answers(&self) -> bool {
        self.inner.answers()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sim::{SimBackend, SimHost, SimNet};
    use portolan_wire::build::{
        build_arp_request, build_icmp_echo_v4, build_icmp_echo_v6, build_icmpv4,
        build_neighbor_solicit, build_tcp_v4, build_tcp_v6, build_udp_v4, build_udp_v6,
        EthernetParams, Ipv4Params, Ipv6Params, TcpParams, UdpParams,
    };
    use portolan_wire::tcp::{Flags, TcpOption};
    use std::net::Ipv6Addr;
    use std::sync::Mutex;
    use std::time::Duration;

    const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 5);
    const THEM: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const US6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x771);
    const THEM6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x772);
    const MAC: MacAddr = MacAddr([0xbe, 0x63, 0x95, 0x72, 0x71, 0xd1]);

    fn v4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, ident: u16) -> Ipv4Params {
        Ipv4Params {
            src,
            dst,
            ttl,
            ident,
            dont_frag: false,
        }
    }

    fn v6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, flow_label: u32) -> Ipv6Params {
        Ipv6Params {
            src,
            dst,
            hop_limit,
            traffic_class: 0,
            flow_label,
        }
    }

    fn build(f: impl FnOnce(&mut [u8]) -> portolan_wire::Result<usize>) -> Vec<u8> {
        let mut buf = vec![0u8; 1600];
        let n = f(&mut buf).expect("builds");
        buf.truncate(n);
        buf
    }

    fn syn_v4(options: &[TcpOption<'_>], flags: Flags) -> Vec<u8> {
        let tcp = TcpParams {
            sport: 60153,
            dport: 80,
            seq: 1403934016,
            ack: 0,
            flags,
            window: 1024,
            options,
            payload: &[],
        };
        build(|b| build_tcp_v4(b, None, &v4(US, THEM, 41, 22386), &tcp))
    }

    #[test]
    fn tcp_syn_as_nmap_prints_it() {
        let syn = syn_v4(&[TcpOption::MaxSegmentSize(1460)], Flags::SYN);
        assert_eq!(
            trace_line(Direction::Sent, 0.045, PathKind::Ip, &syn),
            "SENT (0.0450s) TCP 198.18.0.5:60153 > 198.18.0.1:80 S ttl=41 id=22386 iplen=44  \
             seq=1403934016 win=1024 <mss 1460>"
        );
    }

    #[test]
    fn tcp_flags_and_several_options() {
        let opts = [
            TcpOption::MaxSegmentSize(65495),
            TcpOption::SackPermitted,
            TcpOption::Timestamps {
                tsval: 3780466803,
                tsecr: 4294967295,
            },
            TcpOption::NoOperation,
            TcpOption::WindowScale(10),
        ];
        let sa = syn_v4(&opts, Flags::SYN | Flags::ACK);
        assert!(describe_ip(&sa).ends_with(
            " SA ttl=41 id=22386 iplen=60  seq=1403934016 win=1024 \
             <mss 65495,sackOK,timestamp 3780466803 4294967295,nop,wscale 10>"
        ));
        // No options: Nmap's line ends with a space; no flags: two spaces.
        let rst = syn_v4(&[], Flags::RST | Flags::ACK);
        assert!(
            describe_ip(&rst).ends_with(" RA ttl=41 id=22386 iplen=40  seq=1403934016 win=1024 ")
        );
        let null = syn_v4(&[], Flags(0));
        assert!(describe_ip(&null).contains(":80  ttl=41"));
        let xmas = syn_v4(
            &[TcpOption::EndOfList],
            Flags::FIN | Flags::PSH | Flags::URG,
        );
        assert!(
            describe_ip(&xmas).contains(":80 FPU ttl=41"),
            "{}",
            describe_ip(&xmas)
        );
        assert!(describe_ip(&xmas).ends_with("<eol>"));
    }

    #[test]
    fn udp_and_icmp_echo() {
        let udp = UdpParams {
            sport: 53632,
            dport: 53,
            payload: &[],
        };
        let dgram = build(|b| build_udp_v4(b, None, &v4(US, THEM, 41, 11273), &udp));
        assert_eq!(
            describe_ip(&dgram),
            "UDP 198.18.0.5:53632 > 198.18.0.1:53 ttl=41 id=11273 iplen=28 "
        );
        let ping = build(|b| build_icmp_echo_v4(b, None, &v4(US, THEM, 47, 35019), 11104, 0, &[]));
        assert_eq!(
            describe_ip(&ping),
            "ICMP [198.18.0.5 > 198.18.0.1 Echo request (type=8/code=0) id=11104 seq=0] \
             IP [ttl=47 id=35019 iplen=28 ]"
        );
        let ts = icmpv4::Repr::TimestampRequest {
            ident: 6724,
            seq_no: 0,
            originate: 0,
            receive: 0,
            transmit: 0,
        };
        let ts = build(|b| build_icmpv4(b, None, &v4(US, THEM, 38, 22714), &ts));
        assert_eq!(
            describe_ip(&ts),
            "ICMP [198.18.0.5 > 198.18.0.1 Timestamp request (type=13/code=0) id=6724 seq=0 \
             orig=0 recv=0 trans=0] IP [ttl=38 id=22714 iplen=40 ]"
        );
        let mask = icmpv4::Repr::AddressMaskRequest {
            ident: 49930,
            seq_no: 0,
            mask: Ipv4Addr::UNSPECIFIED,
        };
        let mask = build(|b| build_icmpv4(b, None, &v4(US, THEM, 55, 64881), &mask));
        assert_eq!(
            describe_ip(&mask),
            "ICMP [198.18.0.5 > 198.18.0.1 Address mask request (type=17/code=0) id=49930 seq=0 \
             mask=0.0.0.0] IP [ttl=55 id=64881 iplen=32 ]"
        );
    }

    #[test]
    fn unreachable_quotes_the_datagram() {
        let udp = UdpParams {
            sport: 53632,
            dport: 53,
            payload: &[1, 2, 3],
        };
        let probe = build(|b| build_udp_v4(b, None, &v4(US, THEM, 41, 11273), &udp));
        let port = icmpv4::Repr::DstUnreachable {
            code: 3,
            next_hop_mtu: 0,
            inner: &probe,
        };
        let answer = build(|b| build_icmpv4(b, None, &v4(THEM, US, 64, 60470), &port));
        assert_eq!(
            describe_ip(&answer),
            "ICMP [198.18.0.1 > 198.18.0.5 Port 53 unreachable (type=3/code=3) ] \
             IP [ttl=64 id=60470 iplen=59 ]"
        );
        let host = icmpv4::Repr::DstUnreachable {
            code: 1,
            next_hop_mtu: 0,
            inner: &probe,
        };
        let answer = build(|b| build_icmpv4(b, None, &v4(THEM, US, 64, 1), &host));
        assert!(describe_ip(&answer).contains("Host 198.18.0.1 unreachable (type=3/code=1)"));
        // A quote too short for an IP header: the words without the fields.
        let short = icmpv4::Repr::DstUnreachable {
            code: 3,
            next_hop_mtu: 0,
            inner: &probe[..10],
        };
        let answer = build(|b| build_icmpv4(b, None, &v4(THEM, US, 64, 2), &short));
        assert!(describe_ip(&answer)
            .starts_with("ICMP 198.18.0.1 > 198.18.0.5 Destination unreachable (type=3/code=3)"));
    }

    #[test]
    fn ipv6_tcp_udp_icmpv6() {
        let tcp = TcpParams::syn(49338, 22, 3125387734);
        let syn = build(|b| build_tcp_v6(b, None, &v6(US6, THEM6, 255, 0), &tcp));
        assert_eq!(
            describe_ip(&syn),
            "TCP 2001:2::771:49338 > 2001:2::772:22 S hopl=255 flow=0 payloadlen=24 \
             seq=3125387734 win=1024 <mss 1460>"
        );
        let udp = UdpParams {
            sport: 39012,
            dport: 53,
            payload: &[0; 12],
        };
        let dgram = build(|b| build_udp_v6(b, None, &v6(US6, THEM6, 255, 0), &udp));
        assert_eq!(
            describe_ip(&dgram),
            "UDP 2001:2::771:39012 > 2001:2::772:53 hopl=255 flow=0 payloadlen=20"
        );
        let echo = build(|b| build_icmp_echo_v6(b, None, &v6(THEM6, US6, 64, 0x8feb6), 1, 2, &[]));
        assert_eq!(
            describe_ip(&echo),
            "ICMPv6 (58) 2001:2::772 > 2001:2::771 (type=128/code=0) hopl=64 flow=8feb6 \
             payloadlen=8"
        );
    }

    #[test]
    fn arp_request_and_reply() {
        let req = build(|b| build_arp_request(b, MAC, US, THEM));
        assert_eq!(
            describe(Direction::Sent, PathKind::Arp, &req),
            "ARP who-has 198.18.0.1 tell 198.18.0.5"
        );
        // The reply: the same frame with operation 2 and the sender's MAC.
        let mut reply = req.clone();
        reply[14 + 7] = 2;
        reply[14 + 14..14 + 18].copy_from_slice(&THEM.octets());
        assert_eq!(
            describe(Direction::Received, PathKind::Arp, &reply),
            "ARP reply 198.18.0.1 is-at BE:63:95:72:71:D1"
        );
        assert!(describe_arp(&req[14..30]).starts_with("ARP (truncated"));
    }

    #[test]
    fn neighbour_discovery() {
        let ns = build(|b| build_neighbor_solicit(b, MAC, US6, THEM6));
        assert_eq!(
            describe(Direction::Sent, PathKind::Nd, &ns),
            "ICMPv6 (58) 2001:2::771 > ff02::1:ff00:772 (type=135/code=0) hopl=255 flow=0 \
             payloadlen=32"
        );
        let na = icmpv6::Repr::NeighborAdvert {
            flags: icmpv6::NeighborFlags::SOLICITED,
            target_addr: THEM6,
            target_lladdr: Some(MAC),
        };
        let eth = EthernetParams { src: MAC, dst: MAC };
        let frame = build(|b| {
            portolan_wire::build::build_icmpv6(b, Some(&eth), &v6(THEM6, US6, 255, 0), &na)
        });
        assert_eq!(
            describe(Direction::Received, PathKind::Nd, &frame),
            "neighbor advertisement 2001:2::772 > 2001:2::771 2001:2::772 is at be:63:95:72:71:d1"
        );
    }

    #[test]
    fn truncated_and_garbage_bytes_never_panic() {
        let syn = syn_v4(&[TcpOption::MaxSegmentSize(1460)], Flags::SYN);
        // Every prefix of a real packet, and the same with its header length bytes mangled.
        for n in 0..=syn.len() {
            for kind in [PathKind::Ip, PathKind::Arp, PathKind::Nd] {
                for dir in [Direction::Sent, Direction::Received] {
                    let _ = describe(dir, kind, &syn[..n]);
                }
            }
        }
        assert_eq!(describe_ip(&[]), "BOGUS!  Can't parse supposed IP packet");
        assert_eq!(
            describe_ip(&[0x45; 3]),
            "BOGUS!  Can't parse supposed IP packet"
        );
        // A header that says TCP but holds 4 bytes of it.
        let mut cut = syn[..24].to_vec();
        cut[3] = 24;
        assert_eq!(
            describe_ip(&cut),
            "TCP 198.18.0.5:?? > 198.18.0.1:?? ?? ttl=41 id=22386 iplen=24  (incomplete)"
        );
        // A TCP header cut after its ports and sequence number.
        let mut cut = syn[..32].to_vec();
        cut[3] = 32;
        assert!(describe_ip(&cut).starts_with("TCP 198.18.0.5:60153 > 198.18.0.1:80 ?? "));
        // Options that overrun the header.
        let mut bad = syn.clone();
        bad[20 + 21] = 40;
        assert!(describe_ip(&bad).ends_with("<malformed>"));
        // Pseudo-random bytes, a few thousand of them, with IPv4 and IPv6 version nibbles.
        let mut x: u32 = 0x1234_5678;
        for round in 0..4000 {
            let len = (round % 90) as usize;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if let Some(b) = bytes.first_mut() {
                *b = if round % 2 == 0 { 0x45 } else { 0x60 };
            }
            for kind in [PathKind::Ip, PathKind::Arp, PathKind::Nd] {
                let _ = describe(Direction::Received, kind, &bytes);
            }
        }
    }

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn traced_sim_path_prints_what_went_and_what_came_back() {
        let net = SimNet::new(US).host(
            THEM,
            SimHost {
                open_tcp: vec![80],
                ..SimHost::default()
            },
        );
        let buf = Buf::default();
        let out: Lines = Arc::new(Mutex::new(buf.clone()));
        let sim = SimBackend::new(net);
        let start = Instant::now();
        let backend = TraceBackend::new(Arc::new(sim), out, start);
        let mut io = backend
            .open_ip_described(IpAddr::V4(US), 60000..=60010)
            .expect("opens");
        let probe = Described {
            what: "test",
            n: None,
            tag: 0,
        };
        let mut packets = Vec::new();
        for (port, sport) in [(80u16, 60001u16), (81, 60002)] {
            let tcp = TcpParams::syn(sport, port, 7);
            packets.push(build(|b| build_tcp_v4(b, None, &v4(US, THEM, 64, 1), &tcp)));
        }
        let batch: Vec<Outgoing<'_, Described>> = packets
            .iter()
            .map(|p| Outgoing {
                probe: &probe,
                dst: IpAddr::V4(THEM),
                packet: p,
            })
            .collect();
        assert_eq!(io.send(&batch).expect("sends"), 2);
        let mut got = Vec::new();
        for _ in 0..10 {
            let until = io.now() + Duration::from_millis(5);
            io.wait(Some(until)).expect("waits");
            io.recv(&mut got, 64).expect("receives");
            if got.len() >= 2 {
                break;
            }
        }
        assert_eq!(got.len(), 2, "the simulated host answers both SYNs");
        let text = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("SENT (") && lines[0].contains(":60001 > 198.18.0.1:80 S "));
        assert!(lines[1].contains(":60002 > 198.18.0.1:81 S "));
        let rcvd: Vec<&&str> = lines.iter().filter(|l| l.starts_with("RCVD (")).collect();
        assert!(rcvd
            .iter()
            .any(|l| l.contains("198.18.0.1:80 > 198.18.0.5:60001 SA ")));
        assert!(rcvd
            .iter()
            .any(|l| l.contains("198.18.0.1:81 > 198.18.0.5:60002 RA ")));
    }
}
