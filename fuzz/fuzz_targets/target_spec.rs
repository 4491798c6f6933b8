//! Target specification parsing (`parse_target`, `-iL` splitting, `--exclude`): must never
//! panic, nor must counting or iterating (the first 1000 addresses of) a parsed spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::plan::targets::{parse_exclude_arg, parse_target, parse_target_list};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(spec) = parse_target(s) {
        let _ = spec.count();
        if let Ok(it) = spec.iter_addrs() {
            for addr in it.take(1000) {
                std::hint::black_box(addr);
            }
        }
    }

    for tok in parse_target_list(s).iter().take(16) {
        let _ = parse_target(tok);
    }

    let _ = parse_exclude_arg(s);
});
