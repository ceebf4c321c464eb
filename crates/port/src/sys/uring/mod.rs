//! The io_uring backend: one ring per port, operations as submission entries.
//!
//! # Ring setup
//!
//! Rings are created with `SINGLE_ISSUER | COOP_TASKRUN | TASKRUN_FLAG | DEFER_TASKRUN` when the
//! kernel accepts them (6.1+): completions are then produced only when this thread enters the
//! kernel to wait, in one batch, instead of interrupting it; peers measured this as the largest
//! single gain. Kernels that refuse a flag get the next weaker set, down to no flags at all.
//!
//! # Datagrams in batches
//!
//! A `RecvFromMulti` is a multishot `recvmsg` (`IORING_RECV_MULTISHOT`, Linux 6.0+, probed when
//! the pool's ring is registered) into the ring: the kernel writes each datagram's
//! `io_uring_recvmsg_out`, sender and bytes into a buffer of its own ([`crate::sys::dgram`]). It
//! ends at an empty datagram (the kernel's rule, as at a stream's end) and when the ring runs
//! dry (`ENOBUFS`). A `SendBufTo` is a `sendmsg` from a pool buffer; those queued in one turn of
//! the caller reach the kernel in the next `wait`'s one `io_uring_enter`.
//!
//! # Completion-queue overflow
//!
//! The completion queue is four times the submission queue; more operations than that may be in
//! flight (nothing limits them), so it can overflow. No completion is lost:
//!
//! - `IORING_FEAT_NODROP` (5.5+, required) keeps overflowing completions in the kernel until
//!   there is room. After reaping, `wait` checks `IORING_SQ_CQ_OVERFLOW` and enters the kernel
//!   again (with `GETEVENTS`, which flushes the backlog) until the flag is clear, so a batch
//!   holds everything that completed, not just what fitted in the ring.
//! - A submission that the kernel refuses while completions must be reaped first (`EBUSY` on
//!   older kernels, `EAGAIN`, `EINTR`) is retried after moving the ready completions into a
//!   driver-side backlog, which the next `wait` delivers first (without blocking).
//!
//! # Why io_uring may be unavailable
//!
//! Setup fails with `ENOSYS` on kernels without io_uring, `EPERM` under a seccomp filter (Docker's
//! default profile) or `kernel.io_uring_disabled`, and `ENOMEM` when the locked-memory limit is
//! too small for the rings (kernels before 5.12). [`UringUnavailable`](crate::UringUnavailable)
//! names which.
//!
//! # Layout
//!
//! - this module: the driver (operations as entries, waiting, the alarm, the single-accept
//!   chain that stands in for multishot accept);
//! - [`setup`]: building the ring, checking what it needs, probing what receives may use;
//! - [`sys`]: the submission-queue push and the system calls, behind functions; the push is an
//!   `unsafe fn`, called in one place (`push_entry`), where the driver vouches for the pointers
//!   an entry carries.

mod setup;
mod sys;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::backend::Backend;
use crate::op::{Op, PoolBuf, Socket, SEND_BUFS_MAX};
use crate::socket::DirectTable;
use crate::sys::dgram::DgramHdr;
use crate::sys::gather::MsgBuf;
use crate::sys::pool::{BufPool, BGID};
use crate::sys::sender::Sender;
use crate::sys::sockaddr::SockAddrBuf;
use crate::sys::{Driver, OpState, RawCompletion, Waker, CQE_F_MORE};
use crate::table::{InFlight, OpTable, Work};
use crate::token::{OpKind, Token, ALARM, ALARM_UPDATE, DIRECT_CLOSE, WAKE};

/// Message headers for gathered sends made ready with a pool.
const MSG_STOCK: usize = 256;

/// Whether the kernel has a feature ringport falls back from, as far as it has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feature {
    /// Not seen either way yet.
    Unknown,
    /// It worked.
    Yes,
    /// The kernel refused it: emulated.
    No,
}

/// The shortest wait that the alarm ends (see [`UringDriver::set_alarm`]); shorter ones pass
/// their timeout to `io_uring_enter`.
const ALARM_MIN: Duration = Duration::from_millis(1);
/// How late the armed alarm may ring for a wait before it is moved earlier: enough to absorb
/// the few microseconds between the caller's clock reading and the driver's for one deadline
/// (the worker's next tick), small beside any timeout that takes the alarm (1 ms and more).
const ALARM_SLACK: Duration = Duration::from_micros(10);

/// A multishot receive from the port's ring of at most `cap` bytes per completion (0: no cap)
/// and `limit` bytes in all (0: none), as a bundle (several buffers per completion) or not.
fn recv_multi_entry(fd: RawFd, cap: u32, limit: u32, bundle: bool) -> squeue::Entry {
    let entry = if bundle {
        sys::with_sqe_len(
            opcode::RecvMultiBundle::new(types::Fd(fd), BGID).build(),
            cap,
        )
    } else {
        opcode::RecvMulti::new(types::Fd(fd), BGID).len(cap).build()
    };
    if limit > 0 {
        sys::with_sqe_optlen(entry, limit)
    } else {
        entry
    }
}

impl RawCompletion {
    /// A completion queue entry as the port takes it.
    fn of(entry: &cqueue::Entry) -> RawCompletion {
        RawCompletion {
            user_data: entry.user_data(),
            result: entry.result(),
            flags: entry.flags(),
        }
    }
}

/// One io_uring and the port's wake-up read on it.
pub(crate) struct UringDriver {
    ring: IoUring,
    wake: Arc<Waker>,
    /// Where the wake-up read lands; boxed so it never moves while the kernel holds it.
    wake_buf: Box<u64>,
    wake_armed: bool,
    flags: &'static str,
    /// Completions reaped outside `wait` (to make room for a submission), delivered by the next.
    backlog: Vec<RawCompletion>,
    /// Single receives that wait, held back until the next wait (or cancellation) and then
    /// pushed after every other entry: the peer then has the time of the submission's sends to
    /// answer, and the receive usually finds its data (see `Port::late_single_receives`).
    late: Vec<squeue::Entry>,
    /// The per-invocation byte cap of multishot receives (`sqe->len`), 0 where the kernel
    /// refuses one.
    mshot_len: u32,
    /// Multishot receives are bundles (Linux 6.10+, used only where their byte limits hold
    /// too): one completion for as many pool buffers as the bytes waiting fill.
    bundles: bool,
    /// The kernel takes multishot `recvmsg` into the ring (Linux 6.0+), which
    /// [`Op::RecvFromMulti`] is.
    dgram_multi: bool,
    /// Message headers of finished gathered sends, for the next ones (no allocation per send).
    /// Boxed: a header moves between this list and an operation, and the kernel reads it by
    /// address while the operation is in flight.
    #[allow(clippy::vec_box)]
    spare_msgs: Vec<Box<MsgBuf>>,
    /// Headers of finished datagram operations, for the next ones (boxed for the same reason).
    #[allow(clippy::vec_box)]
    spare_dgrams: Vec<Box<DgramHdr>>,
    /// Whether the kernel takes multishot accepts (5.19+); `No`: each `AcceptMulti` is a chain
    /// of single accepts (see [`UringDriver::accept_fallback`]).
    accept_multi: Feature,
    /// An `AcceptMulti` has been pushed while `accept_multi` was not known to work.
    accept_watch: bool,
    /// `AcceptMulti`s asked to cancel while they may be chains of single accepts: a chain's
    /// accept completing as its cancellation arrives must not be re-armed.
    accept_cancels: Vec<Token>,
    /// The alarm that ends long waits (see [`UringDriver::set_alarm`]); boxed, as the kernel
    /// reads its timeout by address when the entry that arms or moves it is submitted.
    alarm: Box<Alarm>,
    /// The kernel can move the alarm without a completion (`IORING_FEAT_CQE_SKIP`).
    silent_updates: bool,
    /// The ring's index among this thread's registered rings (Linux 5.18+): every
    /// `io_uring_enter` names the ring by it, and the kernel skips the descriptor lookup (and,
    /// in a process of several threads, the reference count it takes and drops on the ring's
    /// file) per call. `None` where the kernel refused the registration: entered by descriptor.
    ring_index: Option<u32>,
    /// The ring's registered file table, when accepts are direct
    /// ([`accept_direct`](UringDriver::accept_direct)): accepted sockets are slots of it.
    direct: Option<Arc<DirectTable>>,
    /// Slots of direct sockets dropped without a close, to close at the next wait.
    orphans: Vec<u32>,
    /// Behave as a kernel without direct descriptors (for tests of the fallback).
    refuse_direct: bool,
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        // The registration holds the ring until the thread exits: let it go with the port.
        if let Some(index) = self.ring_index.take() {
            let _ = sys::unregister_ring(&self.ring, index);
        }
    }
}

/// The io_uring driver's alarm: a timeout operation that ends waits (see
/// [`UringDriver::set_alarm`]).
struct Alarm {
    /// When it rings, if it is armed.
    at: Option<Instant>,
    /// Its timeout, as the entry that armed or moved it last gives it to the kernel.
    ts: types::Timespec,
}

impl fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UringDriver")
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl UringDriver {
    /// Submits everything queued and, if `want` is above 0, waits for that many completions:
    /// by the ring's registered index when it has one, otherwise by its descriptor (the io-uring
    /// crate's `submit_and_wait`, which this follows: no `SQPOLL`, no `IOPOLL`).
    fn submit_and_wait(&mut self, want: u32) -> io::Result<usize> {
        let Some(index) = self.ring_index else {
            return self.ring.submit_and_wait(want as usize);
        };
        let (queued, events) = {
            let sq = self.ring.submission();
            // Completions to flush from the overflow list, or task work to run (the kernel
            // does either only on an enter that asks for events).
            (sq.len(), sq.cq_overflow() || sq.taskrun())
        };
        let flags = if want > 0 || events {
            sys::ENTER_GETEVENTS
        } else {
            0
        };
        let queued = u32::try_from(queued).unwrap_or(u32::MAX);
        sys::enter_registered(index, queued, want, flags)
    }

    /// Makes the accepts of this ring direct: registers a sparse file table of `slots` slots
    /// (Linux 5.19+, with `IORING_FILE_INDEX_ALLOC` and multishot accept), into which the
    /// kernel installs every socket accepted from now on. Refused where the kernel lacks it,
    /// or where `slots` exceeds `RLIMIT_NOFILE` (`EMFILE`): accepts then give descriptors.
    pub fn accept_direct(&mut self, slots: u32) -> io::Result<()> {
        if self.direct.is_some() {
            return Ok(());
        }
        if self.refuse_direct {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        self.ring.submitter().register_files_sparse(slots.max(1))?;
        self.direct = Some(Arc::new(DirectTable::default()));
        Ok(())
    }

    /// Whether accepts are direct.
    pub fn accepts_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Behaves as a kernel without direct descriptors from now on: [`accept_direct`] is
    /// refused, for tests of the fallback.
    ///
    /// [`accept_direct`]: UringDriver::accept_direct
    pub fn refuse_direct(&mut self) {
        self.refuse_direct = true;
    }

    /// Whether `d` is a slot of this ring's file table.
    fn owns(&self, d: &crate::socket::Direct) -> bool {
        self.direct.as_ref().is_some_and(|t| d.of(t))
    }

    /// Queues a close of every slot whose socket was dropped without a close (its
    /// completion is the driver's, and only a failure would make one).
    fn close_orphans(&mut self) -> io::Result<()> {
        let Some(table) = &self.direct else {
            return Ok(());
        };
        table.take_orphans(&mut self.orphans);
        while let Some(slot) = self.orphans.pop() {
            let entry = opcode::Close::new(types::Fixed(slot))
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(DIRECT_CLOSE);
            self.push_entry(&entry)?;
        }
        Ok(())
    }

    /// Submits everything queued without waiting.
    fn submit(&mut self) -> io::Result<usize> {
        self.submit_and_wait(0)
    }

    /// Whether `io_uring_enter` names the ring by its registered index.
    #[cfg(test)]
    pub fn enters_registered(&self) -> bool {
        self.ring_index.is_some()
    }

    /// Behaves as on a kernel that refuses to register the ring (before 5.18): entered by its
    /// descriptor, for tests of the fallback.
    #[cfg(test)]
    pub fn enter_by_descriptor(&mut self) {
        if let Some(index) = self.ring_index.take() {
            sys::unregister_ring(&self.ring, index).expect("registered");
        }
    }

    /// A receive into a buffer the driver takes itself (no ring): the buffer's id and entry,
    /// or `None` when the pool is empty.
    fn recv_taken(
        fd: RawFd,
        pool: &mut BufPool,
        inflight_pooled: &mut Option<u16>,
        flags: i32,
    ) -> Option<squeue::Entry> {
        let id = pool.take()?;
        *inflight_pooled = Some(id);
        let len = u32::try_from(pool.buf_size()).unwrap_or(u32::MAX);
        Some(
            opcode::Recv::new(types::Fd(fd), pool.ptr(id), len)
                .flags(flags)
                .build(),
        )
    }

    /// Moves the single receives held back (see `late`) into the submission queue, in the
    /// order they were submitted: before each wait, and before a cancellation (which must
    /// follow the entry it cancels).
    fn push_late(&mut self) -> io::Result<()> {
        let mut late = std::mem::take(&mut self.late);
        let mut done = 0;
        let pushed = late.iter().try_for_each(|e| {
            self.push_entry(e)?;
            done += 1;
            Ok(())
        });
        // What could not be pushed (the ring failed) stays for the next attempt.
        late.drain(..done);
        self.late = late;
        pushed
    }

    fn push_entry(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry built by this driver points only at memory owned by an
            // operation in the port's table (boxed or heap-allocated, so it does not move), by
            // the driver itself, or by the port's buffer pool (one allocation that never moves
            // and is dropped after the ring), and that memory stays alive until the entry's
            // completion is reaped: the table frees an operation only after its completion, and
            // a pool buffer being sent or received into is out of the pool until then.
            if unsafe { sys::push(&mut self.ring, entry) } {
                return Ok(());
            }
            // The submission queue is full: hand it to the kernel to make room.
            match self.submit() {
                Ok(_) => {}
                // Completions must be reaped first (an overflowing completion queue), or a
                // signal: keep them for the next `wait` and try again.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY | libc::EAGAIN | libc::EINTR)
                    ) =>
                {
                    let mut backlog = std::mem::take(&mut self.backlog);
                    let before = backlog.len();
                    self.reap(&mut backlog);
                    let progressed = backlog.len() > before;
                    self.backlog = backlog;
                    if !progressed && e.raw_os_error() != Some(libc::EINTR) {
                        // Nothing to reap and still refused: let the kernel catch up.
                        std::thread::yield_now();
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves every completion in the ring to `out`, but the driver's own (see [`note`]).
    fn reap(&mut self, out: &mut Vec<RawCompletion>) {
        let marks = (&mut self.alarm.at, &mut self.wake_armed);
        for entry in self.ring.completion() {
            if let Some(c) = note(marks.0, marks.1, &entry) {
                out.push(c);
            }
        }
    }

    /// Makes the alarm ring within `timeout` from now, so that the coming `io_uring_enter` can
    /// wait without a timeout of its own; `false` when it cannot (the wait then passes its
    /// timeout to the kernel as before).
    ///
    /// A wait with a timeout makes the kernel start and cancel a timer every time it sleeps:
    /// once per round trip on a connection served alone, on a virtual machine a costly
    /// reprogramming of the timer device. A loop waits again and again for the same deadline
    /// (the worker's next tick), so one alarm serves all those waits: it is armed once (a
    /// timeout operation), kept while it rings early enough for the wait at hand (early is
    /// harmless: the wait returns with nothing and the caller waits again), moved earlier
    /// when a wait needs it sooner (a silent update: `IOSQE_CQE_SKIP_SUCCESS`, Linux 5.17+,
    /// or the update's own completion would end the wait at once), and armed again only after
    /// it has rung.
    ///
    /// `now` is the caller's reading of the clock when it computed `timeout`, if it has one
    /// (one reading less per wait).
    fn set_alarm(&mut self, now: Option<Instant>, timeout: Duration) -> io::Result<bool> {
        let deadline = now.unwrap_or_else(Instant::now) + timeout;
        let update = match self.alarm.at {
            Some(at) if at <= deadline + ALARM_SLACK => return Ok(true),
            Some(_) if !self.silent_updates => return Ok(false),
            armed => armed.is_some(),
        };
        // The kernel counts from its own now: from a caller's reading, what is left of the
        // deadline (a reading of the clock only when the alarm is set, not per wait).
        let left = match now {
            Some(_) => deadline.saturating_duration_since(Instant::now()),
            None => timeout,
        };
        self.alarm.ts = types::Timespec::from(left);
        let entry = if update {
            opcode::TimeoutUpdate::new(ALARM, &self.alarm.ts)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(ALARM_UPDATE)
        } else {
            opcode::Timeout::new(&self.alarm.ts)
                .build()
                .user_data(ALARM)
        };
        // Noted before the push: a push that must reap first may reap the alarm ringing, which
        // clears the note (the update then finds no alarm, and the next wait arms a new one).
        let previous = self.alarm.at.replace(deadline);
        if let Err(e) = self.push_entry(&entry) {
            self.alarm.at = previous;
            return Err(e);
        }
        Ok(true)
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let entry = opcode::Read::new(
            types::Fd(self.wake.fd().as_raw_fd()),
            (&mut *self.wake_buf as *mut u64).cast::<u8>(),
            8,
        )
        .build()
        .user_data(WAKE.raw());
        self.push_entry(&entry)?;
        self.wake_armed = true;
        Ok(())
    }

    /// Queues one single accept for the `AcceptMulti` named `token`, as a link of its chain;
    /// `Ok(false)` when the operation is no longer in the table.
    fn push_single_accept(
        &mut self,
        token: Token,
        table: &mut OpTable<UringOp>,
    ) -> io::Result<bool> {
        let Some(Work::Op(Op::AcceptMulti { listener })) = table.get_mut(token).map(|i| &i.work)
        else {
            return Ok(false);
        };
        let entry =
            single_accept_entry(listener.as_raw_fd(), self.direct.is_some()).user_data(token.raw());
        self.push_entry(&entry).map(|()| true)
    }

    /// Multishot accept on kernels that refuse it (before 5.19, `EINVAL`): from the first
    /// refusal on, an `AcceptMulti` is a chain of single accepts, each pushed when the last
    /// completes, each success reported with [`CQE_F_MORE`] as a multishot accept's would be;
    /// an error, or a cancellation, ends the chain. Rewrites the completions `out[from..]`
    /// accordingly. Watched only until a multishot accept is seen to work.
    fn accept_fallback(
        &mut self,
        table: &mut OpTable<UringOp>,
        out: &mut Vec<RawCompletion>,
        from: usize,
    ) {
        let mut i = from;
        while i < out.len() {
            let c = out[i];
            i += 1;
            let Some(token) = Token::from_raw(c.user_data) else {
                continue;
            };
            if token.kind() != OpKind::AcceptMulti {
                continue;
            }
            let more = c.flags & CQE_F_MORE != 0;
            let cancelled = self.accept_cancels.contains(&token);
            match self.accept_multi {
                Feature::Yes => return,
                Feature::Unknown if more || c.result >= 0 => {
                    self.accept_multi = Feature::Yes;
                    self.accept_cancels.clear();
                    return;
                }
                // A socket that does not listen refuses any accept with EINVAL: the caller's
                // error, delivered as it is, which says nothing of the kernel.
                Feature::Unknown if c.result == -libc::EINVAL && !listens(token, table) => {}
                Feature::Unknown if c.result == -libc::EINVAL => {
                    tracing::info!("multishot accept refused (EINVAL); accepting one at a time");
                    self.accept_multi = Feature::No;
                    if cancelled {
                        out[i - 1].result = -libc::ECANCELED;
                    } else {
                        // The chain starts in place of the refused accept, which the caller
                        // does not see.
                        match self.push_single_accept(token, table) {
                            Ok(true) => {
                                out.remove(i - 1);
                                i -= 1;
                                continue;
                            }
                            Ok(false) => {}
                            Err(e) => out[i - 1].result = -e.raw_os_error().unwrap_or(libc::EIO),
                        }
                    }
                }
                Feature::No if c.result >= 0 && !more => {
                    // A link of the chain accepted a connection: reported as armed, and the
                    // next link pushed, unless a cancellation came meanwhile.
                    out[i - 1].flags |= CQE_F_MORE;
                    let end = if cancelled {
                        Some(-libc::ECANCELED)
                    } else {
                        match self.push_single_accept(token, table) {
                            Ok(true) => None,
                            Ok(false) => Some(-libc::ECANCELED),
                            Err(e) => Some(-e.raw_os_error().unwrap_or(libc::EIO)),
                        }
                    };
                    let Some(res) = end else { continue };
                    out.insert(i, RawCompletion::new(token, res, 0));
                    i += 1;
                }
                _ => {}
            }
            // The operation ended (an error or a cancellation): forget its cancellation.
            self.accept_cancels.retain(|&t| t != token);
        }
    }

    /// Behaves as on a kernel that refuses multishot accepts, for tests of the fallback.
    #[cfg(test)]
    pub fn refuse_multishot_accept(&mut self) {
        self.accept_multi = Feature::No;
    }

    /// Queues a close of `fd`, the descriptor's last handle (the kernel closes it), or a no-op
    /// when other handles remained (`None`).
    fn push_close(&mut self, token: Token, fd: Option<Socket>) -> io::Result<()> {
        let Some(fd) = fd else {
            return self.push_entry(&opcode::Nop::new().build().user_data(token.raw()));
        };
        let fd = match fd.into_real() {
            Ok(fd) => fd,
            Err(direct) => {
                if !direct.as_direct().is_some_and(|d| self.owns(d)) {
                    // Another ring's slot: it closes as it drops (its ring's next wait).
                    drop(direct);
                    return Err(io::Error::from_raw_os_error(libc::EBADF));
                }
                let Ok(slot) = direct.into_slot() else {
                    unreachable!("a direct socket")
                };
                let entry = opcode::Close::new(types::Fixed(slot))
                    .build()
                    .user_data(token.raw());
                if let Err(e) = self.push_entry(&entry) {
                    // Not queued: the slot is closed with the orphans.
                    self.orphans.push(slot);
                    return Err(e);
                }
                return Ok(());
            }
        };
        let entry = opcode::Close::new(types::Fd(fd.as_raw_fd()))
            .build()
            .user_data(token.raw());
        // Not queued: `fd` closes as it drops.
        self.push_entry(&entry)?;
        // Queued: the kernel closes it.
        let _ = fd.into_raw_fd();
        Ok(())
    }
}

/// What the io_uring driver keeps for an operation: the memory the kernel reads or writes by
/// address while it is in flight, boxed so that it stays put when the table grows. An operation
/// needs one of them at most, so they share one enum: a receive, what an idle connection keeps
/// in flight, carries its tag alone.
#[derive(Debug, Default)]
pub(crate) enum UringOp {
    /// Nothing (receives, single sends, shutdowns, closes).
    #[default]
    Nothing,
    /// The socket address an accept fills or a connect reads.
    Addr(Box<SockAddrBuf>),
    /// The message header and iovecs of a gathered send, lent by the driver (taken back by
    /// [`Driver::reclaim`]).
    Msg(Box<MsgBuf>),
    /// The message header, iovec and address of a datagram receive or send, lent by the driver
    /// (taken back by [`Driver::reclaim`]).
    Dgram(Box<DgramHdr>),
    /// The sender of a datagram received, read from its header when the driver took it back
    /// (kept in 24 bytes: see [`Sender`]).
    From(Sender),
}

impl UringOp {
    /// The gathered send's message header, lent from `spare` (or made) if it has none yet.
    #[allow(clippy::vec_box)] // the driver's stock of boxes (see `UringDriver::spare_msgs`)
    fn msg(&mut self, spare: &mut Vec<Box<MsgBuf>>) -> &mut MsgBuf {
        if !matches!(self, UringOp::Msg(_)) {
            *self = UringOp::Msg(spare.pop().unwrap_or_default());
        }
        match self {
            UringOp::Msg(msg) => msg,
            _ => unreachable!("set above"),
        }
    }

    /// The datagram header, lent from `spare` (or made) if it has none yet.
    #[allow(clippy::vec_box)] // the driver's stock of boxes (see `UringDriver::spare_dgrams`)
    fn dgram(&mut self, spare: &mut Vec<Box<DgramHdr>>) -> &mut DgramHdr {
        if !matches!(self, UringOp::Dgram(_)) {
            *self = UringOp::Dgram(spare.pop().unwrap_or_default());
        }
        match self {
            UringOp::Dgram(dgram) => dgram,
            _ => unreachable!("set above"),
        }
    }

    /// The socket address of an accept or a connect.
    fn addr(&mut self) -> Option<&mut SockAddrBuf> {
        match self {
            UringOp::Addr(addr) => Some(addr),
            _ => None,
        }
    }
}

impl OpState for UringOp {
    fn new(op: &Op) -> UringOp {
        match op {
            Op::Accept { .. } => UringOp::Addr(Box::new(SockAddrBuf::empty())),
            Op::Connect { addr, .. } => {
                UringOp::Addr(Box::new(SockAddrBuf::from_socket_addr(addr)))
            }
            _ => UringOp::Nothing,
        }
    }

    fn accepted_peer(&self) -> Option<SocketAddr> {
        match self {
            UringOp::Addr(addr) => addr.socket_addr(),
            _ => None,
        }
    }

    fn received_from(&self) -> Option<SocketAddr> {
        match self {
            UringOp::From(from) => Some(from.addr()),
            // Only a coalesced receive keeps its header past `reclaim`.
            UringOp::Dgram(dgram) => dgram.sender(),
            _ => None,
        }
    }

    fn received_segment(&self) -> u16 {
        match self {
            UringOp::Dgram(dgram) => dgram.segment(),
            _ => 0,
        }
    }
}

// SAFETY: the kernel carries the operations out and reports them in its completion queue, whose
// entries the driver passes on (its own, named by reserved values, it keeps); every entry it
// submits for an operation carries the operation's token, and points only at memory the
// operation owns (its buffer, its boxed state), the driver's own boxes or the pool, which stay
// put until the entry's completion is reaped (see `push_entry`). A multishot operation's last
// completion is the kernel's without `IORING_CQE_F_MORE`; the single-accept chain that stands
// in for multishot accept pushes its next link before reporting a link as armed. A datagram
// receive asks for `MSG_TRUNC`, so its result is the datagram's length, of which the kernel wrote
// what fitted in the buffer's spare capacity, as the contract states for datagrams; a multishot
// `recvmsg`'s result is the bytes the kernel wrote into the ring buffer it names (the account,
// the address field of the header's length, the datagram). Closing a ring does not wait for
// what it has in flight (the kernel's teardown finishes in the background, and an operation
// an io-wq worker runs may still write), so a port dropped with operations in flight first
// cancels them and waits for their last completions (`quiesce`), and leaks, never frees, what
// does not come back, with the pool.
unsafe impl Driver for UringDriver {
    type State = UringOp;

    fn backend(&self) -> Backend {
        Backend::Uring
    }

    fn describe(&self, pool: Option<&BufPool>) -> String {
        match pool {
            Some(pool) if pool.has_ring() => format!(
                "io_uring (setup flags: {}; provided-buffer ring{}{})",
                self.flags,
                match (self.mshot_len > 0, self.bundles) {
                    (true, true) => ", multishot receives limited, as bundles",
                    (true, false) => ", multishot receives limited",
                    _ => "",
                },
                if self.dgram_multi {
                    ", multishot recvmsg"
                } else {
                    ""
                }
            ),
            _ => format!("io_uring (setup flags: {})", self.flags),
        }
    }

    fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.wake)
    }

    fn direct_table(&self) -> Option<&Arc<DirectTable>> {
        self.direct.as_ref()
    }

    fn late_single_receives(&self) -> bool {
        true
    }

    fn datagram_batches(&self, pool: Option<&BufPool>) -> bool {
        self.dgram_multi && pool.is_some_and(BufPool::has_ring)
    }

    fn stock_datagram_ops(&mut self, n: usize) {
        // Each datagram operation in flight holds a message header and an address.
        self.spare_dgrams
            .reserve(n.saturating_sub(self.spare_dgrams.len()));
        while self.spare_dgrams.len() < n {
            self.spare_dgrams.push(Box::default());
        }
    }

    fn attach_pool(&mut self, pool: &mut BufPool) {
        // Gathered sends need a message header each while in flight: a stock of them now, so
        // that sending allocates nothing (up to this many at once, of any length).
        self.spare_msgs.reserve(MSG_STOCK);
        while self.spare_msgs.len() < MSG_STOCK {
            let mut msg = Box::<MsgBuf>::default();
            msg.iov.reserve(SEND_BUFS_MAX);
            self.spare_msgs.push(msg);
        }
        if let Err(e) = self.attach_ring(pool) {
            tracing::debug!(
                "the kernel refused a provided-buffer ring ({e}); buffers are picked per receive"
            );
        }
    }

    fn recycle(&mut self, state: UringOp) {
        if let UringOp::Dgram(dgram) = state {
            self.spare_dgrams.push(dgram);
        }
    }

    fn reclaim(&mut self, inflight: &mut InFlight<UringOp>) {
        match std::mem::take(&mut inflight.state) {
            UringOp::Msg(msg) => self.spare_msgs.push(msg),
            UringOp::Dgram(dgram) => {
                if inflight.kind == OpKind::RecvFrom {
                    // A coalesced receive keeps its header until its outcome is read (the
                    // sender and the segment size), then gives it back (`recycle`).
                    if dgram.segment() > 0 {
                        inflight.state = UringOp::Dgram(dgram);
                        return;
                    }
                    if let Some(from) = dgram.sender() {
                        inflight.state = UringOp::From(Sender::new(from));
                    }
                }
                self.spare_dgrams.push(dgram);
            }
            other => inflight.state = other,
        }
    }

    /// Queues the operation `inflight`, named `token`.
    fn push(
        &mut self,
        token: Token,
        inflight: &mut InFlight<UringOp>,
        pool: Option<&mut BufPool>,
    ) -> io::Result<()> {
        let op = match &mut inflight.work {
            Work::Close(_) => return self.push_close(token, inflight.work.take_last_socket()),
            Work::Op(op) => op,
        };
        // A direct socket is named by its slot, with IOSQE_FIXED_FILE; only this ring's.
        let fixed = match op.socket().and_then(|s| s.as_direct()) {
            Some(d) if self.owns(d) => true,
            Some(_) => return Err(io::Error::from_raw_os_error(libc::EBADF)),
            None => false,
        };
        let direct = self.direct.is_some();
        // A single receive that waits goes after the other entries of this submission (see
        // `late`).
        let late = matches!(op, Op::RecvBuf { nowait: false, .. });
        let entry = match op {
            Op::AcceptMulti { listener } => {
                self.accept_watch |= self.accept_multi != Feature::Yes;
                match self.accept_multi {
                    Feature::No => single_accept_entry(listener.as_raw_fd(), direct),
                    // A direct socket has no descriptor to close on exec (and the kernel
                    // refuses the flag with a slot).
                    _ if direct => opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
                        .allocate_file_index(true)
                        .build(),
                    _ => opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
                        .flags(libc::SOCK_CLOEXEC)
                        .build(),
                }
            }
            Op::RecvMulti { fd, .. } | Op::RecvBuf { fd, .. } => {
                let Some(pool) = pool else {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                };
                let raw = sqe_fd(fd);
                let nowait = matches!(*op, Op::RecvBuf { nowait: true, .. });
                let limit = match *op {
                    Op::RecvMulti { limit, .. } => Some(limit),
                    _ => None,
                };
                let multi = limit.is_some();
                let flags = if nowait { libc::MSG_DONTWAIT } else { 0 };
                if pool.has_ring() && multi {
                    let limit = match limit {
                        Some(limit) if self.mshot_len > 0 => {
                            u32::try_from(limit).unwrap_or(u32::MAX)
                        }
                        _ => 0,
                    };
                    // A bundle takes up to the limit (or 64 buffers) per completion; a single
                    // receive one buffer.
                    let cap = if self.bundles {
                        match limit {
                            0 => self.mshot_len.saturating_mul(64),
                            limit => limit,
                        }
                    } else {
                        self.mshot_len
                    };
                    recv_multi_entry(raw, cap, limit, self.bundles)
                } else if pool.has_ring() {
                    let len = u32::try_from(pool.buf_size()).unwrap_or(u32::MAX);
                    opcode::Recv::new(types::Fd(raw), std::ptr::null_mut(), len)
                        .buf_group(BGID)
                        .flags(flags)
                        .build()
                        .flags(squeue::Flags::BUFFER_SELECT)
                } else {
                    // No ring: one receive at a time into a buffer taken now (a multishot
                    // receive then ends after each chunk, which its caller re-arms).
                    match Self::recv_taken(raw, pool, &mut inflight.pooled, flags) {
                        Some(entry) => entry,
                        None => {
                            self.backlog
                                .push(RawCompletion::new(token, -libc::ENOBUFS, 0));
                            return Ok(());
                        }
                    }
                }
            }
            // One buffer, alone or as the only one of a gathered send: a plain send, lighter
            // than a message.
            Op::SendBuf { fd, buf, at } => pooled_send(sqe_fd(fd), pool, buf, *at)?,
            Op::SendBufs { fd, bufs, at } if bufs.len() == 1 => {
                pooled_send(sqe_fd(fd), pool, &bufs[0], *at)?
            }
            Op::SendBufs { fd, bufs, at } => {
                let Some(pool) = pool else {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                };
                // A header the kernel reads while the send is in flight (recycled: allocated
                // only at a new high-water mark of gathered sends in flight).
                let msg = inflight.state.msg(&mut self.spare_msgs);
                let hdr = msg.fill(pool, bufs, *at);
                opcode::SendMsg::new(types::Fd(sqe_fd(fd)), hdr)
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
            }
            Op::Accept { listener } => {
                let addr = (inflight.state.addr()).expect("accept carries address storage");
                let accept = opcode::Accept::new(
                    types::Fd(listener.as_raw_fd()),
                    (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
                    &mut addr.len,
                );
                if direct {
                    accept
                        .file_index(Some(types::DestinationSlot::auto_target()))
                        .build()
                } else {
                    accept.flags(libc::SOCK_CLOEXEC).build()
                }
            }
            Op::Recv { fd, buf, nowait } => {
                let len = buf.len();
                let spare = buf.capacity() - len;
                let ptr = buf.as_mut_ptr().wrapping_add(len);
                let flags = if *nowait { libc::MSG_DONTWAIT } else { 0 };
                opcode::Recv::new(
                    types::Fd(sqe_fd(fd)),
                    ptr,
                    u32::try_from(spare).unwrap_or(u32::MAX),
                )
                .flags(flags)
                .build()
            }
            Op::Send { fd, buf, at } => {
                let at = (*at).min(buf.len());
                send_entry(sqe_fd(fd), buf.as_ptr().wrapping_add(at), buf.len() - at)
            }
            Op::Connect { fd, .. } => {
                let addr = (inflight.state.addr()).expect("connect carries its address");
                opcode::Connect::new(
                    types::Fd(sqe_fd(fd)),
                    (&addr.storage as *const libc::sockaddr_storage).cast(),
                    addr.len,
                )
                .build()
            }
            Op::Shutdown { fd, how } => {
                let how = match how {
                    std::net::Shutdown::Read => libc::SHUT_RD,
                    std::net::Shutdown::Write => libc::SHUT_WR,
                    std::net::Shutdown::Both => libc::SHUT_RDWR,
                };
                opcode::Shutdown::new(types::Fd(sqe_fd(fd)), how).build()
            }
            Op::RecvFrom { fd, buf } => {
                // The header, iovec and address the kernel uses while the receive is in flight
                // (recycled: allocated only at a new high-water mark of datagram operations).
                let dgram = inflight.state.dgram(&mut self.spare_dgrams);
                // MSG_TRUNC: the result is the datagram's length even when it was cut.
                opcode::RecvMsg::new(types::Fd(sqe_fd(fd)), dgram.for_recv(buf))
                    .flags(libc::MSG_TRUNC as u32)
                    .build()
            }
            Op::SendTo { fd, buf, to } => {
                let dgram = inflight.state.dgram(&mut self.spare_dgrams);
                opcode::SendMsg::new(types::Fd(sqe_fd(fd)), dgram.for_send(buf, to))
                    .flags(libc::MSG_NOSIGNAL as u32)
                    .build()
            }
            Op::RecvFromMulti { fd } => {
                if !(self.dgram_multi && pool.is_some_and(|p| p.has_ring())) {
                    return Err(io::Error::from(io::ErrorKind::Unsupported));
                }
                // The header says how much room the sender's address takes in each buffer; the
                // kernel reads it at every datagram while the receive is armed.
                let dgram = inflight.state.dgram(&mut self.spare_dgrams);
                // MSG_TRUNC: the account holds the datagram's whole length even when it was cut.
                opcode::RecvMsgMulti::new(types::Fd(sqe_fd(fd)), dgram.for_recv_multi(), BGID)
                    .flags(libc::MSG_TRUNC as u32)
                    .build()
            }
            Op::SendBufTo {
                fd,
                buf,
                to,
                segment,
            } => {
                let Some(pool) = pool else {
                    return Err(io::Error::from_raw_os_error(libc::EINVAL));
                };
                let ptr = pool.ptr(buf.id()).wrapping_add(buf.offset());
                let dgram = inflight.state.dgram(&mut self.spare_dgrams);
                opcode::SendMsg::new(
                    types::Fd(sqe_fd(fd)),
                    dgram.for_send_raw(ptr, buf.len(), to, *segment),
                )
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
            }
            // A close travels as `Work::Close` (above).
            Op::Close { .. } | Op::Nop => opcode::Nop::new().build(),
        };
        let entry = if fixed {
            entry.flags(squeue::Flags::FIXED_FILE)
        } else {
            entry
        };
        if late {
            self.late.push(entry.user_data(token.raw()));
            return Ok(());
        }
        self.push_entry(&entry.user_data(token.raw()))
    }

    /// Queues a cancellation of the operation named `target`.
    fn cancel(&mut self, target: Token) -> io::Result<()> {
        if target.kind() == OpKind::AcceptMulti
            && self.accept_multi != Feature::Yes
            && !self.accept_cancels.contains(&target)
        {
            self.accept_cancels.push(target);
        }
        self.push_late()?;
        let me = Token::new(target.slot(), target.generation(), OpKind::Cancel);
        let entry = opcode::AsyncCancel::new(target.raw())
            .build()
            .user_data(me.raw());
        self.push_entry(&entry)
    }

    /// Cancels every operation in flight and waits (at most [`DRAIN_ON_DROP`]) for each one's
    /// last completion, closing the sockets accepts brought meanwhile; what does not come back
    /// is leaked with the pool, which a receive may still write into.
    fn quiesce(&mut self, table: &mut OpTable<UringOp>, pool: &mut Option<BufPool>) {
        let mut done = std::mem::take(&mut self.backlog);
        if table.len() == 0 && done.is_empty() {
            return;
        }
        for token in table.tokens() {
            if self.cancel(token).is_err() {
                break;
            }
        }
        let deadline = Instant::now() + DRAIN_ON_DROP;
        loop {
            for c in done.drain(..) {
                let Some(token) = Token::from_raw(c.user_data).filter(|t| table.contains(*t))
                else {
                    continue;
                };
                // A socket an accept brought, which nobody will take: closed (a direct one's
                // slot closes with the ring).
                let accept = matches!(token.kind(), OpKind::Accept | OpKind::AcceptMulti);
                if accept && c.result >= 0 && self.direct.is_none() {
                    // SAFETY: a successful accept's result is a fresh descriptor that this
                    // completion alone names.
                    drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(c.result) });
                }
                if c.flags & CQE_F_MORE == 0 {
                    table.remove(token);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if table.len() == 0 || left.is_zero() {
                break;
            }
            let ts = types::Timespec::from(left.min(Duration::from_millis(50)));
            let args = types::SubmitArgs::new().timespec(&ts);
            if reap_anyway(self.ring.submitter().submit_with_args(1, &args)).is_err() {
                break;
            }
            self.reap(&mut done);
        }
        if table.len() > 0 {
            tracing::warn!(
                operations = table.len(),
                "operations did not come back from the kernel when the port closed: leaked"
            );
            table.leak();
            std::mem::forget(pool.take());
        }
    }

    /// Submits everything queued with one `io_uring_enter`, waits for a completion or the
    /// timeout, and appends every ready completion to `out`.
    fn wait(
        &mut self,
        table: &mut OpTable<UringOp>,
        _pool: Option<&mut BufPool>,
        timeout: Option<Duration>,
        now: Option<Instant>,
        out: &mut Vec<RawCompletion>,
    ) -> io::Result<()> {
        let min = 1;
        let from = out.len();
        // Completions already reaped: deliver them without waiting for more.
        let timeout = if self.backlog.is_empty() {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        out.append(&mut self.backlog);
        self.push_late()?;
        self.close_orphans()?;
        let res = match timeout {
            None => self.submit_and_wait(min),
            Some(d) if d.is_zero() => self.submit_and_wait(0),
            Some(d) if d >= ALARM_MIN && self.set_alarm(now, d)? => self.submit_and_wait(min),
            Some(d) => {
                // Rare (a wait under the alarm's least): by descriptor, with what is left of
                // the timeout.
                let d = now.map_or(d, |now| (now + d).saturating_duration_since(Instant::now()));
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(min as usize, &args)
            }
        };
        // Timed out, interrupted by a signal, or completions must be reaped first: reap.
        reap_anyway(res)?;
        self.reap(out);
        // Completions the ring had no room for wait in the kernel's overflow list: an enter
        // with GETEVENTS (which `submit` adds while the overflow flag is set) moves them into
        // the ring. Bounded, so that a flood cannot keep this wait from returning.
        for _ in 0..64 {
            if !self.ring.submission().cq_overflow() {
                break;
            }
            reap_anyway(self.submit())?;
            self.reap(out);
        }
        if self.accept_watch && self.accept_multi != Feature::Yes {
            self.accept_fallback(table, out, from);
        }
        if !self.wake_armed {
            self.arm_wake()?;
        }
        Ok(())
    }
}

/// Takes note of a completion the driver reaped: a fired wake-up (`wake_armed` cleared; the
/// completion is delivered, so that the port drains what was posted), the alarm (`alarm`
/// cleared) or its update (the driver's alone: `None`), any other (delivered).
fn note(
    alarm: &mut Option<Instant>,
    wake_armed: &mut bool,
    entry: &cqueue::Entry,
) -> Option<RawCompletion> {
    match entry.user_data() {
        ALARM => {
            *alarm = None;
            None
        }
        ALARM_UPDATE | DIRECT_CLOSE => None,
        data => {
            if data == WAKE.raw() {
                *wake_armed = false;
            }
            Some(RawCompletion::of(entry))
        }
    }
}

/// One accept on `listener` that does not ask for the peer's address (a multishot accept's
/// completion does not carry it either: the port reads it with `getpeername`), into a slot of
/// the ring's file table if `direct`.
/// Whether the socket of the accept `token` listens (as far as the system says; `true` when it
/// cannot tell).
fn listens(token: Token, table: &OpTable<UringOp>) -> bool {
    let Some(Work::Op(Op::AcceptMulti { listener })) = table.get(token).map(|i| &i.work) else {
        return true;
    };
    listener
        .real()
        .is_none_or(|fd| socket2::SockRef::from(fd).is_listener().unwrap_or(true))
}

fn single_accept_entry(listener: RawFd, direct: bool) -> squeue::Entry {
    let accept = opcode::Accept::new(
        types::Fd(listener),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    if direct {
        accept
            .file_index(Some(types::DestinationSlot::auto_target()))
            .build()
    } else {
        accept.flags(libc::SOCK_CLOEXEC).build()
    }
}

/// The number an entry names `s` by: its descriptor, or its slot of the ring's file table
/// (the entry then carries `IOSQE_FIXED_FILE`).
fn sqe_fd(s: &Socket) -> RawFd {
    match s.as_direct() {
        Some(d) => d.slot as RawFd,
        None => s.as_raw_fd(),
    }
}

/// A send of pool buffer `buf` from `at` on `fd`; `EINVAL` without a pool.
fn pooled_send(
    fd: RawFd,
    pool: Option<&mut BufPool>,
    buf: &PoolBuf,
    at: usize,
) -> io::Result<squeue::Entry> {
    let Some(pool) = pool else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let at = at.min(buf.len());
    Ok(send_entry(
        fd,
        pool.ptr(buf.id()).wrapping_add(at),
        buf.len() - at,
    ))
}

/// A send of `len` bytes from `ptr` on `fd`, without SIGPIPE.
fn send_entry(fd: RawFd, ptr: *const u8, len: usize) -> squeue::Entry {
    opcode::Send::new(types::Fd(fd), ptr, u32::try_from(len).unwrap_or(u32::MAX))
        .flags(libc::MSG_NOSIGNAL)
        .build()
}

/// How long a dropped port waits for its cancelled operations to come back.
const DRAIN_ON_DROP: Duration = Duration::from_secs(2);

/// The result of an `io_uring_enter` after which the caller reaps: `ETIME` (the wait timed
/// out), `EINTR` (a signal), `EBUSY`/`EAGAIN` (completions must be reaped first) are not
/// errors here.
fn reap_anyway(res: io::Result<usize>) -> io::Result<()> {
    match res {
        Err(e)
            if !matches!(
                e.raw_os_error(),
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
            ) =>
        {
            Err(e)
        }
        _ => Ok(()),
    }
}
