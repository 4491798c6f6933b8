//! Everything that touches sockets and the clock.
pub mod connect;
pub mod dns;
pub mod driver;
pub mod link;
pub mod netif;
pub mod ping;
pub mod raw;
pub mod sys;
