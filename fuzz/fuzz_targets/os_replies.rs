//! OS detection's reply handling on arbitrary bytes: `classify` and `analyse` must never
//! panic, whatever arrives. The input is a list of chunks; a chunk's first byte chooses
//! whether its bytes are sent raw or wrapped in an IPv4 header from the target (TCP with the
//! ports of one of the probes, ICMP or other), so that the fuzzer reaches every test.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portolan_os::analyse::{analyse, Context, Observations, Reply};
use portolan_os::probes::{classify, HostProbes, OsPorts, OsProbe, SEQ_GAP};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn wrap(h: &HostProbes, sel: u8, body: &[u8]) -> Vec<u8> {
    let proto = match (sel >> 1) & 3 {
        0 | 1 => 6,
        2 => 1,
        _ => 17,
    };
    let mut l4 = body.to_vec();
    if proto == 6 && l4.len() >= 4 {
        // Aim at one of the twenty TCP probe ports, from the port it went to.
        let base = h.tcp_port(OsProbe::Seq(1), 0).unwrap_or(0);
        let off = u16::from(sel >> 3) % 20;
        let sport = if off >= 17 { 81u16 } else { 80 };
        l4[..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&base.wrapping_add(off).to_be_bytes());
    }
    let total = u16::try_from(20 + l4.len()).unwrap_or(u16::MAX);
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend(DST.octets());
    p.extend(SRC.octets());
    p.extend(l4);
    p
}

fuzz_target!(|data: &[u8]| {
    let ports = OsPorts {
        open_tcp: Some(80),
        closed_tcp: Some(81),
        closed_udp: Some(82),
    };
    let h = HostProbes::new(SRC, DST, ports, 5);
    let zero = Instant::now();
    let mut obs = Observations::default();
    for (i, sent) in obs.seq_sent.iter_mut().enumerate() {
        *sent = Some(zero + SEQ_GAP * i as u32);
    }
    let mut rest = data;
    let mut ms = 0u64;
    while let [sel, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(n);
        rest = next;
        ms += u64::from(sel & 0x0f);
        let packet = if sel & 1 == 1 {
            wrap(&h, *sel, body)
        } else {
            body.to_vec()
        };
        let probe = classify(&h, &packet).unwrap_or(OsProbe::U1);
        obs.replies.push(Reply {
            probe,
            at: zero + Duration::from_millis(ms),
            packet,
        });
    }
    for cx in [
        Context::default(),
        Context {
            on_link: true,
            localhost: true,
        },
    ] {
        let _ = analyse(&h, &obs, &cx);
    }
});
