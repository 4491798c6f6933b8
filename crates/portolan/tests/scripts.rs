//! Script scanning from the command line (`--script`, `-sC`): Nmap's installed engine and
//! scripts against services on 127.0.0.1, results in every output. Skipped, with a message,
//! where Nmap's scripts are not installed. Packets go to 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn nse_installed() -> bool {
    let ok = Path::new("/usr/share/nmap/nse_main.lua").is_file();
    if !ok {
        eprintln!("skipped: Nmap's scripts are not installed (apt install nmap-common)");
    }
    ok
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("PORTOLAN_DB")
        .env("PORTOLAN_AUDIT_LOG", "none")
        .stdin(Stdio::null())
        .output()
        .expect("run portolan")
}

/// A connect scan of `port` on 127.0.0.1 with these script options.
fn scan(port: u16, extra: &[&str]) -> Output {
    let p = port.to_string();
    let mut args = vec!["-sT", "-Pn", "-n", "-p", &p];
    args.extend_from_slice(extra);
    args.push("127.0.0.1");
    run(&args)
}

/// A loopback service answering every client with `reply` (after reading a request when
/// `read_first`).
fn service(reply: &'static [u8], read_first: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                if read_first {
                    let _ = c.read(&mut buf);
                }
                let _ = c.write_all(reply);
                if !read_first {
                    let _ = c.read(&mut buf);
                }
            });
        }
    });
    port
}

#[test]
fn banner_result_reaches_every_output() {
    if !nse_installed() {
        return;
    }
    let port = service(b"220 lab FTP ready\r\n", false);
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("s.xml");
    let json = dir.path().join("s.json");
    let o = scan(
        port,
        &[
            "--script",
            "banner",
            "-oX",
            xml.to_str().unwrap(),
            "-oJ",
            json.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let normal = String::from_utf8_lossy(&o.stdout);
    assert!(normal.contains("|_banner: 220 lab FTP ready"), "{normal}");
    let x = std::fs::read_to_string(&xml).unwrap();
    assert!(
        x.contains(r#"<script id="banner" output="220 lab FTP ready"/>"#),
        "{x}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let text = j.to_string();
    assert!(
        text.contains("\"id\":\"banner\"") && text.contains("220 lab FTP ready"),
        "{text}"
    );
}

#[test]
fn forced_script_finds_a_page_title() {
    if !nse_installed() {
        return;
    }
    let port = service(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html><head><title>Lab page</title></head></html>",
        true,
    );
    // As Nmap, -sC picks scripts by port or service; `+` runs a script whatever its rule
    // says of this unknown port.
    let o = scan(port, &["-sC", "--script", "+http-title"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let normal = String::from_utf8_lossy(&o.stdout);
    assert!(normal.contains("|_http-title: Lab page"), "{normal}");
}

/// -oE: a vulns-library finding is an ECS alert with its CVE, after the port's event. The
/// service answers every request with 206 Partial Content, which is what
/// http-vuln-cve2011-3192 (Apache byterange DoS) takes for a vulnerable server.
#[test]
fn vulnerable_script_result_is_an_alert_event() {
    if !nse_installed() {
        return;
    }
    let port = service(
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("e.ndjson");
    let o = scan(
        port,
        &[
            "--script",
            "+http-vuln-cve2011-3192",
            "-oE",
            events.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&events).unwrap();
    let ev: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ev.len(), 2, "{text}");
    assert_eq!(ev[0]["event"]["action"], "port-open");
    let alert = &ev[1];
    assert_eq!(alert["event"]["action"], "script-result", "{text}");
    assert_eq!(alert["event"]["kind"], "alert", "{text}");
    assert_eq!(alert["event"]["category"][0], "vulnerability");
    assert_eq!(alert["vulnerability"]["id"][0], "CVE-2011-3192");
    assert_eq!(alert["destination"]["port"], port);
    assert_eq!(alert["portolan"]["script"]["id"], "http-vuln-cve2011-3192");
    assert!(
        alert["portolan"]["script"]["output"]
            .as_str()
            .unwrap()
            .contains("State: VULNERABLE"),
        "{text}"
    );
}

#[test]
fn unknown_script_is_refused_before_any_output() {
    if !nse_installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("keep.xml");
    std::fs::write(&xml, "precious").unwrap();
    let o = scan(
        1,
        &["--script", "no-such-script", "-oX", xml.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("'no-such-script' did not match a category, filename, or directory"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&xml).unwrap(), "precious");
}

/// `--script-args` and `--script-args-file` reach the scripts as Nmap passes them
/// (`stdnse.get_script_args`), and a script named by path runs.
#[test]
fn script_arguments_reach_the_script() {
    if !nse_installed() {
        return;
    }
    let port = service(b"hello\r\n", false);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("echo-args.nse");
    std::fs::write(
        &script,
        "description = [[returns its arguments]]\ncategories = {\"safe\"}\n\
         portrule = function(host, port) return true end\n\
         action = function(host, port)\n\
           local stdnse = require 'stdnse'\n\
           local a, b = stdnse.get_script_args('echo.a', 'echo.b')\n\
           return ('a=%s b=%s'):format(tostring(a), tostring(b))\n\
         end\n",
    )
    .unwrap();
    let file = dir.path().join("args.txt");
    std::fs::write(&file, "echo.b=from-file\n").unwrap();
    let o = scan(
        port,
        &[
            "--script",
            script.to_str().unwrap(),
            "--script-args",
            "echo.a=given",
            "--script-args-file",
            file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let normal = String::from_utf8_lossy(&o.stdout);
    assert!(
        normal.contains("|_echo-args: a=given b=from-file"),
        "{normal}"
    );
}
