//! The `tls` object of a run's result and the `handshake` interval of its log, from the
//! threads' merged [`TlsStats`].

use std::time::Duration;

use hdrhistogram::Histogram;

use ringport_report::hdrlog::{IntervalLog, LogInterval, TAG_CONNECT, TAG_HANDSHAKE};
use ringport_report::histogram::LatencySummary;
use ringport_report::tls::TlsFigures;

use crate::measure::tls::TlsStats;

/// The `tls` figures of `stats` over a measured window of `measured`.
pub fn figures(stats: &TlsStats, measured: Duration) -> TlsFigures {
    let secs = measured.as_secs_f64();
    TlsFigures {
        version: stats.versions.join("+"),
        handshakes: stats.full + stats.resumed,
        full: stats.full,
        resumed: stats.resumed,
        handshakes_per_s: if secs > 0.0 {
            stats.in_window as f64 / secs
        } else {
            0.0
        },
        handshake_us: LatencySummary::of_or_zero(&stats.handshake),
        failed: stats.failed,
    }
}

/// The `tls` figures of a merge: the agents' counts and rates added, the latency that of
/// `handshake`, the agents' histograms added.
pub fn merged<'a>(
    mut agents: impl Iterator<Item = &'a TlsFigures>,
    handshake: &Histogram<u64>,
) -> Option<TlsFigures> {
    let mut total = agents.next()?.clone();
    let mut per_s = total.handshakes_per_s;
    for a in agents {
        total.add_counts(a);
        per_s += a.handshakes_per_s;
    }
    total.handshakes_per_s = per_s;
    total.handshake_us = LatencySummary::of_or_zero(handshake);
    Some(total)
}

/// Adds the `handshake` interval (the whole run, like `connect`) of histogram `h` to `log`,
/// after `connect`.
pub fn add_handshake_interval(log: &mut IntervalLog, h: &Histogram<u64>) {
    let at = log
        .intervals
        .iter()
        .position(|i| i.tag == TAG_CONNECT)
        .map_or(0, |p| p + 1);
    let length = log
        .intervals
        .get(at.saturating_sub(1))
        .map_or(Duration::ZERO, |i| i.length);
    log.intervals.insert(
        at,
        LogInterval::new(TAG_HANDSHAKE, Duration::ZERO, length, h),
    );
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use ringport_report::histogram::new_histogram;

    #[test]
    fn figures_and_the_interval_after_connect() {
        let mut s = TlsStats::default();
        s.record(Duration::from_micros(500), false, "TLSv1.3", true);
        s.record(Duration::from_micros(200), true, "TLSv1.3", true);
        let f = figures(&s, Duration::from_secs(2));
        assert_eq!((f.handshakes, f.full, f.resumed), (2, 1, 1));
        assert_eq!(f.handshakes_per_s, 1.0);
        assert_eq!(f.handshake_us.count, 2);
        let mut log = IntervalLog {
            start: SystemTime::UNIX_EPOCH,
            run_id: None,
            segment: None,
            intervals: vec![
                LogInterval::new(
                    TAG_CONNECT,
                    Duration::ZERO,
                    Duration::from_secs(2),
                    &new_histogram(),
                ),
                LogInterval::new(
                    "latency",
                    Duration::ZERO,
                    Duration::from_secs(1),
                    &new_histogram(),
                ),
            ],
        };
        add_handshake_interval(&mut log, &s.handshake);
        let tags: Vec<&str> = log.intervals.iter().map(|i| i.tag.as_str()).collect();
        assert_eq!(tags, ["connect", "handshake", "latency"]);
        assert_eq!(log.intervals[1].histogram().unwrap().len(), 2);
        assert_eq!(log.intervals[1].length, Duration::from_secs(2));
    }
}
