//! The opening handshake (RFC 6455 section 4): the client's HTTP/1.1 `GET` with `Upgrade:
//! websocket` and the server's `101 Switching Protocols`. Heads are parsed with `httparse` from
//! the caller's buffer, bounded by [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers.

use crate::accept_key;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt::Write as _;

/// The longest request or response head accepted; longer is [`HandshakeError::TooLarge`].
pub const MAX_HEAD: usize = 8192;

/// The most headers in a head; more is [`HandshakeError::TooLarge`].
pub const MAX_HEADERS: usize = 64;

/// The most `Sec-WebSocket-Protocol` header lines a request's [`Request`] keeps.
pub const MAX_PROTOCOL_HEADERS: usize = 4;

/// Why a handshake fails. [`status`](HandshakeError::status) is the HTTP status a server
/// refuses a request with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("head longer than {MAX_HEAD} bytes or more than {MAX_HEADERS} headers")]
    TooLarge,
    #[error("malformed HTTP head")]
    Malformed,
    #[error("method is not GET")]
    NotGet,
    #[error("HTTP version is not 1.1")]
    HttpVersion,
    #[error("no `Upgrade: websocket` header")]
    NoUpgrade,
    #[error("`Connection` header does not list `upgrade`")]
    NoConnectionUpgrade,
    #[error("no `Sec-WebSocket-Version: 13` header")]
    WebSocketVersion,
    #[error("missing or malformed `Sec-WebSocket-Key`")]
    BadKey,
    #[error("response status {0} (not 101)")]
    Status(u16),
    #[error("no `Sec-WebSocket-Accept` header")]
    NoAccept,
    #[error("`Sec-WebSocket-Accept` does not match the key")]
    WrongAccept,
}

impl HandshakeError {
    /// The status and reason phrase a server refuses a request with: 431 for a head too large,
    /// 426 for a missing upgrade or another WebSocket version, 405 for another method, else 400.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HandshakeError::TooLarge => (431, "Request Header Fields Too Large"),
            HandshakeError::NoUpgrade | HandshakeError::WebSocketVersion => {
                (426, "Upgrade Required")
            }
            HandshakeError::NotGet => (405, "Method Not Allowed"),
            _ => (400, "Bad Request"),
        }
    }
}

/// A valid upgrade request; every slice borrows the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The request target (`/chat`).
    pub path: &'a str,
    /// `Sec-WebSocket-Key`, trimmed: 24 base64 characters.
    pub key: &'a [u8],
    /// The `Host` header, if any.
    pub host: Option<&'a str>,
    protocol_lines: [&'a str; MAX_PROTOCOL_HEADERS],
    protocol_count: usize,
    /// How many bytes of the buffer the head took (what follows is the first frames).
    pub consumed: usize,
}

impl<'a> Request<'a> {
    /// The subprotocols the client offers (`Sec-WebSocket-Protocol`, comma-separated, in order).
    pub fn subprotocols(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.protocol_lines[..self.protocol_count]
            .iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
    }
}

/// Parses an upgrade request at the start of `buf`: `Ok(None)` while the head is incomplete
/// (and under [`MAX_HEAD`]).
pub fn parse_request(buf: &[u8]) -> Result<Option<Request<'_>>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HEAD {
                Err(HandshakeError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    if consumed > MAX_HEAD {
        return Err(HandshakeError::TooLarge);
    }
    if req.method != Some("GET") {
        return Err(HandshakeError::NotGet);
    }
    if req.version != Some(1) {
        return Err(HandshakeError::HttpVersion);
    }
    let path = req.path.unwrap_or("/");
    let mut upgrade = false;
    let mut connection = false;
    let mut version = None;
    let mut key = None;
    let mut host = None;
    let mut protocol_lines = [""; MAX_PROTOCOL_HEADERS];
    let mut protocol_count = 0;
    for h in req.headers.iter() {
        let name = h.name;
        let value: &[u8] = h.value;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(value.trim_ascii());
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value.trim_ascii());
        } else if name.eq_ignore_ascii_case("host") {
            host = std::str::from_utf8(value.trim_ascii()).ok();
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol")
            && protocol_count < MAX_PROTOCOL_HEADERS
        {
            if let Ok(line) = std::str::from_utf8(value) {
                protocol_lines[protocol_count] = line;
                protocol_count += 1;
            }
        }
    }
    if !upgrade {
        return Err(HandshakeError::NoUpgrade);
    }
    if !connection {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if version != Some(b"13".as_slice()) {
        return Err(HandshakeError::WebSocketVersion);
    }
    let key = key.ok_or(HandshakeError::BadKey)?;
    let mut raw = [0u8; 18];
    match STANDARD.decode_slice(key, &mut raw) {
        Ok(16) if key.len() == 24 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    Ok(Some(Request {
        path,
        key,
        host,
        protocol_lines,
        protocol_count,
        consumed,
    }))
}

/// Appends the `101 Switching Protocols` response for `accept` ([`accept_key`] of the request's
/// key), naming the chosen subprotocol if any.
pub fn write_response(accept: &[u8; 28], protocol: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept);
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(protocol.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a refusal (`status reason`, no body, `Connection: close`); a 426 also says
/// `Sec-WebSocket-Version: 13` and `Upgrade: websocket`.
pub fn write_refusal(status: u16, reason: &str, out: &mut Vec<u8>) {
    let mut head = String::with_capacity(128);
    let _ = write!(head, "HTTP/1.1 {status} {reason}\r\n");
    if status == 426 {
        head.push_str("Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
    }
    head.push_str("Connection: close\r\nContent-Length: 0\r\n\r\n");
    out.extend_from_slice(head.as_bytes());
}

/// Appends a client's upgrade request for `path` on `host` with `key` ([`crate::client_key`])
/// and any extra headers (`Sec-WebSocket-Protocol`, `Origin`, ...).
pub fn write_request(
    host: &str,
    path: &str,
    key: &[u8; 24],
    extra_headers: &[(&str, &str)],
    out: &mut Vec<u8>,
) {
    let mut head = String::with_capacity(192);
    let _ = write!(head, "GET {path} HTTP/1.1\r\nHost: {host}\r\n");
    head.push_str("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    head.push_str(std::str::from_utf8(key).unwrap_or(""));
    head.push_str("\r\nSec-WebSocket-Version: 13\r\n");
    for (name, value) in extra_headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
}

/// Checks the server's response to a request sent with `key`: `Ok(None)` while the head is
/// incomplete, else how many bytes the head took (what follows is the first frames).
pub fn parse_response(buf: &[u8], key: &[u8; 24]) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let consumed = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= MAX_HEAD {
                Err(HandshakeError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLarge),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    if consumed > MAX_HEAD {
        return Err(HandshakeError::TooLarge);
    }
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(HandshakeError::Status(code));
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut accept = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(h.value, b"websocket");
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection |= has_token(h.value, b"upgrade");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(h.value.trim_ascii());
        }
    }
    if !upgrade {
        return Err(HandshakeError::NoUpgrade);
    }
    if !connection {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    let accept = accept.ok_or(HandshakeError::NoAccept)?;
    if accept != accept_key(key).as_slice() {
        return Err(HandshakeError::WrongAccept);
    }
    Ok(Some(consumed))
}

/// Does a comma-separated header value list `token` (case-insensitive)?
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_key;

    const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn parses_the_rfc_request_at_every_cut() {
        for cut in 0..RFC_REQUEST.len() {
            assert_eq!(parse_request(&RFC_REQUEST[..cut]), Ok(None), "cut {cut}");
        }
        let mut buf = RFC_REQUEST.to_vec();
        buf.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        let req = parse_request(&buf).unwrap().unwrap();
        assert_eq!(req.path, "/chat");
        assert_eq!(req.key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(req.host, Some("server.example.com"));
        assert_eq!(req.consumed, RFC_REQUEST.len());
        assert_eq!(
            req.subprotocols().collect::<Vec<_>>(),
            ["chat", "superchat"]
        );
    }

    #[test]
    fn refuses_what_is_not_an_upgrade() {
        let replace = |from: &str, to: &str| {
            String::from_utf8(RFC_REQUEST.to_vec())
                .unwrap()
                .replacen(from, to, 1)
                .into_bytes()
        };
        let cases: [(Vec<u8>, HandshakeError, u16); 8] = [
            (replace("GET", "POST"), HandshakeError::NotGet, 405),
            (
                replace("HTTP/1.1", "HTTP/1.0"),
                HandshakeError::HttpVersion,
                400,
            ),
            (
                replace("Upgrade: websocket", "Upgrade: h2c"),
                HandshakeError::NoUpgrade,
                426,
            ),
            (
                replace("Connection: Upgrade", "Connection: keep-alive"),
                HandshakeError::NoConnectionUpgrade,
                400,
            ),
            (
                replace("Version: 13", "Version: 8"),
                HandshakeError::WebSocketVersion,
                426,
            ),
            (
                replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
                HandshakeError::BadKey,
                400,
            ),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
                HandshakeError::Malformed,
                400,
            ),
            (vec![b'A'; MAX_HEAD], HandshakeError::TooLarge, 431),
        ];
        for (request, error, status) in cases {
            assert_eq!(
                parse_request(&request),
                Err(error),
                "{}",
                String::from_utf8_lossy(&request)
            );
            assert_eq!(error.status().0, status);
        }
        // Tokens are case-insensitive and may be in lists.
        let ok = replace("Connection: Upgrade", "Connection: keep-alive, UPGRADE");
        assert!(parse_request(&ok).unwrap().is_some());
        // A head that fills MAX_HEAD without its end is too large, with many headers too.
        let mut long = b"GET / HTTP/1.1\r\n".to_vec();
        while long.len() < MAX_HEAD {
            long.extend_from_slice(b"X-Filler: 0123456789abcdef0123456789abcdef\r\n");
        }
        assert_eq!(parse_request(&long), Err(HandshakeError::TooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"A: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many), Err(HandshakeError::TooLarge));
    }

    #[test]
    fn client_request_server_response_round_trip() {
        let key = client_key(42);
        let mut request = Vec::new();
        write_request(
            "127.0.0.1:9000",
            "/echo",
            &key,
            &[("Sec-WebSocket-Protocol", "a, b")],
            &mut request,
        );
        let req = parse_request(&request).unwrap().unwrap();
        assert_eq!(
            (req.path, req.key, req.host),
            ("/echo", key.as_slice(), Some("127.0.0.1:9000"))
        );
        assert_eq!(req.subprotocols().collect::<Vec<_>>(), ["a", "b"]);

        let mut response = Vec::new();
        write_response(&accept_key(req.key), Some("b"), &mut response);
        for cut in 0..response.len() {
            assert_eq!(parse_response(&response[..cut], &key), Ok(None));
        }
        response.extend_from_slice(b"\x81\x00");
        assert_eq!(
            parse_response(&response, &key),
            Ok(Some(response.len() - 2))
        );
        assert_eq!(
            parse_response(&response, &client_key(43)),
            Err(HandshakeError::WrongAccept)
        );
    }

    #[test]
    fn client_sees_refusals_and_bad_responses() {
        let key = client_key(7);
        let mut refusal = Vec::new();
        write_refusal(426, "Upgrade Required", &mut refusal);
        assert!(String::from_utf8_lossy(&refusal).contains("Sec-WebSocket-Version: 13\r\n"));
        assert_eq!(
            parse_response(&refusal, &key),
            Err(HandshakeError::Status(426))
        );
        let no_accept = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(
            parse_response(no_accept, &key),
            Err(HandshakeError::NoAccept)
        );
        let no_upgrade = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(
            parse_response(no_upgrade, &key),
            Err(HandshakeError::NoUpgrade)
        );
        assert_eq!(
            parse_response(b"garbage\r\n\r\n", &key),
            Err(HandshakeError::Malformed)
        );
    }
}
