//! The identity of a sharded scan (`--shard K/N`): what makes N processes on N machines
//! record one scan (docs/shards.md).
//!
//! The parts of a scan partition its probes only if every machine orders them alike: the
//! same targets, ports, scan type, N and seed. The identity is `--scan-id NAME` when given,
//! else a hash of that canonical plan (not of the command line's word order, which may
//! differ between machines). Without `--seed`, the seed is derived from the same plan (and
//! the `--scan-id`), so that every machine still picks the same one: a random seed per
//! machine would not partition the probes.

use crate::args::{Options, ScanKind};
use portolan_engine::core::permutation::Shard;
use std::hash::Hasher;

/// The plan's parts that decide the order of the probes, in a canonical text. Target words
/// keep their order (it numbers the hosts); ports are the resolved sorted lists.
pub fn canonical_plan(
    o: &Options,
    scan: ScanKind,
    targets: &[String],
    ports: &[u16],
    udp_ports: &[u16],
    parts: u32,
) -> String {
    let scan = match scan {
        ScanKind::Connect => "sT",
        ScanKind::Syn => "sS",
        ScanKind::Udp => "sU",
        ScanKind::PingOnly => "sn",
        ScanKind::List => "sL",
    };
    let list = |p: &[u16]| {
        let mut p = p.to_vec();
        p.sort_unstable();
        p.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
    };
    let mut excludes = o.excludes.clone();
    excludes.sort();
    let mut text = format!(
        "portolan-shards/1\nscan={scan}{}\nipv6={}\ntargets={}\nexclude={}\ntcp={}\nudp={}\nparts={parts}\n",
        if o.udp { "+sU" } else { "" },
        o.ipv6,
        targets.join(" "),
        excludes.join(","),
        list(ports),
        list(udp_ports),
    );
    if let Some(seed) = o.seed {
        text.push_str(&format!("seed={seed}\n"));
    }
    text
}

fn hash(parts: &[&str]) -> u64 {
    // Fixed keys: the same value on every machine and every build.
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x7368_6172_6473, 0x706f_7274_6f6c);
    for p in parts {
        h.write(p.as_bytes());
        h.write_u8(0);
    }
    h.finish()
}

/// The seed of a sharded scan given without `--seed`: the same on every machine.
pub fn derived_seed(canonical: &str, scan_id: Option<&str>) -> u64 {
    hash(&[canonical, scan_id.unwrap_or(""), "seed"])
}

/// The identity recorded for a scan of this plan when `--scan-id` is not given.
pub fn derived_key(canonical: &str) -> String {
    format!("plan-{:016x}", hash(&[canonical]))
}

/// What the store is told of a part: its identity, K and N (K 1-based).
pub fn part_of(o: &Options, canonical: &str) -> Option<portolan_store::ShardPart> {
    let shard = Shard::parse(o.shard.as_deref()?).ok()?;
    Some(portolan_store::ShardPart {
        scan_key: o.scan_id.clone().unwrap_or_else(|| derived_key(canonical)),
        part: shard.index + 1,
        parts: shard.count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &str) -> Options {
        crate::args::parse(words.split_whitespace()).unwrap()
    }

    fn canon(words: &str) -> String {
        let o = opts(words);
        canonical_plan(&o, ScanKind::Syn, &o.targets, &[22, 80], &[], 4)
    }

    #[test]
    fn the_identity_ignores_the_order_of_the_options() {
        let a = canon("-sS --shard 1/4 --seed 7 -p 22,80 198.18.0.0/24");
        let b = canon("--seed 7 198.18.0.0/24 -p 80,22 --shard 3/4 -sS");
        assert_eq!(a, b);
        assert_eq!(derived_key(&a), derived_key(&b));
        // Another seed, other targets: another scan.
        assert_ne!(
            derived_key(&a),
            derived_key(&canon("-sS --seed 8 198.18.0.0/24"))
        );
        assert_ne!(
            derived_key(&a),
            derived_key(&canon("-sS --seed 7 198.18.1.0/24"))
        );
    }

    #[test]
    fn a_shard_without_a_seed_gets_the_same_seed_everywhere() {
        let a = canon("-sS --shard 1/4 198.18.0.0/24");
        let b = canon("--shard 2/4 -sS 198.18.0.0/24");
        assert_eq!(derived_seed(&a, None), derived_seed(&b, None));
        assert_ne!(derived_seed(&a, None), derived_seed(&a, Some("nightly")));
    }

    #[test]
    fn the_part_is_k_of_n_under_the_given_name() {
        let o = opts("-sS --shard 3/4 --scan-id nightly 198.18.0.0/24");
        let p = part_of(&o, "x").unwrap();
        assert_eq!((p.scan_key.as_str(), p.part, p.parts), ("nightly", 3, 4));
        assert!(part_of(&opts("-sS 198.18.0.0/24"), "x").is_none());
    }
}

#[cfg(test)]
mod deploy_tests;
