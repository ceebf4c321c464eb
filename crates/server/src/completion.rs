//! The completion model: the article's ServerIOCP on a completion port per worker thread.
//!
//! Each worker owns a [`Port`] with a buffer pool, a `SO_REUSEPORT` listener with a multishot
//! accept in flight, and a table of connections. A connection has a multishot receive armed
//! (taking a pool buffer only when bytes arrive, so an idle connection holds none) and at most
//! one send in flight, which sends the very buffer the kernel filled and gives it back to the
//! pool when done. Its [`MultiEcho`] state machine holds the rules (the queue of received
//! chunks bounded by bytes, backpressure by cancelling and re-arming the receive, drain, forced
//! close); the worker only carries its steps out. One turn of the loop is one [`Port::wait`]:
//! everything queued is submitted and every ready completion reaped, in one system call.
//!
//! # Keys
//!
//! The key of a connection's operations packs its slot in the table and the slot's generation
//! (`generation << 32 | slot`); a completion whose generation no longer matches is stale,
//! counted, and dropped. Accepts use [`ACCEPT_KEY`]; posted values are [`SHUTDOWN`].
//!
//! # Shutdown order
//!
//! 1. A [`SHUTDOWN`] completion arrives (posted by [`Shutdown::trigger`]).
//! 2. The accept in flight is cancelled; the clients already in the listen backlog are taken
//!    in (non-blocking accepts) so that closing the listener resets nobody; the listener closes.
//! 3. Every connection is told to drain: its multishot receive is cancelled; what was already
//!    received is echoed; receives from then on are single and do not wait; connections with
//!    nothing left close.
//! 4. At the drain deadline, whatever remains is cancelled and closed.
//! 5. The loop ends when no connection and no accept is left; the worker returns its counters.
//!
//! # Limits
//!
//! - **Connections** (`max_connections`, shared by the workers through a [`Gate`]): a worker
//!   takes a place for each connection it accepts; one that finds none holds that connection
//!   unserved and submits no further accept (no spinning: clients wait in the listen backlog)
//!   until a connection closes anywhere and the gate posts it `SLOT_FREE` through its port.
//! - **Per IP address** (`max_per_ip`): a connection beyond it is closed as soon as accepted.
//! - **Timeouts**, by one scan of the worker's table per tick (a second, shorter for short
//!   timeouts), never a timer per operation: each connection records the time of its last
//!   progress (coarse, the loop's clock in milliseconds); one waiting for its peer's bytes longer
//!   than `idle_timeout`, or for its peer to read its echo longer than `write_timeout`, is
//!   expired: its operation is cancelled *through the port*, and its completion leads to the
//!   close. A slot is freed only when the close's completion is reaped, so no completion of a
//!   connection can outlive its slot.
//! - **Accept errors**: out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) pauses
//!   accepting, 100 ms doubling to 1 s, logged once per episode; other errors are skipped.
//!
//! The worker publishes its counters at each tick for [`Live`](crate::summary::Live) readers
//! (`serve --stats`).

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use ringport_port::{
    is_cancelled, is_pool_empty, Accepted, Completion, Op, Outcome, PoolBuf, Port, SharedFd, Token,
};
use socket2::Socket;
use tracing::{debug, error, info, warn};

use crate::accept_policy::{AcceptPolicy, Verdict};
use crate::echo::{Arrived, MultiEcho, RecvMode, SendResult, Todo, Waiting};
use crate::limits::{Gate, PerIp, SLOT_FREE};
use crate::shutdown::Shutdown;
use crate::slots::Slots;
use crate::summary::{Live, Snapshot, Summary, WorkerStats};
use crate::{listener, Running, ServeConfig, ServeError};

/// The key of accept operations.
pub const ACCEPT_KEY: u64 = u64::MAX;
/// The value posted to a worker to start its graceful shutdown.
pub const SHUTDOWN: u64 = 1;

/// How long past the drain deadline a worker waits for cancelled operations before giving up.
const HARD_STOP: Duration = Duration::from_secs(2);
/// Most clients taken from a listen backlog at shutdown (the kernel caps a backlog at
/// `net.core.somaxconn`, 4096 by default).
const BACKLOG_MAX: usize = 65_536;
/// Buffers in each worker's pool (a provided-buffer ring on io_uring).
///
/// A multishot receive may take up to 32 buffers per wake-up before its owner can stop it, so a
/// peer that sends much and reads nothing can hold a few dozen for a while; the pool is sized so
/// that a hundred such peers per worker still leave buffers for everyone else. The memory
/// (8 MiB) becomes resident only as buffers are first used.
pub const POOL_BUFFERS: u16 = 4096;
/// The size of a pool buffer, at most (smaller when `buffer_size` is).
pub const POOL_BUFFER_SIZE: usize = 2048;
/// How often a worker scans for timeouts and publishes its counters, at most.
const TICK_MAX: Duration = Duration::from_secs(1);
/// How often at least (for very short timeouts).
const TICK_MIN: Duration = Duration::from_millis(50);

struct Conn {
    /// The socket; taken when the close is submitted.
    fd: Option<SharedFd>,
    /// The echo state, with the received chunks waiting for their echo.
    echo: MultiEcho<PoolBuf>,
    /// The receive in flight (multishot, or single while draining).
    recv_op: Option<Token>,
    /// The send in flight.
    send_op: Option<Token>,
    peer: Option<SocketAddr>,
    /// When the connection last made progress (accepted, bytes in or out), in milliseconds of
    /// the worker's clock.
    last_ms: u64,
}

struct Worker<'a> {
    id: usize,
    cfg: &'a ServeConfig,
    port: Port,
    listener: Option<SharedFd>,
    accept_op: Option<Token>,
    accept_retry: Option<Instant>,
    accept_policy: AcceptPolicy,
    conns: Slots<Conn>,
    /// Connections whose receive ended for want of pool buffers, to resume as buffers return.
    starved: std::collections::VecDeque<u64>,
    /// Most buffers a connection may hold queued for its echo.
    max_chunks: usize,
    /// Multishot accept is in use (false after the kernel refused it).
    multi_accept: bool,
    draining: bool,
    drain_deadline: Option<Instant>,
    forced: bool,
    stats: WorkerStats,
    gate: Arc<Gate>,
    per_ip: Arc<PerIp>,
    /// Connections accepted when no place was free: held (no operation on them, their bytes
    /// wait in their sockets) until the gate posts [`SLOT_FREE`]; no accept is in flight
    /// meanwhile. Usually one; a multishot accept may deliver a few more before its cancel.
    parked: std::collections::VecDeque<Accepted>,
    /// The worker's clock: start, and now in milliseconds (updated once per loop turn).
    epoch: Instant,
    now_ms: u64,
    tick: Duration,
    next_tick: Instant,
    idle_ms: Option<u64>,
    write_ms: Option<u64>,
    live: Arc<Mutex<Vec<Snapshot>>>,
    /// Scratch list of the connections a tick expires (kept to avoid allocating per tick).
    expired: Vec<u64>,
}

/// Binds the listeners, starts the workers and returns once every worker has its port.
pub fn start(cfg: &ServeConfig, shutdown: Shutdown) -> Result<Running, ServeError> {
    let workers = cfg.workers.max(1);
    let (listeners, addr) = listener::bind_listeners(cfg.addr(), workers, cfg.backlog)?;
    let max = cfg.effective_max_connections();
    if let Ok((soft, _)) = ringport_port::os::nofile_limit() {
        if max as u64 >= soft {
            warn!(
                max_connections = max,
                nofile = soft,
                "--max-connections is above the open-file limit (ulimit -n): accepts beyond it fail with EMFILE and back off"
            );
        }
    }
    let gate = Arc::new(Gate::new(max, workers));
    let per_ip = Arc::new(PerIp::new(cfg.max_per_ip));
    let live_slots = Arc::new(Mutex::new(vec![Snapshot::default(); workers]));
    // Decide the backend once (one log line if io_uring is unavailable and auto falls back),
    // then give every worker the decision.
    let resolved = cfg
        .port_config
        .backend
        .resolve()
        .map_err(|e| ServeError::Port(ringport_port::PortError::UringUnavailable(e)))?;
    let mut worker_cfg = cfg.clone();
    worker_cfg.port_config.backend = resolved.into();
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(workers);
    for (id, listener) in listeners.into_iter().enumerate() {
        let cfg = worker_cfg.clone();
        let ready = ready_tx.clone();
        let shared = Shared {
            gate: Arc::clone(&gate),
            per_ip: Arc::clone(&per_ip),
            live: Arc::clone(&live_slots),
        };
        let handle = std::thread::Builder::new()
            .name(format!("ringport-w{id}"))
            .spawn(move || worker_main(id, &cfg, listener, shared, ready))
            .map_err(|e| ServeError::Io("cannot start a worker thread".into(), e))?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut backend = String::new();
    let mut failure = None;
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok((poster, describe))) => {
                backend = describe;
                shutdown.on_trigger(move || {
                    let _ = poster.post(SHUTDOWN);
                });
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(ServeError::WorkerPanicked),
        }
    }
    if let Some(e) = failure {
        shutdown.trigger();
        for h in handles {
            let _ = h.join();
        }
        return Err(e);
    }
    info!(%addr, workers, backend = %backend, max_connections = max, max_per_ip = cfg.max_per_ip, "completion model ready");
    let live = Live::new(move || {
        let slots = live_slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = Snapshot::default();
        for s in slots.iter() {
            total.open += s.open;
            total.totals.add(&s.totals);
        }
        total
    });
    let started = Instant::now();
    let join = move || {
        let mut summary = Summary {
            model: "completion".into(),
            backend,
            ..Summary::default()
        };
        for h in handles {
            summary
                .workers
                .push(h.join().map_err(|_| ServeError::WorkerPanicked)?);
        }
        summary.uptime = started.elapsed();
        Ok(summary)
    };
    Ok(Running::new(addr, Box::new(join), live))
}

/// What the workers of one server share.
struct Shared {
    gate: Arc<Gate>,
    per_ip: Arc<PerIp>,
    live: Arc<Mutex<Vec<Snapshot>>>,
}

type Ready = mpsc::Sender<Result<(ringport_port::Poster, String), ServeError>>;

fn worker_main(
    id: usize,
    cfg: &ServeConfig,
    listener: Socket,
    shared: Shared,
    ready: Ready,
) -> WorkerStats {
    let mut port = match Port::new(&cfg.port_config) {
        Ok(port) => port,
        Err(e) => {
            let _ = ready.send(Err(ServeError::Port(e)));
            return WorkerStats::default();
        }
    };
    if let Err(e) = port.provide_buffers(POOL_BUFFERS, pool_buffer_size(cfg)) {
        let _ = ready.send(Err(ServeError::Io(
            "cannot allocate the worker's buffer pool".into(),
            e,
        )));
        return WorkerStats::default();
    }
    shared.gate.register(id, port.poster());
    let _ = ready.send(Ok((port.poster(), port.describe())));
    drop(ready);
    Worker::new(id, cfg, port, Some(Rc::new(listener.into())), shared).run()
}

/// The size of the pool's buffers: a page, or `buffer_size` when smaller.
fn pool_buffer_size(cfg: &ServeConfig) -> usize {
    cfg.buffer_size.clamp(1, POOL_BUFFER_SIZE)
}

impl<'a> Worker<'a> {
    fn new(
        id: usize,
        cfg: &'a ServeConfig,
        port: Port,
        listener: Option<SharedFd>,
        shared: Shared,
    ) -> Worker<'a> {
        let ms = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let shortest = [cfg.idle_timeout, cfg.write_timeout]
            .into_iter()
            .flatten()
            .filter(|d| !d.is_zero())
            .min();
        let tick = shortest.map_or(TICK_MAX, |d| (d / 4).clamp(TICK_MIN, TICK_MAX));
        let epoch = Instant::now();
        Worker {
            id,
            cfg,
            port,
            listener,
            accept_op: None,
            accept_retry: None,
            accept_policy: AcceptPolicy::new(Some(id)),
            conns: Slots::default(),
            starved: std::collections::VecDeque::new(),
            max_chunks: cfg.buffer_size.div_ceil(pool_buffer_size(cfg)).max(1),
            multi_accept: true,
            draining: false,
            drain_deadline: None,
            forced: false,
            stats: WorkerStats::default(),
            gate: shared.gate,
            per_ip: shared.per_ip,
            parked: std::collections::VecDeque::new(),
            epoch,
            now_ms: 0,
            tick,
            next_tick: epoch + tick,
            idle_ms: ms(cfg.idle_timeout.filter(|d| !d.is_zero())),
            write_ms: ms(cfg.write_timeout.filter(|d| !d.is_zero())),
            live: shared.live,
            expired: Vec::new(),
        }
    }
}

impl Worker<'_> {
    fn run(mut self) -> WorkerStats {
        self.submit_accept();
        let mut done: Vec<Completion> = Vec::with_capacity(512);
        loop {
            if self.draining && self.conns.is_empty() && self.accept_op.is_none() {
                break;
            }
            let now = Instant::now();
            self.now_ms = u64::try_from((now - self.epoch).as_millis()).unwrap_or(u64::MAX);
            if now >= self.next_tick {
                self.next_tick = now + self.tick;
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
            if let Err(e) = self.port.wait(&mut done, timeout) {
                error!(
                    worker = self.id,
                    "waiting on the completion port failed: {e}"
                );
                break;
            }
            for c in done.drain(..) {
                self.on_completion(c);
            }
            self.resume_starved();
        }
        for parked in self.parked.drain(..) {
            self.per_ip.leave(parked.peer.map(|p| p.ip()));
        }
        let stats = self.counters();
        self.publish();
        debug!(worker = self.id, ?stats, "worker done");
        stats
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
        stats
    }

    /// Makes the counters visible to [`Live`] readers.
    fn publish(&self) {
        let snapshot = Snapshot {
            open: self.conns.len() as u64,
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

    /// Once per tick: publish the counters, expire the connections past their timeouts.
    fn on_tick(&mut self) {
        self.publish();
        if self.draining || (self.idle_ms.is_none() && self.write_ms.is_none()) {
            return;
        }
        let now = self.now_ms;
        let mut expired = std::mem::take(&mut self.expired);
        for (key, conn) in self.conns.iter_mut() {
            let (limit, idle) = match conn.echo.waiting() {
                Waiting::PeerData => (self.idle_ms, true),
                Waiting::PeerReading => (self.write_ms, false),
                Waiting::Nothing => continue,
            };
            let Some(limit) = limit else { continue };
            if now.saturating_sub(conn.last_ms) < limit {
                continue;
            }
            if idle {
                self.stats.idle_closed += 1;
            } else {
                self.stats.write_timeouts += 1;
            }
            debug!(worker = self.id, peer = ?conn.peer, idle, "timeout: closing the connection");
            expired.push(key);
        }
        // Their operations are cancelled through the port; the completions lead to the close.
        for key in expired.drain(..) {
            if let Some(conn) = self.conns.get_mut(key) {
                let todo = conn.echo.force();
                self.apply(key, todo);
            }
        }
        self.expired = expired;
    }

    /// Resumes starved connections while the pool has buffers to spare.
    fn resume_starved(&mut self) {
        while !self.starved.is_empty() && self.port.buffers_available() > self.max_chunks {
            let Some(key) = self.starved.pop_front() else {
                break;
            };
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.echo.is_starved() {
                    let todo = conn.echo.resume();
                    self.apply(key, todo);
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let drain = self
            .drain_deadline
            .map(|d| if self.forced { d + HARD_STOP } else { d });
        [self.accept_retry, drain, Some(self.next_tick)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Forgets the connection `key` once its last completion is reaped: frees its slot, its
    /// place at the gate and its count for its address.
    fn forget(&mut self, key: u64) -> bool {
        match self.conns.remove(key) {
            Some(conn) => {
                self.gate.release();
                self.per_ip.leave(conn.peer.map(|p| p.ip()));
                true
            }
            None => false,
        }
    }

    fn on_completion(&mut self, c: Completion) {
        match c.outcome {
            Outcome::Posted if c.key == SHUTDOWN => self.begin_drain(),
            Outcome::Posted if c.key == SLOT_FREE => self.on_slot_free(),
            Outcome::Accepted(result) => self.on_accept(result, false),
            Outcome::AcceptedMulti { result, more } => self.on_accept(result, more),
            Outcome::ReceivedBuf { buf, result, more } => self.on_recv(c.key, buf, result, more),
            Outcome::SentBuf { buf, result, .. } => self.on_send(c.key, buf, result),
            // The worker submits no owned-buffer receives or sends: such a completion names
            // nothing of ours.
            Outcome::Received { .. } | Outcome::Sent { .. } => self.stats.stale_completions += 1,
            Outcome::Closed(_) => {
                if self.forget(c.key) {
                    self.stats.closed += 1;
                } else {
                    self.stats.stale_completions += 1;
                }
            }
            other => debug!(worker = self.id, ?other, "unexpected completion"),
        }
    }

    fn submit_accept(&mut self) {
        if self.draining
            || self.accept_op.is_some()
            || self.accept_retry.is_some()
            || !self.parked.is_empty()
        {
            return;
        }
        let Some(listener) = self.listener.clone() else {
            return;
        };
        let op = if self.multi_accept {
            Op::AcceptMulti { listener }
        } else {
            Op::Accept { listener }
        };
        match self.port.submit(ACCEPT_KEY, op) {
            Ok(token) => self.accept_op = Some(token),
            Err(e) => {
                error!(worker = self.id, "cannot submit an accept: {e}");
                let pause = self.accept_policy.pause();
                self.pause_accepts(pause);
            }
        }
    }

    fn pause_accepts(&mut self, pause: Duration) {
        self.accept_retry = Some(Instant::now() + pause);
    }

    /// An accept completed; `more`: the multishot accept is still armed.
    fn on_accept(&mut self, result: io::Result<Accepted>, more: bool) {
        if !more {
            self.accept_op = None;
        }
        match result {
            Ok(accepted) => {
                self.accept_policy.succeeded();
                self.stats.accepted += 1;
                if !self.per_ip.admit(accepted.peer.map(|p| p.ip())) {
                    self.stats.refused_per_ip += 1;
                    // Closed at once (a plain close: the port never saw this descriptor).
                    drop(accepted);
                } else if self.parked.is_empty() && self.gate.reserve(self.id) {
                    self.new_conn(accepted);
                } else {
                    // At the limit: hold this one, accept nothing more (clients wait in the
                    // listen backlog, nothing spins) until the gate posts SLOT_FREE.
                    if self.parked.is_empty() {
                        self.stats.limit_pauses += 1;
                    }
                    self.parked.push_back(accepted);
                    if let Some(token) = self.accept_op {
                        let _ = self.port.cancel(token);
                    }
                }
                self.submit_accept();
            }
            Err(e) if is_cancelled(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidInput && self.multi_accept && !more => {
                // A kernel without multishot accept (before 5.19) refuses it with EINVAL: one
                // accept at a time.
                info!(
                    worker = self.id,
                    "multishot accept refused ({e}); accepting one at a time"
                );
                self.multi_accept = false;
                self.submit_accept();
            }
            Err(e) => {
                self.stats.accept_errors += 1;
                if more {
                    // The multishot accept goes on by itself.
                    self.accept_policy.failed_armed(&e);
                } else {
                    match self.accept_policy.failed(&e) {
                        Verdict::Pause(pause) => self.pause_accepts(pause),
                        Verdict::AcceptNext => self.submit_accept(),
                    }
                }
            }
        }
        if self.draining && self.accept_op.is_none() {
            self.take_backlog();
        }
    }

    /// Shutdown, once no accept is in flight: the clients already waiting in this worker's
    /// listen backlog completed their handshake and may have sent bytes. Closing the listener
    /// would reset them and lose those bytes, so take them in without waiting (non-blocking
    /// accepts until none is left, at most [`BACKLOG_MAX`]) and drain them like every other
    /// connection; then close the listener.
    fn take_backlog(&mut self) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let sock = socket2::SockRef::from(&*listener);
        if let Err(e) = sock.set_nonblocking(true) {
            warn!(
                worker = self.id,
                "cannot take the listen backlog at shutdown: {e}"
            );
            return;
        }
        let mut taken = 0usize;
        while taken < BACKLOG_MAX {
            match sock.accept() {
                Ok((socket, peer)) => {
                    taken += 1;
                    self.stats.accepted += 1;
                    self.gate.take_anyway();
                    self.new_conn(Accepted {
                        fd: socket.into(),
                        peer: peer.as_socket(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    warn!(
                        worker = self.id,
                        "taking the listen backlog at shutdown: {e}"
                    );
                    break;
                }
            }
        }
        if taken > 0 {
            info!(
                worker = self.id,
                taken, "took the clients waiting in the listen backlog, to drain them too"
            );
        }
    }

    /// A place may have freed: the parked connections take what is free, then accepting
    /// resumes.
    fn on_slot_free(&mut self) {
        while !self.parked.is_empty() {
            if !self.gate.reserve(self.id) {
                return;
            }
            debug!(
                worker = self.id,
                "a place freed: serving a parked connection"
            );
            if let Some(parked) = self.parked.pop_front() {
                self.new_conn(parked);
            }
        }
        self.submit_accept();
    }

    fn new_conn(&mut self, accepted: Accepted) {
        let Accepted { fd, peer } = accepted;
        // Echo replies are small and immediate: do not let Nagle hold them back.
        let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
        let (echo, todo) = MultiEcho::start(self.draining, self.cfg.buffer_size, self.max_chunks);
        let key = self.conns.insert(Conn {
            fd: Some(Rc::new(fd)),
            echo,
            recv_op: None,
            send_op: None,
            peer,
            last_ms: self.now_ms,
        });
        debug!(worker = self.id, key, ?peer, "connection accepted");
        self.apply(key, todo);
    }

    /// Carries out what the echo state machine asked for the connection `key`: cancel, send,
    /// receive, close, in that order.
    fn apply(&mut self, key: u64, todo: Todo<PoolBuf>) {
        let Some(conn) = self.conns.get_mut(key) else {
            if let Some((buf, _)) = todo.send {
                self.port.give_back(buf);
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
        let fd = conn.fd.clone();
        let mut ops: [Option<Op>; 2] = [None, None];
        if let Some((buf, at)) = todo.send {
            let fd = fd
                .clone()
                .expect("a connection that is not closing has its fd");
            ops[0] = Some(Op::SendBuf { fd, buf, at });
        }
        if let Some(mode) = todo.recv {
            let fd = fd
                .clone()
                .expect("a connection that is not closing has its fd");
            ops[1] = Some(match mode {
                RecvMode::Multi => Op::RecvMulti {
                    fd,
                    limit: conn.echo.room(),
                },
                RecvMode::Once { nowait } => Op::RecvBuf { fd, nowait },
            });
        }
        drop(fd);
        for op in ops.into_iter().flatten() {
            let is_send = matches!(op, Op::SendBuf { .. });
            match self.port.submit(key, op) {
                Ok(token) => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        if is_send {
                            conn.send_op = Some(token);
                        } else {
                            conn.recv_op = Some(token);
                        }
                    }
                }
                Err(e) => {
                    error!(
                        worker = self.id,
                        key, "cannot submit an operation: {e}; dropping the connection"
                    );
                    self.drop_conn(key);
                    return;
                }
            }
        }
        if todo.close {
            self.close(key);
        }
    }

    /// Gives the queued buffers back and submits the close; the slot is freed when the close
    /// completes.
    fn close(&mut self, key: u64) {
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
        self.stats.closed += 1;
        self.forget(key);
    }

    fn on_recv(&mut self, key: u64, buf: Option<PoolBuf>, result: io::Result<usize>, more: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            self.stats.stale_completions += 1;
            if let Some(buf) = buf {
                self.port.give_back(buf);
            }
            return;
        };
        if !more {
            conn.recv_op = None;
        }
        let arrived = match (&result, &buf) {
            (Ok(0), _) => Arrived::Eof,
            (Ok(n), Some(buf)) => {
                let n = *n;
                self.stats.bytes_in += n as u64;
                conn.last_ms = self.now_ms;
                if self.cfg.log_messages {
                    log_message(self.id, key, conn.peer, self.port.buf(buf));
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
        let todo = conn.echo.on_recv(arrived, buf, more);
        if arrived == Arrived::NoBuffers && conn.echo.is_starved() {
            self.starved.push_back(key);
        }
        self.apply(key, todo);
    }

    fn on_send(&mut self, key: u64, buf: PoolBuf, result: io::Result<usize>) {
        let Some(conn) = self.conns.get_mut(key) else {
            self.stats.stale_completions += 1;
            self.port.give_back(buf);
            return;
        };
        conn.send_op = None;
        let r = match result {
            Ok(n) => {
                self.stats.bytes_out += n as u64;
                if n > 0 {
                    conn.last_ms = self.now_ms;
                }
                SendResult::Sent(n)
            }
            Err(e) => {
                if !is_cancelled(&e) {
                    debug!(worker = self.id, key, "send failed: {e}");
                    self.stats.conn_errors += 1;
                }
                SendResult::Failed
            }
        };
        let (todo, done) = conn.echo.on_send(r, buf);
        if let Some(buf) = done {
            self.port.give_back(buf);
        }
        self.apply(key, todo);
    }

    fn begin_drain(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.drain_deadline = Some(Instant::now() + self.cfg.drain_timeout);
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
                let todo = conn.echo.drain();
                cancels += usize::from(todo.cancel_recv);
                self.apply(key, todo);
            }
        }
        info!(
            worker = self.id,
            connections = self.conns.len(),
            idle = cancels,
            "shutting down: echoing what was received, then closing"
        );
    }

    fn force_all(&mut self) {
        self.forced = true;
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
                    let todo = conn.echo.force();
                    self.apply(key, todo);
                }
            }
        }
    }
}

/// Prints a received chunk the way the article's server console did, lossy and truncated.
/// Shared with the blocking models.
pub(crate) fn log_message(worker: usize, key: u64, peer: Option<SocketAddr>, bytes: &[u8]) {
    use std::io::Write;
    const MAX: usize = 80;
    let shown = &bytes[..bytes.len().min(MAX)];
    let text: String = String::from_utf8_lossy(shown)
        .chars()
        .flat_map(char::escape_debug)
        .collect();
    let more = if bytes.len() > MAX { "..." } else { "" };
    let peer = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "worker {worker}: {peer} (conn {}): {} bytes: \"{text}\"{more}",
        key & 0xffff_ffff,
        bytes.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringport_port::{BackendChoice, PortConfig};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::OwnedFd;

    fn pair() -> (OwnedFd, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (s.into(), c)
    }

    /// A worker of `cfg` with a buffer pool, alone at a gate of 10 connections.
    fn worker(cfg: &ServeConfig) -> Worker<'_> {
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

    fn only_key(w: &mut Worker<'_>) -> u64 {
        let keys: Vec<u64> = w.conns.iter_mut().map(|(k, _)| k).collect();
        assert_eq!(keys.len(), 1);
        keys[0]
    }

    /// A completion that names a slot's old generation (the connection it belonged to is gone
    /// and the slot holds a new one) is counted as stale and never reaches the new connection:
    /// not its bytes, not its close.
    #[test]
    fn a_completion_for_an_old_generation_is_dropped_counted_and_never_applied() {
        for backend in [BackendChoice::Uring, BackendChoice::Epoll] {
            let cfg = ServeConfig {
                port_config: PortConfig {
                    backend,
                    ..PortConfig::default()
                },
                ..ServeConfig::default()
            };
            let mut w = worker(&cfg);

            let (fd, _old_client) = pair();
            assert!(w.gate.reserve(0));
            w.new_conn(Accepted { fd, peer: None });
            let old = only_key(&mut w);
            // The slot is freed (as after its close's completion) and taken by a new connection.
            assert!(w.forget(old));
            let (fd, mut client) = pair();
            assert!(w.gate.reserve(0));
            w.new_conn(Accepted { fd, peer: None });
            let new = only_key(&mut w);
            assert_eq!(old & 0xffff_ffff, new & 0xffff_ffff, "the slot was reused");
            assert_ne!(old, new, "with a new generation");

            let stale = |outcome| Completion { key: old, outcome };
            w.on_completion(stale(Outcome::Received {
                buf: b"stale".to_vec(),
                result: Ok(5),
            }));
            w.on_completion(stale(Outcome::Sent {
                buf: b"stale".to_vec(),
                at: 0,
                result: Ok(5),
            }));
            w.on_completion(stale(Outcome::Closed(Ok(()))));
            assert_eq!(w.stats.stale_completions, 3, "{backend}");
            assert_eq!(
                (w.stats.bytes_in, w.stats.bytes_out, w.stats.closed),
                (0, 0, 0)
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
                for c in done.drain(..) {
                    w.on_completion(c);
                }
            }
            let mut back = [0u8; 5];
            client.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"fresh");
            assert_eq!(w.stats.stale_completions, 3);
        }
    }

    /// The idle timeout closes a connection that sends nothing through the port (its receive
    /// is cancelled, the close follows) and frees its slot and its place at the gate.
    #[test]
    fn the_idle_scan_cancels_through_the_port_and_frees_the_slot_after_the_close() {
        for backend in [BackendChoice::Uring, BackendChoice::Epoll] {
            let cfg = ServeConfig {
                port_config: PortConfig {
                    backend,
                    ..PortConfig::default()
                },
                idle_timeout: Some(Duration::from_millis(100)),
                ..ServeConfig::default()
            };
            let mut w = worker(&cfg);
            let (fd, mut client) = pair();
            assert!(w.gate.reserve(0));
            w.new_conn(Accepted { fd, peer: None });
            let mut done = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !w.conns.is_empty() {
                assert!(Instant::now() < deadline, "not closed on {backend}");
                w.now_ms = u64::try_from(w.epoch.elapsed().as_millis()).unwrap();
                w.on_tick();
                w.port
                    .wait(&mut done, Some(Duration::from_millis(20)))
                    .unwrap();
                for c in done.drain(..) {
                    w.on_completion(c);
                }
            }
            assert_eq!(w.stats.idle_closed, 1);
            assert_eq!(w.stats.closed, 1);
            assert_eq!(w.gate.taken(), 0, "its place is free");
            assert_eq!(w.port.in_flight(), 0, "every completion reaped");
            let mut b = [0u8; 1];
            assert_eq!(client.read(&mut b).unwrap(), 0, "closed for real");
        }
    }
}
