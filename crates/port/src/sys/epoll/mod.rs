//! The epoll backend: completions emulated from readiness, where io_uring cannot be used.
//!
//! The driver plays the kernel's part of io_uring: it is handed the same operations, carries them
//! out with ordinary non-blocking system calls, and reports the same
//! [`RawCompletion`]s with the same results (bytes or a new fd, `-errno`), as the
//! [driver contract](super#the-driver-contract) asks. The port above it cannot tell the two
//! apart, which is what lets every test run on both.
//!
//! # How an operation is carried out
//!
//! - **At once when pushed.** Nop, Shutdown and Close are plain system calls made on the spot
//!   (`close(2)` is synchronous here). Recv, Send and Accept are *tried* on the spot when nothing
//!   of theirs is queued ahead of them on the same fd and direction; most sends and many receives
//!   finish there and never touch epoll. Connect starts a non-blocking connect on the spot. The
//!   result is held until the next [`wait`](Driver::wait), as a ring would hold it.
//! - **When the fd becomes ready.** An operation that would block joins its fd's queue for its
//!   direction (read: Recv, Accept; write: Send, Connect), and the fd is registered with epoll.
//!   When epoll reports the direction ready, the queue is worked from the front until an
//!   operation would block again. So several operations may wait on one fd at once (a recv and a
//!   send on one socket, as the pipelining stress client has), and operations of one fd and
//!   direction complete in the order they were submitted.
//!
//! # Datagrams in batches
//!
//! A `RecvFromMulti` is a multishot receive whose every turn is one `recvmmsg` of up to
//! [`DGRAM_BATCH`] datagrams into pool buffers (each laid out as io_uring's multishot `recvmsg`
//! fills one, see [`crate::sys::dgram`]). A `SendBufTo` is not tried when pushed: the ones pushed
//! between two `wait`s are sent by the second, consecutive ones on one socket together in
//! `sendmmsg` calls of up to [`DGRAM_BATCH`] (again for the rest when a call sends fewer; a
//! datagram refused completes with its error; on `EAGAIN` the rest join the socket's write
//! queue like any send).
//!
//! # Edge-triggered
//!
//! An fd is registered once, for `EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`, while something
//! waits on it: no `epoll_ctl` per operation. Edge triggering is sound here because a queue is
//! only ever left non-empty after its front operation got `EAGAIN`, and a new edge follows every
//! `EAGAIN`; a queue that empties without one is tried afresh when the next operation is pushed.
//! The price is an occasional spurious event (the `EPOLLOUT` that follows registration), which
//! costs one failed attempt at most.
//!
//! An fd stays registered for as long as operations wait on it and across the rest of that
//! `wait`; one whose queues are still empty at the start of the next `wait` is removed
//! (`EPOLL_CTL_DEL`). While registered, the driver holds its own handle on the fd, so the
//! descriptor cannot be closed and its number reused by a new socket underneath a live
//! registration: a stale event can never reach another connection's operations. A Close
//! lets go of the driver's own handle on the fd first (if nothing waits on it), so the close
//! is real and synchronous.
//!
//! # Blocking mode is left alone
//!
//! Sockets handed to the port are blocking, which io_uring's fallback to worker threads relies
//! on (some kernels also answer `EAGAIN` instead of waiting on an `O_NONBLOCK` socket). So this
//! driver never changes a connected socket's file status flags: Recv and Send pass
//! `MSG_DONTWAIT` per call. Two calls have no such flag:
//!
//! - `accept4` takes its non-blocking mode from the listener, so a listener's first Accept sets
//!   `O_NONBLOCK` on it, and it stays set. io_uring's accept is not affected by that flag (it
//!   waits for a connection either way; `tests/port.rs` checks this) and accepted sockets do not
//!   inherit it.
//! - `connect` is made with `O_NONBLOCK` set for the duration of the call only; the connection
//!   then proceeds in the background whatever the flag, and its end is seen as `EPOLLOUT`, read
//!   with `SO_ERROR`.
//!
//! # Cost
//!
//! No allocation per operation: waiting operations are linked through a per-slot array that
//! mirrors the operation table, and fds are found by number in a vector. One `epoll_wait` per
//! `wait` (a second only when the first was woken by events that completed nothing and time is
//! left). The timeout is kept to the nanosecond with `epoll_pwait2` (Linux 5.11+, called as a raw
//! system call so that no recent libc is needed); where that call is missing (`ENOSYS`) or
//! filtered out (`EPERM`), the driver switches to `epoll_wait` for good and rounds timeouts up
//! to whole milliseconds.
//!
//! # Layout
//!
//! - this module: the driver (what it does with a pushed operation, cancellation, `wait`);
//! - [`attempt`]: one non-blocking attempt at each kind of operation;
//! - [`waiters`]: the per-fd, per-direction queues of operations waiting for readiness;
//! - [`sys`]: the system calls, each behind a safe function (every `unsafe` block of the
//!   backend).

mod attempt;
mod sys;
mod waiters;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::op::{Op, PoolBuf, SharedFd, DGRAM_BATCH, DGRAM_HEADROOM};
use crate::sys::pool::BufPool;
use crate::sys::sockaddr::SockAddrBuf;
use crate::sys::{Driver, OpState, RawCompletion, Waker};
use crate::table::{InFlight, OpTable, Work};
use crate::token::{OpKind, Token, WAKE};

use attempt::{attempt, Progress};
use waiters::{Dir, Waiters};

/// The epoll key of the wake-up eventfd (fd keys are non-negative `i32`s).
const WAKE_KEY: u64 = u64::MAX;
/// What every waited-on fd is registered for.
const INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
const READ_READY: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_READY: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// One epoll instance and the operations waiting on it.
pub(crate) struct EpollDriver {
    epfd: OwnedFd,
    wake: Arc<Waker>,
    /// Why io_uring was not used, when the port fell back to this backend.
    fallback: Option<String>,
    events: Vec<libc::epoll_event>,
    waiters: Waiters,
    /// Completions produced outside `wait` (at push, by cancel), delivered by the next `wait`.
    ready: Vec<RawCompletion>,
    /// `epoll_pwait2` has not failed with ENOSYS or EPERM yet.
    pwait2: bool,
    /// Fds whose multishot receive stopped before the socket was drained, to work again at
    /// the next `wait`; and the list being worked (swapped, so neither allocates per turn).
    again: Vec<RawFd>,
    again_now: Vec<RawFd>,
    /// Datagram sends from pool buffers pushed since the last `wait`, sent by it in `sendmmsg`
    /// calls (see [`EpollDriver::send_dgrams`]).
    dgram_sends: Vec<Token>,
}

impl fmt::Debug for EpollDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpollDriver")
            .field("epfd", &self.epfd.as_raw_fd())
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

impl EpollDriver {
    /// An epoll instance watching its waker, a non-blocking eventfd; `events` is how many
    /// readiness events one `epoll_wait` may return; `fallback`, why io_uring was not used.
    pub fn new(events: u32, fallback: Option<String>) -> io::Result<EpollDriver> {
        let wake = Arc::new(Waker::new(true)?);
        let epfd = sys::epoll_create()?;
        let ret = sys::epoll_add(&epfd, wake.fd().as_raw_fd(), libc::EPOLLIN as u32, WAKE_KEY);
        if ret < 0 {
            return Err(io::Error::from_raw_os_error(-ret));
        }
        let events = events.clamp(64, 4096) as usize;
        Ok(EpollDriver {
            epfd,
            wake,
            fallback,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; events],
            waiters: Waiters::with_capacity(256),
            ready: Vec::with_capacity(256),
            pwait2: true,
            again: Vec::with_capacity(64),
            again_now: Vec::with_capacity(64),
            dgram_sends: Vec::with_capacity(256),
        })
    }

    /// Removes `fd` from the epoll set and drops the driver's handle, if nothing waits on it.
    fn forget(&mut self, fd: RawFd) {
        let epfd = &self.epfd;
        self.waiters.release(fd, |fd| sys::epoll_del(epfd, fd));
    }

    /// Queues `token` behind the operations waiting on `fd` in direction `dir`, registering the
    /// fd with epoll if needed. On failure the operation completes with the error.
    fn enqueue(&mut self, token: Token, fd: &SharedFd, dir: Dir) {
        let raw = fd.as_raw_fd();
        let state = self.waiters.hold(fd);
        if !state.registered {
            let ret = sys::epoll_add(&self.epfd, raw, INTEREST, raw as u64);
            if ret < 0 {
                self.ready.push(RawCompletion::new(token, ret, 0));
                self.waiters.note_if_idle(raw);
                return;
            }
            state.registered = true;
        }
        self.waiters.link(token, raw, dir);
    }

    /// Sends the datagrams pushed since the last `wait` ([`Op::SendBufTo`]), as many per
    /// `sendmmsg` as run in a row on one socket (up to [`DGRAM_BATCH`]); their completions go to
    /// `out`. A call that sends fewer than asked is made again for the rest; a datagram the
    /// system refuses completes with the error; when the socket's buffer is full, the rest wait
    /// for it to drain like any other send.
    fn send_dgrams(
        &mut self,
        table: &mut OpTable<EpollOp>,
        pool: Option<&BufPool>,
        out: &mut Vec<RawCompletion>,
    ) {
        let pending = std::mem::take(&mut self.dgram_sends);
        let mut i = 0;
        while i < pending.len() {
            let Some((fd, ..)) = dgram_send(table, pending[i]) else {
                // Not in the table (cannot happen: it leaves only through its completion).
                i += 1;
                continue;
            };
            let raw = fd.as_raw_fd();
            let mut run: [(&PoolBuf, SockAddrBuf, u16); DGRAM_BATCH] =
                [(&EMPTY, SockAddrBuf::empty(), 0); DGRAM_BATCH];
            let mut n = 0;
            while n < DGRAM_BATCH && i + n < pending.len() {
                match dgram_send(table, pending[i + n]) {
                    Some((f, buf, to, segment)) if f.as_raw_fd() == raw => {
                        run[n] = (buf, SockAddrBuf::from_socket_addr(&to), segment);
                        n += 1;
                    }
                    _ => break,
                }
            }
            let sent = match pool {
                Some(pool) => sys::try_send_mmsg(raw, pool, &run[..n]),
                None => Some(-libc::EINVAL),
            };
            match sent {
                Some(sent) if sent > 0 => {
                    for k in 0..(sent as usize).min(n) {
                        let len = run[k].0.len();
                        out.push(RawCompletion::new(pending[i + k], len as i32, 0));
                    }
                    i += (sent as usize).min(n);
                }
                Some(e) => {
                    out.push(RawCompletion::new(pending[i], e.min(-1), 0));
                    i += 1;
                }
                None => {
                    let fd = std::rc::Rc::clone(fd);
                    for k in 0..n {
                        self.enqueue(pending[i + k], &fd, Dir::Write);
                    }
                    i += n;
                }
            }
        }
        self.dgram_sends = pending;
        self.dgram_sends.clear();
    }

    /// Sets `O_NONBLOCK` on a listener the driver holds, once: `accept4` takes its mode from
    /// the listener. On failure the operation completes with the error.
    fn listener_nonblocking(&mut self, token: Token, listener: &SharedFd) -> bool {
        let raw = listener.as_raw_fd();
        let state = self.waiters.hold(listener);
        if state.nonblocking {
            return true;
        }
        match sys::set_nonblocking(raw) {
            Ok(()) => {
                state.nonblocking = true;
                true
            }
            Err(e) => {
                self.ready.push(RawCompletion::new(token, e, 0));
                self.waiters.note_if_idle(raw);
                false
            }
        }
    }

    /// Tries an operation at once if nothing is queued ahead of it on `fd` in `dir`.
    fn try_now(
        &mut self,
        token: Token,
        inflight: &mut InFlight<EpollOp>,
        fd: RawFd,
        dir: Dir,
        pool: Option<&mut BufPool>,
    ) -> Progress {
        if self.waiters.queue_is_empty(fd, dir) {
            attempt(token, inflight, pool, &mut self.ready)
        } else {
            Progress::Blocked
        }
    }

    /// Starts a multishot operation (reading direction): produces what is ready now, then waits
    /// for readiness, unless it ended.
    fn push_multi(
        &mut self,
        token: Token,
        inflight: &mut InFlight<EpollOp>,
        fd: &SharedFd,
        mut pool: Option<&mut BufPool>,
    ) {
        let raw = fd.as_raw_fd();
        if self.waiters.queue_is_empty(raw, Dir::Read) {
            loop {
                match attempt(token, inflight, pool.as_deref_mut(), &mut self.ready) {
                    Progress::More(res, flags) if batched(token) => {
                        // One receive now, the rest from the next `wait` (see `drive`).
                        self.ready.push(RawCompletion::new(token, res, flags));
                        self.again.push(raw);
                        break;
                    }
                    Progress::More(res, flags) => {
                        self.ready.push(RawCompletion::new(token, res, flags));
                    }
                    Progress::Done(res, flags) => {
                        self.ready.push(RawCompletion::new(token, res, flags));
                        self.waiters.note_if_idle(raw);
                        return;
                    }
                    Progress::Blocked => break,
                }
            }
        }
        self.enqueue(token, fd, Dir::Read);
    }

    /// Works `fd`'s `dir` queue from the front until an operation would block.
    fn drive(
        &mut self,
        fd: RawFd,
        dir: Dir,
        table: &mut OpTable<EpollOp>,
        mut pool: Option<&mut BufPool>,
        out: &mut Vec<RawCompletion>,
    ) {
        while let Some(token) = self.waiters.front(fd, dir) {
            let Some(inflight) = table.get_mut(token) else {
                // Not in the table (cannot happen: an operation leaves it only through its
                // completion); drop the waiter rather than spin on it.
                self.waiters.pop_front(fd, dir);
                continue;
            };
            match attempt(token, inflight, pool.as_deref_mut(), out) {
                Progress::Blocked => return,
                Progress::More(res, flags) if batched(token) => {
                    // One receive (up to its limit) per connection and turn, as io_uring caps
                    // a multishot receive per invocation: a peer with much to send cannot take
                    // the whole pool before its owner sees the first chunks. The fd is worked
                    // again at the next `wait` (no new edge will come, the socket was not
                    // drained).
                    out.push(RawCompletion::new(token, res, flags));
                    self.again.push(fd);
                    return;
                }
                Progress::More(res, flags) => out.push(RawCompletion::new(token, res, flags)),
                Progress::Done(res, flags) => {
                    self.waiters.pop_front(fd, dir);
                    out.push(RawCompletion::new(token, res, flags));
                }
            }
        }
    }
}

/// A handle to point the unused entries of a batch at.
const EMPTY: PoolBuf = PoolBuf::EMPTY;

/// The socket, buffer, destination and segment size of the datagram send `token`, if it is one
/// in `table`.
fn dgram_send(
    table: &OpTable<EpollOp>,
    token: Token,
) -> Option<(&SharedFd, &PoolBuf, SocketAddr, u16)> {
    match &table.get(token)?.work {
        Work::Op(Op::SendBufTo {
            fd,
            buf,
            to,
            segment,
        }) => Some((fd, buf, *to, *segment)),
        _ => None,
    }
}

/// What the epoll driver keeps for an operation: where an accept's peer address lands (boxed,
/// so that an entry of every kind stays small), and the sender of a datagram received with the
/// segment size of datagrams coalesced into it. A connect's or a datagram send's address is
/// read when it is attempted, and needs no room here.
#[derive(Debug, Default)]
pub(crate) struct EpollOp {
    peer: Option<Box<SockAddrBuf>>,
    from: Option<SocketAddr>,
    pub(super) segment: u16,
}

impl OpState for EpollOp {
    fn new(op: &Op) -> EpollOp {
        EpollOp {
            peer: matches!(op, Op::Accept { .. }).then(|| Box::new(SockAddrBuf::empty())),
            from: None,
            segment: 0,
        }
    }

    fn accepted_peer(&self) -> Option<SocketAddr> {
        self.peer.as_ref().and_then(|a| a.socket_addr())
    }

    fn received_from(&self) -> Option<SocketAddr> {
        self.from
    }

    fn received_segment(&self) -> u16 {
        self.segment
    }
}

// SAFETY: the driver carries every operation out itself, with one synchronous system call per
// attempt (`attempt`), and reports its result as that call returned it, named by the
// operation's token: an accepted fd is `accept4`'s, fresh; a receive's byte count is `recv`'s
// into the operation's buffer's spare capacity or the pool buffers it took (a batched datagram
// receive's, the account, address field and datagram `recvmmsg` and the driver wrote into the
// pool buffer it took for that datagram). No call outlives
// the attempt, so nothing of an operation is used once it has completed, and nothing after the
// port is dropped. An operation completes once: when pushed, or when its queue is worked, or
// when cancelled while it waits (it is then out of the queue).
unsafe impl Driver for EpollDriver {
    type State = EpollOp;

    fn backend(&self) -> Backend {
        Backend::Epoll
    }

    fn describe(&self, _pool: Option<&BufPool>) -> String {
        match &self.fallback {
            None => "epoll (edge-triggered)".to_string(),
            Some(cause) => format!("epoll (edge-triggered; io_uring unavailable: {cause})"),
        }
    }

    fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.wake)
    }

    /// `recvmmsg` and `sendmmsg` with pool buffers that have room beyond the headroom.
    fn datagram_batches(&self, pool: Option<&BufPool>) -> bool {
        pool.is_some_and(|p| p.buf_size() > DGRAM_HEADROOM)
    }

    /// Nothing to register: the driver takes buffers from the pool itself.
    fn attach_pool(&mut self, _pool: &mut BufPool) {}

    /// Nothing is lent: iovecs and message headers live on the stack of each attempt.
    fn reclaim(&mut self, _inflight: &mut InFlight<EpollOp>) {}

    /// Starts the operation `inflight`, named `token`: carries it out at once if it can, else
    /// queues it until its fd is ready. A Close is a synchronous `close(2)`, made once the
    /// driver has let go of its own handle on the fd.
    fn push(
        &mut self,
        token: Token,
        inflight: &mut InFlight<EpollOp>,
        pool: Option<&mut BufPool>,
    ) -> io::Result<()> {
        let op = match &mut inflight.work {
            Work::Close(fd) => {
                // The driver may hold a handle on an fd it watched: let it go first, so that
                // this close holds the last one and really closes.
                if let Some(fd) = fd {
                    self.forget(fd.as_raw_fd());
                }
                let res = inflight.work.take_last().map_or(0, sys::close);
                self.ready.push(RawCompletion::new(token, res, 0));
                return Ok(());
            }
            Work::Op(op) => op,
        };
        let (fd, dir, nowait) = match op {
            Op::AcceptMulti { listener } => {
                let listener = Rc::clone(listener);
                if self.listener_nonblocking(token, &listener) {
                    self.push_multi(token, inflight, &listener, pool);
                }
                return Ok(());
            }
            Op::RecvMulti { fd, .. } | Op::RecvFromMulti { fd } => {
                let fd = Rc::clone(fd);
                self.push_multi(token, inflight, &fd, pool);
                return Ok(());
            }
            // Sent together at the next `wait`, unless other sends wait on the socket already.
            Op::SendBufTo { fd, .. } if self.waiters.queue_is_empty(fd.as_raw_fd(), Dir::Write) => {
                self.dgram_sends.push(token);
                return Ok(());
            }
            Op::SendBufTo { fd, .. } => (Rc::clone(fd), Dir::Write, false),
            Op::Accept { listener } => {
                let listener = Rc::clone(listener);
                if !self.listener_nonblocking(token, &listener) {
                    return Ok(());
                }
                (listener, Dir::Read, false)
            }
            Op::Recv { fd, nowait, .. } | Op::RecvBuf { fd, nowait } => {
                (Rc::clone(fd), Dir::Read, *nowait)
            }
            Op::RecvFrom { fd, .. } => (Rc::clone(fd), Dir::Read, false),
            Op::Send { fd, .. }
            | Op::SendBuf { fd, .. }
            | Op::SendBufs { fd, .. }
            | Op::SendTo { fd, .. } => (Rc::clone(fd), Dir::Write, false),
            Op::Connect { fd, addr } => {
                let fd = Rc::clone(fd);
                match sys::start_connect(fd.as_raw_fd(), &SockAddrBuf::from_socket_addr(addr)) {
                    Some(res) => self.ready.push(RawCompletion::new(token, res, 0)),
                    None => self.enqueue(token, &fd, Dir::Write),
                }
                return Ok(());
            }
            Op::Shutdown { fd, how } => {
                let res = sys::shutdown(fd.as_raw_fd(), *how);
                self.ready.push(RawCompletion::new(token, res, 0));
                return Ok(());
            }
            // A close travels as `Work::Close` (above).
            Op::Close { .. } | Op::Nop => {
                self.ready.push(RawCompletion::new(token, 0, 0));
                return Ok(());
            }
        };
        let raw = fd.as_raw_fd();
        match self.try_now(token, inflight, raw, dir, pool) {
            Progress::Blocked if nowait => {
                self.ready.push(RawCompletion::new(token, -libc::EAGAIN, 0));
            }
            Progress::Blocked => self.enqueue(token, &fd, dir),
            Progress::Done(res, flags) | Progress::More(res, flags) => {
                self.ready.push(RawCompletion::new(token, res, flags));
                if inflight.kind == OpKind::Accept {
                    self.waiters.note_if_idle(raw);
                }
            }
        }
        Ok(())
    }

    /// Cancels the operation named `target` if it is waiting for readiness: it completes with
    /// `ECANCELED`. An operation that has already finished completes as it finished.
    fn cancel(&mut self, target: Token) -> io::Result<()> {
        if let Some(fd) = self.waiters.remove(target) {
            self.ready
                .push(RawCompletion::new(target, -libc::ECANCELED, 0));
            self.waiters.note_if_idle(fd);
        }
        Ok(())
    }

    /// Delivers what finished since the last call, waits for readiness (one `epoll_wait`) until
    /// `min` completions are ready or the timeout passes, and works the queues of the fds that
    /// became ready. Appends every completion to `out`.
    fn wait(
        &mut self,
        table: &mut OpTable<EpollOp>,
        mut pool: Option<&mut BufPool>,
        timeout: Option<Duration>,
        now: Option<Instant>,
        out: &mut Vec<RawCompletion>,
    ) -> io::Result<()> {
        let min = 1;
        let epfd = &self.epfd;
        self.waiters.sweep_idle(|fd| sys::epoll_del(epfd, fd));
        let before = out.len();
        out.append(&mut self.ready);
        if !self.dgram_sends.is_empty() {
            self.send_dgrams(table, pool.as_deref(), out);
        }
        std::mem::swap(&mut self.again, &mut self.again_now);
        for i in 0..self.again_now.len() {
            let fd = self.again_now[i];
            self.drive(fd, Dir::Read, table, pool.as_deref_mut(), out);
        }
        self.again_now.clear();
        let deadline = match timeout {
            Some(d) if !d.is_zero() => now.unwrap_or_else(Instant::now).checked_add(d),
            _ => None,
        };
        loop {
            let enough = out.len() - before >= min || !self.again.is_empty();
            let left: Option<Duration> = match (timeout, deadline) {
                _ if enough => Some(Duration::ZERO),
                (Some(d), _) if d.is_zero() => Some(Duration::ZERO),
                (None, _) => None,
                (Some(_), None) => None, // too far to represent: no limit
                (Some(_), Some(deadline)) => {
                    Some(deadline.saturating_duration_since(Instant::now()))
                }
            };
            let n = match sys::epoll_wait(&self.epfd, &mut self.events, left, &mut self.pwait2) {
                Ok(n) => n,
                // Like io_uring_enter: interrupted by a signal, reap what there is.
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => return Ok(()),
                Err(e) => return Err(e),
            };
            for i in 0..n {
                let libc::epoll_event { events, u64: key } = self.events[i];
                if key == WAKE_KEY {
                    sys::drain_eventfd(self.wake.fd());
                    out.push(RawCompletion::new(WAKE, 8, 0));
                    continue;
                }
                let fd = key as RawFd;
                // Write first: a failed connect's error must reach the connect, not be consumed
                // by a recv waiting on the same socket.
                if events & WRITE_READY != 0 {
                    self.drive(fd, Dir::Write, table, pool.as_deref_mut(), out);
                }
                if events & READ_READY != 0 {
                    self.drive(fd, Dir::Read, table, pool.as_deref_mut(), out);
                }
                self.waiters.note_if_idle(fd);
            }
            if left == Some(Duration::ZERO) || out.len() - before >= min {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
        }
    }
}

/// Whether a multishot operation stops after one batch per turn (a receive into the pool:
/// one `recv` or one `recvmmsg`), as io_uring caps a multishot receive per invocation.
fn batched(token: Token) -> bool {
    matches!(token.kind(), OpKind::RecvMulti | OpKind::RecvFromMulti)
}

impl Drop for EpollDriver {
    fn drop(&mut self) {
        // Accepted fds whose completions were never reaped belong to nobody else: close them.
        for c in &self.ready {
            let kind = Token::from_raw(c.user_data).map(Token::kind);
            if c.result >= 0 && matches!(kind, Some(OpKind::Accept | OpKind::AcceptMulti)) {
                // A new fd from accept4 that was never handed out.
                sys::close_unclaimed(c.result);
            }
        }
    }
}
