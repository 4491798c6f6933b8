//! Host discovery by IPv6 neighbour discovery on directly attached Ethernet links (Nmap's
//! "nd-response", the IPv6 twin of ARP ping): a sans-I/O core tested on a fake clock, and a
//! blocking driver over [`crate::io::link`].
//!
//! Each host gets a neighbour solicitation (RFC 4861 section 7.2.2) sent to its
//! solicited-node multicast group, from our address on the link, with our MAC in a source
//! link-layer address option. A host is up at its first neighbour advertisement that
//! - arrives with hop limit 255 (so it was not routed), ICMPv6 code 0 and a good checksum,
//!   as RFC 4861 section 7.1.2 requires of a valid advertisement;
//! - is addressed to us (our IPv6 address and our MAC: a solicited advertisement is
//!   unicast back to the soliciting address);
//! - has the Solicited flag set (an unsolicited announcement, or one for an address we did
//!   not ask about, does not count) and names a target we asked about.
//!
//! Its MAC is the Target Link-Layer Address option's, or the frame's Ethernet source when
//! the option is absent (allowed for solicited advertisements on unicast). Retransmission
//! and pacing are [`crate::core::link_ping`]'s, exactly as for ARP.

use crate::core::link_ping::{LinkPing, LinkReply, LinkSchedule};
pub use crate::core::link_ping::{DEFAULT_RATE, MAX_TRIES};
use crate::core::Poll;
use crate::plan::timing::Timing;
use portolan_wire::build::build_neighbor_solicit;
use portolan_wire::ethernet::{self, EtherType, MacAddr};
use portolan_wire::icmpv6::{self, NeighborFlags};
use portolan_wire::{ipv6, ChecksumMode, IpProtocol};
use std::net::Ipv6Addr;
use std::time::Instant;

/// One neighbour solicitation to send (to the solicited-node group of `dst_ip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdProbe {
    pub dst_ip: Ipv6Addr,
}

pub type NdPoll = Poll<NdProbe>;

/// A host that answered: its MAC (from the advertisement) and the round trip.
pub type NdReply = LinkReply;

pub struct NdPing {
    src_ip: Ipv6Addr,
    src_mac: MacAddr,
    schedule: LinkSchedule<Ipv6Addr>,
}

impl NdPing {
    /// A ping of `hosts` from `src_ip` (our address on their link) and `src_mac`.
    pub fn new(timing: &Timing, src_ip: Ipv6Addr, src_mac: MacAddr, hosts: Vec<Ipv6Addr>) -> Self {
        NdPing {
            src_ip,
            src_mac,
            schedule: LinkSchedule::new(timing, hosts),
        }
    }

    /// The solicitation rate in force (per second).
    pub fn rate(&self) -> f64 {
        self.schedule.rate()
    }

    /// What to do next at `now`: send a solicitation, wait, or stop (every host answered or
    /// ran out of tries).
    pub fn poll(&mut self, now: Instant) -> NdPoll {
        self.schedule.poll(now).map(|dst_ip| NdProbe { dst_ip })
    }

    /// Digests one received Ethernet frame: see the module documentation for what counts.
    /// Anything else is ignored, and so is a second advertisement for the same target.
    pub fn on_frame(&mut self, now: Instant, frame: &[u8]) {
        if let Some((target, mac)) = self.solicited_advert(frame) {
            self.schedule.answer(now, target, mac);
        }
    }

    /// The target and MAC of a valid solicited advertisement addressed to us.
    fn solicited_advert(&self, frame: &[u8]) -> Option<(Ipv6Addr, MacAddr)> {
        let eth = ethernet::Packet::new_checked(frame).ok()?;
        if eth.payload_ethertype() != EtherType::IPV6 || eth.dst_addr() != self.src_mac {
            return None;
        }
        let packet = ipv6::Packet::new_checked(eth.payload()).ok()?;
        let ip = ipv6::Repr::parse(&packet).ok()?;
        if ip.next_header != IpProtocol::ICMPV6 || ip.hop_limit != 255 || ip.dst_addr != self.src_ip
        {
            return None;
        }
        let icmp = icmpv6::Packet::new_checked(packet.payload()).ok()?;
        if icmp.msg_code() != 0 {
            return None;
        }
        let repr =
            icmpv6::Repr::parse(&icmp, &ip.src_addr, &ip.dst_addr, ChecksumMode::Verify).ok()?;
        let icmpv6::Repr::NeighborAdvert {
            flags,
            target_addr,
            target_lladdr,
        } = repr
        else {
            return None;
        };
        if !flags.contains(NeighborFlags::SOLICITED) {
            return None;
        }
        Some((target_addr, target_lladdr.unwrap_or(eth.src_addr())))
    }

    /// Per host, in the order given: its reply, if any (a host listed twice is answered
    /// at its first position).
    pub fn replies(&self) -> &[Option<NdReply>] {
        self.schedule.replies()
    }

    /// How many solicitations went to each host, in the order given.
    pub fn requests_sent(&self) -> &[u32] {
        self.schedule.requests_sent()
    }
}

impl LinkPing for NdPing {
    type Probe = NdProbe;
    fn poll(&mut self, now: Instant) -> NdPoll {
        NdPing::poll(self, now)
    }
    fn on_frame(&mut self, now: Instant, frame: &[u8]) {
        NdPing::on_frame(self, now, frame)
    }
    fn build(&self, probe: NdProbe, buf: &mut [u8]) -> portolan_wire::Result<usize> {
        build_neighbor_solicit(buf, self.src_mac, self.src_ip, probe.dst_ip)
    }
    fn target(probe: Self::Probe) -> std::net::IpAddr {
        std::net::IpAddr::V6(probe.dst_ip)
    }
    fn replies(&self) -> &[Option<LinkReply>] {
        NdPing::replies(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::link_ping::tests::{simulate, Host, Outcome};
    use crate::plan::timing::Template;
    use portolan_wire::build::{build_icmpv6, EthernetParams, Ipv6Params};
    use std::time::Duration;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0, 1);
    const SRC_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

    fn host(i: usize) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0x1, i as u16)
    }

    fn mac_of(i: usize) -> MacAddr {
        MacAddr([0x02, 0xaa, 0, 0, 0, i as u8])
    }

    /// A neighbour advertisement and how it travels; `advert(i)` is host `i`'s valid answer.
    #[derive(Clone, Copy)]
    struct Advert {
        eth_src: MacAddr,
        eth_dst: MacAddr,
        ip_src: Ipv6Addr,
        ip_dst: Ipv6Addr,
        hop_limit: u8,
        flags: NeighborFlags,
        target: Ipv6Addr,
        tlla: Option<MacAddr>,
    }

    fn advert(i: usize) -> Advert {
        Advert {
            eth_src: mac_of(i),
            eth_dst: SRC_MAC,
            ip_src: host(i),
            ip_dst: SRC,
            hop_limit: 255,
            flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            target: host(i),
            tlla: Some(mac_of(i)),
        }
    }

    impl Advert {
        fn frame(&self) -> Vec<u8> {
            let eth = EthernetParams {
                src: self.eth_src,
                dst: self.eth_dst,
            };
            let ip = Ipv6Params {
                src: self.ip_src,
                dst: self.ip_dst,
                hop_limit: self.hop_limit,
                traffic_class: 0,
                flow_label: 0,
            };
            let na = icmpv6::Repr::NeighborAdvert {
                flags: self.flags,
                target_addr: self.target,
                target_lladdr: self.tlla,
            };
            let mut f = vec![0u8; 128];
            let n = build_icmpv6(&mut f, Some(&eth), &ip, &na).unwrap();
            f.truncate(n);
            f
        }
    }

    fn reply_from(i: usize) -> Vec<u8> {
        advert(i).frame()
    }

    /// Recomputes the ICMPv6 checksum of an Ethernet + IPv6 + ICMPv6 frame after an edit,
    /// so that only the edit makes it invalid.
    fn reseal(f: &mut [u8]) {
        let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let mut icmp = icmpv6::Packet::new_unchecked(&mut f[14 + 40..]);
        icmp.fill_checksum(&src, &dst).unwrap();
    }

    /// Runs the engine on a fake clock; host `i` answers with `answer(i)`.
    fn run_answering(
        timing: &Timing,
        hosts: &[Host],
        answer: impl Fn(usize) -> Vec<u8>,
        extra: &[Vec<u8>],
    ) -> Outcome {
        let targets: Vec<Ipv6Addr> = (0..hosts.len()).map(host).collect();
        let ping = NdPing::new(timing, SRC, SRC_MAC, targets.clone());
        let host_of = |p: NdProbe| targets.iter().position(|&h| h == p.dst_ip).unwrap();
        simulate(ping, hosts, host_of, answer, extra)
    }

    fn run_with(hosts: &[Host], extra: &[Vec<u8>]) -> Outcome {
        run_answering(&t4(), hosts, reply_from, extra)
    }

    fn t4() -> Timing {
        Template::Aggressive.timing()
    }

    #[test]
    fn advertising_hosts_are_up_with_their_mac_silent_ones_tried_three_times() {
        let o = run_with(&[Host::Up, Host::Silent, Host::Up], &[]);
        let r0 = o.replies[0].expect("host 0 up");
        assert_eq!(r0.mac, mac_of(0));
        assert_eq!(r0.rtt, Duration::from_millis(1));
        assert_eq!(o.replies[2].unwrap().mac, mac_of(2));
        assert_eq!(o.replies[1], None);
        assert_eq!(o.sent, [1, MAX_TRIES, 1]);
        // The silent host is given up after its third try times out (the timeout having
        // shrunk to the minimum with the 1 ms round trips).
        assert!(o.end - o.start >= t4().min_rtt_timeout * MAX_TRIES);
    }

    #[test]
    fn lost_adverts_are_recovered_by_retransmission() {
        let o = run_with(
            &[Host::UpFromTry(2), Host::UpFromTry(3), Host::UpFromTry(4)],
            &[],
        );
        assert_eq!(o.sent, [2, 3, 3]);
        assert_eq!(o.replies[0].unwrap().mac, mac_of(0));
        assert_eq!(o.replies[1].unwrap().mac, mac_of(1));
        assert_eq!(o.replies[2], None);
        // RTT is measured from the solicitation that drew the advertisement.
        assert_eq!(o.replies[1].unwrap().rtt, Duration::from_millis(1));
    }

    #[test]
    fn duplicate_adverts_keep_the_first() {
        let o = run_with(&[Host::Duplicates, Host::Up], &[]);
        assert_eq!(o.sent, [1, 1]);
        assert_eq!(o.replies[0].unwrap().rtt, Duration::from_millis(1));
        assert_eq!(o.replies[0].unwrap().mac, mac_of(0));
        assert_eq!(o.replies[1].unwrap().mac, mac_of(1));
    }

    #[test]
    fn without_a_target_lladdr_the_ethernet_source_is_the_mac() {
        let answer = |i| {
            Advert {
                tlla: None,
                ..advert(i)
            }
            .frame()
        };
        let o = run_answering(&t4(), &[Host::Up], answer, &[]);
        assert_eq!(o.replies[0].unwrap().mac, mac_of(0));
        // With the option, the option wins over the Ethernet source (a proxy or bridge may
        // forward the frame).
        let answer = |i| {
            Advert {
                eth_src: MacAddr([2, 0xbb, 0, 0, 0, 9]),
                ..advert(i)
            }
            .frame()
        };
        let o = run_answering(&t4(), &[Host::Up], answer, &[]);
        assert_eq!(o.replies[0].unwrap().mac, mac_of(0));
    }

    #[test]
    fn unsolicited_adverts_and_adverts_for_other_targets_do_not_count() {
        let stranger = Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0x7, 7);
        // Every host "answers", but wrongly: no Solicited flag; about someone else (not a
        // target); to another IPv6 address; to another MAC; routed (hop limit 64).
        let answer = |i| {
            let a = advert(i);
            match i {
                0 => Advert {
                    flags: NeighborFlags::OVERRIDE,
                    ..a
                },
                1 => Advert {
                    target: stranger,
                    ..a
                },
                2 => Advert {
                    ip_dst: stranger,
                    ..a
                },
                3 => Advert {
                    eth_dst: MacAddr([2, 0, 0, 0, 0, 0x99]),
                    ..a
                },
                _ => Advert { hop_limit: 64, ..a },
            }
            .frame()
        };
        let o = run_answering(&t4(), &[Host::Up; 5], answer, &[]);
        assert_eq!(o.replies, [None; 5]);
        assert_eq!(o.sent, [MAX_TRIES; 5]);
    }

    #[test]
    fn garbage_and_malformed_adverts_are_ignored() {
        let good = reply_from(0);
        let mut bad = vec![
            // An advertisement before any solicitation: unsolicited, stale.
            good.clone(),
            // Claiming a multicast or zero MAC.
            Advert {
                tlla: Some(MacAddr([0x33, 0x33, 0, 0, 0, 1])),
                ..advert(0)
            }
            .frame(),
            Advert {
                tlla: Some(MacAddr::ZERO),
                ..advert(0)
            }
            .frame(),
            vec![],
            vec![0xff; 13],
            vec![0; 200],
        ];
        // Our own kind of message: a solicitation from the target.
        let mut ns = [0u8; 128];
        let n = build_neighbor_solicit(&mut ns, mac_of(0), host(0), SRC).unwrap();
        bad.push(ns[..n].to_vec());
        // Checksum broken; code not 0; option of length 0; IPv4 EtherType; IP version 4;
        // payload length past the end.
        let icmp_at = 14 + 40;
        let mut f = good.clone();
        f[icmp_at + 2] ^= 0x55;
        bad.push(f);
        let mut f = good.clone();
        f[icmp_at + 1] = 1;
        reseal(&mut f);
        bad.push(f);
        let mut f = good.clone();
        f[icmp_at + 25] = 0;
        reseal(&mut f);
        bad.push(f);
        let mut f = good.clone();
        f[12..14].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
        bad.push(f);
        let mut f = good.clone();
        f[14] = 0x45;
        bad.push(f);
        let mut f = good.clone();
        f[14 + 5] += 8;
        bad.push(f);
        // Cut short at every length.
        for len in 0..good.len() {
            bad.push(good[..len].to_vec());
        }
        let o = run_with(&[Host::Silent], &bad);
        assert_eq!(o.replies, [None]);
        assert_eq!(o.sent, [MAX_TRIES]);
        // The same frames after the solicitation still do not count; the good one does.
        let mut p = NdPing::new(&t4(), SRC, SRC_MAC, vec![host(0)]);
        let now = Instant::now();
        assert_eq!(p.poll(now), Poll::Send(NdProbe { dst_ip: host(0) }));
        for f in &bad[1..] {
            p.on_frame(now, f);
            assert_eq!(p.replies(), [None]);
        }
        p.on_frame(now, &good);
        assert_eq!(p.replies()[0].unwrap().mac, mac_of(0));
    }

    #[test]
    fn solicitations_go_to_the_solicited_node_group_from_us() {
        let target = Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0xab, 0xcdef);
        let mut p = NdPing::new(&t4(), SRC, SRC_MAC, vec![target]);
        let Poll::Send(probe) = p.poll(Instant::now()) else {
            panic!("expected a solicitation");
        };
        let mut buf = [0u8; 128];
        let n = LinkPing::build(&p, probe, &mut buf).unwrap();
        let eth = ethernet::Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(
            eth.dst_addr(),
            MacAddr([0x33, 0x33, 0xff, 0xab, 0xcd, 0xef])
        );
        assert_eq!(eth.src_addr(), SRC_MAC);
        assert_eq!(eth.ethertype(), EtherType::IPV6);
        let ip = ipv6::Packet::new_checked(eth.payload()).unwrap();
        let group: Ipv6Addr = "ff02::1:ffab:cdef".parse().unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (SRC, group));
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(ip.next_header(), IpProtocol::ICMPV6);
        let icmp = icmpv6::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_code(), 0);
        let repr = icmpv6::Repr::parse(&icmp, &SRC, &group, ChecksumMode::Verify).unwrap();
        assert_eq!(
            repr,
            icmpv6::Repr::NeighborSolicit {
                target_addr: target,
                source_lladdr: Some(SRC_MAC),
            }
        );
    }

    #[test]
    fn no_hosts_is_done_at_once_and_duplicates_are_asked_once() {
        let mut p = NdPing::new(&t4(), SRC, SRC_MAC, vec![]);
        assert_eq!(p.poll(Instant::now()), Poll::Done);
        let mut p = NdPing::new(&t4(), SRC, SRC_MAC, vec![host(1), host(1)]);
        let now = Instant::now();
        assert_eq!(p.poll(now), Poll::Send(NdProbe { dst_ip: host(1) }));
        p.on_frame(now, &reply_from(1));
        assert_eq!(p.poll(now), Poll::Done);
        assert_eq!(p.requests_sent(), [1, 0]);
        assert!(p.replies()[0].is_some() && p.replies()[1].is_none());
        assert_eq!(p.rate(), DEFAULT_RATE);
    }
}
