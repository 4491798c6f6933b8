//! `portolan --generate man|bash|zsh|fish`: each output is accepted by its tool (groff with
//! every warning, the shells' syntax check) and lists the flags; the unit test in
//! src/generate.rs checks that every row of the flag table is in each. A tool not installed
//! skips its check, saying so.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_portolan");

fn generate(kind: &str) -> String {
    let o = Command::new(BIN)
        .args(["--generate", kind])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{kind}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Runs `tool args` with `input` on stdin; None when the tool is not installed.
fn check_with(tool: &str, args: &[&str], input: &str) -> Option<(bool, String)> {
    let mut child = match Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: {tool} is not installed");
            return None;
        }
        Err(e) => panic!("{tool}: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    Some((
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

#[test]
fn the_man_page_renders_without_a_warning() {
    let man = generate("man");
    assert!(man.contains(".TH PORTOLAN 1"), "{man}");
    for needle in [
        "\\-sV: probe open ports",
        "\\-sC: run Nmap's default scripts",
        ".SS \"portolan check\"",
        "\\-\\-allow\\-incomplete",
    ] {
        assert!(man.contains(needle), "man page lacks {needle}");
    }
    if let Some((ok, err)) = check_with("groff", &["-man", "-Tutf8", "-ww", "-z"], &man) {
        assert!(ok && err.is_empty(), "groff: {err}");
    }
}

#[test]
fn the_completions_parse_in_their_shells() {
    for (kind, shell, needle) in [
        ("bash", "bash", "complete -o default -F _portolan portolan"),
        ("zsh", "zsh", "#compdef portolan"),
        ("fish", "fish", "complete -c portolan -n"),
    ] {
        let script = generate(kind);
        assert!(script.contains(needle), "{kind}: {script}");
        let oj = if kind == "fish" { "-o oJ " } else { "-oJ" };
        assert!(script.contains(oj), "{kind} lacks -oJ");
        if let Some((ok, err)) = check_with(shell, &["-n"], &script) {
            assert!(ok && err.is_empty(), "{shell} -n: {err}");
        }
    }
    // bash: the function answers as a shell would ask.
    let script = generate("bash");
    let probe = format!(
        "{script}\nCOMP_WORDS=(portolan check --allow); COMP_CWORD=2; _portolan; echo \"${{COMPREPLY[@]}}\"\n\
         COMP_WORDS=(portolan -oJ); COMP_CWORD=1; _portolan; echo \"${{COMPREPLY[@]}}\"\n"
    );
    if let Ok(o) = Command::new("bash").args(["-c", &probe]).output() {
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            out,
            "--allow-incomplete\n-oJ\n",
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn an_unknown_kind_is_refused() {
    let o = Command::new(BIN)
        .args(["--generate", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("\"tcsh\" is not man, bash, zsh or fish"));
}
