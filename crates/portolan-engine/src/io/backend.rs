//! The seam between the scan and the network: a [`Backend`] opens packet paths
//! ([`PacketIo`]) and answers the few questions about the host machine the scan asks
//! (source addresses, interfaces, the neighbour cache). Three backends exist:
//! [`crate::io::linux::LinuxBackend`] (raw IP sockets and AF_PACKET),
//! [`crate::io::dryrun::DryRunBackend`] (prints every probe, sends nothing) and
//! [`crate::io::sim::SimBackend`] (a simulated network on a virtual clock, for tests);
//! [`crate::io::packet_trace::TraceBackend`] wraps any of them for `--packet-trace`.
//!
//! The one driver loop ([`crate::io::drive::drive`]) runs any sans-I/O core over any
//! [`PacketIo`], so every backend runs exactly the scan code the others do.

use crate::core::arp_ping::ArpProbe;
use crate::core::nd_ping::NdProbe;
use crate::core::scan::Probe;
use crate::io::netif::{Interface, NetifError};
use crate::io::raw::{RawError, Received};
use portolan_wire::ethernet::MacAddr;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::Instant;

/// One packet to send: the probe it carries (for backends that describe rather than
/// send), where it goes, and its bytes (an IP packet, or an Ethernet frame on a link path).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a, P> {
    pub probe: &'a P,
    pub dst: IpAddr,
    pub packet: &'a [u8],
}

/// A probe of an engine that builds its own packets (OS detection, traceroute): the words a
/// dry run prints for it ("OS probe T5", "traceroute ttl 3"), beside its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described {
    pub what: &'static str,
    /// A number that goes with the words (a TTL, a try), when there is one.
    pub n: Option<u32>,
    /// The engine's own handle on the probe (which host, which probe), so that its encoder
    /// can build the packet; opaque to the paths.
    pub tag: u64,
}

/// A path packets leave by and answers come back on, with the clock they are timed by.
pub trait PacketIo<P> {
    /// Sends the first packets of `batch` that the path takes now; returns how many went
    /// (0: the queue is full, try again shortly). `RawError::NoRoute` means the first
    /// packet can never go.
    fn send(&mut self, batch: &[Outgoing<'_, P>]) -> Result<usize, RawError>;
    /// Appends up to `max` received packets to `out`; returns how many.
    fn recv(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError>;
    /// Waits for input until `until` at the latest (a real path also wakes up every few
    /// milliseconds so that cancellation is seen; a virtual clock jumps). `None`: a short
    /// while.
    fn wait(&mut self, until: Option<Instant>) -> Result<(), RawError>;
    /// The time by this path's clock.
    fn now(&self) -> Instant;
    /// Packets the receiver dropped because its buffer was full.
    fn drops(&self) -> u64 {
        0
    }
    /// Whether the path sends the packets' bytes (a dry run only describes the probes, so
    /// they are not built for it).
    fn needs_packets(&self) -> bool {
        true
    }
    /// Whether waiting can bring answers. A dry run's cannot: a core waiting for its
    /// timeouts is moved on at once.
    fn answers(&self) -> bool {
        true
    }
}

/// How a scan reaches the network.
pub trait Backend: Send + Sync {
    /// The source address of packets to `dst` (the kernel's route choice).
    /// `RawError::NoRoute` when there is none.
    fn source_for(&self, dst: IpAddr) -> Result<IpAddr, RawError>;
    /// Opens an IP path from `src` that receives the answers to probes sent from the
    /// source ports `ports` (other engines' answers are not its concern).
    fn open_ip(
        &self,
        src: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Probe> + Send>, RawError>;
    /// Opens an IP path like [`Backend::open_ip`] for an engine that builds its own packets
    /// (OS detection, traceroute): IPv4 packets with their header, sent as they are; the
    /// answers to probes from `ports` (and ICMP about them) come back whole.
    fn open_ip_described(
        &self,
        src: IpAddr,
        ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Described> + Send>, RawError>;
    /// Opens the ARP path of one interface, for our address `local` on it.
    fn open_arp(
        &self,
        ifindex: u32,
        local: Ipv4Addr,
    ) -> Result<Box<dyn PacketIo<ArpProbe> + Send>, RawError>;
    /// Opens the neighbour-discovery path of one interface.
    fn open_nd(&self, ifindex: u32) -> Result<Box<dyn PacketIo<NdProbe> + Send>, RawError>;
    /// This machine's interfaces and their addresses.
    fn interfaces(&self) -> Result<Vec<Interface>, NetifError>;
    /// The kernel's IPv4 neighbour cache (MACs of on-link hosts it has resolved).
    fn neighbours(&self) -> Vec<(Ipv4Addr, MacAddr)>;
    /// Whether this backend only prints probes (no answers, no link-layer pings, no
    /// report).
    fn is_dry_run(&self) -> bool {
        false
    }
}
