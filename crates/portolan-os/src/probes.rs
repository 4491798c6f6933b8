//! The sixteen OS detection probes as Nmap 7.9x builds them (osscan2.cc), and which probe a
//! received packet answers.
// OWNER: helper "os-probes".

/// One OS detection probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OsProbe {
    /// The six TCP sequence probes to the open port, 1..=6 (SEQ, OPS, WIN; the first's
    /// answer is also T1).
    Seq(u8),
    /// ICMP echo 1..=2 (IE).
    Ie(u8),
    /// The ECN SYN to the open port.
    Ecn,
    /// T2..=T7 (T2-T4 to the open port, T5-T7 to the closed one).
    T(u8),
    /// The UDP probe to the closed UDP port.
    U1,
}
