//! The plumbing of the completion model's connections that own their buffers (TLS in
//! `tls_conn`, WebSocket in `ws_conn`), written once: each kind lives in a table of its own
//! ([`Table`]), its keys tagged with its bit ([`Owned::TAG`]) so that owned-buffer completions
//! find it; every connection carries a [`Link`] (its socket, its receive and send in flight,
//! its clocks, its linger); and the worker does the same for every kind: submit an operation
//! (a refused one drops the connection), force (cancel what is in flight, then close), close,
//! forget once the close completed, the drain, the drain deadline, and the per-tick scan of
//! handshake, linger, idle and write timeouts. What a kind does next (`advance`), its
//! handshake and what it counts when it is gone are its own ([`Owned`]).

use std::net::SocketAddr;

use ringport_port::{Op, SharedFd, Token};
use tracing::{debug, error};

use super::timeouts::Expiry;
use super::worker::Worker;
use crate::echo::websocket::LINGER;
use crate::echo::Waiting;
use crate::shutdown::LINGER_QUIET;
use crate::slots::Slots;

/// What every connection with buffers of its own has, whatever it speaks.
pub(super) struct Link {
    /// Its socket (`None` once its close is submitted).
    pub(super) fd: Option<SharedFd>,
    pub(super) recv_op: Option<Token>,
    pub(super) send_op: Option<Token>,
    pub(super) peer: Option<SocketAddr>,
    /// When it was accepted and when it last made progress, in the worker's clock.
    pub(super) started_ms: u64,
    pub(super) last_ms: u64,
    /// Closing without finishing: its operations are cancelled, then it closes.
    pub(super) forced: bool,
    /// Closing: since when its FIN is sent and the peer's bytes are discarded (see
    /// [`LINGER`], and [`LINGER_QUIET`] while draining), in the worker's clock; `last_ms`
    /// is when the peer last sent.
    pub(super) lingering: Option<u64>,
    /// Its number among the worker's accepts, as `--log-messages` names it.
    pub(super) serial: u64,
}

impl Link {
    /// A connection accepted at `now_ms`, the worker's `serial`th.
    pub(super) fn new(fd: SharedFd, peer: Option<SocketAddr>, now_ms: u64, serial: u64) -> Link {
        Link {
            fd: Some(fd),
            recv_op: None,
            send_op: None,
            peer,
            started_ms: now_ms,
            last_ms: now_ms,
            forced: false,
            lingering: None,
            serial,
        }
    }

    /// Whether nothing of it is in flight.
    pub(super) fn idle(&self) -> bool {
        self.recv_op.is_none() && self.send_op.is_none()
    }

    /// Sends its FIN (behind what was sent) and starts its linger at `now_ms`: the peer's bytes
    /// are then read and dropped until its end (or [`LINGER`], by the tick; while draining, a
    /// quiet [`LINGER_QUIET`] or the drain deadline), so that the close does not reset the
    /// connection under the last bytes.
    pub(super) fn start_linger(&mut self, now_ms: u64) {
        if self.lingering.is_none() {
            if let Some(f) = self.fd.as_ref().and_then(|fd| fd.real()) {
                let _ = socket2::SockRef::from(f).shutdown(std::net::Shutdown::Write);
            }
            self.lingering = Some(now_ms);
        }
    }
}

/// One kind's connections and the handshake timeout they share (milliseconds of the clock).
pub(super) struct Table<C> {
    conns: Slots<C>,
    handshake_ms: u64,
}

impl<C> Table<C> {
    pub(super) fn new(handshake: std::time::Duration) -> Table<C> {
        Table {
            conns: Slots::default(),
            handshake_ms: u64::try_from(handshake.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Connections open.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    /// The connection `key` (without its tag).
    pub(super) fn get_mut(&mut self, key: u64) -> Option<&mut C> {
        self.conns.get_mut(key)
    }

    /// Takes the connection `key` (without its tag) out of the table.
    pub(super) fn remove(&mut self, key: u64) -> Option<C> {
        self.conns.remove(key)
    }
}

/// Where a connection's handshake is, as the tick sees it.
pub(super) enum Handshake {
    /// Done: the idle and write timeouts apply.
    Done,
    /// Under way, within its time.
    Pending,
    /// Past its time (counted by the kind): the connection is forced closed.
    Expired,
    /// Past its time, ended by the kind's own rule ([`Owned::expire_gently`]).
    ExpiredGently,
}

/// A kind of connection with buffers of its own.
pub(super) trait Owned: Sized {
    /// The bit that marks its keys.
    const TAG: u64;
    /// How its log lines name it.
    const NAME: &'static str;

    fn link(&mut self) -> &mut Link;

    /// Its table in the worker (`None`: the server does not speak it).
    fn table<'t>(worker: &'t mut Worker<'_>) -> Option<&'t mut Table<Self>>;

    /// Starts what the connection `key` does next (the kind's state machine).
    fn advance(worker: &mut Worker<'_>, key: u64);

    /// Its handshake at `now_ms` (the tick), with `handshake_ms` the kind's timeout; an expired
    /// one is counted here.
    fn handshake(&mut self, now_ms: u64, handshake_ms: u64) -> Handshake;

    /// Ends a connection whose handshake expired gently.
    fn expire_gently(_worker: &mut Worker<'_>, _key: u64) {}

    /// Whether the drain closes it at once (a handshake under way) rather than letting it
    /// echo what it received.
    fn drain_closes(&self) -> bool;

    /// Counts what the connection did, once it is closed.
    fn count(self, worker: &mut Worker<'_>);
}

impl Worker<'_> {
    /// The connection `key` of kind `C`.
    pub(super) fn owned<C: Owned>(&mut self, key: u64) -> Option<&mut C> {
        C::table(self)?.get_mut(key & !C::TAG)
    }

    /// Adds a connection of kind `C`; returns its (tagged) key.
    pub(super) fn owned_insert<C: Owned>(&mut self, conn: C) -> Option<u64> {
        Some(C::TAG | C::table(self)?.conns.insert(conn))
    }

    /// Submits `op`, a send or a receive of the connection `key`; when the port refuses it, the
    /// connection is dropped. Returns whether it was submitted.
    pub(super) fn owned_submit<C: Owned>(&mut self, key: u64, op: Op, is_send: bool) -> bool {
        match self.port.submit(key, op) {
            Ok(token) => {
                if let Some(conn) = self.owned::<C>(key) {
                    let link = conn.link();
                    if is_send {
                        link.send_op = Some(token);
                    } else {
                        link.recv_op = Some(token);
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
                self.owned_force::<C>(key);
                false
            }
        }
    }

    /// Submits what the connection `key` does next on its socket `fd`: the send of `send`'s
    /// buffer from its offset, then a receive into `recv` (which waits for data unless
    /// `nowait`, the drain's "nothing more"), each when given; a refused send drops the
    /// connection before its receive is submitted.
    pub(super) fn owned_submit_both<C: Owned>(
        &mut self,
        key: u64,
        fd: SharedFd,
        send: Option<(Vec<u8>, usize)>,
        recv: Option<Vec<u8>>,
        nowait: bool,
    ) {
        if let Some((buf, at)) = send {
            let op = Op::Send {
                fd: SharedFd::clone(&fd),
                buf,
                at,
            };
            if !self.owned_submit::<C>(key, op, true) {
                return;
            }
        }
        if let Some(buf) = recv {
            let op = Op::Recv { fd, buf, nowait };
            self.owned_submit::<C>(key, op, false);
        }
    }

    /// Submits the close of the connection `key`; its slot is freed when the close completes.
    pub(super) fn owned_close<C: Owned>(&mut self, key: u64) {
        let id = self.id;
        let Some(conn) = self.owned::<C>(key) else {
            return;
        };
        let Some(fd) = conn.link().fd.take() else {
            return;
        };
        if let Err(e) = self.port.submit(key, Op::Close { fd }) {
            error!(worker = id, key, "cannot submit a close: {e}");
            self.owned_forget::<C>(key);
        }
    }

    /// Forgets the connection `key`, if it is of kind `C`, once its close completed, with its
    /// counters. Returns whether it was.
    pub(super) fn owned_forget<C: Owned>(&mut self, key: u64) -> bool {
        if key & C::TAG == 0 {
            return false;
        }
        let Some(mut conn) = C::table(self).and_then(|t| t.conns.remove(key & !C::TAG)) else {
            return false;
        };
        let peer = conn.link().peer;
        self.stats.closed += 1;
        self.gate.release();
        self.per_ip.leave(peer.map(|p| p.ip()));
        conn.count(self);
        true
    }

    /// Cancels what the connection `key` has in flight; it closes once that is back.
    pub(super) fn owned_force<C: Owned>(&mut self, key: u64) {
        let Some(conn) = self.owned::<C>(key) else {
            return;
        };
        let link = conn.link();
        link.forced = true;
        let ops = [link.recv_op, link.send_op];
        for token in ops.into_iter().flatten() {
            let _ = self.port.cancel(token);
        }
        C::advance(self, key);
    }

    /// While draining, once per tick: lingering connections whose peer has been quiet for
    /// [`LINGER_QUIET`] are closed.
    fn owned_quiet<C: Owned>(&mut self) {
        let now = self.now_ms;
        let quiet = LINGER_QUIET.as_millis() as u64;
        let Some(table) = C::table(self) else {
            return;
        };
        let mut done = Vec::new();
        for (key, conn) in table.conns.iter_mut() {
            let link = conn.link();
            if let (Some(since), false) = (link.lingering, link.forced) {
                if now.saturating_sub(since.max(link.last_ms)) >= quiet {
                    done.push(key | C::TAG);
                }
            }
        }
        for key in done {
            self.owned_force::<C>(key);
        }
    }

    /// The keys of every connection of kind `C`.
    fn owned_keys<C: Owned>(&mut self) -> Vec<u64> {
        match C::table(self) {
            Some(t) => t.conns.iter_mut().map(|(k, _)| k | C::TAG).collect(),
            None => Vec::new(),
        }
    }

    /// The graceful shutdown: a receive waiting for data is cancelled (receives do not wait
    /// from now on, so what was received is echoed, then the kind says goodbye); a connection
    /// still in its handshake is closed.
    pub(super) fn owned_drain<C: Owned>(&mut self) {
        for key in self.owned_keys::<C>() {
            let Some(conn) = self.owned::<C>(key) else {
                continue;
            };
            if conn.drain_closes() {
                self.owned_force::<C>(key);
            } else if let Some(token) = conn.link().recv_op {
                let _ = self.port.cancel(token);
            }
        }
    }

    /// The drain deadline: every connection of kind `C` still open is closed.
    pub(super) fn owned_force_all<C: Owned>(&mut self) {
        for key in self.owned_keys::<C>() {
            if let Some(conn) = self.owned::<C>(key) {
                let link = conn.link();
                if link.fd.is_some() && !link.forced {
                    // One waiting for its peer's end (see `Link::start_linger`) has finished.
                    if link.lingering.is_none() {
                        self.stats.forced_closes += 1;
                    }
                    self.owned_force::<C>(key);
                }
            }
        }
    }

    /// Once per tick: handshakes past their timeout, lingers past [`LINGER`], and the idle and
    /// write timeouts.
    pub(super) fn owned_tick<C: Owned>(&mut self) {
        if self.draining {
            return self.owned_quiet::<C>();
        }
        let now = self.now_ms;
        let timeouts = self.timeouts;
        let linger_ms = LINGER.as_millis() as u64;
        let Some(table) = C::table(self) else {
            return;
        };
        let handshake_ms = table.handshake_ms;
        let (mut expired, mut gently) = (Vec::new(), Vec::new());
        let (mut idle, mut write) = (0, 0);
        for (key, conn) in table.conns.iter_mut() {
            let key = key | C::TAG;
            {
                let link = conn.link();
                if link.fd.is_none() || link.forced {
                    continue;
                }
                if let Some(since) = link.lingering {
                    if now.saturating_sub(since) >= linger_ms {
                        expired.push(key);
                    }
                    continue;
                }
            }
            match conn.handshake(now, handshake_ms) {
                Handshake::Done => {}
                Handshake::Pending => continue,
                Handshake::Expired => {
                    expired.push(key);
                    continue;
                }
                Handshake::ExpiredGently => {
                    gently.push(key);
                    continue;
                }
            }
            let link = conn.link();
            let waiting = if link.send_op.is_some() {
                Waiting::PeerReading
            } else if link.recv_op.is_some() {
                Waiting::PeerData
            } else {
                Waiting::Nothing
            };
            match timeouts.expiry(waiting, now.saturating_sub(link.last_ms)) {
                Some(Expiry::Idle) => idle += 1,
                Some(Expiry::Write) => write += 1,
                None => continue,
            }
            expired.push(key);
        }
        self.stats.idle_closed += idle;
        self.stats.write_timeouts += write;
        for key in expired {
            debug!(
                worker = self.id,
                key,
                "timeout: closing the {} connection",
                C::NAME
            );
            self.owned_force::<C>(key);
        }
        for key in gently {
            debug!(
                worker = self.id,
                key,
                "handshake timeout: closing the {} connection",
                C::NAME
            );
            C::expire_gently(self, key);
        }
    }
}
