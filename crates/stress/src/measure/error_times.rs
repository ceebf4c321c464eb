//! Errors by the second they happened in (the result's `errors_over_time`): counted per second
//! of the measured phase, the errors before it in one count of their own.

use std::time::Instant;

use ringport_report::errors::{ErrorCounts, ErrorKind, ErrorSecond};

/// Errors per second of the measured phase. Until [`start`](Self::start) is known (while
/// connecting) every error counts as before it; a second's counts are allocated when its first
/// error comes, so a run without errors allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct ErrorTimes {
    start: Option<Instant>,
    before: ErrorCounts,
    seconds: Vec<ErrorCounts>,
}

impl ErrorTimes {
    /// Second 0 begins at `start` (the start of the measured phase, after the warm-up).
    pub fn start(&mut self, start: Instant) {
        self.start = Some(start);
    }

    /// Counts an error of `kind` that happened at `at`.
    pub fn record(&mut self, at: Instant, kind: ErrorKind) {
        match self.start.filter(|&s| at >= s) {
            None => self.before.add(kind),
            Some(s) => {
                let second = at.duration_since(s).as_secs() as usize;
                if self.seconds.len() <= second {
                    self.seconds.resize(second + 1, ErrorCounts::default());
                }
                self.seconds[second].add(kind);
            }
        }
    }

    /// Adds another thread's counts (the same start) to these.
    pub fn merge(&mut self, other: &ErrorTimes) {
        if self.start.is_none() {
            self.start = other.start;
        }
        self.before.merge(&other.before);
        if self.seconds.len() < other.seconds.len() {
            self.seconds
                .resize(other.seconds.len(), ErrorCounts::default());
        }
        for (a, b) in self.seconds.iter_mut().zip(&other.seconds) {
            a.merge(b);
        }
    }

    /// The seconds with errors, the ones before the measured phase first.
    pub fn seconds(&self) -> Vec<ErrorSecond> {
        let before = (self.before.total() > 0).then_some(ErrorSecond {
            second: None,
            errors: self.before,
        });
        before
            .into_iter()
            .chain(
                self.seconds
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.total() > 0)
                    .map(|(s, c)| ErrorSecond {
                        second: Some(s as u64),
                        errors: *c,
                    }),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn errors_fall_in_their_second_or_before() {
        let t0 = Instant::now();
        let mut a = ErrorTimes::default();
        a.record(t0, ErrorKind::ConnectFailed);
        let start = t0 + Duration::from_secs(1);
        a.start(start);
        a.record(t0 + Duration::from_millis(500), ErrorKind::Reset);
        a.record(start + Duration::from_millis(2_500), ErrorKind::Timeout);
        let mut b = ErrorTimes::default();
        b.start(start);
        b.record(start + Duration::from_millis(2_900), ErrorKind::Timeout);
        b.record(start, ErrorKind::Mismatch);
        a.merge(&b);
        let s = a.seconds();
        let summary: Vec<(Option<u64>, u64)> =
            s.iter().map(|e| (e.second, e.errors.total())).collect();
        assert_eq!(summary, [(None, 2), (Some(0), 1), (Some(2), 2)]);
        assert_eq!(s[2].errors.get(ErrorKind::Timeout), 2);
        assert_eq!(s[1].errors.get(ErrorKind::Mismatch), 1);
        assert!(ErrorTimes::default().seconds().is_empty());
    }
}
