//! The `tls` object of a result (runs with `--tls`): the handshakes made, full and resumed, their
//! latency (`handshake_us`), their rate, and the handshakes that failed by cause
//! ([`HandshakeFailure`]: certificate, name, protocol, timeout, other).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::histogram::LatencySummary;

/// Why a TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The server's certificate is not trusted: expired or not yet valid, from an unknown
    /// authority, revoked, badly signed, or unusable for a server (or the server refused ours).
    Certificate,
    /// The certificate is valid but not for the name asked for (`--sni`, or the host).
    Name,
    /// No common protocol: version, cipher suite, ALPN, or a peer that does not speak TLS.
    Protocol,
    /// The handshake took longer than `--timeout`.
    Timeout,
    /// Anything else: the connection closed or reset during the handshake.
    Other,
}

impl HandshakeFailure {
    /// Every cause, in report order.
    pub const ALL: [HandshakeFailure; 5] = [
        HandshakeFailure::Certificate,
        HandshakeFailure::Name,
        HandshakeFailure::Protocol,
        HandshakeFailure::Timeout,
        HandshakeFailure::Other,
    ];

    /// The name in JSON and in the human report.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Certificate => "certificate",
            HandshakeFailure::Name => "name",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Other => "other",
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failed handshakes by cause: the `tls.failed` object (every key present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeFailures {
    /// The server's certificate was not trusted.
    pub certificate: u64,
    /// The certificate was not for the name asked for.
    pub name: u64,
    /// No common protocol version, suite or ALPN protocol; not TLS.
    pub protocol: u64,
    /// Slower than `--timeout`.
    pub timeout: u64,
    /// Closed or reset during the handshake, or anything else.
    pub other: u64,
}

impl HandshakeFailures {
    /// Counts one failure of `cause`.
    pub fn add(&mut self, cause: HandshakeFailure) {
        *self.slot(cause) += 1;
    }

    /// Failures of `cause`.
    pub fn get(&self, cause: HandshakeFailure) -> u64 {
        match cause {
            HandshakeFailure::Certificate => self.certificate,
            HandshakeFailure::Name => self.name,
            HandshakeFailure::Protocol => self.protocol,
            HandshakeFailure::Timeout => self.timeout,
            HandshakeFailure::Other => self.other,
        }
    }

    fn slot(&mut self, cause: HandshakeFailure) -> &mut u64 {
        match cause {
            HandshakeFailure::Certificate => &mut self.certificate,
            HandshakeFailure::Name => &mut self.name,
            HandshakeFailure::Protocol => &mut self.protocol,
            HandshakeFailure::Timeout => &mut self.timeout,
            HandshakeFailure::Other => &mut self.other,
        }
    }

    /// Every failure.
    pub fn total(&self) -> u64 {
        HandshakeFailure::ALL.iter().map(|&c| self.get(c)).sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &HandshakeFailures) {
        for c in HandshakeFailure::ALL {
            *self.slot(c) += other.get(c);
        }
    }
}

/// The `tls` object of the report: present when the run had `--tls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsFigures {
    /// The protocol versions negotiated, e.g. `TLSv1.3` (several joined with `+`, as in a merge
    /// of agents that negotiated differently); empty if no handshake completed.
    pub version: String,
    /// Handshakes completed (the first connection of each slot included).
    pub handshakes: u64,
    /// Of those, full handshakes (a certificate sent and verified).
    pub full: u64,
    /// Of those, resumed from a session of an earlier connection (`--tls-resume`).
    pub resumed: u64,
    /// Handshakes completed in the measured window, per second of it (with churn, the
    /// handshake rate; without, every handshake comes before the load: 0).
    pub handshakes_per_s: f64,
    /// Handshake latency in microseconds, from the TCP connection established to the
    /// handshake complete (the `handshake` tag of the interval log).
    pub handshake_us: LatencySummary,
    /// Failed handshakes by cause.
    pub failed: HandshakeFailures,
}

impl TlsFigures {
    /// Adds `other`'s counts to these (a merge); the latency summary and the rate are the
    /// caller's, made from the added histograms and the merged window.
    pub fn add_counts(&mut self, other: &TlsFigures) {
        self.handshakes += other.handshakes;
        self.full += other.full;
        self.resumed += other.resumed;
        self.failed.merge(&other.failed);
        for v in other.version.split('+').filter(|v| !v.is_empty()) {
            if !self.version.split('+').any(|have| have == v) {
                if !self.version.is_empty() {
                    self.version.push('+');
                }
                self.version.push_str(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_count_merge_and_serialise_every_cause() {
        let mut a = HandshakeFailures::default();
        a.add(HandshakeFailure::Certificate);
        a.add(HandshakeFailure::Name);
        let mut b = HandshakeFailures::default();
        b.add(HandshakeFailure::Timeout);
        a.merge(&b);
        assert_eq!((a.certificate, a.name, a.timeout, a.total()), (1, 1, 1, 3));
        let v = serde_json::to_value(a).unwrap();
        assert_eq!(v.as_object().unwrap().len(), HandshakeFailure::ALL.len());
        for c in HandshakeFailure::ALL {
            assert_eq!(v[c.as_str()], a.get(c), "{c}");
        }
    }

    #[test]
    fn merged_counts_add_and_versions_join_once() {
        let zero = LatencySummary::of_or_zero(&crate::histogram::new_histogram());
        let fig = |version: &str, full, resumed| TlsFigures {
            version: version.to_string(),
            handshakes: full + resumed,
            full,
            resumed,
            handshakes_per_s: 0.0,
            handshake_us: zero,
            failed: HandshakeFailures::default(),
        };
        let mut a = fig("TLSv1.3", 2, 3);
        a.add_counts(&fig("TLSv1.3", 1, 0));
        a.add_counts(&fig("TLSv1.2", 0, 4));
        assert_eq!((a.handshakes, a.full, a.resumed), (10, 3, 7));
        assert_eq!(a.version, "TLSv1.3+TLSv1.2");
    }
}
