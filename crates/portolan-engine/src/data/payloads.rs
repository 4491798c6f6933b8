//! UDP probe payloads for `-sU`, and how a UDP probe's answer maps to a port state.
//!
//! An empty UDP datagram gets no answer from most services, so a UDP scan sends a
//! protocol-specific request to well-known ports. Two sources fill the table:
//!
//! * Portolan's own built-in table ([`PayloadTable::builtin`]), written here from the
//!   protocol specifications (each payload names its RFC or spec). It is not derived from
//!   Nmap's `nmap-payloads`, which is under Nmap's licence.
//! * Nmap's `nmap-payloads` file, read at run time where it is installed
//!   ([`parse_nmap_payloads`], [`load_payloads`]); ports it lacks are filled from ours.
//!
//! A port can have several payloads: the first is the one sent, the rest are alternatives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portolan_model::PortState;

use crate::data::datadir::{find_data_file, Source};

/// Most payloads kept for one port (Nmap's documented limit).
pub const MAX_PAYLOADS_PER_PORT: usize = 255;

/// Most (port, payload) pairs a table may hold. Nmap's own file needs about 33 000 (one
/// entry covers 32768-65535); the cap keeps hostile input (`udp 0-65535 "..."` repeated)
/// from exhausting memory.
pub const MAX_PAYLOAD_SLOTS: usize = 1 << 18;

/// Most payload bytes a table may hold, counting each port's copy (Nmap's file: ~1.4 MB).
pub const MAX_PAYLOAD_BYTES: usize = 1 << 25;

/// UDP destination port → payloads to send (the first) or try instead (the rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadTable {
    ports: BTreeMap<u16, Vec<Vec<u8>>>,
    /// Parallel to `ports`: the `source` port an `nmap-payloads` entry asked for, if any.
    sources: BTreeMap<u16, Vec<Option<u16>>>,
    /// Total (port, payload) pairs held.
    slots: usize,
    /// Total payload bytes held.
    bytes: usize,
    /// Malformed entries skipped while loading a file (see [`load_payloads`]).
    warnings: Vec<PayloadError>,
}

impl PayloadTable {
    /// An empty table: every port gets an empty datagram.
    pub fn new() -> PayloadTable {
        PayloadTable::default()
    }

    /// The payloads for `port`, first one to send first; empty when there are none (an
    /// empty UDP datagram is sent then, as Nmap does).
    pub fn for_port(&self, port: u16) -> &[Vec<u8>] {
        self.ports.get(&port).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The payload to send to `port`, if any.
    pub fn first(&self, port: u16) -> Option<&[u8]> {
        self.for_port(port).first().map(Vec::as_slice)
    }

    /// The source port requested for payload `index` of `port` (`source N` in
    /// `nmap-payloads`; Nmap itself does not honour it).
    pub fn source_port(&self, port: u16, index: usize) -> Option<u16> {
        self.sources
            .get(&port)
            .and_then(|s| s.get(index))
            .copied()
            .flatten()
    }

    /// Ports that have at least one payload, ascending.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.keys().copied()
    }

    /// Number of ports with at least one payload.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// True when no port has a payload.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Malformed entries skipped while loading this table from a file.
    pub fn warnings(&self) -> &[PayloadError] {
        &self.warnings
    }

    /// Appends a payload for `port`; fails when the port already has
    /// [`MAX_PAYLOADS_PER_PORT`] or the table would exceed [`MAX_PAYLOAD_SLOTS`] or
    /// [`MAX_PAYLOAD_BYTES`].
    pub fn push(
        &mut self,
        port: u16,
        payload: Vec<u8>,
        source: Option<u16>,
    ) -> Result<(), PayloadErrorKind> {
        if self.slots >= MAX_PAYLOAD_SLOTS || self.bytes + payload.len() > MAX_PAYLOAD_BYTES {
            return Err(PayloadErrorKind::TableFull);
        }
        let list = self.ports.entry(port).or_default();
        if list.len() >= MAX_PAYLOADS_PER_PORT {
            return Err(PayloadErrorKind::TooManyForPort(port));
        }
        self.bytes += payload.len();
        list.push(payload);
        self.sources.entry(port).or_default().push(source);
        self.slots += 1;
        Ok(())
    }

    /// Copies `other`'s payloads for every port this table has none for.
    pub fn fill_missing_from(&mut self, other: &PayloadTable) {
        for (port, list) in &other.ports {
            if self.ports.contains_key(port) {
                continue;
            }
            self.ports.insert(*port, list.clone());
            let src = other
                .sources
                .get(port)
                .cloned()
                .unwrap_or_else(|| vec![None; list.len()]);
            self.sources.insert(*port, src);
            self.slots += list.len();
            self.bytes += list.iter().map(Vec::len).sum::<usize>();
        }
    }

    /// Portolan's own payloads, written from the protocol specifications.
    pub fn builtin() -> PayloadTable {
        let mut t = PayloadTable::new();
        for (port, payload) in builtin_payloads() {
            // The built-in list is far below both limits.
            let _ = t.push(port, payload, None);
        }
        t
    }
}

// ---------------------------------------------------------------------------------------
// Built-in payloads. Each is built from its specification; the helpers compute lengths so
// that a payload cannot disagree with its own length fields.
// ---------------------------------------------------------------------------------------

/// Identifier used where a protocol wants an arbitrary request/transaction ID: "PT".
const PROBE_ID16: u16 = 0x5054;
/// 32-bit variant: "PORT".
const PROBE_ID32: u32 = 0x504f_5254;

/// (port, payload) in table order; a port listed twice gets its alternatives in order.
fn builtin_payloads() -> Vec<(u16, Vec<u8>)> {
    vec![
        (7, echo_probe()),
        (53, dns_root_ns_query()),
        (53, dns_version_bind_query()),
        (69, tftp_rrq()),
        (111, rpc_portmap_null_call()),
        (123, ntp_client_request()),
        (137, nbns_nbstat_query()),
        (161, snmp_v1_get_sysdescr()),
        (500, ike_main_mode_sa()),
        (520, rip_full_table_request()),
        (623, rmcp_presence_ping()),
        (1900, ssdp_msearch()),
        (3478, stun_binding_request()),
        (5060, sip_options()),
        (5351, nat_pmp_external_address()),
        (5353, mdns_services_query()),
        (5683, coap_well_known_core()),
        (11211, memcached_version()),
    ]
}

/// Echo (RFC 862): any data comes back; a short line is enough.
fn echo_probe() -> Vec<u8> {
    b"portolan\r\n".to_vec()
}

/// A DNS name in wire form (RFC 1035 §3.1): length-prefixed labels, then the root (0).
fn dns_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A DNS message with one question (RFC 1035 §4.1): 12-byte header (ID, flags, QDCOUNT=1,
/// ANCOUNT=NSCOUNT=ARCOUNT=0), then QNAME, QTYPE, QCLASS.
fn dns_query(id: u16, flags: u16, name: &str, qtype: u16, qclass: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    out.extend_from_slice(&dns_name(name));
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    out
}

/// DNS (RFC 1035): standard query (opcode 0, RD set) for the root zone's NS records,
/// QTYPE NS (2), QCLASS IN (1). Any server answers it, if only with REFUSED.
fn dns_root_ns_query() -> Vec<u8> {
    dns_query(PROBE_ID16, 0x0100, ".", 2, 1)
}

/// DNS (RFC 1035; CHAOS class, RFC 1035 §3.2.4): query for `version.bind` TXT (16) in
/// class CH (3), which BIND, Unbound, Knot and others answer with their version.
fn dns_version_bind_query() -> Vec<u8> {
    dns_query(PROBE_ID16, 0x0000, "version.bind", 16, 3)
}

/// mDNS / DNS-SD (RFC 6762, RFC 6763 §9): one-shot (legacy unicast, RFC 6762 §6.7) query
/// for `_services._dns-sd._udp.local` PTR (12), class IN (1); ID 0 as RFC 6762 §18.1 asks.
fn mdns_services_query() -> Vec<u8> {
    dns_query(0, 0x0000, "_services._dns-sd._udp.local", 12, 1)
}

/// TFTP (RFC 1350 §5): RRQ, opcode 1, file name, 0, mode "octet", 0. A server answers
/// with DATA or, far more often, ERROR "file not found".
fn tftp_rrq() -> Vec<u8> {
    let mut out = vec![0x00, 0x01];
    out.extend_from_slice(b"portolan-probe.txt");
    out.push(0);
    out.extend_from_slice(b"octet");
    out.push(0);
    out
}

/// ONC RPC v2 (RFC 5531 §9) CALL to the portmapper (program 100000, version 2, RFC 1833)
/// procedure 0 (NULL), AUTH_NONE credentials and verifier. UDP carries no record mark.
fn rpc_portmap_null_call() -> Vec<u8> {
    let words: [u32; 10] = [
        PROBE_ID32, // xid
        0,          // msg_type CALL
        2,          // rpcvers
        100_000,    // prog: portmapper / rpcbind
        2,          // vers
        0,          // proc NULL
        0,          // cred flavor AUTH_NONE
        0,          // cred length
        0,          // verf flavor AUTH_NONE
        0,          // verf length
    ];
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// NTP (RFC 5905 §7.3): 48-byte client request: LI 0, VN 4, Mode 3 (client) = 0x23,
/// stratum 0, poll 6 (64 s), precision -20, zero root delay/dispersion/reference, and a
/// fixed non-zero transmit timestamp that the server echoes as its origin timestamp.
fn ntp_client_request() -> Vec<u8> {
    let mut out = vec![0u8; 48];
    out[0] = 0x23; // LI 0 (2 bits), VN 4 (3 bits), Mode 3 (3 bits)
    out[1] = 0; // stratum: unspecified
    out[2] = 6; // poll
    out[3] = (-20i8) as u8; // precision
    out[40..44].copy_from_slice(&0xe800_0000u32.to_be_bytes()); // transmit: seconds
    out[44..48].copy_from_slice(&PROBE_ID32.to_be_bytes()); // transmit: fraction
    out
}

/// NetBIOS first-level name encoding (RFC 1001 §14.1): the 16-byte name, each nibble
/// + 'A', as one 32-byte label.
fn netbios_encode(name16: &[u8; 16]) -> Vec<u8> {
    let mut out = vec![32u8];
    for b in name16 {
        out.push(b'A' + (b >> 4));
        out.push(b'A' + (b & 0x0f));
    }
    out.push(0); // empty scope
    out
}

/// NetBIOS name service (RFC 1002 §4.2.17): NODE STATUS REQUEST for the wildcard name
/// "*" (padded with NULs), QTYPE NBSTAT (0x21), QCLASS IN; unicast, no recursion.
fn nbns_nbstat_query() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&PROBE_ID16.to_be_bytes()); // NAME_TRN_ID
    out.extend_from_slice(&0u16.to_be_bytes()); // opcode QUERY, no flags
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&[0; 6]); // ANCOUNT, NSCOUNT, ARCOUNT
    let mut name = [0u8; 16];
    name[0] = b'*';
    out.extend_from_slice(&netbios_encode(&name));
    out.extend_from_slice(&0x0021u16.to_be_bytes()); // NBSTAT
    out.extend_from_slice(&0x0001u16.to_be_bytes()); // IN
    out
}

/// A BER TLV (X.690 §8.1): tag, definite length (short or long form), contents.
fn ber(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A BER OBJECT IDENTIFIER's contents (X.690 §8.19): 40*a+b, then base-128 arcs.
fn ber_oid(arcs: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    if arcs.len() < 2 {
        return out;
    }
    let mut rest = vec![arcs[0] * 40 + arcs[1]];
    rest.extend_from_slice(&arcs[2..]);
    for arc in rest {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut v = arc >> 7;
        while v > 0 {
            groups.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        out.extend(groups.iter().rev());
    }
    out
}

/// SNMPv1 (RFC 1157 §4.1, RFC 1905 PDU layout): Message { version 0, community "public",
/// GetRequest-PDU [0] { request-id, error-status 0, error-index 0,
/// VarBindList { VarBind { sysDescr.0 = 1.3.6.1.2.1.1.1.0 (RFC 1213), NULL } } } }.
fn snmp_v1_get_sysdescr() -> Vec<u8> {
    let varbind = [
        ber(0x06, &ber_oid(&[1, 3, 6, 1, 2, 1, 1, 1, 0])),
        ber(0x05, &[]),
    ]
    .concat();
    let varbinds = ber(0x30, &ber(0x30, &varbind));
    let pdu = [
        ber(0x02, &PROBE_ID32.to_be_bytes()), // request-id (positive: top bit clear)
        ber(0x02, &[0]),                      // error-status noError
        ber(0x02, &[0]),                      // error-index
        varbinds,
    ]
    .concat();
    let msg = [
        ber(0x02, &[0]), // version-1
        ber(0x04, b"public"),
        ber(0xa0, &pdu), // GetRequest-PDU, context-specific constructed 0
    ]
    .concat();
    ber(0x30, &msg)
}

/// An ISAKMP generic payload (RFC 2408 §3.2): next payload, reserved, length, body.
fn isakmp_payload(next: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![next, 0];
    out.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// IKEv1 (RFC 2408 §3.1, §3.4-3.6; RFC 2409 Appendix A; RFC 2407 §4.6): the first Main
/// Mode message: ISAKMP header (fixed initiator cookie, zero responder cookie, next
/// payload SA, version 1.0, exchange 2 = Identity Protection) and an SA payload (DOI
/// IPsec, SIT_IDENTITY_ONLY) with one proposal (PROTO_ISAKMP, no SPI) of one KEY_IKE
/// transform: AES-CBC-128, SHA-1, pre-shared key, MODP-1024 (group 2), 28800 s lifetime.
/// A responder answers with its own SA or a NO-PROPOSAL-CHOSEN notification.
fn ike_main_mode_sa() -> Vec<u8> {
    // Basic (TV) attributes: AF bit | type, 2-byte value.
    let attrs: [(u16, u16); 7] = [
        (1, 7),      // Encryption Algorithm: AES-CBC (RFC 3602)
        (14, 128),   // Key Length: 128 bits
        (2, 2),      // Hash Algorithm: SHA
        (3, 1),      // Authentication Method: pre-shared key
        (4, 2),      // Group Description: 1024-bit MODP
        (11, 1),     // Life Type: seconds
        (12, 28800), // Life Duration
    ];
    let mut transform = vec![1, 1, 0, 0]; // transform #1, KEY_IKE, reserved
    for (ty, val) in attrs {
        transform.extend_from_slice(&(0x8000 | ty).to_be_bytes());
        transform.extend_from_slice(&val.to_be_bytes());
    }
    let transform = isakmp_payload(0, &transform);
    // Proposal #1, PROTO_ISAKMP, SPI size 0, one transform.
    let mut proposal = vec![1, 1, 0, 1];
    proposal.extend_from_slice(&transform);
    let proposal = isakmp_payload(0, &proposal);
    let mut sa = Vec::new();
    sa.extend_from_slice(&1u32.to_be_bytes()); // DOI: IPsec
    sa.extend_from_slice(&1u32.to_be_bytes()); // Situation: SIT_IDENTITY_ONLY
    sa.extend_from_slice(&proposal);
    let sa = isakmp_payload(0, &sa);

    let mut out = Vec::new();
    out.extend_from_slice(b"PORTOLAN"); // initiator cookie
    out.extend_from_slice(&[0; 8]); // responder cookie
    out.push(1); // next payload: SA
    out.push(0x10); // version 1.0
    out.push(2); // exchange type: Identity Protection (Main Mode)
    out.push(0); // flags
    out.extend_from_slice(&0u32.to_be_bytes()); // message ID
    out.extend_from_slice(&((28 + sa.len()) as u32).to_be_bytes());
    out.extend_from_slice(&sa);
    out
}

/// RIPv2 (RFC 2453 §3.9.1): Request (command 1, version 2) with a single entry of address
/// family 0 and metric 16, which asks for the whole routing table.
fn rip_full_table_request() -> Vec<u8> {
    let mut out = vec![1, 2, 0, 0];
    out.extend_from_slice(&[0; 16]); // AFI 0, route tag, address, mask, next hop
    out.extend_from_slice(&16u32.to_be_bytes()); // metric: infinity
    out
}

/// RMCP / ASF (DMTF DSP0136 §3.2.4.1, used by IPMI on 623): Presence Ping: RMCP header
/// (version 6, reserved, sequence 0xff = no ACK, class 6 = ASF), IANA enterprise 4542,
/// message type 0x80, tag, reserved, data length 0. Answered with a Presence Pong.
fn rmcp_presence_ping() -> Vec<u8> {
    let mut out = vec![0x06, 0x00, 0xff, 0x06];
    out.extend_from_slice(&4542u32.to_be_bytes());
    out.extend_from_slice(&[0x80, 0x00, 0x00, 0x00]);
    out
}

/// SSDP (UPnP Device Architecture 1.1 §1.3.2): M-SEARCH for all devices and services.
fn ssdp_msearch() -> Vec<u8> {
    b"M-SEARCH * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
MAN: \"ssdp:discover\"\r\n\
MX: 1\r\n\
ST: ssdp:all\r\n\
\r\n"
        .to_vec()
}

/// STUN (RFC 5389 §6): Binding Request, no attributes: type 0x0001, length 0, magic
/// cookie 0x2112A442, 96-bit transaction ID.
fn stun_binding_request() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0x0001u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&0x2112_a442u32.to_be_bytes());
    out.extend_from_slice(b"portolan-stn");
    out
}

/// SIP (RFC 3261 §11, §8.1.1): OPTIONS with the mandatory headers (Via with a magic-cookie
/// branch and `rport` from RFC 3581 so the answer comes back to our source port,
/// Max-Forwards, From with tag, To, Call-ID, CSeq, Contact, Accept, Content-Length).
/// Host names use the reserved `.invalid` TLD (RFC 6761).
fn sip_options() -> Vec<u8> {
    b"OPTIONS sip:nobody@portolan.invalid SIP/2.0\r\n\
Via: SIP/2.0/UDP portolan.invalid:5060;branch=z9hG4bK-portolan-1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:portolan@portolan.invalid>;tag=portolan1\r\n\
To: <sip:nobody@portolan.invalid>\r\n\
Call-ID: portolan-probe-1@portolan.invalid\r\n\
CSeq: 1 OPTIONS\r\n\
Contact: <sip:portolan@portolan.invalid>\r\n\
Accept: application/sdp\r\n\
Content-Length: 0\r\n\
\r\n"
        .to_vec()
}

/// NAT-PMP (RFC 6886 §3.2): external address request, version 0, opcode 0. A PCP server
/// (RFC 6887) on the same port answers it with UNSUPP_VERSION.
fn nat_pmp_external_address() -> Vec<u8> {
    vec![0, 0]
}

/// CoAP (RFC 7252 §3, §5.10; RFC 6690 §4): confirmable GET /.well-known/core: version 1,
/// type CON, no token (0x40), code 0.01 GET, message ID, Uri-Path ".well-known"
/// (option 11, length 11 → 0xBB) and Uri-Path "core" (delta 0, length 4 → 0x04).
fn coap_well_known_core() -> Vec<u8> {
    let mut out = vec![0x40, 0x01];
    out.extend_from_slice(&PROBE_ID16.to_be_bytes());
    out.push(0xbb);
    out.extend_from_slice(b".well-known");
    out.push(0x04);
    out.extend_from_slice(b"core");
    out
}

/// memcached (protocol.txt, "UDP protocol"): 8-byte frame header (request ID, sequence 0,
/// 1 datagram, reserved 0), then the text command `version\r\n` (a small answer, unlike
/// `stats`, so the probe amplifies nothing).
fn memcached_version() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&PROBE_ID16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(b"version\r\n");
    out
}

// ---------------------------------------------------------------------------------------
// nmap-payloads parsing
// ---------------------------------------------------------------------------------------

/// What is wrong with an `nmap-payloads` entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadErrorKind {
    /// Something other than `udp` where an entry should start.
    #[error("expected `udp` to start an entry, found {0}")]
    ExpectedUdp(String),
    /// `udp` not followed by a port list.
    #[error("`udp` without a port list")]
    MissingPorts,
    /// A port list that does not parse.
    #[error("bad port list `{list}`: {why}")]
    BadPorts { list: String, why: String },
    /// An entry without any quoted payload string.
    #[error("entry has no payload string")]
    MissingPayload,
    /// A string whose closing quote is missing on its line.
    #[error("unterminated string")]
    UnterminatedString,
    /// An escape sequence Nmap does not accept (`\q`, `\x4`, octal `\12`, ...).
    #[error("bad escape `{0}`")]
    BadEscape(String),
    /// `source` without exactly one port number after it.
    #[error("bad `source` port `{0}`")]
    BadSource(String),
    /// More than [`MAX_PAYLOADS_PER_PORT`] payloads for one port.
    #[error("more than {MAX_PAYLOADS_PER_PORT} payloads for port {0}")]
    TooManyForPort(u16),
    /// The table reached [`MAX_PAYLOAD_SLOTS`] or [`MAX_PAYLOAD_BYTES`].
    #[error(
        "table full: over {MAX_PAYLOAD_SLOTS} port/payload pairs or {MAX_PAYLOAD_BYTES} bytes"
    )]
    TableFull,
}

/// A malformed `nmap-payloads` entry, skipped: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct PayloadError {
    /// 1-based line number.
    pub line: usize,
    pub kind: PayloadErrorKind,
}

impl PayloadError {
    /// The human-readable reason, without the line number.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }
}

#[derive(Debug)]
enum Tok {
    /// A run of characters other than white space, `"` and `#`.
    Word(String),
    /// A quoted string, unescaped, or why it could not be.
    Str(Result<Vec<u8>, PayloadErrorKind>),
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

impl Token {
    fn is_udp(&self) -> bool {
        matches!(&self.tok, Tok::Word(w) if w == "udp")
    }

    fn describe(&self) -> String {
        match &self.tok {
            Tok::Word(w) => format!("`{}`", truncate(w, 40)),
            Tok::Str(_) => "a string".to_string(),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Splits the text into words and strings; `#` outside a string starts a comment.
/// A string ends at its closing quote on the same line.
fn tokenize(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                let (tok, next) = lex_string(b, i + 1);
                toks.push(Token {
                    tok: Tok::Str(tok),
                    line,
                });
                i = next;
            }
            _ => {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'"' && b[i] != b'#' {
                    i += 1;
                }
                toks.push(Token {
                    tok: Tok::Word(String::from_utf8_lossy(&b[start..i]).into_owned()),
                    line,
                });
            }
        }
    }
    toks
}

/// Reads a string body from `i` (just past the opening quote) with Nmap's escapes
/// (nbase `cstring_unescape`): `\0` (a NUL, never octal), `\a \b \f \n \r \t \v`, `\xHH`
/// (exactly two hex digits); other letters and digits are errors; any other character
/// stands for itself (`\\`, `\"`). Returns the bytes or the first error, and where lexing
/// resumes: past the closing quote, or at the end of the line when there is none.
fn lex_string(b: &[u8], mut i: usize) -> (Result<Vec<u8>, PayloadErrorKind>, usize) {
    let mut out = Vec::new();
    let mut err = None;
    while i < b.len() {
        match b[i] {
            b'"' => return (err.map_or(Ok(out), Err), i + 1),
            b'\n' => break,
            b'\\' => {
                let Some(&e) = b.get(i + 1) else { break };
                let byte = match e {
                    b'0' => Some(0),
                    b'a' => Some(0x07),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    b'n' => Some(b'\n'),
                    b'r' => Some(b'\r'),
                    b't' => Some(b'\t'),
                    b'v' => Some(0x0b),
                    b'\n' => break,
                    b'x' => {
                        let hex = |k: usize| b.get(k).and_then(|c| (*c as char).to_digit(16));
                        match (hex(i + 2), hex(i + 3)) {
                            (Some(h), Some(l)) => {
                                out.push((h * 16 + l) as u8);
                                i += 4;
                                continue;
                            }
                            _ => None,
                        }
                    }
                    c if c.is_ascii_alphanumeric() => None,
                    c => Some(c),
                };
                match byte {
                    Some(v) => out.push(v),
                    None => {
                        if err.is_none() {
                            let end = if e == b'x' {
                                (i + 4).min(b.len())
                            } else {
                                i + 2
                            };
                            let shown = String::from_utf8_lossy(&b[i..end])
                                .split(['"', '\n'])
                                .next()
                                .unwrap_or("")
                                .to_string();
                            err = Some(PayloadErrorKind::BadEscape(shown));
                        }
                    }
                }
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    (Err(PayloadErrorKind::UnterminatedString), i)
}

/// Parses a port list: comma-separated ports `N` or ranges `N-M`, 0..=65535.
fn parse_port_list(list: &str) -> Result<Vec<(u16, u16)>, PayloadErrorKind> {
    let bad = |why: &str| PayloadErrorKind::BadPorts {
        list: truncate(list, 60),
        why: why.to_string(),
    };
    let port = |s: &str| -> Result<u16, PayloadErrorKind> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad(&format!("`{}` is not a port number", truncate(s, 20))));
        }
        s.parse::<u16>()
            .map_err(|_| bad(&format!("{} is out of range 0-65535", truncate(s, 20))))
    };
    let mut out = Vec::new();
    for item in list.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(item)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(bad(&format!("range {lo}-{hi} is reversed")));
        }
        out.push((lo, hi));
    }
    Ok(out)
}

/// Parses Nmap's `nmap-payloads` text.
///
/// Format: `#` starts a comment outside strings. An entry is `udp PORTLIST`, then one or
/// more double-quoted C-style strings (on one or several lines; they are concatenated),
/// then optional keywords, each with its arguments on the keyword's own line:
/// `source PORT` is understood; other keywords are ignored, as the format asks. Later
/// entries for a port add alternatives after the earlier ones.
///
/// A malformed entry is skipped and reported with its line number; the rest loads. Never
/// panics, whatever the input.
pub fn parse_nmap_payloads(text: &str) -> (PayloadTable, Vec<PayloadError>) {
    let toks = tokenize(text);
    let mut table = PayloadTable::new();
    let mut errors = Vec::new();
    let mut i = 0;
    let skip_to_udp = |mut i: usize| {
        while i < toks.len() && !toks[i].is_udp() {
            i += 1;
        }
        i
    };

    while i < toks.len() {
        let t = &toks[i];
        if !t.is_udp() {
            errors.push(PayloadError {
                line: t.line,
                kind: PayloadErrorKind::ExpectedUdp(t.describe()),
            });
            i = skip_to_udp(i + 1);
            continue;
        }
        let udp_line = t.line;
        i += 1;

        // An entry with an error is still read to its end (strings, keyword lines), so
        // what follows it is judged on its own; only then is it dropped.
        let mut bad: Option<PayloadError> = None;

        // Port list.
        let ranges = match toks.get(i) {
            Some(Token {
                tok: Tok::Word(w), ..
            }) if w != "udp" => {
                i += 1;
                parse_port_list(w)
            }
            _ => Err(PayloadErrorKind::MissingPorts),
        };
        let ranges = ranges.unwrap_or_else(|kind| {
            bad = Some(PayloadError {
                line: udp_line,
                kind,
            });
            Vec::new()
        });

        // Payload strings.
        let mut payload = Vec::new();
        let mut n_strings = 0;
        while let Some(Token {
            tok: Tok::Str(s),
            line,
        }) = toks.get(i)
        {
            n_strings += 1;
            match s {
                Ok(bytes) => payload.extend_from_slice(bytes),
                Err(kind) => {
                    bad.get_or_insert(PayloadError {
                        line: *line,
                        kind: kind.clone(),
                    });
                }
            }
            i += 1;
        }
        if n_strings == 0 {
            bad.get_or_insert(PayloadError {
                line: udp_line,
                kind: PayloadErrorKind::MissingPayload,
            });
        }

        let entry_ok = bad.is_none();
        errors.extend(bad);

        // Keywords, each with its arguments on its own line.
        let mut source = None;
        while let Some(Token {
            tok: Tok::Word(kw),
            line,
        }) = toks.get(i)
        {
            if kw == "udp" {
                break;
            }
            let kw_line = *line;
            let mut j = i + 1;
            while j < toks.len() && toks[j].line == kw_line && !toks[j].is_udp() {
                j += 1;
            }
            let args = &toks[i + 1..j];
            let starts_alpha = kw.bytes().next().is_some_and(|c| c.is_ascii_alphabetic());
            let has_string = args.iter().any(|a| matches!(a.tok, Tok::Str(_)));
            if kw == "source" {
                match args {
                    [Token {
                        tok: Tok::Word(p), ..
                    }] if p.bytes().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok() => {
                        source = p.parse::<u16>().ok();
                    }
                    _ => {
                        let shown: Vec<String> = args.iter().map(Token::describe).collect();
                        errors.push(PayloadError {
                            line: kw_line,
                            kind: PayloadErrorKind::BadSource(shown.join(" ")),
                        });
                    }
                }
            } else if !starts_alpha || has_string {
                // Not a keyword: most likely an entry missing its `udp`.
                errors.push(PayloadError {
                    line: kw_line,
                    kind: PayloadErrorKind::ExpectedUdp(toks[i].describe()),
                });
            }
            i = j;
        }

        if !entry_ok {
            continue;
        }

        // Store.
        let mut store_err = None;
        'ports: for (lo, hi) in ranges {
            for port in lo..=hi {
                if let Err(kind) = table.push(port, payload.clone(), source) {
                    store_err = Some(kind);
                    if store_err == Some(PayloadErrorKind::TableFull) {
                        break 'ports;
                    }
                }
            }
        }
        if let Some(kind) = store_err {
            errors.push(PayloadError {
                line: udp_line,
                kind,
            });
        }
    }
    (table, errors)
}

/// Loads `nmap-payloads` from Nmap's search path (see [`find_data_file`]), or the built-in
/// table when `builtin_only`, when none is found, or when the file found cannot be read or
/// holds no usable entry. Ports the file lacks are filled from the built-in table.
/// Malformed entries of a loaded file are in [`PayloadTable::warnings`].
pub fn load_payloads(datadir: Option<&Path>, builtin_only: bool) -> (PayloadTable, Source) {
    if builtin_only {
        return (PayloadTable::builtin(), Source::Builtin);
    }
    load_payloads_from(find_data_file("nmap-payloads", datadir))
}

/// [`load_payloads`] once the file has been located (or not).
pub fn load_payloads_from(path: Option<PathBuf>) -> (PayloadTable, Source) {
    crate::data::datadir::load_table_from(path, PayloadTable::builtin, |text| {
        let (mut table, errors) = parse_nmap_payloads(text);
        if table.is_empty() {
            return Err(match errors.first() {
                Some(e) => format!(
                    "no payload entries found ({} errors; first: {e})",
                    errors.len()
                ),
                None => "no payload entries found".to_string(),
            });
        }
        table.fill_missing_from(&PayloadTable::builtin());
        table.warnings = errors;
        Ok(table)
    })
}

// ---------------------------------------------------------------------------------------
// What a UDP probe's answer says about the port (Nmap's -sU rules, scan_engine_raw.cc).
// ---------------------------------------------------------------------------------------

/// A UDP datagram came back from the port: open.
pub const UDP_RESPONSE: (PortState, &str) = (PortState::Open, "udp-response");

/// Nothing came back after all retries: open|filtered.
pub const UDP_NO_RESPONSE: (PortState, &str) = (PortState::OpenFiltered, "no-response");

/// The state and Nmap reason for an ICMP error about a UDP probe, sent by the target
/// itself. `None` when Nmap ignores that type/code (the probe stays unanswered).
///
/// ICMPv4: type 3 code 3 → closed `port-unreach`; type 3 codes 0, 1, 2, 9, 10, 13 →
/// filtered `net-unreach`, `host-unreach`, `proto-unreach`, `net-prohibited`,
/// `host-prohibited`, `admin-prohibited`; type 11 (time exceeded) → filtered
/// `time-exceeded`.
///
/// ICMPv6 (RFC 4443): type 1 code 4 → closed `port-unreach`; type 1 codes 0, 1, 2, 3, 5,
/// 6 → filtered `no-route`, `admin-prohibited`, `beyond-scope`, `host-unreach`,
/// `admin-prohibited`, `reject-route`; type 4 (parameter problem) code 0 → open,
/// code 1 → filtered, both `param-problem`.
pub fn udp_state_from_icmp(icmp_type: u8, code: u8, v6: bool) -> Option<(PortState, &'static str)> {
    udp_state_from_icmp_sender(icmp_type, code, v6, true)
}

/// [`udp_state_from_icmp`], for an ICMP error that may come from a router on the path
/// (`from_target` false): Nmap then calls a port unreachable filtered, not closed.
pub fn udp_state_from_icmp_sender(
    icmp_type: u8,
    code: u8,
    v6: bool,
    from_target: bool,
) -> Option<(PortState, &'static str)> {
    use PortState::{Closed, Filtered, Open};
    let port_unreach = if from_target { Closed } else { Filtered };
    if v6 {
        match (icmp_type, code) {
            (1, 0) => Some((Filtered, "no-route")),
            (1, 1) => Some((Filtered, "admin-prohibited")),
            (1, 2) => Some((Filtered, "beyond-scope")),
            (1, 3) => Some((Filtered, "host-unreach")),
            (1, 4) => Some((port_unreach, "port-unreach")),
            (1, 5) => Some((Filtered, "admin-prohibited")),
            (1, 6) => Some((Filtered, "reject-route")),
            (4, 0) => Some((Open, "param-problem")),
            (4, 1) => Some((Filtered, "param-problem")),
            _ => None,
        }
    } else {
        match (icmp_type, code) {
            (3, 0) => Some((Filtered, "net-unreach")),
            (3, 1) => Some((Filtered, "host-unreach")),
            (3, 2) => Some((Filtered, "proto-unreach")),
            (3, 3) => Some((port_unreach, "port-unreach")),
            (3, 9) => Some((Filtered, "net-prohibited")),
            (3, 10) => Some((Filtered, "host-prohibited")),
            (3, 13) => Some((Filtered, "admin-prohibited")),
            (11, _) => Some((Filtered, "time-exceeded")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    // ---- decoders used to check the built-in payloads independently of the builders ----

    /// Decodes a one-question DNS query: (id, flags, counts, qname labels, qtype, qclass).
    fn decode_dns(p: &[u8]) -> (u16, u16, [u16; 4], Vec<String>, u16, u16) {
        let counts = [be16(p, 4), be16(p, 6), be16(p, 8), be16(p, 10)];
        let mut i = 12;
        let mut labels = Vec::new();
        loop {
            let len = p[i] as usize;
            assert!(
                len < 64,
                "compression pointers or bad label length in a query"
            );
            i += 1;
            if len == 0 {
                break;
            }
            labels.push(String::from_utf8(p[i..i + len].to_vec()).unwrap());
            i += len;
        }
        assert_eq!(p.len(), i + 4, "trailing bytes after the question");
        (
            be16(p, 0),
            be16(p, 2),
            counts,
            labels,
            be16(p, i),
            be16(p, i + 2),
        )
    }

    /// One BER TLV: (tag, contents, rest). Panics (test failure) on malformed input.
    fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = b[0];
        let (len, hdr) = if b[1] < 0x80 {
            (b[1] as usize, 2)
        } else {
            let n = (b[1] & 0x7f) as usize;
            let mut l = 0usize;
            for k in 0..n {
                l = (l << 8) | b[2 + k] as usize;
            }
            (l, 2 + n)
        };
        assert!(b.len() >= hdr + len, "BER length runs past the end");
        (tag, &b[hdr..hdr + len], &b[hdr + len..])
    }

    fn decode_oid(c: &[u8]) -> Vec<u32> {
        let mut arcs = vec![u32::from(c[0] / 40), u32::from(c[0] % 40)];
        let mut v = 0u32;
        for &b in &c[1..] {
            v = (v << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                arcs.push(v);
                v = 0;
            }
        }
        arcs
    }

    fn builtin_first(port: u16) -> Vec<u8> {
        PayloadTable::builtin()
            .first(port)
            .unwrap_or_else(|| panic!("no built-in payload for {port}"))
            .to_vec()
    }

    #[test]
    fn builtin_covers_required_ports() {
        let t = PayloadTable::builtin();
        for port in [53, 69, 111, 123, 137, 161, 500, 1900, 5060, 5353, 11211] {
            assert!(!t.for_port(port).is_empty(), "no payload for {port}");
        }
        assert!(t.for_port(80).is_empty());
        assert_eq!(t.first(80), None);
        assert!(t.warnings().is_empty());
        assert_eq!(t.for_port(53).len(), 2);
        assert_eq!(t.source_port(53, 0), None);
    }

    #[test]
    fn dns_payloads() {
        let t = PayloadTable::builtin();
        let (id, flags, counts, labels, qtype, qclass) = decode_dns(&t.for_port(53)[0]);
        assert_eq!(id, PROBE_ID16);
        assert_eq!(flags, 0x0100, "standard query, RD");
        assert_eq!(counts, [1, 0, 0, 0]);
        assert!(labels.is_empty(), "root name");
        assert_eq!((qtype, qclass), (2, 1), "NS IN");

        let (_, flags, counts, labels, qtype, qclass) = decode_dns(&t.for_port(53)[1]);
        assert_eq!(flags & 0x7800, 0, "opcode QUERY");
        assert_eq!(counts, [1, 0, 0, 0]);
        assert_eq!(labels, ["version", "bind"]);
        assert_eq!((qtype, qclass), (16, 3), "TXT CH");
    }

    #[test]
    fn mdns_payload() {
        let (id, flags, counts, labels, qtype, qclass) = decode_dns(&builtin_first(5353));
        assert_eq!((id, flags), (0, 0));
        assert_eq!(counts, [1, 0, 0, 0]);
        assert_eq!(labels, ["_services", "_dns-sd", "_udp", "local"]);
        assert_eq!((qtype, qclass), (12, 1), "PTR IN");
    }

    #[test]
    fn snmp_payload_is_valid_ber() {
        let p = builtin_first(161);
        let (tag, msg, rest) = tlv(&p);
        assert_eq!(tag, 0x30);
        assert!(rest.is_empty());
        let (tag, version, msg) = tlv(msg);
        assert_eq!((tag, version), (0x02, &[0u8][..]), "version-1 = 0");
        let (tag, community, msg) = tlv(msg);
        assert_eq!((tag, community), (0x04, &b"public"[..]));
        let (tag, pdu, msg) = tlv(msg);
        assert_eq!(tag, 0xa0, "GetRequest-PDU");
        assert!(msg.is_empty());
        let (tag, reqid, pdu) = tlv(pdu);
        assert_eq!(tag, 0x02);
        assert!(
            !reqid.is_empty() && reqid[0] & 0x80 == 0,
            "positive request-id"
        );
        let (tag, status, pdu) = tlv(pdu);
        assert_eq!((tag, status), (0x02, &[0u8][..]));
        let (tag, index, pdu) = tlv(pdu);
        assert_eq!((tag, index), (0x02, &[0u8][..]));
        let (tag, list, pdu) = tlv(pdu);
        assert_eq!(tag, 0x30);
        assert!(pdu.is_empty());
        let (tag, varbind, list) = tlv(list);
        assert_eq!(tag, 0x30);
        assert!(list.is_empty(), "one varbind");
        let (tag, oid, varbind) = tlv(varbind);
        assert_eq!(tag, 0x06);
        assert_eq!(decode_oid(oid), [1, 3, 6, 1, 2, 1, 1, 1, 0], "sysDescr.0");
        let (tag, null, varbind) = tlv(varbind);
        assert_eq!((tag, null.len()), (0x05, 0));
        assert!(varbind.is_empty());
    }

    #[test]
    fn ber_long_form_length_and_multibyte_oid() {
        let long = ber(0x04, &[7; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let (_, c, rest) = tlv(&long);
        assert_eq!((c.len(), rest.len()), (200, 0));
        // 1.3.6.1.4.1.4542: 4542 = 0x11BE → base-128 0xA3 0x3E.
        assert_eq!(
            ber_oid(&[1, 3, 6, 1, 4, 1, 4542]),
            [43, 6, 1, 4, 1, 0xa3, 0x3e]
        );
        assert_eq!(
            decode_oid(&ber_oid(&[1, 3, 6, 1, 4, 1, 4542])),
            [1, 3, 6, 1, 4, 1, 4542]
        );
    }

    #[test]
    fn ntp_payload() {
        let p = builtin_first(123);
        assert_eq!(p.len(), 48);
        assert_eq!(p[0] >> 6, 0, "LI");
        assert_eq!((p[0] >> 3) & 7, 4, "version 4");
        assert_eq!(p[0] & 7, 3, "client mode");
        assert_ne!(be32(&p, 40) | be32(&p, 44), 0, "transmit timestamp set");
    }

    #[test]
    fn nbns_payload() {
        let p = builtin_first(137);
        assert_eq!(p.len(), 50);
        assert_eq!(be16(&p, 2) & 0x7800, 0, "opcode query");
        assert_eq!(
            [be16(&p, 4), be16(&p, 6), be16(&p, 8), be16(&p, 10)],
            [1, 0, 0, 0]
        );
        assert_eq!(p[12], 32);
        // Undo the first-level encoding.
        let name: Vec<u8> = p[13..45]
            .chunks(2)
            .map(|c| ((c[0] - b'A') << 4) | (c[1] - b'A'))
            .collect();
        assert_eq!(name[0], b'*');
        assert!(name[1..].iter().all(|b| *b == 0));
        assert_eq!(p[45], 0);
        assert_eq!((be16(&p, 46), be16(&p, 48)), (0x21, 1), "NBSTAT IN");
    }

    #[test]
    fn ssdp_payload() {
        let p = String::from_utf8(builtin_first(1900)).unwrap();
        assert!(p.starts_with("M-SEARCH * HTTP/1.1\r\n"));
        assert!(p.ends_with("\r\n\r\n"));
        let headers: Vec<&str> = p.trim_end().lines().skip(1).collect();
        assert!(headers.iter().all(|h| h.ends_with('\r') || !h.is_empty()));
        assert!(p.contains("\r\nMAN: \"ssdp:discover\"\r\n"));
        assert!(p.contains("\r\nST: ssdp:all\r\n"));
        assert!(p.contains("\r\nHOST: 239.255.255.250:1900\r\n"));
        assert!(!p.replace("\r\n", "").contains('\n'), "bare LF");
    }

    #[test]
    fn tftp_payload() {
        let p = builtin_first(69);
        assert_eq!(be16(&p, 0), 1, "RRQ");
        let fields: Vec<&[u8]> = p[2..].split(|b| *b == 0).collect();
        assert_eq!(fields.len(), 3, "name NUL mode NUL");
        assert!(!fields[0].is_empty());
        assert_eq!(fields[1], b"octet");
        assert!(fields[2].is_empty());
    }

    #[test]
    fn ike_payload() {
        let p = builtin_first(500);
        assert_ne!(&p[0..8], &[0; 8], "initiator cookie");
        assert_eq!(&p[8..16], &[0; 8], "responder cookie");
        assert_eq!(p[16], 1, "next payload SA");
        assert_eq!(p[17], 0x10, "ISAKMP 1.0");
        assert_eq!(p[18], 2, "Main Mode");
        assert_eq!(be32(&p, 20), 0, "message id");
        assert_eq!(be32(&p, 24) as usize, p.len());
        // SA payload.
        let sa = &p[28..];
        assert_eq!(sa[0], 0, "last payload");
        assert_eq!(be16(sa, 2) as usize, sa.len());
        assert_eq!(
            (be32(sa, 4), be32(sa, 8)),
            (1, 1),
            "IPsec DOI, identity only"
        );
        let prop = &sa[12..];
        assert_eq!(be16(prop, 2) as usize, prop.len());
        assert_eq!(
            &prop[4..8],
            &[1, 1, 0, 1],
            "proposal 1, ISAKMP, no SPI, 1 transform"
        );
        let tr = &prop[8..];
        assert_eq!(be16(tr, 2) as usize, tr.len());
        assert_eq!(&tr[4..6], &[1, 1], "transform 1, KEY_IKE");
        let attrs: Vec<(u16, u16)> = tr[8..]
            .chunks(4)
            .map(|a| (be16(a, 0), be16(a, 2)))
            .collect();
        assert!(
            attrs.iter().all(|(t, _)| t & 0x8000 != 0),
            "basic attributes"
        );
        let get = |ty: u16| attrs.iter().find(|(t, _)| t & 0x7fff == ty).map(|a| a.1);
        assert_eq!(get(1), Some(7), "AES-CBC");
        assert_eq!(get(2), Some(2), "SHA");
        assert_eq!(get(3), Some(1), "PSK");
        assert_eq!(get(4), Some(2), "group 2");
    }

    #[test]
    fn rpc_payload() {
        let p = builtin_first(111);
        assert_eq!(p.len(), 40);
        let w: Vec<u32> = (0..10).map(|k| be32(&p, 4 * k)).collect();
        assert_eq!(
            &w[1..6],
            &[0, 2, 100_000, 2, 0],
            "CALL rpcv2 portmap v2 NULL"
        );
        assert_eq!(&w[6..], &[0, 0, 0, 0], "AUTH_NONE");
    }

    #[test]
    fn memcached_payload() {
        let p = builtin_first(11211);
        assert_eq!(be16(&p, 2), 0, "sequence");
        assert_eq!(be16(&p, 4), 1, "one datagram");
        assert_eq!(be16(&p, 6), 0, "reserved");
        assert_eq!(&p[8..], b"version\r\n");
    }

    #[test]
    fn sip_payload() {
        let p = String::from_utf8(builtin_first(5060)).unwrap();
        let (head, body) = p.split_once("\r\n\r\n").unwrap();
        assert!(body.is_empty());
        let mut lines = head.split("\r\n");
        assert_eq!(
            lines.next().unwrap(),
            "OPTIONS sip:nobody@portolan.invalid SIP/2.0"
        );
        let names: Vec<&str> = lines.map(|l| l.split_once(':').unwrap().0).collect();
        for required in ["Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq"] {
            assert!(names.contains(&required), "missing {required}");
        }
        assert!(p.contains(";branch=z9hG4bK"), "RFC 3261 magic cookie");
        assert!(p.contains("\r\nCSeq: 1 OPTIONS\r\n"));
        assert!(p.contains("\r\nContent-Length: 0\r\n"));
    }

    #[test]
    fn small_binary_payloads() {
        let coap = builtin_first(5683);
        assert_eq!(coap[0] >> 6, 1, "CoAP version 1");
        assert_eq!((coap[0] >> 4) & 3, 0, "confirmable");
        assert_eq!(coap[0] & 0x0f, 0, "no token");
        assert_eq!(coap[1], 0x01, "GET");
        assert_eq!(coap[4] >> 4, 11, "Uri-Path");
        assert_eq!(&coap[5..5 + (coap[4] & 0x0f) as usize], b".well-known");
        assert_eq!(coap[16], 0x04);
        assert_eq!(&coap[17..], b"core");

        let stun = builtin_first(3478);
        assert_eq!(stun.len(), 20);
        assert_eq!((be16(&stun, 0), be16(&stun, 2)), (1, 0));
        assert_eq!(be32(&stun, 4), 0x2112_a442);

        assert_eq!(builtin_first(5351), [0, 0]);

        let rip = builtin_first(520);
        assert_eq!(rip.len(), 24);
        assert_eq!(&rip[..2], &[1, 2], "request, v2");
        assert_eq!(be16(&rip, 4), 0, "AFI 0");
        assert_eq!(be32(&rip, 20), 16, "metric infinity");

        let rmcp = builtin_first(623);
        assert_eq!(&rmcp[..4], &[6, 0, 0xff, 6]);
        assert_eq!(be32(&rmcp, 4), 4542);
        assert_eq!(rmcp[8], 0x80, "presence ping");
        assert_eq!(rmcp[11] as usize, rmcp.len() - 12, "data length");
    }

    // ---- parser ----

    fn parse_ok(text: &str) -> PayloadTable {
        let (t, errs) = parse_nmap_payloads(text);
        assert!(errs.is_empty(), "unexpected errors: {errs:?}");
        t
    }

    #[test]
    fn parses_escapes() {
        let t = parse_ok(r#"udp 7 "a\x00\xfF\0\n\r\t\\\"\a\b\f\v\'z""#);
        assert_eq!(
            t.for_port(7),
            [b"a\x00\xff\x00\n\r\t\\\"\x07\x08\x0c\x0b'z".to_vec()]
        );
        // `\0` is a NUL and never starts an octal escape (as in Nmap).
        let t = parse_ok(r#"udp 7 "\012""#);
        assert_eq!(t.for_port(7), [b"\x0012".to_vec()]);
        // Non-ASCII text stays as its UTF-8 bytes.
        let t = parse_ok("udp 7 \"é\"");
        assert_eq!(t.for_port(7), ["é".as_bytes().to_vec()]);
    }

    #[test]
    fn parses_multiline_strings_comments_and_keywords() {
        let text = "# header\n\
                    udp 53,69 # trailing comment\n  \"\\x01\\x02\"\n  \"ab#c\" \"d\"\n\
                    \n\
                    udp 500 \"ike\"\n\
                    source 500\n\
                    udp 9 \"x\"\n\
                    futurekeyword 1 2 3\n";
        let t = parse_ok(text);
        assert_eq!(t.for_port(53), [b"\x01\x02ab#cd".to_vec()]);
        assert_eq!(t.for_port(69), t.for_port(53));
        assert_eq!(t.for_port(500), [b"ike".to_vec()]);
        assert_eq!(t.source_port(500, 0), Some(500));
        assert_eq!(t.source_port(53, 0), None);
        assert_eq!(t.for_port(9), [b"x".to_vec()]);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn parses_ranges_and_repeated_ports() {
        let t = parse_ok("udp 7,1000-1003,65535 \"a\"\nudp 1002,0 \"b\" \"c\"");
        for p in [7, 1000, 1001, 1003, 65535] {
            assert_eq!(t.for_port(p), [b"a".to_vec()], "port {p}");
        }
        assert_eq!(t.for_port(1002), [b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(t.first(1002), Some(&b"a"[..]));
        assert_eq!(t.for_port(0), [b"bc".to_vec()]);
        assert!(t.for_port(999).is_empty() && t.for_port(1004).is_empty());
        assert_eq!(
            t.ports().collect::<Vec<_>>(),
            [0, 7, 1000, 1001, 1002, 1003, 65535]
        );
        // An empty string is a valid (empty) payload.
        let t = parse_ok("udp 1 \"\"");
        assert_eq!(t.for_port(1), [Vec::<u8>::new()]);
    }

    #[test]
    fn malformed_entries_are_reported_with_line_and_skipped() {
        let text = "# comment\n\
                    udp 1 \"one\"\n\
                    udp 2 \"bad \\q escape\"\n\
                    udp 3 \"unterminated\n\
                    udp 4 \"four\"\n\
                    udp 70000 \"port too big\"\n\
                    5 \"missing udp\"\n\
                    udp 6 \"six\"\n\
                    udp 7-5 \"reversed\"\n\
                    udp 8\n\
                    udp 9 \"a\" \"b\\x4\"\n\
                    udp 10 \"ten\"\n\
                    source 70000\n\
                    udp 11,,12 \"x\"\n\
                    udp\n\
                    udp 13 \"thirteen\"\n";
        let (t, errs) = parse_nmap_payloads(text);
        let got: Vec<(usize, &PayloadErrorKind)> = errs.iter().map(|e| (e.line, &e.kind)).collect();
        assert_eq!(got.len(), 10, "{errs:#?}");
        assert_eq!(got[0], (3, &PayloadErrorKind::BadEscape("\\q".into())));
        assert_eq!(got[1], (4, &PayloadErrorKind::UnterminatedString));
        assert!(matches!(got[2], (6, PayloadErrorKind::BadPorts { list, .. }) if list == "70000"));
        assert_eq!(got[3], (7, &PayloadErrorKind::ExpectedUdp("`5`".into())));
        assert!(matches!(got[4], (9, PayloadErrorKind::BadPorts { .. })));
        assert_eq!(got[5], (10, &PayloadErrorKind::MissingPayload));
        assert_eq!(got[6], (11, &PayloadErrorKind::BadEscape("\\x4".into())));
        assert!(matches!(got[7], (13, PayloadErrorKind::BadSource(_))));
        assert!(matches!(got[8], (14, PayloadErrorKind::BadPorts { .. })));
        assert_eq!(got[9], (15, &PayloadErrorKind::MissingPorts));
        assert!(errs[2]
            .to_string()
            .starts_with("line 6: bad port list `70000`"));
        assert!(errs[2].message().contains("out of range"));

        // Everything well-formed loaded; nothing from the bad entries did.
        for (port, payload) in [
            (1, "one"),
            (4, "four"),
            (6, "six"),
            (10, "ten"),
            (13, "thirteen"),
        ] {
            assert_eq!(
                t.for_port(port),
                [payload.as_bytes().to_vec()],
                "port {port}"
            );
        }
        for port in [2, 3, 5, 7, 8, 9, 11, 12] {
            assert!(t.for_port(port).is_empty(), "port {port} should be empty");
        }
        assert_eq!(t.source_port(10, 0), None, "bad source ignored");
    }

    #[test]
    fn strings_without_udp_are_not_taken_as_keywords() {
        let (t, errs) = parse_nmap_payloads("udp 1 \"a\"\ntcp 80 \"b\"\nudp 2 \"c\"");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 2);
        assert!(matches!(errs[0].kind, PayloadErrorKind::ExpectedUdp(_)));
        assert_eq!(t.for_port(1), [b"a".to_vec()]);
        assert_eq!(t.for_port(2), [b"c".to_vec()]);
        assert!(t.for_port(80).is_empty());
        // Leading garbage before any entry.
        let (t, errs) = parse_nmap_payloads("\"orphan\"\nudp 3 \"d\"");
        assert_eq!((errs.len(), errs[0].line), (1, 1));
        assert_eq!(t.for_port(3), [b"d".to_vec()]);
    }

    #[test]
    fn per_port_limit() {
        let text = "udp 1 \"x\"\n".repeat(MAX_PAYLOADS_PER_PORT + 2);
        let (t, errs) = parse_nmap_payloads(&text);
        assert_eq!(t.for_port(1).len(), MAX_PAYLOADS_PER_PORT);
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, MAX_PAYLOADS_PER_PORT + 1);
        assert_eq!(errs[0].kind, PayloadErrorKind::TooManyForPort(1));
    }

    #[test]
    fn hostile_input_is_bounded() {
        // 20 full-range entries would be 1.3M slots; the table stops at the cap.
        let text = "udp 0-65535 \"\"\n".repeat(20);
        let (t, errs) = parse_nmap_payloads(&text);
        assert_eq!(t.slots, MAX_PAYLOAD_SLOTS);
        assert!(errs.iter().all(|e| e.kind == PayloadErrorKind::TableFull));
        assert_eq!(errs.len(), 20 - MAX_PAYLOAD_SLOTS / 65536);
        assert_eq!(errs.last().map(|e| e.line), Some(20));

        // Few slots but big payloads: the byte cap stops it.
        let text = format!("udp 0-65535 \"{}\"\n", "A".repeat(1000));
        let (t, errs) = parse_nmap_payloads(&text);
        assert!(t.bytes <= MAX_PAYLOAD_BYTES && t.bytes > MAX_PAYLOAD_BYTES - 1000);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind, PayloadErrorKind::TableFull);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for text in [
            "",
            "udp",
            "udp 1",
            "udp 1 \"",
            "udp 1 \"\\",
            "udp 1 \"\\x",
            "udp 1 \"\\xé\"",
            "udp 1 \"a\" source",
            "udp 1 \"a\" source 1 2",
            "udp 1-",
            "udp -1 \"a\"",
            "udp 1-2-3 \"a\"",
            "udp é \"a\"",
            "\"\"\"\"\"",
            "####\n\n\r\n\t",
            "udp 1 \"a\"\r\nudp 2 \"b\"\r\n",
        ] {
            let _ = parse_nmap_payloads(text);
        }
        let (t, errs) = parse_nmap_payloads("udp 1 \"a\"\r\nudp 2 \"b\"\r\n");
        assert!(errs.is_empty());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn parses_installed_nmap_payloads() {
        let path = Path::new("/usr/share/nmap/nmap-payloads");
        let Ok(bytes) = std::fs::read(path) else {
            println!("skipped: {} not installed", path.display());
            return;
        };
        let text = String::from_utf8_lossy(&bytes);
        let (t, errs) = parse_nmap_payloads(&text);
        assert!(errs.is_empty(), "errors in the installed file: {errs:#?}");
        assert!(!t.for_port(53).is_empty());
        assert!(!t.for_port(161).is_empty());
        // Nmap's file is well under the hostile-input cap.
        assert!(t.slots < MAX_PAYLOAD_SLOTS / 4, "{} slots", t.slots);
        assert!(t.bytes < MAX_PAYLOAD_BYTES / 4, "{} bytes", t.bytes);
        // Every `udp` entry was loaded: count them independently.
        let entries = text
            .lines()
            .filter(|l| l.trim_start().starts_with("udp "))
            .count();
        assert!(entries > 10);
    }

    // ---- loading ----

    fn temp_file(tag: &str, contents: &[u8]) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "portolan-payloads-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&p, contents).unwrap();
        p
    }

    #[test]
    fn load_sources() {
        let (t, src) = load_payloads(None, true);
        assert_eq!(src, Source::Builtin);
        assert_eq!(t, PayloadTable::builtin());

        let (t, src) = load_payloads_from(None);
        assert_eq!(src, Source::Builtin);
        assert!(!t.is_empty());

        // A file's entries win; ports it lacks come from the built-in table.
        let good = temp_file("good", b"udp 53 \"mine\"\nudp 2 \"bad\\q\"\n# \xff\xfe\n");
        let (t, src) = load_payloads_from(Some(good.clone()));
        assert_eq!(src, Source::Nmap(good.clone()));
        assert_eq!(t.for_port(53), [b"mine".to_vec()]);
        assert_eq!(t.for_port(161), PayloadTable::builtin().for_port(161));
        assert_eq!(t.warnings().len(), 1);
        assert_eq!(t.warnings()[0].line, 2);
        std::fs::remove_file(&good).unwrap();

        // A file with nothing usable falls back.
        let empty = temp_file("empty", b"# nothing\nbogus\n");
        let (t, src) = load_payloads_from(Some(empty.clone()));
        assert!(
            matches!(src, Source::BuiltinFallback { ref path, ref reason }
            if *path == empty && reason.contains("line 2"))
        );
        assert_eq!(t, PayloadTable::builtin());
        std::fs::remove_file(&empty).unwrap();

        // An unreadable path falls back too.
        let missing = std::env::temp_dir().join("portolan-payloads-no-such-file");
        let (_, src) = load_payloads_from(Some(missing.clone()));
        assert!(matches!(src, Source::BuiltinFallback { path, .. } if path == missing));
    }

    #[test]
    fn load_via_datadir() {
        let dir =
            std::env::temp_dir().join(format!("portolan-payloads-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nmap-payloads"), "udp 4242 \"hi\"\n").unwrap();
        let (t, src) = load_payloads(Some(&dir), false);
        assert_eq!(src, Source::Nmap(dir.join("nmap-payloads")));
        assert_eq!(t.first(4242), Some(&b"hi"[..]));
        assert!(!t.for_port(123).is_empty(), "filled from built-in");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // ---- UDP state ----

    type Verdict = Option<(PortState, &'static str)>;

    #[test]
    fn icmpv4_rules() {
        use PortState::*;
        let cases: [(u8, u8, Verdict); 12] = [
            (3, 3, Some((Closed, "port-unreach"))),
            (3, 0, Some((Filtered, "net-unreach"))),
            (3, 1, Some((Filtered, "host-unreach"))),
            (3, 2, Some((Filtered, "proto-unreach"))),
            (3, 9, Some((Filtered, "net-prohibited"))),
            (3, 10, Some((Filtered, "host-prohibited"))),
            (3, 13, Some((Filtered, "admin-prohibited"))),
            (11, 0, Some((Filtered, "time-exceeded"))),
            (3, 4, None),  // fragmentation needed: ignored
            (3, 14, None), // precedence violation: ignored
            (0, 0, None),  // echo reply
            (5, 1, None),  // redirect
        ];
        for (ty, code, want) in cases {
            assert_eq!(udp_state_from_icmp(ty, code, false), want, "{ty}/{code}");
        }
        // Port unreachable from a router, not the target: filtered.
        assert_eq!(
            udp_state_from_icmp_sender(3, 3, false, false),
            Some((Filtered, "port-unreach"))
        );
        assert_eq!(
            udp_state_from_icmp_sender(3, 13, false, false),
            Some((Filtered, "admin-prohibited"))
        );
    }

    #[test]
    fn icmpv6_rules() {
        use PortState::*;
        let cases: [(u8, u8, Verdict); 12] = [
            (1, 4, Some((Closed, "port-unreach"))),
            (1, 0, Some((Filtered, "no-route"))),
            (1, 1, Some((Filtered, "admin-prohibited"))),
            (1, 2, Some((Filtered, "beyond-scope"))),
            (1, 3, Some((Filtered, "host-unreach"))),
            (1, 5, Some((Filtered, "admin-prohibited"))),
            (1, 6, Some((Filtered, "reject-route"))),
            (4, 0, Some((Open, "param-problem"))),
            (4, 1, Some((Filtered, "param-problem"))),
            (1, 7, None),
            (3, 0, None),   // time exceeded: Nmap ignores it for v6
            (129, 0, None), // echo reply
        ];
        for (ty, code, want) in cases {
            assert_eq!(udp_state_from_icmp(ty, code, true), want, "{ty}/{code}");
        }
        // The same numbers mean different things in v4 and v6.
        assert_eq!(udp_state_from_icmp(1, 4, false), None);
        assert_eq!(udp_state_from_icmp(3, 3, true), None);
        assert_eq!(
            udp_state_from_icmp_sender(1, 4, true, false),
            Some((Filtered, "port-unreach"))
        );
    }

    #[test]
    fn reply_and_silence() {
        assert_eq!(UDP_RESPONSE, (PortState::Open, "udp-response"));
        assert_eq!(UDP_NO_RESPONSE, (PortState::OpenFiltered, "no-response"));
    }
}
