//! Link-layer packet I/O on one interface, for ARP host discovery (`-PR`) and IPv6 neighbour
//! discovery (Nmap's "nd-response").
//!
//! - [`LinkSender`]: an `AF_PACKET`/`SOCK_RAW` socket bound to one interface, sending
//!   complete Ethernet frames the caller built (with `portolan_wire::build`), many per
//!   `sendmmsg`. It is bound to protocol 0, so it never receives anything.
//! - [`LinkReceiver`]: an `AF_PACKET`/`SOCK_RAW` socket bound to one EtherType on one
//!   interface, delivering whole frames (Ethernet header included, so a reply's link-layer
//!   source is at hand). A classic BPF program, attached before the socket is bound, drops
//!   everything else in the kernel, outgoing frames included:
//!   - [`LinkReceiver::arp`] (`ETH_P_ARP`): ARP replies whose target protocol address is one
//!     of our IPv4 addresses (requests and replies to others are dropped);
//!   - [`LinkReceiver::neighbor_adverts`] (`ETH_P_IPV6`): ICMPv6 neighbour advertisements
//!     (next header 58 with no extension header, type 136); the ND engine checks the rest.
//!
//!   (Frames with a VLAN tag left in place do not match; Linux normally strips the tag
//!   before packet sockets on the parent interface see the frame.)
//!
//! Both sockets are non-blocking, as in [`crate::io::raw`]; errors are [`RawError`]s.

use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use libc::{c_int, c_uint, c_void, socklen_t};

use crate::io::raw::{
    errno_is, jump, new_socket, set_buffer, set_opt, stmt, wait_readable, RawError, Received,
    BPF_AD_PKTTYPE, BPF_DROP, BPF_JEQ_K, BPF_KEEP, BPF_LD_B_ABS, BPF_LD_H_ABS, BPF_LD_W_ABS,
    BPF_RET_K, PACKET_IGNORE_OUTGOING, PACKET_OUTGOING, RECV_BUF_LEN,
};

/// The most frames one `sendmmsg` call takes.
pub const MAX_LINK_BATCH: usize = 256;
const ETH_HEADER_LEN: usize = 14;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const LINK_RECV_BUFFER: c_int = 1 << 20;

/// Binds a packet socket to `ifindex` for `protocol` (host order; 0 = receive nothing).
pub(crate) fn bind_packet(fd: &OwnedFd, ifindex: u32, protocol: u16) -> Result<(), RawError> {
    let ifindex = c_int::try_from(ifindex).map_err(|_| {
        RawError::io(
            "bind(AF_PACKET)",
            io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range"),
        )
    })?;
    // SAFETY: all-zero is a valid `sockaddr_ll`.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a live, initialised sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
            size_of::<libc::sockaddr_ll>() as socklen_t,
        )
    };
    if rc != 0 {
        return Err(RawError::last_os("bind(AF_PACKET)"));
    }
    Ok(())
}

/// Sends complete Ethernet frames on one interface.
pub struct LinkSender {
    fd: OwnedFd,
    ifindex: c_int,
    // Scratch for sendmmsg, rewritten by every call (see RawSender).
    addrs: Vec<libc::sockaddr_ll>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in the scratch vectors are only meaningful during one
// `send_batch` call (`&mut self`), which rewrites them before use.
unsafe impl Send for LinkSender {}

impl LinkSender {
    /// Opens the socket on interface `ifindex` (ENODEV from `bind` if there is no such
    /// interface).
    pub fn new(ifindex: u32) -> Result<Self, RawError> {
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        bind_packet(&fd, ifindex, 0)?;
        Ok(Self {
            fd,
            ifindex: ifindex as c_int, // checked by bind_packet
            addrs: Vec::with_capacity(MAX_LINK_BATCH),
            iovs: Vec::with_capacity(MAX_LINK_BATCH),
            hdrs: Vec::with_capacity(MAX_LINK_BATCH),
        })
    }

    /// Sends `frames` in order and returns how many were sent. As
    /// [`crate::io::raw::RawSender::send_batch`]: never blocks; a full queue (EAGAIN, ENOBUFS)
    /// or a signal returns the count so far; an `Err` means nothing was sent by this call
    /// and concerns `frames[0]` (e.g. [`RawError::ShortFrame`]).
    pub fn send_batch(&mut self, frames: &[&[u8]]) -> Result<usize, RawError> {
        let mut sent = 0;
        for chunk in frames.chunks(MAX_LINK_BATCH) {
            // A short frame ends the batch before it; alone, it is the error.
            let ok = chunk
                .iter()
                .position(|f| f.len() < ETH_HEADER_LEN)
                .unwrap_or(chunk.len());
            if ok == 0 {
                return if sent > 0 {
                    Ok(sent)
                } else {
                    Err(RawError::ShortFrame(chunk[0].len()))
                };
            }
            let cut_short = ok < chunk.len();
            let chunk = &chunk[..ok];
            self.addrs.clear();
            self.iovs.clear();
            self.hdrs.clear();
            for frame in chunk {
                // SAFETY: all-zero is a valid `sockaddr_ll`.
                let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                sll.sll_family = libc::AF_PACKET as u16;
                // The frame's own EtherType (already in network order in the frame).
                sll.sll_protocol = u16::from_ne_bytes([frame[12], frame[13]]);
                sll.sll_ifindex = self.ifindex;
                sll.sll_halen = 6;
                sll.sll_addr[..6].copy_from_slice(&frame[..6]);
                self.addrs.push(sll);
                self.iovs.push(libc::iovec {
                    iov_base: frame.as_ptr().cast_mut().cast::<c_void>(),
                    iov_len: frame.len(),
                });
            }
            let (addrs, iovs) = (self.addrs.as_mut_ptr(), self.iovs.as_mut_ptr());
            for i in 0..chunk.len() {
                // SAFETY: all-zero is a valid `mmsghdr`.
                let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
                // In bounds: i < chunk.len() == addrs.len() == iovs.len().
                hdr.msg_hdr.msg_name = addrs.wrapping_add(i).cast::<c_void>();
                hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as socklen_t;
                hdr.msg_hdr.msg_iov = iovs.wrapping_add(i);
                hdr.msg_hdr.msg_iovlen = 1;
                self.hdrs.push(hdr);
            }
            // SAFETY: `hdrs` holds `chunk.len()` headers pointing into `addrs`/`iovs` (not
            // reallocated: capacity MAX_LINK_BATCH >= chunk.len()) and the caller's frames,
            // all alive for the call; the kernel writes only `msg_len`.
            let rc = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    chunk.len() as c_uint,
                    0,
                )
            };
            if rc < 0 {
                let error = io::Error::last_os_error();
                let transient = [libc::EAGAIN, libc::EWOULDBLOCK, libc::ENOBUFS, libc::EINTR];
                if sent > 0 || errno_is(&error, &transient) {
                    return Ok(sent);
                }
                return Err(RawError::io("sendmmsg(AF_PACKET)", error));
            }
            let n = rc as usize;
            sent += n;
            if n < chunk.len() || cut_short {
                return Ok(sent);
            }
        }
        Ok(sent)
    }
}

impl AsRawFd for LinkSender {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The ARP receive filter: keep incoming ARP replies whose target protocol address is
/// `local`. Offsets count from the Ethernet header (SOCK_RAW): EtherType at 12, ARP
/// operation at 20, target protocol address at 38.
fn arp_filter_program(local: Ipv4Addr) -> Vec<libc::sock_filter> {
    vec![
        // 0: A = packet type; 1: outgoing -> 9 (drop).
        stmt(BPF_LD_W_ABS, BPF_AD_PKTTYPE),
        jump(BPF_JEQ_K, u32::from(PACKET_OUTGOING), 7, 0),
        // 2: A = EtherType; 3: ARP -> 4, else -> 9.
        stmt(BPF_LD_H_ABS, 12),
        jump(BPF_JEQ_K, u32::from(ETH_P_ARP), 0, 5),
        // 4: A = operation; 5: reply -> 6, else -> 9.
        stmt(BPF_LD_H_ABS, 20),
        jump(BPF_JEQ_K, 2, 0, 3),
        // 6: A = target protocol address; 7: ours -> 8 (keep), else -> 9.
        stmt(BPF_LD_W_ABS, 38),
        jump(BPF_JEQ_K, u32::from(local), 0, 1),
        stmt(BPF_RET_K, BPF_KEEP),
        stmt(BPF_RET_K, BPF_DROP),
    ]
}

/// The neighbour advertisement receive filter: keep incoming ICMPv6 (next header 58 right
/// after the fixed IPv6 header) messages of type 136. Offsets count from the Ethernet header
/// (SOCK_RAW): EtherType at 12, next header at 14 + 6, ICMPv6 type at 14 + 40.
fn nd_filter_program() -> Vec<libc::sock_filter> {
    vec![
        // 0: A = packet type; 1: outgoing -> 9 (drop).
        stmt(BPF_LD_W_ABS, BPF_AD_PKTTYPE),
        jump(BPF_JEQ_K, u32::from(PACKET_OUTGOING), 7, 0),
        // 2: A = EtherType; 3: IPv6 -> 4, else -> 9.
        stmt(BPF_LD_H_ABS, 12),
        jump(BPF_JEQ_K, u32::from(ETH_P_IPV6), 0, 5),
        // 4: A = next header; 5: ICMPv6 -> 6, else -> 9.
        stmt(BPF_LD_B_ABS, (ETH_HEADER_LEN + 6) as u32),
        jump(BPF_JEQ_K, 58, 0, 3),
        // 6: A = ICMPv6 type; 7: neighbour advertisement -> 8 (keep), else -> 9.
        stmt(BPF_LD_B_ABS, (ETH_HEADER_LEN + 40) as u32),
        jump(BPF_JEQ_K, 136, 0, 1),
        stmt(BPF_RET_K, BPF_KEEP),
        stmt(BPF_RET_K, BPF_DROP),
    ]
}

/// Reads filtered frames of one EtherType on one interface, whole (Ethernet header first).
pub struct LinkReceiver {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl LinkReceiver {
    /// ARP replies to `local` on `ifindex`.
    pub fn arp(ifindex: u32, local: Ipv4Addr) -> Result<Self, RawError> {
        Self::open(ifindex, ETH_P_ARP, arp_filter_program(local))
    }

    /// ICMPv6 neighbour advertisements on `ifindex` (to any address: the caller checks the
    /// destination, target and flags).
    pub fn neighbor_adverts(ifindex: u32) -> Result<Self, RawError> {
        Self::open(ifindex, ETH_P_IPV6, nd_filter_program())
    }

    /// Opens the socket for `protocol` frames on `ifindex`; the filter is attached before
    /// the socket is bound, so no unfiltered frame is ever queued.
    fn open(
        ifindex: u32,
        protocol: u16,
        mut prog: Vec<libc::sock_filter>,
    ) -> Result<Self, RawError> {
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?;
        set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, LINK_RECV_BUFFER);
        let one: c_int = 1;
        let _ = set_opt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one);
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
            .map_err(|e| RawError::io("setsockopt(SO_ATTACH_FILTER)", e))?;
        bind_packet(&fd, ifindex, protocol)?;
        Ok(Self {
            fd,
            buf: vec![0; RECV_BUF_LEN],
        })
    }

    /// Appends up to `max` waiting frames to `out` without blocking; returns how many.
    pub fn recv_batch(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        let mut appended = 0;
        for _ in 0..max {
            // SAFETY: all-zero is a valid `sockaddr_ll`.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = size_of::<libc::sockaddr_ll>() as socklen_t;
            // SAFETY: `buf` and `from` are live buffers of the lengths passed; the kernel
            // writes at most those. MSG_TRUNC makes it return the frame's real length.
            let rc = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast::<c_void>(),
                    self.buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast::<libc::sockaddr>(),
                    &mut from_len,
                )
            };
            if rc < 0 {
                let error = io::Error::last_os_error();
                if appended > 0 || errno_is(&error, &[libc::EAGAIN, libc::EWOULDBLOCK, libc::EINTR])
                {
                    break;
                }
                return Err(RawError::io("recvfrom(AF_PACKET)", error));
            }
            if from.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            let len = rc as usize;
            out.push(Received {
                data: self.buf[..len.min(self.buf.len())].to_vec(),
                at: Instant::now(),
                truncated: len > self.buf.len(),
            });
            appended += 1;
        }
        Ok(appended)
    }

    /// Waits up to `timeout` for a frame to be readable. `Ok(false)` on timeout or signal.
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool, RawError> {
        wait_readable(&self.fd, timeout)
    }
}

impl AsRawFd for LinkReceiver {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::raw::tests::run_bpf;
    use portolan_wire::arp;
    use portolan_wire::build::{
        build_arp_request, build_icmpv6, build_neighbor_solicit, EthernetParams, Ipv6Params,
    };
    use portolan_wire::ethernet::{self, EtherType, MacAddr};
    use portolan_wire::icmpv6::{self, NeighborFlags};
    use std::net::Ipv6Addr;

    const US: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 1);
    const THEM: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 2);

    fn reply(op: arp::Operation, tpa: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0u8; 42];
        let eth = ethernet::Repr {
            src_addr: MacAddr([2, 0, 0, 0, 0, 2]),
            dst_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            ethertype: EtherType::ARP,
            vlan_tci: None,
        };
        eth.emit(&mut ethernet::Packet::new_unchecked(&mut f[..]))
            .unwrap();
        let a = arp::Repr {
            operation: op,
            source_hardware_addr: MacAddr([2, 0, 0, 0, 0, 2]),
            source_protocol_addr: THEM,
            target_hardware_addr: MacAddr([2, 0, 0, 0, 0, 1]),
            target_protocol_addr: tpa,
        };
        a.emit(&mut arp::Packet::new_unchecked(&mut f[14..]))
            .unwrap();
        f
    }

    #[test]
    fn arp_filter_keeps_only_incoming_replies_to_us() {
        let prog = arp_filter_program(US);
        const HOST: u8 = 0;
        let good = reply(arp::Operation::REPLY, US);
        assert_eq!(run_bpf(&prog, &good, HOST), BPF_KEEP);
        assert_eq!(run_bpf(&prog, &good, PACKET_OUTGOING), BPF_DROP);
        assert_eq!(
            run_bpf(&prog, &reply(arp::Operation::REQUEST, US), HOST),
            BPF_DROP
        );
        assert_eq!(
            run_bpf(&prog, &reply(arp::Operation::REPLY, THEM), HOST),
            BPF_DROP
        );
        let mut ip = good.clone();
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(run_bpf(&prog, &ip, HOST), BPF_DROP);
        for len in 0..good.len() {
            assert_eq!(run_bpf(&prog, &good[..len], HOST), BPF_DROP, "len {len}");
        }
        // Our own broadcast request never matches (operation 1).
        let mut req = [0u8; 42];
        build_arp_request(&mut req, MacAddr([2, 0, 0, 0, 0, 1]), US, THEM).unwrap();
        assert_eq!(run_bpf(&prog, &req, HOST), BPF_DROP);
    }

    const US6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0, 1);
    const THEM6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0, 2);

    /// An ICMPv6 message from THEM6 to US6 in an Ethernet frame.
    fn icmpv6_frame(repr: &icmpv6::Repr) -> Vec<u8> {
        let eth = EthernetParams {
            src: MacAddr([2, 0, 0, 0, 0, 2]),
            dst: MacAddr([2, 0, 0, 0, 0, 1]),
        };
        let ip = Ipv6Params {
            src: THEM6,
            dst: US6,
            hop_limit: 255,
            traffic_class: 0,
            flow_label: 0,
        };
        let mut f = vec![0u8; 128];
        let n = build_icmpv6(&mut f, Some(&eth), &ip, repr).unwrap();
        f.truncate(n);
        f
    }

    #[test]
    fn nd_filter_keeps_only_incoming_neighbor_adverts() {
        let prog = nd_filter_program();
        const HOST: u8 = 0;
        let good = icmpv6_frame(&icmpv6::Repr::NeighborAdvert {
            flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            target_addr: THEM6,
            target_lladdr: Some(MacAddr([2, 0, 0, 0, 0, 2])),
        });
        assert_eq!(run_bpf(&prog, &good, HOST), BPF_KEEP);
        assert_eq!(run_bpf(&prog, &good, PACKET_OUTGOING), BPF_DROP);
        // Multicast and otherhost packet types still count (the engine checks addresses).
        assert_eq!(run_bpf(&prog, &good, 2), BPF_KEEP);
        for len in 0..=ETH_HEADER_LEN + 40 {
            assert_eq!(run_bpf(&prog, &good[..len], HOST), BPF_DROP, "len {len}");
        }
        // Another EtherType, another next header (an extension header), another type.
        let mut v4 = good.clone();
        v4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(run_bpf(&prog, &v4, HOST), BPF_DROP);
        let mut hop_by_hop = good.clone();
        hop_by_hop[ETH_HEADER_LEN + 6] = 0;
        assert_eq!(run_bpf(&prog, &hop_by_hop, HOST), BPF_DROP);
        let echo = icmpv6_frame(&icmpv6::Repr::EchoReply {
            ident: 1,
            seq_no: 1,
            data: &[0; 32],
        });
        assert_eq!(run_bpf(&prog, &echo, HOST), BPF_DROP);
        // Solicitations (ours or a neighbour's) never match (type 135).
        let mut ns = [0u8; 128];
        let n = build_neighbor_solicit(&mut ns, MacAddr([2, 0, 0, 0, 0, 1]), US6, THEM6).unwrap();
        assert_eq!(run_bpf(&prog, &ns[..n], HOST), BPF_DROP);
    }

    #[test]
    fn sockets_need_privilege_or_a_real_interface() {
        if !crate::io::sys::is_privileged() {
            assert!(matches!(LinkSender::new(1), Err(RawError::NotPermitted)));
            assert!(matches!(
                LinkReceiver::arp(1, US),
                Err(RawError::NotPermitted)
            ));
            assert!(matches!(
                LinkReceiver::neighbor_adverts(1),
                Err(RawError::NotPermitted)
            ));
            return;
        }
        // The kernel accepts both filter programs (opening a receiver sends nothing).
        LinkReceiver::arp(1, US).unwrap();
        LinkReceiver::neighbor_adverts(1).unwrap();
        // No interface has index u32::MAX >> 1: bind fails with ENODEV (sends nothing).
        assert!(matches!(
            LinkSender::new(u32::MAX >> 1),
            Err(RawError::Io { .. })
        ));
        assert!(matches!(
            LinkSender::new(u32::MAX),
            Err(RawError::Io { .. })
        ));
        // Short frames are refused before any system call sends anything.
        let mut tx = LinkSender::new(1).unwrap();
        assert!(matches!(
            tx.send_batch(&[&[0u8; 13][..]]),
            Err(RawError::ShortFrame(13))
        ));
        assert_eq!(tx.send_batch(&[]).unwrap(), 0);
    }
}
