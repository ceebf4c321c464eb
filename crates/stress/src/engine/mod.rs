//! The engine: client threads driving many verified connections on completion ports.
//!
//! This module is responsible for running a [`StressConfig`] against a server and producing the
//! [`StressOutcome`]. It owns the sockets and the timing; what to send ([`payload`]), whether an
//! echo is right ([`verify`]), what to measure ([`stats`]) and when to send ([`schedule`]) are
//! decided by the other modules.
//!
//! # Shape
//!
//! `--threads` client threads, each with its own [`Port`] (io_uring rings are single-issuer)
//! and a share of the connections (round-robin by connection index); never a thread per
//! connection. Each thread:
//!
//! 1. **Connects** its connections with the port's `Connect` operation, paced so the whole client
//!    opens at most `--connect-rate` per second, binding to the pre-flight's source addresses
//!    when one address cannot hold every connection. Connect times go to their own histogram;
//!    failures and connects slower than `--timeout` are counted as `connect_failed`.
//! 2. Waits at a barrier until every thread has finished connecting, so the load starts at one
//!    instant for all.
//! 3. **Loads**: every open connection always has one `Recv` in flight, and at most one `Send`
//!    (carrying every message staged since the previous send completed). A message is staged
//!    when the verifier has room (`--pipeline`), the stop condition allows it, and in rate mode
//!    when its slot in the schedule has come. Echoed bytes go to the connection's
//!    [`StreamVerifier`]; each completed message is timed from its intended send time.
//!    Messages intended before the end of `--warmup` are verified but not measured.
//! 4. **Finishes** a connection when it has nothing more to send and nothing outstanding: it
//!    shuts down its write side and waits for the server's end of stream, which must come with
//!    every byte echoed. A connection with an error is cancelled and closed at once; the others
//!    go on.
//!
//! `--timeout` is checked by a periodic scan (a tenth of the timeout, at most every 100 ms): a
//! connection with bytes outstanding and no byte received for longer than the timeout fails
//! with `timeout`.
//!
//! [`payload`]: crate::payload
//! [`verify`]: crate::verify
//! [`stats`]: crate::stats
//! [`schedule`]: crate::schedule

use std::io::{self, Write as _};
use std::mem;
use std::net::{IpAddr, Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use ringport_port::{Backend, Completion, Op, Outcome, PoolBuf, Port, PortConfig, SharedFd, Token};

/// The pool ran dry (a multishot receive's last completion).
const ENOBUFS: i32 = 105;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{ConfigError, OutputTarget, Stop, StressConfig, Workload};
use crate::payload::{PayloadGen, PayloadSpec};
use crate::preflight::{preflight, Preflight, PreflightError};
use crate::report::{write_hdr_log, StressReport};
use crate::schedule::{connections_of_thread, Pacer, RateSchedule, ThreadSchedule};
use crate::stats::{CpuMeter, ThreadStats};
use crate::verify::{ConnError, SendStamp, StreamVerifier};

/// Live counters a caller (the CLI's progress line) may watch while a run goes on. Threads add
/// to them once per batch of completions, not per message.
#[derive(Debug, Default)]
pub struct Progress {
    /// Verified round trips so far (warm-up included).
    pub messages: AtomicU64,
    /// Errors so far.
    pub errors: AtomicU64,
    /// Connections established so far.
    pub connected: AtomicU64,
}

impl Progress {
    /// A one-line summary for a live display, e.g.
    /// `12.0s  1234567 verified  98765 msg/s  50/50 connected  0 errors`, with the rate
    /// computed from `previous` (the messages count at the last call) over `interval`.
    pub fn line(
        &self,
        elapsed: Duration,
        previous: u64,
        interval: Duration,
        connections: usize,
    ) -> String {
        let messages = self.messages.load(Ordering::Relaxed);
        let secs = interval.as_secs_f64();
        let rate = if secs > 0.0 {
            messages.saturating_sub(previous) as f64 / secs
        } else {
            0.0
        };
        format!(
            "{:>5.1}s  {messages} verified  {rate:.0} msg/s  {}/{connections} connected  {} errors",
            elapsed.as_secs_f64(),
            self.connected.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

/// Hooks into a run besides its configuration.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Counters to update while running.
    pub progress: Option<Arc<Progress>>,
    /// Set to stop early (Ctrl-C): no new message is sent, messages in flight are still
    /// verified, then the run ends and reports what it measured.
    pub stop: Option<Arc<AtomicBool>>,
}

/// Why a run could not be carried out at all (as opposed to errors on connections, which are
/// counted in the report).
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    /// A bad option.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The system cannot hold the run.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host as given.
        host: String,
        /// Why.
        source: io::Error,
    },
    /// A completion port could not be created.
    #[error("{0}")]
    Port(String),
    /// A client thread failed outside any connection (its port broke, or it panicked).
    #[error("client thread {thread}: {detail}")]
    Thread {
        /// Which thread.
        thread: usize,
        /// What happened.
        detail: String,
    },
}

/// The result of [`run`]: the report, and the merged measurements behind it.
#[derive(Debug)]
pub struct StressOutcome {
    /// The report.
    pub report: StressReport,
    /// Every thread's measurements, merged.
    pub stats: ThreadStats,
    /// Wall-clock time at which measuring began (for the HdrHistogram log).
    pub measure_started: SystemTime,
    /// Length of the measured phase.
    pub measured: Duration,
    /// What the pre-flight check found and changed.
    pub preflight: Preflight,
}

impl StressOutcome {
    /// Writes the outputs `config` asks for: `--json` and `--hdr-log`.
    ///
    /// # Errors
    ///
    /// The first I/O error, naming the file.
    pub fn write_outputs(&self, config: &StressConfig) -> io::Result<()> {
        if let Some(target) = &config.json {
            self.report.write_json(target).map_err(|e| {
                let what = match target {
                    OutputTarget::Stdout => "standard output".to_string(),
                    OutputTarget::Path(p) => p.display().to_string(),
                };
                io::Error::new(e.kind(), format!("writing --json to {what}: {e}"))
            })?;
        }
        if let Some(path) = &config.hdr_log {
            let rate_mode = matches!(config.workload(), Workload::Rate { .. });
            write_hdr_log(
                path,
                &self.stats,
                self.measure_started,
                self.measured,
                rate_mode,
            )
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("writing --hdr-log to {}: {e}", path.display()),
                )
            })?;
        }
        Ok(())
    }
}

/// Runs `config` to completion. See the module docs.
///
/// # Errors
///
/// A [`StressError`] when the run cannot start (bad options, limits, name resolution, no port).
/// Errors on connections do not end the run: they are counted in the report, whose
/// [`exit_code`](StressReport::exit_code) is then 1.
pub fn run(config: &StressConfig) -> Result<StressOutcome, StressError> {
    run_with(config, &RunOptions::default())
}

/// [`run`] with progress counters and a stop flag.
///
/// # Errors
///
/// As [`run`].
pub fn run_with(config: &StressConfig, opts: &RunOptions) -> Result<StressOutcome, StressError> {
    config.validate()?;
    let addr = resolve(&config.host, config.port)?;
    let pre = preflight(config, addr.ip())?;
    for note in &pre.notes {
        tracing::info!("{note}");
    }
    let backend = config
        .backend
        .resolve()
        .map_err(|e| StressError::Port(e.to_string()))?;
    let threads = config.effective_threads();
    let shared = Shared {
        config,
        payload: config.payload(),
        addr,
        sources: pre.source_ips.clone(),
        connect_start: Instant::now(),
        barrier: Barrier::new(threads),
        load_start: OnceLock::new(),
        backend,
        opts,
    };
    let results: Vec<Result<ThreadResult, ThreadFailure>> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let shared = &shared;
                thread::Builder::new()
                    .name(format!("stress-{t}"))
                    .spawn_scoped(s, move || client_thread(shared, t, threads))
                    .expect("spawning a client thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ThreadFailure::Other("panicked".to_string())))
            })
            .collect()
    });
    let mut parts = Vec::with_capacity(threads);
    for (t, r) in results.into_iter().enumerate() {
        match r {
            Ok(part) => parts.push(part),
            Err(ThreadFailure::Port(detail)) => return Err(StressError::Port(detail)),
            Err(ThreadFailure::Other(detail)) => {
                return Err(StressError::Thread { thread: t, detail })
            }
        }
    }
    let stats = ThreadStats::merge_all(config.connections, parts.iter().map(|p| &p.stats));
    let measure_start = parts
        .iter()
        .map(|p| p.measure_start)
        .min()
        .unwrap_or_else(Instant::now);
    let measured = match config.stop() {
        Stop::Duration(d) => {
            let stopped = parts.iter().filter_map(|p| p.stopped_early).min();
            stopped.map_or(d, |at| at.saturating_duration_since(measure_start).min(d))
        }
        Stop::Count(_) => parts
            .iter()
            .filter_map(|p| p.last_completion)
            .max()
            .map_or(Duration::ZERO, |last| {
                last.saturating_duration_since(measure_start)
            }),
    };
    let measure_started =
        SystemTime::now() - Instant::now().saturating_duration_since(measure_start);
    let mut report = StressReport::build(config, &stats, measured, backend.name());
    if backend == Backend::Epoll && config.rate.is_some() {
        report.warnings.push(
            "the epoll backend waits in whole milliseconds: in rate mode sends may leave up to \
             1 ms after their intended time, and the corrected latency includes that; use the \
             io_uring backend for sub-millisecond figures"
                .to_string(),
        );
    }
    Ok(StressOutcome {
        report,
        stats,
        measure_started,
        measured,
        preflight: pre,
    })
}

/// The first address `host:port` resolves to.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, StressError> {
    let err = |source| StressError::Resolve {
        host: host.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(err)?.collect();
    // Prefer IPv4: servers bind 127.0.0.1 by default, and "localhost" may list ::1 first.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| err(io::Error::new(io::ErrorKind::NotFound, "no address")))
}

/// Waits at the start barrier once: explicitly with [`StartGuard::pass`], or when dropped.
struct StartGuard<'b> {
    barrier: &'b Barrier,
    passed: bool,
}

impl StartGuard<'_> {
    fn pass(&mut self) {
        if !self.passed {
            self.passed = true;
            self.barrier.wait();
        }
    }
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        self.pass();
    }
}

/// Why a client thread gave up.
enum ThreadFailure {
    /// Its completion port could not be created.
    Port(String),
    /// Its port failed while running, or it panicked.
    Other(String),
}

/// What all client threads share (read-only but for the once-set fields).
struct Shared<'a> {
    config: &'a StressConfig,
    payload: PayloadSpec,
    addr: SocketAddr,
    sources: Vec<IpAddr>,
    connect_start: Instant,
    barrier: Barrier,
    load_start: OnceLock<Instant>,
    backend: Backend,
    opts: &'a RunOptions,
}

/// What a client thread hands back.
struct ThreadResult {
    stats: ThreadStats,
    measure_start: Instant,
    last_completion: Option<Instant>,
    stopped_early: Option<Instant>,
}

fn client_thread(
    shared: &Shared<'_>,
    t: usize,
    threads: usize,
) -> Result<ThreadResult, ThreadFailure> {
    // Every thread must reach the start barrier, whatever happens to it before (an error, or a
    // panic: the guard waits while unwinding), or the others would wait for ever.
    let mut start = StartGuard {
        barrier: &shared.barrier,
        passed: false,
    };
    let globals = connections_of_thread(t, threads, shared.config.connections);
    let entries = (globals.len() * 2 + 16).next_power_of_two().clamp(64, 4096) as u32;
    let port = Port::new(&PortConfig {
        entries,
        backend: shared.backend.into(),
    })
    .map_err(|e| ThreadFailure::Port(e.to_string()))?;
    let mut client = Client::new(shared, port, &globals);
    client.provide_pool();
    let connected = client.connect_all();
    start.pass();
    connected
        .map_err(|e| ThreadFailure::Other(format!("waiting on the port while connecting: {e}")))?;
    client
        .load()
        .map_err(|e| ThreadFailure::Other(format!("waiting on the port: {e}")))?;
    Ok(ThreadResult {
        stats: client.stats,
        measure_start: client.measure_start,
        last_completion: client.last_completion,
        stopped_early: client.stopped_early,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not yet connecting.
    Idle,
    /// Connect submitted.
    Connecting,
    /// Sending and receiving.
    Open,
    /// Write side shut down; waiting for the server's end of stream.
    Draining,
    /// Finished cleanly.
    Closed,
    /// Failed; its operations are being cancelled.
    Failed,
}

/// One connection of a client thread.
struct Conn {
    global: usize,
    fd: Option<SharedFd>,
    state: State,
    verifier: StreamVerifier,
    /// Bytes staged (pushed to the verifier) and not yet handed to a send.
    staged: Vec<u8>,
    /// The other send buffer, when no send is in flight.
    spare: Option<Vec<u8>>,
    recv_buf: Option<Vec<u8>>,
    recv_token: Option<Token>,
    send_token: Option<Token>,
    other_token: Option<Token>,
    /// Operations in flight on this connection.
    ops: u32,
    /// Number of the next message to stage (1-based).
    next_index: u64,
    /// Measured messages staged (intended at or after the end of the warm-up).
    measured_staged: u64,
    /// Rate mode: sends that have come due and are not staged yet.
    owed: u64,
    /// Rate mode: schedule index of the next send to stage.
    next_k: u64,
    /// Last time a byte arrived or outstanding bytes appeared (for `--timeout`).
    last_activity: Instant,
    connect_started: Instant,
    dirty: bool,
}

impl Conn {
    fn terminal(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed) && self.ops == 0 && self.fd.is_none()
    }
}

/// One client thread: its port, its connections, its measurements.
struct Client<'s, 'a> {
    shared: &'s Shared<'a>,
    port: Port,
    conns: Vec<Conn>,
    stats: ThreadStats,
    done: Vec<Completion>,
    dirty: Vec<usize>,
    scratch: Vec<u8>,
    recv_size: usize,
    /// Receives are multishot into the port's buffer pool (one submission per connection, not
    /// one per message); false when the port has no pool.
    pooled: bool,
    measure_start: Instant,
    measure_end: Option<Instant>,
    count: Option<u64>,
    schedule: Option<ThreadSchedule>,
    stopping: bool,
    stopped_early: Option<Instant>,
    last_completion: Option<Instant>,
    reported: (u64, u64, u64),
    /// Messages verified by this thread (warm-up included), for progress.
    completed_total: u64,
    /// Connect operations in flight.
    connecting: usize,
}

impl<'s, 'a> Client<'s, 'a> {
    fn new(shared: &'s Shared<'a>, port: Port, globals: &[usize]) -> Self {
        let config = shared.config;
        let max_len = shared.payload.max_len();
        let pipeline = config.pipeline;
        let batch = pipeline.saturating_mul(max_len);
        let recv_size = batch.clamp(2048, 64 * 1024);
        let now = Instant::now();
        let conns = globals
            .iter()
            .map(|&global| Conn {
                global,
                fd: None,
                state: State::Idle,
                verifier: StreamVerifier::new(pipeline, max_len),
                staged: Vec::with_capacity(batch),
                spare: Some(Vec::with_capacity(batch)),
                recv_buf: Some(Vec::with_capacity(recv_size)),
                recv_token: None,
                send_token: None,
                other_token: None,
                ops: 0,
                next_index: 1,
                measured_staged: 0,
                owed: 0,
                next_k: 0,
                last_activity: now,
                connect_started: now,
                dirty: false,
            })
            .collect();
        Client {
            shared,
            port,
            conns,
            stats: ThreadStats::new(config.connections),
            done: Vec::with_capacity(1024),
            dirty: Vec::with_capacity(globals.len()),
            scratch: Vec::with_capacity(max_len),
            recv_size,
            pooled: false,
            measure_start: now,
            measure_end: None,
            count: None,
            schedule: None,
            stopping: false,
            stopped_early: None,
            last_completion: None,
            reported: (0, 0, 0),
            completed_total: 0,
            connecting: 0,
        }
    }

    /// How long before a scheduled send the thread stops sleeping and polls: the timer slack of
    /// io_uring waits (about 50 us); none on epoll, whose waits are whole milliseconds (polling
    /// a millisecond before every send would keep the thread busy; the report warns instead).
    fn spin_margin(&self) -> Duration {
        match self.shared.backend {
            Backend::Uring => Duration::from_micros(60),
            Backend::Epoll => Duration::ZERO,
        }
    }

    fn scan_interval(&self) -> Duration {
        (self.shared.config.timeout / 10)
            .clamp(Duration::from_millis(1), Duration::from_millis(100))
    }

    /// Phase 1: opens every connection of this thread at the paced rate.
    fn connect_all(&mut self) -> io::Result<()> {
        let pacer = Pacer::new(self.shared.connect_start, self.shared.config.connect_rate);
        let mut next = 0;
        let mut next_scan = Instant::now() + self.scan_interval();
        loop {
            let now = Instant::now();
            while next < self.conns.len() && pacer.due(self.conns[next].global as u64) <= now {
                self.start_connect(next, now);
                next += 1;
            }
            if next == self.conns.len() && self.connecting == 0 {
                return Ok(());
            }
            let mut until = next_scan;
            if next < self.conns.len() {
                until = until.min(pacer.due(self.conns[next].global as u64));
            }
            self.wait_and_scan(until, &mut next_scan)?;
            // Connections that opened wait for the load phase; nothing to pump yet.
            self.clear_dirty();
            self.report_progress();
        }
    }

    fn start_connect(&mut self, i: usize, now: Instant) {
        let shared = self.shared;
        let global = self.conns[i].global;
        let socket = (|| -> io::Result<Socket> {
            let s = Socket::new(
                Domain::for_address(shared.addr),
                Type::STREAM.cloexec(),
                Some(Protocol::TCP),
            )?;
            s.set_tcp_nodelay(true)?;
            if !shared.sources.is_empty() {
                let ip = shared.sources[global % shared.sources.len()];
                s.bind(&SocketAddr::new(ip, 0).into())?;
            }
            Ok(s)
        })();
        let conn = &mut self.conns[i];
        conn.connect_started = now;
        match socket {
            Ok(s) => {
                let fd: SharedFd = Rc::new(OwnedFd::from(s));
                conn.fd = Some(Rc::clone(&fd));
                conn.state = State::Connecting;
                match self.port.submit(
                    i as u64,
                    Op::Connect {
                        fd,
                        addr: shared.addr,
                    },
                ) {
                    Ok(tok) => {
                        conn.other_token = Some(tok);
                        conn.ops += 1;
                        self.connecting += 1;
                    }
                    Err(e) => self.fail(i, ConnError::ConnectFailed(e), now),
                }
            }
            Err(e) => {
                conn.state = State::Connecting;
                self.fail(i, ConnError::ConnectFailed(e), now);
            }
        }
    }

    /// Phase 2: the load, from the common start to the last close.
    fn load(&mut self) -> io::Result<()> {
        let config = self.shared.config;
        let now = Instant::now();
        let start = *self.shared.load_start.get_or_init(|| now);
        self.measure_start = start + config.warmup;
        match config.stop() {
            Stop::Duration(d) => self.measure_end = Some(self.measure_start + d),
            Stop::Count(n) => self.count = Some(n),
        }
        if let Workload::Rate { rate, .. } = config.workload() {
            let globals = self.conns.iter().map(|c| c.global).collect();
            self.schedule = Some(ThreadSchedule::new(
                RateSchedule::new(start, rate, config.connections),
                globals,
            ));
        }
        let meter = CpuMeter::start();
        for i in 0..self.conns.len() {
            self.mark(i);
        }
        let mut next_scan = now + self.scan_interval();
        loop {
            let now = Instant::now();
            self.check_stop(now);
            if let Some(schedule) = &mut self.schedule {
                while let Some(due) = schedule.pop_due(now) {
                    let c = &mut self.conns[due.local];
                    if c.state == State::Open {
                        c.owed += 1;
                        if !c.dirty {
                            c.dirty = true;
                            self.dirty.push(due.local);
                        }
                    }
                }
            }
            self.pump_dirty(now);
            if self.port.in_flight() == 0 && self.conns.iter().all(Conn::terminal) {
                break;
            }
            let mut until = next_scan;
            if !self.stopping {
                if let Some(at) = self.schedule.as_ref().and_then(ThreadSchedule::next_at) {
                    // Wake a little early and poll the rest of the way, so a send is not late
                    // by the kernel's timer slack (late sends inflate the corrected latency).
                    until = until.min(at.checked_sub(self.spin_margin()).unwrap_or(at));
                }
                if let Some(end) = self.measure_end {
                    until = until.min(end);
                }
            }
            self.wait_and_scan(until, &mut next_scan)?;
            self.report_progress();
        }
        if let Some(cpu) = meter.finish() {
            self.stats.cpu.push(cpu);
        }
        self.report_progress();
        Ok(())
    }

    fn check_stop(&mut self, now: Instant) {
        if self.stopping {
            return;
        }
        let flagged = self
            .shared
            .opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed));
        let ended = self.measure_end.is_some_and(|end| now >= end);
        if flagged || ended {
            self.stopping = true;
            if flagged && !ended {
                self.stopped_early = Some(now);
            }
            for i in 0..self.conns.len() {
                self.conns[i].owed = 0;
                self.mark(i);
            }
        }
    }

    fn mark(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(i);
        }
    }

    fn clear_dirty(&mut self) {
        for i in self.dirty.drain(..) {
            self.conns[i].dirty = false;
        }
    }

    /// Waits for completions until `until` at the latest, and handles them.
    fn wait_until(&mut self, until: Instant) -> io::Result<()> {
        let timeout = until.saturating_duration_since(Instant::now());
        let mut done = mem::take(&mut self.done);
        done.clear();
        let r = self.port.wait(&mut done, Some(timeout));
        if r.is_ok() {
            let now = Instant::now();
            for c in done.drain(..) {
                self.handle(c, now);
            }
        }
        self.done = done;
        r.map(|_| ())
    }

    fn handle(&mut self, c: Completion, now: Instant) {
        let i = c.key as usize;
        if i >= self.conns.len() {
            return; // a posted value; the engine posts none
        }
        self.mark(i);
        match c.outcome {
            Outcome::Connected(r) => {
                self.connecting -= 1;
                let conn = &mut self.conns[i];
                conn.ops -= 1;
                conn.other_token = None;
                match r {
                    Ok(()) if conn.state == State::Connecting => {
                        self.stats
                            .record_connect(now.saturating_duration_since(conn.connect_started));
                        conn.state = State::Open;
                        conn.last_activity = now;
                        self.submit_recv(i, now);
                    }
                    Ok(()) => self.maybe_close(i),
                    Err(e) => self.fail(i, ConnError::ConnectFailed(e), now),
                }
            }
            Outcome::Received { buf, result } => {
                let conn = &mut self.conns[i];
                conn.ops -= 1;
                conn.recv_token = None;
                conn.recv_buf = Some(buf);
                self.on_received(i, now, result, None, true);
            }
            Outcome::ReceivedBuf { buf, result, more } => {
                if !more {
                    let conn = &mut self.conns[i];
                    conn.ops -= 1;
                    conn.recv_token = None;
                }
                self.on_received(i, now, result, buf, !more);
            }
            Outcome::Sent { buf, at, result } => {
                let conn = &mut self.conns[i];
                conn.ops -= 1;
                conn.send_token = None;
                if conn.state == State::Failed {
                    conn.spare = Some(buf);
                    self.maybe_close(i);
                    return;
                }
                match result {
                    Ok(n) if at + n < buf.len() => {
                        let fd = conn.fd.clone().expect("open connection has an fd");
                        self.submit_send(i, fd, buf, at + n, now);
                    }
                    Ok(_) => {
                        let mut buf = buf;
                        buf.clear();
                        conn.spare = Some(buf);
                    }
                    Err(e) => {
                        conn.spare = Some(buf);
                        let err = conn.verifier.io_error(e);
                        self.fail(i, err, now);
                    }
                }
            }
            Outcome::ShutDown(r) => {
                let conn = &mut self.conns[i];
                conn.ops -= 1;
                conn.other_token = None;
                match r {
                    Ok(()) => self.maybe_close(i),
                    Err(e) => {
                        let err = conn.verifier.io_error(e);
                        self.fail(i, err, now);
                    }
                }
            }
            Outcome::Closed(_) => {
                self.conns[i].ops -= 1;
            }
            // Operations this engine never submits (accepts, pooled buffers), and wake-ups.
            _ => {}
        }
    }

    /// A receive on connection `i` produced `result`, its bytes in `pooled` (a multishot or
    /// pooled receive) or in the connection's own buffer; `ended` says the receive is no longer
    /// armed, so that another must be submitted for the connection to go on.
    fn on_received(
        &mut self,
        i: usize,
        now: Instant,
        result: io::Result<usize>,
        pooled: Option<PoolBuf>,
        ended: bool,
    ) {
        let state = self.conns[i].state;
        if matches!(state, State::Failed | State::Closed) {
            if let Some(b) = pooled {
                self.port.give_back(b);
            }
            self.maybe_close(i);
            return;
        }
        match result {
            Ok(0) => {
                let conn = &mut self.conns[i];
                match conn.verifier.on_eof(state == State::Draining) {
                    Ok(()) => {
                        conn.state = State::Closed;
                        self.maybe_close(i);
                    }
                    Err(e) => self.fail(i, e, now),
                }
            }
            Ok(_) => {
                if self.on_bytes(i, now, pooled.as_ref()) && ended {
                    self.submit_recv(i, now);
                }
            }
            // The pool ran dry for a moment: the bytes wait in the socket; arm again (the
            // buffers of this batch are given back before it is submitted).
            Err(e) if e.raw_os_error() == Some(ENOBUFS) && ended => self.submit_recv(i, now),
            Err(e) => {
                let err = self.conns[i].verifier.io_error(e);
                self.fail(i, err, now);
            }
        }
        if let Some(b) = pooled {
            self.port.give_back(b);
        }
    }

    /// Verifies the bytes just received on connection `i`. Returns whether it is still healthy.
    fn on_bytes(&mut self, i: usize, now: Instant, pooled: Option<&PoolBuf>) -> bool {
        let conn = &mut self.conns[i];
        let mut buf = conn.recv_buf.take().unwrap_or_default();
        let data: &[u8] = match pooled {
            Some(pb) => self.port.buf(pb),
            None => &buf,
        };
        conn.last_activity = now;
        let measure_start = self.measure_start;
        let measure_end = self.measure_end;
        let stats = &mut self.stats;
        let global = conn.global;
        let verbose = self.shared.config.verbose;
        let payload = &self.shared.payload;
        let scratch = &mut self.scratch;
        let mut last = None;
        let result = conn.verifier.consume(data, |done| {
            let in_window =
                done.stamp.intended >= measure_start && measure_end.is_none_or(|end| now <= end);
            if in_window {
                stats.record_message(global, &done, now);
                last = Some(now);
            }
            if verbose {
                print_reply(payload, global, done.stamp.index, scratch);
            }
        });
        if last.is_some() {
            self.last_completion = last;
        }
        buf.clear();
        conn.recv_buf = Some(buf);
        match result {
            Ok(n) => {
                self.completed_total += n as u64;
                true
            }
            Err(e) => {
                self.fail(i, e, now);
                false
            }
        }
    }

    /// Gives the port a buffer pool for multishot receives: a chunk lands in a pool buffer,
    /// is verified and given back at once, so a few buffers per connection are plenty; a
    /// receive that finds the pool dry ends with ENOBUFS and is armed again.
    fn provide_pool(&mut self) {
        let count = (self.conns.len() * 4).clamp(256, 8192) as u16;
        match self.port.provide_buffers(count, self.recv_size) {
            Ok(()) => self.pooled = true,
            Err(e) => tracing::debug!("no buffer pool ({e}); one receive per message"),
        }
    }

    fn submit_recv(&mut self, i: usize, now: Instant) {
        let conn = &mut self.conns[i];
        let Some(fd) = conn.fd.clone() else { return };
        let op = if self.pooled {
            Op::RecvMulti { fd, limit: 0 }
        } else {
            let mut buf = conn.recv_buf.take().unwrap_or_default();
            buf.clear();
            if buf.capacity() < self.recv_size {
                buf.reserve(self.recv_size);
            }
            Op::Recv {
                fd,
                buf,
                nowait: false,
            }
        };
        match self.port.submit(i as u64, op) {
            Ok(tok) => {
                conn.recv_token = Some(tok);
                conn.ops += 1;
            }
            Err(e) => {
                let err = conn.verifier.io_error(e);
                self.fail(i, err, now);
            }
        }
    }

    fn submit_send(&mut self, i: usize, fd: SharedFd, buf: Vec<u8>, at: usize, now: Instant) {
        let conn = &mut self.conns[i];
        match self.port.submit(i as u64, Op::Send { fd, buf, at }) {
            Ok(tok) => {
                conn.send_token = Some(tok);
                conn.ops += 1;
            }
            Err(e) => {
                let err = conn.verifier.io_error(e);
                self.fail(i, err, now);
            }
        }
    }

    fn pump_dirty(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.dirty.len() {
            let i = self.dirty[k];
            self.conns[i].dirty = false;
            self.pump(i, now);
            k += 1;
        }
        self.dirty.clear();
    }

    /// Whether connection `i` may stage another message (ignoring pipeline room).
    fn may_stage(&self, c: &Conn) -> bool {
        if self.stopping {
            return false;
        }
        if let Some(n) = self.count {
            if c.measured_staged >= n {
                return false;
            }
        }
        self.schedule.is_none() || c.owed > 0
    }

    /// Stages what connection `i` may send, hands it to a send, and finishes the connection
    /// when it is done.
    fn pump(&mut self, i: usize, now: Instant) {
        if self.conns[i].state != State::Open {
            return;
        }
        let shared = self.shared;
        let gen = PayloadGen::new(&shared.payload, self.conns[i].global as u64);
        while self.conns[i].verifier.has_room() && self.may_stage(&self.conns[i]) {
            let conn = &mut self.conns[i];
            let intended = match &self.schedule {
                Some(s) => {
                    let at = s.schedule().intended(conn.global, conn.next_k);
                    conn.next_k += 1;
                    conn.owed -= 1;
                    at
                }
                None => now,
            };
            gen.fill(conn.next_index, &mut self.scratch);
            let stamp = SendStamp {
                index: conn.next_index,
                intended,
                sent: now,
            };
            if conn.verifier.outstanding_bytes() == 0 {
                conn.last_activity = now;
            }
            conn.verifier
                .push(&self.scratch, stamp)
                .expect("has_room was checked");
            conn.staged.extend_from_slice(&self.scratch);
            conn.next_index += 1;
            if intended >= self.measure_start {
                conn.measured_staged += 1;
            }
        }
        let conn = &mut self.conns[i];
        if conn.send_token.is_none() && !conn.staged.is_empty() {
            let next = conn.spare.take().unwrap_or_default();
            let buf = mem::replace(&mut conn.staged, next);
            let fd = conn.fd.clone().expect("open connection has an fd");
            self.submit_send(i, fd, buf, 0, now);
            return;
        }
        let conn = &mut self.conns[i];
        let no_more = self.stopping || self.count.is_some_and(|n| conn.measured_staged >= n);
        if no_more
            && conn.verifier.in_flight() == 0
            && conn.staged.is_empty()
            && conn.send_token.is_none()
        {
            let fd = conn.fd.clone().expect("open connection has an fd");
            conn.state = State::Draining;
            conn.last_activity = now;
            match self.port.submit(
                i as u64,
                Op::Shutdown {
                    fd,
                    how: Shutdown::Write,
                },
            ) {
                Ok(tok) => {
                    conn.other_token = Some(tok);
                    conn.ops += 1;
                }
                Err(e) => {
                    let err = conn.verifier.io_error(e);
                    self.fail(i, err, now);
                }
            }
        }
    }

    /// Records `err` on connection `i` (the first error of a connection only), cancels its
    /// operations and closes it once they are back.
    fn fail(&mut self, i: usize, err: ConnError, now: Instant) {
        let conn = &mut self.conns[i];
        if matches!(conn.state, State::Failed | State::Closed) {
            self.maybe_close(i);
            return;
        }
        conn.state = State::Failed;
        self.stats.record_error(conn.global as u64, &err, now);
        tracing::debug!(connection = conn.global, "{err}");
        for tok in [conn.recv_token, conn.send_token, conn.other_token]
            .into_iter()
            .flatten()
        {
            // A failed cancel only means the operation completes on its own.
            let _ = self.port.cancel(tok);
        }
        self.maybe_close(i);
    }

    /// Closes connection `i` once it is finished or failed and nothing is in flight on it.
    fn maybe_close(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if !matches!(conn.state, State::Failed | State::Closed) || conn.ops > 0 {
            return;
        }
        if let Some(fd) = conn.fd.take() {
            if self.port.submit(i as u64, Op::Close { fd }).is_ok() {
                conn.ops += 1;
            }
        }
    }

    /// Waits on the port until `until` (handling what completes), then runs the timeout scan
    /// if its time `next_scan` has come, and sets the next one.
    fn wait_and_scan(&mut self, until: Instant, next_scan: &mut Instant) -> io::Result<()> {
        self.wait_until(until)?;
        let now = Instant::now();
        if now >= *next_scan {
            self.scan_timeouts(now);
            *next_scan = now + self.scan_interval();
        }
        Ok(())
    }

    /// Fails connections that waited longer than `--timeout`.
    fn scan_timeouts(&mut self, now: Instant) {
        let timeout = self.shared.config.timeout;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            let err = match c.state {
                State::Connecting if now.saturating_duration_since(c.connect_started) > timeout => {
                    ConnError::ConnectFailed(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no connection within {:.1}s", timeout.as_secs_f64()),
                    ))
                }
                State::Open | State::Draining
                    if (c.verifier.outstanding_bytes() > 0 || c.state == State::Draining)
                        && now.saturating_duration_since(c.last_activity) > timeout =>
                {
                    c.verifier.timeout_error()
                }
                _ => continue,
            };
            self.fail(i, err, now);
        }
    }

    fn report_progress(&mut self) {
        let Some(p) = &self.shared.opts.progress else {
            return;
        };
        let connected = self.stats.connect.len();
        let now = (self.completed_total, self.stats.errors.total(), connected);
        p.messages
            .fetch_add(now.0 - self.reported.0, Ordering::Relaxed);
        p.errors
            .fetch_add(now.1 - self.reported.1, Ordering::Relaxed);
        p.connected
            .fetch_add(now.2 - self.reported.2, Ordering::Relaxed);
        self.reported = now;
    }
}

/// `--verbose`: prints one reply as the article's client does, one whole line at a time.
fn print_reply(payload: &PayloadSpec, global: usize, index: u64, scratch: &mut Vec<u8>) {
    let gen = PayloadGen::new(payload, global as u64);
    let mut line = Vec::with_capacity(gen.max_len() + 64);
    match payload {
        PayloadSpec::Text(_) => {
            gen.fill(index, scratch);
            line.extend_from_slice(b"The following message was received: ");
            line.extend_from_slice(scratch);
        }
        PayloadSpec::Random { size, .. } => {
            let _ = write!(
                line,
                "connection {global}: message {index} received, {size} bytes verified"
            );
        }
    }
    line.push(b'\n');
    let _ = io::stdout().lock().write_all(&line);
}
