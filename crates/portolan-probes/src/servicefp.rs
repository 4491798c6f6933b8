//! Nmap's service fingerprint: the `SF-Port…` text Nmap prints for a service it could not
//! name (or only soft-matched), for users to submit and for scripts (`banner`,
//! `fingerprint-strings`) to read the probes' answers from.
//!
//! [`service_fingerprint`] writes it as Nmap 7.93's XML `servicefp` attribute holds it: one
//! line, ending in `;`. Normal output wraps that line into `SF:`-prefixed lines of
//! [`WRAP_AT`] characters, as Nmap builds it internally (portolan-report does that).
//!
//! The text, as Nmap's `ServiceNFO::addToServiceFingerprint` makes it:
//! `SF-Port<port>-<TCP|UDP>:V=<version>[%T=SSL]%I=<intensity>%D=<month>/<day>%Time=<epoch,
//! hex>%P=<platform>`, then `%r(<probe>,<length, hex>,"<answer>")` for each probe that got
//! data, in the order they were sent. `%T=SSL` says that the first answer came through TLS.
//! An answer shows at most its first [`MAX_SHOWN`] bytes (the length is the whole answer's);
//! letters and digits as they are, `\0` (or `\x00` before a digit), `\r`, `\n`, `\t`,
//! punctuation as it is but PCRE's special characters behind a backslash, the rest as
//! `\xhh`. Once the text is longer than [`MAX_LEN`] (counted wrapped, as Nmap counts it), no
//! further answer is added.

use crate::Proto;

/// The most bytes of one answer shown (Nmap without debugging: 900).
pub const MAX_SHOWN: usize = 900;
/// No answer is added once the wrapped text is longer than this (Nmap without debugging).
pub const MAX_LEN: usize = 2200;
/// Characters on each wrapped line, its `SF:` prefix included.
pub const WRAP_AT: usize = 74;

/// The header of a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpHeader<'a> {
    pub port: u16,
    pub proto: Proto,
    /// The first answer came through TLS (`%T=SSL`).
    pub ssl: bool,
    /// `V=`: the Nmap version whose probes and format we follow.
    pub version: &'a str,
    /// `I=`: the version intensity.
    pub intensity: u8,
    /// `D=`: local month (1-12) and day of the month.
    pub month: u8,
    pub day: u8,
    /// `Time=`: Unix time of the first answer, seconds.
    pub time: i64,
    /// `P=`: the platform string (Nmap's build triple, `x86_64-pc-linux-gnu`).
    pub platform: &'a str,
}

/// Builds the fingerprint as one line, as in Nmap's XML (see the module docs); None when
/// no probe got data, as Nmap then has none.
pub fn service_fingerprint<'r>(
    header: &FpHeader<'_>,
    answers: impl IntoIterator<Item = (&'r str, &'r [u8])>,
) -> Option<String> {
    let mut fp = Builder::default();
    for (probe, data) in answers {
        if data.is_empty() {
            continue;
        }
        if fp.wrapped > MAX_LEN {
            break;
        }
        if fp.text.is_empty() {
            fp.push_str(&format!(
                "SF-Port{}-{}:V={}{}%I={}%D={}/{}%Time={:X}%P={}",
                header.port,
                match header.proto {
                    Proto::Tcp => "TCP",
                    Proto::Udp => "UDP",
                },
                header.version,
                if header.ssl { "%T=SSL" } else { "" },
                header.intensity,
                header.month,
                header.day,
                // Nmap prints the C `int` of time(NULL).
                header.time as i32,
                header.platform,
            ));
        }
        fp.push_str(&format!("%r({probe},{:X},\"", data.len()));
        let shown = &data[..data.len().min(MAX_SHOWN)];
        for (i, &b) in shown.iter().enumerate() {
            escape_byte(&mut fp, b, shown.get(i + 1).copied());
        }
        fp.push_str("\")");
    }
    if fp.text.is_empty() {
        return None;
    }
    fp.text.push(';');
    Some(fp.text)
}

/// One byte of an answer, escaped as Nmap escapes it; `next` is the byte after it (among
/// those shown).
fn escape_byte(fp: &mut Builder, b: u8, next: Option<u8>) {
    match b {
        b if b.is_ascii_alphanumeric() => fp.push(b as char),
        // `\0` before a digit would read as an octal escape.
        0 if next.is_some_and(|n| n.is_ascii_digit()) => fp.push_str("\\x00"),
        0 => fp.push_str("\\0"),
        b'\\' | b'?' | b'"' | b'[' | b']' | b'(' | b')' | b'.' | b'*' | b'+' | b'$' | b'^'
        | b'|' => {
            fp.push('\\');
            fp.push(b as char);
        }
        b if b.is_ascii_punctuation() => fp.push(b as char),
        b'\r' => fp.push_str("\\r"),
        b'\n' => fp.push_str("\\n"),
        b'\t' => fp.push_str("\\t"),
        b => fp.push_str(&format!("\\x{b:02x}")),
    }
}

/// The one-line text, and its length as Nmap counts it: wrapped, `\nSF:` included.
#[derive(Default)]
struct Builder {
    text: String,
    wrapped: usize,
}

impl Builder {
    fn push(&mut self, c: char) {
        if self.wrapped % (WRAP_AT + 1) == WRAP_AT {
            self.wrapped += "\nSF:".len();
        }
        self.wrapped += 1;
        self.text.push(c);
    }

    fn push_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Normal output's form (portolan-report's writer has the real one): lines of WRAP_AT
    /// characters, `SF:` starting each after the first, the final `;` never wrapped.
    fn wrap(fp: &str) -> String {
        let body = fp.strip_suffix(';').unwrap_or(fp);
        let mut out = String::new();
        for (i, c) in body.chars().enumerate() {
            if i >= WRAP_AT && (i - WRAP_AT).is_multiple_of(WRAP_AT - 3) {
                out.push_str("\nSF:");
            }
            out.push(c);
        }
        if fp.ends_with(';') {
            out.push(';');
        }
        out
    }

    fn unwrap(fp: &str) -> String {
        fp.replace("\nSF:", "")
    }

    fn header() -> FpHeader<'static> {
        FpHeader {
            port: 47811,
            proto: Proto::Tcp,
            ssl: false,
            version: "7.93",
            intensity: 7,
            month: 12,
            day: 5,
            time: 0x6B139F57,
            platform: "x86_64-pc-linux-gnu",
        }
    }

    const BANNER: &[u8] =
        b"ZORGLUB-7 \x00\x01\x02 weird\tbanner ready (x=1) [ok] $^|*+?.\\ \"q\"\r\n";

    /// What nmap 7.93 printed for a listener that sends BANNER and then echoes the first 40
    /// bytes of what it gets after "ERR unknown command: ", followed by "\0123\xff\r\n"
    /// (the first three of its answers).
    const NMAP_NORMAL: &str = "\
SF-Port47811-TCP:V=7.93%I=7%D=12/5%Time=6B139F57%P=x86_64-pc-linux-gnu%r(N
SF:ULL,3A,\"ZORGLUB-7\\x20\\0\\x01\\x02\\x20weird\\tbanner\\x20ready\\x20\\(x=1\\)\\x2
SF:0\\[ok\\]\\x20\\$\\^\\|\\*\\+\\?\\.\\\\\\x20\\\"q\\\"\\r\\n\")%r(GenericLines,5A,\"ZORGLUB-7
SF:\\x20\\0\\x01\\x02\\x20weird\\tbanner\\x20ready\\x20\\(x=1\\)\\x20\\[ok\\]\\x20\\$\\^\\|
SF:\\*\\+\\?\\.\\\\\\x20\\\"q\\\"\\r\\nERR\\x20unknown\\x20command:\\x20\\r\\n\\r\\n\\x00123\\xf
SF:f\\r\\n\")%r(GetRequest,68,\"ZORGLUB-7\\x20\\0\\x01\\x02\\x20weird\\tbanner\\x20re
SF:ady\\x20\\(x=1\\)\\x20\\[ok\\]\\x20\\$\\^\\|\\*\\+\\?\\.\\\\\\x20\\\"q\\\"\\r\\nERR\\x20unknown
SF:\\x20command:\\x20GET\\x20/\\x20HTTP/1\\.0\\r\\n\\r\\n\\x00123\\xff\\r\\n\");";

    fn answer(sent: &[u8]) -> Vec<u8> {
        let mut a = BANNER.to_vec();
        a.extend_from_slice(b"ERR unknown command: ");
        a.extend_from_slice(&sent[..sent.len().min(40)]);
        a.extend_from_slice(b"\x00123\xff\r\n");
        a
    }

    #[test]
    fn matches_what_nmap_printed() {
        let generic = answer(b"\r\n\r\n");
        let get = answer(b"GET / HTTP/1.0\r\n\r\n");
        let fp = service_fingerprint(
            &header(),
            [
                ("NULL", BANNER),
                ("GenericLines", &generic[..]),
                ("GetRequest", &get[..]),
            ],
        )
        .expect("answers");
        assert_eq!(wrap(&fp), NMAP_NORMAL);
        assert_eq!(fp, unwrap(NMAP_NORMAL));
        assert!(!fp.contains('\n'));
    }

    #[test]
    fn nothing_without_data() {
        assert_eq!(service_fingerprint(&header(), []), None);
        assert_eq!(service_fingerprint(&header(), [("NULL", &b""[..])]), None);
    }

    #[test]
    fn header_marks_tls_and_udp() {
        let h = FpHeader {
            proto: Proto::Udp,
            ssl: true,
            port: 161,
            ..header()
        };
        let fp = service_fingerprint(&h, [("SNMPv1public", &b"\x30"[..])]).expect("data");
        assert_eq!(
            fp,
            "SF-Port161-UDP:V=7.93%T=SSL%I=7%D=12/5%Time=6B139F57%P=x86_64-pc-linux-gnu\
             %r(SNMPv1public,1,\"0\");"
        );
    }

    #[test]
    fn escapes_every_byte_class() {
        let data = b"aZ9\x00\x001\x00 !#%&',-/:;<=>@_`{}~\\?\"[]().*+$^|\r\n\t\x7f\x80\xff\x00";
        let fp = service_fingerprint(&header(), [("X", &data[..])]).expect("data");
        let body = fp.split("%r(").nth(1).expect("entry");
        assert_eq!(
            body,
            "X,2F,\"aZ9\\0\\x001\\0\\x20!#%&',-/:;<=>@_`{}~\\\\\\?\\\"\\[\\]\\(\\)\\.\\*\\+\\$\\^\\|\
             \\r\\n\\t\\x7f\\x80\\xff\\0\");"
        );
    }

    #[test]
    fn long_answers_are_cut_but_keep_their_length() {
        let data = vec![b'A'; 1000];
        let fp = service_fingerprint(&header(), [("X", &data[..])]).expect("data");
        assert!(fp.contains("%r(X,3E8,\""));
        assert_eq!(fp.matches('A').count(), MAX_SHOWN);
    }

    #[test]
    fn no_answer_is_added_past_the_size_cap() {
        // Each entry: 900 shown bytes (as \xhh: 3600 characters), so the second one comes
        // after the cap and is left out; the first is kept whole.
        let data = vec![0x01u8; 950];
        let fp =
            service_fingerprint(&header(), [("A", &data[..]), ("B", &data[..])]).expect("data");
        assert!(fp.contains("%r(A,3B6,"));
        assert!(!fp.contains("%r(B,"));
        // Under the cap, the next answer still goes in.
        let short = vec![b'x'; 2000];
        let fp =
            service_fingerprint(&header(), [("A", &short[..900]), ("B", &b"y"[..])]).expect("data");
        assert!(fp.contains("%r(B,1,\"y\")"));
    }

    #[test]
    fn wrapped_length_counts_as_nmaps() {
        // The builder's count is the length of the wrapped text without its `;`.
        let data: Vec<u8> = (0u8..=255).cycle().take(700).collect();
        let mut b = Builder::default();
        for (i, &x) in data.iter().enumerate() {
            escape_byte(&mut b, x, data.get(i + 1).copied());
        }
        assert_eq!(b.wrapped, wrap(&b.text).len());
    }
}
