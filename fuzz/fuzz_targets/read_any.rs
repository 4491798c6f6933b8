//! `read_any` (the reader every subcommand uses) on arbitrary bytes: must never panic. It
//! sniffs JSON or XML after an optional byte-order mark; a run that reads must read the
//! same with a mark in front.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_report::read::read_any_from;

fuzz_target!(|data: &[u8]| {
    let Ok(run) = read_any_from(data) else { return };
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), data].concat();
    match read_any_from(&with_bom[..]) {
        Ok(again) => assert_eq!(again, run, "a byte-order mark changed the result"),
        Err(e) => panic!("readable without a byte-order mark, not with one: {e}"),
    }
});
