//! The tests computed from the replies (osscan2.cc's HostOsScanStats and makeFP), as a
//! subject fingerprint plus the sequence reports Nmap prints (TCP sequence prediction, IP
//! ID sequence, TCP timestamps, uptime) and the network distance.
// OWNER: helper "os-probes".
