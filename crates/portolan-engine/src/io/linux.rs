//! The real network: raw IP sockets to send (`sendmmsg`), AF_PACKET sockets with BPF
//! filters to receive (`recvmmsg`), AF_PACKET for ARP and neighbour discovery, the kernel's
//! routes for source addresses and its neighbour cache for MACs.

use crate::core::arp_ping::ArpProbe;
use crate::core::nd_ping::NdProbe;
use crate::core::scan::Probe;
use crate::io::backend::{Backend, Described, Outgoing, PacketIo};
use crate::io::link::{LinkReceiver, LinkSender};
use crate::io::netif::{self, Interface, NetifError};
use crate::io::raw::{RawError, RawReceiver, RawSender, Received, SourceFinder};
use portolan_wire::ethernet::MacAddr;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest sleep between looks at the cancel flag.
const MAX_SLEEP: Duration = Duration::from_millis(5);

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
        Ok(Box::new(Path(ip_sockets(src, ports)?)))
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
    fn wait_readable(&self, timeout: Duration) -> Result<bool, RawError>;
    fn drops(&self) -> u64;
}

impl Sockets for (RawSender, RawReceiver) {
    fn send(&mut self, batch: &[(IpAddr, &[u8])]) -> Result<usize, RawError> {
        self.0.send_batch(batch)
    }
    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        self.1.recv_batch(out, max)
    }
    fn wait_readable(&self, timeout: Duration) -> Result<bool, RawError> {
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
    fn wait_readable(&self, timeout: Duration) -> Result<bool, RawError> {
        self.1.wait_readable(timeout)
    }
    fn drops(&self) -> u64 {
        0
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
