//! What a run with `--messages-per-connection` counts: connects started and established, and
//! failed connections by cause ([`ReconnectErrorKind`]: refused, reset, timeout,
//! EADDRNOTAVAIL, other).

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use crate::error::ConnError;

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

    /// The cause of `err`.
    pub fn of(err: &ConnError) -> ReconnectErrorKind {
        match err {
            ConnError::ConnectFailed(e) => ReconnectErrorKind::of_io(e),
            ConnError::Reset { .. } => ReconnectErrorKind::Reset,
            ConnError::Timeout { .. } => ReconnectErrorKind::Timeout,
            _ => ReconnectErrorKind::Other,
        }
    }

    /// The cause of a failed connect (or of creating and binding its socket).
    pub fn of_io(e: &io::Error) -> ReconnectErrorKind {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ReconnectErrorKind::Refused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ReconnectErrorKind::Reset,
            io::ErrorKind::TimedOut => ReconnectErrorKind::Timeout,
            io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => {
                ReconnectErrorKind::AddrNotAvailable
            }
            _ => ReconnectErrorKind::Other,
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

/// What one client thread counts of a churn run (connect times go to its `ThreadStats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconnectStats {
    /// Connects started (sockets asked for), the first connection of each slot included.
    pub attempts: u64,
    /// Connections established while the measured window was open.
    pub connected_in_window: u64,
    /// Failed connections by cause.
    pub errors: ReconnectErrors,
}

impl ReconnectStats {
    /// Adds `other` (another thread's) to these.
    pub fn merge(&mut self, other: &ReconnectStats) {
        self.attempts += other.attempts;
        self.connected_in_window += other.connected_in_window;
        self.errors.merge(&other.errors);
    }

    /// Counts the failure `err`.
    pub fn record_error(&mut self, err: &ConnError) {
        self.errors.add(ReconnectErrorKind::of(err));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_of_failed_connections() {
        let of = |k: io::ErrorKind| ReconnectErrorKind::of(&ConnError::ConnectFailed(k.into()));
        assert_eq!(
            of(io::ErrorKind::ConnectionRefused),
            ReconnectErrorKind::Refused
        );
        assert_eq!(
            of(io::ErrorKind::ConnectionReset),
            ReconnectErrorKind::Reset
        );
        assert_eq!(of(io::ErrorKind::TimedOut), ReconnectErrorKind::Timeout);
        assert_eq!(
            of(io::ErrorKind::AddrNotAvailable),
            ReconnectErrorKind::AddrNotAvailable
        );
        assert_eq!(
            of(io::ErrorKind::PermissionDenied),
            ReconnectErrorKind::Other
        );
        #[cfg(target_os = "linux")]
        assert_eq!(
            ReconnectErrorKind::of_io(&io::Error::from_raw_os_error(99)),
            ReconnectErrorKind::AddrNotAvailable,
            "EADDRNOTAVAIL"
        );
        let reset = ConnError::from_io(io::ErrorKind::ConnectionReset.into(), 10);
        assert_eq!(ReconnectErrorKind::of(&reset), ReconnectErrorKind::Reset);
        let mismatch = ConnError::EarlyClose { offset: 3 };
        assert_eq!(ReconnectErrorKind::of(&mismatch), ReconnectErrorKind::Other);
    }

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
