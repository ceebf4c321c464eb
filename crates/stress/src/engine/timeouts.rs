//! When the client loop wakes besides completions: the periodic `--timeout` scan, and how early
//! before a scheduled send it stops sleeping and polls.

use std::time::{Duration, Instant};

use ringport_port::Backend;

/// How often connections are scanned for `--timeout`: a tenth of the timeout, at least every
/// 100 ms and at most every millisecond.
pub(super) fn scan_interval(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(100))
}

/// The periodic timeout scan: due once per [`scan_interval`], counted from the last scan.
#[derive(Debug, Clone, Copy)]
pub(super) struct TimeoutScan {
    interval: Duration,
    next: Instant,
}

impl TimeoutScan {
    /// A scan for `timeout`, first due one interval after `now`.
    pub(super) fn new(timeout: Duration, now: Instant) -> TimeoutScan {
        let interval = scan_interval(timeout);
        TimeoutScan {
            interval,
            next: now + interval,
        }
    }

    /// When the next scan is due.
    pub(super) fn next(&self) -> Instant {
        self.next
    }

    /// Whether a scan is due at `now`; if so, the next one is set an interval later.
    pub(super) fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.interval;
        true
    }
}

/// How long before a scheduled send the thread stops sleeping and polls: `--spin-us` if given,
/// else the timer slack of a kernel wait (about 50 us), the same for io_uring's and epoll's
/// (`epoll_pwait2`, kept to the nanosecond); none on IOCP, whose waits are whole milliseconds
/// (polling a millisecond before every send would keep the thread busy; the report warns
/// instead).
pub(super) fn spin_margin(spin: Option<Duration>, backend: Backend) -> Duration {
    if let Some(spin) = spin {
        return spin;
    }
    match backend {
        Backend::Uring | Backend::Epoll => Duration::from_micros(60),
        Backend::Iocp => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_interval_is_a_tenth_of_the_timeout_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(scan_interval(ms(500)), ms(50));
        assert_eq!(scan_interval(Duration::from_secs(10)), ms(100));
        assert_eq!(scan_interval(ms(2)), ms(1));
    }

    #[test]
    fn a_scan_is_due_once_per_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut scan = TimeoutScan::new(ms(200), t0);
        assert_eq!(scan.next(), t0 + ms(20));
        assert!(!scan.due(t0 + ms(19)));
        assert!(scan.due(t0 + ms(25)));
        assert_eq!(
            scan.next(),
            t0 + ms(45),
            "counted from the scan, not the schedule"
        );
        assert!(!scan.due(t0 + ms(30)));
        assert!(scan.due(t0 + ms(45)));
    }

    #[test]
    fn spin_margin_follows_the_flag_then_the_backend() {
        let us = Duration::from_micros;
        assert_eq!(spin_margin(Some(us(5)), Backend::Iocp), us(5));
        assert_eq!(spin_margin(None, Backend::Epoll), us(60));
        assert_eq!(spin_margin(None, Backend::Uring), us(60));
        assert_eq!(spin_margin(None, Backend::Iocp), Duration::ZERO);
    }
}
