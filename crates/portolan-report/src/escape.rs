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

/// Writes `c`'s UTF-8 bytes as the JSON text of `\xHH` (the backslash itself escaped).
fn json_hex_bytes<W: ?Sized + std::io::Write>(w: &mut W, c: char) -> std::io::Result<()> {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        write!(w, "\\\\x{b:02X}")?;
    }
    Ok(())
}

/// serde_json's compact layout, with control characters in strings written as `\xHH` text,
/// as the XML and normal outputs write them: JSON would carry an escape sequence (`\u001b`)
/// that any consumer printing the string sends to a terminal as ESC. Tab, newline and
/// carriage return stay (`\t`, `\n`, `\r`: script output is multi-line), as in XML; every
/// other C0 control, DEL and the C1 controls become `\xHH`. The output stays valid JSON.
pub(crate) struct JsonFormatter;

impl serde_json::ser::Formatter for JsonFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        // serde_json escapes C0 itself (write_char_escape below); DEL and C1 come here.
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_control() {
                w.write_all(fragment.get(start..i).unwrap_or_default().as_bytes())?;
                json_hex_bytes(w, c)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(fragment.get(start..).unwrap_or_default().as_bytes())
    }

    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        escape: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        use serde_json::ser::{CharEscape, CompactFormatter};
        match escape {
            CharEscape::Backspace => json_hex_bytes(w, '\u{8}'),
            CharEscape::FormFeed => json_hex_bytes(w, '\u{c}'),
            CharEscape::AsciiControl(b) => json_hex_bytes(w, char::from(b)),
            other => CompactFormatter.write_char_escape(w, other),
        }
    }
}

/// Serialises `value` as compact JSON with [`JsonFormatter`].
pub(crate) fn json_to_writer<W: std::io::Write, T: ?Sized + serde::Serialize>(
    w: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, JsonFormatter);
    value.serialize(&mut ser)
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

    /// `-oJ` carried banner control characters (ESC sequences) where XML and normal output
    /// escape them.
    #[test]
    fn json_writes_control_chars_as_text_and_stays_json() {
        let mut out = Vec::new();
        let banner = "SSH\u{1b}[31m\u{0}\u{8}\u{c}\u{7f}\u{9b}2J\tok\r\n\"q\" \\ é";
        json_to_writer(&mut out, &banner).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#""SSH\\x1B[31m\\x00\\x08\\x0C\\x7F\\xC2\\x9B2J\tok\r\n\"q\" \\ é""#
        );
        let back: String = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            "SSH\\x1B[31m\\x00\\x08\\x0C\\x7F\\xC2\\x9B2J\tok\r\n\"q\" \\ é"
        );
        assert!(!back
            .chars()
            .any(|c| c.is_control() && !"\t\r\n".contains(c)));
    }

    #[test]
    fn text_hides_control_chars() {
        assert_eq!(text("ok"), "ok");
        assert_eq!(text("a\u{1b}[31mb\tc\n"), "a\\x1B[31mb\\x09c\\x0A");
        assert_eq!(text("\u{7f}\u{85}"), "\\x7F\\xC2\\x85");
    }
}
