//! Scoring a subject fingerprint against the references, as Nmap's `compare_fingerprints`
//! and `match_fingerprint` do, and Nmap's verdict on the result.
// OWNER: helper "os-db".
