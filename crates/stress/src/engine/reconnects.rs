//! Reconnects (`--messages-per-connection`): connections whose cycle ended, and those queued to
//! connect again at the thread's share of `--connect-rate`.

use std::collections::VecDeque;
use std::time::Instant;

use crate::plan::reconnect::ReconnectPacer;

/// A thread's reconnects: what ended, what waits for its connect, and the pace.
#[derive(Debug)]
pub(super) struct Reconnects {
    /// Connections whose close was submitted (or that failed without a socket), to be reopened
    /// or left closed by the load loop.
    pub(super) ended: Vec<usize>,
    /// Reopened connections waiting for their connect's turn, first in first out.
    queue: VecDeque<usize>,
    pacer: ReconnectPacer,
}

impl Reconnects {
    /// This thread's share of `connect_rate` over `threads` threads.
    pub(super) fn thread_rate(connect_rate: f64, threads: usize) -> f64 {
        connect_rate / threads.max(1) as f64
    }

    /// Reconnects paced at `rate` per second from `start`.
    pub(super) fn new(start: Instant, rate: f64) -> Reconnects {
        Reconnects {
            ended: Vec::new(),
            queue: VecDeque::new(),
            pacer: ReconnectPacer::new(start, rate),
        }
    }

    /// Starts the pace again from `start` (the load's start), keeping what is listed.
    pub(super) fn restart(&mut self, start: Instant, rate: f64) {
        self.pacer = ReconnectPacer::new(start, rate);
    }

    /// Queues reopened connection `i` for a connect.
    pub(super) fn queue(&mut self, i: usize) {
        self.queue.push_back(i);
    }

    /// The next queued connection whose connect may start at `now`, taken with its slot of the
    /// pace; `None` if none is queued or the pace does not allow one yet.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<usize> {
        if self.queue.is_empty() || self.pacer.next() > now {
            return None;
        }
        self.pacer.take(now);
        self.queue.pop_front()
    }

    /// When the next queued connect may start; `None` with nothing queued.
    pub(super) fn next_at(&self) -> Option<Instant> {
        (!self.queue.is_empty()).then(|| self.pacer.next())
    }

    /// Empties the queue (the run is stopping): the connections that were waiting.
    pub(super) fn abandon(&mut self) -> impl Iterator<Item = usize> + '_ {
        self.queue.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn queued_connects_start_in_order_at_the_pace() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Reconnects::new(t0, 100.0);
        assert_eq!(r.pop_due(t0), None, "nothing queued");
        assert_eq!(r.next_at(), None);
        r.queue(3);
        r.queue(1);
        assert_eq!(r.next_at(), Some(t0));
        assert_eq!(r.pop_due(t0), Some(3));
        assert_eq!(r.pop_due(t0), None, "the next slot is 10 ms later");
        assert_eq!(r.next_at(), Some(t0 + ms(10)));
        assert_eq!(r.pop_due(t0 + ms(10)), Some(1));
        assert_eq!(r.next_at(), None);
    }

    #[test]
    fn stopping_abandons_what_waits() {
        let t0 = Instant::now();
        let mut r = Reconnects::new(t0, 1.0);
        r.queue(0);
        r.queue(2);
        assert_eq!(r.pop_due(t0), Some(0));
        assert_eq!(r.abandon().collect::<Vec<_>>(), vec![2]);
        assert_eq!(r.pop_due(t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn each_thread_takes_its_share_of_the_rate() {
        assert_eq!(Reconnects::thread_rate(1000.0, 4), 250.0);
        assert_eq!(Reconnects::thread_rate(10.0, 0), 10.0);
    }
}
