//! Writes a synthetic NVD-size feed and a large scan for bench/vulndb.sh (nothing of it is
//! committed): yearly NVD CVE JSON 2.0 files (.json.gz) with realistic configurations
//! (products drawn with a skew, as real CVEs cluster on a few products; ranges of every
//! kind; AND configurations with a platform), a CISA KEV file, an EPSS file, and an
//! Nmap-style XML scan of HOSTS hosts with SERVICES open services.
//!
//!   cargo run --release -p portolan-vuln --example synth_feeds -- OUT_DIR [CVES] [HOSTS] [SERVICES]

use flate2::write::GzEncoder;
use serde_json::{json, Value};
use std::io::{BufWriter, Write};
use std::path::Path;

/// A small deterministic generator (xorshift64*): the same files every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Skewed toward 0: a few products get most CVEs.
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) - 1.0) as u64 % n.max(1)
    }
}

const LAB: &[(&str, &str, &str)] = &[
    ("openbsd", "openssh", "p"),
    ("f5", "nginx", ""),
    ("nginx", "nginx", ""),
    ("redis", "redis", ""),
    ("beasts", "vsftpd", ""),
    ("thekelleys", "dnsmasq", ""),
    ("mariadb", "mariadb", ""),
    ("oracle", "mysql", ""),
    ("postgresql", "postgresql", ""),
    ("apache", "http_server", ""),
];

/// The skew rank of the lab's products: popular (several hundred entries each, as OpenSSH
/// has in NVD), not the heaviest (rank 0 gets about 7% of all entries, like the kernel).
const LAB_RANK: u64 = 300;

fn product(i: u64) -> (String, String) {
    match i.checked_sub(LAB_RANK).and_then(|k| LAB.get(k as usize)) {
        Some((v, p, _)) => (v.to_string(), p.to_string()),
        None => (format!("vendor{}", i / 3), format!("product{i}")),
    }
}

fn version(rng: &mut Rng, openssh: bool) -> String {
    let v = format!("{}.{}.{}", rng.below(12), rng.below(30), rng.below(40));
    if openssh {
        format!("{}.{}p{}", rng.below(10), rng.below(10), 1 + rng.below(2))
    } else {
        v
    }
}

fn cpe_match(rng: &mut Rng, products: u64) -> Value {
    let i = rng.skewed(products);
    let (vendor, prod) = product(i);
    let openssh = prod == "openssh";
    let mut m = json!({
        "vulnerable": true,
        "matchCriteriaId": format!("{:08X}-0000-0000-0000-{:012X}", rng.next() as u32, rng.next() & 0xffff_ffff_ffff),
    });
    // Exact versions (older CVEs list every affected version), ranges of each kind, and a
    // rare `-` (no version).
    match rng.below(200) {
        0..=89 => {
            m["criteria"] = json!(format!(
                "cpe:2.3:a:{vendor}:{prod}:{}:*:*:*:*:*:*:*",
                version(rng, openssh)
            ))
        }
        90..=149 => {
            m["criteria"] = json!(format!("cpe:2.3:a:{vendor}:{prod}:*:*:*:*:*:*:*:*"));
            m["versionEndExcluding"] = json!(version(rng, openssh));
        }
        150..=173 => {
            m["criteria"] = json!(format!("cpe:2.3:a:{vendor}:{prod}:*:*:*:*:*:*:*:*"));
            m["versionStartIncluding"] = json!(version(rng, openssh));
            m["versionEndExcluding"] = json!(version(rng, openssh));
        }
        174..=189 => {
            m["criteria"] = json!(format!("cpe:2.3:a:{vendor}:{prod}:*:*:*:*:*:*:*:*"));
            m["versionEndIncluding"] = json!(version(rng, openssh));
        }
        190..=198 => {
            m["criteria"] = json!(format!("cpe:2.3:a:{vendor}:{prod}:*:*:*:*:*:*:*:*"));
            m["versionStartExcluding"] = json!(version(rng, openssh));
            m["versionEndIncluding"] = json!(version(rng, openssh));
        }
        _ => m["criteria"] = json!(format!("cpe:2.3:a:{vendor}:{prod}:-:*:*:*:*:*:*:*")),
    }
    m
}

fn cve(rng: &mut Rng, year: u32, n: u64, products: u64) -> Value {
    let score = (rng.below(100) as f64) / 10.0;
    let sev = match score {
        s if s >= 9.0 => "CRITICAL",
        s if s >= 7.0 => "HIGH",
        s if s >= 4.0 => "MEDIUM",
        _ => "LOW",
    };
    let mut configs = Vec::new();
    for _ in 0..1 + rng.below(2) {
        let matches: Vec<Value> = (0..1 + rng.skewed(12))
            .map(|_| cpe_match(rng, products))
            .collect();
        let mut config =
            json!({"nodes": [{"operator": "OR", "negate": false, "cpeMatch": matches}]});
        if rng.below(5) == 0 {
            // Application running on a platform: the platform is not vulnerable.
            config["operator"] = json!("AND");
            if let Some(n) = config["nodes"].as_array_mut() {
                n.push(json!({"operator": "OR", "negate": false, "cpeMatch": [{
                    "vulnerable": false,
                    "criteria": "cpe:2.3:o:debian:debian_linux:12.0:*:*:*:*:*:*:*",
                    "matchCriteriaId": "00000000-0000-0000-0000-000000000000"}]}));
            }
        }
        configs.push(config);
    }
    let refs: Vec<Value> = (0..2 + rng.below(8))
        .map(|i| json!({"url": format!("https://example.org/advisories/{year}/{n}/{i}"), "source": "cve@mitre.org", "tags": ["Third Party Advisory"]}))
        .collect();
    json!({"cve": {
        "id": format!("CVE-{year}-{n}"),
        "sourceIdentifier": "cve@mitre.org",
        "published": format!("{year}-{:02}-{:02}T10:15:00.000", 1 + rng.below(12), 1 + rng.below(28)),
        "lastModified": format!("{year}-12-{:02}T10:15:00.000", 1 + rng.below(28)),
        "vulnStatus": "Analyzed",
        "descriptions": [
            {"lang": "en", "value": format!("A synthetic flaw number {n} of {year} in a product allows remote attackers to cause a denial of service or possibly execute arbitrary code via crafted input that is not checked before it is copied into a fixed-size buffer on the stack, as seen in advisories of the period.")},
            {"lang": "es", "value": "Una vulnerabilidad sintética."}
        ],
        "metrics": {"cvssMetricV31": [{
            "source": "nvd@nist.gov", "type": "Primary",
            "cvssData": {"version": "3.1", "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                "attackVector": "NETWORK", "attackComplexity": "LOW", "privilegesRequired": "NONE",
                "userInteraction": "NONE", "scope": "UNCHANGED", "confidentialityImpact": "HIGH",
                "integrityImpact": "HIGH", "availabilityImpact": "HIGH", "baseScore": score, "baseSeverity": sev},
            "exploitabilityScore": 3.9, "impactScore": 5.9}],
            "cvssMetricV2": [{"source": "nvd@nist.gov", "type": "Primary",
            "cvssData": {"version": "2.0", "vectorString": "AV:N/AC:L/Au:N/C:P/I:P/A:P", "baseScore": 7.5},
            "baseSeverity": "HIGH", "exploitabilityScore": 10.0, "impactScore": 6.4}]},
        "weaknesses": [{"source": "nvd@nist.gov", "type": "Primary", "description": [{"lang": "en", "value": "CWE-787"}]}],
        "configurations": configs,
        "references": refs
    }})
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = Path::new(args.get(1).map(String::as_str).unwrap_or("synth"));
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (cves, hosts, services) = (num(2, 300_000), num(3, 4096), num(4, 20_000));
    let products = 20_000;
    std::fs::create_dir_all(out.join("nvd"))?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let years: Vec<u32> = (2002..=2025).collect();
    let per_year = cves / years.len() as u64;
    let mut ids = Vec::new();
    for (y, year) in years.iter().enumerate() {
        let count = if y + 1 == years.len() {
            cves - per_year * (years.len() as u64 - 1)
        } else {
            per_year
        };
        let f = std::fs::File::create(out.join(format!("nvd/nvdcve-2.0-{year}.json.gz")))?;
        let mut w = BufWriter::new(GzEncoder::new(f, flate2::Compression::fast()));
        write!(
            w,
            "{{\"resultsPerPage\":{count},\"startIndex\":0,\"totalResults\":{count},\"format\":\"NVD_CVE\",\"version\":\"2.0\",\"timestamp\":\"2025-01-15T03:00:00.000\",\"vulnerabilities\":["
        )?;
        for n in 0..count {
            if n > 0 {
                w.write_all(b",")?;
            }
            let id = 1000 + n;
            serde_json::to_writer(&mut w, &cve(&mut rng, *year, id, products))?;
            ids.push(format!("CVE-{year}-{id}"));
        }
        w.write_all(b"]}")?;
        w.into_inner()
            .map_err(|e| e.into_error())?
            .finish()?
            .flush()?;
    }
    // KEV: about 1,300 of them; EPSS: every CVE.
    let kev: Vec<Value> = ids
        .iter()
        .step_by(230)
        .map(|id| json!({"cveID": id, "vendorProject": "V", "product": "P", "vulnerabilityName": "x", "dateAdded": "2024-01-01", "shortDescription": "x", "requiredAction": "x", "dueDate": "2024-02-01", "knownRansomwareCampaignUse": "Unknown", "notes": ""}))
        .collect();
    let doc = json!({"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": "2025.01.14", "dateReleased": "2025-01-14T00:00:00.000Z", "count": kev.len(), "vulnerabilities": kev});
    std::fs::write(out.join("kev.json"), serde_json::to_vec(&doc)?)?;
    let f = std::fs::File::create(out.join("epss.csv.gz"))?;
    let mut w = BufWriter::new(GzEncoder::new(f, flate2::Compression::fast()));
    writeln!(
        w,
        "#model_version:v2023.03.01,score_date:2025-01-15T00:00:00+0000"
    )?;
    writeln!(w, "cve,epss,percentile")?;
    for id in &ids {
        let e = rng.below(100_000) as f64 / 100_000.0;
        writeln!(w, "{id},{e:.5},{e:.5}")?;
    }
    w.into_inner()
        .map_err(|e| e.into_error())?
        .finish()?
        .flush()?;
    // The scans: a fleet (each product deployed at a few versions, as images and
    // packages repeat across a network), and the worst case (every version drawn anew).
    write_scan(&out.join("scan.xml"), hosts, services, products, true)?;
    write_scan(
        &out.join("scan-distinct.xml"),
        hosts,
        services,
        products,
        false,
    )?;
    eprintln!(
        "wrote {cves} CVEs in {} yearly files, {} KEV, {cves} EPSS, a scan of {hosts} hosts with {services} services, in {}",
        years.len(),
        ids.len().div_ceil(230),
        out.display()
    );
    Ok(())
}

/// A version of `product` as deployed: one of 16 per product in a fleet, else any.
fn deployed(rng: &mut Rng, fleet: bool, product: &str, openssh: bool) -> String {
    if !fleet {
        return version(rng, openssh);
    }
    let seed = product.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    });
    let mut pick = Rng(seed ^ (1 + rng.below(16)).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    version(&mut pick, openssh)
}

/// An Nmap-style XML scan of `hosts` hosts sharing `services` open services: 60% the
/// lab's products (half the OpenSSH ones Debian builds), 32% products of the feed, 8%
/// unknown.
fn write_scan(
    path: &Path,
    hosts: u64,
    services: u64,
    products: u64,
    fleet: bool,
) -> std::io::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    writeln!(w, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<nmaprun scanner=\"nmap\" args=\"nmap -sV synthetic\" start=\"1736900000\" version=\"7.93\" xmloutputversion=\"1.05\">\n<scaninfo type=\"syn\" protocol=\"tcp\" numservices=\"1000\" services=\"1-1000\"/>")?;
    let lab_names = [
        ("ssh", "OpenSSH", "openbsd:openssh"),
        ("http", "nginx", "igor_sysoev:nginx"),
        ("redis", "Redis key-value store", "redis:redis"),
        ("ftp", "vsftpd", "beasts:vsftpd"),
        ("domain", "dnsmasq", "thekelleys:dnsmasq"),
        ("mysql", "MySQL", "mysql:mysql"),
        ("postgresql", "PostgreSQL DB", "postgresql:postgresql"),
        ("http", "Apache httpd", "apache:http_server"),
    ];
    let mut left = services;
    for h in 0..hosts {
        let here = left / (hosts - h).max(1);
        left -= here;
        writeln!(w, "<host starttime=\"1736900000\" endtime=\"1736900010\"><status state=\"up\" reason=\"syn-ack\" reason_ttl=\"64\"/>\n<address addr=\"10.{}.{}.{}\" addrtype=\"ipv4\"/>\n<ports>", (h >> 16) & 255, (h >> 8) & 255, h & 255)?;
        for p in 0..here {
            let (name, product, version, cpe) = match rng.below(50) {
                0..=29 => {
                    let (name, product, cpe) =
                        lab_names[rng.below(lab_names.len() as u64) as usize];
                    let v = deployed(&mut rng, fleet, product, product == "OpenSSH");
                    let v = if product == "OpenSSH" && rng.below(2) == 0 {
                        format!("{v} Debian 2+deb12u{}", rng.below(8))
                    } else {
                        v
                    };
                    (
                        name.to_string(),
                        product.to_string(),
                        v.clone(),
                        format!("cpe:/a:{cpe}:{}", v.split(' ').next().unwrap_or("")),
                    )
                }
                30..=45 => {
                    // Any product of the feed, the heaviest included.
                    let i = if fleet {
                        Rng(17 + rng.below(300)).below(products)
                    } else {
                        rng.below(products)
                    };
                    let (vendor, prod) = product(i);
                    let v = deployed(&mut rng, fleet, &prod, false);
                    (
                        prod.clone(),
                        prod.clone(),
                        v.clone(),
                        format!("cpe:/a:{vendor}:{prod}:{v}"),
                    )
                }
                _ => (
                    "unknown".into(),
                    "Something".into(),
                    "1.0".into(),
                    String::new(),
                ),
            };
            let cpe = if cpe.is_empty() {
                String::new()
            } else {
                format!("<cpe>{cpe}</cpe>")
            };
            writeln!(w, "<port protocol=\"tcp\" portid=\"{}\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"64\"/><service name=\"{name}\" product=\"{product}\" version=\"{version}\" method=\"probed\" conf=\"10\">{cpe}</service></port>", 1 + p)?;
        }
        writeln!(w, "</ports>\n</host>")?;
    }
    writeln!(w, "<runstats><finished time=\"1736900100\" timestr=\"x\" elapsed=\"100\" summary=\"x\" exit=\"success\"/><hosts up=\"{hosts}\" down=\"0\" total=\"{hosts}\"/></runstats>\n</nmaprun>")?;
    w.flush()?;
    Ok(())
}
