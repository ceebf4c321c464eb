//! Opening connections: the socket each connect uses, and which of a thread's first connects
//! are due under `--connect-rate`.
//!
//! The whole client opens at most `--connect-rate` connections per second: connection `g`
//! (global index, counted from the segment's first) is due at its place in that pace, whichever
//! thread holds it, so the threads together keep the rate without talking to each other.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::plan::send_times::Pacer;

/// A TCP socket (MPTCP when `mptcp`) for a connect to `addr`: no Nagle delay, closed with a
/// reset when `linger0` (no `TIME_WAIT` left on this side), bound to `source` when given (the
/// pre-flight spreads connections over source addresses when one cannot hold them all).
///
/// # Errors
///
/// The socket could not be created, set up or bound.
pub(super) fn open_socket(
    addr: SocketAddr,
    linger0: bool,
    source: Option<IpAddr>,
    mptcp: bool,
) -> io::Result<Socket> {
    // Close-on-exec (socket2 sets it on every socket it makes).
    let s = ringport_port::os::stream_socket(addr, mptcp)?;
    s.set_tcp_nodelay(true)?;
    if linger0 {
        s.set_linger(Some(Duration::ZERO))?;
    }
    if let Some(ip) = source {
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    Ok(s)
}

/// The source address of connection `global`: the pre-flight's addresses in turn, none when
/// it gave none.
pub(super) fn source_of(global: usize, sources: &[IpAddr]) -> Option<IpAddr> {
    if sources.is_empty() {
        None
    } else {
        Some(sources[global % sources.len()])
    }
}

/// A thread's first connects, in order, each due at its global place in the client-wide pace.
#[derive(Debug, Clone)]
pub(super) struct ConnectQueue {
    pacer: Pacer,
    /// Global index of the segment's first connection: the pace counts from it.
    first: usize,
    /// Global index of each of the thread's connections, by local index.
    globals: Vec<usize>,
    /// Local index of the next connect to start.
    next: usize,
}

impl ConnectQueue {
    /// Connects of `globals` (the thread's connections, by local index) paced at `rate` per
    /// second from `start`, the pace counted from global index `first`.
    pub(super) fn new(start: Instant, rate: f64, first: usize, globals: Vec<usize>) -> Self {
        ConnectQueue {
            pacer: Pacer::new(start, rate),
            first,
            globals,
            next: 0,
        }
    }

    /// The local index of the next connect due by `now`, taken; `None` if none is due yet.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let due = self.next_at()?;
        if due > now {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }

    /// When the next connect is due; `None` once every connect was taken.
    pub(super) fn next_at(&self) -> Option<Instant> {
        let global = *self.globals.get(self.next)?;
        Some(self.pacer.due((global - self.first) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn connects_are_due_at_their_global_place_in_the_pace() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // 1000/s over the client; this thread holds every other connection of a segment that
        // starts at global 10.
        let mut q = ConnectQueue::new(t0, 1000.0, 10, vec![10, 12, 14]);
        assert_eq!(q.next_at(), Some(t0));
        assert_eq!(q.pop_due(t0), Some(0));
        assert_eq!(q.pop_due(t0), None, "global 12 is due 2 ms in");
        assert_eq!(q.next_at(), Some(t0 + ms(2)));
        assert_eq!(q.pop_due(t0 + ms(1)), None);
        // Late: everything due by then comes at once, in order.
        assert_eq!(q.pop_due(t0 + ms(10)), Some(1));
        assert_eq!(q.pop_due(t0 + ms(10)), Some(2));
        assert_eq!(q.pop_due(t0 + ms(10)), None);
        assert_eq!(q.next_at(), None);
    }

    #[test]
    fn sources_are_taken_in_turn() {
        let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(source_of(5, &[]), None);
        assert_eq!(source_of(0, &[a, b]), Some(a));
        assert_eq!(source_of(1, &[a, b]), Some(b));
        assert_eq!(source_of(4, &[a, b]), Some(a));
    }

    #[test]
    fn sockets_are_set_up_as_asked() {
        let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
        let s = open_socket(server, false, None, false).unwrap();
        assert!(s.tcp_nodelay().unwrap());
        assert_eq!(s.linger().unwrap(), None);
        let s = open_socket(server, true, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), false).unwrap();
        assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
        let local = s.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_ne!(local.port(), 0, "bound to a source address");
    }
}
