//! The error taxonomy of a run: what can go wrong on a connection, and the kinds it is counted by.
//!
//! This module is responsible for [`ConfigError`] (a bad option or combination, refused before
//! anything runs), [`ErrorKind`] (named in the result model, `ringport-report`, and re-exported
//! here) (the key of the report's error breakdown, with
//! stable names and indices) and [`ConnError`] (one connection's failure, with the byte offset
//! where it happened and a one-line message), and for classifying socket errors into them
//! ([`ConnError::from_io`]). The verifiers ([`echo`](crate::protocol::echo),
//! [`reply`](crate::protocol::reply)) and the engine produce these; the measurements count them.

use std::io;

use ringport_os::ErrorClass;
pub use ringport_report::errors::ErrorKind;

/// A bad option or combination; the message is one line and names the flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Why a connection failed. Offsets are connection-relative byte offsets in the echo stream
/// (equal to the offset in the sent stream, since an echo is byte for byte).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The first wrong byte.
    #[error("{}", mismatch_text(.offset, .message, .offset_in_message, .expected, .got))]
    Mismatch {
        /// Connection-relative offset of the wrong byte.
        offset: u64,
        /// Message number (1-based, as in the payload) the byte belongs to; 0 if nothing was
        /// outstanding.
        message: u64,
        /// Offset of the byte inside that message.
        offset_in_message: usize,
        /// The byte that was sent there, or `None` if no byte was outstanding (an extra byte).
        expected: Option<u8>,
        /// The byte that came back.
        got: u8,
    },
    /// Request/response mode: a reply that is not the one expected, or bytes with no request
    /// outstanding.
    #[error("{}", wrong_reply_text(.request, .step, .reason, .got))]
    WrongReply {
        /// Connection-relative offset of the reply's first byte.
        offset: u64,
        /// The request's number on its connection (1-based); 0 for bytes no request asked for.
        request: u64,
        /// Its place in the sequence, e.g. ` (2 of 3 in the sequence)`; empty for one request.
        step: String,
        /// What is wrong, e.g. `expected "+PONG\r\n"`.
        reason: String,
        /// The reply's bytes as received, escaped and cut short (see
        /// [`escape`](crate::protocol::text::escape)).
        got: String,
    },
    /// Request/response mode: the server closed the connection with requests unanswered.
    #[error(
        "short reply: connection closed at byte {offset} with {unanswered} request{} unanswered{}",
        if *.unanswered == 1 { "" } else { "s" },
        if *.announced {
            ", sent after a reply that said `Connection: close` (requests pipelined past the \
             server's last reply on a connection are never answered: use --pipeline 1, or raise \
             the server's limit, e.g. nginx's keepalive_requests)"
        } else {
            ""
        }
    )]
    ShortReply {
        /// Bytes received before the close.
        offset: u64,
        /// Requests sent whose replies did not wholly arrive.
        unanswered: usize,
        /// The server had announced the close (`Connection: close`).
        announced: bool,
    },
    /// EOF with bytes outstanding.
    #[error("short echo: connection closed at byte {offset} with {outstanding} bytes not echoed")]
    ShortEcho {
        /// Offset of the first byte never echoed.
        offset: u64,
        /// How many sent bytes were never echoed.
        outstanding: u64,
    },
    /// EOF before the client was done, with every sent byte echoed.
    #[error(
        "early close: server closed the connection at byte {offset} before the client was done"
    )]
    EarlyClose {
        /// Bytes echoed before the close.
        offset: u64,
    },
    /// Connection reset.
    #[error("reset at byte {offset}: {source}")]
    Reset {
        /// Bytes verified before the reset.
        offset: u64,
        /// The socket error.
        source: io::Error,
    },
    /// Nothing echoed within the timeout.
    #[error(
        "timeout at byte {offset}: {outstanding} bytes outstanding for longer than the timeout"
    )]
    Timeout {
        /// Bytes verified before the timeout.
        offset: u64,
        /// Bytes sent and not yet echoed.
        outstanding: u64,
    },
    /// The connection could not be established.
    #[error("connect failed: {0}")]
    ConnectFailed(io::Error),
    /// The TLS handshake failed (`--tls`): counted as a connection not established.
    #[error("TLS handshake failed: {detail}")]
    Handshake {
        /// Why, for the report's `tls.failed` counts.
        cause: ringport_report::tls::HandshakeFailure,
        /// The cause and rustls' words.
        detail: String,
    },
    /// `--udp`: an echo whose bytes differ from the datagram sent (counted as a mismatch).
    #[error("{}", datagram_text(*.seq, *.at, *.expected, *.got, *.len, *.sent_len))]
    Datagram {
        /// The datagram's sequence number in its flow (from 0); `None` when the echo cannot be
        /// attributed (its header is damaged).
        seq: Option<u64>,
        /// The first byte that differs.
        at: usize,
        /// The byte sent there, if the datagram was that long.
        expected: Option<u8>,
        /// The byte echoed there, if the echo was that long.
        got: Option<u8>,
        /// Bytes echoed.
        len: usize,
        /// Bytes sent (0 when not attributed).
        sent_len: usize,
    },
    /// The WebSocket upgrade failed (`--websocket`): counted as a connection not established.
    #[error("WebSocket upgrade failed: {detail}")]
    Upgrade {
        /// Why, for the report's `websocket.failed` counts.
        cause: ringport_report::websocket::UpgradeFailure,
        /// The cause and the server's status line.
        detail: String,
    },
    /// Any other I/O error.
    #[error("I/O error at byte {offset}: {source}")]
    Other {
        /// Bytes verified before the error.
        offset: u64,
        /// The socket error.
        source: io::Error,
    },
}

fn datagram_text(
    seq: Option<u64>,
    at: usize,
    expected: Option<u8>,
    got: Option<u8>,
    len: usize,
    sent_len: usize,
) -> String {
    let Some(seq) = seq else {
        return format!("corrupted echo of {len} bytes: its header names no datagram sent");
    };
    match (expected, got) {
        (Some(e), Some(g)) => format!(
            "corrupted echo of datagram {seq} at byte {at}: expected {e:#04x}, got {g:#04x}"
        ),
        _ => format!("corrupted echo of datagram {seq}: {len} bytes back for {sent_len} sent"),
    }
}

fn wrong_reply_text(request: &u64, step: &str, reason: &str, got: &str) -> String {
    if *request == 0 {
        format!("wrong reply: {reason}; received {got}")
    } else {
        format!("wrong reply to request {request}{step}: {reason}; received {got}")
    }
}

fn mismatch_text(
    offset: &u64,
    message: &u64,
    offset_in_message: &usize,
    expected: &Option<u8>,
    got: &u8,
) -> String {
    match expected {
        Some(e) => format!(
            "mismatch at byte {offset} (message {message}, byte {offset_in_message}): \
             expected {e:#04x}, got {got:#04x}"
        ),
        None => {
            format!("mismatch at byte {offset}: got {got:#04x} but no echo byte was outstanding")
        }
    }
}

impl ConnError {
    /// The kind, for counting.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ConnError::Mismatch { .. }
            | ConnError::WrongReply { .. }
            | ConnError::Datagram { .. } => ErrorKind::Mismatch,
            ConnError::ShortReply { .. } => ErrorKind::ShortEcho,
            ConnError::ShortEcho { .. } => ErrorKind::ShortEcho,
            ConnError::EarlyClose { .. } => ErrorKind::EarlyClose,
            ConnError::Reset { .. } => ErrorKind::Reset,
            ConnError::Timeout { .. } => ErrorKind::Timeout,
            ConnError::ConnectFailed(_)
            | ConnError::Handshake { .. }
            | ConnError::Upgrade { .. } => ErrorKind::ConnectFailed,
            ConnError::Other { .. } => ErrorKind::Other,
        }
    }

    /// The connection-relative byte offset where it happened, if the connection was open.
    pub fn offset(&self) -> Option<u64> {
        match self {
            ConnError::Mismatch { offset, .. }
            | ConnError::WrongReply { offset, .. }
            | ConnError::ShortReply { offset, .. }
            | ConnError::ShortEcho { offset, .. }
            | ConnError::EarlyClose { offset }
            | ConnError::Reset { offset, .. }
            | ConnError::Timeout { offset, .. }
            | ConnError::Other { offset, .. } => Some(*offset),
            ConnError::ConnectFailed(_)
            | ConnError::Handshake { .. }
            | ConnError::Datagram { .. }
            | ConnError::Upgrade { .. } => None,
        }
    }

    /// Classifies a socket error on an open connection at byte `offset`: resets and broken pipes
    /// are [`ErrorKind::Reset`], timeouts [`ErrorKind::Timeout`], the rest [`ErrorKind::Other`].
    pub fn from_io(source: io::Error, offset: u64) -> ConnError {
        match ErrorClass::of(&source) {
            class if class.peer_gone() => ConnError::Reset { offset, source },
            ErrorClass::TimedOut => ConnError::Timeout {
                offset,
                outstanding: 0,
            },
            _ => ConnError::Other { offset, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_name_offset_and_bytes() {
        let e = ConnError::Mismatch {
            offset: 1234,
            message: 5,
            offset_in_message: 6,
            expected: Some(0x41),
            got: 0x40,
        };
        assert_eq!(
            e.to_string(),
            "mismatch at byte 1234 (message 5, byte 6): expected 0x41, got 0x40"
        );
    }
}
