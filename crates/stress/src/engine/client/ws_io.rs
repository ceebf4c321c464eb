//! A client thread's WebSocket (`--websocket`): starting a connection's upgrade (once its TCP
//! connection, or its TLS handshake, is done), what its session made of the bytes received
//! (the upgrade complete, a pong to send, the server's close), and its errors. See the
//! parent's module docs.

use std::io;
use std::time::Instant;

use super::{Client, Conn, Exchange, WsSession};
use crate::engine::conn::State;
use crate::error::ConnError;
use crate::ws::session::WsError;
pub(super) use crate::ws::session::WsReceived;

impl<X: Exchange> Client<'_, '_, X> {
    /// `--websocket`: queues connection `i`'s upgrade request and sends it.
    pub(super) fn start_ws(&mut self, i: usize, now: Instant) {
        let Some(opts) = self.ws else { return };
        let echo = self.shared.config.requests.is_empty();
        let mut session = Box::new(WsSession::new(rand::random(), now, false, echo));
        let headers = opts.header_pairs();
        let host = &self.ws_host;
        let slot = &mut self.slots[i];
        slot.conn.stage_raw(&mut self.send_bufs, |out| {
            session.write_request(host, &opts.path, &headers, now, out);
        });
        slot.io.ws = Some(session);
        slot.io.layered = true;
        self.send_staged(i, now);
    }

    /// `--websocket`: what connection `i`'s session made of the bytes received: a completed
    /// upgrade (recorded; the connection may send from now on), a pong to send, the server's
    /// close frame (its end of stream). Returns whether the connection goes on.
    pub(super) fn after_ws(&mut self, i: usize, now: Instant, r: WsReceived) -> bool {
        let slot = &mut self.slots[i];
        let Some(ws) = slot.io.ws.as_mut() else {
            return true;
        };
        if r.upgraded {
            let in_window = self.loading
                && now >= self.measure_start
                && self.measure_end.is_none_or(|end| now <= end);
            self.ws_stats.record(ws.elapsed(now), in_window);
        }
        if r.control && ws.has_control() && slot.conn.state == State::Open {
            // Goes with the next send (the connection is pumped after this completion).
            slot.conn
                .stage_raw(&mut self.send_bufs, |out| ws.take_control(out));
        }
        if r.peer_closed {
            if let Err(e) = slot.conn.end_of_stream() {
                self.fail(i, e, now);
                return false;
            }
            if let Some(tok) = slot.io.recv {
                // Nothing more will come: its end comes back as a cancelled receive.
                let _ = self.port.cancel(tok);
            }
        }
        if self.slots[i].conn.is_done() {
            self.maybe_close(i);
            return false;
        }
        true
    }

    /// `--websocket`: whether an upgrade is still under way on any connection.
    pub(super) fn any_upgrading(&self) -> bool {
        self.ws.is_some()
            && self
                .slots
                .iter()
                .any(|s| !s.conn.is_done() && s.io.ws.as_ref().is_some_and(|w| w.upgrading()))
    }
}

/// Hands `data` (plaintext received on `conn`) to its WebSocket session, the payload to
/// `verify`.
pub(super) fn ws_receive<X: Exchange>(
    ws: &mut WsSession,
    conn: &mut Conn<X>,
    data: &[u8],
    mut verify: impl FnMut(&mut Conn<X>, &[u8]) -> Result<usize, ConnError>,
) -> Result<WsReceived, ConnError> {
    let mut wrong = None;
    let received = ws.receive(data, |payload| match verify(conn, payload) {
        Ok(_) => true,
        Err(e) => {
            wrong = Some(e);
            false
        }
    });
    match (received, wrong) {
        (_, Some(e)) => Err(e),
        (Ok(r), None) => Ok(r),
        (Err(e), None) => Err(ws_error(conn, e)),
    }
}

/// A WebSocket error on `conn`: a failed upgrade, or (after it) a protocol error at the
/// verifier's offset.
fn ws_error<X: Exchange>(conn: &Conn<X>, e: WsError) -> ConnError {
    match e {
        WsError::Upgrade { cause, detail } => ConnError::Upgrade { cause, detail },
        WsError::Protocol(detail) => conn.io_error(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket: {detail}"),
        )),
    }
}
