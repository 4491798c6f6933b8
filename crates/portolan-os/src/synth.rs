//! A simulated TCP/IP stack that answers Nmap's OS probes as a reference fingerprint
//! describes (values chosen inside each expression), so the matcher and the OS engine can
//! be tested without a network.
// OWNER: helper "os-synth".
