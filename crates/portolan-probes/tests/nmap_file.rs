//! Loads the nmap-service-probes file installed with Nmap (read at test time only: it is under
//! Nmap's licence and is not part of this repository) and checks that real-world responses
//! match as Nmap would, per the file's own match lines. Skipped when the file is absent.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use portolan_probes::{ProbeDb, Proto, INTENSITY_DEFAULT, INTENSITY_LIGHT};

const PATH: &str = "/usr/share/nmap/nmap-service-probes";

fn db() -> Option<&'static ProbeDb> {
    static DB: OnceLock<Option<ProbeDb>> = OnceLock::new();
    DB.get_or_init(|| {
        let path = Path::new(PATH);
        if !path.exists() {
            eprintln!("skipped: {PATH} is not installed");
            return None;
        }
        let t = Instant::now();
        let (db, errors) = ProbeDb::load(path).expect("read the file");
        let elapsed = t.elapsed();
        let matches: usize = db.probes.iter().map(|p| p.matches.len()).sum();
        eprintln!(
            "loaded {} probes, {matches} match lines (all regexes compiled) in {elapsed:?}",
            db.probes.len()
        );
        for e in &errors {
            eprintln!("  {e}");
        }
        assert!(errors.is_empty(), "{} lines failed to load", errors.len());
        Some(db)
    })
    .as_ref()
}

fn tcp(db: &ProbeDb, name: &str) -> usize {
    db.probe_by_name(Proto::Tcp, name)
        .unwrap_or_else(|| panic!("no TCP probe {name}"))
}

#[test]
fn loads_without_errors() {
    let Some(db) = db() else { return };
    assert!(db.probes.len() > 100);
    assert_eq!(db.null_probe(), Some(0));
    assert_eq!(db.probes[0].name, "NULL");
    assert!(db.is_excluded(Proto::Tcp, 9100) && !db.is_excluded(Proto::Udp, 9100));
    let matches: usize = db.probes.iter().map(|p| p.matches.len()).sum();
    assert!(matches > 10_000, "{matches}");
}

#[test]
fn openssh_debian_banner_on_null_probe() {
    let Some(db) = db() else { return };
    let f = db
        .match_response(0, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", None)
        .expect("match");
    assert_eq!((f.service.as_str(), f.soft), ("ssh", false));
    assert_eq!(f.product.as_deref(), Some("OpenSSH"));
    assert_eq!(f.version.as_deref(), Some("9.2p1 Debian 2+deb12u3"));
    assert_eq!(f.info.as_deref(), Some("protocol 2.0"));
    assert_eq!(f.ostype.as_deref(), Some("Linux"));
    assert_eq!(
        f.cpes,
        // One CPE per part, the last of each, as Nmap 7.93's XML gives for this banner
        // (checked in the lab): the line's cpe:/o:debian:debian_linux is overridden.
        vec!["cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"]
    );
}

#[test]
fn vsftpd_banner_on_null_probe() {
    let Some(db) = db() else { return };
    let f = db
        .match_response(0, b"220 (vsFTPd 3.0.3)\r\n", None)
        .expect("match");
    assert_eq!((f.service.as_str(), f.soft), ("ftp", false));
    assert_eq!(f.product.as_deref(), Some("vsftpd"));
    assert_eq!(f.version.as_deref(), Some("3.0.3"));
    assert_eq!(f.ostype.as_deref(), Some("Unix"));
    assert_eq!(f.cpes, vec!["cpe:/a:vsftpd:vsftpd:3.0.3"]);
}

#[test]
fn nginx_on_get_request() {
    let Some(db) = db() else { return };
    let get = tcp(db, "GetRequest");
    let resp =
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
Content-Type: text/html\r\nContent-Length: 615\r\nConnection: close\r\n\r\n<!DOCTYPE html>\n<html>";
    let f = db.match_response(get, resp, None).expect("match");
    assert_eq!((f.service.as_str(), f.soft), ("http", false));
    assert_eq!(f.product.as_deref(), Some("nginx"));
    assert_eq!(f.version.as_deref(), Some("1.22.1"));
    assert_eq!(f.cpes, vec!["cpe:/a:igor_sysoev:nginx:1.22.1"]);
}

#[test]
fn redis_replies() {
    let Some(db) = db() else { return };
    // "GET / HTTP/1.0" is a GET with two arguments to Redis.
    let get = tcp(db, "GetRequest");
    let f = db
        .match_response(
            get,
            b"-ERR wrong number of arguments for 'get' command\r\n",
            None,
        )
        .expect("match");
    assert_eq!(f.service, "redis");
    assert_eq!(f.product.as_deref(), Some("Redis key-value store"));
    assert_eq!(f.version, None);

    // The INFO probe gets a bulk string with the version.
    let redis = tcp(db, "redis-server");
    assert_eq!(db.probes[redis].payload, b"*1\r\n$4\r\ninfo\r\n");
    let resp = b"$3774\r\n# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
    let f = db.match_response(redis, resp, None).expect("match");
    assert_eq!(f.service, "redis");
    assert_eq!(f.version.as_deref(), Some("7.0.15"));
    assert_eq!(f.cpes, vec!["cpe:/a:redislabs:redis:7.0.15"]);
    // Port 6379 is in the probe's ports: sent even at --version-light, right after NULL.
    let order = db.probe_order(Proto::Tcp, 6379, false, INTENSITY_LIGHT);
    assert_eq!(order[0], 0);
    assert_eq!(order[1], redis);
    assert!(!db
        .probe_order(Proto::Tcp, 6380, false, INTENSITY_DEFAULT)
        .contains(&redis));
}

#[test]
fn garbage_matches_nothing_hard_and_quickly() {
    let Some(db) = db() else { return };
    let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let t = Instant::now();
    for p in 0..db.probes.len() {
        let _ = db.match_response(p, &junk, None);
    }
    eprintln!(
        "4 KiB of junk against every probe's chain: {:?}",
        t.elapsed()
    );
}
