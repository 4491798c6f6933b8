//! Dropping root once everything that needs it is open.
//!
//! A scan run as root gives up root before the engine starts (`--keep-privileges` keeps
//! it): by then the outputs, the history store and the audit log are open, and their
//! descriptors stay writable. The process becomes the user who ran `sudo` (`SUDO_UID`,
//! `SUDO_GID`), or `nobody`, with no supplementary groups and `PR_SET_NO_NEW_PRIVS`.
//!
//! Raw sockets are opened per batch during the scan, so instead of opening them all in
//! advance the process keeps two capabilities and nothing else of root's: `CAP_NET_RAW`
//! (raw IP and AF_PACKET sockets) and `CAP_NET_ADMIN` (the 32 MiB receive buffers of
//! `SO_RCVBUFFORCE`, without which a fast scan loses replies past `net.core.rmem_max`). A
//! banner or a reply that subverted the parser would find a process that cannot read or
//! write root's files, change user again, or gain anything by executing a program.
//! `--unprivileged` scans keep no capability at all.
//!
//! The drop is checked (real, effective and saved ids, no way back to uid 0, exactly the
//! capabilities kept) before any packet leaves; a drop that did not hold stops the scan.

use anyhow::{bail, Result};
use std::ffi::CString;

/// `CAP_NET_ADMIN` and `CAP_NET_RAW` (linux/capability.h).
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Gives up root for the scan `o` describes, unless it runs as another user already or
/// `--keep-privileges` keeps root; `-v` says so.
pub fn give_up_root(o: &crate::args::Options) -> Result<()> {
    if !is_root() || o.keep_privileges {
        return Ok(());
    }
    let target = target();
    drop_to(&target, !o.unprivileged)
        .map_err(|e| e.context("cannot drop root privileges (--keep-privileges keeps them)"))?;
    if o.verbose > 0 {
        eprintln!("Dropped privileges to {} (uid {})", target.name, target.uid);
    }
    Ok(())
}

/// The user a scan run as root continues as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Who to become: the sudo caller (`SUDO_UID`, `SUDO_GID`, `SUDO_USER`) when there is one
/// that is not root, else `nobody` as `lookup` finds it (65534 if it does not).
pub fn choose(
    sudo_uid: Option<&str>,
    sudo_gid: Option<&str>,
    sudo_user: Option<&str>,
    lookup: impl Fn(&str) -> Option<(u32, u32)>,
) -> Target {
    let id = |v: Option<&str>| v.and_then(|s| s.parse::<u32>().ok()).filter(|&n| n != 0);
    let (nobody_uid, nobody_gid) = lookup("nobody")
        .filter(|&(u, g)| u != 0 && g != 0)
        .unwrap_or((65534, 65534));
    match id(sudo_uid) {
        Some(uid) => Target {
            name: sudo_user
                .filter(|n| !n.is_empty())
                .map_or_else(|| uid.to_string(), str::to_string),
            uid,
            // A caller whose group is root's still gives it up.
            gid: id(sudo_gid).unwrap_or(nobody_gid),
        },
        None => Target {
            name: "nobody".into(),
            uid: nobody_uid,
            gid: nobody_gid,
        },
    }
}

/// The user to become, from this process's environment and the password database.
pub fn target() -> Target {
    let var = |k: &str| std::env::var(k).ok();
    choose(
        var("SUDO_UID").as_deref(),
        var("SUDO_GID").as_deref(),
        var("SUDO_USER").as_deref(),
        passwd_ids,
    )
}

/// The uid and primary gid of `name` in the password database.
fn passwd_ids(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to a live local of the size passed; getpwnam_r writes
    // only into `pw`, `buf` and `found`.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some((pw.pw_uid, pw.pw_gid))
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The capability sets that `keep_raw` leaves (the first word; the second is empty).
fn kept_caps(keep_raw: bool) -> u32 {
    if keep_raw {
        (1 << CAP_NET_RAW) | (1 << CAP_NET_ADMIN)
    } else {
        0
    }
}

fn os_err(what: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", std::io::Error::last_os_error())
}

/// Becomes `target` for good, keeping `CAP_NET_RAW` and `CAP_NET_ADMIN` when `keep_raw`;
/// then checks that it held. Call it while the process has one thread: capabilities are
/// set per thread.
pub fn drop_to(target: &Target, keep_raw: bool) -> Result<()> {
    if target.uid == 0 || target.gid == 0 {
        bail!(
            "refusing to drop privileges to uid {} gid {}",
            target.uid,
            target.gid
        );
    }
    let (uid, gid) = (target.uid, target.gid);
    // SAFETY: these calls take plain integers (and a null list of zero groups) and touch
    // no memory of ours.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(os_err("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os_err("setgroups"));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(os_err("setresgid"));
        }
        // Keep the permitted capabilities across the change of uid (only those chosen
        // below stay).
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 {
            return Err(os_err("prctl(PR_SET_KEEPCAPS)"));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(os_err("setresuid"));
        }
    }
    let keep = kept_caps(keep_raw);
    let data = [
        CapData {
            effective: keep,
            permitted: keep,
            inheritable: 0,
        },
        CapData::default(),
    ];
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads one header and two data words, all live locals.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(os_err("capset"));
    }
    // SAFETY: plain integers.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    verify(uid, gid, keep)
}

/// The drop held: every uid and gid is the target's, no supplementary group is left, the
/// capabilities are exactly `keep`, and uid 0 cannot be taken back.
fn verify(uid: u32, gid: u32, keep: u32) -> Result<()> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: the pointers are to live locals; getgroups with size 0 only counts.
    let (ids, groups) = unsafe {
        (
            libc::getresuid(&mut r, &mut e, &mut s) == 0
                && libc::getresgid(&mut rg, &mut eg, &mut sg) == 0,
            libc::getgroups(0, std::ptr::null_mut()),
        )
    };
    if !ids || [r, e, s] != [uid; 3] || [rg, eg, sg] != [gid; 3] {
        bail!("privileges not dropped: uids {r}/{e}/{s}, gids {rg}/{eg}/{sg}");
    }
    if groups != 0 {
        bail!("privileges not dropped: {groups} supplementary groups left");
    }
    // SAFETY: plain integers; both must fail now.
    if unsafe { libc::setuid(0) } == 0 || unsafe { libc::setgid(0) } == 0 {
        bail!("privileges not dropped: uid or gid 0 could be taken back");
    }
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two data words into our live array.
    if unsafe { libc::syscall(libc::SYS_capget, &header, data.as_mut_ptr()) } != 0 {
        return Err(os_err("capget"));
    }
    let want = [
        CapData {
            effective: keep,
            permitted: keep,
            inheritable: 0,
        },
        CapData::default(),
    ];
    if data != want {
        bail!("privileges not dropped: capabilities {data:?} left");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwd(name: &str) -> Option<(u32, u32)> {
        (name == "nobody").then_some((65000, 65001))
    }

    #[test]
    fn the_sudo_caller_is_chosen_before_nobody() {
        let t = choose(Some("1000"), Some("1001"), Some("alice"), passwd);
        assert_eq!(
            t,
            Target {
                name: "alice".into(),
                uid: 1000,
                gid: 1001
            }
        );
        // No SUDO_USER: named by number; a root group is not kept.
        let t = choose(Some("1000"), Some("0"), None, passwd);
        assert_eq!((t.name.as_str(), t.uid, t.gid), ("1000", 1000, 65001));
    }

    #[test]
    fn without_a_sudo_caller_it_is_nobody() {
        let nobody = Target {
            name: "nobody".into(),
            uid: 65000,
            gid: 65001,
        };
        // Not under sudo; sudo run by root; a SUDO_UID that is no number.
        assert_eq!(choose(None, None, None, passwd), nobody);
        assert_eq!(choose(Some("0"), Some("0"), Some("root"), passwd), nobody);
        assert_eq!(choose(Some("x"), None, Some("eve"), passwd), nobody);
        // No nobody in the password database (or one mapped to root): 65534.
        let t = choose(None, None, None, |_| None);
        assert_eq!((t.uid, t.gid), (65534, 65534));
        let t = choose(None, None, None, |_| Some((0, 0)));
        assert_eq!((t.uid, t.gid), (65534, 65534));
    }

    #[test]
    fn kept_capabilities_are_the_raw_socket_ones_only() {
        assert_eq!(kept_caps(false), 0);
        assert_eq!(kept_caps(true), 0x3000);
    }

    #[test]
    fn dropping_to_root_is_refused() {
        let root = Target {
            name: "root".into(),
            uid: 0,
            gid: 0,
        };
        assert!(drop_to(&root, true).is_err());
    }

    /// The drop itself, in a child process (it cannot be undone): as root only.
    #[test]
    fn a_dropped_process_keeps_only_the_raw_socket_capabilities() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        // A file only root may read, named before the fork (the child allocates nothing).
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "root's").unwrap();
        std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let secret = CString::new(secret.to_str().unwrap()).unwrap();
        // SAFETY: the child makes system calls only and exits without returning.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let t = Target {
                name: "nobody".into(),
                uid: 65534,
                gid: 65534,
            };
            let code = match drop_to(&t, true) {
                // SAFETY: plain integers and a live C string; the exit closes what opened.
                Ok(()) => unsafe {
                    let raw = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP);
                    let read = libc::open(secret.as_ptr(), libc::O_RDONLY);
                    match (raw >= 0, read >= 0) {
                        (true, false) => 0,
                        (false, _) => 3,
                        (true, true) => 5,
                    }
                },
                Err(_) => 4,
            };
            // SAFETY: ends the child at once, running nothing of the parent's.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child into a live local.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "child status {status}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "3: no raw socket, 4: drop failed, 5: root's file readable"
        );
    }
}
