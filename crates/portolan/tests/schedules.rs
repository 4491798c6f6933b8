//! docs/schedules.md's nightly job, run as the page writes it: a quiet night (the scan passes
//! its policy) must print nothing, since cron mails whatever a job prints, and a night with a
//! violation must print it.
//!
//! The script and the inline cron line are taken from the page itself. Only what cannot run
//! here is replaced: its directories (/var/lib/portolan, /etc/portolan) by temporary ones, and
//! its scan options (`-sS`, `-sS -sV -T4`) by a connect scan of a few loopback ports, slowed
//! with --scan-delay so that the scan outlasts the 10 s after which a status line is due.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schedules.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path:?}: {e}"))
}

/// The body of the first fenced block of kind `lang` after the line `heading`.
fn block_after(page: &str, heading: &str, lang: &str) -> String {
    let rest = &page[page
        .find(heading)
        .unwrap_or_else(|| panic!("docs/schedules.md has no {heading:?}"))..];
    let open = format!("```{lang}\n");
    let start = rest.find(&open).expect("a fenced block after the heading") + open.len();
    let end = rest[start..].find("```").expect("the block ends") + start;
    rest[start..end].to_string()
}

/// The command of the inline cron line (the one that runs `portolan`, not the script), as
/// cron hands it to /bin/sh: after the five time fields and the user, with `\%` unescaped.
fn cron_command(page: &str) -> String {
    let line = page
        .lines()
        .find(|l| l.starts_with("30 2 * * * root cd "))
        .expect("docs/schedules.md has the inline cron line");
    let command = line
        .splitn(7, ' ')
        .nth(6)
        .expect("a command after the user");
    command.replace("\\%", "%")
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the documented job no longer contains {from:?}; update this test with the page"
    );
    text.replace(from, to)
}

struct Night {
    dir: tempfile::TempDir,
    /// The open port (kept listening) and two closed ones.
    _listener: TcpListener,
    ports: String,
    open: u16,
}

impl Night {
    fn new() -> Night {
        let dir = tempfile::tempdir().unwrap();
        for d in ["state/scans", "etc", "bin"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::os::unix::fs::symlink(BIN, dir.path().join("bin/portolan")).unwrap();
        std::fs::write(dir.path().join("etc/targets.txt"), "127.0.0.1\n").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed: Vec<u16> = (0..3)
            .map(|_| {
                TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let ports = format!("{open},{},{},{}", closed[0], closed[1], closed[2]);
        Night {
            dir,
            _listener: listener,
            ports,
            open,
        }
    }

    fn policy(&self, toml: &str) {
        std::fs::write(self.dir.path().join("etc/policy.toml"), toml).unwrap();
    }

    fn passing_policy(&self) {
        self.policy(&format!(
            "version = 1\n[[rule]]\nname = \"loopback\"\nhosts = [\"127.0.0.1\"]\n\
             allow_ports = [\"{}/tcp\"]\nmust_be_up = [\"127.0.0.1\"]\n",
            self.open
        ));
    }

    /// The job's text with the page's directories replaced by this night's.
    fn localise(&self, job: &str) -> String {
        let p = self.dir.path();
        let job = replace_once(job, "/var/lib/portolan", p.join("state").to_str().unwrap());
        replace_once(&job, "/etc/portolan", p.join("etc").to_str().unwrap())
    }

    fn sh(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("/bin/sh")
            .args(args)
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env_remove("PORTOLAN_DB")
            .env_remove("PORTOLAN_SCOPE")
            .env("PORTOLAN_AUDIT_LOG", self.dir.path().join("audit.log"))
            .output()
            .expect("/bin/sh runs")
    }
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_documented_script_is_silent_on_a_quiet_night_and_speaks_on_a_violation() {
    let night = Night::new();
    let script = block_after(&page(), "## The job, as a script", "sh");
    let script = night.localise(&script);
    // 4 ports, 4 s apart: the scan runs over 10 s, when a status line would be due.
    let slow = replace_once(
        &script,
        "portolan -sS -sV -T4 ",
        &format!("portolan -sT -T4 -p {} --scan-delay 4s ", night.ports),
    );
    let path = night.dir.path().join("portolan-daily");
    std::fs::write(&path, &slow).unwrap();
    night.passing_policy();
    let started = std::time::Instant::now();
    let o = night.sh(&[path.to_str().unwrap()]);
    assert!(
        started.elapsed() > std::time::Duration::from_secs(10),
        "the scan must outlast the first status line for this test to mean anything"
    );
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", show(&o));
    // It did scan, record and check.
    let scans: Vec<String> = std::fs::read_dir(night.dir.path().join("state/scans"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for ext in [".xml", ".nmap", ".gnmap", ".ndjson", ".check.txt"] {
        assert!(
            scans.iter().any(|f| f.ends_with(ext)),
            "no {ext} in {scans:?}"
        );
    }
    assert!(night.dir.path().join("state/history.db").exists());

    // The same job with a port the policy forbids: exit 1, and the violation is printed.
    let fast = replace_once(
        &script,
        "portolan -sS -sV -T4 ",
        &format!("portolan -sT -T4 -p {} ", night.ports),
    );
    std::fs::write(&path, &fast).unwrap();
    night.policy(&format!(
        "version = 1\n[[rule]]\nname = \"nothing open\"\nforbid_ports = [\"{}/tcp\"]\n",
        night.open
    ));
    let o = night.sh(&[path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("policy violations") && err.contains("nothing open"),
        "{}",
        show(&o)
    );
}

#[test]
fn the_documented_cron_line_is_silent_on_a_quiet_night_and_speaks_on_a_violation() {
    let night = Night::new();
    let command = night.localise(&cron_command(&page()));
    let command = replace_once(
        &command,
        "portolan -sS ",
        &format!("portolan -sT -T4 -p {} --scan-delay 4s ", night.ports),
    );
    night.passing_policy();
    let o = night.sh(&["-c", &command]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", show(&o));

    night.policy(&format!(
        "version = 1\n[[rule]]\nname = \"nothing open\"\nforbid_ports = [\"{}/tcp\"]\n",
        night.open
    ));
    let fast = command.replace(" --scan-delay 4s", "");
    let o = night.sh(&["-c", &fast]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("nothing open"), "{}", show(&o));
}
