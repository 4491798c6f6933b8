//! Linux raw-packet I/O: the sockets a SYN (or other raw) scan sends probes on and reads
//! replies from. This module owns the file descriptors, the kernel-side receive filter and
//! the batching syscalls; it knows nothing about probes, timing or matching replies.
//!
//! - [`RawSender`]: an `AF_INET`/`SOCK_RAW`/`IPPROTO_RAW` socket (`IP_HDRINCL` implied). The
//!   caller hands it complete IPv4 packets (built by `portolan-wire` with `eth: None`); the
//!   kernel routes them, resolves ARP and fills in the IP checksum and total length (and the
//!   identification, if it is 0). [`RawSender::send_batch`] sends a batch with `sendmmsg`.
//! - [`RawReceiver`]: an `AF_PACKET`/`SOCK_DGRAM` socket for `ETH_P_IP` on every interface of
//!   the network namespace ("cooked": packets arrive without the link header). A classic BPF
//!   program keeps only TCP, UDP and ICMP packets addressed to one of our source addresses;
//!   outgoing packets are ignored. [`RawReceiver::recv_batch`] reads with `recvmmsg`.
//! - [`source_for`]: the source address the kernel would pick for a destination.
//! - [`can_use_raw`]: whether this process may open raw sockets at all.
//!
//! Both sockets are non-blocking and synchronous: the caller polls them (or uses
//! [`RawReceiver::wait_readable`]) and retries sends the kernel refused for lack of room.
//!
//! Things a caller should know:
//!
//! - When a raw SYN draws a SYN-ACK, the local kernel, which knows of no such connection,
//!   answers it with a RST. That is expected and harmless (Nmap's `-sS` relies on it too).
//! - The first probes to a not-yet-resolved on-link neighbour wait in the kernel's ARP queue,
//!   which holds only `unres_qlen_bytes` (about 200 KiB of skbs); beyond that they are dropped
//!   silently.
//! - Outgoing packets: a packet socket bound to one protocol (ETH_P_IP) is not a tap, so the
//!   kernel only hands it received packets; PACKET_IGNORE_OUTGOING (Linux >= 4.20), a BPF
//!   packet-type test and a `sll_pkttype` check each also exclude outgoing ones, in case.
//!   But on loopback a probe is transmitted *and* received: a scan of 127.0.0.1 with
//!   127.0.0.1 among the local addresses reads its own probes back (as incoming packets).
//! - [`Received::at`] is taken when `recvmmsg` returns, not when the packet arrived, so it
//!   includes however long the caller took to come and read.

use std::cell::Cell;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use libc::{c_int, c_uint, c_void, socklen_t};

/// Why a raw socket could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// The process lacks CAP_NET_RAW.
    #[error(
        "raw sockets need root or CAP_NET_RAW: run as root, or grant it with \
         'sudo setcap cap_net_raw,cap_net_admin+eip $(command -v portolan)', \
         or use -sT (connect scan)"
    )]
    NotPermitted,
    /// A system call failed; `call` names it.
    #[error("{call}: {error}")]
    Io {
        call: &'static str,
        error: io::Error,
    },
    /// The routing table has no route to this address.
    #[error("no route to {0}")]
    NoRoute(IpAddr),
    /// The address is a broadcast address of a network this machine is on: the kernel
    /// refuses to send to it (EACCES), and Nmap skips it too.
    #[error("{0} is a broadcast address")]
    Broadcast(IpAddr),
    /// A frame handed to a link-layer sender is shorter than an Ethernet header.
    #[error("frame of {0} bytes is shorter than an Ethernet header")]
    ShortFrame(usize),
}

impl RawError {
    pub(crate) fn io(call: &'static str, error: io::Error) -> Self {
        Self::Io { call, error }
    }

    pub(crate) fn last_os(call: &'static str) -> Self {
        Self::io(call, io::Error::last_os_error())
    }
}

/// The most packets one `sendmmsg` call takes (the kernel caps `vlen` at `UIO_MAXIOV`).
pub const MAX_SEND_BATCH: usize = 1024;
/// The most packets one `recvmmsg` call reads.
pub const RECV_BATCH: usize = 64;
/// Bytes kept of each received packet; longer ones are cut (see [`Received::truncated`]).
/// IP + TCP headers with options, or an ICMP error quoting 576 bytes, fit easily.
pub const RECV_BUF_LEN: usize = 2048;
/// The most local addresses the receive filter holds (2 BPF instructions each, within the
/// kernel's limit of 4096 instructions per program).
pub const MAX_LOCAL_ADDRS: usize = 2000;

const SEND_BUFFER: c_int = 4 << 20;
const RECV_BUFFER: c_int = 32 << 20;

// Packet-socket constants, spelled out rather than taken from `libc` so that this compiles
// against any libc version (values from <linux/if_packet.h>).
const PACKET_STATISTICS: c_int = 6;
pub(crate) const PACKET_IGNORE_OUTGOING: c_int = 23;
pub(crate) const PACKET_OUTGOING: u8 = 4;

/// `struct tpacket_stats` from <linux/if_packet.h>.
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    /// Packets that passed the filter (including the dropped ones); unused.
    _tp_packets: c_uint,
    tp_drops: c_uint,
}

pub(crate) fn errno_is(error: &io::Error, codes: &[c_int]) -> bool {
    error.raw_os_error().is_some_and(|e| codes.contains(&e))
}

/// A new non-blocking, close-on-exec socket. EPERM/EACCES become [`RawError::NotPermitted`].
pub(crate) fn new_socket(domain: c_int, ty: c_int, protocol: c_int) -> Result<OwnedFd, RawError> {
    // SAFETY: socket(2) takes no pointers; it returns a new descriptor or -1.
    let fd = unsafe {
        libc::socket(
            domain,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        let error = io::Error::last_os_error();
        if errno_is(&error, &[libc::EPERM, libc::EACCES]) {
            return Err(RawError::NotPermitted);
        }
        return Err(RawError::io("socket", error));
    }
    // SAFETY: `fd` is a descriptor socket(2) just returned; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// setsockopt(2) with a plain-data option value.
pub(crate) fn set_opt<T>(fd: &OwnedFd, level: c_int, name: c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of `size_of::<T>()` bytes, which the kernel only
    // reads (and copies) during the call; `fd` is an open descriptor.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<c_void>(),
            size_of::<T>() as socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a buffer size with the privileged `force` option (ignores `net.core.*mem_max`, needs
/// CAP_NET_ADMIN), falling back to the plain one (capped by the sysctl). Best effort.
pub(crate) fn set_buffer(fd: &OwnedFd, force: c_int, plain: c_int, bytes: c_int) {
    if set_opt(fd, libc::SOL_SOCKET, force, &bytes).is_err() {
        let _ = set_opt(fd, libc::SOL_SOCKET, plain, &bytes);
    }
}

/// Reads an integer socket option.
fn get_int_opt(fd: &OwnedFd, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `value` and `len` are live locals the kernel writes; `len` holds their size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut c_int).cast::<c_void>(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits up to `timeout` for `fd` to be readable, with poll(2). `Ok(false)` on timeout or
/// when a signal interrupts.
pub(crate) fn wait_readable(fd: &OwnedFd, timeout: Duration) -> Result<bool, RawError> {
    let ms = timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .min(c_int::MAX as u128) as c_int;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one live pollfd and we pass nfds = 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let error = io::Error::last_os_error();
        if errno_is(&error, &[libc::EINTR]) {
            return Ok(false);
        }
        return Err(RawError::io("poll", error));
    }
    Ok(rc > 0)
}

/// Checks that this process may open raw sockets (root or CAP_NET_RAW) by opening one.
pub fn can_use_raw() -> Result<(), RawError> {
    new_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW).map(drop)
}

/// The source address the kernel would use to reach `dst`: a UDP socket is `connect()`ed to
/// `dst:9` (which sends nothing) and asked its local address.
pub fn source_for(dst: Ipv4Addr) -> Result<Ipv4Addr, RawError> {
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .map_err(|e| RawError::io("bind (UDP, for source address)", e))?;
    if let Err(e) = socket.connect(SocketAddrV4::new(dst, 9)) {
        if errno_is(&e, &[libc::ENETUNREACH, libc::EHOSTUNREACH]) {
            return Err(RawError::NoRoute(IpAddr::V4(dst)));
        }
        return Err(RawError::io("connect (UDP, for source address)", e));
    }
    match socket.local_addr() {
        Ok(std::net::SocketAddr::V4(local)) => Ok(*local.ip()),
        Ok(other) => Err(RawError::io(
            "getsockname",
            io::Error::other(format!("unexpected local address {other}")),
        )),
        Err(e) => Err(RawError::io("getsockname", e)),
    }
}

/// The source address the kernel would use to reach the IPv6 address `dst`.
pub fn source_for_v6(dst: Ipv6Addr) -> Result<Ipv6Addr, RawError> {
    let socket = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0))
        .map_err(|e| RawError::io("bind (UDP6, for source address)", e))?;
    if let Err(e) = socket.connect(SocketAddrV6::new(dst, 9, 0, 0)) {
        if errno_is(
            &e,
            &[libc::ENETUNREACH, libc::EHOSTUNREACH, libc::EADDRNOTAVAIL],
        ) {
            return Err(RawError::NoRoute(IpAddr::V6(dst)));
        }
        return Err(RawError::io("connect (UDP6, for source address)", e));
    }
    match socket.local_addr() {
        Ok(SocketAddr::V6(local)) => Ok(*local.ip()),
        Ok(other) => Err(RawError::io(
            "getsockname",
            io::Error::other(format!("unexpected local address {other}")),
        )),
        Err(e) => Err(RawError::io("getsockname", e)),
    }
}

/// [`source_for`] or [`source_for_v6`], by the family of `dst`.
pub fn source_for_ip(dst: IpAddr) -> Result<IpAddr, RawError> {
    match dst {
        IpAddr::V4(d) => source_for(d).map(IpAddr::V4),
        IpAddr::V6(d) => source_for_v6(d).map(IpAddr::V6),
    }
}

/// [`source_for_ip`] for many destinations: one UDP socket per family, connected to each
/// destination in turn and disconnected (connect to AF_UNSPEC, which also forgets the
/// source address it picked) after reading its local address. Three system calls a
/// destination and no socket allocation, where `source_for_ip` opens a socket each time.
#[derive(Default)]
pub struct SourceFinder {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl SourceFinder {
    pub fn source_for(&mut self, dst: IpAddr) -> Result<IpAddr, RawError> {
        let slot = if dst.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        if slot.is_none() {
            let bind: SocketAddr = match dst {
                IpAddr::V4(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into(),
                IpAddr::V6(_) => SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0).into(),
            };
            *slot = Some(
                UdpSocket::bind(bind)
                    .map_err(|e| RawError::io("bind (UDP, for source address)", e))?,
            );
        }
        let Some(socket) = slot.as_ref() else {
            return source_for_ip(dst);
        };
        let result = match socket.connect(SocketAddr::new(dst, 9)) {
            Ok(()) => match socket.local_addr() {
                Ok(local) => Ok(local.ip()),
                Err(e) => Err(RawError::io("getsockname", e)),
            },
            Err(e)
                if errno_is(
                    &e,
                    &[libc::ENETUNREACH, libc::EHOSTUNREACH, libc::EADDRNOTAVAIL],
                ) =>
            {
                Err(RawError::NoRoute(dst))
            }
            // Without SO_BROADCAST, connecting to a broadcast address is refused.
            Err(e) if errno_is(&e, &[libc::EACCES]) => Err(RawError::Broadcast(dst)),
            Err(e) => Err(RawError::io("connect (UDP, for source address)", e)),
        };
        // Disconnect, so that the next connect picks its own source address.
        // SAFETY: all-zero is a valid sockaddr; AF_UNSPEC is 0. The kernel reads
        // `size_of::<sockaddr>()` bytes of it during the call.
        let unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
        // SAFETY: a live sockaddr of the size passed; the descriptor is open.
        let rc = unsafe {
            libc::connect(
                socket.as_raw_fd(),
                &unspec,
                size_of::<libc::sockaddr>() as socklen_t,
            )
        };
        if rc != 0 {
            // The socket may keep its old source: start afresh next time.
            *slot = None;
        }
        result
    }
}

/// Sends complete IPv4 (or, from [`RawSender::new_v6`], IPv6) packets on a raw socket, many
/// per system call.
pub struct RawSender {
    fd: OwnedFd,
    v6: bool,
    // Scratch for sendmmsg, reused across calls. The pointers in `iovs` and `hdrs` are only
    // meaningful during a `send_batch` call, which rewrites them first. Each address slot
    // is a sockaddr_in6, big enough for either family.
    addrs: Vec<libc::sockaddr_in6>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in the scratch vectors point into caller buffers only for the
// duration of one `send_batch` call (which takes `&mut self` and rewrites them before use);
// they are never dereferenced otherwise, so moving the sender to another thread is sound.
unsafe impl Send for RawSender {}

impl RawSender {
    /// Opens the raw socket: non-blocking, a 4 MiB send buffer (best effort), and
    /// `IP_RECVERR` so that a full device queue reports ENOBUFS instead of dropping silently.
    pub fn new() -> Result<Self, RawError> {
        let fd = new_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
        set_buffer(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, SEND_BUFFER);
        // Without IP_RECVERR, raw sockets turn ENOBUFS into success (see raw_send_hdrinc).
        let one: c_int = 1;
        set_opt(&fd, libc::IPPROTO_IP, libc::IP_RECVERR, &one)
            .map_err(|e| RawError::io("setsockopt(IP_RECVERR)", e))?;
        Ok(Self {
            fd,
            v6: false,
            addrs: Vec::with_capacity(MAX_SEND_BATCH),
            iovs: Vec::with_capacity(MAX_SEND_BATCH),
            hdrs: Vec::with_capacity(MAX_SEND_BATCH),
        })
    }

    /// The IPv6 sender: an `AF_INET6`/`SOCK_RAW`/`IPPROTO_RAW` socket, which takes complete
    /// IPv6 packets (header included) as its IPv4 twin does.
    pub fn new_v6() -> Result<Self, RawError> {
        let fd = new_socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
        set_buffer(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, SEND_BUFFER);
        let one: c_int = 1;
        set_opt(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, &one)
            .map_err(|e| RawError::io("setsockopt(IPV6_RECVERR)", e))?;
        Ok(Self {
            fd,
            v6: true,
            addrs: Vec::with_capacity(MAX_SEND_BATCH),
            iovs: Vec::with_capacity(MAX_SEND_BATCH),
            hdrs: Vec::with_capacity(MAX_SEND_BATCH),
        })
    }

    /// The send buffer size the kernel granted (it reports twice the requested value).
    pub fn send_buffer_size(&self) -> Option<usize> {
        get_int_opt(&self.fd, libc::SOL_SOCKET, libc::SO_SNDBUF)
            .ok()
            .and_then(|v| usize::try_from(v).ok())
    }

    /// Sends `packets` (destination, complete IPv4 packet whose destination it is) in order,
    /// with one `sendmmsg` per [`MAX_SEND_BATCH`] packets, and returns how many were sent.
    ///
    /// Never blocks: when the kernel has no room (EAGAIN, ENOBUFS) or a signal interrupts,
    /// it returns the count sent so far and the caller retries the rest later. An `Err`
    /// means that nothing was sent by this call and that the error concerns `packets[0]`
    /// (e.g. [`RawError::NoRoute`] for its destination): the caller may skip that packet
    /// and go on. An error after some packets were sent is reported by the next call.
    /// Packets of the other family than the socket's are refused with `InvalidInput`.
    pub fn send_batch(&mut self, packets: &[(IpAddr, &[u8])]) -> Result<usize, RawError> {
        let mut sent = 0;
        for chunk in packets.chunks(MAX_SEND_BATCH) {
            self.addrs.clear();
            self.iovs.clear();
            self.hdrs.clear();
            for (dst, packet) in chunk {
                // SAFETY: all-zero is a valid sockaddr_in6.
                let mut slot: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                match (*dst, self.v6) {
                    (IpAddr::V6(d), true) => {
                        slot.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                        slot.sin6_addr.s6_addr = d.octets();
                    }
                    (IpAddr::V4(d), false) => {
                        let v4 = libc::sockaddr_in {
                            sin_family: libc::AF_INET as libc::sa_family_t,
                            sin_port: 0,
                            sin_addr: libc::in_addr {
                                s_addr: u32::from(d).to_be(),
                            },
                            sin_zero: [0; 8],
                        };
                        // SAFETY: sockaddr_in (16 bytes) fits in sockaddr_in6 (28 bytes);
                        // both are plain C structs and the write is unaligned-safe.
                        unsafe {
                            std::ptr::write_unaligned(
                                (&mut slot as *mut libc::sockaddr_in6).cast::<libc::sockaddr_in>(),
                                v4,
                            )
                        };
                    }
                    _ => {
                        if sent > 0 || !self.addrs.is_empty() {
                            break;
                        }
                        return Err(RawError::io(
                            "sendmmsg",
                            io::Error::new(io::ErrorKind::InvalidInput, "address family mismatch"),
                        ));
                    }
                }
                self.addrs.push(slot);
                self.iovs.push(libc::iovec {
                    iov_base: packet.as_ptr().cast_mut().cast::<c_void>(),
                    iov_len: packet.len(),
                });
            }
            let (addrs, iovs) = (self.addrs.as_mut_ptr(), self.iovs.as_mut_ptr());
            let count = self.addrs.len();
            let namelen = if self.v6 {
                size_of::<libc::sockaddr_in6>()
            } else {
                size_of::<libc::sockaddr_in>()
            } as socklen_t;
            for i in 0..count {
                // SAFETY: all-zero is a valid `mmsghdr` (null pointers, zero lengths).
                let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
                // In bounds: i < count == addrs.len() == iovs.len().
                hdr.msg_hdr.msg_name = addrs.wrapping_add(i).cast::<c_void>();
                hdr.msg_hdr.msg_namelen = namelen;
                hdr.msg_hdr.msg_iov = iovs.wrapping_add(i);
                hdr.msg_hdr.msg_iovlen = 1;
                self.hdrs.push(hdr);
            }
            // SAFETY: `hdrs` holds `count` initialised headers whose name and iovec
            // pointers point into `addrs`/`iovs` (not reallocated since: capacity is
            // MAX_SEND_BATCH >= count) and into the caller's packets, all alive for the
            // call. The kernel reads those and writes only `msg_len` in `hdrs`.
            let rc = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    count as c_uint,
                    0,
                )
            };
            if rc < 0 {
                let error = io::Error::last_os_error();
                let transient = [libc::EAGAIN, libc::EWOULDBLOCK, libc::ENOBUFS, libc::EINTR];
                if sent > 0 || errno_is(&error, &transient) {
                    return Ok(sent);
                }
                if errno_is(&error, &[libc::ENETUNREACH, libc::EHOSTUNREACH]) {
                    return Err(RawError::NoRoute(chunk[0].0));
                }
                return Err(RawError::io("sendmmsg", error));
            }
            let n = rc as usize;
            sent += n;
            if n < chunk.len() {
                return Ok(sent);
            }
        }
        Ok(sent)
    }
}

impl AsRawFd for RawSender {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// One packet read by [`RawReceiver::recv_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The IPv4 packet from its header on (at most [`RECV_BUF_LEN`] bytes). Checksums may be
    /// unverified partial sums for packets from local veths or loopback.
    pub data: Vec<u8>,
    /// When the `recvmmsg` call that read it returned.
    pub at: Instant,
    /// The packet was longer than [`RECV_BUF_LEN`] and `data` is its beginning.
    pub truncated: bool,
}

/// Reads IPv4 replies addressed to us from every interface, many per system call.
pub struct RawReceiver {
    fd: OwnedFd,
    bufs: Vec<u8>,
    // Scratch for recvmmsg; the pointers in `iovs` and `hdrs` are rewritten by every call.
    addrs: Vec<libc::sockaddr_ll>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Drops counted so far (reading PACKET_STATISTICS resets the kernel's counters).
    drops: Cell<u64>,
}

// SAFETY: the raw pointers in the scratch vectors point into this struct's own heap buffers
// and are only used within `recv_batch` (which takes `&mut self` and rewrites them first), so
// moving the receiver to another thread is sound. (It stays !Sync because of the Cell.)
unsafe impl Send for RawReceiver {}

// Classic BPF opcodes used by the receive filter (from <linux/filter.h>).
pub(crate) const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub(crate) const BPF_LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
pub(crate) const BPF_LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
pub(crate) const BPF_LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
pub(crate) const BPF_LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
pub(crate) const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub(crate) const BPF_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
pub(crate) const BPF_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
pub(crate) const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub(crate) const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offset of the ancillary "packet type" load (SKF_AD_OFF + SKF_AD_PKTTYPE).
pub(crate) const BPF_AD_PKTTYPE: u32 = (-0x1000i32 + 4) as u32;
/// Filter verdict: keep the whole packet (the return value is a snap length).
pub(crate) const BPF_KEEP: u32 = 0x0004_0000;
/// Filter verdict: drop.
pub(crate) const BPF_DROP: u32 = 0;

pub(crate) const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub(crate) const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The receive filter: keep IPv4 TCP and UDP packets to a port in `ports`, and ICMP
/// packets, whose destination is in `local`, except outgoing ones. For SOCK_DGRAM packet sockets the program sees the packet from the
/// IP header on (offset 0 = first byte of the IPv4 header). Jump offsets count instructions
/// after the jump (0 = next), so the fixed prefix jumps to its own `ret` rather than to the
/// end, keeping every offset small whatever the number of addresses.
fn filter_program(
    local: &[Ipv4Addr],
    ports: RangeInclusive<u16>,
) -> Result<Vec<libc::sock_filter>, RawError> {
    let mut addrs: Vec<u32> = local.iter().map(|a| u32::from(*a)).collect();
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.len() > MAX_LOCAL_ADDRS {
        return Err(RawError::io(
            "receive filter",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("more than {MAX_LOCAL_ADDRS} local addresses"),
            ),
        ));
    }
    let (lo, hi) = (u32::from(*ports.start()), u32::from(*ports.end()));
    let mut prog = vec![
        // 0: A = packet type (ancillary data: host, broadcast, outgoing, ...).
        stmt(BPF_LD_W_ABS, BPF_AD_PKTTYPE),
        // 1: outgoing (our own packets) -> 13 (drop); else -> 2.
        jump(BPF_JEQ_K, u32::from(PACKET_OUTGOING), 11, 0),
        // 2: A = byte 0 (version << 4 | IHL).
        stmt(BPF_LD_B_ABS, 0),
        // 3: A &= 0xf0 (the version nibble).
        stmt(BPF_AND_K, 0xf0),
        // 4: version 4 -> 5; else -> 13 (drop).
        jump(BPF_JEQ_K, 0x40, 0, 8),
        // 5: A = byte 9 (protocol).
        stmt(BPF_LD_B_ABS, 9),
        // 6: TCP -> 9 (port check); else -> 7.
        jump(BPF_JEQ_K, 6, 2, 0),
        // 7: UDP -> 9; else -> 8.
        jump(BPF_JEQ_K, 17, 1, 0),
        // 8: ICMP -> 14 (destination check); else -> 13 (drop).
        jump(BPF_JEQ_K, 1, 5, 4),
        // 9: X = IP header length (4 * IHL).
        stmt(BPF_LDX_MSH, 0),
        // 10: A = destination port (2 bytes at X + 2).
        stmt(BPF_LD_H_IND, 2),
        // 11: port >= lo -> 12; else -> 13 (drop).
        jump(BPF_JGE_K, lo, 0, 1),
        // 12: port > hi -> 13 (drop); else -> 14.
        jump(BPF_JGT_K, hi, 0, 1),
        // 13: drop.
        stmt(BPF_RET_K, BPF_DROP),
        // 14: A = bytes 16..20 (destination address, loaded big-endian, as u32::from(addr)).
        stmt(BPF_LD_W_ABS, 16),
    ];
    for addr in addrs {
        // A == addr -> next instruction (keep); else skip it to the next address.
        prog.push(jump(BPF_JEQ_K, addr, 0, 1));
        prog.push(stmt(BPF_RET_K, BPF_KEEP));
    }
    // No address matched: drop.
    prog.push(stmt(BPF_RET_K, BPF_DROP));
    Ok(prog)
}

/// The IPv6 receive filter: TCP and UDP packets to a port in `ports`, and ICMPv6 packets
/// (no extension headers), whose destination is in `local`, except outgoing ones. 9 instructions per address compare the
/// four words of the destination (bytes 24..40).
fn filter_program_v6(
    local: &[Ipv6Addr],
    ports: RangeInclusive<u16>,
) -> Result<Vec<libc::sock_filter>, RawError> {
    let mut addrs: Vec<Ipv6Addr> = local.to_vec();
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.len() > MAX_LOCAL_ADDRS / 5 {
        return Err(RawError::io(
            "receive filter",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("more than {} local IPv6 addresses", MAX_LOCAL_ADDRS / 5),
            ),
        ));
    }
    let (lo, hi) = (u32::from(*ports.start()), u32::from(*ports.end()));
    let mut prog = vec![
        // 0, 1: outgoing -> 12 (drop).
        stmt(BPF_LD_W_ABS, BPF_AD_PKTTYPE),
        jump(BPF_JEQ_K, u32::from(PACKET_OUTGOING), 10, 0),
        // 2-4: version 6, else -> 12.
        stmt(BPF_LD_B_ABS, 0),
        stmt(BPF_AND_K, 0xf0),
        jump(BPF_JEQ_K, 0x60, 0, 7),
        // 5: next header; 6, 7: TCP, UDP -> 9 (port check); 8: ICMPv6 -> 13, else -> 12.
        stmt(BPF_LD_B_ABS, 6),
        jump(BPF_JEQ_K, 6, 2, 0),
        jump(BPF_JEQ_K, 17, 1, 0),
        jump(BPF_JEQ_K, 58, 4, 3),
        // 9: the destination port right after the fixed header; 10, 11: within the range
        // -> 13, else -> 12.
        stmt(BPF_LD_H_ABS, 42),
        jump(BPF_JGE_K, lo, 0, 1),
        jump(BPF_JGT_K, hi, 0, 1),
        // 12: drop.
        stmt(BPF_RET_K, BPF_DROP),
    ];
    for addr in addrs {
        let o = addr.octets();
        let words = [0, 4, 8, 12].map(|i| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]));
        for (k, w) in words.into_iter().enumerate() {
            prog.push(stmt(BPF_LD_W_ABS, 24 + 4 * k as u32));
            // A mismatch skips the rest of this address's block (to the next address).
            prog.push(jump(BPF_JEQ_K, w, 0, (7 - 2 * k) as u8));
        }
        prog.push(stmt(BPF_RET_K, BPF_KEEP));
    }
    prog.push(stmt(BPF_RET_K, BPF_DROP));
    Ok(prog)
}

fn attach_program(fd: &OwnedFd, mut prog: Vec<libc::sock_filter>) -> Result<(), RawError> {
    let fprog = libc::sock_fprog {
        // At most 12 + 2 * MAX_LOCAL_ADDRS (or 11 + 9 * MAX_LOCAL_ADDRS / 5) instructions:
        // fits u16.
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // The kernel copies and checks the program during the call; `prog` outlives it.
    set_opt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
        .map_err(|e| RawError::io("setsockopt(SO_ATTACH_FILTER)", e))
}

fn attach_filter(fd: &OwnedFd, local: &[Ipv4Addr]) -> Result<(), RawError> {
    attach_program(fd, filter_program(local, 0..=u16::MAX)?)
}

impl RawReceiver {
    /// Opens the packet socket for replies addressed to any of `local` (our source
    /// addresses): non-blocking, 32 MiB receive buffer (SO_RCVBUFFORCE when permitted, else
    /// SO_RCVBUF, capped by `net.core.rmem_max`), outgoing packets ignored, BPF filter
    /// attached before the socket is bound, so no unfiltered packet is ever queued.
    pub fn new(local: &[Ipv4Addr]) -> Result<Self, RawError> {
        Self::open(libc::ETH_P_IP, |fd| attach_filter(fd, local))
    }

    /// The IPv6 receiver: replies addressed to any of `local`.
    pub fn new_v6(local: &[Ipv6Addr]) -> Result<Self, RawError> {
        Self::for_ports(&[], local, 0..=u16::MAX)
    }

    /// A receiver for replies to `local4` or `local6` (one family: the other list empty)
    /// whose TCP or UDP destination port is in `ports` (ICMP is kept whatever it quotes):
    /// each per-core engine of a scan takes replies to its own source ports only.
    pub fn for_ports(
        local4: &[Ipv4Addr],
        local6: &[Ipv6Addr],
        ports: RangeInclusive<u16>,
    ) -> Result<Self, RawError> {
        if local6.is_empty() {
            Self::open(libc::ETH_P_IP, |fd| {
                attach_program(fd, filter_program(local4, ports)?)
            })
        } else {
            Self::open(libc::ETH_P_IPV6, |fd| {
                attach_program(fd, filter_program_v6(local6, ports)?)
            })
        }
    }

    fn open(
        ethertype: c_int,
        filter: impl FnOnce(&OwnedFd) -> Result<(), RawError>,
    ) -> Result<Self, RawError> {
        // Protocol 0: the socket receives nothing until bound to the ethertype below.
        let fd = new_socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0)?;
        set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, RECV_BUFFER);
        // Linux >= 4.20; older kernels fail with ENOPROTOOPT, and then the BPF packet-type
        // test and the sll_pkttype check in recv_batch do the same job.
        let one: c_int = 1;
        let _ = set_opt(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one);
        filter(&fd)?;

        // SAFETY: all-zero is a valid `sockaddr_ll`.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (ethertype as u16).to_be();
        sll.sll_ifindex = 0; // every interface
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

        Ok(Self {
            fd,
            bufs: vec![0; RECV_BATCH * RECV_BUF_LEN],
            // SAFETY: all-zero is a valid `sockaddr_ll`.
            addrs: vec![unsafe { std::mem::zeroed() }; RECV_BATCH],
            iovs: Vec::with_capacity(RECV_BATCH),
            hdrs: Vec::with_capacity(RECV_BATCH),
            drops: Cell::new(0),
        })
    }

    /// Replaces the filter's address list (the kernel swaps programs atomically).
    pub fn set_local_addrs(&mut self, local: &[Ipv4Addr]) -> Result<(), RawError> {
        attach_filter(&self.fd, local)
    }

    /// The receive buffer size the kernel granted (it reports twice the requested value).
    pub fn recv_buffer_size(&self) -> Option<usize> {
        get_int_opt(&self.fd, libc::SOL_SOCKET, libc::SO_RCVBUF)
            .ok()
            .and_then(|v| usize::try_from(v).ok())
    }

    /// Appends up to `max` waiting packets to `out` without blocking and returns how many it
    /// appended (0 when none are waiting). One `recvmmsg` per [`RECV_BATCH`] packets; each
    /// packet costs one allocation of its own length.
    pub fn recv_batch(&mut self, out: &mut Vec<Received>, max: usize) -> Result<usize, RawError> {
        let mut appended = 0;
        let mut budget = max;
        while budget > 0 {
            let want = budget.min(RECV_BATCH);
            self.iovs.clear();
            self.hdrs.clear();
            let (bufs, addrs) = (self.bufs.as_mut_ptr(), self.addrs.as_mut_ptr());
            for i in 0..want {
                self.iovs.push(libc::iovec {
                    // In bounds: i < RECV_BATCH; `bufs` holds RECV_BATCH * RECV_BUF_LEN bytes.
                    iov_base: bufs.wrapping_add(i * RECV_BUF_LEN).cast::<c_void>(),
                    iov_len: RECV_BUF_LEN,
                });
            }
            let iovs = self.iovs.as_mut_ptr();
            for i in 0..want {
                // SAFETY: all-zero is a valid `mmsghdr`.
                let mut hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
                // In bounds: i < want <= RECV_BATCH == addrs.len(), and i < iovs.len().
                hdr.msg_hdr.msg_name = addrs.wrapping_add(i).cast::<c_void>();
                hdr.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as socklen_t;
                hdr.msg_hdr.msg_iov = iovs.wrapping_add(i);
                hdr.msg_hdr.msg_iovlen = 1;
                self.hdrs.push(hdr);
            }
            // SAFETY: `hdrs` holds `want` initialised headers pointing at `want` distinct
            // sockaddr_ll slots in `addrs` and `want` distinct RECV_BUF_LEN-byte regions of
            // `bufs` (through `iovs`), all owned by `self` and alive for the call; the kernel
            // writes at most the given lengths. The timeout pointer may be null.
            let rc = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    want as c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                let error = io::Error::last_os_error();
                if appended > 0 || errno_is(&error, &[libc::EAGAIN, libc::EWOULDBLOCK, libc::EINTR])
                {
                    break;
                }
                return Err(RawError::io("recvmmsg", error));
            }
            let at = Instant::now();
            let n = rc as usize;
            for (i, (hdr, addr)) in self.hdrs.iter().zip(&self.addrs).take(n).enumerate() {
                if addr.sll_pkttype == PACKET_OUTGOING {
                    continue;
                }
                let len = (hdr.msg_len as usize).min(RECV_BUF_LEN);
                let start = i * RECV_BUF_LEN;
                out.push(Received {
                    data: self.bufs[start..start + len].to_vec(),
                    at,
                    truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                });
                appended += 1;
            }
            budget -= n;
            if n < want {
                break;
            }
        }
        Ok(appended)
    }

    /// Waits up to `timeout` for a packet (or an error) to be readable, with poll(2), for
    /// callers without an event loop. `Ok(false)` on timeout or when a signal interrupts.
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool, RawError> {
        wait_readable(&self.fd, timeout)
    }

    /// Packets the kernel dropped for lack of receive-buffer room since the socket was
    /// opened (PACKET_STATISTICS `tp_drops`, accumulated: each read resets the kernel's
    /// counter). Returns the last known total if the query fails.
    pub fn drops(&self) -> u64 {
        let mut stats = TpacketStats::default();
        let mut len = size_of::<TpacketStats>() as socklen_t;
        // SAFETY: `stats` and `len` are live locals the kernel writes; `len` holds the size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                PACKET_STATISTICS,
                (&mut stats as *mut TpacketStats).cast::<c_void>(),
                &mut len,
            )
        };
        if rc == 0 {
            self.drops
                .set(self.drops.get().saturating_add(u64::from(stats.tp_drops)));
        }
        self.drops.get()
    }
}

impl AsRawFd for RawReceiver {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use portolan_wire::build::{build_tcp_v4, Ipv4Params, TcpParams, TcpTemplateV4};
    use portolan_wire::tcp::Flags;
    use portolan_wire::{ipv4, tcp, IpProtocol};
    use std::collections::HashSet;
    use std::fs::File;
    use std::net::TcpListener;
    use std::process::Command;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::thread;

    // ---- the BPF program, run through a tiny interpreter (no root needed) ----

    /// Runs the subset of classic BPF the receive filters (here and in [`crate::io::link`]) use;
    /// out-of-bounds loads drop, as in the kernel.
    pub(crate) fn run_bpf(prog: &[libc::sock_filter], pkt: &[u8], pkttype: u8) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0usize, 0usize);
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                BPF_LD_W_ABS if ins.k == BPF_AD_PKTTYPE => a = u32::from(pkttype),
                BPF_LD_W_ABS => {
                    let k = ins.k as usize;
                    let Some(b) = pkt.get(k..k + 4) else { return 0 };
                    a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
                BPF_LD_H_ABS => {
                    let k = ins.k as usize;
                    let Some(b) = pkt.get(k..k + 2) else { return 0 };
                    a = u32::from(u16::from_be_bytes([b[0], b[1]]));
                }
                BPF_LD_B_ABS => match pkt.get(ins.k as usize) {
                    Some(&b) => a = u32::from(b),
                    None => return 0,
                },
                BPF_LDX_MSH => match pkt.get(ins.k as usize) {
                    Some(&b) => x = 4 * usize::from(b & 0xf),
                    None => return 0,
                },
                BPF_LD_H_IND => {
                    let k = x + ins.k as usize;
                    let Some(b) = pkt.get(k..k + 2) else { return 0 };
                    a = u32::from(u16::from_be_bytes([b[0], b[1]]));
                }
                BPF_AND_K => a &= ins.k,
                BPF_JEQ_K => pc += usize::from(if a == ins.k { ins.jt } else { ins.jf }),
                BPF_JGE_K => pc += usize::from(if a >= ins.k { ins.jt } else { ins.jf }),
                BPF_JGT_K => pc += usize::from(if a > ins.k { ins.jt } else { ins.jf }),
                BPF_RET_K => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn packet(protocol: u8, dst: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = protocol;
        p[12..16].copy_from_slice(&[198, 19, 0, 2]);
        p[16..20].copy_from_slice(&dst.octets());
        p
    }

    /// Regression: the loopback network's broadcast address (as any on-link broadcast)
    /// made the finder fail with EACCES, which aborted the scan; it is now recognised, and
    /// the finder still works for the next address.
    #[test]
    fn source_finder_recognises_a_broadcast_address() {
        let mut f = SourceFinder::default();
        let bcast: IpAddr = "127.255.255.255".parse().unwrap();
        assert!(
            matches!(f.source_for(bcast), Err(RawError::Broadcast(a)) if a == bcast),
            "{:?}",
            f.source_for(bcast)
        );
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(f.source_for(lo).unwrap(), lo);
    }

    #[test]
    fn source_finder_agrees_with_source_for() {
        let mut f = SourceFinder::default();
        for dst in ["127.0.0.1", "127.0.0.2", "::1", "127.0.0.1"] {
            let dst: IpAddr = dst.parse().unwrap();
            match (f.source_for(dst), source_for_ip(dst)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{dst}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{dst}: {a:?} vs {b:?}"),
            }
        }
    }

    #[test]
    fn v6_filter_keeps_only_our_tcp_udp_icmpv6() {
        let ours: Ipv6Addr = "2001:2::1".parse().unwrap();
        let other: Ipv6Addr = "2001:2::2".parse().unwrap();
        let prog =
            filter_program_v6(&[ours, "2001:2:0:1::1".parse().unwrap()], 0..=u16::MAX).unwrap();
        let pkt = |next: u8, dst: Ipv6Addr| {
            let mut p = vec![0u8; 60];
            p[0] = 0x60;
            p[6] = next;
            p[24..40].copy_from_slice(&dst.octets());
            p
        };
        for next in [6, 17, 58] {
            assert_eq!(run_bpf(&prog, &pkt(next, ours), 0), BPF_KEEP);
            assert_eq!(run_bpf(&prog, &pkt(next, ours), PACKET_OUTGOING), 0);
            assert_eq!(run_bpf(&prog, &pkt(next, other), 0), 0);
        }
        // An address that differs only in its last word, or only in its first.
        let mut last = ours.octets();
        last[15] ^= 1;
        assert_eq!(run_bpf(&prog, &pkt(6, Ipv6Addr::from(last)), 0), 0);
        let mut first = ours.octets();
        first[0] ^= 1;
        assert_eq!(run_bpf(&prog, &pkt(6, Ipv6Addr::from(first)), 0), 0);
        assert_eq!(run_bpf(&prog, &pkt(0, ours), 0), 0);
        let mut v4 = pkt(6, ours);
        v4[0] = 0x45;
        assert_eq!(run_bpf(&prog, &v4, 0), 0);
        assert_eq!(run_bpf(&prog, &pkt(6, ours)[..30], 0), 0);
    }

    /// Per-core receivers: TCP and UDP only to their own source ports (whatever the IP
    /// header length), ICMP to all of them.
    #[test]
    fn filters_keep_their_port_range() {
        let ours = Ipv4Addr::new(198, 19, 0, 1);
        let prog = filter_program(&[ours], 61_000..=62_999).unwrap();
        for proto in [6, 17] {
            for (ihl, opts) in [(5u8, 0usize), (6, 4)] {
                let at = |port: u16| {
                    let mut p = packet(proto, ours);
                    p[0] = 0x40 | ihl;
                    p.resize(40 + opts, 0);
                    p[20 + opts + 2..20 + opts + 4].copy_from_slice(&port.to_be_bytes());
                    run_bpf(&prog, &p, 0)
                };
                assert_eq!(at(61_000), BPF_KEEP);
                assert_eq!(at(62_999), BPF_KEEP);
                assert_eq!(at(60_999), 0);
                assert_eq!(at(63_000), 0);
                assert_eq!(at(80), 0);
            }
        }
        assert_eq!(run_bpf(&prog, &packet(1, ours), 0), BPF_KEEP);
        let ours6: Ipv6Addr = "2001:2::1".parse().unwrap();
        let prog6 = filter_program_v6(&[ours6], 63_000..=64_999).unwrap();
        let at6 = |next: u8, port: u16| {
            let mut p = vec![0u8; 60];
            p[0] = 0x60;
            p[6] = next;
            p[24..40].copy_from_slice(&ours6.octets());
            p[42..44].copy_from_slice(&port.to_be_bytes());
            run_bpf(&prog6, &p, 0)
        };
        assert_eq!(at6(6, 63_000), BPF_KEEP);
        assert_eq!(at6(17, 64_999), BPF_KEEP);
        assert_eq!(at6(6, 62_999), 0);
        assert_eq!(at6(58, 1), BPF_KEEP);
    }

    #[test]
    fn filter_keeps_only_our_tcp_udp_icmp() {
        let ours = [Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(127, 0, 0, 1)];
        let prog = filter_program(&[ours[0], ours[1], ours[0]], 0..=u16::MAX).unwrap();
        assert_eq!(prog.len(), 15 + 2 * 2 + 1);
        const HOST: u8 = 0;
        for dst in ours {
            for proto in [1, 6, 17] {
                assert_eq!(run_bpf(&prog, &packet(proto, dst), HOST), BPF_KEEP);
                assert_eq!(run_bpf(&prog, &packet(proto, dst), PACKET_OUTGOING), 0);
            }
            for proto in [0, 2, 47, 58, 132, 255] {
                assert_eq!(
                    run_bpf(&prog, &packet(proto, dst), HOST),
                    0,
                    "proto {proto}"
                );
            }
            let mut v6ish = packet(6, dst);
            v6ish[0] = 0x65;
            assert_eq!(run_bpf(&prog, &v6ish, HOST), 0);
        }
        for other in ["198.19.0.2", "198.19.0.0", "0.0.0.0", "255.255.255.255"] {
            let other: Ipv4Addr = other.parse().unwrap();
            assert_eq!(run_bpf(&prog, &packet(6, other), HOST), 0);
        }
        // Truncated packets are dropped, never read out of bounds.
        let p = packet(6, ours[0]);
        for len in 0..20 {
            assert_eq!(run_bpf(&prog, &p[..len], HOST), 0);
        }
        // No addresses: drop everything.
        let none = filter_program(&[], 0..=u16::MAX).unwrap();
        assert_eq!(run_bpf(&none, &packet(6, ours[0]), HOST), 0);
        // Many addresses: all offsets still in range, the last one matches.
        let many: Vec<Ipv4Addr> = (0..MAX_LOCAL_ADDRS as u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect();
        let prog = filter_program(&many, 0..=u16::MAX).unwrap();
        assert!(prog.len() <= 4096);
        let last = many[many.len() - 1];
        assert_eq!(run_bpf(&prog, &packet(17, last), HOST), BPF_KEEP);
        assert_eq!(
            run_bpf(&prog, &packet(17, Ipv4Addr::new(10, 1, 0, 0)), HOST),
            0
        );
        let too_many: Vec<Ipv4Addr> = (0..=MAX_LOCAL_ADDRS as u32).map(Ipv4Addr::from).collect();
        assert!(filter_program(&too_many, 0..=u16::MAX).is_err());
    }

    #[test]
    fn not_permitted_message() {
        assert_eq!(
            RawError::NotPermitted.to_string(),
            "raw sockets need root or CAP_NET_RAW: run as root, or grant it with \
             'sudo setcap cap_net_raw,cap_net_admin+eip $(command -v portolan)', or use -sT \
             (connect scan)"
        );
    }

    /// Whether the effective capability set holds CAP_NET_RAW (bit 13).
    fn has_cap_net_raw() -> bool {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        let caps = u64::from_str_radix(line["CapEff:".len()..].trim(), 16).unwrap();
        caps & (1 << 13) != 0
    }

    #[test]
    fn permission_is_checked_up_front() {
        // Opening sockets sends nothing, so this runs in the test's own namespace.
        if has_cap_net_raw() {
            can_use_raw().unwrap();
            RawSender::new().unwrap();
            RawReceiver::new(&[]).unwrap();
        } else {
            assert!(matches!(can_use_raw(), Err(RawError::NotPermitted)));
            assert!(matches!(RawSender::new(), Err(RawError::NotPermitted)));
            assert!(matches!(RawReceiver::new(&[]), Err(RawError::NotPermitted)));
        }
    }

    // ---- namespace lab ----

    /// Two fresh network namespaces joined by a veth pair: `a` at 198.19.<n>.1/24, `b` at
    /// 198.19.<n>.2/24 with a TCP listener on port 8080. Deleted on drop.
    pub(crate) struct NetnsPair {
        pub(crate) a: String,
        pub(crate) b: String,
        pub(crate) a_addr: Ipv4Addr,
        pub(crate) b_addr: Ipv4Addr,
        listener: Option<TcpListener>,
    }

    static PAIRS: AtomicU32 = AtomicU32::new(1);

    pub(crate) fn ip(args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("run ip");
        assert!(status.success(), "ip {args:?} failed");
    }

    /// Runs `f` on a new thread that has entered network namespace `name`.
    pub(crate) fn in_netns<T: Send + 'static>(
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/var/run/netns/{name}");
        let handle = thread::spawn(move || {
            let ns = File::open(&path).expect("open netns");
            // SAFETY: setns with a namespace fd we own; it changes only this thread's netns.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
            f()
        });
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    impl NetnsPair {
        /// `None` (test skipped) unless root; with PORTOLAN_LAB=required, not root fails.
        pub(crate) fn new() -> Option<Self> {
            Self::with_addrs(|n| {
                (
                    Ipv4Addr::new(198, 19, n as u8, 1),
                    Ipv4Addr::new(198, 19, n as u8, 2),
                )
            })
        }

        /// As [`Self::new`], with the addresses (in a /24, inside 198.18.0.0/15) chosen by
        /// `addrs` from the pair's serial number.
        pub(crate) fn with_addrs(addrs: impl FnOnce(u32) -> (Ipv4Addr, Ipv4Addr)) -> Option<Self> {
            let usable = crate::io::sys::is_privileged()
                && Command::new("ip")
                    .arg("-V")
                    .output()
                    .is_ok_and(|o| o.status.success());
            if !usable {
                if std::env::var("PORTOLAN_LAB").as_deref() == Ok("required") {
                    panic!("PORTOLAN_LAB=required but not root (or no `ip` command)");
                }
                eprintln!("skipped: needs root");
                return None;
            }
            let n = PAIRS.fetch_add(1, Ordering::Relaxed);
            assert!(n < 255);
            let (a_addr, b_addr) = addrs(n);
            for addr in [a_addr, b_addr] {
                assert_eq!(
                    u32::from(addr) >> 17,
                    u32::from(Ipv4Addr::new(198, 18, 0, 0)) >> 17,
                    "lab addresses must be in 198.18.0.0/15"
                );
            }
            let pid = std::process::id();
            let mut pair = Self {
                a: format!("prt{pid}_{n}a"),
                b: format!("prt{pid}_{n}b"),
                a_addr,
                b_addr,
                listener: None,
            };
            // From here on, Drop cleans up whatever was created.
            ip(&["netns", "add", &pair.a]);
            ip(&["netns", "add", &pair.b]);
            ip(&[
                "link", "add", "name", "v0", "netns", &pair.a, "type", "veth", "peer", "name",
                "v0", "netns", &pair.b,
            ]);
            for (ns, addr) in [(&pair.a, pair.a_addr), (&pair.b, pair.b_addr)] {
                ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", "v0"]);
                ip(&["-n", ns, "link", "set", "v0", "up"]);
                ip(&["-n", ns, "link", "set", "lo", "up"]);
            }
            let b_addr = pair.b_addr;
            pair.listener = Some(in_netns(&pair.b, move || {
                TcpListener::bind((b_addr, 8080)).expect("listen in b")
            }));
            Some(pair)
        }

        /// The MAC address of `v0` in namespace `ns`, as `ip -n NS link show` reports it.
        pub(crate) fn mac_in(ns: &str) -> [u8; 6] {
            let out = Command::new("ip")
                .args(["-n", ns, "link", "show", "v0"])
                .output()
                .expect("run ip");
            assert!(out.status.success(), "ip link show failed");
            let text = String::from_utf8_lossy(&out.stdout);
            let mac = text
                .split_whitespace()
                .skip_while(|w| *w != "link/ether")
                .nth(1)
                .expect("link/ether in `ip link show` output");
            let bytes: Vec<u8> = mac
                .split(':')
                .map(|h| u8::from_str_radix(h, 16).expect("hex MAC"))
                .collect();
            bytes.try_into().expect("6-byte MAC")
        }

        pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
            in_netns(&self.a, f)
        }
    }

    impl Drop for NetnsPair {
        fn drop(&mut self) {
            self.listener = None; // the socket holds a reference to namespace b
            for ns in [&self.a, &self.b] {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }

    fn syn(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, seq: u32) -> Vec<u8> {
        let ip = Ipv4Params {
            src,
            dst,
            ttl: 64,
            ident: sport,
            dont_frag: false,
        };
        let mut buf = [0u8; 64];
        let n = build_tcp_v4(&mut buf, None, &ip, &TcpParams::syn(sport, dport, seq)).unwrap();
        buf[..n].to_vec()
    }

    /// A received TCP segment: (src, dst, sport, dport, flags, seq, ack).
    type Seg = (Ipv4Addr, Ipv4Addr, u16, u16, Flags, u32, u32);

    fn parse_tcp(data: &[u8]) -> Option<Seg> {
        let ip = ipv4::Packet::new_checked(data).ok()?;
        if ip.protocol() != IpProtocol::TCP {
            return None;
        }
        let seg = tcp::Packet::new_checked(ip.payload()).ok()?;
        Some((
            ip.src_addr(),
            ip.dst_addr(),
            seg.src_port(),
            seg.dst_port(),
            seg.flags(),
            seg.seq_number(),
            seg.ack_number(),
        ))
    }

    /// Reads packets for `within`, or until `done` says the collection is complete.
    pub(crate) fn collect(
        rx: &mut RawReceiver,
        within: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        while !done(&got) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if rx.wait_readable(deadline - now).unwrap() {
                rx.recv_batch(&mut got, 1 << 20).unwrap();
            }
        }
        got
    }

    #[test]
    fn syn_gets_synack_from_open_and_rst_from_closed() {
        let Some(lab) = NetnsPair::new() else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        lab.run(move || {
            can_use_raw().unwrap();
            let mut rx = RawReceiver::new(&[a]).unwrap();
            let mut tx = RawSender::new().unwrap();
            let open = syn(a, b, 40000, 8080, 1000);
            let closed = syn(a, b, 40001, 8081, 2000);
            let started = Instant::now();
            assert_eq!(
                tx.send_batch(&[(b.into(), &open), (b.into(), &closed)])
                    .unwrap(),
                2
            );
            let got = collect(&mut rx, Duration::from_secs(1), |got| got.len() >= 2);
            let segs: Vec<Seg> = got.iter().filter_map(|r| parse_tcp(&r.data)).collect();
            assert!(got.iter().all(|r| !r.truncated && r.at >= started));
            let synack = segs
                .iter()
                .find(|s| s.3 == 40000)
                .expect("SYN-ACK from 8080");
            assert_eq!((synack.0, synack.1, synack.2), (b, a, 8080));
            assert_eq!(synack.4, Flags::SYN | Flags::ACK);
            assert_eq!(synack.6, 1001);
            let rst = segs.iter().find(|s| s.3 == 40001).expect("RST from 8081");
            assert_eq!((rst.0, rst.1, rst.2), (b, a, 8081));
            assert_eq!(rst.4, Flags::RST | Flags::ACK);
            assert_eq!(rst.6, 2001);
            assert_eq!(rx.drops(), 0);
            assert!(rx.recv_buffer_size().unwrap() >= 2 * RECV_BUFFER as usize);
        });
    }

    #[test]
    fn filter_drops_packets_for_other_addresses() {
        let Some(lab) = NetnsPair::new() else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        lab.run(move || {
            let elsewhere = Ipv4Addr::new(a.octets()[0], a.octets()[1], a.octets()[2], 77);
            let mut other = RawReceiver::new(&[elsewhere]).unwrap();
            let mut nobody = RawReceiver::new(&[]).unwrap();
            let mut ours = RawReceiver::new(&[a]).unwrap();
            let mut tx = RawSender::new().unwrap();
            let p1 = syn(a, b, 40000, 8080, 1);
            let p2 = syn(a, b, 40001, 8081, 2);
            assert_eq!(
                tx.send_batch(&[(b.into(), &p1), (b.into(), &p2)]).unwrap(),
                2
            );
            // Positive control: the replies did arrive, for the right receiver.
            let got = collect(&mut ours, Duration::from_secs(1), |got| got.len() >= 2);
            assert_eq!(got.len(), 2);
            thread::sleep(Duration::from_millis(200));
            let mut stray = Vec::new();
            assert_eq!(other.recv_batch(&mut stray, 1000).unwrap(), 0);
            assert_eq!(nobody.recv_batch(&mut stray, 1000).unwrap(), 0);
            // Re-aimed at our address, the same socket sees the next exchange.
            other.set_local_addrs(&[a]).unwrap();
            assert_eq!(tx.send_batch(&[(b.into(), &p2)]).unwrap(), 1);
            let got = collect(&mut other, Duration::from_secs(1), |got| !got.is_empty());
            assert_eq!(got.len(), 1);
        });
    }

    #[test]
    fn outgoing_packets_are_not_received() {
        let Some(lab) = NetnsPair::new() else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        lab.run(move || {
            // With b among "our" addresses the filter would keep our own SYNs to b (and the
            // kernel's RST answering the SYN-ACK), were outgoing packets not ignored.
            let mut rx = RawReceiver::new(&[a, b]).unwrap();
            let mut tx = RawSender::new().unwrap();
            let p1 = syn(a, b, 40000, 8080, 1);
            let p2 = syn(a, b, 40001, 8081, 2);
            assert_eq!(
                tx.send_batch(&[(b.into(), &p1), (b.into(), &p2)]).unwrap(),
                2
            );
            let got = collect(&mut rx, Duration::from_millis(500), |_| false);
            let segs: Vec<Seg> = got.iter().filter_map(|r| parse_tcp(&r.data)).collect();
            assert_eq!(segs.len(), 2, "{segs:?}");
            assert!(segs.iter().all(|s| s.0 == b && s.1 == a), "{segs:?}");
        });
    }

    #[test]
    fn loopback_reads_own_probes_back() {
        // Pins down the documented caveat: on lo a probe is also an incoming packet.
        let Some(lab) = NetnsPair::new() else { return };
        lab.run(move || {
            let lo = Ipv4Addr::LOCALHOST;
            let mut rx = RawReceiver::new(&[lo]).unwrap();
            let mut tx = RawSender::new().unwrap();
            let p = syn(lo, lo, 40002, 8081, 5);
            assert_eq!(tx.send_batch(&[(lo.into(), &p)]).unwrap(), 1);
            let got = collect(&mut rx, Duration::from_millis(300), |_| false);
            let segs: Vec<Seg> = got.iter().filter_map(|r| parse_tcp(&r.data)).collect();
            assert_eq!(
                segs.iter().map(|s| (s.2, s.4)).collect::<Vec<_>>(),
                [(40002, Flags::SYN), (8081, Flags::RST | Flags::ACK)]
            );
        });
    }

    #[test]
    fn source_address_and_no_route() {
        let Some(lab) = NetnsPair::new() else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        lab.run(move || {
            assert_eq!(source_for(b).unwrap(), a);
            assert_eq!(
                source_for(Ipv4Addr::LOCALHOST).unwrap(),
                Ipv4Addr::LOCALHOST
            );
            let nowhere = Ipv4Addr::new(198, 18, 99, 99);
            assert!(
                matches!(source_for(nowhere), Err(RawError::NoRoute(x)) if x == IpAddr::V4(nowhere))
            );
            // A raw send there fails the same way, and nothing is counted as sent.
            let mut tx = RawSender::new().unwrap();
            let p = syn(a, nowhere, 1, 2, 3);
            assert!(matches!(
                tx.send_batch(&[(nowhere.into(), &p)]),
                Err(RawError::NoRoute(x)) if x == IpAddr::V4(nowhere)
            ));
        });
    }

    /// Sends one SYN to a closed port and waits for its RST, so that ARP is resolved.
    fn warm_up(tx: &mut RawSender, rx: &mut RawReceiver, a: Ipv4Addr, b: Ipv4Addr) {
        let p = syn(a, b, 39999, 8081, 7);
        assert_eq!(tx.send_batch(&[(b.into(), &p)]).unwrap(), 1);
        let got = collect(rx, Duration::from_secs(1), |got| !got.is_empty());
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn batch_of_1000_syns_draws_1000_rsts() {
        let Some(lab) = NetnsPair::new() else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        lab.run(move || {
            let mut rx = RawReceiver::new(&[a]).unwrap();
            let mut tx = RawSender::new().unwrap();
            warm_up(&mut tx, &mut rx, a, b);
            let packets: Vec<Vec<u8>> = (0..1000u16)
                .map(|i| syn(a, b, 50000, 20000 + i, u32::from(i) << 8))
                .collect();
            let batch: Vec<(IpAddr, &[u8])> =
                packets.iter().map(|p| (b.into(), p.as_slice())).collect();
            let (mut sent, mut calls) = (0, 0);
            while sent < batch.len() && calls < 1000 {
                sent += tx.send_batch(&batch[sent..]).unwrap();
                calls += 1;
                if sent < batch.len() {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            assert_eq!(sent, 1000);
            let mut ports = HashSet::new();
            let got = collect(&mut rx, Duration::from_secs(2), |got| {
                ports.extend(
                    got.iter()
                        .filter_map(|r| parse_tcp(&r.data))
                        .filter(|s| s.4 == Flags::RST | Flags::ACK)
                        .filter(|s| s.6 == (u32::from(s.2 - 20000) << 8) + 1)
                        .map(|s| s.2),
                );
                ports.len() >= 1000
            });
            eprintln!(
                "1000 SYNs in {calls} send_batch call(s): {} packets read, {} distinct RSTs, \
                 {} dropped",
                got.len(),
                ports.len(),
                rx.drops()
            );
            assert!(ports.len() >= 990, "only {} RSTs", ports.len());
        });
    }

    /// Measures sendmmsg throughput: `cargo test -p portolan-engine raw::tests::send_rate
    /// -- --ignored --nocapture` (as root).
    #[test]
    #[ignore = "benchmark; run explicitly as root"]
    fn send_rate() {
        const COUNT: usize = 100_000;
        let Some(lab) = NetnsPair::new() else { return };
        let (a, b) = (lab.a_addr, lab.b_addr);
        let lab_a = lab.a.clone();
        // A sink: routed through b, which blackholes it (no TCP processing, no replies).
        let via = b.to_string();
        ip(&["-n", &lab.a, "route", "add", "198.18.254.0/24", "via", &via]);
        ip(&["-n", &lab.b, "route", "add", "blackhole", "198.18.254.0/24"]);
        lab.run(move || {
            let mut rx = RawReceiver::new(&[a]).unwrap();
            let mut tx = RawSender::new().unwrap();
            warm_up(&mut tx, &mut rx, a, b);

            // Receive concurrently on another thread in the same namespace.
            let stop = Arc::new(AtomicBool::new(false));
            let rsts = Arc::new(AtomicU64::new(0));
            let (stop2, rsts2) = (stop.clone(), rsts.clone());
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let reader = thread::spawn(move || {
                in_netns(&lab_a, move || {
                    let mut rx = RawReceiver::new(&[a]).unwrap();
                    ready_tx.send(()).unwrap();
                    let mut got = Vec::with_capacity(4096);
                    let mut idle_since = None;
                    loop {
                        got.clear();
                        if rx.wait_readable(Duration::from_millis(50)).unwrap() {
                            rx.recv_batch(&mut got, 4096).unwrap();
                        }
                        let n = got
                            .iter()
                            .filter_map(|r| parse_tcp(&r.data))
                            .filter(|s| s.4.contains(Flags::RST))
                            .count();
                        rsts2.fetch_add(n as u64, Ordering::Relaxed);
                        if got.is_empty() && stop2.load(Ordering::Relaxed) {
                            let since = *idle_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_millis(300) {
                                return rx.drops();
                            }
                        } else {
                            idle_since = None;
                        }
                    }
                })
            });
            ready_rx.recv().unwrap();

            let ip = Ipv4Params {
                src: a,
                dst: b,
                ttl: 64,
                ident: 1,
                dont_frag: false,
            };
            let mut template = TcpTemplateV4::new(None, &ip, &TcpParams::syn(1, 2, 3)).unwrap();
            let len = template.probe(b, 1, 2, 3).len();
            let mut flat = Vec::with_capacity(COUNT * len);
            for i in 0..COUNT {
                let dport = 10_000 + (i % 50_000) as u16;
                let sport = 40_000 + (i / 50_000) as u16;
                flat.extend_from_slice(template.probe(b, sport, dport, i as u32));
            }
            let batch: Vec<(IpAddr, &[u8])> = flat.chunks(len).map(|p| (b.into(), p)).collect();

            let (mut sent, mut calls, mut stalls) = (0, 0u64, 0u64);
            let started = Instant::now();
            while sent < COUNT {
                let want = MAX_SEND_BATCH.min(COUNT - sent);
                let n = tx.send_batch(&batch[sent..sent + want]).unwrap();
                calls += 1;
                sent += n;
                if n < want {
                    stalls += 1;
                    thread::yield_now();
                }
            }
            let elapsed = started.elapsed();
            stop.store(true, Ordering::Relaxed);
            let drops = reader.join().unwrap();
            eprintln!(
                "sent {COUNT} SYNs in {elapsed:?} = {:.0} packets/s ({calls} calls, {stalls} \
                 short); {} RSTs read, {drops} dropped by the receive socket",
                COUNT as f64 / elapsed.as_secs_f64(),
                rsts.load(Ordering::Relaxed),
            );

            // Closer to the sender's own cost: the same packets re-aimed at the sink.
            let sink = Ipv4Addr::new(198, 18, 254, 2);
            let mut template = TcpTemplateV4::new(None, &ip, &TcpParams::syn(1, 2, 3)).unwrap();
            let mut flat = Vec::with_capacity(COUNT * len);
            for i in 0..COUNT {
                flat.extend_from_slice(template.probe(sink, 40_000, (i % 60_000) as u16, 0));
            }
            let batch: Vec<(IpAddr, &[u8])> = flat.chunks(len).map(|p| (sink.into(), p)).collect();
            let (mut sent, mut stalls) = (0, 0u64);
            let started = Instant::now();
            while sent < COUNT {
                let want = MAX_SEND_BATCH.min(COUNT - sent);
                let n = tx.send_batch(&batch[sent..sent + want]).unwrap();
                sent += n;
                if n < want {
                    stalls += 1;
                    thread::yield_now();
                }
            }
            let elapsed = started.elapsed();
            eprintln!(
                "sent {COUNT} SYNs to a blackholed sink in {elapsed:?} = {:.0} packets/s \
                 ({stalls} short)",
                COUNT as f64 / elapsed.as_secs_f64(),
            );
        });
    }
}
