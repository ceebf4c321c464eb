//! Pacing: when each message (open loop, `--rate`) and each connection (`--connect-rate`) is due.
//!
//! This module is responsible for intended times, as plain arithmetic with no clock reads of its
//! own, so it can be tested exactly.
//!
//! # The open-loop schedule
//!
//! `--rate R` over `N` connections gives every connection `R / N` messages per second, and the
//! connections are staggered so the sends are spread evenly in time rather than bunched: send
//! number `k` (0-based) of connection `c` is due at
//!
//! ```text
//! start + (c + k * N) / R seconds
//! ```
//!
//! so the whole run is one evenly spaced sequence `s = c + k * N` at `1 / R` seconds apart. The
//! latency of a message is measured from this intended time, not from when the client got round
//! to sending it: if the server stalls, the sends that should have happened during the stall are
//! charged with the stall (coordinated omission corrected, as in wrk2).
//!
//! A `--segment I/N` owns a contiguous block of the connections, and with `c` itself as the
//! position in the period, each segment would send all its messages in its own `1/N` of every
//! period, at the whole run's rate: with many agents (`benches/scale-active.sh` runs 53), each in
//! turn carries the whole load alone. So a segment's connections take their places spread over
//! the period instead, interleaved with the other segments' ([`RateSchedule::segmented`]):
//! connection `j` (0-based within a segment of `n`) of segment `I` of `N` sits at
//!
//! ```text
//! slot = floor((j * N + I - 1) * C / (n * N))        (C: the whole run's connections)
//! ```
//!
//! which is `c` for the whole run (`1/1`), `j * N + I - 1` when the segments are equal, always
//! below `C` and increasing with `j`. Every connection still sends every `C / R` seconds, the same
//! bytes; only the phases differ, so the segments together send at `R` in every part of the
//! period and each at its own share of it.
//!
//! A client thread drives a subset of the connections; [`ThreadSchedule`] walks that subset's
//! due times in time order without a heap: for a sorted set of connection indices, the order
//! `k = 0, 1, ...` then connection within `k` is already sorted by `c + k * N`.
//!
//! Connections are assigned to threads round-robin ([`connections_of_thread`]) and opened at
//! most `--connect-rate` per second in total ([`Pacer`]).

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plan::ramp::RateCurve;

/// An even pace: event `i` (0-based) is due at `start + i / rate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    start: Instant,
    rate: f64,
}

impl Pacer {
    /// A pace of `rate` events per second from `start`. `rate` must be positive and finite.
    pub fn new(start: Instant, rate: f64) -> Pacer {
        assert!(
            rate.is_finite() && rate > 0.0,
            "rate must be positive, got {rate}"
        );
        Pacer { start, rate }
    }

    /// When event `i` is due.
    pub fn due(&self, i: u64) -> Instant {
        self.start + offset(i, self.rate)
    }

    /// The start time.
    pub fn start(&self) -> Instant {
        self.start
    }
}

/// `i / rate` seconds, computed in f64 nanoseconds (exact to the nanosecond for runs of weeks).
fn offset(i: u64, rate: f64) -> Duration {
    Duration::from_nanos((i as f64 * 1e9 / rate).round() as u64)
}

/// The open-loop schedule of the whole run: `rate` messages per second over `connections`
/// connections, staggered, or under a rate ramp the same sequence due along its
/// [`RateCurve`]. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSchedule {
    pacer: Pacer,
    connections: u64,
    curve: Option<Arc<RateCurve>>,
    spread: Option<Spread>,
}

/// Where a segment's connections sit in the send period: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spread {
    /// The segment's first connection (global index) and how many it has.
    first: u64,
    len: u64,
    /// The segment, 0-based, and how many there are.
    index: u64,
    count: u64,
}

impl RateSchedule {
    /// `rate` messages per second in total over `connections` connections, from `start`.
    pub fn new(start: Instant, rate: f64, connections: usize) -> RateSchedule {
        assert!(connections > 0, "a schedule needs connections");
        RateSchedule {
            pacer: Pacer::new(start, rate),
            connections: connections as u64,
            curve: None,
            spread: None,
        }
    }

    /// The same sequence of sends due along `curve` (a rate ramp) from `start`; `peak` is the
    /// ramp's highest rate.
    pub fn ramped(start: Instant, curve: RateCurve, peak: f64, connections: usize) -> RateSchedule {
        RateSchedule {
            curve: Some(Arc::new(curve)),
            ..RateSchedule::new(start, peak, connections)
        }
    }

    /// The same schedule for the connections `own` (a block of the whole run's) of segment
    /// `index` (1-based) of `count`: each connection takes its place spread over the send period,
    /// interleaved with the other segments' (see the module docs). For the whole run, unchanged.
    pub fn segmented(self, own: Range<usize>, index: usize, count: usize) -> RateSchedule {
        assert!(
            (1..=count).contains(&index) && own.end as u64 <= self.connections,
            "segment {index}/{count} with connections {own:?} of {}",
            self.connections
        );
        // The whole run (one segment) keeps each connection's own place: no arithmetic per send.
        RateSchedule {
            spread: (!own.is_empty() && count > 1).then_some(Spread {
                first: own.start as u64,
                len: own.len() as u64,
                index: index as u64 - 1,
                count: count as u64,
            }),
            ..self
        }
    }

    /// The place of `connection` (global index) in the send period, `0 .. connections`.
    fn slot(&self, connection: usize) -> u64 {
        match self.spread {
            None => connection as u64,
            Some(s) => {
                let j = u128::from(connection as u64 - s.first);
                let place = (j * u128::from(s.count) + u128::from(s.index))
                    * u128::from(self.connections)
                    / u128::from(s.len * s.count);
                place as u64
            }
        }
    }

    /// The intended time of send `k` (0-based) on connection `connection` (global index).
    pub fn intended(&self, connection: usize, k: u64) -> Instant {
        let s = self.slot(connection) + k.saturating_mul(self.connections);
        match &self.curve {
            None => self.pacer.due(s),
            Some(curve) => self.pacer.start() + curve.due(s),
        }
    }

    /// Each connection's interval between sends (`N / R`).
    pub fn per_connection_interval(&self) -> Duration {
        offset(self.connections, self.pacer.rate)
    }

    /// The schedule's start.
    pub fn start(&self) -> Instant {
        self.pacer.start()
    }
}

/// One due send of a thread's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Position of the connection in the thread's list (its local slot).
    pub local: usize,
    /// The connection's global index.
    pub connection: usize,
    /// Send number on that connection (0-based).
    pub k: u64,
    /// When it is due.
    pub at: Instant,
}

/// The due sends of one thread's connections, in time order. See the module docs.
#[derive(Debug, Clone)]
pub struct ThreadSchedule {
    schedule: RateSchedule,
    connections: Vec<usize>,
    next_local: usize,
    next_k: u64,
}

impl ThreadSchedule {
    /// The schedule of the connections in `connections` (global indices, strictly increasing).
    pub fn new(schedule: RateSchedule, connections: Vec<usize>) -> ThreadSchedule {
        debug_assert!(
            connections.windows(2).all(|w| w[0] < w[1]),
            "sorted, distinct"
        );
        ThreadSchedule {
            schedule,
            connections,
            next_local: 0,
            next_k: 0,
        }
    }

    /// The next due send, without consuming it; `None` if the thread has no connections.
    pub fn peek(&self) -> Option<Due> {
        let connection = *self.connections.get(self.next_local)?;
        Some(Due {
            local: self.next_local,
            connection,
            k: self.next_k,
            at: self.schedule.intended(connection, self.next_k),
        })
    }

    /// Consumes and returns the next due send if it is due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Due> {
        let due = self.peek()?;
        if due.at > now {
            return None;
        }
        self.next_local += 1;
        if self.next_local == self.connections.len() {
            self.next_local = 0;
            self.next_k += 1;
        }
        Some(due)
    }

    /// When the next send is due (for the wait timeout), if any.
    pub fn next_at(&self) -> Option<Instant> {
        self.peek().map(|d| d.at)
    }

    /// The whole run's schedule.
    pub fn schedule(&self) -> &RateSchedule {
        &self.schedule
    }
}

/// The global indices of the connections thread `thread` of `threads` drives: round-robin, so
/// `thread, thread + threads, ...` below `connections`.
pub fn connections_of_thread(thread: usize, threads: usize, connections: usize) -> Vec<usize> {
    (thread..connections).step_by(threads.max(1)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_is_even() {
        let t0 = Instant::now();
        let p = Pacer::new(t0, 4.0);
        assert_eq!(p.due(0), t0);
        assert_eq!(p.due(1), t0 + Duration::from_millis(250));
        assert_eq!(p.due(4), t0 + Duration::from_secs(1));
        assert_eq!(p.due(3_600_000 * 4), t0 + Duration::from_secs(3_600_000));
    }

    #[test]
    #[should_panic(expected = "rate must be positive")]
    fn pacer_rejects_zero_rate() {
        Pacer::new(Instant::now(), 0.0);
    }

    #[test]
    fn rate_schedule_staggers_connections() {
        let t0 = Instant::now();
        // 1000 msg/s over 4 connections: each sends every 4 ms, staggered by 1 ms.
        let s = RateSchedule::new(t0, 1000.0, 4);
        assert_eq!(s.intended(0, 0), t0);
        assert_eq!(s.intended(1, 0), t0 + Duration::from_millis(1));
        assert_eq!(s.intended(3, 0), t0 + Duration::from_millis(3));
        assert_eq!(s.intended(0, 1), t0 + Duration::from_millis(4));
        assert_eq!(s.intended(2, 5), t0 + Duration::from_millis(22));
        assert_eq!(s.per_connection_interval(), Duration::from_millis(4));
    }

    #[test]
    fn threads_split_connections_round_robin() {
        assert_eq!(connections_of_thread(0, 3, 8), vec![0, 3, 6]);
        assert_eq!(connections_of_thread(1, 3, 8), vec![1, 4, 7]);
        assert_eq!(connections_of_thread(2, 3, 8), vec![2, 5]);
        assert_eq!(connections_of_thread(4, 5, 3), Vec::<usize>::new());
        let mut all: Vec<usize> = (0..3)
            .flat_map(|t| connections_of_thread(t, 3, 8))
            .collect();
        all.sort();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn thread_schedule_yields_in_time_order_and_only_when_due() {
        let t0 = Instant::now();
        let s = RateSchedule::new(t0, 1000.0, 4);
        let mut ts = ThreadSchedule::new(s.clone(), connections_of_thread(1, 2, 4)); // connections 1, 3
        assert_eq!(ts.next_at(), Some(t0 + Duration::from_millis(1)));
        assert_eq!(
            ts.pop_due(t0),
            None,
            "nothing due at t0 for connections 1 and 3"
        );
        let mut seen = Vec::new();
        let end = t0 + Duration::from_millis(12);
        while let Some(d) = ts.pop_due(end) {
            assert_eq!(d.at, s.intended(d.connection, d.k));
            seen.push((d.connection, d.k, (d.at - t0).as_millis()));
        }
        assert_eq!(
            seen,
            vec![
                (1, 0, 1),
                (3, 0, 3),
                (1, 1, 5),
                (3, 1, 7),
                (1, 2, 9),
                (3, 2, 11)
            ]
        );
        assert_eq!(ts.next_at(), Some(t0 + Duration::from_millis(13)));
    }

    #[test]
    fn all_threads_together_send_at_the_total_rate() {
        let t0 = Instant::now();
        let s = RateSchedule::new(t0, 10_000.0, 7);
        let end = t0 + Duration::from_secs(1);
        let mut total = 0;
        for t in 0..3 {
            let mut ts = ThreadSchedule::new(s.clone(), connections_of_thread(t, 3, 7));
            while ts.pop_due(end).is_some() {
                total += 1;
            }
        }
        // Sends at 0, 0.1 ms, ..., 1000 ms inclusive.
        assert_eq!(total, 10_001);
    }

    #[test]
    fn empty_thread_schedule() {
        let s = RateSchedule::new(Instant::now(), 10.0, 1);
        let mut ts = ThreadSchedule::new(s, vec![]);
        assert_eq!(ts.peek(), None);
        assert_eq!(ts.pop_due(Instant::now() + Duration::from_secs(9)), None);
    }

    /// The first send of every connection of every segment: (slot in the period, segment).
    fn first_slots(connections: usize, segments: usize) -> Vec<(u64, usize)> {
        let t0 = Instant::now();
        let mut all = Vec::new();
        for i in 1..=segments {
            let own = crate::plan::segment::Segment {
                index: i,
                count: segments,
            }
            .range(connections);
            let s = RateSchedule::new(t0, connections as f64, connections).segmented(
                own.clone(),
                i,
                segments,
            );
            let mut last = None;
            for c in own {
                let at = s.intended(c, 0) - t0;
                let slot = (at.as_secs_f64() * connections as f64).round() as u64;
                assert!(slot < connections as u64, "slot {slot} of connection {c}");
                assert!(last < Some(slot), "slots increase within segment {i}");
                assert_eq!(s.intended(c, 3) - s.intended(c, 2), Duration::from_secs(1));
                last = Some(slot);
                all.push((slot, i));
            }
        }
        all.sort();
        all
    }

    #[test]
    fn segments_interleave_over_the_period_instead_of_sending_in_blocks() {
        // The whole run is unchanged: connection c at slot c.
        assert_eq!(
            first_slots(7, 1),
            (0..7).map(|c| (c, 1)).collect::<Vec<_>>()
        );
        // Equal segments interleave exactly: slots 0, 1, 2, ... taken by segments 1, 2, 3, 1, ...
        let equal = first_slots(300, 3);
        assert_eq!(equal.len(), 300);
        for (k, &(slot, seg)) in equal.iter().enumerate() {
            assert_eq!((slot, seg), (k as u64, k % 3 + 1));
        }
        // Unequal ones (3, 3, 4 of 10): every segment reaches across the period, none in a block.
        let unequal = first_slots(10, 3);
        for seg in 1..=3 {
            let mine: Vec<u64> = unequal.iter().filter(|s| s.1 == seg).map(|s| s.0).collect();
            assert!(
                mine[0] <= 2 && *mine.last().unwrap() >= 6,
                "segment {seg}: {mine:?}"
            );
        }
        // 53 agents over a million: within any tenth of the period, every agent sends its share.
        let t0 = Instant::now();
        let (c, n) = (1_000_000usize, 53usize);
        for i in [1, 27, 53] {
            let seg = crate::plan::segment::Segment { index: i, count: n };
            let own = seg.range(c);
            let s = RateSchedule::new(t0, 100_000.0, c).segmented(own.clone(), i, n);
            let period = s.per_connection_interval();
            let tenth = own
                .clone()
                .filter(|&x| s.intended(x, 0) - t0 < period / 10)
                .count();
            assert!(
                tenth.abs_diff(own.len() / 10) <= 1,
                "segment {i}: {tenth} of {} in the first tenth",
                own.len()
            );
        }
    }
}
