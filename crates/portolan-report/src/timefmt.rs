//! The time stamps Nmap prints, rendered in the local time zone (as Nmap does) or in UTC
//! (for reproducible output and tests).

use chrono::{DateTime, Datelike, Local, NaiveDateTime, TimeZone, Utc};

/// Which clock face the writers use for human-readable times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Zone {
    #[default]
    Local,
    Utc,
}

impl Zone {
    pub(crate) fn from_utc_flag(utc: bool) -> Self {
        if utc {
            Zone::Utc
        } else {
            Zone::Local
        }
    }

    /// C's `ctime()` without the newline: `Sun Nov 22 10:37:24 2026` (day padded with a space).
    pub(crate) fn ctime(self, epoch: i64) -> String {
        self.format(epoch, "%a %b %e %H:%M:%S %Y")
    }

    /// Nmap's "Starting ... at" stamp: `2026-11-22 10:37 UTC`.
    pub(crate) fn starting(self, epoch: i64) -> String {
        format!(
            "{} {}",
            self.format(epoch, "%Y-%m-%d %H:%M"),
            self.abbrev(epoch)
        )
    }

    /// Nmap's "Scanned at" stamp (-vv): `2026-11-22 10:37:24 UTC`.
    pub(crate) fn seconds(self, epoch: i64) -> String {
        format!(
            "{} {}",
            self.format(epoch, "%Y-%m-%d %H:%M:%S"),
            self.abbrev(epoch)
        )
    }

    /// Reads back what [`Zone::ctime`] wrote: `Sun Nov 22 10:37:24 2026` in this zone.
    /// A local time that a clock change makes ambiguous gives the earlier instant.
    pub(crate) fn parse_ctime(self, s: &str) -> Option<i64> {
        // `%e` pads the day with a space, which chrono's parser takes as optional.
        let t = NaiveDateTime::parse_from_str(s.trim(), "%a %b %e %H:%M:%S %Y").ok()?;
        // Four-digit years only: what `ctime` writes, and reads back, for any scan's time.
        if !(1000..=9999).contains(&t.year()) {
            return None;
        }
        match self {
            Zone::Utc => Some(t.and_utc().timestamp()),
            Zone::Local => Some(Local.from_local_datetime(&t).earliest()?.timestamp()),
        }
    }

    pub(crate) fn format(self, epoch: i64, fmt: &str) -> String {
        match self {
            Zone::Utc => match DateTime::<Utc>::from_timestamp(epoch, 0) {
                Some(t) => t.format(fmt).to_string(),
                None => epoch.to_string(),
            },
            Zone::Local => match Local.timestamp_opt(epoch, 0).earliest() {
                Some(t) => t.format(fmt).to_string(),
                None => epoch.to_string(),
            },
        }
    }

    /// The zone's abbreviation, as strftime's `%Z` prints it. chrono only knows offsets,
    /// so the local name comes from the C library (the same source Nmap uses).
    fn abbrev(self, epoch: i64) -> String {
        match self {
            Zone::Utc => "UTC".to_string(),
            Zone::Local => local_abbrev(epoch).unwrap_or_else(|| {
                Local
                    .timestamp_opt(epoch, 0)
                    .earliest()
                    .map(|t| t.format("%z").to_string())
                    .unwrap_or_default()
            }),
        }
    }
}

#[cfg(unix)]
fn local_abbrev(epoch: i64) -> Option<String> {
    #[allow(clippy::useless_conversion)] // time_t is 32 bits on some targets
    let t: libc::time_t = epoch.try_into().ok()?;
    // SAFETY: an all-zero `tm` is a valid value of the plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals; localtime_r is the reentrant variant and
    // returns null on failure, which we check.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    let mut buf = [0u8; 64];
    // SAFETY: the buffer's length is passed, the format is a NUL-terminated literal and `tm`
    // was filled by localtime_r. strftime returns the bytes written, 0 if it did not fit.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast::<libc::c_char>(),
            buf.len(),
            c"%Z".as_ptr(),
            &tm,
        )
    };
    let name = std::str::from_utf8(buf.get(..n)?).ok()?.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(not(unix))]
fn local_abbrev(_epoch: i64) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_match_nmap() {
        // 1795344023 is the start of the reference scan in tests/data/nmap-basic.xml.
        assert_eq!(Zone::Utc.ctime(1795344023), "Sun Nov 22 10:40:23 2026");
        assert_eq!(Zone::Utc.starting(1795344023), "2026-11-22 10:40 UTC");
        assert_eq!(Zone::Utc.seconds(1795344023), "2026-11-22 10:40:23 UTC");
        // ctime pads single-digit days with a space.
        assert_eq!(Zone::Utc.ctime(1622808000), "Fri Jun  4 12:00:00 2021");
    }

    #[test]
    fn out_of_range_times_do_not_panic() {
        assert_eq!(Zone::Utc.ctime(i64::MAX), i64::MAX.to_string());
        let _ = Zone::Local.ctime(i64::MIN);
        let _ = Zone::Local.starting(i64::MAX);
    }

    #[test]
    fn ctime_reads_back() {
        for epoch in [1795344023, 1622808000, 0] {
            assert_eq!(Zone::Utc.parse_ctime(&Zone::Utc.ctime(epoch)), Some(epoch));
            assert_eq!(
                Zone::Local.parse_ctime(&Zone::Local.ctime(epoch)),
                Some(epoch)
            );
        }
        assert_eq!(
            Zone::Utc.parse_ctime("Fri Jun  4 12:00:00 2021"),
            Some(1622808000)
        );
        for bad in [
            "Fri Jun  4 12:00:00 20210",
            "Fri Jun  4 12:00:00 -202",
            "",
            "Fri Jun 4",
            "Fri Jun 32 12:00:00 2021",
            "\u{0}",
            "x Jun  4 12:00:00 2021",
        ] {
            assert_eq!(Zone::Utc.parse_ctime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn local_zone_has_a_name() {
        assert!(!Zone::Local.starting(1795344023).ends_with(' '));
    }
}
