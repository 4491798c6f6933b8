//! Version templates: the `p/…/ v/…/ i/…/ h/…/ o/…/ d/…/ cpe:/…/` fields of a match line,
//! with `$1`..`$9`, `$P(n)`, `$SUBST(n,"from","to")` and `$I(n,">")` / `$I(n,"<")` filled
//! from the regex captures.

/// Longest string a template produces, in bytes (before lossy UTF-8 conversion). Nmap keeps
/// these fields in fixed buffers (80 to 256 bytes); we are more generous but still bound what
/// a hostile response can push into the XML output.
pub const MAX_FIELD_LEN: usize = 1024;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    /// `$n`: the capture as it is.
    Group(usize),
    /// `$P(n)`: the capture with non-printable bytes removed.
    Printable(usize),
    /// `$SUBST(n,"from","to")`: the capture with every `from` replaced by `to`.
    Subst(usize, Vec<u8>, Vec<u8>),
    /// `$I(n,">")` (big-endian) or `$I(n,"<")`: the capture's bytes read as an unsigned
    /// integer, printed in decimal.
    Int(usize, bool),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

fn parse_num(s: &[u8], i: &mut usize) -> Result<usize, String> {
    let start = *i;
    while *i < s.len() && s[*i].is_ascii_digit() {
        *i += 1;
    }
    let digits = &s[start..*i];
    if digits.is_empty() || digits.len() > 1 {
        return Err("capture number must be one digit 1-9".into());
    }
    let n = usize::from(digits[0] - b'0');
    if n == 0 {
        return Err("capture number must be 1-9".into());
    }
    Ok(n)
}

fn skip_ws(s: &[u8], i: &mut usize) {
    while *i < s.len() && s[*i] == b' ' {
        *i += 1;
    }
}

fn expect(s: &[u8], i: &mut usize, c: u8) -> Result<(), String> {
    skip_ws(s, i);
    if s.get(*i) == Some(&c) {
        *i += 1;
        Ok(())
    } else {
        Err(format!("expected `{}`", c as char))
    }
}

/// A `"…"` argument: the bytes up to the next `"` (no escapes, as in Nmap).
fn parse_quoted(s: &[u8], i: &mut usize) -> Result<Vec<u8>, String> {
    expect(s, i, b'"')?;
    let start = *i;
    while *i < s.len() && s[*i] != b'"' {
        *i += 1;
    }
    if *i >= s.len() {
        return Err("unterminated string argument".into());
    }
    let out = s[start..*i].to_vec();
    *i += 1;
    Ok(out)
}

impl Template {
    /// Parses a template's text (what lies between the field's delimiters).
    pub fn parse(source: &str) -> Result<Template, String> {
        let s = source.as_bytes();
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < s.len() {
            if s[i] != b'$' {
                lit.push(s[i]);
                i += 1;
                continue;
            }
            let next = s.get(i + 1).copied();
            let piece = match next {
                // One digit only, as in Nmap: `$12` is capture 1 followed by "2".
                Some(c) if c.is_ascii_digit() => {
                    if c == b'0' {
                        return Err("capture number must be 1-9".into());
                    }
                    i += 2;
                    Piece::Group(usize::from(c - b'0'))
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    i += 1;
                    let start = i;
                    while i < s.len() && s[i].is_ascii_alphabetic() {
                        i += 1;
                    }
                    let name = &s[start..i];
                    expect(s, &mut i, b'(')?;
                    skip_ws(s, &mut i);
                    let n = parse_num(s, &mut i)?;
                    let piece = match name {
                        b"P" => Piece::Printable(n),
                        b"SUBST" => {
                            expect(s, &mut i, b',')?;
                            let from = parse_quoted(s, &mut i)?;
                            expect(s, &mut i, b',')?;
                            let to = parse_quoted(s, &mut i)?;
                            Piece::Subst(n, from, to)
                        }
                        b"I" => {
                            expect(s, &mut i, b',')?;
                            let order = parse_quoted(s, &mut i)?;
                            match order.as_slice() {
                                b">" => Piece::Int(n, true),
                                b"<" => Piece::Int(n, false),
                                _ => return Err("$I byte order must be \">\" or \"<\"".into()),
                            }
                        }
                        other => {
                            return Err(format!(
                                "unknown template function `${}`",
                                String::from_utf8_lossy(other)
                            ))
                        }
                    };
                    expect(s, &mut i, b')')?;
                    piece
                }
                // A `$` not followed by a digit or a name is plain text.
                _ => {
                    lit.push(b'$');
                    i += 1;
                    continue;
                }
            };
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut lit)));
            }
            pieces.push(piece);
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        Ok(Template {
            source: source.to_string(),
            pieces,
        })
    }

    /// The template as written in the file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The highest capture number the template uses (0 if none).
    pub fn max_group(&self) -> usize {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Literal(_) => 0,
                Piece::Group(n)
                | Piece::Printable(n)
                | Piece::Subst(n, _, _)
                | Piece::Int(n, _) => *n,
            })
            .max()
            .unwrap_or(0)
    }

    /// Fills the template. `group(n)` gives capture `n` (empty if it did not take part in the
    /// match). With `cpe`, substituted text is lowercased and CPE-reserved characters are
    /// percent-escaped, as Nmap does for `cpe:` fields. Invalid UTF-8 comes out as U+FFFD;
    /// the result is at most [`MAX_FIELD_LEN`] bytes before that conversion.
    pub fn render<'a>(&self, group: impl Fn(usize) -> &'a [u8], cpe: bool) -> String {
        let mut out: Vec<u8> = Vec::new();
        let sub = |out: &mut Vec<u8>, bytes: &[u8]| {
            if cpe {
                for &b in bytes {
                    if b":/?#[]@!$&'()*+,;=%<>\"".contains(&b) {
                        out.extend_from_slice(format!("%{b:02X}").as_bytes());
                    } else {
                        out.push(b.to_ascii_lowercase());
                    }
                }
            } else {
                out.extend_from_slice(bytes);
            }
        };
        for piece in &self.pieces {
            if out.len() > MAX_FIELD_LEN {
                break;
            }
            match piece {
                Piece::Literal(l) => out.extend_from_slice(l),
                Piece::Group(n) => sub(&mut out, group(*n)),
                Piece::Printable(n) => {
                    let printable: Vec<u8> = group(*n)
                        .iter()
                        .copied()
                        .filter(|b| (0x20..0x7f).contains(b))
                        .collect();
                    sub(&mut out, &printable);
                }
                Piece::Subst(n, from, to) => {
                    let replaced = replace_all(group(*n), from, to);
                    sub(&mut out, &replaced);
                }
                Piece::Int(n, big_endian) => {
                    let bytes = group(*n);
                    // Nmap refuses captures longer than its integer type; so do we (empty).
                    if !bytes.is_empty() && bytes.len() <= 8 {
                        let mut v: u64 = 0;
                        if *big_endian {
                            for &b in bytes {
                                v = (v << 8) | u64::from(b);
                            }
                        } else {
                            for &b in bytes.iter().rev() {
                                v = (v << 8) | u64::from(b);
                            }
                        }
                        sub(&mut out, v.to_string().as_bytes());
                    }
                }
            }
        }
        out.truncate(MAX_FIELD_LEN);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// The version fields of a match line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionInfo {
    /// `p/…/`: vendor and product name.
    pub product: Option<Template>,
    /// `v/…/`: version.
    pub version: Option<Template>,
    /// `i/…/`: extra information.
    pub info: Option<Template>,
    /// `h/…/`: host name.
    pub hostname: Option<Template>,
    /// `o/…/`: operating system.
    pub ostype: Option<Template>,
    /// `d/…/`: device type.
    pub devicetype: Option<Template>,
    /// `cpe:/…/` fields, in order (the text after `cpe:/`).
    pub cpes: Vec<Template>,
}

impl VersionInfo {
    /// The highest capture number any field uses.
    pub fn max_group(&self) -> usize {
        [
            &self.product,
            &self.version,
            &self.info,
            &self.hostname,
            &self.ostype,
            &self.devicetype,
        ]
        .into_iter()
        .flatten()
        .chain(self.cpes.iter())
        .map(Template::max_group)
        .max()
        .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, groups: &[&[u8]]) -> String {
        let t = Template::parse(t).unwrap();
        t.render(|n| groups.get(n).copied().unwrap_or(b""), false)
    }

    #[test]
    fn plain_groups() {
        let g: &[&[u8]] = &[b"all", b"9.2p1", b"2.0"];
        assert_eq!(render("$1", g), "9.2p1");
        assert_eq!(render("protocol $2", g), "protocol 2.0");
        assert_eq!(render("$1-$2$3", g), "9.2p1-2.0");
        assert_eq!(render("costs $ 5", g), "costs $ 5");
        assert_eq!(render("end$", g), "end$");
        assert_eq!(render("$12", g), "9.2p12");
    }

    #[test]
    fn printable_filter() {
        let g: &[&[u8]] = &[b"", b"ab\x00c\x7f\r\nd\xffe"];
        assert_eq!(render("$P(1)", g), "abcde");
        assert_eq!(render("$P( 1 )", g), "abcde");
    }

    #[test]
    fn subst() {
        let g: &[&[u8]] = &[b"", b"2_4_1", b"a..b"];
        assert_eq!(render(r#"$SUBST(1,"_",".")"#, g), "2.4.1");
        assert_eq!(render(r#"v$SUBST(2,"..", "+")!"#, g), "va+b!");
        assert_eq!(render(r#"$SUBST(1,"","x")"#, g), "2_4_1");
    }

    #[test]
    fn int_endianness() {
        let g: &[&[u8]] = &[
            b"",
            b"\x01\x02",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"123456789",
        ];
        assert_eq!(render(r#"$I(1,">")"#, g), "258");
        assert_eq!(render(r#"$I(1,"<")"#, g), "513");
        assert_eq!(render(r#"$I(2,">")"#, g), u64::MAX.to_string());
        // Longer than 8 bytes: nothing.
        assert_eq!(render(r#"[$I(3,">")]"#, g), "[]");
    }

    #[test]
    fn lossy_non_utf8() {
        let g: &[&[u8]] = &[b"", b"caf\xe9"];
        assert_eq!(render("$1", g), "caf\u{fffd}");
    }

    #[test]
    fn cpe_escaping() {
        let t = Template::parse("a:vendor:prod:$1").unwrap();
        let out = t.render(|n| if n == 1 { b"V1.0 (Beta)" } else { b"" }, true);
        assert_eq!(out, "a:vendor:prod:v1.0 %28beta%29");
    }

    #[test]
    fn output_is_bounded() {
        let big = vec![b'x'; 10_000];
        let t = Template::parse("$1$1$1").unwrap();
        let out = t.render(|_| &big, false);
        assert_eq!(out.len(), MAX_FIELD_LEN);
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "$0",
            "$P(1",
            "$P(x)",
            "$Q(1)",
            r#"$SUBST(1,"a")"#,
            r#"$SUBST(1,"a","b"#,
            r#"$I(1,"!")"#,
            r#"$I(1,>)"#,
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Template::parse("$P(3) $1").unwrap().max_group(), 3);
    }
}
