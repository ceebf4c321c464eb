//! Close codes (RFC 6455 section 7.4) and the close frame's payload: an optional 2-byte code
//! then an optional UTF-8 reason, 125 bytes in all.

/// The purpose of the connection was fulfilled.
pub const NORMAL: u16 = 1000;
/// The endpoint is going away (a server shutting down).
pub const GOING_AWAY: u16 = 1001;
/// A protocol error (an unmasked client frame, a reserved opcode or bit, a bad sequence).
pub const PROTOCOL: u16 = 1002;
/// A type of data the endpoint cannot accept.
pub const UNSUPPORTED: u16 = 1003;
/// Never sent: no code was present in the close frame.
pub const NO_STATUS: u16 = 1005;
/// Never sent: the connection closed without a close frame.
pub const ABNORMAL: u16 = 1006;
/// Data inconsistent with the message's type (invalid UTF-8 in a text message).
pub const INVALID_PAYLOAD: u16 = 1007;
/// The message violates the endpoint's policy.
pub const POLICY: u16 = 1008;
/// The message is too big to process.
pub const TOO_BIG: u16 = 1009;
/// An unexpected condition kept the server from fulfilling the request.
pub const INTERNAL: u16 = 1011;

/// The longest reason that fits in a close frame with its code.
pub const MAX_REASON: usize = 123;

/// Why a close frame's payload is invalid (answered with [`PROTOCOL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloseError {
    #[error("close payload of one byte")]
    OneByte,
    #[error("close code {0} may not be sent")]
    InvalidCode(u16),
    #[error("close reason is not UTF-8")]
    InvalidReason,
}

/// May `code` appear in a close frame? The registered codes an endpoint may send (1000-1003,
/// 1007-1014) and the ranges for libraries and applications (3000-4999).
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parses a close frame's (unmasked) payload: `None` when it is empty (no code), else the code
/// and the reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, CloseError> {
    match payload {
        [] => Ok(None),
        [_] => Err(CloseError::OneByte),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_code(code) {
                return Err(CloseError::InvalidCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| CloseError::InvalidReason)?;
            Ok(Some((code, reason)))
        }
    }
}

/// Writes a close payload (the code, then as much of `reason` as fits, cut at a character
/// boundary) into `out`, returning its length.
pub fn write_close_payload(code: u16, reason: &str, out: &mut [u8; 125]) -> usize {
    out[..2].copy_from_slice(&code.to_be_bytes());
    let mut len = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(len) {
        len -= 1;
    }
    out[2..2 + len].copy_from_slice(&reason.as_bytes()[..len]);
    2 + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_reasons() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(parse_close_payload(&[0x03]), Err(CloseError::OneByte));
        assert_eq!(parse_close_payload(&[0x03, 0xE8]), Ok(Some((NORMAL, ""))));
        assert_eq!(
            parse_close_payload(b"\x03\xe9bye"),
            Ok(Some((GOING_AWAY, "bye")))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xff"),
            Err(CloseError::InvalidReason)
        );
        for bad in [
            0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            let p = bad.to_be_bytes();
            assert_eq!(
                parse_close_payload(&p),
                Err(CloseError::InvalidCode(bad)),
                "{bad}"
            );
        }
        for good in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            let p = good.to_be_bytes();
            assert_eq!(parse_close_payload(&p), Ok(Some((good, ""))), "{good}");
        }
    }

    #[test]
    fn writes_a_payload_that_parses_back_with_the_reason_cut_at_a_char() {
        let mut out = [0u8; 125];
        let n = write_close_payload(TOO_BIG, "too big", &mut out);
        assert_eq!(
            parse_close_payload(&out[..n]),
            Ok(Some((TOO_BIG, "too big")))
        );
        let long = "é".repeat(100); // 200 bytes
        let n = write_close_payload(NORMAL, &long, &mut out);
        assert!(n <= 125);
        let (_, reason) = parse_close_payload(&out[..n]).unwrap().unwrap();
        assert_eq!(reason, "é".repeat(61));
    }
}
