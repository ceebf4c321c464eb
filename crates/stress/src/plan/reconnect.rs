//! Reconnect pacing (`--messages-per-connection N`): when a slot whose connection closed may
//! connect again, at its thread's share of `--connect-rate`.

use std::time::{Duration, Instant};

/// Paces one thread's reconnects at its share of `--connect-rate`: starts are at least one
/// interval apart on average, with no catching up on time spent idle beyond one interval (a
/// slot that waited for its echoes does not earn a burst).
#[derive(Debug, Clone, Copy)]
pub struct ReconnectPacer {
    interval: Duration,
    next: Instant,
}

impl ReconnectPacer {
    /// `rate` connects per second from `start` (positive and finite).
    pub fn new(start: Instant, rate: f64) -> ReconnectPacer {
        ReconnectPacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: start,
        }
    }

    /// When the next connect may start.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// Takes the slot of a connect started at `now` (at or after [`next`](Self::next)).
    pub fn take(&mut self, now: Instant) {
        let floor = now.checked_sub(self.interval).unwrap_or(now);
        self.next = self.next.max(floor) + self.interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_are_paced_without_bursts_after_idling() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = ReconnectPacer::new(t0, 100.0);
        assert_eq!(p.next(), t0);
        p.take(t0);
        assert_eq!(p.next(), t0 + ms(10));
        // Started a little late: the next keeps the even pace.
        p.take(t0 + ms(12));
        assert_eq!(p.next(), t0 + ms(20));
        // Idle for a second: at most one interval is made up, not a hundred.
        p.take(t0 + ms(1000));
        assert_eq!(p.next(), t0 + ms(1000));
        p.take(t0 + ms(1000));
        assert_eq!(p.next(), t0 + ms(1010));
    }
}
