//! The `websocket` object of a result (runs with `--websocket`): the upgrades made, their
//! latency (`upgrade_us`), the upgrades that failed by cause ([`UpgradeFailure`]: status, accept
//! key, timeout, other), the messages sent and echoed, and the close codes the server sent.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::histogram::LatencySummary;

/// Why a WebSocket upgrade failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeFailure {
    /// The server answered with another status than `101 Switching Protocols`, or without
    /// `Upgrade: websocket` and `Connection: Upgrade`.
    Status,
    /// The server's `Sec-WebSocket-Accept` is not the one the client's key calls for.
    AcceptKey,
    /// No answer within `--timeout`.
    Timeout,
    /// Anything else: the connection closed or reset during the upgrade, or its answer was not
    /// HTTP.
    Other,
}

impl UpgradeFailure {
    /// Every cause, in report order.
    pub const ALL: [UpgradeFailure; 4] = [
        UpgradeFailure::Status,
        UpgradeFailure::AcceptKey,
        UpgradeFailure::Timeout,
        UpgradeFailure::Other,
    ];

    /// The name in JSON and in the human report.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeFailure::Status => "status",
            UpgradeFailure::AcceptKey => "accept_key",
            UpgradeFailure::Timeout => "timeout",
            UpgradeFailure::Other => "other",
        }
    }
}

impl fmt::Display for UpgradeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failed upgrades by cause: the `websocket.failed` object (every key present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeFailures {
    /// Refused: a status other than 101 (or a 101 without the upgrade headers).
    pub status: u64,
    /// A wrong `Sec-WebSocket-Accept`.
    pub accept_key: u64,
    /// Slower than `--timeout`.
    pub timeout: u64,
    /// Closed, reset or garbled during the upgrade.
    pub other: u64,
}

impl UpgradeFailures {
    /// Counts one failure of `cause`.
    pub fn add(&mut self, cause: UpgradeFailure) {
        *self.slot(cause) += 1;
    }

    /// Failures of `cause`.
    pub fn get(&self, cause: UpgradeFailure) -> u64 {
        match cause {
            UpgradeFailure::Status => self.status,
            UpgradeFailure::AcceptKey => self.accept_key,
            UpgradeFailure::Timeout => self.timeout,
            UpgradeFailure::Other => self.other,
        }
    }

    fn slot(&mut self, cause: UpgradeFailure) -> &mut u64 {
        match cause {
            UpgradeFailure::Status => &mut self.status,
            UpgradeFailure::AcceptKey => &mut self.accept_key,
            UpgradeFailure::Timeout => &mut self.timeout,
            UpgradeFailure::Other => &mut self.other,
        }
    }

    /// Every failure.
    pub fn total(&self) -> u64 {
        UpgradeFailure::ALL.iter().map(|&c| self.get(c)).sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &UpgradeFailures) {
        for c in UpgradeFailure::ALL {
            *self.slot(c) += other.get(c);
        }
    }
}

/// The `websocket` object of the report: present when the run had `--websocket`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSocketFigures {
    /// The path of the upgrade request, e.g. `/`.
    pub path: String,
    /// Upgrades completed (`101 Switching Protocols` with the right accept key).
    pub upgrades: u64,
    /// Upgrades completed in the measured window, per second of it (with churn, the upgrade
    /// rate; without, every upgrade comes before the load: 0).
    pub upgrades_per_s: f64,
    /// Upgrade latency in microseconds, from the upgrade request queued (the TCP connection
    /// established, with `--tls` the TLS handshake complete) to the server's 101 received
    /// (the `upgrade` tag of the interval log).
    pub upgrade_us: LatencySummary,
    /// Failed upgrades by cause.
    pub failed: UpgradeFailures,
    /// Data messages sent (one masked frame each), the warm-up included.
    pub messages_sent: u64,
    /// Data messages received back whole, each the length of the message it echoes, the
    /// warm-up included.
    pub messages_echoed: u64,
    /// Close frames received from the server, by close code (`"1000": 3`); a close frame
    /// without a code counts under `1005`, as RFC 6455 names it.
    pub close_codes: BTreeMap<u16, u64>,
}

impl WebSocketFigures {
    /// Adds `other`'s counts to these (a merge); the latency summary and the rate are the
    /// caller's, made from the added histograms and the merged window.
    pub fn add_counts(&mut self, other: &WebSocketFigures) {
        self.upgrades += other.upgrades;
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
    fn failures_count_merge_and_serialise_every_cause() {
        let mut a = UpgradeFailures::default();
        a.add(UpgradeFailure::Status);
        a.add(UpgradeFailure::AcceptKey);
        let mut b = UpgradeFailures::default();
        b.add(UpgradeFailure::Timeout);
        b.add(UpgradeFailure::Status);
        a.merge(&b);
        assert_eq!((a.status, a.accept_key, a.timeout, a.total()), (2, 1, 1, 4));
        let v = serde_json::to_value(a).unwrap();
        assert_eq!(v.as_object().unwrap().len(), UpgradeFailure::ALL.len());
        for c in UpgradeFailure::ALL {
            assert_eq!(v[c.as_str()], a.get(c), "{c}");
        }
    }

    #[test]
    fn merged_counts_add_and_close_codes_round_trip() {
        let zero = LatencySummary::of_or_zero(&crate::histogram::new_histogram());
        let fig = |upgrades, codes: &[(u16, u64)]| WebSocketFigures {
            path: "/".to_string(),
            upgrades,
            upgrades_per_s: 0.0,
            upgrade_us: zero,
            failed: UpgradeFailures::default(),
            messages_sent: upgrades * 10,
            messages_echoed: upgrades * 9,
            close_codes: codes.iter().copied().collect(),
        };
        let mut a = fig(2, &[(1000, 2)]);
        a.add_counts(&fig(3, &[(1000, 1), (1011, 2)]));
        assert_eq!(
            (a.upgrades, a.messages_sent, a.messages_echoed),
            (5, 50, 45)
        );
        assert_eq!(a.close_codes.get(&1000), Some(&3));
        assert_eq!(a.close_codes.get(&1011), Some(&2));
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["close_codes"]["1011"], 2);
        let back: WebSocketFigures = serde_json::from_value(json).unwrap();
        assert_eq!(back, a);
    }
}
