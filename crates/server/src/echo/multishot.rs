//! [`MultiEcho`]: the echo state machine of a completion-model connection, whose multishot
//! receive into pooled buffers stays armed while its echo is sent (or, for small messages on a
//! busy worker, one receive per message once its echo is out), with the receive modes, the
//! arrivals and the to-do list it speaks.

#[cfg(doc)]
use super::Echo;
use super::{SendResult, Waiting};

/// How a [`MultiEcho`] connection receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvMode {
    /// A multishot receive into pooled buffers, armed until cancelled or ended.
    Multi,
    /// One receive; `nowait` fails with `WouldBlock` rather than wait (draining).
    Once {
        /// Do not wait for data.
        nowait: bool,
    },
}

/// How a pooled receive ended or what it produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrived {
    /// A chunk of `n > 0` bytes, in the buffer given along.
    Data(usize),
    /// The peer closed its sending side (FIN).
    Eof,
    /// A `nowait` receive found nothing.
    WouldBlock,
    /// The pool had no buffer (`ENOBUFS`): wait for [`MultiEcho::resume`], then receive again.
    NoBuffers,
    /// The receive was cancelled.
    Cancelled,
    /// Reset or another error: the connection is over.
    Failed,
}

/// What the caller must do after an event, in this order: cancel, send, receive, close.
#[derive(Debug, PartialEq, Eq)]
pub struct Todo<B> {
    /// Cancel the receive in flight (its last completion follows).
    pub cancel_recv: bool,
    /// Cancel the send in flight (forced close).
    pub cancel_send: bool,
    /// Send these buffers, the first from this offset, in one operation (they come back with
    /// the send's completion, in the same vector, for [`MultiEcho::on_send`]).
    pub send: Option<(Vec<B>, usize)>,
    /// Start a receive.
    pub recv: Option<RecvMode>,
    /// Nothing is in flight any more: give back [`MultiEcho::take_queued`] and close.
    pub close: bool,
}

impl<B> Default for Todo<B> {
    fn default() -> Self {
        Todo {
            cancel_recv: false,
            cancel_send: false,
            send: None,
            recv: None,
            close: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Off,
    On(RecvMode),
    Cancelling,
}

/// The echo state of one connection of the completion model, with multishot receives.
///
/// The rules are [`Echo`]'s, for a connection whose receive stays armed while its echo is
/// sent, so chunks may arrive before the previous one is echoed:
///
/// - **Bounded memory.** Received chunks wait in a queue (buffers of the port's pool, `B`),
///   echoed in order, one send at a time. When the bytes not yet echoed reach `limit`, or the
///   queue holds `max_chunks` buffers, the receive is cancelled: the peer's further bytes wait
///   in the kernel (backpressure), and the receive is armed again once half of it is echoed.
///   The receive is armed with the bytes left under the bound ([`room`](MultiEcho::room)),
///   which the port passes to the kernel (Linux 6.16+) or enforces itself (epoll), so it ends
///   by itself once the bound is reached: the queue passes it by one chunk at most. Where the
///   kernel takes no limit, a multishot receive may deliver what it had already taken before
///   the cancel lands (up to 32 chunks per wake-up).
/// - **No buffer while idle.** The receive takes a buffer only when bytes arrive.
/// - **Small messages on a busy worker** ([`Bounds::with_single`]): one receive per message,
///   armed once its echo is out, instead of the multishot (cancelled when the echo of what it
///   brought is out); a bulk chunk (a full pool buffer) brings the multishot back.
/// - **An empty pool** ends the receive ([`Arrived::NoBuffers`]): the connection waits (it is
///   not the peer's fault, no timeout applies) until [`resume`](MultiEcho::resume).
/// - **Partial sends** continue where they stopped.
/// - **Half-close**: after the peer's FIN, what is queued is echoed, then the connection
///   closes.
/// - **Draining**: a multishot receive is cancelled; from then on receives are single and do
///   not wait, so what the peer already sent is echoed and the connection closes when no byte
///   is left.
/// - **Forced close** (drain timeout, timeouts, errors): everything in flight is cancelled and
///   the connection closes once both completions are in.
///
/// An idle connection that never received a byte holds no allocation, and the state itself is
/// small (a connection table holds one per connection; `tests::an_idle_connection_is_small`):
/// the chunk queues and the counts of what waits for its echo are out of line, made at the
/// first chunk.
#[derive(Debug)]
pub struct MultiEcho<B> {
    /// The chunks, the send vector and the counts of what is unechoed, once a chunk has
    /// arrived (until then nothing is).
    chunks: Option<Box<Chunks<B>>>,
    recv: RecvState,
    /// The connection's conditions, one bit each (see [`Flags`]): one byte rather than a
    /// `bool` per condition, so the state stays small.
    flags: Flags,
    /// The caller's mark (see [`mark`](MultiEcho::mark)).
    mark: u32,
}

/// The bounds of what a connection holds unechoed: the same for every connection of a
/// worker, so the worker passes them to each step of [`MultiEcho`] rather than every
/// connection storing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    limit: u32,
    max_chunks: u32,
    /// A chunk of at least this many bytes (a pool buffer's worth) is bulk.
    bulk: u32,
    /// Small messages are received one receive each, after their echo is out (see
    /// [`Bounds::with_single`]).
    single: bool,
}

impl Bounds {
    /// At most `limit` bytes and `max_chunks` buffers waiting for their echo (both at least 1;
    /// a bound past `u32::MAX` is `u32::MAX`).
    pub fn new(limit: usize, max_chunks: usize) -> Bounds {
        Bounds {
            limit: u32::try_from(limit).unwrap_or(u32::MAX).max(1),
            max_chunks: u32::try_from(max_chunks).unwrap_or(u32::MAX).max(1),
            bulk: u32::MAX,
            single: false,
        }
    }

    /// The same bounds, where a chunk of `bytes` or more (a full pool buffer) is bulk: a
    /// connection whose last chunk was bulk keeps a multishot receive armed whatever
    /// [`with_single`](Self::with_single) says.
    pub fn with_bulk(self, bytes: usize) -> Bounds {
        Bounds {
            bulk: u32::try_from(bytes).unwrap_or(u32::MAX).max(1),
            ..self
        }
    }

    /// The same bounds, where a connection exchanging small messages (its last chunk not
    /// bulk) receives once per message, armed when the echo of the last one is out, rather
    /// than with a multishot receive (`single`). A busy worker asks for it: by the time its
    /// echo is out and the receive is submitted, the peer's next message has usually arrived,
    /// so the receive completes as it is submitted, and no wake-up of the worker is queued
    /// when the peer's bytes arrive (which an armed receive costs the peer's CPU, per
    /// message). An idle worker does not: its receive would wait anyway, and a multishot one
    /// is armed once.
    pub fn with_single(self, single: bool) -> Bounds {
        Bounds { single, ..self }
    }

    /// The most chunks a queue can hold: the buffer bound, passed by what one receive
    /// delivers after it (up to the byte bound's worth of buffers), and one.
    fn most_chunks(self) -> usize {
        2 * self.max_chunks as usize + 2
    }
}

/// A chunk arrived since the last [`flush`](MultiEcho::flush).
const UNFLUSHED: u8 = 1;
/// A send is in flight.
const SENDING: u8 = 1 << 1;
/// No more bytes will be read (FIN, or a draining receive found nothing).
const READ_DONE: u8 = 1 << 2;
/// Waiting for pool buffers ([`Arrived::NoBuffers`]).
const STARVED: u8 = 1 << 3;
/// Graceful shutdown: receives do not wait.
const DRAINING: u8 = 1 << 4;
/// Whatever is in flight is cancelled; the connection closes once its completions are in.
const FORCED: u8 = 1 << 5;
/// The close was asked for.
const CLOSING: u8 = 1 << 6;
/// The last chunk was bulk (a full pool buffer or more): the receive stays multishot.
const BULK: u8 = 1 << 7;

/// A set of a connection's conditions ([`UNFLUSHED`], [`SENDING`], ...), one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags(u8);

impl Flags {
    /// Whether the condition `flag` holds.
    fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// Sets the condition `flag` to `on`.
    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

/// The received chunks of a connection, out of line (see [`MultiEcho`]).
#[derive(Debug)]
struct Chunks<B> {
    /// Received chunks waiting for their echo, in order, with their lengths. The first
    /// `in_flight` are in the send in flight.
    queue: std::collections::VecDeque<(Option<B>, usize)>,
    /// The vector the buffers of a send travel in, kept from send to send (`None` while a send
    /// is in flight): no allocation per message.
    spare: Option<Vec<B>>,
    /// Bytes received and not yet echoed (queued and in flight).
    pending: usize,
    /// Where the front chunk's echo resumes (within one chunk, which a receive filled).
    at: u32,
    /// How many chunks at the queue's front are in the send in flight: their buffers are out,
    /// in the operation (at most [`SEND_BUFS_MAX`]).
    in_flight: u16,
}

/// The most chunks one send carries (the port's limit for a gathered send).
const SEND_BUFS_MAX: usize = ringport_port::op::SEND_BUFS_MAX;

impl<B> MultiEcho<B> {
    /// A new connection within the bounds `b` (every step of the connection is passed the
    /// same), and its first step (a receive).
    pub fn start(draining: bool, b: Bounds) -> (MultiEcho<B>, Todo<B>) {
        let mut echo = MultiEcho {
            chunks: None,
            recv: RecvState::Off,
            flags: Flags::default(),
            mark: 0,
        };
        echo.flags.set(DRAINING, draining);
        let todo = echo.next(true, b);
        (echo, todo)
    }

    /// A number the caller keeps with the state (the completion model: when the connection
    /// last made progress, in its worker's clock), 0 at the start. The state has room for it
    /// (the pointer of its chunks sets its size; the rest would be padding), so the caller's
    /// connection does not spend 4 bytes more on it.
    pub fn mark(&self) -> u32 {
        self.mark
    }

    /// Sets the caller's [`mark`](Self::mark).
    pub fn set_mark(&mut self, mark: u32) {
        self.mark = mark;
    }

    /// Bytes received and not yet echoed.
    pub fn pending(&self) -> usize {
        self.chunks.as_ref().map_or(0, |c| c.pending)
    }

    /// Bytes the connection may still take before it passes its bound (at least 1): the limit
    /// for a multishot receive, so that a burst cannot overshoot it.
    pub fn room(&self, b: Bounds) -> usize {
        (b.limit as usize).saturating_sub(self.pending()).max(1)
    }

    /// Buffers held: queued, and those being sent.
    pub fn held(&self) -> usize {
        self.chunks.as_ref().map_or(0, |c| c.queue.len())
    }

    /// A chunk arrived since the last [`flush`](Self::flush): its echo waits for it.
    pub fn is_unflushed(&self) -> bool {
        self.flags.has(UNFLUSHED)
    }

    /// The close was asked for.
    pub fn is_closing(&self) -> bool {
        self.flags.has(CLOSING)
    }

    /// Waiting for pool buffers ([`Arrived::NoBuffers`]).
    pub fn is_starved(&self) -> bool {
        self.flags.has(STARVED)
    }

    /// What the connection waits for now, which decides the timeout that applies.
    pub fn waiting(&self) -> Waiting {
        if self.flags.has(CLOSING) || self.flags.has(FORCED) {
            Waiting::Nothing
        } else if self.held() > 0 {
            Waiting::PeerReading
        } else if self.recv == RecvState::On(RecvMode::Multi)
            || self.recv == RecvState::On(RecvMode::Once { nowait: false })
        {
            Waiting::PeerData
        } else {
            Waiting::Nothing
        }
    }

    /// The queued buffers (not those in a send in flight, which come back with its
    /// completion), for the caller to give back when it closes.
    pub fn take_queued(&mut self) -> impl Iterator<Item = B> + '_ {
        (self.chunks.as_mut().map(|c| {
            c.pending = 0;
            c.at = 0;
            let skip = usize::from(c.in_flight);
            c.queue.drain(skip..)
        }))
        .into_iter()
        .flatten()
        .filter_map(|(b, _)| b)
    }

    /// Whether the connection receives once per message (see [`Bounds::with_single`]).
    fn single(&self, b: Bounds) -> bool {
        b.single && !self.flags.has(BULK)
    }

    fn over_bounds(&self, b: Bounds) -> bool {
        self.pending() >= b.limit as usize || self.held() >= b.max_chunks as usize
    }

    /// Decides what to start or stop now; a send only when `send` (see [`flush`](Self::flush)).
    fn next(&mut self, send: bool, b: Bounds) -> Todo<B> {
        let mut todo = Todo::default();
        if self.flags.has(CLOSING) {
            return todo;
        }
        if self.flags.has(FORCED) {
            if matches!(self.recv, RecvState::On(_)) {
                self.recv = RecvState::Cancelling;
                todo.cancel_recv = true;
            }
            if self.recv == RecvState::Off && !self.flags.has(SENDING) {
                self.flags.set(CLOSING, true);
                todo.close = true;
            }
            return todo;
        }
        let most = b.most_chunks();
        if let Some(chunks) = self
            .chunks
            .as_mut()
            .filter(|c| send && !self.flags.has(SENDING) && !c.queue.is_empty())
        {
            // Everything queued goes in one send (a gathered write): few large operations.
            let mut bufs = chunks.spare.take().unwrap_or_default();
            if bufs.capacity() == 0 {
                bufs.reserve(most.min(SEND_BUFS_MAX));
            }
            for (buf, _) in chunks.queue.iter_mut().take(SEND_BUFS_MAX) {
                bufs.extend(buf.take());
            }
            chunks.in_flight = u16::try_from(bufs.len()).expect("at most SEND_BUFS_MAX");
            self.flags.set(SENDING, true);
            todo.send = Some((bufs, chunks.at as usize));
        }
        match self.recv {
            RecvState::On(RecvMode::Multi) if self.flags.has(DRAINING) || self.over_bounds(b) => {
                self.recv = RecvState::Cancelling;
                todo.cancel_recv = true;
            }
            // A receive that waits for the peer's data stops at the drain.
            RecvState::On(RecvMode::Once { nowait: false }) if self.flags.has(DRAINING) => {
                self.recv = RecvState::Cancelling;
                todo.cancel_recv = true;
            }
            // Small messages on a busy worker, all echoed: one receive per message from now
            // on (the multishot's end, cancelled, arms it once the echo is out).
            RecvState::On(RecvMode::Multi)
                if send && self.single(b) && !self.flags.has(SENDING) && self.held() == 0 =>
            {
                self.recv = RecvState::Cancelling;
                todo.cancel_recv = true;
            }
            RecvState::Off if !self.flags.has(READ_DONE) && !self.flags.has(STARVED) => {
                // Resume below half of the bounds, so a slow reader is not woken per chunk.
                let room =
                    self.pending() <= b.limit as usize / 2 && self.held() < b.max_chunks as usize;
                let echoing = self.flags.has(SENDING) || self.held() > 0;
                let mode = if self.flags.has(DRAINING) {
                    Some(RecvMode::Once { nowait: true })
                } else if !self.single(b) {
                    Some(RecvMode::Multi)
                } else if !echoing {
                    Some(RecvMode::Once { nowait: false })
                } else {
                    // One receive per message: armed when the echo is out (`on_send`).
                    None
                };
                if let (true, Some(mode)) = (room, mode) {
                    self.recv = RecvState::On(mode);
                    todo.recv = Some(mode);
                }
            }
            _ => {}
        }
        if self.flags.has(READ_DONE)
            && self.recv == RecvState::Off
            && !self.flags.has(SENDING)
            && self.held() == 0
        {
            self.flags.set(CLOSING, true);
            todo.close = true;
        }
        todo
    }

    /// A receive produced a chunk or ended (`more` false: it is no longer armed). `buf` holds
    /// the chunk of [`Arrived::Data`] (at most `u32::MAX` bytes, as a pool buffer); `None` when the caller appended it to
    /// [`last_queued`](Self::last_queued). A chunk is not sent before [`flush`](Self::flush).
    pub fn on_recv(&mut self, arrived: Arrived, buf: Option<B>, more: bool, b: Bounds) -> Todo<B> {
        if !more {
            self.recv = RecvState::Off;
        }
        match (arrived, buf) {
            (Arrived::Data(n), Some(buf)) => {
                self.flags.set(UNFLUSHED, true);
                self.flags.set(BULK, n >= b.bulk as usize);
                let most = b.most_chunks();
                // Once, at the first chunk (an idle connection holds nothing): room for the
                // most the bounds let it hold, so the queue never grows per message.
                let chunks = self.chunks.get_or_insert_with(|| {
                    Box::new(Chunks {
                        queue: std::collections::VecDeque::with_capacity(most),
                        spare: Some(Vec::new()),
                        pending: 0,
                        at: 0,
                        in_flight: 0,
                    })
                });
                chunks.pending += n;
                chunks.queue.push_back((Some(buf), n));
            }
            (Arrived::Data(n), None) => match self.chunks.as_deref_mut() {
                // Appended by the caller to the last queued chunk (see `last_queued`).
                Some(Chunks { queue, pending, .. })
                    if matches!(queue.back(), Some((Some(_), _))) =>
                {
                    if let Some((_, len)) = queue.back_mut() {
                        *len += n;
                    }
                    *pending += n;
                    self.flags.set(UNFLUSHED, true);
                }
                _ => debug_assert!(false, "data without a buffer"),
            },
            (Arrived::Eof, _) => self.flags.set(READ_DONE, true),
            (Arrived::WouldBlock, _) if self.flags.has(DRAINING) => self.flags.set(READ_DONE, true),
            (Arrived::WouldBlock | Arrived::Cancelled, _) => {}
            (Arrived::NoBuffers, _) => self.flags.set(STARVED, true),
            (Arrived::Failed, _) => self.flags.set(FORCED, true),
        }
        // Chunks wait for [`flush`](Self::flush): the caller takes in every completion of a
        // batch first, so that what arrived together leaves in one send.
        let data = matches!(arrived, Arrived::Data(_));
        self.next(!data, b)
    }

    /// Starts the send of what is queued, if no send is in flight: called once the caller
    /// has taken in a batch of completions ([`on_recv`](Self::on_recv) does not send).
    pub fn flush(&mut self, b: Bounds) -> Todo<B> {
        self.flags.set(UNFLUSHED, false);
        self.next(true, b)
    }

    /// The last chunk waiting for its echo (not one being sent), which the caller may append
    /// a new chunk's bytes to, then report [`Arrived::Data`] without a buffer: many small
    /// chunks then hold few buffers.
    pub fn last_queued(&mut self) -> Option<&mut B> {
        (self.chunks.as_mut())
            .and_then(|c| c.queue.back_mut())
            .and_then(|(b, _)| b.as_mut())
    }

    /// Pool buffers are free again: a starved connection receives again.
    pub fn resume(&mut self, b: Bounds) -> Todo<B> {
        self.flags.set(STARVED, false);
        self.next(true, b)
    }

    /// A send of `bufs` (as [`Todo::send`] gave them) finished. Buffers whose echo is
    /// complete (all of them when the connection is being forced closed) go to `done`, for the
    /// caller to give back to the pool; the rest wait for the next send. Returns what to do
    /// next.
    pub fn on_send(
        &mut self,
        result: SendResult,
        mut bufs: Vec<B>,
        mut done: impl FnMut(B),
        b: Bounds,
    ) -> Todo<B> {
        debug_assert!(self.flags.has(SENDING));
        self.flags.set(SENDING, false);
        let Some(chunks) = self.chunks.as_deref_mut() else {
            // A send carries queued chunks: there is none to match.
            debug_assert!(false, "a send without chunks");
            bufs.drain(..).for_each(done);
            return self.next(true, b);
        };
        let sent = usize::from(chunks.in_flight).min(bufs.len());
        chunks.in_flight = 0;
        let Chunks {
            queue, pending, at, ..
        } = chunks;
        match result {
            SendResult::Sent(n) if n > 0 && !self.flags.has(FORCED) => {
                *pending = pending.saturating_sub(n);
                let mut left = n;
                let mut partial = false;
                let mut i = 0;
                for buf in bufs.drain(..) {
                    if !partial {
                        let rest = queue[0].1 - *at as usize;
                        if left >= rest {
                            left -= rest;
                            *at = 0;
                            queue.pop_front();
                            done(buf);
                            continue;
                        }
                        // Partial: this chunk, from here, and the ones after it go first
                        // next time.
                        *at = u32::try_from(*at as usize + left)
                            .expect("a chunk is at most u32::MAX bytes");
                        partial = true;
                    }
                    queue[i].0 = Some(buf);
                    i += 1;
                }
            }
            SendResult::Sent(_) | SendResult::Failed => {
                self.flags.set(FORCED, true);
                for buf in bufs.drain(..) {
                    done(buf);
                }
                for _ in 0..sent {
                    queue.pop_front();
                }
                *at = 0;
            }
        }
        chunks.spare = Some(bufs);
        self.next(true, b)
    }

    /// Graceful shutdown begins: a multishot receive is cancelled (single receives that do not
    /// wait follow), what is queued is echoed.
    pub fn drain(&mut self, b: Bounds) -> Todo<B> {
        self.flags.set(DRAINING, true);
        self.next(true, b)
    }

    /// A timeout expired, or the drain time is up: whatever is in flight is cancelled and the
    /// connection closes once its completions are in.
    pub fn force(&mut self, b: Bounds) -> Todo<B> {
        self.flags.set(DRAINING, true);
        self.flags.set(FORCED, true);
        let mut todo = self.next(true, b);
        if self.flags.has(SENDING) {
            todo.cancel_send = true;
        }
        todo
    }
}

#[cfg(test)]
mod multi_tests {
    use super::*;

    /// A connection table holds one per connection: an idle one holds no allocation and this.
    #[test]
    fn an_idle_connection_is_small() {
        type Pooled = MultiEcho<ringport_port::PoolBuf>;
        let size = std::mem::size_of::<Pooled>();
        assert!(size <= 16, "MultiEcho is {size} bytes");
        let (e, _) = Pooled::start(false, Bounds::new(32 * 1024, 3));
        assert!(
            e.chunks.is_none(),
            "nothing allocated before the first chunk"
        );
    }

    #[test]
    fn bounds_are_at_least_1_and_at_most_u32_max() {
        assert_eq!(Bounds::new(0, 0), Bounds::new(1, 1));
        let b = Bounds::new(usize::MAX, usize::MAX);
        assert_eq!((b.limit, b.max_chunks), (u32::MAX, u32::MAX));
        assert_eq!(Bounds::new(100, 8).most_chunks(), 18);
    }

    /// A connection's echo state with its bounds (a worker passes the same to every step):
    /// buffers are named by a number in these tests.
    struct E {
        echo: MultiEcho<u32>,
        b: Bounds,
    }

    impl std::ops::Deref for E {
        type Target = MultiEcho<u32>;
        fn deref(&self) -> &MultiEcho<u32> {
            &self.echo
        }
    }

    impl std::ops::DerefMut for E {
        fn deref_mut(&mut self) -> &mut MultiEcho<u32> {
            &mut self.echo
        }
    }

    impl E {
        fn start(draining: bool, limit: usize, max_chunks: usize) -> (E, Todo<u32>) {
            let b = Bounds::new(limit, max_chunks);
            let (echo, todo) = MultiEcho::start(draining, b);
            (E { echo, b }, todo)
        }
        fn on_recv(&mut self, arrived: Arrived, buf: Option<u32>, more: bool) -> Todo<u32> {
            self.echo.on_recv(arrived, buf, more, self.b)
        }
        fn flush(&mut self) -> Todo<u32> {
            self.echo.flush(self.b)
        }
        fn resume(&mut self) -> Todo<u32> {
            self.echo.resume(self.b)
        }
        fn on_send(&mut self, r: SendResult, bufs: Vec<u32>, done: impl FnMut(u32)) -> Todo<u32> {
            self.echo.on_send(r, bufs, done, self.b)
        }
        fn drain(&mut self) -> Todo<u32> {
            self.echo.drain(self.b)
        }
        fn force(&mut self) -> Todo<u32> {
            self.echo.force(self.b)
        }
    }

    /// Bounds of 1,000 bytes and 3 buffers, where 100 bytes or more are bulk, on a busy
    /// worker (`single`) or not.
    fn paced(single: bool) -> Bounds {
        Bounds::new(1000, 3).with_bulk(100).with_single(single)
    }

    const ONCE: Option<RecvMode> = Some(RecvMode::Once { nowait: false });

    /// On a busy worker, small messages are received one receive each, and the next receive is
    /// armed only once the echo of the last message is out: never while it is being sent.
    #[test]
    fn a_busy_worker_receives_a_small_message_once_its_echo_is_out() {
        let b = paced(true);
        let (echo, todo) = MultiEcho::<u32>::start(false, b);
        assert_eq!(todo.recv, ONCE, "an idle connection waits with one receive");
        let mut e = E { echo, b };
        let todo = e.on_recv(Arrived::Data(10), Some(1), false);
        assert_eq!(
            todo.recv, None,
            "no receive while the message waits for its echo"
        );
        let todo = e.flush();
        assert_eq!(todo.send, Some((vec![1], 0)));
        assert_eq!(todo.recv, None, "no receive while the echo is being sent");
        assert_eq!(e.waiting(), Waiting::PeerReading);
        // A partial send keeps it waiting.
        let (todo, done) = sent(&mut e, SendResult::Sent(4), vec![1]);
        assert!(done.is_empty());
        assert_eq!((todo.send, todo.recv), (Some((vec![1], 4)), None));
        let (todo, done) = sent(&mut e, SendResult::Sent(6), vec![1]);
        assert_eq!(done, vec![1]);
        assert_eq!(todo.recv, ONCE, "the echo is out: the next receive");
        assert_eq!(e.waiting(), Waiting::PeerData);
    }

    /// A bulk chunk (a full pool buffer) brings the multishot receive back, busy or not; small
    /// chunks on a busy worker then end it (cancelled once their echo is out), and single
    /// receives follow.
    #[test]
    fn bulk_keeps_the_multishot_receive_and_small_messages_end_it_on_a_busy_worker() {
        let b = paced(true);
        let (echo, _) = MultiEcho::<u32>::start(false, b);
        let mut e = E { echo, b };
        let todo = e.on_recv(Arrived::Data(100), Some(1), false);
        assert_eq!(
            todo.recv,
            Some(RecvMode::Multi),
            "bulk: a receive is armed while the echo waits and is sent"
        );
        assert_eq!(e.flush().send, Some((vec![1], 0)));
        let (todo, _) = sent(&mut e, SendResult::Sent(100), vec![1]);
        assert!(
            !todo.cancel_recv,
            "the last chunk was bulk: the multishot stays"
        );
        // A small message behind it: its echo out, the multishot is cancelled.
        let todo = data(&mut e, 2, 10);
        assert!(!todo.cancel_recv, "not while its echo is being sent");
        let (todo, _) = sent(&mut e, SendResult::Sent(10), vec![2]);
        assert!(todo.cancel_recv);
        assert_eq!(todo.recv, None);
        let todo = e.on_recv(Arrived::Cancelled, None, false);
        assert_eq!(todo.recv, ONCE, "one receive per message from now on");
    }

    /// An idle worker keeps the multishot receive for small messages too; a worker that turns
    /// busy ends it at the next echo of a small message.
    #[test]
    fn an_idle_worker_keeps_the_multishot_receive() {
        let (echo, todo) = MultiEcho::<u32>::start(false, paced(false));
        assert_eq!(todo.recv, Some(RecvMode::Multi));
        let mut e = E {
            echo,
            b: paced(false),
        };
        data(&mut e, 1, 10);
        let (todo, _) = sent(&mut e, SendResult::Sent(10), vec![1]);
        assert!(!todo.cancel_recv && todo.recv.is_none(), "{todo:?}");
        e.b = paced(true);
        data(&mut e, 2, 10);
        let (todo, _) = sent(&mut e, SendResult::Sent(10), vec![2]);
        assert!(todo.cancel_recv, "busy now: {todo:?}");
    }

    /// A single receive waiting for the peer's data stops at the drain (cancelled, then a
    /// receive that does not wait takes what already arrived), and at a forced close.
    #[test]
    fn a_waiting_single_receive_is_cancelled_at_the_drain_and_at_a_forced_close() {
        for forced in [false, true] {
            let b = paced(true);
            let (echo, todo) = MultiEcho::<u32>::start(false, b);
            assert_eq!(todo.recv, ONCE);
            let mut e = E { echo, b };
            let todo = if forced { e.force() } else { e.drain() };
            assert!(todo.cancel_recv, "forced {forced}: {todo:?}");
            let todo = e.on_recv(Arrived::Cancelled, None, false);
            if forced {
                assert!(todo.close, "{todo:?}");
            } else {
                assert_eq!(todo.recv, Some(RecvMode::Once { nowait: true }));
            }
        }
    }

    /// A chunk arrives and the batch ends (the caller flushes).
    fn data(e: &mut E, buf: u32, n: usize) -> Todo<u32> {
        let todo = e.on_recv(Arrived::Data(n), Some(buf), true);
        let flushed = e.flush();
        Todo {
            send: flushed.send,
            ..todo
        }
    }

    /// Completes the send of `bufs`; returns what to do next and the buffers done with.
    fn sent(e: &mut E, result: SendResult, bufs: Vec<u32>) -> (Todo<u32>, Vec<u32>) {
        let mut done = Vec::new();
        let todo = e.on_send(result, bufs, |b| done.push(b));
        (todo, done)
    }

    #[test]
    fn an_idle_connection_keeps_one_multishot_receive_and_no_buffer() {
        let (e, todo) = E::start(false, 100, 8);
        assert_eq!(todo.recv, Some(RecvMode::Multi));
        assert_eq!((e.held(), e.pending()), (0, 0));
        assert_eq!(e.waiting(), Waiting::PeerData);
    }

    #[test]
    fn chunks_are_echoed_in_order_everything_queued_in_one_send_while_receiving_goes_on() {
        let (mut e, _) = E::start(false, 100, 8);
        let todo = data(&mut e, 1, 5);
        assert_eq!(todo.send, Some((vec![1], 0)));
        assert_eq!(todo.recv, None, "the multishot receive is still armed");
        assert_eq!(e.waiting(), Waiting::PeerReading);
        let todo = data(&mut e, 2, 3);
        assert_eq!(todo, Todo::default(), "queued behind the send in flight");
        data(&mut e, 3, 4);
        assert_eq!((e.pending(), e.held()), (12, 3));
        let (todo, done) = sent(&mut e, SendResult::Sent(5), vec![1]);
        assert_eq!(done, vec![1], "an echoed buffer goes back to the pool");
        assert_eq!(
            todo.send,
            Some((vec![2, 3], 0)),
            "both queued chunks in one send"
        );
        let (todo, done) = sent(&mut e, SendResult::Sent(7), vec![2, 3]);
        assert_eq!((todo, done), (Todo::default(), vec![2, 3]));
        assert_eq!((e.pending(), e.held()), (0, 0));
        assert_eq!(e.waiting(), Waiting::PeerData);
    }

    #[test]
    fn chunks_of_one_batch_leave_in_one_send() {
        let (mut e, _) = E::start(false, 100, 8);
        for (buf, n) in [(1, 10), (2, 10), (3, 4)] {
            assert_eq!(
                e.on_recv(Arrived::Data(n), Some(buf), true),
                Todo::default()
            );
        }
        assert_eq!(e.flush().send, Some((vec![1, 2, 3], 0)));
        assert_eq!(e.flush(), Todo::default(), "one send in flight at a time");
    }

    #[test]
    fn partial_sends_continue_where_they_stopped_across_chunks() {
        let (mut e, _) = E::start(false, 100, 8);
        data(&mut e, 1, 10);
        data(&mut e, 2, 4);
        data(&mut e, 3, 6);
        let (todo, done) = sent(&mut e, SendResult::Sent(3), vec![1]);
        assert_eq!((todo.send, done), (Some((vec![1, 2, 3], 3)), vec![]));
        // 7 finish chunk 1, 2 of chunk 2's 4.
        let (todo, done) = sent(&mut e, SendResult::Sent(9), vec![1, 2, 3]);
        assert_eq!((todo.send, done), (Some((vec![2, 3], 2)), vec![1]));
        assert_eq!(e.pending(), 8);
        let (todo, done) = sent(&mut e, SendResult::Sent(8), vec![2, 3]);
        assert_eq!((todo.send, done), (None, vec![2, 3]));
        assert_eq!((e.pending(), e.held()), (0, 0));
    }

    #[test]
    fn unsent_bytes_past_the_bound_stop_receiving_until_half_is_echoed() {
        let (mut e, _) = E::start(false, 10, 100);
        data(&mut e, 1, 6);
        let todo = data(&mut e, 2, 6);
        assert!(todo.cancel_recv, "12 unsent bytes pass the bound of 10");
        // The cancelled receive may still deliver what it had taken.
        let todo = data(&mut e, 3, 4);
        assert!(!todo.cancel_recv, "cancelled once");
        assert_eq!(e.on_recv(Arrived::Cancelled, None, false).recv, None);
        assert_eq!(e.pending(), 16);
        let (todo, _) = sent(&mut e, SendResult::Sent(6), vec![1]);
        assert_eq!(
            (todo.send, todo.recv),
            (Some((vec![2, 3], 0)), None),
            "10 left: still over"
        );
        let (todo, _) = sent(&mut e, SendResult::Sent(8), vec![2, 3]);
        assert_eq!(
            (todo.send, todo.recv),
            (Some((vec![3], 2)), Some(RecvMode::Multi)),
            "2 left, under half the bound: receive again"
        );
    }

    #[test]
    fn a_peer_sending_many_small_chunks_is_bounded_by_buffers_too() {
        let (mut e, _) = E::start(false, 1 << 20, 3);
        data(&mut e, 1, 1);
        data(&mut e, 2, 1);
        let todo = data(&mut e, 3, 1);
        assert!(todo.cancel_recv, "three buffers held");
    }

    #[test]
    fn only_chunks_not_in_flight_can_be_appended_to() {
        let (mut e, _) = E::start(false, 100, 8);
        data(&mut e, 1, 5);
        assert_eq!(e.last_queued(), None, "chunk 1 is being sent");
        data(&mut e, 2, 5);
        assert_eq!(e.last_queued(), Some(&mut 2));
        assert_eq!(e.on_recv(Arrived::Data(3), None, true), Todo::default());
        assert_eq!(e.pending(), 13);
        let (todo, _) = sent(&mut e, SendResult::Sent(5), vec![1]);
        assert_eq!(todo.send, Some((vec![2], 0)));
        let (_, done) = sent(&mut e, SendResult::Sent(8), vec![2]);
        assert_eq!(
            done,
            vec![2],
            "the appended bytes were echoed with their chunk"
        );
    }

    #[test]
    fn an_empty_pool_makes_the_connection_wait_not_fail() {
        let (mut e, _) = E::start(false, 100, 8);
        let todo = e.on_recv(Arrived::NoBuffers, None, false);
        assert_eq!(todo, Todo::default());
        assert!(e.is_starved());
        assert_eq!(
            e.waiting(),
            Waiting::Nothing,
            "not the peer's fault: no timeout"
        );
        assert_eq!(e.resume().recv, Some(RecvMode::Multi));
        assert!(!e.is_starved());
    }

    #[test]
    fn half_close_echoes_what_is_queued_then_closes() {
        let (mut e, _) = E::start(false, 100, 8);
        data(&mut e, 1, 5);
        data(&mut e, 2, 5);
        assert_eq!(e.on_recv(Arrived::Eof, None, false), Todo::default());
        let (todo, _) = sent(&mut e, SendResult::Sent(5), vec![1]);
        assert_eq!((todo.send, todo.close), (Some((vec![2], 0)), false));
        let (todo, done) = sent(&mut e, SendResult::Sent(5), vec![2]);
        assert_eq!((todo.close, done), (true, vec![2]));
        assert!(e.is_closing());
    }

    #[test]
    fn drain_cancels_the_multishot_receive_then_reads_without_waiting_until_nothing_is_left() {
        let (mut e, _) = E::start(false, 100, 8);
        let todo = e.drain();
        assert!(todo.cancel_recv);
        let todo = e.on_recv(Arrived::Cancelled, None, false);
        assert_eq!(todo.recv, Some(RecvMode::Once { nowait: true }));
        let todo = e.on_recv(Arrived::Data(7), Some(1), false);
        assert_eq!(todo.send, None, "sent at the flush");
        assert_eq!(todo.recv, Some(RecvMode::Once { nowait: true }));
        assert_eq!(e.flush().send, Some((vec![1], 0)));
        let todo = e.on_recv(Arrived::WouldBlock, None, false);
        assert!(!todo.close, "the echo is still in flight");
        let (todo, done) = sent(&mut e, SendResult::Sent(7), vec![1]);
        assert_eq!((todo.close, done), (true, vec![1]));
    }

    #[test]
    fn connections_accepted_while_draining_never_wait() {
        let (e, todo) = E::start(true, 100, 8);
        assert_eq!(todo.recv, Some(RecvMode::Once { nowait: true }));
        assert_eq!(e.waiting(), Waiting::Nothing);
    }

    #[test]
    fn force_cancels_both_directions_and_closes_when_both_are_in() {
        let (mut e, _) = E::start(false, 100, 8);
        data(&mut e, 1, 5);
        data(&mut e, 2, 5);
        let todo = e.force();
        assert!(todo.cancel_recv && todo.cancel_send);
        assert!(!todo.close);
        assert_eq!(e.on_recv(Arrived::Cancelled, None, false), Todo::default());
        let (todo, done) = sent(&mut e, SendResult::Failed, vec![1]);
        assert_eq!((todo.close, done), (true, vec![1]));
        assert_eq!(e.take_queued().collect::<Vec<_>>(), vec![2], "for the pool");
        assert_eq!(e.force(), Todo::default(), "nothing left once closing");
    }

    #[test]
    fn a_close_while_a_send_is_in_flight_leaves_its_buffers_to_its_completion() {
        let (mut e, _) = E::start(false, 100, 8);
        data(&mut e, 1, 5);
        data(&mut e, 2, 5);
        assert_eq!(
            e.take_queued().collect::<Vec<_>>(),
            vec![2],
            "chunk 1 is in the send"
        );
    }

    #[test]
    fn errors_close_and_zero_byte_sends_do_not_spin() {
        let (mut e, _) = E::start(false, 100, 8);
        assert!(e.on_recv(Arrived::Failed, None, false).close);
        let (mut e, _) = E::start(false, 100, 8);
        data(&mut e, 1, 5);
        let (todo, done) = sent(&mut e, SendResult::Sent(0), vec![1]);
        assert!(todo.cancel_recv, "the receive still armed is cancelled");
        assert_eq!(done, vec![1]);
        assert!(e.on_recv(Arrived::Cancelled, None, false).close);
    }
}
