//! The sixteen OS detection probes as Nmap 7.9x builds them (osscan2.cc), and which probe a
//! received packet answers.
//!
//! Nmap makes its random choices once per host and round (`HostOsScan::reInitScanSystem`):
//! a TCP source port base (the probe's index is its offset from it, which is how replies are
//! told apart), a UDP source port, the TCP sequence base and acknowledgement number, the ICMP
//! echo id, the TTL of U1. [`HostProbes`] holds those choices, drawn from a seed, so a run can
//! be replayed. Per packet, Nmap also draws the IP ID and the TTL of TCP and ICMP probes.
// OWNER: helper "os-probes".

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::time::Duration;

use portolan_wire::icmpv4::{self, Message};
use portolan_wire::tcp::{self, Flags};
use portolan_wire::{ipv4, udp, IpPair, IpProtocol};

/// One OS detection probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OsProbe {
    /// The six TCP sequence probes to the open port, 1..=6 (SEQ, OPS, WIN; the first's
    /// answer is also T1). Attempt 0 is the SEQ probe proper; a later attempt is Nmap's
    /// "TOPS" resend of the same options from another port, for OPS and WIN only.
    Seq(u8),
    /// ICMP echo 1..=2 (IE).
    Ie(u8),
    /// The ECN SYN to the open port.
    Ecn,
    /// T2..=T7 (T2-T4 to the open port, T5-T7 to the closed one). `T(1)` is the resend of
    /// the first SEQ probe Nmap makes only when that one got no answer.
    T(u8),
    /// The UDP probe to the closed UDP port.
    U1,
}

/// The ports OS detection aims at, as the port scan found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OsPorts {
    pub open_tcp: Option<u16>,
    pub closed_tcp: Option<u16>,
    pub closed_udp: Option<u16>,
}

/// Nmap's spacing of the six SEQ probes (osscan2.cc's doSeqTests waits 100 ms between them),
/// which its SP, ISR and TS tests assume.
pub const SEQ_GAP: Duration = Duration::from_millis(100);

/// Nmap's `PRIME_32K`: source port bases are 33000 plus a number below it.
const PRIME_32K: u32 = 32261;
/// Offsets from the TCP port base (osscan2.cc): SEQ 0-5, TOPS 6-11, ECN 12, T1-T7 13-19.
const TOPS_OFF: u16 = 6;
const ECN_OFF: u16 = 12;
const T_OFF: u16 = 13;
const TCP_PORTS: u16 = 20;
/// IE's echo sequence numbers start here (Nmap's `icmpEchoSeq`).
const ICMP_SEQ: u16 = 295;
/// U1's fixed IP ID, payload byte and length.
pub const U1_IP_ID: u16 = 0x1042;
pub const U1_BYTE: u8 = b'C';
pub const U1_LEN: usize = 300;

/// The TCP options of each probe, as raw bytes (Nmap's `prbOpts`): SEQ 1-6, ECN, T2-T7.
const OPTS: [&[u8]; 13] = [
    b"\x03\x03\x0A\x01\x02\x04\x05\xb4\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x04\x02",
    b"\x02\x04\x05\x78\x03\x03\x00\x04\x02\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x00",
    b"\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x01\x01\x03\x03\x05\x01\x02\x04\x02\x80",
    b"\x04\x02\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x03\x03\x0A\x00",
    b"\x02\x04\x02\x18\x04\x02\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x03\x03\x0A\x00",
    b"\x02\x04\x01\x09\x04\x02\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00",
    b"\x03\x03\x0A\x01\x02\x04\x05\xb4\x04\x02\x01\x01",
    b"\x03\x03\x0A\x01\x02\x04\x01\x09\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x04\x02",
    b"\x03\x03\x0A\x01\x02\x04\x01\x09\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x04\x02",
    b"\x03\x03\x0A\x01\x02\x04\x01\x09\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x04\x02",
    b"\x03\x03\x0A\x01\x02\x04\x01\x09\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x04\x02",
    b"\x03\x03\x0A\x01\x02\x04\x01\x09\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x04\x02",
    b"\x03\x03\x0f\x01\x02\x04\x01\x09\x08\x0A\xff\xff\xff\xff\x00\x00\x00\x00\x04\x02",
];

/// The window of each probe, same numbering (Nmap's `prbWindowSz`); T1 uses SEQ 1's.
const WINDOWS: [u16; 13] = [1, 63, 4, 4, 16, 512, 3, 128, 256, 1024, 31337, 32768, 65535];

/// Every per-host choice Nmap makes once per round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProbes {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    /// The ports as given, and the ones used (Nmap picks a random closed port when the scan
    /// found none; the fingerprint then has no `R=N` line for the tests aimed at it).
    given: OsPorts,
    used: OsPorts,
    tcp_base: u16,
    udp_port: u16,
    seq_base: u32,
    ack: u32,
    icmp_id: u16,
    udp_ttl: u8,
    seed: u64,
}

/// SplitMix64: small, good enough for choices that only need to look random.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn port_base(r: u64) -> u16 {
    // 33000 + r % 32261 may exceed 65535 - 19; keep every probe's port valid.
    (33000 + (r % u64::from(PRIME_32K)) as u32).min(u32::from(u16::MAX - TCP_PORTS)) as u16
}

/// Nmap's per-round random choices, spelled out (to replay a capture of Nmap's own run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choices {
    /// Source port of SEQ 1; the other TCP probes follow (TOPS +6.., ECN +12, T1-T7 +13..).
    pub tcp_base: u16,
    /// U1's source port.
    pub udp_port: u16,
    /// SEQ 1's sequence number.
    pub seq_base: u32,
    pub ack: u32,
    /// IE 1's id.
    pub icmp_id: u16,
    pub udp_ttl: u8,
    /// The closed ports used when `ports` has none.
    pub closed_tcp: u16,
    pub closed_udp: u16,
}

impl HostProbes {
    /// Probes with the given choices; `seed` still draws the per-packet IP IDs and TTLs.
    pub fn with_choices(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ports: OsPorts,
        choices: Choices,
        seed: u64,
    ) -> HostProbes {
        HostProbes {
            src,
            dst,
            given: ports,
            used: OsPorts {
                open_tcp: ports.open_tcp,
                closed_tcp: Some(ports.closed_tcp.unwrap_or(choices.closed_tcp)),
                closed_udp: Some(ports.closed_udp.unwrap_or(choices.closed_udp)),
            },
            tcp_base: choices.tcp_base.min(u16::MAX - TCP_PORTS),
            udp_port: choices.udp_port,
            seq_base: choices.seq_base,
            ack: choices.ack,
            icmp_id: choices.icmp_id,
            udp_ttl: choices.udp_ttl,
            seed,
        }
    }

    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, ports: OsPorts, seed: u64) -> HostProbes {
        let r = |i: u64| mix(seed ^ mix(i));
        // Nmap: "pick one at random": 30000 + rand % 14781.
        let random_port = |i: u64| 30000 + (r(i) % 14781) as u16;
        let used = OsPorts {
            open_tcp: ports.open_tcp,
            closed_tcp: Some(ports.closed_tcp.unwrap_or_else(|| random_port(1))),
            closed_udp: Some(ports.closed_udp.unwrap_or_else(|| random_port(2))),
        };
        let tcp_base = port_base(r(3));
        HostProbes {
            src,
            dst,
            given: ports,
            used,
            tcp_base,
            // Nmap draws U1's port apart; right after the TCP ports keeps the receive filter's
            // range small, and the target cannot tell.
            udp_port: tcp_base + TCP_PORTS,
            seq_base: r(5) as u32,
            ack: r(6) as u32,
            icmp_id: r(7) as u16,
            // Nmap: time(NULL) % 14 + 51.
            udp_ttl: 51 + (r(8) % 14) as u8,
            seed,
        }
    }

    /// The ports the probes go to (with any closed port Nmap would pick at random).
    pub fn ports(&self) -> OsPorts {
        self.used
    }

    /// The ports as the port scan found them (`None`: not known, a random one is used).
    pub fn given_ports(&self) -> OsPorts {
        self.given
    }

    /// The source ports the probes use, TCP and UDP (for the receive filter): TCP replies
    /// come back to one of them, U1's port unreachable quotes one.
    pub fn source_ports(&self) -> RangeInclusive<u16> {
        let lo = self.tcp_base.min(self.udp_port);
        let hi = (self.tcp_base + TCP_PORTS - 1).max(self.udp_port);
        lo..=hi
    }

    pub fn src(&self) -> Ipv4Addr {
        self.src
    }

    pub fn dst(&self) -> Ipv4Addr {
        self.dst
    }

    /// The sequence number SEQ probe `n` (1-based) carries; the others carry the base.
    pub fn seq_number(&self, n: u8) -> u32 {
        self.seq_base.wrapping_add(u32::from(n.saturating_sub(1)))
    }

    /// The acknowledgement number the TCP probes carry (ECN: 0).
    pub fn ack_number(&self) -> u32 {
        self.ack
    }

    /// The id IE 1 carries (IE 2: one more).
    pub fn icmp_id(&self) -> u16 {
        self.icmp_id
    }

    /// U1's source port.
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }

    /// U1's TTL.
    pub fn udp_ttl(&self) -> u8 {
        self.udp_ttl
    }

    /// The TCP source port of a probe (`None` for IE and U1).
    pub fn tcp_port(&self, probe: OsProbe, attempt: u8) -> Option<u16> {
        let off = match probe {
            OsProbe::Seq(n @ 1..=6) if attempt == 0 => u16::from(n) - 1,
            OsProbe::Seq(n @ 1..=6) => TOPS_OFF + u16::from(n) - 1,
            OsProbe::Ecn => ECN_OFF,
            OsProbe::T(n @ 1..=7) => T_OFF + u16::from(n) - 1,
            _ => return None,
        };
        Some(self.tcp_base + off)
    }

    /// Per packet draws (IP ID, TTL), as Nmap's `get_random_u16` and `% 23 + 37`.
    fn draw(&self, probe: OsProbe, attempt: u8) -> (u16, u8) {
        let tag = match probe {
            OsProbe::Seq(n) => u64::from(n),
            OsProbe::Ie(n) => 0x10 + u64::from(n),
            OsProbe::Ecn => 0x20,
            OsProbe::T(n) => 0x30 + u64::from(n),
            OsProbe::U1 => 0x40,
        };
        let r = mix(self.seed ^ mix(0x1000 + (tag << 8) + u64::from(attempt)));
        (r as u16, 37 + ((r >> 16) % 23) as u8)
    }
}

/// The probes Nmap sends to this host, in its order: SEQ 1-6 (open port), IE 1-2, U1, ECN and
/// T2-T4 (open port), T5-T7.
///
/// Nmap sends the six SEQ probes first, [`SEQ_GAP`] apart, and never resends them within a
/// round; the others follow, each resent (same ports and numbers) until answered, at most
/// three tries. For SEQ probes left unanswered it adds the resends [`seq_resends`] lists.
pub fn wanted(h: &HostProbes) -> Vec<OsProbe> {
    let open = h.used.open_tcp.is_some();
    let mut list = Vec::with_capacity(16);
    if open {
        list.extend((1..=6).map(OsProbe::Seq));
    }
    list.extend([OsProbe::Ie(1), OsProbe::Ie(2), OsProbe::U1]);
    if open {
        list.push(OsProbe::Ecn);
        list.extend((2..=4).map(OsProbe::T));
    }
    list.extend((5..=7).map(OsProbe::T));
    list
}

/// What Nmap adds to its second phase for the SEQ probes not answered (`answered[i]` for
/// SEQ i+1): the same options again from another port (Nmap's TOPS, `attempt` 1, for OPS and
/// WIN), and T1 when SEQ 1 got nothing. Empty without an open port.
pub fn seq_resends(h: &HostProbes, answered: [bool; 6]) -> Vec<(OsProbe, u8)> {
    if h.used.open_tcp.is_none() {
        return Vec::new();
    }
    let mut list: Vec<(OsProbe, u8)> = (1..=6u8)
        .filter(|&n| !answered[usize::from(n - 1)])
        .map(|n| (OsProbe::Seq(n), 1))
        .collect();
    if !answered[0] {
        list.push((OsProbe::T(1), 0));
    }
    list
}

/// The TCP probe `probe`'s fields: (index into OPTS/WINDOWS, flags, DF, seq, ack, urgent).
fn tcp_shape(
    h: &HostProbes,
    probe: OsProbe,
    attempt: u8,
) -> Option<(usize, Flags, bool, u32, u32, u16)> {
    let syn = Flags::SYN;
    Some(match probe {
        OsProbe::Seq(n @ 1..=6) => {
            let seq = if attempt == 0 {
                h.seq_number(n)
            } else {
                h.seq_base
            };
            (usize::from(n) - 1, syn, false, seq, h.ack, 0)
        }
        // Nmap's reserved value 8 is the top reserved bit (0x800 of the 12-bit field).
        OsProbe::Ecn => (
            6,
            Flags(0x800) | Flags::CWR | Flags::ECE | syn,
            false,
            h.seq_base,
            0,
            0xF7F5,
        ),
        OsProbe::T(n @ 1..=7) => {
            let (flags, df) = match n {
                1 => (syn, false),
                2 => (Flags(0), true),
                3 => (syn | Flags::FIN | Flags::URG | Flags::PSH, false),
                4 => (Flags::ACK, true),
                5 => (syn, false),
                6 => (Flags::ACK, true),
                _ => (Flags::FIN | Flags::PSH | Flags::URG, false),
            };
            // T1 repeats SEQ 1's options; T2-T7 have their own.
            let i = if n == 1 { 0 } else { 5 + usize::from(n) };
            (i, flags, df, h.seq_base, h.ack, 0)
        }
        _ => return None,
    })
}

/// Writes the whole IPv4 packet of `probe` into `buf` (replacing its contents), as Nmap sends
/// it. `attempt` counts resends: ports and sequence numbers stay (Nmap resends the same probe;
/// a new round is a new [`HostProbes`]); IP ID and TTL are drawn again. For SEQ, a resend is
/// Nmap's TOPS probe.
pub fn build(
    h: &HostProbes,
    probe: OsProbe,
    attempt: u8,
    buf: &mut Vec<u8>,
) -> Result<(), portolan_wire::Error> {
    let (ident, ttl) = h.draw(probe, attempt);
    let mut ip = ipv4::Repr {
        src_addr: h.src,
        dst_addr: h.dst,
        protocol: IpProtocol::TCP,
        payload_len: 0,
        ttl,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    let ips = IpPair::V4 {
        src: h.src,
        dst: h.dst,
    };
    buf.clear();
    match probe {
        OsProbe::Seq(_) | OsProbe::Ecn | OsProbe::T(_) => {
            let (i, flags, df, seq, ack, urgent) = tcp_shape(h, probe, attempt)
                .ok_or(portolan_wire::Error::Unsupported("no such OS probe"))?;
            let open = matches!(probe, OsProbe::T(5..=7))
                .then_some(h.used.closed_tcp)
                .unwrap_or(h.used.open_tcp);
            let dport = open.ok_or(portolan_wire::Error::Unsupported("no port for this probe"))?;
            let sport = h
                .tcp_port(probe, attempt)
                .ok_or(portolan_wire::Error::Unsupported("no such OS probe"))?;
            let seg = tcp::Repr {
                src_port: sport,
                dst_port: dport,
                seq_number: seq,
                ack_number: ack,
                flags,
                window_len: WINDOWS[i],
                urgent_at: urgent,
                options: OPTS[i],
                payload: &[],
            };
            ip.dont_frag = df;
            ip.payload_len = seg.buffer_len();
            buf.resize(ip.buffer_len() + ip.payload_len, 0);
            let (head, rest) = buf.split_at_mut(ip.buffer_len());
            ip.emit(&mut ipv4::Packet::new_unchecked(head))?;
            seg.emit(&mut tcp::Packet::new_unchecked(rest), &ips)?;
        }
        OsProbe::Ie(n @ 1..=2) => {
            // IE 1: TOS 0, DF, code 9, 120 zero bytes; IE 2: TOS 4 (reliability), code 0,
            // 150 zero bytes; consecutive ids and sequence numbers.
            let (dscp, df, code, len) = if n == 1 {
                (0, true, 9, 120)
            } else {
                (1, false, 0, 150)
            };
            ip.protocol = IpProtocol::ICMP;
            ip.dscp = dscp;
            ip.dont_frag = df;
            ip.payload_len = icmpv4::HEADER_LEN + len;
            buf.resize(ip.buffer_len() + ip.payload_len, 0);
            let (head, rest) = buf.split_at_mut(ip.buffer_len());
            ip.emit(&mut ipv4::Packet::new_unchecked(head))?;
            let mut icmp = icmpv4::Packet::new_unchecked(rest);
            icmp.set_msg_type(Message::ECHO_REQUEST);
            icmp.set_msg_code(code);
            icmp.set_echo_ident(h.icmp_id.wrapping_add(u16::from(n - 1)));
            icmp.set_echo_seq_no(ICMP_SEQ + u16::from(n - 1));
            icmp.fill_checksum();
        }
        OsProbe::U1 => {
            let dport = h
                .used
                .closed_udp
                .ok_or(portolan_wire::Error::Unsupported("no port for this probe"))?;
            let payload = [U1_BYTE; U1_LEN];
            let dgram = udp::Repr {
                src_port: h.udp_port,
                dst_port: dport,
                payload: &payload,
            };
            ip.protocol = IpProtocol::UDP;
            ip.ident = U1_IP_ID;
            ip.ttl = h.udp_ttl;
            ip.payload_len = dgram.buffer_len();
            buf.resize(ip.buffer_len() + ip.payload_len, 0);
            let (head, rest) = buf.split_at_mut(ip.buffer_len());
            ip.emit(&mut ipv4::Packet::new_unchecked(head))?;
            dgram.emit(&mut udp::Packet::new_unchecked(rest), &ips)?;
        }
        OsProbe::Ie(_) => return Err(portolan_wire::Error::Unsupported("no such OS probe")),
    }
    Ok(())
}

/// Where a received packet lands among Nmap's probes (osscan2.cc's `processResp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A TCP reply to the probe sent from `tcp_base + offset` (0-5 SEQ, 6-11 TOPS, 12 ECN,
    /// 13-19 T1-T7).
    Tcp(u16),
    /// An echo reply to IE 1 (0) or IE 2 (1).
    Echo(u8),
    /// A port unreachable quoting U1.
    Unreach,
}

/// Finds the slot of a received IPv4 packet (header on) from `h.dst` to `h.src`.
pub(crate) fn locate(h: &HostProbes, packet: &[u8]) -> Option<Slot> {
    let ip = ipv4::Packet::new_checked(packet).ok()?;
    if ip.src_addr() != h.dst || ip.dst_addr() != h.src || ip.frag_offset() != 0 {
        return None;
    }
    let l4 = ip.payload();
    match ip.protocol() {
        IpProtocol::TCP => {
            let seg = tcp::Packet::new_checked(l4).ok()?;
            let off = seg.dst_port().checked_sub(h.tcp_base)?;
            if off >= TCP_PORTS {
                return None;
            }
            // The reply must come from the port the probe went to.
            let expect = if (T_OFF + 4..TCP_PORTS).contains(&off) {
                h.used.closed_tcp
            } else {
                h.used.open_tcp
            };
            (Some(seg.src_port()) == expect).then_some(Slot::Tcp(off))
        }
        IpProtocol::ICMP => {
            let icmp = icmpv4::Packet::new_checked(l4).ok()?;
            match icmp.msg_type() {
                Message::ECHO_REPLY => match icmp.echo_ident().wrapping_sub(h.icmp_id) {
                    n @ 0..=1 => Some(Slot::Echo(n as u8)),
                    _ => None,
                },
                Message::DST_UNREACHABLE if icmp.msg_code() == 3 => {
                    // As Nmap: the quoted header's own length, then the UDP ports.
                    let quoted = l4.get(8..)?;
                    let hlen = usize::from(quoted.first()? & 0x0f) * 4;
                    let udp = quoted.get(hlen..hlen + 8).filter(|_| hlen >= 20)?;
                    let sport = u16::from_be_bytes([udp[0], udp[1]]);
                    let dport = u16::from_be_bytes([udp[2], udp[3]]);
                    (quoted.get(9) == Some(&17)
                        && sport == h.udp_port
                        && Some(dport) == h.used.closed_udp)
                        .then_some(Slot::Unreach)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Which probe a received IPv4 packet (header on) answers, as Nmap's `processResp` decides:
/// TCP by the destination port's offset from the port base, echo replies by id, port
/// unreachables by the UDP probe they quote. Addresses are checked; checksums are not (the
/// tests judge those).
pub fn classify(h: &HostProbes, packet: &[u8]) -> Option<OsProbe> {
    Some(match locate(h, packet)? {
        Slot::Tcp(off @ 0..=5) => OsProbe::Seq(off as u8 + 1),
        Slot::Tcp(off @ 6..=11) => OsProbe::Seq(off as u8 - 5),
        Slot::Tcp(ECN_OFF) => OsProbe::Ecn,
        Slot::Tcp(off) => OsProbe::T((off - T_OFF) as u8 + 1),
        Slot::Echo(n) => OsProbe::Ie(n + 1),
        Slot::Unreach => OsProbe::U1,
    })
}

/// Reading the loopback capture of Nmap's own OS detection (testdata/nmap-lo.pcap).
#[cfg(test)]
pub(crate) mod capture {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::{Choices, HostProbes, OsPorts};

    pub const OPEN: u16 = 22222;
    pub const CLOSED: u16 = 22223;
    pub const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

    /// A capture of Nmap's OS detection (testdata/README.md): the file, and who scanned whom.
    #[derive(Clone, Copy)]
    pub struct Fixture {
        pub name: &'static str,
        pub src: Ipv4Addr,
        pub dst: Ipv4Addr,
    }

    /// Loopback: Nmap against its own host.
    pub const LO: Fixture = Fixture {
        name: "nmap-lo",
        src: LOCAL,
        dst: LOCAL,
    };
    /// Two namespaces with a router between them.
    pub const ROUTED: Fixture = Fixture {
        name: "nmap-routed",
        src: Ipv4Addr::new(198, 18, 77, 1),
        dst: Ipv4Addr::new(198, 18, 77, 6),
    };

    pub fn frames() -> Vec<Frame> {
        frames_of(LO)
    }

    pub fn round(frames: &[Frame], n: usize) -> (HostProbes, usize) {
        round_of(LO, frames, n)
    }

    /// One captured IPv4 packet and when it was seen (since the Unix epoch).
    pub struct Frame {
        pub at: Duration,
        pub ip: Vec<u8>,
    }

    /// The frames of a classic little-endian, microsecond pcap of Ethernet (as tcpdump
    /// writes `lo`).
    pub fn frames_of(fx: Fixture) -> Vec<Frame> {
        let path = format!("{}/testdata/{}.pcap", env!("CARGO_MANIFEST_DIR"), fx.name);
        let data = std::fs::read(path).expect("fixture");
        assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "LE microsecond pcap");
        assert_eq!(
            u32::from_le_bytes(data[20..24].try_into().unwrap()),
            1,
            "Ethernet"
        );
        let le = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
        let mut at = 24;
        let mut out = Vec::new();
        while at + 16 <= data.len() {
            let (sec, usec, len) = (le(at), le(at + 4), le(at + 8) as usize);
            let frame = &data[at + 16..at + 16 + len];
            at += 16 + len;
            if frame.len() > 14 && frame[12..14] == [0x08, 0x00] {
                out.push(Frame {
                    at: Duration::new(u64::from(sec), usec * 1000),
                    ip: frame[14..].to_vec(),
                });
            }
        }
        out
    }

    pub fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([b[i], b[i + 1]])
    }

    pub fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }

    /// Nmap's choices in the given round (0-based), read off its probes: SEQ 1 is the
    /// round's first SYN with window 1, T4 (a bare ACK) carries the ack number, IE 1 the
    /// echo id, U1 the UDP port and TTL.
    pub fn round_of(fx: Fixture, frames: &[Frame], n: usize) -> (HostProbes, usize) {
        let from_us =
            |f: &Frame| f.ip[12..16] == fx.src.octets() && f.ip[16..20] == fx.dst.octets();
        let tcp_to_open = |f: &&Frame| from_us(f) && f.ip[9] == 6 && u16_at(&f.ip, 22) == OPEN;
        let seq1 = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| tcp_to_open(f) && u16_at(&f.ip, 34) == 1 && f.ip[33] == 0x02)
            .nth(n)
            .expect("round")
            .0;
        let later = &frames[seq1..];
        let base = u16_at(&later[0].ip, 20);
        let seq = u32_at(&later[0].ip, 24);
        let t4 = later
            .iter()
            .find(|f| tcp_to_open(f) && u16_at(&f.ip, 20) == base + 16)
            .expect("T4");
        let ie1 = later
            .iter()
            .find(|f| from_us(f) && f.ip[9] == 1 && f.ip[20] == 8)
            .expect("IE 1");
        let u1 = later
            .iter()
            .find(|f| from_us(f) && f.ip[9] == 17)
            .expect("U1");
        let choices = Choices {
            tcp_base: base,
            udp_port: u16_at(&u1.ip, 20),
            seq_base: seq,
            ack: u32_at(&t4.ip, 28),
            icmp_id: u16_at(&ie1.ip, 24),
            udp_ttl: u1.ip[8],
            closed_tcp: CLOSED,
            closed_udp: u16_at(&u1.ip, 22),
        };
        let ports = OsPorts {
            open_tcp: Some(OPEN),
            closed_tcp: Some(CLOSED),
            closed_udp: None,
        };
        (
            HostProbes::with_choices(fx.src, fx.dst, ports, choices, 7),
            seq1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::capture::{self, u16_at, LOCAL};
    use super::*;

    fn probes() -> HostProbes {
        let ports = OsPorts {
            open_tcp: Some(80),
            closed_tcp: Some(81),
            closed_udp: Some(82),
        };
        HostProbes::new(LOCAL, Ipv4Addr::new(198, 18, 0, 2), ports, 42)
    }

    /// Blanks the fields Nmap draws per packet: IP ID, TTL, and the IP checksum they change.
    fn unrandom(mut p: Vec<u8>) -> Vec<u8> {
        for i in [4, 5, 8, 10, 11] {
            p[i] = 0;
        }
        p
    }

    #[test]
    fn our_probes_are_nmaps_probes() {
        for fx in [capture::LO, capture::ROUTED] {
            nmaps_probes(fx);
        }
    }

    fn nmaps_probes(fx: capture::Fixture) {
        let frames = capture::frames_of(fx);
        let (h, start) = capture::round_of(fx, &frames, 0);
        let round = &frames[start..];
        let sent_from = |proto: u8, sport: u16| {
            round
                .iter()
                .find(|f| {
                    f.ip[12..16] == fx.src.octets()
                        && f.ip[9] == proto
                        && u16_at(&f.ip, 20) == sport
                })
                .map(|f| f.ip.clone())
        };
        let mut buf = Vec::new();
        let mut compared = 0;
        for probe in wanted(&h) {
            build(&h, probe, 0, &mut buf).unwrap();
            let nmap = match probe {
                OsProbe::Ie(n) => round
                    .iter()
                    .find(|f| {
                        f.ip[9] == 1
                            && f.ip[20] == 8
                            && u16_at(&f.ip, 24) == h.icmp_id() + u16::from(n) - 1
                    })
                    .map(|f| f.ip.clone()),
                OsProbe::U1 => sent_from(17, h.udp_port()),
                _ => sent_from(6, h.tcp_port(probe, 0).unwrap()),
            };
            let Some(nmap) = nmap else {
                panic!("{probe:?} not in the capture");
            };
            if probe == OsProbe::U1 {
                // Fixed IP ID and TTL: the very same bytes.
                assert_eq!(buf, nmap, "{probe:?}");
            } else {
                assert_eq!(unrandom(buf.clone()), unrandom(nmap), "{probe:?}");
            }
            compared += 1;
        }
        assert_eq!(compared, 16);
        // The resends: TOPS and T1 are not in this capture (every SEQ probe was answered);
        // they keep the SEQ options, with the base sequence number.
        build(&h, OsProbe::Seq(3), 1, &mut buf).unwrap();
        let seg = tcp::Packet::new_checked(&buf[20..]).unwrap();
        assert_eq!(seg.src_port(), h.tcp_port(OsProbe::Seq(3), 0).unwrap() + 6);
        assert_eq!(seg.seq_number(), h.seq_number(1));
        assert_eq!(seg.window_len(), 4);
    }

    #[test]
    fn probes_are_well_formed_and_random_fields_vary() {
        let h = probes();
        let mut buf = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for probe in wanted(&h) {
            build(&h, probe, 0, &mut buf).unwrap();
            let ip = ipv4::Packet::new_checked(&buf[..]).unwrap();
            assert!(ip.verify_checksum(), "{probe:?}");
            assert_eq!(usize::from(ip.total_len()), buf.len());
            let ips = IpPair::V4 {
                src: h.src(),
                dst: h.dst(),
            };
            match ip.protocol() {
                IpProtocol::TCP => {
                    let seg = tcp::Packet::new_checked(ip.payload()).unwrap();
                    assert!(seg.verify_checksum(&ips));
                    assert!((37..=59).contains(&ip.ttl()));
                }
                IpProtocol::UDP => {
                    let d = udp::Packet::new_checked(ip.payload()).unwrap();
                    assert!(d.verify_checksum(&ips));
                    assert_eq!(ip.ident(), 0x1042);
                    assert_eq!(d.payload(), &[b'C'; 300][..]);
                }
                _ => assert!(icmpv4::Packet::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum()),
            }
            ids.insert(ip.ident());
        }
        assert!(ids.len() > 10, "IP IDs are drawn per probe");
        // Same seed, same packets; another seed, other ports.
        let mut again = Vec::new();
        build(&probes(), OsProbe::Ecn, 0, &mut again).unwrap();
        build(&h, OsProbe::Ecn, 0, &mut buf).unwrap();
        assert_eq!(buf, again);
        let other = HostProbes::new(LOCAL, h.dst(), h.ports(), 43);
        assert_ne!(other.tcp_port(OsProbe::Ecn, 0), h.tcp_port(OsProbe::Ecn, 0));
        assert!(h
            .source_ports()
            .contains(&h.tcp_port(OsProbe::T(7), 0).unwrap()));
        assert!(h.source_ports().contains(&h.udp_port()));
        assert_eq!(h.source_ports().count(), 21, "twenty TCP ports and U1's");
    }

    #[test]
    fn wanted_follows_the_ports_known() {
        let mut h = probes();
        assert_eq!(wanted(&h).len(), 16);
        h = HostProbes::new(LOCAL, h.dst(), OsPorts::default(), 1);
        assert_eq!(
            wanted(&h),
            vec![
                OsProbe::Ie(1),
                OsProbe::Ie(2),
                OsProbe::U1,
                OsProbe::T(5),
                OsProbe::T(6),
                OsProbe::T(7)
            ]
        );
        // Nmap picks closed ports at random when none is known.
        let used = h.ports();
        assert!((30000..44781).contains(&used.closed_tcp.unwrap()));
        assert!((30000..44781).contains(&used.closed_udp.unwrap()));
        assert!(build(&h, OsProbe::Seq(1), 0, &mut Vec::new()).is_err());
    }

    #[test]
    fn seq_resends_are_tops_and_t1() {
        let h = probes();
        assert!(seq_resends(&h, [true; 6]).is_empty());
        let r = seq_resends(&h, [false, true, true, false, true, true]);
        assert_eq!(
            r,
            vec![
                (OsProbe::Seq(1), 1),
                (OsProbe::Seq(4), 1),
                (OsProbe::T(1), 0)
            ]
        );
        let mut buf = Vec::new();
        build(&h, OsProbe::T(1), 0, &mut buf).unwrap();
        let t1 = tcp::Packet::new_checked(&buf[20..]).unwrap();
        assert_eq!(t1.window_len(), 1);
        assert_eq!(t1.options(), OPTS[0]);
        // Replies to the resends land where Nmap's processResp puts them.
        assert_eq!(t1.src_port(), h.tcp_port(OsProbe::Seq(1), 0).unwrap() + 13);
    }

    #[test]
    fn classify_reads_nmaps_capture() {
        for fx in [capture::LO, capture::ROUTED] {
            nmaps_replies(fx);
        }
    }

    fn nmaps_replies(fx: capture::Fixture) {
        let frames = capture::frames_of(fx);
        let (h, start) = capture::round_of(fx, &frames, 0);
        let mut seen = Vec::new();
        for f in &frames[start..] {
            if let Some(p) = classify(&h, &f.ip) {
                if !seen.contains(&p) {
                    seen.push(p);
                }
            }
        }
        // Loopback answers all but T2 and T3 (Linux drops those); the probes themselves,
        // going the other way, are not answers.
        let mut expect = vec![OsProbe::Ie(1), OsProbe::Ie(2), OsProbe::U1, OsProbe::Ecn];
        expect.extend((1..=6).map(OsProbe::Seq));
        expect.extend([4, 5, 6, 7].map(OsProbe::T));
        seen.sort();
        expect.sort();
        assert_eq!(seen, expect);
        // Nmap 7.93 keeps its port base from round to round and draws new sequence numbers.
        let (next, _) = capture::round_of(fx, &frames, 1);
        assert_eq!(next.tcp_port(OsProbe::Ecn, 0), h.tcp_port(OsProbe::Ecn, 0));
        assert_ne!(next.seq_number(1), h.seq_number(1));
    }

    #[test]
    fn classify_never_panics_on_cut_packets() {
        let frames = capture::frames();
        let (h, _) = capture::round(&frames, 0);
        for f in &frames {
            for cut in 0..f.ip.len() {
                let _ = classify(&h, &f.ip[..cut]);
            }
        }
        assert_eq!(classify(&h, &[]), None);
    }
}
