//! The event pump under `nmap.socket` (what nsock is to Nmap): sockets whose operations run
//! off the Lua thread and complete into a queue that `nmap.socket.loop(ms)` drains, waking
//! each waiting script thread with its results.
//!
//! Each operation runs on a short-lived worker thread with blocking sockets and the
//! socket's timeout; TLS (`connect(..., "ssl")`, `reconnect_ssl`) is OpenSSL, as nsock's,
//! with old protocol versions and weak suites allowed, since finding those is the point of a
//! defender's scan. Every address a script connects or sends to passes the scan's guard
//! first (exclusions, the target list, the scope file).

use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Decides whether scripts may reach an address.
pub type Guard = Arc<dyn Fn(IpAddr) -> Result<(), String> + Send + Sync>;

/// nsock's default socket timeout.
const DEFAULT_TIMEOUT_MS: i64 = 30_000;
/// The most one receive returns, as nsock's read buffer.
const READ_CHUNK: usize = 65_536;

/// What an operation gives back to the script thread.
#[derive(Debug)]
pub enum Outcome {
    /// `true`
    Ok,
    /// `true, data`
    Data(Vec<u8>),
    /// `nil, message` ("TIMEOUT", "EOF", "ERROR", ...)
    Err(String),
    /// no values (a sleep ended)
    Wake,
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
    Udp(UdpSocket),
}

impl Conn {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Conn::Tcp(s) => Some(s),
            Conn::Tls(s) => Some(s.get_ref()),
            Conn::Udp(_) => None,
        }
    }

    fn set_timeout(&self, t: Option<Duration>) {
        let _ = match self {
            Conn::Udp(u) => u.set_read_timeout(t).and(u.set_write_timeout(t)),
            other => match other.tcp() {
                Some(s) => s.set_read_timeout(t).and(s.set_write_timeout(t)),
                None => Ok(()),
            },
        };
    }

    fn read_some(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
            Conn::Udp(u) => u.recv(buf),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(data),
            Conn::Tls(s) => s.write_all(data),
            Conn::Udp(u) => u.send(data).map(|_| ()),
        }
    }
}

struct Completion {
    op: u64,
    sock: Option<u64>,
    conn: Option<Conn>,
    peer_cert: Option<Vec<u8>>,
    addrs: Option<(SocketAddr, SocketAddr)>,
    outcome: Outcome,
}

#[derive(Default)]
struct Sock {
    udp: bool,
    inet6: bool,
    timeout_ms: i64,
    conn: Option<Conn>,
    /// An operation holds the connection.
    busy: bool,
    closed: bool,
    bind: Option<SocketAddr>,
    addrs: Option<(SocketAddr, SocketAddr)>,
    peer_cert: Option<Vec<u8>>,
    hostname: Option<String>,
}

impl Sock {
    fn timeout(&self) -> Option<Duration> {
        if self.timeout_ms < 0 {
            None
        } else {
            Some(Duration::from_millis(self.timeout_ms.max(1) as u64))
        }
    }
}

/// A started operation: done at once, or pending with this id.
pub enum Started {
    Now(Outcome),
    Pending(u64),
}

/// The sockets and timers of one engine.
pub struct Hub {
    tx: Sender<Completion>,
    rx: Receiver<Completion>,
    next: u64,
    sockets: HashMap<u64, Sock>,
    timers: HashMap<u64, Arc<AtomicBool>>,
    guard: Guard,
    /// Operations and timers started and not yet completed (nsock's pending events).
    outstanding: usize,
}

/// Operations a script starts on a socket.
pub enum Op {
    Connect {
        addr: String,
        hostname: Option<String>,
        port: u16,
        proto: String,
    },
    ReconnectSsl,
    Send(Vec<u8>),
    SendTo {
        addr: String,
        port: u16,
        data: Vec<u8>,
    },
    Receive,
    ReceiveBytes(usize),
    ReceiveLines(usize),
}

fn io_status(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "TIMEOUT".into(),
        ErrorKind::UnexpectedEof => "EOF".into(),
        _ => "ERROR".into(),
    }
}

/// One TLS client context for the whole run: building one reads the system's CA store,
/// which cost milliseconds a connection (http-enum over TLS opens hundreds).
fn tls_connector() -> Result<SslConnector, String> {
    static CONNECTOR: std::sync::OnceLock<Result<SslConnector, String>> =
        std::sync::OnceLock::new();
    CONNECTOR.get_or_init(build_tls_connector).clone()
}

fn build_tls_connector() -> Result<SslConnector, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_verify(SslVerifyMode::NONE);
    // Everything the library offers, old versions and weak suites included, as nsock's
    // "max speed" context: a defender's scan must be able to talk to what it finds.
    let _ = b.set_cipher_list("ALL:@SECLEVEL=0");
    let _ = b.set_min_proto_version(None);
    Ok(b.build())
}

fn tls_wrap(tcp: TcpStream, hostname: Option<&str>) -> Result<(Conn, Option<Vec<u8>>), String> {
    let connector = tls_connector()?;
    let mut cfg = connector.configure().map_err(|e| e.to_string())?;
    cfg.set_verify_hostname(false);
    let sni = hostname.filter(|h| h.parse::<IpAddr>().is_err());
    cfg.set_use_server_name_indication(sni.is_some());
    match cfg.connect(sni.unwrap_or(""), tcp) {
        Ok(s) => {
            let cert = s.ssl().peer_certificate().and_then(|c| c.to_der().ok());
            Ok((Conn::Tls(Box::new(s)), cert))
        }
        Err(_) => Err("ERROR".into()),
    }
}

fn resolve(addr: &str, port: u16, inet6: bool) -> Result<SocketAddr, String> {
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let found = (addr, port)
        .to_socket_addrs()
        .map_err(|_| "Name or service not known".to_string())?;
    let mut fallback = None;
    for a in found {
        if a.is_ipv6() == inet6 {
            return Ok(a);
        }
        fallback.get_or_insert(a);
    }
    fallback.ok_or_else(|| "getaddrinfo returned success but no addresses".to_string())
}

impl Hub {
    pub fn new(guard: Guard) -> Hub {
        let (tx, rx) = channel();
        Hub {
            tx,
            rx,
            next: 1,
            sockets: HashMap::new(),
            timers: HashMap::new(),
            guard,
            outstanding: 0,
        }
    }

    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub fn socket_new(&mut self, udp: bool, inet6: bool) -> u64 {
        let id = self.id();
        self.sockets.insert(
            id,
            Sock {
                udp,
                inet6,
                timeout_ms: DEFAULT_TIMEOUT_MS,
                ..Sock::default()
            },
        );
        id
    }

    pub fn set_timeout(&mut self, id: u64, ms: i64) {
        if let Some(s) = self.sockets.get_mut(&id) {
            s.timeout_ms = ms;
        }
    }

    pub fn bind(&mut self, id: u64, addr: Option<&str>, port: u16) -> Result<(), String> {
        let s = self.sockets.get_mut(&id).ok_or("socket is closed")?;
        let ip: IpAddr = match addr {
            Some(a) => a
                .parse()
                .map_err(|_| format!("getaddrinfo: {a}: not a numeric address"))?,
            None if s.inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        };
        s.bind = Some(SocketAddr::new(ip, port));
        Ok(())
    }

    /// `close`: false when the socket was not open.
    pub fn close(&mut self, id: u64) -> bool {
        match self.sockets.get_mut(&id) {
            Some(s) => {
                let was_open = s.conn.is_some() || s.busy;
                s.conn = None;
                s.addrs = None;
                s.peer_cert = None;
                if s.busy {
                    s.closed = true;
                }
                was_open
            }
            None => false,
        }
    }

    /// The socket object was collected.
    pub fn forget(&mut self, id: u64) {
        self.sockets.remove(&id);
    }

    pub fn info(&self, id: u64) -> Option<(SocketAddr, SocketAddr)> {
        self.sockets.get(&id).and_then(|s| s.addrs)
    }

    pub fn peer_certificate(&self, id: u64) -> Option<&[u8]> {
        self.sockets.get(&id).and_then(|s| s.peer_cert.as_deref())
    }

    /// Whether the socket is connected, or has an operation under way (nsock's `nsiod`).
    pub fn is_open(&self, id: u64) -> bool {
        self.sockets
            .get(&id)
            .is_some_and(|s| s.conn.is_some() || s.busy)
    }

    /// "TCP" or "UDP", for `--script-trace`.
    pub fn proto_name(&self, id: u64) -> &'static str {
        match self.sockets.get(&id) {
            Some(s) if s.udp => "UDP",
            _ => "TCP",
        }
    }

    pub fn is_tls(&self, id: u64) -> bool {
        matches!(
            self.sockets.get(&id).and_then(|s| s.conn.as_ref()),
            Some(Conn::Tls(_))
        )
    }

    /// Starts an operation; its completion comes out of `pump` under the returned id.
    pub fn start(&mut self, id: u64, op: Op) -> Started {
        let op_id = self.id();
        let tx = self.tx.clone();
        let guard = self.guard.clone();
        let Some(sock) = self.sockets.get_mut(&id) else {
            return Started::Now(Outcome::Err("socket is closed".into()));
        };
        if sock.busy {
            return Started::Now(Outcome::Err(
                "Invalid reuse of a socket from one thread to another.".into(),
            ));
        }
        let timeout = sock.timeout();
        match op {
            Op::Connect {
                addr,
                hostname,
                port,
                proto,
            } => {
                sock.conn = None;
                sock.addrs = None;
                sock.peer_cert = None;
                sock.closed = false;
                let udp = proto == "udp";
                if proto != "ssl" {
                    sock.udp = udp;
                }
                let inet6 = sock.inet6;
                let bind = sock.bind;
                sock.hostname = hostname.clone().or_else(|| Some(addr.clone()));
                sock.busy = true;
                std::thread::spawn(move || {
                    let c = connect(
                        &addr,
                        hostname.as_deref(),
                        port,
                        &proto,
                        inet6,
                        bind,
                        timeout,
                        &guard,
                    );
                    let (conn, addrs, cert, outcome) = match c {
                        Ok((conn, addrs, cert)) => (Some(conn), Some(addrs), cert, Outcome::Ok),
                        Err(e) => (None, None, None, Outcome::Err(e)),
                    };
                    let _ = tx.send(Completion {
                        op: op_id,
                        sock: Some(id),
                        conn,
                        peer_cert: cert,
                        addrs,
                        outcome,
                    });
                });
            }
            Op::SendTo { addr, port, data } => {
                let inet6 = sock.inet6;
                let bind = sock.bind;
                let conn = sock.conn.take();
                sock.busy = true;
                std::thread::spawn(move || {
                    let (conn, outcome) =
                        sendto(conn, &addr, port, &data, inet6, bind, timeout, &guard);
                    let _ = tx.send(Completion {
                        op: op_id,
                        sock: Some(id),
                        conn,
                        peer_cert: None,
                        addrs: None,
                        outcome,
                    });
                });
            }
            other => {
                let Some(mut conn) = sock.conn.take() else {
                    return Started::Now(Outcome::Err("socket must be connected".into()));
                };
                let hostname = sock.hostname.clone();
                sock.busy = true;
                std::thread::spawn(move || {
                    conn.set_timeout(timeout);
                    let mut cert = None;
                    let outcome = match other {
                        Op::Send(data) => match conn.write_all(&data) {
                            Ok(()) => Outcome::Ok,
                            Err(e) => Outcome::Err(io_status(&e)),
                        },
                        Op::Receive => read_until(&mut conn, |_| true),
                        Op::ReceiveBytes(n) => read_until(&mut conn, |b| b.len() >= n),
                        Op::ReceiveLines(n) => read_until(&mut conn, |b| {
                            b.iter().filter(|&&c| c == b'\n').count() >= n
                        }),
                        Op::ReconnectSsl => match conn {
                            Conn::Tcp(t) => {
                                let peer = t.peer_addr().ok();
                                let fresh = peer.and_then(|p| match timeout {
                                    Some(d) => TcpStream::connect_timeout(&p, d).ok(),
                                    None => TcpStream::connect(p).ok(),
                                });
                                let outcome = match fresh {
                                    Some(f) => {
                                        f.set_read_timeout(timeout).ok();
                                        f.set_write_timeout(timeout).ok();
                                        match tls_wrap(f, hostname.as_deref()) {
                                            Ok((c, crt)) => {
                                                conn = c;
                                                cert = crt;
                                                Outcome::Ok
                                            }
                                            Err(e) => {
                                                conn = Conn::Tcp(t);
                                                Outcome::Err(e)
                                            }
                                        }
                                    }
                                    None => {
                                        conn = Conn::Tcp(t);
                                        Outcome::Err("ERROR".into())
                                    }
                                };
                                outcome
                            }
                            c => {
                                conn = c;
                                Outcome::Ok
                            }
                        },
                        Op::Connect { .. } | Op::SendTo { .. } => Outcome::Err("ERROR".into()),
                    };
                    let _ = tx.send(Completion {
                        op: op_id,
                        sock: Some(id),
                        conn: Some(conn),
                        peer_cert: cert,
                        addrs: None,
                        outcome,
                    });
                });
            }
        }
        self.outstanding += 1;
        Started::Pending(op_id)
    }

    /// Starts a timer of `ms` milliseconds.
    pub fn sleep(&mut self, ms: u64) -> u64 {
        let op = self.id();
        let cancelled = Arc::new(AtomicBool::new(false));
        self.timers.insert(op, cancelled.clone());
        self.outstanding += 1;
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            if !cancelled.load(Ordering::Relaxed) {
                let _ = tx.send(Completion {
                    op,
                    sock: None,
                    conn: None,
                    peer_cert: None,
                    addrs: None,
                    outcome: Outcome::Wake,
                });
            }
        });
        op
    }

    pub fn cancel_sleep(&mut self, op: u64) {
        if let Some(c) = self.timers.remove(&op) {
            c.store(true, Ordering::Relaxed);
            self.outstanding -= 1;
        }
    }

    /// The next completion, as nsock's loop delivers events: waits until `deadline` while
    /// operations or timers are outstanding, and returns None at once when none is (so the
    /// engine's `loop(50)` lasts as long as Nmap's: it ends when nothing is pending, or
    /// after 50 ms of events). The first call still takes what is ready, deadline or not.
    pub fn next(&mut self, deadline: Instant, first: bool) -> Option<(u64, Outcome)> {
        loop {
            if self.outstanding == 0 {
                return None;
            }
            let now = Instant::now();
            let c = if now >= deadline {
                if !first {
                    return None;
                }
                self.rx.try_recv().ok()?
            } else {
                self.rx.recv_timeout(deadline - now).ok()?
            };
            if let Some(out) = self.complete(c) {
                return Some(out);
            }
        }
    }

    fn complete(&mut self, c: Completion) -> Option<(u64, Outcome)> {
        if c.sock.is_none() {
            // a timer: gone if cancelled (and counted out then)
            self.timers.remove(&c.op)?;
            self.outstanding -= 1;
            return Some((c.op, c.outcome));
        }
        self.outstanding = self.outstanding.saturating_sub(1);
        if let Some(s) = c.sock.and_then(|id| self.sockets.get_mut(&id)) {
            s.busy = false;
            if s.closed {
                s.closed = false;
            } else {
                if c.conn.is_some() {
                    s.conn = c.conn;
                }
                if c.addrs.is_some() {
                    s.addrs = c.addrs;
                }
                if c.peer_cert.is_some() {
                    s.peer_cert = c.peer_cert;
                }
            }
        }
        Some((c.op, c.outcome))
    }
}

fn read_until(conn: &mut Conn, enough: impl Fn(&[u8]) -> bool) -> Outcome {
    let mut got = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match conn.read_some(&mut buf) {
            Ok(0) => {
                // EOF: what was read so far is still delivered, as nsock does.
                return if got.is_empty() {
                    Outcome::Err("EOF".into())
                } else {
                    Outcome::Data(got)
                };
            }
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if enough(&got) {
                    return Outcome::Data(got);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                return if got.is_empty() {
                    Outcome::Err(io_status(&e))
                } else {
                    Outcome::Data(got)
                };
            }
        }
    }
}

type Connected = (Conn, (SocketAddr, SocketAddr), Option<Vec<u8>>);

#[allow(clippy::too_many_arguments)]
fn connect(
    addr: &str,
    hostname: Option<&str>,
    port: u16,
    proto: &str,
    inet6: bool,
    bind: Option<SocketAddr>,
    timeout: Option<Duration>,
    guard: &Guard,
) -> Result<Connected, String> {
    let dest = resolve(addr, port, inet6)?;
    guard(dest.ip())?;
    if proto == "udp" {
        let local = bind.unwrap_or_else(|| unspecified(dest.is_ipv6()));
        let u = UdpSocket::bind(local).map_err(|e| io_status(&e))?;
        u.connect(dest).map_err(|e| io_status(&e))?;
        let addrs = (u.local_addr().unwrap_or(local), dest);
        return Ok((Conn::Udp(u), addrs, None));
    }
    let tcp = match bind {
        Some(b) => connect_from(b, dest, timeout)?,
        None => match timeout {
            Some(d) => TcpStream::connect_timeout(&dest, d),
            None => TcpStream::connect(dest),
        }
        .map_err(|e| io_status(&e))?,
    };
    tcp.set_read_timeout(timeout).ok();
    tcp.set_write_timeout(timeout).ok();
    tcp.set_nodelay(true).ok();
    let addrs = (tcp.local_addr().unwrap_or(dest), dest);
    if proto == "ssl" {
        let (conn, cert) = tls_wrap(tcp, hostname.or(Some(addr)))?;
        return Ok((conn, addrs, cert));
    }
    Ok((Conn::Tcp(tcp), addrs, None))
}

fn unspecified(v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0)
    } else {
        SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0)
    }
}

fn connect_from(
    local: SocketAddr,
    dest: SocketAddr,
    timeout: Option<Duration>,
) -> Result<TcpStream, String> {
    use socket2::{Domain, Socket, Type};
    let domain = if dest.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, None).map_err(|e| io_status(&e))?;
    s.set_reuse_address(true).ok();
    s.bind(&local.into()).map_err(|e| io_status(&e))?;
    match timeout {
        Some(d) => s.connect_timeout(&dest.into(), d),
        None => s.connect(&dest.into()),
    }
    .map_err(|e| io_status(&e))?;
    Ok(s.into())
}

#[allow(clippy::too_many_arguments)]
fn sendto(
    conn: Option<Conn>,
    addr: &str,
    port: u16,
    data: &[u8],
    inet6: bool,
    bind: Option<SocketAddr>,
    timeout: Option<Duration>,
    guard: &Guard,
) -> (Option<Conn>, Outcome) {
    let dest = match resolve(addr, port, inet6) {
        Ok(d) => d,
        Err(e) => return (conn, Outcome::Err(e)),
    };
    if let Err(e) = guard(dest.ip()) {
        return (conn, Outcome::Err(e));
    }
    let sock = match conn {
        Some(Conn::Udp(u)) => u,
        Some(other) => return (Some(other), Outcome::Err("ERROR".into())),
        None => match UdpSocket::bind(bind.unwrap_or_else(|| unspecified(dest.is_ipv6()))) {
            Ok(u) => u,
            Err(e) => return (None, Outcome::Err(io_status(&e))),
        },
    };
    sock.set_write_timeout(timeout).ok();
    sock.set_read_timeout(timeout).ok();
    let outcome = match sock.send_to(data, dest) {
        Ok(_) => Outcome::Ok,
        Err(e) => Outcome::Err(io_status(&e)),
    };
    (Some(Conn::Udp(sock)), outcome)
}
