//! The web view through its router (no port): pages, their JSON and CSV, the filter,
//! escaping of hostile banners, security headers, methods, listening rules and auth.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use common::{finding, host, readers, scan, scan_with, with_vulns, DAY, XSS};
use http_body_util::BodyExt;
use portolan_store::query::now;
use portolan_store::Store;
use portolan_web::auth::{user_line_with, Auth};
use portolan_web::{check_listen, router_with, Limits, WebError};
use tower::ServiceExt;

/// Three scans: two days ago, yesterday (a port opened, a version changed, a hostile
/// banner), and an interrupted one today.
fn app_with(auth: Option<Auth>) -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret-name.db");
    let mut store = Store::open(&path).unwrap();
    let t = now();
    scan(
        &mut store,
        t - 2 * DAY,
        true,
        &[
            host("198.18.0.1", &[(22, "OpenSSH", "8.9p1", None)]),
            host("198.18.0.2", &[(80, "nginx", "1.18.0", None)]),
        ],
    );
    scan(
        &mut store,
        t - DAY,
        true,
        &[
            host(
                "198.18.0.1",
                &[
                    (22, "OpenSSH", "9.6p1", None),
                    (80, "nginx", "1.24.0", None),
                ],
            ),
            host("198.18.0.2", &[(80, XSS, "1.0", Some(XSS))]),
        ],
    );
    scan(&mut store, t, false, &[host("198.18.0.9", &[])]);
    drop(store);
    // As `portolan serve` reads it: through a few read-only connections.
    (dir, router_with(readers(&path, 2), auth, Limits::default()))
}

fn app() -> (tempfile::TempDir, Router) {
    app_with(None)
}

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Got {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(app: &Router, uri: &str) -> Got {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn json(g: &Got) -> serde_json::Value {
    serde_json::from_str(&g.body).unwrap()
}

#[tokio::test]
async fn every_page_answers_with_its_security_headers() {
    let (_d, app) = app();
    for uri in [
        "/",
        "/api/overview",
        "/hosts",
        "/api/hosts",
        "/api/hosts.csv",
        "/host/198.18.0.1",
        "/api/host/198.18.0.1",
        "/vulns",
        "/api/vulns",
        "/api/vulns.csv",
        "/changes",
        "/api/changes",
        "/api/changes.csv",
        "/scans",
        "/api/scans",
        "/diff?a=1&b=2",
        "/api/diff?a=1&b=2",
        "/static/app.js",
        "/static/style.css",
        "/static/icon.svg",
        "/nowhere",
        "/host/10.9.9.9",
    ] {
        let g = get(&app, uri).await;
        let want = if uri == "/nowhere" || uri == "/host/10.9.9.9" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(g.status, want, "{uri}: {}", g.body);
        let csp = g.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(g.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        // The store's file name is never shown.
        assert!(
            !g.body.contains("secret-name"),
            "{uri} shows the store's path"
        );
        if uri.starts_with("/api/") && !uri.ends_with(".csv") {
            json(&g);
        }
        if g.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
        {
            // No inline script: only the served file.
            assert_eq!(g.body.matches("<script").count(), 1, "{uri}");
            assert!(g
                .body
                .contains("<script src=\"/static/app.js\" defer></script>"));
        }
    }
}

#[tokio::test]
async fn a_hostile_banner_is_shown_as_text() {
    let (_d, app) = app();
    for uri in [
        "/host/198.18.0.2",
        "/hosts",
        "/changes",
        "/diff?a=1&b=2",
        "/",
    ] {
        let g = get(&app, uri).await;
        assert!(
            g.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{uri} does not show the banner"
        );
        assert_eq!(
            g.body.matches("<script").count(),
            1,
            "{uri} runs the banner"
        );
    }
    // In JSON it is a string, as it came.
    let g = get(&app, "/api/host/198.18.0.2").await;
    assert_eq!(json(&g)["current"]["ports"][0]["product"], XSS);
    assert_eq!(json(&g)["port_scripts"]["80/tcp"][0]["output"], XSS);
}

#[tokio::test]
async fn only_reads_are_served() {
    let (_d, app) = app();
    for (method, uri) in [
        ("POST", "/"),
        ("PUT", "/hosts"),
        ("DELETE", "/api/hosts"),
        ("POST", "/nowhere"),
        ("PATCH", "/host/198.18.0.1"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let g = send(&app, req).await;
        assert_eq!(g.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(g.headers[header::ALLOW], "GET, HEAD");
        assert!(g.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }
    let head = Request::head("/hosts").body(Body::empty()).unwrap();
    assert_eq!(send(&app, head).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_overview_counts_the_inventory() {
    let (_d, app) = app();
    let o = json(&get(&app, "/api/overview").await);
    assert_eq!(o["hosts_up"], 2);
    assert_eq!(o["open_ports"], 3);
    // Yesterday's scan against the one before: 80 opened on .1, 22's version and .2's
    // product changed.
    assert_eq!(o["changes_7d"], 3);
    assert_eq!(o["top_ports"][0], serde_json::json!(["80/tcp", 2]));
    assert_eq!(o["latest_scans"][0]["complete"], false);
    let g = get(&app, "/").await;
    assert!(g.body.contains("<b>2</b> hosts up"));
    assert!(g.body.contains("incomplete"));
    assert!(g.body.contains("<svg class=\"bars\""));
}

#[tokio::test]
async fn the_filter_narrows_hosts_and_bad_filters_are_refused() {
    let (_d, app) = app();
    let addrs = |v: serde_json::Value| -> Vec<String> {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["address"].as_str().unwrap().to_string())
            .collect()
    };
    let q = |f: &str| format!("/api/hosts?q={}", portolan_web::html::url(f));
    assert_eq!(
        addrs(json(&get(&app, &q("port:22 product:openssh")).await)),
        ["198.18.0.1"]
    );
    assert_eq!(
        addrs(json(&get(&app, &q("net:198.18.0.0/16 changed:7d")).await)).len(),
        2
    );
    assert_eq!(
        addrs(json(&get(&app, &q("-port:22")).await)),
        ["198.18.0.2"]
    );
    assert!(addrs(json(&get(&app, &q("changed:1h")).await)).is_empty());
    assert!(addrs(json(&get(&app, &q("nginx 1.24")).await)) == ["198.18.0.1"]);
    // Sorting and paging.
    let v = json(&get(&app, "/api/hosts?sort=address&desc=1&per=1&page=2").await);
    assert_eq!(addrs(v.clone()), ["198.18.0.1"]);
    assert_eq!(
        (v["total"].clone(), v["pages"].clone()),
        (2.into(), 2.into())
    );
    // The HTML table narrows too, and shows the filter escaped in its box.
    let g = get(
        &app,
        &format!("/hosts?q={}", portolan_web::html::url("port:22 '><b>")),
    )
    .await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(g.body.contains("value=\"port:22 &#39;&gt;&lt;b&gt;\""));
    let g = get(
        &app,
        &format!("/hosts?q={}", portolan_web::html::url("port:22")),
    )
    .await;
    assert!(g.body.contains("/host/198.18.0.1") && !g.body.contains("/host/198.18.0.2"));
    let bad = get(&app, &q("<red>:x")).await;
    assert_eq!(bad.status, StatusCode::OK, "not a key: a word");
    let bad = get(
        &app,
        &format!("/hosts?q={}", portolan_web::html::url("port:<b>")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("&lt;b&gt;") && !bad.body.contains("<b>"));
    // The filter box comes back with the reason, to fix the filter in place.
    assert!(bad.body.contains("Filter refused: port:"), "{}", bad.body);
    assert!(bad.body.contains("value=\"port:&lt;b&gt;\""));
    let bad = get(&app, "/changes?q=kind:").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Filter refused: kind: needs a value"));
}

#[tokio::test]
async fn hosts_export_as_csv_and_json() {
    let (_d, app) = app();
    let g = get(&app, "/api/hosts.csv?q=port:80").await;
    assert!(g.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let lines: Vec<&str> = g.body.lines().collect();
    assert_eq!(lines.len(), 3, "{}", g.body);
    assert!(lines[0].starts_with("address,hostname,mac"));
    assert!(lines[1].starts_with("198.18.0.1,"));
    assert!(lines[1].contains("22/tcp ssh OpenSSH 9.6p1; 80/tcp http nginx 1.24.0"));
    let all = json(&get(&app, "/api/hosts?page=all&per=1").await);
    assert_eq!(all["hosts"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_host_page_has_a_timeline() {
    let (_d, app) = app();
    let v = json(&get(&app, "/api/host/198.18.0.1").await);
    let events: Vec<(String, String)> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["what"].as_str().unwrap().to_string(),
                e["port"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let has = |w: &str, p: &str| events.contains(&(w.to_string(), p.to_string()));
    assert!(has("first seen up", ""), "{events:?}");
    assert!(has("port open", "22/tcp"));
    assert!(has("port opened", "80/tcp"));
    assert!(has("service changed", "22/tcp"));
    assert_eq!(v["scans"], 2, "the incomplete scan is not history");
    let g = get(&app, "/host/198.18.0.1").await;
    assert!(g.body.contains("ssh OpenSSH 8.9p1") && g.body.contains("ssh OpenSSH 9.6p1"));
}

#[tokio::test]
async fn changes_feed_filters_and_exports() {
    let (_d, app) = app();
    let v = json(&get(&app, "/api/changes?q=kind:opened").await);
    assert_eq!(v["total"], 1);
    assert_eq!(v["changes"][0]["port"], 80);
    let v = json(&get(&app, "/api/changes?since=1h").await);
    assert_eq!(v["total"], 0);
    let v = json(&get(&app, "/api/changes?q=changed:3d%20port:22").await);
    assert_eq!(v["total"], 1);
    let g = get(&app, "/api/changes.csv").await;
    assert_eq!(g.body.lines().count(), 4);
    let g = get(&app, "/api/changes?since=forever").await;
    assert_eq!(g.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn scans_show_completeness_and_diff_as_ndiff() {
    let (_d, app) = app();
    let v = json(&get(&app, "/api/scans").await);
    assert_eq!(v["total"], 3);
    assert_eq!(v["scans"][0]["complete"], false);
    assert_eq!(v["scans"][1]["previous_of_same_targets"], 1);
    let g = get(&app, "/diff?a=1&b=2").await;
    assert!(
        g.body.contains("-22/tcp open  ssh     OpenSSH 8.9p1"),
        "{}",
        g.body
    );
    assert!(g.body.contains("+22/tcp open  ssh     OpenSSH 9.6p1"));
    let d = json(&get(&app, "/api/diff?a=1&b=2").await);
    assert_eq!(d["changed"], true);
    assert_eq!(
        get(&app, "/diff?a=1&b=99").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&app, "/diff?a=1").await.status, StatusCode::BAD_REQUEST);
}

#[test]
fn non_loopback_needs_auth() {
    for ok in ["127.0.0.1:8080", "[::1]:80", "127.9.9.9:1"] {
        assert!(check_listen(ok.parse().unwrap(), false).is_ok(), "{ok}");
    }
    for far in ["0.0.0.0:8080", "198.18.0.1:80", "[::]:8080"] {
        let e = check_listen(far.parse().unwrap(), false).unwrap_err();
        assert!(matches!(e, WebError::NeedsAuth(_)));
        assert!(e.to_string().contains("--auth FILE"));
        assert!(check_listen(far.parse().unwrap(), true).is_ok());
    }
}

#[tokio::test]
async fn auth_accepts_the_right_credentials_only() {
    let token = "a-long-enough-token-1234";
    let cheap = portolan_web::auth::Params::new(256, 1, 1, None).unwrap();
    let line = user_line_with("ops", "s3cret", cheap).unwrap();
    let file = format!("token {token}\n{line}\n");
    let (_d, app) = app_with(Some(Auth::parse(&file).unwrap()));
    let with = |v: Option<String>| {
        let mut r = Request::get("/api/hosts");
        if let Some(v) = v {
            r = r.header(header::AUTHORIZATION, v);
        }
        r.body(Body::empty()).unwrap()
    };
    let g = send(&app, with(None)).await;
    assert_eq!(g.status, StatusCode::UNAUTHORIZED);
    assert!(g.headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert!(g.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    assert!(!g.body.contains("198.18"));
    let g = send(&app, with(Some(format!("Bearer {token}")))).await;
    assert_eq!(g.status, StatusCode::OK);
    let g = send(&app, with(Some("Bearer wrong-token-wrong-token".into()))).await;
    assert_eq!(g.status, StatusCode::UNAUTHORIZED);
    // "ops:s3cret" and "ops:wrong" in base64.
    let g = send(&app, with(Some("Basic b3BzOnMzY3JldA==".into()))).await;
    assert_eq!(g.status, StatusCode::OK);
    let g = send(&app, with(Some("Basic b3BzOndyb25n".into()))).await;
    assert_eq!(g.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn kept_changes_follow_the_store() {
    let (dir, app) = app();
    // The widest window first: narrower ones are then cut from it, and must agree.
    assert_eq!(json(&get(&app, "/api/changes?since=30d").await)["total"], 3);
    assert_eq!(json(&get(&app, "/api/changes?since=36h").await)["total"], 3);
    assert_eq!(json(&get(&app, "/api/changes?since=1h").await)["total"], 0);
    // Another writer records a scan in which 198.18.0.2 is gone: the page sees it.
    let mut other = Store::open(dir.path().join("secret-name.db")).unwrap();
    scan(
        &mut other,
        now() - 60,
        true,
        &[host(
            "198.18.0.1",
            &[
                (22, "OpenSSH", "9.6p1", None),
                (80, "nginx", "1.24.0", None),
            ],
        )],
    );
    let v = json(&get(&app, "/api/changes?since=1h").await);
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["changes"][0]["kind"], "host_disappeared");
    assert_eq!(json(&get(&app, "/api/changes?since=30d").await)["total"], 4);
}

#[tokio::test]
async fn api_errors_are_json() {
    let (_d, app) = app();
    let g = get(&app, "/api/hosts?q=port:x").await;
    assert_eq!(g.status, StatusCode::BAD_REQUEST);
    assert!(json(&g)["error"].as_str().unwrap().contains("port"));
    let g = get(&app, "/api/host/10.1.1.1").await;
    assert_eq!(g.status, StatusCode::NOT_FOUND);
    assert!(json(&g)["error"].is_string());
}

#[tokio::test]
async fn the_timeline_is_newest_scan_first_each_in_order() {
    let (_d, app) = app();
    let v = json(&get(&app, "/api/host/198.18.0.1").await);
    let what: Vec<&str> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert_eq!(what.last(), Some(&"port open"), "{what:?}");
    assert_eq!(what[what.len() - 2], "first seen up", "{what:?}");
    assert!(what[0] == "port opened" || what[0] == "service changed");
}

#[tokio::test]
async fn without_auth_only_loopback_host_names_are_served() {
    let (_d, app) = app();
    let with_host = |h: &str| {
        Request::get("/api/overview")
            .header(header::HOST, h)
            .body(Body::empty())
            .unwrap()
    };
    for ok in [
        "localhost:8080",
        "LOCALHOST",
        "127.0.0.1:8080",
        "127.1.2.3",
        "[::1]:8080",
        "[::1]",
    ] {
        assert_eq!(
            send(&app, with_host(ok)).await.status,
            StatusCode::OK,
            "{ok}"
        );
    }
    // A rebound name, or another address: refused, and nothing of the store shown.
    for far in [
        "evil.example",
        "evil.example:8080",
        "198.18.0.1:8080",
        "localhost.evil.example",
    ] {
        let g = send(&app, with_host(far)).await;
        assert_eq!(g.status, StatusCode::FORBIDDEN, "{far}");
        assert!(!g.body.contains("hosts_up"));
        assert!(g.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }
    // With --auth, credentials are the guard and any name is served.
    let token = "a-long-enough-token-1234";
    let (_d, app) = app_with(Some(Auth::parse(&format!("token {token}")).unwrap()));
    let req = Request::get("/api/overview")
        .header(header::HOST, "inventory.example:8443")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::OK);
}

/// A page that never finishes is answered 503 once the request's time is up, with the
/// security headers still on.
#[tokio::test]
async fn a_request_past_its_time_gets_503() {
    let stuck = Router::new().route("/", axum::routing::get(std::future::pending::<String>));
    let app = portolan_web::limit_time(stuck, std::time::Duration::from_millis(20));
    let g = get(&app, "/").await;
    assert_eq!(g.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(g.body.contains("took too long"));
}

/// The real server loop: a client that sends half a request, or nothing, is disconnected
/// (the header-read timeout), and a whole request is still served. The client's own bound
/// is generous: it only stops the test from hanging when the server never closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_is_disconnected() {
    use std::io::{Read, Write};
    let (_d, app) = app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        header_read: std::time::Duration::from_millis(300),
        ..Limits::default()
    };
    let server = tokio::spawn(portolan_web::serve_on(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    let closed = |half: &'static [u8]| {
        tokio::task::spawn_blocking(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                .unwrap();
            c.write_all(half).unwrap();
            let mut buf = Vec::new();
            // Ok: the server closed (an answer such as 408 may come first); Err: the
            // client's bound passed with the connection still open.
            c.read_to_end(&mut buf).map(|_| buf)
        })
    };
    let half = closed(b"GET /api/overview HTTP/1.1\r\nHost: local")
        .await
        .unwrap();
    assert!(half.is_ok(), "half a request kept the connection: {half:?}");
    let nothing = closed(b"").await.unwrap();
    assert!(nothing.is_ok(), "a silent client kept the connection");
    let whole =
        closed(b"GET /api/overview HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap()
            .unwrap();
    let whole = String::from_utf8_lossy(&whole);
    assert!(whole.starts_with("HTTP/1.1 200"), "{whole}");
    assert!(whole.contains("hosts_up"));
    // Kept alive after its answer, a connection that asks nothing more is closed too.
    let idle = closed(b"GET /api/overview HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let idle =
        String::from_utf8_lossy(idle.as_deref().expect("an idle connection stayed")).into_owned();
    assert!(idle.starts_with("HTTP/1.1 200"), "{idle}");
    server.abort();
}

/// `portolan serve` refuses a store of an older schema, which it would otherwise have had
/// to upgrade, and leaves it as it is.
#[tokio::test]
async fn serve_refuses_an_old_store_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = portolan_store::rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(portolan_store::schema::MIGRATIONS[0])
            .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let cfg = portolan_web::Config {
        db: path.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        auth: None,
    };
    let e = portolan_web::serve(cfg).await.unwrap_err();
    assert!(e.to_string().contains("portolan history --db"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Two scans run with `--vulns`: two days ago .1's ssh had A (known exploited) and B (its
/// nginx has none); yesterday it has B and C (whose title is hostile), and .2's http, clean
/// before, has D.
/// The condition of a finding whose AND configuration's platform the scan did not tell.
const RUNNING_ON: &str = "only when running on cpe:2.3:o:debian:debian_linux:12.0:*:*:*:*:*:*:*";

fn vuln_app() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let mut store = Store::open(&path).unwrap();
    let t = now();
    let args = "portolan -sV --vulns 198.18.0.0/24";
    let a = finding("CVE-2024-6387", 8.1, true, 0.4, "regreSSHion");
    let b = finding("CVE-2023-38408", 9.8, false, 0.05, "ssh-agent PKCS#11");
    let c = finding("CVE-2023-51385", 6.5, false, 0.2, XSS);
    let mut d = finding("CVE-2023-44487", 5.3, true, 0.9, "HTTP/2 rapid reset");
    d.condition = Some(RUNNING_ON.into());
    let ssh = |v| {
        host(
            "198.18.0.1",
            &[(22, "OpenSSH", v, None), (80, "nginx", "1.24.0", None)],
        )
    };
    let web = || host("198.18.0.2", &[(80, "nginx", "1.24.0", None)]);
    scan_with(
        &mut store,
        t - 2 * DAY,
        true,
        args,
        &[with_vulns(ssh("9.6p1"), 22, &[a, b.clone()]), web()],
    );
    scan_with(
        &mut store,
        t - DAY,
        true,
        args,
        &[
            with_vulns(ssh("9.6p1"), 22, &[b, c]),
            with_vulns(web(), 80, &[d]),
        ],
    );
    drop(store);
    (dir, router_with(readers(&path, 2), None, Limits::default()))
}

fn cves(v: &serde_json::Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["cve"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn vulnerabilities_are_listed_most_urgent_first_and_filter() {
    let (_d, app) = vuln_app();
    let v = json(&get(&app, "/api/vulns").await);
    // Known exploited first, then EPSS, then CVSS: D (KEV), B (9.8 but EPSS 0.05) after C.
    assert_eq!(
        cves(&v, "findings"),
        ["CVE-2023-44487", "CVE-2023-51385", "CVE-2023-38408"]
    );
    assert_eq!(
        (v["total"].clone(), v["hosts"].clone()),
        (3.into(), 2.into())
    );
    assert_eq!(v["findings"][0]["address"], "198.18.0.2");
    assert_eq!(v["findings"][0]["port"], 80);
    assert_eq!(v["findings"][0]["kev"], true);
    assert_eq!(v["findings"][0]["condition"], RUNNING_ON);
    assert!(v["findings"][1].get("condition").is_none());
    assert_eq!(v["findings"][2]["cvss"], 9.8);
    let q = |f: &str| format!("/api/vulns?q={}", portolan_web::html::url(f));
    for (filter, want) in [
        ("cve:CVE-2023-38408", vec!["CVE-2023-38408"]),
        ("kev:yes", vec!["CVE-2023-44487"]),
        ("kev:no cvss:>=9", vec!["CVE-2023-38408"]),
        ("cvss:<6", vec!["CVE-2023-44487"]),
        ("port:22 -cvss:9.8", vec!["CVE-2023-51385"]),
        ("net:198.18.0.2", vec!["CVE-2023-44487"]),
        ("rapid", vec!["CVE-2023-44487"]),
        // A word matches the finding's own port, not the host's others (.1 has nginx too).
        ("nginx", vec!["CVE-2023-44487"]),
        ("9.6p1", vec!["CVE-2023-51385", "CVE-2023-38408"]),
        ("product:nginx", vec!["CVE-2023-44487"]),
    ] {
        let v = json(&get(&app, &q(filter)).await);
        assert_eq!(cves(&v, "findings"), want, "{filter}");
    }
    for bad in ["kev:maybe", "cvss:>=11", "cvss:high"] {
        let g = get(&app, &format!("/vulns?q={}", portolan_web::html::url(bad))).await;
        assert_eq!(g.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(g.body.contains("Filter refused"), "{bad}");
    }
    // The hosts page takes the same terms: hosts with such a finding.
    let v = json(&get(&app, "/api/hosts?q=kev:yes").await);
    assert_eq!(v["total"], 1);
    assert_eq!(v["hosts"][0]["address"], "198.18.0.2");
    // The page: the hostile title as text, the nav entry marked, a CSV export.
    let g = get(&app, "/vulns").await;
    assert!(g.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(g.body.matches("<script").count(), 1, "the title runs");
    assert!(g
        .body
        .contains("<a href=\"/vulns\" class=\"here\">Vulnerabilities</a>"));
    assert!(g
        .body
        .contains("3 findings (1 known exploited) on 2 services of 2 hosts"));
    let csv = get(&app, "/api/vulns.csv?q=port:22").await;
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.body);
    assert!(lines[0].starts_with("address,hostname,port,service,cve,cvss"));
    assert!(lines[1].starts_with("198.18.0.1,,22/tcp,ssh OpenSSH 9.6p1,CVE-2023-51385,6.5,"));
    // The condition is said on the page and in its column of the export.
    assert!(g.body.contains(&format!("applies {RUNNING_ON}")));
    let csv = get(&app, "/api/vulns.csv?q=port:80").await;
    assert!(csv
        .body
        .lines()
        .next()
        .unwrap()
        .contains(",matched,condition,"));
    assert!(csv.body.contains(RUNNING_ON), "{}", csv.body);
    // Every page's nav bar has the entry.
    for uri in ["/", "/hosts", "/changes", "/scans", "/host/198.18.0.1"] {
        let g = get(&app, uri).await;
        assert!(g.body.contains("<a href=\"/vulns\""), "{uri}");
    }
    let o = json(&get(&app, "/api/overview").await);
    assert_eq!(
        (o["vulns"].clone(), o["vulns_kev"].clone()),
        (3.into(), 1.into())
    );
}

#[tokio::test]
async fn the_host_page_lists_its_findings() {
    let (_d, app) = vuln_app();
    let v = json(&get(&app, "/api/host/198.18.0.1").await);
    assert_eq!(cves(&v, "vulns"), ["CVE-2023-51385", "CVE-2023-38408"]);
    assert_eq!(v["vulns"][0]["port"], 22);
    let g = get(&app, "/host/198.18.0.1").await;
    assert!(g.body.contains("<h2>Vulnerabilities</h2>"));
    assert!(g.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_eq!(g.body.matches("<script").count(), 1);
    assert!(g
        .body
        .contains("https://nvd.nist.gov/vuln/detail/CVE-2023-38408"));
    // Its timeline says when each finding appeared and went away.
    let events: Vec<(String, String)> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = e["after"].as_str().or(e["before"].as_str()).unwrap_or("");
            (e["what"].as_str().unwrap().to_string(), text.to_string())
        })
        .collect();
    let vuln_events: Vec<&(String, String)> =
        events.iter().filter(|e| e.0.starts_with("vuln")).collect();
    assert_eq!(vuln_events.len(), 2, "{events:?}");
    assert_eq!(vuln_events[0].0, "vuln gone");
    assert!(vuln_events[0]
        .1
        .starts_with("CVE-2024-6387 (CVSS 8.1, KEV)"));
    assert_eq!(vuln_events[1].0, "vuln new");
    assert!(vuln_events[1].1.starts_with("CVE-2023-51385"));
    // A host without findings (no scan ran --vulns) has no such section.
    let (_p, plain) = app_with(None);
    let g = get(&plain, "/host/198.18.0.1").await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(!g.body.contains("<h2>Vulnerabilities</h2>"));
    assert_eq!(
        json(&get(&plain, "/api/host/198.18.0.1").await)["vulns"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn changes_show_findings_that_appeared_and_went_away() {
    let (_d, app) = vuln_app();
    let v = json(&get(&app, "/api/changes").await);
    let got: Vec<(String, String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap().to_string(),
                c["kind"].as_str().unwrap().to_string(),
                c["cve"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let has = |a: &str, k: &str, c: &str| got.contains(&(a.into(), k.into(), c.into()));
    assert!(has("198.18.0.1", "vuln_new", "CVE-2023-51385"), "{got:?}");
    assert!(has("198.18.0.1", "vuln_gone", "CVE-2024-6387"), "{got:?}");
    assert!(has("198.18.0.2", "vuln_new", "CVE-2023-44487"), "{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
    let v = json(&get(&app, "/api/changes?q=kind:gone").await);
    assert_eq!(cves(&v, "changes"), ["CVE-2024-6387"]);
    let v = json(&get(&app, "/api/changes?q=kev:yes").await);
    assert_eq!(v["total"], 2);
    let v = json(&get(&app, "/api/changes?q=cvss:%3E%3D8").await);
    assert_eq!(cves(&v, "changes"), ["CVE-2024-6387"]);
    let g = get(&app, "/changes").await;
    assert!(g
        .body
        .contains("<span class=\"k vuln-gone\">vuln gone</span>"));
}
