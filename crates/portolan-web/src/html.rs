//! HTML building: escaping of every string that goes into a page, the page frame (head,
//! navigation), and small pieces (tables, bar charts as SVG, times).
//!
//! Everything the store holds came from the network or from a scan file and is hostile
//! until escaped: pages put text in only through [`E`] (or [`esc`]), never raw.

use std::fmt::{self, Write as _};

/// Text escaped for HTML text and quoted attribute values.
pub struct E<'a>(pub &'a str);

impl fmt::Display for E<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                // Control characters other than tab and newline have no business in a
                // page: shown as the replacement character.
                c if c.is_control() && c != '\n' && c != '\t' => "\u{FFFD}",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + c.len_utf8();
        }
        f.write_str(&self.0[last..])
    }
}

/// `s` escaped, as a String.
pub fn esc(s: &str) -> String {
    E(s).to_string()
}

/// Percent-encoding for a URL query value or path segment.
pub fn url(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A Unix time as UTC text, in a `<time>` element (app.js shows it in local time).
pub fn time(t: i64) -> String {
    let text = time_text(t);
    let iso = chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    format!("<time datetime=\"{iso}\">{text}</time>")
}

pub fn time_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// The navigation's entries: path and label.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/hosts", "Hosts"),
    ("/changes", "Changes"),
    ("/scans", "Scans"),
];

/// A whole page: `title` (escaped here), `body` (already HTML), `api` the JSON behind it.
pub fn page(title: &str, current: &str, api: &str, body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in NAV {
        let cls = if *path == current {
            " class=\"here\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{cls}>{label}</a>");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Portolan</title>\
         <link rel=\"stylesheet\" href=\"/static/style.css\">\
         <link rel=\"icon\" href=\"/static/icon.svg\" type=\"image/svg+xml\">\
         <script src=\"/static/app.js\" defer></script></head>\n\
         <body><header><strong>Portolan</strong><nav>{nav}</nav>\
         <a class=\"api\" href=\"{}\">JSON</a></header>\n<main>\n<h1>{}</h1>\n{body}</main></body></html>\n",
        E(title),
        E(api),
        E(title)
    )
}

/// A table: header cells (plain text) and rows of cells that are already HTML.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(s, "<th>{}</th>", E(h));
    }
    s.push_str("</tr></thead><tbody>\n");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    s
}

/// The characters of a chart's label that fit its column (at 12 px).
const LABEL_CHARS: usize = 22;

/// `s` cut to `n` characters, the last of them an ellipsis when cut.
fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A horizontal bar chart as inline SVG (no script, no style attribute: the CSP allows
/// neither inline): one bar per (label, count), scaled to the largest.
pub fn bars(title: &str, items: &[(String, usize)]) -> String {
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let row = 22;
    let height = row * items.len().max(1);
    let mut s = format!(
        "<figure><figcaption>{}</figcaption>\
         <svg class=\"bars\" width=\"460\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        E(title),
        E(title)
    );
    for (i, (label, n)) in items.iter().enumerate() {
        let y = i * row;
        let w = (*n as f64 / max as f64 * 260.0).round().max(1.0);
        // The label column is 150 px: a longer label (a banner, say) would run under the
        // bar, so it is cut, and the whole of it is the row's tooltip.
        let _ = write!(
            s,
            "<g><title>{}</title><text x=\"0\" y=\"{}\">{}</text>\
             <rect x=\"150\" y=\"{}\" width=\"{w}\" height=\"16\"/>\
             <text x=\"{}\" y=\"{}\">{n}</text></g>",
            E(label),
            y + 15,
            E(&shorten(label, LABEL_CHARS)),
            y + 3,
            155.0 + w,
            y + 15
        );
    }
    s.push_str("</svg></figure>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(esc("a\u{1b}[31mb\nc"), "a\u{FFFD}[31mb\nc");
        assert_eq!(esc("plain é"), "plain é");
        assert_eq!(url("a b/<&>"), "a%20b%2F%3C%26%3E");
    }

    #[test]
    fn the_page_escapes_its_title_and_charts_their_labels() {
        let p = page("<b>", "/", "/api/x?a=1&b=2", "");
        assert!(p.contains("<title>&lt;b&gt; · Portolan</title>"));
        assert!(p.contains("href=\"/api/x?a=1&amp;b=2\""));
        let c = bars("t", &[("<i>".into(), 3), ("ok".into(), 0)]);
        assert!(c.contains("&lt;i&gt;") && !c.contains("<i>"));
        // A long label is cut in the chart and whole in the tooltip.
        let long = "x".repeat(LABEL_CHARS + 5);
        let c = bars("t", &[(long.clone(), 1)]);
        assert!(c.contains(&format!("<title>{long}</title>")));
        let cut = format!("{}…", "x".repeat(LABEL_CHARS - 1));
        assert!(c.contains(&format!(">{cut}</text>")), "{c}");
        assert_eq!(shorten("é".repeat(3).as_str(), 3), "ééé");
        assert_eq!(shorten("ééééé", 3), "éé…");
        assert_eq!(time_text(0), "1970-01-01 00:00 UTC");
    }
}
