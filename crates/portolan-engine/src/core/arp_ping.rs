//! Host discovery by ARP (-PR) on directly attached Ethernet links: a sans-I/O core tested on
//! a fake clock, and a blocking driver over [`crate::io::link`].
//!
//! As in Nmap, a host is up at its first ARP reply (operation 2) whose sender protocol
//! address is the host and whose target addresses are ours (IP and MAC); requests, even
//! from a target, do not count. A silent host is asked again after the RTT timeout, a few
//! times at most. Requests are paced by a token bucket honouring `--max-rate`/`--min-rate`.

use crate::core::link_ping::{LinkPing, LinkReply, LinkSchedule};
pub use crate::core::link_ping::{DEFAULT_RATE, MAX_TRIES};
use crate::core::Poll;
use crate::plan::timing::Timing;
use portolan_wire::arp;
use portolan_wire::build::build_arp_request;
use portolan_wire::ethernet::{self, EtherType, MacAddr};
use std::net::Ipv4Addr;
use std::time::Instant;

/// One ARP request to send (broadcast, asking who has `dst_ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpProbe {
    pub dst_ip: Ipv4Addr,
}

pub type ArpPoll = Poll<ArpProbe>;

/// A host that answered: its MAC (the ARP sender hardware address) and the round trip.
pub type ArpReply = LinkReply;

pub struct ArpPing {
    src_ip: Ipv4Addr,
    src_mac: MacAddr,
    schedule: LinkSchedule<Ipv4Addr>,
}

impl ArpPing {
    pub fn new(timing: &Timing, src_ip: Ipv4Addr, src_mac: MacAddr, hosts: Vec<Ipv4Addr>) -> Self {
        ArpPing {
            src_ip,
            src_mac,
            schedule: LinkSchedule::new(timing, hosts),
        }
    }

    /// The request rate in force (requests per second).
    pub fn rate(&self) -> f64 {
        self.schedule.rate()
    }

    /// What to do next at `now`: send a request, wait, or stop (every host answered or
    /// ran out of tries).
    pub fn poll(&mut self, now: Instant) -> ArpPoll {
        self.schedule.poll(now).map(|dst_ip| ArpProbe { dst_ip })
    }

    /// Digests one received Ethernet frame. Anything but an ARP reply from a target we
    /// asked, addressed to our IP and MAC, is ignored; so is a second reply.
    pub fn on_frame(&mut self, now: Instant, frame: &[u8]) {
        let Ok(eth) = ethernet::Packet::new_checked(frame) else {
            return;
        };
        if eth.payload_ethertype() != EtherType::ARP {
            return;
        }
        let Ok(packet) = arp::Packet::new_checked(eth.payload()) else {
            return;
        };
        let Ok(repr) = arp::Repr::parse(&packet) else {
            return;
        };
        if repr.operation != arp::Operation::REPLY
            || repr.target_protocol_addr != self.src_ip
            || repr.target_hardware_addr != self.src_mac
        {
            return;
        }
        self.schedule
            .answer(now, repr.source_protocol_addr, repr.source_hardware_addr);
    }

    /// Per host, in the order given: its reply, if any (a host listed twice is answered
    /// at its first position).
    pub fn replies(&self) -> &[Option<ArpReply>] {
        self.schedule.replies()
    }

    /// How many requests went to each host, in the order given.
    pub fn requests_sent(&self) -> &[u32] {
        self.schedule.requests_sent()
    }
}

impl LinkPing for ArpPing {
    type Probe = ArpProbe;
    fn poll(&mut self, now: Instant) -> ArpPoll {
        ArpPing::poll(self, now)
    }
    fn on_frame(&mut self, now: Instant, frame: &[u8]) {
        ArpPing::on_frame(self, now, frame)
    }
    fn build(&self, probe: ArpProbe, buf: &mut [u8]) -> portolan_wire::Result<usize> {
        build_arp_request(buf, self.src_mac, self.src_ip, probe.dst_ip)
    }
    fn target(probe: Self::Probe) -> std::net::IpAddr {
        std::net::IpAddr::V4(probe.dst_ip)
    }
    fn replies(&self) -> &[Option<LinkReply>] {
        ArpPing::replies(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::link_ping::tests::{simulate, Host, Outcome};
    use crate::plan::timing::Template;
    use std::time::Duration;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const SRC_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    fn host(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 1, i as u8)
    }

    fn mac_of(i: usize) -> MacAddr {
        MacAddr([0x02, 0xaa, 0, 0, 0, i as u8])
    }

    /// An ARP frame from host `from` (at `mac`) with the given operation and targets.
    fn frame(
        op: arp::Operation,
        from: Ipv4Addr,
        mac: MacAddr,
        tpa: Ipv4Addr,
        tha: MacAddr,
    ) -> Vec<u8> {
        let mut f = vec![0u8; 60]; // padded to the minimum frame size, as on the wire
        let eth = ethernet::Repr {
            src_addr: mac,
            dst_addr: tha,
            ethertype: EtherType::ARP,
            vlan_tci: None,
        };
        eth.emit(&mut ethernet::Packet::new_unchecked(&mut f[..]))
            .unwrap();
        let a = arp::Repr {
            operation: op,
            source_hardware_addr: mac,
            source_protocol_addr: from,
            target_hardware_addr: tha,
            target_protocol_addr: tpa,
        };
        a.emit(&mut arp::Packet::new_unchecked(&mut f[14..]))
            .unwrap();
        f
    }

    fn reply_from(i: usize) -> Vec<u8> {
        frame(arp::Operation::REPLY, host(i), mac_of(i), SRC, SRC_MAC)
    }

    /// Runs the engine on a fake clock against simulated hosts answering from `mac_of(i)`.
    fn run_with(timing: &Timing, hosts: &[Host], extra: &[Vec<u8>]) -> Outcome {
        let targets: Vec<Ipv4Addr> = (0..hosts.len()).map(host).collect();
        let ping = ArpPing::new(timing, SRC, SRC_MAC, targets.clone());
        let host_of = |p: ArpProbe| targets.iter().position(|&h| h == p.dst_ip).unwrap();
        simulate(ping, hosts, host_of, reply_from, extra)
    }

    fn t4() -> Timing {
        Template::Aggressive.timing()
    }

    #[test]
    fn answering_hosts_are_up_with_their_mac_silent_ones_tried_three_times() {
        let o = run_with(&t4(), &[Host::Up, Host::Silent, Host::Up], &[]);
        let r0 = o.replies[0].expect("host 0 up");
        assert_eq!(r0.mac, mac_of(0));
        assert_eq!(r0.rtt, Duration::from_millis(1));
        assert_eq!(o.replies[2].unwrap().mac, mac_of(2));
        assert_eq!(o.replies[1], None);
        assert_eq!(o.sent, [1, MAX_TRIES, 1]);
    }

    #[test]
    fn max_retries_bounds_the_tries() {
        let mut t = t4();
        t.max_retries = 0;
        assert_eq!(run_with(&t, &[Host::Silent], &[]).sent, [1]);
        t.max_retries = 1;
        assert_eq!(run_with(&t, &[Host::Silent], &[]).sent, [2]);
        t.max_retries = 50;
        assert_eq!(run_with(&t, &[Host::Silent], &[]).sent, [MAX_TRIES]);
    }

    #[test]
    fn lost_replies_are_recovered_by_retransmission() {
        let o = run_with(
            &t4(),
            &[Host::UpFromTry(2), Host::UpFromTry(3), Host::UpFromTry(4)],
            &[],
        );
        assert_eq!(o.sent, [2, 3, 3]);
        assert!(o.replies[0].is_some() && o.replies[1].is_some());
        assert_eq!(o.replies[2], None);
        // RTT is measured from the request that drew the reply.
        assert_eq!(o.replies[0].unwrap().rtt, Duration::from_millis(1));
    }

    #[test]
    fn retries_wait_for_the_timeout() {
        let t = t4();
        let o = run_with(&t, &[Host::Silent], &[]);
        assert_eq!(o.send_times.len(), 3);
        for w in o.send_times.windows(2) {
            assert_eq!(w[1] - w[0], t.initial_rtt_timeout);
        }
        // Done one more timeout after the last try.
        assert_eq!(o.end - o.start, t.initial_rtt_timeout * 3);
    }

    #[test]
    fn duplicate_replies_keep_the_first() {
        let o = run_with(&t4(), &[Host::Duplicates, Host::Up], &[]);
        assert_eq!(o.sent, [1, 1]);
        assert_eq!(o.replies[0].unwrap().rtt, Duration::from_millis(1));
        assert_eq!(o.replies[0].unwrap().mac, mac_of(0));
    }

    #[test]
    fn frames_for_others_requests_and_garbage_are_ignored() {
        let other_ip = Ipv4Addr::new(198, 18, 0, 99);
        let other_mac = MacAddr([2, 0, 0, 0, 0, 0x99]);
        let stranger = Ipv4Addr::new(198, 18, 7, 7);
        let mut bad = vec![
            // A reply to another IP / another MAC.
            frame(arp::Operation::REPLY, host(0), mac_of(0), other_ip, SRC_MAC),
            frame(arp::Operation::REPLY, host(0), mac_of(0), SRC, other_mac),
            // A request from a target (Nmap counts only replies).
            frame(
                arp::Operation::REQUEST,
                host(0),
                mac_of(0),
                SRC,
                MacAddr::ZERO,
            ),
            // A reply from an address we never asked.
            frame(arp::Operation::REPLY, stranger, mac_of(9), SRC, SRC_MAC),
            // A reply claiming a multicast MAC.
            frame(
                arp::Operation::REPLY,
                host(0),
                MacAddr::BROADCAST,
                SRC,
                SRC_MAC,
            ),
            vec![],
            vec![0xff; 13],
        ];
        // An IPv4 frame carrying the reply's bytes.
        let mut ipv4 = reply_from(0);
        ipv4[12..14].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
        bad.push(ipv4);
        // A reply cut short at every length.
        let full = reply_from(0);
        for len in 0..42 {
            bad.push(full[..len].to_vec());
        }
        // Sent before any request: a stale (unsolicited) reply.
        bad.push(reply_from(0));
        let o = run_with(&t4(), &[Host::Silent], &bad);
        assert_eq!(o.replies, [None]);
        assert_eq!(o.sent, [MAX_TRIES]);
    }

    #[test]
    fn max_rate_paces_requests() {
        let mut t = t4();
        t.max_rate = Some(100.0);
        let o = run_with(&t, &vec![Host::Up; 50], &[]);
        assert!(o.replies.iter().all(Option::is_some));
        let span = *o.send_times.last().unwrap() - o.send_times[0];
        // 50 requests at 100/s: about 0.49 s (the first goes out at once).
        assert!(span >= Duration::from_millis(480), "{span:?}");
        assert!(span <= Duration::from_millis(500), "{span:?}");
    }

    #[test]
    fn min_rate_raises_the_default_and_max_rate_wins() {
        let mut t = t4();
        t.min_rate = Some(10_000.0);
        assert_eq!(ArpPing::new(&t, SRC, SRC_MAC, vec![]).rate(), 10_000.0);
        t.max_rate = Some(50.0);
        assert_eq!(ArpPing::new(&t, SRC, SRC_MAC, vec![]).rate(), 50.0);
        assert_eq!(
            ArpPing::new(&t4(), SRC, SRC_MAC, vec![]).rate(),
            DEFAULT_RATE
        );
    }

    #[test]
    fn no_hosts_is_done_at_once_and_duplicates_are_asked_once() {
        let mut p = ArpPing::new(&t4(), SRC, SRC_MAC, vec![]);
        assert_eq!(p.poll(Instant::now()), ArpPoll::Done);
        let mut p = ArpPing::new(&t4(), SRC, SRC_MAC, vec![host(1), host(1)]);
        let now = Instant::now();
        assert_eq!(p.poll(now), ArpPoll::Send(ArpProbe { dst_ip: host(1) }));
        p.on_frame(now, &reply_from(1));
        assert_eq!(p.poll(now), ArpPoll::Done);
        assert_eq!(p.requests_sent(), [1, 0]);
        assert!(p.replies()[0].is_some() && p.replies()[1].is_none());
    }
}
