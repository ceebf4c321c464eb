//! WebSocket connections of the completion model (`serve --websocket`): the worker carries out
//! what each connection's [`WsEcho`] asks, one operation at a time: receive into the
//! connection's own input buffer, send from its own output buffer, close. The handshake, idle
//! and write timeouts ride the worker's per-tick scan; the drain echoes what was received, then
//! sends a close frame with 1001.
//!
//! Like TLS connections (`tls_conn`), they live in their own table, their keys tagged with
//! [`WS_TAG`]; owned-buffer completions are routed here by that tag. Plaintext echo connections
//! never reach this module: the worker tests for WebSocket once per accepted connection.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use ringport_port::{is_cancelled, Accepted, Op, SharedFd, Token};
use tracing::{debug, error};

use super::worker::Worker;
use crate::echo::websocket::{Phase, WsConfig, WsEcho, IN_MIN, LINGER, OUT_MIN, OUT_SLACK};
use crate::echo::Waiting;
use crate::messages::log_message;
use crate::slots::Slots;

/// The bit that marks a WebSocket connection's key (in the slot half, beside TLS' bit 31).
pub(super) const WS_TAG: u64 = 1 << 30;

/// A worker's WebSocket connections and what they share.
pub(super) struct WsWorker {
    cfg: WsConfig,
    conns: Slots<WsConn>,
    /// The output buffer's bound (`--buffer-size`, at least [`OUT_MIN`]).
    out_limit: usize,
    handshake_ms: u64,
}

impl WsWorker {
    pub(super) fn new(cfg: WsConfig, buffer_size: usize) -> WsWorker {
        WsWorker {
            cfg,
            conns: Slots::default(),
            out_limit: buffer_size.max(OUT_MIN),
            handshake_ms: u64::try_from(cfg.handshake_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The WebSocket side of a new wss connection.
    pub(super) fn wss_layer(&self, buffer_size: usize) -> super::wss::WssLayer {
        super::wss::WssLayer::new(self.cfg, buffer_size)
    }

    /// WebSocket connections open.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }
}

/// One WebSocket connection: its socket, its echo state, its buffers, its operation in flight.
pub(super) struct WsConn {
    fd: Option<SharedFd>,
    ws: WsEcho,
    /// Received bytes not consumed yet (`None` while a receive has it).
    input: Option<Vec<u8>>,
    /// Bytes to send, and how many of them are sent (`None` while a send has it).
    out: Option<Vec<u8>>,
    sent: usize,
    recv_op: Option<Token>,
    send_op: Option<Token>,
    peer: Option<SocketAddr>,
    started_ms: u64,
    last_ms: u64,
    forced: bool,
    /// Closing: since when its FIN is sent and the peer's bytes are discarded (see [`LINGER`]),
    /// in the worker's clock.
    lingering: Option<u64>,
    serial: u64,
}

impl Worker<'_> {
    /// Serves a new connection as WebSocket.
    pub(super) fn new_ws_conn(&mut self, accepted: Accepted) {
        let Accepted { fd, peer } = accepted;
        let _ = fd
            .real()
            .map(|f| socket2::SockRef::from(f).set_tcp_nodelay(true));
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        self.serial += 1;
        let key = WS_TAG
            | ws.conns.insert(WsConn {
                fd: Some(Rc::new(fd)),
                ws: WsEcho::new(ws.cfg.max_message),
                input: Some(Vec::with_capacity(IN_MIN.max(self.cfg.buffer_size))),
                out: Some(Vec::with_capacity(ws.out_limit + OUT_SLACK)),
                sent: 0,
                recv_op: None,
                send_op: None,
                peer,
                started_ms: self.now_ms,
                last_ms: self.now_ms,
                forced: false,
                lingering: None,
                serial: self.serial,
            });
        debug!(
            worker = self.id,
            key,
            ?peer,
            "WebSocket connection accepted"
        );
        self.ws_advance(key);
    }

    fn ws_conn(&mut self, key: u64) -> Option<&mut WsConn> {
        self.ws.as_mut()?.conns.get_mut(key & !WS_TAG)
    }

    /// Starts what the connection `key` does next, when nothing of it is in flight.
    fn ws_advance(&mut self, key: u64) {
        let draining = self.draining;
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        let out_limit = ws.out_limit;
        let Some(conn) = ws.conns.get_mut(key & !WS_TAG) else {
            return;
        };
        if conn.fd.is_none() || conn.recv_op.is_some() || conn.send_op.is_some() {
            return;
        }
        if conn.forced {
            self.ws_close(key);
            return;
        }
        let (Some(input), Some(out)) = (conn.input.as_mut(), conn.out.as_mut()) else {
            return;
        };
        if out.is_empty() {
            loop {
                let used = conn.ws.process(input, out, out_limit);
                input.drain(..used);
                if !out.is_empty() || used == 0 || conn.ws.is_closing() {
                    break;
                }
            }
        }
        let fd = conn.fd.clone().expect("checked above");
        let op = if !out.is_empty() {
            Op::Send {
                fd,
                buf: std::mem::take(out),
                at: conn.sent,
            }
        } else if conn.ws.is_closing() {
            if conn.lingering.is_none() {
                // The FIN behind the last bytes; then the peer's bytes are read and dropped
                // until its end (or the linger's end, by the tick), so that the close does not
                // reset the connection under the close frame.
                let _ = fd
                    .real()
                    .map(|f| socket2::SockRef::from(f).shutdown(std::net::Shutdown::Write));
                conn.lingering = Some(self.now_ms);
            }
            input.clear();
            Op::Recv {
                fd,
                buf: std::mem::take(input),
                nowait: draining,
            }
        } else if input.len() == input.capacity() {
            // Cannot happen (a head or a frame header fits), kept as a bound.
            conn.ws.end_of_input();
            self.ws_close(key);
            return;
        } else {
            Op::Recv {
                fd,
                buf: std::mem::take(input),
                nowait: draining,
            }
        };
        let is_send = matches!(op, Op::Send { .. });
        match self.port.submit(key, op) {
            Ok(token) => {
                if let Some(conn) = self.ws_conn(key) {
                    if is_send {
                        conn.out = None;
                        conn.send_op = Some(token);
                    } else {
                        conn.input = None;
                        conn.recv_op = Some(token);
                    }
                }
            }
            Err(e) => {
                error!(
                    worker = self.id,
                    key, "cannot submit an operation: {e}; dropping the connection"
                );
                self.stats.conn_errors += 1;
                self.stats.conn_error_kinds.refused_op += 1;
                if let Some(conn) = self.ws_conn(key) {
                    conn.forced = true;
                }
                self.ws_close(key);
            }
        }
    }

    /// A receive of the connection `key` ended.
    pub(super) fn on_ws_recv(&mut self, key: u64, buf: Vec<u8>, result: io::Result<usize>) {
        let (now, id, draining, log) = (self.now_ms, self.id, self.draining, self.cfg.log_messages);
        let Some(conn) = self.ws_conn(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.recv_op = None;
        if conn.lingering.is_some() {
            // Dropped; the end, a failure or the drain's "nothing more" ends the linger.
            if !matches!(result, Ok(n) if n > 0) {
                conn.forced = true;
            }
            conn.input = Some(buf);
            self.ws_advance(key);
            return;
        }
        let mut failed = None;
        let mut received = 0;
        match result {
            Ok(0) => {
                let out = conn.out.as_mut().expect("no send in flight with a receive");
                if draining {
                    conn.ws.going_away(out);
                } else {
                    conn.ws.end_of_input();
                }
            }
            Ok(n) => {
                conn.last_ms = now;
                received = n;
                if log {
                    log_message(id, conn.serial, conn.peer, &buf[buf.len() - n..]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A draining receive found nothing more: the echo is done, say goodbye.
                let out = conn.out.as_mut().expect("no send in flight with a receive");
                conn.ws.going_away(out);
            }
            Err(e) if is_cancelled(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(worker = id, key, "receive failed: {e}");
                conn.forced = true;
                failed = Some(e);
            }
        }
        conn.input = Some(buf);
        self.stats.bytes_in += received as u64;
        if let Some(e) = failed {
            self.stats.conn_errors += 1;
            self.stats.conn_error_kinds.count(&e);
        }
        self.ws_advance(key);
    }

    /// A send of the connection `key` ended.
    pub(super) fn on_ws_send(
        &mut self,
        key: u64,
        mut buf: Vec<u8>,
        at: usize,
        result: io::Result<usize>,
    ) {
        let now = self.now_ms;
        let Some(conn) = self.ws_conn(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.send_op = None;
        let mut failed = None;
        let mut echoed = 0;
        match result {
            Ok(n) if n > 0 => {
                echoed = n;
                conn.last_ms = now;
                conn.sent = at + n;
                if conn.sent >= buf.len() {
                    buf.clear();
                    conn.sent = 0;
                }
            }
            other => {
                buf.clear();
                conn.sent = 0;
                conn.forced = true;
                match other {
                    Err(e) if is_cancelled(&e) => {}
                    Err(e) => failed = Some(e),
                    Ok(_) => failed = Some(io::ErrorKind::WriteZero.into()),
                }
            }
        }
        conn.out = Some(buf);
        self.stats.bytes_out += echoed as u64;
        if let Some(e) = failed {
            debug!(worker = self.id, key, "send failed: {e}");
            self.stats.conn_errors += 1;
            self.stats.conn_error_kinds.count(&e);
        }
        self.ws_advance(key);
    }

    /// Submits the close of the connection `key`; its slot is freed when the close completes.
    fn ws_close(&mut self, key: u64) {
        let id = self.id;
        let Some(conn) = self.ws_conn(key) else {
            return;
        };
        let Some(fd) = conn.fd.take() else {
            return;
        };
        if let Err(e) = self.port.submit(key, Op::Close { fd }) {
            error!(worker = id, key, "cannot submit a close: {e}");
            self.ws_forget(key);
        }
    }

    /// Forgets the WebSocket connection `key` once its close completed, with its counters.
    pub(super) fn ws_forget(&mut self, key: u64) -> bool {
        if key & WS_TAG == 0 {
            return false;
        }
        let Some(conn) = self
            .ws
            .as_mut()
            .and_then(|ws| ws.conns.remove(key & !WS_TAG))
        else {
            return false;
        };
        self.stats.closed += 1;
        self.stats.ws.add(&conn.ws.stats);
        self.gate.release();
        self.per_ip.leave(conn.peer.map(|p| p.ip()));
        true
    }

    /// Cancels what the connection `key` has in flight; it closes once that is back.
    fn ws_force(&mut self, key: u64) {
        let Some(conn) = self.ws_conn(key) else {
            return;
        };
        conn.forced = true;
        let ops = [conn.recv_op, conn.send_op];
        for token in ops.into_iter().flatten() {
            let _ = self.port.cancel(token);
        }
        self.ws_advance(key);
    }

    fn ws_keys(&mut self) -> Vec<u64> {
        match self.ws.as_mut() {
            Some(ws) => ws.conns.iter_mut().map(|(k, _)| k | WS_TAG).collect(),
            None => Vec::new(),
        }
    }

    /// The graceful shutdown: a receive waiting for data is cancelled, then receives do not
    /// wait, so what was received is echoed, then the close frame (1001) is sent; a connection
    /// still in its handshake is closed.
    pub(super) fn ws_drain(&mut self) {
        for key in self.ws_keys() {
            let Some(conn) = self.ws_conn(key) else {
                continue;
            };
            if conn.ws.phase() == Phase::Handshake {
                self.ws_force(key);
            } else if let Some(token) = conn.recv_op {
                let _ = self.port.cancel(token);
            }
        }
    }

    /// The drain deadline: every WebSocket connection still open is closed.
    pub(super) fn ws_force_all(&mut self) {
        for key in self.ws_keys() {
            if let Some(conn) = self.ws_conn(key) {
                if conn.fd.is_some() && !conn.forced {
                    self.stats.forced_closes += 1;
                    self.ws_force(key);
                }
            }
        }
    }

    /// Once per tick: upgrades past the handshake timeout, and the idle and write timeouts.
    pub(super) fn ws_tick(&mut self) {
        if self.draining {
            return;
        }
        let now = self.now_ms;
        let timeouts = self.timeouts;
        let linger_ms = LINGER.as_millis() as u64;
        let Some(ws) = self.ws.as_mut() else {
            return;
        };
        let mut expired = Vec::new();
        for (key, conn) in ws.conns.iter_mut() {
            if conn.fd.is_none() || conn.forced {
                continue;
            }
            if let Some(since) = conn.lingering {
                if now.saturating_sub(since) >= linger_ms {
                    expired.push(key | WS_TAG);
                }
                continue;
            }
            if conn.ws.phase() == Phase::Handshake {
                if now.saturating_sub(conn.started_ms) >= ws.handshake_ms {
                    conn.ws.handshake_timed_out();
                    expired.push(key | WS_TAG);
                }
                continue;
            }
            let waiting = if conn.send_op.is_some() {
                Waiting::PeerReading
            } else if conn.recv_op.is_some() {
                Waiting::PeerData
            } else {
                Waiting::Nothing
            };
            match timeouts.expiry(waiting, now.saturating_sub(conn.last_ms)) {
                Some(super::timeouts::Expiry::Idle) => self.stats.idle_closed += 1,
                Some(super::timeouts::Expiry::Write) => self.stats.write_timeouts += 1,
                None => continue,
            }
            expired.push(key | WS_TAG);
        }
        for key in expired {
            debug!(
                worker = self.id,
                key, "timeout: closing the WebSocket connection"
            );
            self.ws_force(key);
        }
    }
}
