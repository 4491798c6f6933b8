//! Every `portolan-wire` parser on arbitrary bytes: checked views and their accessors,
//! `Repr::parse`, the packets ICMP errors quote, and option iterators must never panic; and a
//! `Repr` that parses must emit and parse back to itself.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use portolan_wire::{
    arp, ethernet, icmpv4, icmpv6, ipv4, ipv6, tcp, udp, ChecksumMode, IpPair, IpProtocol,
};

const V4: IpPair = IpPair::V4 {
    src: Ipv4Addr::new(192, 0, 2, 1),
    dst: Ipv4Addr::new(192, 0, 2, 2),
};
const V6: IpPair = IpPair::V6 {
    src: Ipv6Addr::LOCALHOST,
    dst: Ipv6Addr::UNSPECIFIED,
};

fuzz_target!(|data: &[u8]| {
    // As a captured frame, layer by layer, as a receive loop would.
    frame(data);
    // Every layer on its own too, so inputs need not begin with a plausible Ethernet header.
    arp_layer(data);
    ipv4_layer(data);
    ipv6_layer(data);
    for ips in [V4, V6] {
        transport(IpProtocol::TCP, data, &ips);
        transport(IpProtocol::UDP, data, &ips);
    }
    transport(IpProtocol::ICMP, data, &V4);
    transport(IpProtocol::ICMPV6, data, &V6);
    quoted(data);
});

fn frame(data: &[u8]) {
    let Ok(eth) = ethernet::Packet::new_checked(data) else {
        return;
    };
    let _ = (
        eth.dst_addr(),
        eth.src_addr(),
        eth.ethertype(),
        eth.vlan_tci(),
    );
    if let Ok(repr) = ethernet::Repr::parse(&eth) {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut ethernet::Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let back = ethernet::Repr::parse(&ethernet::Packet::new_checked(&buf[..]).unwrap());
        assert_eq!(back, Ok(repr));
    }
    match eth.payload_ethertype() {
        ethernet::EtherType::ARP => arp_layer(eth.payload()),
        ethernet::EtherType::IPV4 => ipv4_layer(eth.payload()),
        ethernet::EtherType::IPV6 => ipv6_layer(eth.payload()),
        _ => {}
    }
}

fn arp_layer(data: &[u8]) {
    let Ok(p) = arp::Packet::new_checked(data) else {
        return;
    };
    let _ = (p.hardware_type(), p.protocol_type(), p.operation());
    let _ = (p.source_hardware_addr(), p.source_protocol_addr());
    let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    if let Ok(repr) = arp::Repr::parse(&p) {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut arp::Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let back = arp::Repr::parse(&arp::Packet::new_checked(&buf[..]).unwrap());
        assert_eq!(back, Ok(repr));
    }
}

fn ipv4_accessors(p: &ipv4::Packet<&[u8]>) {
    let _ = (
        p.version(),
        p.header_len(),
        p.dscp(),
        p.ecn(),
        p.total_len(),
        p.ident(),
    );
    let _ = (
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.ttl(),
        p.protocol(),
    );
    let _ = (
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
        p.verify_checksum(),
        p.options(),
    );
    if let Ok(repr) = ipv4::Repr::parse(p, ChecksumMode::Ignore) {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let back = ipv4::Packet::new_checked_quoted(&buf[..]).unwrap();
        assert_eq!(ipv4::Repr::parse(&back, ChecksumMode::Verify), Ok(repr));
    }
}

fn ipv4_layer(data: &[u8]) {
    if let Ok(p) = ipv4::Packet::new_checked(data) {
        ipv4_accessors(&p);
        let ips = IpPair::V4 {
            src: p.src_addr(),
            dst: p.dst_addr(),
        };
        transport(p.protocol(), p.payload(), &ips);
    }
    if let Ok(p) = ipv4::Packet::new_checked_quoted(data) {
        ipv4_accessors(&p);
        let _ = p.payload();
    }
}

fn ipv6_accessors(p: &ipv6::Packet<&[u8]>) {
    let _ = (
        p.version(),
        p.traffic_class(),
        p.flow_label(),
        p.payload_len(),
    );
    let _ = (
        p.next_header(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
        p.payload(),
    );
    if let Ok(repr) = ipv6::Repr::parse(p) {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let back = ipv6::Packet::new_checked_quoted(&buf[..]).unwrap();
        assert_eq!(ipv6::Repr::parse(&back), Ok(repr));
    }
}

fn ipv6_layer(data: &[u8]) {
    if let Ok(p) = ipv6::Packet::new_checked(data) {
        ipv6_accessors(&p);
        let ips = IpPair::V6 {
            src: p.src_addr(),
            dst: p.dst_addr(),
        };
        transport(p.next_header(), p.payload(), &ips);
    }
    if let Ok(p) = ipv6::Packet::new_checked_quoted(data) {
        ipv6_accessors(&p);
    }
}

fn transport(protocol: IpProtocol, data: &[u8], ips: &IpPair) {
    match (protocol, ips) {
        (IpProtocol::TCP, _) => tcp_layer(data, ips),
        (IpProtocol::UDP, _) => udp_layer(data, ips),
        (IpProtocol::ICMP, _) => icmpv4_layer(data),
        (IpProtocol::ICMPV6, IpPair::V6 { src, dst }) => icmpv6_layer(data, src, dst),
        _ => {}
    }
}

fn tcp_layer(data: &[u8], ips: &IpPair) {
    let _ = tcp::options(data).count();
    let Ok(p) = tcp::Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.src_port(),
        p.dst_port(),
        p.seq_number(),
        p.ack_number(),
        p.flags(),
    );
    let _ = (
        p.window_len(),
        p.checksum(),
        p.urgent_at(),
        p.verify_checksum(ips),
    );
    let _ = (tcp::options(p.options()).count(), p.payload());
    if let Ok(repr) = tcp::Repr::parse(&p, ips, ChecksumMode::Ignore) {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut tcp::Packet::new_unchecked(&mut buf[..]), ips)
            .unwrap();
        let back = tcp::Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(tcp::Repr::parse(&back, ips, ChecksumMode::Verify), Ok(repr));
        // Options that parse re-emit to something that parses the same.
        let list: Result<Vec<_>, _> = repr.options().collect();
        if let Ok(list) = list {
            let mut raw = [0u8; 64];
            if let Ok(n) = tcp::emit_options(&list, &mut raw) {
                let again: Result<Vec<_>, _> = tcp::options(&raw[..n]).collect();
                let again = again.unwrap();
                assert_eq!(again[..list.len()], list[..]);
            }
        }
    }
}

fn udp_layer(data: &[u8], ips: &IpPair) {
    let Ok(p) = udp::Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.src_port(),
        p.dst_port(),
        p.len(),
        p.checksum(),
        p.verify_checksum(ips),
    );
    let _ = p.payload();
    if let Ok(repr) = udp::Repr::parse(&p, ips, ChecksumMode::Ignore) {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut udp::Packet::new_unchecked(&mut buf[..]), ips)
            .unwrap();
        let back = udp::Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(udp::Repr::parse(&back, ips, ChecksumMode::Verify), Ok(repr));
    }
}

fn icmpv4_layer(data: &[u8]) {
    let Ok(p) = icmpv4::Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.msg_type(),
        p.msg_code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq_no(),
    );
    let _ = (
        p.rest_of_header(),
        p.next_hop_mtu(),
        p.timestamps(),
        p.address_mask(),
    );
    let _ = (p.verify_checksum(), p.data(), p.inner());
    if let Ok(q) = p.quoted() {
        let _ = (q.ports(), q.tcp_seq(), q.echo_ident_seq());
    }
    if let Ok(repr) = icmpv4::Repr::parse(&p, ChecksumMode::Ignore) {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..]))
            .unwrap();
        let back = icmpv4::Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(icmpv4::Repr::parse(&back, ChecksumMode::Verify), Ok(repr));
    }
}

fn icmpv6_layer(data: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
    let Ok(p) = icmpv6::Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.msg_type(),
        p.msg_code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq_no(),
    );
    let _ = (p.rest_of_header(), p.neighbor_flags(), p.target_addr());
    let _ = (p.verify_checksum(src, dst), p.data(), p.inner());
    let _ = icmpv6::ndp_options(p.ndp_options()).count();
    if let Ok(q) = p.quoted() {
        let _ = (q.ports(), q.tcp_seq(), q.echo_ident_seq());
    }
    if let Ok(repr) = icmpv6::Repr::parse(&p, src, dst, ChecksumMode::Ignore) {
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut icmpv6::Packet::new_unchecked(&mut buf[..]), src, dst)
            .unwrap();
        let back = icmpv6::Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            icmpv6::Repr::parse(&back, src, dst, ChecksumMode::Verify),
            Ok(repr)
        );
    }
}

fn quoted(data: &[u8]) {
    if let Ok(q) = icmpv4::parse_quoted(data) {
        let _ = (q.ports(), q.tcp_seq(), q.echo_ident_seq());
    }
    if let Ok(q) = icmpv6::parse_quoted(data) {
        let _ = (q.ports(), q.tcp_seq(), q.echo_ident_seq());
    }
}
