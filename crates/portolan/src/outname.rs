//! Nmap's strftime-like placeholders in output file names (`scan-%D.xml`):
//! %H %M %S %m %d %y %Y as in strftime, %T = %H%M%S, %R = %H%M, %D = %m%d%y, %% = %.

use chrono::{DateTime, TimeZone};

pub fn expand<Tz: TimeZone>(name: &str, t: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let mut out = String::with_capacity(name.len() + 8);
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = match chars.next() {
            Some('H') => "%H",
            Some('M') => "%M",
            Some('S') => "%S",
            Some('m') => "%m",
            Some('d') => "%d",
            Some('y') => "%y",
            Some('Y') => "%Y",
            Some('T') => "%H%M%S",
            Some('R') => "%H%M",
            Some('D') => "%m%d%y",
            Some('%') => {
                out.push('%');
                continue;
            }
            // Anything else stays as typed, as Nmap leaves it.
            Some(other) => {
                out.push('%');
                out.push(other);
                continue;
            }
            None => {
                out.push('%');
                continue;
            }
        };
        out.push_str(&t.format(spec).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn placeholders_expand_as_nmaps() {
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 9, 5, 7).unwrap();
        assert_eq!(expand("scan-%D.xml", &t), "scan-112226.xml");
        assert_eq!(expand("%Y-%m-%d_%H%M%S", &t), "2026-11-22_090507");
        assert_eq!(expand("%T-%R", &t), "090507-0905");
        assert_eq!(expand("100%%-%y", &t), "100%-26");
        assert_eq!(expand("odd%q%", &t), "odd%q%");
        assert_eq!(expand("plain.xml", &t), "plain.xml");
    }
}
