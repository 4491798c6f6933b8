//! Portolan's own probe database: it loads without an error, and names the services it
//! promises from the answers those services give.

use portolan_probes::{builtin, Found, ProbeDb, Proto};

fn db() -> ProbeDb {
    let (db, errors) = builtin();
    assert!(errors.is_empty(), "built-in database errors: {errors:?}");
    db
}

fn answer(db: &ProbeDb, probe: &str, response: &[u8]) -> Found {
    let p = db.probe_by_name(Proto::Tcp, probe).expect("probe");
    db.match_response(p, response, None)
        .unwrap_or_else(|| panic!("{probe}: no match for {response:?}"))
}

fn pv(f: &Found) -> (&str, Option<&str>, Option<&str>) {
    (
        f.service.as_str(),
        f.product.as_deref(),
        f.version.as_deref(),
    )
}

#[test]
fn banners_name_their_servers() {
    let db = db();
    let f = answer(&db, "NULL", b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n");
    assert_eq!(
        pv(&f),
        ("ssh", Some("OpenSSH"), Some("9.2p1 Debian 2+deb12u10"))
    );
    assert_eq!(f.info.as_deref(), Some("protocol 2.0"));
    let f = answer(&db, "NULL", b"SSH-2.0-dropbear_2022.83\r\n");
    assert_eq!(pv(&f), ("ssh", Some("Dropbear sshd"), Some("2022.83")));
    let f = answer(&db, "NULL", b"220 (vsFTPd 3.0.3)\r\n");
    assert_eq!(pv(&f), ("ftp", Some("vsftpd"), Some("3.0.3")));
    let f = answer(
        &db,
        "NULL",
        b"220 ProFTPD 1.3.8 Server (Debian) [::ffff:1.2.3.4]\r\n",
    );
    assert_eq!(pv(&f), ("ftp", Some("ProFTPD"), Some("1.3.8")));
    let f = answer(
        &db,
        "NULL",
        b"220---------- Welcome to Pure-FTPd [privsep] ----------\r\n",
    );
    assert_eq!(pv(&f), ("ftp", Some("Pure-FTPd"), None));
    let f = answer(
        &db,
        "NULL",
        b"220 mail.example ESMTP Postfix (Debian/GNU)\r\n",
    );
    assert_eq!(pv(&f), ("smtp", Some("Postfix smtpd"), None));
    let f = answer(
        &db,
        "NULL",
        b"220 mx.example ESMTP Exim 4.96 Sun, 22 Nov 2026\r\n",
    );
    assert_eq!(pv(&f), ("smtp", Some("Exim smtpd"), Some("4.96")));
    let f = answer(
        &db,
        "NULL",
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot (Debian) ready.\r\n",
    );
    assert_eq!(pv(&f), ("imap", Some("Dovecot imapd"), None));
    let f = answer(&db, "NULL", b"+OK Dovecot (Debian) ready.\r\n");
    assert_eq!(pv(&f), ("pop3", Some("Dovecot pop3d"), None));
    let f = answer(&db, "NULL", b"RFB 003.008\n");
    assert_eq!(pv(&f), ("vnc", Some("VNC"), None));
    let f = answer(&db, "NULL", b"\xff\xfd\x18\xff\xfd\x20");
    assert_eq!(f.service, "telnet");
    let mut greeting = b"\x5b\0\0\0\x0a5.5.5-10.11.19-MariaDB-0+deb12u1\0".to_vec();
    greeting.extend_from_slice(&[0x2a; 40]);
    let f = answer(&db, "NULL", &greeting);
    assert_eq!(
        pv(&f),
        ("mysql", Some("MariaDB"), Some("10.11.19-MariaDB-0+deb12u1"))
    );
    let f = answer(&db, "NULL", b"\x4a\0\0\0\x0a8.0.36\0\x2a\x2a");
    assert_eq!(pv(&f), ("mysql", Some("MySQL"), Some("8.0.36")));
}

#[test]
fn http_servers_by_their_server_header() {
    let db = db();
    for (server, product, version) in [
        ("nginx/1.22.1", "nginx", Some("1.22.1")),
        ("Apache/2.4.57 (Debian)", "Apache httpd", Some("2.4.57")),
        ("lighttpd/1.4.69", "lighttpd", Some("1.4.69")),
        ("Microsoft-IIS/10.0", "Microsoft IIS httpd", Some("10.0")),
        ("Caddy", "Caddy httpd", None),
        (
            "SimpleHTTP/0.6 Python/3.11.7",
            "SimpleHTTPServer",
            Some("0.6"),
        ),
    ] {
        let reply = format!("HTTP/1.0 200 OK\r\nDate: x\r\nServer: {server}\r\n\r\n<html>");
        let f = answer(&db, "GetRequest", reply.as_bytes());
        assert_eq!(pv(&f), ("http", Some(product), version), "{server}");
    }
    let es = b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{\n  \"name\" : \"n1\",\n  \"cluster_name\" : \"lab\",\n  \"version\" : {\n    \"number\" : \"8.11.1\"\n  },\n  \"tagline\" : \"You Know, for Search\"\n}";
    let f = answer(&db, "GetRequest", es);
    assert_eq!(
        pv(&f),
        ("http", Some("Elasticsearch REST API"), Some("8.11.1"))
    );
}

#[test]
fn binary_protocols() {
    let db = db();
    let f = answer(
        &db,
        "TLSClientHello",
        b"\x16\x03\x03\x00\x5d\x02\x00\x00\x59\x03\x03",
    );
    assert_eq!(f.service, "ssl");
    let f = answer(
        &db,
        "RedisInfo",
        b"$3000\r\n# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\n",
    );
    assert_eq!(
        pv(&f),
        ("redis", Some("Redis key-value store"), Some("7.0.15"))
    );
    assert_eq!(f.info.as_deref(), Some("no authentication"));
    let f = answer(&db, "MemcachedVersion", b"VERSION 1.6.18\r\n");
    assert_eq!(pv(&f), ("memcached", Some("Memcached"), Some("1.6.18")));
    let f = answer(
        &db,
        "PostgresStartup",
        b"E\0\0\0\x60SFATAL\0VFATAL\0C28000\0Mno pg_hba.conf entry\0\0",
    );
    assert_eq!(f.service, "postgresql");
    let mut dns =
        b"\0\x3c\x50\x4f\x85\x80\0\x01\0\x01\0\0\0\0\x07version\x04bind\0\0\x10\0\x03".to_vec();
    dns.extend_from_slice(b"\xc0\x0c\0\x10\0\x03\0\0\0\0\0\x0d\x0cdnsmasq-2.90");
    let f = answer(&db, "DNSVersionBindTCP", &dns);
    assert_eq!(pv(&f), ("domain", Some("dnsmasq"), Some("2.90")));
    let f = answer(
        &db,
        "RDPConnectionRequest",
        b"\x03\0\0\x13\x0e\xd0\0\0\x12\x34\0\x02\0\x08\0\x01\0\0\0",
    );
    assert_eq!(f.service, "ms-wbt-server");
    let f = answer(&db, "SMBNegotiate", b"\0\0\0\x55\xfeSMB\x40\0");
    assert_eq!(f.service, "microsoft-ds");
}

/// Regression: PCRE2 10.43 (bundled by pcre2-sys 0.2.9) had a race in its JIT allocator,
/// so threads compiling and freeing patterns at once crashed now and then (CI saw a stack
/// overflow in `binary_protocols` while the other tests ran beside it). Several threads
/// each load the database, match and drop it, many rounds over (with 10.43 one run of this test in five crashed here).
#[test]
fn databases_load_and_match_on_several_threads_at_once() {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(|| {
                for _ in 0..200 {
                    let db = db();
                    let f = answer(&db, "NULL", b"SSH-2.0-OpenSSH_9.2p1\r\n");
                    assert_eq!(f.service, "ssh");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a loading thread panicked");
    }
}
