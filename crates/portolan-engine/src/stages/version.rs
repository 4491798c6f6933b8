//! Service and version detection (-sV) over TCP, with Nmap's probe database
//! (`portolan-probes`): the same probes, in the same order, matched by the same rules, so
//! the answers are Nmap's; but run as a pipeline instead of one probe at a time.
//!
//! For each port, the probes Nmap would send ([`ProbeDb::probe_order`]: the NULL probe,
//! then those whose `ports` list the port, then the rest by rarity) each get a connection
//! of their own, a few at a time, in that order. Their answers are judged strictly in that
//! order: the first hard match wins, as it would for Nmap, which sends the next probe only
//! when the previous one has said nothing useful. Each probe waits as long as the database
//! says (`totalwaitms`), and stops reading early at a hard match, at the peer's close, or
//! at [`READ_CAP`] bytes. So a silent or hostile port costs its probes' waits divided by
//! the pipeline's width, and never holds up the other ports.
//!
//! One liberty: the NULL probe waits up to 6 s for a banner. When a later probe already
//! has a match (hard, or soft) and the NULL connection has been silent for [`NULL_GRACE`],
//! the banner is given up on. A server that greets its clients does so at once; one that sends a
//! banner seconds late is the only case where this can differ from Nmap.
//!
//! As Nmap does, when the NULL probe's connection is still open after its wait (no banner,
//! or one that matched nothing), the second probe goes out on it too, and its answer (after
//! the banner) is judged when the second probe's own connection got nothing.
//!
//! Services that serve one client at a time (net-snmp's SMUX, single-threaded daemons, an
//! sshd at its `MaxStartups`) answer a pipeline differently from Nmap's one connection at
//! a time: connections queued behind another are silent, or closed, or answered late. When
//! a port's answers show that ([`one_at_a_time`]'s signs: a connection refused or the NULL
//! probe's closed while others were answered, the second probe answered on one of its two
//! connections only, a probe answered only after another silent connection ended), the
//! pipeline stops and the port is probed as Nmap does: one connection at a time, in order,
//! with Nmap's waits, going on after the NULL and second probes when the NULL probe's
//! connection carried the second one. A false alarm costs only time, never the answer.
//! A NULL probe's connection closed at once is tcpwrapped only when the rest of the first
//! wave got nothing either.
//!
//! TLS: when the answer is the `ssl` service, the port is probed again inside a TLS
//! session (any certificate accepted), with the probes' `sslports`, and reported as the
//! inner service with `tunnel="ssl"`, as Nmap's `ssl/http`.
//!
//! A port that matched nothing, or only soft-matched, comes with Nmap's service fingerprint
//! ([`portolan_probes::servicefp`]): the answers of the probes Nmap would have sent that got
//! data and did not hard-match, in order; behind TLS only those through TLS, as Nmap starts
//! the fingerprint afresh when it tunnels.

use portolan_probes::servicefp::{self, FpHeader};
use portolan_probes::{Found, ProbeDb, Proto};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

/// The most bytes read from one probe's connection (Nmap keeps a similar bound).
pub const READ_CAP: usize = 64 * 1024;
/// How long the NULL probe must have been silent before a later probe's hard match wins.
pub const NULL_GRACE: Duration = Duration::from_millis(500);
/// Probe connections in flight per port.
const PIPELINE: usize = 12;

/// Settings of a version scan.
#[derive(Debug, Clone)]
pub struct VersionOptions {
    /// 0-9 (`--version-intensity`; light 2, default 7, all 9).
    pub intensity: u8,
    /// How long a connection may take to open.
    pub connect_timeout: Duration,
    /// `--version-trace`: say on stderr what each probe got.
    pub trace: bool,
}

/// What version detection concluded about one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// A match (hard, or soft when nothing better came).
    Match { found: Box<Found>, ssl: bool },
    /// The peer closed the connection at once and without a word (TCP wrappers).
    TcpWrapped,
    /// TLS, but nothing recognised inside (Nmap: `ssl/<name from the table>?`).
    SslUnknown,
    /// Nothing matched (or the port could not be reached again).
    Unknown,
}

/// One probe's exchange.
#[derive(Debug, Clone, Default)]
struct Response {
    data: Vec<u8>,
    /// The peer closed (or reset) the connection.
    closed: bool,
    /// When the last byte came (or the exchange ended, without data).
    elapsed: Duration,
    /// The connection could not be opened.
    failed: bool,
    /// When the probe went out (the connection open, the payload written).
    sent: Option<Instant>,
    /// When its first byte came back.
    first_byte: Option<Instant>,
    /// When the exchange ended.
    ended: Option<Instant>,
    /// Not an exchange: the NULL probe's banner given up on (see [`NULL_GRACE`]) while its
    /// connection was still open.
    given_up: bool,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Pin<Box<dyn Stream>>;

/// A TLS client that accepts any certificate: version detection wants to see the service,
/// not to trust it.
pub fn tls_connector() -> Result<TlsConnector, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn open(
    addr: SocketAddr,
    tls: Option<&TlsConnector>,
    timeout: Duration,
) -> io::Result<Pin<Box<dyn Stream>>> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::pin(tcp)),
        Some(connector) => {
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let stream = tokio::time::timeout(timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            Ok(Box::pin(stream))
        }
    }
}

/// Sends `payload` on a new connection and reads until `wait` is over, the peer closes,
/// [`READ_CAP`] bytes came, or `done` says the answer is complete.
async fn exchange(
    addr: SocketAddr,
    tls: Option<&TlsConnector>,
    payload: &[u8],
    wait: Duration,
    connect_timeout: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Response {
    match open(addr, tls, connect_timeout).await {
        Ok(stream) => exchange_on(stream, payload, wait, done).await,
        Err(_) => Response {
            failed: true,
            ..Response::default()
        },
    }
}

/// [`exchange`] over UDP: `payload` in one datagram, and the datagrams that come back. An
/// ICMP port unreachable ends it as a close.
async fn exchange_udp(
    addr: SocketAddr,
    payload: &[u8],
    wait: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Response {
    let bind: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match tokio::net::UdpSocket::bind(bind).await {
        // Sent here, not by exchange_on: an empty datagram is a probe too.
        Ok(s) if s.connect(addr).await.is_ok() && s.send(payload).await.is_ok() => s,
        _ => {
            return Response {
                failed: true,
                ..Response::default()
            }
        }
    };
    exchange_on(Box::pin(Datagrams(socket)), &[], wait, done).await
}

/// A connected UDP socket read and written as a stream of datagrams.
struct Datagrams(tokio::net::UdpSocket);

impl AsyncRead for Datagrams {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        self.0.poll_recv(cx, buf)
    }
}

impl AsyncWrite for Datagrams {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        self.0.poll_send(cx, buf)
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Sends `payload` on `stream` and reads until `wait` is over, the peer closes (or an
/// error), [`READ_CAP`] bytes came, or `done` says the answer is complete.
async fn exchange_on(
    mut stream: Pin<Box<dyn Stream>>,
    payload: &[u8],
    wait: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Response {
    exchange_more(&mut stream, Vec::new(), payload, wait, done).await
}

/// [`exchange_on`] that leaves the stream to the caller, and starts from `data`, what the
/// connection has already said (Nmap's next probe after the NULL probe goes out on the
/// NULL probe's connection, and its answer is matched with the banner before it).
async fn exchange_more(
    stream: &mut Pin<Box<dyn Stream>>,
    data: Vec<u8>,
    payload: &[u8],
    wait: Duration,
    done: impl Fn(&[u8]) -> bool,
) -> Response {
    let started = Instant::now();
    let mut r = Response {
        data,
        sent: Some(started),
        ..Response::default()
    };
    if !payload.is_empty() && stream.write_all(payload).await.is_err() {
        r.closed = true;
        r.elapsed = started.elapsed();
        r.ended = Some(Instant::now());
        return r;
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                r.closed = true;
                break;
            }
            Ok(Ok(n)) => {
                r.first_byte.get_or_insert_with(Instant::now);
                let room = READ_CAP.saturating_sub(r.data.len());
                r.data.extend_from_slice(&buf[..n.min(room)]);
                if r.data.len() >= READ_CAP || done(&r.data) {
                    break;
                }
            }
        }
    }
    r.elapsed = started.elapsed();
    r.ended = Some(Instant::now());
    r
}

/// Detects the service on UDP `ip:port`: the database's UDP probes in Nmap's order, a
/// dozen at a time, judged in order. A match means the port answered: it is open. With
/// the verdict, Nmap's service fingerprint when it would print one.
pub async fn detect_udp(
    db: Arc<ProbeDb>,
    ip: IpAddr,
    port: u16,
    opts: &VersionOptions,
) -> (Detected, Option<String>) {
    let (d, answers) = detect_layer(&db, ip, port, Transport::Udp, opts).await;
    let fp = fingerprint(&db, port, Proto::Udp, opts, &d, &answers, false);
    (d, fp)
}

/// Detects the service on `ip:port` (TCP). With the verdict, Nmap's service fingerprint
/// when it would print one.
pub async fn detect(
    db: Arc<ProbeDb>,
    ip: IpAddr,
    port: u16,
    opts: &VersionOptions,
    tls: &TlsConnector,
) -> (Detected, Option<String>) {
    let (plain, answers) = detect_layer(&db, ip, port, Transport::Tcp, opts).await;
    let (d, answers, ssl) = match plain {
        Detected::Match { ref found, .. } if found.service == "ssl" && !found.soft => {
            match detect_layer(&db, ip, port, Transport::Tls(tls), opts).await {
                (Detected::Match { found, .. }, inner) => {
                    (Detected::Match { found, ssl: true }, inner, true)
                }
                // TLS but nothing recognised inside.
                (_, inner) => (Detected::SslUnknown, inner, true),
            }
        }
        other => (other, answers, false),
    };
    let fp = fingerprint(&db, port, Proto::Tcp, opts, &d, &answers, ssl);
    (d, fp)
}

/// A probe's answer that went into no hard match: (probe index, data).
type Answer = (usize, Vec<u8>);

/// Nmap's service fingerprint of a port, from the unmatched answers (through TLS when
/// `ssl`); None where Nmap prints none: after a hard match, after a soft one below the
/// default intensity, or without data.
fn fingerprint(
    db: &ProbeDb,
    port: u16,
    proto: Proto,
    opts: &VersionOptions,
    d: &Detected,
    answers: &[Answer],
    ssl: bool,
) -> Option<String> {
    match d {
        Detected::Match { found, .. } if !found.soft => return None,
        Detected::Match { .. } if opts.intensity < portolan_probes::INTENSITY_DEFAULT => {
            return None
        }
        Detected::TcpWrapped => return None,
        _ => {}
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| i64::try_from(t.as_secs()).unwrap_or(0));
    let (month, day) = super::os::month_day(now);
    let platform = super::os::platform();
    let header = FpHeader {
        port,
        proto,
        ssl,
        version: super::os::NMAP_VERSION,
        intensity: opts.intensity,
        month,
        day,
        time: now,
        platform: &platform,
    };
    let answers = answers.iter().filter_map(|(probe, data)| {
        let name = db.probes.get(*probe)?.name.as_str();
        Some((name, data.as_slice()))
    });
    servicefp::service_fingerprint(&header, answers)
}

/// What a probe travels over.
#[derive(Clone, Copy)]
enum Transport<'a> {
    Tcp,
    Tls(&'a TlsConnector),
    Udp,
}

/// One pass of Nmap's probe sequence, over plain TCP, inside TLS, or over UDP: the verdict,
/// and the answers with data that made no hard match, of the probes Nmap would have sent
/// (after a soft match, only those that can name that service), in order.
async fn detect_layer(
    db: &Arc<ProbeDb>,
    ip: IpAddr,
    port: u16,
    transport: Transport<'_>,
    opts: &VersionOptions,
) -> (Detected, Vec<Answer>) {
    let (proto, tls, udp) = match transport {
        Transport::Tcp => (Proto::Tcp, None, false),
        Transport::Tls(t) => (Proto::Tcp, Some(t), false),
        Transport::Udp => (Proto::Udp, None, true),
    };
    let ssl = tls.is_some();
    let order = db.probe_order(proto, port, ssl, opts.intensity);
    if order.is_empty() {
        return (Detected::Unknown, Vec::new());
    }
    let addr = SocketAddr::new(ip, port);
    let (verdict, serial) = pipelined(db, addr, &order, tls, udp, opts).await;
    match serial {
        Some(serial) => {
            if opts.trace {
                eprintln!(
                    "Service scan {ip}:{port}: {}: probing it as Nmap does, one connection \
                     at a time",
                    serial.why
                );
            }
            in_order(db, addr, &order, tls, opts, serial).await
        }
        None => verdict,
    }
}

/// Where the pipeline's answers leave a port that serves one client at a time.
struct Serial {
    /// Why the port seems to (see [`one_at_a_time`]).
    why: &'static str,
    /// The first position of the probe order not yet probed as Nmap would have: 2 when
    /// the NULL probe's connection carried the second probe, as Nmap's does; else 0.
    resume_at: usize,
    /// A softmatch those positions found.
    soft: Option<Found>,
    /// Their answers for the service fingerprint (see [`detect_layer`]).
    answers: Vec<Answer>,
}

/// Marks the second probe's exchange on the NULL probe's connection in the pipeline's
/// results channel (the others carry their position in the probe order).
const CONTINUED: usize = usize::MAX;

/// The pipeline: `order`'s probes a few at a time, judged in order. Returns the verdict
/// with the answers for the service fingerprint, and where it leaves a port that seems to
/// serve one client at a time.
///
/// As Nmap does, when the NULL probe's connection is still open after its wait (silent,
/// or a banner that matched nothing), the second probe goes out on it too. Its answer is
/// the one Nmap judges; here it is judged when the second probe's own connection got
/// nothing (a service busy with the NULL probe's connection answers only there).
async fn pipelined(
    db: &Arc<ProbeDb>,
    addr: SocketAddr,
    order: &[usize],
    tls: Option<&TlsConnector>,
    udp: bool,
    opts: &VersionOptions,
) -> ((Detected, Vec<Answer>), Option<Serial>) {
    let (ip, port) = (addr.ip(), addr.port());
    let order = order.to_vec();
    let null = db.null_probe();
    let null_first = null.is_some_and(|n| order.first() == Some(&n));
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Response)>();
    let started = Instant::now();
    // The pipeline: probes launched in order, PIPELINE at a time.
    let launcher = {
        let (db, order, tls, opts) = (db.clone(), order.clone(), tls.cloned(), opts.clone());
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(PIPELINE));
            let mut tasks = tokio::task::JoinSet::new();
            for (i, &probe) in order.iter().enumerate() {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let (db, tls, results, opts) = (db.clone(), tls.clone(), tx.clone(), opts.clone());
                let second = order
                    .get(1)
                    .copied()
                    .filter(|_| i == 0 && null_first && !udp);
                tasks.spawn(async move {
                    let p = &db.probes[probe];
                    let done = |probe: usize, data: &[u8]| {
                        db.match_response(probe, data, None)
                            .is_some_and(|f| !f.soft)
                    };
                    if let Some(second) = second {
                        // The NULL probe, on a connection the second probe may reuse.
                        let Ok(mut stream) = open(addr, tls.as_ref(), opts.connect_timeout).await
                        else {
                            drop(permit);
                            let failed = Response {
                                failed: true,
                                ..Response::default()
                            };
                            let _ = results.send((i, failed));
                            return;
                        };
                        let r = exchange_more(&mut stream, Vec::new(), &[], p.total_wait, |d| {
                            done(probe, d)
                        })
                        .await;
                        drop(permit);
                        let go_on = !r.closed && !done(probe, &r.data);
                        let data = r.data.clone();
                        let _ = results.send((i, r));
                        if go_on {
                            let s = &db.probes[second];
                            let r =
                                exchange_more(&mut stream, data, &s.payload, s.total_wait, |d| {
                                    done(second, d)
                                })
                                .await;
                            let _ = results.send((CONTINUED, r));
                        }
                        return;
                    }
                    let r = if udp {
                        exchange_udp(addr, &p.payload, p.total_wait, |d| done(probe, d)).await
                    } else {
                        exchange(
                            addr,
                            tls.as_ref(),
                            &p.payload,
                            p.total_wait,
                            opts.connect_timeout,
                            |d| done(probe, d),
                        )
                        .await
                    };
                    drop(permit);
                    let _ = results.send((i, r));
                });
                if tx.is_closed() {
                    break;
                }
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    let mut results: BTreeMap<usize, Response> = BTreeMap::new();
    // The second probe's exchange on the NULL probe's connection.
    let mut continued: Option<Response> = None;
    // Every probe has answered or given up.
    let mut all_in = false;
    let mut next = 0usize;
    let mut soft: Option<Found> = None;
    let mut answers: Vec<Answer> = Vec::new();
    let mut serial = None;
    // Probes before this position have been traced (a held TcpWrapped is judged again).
    let mut traced = 0usize;
    // The NULL probe's connection goes on with the second probe.
    let null_goes_on = |results: &BTreeMap<usize, Response>| {
        null_first
            && order.len() > 1
            && results
                .get(&0)
                .is_some_and(|n| !n.closed && !n.failed && !n.given_up)
    };
    let verdict = loop {
        // Judge, in order, every answer that is in.
        let mut decided = None;
        while let Some(own) = results.get(&next) {
            let probe = order[next];
            let r = if next == 1 && own.data.is_empty() && null_goes_on(&results) {
                match &continued {
                    Some(c) => c,
                    None if !all_in => break,
                    None => own,
                }
            } else {
                own
            };
            if r.failed && next == 0 {
                decided = Some(Detected::Unknown);
                break;
            }
            if opts.trace && next >= traced {
                traced = next + 1;
                eprintln!(
                    "Service scan {ip}:{port} probe {}{} ({} bytes{}): {:?}",
                    db.probes[probe].name,
                    if std::ptr::eq(r, own) {
                        ""
                    } else {
                        " (on the NULL probe's connection)"
                    },
                    r.data.len(),
                    if r.closed { ", closed" } else { "" },
                    String::from_utf8_lossy(&r.data[..r.data.len().min(120)])
                );
            }
            if Some(probe) == null
                && r.data.is_empty()
                && r.closed
                && r.elapsed < db.probes[probe].tcpwrapped_wait
            {
                // Only once the first wave is in: connections the others had answered
                // show a service that closed this one for being one too many.
                if (0..order.len().min(PIPELINE)).any(|i| !results.contains_key(&i)) {
                    break;
                }
                decided = Some(Detected::TcpWrapped);
                break;
            }
            if !r.data.is_empty() {
                let narrowed = soft.as_ref().map(|s| s.service.clone());
                // Nmap sends no probe after a soft match that cannot name that service.
                let sent = match &narrowed {
                    Some(s) if opts.intensity < portolan_probes::INTENSITY_ALL => {
                        db.probes[probe].service_is_possible(s)
                    }
                    _ => true,
                };
                match db.match_response(probe, &r.data, narrowed.as_deref()) {
                    Some(f) if !f.soft => {
                        decided = Some(Detected::Match {
                            found: Box::new(f),
                            ssl: false,
                        });
                        break;
                    }
                    Some(f) if soft.is_none() => soft = Some(f),
                    _ => {}
                }
                if sent {
                    answers.push((probe, r.data.clone()));
                }
            }
            next += 1;
        }
        if let Some(d) = decided {
            break d;
        }
        // A port that shows it serves one client at a time is probed in order at once:
        // the rest of the pipeline would only keep it busy. (Not while the NULL probe's
        // connection carries the second probe: that is Nmap's own exchange.)
        let nmaps_own_pending = null_goes_on(&results) && continued.is_none() && !all_in;
        if !udp && !nmaps_own_pending {
            serial = one_at_a_time(&results, continued.as_ref(), order.len(), null_first);
            if serial.is_some() {
                break Detected::Unknown;
            }
        }
        if results.contains_key(&next) {
            // Waiting for this position's other exchange: the rest of the first wave (a
            // held TcpWrapped), or the NULL probe's connection.
            match rx.recv().await {
                Some((i, r)) => store(&mut results, &mut continued, i, r),
                None if next == 0 => break Detected::TcpWrapped,
                None => all_in = true,
            }
            continue;
        }
        if next >= order.len() {
            break match soft.take() {
                Some(found) => Detected::Match {
                    found: Box::new(found),
                    ssl: false,
                },
                None => Detected::Unknown,
            };
        }
        // The NULL probe is still waiting for a banner: a later probe's match (hard, or a
        // softmatch that narrows the rest) ends that wait after the grace period, and the
        // NULL probe counts as silent.
        if Some(order[next]) == null && started.elapsed() >= NULL_GRACE {
            let later_match = results.iter().any(|(&i, r)| {
                i > next
                    && !r.data.is_empty()
                    && db.match_response(order[i], &r.data, None).is_some()
            });
            if later_match {
                let given_up = Response {
                    given_up: true,
                    ..Response::default()
                };
                results.insert(next, given_up);
                continue;
            }
        }
        let wait = if Some(order[next]) == null {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(3600)
        };
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some((i, r))) => store(&mut results, &mut continued, i, r),
            Ok(None) => {
                all_in = true;
                results.entry(next).or_default();
            }
            Err(_) => {}
        }
    };
    launcher.abort();
    // What the verdict rests on: the probes before the one that decided.
    let decided_at = match &verdict {
        Detected::TcpWrapped => 0,
        Detected::Match { found, .. } if !found.soft => next,
        _ => order.len(),
    };
    // Not when the NULL probe's banner matched (the first connection was served), nor the
    // second probe's answer on its connection: Nmap's own exchanges.
    let nmaps_own = matches!(verdict, Detected::Match { .. })
        && (decided_at == 0 || (decided_at == 1 && continued.is_some() && null_goes_on(&results)));
    if serial.is_none() && !nmaps_own && !udp {
        serial = one_at_a_time(&results, continued.as_ref(), decided_at, null_first);
    }
    let Some(why) = serial else {
        return ((verdict, answers), None);
    };
    let from_start = Serial {
        why,
        resume_at: 0,
        soft: None,
        answers: Vec::new(),
    };
    // The NULL probe and the second probe on one connection were probed as Nmap does:
    // go on from there.
    let (Some(c), Some(n)) = (continued.as_ref(), results.get(&0)) else {
        return ((verdict, Vec::new()), Some(from_start));
    };
    if !null_goes_on(&results) {
        return ((verdict, Vec::new()), Some(from_start));
    }
    let mut soft = None;
    let mut answers = Vec::new();
    if !n.data.is_empty() {
        soft = db.match_response(order[0], &n.data, None);
        answers.push((order[0], n.data.clone()));
    }
    if !c.data.is_empty() {
        let narrowed = soft.as_ref().map(|s| s.service.clone());
        match db.match_response(order[1], &c.data, narrowed.as_deref()) {
            Some(f) if !f.soft => {
                let found = Box::new(f);
                return ((Detected::Match { found, ssl: false }, Vec::new()), None);
            }
            Some(f) => {
                soft.get_or_insert(f);
            }
            None => {}
        }
        answers.push((order[1], c.data.clone()));
    }
    let serial = Serial {
        why,
        resume_at: 2,
        soft,
        answers,
    };
    ((verdict, Vec::new()), Some(serial))
}

/// Files an exchange the pipeline reports: at its position, or as the second probe's on
/// the NULL probe's connection. A NULL probe given up on stays given up: what its
/// connection says afterwards counts for nothing.
fn store(
    results: &mut BTreeMap<usize, Response>,
    continued: &mut Option<Response>,
    i: usize,
    r: Response,
) {
    let null_given_up = results.get(&0).is_some_and(|n| n.given_up);
    if i == CONTINUED {
        if !null_given_up {
            *continued = Some(r);
        }
    } else if !(i == 0 && null_given_up) {
        results.insert(i, r);
    }
}

/// A probe's first byte that comes this long after the probe went out, and after another
/// connection of the port ended without a word, came because that connection ended.
const HEAD_OF_LINE: Duration = Duration::from_millis(250);

/// Whether the pipeline's answers show a port that does not serve parallel connections as
/// it serves one, and so may have answered differently from Nmap's one connection at a
/// time; and why. `results` by position in the probe order; `continued`: the second
/// probe's exchange on the NULL probe's connection; the verdict rested on the positions
/// before `decided_at`; `null_first`: position 0 is the NULL probe.
///
/// Signs, each of which a service that serves every connection alike never shows (a
/// false alarm costs only time: the port is probed again as Nmap does):
/// * a connection could not be opened, while others were answered (a listen queue full,
///   a connection limit);
/// * the NULL probe's connection was closed by the peer without a match, while others
///   were answered (sshd's `MaxStartups` closes the ones beyond its limit, with
///   "Exceeded MaxStartups" or nothing);
/// * the second probe, sent on its own connection and on the NULL probe's, was answered
///   (data, or a close) on one and met silence on the other (a single-threaded server
///   busy with the NULL probe's connection leaves the other unread);
/// * head of line: a probe was answered only after another connection, open and silent
///   when it went out, had ended without a word, and [`HEAD_OF_LINE`] or more after it
///   went out. A service that serves one client at a time answers the next one when the
///   one it serves goes away (net-snmp's SMUX, a single-threaded daemon); one that serves
///   all at once answers each probe in a few milliseconds, whatever the others do.
fn one_at_a_time(
    results: &BTreeMap<usize, Response>,
    continued: Option<&Response>,
    decided_at: usize,
    null_first: bool,
) -> Option<&'static str> {
    let answered = |r: &Response| !r.data.is_empty() || r.closed;
    let silent = |r: &Response| r.data.is_empty() && !r.closed && !r.failed && !r.given_up;
    if let (Some(c), Some(own)) = (continued, results.get(&1)) {
        if (answered(c) && silent(own)) || (silent(c) && answered(own)) {
            return Some("the second probe was answered on one of its two connections only");
        }
    }
    if !results.values().any(|r| !r.data.is_empty()) {
        return None;
    }
    let before = || results.range(..decided_at.max(1)).map(|(_, r)| r);
    if before().any(|r| r.failed) {
        return Some("a connection was refused while others were answered");
    }
    if null_first && results.get(&0).is_some_and(|r| r.closed && !r.given_up) {
        return Some("the NULL probe's connection was closed while others were answered");
    }
    let head_of_line = before()
        .filter(|j| j.data.is_empty() && !j.failed && !j.given_up)
        .filter_map(|j| j.ended)
        .any(|ended| {
            results.values().any(|k| match (k.sent, k.first_byte) {
                (Some(sent), Some(first)) => {
                    sent < ended && ended <= first && first.duration_since(sent) >= HEAD_OF_LINE
                }
                _ => false,
            })
        });
    head_of_line.then_some("a probe was answered only after another connection ended")
}

/// Nmap's way, for a port that serves one client at a time: `order`'s probes one
/// connection at a time, each judged before the next goes out (`service_scan.cc`). The
/// NULL probe waits its full time for a banner; if its connection is still open, the next
/// probe goes out on it and its answer is matched after the banner. A NULL connection
/// closed at once without a word is tcpwrapped. After a softmatch Nmap goes on with the
/// later probes that can name its service, whatever their rarity (all of them with
/// --version-all). A connection that cannot be opened ends the port's detection (Nmap:
/// incomplete). Starts where the pipeline left off (`from`). Returns the verdict and the
/// answers with data that made no hard match, for the service fingerprint.
async fn in_order(
    db: &Arc<ProbeDb>,
    addr: SocketAddr,
    order: &[usize],
    tls: Option<&TlsConnector>,
    opts: &VersionOptions,
    from: Serial,
) -> (Detected, Vec<Answer>) {
    let (start, mut soft, mut answers) = (from.resume_at, from.soft, from.answers);
    let null = db.null_probe();
    let (port, ssl) = (addr.port(), tls.is_some());
    // Nmap's order of every probe, to find "later" in a list recomputed after a softmatch.
    let every = db.probe_order(Proto::Tcp, port, ssl, portolan_probes::INTENSITY_ALL);
    let rank = |p: usize| every.iter().position(|&q| q == p);
    let after_softmatch = |service: &str, last: usize| -> Vec<usize> {
        db.probe_order_with(Proto::Tcp, port, ssl, opts.intensity, Some(service))
            .into_iter()
            .filter(|&p| rank(p) > rank(last))
            .collect()
    };
    let mut queue: Vec<usize> = match (&soft, start.checked_sub(1).and_then(|i| order.get(i))) {
        (Some(s), Some(&last)) => after_softmatch(&s.service, last),
        _ => order.get(start..).unwrap_or_default().to_vec(),
    };
    queue.reverse();
    // The NULL probe's connection, still open, and what it said.
    let mut kept: Option<(BoxStream, Vec<u8>)> = None;
    while let Some(probe) = queue.pop() {
        let p = &db.probes[probe];
        let (mut stream, data) = match kept.take() {
            Some(k) => k,
            None => match open(addr, tls, opts.connect_timeout).await {
                Ok(s) => (s, Vec::new()),
                Err(_) => break,
            },
        };
        let done = |data: &[u8]| {
            db.match_response(probe, data, None)
                .is_some_and(|f| !f.soft)
        };
        let r = exchange_more(&mut stream, data, &p.payload, p.total_wait, done).await;
        if opts.trace {
            eprintln!(
                "Service scan {addr} probe {} (in order; {} bytes{}): {:?}",
                p.name,
                r.data.len(),
                if r.closed { ", closed" } else { "" },
                String::from_utf8_lossy(&r.data[..r.data.len().min(120)])
            );
        }
        let is_null = Some(probe) == null;
        if is_null && r.data.is_empty() && r.closed && r.elapsed < p.tcpwrapped_wait {
            return (Detected::TcpWrapped, Vec::new());
        }
        if !r.data.is_empty() {
            let narrowed = soft.as_ref().map(|s| s.service.clone());
            match db.match_response(probe, &r.data, narrowed.as_deref()) {
                Some(f) if !f.soft => {
                    let found = Box::new(f);
                    return (Detected::Match { found, ssl: false }, Vec::new());
                }
                Some(f) if soft.is_none() => {
                    queue = after_softmatch(&f.service, probe);
                    queue.reverse();
                    soft = Some(f);
                }
                _ => {}
            }
            // Only probes Nmap sends get here (after a softmatch, those that can name it).
            answers.push((probe, r.data.clone()));
        }
        if is_null && !r.closed {
            kept = Some((stream, r.data));
        }
    }
    let verdict = match soft {
        Some(found) => Detected::Match {
            found: Box::new(found),
            ssl: false,
        },
        None => Detected::Unknown,
    };
    (verdict, answers)
}

/// Ports probed at once by -sV (each with a few probe connections of its own).
const PARALLEL_PORTS: usize = 64;

/// -sV as a stage: detects the service on every open TCP port (and open or open|filtered
/// UDP port) of the batch's hosts, all ports at once up to [`PARALLEL_PORTS`].
pub struct VersionStage;

impl crate::pipeline::Stage for VersionStage {
    fn wanted(&self, plan: &crate::plan::ScanPlan) -> bool {
        plan.version.is_some()
    }

    fn applies(&self, plan: &crate::plan::ScanPlan, host: &crate::pipeline::HostRecord) -> bool {
        // Every port-scanned host waits for its versions, so hosts are written in the
        // order their port scans finished.
        plan.version.is_some() && plan.port_scan() && host.is_up()
    }

    fn run<'a>(
        &'a self,
        cx: &'a mut crate::pipeline::StageCx<'_>,
        batch: &'a mut crate::pipeline::Batch,
    ) -> crate::pipeline::BoxFuture<'a, Result<(), crate::pipeline::ScanError>> {
        Box::pin(async move {
            // After an interrupt nothing more is sent: not even the first connect of a
            // probe task spawned only to be aborted.
            if cx.cancel.is_cancelled() {
                return Ok(());
            }
            if let Some(v) = &cx.plan.version {
                detect_versions(v, &mut batch.hosts, cx.cancel).await;
            }
            Ok(())
        })
    }
}

async fn detect_versions(
    v: &crate::plan::VersionPlan,
    hosts: &mut [crate::pipeline::HostRecord],
    cancel: &tokio_util::sync::CancellationToken,
) {
    use portolan_model::{PortState, Protocol};
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL_PORTS));
    let mut tasks = tokio::task::JoinSet::new();
    for (hi, h) in hosts.iter().enumerate() {
        let Some(scan) = h.scan.as_ref().filter(|_| !h.written) else {
            continue;
        };
        for (pi, port) in scan.ports.iter().enumerate() {
            // TCP: open ports. UDP: open|filtered ones too, as Nmap: an answer to a probe
            // shows the port open.
            let (proto, udp) = match (port.proto, port.state) {
                (Protocol::Tcp, PortState::Open) => (Proto::Tcp, false),
                (Protocol::Udp, PortState::Open | PortState::OpenFiltered) => (Proto::Udp, true),
                _ => continue,
            };
            if !v.all_ports && v.db.is_excluded(proto, port.port) {
                continue;
            }
            let (db, opts, tls, slots) =
                (v.db.clone(), v.opts.clone(), v.tls.clone(), slots.clone());
            let (ip, portid) = (h.ip, port.port);
            tasks.spawn(async move {
                let _permit = slots.acquire_owned().await;
                let (d, fp) = if udp {
                    detect_udp(db, ip, portid, &opts).await
                } else {
                    detect(db, ip, portid, &opts, &tls).await
                };
                (hi, pi, d, fp)
            });
        }
    }
    loop {
        let next = tokio::select! {
            n = tasks.join_next() => n,
            _ = cancel.cancelled() => {
                tasks.abort_all();
                None
            }
        };
        let Some(joined) = next else {
            break;
        };
        let Ok((hi, pi, d, fp)) = joined else {
            continue;
        };
        let port = hosts
            .get_mut(hi)
            .and_then(|h| h.scan.as_mut())
            .and_then(|s| s.ports.get_mut(pi));
        let Some(port) = port else {
            continue;
        };
        if matches!(d, Detected::Match { .. })
            && port.proto == Protocol::Udp
            && port.state != PortState::Open
        {
            port.state = PortState::Open;
            port.reason = "udp-response";
        }
        port.detected = Some(d);
        port.servicefp = fp;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NULL and two probes; `zorg` is soft-matched by a banner and can be named only by Help.
    const PROBES: &str = "\
Probe TCP NULL q||
totalwaitms 2000
softmatch zorg m|^ZORG |
Probe TCP GenericLines q|\\r\\n\\r\\n|
rarity 1
totalwaitms 2000
match other m|^NEVER|
Probe TCP Help q|HELP\\r\\n|
rarity 1
totalwaitms 2000
match zorg m|^ZORGLUB (\\d+)| v/$1/
";

    /// A loopback server that sends `banner` on each connection and closes it.
    async fn server(banner: &'static [u8]) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(banner).await;
                let _ = s.shutdown().await;
            }
        });
        port
    }

    async fn run(banner: &'static [u8], intensity: u8) -> (Detected, Option<String>) {
        let (db, errors) = portolan_probes::parse(PROBES);
        assert!(errors.is_empty(), "{errors:?}");
        let port = server(banner).await;
        let opts = VersionOptions {
            intensity,
            connect_timeout: Duration::from_secs(2),
            trace: false,
        };
        let tls = tls_connector().unwrap();
        detect(
            Arc::new(db),
            "127.0.0.1".parse().unwrap(),
            port,
            &opts,
            &tls,
        )
        .await
    }

    /// The fingerprint without its header (which holds the port, date and time).
    fn answers(fp: &str) -> &str {
        &fp[fp.find("%r(").expect("an answer")..]
    }

    #[tokio::test]
    async fn an_unknown_service_has_every_answer_in_its_fingerprint() {
        let (d, fp) = run(b"hello\r\n", 7).await;
        assert_eq!(d, Detected::Unknown);
        let fp = fp.expect("a fingerprint");
        assert!(fp.starts_with("SF-Port"), "{fp}");
        assert!(fp.contains("-TCP:V=7.93%I=7%D="), "{fp}");
        assert_eq!(
            answers(&fp),
            "%r(NULL,7,\"hello\\r\\n\")%r(GenericLines,7,\"hello\\r\\n\")\
             %r(Help,7,\"hello\\r\\n\");"
        );
    }

    #[tokio::test]
    async fn after_a_soft_match_only_the_probes_nmap_sends_count() {
        let (d, fp) = run(b"ZORG 1\r\n", 7).await;
        assert!(
            matches!(&d, Detected::Match { found, .. } if found.soft && found.service == "zorg")
        );
        // GenericLines cannot name zorg: Nmap would not have sent it.
        assert_eq!(
            answers(&fp.expect("a fingerprint")),
            "%r(NULL,8,\"ZORG\\x201\\r\\n\")%r(Help,8,\"ZORG\\x201\\r\\n\");"
        );
        // Below the default intensity Nmap prints none for a soft match.
        assert_eq!(run(b"ZORG 1\r\n", 5).await.1, None);
    }

    #[tokio::test]
    async fn a_hard_match_has_no_fingerprint() {
        let (d, fp) = run(b"ZORGLUB 7\r\n", 7).await;
        assert!(matches!(&d, Detected::Match { found, .. } if !found.soft));
        assert_eq!(fp, None);
    }
}

#[cfg(test)]
/// Services that serve one client at a time.
mod serial_tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A NULL probe, a second probe whose answer names a single-client service, a web
    /// request, and binary fillers enough for more than one wave of the pipeline.
    fn db() -> Arc<ProbeDb> {
        let mut text = String::from(
            "Probe TCP NULL q||\n\
             totalwaitms 1000\n\
             match ssh m|^SSH-([\\d.]+)-OpenSSH_([\\w.]+)| p/OpenSSH/ v/$2/\n\
             Probe TCP GenericLines q|\\r\\n\\r\\n|\n\
             rarity 1\n\
             totalwaitms 500\n\
             match smux m|^A\\x01\\x02$| p/Linux SNMP multiplexer/\n\
             Probe TCP GetRequest q|GET / HTTP/1.0\\r\\n\\r\\n|\n\
             rarity 1\n\
             totalwaitms 500\n\
             match http m|^HTTP/1\\.0 200 OK\\r\\nServer: Serial/([\\d.]+)| p/Serial httpd/ v/$1/\n",
        );
        for i in 0..14 {
            text.push_str(&format!(
                "Probe TCP Filler{i} q|\\x01\\x02{i}|\nrarity 1\ntotalwaitms 500\n"
            ));
        }
        let (db, errors) = portolan_probes::parse(&text);
        assert!(errors.is_empty(), "{errors:?}");
        Arc::new(db)
    }

    fn opts() -> VersionOptions {
        VersionOptions {
            intensity: 7,
            connect_timeout: Duration::from_secs(5),
            trace: false,
        }
    }

    async fn detect_at(addr: SocketAddr) -> Detected {
        let tls = tls_connector().expect("TLS client");
        detect(db(), addr.ip(), addr.port(), &opts(), &tls).await.0
    }

    fn product(d: &Detected) -> Option<(&str, Option<&str>, Option<&str>)> {
        match d {
            Detected::Match { found, .. } => Some((
                found.service.as_str(),
                found.product.as_deref(),
                found.version.as_deref(),
            )),
            _ => None,
        }
    }

    /// Like net-snmp's SMUX: serves one client at a time, and waits for its first packet
    /// (or its close) before it accepts the next; answers any packet with a close PDU.
    async fn smux(listener: TcpListener) {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            if let Ok(n) = s.read(&mut buf).await {
                if n > 0 {
                    let _ = s.write_all(b"A\x01\x02").await;
                }
            }
        }
    }

    #[tokio::test]
    async fn a_service_that_reads_one_client_at_a_time_gets_nmaps_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(smux(listener));
        let d = detect_at(addr).await;
        server.abort();
        // Nmap: the NULL probe's connection, silent, then GenericLines on it.
        assert_eq!(
            product(&d),
            Some(("smux", Some("Linux SNMP multiplexer"), None)),
            "{d:?}"
        );
    }

    /// Like a single-threaded web server: one client at a time, read up to the end of a
    /// line (however long that takes); a GET gets a page, an empty line a close.
    async fn serial_httpd(listener: TcpListener) {
        while let Ok((s, _)) = listener.accept().await {
            serial_httpd_one(s).await;
        }
    }

    #[tokio::test]
    async fn a_single_threaded_server_is_probed_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serial_httpd(listener));
        let d = detect_at(addr).await;
        server.abort();
        assert_eq!(
            product(&d),
            Some(("http", Some("Serial httpd"), Some("1.2"))),
            "{d:?}"
        );
    }

    /// A port probed one connection at a time that nothing names still gets its service
    /// fingerprint, with the answers in Nmap's order, the second probe's included (it was
    /// sent on the NULL probe's connection).
    #[tokio::test]
    async fn a_serial_port_that_matches_nothing_keeps_its_fingerprint() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // One client at a time: each line gets "WHAT?" and the connection is closed.
        let server = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut byte = [0u8; 1];
                while let Ok(1) = s.read(&mut byte).await {
                    if byte[0] == b'\n' {
                        let _ = s.write_all(b"WHAT?\r\n").await;
                        break;
                    }
                }
            }
        });
        let tls = tls_connector().expect("TLS client");
        let (d, fp) = detect(db(), addr.ip(), addr.port(), &opts(), &tls).await;
        server.abort();
        assert_eq!(d, Detected::Unknown);
        let fp = fp.expect("a fingerprint");
        let generic = fp.find("r(GenericLines,").expect("GenericLines' answer");
        let get = fp.find("r(GetRequest,").expect("GetRequest's answer");
        assert!(generic < get, "{fp}");
        assert!(!fp.contains("r(NULL,"), "the NULL probe got nothing: {fp}");
    }

    /// A connection limit: the first connection is closed at once without a word (the
    /// NULL probe's connection lost the race for sshd's last `MaxStartups` slot), the
    /// others get the banner.
    async fn limited_sshd(listener: TcpListener) {
        let mut first = true;
        while let Ok((mut s, _)) = listener.accept().await {
            if std::mem::take(&mut first) {
                continue;
            }
            tokio::spawn(async move {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    }

    #[tokio::test]
    async fn a_null_probe_closed_by_a_connection_limit_is_not_tcpwrapped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(limited_sshd(listener));
        let d = detect_at(addr).await;
        server.abort();
        assert_eq!(
            product(&d),
            Some(("ssh", Some("OpenSSH"), Some("9.2p1"))),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn a_port_that_closes_every_connection_is_tcpwrapped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let d = detect_at(addr).await;
        server.abort();
        assert_eq!(d, Detected::TcpWrapped);
    }

    /// Serves every client at once: a GET gets a page at once, anything else silence.
    #[tokio::test]
    async fn a_service_that_serves_all_at_once_keeps_the_pipeline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serial_httpd_one(s));
            }
        });
        let db = db();
        let order = db.probe_order(Proto::Tcp, addr.port(), false, 7);
        let ((d, _), serial) = pipelined(&db, addr, &order, None, false, &opts()).await;
        server.abort();
        assert!(serial.is_none(), "{:?}", serial.map(|s| s.why));
        assert_eq!(
            product(&d),
            Some(("http", Some("Serial httpd"), Some("1.2"))),
            "{d:?}"
        );
    }

    async fn serial_httpd_one(mut s: TcpStream) {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = s.read(&mut byte).await {
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        if line.starts_with(b"GET ") {
            let _ = s
                .write_all(b"HTTP/1.0 200 OK\r\nServer: Serial/1.2\r\n\r\nhello")
                .await;
        }
    }
}
