//! `nmap-services` file parsing: must never panic; a table that loads must answer
//! `top_ports`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::data::services::load_nmap_services;
use portolan_model::Protocol;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(table) = load_nmap_services(s) {
        let _ = table.top_ports(Protocol::Tcp, 100);
    }
});
