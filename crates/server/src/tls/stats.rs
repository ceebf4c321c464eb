//! The TLS counters of a server ([`TlsStats`]) and the causes a connection fails its handshake
//! for ([`Failure`]), told apart from rustls' error and the first bytes the client sent.

use rustls::{Error, InvalidMessage, PeerIncompatible};

/// Why a TLS connection was closed before or instead of its echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client spoke plaintext (its first bytes are printable text, e.g. an HTTP request).
    Plaintext,
    /// The client's first bytes are neither TLS nor text.
    Garbage,
    /// A TLS version the server does not speak (a record of an unknown version, a client that
    /// offers only TLS 1.1 or older).
    Version,
    /// The client closed the connection in the middle of its handshake.
    Truncated,
    /// The handshake took longer than `--tls-handshake-timeout`.
    Timeout,
    /// Any other failed handshake or broken record (an alert from the client, no cipher suite
    /// in common, a record that does not decrypt).
    Other,
}

impl Failure {
    /// The cause of `error`, where `first` are the first bytes the client sent (to tell a
    /// plaintext client from garbage).
    pub fn of(error: &Error, first: &[u8]) -> Failure {
        match error {
            Error::InvalidMessage(
                InvalidMessage::InvalidContentType
                | InvalidMessage::MessageTooLarge
                | InvalidMessage::InvalidEmptyPayload,
            ) => {
                let text = !first.is_empty()
                    && first
                        .iter()
                        .take(16)
                        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
                if text {
                    Failure::Plaintext
                } else {
                    Failure::Garbage
                }
            }
            Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion)
            | Error::PeerIncompatible(
                PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::ServerDoesNotSupportTls12Or13,
            ) => Failure::Version,
            _ => Failure::Other,
        }
    }

    /// The name the summary gives it.
    pub fn name(self) -> &'static str {
        match self {
            Failure::Plaintext => "plaintext",
            Failure::Garbage => "garbage",
            Failure::Version => "version",
            Failure::Truncated => "truncated",
            Failure::Timeout => "timeout",
            Failure::Other => "other",
        }
    }
}

/// A server's TLS counters (all zero without TLS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Handshakes completed on TLS 1.3.
    pub tls13: u64,
    /// Handshakes completed on TLS 1.2.
    pub tls12: u64,
    /// Connections closed after a close_notify sent by the server.
    pub close_notify: u64,
    /// Connections that failed, by cause (see [`Failure`]).
    pub plaintext: u64,
    /// See [`Failure::Garbage`].
    pub garbage: u64,
    /// See [`Failure::Version`].
    pub version: u64,
    /// See [`Failure::Truncated`].
    pub truncated: u64,
    /// See [`Failure::Timeout`].
    pub timeout: u64,
    /// See [`Failure::Other`].
    pub other: u64,
}

impl TlsStats {
    /// Counts a failed connection.
    pub fn failed(&mut self, failure: Failure) {
        *match failure {
            Failure::Plaintext => &mut self.plaintext,
            Failure::Garbage => &mut self.garbage,
            Failure::Version => &mut self.version,
            Failure::Truncated => &mut self.truncated,
            Failure::Timeout => &mut self.timeout,
            Failure::Other => &mut self.other,
        } += 1;
    }

    /// Counts a completed handshake of `version`.
    pub fn established(&mut self, version: Option<rustls::ProtocolVersion>) {
        if version == Some(rustls::ProtocolVersion::TLSv1_2) {
            self.tls12 += 1;
        } else {
            self.tls13 += 1;
        }
    }

    /// Connections that failed, whatever the cause.
    pub fn failures(&self) -> u64 {
        self.plaintext + self.garbage + self.version + self.truncated + self.timeout + self.other
    }

    /// Whether any TLS connection was counted.
    pub fn is_empty(&self) -> bool {
        self.tls13 + self.tls12 + self.failures() == 0
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &TlsStats) {
        self.tls13 += other.tls13;
        self.tls12 += other.tls12;
        self.close_notify += other.close_notify;
        self.plaintext += other.plaintext;
        self.garbage += other.garbage;
        self.version += other.version;
        self.truncated += other.truncated;
        self.timeout += other.timeout;
        self.other += other.other;
    }

    /// The summary's line: `tls: 3 handshakes (TLS 1.3 2, TLS 1.2 1), 3 close_notify sent;
    /// failed: plaintext 1, timeout 2` (the causes that occurred, or `none failed`).
    pub fn describe(&self) -> String {
        let causes = [
            (Failure::Plaintext, self.plaintext),
            (Failure::Garbage, self.garbage),
            (Failure::Version, self.version),
            (Failure::Truncated, self.truncated),
            (Failure::Timeout, self.timeout),
            (Failure::Other, self.other),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| format!("{} {n}", f.name()))
        .collect::<Vec<_>>();
        format!(
            "tls: {} handshakes (TLS 1.3 {}, TLS 1.2 {}), {} close_notify sent; {}",
            self.tls13 + self.tls12,
            self.tls13,
            self.tls12,
            self.close_notify,
            if causes.is_empty() {
                "none failed".to_string()
            } else {
                format!("failed: {}", causes.join(", "))
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_told_apart_by_rustls_error_and_the_first_bytes() {
        let not_tls = Error::InvalidMessage(InvalidMessage::InvalidContentType);
        assert_eq!(
            Failure::of(&not_tls, b"GET / HTTP/1.1\r\n"),
            Failure::Plaintext
        );
        assert_eq!(Failure::of(&not_tls, &[0xff, 0x00, 0x13]), Failure::Garbage);
        let version = Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion);
        assert_eq!(Failure::of(&version, &[0x16, 0x04]), Failure::Version);
        let old = Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered);
        assert_eq!(Failure::of(&old, &[0x16, 0x03]), Failure::Version);
        assert_eq!(Failure::of(&Error::DecryptError, &[]), Failure::Other);

        let mut stats = TlsStats::default();
        stats.failed(Failure::Plaintext);
        stats.failed(Failure::Timeout);
        stats.failed(Failure::Timeout);
        stats.established(Some(rustls::ProtocolVersion::TLSv1_2));
        assert_eq!(stats.failures(), 3);
        assert_eq!(
            stats.describe(),
            "tls: 1 handshakes (TLS 1.3 0, TLS 1.2 1), 0 close_notify sent; failed: plaintext 1, timeout 2"
        );
    }
}
