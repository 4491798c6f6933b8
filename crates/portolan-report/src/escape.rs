//! Escaping of untrusted text (banners, script output, user arguments) for each output.

use std::fmt::Write as _;

/// Characters XML 1.0 cannot carry at all, even as a character reference.
fn xml_forbidden(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// Writes each UTF-8 byte of `c` as `\xHH`, the way Nmap shows unprintable bytes.
fn push_hex_bytes(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        // Writing to a String cannot fail.
        let _ = write!(out, "\\x{b:02X}");
    }
}

/// Escapes `s` for an XML attribute value, text node or comment, as Nmap's `xml_convert` does:
/// the five predefined entities, `--` as `-&#45;` (so it is also safe inside a comment),
/// tab/newline/carriage return as character references (attribute normalisation would
/// otherwise turn them into spaces), and characters XML 1.0 forbids as literal `\xHH` text.
pub(crate) fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_dash = false;
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '-' if prev_dash => out.push_str("&#45;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xa;"),
            '\r' => out.push_str("&#xd;"),
            c if xml_forbidden(c) => push_hex_bytes(&mut out, c),
            c => out.push(c),
        }
        prev_dash = c == '-';
    }
    out
}

/// Makes text safe for a terminal or a line-oriented file: control characters (which could
/// break the layout or drive the terminal) become `\xHH`; everything else is kept.
pub(crate) fn text(s: &str) -> String {
    if !s.chars().any(|c| c.is_control()) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            push_hex_bytes(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// [`text`] for each line of a multi-line text, the line breaks kept.
pub(crate) fn text_lines(s: &str) -> String {
    s.split('\n').map(text).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_like_nmap() {
        assert_eq!(xml(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(xml("nmap --reason"), "nmap -&#45;reason");
        assert_eq!(xml("---"), "-&#45;&#45;");
        assert_eq!(xml("a\nb\tc\rd"), "a&#xa;b&#x9;c&#xd;d");
    }

    #[test]
    fn xml_keeps_forbidden_chars_out() {
        assert_eq!(xml("\0\u{1}\u{1b}x"), "\\x00\\x01\\x1Bx");
        assert_eq!(xml("\u{FFFE}"), "\\xEF\\xBF\\xBE");
        assert_eq!(xml("é✓"), "é✓");
    }

    #[test]
    fn text_hides_control_chars() {
        assert_eq!(text("ok"), "ok");
        assert_eq!(text("a\u{1b}[31mb\tc\n"), "a\\x1B[31mb\\x09c\\x0A");
        assert_eq!(text("\u{7f}\u{85}"), "\\x7F\\xC2\\x85");
    }
}
