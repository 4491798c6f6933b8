//! The traceroute core's packet handler on arbitrary bytes, as they come (answers from the
//! hosts) and quoted in an ICMP time exceeded from a router: it must never panic, and the
//! trace still ends with at most one hop per TTL, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_engine::core::trace::{TraceConfig, TraceProbe, TraceTarget, Tracer, MAX_TTL};
use portolan_engine::core::Poll;
use portolan_wire::build::{build_icmpv4, Ipv4Params};
use portolan_wire::icmpv4;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn target(ip: &str, probe: TraceProbe) -> TraceTarget {
    TraceTarget {
        ip: ip.parse().unwrap(),
        probe,
        payload: Vec::new(),
        distance: None,
    }
}

/// `inner` quoted in a time exceeded from a router.
fn expired(inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 64 + inner.len()];
    let ip = Ipv4Params {
        src: Ipv4Addr::new(198, 18, 0, 2),
        dst: Ipv4Addr::new(198, 18, 0, 1),
        ttl: 64,
        ident: 0,
        dont_frag: false,
    };
    let te = icmpv4::Repr::TimeExceeded { code: 0, inner };
    match build_icmpv4(&mut buf, None, &ip, &te) {
        Ok(n) => {
            buf.truncate(n);
            buf
        }
        Err(_) => Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut tracer = Tracer::new(
        TraceConfig::default(),
        vec![
            target("198.18.2.10", TraceProbe::TcpSyn { port: 22 }),
            target("198.18.2.11", TraceProbe::IcmpEcho),
            target("198.18.2.12", TraceProbe::Udp { port: 53 }),
        ],
    );
    let mut now = Instant::now();
    // Packets are the input split at 0xFF 0xFF markers, fed between polls, each also
    // quoted by a router.
    let mut chunks = data.split(|&b| b == 0xff);
    let mut done = false;
    for _ in 0..100_000 {
        if let Some(chunk) = chunks.next() {
            tracer.on_packet(now, chunk);
            tracer.on_packet(now, &expired(chunk));
        }
        match tracer.poll(now) {
            Poll::Send(_) => {}
            Poll::WaitUntil(t) => now = t.max(now + Duration::from_micros(1)),
            Poll::WaitForInput => panic!("the trace waits for nothing"),
            Poll::Done => {
                done = true;
                break;
            }
        }
    }
    assert!(done, "the trace never ended");
    for r in tracer.results() {
        assert!(r.hops.len() <= usize::from(MAX_TTL));
        assert!(r.hops.windows(2).all(|w| w[0].ttl < w[1].ttl));
    }
});
