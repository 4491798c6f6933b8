//! The sans-I/O state machines: they take `now` and received packets and say what to send
//! next. They never read a clock or touch a socket.
pub mod arp_ping;
pub mod link_ping;
pub mod nd_ping;
pub mod os;
pub mod permutation;
pub mod poll;
pub mod probe;
pub mod scan;
pub mod scheduler;
pub mod trace;
pub use poll::Poll;
