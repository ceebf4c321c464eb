//! TLS connections of the completion model: the worker carries out what each connection's
//! [`Session`] asks (receive into its own buffer, send from its own buffers, close), a receive
//! and a send in flight at once (the next records arrive while the last echo is sent), with
//! the port's owned-buffer receives and sends; the handshake, idle and write timeouts by the
//! worker's per-tick scan; the drain (the echo of what was received, then close_notify) and
//! the forced close. With `--websocket` too (wss) each connection has a WebSocket side
//! ([`WssLayer`]) that its plaintext is carried to and its output comes from.
//!
//! The plumbing (table, tagged keys, submit, force, close, timeouts) is `owned`'s. TLS
//! connections live in their own table, their keys tagged with [`TLS_TAG`]. Plaintext
//! connections never reach this module: the worker dispatches completions by their outcome
//! (pooled receives and gathered sends are plaintext's; owned-buffer receives and sends are
//! TLS'), and a close's completion is looked up here only when the plaintext table does not
//! know its key. With TLS off, the plaintext path pays one predictable test per accepted
//! connection, none per message.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use ringport_port::{is_cancelled, Op, SharedFd};
use rustls::ServerConfig;
use tracing::{debug, error};

use super::owned::{Handshake, Link, Owned, Table};
use super::worker::Worker;
use super::wss::WssLayer;
use crate::messages::log_message;
use crate::tls::{Failure, Log, Session, Tls, PLAIN_MAX};

/// The bit that marks a TLS connection's key (in the slot half: no table has 2^31 slots).
pub(super) const TLS_TAG: u64 = 1 << 31;

/// A worker's TLS: the configuration its connections share, their table (with the handshake
/// timeout), the plaintext scratch buffer.
pub(super) struct TlsWorker {
    config: Arc<ServerConfig>,
    table: Table<TlsConn>,
    /// Decrypted bytes between rustls' decryption and encryption, empty between calls.
    plain: Vec<u8>,
}

impl TlsWorker {
    pub(super) fn new(tls: &Tls) -> TlsWorker {
        TlsWorker {
            config: Arc::clone(&tls.config),
            table: Table::new(tls.handshake_timeout),
            plain: Vec::with_capacity(2 * PLAIN_MAX),
        }
    }

    /// TLS connections open.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}

/// One TLS connection: its socket and operations in flight, its session. A wss connection
/// lingers after its close_notify, and so does every connection the drain ends.
pub(super) struct TlsConn {
    link: Link,
    session: Session,
    /// wss: the WebSocket echo the plaintext is carried to.
    wss: Option<WssLayer>,
}

impl Owned for TlsConn {
    const TAG: u64 = TLS_TAG;
    const NAME: &'static str = "TLS";

    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn table<'t>(worker: &'t mut Worker<'_>) -> Option<&'t mut Table<TlsConn>> {
        worker.tls.as_mut().map(|tls| &mut tls.table)
    }

    fn advance(worker: &mut Worker<'_>, key: u64) {
        worker.tls_advance(key);
    }

    fn handshake(&mut self, now_ms: u64, handshake_ms: u64) -> Handshake {
        let age = now_ms.saturating_sub(self.link.started_ms);
        if !self.session.is_established() {
            if age >= handshake_ms {
                self.session.fail(Failure::Timeout);
                return Handshake::Expired;
            }
            return Handshake::Pending;
        }
        match self.wss.as_mut().filter(|wss| wss.in_handshake()) {
            // wss: the upgrade too, from the accept; TLS itself ends cleanly.
            Some(wss) if age >= wss.handshake_ms => {
                wss.ws.handshake_timed_out();
                Handshake::ExpiredGently
            }
            Some(_) => Handshake::Pending,
            None => Handshake::Done,
        }
    }

    /// close_notify is queued and sent; the receive waiting for the upgrade ends.
    fn expire_gently(worker: &mut Worker<'_>, key: u64) {
        worker.tls_advance(key);
        if let Some(token) = worker.owned::<TlsConn>(key).and_then(|c| c.link.recv_op) {
            let _ = worker.port.cancel(token);
        }
    }

    fn drain_closes(&self) -> bool {
        let upgrading = self.wss.as_ref().is_some_and(WssLayer::in_handshake);
        !self.session.is_established() || upgrading
    }

    fn count(self, worker: &mut Worker<'_>) {
        if let Some(wss) = &self.wss {
            worker.stats.ws.add(&wss.ws.stats);
        }
        if let Some(failure) = self.session.failure() {
            worker.stats.tls.failed(failure);
        } else if self.session.sent_close_notify() {
            worker.stats.tls.close_notify += 1;
        }
    }
}

impl Worker<'_> {
    /// Serves a new connection over TLS.
    pub(super) fn new_tls_conn(&mut self, fd: SharedFd, peer: Option<SocketAddr>) {
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
        let conn = TlsConn {
            link: Link::new(fd, peer, self.now_ms, self.serial),
            session,
            wss,
        };
        let Some(key) = self.owned_insert(conn) else {
            return;
        };
        debug!(worker = self.id, key, ?peer, "TLS connection accepted");
        self.tls_advance(key);
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
        let Some(conn) = tls.table.get_mut(key & !TLS_TAG) else {
            return;
        };
        let Some(fd) = conn.link.fd.clone() else {
            return;
        };
        if conn.link.forced {
            if conn.link.idle() {
                self.owned_close::<TlsConn>(key);
            }
            return;
        }
        if conn.link.lingering.is_some() {
            // The peer's bytes are read and dropped until its end (or the linger's end).
            if conn.link.recv_op.is_none() {
                let buf = match conn.wss.as_mut() {
                    Some(wss) => wss.sink(),
                    None => conn.session.sink(),
                };
                let op = Op::Recv {
                    fd,
                    buf,
                    nowait: false,
                };
                self.owned_submit::<TlsConn>(key, op, false);
            }
            return;
        }
        // wss: the WebSocket side may move on while a receive is in flight (a send ended).
        if conn.link.recv_op.is_none() || conn.wss.is_some() {
            let was = conn.session.is_established();
            let (id, serial, peer) = (self.id, conn.link.serial, conn.link.peer);
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
        let send = match conn.link.send_op {
            None => conn.session.take_send(),
            Some(_) => None,
        };
        let recv = match conn.link.recv_op {
            None => conn.session.take_recv(),
            Some(_) => None,
        };
        if send.is_none() && recv.is_none() && conn.link.idle() {
            if !conn.session.is_finished() {
                // Nothing to send and no room to receive: a record larger than any allowed.
                conn.session.fail(Failure::Other);
            } else if (conn.wss.is_some() || draining)
                && conn.session.sent_close_notify()
                && conn.session.failure().is_none()
            {
                // wss, as ws, and any connection the drain ends: the FIN behind close_notify,
                // then the peer's bytes are dropped until its end, so that the close does not
                // reset the connection under the last records (the close frame; the echo of
                // what a client still sending at the drain sent before it).
                conn.link.start_linger(self.now_ms);
                self.tls_advance(key);
                return;
            }
            self.owned_close::<TlsConn>(key);
            return;
        }
        self.owned_submit_both::<TlsConn>(key, fd, send, recv, draining);
    }

    /// A receive of the connection `key` ended.
    pub(super) fn on_tls_recv(&mut self, key: u64, buf: Vec<u8>, result: io::Result<usize>) {
        let (now, id) = (self.now_ms, self.id);
        let Some(conn) = self.owned::<TlsConn>(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.link.recv_op = None;
        if conn.link.lingering.is_some() {
            match conn.wss.as_mut() {
                Some(wss) => wss.give_back(buf),
                None => conn.session.give_back(buf, true),
            }
            // Dropped; the end or a failure ends the linger.
            if matches!(result, Ok(n) if n > 0) {
                conn.link.last_ms = now;
            } else {
                conn.link.forced = true;
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
                conn.link.last_ms = now;
            }
            Err(e) => {
                conn.session.give_back(buf, true);
                if e.kind() == io::ErrorKind::WouldBlock {
                    // A draining receive found nothing: the input is over.
                    conn.session.end_of_input(false);
                } else if !(is_cancelled(&e) || e.kind() == io::ErrorKind::Interrupted) {
                    debug!(worker = id, key, "receive failed: {e}");
                    conn.link.forced = true;
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            self.stats.conn_errors += 1;
            self.stats.conn_error_kinds.count(&e);
            // The send in flight, if any, is cancelled: the connection closes.
            self.owned_force::<TlsConn>(key);
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
        let Some(conn) = self.owned::<TlsConn>(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.link.send_op = None;
        let mut failed = None;
        let mut forced = false;
        match result {
            Ok(n) if n > 0 => {
                let echoed = conn.session.sent(buf, at, n);
                conn.link.last_ms = now;
                self.stats.bytes_out += echoed as u64;
            }
            other => {
                conn.session.give_back(buf, false);
                conn.link.forced = true;
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
            self.owned_force::<TlsConn>(key);
            return;
        }
        self.tls_advance(key);
    }
}
