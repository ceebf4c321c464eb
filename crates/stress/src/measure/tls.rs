//! What a run with `--tls` counts: handshakes completed (full or resumed, and those in the
//! measured window), their latency, the version negotiated, and failed handshakes by cause.

use std::time::Duration;

use hdrhistogram::Histogram;
use ringport_report::histogram::{micros, new_histogram};
use ringport_report::tls::{HandshakeFailure, HandshakeFailures};

/// One client thread's handshakes.
#[derive(Debug, Clone)]
pub struct TlsStats {
    /// Handshake latency, µs: TCP connection established to handshake complete.
    pub handshake: Histogram<u64>,
    /// Full handshakes completed.
    pub full: u64,
    /// Resumed handshakes completed.
    pub resumed: u64,
    /// Handshakes completed while the measured window was open.
    pub in_window: u64,
    /// The versions negotiated (`TLSv1.3`, `TLSv1.2`), each once.
    pub versions: Vec<&'static str>,
    /// Failed handshakes by cause.
    pub failed: HandshakeFailures,
}

impl Default for TlsStats {
    fn default() -> Self {
        TlsStats {
            handshake: new_histogram(),
            full: 0,
            resumed: 0,
            in_window: 0,
            versions: Vec::with_capacity(2),
            failed: HandshakeFailures::default(),
        }
    }
}

impl TlsStats {
    /// Records a completed handshake that took `took`.
    pub fn record(
        &mut self,
        took: Duration,
        resumed: bool,
        version: &'static str,
        in_window: bool,
    ) {
        self.handshake.saturating_record(micros(took));
        if resumed {
            self.resumed += 1;
        } else {
            self.full += 1;
        }
        if in_window {
            self.in_window += 1;
        }
        if !version.is_empty() && !self.versions.contains(&version) {
            self.versions.push(version);
        }
    }

    /// Counts a failed handshake.
    pub fn record_failure(&mut self, cause: HandshakeFailure) {
        self.failed.add(cause);
    }

    /// Adds `other` (another thread's) into these.
    pub fn merge(&mut self, other: &TlsStats) {
        self.handshake
            .add(&other.handshake)
            .expect("histograms of the same bounds add");
        self.full += other.full;
        self.resumed += other.resumed;
        self.in_window += other.in_window;
        for v in &other.versions {
            if !self.versions.contains(v) {
                self.versions.push(v);
            }
        }
        self.failed.merge(&other.failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_merges() {
        let mut a = TlsStats::default();
        a.record(Duration::from_micros(800), false, "TLSv1.3", false);
        let mut b = TlsStats::default();
        b.record(Duration::from_micros(300), true, "TLSv1.3", true);
        b.record_failure(HandshakeFailure::Timeout);
        a.merge(&b);
        assert_eq!((a.full, a.resumed, a.in_window), (1, 1, 1));
        assert_eq!(a.handshake.len(), 2);
        assert_eq!(a.versions, ["TLSv1.3"]);
        assert_eq!(a.failed.timeout, 1);
    }
}
