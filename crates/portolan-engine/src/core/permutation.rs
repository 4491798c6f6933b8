//! The order in which a stateless scan visits targets × ports, and how that work is split
//! into shards.
//!
//! This module owns three things:
//!
//! - [`Permutation`]: a seeded bijection on `[0, n)` for any `n: u64`, evaluated one index
//!   at a time ([`Permutation::at`]) with O(1) state.
//! - [`Shard`]: masscan-style `--shards K/N` (1-based `K`); shard `K` takes the permuted
//!   positions `i ≡ K-1 (mod N)`, so `N` machines with the same seed cover everything
//!   exactly once without talking to each other.
//! - [`TargetSpace`] and [`ScanOrder`]: probe index ↔ (host index, port index), and this
//!   shard's probes in permuted order, iterable or addressable by position (resume).
//!
//! # Design
//!
//! The permutation is a balanced Feistel network whose round function is keyed SipHash-2-4,
//! over the smallest power-of-4 domain `4^k ≥ n` (two halves of `k` bits), with
//! *cycle walking*: re-apply the network until the value falls inside `[0, n)`.
//!
//! - A Feistel network is a bijection whatever its round function, so any keyed hash makes a
//!   keyed permutation, and it is computed forward from the index alone. That gives random
//!   access (`at(i)`), which resume and sharding need, with no tables: O(1) memory for any
//!   `n`, unlike shuffling an array.
//! - Cycle walking restricts a permutation of the domain to a permutation of `[0, n)` (the
//!   walk from `i < n` follows `i`'s cycle and must meet a value `< n`, at worst `i`), so
//!   `n` need not be a power of two. Because the domain is at most 4× `n`, the walk costs
//!   on average `4^k / n < 4` network evaluations.
//! - Compared with zmap's cyclic group modulo a prime, nothing needs a prime search or a
//!   primitive root per `n`, and position `i` is reached directly instead of by `i` steps
//!   from a generator power (which needs modular exponentiation for resume).
//!
//! The order is not meant to be cryptographically unpredictable; the seed only needs to make
//! different scans visit targets in different, well-spread orders. SipHash comes from the
//! `siphasher` crate (checked here against the reference test vector).

use std::fmt;
use std::iter::FusedIterator;
use std::str::FromStr;

/// Feistel rounds: four is the Luby–Rackoff count for a pseudorandom permutation. Even on
/// the tiniest domain (1-bit halves) four reach every ordering of up to 4 elements across
/// seeds (see the tests); more rounds only add cost (6 measured about 25% slower).
const ROUNDS: u64 = 4;

/// Fixed second half of the SipHash key; the seed supplies the first half. Any constant
/// works: it only stops a zero seed from giving an all-zero key.
const KEY_TWEAK: u64 = 0x706f_7274_6f6c_616e; // "portolan"

/// A seeded bijection on `[0, n)`, evaluated by index. `Copy` and a few words in size.
///
/// The same `(n, seed)` always gives the same order, on any machine; that is what lets
/// shards and resumed scans agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permutation {
    n: u64,
    /// Bits in each Feistel half (`k`); the domain is `4^k`. 0 when `n <= 1`.
    half_bits: u32,
    k0: u64,
    k1: u64,
}

impl Permutation {
    /// The permutation of `[0, n)` chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Self {
        let half_bits = if n <= 1 {
            0
        } else {
            // Bits needed for the largest value n-1, rounded up to even (balanced halves).
            let bits = 64 - (n - 1).leading_zeros();
            bits.div_ceil(2)
        };
        Permutation {
            n,
            half_bits,
            k0: seed,
            // Mixing the domain size into the key keeps permutations of different domain
            // sizes under one seed unrelated.
            k1: KEY_TWEAK ^ u64::from(half_bits),
        }
    }

    /// Number of elements, `n`.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `i`-th element of the order.
    ///
    /// # Panics
    ///
    /// If `i >= n`, like slice indexing (the cycle walk would not terminate for some such
    /// `i`). Use [`Permutation::get`] for indices that come from outside.
    pub fn at(&self, i: u64) -> u64 {
        assert!(
            i < self.n,
            "permutation index {i} out of range 0..{}",
            self.n
        );
        if self.half_bits == 0 {
            return i;
        }
        let mut x = i;
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    /// The `i`-th element of the order, or `None` if `i >= n`.
    pub fn get(&self, i: u64) -> Option<u64> {
        (i < self.n).then(|| self.at(i))
    }

    /// One pass of the network over the `4^k` domain; `1 <= half_bits <= 32`.
    fn feistel(&self, x: u64) -> u64 {
        let h = self.half_bits;
        let mask = (1u64 << h) - 1;
        let mut left = x >> h;
        let mut right = x & mask;
        for round in 0..ROUNDS {
            // The round number goes in the message so each round has its own function;
            // `right < 2^32`, so the two never overlap.
            let f = siphash24_u64(self.k0, self.k1, (round << 32) | right) & mask;
            (left, right) = (right, left ^ f);
        }
        (left << h) | right
    }
}

/// SipHash-2-4 of one 8-byte little-endian word under the key `(k0, k1)`.
fn siphash24_u64(k0: u64, k1: u64, m: u64) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher24::new_with_keys(k0, k1);
    h.write_u64(m);
    h.finish()
}

/// Why a shard specification or shard was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("invalid shard \"{0}\": expected K/N with 1 <= K <= N, e.g. 1/2")]
    Syntax(String),
    #[error("invalid shard \"{0}\": N must be at least 1")]
    ZeroCount(String),
    #[error("invalid shard \"{0}\": K must be 1..=N")]
    OutOfRange(String),
}

/// One of `count` disjoint slices of the permuted order: the positions `i` with
/// `i % count == index`.
///
/// `index` is **0-based**; the text form ([`Shard::parse`], `Display`) is masscan's 1-based
/// `K/N`, so `"1/2"` is `Shard { index: 0, count: 2 }`. The fields are public for
/// convenience; a hand-built shard with `count == 0` or `index >= count` selects nothing
/// (and [`ScanOrder::new`] refuses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    /// The whole space (`1/1`).
    fn default() -> Self {
        Shard::ALL
    }
}

impl Shard {
    /// The only shard of one: everything.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` (0-based) of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ShardError> {
        let shard = Shard { index, count };
        shard.validate()?;
        Ok(shard)
    }

    /// Parse masscan's `--shards K/N`, with 1-based `K` in `1..=N`.
    pub fn parse(spec: &str) -> Result<Self, ShardError> {
        let syntax = || ShardError::Syntax(spec.to_string());
        let (k, n) = spec.split_once('/').ok_or_else(syntax)?;
        // Digits only: `u32::from_str` would also take "+1".
        let number = |s: &str| -> Result<u32, ShardError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            // All digits, so the only failure left is overflow: out of range for K or N.
            s.parse()
                .map_err(|_| ShardError::OutOfRange(spec.to_string()))
        };
        let (k, n) = (number(k)?, number(n)?);
        if n == 0 {
            return Err(ShardError::ZeroCount(spec.to_string()));
        }
        if k == 0 || k > n {
            return Err(ShardError::OutOfRange(spec.to_string()));
        }
        Ok(Shard {
            index: k - 1,
            count: n,
        })
    }

    fn validate(&self) -> Result<(), ShardError> {
        if self.count == 0 {
            Err(ShardError::ZeroCount(self.to_string()))
        } else if self.index >= self.count {
            Err(ShardError::OutOfRange(self.to_string()))
        } else {
            Ok(())
        }
    }

    fn is_valid(&self) -> bool {
        self.validate().is_ok()
    }

    /// This shard's positions in `[0, n)`, ascending.
    pub fn indices(&self, n: u64) -> impl Iterator<Item = u64> {
        // An invalid shard (possible through the public fields) yields nothing rather than
        // panicking in `step_by(0)`.
        let (start, step) = if self.is_valid() {
            (u64::from(self.index), self.count as usize)
        } else {
            (n, 1)
        };
        (start.min(n)..n).step_by(step)
    }

    /// How many of the positions `[0, n)` belong to this shard. Shards of one `count`
    /// differ in size by at most one.
    pub fn count_in(&self, n: u64) -> u64 {
        let index = u64::from(self.index);
        if !self.is_valid() || index >= n {
            return 0;
        }
        (n - 1 - index) / u64::from(self.count) + 1
    }

    /// The permuted-order index of this shard's `position`-th probe, if it is below `n`.
    fn index_at(&self, position: u64, n: u64) -> Option<u64> {
        if !self.is_valid() {
            return None;
        }
        let i = position
            .checked_mul(u64::from(self.count))?
            .checked_add(u64::from(self.index))?;
        (i < n).then_some(i)
    }
}

impl fmt::Display for Shard {
    /// 1-based `K/N`, as [`Shard::parse`] reads it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", u64::from(self.index) + 1, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Shard::parse(s)
    }
}

/// Why a target space could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaceError {
    #[error("{hosts} targets × {ports} ports is more than 2^64 - 1 probes")]
    TooLarge { hosts: u64, ports: u64 },
}

/// The probes of a scan, `hosts × ports`, numbered `host + hosts * port`.
///
/// Host-major within each port (every host on the first port, then every host on the next)
/// so that consecutive probe numbers name different hosts; after permutation this matters
/// little, but it keeps the unpermuted order (and any locality the permutation leaves)
/// spread across hosts rather than hammering one, as zmap does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetSpace {
    hosts: u64,
    ports: u64,
    len: u64,
}

impl TargetSpace {
    pub fn new(hosts: u64, ports: u64) -> Result<Self, SpaceError> {
        let len = hosts
            .checked_mul(ports)
            .ok_or(SpaceError::TooLarge { hosts, ports })?;
        Ok(TargetSpace { hosts, ports, len })
    }

    pub fn hosts(&self) -> u64 {
        self.hosts
    }

    pub fn ports(&self) -> u64 {
        self.ports
    }

    /// Number of probes, `hosts × ports`.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `(host index, port index)` of probe `index`, or `None` if `index >= len`.
    pub fn split(&self, index: u64) -> Option<(u64, u64)> {
        // `index < len` implies `hosts > 0`, so the division is safe.
        (index < self.len).then(|| (index % self.hosts, index / self.hosts))
    }

    /// Probe number of `(host, port)`, the inverse of [`TargetSpace::split`].
    pub fn index_of(&self, host: u64, port: u64) -> Option<u64> {
        (host < self.hosts && port < self.ports).then(|| host + self.hosts * port)
    }
}

/// One shard's probes of a target space, in seeded random order.
///
/// Position `p` (0-based, `p < len()`) is this shard's `p`-th probe; a scan that records
/// how many probes it has sent can resume with [`ScanOrder::iter_from`]. Every shard of a
/// scan must be built with the same space and seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOrder {
    perm: Permutation,
    shard: Shard,
    space: TargetSpace,
}

impl ScanOrder {
    /// Refuses a shard with `count == 0` or `index >= count`.
    pub fn new(space: TargetSpace, shard: Shard, seed: u64) -> Result<Self, ShardError> {
        shard.validate()?;
        Ok(ScanOrder {
            perm: Permutation::new(space.len(), seed),
            shard,
            space,
        })
    }

    pub fn permutation(&self) -> &Permutation {
        &self.perm
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    pub fn space(&self) -> &TargetSpace {
        &self.space
    }

    /// Number of probes in this shard.
    pub fn len(&self) -> u64 {
        self.shard.count_in(self.space.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This shard's `position`-th probe as `(host index, port index)`, or `None` past the
    /// end.
    pub fn at(&self, position: u64) -> Option<(u64, u64)> {
        let i = self.shard.index_at(position, self.space.len())?;
        self.space.split(self.perm.at(i))
    }

    /// This shard's probes in order.
    pub fn iter(&self) -> ScanIter {
        self.iter_from(0)
    }

    /// This shard's probes from `position` on (resume); empty if `position >= len()`.
    pub fn iter_from(&self, position: u64) -> ScanIter {
        let end = self.len();
        ScanIter {
            order: *self,
            next: position.min(end),
            end,
        }
    }
}

impl IntoIterator for &ScanOrder {
    type Item = (u64, u64);
    type IntoIter = ScanIter;
    fn into_iter(self) -> ScanIter {
        self.iter()
    }
}

/// Iterator over a [`ScanOrder`]: `(host index, port index)`. Holds a copy of the order and
/// a position, nothing more.
#[derive(Debug, Clone)]
pub struct ScanIter {
    order: ScanOrder,
    next: u64,
    end: u64,
}

impl ScanIter {
    /// The position of the next probe this iterator yields (what to save for resume).
    pub fn position(&self) -> u64 {
        self.next
    }
}

impl Iterator for ScanIter {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.next >= self.end {
            return None;
        }
        let item = self.order.at(self.next);
        self.next += 1;
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.end - self.next;
        match usize::try_from(left) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }

    /// Skipping is O(1): positions are addressed directly.
    fn nth(&mut self, skip: usize) -> Option<(u64, u64)> {
        let skip = u64::try_from(skip).unwrap_or(u64::MAX);
        self.next = self.next.saturating_add(skip).min(self.end);
        self.next()
    }
}

impl FusedIterator for ScanIter {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `at` over `0..n` hits every value of `[0, n)` exactly once.
    fn assert_bijection(n: u64, seed: u64) {
        let p = Permutation::new(n, seed);
        assert_eq!(p.len(), n);
        let mut seen = vec![0u64; n.div_ceil(64) as usize];
        for i in 0..n {
            let v = p.at(i);
            assert!(v < n, "n={n} seed={seed}: at({i}) = {v} out of range");
            let (word, bit) = ((v / 64) as usize, v % 64);
            assert_eq!(seen[word] >> bit & 1, 0, "n={n} seed={seed}: {v} twice");
            seen[word] |= 1 << bit;
        }
        // n values in [0, n), none twice: every value was hit.
    }

    const SEEDS: [u64; 4] = [0, 1, 0xdead_beef, u64::MAX];

    #[test]
    fn siphash_matches_reference_vector() {
        // Reference implementation: key bytes 00..0f, message bytes 00..07.
        let k0 = 0x0706_0504_0302_0100;
        let k1 = 0x0f0e_0d0c_0b0a_0908;
        assert_eq!(
            siphash24_u64(k0, k1, 0x0706_0504_0302_0100),
            0x93f5_f579_9a93_2462
        );
    }

    #[test]
    fn bijection_small_n() {
        for n in 0..=300 {
            for seed in SEEDS {
                assert_bijection(n, seed);
            }
        }
    }

    #[test]
    fn bijection_larger_n() {
        for n in [1000, 4096, 65535, 65536, 100_003] {
            for seed in SEEDS {
                assert_bijection(n, seed);
            }
        }
    }

    #[test]
    fn tiny_n() {
        let p = Permutation::new(0, 7);
        assert!(p.is_empty());
        assert_eq!(p.get(0), None);
        let p = Permutation::new(1, 7);
        assert_eq!(p.at(0), 0);
        assert_eq!(p.get(1), None);
        for n in [2u64, 3, 5] {
            let p = Permutation::new(n, 7);
            let mut got: Vec<u64> = (0..n).map(|i| p.at(i)).collect();
            got.sort_unstable();
            assert_eq!(got, (0..n).collect::<Vec<_>>());
            assert_eq!(p.get(n), None);
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn at_past_end_panics_rather_than_spinning() {
        Permutation::new(5, 1).at(5);
    }

    #[test]
    fn small_n_reaches_every_order() {
        // Tiny domains (1- and 2-bit halves) are where a weak network would show: every
        // ordering of 2 and 3 elements, and all 24 of 4, should come up across seeds.
        for (n, orders) in [(2u64, 2usize), (3, 6), (4, 24)] {
            let mut seen = std::collections::HashSet::new();
            for seed in 0..2000 {
                let p = Permutation::new(n, seed);
                seen.insert((0..n).map(|i| p.at(i)).collect::<Vec<_>>());
            }
            assert_eq!(seen.len(), orders, "n={n}");
        }
    }

    #[test]
    fn small_n_first_element_is_roughly_uniform() {
        let n = 5;
        let mut counts = [0u32; 5];
        for seed in 0..5000 {
            counts[Permutation::new(n, seed).at(0) as usize] += 1;
        }
        // Expect 1000 each; the standard deviation is about 28.
        for c in counts {
            assert!((850..=1150).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn seed_determines_order() {
        let n = 1000;
        let order = |seed| -> Vec<u64> {
            let p = Permutation::new(n, seed);
            (0..n).map(|i| p.at(i)).collect()
        };
        assert_eq!(order(42), order(42));
        let orders: Vec<Vec<u64>> = (0..20).map(order).collect();
        for a in 0..orders.len() {
            for b in a + 1..orders.len() {
                assert_ne!(orders[a], orders[b], "seeds {a} and {b}");
            }
        }
        // Not the identity either.
        assert_ne!(order(0), (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn adjacent_outputs_are_not_consecutive() {
        let n = 65536;
        for seed in SEEDS {
            let p = Permutation::new(n, seed);
            let steps = (0..n - 1)
                .filter(|&i| p.at(i).abs_diff(p.at(i + 1)) == 1)
                .count() as u64;
            assert!(steps < n / 100, "seed {seed}: {steps} unit steps");
        }
    }

    #[test]
    fn large_permutation_is_spread() {
        let n = 1u64 << 32;
        let p = Permutation::new(n, 99);
        let first: Vec<u64> = (0..1000).map(|i| p.at(i)).collect();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000, "duplicates among the first 1000");
        let mean = first.iter().map(|&v| v as f64).sum::<f64>() / 1000.0;
        let half = n as f64 / 2.0;
        assert!((mean - half).abs() < 0.1 * half, "mean {mean}");
    }

    #[test]
    fn million_lookups_on_2_pow_32_are_distinct() {
        let p = Permutation::new(1 << 32, 3);
        let mut got: Vec<u64> = (0..1_000_000).map(|i| p.at(i)).collect();
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), 1_000_000);
    }

    #[test]
    fn huge_n() {
        for n in [1u64 << 40, (1 << 48) + 12345, u64::MAX - 1, u64::MAX] {
            let p = Permutation::new(n, 5);
            for i in [0, 1, 2, n / 3, n - 1] {
                assert!(p.at(i) < n);
            }
            assert_ne!(p.at(0), p.at(1));
            assert_eq!(p.get(n), None);
        }
    }

    #[test]
    fn shards_partition_the_space() {
        for count in 1..=7u32 {
            for n in [0u64, 1, 6, 7, 100, 1001] {
                let mut seen = vec![false; n as usize];
                let sizes: Vec<u64> = (0..count)
                    .map(|index| {
                        let shard = Shard::new(index, count).unwrap();
                        let mut size = 0;
                        for i in shard.indices(n) {
                            assert_eq!(i % u64::from(count), u64::from(index));
                            assert!(!seen[i as usize], "{shard} n={n}: {i} twice");
                            seen[i as usize] = true;
                            size += 1;
                        }
                        assert_eq!(size, shard.count_in(n), "{shard} n={n}");
                        size
                    })
                    .collect();
                assert!(seen.iter().all(|&s| s), "count={count} n={n}: not covered");
                let (lo, hi) = (sizes.iter().min(), sizes.iter().max());
                assert!(hi.unwrap() - lo.unwrap() <= 1, "{sizes:?}");
            }
        }
    }

    #[test]
    fn sharded_scan_orders_cover_every_probe_once() {
        let space = TargetSpace::new(37, 11).unwrap();
        for count in 1..=7u32 {
            let mut seen = vec![false; space.len() as usize];
            for index in 0..count {
                let order = ScanOrder::new(space, Shard::new(index, count).unwrap(), 8).unwrap();
                let mut yielded = 0;
                for (host, port) in &order {
                    let probe = space.index_of(host, port).unwrap() as usize;
                    assert!(!seen[probe]);
                    seen[probe] = true;
                    yielded += 1;
                }
                assert_eq!(yielded, order.len());
            }
            assert!(seen.iter().all(|&s| s), "count={count}");
        }
    }

    #[test]
    fn shard_parse() {
        assert_eq!(Shard::parse("1/1"), Ok(Shard::ALL));
        assert_eq!(Shard::parse("1/2"), Ok(Shard { index: 0, count: 2 }));
        assert_eq!(Shard::parse("2/2"), Ok(Shard { index: 1, count: 2 }));
        assert_eq!("3/7".parse(), Ok(Shard { index: 2, count: 7 }));
        assert_eq!(Shard { index: 2, count: 7 }.to_string(), "3/7");
        for bad in [
            "0/2",
            "3/2",
            "1/0",
            "0/0",
            "a/b",
            "1",
            "",
            "/",
            "1/",
            "/2",
            "+1/2",
            "1/2/3",
            " 1/2",
            "-1/2",
            "1/99999999999",
        ] {
            assert!(Shard::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Shard::parse("3/2").unwrap_err().to_string(),
            "invalid shard \"3/2\": K must be 1..=N"
        );
        assert_eq!(
            Shard::parse("0/2").unwrap_err(),
            ShardError::OutOfRange("0/2".into())
        );
        assert_eq!(
            Shard::parse("1/0").unwrap_err().to_string(),
            "invalid shard \"1/0\": N must be at least 1"
        );
        assert_eq!(
            Shard::parse("a/b").unwrap_err(),
            ShardError::Syntax("a/b".into())
        );
    }

    #[test]
    fn invalid_hand_built_shards_select_nothing() {
        for shard in [Shard { index: 0, count: 0 }, Shard { index: 3, count: 2 }] {
            assert_eq!(shard.indices(100).count(), 0);
            assert_eq!(shard.count_in(100), 0);
            let space = TargetSpace::new(10, 10).unwrap();
            assert!(ScanOrder::new(space, shard, 0).is_err());
        }
        assert_eq!(
            Shard::new(3, 2).unwrap_err().to_string(),
            "invalid shard \"4/2\": K must be 1..=N"
        );
    }

    #[test]
    fn target_space_layout() {
        let space = TargetSpace::new(3, 2).unwrap();
        let all: Vec<_> = (0..space.len()).map(|i| space.split(i).unwrap()).collect();
        // Every host on the first port, then every host on the second.
        assert_eq!(all, [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]);
        assert_eq!(space.split(6), None);
        assert_eq!(space.index_of(2, 1), Some(5));
        assert_eq!(space.index_of(3, 0), None);
        assert_eq!(TargetSpace::new(0, 5).unwrap().split(0), None);
        assert!(TargetSpace::new(1 << 40, 1 << 30).is_err());
        // A /8 × 1000 ports fits easily.
        assert_eq!(
            TargetSpace::new(1 << 24, 1000).unwrap().len(),
            16_777_216_000
        );
    }

    #[test]
    fn scan_order_random_access_matches_iteration() {
        let space = TargetSpace::new(300, 7).unwrap();
        let order = ScanOrder::new(space, Shard::parse("2/3").unwrap(), 11).unwrap();
        assert_eq!(order.len(), 700);
        let all: Vec<_> = order.iter().collect();
        assert_eq!(all.len(), 700);
        for (pos, &item) in all.iter().enumerate() {
            assert_eq!(order.at(pos as u64), Some(item));
        }
        assert_eq!(order.at(700), None);
        assert_eq!(order.at(u64::MAX), None);
        // Resume from a saved position.
        let mut it = order.iter();
        it.by_ref().take(123).for_each(drop);
        assert_eq!(it.position(), 123);
        assert_eq!(order.iter_from(123).collect::<Vec<_>>(), all[123..]);
        assert_eq!(order.iter().nth(500), Some(all[500]));
        assert_eq!(order.iter_from(700).next(), None);
        assert_eq!(order.iter().size_hint(), (700, Some(700)));
    }

    #[test]
    fn empty_space() {
        let order = ScanOrder::new(TargetSpace::new(0, 100).unwrap(), Shard::ALL, 1).unwrap();
        assert!(order.is_empty());
        assert_eq!(order.iter().next(), None);
        assert_eq!(order.at(0), None);
    }

    /// Cost of `at` on a 2^32 space. Not a test of speed; run to measure:
    /// `cargo test --release -p portolan-engine --lib permutation::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_at() {
        for n in [1u64 << 32, (1 << 32) + 1, 100_003] {
            let p = Permutation::new(n, 1);
            let calls = 1_000_000u64;
            let start = std::time::Instant::now();
            let sum = (0..calls).fold(0u64, |acc, i| acc ^ p.at(std::hint::black_box(i % n)));
            let ns = start.elapsed().as_nanos() as f64 / calls as f64;
            println!("n={n}: {ns:.1} ns per at() (checksum {sum:x})");
        }
    }
}
