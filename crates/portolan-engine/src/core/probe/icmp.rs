//! ICMP query probes for host discovery: echo (-PE, IPv4 and IPv6), timestamp (-PP) and
//! address mask (-PM), the latter two IPv4 only (ICMPv6 has neither: nothing is sent).
//!
//! The stamp travels as the identifier (`stamp >> 16`) and sequence number (`stamp as
//! u16`), which replies and quoting errors both carry back. The cookie is keyed on the
//! request's ICMP type in place of a port, so an echo reply cannot pass for a timestamp
//! reply.

use super::{
    unreach_reason, Ctx, PayloadFn, Probe, ProbeKind, QuotedProbe, Reject, Reply, Slot, Verdict,
    KIND_CODES, PROBE_IP_ID,
};
use portolan_model::PortState;
use portolan_wire::build::{
    build_icmp_echo_v4, build_icmp_echo_v6, build_icmpv4, Ipv4Params, Ipv6Params,
};
use portolan_wire::{icmpv4, icmpv6, IpProtocol};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// The ICMP kind (echo, timestamp and address mask slots).
#[derive(Debug, Clone, Copy, Default)]
pub struct Icmp;

/// The query was answered.
const ICMP_REPLY: u8 = KIND_CODES;

/// The slots of this kind, in the order a quoted query is matched against them.
const SLOTS: [Slot; 3] = [Slot::Echo, Slot::Timestamp, Slot::Netmask];

fn stamp_of(ident: u16, seq: u16) -> u32 {
    u32::from(ident) << 16 | u32::from(seq)
}

impl ProbeKind for Icmp {
    fn protocols(&self) -> &'static [IpProtocol] {
        &[IpProtocol::ICMP, IpProtocol::ICMPV6]
    }

    fn cookie_port(&self, slot: Slot) -> u16 {
        // The ICMP request types.
        match slot {
            Slot::Echo => 8,
            Slot::Timestamp => 13,
            Slot::Netmask => 17,
            _ => 0,
        }
    }

    fn build(
        &self,
        buf: &mut [u8],
        p: &Probe,
        _payload: &[u8],
        ttl: u8,
    ) -> Result<usize, portolan_wire::Error> {
        let (ident, seq_no) = ((p.stamp >> 16) as u16, p.stamp as u16);
        match (p.src, p.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let ip = Ipv4Params {
                    src,
                    dst,
                    ttl,
                    ident: PROBE_IP_ID,
                    dont_frag: false,
                };
                let query = match p.slot {
                    Slot::Echo => return build_icmp_echo_v4(buf, None, &ip, ident, seq_no, &[]),
                    Slot::Timestamp => icmpv4::Repr::TimestampRequest {
                        ident,
                        seq_no,
                        originate: 0,
                        receive: 0,
                        transmit: 0,
                    },
                    Slot::Netmask => icmpv4::Repr::AddressMaskRequest {
                        ident,
                        seq_no,
                        mask: Ipv4Addr::UNSPECIFIED,
                    },
                    _ => return Ok(0),
                };
                build_icmpv4(buf, None, &ip, &query)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ip = Ipv6Params {
                    src,
                    dst,
                    hop_limit: ttl,
                    traffic_class: 0,
                    flow_label: 0,
                };
                match p.slot {
                    Slot::Echo => build_icmp_echo_v6(buf, None, &ip, ident, seq_no, &[]),
                    // No ICMPv6 timestamp or mask requests: nothing to send.
                    _ => Ok(0),
                }
            }
            _ => Ok(0),
        }
    }

    fn classify_reply(&self, ctx: &Ctx, reply: &Reply) -> Result<Verdict, Reject> {
        let (slot, stamp) = match (reply.from, reply.protocol) {
            (IpAddr::V4(_), IpProtocol::ICMP) => {
                let icmp =
                    icmpv4::Packet::new_checked(reply.payload).map_err(|_| Reject::Invalid)?;
                let slot = match icmp.msg_type() {
                    icmpv4::Message::ECHO_REPLY => Slot::Echo,
                    icmpv4::Message::TIMESTAMP_REPLY => Slot::Timestamp,
                    icmpv4::Message::ADDRESS_MASK_REPLY => Slot::Netmask,
                    _ => return Err(Reject::NotOurs),
                };
                (slot, stamp_of(icmp.echo_ident(), icmp.echo_seq_no()))
            }
            (IpAddr::V6(_), IpProtocol::ICMPV6) => {
                let icmp =
                    icmpv6::Packet::new_checked(reply.payload).map_err(|_| Reject::Invalid)?;
                if icmp.msg_type() != icmpv6::Message::ECHO_REPLY {
                    return Err(Reject::NotOurs);
                }
                (Slot::Echo, stamp_of(icmp.echo_ident(), icmp.echo_seq_no()))
            }
            _ => return Err(Reject::NotOurs),
        };
        let epoch = ctx.check_stamp(reply.from, slot, 0, stamp)?;
        Ok(Verdict {
            slot,
            code: ICMP_REPLY,
            epoch: Some(epoch),
        })
    }

    fn classify_quoted(&self, ctx: &Ctx, q: &QuotedProbe) -> Result<(Slot, u8), Reject> {
        let (ident, seq) = q.echo_ident_seq().ok_or(Reject::Invalid)?;
        let stamp = stamp_of(ident, seq);
        // The quote's type is not trusted (a NAT may rewrite it); the cookie tells which.
        let slot = SLOTS
            .into_iter()
            .find(|&s| ctx.check_stamp(q.dst, s, 0, stamp).is_ok())
            .ok_or(Reject::Invalid)?;
        Ok((slot, stamp as u8))
    }

    fn meaning(&self, slot: Slot, code: u8) -> (PortState, &'static str) {
        match code {
            ICMP_REPLY => (
                PortState::Open,
                match slot {
                    Slot::Timestamp => "timestamp-reply",
                    Slot::Netmask => "addressmask-reply",
                    _ => "echo-reply",
                },
            ),
            c => match unreach_reason(c) {
                Some((reason, _)) => (PortState::Filtered, reason),
                None => (PortState::Filtered, "no-response"),
            },
        }
    }

    fn describe(&self, text: &mut String, p: &Probe, _payload: PayloadFn) {
        let name = match p.slot {
            Slot::Echo => "echo-request",
            Slot::Timestamp => "timestamp-request",
            Slot::Netmask => "netmask-request",
            _ => return,
        };
        let _ = writeln!(
            text,
            "SENT ICMP {} > {} {} id={} seq={}",
            p.src,
            p.dst,
            name,
            p.stamp >> 16,
            p.stamp & 0xffff
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{UNANSWERED, UNREACH_V4};
    use super::*;
    use portolan_wire::build::build_icmpv6;

    fn reply4(p: &Probe, reply: &icmpv4::Repr) -> Vec<u8> {
        let mut buf = vec![0u8; 256];
        let len = build_icmpv4(&mut buf, None, &ip4(p.dst, p.src, 57), reply).unwrap();
        buf.truncate(len);
        buf
    }

    fn echo_reply6(p: &Probe, ident: u16, seq_no: u16) -> Vec<u8> {
        let mut buf = vec![0u8; 256];
        let reply = icmpv6::Repr::EchoReply {
            ident,
            seq_no,
            data: &[],
        };
        let len = build_icmpv6(&mut buf, None, &ip6(p.dst, p.src, 57), &reply).unwrap();
        buf.truncate(len);
        buf
    }

    #[test]
    fn queries_build_and_parse_back() {
        let stamp = 0x1234_5678;
        for (slot, msg_type) in [
            (Slot::Echo, icmpv4::Message::ECHO_REQUEST),
            (Slot::Timestamp, icmpv4::Message::TIMESTAMP_REQUEST),
            (Slot::Netmask, icmpv4::Message::ADDRESS_MASK_REQUEST),
        ] {
            let pkt = build(&probe(SRC4, DST4, slot, 0, stamp));
            let icmp = icmpv4::Packet::new_checked(transport(&pkt, IpProtocol::ICMP)).unwrap();
            assert_eq!(icmp.msg_type(), msg_type);
            assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0x1234, 0x5678));
            assert!(icmp.verify_checksum());
        }
        let pkt = build(&probe(SRC6, DST6, Slot::Echo, 0, stamp));
        let icmp = icmpv6::Packet::new_checked(transport(&pkt, IpProtocol::ICMPV6)).unwrap();
        assert_eq!(icmp.msg_type(), icmpv6::Message::ECHO_REQUEST);
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no()), (0x1234, 0x5678));
        // No ICMPv6 timestamp or mask requests.
        let mut buf = [0u8; 128];
        for slot in [Slot::Timestamp, Slot::Netmask] {
            let p = probe(SRC6, DST6, slot, 0, stamp);
            assert_eq!(Icmp.build(&mut buf, &p, &[], 64), Ok(0));
        }
    }

    #[test]
    fn replies_classify_by_type_and_cookie() {
        let e = Engine::new(SRC4, &SLOTS);
        let echo = e.probe(DST4, Slot::Echo, 11);
        let (ident, seq_no) = ((echo.stamp >> 16) as u16, echo.stamp as u16);
        let a = e
            .classify(&reply4(
                &echo,
                &icmpv4::Repr::EchoReply {
                    ident,
                    seq_no,
                    data: &[],
                },
            ))
            .unwrap();
        assert_eq!(
            (a.host, a.slot, a.epoch, a.ttl),
            (DST4, Slot::Echo, Some(11), 57)
        );
        assert_eq!(
            Icmp.meaning(a.slot, a.code),
            (PortState::Open, "echo-reply")
        );

        let ts = e.probe(DST4, Slot::Timestamp, 12);
        let (ident, seq_no) = ((ts.stamp >> 16) as u16, ts.stamp as u16);
        let reply = icmpv4::Repr::TimestampReply {
            ident,
            seq_no,
            originate: 0,
            receive: 1,
            transmit: 2,
        };
        let a = e.classify(&reply4(&ts, &reply)).unwrap();
        assert_eq!((a.slot, a.epoch), (Slot::Timestamp, Some(12)));
        assert_eq!(Icmp.meaning(a.slot, a.code).1, "timestamp-reply");

        let mask = e.probe(DST4, Slot::Netmask, 13);
        let (ident, seq_no) = ((mask.stamp >> 16) as u16, mask.stamp as u16);
        let reply = icmpv4::Repr::AddressMaskReply {
            ident,
            seq_no,
            mask: Ipv4Addr::new(255, 255, 255, 0),
        };
        let a = e.classify(&reply4(&mask, &reply)).unwrap();
        assert_eq!((a.slot, a.epoch), (Slot::Netmask, Some(13)));
        assert_eq!(Icmp.meaning(a.slot, a.code).1, "addressmask-reply");
    }

    #[test]
    fn forged_replies_are_rejected() {
        let e = Engine::new(SRC4, &SLOTS);
        let echo = e.probe(DST4, Slot::Echo, 11);
        let (ident, seq_no) = ((echo.stamp >> 16) as u16, echo.stamp as u16);
        // The echo's stamp on a timestamp reply: keyed on another type, so forged.
        let reply = icmpv4::Repr::TimestampReply {
            ident,
            seq_no,
            originate: 0,
            receive: 0,
            transmit: 0,
        };
        assert_eq!(e.classify(&reply4(&echo, &reply)), Err(Reject::Invalid));
        let reply = icmpv4::Repr::EchoReply {
            ident: ident ^ 1,
            seq_no,
            data: &[],
        };
        assert_eq!(e.classify(&reply4(&echo, &reply)), Err(Reject::Invalid));
        // Someone pinging us is not an answer.
        let request = icmpv4::Repr::EchoRequest {
            ident,
            seq_no,
            data: &[],
        };
        assert_eq!(e.classify(&reply4(&echo, &request)), Err(Reject::NotOurs));
    }

    #[test]
    fn echo_over_ipv6() {
        let e = Engine::new(SRC6, &[Slot::Echo]);
        let p = e.probe(DST6, Slot::Echo, 250);
        let (ident, seq) = ((p.stamp >> 16) as u16, p.stamp as u16);
        let a = e.classify(&echo_reply6(&p, ident, seq)).unwrap();
        assert_eq!((a.host, a.slot, a.epoch), (DST6, Slot::Echo, Some(250)));
        assert_eq!(
            e.classify(&echo_reply6(&p, ident, seq ^ 0x100)),
            Err(Reject::Invalid)
        );
    }

    #[test]
    fn a_quoted_query_finds_its_slot() {
        let e = Engine::new(SRC4, &SLOTS);
        for (slot, epoch) in [(Slot::Echo, 1), (Slot::Timestamp, 2), (Slot::Netmask, 3)] {
            let p = e.probe(DST4, slot, epoch);
            let pkt = build(&p);
            let icmp = unreach4(10, &pkt[..28]);
            let a = e.classify(&from_router4(&icmp)).unwrap();
            assert_eq!((a.host, a.slot, a.epoch), (DST4, slot, Some(epoch)));
            assert_eq!(a.code, UNREACH_V4 + 10);
            assert!(!a.from_target);
            assert_eq!(
                Icmp.meaning(a.slot, a.code),
                (PortState::Filtered, "host-prohibited")
            );
        }
        // A quoted query whose identifier is not ours.
        let p = e.probe(DST4, Slot::Echo, 1);
        let mut pkt = build(&p);
        pkt[24] ^= 0x40;
        let icmp = unreach4(10, &pkt[..28]);
        assert_eq!(e.classify(&from_router4(&icmp)), Err(Reject::Invalid));
    }

    #[test]
    fn silence_is_filtered() {
        assert_eq!(
            Icmp.meaning(Slot::Echo, UNANSWERED),
            (PortState::Filtered, "no-response")
        );
    }

    #[test]
    fn describe_lines() {
        let mut text = String::new();
        for slot in SLOTS {
            Icmp.describe(&mut text, &probe(SRC4, DST4, slot, 0, 0x0001_0002), &|_| {
                &[]
            });
        }
        assert_eq!(
            text,
            "SENT ICMP 198.18.0.1 > 198.18.0.10 echo-request id=1 seq=2\n\
             SENT ICMP 198.18.0.1 > 198.18.0.10 timestamp-request id=1 seq=2\n\
             SENT ICMP 198.18.0.1 > 198.18.0.10 netmask-request id=1 seq=2\n"
        );
    }
}
