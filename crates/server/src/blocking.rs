//! What the two blocking models ([`threaded`](crate::threaded) and [`single`](crate::single))
//! share: the echo loop of one connection on a blocking socket, the table of open connections
//! that shutdown reaches into, the accept loop with its back-off, and the drain supervisor.
//!
//! # Waking blocked threads (no `unsafe`, no poll)
//!
//! A blocking model's threads sleep in `accept`, `read` or `write`. Shutdown reaches them so:
//!
//! - **`accept`**: [`Shutdown::trigger`] connects once to the server's own address (the
//!   *wake-up connection*). The accept returns, the loop sees the flag and stops waiting for
//!   clients. The wake-up connection is recognised by its address and closed, never counted.
//!   `shutdown(SHUT_RD)` on the listener would wake `accept` too, but on Linux it also resets
//!   every connection still in the backlog, which would lose what those clients already sent.
//! - **`read`**: every open connection gets `shutdown(SHUT_RD)`. On Linux this wakes a blocked
//!   receive, and from then on a receive never waits: it returns the bytes already queued, then
//!   0. That is exactly the completion model's drain (`Recv { nowait: true }`, closing on
//!   "would block"): what was received is echoed, nothing more is waited for.
//! - **`write`** (a client that does not read its echo): left alone until the drain deadline,
//!   then `shutdown(SHUT_RDWR)` fails it with `EPIPE` and the connection closes (a forced close).
//!
//! On Windows neither holds: `shutdown(SD_RECEIVE)` wakes no blocked receive (and resets a TCP
//! connection that has data queued), `shutdown(SD_BOTH)` no blocked send. There a receive waits
//! in slices of `RECV_SLICE` (100 ms) and looks at the drain between them (a receive that times out
//! received nothing, so nothing is lost); once draining, receives are non-blocking (the bytes
//! already queued, then "would block"); the forced close cancels the blocked send
//! (`CancelIoEx`, `ringport_port::os::cancel_io`).
//!
//! # Limits
//!
//! The [`Registry`] refuses a connection beyond `max_connections` or beyond `max_per_ip` from
//! one address (the model closes it at once and counts it). The idle and write timeouts are the
//! socket's own (`SO_RCVTIMEO`, `SO_SNDTIMEO`): a receive that waits longer than the idle timeout
//! for the peer's bytes, or a send that cannot progress for the write timeout, closes the
//! connection: no timer thread, nothing per message.
//!
//! # The backlog at shutdown
//!
//! Clients that completed the handshake before the shutdown sit in the listen backlog and may
//! already have sent data (for the single model that is every client but the one being served).
//! Stopping "accepting" means no longer *waiting* for clients: the backlog present at shutdown is
//! still taken in (non-blocking accepts until none is left, within the drain deadline) and
//! drained like every other connection, so those clients get their echo and a clean close.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown as Direction, SocketAddr, TcpListener, TcpStream,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tracing::{debug, error, info, warn};

use crate::accept_policy::{AcceptPolicy, Verdict};
use crate::echo::{Echo, RecvResult, SendResult, Step};
use crate::limits::PerIp;
use crate::shutdown::Shutdown;
use crate::summary::{Live, Snapshot, Summary, WorkerStats};

/// What the blocking models run on, as the log, the summary and the ready line say.
const BLOCKING: &str = "blocking sockets";
use crate::{listener, Model, Ready, Running, ServeConfig, ServeError};

/// How long past the drain deadline the server waits for forced connections to let go.
pub(crate) const HARD_STOP: Duration = Duration::from_secs(2);

/// Why [`Registry::register`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_connections` are open.
    Full,
    /// `max_per_ip` are open from the connection's address.
    PerIp,
    /// The drain deadline has passed: nothing more is served.
    Forced,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Arc<TcpStream>>,
    next_id: u64,
    /// The server loop has ended (the supervisor may stop waiting for a shutdown).
    finished: bool,
}

/// The open connections of a blocking server, so that shutdown can reach their sockets, with the
/// server's counters.
pub(crate) struct Registry {
    max: usize,
    draining: AtomicBool,
    forced: AtomicBool,
    table: Mutex<Table>,
    /// Signalled when a connection leaves, when the drain starts and when the server finishes.
    changed: Condvar,
    stats: Mutex<WorkerStats>,
    per_ip: PerIp,
    /// The accept loop's counters, published after each accept for live readers.
    acceptor: Mutex<WorkerStats>,
    /// Bytes received and echoed so far, connections still open included (live readers).
    live_in: AtomicU64,
    live_out: AtomicU64,
}

/// A registered connection; leaving the table when dropped.
pub(crate) struct Registered {
    registry: Arc<Registry>,
    id: u64,
    ip: Option<IpAddr>,
}

impl Registered {
    /// The connection's number (1, 2, ...), shown by `--log-messages`.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.per_ip.leave(self.ip);
        let mut table = self.registry.lock();
        table.conns.remove(&self.id);
        if table.conns.is_empty() {
            self.registry.changed.notify_all();
        }
    }
}

impl Registry {
    /// A registry that holds at most `max` connections (at least 1), and at most `max_per_ip`
    /// from one address (`0`: no limit).
    #[cfg(test)]
    pub(crate) fn new(max: usize, max_per_ip: usize) -> Arc<Registry> {
        Registry::with_per_ip(max, PerIp::new(max_per_ip))
    }

    /// A registry that holds at most `max` connections (at least 1), under `per_ip`.
    pub(crate) fn with_per_ip(max: usize, per_ip: PerIp) -> Arc<Registry> {
        Arc::new(Registry {
            per_ip,
            acceptor: Mutex::new(WorkerStats::default()),
            live_in: AtomicU64::new(0),
            live_out: AtomicU64::new(0),
            max: max.max(1),
            draining: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            table: Mutex::new(Table::default()),
            changed: Condvar::new(),
            stats: Mutex::new(WorkerStats::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `stream` to the table, unless it is full or the drain time is up. A connection
    /// registered while draining gets its `SHUT_RD` at once.
    pub(crate) fn register(
        self: &Arc<Self>,
        stream: &Arc<TcpStream>,
    ) -> Result<Registered, Refused> {
        let ip = stream.peer_addr().ok().map(|p| p.ip());
        let mut table = self.lock();
        if self.forced.load(Ordering::SeqCst) {
            return Err(Refused::Forced);
        }
        if table.conns.len() >= self.max {
            return Err(Refused::Full);
        }
        if !self.per_ip.admit(ip) {
            return Err(Refused::PerIp);
        }
        table.next_id += 1;
        let id = table.next_id;
        table.conns.insert(id, stream.clone());
        #[cfg(unix)]
        if self.draining.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Direction::Read);
        }
        Ok(Registered {
            registry: self.clone(),
            id,
            ip,
        })
    }

    /// Connections open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Whether the graceful shutdown has started.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether the drain deadline has passed.
    pub(crate) fn is_forced(&self) -> bool {
        self.forced.load(Ordering::SeqCst)
    }

    /// Starts the drain: every open connection stops waiting for data (`SHUT_RD`). Returns how
    /// many were open. Cheap and non-blocking: it runs in whichever thread triggers the shutdown.
    pub(crate) fn drain(&self) -> usize {
        let table = self.lock();
        self.draining.store(true, Ordering::SeqCst);
        // On Windows the receives look at the flag between their slices (see the module).
        #[cfg(unix)]
        for stream in table.conns.values() {
            let _ = stream.shutdown(Direction::Read);
        }
        self.changed.notify_all();
        table.conns.len()
    }

    /// The drain time is up: every open connection is shut down both ways (a blocked write
    /// fails at once) and no connection is registered any more. Returns how many were open.
    pub(crate) fn force(&self) -> usize {
        let table = self.lock();
        self.draining.store(true, Ordering::SeqCst);
        self.forced.store(true, Ordering::SeqCst);
        for stream in table.conns.values() {
            let _ = stream.shutdown(Direction::Both);
            // Windows: shutdown wakes no blocked send; cancelling it does.
            #[cfg(windows)]
            let _ = ringport_port::os::cancel_io(&**stream);
        }
        table.conns.len()
    }

    /// The server takes no more connections (its listener is closed): once the open ones have
    /// closed, it is done. A supervisor still waiting for a drain returns.
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.changed.notify_all();
    }

    /// Waits until the drain starts or the server finishes; true if the drain started.
    pub(crate) fn wait_for_drain(&self) -> bool {
        let mut table = self.lock();
        loop {
            if self.is_draining() {
                return true;
            }
            if table.finished {
                return false;
            }
            table = self.changed.wait(table).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Sleeps for `pause`, or less if the drain starts meanwhile.
    pub(crate) fn pause(&self, pause: Duration) {
        let deadline = Instant::now() + pause;
        let mut table = self.lock();
        while !self.is_draining() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            table = self
                .changed
                .wait_timeout(table, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until the server has stopped taking connections ([`finish`](Registry::finish))
    /// and none is open, at most until `deadline`; true if so.
    pub(crate) fn wait_done(&self, deadline: Instant) -> bool {
        let mut table = self.lock();
        loop {
            if table.finished && table.conns.is_empty() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            table = self
                .changed
                .wait_timeout(table, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Adds a connection's counters to the server's.
    pub(crate) fn add_stats(&self, stats: &WorkerStats) {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(stats);
    }

    /// The server's counters so far.
    pub(crate) fn stats(&self) -> WorkerStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the accept loop's counters for live readers.
    pub(crate) fn publish_acceptor(&self, stats: &WorkerStats) {
        *self.acceptor.lock().unwrap_or_else(|p| p.into_inner()) = *stats;
    }

    /// The counters now: the closed connections', the accept loop's, and the bytes of the
    /// connections still open.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut totals = self.stats();
        totals.add(&self.acceptor.lock().unwrap_or_else(|p| p.into_inner()));
        totals.bytes_in = self.live_in.load(Ordering::Relaxed);
        totals.bytes_out = self.live_out.load(Ordering::Relaxed);
        Snapshot {
            open: self.len() as u64,
            totals,
        }
    }
}

/// What a blocking connection needs to know besides its socket.
pub(crate) struct ConnCtx<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) buffer_size: usize,
    pub(crate) log_messages: bool,
    /// Printed by `--log-messages` as the worker (the thread serving the connection).
    pub(crate) worker: usize,
    pub(crate) conn: u64,
    pub(crate) peer: Option<SocketAddr>,
    /// Close a connection whose peer sends nothing for this long.
    pub(crate) idle_timeout: Option<Duration>,
    /// Close a connection whose echo cannot progress for this long.
    pub(crate) write_timeout: Option<Duration>,
}

/// Serves one connection until it closes, with the completion model's rules (the [`Echo`]
/// state machine): one buffer, no receive before the previous chunk is fully echoed, partial
/// writes continued, close after EOF once everything is echoed, errors end this connection only,
/// and the drain of [`Registry::drain`]. Returns the connection's counters (`closed` is 1).
pub(crate) fn serve_conn(stream: &TcpStream, ctx: &ConnCtx<'_>) -> WorkerStats {
    let mut stats = WorkerStats {
        closed: 1,
        ..WorkerStats::default()
    };
    // Echo replies are small and immediate: do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    // The timeouts are the socket's own: a receive or send that waits longer fails with
    // EAGAIN. Zero would mean "no timeout" to the kernel: it is filtered out.
    let idle_timeout = ctx.idle_timeout.filter(|d| !d.is_zero());
    let write_timeout = ctx.write_timeout.filter(|d| !d.is_zero());
    let _ = stream.set_read_timeout(idle_timeout);
    let _ = stream.set_write_timeout(write_timeout);
    let mut buf = vec![0u8; ctx.buffer_size.max(1)];
    #[cfg(unix)]
    let mut reader = stream;
    let mut writer = stream;
    let mut drained = false;
    let (mut echo, mut step) = Echo::start(ctx.registry.is_draining());
    loop {
        step = match step {
            Step::Recv { .. } => {
                if !drained && ctx.registry.is_draining() {
                    // Idempotent with the drain's own shutdown; done here too so that this
                    // receive cannot wait, whichever thread got to the socket first.
                    drained = true;
                    echo.drain();
                    #[cfg(unix)]
                    let _ = stream.shutdown(Direction::Read);
                }
                #[cfg(unix)]
                let read = reader.read(&mut buf);
                #[cfg(windows)]
                let read = read_in_slices(stream, &mut buf, ctx.registry, idle_timeout, drained);
                let result = match read {
                    Ok(0) => RecvResult::Eof,
                    Ok(n) => {
                        stats.bytes_in += n as u64;
                        ctx.registry.live_in.fetch_add(n as u64, Ordering::Relaxed);
                        if ctx.log_messages {
                            crate::messages::log_message(ctx.worker, ctx.conn, ctx.peer, &buf[..n]);
                        }
                        RecvResult::Data(n)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => RecvResult::Cancelled,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if idle_timeout.is_some() && !ctx.registry.is_draining() {
                            // SO_RCVTIMEO: the peer sent nothing for the idle timeout.
                            debug!(conn = ctx.conn, "idle timeout: closing the connection");
                            stats.idle_closed += 1;
                            RecvResult::Failed
                        } else {
                            RecvResult::WouldBlock
                        }
                    }
                    Err(e) => {
                        if !ctx.registry.is_forced() {
                            debug!(conn = ctx.conn, "receive failed: {e}");
                            stats.conn_errors += 1;
                            stats.conn_error_kinds.count(&e);
                        }
                        RecvResult::Failed
                    }
                };
                echo.on_recv(result)
            }
            Step::Send { at, len } => match writer.write(&buf[at..len]) {
                Ok(n) => {
                    stats.bytes_out += n as u64;
                    ctx.registry.live_out.fetch_add(n as u64, Ordering::Relaxed);
                    echo.on_send(SendResult::Sent(n))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if write_timeout.is_some()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    // SO_SNDTIMEO: the peer did not read its echo for the write timeout.
                    debug!(conn = ctx.conn, "write timeout: closing the connection");
                    stats.write_timeouts += 1;
                    echo.on_send(SendResult::Failed)
                }
                Err(e) => {
                    if !ctx.registry.is_forced() {
                        debug!(conn = ctx.conn, "send failed: {e}");
                        stats.conn_errors += 1;
                        stats.conn_error_kinds.count(&e);
                    }
                    echo.on_send(SendResult::Failed)
                }
            },
            Step::Close => return stats,
        };
    }
}

/// How long a receive waits at a time on Windows before looking at the drain (see the module).
#[cfg(windows)]
const RECV_SLICE: Duration = Duration::from_millis(100);

/// A receive on Windows: once `drained`, without waiting (the bytes queued, or "would block");
/// before, in slices of [`RECV_SLICE`], ending with `Interrupted` (a cancelled receive: the
/// caller looks again) when the drain starts and with `TimedOut` after `idle_timeout`.
#[cfg(windows)]
fn read_in_slices(
    mut stream: &TcpStream,
    buf: &mut [u8],
    registry: &Registry,
    idle_timeout: Option<Duration>,
    drained: bool,
) -> io::Result<usize> {
    if drained {
        stream.set_nonblocking(true)?;
        let read = stream.read(buf);
        stream.set_nonblocking(false)?;
        return read;
    }
    let start = Instant::now();
    loop {
        let left = idle_timeout.map_or(RECV_SLICE, |t| t.saturating_sub(start.elapsed()));
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left.min(RECV_SLICE)))?;
        match stream.read(buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if registry.is_draining() {
                    return Err(io::ErrorKind::Interrupted.into());
                }
            }
            other => return other,
        }
    }
}

/// The blocking listener and what wakes it.
pub(crate) struct Acceptor {
    listener: TcpListener,
    local: SocketAddr,
    /// The local address of the wake-up connection, once made.
    waker: Arc<Mutex<Option<SocketAddr>>>,
    policy: AcceptPolicy,
}

/// What [`Acceptor::accept`] produced.
pub(crate) enum Accepted {
    /// A client.
    Conn(TcpStream, SocketAddr),
    /// Nothing (the wake-up connection, a signal): look at the shutdown flag and call again.
    Nothing,
    /// No client is waiting (only once [`Acceptor::stop_waiting`] was called).
    Empty,
    /// The accept failed; it was counted, logged and paused for as needed.
    Failed,
}

impl Acceptor {
    /// Wraps a bound, listening, blocking socket.
    pub(crate) fn new(listener: Socket, local: SocketAddr) -> Acceptor {
        Acceptor {
            listener: listener.into(),
            local,
            waker: Arc::new(Mutex::new(None)),
            policy: AcceptPolicy::new(None),
        }
    }

    /// A function that wakes a blocked [`accept`](Acceptor::accept) by connecting to the
    /// listener once. Meant for [`Shutdown::on_trigger`](crate::Shutdown::on_trigger): it does
    /// not block (the connection completes in the kernel, from the backlog).
    pub(crate) fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        let target = wake_target(self.local);
        let slot = self.waker.clone();
        move || {
            if let Err(e) = wake(target, &slot) {
                warn!("cannot wake the accept loop ({e}); it stops at the next connection attempt");
            }
        }
    }

    /// Takes the backlog without waiting from now on.
    pub(crate) fn stop_waiting(&self) {
        let _ = self.listener.set_nonblocking(true);
    }

    /// Accepts one connection. Failed accepts are counted and dealt with by the
    /// [accept policy](crate::accept_policy) (a pause ends early when the drain starts).
    pub(crate) fn accept(&mut self, registry: &Registry, stats: &mut WorkerStats) -> Accepted {
        match self.listener.accept() {
            Ok((stream, peer)) => {
                self.policy.succeeded();
                let is_waker = {
                    let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner());
                    *waker == Some(peer)
                };
                if is_waker {
                    return Accepted::Nothing;
                }
                stats.accepted += 1;
                Accepted::Conn(stream, peer)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Empty,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Accepted::Nothing,
            Err(e) => {
                stats.accept_errors += 1;
                if let Verdict::Pause(pause) = self.policy.failed(&e) {
                    if !registry.is_draining() {
                        registry.pause(pause);
                    }
                }
                Accepted::Failed
            }
        }
    }
}

/// Where the wake-up connection goes: the listener's address, or loopback for a wildcard bind.
fn wake_target(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

fn wake(target: SocketAddr, slot: &Mutex<Option<SocketAddr>>) -> io::Result<()> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    let any = match target {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    // Bind first, so the acceptor knows the wake-up connection's address before it arrives.
    socket.bind(&any.into())?;
    let mut local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("no local address"))?;
    if local.ip().is_unspecified() {
        local.set_ip(target.ip());
    }
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(local);
    socket.connect_timeout(&target.into(), Duration::from_secs(1))?;
    Ok(())
}

/// Waits for the drain to start, then until the server is done ([`Registry::wait_done`]) or
/// `drain_timeout` has passed, then forces the remaining connections closed. Returns the number
/// of forced closes. Returns 0 at once if the server finishes without a drain.
pub(crate) fn supervise_drain(registry: &Registry, drain_timeout: Duration, model: &str) -> u64 {
    if !registry.wait_for_drain() {
        return 0;
    }
    let deadline = Instant::now() + drain_timeout;
    info!(
        model,
        connections = registry.len(),
        "shutting down: echoing what was received, then closing"
    );
    if registry.wait_done(deadline) {
        return 0;
    }
    let n = registry.force();
    if n > 0 {
        warn!(
            model,
            connections = n,
            "drain timeout: closing the connections that are still busy"
        );
    }
    n as u64
}

/// What differs between the blocking models: what happens to an accepted client.
pub(crate) trait BlockingModel {
    /// Takes an accepted client: serves it (single) or hands it to a thread (threaded). Counts
    /// refusals in `stats`.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, stats: &mut WorkerStats);
    /// Called once at the end, after the listener is closed; `all_closed` tells whether every
    /// connection has closed (otherwise some are stuck even after being forced).
    fn finish(self, all_closed: bool);
}

/// Binds the listener and starts a blocking model: the server thread (accept loop, then the
/// backlog at shutdown) and the drain supervisor. `make` builds the model in the server thread.
pub(crate) fn start<M, F>(
    cfg: &ServeConfig,
    shutdown: Shutdown,
    model: Model,
    max_connections: usize,
    max_per_ip: usize,
    make: F,
) -> Result<Running, ServeError>
where
    M: BlockingModel,
    F: FnOnce(Arc<Registry>) -> M + Send + 'static,
{
    let name = model.name();
    let (mut listeners, addr) = listener::bind_listeners(cfg.addr(), 1, cfg.backlog)?;
    let socket = listeners
        .pop()
        .ok_or_else(|| ServeError::Io("binding".into(), io::Error::other("no listener")))?;
    let mut acceptor = Acceptor::new(socket, addr);
    let wake = acceptor.waker();
    let registry = Registry::with_per_ip(
        max_connections,
        PerIp::with_loopback(max_per_ip, cfg.max_per_ip_loopback),
    );
    let drain_timeout = cfg.drain_timeout;

    let reg = registry.clone();
    let supervisor = std::thread::Builder::new()
        .name("ringport-drain".into())
        .spawn(move || supervise_drain(&reg, drain_timeout, name))
        .map_err(|e| ServeError::Io("cannot start the drain supervisor thread".into(), e))?;

    let reg = registry.clone();
    let server = std::thread::Builder::new()
        .name(format!("ringport-{name}"))
        .spawn(move || {
            let mut model = make(reg.clone());
            let mut stats = WorkerStats::default();
            while !reg.is_draining() {
                if let Accepted::Conn(stream, peer) = acceptor.accept(&reg, &mut stats) {
                    model.admit(stream, peer, &mut stats);
                }
                reg.publish_acceptor(&stats);
            }
            // Shutdown: take in the clients already in the backlog, without waiting for more.
            let deadline = Instant::now() + drain_timeout;
            acceptor.stop_waiting();
            while !reg.is_forced() && Instant::now() < deadline {
                match acceptor.accept(&reg, &mut stats) {
                    Accepted::Conn(stream, peer) => model.admit(stream, peer, &mut stats),
                    Accepted::Nothing => {}
                    Accepted::Empty | Accepted::Failed => break,
                }
            }
            drop(acceptor);
            reg.finish();
            let all_closed = reg.wait_done(deadline + HARD_STOP);
            if !all_closed {
                error!(
                    model = name,
                    connections = reg.len(),
                    "connections did not close after being forced; giving up on them"
                );
            }
            model.finish(all_closed);
            reg.publish_acceptor(&WorkerStats::default());
            stats
        });
    let server = match server {
        Ok(handle) => handle,
        Err(e) => {
            registry.finish();
            let _ = supervisor.join();
            return Err(ServeError::Io("cannot start the server thread".into(), e));
        }
    };
    let reg = registry.clone();
    shutdown.on_trigger(move || {
        reg.drain();
        wake();
    });
    info!(%addr, model = name, "{name} model ready (blocking sockets)");
    let started = Instant::now();
    let reg = registry.clone();
    let live = Live::new(move || reg.snapshot());
    let join = move || {
        let served = server.join();
        registry.finish();
        let forced = supervisor.join().map_err(|_| ServeError::WorkerPanicked)?;
        let mut stats = served.map_err(|_| ServeError::WorkerPanicked)?;
        stats.add(&registry.stats());
        stats.forced_closes += forced;
        Ok(Summary {
            model: name.into(),
            backend: BLOCKING.into(),
            uptime: started.elapsed(),
            workers: vec![stats],
        })
    };
    let ready = Ready {
        addr,
        model,
        backend: None,
        backend_detail: BLOCKING.into(),
        workers: None,
        pid: std::process::id(),
    };
    Ok(Running::new(ready, Box::new(join), live))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    #[test]
    fn the_registry_refuses_beyond_its_limit_and_frees_places_on_drop() {
        let reg = Registry::new(2, 0);
        let (a, _pa) = pair();
        let (b, _pb) = pair();
        let (c, _pc) = pair();
        let (a, b, c) = (Arc::new(a), Arc::new(b), Arc::new(c));
        let ra = reg.register(&a).unwrap();
        let rb = reg.register(&b).unwrap();
        assert_ne!(ra.id(), rb.id());
        assert_eq!(reg.register(&c).err(), Some(Refused::Full));
        assert_eq!(reg.len(), 2);
        drop(ra);
        assert_eq!(reg.len(), 1);
        let rc = reg.register(&c).unwrap();
        assert_eq!(reg.force(), 2);
        assert_eq!(reg.register(&a).err(), Some(Refused::Forced));
        drop((rb, rc));
        assert!(!reg.wait_done(Instant::now()), "not finished yet");
        reg.finish();
        assert!(reg.wait_done(Instant::now()));
    }

    /// Serves `server` in a thread called `name` (at most 15 bytes, so that it is the thread's
    /// whole name in `/proc`).
    fn serve_in_thread(
        name: &str,
        reg: &Arc<Registry>,
        server: TcpStream,
        buffer_size: usize,
    ) -> std::thread::JoinHandle<WorkerStats> {
        let reg = reg.clone();
        let named = std::thread::Builder::new().name(name.to_string());
        named
            .spawn(move || {
                let server = Arc::new(server);
                let token = reg.register(&server).unwrap();
                let ctx = ConnCtx {
                    registry: &reg,
                    buffer_size,
                    log_messages: false,
                    worker: 0,
                    conn: token.id(),
                    peer: None,
                    idle_timeout: None,
                    write_timeout: None,
                };
                serve_conn(&server, &ctx)
            })
            .unwrap()
    }

    /// A blocking receive's system calls.
    #[cfg(target_os = "linux")]
    const RECEIVE: [libc::c_long; 3] = [libc::SYS_recvfrom, libc::SYS_recvmsg, libc::SYS_read];
    /// A blocking send's system calls.
    #[cfg(target_os = "linux")]
    const SEND: [libc::c_long; 3] = [libc::SYS_sendto, libc::SYS_sendmsg, libc::SYS_write];
    /// A blocking accept's system calls.
    #[cfg(target_os = "linux")]
    const ACCEPT: [libc::c_long; 2] = [libc::SYS_accept4, libc::SYS_accept];

    /// Waits (at most 5 s) until this process's thread called `name` is blocked in one of the
    /// system calls `calls`: `/proc/self/task/TID/syscall` names one only while the thread
    /// sleeps in it.
    #[cfg(target_os = "linux")]
    #[track_caller]
    fn wait_until_blocked_in(name: &str, calls: &[libc::c_long]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut seen = Vec::new();
            for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if comm.trim_end() != name {
                    continue;
                }
                let syscall =
                    std::fs::read_to_string(task.path().join("syscall")).unwrap_or_default();
                let number = syscall.split_whitespace().next().unwrap_or("");
                if number
                    .parse::<libc::c_long>()
                    .is_ok_and(|n| calls.contains(&n))
                {
                    return;
                }
                seen.push(syscall);
            }
            assert!(
                Instant::now() < deadline,
                "thread {name} not blocked in {calls:?} within 5 s: {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn echoes_in_bounded_chunks_and_closes_after_a_half_close() {
        let reg = Registry::new(10, 0);
        let (mut client, server) = pair();
        let t = serve_in_thread("rp-chunks", &reg, server, 64);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut r = client.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            got
        });
        client.write_all(&data).unwrap();
        client.shutdown(Direction::Write).unwrap();
        assert_eq!(reader.join().unwrap(), data);
        let stats = t.join().unwrap();
        assert_eq!((stats.bytes_in, stats.bytes_out), (100_000, 100_000));
        assert_eq!((stats.closed, stats.conn_errors), (1, 0));
    }

    #[test]
    fn a_drain_wakes_a_blocked_receive_and_echoes_what_was_queued() {
        let reg = Registry::new(10, 0);
        let (mut idle, server) = pair();
        let t_idle = serve_in_thread("rp-idle", &reg, server, 64);
        idle.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        idle.read_exact(&mut back).unwrap();
        // The server thread is blocked in its next receive (on Linux, which the drain must wake;
        // elsewhere a receive waits in slices and looks at the drain between them), then drain.
        #[cfg(target_os = "linux")]
        wait_until_blocked_in("rp-idle", &RECEIVE);
        assert_eq!(reg.drain(), 1);
        let mut rest = Vec::new();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        idle.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(t_idle.join().unwrap().bytes_out, 4);

        // A connection registered while draining echoes what it was sent, then closes.
        let (mut late, server) = pair();
        late.write_all(b"late bytes").unwrap();
        // Its bytes are at the server's socket before it is served.
        let mut peeked = [0u8; 10];
        while server.peek(&mut peeked).unwrap() < peeked.len() {
            std::thread::yield_now();
        }
        let t_late = serve_in_thread("rp-late", &reg, server, 64);
        let mut got = Vec::new();
        late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        late.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"late bytes");
        assert_eq!(t_late.join().unwrap().conn_errors, 0);
    }

    #[test]
    fn force_fails_a_write_blocked_on_a_client_that_does_not_read() {
        let reg = Registry::new(10, 0);
        // Small socket buffers on the way back, so the echo of 64 KiB cannot be written.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        client.connect(&l.local_addr().unwrap().into()).unwrap();
        let mut client: TcpStream = client.into();
        let (server, _) = l.accept().unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        let t = serve_in_thread("rp-no-reader", &reg, server, 64 * 1024);
        client.write_all(&[7u8; 64 * 1024]).unwrap();
        // The server thread is blocked sending the echo the client does not read (on Linux, as
        // /proc shows it; elsewhere, given the time to get there).
        #[cfg(target_os = "linux")]
        wait_until_blocked_in("rp-no-reader", &SEND);
        #[cfg(not(target_os = "linux"))]
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(reg.drain(), 1);
        reg.finish();
        let forced = supervise_drain(&reg, Duration::from_millis(100), "test");
        let stats = t.join().unwrap();
        assert_eq!(forced, 1, "{stats:?}");
        // Some of the 64 KiB was read, not necessarily all: how loopback segments it depends on
        // the receive window (one segment of about 64 KiB, or two or more under memory
        // pressure), and the blocked echo keeps the rest unread.
        assert!(
            stats.bytes_in > 0 && stats.bytes_in <= 64 * 1024,
            "{stats:?}"
        );
        assert!(stats.bytes_out < stats.bytes_in, "{stats:?}");
        assert_eq!(
            stats.conn_errors, 0,
            "a forced close is not a connection error"
        );
    }

    #[test]
    fn the_waker_unblocks_accept_and_is_not_counted() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket
            .bind(&"0.0.0.0:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(16).unwrap();
        let local = socket.local_addr().unwrap().as_socket().unwrap();
        let mut acceptor = Acceptor::new(socket, local);
        let wake = acceptor.waker();
        let reg = Registry::new(1, 0);
        let accepting = reg.clone();
        let (accepted, result) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("rp-acceptor".into())
            .spawn(move || {
                let mut stats = WorkerStats::default();
                let nothing = matches!(acceptor.accept(&accepting, &mut stats), Accepted::Nothing);
                let _ = accepted.send((nothing, stats, acceptor));
            })
            .unwrap();
        // Woken once blocked in its accept (on Linux, as /proc shows it; elsewhere the wake-up
        // connection may be in the backlog first, and is taken and recognised the same way).
        #[cfg(target_os = "linux")]
        wait_until_blocked_in("rp-acceptor", &ACCEPT);
        wake();
        let (nothing, mut stats, mut acceptor) = result
            .recv_timeout(Duration::from_secs(5))
            .expect("the wake-up connection did not end the blocked accept");
        assert!(nothing, "the wake-up connection is nothing to serve");
        assert_eq!(stats.accepted, 0);
        acceptor.stop_waiting();
        assert!(matches!(acceptor.accept(&reg, &mut stats), Accepted::Empty));
    }
}
