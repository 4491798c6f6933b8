//! `portolan serve`: a read-only web view and JSON API over the history store
//! (docs/serve.md).
//!
//! This crate owns the HTTP side: the router ([`router`]), the server and its listening
//! rules ([`serve`], [`check_listen`]), authentication ([`auth`]), the security headers
//! every response carries, the filter language ([`filter`]) and the pages ([`pages`]).
//! It reads the store only through `portolan-store`'s query functions, never with SQL of
//! its own, so another store backend serves the same pages.

pub mod auth;
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
use std::sync::{Arc, Mutex};

/// What `portolan serve` was asked.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    pub listen: SocketAddr,
    pub auth: Option<PathBuf>,
}

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

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
    Auth::parse(&text).map_err(|source| WebError::AuthFile {
        path: path.to_path_buf(),
        source,
    })
}

/// The shared state: the store (one connection, used by one request at a time: SQLite
/// reads of this size take milliseconds) and the credentials.
struct Inner {
    data: Mutex<pages::Data>,
    auth: Option<Auth>,
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
        .map(HeaderValue::as_bytes);
    if auth.check(given) {
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
        let res = tokio::task::spawn_blocking(move || {
            let mut data = app.0.data.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut data)
        })
        .await;
        match res {
            Ok(Ok(reply)) => reply.into_response(),
            Ok(Err(e)) if api => e.into_json_response(),
            Ok(Err(e)) => e.into_response(),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "the page failed\n").into_response(),
        }
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

/// The whole application over an open store: every page, its JSON under /api/, the static
/// files, authentication when `auth` is given, and the security headers on every response.
pub fn router(store: Store, auth: Option<Auth>) -> Router {
    let app = App(Arc::new(Inner {
        data: Mutex::new(pages::Data::new(store)),
        auth,
    }));
    Router::new()
        .route("/", r(overview_html))
        .route("/api/overview", r(overview_json))
        .route("/hosts", r(hosts_html))
        .route("/api/hosts", r(hosts_json))
        .route("/api/hosts.csv", r(hosts_csv))
        .route("/host/{addr}", r(host_html))
        .route("/api/host/{addr}", r(host_json))
        .route("/changes", r(changes_html))
        .route("/api/changes", r(changes_json))
        .route("/api/changes.csv", r(changes_csv))
        .route("/scans", r(scans_html))
        .route("/api/scans", r(scans_json))
        .route("/diff", r(diff_html))
        .route("/api/diff", r(diff_json))
        .route("/static/style.css", r(style))
        .route("/static/app.js", r(script))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(app.clone(), require_auth))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
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
    let store = Store::open_existing(&cfg.db)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| WebError::Listen {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    eprintln!("portolan serve: http://{addr}/ (Ctrl-C stops)");
    let app = router(store, auth);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|source| WebError::Listen {
            addr: cfg.listen,
            source,
        })
}
