//! What a run with `--websocket` counts: upgrades completed (and those in the measured
//! window), their latency, failed upgrades by cause, data messages sent and echoed, and the
//! close codes the server sent.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use ringport_report::histogram::{micros, new_histogram};
use ringport_report::websocket::{UpgradeFailure, UpgradeFailures};

use crate::ws::session::WsSession;

/// One client thread's WebSocket figures.
#[derive(Debug, Clone)]
pub struct WsStats {
    /// Upgrade latency, µs: upgrade request queued to the 101 received.
    pub upgrade: Histogram<u64>,
    /// Upgrades completed.
    pub upgrades: u64,
    /// Upgrades completed while the measured window was open.
    pub in_window: u64,
    /// Failed upgrades by cause.
    pub failed: UpgradeFailures,
    /// Data messages sent.
    pub messages_sent: u64,
    /// Data messages echoed whole.
    pub messages_echoed: u64,
    /// Close frames received, by code.
    pub close_codes: BTreeMap<u16, u64>,
}

impl Default for WsStats {
    fn default() -> Self {
        WsStats {
            upgrade: new_histogram(),
            upgrades: 0,
            in_window: 0,
            failed: UpgradeFailures::default(),
            messages_sent: 0,
            messages_echoed: 0,
            close_codes: BTreeMap::new(),
        }
    }
}

impl WsStats {
    /// Records a completed upgrade that took `took`.
    pub fn record(&mut self, took: Duration, in_window: bool) {
        self.upgrade.saturating_record(micros(took));
        self.upgrades += 1;
        if in_window {
            self.in_window += 1;
        }
    }

    /// Counts a failed upgrade.
    pub fn record_failure(&mut self, cause: UpgradeFailure) {
        self.failed.add(cause);
    }

    /// Adds what a connection's session counted, at its close.
    pub fn add_session(&mut self, s: &WsSession) {
        self.messages_sent += s.messages_sent;
        self.messages_echoed += s.messages_echoed;
        if let Some(code) = s.close_code {
            *self.close_codes.entry(code).or_default() += 1;
        }
    }

    /// Adds `other` (another thread's) into these.
    pub fn merge(&mut self, other: &WsStats) {
        self.upgrade
            .add(&other.upgrade)
            .expect("histograms of the same bounds add");
        self.upgrades += other.upgrades;
        self.in_window += other.in_window;
        self.failed.merge(&other.failed);
        self.messages_sent += other.messages_sent;
        self.messages_echoed += other.messages_echoed;
        for (&code, &n) in &other.close_codes {
            *self.close_codes.entry(code).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_merges() {
        let mut a = WsStats::default();
        a.record(Duration::from_micros(800), false);
        a.close_codes.insert(1000, 1);
        let mut b = WsStats::default();
        b.record(Duration::from_micros(300), true);
        b.record_failure(UpgradeFailure::Status);
        b.close_codes.insert(1000, 2);
        b.messages_sent = 5;
        a.merge(&b);
        assert_eq!((a.upgrades, a.in_window, a.messages_sent), (2, 1, 5));
        assert_eq!(a.upgrade.len(), 2);
        assert_eq!(a.failed.status, 1);
        assert_eq!(a.close_codes[&1000], 3);
    }
}
