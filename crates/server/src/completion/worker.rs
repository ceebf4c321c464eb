//! A worker of the completion model: its state, and its loop. One turn of the loop is one
//! [`Port::wait`] (everything queued submitted, every ready completion reaped, in one system
//! call); each completion is dispatched by its outcome to the accept state machine
//! (`accept`), to its connection (`conn`) or to the shutdown (here: the drain, then the forced
//! close at the drain deadline).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringport_port::{Accepted, Completion, Outcome, Port, SharedFd, Token};
use tracing::{debug, error, info, warn};

use super::conn::Conn;
use super::handoff::{Handoff, Inbox, HANDOFF};
use super::proxy_conn::{ProxyConn, ProxyWorker, PROXY_TAG};
use super::timeouts::Timeouts;
use super::tls_conn::{TlsConn, TlsWorker};
use super::ws_conn::{WsConn, WsWorker, WS_TAG};
use super::{max_chunks, pool_buffer_size, recv_limit, Shared, SHUTDOWN};
use crate::accept_policy::AcceptPolicy;
use crate::echo::Bounds;
use crate::limits::{Gate, PerIp, SLOT_FREE};
use crate::shutdown::LINGER_QUIET;
use crate::slots::KeyedSlots;
use crate::summary::{Snapshot, WorkerStats};
use crate::ServeConfig;

/// A worker whose wait returned this many completions or more is busy: its connections with
/// small messages receive once per message (see [`Bounds::with_single`]) ...
const BUSY_FROM: usize = 6;
/// ... until a wait returns this many or fewer.
const IDLE_UNTIL: usize = 2;

/// How long past the drain deadline a worker waits for cancelled operations before giving up.
const HARD_STOP: Duration = Duration::from_secs(2);
/// How often lingering connections (see `conn`'s `linger`) look at what their peer has
/// acknowledged (Unix), or whether it has been quiet long enough (Windows).
const LINGER_POLL: Duration = Duration::from_millis(2);

/// One worker thread's state: its port, listener, connections, clock and counters.
pub(super) struct Worker<'a> {
    pub(super) id: usize,
    pub(super) cfg: &'a ServeConfig,
    pub(super) port: Port,
    pub(super) listener: Option<SharedFd>,
    pub(super) accept_op: Option<Token>,
    pub(super) accept_retry: Option<Instant>,
    pub(super) accept_policy: AcceptPolicy,
    pub(super) conns: KeyedSlots<Conn>,
    /// Connections whose receive ended for want of pool buffers, to resume as buffers return.
    pub(super) starved: VecDeque<u64>,
    /// Connections with chunks that arrived in the batch being taken in (see `flush`).
    pub(super) unflushed: Vec<u64>,
    /// Most buffers a connection may hold queued for its echo.
    pub(super) max_chunks: usize,
    /// The bounds of what a connection holds unechoed ([`recv_limit`] bytes, [`max_chunks`]
    /// buffers), passed to each step of its echo.
    pub(super) bounds: Bounds,
    pub(super) draining: bool,
    pub(super) drain_deadline: Option<Instant>,
    pub(super) forced: bool,
    pub(super) stats: WorkerStats,
    pub(super) gate: Arc<Gate>,
    pub(super) per_ip: Arc<PerIp>,
    /// Connections accepted when no place was free: held (no operation on them, their bytes
    /// wait in their sockets) until the gate posts [`SLOT_FREE`]; no accept is in flight
    /// meanwhile. Usually one; a multishot accept may deliver a few more before its cancel.
    pub(super) parked: VecDeque<Accepted>,
    /// The worker's clock: start, and now in milliseconds (updated once per loop turn).
    pub(super) epoch: Instant,
    pub(super) now_ms: u64,
    pub(super) timeouts: Timeouts,
    pub(super) next_tick: Instant,
    pub(super) live: Arc<Mutex<Vec<Snapshot>>>,
    /// Scratch list of the connections a tick expires (kept to avoid allocating per tick).
    pub(super) expired: Vec<u64>,
    /// Connections accepted so far: the last one's serial number, as `--log-messages` names a
    /// connection (unlike its key, never reused).
    pub(super) serial: u64,
    /// With `--log-messages`: each slot's connection's serial number (indexed by
    /// [`slot_of`](crate::slots::slot_of)); empty otherwise, so that connections do not carry
    /// it.
    pub(super) serials: Vec<u64>,
    /// The acceptor of workers that share one listener: where accepted connections go
    /// ([`handoff`](super::handoff)).
    pub(super) handoff: Option<Handoff>,
    /// A worker without a listener of its own: the connections the acceptor hands it.
    pub(super) inbox: Option<Arc<Inbox>>,
    /// Its TLS connections, when the server speaks TLS (see `tls_conn`).
    pub(super) tls: Option<TlsWorker>,
    /// Its WebSocket connections, when the server speaks WebSocket (see `ws_conn`).
    pub(super) ws: Option<WsWorker>,
    /// Its connections reading their PROXY header, with `--proxy-protocol` (see `proxy_conn`).
    pub(super) proxy: Option<ProxyWorker>,
    /// Connections the drain ended whose close waits: until the peer has acknowledged all they
    /// sent (Unix), or until its end while its bytes are dropped (Windows; see `conn`'s
    /// `linger`).
    pub(super) lingering: Vec<u64>,
}

impl<'a> Worker<'a> {
    pub(super) fn new(
        id: usize,
        cfg: &'a ServeConfig,
        port: Port,
        listener: Option<SharedFd>,
        shared: Shared,
    ) -> Worker<'a> {
        let timeouts = Timeouts::new(cfg.idle_timeout, cfg.write_timeout)
            .with_handshake(cfg.tls.as_ref().map(|tls| tls.handshake_timeout))
            .with_handshake(cfg.websocket.map(|ws| ws.handshake_timeout))
            .with_handshake(cfg.proxy_protocol);
        let epoch = Instant::now();
        Worker {
            id,
            cfg,
            port,
            listener,
            accept_op: None,
            accept_retry: None,
            accept_policy: AcceptPolicy::new(Some(id)),
            // Room for the connections it may hold (up to 65,536) from the start: the table
            // never moves its connections meanwhile, and a page of it costs memory only once a
            // connection is written there.
            conns: KeyedSlots::with_capacity(cfg.effective_max_connections()),
            // Lists a batch of completions fills: room for a busy worker's batch up front, so
            // that a new high-water mark under load does not allocate on the hot path.
            starved: VecDeque::with_capacity(64),
            unflushed: Vec::with_capacity(512),
            max_chunks: max_chunks(cfg),
            bounds: Bounds::new(recv_limit(cfg), max_chunks(cfg)).with_bulk(pool_buffer_size(cfg)),
            draining: false,
            drain_deadline: None,
            forced: false,
            lingering: Vec::new(),
            stats: WorkerStats::default(),
            gate: shared.gate,
            per_ip: shared.per_ip,
            parked: VecDeque::new(),
            epoch,
            now_ms: 0,
            timeouts,
            next_tick: epoch + timeouts.tick,
            live: shared.live,
            expired: Vec::with_capacity(64),
            serial: 0,
            serials: Vec::new(),
            handoff: None,
            inbox: None,
            tls: cfg.tls.as_ref().map(TlsWorker::new),
            ws: cfg.websocket.map(|ws| WsWorker::new(ws, cfg.buffer_size)),
            proxy: cfg.proxy_protocol.map(ProxyWorker::new),
        }
    }
}

impl Worker<'_> {
    /// Takes in one batch of completions: each applied in turn, then what arrived is sent
    /// (one send per connection) and starved connections resume.
    pub(super) fn take_in(&mut self, done: &mut Vec<Completion>) {
        for c in done.drain(..) {
            self.on_completion(c);
        }
        self.flush();
        self.resume_starved();
    }

    pub(super) fn run(mut self) -> WorkerStats {
        self.submit_accept();
        // Connections handed over before this worker's port could be posted to.
        self.take_handed();
        let mut done: Vec<Completion> = Vec::with_capacity(512);
        loop {
            if self.draining
                && self.conns.is_empty()
                && self.tls.as_ref().is_none_or(|tls| tls.len() == 0)
                && self.ws.as_ref().is_none_or(|ws| ws.len() == 0)
                && self.proxy.as_ref().is_none_or(|p| p.len() == 0)
                && self.accept_op.is_none()
                && self.inbox.as_ref().is_none_or(|inbox| inbox.is_done())
            {
                break;
            }
            let now = Instant::now();
            self.now_ms = u64::try_from((now - self.epoch).as_millis()).unwrap_or(u64::MAX);
            if now >= self.next_tick {
                self.next_tick = now + self.timeouts.tick;
                self.on_tick();
            }
            if self.accept_retry.is_some_and(|t| now >= t) {
                self.accept_retry = None;
                self.submit_accept();
            }
            if let Some(deadline) = self.drain_deadline {
                if now >= deadline && !self.forced {
                    self.force_all();
                }
                if now >= deadline + HARD_STOP {
                    error!(
                        worker = self.id,
                        connections = self.conns.len(),
                        "operations did not finish after their cancellation; giving up on them"
                    );
                    break;
                }
            }
            let timeout = self
                .next_deadline()
                .map(|t| t.saturating_duration_since(now));
            done.clear();
            if let Err(e) = self.port.wait_at(&mut done, now, timeout) {
                error!(
                    worker = self.id,
                    "waiting on the completion port failed: {e}"
                );
                break;
            }
            self.pace(done.len());
            self.take_in(&mut done);
            if !self.lingering.is_empty() {
                self.close_lingering();
            }
        }
        for parked in self.parked.drain(..) {
            self.per_ip.leave(parked.peer.map(|p| p.ip()));
        }
        // An acceptor that ends early (a failed wait) hands out nothing more, so that the other
        // workers can end.
        if let Some(handoff) = &self.handoff {
            handoff.close();
        }
        let stats = self.counters();
        self.publish();
        debug!(worker = self.id, ?stats, "worker done");
        stats
    }

    /// Takes note of how many completions the last wait returned: whether the worker is busy
    /// (between [`IDLE_UNTIL`] and [`BUSY_FROM`] it stays as it was), which decides how its
    /// connections receive small messages, where the port issues single receives after the
    /// sends submitted with them ([`Port::late_single_receives`]).
    fn pace(&mut self, completions: usize) {
        let busy = if completions >= BUSY_FROM {
            true
        } else if completions <= IDLE_UNTIL {
            false
        } else {
            return;
        };
        self.bounds = self
            .bounds
            .with_single(busy && self.port.late_single_receives());
    }

    /// The worker's counters with the port's.
    fn counters(&self) -> WorkerStats {
        let port_stats = self.port.stats();
        let mut stats = self.stats;
        stats.waits = port_stats.waits;
        stats.completions = port_stats.completions;
        stats.stale_completions += port_stats.stale;
        stats.pool_buffers = port_stats.pool_buffers as u64;
        stats.pool_peak = port_stats.pool_peak as u64;
        stats.pool_in_use = port_stats.pool_in_use as u64;
        stats
    }

    /// Makes the counters visible to [`Live`](crate::summary::Live) readers.
    pub(super) fn publish(&self) {
        let snapshot = Snapshot {
            open: (self.conns.len()
                + self.tls.as_ref().map_or(0, TlsWorker::len)
                + self.ws.as_ref().map_or(0, WsWorker::len)
                + self.proxy.as_ref().map_or(0, ProxyWorker::len)) as u64,
            totals: self.counters(),
        };
        if let Some(slot) = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(self.id)
        {
            *slot = snapshot;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let drain = self
            .drain_deadline
            .map(|d| if self.forced { d + HARD_STOP } else { d });
        // Lingering connections are looked at again soon: nothing completes when a peer
        // acknowledges.
        let linger = (!self.lingering.is_empty()).then(|| Instant::now() + LINGER_POLL);
        [self.accept_retry, drain, linger, Some(self.next_tick)]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn on_completion(&mut self, c: Completion) {
        match c.outcome {
            Outcome::Posted if c.key == SHUTDOWN => self.begin_drain(),
            Outcome::Posted if c.key == SLOT_FREE => self.on_slot_free(),
            Outcome::Posted if c.key == HANDOFF => self.take_handed(),
            Outcome::Accepted(result) => self.on_accept(result, false),
            Outcome::AcceptedMulti { result, more } => self.on_accept(result, more),
            Outcome::ReceivedBuf { buf, result, more } => self.on_recv(c.key, buf, result, more),
            Outcome::SentBufs { bufs, result, .. } => self.on_send(c.key, bufs, result),
            // Owned-buffer receives and sends are WebSocket connections' (tagged, see
            // `ws_conn`) or TLS connections' (see `tls_conn`).
            Outcome::Received { buf, result } if c.key & PROXY_TAG != 0 => {
                self.on_proxy_recv(c.key, buf, result)
            }
            Outcome::Received { buf, result } if c.key & WS_TAG != 0 => {
                self.on_ws_recv(c.key, buf, result)
            }
            Outcome::Sent { buf, at, result } if c.key & WS_TAG != 0 => {
                self.on_ws_send(c.key, buf, at, result)
            }
            Outcome::Received { buf, result } => self.on_tls_recv(c.key, buf, result),
            Outcome::Sent { buf, at, result } => self.on_tls_send(c.key, buf, at, result),
            Outcome::Closed(_) => {
                if self.forget(c.key) {
                    self.stats.closed += 1;
                } else if self.owned_forget::<TlsConn>(c.key)
                    || self.owned_forget::<WsConn>(c.key)
                    || self.owned_forget::<ProxyConn>(c.key)
                {
                    // Counted there.
                } else {
                    self.stats.stale_completions += 1;
                }
            }
            other => debug!(worker = self.id, ?other, "unexpected completion"),
        }
    }

    /// Serves the connections the acceptor handed to this worker (their places at the gate
    /// were taken by the acceptor).
    fn take_handed(&mut self) {
        let Some(inbox) = &self.inbox else {
            return;
        };
        let mut handed = Vec::new();
        inbox.take(&mut handed);
        for conn in handed {
            self.new_conn(conn);
        }
    }

    fn begin_drain(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.drain_deadline = Some(Instant::now() + self.cfg.drain_timeout);
        // Lingering connections are looked at often enough for their quiet time.
        self.timeouts.tick = self.timeouts.tick.min(LINGER_QUIET / 2);
        self.next_tick = self.next_tick.min(Instant::now() + self.timeouts.tick);
        self.accept_retry = None;
        match self.accept_op {
            Some(token) => {
                let _ = self.port.cancel(token);
            }
            None => self.take_backlog(),
        }
        // They may have sent bytes already: drain them like the others, above the limit by
        // one each for the length of the shutdown.
        while let Some(parked) = self.parked.pop_front() {
            self.gate.take_anyway();
            self.new_conn(parked);
        }
        let keys: Vec<u64> = self.conns.iter_mut().map(|(key, _)| key).collect();
        let mut cancels = 0;
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                let todo = conn.echo.drain(self.bounds);
                cancels += usize::from(todo.cancel_recv);
                self.apply(key, todo);
            }
        }
        self.owned_drain::<TlsConn>();
        self.owned_drain::<WsConn>();
        self.owned_drain::<ProxyConn>();
        info!(
            worker = self.id,
            connections = self.conns.len(),
            idle = cancels,
            "shutting down: echoing what was received, then closing"
        );
    }

    fn force_all(&mut self) {
        self.forced = true;
        #[cfg(windows)]
        self.force_lingering();
        self.owned_force_all::<TlsConn>();
        self.owned_force_all::<WsConn>();
        self.owned_force_all::<ProxyConn>();
        if self.conns.is_empty() {
            return;
        }
        warn!(
            worker = self.id,
            connections = self.conns.len(),
            "drain timeout: closing the connections that are still busy"
        );
        let keys: Vec<u64> = self.conns.iter_mut().map(|(key, _)| key).collect();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                if !conn.echo.is_closing() {
                    self.stats.forced_closes += 1;
                    let todo = conn.echo.force(self.bounds);
                    self.apply(key, todo);
                }
            }
        }
    }
}

/// What the worker's unit tests (here and in the sibling modules) build on.
#[cfg(test)]
pub(super) mod testing {
    use super::*;
    use crate::completion::{pool_buffer_size, POOL_BUFFERS};
    use ringport_port::OwnedFd;
    use std::net::{TcpListener, TcpStream};

    use ringport_port::{Backend, BackendChoice};

    /// The backends of this system, which the worker's tests run on each.
    pub(in crate::completion) const BACKENDS: [BackendChoice; Backend::HERE.len()] = {
        let mut each = [BackendChoice::Auto; Backend::HERE.len()];
        let mut i = 0;
        while i < each.len() {
            each[i] = Backend::HERE[i].choice();
            i += 1;
        }
        each
    };

    pub(in crate::completion) fn pair() -> (OwnedFd, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (s.into(), c)
    }

    /// A worker of `cfg` with a buffer pool, alone at a gate of 10 connections.
    pub(in crate::completion) fn worker(cfg: &ServeConfig) -> Worker<'_> {
        let mut port = Port::new(&cfg.port_config).unwrap();
        port.provide_buffers(POOL_BUFFERS, pool_buffer_size(cfg))
            .unwrap();
        let shared = Shared {
            gate: Arc::new(Gate::new(10, 1)),
            per_ip: Arc::new(PerIp::new(0)),
            live: Arc::new(Mutex::new(vec![Snapshot::default()])),
        };
        Worker::new(0, cfg, port, None, shared)
    }

    pub(in crate::completion) fn only_key(w: &mut Worker<'_>) -> u64 {
        let keys: Vec<u64> = w.conns.iter_mut().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 1);
        keys[0]
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{only_key, pair, worker};
    use super::*;
    use crate::echo::Waiting;
    use crate::ServeConfig;
    use ringport_port::PortConfig;
    use std::io::{Read, Write};

    /// The next completion of the worker's port, waited for (bounded) without handling it.
    fn next_completion(w: &mut Worker<'_>, backend: ringport_port::BackendChoice) -> Completion {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut done = Vec::new();
        while done.is_empty() {
            assert!(Instant::now() < deadline, "no completion on {backend}");
            w.port
                .wait(&mut done, Some(Duration::from_millis(50)))
                .unwrap();
        }
        let c = done.remove(0);
        assert!(done.is_empty(), "one completion at a time: {done:?}");
        c
    }

    /// A completion that names a slot's old generation (the connection it belonged to is gone
    /// and the slot holds a new one) is counted as stale and never reaches the new connection:
    /// not its bytes, not its close; the pool buffers it carries go back to the pool.
    ///
    /// The stale completions are the kinds the worker does handle (a pooled receive, a pooled
    /// send, a close), each with a real buffer of the pool, so only the generation check can
    /// keep them from the new connection.
    #[test]
    fn a_completion_for_an_old_generation_is_dropped_counted_and_never_applied() {
        for backend in super::testing::BACKENDS {
            let cfg = ServeConfig {
                port_config: PortConfig {
                    backend,
                    ..PortConfig::default()
                },
                ..ServeConfig::default()
            };
            let mut w = worker(&cfg);

            let (fd, mut old_client) = pair();
            assert!(w.gate.reserve(0));
            w.new_conn(Accepted {
                fd: fd.into(),
                peer: None,
            });
            let old = only_key(&mut w);
            // Two chunks the old connection received, held back instead of handled.
            let mut held = Vec::new();
            for chunk in [b"stale", b"STALE"] {
                old_client.write_all(chunk).unwrap();
                let c = next_completion(&mut w, backend);
                assert_eq!(c.key, old, "{backend}: {c:?}");
                match c.outcome {
                    Outcome::ReceivedBuf {
                        buf: Some(buf),
                        result: Ok(5),
                        ..
                    } => held.push(buf),
                    other => panic!("{backend}: not a pooled chunk: {other:?}"),
                }
            }
            // Its receive ends (cancelled) and the slot is freed, as after its close.
            let token = w.conns.get_mut(old).unwrap().recv_op.unwrap();
            w.port.cancel(token).unwrap();
            loop {
                let c = next_completion(&mut w, backend);
                assert_eq!(c.key, old, "{backend}: {c:?}");
                let Outcome::ReceivedBuf { buf, more, .. } = c.outcome else {
                    panic!("{backend}: {:?}", c.outcome);
                };
                if let Some(buf) = buf {
                    w.port.give_back(buf);
                }
                if !more {
                    break;
                }
            }
            assert!(w.forget(old));
            let (fd, mut client) = pair();
            assert!(w.gate.reserve(0));
            w.new_conn(Accepted {
                fd: fd.into(),
                peer: None,
            });
            let new = only_key(&mut w);
            assert_eq!(old & 0xffff_ffff, new & 0xffff_ffff, "the slot was reused");
            assert_ne!(old, new, "with a new generation");

            let available = w.port.buffers_available();
            let stale = |outcome| Completion { key: old, outcome };
            let sent = held.pop().unwrap();
            let received = held.pop().unwrap();
            w.on_completion(stale(Outcome::ReceivedBuf {
                buf: Some(received),
                result: Ok(5),
                more: true,
            }));
            w.on_completion(stale(Outcome::SentBufs {
                bufs: vec![sent],
                at: 0,
                result: Ok(5),
            }));
            w.on_completion(stale(Outcome::Closed(Ok(()))));
            assert_eq!(w.stats.stale_completions, 3, "{backend}");
            assert_eq!(
                (w.stats.bytes_in, w.stats.bytes_out, w.stats.closed),
                (0, 0, 0)
            );
            assert_eq!(
                w.port.buffers_available(),
                available + 2,
                "{backend}: the stale completions' buffers went back to the pool"
            );
            let conn = w
                .conns
                .get_mut(new)
                .expect("the new connection is untouched");
            assert_eq!(conn.echo.waiting(), Waiting::PeerData);
            assert!(conn.recv_op.is_some(), "its own receive is still in flight");

            // And it echoes its own bytes.
            client.write_all(b"fresh").unwrap();
            let mut done = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            while w.stats.bytes_out < 5 {
                assert!(Instant::now() < deadline, "no echo on {backend}");
                w.port
                    .wait(&mut done, Some(Duration::from_millis(50)))
                    .unwrap();
                w.take_in(&mut done);
            }
            let mut back = [0u8; 5];
            client.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"fresh");
            assert_eq!(w.stats.stale_completions, 3);
        }
    }
}
