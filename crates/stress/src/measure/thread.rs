//! One client thread's measurements ([`ThreadStats`]): recorded without locks or allocation,
//! merged across threads at the end.
//!
//! Each client thread owns one [`ThreadStats`] and records into it (histograms are allocated
//! once, in [`ThreadStats::new`]); at the end the engine folds them together with
//! [`ThreadStats::merge`] and the report is built from the result. What each figure means is
//! in [`measure`](crate::measure).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringport_report::errors::ErrorCounts;
use ringport_report::fairness::Fairness;
use ringport_report::histogram::{micros, new_histogram};

use super::cpu::{client_bound_warning, ThreadCpu, CLIENT_BOUND_THRESHOLD};
use super::error_times::ErrorTimes;
use super::interval::Intervals;
use crate::error::{ConnError, ErrorKind};
use crate::protocol::echo::Completed;

/// The first error of a run, in detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The connection (0-based, global across threads).
    pub connection: u64,
    /// Its kind.
    pub kind: ErrorKind,
    /// Connection-relative byte offset, if the connection was open.
    pub offset: Option<u64>,
    /// The error's message.
    pub detail: String,
    /// When it was recorded.
    pub at: Instant,
}

/// Everything one client thread measures; merged across threads at the end.
#[derive(Debug, Clone)]
pub struct ThreadStats {
    /// Latency from intended send time (corrected), µs.
    pub latency: Histogram<u64>,
    /// Latency from actual send time (uncorrected), µs.
    pub latency_uncorrected: Histogram<u64>,
    /// Time to establish each connection, µs.
    pub connect: Histogram<u64>,
    /// Messages verified per connection, indexed by global connection index.
    pub per_connection: Vec<u64>,
    /// Verified round trips.
    pub messages: u64,
    /// Payload bytes of the verified round trips.
    pub bytes: u64,
    /// Bytes verified while the measured window was open, by arrival time.
    pub echoed: u64,
    /// [`echoed`](Self::echoed) per connection, indexed by global connection index.
    pub per_connection_echoed: Vec<u64>,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// The earliest error.
    pub first_error: Option<ErrorRecord>,
    /// Errors per second of the measured phase.
    pub error_times: ErrorTimes,
    /// Connections the server closed or reset before echoing a single byte (a connection
    /// limit on the server is the likely cause).
    pub closed_at_byte_0: u64,
    /// Connections the server ended as it said it would (`Connection: close`), each replaced by
    /// a new one.
    pub server_closes: u64,
    /// CPU use of each client thread merged in.
    pub cpu: Vec<ThreadCpu>,
    /// Latency per second, for `--hdr-log`; `None` unless [started](Self::start_intervals).
    pub intervals: Option<Intervals>,
    /// Messages handed to a send while the measured window was open (what the client really
    /// generated, against `--rate`'s target).
    pub sent: u64,
    /// Latency and sends per step of a ramp; `None` unless [started](Self::start_steps).
    pub steps: Option<StepStats>,
}

/// Latency and sends per step of a ramp ([`ramp`](crate::plan::ramp)): a message belongs to the step
/// of its intended send time (so its corrected latency is charged to the rate it was meant to
/// go at), a send to the step it left in. Histograms are allocated once, at the start.
#[derive(Debug, Clone)]
pub struct StepStats {
    start: Instant,
    /// Each step's end, from `start`.
    ends: Vec<Duration>,
    /// Corrected latency per step, µs.
    pub latency: Vec<Histogram<u64>>,
    /// Messages handed to a send per step.
    pub sent: Vec<u64>,
}

impl StepStats {
    /// Steps ending at `ends` (from `start`, increasing).
    pub fn new(start: Instant, ends: Vec<Duration>) -> StepStats {
        StepStats {
            start,
            latency: ends.iter().map(|_| new_histogram()).collect(),
            sent: vec![0; ends.len()],
            ends,
        }
    }

    /// The step `at` falls in (the first before the start, the last after the end).
    fn index(&self, at: Instant) -> usize {
        let t = at.saturating_duration_since(self.start);
        self.ends
            .partition_point(|&end| end <= t)
            .min(self.ends.len().saturating_sub(1))
    }

    fn merge(&mut self, other: &StepStats) {
        for (a, b) in self.latency.iter_mut().zip(&other.latency) {
            a.add(b).expect("same histogram bounds");
        }
        for (a, b) in self.sent.iter_mut().zip(&other.sent) {
            *a += b;
        }
    }
}

impl ThreadStats {
    /// Empty stats for a run of `connections` connections in total (all threads). Allocates the
    /// histograms and the per-connection table; recording afterwards does not allocate.
    pub fn new(connections: usize) -> ThreadStats {
        ThreadStats {
            latency: new_histogram(),
            latency_uncorrected: new_histogram(),
            connect: new_histogram(),
            per_connection: vec![0; connections],
            messages: 0,
            bytes: 0,
            echoed: 0,
            per_connection_echoed: vec![0; connections],
            errors: ErrorCounts::default(),
            first_error: None,
            error_times: ErrorTimes::default(),
            closed_at_byte_0: 0,
            server_closes: 0,
            cpu: Vec::new(),
            intervals: None,
            sent: 0,
            steps: None,
        }
    }

    /// Also records latency and sends per ramp step, the steps ending at `ends` from `start`
    /// (the beginning of the measured phase).
    pub fn start_steps(&mut self, start: Instant, ends: Vec<Duration>) {
        if !ends.is_empty() {
            self.steps = Some(StepStats::new(start, ends));
        }
    }

    /// Records `n` messages handed to a send at `now`, inside the measured window.
    pub fn record_sent(&mut self, now: Instant, n: usize) {
        self.sent += n as u64;
        if let Some(steps) = &mut self.steps {
            let i = steps.index(now);
            steps.sent[i] += n as u64;
        }
    }

    /// Also records latency per second from `start` (the beginning of the measured phase).
    pub fn start_intervals(&mut self, start: Instant) {
        self.intervals = Some(Intervals::new(start));
    }

    /// Records a verified round trip of connection `connection` whose echo completed at `now`.
    pub fn record_message(&mut self, connection: usize, done: &Completed, now: Instant) {
        let corrected = micros(now.saturating_duration_since(done.stamp.intended));
        let uncorrected = micros(now.saturating_duration_since(done.stamp.sent));
        self.latency.saturating_record(corrected);
        self.latency_uncorrected.saturating_record(uncorrected);
        if let Some(iv) = &mut self.intervals {
            iv.record(now, corrected, uncorrected);
        }
        if let Some(steps) = &mut self.steps {
            let i = steps.index(done.stamp.intended);
            steps.latency[i].saturating_record(corrected);
        }
        if let Some(n) = self.per_connection.get_mut(connection) {
            *n += 1;
        }
        self.messages += 1;
        self.bytes += done.len as u64;
    }

    /// Records `n` bytes of connection `connection` verified while the measured window was open.
    pub fn record_echoed(&mut self, connection: usize, n: usize) {
        if let Some(b) = self.per_connection_echoed.get_mut(connection) {
            *b += n as u64;
        }
        self.echoed += n as u64;
    }

    /// Records a connection that took `took` to establish.
    pub fn record_connect(&mut self, took: Duration) {
        self.connect.saturating_record(micros(took));
    }

    /// Counts `err` on `connection`, keeping it in detail if it is the first.
    pub fn record_error(&mut self, connection: u64, err: &ConnError, at: Instant) {
        self.errors.add(err.kind());
        self.error_times.record(at, err.kind());
        if matches!(
            err,
            ConnError::EarlyClose { offset: 0 }
                | ConnError::ShortEcho { offset: 0, .. }
                | ConnError::ShortReply { offset: 0, .. }
                | ConnError::Reset { offset: 0, .. }
        ) {
            self.closed_at_byte_0 += 1;
        }
        let earlier = match &self.first_error {
            None => true,
            Some(first) => at < first.at,
        };
        if earlier {
            self.first_error = Some(ErrorRecord {
                connection,
                kind: err.kind(),
                offset: err.offset(),
                detail: err.to_string(),
                at,
            });
        }
    }

    /// Folds `other` (another thread's stats) into these.
    pub fn merge(&mut self, other: &ThreadStats) {
        // Same bounds on both sides, so adding cannot fail.
        self.latency
            .add(&other.latency)
            .expect("same histogram bounds");
        self.latency_uncorrected
            .add(&other.latency_uncorrected)
            .expect("same histogram bounds");
        self.connect
            .add(&other.connect)
            .expect("same histogram bounds");
        if self.per_connection.len() < other.per_connection.len() {
            self.per_connection.resize(other.per_connection.len(), 0);
        }
        for (a, b) in self.per_connection.iter_mut().zip(&other.per_connection) {
            *a += b;
        }
        if self.per_connection_echoed.len() < other.per_connection_echoed.len() {
            self.per_connection_echoed
                .resize(other.per_connection_echoed.len(), 0);
        }
        for (a, b) in self
            .per_connection_echoed
            .iter_mut()
            .zip(&other.per_connection_echoed)
        {
            *a += b;
        }
        self.closed_at_byte_0 += other.closed_at_byte_0;
        self.server_closes += other.server_closes;
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.echoed += other.echoed;
        self.errors.merge(&other.errors);
        self.error_times.merge(&other.error_times);
        if let Some(theirs) = &other.first_error {
            if self
                .first_error
                .as_ref()
                .is_none_or(|mine| theirs.at < mine.at)
            {
                self.first_error = Some(theirs.clone());
            }
        }
        self.cpu.extend_from_slice(&other.cpu);
        self.sent += other.sent;
        if let Some(theirs) = &other.steps {
            match &mut self.steps {
                Some(mine) => mine.merge(theirs),
                None => self.steps = Some(theirs.clone()),
            }
        }
        if let Some(theirs) = &other.intervals {
            self.intervals
                .get_or_insert_with(|| Intervals::new(theirs.start()))
                .merge(theirs);
        }
    }

    /// Merges every thread's stats into one.
    pub fn merge_all<'a>(
        connections: usize,
        all: impl IntoIterator<Item = &'a ThreadStats>,
    ) -> ThreadStats {
        let mut total = ThreadStats::new(connections);
        for s in all {
            total.merge(s);
        }
        total
    }

    /// Per-connection fairness; `None` with no connections.
    pub fn fairness(&self) -> Option<Fairness> {
        Fairness::of(&self.per_connection)
    }

    /// The warning to show when a client thread was saturated, if one was.
    pub fn client_bound_warning(&self) -> Option<String> {
        client_bound_warning(&self.cpu, CLIENT_BOUND_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::protocol::echo::SendStamp;
    use ringport_report::histogram::MAX_RECORDED_US;

    fn completed(intended: Instant, sent: Instant, len: usize) -> Completed {
        Completed {
            stamp: SendStamp {
                index: 1,
                intended,
                sent,
            },
            len,
        }
    }

    #[test]
    fn corrected_latency_counts_from_the_intended_time() {
        let mut s = ThreadStats::new(2);
        let t0 = Instant::now();
        let done = completed(t0, t0 + Duration::from_micros(900), 10);
        s.record_message(1, &done, t0 + Duration::from_micros(1000));
        assert_eq!(s.latency.max(), 1000);
        assert_eq!(s.latency_uncorrected.max(), 100);
        assert_eq!((s.messages, s.bytes), (1, 10));
        assert_eq!(s.per_connection, vec![0, 1]);
    }

    #[test]
    fn intervals_split_by_second_and_merge_across_threads() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut a = ThreadStats::new(2);
        let mut b = ThreadStats::new(2);
        a.start_intervals(t0);
        b.start_intervals(t0);
        // Thread a: seconds 0, 0, 2; thread b: second 0 and 1 (its last one still open).
        for (ms, lat_us) in [(10, 100), (900, 200), (2500, 300)] {
            let sent = at(ms) - Duration::from_micros(lat_us);
            a.record_message(0, &completed(sent, sent, 1), at(ms));
        }
        for (ms, lat_us) in [(500, 400), (1500, 500)] {
            let sent = at(ms) - Duration::from_micros(lat_us);
            b.record_message(1, &completed(sent, sent, 1), at(ms));
        }
        let all = ThreadStats::merge_all(2, [&a, &b]);
        let seconds: Vec<(u64, Vec<u64>)> = all
            .intervals
            .as_ref()
            .unwrap()
            .seconds()
            .map(|(sec, h, u)| {
                assert_eq!(h, u, "closed loop: corrected is uncorrected");
                (
                    sec,
                    h.iter_recorded().map(|v| v.value_iterated_to()).collect(),
                )
            })
            .collect();
        assert_eq!(
            seconds,
            vec![(0, vec![100, 200, 400]), (1, vec![500]), (2, vec![300])]
        );
        let mut sum = new_histogram();
        for (_, h, _) in all.intervals.as_ref().unwrap().seconds() {
            sum.add(h).unwrap();
        }
        assert_eq!(
            sum, all.latency,
            "the intervals add up to the run's histogram"
        );
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut s = ThreadStats::new(1);
        let t0 = Instant::now();
        let done = completed(t0, t0, 1);
        s.record_message(0, &done, t0 + Duration::from_secs(10 * 3600));
        assert_eq!(s.latency.len(), 1);
        assert!(s.latency.max() >= MAX_RECORDED_US * 999 / 1000);
    }

    #[test]
    fn merge_adds_everything_and_keeps_the_earliest_error() {
        let t0 = Instant::now();
        let mut a = ThreadStats::new(4);
        let mut b = ThreadStats::new(4);
        a.record_message(0, &completed(t0, t0, 3), t0 + Duration::from_micros(10));
        b.record_message(3, &completed(t0, t0, 4), t0 + Duration::from_micros(20));
        b.record_message(3, &completed(t0, t0, 4), t0 + Duration::from_micros(30));
        a.record_connect(Duration::from_micros(50));
        a.record_echoed(0, 100);
        b.record_echoed(3, 40);
        b.record_echoed(3, 2);
        let late = ConnError::EarlyClose { offset: 9 };
        let early = ConnError::ShortEcho {
            offset: 12,
            outstanding: 3,
        };
        a.record_error(1, &late, t0 + Duration::from_millis(5));
        b.record_error(2, &early, t0 + Duration::from_millis(1));
        a.cpu.push(ThreadCpu {
            wall: Duration::from_secs(1),
            cpu: Duration::from_millis(100),
        });

        let m = ThreadStats::merge_all(4, [&a, &b]);
        assert_eq!((m.messages, m.bytes), (3, 11));
        assert_eq!(m.per_connection, vec![1, 0, 0, 2]);
        assert_eq!(m.echoed, 142);
        assert_eq!(m.per_connection_echoed, vec![100, 0, 0, 42]);
        assert_eq!(m.latency.len(), 3);
        assert_eq!(m.latency.max(), 30);
        assert_eq!(m.connect.len(), 1);
        assert_eq!(m.errors.total(), 2);
        assert_eq!(m.errors.get(ErrorKind::ShortEcho), 1);
        let first = m.first_error.clone().unwrap();
        assert_eq!(
            (first.connection, first.kind, first.offset),
            (2, ErrorKind::ShortEcho, Some(12))
        );
        assert_eq!(m.cpu.len(), 1);
        assert_eq!(
            m.fairness(),
            Some(Fairness {
                min: 0,
                median: 0,
                max: 2
            })
        );
    }

    #[test]
    fn record_error_keeps_the_first_within_a_thread() {
        let t0 = Instant::now();
        let mut s = ThreadStats::new(1);
        s.record_error(0, &ConnError::EarlyClose { offset: 1 }, t0);
        s.record_error(
            0,
            &ConnError::EarlyClose { offset: 2 },
            t0 + Duration::from_secs(1),
        );
        assert_eq!(s.first_error.unwrap().offset, Some(1));
        assert_eq!(s.errors.get(ErrorKind::EarlyClose), 2);
    }
}
