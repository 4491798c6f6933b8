//! Small wrappers over the operating system.

/// Raises the soft RLIMIT_NOFILE to the hard limit (capped at 1<<20) and returns the soft
/// limit in force afterwards, so a connect scan can size its concurrency to it instead of
/// failing with "too many open files".
pub fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to / read from a valid rlimit struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        let want = rl.rlim_max.min(1 << 20);
        if rl.rlim_cur < want {
            let new = libc::rlimit {
                rlim_cur: want,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 {
                rl.rlim_cur = want;
            }
        }
    }
    rl.rlim_cur
}

/// Whether this process may open raw sockets (root or CAP_NET_RAW).
pub fn is_privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// An epoll set watching sockets for writability (a connect's completion), each under a
/// caller's token. Closing a socket removes it from the set, so there is no deregistration.
pub struct Epoll {
    fd: std::os::fd::OwnedFd,
}

impl Epoll {
    pub fn new() -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: epoll_create1 has no pointer arguments.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(Epoll {
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `fd` until it is closed; its events come back with `token`.
    pub fn watch_writable(&self, fd: std::os::fd::RawFd, token: u64) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLOUT as u32,
            u64: token,
        };
        // SAFETY: ev is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` (rounded up to the millisecond) and appends the tokens of the
    /// ready sockets to `ready`.
    pub fn wait(&self, ready: &mut Vec<u64>, timeout: std::time::Duration) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        const MAX_EVENTS: usize = 256;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
        // SAFETY: events has room for MAX_EVENTS entries, as we tell the kernel.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as i32,
                ms,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(())
            } else {
                Err(e)
            };
        }
        ready.extend(events.iter().take(n as usize).map(|e| e.u64));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nofile_limit_is_at_least_the_old_soft_limit() {
        assert!(super::raise_nofile_limit() >= 256);
    }
}
