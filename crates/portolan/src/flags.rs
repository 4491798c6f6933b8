//! Every flag of Nmap's grammar Portolan knows, defined once: its name, whether it takes a
//! value, its help line, and its effect on [`Options`] (which says, too, whether it is
//! implemented yet). The parser (args.rs), the refusal of flags we do not support yet, and
//! `--help` are all generated from this one table; adding a flag is adding a row (and its
//! sample to the test at the bottom, which fails until it is there).

use crate::args::{ArgError, Dns, Format, Generate, Options, ScanKind};
use portolan_engine::plan::timing::{parse_time, Template};
use std::time::Duration;

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

/// What a flag does to [`Options`]. The value kinds shared by many flags are parsed (and
/// their errors worded) once, in [`FlagDef::apply`]; the rest say it themselves with
/// `Custom`.
#[derive(Clone, Copy)]
pub enum Effect {
    /// Nmap's, not implemented yet: refused with `not supported yet: FLAG` (exit 2).
    NotSupported,
    /// Accepted for compatibility; changes nothing.
    Ignored,
    /// A switch: no value.
    Switch(fn(&mut Options)),
    /// The value kept as text, resolved later (files, port lists, targets).
    Text(fn(&mut Options, &str)),
    /// A whole number from the first bound to the second.
    Count(u64, u64, fn(&mut Options, u64)),
    /// A time: seconds, or with a unit (`500ms`, `2s`, `5m`).
    Time(fn(&mut Options, Duration)),
    /// A positive number (packets per second).
    Rate(fn(&mut Options, f64)),
    /// Anything else: the value, when there is one; says why it is refused.
    Custom(fn(&mut Options, Option<&str>) -> Result<(), FlagError>),
}

impl std::fmt::Debug for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Effect::NotSupported => "NotSupported",
            Effect::Ignored => "Ignored",
            Effect::Switch(_) => "Switch",
            Effect::Text(_) => "Text",
            Effect::Count(..) => "Count",
            Effect::Time(_) => "Time",
            Effect::Rate(_) => "Rate",
            Effect::Custom(_) => "Custom",
        })
    }
}

/// Why a `Custom` effect refused its value; the parser names the flag.
#[derive(Debug, PartialEq, Eq)]
pub enum FlagError {
    /// The value is wrong; the message says why.
    Invalid(String),
    /// A form of the flag not implemented yet, as written (`-sC`, `-PY`).
    NotSupported(String),
    /// The flag needs a value and got an empty one.
    Missing,
}

#[derive(Debug, Clone, Copy)]
pub struct FlagDef {
    /// Without dashes: `p`, `sT`, `oX`, `exclude`. One letter = a getopt short option.
    pub name: &'static str,
    /// How it is written in the help and in messages: `-` for letters and for Nmap's
    /// two-letter options (`-oX`, `-iL`), `--` for long options. (getopt_long_only takes
    /// one or two for any long option.)
    pub dashes: &'static str,
    pub arg: Arg,
    pub metavar: &'static str,
    pub help: &'static str,
    pub section: Section,
    pub effect: Effect,
}

impl FlagDef {
    /// False for Nmap's flags we refuse as not supported yet (some supported ones refuse
    /// some of their values too: -sC, -PY).
    pub fn supported(&self) -> bool {
        !matches!(self.effect, Effect::NotSupported)
    }
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

/// The sections in the order `--help` and the man page list them.
pub const SECTIONS: [Section; 11] = [
    Target, Discovery, Technique, Ports, Version, Script, Os, Timing, Evasion, Output, Misc,
];

impl Section {
    pub fn title(self) -> &'static str {
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

/// A row, its flag spelled as in the help: `-p`, `-oX`, `--max-retries`.
const fn f(
    spelled: &'static str,
    arg: Arg,
    metavar: &'static str,
    section: Section,
    help: &'static str,
    effect: Effect,
) -> FlagDef {
    let (dashes, name) = split_dashes(spelled);
    FlagDef {
        name,
        dashes,
        arg,
        metavar,
        help,
        section,
        effect,
    }
}

/// `--max-retries` → (`--`, `max-retries`), at compile time; a row without a dash does not
/// compile.
const fn split_dashes(spelled: &'static str) -> (&'static str, &'static str) {
    let bytes = spelled.as_bytes();
    let n = if bytes.len() > 2 && bytes[1] == b'-' {
        2
    } else {
        1
    };
    assert!(
        bytes.len() > n && bytes[0] == b'-',
        "a flag is spelled with its dashes"
    );
    let (dashes, name) = bytes.split_at(n);
    match (std::str::from_utf8(dashes), std::str::from_utf8(name)) {
        (Ok(d), Ok(n)) => (d, n),
        _ => panic!("a flag is spelled with its dashes"),
    }
}

use Arg::{None as N, Optional as O, Required as R};
use Effect::*;
use Section::*;

/// The table. Short options (one letter) come first within their section. Laid out by
/// hand, one row a flag with its effect on the line below.
#[rustfmt::skip]
pub const FLAGS: &[FlagDef] = &[
    // Target specification
    f("-iL", R, "<file>", Target, "Input from list of hosts/networks ('-' for stdin)",
        Text(|o, v| o.input_file = Some(v.into()))),
    f("-iR", R, "<num>", Target, "Choose random targets", NotSupported),
    f("--exclude", R, "<host1[,host2][,host3],...>", Target, "Exclude hosts/networks",
        Custom(excludes)),
    f("--excludefile", R, "<exclude_file>", Target, "Exclude list from file",
        Text(|o, v| o.exclude_file = Some(v.into()))),
    // Host discovery
    f("-P", O, "n|S|A|U[ports]|E|P|M|R", Discovery, "-Pn: treat all hosts as online; -PS/PA/PU[portlist]: TCP SYN (a connect ping without privileges), TCP ACK, UDP discovery to given ports; -PE/PP/PM: ICMP echo, timestamp, netmask request discovery; -PR: ARP ping (raw probes need root or CAP_NET_RAW; -PY/-PO: not supported yet)",
        Custom(ping)),
    f("-n", N, "", Discovery, "Never do DNS resolution",
        Switch(|o| o.dns = Dns::Never)),
    f("-R", N, "", Discovery, "Always resolve [default: sometimes]",
        Switch(|o| o.dns = Dns::Always)),
    f("--dns-servers", R, "<serv1[,serv2],...>", Discovery, "Specify custom DNS servers", NotSupported),
    f("--system-dns", N, "", Discovery, "Use OS's DNS resolver (always the case)", Ignored),
    f("--traceroute", N, "", Discovery, "Trace hop path to each host (raw sockets: root or CAP_NET_RAW)",
        Switch(|o| o.traceroute = true)),
    f("--disable-arp-ping", N, "", Discovery, "No ARP or ND ping",
        Switch(|o| o.disable_arp_ping = true)),
    f("--discovery-ignore-rst", N, "", Discovery, "Ignore RST replies in discovery", NotSupported),
    // Scan techniques
    f("-s", R, "<S|T|U|V|n|L>", Technique, "-sS: TCP SYN scan (root or CAP_NET_RAW); -sT: TCP connect scan; -sU: UDP scan (root or CAP_NET_RAW; with -sS too); -sV: probe open ports to determine service/version info (with any port scan: -sSV, -sTV); -sn: ping scan, no port scan; -sL: list targets; -sC: run Nmap's default scripts (other -s types: not supported yet)",
        Custom(scan_types)),
    f("-sI", R, "<zombie host[:probeport]>", Technique, "Idle scan", NotSupported),
    f("--scanflags", R, "<flags>", Technique, "Customize TCP scan flags", NotSupported),
    f("-b", R, "<FTP relay host>", Technique, "FTP bounce scan", NotSupported),
    // Ports
    f("-p", R, "<port ranges>", Ports, "Only scan specified ports (e.g. -p22; -p1-65535; -p U:53,T:21-25,80; -p-; -p http,ssh)",
        Text(|o, v| o.ports = Some(v.into()))),
    f("--exclude-ports", R, "<port ranges>", Ports, "Exclude the specified ports from scanning",
        Text(|o, v| o.exclude_ports = Some(v.into()))),
    f("-F", N, "", Ports, "Fast mode - scan fewer ports than the default scan (top 100)",
        Switch(|o| o.fast = true)),
    f("-r", N, "", Ports, "Scan ports sequentially - don't randomize",
        Switch(|o| o.sequential_ports = true)),
    f("--top-ports", R, "<number>", Ports, "Scan <number> most common ports",
        Count(1, 65536, |o, n| o.top_ports = Some(n as u32))),
    f("--port-ratio", R, "<ratio>", Ports, "Scan ports more common than <ratio>",
        Custom(port_ratio)),
    // Version detection
    f("--version-intensity", R, "<level>", Version, "Set from 0 (light) to 9 (try all probes)",
        Count(0, 9, |o, n| o.version_intensity = Some(n as u8))),
    f("--version-light", N, "", Version, "Limit to most likely probes (intensity 2)",
        Switch(|o| o.version_intensity = Some(2))),
    f("--version-all", N, "", Version, "Try every single probe (intensity 9)",
        Switch(|o| o.version_intensity = Some(9))),
    f("--version-trace", N, "", Version, "Show detailed version scan activity",
        Switch(|o| o.version_trace = true)),
    f("--allports", N, "", Version, "Probe every port, excluded ones too",
        Switch(|o| o.all_ports = true)),
    f("--builtin-data", N, "", Version, "Ignore installed Nmap data files; use only Portolan's built-in data (Portolan's own)",
        Switch(|o| o.builtin_data = true)),
    f("--servicedb", R, "<file>", Version, "Use this services file", NotSupported),
    f("--versiondb", R, "<file>", Version, "Use this service probes file", NotSupported),
    // Scripts
    f("--script", R, "<scripts>", Script, "Run Nmap's scripts: comma-separated files, folders, categories or expressions (read from the installed Nmap)",
        Text(|o, v| o.scripts.extend(v.split(',').map(str::to_string)))),
    f("--script-args", R, "<n1=v1,...>", Script, "Provide arguments to scripts",
        Text(|o, v| o.script_args = Some(v.into()))),
    f("--script-args-file", R, "<filename>", Script, "Provide script args in a file",
        Text(|o, v| o.script_args_file = Some(v.into()))),
    f("--script-trace", N, "", Script, "Show all data sent and received", Switch(|o| o.script_trace = true)),
    f("--script-updatedb", N, "", Script, "Update the script database (scripts/script.db of the installed Nmap)", Switch(|o| o.script_updatedb = true)),
    f("--script-help", R, "<scripts>", Script, "Show help about scripts", Text(|o, v| o.script_help = Some(v.into()))),
    f("--script-timeout", R, "<time>", Script, "Script time limit", Time(|o, d| o.script_timeout = Some(d))),
    // OS detection
    f("-O", O, "", Os, "Enable OS detection (raw sockets: root or CAP_NET_RAW; matched against Nmap's nmap-os-db, else a coarse guess)",
        Custom(os_scan)),
    f("--osscan-limit", N, "", Os, "Limit OS detection to promising targets",
        Switch(|o| o.osscan_limit = true)),
    f("--osscan-guess", N, "", Os, "Guess OS more aggressively",
        Switch(|o| o.osscan_guess = true)),
    f("--fuzzy", N, "", Os, "Guess OS more aggressively",
        Switch(|o| o.osscan_guess = true)),
    f("--max-os-tries", R, "<num>", Os, "Tries of OS detection per target (1 to 50)",
        Count(1, 50, |o, n| o.max_os_tries = Some(n as u32))),
    // Timing
    f("-T", R, "<0-5>", Timing, "Set timing template (higher is faster)",
        Custom(template)),
    f("--min-hostgroup", R, "<size>", Timing, "Parallel host scan group size (at least)",
        Count(1, 1 << 20, |o, n| o.min_hostgroup = Some(n as u32))),
    f("--max-hostgroup", R, "<size>", Timing, "Parallel host scan group size (at most)",
        Count(1, 1 << 20, |o, n| o.max_hostgroup = Some(n as u32))),
    f("--min-parallelism", R, "<numprobes>", Timing, "Probe parallelization (at least)",
        Count(1, 1 << 20, |o, n| o.min_parallelism = Some(n as u32))),
    f("--max-parallelism", R, "<numprobes>", Timing, "Probe parallelization (at most)",
        Count(1, 1 << 20, |o, n| o.max_parallelism = Some(n as u32))),
    f("-M", R, "<numprobes>", Timing, "Same as --max-parallelism",
        Count(1, 1 << 20, |o, n| o.max_parallelism = Some(n as u32))),
    f("--min-rtt-timeout", R, "<time>", Timing, "Minimum probe round trip time",
        Time(|o, t| o.min_rtt_timeout = Some(t))),
    f("--max-rtt-timeout", R, "<time>", Timing, "Maximum probe round trip time",
        Time(|o, t| o.max_rtt_timeout = Some(t))),
    f("--initial-rtt-timeout", R, "<time>", Timing, "Initial probe round trip time",
        Time(|o, t| o.initial_rtt_timeout = Some(t))),
    f("--max-retries", R, "<tries>", Timing, "Caps number of port scan probe retransmissions",
        Count(0, 50, |o, n| o.max_retries = Some(n as u32))),
    f("--host-timeout", R, "<time>", Timing, "Give up on target after this long",
        Time(|o, t| o.host_timeout = Some(t))),
    f("--scan-delay", R, "<time>", Timing, "Adjust delay between probes",
        Time(|o, t| o.scan_delay = Some(t))),
    f("--max-scan-delay", R, "<time>", Timing, "Maximum delay between probes",
        Time(|o, t| o.max_scan_delay = Some(t))),
    f("--min-rate", R, "<number>", Timing, "Send packets no slower than <number> per second",
        Rate(|o, r| o.min_rate = Some(r))),
    f("--max-rate", R, "<number>", Timing, "Send packets no faster than <number> per second",
        Rate(|o, r| o.max_rate = Some(r))),
    f("--defeat-rst-ratelimit", N, "", Timing, "Ignore RST rate limits", NotSupported),
    f("--defeat-icmp-ratelimit", N, "", Timing, "Ignore ICMP rate limits", NotSupported),
    f("--nsock-engine", R, "<engine>", Timing, "Nsock IO engine", NotSupported),
    // Evasion
    f("-f", N, "", Evasion, "Fragment packets", NotSupported),
    f("-ff", N, "", Evasion, "Fragment packets more", NotSupported),
    f("--mtu", R, "<val>", Evasion, "Fragment packets with given MTU", NotSupported),
    f("-D", R, "<decoy1,decoy2[,ME],...>", Evasion, "Cloak a scan with decoys", NotSupported),
    f("-S", R, "<IP_Address>", Evasion, "Spoof source address", NotSupported),
    f("-e", R, "<iface>", Evasion, "Use specified interface", NotSupported),
    f("-g", R, "<portnum>", Evasion, "Use given port number", NotSupported),
    f("--source-port", R, "<portnum>", Evasion, "Use given port number", NotSupported),
    f("--proxies", R, "<url1,[url2],...>", Evasion, "Relay connections through HTTP/SOCKS4 proxies", NotSupported),
    f("--proxy", R, "<url1,[url2],...>", Evasion, "Relay connections through proxies", NotSupported),
    f("--data", R, "<hex string>", Evasion, "Append a custom payload to sent packets", NotSupported),
    f("--data-string", R, "<string>", Evasion, "Append a custom ASCII string to sent packets", NotSupported),
    f("--data-length", R, "<num>", Evasion, "Append random data to sent packets", NotSupported),
    f("--ip-options", R, "<options>", Evasion, "Send packets with specified ip options", NotSupported),
    f("--ttl", R, "<val>", Evasion, "Set IP time-to-live field", NotSupported),
    f("--spoof-mac", R, "<mac address/prefix/vendor name>", Evasion, "Spoof your MAC address", NotSupported),
    f("--badsum", N, "", Evasion, "Send packets with a bogus TCP/UDP/SCTP checksum", NotSupported),
    f("--adler32", N, "", Evasion, "Use Adler32 for SCTP checksums", NotSupported),
    // Output
    f("-oN", R, "<file>", Output, "Output scan in normal format",
        Text(|o, v| o.outputs.push((Format::Normal, v.into())))),
    f("-oX", R, "<file>", Output, "Output scan in XML format",
        Text(|o, v| o.outputs.push((Format::Xml, v.into())))),
    f("-oG", R, "<file>", Output, "Output scan in grepable format",
        Text(|o, v| o.outputs.push((Format::Grepable, v.into())))),
    f("-oM", R, "<file>", Output, "Same as -oG (its old name)",
        Text(|o, v| o.outputs.push((Format::Grepable, v.into())))),
    f("-oJ", R, "<file>", Output, "Output scan in JSON format (Portolan's own; docs/json-schema.md)",
        Text(|o, v| o.outputs.push((Format::Json, v.into())))),
    f("-oE", R, "<file>", Output, "Output SIEM events, NDJSON with ECS field names (docs/events.md)",
        Text(|o, v| o.outputs.push((Format::Events, v.into())))),
    f("--db", R, "<path>", Output, "Record the scan in this history store (default: $PORTOLAN_DB)",
        Text(|o, v| o.db = Some(v.into()))),
    f("--vulns", N, "", Output, "Add known vulnerabilities of each -sV service, offline, as a script result (docs/vulns.md)",
        Switch(|o| o.vulns = true)),
    f("--vulndb", R, "<path>", Output, "The vulnerability database for --vulns (default: $PORTOLAN_VULNDB or ~/.local/share/portolan/vulndb.sqlite)",
        Text(|o, v| o.vulndb = Some(v.into()))),
    f("-oA", R, "<basename>", Output, "Output in the three major formats at once",
        Custom(all_formats)),
    f("-oS", R, "<file>", Output, "Output in s|<rIpt kIddi3 format", NotSupported),
    f("-oH", R, "<file>", Output, "Output in hex format", NotSupported),
    f("-v", O, "", Output, "Increase verbosity level (use -vv or more for greater effect)",
        Custom(verbosity)),
    f("-vv", N, "", Output, "Verbosity level 2",
        Switch(|o| o.verbose = o.verbose.saturating_add(2))),
    f("--verbose", N, "", Output, "Increase verbosity level",
        Switch(|o| o.verbose = o.verbose.saturating_add(1))),
    f("-d", O, "", Output, "Increase debugging level (use -dd or more for greater effect)",
        Custom(debugging)),
    f("--debug", O, "", Output, "Increase debugging level",
        Custom(debugging)),
    f("--reason", N, "", Output, "Display the reason a port is in a particular state",
        Switch(|o| o.reason = true)),
    f("--open", N, "", Output, "Only show open (or possibly open) ports",
        Switch(|o| o.open_only = true)),
    f("--packet-trace", N, "", Output, "Show all raw packets sent and received (as Nmap's lines)",
        Switch(|o| o.packet_trace = true)),
    f("--iflist", N, "", Output, "Print host interfaces and routes (as Nmap lists them)",
        Switch(|o| o.iflist = true)),
    f("--append-output", N, "", Output, "Append to rather than clobber specified output files",
        Switch(|o| o.append_output = true)),
    f("--resume", R, "<filename>", Output, "Resume an aborted scan from its XML, JSON, normal or grepable output",
        Text(|o, v| o.resume = Some(v.into()))),
    f("--noninteractive", N, "", Output, "Disable runtime interactions via keyboard (there are none)", Ignored),
    f("--stylesheet", R, "<path/URL>", Output, "XSL stylesheet to transform XML output to HTML",
        Text(|o, v| o.stylesheet = Some(v.into()))),
    f("--webxml", N, "", Output, "Reference stylesheet from Nmap.Org for more portable XML",
        Switch(|o| o.stylesheet = Some(NMAP_ORG_XSL.into()))),
    f("--no-stylesheet", N, "", Output, "Prevent associating of XSL stylesheet w/XML output",
        Switch(|o| o.no_stylesheet = true)),
    f("--stats-every", R, "<time>", Output, "Print a status line every <time>",
        Time(|o, t| o.stats_every = Some(t))),
    f("--log-errors", N, "", Output, "Accepted for compatibility (errors always go to stderr)", Ignored),
    f("--deprecated-xml-osclass", N, "", Output, "Old XML osclass layout", NotSupported),
    // Misc
    f("-6", N, "", Misc, "Enable IPv6 scanning",
        Switch(|o| o.ipv6 = true)),
    f("-4", N, "", Misc, "IPv4 scanning (the default)", Ignored),
    f("-A", N, "", Misc, "Enable OS detection, version detection, script scanning, and traceroute (-O and --traceroute only with raw sockets, as Nmap)",
        Switch(|o| { o.aggressive = true; o.version = true; o.script_default = true })),
    f("--datadir", R, "<dirname>", Misc, "Specify custom Nmap data file location",
        Text(|o, v| o.datadir = Some(v.into()))),
    f("--scope", R, "<file>", Misc, "Refuse to scan outside this scope file (default: $PORTOLAN_SCOPE)",
        Text(|o, v| o.scope = Some(v.into()))),
    f("--audit-log", R, "<file>", Misc, "Append this scan's audit line here ('none': no log)",
        Text(|o, v| o.audit_log = Some(v.into()))),
    f("--send-eth", N, "", Misc, "Send using raw ethernet frames", NotSupported),
    f("--send-ip", N, "", Misc, "Send using raw IP packets", NotSupported),
    f("--privileged", N, "", Misc, "Assume that the user is fully privileged", NotSupported),
    f("--unprivileged", N, "", Misc, "Assume the user lacks raw socket privileges",
        Switch(|o| o.unprivileged = true)),
    f("--keep-privileges", N, "", Misc, "Stay root for the whole scan (by default, once the outputs are open, root becomes the sudo caller or nobody with CAP_NET_RAW and CAP_NET_ADMIN only; Portolan's own)",
        Switch(|o| o.keep_privileges = true)),
    f("--randomize-hosts", N, "", Misc, "Scan hosts in random order",
        Switch(|o| o.randomize_hosts = true)),
    f("--seed", R, "<number>", Misc, "Seed the random probe order (same seed, same order; Portolan's own, as masscan's)",
        Count(0, u64::MAX, |o, n| o.seed = Some(n))),
    f("--shard", R, "<K/N>", Misc, "Send only shard K of N of the probes (same --seed on every machine; Portolan's own, as masscan's)",
        Text(|o, v| o.shard = Some(v.into()))),
    f("--scan-id", R, "<name>", Misc, "Name this scan in the history store; the parts of a --shard scan with one name form one scan (default: derived from seed, targets, ports, scan type and N; Portolan's own)",
        Text(|o, v| o.scan_id = Some(v.into()))),
    f("--dryrun", N, "", Misc, "Print the probes of a raw-packet scan instead of sending them (implies -n; no report is written)",
        Switch(|o| o.dry_run = true)),
    f("--resolve-all", N, "", Misc, "Scan every address a hostname resolves to",
        Switch(|o| o.resolve_all = true)),
    f("--unique", N, "", Misc, "Scan each address only once", NotSupported),
    f("--route-dst", R, "<host>", Misc, "Show routing for a host", NotSupported),
    f("--release-memory", N, "", Misc, "Accepted for compatibility (memory is always released)", Ignored),
    f("-V", N, "", Misc, "Print version number",
        Switch(|o| o.show_version = true)),
    f("--version", N, "", Misc, "Print version number",
        Switch(|o| o.show_version = true)),
    f("--generate", R, "<man|bash|zsh|fish>", Misc, "Print the man page (roff) or a shell's completion script, generated from this table",
        Custom(generate)),
    f("-h", N, "", Misc, "Print this help summary page",
        Switch(|o| o.show_help = true)),
    f("--help", N, "", Misc, "Print this help summary page",
        Switch(|o| o.show_help = true)),
];

impl FlagDef {
    /// How the flag is named in messages: `-p`, `-oX`, `--max-retries` (whatever prefix
    /// of it was typed).
    pub fn shown(&self) -> String {
        format!("{}{}", self.dashes, self.name)
    }

    /// Applies the flag, given its value (already taken from the command line as its
    /// [`Arg`] says), to `o`.
    pub fn apply(&self, o: &mut Options, value: Option<&str>) -> Result<(), ArgError> {
        let val = value.unwrap_or("");
        let invalid = |msg: String| ArgError::Invalid {
            flag: self.shown(),
            msg,
        };
        match self.effect {
            NotSupported => return Err(ArgError::NotSupported(self.shown())),
            Ignored => {}
            Switch(set) => set(o),
            Text(set) => set(o, val),
            Count(min, max, set) => set(o, whole_number(val, min, max).map_err(invalid)?),
            Time(set) => set(o, parse_time(val).map_err(|e| invalid(e.to_string()))?),
            Rate(set) => match val.parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => set(o, r),
                _ => return Err(invalid(format!("{val:?} is not a positive number"))),
            },
            Custom(set) => set(o, value).map_err(|e| match e {
                FlagError::Invalid(msg) => invalid(msg),
                FlagError::NotSupported(name) => ArgError::NotSupported(name),
                FlagError::Missing => ArgError::MissingValue(self.shown()),
            })?,
        }
        Ok(())
    }
}

/// `v` as a whole number from `min` to `max`.
fn whole_number(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{v:?} is not a whole number from {min} to {max}")),
    }
}

/// `--webxml`'s stylesheet.
const NMAP_ORG_XSL: &str = "https://svn.nmap.org/nmap/docs/nmap.xsl";

// The effects too particular for a value kind: flags with sub-letters decide support on
// their value (-sT vs -sC, -Pn vs -PY), and levels count letters.

/// `--generate KIND`: what to print instead of scanning.
fn generate(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    o.generate = Some(match v.unwrap_or("") {
        "man" => Generate::Man,
        "bash" => Generate::Bash,
        "zsh" => Generate::Zsh,
        "fish" => Generate::Fish,
        other => {
            return Err(FlagError::Invalid(format!(
                "{other:?} is not man, bash, zsh or fish"
            )))
        }
    });
    Ok(())
}

/// `--exclude`: a list that names nothing (`--exclude ''`, a variable left empty) is refused
/// rather than taken as excluding nothing.
fn excludes(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    let list: Vec<String> = v
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        return Err(FlagError::Invalid(format!(
            "{:?} names no host or network to exclude",
            v.unwrap_or("")
        )));
    }
    o.excludes.extend(list);
    Ok(())
}

/// `-O`, or `-O2` (the second generation, the only one): Nmap refuses the old `-O1`.
fn os_scan(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    match v {
        None | Some("2") => {
            o.os = true;
            Ok(())
        }
        Some("1") => Err(FlagError::Invalid(
            "first-generation OS detection (-O1) is no longer supported. Use -O instead".into(),
        )),
        Some(other) => Err(FlagError::Invalid(format!(
            "unknown argument to -O: {other:?}"
        ))),
    }
}

/// `-s` with its letters, bundled as Nmap takes them (`-sSU`, `-sTV`).
fn scan_types(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    let val = v.unwrap_or("");
    if val.is_empty() {
        return Err(FlagError::Missing);
    }
    for c in val.chars() {
        match c {
            'T' => set_scan(o, ScanKind::Connect)?,
            'S' => set_scan(o, ScanKind::Syn)?,
            'n' | 'P' => set_scan(o, ScanKind::PingOnly)?,
            'L' => set_scan(o, ScanKind::List)?,
            'U' => o.udp = true,
            'V' => o.version = true,
            'C' => o.script_default = true,
            'A' | 'W' | 'M' | 'N' | 'F' | 'X' | 'Y' | 'Z' | 'O' | 'R' | 'I' => {
                return Err(FlagError::NotSupported(format!("-s{c}")))
            }
            _ => return Err(FlagError::Invalid(format!("unknown scan type -s{c}"))),
        }
    }
    Ok(())
}

fn set_scan(o: &mut Options, kind: ScanKind) -> Result<(), FlagError> {
    match o.scan {
        Some(prev) if prev != kind => Err(FlagError::Invalid(
            "only one of -sS, -sT, -sn and -sL can be used at a time".into(),
        )),
        _ => {
            o.scan = Some(kind);
            Ok(())
        }
    }
}

/// `-P` with its letter and, for port pings, its ports (`-PS22,80`).
fn ping(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    let val = v.unwrap_or("");
    let mut chars = val.chars();
    let ports_or = |chars: std::str::Chars, default: &str| {
        let ports: String = chars.collect();
        Some(if ports.is_empty() {
            default.to_string()
        } else {
            ports
        })
    };
    match chars.next() {
        Some('n' | '0' | 'N') if val.len() == 1 => o.no_ping = true,
        Some('S') => o.ping_ports = ports_or(chars, "80"),
        Some('E') if val == "E" => o.ping_echo = true,
        Some('P') if val == "P" => o.ping_timestamp = true,
        Some('M') if val == "M" => o.ping_netmask = true,
        Some('R') if val == "R" => o.ping_arp = true,
        Some('A') => o.ping_ack_ports = ports_or(chars, "80"),
        Some('U') => o.ping_udp_ports = ports_or(chars, "40125"),
        Some(c @ ('Y' | 'O' | 'B' | 'T' | 'I')) => {
            return Err(FlagError::NotSupported(format!("-P{c}")))
        }
        _ => return Err(FlagError::Invalid(format!("unknown ping type -P{val}"))),
    }
    Ok(())
}

fn port_ratio(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    let val = v.unwrap_or("");
    match val.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => {
            o.port_ratio = Some(r);
            Ok(())
        }
        _ => Err(FlagError::Invalid(format!(
            "{val:?} is not a decimal from 0 to 1"
        ))),
    }
}

fn template(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    o.template = Template::parse(v.unwrap_or("")).map_err(|e| FlagError::Invalid(e.to_string()))?;
    Ok(())
}

/// `-oA BASE`: the three major formats, named BASE.nmap, BASE.xml and BASE.gnmap.
fn all_formats(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    let base = v.unwrap_or("");
    if base == "-" {
        return Err(FlagError::Invalid(
            "cannot write all three formats to stdout".into(),
        ));
    }
    o.outputs.push((Format::Normal, format!("{base}.nmap")));
    o.outputs.push((Format::Xml, format!("{base}.xml")));
    o.outputs.push((Format::Grepable, format!("{base}.gnmap")));
    Ok(())
}

fn verbosity(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    o.verbose = level('v', o.verbose, v)?;
    Ok(())
}

fn debugging(o: &mut Options, v: Option<&str>) -> Result<(), FlagError> {
    o.debug = level('d', o.debug, v)?;
    Ok(())
}

/// Counts a level given as `-vv`/`-v3`: repeated letters add, a number sets.
fn level(letter: char, current: u8, v: Option<&str>) -> Result<u8, FlagError> {
    match v {
        None => Ok(current.saturating_add(1)),
        Some(s) if !s.is_empty() && s.chars().all(|c| c == letter) => {
            let letters = u8::try_from(s.len()).unwrap_or(u8::MAX);
            Ok(current.saturating_add(letters).saturating_add(1))
        }
        Some(s) => Ok(whole_number(s, 0, 10).map_err(FlagError::Invalid)? as u8),
    }
}

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

/// The help page, generated from the table.
pub fn help_text() -> String {
    let mut out = format!(
        "Portolan {} ( a network mapper with Nmap's command line )\n\
         Usage: portolan [Scan Type(s)] [Options] {{target specification}}\n\
         \x20      portolan COMMAND [options]   (portolan COMMAND --help)\n\
         Targets: hostnames, IP addresses, networks (scanme.example, 198.18.0.0/24, 10.0.0-3.1-254, fd00::/120)\n\
         COMMANDS (Portolan's own):\n{}",
        env!("CARGO_PKG_VERSION"),
        crate::commands::summary()
    );
    for s in SECTIONS {
        out.push_str(s.title());
        out.push_str(":\n");
        for d in FLAGS.iter().filter(|d| d.section == s) {
            let dashes = d.dashes;
            let sep = match (d.arg, d.name.len()) {
                (Arg::Required, 1) => "",
                (Arg::Required, _) => " ",
                _ => "",
            };
            let left = format!("{dashes}{}{sep}{}", d.name, d.metavar);
            let note = if d.supported() {
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

    #[test]
    fn help_lists_the_subcommands() {
        let h = help_text();
        for cmd in [
            "diff", "check", "import", "history", "changes", "hosts", "services",
        ] {
            assert!(
                h.lines().any(|l| l.starts_with(&format!("  {cmd} "))),
                "--help misses {cmd}:\n{h}"
            );
        }
    }

    /// What a row's sample must do.
    enum Expect {
        /// Parsed, and these are the only changes from the default [`Options`].
        Sets(fn(&mut Options)),
        /// Refused with `not supported yet: FLAG`.
        Refused,
    }
    use Expect::{Refused, Sets};

    /// One sample command line a row, by the row's name, and its effect. Every row must
    /// have one ([`every_row_has_a_sample_with_its_effect`] fails otherwise).
    #[rustfmt::skip]
    const SAMPLES: &[(&str, &str, Expect)] = &[
        ("iL", "-iL hosts.txt", Sets(|o| o.input_file = Some("hosts.txt".into()))),
        ("iR", "-iR 10", Refused),
        ("exclude", "--exclude 198.18.0.1,,198.18.0.2", Sets(|o| o.excludes = vec!["198.18.0.1".into(), "198.18.0.2".into()])),
        ("excludefile", "--excludefile ex.txt", Sets(|o| o.exclude_file = Some("ex.txt".into()))),
        ("P", "-PS22,80", Sets(|o| o.ping_ports = Some("22,80".into()))),
        ("n", "-n", Sets(|o| o.dns = Dns::Never)),
        ("R", "-R", Sets(|o| o.dns = Dns::Always)),
        ("dns-servers", "--dns-servers 192.0.2.53", Refused),
        ("system-dns", "--system-dns", Sets(|_| {})),
        ("traceroute", "--traceroute", Sets(|o| o.traceroute = true)),
        ("disable-arp-ping", "--disable-arp-ping", Sets(|o| o.disable_arp_ping = true)),
        ("discovery-ignore-rst", "--discovery-ignore-rst", Refused),
        ("s", "-sSUV", Sets(|o| { o.scan = Some(ScanKind::Syn); o.udp = true; o.version = true })),
        ("sI", "-sI zombie.example", Refused),
        ("scanflags", "--scanflags URG", Refused),
        ("b", "-b ftp.example", Refused),
        ("p", "-p-", Sets(|o| o.ports = Some("-".into()))),
        ("exclude-ports", "--exclude-ports 25", Sets(|o| o.exclude_ports = Some("25".into()))),
        ("F", "-F", Sets(|o| o.fast = true)),
        ("r", "-r", Sets(|o| o.sequential_ports = true)),
        ("top-ports", "--top-ports=200", Sets(|o| o.top_ports = Some(200))),
        ("port-ratio", "--port-ratio 0.5", Sets(|o| o.port_ratio = Some(0.5))),
        ("version-intensity", "--version-intensity 7", Sets(|o| o.version_intensity = Some(7))),
        ("version-light", "--version-light", Sets(|o| o.version_intensity = Some(2))),
        ("version-all", "--version-all", Sets(|o| o.version_intensity = Some(9))),
        ("version-trace", "--version-trace", Sets(|o| o.version_trace = true)),
        ("allports", "--allports", Sets(|o| o.all_ports = true)),
        ("builtin-data", "--builtin-data", Sets(|o| o.builtin_data = true)),
        ("servicedb", "--servicedb svc", Refused),
        ("versiondb", "--versiondb probes", Refused),
        ("script", "--script vuln,banner", Sets(|o| o.scripts = vec!["vuln".into(), "banner".into()])),
        ("script-args", "--script-args user=x", Sets(|o| o.script_args = Some("user=x".into()))),
        ("script-args-file", "--script-args-file args.txt", Sets(|o| o.script_args_file = Some("args.txt".into()))),
        ("script-trace", "--script-trace", Sets(|o| o.script_trace = true)),
        ("script-updatedb", "--script-updatedb", Sets(|o| o.script_updatedb = true)),
        ("script-help", "--script-help http-title", Sets(|o| o.script_help = Some("http-title".into()))),
        ("script-timeout", "--script-timeout 5s", Sets(|o| o.script_timeout = Some(Duration::from_secs(5)))),
        ("O", "-O", Sets(|o| o.os = true)),
        ("osscan-limit", "--osscan-limit", Sets(|o| o.osscan_limit = true)),
        ("osscan-guess", "--osscan-guess", Sets(|o| o.osscan_guess = true)),
        ("fuzzy", "--fuzzy", Sets(|o| o.osscan_guess = true)),
        ("max-os-tries", "--max-os-tries 2", Sets(|o| o.max_os_tries = Some(2))),
        ("T", "-T4", Sets(|o| o.template = Template::Aggressive)),
        ("min-hostgroup", "--min-hostgroup 8", Sets(|o| o.min_hostgroup = Some(8))),
        ("max-hostgroup", "--max-hostgroup 64", Sets(|o| o.max_hostgroup = Some(64))),
        ("min-parallelism", "--min-parallelism 10", Sets(|o| o.min_parallelism = Some(10))),
        ("max-parallelism", "--max-parallelism 20", Sets(|o| o.max_parallelism = Some(20))),
        ("M", "-M30", Sets(|o| o.max_parallelism = Some(30))),
        ("min-rtt-timeout", "--min-rtt-timeout 100ms", Sets(|o| o.min_rtt_timeout = Some(Duration::from_millis(100)))),
        ("max-rtt-timeout", "--max-rtt-timeout 2s", Sets(|o| o.max_rtt_timeout = Some(Duration::from_secs(2)))),
        ("initial-rtt-timeout", "--initial-rtt-timeout 1", Sets(|o| o.initial_rtt_timeout = Some(Duration::from_secs(1)))),
        ("max-retries", "--max-retries 0", Sets(|o| o.max_retries = Some(0))),
        ("host-timeout", "--host-timeout 5m", Sets(|o| o.host_timeout = Some(Duration::from_secs(300)))),
        ("scan-delay", "--scan-delay 500ms", Sets(|o| o.scan_delay = Some(Duration::from_millis(500)))),
        ("max-scan-delay", "--max-scan-delay 1h", Sets(|o| o.max_scan_delay = Some(Duration::from_secs(3600)))),
        ("min-rate", "--min-rate 100", Sets(|o| o.min_rate = Some(100.0))),
        ("max-rate", "--max-rate=1000.5", Sets(|o| o.max_rate = Some(1000.5))),
        ("defeat-rst-ratelimit", "--defeat-rst-ratelimit", Refused),
        ("defeat-icmp-ratelimit", "--defeat-icmp-ratelimit", Refused),
        ("nsock-engine", "--nsock-engine epoll", Refused),
        ("f", "-f", Refused),
        ("ff", "-ff", Refused),
        ("mtu", "--mtu 16", Refused),
        ("D", "-D 198.18.0.9", Refused),
        ("S", "-S 198.18.0.8", Refused),
        ("e", "-e eth0", Refused),
        ("g", "-g 53", Refused),
        ("source-port", "--source-port 53", Refused),
        ("proxies", "--proxies http://proxy:8080", Refused),
        ("proxy", "--proxy http://proxy:8080", Refused),
        ("data", "--data 0xdeadbeef", Refused),
        ("data-string", "--data-string hello", Refused),
        ("data-length", "--data-length 20", Refused),
        ("ip-options", "--ip-options R", Refused),
        ("ttl", "--ttl 5", Refused),
        ("spoof-mac", "--spoof-mac 0", Refused),
        ("badsum", "--badsum", Refused),
        ("adler32", "--adler32", Refused),
        ("oN", "-oN scan.nmap", Sets(|o| o.outputs = vec![(Format::Normal, "scan.nmap".into())])),
        ("oX", "-oX=scan.xml", Sets(|o| o.outputs = vec![(Format::Xml, "scan.xml".into())])),
        ("oG", "-oG -", Sets(|o| o.outputs = vec![(Format::Grepable, "-".into())])),
        ("oM", "-oM scan.gnmap", Sets(|o| o.outputs = vec![(Format::Grepable, "scan.gnmap".into())])),
        ("oJ", "-oJ scan.json", Sets(|o| o.outputs = vec![(Format::Json, "scan.json".into())])),
        ("oE", "-oE events.ndjson", Sets(|o| o.outputs = vec![(Format::Events, "events.ndjson".into())])),
        ("db", "--db history.db", Sets(|o| o.db = Some("history.db".into()))),
        ("vulns", "--vulns", Sets(|o| o.vulns = true)),
        ("vulndb", "--vulndb v.sqlite", Sets(|o| o.vulndb = Some("v.sqlite".into()))),
        ("oA", "-oA base", Sets(|o| o.outputs = vec![(Format::Normal, "base.nmap".into()), (Format::Xml, "base.xml".into()), (Format::Grepable, "base.gnmap".into())])),
        ("oS", "-oS kiddie.txt", Refused),
        ("oH", "-oH hex.txt", Refused),
        ("v", "-v3", Sets(|o| o.verbose = 3)),
        ("vv", "-vv", Sets(|o| o.verbose = 2)),
        ("verbose", "--verbose", Sets(|o| o.verbose = 1)),
        ("d", "-dd", Sets(|o| o.debug = 2)),
        ("debug", "--debug=4", Sets(|o| o.debug = 4)),
        ("reason", "--reason", Sets(|o| o.reason = true)),
        ("open", "-open", Sets(|o| o.open_only = true)),
        ("packet-trace", "--packet-trace", Sets(|o| o.packet_trace = true)),
        ("iflist", "--iflist", Sets(|o| o.iflist = true)),
        ("append-output", "--append-output", Sets(|o| o.append_output = true)),
        ("resume", "--resume scan.xml", Sets(|o| o.resume = Some("scan.xml".into()))),
        ("noninteractive", "--noninteractive", Sets(|_| {})),
        ("stylesheet", "--stylesheet my.xsl", Sets(|o| o.stylesheet = Some("my.xsl".into()))),
        ("webxml", "--webxml", Sets(|o| o.stylesheet = Some(NMAP_ORG_XSL.into()))),
        ("no-stylesheet", "--no-stylesheet", Sets(|o| o.no_stylesheet = true)),
        ("stats-every", "--stats-every 10s", Sets(|o| o.stats_every = Some(Duration::from_secs(10)))),
        ("log-errors", "--log-errors", Sets(|_| {})),
        ("deprecated-xml-osclass", "--deprecated-xml-osclass", Refused),
        ("6", "-6", Sets(|o| o.ipv6 = true)),
        ("4", "-4", Sets(|_| {})),
        ("A", "-A", Sets(|o| { o.aggressive = true; o.version = true; o.script_default = true })),
        ("datadir", "--datadir /usr/share/nmap", Sets(|o| o.datadir = Some("/usr/share/nmap".into()))),
        ("scope", "--scope scope.toml", Sets(|o| o.scope = Some("scope.toml".into()))),
        ("audit-log", "--audit-log none", Sets(|o| o.audit_log = Some("none".into()))),
        ("send-eth", "--send-eth", Refused),
        ("send-ip", "--send-ip", Refused),
        ("privileged", "--privileged", Refused),
        ("unprivileged", "--unprivileged", Sets(|o| o.unprivileged = true)),
        ("keep-privileges", "--keep-privileges", Sets(|o| o.keep_privileges = true)),
        ("randomize-hosts", "--randomize-hosts", Sets(|o| o.randomize_hosts = true)),
        ("seed", "--seed 42", Sets(|o| o.seed = Some(42))),
        ("shard", "--shard 2/3", Sets(|o| o.shard = Some("2/3".into()))),
        ("scan-id", "--scan-id nightly", Sets(|o| o.scan_id = Some("nightly".into()))),
        ("dryrun", "--dryrun", Sets(|o| o.dry_run = true)),
        ("resolve-all", "--resolve-all", Sets(|o| o.resolve_all = true)),
        ("unique", "--unique", Refused),
        ("route-dst", "--route-dst 198.18.0.1", Refused),
        ("release-memory", "--release-memory", Sets(|_| {})),
        ("V", "-V", Sets(|o| o.show_version = true)),
        ("version", "--version", Sets(|o| o.show_version = true)),
        ("generate", "--generate zsh", Sets(|o| o.generate = Some(Generate::Zsh))),
        ("h", "-h", Sets(|o| o.show_help = true)),
        ("help", "--help", Sets(|o| o.show_help = true)),
    ];

    /// The row a command line's first word names, found as the parser finds it.
    fn row_of(word: &str) -> Option<&'static FlagDef> {
        let body = word.trim_start_matches('-');
        let name = body.split_once('=').map_or(body, |(n, _)| n);
        match lookup_long(name) {
            Ok(def) if word.starts_with("--") || name.chars().count() > 1 => Some(def),
            _ => lookup_short(body.chars().next()?),
        }
    }

    #[test]
    fn every_row_has_a_sample_with_its_effect() {
        for def in FLAGS {
            let samples: Vec<_> = SAMPLES.iter().filter(|s| s.0 == def.name).collect();
            assert_eq!(
                samples.len(),
                1,
                "row {:?} needs one sample in SAMPLES",
                def.name
            );
            let (_, line, expect) = samples[0];
            let first = line.split_whitespace().next().unwrap_or("");
            assert_eq!(
                row_of(first).map(|d| d.name),
                Some(def.name),
                "the sample of {:?} ({line:?}) names another row",
                def.name
            );
            let got = crate::args::parse(line.split_whitespace());
            match expect {
                Sets(change) => {
                    let mut want = Options::default();
                    change(&mut want);
                    assert_eq!(got, Ok(want), "{line:?}");
                    assert!(def.supported(), "{line:?}");
                }
                Refused => {
                    assert_eq!(got, Err(ArgError::NotSupported(def.shown())), "{line:?}");
                    assert!(!def.supported(), "{line:?}");
                    assert_eq!(
                        got.unwrap_err().to_string(),
                        format!("not supported yet: {}", def.shown())
                    );
                }
            }
        }
        for (name, line, _) in SAMPLES {
            assert!(
                FLAGS.iter().any(|d| d.name == *name),
                "sample {line:?} of {name:?}: no such row"
            );
        }
    }

    /// A value kind the parser fills from the command line needs the flag to take one.
    #[test]
    fn effects_agree_with_argument_kinds() {
        for d in FLAGS {
            match d.effect {
                Switch(_) | Ignored => assert_eq!(d.arg, Arg::None, "{}", d.name),
                Text(_) | Count(..) | Time(_) | Rate(_) => {
                    assert_eq!(d.arg, Arg::Required, "{}", d.name)
                }
                Custom(_) | NotSupported => {}
            }
            if d.name.chars().count() == 1 {
                assert_eq!(d.dashes, "-", "{}: a short option has one dash", d.name);
            }
            if d.arg == Arg::Required {
                assert!(
                    !d.metavar.is_empty(),
                    "{}: --help must name its value",
                    d.name
                );
            }
        }
    }

    /// Every row has its line in --help: its spelling, its metavar, its help text, and the
    /// note when it is not supported yet.
    #[test]
    fn help_has_a_line_for_every_row() {
        let h = help_text();
        for d in FLAGS {
            let line = h
                .lines()
                .find(|l| {
                    // The flag, a space only before a long option's value, the value, a space.
                    let Some(rest) = l.trim_start().strip_prefix(&d.shown()) else {
                        return false;
                    };
                    let rest = rest.strip_prefix(' ').unwrap_or(rest);
                    rest.strip_prefix(d.metavar)
                        .is_some_and(|after| after.starts_with(' '))
                })
                .unwrap_or_else(|| panic!("--help has no line for {}", d.shown()));
            assert!(line.contains(d.help), "{line}");
            assert_eq!(
                line.ends_with("[not supported yet]"),
                !d.supported(),
                "{line}"
            );
        }
    }

    /// -v with hundreds of letters: a level at its cap, not an overflow.
    #[test]
    fn long_level_runs_saturate() {
        let many = format!("-{}", "v".repeat(300));
        assert_eq!(crate::args::parse([many]).map(|o| o.verbose), Ok(u8::MAX));
        let many = format!("-{}", "d".repeat(255));
        assert_eq!(crate::args::parse([many]).map(|o| o.debug), Ok(u8::MAX));
    }
}
