//! Nmap's second-generation OS detection (the Nmap book, "Remote OS Detection"), as pure
//! functions and data: no sockets, no clock.
//!
//! - [`probes`]: the sixteen probes (SEQ 1-6, IE 1-2, ECN, T2-T7, U1) as Nmap builds them,
//!   and which probe a received packet answers;
//! - [`analyse`]: the tests (SEQ, OPS, WIN, ECN, T1-T7, U1, IE) computed from the replies,
//!   as a subject [`fingerprint::Fingerprint`], with the sequence reports Nmap prints;
//! - [`fingerprint`]: fingerprints in Nmap's text form (the `OS:` lines);
//! - [`db`]: the `nmap-os-db` reader (MatchPoints, Fingerprint/Class/CPE entries);
//! - [`matching`]: scoring a subject against the references, Nmap's accuracy and verdicts;
//! - [`synth`]: a simulated TCP/IP stack answering as a reference fingerprint says (tests);
//! - [`coarse`]: the honest coarse guess from our own data when there is no nmap-os-db.

pub mod analyse;
pub mod coarse;
pub mod db;
pub mod fingerprint;
pub mod matching;
pub mod probes;
pub mod synth;
