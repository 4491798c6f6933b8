//! Port specification parsing (`-p`) against the built-in service table: must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portolan_engine::data::services::ServiceTable;
use portolan_engine::plan::ports::{parse_port_spec, Protos};

fuzz_target!(|data: &[u8]| {
    static TABLE: OnceLock<ServiceTable> = OnceLock::new();
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let table = TABLE.get_or_init(ServiceTable::builtin);
    let _ = parse_port_spec(s, table, Protos::TCP_UDP);
});
