//! What a run shows while it goes on: the live latency histogram the client threads feed, and
//! the progress lines made from two snapshots of the live counters.
//!
//! This module is responsible for the figures of an interval (rate, p50 and p99 of the round
//! trips completed in it, errors; for `--udp` the datagrams lost so far) and for saying which phase the run is in (connecting,
//! warm-up, measuring); the engine feeds [`Progress`], the CLI decides
//! when to print (a line redrawn on a terminal, one line per interval elsewhere).
//!
//! The histogram is log-linear (eight sub-buckets per power of two of microseconds), so a
//! percentile is within 12.5% of the true value: enough to watch a run, never used for the
//! report, whose figures come from the full HdrHistograms.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ringport_report::errors::ErrorCounts;

use crate::error::ErrorKind;

/// Sub-buckets per power of two.
const SUB: usize = 8;
/// Powers of two covered above the exact range: up to 2^40 µs (12 days).
const POWERS: usize = 38;
/// Buckets of the live histogram.
pub const BUCKETS: usize = SUB + POWERS * SUB;

/// The bucket of a latency of `us` microseconds.
pub fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize; // 3 or more
    let sub = ((us >> (e - 3)) & (SUB as u64 - 1)) as usize;
    (SUB + (e - 3) * SUB + sub).min(BUCKETS - 1)
}

/// The value a bucket stands for: the middle of the microseconds it holds.
pub fn bucket_value(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let e = (i - SUB) / SUB + 3;
    let sub = ((i - SUB) % SUB) as u64;
    let low = (1u64 << e) + (sub << (e - 3));
    low + (1u64 << (e - 3)) / 2
}

/// The end of a bucket: the smallest latency in microseconds above every value it holds (the
/// last bucket also holds everything above its end).
pub fn bucket_end(i: usize) -> u64 {
    if i < SUB {
        return i as u64 + 1;
    }
    let e = (i - SUB) / SUB + 3;
    let sub = ((i - SUB) % SUB) as u64;
    (1u64 << e) + ((sub + 1) << (e - 3))
}

/// A latency histogram shared by the client threads: each keeps a local array of counts and
/// adds it in now and then ([`add_local`](Self::add_local)), so the hot path touches no shared
/// cache line per message.
#[derive(Debug)]
pub struct LiveLatency {
    buckets: Box<[AtomicU64]>,
}

impl Default for LiveLatency {
    fn default() -> Self {
        LiveLatency {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LiveLatency {
    /// Adds a thread's local counts (an array of [`BUCKETS`]) and zeroes them.
    pub fn add_local(&self, local: &mut [u64]) {
        for (shared, n) in self.buckets.iter().zip(local.iter_mut()) {
            if *n > 0 {
                shared.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

/// The `q` quantile (0 to 1) of a histogram's counts, or `None` if it is empty.
pub fn quantile(counts: &[u64], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(bucket_value(i));
        }
    }
    None
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Opening connections; the load has not started.
    Connecting,
    /// Load that no figure will count, with this much of it left.
    WarmUp {
        /// Time until measuring starts.
        left: Duration,
    },
    /// The measured phase, this far in.
    Measuring {
        /// Time since measuring started.
        elapsed: Duration,
    },
}

impl Phase {
    /// The phase at `now` of a run whose load started at `load_start` (if it has) with
    /// `warmup` of warm-up.
    pub fn at(now: Instant, load_start: Option<Instant>, warmup: Duration) -> Phase {
        match load_start {
            None => Phase::Connecting,
            Some(start) => {
                let measure = start + warmup;
                if now < measure {
                    Phase::WarmUp {
                        left: measure - now,
                    }
                } else {
                    Phase::Measuring {
                        elapsed: now - measure,
                    }
                }
            }
        }
    }
}

/// The live counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Verified round trips (or chunks) so far, warm-up included.
    pub messages: u64,
    /// Errors so far.
    pub errors: u64,
    /// Connections established so far.
    pub connected: u64,
    /// The live latency histogram's counts (empty before the first sample).
    pub latency: Vec<u64>,
    /// `--udp`: datagrams settled so far, warm-up included: `[echoed, lost]` (a datagram is
    /// lost once its `--timeout` has passed without an echo); `None` for other runs.
    pub datagrams: Option<[u64; 2]>,
}

/// The loss part of a UDP run's progress line: `12 lost (0.120%)`, the datagrams lost so far
/// and their share of those settled (echoed or lost).
fn loss(datagrams: [u64; 2]) -> String {
    let [echoed, lost] = datagrams;
    let settled = echoed + lost;
    let pct = if settled == 0 {
        0.0
    } else {
        100.0 * lost as f64 / settled as f64
    };
    format!("  {lost} lost ({pct:.3}%)")
}

/// One progress line for the interval `interval` between `prev` and `now`:
/// `measuring 3.0s  98765 msg/s  p50 45 us  p99 120 us  1234567 verified  50/50 connected
/// 0 errors`. The latency is of the round trips completed in the interval (`-` when none was).
pub fn line(
    prev: &Sample,
    now: &Sample,
    interval: Duration,
    phase: Phase,
    connections: usize,
) -> String {
    let secs = interval.as_secs_f64();
    let rate = if secs > 0.0 {
        now.messages.saturating_sub(prev.messages) as f64 / secs
    } else {
        0.0
    };
    let delta: Vec<u64> = now
        .latency
        .iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(prev.latency.get(i).copied().unwrap_or(0)))
        .collect();
    let pct = |q| quantile(&delta, q).map_or_else(|| "-".to_string(), |v| format!("{v} us"));
    let phase = match phase {
        Phase::Connecting => "connecting".to_string(),
        Phase::WarmUp { left } => format!("warm-up ({:.1}s left)", left.as_secs_f64()),
        Phase::Measuring { elapsed } => format!("measuring {:.1}s", elapsed.as_secs_f64()),
    };
    // Churn (`--messages-per-connection`) makes more connections than there are slots: then
    // the line counts the connections made, and their rate in the interval.
    let connected = if now.connected > connections as u64 {
        let made = now.connected.saturating_sub(prev.connected) as f64;
        format!(
            "{} connections made ({:.0}/s)",
            now.connected,
            if secs > 0.0 { made / secs } else { 0.0 }
        )
    } else {
        format!("{}/{connections} connected", now.connected)
    };
    format!(
        "{phase}  {rate:.0} msg/s{}  p50 {}  p99 {}  {} verified  {connected}  {} errors",
        now.datagrams.map(loss).unwrap_or_default(),
        pct(0.5),
        pct(0.99),
        now.messages,
        now.errors,
    )
}

/// Live counters a caller (the CLI's progress line) may watch while a run goes on. Threads add
/// to them once per batch of completions, not per message.
#[derive(Debug, Default)]
pub struct Progress {
    /// Verified round trips so far (warm-up included).
    pub messages: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Connections established so far.
    pub connected: AtomicU64,
    /// Latency of the round trips (or chunks) verified so far, warm-up included, from each
    /// one's intended send time: the live histogram the progress lines take p50 and p99 from.
    pub latency: LiveLatency,
    /// When the load started (after connecting, and after `--start-at`): the warm-up runs
    /// from here. Unset while connecting.
    pub load_start: OnceLock<Instant>,
    /// Messages handed to a send so far (warm-up included).
    pub sent: AtomicU64,
    /// Connections closed so far after being established (with `connected`: those open).
    pub closed: AtomicU64,
    /// Errors so far by kind, indexed by [`ErrorKind::index`] (they add up to `errors`).
    pub errors_by_kind: [AtomicU64; ErrorKind::ALL.len()],
    /// The sum of the latencies in `latency`, in microseconds.
    pub latency_sum_us: AtomicU64,
    /// A UDP run (`--udp`): the datagram counters below are live.
    pub udp: AtomicBool,
    /// `--udp`: distinct datagrams echoed so far (warm-up included).
    pub datagrams_echoed: AtomicU64,
    /// `--udp`: datagrams lost so far (no echo within `--timeout`; warm-up included).
    pub datagrams_lost: AtomicU64,
}

impl Progress {
    /// The counters now, for [`line()`].
    pub fn sample(&self) -> Sample {
        Sample {
            messages: self.messages.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
            datagrams: self.udp.load(Ordering::Relaxed).then(|| {
                [
                    self.datagrams_echoed.load(Ordering::Relaxed),
                    self.datagrams_lost.load(Ordering::Relaxed),
                ]
            }),
        }
    }

    /// A one-line summary for a live display, e.g.
    /// `12.0s  1234567 verified  98765 msg/s  50/50 connected  0 errors`, with the rate
    /// computed from `previous` (the messages count at the last call) over `interval`.
    pub fn line(
        &self,
        elapsed: Duration,
        previous: u64,
        interval: Duration,
        connections: usize,
    ) -> String {
        let messages = self.messages.load(Ordering::Relaxed);
        let secs = interval.as_secs_f64();
        let rate = if secs > 0.0 {
            messages.saturating_sub(previous) as f64 / secs
        } else {
            0.0
        };
        format!(
            "{:>5.1}s  {messages} verified  {rate:.0} msg/s  {}/{connections} connected  {} errors",
            elapsed.as_secs_f64(),
            self.connected.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

/// One client thread's side of the [`Progress`] counters: what it has added so far, and the
/// latencies it has not added yet (adding them is a pass over the histogram, too much for every
/// turn of the loop).
#[derive(Debug)]
pub(crate) struct ProgressFeed {
    /// Messages, errors and connections already added.
    reported: [u64; 3],
    /// Latencies of verified messages not yet added to the shared live histogram (an array of
    /// [`BUCKETS`]; empty without progress counters).
    latency: Vec<u64>,
    /// Their sum in microseconds.
    latency_sum_us: u64,
    /// When the latencies were last added.
    flushed: Instant,
    /// Messages sent and connections closed already added ([`feed_more`](Self::feed_more)).
    more_reported: [u64; 2],
    /// Errors by kind already added.
    errors_reported: ErrorCounts,
    /// `--udp`: datagrams echoed and lost already added.
    datagrams_reported: [u64; 2],
}

impl ProgressFeed {
    /// A feed, recording latencies only when `enabled` (a caller watches the counters).
    pub(crate) fn new(enabled: bool, now: Instant) -> ProgressFeed {
        ProgressFeed {
            reported: [0; 3],
            latency: if enabled {
                vec![0; BUCKETS]
            } else {
                Vec::new()
            },
            latency_sum_us: 0,
            flushed: now,
            more_reported: [0; 2],
            errors_reported: ErrorCounts::default(),
            datagrams_reported: [0; 2],
        }
    }

    /// Counts one verified message's latency (nothing when disabled).
    pub(crate) fn record_latency(&mut self, latency: Duration) {
        if !self.latency.is_empty() {
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.latency[bucket_of(us)] += 1;
            self.latency_sum_us = self.latency_sum_us.saturating_add(us);
        }
    }

    /// Adds to `p` what changed since the last call: `totals` (messages verified, errors,
    /// connections made, this thread's so far) at once, the latencies about every 50 ms and
    /// whenever `last`.
    pub(crate) fn feed(&mut self, p: &Progress, totals: [u64; 3], now: Instant, last: bool) {
        let counters = [&p.messages, &p.errors, &p.connected];
        for ((counter, total), reported) in counters.iter().zip(totals).zip(&mut self.reported) {
            counter.fetch_add(total - *reported, Ordering::Relaxed);
            *reported = total;
        }
        if now >= self.flushed + Duration::from_millis(50) || last {
            p.latency.add_local(&mut self.latency);
            if self.latency_sum_us > 0 {
                p.latency_sum_us
                    .fetch_add(self.latency_sum_us, Ordering::Relaxed);
                self.latency_sum_us = 0;
            }
            self.flushed = now;
        }
    }

    /// `--udp`: marks `p` as a UDP run's and adds to it what changed since the last call:
    /// `datagrams`, this thread's `[echoed, lost]` so far.
    pub(crate) fn feed_datagrams(&mut self, p: &Progress, datagrams: [u64; 2]) {
        if !p.udp.load(Ordering::Relaxed) {
            p.udp.store(true, Ordering::Relaxed);
        }
        for ((counter, total), reported) in [&p.datagrams_echoed, &p.datagrams_lost]
            .iter()
            .zip(datagrams)
            .zip(&mut self.datagrams_reported)
        {
            if total > *reported {
                counter.fetch_add(total - *reported, Ordering::Relaxed);
                *reported = total;
            }
        }
    }

    /// Adds to `p` the rest of what changed since the last call, for `--metrics`: messages
    /// handed to a send and established connections closed (this thread's totals so far), and
    /// `errors` by kind. Counters that did not change are not touched.
    pub(crate) fn feed_more(&mut self, p: &Progress, sent: u64, closed: u64, errors: &ErrorCounts) {
        for ((counter, total), reported) in [&p.sent, &p.closed]
            .iter()
            .zip([sent, closed])
            .zip(&mut self.more_reported)
        {
            if total > *reported {
                counter.fetch_add(total - *reported, Ordering::Relaxed);
                *reported = total;
            }
        }
        if *errors != self.errors_reported {
            for kind in ErrorKind::ALL {
                let (now, then) = (errors.get(kind), self.errors_reported.get(kind));
                if now > then {
                    p.errors_by_kind[kind.index()].fetch_add(now - then, Ordering::Relaxed);
                }
            }
            self.errors_reported = *errors;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values_within_an_eighth() {
        for us in [0, 1, 7, 8, 9, 15, 16, 100, 1000, 12_345, 1 << 30] {
            let v = bucket_value(bucket_of(us));
            let err = v.abs_diff(us) as f64 / (us.max(1)) as f64;
            assert!(err <= 0.125, "{us} -> {v}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        // A bucket ends where the next begins.
        for i in 0..BUCKETS - 1 {
            let end = bucket_end(i);
            assert_eq!(bucket_of(end - 1), i, "bucket {i} holds {}", end - 1);
            assert_eq!(bucket_of(end), i + 1, "bucket {i} ends at {end}");
        }
        // Increasing values never go to a lower bucket.
        let mut last = 0;
        for us in 0..100_000 {
            let b = bucket_of(us);
            assert!(b >= last);
            last = b;
        }
    }

    #[test]
    fn quantiles_of_the_interval_only() {
        let live = LiveLatency::default();
        let mut local = vec![0u64; BUCKETS];
        local[bucket_of(10_000)] = 100; // an earlier interval: slow
        live.add_local(&mut local);
        assert!(local.iter().all(|&n| n == 0), "the local counts are zeroed");
        let prev = Sample {
            messages: 100,
            latency: live.snapshot(),
            ..Sample::default()
        };
        local[bucket_of(50)] = 98;
        local[bucket_of(400)] = 2;
        live.add_local(&mut local);
        let now = Sample {
            messages: 300,
            errors: 1,
            connected: 4,
            latency: live.snapshot(),
            datagrams: None,
        };
        let text = line(
            &prev,
            &now,
            Duration::from_secs(2),
            Phase::Measuring {
                elapsed: Duration::from_secs(3),
            },
            5,
        );
        assert_eq!(
            text,
            "measuring 3.0s  100 msg/s  p50 50 us  p99 400 us  300 verified  4/5 connected  1 errors"
        );
    }

    #[test]
    fn a_udp_line_says_the_datagrams_lost_beside_the_rate() {
        let t0 = Instant::now();
        let p = Progress::default();
        assert_eq!(p.sample().datagrams, None, "not a UDP run");
        let mut a = ProgressFeed::new(true, t0);
        let mut b = ProgressFeed::new(true, t0);
        a.feed_datagrams(&p, [500, 2]);
        b.feed_datagrams(&p, [490, 0]);
        a.feed_datagrams(&p, [1500, 8]);
        a.feed_datagrams(&p, [1500, 8]);
        let now = Sample {
            messages: 1000,
            ..p.sample()
        };
        assert_eq!(now.datagrams, Some([1990, 8]), "nothing counted twice");
        let text = line(
            &Sample::default(),
            &now,
            Duration::from_secs(1),
            Phase::Measuring {
                elapsed: Duration::from_secs(1),
            },
            2,
        );
        assert!(
            text.starts_with("measuring 1.0s  1000 msg/s  8 lost (0.400%)  p50 -"),
            "{text}"
        );
        assert!(loss([0, 0]).contains("0 lost (0.000%)"));
    }

    #[test]
    fn churn_counts_the_connections_made() {
        let prev = Sample {
            connected: 40,
            ..Sample::default()
        };
        let now = Sample {
            connected: 240,
            ..Sample::default()
        };
        let text = line(&prev, &now, Duration::from_secs(2), Phase::Connecting, 10);
        assert!(text.contains("240 connections made (100/s)"), "{text}");
    }

    #[test]
    fn the_phase_says_warm_up() {
        let t0 = Instant::now();
        let warmup = Duration::from_secs(2);
        assert_eq!(Phase::at(t0, None, warmup), Phase::Connecting);
        assert_eq!(
            Phase::at(t0 + Duration::from_secs(1), Some(t0), warmup),
            Phase::WarmUp {
                left: Duration::from_secs(1)
            }
        );
        assert_eq!(
            Phase::at(t0 + Duration::from_secs(3), Some(t0), warmup),
            Phase::Measuring {
                elapsed: Duration::from_secs(1)
            }
        );
        let text = line(
            &Sample::default(),
            &Sample::default(),
            Duration::from_secs(1),
            Phase::WarmUp {
                left: Duration::from_millis(1500),
            },
            1,
        );
        assert!(
            text.starts_with("warm-up (1.5s left)  0 msg/s  p50 -  p99 -"),
            "{text}"
        );
    }

    #[test]
    fn a_feed_adds_what_changed_and_latencies_in_batches() {
        let t0 = Instant::now();
        let p = Progress::default();
        let mut feed = ProgressFeed::new(true, t0);
        feed.record_latency(Duration::from_micros(100));
        feed.feed(&p, [5, 1, 2], t0, false);
        feed.feed(&p, [8, 1, 3], t0 + Duration::from_millis(10), false);
        let s = p.sample();
        assert_eq!((s.messages, s.errors, s.connected), (8, 1, 3));
        assert_eq!(s.latency.iter().sum::<u64>(), 0, "latencies wait for 50 ms");
        feed.feed(&p, [8, 1, 3], t0 + Duration::from_millis(20), true);
        assert_eq!(
            p.sample().latency.iter().sum::<u64>(),
            1,
            "and go at the end"
        );
        assert_eq!(p.sample().messages, 8, "nothing counted twice");
    }

    #[test]
    fn a_feed_adds_sends_closes_errors_by_kind_and_the_latency_sum() {
        let t0 = Instant::now();
        let p = Progress::default();
        let mut feed = ProgressFeed::new(true, t0);
        feed.record_latency(Duration::from_micros(100));
        feed.record_latency(Duration::from_micros(250));
        feed.feed(&p, [2, 0, 1], t0, true);
        assert_eq!(p.latency_sum_us.load(Ordering::Relaxed), 350);
        let mut errors = ErrorCounts::default();
        errors.add(ErrorKind::Reset);
        feed.feed_more(&p, 5, 0, &errors);
        errors.add(ErrorKind::Reset);
        errors.add(ErrorKind::Timeout);
        feed.feed_more(&p, 9, 1, &errors);
        feed.feed_more(&p, 9, 1, &errors);
        assert_eq!(p.sent.load(Ordering::Relaxed), 9);
        assert_eq!(p.closed.load(Ordering::Relaxed), 1);
        let by_kind = |k: ErrorKind| p.errors_by_kind[k.index()].load(Ordering::Relaxed);
        assert_eq!(by_kind(ErrorKind::Reset), 2, "nothing counted twice");
        assert_eq!(by_kind(ErrorKind::Timeout), 1);
        assert_eq!(by_kind(ErrorKind::Mismatch), 0);
    }

    #[test]
    fn a_disabled_feed_records_no_latency() {
        let t0 = Instant::now();
        let p = Progress::default();
        let mut feed = ProgressFeed::new(false, t0);
        feed.record_latency(Duration::from_micros(100));
        feed.feed(&p, [1, 0, 1], t0, true);
        assert_eq!(p.sample().latency.iter().sum::<u64>(), 0);
        assert_eq!(p.sample().messages, 1);
    }
}
