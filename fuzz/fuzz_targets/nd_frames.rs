//! The neighbour discovery ping engine's frame handler on arbitrary bytes (anything an
//! AF_PACKET socket can hand it): it must never panic, and a ping fed garbage still
//! finishes. Each frame is fed twice: as is, and with its ICMPv6 checksum recomputed (when
//! it is long enough to hold one), so that mutations reach the checks behind the checksum.
#![no_main]

#[path = "common/link_frames.rs"]
mod link_frames;

use libfuzzer_sys::fuzz_target;
use portolan_engine::core::nd_ping::{NdPing, MAX_TRIES};
use portolan_engine::plan::timing::Template;
use portolan_wire::ethernet::MacAddr;
use portolan_wire::{icmpv6, ipv6};
use std::net::Ipv6Addr;

/// `frame` with the checksum of what follows a 14-byte Ethernet and 40-byte IPv6 header
/// recomputed over the addresses in that header, or `None` if too short.
fn resealed(frame: &[u8]) -> Option<Vec<u8>> {
    let mut f = frame.to_vec();
    let ip = ipv6::Packet::new_checked(f.get(14..)?).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let end = 14 + 40 + usize::from(ip.payload_len());
    let mut icmp = icmpv6::Packet::new_checked(f.get_mut(14 + 40..end)?).ok()?;
    icmp.fill_checksum(&src, &dst).ok()?;
    Some(f)
}

fuzz_target!(|data: &[u8]| {
    let src: Ipv6Addr = "2001:2::1".parse().unwrap();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let hosts: Vec<Ipv6Addr> = vec!["2001:2::10".parse().unwrap(), "2001:2::11".parse().unwrap()];
    let mut ping = NdPing::new(&Template::Insane.timing(), src, mac, hosts);
    link_frames::feed_between_polls(&mut ping, data, NdPing::poll, |p, now, frame| {
        p.on_frame(now, frame);
        if let Some(f) = resealed(frame) {
            p.on_frame(now, &f);
        }
    });
    assert_eq!(ping.replies().len(), 2);
    assert!(ping.requests_sent().iter().all(|&n| n <= MAX_TRIES));
    for r in ping.replies().iter().flatten() {
        assert!(!r.mac.is_multicast() && r.mac != MacAddr::ZERO);
    }
});
