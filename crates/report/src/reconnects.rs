//! The `churn` object of a result (runs with `--messages-per-connection`): connections per
//! second, connect latency, and failed connections by cause ([`ReconnectErrorKind`]: refused,
//! reset, timeout, EADDRNOTAVAIL, other).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::histogram::LatencySummary;

/// Why a connection of a churn run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectErrorKind {
    /// The connect was refused (`ECONNREFUSED`: nothing listens, or the backlog is full and the
    /// server's kernel answers with a reset).
    Refused,
    /// The connection was reset (at connect, or during its exchanges: `ECONNRESET`, `EPIPE`,
    /// `ECONNABORTED`).
    Reset,
    /// A connect or a reply took longer than `--timeout`.
    Timeout,
    /// No local port was free (`EADDRNOTAVAIL` at connect, `EADDRINUSE` at bind): `TIME_WAIT`
    /// or the ephemeral port range is the limit.
    AddrNotAvailable,
    /// Anything else, including verification errors (the report's `errors_by_kind` names them).
    Other,
}

impl ReconnectErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ReconnectErrorKind; 5] = [
        ReconnectErrorKind::Refused,
        ReconnectErrorKind::Reset,
        ReconnectErrorKind::Timeout,
        ReconnectErrorKind::AddrNotAvailable,
        ReconnectErrorKind::Other,
    ];

    /// The name in JSON and in the human report.
    pub fn as_str(self) -> &'static str {
        match self {
            ReconnectErrorKind::Refused => "refused",
            ReconnectErrorKind::Reset => "reset",
            ReconnectErrorKind::Timeout => "timeout",
            ReconnectErrorKind::AddrNotAvailable => "addr_not_available",
            ReconnectErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ReconnectErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failed connections of a churn run by cause: the `churn.errors` object (every key present).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconnectErrors {
    /// `ECONNREFUSED`.
    pub refused: u64,
    /// Reset at connect or during the exchanges.
    pub reset: u64,
    /// A connect or a reply slower than `--timeout`.
    pub timeout: u64,
    /// `EADDRNOTAVAIL` (no local port free).
    pub addr_not_available: u64,
    /// Anything else (verification errors among them).
    pub other: u64,
}

impl ReconnectErrors {
    /// Counts one failure of `kind`.
    pub fn add(&mut self, kind: ReconnectErrorKind) {
        *self.slot(kind) += 1;
    }

    /// Failures of `kind`.
    pub fn get(&self, kind: ReconnectErrorKind) -> u64 {
        match kind {
            ReconnectErrorKind::Refused => self.refused,
            ReconnectErrorKind::Reset => self.reset,
            ReconnectErrorKind::Timeout => self.timeout,
            ReconnectErrorKind::AddrNotAvailable => self.addr_not_available,
            ReconnectErrorKind::Other => self.other,
        }
    }

    fn slot(&mut self, kind: ReconnectErrorKind) -> &mut u64 {
        match kind {
            ReconnectErrorKind::Refused => &mut self.refused,
            ReconnectErrorKind::Reset => &mut self.reset,
            ReconnectErrorKind::Timeout => &mut self.timeout,
            ReconnectErrorKind::AddrNotAvailable => &mut self.addr_not_available,
            ReconnectErrorKind::Other => &mut self.other,
        }
    }

    /// Every failure.
    pub fn total(&self) -> u64 {
        ReconnectErrorKind::ALL.iter().map(|&k| self.get(k)).sum()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &ReconnectErrors) {
        for k in ReconnectErrorKind::ALL {
            *self.slot(k) += other.get(k);
        }
    }
}

/// The `churn` object of the report: present when the run had `--messages-per-connection`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconnectFigures {
    /// `--messages-per-connection`: exchanges on each connection before it closes.
    pub messages_per_connection: u64,
    /// `--connect-rate`: connects started per second at most, over every thread.
    pub connect_rate: f64,
    /// `--linger0`: connections closed with a reset (no `TIME_WAIT`) instead of a FIN.
    pub linger0: bool,
    /// Connects started, the first connection of each slot included.
    pub attempts: u64,
    /// Connections established, the first of each slot included (each had its connect time
    /// recorded).
    pub connections: u64,
    /// Connections established in the measured window, per second of it.
    pub connections_per_s: f64,
    /// Connect latency in microseconds (SYN sent to connection established), HdrHistogram.
    pub connect_latency_us: LatencySummary,
    /// Failed connections by cause.
    pub errors: ReconnectErrors,
    /// Sockets in `TIME_WAIT` on this host when the run ended (`/proc/net/sockstat`), `null`
    /// where it cannot be read.
    pub time_wait: Option<u64>,
    /// Ephemeral ports of one source address (`net.ipv4.ip_local_port_range`).
    pub ephemeral_ports: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_count_merge_and_serialise_every_kind() {
        let mut a = ReconnectErrors::default();
        a.add(ReconnectErrorKind::Refused);
        a.add(ReconnectErrorKind::Refused);
        let mut b = ReconnectErrors::default();
        b.add(ReconnectErrorKind::AddrNotAvailable);
        a.merge(&b);
        assert_eq!((a.refused, a.addr_not_available, a.total()), (2, 1, 3));
        let v = serde_json::to_value(a).unwrap();
        assert_eq!(v.as_object().unwrap().len(), ReconnectErrorKind::ALL.len());
        for k in ReconnectErrorKind::ALL {
            assert_eq!(v[k.as_str()], a.get(k), "{k}");
        }
    }
}
