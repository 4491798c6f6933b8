//! The real network: raw IP sockets to send (`sendmmsg`), AF_PACKET sockets with BPF
//! filters to receive (`recvmmsg`), AF_PACKET for ARP and neighbour discovery, the kernel's
//! routes for source addresses and its neighbour cache for MACs.
//!
//! An IPv4 scan from an address of an Ethernet interface sends the probes to on-link
//! hosts whose MAC the kernel has resolved through a TX ring ([`crate::io::ring`]): each
//! IP packet gets an Ethernet header and skips the sending side's IP stack. Probes to
//! other destinations (through a gateway, not yet resolved) go by the raw socket, whose
//! kernel route lookup also resolves the neighbour: the MAC is read back from the
//! neighbour cache soon after, and the host's later probes take the ring. The ring is set
//! up on a thread of its own while the first probes take the raw socket.
//! The ring goes through the qdisc (unlike the fastest setting, which bypasses it), so that
//! packet captures on this machine see the probes and a real NIC's full queue holds them.
//! `PORTOLAN_TX_RING=0` in the environment turns the ring off (raw socket only),
//! `PORTOLAN_TX_RING=bypass` makes it bypass the qdisc (benchmarks).

use crate::core::arp_ping::ArpProbe;
use crate::core::nd_ping::NdProbe;
use crate::core::scan::Probe;
use crate::io::backend::{Backend, Described, Outgoing, PacketIo};
use crate::io::link::{LinkReceiver, LinkSender};
use crate::io::netif::{self, Interface, NetifError};
use crate::io::raw::{RawError, RawReceiver, RawSender, Received, SourceFinder};
use crate::io::ring::{ipv4_frame, RingSender, ETH_HEADER_LEN};
use portolan_wire::ethernet::MacAddr;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest sleep between looks at the cancel flag.
const MAX_SLEEP: Duration = Duration::from_millis(5);
/// The `PORTOLAN_TX_RING` value that makes the ring bypass the qdisc (see
/// [`RingSender::new`]).
const BYPASS_SETTING: &str = "bypass";
/// Shortest time between two reads of the neighbour cache for on-link hosts without a MAC.
const NEIGHBOUR_REFRESH: Duration = Duration::from_millis(20);

/// Raw sockets and AF_PACKET on this machine's interfaces.
#[derive(Default)]
pub struct LinuxBackend {
    finder: Mutex<SourceFinder>,
}

impl Backend for LinuxBackend {
    fn source_for(&self, dst: IpAddr) -> Result<IpAddr, RawError> {
        match self.finder.lock() {
            Ok(mut f) => f.source_for(dst),
            Err(_) => crate::io::raw::source_for_ip(dst),
        }
    }

    fn open_ip(
        &self,
        src: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Probe> + Send>, RawError> {
        let (raw, rx) = ip_sockets(src, ports)?;
        if let IpAddr::V4(src) = src {
            if let Some(link) = IpLink::open(src) {
                return Ok(Box::new(Path((link, raw, rx))));
            }
        }
        Ok(Box::new(Path((raw, rx))))
    }

    fn open_ip_described(
        &self,
        src: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Described> + Send>, RawError> {
        Ok(Box::new(Path(ip_sockets(src, ports)?)))
    }

    fn open_arp(
        &self,
        ifindex: u32,
        local: Ipv4Addr,
    ) -> Result<Box<dyn PacketIo<ArpProbe> + Send>, RawError> {
        let receiver = LinkReceiver::arp(ifindex, local)?;
        Ok(Box::new(Path((LinkSender::new(ifindex)?, receiver))))
    }

    fn open_nd(&self, ifindex: u32) -> Result<Box<dyn PacketIo<NdProbe> + Send>, RawError> {
        let receiver = LinkReceiver::neighbor_adverts(ifindex)?;
        Ok(Box::new(Path((LinkSender::new(ifindex)?, receiver))))
    }

    fn interfaces(&self) -> Result<Vec<Interface>, NetifError> {
        netif::interfaces()
    }

    fn neighbours(&self) -> Vec<(Ipv4Addr, MacAddr)> {
        netif::arp_cache()
    }
}

/// A raw sender for `src`'s family and a receiver of the answers to probes from `ports`.
fn ip_sockets(
    src: IpAddr,
    ports: RangeInclusive<u16>,
) -> Result<(RawSender, RawReceiver), RawError> {
    Ok(match src {
        IpAddr::V4(s) => (RawSender::new()?, RawReceiver::for_ports(&[s], &[], ports)?),
        IpAddr::V6(s) => (
            RawSender::new_v6()?,
            RawReceiver::for_ports(&[], &[s], ports)?,
        ),
    })
}

/// How long to wait at most: until `until`, never more than [`MAX_SLEEP`].
fn sleep_for(until: Option<Instant>) -> Duration {
    until
        .map(|t| t.saturating_duration_since(Instant::now()))
        .unwrap_or(MAX_SLEEP)
        .min(MAX_SLEEP)
}

/// A path's two sockets: the sender takes whole packets (IP) or frames (link), the
/// receiver reads what comes back.
trait Sockets {
    fn send(&mut self, batch: &[(IpAddr, &[u8])]) -> Result<usize, RawError>;
    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError>;
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, RawError>;
    fn drops(&self) -> u64;
}

impl Sockets for (RawSender, RawReceiver) {
    fn send(&mut self, batch: &[(IpAddr, &[u8])]) -> Result<usize, RawError> {
        self.0.send_batch(batch)
    }
    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        self.1.recv_batch(out, max)
    }
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, RawError> {
        self.1.wait_readable(timeout)
    }
    fn drops(&self) -> u64 {
        self.1.drops()
    }
}

impl Sockets for (LinkSender, LinkReceiver) {
    fn send(&mut self, batch: &[(IpAddr, &[u8])]) -> Result<usize, RawError> {
        let frames: Vec<&[u8]> = batch.iter().map(|&(_, f)| f).collect();
        // A full queue (0 sent) loses nothing: the loop retries.
        self.0.send_batch(&frames)
    }
    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        self.1.recv_batch(out, max)
    }
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, RawError> {
        self.1.wait_readable(timeout)
    }
    fn drops(&self) -> u64 {
        0
    }
}

/// The link-layer side of an IPv4 path: a TX ring on the interface that holds our source
/// address, and the MACs of the on-link hosts the kernel has resolved.
struct IpLink {
    /// The ring, once open; until then (and if it cannot be) every probe takes the raw
    /// socket.
    ring: Option<RingSender>,
    /// The ring being set up on a thread of its own: PACKET_TX_RING waits out an RCU
    /// grace period (10-20 ms), which the scan's first probes need not wait for.
    opening: Option<Receiver<RingSender>>,
    src_mac: [u8; 6],
    /// Our address and prefix on the interface: destinations within are on-link.
    net: (Ipv4Addr, u8),
    neighbours: HashMap<Ipv4Addr, [u8; 6]>,
    /// When the neighbour cache was last read, and whether a probe since went to an
    /// on-link host it had no MAC for.
    refreshed: Instant,
    missing: bool,
}

impl IpLink {
    /// The link side for `src`'s interface, if it is Ethernet and the ring is not turned
    /// off by `PORTOLAN_TX_RING=0`. The ring opens in the background; if it cannot (no
    /// CAP_NET_RAW, no TPACKET_V2), the path keeps the raw socket alone.
    fn open(src: Ipv4Addr) -> Option<IpLink> {
        let setting = std::env::var("PORTOLAN_TX_RING").unwrap_or_default();
        if setting == "0" {
            return None;
        }
        let ifaces = netif::interfaces().ok()?;
        let (iface, prefix) = ifaces.iter().find_map(|i| {
            let p = i.ipv4.iter().find(|&&(a, _)| a == src)?.1;
            Some((i, p))
        })?;
        if !iface.is_arp_capable() || prefix >= 32 {
            return None;
        }
        let src_mac = iface.mac?.0;
        // Through the qdisc unless told: captures on this machine see the probes, and a
        // full device queue holds them rather than dropping them.
        let (ifindex, bypass) = (iface.ifindex, setting == BYPASS_SETTING);
        let (tx, rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("open-ring".into())
            .spawn(move || {
                if let Ok(ring) = RingSender::new(ifindex, bypass) {
                    // The path may be gone already: then the ring is closed here.
                    let _ = tx.send(ring);
                }
            })
            .ok()?;
        let mut link = IpLink {
            ring: None,
            opening: Some(rx),
            src_mac,
            net: (src, prefix),
            neighbours: HashMap::new(),
            refreshed: Instant::now(),
            missing: false,
        };
        link.refresh();
        Some(link)
    }

    /// Takes the ring once it is open.
    fn poll_ring(&mut self) {
        let Some(rx) = &self.opening else { return };
        match rx.try_recv() {
            Ok(ring) => {
                self.ring = Some(ring);
                self.opening = None;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => self.opening = None,
        }
    }

    fn refresh(&mut self) {
        self.neighbours = netif::arp_cache()
            .into_iter()
            .filter(|&(ip, _)| self.on_link(ip))
            .map(|(ip, mac)| (ip, mac.0))
            .collect();
        self.refreshed = Instant::now();
        self.missing = false;
    }

    fn on_link(&self, dst: Ipv4Addr) -> bool {
        let (net, prefix) = self.net;
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0);
        dst != net && u32::from(dst) & mask == u32::from(net) & mask
    }

    /// The MAC to frame a packet to `dst` of `len` bytes for, if it can go by the ring.
    fn mac_for(&mut self, dst: IpAddr, len: usize) -> Option<[u8; 6]> {
        let IpAddr::V4(dst) = dst else { return None };
        if len + ETH_HEADER_LEN > self.ring.as_ref()?.max_frame() {
            return None;
        }
        let mac = self.neighbours.get(&dst).copied();
        if mac.is_none() && self.on_link(dst) {
            self.missing = true;
        }
        mac
    }

    /// Reads the neighbour cache again if a probe went without a MAC a while ago.
    fn maybe_refresh(&mut self) {
        if self.missing && self.refreshed.elapsed() >= NEIGHBOUR_REFRESH {
            self.refresh();
        }
    }

    /// Sends what was written into the ring.
    fn kick(&mut self) -> Result<(), RawError> {
        match &mut self.ring {
            Some(ring) => ring.kick(),
            None => Ok(()),
        }
    }

    /// Writes one IP packet to `mac` into the ring; false if it is full.
    fn push(&mut self, mac: [u8; 6], packet: &[u8]) -> bool {
        let src_mac = self.src_mac;
        self.ring.as_mut().is_some_and(|ring| {
            ring.ring()
                .push_with(|slot| ipv4_frame(slot, mac, src_mac, packet))
                == Ok(true)
        })
    }
}

impl Drop for IpLink {
    fn drop(&mut self) {
        // Closing the ring waits out an RCU grace period, as closing the receiver does:
        // on a thread of its own, the two waits overlap.
        if let Some(ring) = self.ring.take() {
            let _ = std::thread::Builder::new()
                .name("close-ring".into())
                .spawn(move || drop(ring));
        }
    }
}

impl Sockets for (IpLink, RawSender, RawReceiver) {
    /// Runs of packets the ring can frame go by the ring, the others by the raw socket, in
    /// order; stops at the first that cannot go now.
    fn send(&mut self, batch: &[(IpAddr, &[u8])]) -> Result<usize, RawError> {
        let (link, raw, _) = self;
        link.poll_ring();
        link.maybe_refresh();
        let mut i = 0;
        while let Some(&(dst, packet)) = batch.get(i) {
            if let Some(mac) = link.mac_for(dst, packet.len()) {
                if !link.push(mac, packet) {
                    // Full: send what is in, stop.
                    link.kick()?;
                    return Ok(i);
                }
                i += 1;
                continue;
            }
            // The raw socket sends in order after what the ring holds.
            link.kick()?;
            let end = (i + 1..batch.len())
                .find(|&j| {
                    batch
                        .get(j)
                        .is_some_and(|&(d, p)| link.mac_for(d, p.len()).is_some())
                })
                .unwrap_or(batch.len());
            let run = batch.get(i..end).unwrap_or_default();
            match raw.send_batch(run) {
                Ok(n) => {
                    i += n;
                    if n < run.len() {
                        return Ok(i);
                    }
                }
                Err(e) if i == 0 => return Err(e),
                Err(_) => return Ok(i),
            }
        }
        link.kick()?;
        Ok(i)
    }
    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        self.2.recv_batch(out, max)
    }
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, RawError> {
        // Frames a kick left in the ring (a full device queue) go before any waiting.
        if let Some(ring) = &mut self.0.ring {
            ring.flush()?;
        }
        self.2.wait_readable(timeout)
    }
    fn drops(&self) -> u64 {
        self.2.drops()
    }
}

/// A path on this machine's sockets, timed by the real clock.
struct Path<S>(S);

impl<P, S: Sockets> PacketIo<P> for Path<S> {
    fn send(&mut self, batch: &[Outgoing<'_, P>]) -> Result<usize, RawError> {
        let packets: Vec<(IpAddr, &[u8])> = batch.iter().map(|o| (o.dst, o.packet)).collect();
        self.0.send(&packets)
    }
    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        self.0.recv(out, max)
    }
    fn wait(&mut self, until: Option<Instant>) -> Result<(), RawError> {
        let d = sleep_for(until);
        if !d.is_zero() {
            self.0.wait_readable(d)?;
        }
        Ok(())
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn drops(&self) -> u64 {
        self.0.drops()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::raw::tests::{ip, NetnsPair};
    use portolan_wire::build::{Ipv4Params, TcpParams, TcpTemplateV4};

    /// This thread's namespace's IP OutTransmits (Linux >= 6.3): packets its IP stack
    /// handed to a device, raw sockets' included.
    fn ip_out_transmits() -> u64 {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
        let mut ip_lines = text.lines().filter(|l| l.starts_with("Ip:"));
        let (names, values) = (ip_lines.next().unwrap(), ip_lines.next().unwrap());
        let at = names
            .split_whitespace()
            .position(|n| n == "OutTransmits")
            .unwrap();
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    }

    /// The IPv4 path of a scan from an Ethernet interface: with the peer's MAC in the
    /// neighbour cache, probes go by the ring (the IP stack sends nothing) and are
    /// answered; the raw socket, for comparison, goes through the IP stack.
    #[test]
    fn on_link_probes_take_the_ring_once_the_mac_is_known() {
        let Some(lab) = NetnsPair::new() else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        let mac_b = NetnsPair::mac_in(&lab.b);
        let mac = mac_b.map(|x| format!("{x:02x}")).join(":");
        ip(&[
            "-n",
            &lab.a,
            "neigh",
            "replace",
            &b.to_string(),
            "lladdr",
            &mac,
            "dev",
            "v0",
            "nud",
            "permanent",
        ]);
        lab.run(move || {
            let link = IpLink::open(a).expect("v0 is Ethernet");
            let raw = RawSender::new().unwrap();
            let rx = RawReceiver::for_ports(&[a], &[], 40_000..=40_999).unwrap();
            let mut path = (link, raw, rx);
            let ip4 = Ipv4Params {
                src: a,
                dst: b,
                ttl: 64,
                ident: 1,
                dont_frag: false,
            };
            let mut t = TcpTemplateV4::new(None, &ip4, &TcpParams::syn(0, 0, 0)).unwrap();
            let open = t.probe(b, 40_000, 8080, 1).to_vec();
            let closed = t.probe(b, 40_001, 8081, 2).to_vec();
            // The ring opens on a thread of its own: until then, the raw socket.
            let deadline = Instant::now() + Duration::from_secs(5);
            while path.0.ring.is_none() {
                assert!(Instant::now() < deadline, "the ring never opened");
                std::thread::sleep(Duration::from_millis(5));
                path.0.poll_ring();
            }
            let answer = |path: &mut (IpLink, RawSender, RawReceiver), packet: &[u8]| {
                let before = ip_out_transmits();
                assert_eq!(Sockets::send(path, &[(IpAddr::V4(b), packet)]).unwrap(), 1);
                let mut got = Vec::new();
                while got.is_empty() && Instant::now() < deadline {
                    if path.wait_readable(Duration::from_millis(50)).unwrap() {
                        path.recv(&mut got, 64).unwrap();
                    }
                }
                let flags = got
                    .first()
                    .and_then(|r| r.data.get(20 + 13).copied())
                    .expect("an answer");
                (flags, ip_out_transmits() - before)
            };
            // RST-ACK from the closed port; the IP stack sent nothing: the SYN went by the
            // ring.
            assert_eq!(answer(&mut path, &closed), (0x14, 0));
            // SYN-ACK from the open port (which our kernel answers with a RST of its own,
            // through the IP stack: at most that one).
            let (flags, sent) = answer(&mut path, &open);
            assert_eq!(flags, 0x12);
            assert!(sent <= 1, "{sent}");
            // Positive control: a packet from the raw socket is counted.
            let before = ip_out_transmits();
            assert_eq!(
                path.1.send_batch(&[(IpAddr::V4(b), &closed[..])]).unwrap(),
                1
            );
            assert!(ip_out_transmits() > before);
        });
    }
}
