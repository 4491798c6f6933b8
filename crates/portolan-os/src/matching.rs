//! Scoring a subject fingerprint against the references, as Nmap's `compare_fingerprints`
//! and `match_fingerprint` do, and Nmap's verdict on the result (what `printosscanoutput`
//! writes to XML and prints).
//!
//! Accuracy: for every attribute present in both the reference and the subject, its
//! MatchPoints weight counts as possible, and as won when the subject's value satisfies the
//! reference's expression; accuracy = won / possible (0 when nothing was comparable).
//! A test missing from the subject, or an attribute missing from a test, is skipped.
// OWNER: helper "os-db".

use crate::db::{MatchPoints, Observed, OsDb, RefPrint, SCHEMA};
use crate::fingerprint::Fingerprint;

/// Nmap's OSSCAN_GUESS_THRESHOLD: references scoring less are not kept.
pub const GUESS_THRESHOLD: f64 = 0.85;
/// Nmap's MAX_FP_RESULTS: the length of its list of best references.
pub const MAX_RESULTS: usize = 36;
/// More perfect matches than this and Nmap names none of them (unless debugging).
pub const MAX_PERFECT_SHOWN: usize = 8;
/// Without a perfect match, Nmap shows at most this many guesses...
pub const MAX_GUESSES_SHOWN: usize = 10;
/// ...each scoring more than the best minus this.
pub const GUESS_SPREAD: f64 = 0.10;

/// Every (test, attribute) of [`SCHEMA`] as one number, to index flat arrays.
const SLOTS: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < SCHEMA.len() {
        n += SCHEMA[i].1.len();
        i += 1;
    }
    n
};

/// Where each test's attributes start among the slots.
const OFFSETS: [usize; SCHEMA.len()] = {
    let mut out = [0; SCHEMA.len()];
    let mut i = 1;
    while i < SCHEMA.len() {
        out[i] = out[i - 1] + SCHEMA[i - 1].1.len();
        i += 1;
    }
    out
};

/// A short name as one number (its bytes and its length), so that finding a test or an
/// attribute among the schema's compares integers rather than strings: this runs for every
/// attribute of every reference. None for names longer than 7 bytes (none in the schema).
const fn name_key(b: &[u8]) -> Option<u64> {
    if b.len() > 7 {
        return None;
    }
    let mut key = (b.len() as u64) << 56;
    let mut i = 0;
    while i < b.len() {
        key |= (b[i] as u64) << (8 * i);
        i += 1;
    }
    Some(key)
}

/// The widest test of the schema (T2-T7, U1).
const MAX_ATTRS: usize = 11;

const fn key_or_zero(b: &[u8]) -> u64 {
    match name_key(b) {
        Some(k) => k,
        None => 0,
    }
}

/// [`SCHEMA`]'s test names as keys.
const TEST_KEYS: [u64; SCHEMA.len()] = {
    let mut out = [0; SCHEMA.len()];
    let mut i = 0;
    while i < SCHEMA.len() {
        out[i] = key_or_zero(SCHEMA[i].0.as_bytes());
        i += 1;
    }
    out
};

/// [`SCHEMA`]'s attribute names as keys, per test (0 past the end: no name has key 0).
const ATTR_KEYS: [[u64; MAX_ATTRS]; SCHEMA.len()] = {
    let mut out = [[0; MAX_ATTRS]; SCHEMA.len()];
    let mut t = 0;
    while t < SCHEMA.len() {
        let attrs = SCHEMA[t].1;
        let mut a = 0;
        while a < attrs.len() {
            out[t][a] = key_or_zero(attrs[a].as_bytes());
            a += 1;
        }
        t += 1;
    }
    out
};

fn test_slot_base(name: &str) -> Option<usize> {
    let key = name_key(name.as_bytes())?;
    TEST_KEYS.iter().position(|k| *k == key)
}

fn slot_of(ti: usize, attr: &str) -> Option<usize> {
    let key = name_key(attr.as_bytes())?;
    let ai = ATTR_KEYS.get(ti)?.iter().position(|k| *k == key)?;
    Some(OFFSETS.get(ti)? + ai)
}

fn points_table(points: &MatchPoints) -> [u32; SLOTS] {
    let mut table = [0; SLOTS];
    for (ti, (test, attrs)) in SCHEMA.iter().enumerate() {
        for attr in attrs.iter() {
            if let Some(p) = slot_of(ti, attr).and_then(|s| table.get_mut(s)) {
                *p = points.points(test, attr);
            }
        }
    }
    table
}

/// The subject's values by slot, each read once as Nmap's matcher reads it.
fn subject_values(subject: &Fingerprint) -> [Option<Observed<'_>>; SLOTS] {
    let mut values = [None; SLOTS];
    for t in &subject.tests {
        let Some(ti) = test_slot_base(&t.name) else {
            continue;
        };
        for (a, v) in &t.attrs {
            if let Some(cell) = slot_of(ti, a).and_then(|s| values.get_mut(s)) {
                // The first test of a name counts, as Fingerprint::test finds it.
                cell.get_or_insert(Observed::new(v));
            }
        }
    }
    values
}

/// For each slot, the points still to be had after it: the subject's values only, since an
/// attribute the subject lacks is never scored.
fn points_after(table: &[u32; SLOTS], subject: &[Option<Observed<'_>>; SLOTS]) -> [u64; SLOTS] {
    let mut after = [0u64; SLOTS];
    let mut sum = 0u64;
    for s in (0..SLOTS).rev() {
        if let Some(cell) = after.get_mut(s) {
            *cell = sum;
        }
        if subject.get(s).is_some_and(Option::is_some) {
            sum += u64::from(table.get(s).copied().unwrap_or(0));
        }
    }
    after
}

/// The subject prepared once for scoring many references.
struct Prepared<'s> {
    values: [Option<Observed<'s>>; SLOTS],
    after: [u64; SLOTS],
}

fn prepare<'s>(subject: &'s Fingerprint, table: &[u32; SLOTS]) -> Prepared<'s> {
    let values = subject_values(subject);
    let after = points_after(table, &values);
    Prepared { values, after }
}

/// Nmap's compare_fingerprints for one reference. With `threshold` > 0 it stops as soon
/// as the reference cannot reach it any more (what Nmap's max_mismatch does, with a bound
/// of our own: the points still possible after this attribute), returning a score that is
/// then below the threshold, as the full one would be. The bound needs the reference's
/// attributes in slot order, as the reader leaves them; out of order, no early stop.
fn score(
    reference: &RefPrint,
    subject: &Prepared<'_>,
    table: &[u32; SLOTS],
    threshold: f64,
) -> f64 {
    let slack = 1.0 - threshold;
    let (mut possible, mut won) = (0u64, 0u64);
    let mut prev: Option<usize> = None;
    let mut ordered = true;
    for t in &reference.tests {
        let Some(ti) = test_slot_base(&t.name) else {
            continue;
        };
        for (a, expr) in &t.attrs {
            let Some(s) = slot_of(ti, a) else {
                continue;
            };
            ordered &= prev.is_none_or(|p| p < s);
            prev = Some(s);
            let Some(value) = subject.values.get(s).and_then(Option::as_ref) else {
                continue;
            };
            let p = u64::from(table.get(s).copied().unwrap_or(0));
            possible += p;
            if expr.matches_observed(value) {
                won += p;
            } else if ordered && threshold > 0.0 {
                let reachable = possible + subject.after.get(s).copied().unwrap_or(0);
                if (possible - won) as f64 > slack * reachable as f64 {
                    return won as f64 / possible as f64;
                }
            }
        }
    }
    if possible == 0 {
        0.0
    } else {
        won as f64 / possible as f64
    }
}

/// Nmap's compare_fingerprints: the accuracy (0 to 1) of `subject` against `reference`.
pub fn accuracy(reference: &RefPrint, subject: &Fingerprint, points: &MatchPoints) -> f64 {
    let table = points_table(points);
    score(reference, &prepare(subject, &table), &table, 0.0)
}

/// How Nmap was asked to judge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JudgeOptions {
    /// --osscan-guess / --fuzzy. Nmap's XML osmatch list is the same either way; the flag
    /// only decides whether the normal output shows guesses (see [`Verdict::shows_guesses`]).
    pub guess: bool,
    /// -d: Nmap then names every perfect match, even more than eight.
    pub debug: bool,
}

/// One reference in the verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Index in `db.prints`.
    pub print: usize,
    pub accuracy: f64,
}

/// Nmap's overall result for a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// At least one perfect match ("OS details: ..."); `matches` are the perfect ones.
    Perfect,
    /// No perfect match, some references above the threshold ("Aggressive OS guesses",
    /// "No exact OS matches for host").
    Guesses,
    /// Nothing reached the threshold ("No OS matches for host").
    NoMatch,
    /// More perfect matches than Nmap lists ("Too many fingerprints match this host...").
    TooMany,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Exactly the `osmatch` entries Nmap writes to XML, in its order.
    pub matches: Vec<Match>,
    /// Perfect (1.0) matches in Nmap's list.
    pub perfect: usize,
    pub outcome: Outcome,
    /// Nmap's whole list (up to [`MAX_RESULTS`], best first, one per name): what its OS
    /// classification ("Device type", "Running", "OS CPE") is drawn from.
    pub all: Vec<Match>,
    /// More than [`MAX_RESULTS`] perfect matches: Nmap stopped matching (OSSCAN_TOOMANYMATCHES,
    /// as opposed to the more-than-eight rule of its output).
    pub overflowed: bool,
}

impl Verdict {
    /// Whether Nmap's normal output lists guesses: without a perfect match, when asked to
    /// guess or when the fingerprint is unfit for submission (`ideal` false).
    pub fn shows_guesses(&self, opts: &JudgeOptions, ideal: bool) -> bool {
        self.outcome == Outcome::Guesses && (opts.guess || !ideal)
    }
}

/// A db ready for judging subjects (the points by slot, computed once).
pub struct Matcher<'a> {
    db: &'a OsDb,
    table: [u32; SLOTS],
}

impl<'a> Matcher<'a> {
    pub fn new(db: &'a OsDb) -> Matcher<'a> {
        let table = points_table(&db.match_points);
        Matcher { db, table }
    }

    /// Nmap's match_fingerprint and the choice printosscanoutput makes from its list.
    pub fn judge(&self, subject: &Fingerprint, opts: &JudgeOptions) -> Verdict {
        let prepared = prepare(subject, &self.table);
        let mut list: Vec<Match> = Vec::with_capacity(MAX_RESULTS + 1);
        let mut perfect = 0usize;
        let mut entrance = GUESS_THRESHOLD;
        let mut too_many = false;
        for (i, print) in self.db.prints.iter().enumerate() {
            let acc = score(print, &prepared, &self.table, entrance);
            if !(acc >= entrance || acc == 1.0) {
                continue;
            }
            let name = print.name.as_str();
            // One entry per name: the better one stays (the earlier one on a tie).
            let same = list
                .iter()
                .position(|m| self.db.prints.get(m.print).is_some_and(|p| p.name == name));
            if let Some(at) = same {
                if list.get(at).is_some_and(|m| m.accuracy >= acc) {
                    continue;
                }
                list.remove(at);
            }
            if acc == 1.0 {
                if perfect == MAX_RESULTS {
                    too_many = true;
                    break;
                }
                perfect += 1;
            }
            // After the entries scoring as much: ties keep db order.
            let at = list
                .iter()
                .position(|m| m.accuracy < acc)
                .unwrap_or(list.len());
            list.insert(
                at,
                Match {
                    print: i,
                    accuracy: acc,
                },
            );
            list.truncate(MAX_RESULTS);
            if list.len() == MAX_RESULTS {
                if let Some(last) = list.last() {
                    entrance = (last.accuracy + 0.00001).min(1.0);
                }
            }
        }

        let outcome = if too_many || (perfect > MAX_PERFECT_SHOWN && !opts.debug) {
            Outcome::TooMany
        } else if list.is_empty() {
            Outcome::NoMatch
        } else if perfect > 0 {
            Outcome::Perfect
        } else {
            Outcome::Guesses
        };
        let matches = match outcome {
            Outcome::Perfect => list.iter().take(perfect).copied().collect(),
            Outcome::Guesses => {
                let best = list.first().map_or(0.0, |m| m.accuracy);
                list.iter()
                    .take(MAX_GUESSES_SHOWN)
                    .take_while(|m| m.accuracy > best - GUESS_SPREAD)
                    .copied()
                    .collect()
            }
            Outcome::NoMatch | Outcome::TooMany => Vec::new(),
        };
        Verdict {
            matches,
            perfect,
            outcome,
            all: list,
            overflowed: too_many,
        }
    }

    /// Nmap's choice among the tries it made on a host (findBestFPs): the first try whose
    /// best reference scores highest, a try with a perfect match ending the search (Nmap
    /// stops trying then). None without tries.
    pub fn judge_tries(
        &self,
        tries: &[Fingerprint],
        opts: &JudgeOptions,
    ) -> Option<(usize, Verdict)> {
        let mut best: Option<(usize, Verdict)> = None;
        let mut best_acc = 0.0;
        for (i, fp) in tries.iter().enumerate() {
            let v = self.judge(fp, opts);
            let top = v.all.first().map(|m| m.accuracy);
            let perfect = v.perfect > 0;
            if !v.overflowed && top.is_some_and(|a| a > best_acc) {
                best_acc = top.unwrap_or(0.0);
                best = Some((i, v));
                if perfect {
                    break;
                }
            }
        }
        match best {
            Some(b) => Some(b),
            // Nothing matched on any try: Nmap judges the first.
            None => tries.first().map(|fp| (0, self.judge(fp, opts))),
        }
    }
}

/// Judges one subject against every reference of `db` (see [`Matcher`] for many subjects).
pub fn judge(db: &OsDb, subject: &Fingerprint, opts: &JudgeOptions) -> Verdict {
    Matcher::new(db).judge(subject, opts)
}

/// Nmap's integer percent: `(int)(accuracy * 100)`, truncated.
pub fn percent(accuracy: f64) -> u8 {
    (accuracy * 100.0).clamp(0.0, 100.0) as u8
}

fn os_class(c: &crate::db::RefClass, accuracy: f64) -> portolan_model::OsClass {
    portolan_model::OsClass {
        kind: Some(c.kind.clone()),
        vendor: c.vendor.clone(),
        osfamily: c.family.clone(),
        osgen: c.gen.clone(),
        accuracy: percent(accuracy),
        cpes: c.cpes.clone(),
    }
}

/// The verdict's `osmatch` entries as Nmap writes them: name, percent, line, and every
/// class of the reference with the match's accuracy and its CPEs.
pub fn to_model(db: &OsDb, verdict: &Verdict) -> Vec<portolan_model::OsMatch> {
    verdict
        .matches
        .iter()
        .filter_map(|m| {
            let p = db.prints.get(m.print)?;
            Some(portolan_model::OsMatch {
                name: p.name.clone(),
                accuracy: percent(m.accuracy),
                line: p.line,
                classes: p.classes.iter().map(|c| os_class(c, m.accuracy)).collect(),
            })
        })
        .collect()
}

/// Nmap's OS classification (FingerPrintResults::populateClassification): the distinct
/// classes of its whole list, best first; once there is a perfect match, only classes of
/// perfect matches. Empty when the list overflowed with perfect matches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classification {
    pub classes: Vec<portolan_model::OsClass>,
    /// How many of `classes` come from perfect matches.
    pub perfect: usize,
    /// Nmap's class list overflowed while still on perfect matches.
    pub too_many: bool,
}

pub fn classify(db: &OsDb, verdict: &Verdict) -> Classification {
    let mut out = Classification::default();
    if verdict.outcome == Outcome::TooMany && verdict.perfect >= MAX_RESULTS {
        out.too_many = true;
        return out;
    }
    let mut seen: Vec<&crate::db::RefClass> = Vec::new();
    for (n, m) in verdict.all.iter().enumerate() {
        let Some(p) = db.prints.get(m.print) else {
            continue;
        };
        let is_perfect = n < verdict.perfect;
        for c in &p.classes {
            let dup = seen.iter().any(|s| {
                s.vendor == c.vendor && s.family == c.family && s.kind == c.kind && s.gen == c.gen
            });
            if dup {
                continue;
            }
            if out.classes.len() == MAX_RESULTS {
                out.too_many = is_perfect;
                return out;
            }
            if out.perfect > 0 && !is_perfect {
                return out;
            }
            seen.push(c);
            out.classes.push(os_class(c, m.accuracy));
            if is_perfect {
                out.perfect += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Alt, Expr};
    use crate::fingerprint::{self, Test};

    fn installed() -> Option<OsDb> {
        let text = std::fs::read_to_string("/usr/share/nmap/nmap-os-db").ok()?;
        Some(OsDb::parse(&text).0)
    }

    /// A value taken from one of `e`'s alternatives that satisfies it (None when none
    /// does, e.g. `<0`, or a literal that Nmap 7.93's rules spoil, as `0` in `0|5-8`).
    fn value_in(e: &Expr) -> Option<String> {
        e.alts
            .iter()
            .filter_map(|a| match a {
                Alt::Str(s) => Some(s.clone()),
                Alt::Range(a, b) if a <= b => Some(format!("{:X}", a + (b - a) / 2)),
                Alt::Gt(n) => n.checked_add(1).map(|v| format!("{v:X}")),
                Alt::Lt(n) => n.checked_sub(1).map(|v| format!("{v:X}")),
                _ => None,
            })
            .find(|v| e.matches(v))
    }

    fn subject_from(p: &RefPrint) -> Fingerprint {
        Fingerprint {
            tests: p
                .tests
                .iter()
                .map(|t| Test {
                    name: t.name.clone(),
                    attrs: t
                        .attrs
                        .iter()
                        .filter_map(|(a, e)| Some((a.clone(), value_in(e)?)))
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn every_reference_scores_one_against_its_own_values() {
        let Some(db) = installed() else {
            eprintln!("no nmap-os-db: skipped");
            return;
        };
        for p in &db.prints {
            let subject = subject_from(p);
            let acc = accuracy(p, &subject, &db.match_points);
            assert_eq!(acc, 1.0, "{} (line {})", p.name, p.line);
        }
    }

    #[test]
    fn accuracy_counts_points_of_shared_attributes() {
        let (db, errors) = OsDb::parse(
            "MatchPoints\nT1(R=100%DF=20%T=15)\nIE(R=50%CD=100)\n\n\
             Fingerprint A\nClass X | Y | | general purpose\nT1(DF=Y%T=3B-45)\nIE(CD=S)\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let p = &db.prints[0];
        let fp = |text: &str| fingerprint::parse(text).unwrap();
        // DF (20) matches, T (15) does not; R is not in the reference (Nmap 7.93 does not
        // imply it) and IE is missing from the subject: neither counts.
        let acc = accuracy(p, &fp("T1(R=Y%DF=Y%T=80)"), &db.match_points);
        assert_eq!(acc, 20.0 / 35.0);
        assert_eq!(accuracy(p, &fp("T1(R=Y%DF=Y%T=40)"), &db.match_points), 1.0);
        // Nothing in common: 0.
        assert_eq!(accuracy(p, &fp("U1(R=N)"), &db.match_points), 0.0);
    }

    fn unescape(s: &str) -> String {
        s.replace("&#xa;", "\n")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
    }

    fn escape(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let key = format!(" {name}=\"");
        let start = tag.find(&key).unwrap() + key.len();
        let len = tag[start..].find('"').unwrap();
        &tag[start..start + len]
    }

    /// Our osmatch as Nmap writes it, classes included.
    fn render(m: &portolan_model::OsMatch) -> String {
        let mut s = format!(
            "<osmatch name=\"{}\" accuracy=\"{}\" line=\"{}\">\n",
            escape(&m.name),
            m.accuracy,
            m.line
        );
        for c in &m.classes {
            s.push_str(&format!(
                "<osclass type=\"{}\" vendor=\"{}\" osfamily=\"{}\"",
                escape(c.kind.as_deref().unwrap_or("")),
                escape(&c.vendor),
                escape(&c.osfamily)
            ));
            if let Some(g) = &c.osgen {
                s.push_str(&format!(" osgen=\"{}\"", escape(g)));
            }
            s.push_str(&format!(" accuracy=\"{}\"", c.accuracy));
            if c.cpes.is_empty() {
                s.push_str("/>\n");
            } else {
                s.push('>');
                for cpe in &c.cpes {
                    s.push_str(&format!("<cpe>{}</cpe>", escape(cpe)));
                }
                s.push_str("</osclass>\n");
            }
        }
        s.push_str("</osmatch>");
        s
    }

    /// Every `<os>` block of an Nmap XML file: our verdict on its fingerprint must give the
    /// same osmatch elements, byte for byte. Returns how many blocks were checked.
    fn check_nmap_xml(db: &OsDb, xml: &str, guess: bool) -> usize {
        let mut checked = 0;
        for block in xml.split("<os>").skip(1) {
            let block = block.split("</os>").next().unwrap();
            let Some(fp_at) = block.find("<osfingerprint") else {
                continue;
            };
            let fp_text = unescape(attr(&block[fp_at..], "fingerprint"));
            let subject = fingerprint::parse(&fp_text).unwrap();
            let verdict = judge(
                db,
                &subject,
                &JudgeOptions {
                    guess,
                    debug: false,
                },
            );
            let ours: Vec<String> = to_model(db, &verdict).iter().map(render).collect();
            let theirs: Vec<String> = block
                .match_indices("<osmatch ")
                .map(|(i, _)| {
                    let rest = &block[i..];
                    let end = rest.find("</osmatch>").unwrap() + "</osmatch>".len();
                    rest[..end].to_string()
                })
                .collect();
            assert!(!theirs.is_empty());
            assert_eq!(ours, theirs);
            checked += 1;
        }
        checked
    }

    #[test]
    fn loopback_verdict_is_nmaps() {
        let Some(db) = installed() else {
            return;
        };
        // `nmap -O -d --osscan-guess -sSU -p T:18080,1,U:38867 127.0.0.1 -oX`, our machine.
        let xml = include_str!("../testdata/loopback-nmap.xml");
        assert_eq!(check_nmap_xml(&db, xml, true), 1);
    }

    #[test]
    fn lab_verdicts_are_nmaps() {
        let Some(db) = installed() else {
            return;
        };
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../portolan-report/tests/data/"
        );
        let mut checked = 0;
        for (file, guess) in [
            ("nmap-os-a.xml", false),
            ("nmap-os-v.xml", true),
            ("nmap-os-trace.xml", false),
        ] {
            let xml = std::fs::read_to_string(format!("{dir}{file}")).unwrap();
            checked += check_nmap_xml(&db, &xml, guess);
        }
        // One host in each of the first two scans, two in the last.
        assert_eq!(checked, 4);
    }

    #[test]
    fn verdict_rules() {
        let (db, _) = OsDb::parse(
            "MatchPoints\nT1(R=100%DF=20%T=15)\n\n\
             Fingerprint Same\nClass X | Y | | general purpose\nT1(DF=N)\n\n\
             Fingerprint Same\nClass X | Y | | general purpose\nT1(R=Y%DF=Y%T=40)\n\n\
             Fingerprint Other\nClass X | Z | 1 | router\nCPE cpe:/o:x:z\nT1(R=Y%DF=Y%T=41)\n",
        );
        let subject = fingerprint::parse("T1(R=Y%DF=Y%T=40)").unwrap();
        let v = judge(&db, &subject, &JudgeOptions::default());
        assert_eq!(v.outcome, Outcome::Perfect);
        assert_eq!(v.perfect, 1);
        // "Same" kept once, its better entry; "Other" (120/135) is below the perfect one
        // and not listed in XML, but is in Nmap's list.
        assert_eq!(
            v.matches,
            [Match {
                print: 1,
                accuracy: 1.0
            }]
        );
        assert_eq!(v.all.len(), 2);
        assert_eq!(v.all[1].print, 2);
        let model = to_model(&db, &v);
        assert_eq!(model[0].accuracy, 100);
        assert_eq!(model[0].line, 8);
        let c = classify(&db, &v);
        assert_eq!((c.classes.len(), c.perfect), (1, 1));

        let guesses = fingerprint::parse("T1(R=Y%DF=Y%T=42)").unwrap();
        let v = judge(&db, &guesses, &JudgeOptions::default());
        assert_eq!(v.outcome, Outcome::Guesses);
        assert_eq!(v.matches.len(), 2);
        assert!(v.shows_guesses(
            &JudgeOptions {
                guess: true,
                debug: false
            },
            true
        ));
        assert!(!v.shows_guesses(&JudgeOptions::default(), true));
        assert_eq!(percent(v.matches[0].accuracy), 88);
        assert_eq!(classify(&db, &v).classes.len(), 2);

        let none = fingerprint::parse("T1(R=N)").unwrap();
        let v = judge(&db, &none, &JudgeOptions::default());
        assert_eq!(v.outcome, Outcome::NoMatch);
        assert!(v.matches.is_empty());
    }

    #[test]
    fn best_try_is_nmaps() {
        let (db, _) = OsDb::parse(
            "MatchPoints\nT1(R=100%DF=20%T=15)\n\n\
             Fingerprint A\nT1(R=Y%DF=Y%T=40)\n",
        );
        let m = Matcher::new(&db);
        let fp = |t: &str| fingerprint::parse(t).unwrap();
        let opts = JudgeOptions::default();
        let (near, exact, none) = (
            fp("T1(R=Y%DF=Y%T=41)"),
            fp("T1(R=Y%DF=Y%T=40)"),
            fp("T1(R=N)"),
        );
        let (i, v) = m
            .judge_tries(&[none.clone(), near.clone(), exact.clone()], &opts)
            .unwrap();
        assert_eq!((i, v.outcome), (2, Outcome::Perfect));
        // Equal bests: the first try stays.
        let (i, _) = m
            .judge_tries(&[near.clone(), near, none.clone()], &opts)
            .unwrap();
        assert_eq!(i, 0);
        let (i, v) = m.judge_tries(&[none.clone(), none], &opts).unwrap();
        assert_eq!((i, v.outcome), (0, Outcome::NoMatch));
        assert!(m.judge_tries(&[], &opts).is_none());
    }

    #[test]
    fn many_perfect_matches_are_too_many() {
        let mut text = String::from("MatchPoints\nT1(R=100%DF=20)\n\n");
        for i in 0..9 {
            text.push_str(&format!("Fingerprint OS {i}\nT1(DF=Y)\n\n"));
        }
        let (db, _) = OsDb::parse(&text);
        let subject = fingerprint::parse("T1(R=Y%DF=Y)").unwrap();
        let v = judge(&db, &subject, &JudgeOptions::default());
        assert_eq!(
            (v.outcome, v.perfect, v.matches.len()),
            (Outcome::TooMany, 9, 0)
        );
        let v = judge(
            &db,
            &subject,
            &JudgeOptions {
                guess: false,
                debug: true,
            },
        );
        assert_eq!((v.outcome, v.matches.len()), (Outcome::Perfect, 9));
    }

    /// Not an assertion on time: prints how long one judgement takes (run with --release
    /// --ignored --nocapture).
    #[test]
    #[ignore]
    fn judging_speed() {
        let Some(db) = installed() else {
            return;
        };
        let xml = include_str!("../testdata/loopback-nmap.xml");
        let at = xml.find("fingerprint=\"").unwrap() + 13;
        let end = xml[at..].find('"').unwrap();
        let subject = fingerprint::parse(&unescape(&xml[at..at + end])).unwrap();
        let start = std::time::Instant::now();
        let v = judge(&db, &subject, &JudgeOptions::default());
        let once = start.elapsed();
        let start = std::time::Instant::now();
        let m = Matcher::new(&db);
        eprintln!("prepare: {:?}", start.elapsed());
        let start = std::time::Instant::now();
        let rounds: u32 = std::env::var("OSDB_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(10);
        for _ in 0..rounds {
            std::hint::black_box(m.judge(&subject, &JudgeOptions::default()));
        }
        eprintln!(
            "judge: {once:?} (with preparation), {:?} per subject prepared, {} matches",
            start.elapsed() / rounds,
            v.matches.len()
        );
    }
}
