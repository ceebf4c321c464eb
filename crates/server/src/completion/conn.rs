//! A connection of the completion model and its I/O: the worker carries out what the
//! connection's [`MultiEcho`] asks (cancel, send the received buffers themselves, arm a multishot
//! or single receive, close), feeds it the receive and send completions, resumes connections
//! starved by an empty pool, and frees the slot once the close has completed.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use ringport_port::{is_cancelled, is_pool_empty, Accepted, Op, PoolBuf, SharedFd, Token};
use tracing::{debug, error};

use super::peer::Peer;
use super::worker::Worker;
use crate::echo::{Arrived, MultiEcho, RecvMode, SendResult, Todo};
use crate::messages::log_message;
#[cfg(windows)]
use crate::shutdown::LINGER_QUIET;
use crate::slots::{slot_of, Keyed};

/// One connection: its socket, its echo state, its operations in flight.
///
/// The worker's table holds one per connection, busy or idle: keep it small
/// (`tests::a_connection_is_small` pins its size: 64 bytes, its table slot's generation and the
/// time of its last progress included, aligned to a cache line, so that a completion touches
/// one line of its connection). While chunks that arrived in the current batch of completions
/// wait for their echo ([`MultiEcho::is_unflushed`]), the connection is in the worker's
/// `unflushed` list, to send them once the batch is in.
#[repr(align(64))]
pub(super) struct Conn {
    /// The socket; taken when the close is submitted.
    pub(super) fd: Option<SharedFd>,
    /// The echo state, with the received chunks waiting for their echo. Its
    /// [`mark`](MultiEcho::mark) is when the connection last made progress (accepted, bytes in
    /// or out): the low 32 bits of the worker's clock in milliseconds (see [`Conn::quiet_ms`]).
    pub(super) echo: MultiEcho<PoolBuf>,
    /// The receive in flight (multishot, or single while draining).
    pub(super) recv_op: Option<Token>,
    /// The send in flight.
    pub(super) send_op: Option<Token>,
    /// The peer's address, when the kernel reported one.
    pub(super) peer: Peer,
    /// Its table slot's generation (see [`Keyed`]).
    generation: u32,
}

impl Keyed for Conn {
    fn generation(&self) -> u32 {
        self.generation
    }
    fn set_generation(&mut self, generation: u32) {
        self.generation = generation;
    }
}

impl Conn {
    /// Milliseconds since the connection last made progress, at `now_ms` of the worker's clock.
    ///
    /// The connection keeps the low 32 bits of the clock only (4 bytes less per connection):
    /// the reading wraps every 49 days of quiet. A timeout is at most half of that
    /// ([`MAX_TIMEOUT_MS`](super::timeouts::MAX_TIMEOUT_MS)) and the table is scanned every
    /// second at most, so a connection is expired long before its reading could wrap.
    pub(super) fn quiet_ms(&self, now_ms: u64) -> u64 {
        u64::from(low_ms(now_ms).wrapping_sub(self.echo.mark()))
    }
}

/// The low 32 bits of a time of the worker's clock, as a connection keeps it.
fn low_ms(now_ms: u64) -> u32 {
    now_ms as u32
}

impl Worker<'_> {
    /// Sends what arrived in the batch of completions just taken in, one send per connection
    /// (see [`MultiEcho::flush`]).
    pub(super) fn flush(&mut self) {
        let mut keys = std::mem::take(&mut self.unflushed);
        for key in keys.drain(..) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let todo = conn.echo.flush(self.bounds);
            self.apply(key, todo);
        }
        self.unflushed = keys;
    }

    /// Resumes starved connections while the pool has buffers to spare.
    pub(super) fn resume_starved(&mut self) {
        while !self.starved.is_empty() && self.port.buffers_available() > self.max_chunks {
            let Some(key) = self.starved.pop_front() else {
                break;
            };
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.echo.is_starved() {
                    let todo = conn.echo.resume(self.bounds);
                    self.apply(key, todo);
                }
            }
        }
    }

    /// Forgets the connection `key` once its last completion is reaped: frees its slot, its
    /// place at the gate and its count for its address.
    pub(super) fn forget(&mut self, key: u64) -> bool {
        match self.conns.remove(key) {
            Some(conn) => {
                self.gate.release();
                self.per_ip.leave(conn.peer.ip());
                true
            }
            None => false,
        }
    }

    /// Serves a connection just accepted: its PROXY header first, with `--proxy-protocol`.
    pub(super) fn new_conn(&mut self, accepted: Accepted) {
        if self.proxy.is_some() {
            return self.new_proxy_conn(accepted);
        }
        self.serve_new(Rc::new(accepted.fd), accepted.peer);
    }

    /// Serves a connection from `peer` as plaintext, TLS or WebSocket, as the server speaks.
    pub(super) fn serve_new(&mut self, fd: SharedFd, peer: Option<SocketAddr>) {
        if self.tls.is_some() {
            // With --websocket too, wss (see `wss`).
            return self.new_tls_conn(fd, peer);
        }
        if self.ws.is_some() {
            return self.new_ws_conn(fd, peer);
        }
        // Echo replies are small and immediate: do not let Nagle hold them back (a direct
        // socket has no descriptor: it inherited the option from the listener).
        let _ = fd
            .real()
            .map(|f| socket2::SockRef::from(f).set_tcp_nodelay(true));
        let (mut echo, todo) = MultiEcho::start(self.draining, self.bounds);
        echo.set_mark(low_ms(self.now_ms));
        self.serial += 1;
        let key = self.conns.insert(Conn {
            fd: Some(fd),
            echo,
            recv_op: None,
            send_op: None,
            peer: Peer::new(peer),
            generation: 0,
        });
        if self.cfg.log_messages {
            // Kept beside the table, not in it: only `--log-messages` names connections.
            let slot = slot_of(key);
            if self.serials.len() <= slot {
                self.serials.resize(slot + 1, 0);
            }
            self.serials[slot] = self.serial;
        }
        debug!(worker = self.id, key, ?peer, "connection accepted");
        self.apply(key, todo);
    }

    /// Carries out what the echo state machine asked for the connection `key`: cancel, send,
    /// receive, close, in that order.
    pub(super) fn apply(&mut self, key: u64, todo: Todo<PoolBuf>) {
        let Some(conn) = self.conns.get_mut(key) else {
            if let Some((bufs, _)) = todo.send {
                for buf in bufs {
                    self.port.give_back(buf);
                }
            }
            return;
        };
        if todo.cancel_recv {
            if let Some(token) = conn.recv_op {
                let _ = self.port.cancel(token);
            }
        }
        if todo.cancel_send {
            if let Some(token) = conn.send_op {
                let _ = self.port.cancel(token);
            }
        }
        // A handle on the socket for each operation, and none otherwise: most completions
        // (a chunk in, behind a multishot receive still armed) submit nothing, and then leave
        // the handle's count (another cache line) alone. Each operation is built where it is
        // submitted: no `Op` is moved through a list on the way.
        if let Some((bufs, at)) = todo.send {
            let fd = conn
                .fd
                .clone()
                .expect("a connection that is not closing has its fd");
            match self.port.submit(key, Op::SendBufs { fd, bufs, at }) {
                Ok(token) => conn.send_op = Some(token),
                Err(e) => return self.refused(key, &e),
            }
        }
        if let Some(mode) = todo.recv {
            let fd = conn
                .fd
                .clone()
                .expect("a connection that is not closing has its fd");
            let op = match mode {
                RecvMode::Multi => Op::RecvMulti {
                    fd,
                    limit: conn.echo.room(self.bounds),
                },
                RecvMode::Once { nowait } => Op::RecvBuf { fd, nowait },
            };
            match self.port.submit(key, op) {
                Ok(token) => conn.recv_op = Some(token),
                Err(e) => return self.refused(key, &e),
            }
            if mode == (RecvMode::Once { nowait: false }) {
                self.stats.single_receives += 1;
            }
        }
        if todo.close {
            self.close(key);
        }
    }

    /// The port refused an operation of the connection `key`: it is dropped.
    #[cold]
    fn refused(&mut self, key: u64, e: &io::Error) {
        error!(
            worker = self.id,
            key, "cannot submit an operation: {e}; dropping the connection"
        );
        self.drop_conn(key);
    }

    /// Gives the queued buffers back and submits the close; the slot is freed when the close
    /// completes. During the drain (before its deadline), a connection [`linger`s](Self::linger)
    /// first.
    fn close(&mut self, key: u64) {
        if self.draining && !self.forced && self.linger(key) {
            return;
        }
        self.submit_close(key);
    }

    /// Whether the connection `key`, which the drain ends, waits before its close: closing with
    /// input unread (a peer still sending when the drain began) makes the kernel reset the
    /// connection, which drops the output still queued, the echo of what was received.
    ///
    /// Unix: until the peer has acknowledged everything it was sent (the worker looks again at
    /// each turn, [`close_lingering`](Self::close_lingering)).
    #[cfg(unix)]
    fn linger(&mut self, key: u64) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let unacked = conn
            .fd
            .as_ref()
            .and_then(|fd| fd.real())
            .map(|fd| ringport_port::os::unacked_bytes(fd).unwrap_or(0));
        if unacked.is_some_and(|n| n > 0) {
            if !self.lingering.contains(&key) {
                self.lingering.push(key);
            }
            return true;
        }
        false
    }

    /// Windows, which cannot tell what the peer acknowledged: the FIN, behind the echo, then
    /// the peer's bytes received and dropped until its end ([`on_discard`](Self::on_discard)),
    /// the graceful close the Winsock documentation describes. A peer quiet for
    /// [`LINGER_QUIET`] ([`close_lingering`](Self::close_lingering)), or the drain deadline
    /// ([`force_lingering`](Self::force_lingering)), cancels the receive.
    #[cfg(windows)]
    fn linger(&mut self, key: u64) -> bool {
        if self.lingering.contains(&key) {
            return true;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let Some(fd) = conn.fd.clone() else {
            return false;
        };
        let shut = fd.real().is_some_and(|f| {
            socket2::SockRef::from(f)
                .shutdown(std::net::Shutdown::Write)
                .is_ok()
        });
        if !shut {
            return false;
        }
        match self.port.submit(key, Op::RecvBuf { fd, nowait: false }) {
            Ok(token) => {
                conn.recv_op = Some(token);
                self.lingering.push(key);
                true
            }
            Err(_) => false,
        }
    }

    /// A receive of a lingering connection (Windows): the bytes are dropped; the peer's end, a
    /// failure or the cancellation at the drain deadline closes it.
    #[cfg(windows)]
    fn on_discard(&mut self, key: u64, buf: Option<PoolBuf>, result: io::Result<usize>) {
        if let Some(buf) = buf {
            self.port.give_back(buf);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.recv_op = None;
        if matches!(result, Ok(1..)) {
            conn.echo.set_mark(low_ms(self.now_ms));
        }
        if matches!(result, Ok(1..)) && !self.forced {
            if let Some(fd) = conn.fd.clone() {
                if let Ok(token) = self.port.submit(key, Op::RecvBuf { fd, nowait: false }) {
                    conn.recv_op = Some(token);
                    return;
                }
            }
        }
        self.lingering.retain(|&k| k != key);
        self.submit_close(key);
    }

    /// Closes the lingering connections whose peer has acknowledged all they sent, and all of
    /// them at the drain deadline (Unix).
    #[cfg(unix)]
    pub(super) fn close_lingering(&mut self) {
        let keys = std::mem::take(&mut self.lingering);
        for key in keys {
            self.close(key);
        }
    }

    /// The lingering connections whose peer has been quiet for [`LINGER_QUIET`] have their
    /// receive cancelled (Windows; its completion closes them).
    #[cfg(windows)]
    pub(super) fn close_lingering(&mut self) {
        let quiet = LINGER_QUIET.as_millis() as u64;
        for &key in &self.lingering {
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.quiet_ms(self.now_ms) >= quiet {
                    if let Some(token) = conn.recv_op.take() {
                        let _ = self.port.cancel(token);
                    }
                }
            }
        }
    }

    /// At the drain deadline: the lingering connections' receives are cancelled (Windows; their
    /// completions close them).
    #[cfg(windows)]
    pub(super) fn force_lingering(&mut self) {
        for &key in &self.lingering {
            if let Some(token) = self.conns.get_mut(key).and_then(|c| c.recv_op) {
                let _ = self.port.cancel(token);
            }
        }
    }

    fn submit_close(&mut self, key: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(fd) = conn.fd.take() else {
            return;
        };
        for buf in conn.echo.take_queued() {
            self.port.give_back(buf);
        }
        if let Err(e) = self.port.submit(key, Op::Close { fd }) {
            error!(
                worker = self.id,
                key, "cannot submit a close: {e}; dropping the connection"
            );
            self.drop_conn(key);
        }
    }

    /// The port refused an operation: forget the connection at once (its descriptor closes
    /// when the operations still in flight on it complete).
    fn drop_conn(&mut self, key: u64) {
        if let Some(conn) = self.conns.get_mut(key) {
            for buf in conn.echo.take_queued() {
                self.port.give_back(buf);
            }
            for token in [conn.recv_op, conn.send_op].into_iter().flatten() {
                let _ = self.port.cancel(token);
            }
        }
        self.stats.conn_errors += 1;
        self.stats.conn_error_kinds.refused_op += 1;
        self.stats.closed += 1;
        self.forget(key);
    }

    pub(super) fn on_recv(
        &mut self,
        key: u64,
        buf: Option<PoolBuf>,
        result: io::Result<usize>,
        more: bool,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            self.stats.stale_completions += 1;
            if let Some(buf) = buf {
                self.port.give_back(buf);
            }
            return;
        };
        #[cfg(windows)]
        if self.draining && self.lingering.contains(&key) {
            return self.on_discard(key, buf, result);
        }
        if !more {
            conn.recv_op = None;
        }
        let arrived = match (&result, &buf) {
            (Ok(0), _) => Arrived::Eof,
            (Ok(n), Some(buf)) => {
                let n = *n;
                self.stats.bytes_in += n as u64;
                conn.echo.set_mark(low_ms(self.now_ms));
                if self.cfg.log_messages {
                    let serial = self.serials[slot_of(key)];
                    log_message(self.id, serial, conn.peer.addr(), self.port.buf(buf));
                }
                Arrived::Data(n)
            }
            (Ok(_), None) => Arrived::Failed,
            (Err(e), _) if e.kind() == io::ErrorKind::WouldBlock => Arrived::WouldBlock,
            (Err(e), _) if is_pool_empty(e) => Arrived::NoBuffers,
            (Err(e), _) if is_cancelled(e) || e.kind() == io::ErrorKind::Interrupted => {
                Arrived::Cancelled
            }
            (Err(e), _) => {
                debug!(worker = self.id, key, "receive failed: {e}");
                self.stats.conn_errors += 1;
                self.stats.conn_error_kinds.count(e);
                Arrived::Failed
            }
        };
        // Behind a chunk still waiting for its echo (a slow reader, or a pipelining client),
        // append to it when it has room: many small chunks then hold few pool buffers. The
        // ping-pong path never copies: its queue is empty when a chunk arrives.
        let mut buf = buf;
        if let (Arrived::Data(_), Some(chunk), Some(last)) =
            (arrived, buf.as_ref(), conn.echo.last_queued())
        {
            if self.port.append(last, chunk) {
                if let Some(chunk) = buf.take() {
                    self.port.give_back(chunk);
                }
            }
        }
        let listed = conn.echo.is_unflushed();
        let todo = conn.echo.on_recv(arrived, buf, more, self.bounds);
        if matches!(arrived, Arrived::Data(_)) && !listed {
            self.unflushed.push(key);
        }
        if arrived == Arrived::NoBuffers && conn.echo.is_starved() {
            self.starved.push_back(key);
        }
        self.apply(key, todo);
    }

    pub(super) fn on_send(&mut self, key: u64, bufs: Vec<PoolBuf>, result: io::Result<usize>) {
        let Some(conn) = self.conns.get_mut(key) else {
            self.stats.stale_completions += 1;
            for buf in bufs {
                self.port.give_back(buf);
            }
            return;
        };
        conn.send_op = None;
        let r = match result {
            Ok(n) => {
                self.stats.bytes_out += n as u64;
                if n > 0 {
                    conn.echo.set_mark(low_ms(self.now_ms));
                }
                SendResult::Sent(n)
            }
            Err(e) => {
                if !is_cancelled(&e) {
                    debug!(worker = self.id, key, "send failed: {e}");
                    self.stats.conn_errors += 1;
                    self.stats.conn_error_kinds.count(&e);
                }
                SendResult::Failed
            }
        };
        let port = &mut self.port;
        let todo = conn
            .echo
            .on_send(r, bufs, |buf| port.give_back(buf), self.bounds);
        self.apply(key, todo);
    }
}

#[cfg(test)]
mod tests {
    use super::{low_ms, Conn};
    use crate::slots::KeyedSlots;

    /// What an idle connection costs the worker's table: a regression here is a regression of
    /// `benches/idle-rss.sh` (with the port's operation entry, `ringport-port`'s
    /// `an_idle_receive_is_small`, and the descriptor's shared handle).
    #[test]
    fn a_connection_is_small() {
        assert!(
            std::mem::size_of::<Conn>() <= 64,
            "Conn is {} bytes",
            std::mem::size_of::<Conn>()
        );
        assert_eq!(
            KeyedSlots::<Conn>::entry_size(),
            64,
            "a table slot is one cache line"
        );
        assert_eq!(std::mem::align_of::<Conn>(), 64);
    }

    /// The time since the last progress reads right across the wrap of the 32 bits kept.
    #[test]
    fn quiet_time_reads_across_the_wrap_of_the_clock_kept() {
        let quiet = |last: u64, now: u64| u64::from(low_ms(now).wrapping_sub(low_ms(last)));
        assert_eq!(quiet(1_000, 1_500), 500);
        let wrap = 1u64 << 32;
        assert_eq!(quiet(wrap - 100, wrap + 400), 500);
        assert_eq!(quiet(3 * wrap + 7, 3 * wrap + 7), 0);
        let max = super::super::timeouts::MAX_TIMEOUT_MS;
        assert_eq!(quiet(5 * wrap - 1, 5 * wrap - 1 + max + 1_000), max + 1_000);
    }
}
