//! Runs ARP and neighbour-discovery pings ([`crate::core::arp_ping`],
//! [`crate::core::nd_ping`]) over a backend's link paths: hosts are grouped by the
//! interface and our address on it, and each group's ping is driven by the one loop of
//! [`crate::io::drive`].

use crate::core::arp_ping::ArpPing;
use crate::core::link_ping::{LinkPing, LinkReply};
use crate::core::nd_ping::NdPing;
use crate::core::Poll;
use crate::io::backend::{Backend, PacketIo};
use crate::io::drive::{drive, Core};
use crate::io::netif::{self, NetifError, OnLink};
use crate::io::raw::RawError;
use crate::plan::timing::Timing;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Why a link-layer ping could not run.
#[derive(Debug, thiserror::Error)]
pub enum LinkPingError {
    #[error(transparent)]
    Interfaces(#[from] NetifError),
    #[error(transparent)]
    Raw(#[from] RawError),
}

/// The largest request frame (a neighbour solicitation with its option).
const FRAME_LEN: usize = 128;

macro_rules! link_core {
    ($ping:ty) => {
        impl Core for $ping {
            type Probe = <$ping as LinkPing>::Probe;
            fn poll(&mut self, now: Instant) -> Poll<Self::Probe> {
                LinkPing::poll(self, now)
            }
            fn on_packet(&mut self, now: Instant, frame: &[u8]) {
                LinkPing::on_frame(self, now, frame)
            }
        }
    };
}
link_core!(ArpPing);
link_core!(NdPing);

/// Pings `hosts` link by link: `locate` says where each host is on-link (`None`: it is not,
/// and comes back `None`); hosts sharing an interface and source address are pinged
/// together by the ping `start` makes, over the path `open` makes for the interface.
/// Results in the order given.
fn run_per_link<A, S, P>(
    hosts: &[A],
    locate: impl Fn(A) -> Option<OnLink<S>>,
    open: impl Fn(&OnLink<S>) -> Result<Box<dyn PacketIo<<P as LinkPing>::Probe> + Send>, RawError>,
    start: impl Fn(&OnLink<S>, Vec<A>) -> P,
    cancel: &AtomicBool,
) -> Result<Vec<Option<LinkReply>>, LinkPingError>
where
    A: Copy,
    S: Copy + Ord,
    P: LinkPing + Core<Probe = <P as LinkPing>::Probe>,
{
    // (interface, our address on it) -> (on-link facts, host indexes).
    let mut groups: BTreeMap<(u32, S), (OnLink<S>, Vec<usize>)> = BTreeMap::new();
    for (i, &h) in hosts.iter().enumerate() {
        if let Some(o) = locate(h) {
            groups
                .entry((o.ifindex, o.src_ip))
                .or_insert_with(|| (o, Vec::new()))
                .1
                .push(i);
        }
    }
    let mut out = vec![None; hosts.len()];
    for (on_link, idx) in groups.into_values() {
        let mut io = open(&on_link)?;
        let mut ping = start(&on_link, idx.iter().map(|&i| hosts[i]).collect());
        let mut encode = |ping: &P, p: &<P as LinkPing>::Probe, buf: &mut Vec<u8>, build: bool| {
            if build {
                buf.resize(FRAME_LEN, 0);
                let len = ping.build(*p, buf).ok()?;
                buf.truncate(len);
            }
            Some(P::target(*p))
        };
        drive(&mut ping, &mut encode, io.as_mut(), cancel, &mut |_| {})?;
        for (k, &i) in idx.iter().enumerate() {
            out[i] = ping.replies().get(k).copied().flatten();
        }
    }
    Ok(out)
}

/// Pings `hosts` by ARP on their on-link interfaces; results in the order given. Hosts that
/// are not on an ARP-capable link (routed, loopback, tun, ...) come back `None`: the caller
/// uses other probes for them.
pub fn run_arp_ping(
    backend: &dyn Backend,
    hosts: &[Ipv4Addr],
    timing: &Timing,
    cancel: &AtomicBool,
) -> Result<Vec<Option<LinkReply>>, LinkPingError> {
    let ifaces = backend.interfaces()?;
    run_per_link(
        hosts,
        |h| netif::on_link_in(&ifaces, h),
        |o| backend.open_arp(o.ifindex, o.src_ip),
        |o, targets| ArpPing::new(timing, o.src_ip, o.src_mac, targets),
        cancel,
    )
}

/// Pings `hosts` by neighbour discovery on their on-link interfaces (see
/// [`netif::on_link_v6_in`]); results in the order given. Hosts that are not on an
/// Ethernet link (routed, loopback, tun, ...) come back `None`: the caller uses other
/// probes for them.
pub fn run_nd_ping(
    backend: &dyn Backend,
    hosts: &[Ipv6Addr],
    timing: &Timing,
    cancel: &AtomicBool,
) -> Result<Vec<Option<LinkReply>>, LinkPingError> {
    let ifaces = backend.interfaces()?;
    run_per_link(
        hosts,
        |h| netif::on_link_v6_in(&ifaces, h),
        |o| backend.open_nd(o.ifindex),
        |o, targets| NdPing::new(timing, o.src_ip, o.src_mac, targets),
        cancel,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::linux::LinuxBackend;
    use crate::plan::timing::Template;
    use portolan_wire::ethernet::MacAddr;
    use std::time::Duration;

    fn t4() -> Timing {
        Template::Aggressive.timing()
    }

    // ---- namespace lab: real ARP on a veth pair ----

    #[test]
    fn arp_ping_finds_the_veth_peer_in_a_namespace_pair() {
        use crate::io::raw::tests::NetnsPair;
        let lab =
            NetnsPair::with_addrs(|_| (Ipv4Addr::new(198, 18, 5, 1), Ipv4Addr::new(198, 18, 5, 2)));
        let Some(lab) = lab else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        let a_mac = MacAddr(NetnsPair::mac_in(&lab.a));
        let b_mac = MacAddr(NetnsPair::mac_in(&lab.b));
        let absent = Ipv4Addr::new(198, 18, 5, 3);
        let routed = Ipv4Addr::new(198, 18, 6, 1); // no route: never probed
        let (on_link, out) = lab.run(move || {
            let on_link = netif::on_link(b).unwrap();
            assert_eq!(netif::on_link(Ipv4Addr::LOCALHOST).unwrap(), None);
            assert_eq!(netif::on_link(routed).unwrap(), None);
            let cancel = AtomicBool::new(false);
            let timing = Template::Aggressive.timing();
            let out = run_arp_ping(
                &LinuxBackend::default(),
                &[b, absent, routed],
                &timing,
                &cancel,
            )
            .unwrap();
            (on_link, out)
        });
        let on_link = on_link.expect("198.18.5.2 is on-link from a");
        assert_eq!(on_link.ifname, "v0");
        assert_eq!(on_link.src_ip, a);
        assert_eq!(on_link.src_mac, a_mac);
        let reply = out[0].expect("198.18.5.2 answers ARP");
        assert_eq!(reply.mac, b_mac);
        assert!(reply.rtt < Duration::from_secs(1), "{:?}", reply.rtt);
        assert_eq!(out[1], None);
        assert_eq!(out[2], None);
    }

    #[test]
    fn arp_hosts_off_any_ethernet_link_come_back_none_without_sockets() {
        // Loopback is never ARP-capable, so no socket is opened (works unprivileged) and
        // nothing is sent; `cancel` is set as a second guard.
        let cancel = AtomicBool::new(true);
        let hosts = [Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 1, 2, 3)];
        let out = run_arp_ping(&LinuxBackend::default(), &hosts, &t4(), &cancel).unwrap();
        assert_eq!(out, [None, None]);
    }

    #[test]
    fn nd_hosts_off_any_ethernet_link_come_back_none_without_sockets() {
        // Loopback and a v4-mapped address are never on an Ethernet prefix, so no socket is
        // opened (works unprivileged) and nothing is sent; `cancel` is a second guard.
        let cancel = AtomicBool::new(true);
        let hosts = [Ipv6Addr::LOCALHOST, "::ffff:127.0.0.1".parse().unwrap()];
        let out = run_nd_ping(&LinuxBackend::default(), &hosts, &t4(), &cancel).unwrap();
        assert_eq!(out, [None, None]);
    }

    // ---- namespace lab: real neighbour discovery on a veth pair ----

    #[test]
    fn nd_ping_finds_the_veth_peer_in_a_namespace_pair() {
        use crate::io::raw::tests::{in_netns, ip, NetnsPair};
        use std::net::Ipv4Addr;
        let lab =
            NetnsPair::with_addrs(|_| (Ipv4Addr::new(198, 18, 7, 1), Ipv4Addr::new(198, 18, 7, 2)));
        let Some(lab) = lab else { return };
        let a6: Ipv6Addr = "2001:2:0:5::1".parse().unwrap();
        let b6: Ipv6Addr = "2001:2:0:5::2".parse().unwrap();
        let absent: Ipv6Addr = "2001:2:0:5::3".parse().unwrap();
        let routed: Ipv6Addr = "2001:2:0:6::1".parse().unwrap(); // no route: never probed
        for addr in [a6, b6, absent, routed] {
            assert_eq!(
                addr.segments()[..3],
                [0x2001, 2, 0],
                "lab addresses in 2001:2::/48"
            );
        }
        for (ns, addr) in [(&lab.a, a6), (&lab.b, b6)] {
            // No router advertisements or autoconfigured addresses on v0: the lab's
            // addresses are exactly the ones given. (Only v0's knobs, which exist nowhere
            // but in the lab namespace: a write that missed it fails instead of changing
            // the host's settings.)
            in_netns(ns, || {
                for knob in ["accept_ra", "autoconf"] {
                    let path = format!("/proc/sys/net/ipv6/conf/v0/{knob}");
                    std::fs::write(&path, "0").unwrap_or_else(|e| panic!("{path}: {e}"));
                    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), "0");
                }
            });
            let cidr = format!("{addr}/64");
            ip(&["-n", ns, "-6", "addr", "add", &cidr, "dev", "v0", "nodad"]);
        }
        let a_mac = MacAddr(NetnsPair::mac_in(&lab.a));
        let b_mac = MacAddr(NetnsPair::mac_in(&lab.b));
        let (on_link, out) = lab.run(move || {
            let on_link = netif::on_link_v6(b6).unwrap();
            assert_eq!(netif::on_link_v6(Ipv6Addr::LOCALHOST).unwrap(), None);
            assert_eq!(netif::on_link_v6(routed).unwrap(), None);
            assert_eq!(netif::on_link_v6(a6).unwrap(), None);
            let cancel = AtomicBool::new(false);
            let timing = Template::Aggressive.timing();
            let out = run_nd_ping(
                &LinuxBackend::default(),
                &[b6, absent, routed],
                &timing,
                &cancel,
            )
            .unwrap();
            (on_link, out)
        });
        let on_link = on_link.expect("2001:2:0:5::2 is on-link from a");
        assert_eq!(on_link.ifname, "v0");
        assert_eq!(on_link.src_ip, a6);
        assert_eq!(on_link.src_mac, a_mac);
        let reply = out[0].expect("2001:2:0:5::2 answers neighbour discovery");
        assert_eq!(reply.mac, b_mac);
        assert!(reply.rtt < Duration::from_secs(1), "{:?}", reply.rtt);
        assert_eq!(out[1], None);
        assert_eq!(out[2], None);
    }
}
