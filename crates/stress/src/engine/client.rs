//! One client thread: its completion port, its share of the connections, its measurements.
//!
//! This module is responsible for the I/O of one thread: opening its connections at the paced
//! rate, keeping a receive armed on every open connection and at most one send, handing each
//! completion to the connection it belongs to ([`Conn`], which decides what happens next),
//! recording what is measured, enforcing `--timeout`, and closing connections once they are
//! finished or failed. Threads, the start barrier and merging are the orchestrator's
//! ([`engine`](super)).
//!
//! # Receives
//!
//! With a buffer pool (the usual case), each connection keeps one multishot receive armed: a
//! chunk lands in a pool buffer taken only when bytes arrive, is verified and given back at once,
//! so a few buffers per connection suffice and nothing is copied. Without a pool, each connection
//! receives into its own buffer, one receive per chunk. Buffers are as large as what a connection
//! may have in flight (at least 2 KiB, at most 64 KiB; for a stream, its window, at least 64 KiB
//! and at most 256 KiB), so bulk bytes arrive in few, large completions.
//!
//! # Churn
//!
//! With `--messages-per-connection`, a connection whose exchanges are done drains (or, with
//! `--linger0`, closes at once with a reset) and, once its close is submitted, is put on the
//! `ended` list; the load loop then reopens it ([`Conn::reopen`]) while the stop condition
//! leaves more to do, and starts its connect when the thread's share of `--connect-rate`
//! allows ([`ReconnectPacer`]). A failed connection is reopened the same way, its cause counted
//! ([`ReconnectStats`]).
//!
//! # TLS
//!
//! With `--tls` each connection holds a [`TlsSession`] between its socket operations and its
//! [`Conn`]: its handshake starts once the TCP connection is established (the connection
//! stages nothing until it completes); received ciphertext is decrypted and the plaintext
//! verified as plaintext would be; what a connection stages is sealed at once (its staging
//! buffer goes straight back) and the session's ciphertext goes out in one send at a time;
//! a finished connection sends close_notify, then shuts its write side. The plaintext path
//! pays one predictable test (`Io::layered`) where the paths part.
//!
//! # WebSocket
//!
//! With `--websocket` each connection holds a [`WsSession`] too, above TLS when both are on
//! (`ws_io`): its upgrade request goes out once the TCP connection (or the TLS handshake) is
//! done, and the connection stages nothing until the 101 arrives; each message is then staged
//! with its frame header before it and masked in place ([`Conn::stage_framed`]); what arrives
//! (decrypted first, with TLS) has its frame headers stripped and the payload verified as
//! plaintext would be; pings are answered with pongs staged like messages; a finished
//! connection sends a close frame, then shuts its write side.

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::mem;
use std::net::Shutdown;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ringport_port::{Completion, Op, Outcome, OwnedFd, PoolBuf, Port, SharedFd, Token};
use ringport_report::tls::HandshakeFailure;
use ringport_report::websocket::UpgradeFailure;

use super::conn::{Conn, Plan, SendBuffers, State};
use super::connect::{open_socket, source_of, ConnectQueue};
use super::exchange::Exchange;
use super::progress::ProgressFeed;
use super::reconnects::Reconnects;
use super::shared::Shared;
use super::timeouts::{spin_margin, TimeoutScan};
use crate::config::{Stop, Workload};
use crate::error::ConnError;
use crate::measure::cpu::CpuMeter;
use crate::measure::reconnects::ReconnectStats;
use crate::measure::thread::ThreadStats;
use crate::measure::tls::TlsStats;
use crate::measure::ws::WsStats;
use crate::plan::ramp::RateCurve;
use crate::plan::send_times::{RateSchedule, ThreadSchedule};
use crate::tls::client_config::TlsClient;
use crate::tls::session::TlsSession;
use crate::ws::options::WsOptions;
use crate::ws::session::WsSession;
use tls_io::tls_error;

mod tls_io;
mod ws_io;

/// A send at least this large is handed to the kernel at once (one extra enter) instead of with
/// the rest of the batch: its buffer comes back while still in the cache, and is the next one
/// staged into, so bulk bytes are written and copied by the kernel in cache-warm memory instead
/// of a cold buffer per connection. Smaller sends wait for the batch (fewer system calls).
const SEND_AT_ONCE: usize = 16 << 10;

/// The most memory a thread's receive pool takes (its buffers are as large as a connection's
/// window, up to 256 KiB each for a stream; never fewer than 32 buffers). The kernel takes pool
/// buffers in turn, so a smaller pool is a warmer one; a receive that finds it dry is armed
/// again.
const POOL_BYTES: usize = 16 << 20;

/// The most due sends (`--rate`) a thread takes from its schedule per turn of its loop.
const DUE_PER_TURN: usize = 4096;

/// The port's side of one connection: its socket and the operations in flight on it.
#[derive(Debug, Default)]
struct Io {
    fd: Option<SharedFd>,
    /// Its own receive buffer, when the port has no pool.
    recv_buf: Option<Vec<u8>>,
    recv: Option<Token>,
    send: Option<Token>,
    /// A connect or a shutdown.
    other: Option<Token>,
    /// Operations in flight.
    ops: u32,
    /// Queued in the client's dirty list, to be pumped.
    dirty: bool,
    /// Churn: on the client's `ended` list, or over for good (not to be listed again).
    ended: bool,
    /// Its connect succeeded and it is not closed yet (counted among the connections open).
    established: bool,
    /// `--tls`: the connection's TLS session (from its TCP connect to its close); boxed, so
    /// that a plaintext connection's slot stays as small as it was.
    tls: Option<Box<TlsSession>>,
    /// `--tls`, `--websocket`: the write side is shut once what is queued (the close frame,
    /// close_notify) is sent.
    shut_after_send: bool,
    /// `--websocket`: the connection's WebSocket session (from its upgrade to its close);
    /// boxed, as TLS's.
    ws: Option<Box<WsSession>>,
    /// A TLS or WebSocket session sits between the socket and the `Conn`: the one test the
    /// plaintext path pays where the paths part.
    layered: bool,
}

/// A connection: its protocol state and its I/O.
#[derive(Debug)]
struct Slot<X> {
    conn: Conn<X>,
    io: Io,
}

impl<X: Exchange> Slot<X> {
    /// Finished or failed, with nothing in flight and its descriptor closed.
    fn terminal(&self) -> bool {
        self.conn.is_done() && self.io.ops == 0 && self.io.fd.is_none()
    }
}

/// One client thread: its port, its connections, its measurements; compiled for the run's
/// protocol `X` (echo, or request/response).
pub(super) struct Client<'s, 'a, X: Exchange> {
    shared: &'s Shared<'a>,
    /// What every connection sends: the payload, or the script.
    spec: &'s X::Spec,
    port: Port,
    slots: Vec<Slot<X>>,
    /// The thread's measurements.
    pub stats: ThreadStats,
    /// Completions reaped, with when, waiting to be handled.
    pending: VecDeque<(Instant, Completion)>,
    /// Where the port puts the completions it reaps.
    reaped: Vec<Completion>,
    /// The send buffers, shared by the connections.
    send_bufs: SendBuffers,
    /// Inside [`submit_now`](Self::submit_now).
    submitting_now: bool,
    dirty: Vec<usize>,
    /// `--verbose`: the bytes of one message, to print.
    scratch: Vec<u8>,
    recv_size: usize,
    /// Receives are multishot into the port's buffer pool (one submission per connection, not
    /// one per chunk); false when the port has no pool.
    pooled: bool,
    /// End of the warm-up.
    pub measure_start: Instant,
    /// End of the measured phase (`--duration`).
    measure_end: Option<Instant>,
    count: Option<u64>,
    schedule: Option<ThreadSchedule>,
    stopping: bool,
    /// When the stop flag ended the run early.
    pub stopped_early: Option<Instant>,
    /// The last measured message completion.
    pub last_completion: Option<Instant>,
    /// When this thread's load ended: every connection finished, failed or closed.
    pub load_end: Option<Instant>,
    /// Messages verified by this thread (warm-up included), for progress.
    completed_total: u64,
    /// Messages handed to a send by this thread (warm-up included), for progress.
    sent_total: u64,
    /// Established connections this thread closed, for progress.
    closed_total: u64,
    /// Connect operations in flight.
    connecting: usize,
    /// This thread's side of the live progress counters.
    feed: ProgressFeed,
    /// Under a connection ramp: `(when, local slot)` of the connections yet to join, latest
    /// first (popped from the end).
    joining: Vec<(Instant, usize)>,
    /// Churn: exchanges per connection (`--messages-per-connection`).
    churn: Option<u64>,
    /// Churn: attempts, connections in the measured window, failures by cause.
    pub churn_stats: ReconnectStats,
    /// Churn: connections that ended a cycle, and those waiting to connect again.
    reconnects: Reconnects,
    /// In the load phase (after the start barrier).
    loading: bool,
    /// `--tls`: what every connection's session is made from.
    tls: Option<&'s TlsClient>,
    /// `--tls`: handshakes, their latency, failed ones by cause.
    pub tls_stats: TlsStats,
    /// `--websocket`: the upgrade's path and headers.
    ws: Option<&'s WsOptions>,
    /// `--websocket`: the upgrade's `Host` header.
    ws_host: String,
    /// `--websocket`: upgrades, their latency, failed ones by cause, messages, close codes.
    pub ws_stats: WsStats,
}

impl<'s, 'a, X: Exchange> Client<'s, 'a, X> {
    /// The client of connections `globals` on `port`, sending what `spec` says.
    pub fn new(shared: &'s Shared<'a>, port: Port, globals: &[usize], spec: &'s X::Spec) -> Self {
        let config = shared.config;
        let max_len = config.max_send_len();
        let in_flight = config.messages_in_flight();
        let batch = in_flight.saturating_mul(max_len);
        let recv_size = match config.workload() {
            Workload::Stream { .. } => batch.clamp(64 << 10, 256 << 10),
            // Replies may be larger than their requests (a GET and its page).
            _ if !config.requests.is_empty() => batch.clamp(16 << 10, 64 << 10),
            Workload::Closed { .. } | Workload::Rate { .. } => batch.clamp(2048, 64 << 10),
        };
        let now = Instant::now();
        let slots = globals
            .iter()
            .map(|&global| Slot {
                conn: Conn::new(global, in_flight, now),
                io: Io::default(),
            })
            .collect();
        Client {
            shared,
            spec,
            port,
            slots,
            // Per-connection figures are indexed from the segment's first connection.
            stats: ThreadStats::new(config.own_connections().len()),
            pending: VecDeque::with_capacity(1024),
            reaped: Vec::with_capacity(1024),
            send_bufs: SendBuffers::new(batch, globals.len()),
            submitting_now: false,
            dirty: Vec::with_capacity(globals.len()),
            scratch: Vec::new(),
            recv_size,
            pooled: false,
            measure_start: now,
            measure_end: None,
            count: None,
            schedule: None,
            stopping: false,
            stopped_early: None,
            last_completion: None,
            load_end: None,
            completed_total: 0,
            sent_total: 0,
            closed_total: 0,
            connecting: 0,
            feed: ProgressFeed::new(shared.opts.progress.is_some(), now),
            joining: Vec::new(),
            churn: config.messages_per_connection,
            churn_stats: ReconnectStats::default(),
            reconnects: Reconnects::new(now, Self::reconnect_rate(config)),
            loading: false,
            tls: shared.tls.as_ref(),
            tls_stats: TlsStats::default(),
            ws: config.websocket.as_ref(),
            ws_host: super::ws_host(config),
            ws_stats: WsStats::default(),
        }
    }

    /// This thread's share of `--connect-rate`.
    fn reconnect_rate(config: &crate::config::StressConfig) -> f64 {
        Reconnects::thread_rate(config.connect_rate, config.effective_threads())
    }

    /// Gives the port a buffer pool for multishot receives: a chunk lands in a pool buffer, is
    /// verified and given back at once, so a few buffers per connection are plenty (at most
    /// [`POOL_BYTES`] in all); a receive that finds the pool dry ends with ENOBUFS and is armed
    /// again.
    pub fn provide_pool(&mut self) {
        let wanted = (self.slots.len() * 4).clamp(256, 8192);
        let count = wanted.min((POOL_BYTES / self.recv_size).max(32)) as u16;
        match self.port.provide_buffers(count, self.recv_size) {
            Ok(()) => self.pooled = true,
            Err(e) => tracing::debug!("no buffer pool ({e}); one receive per chunk"),
        }
    }

    /// How long before a scheduled send the thread stops sleeping and polls.
    fn spin_margin(&self) -> Duration {
        spin_margin(self.shared.config.spin, self.port.timer_resolution())
    }

    /// Phase 1: opens every connection of this thread at the paced rate.
    ///
    /// # Errors
    ///
    /// The port failed while waiting.
    pub fn connect_all(&mut self) -> io::Result<()> {
        // A segment paces its own connections from its start, not from global index 0.
        let mut queue = ConnectQueue::new(
            self.shared.connect_start,
            self.shared.config.connect_rate,
            self.shared.first,
            self.slots.iter().map(|s| s.conn.global).collect(),
        );
        let mut scan = TimeoutScan::new(self.shared.config.timeout, Instant::now());
        loop {
            let now = Instant::now();
            while let Some(i) = queue.pop_due(now) {
                self.start_connect(i, now);
            }
            let next = queue.next_at();
            if next.is_none()
                && self.connecting == 0
                && !self.any_handshaking()
                && !self.any_upgrading()
            {
                return Ok(());
            }
            let until = next.map_or(scan.next(), |at| at.min(scan.next()));
            self.wait_and_scan(until, &mut scan)?;
            // Connections that opened wait for the load phase; nothing to pump yet.
            self.clear_dirty();
            self.report_progress();
        }
    }

    fn start_connect(&mut self, i: usize, now: Instant) {
        let shared = self.shared;
        let global = self.slots[i].conn.global;
        let socket = open_socket(
            shared.addr,
            shared.config.linger0,
            source_of(global, &shared.sources),
            shared.config.mptcp,
        );
        self.churn_stats.attempts += 1;
        let slot = &mut self.slots[i];
        slot.conn.connecting(now);
        let s = match socket {
            Ok(s) => s,
            Err(e) => return self.fail(i, ConnError::ConnectFailed(e), now),
        };
        let fd: SharedFd = Rc::new(OwnedFd::from(s).into());
        slot.io.fd = Some(Rc::clone(&fd));
        let op = Op::Connect {
            fd,
            addr: shared.addr,
        };
        match self.port.submit(i as u64, op) {
            Ok(tok) => {
                slot.io.other = Some(tok);
                slot.io.ops += 1;
                self.connecting += 1;
            }
            Err(e) => self.fail(i, ConnError::ConnectFailed(e), now),
        }
    }

    /// Phase 2: the load, from the common start to the last close.
    ///
    /// # Errors
    ///
    /// The port failed while waiting.
    pub fn load(&mut self) -> io::Result<()> {
        let config = self.shared.config;
        // The first thread here sets the common start (waiting for --start-at if given); the
        // others wait for it inside `get_or_init`.
        let start = *self
            .shared
            .load_start
            .get_or_init(|| self.shared.wait_for_start());
        if let Some(p) = &self.shared.opts.progress {
            let _ = p.load_start.set(start);
        }
        let now = Instant::now();
        self.loading = true;
        self.reconnects.restart(start, Self::reconnect_rate(config));
        self.measure_start = start + config.warmup;
        if config.hdr_log.is_some() || config.csv.is_some() || config.html.is_some() {
            self.stats.start_intervals(self.measure_start);
        }
        self.stats.error_times.start(self.measure_start);
        match config.stop() {
            Stop::Duration(d) => self.measure_end = Some(self.measure_start + d),
            Stop::Count(n) => self.count = Some(n),
        }
        if let Some(steps) = config.ramp_steps() {
            let ends = steps.iter().map(|s| s.start + s.len).collect();
            self.stats.start_steps(self.measure_start, ends);
        }
        if let Workload::Rate { rate, .. } = config.workload() {
            let globals = self.slots.iter().map(|s| s.conn.global).collect();
            let schedule = match &config.rate_ramp {
                Some(ramp) => RateSchedule::ramped(
                    start,
                    RateCurve::new(ramp.clone(), config.warmup),
                    rate,
                    config.connections,
                ),
                None => RateSchedule::new(start, rate, config.connections),
            }
            .segmented(
                config.own_connections(),
                config.segment_or_whole().index,
                config.segment_or_whole().count,
            );
            self.schedule = Some(ThreadSchedule::new(schedule, globals));
        }
        if let Some(ramp) = &config.connections_ramp {
            for (i, slot) in self.slots.iter_mut().enumerate() {
                let at = self.measure_start + ramp.activation(slot.conn.global);
                slot.conn.active_at = Some(at);
                self.joining.push((at, i));
            }
            self.joining.sort_by(|a, b| b.cmp(a));
        }
        let meter = CpuMeter::start();
        for i in 0..self.slots.len() {
            self.mark(i);
        }
        let mut scan = TimeoutScan::new(config.timeout, now);
        loop {
            let now = Instant::now();
            self.check_stop(now);
            if let Some(schedule) = &mut self.schedule {
                // At most DUE_PER_TURN due sends are taken per turn (the rest in the next
                // turns, late either way, and their latency says so): at a rate beyond what
                // the thread can send, sends fall due faster than they can be counted one by
                // one, and taking them all before looking at the clock again would never end,
                // nor see the end of the run or the stop flag.
                for _ in 0..DUE_PER_TURN {
                    let Some(due) = schedule.pop_due(now) else {
                        break;
                    };
                    let slot = &mut self.slots[due.local];
                    // With churn a send due between two connections is owed to the next one
                    // (its latency then counts the reconnect, as it should); so it is when the
                    // server closed the connection (`Connection: close`) and it is replaced.
                    let replaced = slot.conn.peer_closes()
                        || matches!(slot.conn.state, State::Idle | State::Connecting);
                    if slot.conn.state == State::Open || replaced || self.churn.is_some() {
                        slot.conn.owed += 1;
                        if !slot.io.dirty {
                            slot.io.dirty = true;
                            self.dirty.push(due.local);
                        }
                    }
                }
            }
            while let Some(&(_, i)) = self.joining.last().filter(|(at, _)| *at <= now) {
                self.joining.pop();
                self.mark(i);
            }
            self.cycle_over(now);
            self.start_reconnects(now);
            self.pump_dirty(now);
            if self.port.in_flight() == 0
                && self.reconnects.ended.is_empty()
                && self.slots.iter().all(Slot::terminal)
            {
                break;
            }
            let mut until = scan.next();
            if !self.reconnects.ended.is_empty() {
                until = now;
            }
            if !self.stopping {
                if let Some(at) = self.reconnects.next_at() {
                    until = until.min(at);
                }
                if let Some(at) = self.schedule.as_ref().and_then(ThreadSchedule::next_at) {
                    // Wake a little early and poll the rest of the way, so a send is not late
                    // by the kernel's timer slack (late sends inflate the corrected latency).
                    until = until.min(at.checked_sub(self.spin_margin()).unwrap_or(at));
                }
                if let Some(end) = self.measure_end {
                    until = until.min(end);
                }
                if let Some(&(at, _)) = self.joining.last() {
                    until = until.min(at);
                }
            }
            self.wait_and_scan(until, &mut scan)?;
            self.report_progress();
        }
        self.load_end = Some(Instant::now());
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
        // Plaintext against a server that speaks TLS: the run ends with that one line.
        let refused = self.shared.tls_check.as_ref().is_some_and(|c| c.refused());
        if flagged || ended || refused {
            self.stopping = true;
            if flagged && !ended {
                self.stopped_early = Some(now);
            }
            for i in 0..self.slots.len() {
                self.slots[i].conn.owed = 0;
                self.mark(i);
            }
            // Churn: connections waiting to reconnect are over without connecting.
            for i in self.reconnects.abandon() {
                let slot = &mut self.slots[i];
                slot.conn.abandon();
                slot.io.ended = true;
            }
        }
    }

    /// Churn: decides about every connection on the `ended` list: reopened and queued for a
    /// connect while the stop condition leaves more to do (a failed one first gives up its
    /// cycle's exchanges, see [`Conn::forfeit_cycle`]), else left closed for good.
    fn cycle_over(&mut self, now: Instant) {
        if self.reconnects.ended.is_empty() {
            return;
        }
        let plan = Plan {
            payload: self.spec,
            stopping: self.stopping,
            count: self.count,
            schedule: self.schedule.as_ref().map(ThreadSchedule::schedule),
            measure_start: self.measure_start,
            per_connection: self.churn,
        };
        let mut ended = mem::take(&mut self.reconnects.ended);
        for i in ended.drain(..) {
            let slot = &mut self.slots[i];
            if slot.conn.state == State::Failed {
                slot.conn.forfeit_cycle(&plan, now);
            }
            if slot.conn.more_cycles(&plan) {
                slot.conn.reopen(now);
                slot.io.ended = false;
                self.reconnects.queue(i);
            }
        }
        self.reconnects.ended = ended;
    }

    /// Churn: starts the connects of reopened connections as far as this thread's share of
    /// `--connect-rate` allows now.
    fn start_reconnects(&mut self, now: Instant) {
        while let Some(i) = self.reconnects.pop_due(now) {
            self.start_connect(i, now);
        }
    }

    fn mark(&mut self, i: usize) {
        let io = &mut self.slots[i].io;
        if !io.dirty {
            io.dirty = true;
            self.dirty.push(i);
        }
    }

    fn clear_dirty(&mut self) {
        for i in self.dirty.drain(..) {
            self.slots[i].io.dirty = false;
        }
    }

    /// Waits on the port until `until` (handling what completes), then runs the timeout scan
    /// if it is due.
    fn wait_and_scan(&mut self, until: Instant, scan: &mut TimeoutScan) -> io::Result<()> {
        // Completions reaped by an immediate submission are waiting: do not sleep on them.
        let timeout = if self.pending.is_empty() {
            until.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        self.port.wait(&mut self.reaped, Some(timeout))?;
        self.take_reaped();
        while let Some((now, c)) = self.pending.pop_front() {
            self.handle(c, now);
        }
        let now = Instant::now();
        if scan.due(now) {
            self.scan_timeouts(now);
        }
        Ok(())
    }

    /// Queues what the port reaped, to be handled in order; finished sends go first (the order
    /// of one connection's receives matters, a send's completion only returns its buffer), so
    /// their buffers are back before the next message is staged.
    fn take_reaped(&mut self) {
        let now = Instant::now();
        for c in self.reaped.drain(..) {
            if matches!(c.outcome, Outcome::Sent { .. }) {
                self.pending.push_front((now, c));
            } else {
                self.pending.push_back((now, c));
            }
        }
    }

    /// Hands what is queued to the kernel now (see [`SEND_AT_ONCE`]). Sends that finished
    /// meanwhile are handled at once, so their buffers are back for the next connection staged
    /// in the same pass; everything else is queued. A port error here is left for the next
    /// wait, which meets it too.
    fn submit_now(&mut self) {
        if self.submitting_now {
            return; // a partial send resubmitted from here goes with the next wait
        }
        self.submitting_now = true;
        if self
            .port
            .wait(&mut self.reaped, Some(Duration::ZERO))
            .is_ok()
        {
            let now = Instant::now();
            let mut reaped = mem::take(&mut self.reaped);
            for c in reaped.drain(..) {
                if matches!(c.outcome, Outcome::Sent { .. }) {
                    self.handle(c, now);
                } else {
                    self.pending.push_back((now, c));
                }
            }
            self.reaped = reaped;
        }
        self.submitting_now = false;
    }

    /// Hands one completion to its connection.
    fn handle(&mut self, c: Completion, now: Instant) {
        let i = c.key as usize;
        if i >= self.slots.len() {
            return; // a posted value; the engine posts none
        }
        self.mark(i);
        match c.outcome {
            Outcome::Connected(r) => {
                self.connecting -= 1;
                let slot = &mut self.slots[i];
                slot.io.ops -= 1;
                slot.io.other = None;
                match r {
                    Ok(()) => match slot.conn.connected(now) {
                        Some(took) => {
                            // `--proxy-protocol`: the header before anything else.
                            let header = slot.io.fd.as_ref().and_then(|fd| fd.real()).map(|fd| {
                                super::proxy::send_if(
                                    socket2::SockRef::from(fd),
                                    self.shared.config.proxy_protocol,
                                    self.shared.addr,
                                )
                            });
                            if let Some(Err(e)) = header {
                                return self.fail(i, ConnError::ConnectFailed(e), now);
                            }
                            let slot = &mut self.slots[i];
                            self.stats.record_connect(took);
                            slot.io.established = true;
                            if self.loading
                                && now >= self.measure_start
                                && self.measure_end.is_none_or(|end| now <= end)
                            {
                                self.churn_stats.connected_in_window += 1;
                            }
                            self.submit_recv(i, now);
                            if self.tls.is_some() {
                                self.start_tls(i, now);
                            } else if self.ws.is_some() {
                                self.start_ws(i, now);
                            }
                        }
                        None => self.maybe_close(i),
                    },
                    Err(e) => self.fail(i, ConnError::ConnectFailed(e), now),
                }
            }
            Outcome::Received { buf, result } => {
                let io = &mut self.slots[i].io;
                io.ops -= 1;
                io.recv = None;
                io.recv_buf = Some(buf);
                self.on_received(i, now, result, None, true);
            }
            Outcome::ReceivedBuf { buf, result, more } => {
                if !more {
                    let io = &mut self.slots[i].io;
                    io.ops -= 1;
                    io.recv = None;
                }
                self.on_received(i, now, result, buf, !more);
            }
            Outcome::Sent { buf, at, result } => {
                let slot = &mut self.slots[i];
                slot.io.ops -= 1;
                slot.io.send = None;
                if slot.io.tls.is_some() {
                    // The send carried the session's ciphertext.
                    return self.tls_sent(i, buf, at, result, now);
                }
                if slot.conn.state == State::Failed {
                    // Its error is counted already.
                    self.send_bufs.give_back(buf);
                    self.maybe_close(i);
                    return;
                }
                match slot.conn.sent(buf, at, result, &mut self.send_bufs) {
                    Ok(Some((buf, at))) => self.submit_send(i, buf, at, now),
                    Ok(None) if slot.io.shut_after_send => {
                        // `--websocket`: the close frame is out.
                        slot.io.shut_after_send = false;
                        self.shut_write(i, now);
                    }
                    Ok(None) => {}
                    Err(e) => self.fail(i, e, now),
                }
            }
            Outcome::ShutDown(r) => {
                let slot = &mut self.slots[i];
                slot.io.ops -= 1;
                slot.io.other = None;
                match r {
                    Ok(()) => {
                        if !X::AWAITS_CLOSE && slot.conn.finish() {
                            if let Some(tok) = slot.io.recv {
                                // Its end comes back as a cancelled receive; then it closes.
                                let _ = self.port.cancel(tok);
                            }
                        }
                        self.maybe_close(i)
                    }
                    Err(e) => {
                        let err = slot.conn.io_error(e);
                        self.fail(i, err, now);
                    }
                }
            }
            Outcome::Closed(_) => {
                self.slots[i].io.ops -= 1;
            }
            // Operations this engine never submits (accepts, pooled sends), and wake-ups.
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
        if self.slots[i].conn.is_done() {
            if let Some(b) = pooled {
                self.port.give_back(b);
            }
            self.maybe_close(i);
            return;
        }
        let io = &self.slots[i].io;
        let (handshaking, upgrading) = if io.layered {
            (
                io.tls.as_ref().is_some_and(|t| t.handshaking()),
                io.ws.as_ref().is_some_and(|w| w.upgrading()),
            )
        } else {
            (false, false)
        };
        match result {
            Ok(0) if handshaking => self.fail(
                i,
                ConnError::Handshake {
                    cause: HandshakeFailure::Other,
                    detail: "other: the server closed the connection during the handshake"
                        .to_string(),
                },
                now,
            ),
            Ok(0) if upgrading => self.fail(
                i,
                ConnError::Upgrade {
                    cause: UpgradeFailure::Other,
                    detail: "other: the server closed the connection during the upgrade"
                        .to_string(),
                },
                now,
            ),
            Ok(0) => match self.slots[i].conn.end_of_stream() {
                Ok(()) => self.maybe_close(i),
                Err(e) => self.fail(i, e, now),
            },
            Ok(_) => {
                if self.on_bytes(i, now, pooled.as_ref()) && ended {
                    self.submit_recv(i, now);
                }
            }
            // The pool ran dry for a moment: the bytes wait in the socket; arm again (the
            // buffers of this batch are given back before it is submitted).
            Err(e) if ringport_port::is_pool_empty(&e) && ended => self.submit_recv(i, now),
            Err(e) if handshaking => self.fail(
                i,
                ConnError::Handshake {
                    cause: HandshakeFailure::Other,
                    detail: format!("other: {e}"),
                },
                now,
            ),
            Err(e) if upgrading => self.fail(
                i,
                ConnError::Upgrade {
                    cause: UpgradeFailure::Other,
                    detail: format!("other: {e}"),
                },
                now,
            ),
            Err(e) => {
                let err = self.slots[i].conn.io_error(e);
                self.fail(i, err, now);
            }
        }
        if let Some(b) = pooled {
            self.port.give_back(b);
        }
    }

    /// Verifies the bytes just received on connection `i` (with `--tls`, decrypted first) and
    /// records what they complete. Returns whether the connection is still healthy.
    fn on_bytes(&mut self, i: usize, now: Instant, pooled: Option<&PoolBuf>) -> bool {
        let slot = &mut self.slots[i];
        let own = slot.io.recv_buf.take().unwrap_or_default();
        let data: &[u8] = match pooled {
            Some(pb) => self.port.buf(pb),
            None => &own,
        };
        let mut sink = Sink::<X> {
            stats: &mut self.stats,
            feed: &mut self.feed,
            scratch: &mut self.scratch,
            payload: self.spec,
            measure_start: self.measure_start,
            measure_end: self.measure_end,
            verbose: self.shared.config.verbose,
            json_on_stdout: matches!(
                self.shared.config.json,
                Some(crate::config::OutputTarget::Stdout)
            ),
            first: self.shared.first,
            last: None,
            completed: 0,
        };
        let conn = &mut slot.conn;
        let result = match slot.io.tls.as_mut() {
            None if !slot.io.layered => {
                let verified = sink.verify(conn, data, now).map(|_| None);
                if let (Err(e), Some(check)) = (&verified, &self.shared.tls_check) {
                    // The first bytes of the connection, wrong: a TLS server's alert?
                    if e.offset() == Some(0) && crate::tls::detect::is_alert(data) {
                        check.alert();
                    }
                }
                verified
            }
            None => {
                let ws = slot.io.ws.as_mut().expect("tested just above");
                ws_io::ws_receive(ws, conn, data, |conn, p| sink.verify(conn, p, now))
                    .map(|w| Some((None, Some(w))))
            }
            Some(tls) if slot.io.ws.is_some() => {
                let ws = slot.io.ws.as_mut().expect("tested just above");
                let mut wrong = None;
                let mut got = ws_io::WsReceived::default();
                let received = tls.receive(data, |plain| {
                    match ws_io::ws_receive(ws, conn, plain, |conn, p| sink.verify(conn, p, now)) {
                        Ok(w) => {
                            got.merge(w);
                            !w.refused
                        }
                        Err(e) => {
                            wrong = Some(e);
                            false
                        }
                    }
                });
                match (received, wrong) {
                    (_, Some(e)) => Err(e),
                    (Ok(r), None) => Ok(Some((Some(r), Some(got)))),
                    (Err(e), None) => Err(tls_error(conn, e)),
                }
            }
            Some(tls) => {
                let mut wrong = None;
                let received = tls.receive(data, |plain| match sink.verify(conn, plain, now) {
                    Ok(_) => true,
                    Err(e) => {
                        wrong = Some(e);
                        false
                    }
                });
                match (received, wrong) {
                    (_, Some(e)) => Err(e),
                    (Ok(r), None) => Ok(Some((Some(r), None))),
                    (Err(e), None) => Err(tls_error(conn, e)),
                }
            }
        };
        let (last, completed) = (sink.last, sink.completed);
        let mut own = own;
        own.clear();
        slot.io.recv_buf = Some(own);
        if last.is_some() {
            self.last_completion = last;
        }
        self.completed_total += completed;
        match result {
            Ok(None) => true,
            Ok(Some((tls, ws))) => {
                if let Some(w) = ws {
                    if !self.after_ws(i, now, w) {
                        return false;
                    }
                }
                match tls {
                    Some(r) => self.after_tls(i, now, r),
                    None => true,
                }
            }
            Err(e) => {
                self.fail(i, e, now);
                false
            }
        }
    }

    fn submit_recv(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        let Some(fd) = slot.io.fd.clone() else { return };
        let op = if self.pooled {
            Op::RecvMulti { fd, limit: 0 }
        } else {
            let mut buf = slot.io.recv_buf.take().unwrap_or_default();
            buf.clear();
            buf.reserve(self.recv_size);
            Op::Recv {
                fd,
                buf,
                nowait: false,
            }
        };
        match self.port.submit(i as u64, op) {
            Ok(tok) => {
                slot.io.recv = Some(tok);
                slot.io.ops += 1;
            }
            Err(e) => {
                let err = slot.conn.io_error(e);
                self.fail(i, err, now);
            }
        }
    }

    fn submit_send(&mut self, i: usize, buf: Vec<u8>, at: usize, now: Instant) {
        let slot = &mut self.slots[i];
        let fd = slot.io.fd.clone().expect("an open connection has an fd");
        let at_once = buf.len() - at >= SEND_AT_ONCE;
        match self.port.submit(i as u64, Op::Send { fd, buf, at }) {
            Ok(tok) => {
                slot.io.send = Some(tok);
                slot.io.ops += 1;
                if at_once {
                    self.submit_now();
                }
            }
            Err(e) => {
                let err = slot.conn.io_error(e);
                self.fail(i, err, now);
            }
        }
    }

    fn pump_dirty(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.dirty.len() {
            let i = self.dirty[k];
            self.slots[i].io.dirty = false;
            self.pump(i, now);
            k += 1;
        }
        self.dirty.clear();
    }

    /// Lets connection `i` stage what it may, hands it to a send, and shuts its write side
    /// when it is done.
    fn pump(&mut self, i: usize, now: Instant) {
        let plan = Plan {
            payload: self.spec,
            stopping: self.stopping,
            count: self.count,
            schedule: self.schedule.as_ref().map(ThreadSchedule::schedule),
            measure_start: self.measure_start,
            per_connection: self.churn,
        };
        let slot = &mut self.slots[i];
        if slot.conn.state != State::Open {
            return;
        }
        let staged = if !slot.io.layered {
            slot.conn.stage(&plan, now, &mut self.send_bufs)
        } else {
            if slot.io.tls.as_ref().is_some_and(|t| t.handshaking()) {
                return; // nothing is sent before the handshake completes
            }
            match slot.io.ws.as_deref_mut() {
                None => slot.conn.stage(&plan, now, &mut self.send_bufs),
                // Nothing is staged before the upgrade completes.
                Some(ws) if ws.upgrading() => return,
                Some(ws) => slot.conn.stage_framed(&plan, now, &mut self.send_bufs, ws),
            }
        };
        self.sent_total += staged as u64;
        if staged > 0 && now >= self.measure_start && self.measure_end.is_none_or(|end| now < end) {
            self.stats.record_sent(now, staged);
        }
        if self.send_staged(i, now) {
            return;
        }
        let plan = Plan {
            payload: self.spec,
            stopping: self.stopping,
            count: self.count,
            schedule: self.schedule.as_ref().map(ThreadSchedule::schedule),
            measure_start: self.measure_start,
            per_connection: self.churn,
        };
        let slot = &mut self.slots[i];
        if slot.conn.start_draining(&plan, now) {
            if self.shared.config.linger0 {
                // Closed at once, with a reset: the receive is cancelled, then the close goes.
                slot.conn.close_without_drain();
                if let Some(tok) = slot.io.recv {
                    let _ = self.port.cancel(tok);
                }
                self.maybe_close(i);
                return;
            }
            if let Some(ws) = slot.io.ws.as_mut() {
                // The close frame first; the write side is shut once it is sent.
                ws.close();
                slot.conn
                    .stage_raw(&mut self.send_bufs, |out| ws.take_control(out));
                self.send_staged(i, now);
                let slot = &mut self.slots[i];
                slot.io.shut_after_send = true;
                if let Some(tls) = slot.io.tls.as_mut() {
                    tls.close();
                    self.flush_tls(i, now);
                }
                return;
            }
            if let Some(tls) = slot.io.tls.as_mut() {
                // close_notify first; the write side is shut once it is sent.
                tls.close();
                slot.io.shut_after_send = true;
                self.flush_tls(i, now);
                return;
            }
            self.shut_write(i, now);
        }
    }

    /// Hands what connection `i` has staged to a send (with `--tls`, sealed at once), unless
    /// a send is in flight. Returns whether something was handed on.
    fn send_staged(&mut self, i: usize, now: Instant) -> bool {
        let slot = &mut self.slots[i];
        let Some(buf) = slot.conn.take_send() else {
            return false;
        };
        match slot.io.tls.as_mut() {
            None => self.submit_send(i, buf, 0, now),
            Some(tls) => {
                // Sealed at once: the staging buffer goes back, the ciphertext waits in
                // the session for its send.
                let sealed = tls.send(&buf);
                let len = buf.len();
                let _ = slot.conn.sent(buf, 0, Ok(len), &mut self.send_bufs);
                match sealed {
                    Ok(()) => self.flush_tls(i, now),
                    Err(e) => {
                        let err = slot.conn.io_error(e);
                        self.fail(i, err, now);
                    }
                }
            }
        }
        true
    }

    /// Shuts connection `i`'s write side: it sends nothing more.
    fn shut_write(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        let fd = slot.io.fd.clone().expect("an open connection has an fd");
        let op = Op::Shutdown {
            fd,
            how: Shutdown::Write,
        };
        match self.port.submit(i as u64, op) {
            Ok(tok) => {
                slot.io.other = Some(tok);
                slot.io.ops += 1;
            }
            Err(e) => {
                let err = slot.conn.io_error(e);
                self.fail(i, err, now);
            }
        }
    }

    /// Records `err` on connection `i` (the first error of a connection only), cancels its
    /// operations and closes it once they are back.
    fn fail(&mut self, i: usize, err: ConnError, now: Instant) {
        let slot = &mut self.slots[i];
        if slot.conn.fail() {
            match &err {
                ConnError::Handshake { cause, .. } => self.tls_stats.record_failure(*cause),
                ConnError::Upgrade { cause, .. } => self.ws_stats.record_failure(*cause),
                _ => {}
            }
            if let Some(check) = &self.shared.tls_check {
                // Closed before a byte of echo, and no echo seen by this thread yet: a TLS
                // server that closes on plaintext without an alert?
                let closed = matches!(
                    err,
                    ConnError::ShortEcho { offset: 0, .. }
                        | ConnError::ShortReply { offset: 0, .. }
                        | ConnError::Reset { offset: 0, .. }
                );
                if closed && self.completed_total == 0 {
                    check.closed_early();
                }
            }
            self.stats.record_error(slot.conn.global as u64, &err, now);
            self.churn_stats.record_error(&err);
            tracing::debug!(connection = slot.conn.global, "{err}");
            for tok in [slot.io.recv, slot.io.send, slot.io.other]
                .into_iter()
                .flatten()
            {
                // A failed cancel only means the operation completes on its own.
                let _ = self.port.cancel(tok);
            }
        }
        self.maybe_close(i);
    }

    /// Closes connection `i` once it is finished or failed and nothing is in flight on it.
    fn maybe_close(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if !slot.conn.is_done() || slot.io.ops > 0 {
            return;
        }
        slot.conn.release(&mut self.send_bufs);
        if mem::take(&mut slot.io.established) {
            self.closed_total += 1;
        }
        slot.io.tls = None;
        slot.io.layered = false;
        if let Some(ws) = slot.io.ws.take() {
            self.ws_stats.add_session(&ws);
        }
        slot.io.shut_after_send = false;
        if let Some(fd) = slot.io.fd.take() {
            if self.port.submit(i as u64, Op::Close { fd }).is_ok() {
                slot.io.ops += 1;
            }
        }
        // A connection the server said it closes (`Connection: close`) is replaced as churn
        // replaces one, whether or not the run churns.
        let peer_closed = slot.conn.peer_closes();
        if (self.churn.is_some() || peer_closed) && !slot.io.ended {
            slot.io.ended = true;
            self.reconnects.ended.push(i);
            if peer_closed {
                self.stats.server_closes += 1;
            }
        }
    }

    /// Fails connections that waited longer than `--timeout`.
    fn scan_timeouts(&mut self, now: Instant) {
        let timeout = self.shared.config.timeout;
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if let Some(tls) = &slot.io.tls {
                if tls.handshaking() && !slot.conn.is_done() {
                    if tls.elapsed(now) > timeout {
                        let err = ConnError::Handshake {
                            cause: HandshakeFailure::Timeout,
                            detail: format!(
                                "timeout: no handshake within {:.1}s",
                                timeout.as_secs_f64()
                            ),
                        };
                        self.fail(i, err, now);
                    }
                    continue;
                }
            }
            if let Some(ws) = &self.slots[i].io.ws {
                if ws.upgrading() && !self.slots[i].conn.is_done() {
                    if !timeout.is_zero() && ws.elapsed(now) > timeout {
                        let err = ConnError::Upgrade {
                            cause: UpgradeFailure::Timeout,
                            detail: format!(
                                "timeout: no answer to the upgrade within {:.1}s",
                                timeout.as_secs_f64()
                            ),
                        };
                        self.fail(i, err, now);
                    }
                    continue;
                }
            }
            if let Some(err) = self.slots[i].conn.timed_out(now, timeout) {
                self.fail(i, err, now);
            }
        }
    }

    fn report_progress(&mut self) {
        let Some(p) = &self.shared.opts.progress else {
            return;
        };
        let totals = [
            self.completed_total,
            self.stats.errors.total(),
            self.stats.connect.len(),
        ];
        self.feed
            .feed(p, totals, Instant::now(), self.load_end.is_some());
        self.feed
            .feed_more(p, self.sent_total, self.closed_total, &self.stats.errors);
    }
}

/// What verifying received bytes updates: the thread's measurements and counters (borrowed
/// apart from the connections, so that a TLS session can hand its plaintext straight in).
struct Sink<'c, X: Exchange> {
    stats: &'c mut ThreadStats,
    feed: &'c mut ProgressFeed,
    scratch: &'c mut Vec<u8>,
    payload: &'c X::Spec,
    measure_start: Instant,
    measure_end: Option<Instant>,
    verbose: bool,
    /// `--json -`: `--verbose` lines go to stderr, so that stdout is the JSON alone.
    json_on_stdout: bool,
    /// Global index of the segment's first connection.
    first: usize,
    /// The last measured completion.
    last: Option<Instant>,
    /// Messages completed (warm-up included).
    completed: u64,
}

impl<X: Exchange> Sink<'_, X> {
    /// Verifies `data`, the next plaintext bytes of `conn` received at `now`, and records what
    /// they complete. Returns how many messages completed.
    fn verify(
        &mut self,
        conn: &mut Conn<X>,
        data: &[u8],
        now: Instant,
    ) -> Result<usize, ConnError> {
        let measure_start = self.measure_start;
        let measure_end = self.measure_end;
        let stats = &mut *self.stats;
        let feed = &mut *self.feed;
        let scratch = &mut *self.scratch;
        let payload = self.payload;
        let verbose = self.verbose;
        let json_on_stdout = self.json_on_stdout;
        let global = conn.global;
        let local = global - self.first;
        let mut last = None;
        let in_window = now >= measure_start && measure_end.is_none_or(|end| now <= end);
        let result = conn.received(data, now, payload, |done| {
            let in_window =
                done.stamp.intended >= measure_start && measure_end.is_none_or(|end| now <= end);
            if in_window {
                stats.record_message(local, &done, now);
                last = Some(now);
            }
            feed.record_latency(now.saturating_duration_since(done.stamp.intended));
            if verbose {
                print_reply::<X>(payload, global, done.stamp.index, scratch, json_on_stdout);
            }
        });
        if in_window && result.is_ok() {
            stats.record_echoed(local, data.len());
        }
        if last.is_some() {
            self.last = last;
        }
        if let Ok(n) = result {
            self.completed += n as u64;
        }
        result
    }
}

/// `--verbose`: prints one reply as the article's client does, one whole line at a time.
fn print_reply<X: Exchange>(
    spec: &X::Spec,
    global: usize,
    index: u64,
    scratch: &mut Vec<u8>,
    json_on_stdout: bool,
) {
    let src = X::source(spec, global);
    let mut line = Vec::with_capacity(128);
    X::describe(&src, global, index, scratch, &mut line);
    line.push(b'\n');
    // With `--json -` standard output is the JSON alone: the replies go with the report, to
    // standard error.
    if json_on_stdout {
        let _ = io::stderr().lock().write_all(&line);
    } else {
        let _ = io::stdout().lock().write_all(&line);
    }
}
