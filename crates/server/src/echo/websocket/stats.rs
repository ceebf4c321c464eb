//! The WebSocket counters of a server ([`WsStats`]): handshakes, messages by type, pings,
//! closes by code, and the connections that failed by cause.

use super::WsFailure;

/// A server's WebSocket counters (all zero without `--websocket`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Upgrades completed (101 sent).
    pub handshakes: u64,
    /// Text messages echoed.
    pub text: u64,
    /// Binary messages echoed.
    pub binary: u64,
    /// Pings answered.
    pub pings: u64,
    /// Close frames received with 1000 (normal).
    pub closes_normal: u64,
    /// Close frames received with 1001 (going away).
    pub closes_going_away: u64,
    /// Close frames received without a code.
    pub closes_no_code: u64,
    /// Close frames received with another valid code.
    pub closes_other: u64,
    /// Close frames with 1001 sent by the server's graceful shutdown.
    pub going_away: u64,
    /// Upgraded connections that ended without a close frame.
    pub no_close: u64,
    /// Failures by cause (see [`WsFailure`]).
    pub bad_request: u64,
    /// See [`WsFailure::HeadTooLarge`].
    pub head_too_large: u64,
    /// See [`WsFailure::HandshakeTimeout`].
    pub handshake_timeout: u64,
    /// See [`WsFailure::Unmasked`].
    pub unmasked: u64,
    /// See [`WsFailure::ReservedOpcode`].
    pub reserved_opcode: u64,
    /// See [`WsFailure::Protocol`].
    pub protocol: u64,
    /// See [`WsFailure::InvalidUtf8`].
    pub invalid_utf8: u64,
    /// See [`WsFailure::TooBig`].
    pub too_big: u64,
}

impl WsStats {
    /// Counts a failed connection.
    pub fn failed(&mut self, failure: WsFailure) {
        *match failure {
            WsFailure::BadRequest => &mut self.bad_request,
            WsFailure::HeadTooLarge => &mut self.head_too_large,
            WsFailure::HandshakeTimeout => &mut self.handshake_timeout,
            WsFailure::Unmasked => &mut self.unmasked,
            WsFailure::ReservedOpcode => &mut self.reserved_opcode,
            WsFailure::Protocol => &mut self.protocol,
            WsFailure::InvalidUtf8 => &mut self.invalid_utf8,
            WsFailure::TooBig => &mut self.too_big,
        } += 1;
    }

    /// The failures by cause, with their names.
    fn causes(&self) -> [(&'static str, u64); 8] {
        [
            ("bad request", self.bad_request),
            ("head too large", self.head_too_large),
            ("handshake timeout", self.handshake_timeout),
            ("unmasked", self.unmasked),
            ("reserved opcode", self.reserved_opcode),
            ("protocol", self.protocol),
            ("invalid utf-8", self.invalid_utf8),
            ("too big", self.too_big),
        ]
    }

    /// Connections that failed, whatever the cause.
    pub fn failures(&self) -> u64 {
        self.causes().iter().map(|(_, n)| n).sum()
    }

    /// Whether any WebSocket connection was counted.
    pub fn is_empty(&self) -> bool {
        self.handshakes + self.failures() == 0
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &WsStats) {
        self.handshakes += other.handshakes;
        self.text += other.text;
        self.binary += other.binary;
        self.pings += other.pings;
        self.closes_normal += other.closes_normal;
        self.closes_going_away += other.closes_going_away;
        self.closes_no_code += other.closes_no_code;
        self.closes_other += other.closes_other;
        self.going_away += other.going_away;
        self.no_close += other.no_close;
        self.bad_request += other.bad_request;
        self.head_too_large += other.head_too_large;
        self.handshake_timeout += other.handshake_timeout;
        self.unmasked += other.unmasked;
        self.reserved_opcode += other.reserved_opcode;
        self.protocol += other.protocol;
        self.invalid_utf8 += other.invalid_utf8;
        self.too_big += other.too_big;
    }

    /// The summary's line: `websocket: 3 upgrades; messages: text 5, binary 2; 1 ping; closes
    /// received: 1000 2, 1001 0, no code 0, other 1; 1001 sent 0, ended without close 0;
    /// failed: unmasked 1` (the causes that occurred, or `none failed`).
    pub fn describe(&self) -> String {
        let causes = self
            .causes()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>();
        format!(
            "websocket: {} upgrades; messages: text {}, binary {}; {} pings; closes received: \
             1000 {}, 1001 {}, no code {}, other {}; 1001 sent {}, ended without close {}; {}",
            self.handshakes,
            self.text,
            self.binary,
            self.pings,
            self.closes_normal,
            self.closes_going_away,
            self.closes_no_code,
            self.closes_other,
            self.going_away,
            self.no_close,
            if causes.is_empty() {
                "none failed".to_string()
            } else {
                format!("failed: {}", causes.join(", "))
            }
        )
    }
}
