//! wss (WebSocket over TLS) in the completion model: a TLS connection (`tls_conn`) whose
//! session carries its plaintext to a [`WsEcho`] instead of echoing it. One rule,
//! [`WssLayer::step`], called wherever the TLS connection processes what it received or has
//! room to send: the records decrypted into the WebSocket input, the WebSocket echo of it,
//! its output sealed into records, and once the WebSocket side is closing and its last bytes
//! are sealed, close_notify. The socket, the operations in flight, the timeouts and the close
//! are the TLS connection's.
//!
//! Memory: the session's buffers, the WebSocket input ([`input_capacity`]: a handshake head or
//! `--buffer-size` and a frame header, plus one record's plaintext), its output
//! ([`out_limit`]) and its reassembly buffer (at most `--ws-max-message`).

use crate::echo::websocket::{input_capacity, out_limit, Phase, WsConfig, WsEcho, OUT_SLACK};
use crate::tls::{Log, Session, PLAIN_MAX};

/// One wss connection's WebSocket side.
pub(super) struct WssLayer {
    pub(super) ws: WsEcho,
    /// Decrypted bytes not consumed by the WebSocket echo yet.
    input: Vec<u8>,
    /// WebSocket output not sealed yet.
    out: Vec<u8>,
    out_limit: usize,
    /// The WebSocket handshake's timeout, in milliseconds from the accept.
    pub(super) handshake_ms: u64,
}

impl WssLayer {
    pub(super) fn new(cfg: WsConfig, buffer_size: usize) -> WssLayer {
        let out_limit = out_limit(buffer_size);
        WssLayer {
            ws: WsEcho::new(cfg.max_message),
            input: Vec::with_capacity(input_capacity(buffer_size) + PLAIN_MAX),
            out: Vec::with_capacity(out_limit + OUT_SLACK),
            out_limit,
            handshake_ms: u64::try_from(cfg.handshake_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// A buffer for the receives that discard the peer's last bytes (the input's: it is not
    /// needed any more), handed back with [`give_back`](Self::give_back).
    pub(super) fn sink(&mut self) -> Vec<u8> {
        self.input.clear();
        std::mem::take(&mut self.input)
    }

    pub(super) fn give_back(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.input = buf;
    }

    /// Whether the WebSocket upgrade is still to come.
    pub(super) fn in_handshake(&self) -> bool {
        self.ws.phase() == Phase::Handshake
    }

    /// Does what can be done now, until nothing moves: records decrypted into the input (none
    /// while a receive is in flight), the WebSocket echo of the input, its output sealed (as
    /// far as the session's send buffers have room); at the input's end the WebSocket side
    /// ends (with a close frame of 1001 when `draining`); once it is closing and its output
    /// sealed, close_notify. Returns the plaintext bytes received.
    pub(super) fn step(
        &mut self,
        session: &mut Session,
        draining: bool,
        mut log: Option<Log<'_>>,
    ) -> usize {
        let mut received = 0;
        loop {
            let again: Option<Log<'_>> = match &mut log {
                Some(log) => Some(&mut **log),
                None => None,
            };
            let got = session.pump(&mut self.input, again);
            received += got;
            if !session.is_established() {
                return received;
            }
            let mut used = 0;
            while self.out.len() < self.out_limit {
                let n = self.ws.process(&self.input, &mut self.out, self.out_limit);
                self.input.drain(..n);
                used += n;
                if n == 0 || self.ws.is_closing() {
                    break;
                }
            }
            if !self.ws.is_closing() && session.input_over() {
                if draining {
                    self.ws.going_away(&mut self.out);
                } else {
                    self.ws.end_of_input();
                }
            }
            let sealed = session.seal(&self.out);
            self.out.drain(..sealed);
            if self.ws.is_closing() && self.out.is_empty() {
                session.close();
            }
            if got == 0 && used == 0 && sealed == 0 {
                return received;
            }
        }
    }
}
