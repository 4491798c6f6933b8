//! `--dryrun`: every probe is printed, one line each in the spirit of Nmap's
//! `--packet-trace`, and nothing is sent. Each path runs on a virtual clock that jumps to
//! the core's next deadline, so a dry run takes no longer than printing does.

use crate::core::arp_ping::ArpProbe;
use crate::core::nd_ping::NdProbe;
use crate::core::probe::describe;
use crate::core::scan::Probe;
use crate::data::payloads::PayloadTable;
use crate::io::backend::{Backend, Described, Outgoing, PacketIo};
use crate::io::linux::LinuxBackend;
use crate::io::netif::{Interface, NetifError};
use crate::io::raw::{RawError, Received};
use portolan_wire::ethernet::MacAddr;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where the probe lines go (shared by every path of the scan).
pub type Lines = Arc<Mutex<dyn Write + Send>>;

/// Prints probes to `out`; source addresses still come from the kernel's routes.
pub struct DryRunBackend {
    out: Lines,
    payloads: Arc<PayloadTable>,
    routes: LinuxBackend,
}

impl DryRunBackend {
    /// Probe lines go to `out`; UDP probes are described with the payload `payloads` gives.
    pub fn new(out: Lines, payloads: Arc<PayloadTable>) -> Self {
        DryRunBackend {
            out,
            payloads,
            routes: LinuxBackend::default(),
        }
    }
}

fn not_in_dry_run() -> RawError {
    RawError::Io {
        call: "dry run",
        error: std::io::Error::other("link-layer pings are not run in a dry run"),
    }
}

impl Backend for DryRunBackend {
    fn source_for(&self, dst: IpAddr) -> Result<IpAddr, RawError> {
        // Without a route the probes are still printed, from the unspecified address.
        Ok(self.routes.source_for(dst).unwrap_or(match dst {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }))
    }

    fn open_ip(
        &self,
        _src: IpAddr,
        _ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Probe> + Send>, RawError> {
        let payloads = self.payloads.clone();
        let describe_probe = move |text: &mut String, o: &Outgoing<'_, Probe>| {
            let payload = |port: u16| {
                payloads
                    .for_port(port)
                    .first()
                    .map_or(&[][..], Vec::as_slice)
            };
            describe(text, o.probe, &payload);
        };
        Ok(Box::new(Printer::new(
            self.out.clone(),
            Box::new(describe_probe),
        )))
    }

    fn open_ip_described(
        &self,
        _src: IpAddr,
        _ports: RangeInclusive<u16>,
    ) -> Result<Box<dyn PacketIo<Described> + Send>, RawError> {
        // Engines that build their own packets: the words each probe carries and where
        // it goes.
        let tell = |text: &mut String, o: &Outgoing<'_, Described>| {
            use std::fmt::Write as _;
            let _ = match o.probe.n {
                Some(n) => writeln!(text, "{} {} > {}", o.probe.what, n, o.dst),
                None => writeln!(text, "{} > {}", o.probe.what, o.dst),
            };
        };
        Ok(Box::new(Printer::new(self.out.clone(), Box::new(tell))))
    }

    fn open_arp(
        &self,
        _ifindex: u32,
        _local: Ipv4Addr,
    ) -> Result<Box<dyn PacketIo<ArpProbe> + Send>, RawError> {
        Err(not_in_dry_run())
    }

    fn open_nd(&self, _ifindex: u32) -> Result<Box<dyn PacketIo<NdProbe> + Send>, RawError> {
        Err(not_in_dry_run())
    }

    fn interfaces(&self) -> Result<Vec<Interface>, NetifError> {
        self.routes.interfaces()
    }

    fn neighbours(&self) -> Vec<(Ipv4Addr, MacAddr)> {
        Vec::new()
    }

    fn is_dry_run(&self) -> bool {
        true
    }
}

/// How a path's probes are printed: one line (or more) per packet into the text.
type Describe<P> = Box<dyn Fn(&mut String, &Outgoing<'_, P>) + Send>;

/// A path that prints what it is given to send, on a virtual clock.
struct Printer<P> {
    out: Lines,
    now: Instant,
    text: String,
    describe: Describe<P>,
}

impl<P> Printer<P> {
    fn new(out: Lines, describe: Describe<P>) -> Self {
        Printer {
            out,
            now: Instant::now(),
            text: String::new(),
            describe,
        }
    }
}

impl<P> PacketIo<P> for Printer<P> {
    fn send(&mut self, batch: &[Outgoing<'_, P>]) -> Result<usize, RawError> {
        self.text.clear();
        for o in batch {
            (self.describe)(&mut self.text, o);
        }
        if let Ok(mut w) = self.out.lock() {
            // As before the re-seam: a closed stdout (`| head`) does not stop the scan.
            let _ = w.write_all(self.text.as_bytes());
        }
        Ok(batch.len())
    }
    fn recv(&mut self, _out: &mut Vec<Received>, _max: usize) -> Result<usize, RawError> {
        Ok(0)
    }
    fn wait(&mut self, until: Option<Instant>) -> Result<(), RawError> {
        if let Some(t) = until {
            self.now = self.now.max(t);
        }
        Ok(())
    }
    fn now(&self) -> Instant {
        self.now
    }
    fn needs_packets(&self) -> bool {
        false
    }
    fn answers(&self) -> bool {
        false
    }
}
