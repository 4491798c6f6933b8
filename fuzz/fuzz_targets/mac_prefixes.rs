//! `nmap-mac-prefixes` parsing: must never panic; every warning carries a line inside the
//! text, and a table that loads answers lookups (also for the prefixes it just read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::data::macvendor::parse_mac_prefixes;
use portolan_wire::ethernet::MacAddr;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    match parse_mac_prefixes(&text) {
        Ok(table) => {
            assert!(!table.is_empty());
            for w in table.warnings() {
                assert!(w.line() >= 1 && w.line() <= lines, "{w}");
            }
            let _ = table.lookup(MacAddr::ZERO);
            let _ = table.lookup(MacAddr::BROADCAST);
            // A 12-digit entry read from the first line must be found again.
            if let Some(first) = text.lines().next() {
                let mut it = first.trim().splitn(2, |c: char| c.is_ascii_whitespace());
                let prefix = it.next().unwrap_or("");
                if prefix.len() == 12 && table.warnings().iter().all(|w| w.line() != 1) {
                    if let Ok(v) = u64::from_str_radix(prefix, 16) {
                        let b = v.to_be_bytes();
                        let mac = MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]);
                        assert!(table.lookup(mac).is_some());
                    }
                }
            }
        }
        Err(_) => {}
    }
});
