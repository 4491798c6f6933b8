//! The ARP ping engine's frame handler on arbitrary bytes (anything an AF_PACKET socket can
//! hand it): it must never panic, and a ping fed garbage still finishes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::arp_ping::{ArpPing, ArpPoll};
use portolan_engine::timing::Template;
use portolan_wire::ethernet::MacAddr;
use std::net::Ipv4Addr;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let src = Ipv4Addr::new(198, 18, 0, 1);
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let hosts = vec![Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 11)];
    let mut ping = ArpPing::new(&Template::Insane.timing(), src, mac, hosts);
    let mut now = Instant::now();
    // Frames are the input split at 0xFE bytes, fed between polls.
    let mut chunks = data.split(|&b| b == 0xfe).peekable();
    let mut finished = false;
    for _ in 0..10_000 {
        if let Some(chunk) = chunks.next() {
            ping.on_frame(now, chunk);
        }
        match ping.poll(now) {
            ArpPoll::Send(_) => {}
            ArpPoll::WaitUntil(t) => {
                assert!(t > now);
                now = t;
            }
            ArpPoll::Done => {
                finished = true;
                break;
            }
        }
    }
    assert!(finished || chunks.peek().is_some());
    assert_eq!(ping.replies().len(), 2);
    assert!(ping.requests_sent().iter().all(|&n| n <= 3));
});
