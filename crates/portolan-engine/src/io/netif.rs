//! Interface facts for on-link decisions: which IPv4 and IPv6 destinations are reachable
//! directly on an Ethernet link (so that ARP or neighbour discovery can find them), from
//! which interface, address and MAC.
//!
//! The addresses come from `getifaddrs(3)`: `AF_INET` and `AF_INET6` entries give each
//! interface's addresses and netmasks, `AF_PACKET` entries its index, hardware type and
//! MAC. A destination is on-link when it lies inside the prefix of one of an interface's
//! addresses (the kernel installs that prefix route without a gateway). Loopback,
//! interfaces that are down or flagged NOARP (which turns off neighbour discovery too), and
//! non-Ethernet interfaces (no MAC, `ARPHRD` other than Ethernet: tun, ipip, wireguard, ...)
//! never are: ARP and ND cannot work there.

use std::ffi::CStr;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use portolan_wire::ethernet::MacAddr;

/// `ARPHRD_ETHER` from <linux/if_arp.h>.
pub(crate) const ARPHRD_ETHER: u16 = 1;

/// Why the interface list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    #[error("getifaddrs: {0}")]
    GetIfAddrs(io::Error),
}

/// One interface's facts: index, name, flags, link-layer type and address (if it has one),
/// and its IPv4 and IPv6 addresses with their prefix lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `ARPHRD_*` hardware type (0 if no link-layer entry was seen).
    pub hatype: u16,
    /// The MAC, for interfaces with a 6-byte hardware address.
    pub mac: Option<MacAddr>,
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// Link-local (fe80::/10) addresses included.
    pub ipv6: Vec<(Ipv6Addr, u8)>,
}

impl Interface {
    /// Whether ARP works on this interface: up, not loopback, not NOARP, Ethernet, has a MAC.
    pub fn is_arp_capable(&self) -> bool {
        let f = |flag: libc::c_int| self.flags & flag as u32 != 0;
        f(libc::IFF_UP)
            && !f(libc::IFF_LOOPBACK)
            && !f(libc::IFF_NOARP)
            && self.hatype == ARPHRD_ETHER
            && self.mac.is_some_and(|m| m != MacAddr::ZERO)
    }
}

/// How to reach an on-link destination at the link layer (`A`: the address family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnLink<A = Ipv4Addr> {
    pub ifindex: u32,
    pub ifname: String,
    /// Our address in the destination's subnet: the ARP sender address, or the IPv6 source
    /// of a neighbour solicitation.
    pub src_ip: A,
    pub src_mac: MacAddr,
}

/// On-link facts for an IPv6 destination.
pub type OnLinkV6 = OnLink<Ipv6Addr>;

/// Whether `addr` lies in `net`/`prefix`.
pub(crate) fn in_subnet(addr: Ipv4Addr, net: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    u32::from(addr) & mask == u32::from(net) & mask
}

/// [`in_subnet`] for IPv6.
pub(crate) fn in_prefix_v6(addr: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0);
    u128::from(addr) & mask == u128::from(net) & mask
}

fn is_link_local_v6(addr: Ipv6Addr) -> bool {
    addr.segments()[0] & 0xffc0 == 0xfe80
}

/// The most specific `(address, prefix)` among the ARP/ND-capable interfaces' addresses
/// (`addrs` picks the family) that `covers` accepts; the first interface wins a tie.
fn most_specific<A: Copy>(
    ifaces: &[Interface],
    addrs: impl Fn(&Interface) -> &[(A, u8)],
    covers: impl Fn(A, u8) -> bool,
) -> Option<OnLink<A>> {
    let mut best: Option<(u8, OnLink<A>)> = None;
    for iface in ifaces.iter().filter(|i| i.is_arp_capable()) {
        let Some(mac) = iface.mac else { continue };
        for &(addr, prefix) in addrs(iface) {
            if !covers(addr, prefix) || matches!(&best, Some((p, _)) if *p >= prefix) {
                continue;
            }
            best = Some((
                prefix,
                OnLink {
                    ifindex: iface.ifindex,
                    ifname: iface.name.clone(),
                    src_ip: addr,
                    src_mac: mac,
                },
            ));
        }
    }
    best.map(|(_, o)| o)
}

/// The on-link facts for `dst` among `ifaces`, or `None` if no ARP-capable interface has
/// it in a subnet. The most specific subnet wins (as in a route lookup); `dst` being one of
/// our own addresses is not on-link (there is nobody to ask).
pub fn on_link_in(ifaces: &[Interface], dst: Ipv4Addr) -> Option<OnLink> {
    if ifaces.iter().any(|i| i.ipv4.iter().any(|&(a, _)| a == dst)) {
        return None;
    }
    // A /32 subnet holds nobody but us.
    most_specific(
        ifaces,
        |i| &i.ipv4,
        |addr, prefix| prefix < 32 && in_subnet(dst, addr, prefix),
    )
}

/// The IPv6 twin of [`on_link_in`], for neighbour discovery: `dst` inside the prefix of one
/// of an Ethernet interface's IPv6 addresses, the most specific prefix winning. A link-local
/// address (fe80::/10) is a source only for a link-local `dst` (and then, with no zone to
/// say which link, the first interface wins); a /128 holds nobody but us; `dst` being one of
/// our own addresses is not on-link.
pub fn on_link_v6_in(ifaces: &[Interface], dst: Ipv6Addr) -> Option<OnLinkV6> {
    if ifaces.iter().any(|i| i.ipv6.iter().any(|&(a, _)| a == dst)) {
        return None;
    }
    let dst_link_local = is_link_local_v6(dst);
    most_specific(
        ifaces,
        |i| &i.ipv6,
        |addr, prefix| {
            prefix < 128
                && is_link_local_v6(addr) == dst_link_local
                && in_prefix_v6(dst, addr, prefix)
        },
    )
}

/// [`on_link_v6_in`] over the current interface list.
pub fn on_link_v6(dst: Ipv6Addr) -> Result<Option<OnLinkV6>, NetifError> {
    Ok(on_link_v6_in(&interfaces()?, dst))
}

/// [`on_link_in`] over the current interface list.
pub fn on_link(dst: Ipv4Addr) -> Result<Option<OnLink>, NetifError> {
    Ok(on_link_in(&interfaces()?, dst))
}

/// Owns the list `getifaddrs` returned.
struct IfAddrs(*mut libc::ifaddrs);

impl Drop for IfAddrs {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful getifaddrs and is freed once, here.
        unsafe { libc::freeifaddrs(self.0) }
    }
}

/// The interfaces of this network namespace, in the order `getifaddrs` first names them.
///
/// Written over `libc::getifaddrs` rather than `nix::ifaddrs`: `libc` is already a
/// dependency, and the raw list gives the `sockaddr_ll` fields needed (ifindex, hatype).
pub fn interfaces() -> Result<Vec<Interface>, NetifError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list pointer into `head` on success.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(NetifError::GetIfAddrs(io::Error::last_os_error()));
    }
    let list = IfAddrs(head);
    let mut out: Vec<Interface> = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list `list` owns, alive until it is dropped.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string inside the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let pos = match out.iter().position(|i| i.name == name) {
            Some(p) => p,
            None => {
                out.push(Interface {
                    name,
                    ifindex: 0,
                    flags: ifa.ifa_flags,
                    hatype: 0,
                    mac: None,
                    ipv4: Vec::new(),
                    ipv6: Vec::new(),
                });
                out.len() - 1
            }
        };
        let iface = &mut out[pos];
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr whose family field is always readable.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        match family {
            libc::AF_PACKET => {
                // SAFETY: for AF_PACKET entries, ifa_addr points to a sockaddr_ll.
                let ll = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_ll>() };
                iface.ifindex = u32::try_from(ll.sll_ifindex).unwrap_or(0);
                iface.hatype = ll.sll_hatype;
                iface.flags = ifa.ifa_flags;
                if ll.sll_halen == 6 {
                    iface.mac = MacAddr::from_bytes(&ll.sll_addr[..6]);
                }
            }
            libc::AF_INET => {
                // SAFETY: for AF_INET entries, ifa_addr points to a sockaddr_in.
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                let addr = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                let prefix = if ifa.ifa_netmask.is_null() {
                    32
                } else {
                    // SAFETY: the netmask of an AF_INET entry is a sockaddr_in.
                    let m = unsafe { &*ifa.ifa_netmask.cast::<libc::sockaddr_in>() };
                    u32::from_be(m.sin_addr.s_addr).leading_ones() as u8
                };
                iface.ipv4.push((addr, prefix));
            }
            libc::AF_INET6 => {
                // SAFETY: for AF_INET6 entries, ifa_addr points to a sockaddr_in6.
                let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
                let addr = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let prefix = if ifa.ifa_netmask.is_null() {
                    128
                } else {
                    // SAFETY: the netmask of an AF_INET6 entry is a sockaddr_in6.
                    let m = unsafe { &*ifa.ifa_netmask.cast::<libc::sockaddr_in6>() };
                    u128::from_be_bytes(m.sin6_addr.s6_addr).leading_ones() as u8
                };
                iface.ipv6.push((addr, prefix));
            }
            _ => {}
        }
    }
    for iface in out.iter_mut().filter(|i| i.ifindex == 0) {
        if let Ok(c) = std::ffi::CString::new(iface.name.as_str()) {
            // SAFETY: `c` is a NUL-terminated name.
            iface.ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        }
    }
    Ok(out)
}

/// The kernel's complete IPv4 neighbour entries (`/proc/net/arp`): what a scan learnt of
/// on-link hosts' MACs even when it did not ARP them itself (-Pn). Lines that do not parse
/// are skipped; an unreadable file gives an empty list. Read through
/// `/proc/thread-self/net` (Linux >= 3.17), the calling thread's network namespace, which
/// its sockets use; `/proc/net` is the process leader's, which differs for a thread that
/// entered another namespace (as the tests' threads do).
pub fn arp_cache() -> Vec<(Ipv4Addr, MacAddr)> {
    std::fs::read_to_string("/proc/thread-self/net/arp")
        .or_else(|_| std::fs::read_to_string("/proc/net/arp"))
        .map(|text| parse_arp_cache(&text))
        .unwrap_or_default()
}

/// Parses `/proc/net/arp`: `IP HWtype Flags HWaddress Mask Device`, entries with the
/// ATF_COM flag (0x2) only.
pub fn parse_arp_cache(text: &str) -> Vec<(Ipv4Addr, MacAddr)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let ip: Ipv4Addr = f.first()?.parse().ok()?;
            let flags = u32::from_str_radix(f.get(2)?.trim_start_matches("0x"), 16).ok()?;
            if flags & 0x2 == 0 {
                return None;
            }
            let mut mac = [0u8; 6];
            let mut parts = f.get(3)?.split(':');
            for b in &mut mac {
                *b = u8::from_str_radix(parts.next()?, 16).ok()?;
            }
            if parts.next().is_some() || mac == [0; 6] {
                return None;
            }
            Some((ip, MacAddr(mac)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: u32 = libc::IFF_UP as u32;

    fn eth(name: &str, ifindex: u32, mac: u8, addrs: &[(&str, u8)]) -> Interface {
        Interface {
            name: name.into(),
            ifindex,
            flags: UP | libc::IFF_BROADCAST as u32,
            hatype: ARPHRD_ETHER,
            mac: Some(MacAddr([2, 0, 0, 0, 0, mac])),
            ipv4: addrs
                .iter()
                .map(|(a, p)| (a.parse().unwrap(), *p))
                .collect(),
            ipv6: Vec::new(),
        }
    }

    /// An Ethernet interface with IPv6 addresses only.
    fn eth6(name: &str, ifindex: u32, mac: u8, addrs: &[(&str, u8)]) -> Interface {
        Interface {
            ipv6: addrs
                .iter()
                .map(|(a, p)| (a.parse().unwrap(), *p))
                .collect(),
            ..eth(name, ifindex, mac, &[])
        }
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_membership_and_most_specific_wins() {
        let ifaces = vec![
            eth("eth0", 2, 1, &[("198.18.0.1", 16)]),
            eth("eth1", 3, 2, &[("198.18.5.1", 24), ("198.19.0.1", 31)]),
        ];
        let o = on_link_in(&ifaces, ip("198.18.5.9")).unwrap();
        assert_eq!((o.ifindex, o.ifname.as_str()), (3, "eth1"));
        assert_eq!(o.src_ip, ip("198.18.5.1"));
        assert_eq!(o.src_mac, MacAddr([2, 0, 0, 0, 0, 2]));
        let o = on_link_in(&ifaces, ip("198.18.200.7")).unwrap();
        assert_eq!((o.ifindex, o.src_ip), (2, ip("198.18.0.1")));
        assert_eq!(on_link_in(&ifaces, ip("198.19.0.0")).unwrap().ifindex, 3);
        assert_eq!(on_link_in(&ifaces, ip("198.19.0.2")), None);
        assert_eq!(on_link_in(&ifaces, ip("192.0.2.1")), None);
        // Our own address is nobody to ARP for.
        assert_eq!(on_link_in(&ifaces, ip("198.18.5.1")), None);
    }

    #[test]
    fn loopback_down_noarp_and_non_ethernet_are_not_on_link() {
        let base = eth("x", 4, 3, &[("198.18.9.1", 24)]);
        let dst = ip("198.18.9.2");
        assert!(on_link_in(std::slice::from_ref(&base), dst).is_some());
        let variants = [
            Interface {
                flags: UP | libc::IFF_LOOPBACK as u32,
                ..base.clone()
            },
            Interface {
                flags: 0,
                ..base.clone()
            },
            Interface {
                flags: UP | libc::IFF_NOARP as u32,
                ..base.clone()
            },
            Interface {
                hatype: 65534, // ARPHRD_NONE (tun, wireguard)
                ..base.clone()
            },
            Interface {
                mac: None,
                ..base.clone()
            },
            Interface {
                ipv4: vec![(ip("198.18.9.1"), 32)],
                ..base.clone()
            },
        ];
        for v in variants {
            assert_eq!(on_link_in(std::slice::from_ref(&v), dst), None, "{v:?}");
        }
    }

    #[test]
    fn v6_prefix_membership_and_most_specific_wins() {
        let ifaces = vec![
            eth6("eth0", 2, 1, &[("fe80::1", 64), ("2001:2::1", 48)]),
            eth6(
                "eth1",
                3,
                2,
                &[
                    ("fe80::2", 64),
                    ("2001:2:0:5::1", 64),
                    ("2001:2:0:6::1", 128),
                ],
            ),
        ];
        let o = on_link_v6_in(&ifaces, ip6("2001:2:0:5::9")).unwrap();
        assert_eq!((o.ifindex, o.ifname.as_str()), (3, "eth1"));
        assert_eq!(o.src_ip, ip6("2001:2:0:5::1"));
        assert_eq!(o.src_mac, MacAddr([2, 0, 0, 0, 0, 2]));
        // Only the /48 covers it (the /128 holds nobody but us).
        let o = on_link_v6_in(&ifaces, ip6("2001:2:0:6::9")).unwrap();
        assert_eq!((o.ifindex, o.src_ip), (2, ip6("2001:2::1")));
        assert_eq!(on_link_v6_in(&ifaces, ip6("2001:3::1")), None);
        assert_eq!(on_link_v6_in(&ifaces, ip6("::1")), None);
        assert_eq!(on_link_v6_in(&ifaces, ip6("ff02::1")), None);
        // Our own addresses are nobody to solicit.
        assert_eq!(on_link_v6_in(&ifaces, ip6("2001:2:0:5::1")), None);
        assert_eq!(on_link_v6_in(&ifaces, ip6("fe80::2")), None);
        // IPv4 facts do not leak into IPv6 and back.
        assert_eq!(on_link_in(&ifaces, ip("198.18.0.1")), None);
    }

    #[test]
    fn link_local_sources_only_for_link_local_destinations() {
        // Only a link-local address: a global destination is not on-link, whatever the
        // prefix says.
        let only_ll = vec![eth6("eth0", 2, 1, &[("fe80::1", 10)])];
        assert_eq!(on_link_v6_in(&only_ll, ip6("2001:2::5")), None);
        let o = on_link_v6_in(&only_ll, ip6("fe80::5")).unwrap();
        assert_eq!(o.src_ip, ip6("fe80::1"));
        // Both: a global destination gets the global source, a link-local one the link-local
        // source (the first interface, absent a zone).
        let ifaces = vec![
            eth6("eth0", 2, 1, &[("fe80::1", 64), ("2001:2::1", 64)]),
            eth6("eth1", 3, 2, &[("fe80::2", 64)]),
        ];
        assert_eq!(
            on_link_v6_in(&ifaces, ip6("2001:2::7")).unwrap().src_ip,
            ip6("2001:2::1")
        );
        let o = on_link_v6_in(&ifaces, ip6("fe80::7")).unwrap();
        assert_eq!((o.ifindex, o.src_ip), (2, ip6("fe80::1")));
    }

    #[test]
    fn v6_loopback_down_noarp_and_non_ethernet_are_not_on_link() {
        let base = eth6("x", 4, 3, &[("2001:2:0:9::1", 64)]);
        let dst = ip6("2001:2:0:9::2");
        assert!(on_link_v6_in(std::slice::from_ref(&base), dst).is_some());
        let variants = [
            Interface {
                flags: UP | libc::IFF_LOOPBACK as u32,
                ..base.clone()
            },
            Interface {
                flags: 0,
                ..base.clone()
            },
            Interface {
                flags: UP | libc::IFF_NOARP as u32,
                ..base.clone()
            },
            Interface {
                hatype: 65534,
                ..base.clone()
            },
            Interface {
                mac: None,
                ..base.clone()
            },
        ];
        for v in variants {
            assert_eq!(on_link_v6_in(std::slice::from_ref(&v), dst), None, "{v:?}");
        }
    }

    #[test]
    fn this_hosts_interfaces_read_without_error() {
        let ifaces = interfaces().unwrap();
        // Every namespace has lo, which has an index and is never ARP-capable.
        if let Some(lo) = ifaces.iter().find(|i| i.name == "lo") {
            assert!(lo.ifindex > 0);
            assert!(!lo.is_arp_capable());
        }
        assert_eq!(on_link(Ipv4Addr::LOCALHOST).unwrap(), None);
        assert_eq!(on_link_v6(Ipv6Addr::LOCALHOST).unwrap(), None);
        // Where IPv6 is on, lo carries ::1/128.
        if let Some(lo) = ifaces.iter().find(|i| i.name == "lo" && !i.ipv6.is_empty()) {
            assert!(lo.ipv6.contains(&(Ipv6Addr::LOCALHOST, 128)), "{lo:?}");
        }
    }

    #[test]
    fn arp_cache_keeps_complete_entries_only() {
        let text =
            "IP address       HW type     Flags       HW address            Mask     Device\n\
198.18.0.10      0x1         0x2         ba:92:e6:5e:92:6d     *        eth0\n\
198.18.0.99      0x1         0x0         00:00:00:00:00:00     *        eth0\n\
198.18.0.11      0x1         0x2         zz:92:e6:5e:92:6d     *        eth0\n\
garbage\n";
        let got = parse_arp_cache(text);
        assert_eq!(
            got,
            vec![(
                Ipv4Addr::new(198, 18, 0, 10),
                MacAddr([0xba, 0x92, 0xe6, 0x5e, 0x92, 0x6d])
            )]
        );
    }
}
