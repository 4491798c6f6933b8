//! The one answer every sans-I/O core gives its driver: send this, wait, or stop.

use std::time::Instant;

/// What a core wants next. Drivers call `poll(now)` until it stops saying `Send`, then
/// sleep until the deadline or until input (a packet, an outcome) arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll<P> {
    /// Send this probe now.
    Send(P),
    /// Nothing to send before this instant (a timeout or the pacer); input may arrive.
    WaitUntil(Instant),
    /// Nothing to send until some input arrives (an outstanding probe's outcome).
    WaitForInput,
    /// All work is done.
    Done,
}

impl<P> Poll<P> {
    /// The same decision with the probe mapped.
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> Poll<Q> {
        match self {
            Poll::Send(p) => Poll::Send(f(p)),
            Poll::WaitUntil(t) => Poll::WaitUntil(t),
            Poll::WaitForInput => Poll::WaitForInput,
            Poll::Done => Poll::Done,
        }
    }
}
