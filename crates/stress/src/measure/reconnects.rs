//! What a run with `--messages-per-connection` counts: connects started and established, and
//! failed connections classified by cause ([`kind_of`]: refused, reset, timeout,
//! EADDRNOTAVAIL, other).

use std::io;

use ringport_os::ErrorClass;
use ringport_report::reconnects::{ReconnectErrorKind, ReconnectErrors};

use crate::error::ConnError;

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
        self.errors.add(kind_of(err));
    }
}

/// The cause of `err`.
pub fn kind_of(err: &ConnError) -> ReconnectErrorKind {
    match err {
        ConnError::ConnectFailed(e) => kind_of_io(e),
        ConnError::Reset { .. } => ReconnectErrorKind::Reset,
        ConnError::Timeout { .. } => ReconnectErrorKind::Timeout,
        _ => ReconnectErrorKind::Other,
    }
}

/// The cause of a failed connect (or of creating and binding its socket).
pub fn kind_of_io(e: &io::Error) -> ReconnectErrorKind {
    match ErrorClass::of(e) {
        ErrorClass::Refused => ReconnectErrorKind::Refused,
        ErrorClass::Reset | ErrorClass::BrokenPipe => ReconnectErrorKind::Reset,
        ErrorClass::TimedOut => ReconnectErrorKind::Timeout,
        ErrorClass::AddrUnavailable => ReconnectErrorKind::AddrNotAvailable,
        ErrorClass::Other => ReconnectErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_of_failed_connections() {
        let of = |k: io::ErrorKind| kind_of(&ConnError::ConnectFailed(k.into()));
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
            kind_of_io(&io::Error::from_raw_os_error(99)),
            ReconnectErrorKind::AddrNotAvailable,
            "EADDRNOTAVAIL"
        );
        let reset = ConnError::from_io(io::ErrorKind::ConnectionReset.into(), 10);
        assert_eq!(kind_of(&reset), ReconnectErrorKind::Reset);
        let mismatch = ConnError::EarlyClose { offset: 3 };
        assert_eq!(kind_of(&mismatch), ReconnectErrorKind::Other);
    }
}
