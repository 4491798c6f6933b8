//! Every flag Portolan knows, defined once: its name, whether it takes a value, its help
//! line, and whether it is implemented yet. The parser, the refusal of flags we do not
//! support yet, and `--help` are all generated from this one table.

/// Whether and how a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// No value.
    None,
    /// A value, attached (`-p22`, `--max-retries=2`) or as the next word.
    Required,
    /// A value only when attached (`-v3`, `-PS22,80`, `-d`).
    Optional,
}

#[derive(Debug, Clone, Copy)]
pub struct FlagDef {
    /// Without dashes: `p`, `sT`, `oX`, `exclude`. One letter = a getopt short option.
    pub name: &'static str,
    pub arg: Arg,
    pub metavar: &'static str,
    pub help: &'static str,
    pub section: Section,
    pub supported: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Target,
    Discovery,
    Technique,
    Ports,
    Version,
    Script,
    Os,
    Timing,
    Evasion,
    Output,
    Misc,
}

impl Section {
    fn title(self) -> &'static str {
        match self {
            Section::Target => "TARGET SPECIFICATION",
            Section::Discovery => "HOST DISCOVERY",
            Section::Technique => "SCAN TECHNIQUES",
            Section::Ports => "PORT SPECIFICATION AND SCAN ORDER",
            Section::Version => "SERVICE/VERSION DETECTION",
            Section::Script => "SCRIPT SCAN",
            Section::Os => "OS DETECTION",
            Section::Timing => "TIMING AND PERFORMANCE",
            Section::Evasion => "FIREWALL/IDS EVASION AND SPOOFING",
            Section::Output => "OUTPUT",
            Section::Misc => "MISC",
        }
    }
}

const fn f(
    name: &'static str,
    arg: Arg,
    metavar: &'static str,
    section: Section,
    supported: bool,
    help: &'static str,
) -> FlagDef {
    FlagDef {
        name,
        arg,
        metavar,
        help,
        section,
        supported,
    }
}

use Arg::{None as N, Optional as O, Required as R};
use Section::*;

/// The table. Short options (one letter) come first within their section.
pub const FLAGS: &[FlagDef] = &[
    // Target specification
    f("iL", R, "<file>", Target, true, "Input from list of hosts/networks ('-' for stdin)"),
    f("iR", R, "<num>", Target, false, "Choose random targets"),
    f("exclude", R, "<host1[,host2][,host3],...>", Target, true, "Exclude hosts/networks"),
    f("excludefile", R, "<exclude_file>", Target, true, "Exclude list from file"),
    // Host discovery
    f("P", O, "n|S|A|U[ports]|E|P|M|R", Discovery, true, "-Pn: treat all hosts as online; -PS/PA/PU[portlist]: TCP SYN (a connect ping without privileges), TCP ACK, UDP discovery to given ports; -PE/PP/PM: ICMP echo, timestamp, netmask request discovery; -PR: ARP ping (raw probes need root or CAP_NET_RAW; -PY/-PO: not supported yet)"),
    f("n", N, "", Discovery, true, "Never do DNS resolution"),
    f("R", N, "", Discovery, true, "Always resolve [default: sometimes]"),
    f("dns-servers", R, "<serv1[,serv2],...>", Discovery, false, "Specify custom DNS servers"),
    f("system-dns", N, "", Discovery, true, "Use OS's DNS resolver (always the case)"),
    f("traceroute", N, "", Discovery, false, "Trace hop path to each host"),
    f("disable-arp-ping", N, "", Discovery, true, "No ARP or ND ping"),
    f("discovery-ignore-rst", N, "", Discovery, false, "Ignore RST replies in discovery"),
    // Scan techniques
    f("s", R, "<S|T|U|n|L>", Technique, true, "-sS: TCP SYN scan (root or CAP_NET_RAW); -sT: TCP connect scan; -sU: UDP scan (root or CAP_NET_RAW; with -sS too); -sn: ping scan, no port scan; -sL: list targets (other -s types: not supported yet)"),
    f("sI", R, "<zombie host[:probeport]>", Technique, false, "Idle scan"),
    f("scanflags", R, "<flags>", Technique, false, "Customize TCP scan flags"),
    f("b", R, "<FTP relay host>", Technique, false, "FTP bounce scan"),
    // Ports
    f("p", R, "<port ranges>", Ports, true, "Only scan specified ports (e.g. -p22; -p1-65535; -p U:53,T:21-25,80; -p-; -p http,ssh)"),
    f("exclude-ports", R, "<port ranges>", Ports, true, "Exclude the specified ports from scanning"),
    f("F", N, "", Ports, true, "Fast mode - scan fewer ports than the default scan (top 100)"),
    f("r", N, "", Ports, true, "Scan ports sequentially - don't randomize"),
    f("top-ports", R, "<number>", Ports, true, "Scan <number> most common ports"),
    f("port-ratio", R, "<ratio>", Ports, true, "Scan ports more common than <ratio>"),
    // Version detection
    f("version-intensity", R, "<level>", Version, true, "Set from 0 (light) to 9 (try all probes)"),
    f("version-light", N, "", Version, true, "Limit to most likely probes (intensity 2)"),
    f("version-all", N, "", Version, true, "Try every single probe (intensity 9)"),
    f("version-trace", N, "", Version, true, "Show detailed version scan activity"),
    f("allports", N, "", Version, true, "Probe every port, excluded ones too"),
    f("builtin-data", N, "", Version, true, "Ignore installed Nmap data files; use only Portolan's built-in data (Portolan's own)"),
    f("servicedb", R, "<file>", Version, false, "Use this services file"),
    f("versiondb", R, "<file>", Version, false, "Use this service probes file"),
    // Scripts
    f("script", R, "<scripts>", Script, false, "Run scripts"),
    f("script-args", R, "<n1=v1,...>", Script, false, "Provide arguments to scripts"),
    f("script-args-file", R, "<filename>", Script, false, "Provide script args in a file"),
    f("script-trace", N, "", Script, false, "Show all data sent and received"),
    f("script-updatedb", N, "", Script, false, "Update the script database"),
    f("script-help", R, "<scripts>", Script, false, "Show help about scripts"),
    f("script-timeout", R, "<time>", Script, false, "Script time limit"),
    // OS detection
    f("O", N, "", Os, false, "Enable OS detection"),
    f("osscan-limit", N, "", Os, false, "Limit OS detection to promising targets"),
    f("osscan-guess", N, "", Os, false, "Guess OS more aggressively"),
    f("fuzzy", N, "", Os, false, "Guess OS more aggressively"),
    f("max-os-tries", R, "<num>", Os, false, "Tries of OS detection per target"),
    // Timing
    f("T", R, "<0-5>", Timing, true, "Set timing template (higher is faster)"),
    f("min-hostgroup", R, "<size>", Timing, true, "Parallel host scan group size (at least)"),
    f("max-hostgroup", R, "<size>", Timing, true, "Parallel host scan group size (at most)"),
    f("min-parallelism", R, "<numprobes>", Timing, true, "Probe parallelization (at least)"),
    f("max-parallelism", R, "<numprobes>", Timing, true, "Probe parallelization (at most)"),
    f("M", R, "<numprobes>", Timing, true, "Same as --max-parallelism"),
    f("min-rtt-timeout", R, "<time>", Timing, true, "Minimum probe round trip time"),
    f("max-rtt-timeout", R, "<time>", Timing, true, "Maximum probe round trip time"),
    f("initial-rtt-timeout", R, "<time>", Timing, true, "Initial probe round trip time"),
    f("max-retries", R, "<tries>", Timing, true, "Caps number of port scan probe retransmissions"),
    f("host-timeout", R, "<time>", Timing, true, "Give up on target after this long"),
    f("scan-delay", R, "<time>", Timing, true, "Adjust delay between probes"),
    f("max-scan-delay", R, "<time>", Timing, true, "Maximum delay between probes"),
    f("min-rate", R, "<number>", Timing, true, "Send packets no slower than <number> per second"),
    f("max-rate", R, "<number>", Timing, true, "Send packets no faster than <number> per second"),
    f("defeat-rst-ratelimit", N, "", Timing, false, "Ignore RST rate limits"),
    f("defeat-icmp-ratelimit", N, "", Timing, false, "Ignore ICMP rate limits"),
    f("nsock-engine", R, "<engine>", Timing, false, "Nsock IO engine"),
    // Evasion
    f("f", N, "", Evasion, false, "Fragment packets"),
    f("ff", N, "", Evasion, false, "Fragment packets more"),
    f("mtu", R, "<val>", Evasion, false, "Fragment packets with given MTU"),
    f("D", R, "<decoy1,decoy2[,ME],...>", Evasion, false, "Cloak a scan with decoys"),
    f("S", R, "<IP_Address>", Evasion, false, "Spoof source address"),
    f("e", R, "<iface>", Evasion, false, "Use specified interface"),
    f("g", R, "<portnum>", Evasion, false, "Use given port number"),
    f("source-port", R, "<portnum>", Evasion, false, "Use given port number"),
    f("proxies", R, "<url1,[url2],...>", Evasion, false, "Relay connections through HTTP/SOCKS4 proxies"),
    f("proxy", R, "<url1,[url2],...>", Evasion, false, "Relay connections through proxies"),
    f("data", R, "<hex string>", Evasion, false, "Append a custom payload to sent packets"),
    f("data-string", R, "<string>", Evasion, false, "Append a custom ASCII string to sent packets"),
    f("data-length", R, "<num>", Evasion, false, "Append random data to sent packets"),
    f("ip-options", R, "<options>", Evasion, false, "Send packets with specified ip options"),
    f("ttl", R, "<val>", Evasion, false, "Set IP time-to-live field"),
    f("spoof-mac", R, "<mac address/prefix/vendor name>", Evasion, false, "Spoof your MAC address"),
    f("badsum", N, "", Evasion, false, "Send packets with a bogus TCP/UDP/SCTP checksum"),
    f("adler32", N, "", Evasion, false, "Use Adler32 for SCTP checksums"),
    // Output
    f("oN", R, "<file>", Output, true, "Output scan in normal format"),
    f("oX", R, "<file>", Output, true, "Output scan in XML format"),
    f("oG", R, "<file>", Output, true, "Output scan in grepable format"),
    f("oM", R, "<file>", Output, true, "Same as -oG (its old name)"),
    f("oJ", R, "<file>", Output, true, "Output scan in JSON format (Portolan's own; docs/json-schema.md)"),
    f("oE", R, "<file>", Output, true, "Output SIEM events, NDJSON with ECS field names (docs/events.md)"),
    f("db", R, "<path>", Output, true, "Record the scan in this history store (default: $PORTOLAN_DB)"),
    f("oA", R, "<basename>", Output, true, "Output in the three major formats at once"),
    f("oS", R, "<file>", Output, false, "Output in s|<rIpt kIddi3 format"),
    f("oH", R, "<file>", Output, false, "Output in hex format"),
    f("v", O, "", Output, true, "Increase verbosity level (use -vv or more for greater effect)"),
    f("vv", N, "", Output, true, "Verbosity level 2"),
    f("verbose", N, "", Output, true, "Increase verbosity level"),
    f("d", O, "", Output, true, "Increase debugging level (use -dd or more for greater effect)"),
    f("debug", O, "", Output, true, "Increase debugging level"),
    f("reason", N, "", Output, true, "Display the reason a port is in a particular state"),
    f("open", N, "", Output, true, "Only show open (or possibly open) ports"),
    f("packet-trace", N, "", Output, false, "Show all packets sent and received"),
    f("iflist", N, "", Output, false, "Print host interfaces and routes"),
    f("append-output", N, "", Output, true, "Append to rather than clobber specified output files"),
    f("resume", R, "<filename>", Output, false, "Resume an aborted scan"),
    f("noninteractive", N, "", Output, true, "Disable runtime interactions via keyboard (there are none)"),
    f("stylesheet", R, "<path/URL>", Output, true, "XSL stylesheet to transform XML output to HTML"),
    f("webxml", N, "", Output, true, "Reference stylesheet from Nmap.Org for more portable XML"),
    f("no-stylesheet", N, "", Output, true, "Prevent associating of XSL stylesheet w/XML output"),
    f("stats-every", R, "<time>", Output, true, "Print a status line every <time>"),
    f("log-errors", N, "", Output, true, "Accepted for compatibility (errors always go to stderr)"),
    f("deprecated-xml-osclass", N, "", Output, false, "Old XML osclass layout"),
    // Misc
    f("6", N, "", Misc, true, "Enable IPv6 scanning"),
    f("4", N, "", Misc, true, "IPv4 scanning (the default)"),
    f("A", N, "", Misc, true, "Enable OS detection, version detection, script scanning, and traceroute (-sV only, for now: the rest is not supported yet and is said so)"),
    f("datadir", R, "<dirname>", Misc, true, "Specify custom Nmap data file location"),
    f("send-eth", N, "", Misc, false, "Send using raw ethernet frames"),
    f("send-ip", N, "", Misc, false, "Send using raw IP packets"),
    f("privileged", N, "", Misc, false, "Assume that the user is fully privileged"),
    f("unprivileged", N, "", Misc, true, "Assume the user lacks raw socket privileges"),
    f("randomize-hosts", N, "", Misc, true, "Scan hosts in random order"),
    f("seed", R, "<number>", Misc, true, "Seed the random probe order (same seed, same order; Portolan's own, as masscan's)"),
    f("shard", R, "<K/N>", Misc, true, "Send only shard K of N of the probes (same --seed on every machine; Portolan's own, as masscan's)"),
    f("dryrun", N, "", Misc, true, "Print the probes of a raw-packet scan instead of sending them (implies -n; no report is written)"),
    f("resolve-all", N, "", Misc, true, "Scan every address a hostname resolves to"),
    f("unique", N, "", Misc, false, "Scan each address only once"),
    f("route-dst", R, "<host>", Misc, false, "Show routing for a host"),
    f("release-memory", N, "", Misc, true, "Accepted for compatibility (memory is always released)"),
    f("V", N, "", Misc, true, "Print version number"),
    f("version", N, "", Misc, true, "Print version number"),
    f("h", N, "", Misc, true, "Print this help summary page"),
    f("help", N, "", Misc, true, "Print this help summary page"),
];

/// Looks a long option up as getopt_long does: an exact name, else a unique prefix.
pub fn lookup_long(name: &str) -> Result<&'static FlagDef, LookupError> {
    if let Some(def) = FLAGS.iter().find(|d| d.name == name) {
        return Ok(def);
    }
    let matches: Vec<&FlagDef> = FLAGS
        .iter()
        .filter(|d| d.name.len() > 1 && d.name.starts_with(name))
        .collect();
    match matches.len() {
        0 => Err(LookupError::Unknown),
        1 => Ok(matches[0]),
        _ => Err(LookupError::Ambiguous(
            matches
                .iter()
                .map(|d| d.name)
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum LookupError {
    Unknown,
    Ambiguous(String),
}

/// A one-letter option.
pub fn lookup_short(c: char) -> Option<&'static FlagDef> {
    FLAGS
        .iter()
        .find(|d| d.name.len() == 1 && d.name.starts_with(c))
}

/// How the flag is written: one dash for letters and for Nmap's two-letter output and
/// input options (`-oX`, `-iL`), two for long options.
pub fn dash(def: &FlagDef) -> &'static str {
    if def.name.len() == 1
        || matches!(
            def.name,
            "iL" | "iR"
                | "sI"
                | "oN"
                | "oX"
                | "oG"
                | "oM"
                | "oJ"
                | "oE"
                | "oA"
                | "oS"
                | "oH"
                | "vv"
                | "ff"
        )
    {
        "-"
    } else {
        "--"
    }
}

/// The help page, generated from the table.
pub fn help_text() -> String {
    let mut out = format!(
        "Portolan {} ( a network mapper with Nmap's command line )\n\
         Usage: portolan [Scan Type(s)] [Options] {{target specification}}\n\
         Targets: hostnames, IP addresses, networks (scanme.example, 198.18.0.0/24, 10.0.0-3.1-254, fd00::/120)\n",
        env!("CARGO_PKG_VERSION")
    );
    let sections = [
        Target, Discovery, Technique, Ports, Version, Script, Os, Timing, Evasion, Output, Misc,
    ];
    for s in sections {
        out.push_str(s.title());
        out.push_str(":\n");
        for d in FLAGS.iter().filter(|d| d.section == s) {
            let dashes = dash(d);
            let sep = match (d.arg, d.name.len()) {
                (Arg::Required, 1) => "",
                (Arg::Required, _) => " ",
                _ => "",
            };
            let left = format!("{dashes}{}{sep}{}", d.name, d.metavar);
            let note = if d.supported {
                ""
            } else {
                " [not supported yet]"
            };
            out.push_str(&format!("  {left:<34} {}{note}\n", d.help));
        }
    }
    out.push_str(
        "TIME VALUES: seconds by default, or with a unit: ms, s, m, h (e.g. 500ms, 2s, 5m).\n\
         EXAMPLES:\n  portolan -v -T4 -p- 127.0.0.1\n  portolan -sT -F --open -oA scan-%D 198.18.0.0/24\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in FLAGS.iter().enumerate() {
            for b in &FLAGS[i + 1..] {
                assert_ne!(a.name, b.name, "flag defined twice");
            }
        }
    }

    #[test]
    fn long_lookup_exact_prefix_ambiguous() {
        assert_eq!(lookup_long("exclude").unwrap().name, "exclude");
        assert_eq!(lookup_long("excludef").unwrap().name, "excludefile");
        assert_eq!(lookup_long("max-ret").unwrap().name, "max-retries");
        assert!(matches!(
            lookup_long("max-r"),
            Err(LookupError::Ambiguous(_))
        ));
        assert!(matches!(
            lookup_long("bogus-flag"),
            Err(LookupError::Unknown)
        ));
    }

    #[test]
    fn help_lists_every_flag() {
        let h = help_text();
        for d in FLAGS {
            assert!(h.contains(d.name), "help misses {}", d.name);
        }
        assert!(h.contains("[not supported yet]"));
    }
}
