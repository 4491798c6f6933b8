//! The scheduler manifests of docs/shards.md (deploy/): parsed as their scheduler reads
//! them, each part's command line is parsed by Portolan's own parser, and every part must
//! be shard K of the same N, with the same seed and scan identity, into PostgreSQL over
//! TLS. No cluster or systemd needed: Kubernetes' `$(VAR)` expansion is done here and the
//! shell lines run with a stand-in `portolan` that writes down its arguments.

use crate::args::{self, Options};
use portolan_engine::core::permutation::Shard;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A directory with a `portolan` that writes its arguments, NUL-ended, to $ARGS_OUT.
fn stand_in() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("portolan");
    std::fs::write(&bin, "#!/bin/sh\nprintf '%s\\0' \"$@\" > \"$ARGS_OUT\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs `argv` with the stand-in first on PATH and `env`; returns what it was given.
fn run_with_stand_in(argv: &[String], env: &[(&str, String)]) -> Vec<String> {
    let bin = stand_in();
    let out = bin.path().join("args");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", path)
        .env("ARGS_OUT", &out)
        .status()
        .expect("run the manifest's command");
    assert!(status.success(), "{argv:?}");
    let text = std::fs::read_to_string(&out).expect("the stand-in ran");
    text.split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Kubernetes' expansion of `command` and `args`: `$(NAME)` of a variable the container
/// defines becomes its value, `$$` a `$`, anything else stays.
fn k8s_expand(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(name) = tail
            .strip_prefix("$(")
            .and_then(|t| t.split_once(')'))
            .map(|(n, _)| n)
            .filter(|n| vars.contains_key(*n))
        {
            out.push_str(&vars[name]);
            rest = &tail[name.len() + 3..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// What one part's command line must be: Portolan's parser takes it, it is a sharded SYN
/// scan into PostgreSQL over verified TLS with no password in the URL. Returns
/// (K, N, seed, scan id).
fn check_part(argv: &[String], what: &str) -> (u32, u32, u64, String) {
    let o: Options = args::parse(argv.iter().map(String::as_str))
        .unwrap_or_else(|e| panic!("{what}: Portolan refuses {argv:?}: {e}"));
    let spec = o
        .shard
        .clone()
        .unwrap_or_else(|| panic!("{what}: no --shard"));
    let shard = Shard::parse(&spec).unwrap_or_else(|e| panic!("{what}: --shard {spec}: {e}"));
    let seed = o.seed.unwrap_or_else(|| panic!("{what}: no --seed"));
    let id = o
        .scan_id
        .clone()
        .unwrap_or_else(|| panic!("{what}: no --scan-id"));
    assert!(!id.contains('$'), "{what}: scan id {id:?} not expanded");
    let part = super::part_of(&o, "plan").expect("a part");
    assert_eq!((part.part, part.parts), (shard.index + 1, shard.count));
    assert_eq!(part.scan_key, id);
    let db = o.db.clone().unwrap_or_else(|| panic!("{what}: no --db"));
    assert!(db.starts_with("postgres://"), "{what}: {db}");
    assert!(db.contains("sslmode=verify-full"), "{what}: {db}");
    let userinfo = db["postgres://".len()..].split('@').next().unwrap_or("");
    assert!(
        !userinfo.contains(':'),
        "{what}: a password in the URL: {db}"
    );
    assert!(!o.targets.is_empty(), "{what}: no targets");
    (part.part, part.parts, seed, id)
}

/// Every part 1..=N once, all with one N, seed and scan id.
fn check_parts(parts: &[(u32, u32, u64, String)], n: u32, what: &str) {
    let ks: BTreeSet<u32> = parts.iter().map(|p| p.0).collect();
    assert_eq!(ks, (1..=n).collect(), "{what}: parts {parts:?}");
    for p in parts {
        assert_eq!(p.1, n, "{what}: {parts:?}");
        assert_eq!((p.2, &p.3), (parts[0].2, &parts[0].3), "{what}: {parts:?}");
    }
}

fn int(y: &Yaml, what: &str) -> u32 {
    y.as_i64()
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or_else(|| panic!("{what}: {y:?}"))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .map(|s| match s {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    other => panic!("not a string: {other:?}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_kubernetes_indexed_job_runs_every_part_once() {
    let docs = YamlLoader::load_from_str(&read("deploy/k8s/portolan-shards.yaml")).unwrap();
    assert_eq!(docs.len(), 1);
    let job = &docs[0];
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = int(&spec["completions"], "completions");
    assert_eq!(int(&spec["parallelism"], "parallelism"), n);
    let pod = &spec["template"]["spec"];
    let containers = pod["containers"].as_vec().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    // The variables the container defines, as the pods of one run would see them: the
    // scan id from the Job's name label, the same on every pod.
    let env = c["env"].as_vec().expect("env");
    let scan_id = env
        .iter()
        .find(|e| e["name"].as_str() == Some("SCAN_ID"))
        .expect("SCAN_ID");
    assert_eq!(
        scan_id["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.labels['batch.kubernetes.io/job-name']")
    );
    let password = env
        .iter()
        .find(|e| e["name"].as_str() == Some("PGPASSWORD"))
        .expect("PGPASSWORD from a secret");
    assert!(password["valueFrom"]["secretKeyRef"]["name"]
        .as_str()
        .is_some());
    let mut parts = Vec::new();
    for index in 0..n {
        let vars: HashMap<String, String> = [
            ("SCAN_ID", "portolan-shards-x7k2q".to_string()),
            ("JOB_COMPLETION_INDEX", index.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let argv: Vec<String> = strings(&c["command"])
            .iter()
            .chain(strings(&c["args"]).iter())
            .map(|s| k8s_expand(s, &vars))
            .collect();
        assert!(!argv.is_empty(), "no command");
        let given = run_with_stand_in(&argv, &[("JOB_COMPLETION_INDEX", index.to_string())]);
        let what = format!("pod of index {index}");
        let part = check_part(&given, &what);
        assert_eq!(part.0, index + 1, "{what}: K is the index plus one");
        parts.push(part);
    }
    check_parts(&parts, n, "the Indexed Job");
}

#[test]
fn the_systemd_unit_runs_part_k_on_machine_k() {
    let unit = read("deploy/systemd/portolan-shard@.service");
    let exec: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 1, "one ExecStart line");
    // No shell, no quotes: systemd splits the line on blanks after the specifiers.
    assert!(!exec[0].contains(['"', '\'', '$', ';']), "{}", exec[0]);
    let mut parts = Vec::new();
    let mut n = 0;
    for k in 1..=4 {
        let line = exec[0].replace("%i", &k.to_string()).replace("%%", "%");
        assert!(!line.contains('%'), "an unknown specifier: {line}");
        let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        assert_eq!(words[0], "/usr/bin/portolan");
        let part = check_part(&words[1..], &format!("portolan-shard@{k}"));
        n = part.1;
        parts.push(part);
    }
    check_parts(&parts, n, "the systemd units");
    assert!(read("deploy/systemd/portolan-shard@.timer").contains("OnCalendar="));
}

#[test]
fn the_cron_line_runs_part_shard() {
    let table = read("deploy/cron/portolan-shards");
    // Lines that are neither comments nor variable settings ("SHARD=1") are jobs.
    let setting = |l: &str| {
        l.split_once('=')
            .is_some_and(|(name, _)| !name.is_empty() && !name.contains(' '))
    };
    let jobs: Vec<&str> = table
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !setting(l))
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    // min hour day month weekday user command; cron gives the command to sh, "%" escaped.
    let command = jobs[0]
        .splitn(7, ' ')
        .nth(6)
        .expect("a command")
        .replace("\\%", "%");
    let mut parts = Vec::new();
    for k in 1..=4u32 {
        let argv = vec!["/bin/sh".to_string(), "-c".into(), command.clone()];
        let given = run_with_stand_in(&argv, &[("SHARD", k.to_string())]);
        parts.push(check_part(&given, &format!("cron on machine {k}")));
    }
    let n = parts[0].1;
    check_parts(&parts, n, "the cron lines");
    assert!(parts[0].3.starts_with("nightly-20"), "{:?}", parts[0]);
}

#[test]
fn the_doc_shows_the_files_as_they_are() {
    let doc = read("docs/shards.md");
    for f in [
        "deploy/k8s/portolan-shards.yaml",
        "deploy/systemd/portolan-shard@.service",
        "deploy/systemd/portolan-shard@.timer",
        "deploy/cron/portolan-shards",
    ] {
        assert!(
            doc.contains(&read(f)),
            "docs/shards.md does not show {f} as it is"
        );
    }
}

#[test]
fn kubernetes_expansion_is_what_the_test_assumes() {
    let vars: HashMap<String, String> = [("A".to_string(), "x".to_string())].into();
    assert_eq!(
        k8s_expand("$(A)-$(B)-$$((1+1))-$", &vars),
        "x-$(B)-$((1+1))-$"
    );
}
