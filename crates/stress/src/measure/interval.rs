//! Per-second latency intervals of the measured phase (for `--hdr-log` and `--csv`),
//! serialised as each second ends.

use std::time::Instant;

use hdrhistogram::Histogram;

use ringport_report::histogram::{deserialize, new_histogram, serialize};

/// One second of [`Intervals`], serialised (HdrHistogram V2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedInterval {
    /// Seconds since the measured phase began (interval `second .. second + 1`).
    pub second: u64,
    /// Corrected latency, µs.
    pub latency: Vec<u8>,
    /// Uncorrected latency, µs.
    pub uncorrected: Vec<u8>,
}

/// Latency histograms per second of the measured phase, for the interval log. Recording adds
/// to the current second's histograms; the first value of a later second serialises them into
/// [`closed`](Self::closed) and starts again (one allocation per second, none per message).
#[derive(Debug, Clone)]
pub struct Intervals {
    start: Instant,
    current: u64,
    latency: Histogram<u64>,
    uncorrected: Histogram<u64>,
    /// The seconds done so far, in the order they were closed (one thread's are in time order;
    /// merged threads' are not: see [`Intervals::seconds`]).
    pub closed: Vec<ClosedInterval>,
}

impl Intervals {
    /// Intervals of one second from `start`.
    pub fn new(start: Instant) -> Intervals {
        Intervals {
            start,
            current: 0,
            latency: new_histogram(),
            uncorrected: new_histogram(),
            closed: Vec::new(),
        }
    }

    /// When the measured phase began: second 0 starts here.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Adds another thread's seconds (closed or not) to these; the seconds are summed when
    /// read ([`seconds`](Self::seconds)).
    pub fn merge(&mut self, theirs: &Intervals) {
        self.closed.extend(theirs.closed.iter().cloned());
        let mut pending = theirs.clone();
        pending.closed.clear();
        pending.close();
        self.closed.extend(pending.closed);
    }

    pub(super) fn record(&mut self, now: Instant, corrected: u64, uncorrected: u64) {
        let second = now.saturating_duration_since(self.start).as_secs();
        if second != self.current {
            self.close();
            self.current = second;
        }
        self.latency.saturating_record(corrected);
        self.uncorrected.saturating_record(uncorrected);
    }

    /// Serialises the current second into `closed` (if it holds anything) and empties it.
    pub fn close(&mut self) {
        if self.latency.is_empty() {
            return;
        }
        self.closed.push(ClosedInterval {
            second: self.current,
            latency: serialize(&self.latency),
            uncorrected: serialize(&self.uncorrected),
        });
        self.latency.reset();
        self.uncorrected.reset();
    }

    /// Every second that holds values (the current one included), in time order, with the
    /// histograms of all the threads merged in added together: `(second, corrected,
    /// uncorrected)`. Decodes one second at a time.
    ///
    /// # Panics
    ///
    /// Never for intervals recorded by this module (their serialisation always decodes).
    pub fn seconds(&self) -> impl Iterator<Item = (u64, Histogram<u64>, Histogram<u64>)> {
        let mut closed = self.closed.clone();
        if !self.latency.is_empty() {
            closed.push(ClosedInterval {
                second: self.current,
                latency: serialize(&self.latency),
                uncorrected: serialize(&self.uncorrected),
            });
        }
        closed.sort_by_key(|c| c.second);
        let mut closed = closed.into_iter().peekable();
        std::iter::from_fn(move || {
            let first = closed.next()?;
            let mut latency = deserialize(&first.latency).expect("own serialisation");
            let mut uncorrected = deserialize(&first.uncorrected).expect("own serialisation");
            while let Some(c) = closed.next_if(|c| c.second == first.second) {
                latency
                    .add(deserialize(&c.latency).expect("own serialisation"))
                    .expect("same bounds");
                uncorrected
                    .add(deserialize(&c.uncorrected).expect("own serialisation"))
                    .expect("same bounds");
            }
            Some((first.second, latency, uncorrected))
        })
    }
}
