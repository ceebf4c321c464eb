//! TLS connections of the completion model: the worker carries out what each connection's
//! [`Session`] asks (receive into its own buffer, send from its own buffers, close), a receive
//! and a send in flight at once (the next records arrive while the last echo is sent), with
//! the port's owned-buffer receives and sends; the handshake, idle and write timeouts by the
//! worker's per-tick scan; the drain (the echo of what was received, then close_notify) and
//! the forced close. With `--websocket` too (wss) each connection has a WebSocket side
//! ([`WssLayer`]) that its plaintext is carried to and its output comes from.
//!
//! TLS connections live in their own table, their keys tagged with [`TLS_TAG`]. Plaintext
//! connections never reach this module: the worker dispatches completions by their outcome
//! (pooled receives and gathered sends are plaintext's; owned-buffer receives and sends are
//! TLS'), and a close's completion is looked up here only when the plaintext table does not
//! know its key. With TLS off, the plaintext path pays one predictable test per accepted
//! connection, none per message.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use ringport_port::{is_cancelled, Accepted, Op, SharedFd, Token};
use rustls::ServerConfig;
use tracing::{debug, error};

use super::worker::Worker;
use super::wss::WssLayer;
use crate::echo::websocket::LINGER;
use crate::echo::Waiting;
use crate::messages::log_message;
use crate::slots::Slots;
use crate::tls::{Failure, Log, Session, Tls, PLAIN_MAX};

/// The bit that marks a TLS connection's key (in the slot half: no table has 2^31 slots).
pub(super) const TLS_TAG: u64 = 1 << 31;

/// A worker's TLS: the configuration its connections share, their table, the plaintext
/// scratch buffer, and the handshake timeout in milliseconds of the worker's clock.
pub(super) struct TlsWorker {
    config: Arc<ServerConfig>,
    conns: Slots<TlsConn>,
    /// Decrypted bytes between rustls' decryption and encryption, empty between calls.
    plain: Vec<u8>,
    handshake_ms: u64,
}

impl TlsWorker {
    pub(super) fn new(tls: &Tls) -> TlsWorker {
        TlsWorker {
            config: Arc::clone(&tls.config),
            conns: Slots::default(),
            plain: Vec::with_capacity(2 * PLAIN_MAX),
            handshake_ms: u64::try_from(tls.handshake_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// TLS connections open.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }
}

/// One TLS connection: its socket, its session, its operations in flight.
pub(super) struct TlsConn {
    fd: Option<SharedFd>,
    session: Session,
    /// wss: the WebSocket echo the plaintext is carried to.
    wss: Option<WssLayer>,
    recv_op: Option<Token>,
    send_op: Option<Token>,
    peer: Option<SocketAddr>,
    /// When it was accepted and when it last made progress, in the worker's clock.
    started_ms: u64,
    last_ms: u64,
    /// Closing without finishing: its operations are cancelled, then it closes.
    forced: bool,
    /// wss, closing: since when its FIN is sent after close_notify and the peer's bytes are
    /// discarded (see [`LINGER`]), in the worker's clock.
    lingering: Option<u64>,
    /// Its number among the worker's accepts, as `--log-messages` names it.
    serial: u64,
}

impl Worker<'_> {
    /// Serves a new connection over TLS.
    pub(super) fn new_tls_conn(&mut self, accepted: Accepted) {
        let Accepted { fd, peer } = accepted;
        let _ = fd
            .real()
            .map(|f| socket2::SockRef::from(f).set_tcp_nodelay(true));
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        let wss = self
            .ws
            .as_ref()
            .map(|ws| ws.wss_layer(self.cfg.buffer_size));
        let session = match Session::new(&tls.config, super::recv_limit(self.cfg)) {
            Ok(mut session) => {
                if wss.is_some() {
                    session.carry();
                }
                session
            }
            Err(e) => {
                error!(worker = self.id, "cannot start a TLS session: {e}");
                self.stats.tls.failed(Failure::Other);
                self.gate.release();
                self.per_ip.leave(peer.map(|p| p.ip()));
                return;
            }
        };
        self.serial += 1;
        let key = TLS_TAG
            | tls.conns.insert(TlsConn {
                fd: Some(Rc::new(fd)),
                session,
                wss,
                recv_op: None,
                send_op: None,
                peer,
                started_ms: self.now_ms,
                last_ms: self.now_ms,
                forced: false,
                lingering: None,
                serial: self.serial,
            });
        debug!(worker = self.id, key, ?peer, "TLS connection accepted");
        self.tls_advance(key);
    }

    fn tls_conn(&mut self, key: u64) -> Option<&mut TlsConn> {
        self.tls.as_mut()?.conns.get_mut(key & !TLS_TAG)
    }

    /// Starts what the connection `key` does next: processes what it received (when no
    /// receive is in flight), then starts a send of its ciphertext and a receive, each when
    /// none of its kind is in flight and the session wants one; closes it when it is finished
    /// (or forced) and nothing of it is in flight.
    fn tls_advance(&mut self, key: u64) {
        let draining = self.draining;
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        let Some(conn) = tls.conns.get_mut(key & !TLS_TAG) else {
            return;
        };
        let Some(fd) = conn.fd.clone() else {
            return;
        };
        if conn.forced {
            if conn.recv_op.is_none() && conn.send_op.is_none() {
                self.tls_close(key);
            }
            return;
        }
        if conn.lingering.is_some() {
            // The peer's bytes are read and dropped until its end (or the linger's end).
            if let (None, Some(wss)) = (conn.recv_op, conn.wss.as_mut()) {
                let op = Op::Recv {
                    fd,
                    buf: wss.sink(),
                    nowait: draining,
                };
                self.tls_submit(key, op, false);
            }
            return;
        }
        // wss: the WebSocket side may move on while a receive is in flight (a send ended).
        if conn.recv_op.is_none() || conn.wss.is_some() {
            let was = conn.session.is_established();
            let (id, serial, peer) = (self.id, conn.serial, conn.peer);
            let mut log_fn = |bytes: &[u8]| log_message(id, serial, peer, bytes);
            let log: Option<Log<'_>> = if self.cfg.log_messages {
                Some(&mut log_fn)
            } else {
                None
            };
            let received = match conn.wss.as_mut() {
                Some(wss) => wss.step(&mut conn.session, draining, log),
                None => conn.session.pump(&mut tls.plain, log),
            };
            self.stats.bytes_in += received as u64;
            if !was && conn.session.is_established() {
                self.stats.tls.established(conn.session.version());
            }
        }
        let send = match conn.send_op {
            None => conn.session.take_send(),
            Some(_) => None,
        };
        let recv = match conn.recv_op {
            None => conn.session.take_recv(),
            Some(_) => None,
        };
        let idle = conn.send_op.is_none() && conn.recv_op.is_none();
        if send.is_none() && recv.is_none() && idle {
            if !conn.session.is_finished() {
                // Nothing to send and no room to receive: a record larger than any allowed.
                conn.session.fail(Failure::Other);
            } else if conn.wss.is_some()
                && conn.session.sent_close_notify()
                && conn.session.failure().is_none()
            {
                // wss, as ws: the FIN behind close_notify, then the peer's bytes are dropped
                // until its end, so that the close does not reset the connection under the
                // close frame.
                let _ = fd
                    .real()
                    .map(|f| socket2::SockRef::from(f).shutdown(std::net::Shutdown::Write));
                conn.lingering = Some(self.now_ms);
                self.tls_advance(key);
                return;
            }
            self.tls_close(key);
            return;
        }
        if let Some((buf, at)) = send {
            let op = Op::Send {
                fd: Rc::clone(&fd),
                buf,
                at,
            };
            if !self.tls_submit(key, op, true) {
                return;
            }
        }
        if let Some(buf) = recv {
            let op = Op::Recv {
                fd,
                buf,
                nowait: draining,
            };
            self.tls_submit(key, op, false);
        }
    }

    /// Submits `op` of the connection `key`, a send or a receive; when the port refuses it,
    /// the connection is dropped. Returns whether it was submitted.
    fn tls_submit(&mut self, key: u64, op: Op, is_send: bool) -> bool {
        match self.port.submit(key, op) {
            Ok(token) => {
                if let Some(conn) = self.tls_conn(key) {
                    if is_send {
                        conn.send_op = Some(token);
                    } else {
                        conn.recv_op = Some(token);
                    }
                }
                true
            }
            Err(e) => {
                error!(
                    worker = self.id,
                    key, "cannot submit an operation: {e}; dropping the connection"
                );
                self.stats.conn_errors += 1;
                self.stats.conn_error_kinds.refused_op += 1;
                self.tls_force(key);
                false
            }
        }
    }

    /// A receive of the connection `key` ended.
    pub(super) fn on_tls_recv(&mut self, key: u64, buf: Vec<u8>, result: io::Result<usize>) {
        let (now, id) = (self.now_ms, self.id);
        let Some(conn) = self.tls_conn(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.recv_op = None;
        if let (Some(_), Some(wss)) = (conn.lingering, conn.wss.as_mut()) {
            wss.give_back(buf);
            // Dropped; the end, a failure or the drain's "nothing more" ends the linger.
            if !matches!(result, Ok(n) if n > 0) {
                conn.forced = true;
            }
            self.tls_advance(key);
            return;
        }
        let mut failed = None;
        match result {
            Ok(0) => {
                conn.session.give_back(buf, true);
                conn.session.end_of_input(true);
            }
            Ok(n) => {
                conn.session.received(buf, n);
                conn.last_ms = now;
            }
            Err(e) => {
                conn.session.give_back(buf, true);
                if e.kind() == io::ErrorKind::WouldBlock {
                    // A draining receive found nothing: the input is over.
                    conn.session.end_of_input(false);
                } else if !(is_cancelled(&e) || e.kind() == io::ErrorKind::Interrupted) {
                    debug!(worker = id, key, "receive failed: {e}");
                    conn.forced = true;
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            self.stats.conn_errors += 1;
            self.stats.conn_error_kinds.count(&e);
            // The send in flight, if any, is cancelled: the connection closes.
            self.tls_force(key);
            return;
        }
        self.tls_advance(key);
    }

    /// A send of the connection `key` ended.
    pub(super) fn on_tls_send(
        &mut self,
        key: u64,
        buf: Vec<u8>,
        at: usize,
        result: io::Result<usize>,
    ) {
        let now = self.now_ms;
        let Some(conn) = self.tls_conn(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.send_op = None;
        let mut failed = None;
        let mut forced = false;
        match result {
            Ok(n) if n > 0 => {
                let echoed = conn.session.sent(buf, at, n);
                conn.last_ms = now;
                self.stats.bytes_out += echoed as u64;
            }
            other => {
                conn.session.give_back(buf, false);
                conn.forced = true;
                forced = true;
                match other {
                    Err(e) if is_cancelled(&e) => {}
                    Err(e) => failed = Some(e),
                    Ok(_) => failed = Some(io::ErrorKind::WriteZero.into()),
                }
            }
        }
        if let Some(e) = failed {
            debug!(worker = self.id, key, "send failed: {e}");
            self.stats.conn_errors += 1;
            self.stats.conn_error_kinds.count(&e);
        }
        if forced {
            // The receive in flight, if any, is cancelled: the connection closes.
            self.tls_force(key);
            return;
        }
        self.tls_advance(key);
    }

    /// Submits the close of the connection `key`; its slot is freed when the close completes.
    fn tls_close(&mut self, key: u64) {
        let id = self.id;
        let Some(conn) = self.tls_conn(key) else {
            return;
        };
        let Some(fd) = conn.fd.take() else {
            return;
        };
        if let Err(e) = self.port.submit(key, Op::Close { fd }) {
            error!(worker = id, key, "cannot submit a close: {e}");
            self.tls_forget(key);
        }
    }

    /// Forgets the TLS connection `key` once its close completed, counting how it ended.
    pub(super) fn tls_forget(&mut self, key: u64) -> bool {
        if key & TLS_TAG == 0 {
            return false;
        }
        let Some(conn) = self
            .tls
            .as_mut()
            .and_then(|tls| tls.conns.remove(key & !TLS_TAG))
        else {
            return false;
        };
        self.stats.closed += 1;
        if let Some(wss) = &conn.wss {
            self.stats.ws.add(&wss.ws.stats);
        }
        if let Some(failure) = conn.session.failure() {
            self.stats.tls.failed(failure);
        } else if conn.session.sent_close_notify() {
            self.stats.tls.close_notify += 1;
        }
        self.gate.release();
        self.per_ip.leave(conn.peer.map(|p| p.ip()));
        true
    }

    /// Cancels what the connection `key` has in flight; it closes once that is back.
    fn tls_force(&mut self, key: u64) {
        let Some(conn) = self.tls_conn(key) else {
            return;
        };
        conn.forced = true;
        let ops = [conn.recv_op, conn.send_op];
        for token in ops.into_iter().flatten() {
            let _ = self.port.cancel(token);
        }
        self.tls_advance(key);
    }

    fn tls_keys(&mut self) -> Vec<u64> {
        match self.tls.as_mut() {
            Some(tls) => tls.conns.iter_mut().map(|(k, _)| k | TLS_TAG).collect(),
            None => Vec::new(),
        }
    }

    /// The graceful shutdown: a receive waiting for data is cancelled, then receives do not
    /// wait, so what was received is echoed, then close_notify is sent; a handshake in
    /// progress is closed.
    pub(super) fn tls_drain(&mut self) {
        for key in self.tls_keys() {
            let Some(conn) = self.tls_conn(key) else {
                continue;
            };
            let upgrading = conn.wss.as_ref().is_some_and(WssLayer::in_handshake);
            if !conn.session.is_established() || upgrading {
                self.tls_force(key);
            } else if let Some(token) = conn.recv_op {
                let _ = self.port.cancel(token);
            }
        }
    }

    /// The drain deadline: every TLS connection still open is closed.
    pub(super) fn tls_force_all(&mut self) {
        for key in self.tls_keys() {
            if let Some(conn) = self.tls_conn(key) {
                if conn.fd.is_some() && !conn.forced {
                    self.stats.forced_closes += 1;
                    self.tls_force(key);
                }
            }
        }
    }

    /// Once per tick: handshakes past their timeout, and the idle and write timeouts.
    pub(super) fn tls_tick(&mut self) {
        if self.draining {
            return;
        }
        let now = self.now_ms;
        let timeouts = self.timeouts;
        let linger_ms = LINGER.as_millis() as u64;
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        let mut expired = Vec::new();
        let mut upgrades = Vec::new();
        for (key, conn) in tls.conns.iter_mut() {
            if conn.fd.is_none() || conn.forced {
                continue;
            }
            if let Some(since) = conn.lingering {
                if now.saturating_sub(since) >= linger_ms {
                    expired.push(key | TLS_TAG);
                }
                continue;
            }
            if !conn.session.is_established() {
                if now.saturating_sub(conn.started_ms) >= tls.handshake_ms {
                    conn.session.fail(Failure::Timeout);
                    expired.push(key | TLS_TAG);
                }
                continue;
            }
            if let Some(wss) = conn.wss.as_mut().filter(|wss| wss.in_handshake()) {
                // wss: the upgrade too, from the accept; TLS itself ends cleanly.
                if now.saturating_sub(conn.started_ms) >= wss.handshake_ms {
                    wss.ws.handshake_timed_out();
                    upgrades.push(key | TLS_TAG);
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
            expired.push(key | TLS_TAG);
        }
        for key in expired {
            debug!(worker = self.id, key, "timeout: closing the TLS connection");
            self.tls_force(key);
        }
        for key in upgrades {
            debug!(
                worker = self.id,
                key, "upgrade timeout: closing the wss connection"
            );
            // close_notify is queued and sent; the receive waiting for the upgrade ends.
            self.tls_advance(key);
            if let Some(token) = self.tls_conn(key).and_then(|conn| conn.recv_op) {
                let _ = self.port.cancel(token);
            }
        }
    }
}
