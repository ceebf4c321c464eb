//! Measurement: latency, connect time, fairness, errors and client CPU, per thread then merged.
//!
//! This module is responsible for the numbers of a run. Each client thread owns one
//! [`ThreadStats`] and records into it without locks or allocation (histograms are allocated
//! once, in [`ThreadStats::new`]); at the end the engine folds them together with
//! [`ThreadStats::merge`] and the report is built from the result.
//!
//! * **Latency** is recorded in microseconds in two [HdrHistogram]s: *corrected*, measured from
//!   each message's intended send time (in open-loop `--rate` mode that is its slot in the
//!   schedule, so a stalled server cannot hide its stall by delaying the sends that would have
//!   measured it: coordinated omission), and *uncorrected*, measured from the moment the send was
//!   actually issued. In closed-loop mode the two are the same.
//! * **Fairness**: messages per connection, summarised as min, median and max.
//! * **Echoed bytes** (what `--stream` reports): bytes verified while the measured window was
//!   open, counted when they arrive (not when their message completes), in total and per
//!   connection.
//! * **Connect time** in microseconds, in its own histogram.
//! * **Errors** counted by [`ErrorKind`], with the first one (by time) kept in detail: connection,
//!   kind, byte offset and message.
//! * **Intervals** (for `--hdr-log`): the same latencies again in one histogram per second of
//!   the measured phase, by completion time ([`Intervals`]); a second's histograms are
//!   serialised (a few hundred bytes) when it ends, so a long run does not hold one full
//!   histogram per second.
//! * **Client CPU**: [`CpuMeter`] reads a thread's own CPU time from `/proc/thread-self/stat`
//!   (utime + stime) so the report can warn when a client thread was near 100% busy, which means
//!   the figures may describe the client rather than the server.
//!
//! [HdrHistogram]: https://hdrhistogram.github.io/HdrHistogram/

use std::fs;
use std::io;
use std::time::{Duration, Instant};

use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{ConnError, ErrorKind};
use crate::protocol::echo::Completed;

/// The largest latency or connect time recorded, in microseconds (one hour); larger values are
/// clamped to it.
pub const MAX_RECORDED_US: u64 = 3_600_000_000;

/// Significant decimal digits kept by every histogram (0.1% relative error).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// A CPU share at or above this fraction of a thread's wall time marks it as saturated.
pub const CLIENT_BOUND_THRESHOLD: f64 = 0.90;

/// A microsecond histogram with the crate's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_RECORDED_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// A duration in whole microseconds, as recorded.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Latency summary in microseconds: the `latency_us` object of the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Smallest value.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Number of values.
    pub count: u64,
}

impl LatencySummary {
    /// The summary of `h`, or `None` if it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<LatencySummary> {
        if h.is_empty() {
            return None;
        }
        Some(LatencySummary {
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
            stdev: h.stdev(),
            count: h.len(),
        })
    }

    /// The summary of `h`, all zero if it is empty (as reports show an empty histogram).
    pub fn of_or_zero(h: &Histogram<u64>) -> LatencySummary {
        LatencySummary::of(h).unwrap_or(LatencySummary {
            min: 0,
            p50: 0,
            p90: 0,
            p99: 0,
            p999: 0,
            max: 0,
            mean: 0.0,
            stdev: 0.0,
            count: 0,
        })
    }
}

/// Messages per connection: min, median and max over every connection of the run (including
/// connections that failed or never connected, which count 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fairness {
    /// Fewest messages any connection completed.
    pub min: u64,
    /// Median messages per connection (lower median for an even count).
    pub median: u64,
    /// Most messages any connection completed.
    pub max: u64,
}

impl Fairness {
    /// Fairness of `counts` (messages per connection); `None` when there are no connections.
    pub fn of(counts: &[u64]) -> Option<Fairness> {
        if counts.is_empty() {
            return None;
        }
        let mut sorted = counts.to_vec();
        sorted.sort_unstable();
        Some(Fairness {
            min: sorted[0],
            median: sorted[(sorted.len() - 1) / 2],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// Error counts by kind. Serialises as an object with one key per [`ErrorKind`] (all present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorCounts([u64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    /// Counts one error of `kind`.
    pub fn add(&mut self, kind: ErrorKind) {
        self.0[kind.index()] += 1;
    }

    /// Errors of `kind`.
    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind.index()]
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &ErrorCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// `(kind, count)` for every kind with a non-zero count, in report order.
    pub fn nonzero(&self) -> impl Iterator<Item = (ErrorKind, u64)> + '_ {
        ErrorKind::ALL
            .iter()
            .map(|&k| (k, self.get(k)))
            .filter(|&(_, n)| n > 0)
    }
}

impl Serialize for ErrorCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ErrorCounts", ErrorKind::ALL.len())?;
        for k in ErrorKind::ALL {
            s.serialize_field(k.as_str(), &self.get(k))?;
        }
        s.end()
    }
}

impl<'de> Deserialize<'de> for ErrorCounts {
    /// The object [`Serialize`] writes; a kind this version does not know counts as `other`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = ErrorCounts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of error counts by kind")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ErrorCounts, A::Error> {
                let mut counts = ErrorCounts::default();
                while let Some((key, n)) = map.next_entry::<String, u64>()? {
                    let kind = ErrorKind::ALL
                        .iter()
                        .copied()
                        .find(|k| k.as_str() == key)
                        .unwrap_or(ErrorKind::Other);
                    counts.0[kind.index()] += n;
                }
                Ok(counts)
            }
        }
        deserializer.deserialize_map(CountsVisitor)
    }
}

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

    fn record(&mut self, now: Instant, corrected: u64, uncorrected: u64) {
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

/// `h` in the HdrHistogram V2 encoding (uncompressed).
pub fn serialize(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut out)
        .expect("serialising to memory cannot fail");
    out
}

/// A histogram from its V2 encoding, compressed (as in interval logs) or not.
///
/// # Errors
///
/// A description of why the bytes are not a histogram.
pub fn deserialize(bytes: &[u8]) -> Result<Histogram<u64>, String> {
    let mut slice = bytes;
    Deserializer::new()
        .deserialize(&mut slice)
        .map_err(|e| format!("{e:?}"))
}

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

/// CPU use of one client thread over its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCpu {
    /// Wall-clock time measured.
    pub wall: Duration,
    /// CPU time (user + system) the thread used in that time.
    pub cpu: Duration,
}

impl ThreadCpu {
    /// CPU time as a fraction of wall time (1.0 = one core fully busy).
    pub fn utilization(&self) -> f64 {
        if self.wall.is_zero() {
            0.0
        } else {
            self.cpu.as_secs_f64() / self.wall.as_secs_f64()
        }
    }
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
    /// Connections the server closed or reset before echoing a single byte (a connection
    /// limit on the server is the likely cause).
    pub closed_at_byte_0: u64,
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
            closed_at_byte_0: 0,
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
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.echoed += other.echoed;
        self.errors.merge(&other.errors);
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
            let mine = self
                .intervals
                .get_or_insert_with(|| Intervals::new(theirs.start));
            mine.closed.extend(theirs.closed.iter().cloned());
            let mut pending = theirs.clone();
            pending.closed.clear();
            pending.close();
            mine.closed.extend(pending.closed);
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

/// A warning naming the client threads whose CPU share reached `threshold`, if any did.
pub fn client_bound_warning(cpu: &[ThreadCpu], threshold: f64) -> Option<String> {
    let busy: Vec<f64> = cpu
        .iter()
        .map(ThreadCpu::utilization)
        .filter(|&u| u >= threshold)
        .collect();
    if busy.is_empty() {
        return None;
    }
    let peak = busy.iter().cloned().fold(0.0, f64::max);
    Some(format!(
        "client-bound: {} of {} client threads were at least {:.0}% busy (peak {:.0}%); \
         the figures may measure the client, not the server: pin client and server to \
         different cores (taskset), or add --threads if cores are free",
        busy.len(),
        cpu.len(),
        threshold * 100.0,
        peak * 100.0
    ))
}

/// Measures the CPU time the calling thread uses between [`CpuMeter::start`] and
/// [`CpuMeter::finish`]. Must be started and finished on the same thread.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    wall: Instant,
    cpu: Option<Duration>,
}

impl CpuMeter {
    /// Starts measuring the calling thread.
    pub fn start() -> CpuMeter {
        CpuMeter {
            wall: Instant::now(),
            cpu: thread_cpu_time().ok(),
        }
    }

    /// Stops measuring; `None` if the thread's CPU time cannot be read (no `/proc`).
    pub fn finish(&self) -> Option<ThreadCpu> {
        let start = self.cpu?;
        let end = thread_cpu_time().ok()?;
        Some(ThreadCpu {
            wall: self.wall.elapsed(),
            cpu: end.saturating_sub(start),
        })
    }
}

/// CPU time (user + system) used so far by the calling thread, from `/proc/thread-self/stat`
/// (on Windows `GetThreadTimes`).
pub fn thread_cpu_time() -> io::Result<Duration> {
    #[cfg(windows)]
    return ringport_port::os::thread_cpu_time();
    #[cfg(not(windows))]
    read_stat_cpu("/proc/thread-self/stat")
}

/// CPU time (user + system) used so far by the whole process, from `/proc/self/stat` (on
/// Windows `GetProcessTimes`).
pub fn process_cpu_time() -> io::Result<Duration> {
    #[cfg(windows)]
    return ringport_port::os::process_cpu_time();
    #[cfg(not(windows))]
    read_stat_cpu("/proc/self/stat")
}

#[cfg_attr(windows, allow(dead_code))]
fn read_stat_cpu(path: &str) -> io::Result<Duration> {
    let text = fs::read_to_string(path)?;
    parse_stat_cpu(&text, clock_ticks_per_second())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {path}")))
}

/// utime + stime from the text of a `/proc/.../stat` file (fields 14 and 15, in clock ticks).
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_stat_cpu(text: &str, ticks_per_second: u64) -> Option<Duration> {
    let after = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so utime (14) is index 11, stime (15) 12.
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    let tps = ticks_per_second.max(1);
    Some(
        Duration::from_secs(ticks / tps)
            + Duration::from_nanos((ticks % tps) * 1_000_000_000 / tps),
    )
}

/// The kernel's USER_HZ (clock ticks per second of `/proc` times), read from the auxiliary vector
/// (`AT_CLKTCK`) so no `sysconf` call is needed; 100, Linux's value on every common architecture,
/// if it cannot be read.
pub fn clock_ticks_per_second() -> u64 {
    fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| parse_auxv_clktck(&auxv))
        .unwrap_or(100)
}

/// Finds `AT_CLKTCK` (17) in a native-endian auxiliary vector of word-sized pairs.
fn parse_auxv_clktck(auxv: &[u8]) -> Option<u64> {
    const AT_NULL: u64 = 0;
    const AT_CLKTCK: u64 = 17;
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |b: &[u8]| -> u64 {
        let mut w = [0u8; WORD];
        w.copy_from_slice(b);
        usize::from_ne_bytes(w) as u64
    };
    for pair in auxv.chunks_exact(2 * WORD) {
        let (key, value) = (word(&pair[..WORD]), word(&pair[WORD..]));
        match key {
            AT_NULL => return None,
            AT_CLKTCK if value > 0 => return Some(value),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::echo::SendStamp;

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
    fn error_counts_read_back_from_json() {
        let mut c = ErrorCounts::default();
        c.add(ErrorKind::Mismatch);
        c.add(ErrorKind::Timeout);
        c.add(ErrorKind::Timeout);
        let json = serde_json::to_string(&c).unwrap();
        let back: ErrorCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
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
    fn summary_percentiles() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let s = LatencySummary::of(&h).unwrap();
        assert_eq!((s.min, s.max, s.count), (1, 1000, 1000));
        assert_eq!(s.p50, 500);
        assert_eq!(s.p90, 900);
        assert_eq!(s.p99, 990);
        assert_eq!(s.p999, 999);
        assert!((s.mean - 500.5).abs() < 1.0);
        assert!(LatencySummary::of(&new_histogram()).is_none());
    }

    #[test]
    fn fairness_min_median_max() {
        assert_eq!(
            Fairness::of(&[5, 1, 9, 3]),
            Some(Fairness {
                min: 1,
                median: 3,
                max: 9
            })
        );
        assert_eq!(
            Fairness::of(&[7]),
            Some(Fairness {
                min: 7,
                median: 7,
                max: 7
            })
        );
        assert_eq!(Fairness::of(&[]), None);
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

    #[test]
    fn error_counts_serialise_every_kind() {
        let mut c = ErrorCounts::default();
        c.add(ErrorKind::Reset);
        c.add(ErrorKind::Reset);
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(v["reset"], 2);
        assert_eq!(v["mismatch"], 0);
        assert_eq!(v.as_object().unwrap().len(), ErrorKind::ALL.len());
        assert_eq!(c.nonzero().collect::<Vec<_>>(), vec![(ErrorKind::Reset, 2)]);
    }

    #[test]
    fn parses_proc_stat_with_a_hostile_command_name() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let line = "1234 (a) b (c) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat_cpu(line, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu(line, 1000), Some(Duration::from_millis(300)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn parses_clktck_from_auxv() {
        let mut auxv = Vec::new();
        for (k, v) in [(6usize, 4096usize), (17, 250), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(parse_auxv_clktck(&auxv), Some(250));
        assert_eq!(
            parse_auxv_clktck(&auxv[2 * std::mem::size_of::<usize>()..][..0]),
            None
        );
        assert_eq!(clock_ticks_per_second(), 100, "USER_HZ on Linux");
    }

    /// The meter counts the CPU the thread used, whatever share of a CPU the machine gave it:
    /// the thread spins until it has used 30 ms (read independently of the meter), and the
    /// meter must see at least that.
    #[test]
    fn a_busy_thread_is_seen_busy() {
        let meter = CpuMeter::start();
        let before = thread_cpu_time().expect("/proc/thread-self/stat is readable");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut x = 0u64;
        while thread_cpu_time().unwrap() < before + Duration::from_millis(30) {
            assert!(
                Instant::now() < deadline,
                "the thread never got 30 ms of CPU"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let cpu = meter
            .finish()
            .expect("/proc/thread-self/stat (Windows: GetThreadTimes) is readable");
        assert!(cpu.cpu >= Duration::from_millis(30), "{cpu:?}");
        assert!(cpu.utilization() > 0.0, "{cpu:?}");
        // The kernel scales each count from the scheduler's runtime on its own, to whole
        // ticks: the process's may trail one thread's by a tick.
        let tick = Duration::from_secs(1) / clock_ticks_per_second() as u32;
        let process = process_cpu_time().unwrap();
        assert!(
            process + tick >= cpu.cpu,
            "process {process:?}, thread {cpu:?}"
        );
    }

    #[test]
    fn client_bound_warning_only_when_saturated() {
        let idle = ThreadCpu {
            wall: Duration::from_secs(10),
            cpu: Duration::from_secs(2),
        };
        let busy = ThreadCpu {
            wall: Duration::from_secs(10),
            cpu: Duration::from_millis(9700),
        };
        assert_eq!(client_bound_warning(&[idle, idle], 0.9), None);
        let w = client_bound_warning(&[idle, busy], 0.9).unwrap();
        assert!(w.starts_with("client-bound: 1 of 2"), "{w}");
        assert!(w.contains("97%"), "{w}");
    }
}
