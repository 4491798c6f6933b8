//! The ARP ping engine's frame handler on arbitrary bytes (anything an AF_PACKET socket can
//! hand it): it must never panic, and a ping fed garbage still finishes.
#![no_main]

#[path = "common/link_frames.rs"]
mod link_frames;

use libfuzzer_sys::fuzz_target;
use portolan_engine::core::arp_ping::{ArpPing, MAX_TRIES};
use portolan_engine::plan::timing::Template;
use portolan_wire::ethernet::MacAddr;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let src = Ipv4Addr::new(198, 18, 0, 1);
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let hosts = vec![Ipv4Addr::new(198, 18, 0, 10), Ipv4Addr::new(198, 18, 0, 11)];
    let mut ping = ArpPing::new(&Template::Insane.timing(), src, mac, hosts);
    link_frames::feed_between_polls(&mut ping, data, ArpPing::poll, |p, now, frame| {
        p.on_frame(now, frame)
    });
    assert_eq!(ping.replies().len(), 2);
    assert!(ping.requests_sent().iter().all(|&n| n <= MAX_TRIES));
});
