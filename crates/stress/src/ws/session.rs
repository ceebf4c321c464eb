//! One connection's WebSocket over the engine's buffers: the upgrade, the framing of what is
//! staged, the unframing of what arrives. See the parent's module docs.
//!
//! Sending: for each message the connection stages, [`WsSession::begin`] reserves room for the
//! frame header in the staging buffer (as long as the last message's header, so for messages
//! of one size nothing ever moves), the message is appended, and [`WsSession::end`] writes
//! the header (FIN, binary or text, the mask) and masks the message in place with a mask from
//! the connection's own PRNG. The verifier regenerates what it expects, so masking the staged
//! bytes costs it nothing. Nothing is allocated per message.
//!
//! Receiving: [`WsSession::receive`] strips frame headers (a header split across reads is
//! kept in a 14-byte buffer) and hands each run of payload to the verifier, so a wrong byte is
//! still found at its offset in the echo stream. With `echo`, each data message that ends must
//! be as long as the message it echoes (one message back per message sent). A ping is answered
//! with a pong ([`take_control`](WsSession::take_control)); a close frame is the server's end
//! of stream, its code counted.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ringport_report::websocket::UpgradeFailure;
use ringport_ws::{apply_mask, close, handshake, FrameHeader, Opcode};

/// The most bytes an upgrade response's head may take.
const MAX_RESPONSE: usize = 16 << 10;

/// A WebSocket error on a connection: during the upgrade (classified) or after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The upgrade failed.
    Upgrade {
        /// Why, for the `websocket.failed` counts.
        cause: UpgradeFailure,
        /// One line: the cause and the server's status line or what was wrong.
        detail: String,
    },
    /// A frame or message that breaks RFC 6455, or an echo that is not one message per message.
    Protocol(String),
}

/// What one [`WsSession::receive`] brought.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WsReceived {
    /// The upgrade completed with these bytes.
    pub upgraded: bool,
    /// The server sent a close frame: no more messages will come.
    pub peer_closed: bool,
    /// A control frame (a pong) waits to be sent: [`WsSession::take_control`].
    pub control: bool,
    /// The payload consumer refused bytes (it found an error): stop.
    pub refused: bool,
}

impl WsReceived {
    /// Adds what a later call brought (TLS hands its plaintext in runs).
    pub fn merge(&mut self, other: WsReceived) {
        self.upgraded |= other.upgraded;
        self.peer_closed |= other.peer_closed;
        self.control |= other.control;
        self.refused |= other.refused;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The upgrade request is out (or queued); the 101 is awaited.
    Upgrading,
    /// Messages flow.
    Open,
    /// The server's close frame arrived: whatever follows is ignored.
    Closed,
}

/// One connection's WebSocket state. See the module docs.
#[derive(Debug)]
pub struct WsSession {
    phase: Phase,
    key: [u8; 24],
    started: Instant,
    /// The upgrade response's bytes so far.
    response: Vec<u8>,
    /// Opcode of every data message sent (text or binary).
    opcode: Opcode,
    /// Check that each echoed message is as long as the one sent (echo, not request/response).
    echo: bool,
    /// The mask PRNG's state (splitmix64).
    rng: u64,
    /// Header bytes [`begin`](Self::begin) reserves: the last message's header length.
    guess: usize,
    /// Lengths of the messages sent and not wholly echoed, oldest first.
    sent: VecDeque<u64>,
    /// A frame header split across reads.
    head: [u8; 14],
    head_len: usize,
    /// The frame being received: its header, and its payload bytes still to come.
    frame: Option<FrameHeader>,
    left: u64,
    /// Inside a data message (its first frame had no FIN).
    in_message: bool,
    /// Payload bytes of the data message being received.
    message_len: u64,
    /// The payload of the control frame being received (at most 125 bytes).
    control_payload: Vec<u8>,
    /// Control frames to send (pongs, the close), masked.
    control_out: Vec<u8>,
    /// Data messages sent.
    pub messages_sent: u64,
    /// Data messages echoed whole.
    pub messages_echoed: u64,
    /// The code of the server's close frame (1005 when it had none).
    pub close_code: Option<u16>,
    /// The client's close frame is queued.
    closing: bool,
}

impl WsSession {
    /// A session whose upgrade starts at `now`, with a key and masks from `seed`; data messages
    /// go as `text` or binary; `echo` checks each echoed message's length.
    pub fn new(seed: u64, now: Instant, text: bool, echo: bool) -> WsSession {
        let mut rng = seed ^ 0x5753_5f52_494e_4750;
        let key_seed = splitmix(&mut rng);
        WsSession {
            phase: Phase::Upgrading,
            key: ringport_ws::client_key(key_seed),
            started: now,
            response: Vec::new(),
            opcode: if text { Opcode::Text } else { Opcode::Binary },
            echo,
            rng,
            guess: 6,
            sent: VecDeque::new(),
            head: [0; 14],
            head_len: 0,
            frame: None,
            left: 0,
            in_message: false,
            message_len: 0,
            control_payload: Vec::new(),
            control_out: Vec::new(),
            messages_sent: 0,
            messages_echoed: 0,
            close_code: None,
            closing: false,
        }
    }

    /// Appends the upgrade request for `host` (the `Host` header), `path` and `headers` to
    /// `out`, and restarts the upgrade's clock at `now`.
    pub fn write_request(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        self.started = now;
        handshake::write_request(host, path, &self.key, headers, out);
    }

    /// Whether the upgrade is still under way (no message may be staged yet).
    pub fn upgrading(&self) -> bool {
        self.phase == Phase::Upgrading
    }

    /// How long the upgrade has taken at `now` (or took, once done).
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Reserves room for the next message's frame header at the end of `out`; returns where the
    /// header goes, for [`end`](Self::end).
    #[inline]
    pub fn begin(&mut self, out: &mut Vec<u8>) -> usize {
        let at = out.len();
        out.resize(at + self.guess, 0);
        at
    }

    /// Frames the message appended to `out` after the header room reserved at `at`: writes its
    /// header and masks it in place.
    pub fn end(&mut self, out: &mut Vec<u8>, at: usize) {
        let body = at + self.guess;
        let len = out.len() - body;
        let head = header_len(len);
        if head != self.guess {
            // Another size than the last message's: the message moves once.
            if head > self.guess {
                out.resize(out.len() + head - self.guess, 0);
            }
            out.copy_within(body..body + len, at + head);
            out.truncate(at + head + len);
            self.guess = head;
        }
        let mask = self.next_mask();
        let header = FrameHeader {
            fin: true,
            opcode: self.opcode,
            mask: Some(mask),
            len: len as u64,
        };
        let mut bytes = [0u8; 14];
        let n = header.encode(&mut bytes);
        debug_assert_eq!(n, head);
        out[at..at + n].copy_from_slice(&bytes[..n]);
        apply_mask(&mut out[at + n..], mask, 0);
        self.sent.push_back(len as u64);
        self.messages_sent += 1;
    }

    /// Queues the client's close frame (code 1000): nothing more is sent after it.
    pub fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            self.push_control(Opcode::Close, &close::NORMAL.to_be_bytes());
        }
    }

    /// The control frames waiting to be sent (masked), appended to `out`.
    pub fn take_control(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.control_out);
        self.control_out.clear();
    }

    /// Whether control frames wait to be sent.
    pub fn has_control(&self) -> bool {
        !self.control_out.is_empty()
    }

    /// Takes in `data`, bytes just received (after TLS, if any): during the upgrade the
    /// server's answer, then frames, whose payload goes to `payload` in order until it returns
    /// false (it found an error).
    ///
    /// # Errors
    ///
    /// The upgrade refused or wrong ([`WsError::Upgrade`]), or a frame or message that breaks
    /// the protocol ([`WsError::Protocol`]).
    pub fn receive(
        &mut self,
        data: &[u8],
        mut payload: impl FnMut(&[u8]) -> bool,
    ) -> Result<WsReceived, WsError> {
        let mut r = WsReceived::default();
        if self.phase == Phase::Upgrading {
            self.response.extend_from_slice(data);
            let consumed = match handshake::parse_response(&self.response, &self.key) {
                Ok(None) if self.response.len() > MAX_RESPONSE => {
                    return Err(WsError::Upgrade {
                        cause: UpgradeFailure::Other,
                        detail: format!(
                            "other: no end to the upgrade response's head within {MAX_RESPONSE} \
                             bytes"
                        ),
                    })
                }
                Ok(None) => return Ok(r),
                Ok(Some(n)) => n,
                Err(e) => return Err(upgrade_error(&self.response, &e.to_string())),
            };
            self.phase = Phase::Open;
            r.upgraded = true;
            let response = std::mem::take(&mut self.response);
            let rest = self.frames(&response[consumed..], &mut payload, &mut r);
            self.response = response;
            self.response.clear();
            self.response.shrink_to_fit();
            rest?;
            return Ok(r);
        }
        self.frames(data, &mut payload, &mut r)?;
        Ok(r)
    }

    /// Strips the frame headers of `data` and hands the payload on. See [`receive`](Self::receive).
    fn frames(
        &mut self,
        mut data: &[u8],
        payload: &mut impl FnMut(&[u8]) -> bool,
        r: &mut WsReceived,
    ) -> Result<(), WsError> {
        while !data.is_empty() && self.phase == Phase::Open {
            let Some(frame) = self.frame else {
                // A header: from `data` itself, or completed in `head`.
                let parsed = if self.head_len == 0 {
                    FrameHeader::parse(data).map_err(|e| protocol(format!("bad frame: {e:?}")))?
                } else {
                    None
                };
                match parsed {
                    Some((h, n)) => {
                        data = &data[n..];
                        self.start_frame(h)?;
                    }
                    None => {
                        let take = (self.head.len() - self.head_len).min(data.len());
                        let had = self.head_len;
                        self.head[had..had + take].copy_from_slice(&data[..take]);
                        self.head_len += take;
                        match FrameHeader::parse(&self.head[..self.head_len])
                            .map_err(|e| protocol(format!("bad frame: {e:?}")))?
                        {
                            Some((h, n)) => {
                                data = &data[n - had..];
                                self.head_len = 0;
                                self.start_frame(h)?;
                            }
                            None => data = &data[take..],
                        }
                    }
                }
                if self.frame.is_some() && self.left == 0 {
                    self.end_frame(r)?;
                }
                continue;
            };
            let n = (self.left.min(data.len() as u64)) as usize;
            let (chunk, rest) = data.split_at(n);
            data = rest;
            self.left -= n as u64;
            if frame.opcode.is_control() {
                self.control_payload.extend_from_slice(chunk);
            } else {
                self.message_len += n as u64;
                if !payload(chunk) {
                    r.refused = true;
                    return Ok(());
                }
            }
            if self.left == 0 {
                self.end_frame(r)?;
            }
        }
        Ok(())
    }

    fn start_frame(&mut self, h: FrameHeader) -> Result<(), WsError> {
        if h.mask.is_some() {
            return Err(protocol("the server masked a frame".to_string()));
        }
        match h.opcode {
            Opcode::Continuation if !self.in_message => {
                return Err(protocol(
                    "a continuation frame with no message begun".to_string(),
                ))
            }
            Opcode::Text | Opcode::Binary if self.in_message => {
                return Err(protocol(
                    "a new message began before the last one ended".to_string(),
                ))
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation => self.in_message = true,
            _ => self.control_payload.clear(),
        }
        self.frame = Some(h);
        self.left = h.len;
        Ok(())
    }

    fn end_frame(&mut self, r: &mut WsReceived) -> Result<(), WsError> {
        let Some(h) = self.frame.take() else {
            return Ok(());
        };
        match h.opcode {
            Opcode::Ping => {
                if !self.closing {
                    let body = std::mem::take(&mut self.control_payload);
                    self.push_control(Opcode::Pong, &body);
                    self.control_payload = body;
                    r.control = true;
                }
            }
            Opcode::Pong => {}
            Opcode::Close => {
                let code = match close::parse_close_payload(&self.control_payload) {
                    Ok(Some((code, _))) => code,
                    Ok(None) => 1005,
                    Err(_) => {
                        return Err(protocol(
                            "a close frame with a malformed payload".to_string(),
                        ))
                    }
                };
                self.close_code = Some(code);
                self.phase = Phase::Closed;
                r.peer_closed = true;
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                if h.fin {
                    self.in_message = false;
                    let got = std::mem::take(&mut self.message_len);
                    if self.echo {
                        match self.sent.pop_front() {
                            Some(want) if want == got => {}
                            Some(want) => {
                                return Err(protocol(format!(
                                    "an echoed message of {got} bytes for a message of {want} \
                                     bytes (each message must come back as one message)"
                                )))
                            }
                            None => {
                                return Err(protocol(format!(
                                    "a message of {got} bytes with no message outstanding"
                                )))
                            }
                        }
                    }
                    self.messages_echoed += 1;
                }
            }
        }
        Ok(())
    }

    /// Appends a masked control frame (`body` at most 125 bytes) to the control frames to send.
    fn push_control(&mut self, opcode: Opcode, body: &[u8]) {
        let mask = self.next_mask();
        let header = FrameHeader {
            fin: true,
            opcode,
            mask: Some(mask),
            len: body.len() as u64,
        };
        let mut bytes = [0u8; 14];
        let n = header.encode(&mut bytes);
        self.control_out.extend_from_slice(&bytes[..n]);
        let at = self.control_out.len();
        self.control_out.extend_from_slice(body);
        apply_mask(&mut self.control_out[at..], mask, 0);
    }

    fn next_mask(&mut self) -> [u8; 4] {
        (splitmix(&mut self.rng) as u32).to_ne_bytes()
    }
}

/// A seed for a session's key and masks: unpredictable, from the thread's random generator.
pub fn fresh_seed() -> u64 {
    rand::random()
}

/// The length of a client frame's header (masked) for a payload of `len` bytes.
fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 6,
        126..=65535 => 8,
        _ => 14,
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn protocol(detail: String) -> WsError {
    WsError::Protocol(detail)
}

/// The first line of `response` (the status line), printable and cut short.
pub fn status_line(response: &[u8]) -> String {
    let end = response
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(response.len())
        .min(200);
    String::from_utf8_lossy(&response[..end]).trim().to_string()
}

/// A failed upgrade classified: a status other than 101 (or a 101 without the upgrade
/// headers) is `status`, a wrong accept key `accept_key`, a response that is not HTTP `other`.
pub fn upgrade_error(response: &[u8], codec_error: &str) -> WsError {
    let line = status_line(response);
    let is_101 = line.starts_with("HTTP/1.1 101") || line.starts_with("HTTP/1.0 101");
    let lower = codec_error.to_ascii_lowercase();
    let (cause, detail) = if !line.starts_with("HTTP/") {
        (
            UpgradeFailure::Other,
            format!("other: the answer is not HTTP ({codec_error})"),
        )
    } else if !is_101 {
        (UpgradeFailure::Status, format!("status: {line}"))
    } else if lower.contains("accept") {
        (
            UpgradeFailure::AcceptKey,
            format!("accept_key: {line} with {codec_error}"),
        )
    } else {
        (
            UpgradeFailure::Status,
            format!("status: {line}: {codec_error}"),
        )
    };
    WsError::Upgrade { cause, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_session(echo: bool) -> WsSession {
        let now = Instant::now();
        let mut s = WsSession::new(7, now, false, echo);
        let mut req = Vec::new();
        s.write_request("localhost", "/", &[], now, &mut req);
        let req = String::from_utf8(req).unwrap();
        let key = req
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_string();
        let accept = ringport_ws::accept_key(key.as_bytes());
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            std::str::from_utf8(&accept).unwrap()
        );
        let r = s.receive(resp.as_bytes(), |_| true).unwrap();
        assert!(r.upgraded && !s.upgrading());
        s
    }

    /// The server's frame for `body` (unmasked), split as the server would send it.
    fn server_frame(opcode: Opcode, fin: bool, body: &[u8]) -> Vec<u8> {
        let mut head = [0u8; 14];
        let n = FrameHeader {
            fin,
            opcode,
            mask: None,
            len: body.len() as u64,
        }
        .encode(&mut head);
        let mut v = head[..n].to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn staged_messages_are_framed_and_masked_in_place() {
        let mut s = open_session(true);
        let mut out = Vec::new();
        for len in [5usize, 5, 300, 70_000, 3] {
            let at = s.begin(&mut out);
            out.extend((0..len).map(|i| i as u8));
            s.end(&mut out, at);
        }
        // Parse them back as a server would, unmasking.
        let mut data = &out[..];
        for len in [5usize, 5, 300, 70_000, 3] {
            let (h, n) = FrameHeader::parse(data).unwrap().unwrap();
            assert!(h.fin && h.opcode == Opcode::Binary && h.len == len as u64);
            let mut body = data[n..n + len].to_vec();
            apply_mask(&mut body, h.mask.unwrap(), 0);
            assert!(body.iter().enumerate().all(|(i, &b)| b == i as u8));
            data = &data[n + len..];
        }
        assert!(data.is_empty());
        assert_eq!(s.messages_sent, 5);
    }

    #[test]
    fn payload_reaches_the_verifier_whatever_the_splits() {
        let mut s = open_session(true);
        let mut out = Vec::new();
        for len in [4usize, 200] {
            let at = s.begin(&mut out);
            out.resize(out.len() + len, 1);
            s.end(&mut out, at);
        }
        let mut wire = server_frame(Opcode::Binary, true, b"abcd");
        wire.extend(server_frame(Opcode::Ping, true, b"hi"));
        wire.extend(server_frame(Opcode::Binary, false, &[b'x'; 150]));
        wire.extend(server_frame(Opcode::Continuation, true, &[b'y'; 50]));
        wire.extend(server_frame(Opcode::Close, true, &1000u16.to_be_bytes()));
        for split in 1..wire.len() {
            let mut t = open_session(true);
            t.sent = s.sent.clone();
            let mut got = Vec::new();
            let mut control = false;
            let mut closed = false;
            for piece in [&wire[..split], &wire[split..]] {
                let r = t
                    .receive(piece, |p| {
                        got.extend_from_slice(p);
                        true
                    })
                    .unwrap();
                control |= r.control;
                closed |= r.peer_closed;
            }
            let mut want = b"abcd".to_vec();
            want.extend_from_slice(&[b'x'; 150]);
            want.extend_from_slice(&[b'y'; 50]);
            assert_eq!(got, want, "split at {split}");
            assert!(control && closed, "split at {split}");
            assert_eq!((t.messages_echoed, t.close_code), (2, Some(1000)));
            let mut pong = Vec::new();
            t.take_control(&mut pong);
            let (h, n) = FrameHeader::parse(&pong).unwrap().unwrap();
            assert_eq!((h.opcode, h.len), (Opcode::Pong, 2));
            let mut body = pong[n..].to_vec();
            apply_mask(&mut body, h.mask.unwrap(), 0);
            assert_eq!(body, b"hi");
        }
    }

    #[test]
    fn an_echo_of_another_length_or_a_masked_frame_is_an_error() {
        let mut s = open_session(true);
        let mut out = Vec::new();
        let at = s.begin(&mut out);
        out.extend_from_slice(b"hello");
        s.end(&mut out, at);
        let e = s
            .receive(&server_frame(Opcode::Binary, true, b"hell"), |_| true)
            .unwrap_err();
        assert!(matches!(e, WsError::Protocol(d) if d.contains("4 bytes for a message of 5")));
        let mut s = open_session(true);
        let e = s.receive(&out, |_| true).unwrap_err();
        assert!(matches!(e, WsError::Protocol(d) if d.contains("masked")));
    }

    #[test]
    fn refusals_are_classified_by_status_line() {
        let mut s = WsSession::new(1, Instant::now(), false, true);
        let e = s
            .receive(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                |_| true,
            )
            .unwrap_err();
        assert_eq!(
            e,
            WsError::Upgrade {
                cause: UpgradeFailure::Status,
                detail: "status: HTTP/1.1 404 Not Found".to_string()
            }
        );
        let mut s = WsSession::new(1, Instant::now(), false, true);
        let e = s
            .receive(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                |_| true,
            )
            .unwrap_err();
        assert!(
            matches!(
                &e,
                WsError::Upgrade {
                    cause: UpgradeFailure::AcceptKey,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
