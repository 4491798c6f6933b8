//! MAC address → vendor, for "MAC Address: 00:0C:29:12:34:56 (VMware)".
//!
//! Two sources, as for the services table: Nmap's `nmap-mac-prefixes`, read at run time
//! from where it is installed ([`parse_mac_prefixes`], [`load_mac_prefixes`]), and
//! Portolan's own small built-in table of common OUIs ([`MacPrefixTable::builtin`]), written
//! for Portolan from the public IEEE assignments (not copied from Nmap's file).
//!
//! File format: one `PREFIX Vendor Name` per line, `#` comment lines and blank lines
//! ignored. A prefix is 6 hex digits (an IEEE MA-L block, the OUI) or longer (7 for MA-M,
//! 9 for MA-S blocks; up to 12); the longest prefix matching an address wins.
//! Locally administered addresses (second-lowest bit of the first octet set, e.g. Docker's
//! `02:42:…`) are not assigned by the IEEE: without an entry they have no vendor.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use portolan_wire::ethernet::MacAddr;

use crate::data::datadir::Source;

/// Fewest and most hex digits a prefix may have.
pub const MIN_PREFIX_DIGITS: usize = 6;
pub const MAX_PREFIX_DIGITS: usize = 12;

/// A malformed line skipped while loading a prefixes file; loading goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacPrefixLineError {
    #[error("line {line}: {prefix:?} is not a MAC prefix (6 to 12 hex digits)")]
    BadPrefix { line: usize, prefix: String },
    #[error("line {line}: prefix {prefix} has no vendor name")]
    MissingVendor { line: usize, prefix: String },
    #[error("line {line}: prefix {prefix} repeated; the first entry is kept")]
    Duplicate { line: usize, prefix: String },
}

impl MacPrefixLineError {
    /// The 1-based line number.
    pub fn line(&self) -> usize {
        match self {
            Self::BadPrefix { line, .. }
            | Self::MissingVendor { line, .. }
            | Self::Duplicate { line, .. } => *line,
        }
    }
}

/// Failure to load a prefixes table at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacPrefixError {
    /// The text held no usable entry (an empty, truncated or unrelated file).
    #[error("no MAC prefix entries found ({skipped} malformed lines skipped)")]
    NoEntries { skipped: usize },
}

/// MAC prefixes and their vendors.
#[derive(Debug, Clone, Default)]
pub struct MacPrefixTable {
    /// Prefix length in hex digits → (prefix value → vendor).
    by_len: BTreeMap<u8, HashMap<u64, String>>,
    warnings: Vec<MacPrefixLineError>,
    builtin: bool,
}

/// Portolan's own table: (OUI, vendor). Common virtual NICs first, then network and
/// computer makers whose hardware is often met on a LAN.
const BUILTIN: &[(u32, &str)] = &[
    (0x005056, "VMware"),
    (0x000C29, "VMware"),
    (0x000569, "VMware"),
    (0x001C14, "VMware"),
    (0x525400, "QEMU virtual NIC"),
    (0x080027, "Oracle VirtualBox virtual NIC"),
    (0x001C42, "Parallels"),
    (0x00155D, "Microsoft"),
    (0x000D3A, "Microsoft"),
    (0x00163E, "Xensource"),
    (0xB827EB, "Raspberry Pi Foundation"),
    (0xDCA632, "Raspberry Pi Trading"),
    (0xE45F01, "Raspberry Pi Trading"),
    (0x28CDC1, "Raspberry Pi Trading"),
    (0xD83ADD, "Raspberry Pi Trading"),
    (0x00000C, "Cisco Systems"),
    (0x00400B, "Cisco Systems"),
    (0x001B54, "Cisco Systems"),
    (0x004096, "Cisco Systems"),
    (0x001B21, "Intel"),
    (0x3CFDFE, "Intel"),
    (0xA0369F, "Intel"),
    (0x001E67, "Intel"),
    (0x6805CA, "Intel"),
    (0x001517, "Intel"),
    (0x00A0C9, "Intel"),
    (0x000E0C, "Intel"),
    (0x000393, "Apple"),
    (0x001B63, "Apple"),
    (0x28CFE9, "Apple"),
    (0x3C0754, "Apple"),
    (0xA45E60, "Apple"),
    (0xF01898, "Apple"),
    (0x001422, "Dell"),
    (0x180373, "Dell"),
    (0xB8AC6F, "Dell"),
    (0xF8BC12, "Dell"),
    (0x001AA0, "Dell"),
    (0x001E4F, "Dell"),
    (0x3417EB, "Dell"),
    (0x001B78, "Hewlett Packard"),
    (0x3CD92B, "Hewlett Packard"),
    (0x0025B3, "Hewlett Packard"),
    (0x9C8E99, "Hewlett Packard"),
    (0x000B86, "Aruba (HPE)"),
    (0x24DEC6, "Aruba (HPE)"),
    (0x000585, "Juniper Networks"),
    (0x00121E, "Juniper Networks"),
    (0x288A1C, "Juniper Networks"),
    (0x001C73, "Arista Networks"),
    (0x28993A, "Arista Networks"),
    (0x002722, "Ubiquiti Networks"),
    (0x24A43C, "Ubiquiti Networks"),
    (0x0418D6, "Ubiquiti Networks"),
    (0x788A20, "Ubiquiti Networks"),
    (0xF09FC2, "Ubiquiti Networks"),
    (0xFCECDA, "Ubiquiti Networks"),
    (0x000C42, "MikroTik (Routerboard.com)"),
    (0x4C5E0C, "MikroTik (Routerboard.com)"),
    (0xD4CA6D, "MikroTik (Routerboard.com)"),
    (0xE48D8C, "MikroTik (Routerboard.com)"),
    (0x002590, "Super Micro Computer"),
    (0x0CC47A, "Super Micro Computer"),
    (0xAC1F6B, "Super Micro Computer"),
    (0x001018, "Broadcom"),
    (0x00E04C, "Realtek Semiconductor"),
    (0x0002C9, "Mellanox Technologies"),
    (0x248A07, "Mellanox Technologies"),
    (0x00146C, "Netgear"),
    (0x00095B, "Netgear"),
    (0x50C7BF, "TP-Link Technologies"),
    (0xF4F26D, "TP-Link Technologies"),
    (0x14CC20, "TP-Link Technologies"),
    (0x001132, "Synology"),
    (0xF0272D, "Amazon Technologies"),
    (0x0C47C9, "Amazon Technologies"),
    (0xF4F5D8, "Google"),
    (0x3C5AB4, "Google"),
    (0x00E0FC, "Huawei Technologies"),
    (0x0000F0, "Samsung Electronics"),
    (0x001A64, "IBM"),
    (0x00090F, "Fortinet"),
    (0x001B17, "Palo Alto Networks"),
    (0x240AC4, "Espressif"),
    (0x30AEA4, "Espressif"),
    (0x84F3EB, "Espressif"),
    (0x00040E, "AVM"),
    (0x000E58, "Sonos"),
    (0x5CAAFD, "Sonos"),
    (0x0009BF, "Nintendo"),
    (0x00E018, "ASUSTek Computer"),
];

fn mac_value(mac: MacAddr) -> u64 {
    mac.0.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Parses a prefix of 6 to 12 hex digits (either case) into (digits, value).
fn parse_prefix(s: &str) -> Option<(u8, u64)> {
    if !(MIN_PREFIX_DIGITS..=MAX_PREFIX_DIGITS).contains(&s.len())
        || !s.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    Some((s.len() as u8, u64::from_str_radix(s, 16).ok()?))
}

impl MacPrefixTable {
    /// Portolan's built-in table.
    pub fn builtin() -> Self {
        let mut table = MacPrefixTable {
            builtin: true,
            ..Default::default()
        };
        let ouis = table.by_len.entry(6).or_default();
        for &(oui, vendor) in BUILTIN {
            ouis.entry(u64::from(oui))
                .or_insert_with(|| vendor.to_string());
        }
        table
    }

    /// The vendor of `mac`: the entry with the longest prefix matching it.
    pub fn lookup(&self, mac: MacAddr) -> Option<&str> {
        let value = mac_value(mac);
        self.by_len.iter().rev().find_map(|(&digits, map)| {
            let shift = 4 * (MAX_PREFIX_DIGITS as u32 - u32::from(digits));
            map.get(&(value >> shift)).map(String::as_str)
        })
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.by_len.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is Portolan's built-in table.
    pub fn is_builtin(&self) -> bool {
        self.builtin
    }

    /// The malformed lines skipped while loading, in file order.
    pub fn warnings(&self) -> &[MacPrefixLineError] {
        &self.warnings
    }
}

/// Parses `nmap-mac-prefixes` text. Malformed and repeated lines are skipped and reported in
/// [`MacPrefixTable::warnings`]; fails only when no entry at all could be read.
pub fn parse_mac_prefixes(text: &str) -> Result<MacPrefixTable, MacPrefixError> {
    let mut table = MacPrefixTable::default();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (prefix, vendor) = match trimmed.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((p, v)) => (p, v.trim()),
            None => (trimmed, ""),
        };
        let Some((digits, value)) = parse_prefix(prefix) else {
            table.warnings.push(MacPrefixLineError::BadPrefix {
                line,
                prefix: prefix.chars().take(40).collect(),
            });
            continue;
        };
        if vendor.is_empty() {
            table.warnings.push(MacPrefixLineError::MissingVendor {
                line,
                prefix: prefix.to_string(),
            });
            continue;
        }
        let map = table.by_len.entry(digits).or_default();
        if map.contains_key(&value) {
            table.warnings.push(MacPrefixLineError::Duplicate {
                line,
                prefix: prefix.to_string(),
            });
            continue;
        }
        map.insert(value, vendor.to_string());
    }
    if table.is_empty() {
        return Err(MacPrefixError::NoEntries {
            skipped: table.warnings.len(),
        });
    }
    Ok(table)
}

/// Loads `nmap-mac-prefixes` from Nmap's data search path, or the built-in table when
/// `builtin_only`, when none is found, or when the file found cannot be read or holds no
/// entries. Malformed lines of a loaded file are in [`MacPrefixTable::warnings`].
pub fn load_mac_prefixes(datadir: Option<&Path>, builtin_only: bool) -> (MacPrefixTable, Source) {
    crate::data::datadir::load_table(
        "nmap-mac-prefixes",
        datadir,
        builtin_only,
        MacPrefixTable::builtin,
        |text| parse_mac_prefixes(text).map_err(|e| e.to_string()),
    )
}

/// [`load_mac_prefixes`] once the file has been located (or not).
pub fn load_mac_prefixes_from(path: Option<PathBuf>) -> (MacPrefixTable, Source) {
    crate::data::datadir::load_table_from(path, MacPrefixTable::builtin, |text| {
        parse_mac_prefixes(text).map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        let v: Vec<u8> = s
            .split(':')
            .map(|x| u8::from_str_radix(x, 16).unwrap())
            .collect();
        MacAddr::from_bytes(&v).unwrap()
    }

    const INSTALLED: &str = "/usr/share/nmap/nmap-mac-prefixes";

    #[test]
    fn builtin_knows_common_virtual_nics() {
        let t = MacPrefixTable::builtin();
        assert!(t.is_builtin());
        assert!(t.len() >= 40, "{}", t.len());
        assert_eq!(t.lookup(mac("00:0c:29:12:34:56")), Some("VMware"));
        assert_eq!(t.lookup(mac("00:50:56:ab:cd:ef")), Some("VMware"));
        assert_eq!(t.lookup(mac("52:54:00:12:34:56")), Some("QEMU virtual NIC"));
        assert_eq!(
            t.lookup(mac("08:00:27:00:00:01")),
            Some("Oracle VirtualBox virtual NIC")
        );
        assert_eq!(
            t.lookup(mac("b8:27:eb:01:02:03")),
            Some("Raspberry Pi Foundation")
        );
        // Locally administered, unassigned (Docker's bridge MACs): no vendor.
        assert_eq!(t.lookup(mac("02:42:ac:11:00:02")), None);
        // The built-in table lists each OUI once.
        assert_eq!(t.len(), BUILTIN.len());
    }

    #[test]
    fn parses_entries_comments_and_case() {
        let t = parse_mac_prefixes(
            "# comment\n\n000C29 VMware\n525400   QEMU virtual NIC  \r\nabcdef Lower Case\n",
        )
        .unwrap();
        assert!(t.warnings().is_empty(), "{:?}", t.warnings());
        assert_eq!(t.len(), 3);
        assert!(!t.is_builtin());
        assert_eq!(t.lookup(mac("00:0c:29:00:00:00")), Some("VMware"));
        assert_eq!(t.lookup(mac("52:54:00:ff:ff:ff")), Some("QEMU virtual NIC"));
        assert_eq!(t.lookup(mac("ab:cd:ef:01:02:03")), Some("Lower Case"));
        assert_eq!(t.lookup(mac("00:0c:2a:00:00:00")), None);
    }

    #[test]
    fn longest_prefix_wins() {
        let t = parse_mac_prefixes(
            "70B3D5 IEEE Registration Authority\n\
             70B3D5A Medium Block Co\n\
             70B3D5A12 Small Block Co\n\
             001122334455 One Address\n\
             001122 Short\n",
        )
        .unwrap();
        assert_eq!(t.lookup(mac("70:b3:d5:a1:23:45")), Some("Small Block Co"));
        assert_eq!(t.lookup(mac("70:b3:d5:a1:33:45")), Some("Medium Block Co"));
        assert_eq!(
            t.lookup(mac("70:b3:d5:b0:00:00")),
            Some("IEEE Registration Authority")
        );
        assert_eq!(t.lookup(mac("00:11:22:33:44:55")), Some("One Address"));
        assert_eq!(t.lookup(mac("00:11:22:33:44:56")), Some("Short"));
    }

    #[test]
    fn malformed_lines_are_reported_with_line_numbers_and_skipped() {
        let t = parse_mac_prefixes(
            "000C29 VMware\n\
             00C29 Too Short\n\
             0011223344556 Too Long\n\
             00G000 Not Hex\n\
             +1234 Sign\n\
             123456\n\
             000C29 Second VMware\n\
             00-50-56 Dashes\n\
             080027 VirtualBox\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        let lines: Vec<usize> = t.warnings().iter().map(|w| w.line()).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8]);
        assert!(matches!(
            &t.warnings()[0],
            MacPrefixLineError::BadPrefix { prefix, .. } if prefix == "00C29"
        ));
        assert!(matches!(
            &t.warnings()[4],
            MacPrefixLineError::MissingVendor { prefix, .. } if prefix == "123456"
        ));
        assert!(matches!(
            &t.warnings()[5],
            MacPrefixLineError::Duplicate { line: 7, .. }
        ));
        assert_eq!(
            t.warnings()[1].to_string(),
            "line 3: \"0011223344556\" is not a MAC prefix (6 to 12 hex digits)"
        );
        // The first of a repeated prefix is kept; the rest of the file still loads.
        assert_eq!(t.lookup(mac("00:0c:29:00:00:01")), Some("VMware"));
        assert_eq!(t.lookup(mac("08:00:27:00:00:01")), Some("VirtualBox"));
    }

    #[test]
    fn no_entries_is_an_error() {
        assert_eq!(
            parse_mac_prefixes("").unwrap_err(),
            MacPrefixError::NoEntries { skipped: 0 }
        );
        assert_eq!(
            parse_mac_prefixes("# only comments\nnonsense here\n").unwrap_err(),
            MacPrefixError::NoEntries { skipped: 1 }
        );
    }

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir()
                .join(format!("portolan-macvendor-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn load_from_datadir_and_fallbacks() {
        let d = TempDir::new("load");
        let (t, src) = load_mac_prefixes(Some(&d.0), true);
        assert!(t.is_builtin());
        assert_eq!(src, Source::Builtin);

        let file = d.0.join("nmap-mac-prefixes");
        std::fs::write(&file, b"AABBCC Test Vendor\n# \xff\xfe\nbad\n").unwrap();
        let (t, src) = load_mac_prefixes(Some(&d.0), false);
        assert_eq!(src, Source::Nmap(file.clone()));
        assert_eq!(t.lookup(mac("aa:bb:cc:00:00:00")), Some("Test Vendor"));
        assert_eq!(t.warnings().len(), 1);
        assert_eq!(t.warnings()[0].line(), 3);

        std::fs::write(&file, "").unwrap();
        let (t, src) = load_mac_prefixes_from(Some(file.clone()));
        assert!(t.is_builtin());
        assert!(matches!(src, Source::BuiltinFallback { path, .. } if path == file));

        let missing = d.0.join("missing");
        let (t, src) = load_mac_prefixes_from(Some(missing.clone()));
        assert!(t.is_builtin());
        assert!(matches!(src, Source::BuiltinFallback { path, .. } if path == missing));

        let (t, src) = load_mac_prefixes_from(None);
        assert!(t.is_builtin());
        assert_eq!(src, Source::Builtin);
    }

    #[test]
    fn installed_nmap_file_parses_cleanly() {
        let Ok(bytes) = std::fs::read(INSTALLED) else {
            eprintln!("skipped: no {INSTALLED}");
            return;
        };
        let t = parse_mac_prefixes(&String::from_utf8_lossy(&bytes)).unwrap();
        // Nmap's file repeats a few prefixes (e.g. 080030 for three organisations); as in
        // Nmap, the first is kept. Nothing else may be wrong with it.
        let errors: Vec<_> = t
            .warnings()
            .iter()
            .filter(|w| !matches!(w, MacPrefixLineError::Duplicate { .. }))
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(t.warnings().len() < 20, "{:?}", t.warnings());
        assert_eq!(t.lookup(mac("08:00:30:00:00:01")), Some("Cern"));
        assert!(t.len() > 10_000, "{}", t.len());
        assert_eq!(t.lookup(mac("00:0c:29:aa:bb:cc")), Some("VMware"));
        assert_eq!(t.lookup(mac("52:54:00:aa:bb:cc")), Some("QEMU virtual NIC"));
        // Our built-in OUIs are real assignments: each is in Nmap's table too (the file
        // installed here predates a few newer ones).
        let missing: Vec<String> = BUILTIN
            .iter()
            .filter(|(oui, _)| {
                let b = oui.to_be_bytes();
                t.lookup(MacAddr([b[1], b[2], b[3], 0, 0, 0])).is_none()
            })
            .map(|(oui, v)| format!("{oui:06X} {v}"))
            .collect();
        assert!(missing.len() <= 2, "{missing:?}");
    }
}
