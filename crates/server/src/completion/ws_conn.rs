//! WebSocket connections of the completion model (`serve --websocket`): the worker carries out
//! what each connection's [`WsEcho`] asks, a receive and a send in flight at once: bytes are
//! received into the connection's own input buffer while its last echo is sent from one of its
//! two output buffers, and the echo of what arrives meanwhile is written into the other. The
//! output held (sent or not) is bounded by `--buffer-size` and a frame header ([`out_limit`],
//! plus a close frame): when the echo stops for want of room, the connection stops receiving until a send
//! ends, and the peer's bytes wait in the kernel. The handshake, idle and write timeouts ride
//! the worker's per-tick scan; the drain echoes what was received, then sends a close frame
//! with 1001. The plumbing (table, tagged keys, submit, force, close, timeouts) is `owned`'s.
//!
//! Like TLS connections (`tls_conn`), they live in their own table, their keys tagged with
//! [`WS_TAG`]; owned-buffer completions are routed here by that tag. Plaintext echo connections
//! never reach this module: the worker tests for WebSocket once per accepted connection.

use std::io;
use std::net::SocketAddr;

use ringport_port::{is_cancelled, SharedFd};
use tracing::debug;

use super::owned::{Handshake, Link, Owned, Table};
use super::worker::Worker;
use crate::echo::websocket::{input_capacity, out_limit, Phase, WsConfig, WsEcho, OUT_SLACK};
use crate::messages::log_message;

/// The bit that marks a WebSocket connection's key (in the slot half, beside TLS' bit 31).
pub(super) const WS_TAG: u64 = 1 << 30;

/// A worker's WebSocket connections and what they share.
pub(super) struct WsWorker {
    cfg: WsConfig,
    table: Table<WsConn>,
    /// The output's bound (`--buffer-size` and a frame header, see [`out_limit`]).
    out_limit: usize,
}

impl WsWorker {
    pub(super) fn new(cfg: WsConfig, buffer_size: usize) -> WsWorker {
        WsWorker {
            cfg,
            table: Table::new(cfg.handshake_timeout),
            out_limit: out_limit(buffer_size),
        }
    }

    /// The WebSocket side of a new wss connection.
    pub(super) fn wss_layer(&self, buffer_size: usize) -> super::wss::WssLayer {
        super::wss::WssLayer::new(self.cfg, buffer_size)
    }

    /// WebSocket connections open.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}

/// One WebSocket connection: its socket and operations in flight, its echo state, its buffers.
pub(super) struct WsConn {
    link: Link,
    ws: WsEcho,
    /// Received bytes not consumed yet (`None` while a receive has it).
    input: Option<Vec<u8>>,
    /// The echo written and not handed to a send yet.
    out: Vec<u8>,
    /// The other output buffer, back from its send (`None` while a send has it): empty, or
    /// sent up to `sent` (a short send, whose rest goes next).
    flight: Option<Vec<u8>>,
    sent: usize,
    /// Bytes of the send in flight (or back short) not sent yet: part of the output's bound.
    unsent: usize,
}

impl Owned for WsConn {
    const TAG: u64 = WS_TAG;
    const NAME: &'static str = "WebSocket";

    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn table<'t>(worker: &'t mut Worker<'_>) -> Option<&'t mut Table<WsConn>> {
        worker.ws.as_mut().map(|ws| &mut ws.table)
    }

    fn advance(worker: &mut Worker<'_>, key: u64) {
        worker.ws_advance(key);
    }

    fn handshake(&mut self, now_ms: u64, handshake_ms: u64) -> Handshake {
        if self.ws.phase() != Phase::Handshake {
            Handshake::Done
        } else if now_ms.saturating_sub(self.link.started_ms) >= handshake_ms {
            self.ws.handshake_timed_out();
            Handshake::Expired
        } else {
            Handshake::Pending
        }
    }

    fn drain_closes(&self) -> bool {
        self.ws.phase() == Phase::Handshake
    }

    fn count(self, worker: &mut Worker<'_>) {
        worker.stats.ws.add(&self.ws.stats);
    }
}

impl Worker<'_> {
    /// Serves a new connection as WebSocket.
    pub(super) fn new_ws_conn(&mut self, fd: SharedFd, peer: Option<SocketAddr>) {
        let _ = fd
            .real()
            .map(|f| socket2::SockRef::from(f).set_tcp_nodelay(true));
        let Some(ws) = self.ws.as_ref() else {
            return;
        };
        let (max_message, out_limit) = (ws.cfg.max_message, ws.out_limit);
        self.serial += 1;
        let conn = WsConn {
            link: Link::new(fd, peer, self.now_ms, self.serial),
            ws: WsEcho::new(max_message),
            input: Some(Vec::with_capacity(input_capacity(self.cfg.buffer_size))),
            out: Vec::with_capacity(out_limit + OUT_SLACK),
            // Taken on the first echo written while another is sent (none while idle).
            flight: Some(Vec::new()),
            sent: 0,
            unsent: 0,
        };
        let Some(key) = self.owned_insert(conn) else {
            return;
        };
        debug!(
            worker = self.id,
            key,
            ?peer,
            "WebSocket connection accepted"
        );
        self.ws_advance(key);
    }

    /// Starts what the connection `key` does next: echoes what it received (when no receive
    /// has its input), then a send of its output and a receive, each when none of its kind is
    /// in flight and there is something to send or room for the echo; once it is closing and
    /// its output is sent, its FIN and the linger; closes it when it is finished (or forced)
    /// and nothing of it is in flight.
    fn ws_advance(&mut self, key: u64) {
        let (draining, now) = (self.draining, self.now_ms);
        let Some(out_limit) = self.ws.as_ref().map(|ws| ws.out_limit) else {
            return;
        };
        let Some(conn) = self.owned::<WsConn>(key) else {
            return;
        };
        let Some(fd) = conn.link.fd.clone() else {
            return;
        };
        if conn.link.forced {
            if conn.link.idle() {
                self.owned_close::<WsConn>(key);
            }
            return;
        }
        if conn.link.lingering.is_none() {
            if let Some(input) = conn.input.as_mut() {
                // What it holds unsent stays within the bound (the echo takes at least
                // OUT_MIN, so it always has room for a header or a control frame).
                let limit = out_limit.saturating_sub(conn.unsent);
                loop {
                    let used = conn.ws.process(input, &mut conn.out, limit);
                    input.drain(..used);
                    if used == 0 || conn.ws.is_closing() || input.is_empty() {
                        break;
                    }
                }
            }
        }
        // A send: the rest of a short one, or the output written since the last.
        let mut send = None;
        if conn.link.send_op.is_none() {
            if let Some(flight) = conn.flight.take() {
                if conn.sent < flight.len() {
                    send = Some((flight, conn.sent));
                } else if !conn.out.is_empty() {
                    let mut next = flight;
                    next.clear();
                    if next.capacity() == 0 {
                        next.reserve_exact(out_limit + OUT_SLACK);
                    }
                    let full = std::mem::replace(&mut conn.out, next);
                    conn.unsent = full.len();
                    send = Some((full, 0));
                } else {
                    conn.flight = Some(flight);
                }
            }
        }
        let sending = send.is_some() || conn.link.send_op.is_some();
        let mut recv = None;
        if conn.ws.is_closing() {
            if !sending && conn.out.is_empty() {
                if conn.link.lingering.is_none() {
                    // The FIN behind the last bytes; then the peer's bytes are read and dropped
                    // until its end (or the linger's end, by the tick), so that the close does
                    // not reset the connection under the close frame.
                    conn.link.start_linger(now);
                }
                if let Some(mut input) = conn.input.take() {
                    input.clear();
                    recv = Some(input);
                }
            }
        } else if conn.link.recv_op.is_none() && !conn.ws.wants_room() {
            if let Some(input) = conn.input.take_if(|i| i.len() < i.capacity()) {
                recv = Some(input);
            } else if !sending && conn.out.is_empty() {
                // Cannot happen (a head or a frame header fits), kept as a bound.
                conn.ws.end_of_input();
                self.owned_close::<WsConn>(key);
                return;
            }
        }
        // A lingering receive waits, even while draining: for the peer's end.
        let nowait = draining && conn.link.lingering.is_none();
        self.owned_submit_both::<WsConn>(key, fd, send, recv, nowait);
    }

    /// A receive of the connection `key` ended.
    pub(super) fn on_ws_recv(&mut self, key: u64, buf: Vec<u8>, result: io::Result<usize>) {
        let (now, id, draining, log) = (self.now_ms, self.id, self.draining, self.cfg.log_messages);
        let Some(conn) = self.owned::<WsConn>(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.link.recv_op = None;
        if conn.link.lingering.is_some() {
            // Dropped; the end or a failure ends the linger.
            if matches!(result, Ok(n) if n > 0) {
                conn.link.last_ms = now;
            } else {
                conn.link.forced = true;
            }
            conn.input = Some(buf);
            self.ws_advance(key);
            return;
        }
        let mut failed = None;
        let mut received = 0;
        match result {
            Ok(0) => {
                if draining {
                    conn.ws.going_away(&mut conn.out);
                } else {
                    conn.ws.end_of_input();
                }
            }
            Ok(n) => {
                conn.link.last_ms = now;
                received = n;
                if log {
                    log_message(id, conn.link.serial, conn.link.peer, &buf[buf.len() - n..]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // A draining receive found nothing more: the echo is done, say goodbye.
                conn.ws.going_away(&mut conn.out);
            }
            Err(e) if is_cancelled(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(worker = id, key, "receive failed: {e}");
                failed = Some(e);
            }
        }
        conn.input = Some(buf);
        self.stats.bytes_in += received as u64;
        if let Some(e) = failed {
            self.stats.conn_errors += 1;
            self.stats.conn_error_kinds.count(&e);
            // The send in flight, if any, is cancelled: the connection closes.
            self.owned_force::<WsConn>(key);
            return;
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
        let Some(conn) = self.owned::<WsConn>(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.link.send_op = None;
        let mut failed = None;
        let mut echoed = 0;
        match result {
            Ok(n) if n > 0 => {
                echoed = n;
                conn.link.last_ms = now;
                conn.sent = at + n;
                if conn.sent >= buf.len() {
                    buf.clear();
                    conn.sent = 0;
                }
            }
            other => {
                buf.clear();
                conn.sent = 0;
                conn.link.forced = true;
                match other {
                    Err(e) if is_cancelled(&e) => {}
                    Err(e) => failed = Some(e),
                    Ok(_) => failed = Some(io::ErrorKind::WriteZero.into()),
                }
            }
        }
        conn.unsent = buf.len() - conn.sent.min(buf.len());
        conn.flight = Some(buf);
        let forced = conn.link.forced;
        self.stats.bytes_out += echoed as u64;
        if let Some(e) = failed {
            debug!(worker = self.id, key, "send failed: {e}");
            self.stats.conn_errors += 1;
            self.stats.conn_error_kinds.count(&e);
        }
        if forced {
            // The receive in flight, if any, is cancelled: the connection closes.
            self.owned_force::<WsConn>(key);
            return;
        }
        self.ws_advance(key);
    }
}
