use super::*;
use portolan_model::*;

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn opcodes_like_difflib() {
    let a = lines(&["a", "b", "c", "d"]);
    let b = lines(&["a", "x", "c", "d", "e"]);
    let ops: Vec<(Tag, usize, usize, usize, usize)> = opcodes(&a, &b)
        .into_iter()
        .map(|o| (o.tag, o.a.start, o.a.end, o.b.start, o.b.end))
        .collect();
    assert_eq!(
        ops,
        vec![
            (Tag::Equal, 0, 1, 0, 1),
            (Tag::Replace, 1, 2, 1, 2),
            (Tag::Equal, 2, 4, 2, 4),
            (Tag::Insert, 4, 4, 4, 5),
        ]
    );
    assert!(opcodes(&[], &[]).is_empty());
    let ops = opcodes(&lines(&["x"]), &[]);
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].tag, Tag::Delete);
}

#[test]
fn splitlines_like_python() {
    assert_eq!(
        py_splitlines("a\nb\r\nc\rd\n"),
        lines(&["a", "b", "c", "d"])
    );
    assert!(py_splitlines("").is_empty());
    assert_eq!(py_splitlines("\n\n"), lines(&["", ""]));
    let s = ScriptOut {
        id: "t".into(),
        output: "one\ntwo".into(),
    };
    assert_eq!(s.lines(), lines(&["|  t: one", "|_ two"]));
}

fn port(p: u16, state: PortState, svc: Option<(&str, Option<&str>, Option<&str>)>) -> Port {
    let mut port = Port::new(Protocol::Tcp, p, state, "syn-ack");
    port.service = svc.map(|(name, product, version)| Service {
        name: name.into(),
        product: product.map(Into::into),
        version: version.map(Into::into),
        method: ServiceMethod::Probed,
        conf: 10,
        ..Service::default()
    });
    port
}

fn host(ip: &str, name: Option<&str>) -> Host {
    let mut h = Host::new(ip.parse().unwrap(), HostStatus::up("syn-ack"));
    if let Some(n) = name {
        h.hostnames.push(Hostname {
            name: n.into(),
            kind: HostnameType::User,
        });
    }
    h.extraports.push(ExtraPorts {
        state: PortState::Closed,
        count: 997,
        reasons: Vec::new(),
    });
    h.ports = vec![
        port(
            22,
            PortState::Open,
            Some(("ssh", Some("OpenSSH"), Some("9.0"))),
        ),
        port(80, PortState::Open, Some(("http", None, None))),
        port(443, PortState::Filtered, Some(("https", None, None))),
    ];
    h
}

fn scan() -> ScanRun {
    let mut r = ScanRun::new("nmap -sV 192.0.2.1-2", 1_700_000_000);
    r.scanner = "nmap".into();
    r.version = "7.93".into();
    r.hosts = vec![
        host("192.0.2.1", Some("a.example")),
        host("192.0.2.2", None),
    ];
    r
}

fn text(a: &ScanRun, b: &ScanRun) -> (String, bool) {
    let d = diff(a, b, DiffOptions::default());
    (d.to_text(), d.changed())
}

#[test]
fn identical_scans_show_nothing() {
    let (t, changed) = text(&scan(), &scan());
    assert_eq!(t, "");
    assert!(!changed);
    let d = diff(&scan(), &scan(), DiffOptions { verbose: true });
    assert!(!d.changed());
    assert!(
        d.to_text().contains("\n 192.0.2.2:\n Host is up.\n"),
        "{}",
        d.to_text()
    );
}

#[test]
fn opened_port_and_version_change() {
    let a = scan();
    let mut b = scan();
    b.hosts[0].ports[0].service.as_mut().unwrap().version = Some("9.2".into());
    b.hosts[1].ports.push(port(
        8080,
        PortState::Open,
        Some(("http-proxy", None, None)),
    ));
    let (t, changed) = text(&a, &b);
    assert!(changed);
    assert_eq!(
        t,
        "\n a.example (192.0.2.1):\n PORT   STATE SERVICE VERSION\n-22/tcp open  ssh     OpenSSH 9.0\n+22/tcp open  ssh     OpenSSH 9.2\n\n 192.0.2.2:\n PORT     STATE SERVICE    VERSION\n+8080/tcp open  http-proxy\n"
    );
}

#[test]
fn closed_port_goes_into_not_shown() {
    let a = scan();
    let mut b = scan();
    b.hosts[1].ports.remove(1);
    b.hosts[1].extraports[0].count = 998;
    let (t, _) = text(&a, &b);
    assert_eq!(
        t,
        "\n 192.0.2.2:\n-Not shown: 997 closed ports\n+Not shown: 998 closed ports\n PORT   STATE SERVICE VERSION\n-80/tcp open  http\n"
    );
}

#[test]
fn host_down_added_and_renamed() {
    let a = scan();
    let mut b = scan();
    b.hosts[1] = Host::new(
        "192.0.2.2".parse().unwrap(),
        HostStatus::down("no-response"),
    );
    b.hosts[0].hostnames.push(Hostname {
        name: "b.example".into(),
        kind: HostnameType::Ptr,
    });
    b.hosts.push(Host::new(
        "192.0.2.3".parse().unwrap(),
        HostStatus::up("syn-ack"),
    ));
    let (t, changed) = text(&a, &b);
    assert!(changed);
    assert!(
        t.contains("\n-a.example (192.0.2.1):\n+a.example, b.example (192.0.2.1):\n"),
        "{t}"
    );
    assert!(t.contains("\n 192.0.2.2:\n-Host is up.\n+Host is down.\n-Not shown: 997 closed ports\n PORT    STATE    SERVICE VERSION\n-22/tcp  open     ssh     OpenSSH 9.0\n-80/tcp  open     http\n-443/tcp filtered https\n"), "{t}");
    assert!(t.ends_with("\n+192.0.2.3:\n+Host is up.\n"), "{t}");
}

#[test]
fn banner_changes_alone_are_not_differences() {
    let a = scan();
    let mut b = scan();
    b.args = "nmap -sV -T4 192.0.2.1-2".into();
    let (t, changed) = text(&a, &b);
    assert!(!changed);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 2, "{t}");
    assert!(
        lines[0].starts_with("-Nmap 7.93 scan initiated ")
            && lines[0].ends_with(" as: nmap -sV 192.0.2.1-2")
    );
    assert!(lines[1].ends_with(" as: nmap -sV -T4 192.0.2.1-2"));
}

#[test]
fn script_output_change_is_shown_line_by_line() {
    let mut a = scan();
    a.hosts[1].ports[1].scripts.push(Script {
        id: "http-title".into(),
        output: "Welcome".into(),
        content: Vec::new(),
    });
    let mut b = a.clone();
    b.hosts[1].ports[1].scripts[0].output = "Maintenance".into();
    let (t, changed) = text(&a, &b);
    assert!(changed);
    assert_eq!(
        t,
        "\n 192.0.2.2:\n PORT   STATE SERVICE VERSION\n 80/tcp open  http\n-|_ http-title: Welcome\n+|_ http-title: Maintenance\n"
    );
    // Verbose output of the same scan is not a difference, scripts or not.
    assert!(!diff(&a, &a, DiffOptions { verbose: true }).changed());
}

#[test]
fn xml_form_of_a_port_change() {
    let a = scan();
    let mut b = scan();
    b.hosts[1].ports[1].state = PortState::Closed;
    let x = diff(&a, &b, DiffOptions::default()).to_xml();
    assert_eq!(
        x,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<nmapdiff version=\"1\"><scandiff><hostdiff>\n<host>\n<address addr=\"192.0.2.2\" addrtype=\"ipv4\"/>\n<ports>\n<extraports state=\"closed\" count=\"997\"/>\n<portdiff>\n<a>\n<port portid=\"80\" protocol=\"tcp\">\n<state state=\"open\"/>\n<service name=\"http\"/>\n</port>\n</a>\n<b>\n<port portid=\"80\" protocol=\"tcp\">\n<state state=\"closed\"/>\n<service name=\"http\"/>\n</port>\n</b>\n</portdiff>\n</ports>\n</host>\n</hostdiff>\n</scandiff></nmapdiff>"
    );
}

#[test]
fn json_form_lists_host_and_port_changes() {
    let a = scan();
    let mut b = scan();
    b.hosts[0].ports[0].service.as_mut().unwrap().version = Some("9.2".into());
    let v: serde_json::Value =
        serde_json::from_str(&diff(&a, &b, DiffOptions::default()).to_json()).unwrap();
    assert_eq!(v["changed"], true);
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["address"], "192.0.2.1");
    assert_eq!(hosts[0]["change"], "changed");
    let p = &hosts[0]["ports"][0];
    assert_eq!(p["port"], 22);
    assert_eq!(p["protocol"], "tcp");
    assert_eq!(p["change"], "changed");
    assert_eq!(p["before"]["version"], "9.0");
    assert_eq!(p["after"]["version"], "9.2");
    assert_eq!(p["after"]["product"], "OpenSSH");
    assert_eq!(p["after"]["state"], "open");
    assert_eq!(p["after"]["service"], "ssh");
}

#[test]
fn hosts_pair_by_lowest_address_then_name() {
    // The same address under two different names: two hosts, one removed and one added.
    let a = scan();
    let mut b = scan();
    b.hosts[0].hostnames[0].name = "0.example".into();
    let (t, _) = text(&a, &b);
    let heads: Vec<&str> = t.lines().filter(|l| l.ends_with("):")).collect();
    assert_eq!(
        heads,
        vec!["+0.example (192.0.2.1):", "-a.example (192.0.2.1):"],
        "{t}"
    );
}
