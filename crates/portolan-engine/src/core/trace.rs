//! Traceroute as Nmap runs it, sans I/O: every host is traced at once with the probe that
//! got an answer from it during the scan, TTLs walked from a guessed distance down toward
//! 1 and then up past the guess until the host itself answers (or TTL 30). Hops are kept in
//! one tree shared by all hosts: a host whose probe meets a hop (TTL and address) already
//! known from another host takes that host's lower hops instead of probing them.
//!
//! A probe is known again by a token: the ICMP echo sequence number, or the source port of
//! TCP and UDP probes, which ICMP time-exceeded and unreachable messages quote back. A probe
//! unanswered for [`PROBE_TIMEOUT`] marks its hop as timed out and is sent again at most
//! [`MAX_RESENDS`] times; a late answer still fills the hop in.

use crate::core::Poll;
use crate::io::backend::Described;
use portolan_os::analyse::initial_ttl_guess;
use portolan_wire::build::{
    build_icmpv4, build_tcp_v4, build_udp_v4, Ipv4Params, TcpParams, UdpParams,
};
use portolan_wire::tcp::{self, Flags, TcpOption};
use portolan_wire::{icmpv4, ipv4, udp, IpProtocol};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// The highest TTL probed when the host itself does not answer.
pub const MAX_TTL: u8 = 30;
/// Probes in flight at once, all hosts together.
pub const MAX_OUTSTANDING: usize = 10;
/// Times an unanswered probe is sent again, at most.
pub const MAX_RESENDS: u32 = 2;
/// How long a probe waits for its answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);
/// The first TTL tried when the distance to a host is not known.
pub const DEFAULT_INITIAL_TTL: u8 = 10;
/// Source ports of TCP and UDP probes: the token is the offset in this range. Apart from
/// the port scan's (so that a receiver takes only traceroute answers) and below Linux's
/// ephemeral ports (no clash with the kernel's own connections, -sV's among them).
pub const SOURCE_PORTS: RangeInclusive<u16> = 29_000..=31_999;

const TOKENS: u16 = *SOURCE_PORTS.end() - *SOURCE_PORTS.start() + 1;

/// The kind of probe a host is traced with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceProbe {
    TcpSyn { port: u16 },
    TcpAck { port: u16 },
    Udp { port: u16 },
    IcmpEcho,
}

impl TraceProbe {
    /// What a dry run prints before the probe's TTL.
    pub fn description(&self) -> &'static str {
        match self {
            TraceProbe::TcpSyn { .. } => "traceroute TCP SYN ttl",
            TraceProbe::TcpAck { .. } => "traceroute TCP ACK ttl",
            TraceProbe::Udp { .. } => "traceroute UDP ttl",
            TraceProbe::IcmpEcho => "traceroute ICMP echo ttl",
        }
    }

    /// The port and protocol name Nmap writes in `<trace port= proto=>`.
    pub fn port_proto(&self) -> (Option<u16>, &'static str) {
        match *self {
            TraceProbe::TcpSyn { port } | TraceProbe::TcpAck { port } => (Some(port), "tcp"),
            TraceProbe::Udp { port } => (Some(port), "udp"),
            TraceProbe::IcmpEcho => (None, "icmp"),
        }
    }
}

/// One host to trace.
#[derive(Debug, Clone)]
pub struct TraceTarget {
    pub ip: Ipv4Addr,
    pub probe: TraceProbe,
    /// The UDP payload of a UDP probe (Nmap's for the port).
    pub payload: Vec<u8>,
    /// The distance OS detection found, if any: tracing starts there.
    pub distance: Option<u8>,
}

/// Settings of a trace.
#[derive(Debug, Clone, Copy)]
pub struct TraceConfig {
    /// Resends per probe (Nmap: the least of --max-retries and [`MAX_RESENDS`]).
    pub max_resends: u32,
    /// --scan-delay between probes.
    pub scan_delay: Duration,
    /// Probes in flight at once ([`MAX_OUTSTANDING`]).
    pub max_outstanding: usize,
    /// The first TTL of hosts without a known distance.
    pub initial_ttl: u8,
    /// Identifies our ICMP echo probes (their identifier), and seeds the probes' random
    /// fields.
    pub seed: u64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            max_resends: MAX_RESENDS,
            scan_delay: Duration::ZERO,
            max_outstanding: MAX_OUTSTANDING,
            initial_ttl: DEFAULT_INITIAL_TTL,
            seed: 0,
        }
    }
}

/// One hop of a finished trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHop {
    pub ttl: u8,
    /// `None`: the hop timed out.
    pub addr: Option<Ipv4Addr>,
    pub rtt: Option<Duration>,
    /// The host whose trace found this hop (another host's: the hop is shared).
    pub tag: Ipv4Addr,
}

/// A host's finished trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceResult {
    /// By ascending TTL, the timed-out ones included.
    pub hops: Vec<TraceHop>,
    /// The TTL at which the host itself answered.
    pub distance: Option<u8>,
}

/// A hop in the tree shared by all hosts; `parent` is the hop one TTL (or more) closer.
#[derive(Debug, Clone)]
struct Node {
    parent: Option<usize>,
    tag: Ipv4Addr,
    addr: Option<Ipv4Addr>,
    ttl: u8,
    rtt: Option<Duration>,
}

#[derive(Debug, Clone)]
struct ProbeRec {
    host: usize,
    ttl: u8,
    token: u16,
    sent: Instant,
    resends: u32,
}

#[derive(Debug)]
struct HostState {
    target: TraceTarget,
    sent_ttls: [bool; MAX_TTL as usize + 1],
    current_ttl: u8,
    counting_up: bool,
    /// The lowest TTL the host answered at; 0: not yet.
    reached: u8,
    unanswered: Vec<usize>,
    active: VecDeque<usize>,
    pending: VecDeque<usize>,
    /// The hop with the highest TTL on this host's path.
    head: Option<usize>,
}

impl HostState {
    fn has_more_probes(&self) -> bool {
        !(self.counting_up
            && ((self.reached > 0 && self.current_ttl >= self.reached)
                || self.current_ttl > MAX_TTL))
    }

    fn is_finished(&self) -> bool {
        !self.has_more_probes() && self.active.is_empty() && self.pending.is_empty()
    }

    fn sent(&self, ttl: u8) -> bool {
        self.sent_ttls
            .get(usize::from(ttl))
            .copied()
            .unwrap_or(true)
    }

    /// Moves `current_ttl` to the next TTL not yet sent: down to 1, then up.
    fn next_ttl(&mut self) {
        if !self.counting_up {
            while self.current_ttl > 1 && self.sent(self.current_ttl) {
                self.current_ttl -= 1;
            }
            if self.current_ttl <= 1 {
                self.counting_up = true;
            }
        }
        if self.counting_up {
            while self.current_ttl <= MAX_TTL && self.sent(self.current_ttl) {
                self.current_ttl += 1;
            }
        }
    }
}

/// The traceroute of a group of hosts.
pub struct Tracer {
    config: TraceConfig,
    hosts: Vec<HostState>,
    /// Hosts still tracing, in sending order.
    active_hosts: Vec<usize>,
    cursor: usize,
    probes: Vec<ProbeRec>,
    nodes: Vec<Node>,
    /// Hops that answered, by TTL and address.
    cache: HashMap<(u8, Ipv4Addr), usize>,
    outstanding: usize,
    next_send: Option<Instant>,
    next_token: u16,
    ident: u16,
}

/// A well-mixed 64-bit value from `x` (splitmix64): the probes' random-looking fields.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What an answer tells: who sent it, which host's probe it is about, its token, and the
/// TTL it arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reply {
    from: Ipv4Addr,
    target: Ipv4Addr,
    token: u16,
    ttl: u8,
}

fn port_token(port: u16) -> Option<u16> {
    SOURCE_PORTS
        .contains(&port)
        .then(|| port - *SOURCE_PORTS.start())
}

impl Tracer {
    pub fn new(config: TraceConfig, targets: Vec<TraceTarget>) -> Self {
        let hosts: Vec<HostState> = targets
            .into_iter()
            .map(|target| {
                let guess = target.distance.unwrap_or(config.initial_ttl);
                HostState {
                    target,
                    sent_ttls: [false; MAX_TTL as usize + 1],
                    current_ttl: guess.clamp(1, MAX_TTL),
                    counting_up: false,
                    reached: 0,
                    unanswered: Vec::new(),
                    active: VecDeque::new(),
                    pending: VecDeque::new(),
                    head: None,
                }
            })
            .collect();
        Tracer {
            active_hosts: (0..hosts.len()).collect(),
            hosts,
            cursor: 0,
            probes: Vec::new(),
            nodes: Vec::new(),
            cache: HashMap::new(),
            outstanding: 0,
            next_send: None,
            next_token: 0,
            ident: (mix(config.seed) >> 48) as u16,
            config,
        }
    }

    /// The ICMP identifier of our echo probes.
    pub fn ident(&self) -> u16 {
        self.ident
    }

    /// What to do next at `now`.
    pub fn poll(&mut self, now: Instant) -> Poll<Described> {
        self.cull_timeouts(now);
        self.remove_finished_hosts();
        if self.active_hosts.is_empty() {
            return Poll::Done;
        }
        let paced = self.next_send.is_some_and(|t| now < t);
        if self.outstanding < self.config.max_outstanding && !paced {
            for _ in 0..self.active_hosts.len() {
                let h = self.active_hosts[self.cursor % self.active_hosts.len()];
                self.cursor = (self.cursor + 1) % self.active_hosts.len();
                if let Some(p) = self.send_next_probe(h, now) {
                    self.outstanding += 1;
                    let delay = self.config.scan_delay;
                    if !delay.is_zero() {
                        self.next_send = Some((self.next_send.unwrap_or(now) + delay).max(now));
                    }
                    return Poll::Send(self.describe(p));
                }
            }
        }
        // Looking for a TTL to send may have shown a host to be finished.
        self.remove_finished_hosts();
        if self.active_hosts.is_empty() {
            return Poll::Done;
        }
        // The next timeout, or the pacer when it holds a probe back.
        let timeout = self
            .active_hosts
            .iter()
            .filter_map(|&h| self.hosts[h].active.front())
            .map(|&p| self.probes[p].sent + PROBE_TIMEOUT)
            .min();
        let pacer = self
            .next_send
            .filter(|_| paced && self.outstanding < self.config.max_outstanding);
        match (timeout, pacer) {
            (Some(a), Some(b)) => Poll::WaitUntil(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Poll::WaitUntil(a),
            (None, None) => Poll::WaitForInput,
        }
    }

    fn describe(&self, p: usize) -> Described {
        let probe = &self.probes[p];
        Described {
            what: self.hosts[probe.host].target.probe.description(),
            n: Some(u32::from(probe.ttl)),
            tag: p as u64,
        }
    }

    /// The next probe of host `h` (a resend first), if it has one to send.
    fn send_next_probe(&mut self, h: usize, now: Instant) -> Option<usize> {
        let host = &mut self.hosts[h];
        if let Some(p) = host.pending.pop_front() {
            host.active.push_back(p);
            let probe = &mut self.probes[p];
            probe.resends += 1;
            probe.sent = now;
            return Some(p);
        }
        host.next_ttl();
        if !host.has_more_probes() {
            return None;
        }
        let ttl = host.current_ttl;
        let token = self.next_token;
        self.next_token = (self.next_token + 1) % TOKENS;
        let p = self.probes.len();
        self.probes.push(ProbeRec {
            host: h,
            ttl,
            token,
            sent: now,
            resends: 0,
        });
        host.unanswered.push(p);
        host.active.push_back(p);
        if let Some(s) = host.sent_ttls.get_mut(usize::from(ttl)) {
            *s = true;
        }
        Some(p)
    }

    /// Marks the hops of probes unanswered for too long as timed out, and queues their
    /// resends.
    fn cull_timeouts(&mut self, now: Instant) {
        for i in 0..self.active_hosts.len() {
            let h = self.active_hosts[i];
            while let Some(&p) = self.hosts[h].active.front() {
                if now.saturating_duration_since(self.probes[p].sent) < PROBE_TIMEOUT {
                    break;
                }
                let ttl = self.probes[p].ttl;
                self.insert_hop(h, ttl, None, None);
                self.hosts[h].active.pop_front();
                self.outstanding -= 1;
                if self.probes[p].resends < self.config.max_resends {
                    self.hosts[h].pending.push_front(p);
                }
            }
        }
    }

    fn remove_finished_hosts(&mut self) {
        let mut i = 0;
        while i < self.active_hosts.len() {
            if self.hosts[self.active_hosts[i]].is_finished() {
                self.active_hosts.remove(i);
                if self.cursor > i {
                    self.cursor -= 1;
                }
            } else {
                i += 1;
            }
        }
        if self.cursor >= self.active_hosts.len() {
            self.cursor = 0;
        }
    }

    /// Forgets probe `p` of host `h`; returns 1 if it was in flight.
    fn cancel_probe(&mut self, h: usize, p: usize) -> usize {
        let host = &mut self.hosts[h];
        let before = host.active.len();
        host.active.retain(|&x| x != p);
        let count = before - host.active.len();
        host.pending.retain(|&x| x != p);
        host.unanswered.retain(|&x| x != p);
        count
    }

    fn cancel_probes_where(&mut self, h: usize, drop: impl Fn(u8) -> bool) -> usize {
        let doomed: Vec<usize> = self.hosts[h]
            .unanswered
            .iter()
            .copied()
            .filter(|&p| drop(self.probes[p].ttl))
            .collect();
        doomed.into_iter().map(|p| self.cancel_probe(h, p)).sum()
    }

    /// Digests one received IPv4 packet; anything not answering one of our probes is
    /// ignored.
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        let Some(reply) = self.decode(packet) else {
            return;
        };
        let Some(p) = self.lookup(reply.target, reply.token) else {
            return;
        };
        let (h, ttl, sent) = {
            let probe = &self.probes[p];
            (probe.host, probe.ttl, probe.sent)
        };
        if reply.from == self.hosts[h].target.ip {
            let host = &mut self.hosts[h];
            if host.reached == 0 || ttl < host.reached {
                host.reached = ttl;
            }
            if !host.counting_up {
                // Probes past the host: skip ahead to the distance its TTL tells.
                let distance = i32::from(initial_ttl_guess(reply.ttl)) - i32::from(reply.ttl) + 1;
                if distance > 0 && distance < i32::from(host.current_ttl) {
                    host.current_ttl = (distance as u8).min(MAX_TTL);
                }
            }
            let n = self.cancel_probes_where(h, |t| t > ttl);
            self.outstanding -= n;
        }
        let rtt = now.saturating_duration_since(sent);
        self.set_host_hop(h, ttl, reply.from, rtt);
        let n = self.cancel_probe(h, p);
        self.outstanding -= n;
    }

    fn lookup(&self, target: Ipv4Addr, token: u16) -> Option<usize> {
        self.active_hosts
            .iter()
            .filter(|&&h| self.hosts[h].target.ip == target)
            .flat_map(|&h| self.hosts[h].unanswered.iter())
            .copied()
            .find(|&p| self.probes[p].token == token)
    }

    /// Reads an answer: an ICMP time exceeded or unreachable quoting one of our probes, an
    /// echo reply, or a host's TCP or UDP answer to one of our source ports.
    fn decode(&self, packet: &[u8]) -> Option<Reply> {
        let ip = ipv4::Packet::new_checked(packet).ok()?;
        let (from, ttl) = (ip.src_addr(), ip.ttl());
        let direct = |token| {
            Some(Reply {
                from,
                target: from,
                token,
                ttl,
            })
        };
        match ip.protocol() {
            IpProtocol::ICMP => {
                let icmp = icmpv4::Packet::new_checked(ip.payload()).ok()?;
                let t = icmp.msg_type();
                if (t == icmpv4::Message::TIME_EXCEEDED && icmp.msg_code() == 0)
                    || t == icmpv4::Message::DST_UNREACHABLE
                {
                    let quoted = icmp.quoted().ok()?;
                    let token = match quoted.ip.protocol {
                        IpProtocol::ICMP => {
                            let inner = quoted.transport;
                            let ident = u16::from_be_bytes([*inner.get(4)?, *inner.get(5)?]);
                            if ident != self.ident {
                                return None;
                            }
                            u16::from_be_bytes([*inner.get(6)?, *inner.get(7)?])
                        }
                        IpProtocol::TCP | IpProtocol::UDP => port_token(quoted.ports()?.0)?,
                        _ => return None,
                    };
                    Some(Reply {
                        from,
                        target: quoted.ip.dst_addr,
                        token,
                        ttl,
                    })
                } else if t == icmpv4::Message::ECHO_REPLY {
                    if icmp.echo_ident() != self.ident {
                        return None;
                    }
                    direct(icmp.echo_seq_no())
                } else {
                    None
                }
            }
            IpProtocol::TCP => {
                let t = tcp::Packet::new_checked(ip.payload()).ok()?;
                direct(port_token(t.dst_port())?)
            }
            IpProtocol::UDP => {
                let u = udp::Packet::new_checked(ip.payload()).ok()?;
                direct(port_token(u.dst_port())?)
            }
            _ => None,
        }
    }

    /// The hop of host `h`'s path just below TTL `ttl` or at it (`parent`), and the one
    /// above it (`child`).
    fn child_parent_ttl(&self, h: usize, ttl: u8) -> (Option<usize>, Option<usize>) {
        let (mut child, mut parent) = (None, self.hosts[h].head);
        while let Some(p) = parent {
            if self.nodes[p].ttl <= ttl {
                break;
            }
            child = Some(p);
            parent = self.nodes[p].parent;
        }
        (child, parent)
    }

    /// Puts a hop (`addr` `None`: timed out) at `ttl` on host `h`'s path, or fills in a
    /// timed-out one there.
    fn insert_hop(
        &mut self,
        h: usize,
        ttl: u8,
        addr: Option<Ipv4Addr>,
        rtt: Option<Duration>,
    ) -> usize {
        let (child, parent) = self.child_parent_ttl(h, ttl);
        if let Some(p) = parent.filter(|&p| self.nodes[p].ttl == ttl) {
            let node = &mut self.nodes[p];
            if node.addr.is_none() {
                node.addr = addr;
                node.rtt = rtt;
            }
            return p;
        }
        let tag = match child {
            Some(c) => self.nodes[c].tag,
            None => self.hosts[h].target.ip,
        };
        let n = self.nodes.len();
        self.nodes.push(Node {
            parent,
            tag,
            addr,
            ttl,
            rtt,
        });
        match child {
            Some(c) => self.nodes[c].parent = Some(n),
            None => self.hosts[h].head = Some(n),
        }
        if let Some(a) = addr {
            self.cache.insert((ttl, a), n);
        }
        n
    }

    /// Joins host `h`'s path to the known hop `hop` (and the hops below it).
    fn link_to(&mut self, h: usize, hop: usize) {
        let (child, parent) = self.child_parent_ttl(h, self.nodes[hop].ttl);
        if parent == Some(hop) {
            return;
        }
        let tag = self.nodes[hop].tag;
        let merged = self.merge_hops(tag, Some(hop), parent);
        match child {
            Some(c) => self.nodes[c].parent = merged,
            None => self.hosts[h].head = merged,
        }
    }

    /// Merges two chains of hops into one ordered by TTL, tagged `tag`; where both have a
    /// hop at one TTL, an answered one is kept over a timed-out one, else `a`'s.
    fn merge_hops(
        &mut self,
        tag: Ipv4Addr,
        mut a: Option<usize>,
        mut b: Option<usize>,
    ) -> Option<usize> {
        let mut head = None;
        let mut last: Option<usize> = None;
        loop {
            let (x, y) = match (a, b) {
                (Some(x), Some(y)) if x != y => (x, y),
                _ => break,
            };
            let (tx, ty) = (self.nodes[x].ttl, self.nodes[y].ttl);
            let take_a = if tx != ty {
                tx > ty
            } else if self.nodes[y].addr.is_none() || self.nodes[x].addr.is_some() {
                b = self.nodes[y].parent;
                true
            } else {
                a = self.nodes[x].parent;
                false
            };
            let chosen = if take_a { x } else { y };
            match last {
                Some(l) => {
                    self.nodes[l].parent = Some(chosen);
                    self.nodes[l].tag = tag;
                }
                None => head = Some(chosen),
            }
            last = Some(chosen);
            let up = self.nodes[chosen].parent;
            if take_a {
                a = up;
            } else {
                b = up;
            }
        }
        let rest = a.or(b);
        let mut p = match last {
            Some(l) => {
                self.nodes[l].parent = rest;
                Some(l)
            }
            None => {
                head = rest;
                rest
            }
        };
        while let Some(n) = p {
            self.nodes[n].tag = tag;
            p = self.nodes[n].parent;
        }
        head
    }

    /// Records that host `h`'s probe at `ttl` was answered by `from` after `rtt`.
    fn set_host_hop(&mut self, h: usize, ttl: u8, from: Ipv4Addr, rtt: Duration) {
        let Some(&hop) = self.cache.get(&(ttl, from)) else {
            self.insert_hop(h, ttl, Some(from), Some(rtt));
            return;
        };
        self.link_to(h, hop);
        if self.hosts[h].counting_up {
            return;
        }
        // Met a known path going down: the hops below are known, no need to probe them.
        let mut end = hop;
        while let Some(p) = self.nodes[end].parent {
            end = p;
            let t = usize::from(self.nodes[end].ttl);
            if let Some(s) = self.hosts[h].sent_ttls.get_mut(t) {
                *s = true;
            }
        }
        if self.nodes[end].tag != self.hosts[h].target.ip {
            // Another host traced below: this one only goes up from here.
            self.hosts[h].counting_up = true;
            let n = self.cancel_probes_where(h, |t| t < ttl);
            self.outstanding -= n;
        }
    }

    /// Every host's trace, in the order the targets were given. Hops past the host's own
    /// answer are left out.
    pub fn results(&self) -> Vec<TraceResult> {
        self.hosts
            .iter()
            .map(|host| {
                let mut hops = Vec::new();
                let mut p = host.head;
                while let Some(n) = p {
                    let node = &self.nodes[n];
                    if host.reached == 0 || node.ttl <= host.reached {
                        hops.push(TraceHop {
                            ttl: node.ttl,
                            addr: node.addr,
                            rtt: node.rtt,
                            tag: node.tag,
                        });
                    }
                    p = node.parent;
                }
                hops.reverse();
                TraceResult {
                    hops,
                    distance: (host.reached > 0).then_some(host.reached),
                }
            })
            .collect()
    }

    /// The destination of the probe `d` describes, and (when `build`) its packet from `src`
    /// in `buf`. `None`: not one of ours.
    pub fn encode(
        &self,
        d: &Described,
        src: Ipv4Addr,
        buf: &mut Vec<u8>,
        build: bool,
    ) -> Option<IpAddr> {
        let probe = self.probes.get(usize::try_from(d.tag).ok()?)?;
        let target = &self.hosts.get(probe.host)?.target;
        if !build {
            return Some(IpAddr::V4(target.ip));
        }
        let random = mix(self.config.seed ^ (u64::from(probe.token) << 16) ^ u64::from(probe.ttl));
        let ip = Ipv4Params {
            src,
            dst: target.ip,
            ttl: probe.ttl,
            ident: random as u16,
            dont_frag: false,
        };
        let sport = *SOURCE_PORTS.start() + probe.token;
        buf.resize(128 + target.payload.len(), 0);
        let len = match target.probe {
            TraceProbe::IcmpEcho => {
                let echo = icmpv4::Repr::EchoRequest {
                    ident: self.ident,
                    seq_no: probe.token,
                    data: &[],
                };
                build_icmpv4(buf, None, &ip, &echo)
            }
            TraceProbe::TcpSyn { port } | TraceProbe::TcpAck { port } => {
                let syn = matches!(target.probe, TraceProbe::TcpSyn { .. });
                let mss = [TcpOption::MaxSegmentSize(1460)];
                let params = TcpParams {
                    sport,
                    dport: port,
                    seq: (random >> 16) as u32,
                    ack: if syn { 0 } else { (random >> 32) as u32 },
                    flags: if syn { Flags::SYN } else { Flags::ACK },
                    window: 1024,
                    options: if syn { &mss } else { &[] },
                    payload: &[],
                };
                build_tcp_v4(buf, None, &ip, &params)
            }
            TraceProbe::Udp { port } => {
                let params = UdpParams {
                    sport,
                    dport: port,
                    payload: &target.payload,
                };
                build_udp_v4(buf, None, &ip, &params)
            }
        };
        let len = len.ok()?;
        buf.truncate(len);
        Some(IpAddr::V4(target.ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    const SRC: &str = "198.18.0.1";

    /// A routed network: the routers before each host (`None`: one that never answers
    /// with time exceeded), each hop 1 ms further away.
    #[derive(Default)]
    struct Net {
        paths: HashMap<Ipv4Addr, Vec<Option<Ipv4Addr>>>,
        /// Hosts that never answer themselves.
        deaf: Vec<Ipv4Addr>,
    }

    impl Net {
        fn route(mut self, host: &str, routers: &[Option<&str>]) -> Self {
            self.paths
                .insert(ip(host), routers.iter().map(|r| r.map(ip)).collect());
            self
        }

        /// The answer to `probe` and how long it takes, if any.
        fn answer(&self, probe: &[u8]) -> Option<(Duration, Vec<u8>)> {
            let p = ipv4::Packet::new_checked(probe).unwrap();
            let (dst, ttl) = (p.dst_addr(), p.ttl());
            let path = self.paths.get(&dst)?;
            let mut buf = vec![0u8; 256];
            let hops = usize::from(ttl).min(path.len() + 1);
            let rtt = Duration::from_millis(hops as u64);
            if usize::from(ttl) <= path.len() {
                let router = path[usize::from(ttl) - 1]?;
                let params = Ipv4Params {
                    src: router,
                    dst: ip(SRC),
                    ttl: 64 - ttl + 1,
                    ident: 0,
                    dont_frag: false,
                };
                let quote = &probe[..28.min(probe.len())];
                let te = icmpv4::Repr::TimeExceeded {
                    code: 0,
                    inner: quote,
                };
                let n = build_icmpv4(&mut buf, None, &params, &te).unwrap();
                buf.truncate(n);
                return Some((rtt, buf));
            }
            if self.deaf.contains(&dst) {
                return None;
            }
            let params = Ipv4Params {
                src: dst,
                dst: ip(SRC),
                ttl: 64 - path.len() as u8,
                ident: 0,
                dont_frag: false,
            };
            let n = match p.protocol() {
                IpProtocol::ICMP => {
                    let i = icmpv4::Packet::new_checked(p.payload()).unwrap();
                    let echo = icmpv4::Repr::EchoReply {
                        ident: i.echo_ident(),
                        seq_no: i.echo_seq_no(),
                        data: &[],
                    };
                    build_icmpv4(&mut buf, None, &params, &echo)
                }
                IpProtocol::TCP => {
                    let t = tcp::Packet::new_checked(p.payload()).unwrap();
                    let rst = TcpParams {
                        sport: t.dst_port(),
                        dport: t.src_port(),
                        seq: 0,
                        ack: t.seq_number().wrapping_add(1),
                        flags: Flags::RST | Flags::ACK,
                        window: 0,
                        options: &[],
                        payload: &[],
                    };
                    build_tcp_v4(&mut buf, None, &params, &rst)
                }
                _ => {
                    let unreach = icmpv4::Repr::DstUnreachable {
                        code: 3,
                        next_hop_mtu: 0,
                        inner: probe,
                    };
                    build_icmpv4(&mut buf, None, &params, &unreach)
                }
            }
            .unwrap();
            buf.truncate(n);
            Some((rtt, buf))
        }
    }

    /// Runs `tracer` over `net` on a fake clock; returns every probe sent (host, TTL).
    fn run(tracer: &mut Tracer, net: &Net) -> Vec<(Ipv4Addr, u8)> {
        let mut now = Instant::now();
        let mut pending: Vec<(Instant, Vec<u8>)> = Vec::new();
        let mut sent = Vec::new();
        for _ in 0..100_000 {
            pending.sort_by_key(|p| p.0);
            while pending.first().is_some_and(|p| p.0 <= now) {
                let (_, packet) = pending.remove(0);
                tracer.on_packet(now, &packet);
            }
            let next_answer = pending.first().map(|p| p.0);
            match tracer.poll(now) {
                Poll::Send(d) => {
                    let mut buf = Vec::new();
                    let dst = tracer.encode(&d, ip(SRC), &mut buf, true).unwrap();
                    let p = ipv4::Packet::new_checked(&buf[..]).unwrap();
                    assert_eq!(IpAddr::V4(p.dst_addr()), dst);
                    assert_eq!(d.n, Some(u32::from(p.ttl())));
                    sent.push((p.dst_addr(), p.ttl()));
                    if let Some((rtt, answer)) = net.answer(&buf) {
                        pending.push((now + rtt, answer));
                    }
                }
                Poll::WaitUntil(t) => now = next_answer.map_or(t, |a| a.min(t)).max(now),
                Poll::WaitForInput => now = next_answer.expect("waits for nothing"),
                Poll::Done => return sent,
            }
        }
        panic!("the trace never ended");
    }

    fn target(host: &str, probe: TraceProbe) -> TraceTarget {
        TraceTarget {
            ip: ip(host),
            probe,
            payload: Vec::new(),
            distance: None,
        }
    }

    fn addrs(r: &TraceResult) -> Vec<(u8, Option<Ipv4Addr>)> {
        r.hops.iter().map(|h| (h.ttl, h.addr)).collect()
    }

    #[test]
    fn hops_up_to_the_host_with_a_silent_router() {
        let net = Net::default().route(
            "198.18.2.10",
            &[Some("198.18.1.1"), None, Some("198.18.3.1")],
        );
        for probe in [
            TraceProbe::IcmpEcho,
            TraceProbe::TcpSyn { port: 80 },
            TraceProbe::TcpAck { port: 80 },
            TraceProbe::Udp { port: 33434 },
        ] {
            let mut t = Tracer::new(TraceConfig::default(), vec![target("198.18.2.10", probe)]);
            let sent = run(&mut t, &net);
            let r = &t.results()[0];
            assert_eq!(
                addrs(r),
                vec![
                    (1, Some(ip("198.18.1.1"))),
                    (2, None),
                    (3, Some(ip("198.18.3.1"))),
                    (4, Some(ip("198.18.2.10"))),
                ],
                "{probe:?}"
            );
            assert_eq!(r.distance, Some(4));
            // The silent hop was asked three times; hops that answered, once.
            assert_eq!(sent.iter().filter(|s| s.1 == 2).count(), 3);
            assert_eq!(sent.iter().filter(|s| s.1 == 1).count(), 1);
            assert_eq!(r.hops[0].rtt, Some(Duration::from_millis(1)));
            assert!(r.hops.iter().all(|h| h.tag == ip("198.18.2.10")));
        }
    }

    #[test]
    fn a_host_behind_a_traced_path_takes_its_hops() {
        let path = [Some("198.18.1.1"), None, Some("198.18.3.1")];
        let net = Net::default()
            .route("198.18.2.10", &path)
            .route("198.18.2.11", &path);
        // One probe at a time: the first host's hop at TTL 3 is known before the second
        // host's probe at TTL 3 is answered.
        let config = TraceConfig {
            max_outstanding: 1,
            ..TraceConfig::default()
        };
        let mut t = Tracer::new(
            config,
            vec![
                target("198.18.2.10", TraceProbe::IcmpEcho),
                target("198.18.2.11", TraceProbe::TcpSyn { port: 22 }),
            ],
        );
        let sent = run(&mut t, &net);
        let r = t.results();
        let path = [
            (1, Some(ip("198.18.1.1"))),
            (2, None),
            (3, Some(ip("198.18.3.1"))),
        ];
        assert_eq!(addrs(&r[0])[..3], path);
        assert_eq!(addrs(&r[1])[..3], path);
        assert_eq!(addrs(&r[0])[3..], [(4, Some(ip("198.18.2.10")))]);
        assert_eq!(addrs(&r[1])[3..], [(4, Some(ip("198.18.2.11")))]);
        // The second host's hops below its own are the first host's...
        assert!(r[1].hops[..3].iter().all(|h| h.tag == ip("198.18.2.10")));
        assert_eq!(r[1].hops[3].tag, ip("198.18.2.11"));
        // ...and were not probed for it.
        let second: Vec<u8> = sent
            .iter()
            .filter(|s| s.0 == ip("198.18.2.11"))
            .map(|s| s.1)
            .collect();
        assert_eq!(second, [10, 4, 3]);
        // Shared hops are the same hops: same round trips.
        assert_eq!(r[0].hops[..3], r[1].hops[..3]);
    }

    #[test]
    fn a_silent_host_is_probed_to_ttl_30_with_retries() {
        let mut net = Net::default().route("198.18.2.20", &[Some("198.18.1.1")]);
        net.deaf.push(ip("198.18.2.20"));
        for resends in [0, 2] {
            let config = TraceConfig {
                max_resends: resends,
                ..TraceConfig::default()
            };
            let mut t = Tracer::new(config, vec![target("198.18.2.20", TraceProbe::IcmpEcho)]);
            let sent = run(&mut t, &net);
            let r = &t.results()[0];
            assert_eq!(r.distance, None);
            assert_eq!(r.hops.len(), usize::from(MAX_TTL));
            assert_eq!(r.hops[0].addr, Some(ip("198.18.1.1")));
            assert!(r.hops[1..].iter().all(|h| h.addr.is_none()));
            for ttl in 2..=MAX_TTL {
                let n = sent.iter().filter(|s| s.1 == ttl).count();
                assert_eq!(n as u32, resends + 1, "ttl {ttl}");
            }
        }
    }

    #[test]
    fn a_known_distance_starts_the_walk_there() {
        let net = Net::default().route("198.18.2.10", &[Some("198.18.1.1")]);
        let mut t = Tracer::new(
            TraceConfig::default(),
            vec![TraceTarget {
                distance: Some(2),
                ..target("198.18.2.10", TraceProbe::IcmpEcho)
            }],
        );
        let sent = run(&mut t, &net);
        assert_eq!(sent[..2], [(ip("198.18.2.10"), 2), (ip("198.18.2.10"), 1)]);
        let r = &t.results()[0];
        assert_eq!(r.distance, Some(2));
        assert_eq!(
            addrs(r),
            [(1, Some(ip("198.18.1.1"))), (2, Some(ip("198.18.2.10")))]
        );
    }

    #[test]
    fn foreign_and_truncated_answers_are_ignored() {
        let mut t = Tracer::new(
            TraceConfig::default(),
            vec![target("198.18.2.10", TraceProbe::TcpSyn { port: 80 })],
        );
        let now = Instant::now();
        let Poll::Send(d) = t.poll(now) else {
            panic!("no probe")
        };
        let mut probe = Vec::new();
        t.encode(&d, ip(SRC), &mut probe, true).unwrap();
        let params = Ipv4Params {
            src: ip("198.18.1.1"),
            dst: ip(SRC),
            ttl: 64,
            ident: 0,
            dont_frag: false,
        };
        let mut buf = vec![0u8; 256];
        // A quote cut inside the IP header, then one without the ports, then garbage.
        for cut in [10, 20, 21] {
            let te = icmpv4::Repr::TimeExceeded {
                code: 0,
                inner: &probe[..cut],
            };
            let n = build_icmpv4(&mut buf, None, &params, &te).unwrap();
            t.on_packet(now, &buf[..n]);
            assert!(t.cache.is_empty(), "cut {cut}");
        }
        for n in 0..buf.len() {
            t.on_packet(now, &buf[..n]);
        }
        // A quote of someone else's TCP probe (a source port outside ours).
        let mut other = probe.clone();
        other[20] = 0x01;
        let te = icmpv4::Repr::TimeExceeded {
            code: 0,
            inner: &other[..28],
        };
        let n = build_icmpv4(&mut buf, None, &params, &te).unwrap();
        t.on_packet(now, &buf[..n]);
        assert!(t.cache.is_empty());
        // Ours is taken.
        let te = icmpv4::Repr::TimeExceeded {
            code: 0,
            inner: &probe[..28],
        };
        let n = build_icmpv4(&mut buf, None, &params, &te).unwrap();
        t.on_packet(now, &buf[..n]);
        assert_eq!(t.cache.len(), 1);
    }
}
