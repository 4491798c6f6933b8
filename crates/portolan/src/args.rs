//! Parsing Nmap's command line into [`Options`], with no side effects: nothing is read,
//! resolved or opened here. getopt_long_only's rules apply: a word with one dash is first
//! tried as a long option (exact name, else unique prefix), then as short options. This
//! file owns that grammar; what each flag means is its row in flags.rs.

use crate::flags::{lookup_long, lookup_short, Arg, LookupError};
use portolan_engine::plan::timing::Template;
use std::time::Duration;

/// What went wrong on the command line. Each is reported with exit code 2.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("unrecognized option '{0}' (see --help)")]
    Unknown(String),
    /// An option unknown as written but known with other capitals (`-oj` for `-oJ`).
    #[error("unrecognized option '{0}'; did you mean '{1}'? (see --help)")]
    UnknownSuggest(String, String),
    #[error("option '{0}' is ambiguous; possibilities: {1}")]
    Ambiguous(String, String),
    #[error("option '{0}' requires an argument")]
    MissingValue(String),
    #[error("option '{0}' doesn't allow an argument")]
    UnexpectedValue(String),
    #[error("not supported yet: {0}")]
    NotSupported(String),
    #[error("invalid value for {flag}: {msg}")]
    Invalid { flag: String, msg: String },
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Normal,
    Xml,
    Grepable,
    Json,
    /// -oE: NDJSON events with ECS field names.
    Events,
}

pub use portolan_engine::plan::{Dns, ScanKind};

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub targets: Vec<String>,
    pub input_file: Option<String>,
    pub excludes: Vec<String>,
    pub exclude_file: Option<String>,
    pub ipv6: bool,
    pub scan: Option<ScanKind>,
    pub no_ping: bool,
    /// `-PS` ports for the connect ping (`None`: Nmap's default 80,443).
    pub ping_ports: Option<String>,
    /// `-PE`: ICMP echo discovery (raw sockets).
    pub ping_echo: bool,
    /// `-PP`: ICMP timestamp discovery.
    pub ping_timestamp: bool,
    /// `-PM`: ICMP address mask discovery.
    pub ping_netmask: bool,
    /// `-PA` ports (TCP ACK ping).
    pub ping_ack_ports: Option<String>,
    /// `-PU` ports (UDP ping).
    pub ping_udp_ports: Option<String>,
    /// `-PR`: ARP ping (on-link IPv4 targets).
    pub ping_arp: bool,
    pub disable_arp_ping: bool,
    /// `-sU`, alone or beside a TCP scan.
    pub udp: bool,
    /// `--shard K/N`.
    pub shard: Option<String>,
    /// `--scan-id NAME`: the scan's name in the store; the identity that makes the parts
    /// of a sharded scan one scan (see shard_id.rs).
    pub scan_id: Option<String>,
    /// `--dryrun`: print the probes instead of sending them.
    pub dry_run: bool,
    /// `--unprivileged`: act as if raw sockets were not allowed.
    pub unprivileged: bool,
    /// `--keep-privileges`: a scan run as root stays root (see privs.rs).
    pub keep_privileges: bool,
    /// `-sV` (or `-A`): service and version detection.
    pub version: bool,
    /// `-A` was given: -sV and -sC always; -O and --traceroute too when raw sockets are
    /// allowed (as Nmap, which drops those two silently without root). The plan decides.
    pub aggressive: bool,
    /// `-O`: OS detection.
    pub os: bool,
    /// `--osscan-limit`: OS detection only on hosts with an open and a closed TCP port.
    pub osscan_limit: bool,
    /// `--osscan-guess` / `--fuzzy`.
    pub osscan_guess: bool,
    /// `--max-os-tries` (1 to 50; Nmap's default 5).
    pub max_os_tries: Option<u32>,
    /// `--traceroute`.
    pub traceroute: bool,
    /// NSE: `--script` rules (comma-separated, as Nmap splits them), `-sC`, and the rest of
    /// the `--script-*` options.
    pub scripts: Vec<String>,
    pub script_default: bool,
    pub script_args: Option<String>,
    pub script_args_file: Option<String>,
    pub script_trace: bool,
    pub script_updatedb: bool,
    pub script_help: Option<String>,
    pub script_timeout: Option<Duration>,
    pub version_intensity: Option<u8>,
    pub version_trace: bool,
    pub all_ports: bool,
    /// `--builtin-data`: ignore installed Nmap data files.
    pub builtin_data: bool,
    pub dns: Dns,
    pub ports: Option<String>,
    pub exclude_ports: Option<String>,
    pub fast: bool,
    pub top_ports: Option<u32>,
    pub port_ratio: Option<f64>,
    pub sequential_ports: bool,
    pub template: Template,
    pub min_hostgroup: Option<u32>,
    pub max_hostgroup: Option<u32>,
    pub min_parallelism: Option<u32>,
    pub max_parallelism: Option<u32>,
    pub min_rtt_timeout: Option<Duration>,
    pub max_rtt_timeout: Option<Duration>,
    pub initial_rtt_timeout: Option<Duration>,
    pub max_retries: Option<u32>,
    pub host_timeout: Option<Duration>,
    pub scan_delay: Option<Duration>,
    pub max_scan_delay: Option<Duration>,
    pub min_rate: Option<f64>,
    pub max_rate: Option<f64>,
    pub outputs: Vec<(Format, String)>,
    pub append_output: bool,
    pub verbose: u8,
    pub debug: u8,
    pub reason: bool,
    /// --iflist: print this host's interfaces and routes, and end.
    pub iflist: bool,
    /// --packet-trace: print every raw packet sent and received.
    pub packet_trace: bool,
    pub open_only: bool,
    pub stats_every: Option<Duration>,
    pub stylesheet: Option<String>,
    pub no_stylesheet: bool,
    /// `--db PATH`: record the scan in this history store.
    pub db: Option<String>,
    /// `--vulns`: known vulnerabilities under each port; `--vulndb PATH`: their database.
    pub vulns: bool,
    pub vulndb: Option<String>,
    /// --resume: the output of an interrupted scan to continue.
    pub resume: Option<String>,
    /// --scope: the scope file the scan must stay inside.
    pub scope: Option<String>,
    /// --audit-log: where the scan's audit line goes ("none": nowhere).
    pub audit_log: Option<String>,
    pub datadir: Option<String>,
    pub randomize_hosts: bool,
    pub seed: Option<u64>,
    pub resolve_all: bool,
    pub show_help: bool,
    pub show_version: bool,
    /// `--generate`: print this instead of scanning.
    pub generate: Option<Generate>,
}

/// What `--generate` prints: the man page or a shell's completion script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    Man,
    Bash,
    Zsh,
    Fish,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            targets: Vec::new(),
            input_file: None,
            excludes: Vec::new(),
            exclude_file: None,
            ipv6: false,
            scan: None,
            no_ping: false,
            ping_ports: None,
            ping_echo: false,
            ping_timestamp: false,
            ping_netmask: false,
            ping_ack_ports: None,
            ping_udp_ports: None,
            ping_arp: false,
            disable_arp_ping: false,
            udp: false,
            shard: None,
            scan_id: None,
            dry_run: false,
            unprivileged: false,
            keep_privileges: false,
            version: false,
            aggressive: false,
            os: false,
            osscan_limit: false,
            osscan_guess: false,
            max_os_tries: None,
            traceroute: false,
            scripts: Vec::new(),
            script_default: false,
            script_args: None,
            script_args_file: None,
            script_trace: false,
            script_updatedb: false,
            script_help: None,
            script_timeout: None,
            version_intensity: None,
            version_trace: false,
            all_ports: false,
            builtin_data: false,
            dns: Dns::Default,
            ports: None,
            exclude_ports: None,
            fast: false,
            top_ports: None,
            port_ratio: None,
            sequential_ports: false,
            template: Template::Normal,
            min_hostgroup: None,
            max_hostgroup: None,
            min_parallelism: None,
            max_parallelism: None,
            min_rtt_timeout: None,
            max_rtt_timeout: None,
            initial_rtt_timeout: None,
            max_retries: None,
            host_timeout: None,
            scan_delay: None,
            max_scan_delay: None,
            min_rate: None,
            max_rate: None,
            outputs: Vec::new(),
            append_output: false,
            verbose: 0,
            debug: 0,
            reason: false,
            iflist: false,
            packet_trace: false,
            open_only: false,
            stats_every: None,
            stylesheet: None,
            no_stylesheet: false,
            db: None,
            vulns: false,
            vulndb: None,
            resume: None,
            scope: None,
            audit_log: None,
            datadir: None,
            randomize_hosts: false,
            seed: None,
            resolve_all: false,
            show_help: false,
            show_version: false,
            generate: None,
        }
    }
}

/// An unknown short option `c` at `k` in `word`. When the word as a whole is no option but
/// one is spelled so with other capitals (`-oj`, `-Sv`), the word is named and that option
/// suggested: "unrecognized option '-o'" said nothing useful of `-oj`.
fn unknown_word(word: &str, name: &str, c: char, k: usize) -> ArgError {
    if k == 0 && name.chars().count() > 1 {
        let flags = crate::flags::FLAGS.iter().filter(|d| d.name.len() > 1);
        // `-oXout.xml`: a value glued to a two-letter option (Nmap would read `-o XFILE`).
        let glued = flags.clone().find(|d| {
            d.arg == crate::flags::Arg::Required
                && name.len() > d.name.len()
                && name.starts_with(d.name)
        });
        if let Some(d) = glued {
            let value = name.get(d.name.len()..).unwrap_or_default();
            return ArgError::UnknownSuggest(
                word.to_string(),
                format!("{}{} {value}", d.dashes, d.name),
            );
        }
        let same = flags.clone().find(|d| d.name.eq_ignore_ascii_case(name));
        return match same {
            Some(d) => {
                ArgError::UnknownSuggest(word.to_string(), format!("{}{}", d.dashes, d.name))
            }
            None => ArgError::Unknown(word.to_string()),
        };
    }
    ArgError::Unknown(format!("-{c}"))
}

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Options, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        i += 1;
        if word == "--" {
            o.targets.extend(args[i..].iter().cloned());
            break;
        }
        if !word.starts_with('-') || word == "-" {
            o.targets.push(word.clone());
            continue;
        }
        let double = word.starts_with("--");
        let body = if double { &word[2..] } else { &word[1..] };
        let (name, attached) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // Long options: always for "--", and for "-word" when longer than one letter.
        if double || name.chars().count() > 1 {
            match lookup_long(name) {
                Ok(def) => {
                    let value = match def.arg {
                        Arg::None => {
                            if attached.is_some() {
                                return Err(ArgError::UnexpectedValue(word.clone()));
                            }
                            None
                        }
                        Arg::Optional => attached,
                        Arg::Required => match attached {
                            Some(v) => Some(v),
                            None => {
                                let v = args
                                    .get(i)
                                    .cloned()
                                    .ok_or_else(|| ArgError::MissingValue(word.clone()))?;
                                i += 1;
                                Some(v)
                            }
                        },
                    };
                    def.apply(&mut o, value.as_deref())?;
                    continue;
                }
                Err(LookupError::Ambiguous(list)) => {
                    return Err(ArgError::Ambiguous(word.clone(), list))
                }
                Err(LookupError::Unknown) if double => return Err(ArgError::Unknown(word.clone())),
                Err(LookupError::Unknown) => {}
            }
        }
        // Short options, possibly bundled (-nv) or with an attached value (-p22, -T4).
        let chars: Vec<char> = body.chars().collect();
        let mut k = 0;
        while k < chars.len() {
            let c = chars[k];
            let def = lookup_short(c).ok_or_else(|| unknown_word(word, name, c, k))?;
            let rest: String = chars[k + 1..].iter().collect();
            match def.arg {
                Arg::None => {
                    def.apply(&mut o, None)?;
                    k += 1;
                }
                Arg::Optional => {
                    let v = if rest.is_empty() { None } else { Some(rest) };
                    def.apply(&mut o, v.as_deref())?;
                    break;
                }
                Arg::Required => {
                    let v = if !rest.is_empty() {
                        rest
                    } else {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| ArgError::MissingValue(format!("-{c}")))?;
                        i += 1;
                        v
                    };
                    def.apply(&mut o, Some(&v))?;
                    break;
                }
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Options, ArgError> {
        parse(s.split_whitespace())
    }

    #[test]
    fn typical_nmap_command() {
        let o = p("-sT -T4 -p- -oX baseline.xml 198.18.0.0/24").unwrap();
        assert_eq!(o.scan, Some(ScanKind::Connect));
        assert_eq!(o.template, Template::Aggressive);
        assert_eq!(o.ports.as_deref(), Some("-"));
        assert_eq!(o.outputs, vec![(Format::Xml, "baseline.xml".into())]);
        assert_eq!(o.targets, vec!["198.18.0.0/24"]);
    }

    #[test]
    fn attached_and_separate_values() {
        assert_eq!(p("-p22").unwrap().ports.as_deref(), Some("22"));
        assert_eq!(p("-p 22,80").unwrap().ports.as_deref(), Some("22,80"));
        assert_eq!(p("--max-retries=3").unwrap().max_retries, Some(3));
        assert_eq!(p("--max-retries 3").unwrap().max_retries, Some(3));
        assert_eq!(p("-T 4").unwrap().template, Template::Aggressive);
        assert_eq!(p("-Taggressive").unwrap().template, Template::Aggressive);
        assert_eq!(p("-T insane").unwrap().template, Template::Insane);
    }

    #[test]
    fn single_dash_long_options_as_nmap() {
        let o =
            p("-exclude 198.18.0.5,198.18.0.6 -excludefile ex.txt -iL - -open -reason").unwrap();
        assert_eq!(o.excludes, vec!["198.18.0.5", "198.18.0.6"]);
        assert_eq!(o.exclude_file.as_deref(), Some("ex.txt"));
        assert_eq!(o.input_file.as_deref(), Some("-"));
        assert!(o.open_only && o.reason);
        assert_eq!(p("--max-ret 2").unwrap().max_retries, Some(2));
    }

    #[test]
    fn bundled_short_flags() {
        let o = p("-nrv -6 -F").unwrap();
        assert!(
            p("-nvr").is_err(),
            "-v takes the rest of the word as its level"
        );
        assert_eq!(o.dns, Dns::Never);
        assert_eq!(o.verbose, 1);
        assert!(o.sequential_ports && o.ipv6 && o.fast);
    }

    #[test]
    fn verbosity_and_debug_levels() {
        assert_eq!(p("-v").unwrap().verbose, 1);
        assert_eq!(p("-vv").unwrap().verbose, 2);
        assert_eq!(p("-vvv").unwrap().verbose, 3);
        assert_eq!(p("-v3").unwrap().verbose, 3);
        assert_eq!(p("-v -v").unwrap().verbose, 2);
        assert_eq!(p("-d").unwrap().debug, 1);
        assert_eq!(p("-dd").unwrap().debug, 2);
        assert_eq!(p("-d4").unwrap().debug, 4);
    }

    #[test]
    fn outputs_and_oa() {
        let o = p("-oA base -oJ out.json -oN - -oG g -oE ev.ndjson --append-output").unwrap();
        assert_eq!(
            o.outputs,
            vec![
                (Format::Normal, "base.nmap".into()),
                (Format::Xml, "base.xml".into()),
                (Format::Grepable, "base.gnmap".into()),
                (Format::Json, "out.json".into()),
                (Format::Normal, "-".into()),
                (Format::Grepable, "g".into()),
                (Format::Events, "ev.ndjson".into()),
            ]
        );
        assert!(o.append_output);
        assert!(p("-oA -").is_err());
    }

    #[test]
    fn ping_and_scan_types() {
        assert!(p("-Pn").unwrap().no_ping);
        assert!(p("-PE").unwrap().ping_echo);
        assert_eq!(p("-PS22,80").unwrap().ping_ports.as_deref(), Some("22,80"));
        assert_eq!(p("-PS").unwrap().ping_ports.as_deref(), Some("80"));
        assert_eq!(p("-sn").unwrap().scan, Some(ScanKind::PingOnly));
        assert_eq!(p("-sL").unwrap().scan, Some(ScanKind::List));
        assert!(p("-sT -sn").is_err());
        assert_eq!(p("-sS").unwrap().scan, Some(ScanKind::Syn));
        assert!(p("-sS -sT").is_err());
        let both = p("-sS -sU").unwrap();
        assert_eq!((both.scan, both.udp), (Some(ScanKind::Syn), true));
        let udp = p("-sU").unwrap();
        assert_eq!((udp.scan, udp.udp), (None, true));
        let pings = p("-PE -PP -PM -PA -PU53,161 -PR --disable-arp-ping").unwrap();
        assert!(pings.ping_echo && pings.ping_timestamp && pings.ping_netmask && pings.ping_arp);
        assert_eq!(pings.ping_ack_ports.as_deref(), Some("80"));
        assert_eq!(pings.ping_udp_ports.as_deref(), Some("53,161"));
        assert!(pings.disable_arp_ping);
        assert_eq!(p("-PU").unwrap().ping_udp_ports.as_deref(), Some("40125"));
        assert!(p("-PX").is_err());
        let o = p("--shard 2/3 --dryrun --unprivileged").unwrap();
        assert_eq!(o.shard.as_deref(), Some("2/3"));
        assert!(o.dry_run && o.unprivileged);
        let v = p("-sV --version-intensity 3 --version-trace --allports").unwrap();
        assert!(v.version && v.version_trace && v.all_ports);
        assert_eq!(v.version_intensity, Some(3));
        assert_eq!(p("--version-all").unwrap().version_intensity, Some(9));
        assert_eq!(p("--version-light").unwrap().version_intensity, Some(2));
        assert!(p("--version-intensity 10").is_err());
        let a = p("-A").unwrap();
        assert!(a.version && a.aggressive && a.script_default);
        // -O and --traceroute of -A are the plan's to add: they depend on raw sockets.
        assert!(!a.os && !a.traceroute);
    }

    #[test]
    fn os_detection_flags() {
        let o = p("-O --osscan-limit --fuzzy --max-os-tries 3 --traceroute").unwrap();
        assert!(o.os && o.osscan_limit && o.osscan_guess && o.traceroute);
        assert_eq!(o.max_os_tries, Some(3));
        assert!(p("-O2").unwrap().os);
        assert!(p("--osscan-guess").unwrap().osscan_guess);
        // As Nmap: -O1 is gone, other values are unknown, tries are 1 to 50.
        let e = p("-O1").unwrap_err().to_string();
        assert!(e.contains("-O1) is no longer supported"), "{e}");
        assert!(p("-O3").is_err());
        for bad in ["0", "51", "abc", "-1", ""] {
            assert!(
                matches!(
                    p(&format!("--max-os-tries={bad}")),
                    Err(ArgError::Invalid { .. } | ArgError::MissingValue(_))
                ),
                "--max-os-tries={bad}"
            );
        }
        assert_eq!(p("--max-os-tries 50").unwrap().max_os_tries, Some(50));
    }

    #[test]
    fn timing_values() {
        let o = p("--host-timeout 5m --scan-delay 500ms --max-rtt-timeout 2s --min-rate 100 --max-rate 1000.5").unwrap();
        assert_eq!(o.host_timeout, Some(Duration::from_secs(300)));
        assert_eq!(o.scan_delay, Some(Duration::from_millis(500)));
        assert_eq!(o.max_rtt_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.min_rate, Some(100.0));
        assert_eq!(o.max_rate, Some(1000.5));
    }

    #[test]
    fn unsupported_flags_are_refused_by_name() {
        for (cmd, name) in [
            ("-PY", "-PY"),
            ("-sI zombie", "-sI"),
            ("-sF", "-sF"),
            ("--scanflags URG", "--scanflags"),
            ("-D 198.18.0.9", "-D"),
        ] {
            assert_eq!(p(cmd), Err(ArgError::NotSupported(name.into())), "{cmd}");
        }
        assert_eq!(
            ArgError::NotSupported("-sS".into()).to_string(),
            "not supported yet: -sS"
        );
    }

    #[test]
    fn unknown_and_malformed() {
        assert_eq!(p("--bogus"), Err(ArgError::Unknown("--bogus".into())));
        assert!(matches!(p("-j"), Err(ArgError::Unknown(_))));
        assert!(matches!(p("-p"), Err(ArgError::MissingValue(_))));
        assert!(matches!(p("--open=1"), Err(ArgError::UnexpectedValue(_))));
        let e = p("-T9").unwrap_err().to_string();
        assert!(e.contains("0 (paranoid) to 5 (insane)"), "{e}");
        assert!(p("--max-retries -1").is_err());
        assert!(p("--min-rate 0").is_err());
        assert!(p("--host-timeout 5x").is_err());
        assert!(p("--top-ports 0").is_err());
        assert!(p("--port-ratio 2").is_err());
    }

    /// `-oj x.json` said "unrecognized option '-o'": the word is named, and the option with
    /// other capitals suggested.
    #[test]
    fn a_miscapitalised_option_is_named_and_corrected() {
        assert_eq!(
            p("-oj x.json"),
            Err(ArgError::UnknownSuggest("-oj".into(), "-oJ".into()))
        );
        let e = p("-ox x.xml").unwrap_err().to_string();
        assert_eq!(
            e,
            "unrecognized option '-ox'; did you mean '-oX'? (see --help)"
        );
        assert_eq!(p("-oq f"), Err(ArgError::Unknown("-oq".into())));
        // A bundle of known letters then an unknown one still names the letter.
        assert_eq!(p("-nj"), Err(ArgError::Unknown("-j".into())));
    }

    /// `--exclude ''` was accepted silently, excluding nothing.
    #[test]
    fn an_empty_exclude_list_is_refused() {
        for cmd in ["--exclude=", "--exclude ,", "--exclude=, ,"] {
            let e = p(cmd).unwrap_err();
            assert!(
                matches!(&e, ArgError::Invalid { flag, .. } if flag == "--exclude"),
                "{cmd}: {e}"
            );
            assert!(e.to_string().contains("names no host"), "{cmd}: {e}");
        }
        assert_eq!(
            p("--exclude 198.18.0.5,,198.18.0.6").unwrap().excludes,
            vec!["198.18.0.5", "198.18.0.6"]
        );
    }

    #[test]
    fn seed_takes_a_whole_number() {
        assert_eq!(p("--seed 42").unwrap().seed, Some(42));
        assert!(p("--seed -1").is_err());
        assert!(p("--seed x").is_err());
    }

    #[test]
    fn double_dash_ends_options() {
        let o = p("-p 80 -- -weird-name 198.18.0.1").unwrap();
        assert_eq!(o.targets, vec!["-weird-name", "198.18.0.1"]);
    }

    /// `-oX FILE` and `-oX=FILE`; `-oXFILE` is refused, as it always was: Nmap reads it
    /// as `-o XFILE` (normal output to a file named XFILE), a surprise better refused.
    #[test]
    fn output_value_attached_with_equals_or_separate() {
        for cmd in ["-oX out.xml", "-oX=out.xml", "--oX out.xml"] {
            assert_eq!(
                p(cmd).unwrap().outputs,
                vec![(Format::Xml, "out.xml".into())]
            );
        }
        assert_eq!(
            p("-oXout.xml"),
            Err(ArgError::UnknownSuggest(
                "-oXout.xml".into(),
                "-oX out.xml".into()
            ))
        );
    }
}
