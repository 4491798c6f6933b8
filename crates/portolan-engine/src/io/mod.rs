//! Everything that touches sockets and the clock.
pub mod backend;
pub mod connect;
pub mod dns;
pub mod drive;
pub mod driver;
pub mod dryrun;
pub mod iflist;
pub mod link;
pub mod link_ping;
pub mod linux;
pub mod netif;
pub mod packet_trace;
pub mod ping;
pub mod raw;
pub mod ring;
pub mod sim;
pub mod sys;
