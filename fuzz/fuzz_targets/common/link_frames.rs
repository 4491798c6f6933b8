//! Shared by the link-layer ping targets (`arp_frames`, `nd_frames`): frames are the input
//! split at 0xFE bytes, fed to the ping between polls on a clock that jumps to each
//! `WaitUntil`. Returns whether the ping finished; panics if a wait does not move the clock
//! or the ping neither finished nor ran out of input.

use portolan_engine::core::Poll;
use std::time::Instant;

pub fn feed_between_polls<P, Q>(
    ping: &mut P,
    data: &[u8],
    mut poll: impl FnMut(&mut P, Instant) -> Poll<Q>,
    mut feed: impl FnMut(&mut P, Instant, &[u8]),
) -> bool {
    let mut now = Instant::now();
    let mut chunks = data.split(|&b| b == 0xfe).peekable();
    for _ in 0..10_000 {
        if let Some(chunk) = chunks.next() {
            feed(ping, now, chunk);
        }
        match poll(ping, now) {
            Poll::Send(_) => {}
            Poll::WaitUntil(t) => {
                assert!(t > now);
                now = t;
            }
            Poll::WaitForInput => panic!("link pings never wait for input"),
            Poll::Done => return true,
        }
    }
    assert!(chunks.peek().is_some(), "ping did not finish");
    false
}
