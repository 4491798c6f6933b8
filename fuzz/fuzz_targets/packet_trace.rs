//! The `--packet-trace` formatter on arbitrary bytes (whatever a raw or AF_PACKET socket can
//! hand back): as an IP packet, as an ARP or ND frame, sent or received. It must never panic
//! and always describe the packet in exactly one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::io::packet_trace::{trace_line, Direction, PathKind};

fuzz_target!(|data: &[u8]| {
    // The seeds are Ethernet frames: their IP layer, too, so that it is reached at once.
    let inputs = [data, data.get(14..).unwrap_or_default()];
    for bytes in inputs {
        for kind in [PathKind::Ip, PathKind::Arp, PathKind::Nd] {
            for dir in [Direction::Sent, Direction::Received] {
                let line = trace_line(dir, 0.5, kind, bytes);
                assert!(!line.contains('\n'), "{line:?}");
                assert!(line.starts_with("SENT (0.5000s) ") || line.starts_with("RCVD (0.5000s) "));
            }
        }
    }
});
