//! The WebSocket echo (`serve --websocket`) of one connection as a plain state machine
//! ([`WsEcho`]): received bytes in, bytes to send out into a bounded buffer, no socket. Every
//! model carries it out (the completion model in `completion::ws_conn`, the blocking models in
//! `blocking::ws`), so the rules below are written and tested once:
//!
//! - **The opening handshake**: the request's head (at most [`IN_MIN`] bytes) is answered with
//!   `101 Switching Protocols` and `Sec-WebSocket-Accept`; a request that is not a valid
//!   upgrade with a refusal (400, 405, 426; 431 for a head too large), then the close.
//! - **Echo**: each text or binary message comes back as one message of the same type. A binary
//!   message in one frame is streamed: its payload unmasked into the output as it arrives,
//!   behind a new unmasked header. A fragmented message, and every text message (validated as
//!   UTF-8 before any of it is echoed), is reassembled first, up to `max_message` bytes; a
//!   larger one is closed with 1009, invalid UTF-8 with 1007.
//! - **Control frames** (allowed between fragments): a ping is answered with a pong of the same
//!   payload, a pong is ignored, a close is answered with a close of the same code, then the
//!   connection closes.
//! - **Failures** end this connection only, with a close frame and the code RFC 6455 names:
//!   an unmasked client frame, a reserved opcode or bit, a continuation without a message, a
//!   new message in the middle of one, an invalid close payload (1002).
//! - **Bounded memory**: the caller's input buffer (at least [`IN_MIN`]), its output buffer
//!   (`out_limit`, at least [`OUT_MIN`], plus a close frame) and the reassembly buffer (at most
//!   `max_message`). When the output is full, [`WsEcho::process`] stops consuming input: the
//!   peer's bytes wait in the socket.
//! - **Shutdown**: [`WsEcho::going_away`] queues a close frame with 1001 after what was
//!   echoed, unless a streamed frame is half sent (then the connection just closes).

use ringport_ws::close;
use ringport_ws::handshake::{self, HandshakeError};
use ringport_ws::{
    accept_key, apply_mask, FrameError, FrameHeader, Opcode, Utf8Stream, MAX_HEADER_LEN,
};

pub use stats::WsStats;

mod stats;

/// The smallest input buffer a connection gives [`WsEcho::process`]: a whole handshake head.
pub const IN_MIN: usize = handshake::MAX_HEAD;

/// The smallest output limit: room for the handshake's response, a pong or a close frame.
pub const OUT_MIN: usize = 512;

/// How far past `out_limit` a close frame may take the output (the capacity to reserve).
pub const OUT_SLACK: usize = 2 + 125;

/// A connection's input buffer for a bound of `buffer_size` bytes (`--buffer-size`): that much
/// payload and the header of the frame carrying it, so that a message of `buffer_size` bytes
/// arrives in one receive; at least [`IN_MIN`].
pub fn input_capacity(buffer_size: usize) -> usize {
    IN_MIN.max(buffer_size.saturating_add(MAX_HEADER_LEN))
}

/// A connection's output limit for a bound of `buffer_size` bytes: that much payload and the
/// header of the frame carrying it, so that the echo of a message of `buffer_size` bytes leaves
/// in one send; at least [`OUT_MIN`].
pub fn out_limit(buffer_size: usize) -> usize {
    OUT_MIN.max(buffer_size.saturating_add(MAX_HEADER_LEN))
}

/// How long a closing connection waits, after its last bytes and its FIN, for the peer's end
/// (its input discarded): closing a socket with unread input would reset the connection, and a
/// reset can destroy the close frame before the peer reads it.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// The default `--ws-max-message`: 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

/// What `serve --websocket` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// The longest message reassembled (fragmented, or text); longer ones are closed with 1009.
    pub max_message: usize,
    /// How long a client may take to send its upgrade request.
    pub handshake_timeout: std::time::Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message: DEFAULT_MAX_MESSAGE,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

/// The default handshake timeout: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a WebSocket connection failed (counted by cause in [`WsStats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsFailure {
    /// The request was not a valid upgrade (refused with 400, 405 or 426).
    BadRequest,
    /// The request's head was longer than the limit (refused with 431).
    HeadTooLarge,
    /// The handshake did not complete within the handshake timeout.
    HandshakeTimeout,
    /// A client frame without a mask (1002).
    Unmasked,
    /// A reserved opcode (1002).
    ReservedOpcode,
    /// Another protocol error: reserved bits, an oversized or fragmented control frame, a bad
    /// sequence of fragments, an invalid close payload (1002).
    Protocol,
    /// A text message that is not UTF-8 (1007).
    InvalidUtf8,
    /// A message to reassemble longer than `--ws-max-message` (1009).
    TooBig,
}

impl WsFailure {
    /// The close code the server sends for it (`None`: before the upgrade, no frame).
    pub fn close_code(self) -> Option<u16> {
        match self {
            WsFailure::BadRequest | WsFailure::HeadTooLarge | WsFailure::HandshakeTimeout => None,
            WsFailure::Unmasked | WsFailure::ReservedOpcode | WsFailure::Protocol => {
                Some(close::PROTOCOL)
            }
            WsFailure::InvalidUtf8 => Some(close::INVALID_PAYLOAD),
            WsFailure::TooBig => Some(close::TOO_BIG),
        }
    }
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the request's head.
    Handshake,
    /// Upgraded: frames are echoed.
    Open,
    /// The last bytes are in the output (a refusal, a close frame): once they are sent, the
    /// connection closes; input is discarded.
    Closing,
}

/// The frame whose payload is arriving.
#[derive(Debug, Clone, Copy)]
struct Current {
    mask: [u8; 4],
    len: u64,
    done: u64,
    /// Unmasked straight into the output; otherwise appended to the message.
    streamed: bool,
    fin: bool,
}

/// One connection's WebSocket echo.
#[derive(Debug)]
pub struct WsEcho {
    phase: Phase,
    max_message: usize,
    /// The frame being received.
    frame: Option<Current>,
    /// The message being reassembled (its opcode, Text or Binary) and its bytes.
    message_opcode: Option<Opcode>,
    message: Vec<u8>,
    utf8: Utf8Stream,
    /// A reassembled message being echoed: how much of it is in the output already.
    echoing: Option<usize>,
    /// A streamed frame's payload is partly in the output (no other frame may go out now).
    mid_frame_out: bool,
    /// The last [`process`](Self::process) stopped for want of output room, not of input.
    wants_room: bool,
    /// Counters of this connection.
    pub stats: WsStats,
}

impl WsEcho {
    /// A connection that has just been accepted, reassembling messages up to `max_message`.
    pub fn new(max_message: usize) -> WsEcho {
        WsEcho {
            phase: Phase::Handshake,
            max_message,
            frame: None,
            message_opcode: None,
            message: Vec::new(),
            utf8: Utf8Stream::new(),
            echoing: None,
            mid_frame_out: false,
            wants_room: false,
            stats: WsStats::default(),
        }
    }

    /// Where the connection is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the connection closes once its output is sent.
    pub fn is_closing(&self) -> bool {
        self.phase == Phase::Closing
    }

    /// Whether the last [`process`](Self::process) stopped because the output was full (its
    /// caller should send before it receives more), rather than for want of input.
    pub fn wants_room(&self) -> bool {
        self.wants_room
    }

    /// Bytes held for reassembly (the memory bound's third part).
    pub fn held(&self) -> usize {
        self.message.capacity()
    }

    /// Takes in `input` (the bytes received and not consumed yet), appending what to send to
    /// `out` while it is under `out_limit`. Returns how many bytes of `input` were consumed:
    /// the caller keeps the rest and presents it again with the next bytes, after sending
    /// `out`. Nothing consumed and nothing written means more input is needed.
    pub fn process(&mut self, input: &[u8], out: &mut Vec<u8>, out_limit: usize) -> usize {
        let out_limit = out_limit.max(OUT_MIN);
        let mut used = 0;
        self.wants_room = false;
        loop {
            match self.phase {
                Phase::Closing => return input.len(),
                Phase::Handshake => match handshake::parse_request(&input[used..]) {
                    Ok(None) => return used,
                    Ok(Some(request)) => {
                        handshake::write_response(&accept_key(request.key), None, out);
                        used += request.consumed;
                        self.stats.handshakes += 1;
                        self.phase = Phase::Open;
                    }
                    Err(e) => {
                        let (status, reason) = e.status();
                        handshake::write_refusal(status, reason, out);
                        self.fail(
                            if e == HandshakeError::TooLarge {
                                WsFailure::HeadTooLarge
                            } else {
                                WsFailure::BadRequest
                            },
                            out,
                        );
                        return input.len();
                    }
                },
                Phase::Open => {
                    if let Some(at) = self.echoing {
                        if !self.echo_message(at, out, out_limit) {
                            self.wants_room = true;
                            return used;
                        }
                        continue;
                    }
                    let progressed = match self.frame {
                        None => self.start_frame(&input[used..], out, out_limit),
                        Some(frame) => self.payload(frame, &input[used..], out, out_limit),
                    };
                    match progressed {
                        Some(0) if self.phase == Phase::Open => return used,
                        Some(n) => used += n,
                        None => return input.len(),
                    }
                }
            }
        }
    }

    /// Reads a frame's header at the start of `input`: `Some(bytes consumed)` (0: more input or
    /// more output room needed), `None` when the connection failed.
    fn start_frame(&mut self, input: &[u8], out: &mut Vec<u8>, out_limit: usize) -> Option<usize> {
        let (header, n) = match FrameHeader::parse(input) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Some(0),
            Err(e) => {
                let failure = match e {
                    FrameError::ReservedOpcode(_) => WsFailure::ReservedOpcode,
                    _ => WsFailure::Protocol,
                };
                self.fail(failure, out);
                return None;
            }
        };
        let Some(mask) = header.mask else {
            self.fail(WsFailure::Unmasked, out);
            return None;
        };
        if header.opcode.is_control() {
            // Whole control frames only (at most 131 bytes, within any input buffer), answered
            // at once.
            let len = header.len as usize;
            if input.len() < n + len {
                return Some(0);
            }
            if out.len() + 2 + len > out_limit {
                self.wants_room = true;
                return Some(0);
            }
            let mut payload = [0u8; 125];
            payload[..len].copy_from_slice(&input[n..n + len]);
            apply_mask(&mut payload[..len], mask, 0);
            self.control(header.opcode, &payload[..len], out)?;
            return Some(n + len);
        }
        match (header.opcode, self.message_opcode) {
            (Opcode::Continuation, None) | (Opcode::Text | Opcode::Binary, Some(_)) => {
                self.fail(WsFailure::Protocol, out);
                return None;
            }
            _ => {}
        }
        let streamed = header.opcode == Opcode::Binary && header.fin;
        if streamed {
            let out_header = FrameHeader {
                mask: None,
                ..header
            };
            if out.len() + out_header.encoded_len() > out_limit {
                self.wants_room = true;
                return Some(0);
            }
            write_header(&out_header, out);
            self.mid_frame_out = header.len > 0;
        } else {
            if header.len > (self.max_message - self.message.len()) as u64 {
                self.fail(WsFailure::TooBig, out);
                return None;
            }
            // Room for the fragment, growing as a vector does but never past the limit.
            let needed = self.message.len() + header.len as usize;
            if needed > self.message.capacity() {
                let target = needed
                    .max(self.message.capacity() * 2)
                    .min(self.max_message);
                self.message.reserve_exact(target - self.message.len());
            }
            if header.opcode != Opcode::Continuation {
                self.message_opcode = Some(header.opcode);
                self.utf8.reset();
            }
        }
        self.frame = Some(Current {
            mask,
            len: header.len,
            done: 0,
            streamed,
            fin: header.fin,
        });
        if header.len == 0 {
            self.frame_done(streamed, header.fin, out)?;
        }
        Some(n)
    }

    /// Takes in a data frame's payload: `Some(bytes consumed)`, `None` when it failed.
    fn payload(
        &mut self,
        frame: Current,
        input: &[u8],
        out: &mut Vec<u8>,
        out_limit: usize,
    ) -> Option<usize> {
        let left = frame.len - frame.done;
        let mut take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
        if frame.streamed {
            take = take.min(out_limit.saturating_sub(out.len()));
        }
        if take == 0 {
            self.wants_room = !input.is_empty();
            return Some(0);
        }
        let target = if frame.streamed {
            &mut *out
        } else {
            &mut self.message
        };
        let from = target.len();
        target.extend_from_slice(&input[..take]);
        apply_mask(&mut target[from..], frame.mask, frame.done);
        if !frame.streamed && self.message_opcode == Some(Opcode::Text) {
            let piece = &self.message[from..];
            if self.utf8.push(piece).is_err() {
                self.fail(WsFailure::InvalidUtf8, out);
                return None;
            }
        }
        let done = frame.done + take as u64;
        self.frame = Some(Current { done, ..frame });
        if done == frame.len {
            self.frame_done(frame.streamed, frame.fin, out)?;
        }
        Some(take)
    }

    /// A data frame's payload is complete: a streamed frame is echoed; the last fragment of a
    /// message starts its echo.
    fn frame_done(&mut self, streamed: bool, fin: bool, out: &mut Vec<u8>) -> Option<()> {
        self.frame = None;
        if streamed {
            self.mid_frame_out = false;
            self.stats.binary += 1;
            return Some(());
        }
        if !fin {
            return Some(());
        }
        if self.message_opcode == Some(Opcode::Text) && self.utf8.finish().is_err() {
            self.fail(WsFailure::InvalidUtf8, out);
            return None;
        }
        self.echoing = Some(0);
        Some(())
    }

    /// Echoes the reassembled message from `at`: true when it is all out.
    fn echo_message(&mut self, at: usize, out: &mut Vec<u8>, out_limit: usize) -> bool {
        let mut at = at;
        if at == 0 {
            let header = FrameHeader {
                fin: true,
                opcode: self.message_opcode.unwrap_or(Opcode::Binary),
                mask: None,
                len: self.message.len() as u64,
            };
            if out.len() + header.encoded_len() > out_limit {
                return false;
            }
            write_header(&header, out);
            // `at` counts header + payload so that 0 means "header not written".
            at = 1;
        }
        let sent = at - 1;
        let room = out_limit.saturating_sub(out.len());
        let take = room.min(self.message.len() - sent);
        out.extend_from_slice(&self.message[sent..sent + take]);
        if sent + take < self.message.len() {
            self.echoing = Some(at + take);
            self.mid_frame_out = true;
            return false;
        }
        self.mid_frame_out = false;
        match self.message_opcode.take() {
            Some(Opcode::Text) => self.stats.text += 1,
            _ => self.stats.binary += 1,
        }
        self.echoing = None;
        self.message.clear();
        if self.message.capacity() > 64 * 1024 {
            // A big message's buffer is not kept for the connection's life.
            self.message = Vec::new();
        }
        true
    }

    /// A control frame: ping, pong, close. `None` when the connection closes or failed.
    fn control(&mut self, opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) -> Option<()> {
        match opcode {
            Opcode::Ping => {
                self.stats.pings += 1;
                write_frame(Opcode::Pong, payload, out);
                Some(())
            }
            Opcode::Pong => Some(()),
            _ => match close::parse_close_payload(payload) {
                Err(_) => {
                    self.fail(WsFailure::Protocol, out);
                    None
                }
                Ok(code) => {
                    match code.map(|(code, _)| code) {
                        Some(close::NORMAL) => self.stats.closes_normal += 1,
                        Some(close::GOING_AWAY) => self.stats.closes_going_away += 1,
                        None => self.stats.closes_no_code += 1,
                        Some(_) => self.stats.closes_other += 1,
                    }
                    // The reply carries the client's code (RFC 6455 section 5.5.1).
                    let reply = code.map_or(&[][..], |_| &payload[..2]);
                    write_frame(Opcode::Close, reply, out);
                    self.phase = Phase::Closing;
                    None
                }
            },
        }
    }

    /// Fails the connection for `failure`: its close frame (after the upgrade), then the close.
    pub fn fail(&mut self, failure: WsFailure, out: &mut Vec<u8>) {
        self.stats.failed(failure);
        if let Some(code) = failure.close_code() {
            if !self.mid_frame_out {
                write_frame(Opcode::Close, &code.to_be_bytes(), out);
            }
        }
        self.phase = Phase::Closing;
    }

    /// The handshake did not complete in time: counted, and the connection closes.
    pub fn handshake_timed_out(&mut self) {
        self.stats.failed(WsFailure::HandshakeTimeout);
        self.phase = Phase::Closing;
    }

    /// The peer's end of stream (or a failed receive): the connection closes once `out` is sent.
    /// An upgraded connection that ends without a close frame is counted as such.
    pub fn end_of_input(&mut self) {
        if self.phase == Phase::Open {
            self.stats.no_close += 1;
        }
        self.phase = Phase::Closing;
    }

    /// The graceful shutdown, once what was received is processed: a close frame with 1001
    /// (going away) is queued; true when it was (not in the handshake, not in the middle of a
    /// streamed frame's output).
    pub fn going_away(&mut self, out: &mut Vec<u8>) -> bool {
        let queued = self.phase == Phase::Open && !self.mid_frame_out;
        if queued {
            write_frame(Opcode::Close, &close::GOING_AWAY.to_be_bytes(), out);
            self.stats.going_away += 1;
        }
        self.phase = Phase::Closing;
        queued
    }
}

fn write_header(header: &FrameHeader, out: &mut Vec<u8>) {
    let mut bytes = [0u8; ringport_ws::MAX_HEADER_LEN];
    let n = header.encode(&mut bytes);
    out.extend_from_slice(&bytes[..n]);
}

/// A server frame (unmasked, final) with a short payload.
fn write_frame(opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    write_header(
        &FrameHeader {
            fin: true,
            opcode,
            mask: None,
            len: payload.len() as u64,
        },
        out,
    );
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests;
