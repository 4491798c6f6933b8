//! The web view in a real browser: headless Chromium (Debian's `chromium`) driven through
//! WebDriver (`chromium-driver`) against `portolan serve`'s server, in-process on loopback.
//! One browser session visits every page and checks that it loads without a console error,
//! that the filter narrows the hosts table, that a host page shows its timeline, that hostile
//! strings from the network are shown as text and run nothing, and that the CSP is sent and
//! enforced. A screenshot of each page is kept in target/test-artifacts/browser/ (or
//! $PORTOLAN_ARTIFACTS/browser/).
//!
//! Without chromium and chromedriver the test says "skipped", unless
//! PORTOLAN_BROWSER=required (scripts/test.sh sets it as root, after installing them).

mod common;

use common::{finding, host, named, readers, scan, with_vulns, DAY};
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use portolan_store::query::now;
use portolan_store::Store;
use portolan_web::{router_with, serve_on, Limits};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Would-be scripts: each sets the sentinel `window.__pwned` (and raises an alert) if the
/// browser ever ran it.
const SCRIPT_TAG: &str = "<script>window.__pwned=1;alert(1)</script>";
const IMG_ONERROR: &str = "\"><img src=x onerror=\"window.__pwned=2;alert(2)\">";
const SVG_ONLOAD: &str = "'><svg onload=window.__pwned=3>";
const HOSTILE: [&str; 3] = [SCRIPT_TAG, IMG_ONERROR, SVG_ONLOAD];

/// The browser's window (its viewport, the screenshots' size, is a little smaller).
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

/// A program on PATH (or at an absolute path), if it exists.
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        if Path::new(name).is_absolute() {
            return Path::new(name).is_file().then(|| PathBuf::from(name));
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Where screenshots go: $PORTOLAN_ARTIFACTS/browser, else target/test-artifacts/browser.
fn artifact_dir() -> PathBuf {
    match std::env::var_os("PORTOLAN_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir).join("browser"),
        // CARGO_TARGET_TMPDIR is target/tmp: its parent is the target directory.
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap_or(Path::new(env!("CARGO_TARGET_TMPDIR")))
            .join("test-artifacts")
            .join("browser"),
    }
}

/// The scan ids of the store the browser looks at.
struct Scans {
    first: i64,
    second: i64,
    third: i64,
}

/// Three complete scans a day apart and an interrupted one today:
/// - .1: 22 (OpenSSH 8.9p1); then 80 opens; then 80 closes and 22 becomes 9.6p1;
/// - .2: nginx on 80 throughout; .3: 22 and 443 throughout, and in the third scan two
///   findings on 443, one with a title and a basis that are would-be scripts;
/// - .66 (from the second scan): a hostname, product, version and script output that are
///   would-be scripts (its product was plain Apache before).
fn build_store(path: &Path) -> Scans {
    let mut store = Store::open(path).unwrap();
    let t = now();
    let two = host("198.18.0.2", &[(80, "nginx", "1.24.0", None)]);
    let three = host(
        "198.18.0.3",
        &[
            (22, "OpenSSH", "9.2p1", None),
            (443, "nginx", "1.22.1", None),
        ],
    );
    let hostile = |product: &str| {
        named(
            host(
                "198.18.0.66",
                &[
                    (80, product, SVG_ONLOAD, Some(&HOSTILE.join("\n"))),
                    (8080, "Jetty", "9.4", None),
                ],
            ),
            IMG_ONERROR,
        )
    };
    let first = scan(
        &mut store,
        t - 3 * DAY,
        true,
        &[
            host("198.18.0.1", &[(22, "OpenSSH", "8.9p1", None)]),
            two.clone(),
            three.clone(),
        ],
    );
    let second = scan(
        &mut store,
        t - 2 * DAY,
        true,
        &[
            host(
                "198.18.0.1",
                &[
                    (22, "OpenSSH", "8.9p1", None),
                    (80, "nginx", "1.24.0", None),
                ],
            ),
            two.clone(),
            three.clone(),
            hostile("Apache httpd"),
        ],
    );
    let mut bad = finding("CVE-2023-44487", 7.5, true, 0.9, IMG_ONERROR);
    bad.basis = std::sync::Arc::new(portolan_vuln::Basis::Upstream {
        note: SVG_ONLOAD.into(),
    });
    let findings = [bad, finding("CVE-2022-41741", 7.8, false, 0.01, SCRIPT_TAG)];
    let third = scan(
        &mut store,
        t - DAY,
        true,
        &[
            host("198.18.0.1", &[(22, "OpenSSH", "9.6p1", None)]),
            two,
            with_vulns(three, 443, &findings),
            hostile(SCRIPT_TAG),
        ],
    );
    scan(&mut store, t, false, &[host("198.18.0.9", &[])]);
    Scans {
        first,
        second,
        third,
    }
}

/// chromedriver's log of the browser's console (a Selenium extension of WebDriver that
/// chromedriver serves): the entries since the last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The console's errors since the last call (warnings and below are left out).
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c
        .issue_cmd(BrowserLog)
        .await
        .expect("read the browser's log");
    log.as_array()
        .expect("the log is a list")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Runs chromedriver on a free loopback port; killed (with its browser) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(program: &Path, log: &Path) -> Driver {
        // A free port: the kernel picks one, which chromedriver then takes.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects to the driver once it listens (it takes a moment to start), with a headless
/// Chromium whose only reachable network is loopback.
async fn connect(driver: &mut Driver, chromium: &Path, profile: &Path) -> Client {
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                // As root, Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={WIDTH},{HEIGHT}"),
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--no-first-run",
                "--no-default-browser-check",
                // Nothing leaves the machine: no background fetches (updates, safe browsing,
                // metrics), and any request that is not for loopback goes to a closed port.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-domain-reliability",
                "--dns-prefetch-disable",
                "--proxy-server=http://127.0.0.1:9",
            ],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    // An alert a page raised stays open, so the test sees it instead of the driver
    // dismissing it.
    caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut last = None;
    // chromedriver listens within a second or so; a bounded number of tries.
    for _ in 0..100 {
        if let Ok(Some(status)) = driver.child.try_wait() {
            panic!("chromedriver exited at start: {status}");
        }
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("cannot start a Chromium session through chromedriver: {last:?}");
}

/// Reads a PNG's width and height, after checking its signature and header chunk.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.get(..8)? != SIGNATURE || png.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |r: std::ops::Range<usize>| -> Option<u32> {
        Some(u32::from_be_bytes(png.get(r)?.try_into().ok()?))
    };
    Some((be(16..20)?, be(20..24)?))
}

/// Texts of the elements `css` finds.
async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

/// A column of a table's body rows (0-based), as the browser renders it.
async fn column(c: &Client, table: &str, col: usize) -> Vec<String> {
    texts(c, &format!("{table} tbody tr td:nth-child({})", col + 1)).await
}

/// Clicks the (first) form's button and waits for the page it leads to.
async fn submit_filter(c: &Client) {
    let before = c.current_url().await.unwrap();
    c.find(Locator::Css("form.filter button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The address changes when the new page is committed; the driver's next commands wait
    // for it to load. A bounded number of looks.
    for _ in 0..200 {
        if c.current_url().await.unwrap() != before {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("submitting the filter did not leave {before}");
}

/// The session's checks, page by page; `shots` collects (name, PNG).
struct Visit<'a> {
    c: &'a Client,
    base: String,
    shots: Vec<(String, Vec<u8>)>,
}

impl Visit<'_> {
    /// Opens `path`, checks the page loaded (its heading, our script ran, nothing hostile
    /// ran, no console error) and keeps a screenshot as `name`.
    async fn open(&mut self, name: &str, path: &str, heading: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
        self.loaded(name, heading).await;
    }

    /// The checks of [`Visit::open`] on the page the browser is on now.
    async fn loaded(&mut self, name: &str, heading: &str) {
        let c = self.c;
        let title = c.title().await.unwrap();
        assert_eq!(title, format!("{heading} · Portolan"), "{name}: title");
        assert_eq!(texts(c, "h1").await, [heading], "{name}: heading");
        // app.js ran (the CSP lets /static/app.js run): it moved each time's UTC text into
        // its title and wrote the browser's local time instead.
        let times = c.find_all(Locator::Css("time[datetime]")).await.unwrap();
        for t in &times {
            let original = t.attr("title").await.unwrap();
            assert!(
                original.is_some_and(|s| s.ends_with(" UTC")),
                "{name}: app.js did not run"
            );
        }
        assert_inert(c, name).await;
        let errors = console_errors(c).await;
        assert!(errors.is_empty(), "{name}: console errors: {errors:#?}");
        let png = c.screenshot().await.unwrap();
        self.shots.push((name.to_string(), png));
    }
}

/// Nothing a hostile string carried ran or became an element: no alert is open, the
/// sentinel is unset, the only script element is ours, and no image or event handler
/// attribute exists (the pages have neither).
async fn assert_inert(c: &Client, name: &str) {
    if let Ok(text) = c.get_alert_text().await {
        panic!("{name}: an alert is open: {text:?}");
    }
    let got = c
        .execute(
            "return {
                pwned: typeof window.__pwned,
                scripts: Array.from(document.scripts).map(s => s.getAttribute('src')),
                injected: document.querySelectorAll(
                    'img, iframe, object, embed, main svg:not(.bars), [onerror], [onload]'
                ).length,
            };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(got["pwned"], "undefined", "{name}: a hostile script ran");
    assert_eq!(got["scripts"], json!(["/static/app.js"]), "{name}: scripts");
    assert_eq!(got["injected"], 0, "{name}: an injected element exists");
}

/// The page's text (as rendered) holds each hostile string as text.
async fn assert_shows_hostile_text(c: &Client, name: &str, css: &str, which: &[&str]) {
    let shown = texts(c, css).await.join("\n");
    for h in which {
        assert!(
            shown.contains(h),
            "{name}: {h:?} not shown as text in {css}"
        );
    }
}

/// What the session brings back: the screenshots, and the viewport's size they must have.
struct Shots {
    viewport: (u32, u32),
    shots: Vec<(String, Vec<u8>)>,
}

async fn checks(c: &Client, base: String, s: &Scans) -> Shots {
    let mut v = Visit {
        c,
        base,
        shots: Vec::new(),
    };
    // A blank page: the size a screenshot with nothing on it has.
    c.goto("about:blank").await.unwrap();
    v.shots
        .push(("blank".into(), c.screenshot().await.unwrap()));
    let size = c
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .unwrap();
    let dim = |i: usize| {
        size[i]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap()
    };
    let viewport = (dim(0), dim(1));
    assert!(viewport.0 <= WIDTH && viewport.1 <= HEIGHT && viewport.1 > HEIGHT / 2);

    // Overview: counts, charts (the hostile product is a chart's label, as text).
    v.open("overview", "/", "Overview").await;
    let stats = texts(c, "ul.stats li").await;
    assert!(stats[0].starts_with("4 hosts up"), "{stats:?}");
    // A long label is cut in the chart, whole in its tooltip (the SVG title).
    let tips = c
        .execute(
            "return Array.from(document.querySelectorAll('svg.bars title'), t => t.textContent);",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        tips.as_array().unwrap().contains(&json!(SCRIPT_TAG)),
        "{tips}"
    );
    let labels = texts(c, "svg.bars text").await;
    assert!(
        labels.iter().any(|l| l.len() > 5
            && l.ends_with('…')
            && SCRIPT_TAG.starts_with(l.trim_end_matches('…'))),
        "{labels:?}"
    );
    let states = column(c, "table", 2).await;
    assert_eq!(
        states[0], "incomplete",
        "the latest scan is the interrupted one"
    );

    // The CSP: sent with the page, and enforced (an inline script is refused).
    let csp = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(location.href).then(r => done(r.headers.get('content-security-policy')));",
            vec![],
        )
        .await
        .unwrap();
    let csp = csp.as_str().expect("a Content-Security-Policy header");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let refused = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             document.addEventListener('securitypolicyviolation',
                 e => done([e.violatedDirective, typeof window.__inline]));
             const s = document.createElement('script');
             s.textContent = 'window.__inline = 1';
             document.body.appendChild(s);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, json!(["script-src-elem", "undefined"]));
    // The refusal we provoked is in the console: read it out of the way.
    let provoked = console_errors(c).await;
    assert!(
        provoked
            .iter()
            .any(|m| m.contains("Content Security Policy")),
        "the console reports CSP refusals (so a clean console means none): {provoked:?}"
    );

    // Hosts: every host, then the filter typed into the search box narrows the table.
    v.open("hosts", "/hosts", "Hosts").await;
    let addresses = column(c, "table", 0).await;
    assert_eq!(
        addresses,
        ["198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.66"]
    );
    assert_shows_hostile_text(c, "hosts", "main table", &[SCRIPT_TAG, IMG_ONERROR]).await;
    let search = c
        .find(Locator::Css("form.filter input[name=q]"))
        .await
        .unwrap();
    search.send_keys("port:22").await.unwrap();
    submit_filter(c).await;
    v.loaded("hosts-filtered", "Hosts").await;
    assert_eq!(column(c, "table", 0).await, ["198.18.0.1", "198.18.0.3"]);
    let q = c
        .find(Locator::Css("form.filter input[name=q]"))
        .await
        .unwrap();
    assert_eq!(q.prop("value").await.unwrap().as_deref(), Some("port:22"));
    // A column header sorts, keeping the filter.
    c.find(Locator::Css("thead a[href*='sort=address']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    v.loaded("hosts-sorted", "Hosts").await;
    assert_eq!(column(c, "table", 0).await, ["198.18.0.3", "198.18.0.1"]);

    // A host page and its timeline, newest scan first.
    v.open("host", "/host/198.18.0.1", "198.18.0.1").await;
    // The page's last table is the timeline (Ports comes first).
    let tables = c.find_all(Locator::Css("main table")).await.unwrap();
    assert_eq!(tables.len(), 2, "a ports table and a timeline");
    let h2 = texts(c, "h2").await;
    assert_eq!(h2.last().map(String::as_str), Some("Timeline"));
    let last_rows = tables[1].find_all(Locator::Css("tbody tr")).await.unwrap();
    let mut timeline_events = Vec::new();
    for r in &last_rows {
        let cells = r.find_all(Locator::Css("td")).await.unwrap();
        let mut t = Vec::new();
        for cell in &cells {
            t.push(cell.text().await.unwrap());
        }
        timeline_events.push(t);
    }
    let summary: Vec<(&str, &str)> = timeline_events
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("service changed", "22/tcp"),
            ("port closed", "80/tcp"),
            ("port opened", "80/tcp"),
            ("first seen up", ""),
            ("port open", "22/tcp"),
        ]
    );
    assert!(timeline_events[0][3].contains("8.9p1") && timeline_events[0][4].contains("9.6p1"));

    // The hostile host: every string shown as it came, as text.
    v.open("host-hostile", "/host/198.18.0.66", "198.18.0.66")
        .await;
    assert_shows_hostile_text(c, "host-hostile", "dl.facts", &[IMG_ONERROR]).await;
    assert_shows_hostile_text(c, "host-hostile", "main table", &[SCRIPT_TAG, SVG_ONLOAD]).await;
    // The script output is folded: open it as a person would, then read it.
    c.find(Locator::Css("details summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let pre = texts(c, "details pre").await;
    assert_eq!(pre, [HOSTILE.join("\n")]);
    assert_inert(c, "host-hostile (script output open)").await;
    v.shots
        .push(("host-hostile-open".into(), c.screenshot().await.unwrap()));

    // Changes over a month, then filtered.
    v.open("changes", "/changes?since=30d", "Changes").await;
    let kinds = column(c, "table", 2).await;
    assert!(!kinds.is_empty());
    assert_shows_hostile_text(c, "changes", "main table", &[SCRIPT_TAG]).await;
    let search = c
        .find(Locator::Css("form.filter input[name=q]"))
        .await
        .unwrap();
    search.send_keys("port:22").await.unwrap();
    submit_filter(c).await;
    v.loaded("changes-filtered", "Changes").await;
    let ports = column(c, "table", 3).await;
    let hosts = column(c, "table", 1).await;
    assert!(ports.len() < kinds.len(), "the filter narrows the feed");
    assert_eq!(ports, ["22/tcp"], "only .1's 22 changed version");
    assert_eq!(hosts, ["198.18.0.1"]);

    // Vulnerabilities: known exploited first, the feed's text shown as text.
    v.open("vulns", "/vulns", "Vulnerabilities").await;
    assert_eq!(
        column(c, "table", 3).await,
        ["CVE-2023-44487", "CVE-2022-41741"]
    );
    assert_eq!(column(c, "table", 0).await, ["198.18.0.3", "198.18.0.3"]);
    assert_shows_hostile_text(
        c,
        "vulns",
        "main table",
        &[IMG_ONERROR, SCRIPT_TAG, SVG_ONLOAD],
    )
    .await;
    let here = texts(c, "header nav a.here").await;
    assert_eq!(here, ["Vulnerabilities"]);
    // Filtered from the search box.
    let search = c
        .find(Locator::Css("form.filter input[name=q]"))
        .await
        .unwrap();
    search.send_keys("kev:no").await.unwrap();
    submit_filter(c).await;
    v.loaded("vulns-filtered", "Vulnerabilities").await;
    assert_eq!(column(c, "table", 3).await, ["CVE-2022-41741"]);
    // The host's own list, above its ports.
    v.open("host-vulns", "/host/198.18.0.3", "198.18.0.3").await;
    assert_eq!(texts(c, "h2").await[0], "Vulnerabilities");
    assert_shows_hostile_text(c, "host-vulns", "main table", &[IMG_ONERROR, SCRIPT_TAG]).await;

    // Scans, then the diff a link there leads to.
    v.open("scans", "/scans", "Scans").await;
    let ids = column(c, "table", 0).await;
    assert_eq!(ids.len(), 4);
    let link = format!("a[href='/diff?a={}&b={}']", s.second, s.third);
    c.find(Locator::Css(&link))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let heading = format!("Diff #{} → #{}", s.second, s.third);
    v.loaded("diff", &heading).await;
    assert_shows_hostile_text(c, "diff", "pre.diff", &[SCRIPT_TAG]).await;
    // The first scan against the last, from the form on the Scans page.
    v.open("scans-form", "/scans", "Scans").await;
    let form = c.form(Locator::Css("form.filter")).await.unwrap();
    form.set_by_name("a", &s.first.to_string()).await.unwrap();
    form.set_by_name("b", &s.third.to_string()).await.unwrap();
    submit_filter(c).await;
    v.loaded("diff-form", &format!("Diff #{} → #{}", s.first, s.third))
        .await;
    Shots {
        viewport,
        shots: v.shots,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_in_a_real_browser() {
    let required = std::env::var("PORTOLAN_BROWSER").as_deref() == Ok("required");
    let chromium = find_program(&["chromium", "chromium-browser", "/usr/lib/chromium/chromium"]);
    let driver = find_program(&["chromedriver", "/usr/lib/chromium/chromedriver"]);
    let (Some(chromium), Some(driver)) = (chromium, driver) else {
        assert!(
            !required,
            "PORTOLAN_BROWSER=required but chromium or chromedriver is missing \
             (scripts/install-lab-deps.sh installs them)"
        );
        eprintln!("browser test skipped: chromium and chromium-driver are not installed");
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.db");
    let scans = build_store(&db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let limits = Limits::default();
    let app = router_with(readers(&db, 2), None, limits);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(listener, app, limits, async {
        let _ = stopped.await;
    }));

    let out = artifact_dir();
    std::fs::create_dir_all(&out).unwrap();
    let profile = dir.path().join("chromium-profile");
    let mut driver = Driver::start(&driver, &out.join("chromedriver.log"));
    let client = connect(&mut driver, &chromium, &profile).await;
    // The checks run in a task of their own, so a failed one still lets the browser close.
    let base = format!("http://{addr}");
    let c2 = client.clone();
    let result = tokio::spawn(async move { checks(&c2, base, &scans).await }).await;
    let _ = client.close().await;
    drop(driver);
    let _ = stop.send(());
    let _ = server.await;
    let Shots { viewport, shots } = match result {
        Ok(shots) => shots,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };

    // Every screenshot is a PNG of the viewport with more on it than a blank page.
    let blank = shots[0].1.len();
    println!("browser screenshots: {}", out.display());
    for (i, (name, png)) in shots.iter().enumerate() {
        let file = out.join(format!("{i:02}-{name}.png"));
        std::fs::write(&file, png).unwrap();
        println!("  {} ({} bytes)", file.display(), png.len());
        assert_eq!(
            png_size(png),
            Some(viewport),
            "{name}: not a PNG of the page"
        );
        if name != "blank" {
            assert!(
                png.len() > 4 * blank,
                "{name}: the screenshot looks blank ({} bytes, blank {blank})",
                png.len()
            );
        }
    }
}
