//! When the client loop wakes besides completions: the periodic `--timeout` scan, and how early
//! before a scheduled send it stops sleeping and polls.

use std::time::{Duration, Instant};

/// How often connections are scanned for `--timeout`: a tenth of the timeout, at least every
/// 100 ms and at most every millisecond; every 100 ms with no timeout (0), which finds nothing.
pub(super) fn scan_interval(timeout: Duration) -> Duration {
    if timeout.is_zero() {
        return Duration::from_millis(100);
    }
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
/// else, on a port whose waits are kept finer than a microsecond ([`Port::timer_resolution`]:
/// io_uring, and epoll with `epoll_pwait2`), the timer slack of a kernel wait (about 50 us);
/// none on a port whose waits are whole milliseconds (IOCP: polling a millisecond before every
/// send would keep the thread busy; the report warns instead).
///
/// [`Port::timer_resolution`]: ringport_port::Port::timer_resolution
pub(crate) fn spin_margin(spin: Option<Duration>, timer_resolution: Duration) -> Duration {
    match spin {
        Some(spin) => spin,
        None if timer_resolution <= Duration::from_micros(1) => Duration::from_micros(60),
        None => Duration::ZERO,
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
        assert_eq!(
            scan_interval(Duration::ZERO),
            ms(100),
            "no timeout: a rare scan"
        );
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
        let ms = Duration::from_millis;
        assert_eq!(spin_margin(Some(us(5)), ms(1)), us(5));
        assert_eq!(spin_margin(None, Duration::from_nanos(1)), us(60));
        assert_eq!(spin_margin(None, ms(1)), Duration::ZERO);
    }
}
