//! The engine running Nmap's installed nse_main.lua and scripts against services on
//! loopback. Skipped, with a message, where Nmap's scripts are not installed.

use portolan_model::{Host, HostState, HostStatus, Port, PortState, Protocol, Service};
use portolan_nse::{Config, Engine, Phase};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

fn dirs() -> Option<Vec<PathBuf>> {
    let d = PathBuf::from("/usr/share/nmap");
    if d.join("nse_main.lua").is_file() {
        Some(vec![d])
    } else {
        eprintln!("skipped: Nmap's scripts are not installed (/usr/share/nmap)");
        None
    }
}

fn loopback_only() -> portolan_nse::Guard {
    Arc::new(|ip: IpAddr| {
        if ip.is_loopback() {
            Ok(())
        } else {
            Err(format!("{ip} is outside the scan"))
        }
    })
}

fn host_with(port: u16, service: &str) -> Host {
    let mut h = Host::new(
        "127.0.0.1".parse().unwrap(),
        HostStatus {
            state: HostState::Up,
            reason: "localhost-response".into(),
            reason_ttl: 0,
        },
    );
    let mut p = Port::new(Protocol::Tcp, port, PortState::Open, "syn-ack");
    p.service = Some(Service::from_table(service));
    h.ports.push(p);
    h
}

/// A TCP service that greets every client with `greeting` and reads what it sends.
fn greeter(greeting: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            std::thread::spawn(move || {
                let _ = c.write_all(greeting);
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
            });
        }
    });
    port
}

#[test]
fn banner_reads_the_greeting() {
    let Some(dirs) = dirs() else { return };
    let port = greeter(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
    let engine = Engine::new(Config::new(dirs, vec!["banner".into()], loopback_only())).unwrap();
    let r = engine.run(Phase::Scan, vec![host_with(port, "ssh")]);
    assert!(r.error.is_none(), "{:?}", r.error);
    let (hosts, run) = (r.hosts, r.scripts);
    assert!(run.is_empty());
    let scripts = &hosts[0].ports[0].scripts;
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert_eq!(scripts[0].id, "banner");
    assert_eq!(scripts[0].output, "SSH-2.0-OpenSSH_9.2p1 Debian-2");
}

/// Writes a one-rule script that runs `action` against every open TCP port.
fn script(dir: &std::path::Path, name: &str, action: &str) -> String {
    let path = dir.join(format!("{name}.nse"));
    std::fs::write(
        &path,
        format!(
            "description = [[test]]\ncategories = {{\"safe\"}}\n\
             portrule = function(host, port) return port.protocol == \"tcp\" end\n\
             action = function(host, port)\n{action}\nend\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// A script that errors, one that never returns, and one that allocates without end each
/// fail alone; the others still give their results.
#[test]
fn failing_scripts_fail_alone() {
    let Some(dirs) = dirs() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let rules = vec![
        script(tmp.path(), "t-errors", "error('broken on purpose')"),
        script(tmp.path(), "t-spins", "while true do end"),
        script(
            tmp.path(),
            "t-hogs",
            "local t = {} local i = 0 while true do i = i + 1 t[i] = string.rep('x', 1000) .. i end",
        ),
        script(tmp.path(), "t-works", "return 'still here'"),
        "banner".into(),
    ];
    let port = greeter(b"220 ready\r\n");
    let mut cfg = Config::new(dirs, rules, loopback_only());
    cfg.cpu_limit = std::time::Duration::from_secs(2);
    let engine = Engine::new(cfg).unwrap();
    let started = std::time::Instant::now();
    let r = engine.run(Phase::Scan, vec![host_with(port, "ftp")]);
    assert!(r.error.is_none(), "{:?}", r.error);
    let (hosts, _) = (r.hosts, r.scripts);
    let ids: Vec<(&str, &str)> = hosts[0].ports[0]
        .scripts
        .iter()
        .map(|s| (s.id.as_str(), s.output.as_str()))
        .collect();
    assert!(ids.contains(&("t-works", "still here")), "{ids:?}");
    assert!(ids.contains(&("banner", "220 ready")), "{ids:?}");
    // As Nmap: a script selected by name that fails says so in its output.
    for failed in ["t-errors", "t-spins", "t-hogs"] {
        assert!(
            ids.contains(&(failed, "ERROR: Script execution failed (use -d to debug)")),
            "{failed}: {ids:?}"
        );
    }
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// --script-timeout ends a script that waits too long; a connect outside the guard fails
/// with the guard's message and sends nothing.
#[test]
fn timeouts_and_the_guard_hold() {
    let Some(dirs) = dirs() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let rules = vec![
        script(
            tmp.path(),
            "t-sleeps",
            "require('stdnse').sleep(30) return 'woke'",
        ),
        script(
            tmp.path(),
            "t-escapes",
            "local s = require('nmap').new_socket() \
             local ok, err = s:connect('198.18.0.1', 80) \
             return tostring(ok) .. ' ' .. tostring(err)",
        ),
    ];
    let port = greeter(b"hello\r\n");
    let mut cfg = Config::new(dirs, rules, loopback_only());
    cfg.script_timeout = Some(1.0);
    let engine = Engine::new(cfg).unwrap();
    let started = std::time::Instant::now();
    let r = engine.run(Phase::Scan, vec![host_with(port, "x")]);
    assert!(r.error.is_none(), "{:?}", r.error);
    let (hosts, _) = (r.hosts, r.scripts);
    let scripts = &hosts[0].ports[0].scripts;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!scripts.iter().any(|s| s.id == "t-sleeps"), "{scripts:?}");
    let esc = scripts
        .iter()
        .find(|s| s.id == "t-escapes")
        .expect("t-escapes ran");
    assert_eq!(esc.output, "nil 198.18.0.1 is outside the scan");
}

/// A script's table comes out as Nmap's text and as the structure Nmap writes in XML.
#[test]
fn structured_output_keeps_text_and_structure() {
    let Some(dirs) = dirs() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let rules = vec![script(
        tmp.path(),
        "t-table",
        "local stdnse = require 'stdnse' local o = stdnse.output_table() \
         o.name = 'x' o.list = {'a', 'b'} o.sub = stdnse.output_table() o.sub.k = 1 return o",
    )];
    let port = greeter(b"hello\r\n");
    let engine = Engine::new(Config::new(dirs, rules, loopback_only())).unwrap();
    let r = engine.run(Phase::Scan, vec![host_with(port, "x")]);
    assert!(r.error.is_none(), "{:?}", r.error);
    let (hosts, _) = (r.hosts, r.scripts);
    let s = &hosts[0].ports[0].scripts[0];
    assert_eq!(
        s.output,
        "\n  name: x\n  list: \n    a\n    b\n  sub: \n    k: 1"
    );
    use portolan_model::ScriptItem::{Elem, Table};
    let elem = |k: Option<&str>, v: &str| Elem {
        key: k.map(str::to_string),
        value: v.into(),
    };
    assert_eq!(
        s.content,
        vec![
            elem(Some("name"), "x"),
            Table {
                key: Some("list".into()),
                items: vec![elem(None, "a"), elem(None, "b")]
            },
            Table {
                key: Some("sub".into()),
                items: vec![elem(Some("k"), "1")]
            },
        ]
    );
}

/// An unknown script name is refused by the engine itself, with Nmap's message.
#[test]
fn unknown_scripts_are_refused_at_load() {
    let Some(dirs) = dirs() else { return };
    let err = Engine::new(Config::new(
        dirs,
        vec!["no-such-script".into()],
        loopback_only(),
    ))
    .err()
    .expect("refused");
    assert!(
        err.to_string()
            .contains("'no-such-script' did not match a category, filename, or directory"),
        "{err}"
    );
}

#[test]
fn missing_nmap_names_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let err = portolan_nse::locate(&[tmp.path().to_path_buf()]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
    assert!(msg.contains("apt install nmap-common"), "{msg}");
}

/// Scripts see `host.os` as Nmap gives it: the perfect matches only, with their classes.
#[test]
fn scripts_see_the_perfect_os_matches() {
    use portolan_model::{Os, OsClass, OsMatch};
    let Some(dirs) = dirs() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let rules = vec![script(
        tmp.path(),
        "t-os",
        "local names = {} for _, m in ipairs(host.os or {}) do \
         names[#names + 1] = m.name .. '/' .. m.classes[1].osfamily .. '/' .. m.classes[1].cpe[1] \
         end return table.concat(names, ';')",
    )];
    let port = greeter(b"hello\r\n");
    let class = |family: &str, cpe: &str| OsClass {
        kind: Some("general purpose".into()),
        vendor: "V".into(),
        osfamily: family.into(),
        osgen: None,
        accuracy: 100,
        cpes: vec![cpe.into()],
    };
    let mut host = host_with(port, "x");
    host.os = Some(Os {
        ports_used: Vec::new(),
        matches: vec![
            OsMatch {
                name: "Exact".into(),
                accuracy: 100,
                line: 1,
                classes: vec![class("Linux", "cpe:/o:v:linux")],
            },
            OsMatch {
                name: "Guess".into(),
                accuracy: 95,
                line: 2,
                classes: vec![class("BSD", "cpe:/o:v:bsd")],
            },
        ],
        fingerprints: Vec::new(),
        coarse: None,
    });
    let engine = Engine::new(Config::new(dirs, rules, loopback_only())).unwrap();
    let r = engine.run(Phase::Scan, vec![host]);
    assert!(r.error.is_none(), "{:?}", r.error);
    let s = &r.hosts[0].ports[0].scripts[0];
    assert_eq!(s.output, "Exact/Linux/cpe:/o:v:linux");
}
