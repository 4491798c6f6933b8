//! The raw-scan engine's packet handler on arbitrary bytes (anything the receiver can hand
//! it), for a port scan (TCP and UDP slots) and a discovery sweep, over IPv4 and IPv6: it
//! must never panic, and a scan fed garbage still finishes with every probe classified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::core::scan::{Mode, RawScan, Share, Slot};
use portolan_engine::core::Poll;
use portolan_engine::plan::timing::Template;
use portolan_wire::cookie::CookieKey;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn scan(mode: Mode, src: &str, hosts: [&str; 2]) -> RawScan {
    let slots = match mode {
        Mode::Ports => vec![Slot::Syn(22), Slot::Syn(80), Slot::Udp(53), Slot::Udp(161)],
        Mode::Discovery => vec![Slot::Echo, Slot::Syn(443), Slot::Ack(80), Slot::Timestamp],
    };
    RawScan::new(
        Template::Insane.timing(),
        mode,
        src.parse().unwrap(),
        hosts.iter().map(|h| h.parse::<IpAddr>().unwrap()).collect(),
        slots,
        CookieKey::from_seed([3; 16]),
        1,
        Share::ALL,
    )
}

fuzz_target!(|data: &[u8]| {
    let mut scans = [
        scan(Mode::Ports, "198.18.0.1", ["198.18.0.10", "198.18.0.11"]),
        scan(
            Mode::Discovery,
            "198.18.0.1",
            ["198.18.0.10", "198.18.0.11"],
        ),
        scan(Mode::Ports, "2001:2::1", ["2001:2::10", "2001:2::11"]),
    ];
    for scan in &mut scans {
        let start = Instant::now();
        let mut now = start;
        // Packets are the input split at 0xFF 0xFF markers, fed between polls.
        let mut chunks = data.split(|&b| b == 0xff).peekable();
        for _ in 0..10_000 {
            if let Some(chunk) = chunks.next() {
                scan.on_packet(now, chunk);
            }
            match scan.poll(now) {
                Poll::Send(_) => {}
                Poll::WaitUntil(t) => now = t.max(now + Duration::from_micros(1)),
                Poll::WaitForInput => panic!("raw scans never wait for input"),
                Poll::Done => break,
            }
        }
        if chunks.peek().is_none()
            && matches!(scan.poll(now + Duration::from_secs(3600)), Poll::Done)
        {
            assert!(scan.results().iter().map(Vec::len).sum::<usize>() <= 8);
            assert_eq!(scan.answers().len(), 2);
        }
    }
});
