//! `--iflist`: this host's interfaces and routes as Nmap lists them (Nmap's
//! `print_iflist`, over libdnet's Linux readers), so that the two agree line for line.
//!
//! - Interfaces come in the kernel's order (`/proc/net/dev`, which is ifindex order), one
//!   row per address: the IPv4 addresses first, then the IPv6 ones in `/proc/net/if_inet6`'s
//!   order. An interface without IPv4 gets a row `(none)/0` before its IPv6 rows, as in
//!   Nmap. Unlike Nmap, a second IPv4 address shows its own prefix length (Nmap reads every
//!   IPv4 alias's netmask from the interface's first address).
//! - Routes are those of `/proc/net/route` and `/proc/net/ipv6_route` that are up, each
//!   given the interface that has its name and an address of its family (else the one whose
//!   prefix holds its gateway or destination, else the interface of the route its gateway
//!   is the destination of); routes left without one are dropped. They are sorted IPv4
//!   first, longest prefix first, then lowest metric, else in the kernel's order.
//!
//! The parsers are pure (text in, entries out) and skip lines they cannot read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use portolan_wire::ethernet::MacAddr;

use super::netif::{self, Interface, NetifError, ARPHRD_ETHER};
/// `RTF_UP` from <linux/route.h>.
const RTF_UP: u32 = 0x1;

/// What Nmap calls an interface's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfKind {
    Ethernet,
    Loopback,
    PointToPoint,
    Other,
}

impl IfKind {
    /// The word Nmap prints.
    pub fn as_str(self) -> &'static str {
        match self {
            IfKind::Ethernet => "ethernet",
            IfKind::Loopback => "loopback",
            IfKind::PointToPoint => "point2point",
            IfKind::Other => "other",
        }
    }
}

/// One row of the interface list: an interface and one of its addresses (None: it has
/// no IPv4 address, Nmap's `(none)/0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfRow {
    pub name: String,
    pub addr: Option<(IpAddr, u8)>,
    pub kind: IfKind,
    pub up: bool,
    pub mtu: u32,
    /// For Ethernet interfaces only.
    pub mac: Option<MacAddr>,
}

/// A route as the kernel's table gives it, before it is matched to an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub dest: IpAddr,
    pub prefix: u8,
    /// None: on-link (no gateway).
    pub gateway: Option<IpAddr>,
    pub metric: u32,
    pub dev: String,
}

/// One row of the route list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    pub dest: IpAddr,
    pub prefix: u8,
    pub dev: String,
    pub metric: u32,
    pub gateway: Option<IpAddr>,
}

/// This network namespace's interfaces and routes, as `--iflist` shows them.
pub fn read() -> Result<(Vec<IfRow>, Vec<RouteRow>), NetifError> {
    let mut ifaces = netif::interfaces()?;
    ifaces.sort_by_key(|i| i.ifindex);
    // The calling thread's namespace (see netif::arp_cache); a missing file is no entries.
    let net = |file: &str| {
        std::fs::read_to_string(format!("/proc/thread-self/net/{file}")).unwrap_or_default()
    };
    let order = parse_if_inet6(&net("if_inet6"));
    let rows = interface_rows(&ifaces, &order, |name| mtu(name).unwrap_or(0));
    let mut kernel = parse_route(&net("route"));
    kernel.extend(parse_ipv6_route(&net("ipv6_route")));
    let routes = route_rows(&kernel, &rows);
    Ok((rows, routes))
}

/// The rows of `ifaces` (already in kernel order); `inet6_order`: (address, interface) in
/// `/proc/net/if_inet6`'s order, which orders each interface's IPv6 rows.
pub fn interface_rows(
    ifaces: &[Interface],
    inet6_order: &[(Ipv6Addr, String)],
    mtu: impl Fn(&str) -> u32,
) -> Vec<IfRow> {
    let mut rows = Vec::new();
    for i in ifaces {
        let f = |flag: libc::c_int| i.flags & flag as u32 != 0;
        let kind = if (i.hatype == ARPHRD_ETHER && i.mac.is_some()) && !f(libc::IFF_NOARP) {
            IfKind::Ethernet
        } else if f(libc::IFF_LOOPBACK) {
            IfKind::Loopback
        } else if f(libc::IFF_POINTOPOINT) {
            IfKind::PointToPoint
        } else {
            IfKind::Other
        };
        let row = |addr| IfRow {
            name: i.name.clone(),
            addr,
            kind,
            up: f(libc::IFF_UP),
            mtu: mtu(&i.name),
            mac: i.mac.filter(|_| kind == IfKind::Ethernet),
        };
        if i.ipv4.is_empty() {
            rows.push(row(None));
        }
        for &(a, p) in &i.ipv4 {
            rows.push(row(Some((IpAddr::V4(a), p))));
        }
        let mut v6 = i.ipv6.clone();
        let rank = |a: &Ipv6Addr| {
            inet6_order
                .iter()
                .position(|(b, n)| b == a && *n == i.name)
                .unwrap_or(usize::MAX)
        };
        v6.sort_by_key(|(a, _)| rank(a));
        for (a, p) in v6 {
            rows.push(row(Some((IpAddr::V6(a), p))));
        }
    }
    rows
}

/// The routes of `kernel` matched to the interfaces of `rows`, sorted as Nmap sorts them.
pub fn route_rows(kernel: &[KernelRoute], rows: &[IfRow]) -> Vec<RouteRow> {
    let same_family = |a: &IpAddr, b: &IpAddr| a.is_ipv4() == b.is_ipv4();
    let mut dev: Vec<Option<String>> = kernel
        .iter()
        .map(|r| {
            // By name, among the interface's addresses of the route's family.
            let by_name = rows
                .iter()
                .any(|i| i.name == r.dev && i.addr.is_some_and(|(a, _)| same_family(&a, &r.dest)));
            if by_name {
                return Some(r.dev.clone());
            }
            // Else by the interface prefix that holds the gateway (or the destination).
            let via = r.gateway.unwrap_or(r.dest);
            rows.iter()
                .find(|i| i.addr.is_some_and(|(a, p)| in_prefix(a, p, via)))
                .map(|i| i.name.clone())
        })
        .collect();
    // "Two-step" routes: a gateway reached through another route that has an interface.
    loop {
        let mut changed = false;
        for i in 0..kernel.len() {
            if dev[i].is_some() {
                continue;
            }
            let Some(gw) = kernel[i].gateway else {
                continue;
            };
            if let Some(d) = kernel
                .iter()
                .zip(&dev)
                .find(|(r, d)| r.dest == gw && d.is_some())
                .and_then(|(_, d)| d.clone())
            {
                dev[i] = Some(d);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out: Vec<(usize, RouteRow)> = kernel
        .iter()
        .zip(dev)
        .enumerate()
        .filter_map(|(n, (r, d))| {
            Some((
                n,
                RouteRow {
                    dest: r.dest,
                    prefix: r.prefix,
                    dev: d?,
                    metric: r.metric,
                    gateway: r.gateway,
                },
            ))
        })
        .collect();
    out.sort_by_key(|(n, r)| (r.dest.is_ipv6(), std::cmp::Reverse(r.prefix), r.metric, *n));
    out.into_iter().map(|(_, r)| r).collect()
}

/// Whether `addr` lies in `net`/`prefix` (of the same family).
fn in_prefix(net: IpAddr, prefix: u8, addr: IpAddr) -> bool {
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => netif::in_subnet(a, n, prefix),
        (IpAddr::V6(n), IpAddr::V6(a)) => netif::in_prefix_v6(a, n, prefix),
        _ => false,
    }
}

/// `/proc/net/route`: Iface, Destination, Gateway, Flags, RefCnt, Use, Metric, Mask, ...
/// (addresses in hex, in the kernel's byte order, which is network order read as a
/// little-endian number on the machines Linux runs this on). Routes not up are skipped.
pub fn parse_route(text: &str) -> Vec<KernelRoute> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let hex = |i: usize| f.get(i).and_then(|s| u32::from_str_radix(s, 16).ok());
            let addr = |i: usize| hex(i).map(|v| Ipv4Addr::from(v.to_le_bytes()));
            let (dev, dest, gw, flags) = (f.first()?, addr(1)?, addr(2)?, hex(3)?);
            let metric: u32 = f.get(6)?.parse().ok()?;
            let mask = u32::from_be_bytes(hex(7)?.to_le_bytes());
            // A mask that is not a prefix (never written by the kernel) is skipped, as
            // libdnet does.
            let prefix = mask.leading_ones();
            if flags & RTF_UP == 0 || mask.checked_shl(prefix).unwrap_or(0) != 0 {
                return None;
            }
            Some(KernelRoute {
                dest: IpAddr::V4(dest),
                prefix: prefix as u8,
                gateway: (!gw.is_unspecified()).then_some(IpAddr::V4(gw)),
                metric,
                dev: dev.to_string(),
            })
        })
        .collect()
}

/// `/proc/net/ipv6_route`: destination, its prefix length, source, its prefix length, next
/// hop, metric, refcount, use, flags, device (hex fields). Routes not up are skipped (the
/// kernel's reject routes on `lo` are not).
pub fn parse_ipv6_route(text: &str) -> Vec<KernelRoute> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = |i: usize| {
                f.get(i)
                    .filter(|s| s.len() == 32)
                    .and_then(|s| u128::from_str_radix(s, 16).ok())
                    .map(Ipv6Addr::from)
            };
            let hex = |i: usize| f.get(i).and_then(|s| u32::from_str_radix(s, 16).ok());
            let (dest, prefix, gw) = (addr(0)?, hex(1)?, addr(4)?);
            let (metric, flags, dev) = (hex(5)?, hex(8)?, f.get(9)?);
            if flags & RTF_UP == 0 || prefix > 128 {
                return None;
            }
            Some(KernelRoute {
                dest: IpAddr::V6(dest),
                prefix: prefix as u8,
                gateway: (!gw.is_unspecified()).then_some(IpAddr::V6(gw)),
                metric,
                dev: dev.to_string(),
            })
        })
        .collect()
}

/// `/proc/net/if_inet6`: address, ifindex, prefix length, scope, flags, device.
pub fn parse_if_inet6(text: &str) -> Vec<(Ipv6Addr, String)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let a = f
                .first()
                .filter(|s| s.len() == 32)
                .and_then(|s| u128::from_str_radix(s, 16).ok())?;
            Some((Ipv6Addr::from(a), f.get(5)?.to_string()))
        })
        .collect()
}

/// An interface's MTU (`SIOCGIFMTU`).
fn mtu(name: &str) -> Option<u32> {
    let fd = super::raw::new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).ok()?;
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return None;
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the name and writes ifru_mtu of the ifreq we own.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SIOCGIFMTU,
            &mut req,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: after a successful SIOCGIFMTU the union holds the MTU.
    Some(unsafe { req.ifr_ifru.ifru_mtu } as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t02C812C6\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t00C812C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t00C912C6\t00000000\t0001\t0\t0\t0\t80FFFFFF\t0\t0\t0
eth0\t000013C6\t02C812C6\t0003\t0\t0\t7\t0000FFFF\t0\t0\t0
eth0\t000014C6\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\tzz\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
tun9\t0000A8C0\t0100A8C0\t0003\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    const ROUTE6: &str = "\
20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001    eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo
20010db8000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001    eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000003 00000000 00000001    eth0
short line
";

    fn iface(name: &str, index: u32, flags: libc::c_int, v4: &[(&str, u8)]) -> Interface {
        Interface {
            name: name.into(),
            ifindex: index,
            flags: flags as u32,
            hatype: if flags & libc::IFF_LOOPBACK != 0 {
                772
            } else {
                ARPHRD_ETHER
            },
            mac: (flags & libc::IFF_LOOPBACK == 0).then_some(MacAddr([2, 0, 0, 0, 0, index as u8])),
            ipv4: v4.iter().map(|(a, p)| (a.parse().unwrap(), *p)).collect(),
            ipv6: Vec::new(),
        }
    }

    #[test]
    fn ipv4_routes_parse_in_network_order_and_skip_what_is_down_or_unreadable() {
        let r = parse_route(ROUTE);
        let shown: Vec<String> = r
            .iter()
            .map(|r| {
                format!(
                    "{}/{} {:?} {} {}",
                    r.dest, r.prefix, r.gateway, r.metric, r.dev
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "0.0.0.0/0 Some(198.18.200.2) 0 eth0",
                "198.18.200.0/24 None 0 eth0",
                "198.18.201.0/25 None 0 eth0",
                "198.19.0.0/16 Some(198.18.200.2) 7 eth0",
                "192.168.0.0/24 Some(192.168.0.1) 0 tun9",
            ]
        );
    }

    #[test]
    fn ipv6_routes_skip_reject_routes_and_bad_lines() {
        let r = parse_ipv6_route(ROUTE6);
        let shown: Vec<String> = r
            .iter()
            .map(|r| format!("{}/{} {} {}", r.dest, r.prefix, r.metric, r.dev))
            .collect();
        assert_eq!(
            shown,
            [
                "2001:db8::/64 256 eth0",
                "::1/128 0 lo",
                "2001:db8::1/128 0 eth0",
                "ff00::/8 256 eth0"
            ]
        );
    }

    #[test]
    fn rows_order_addresses_as_nmap_and_an_ipv6_only_interface_gets_none_first() {
        let lo = libc::IFF_UP | libc::IFF_LOOPBACK;
        let mut eth0 = iface("eth0", 2, libc::IFF_UP, &[("198.18.200.1", 24)]);
        eth0.ipv6 = vec![
            ("2001:db8::1".parse().unwrap(), 64),
            ("fe80::1".parse().unwrap(), 64),
        ];
        let mut eth1 = iface("eth1", 3, 0, &[]);
        eth1.ipv6 = vec![("2001:db8:5::1".parse().unwrap(), 48)];
        let ifaces = [iface("lo", 1, lo, &[("127.0.0.1", 8)]), eth0, eth1];
        let order = parse_if_inet6(
            "fe800000000000000000000000000001 02 40 20 80 eth0\n\
             20010db8000000000000000000000001 02 40 00 80 eth0\n\
             garbage\n",
        );
        let rows = interface_rows(&ifaces, &order, |n| if n == "lo" { 65536 } else { 1500 });
        let shown: Vec<String> = rows
            .iter()
            .map(|r| {
                let addr = r
                    .addr
                    .map_or("(none)/0".into(), |(a, p)| format!("{a}/{p}"));
                let mac = r.mac.map_or(String::new(), |m| m.to_string());
                format!(
                    "{} {addr} {} {} {} {mac}",
                    r.name,
                    r.kind.as_str(),
                    r.up,
                    r.mtu
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "lo 127.0.0.1/8 loopback true 65536 ",
                "eth0 198.18.200.1/24 ethernet true 1500 02:00:00:00:00:02",
                "eth0 fe80::1/64 ethernet true 1500 02:00:00:00:00:02",
                "eth0 2001:db8::1/64 ethernet true 1500 02:00:00:00:00:02",
                "eth1 (none)/0 ethernet false 1500 02:00:00:00:00:03",
                "eth1 2001:db8:5::1/48 ethernet false 1500 02:00:00:00:00:03",
            ]
        );
    }

    #[test]
    fn routes_get_interfaces_as_nmap_gives_them_and_sort_by_family_prefix_metric() {
        let lo = libc::IFF_UP | libc::IFF_LOOPBACK;
        let mut eth0 = iface("eth0", 2, libc::IFF_UP, &[("198.18.200.1", 24)]);
        eth0.ipv6 = vec![("2001:db8::1".parse().unwrap(), 64)];
        let mut lo = iface("lo", 1, lo, &[("127.0.0.1", 8)]);
        lo.ipv6 = vec![(Ipv6Addr::LOCALHOST, 128)];
        let rows = interface_rows(&[lo, eth0], &[], |_| 1500);
        let mut kernel = parse_route(ROUTE);
        kernel.extend(parse_ipv6_route(ROUTE6));
        // A route named after no interface of its family, whose gateway another route
        // reaches: it takes that route's interface (two steps).
        kernel.push(KernelRoute {
            dest: "198.20.0.0".parse().unwrap(),
            prefix: 16,
            gateway: Some("198.19.0.1".parse().unwrap()),
            metric: 3,
            dev: "ppp0".into(),
        });
        kernel.push(KernelRoute {
            dest: "198.19.0.1".parse().unwrap(),
            prefix: 32,
            gateway: Some("198.18.200.9".parse().unwrap()),
            metric: 0,
            dev: "ppp0".into(),
        });
        let shown: Vec<String> = route_rows(&kernel, &rows)
            .iter()
            .map(|r| {
                let gw = r.gateway.map_or(String::new(), |g| g.to_string());
                format!("{}/{} {} {} {gw}", r.dest, r.prefix, r.dev, r.metric)
            })
            .collect();
        // tun9's route has no interface to take (192.168.0.1 is in no prefix): dropped.
        assert_eq!(
            shown,
            [
                "198.19.0.1/32 eth0 0 198.18.200.9",
                "198.18.201.0/25 eth0 0 ",
                "198.18.200.0/24 eth0 0 ",
                "198.20.0.0/16 eth0 3 198.19.0.1",
                "198.19.0.0/16 eth0 7 198.18.200.2",
                "0.0.0.0/0 eth0 0 198.18.200.2",
                "::1/128 lo 0 ",
                "2001:db8::1/128 eth0 0 ",
                "2001:db8::/64 eth0 256 ",
                "ff00::/8 eth0 256 ",
            ]
        );
    }

    #[test]
    fn this_hosts_list_reads_and_has_loopback() {
        let (rows, _routes) = read().expect("getifaddrs");
        assert!(
            rows.iter().any(|r| r.kind == IfKind::Loopback && r.mtu > 0),
            "{rows:?}"
        );
    }
}
