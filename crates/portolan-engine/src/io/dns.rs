//! Reverse DNS through the system resolver (so /etc/hosts answers too, as with Nmap).
//! Lookups run on blocking threads with a deadline so a dead resolver cannot stall a scan.

use std::net::IpAddr;
use std::time::Duration;

/// The PTR name of `ip`, or `None` when there is none.
pub fn reverse_lookup_blocking(ip: IpAddr) -> Option<String> {
    use std::mem::{size_of, zeroed};
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: we build a sockaddr of the right family and length, and getnameinfo writes
    // at most `host.len()` bytes (NUL-terminated) into `host`.
    let rc = unsafe {
        match ip {
            IpAddr::V4(v4) => {
                let mut sa: libc::sockaddr_in = zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
                libc::getnameinfo(
                    &sa as *const _ as *const libc::sockaddr,
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
            IpAddr::V6(v6) => {
                let mut sa: libc::sockaddr_in6 = zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = v6.octets();
                libc::getnameinfo(
                    &sa as *const _ as *const libc::sockaddr,
                    size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    host.as_mut_ptr(),
                    host.len() as libc::socklen_t,
                    std::ptr::null_mut(),
                    0,
                    libc::NI_NAMEREQD,
                )
            }
        }
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    let name = name.to_string_lossy().into_owned();
    if name.is_empty() || name.parse::<IpAddr>().is_ok() {
        None
    } else {
        Some(name)
    }
}

/// Reverse lookups of many addresses at once, each bounded by `deadline`.
pub async fn reverse_lookup_many(ips: &[IpAddr], deadline: Duration) -> Vec<Option<String>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, &ip) in ips.iter().enumerate() {
        set.spawn(async move {
            let name = tokio::time::timeout(
                deadline,
                tokio::task::spawn_blocking(move || reverse_lookup_blocking(ip)),
            )
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten();
            (i, name)
        });
    }
    let mut out = vec![None; ips.len()];
    while let Some(r) = set.join_next().await {
        if let Ok((i, name)) = r {
            if let Some(slot) = out.get_mut(i) {
                *slot = name;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_name_from_hosts_file() {
        // /etc/hosts maps 127.0.0.1 to localhost on every Debian system.
        let name = reverse_lookup_blocking("127.0.0.1".parse().unwrap());
        assert_eq!(name.as_deref(), Some("localhost"));
    }
}
