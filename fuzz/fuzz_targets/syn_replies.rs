//! The SYN engine's packet handler on arbitrary bytes (anything the receiver can hand it):
//! it must never panic, and a scan fed garbage still finishes with every port classified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::syn::{SynPoll, SynScan};
use portolan_engine::timing::Template;
use portolan_wire::cookie::CookieKey;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let src = Ipv4Addr::new(198, 18, 0, 1);
    let hosts = vec![Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 11)];
    let mut scan = SynScan::new(
        Template::Insane.timing(),
        src,
        hosts,
        vec![22, 80, 443],
        CookieKey::from_seed([3; 16]),
        1,
    );
    let start = Instant::now();
    let mut now = start;
    // Packets are the input split at 0xFF 0xFF markers, fed between polls.
    let mut chunks = data.split(|&b| b == 0xff).peekable();
    for _ in 0..10_000 {
        if let Some(chunk) = chunks.next() {
            scan.on_packet(now, chunk);
        }
        match scan.poll(now) {
            SynPoll::Send(_) => {}
            SynPoll::WaitUntil(t) => now = t.max(now + Duration::from_micros(1)),
            SynPoll::Done => break,
        }
    }
    if chunks.peek().is_none() && matches!(scan.poll(now + Duration::from_secs(3600)), SynPoll::Done) {
        assert_eq!(scan.results().iter().map(Vec::len).sum::<usize>(), 6);
    }
});
