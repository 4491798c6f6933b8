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

#[cfg(test)]
mod tests {
    #[test]
    fn nofile_limit_is_at_least_the_old_soft_limit() {
        assert!(super::raise_nofile_limit() >= 256);
    }
}
