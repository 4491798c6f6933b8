//! Without nmap-os-db (or with --builtin-data): a coarse class from our own knowledge of
//! initial TTLs, windows and option orders, always labelled as a coarse guess.
// OWNER: helper "os-db".
