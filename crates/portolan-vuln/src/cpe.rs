//! CPE names: the 2.3 formatted strings of NVD's `criteria` (`cpe:2.3:a:openbsd:openssh:9.3:p1:…`)
//! and the 2.2 URIs Nmap and Portolan's `-sV` report (`cpe:/a:openbsd:openssh:9.2p1`), read
//! into the few fields matching needs.

/// The fields of a CPE that matching uses, unescaped and lower-cased. `*` is ANY and `-` is
/// NA, as in the CPE specification; an absent field of a 2.2 URI is ANY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpe {
    /// `a` application, `o` operating system, `h` hardware.
    pub part: String,
    pub vendor: String,
    pub product: String,
    pub version: String,
    pub update: String,
}

impl Cpe {
    /// The version with its update, as a service would announce it: NVD writes OpenSSH
    /// 9.3p1 as version `9.3`, update `p1`.
    pub fn full_version(&self) -> String {
        match self.update.as_str() {
            "*" | "-" | "" => self.version.clone(),
            u if u.starts_with(|c: char| c.is_ascii_digit()) => {
                format!("{}.{u}", self.version)
            }
            u => format!("{}{u}", self.version),
        }
    }
}

/// Reads a CPE 2.3 formatted string (`cpe:2.3:part:vendor:product:version:update:...`);
/// None when it is not one.
pub fn parse_23(s: &str) -> Option<Cpe> {
    let rest = s.strip_prefix("cpe:2.3:")?;
    let mut fields = Vec::with_capacity(11);
    let mut cur = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ':' => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    fields.push(cur);
    let field = |i: usize| {
        fields
            .get(i)
            .map(|f| f.to_ascii_lowercase())
            .unwrap_or_else(|| "*".to_string())
    };
    let part = field(0);
    if !matches!(part.as_str(), "a" | "o" | "h") || fields.len() < 3 {
        return None;
    }
    Some(Cpe {
        part,
        vendor: field(1),
        product: field(2),
        version: field(3),
        update: field(4),
    })
}

/// Reads a CPE 2.2 URI (`cpe:/a:vendor:product:version`); None when it is not one.
pub fn parse_22(s: &str) -> Option<Cpe> {
    let rest = s.strip_prefix("cpe:/")?;
    let mut fields = rest
        .split(':')
        .map(|f| percent_decode(f).to_ascii_lowercase());
    let part = fields.next()?;
    if !matches!(part.as_str(), "a" | "o" | "h") {
        return None;
    }
    let vendor = fields.next().filter(|v| !v.is_empty())?;
    let product = fields.next().filter(|p| !p.is_empty())?;
    let any = |f: Option<String>| f.filter(|v| !v.is_empty()).unwrap_or_else(|| "*".into());
    Some(Cpe {
        part,
        vendor,
        product,
        version: any(fields.next()),
        update: any(fields.next()),
    })
}

/// Either form.
pub fn parse(s: &str) -> Option<Cpe> {
    parse_23(s).or_else(|| parse_22(s))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvd_criteria_with_version_and_update() {
        let c = parse("cpe:2.3:a:openbsd:openssh:9.3:p1:*:*:*:*:*:*").unwrap();
        assert_eq!((c.part.as_str(), c.vendor.as_str()), ("a", "openbsd"));
        assert_eq!(c.product, "openssh");
        assert_eq!(c.full_version(), "9.3p1");
        let c = parse("cpe:2.3:a:f5:nginx:*:*:*:*:*:*:*:*").unwrap();
        assert_eq!((c.version.as_str(), c.full_version()), ("*", "*".into()));
        let c = parse("cpe:2.3:a:mariadb:mariadb:10.5.0:-:*:*:*:*:*:*").unwrap();
        assert_eq!(c.full_version(), "10.5.0");
    }

    #[test]
    fn escapes_are_read() {
        let c = parse("cpe:2.3:a:vendor\\:x:prod:1.0\\-rc1:*:*:*:*:*:*:*").unwrap();
        assert_eq!(
            (c.vendor.as_str(), c.version.as_str()),
            ("vendor:x", "1.0-rc1")
        );
    }

    #[test]
    fn nmap_uris() {
        let c = parse("cpe:/a:openbsd:openssh:9.2p1").unwrap();
        assert_eq!(
            (c.product.as_str(), c.version.as_str()),
            ("openssh", "9.2p1")
        );
        let c = parse("cpe:/o:linux:linux_kernel").unwrap();
        assert_eq!((c.part.as_str(), c.version.as_str()), ("o", "*"));
        let c = parse("cpe:/a:igor_sysoev:nginx:1.22.1").unwrap();
        assert_eq!(c.vendor, "igor_sysoev");
        let c = parse("cpe:/a:x:y%3az:1").unwrap();
        assert_eq!(c.product, "y:z");
    }

    #[test]
    fn not_cpes() {
        for s in [
            "",
            "cpe:",
            "cpe:/",
            "cpe:/x:a:b",
            "cpe:/a:",
            "cpe:2.3:q:a:b",
            "nginx",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
