//! The completion model: the article's ServerIOCP on a completion port per worker thread.
//!
//! Each worker owns a [`Port`], a `SO_REUSEPORT` listener with one accept in flight, and a table
//! of connections. A connection always has exactly one operation in flight (receive, send or
//! close), chosen by its [`Echo`] state machine; the worker only carries the steps out. One turn
//! of the loop is one [`Port::wait`]: everything queued is submitted and every ready completion
//! reaped, in one system call.
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
//! 2. The accept in flight is cancelled and the listener closed: no new connections.
//! 3. Every connection is told to drain ([`Echo::drain`]): receives that wait are cancelled;
//!    what was already received is echoed; receives no longer wait; connections with nothing
//!    left close.
//! 4. At the drain deadline, whatever remains is cancelled and closed ([`Echo::force`]).
//! 5. The loop ends when no connection and no accept is left; the worker returns its counters.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringport_port::{Accepted, Completion, Op, Outcome, Port, SharedFd, Token};
use socket2::Socket;
use tracing::{debug, error, info, warn};

use crate::echo::{Echo, RecvResult, SendResult, Step};
use crate::shutdown::Shutdown;
use crate::slots::Slots;
use crate::summary::{Summary, WorkerStats};
use crate::{listener, Running, ServeConfig, ServeError};

/// The key of accept operations.
pub const ACCEPT_KEY: u64 = u64::MAX;
/// The value posted to a worker to start its graceful shutdown.
pub const SHUTDOWN: u64 = 1;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long past the drain deadline a worker waits for cancelled operations before giving up.
const HARD_STOP: Duration = Duration::from_secs(2);
/// Transient accept errors in a row before accepting pauses anyway.
const TRANSIENT_RETRIES: u32 = 16;
/// Spare connection buffers a worker keeps for reuse.
const POOL_MAX: usize = 256;

const ECANCELED: i32 = 125;
const EINTR: i32 = 4;
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;
const ENOBUFS: i32 = 105;
const ENOMEM: i32 = 12;

struct Conn {
    /// The socket; taken when the close is submitted.
    fd: Option<SharedFd>,
    /// The connection's one buffer; `None` while an operation owns it.
    buf: Option<Vec<u8>>,
    echo: Echo,
    /// The operation in flight.
    op: Option<Token>,
    peer: Option<SocketAddr>,
}

struct Worker<'a> {
    id: usize,
    cfg: &'a ServeConfig,
    port: Port,
    listener: Option<SharedFd>,
    accept_op: Option<Token>,
    accept_retry: Option<Instant>,
    backoff: Duration,
    accept_trouble: bool,
    accept_failures: u32,
    conns: Slots<Conn>,
    pool: Vec<Vec<u8>>,
    draining: bool,
    drain_deadline: Option<Instant>,
    forced: bool,
    stats: WorkerStats,
}

/// Binds the listeners, starts the workers and returns once every worker has its port.
pub fn start(cfg: &ServeConfig, shutdown: Shutdown) -> Result<Running, ServeError> {
    let workers = cfg.workers.max(1);
    let (listeners, addr) = listener::bind_listeners(cfg.addr(), workers, cfg.backlog)?;
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
        let handle = std::thread::Builder::new()
            .name(format!("ringport-w{id}"))
            .spawn(move || worker_main(id, &cfg, listener, ready))
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
    info!(%addr, workers, backend = %backend, "completion model ready");
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
    Ok(Running::new(addr, Box::new(join)))
}

type Ready = mpsc::Sender<Result<(ringport_port::Poster, String), ServeError>>;

fn worker_main(id: usize, cfg: &ServeConfig, listener: Socket, ready: Ready) -> WorkerStats {
    let port = match Port::new(&cfg.port_config) {
        Ok(port) => port,
        Err(e) => {
            let _ = ready.send(Err(ServeError::Port(e)));
            return WorkerStats::default();
        }
    };
    let _ = ready.send(Ok((port.poster(), port.describe())));
    drop(ready);
    let worker = Worker {
        id,
        cfg,
        port,
        listener: Some(Rc::new(listener.into())),
        accept_op: None,
        accept_retry: None,
        backoff: BACKOFF_MIN,
        accept_trouble: false,
        accept_failures: 0,
        conns: Slots::default(),
        pool: Vec::new(),
        draining: false,
        drain_deadline: None,
        forced: false,
        stats: WorkerStats::default(),
    };
    worker.run()
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
        }
        let port_stats = self.port.stats();
        self.stats.waits = port_stats.waits;
        self.stats.completions = port_stats.completions;
        self.stats.stale_completions += port_stats.stale;
        debug!(worker = self.id, stats = ?self.stats, "worker done");
        self.stats
    }

    fn next_deadline(&self) -> Option<Instant> {
        let drain = self
            .drain_deadline
            .map(|d| if self.forced { d + HARD_STOP } else { d });
        match (self.accept_retry, drain) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_completion(&mut self, c: Completion) {
        match c.outcome {
            Outcome::Posted if c.key == SHUTDOWN => self.begin_drain(),
            Outcome::Accepted(result) => self.on_accept(result),
            Outcome::Received { buf, result } => self.on_recv(c.key, buf, result),
            Outcome::Sent { buf, result, .. } => self.on_send(c.key, buf, result),
            Outcome::Closed(_) => {
                if self.conns.remove(c.key).is_some() {
                    self.stats.closed += 1;
                } else {
                    self.stats.stale_completions += 1;
                }
            }
            other => debug!(worker = self.id, ?other, "unexpected completion"),
        }
    }

    fn submit_accept(&mut self) {
        if self.draining || self.accept_op.is_some() {
            return;
        }
        let Some(listener) = self.listener.clone() else {
            return;
        };
        match self.port.submit(ACCEPT_KEY, Op::Accept { listener }) {
            Ok(token) => self.accept_op = Some(token),
            Err(e) => {
                error!(worker = self.id, "cannot submit an accept: {e}");
                self.pause_accepts();
            }
        }
    }

    fn pause_accepts(&mut self) {
        self.accept_retry = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn on_accept(&mut self, result: io::Result<Accepted>) {
        self.accept_op = None;
        match result {
            Ok(accepted) => {
                if self.accept_trouble {
                    info!(worker = self.id, "accepting again");
                }
                self.accept_trouble = false;
                self.accept_failures = 0;
                self.backoff = BACKOFF_MIN;
                self.stats.accepted += 1;
                self.new_conn(accepted);
                self.submit_accept();
            }
            Err(e) if e.raw_os_error() == Some(ECANCELED) => {}
            Err(e) => {
                self.stats.accept_errors += 1;
                self.accept_failures += 1;
                let scarce = matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM));
                if scarce || self.accept_failures > TRANSIENT_RETRIES {
                    // Out of descriptors or memory (or failing again and again): accepting at
                    // once would fail again, and spin. Pause, doubling up to a second; the
                    // connections already open keep being served meanwhile.
                    if !self.accept_trouble {
                        warn!(
                            worker = self.id,
                            "accept failed: {e}; pausing accepts (back-off from 100 ms up to 1 s) until one succeeds"
                        );
                    }
                    self.accept_trouble = true;
                    self.pause_accepts();
                } else {
                    // The client gave up (ECONNABORTED), a signal, a protocol error: that one
                    // connection is lost, the next may be fine.
                    debug!(worker = self.id, "accept failed: {e}; accepting the next");
                    self.submit_accept();
                }
            }
        }
        if self.draining && self.accept_op.is_none() {
            self.listener = None;
        }
    }

    fn new_conn(&mut self, accepted: Accepted) {
        let Accepted { fd, peer } = accepted;
        // Echo replies are small and immediate: do not let Nagle hold them back.
        let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
        let buf = self
            .pool
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.cfg.buffer_size));
        let (echo, step) = Echo::start(self.draining);
        let key = self.conns.insert(Conn {
            fd: Some(Rc::new(fd)),
            buf: Some(buf),
            echo,
            op: None,
            peer,
        });
        debug!(worker = self.id, key, ?peer, "connection accepted");
        self.apply(key, step);
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.pool.len() < POOL_MAX && buf.capacity() == self.cfg.buffer_size {
            buf.clear();
            self.pool.push(buf);
        }
    }

    /// Carries out `step` for the connection `key`.
    fn apply(&mut self, key: u64, step: Step) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let op = match step {
            Step::Recv { nowait } => {
                let (Some(fd), Some(mut buf)) = (conn.fd.clone(), conn.buf.take()) else {
                    unreachable!("a connection that is not closing has its fd and buffer");
                };
                buf.clear();
                Op::Recv { fd, buf, nowait }
            }
            Step::Send { at, .. } => {
                let (Some(fd), Some(buf)) = (conn.fd.clone(), conn.buf.take()) else {
                    unreachable!("a connection that is not closing has its fd and buffer");
                };
                Op::Send { fd, buf, at }
            }
            Step::Close => {
                let buf = conn.buf.take();
                let fd = conn.fd.take().expect("closed once");
                if let Some(buf) = buf {
                    self.recycle(buf);
                }
                Op::Close { fd }
            }
        };
        match self.port.submit(key, op) {
            Ok(token) => {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.op = Some(token);
                }
            }
            Err(e) => {
                error!(
                    worker = self.id,
                    key, "cannot submit an operation: {e}; dropping the connection"
                );
                self.stats.conn_errors += 1;
                self.stats.closed += 1;
                self.conns.remove(key);
            }
        }
    }

    fn on_recv(&mut self, key: u64, buf: Vec<u8>, result: io::Result<usize>) {
        let Some(conn) = self.conns.get_mut(key) else {
            self.stats.stale_completions += 1;
            self.recycle(buf);
            return;
        };
        conn.op = None;
        let r = match result {
            Ok(0) => RecvResult::Eof,
            Ok(n) => {
                self.stats.bytes_in += n as u64;
                if self.cfg.log_messages {
                    log_message(self.id, key, conn.peer, &buf);
                }
                RecvResult::Data(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => RecvResult::WouldBlock,
            Err(e) if matches!(e.raw_os_error(), Some(ECANCELED | EINTR)) => RecvResult::Cancelled,
            Err(e) => {
                debug!(worker = self.id, key, "receive failed: {e}");
                self.stats.conn_errors += 1;
                RecvResult::Failed
            }
        };
        conn.buf = Some(buf);
        let step = conn.echo.on_recv(r);
        self.apply(key, step);
    }

    fn on_send(&mut self, key: u64, buf: Vec<u8>, result: io::Result<usize>) {
        let Some(conn) = self.conns.get_mut(key) else {
            self.stats.stale_completions += 1;
            self.recycle(buf);
            return;
        };
        conn.op = None;
        let r = match result {
            Ok(n) => {
                self.stats.bytes_out += n as u64;
                SendResult::Sent(n)
            }
            Err(e) => {
                if e.raw_os_error() != Some(ECANCELED) {
                    debug!(worker = self.id, key, "send failed: {e}");
                    self.stats.conn_errors += 1;
                }
                SendResult::Failed
            }
        };
        conn.buf = Some(buf);
        let step = conn.echo.on_send(r);
        self.apply(key, step);
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
            None => self.listener = None,
        }
        let mut cancels = 0;
        for (_, conn) in self.conns.iter_mut() {
            if conn.echo.drain() {
                if let Some(token) = conn.op {
                    let _ = self.port.cancel(token);
                    cancels += 1;
                }
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
        for (_, conn) in self.conns.iter_mut() {
            if conn.echo.force() {
                self.stats.forced_closes += 1;
                if let Some(token) = conn.op {
                    let _ = self.port.cancel(token);
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
