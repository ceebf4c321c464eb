//! One connection's client state machine, apart from any socket.
//!
//! This module is responsible for what one connection does and when: which messages to stage
//! (room in the pipeline or the stream window, the stop condition, the rate schedule), handing
//! everything staged to one send at a time and resuming a partial send, verifying the bytes that
//! arrive, and deciding when the connection is finished or has failed. It never touches the port:
//! the client thread ([`client`](super::client)) performs the operations a [`Conn`] asks for and
//! tells it what came of them, so the rules are unit-tested here without sockets.
//!
//! # Life of a connection
//!
//! `Idle` → `Connecting` → `Open` (staging, sending, verifying) → `Draining` (nothing more to
//! send: the write side is shut down and the server's end of stream is awaited, which must come
//! with every byte echoed) → `Closed`. Any error makes it `Failed` at once; its operations are
//! then cancelled and it is closed.
//!
//! With churn (`--messages-per-connection N`) a connection's life is one *cycle*: after `N`
//! exchanges it drains and closes, and the client thread [reopens](Conn::reopen) it as a new
//! connection (`Idle` again, a fresh verifier) while the stop condition leaves more to do. The
//! message numbers, the `--count` tally and the rate schedule's debts carry over from cycle to
//! cycle: a connection slot is one client making many connections in turn.
//!
//! # Buffers
//!
//! Messages are appended to a staging buffer taken from the thread's [`SendBuffers`] while the
//! previous send is in flight; when that send completes, everything staged goes in the next one,
//! and the sent buffer goes back to the thread, the first to be staged into again (so it is
//! still in the cache). The verifier keeps no copy of the bytes in flight: it regenerates each
//! message from the payload generator when its echo arrives. Nothing is allocated per message
//! once the thread holds as many buffers as it ever has in use at once.

use std::io;
use std::mem;
use std::time::{Duration, Instant};

use super::exchange::Exchange;
use crate::error::ConnError;
use crate::plan::send_times::RateSchedule;
use crate::protocol::echo::{Completed, SendStamp};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
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

/// The send buffers of one thread, shared by its connections, most recently returned first: a
/// buffer back from a send is still warm in the cache, and the next one staged into.
#[derive(Debug)]
pub(super) struct SendBuffers {
    free: Vec<Vec<u8>>,
    /// Capacity of a new buffer: what one connection may have in flight.
    size: usize,
    /// Buffers made so far.
    made: usize,
}

impl SendBuffers {
    /// Buffers of `size` bytes, for `connections` connections (each holds at most two: one
    /// staging, one in a send).
    pub fn new(size: usize, connections: usize) -> SendBuffers {
        SendBuffers {
            free: Vec::with_capacity(2 * connections),
            size,
            made: 0,
        }
    }

    /// The most recently returned buffer, empty; a new one if none is free.
    fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| {
            self.made += 1;
            Vec::with_capacity(self.size)
        })
    }

    /// Returns `buf` for the next staging.
    pub fn give_back(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.free.push(buf);
    }

    /// Buffers made so far (the most ever in use at once).
    #[cfg(test)]
    fn made(&self) -> usize {
        self.made
    }
}

/// What goes around each staged message: nothing (raw bytes), or a WebSocket frame.
pub(super) trait Framer {
    /// Called before a message is appended to `out`; returns what [`end`](Self::end) is given.
    fn begin(&mut self, out: &mut Vec<u8>) -> usize;
    /// Called once the message is appended to `out`, with what [`begin`](Self::begin) returned.
    fn end(&mut self, out: &mut Vec<u8>, at: usize);
}

/// Raw bytes: no framing (compiles to nothing).
pub(super) struct Unframed;

impl Framer for Unframed {
    #[inline(always)]
    fn begin(&mut self, _out: &mut Vec<u8>) -> usize {
        0
    }

    #[inline(always)]
    fn end(&mut self, _out: &mut Vec<u8>, _at: usize) {}
}

impl Framer for crate::ws::session::WsSession {
    #[inline]
    fn begin(&mut self, out: &mut Vec<u8>) -> usize {
        crate::ws::session::WsSession::begin(self, out)
    }

    #[inline]
    fn end(&mut self, out: &mut Vec<u8>, at: usize) {
        crate::ws::session::WsSession::end(self, out, at);
    }
}

/// What the client thread has decided for all its connections at this moment: the inputs of
/// [`Conn::stage`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan<'a, S: ?Sized> {
    /// What every connection sends: the payload (echo), or the script (request/response).
    pub payload: &'a S,
    /// No new message may be staged (the duration is over, or the run was stopped).
    pub stopping: bool,
    /// `--count`: measured messages each connection sends.
    pub count: Option<u64>,
    /// Rate mode: the schedule of intended send times (a message is staged only when owed).
    pub schedule: Option<&'a RateSchedule>,
    /// End of the warm-up: messages intended from here on are measured.
    pub measure_start: Instant,
    /// Churn (`--messages-per-connection`): exchanges per connection, after which it closes and
    /// a new one takes its place; `None` keeps one connection for the whole run.
    pub per_connection: Option<u64>,
}

/// One connection's protocol state, for the protocol `X` (echo or request/response). See the
/// module docs.
#[derive(Debug)]
pub(super) struct Conn<X> {
    /// The connection's number over the whole run (0-based).
    pub global: usize,
    /// Where it is in its life.
    pub state: State,
    verifier: X,
    /// Bytes staged (pushed to the verifier) and not yet handed to a send; no buffer (no
    /// capacity) while nothing is staged.
    staged: Vec<u8>,
    /// A send is in flight.
    sending: bool,
    /// Number of the next message to stage (1-based).
    next_index: u64,
    /// Measured messages staged (intended at or after the end of the warm-up).
    measured_staged: u64,
    /// Rate mode: sends that have come due and are not staged yet.
    pub owed: u64,
    /// Rate mode: schedule index of the next send to stage.
    next_k: u64,
    /// Last time a byte arrived or outstanding bytes appeared (for `--timeout`).
    last_activity: Instant,
    /// When its connect was submitted.
    connect_started: Instant,
    /// Under a connection ramp: the connection stages nothing before this time.
    pub active_at: Option<Instant>,
    /// Exchanges staged on the current connection (churn counts them against
    /// [`Plan::per_connection`]), warm-up included.
    cycle: u64,
}

impl<X: Exchange> Conn<X> {
    /// Connection `global`, with room for `in_flight` messages (the pipeline depth, or the
    /// stream window in whole chunks). Allocates its verifier's queue here, once.
    pub fn new(global: usize, in_flight: usize, now: Instant) -> Conn<X> {
        Conn {
            global,
            state: State::Idle,
            verifier: X::new(in_flight),
            staged: Vec::new(),
            sending: false,
            next_index: 1,
            measured_staged: 0,
            owed: 0,
            next_k: 0,
            last_activity: now,
            connect_started: now,
            active_at: None,
            cycle: 0,
        }
    }

    /// The connect was submitted at `now`.
    pub fn connecting(&mut self, now: Instant) {
        self.state = State::Connecting;
        self.connect_started = now;
    }

    /// The connect succeeded at `now`; returns how long it took, or `None` if the connection was
    /// no longer waiting for it (it failed or timed out meanwhile).
    pub fn connected(&mut self, now: Instant) -> Option<Duration> {
        if self.state != State::Connecting {
            return None;
        }
        self.state = State::Open;
        self.last_activity = now;
        Some(now.saturating_duration_since(self.connect_started))
    }

    /// Whether it is finished or failed (no new operation is started on it).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed)
    }

    /// Marks it failed; returns false if it already was finished or failed (only the first error
    /// of a connection counts).
    pub fn fail(&mut self) -> bool {
        if self.is_done() {
            return false;
        }
        self.state = State::Failed;
        true
    }

    /// Whether no more message will be staged on this connection: the run is stopping,
    /// `--count` is reached, (churn) this connection has had its exchanges, or the server said
    /// it closes it.
    fn no_more(&self, plan: &Plan<'_, X::Spec>) -> bool {
        !self.more_cycles(plan)
            || plan.per_connection.is_some_and(|n| self.cycle >= n)
            || self.verifier.peer_closes()
    }

    /// Whether the server said it closes this connection (`Connection: close`): once over, a
    /// new connection takes its place, as with churn.
    pub fn peer_closes(&self) -> bool {
        self.verifier.peer_closes()
    }

    /// Churn: whether the run wants more from this connection slot once its current
    /// connection is over (the run is not stopping and `--count` is not reached).
    pub fn more_cycles(&self, plan: &Plan<'_, X::Spec>) -> bool {
        !(plan.stopping || plan.count.is_some_and(|n| self.measured_staged >= n))
    }

    /// Churn: a connection that failed gives up the exchanges it had left, so that with
    /// `--count` a slot makes a bounded number of attempts (`count / N`, rounded up) whatever
    /// the server does. Only the part of the cycle after the warm-up counts.
    pub fn forfeit_cycle(&mut self, plan: &Plan<'_, X::Spec>, now: Instant) {
        if let (Some(n), Some(count)) = (plan.per_connection, plan.count) {
            if now >= plan.measure_start {
                let left = n.saturating_sub(self.cycle);
                self.measured_staged = (self.measured_staged + left).min(count);
            }
        }
    }

    /// Churn: makes the connection, finished or failed and with nothing in flight, a new one
    /// waiting to connect: `Idle`, nothing staged or sent, a fresh verifier (offsets from 0).
    /// Message numbers, the `--count` tally and rate-schedule debts carry over.
    pub fn reopen(&mut self, now: Instant) {
        debug_assert!(self.is_done() && self.staged.is_empty());
        self.state = State::Idle;
        self.verifier.reset();
        self.sending = false;
        self.cycle = 0;
        self.last_activity = now;
    }

    /// A connection waiting to be reopened when the run ends: it is over without connecting.
    pub fn abandon(&mut self) {
        if self.state == State::Idle {
            self.state = State::Closed;
        }
    }

    /// `--linger0`: a draining connection closes at once (the close sends a reset) instead of
    /// waiting for the server's end of stream.
    pub fn close_without_drain(&mut self) {
        if self.state == State::Draining {
            self.state = State::Closed;
        }
    }

    /// Whether another message may be staged now (pipeline or window room aside).
    fn may_stage(&self, plan: &Plan<'_, X::Spec>) -> bool {
        !self.no_more(plan) && (plan.schedule.is_none() || self.owed > 0)
    }

    /// Stages every message the plan allows and the verifier has room for, appending each to the
    /// staging buffer (taken from `bufs` when it has none) and recording it in the verifier.
    /// Returns how many were staged.
    pub fn stage(
        &mut self,
        plan: &Plan<'_, X::Spec>,
        now: Instant,
        bufs: &mut SendBuffers,
    ) -> usize {
        self.stage_framed(plan, now, bufs, &mut Unframed)
    }

    /// [`stage`](Self::stage), each message framed by `framer` (`--websocket`: a frame header
    /// before it, the message masked in place).
    pub fn stage_framed<F: Framer>(
        &mut self,
        plan: &Plan<'_, X::Spec>,
        now: Instant,
        bufs: &mut SendBuffers,
        framer: &mut F,
    ) -> usize {
        if self.state != State::Open || self.active_at.is_some_and(|at| now < at) {
            return 0;
        }
        let gen = X::source(plan.payload, self.global);
        let mut staged = 0;
        while self.verifier.has_room() && self.may_stage(plan) {
            let intended = match plan.schedule {
                Some(s) => {
                    let at = s.intended(self.global, self.next_k);
                    self.next_k += 1;
                    self.owed -= 1;
                    at
                }
                None => now,
            };
            if !self.verifier.awaiting() {
                self.last_activity = now;
            }
            if self.staged.capacity() == 0 {
                self.staged = bufs.take();
            }
            let stamp = SendStamp {
                index: self.next_index,
                intended,
                sent: now,
            };
            let at = framer.begin(&mut self.staged);
            self.verifier.push(&gen, stamp, &mut self.staged);
            framer.end(&mut self.staged, at);
            self.next_index += 1;
            self.cycle += 1;
            if intended >= plan.measure_start {
                self.measured_staged += 1;
            }
            staged += 1;
        }
        staged
    }

    /// Appends bytes no verifier awaits an answer to (`--websocket`: the upgrade request, a
    /// control frame) to the staging buffer, written by `write`.
    pub fn stage_raw(&mut self, bufs: &mut SendBuffers, write: impl FnOnce(&mut Vec<u8>)) {
        if self.staged.capacity() == 0 {
            self.staged = bufs.take();
        }
        write(&mut self.staged);
    }

    /// Everything staged, to hand to a send, when no send is in flight and something is staged.
    pub fn take_send(&mut self) -> Option<Vec<u8>> {
        if self.sending || self.staged.is_empty() {
            return None;
        }
        self.sending = true;
        Some(mem::take(&mut self.staged))
    }

    /// A send of `buf[at..]` finished with `result`. Returns where to resume when it was partial
    /// (the send is then still this connection's, to submit again), or `None` when it is done
    /// and the buffer is back in `bufs`.
    ///
    /// # Errors
    ///
    /// The socket error, classified at the verifier's offset.
    pub fn sent(
        &mut self,
        buf: Vec<u8>,
        at: usize,
        result: io::Result<usize>,
        bufs: &mut SendBuffers,
    ) -> Result<Option<(Vec<u8>, usize)>, ConnError> {
        match result {
            Ok(n) if at + n < buf.len() => Ok(Some((buf, at + n))),
            Ok(_) => {
                self.sending = false;
                bufs.give_back(buf);
                Ok(None)
            }
            Err(e) => {
                self.sending = false;
                bufs.give_back(buf);
                Err(self.verifier.io_error(e))
            }
        }
    }

    /// Gives back the buffer it is staging into, if any (it failed or finished).
    pub fn release(&mut self, bufs: &mut SendBuffers) {
        if self.staged.capacity() > 0 {
            bufs.give_back(mem::take(&mut self.staged));
        }
    }

    /// Whether it has nothing left to do but close its write side: no more messages will be
    /// staged, none is staged, none is in a send, and every one sent was echoed. Moves it to
    /// `Draining` when so.
    pub fn start_draining(&mut self, plan: &Plan<'_, X::Spec>, now: Instant) -> bool {
        let done = self.state == State::Open
            && self.no_more(plan)
            && self.verifier.in_flight() == 0
            && self.staged.is_empty()
            && !self.sending;
        if done {
            self.state = State::Draining;
            self.last_activity = now;
        }
        done
    }

    /// Verifies `data`, the next bytes received at `now`, against the messages of `payload` sent
    /// on this connection, calling `on_complete` for every message whose echo (or reply) it
    /// completes. Returns how many completed.
    ///
    /// # Errors
    ///
    /// The first wrong byte, as a [`ConnError::Mismatch`] naming its offset (a wrong reply, as
    /// a [`ConnError::WrongReply`]).
    pub fn received(
        &mut self,
        data: &[u8],
        now: Instant,
        payload: &X::Spec,
        on_complete: impl FnMut(Completed),
    ) -> Result<usize, ConnError> {
        self.last_activity = now;
        let gen = X::source(payload, self.global);
        self.verifier.consume(&gen, data, on_complete)
    }

    /// Ends a `Draining` connection without waiting for the server's end of stream (every
    /// reply is in: request/response). Returns whether it was draining.
    pub fn finish(&mut self) -> bool {
        let draining = self.state == State::Draining;
        if draining {
            self.state = State::Closed;
        }
        draining
    }

    /// The server ended the stream. A clean end (every byte echoed, after our own shutdown)
    /// closes the connection.
    ///
    /// # Errors
    ///
    /// A short echo (bytes outstanding) or an early close (the client was not done).
    pub fn end_of_stream(&mut self) -> Result<(), ConnError> {
        self.verifier.on_eof(self.state == State::Draining)?;
        self.state = State::Closed;
        Ok(())
    }

    /// A socket error, classified at the verifier's offset.
    pub fn io_error(&self, e: io::Error) -> ConnError {
        self.verifier.io_error(e)
    }

    /// The `--timeout` error, when it is due at `now`: a connect slower than `timeout`, or bytes
    /// outstanding (or an end of stream awaited) with nothing received for longer than `timeout`.
    /// A zero `timeout` is none: nothing ever times out.
    pub fn timed_out(&self, now: Instant, timeout: Duration) -> Option<ConnError> {
        if timeout.is_zero() {
            return None;
        }
        match self.state {
            State::Connecting if now.saturating_duration_since(self.connect_started) > timeout => {
                Some(ConnError::ConnectFailed(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no connection within {:.1}s", timeout.as_secs_f64()),
                )))
            }
            State::Open | State::Draining
                if (self.verifier.awaiting() || self.state == State::Draining)
                    && now.saturating_duration_since(self.last_activity) > timeout =>
            {
                Some(self.verifier.timeout_error())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
impl Conn<crate::protocol::echo::StreamVerifier> {
    /// Bytes sent (staged) and not yet echoed.
    fn outstanding(&self) -> u64 {
        self.verifier.outstanding_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::echo::StreamVerifier;
    use crate::protocol::payload::{PayloadGen, PayloadSpec};

    type EchoConn = Conn<StreamVerifier>;

    fn plan(payload: &PayloadSpec, count: Option<u64>, t0: Instant) -> Plan<'_, PayloadSpec> {
        Plan {
            payload,
            stopping: false,
            count,
            schedule: None,
            measure_start: t0,
            per_connection: None,
        }
    }

    fn open(in_flight: usize, t0: Instant) -> EchoConn {
        let mut c = EchoConn::new(3, in_flight, t0);
        c.connecting(t0);
        assert!(c.connected(t0).is_some());
        c
    }

    #[test]
    fn stages_up_to_the_room_and_sends_everything_staged_at_once() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let spec = PayloadSpec::Random { size: 100, seed: 1 };
        let mut c = open(4, t0);
        let p = plan(&spec, None, t0);
        assert_eq!(c.stage(&p, t0, &mut b), 4);
        assert_eq!(c.stage(&p, t0, &mut b), 0, "no room left");
        let buf = c.take_send().expect("something staged");
        assert_eq!(buf.len(), 400);
        assert!(c.take_send().is_none(), "one send at a time");
        // The bytes sent are the messages, in order.
        let gen = PayloadGen::new(&spec, 3);
        let mut expected = Vec::new();
        for i in 1..=4 {
            gen.append(i, &mut expected);
        }
        assert_eq!(buf, expected);
        // Two messages echoed: room for two more, staged while the send is still out.
        assert_eq!(c.received(&buf[..200], t0, &spec, |_| {}).unwrap(), 2);
        assert_eq!(c.stage(&p, t0, &mut b), 2);
        assert!(c.take_send().is_none(), "the first send is still in flight");
        assert_eq!(c.sent(buf, 0, Ok(400), &mut b).unwrap(), None);
        assert_eq!(c.take_send().map(|b| b.len()), Some(200));
    }

    #[test]
    fn a_sent_buffer_is_the_next_one_staged_into() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 10, 2);
        let spec = PayloadSpec::Random { size: 100, seed: 1 };
        let p = plan(&spec, None, t0);
        let mut c = open(1, t0);
        let mut first = None;
        for _ in 0..10 {
            assert_eq!(c.stage(&p, t0, &mut b), 1);
            let buf = c.take_send().unwrap();
            let ptr = buf.as_ptr();
            assert_eq!(
                *first.get_or_insert(ptr),
                ptr,
                "the same warm buffer every time"
            );
            let echo = buf.clone();
            assert_eq!(c.sent(buf, 0, Ok(100), &mut b).unwrap(), None);
            assert_eq!(c.received(&echo, t0, &spec, |_| {}).unwrap(), 1);
        }
        assert_eq!(b.made(), 1);
    }

    #[test]
    fn a_partial_send_resumes_where_it_stopped() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let spec = PayloadSpec::Random { size: 64, seed: 1 };
        let mut c = open(2, t0);
        c.stage(&plan(&spec, None, t0), t0, &mut b);
        let buf = c.take_send().unwrap();
        let (buf, at) = c.sent(buf, 0, Ok(50), &mut b).unwrap().expect("partial");
        assert_eq!(at, 50);
        let (buf, at) = c
            .sent(buf, at, Ok(70), &mut b)
            .unwrap()
            .expect("still partial");
        assert_eq!(at, 120);
        assert_eq!(c.sent(buf, at, Ok(8), &mut b).unwrap(), None);
    }

    #[test]
    fn a_send_error_is_classified() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let spec = PayloadSpec::Random { size: 8, seed: 1 };
        let mut c = open(1, t0);
        c.stage(&plan(&spec, None, t0), t0, &mut b);
        let buf = c.take_send().unwrap();
        let err = c
            .sent(
                buf,
                0,
                Err(io::Error::from(io::ErrorKind::ConnectionReset)),
                &mut b,
            )
            .unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Reset);
    }

    #[test]
    fn count_stops_staging_and_then_drains_once_everything_is_echoed() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let spec = PayloadSpec::Random { size: 10, seed: 1 };
        let mut c = open(8, t0);
        let p = plan(&spec, Some(3), t0);
        assert_eq!(
            c.stage(&p, t0, &mut b),
            3,
            "the count, although the pipeline has room"
        );
        assert!(!c.start_draining(&p, t0), "bytes still staged");
        let buf = c.take_send().unwrap();
        assert!(!c.start_draining(&p, t0), "bytes in a send");
        assert_eq!(c.sent(buf.clone(), 0, Ok(30), &mut b).unwrap(), None);
        assert!(!c.start_draining(&p, t0), "bytes not echoed");
        c.received(&buf, t0, &spec, |_| {}).unwrap();
        assert!(c.start_draining(&p, t0));
        assert_eq!(c.state, State::Draining);
        assert!(c.end_of_stream().is_ok());
        assert_eq!(c.state, State::Closed);
    }

    #[test]
    fn churn_closes_after_n_exchanges_and_reopens_fresh_until_the_count() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let spec = PayloadSpec::Random { size: 10, seed: 1 };
        let p = Plan {
            per_connection: Some(3),
            ..plan(&spec, Some(5), t0)
        };
        let mut c = open(8, t0);
        assert_eq!(c.stage(&p, t0, &mut b), 3, "three exchanges per connection");
        let first = c.take_send().unwrap();
        c.sent(first.clone(), 0, Ok(30), &mut b).unwrap();
        c.received(&first, t0, &spec, |_| {}).unwrap();
        assert!(c.start_draining(&p, t0), "done after its third reply");
        c.end_of_stream().unwrap();
        assert!(c.more_cycles(&p), "2 of the count's 5 left");
        c.reopen(t0);
        assert_eq!(c.state, State::Idle);
        c.connecting(t0);
        c.connected(t0).unwrap();
        assert_eq!(c.stage(&p, t0, &mut b), 2, "the rest of the count");
        let second = c.take_send().unwrap();
        // Offsets start again at 0 and message numbers go on: messages 4 and 5.
        let gen = PayloadGen::new(&spec, 3);
        let mut expected = Vec::new();
        gen.append(4, &mut expected);
        gen.append(5, &mut expected);
        assert_eq!(second, expected);
        c.sent(second.clone(), 0, Ok(20), &mut b).unwrap();
        assert_eq!(c.received(&second, t0, &spec, |_| {}).unwrap(), 2);
        assert!(c.start_draining(&p, t0));
        c.end_of_stream().unwrap();
        assert!(!c.more_cycles(&p), "the count is reached");
    }

    #[test]
    fn a_failed_churn_connection_gives_up_its_exchanges() {
        let t0 = Instant::now();
        let spec = PayloadSpec::Random { size: 10, seed: 1 };
        let p = Plan {
            per_connection: Some(5),
            ..plan(&spec, Some(10), t0)
        };
        let mut c = EchoConn::new(0, 1, t0);
        c.connecting(t0);
        assert!(c.fail());
        c.forfeit_cycle(&p, t0);
        assert!(c.more_cycles(&p), "one attempt of two made");
        c.reopen(t0);
        c.connecting(t0);
        assert!(c.fail());
        c.forfeit_cycle(&p, t0);
        assert!(
            !c.more_cycles(&p),
            "two attempts for 10 messages of 5 per connection"
        );
        // A connection waiting to reconnect when the run ends is over.
        let mut idle = EchoConn::new(1, 1, t0);
        idle.abandon();
        assert!(idle.is_done());
    }

    #[test]
    fn the_stream_window_bounds_the_bytes_in_flight() {
        // A 256 KiB window of 64 KiB chunks: four chunks out, the fifth only once one is echoed.
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let spec = PayloadSpec::Random {
            size: 64 << 10,
            seed: 2,
        };
        let mut c = open(4, t0);
        let p = plan(&spec, None, t0);
        assert_eq!(c.stage(&p, t0, &mut b), 4);
        assert_eq!(c.outstanding(), 256 << 10);
        let buf = c.take_send().unwrap();
        c.sent(buf.clone(), 0, Ok(buf.len()), &mut b).unwrap();
        // Half a chunk echoed frees nothing; a whole one frees one chunk of room.
        c.received(&buf[..32 << 10], t0, &spec, |_| {}).unwrap();
        assert_eq!(c.stage(&p, t0, &mut b), 0);
        c.received(&buf[32 << 10..64 << 10], t0, &spec, |_| {})
            .unwrap();
        assert_eq!(c.stage(&p, t0, &mut b), 1);
        assert_eq!(c.outstanding(), 256 << 10);
    }

    #[test]
    fn a_wrong_byte_fails_with_its_offset() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let spec = PayloadSpec::Random { size: 100, seed: 3 };
        let mut c = open(2, t0);
        c.stage(&plan(&spec, None, t0), t0, &mut b);
        let mut buf = c.take_send().unwrap();
        buf[150] ^= 1;
        let err = c.received(&buf, t0, &spec, |_| {}).unwrap_err();
        assert_eq!(err.offset(), Some(150));
        assert!(c.fail());
        assert!(!c.fail(), "only the first error counts");
    }

    #[test]
    fn an_end_of_stream_before_the_client_is_done_is_an_error() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let spec = PayloadSpec::Random { size: 10, seed: 1 };
        let mut c = open(1, t0);
        c.stage(&plan(&spec, None, t0), t0, &mut b);
        assert_eq!(
            c.end_of_stream().unwrap_err().kind(),
            crate::error::ErrorKind::ShortEcho
        );
    }

    #[test]
    fn request_response_cycles_the_script_and_finishes_without_the_servers_close() {
        use crate::config::request::{pair, Item};
        use crate::protocol::reply::ReplyVerifier;
        use crate::protocol::script::Script;
        let items = vec![
            Item::Request(b"A\n".to_vec()),
            Item::Expect(b"a\n".to_vec()),
            Item::Request(b"BB\n".to_vec()),
            Item::Expect(b"b\n".to_vec()),
        ];
        let script = Script::compile(&pair(items).unwrap()).unwrap();
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 10, 1);
        let mut c = Conn::<ReplyVerifier>::new(0, 4, t0);
        c.connecting(t0);
        c.connected(t0);
        let p = Plan {
            payload: &script,
            stopping: false,
            count: Some(3),
            schedule: None,
            measure_start: t0,
            per_connection: None,
        };
        assert_eq!(c.stage(&p, t0, &mut b), 3, "the count");
        let buf = c.take_send().unwrap();
        assert_eq!(buf, b"A\nBB\nA\n", "the sequence, cycled");
        assert_eq!(c.sent(buf, 0, Ok(8), &mut b).unwrap(), None);
        let mut lens = Vec::new();
        let n = c.received(b"a\nb\na", t0, &script, |m| lens.push(m.len));
        assert_eq!(n.unwrap(), 2);
        assert!(c
            .timed_out(t0 + Duration::from_secs(5), Duration::from_secs(1))
            .is_some());
        c.received(b"\n", t0, &script, |m| lens.push(m.len))
            .unwrap();
        assert_eq!(lens, [2, 2, 2]);
        assert!(c.start_draining(&p, t0));
        assert!(c.finish(), "closes without the server's end of stream");
        assert!(c.is_done());
        assert!(!c.finish());
    }

    /// A reply saying `Connection: close` ends the connection's requests: nothing more is
    /// staged on it, it drains, and once reopened it sends again (the run's count goes on).
    #[test]
    fn a_server_that_says_close_gets_no_more_requests_on_that_connection() {
        use crate::config::request::{pair, HttpStatus, Item};
        use crate::protocol::reply::ReplyVerifier;
        use crate::protocol::script::Script;
        let items = vec![
            Item::Request(b"GET / HTTP/1.1\r\n\r\n".to_vec()),
            Item::ExpectHttp(HttpStatus::Class(2)),
        ];
        let script = Script::compile(&pair(items).unwrap()).unwrap();
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 10, 1);
        let mut c = Conn::<ReplyVerifier>::new(0, 1, t0);
        c.connecting(t0);
        c.connected(t0);
        let p = Plan {
            payload: &script,
            stopping: false,
            count: Some(5),
            schedule: None,
            measure_start: t0,
            per_connection: None,
        };
        assert_eq!(c.stage(&p, t0, &mut b), 1);
        let buf = c.take_send().unwrap();
        let len = buf.len();
        assert_eq!(c.sent(buf, 0, Ok(len), &mut b).unwrap(), None);
        let last = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(c.received(last, t0, &script, |_| {}).unwrap(), 1);
        assert!(c.peer_closes());
        assert_eq!(
            c.stage(&p, t0, &mut b),
            0,
            "nothing after the closing reply"
        );
        assert!(c.more_cycles(&p), "the run wants more: a new connection");
        assert!(c.end_of_stream().is_ok(), "the announced close is no error");
        c.release(&mut b);
        c.reopen(t0);
        assert!(!c.peer_closes());
        c.connecting(t0);
        c.connected(t0);
        assert_eq!(
            c.stage(&p, t0, &mut b),
            1,
            "the next connection sends again"
        );
    }

    #[test]
    fn timeouts_only_with_something_awaited() {
        let t0 = Instant::now();
        let mut b = SendBuffers::new(1 << 20, 1);
        let later = t0 + Duration::from_secs(5);
        let limit = Duration::from_secs(1);
        let mut c = EchoConn::new(0, 1, t0);
        c.connecting(t0);
        assert_eq!(
            c.timed_out(later, limit).map(|e| e.kind()),
            Some(crate::error::ErrorKind::ConnectFailed)
        );
        c.connected(t0);
        assert!(c.timed_out(later, limit).is_none(), "nothing outstanding");
        let spec = PayloadSpec::Random { size: 10, seed: 1 };
        c.stage(&plan(&spec, None, t0), t0, &mut b);
        assert_eq!(
            c.timed_out(later, limit).map(|e| e.kind()),
            Some(crate::error::ErrorKind::Timeout)
        );
        assert!(
            c.timed_out(later + Duration::from_secs(3600), Duration::ZERO)
                .is_none(),
            "--timeout 0: never"
        );
    }
}
