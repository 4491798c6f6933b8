//! The vulnerability feed readers (NVD, KEV, EPSS, Debian; plain or gzip) on arbitrary
//! bytes: must never panic, and a feed that reads must read the same gzipped. The version
//! orders and the CPE reader take the same bytes as text: never a panic, and the orders are
//! antisymmetric.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_vuln::import::read_bytes;
use portolan_vuln::{cpe, version};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let gzipped = data.starts_with(&[0x1f, 0x8b]);
    if let (false, Ok((summary, got))) = (gzipped, read_bytes(data, "fuzz")) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        let packed = gz.finish().unwrap();
        match read_bytes(&packed, "fuzz.gz") {
            Ok((again, got_again)) => {
                assert_eq!(again, summary, "gzip changed the summary");
                assert_eq!(got_again.cves, got.cves, "gzip changed the CVEs");
            }
            Err(e) => panic!("readable plain, not gzipped: {e}"),
        }
    }
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    assert_eq!(version::compare(a, b), version::compare(b, a).reverse());
    assert_eq!(
        version::debian_compare(a, b),
        version::debian_compare(b, a).reverse()
    );
    let _ = version::upstream(a);
    let _ = cpe::parse(a);
});
