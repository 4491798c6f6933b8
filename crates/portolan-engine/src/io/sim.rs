//! A simulated IPv4 network for tests, on a virtual clock: hosts with open, closed and
//! filtered TCP and UDP ports that answer SYNs, ACKs, UDP datagrams, ICMP echo requests and
//! ARP requests as a Linux host does, after a fixed round trip; a host behind routers has
//! its probes' TTL run out on the way (ICMP time exceeded), for traceroute. No root, no sockets: the
//! whole pipeline (discovery, port scan, the conversion to model hosts) runs under test.
//! Every packet sent is recorded, so a test can check that nothing went where it must not.

use crate::core::arp_ping::ArpProbe;
use crate::core::nd_ping::NdProbe;
use crate::core::scan::Probe;
use crate::io::backend::{Backend, Described, Outgoing, PacketIo};
use crate::io::netif::{Interface, NetifError};
use crate::io::raw::{RawError, Received};
use portolan_wire::build::{
    build_icmpv4, build_tcp_v4, build_udp_v4, Ipv4Params, TcpParams, UdpParams,
};
use portolan_wire::ethernet::{self, EtherType, MacAddr};
use portolan_wire::tcp::{self, Flags};
use portolan_wire::{arp, icmpv4, ipv4, udp, IpProtocol};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A whole simulated TCP/IP stack for a host (e.g. one answering as an nmap-os-db
/// reference fingerprint describes): it answers every IPv4 packet sent to the host.
pub trait Stack: Send {
    /// The answer to `packet` (an IPv4 packet to the host), `elapsed` after the simulated
    /// network came up, given the host's open ports.
    fn answer(
        &mut self,
        elapsed: Duration,
        packet: &[u8],
        open_tcp: &[u16],
        open_udp: &[u16],
    ) -> Option<Vec<u8>>;
}

impl Stack for portolan_os::synth::Persona {
    fn answer(
        &mut self,
        elapsed: Duration,
        packet: &[u8],
        open_tcp: &[u16],
        open_udp: &[u16],
    ) -> Option<Vec<u8>> {
        portolan_os::synth::Persona::answer(self, elapsed, packet, open_tcp, open_udp)
    }
}

/// A host's own stack, shared by the clones of the network.
#[derive(Clone)]
pub struct Persona(pub Arc<Mutex<dyn Stack>>);

impl Persona {
    pub fn new(stack: impl Stack + 'static) -> Self {
        Persona(Arc::new(Mutex::new(stack)))
    }
}

impl std::fmt::Debug for Persona {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Persona")
    }
}

/// One simulated host. Ports not listed are closed (RST, ICMP port unreachable).
#[derive(Debug, Clone, Default)]
pub struct SimHost {
    pub open_tcp: Vec<u16>,
    pub filtered_tcp: Vec<u16>,
    pub open_udp: Vec<u16>,
    /// Answers ICMP echo requests.
    pub echo: bool,
    /// Its MAC, if it is on our link (then it answers ARP).
    pub mac: Option<MacAddr>,
    /// Its own stack, answering every IPv4 packet in place of the behaviour above
    /// (filtered ports still drop TCP).
    pub persona: Option<Persona>,
    /// The routers before it, nearest first (`None`: one that sends no ICMP time
    /// exceeded): a probe whose TTL runs out on the way is answered by the router.
    pub path: Vec<Option<Ipv4Addr>>,
}

/// The network: our interface and the hosts on it or behind it.
#[derive(Debug, Clone)]
pub struct SimNet {
    pub local: Ipv4Addr,
    pub prefix: u8,
    pub local_mac: MacAddr,
    pub hosts: BTreeMap<Ipv4Addr, SimHost>,
    pub rtt: Duration,
}

impl SimNet {
    /// An empty /24 around `local`, 1 ms round trips.
    pub fn new(local: Ipv4Addr) -> Self {
        SimNet {
            local,
            prefix: 24,
            local_mac: MacAddr([0x02, 0x00, 0x5e, 0x00, 0x00, 0x01]),
            hosts: BTreeMap::new(),
            rtt: Duration::from_millis(1),
        }
    }

    pub fn host(mut self, ip: Ipv4Addr, host: SimHost) -> Self {
        self.hosts.insert(ip, host);
        self
    }
}

/// The simulated network as a [`Backend`]; clones share the record of what was sent.
#[derive(Clone)]
pub struct SimBackend {
    net: Arc<SimNet>,
    /// When the network came up: personas are told the time since.
    epoch: Instant,
    sent: Arc<Mutex<Vec<Ipv4Addr>>>,
    /// Cancels the token once this many packets were sent: an interrupt mid-scan.
    trip: Option<(usize, CancellationToken)>,
}

/// Real time the sending thread pauses after [`SimBackend::cancel_after`] trips, so the
/// cancellation reaches the scan before its next send (the virtual clock does not move).
const TRIP_PAUSE: Duration = Duration::from_millis(100);

impl SimBackend {
    pub fn new(net: SimNet) -> Self {
        SimBackend {
            net: Arc::new(net),
            epoch: Instant::now(),
            sent: Arc::default(),
            trip: None,
        }
    }

    /// Cancels `token` as the `packets`-th packet is sent (a Ctrl-C in the middle of a
    /// scan, at a point a test can count on).
    pub fn cancel_after(mut self, packets: usize, token: CancellationToken) -> Self {
        self.trip = Some((packets, token));
        self
    }

    /// Every destination a packet was sent to (ARP requests: the address asked for).
    pub fn destinations(&self) -> Vec<Ipv4Addr> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn unsupported(what: &str) -> RawError {
    RawError::Io {
        call: "simulated network",
        error: std::io::Error::other(format!("{what} is not simulated")),
    }
}

impl Backend for SimBackend {
    fn source_for(&self, dst: IpAddr) -> Result<IpAddr, RawError> {
        let host_bits = u32::MAX
            .checked_shr(u32::from(self.net.prefix))
            .unwrap_or(0);
        let broadcast = Ipv4Addr::from(u32::from(self.net.local) | host_bits);
        match dst {
            // As Linux: a UDP connect to the link's broadcast address is refused.
            IpAddr::V4(a) if a == broadcast && self.net.prefix < 31 => {
                Err(RawError::Broadcast(dst))
            }
            IpAddr::V4(_) => Ok(IpAddr::V4(self.net.local)),
            IpAddr::V6(_) => Err(RawError::NoRoute(dst)),
        }
    }

    fn open_ip(
        &self,
        _src: IpAddr,
        _ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Probe> + Send>, RawError> {
        Ok(Box::new(SimPath::new(self.clone())))
    }

    fn open_ip_described(
        &self,
        _src: IpAddr,
        _ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Described> + Send>, RawError> {
        Ok(Box::new(SimPath::new(self.clone())))
    }

    fn open_arp(
        &self,
        _ifindex: u32,
        _local: Ipv4Addr,
    ) -> Result<Box<dyn PacketIo<ArpProbe> + Send>, RawError> {
        Ok(Box::new(SimPath::new(self.clone())))
    }

    fn open_nd(&self, _ifindex: u32) -> Result<Box<dyn PacketIo<NdProbe> + Send>, RawError> {
        Err(unsupported("neighbour discovery"))
    }

    fn interfaces(&self) -> Result<Vec<Interface>, NetifError> {
        Ok(vec![Interface {
            name: "sim0".into(),
            ifindex: 2,
            flags: (libc::IFF_UP | libc::IFF_BROADCAST | libc::IFF_RUNNING) as u32,
            hatype: 1,
            mac: Some(self.net.local_mac),
            ipv4: vec![(self.net.local, self.net.prefix)],
            ipv6: Vec::new(),
        }])
    }

    fn neighbours(&self) -> Vec<(Ipv4Addr, MacAddr)> {
        Vec::new()
    }
}

/// One open path: answers wait in `pending` until the virtual clock reaches them.
struct SimPath {
    backend: SimBackend,
    now: Instant,
    pending: Vec<(Instant, Vec<u8>)>,
}

impl SimPath {
    fn new(backend: SimBackend) -> Self {
        SimPath {
            backend,
            now: Instant::now(),
            pending: Vec::new(),
        }
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.0).min()
    }
}

impl<P> PacketIo<P> for SimPath {
    fn send(&mut self, batch: &[Outgoing<'_, P>]) -> Result<usize, RawError> {
        let net = &self.backend.net;
        for o in batch {
            let (dst, answer) = if o.packet.first().map(|b| b >> 4) == Some(4) {
                let elapsed = self.now.saturating_duration_since(self.backend.epoch);
                answer_ip(net, o.packet, elapsed)
            } else {
                answer_arp(net, o.packet)
            };
            if let (Ok(mut sent), Some(dst)) = (self.backend.sent.lock(), dst) {
                sent.push(dst);
                if let Some((at, token)) = &self.backend.trip {
                    if sent.len() == *at {
                        token.cancel();
                        std::thread::sleep(TRIP_PAUSE);
                    }
                }
            }
            if let Some(a) = answer {
                self.pending.push((self.now + net.rtt, a));
            }
        }
        Ok(batch.len())
    }

    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        let now = self.now;
        let mut n = 0;
        while n < max {
            let Some(i) = self.pending.iter().position(|p| p.0 <= now) else {
                break;
            };
            let (_, data) = self.pending.swap_remove(i);
            out.push(Received {
                data,
                at: now,
                truncated: false,
            });
            n += 1;
        }
        Ok(n)
    }

    fn wait(&mut self, until: Option<Instant>) -> Result<(), RawError> {
        let next = match (until, self.next_arrival()) {
            (Some(t), Some(a)) => t.min(a),
            (Some(t), None) => t,
            (None, Some(a)) => a,
            (None, None) => self.now + Duration::from_millis(5),
        };
        self.now = self.now.max(next);
        Ok(())
    }

    fn now(&self) -> Instant {
        self.now
    }
}

fn v4_params(src: Ipv4Addr, dst: Ipv4Addr) -> Ipv4Params {
    Ipv4Params {
        src,
        dst,
        ttl: 64,
        ident: 0,
        dont_frag: true,
    }
}

/// The destination of an IPv4 probe and the host's answer to it, if any.
fn answer_ip(
    net: &SimNet,
    packet: &[u8],
    elapsed: Duration,
) -> (Option<Ipv4Addr>, Option<Vec<u8>>) {
    let Ok(ip) = ipv4::Packet::new_checked(packet) else {
        return (None, None);
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let Some(host) = net.hosts.get(&dst) else {
        return (Some(dst), None);
    };
    if let Some(router) = host.path.get(usize::from(ip.ttl()).wrapping_sub(1)) {
        return (
            Some(dst),
            router.and_then(|r| time_exceeded(r, src, packet)),
        );
    }
    if let Some(p) = &host.persona {
        let filtered = ip.protocol() == IpProtocol::TCP
            && tcp::Packet::new_checked(ip.payload())
                .is_ok_and(|t| host.filtered_tcp.contains(&t.dst_port()));
        if filtered {
            return (Some(dst), None);
        }
        let answer =
            p.0.lock()
                .ok()
                .and_then(|mut s| s.answer(elapsed, packet, &host.open_tcp, &host.open_udp));
        return (Some(dst), answer);
    }
    let mut reply = v4_params(dst, src);
    reply.ttl = 64u8.saturating_sub(host.path.len().min(63) as u8);
    let mut buf = vec![0u8; 128 + packet.len()];
    let len = match ip.protocol() {
        IpProtocol::TCP => {
            let Ok(t) = tcp::Packet::new_checked(ip.payload()) else {
                return (Some(dst), None);
            };
            let port = t.dst_port();
            if host.filtered_tcp.contains(&port) {
                return (Some(dst), None);
            }
            let flags = t.flags();
            let (flags, seq, ack) = if flags.contains(Flags::SYN) {
                if host.open_tcp.contains(&port) {
                    (Flags::SYN | Flags::ACK, 1, t.seq_number().wrapping_add(1))
                } else {
                    (Flags::RST | Flags::ACK, 0, t.seq_number().wrapping_add(1))
                }
            } else if flags.contains(Flags::ACK) {
                // An unexpected ACK draws a RST carrying its acknowledgement number.
                (Flags::RST, t.ack_number(), 0)
            } else {
                return (Some(dst), None);
            };
            let params = TcpParams {
                sport: port,
                dport: t.src_port(),
                seq,
                ack,
                flags,
                window: 0,
                options: &[],
                payload: &[],
            };
            build_tcp_v4(&mut buf, None, &reply, &params)
        }
        IpProtocol::UDP => {
            let Ok(u) = udp::Packet::new_checked(ip.payload()) else {
                return (Some(dst), None);
            };
            if host.open_udp.contains(&u.dst_port()) {
                let params = UdpParams {
                    sport: u.dst_port(),
                    dport: u.src_port(),
                    payload: b"simulated",
                };
                build_udp_v4(&mut buf, None, &reply, &params)
            } else {
                let unreach = icmpv4::Repr::DstUnreachable {
                    code: 3,
                    next_hop_mtu: 0,
                    inner: packet,
                };
                build_icmpv4(&mut buf, None, &reply, &unreach)
            }
        }
        IpProtocol::ICMP => {
            let Ok(i) = icmpv4::Packet::new_checked(ip.payload()) else {
                return (Some(dst), None);
            };
            if !host.echo || i.msg_type() != icmpv4::Message::ECHO_REQUEST {
                return (Some(dst), None);
            }
            let echo = icmpv4::Repr::EchoReply {
                ident: i.echo_ident(),
                seq_no: i.echo_seq_no(),
                data: &[],
            };
            build_icmpv4(&mut buf, None, &reply, &echo)
        }
        _ => return (Some(dst), None),
    };
    match len {
        Ok(len) => {
            buf.truncate(len);
            (Some(dst), Some(buf))
        }
        Err(_) => (Some(dst), None),
    }
}

/// A router's ICMP time exceeded about `packet` (its header and 8 bytes quoted).
fn time_exceeded(router: Ipv4Addr, to: Ipv4Addr, packet: &[u8]) -> Option<Vec<u8>> {
    let quote = packet.get(..28).unwrap_or(packet);
    let mut buf = vec![0u8; 128];
    let te = icmpv4::Repr::TimeExceeded {
        code: 0,
        inner: quote,
    };
    let len = build_icmpv4(&mut buf, None, &v4_params(router, to), &te).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// The address an ARP request asks for, and the host's reply if it is on our link.
fn answer_arp(net: &SimNet, frame: &[u8]) -> (Option<Ipv4Addr>, Option<Vec<u8>>) {
    let Ok(eth) = ethernet::Packet::new_checked(frame) else {
        return (None, None);
    };
    if eth.payload_ethertype() != EtherType::ARP {
        return (None, None);
    }
    let Ok(req) = arp::Packet::new_checked(eth.payload()).and_then(|p| arp::Repr::parse(&p)) else {
        return (None, None);
    };
    let asked = req.target_protocol_addr;
    let Some(mac) = net.hosts.get(&asked).and_then(|h| h.mac) else {
        return (Some(asked), None);
    };
    let mut f = vec![0u8; 60];
    let head = ethernet::Repr {
        src_addr: mac,
        dst_addr: req.source_hardware_addr,
        ethertype: EtherType::ARP,
        vlan_tci: None,
    };
    let body = arp::Repr {
        operation: arp::Operation::REPLY,
        source_hardware_addr: mac,
        source_protocol_addr: asked,
        target_hardware_addr: req.source_hardware_addr,
        target_protocol_addr: req.source_protocol_addr,
    };
    let emitted = head
        .emit(&mut ethernet::Packet::new_unchecked(&mut f[..]))
        .and_then(|_| match f.get_mut(14..) {
            Some(rest) => body.emit(&mut arp::Packet::new_unchecked(rest)),
            None => Err(portolan_wire::Error::BufferTooSmall),
        });
    match emitted {
        Ok(()) => (Some(asked), Some(f)),
        Err(_) => (Some(asked), None),
    }
}
