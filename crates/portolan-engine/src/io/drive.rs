//! The one loop that runs a sans-I/O core over a packet path: hand over whatever arrived,
//! send what the core allows in batches, and sleep until its next deadline or input. The
//! raw-packet scan and the ARP and neighbour-discovery pings all run here, on real
//! sockets, in a dry run or on the simulated network.

use crate::core::Poll;
use crate::io::backend::{Outgoing, PacketIo};
use crate::io::raw::{RawError, Received};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Packets handed to the path per send.
pub const BATCH: usize = 256;
/// Packets read per receive.
const RECV_BATCH: usize = 64;
/// How long answers are still read after cancellation stopped the sending.
const DRAIN: Duration = Duration::from_millis(100);

/// A sans-I/O core as the loop sees it.
pub trait Core {
    type Probe: Copy;
    fn poll(&mut self, now: std::time::Instant) -> Poll<Self::Probe>;
    /// Digests one received packet (an IP packet, or a frame on a link path).
    fn on_packet(&mut self, now: std::time::Instant, packet: &[u8]);
}

/// Writes a probe's packet into `buf` (empty) when `build` is set, and says where it goes;
/// `None`: the probe cannot be built and is dropped (the core counts it unanswered). A path
/// that only describes probes (the dry run) does not need the bytes. The core is handed in
/// for cores that build their own packets (the link pings).
pub type Encode<'a, C> =
    dyn FnMut(&C, &<C as Core>::Probe, &mut Vec<u8>, bool) -> Option<IpAddr> + 'a;

/// Runs `core` over `io` until it is done or `cancel` is set (then answers are read for a
/// moment longer). `after_input` is called after each round of received packets (progress
/// counters). Returns whether it was cancelled.
pub fn drive<C: Core>(
    core: &mut C,
    encode: &mut Encode<'_, C>,
    io: &mut dyn PacketIo<C::Probe>,
    cancel: &AtomicBool,
    after_input: &mut dyn FnMut(&C),
) -> Result<bool, RawError> {
    let mut pending: VecDeque<(C::Probe, IpAddr, Vec<u8>)> = VecDeque::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut received: Vec<Received> = Vec::with_capacity(RECV_BATCH);
    let build = io.needs_packets();
    let mut stopped = None;
    loop {
        if stopped.is_none() && cancel.load(Ordering::Relaxed) {
            // Stop sending at once; read what is already on its way for a moment.
            stopped = Some(io.now());
            pending.clear();
        }
        // Everything that arrived, first: answers free the core to send more.
        loop {
            received.clear();
            let n = io.recv(&mut received, RECV_BATCH)?;
            for r in &received {
                core.on_packet(r.at, &r.data);
            }
            if n < RECV_BATCH {
                break;
            }
        }
        after_input(core);
        if let Some(at) = stopped {
            if !io.answers() || io.now().saturating_duration_since(at) >= DRAIN {
                return Ok(true);
            }
            io.wait(None)?;
            continue;
        }

        let mut wait = None;
        let mut done = false;
        while pending.len() < BATCH {
            match core.poll(io.now()) {
                Poll::Send(p) => {
                    let mut buf = spare.pop().unwrap_or_default();
                    buf.clear();
                    match encode(core, &p, &mut buf, build) {
                        Some(dst) => pending.push_back((p, dst, buf)),
                        None => spare.push(buf),
                    }
                }
                Poll::WaitUntil(t) => {
                    wait = Some(t);
                    break;
                }
                Poll::WaitForInput => break,
                Poll::Done => {
                    done = true;
                    break;
                }
            }
        }
        if !pending.is_empty() {
            let batch: Vec<Outgoing<'_, C::Probe>> = pending
                .iter()
                .map(|(p, dst, packet)| Outgoing {
                    probe: p,
                    dst: *dst,
                    packet,
                })
                .collect();
            let sent = match io.send(&batch) {
                Ok(n) => n,
                // The first packet can never go (e.g. no route): drop it; the core
                // reports its probe unanswered.
                Err(RawError::NoRoute(_)) => 1,
                Err(e) => return Err(e),
            };
            drop(batch);
            for (_, _, buf) in pending.drain(..sent.min(pending.len())) {
                spare.push(buf);
            }
            if !pending.is_empty() {
                // The device queue is full: give it a moment.
                io.wait(Some(io.now() + Duration::from_micros(200)))?;
            }
            continue;
        }
        if done {
            return Ok(false);
        }
        io.wait(wait)?;
    }
}

impl Core for crate::core::scan::RawScan {
    type Probe = crate::core::scan::Probe;
    fn poll(&mut self, now: std::time::Instant) -> Poll<Self::Probe> {
        crate::core::scan::RawScan::poll(self, now)
    }
    fn on_packet(&mut self, now: std::time::Instant, packet: &[u8]) {
        crate::core::scan::RawScan::on_packet(self, now, packet)
    }
}
