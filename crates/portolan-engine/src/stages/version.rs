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
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

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
    let started = Instant::now();
    let mut r = Response::default();
    if !payload.is_empty() && stream.write_all(payload).await.is_err() {
        r.closed = true;
        r.elapsed = started.elapsed();
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
                let room = READ_CAP - r.data.len();
                r.data.extend_from_slice(&buf[..n.min(room)]);
                if r.data.len() >= READ_CAP || done(&r.data) {
                    break;
                }
            }
        }
    }
    r.elapsed = started.elapsed();
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
    let null = db.null_probe();
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
                tasks.spawn(async move {
                    let p = &db.probes[probe];
                    let done = |data: &[u8]| {
                        db.match_response(probe, data, None)
                            .is_some_and(|f| !f.soft)
                    };
                    let r = if udp {
                        exchange_udp(addr, &p.payload, p.total_wait, done).await
                    } else {
                        exchange(
                            addr,
                            tls.as_ref(),
                            &p.payload,
                            p.total_wait,
                            opts.connect_timeout,
                            done,
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
    let mut next = 0usize;
    let mut soft: Option<Found> = None;
    let mut answers: Vec<Answer> = Vec::new();
    let verdict = loop {
        // Judge, in order, every answer that is in.
        let mut decided = None;
        while let Some(r) = results.get(&next) {
            let probe = order[next];
            if r.failed && next == 0 {
                decided = Some(Detected::Unknown);
                break;
            }
            if opts.trace {
                eprintln!(
                    "Service scan {ip}:{port} probe {} ({} bytes{}): {:?}",
                    db.probes[probe].name,
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
                results.insert(next, Response::default());
                continue;
            }
        }
        let wait = if Some(order[next]) == null {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(3600)
        };
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some((i, r))) => {
                results.insert(i, r);
            }
            Ok(None) => {
                // Every probe has answered or given up.
                results.entry(next).or_default();
            }
            Err(_) => {}
        }
    };
    launcher.abort();
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
