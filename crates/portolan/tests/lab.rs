//! Lab tests: real services in network namespaces (lab/lab.sh), scanned by the real
//! binary from a scanner namespace with no route out, asserted against the ground truth
//! the lab records, and against Nmap run on the same hosts.
//!
//! They need root and the lab's Debian packages (scripts/install-lab-deps.sh). Without
//! them the test says "skipped", unless PORTOLAN_LAB=required (the project's test command
//! sets it), in which case it fails.
//!
//! One lab is built per run and torn down by a guard, even when a scenario fails; the
//! scenarios run one after another so that timing-sensitive ones do not compete.

use portolan_model::{AddrType, PortState, Protocol, RunExit, ScanRun};
use portolan_report::xml_reader::read_xml_file;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

struct Lab {
    prefix: String,
    dir: PathBuf,
    script: PathBuf,
    truth: Value,
    work: tempfile::TempDir,
}

impl Lab {
    fn up() -> Lab {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = root.join("lab/lab.sh");
        // PLAB_PREFIX and PLAB_DIR (as lab.sh takes them) let parallel runs on one machine
        // keep apart; without them, names of this process's own.
        let prefix = std::env::var("PLAB_PREFIX")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| format!("pt{}", std::process::id() % 100_000));
        let dir = std::env::var_os("PLAB_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join(format!("portolan-test-lab-{prefix}")));
        let mut lab = Lab {
            prefix,
            dir,
            script,
            truth: Value::Null,
            work: tempfile::tempdir().expect("temp dir"),
        };
        let out = lab.lab_cmd("up");
        assert!(
            out.status.success(),
            "lab up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(lab.dir.join("ground-truth.json"))
            .expect("ground truth written by lab up");
        lab.truth = serde_json::from_str(&text).expect("ground truth is JSON");
        lab
    }

    fn lab_cmd(&self, what: &str) -> Output {
        Command::new("bash")
            .arg(&self.script)
            .arg(what)
            .env("PLAB_PREFIX", &self.prefix)
            .env("PLAB_DIR", &self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run lab.sh")
    }

    fn scan_ns(&self) -> String {
        format!("{}-scan", self.prefix)
    }

    /// Runs a program inside the scanner namespace.
    fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.scan_ns(), program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }

    fn portolan(&self, args: &[&str]) -> Output {
        self.exec(BIN, args)
    }

    fn path(&self, name: &str) -> String {
        self.work.path().join(name).to_string_lossy().into_owned()
    }

    fn host(&self, name: &str) -> &Value {
        self.truth["hosts"]
            .as_array()
            .and_then(|hs| hs.iter().find(|h| h["name"] == name))
            .unwrap_or_else(|| panic!("ground truth has no host {name}"))
    }

    fn ip(&self, name: &str) -> String {
        self.host(name)["ip"].as_str().expect("ip").to_string()
    }

    /// The expected state of every port in `ports` on host `name`.
    fn expected(&self, name: &str, ports: impl IntoIterator<Item = u16>) -> BTreeMap<u16, String> {
        let h = self.host(name);
        let default = h["tcp_default"].as_str().unwrap_or("closed").to_string();
        ports
            .into_iter()
            .map(|p| {
                let s = h["tcp"][p.to_string()]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| default.clone());
                (p, s)
            })
            .collect()
    }
    /// Every port in `ports` of host `name` in `got` is in the state the lab configured.
    fn assert_truth(
        &self,
        name: &str,
        got: &BTreeMap<String, BTreeMap<u16, String>>,
        ports: std::ops::RangeInclusive<u16>,
    ) {
        let ip = self.ip(name);
        let have = got
            .get(&ip)
            .unwrap_or_else(|| panic!("{ip} missing from output"));
        let diff: Vec<_> = self
            .expected(name, ports)
            .iter()
            .filter(|(p, s)| have.get(p) != Some(s))
            .map(|(p, s)| format!("{p}: want {s}, got {:?}", have.get(p)))
            .collect();
        assert!(
            diff.is_empty(),
            "{name} ({ip}) differs from ground truth: {diff:?}"
        );
    }

    /// The lossy host in `got`: every open and firewalled port exact; a closed port whose
    /// every try lost its reply reads as filtered, which answer-driven retries make a few
    /// in a million, so at most two are allowed. Returns how many there were.
    fn assert_lossy(
        &self,
        got: &BTreeMap<String, BTreeMap<u16, String>>,
        ports: std::ops::RangeInclusive<u16>,
    ) -> usize {
        let ip = self.ip("lossy");
        let have = got.get(&ip).expect("lossy host reported");
        let mut closed_wrong = 0;
        for (p, s) in &self.expected("lossy", ports) {
            let g = have.get(p).map(String::as_str);
            if s == "closed" {
                closed_wrong += usize::from(g != Some("closed"));
            } else {
                assert_eq!(g, Some(s.as_str()), "lossy port {p}");
            }
        }
        assert!(
            closed_wrong <= 2,
            "{closed_wrong} closed ports misread on the lossy host"
        );
        closed_wrong
    }

    /// Runs Portolan and Nmap with `scan` on `ports` of the clean hosts; both must report
    /// the same hosts, and the same state for every port.
    fn compare_with_nmap(&self, scan: &str, ports: &str, tag: &str) {
        let ips: Vec<String> = ["svc", "dns", "filt"].iter().map(|h| self.ip(h)).collect();
        let ours = self.path(&format!("{tag}-ours.xml"));
        let theirs = self.path(&format!("{tag}-nmap.xml"));
        let mut base = vec![scan, "-T4", "-p", ports, "-n", "-Pn"];
        base.extend(ips.iter().map(String::as_str));
        let mut a = base.clone();
        a.extend(["-oX", &ours]);
        ok(&self.portolan(&a), &format!("portolan {scan}"));
        let mut b = base.clone();
        b.extend(["-oX", &theirs]);
        ok(&self.exec("nmap", &b), &format!("nmap {scan}"));
        let ours = states(&read_xml_file(&ours).expect("our XML"));
        let nmap = states(&read_xml_file(&theirs).expect("Nmap's XML"));
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            nmap.keys().collect::<Vec<_>>()
        );
        for ip in nmap.keys() {
            let (o, n) = (&ours[ip], &nmap[ip]);
            let diff: Vec<_> = n
                .iter()
                .filter(|(p, s)| o.get(p) != Some(s))
                .map(|(p, s)| format!("{p}: nmap {s}, portolan {:?}", o.get(p)))
                .collect();
            assert!(diff.is_empty(), "{ip}: {diff:?}");
            assert_eq!(o.len(), n.len(), "{ip}: port counts differ");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.lab_cmd("down");
        if !out.status.success() {
            eprintln!("lab down failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The port states of one protocol of every host, collapsed ports included.
fn proto_states(run: &ScanRun, proto: Protocol) -> BTreeMap<String, BTreeMap<u16, String>> {
    let mut out = BTreeMap::new();
    for h in &run.hosts {
        let mut m = BTreeMap::new();
        for e in h.extraports.iter() {
            for r in &e.reasons {
                if r.proto.unwrap_or(Protocol::Tcp) == proto {
                    for p in &r.port_list {
                        m.insert(*p, e.state.as_str().to_string());
                    }
                }
            }
        }
        for p in h.ports.iter().filter(|p| p.protocol == proto) {
            m.insert(p.portid, p.state.as_str().to_string());
        }
        out.insert(h.addr_str().to_string(), m);
    }
    out
}

/// Every port state of every host in a scan, collapsed ports included.
fn states(run: &ScanRun) -> BTreeMap<String, BTreeMap<u16, String>> {
    let mut out = BTreeMap::new();
    for h in &run.hosts {
        let mut m = BTreeMap::new();
        for e in &h.extraports {
            for r in &e.reasons {
                for p in &r.port_list {
                    m.insert(*p, e.state.as_str().to_string());
                }
            }
        }
        for p in &h.ports {
            m.insert(p.portid, p.state.as_str().to_string());
        }
        out.insert(h.addr_str().to_string(), m);
    }
    out
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn lab_possible() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return Err("not root".into());
    }
    for cmd in [
        "ip",
        "nft",
        "nmap",
        "sshd",
        "nginx",
        "redis-server",
        "vsftpd",
        "dnsmasq",
        "snmpd",
        "memcached",
        "mariadb-install-db",
        "tcpdump",
    ] {
        let found = have(cmd) || Path::new(&format!("/usr/sbin/{cmd}")).exists();
        if !found {
            return Err(format!("{cmd} is not installed"));
        }
    }
    Ok(())
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

type Scenario = fn(&Lab);

#[test]
fn lab() {
    if let Err(why) = lab_possible() {
        if std::env::var("PORTOLAN_LAB").as_deref() == Ok("required") {
            panic!("lab tests are required but cannot run: {why} (run scripts/install-lab-deps.sh as root)");
        }
        eprintln!("skipped: lab tests need root and the lab packages ({why})");
        return;
    }
    let lab = Lab::up();
    let scenarios: &[(&str, Scenario)] = &[
        (
            "full_range_matches_ground_truth",
            full_range_matches_ground_truth,
        ),
        (
            "lossy_host_keeps_every_open_port",
            lossy_host_keeps_every_open_port,
        ),
        ("same_answers_as_nmap", same_answers_as_nmap),
        ("outputs_read_by_nmap_tools", outputs_read_by_nmap_tools),
        (
            "discovery_finds_up_and_down_hosts",
            discovery_finds_up_and_down_hosts,
        ),
        (
            "excluded_hosts_are_not_scanned",
            excluded_hosts_are_not_scanned,
        ),
        (
            "unresolvable_name_is_reported_and_scan_goes_on",
            unresolvable_name_is_reported_and_scan_goes_on,
        ),
        (
            "interrupt_leaves_valid_outputs",
            interrupt_leaves_valid_outputs,
        ),
        (
            "syn_full_range_matches_ground_truth",
            syn_full_range_matches_ground_truth,
        ),
        (
            "syn_lossy_host_keeps_every_port",
            syn_lossy_host_keeps_every_port,
        ),
        ("syn_same_answers_as_nmap", syn_same_answers_as_nmap),
        (
            "excluded_host_receives_not_one_packet",
            excluded_host_receives_not_one_packet,
        ),
        (
            "syn_backs_off_on_a_congested_link",
            syn_backs_off_on_a_congested_link,
        ),
        ("icmp_echo_discovery", icmp_echo_discovery),
        ("udp_same_open_ports_as_nmap", udp_same_open_ports_as_nmap),
        ("syn_and_udp_in_one_scan", syn_and_udp_in_one_scan),
        ("raw_discovery_probe_types", raw_discovery_probe_types),
        ("shards_split_the_scan", shards_split_the_scan),
        ("shards_form_one_scan", shards_form_one_scan),
        ("dry_run_sends_nothing", dry_run_sends_nothing),
        (
            "resume_finishes_interrupted_scans",
            resume_finishes_interrupted_scans,
        ),
        (
            "raw_interrupt_leaves_valid_outputs",
            raw_interrupt_leaves_valid_outputs,
        ),
        ("signals_leave_valid_outputs", signals_leave_valid_outputs),
        ("second_signal_stops_at_once", second_signal_stops_at_once),
        (
            "raw_scan_skips_the_broadcast_address",
            raw_scan_skips_the_broadcast_address,
        ),
        ("ipv6_scans", ipv6_scans),
        (
            "timing_flags_show_on_the_wire",
            timing_flags_show_on_the_wire,
        ),
        (
            "version_detection_agrees_with_nmap",
            version_detection_agrees_with_nmap,
        ),
        ("os_agrees_with_nmap", os_agrees_with_nmap),
        (
            "service_fingerprints_agree_with_nmap",
            service_fingerprints_agree_with_nmap,
        ),
        (
            "version_detection_survives_hostile_services",
            version_detection_survives_hostile_services,
        ),
        (
            "builtin_probes_name_the_lab_services",
            builtin_probes_name_the_lab_services,
        ),
        (
            "dropped_privileges_find_what_root_finds",
            dropped_privileges_find_what_root_finds,
        ),
        ("scans_run_without_root", scans_run_without_root),
        ("scripts_agree_with_nmap", scripts_agree_with_nmap),
        (
            "scripts_never_reach_an_excluded_host",
            scripts_never_reach_an_excluded_host,
        ),
        ("traceroute_agrees_with_nmap", traceroute_agrees_with_nmap),
        ("vulns_from_version_detection", vulns_from_version_detection),
        ("iflist_agrees_with_nmap", iflist_agrees_with_nmap),
    ];
    // PORTOLAN_LAB_ONLY=a,b runs only the scenarios named (for working on them).
    let only = std::env::var("PORTOLAN_LAB_ONLY").ok();
    let mut failed = Vec::new();
    for (name, f) in scenarios {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|n| n == *name))
        {
            continue;
        }
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&lab)));
        match r {
            Ok(()) => eprintln!(
                "lab scenario {name} ... ok ({:.1}s)",
                t.elapsed().as_secs_f64()
            ),
            Err(_) => {
                eprintln!("lab scenario {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    drop(lab);
    assert!(failed.is_empty(), "lab scenarios failed: {failed:?}");
}

/// All 65535 ports of the clean hosts, each in the state the lab configured.
fn full_range_matches_ground_truth(lab: &Lab) {
    let xml = lab.path("full.xml");
    let hosts = ["svc", "dns", "filt"];
    let ips: Vec<String> = hosts.iter().map(|h| lab.ip(h)).collect();
    let mut args = vec!["-sT", "-T4", "-p-", "-n", "-Pn", "-oX", &xml];
    args.extend(ips.iter().map(String::as_str));
    ok(&lab.portolan(&args), "portolan -p-");
    let got = states(&read_xml_file(&xml).expect("our XML reads back"));
    for h in hosts {
        lab.assert_truth(h, &got, 1..=65535);
    }
}

/// 3% of the host's replies are dropped: every open and firewalled port is still right.
fn lossy_host_keeps_every_open_port(lab: &Lab) {
    let xml = lab.path("lossy.xml");
    let ip = lab.ip("lossy");
    ok(
        &lab.portolan(&["-sT", "-T4", "-p", "1-5000", "-n", "-Pn", "-oX", &xml, &ip]),
        "portolan on lossy host",
    );
    lab.assert_lossy(
        &states(&read_xml_file(&xml).expect("XML reads back")),
        1..=5000,
    );
}

/// Nmap and Portolan, same command on the same hosts: same ports, same states.
fn same_answers_as_nmap(lab: &Lab) {
    lab.compare_with_nmap("-sT", "1-1024,2222,5000,6379,8080,8443,9999,31337", "diff");
}

/// A real scan's files: XML valid against Nmap's DTD, read by ndiff and python-libnmap;
/// grepable and JSON carry the same open ports.
fn outputs_read_by_nmap_tools(lab: &Lab) {
    let base = lab.path("all");
    let json = lab.path("all.json");
    let svc = lab.ip("svc");
    let filt = lab.ip("filt");
    ok(
        &lab.portolan(&[
            "-T4",
            "-p",
            "1-1000,6379,8080,8443",
            "--reason",
            "-oA",
            &base,
            "-oJ",
            &json,
            &svc,
            &filt,
        ]),
        "portolan -oA",
    );
    let xml = format!("{base}.xml");
    let dtd = "/usr/share/nmap/nmap.dtd";
    let v = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", dtd, &xml])
        .output()
        .expect("xmllint installed");
    ok(&v, "xmllint --dtdvalid");
    // ndiff: identical files compare equal (exit 0).
    let nd = Command::new("ndiff")
        .args([&xml, &xml])
        .output()
        .expect("ndiff installed");
    assert_eq!(
        nd.status.code(),
        Some(0),
        "ndiff: {}",
        String::from_utf8_lossy(&nd.stderr)
    );
    let py = Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom libnmap.parser import NmapParser\nr=NmapParser.parse_fromfile(sys.argv[1])\nfor h in r.hosts:\n  print(h.address, h.status, sorted(p for p,_ in h.get_open_ports()))",
            &xml,
        ])
        .output()
        .expect("python3");
    ok(&py, "python-libnmap");
    let text = String::from_utf8_lossy(&py.stdout);
    assert!(
        text.contains(&format!("{svc} up [21, 22, 80, 443, 6379, 8080]")),
        "{text}"
    );
    assert!(text.contains(&format!("{filt} up [80, 8443]")), "{text}");
    let g = std::fs::read_to_string(format!("{base}.gnmap")).expect("gnmap");
    assert!(g.contains(&format!("Host: {svc} ()\tPorts: ")), "{g}");
    assert!(g.contains("22/open/tcp//ssh///"), "{g}");
    let n = std::fs::read_to_string(format!("{base}.nmap")).expect("nmap");
    // Column widths follow the widest cell (here "http-proxy"), as in Nmap.
    assert!(n.contains("6379/tcp open  redis      syn-ack"), "{n}");
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid JSON");
    let hosts = j["hosts"].as_array().expect("hosts array");
    assert_eq!(hosts.len(), 2);
}

fn discovery_finds_up_and_down_hosts(lab: &Lab) {
    let xml = lab.path("sn.xml");
    let out = lab.portolan(&["-sn", "-n", "-oX", &xml, "198.18.0.10-13", "198.18.0.99"]);
    ok(&out, "portolan -sn");
    let run = read_xml_file(&xml).expect("XML");
    let up: BTreeSet<String> = run
        .hosts
        .iter()
        .filter(|h| h.is_up())
        .map(|h| h.addr_str().to_string())
        .collect();
    let want: BTreeSet<String> = ["svc", "dns", "filt", "lossy"]
        .iter()
        .map(|h| lab.ip(h))
        .collect();
    assert_eq!(up, want);
    let stats = run.runstats.expect("runstats");
    assert_eq!(
        (stats.hosts_up, stats.hosts_down, stats.hosts_total),
        (4, 1, 5)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("5 IP addresses (4 hosts up)"), "{stdout}");
    // Without -Pn, a port scan of a down host reports it down and scans nothing.
    let out = lab.portolan(&["-p", "80", "-n", "198.18.0.99"]);
    ok(&out, "scan of a down host");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 IP address (0 hosts up)"), "{stdout}");
}

fn excluded_hosts_are_not_scanned(lab: &Lab) {
    let xml = lab.path("ex.xml");
    let out = lab.portolan(&[
        "-sT",
        "-p",
        "80",
        "-n",
        "-Pn",
        "--exclude",
        "198.18.0.12,198.18.0.13",
        "-oX",
        &xml,
        "198.18.0.10-13",
    ]);
    ok(&out, "portolan --exclude");
    let run = read_xml_file(&xml).expect("XML");
    let seen: Vec<String> = run.hosts.iter().map(|h| h.addr_str().to_string()).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|a| a == "198.18.0.12" || a == "198.18.0.13"),
        "{seen:?}"
    );
}

fn unresolvable_name_is_reported_and_scan_goes_on(lab: &Lab) {
    // The scanner namespace has no route to any resolver, so this fails at once.
    let svc = lab.ip("svc");
    let out = lab.portolan(&["-sT", "-p", "22", "-Pn", "no-such-host.invalid", &svc]);
    ok(&out, "scan with a bad name");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Failed to resolve \"no-such-host.invalid\""),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("22/tcp open  ssh"), "{stdout}");
}

/// SIGINT mid-scan: finished hosts are in the XML, which still validates and says exit=error.
fn interrupt_leaves_valid_outputs(lab: &Lab) {
    let xml = lab.path("int.xml");
    let json = lab.path("int.json");
    let svc = lab.ip("svc");
    // The second host is absent: with -Pn its probes all time out, so it cannot finish
    // before the interrupt, while the first (1000 ports at 1000/s) finishes in about 1 s.
    let down = "198.18.0.99";
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.scan_ns(), BIN])
        .args([
            "-sT",
            "-n",
            "-Pn",
            "-p",
            "1-1000",
            "--max-rate",
            "1000",
            "--max-hostgroup",
            "1",
            "-oX",
            &xml,
            "-oJ",
            &json,
            &svc,
            down,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(2500));
    let pid = child.id() as i32;
    // `ip netns exec` execs the program, so the child's pid is portolan's.
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &xml])
        .output()
        .expect("xmllint");
    ok(&v, "xmllint on interrupted XML");
    let run = read_xml_file(&xml).expect("interrupted XML reads back");
    let stats = run.runstats.clone().expect("runstats written on interrupt");
    assert_eq!(stats.exit, RunExit::Error);
    assert_eq!(
        run.hosts.len(),
        1,
        "the first host finished before the interrupt"
    );
    assert_eq!(run.hosts[0].addr_str(), svc);
    let st = states(&run);
    assert_eq!(
        st[&svc].get(&22).map(String::as_str),
        Some(PortState::Open.as_str())
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json"))
        .expect("interrupted JSON is valid");
    assert_eq!(j["hosts"].as_array().map(|a| a.len()), Some(1));
}

/// -sS over all 65535 ports of the clean hosts: every port in its configured state, and
/// Nmap's reasons (syn-ack, reset, no-response) with the reply TTL.
fn syn_full_range_matches_ground_truth(lab: &Lab) {
    let xml = lab.path("syn-full.xml");
    let hosts = ["svc", "dns", "filt"];
    let ips: Vec<String> = hosts.iter().map(|h| lab.ip(h)).collect();
    let mut args = vec!["-sS", "-T4", "-p-", "-n", "-Pn", "--reason", "-oX", &xml];
    args.extend(ips.iter().map(String::as_str));
    ok(&lab.portolan(&args), "portolan -sS -p-");
    let run = read_xml_file(&xml).expect("our XML reads back");
    assert_eq!(run.scaninfo[0].scan_type, portolan_model::ScanType::Syn);
    let got = states(&run);
    for h in hosts {
        lab.assert_truth(h, &got, 1..=65535);
    }
    let svc = run
        .hosts
        .iter()
        .find(|h| h.addr_str() == ips[0])
        .expect("svc");
    let ssh = svc
        .ports
        .iter()
        .find(|p| p.portid == 22)
        .expect("22 listed");
    assert_eq!((ssh.reason.as_str(), ssh.reason_ttl), ("syn-ack", 64));
    let closed = svc
        .extraports
        .iter()
        .find(|e| e.state == PortState::Closed)
        .expect("closed");
    assert_eq!(closed.reasons[0].reason, "reset");
}

/// The host that drops 3% of its replies and firewalls 4 ports: every port right.
fn syn_lossy_host_keeps_every_port(lab: &Lab) {
    let xml = lab.path("syn-lossy.xml");
    let ip = lab.ip("lossy");
    ok(
        &lab.portolan(&["-sS", "-T4", "-p-", "-n", "-Pn", "-oX", &xml, &ip]),
        "portolan -sS on the lossy host",
    );
    let closed_wrong = lab.assert_lossy(&states(&read_xml_file(&xml).expect("XML")), 1..=65535);
    // The scan says how complete it is: the 4 firewalled ports went unanswered.
    let text = std::fs::read_to_string(&xml).expect("XML text");
    let line = text
        .lines()
        .find(|l| l.starts_with("<output type=\"interactive\">Completeness: "))
        .unwrap_or_else(|| panic!("no completeness in the XML"));
    assert!(
        line.contains(&format!(" {} unanswered", 4 + closed_wrong)),
        "{line}"
    );
}

/// Nmap -sS and Portolan -sS on the same hosts and ports: the same states.
fn syn_same_answers_as_nmap(lab: &Lab) {
    lab.compare_with_nmap("-sS", "1-2000,2222,5000,6379,8080,8443,9999,31337", "syn");
}

/// Never a packet to an excluded address: a counter in the excluded host's own namespace
/// counts everything the scanner sends it while -sS, -sT and -sn sweep the range around it.
fn excluded_host_receives_not_one_packet(lab: &Lab) {
    let ns = format!("{}-filt", lab.prefix);
    let excluded = lab.ip("filt");
    let scanner = lab.truth["scanner_ip"]
        .as_str()
        .expect("scanner ip")
        .to_string();
    let nft = |script: &str| {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(script.as_bytes())?;
                c.wait_with_output()
            })
            .expect("nft");
        assert!(
            o.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    nft(&format!(
        "table ip portolan_count {{\n  chain input {{\n    type filter hook input priority -300;\n    ip saddr {scanner} counter\n  }}\n}}\n"
    ));
    // Sanity: the counter counts (a direct probe of the host, before the real checks).
    let count = || {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "nft",
                "list",
                "table",
                "ip",
                "portolan_count",
            ])
            .output()
            .expect("nft list");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.split("packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no counter in: {text}"))
    };
    ok(
        &lab.portolan(&["-sT", "-Pn", "-n", "-p", "80", &excluded]),
        "direct probe",
    );
    let before = count();
    assert!(before > 0, "the counter saw nothing from a direct probe");
    for scan in [
        vec!["-sS", "-T4", "-Pn", "-p", "1-1000"],
        vec!["-sT", "-T4", "-Pn", "-p", "1-1000"],
        vec!["-sn"],
        vec!["-sn", "-PE"],
        vec!["-sn", "--disable-arp-ping"],
        vec!["-sU", "-Pn", "-p", "53,161,500"],
        vec!["-sS", "-sU", "-Pn", "-p", "22,53"],
    ] {
        let mut args = scan.clone();
        args.extend(["-n", "--exclude", &excluded, "198.18.0.10-13"]);
        ok(&lab.portolan(&args), "scan with --exclude");
        assert_eq!(
            count(),
            before,
            "{scan:?} sent packets to the excluded host"
        );
    }
    // A scope file that says never to touch the host, or does not allow it: the scan is
    // refused before a packet leaves, to it or to anyone.
    let scope = lab.path("scope.toml");
    for text in [
        format!("allow = [\"198.18.0.0/24\"]\nnever = [\"{excluded}\"]\n"),
        "allow = [\"198.18.0.10-11\", \"198.18.0.13\"]\n".to_string(),
    ] {
        std::fs::write(&scope, &text).expect("scope file");
        for scan in [
            vec!["-sS", "-Pn", "-p", "80"],
            vec!["-sT", "-Pn", "-p", "80"],
            vec!["-sn"],
        ] {
            let mut args = scan.clone();
            args.extend(["-n", "--scope", &scope, "198.18.0.10-13"]);
            let o = lab.portolan(&args);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{scan:?} with {text}: not refused"
            );
            assert!(String::from_utf8_lossy(&o.stderr).contains(&excluded));
            assert_eq!(count(), before, "{scan:?} sent packets outside its scope");
        }
    }
    nft("delete table ip portolan_count");
}

/// A host whose replies leave through a 4 Mbit/s token bucket (tbf): a scan faster than
/// that is congested. The SYN scan backs off (rate cuts) and still classifies every port.
fn syn_backs_off_on_a_congested_link(lab: &Lab) {
    let xml = lab.path("syn-slow.xml");
    let ip = lab.ip("slow");
    let out = lab.portolan(&[
        "-d", "-sS", "-T4", "-p", "1-20000", "-n", "-Pn", "-oX", &xml, &ip,
    ]);
    ok(&out, "portolan -sS on the congested host");
    let err = String::from_utf8_lossy(&out.stderr);
    let cuts: u64 = err
        .split(" rate cuts")
        .next()
        .and_then(|l| l.rsplit(", ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate cuts figure in: {err}"));
    assert!(cuts > 0, "never backed off on a congested link: {err}");
    lab.assert_truth(
        "slow",
        &states(&read_xml_file(&xml).expect("XML")),
        1..=20000,
    );
}

/// -PE: every lab host answers ICMP echo, with Nmap's reason and the reply's TTL; the
/// absent address is down.
fn icmp_echo_discovery(lab: &Lab) {
    let xml = lab.path("pe.xml");
    ok(
        &lab.portolan(&[
            "-sn",
            "-PE",
            "-n",
            "-oX",
            &xml,
            "198.18.0.10-14",
            "198.18.0.99",
        ]),
        "portolan -sn -PE",
    );
    let run = read_xml_file(&xml).expect("XML");
    let up: Vec<_> = run.hosts.iter().filter(|h| h.is_up()).collect();
    assert_eq!(up.len(), 5, "{:?}", run.hosts);
    for h in up {
        assert_eq!(
            (h.status.reason.as_str(), h.status.reason_ttl),
            ("echo-reply", 64)
        );
    }
    let stats = run.runstats.expect("runstats");
    assert_eq!((stats.hosts_up, stats.hosts_total), (5, 6));
}

/// -sU on the DNS/SNMP host against nmap -sU on the same ports: the same open ports (DNS
/// and SNMP answer our own payloads), and every port we call closed Nmap calls closed.
fn udp_same_open_ports_as_nmap(lab: &Lab) {
    let ip = lab.ip("dns");
    let ports = "7,53,69,111,123,137,161,162,500,1900,5353,11211";
    let (ours, theirs) = (lab.path("udp-ours.xml"), lab.path("udp-nmap.xml"));
    let base = ["-sU", "-T4", "-p", ports, "-n", "-Pn", &ip];
    let mut a = base.to_vec();
    a.extend(["-oX", &ours]);
    ok(&lab.portolan(&a), "portolan -sU");
    let mut b = base.to_vec();
    b.extend(["-oX", &theirs]);
    ok(&lab.exec("nmap", &b), "nmap -sU");
    let ours = proto_states(&read_xml_file(&ours).expect("our XML"), Protocol::Udp);
    let nmap = proto_states(&read_xml_file(&theirs).expect("Nmap's XML"), Protocol::Udp);
    let (o, n) = (&ours[&ip], &nmap[&ip]);
    let open = |m: &BTreeMap<u16, String>| -> Vec<u16> {
        m.iter()
            .filter(|(_, s)| s.as_str() == "open")
            .map(|(p, _)| *p)
            .collect()
    };
    assert_eq!(open(o), vec![53, 161], "ours: {o:?}");
    assert_eq!(open(o), open(n), "nmap: {n:?}");
    // The target's ICMP rate limit (one port unreachable a second after a burst, per
    // source) decides which silent ports either scanner could call closed; the two scans
    // share that budget, so closed and open|filtered may differ, but nothing else may.
    for (p, s) in o {
        let theirs = n.get(p).map(String::as_str);
        let quiet = ["closed", "open|filtered"];
        if s != "open" {
            assert!(
                quiet.contains(&s.as_str()) && theirs.is_some_and(|t| quiet.contains(&t)),
                "port {p}: ours {s}, nmap {theirs:?}"
            );
        }
    }
    assert!(
        o.values().any(|s| s == "closed"),
        "no port unreachable came back at all: {o:?}"
    );
    assert_eq!(o.len(), 12);
}

/// -sS -sU together: one report with both protocols, each port in its configured state.
fn syn_and_udp_in_one_scan(lab: &Lab) {
    let ip = lab.ip("dns");
    let xml = lab.path("su.xml");
    ok(
        &lab.portolan(&[
            "-sS",
            "-sU",
            "-p",
            "T:22,53,2222,U:53,161",
            "-n",
            "-Pn",
            "-oX",
            &xml,
            &ip,
        ]),
        "portolan -sS -sU",
    );
    let run = read_xml_file(&xml).expect("XML");
    let kinds: Vec<_> = run.scaninfo.iter().map(|i| i.scan_type).collect();
    assert_eq!(
        kinds,
        vec![portolan_model::ScanType::Syn, portolan_model::ScanType::Udp]
    );
    let tcp = &proto_states(&run, Protocol::Tcp)[&ip];
    let udp = &proto_states(&run, Protocol::Udp)[&ip];
    let s = |m: &BTreeMap<u16, String>, p: u16| m.get(&p).cloned().unwrap_or_default();
    assert_eq!(
        (s(tcp, 22), s(tcp, 53), s(tcp, 2222)),
        ("closed".into(), "open".into(), "open".into())
    );
    assert_eq!((s(udp, 53), s(udp, 161)), ("open".into(), "open".into()));
}

/// Discovery as root: ARP on the LAN by default (with MACs), and each raw probe type on
/// its own with ARP disabled, with Nmap's reasons.
fn raw_discovery_probe_types(lab: &Lab) {
    let hosts = ["198.18.0.10-14", "198.18.0.99"];
    let run_sn = |extra: &[&str], tag: &str| -> ScanRun {
        let xml = lab.path(&format!("sn-{tag}.xml"));
        let mut args = vec!["-sn", "-n", "-oX", &xml];
        args.extend(extra);
        args.extend(hosts);
        ok(&lab.portolan(&args), &format!("portolan -sn {extra:?}"));
        read_xml_file(&xml).expect("XML")
    };
    let up = |run: &ScanRun| -> BTreeMap<String, String> {
        run.hosts
            .iter()
            .filter(|h| h.is_up())
            .map(|h| (h.addr_str().to_string(), h.status.reason.clone()))
            .collect()
    };
    let all_up: BTreeSet<String> = (10..=14).map(|i| format!("198.18.0.{i}")).collect();

    let arp = run_sn(&[], "arp");
    let found = up(&arp);
    assert_eq!(found.keys().cloned().collect::<BTreeSet<_>>(), all_up);
    assert!(found.values().all(|r| r == "arp-response"), "{found:?}");
    for h in arp.hosts.iter().filter(|h| h.is_up()) {
        let mac = h.addresses.iter().find(|a| a.addrtype == AddrType::Mac);
        assert!(
            mac.is_some_and(|m| m.addr.len() == 17),
            "no MAC for {}",
            h.addr_str()
        );
    }

    for (flags, reasons) in [
        (
            vec!["--disable-arp-ping"],
            vec!["echo-reply", "reset", "syn-ack", "timestamp-reply"],
        ),
        (vec!["--disable-arp-ping", "-PP"], vec!["timestamp-reply"]),
        (vec!["--disable-arp-ping", "-PA80"], vec!["reset"]),
        (
            vec!["--disable-arp-ping", "-PS22,80"],
            vec!["syn-ack", "reset"],
        ),
        (vec!["--disable-arp-ping", "-PU40125"], vec!["port-unreach"]),
    ] {
        let run = run_sn(&flags, &flags.join(""));
        let found = up(&run);
        assert_eq!(
            found.keys().cloned().collect::<BTreeSet<_>>(),
            all_up,
            "{flags:?}"
        );
        assert!(
            found.values().all(|r| reasons.contains(&r.as_str())),
            "{flags:?}: {found:?}"
        );
    }
    // Linux does not answer address mask requests: -PM alone finds nobody.
    let run = run_sn(&["--disable-arp-ping", "-PM"], "pm");
    assert!(up(&run).is_empty(), "{:?}", up(&run));
}

/// Two shards with one seed: disjoint, and together the whole scan, each port right.
fn shards_split_the_scan(lab: &Lab) {
    let ip = lab.ip("svc");
    let mut union: BTreeMap<u16, String> = BTreeMap::new();
    let mut total = 0;
    for k in ["1/2", "2/2"] {
        let xml = lab.path(&format!("shard{}.xml", &k[..1]));
        ok(
            &lab.portolan(&[
                "-sS", "--shard", k, "--seed", "77", "-p", "1-2000", "-n", "-Pn", "-oX", &xml, &ip,
            ]),
            "portolan --shard",
        );
        let st = states(&read_xml_file(&xml).expect("XML"));
        let part = st.get(&ip).cloned().unwrap_or_default();
        total += part.len();
        assert!(
            part.len() > 900 && part.len() < 1100,
            "shard {k}: {}",
            part.len()
        );
        union.extend(part);
    }
    assert_eq!(total, 2000, "shards overlap");
    assert_eq!(union.len(), 2000);
    lab.assert_truth("svc", &BTreeMap::from([(ip, union)]), 1..=2000);
}

/// --dryrun prints every probe and sends none (the target's nft counter stays still).
fn dry_run_sends_nothing(lab: &Lab) {
    let ns = format!("{}-filt", lab.prefix);
    let ip = lab.ip("filt");
    let nft = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ns, "nft"])
            .args(args)
            .output()
            .expect("nft")
    };
    ok(&nft(&["add", "table", "inet", "dry"]), "nft add table");
    ok(
        &nft(&[
            "add",
            "chain",
            "inet",
            "dry",
            "in",
            "{ type filter hook input priority -300 ; }",
        ]),
        "nft add chain",
    );
    ok(
        &nft(&["add", "rule", "inet", "dry", "in", "counter"]),
        "nft add rule",
    );
    let count = || {
        let text =
            String::from_utf8_lossy(&nft(&["list", "table", "inet", "dry"]).stdout).into_owned();
        text.split("packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no counter in {text}"))
    };
    let before = count();
    for (args, lines) in [
        (vec!["-sS", "-Pn", "-p", "1-1000"], 1000 * 2),
        (vec!["-sS", "-sU", "-Pn", "-p", "1-100"], 200 * 2),
        (vec!["-sn"], 4 * 2),
    ] {
        let mut a = args.clone();
        a.extend(["--dryrun", "--max-retries", "1", &ip]);
        let out = lab.portolan(&a);
        ok(&out, "portolan --dryrun");
        let text = String::from_utf8_lossy(&out.stdout);
        let sent: Vec<&str> = text.lines().filter(|l| l.starts_with("SENT ")).collect();
        assert_eq!(sent.len(), lines, "{args:?}");
        assert!(sent.iter().all(|l| l.contains(&ip)), "{args:?}");
    }
    assert_eq!(count(), before, "a dry run sent packets");
    ok(&nft(&["delete", "table", "inet", "dry"]), "nft delete");
}

/// Ctrl-C during a raw scan: sending stops at once, exit 130, valid XML.
fn raw_interrupt_leaves_valid_outputs(lab: &Lab) {
    let xml = lab.path("raw-int.xml");
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.scan_ns(), BIN])
        .args([
            "-sS",
            "-n",
            "-Pn",
            "-p-",
            "--max-rate",
            "2000",
            "-oX",
            &xml,
            "198.18.0.99",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let signalled = Instant::now();
    let out = child.wait_with_output().expect("wait");
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "took {:?} to stop",
        signalled.elapsed()
    );
    assert_eq!(out.status.code(), Some(130));
    let v = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &xml])
        .output()
        .expect("xmllint");
    ok(&v, "xmllint on interrupted raw-scan XML");
    let run = read_xml_file(&xml).expect("XML");
    assert_eq!(run.runstats.expect("runstats").exit, RunExit::Error);
}

/// `--resume`: a SYN scan, a connect scan and a UDP scan, interrupted midway (SIGINT) and
/// resumed from their XML, end with the same states as an uninterrupted run; so does a
/// connect scan resumed from its grepable output (-oG). The UDP scan is kept small (seven
/// ports on three hosts, probes 200 ms apart: about 4.5 s) for the targets' ICMP rate
/// limits, which also make its silent ports closed or open|filtered by chance: there the
/// open ports must agree, and every port be one or the other. (Raw scans run their hosts
/// together, so an interrupted SYN or UDP scan has every host cut short.)
fn resume_finishes_interrupted_scans(lab: &Lab) {
    let tcp = ["198.18.0.10", "198.18.0.11", "198.18.0.12"].map(String::from);
    let udp = [lab.ip("svc"), lab.ip("dns"), lab.ip("db")];
    let udp_scan = [
        "-sU",
        "-p",
        "7,53,69,123,161,500,11211",
        "--scan-delay",
        "200ms",
    ];
    let case = |name, scan, targets, after_ms, grepable| ResumeCase {
        name,
        scan,
        targets,
        after_ms,
        grepable,
    };
    let scans = [
        case(
            "syn",
            &["-sS", "-p", "1-3000", "--max-rate", "3000"],
            &tcp,
            1500,
            false,
        ),
        case(
            "connect",
            &["-sT", "-p", "1-1500", "--max-rate", "1500"],
            &tcp,
            1500,
            false,
        ),
        case("udp", &udp_scan, &udp, 2300, false),
        // One host at a time (1 s each; connect scans keep to --max-hostgroup): the first
        // is finished when interrupted, and is carried over from the -oG file.
        case(
            "connect-grepable",
            &[
                "-sT",
                "-p",
                "1-1500",
                "--max-rate",
                "1500",
                "--max-hostgroup",
                "1",
            ],
            &tcp,
            1500,
            true,
        ),
    ];
    for ResumeCase {
        name,
        scan,
        targets,
        after_ms,
        grepable,
    } in scans
    {
        let began = Instant::now();
        let (whole, cut, cut_g) = (
            lab.path(&format!("{name}-whole.xml")),
            lab.path(&format!("{name}-cut.xml")),
            lab.path(&format!("{name}-cut.gnmap")),
        );
        let mut args: Vec<&str> = scan.to_vec();
        args.extend(["-n", "-Pn"]);
        let mut whole_args = args.clone();
        whole_args.extend(["-oX", &whole]);
        whole_args.extend(targets.iter().map(String::as_str));
        ok(&lab.portolan(&whole_args), &format!("{name}: whole run"));
        let mut cut_args = args.clone();
        cut_args.extend(["-oX", &cut, "-oG", &cut_g]);
        cut_args.extend(targets.iter().map(String::as_str));
        let child = spawn_scan(lab, &cut_args);
        std::thread::sleep(Duration::from_millis(after_ms));
        signal(child.id(), "INT");
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(130),
            "{name}: not interrupted in time"
        );
        let interrupted = read_xml_file(&cut).expect("interrupted XML");
        assert_eq!(interrupted.runstats.expect("runstats").exit, RunExit::Error);
        let text = std::fs::read_to_string(&cut_g).expect("interrupted -oG");
        assert!(text.contains("# Portolan stopped at "), "{name}: {text}");
        let from = if grepable { &cut_g } else { &cut };
        let o = lab.portolan(&["--resume", from]);
        ok(&o, &format!("{name}: --resume"));
        let err = String::from_utf8_lossy(&o.stderr);
        // One host at a time: the first was finished, and is carried over.
        if scan.contains(&"--max-hostgroup") {
            assert!(
                !err.contains(": 0 hosts finished are kept"),
                "{name}: no finished host to carry over: {err}"
            );
        }
        let (w, r) = (
            read_xml_file(&whole).expect("whole"),
            read_xml_file(&cut).expect("resumed"),
        );
        assert_eq!(
            r.runstats.as_ref().expect("runstats").exit,
            RunExit::Success,
            "{name}"
        );
        assert_eq!(r.hosts.len(), w.hosts.len(), "{name}: hosts");
        if name == "udp" {
            assert_udp_agrees(&w, &r, 7, name);
            let open = |ip: &str| -> Vec<u16> {
                r.hosts
                    .iter()
                    .filter(|h| h.addr_str() == ip)
                    .flat_map(|h| &h.ports)
                    .filter(|p| p.state == PortState::Open)
                    .map(|p| p.portid)
                    .collect()
            };
            assert_eq!(open(&udp[1]), [53, 161], "udp: dns");
            assert_eq!(open(&udp[2]), [11211], "udp: db");
        } else if grepable {
            // Hosts carried from -oG have their collapsed ports as a count only.
            assert_eq!(
                state_counts(&r),
                state_counts(&w),
                "{name}: states after --resume"
            );
            let v = Command::new("xmllint")
                .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &cut])
                .output()
                .expect("xmllint");
            ok(&v, &format!("{name}: xmllint on the XML resumed from -oG"));
        } else {
            assert_eq!(states(&r), states(&w), "{name}: states after --resume");
        }
        let g = portolan_report::read_grepable(std::fs::read(&cut_g).expect("-oG").as_slice())
            .expect("resumed -oG reads");
        assert_eq!(
            g.runstats.expect("trailer").exit,
            RunExit::Success,
            "{name}"
        );
        assert_eq!(g.hosts.len(), w.hosts.len(), "{name}: hosts in -oG");
        eprintln!(
            "resume {name}: {:.1}s ({})",
            began.elapsed().as_secs_f64(),
            err.trim()
        );
    }
    resume_from_nmaps_logs(lab, &tcp);
}

/// Nmap's own -oG and -oN files, cut off by SIGINT (Nmap then writes no last line): each
/// is resumed, Nmap's command line run by Portolan for the hosts left, and ends with the
/// states of the uninterrupted connect scan above.
fn resume_from_nmaps_logs(lab: &Lab, targets: &[String; 3]) {
    let began = Instant::now();
    let (g, n) = (lab.path("nmap-cut.gnmap"), lab.path("nmap-cut.nmap"));
    let scan = [
        "-sT",
        "-p",
        "1-1500",
        "--max-rate",
        "1500",
        "--max-hostgroup",
        "1",
        "-n",
        "-Pn",
        "-oG",
        &g,
        "-oN",
        &n,
    ];
    let child = Command::new("ip")
        .args(["netns", "exec", &lab.scan_ns(), "nmap"])
        .args(scan)
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nmap");
    std::thread::sleep(Duration::from_millis(2000));
    signal(child.id(), "INT");
    child.wait_with_output().expect("wait for nmap");
    let (cut_g, cut_n) = (
        std::fs::read(&g).expect("Nmap's -oG"),
        std::fs::read(&n).expect("Nmap's -oN"),
    );
    assert!(
        !String::from_utf8_lossy(&cut_g).contains("# Nmap done"),
        "Nmap was not interrupted in time"
    );
    let whole = read_xml_file(lab.path("connect-whole.xml")).expect("connect-whole.xml");
    // Each resume writes both files again (Nmap's command line names both): each starts
    // from what Nmap left.
    for (from, what) in [(&g, "-oG"), (&n, "-oN")] {
        std::fs::write(&g, &cut_g).expect("restore -oG");
        std::fs::write(&n, &cut_n).expect("restore -oN");
        let o = lab.portolan(&["--resume", from]);
        ok(&o, &format!("--resume from Nmap's {what}"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains(": 0 hosts finished are kept"),
            "{what}: no finished host carried over: {err}"
        );
        for out in [&g, &n] {
            let r = portolan_report::read_log(out).expect("resumed log reads");
            assert_eq!(
                r.runstats.as_ref().map(|s| s.exit),
                Some(RunExit::Success),
                "{what}: {out}"
            );
            assert!(r.args.starts_with("nmap -sT"), "{what}: {}", r.args);
            assert_eq!(
                state_counts(&r),
                state_counts(&whole),
                "{what}: {out} after --resume"
            );
        }
        eprintln!("resume from Nmap's {what}: {}", err.trim());
    }
    eprintln!(
        "resume from Nmap's logs: {:.1}s",
        began.elapsed().as_secs_f64()
    );
}

/// One scan of the resume scenario: interrupted `after_ms` in, resumed from its XML, or
/// from its -oG file when `grepable`.
struct ResumeCase<'a> {
    name: &'a str,
    scan: &'a [&'a str],
    targets: &'a [String; 3],
    after_ms: u64,
    grepable: bool,
}

/// Each host's open ports, and how many ports it has in each state, listed or collapsed.
fn state_counts(run: &ScanRun) -> BTreeMap<String, (Vec<u16>, BTreeMap<PortState, usize>)> {
    let all = [
        PortState::Open,
        PortState::Closed,
        PortState::Filtered,
        PortState::Unfiltered,
        PortState::OpenFiltered,
        PortState::ClosedFiltered,
    ];
    run.hosts
        .iter()
        .map(|h| {
            let open = h
                .ports
                .iter()
                .filter(|p| p.state == PortState::Open)
                .map(|p| p.portid)
                .collect();
            let counts = all
                .iter()
                .map(|s| (*s, h.count_state(*s)))
                .filter(|(_, n)| *n > 0)
                .collect();
            (h.addr_str().to_string(), (open, counts))
        })
        .collect()
}

/// Two UDP scans of `ports` ports a host agree: the same open ports, and every other port
/// closed or open|filtered (which one, the targets' ICMP rate limits decide).
fn assert_udp_agrees(a: &ScanRun, b: &ScanRun, ports: usize, what: &str) {
    let (a, b) = (
        proto_states(a, Protocol::Udp),
        proto_states(b, Protocol::Udp),
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: hosts"
    );
    for (ip, sa) in &a {
        let sb = &b[ip];
        let open = |m: &BTreeMap<u16, String>| -> Vec<u16> {
            m.iter()
                .filter(|(_, s)| *s == "open")
                .map(|(p, _)| *p)
                .collect()
        };
        assert_eq!(open(sa), open(sb), "{what}: {ip}: {sa:?} / {sb:?}");
        for m in [sa, sb] {
            assert_eq!(m.len(), ports, "{what}: {ip}: {m:?}");
            assert!(
                m.values()
                    .all(|s| ["open", "closed", "open|filtered"].contains(&s.as_str())),
                "{what}: {ip}: {m:?}"
            );
        }
    }
}

/// Starts portolan in the scanner namespace with stderr captured.
fn spawn_scan(lab: &Lab, args: &[&str]) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.scan_ns(), BIN])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Sends `sig` (e.g. "TERM") to `pid`.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// The audit log at `path` holds one line: the scan, ended by `signal` with exit `code`.
fn assert_audit_interrupted(path: &str, signal: &str, code: u8, what: &str) {
    let text = std::fs::read_to_string(path).expect("audit log written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: {text}");
    let rec: Value = serde_json::from_str(lines[0]).expect("audit line is JSON");
    let outcome = rec["outcome"].as_str().unwrap_or_default();
    assert!(
        outcome.starts_with(&format!("interrupted by {signal}")),
        "{what}: {rec}"
    );
    assert_eq!(rec["exit_code"], code, "{what}: {rec}");
}

/// The store at `db` holds one scan, marked incomplete, with `up` hosts up.
fn assert_store_incomplete(db: &str, up: u32, what: &str) {
    let o = Command::new(BIN)
        .args(["history", "--db", db, "--json"])
        .output()
        .expect("portolan history");
    ok(&o, &format!("history of {what}"));
    let h: Value = serde_json::from_slice(&o.stdout).expect("history --json");
    let scans = h.as_array().expect("a list of scans");
    assert_eq!(scans.len(), 1, "{what}: {h}");
    assert_eq!(scans[0]["complete"], false, "{what}: {h}");
    assert_eq!(scans[0]["hosts_up"], up, "{what}: {h}");
}

/// What an interrupted scan left must be whole: the XML valid against Nmap's DTD, ending
/// in exit="error" with a message naming `signal`, its up count that of the hosts
/// written; the JSON a document. Returns the run read back.
fn assert_valid_interrupted(xml: &str, json: &str, signal: &str, what: &str) -> ScanRun {
    let v = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", xml])
        .output()
        .expect("xmllint");
    ok(&v, &format!("xmllint on {what}"));
    let run = read_xml_file(xml).unwrap_or_else(|e| panic!("{what}: XML reads back: {e}"));
    let stats = run.runstats.clone().expect("runstats written");
    assert_eq!(stats.exit, RunExit::Error, "{what}");
    let msg = stats.errormsg.clone().unwrap_or_default();
    assert!(msg.contains(signal), "{what}: errormsg {msg:?}");
    let written_up = run
        .hosts
        .iter()
        .filter(|h| h.status.state == portolan_model::HostState::Up)
        .count();
    assert_eq!(
        stats.hosts_up as usize, written_up,
        "{what}: the up count disagrees with the hosts written"
    );
    let text = std::fs::read_to_string(json).expect("json written");
    let j: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: JSON invalid: {e}"));
    assert_eq!(
        j["hosts"].as_array().map(Vec::len),
        Some(run.hosts.len()),
        "{what}: JSON and XML hold the same hosts"
    );
    run
}

/// SIGTERM (timeout, systemd, containers) and SIGHUP stop each scan type as SIGINT
/// does: exit 128 + the signal, outputs closed validly, naming the signal.
fn signals_leave_valid_outputs(lab: &Lab) {
    let (svc, dns, hostile) = (lab.ip("svc"), lab.ip("dns"), lab.ip("hostile"));
    // Each one still busy a second in: full ranges at a low rate; -sV waits on a port
    // that never answers.
    let scans: [(&str, Vec<&str>); 4] = [
        ("sT", vec!["-sT", "-p-", "--max-rate", "2000", &svc]),
        ("sS", vec!["-sS", "-p-", "--max-rate", "2000", &svc]),
        ("sU", vec!["-sU", "-p-", "--max-rate", "500", &dns]),
        ("sV", vec!["-sV", "-p", "22,7002", &svc, &hostile]),
    ];
    for (sig, code) in [("TERM", 143), ("HUP", 129)] {
        for (name, args) in &scans {
            let what = format!("SIG{sig} during -{name}");
            let xml = lab.path(&format!("sig-{sig}-{name}.xml"));
            let json = lab.path(&format!("sig-{sig}-{name}.json"));
            let db = lab.path(&format!("sig-{sig}-{name}.db"));
            let audit = lab.path(&format!("sig-{sig}-{name}.audit"));
            let mut all = vec![
                "-n",
                "-Pn",
                "-oX",
                &xml,
                "-oJ",
                &json,
                "--db",
                &db,
                "--audit-log",
                &audit,
            ];
            all.extend(args.iter().copied());
            let child = spawn_scan(lab, &all);
            std::thread::sleep(Duration::from_millis(1000));
            signal(child.id(), sig);
            let signalled = Instant::now();
            let out = child.wait_with_output().expect("wait");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{what}: {err}");
            assert!(
                signalled.elapsed() < Duration::from_secs(2),
                "{what}: took {:?} to stop",
                signalled.elapsed()
            );
            assert!(
                err.contains(&format!("caught SIG{sig} signal")),
                "{what}: {err}"
            );
            let run = assert_valid_interrupted(&xml, &json, &format!("SIG{sig}"), &what);
            let up = run.runstats.as_ref().map_or(0, |r| r.hosts_up);
            assert_store_incomplete(&db, up, &what);
            assert_audit_interrupted(&audit, &format!("SIG{sig}"), code as u8, &what);
            if *name == "sS" || *name == "sT" {
                // A second into a -p- of a live host, answers have come: the host is
                // written with them, not dropped.
                assert_eq!(run.hosts.len(), 1, "{what}: the host answered");
            }
        }
    }
}

/// A second signal does not wait for the scan to wind down (the raw scan's drain): the
/// process exits at once with its outputs valid up to the last host written.
fn second_signal_stops_at_once(lab: &Lab) {
    let xml = lab.path("sig2.xml");
    let json = lab.path("sig2.json");
    let db = lab.path("sig2.db");
    let audit = lab.path("sig2.audit");
    let svc = lab.ip("svc");
    let child = spawn_scan(
        lab,
        &[
            "-sS",
            "-n",
            "-Pn",
            "-p-",
            "--max-rate",
            "2000",
            "-oX",
            &xml,
            "-oJ",
            &json,
            "--db",
            &db,
            "--audit-log",
            &audit,
            &svc,
        ],
    );
    std::thread::sleep(Duration::from_millis(1000));
    signal(child.id(), "TERM");
    // Within the raw scan's 100 ms of reading late answers.
    std::thread::sleep(Duration::from_millis(20));
    signal(child.id(), "INT");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(143),
        "the first signal's code: {err}"
    );
    assert!(
        err.contains("caught SIGINT signal again, stopping now"),
        "the second signal was not heard: {err}"
    );
    let run = assert_valid_interrupted(&xml, &json, "SIG", "a second signal");
    let up = run.runstats.as_ref().map_or(0, |r| r.hosts_up);
    assert_store_incomplete(&db, up, "a second signal");
    // Ended from within the run, since main never gets the process back.
    assert_audit_interrupted(&audit, "SIGTERM", 143, "a second signal");
    let text = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(text.contains("stopped at once by SIGINT"), "{text}");
}

/// Regression: a raw scan whose range held the on-link broadcast address (198.18.0.255)
/// aborted with "connect (UDP, for source address): Permission denied" and left invalid
/// XML. It is skipped, with and without host discovery, and the rest is scanned.
fn raw_scan_skips_the_broadcast_address(lab: &Lab) {
    let variants: [&[&str]; 2] = [&["-Pn"], &["--disable-arp-ping", "-PE"]];
    for (k, extra) in variants.iter().enumerate() {
        let xml = lab.path(&format!("bcast{k}.xml"));
        let mut args = vec!["-sS", "-n", "-p", "80", "-oX", &xml];
        args.extend(extra.iter().copied());
        args.push("198.18.0.250-255");
        let out = lab.portolan(&args);
        ok(
            &out,
            &format!("scan of a range with the broadcast address {extra:?}"),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("Permission denied"), "{extra:?}: {err}");
        let v = Command::new("xmllint")
            .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &xml])
            .output()
            .expect("xmllint");
        ok(&v, "xmllint on the broadcast-range XML");
        let run = read_xml_file(&xml).expect("XML");
        let stats = run.runstats.clone().expect("runstats");
        assert_eq!(stats.exit, RunExit::Success);
        assert_eq!(stats.hosts_total, 6, "{extra:?}");
        assert!(
            run.hosts.iter().all(|h| h.addr_str() != "198.18.0.255"),
            "{extra:?}: the broadcast address was reported up"
        );
        if extra[0] == "-Pn" {
            // Assumed up, all but the broadcast address.
            assert_eq!(run.hosts.len(), 5, "{extra:?}");
            assert!(err.contains("198.18.0.255"), "{extra:?}: {err}");
        }
    }
}

/// -6: SYN, connect and UDP port scans and discovery of the IPv6 host.
fn ipv6_scans(lab: &Lab) {
    let ip6 = lab.host("filt")["ip6"].as_str().expect("ip6").to_string();
    for scan in ["-sS", "-sT"] {
        let xml = lab.path(&format!("v6{scan}.xml"));
        ok(
            &lab.portolan(&[
                "-6",
                scan,
                "-p",
                "22,80,81,135,8443",
                "-n",
                "-Pn",
                "-oX",
                &xml,
                &ip6,
            ]),
            "portolan -6",
        );
        let st = states(&read_xml_file(&xml).expect("XML"));
        let got: Vec<(u16, &str)> = st[&ip6].iter().map(|(p, s)| (*p, s.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (22, "closed"),
                (80, "open"),
                (81, "filtered"),
                (135, "filtered"),
                (8443, "open")
            ],
            "{scan}"
        );
    }
    let xml = lab.path("v6-sn.xml");
    ok(
        &lab.portolan(&["-6", "-sn", "-n", "-oX", &xml, &ip6, "2001:2::99"]),
        "portolan -6 -sn",
    );
    let run = read_xml_file(&xml).expect("XML");
    let up: Vec<&str> = run
        .hosts
        .iter()
        .filter(|h| h.is_up())
        .map(|h| h.addr_str())
        .collect();
    assert_eq!(up, vec![ip6.as_str()]);
    let host = run.hosts.iter().find(|h| h.is_up()).expect("up host");
    assert_eq!(host.status.reason, "nd-response");
    assert!(host.addresses.iter().any(|a| a.addrtype == AddrType::Mac));
    // Without neighbour discovery, the IP probes find it too.
    let xml = lab.path("v6-sn-ip.xml");
    ok(
        &lab.portolan(&["-6", "-sn", "--disable-arp-ping", "-n", "-oX", &xml, &ip6]),
        "portolan -6 -sn --disable-arp-ping",
    );
    let run = read_xml_file(&xml).expect("XML");
    assert!(run.hosts[0].is_up());
    assert!(
        ["echo-reply", "syn-ack", "reset"].contains(&run.hosts[0].status.reason.as_str()),
        "{:?}",
        run.hosts[0].status
    );
    let xml = lab.path("v6-su.xml");
    ok(
        &lab.portolan(&["-6", "-sU", "-p", "53,161", "-n", "-Pn", "-oX", &xml, &ip6]),
        "portolan -6 -sU",
    );
    let udp = proto_states(&read_xml_file(&xml).expect("XML"), Protocol::Udp);
    assert_eq!(udp[&ip6].get(&53).map(String::as_str), Some("closed"));
}

/// Runs Portolan with `args` while tcpdump captures, in the scanner namespace, the SYNs it
/// sends to `dst`; returns their (time in seconds, destination port), and Portolan's output.
fn captured_syns(lab: &Lab, dst: &str, args: &[&str]) -> (Vec<(f64, u16)>, Output) {
    let pcap = lab.path("cap.pcap");
    let filter = format!("dst host {dst} and tcp[tcpflags] & tcp-syn != 0");
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.scan_ns(),
            "tcpdump",
            "-i",
            "eth0",
            "-n",
            "-U",
        ])
        // Immediate mode: without it libpcap hands packets over in blocks, and the last
        // block is lost when tcpdump is interrupted.
        .args(["--immediate-mode", "-w", &pcap, &filter])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    // tcpdump says "listening on" once its socket is open.
    let mut err = dump.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&seen).contains("listening on") {
        use std::io::Read;
        let n = err.read(&mut buf).unwrap_or(0);
        assert!(
            n > 0 && t0.elapsed() < Duration::from_secs(10),
            "tcpdump did not start"
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let out = lab.portolan(args);
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-INT", &dump.id().to_string()])
        .status();
    let _ = dump.wait();
    let read = Command::new("tcpdump")
        .args(["-r", &pcap, "-nn", "-tt"])
        .output()
        .expect("tcpdump -r");
    let text = String::from_utf8_lossy(&read.stdout).into_owned();
    if std::env::var("PORTOLAN_LAB_DEBUG").is_ok() {
        eprintln!(
            "capture: {} lines; stderr: {}",
            text.lines().count(),
            String::from_utf8_lossy(&read.stderr)
        );
        eprintln!("portolan: {}", String::from_utf8_lossy(&out.stderr));
    }
    let syns = text
        .lines()
        .filter_map(|l| {
            // "1795352707.123456 IP 198.18.0.1.61234 > 198.18.0.12.135: Flags [S], ..."
            let mut f = l.split_whitespace();
            let t: f64 = f.next()?.parse().ok()?;
            let dst = f.nth(3)?.trim_end_matches(':');
            let port: u16 = dst.rsplit('.').next()?.parse().ok()?;
            Some((t, port))
        })
        .collect();
    (syns, out)
}

/// --max-retries, --max-rate, --scan-delay and --host-timeout, as a capture of the SYNs on
/// the scanner's wire sees them.
fn timing_flags_show_on_the_wire(lab: &Lab) {
    let filt = lab.ip("filt");
    // Firewalled ports never answer: --max-retries 0 sends each exactly once.
    let (syns, out) = captured_syns(
        lab,
        &filt,
        &[
            "-sS",
            "-Pn",
            "-n",
            "-p",
            "135,139,445",
            "--max-retries",
            "0",
            &filt,
        ],
    );
    ok(&out, "--max-retries 0");
    let mut ports: Vec<u16> = syns.iter().map(|s| s.1).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![135, 139, 445], "{syns:?}");
    // ... and --max-retries 3 at most 4 times (silence is not chased beyond one retry).
    let (syns, _) = captured_syns(
        lab,
        &filt,
        &["-sS", "-Pn", "-n", "-p", "135", "--max-retries", "3", &filt],
    );
    assert!((2..=4).contains(&syns.len()), "{syns:?}");

    let svc = lab.ip("svc");
    // --max-rate 100: 300 probes take at least 2.99 s, and no second holds more than 101.
    let (syns, out) = captured_syns(
        lab,
        &svc,
        &[
            "-d",
            "-sS",
            "-Pn",
            "-n",
            "-p",
            "1-300",
            "--max-rate",
            "100",
            &svc,
        ],
    );
    ok(&out, "--max-rate 100");
    assert_eq!(
        syns.len(),
        300,
        "every port answers, no retransmission: {:?}",
        &syns[..5]
    );
    let span = syns[syns.len() - 1].0 - syns[0].0;
    assert!(span >= 2.95, "300 probes at 100/s took {span:.3} s");
    for (i, s) in syns.iter().enumerate() {
        let in_window = syns[i..].iter().take_while(|t| t.0 - s.0 < 1.0).count();
        assert!(in_window <= 101, "{in_window} probes within one second");
    }
    // --scan-delay 20ms: every gap at least 20 ms (the capture's clock, with 1 ms slack).
    let (syns, out) = captured_syns(
        lab,
        &svc,
        &[
            "-sS",
            "-Pn",
            "-n",
            "-p",
            "1-40",
            "--scan-delay",
            "20ms",
            &svc,
        ],
    );
    ok(&out, "--scan-delay");
    assert_eq!(syns.len(), 40);
    for w in syns.windows(2) {
        assert!(w[1].0 - w[0].0 >= 0.019, "gap {:.4} s", w[1].0 - w[0].0);
    }
    // --host-timeout 1s on a scan that would take two minutes: it stops after a second.
    let (syns, out) = captured_syns(
        lab,
        &svc,
        &[
            "-sS",
            "-Pn",
            "-n",
            "-p-",
            "--max-rate",
            "500",
            "--host-timeout",
            "1s",
            &svc,
        ],
    );
    ok(&out, "--host-timeout");
    assert!(String::from_utf8_lossy(&out.stderr).contains("due to host timeout"));
    let span = syns.last().map_or(0.0, |l| l.0) - syns.first().map_or(0.0, |f| f.0);
    // The timeout is checked between probes, and a busy machine may add a little.
    assert!(span <= 1.2, "sent for {span:.3} s");
    assert!((400..=510).contains(&syns.len()), "{} probes", syns.len());
}

/// The lab's known services, on the hosts that run them (serial, 198.18.0.17: services
/// that serve one client at a time, on 22, 199 and 8000).
const KNOWN_SERVICES: &str = "21,22,53,80,199,443,3306,5432,6379,8000,11211";
const SERVICE_HOSTS: [&str; 5] = [
    "198.18.0.10",
    "198.18.0.11",
    "198.18.0.15",
    "198.18.0.16",
    "198.18.0.17",
];

/// (ip, port) -> (service name with ssl/ prefix, product, version), for probed ports.
fn services(run: &ScanRun) -> BTreeMap<(String, u16), (String, String, String)> {
    let mut out = BTreeMap::new();
    for h in &run.hosts {
        for p in h.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
            let Some(s) = &p.service else { continue };
            if s.method != portolan_model::ServiceMethod::Probed {
                continue;
            }
            let tunnel = if s.tunnel.as_deref() == Some("ssl") {
                "ssl/"
            } else {
                ""
            };
            out.insert(
                (h.addr_str().to_string(), p.portid),
                (
                    format!("{tunnel}{}", s.name),
                    s.product.clone().unwrap_or_default(),
                    s.version.clone().unwrap_or_default(),
                ),
            );
        }
    }
    out
}

/// -sV against nmap -sV with the same (installed) database on the lab's known services:
/// the same service, product and version on every port Nmap identifies.
fn version_detection_agrees_with_nmap(lab: &Lab) {
    let (ours, theirs) = (lab.path("sv-ours.xml"), lab.path("sv-nmap.xml"));
    let mut base = vec!["-sV", "-T4", "-n", "-Pn", "-p", KNOWN_SERVICES];
    base.extend(SERVICE_HOSTS);
    let mut a = base.clone();
    a.extend(["-oX", &ours]);
    ok(&lab.portolan(&a), "portolan -sV");
    let mut b = base.clone();
    b.extend(["-oX", &theirs]);
    ok(&lab.exec("nmap", &b), "nmap -sV");
    let ours = services(&read_xml_file(&ours).expect("our XML"));
    let nmap = services(&read_xml_file(&theirs).expect("Nmap's XML"));
    assert!(nmap.len() >= 9, "Nmap identified only {nmap:?}");
    for (port, want) in &nmap {
        assert_eq!(ours.get(port), Some(want), "{port:?}");
    }
    // The services that serve one client at a time are among them.
    for port in [22, 199, 8000] {
        let key = ("198.18.0.17".to_string(), port);
        assert!(
            nmap.contains_key(&key),
            "Nmap did not identify {key:?}: {nmap:?}"
        );
    }
}

// ---- Service fingerprints (issue 13) ------------------------------------------------------

/// One service fingerprint as compared: the header's fields, with the values that differ
/// between runs and tools masked (V, D, Time, P), then each probe's answer as (probe,
/// length, escaped text). A length of 4096 bytes or more shows as `>=1000`: Nmap stops
/// reading at 4096 bytes, so past that its count is whatever its last read brought.
type FpFields = (Vec<String>, Vec<(String, String, String)>);

fn fp_fields(fp: &str) -> FpFields {
    let body = fp
        .strip_suffix(';')
        .unwrap_or_else(|| panic!("no final ';': {fp}"));
    let (head, mut rest) = body.split_once("%r(").unwrap_or((body, ""));
    let header = head
        .split(['%', ':'])
        .map(|f| match f.split_once('=') {
            Some((k @ ("V" | "D" | "Time" | "P"), _)) => format!("{k}=*"),
            _ => f.to_string(),
        })
        .collect();
    let mut answers = Vec::new();
    while !rest.is_empty() {
        let (probe, r) = rest.split_once(',').expect("probe name");
        let (len, r) = r.split_once(",\"").expect("length");
        // The text runs to the first unescaped quote.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in r.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated answer in {fp}"));
        let len = match u32::from_str_radix(len, 16) {
            Ok(n) if n >= 4096 => ">=1000".to_string(),
            _ => len.to_string(),
        };
        answers.push((probe.to_string(), len, r[..end].to_string()));
        rest = r[end + 1..].strip_prefix(')').expect("')' after an answer");
        rest = rest.strip_prefix("%r(").unwrap_or(rest);
    }
    (header, answers)
}

/// The fingerprint block of normal output: its first line, the separators, and each
/// fingerprint as printed (wrapped).
fn fp_block(normal: &str) -> (String, usize, Vec<String>) {
    let mut lines = normal
        .lines()
        .skip_while(|l| !l.contains(" unrecognized despite returning data."));
    let Some(first) = lines.next() else {
        return (String::new(), 0, Vec::new());
    };
    let mut seps = 0;
    let mut fps: Vec<String> = Vec::new();
    for l in lines {
        if l.starts_with("==============NEXT SERVICE FINGERPRINT") {
            seps += 1;
        } else if l.starts_with("SF-Port") {
            fps.push(l.to_string());
        } else if let (true, Some(fp)) = (l.starts_with("SF:"), fps.last_mut()) {
            fp.push('\n');
            fp.push_str(l);
        } else {
            break;
        }
    }
    (first.to_string(), seps, fps)
}

/// Nmap's wrapping, checked on both tools' output: lines of 74 characters (`SF:` included)
/// but the last, which may have one more for the final `;`.
fn assert_wrapped_as_nmap(fp: &str, who: &str) {
    let lines: Vec<&str> = fp.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let n = l.chars().count();
        assert!(
            (!last && n == 74) || (last && (n <= 74 || (n == 75 && l.ends_with(';')))),
            "{who}: line {i} of {n} characters in\n{fp}"
        );
    }
}

/// The servicefp attribute of every port that has one: `addr:port -> fingerprint`.
fn xml_fps(run: &ScanRun) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for h in &run.hosts {
        for p in &h.ports {
            if let Some(fp) = p.service.as_ref().and_then(|s| s.servicefp.clone()) {
                out.insert(format!("{}:{}", h.addr_str(), p.portid), fp);
            }
        }
    }
    out
}

/// -sV on services that no match line names (a banner, an endless stream, binary garbage,
/// a TLS port whose handshake fails, a silent port): Portolan prints the same service
/// fingerprints as Nmap, in normal output and in XML, but for the values of the date, time,
/// version and platform (and lengths past 4096 bytes).
fn service_fingerprints_agree_with_nmap(lab: &Lab) {
    let (dns, hostile) = (lab.ip("dns"), lab.ip("hostile"));
    let args = [
        "-sV",
        "-T4",
        "-n",
        "-Pn",
        "-p",
        "2222,9999,7001,7003,7004",
        &dns,
        &hostile,
    ];
    let mut outs = Vec::new();
    for (who, ours) in [("ours", true), ("nmap", false)] {
        let (normal, xml) = (
            lab.path(&format!("sf-{who}.nmap")),
            lab.path(&format!("sf-{who}.xml")),
        );
        let mut a = args.to_vec();
        a.extend(["-oN", &normal, "-oX", &xml]);
        let t = Instant::now();
        let out = if ours {
            lab.portolan(&a)
        } else {
            lab.exec("nmap", &a)
        };
        ok(&out, &format!("{who} -sV"));
        eprintln!("  {who}: {:.1}s", t.elapsed().as_secs_f64());
        let normal = std::fs::read_to_string(&normal).expect("normal output");
        let run = read_xml_file(&xml).expect("XML");
        outs.push((who, normal, xml_fps(&run)));
    }
    let (_, nmap_normal, nmap_xml) = &outs[1];
    let (_, our_normal, our_xml) = &outs[0];
    assert!(
        nmap_xml.len() >= 3,
        "Nmap printed fewer fingerprints than the lab expects: {nmap_xml:?}"
    );
    let (nmap_first, nmap_seps, nmap_fps) = fp_block(nmap_normal);
    let (our_first, our_seps, our_fps) = fp_block(our_normal);
    assert_eq!(our_first, nmap_first);
    assert_eq!(our_seps, nmap_seps);
    assert_eq!(
        our_fps.len(),
        nmap_fps.len(),
        "fingerprints in normal output"
    );
    for (who, fps, xml) in [("nmap", &nmap_fps, nmap_xml), ("ours", &our_fps, our_xml)] {
        for fp in fps.iter() {
            assert_wrapped_as_nmap(fp, who);
            // Normal output's text, unwrapped, is the XML attribute of its port.
            let one_line = fp.replace("\nSF:", "");
            assert!(
                xml.values().any(|x| *x == one_line),
                "{who}: no XML servicefp is {one_line}"
            );
        }
    }
    for (n, o) in nmap_fps.iter().zip(&our_fps) {
        assert_eq!(
            fp_fields(&o.replace("\nSF:", "")),
            fp_fields(&n.replace("\nSF:", "")),
            "\nnmap: {n}\nours: {o}"
        );
    }
    assert_eq!(
        our_xml.keys().collect::<Vec<_>>(),
        nmap_xml.keys().collect::<Vec<_>>()
    );
    for (port, want) in nmap_xml {
        assert_eq!(fp_fields(&our_xml[port]), fp_fields(want), "{port}");
    }
}

// ---- OS detection (issue 12) -------------------------------------------------------------

/// The hosts -O is compared on: a default Linux namespace and the lab's retuned stacks.
const OS_HOSTS: [&str; 3] = ["svc", "oswin", "osttl"];
/// An open port on each of them, and closed ones.
const OS_PORTS: &str = "1,22,80,135,445,3389";

/// Fingerprint tests as `test -> attribute -> value`, from an `OS:` block, without what
/// differs from run to run: in the SCAN line the date, time and platform (D, TM, P) and the
/// random closed UDP port's number (CU: only whether there is one), and the values the
/// ISNs and timestamp clocks give (SEQ's SP, GCD, ISR, TS).
fn stable_fingerprint(fp: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let joined: String = fp
        .lines()
        .map(|l| l.trim().strip_prefix("OS:").unwrap_or(l.trim()))
        .collect();
    let mut tests = BTreeMap::new();
    for part in joined.split(')') {
        let Some((name, attrs)) = part.split_once('(') else {
            continue;
        };
        let varies = |k: &str| match name {
            "SCAN" => matches!(k, "D" | "TM" | "P"),
            "SEQ" => matches!(k, "SP" | "GCD" | "ISR" | "TS"),
            _ => false,
        };
        let attrs: BTreeMap<String, String> = attrs
            .split('%')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| !varies(k))
            .map(|(k, v)| match (name, k) {
                ("SCAN", "CU") => (k.to_string(), (!v.is_empty()).to_string()),
                _ => (k.to_string(), v.to_string()),
            })
            .collect();
        tests.insert(name.to_string(), attrs);
    }
    tests
}

/// Nmap's tries at one host before its accuracy is taken as differing from ours: the
/// sequence fields (SP, ISR) come from random ISNs, and the score moves by a point or two
/// with them from one Nmap run to the next.
const NMAP_OS_TRIES: usize = 3;

/// `portolan -O` and `nmap -O` on the same hosts, one host at a time: the same top match
/// (any of Nmap's equally accurate first ones) at the same accuracy as one of Nmap's runs,
/// and the same fingerprint tests apart from the fields that vary by run.
fn os_agrees_with_nmap(lab: &Lab) {
    // Per host, the (accuracy, name) first matches its runs gave: Nmap's and ours.
    let mut accepted: BTreeMap<String, BTreeSet<(u8, String)>> = BTreeMap::new();
    for name in OS_HOSTS {
        let ip = lab.ip(name);
        let base = ["-O", "-vv", "-n", "-Pn", "-p", OS_PORTS, &ip];
        let os_of = |path: &str, who: &str| {
            let run = read_xml_file(path).unwrap_or_else(|e| panic!("{who}'s XML: {e}"));
            let host = run.hosts.into_iter().find(|h| h.addr_str() == ip);
            host.and_then(|h| h.os)
                .unwrap_or_else(|| panic!("{who}: no OS result for {name}"))
        };
        let top =
            |os: &portolan_model::Os| os.matches.first().map(|m| (m.name.clone(), m.accuracy));
        // Both tools' scores move by a point with the random ISNs (SP, ISR): each try runs
        // both once, and the host agrees once one of our tops is among the equally accurate
        // first matches of one of Nmap's runs.
        let mut ours_runs: Vec<(portolan_model::Os, (String, u8))> = Vec::new();
        let mut nmaps: Vec<(portolan_model::Os, (String, u8))> = Vec::new();
        // A stack with many near-equal references (oswin) can have its first place taken by
        // another reference at the same score in one Nmap run and not the next: our top
        // agrees when Nmap also lists it, within the point the ISN-derived fields move.
        let lists = |os: &portolan_model::Os, top: &(String, u8)| {
            os.matches
                .iter()
                .any(|m| m.accuracy.abs_diff(top.1) <= 1 && m.name == top.0)
        };
        let agrees = |ours: &(portolan_model::Os, (String, u8)),
                      nmap: &(portolan_model::Os, (String, u8))| {
            nmap.1 .1.abs_diff(ours.1 .1) <= 1
                && (lists(&nmap.0, &ours.1) || lists(&ours.0, &nmap.1))
        };
        for n in 0..NMAP_OS_TRIES {
            let ours_xml = lab.path(&format!("os-{name}-ours{n}.xml"));
            let t = Instant::now();
            ok(
                &lab.portolan(&[&base[..], &["-oX", &ours_xml]].concat()),
                "portolan -O",
            );
            let our_time = t.elapsed();
            let ours = os_of(&ours_xml, "portolan");
            let our_top =
                top(&ours).unwrap_or_else(|| panic!("portolan found no match for {name}"));
            ours_runs.push((ours, our_top.clone()));
            let theirs = lab.path(&format!("os-{name}-nmap{n}.xml"));
            let t = Instant::now();
            ok(
                &lab.exec("nmap", &[&base[..], &["-oX", &theirs]].concat()),
                "nmap -O",
            );
            let nmap = os_of(&theirs, "nmap");
            let nmap_top = top(&nmap).unwrap_or_else(|| panic!("nmap found no match for {name}"));
            eprintln!(
                "  -O {name}: portolan {our_top:?} in {:.1}s, nmap {nmap_top:?} in {:.1}s",
                our_time.as_secs_f64(),
                t.elapsed().as_secs_f64()
            );
            nmaps.push((nmap, nmap_top));
            if ours_runs.iter().any(|o| nmaps.iter().any(|n| agrees(o, n))) {
                break;
            }
        }
        let firsts = accepted.entry(ip.clone()).or_default();
        for (_, (name, acc)) in &ours_runs {
            firsts.insert((*acc, name.clone()));
        }
        for (n, (_, acc)) in &nmaps {
            for m in n.matches.iter().filter(|m| m.accuracy == *acc) {
                firsts.insert((m.accuracy, m.name.clone()));
            }
        }
        assert!(
            ours_runs.iter().any(|o| nmaps.iter().any(|n| agrees(o, n))),
            "{name}: our top matches {:?}, Nmap's {:?}",
            ours_runs.iter().map(|(_, t)| t).collect::<Vec<_>>(),
            nmaps.iter().map(|(_, t)| t).collect::<Vec<_>>()
        );
        let (ours, _) = ours_runs.last().expect("one run of ours");
        let (nmap, nmap_top) = nmaps.last().expect("one Nmap run");
        // The ports used: the same kinds (the closed UDP port is a random one).
        let kinds = |os: &portolan_model::Os| {
            os.ports_used
                .iter()
                .map(|p| (p.state, p.proto))
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(kinds(ours), kinds(nmap), "{name}: ports used");
        if let Some(fp) = nmap.fingerprints.first() {
            let ours = ours
                .fingerprints
                .first()
                .unwrap_or_else(|| panic!("{name}: Nmap printed a fingerprint, we did not"));
            assert_eq!(
                stable_fingerprint(ours),
                stable_fingerprint(fp),
                "{name}: fingerprints differ ({nmap_top:?})"
            );
        }
    }
    // All of them in one run, their probes in flight together: each host keeps the answer
    // it got alone (or one of Nmap's).
    let ips: Vec<String> = OS_HOSTS.iter().map(|n| lab.ip(n)).collect();
    let mut pending: Vec<&String> = ips.iter().collect();
    let mut seen: BTreeMap<&String, Vec<Option<(u8, String)>>> = BTreeMap::new();
    for n in 0..NMAP_OS_TRIES {
        if pending.is_empty() {
            break;
        }
        let all = lab.path(&format!("os-all-ours{n}.xml"));
        let mut args = vec!["-O", "-n", "-Pn", "-p", OS_PORTS, "-oX", &all];
        args.extend(ips.iter().map(String::as_str));
        ok(&lab.portolan(&args), "portolan -O on every OS host");
        let run = read_xml_file(&all).expect("our XML");
        pending.retain(|ip| {
            let first = run
                .hosts
                .iter()
                .find(|h| h.addr_str() == **ip)
                .and_then(|h| h.os.as_ref())
                .and_then(|o| o.matches.first())
                .map(|m| (m.accuracy, m.name.clone()));
            let ok = first.as_ref().is_some_and(|(acc, name)| {
                accepted[*ip]
                    .iter()
                    .any(|(a, n)| n == name && a.abs_diff(*acc) <= 1)
            });
            seen.entry(*ip).or_default().push(first);
            !ok
        });
    }
    if let Some(ip) = pending.first() {
        panic!(
            "{ip} scanned with the others: {:?}, alone or by Nmap: {:?}",
            seen[ip], accepted[*ip]
        );
    }
    // The retuned stacks do not all look alike (else the comparison proves little).
    let looks: BTreeSet<String> = OS_HOSTS
        .iter()
        .map(|n| {
            let run = read_xml_file(lab.path(&format!("os-{n}-nmap0.xml"))).expect("XML");
            let os = run.hosts.into_iter().next().and_then(|h| h.os);
            let top = os
                .as_ref()
                .and_then(|o| o.matches.first())
                .map(|m| m.name.clone());
            let fp = os
                .as_ref()
                .and_then(|o| o.fingerprints.first())
                .map(|f| stable_fingerprint(f));
            format!("{top:?} {fp:?}")
        })
        .collect();
    assert!(
        looks.len() == OS_HOSTS.len(),
        "lab hosts answered alike: {looks:?}"
    );
}

/// Services that stream megabytes, never answer, send garbage or TLS garbage, or close at
/// once: every port finishes within its probes' budget, memory stays bounded, and the
/// outputs stay valid.
fn version_detection_survives_hostile_services(lab: &Lab) {
    let (xml, json) = (lab.path("sv-hostile.xml"), lab.path("sv-hostile.json"));
    let started = Instant::now();
    let out = lab.exec(
        "/usr/bin/time",
        &[
            "-f",
            "maxrss_kb=%M",
            BIN,
            "-sV",
            "-T4",
            "-n",
            "-Pn",
            "-p",
            "7001-7005",
            "-oX",
            &xml,
            "-oJ",
            &json,
            "198.18.0.16",
        ],
    );
    ok(&out, "portolan -sV on hostile services");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(90), "took {took:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let rss: u64 = err
        .split("maxrss_kb=")
        .nth(1)
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss in {err}"));
    assert!(rss < 300_000, "peak memory {rss} kB");
    let v = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", "/usr/share/nmap/nmap.dtd", &xml])
        .output()
        .expect("xmllint");
    ok(&v, "xmllint on -sV of hostile services");
    let _: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON valid");
    let run = read_xml_file(&xml).expect("XML");
    let port = |n: u16| {
        run.hosts[0]
            .ports
            .iter()
            .find(|p| p.portid == n)
            .and_then(|p| p.service.clone())
            .unwrap_or_else(|| panic!("port {n} missing"))
    };
    assert_eq!(port(7005).name, "tcpwrapped");
    assert_eq!(port(7004).tunnel.as_deref(), Some("ssl"));
}

/// --builtin-data: our own probe database names every lab service it promises to.
fn builtin_probes_name_the_lab_services(lab: &Lab) {
    let xml = lab.path("sv-builtin.xml");
    let mut args = vec![
        "-sV",
        "--builtin-data",
        "-T4",
        "-n",
        "-Pn",
        "-p",
        KNOWN_SERVICES,
        "-oX",
        &xml,
    ];
    args.extend(SERVICE_HOSTS);
    ok(&lab.portolan(&args), "portolan -sV --builtin-data");
    let got = services(&read_xml_file(&xml).expect("XML"));
    for (ip, port, name, product) in [
        ("198.18.0.10", 21, "ftp", "vsftpd"),
        ("198.18.0.10", 22, "ssh", "OpenSSH"),
        ("198.18.0.10", 80, "http", "nginx"),
        ("198.18.0.10", 443, "ssl/http", "nginx"),
        ("198.18.0.10", 6379, "redis", "Redis key-value store"),
        ("198.18.0.11", 53, "domain", "dnsmasq"),
        ("198.18.0.15", 3306, "mysql", "MariaDB"),
        ("198.18.0.15", 5432, "postgresql", "PostgreSQL DB"),
        ("198.18.0.15", 11211, "memcached", "Memcached"),
        ("198.18.0.16", 8000, "http", "SimpleHTTPServer"),
    ] {
        let (n, p, _) = got
            .get(&(ip.to_string(), port))
            .unwrap_or_else(|| panic!("{ip}:{port} not identified: {got:?}"));
        assert_eq!((n.as_str(), p.as_str()), (name, product), "{ip}:{port}");
    }
    // Redis answered without a password: the built-in match says so.
    let run = read_xml_file(&xml).expect("XML");
    let redis = run
        .hosts
        .iter()
        .flat_map(|h| h.ports.iter())
        .find(|p| p.portid == 6379)
        .and_then(|p| p.service.clone())
        .expect("redis");
    assert_eq!(redis.extrainfo.as_deref(), Some("no authentication"));
}

/// Portolan in the scanner namespace, as root but not under sudo (unless `sudo` names the
/// caller's uid, gid and name), with stdout and stderr captured.
fn root_scan(lab: &Lab, args: &[&str], sudo: Sudo) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab.scan_ns(), BIN])
        .args(args)
        .env_remove("SUDO_UID")
        .env_remove("SUDO_GID")
        .env_remove("SUDO_USER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((uid, gid, user)) = sudo {
        c.env("SUDO_UID", uid)
            .env("SUDO_GID", gid)
            .env("SUDO_USER", user);
    }
    c
}

/// The sudo caller a test pretends to be: SUDO_UID, SUDO_GID and SUDO_USER.
type Sudo<'a> = Option<(&'a str, &'a str, &'a str)>;

/// A folder only root may enter: what a scan writes there it opened before dropping root.
fn root_only_dir(lab: &Lab, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = lab.work.path().join(name);
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

/// A -sS and a -sU scan run as root find the same with and without --keep-privileges;
/// without it the scan says it dropped root, and its XML, store (its -wal and -shm too)
/// and audit log, created by root in a folder only root may enter, are written to the end
/// by the process that is root no more.
fn dropped_privileges_find_what_root_finds(lab: &Lab) {
    use std::os::unix::fs::MetadataExt;
    let (svc, dns, filt) = (lab.ip("svc"), lab.ip("dns"), lab.ip("filt"));
    let scans: [(&str, Vec<&str>); 2] = [
        ("sS", vec!["-sS", "-T4", "-p", "1-2000", &svc, &dns, &filt]),
        ("sU", vec!["-sU", "-p", "7,53,161", &dns]),
    ];
    for (tag, scan) in scans {
        let mut found = Vec::new();
        for keep in [true, false] {
            let what = format!("-{tag}{}", if keep { " --keep-privileges" } else { "" });
            let dir = root_only_dir(lab, &format!("priv-{tag}-{keep}"));
            let name = |f: &str| dir.join(f).to_string_lossy().into_owned();
            let (xml, db, audit) = (name("scan.xml"), name("history.db"), name("log/audit.log"));
            let mut args = scan.clone();
            args.extend(["-n", "-Pn", "-v", "-oX", &xml, "--db", &db]);
            args.extend(["--audit-log", &audit]);
            if keep {
                args.push("--keep-privileges");
            }
            let out = root_scan(lab, &args, None).output().expect("run portolan");
            ok(&out, &what);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                err.contains("Dropped privileges to nobody (uid "),
                !keep,
                "{what}: {err}"
            );
            let wal = format!("{db}-wal");
            let mut files = vec![&xml, &db, &audit];
            if !keep {
                // Made before the drop: a process as nobody could not have made them.
                files.push(&wal);
            }
            for f in files {
                let meta = std::fs::metadata(f).unwrap_or_else(|e| panic!("{what}: {f}: {e}"));
                assert!(meta.uid() == 0 && meta.len() > 0, "{what}: {f}");
            }
            let run = read_xml_file(&xml).expect("the XML reads back");
            let stats = run.runstats.clone().expect("runstats");
            assert_eq!(stats.exit, RunExit::Success, "{what}");
            let o = Command::new(BIN)
                .args(["history", "--db", &db, "--json"])
                .output()
                .expect("portolan history");
            ok(&o, &format!("history of {what}"));
            let h: Value = serde_json::from_slice(&o.stdout).expect("history --json");
            assert_eq!(h.as_array().map(Vec::len), Some(1), "{what}: {h}");
            assert_eq!(h[0]["complete"], true, "{what}: {h}");
            assert_eq!(h[0]["hosts_up"], stats.hosts_up, "{what}: {h}");
            let text = std::fs::read_to_string(&audit).expect("audit log");
            let rec: Value = serde_json::from_str(text.trim_end()).expect("one JSON line");
            assert_eq!(
                (&rec["outcome"], &rec["exit_code"], &rec["uid"]),
                (&Value::from("completed"), &Value::from(0), &Value::from(0)),
                "{what}: {rec}"
            );
            found.push((
                proto_states(&run, Protocol::Tcp),
                proto_states(&run, Protocol::Udp),
            ));
        }
        assert_eq!(found[0], found[1], "-{tag}: what root and nobody found");
        let (tcp, udp) = &found[1];
        if tag == "sS" {
            for host in ["svc", "dns", "filt"] {
                lab.assert_truth(host, tcp, 1..=2000);
            }
        } else {
            let udp = &udp[&dns];
            let open = |p: u16| udp.get(&p).map(String::as_str) == Some("open");
            assert!(open(53) && open(161), "-sU as nobody: {udp:?}");
        }
    }
}

/// The value of `key` in a /proc status file ("Uid": real, effective, saved and fs uid).
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// `id -u nobody` or `id -g nobody`.
fn nobody_id(flag: &str) -> String {
    let out = Command::new("id")
        .args([flag, "nobody"])
        .output()
        .expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// While it scans, every thread of a scan started as root is nobody (or the sudo caller),
/// with no supplementary group, no way to gain privileges, and CAP_NET_RAW and
/// CAP_NET_ADMIN alone; with --keep-privileges it is root. Interrupted, it still closes
/// its XML, opened before the drop.
fn scans_run_without_root(lab: &Lab) {
    let svc = lab.ip("svc");
    let (nobody_uid, nobody_gid) = (nobody_id("-u"), nobody_id("-g"));
    let cases: [(&str, Sudo, bool, &str, &str); 3] = [
        ("nobody", None, false, &nobody_uid, &nobody_gid),
        (
            "sudo",
            Some(("4242", "4343", "lab-user")),
            false,
            "4242",
            "4343",
        ),
        ("keep", None, true, "0", "0"),
    ];
    for (what, sudo, keep, uid, gid) in cases {
        let xml = lab.path(&format!("as-{what}.xml"));
        let mut args = vec!["-sS", "-n", "-Pn", "-p-", "--max-rate", "2000", "-v"];
        args.extend(["--audit-log", "none", "-oX", &xml, &svc]);
        if keep {
            args.push("--keep-privileges");
        }
        let child = root_scan(lab, &args, sudo).spawn().expect("spawn");
        let pid = child.id();
        let status = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        // The runtime's threads start after the drop: once there are several, it is done.
        let deadline = Instant::now() + Duration::from_secs(10);
        while status_field(&status(&format!("/proc/{pid}/status")), "Threads")
            .parse::<u32>()
            .unwrap_or(0)
            < 2
        {
            assert!(Instant::now() < deadline, "{what}: the scan never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
        let mut seen = 0;
        for task in tasks.flatten() {
            let st = status(&format!("{}/status", task.path().display()));
            if st.is_empty() {
                continue; // a thread that ended meanwhile
            }
            seen += 1;
            let f = |k: &str| status_field(&st, k);
            assert_eq!(f("Uid"), [uid; 4].join("\t"), "{what}: {st}");
            assert_eq!(f("Gid"), [gid; 4].join("\t"), "{what}: {st}");
            if !keep {
                assert_eq!(f("Groups"), "", "{what}: {st}");
                assert_eq!(f("NoNewPrivs"), "1", "{what}: {st}");
                assert_eq!(f("CapEff"), "0000000000003000", "{what}: {st}");
                assert_eq!(f("CapPrm"), "0000000000003000", "{what}: {st}");
            }
        }
        assert!(seen >= 2, "{what}: threads seen {seen}");
        signal(pid, "INT");
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{what}: {err}");
        if let Some((uid, _, user)) = sudo {
            let said = format!("Dropped privileges to {user} (uid {uid})");
            assert!(err.contains(&said), "{what}: {err}");
        }
        let run = read_xml_file(&xml).expect("interrupted XML reads back");
        assert_eq!(run.runstats.expect("runstats").exit, RunExit::Error);
    }
}

/// Every script finding of a scan: (host, port or "host"/"pre"/"post", script id) → output.
fn script_findings(run: &ScanRun) -> BTreeMap<(String, String, String), String> {
    let mut out = BTreeMap::new();
    for s in &run.prescripts {
        out.insert(("-".into(), "pre".into(), s.id.clone()), s.output.clone());
    }
    for s in &run.postscripts {
        out.insert(("-".into(), "post".into(), s.id.clone()), s.output.clone());
    }
    for h in &run.hosts {
        let ip = h.addr_str().to_string();
        for s in &h.hostscripts {
            out.insert((ip.clone(), "host".into(), s.id.clone()), s.output.clone());
        }
        for p in &h.ports {
            for s in &p.scripts {
                let port = format!("{}/{}", p.protocol.as_str(), p.portid);
                out.insert((ip.clone(), port, s.id.clone()), s.output.clone());
            }
        }
    }
    out
}

/// Scripts whose text changes from run to run under Nmap itself (clocks, salts, counters,
/// connection ids): compared by presence only.
const VOLATILE_SCRIPTS: &[&str] = &[
    // account_used: which account the host's shared registry points at depends on which
    // concurrent SMB script's login failed first (the same under both tools on one host).
    "smb-security-mode",
    "ssl-date",
    "http-date",
    "smb2-time",
    "clock-skew",
    "mysql-info",
    "memcached-info",
    "smb-os-discovery",
    "nbstat",
    "redis-info",
    "ftp-syst",
    "ntp-info",
];

/// Scripts that need raw packets (`nmap.new_dnet`, pcap), which Portolan's engine does
/// not offer yet: they fail alone (docs/nse.md), so Nmap's findings from them are missing.
const RAW_PACKET_SCRIPTS: &[&str] = &["ipidseq", "path-mtu", "tls-ticketbleed"];

/// Scripts that report only when what they measure crosses a line that varies from run to
/// run: clock-skew speaks when the skews other scripts recorded (to the second) disagree.
const SOMETIMES_SILENT: &[&str] = &["clock-skew"];

/// Scripts whose output on one port is volatile: fingerprint-strings prints the printable
/// runs of each probe's answer, and an SMB negotiate answer carries the server's clock and a
/// random challenge, so those runs differ between any two connections (Nmap against itself
/// too: "SMBr" alone one run, "SMBr" and "Jea@" the next).
const VOLATILE_ON_PORT: &[(&str, &str)] = &[
    ("tcp/445", "fingerprint-strings"),
    ("tcp/139", "fingerprint-strings"),
];

/// A script's text as compared: lines sorted, because Nmap prints a plain table's keys in
/// `pairs` order, which Lua salts per run (so do the ids of a vulns report, sorted within
/// their line); HTTP dates (the server's clock at the request) left out, and so is the
/// example suite ssl-dh-params names for a DH group (the first of a `pairs` walk).
fn normalised(output: &str) -> Vec<String> {
    let mut lines: Vec<String> = output
        .lines()
        .map(|l| l.trim_end())
        .filter(|l| !l.contains(" GMT") && !l.trim_start().starts_with("Cipher Suite: "))
        .map(|l| match l.trim_start().strip_prefix("IDs:") {
            Some(ids) => {
                let mut ids: Vec<&str> = ids.split_whitespace().collect();
                ids.sort();
                format!("IDs: {}", ids.join(" "))
            }
            None => l.to_string(),
        })
        .collect();
    lines.sort();
    lines
}

/// Runs `args` under Nmap and Portolan on the same hosts, checks Portolan's XML against
/// Nmap's DTD, and compares the findings script by script and port by port.
fn scripts_agree(
    lab: &Lab,
    tag: &str,
    args: &[&str],
) -> BTreeMap<(String, String, String), String> {
    let (ours, theirs) = (
        lab.path(&format!("{tag}-ours.xml")),
        lab.path(&format!("{tag}-nmap.xml")),
    );
    let mut a = args.to_vec();
    a.extend(["-oX", &ours]);
    let t = Instant::now();
    ok(&lab.portolan(&a), &format!("portolan {tag}"));
    let ours_s = t.elapsed().as_secs_f64();
    let mut b = args.to_vec();
    b.extend(["-oX", &theirs]);
    let t = Instant::now();
    ok(&lab.exec("nmap", &b), &format!("nmap {tag}"));
    let nmap_s = t.elapsed().as_secs_f64();
    let dtd = "/usr/share/nmap/nmap.dtd";
    let v = Command::new("xmllint")
        .args(["--noout", "--dtdvalid", dtd, &ours])
        .output()
        .expect("xmllint installed");
    ok(&v, &format!("xmllint --dtdvalid {tag}"));
    let ours = script_findings(&read_xml_file(&ours).expect("our XML"));
    let nmap = script_findings(&read_xml_file(&theirs).expect("Nmap's XML"));
    let mut differ = Vec::new();
    for (k, want) in &nmap {
        match ours.get(k) {
            None if RAW_PACKET_SCRIPTS.contains(&k.2.as_str()) => {}
            None if SOMETIMES_SILENT.contains(&k.2.as_str()) => {}
            None => differ.push(format!("missing {k:?}: nmap says {want:?}")),
            Some(_) if VOLATILE_SCRIPTS.contains(&k.2.as_str()) => {}
            Some(_) if VOLATILE_ON_PORT.contains(&(k.1.as_str(), k.2.as_str())) => {}
            Some(got) if normalised(got) != normalised(want) => {
                differ.push(format!("{k:?}:\n  nmap:     {want:?}\n  portolan: {got:?}"))
            }
            Some(_) => {}
        }
    }
    for k in ours
        .keys()
        .filter(|k| !nmap.contains_key(*k) && !SOMETIMES_SILENT.contains(&k.2.as_str()))
    {
        differ.push(format!("only portolan: {k:?} = {:?}", ours[k]));
    }
    eprintln!(
        "  scripts {tag}: {} findings, portolan {ours_s:.1}s, nmap {nmap_s:.1}s",
        nmap.len()
    );
    assert!(
        differ.is_empty(),
        "{tag}: findings differ from Nmap's:\n{}",
        differ.join("\n")
    );
    ours
}

/// The seed script commands against the lab's NSE hosts, Portolan against Nmap.
fn scripts_agree_with_nmap(lab: &Lab) {
    let (svc, smb, smb1, web) = (lab.ip("svc"), lab.ip("smb"), lab.ip("smb1"), lab.ip("web"));
    let base = ["-T4", "-n", "-Pn"];
    let with = |extra: &[&str], hosts: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .chain(hosts)
            .map(|s| s.to_string())
            .collect()
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "ms17-010",
            with(
                &["--script", "smb-vuln-ms17-010", "-p", "139,445"],
                &[&smb, &smb1],
            ),
        ),
        (
            "ms17-010-patched",
            with(
                &[
                    "--script",
                    "smb-vuln-ms17-010",
                    "-p",
                    "4445",
                    "--script-args",
                    "smbport=4445,vulns.showall",
                ],
                &[&smb1],
            ),
        ),
        (
            "ssl-enum-ciphers",
            with(
                &["--script", "ssl-enum-ciphers", "-p", "443,8443,9443"],
                &[&web],
            ),
        ),
        (
            "http-enum",
            with(&["--script", "http-enum", "-p", "80,443"], &[&web]),
        ),
        ("banner", with(&["--script=banner", "-p", "22"], &[&svc])),
        (
            "sC",
            with(&["-sC", "-p", "21,22,80,443,445,139"], &[&svc, &smb1, &web]),
        ),
        ("vuln", with(&["--script", "vuln", "-p", "445"], &[&smb1])),
        (
            "sV-sC-vuln",
            with(
                &["-sV", "-sC", "--script", "vuln", "-p", "22,80,443,3306"],
                &[&web],
            ),
        ),
        // -A's script part (its OS detection and traceroute are not compared here).
        ("A", with(&["-A", "-p", "80,445"], &[&smb1, &web])),
        (
            "default-or-safe",
            with(
                &[
                    "--script",
                    "(default or safe) and not broadcast and not external",
                    "-p",
                    "80",
                ],
                &[&web],
            ),
        ),
    ];
    for (tag, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let found = scripts_agree(lab, tag, &args);
        if *tag == "ms17-010" || *tag == "vuln" {
            let key = (
                smb1.clone(),
                "host".to_string(),
                "smb-vuln-ms17-010".to_string(),
            );
            let out = found
                .get(&key)
                .unwrap_or_else(|| panic!("{tag}: no ms17-010 finding"));
            assert!(
                out.contains("State: VULNERABLE") && out.contains("CVE-2017-0143"),
                "{out}"
            );
        }
    }
}

/// Scripts cannot reach an excluded host: a script that tries to connect to it is refused
/// with a message, and a counter on the host sees not one packet.
fn scripts_never_reach_an_excluded_host(lab: &Lab) {
    let ns = format!("{}-filt", lab.prefix);
    let excluded = lab.ip("filt");
    let scanner = lab.truth["scanner_ip"]
        .as_str()
        .expect("scanner ip")
        .to_string();
    let nft = |args: &[&str]| {
        let o = Command::new("ip")
            .args(["netns", "exec", &ns, "nft"])
            .args(args)
            .output()
            .expect("nft");
        assert!(
            o.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    nft(&["add", "table", "ip", "portolan_nse"]);
    nft(&[
        "add",
        "chain",
        "ip",
        "portolan_nse",
        "input",
        "{ type filter hook input priority -300; }",
    ]);
    nft(&[
        "add",
        "rule",
        "ip",
        "portolan_nse",
        "input",
        "ip",
        "saddr",
        &scanner,
        "counter",
    ]);
    let count = || -> u64 {
        let text = nft(&["list", "table", "ip", "portolan_nse"]);
        text.split("packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter in: {text}"))
    };
    let script = lab.path("reach-out.nse");
    std::fs::write(
        &script,
        "description = [[tries to reach the address in reach-out.target]]\ncategories = {\"safe\"}\n\
         portrule = function(host, port) return port.protocol == 'tcp' end\n\
         action = function(host, port)\n\
           local target = require('stdnse').get_script_args('reach-out.target')\n\
           local s = require('nmap').new_socket()\n\
           local ok, err = s:connect(target, 80)\n\
           local u = require('nmap').new_socket('udp')\n\
           local uok, uerr = u:sendto(target, 53, 'x')\n\
           return ('tcp: %s %s; udp: %s %s'):format(tostring(ok), tostring(err), tostring(uok), tostring(uerr))\n\
         end\n",
    )
    .expect("script");
    let before = count();
    let arg = format!("reach-out.target={excluded}");
    let xml = lab.path("reach-out.xml");
    let svc = lab.ip("svc");
    ok(
        &lab.portolan(&[
            "-sT",
            "-Pn",
            "-n",
            "-p",
            "22,80",
            "--script",
            &script,
            "--script-args",
            &arg,
            "--script",
            "http-title",
            "--exclude",
            &excluded,
            "-oX",
            &xml,
            &svc,
            &excluded,
        ]),
        "scripts with --exclude",
    );
    assert_eq!(
        count(),
        before,
        "a script sent packets to the excluded host"
    );
    let run = read_xml_file(&xml).expect("XML");
    assert!(
        run.hosts.iter().all(|h| h.addr_str() != excluded),
        "the excluded host was scanned"
    );
    let found = script_findings(&run);
    let out = found
        .get(&(svc.clone(), "tcp/22".into(), "reach-out".into()))
        .expect("reach-out ran");
    assert_eq!(
        out,
        &format!("tcp: nil {excluded} is excluded from this scan; udp: nil {excluded} is excluded from this scan")
    );
    nft(&["delete", "table", "ip", "portolan_nse"]);
}

// ---- traceroute (the routed part of the lab: r1, a silent r2, r3, then far1 and far2) ----

/// The hops of every traced host of a run: (ttl, address), as the XML has them.
fn trace_hops(run: &ScanRun) -> BTreeMap<String, Vec<(u32, String)>> {
    trace_names(run)
        .into_iter()
        .map(|(ip, hops)| (ip, hops.into_iter().map(|(t, a, _)| (t, a)).collect()))
        .collect()
}

/// The hops of every traced host of a run with their names: (ttl, address, name).
#[allow(clippy::type_complexity)]
fn trace_names(run: &ScanRun) -> BTreeMap<String, Vec<(u32, String, Option<String>)>> {
    run.hosts
        .iter()
        .filter_map(|h| {
            let t = h.trace.as_ref()?;
            let hops = t
                .hops
                .iter()
                .map(|hop| {
                    let addr = hop.ipaddr.clone().unwrap_or_default();
                    (hop.ttl, addr, hop.host.clone())
                })
                .collect();
            Some((h.addr_str().to_string(), hops))
        })
        .collect()
}

/// `--traceroute` with a SYN scan and with a ping scan: Portolan finds the hops Nmap finds
/// (TTL and address; round trips differ), which are the lab's path with the silent router's
/// hop missing; a host on our link is one hop away without a probe, in both. Without -n,
/// the hops have the names the scanner's hosts file gives them, in both.
fn traceroute_agrees_with_nmap(lab: &Lab) {
    let routed = &lab.truth["routed"];
    let far: Vec<String> = routed["hosts"]
        .as_array()
        .expect("routed hosts")
        .iter()
        .map(|h| h["ip"].as_str().expect("ip").to_string())
        .collect();
    let path: Vec<Option<String>> = routed["path"]
        .as_array()
        .expect("routed path")
        .iter()
        .map(|h| h.as_str().map(str::to_string))
        .collect();
    let lan = lab.ip("svc");
    let scans: [(&str, &[&str]); 3] = [
        ("syn", &["-sS", "-p", "22,80", "-n"]),
        ("ping", &["-sn", "-n"]),
        ("names", &["-sn"]),
    ];
    for (tag, scan) in scans {
        let ours = lab.path(&format!("trace-{tag}-ours.xml"));
        let theirs = lab.path(&format!("trace-{tag}-nmap.xml"));
        let mut base: Vec<&str> = scan.to_vec();
        base.push("--traceroute");
        base.extend(far.iter().map(String::as_str));
        base.push(&lan);
        let mut a = base.clone();
        a.extend(["-oX", &ours]);
        let out = lab.portolan(&a);
        ok(&out, &format!("portolan --traceroute {tag}"));
        let mut b = base.clone();
        b.extend(["-oX", &theirs]);
        ok(&lab.exec("nmap", &b), &format!("nmap --traceroute {tag}"));
        let ours_run = read_xml_file(&ours).expect("our XML");
        let nmap_run = read_xml_file(&theirs).expect("Nmap's XML");
        let (o, n) = (trace_hops(&ours_run), trace_hops(&nmap_run));
        assert_eq!(o, n, "{tag}: hops differ from Nmap's");
        let names = trace_names(&ours_run);
        assert_eq!(names, trace_names(&nmap_run), "{tag}: hop names differ");
        let named = names
            .values()
            .flatten()
            .filter(|(_, a, name)| name.is_some() && name.as_deref() == routed["names"][a].as_str())
            .count();
        if tag == "names" {
            // Every routed hop named, the on-link host not (it has no name in the file).
            assert_eq!(named, names.values().flatten().count() - 1, "{names:?}");
        }
        for ip in &far {
            let mut want: Vec<(u32, String)> = path
                .iter()
                .enumerate()
                .filter_map(|(i, hop)| Some((i as u32 + 1, hop.clone()?)))
                .collect();
            want.push((path.len() as u32 + 1, ip.clone()));
            assert_eq!(o.get(ip), Some(&want), "{tag}: {ip}'s hops");
        }
        assert_eq!(
            o.get(&lan),
            Some(&vec![(1, lan.clone())]),
            "{tag}: on-link host"
        );
        for run in [&ours_run, &nmap_run] {
            for h in &run.hosts {
                let t = h.trace.as_ref().expect("traced");
                let routed = far.iter().any(|ip| ip == h.addr_str());
                // A probe's port and protocol for routed hosts; none for the on-link one.
                assert_eq!(
                    t.proto.is_some(),
                    routed,
                    "{tag}: {} trace probe",
                    h.addr_str()
                );
            }
        }
        // The silent hop shows as Nmap shows it, and the second host's first hops are
        // folded into one line naming the first.
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("\n2   ...\n"), "{tag}: {stdout}");
        assert!(
            stdout.contains(&format!("Hops 1-{} are the same as for ", path.len())),
            "{tag}: {stdout}"
        );
    }
}

// ---- Offline vulnerabilities (issue 15) ---------------------------------------------------

/// The installed Debian version of a package, from dpkg.
fn installed(package: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .expect("dpkg-query");
    assert!(out.status.success(), "dpkg-query {package}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether dpkg orders `a` before `b`.
fn dpkg_lt(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "lt", b])
        .status()
        .expect("dpkg --compare-versions")
        .success()
}

/// The CVE ids of the `vulns` result on a port.
fn vulns_on(run: &ScanRun, addr: &str, port: u16) -> BTreeSet<String> {
    run.hosts
        .iter()
        .filter(|h| h.addr_str() == addr)
        .flat_map(|h| &h.ports)
        .filter(|p| p.portid == port)
        .flat_map(|p| &p.scripts)
        .filter(|s| s.id == "vulns")
        .flat_map(|s| &s.content)
        .filter_map(|i| i.key().map(str::to_string))
        .collect()
}

/// `-sV --vulns` on the lab's svc, dns and db hosts against the fixture feeds
/// (crates/portolan-vuln/tests/fixtures): what the lab's real Debian packages give. OpenSSH
/// names its Debian build, so Debian's fixed versions decide; the others announce upstream
/// versions only. Every output carries the findings (grepable output, as Nmap's, has no
/// script results), and `portolan vulns` on the XML agrees with the scan.
fn vulns_from_version_detection(lab: &Lab) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../portolan-vuln/tests/fixtures");
    let f = |n: &str| fixtures.join(n).to_string_lossy().into_owned();
    let db = lab.path("vulndb.sqlite");
    let out = Command::new(BIN)
        .args(["vulndb", "import", "--vulndb", &db])
        .args([f("nvd-lab.json"), f("kev-lab.json"), f("debian-lab.json")])
        .args([f("epss-lab.csv")])
        .output()
        .expect("portolan vulndb import");
    ok(&out, "portolan vulndb import");
    let (svc, dns, dbh) = (lab.ip("svc"), lab.ip("dns"), lab.ip("db"));
    let (xml, normal, json, events, store) = (
        lab.path("vulns.xml"),
        lab.path("vulns.nmap"),
        lab.path("vulns.json"),
        lab.path("vulns.ndjson"),
        lab.path("vulns-history.db"),
    );
    let out = lab.portolan(&[
        "-sV",
        "-T4",
        "-n",
        "-Pn",
        "-p",
        "21,22,53,80,3306,5432,6379",
        "--vulns",
        "--vulndb",
        &db,
        "-oX",
        &xml,
        "-oN",
        &normal,
        "-oJ",
        &json,
        "-oE",
        &events,
        "--db",
        &store,
        &svc,
        &dns,
        &dbh,
    ]);
    ok(&out, "portolan -sV --vulns");
    let run = read_xml_file(&xml).expect("XML with vulns");
    for h in &run.hosts {
        for p in &h.ports {
            let v = vulns_on(&run, h.addr_str(), p.portid);
            let s = p.service.as_ref();
            eprintln!(
                "  {} {}/{}: {:?} {:?}: {v:?}",
                h.addr_str(),
                p.portid,
                p.protocol.as_str(),
                s.and_then(|s| s.product.as_deref()),
                s.and_then(|s| s.version.as_deref()),
            );
        }
    }
    // OpenSSH: the tracker's open CVE stays; the fixed ones go as far as the installed
    // build has the fix.
    let ssh = vulns_on(&run, &svc, 22);
    let openssh = installed("openssh-server");
    assert!(ssh.contains("CVE-2023-51767"), "{ssh:?}");
    for (cve, fixed) in [
        ("CVE-2024-6387", "1:9.2p1-2+deb12u3"),
        ("CVE-2023-38408", "1:9.2p1-2+deb12u1"),
        ("CVE-2023-48795", "1:9.2p1-2+deb12u2"),
    ] {
        assert_eq!(
            ssh.contains(cve),
            dpkg_lt(&openssh, fixed),
            "{cve} with openssh-server {openssh}: {ssh:?}"
        );
    }
    // nginx's banner gives its upstream version: CVE-2021-23017 only below 1.20.1.
    let banner = |addr: &str, port: u16| -> String {
        run.hosts
            .iter()
            .filter(|h| h.addr_str() == addr)
            .flat_map(|h| &h.ports)
            .find(|p| p.portid == port)
            .and_then(|p| p.service.as_ref()?.version.clone())
            .unwrap_or_else(|| panic!("no version on {addr}:{port}"))
    };
    let nginx = banner(&svc, 80);
    let web = vulns_on(&run, &svc, 80);
    assert_eq!(
        web.contains("CVE-2021-23017"),
        dpkg_lt(&nginx, "1.20.1"),
        "nginx {nginx}"
    );
    // HTTP/2 Rapid Reset, known exploited: nginx 1.9.5 up to 1.25.3.
    let rapid_reset = !dpkg_lt(&nginx, "1.9.5") && dpkg_lt(&nginx, "1.25.3");
    assert_eq!(web.contains("CVE-2023-44487"), rapid_reset, "nginx {nginx}");
    // NVD's CVE-2022-0543 is Debian's own Redis build, named without a version (`-`) and
    // only on Debian 9 to 11: no Redis version is it.
    assert!(vulns_on(&run, &svc, 6379).is_empty());
    // dnsmasq (2.78 fixed CVE-2017-14491), vsftpd (the 2.3.4 backdoor), PostgreSQL
    // (15.4 fixed CVE-2023-39417) and MariaDB (no MySQL CVE applies) have none.
    let dnsmasq = banner(&dns, 53);
    assert_eq!(
        vulns_on(&run, &dns, 53).contains("CVE-2017-14491"),
        dpkg_lt(&dnsmasq, "2.78"),
        "dnsmasq {dnsmasq}"
    );
    for (host, port) in [(&svc, 21), (&dbh, 3306), (&dbh, 5432)] {
        assert!(vulns_on(&run, host, port).is_empty(), "{host}:{port}");
    }
    // Every output shows them.
    let text = std::fs::read_to_string(&normal).expect("normal output");
    assert!(
        text.contains("| vulns: ") && text.contains("CVE-2023-51767"),
        "{text}"
    );
    let j = std::fs::read_to_string(&json).expect("JSON output");
    assert!(j.contains("\"vulns\"") && j.contains("CVE-2023-51767"));
    let ev = std::fs::read_to_string(&events).expect("events");
    let alert = ev
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("event JSON"))
        .find(|e| e["vulnerability"]["id"][0] == "CVE-2023-51767")
        .expect("an alert for CVE-2023-51767");
    assert_eq!(alert["event"]["kind"], "alert");
    assert_eq!(alert["vulnerability"]["score"]["base"], 7.0);
    // `portolan vulns` on the scan file lists the same findings.
    let out = Command::new(BIN)
        .args(["vulns", "--vulndb", &db, "--json", &xml])
        .output()
        .expect("portolan vulns");
    assert_eq!(out.status.code(), Some(1), "findings: exit 1");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("vulns JSON");
    let listed: BTreeSet<String> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["address"] == svc.as_str() && f["port"] == 22)
        .filter_map(|f| f["cve"].as_str().map(str::to_string))
        .collect();
    assert_eq!(listed, ssh);
    // Known exploited first.
    if rapid_reset {
        assert_eq!(doc["findings"][0]["cve"], "CVE-2023-44487");
    }
    // The history store kept them: `vulns --db` lists the same findings from the store,
    // without the database (every service was scanned with --vulns).
    let keys = |doc: &Value| -> BTreeSet<(String, u64, String)> {
        doc["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                (s("address"), f["port"].as_u64().unwrap_or(0), s("cve"))
            })
            .collect()
    };
    let absent = lab.path("no-vulndb.sqlite");
    let out = Command::new(BIN)
        .args(["vulns", "--vulndb", &absent, "--json", "--db", &store])
        .output()
        .expect("portolan vulns --db");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: Value = serde_json::from_slice(&out.stdout).expect("vulns --db JSON");
    assert_eq!(stored["services_matched"], 0);
    assert_eq!(keys(&stored), keys(&doc));
    assert!(stored["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .all(|f| f["source"] == "stored"));
}

/// Issue 14, shards are one scan: four `--shard K/4` processes record into one store at
/// once; the one killed midway leaves the scan incomplete (in the history, out of the
/// inventory and the changes); run again, it completes the scan, whose union is what an
/// unsharded scan of the same targets finds. Into SQLite, then into PostgreSQL (the test
/// process's throwaway cluster, reached from the scanner's namespace by its unix socket;
/// or `PORTOLAN_SHARDS_DB`, a store URL, when given).
fn shards_form_one_scan(lab: &Lab) {
    shards_into(lab, &lab.path("shards.db"));
    let pg = std::env::var("PORTOLAN_SHARDS_DB")
        .ok()
        .filter(|d| !d.is_empty())
        .or_else(|| portolan_testpg::TestPg::shared().map(|pg| pg.fresh_db("lab_shards")));
    match pg {
        Some(url) => shards_into(lab, &url),
        None => eprintln!("shards_form_one_scan: no PostgreSQL here, SQLite only"),
    }
}

fn shards_into(lab: &Lab, db: &str) {
    let db = db.to_string();
    let mut targets: Vec<String> = ["svc", "dns", "filt", "db"]
        .iter()
        .map(|n| lab.ip(n))
        .collect();
    targets.push("198.18.0.99".into());
    let scan = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["-sS", "--seed", "1414", "-p", "1-2000", "-n", "--db", &db]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(targets.iter().cloned());
        a
    };
    let part = |k: u32, extra: &[&str]| {
        let shard = format!("{k}/4");
        let mut a = vec!["--shard", shard.as_str(), "--scan-id", "lab-shards"];
        a.extend_from_slice(extra);
        scan(&a)
    };
    let history = || -> Vec<Value> {
        let o = Command::new(BIN)
            .args(["history", "--db", &db, "--json"])
            .output()
            .expect("portolan history");
        ok(&o, "history");
        let h: Value = serde_json::from_slice(&o.stdout).expect("history --json");
        h.as_array().expect("a list of scans").clone()
    };

    // Part 4 slowed down, so that it is surely killed before its end.
    let slow = part(4, &["--max-rate", "20"]);
    let slow: Vec<&str> = slow.iter().map(String::as_str).collect();
    let mut killed = spawn_scan(lab, &slow);
    let others: Vec<_> = (1..=3)
        .map(|k| {
            let a = part(k, &[]);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            spawn_scan(lab, &a)
        })
        .collect();
    let mut said = String::new();
    for (k, c) in others.into_iter().enumerate() {
        let o = c.wait_with_output().expect("wait");
        ok(&o, &format!("part {}/4", k + 1));
        said.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    // Killed once it is recorded as running.
    while !history().iter().any(|s| s["part"] == 4) {
        assert!(
            killed.try_wait().expect("try_wait").is_none(),
            "part 4 ended before it was recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(killed.id(), "KILL");
    let _ = killed.wait();

    let h = history();
    assert!(h.iter().all(|s| s["complete"] == false), "{h:?}");
    let shard = &h.iter().find(|s| s["part"] == 4).expect("part 4")["shard"];
    assert_eq!(shard["parts_complete"], 3, "{shard}\n{said}");
    assert_eq!(shard["complete"], false, "{shard}");
    assert_eq!(shard["part_states"][3]["state"], "running", "{shard}");
    for cmd in ["hosts", "changes"] {
        let o = Command::new(BIN)
            .args([cmd, "--db", &db, "--json"])
            .output()
            .expect("portolan");
        ok(&o, cmd);
        let v: Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(
            v,
            Value::Array(Vec::new()),
            "{cmd} counts an incomplete scan"
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("lab-shards (round 1): 3 of 4 parts complete, not counted yet"),
            "{cmd}: {err}"
        );
    }

    // Part 4 again completes the scan.
    let again = part(4, &[]);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    ok(&lab.portolan(&again), "part 4/4 again");
    let whole = scan(&[]);
    let whole: Vec<&str> = whole.iter().map(String::as_str).collect();
    ok(&lab.portolan(&whole), "the unsharded scan");

    let h = history();
    let complete: Vec<&Value> = h.iter().filter(|s| s["complete"] == true).collect();
    assert_eq!(complete.len(), 2, "{h:?}");
    let union = complete[0];
    assert_eq!(union["shard"]["complete"], true, "{union}");
    assert_eq!(
        union["shard"]["part_states"][3]["scans"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(union["targets"], complete[1]["targets"]);
    let (union_id, whole_id) = (
        union["id"].as_i64().expect("id"),
        complete[1]["id"].as_i64().expect("id"),
    );
    let store = portolan_store::Store::open_existing(&db).expect("store");
    let load = |id| store.load_run(portolan_store::ScanId(id)).expect("load");
    let digest = |run: &ScanRun| {
        let ups: BTreeMap<String, bool> = run
            .hosts
            .iter()
            .map(|h| (h.addr_str().to_string(), h.is_up()))
            .collect();
        (ups, state_counts(run))
    };
    let (u, w) = (load(union_id), load(whole_id));
    let up = u.hosts.iter().filter(|h| h.is_up()).count();
    assert_eq!(up, 4, "{:?}", digest(&u));
    assert_eq!(digest(&u), digest(&w));
    // Nothing changed between them: the union and the unsharded scan agree.
    let o = Command::new(BIN)
        .args(["changes", "--db", &db, "--json"])
        .output()
        .expect("portolan changes");
    ok(&o, "changes");
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).expect("JSON"),
        Value::Array(Vec::new())
    );
}

/// Network namespaces of a scenario's own, deleted when it ends (even by a panic).
struct OwnNamespaces(Vec<String>);

impl Drop for OwnNamespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `--iflist` prints what Nmap's prints, line for line after the "Starting" line: in the
/// lab's scanner namespace, and in a namespace of this scenario's with what the lab lacks
/// (an interface down, an IPv6-only one, routes through gateways with metrics).
fn iflist_agrees_with_nmap(lab: &Lab) {
    let tables = |out: Output, who: &str| {
        assert!(out.status.success(), "{who} --iflist: {out:?}");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        let (_, rest) = text.split_once('\n').expect("a Starting line");
        assert!(rest.contains("**ROUTES**"), "{who}: {text}");
        rest.to_string()
    };
    assert_eq!(
        tables(lab.portolan(&["--iflist"]), "portolan"),
        tables(lab.exec("nmap", &["--iflist"]), "nmap"),
        "in {}",
        lab.scan_ns()
    );

    let (a, b) = (format!("{}-ifa", lab.prefix), format!("{}-ifb", lab.prefix));
    let _guard = OwnNamespaces(vec![a.clone(), b.clone()]);
    let ip = |args: &str| {
        let out = Command::new("ip")
            .args(args.split_whitespace())
            .output()
            .expect("ip");
        assert!(out.status.success(), "ip {args}: {out:?}");
    };
    ip(&format!("netns add {a}"));
    ip(&format!("netns add {b}"));
    ip(&format!(
        "link add ifv0 netns {a} type veth peer name ifv1 netns {b}"
    ));
    ip(&format!("-n {a} link add ifv2 type veth peer name ifv3"));
    for (ns, dev) in [(&a, "lo"), (&a, "ifv0"), (&b, "ifv1"), (&a, "ifv2")] {
        ip(&format!("-n {ns} link set {dev} up"));
    }
    ip(&format!("-n {a} link set ifv0 mtu 1400"));
    ip(&format!("-n {a} addr add 198.18.200.1/24 dev ifv0"));
    ip(&format!("-n {a} -6 addr add 2001:db8::1/64 dev ifv0 nodad"));
    ip(&format!(
        "-n {a} -6 addr add 2001:db8:5::1/48 dev ifv2 nodad"
    ));
    ip(&format!("-n {a} addr add 198.18.202.1/25 dev ifv3"));
    ip(&format!(
        "-n {a} route add 198.19.0.0/16 via 198.18.200.2 metric 7"
    ));
    ip(&format!("-n {a} route add 198.18.64.0/18 via 198.18.200.3"));
    ip(&format!("-n {a} route add default via 198.18.200.2"));
    let run = |program: &str| {
        Command::new("ip")
            .args(["netns", "exec", &a, program, "--iflist"])
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    };
    let ours = tables(run(BIN), "portolan");
    assert_eq!(ours, tables(run("nmap"), "nmap"), "in {a}");
    // What this namespace was made to show, columns aside.
    let lines: Vec<String> = ours
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in [
        "ifv2 (ifv2) (none)/0 ethernet up 1500",
        "ifv3 (ifv3) 198.18.202.1/25 ethernet down 1500",
        "198.19.0.0/16 ifv0 7 198.18.200.2",
        "2001:db8:5::/48 ifv2 256",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(line)),
            "{line:?} in {ours}"
        );
    }
}
