//! `nmap-payloads` parsing: must never panic on any text, every reported error must
//! carry a real line number, and the table must answer lookups.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::data::payloads::{parse_nmap_payloads, MAX_PAYLOADS_PER_PORT};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (table, errors) = parse_nmap_payloads(&text);
    let lines = text.lines().count().max(1);
    for e in &errors {
        assert!(
            e.line >= 1 && e.line <= lines + 1,
            "line {} of {lines}",
            e.line
        );
        let _ = e.to_string();
    }
    for port in table.ports().take(64) {
        let list = table.for_port(port);
        assert!(!list.is_empty() && list.len() <= MAX_PAYLOADS_PER_PORT);
        assert_eq!(table.first(port), list.first().map(Vec::as_slice));
    }
});
