//! `portolan serve`: a read-only web view and JSON API over the history store
//! (docs/serve.md).
//!
//! This crate owns the HTTP side: the router ([`router`]), the server and its listening
//! rules ([`serve`], [`check_listen`]), authentication ([`auth`]), the security headers
//! every response carries, the filter language ([`filter`]), the pages ([`pages`]) and the
//! change list they share ([`changes`]).
//! It reads the store only through `portolan-store`'s query functions, never with SQL of
//! its own, so another store backend serves the same pages.

pub mod auth;
pub mod changes;
pub mod filter;
pub mod html;
pub mod pages;

use auth::Auth;
use axum::extract::{Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use pages::{PageError, Params, Reply};
use portolan_store::{Store, StoreError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What `portolan serve` was asked.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    pub listen: SocketAddr,
    pub auth: Option<PathBuf>,
}

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How many read-only connections to the store serve pages at once: a slow page (a year of
/// changes) does not hold up the others, and SQLite readers in WAL mode never block each
/// other.
pub const CONNECTIONS: usize = 4;

/// What a client may cost the server (see [`serve_on`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From when the server starts waiting for a request (on a new connection, or for the
    /// next request on a kept-alive one) to the end of its headers: a client that sends
    /// half a request, or nothing, is cut off after this.
    pub header_read: Duration,
    /// From the request's headers to the response: a page still running after this is
    /// answered 503 (its query ends on its own; its connection is free again).
    pub request: Duration,
    /// Connections open at once; the next ones wait in the listener's backlog.
    pub connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(60),
            connections: 256,
        }
    }
}

/// Password checks (Argon2, tens of milliseconds and 19 MiB each) running at once: a flood
/// of wrong passwords queues rather than taking every core and the memory.
const PASSWORD_CHECKS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "refusing to listen on {0} without --auth FILE: only loopback addresses (127.0.0.1, \
         ::1) are served without authentication (docs/serve.md)"
    )]
    NeedsAuth(SocketAddr),
    #[error("--auth {path}: {source}")]
    AuthRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--auth {path}: {source}")]
    AuthFile {
        path: PathBuf,
        source: auth::AuthError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Refuses a non-loopback address unless authentication is configured.
pub fn check_listen(addr: SocketAddr, has_auth: bool) -> Result<(), WebError> {
    if addr.ip().is_loopback() || has_auth {
        Ok(())
    } else {
        Err(WebError::NeedsAuth(addr))
    }
}

/// Reads and parses an auth file.
pub fn load_auth(path: &std::path::Path) -> Result<Auth, WebError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebError::AuthRead {
        path: path.to_path_buf(),
        source,
    })?;
    let auth = Auth::parse(&text).map_err(|source| WebError::AuthFile {
        path: path.to_path_buf(),
        source,
    })?;
    auth.prepare().map_err(|source| WebError::AuthFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(auth)
}

/// The shared state: the store's connections, each used by one request at a time, and the
/// credentials.
struct Inner {
    pool: Pool,
    auth: Option<Auth>,
    password_checks: Semaphore,
}

/// A few store connections: a request takes a permit, then any free connection (there is
/// always one: as many permits as connections).
struct Pool {
    slots: Vec<Mutex<pages::Data>>,
    permits: Arc<Semaphore>,
    /// The change list the connections share.
    changes: Arc<changes::SharedChanges>,
}

impl Pool {
    fn new(stores: Vec<Store>) -> Pool {
        // One change list for all: a request finds it whichever connection serves it.
        let changes = Arc::new(changes::SharedChanges::default());
        Pool {
            permits: Arc::new(Semaphore::new(stores.len())),
            slots: stores
                .into_iter()
                .map(|s| Mutex::new(pages::Data::sharing(s, changes.clone())))
                .collect(),
            changes,
        }
    }

    /// Runs `f` with a free connection, on the calling (blocking) thread; None when no
    /// connection was free, which the permit taken before prevents.
    fn with<T>(&self, f: impl FnOnce(&mut pages::Data) -> T) -> Option<T> {
        for slot in &self.slots {
            let mut data = match slot.try_lock() {
                Ok(d) => d,
                // A page that panicked left the connection as sound as SQLite keeps it.
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            return Some(f(&mut data));
        }
        None
    }

    /// [`Pool::with`] with two free connections (two permits taken before).
    fn with_two<T>(&self, f: impl FnOnce(&mut pages::Data, &mut pages::Data) -> T) -> Option<T> {
        let mut free = self.slots.iter().filter_map(|slot| match slot.try_lock() {
            Ok(d) => Some(d),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        });
        let (mut a, mut b) = (free.next()?, free.next()?);
        Some(f(&mut a, &mut b))
    }
}

#[derive(Clone)]
struct App(Arc<Inner>);

/// Every response's security headers. No inline script or style is allowed: the pages use
/// /static/app.js and /static/style.css only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; \
                   frame-ancestors 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Whether a Host header names this machine: `localhost` or a loopback address, with or
/// without a port. A request without one (HTTP/1.0) passes.
pub fn host_is_loopback(host: Option<&[u8]>) -> bool {
    let Some(host) = host else { return true };
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn require_auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(auth) = &app.0.auth else {
        // Without credentials the only guard is loopback: a page elsewhere whose name was
        // made to resolve to 127.0.0.1 (DNS rebinding) must not read the inventory through
        // the visitor's browser, so the browser must have asked for this machine by name.
        let host = req.headers().get(header::HOST).map(HeaderValue::as_bytes);
        if !host_is_loopback(host) {
            return (
                StatusCode::FORBIDDEN,
                "without --auth only requests for localhost or a loopback address are served\n",
            )
                .into_response();
        }
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|h| h.as_bytes().to_vec());
    let ok = if auth.needs_slow_check(given.as_deref()) {
        // A password check is slow by design: off the async threads, a few at a time.
        let Ok(_permit) = app.0.password_checks.acquire().await else {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        };
        let app = app.clone();
        tokio::task::spawn_blocking(move || {
            app.0
                .auth
                .as_ref()
                .is_some_and(|a| a.check(given.as_deref()))
        })
        .await
        .unwrap_or(false)
    } else {
        auth.check(given.as_deref())
    };
    if ok {
        return next.run(req).await;
    }
    let mut res = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    let challenge = if auth.has_users() {
        "Basic realm=\"portolan\", charset=\"UTF-8\""
    } else {
        "Bearer realm=\"portolan\""
    };
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    res
}

/// Unknown paths: 404 to a read, 405 to anything else (nothing here changes state).
async fn fallback(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        (StatusCode::NOT_FOUND, "no such page\n").into_response()
    } else {
        not_allowed()
    }
}

fn not_allowed() -> Response {
    let mut res = (
        StatusCode::METHOD_NOT_ALLOWED,
        "read-only: only GET and HEAD\n",
    )
        .into_response();
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    res
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let (ctype, body) = match self {
            Reply::Html(s) => ("text/html; charset=utf-8", s),
            Reply::Json(s) => ("application/json", s),
            Reply::Csv(s) => ("text/csv; charset=utf-8", s),
        };
        ([(header::CONTENT_TYPE, ctype)], body).into_response()
    }
}

impl PageError {
    /// The status and the message a visitor may see (never a path or a URL).
    fn public(self) -> (StatusCode, String) {
        match self {
            PageError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            PageError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            PageError::BadPage(_) => (StatusCode::BAD_REQUEST, "bad request".into()),
            PageError::Store(e) => {
                // The log gets the detail; the page never shows a path or a URL.
                eprintln!("portolan serve: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the history store failed (the server's log says why)".to_string(),
                )
            }
        }
    }

    fn into_json_response(self) -> Response {
        let (code, msg) = self.public();
        let body = serde_json::json!({ "error": msg }).to_string();
        (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if let PageError::BadPage(body) = self {
            let html = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
            return (StatusCode::BAD_REQUEST, html, body).into_response();
        }
        let (code, msg) = self.public();
        let body = html::page(
            "Error",
            "",
            "/api/overview",
            &format!("<p class=\"error\">{}</p>\n", html::E(&msg)),
        );
        (
            code,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

impl App {
    /// Runs a page's query on a blocking thread with the store; `api`: errors as JSON.
    async fn run<F>(&self, api: bool, f: F) -> Response
    where
        F: FnOnce(&mut pages::Data) -> Result<Reply, PageError> + Send + 'static,
    {
        let app = self.clone();
        // The permit goes with the query: a request that timed out does not free a
        // connection its query still uses.
        let Ok(permit) = app.0.pool.permits.clone().acquire_owned().await else {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        };
        let pool = app.clone();
        let res = tokio::task::spawn_blocking(move || {
            let res = pool
                .0
                .pool
                .with(|d| (f(d), d.changes_need_warming()))
                .map(|(page, warm)| {
                    if warm {
                        pool.warm_changes();
                    }
                    page
                });
            drop(permit);
            res
        })
        .await;
        match res {
            Ok(Some(Ok(reply))) => reply.into_response(),
            Ok(Some(Err(e))) if api => e.into_json_response(),
            Ok(Some(Err(e))) => e.into_response(),
            Ok(None) | Err(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "the page failed\n").into_response()
            }
        }
    }
}

impl App {
    /// Starts computing the whole change history in the background (see
    /// [`App::warm_changes`]), under way before any request is taken: the first request
    /// for a long window, however soon it comes, waits for it rather than computing the
    /// same beside it.
    async fn warm_at_start(&self) {
        let app = self.clone();
        let wanted =
            tokio::task::spawn_blocking(move || app.0.pool.with(|d| d.changes_need_warming()))
                .await;
        if let Ok(Some(true)) = wanted {
            // Every connection is free yet.
            if let Ok(permit) = self.0.pool.permits.clone().acquire_owned().await {
                self.start_warming(permit);
            }
        }
    }

    /// Computes the whole change history in the background, on a connection of the pool
    /// taken as a request takes one, so that the first request for a long window (a year
    /// of changes) finds it ready instead of computing it.
    fn warm_changes(&self) {
        let app = self.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            if let Ok(permit) = app.0.pool.permits.clone().acquire_owned().await {
                app.start_warming(permit);
            }
        });
    }

    /// [`App::warm_changes`] once a connection is ours (`permit`): marked under way, then
    /// computed on a blocking thread, with a second connection when one is free (the
    /// history computed in two halves at once).
    fn start_warming(&self, permit: OwnedSemaphorePermit) {
        let pool = &self.0.pool;
        pool.changes.warming_started();
        let second = pool.permits.clone().try_acquire_owned().ok();
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let pool = &app.0.pool;
            let done = second
                .as_ref()
                .and_then(|_| pool.with_two(|d, helper| d.warm_changes_with(helper)))
                .or_else(|| pool.with(|d| d.warm_changes()));
            match done {
                Some(Err(e)) => eprintln!("portolan serve: computing the change history: {e}"),
                Some(Ok(())) => {}
                // No connection after all (the permit says there is one): never leave
                // requests waiting.
                None => pool.changes.warming_ended(),
            }
            drop((permit, second));
        });
    }
}

type Q = Query<Params>;

macro_rules! page_route {
    ($name:ident, $f:path, $json:expr, $api:expr) => {
        async fn $name(State(app): State<App>, Query(p): Q) -> Response {
            app.run($api, move |s| $f(s, &p, $json)).await
        }
    };
}

page_route!(overview_html, pages::overview, false, false);
page_route!(overview_json, pages::overview, true, true);
page_route!(hosts_html, pages::hosts, pages::Format::Html, false);
page_route!(hosts_json, pages::hosts, pages::Format::Json, true);
page_route!(hosts_csv, pages::hosts, pages::Format::Csv, true);
page_route!(vulns_html, pages::vulns, pages::Format::Html, false);
page_route!(vulns_json, pages::vulns, pages::Format::Json, true);
page_route!(vulns_csv, pages::vulns, pages::Format::Csv, true);
page_route!(changes_html, pages::changes, pages::Format::Html, false);
page_route!(changes_json, pages::changes, pages::Format::Json, true);
page_route!(changes_csv, pages::changes, pages::Format::Csv, true);
page_route!(scans_html, pages::scans, false, false);
page_route!(scans_json, pages::scans, true, true);
page_route!(diff_html, pages::diff, false, false);
page_route!(diff_json, pages::diff, true, true);

async fn host_html(State(app): State<App>, Path(addr): Path<String>) -> Response {
    app.run(false, move |s| pages::host(s, &addr, false)).await
}

async fn host_json(State(app): State<App>, Path(addr): Path<String>) -> Response {
    app.run(true, move |s| pages::host(s, &addr, true)).await
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/style.css"),
    )
        .into_response()
}

/// The tab's icon: linked from every page, so a browser does not ask for /favicon.ico (a
/// 404, and an error in its console, on every page).
async fn icon() -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("../static/icon.svg"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/app.js"),
    )
        .into_response()
}

/// A read-only route: GET (which answers HEAD too); any other method is 405 with Allow.
fn r<H, T>(h: H) -> MethodRouter<App>
where
    H: Handler<T, App>,
    T: 'static,
{
    get(h).fallback(|| async { not_allowed() })
}

/// The whole application over one store connection (as [`router_with`]).
pub fn router(store: Store, auth: Option<Auth>) -> Router {
    router_with(vec![store], auth, Limits::default())
}

/// The whole application over the store's connections (one request on each at a time):
/// every page, its JSON under /api/, the static files, authentication when `auth` is
/// given, the request time limit, and the security headers on every response.
pub fn router_with(stores: Vec<Store>, auth: Option<Auth>, limits: Limits) -> Router {
    app_and_router(stores, auth, limits).1
}

/// [`router_with`], and the state its routes share.
fn app_and_router(stores: Vec<Store>, auth: Option<Auth>, limits: Limits) -> (App, Router) {
    let app = App(Arc::new(Inner {
        pool: Pool::new(stores),
        auth,
        password_checks: Semaphore::new(PASSWORD_CHECKS),
    }));
    let routes = Router::new()
        .route("/", r(overview_html))
        .route("/api/overview", r(overview_json))
        .route("/hosts", r(hosts_html))
        .route("/api/hosts", r(hosts_json))
        .route("/api/hosts.csv", r(hosts_csv))
        .route("/host/{addr}", r(host_html))
        .route("/api/host/{addr}", r(host_json))
        .route("/vulns", r(vulns_html))
        .route("/api/vulns", r(vulns_json))
        .route("/api/vulns.csv", r(vulns_csv))
        .route("/changes", r(changes_html))
        .route("/api/changes", r(changes_json))
        .route("/api/changes.csv", r(changes_csv))
        .route("/scans", r(scans_html))
        .route("/api/scans", r(scans_json))
        .route("/diff", r(diff_html))
        .route("/api/diff", r(diff_json))
        .route("/static/style.css", r(style))
        .route("/static/app.js", r(script))
        .route("/static/icon.svg", r(icon))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(app.clone(), require_auth))
        .with_state(app.clone());
    let router = limit_time(routes, limits.request).layer(middleware::from_fn(security_headers));
    (app, router)
}

/// Answers 503 to a request not answered within `limit` (password check and page
/// included), so a slow page cannot hold a client, nor a client a page, forever.
pub fn limit_time(router: Router, limit: Duration) -> Router {
    router.layer(middleware::from_fn(
        move |req: Request, next: Next| async move {
            match tokio::time::timeout(limit, next.run(req)).await {
                Ok(res) => res,
                Err(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the page took too long; try a narrower query\n",
                )
                    .into_response(),
            }
        },
    ))
}

/// Serves `app` on `listener` until `shutdown` completes, within `limits`: a header-read
/// timeout on every connection (hyper's, which needs the timer axum::serve does not set)
/// and at most `limits.connections` connections at once.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let open = Arc::new(Semaphore::new(limits.connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = open.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => return Ok(()),
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken: the
                    // listener itself is sound; pause so a persistent error does not spin.
                    eprintln!("portolan serve: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let service = TowerToHyperService::new(app.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read);
        tokio::spawn(async move {
            // A client that went away or timed out: nothing to report.
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
            drop(permit);
        });
    }
}

/// Serves `cfg.db` on `cfg.listen` until Ctrl-C. Refuses a non-loopback address without
/// `--auth`, before opening anything.
pub async fn serve(cfg: Config) -> Result<(), WebError> {
    check_listen(cfg.listen, cfg.auth.is_some())?;
    let auth = cfg.auth.as_deref().map(load_auth).transpose()?;
    if let Some(path) = &cfg.auth {
        use std::os::unix::fs::PermissionsExt;
        // Hashes in a file others can read can be attacked offline: say so, as ssh does.
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
            eprintln!(
                "portolan serve: warning: --auth {} can be read by other users (chmod 600 it)",
                path.display()
            );
        }
    }
    // Read-only connections: serving never upgrades the schema nor changes the journal.
    // Opened at once: a PostgreSQL connection takes tens of milliseconds to set up, and the
    // change history's warm-up (the first request's wait) starts once they are open.
    let stores = std::thread::scope(|s| {
        let opening: Vec<_> = (0..CONNECTIONS)
            .map(|_| s.spawn(|| Store::open_read_only(&cfg.db)))
            .collect();
        opening
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| WebError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    eprintln!("portolan serve: http://{addr}/ (Ctrl-C stops)");
    let limits = Limits::default();
    let (app, router) = app_and_router(stores, auth, limits);
    app.warm_at_start().await;
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve_on(listener, router, limits, stop)
        .await
        .map_err(|source| WebError::Listen {
            addr: cfg.listen,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request finds a free connection while another request holds one.
    #[test]
    fn the_pool_uses_a_free_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        drop(Store::open(&path).unwrap());
        let stores = (0..2)
            .map(|_| Store::open_read_only(&path).unwrap())
            .collect();
        let pool = Pool::new(stores);
        let busy = pool.slots[0].lock().unwrap();
        assert_eq!(pool.with(|d| d.store.schema_version().is_ok()), Some(true));
        let busy_too = pool.slots[1].lock().unwrap();
        assert_eq!(pool.with(|_| ()), None);
        drop((busy, busy_too));
        assert_eq!(pool.with(|_| ()), Some(()));
    }

    /// A change list computed on one connection serves a request on another.
    #[test]
    fn the_pool_shares_its_change_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        drop(Store::open(&path).unwrap());
        let stores = (0..2)
            .map(|_| Store::open_read_only(&path).unwrap())
            .collect();
        let pool = Pool::new(stores);
        let since = portolan_store::query::now() - 86_400;
        let first = pool.slots[0].lock().unwrap().changes_since(since).unwrap();
        let busy = pool.slots[0].lock().unwrap();
        let (second, computed) = pool
            .with(|d| (d.changes_since(since).unwrap(), d.changes_computed()))
            .unwrap();
        drop(busy);
        assert_eq!((first, second), (vec![], vec![]));
        assert_eq!(computed, 1, "computed again on the other connection");
    }
}
