//! The fastest way this machine has to put frames on a link: an `AF_PACKET` socket with a
//! memory-mapped transmit ring (`PACKET_TX_RING`, `TPACKET_V2`) that bypasses the queueing
//! discipline (`PACKET_QDISC_BYPASS`). This module owns the socket, the mapping and the
//! ring's bookkeeping; it knows nothing of IP, probes or neighbours (see
//! [`crate::io::linux`] for the path that puts IP packets in Ethernet frames).
//!
//! Why: a raw IP socket (`crate::io::raw::RawSender`) costs one pass through the sending
//! side's IP stack per packet (route lookup, netfilter's OUTPUT and POSTROUTING hooks, the
//! neighbour layer, the qdisc). Frames written into the ring skip all of it: one `sendto`
//! hands every frame written since the last one straight to the driver.
//!
//! How the ring works: the kernel and we share `frame_nr` slots of `frame_size` bytes,
//! each starting with a `tpacket2_hdr` whose `tp_status` says who owns it. We write a frame
//! into the next slot that is `TP_STATUS_AVAILABLE` and mark it `TP_STATUS_SEND_REQUEST`;
//! `sendto(fd, NULL, 0)` makes the kernel send every such slot in order and hand each back
//! (`AVAILABLE`) once the driver is done with it. Slots are used strictly in ring order, so
//! when the next one is still the kernel's, the ring is full.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use libc::{c_int, c_uint, c_void};

use crate::io::raw::{errno_is, new_socket, set_opt, RawError};

// From <linux/if_packet.h>, spelled out as in `raw.rs`.
const PACKET_VERSION: c_int = 10;
const PACKET_TX_RING: c_int = 13;
const PACKET_LOSS: c_int = 14;
const PACKET_QDISC_BYPASS: c_int = 20;
const TPACKET_V2: c_int = 1;

/// `tp_status` values of a transmit slot.
pub const TP_STATUS_AVAILABLE: u32 = 0;
pub const TP_STATUS_SEND_REQUEST: u32 = 1;
pub const TP_STATUS_SENDING: u32 = 2;
pub const TP_STATUS_WRONG_FORMAT: u32 = 4;

/// Where a frame's bytes start in its slot: `TPACKET2_HDRLEN - sizeof(sockaddr_ll)`, that
/// is the 32-byte `tpacket2_hdr` rounded to `TPACKET_ALIGNMENT` (16).
pub const DATA_OFFSET: usize = 32;
/// Offset of `tp_len` (u32) in `tpacket2_hdr`; `tp_status` is at 0.
const TP_LEN: usize = 4;

/// Bytes per slot: room for a 1500-byte packet with its Ethernet header.
pub const FRAME_SIZE: usize = 2048;
/// Slots in the ring (1 MiB of memory, zeroed by the kernel at setup: a millisecond a
/// MiB). Twice the driver's batch: on a veth the kernel sends and frees each frame within
/// the `sendto`, so the ring rarely holds more than one batch.
pub const FRAME_NR: usize = 512;
/// Bytes per kernel block (a multiple of the page size and of [`FRAME_SIZE`], so that
/// slots lie back to back across blocks).
const BLOCK_SIZE: usize = 1 << 16;

/// `struct tpacket_req`.
#[repr(C)]
struct TpacketReq {
    block_size: c_uint,
    block_nr: c_uint,
    frame_size: c_uint,
    frame_nr: c_uint,
}

/// The bookkeeping of a transmit ring over `frame_nr` slots of `frame_size` bytes at
/// `base`: which slot is next, whether it is ours, and writing a frame into it. Separate
/// from the socket so that it can be tested on ordinary memory.
pub struct Ring {
    base: *mut u8,
    frame_size: usize,
    frame_nr: usize,
    /// The next slot to write.
    head: usize,
    /// Slots marked for sending since the last [`Ring::take_queued`].
    queued: usize,
}

impl Ring {
    /// # Safety
    /// `base` must point to `frame_size * frame_nr` bytes, aligned to 4, that stay valid
    /// (and are only touched through this ring, and by the kernel as a TX ring) for the
    /// ring's lifetime. `frame_size` must be a multiple of 16 and above [`DATA_OFFSET`].
    pub unsafe fn new(base: *mut u8, frame_size: usize, frame_nr: usize) -> Self {
        Ring {
            base,
            frame_size,
            frame_nr,
            head: 0,
            queued: 0,
        }
    }

    /// The largest frame a slot holds.
    pub fn max_frame(&self) -> usize {
        self.frame_size - DATA_OFFSET
    }

    fn slot(&self, i: usize) -> *mut u8 {
        // In bounds: i < frame_nr, so the slot lies within the mapping.
        self.base.wrapping_add(i * self.frame_size)
    }

    fn status_of(&self, i: usize) -> &AtomicU32 {
        // SAFETY: each slot starts 4-aligned (base 4-aligned, frame_size a multiple of 16)
        // with tp_status, a u32 the kernel also updates; the reference lives no longer
        // than `self`, and the memory outlives the ring (Ring::new's contract).
        unsafe { &*(self.slot(i) as *const AtomicU32) }
    }

    /// Whether the next slot is ours to write (else the ring is full). A slot the kernel
    /// refused (`WRONG_FORMAT`, only seen without `PACKET_LOSS`) is taken back too.
    pub fn has_room(&self) -> bool {
        matches!(
            self.status_of(self.head).load(Ordering::Acquire),
            TP_STATUS_AVAILABLE | TP_STATUS_WRONG_FORMAT
        )
    }

    /// Writes one frame into the next slot, filled by `fill` (which gets the slot's data
    /// area, [`Ring::max_frame`] bytes, and returns the frame's length), and marks it for
    /// sending. `Ok(false)`: the ring is full, nothing written. `fill` returning 0 or more
    /// than the slot holds writes nothing and is an error (the frame cannot be sent).
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<bool, usize> {
        if !self.has_room() {
            return Ok(false);
        }
        let slot = self.slot(self.head);
        // SAFETY: the slot is ours (AVAILABLE), `frame_size` bytes long; its data area
        // starts DATA_OFFSET bytes in. The kernel does not touch it until we set the status.
        let data = unsafe {
            std::slice::from_raw_parts_mut(slot.wrapping_add(DATA_OFFSET), self.max_frame())
        };
        let len = fill(data);
        if len == 0 || len > self.max_frame() {
            return Err(len);
        }
        // SAFETY: tp_len is a u32 at offset 4 of the slot's header, 4-aligned.
        unsafe { (slot.wrapping_add(TP_LEN) as *mut u32).write_volatile(len as u32) };
        // Release: the frame's bytes and length are visible before the kernel sees the
        // slot as its own.
        self.status_of(self.head)
            .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.head = (self.head + 1) % self.frame_nr;
        self.queued += 1;
        Ok(true)
    }

    /// [`Ring::push_with`] for a frame already in a buffer.
    pub fn push(&mut self, frame: &[u8]) -> Result<bool, usize> {
        self.push_with(|data| match data.get_mut(..frame.len()) {
            Some(dst) => {
                dst.copy_from_slice(frame);
                frame.len()
            }
            None => frame.len(),
        })
    }

    /// How many slots were marked since the last call (and resets the count).
    pub fn take_queued(&mut self) -> usize {
        std::mem::take(&mut self.queued)
    }

    /// Whether any slot still waits for the kernel to send it (after a `sendto` that
    /// stopped early: a signal, a full device).
    pub fn any_waiting(&self) -> bool {
        (0..self.frame_nr)
            .any(|i| self.status_of(i).load(Ordering::Acquire) == TP_STATUS_SEND_REQUEST)
    }
}

/// Sends Ethernet frames on one interface through a memory-mapped TX ring.
pub struct RingSender {
    fd: OwnedFd,
    map: *mut c_void,
    map_len: usize,
    ring: Ring,
    /// The last `sendto` stopped before the ring was empty: kick again before waiting.
    kick_pending: bool,
    /// `sendto` calls that reported a dropped frame (the driver's queue was full).
    pub kick_errors: u64,
}

// SAFETY: the mapping is owned by this struct alone (the pointers in `ring` point into it)
// and is only used through `&mut self`; moving it to another thread is sound.
unsafe impl Send for RingSender {}

impl RingSender {
    /// Opens the socket on interface `ifindex`: `TPACKET_V2` TX ring of [`FRAME_NR`] slots,
    /// malformed frames skipped rather than stopping the ring (`PACKET_LOSS`), bound to
    /// protocol 0 (so it receives nothing).
    ///
    /// `bypass_qdisc` sends straight to the driver (best effort: kernels before 3.14 lack
    /// it). It is the fastest, but the frames are invisible to packet captures on this
    /// machine (tcpdump sees nothing), and a full device queue drops them rather than
    /// queueing them: right for measuring a path, not for a scan.
    pub fn new(ifindex: u32, bypass_qdisc: bool) -> Result<Self, RawError> {
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        set_opt(&fd, libc::SOL_PACKET, PACKET_VERSION, &TPACKET_V2)
            .map_err(|e| RawError::io("setsockopt(PACKET_VERSION)", e))?;
        let one: c_int = 1;
        if bypass_qdisc {
            let _ = set_opt(&fd, libc::SOL_PACKET, PACKET_QDISC_BYPASS, &one);
        }
        let _ = set_opt(&fd, libc::SOL_PACKET, PACKET_LOSS, &one);
        let req = TpacketReq {
            block_size: BLOCK_SIZE as c_uint,
            block_nr: (FRAME_SIZE * FRAME_NR / BLOCK_SIZE) as c_uint,
            frame_size: FRAME_SIZE as c_uint,
            frame_nr: FRAME_NR as c_uint,
        };
        set_opt(&fd, libc::SOL_PACKET, PACKET_TX_RING, &req)
            .map_err(|e| RawError::io("setsockopt(PACKET_TX_RING)", e))?;
        let map_len = FRAME_SIZE * FRAME_NR;
        // SAFETY: a fresh shared mapping of the socket's ring, of the size it was given.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(RawError::last_os("mmap(PACKET_TX_RING)"));
        }
        // SAFETY: `map` is page-aligned and `map_len` bytes, unmapped only in Drop;
        // FRAME_SIZE is a multiple of 16 above DATA_OFFSET.
        let ring = unsafe { Ring::new(map.cast::<u8>(), FRAME_SIZE, FRAME_NR) };
        let sender = RingSender {
            fd,
            map,
            map_len,
            ring,
            kick_pending: false,
            kick_errors: 0,
        };
        crate::io::link::bind_packet(&sender.fd, ifindex, 0)?;
        Ok(sender)
    }

    /// The largest frame this ring sends.
    pub fn max_frame(&self) -> usize {
        self.ring.max_frame()
    }

    /// The ring, to write frames into; [`RingSender::kick`] sends them.
    pub fn ring(&mut self) -> &mut Ring {
        &mut self.ring
    }

    /// Writes `frames` into the ring (as many as fit) and sends them; returns how many were
    /// taken. A frame too large for a slot, first in line, is [`RawError::ShortFrame`]'s
    /// twin: an `InvalidInput` error, nothing taken.
    pub fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, RawError> {
        let mut taken = 0;
        for frame in frames {
            match self.ring.push(frame) {
                Ok(true) => taken += 1,
                Ok(false) => break,
                Err(len) if taken == 0 => {
                    return Err(RawError::io(
                        "PACKET_TX_RING",
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("frame of {len} bytes does not fit a ring slot"),
                        ),
                    ))
                }
                Err(_) => break,
            }
        }
        self.kick()?;
        Ok(taken)
    }

    /// Asks the kernel to send every slot marked for sending, without waiting.
    pub fn kick(&mut self) -> Result<(), RawError> {
        let queued = self.ring.take_queued();
        if queued == 0 && !self.kick_pending {
            return Ok(());
        }
        // SAFETY: no buffer is passed (the frames are in the ring); the socket is bound,
        // so no address is needed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc < 0 {
            let error = io::Error::last_os_error();
            if errno_is(
                &error,
                &[libc::EAGAIN, libc::EWOULDBLOCK, libc::EINTR, libc::ENOBUFS],
            ) {
                // Some frames may still wait in the ring: send them next time.
                self.kick_errors += u64::from(errno_is(&error, &[libc::ENOBUFS]));
                self.kick_pending = true;
                return Ok(());
            }
            return Err(RawError::io("sendto(PACKET_TX_RING)", error));
        }
        self.kick_pending = false;
        Ok(())
    }

    /// Sends what an interrupted [`RingSender::kick`] left in the ring, if anything.
    pub fn flush(&mut self) -> Result<(), RawError> {
        if self.kick_pending {
            self.kick()?;
        }
        Ok(())
    }
}

impl Drop for RingSender {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; `ring` is not used after.
        unsafe { libc::munmap(self.map, self.map_len) };
    }
}

impl AsRawFd for RingSender {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Bytes of an IPv4-over-Ethernet frame's link header.
pub const ETH_HEADER_LEN: usize = 14;

/// Writes an Ethernet header (`dst`, `src`, EtherType IPv4) and `packet` after it into
/// `out`; returns the frame's length, or 0 if it does not fit.
pub fn ipv4_frame(out: &mut [u8], dst: [u8; 6], src: [u8; 6], packet: &[u8]) -> usize {
    let len = ETH_HEADER_LEN + packet.len();
    let Some(frame) = out.get_mut(..len) else {
        return 0;
    };
    frame[..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    frame[ETH_HEADER_LEN..].copy_from_slice(packet);
    len
}

const _: () = assert!(BLOCK_SIZE.is_multiple_of(FRAME_SIZE) && FRAME_SIZE.is_multiple_of(16));
const _: () = assert!(size_of::<TpacketReq>() == 16);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A ring over ordinary memory; `kernel_sends` plays the kernel's part.
    struct Fake {
        mem: Vec<u64>,
        ring: Ring,
    }

    const SLOT: usize = 128;

    fn fake(slots: usize) -> Fake {
        let mut mem = vec![0u64; SLOT * slots / 8];
        // SAFETY: the Vec's buffer (8-aligned, SLOT * slots bytes) outlives the ring, which
        // is dropped with it, and the Vec is never resized.
        let ring = unsafe { Ring::new(mem.as_mut_ptr().cast::<u8>(), SLOT, slots) };
        Fake { mem, ring }
    }

    impl Fake {
        fn status(&self, i: usize) -> u32 {
            let bytes = &self.bytes()[i * SLOT..i * SLOT + 4];
            u32::from_ne_bytes(bytes.try_into().unwrap())
        }
        fn set_status(&mut self, i: usize, s: u32) {
            self.ring.status_of(i).store(s, Ordering::Release);
        }
        fn bytes(&self) -> &[u8] {
            // SAFETY: the Vec's own bytes, read while no write is under way.
            unsafe {
                std::slice::from_raw_parts(self.mem.as_ptr().cast::<u8>(), self.mem.len() * 8)
            }
        }
        /// The kernel sends every slot marked, in order from `from`, and frees it; returns
        /// the frames.
        fn kernel_sends(&mut self) -> Vec<Vec<u8>> {
            let n = self.mem.len() * 8 / SLOT;
            let mut out = Vec::new();
            for i in 0..n {
                if self.status(i) == TP_STATUS_SEND_REQUEST {
                    let b = self.bytes();
                    let len = u32::from_ne_bytes(b[i * SLOT + 4..i * SLOT + 8].try_into().unwrap());
                    let start = i * SLOT + DATA_OFFSET;
                    out.push(b[start..start + len as usize].to_vec());
                    self.set_status(i, TP_STATUS_AVAILABLE);
                }
            }
            out
        }
    }

    #[test]
    fn frames_land_in_order_with_their_lengths() {
        let mut f = fake(4);
        assert_eq!(f.ring.max_frame(), SLOT - DATA_OFFSET);
        assert_eq!(f.ring.push(b"one"), Ok(true));
        assert_eq!(f.ring.push(b"second"), Ok(true));
        assert_eq!(f.status(0), TP_STATUS_SEND_REQUEST);
        assert_eq!(f.status(2), TP_STATUS_AVAILABLE);
        assert_eq!(f.ring.take_queued(), 2);
        assert_eq!(f.ring.take_queued(), 0);
        assert!(f.ring.any_waiting());
        assert_eq!(f.kernel_sends(), vec![b"one".to_vec(), b"second".to_vec()]);
        assert!(!f.ring.any_waiting());
    }

    #[test]
    fn full_ring_takes_nothing_until_the_kernel_frees_the_next_slot() {
        let mut f = fake(3);
        for _ in 0..3 {
            assert_eq!(f.ring.push(b"x"), Ok(true));
        }
        assert!(!f.ring.has_room());
        assert_eq!(f.ring.push(b"y"), Ok(false));
        assert_eq!(f.ring.take_queued(), 3);
        // The kernel frees a later slot first: the head (slot 0) is still its own.
        f.set_status(1, TP_STATUS_AVAILABLE);
        assert_eq!(f.ring.push(b"y"), Ok(false));
        f.set_status(0, TP_STATUS_SENDING);
        assert_eq!(f.ring.push(b"y"), Ok(false));
        f.set_status(0, TP_STATUS_AVAILABLE);
        // Wraps around to slot 0, then slot 1.
        assert_eq!(f.ring.push(b"y0"), Ok(true));
        assert_eq!(f.ring.push(b"y1"), Ok(true));
        assert_eq!(f.ring.push(b"y2"), Ok(false));
        let sent = f.kernel_sends();
        assert_eq!(sent, vec![b"y0".to_vec(), b"y1".to_vec(), b"x".to_vec()]);
    }

    #[test]
    fn a_slot_the_kernel_refused_is_reused() {
        let mut f = fake(2);
        assert_eq!(f.ring.push(b"bad"), Ok(true));
        assert_eq!(f.ring.push(b"ok"), Ok(true));
        f.set_status(0, TP_STATUS_WRONG_FORMAT);
        assert!(f.ring.has_room());
        assert_eq!(f.ring.push(b"again"), Ok(true));
    }

    #[test]
    fn oversized_or_empty_frames_are_refused_and_the_slot_stays_free() {
        let mut f = fake(2);
        let big = vec![0u8; SLOT - DATA_OFFSET + 1];
        assert_eq!(f.ring.push(&big), Err(big.len()));
        assert_eq!(f.ring.push(b""), Err(0));
        assert_eq!(f.status(0), TP_STATUS_AVAILABLE);
        assert_eq!(f.ring.take_queued(), 0);
        let exact = vec![7u8; SLOT - DATA_OFFSET];
        assert_eq!(f.ring.push(&exact), Ok(true));
        assert_eq!(f.kernel_sends(), vec![exact]);
    }

    /// TCP answers in `got` from `from`: (their source port, flags byte).
    fn answers_from(got: &[crate::io::raw::Received], from: std::net::Ipv4Addr) -> Vec<(u16, u8)> {
        got.iter()
            .filter_map(|r| {
                let d = &r.data;
                let ihl = usize::from(d.first()? & 0x0f) * 4;
                if *d.get(9)? != 6 || d.get(12..16)? != from.octets() {
                    return None;
                }
                let t = d.get(ihl..)?;
                Some((u16::from_be_bytes([*t.first()?, *t.get(1)?]), *t.get(13)?))
            })
            .collect()
    }

    /// On a real veth, with and without the qdisc: SYN frames written into the ring reach
    /// the peer, whose SYN-ACK (open port) and RST (closed port) come back.
    #[test]
    fn ring_frames_reach_the_wire() {
        use crate::io::raw::tests::{collect, NetnsPair};
        use crate::io::raw::RawReceiver;
        use portolan_wire::build::{EthernetParams, Ipv4Params, TcpParams, TcpTemplateV4};
        use portolan_wire::ethernet::MacAddr;
        let Some(lab) = NetnsPair::new() else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        let (mac_a, mac_b) = (NetnsPair::mac_in(&lab.a), NetnsPair::mac_in(&lab.b));
        lab.run(move || {
            let ifindex = crate::io::netif::interfaces()
                .unwrap()
                .into_iter()
                .find(|i| i.name == "v0")
                .expect("v0")
                .ifindex;
            let eth = EthernetParams {
                src: MacAddr(mac_a),
                dst: MacAddr(mac_b),
            };
            let ip = Ipv4Params {
                src: a,
                dst: b,
                ttl: 64,
                ident: 1,
                dont_frag: false,
            };
            let mut t = TcpTemplateV4::new(Some(&eth), &ip, &TcpParams::syn(0, 0, 0)).unwrap();
            let mut rx = RawReceiver::new(&[a]).unwrap();
            for (k, bypass) in [false, true].into_iter().enumerate() {
                let mut tx = RingSender::new(ifindex, bypass).unwrap();
                let sport = 40_000 + 10 * k as u16;
                let open = t.probe(b, sport, 8080, 7).to_vec();
                let closed = t.probe(b, sport + 1, 8081, 9).to_vec();
                assert_eq!(tx.send_batch(&[&open, &closed]).unwrap(), 2);
                let got = collect(&mut rx, Duration::from_secs(2), |g| g.len() >= 2);
                let mut seen = answers_from(&got, b);
                seen.sort_unstable();
                // SYN-ACK (0x12) from 8080, RST-ACK (0x14) from 8081.
                assert_eq!(seen, vec![(8080, 0x12), (8081, 0x14)], "bypass {bypass}");
                assert_eq!(tx.kick_errors, 0);
            }
        });
    }

    #[test]
    fn ipv4_frame_puts_the_link_header_first() {
        let mut out = [0u8; 64];
        let packet = [0x45, 0, 0, 20];
        let n = ipv4_frame(&mut out, [1; 6], [2; 6], &packet);
        assert_eq!(n, 18);
        assert_eq!(&out[..6], &[1; 6]);
        assert_eq!(&out[6..12], &[2; 6]);
        assert_eq!(&out[12..14], &[0x08, 0x00]);
        assert_eq!(&out[14..18], &packet);
        assert_eq!(ipv4_frame(&mut out[..17], [1; 6], [2; 6], &packet), 0);
    }
}
