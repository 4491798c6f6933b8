//! Host discovery by ICMP echo (-PE) over IPv4: a sans-I/O core tested on a fake clock,
//! and a driver over the raw backend.
//!
//! Each request's identifier and sequence number are a keyed cookie of (source,
//! destination), so a reply is validated without per-probe state. A host is up at its
//! first valid echo reply; a silent host is asked again after the RTT timeout, up to the
//! tries allowed.

use crate::raw::{source_for, RawError, RawReceiver, RawSender, Received};
use crate::timing::{RttEstimator, Timing};
use portolan_wire::build::{build_icmp_echo_v4, Ipv4Params};
use portolan_wire::cookie::CookieKey;
use portolan_wire::{icmpv4, ipv4, IpProtocol};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One echo request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoProbe {
    pub dst: Ipv4Addr,
    pub ident: u16,
    pub seq: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EchoPoll {
    Send(EchoProbe),
    WaitUntil(Instant),
    Done,
}

/// A host that answered: round trip and the reply's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    pub rtt: Duration,
    pub ttl: u8,
}

/// Requests per second, so a large sweep does not flood the path.
const RATE: f64 = 2_000.0;

pub struct EchoPing {
    src: Ipv4Addr,
    hosts: Vec<Ipv4Addr>,
    index: HashMap<Ipv4Addr, usize>,
    key: CookieKey,
    tries: u32,
    rtt: RttEstimator,
    sent: Vec<u32>,
    last: Vec<Option<Instant>>,
    replies: Vec<Option<EchoReply>>,
    next_send: Option<Instant>,
}

impl EchoPing {
    pub fn new(timing: &Timing, src: Ipv4Addr, hosts: Vec<Ipv4Addr>, key: CookieKey) -> Self {
        let n = hosts.len();
        EchoPing {
            src,
            index: hosts.iter().enumerate().map(|(i, &h)| (h, i)).collect(),
            hosts,
            key,
            // Nmap's ping retries a silent host once.
            tries: timing.max_retries.min(1) + 1,
            rtt: RttEstimator::new(timing),
            sent: vec![0; n],
            last: vec![None; n],
            replies: vec![None; n],
            next_send: None,
        }
    }

    fn cookie(&self, dst: Ipv4Addr) -> (u16, u16) {
        let c = self.key.cookie(IpAddr::V4(self.src), 0, IpAddr::V4(dst), 0);
        ((c >> 16) as u16, c as u16)
    }

    pub fn poll(&mut self, now: Instant) -> EchoPoll {
        let timeout = self.rtt.timeout();
        let mut earliest: Option<Instant> = None;
        for i in 0..self.hosts.len() {
            if self.replies[i].is_some() {
                continue;
            }
            let due = self.last[i].map_or(now, |t| t + timeout);
            if self.sent[i] >= self.tries {
                // Still waiting for the last try's answer?
                if due > now {
                    earliest = Some(earliest.map_or(due, |e: Instant| e.min(due)));
                }
                continue;
            }
            if due > now {
                earliest = Some(earliest.map_or(due, |e: Instant| e.min(due)));
                continue;
            }
            if let Some(at) = self.next_send.filter(|&t| t > now) {
                return EchoPoll::WaitUntil(at);
            }
            self.sent[i] += 1;
            self.last[i] = Some(now);
            self.next_send = Some(now + Duration::from_secs_f64(1.0 / RATE));
            let dst = self.hosts[i];
            let (ident, seq) = self.cookie(dst);
            return EchoPoll::Send(EchoProbe { dst, ident, seq });
        }
        match earliest {
            Some(t) => EchoPoll::WaitUntil(t),
            None => EchoPoll::Done,
        }
    }

    /// Digests one received IPv4 packet.
    pub fn on_packet(&mut self, now: Instant, packet: &[u8]) {
        let Ok(ip) = ipv4::Packet::new_checked(packet) else {
            return;
        };
        if ip.dst_addr() != self.src || ip.protocol() != IpProtocol::ICMP {
            return;
        }
        let Ok(icmp) = icmpv4::Packet::new_checked(ip.payload()) else {
            return;
        };
        if icmp.msg_type() != icmpv4::Message::ECHO_REPLY {
            return;
        }
        let from = ip.src_addr();
        let Some(&i) = self.index.get(&from) else {
            return;
        };
        if (icmp.echo_ident(), icmp.echo_seq_no()) != self.cookie(from) {
            return;
        }
        if self.replies[i].is_none() {
            let rtt = self.last[i].map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            self.rtt.sample(rtt);
            self.replies[i] = Some(EchoReply { rtt, ttl: ip.ttl() });
        }
    }

    /// Per host, in the order given: its reply, if any.
    pub fn replies(&self) -> &[Option<EchoReply>] {
        &self.replies
    }
}

/// Pings `hosts` by ICMP echo over raw sockets; results in the order given.
pub fn run_echo_ping(
    hosts: &[Ipv4Addr],
    timing: &Timing,
    cancel: &AtomicBool,
) -> Result<Vec<Option<EchoReply>>, RawError> {
    let mut groups: BTreeMap<Ipv4Addr, Vec<usize>> = BTreeMap::new();
    for (i, &h) in hosts.iter().enumerate() {
        groups.entry(source_for(h)?).or_default().push(i);
    }
    let mut out = vec![None; hosts.len()];
    let mut sender = RawSender::new()?;
    let mut received: Vec<Received> = Vec::with_capacity(64);
    for (src, idx) in groups {
        let key = CookieKey::random().map_err(|e| RawError::Io {
            call: "getrandom",
            error: std::io::Error::other(e.to_string()),
        })?;
        let mut receiver = RawReceiver::new(&[src])?;
        let targets: Vec<Ipv4Addr> = idx.iter().map(|&i| hosts[i]).collect();
        let mut ping = EchoPing::new(timing, src, targets, key);
        let mut buf = [0u8; 64];
        loop {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            received.clear();
            receiver.recv_batch(&mut received, 64)?;
            for r in &received {
                ping.on_packet(r.at, &r.data);
            }
            match ping.poll(Instant::now()) {
                EchoPoll::Send(p) => {
                    let ip = Ipv4Params {
                        src,
                        dst: p.dst,
                        ttl: 64,
                        ident: p.seq,
                        dont_frag: false,
                    };
                    if let Ok(len) = build_icmp_echo_v4(&mut buf, None, &ip, p.ident, p.seq, &[]) {
                        match sender.send_batch(&[(p.dst, &buf[..len])]) {
                            Ok(_) | Err(RawError::NoRoute(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                EchoPoll::WaitUntil(t) => {
                    let d = t.saturating_duration_since(Instant::now());
                    receiver.wait_readable(d.min(Duration::from_millis(5)))?;
                }
                EchoPoll::Done => break,
            }
        }
        for (k, &i) in idx.iter().enumerate() {
            out[i] = ping.replies()[k];
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::Template;
    use portolan_wire::build::build_icmpv4;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    fn reply(p: &EchoProbe, ident: u16) -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        let ip = Ipv4Params {
            src: p.dst,
            dst: SRC,
            ttl: 61,
            ident: 0,
            dont_frag: false,
        };
        let echo = icmpv4::Repr::EchoReply {
            ident,
            seq_no: p.seq,
            data: &[],
        };
        let len = build_icmpv4(&mut buf, None, &ip, &echo).unwrap();
        buf.truncate(len);
        buf
    }

    /// Runs the ping against hosts that answer (`up`) after 1 ms; returns the replies and
    /// how many requests went out.
    fn run(up: &[bool], forge: bool) -> (Vec<Option<EchoReply>>, usize) {
        let hosts: Vec<Ipv4Addr> = (0..up.len())
            .map(|i| Ipv4Addr::new(198, 18, 1, i as u8))
            .collect();
        let mut ping = EchoPing::new(
            &Template::Aggressive.timing(),
            SRC,
            hosts.clone(),
            CookieKey::from_seed([9; 16]),
        );
        let mut now = Instant::now();
        let mut pending: Vec<(Instant, Vec<u8>)> = Vec::new();
        let mut sent = 0;
        for _ in 0..100_000 {
            pending.sort_by_key(|p| std::cmp::Reverse(p.0));
            while pending.last().is_some_and(|p| p.0 <= now) {
                let (_, pkt) = pending.pop().unwrap();
                ping.on_packet(now, &pkt);
            }
            match ping.poll(now) {
                EchoPoll::Send(p) => {
                    sent += 1;
                    let i = hosts.iter().position(|&h| h == p.dst).unwrap();
                    if up[i] {
                        let ident = if forge { p.ident ^ 1 } else { p.ident };
                        pending.push((now + Duration::from_millis(1), reply(&p, ident)));
                    }
                }
                EchoPoll::WaitUntil(t) => {
                    now = pending
                        .iter()
                        .map(|p| p.0)
                        .min()
                        .map_or(t, |a| a.min(t))
                        .max(now);
                }
                EchoPoll::Done => break,
            }
        }
        (ping.replies().to_vec(), sent)
    }

    #[test]
    fn answering_hosts_are_up_silent_ones_asked_twice() {
        let (r, sent) = run(&[true, false, true], false);
        assert!(r[0].is_some() && r[2].is_some());
        assert!(r[1].is_none());
        assert_eq!(r[0].unwrap().ttl, 61);
        assert!(r[0].unwrap().rtt >= Duration::from_millis(1));
        // One request each to the answering hosts, two to the silent one.
        assert_eq!(sent, 4);
    }

    #[test]
    fn forged_replies_are_ignored() {
        let (r, _) = run(&[true], true);
        assert!(r[0].is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let mut ping = EchoPing::new(
            &Template::Aggressive.timing(),
            SRC,
            vec![Ipv4Addr::new(198, 18, 1, 1)],
            CookieKey::from_seed([1; 16]),
        );
        let now = Instant::now();
        for len in 0..64 {
            let mut pkt: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            if len > 20 {
                pkt[0] = 0x45;
                pkt[9] = 1;
            }
            ping.on_packet(now, &pkt);
        }
        assert!(ping.replies()[0].is_none());
    }
}
