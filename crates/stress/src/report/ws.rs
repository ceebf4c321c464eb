//! The `websocket` object of a run's result and the `upgrade` interval of its log, from the
//! threads' merged [`WsStats`].

use std::time::Duration;

use hdrhistogram::Histogram;

use ringport_report::hdrlog::{IntervalLog, LogInterval, TAG_CONNECT, TAG_HANDSHAKE, TAG_UPGRADE};
use ringport_report::histogram::LatencySummary;
use ringport_report::websocket::WebSocketFigures;

use crate::measure::ws::WsStats;

/// The `websocket` figures of `stats` for upgrades to `path`, over a measured window of
/// `measured`.
pub fn figures(stats: &WsStats, path: &str, measured: Duration) -> WebSocketFigures {
    let secs = measured.as_secs_f64();
    WebSocketFigures {
        path: path.to_string(),
        upgrades: stats.upgrades,
        upgrades_per_s: if secs > 0.0 {
            stats.in_window as f64 / secs
        } else {
            0.0
        },
        upgrade_us: LatencySummary::of_or_zero(&stats.upgrade),
        failed: stats.failed,
        messages_sent: stats.messages_sent,
        messages_echoed: stats.messages_echoed,
        close_codes: stats.close_codes.clone(),
    }
}

/// The `websocket` figures of a merge: the agents' counts and rates added, the latency that of
/// `upgrade`, the agents' histograms added.
pub fn merged<'a>(
    mut agents: impl Iterator<Item = &'a WebSocketFigures>,
    upgrade: &Histogram<u64>,
) -> Option<WebSocketFigures> {
    let mut total = agents.next()?.clone();
    let mut per_s = total.upgrades_per_s;
    for a in agents {
        total.add_counts(a);
        per_s += a.upgrades_per_s;
    }
    total.upgrades_per_s = per_s;
    total.upgrade_us = LatencySummary::of_or_zero(upgrade);
    Some(total)
}

/// Adds the `upgrade` interval (the whole run, like `connect`) of histogram `h` to `log`,
/// after `connect` (and `handshake`, with `--tls`).
pub fn add_upgrade_interval(log: &mut IntervalLog, h: &Histogram<u64>) {
    let at = log
        .intervals
        .iter()
        .rposition(|i| i.tag == TAG_CONNECT || i.tag == TAG_HANDSHAKE)
        .map_or(0, |p| p + 1);
    let length = log
        .intervals
        .iter()
        .find(|i| i.tag == TAG_CONNECT)
        .map_or(Duration::ZERO, |i| i.length);
    log.intervals
        .insert(at, LogInterval::new(TAG_UPGRADE, Duration::ZERO, length, h));
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use ringport_report::histogram::new_histogram;

    #[test]
    fn figures_and_the_interval_after_connect_and_handshake() {
        let mut s = WsStats::default();
        s.record(Duration::from_micros(500), true);
        s.record(Duration::from_micros(200), false);
        let f = figures(&s, "/e", Duration::from_secs(2));
        assert_eq!(
            (f.upgrades, f.upgrades_per_s, f.upgrade_us.count),
            (2, 0.5, 2)
        );
        let interval = |tag| {
            LogInterval::new(
                tag,
                Duration::ZERO,
                Duration::from_secs(2),
                &new_histogram(),
            )
        };
        let mut log = IntervalLog {
            start: SystemTime::UNIX_EPOCH,
            run_id: None,
            segment: None,
            intervals: vec![
                interval(TAG_CONNECT),
                interval(TAG_HANDSHAKE),
                interval("latency"),
            ],
        };
        add_upgrade_interval(&mut log, &s.upgrade);
        let tags: Vec<&str> = log.intervals.iter().map(|i| i.tag.as_str()).collect();
        assert_eq!(tags, ["connect", "handshake", "upgrade", "latency"]);
        assert_eq!(log.intervals[2].histogram().unwrap().len(), 2);
        let merged = merged([&f, &f].into_iter(), &s.upgrade).unwrap();
        assert_eq!((merged.upgrades, merged.upgrades_per_s), (4, 1.0));
    }
}
