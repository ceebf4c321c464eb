//! One client thread of `stress --udp`: its share of the flows, each a UDP socket connected to
//! the server, on the thread's own completion port (`Op::SendTo`, `Op::RecvFrom`).
//!
//! Each flow keeps one receive in flight (so its echoes are taken in their order of arrival)
//! and sends what its loop allows: in closed loop while fewer than `--pipeline` datagrams are
//! outstanding, in open loop when the schedule says (`--rate`, ramps, segments: the TCP
//! client's [`send_times`](crate::plan::send_times)). A datagram not echoed within `--timeout`
//! is lost, and frees its place in the pipeline. Every echo is attributed by its header to its
//! datagram, counted by the flow's [`Tracker`] and compared byte for byte with the datagram
//! regenerated (header and payload), so nothing sent is kept but its send time.
//!
//! Buffers are allocated once: a receive buffer per flow and a few send buffers per flow, each
//! back in the free list when its send completes; nothing is allocated per datagram.
//!
//! # Segmentation offload (Linux, unless `--no-gso`)
//!
//! Each flow's socket has a default segment size (`UDP_SEGMENT`) of the run's longest datagram,
//! so when a flow may send several datagrams at once (`--pipeline`, or sends that came due
//! together in open loop) of that length, they go in one send, which the system splits: the
//! datagrams on the wire are those of one send each. Echoes may come back coalesced
//! (`UDP_GRO`, on where the flows' receive buffers of 64 KiB fit [`GRO_BYTES`]): a receive that
//! holds several is cut at its segment size and each datagram verified as one received alone.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use ringport_port::{is_cancelled, Backend, Completion, Op, Outcome, Port, SharedFd, Token};
use ringport_report::datagrams::{DatagramFlow, Datagrams, SecondAccount};

use super::header::{Header, HEADER_LEN};
use super::tracker::{Arrival, Tracker};
use crate::config::{Stop, StressConfig, Workload};
use crate::engine::progress::ProgressFeed;
use crate::engine::shared::{wait_for_start, RunOptions};
use crate::engine::timeouts::spin_margin;
use crate::error::ConnError;
use crate::measure::cpu::CpuMeter;
use crate::measure::thread::ThreadStats;
use crate::plan::ramp::RateCurve;
use crate::plan::send_times::{RateSchedule, ThreadSchedule};
use crate::protocol::echo::{Completed, SendStamp};
use crate::protocol::payload::{PayloadGen, PayloadSpec};

/// Due sends taken from the schedule per loop turn at most (as the TCP client).
const DUE_PER_TURN: usize = 4096;
/// Bytes of send buffers per thread at most (at least one per flow).
const SEND_BYTES: usize = 32 << 20;
/// The longest quiet wait at the end for copies still on their way.
const SETTLE_MAX: Duration = Duration::from_millis(100);
/// Bytes of receive buffers per thread at most for coalesced receives (`UDP_GRO`), which need
/// 64 KiB per flow; with more flows per thread, each receive holds one datagram.
const GRO_BYTES: usize = 32 << 20;
/// The room a coalesced receive needs.
const GRO_ROOM: usize = 1 << 16;
/// The most datagrams one send carries in open loop (closed loop: `--pipeline`).
const OPEN_BURST_MAX: usize = 16;

/// What the segmentation offload does on a thread: whether sends carry several datagrams and
/// receives come coalesced, and how often they did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Offload {
    /// Datagrams per send at most (1: no segmented send).
    pub(super) burst_max: usize,
    /// The segment size of a segmented send: the run's longest datagram.
    pub(super) segment: usize,
    /// Receives may hold several datagrams (`UDP_GRO` on every flow).
    pub(super) gro: bool,
    /// Sends that carried several datagrams.
    pub(super) segmented_sends: u64,
    /// Receives that held several datagrams.
    pub(super) coalesced_receives: u64,
}

/// What the client threads of a UDP run share.
pub(super) struct UdpShared<'a> {
    pub(super) config: &'a StressConfig,
    /// Global index of the first flow of this process (its `--segment`'s).
    pub(super) first: usize,
    /// The payload after the header.
    pub(super) payload: PayloadSpec,
    pub(super) addr: SocketAddr,
    pub(super) barrier: Barrier,
    pub(super) load_start: OnceLock<Instant>,
    pub(super) start_late: OnceLock<Duration>,
    pub(super) backend: Backend,
    pub(super) opts: &'a RunOptions,
    /// Sequence numbers each flow remembers ([`Tracker::new`]).
    pub(super) horizon: usize,
}

/// What a client thread hands back.
pub(super) struct ThreadOut {
    pub(super) stats: ThreadStats,
    /// Each flow's counts and jitter, numbered from 1.
    pub(super) flows: Vec<DatagramFlow>,
    /// The measured datagrams by the second they were sent in, with their transit differences.
    pub(super) seconds: Vec<SecondAccount>,
    pub(super) measure_start: Instant,
    pub(super) last_echo: Option<Instant>,
    pub(super) stopped_early: Option<Instant>,
    pub(super) load_end: Option<Instant>,
    /// Receives the system refused (port unreachable: nothing serves UDP there).
    pub(super) refused: u64,
    /// Sends or receives that failed otherwise.
    pub(super) io_errors: u64,
    /// What the segmentation offload did.
    pub(super) offload: Offload,
}

/// One flow.
struct Flow<'p> {
    global: usize,
    fd: Option<SharedFd>,
    gen: PayloadGen<'p>,
    tracker: Tracker,
    /// The receive buffer while no receive is in flight.
    recv_buf: Option<Vec<u8>>,
    recv: Option<Token>,
    /// Open loop: sends due and not made yet.
    owed: u64,
    /// Datagrams sent inside the measured window (for `--count`).
    measured_sent: u64,
    sends_in_flight: usize,
}

const RECV: u64 = 0;
const SEND: u64 = 1;

fn key(local: usize, kind: u64) -> u64 {
    ((local as u64) << 1) | kind
}

/// Waits at the start barrier once, whatever happens before (so no thread waits for ever).
struct StartGuard<'b>(Option<&'b Barrier>);

impl StartGuard<'_> {
    fn pass(&mut self) {
        if let Some(b) = self.0.take() {
            b.wait();
        }
    }
}

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        self.pass();
    }
}

/// The thread's state.
struct Client<'s, 'p> {
    shared: &'s UdpShared<'s>,
    port: Port,
    flows: Vec<Flow<'p>>,
    free: Vec<Vec<u8>>,
    done: Vec<Completion>,
    scratch: Vec<u8>,
    stats: ThreadStats,
    /// The measured datagrams by the second of the measured phase they were sent in (grown
    /// once a second, never per datagram).
    seconds: Vec<SecondAccount>,
    feed: ProgressFeed,
    base: Instant,
    measure_start: Instant,
    /// `measure_start` in nanoseconds from `base`.
    measure_ns: u64,
    measure_end: Option<Instant>,
    count: Option<u64>,
    schedule: Option<ThreadSchedule>,
    closed: Option<usize>,
    stopping: bool,
    closing: bool,
    stopped_early: Option<Instant>,
    last_echo: Option<Instant>,
    completed: u64,
    sent: u64,
    /// Distinct datagrams echoed and datagrams lost, warm-up included (the progress line's).
    settled: [u64; 2],
    refused: u64,
    io_errors: u64,
    offload: Offload,
}

/// The offload a thread of `flows` flows sending datagrams of up to `segment` bytes, at most
/// `per_flow` at once, asks for (before its sockets say what they take).
fn offload_wanted(config: &StressConfig, flows: usize, segment: usize, per_flow: usize) -> Offload {
    if config.no_gso || !cfg!(target_os = "linux") {
        return Offload {
            burst_max: 1,
            segment,
            ..Offload::default()
        };
    }
    let burst_max = per_flow
        .min(ringport_port::DGRAM_SEGMENTS_MAX)
        .min(crate::udp::header::DATAGRAM_MAX / segment.max(1))
        .max(1);
    Offload {
        burst_max,
        segment,
        gro: flows.saturating_mul(GRO_ROOM) <= GRO_BYTES,
        ..Offload::default()
    }
}

/// Asks `socket` for what `offload` wants (its segment size for sends of several datagrams,
/// coalesced receives); what it refuses is off for the whole thread.
fn set_offload(socket: &UdpSocket, offload: &mut Offload) {
    use ringport_port::os::{udp_gro, udp_segment};
    if offload.burst_max > 1 {
        let set = u16::try_from(offload.segment)
            .ok()
            .filter(|_| ringport_port::os::udp_gso(socket))
            .map(|segment| udp_segment(socket, segment));
        if !matches!(set, Some(Ok(()))) {
            offload.burst_max = 1;
        }
    }
    if offload.gro && udp_gro(socket, true).is_err() {
        offload.gro = false;
    }
}

/// Whether a send of several datagrams failed because the route cannot segment (`EIO`) or the
/// segment does not fit it (`EINVAL`).
fn segmentation_refused(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Runs client thread `t` of `threads`: opens its flows' sockets, passes the start barrier,
/// runs the load.
pub(super) fn run_thread(
    shared: &UdpShared<'_>,
    t: usize,
    threads: usize,
) -> Result<ThreadOut, String> {
    let mut start = StartGuard(Some(&shared.barrier));
    let config = shared.config;
    let globals: Vec<usize> =
        crate::plan::send_times::connections_of_thread(t, threads, config.own_connections().len())
            .into_iter()
            .map(|c| c + shared.first)
            .collect();
    let entries = (globals.len() * 4 + 16).next_power_of_two().clamp(64, 4096) as u32;
    let port = Port::new(&ringport_port::PortConfig {
        entries,
        backend: shared.backend.into(),
    })
    .map_err(|e| e.to_string())?;
    let max_len = HEADER_LEN + shared.payload.max_len();
    let per_flow = match config.workload() {
        Workload::Rate { .. } => 4,
        _ => config.pipeline,
    };
    let burst = match config.workload() {
        Workload::Rate { .. } => OPEN_BURST_MAX,
        _ => config.pipeline,
    };
    let mut offload = offload_wanted(config, globals.len(), max_len, burst);
    // Room for coalesced echoes wherever a socket may have taken `UDP_GRO`, even if a later
    // one refused it (which turns it off in the report).
    let recv_room = if offload.gro { GRO_ROOM } else { max_len };
    let now = Instant::now();
    let mut stats = ThreadStats::new(config.own_connections().len());
    let flows: Vec<Flow<'_>> = globals
        .iter()
        .map(|&global| {
            let t0 = Instant::now();
            let fd = match open(shared.addr) {
                Ok(s) => {
                    stats.record_connect(t0.elapsed());
                    set_offload(&s, &mut offload);
                    Some(Rc::new(s.into()))
                }
                Err(e) => {
                    stats.record_error(global as u64, &ConnError::ConnectFailed(e), t0);
                    None
                }
            };
            Flow {
                global,
                fd,
                gen: PayloadGen::new(&shared.payload, global as u64),
                tracker: Tracker::new(shared.horizon),
                recv_buf: Some(Vec::with_capacity(recv_room)),
                recv: None,
                owed: 0,
                measured_sent: 0,
                sends_in_flight: 0,
            }
        })
        .collect();
    let send_room = max_len * offload.burst_max;
    let sends = (globals.len() * per_flow)
        .min((SEND_BYTES / send_room).max(globals.len()))
        .max(1);
    let mut client = Client {
        shared,
        port,
        flows,
        free: (0..sends).map(|_| Vec::with_capacity(send_room)).collect(),
        done: Vec::with_capacity(entries as usize),
        scratch: Vec::with_capacity(max_len),
        stats,
        seconds: Vec::with_capacity(64),
        feed: ProgressFeed::new(shared.opts.progress.is_some(), now),
        base: now,
        measure_start: now,
        measure_ns: 0,
        measure_end: None,
        count: None,
        schedule: None,
        closed: match config.workload() {
            Workload::Closed { pipeline } => Some(pipeline),
            _ => None,
        },
        stopping: false,
        closing: false,
        stopped_early: None,
        last_echo: None,
        completed: 0,
        sent: 0,
        settled: [0; 2],
        refused: 0,
        io_errors: 0,
        offload,
    };
    start.pass();
    let load_end = client
        .load()
        .map_err(|e| format!("waiting on the port: {e}"))?;
    let flows = client
        .flows
        .iter()
        .map(|f| DatagramFlow {
            flow: f.global as u64 + 1,
            agent: None,
            counts: f.tracker.counts(),
            jitter_us: f.tracker.jitter_us(),
        })
        .collect();
    Ok(ThreadOut {
        stats: client.stats,
        flows,
        seconds: client.seconds,
        measure_start: client.measure_start,
        last_echo: client.last_echo,
        stopped_early: client.stopped_early,
        load_end: Some(load_end),
        refused: client.refused,
        io_errors: client.io_errors,
        offload: client.offload,
    })
}

/// The account in `seconds` of the second of the measured phase (which began `measure_ns`
/// after the start of the load) a datagram sent at `sent_ns` belongs to.
fn account(seconds: &mut Vec<SecondAccount>, measure_ns: u64, sent_ns: u64) -> &mut SecondAccount {
    let i = (sent_ns.saturating_sub(measure_ns) / 1_000_000_000) as usize;
    if seconds.len() <= i {
        seconds.resize(i + 1, SecondAccount::default());
    }
    &mut seconds[i]
}

/// The counts of that second ([`account`]).
fn second(seconds: &mut Vec<SecondAccount>, measure_ns: u64, sent_ns: u64) -> &mut Datagrams {
    &mut account(seconds, measure_ns, sent_ns).counts
}

/// A UDP socket of `addr`'s family, connected to it (so only its datagrams are received).
fn open(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(local)?;
    // Room for a pipeline of large echoes (16 of 64 KiB is 1 MiB of payload, twice that in the
    // kernel's accounting): the default queue (about 208 KiB) would drop them here, as loss
    // the server did not cause. The kernel grants at most `net.core.rmem_max`.
    let _ = socket2::SockRef::from(&s).set_recv_buffer_size(4 << 20);
    s.connect(addr)?;
    Ok(s)
}

impl Client<'_, '_> {
    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The load, from the common start to the last echo; returns when it ended.
    fn load(&mut self) -> io::Result<Instant> {
        let shared = self.shared;
        let config = shared.config;
        let start = *shared
            .load_start
            .get_or_init(|| wait_for_start(config, shared.opts, &shared.start_late));
        if let Some(p) = &shared.opts.progress {
            let _ = p.load_start.set(start);
        }
        self.base = start;
        self.measure_start = start + config.warmup;
        self.measure_ns = u64::try_from(config.warmup.as_nanos()).unwrap_or(u64::MAX);
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
            let globals = self.flows.iter().map(|f| f.global).collect();
            self.schedule = Some(ThreadSchedule::new(schedule, globals));
        }
        for i in 0..self.flows.len() {
            self.receive(i);
        }
        let meter = CpuMeter::start();
        let timeout_ns = u64::try_from(config.timeout.as_nanos()).unwrap_or(u64::MAX);
        let tick = (config.timeout / 10).clamp(Duration::from_millis(1), Duration::from_millis(50));
        let spin = spin_margin(config.spin, self.port.timer_resolution());
        loop {
            let now = Instant::now();
            self.check_stop(now);
            if let Some(schedule) = self.schedule.as_mut().filter(|_| !self.stopping) {
                for _ in 0..DUE_PER_TURN {
                    let Some(due) = schedule.pop_due(now) else {
                        break;
                    };
                    self.flows[due.local].owed += 1;
                }
            }
            for i in 0..self.flows.len() {
                self.pump(i, now)?;
            }
            let deadline = self.ns(now).saturating_sub(timeout_ns);
            if self.ns(now) >= timeout_ns {
                for f in &mut self.flows {
                    if f.tracker.outstanding() > 0 {
                        self.settled[1] += f.tracker.expire(deadline) as u64;
                    }
                }
            }
            if self.finished() {
                break;
            }
            let mut until = now + tick;
            if !self.stopping {
                if let Some(at) = self.schedule.as_ref().and_then(ThreadSchedule::next_at) {
                    until = until.min(at.checked_sub(spin).unwrap_or(at));
                }
                if let Some(end) = self.measure_end {
                    until = until.min(end);
                }
            }
            let wait = until.saturating_duration_since(Instant::now());
            self.wait(Some(wait))?;
            self.report_progress(false);
        }
        // Copies still on their way (a duplicate right behind its first copy): listen until a
        // quiet spell (for --timeout at most: a peer that never stops sending does not hold the
        // run), then stop receiving.
        let quiet = (config.timeout / 10).min(SETTLE_MAX);
        let settle_end = Instant::now() + config.timeout;
        while Instant::now() < settle_end && self.wait(Some(quiet))? > 0 {}
        let load_end = Instant::now();
        self.closing = true;
        for f in &mut self.flows {
            if let Some(token) = f.recv.take() {
                let _ = self.port.cancel(token);
            }
        }
        while self.port.in_flight() > 0 {
            self.wait(Some(Duration::from_millis(100)))?;
        }
        for f in &mut self.flows {
            self.settled[1] += f.tracker.expire_all() as u64;
        }
        if let Some(cpu) = meter.finish() {
            self.stats.cpu.push(cpu);
        }
        self.report_progress(true);
        Ok(load_end)
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
            for f in &mut self.flows {
                f.owed = 0;
            }
        }
    }

    /// Whether every flow has sent all it will and has nothing outstanding.
    fn finished(&self) -> bool {
        (0..self.flows.len()).all(|i| {
            let f = &self.flows[i];
            !self.more_to_send(i) && f.tracker.outstanding() == 0 && f.sends_in_flight == 0
        })
    }

    /// Whether flow `i` still has datagrams to send in this run.
    fn more_to_send(&self, i: usize) -> bool {
        let f = &self.flows[i];
        if self.stopping || f.fd.is_none() {
            return false;
        }
        self.count.is_none_or(|n| f.measured_sent < n)
    }

    /// Sends what flow `i` may send now.
    fn pump(&mut self, i: usize, now: Instant) -> io::Result<()> {
        loop {
            if !self.more_to_send(i) {
                self.flows[i].owed = 0;
                return Ok(());
            }
            if !self.may_send(i) || self.free.is_empty() {
                return Ok(());
            }
            self.send(i, now)?;
        }
    }

    /// Whether flow `i`'s loop lets it send a datagram now (its pipeline in closed loop, its
    /// due sends in open loop, its window of sequence numbers).
    fn may_send(&self, i: usize) -> bool {
        let f = &self.flows[i];
        let may = match self.closed {
            Some(pipeline) => f.tracker.outstanding() < pipeline,
            None => f.owed > 0,
        };
        may && f.tracker.can_send() && self.more_to_send(i)
    }

    /// The intended send time of datagram `seq` of flow `global`: its slot in the schedule in
    /// open loop, else `sent`.
    fn intended(&self, global: usize, seq: u64, sent: Instant) -> Instant {
        match &self.schedule {
            Some(s) => s.schedule().intended(global, seq),
            None => sent,
        }
    }

    /// Sends flow `i`'s next datagram, and the ones after it that it may send now, as long as
    /// the offload lets one send carry them (each of the segment size, the last maybe shorter).
    fn send(&mut self, i: usize, now: Instant) -> io::Result<()> {
        let Some(fd) = self.flows[i].fd.as_ref().map(Rc::clone) else {
            return Ok(());
        };
        let Some(mut buf) = self.free.pop() else {
            return Ok(());
        };
        buf.clear();
        let mut carried = 0;
        loop {
            let start = buf.len();
            self.append_datagram(i, now, &mut buf);
            carried += 1;
            let full = buf.len() - start == self.offload.segment;
            if !full
                || carried >= self.offload.burst_max
                || buf.capacity() - buf.len() < self.offload.segment
                || !self.may_send(i)
            {
                break;
            }
        }
        if carried > 1 {
            self.offload.segmented_sends += 1;
        }
        self.flows[i].sends_in_flight += 1;
        let op = Op::SendTo {
            fd,
            buf,
            to: self.shared.addr,
        };
        self.port.submit(key(i, SEND), op)?;
        Ok(())
    }

    /// Appends flow `i`'s next datagram to `buf` and accounts for it as sent at `now`.
    fn append_datagram(&mut self, i: usize, now: Instant, buf: &mut Vec<u8>) {
        let sent_ns = self.ns(now);
        let (global, seq) = (self.flows[i].global, self.flows[i].tracker.next_seq());
        let intended = self.intended(global, seq, now);
        let measured =
            intended >= self.measure_start && self.measure_end.is_none_or(|end| intended < end);
        Header {
            flow: global as u32,
            seq,
            sent_ns,
        }
        .write(buf);
        self.flows[i].gen.append(seq + 1, buf);
        let f = &mut self.flows[i];
        f.tracker.sent(sent_ns, measured);
        f.owed = f.owed.saturating_sub(1);
        if measured {
            f.measured_sent += 1;
            self.stats.record_sent(now, 1);
            second(&mut self.seconds, self.measure_ns, sent_ns).sent += 1;
        }
        self.sent += 1;
    }

    /// Puts flow `i`'s receive in flight again.
    fn receive(&mut self, i: usize) {
        let f = &mut self.flows[i];
        if self.closing || f.recv.is_some() {
            return;
        }
        let (Some(fd), Some(mut buf)) = (f.fd.as_ref().map(Rc::clone), f.recv_buf.take()) else {
            return;
        };
        buf.clear();
        match self.port.submit(key(i, RECV), Op::RecvFrom { fd, buf }) {
            Ok(token) => f.recv = Some(token),
            Err(e) => {
                // The buffer went with the operation: the flow receives no more.
                self.io_errors += 1;
                tracing::warn!("a UDP receive could not be submitted: {e}");
            }
        }
    }

    /// Waits for completions (at most `timeout`) and handles them; returns how many.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.done.clear();
        let n = self.port.wait(&mut self.done, timeout)?;
        let now = Instant::now();
        let mut done = std::mem::take(&mut self.done);
        for c in done.drain(..) {
            self.handle(c, now);
        }
        self.done = done;
        Ok(n)
    }

    fn handle(&mut self, c: Completion, now: Instant) {
        let i = (c.key >> 1) as usize;
        match c.outcome {
            Outcome::SentTo { buf, result } => {
                self.flows[i].sends_in_flight -= 1;
                if let Err(e) = result {
                    // The datagrams never left: they will count as lost.
                    self.count_io_error(&e);
                    if buf.len() > self.offload.segment && segmentation_refused(&e) {
                        // A route that cannot segment: one datagram per send from now on.
                        self.offload.burst_max = 1;
                    }
                }
                self.free.push(buf);
            }
            Outcome::ReceivedFrom {
                buf,
                result,
                truncated,
                segment,
                ..
            } => {
                self.flows[i].recv = None;
                match result {
                    Ok(n) if segment > 0 && !truncated => {
                        // Several echoes coalesced: each verified as if received alone.
                        self.offload.coalesced_receives += 1;
                        for echo in buf[..n].chunks(usize::from(segment)) {
                            self.arrived(i, echo, false, now);
                        }
                    }
                    Ok(n) => self.arrived(i, &buf[..n], truncated, now),
                    Err(e) if is_cancelled(&e) => {}
                    Err(e) => self.count_io_error(&e),
                }
                self.flows[i].recv_buf = Some(buf);
                self.receive(i);
            }
            _ => {}
        }
    }

    fn count_io_error(&mut self, e: &io::Error) {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            self.refused += 1;
        } else {
            self.io_errors += 1;
        }
    }

    /// An echo arrived on flow `i` at `now`: attributed, counted, checked byte for byte.
    fn arrived(&mut self, i: usize, data: &[u8], truncated: bool, now: Instant) {
        let at_ns = self.ns(now);
        let f = &mut self.flows[i];
        let global = f.global;
        let header = Header::read(data).filter(|h| h.flow as usize == global);
        let arrival = header.map_or(Arrival::Unknown, |h| f.tracker.echo(h.seq));
        let (seq, sent_ns, measured) = match (header, arrival.sent()) {
            (Some(h), Some((sent_ns, measured))) => (h.seq, sent_ns, measured),
            _ => {
                if arrival == Arrival::Unknown {
                    f.tracker.corrupted();
                    second(&mut self.seconds, self.measure_ns, at_ns).corrupted += 1;
                    let err = ConnError::Datagram {
                        seq: None,
                        at: 0,
                        expected: None,
                        got: None,
                        len: data.len(),
                        sent_len: 0,
                    };
                    self.stats.record_error(global as u64, &err, now);
                }
                return;
            }
        };
        self.settled[0] += u64::from(matches!(arrival, Arrival::First { .. }));
        if measured {
            let counts = second(&mut self.seconds, self.measure_ns, sent_ns);
            match arrival {
                Arrival::First { reordered, .. } => {
                    counts.echoed += 1;
                    counts.reordered += u64::from(reordered);
                }
                Arrival::Duplicate { .. } => counts.duplicated += 1,
                _ => {}
            }
        }
        let f = &mut self.flows[i];
        // What was sent, regenerated: the header as recorded, then the payload.
        let expected = &mut self.scratch;
        expected.clear();
        Header {
            flow: global as u32,
            seq,
            sent_ns,
        }
        .write(expected);
        f.gen.append(seq + 1, expected);
        if truncated || data != expected.as_slice() {
            if measured {
                f.tracker.corrupted();
                second(&mut self.seconds, self.measure_ns, sent_ns).corrupted += 1;
                let at = data
                    .iter()
                    .zip(expected.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(data.len().min(expected.len()));
                let err = ConnError::Datagram {
                    seq: Some(seq),
                    at,
                    expected: expected.get(at).copied(),
                    got: data.get(at).copied(),
                    len: data.len(),
                    sent_len: expected.len(),
                };
                self.stats.record_error(global as u64, &err, now);
            }
            return;
        }
        if !matches!(arrival, Arrival::First { .. }) || !measured {
            return;
        }
        if let Some(d_ns) = f.tracker.transit(sent_ns, at_ns) {
            account(&mut self.seconds, self.measure_ns, sent_ns).transit_difference(d_ns);
        }
        let sent = self.base + Duration::from_nanos(sent_ns);
        let intended = self.intended(global, seq, sent);
        let done = Completed {
            stamp: SendStamp {
                index: seq + 1,
                intended,
                sent,
            },
            len: data.len(),
        };
        self.stats
            .record_message(global - self.shared.first, &done, now);
        self.feed
            .record_latency(now.saturating_duration_since(intended));
        self.completed += 1;
        self.last_echo = Some(now);
    }

    fn report_progress(&mut self, last: bool) {
        let Some(p) = &self.shared.opts.progress else {
            return;
        };
        let totals = [
            self.completed,
            self.stats.errors.total(),
            self.stats.connect.len(),
        ];
        self.feed.feed(p, totals, Instant::now(), last);
        self.feed.feed_more(p, self.sent, 0, &self.stats.errors);
        self.feed.feed_datagrams(p, self.settled);
    }
}
