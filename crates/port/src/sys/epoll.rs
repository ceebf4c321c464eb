//! The epoll backend: completions emulated from readiness, where io_uring cannot be used.
//!
//! The driver plays the kernel's part of io_uring: it is handed the same operations, carries them
//! out with ordinary non-blocking system calls, and reports the same raw completions
//! `(user_data, result, flags)` with the same results (bytes or a new fd, `-errno`). The port
//! above it cannot tell the two apart, which is what lets every test run on both.
//!
//! # How an operation is carried out
//!
//! - **At once when pushed.** Nop, Shutdown and Close are plain system calls made on the spot
//!   (`close(2)` is synchronous here). Recv, Send and Accept are *tried* on the spot when nothing
//!   of theirs is queued ahead of them on the same fd and direction; most sends and many receives
//!   finish there and never touch epoll. Connect starts a non-blocking connect on the spot. The
//!   result is held until the next [`wait`](EpollDriver::wait), as a ring would hold it.
//! - **When the fd becomes ready.** An operation that would block joins its fd's queue for its
//!   direction (read: Recv, Accept; write: Send, Connect), and the fd is registered with epoll.
//!   When epoll reports the direction ready, the queue is worked from the front until an
//!   operation would block again. So several operations may wait on one fd at once (a recv and a
//!   send on one socket, as the pipelining stress client has), and operations of one fd and
//!   direction complete in the order they were submitted.
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
//! submitted for an fd the driver merely holds is preceded by [`release`](EpollDriver::release),
//! so the close is real and synchronous.
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

use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::op::{Op, PoolBuf, SharedFd, SEND_BUFS_MAX};
use crate::sys::pool::BufPool;
use crate::sys::{buffer_flags, gather, SockAddrBuf, CQE_F_MORE};
use crate::table::{InFlight, OpTable};
use crate::token::{OpKind, Token};

/// End of a waiter list.
const NONE: u32 = u32::MAX;
/// The epoll key of the wake-up eventfd (fd keys are non-negative `i32`s).
const WAKE_KEY: u64 = u64::MAX;
/// The completion a wake-up produces.
const WAKE: Token = Token::new(0, 0, OpKind::Wake);
/// What every waited-on fd is registered for.
const INTEREST: u32 = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
const READ_READY: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_READY: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// Which readiness an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Read,
    Write,
}

/// A FIFO of waiting operations, linked through [`EpollDriver::waiters`] by slot.
#[derive(Debug, Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
}

impl Queue {
    const EMPTY: Queue = Queue {
        head: NONE,
        tail: NONE,
    };

    fn is_empty(&self) -> bool {
        self.head == NONE
    }
}

/// What the driver knows about one fd, indexed by its number.
#[derive(Debug)]
struct FdState {
    /// The driver's own handle, held while the state is in use, so the number stays this fd's.
    handle: Option<SharedFd>,
    /// Added to the epoll set.
    registered: bool,
    /// `O_NONBLOCK` is known to be set (listeners only).
    nonblocking: bool,
    /// On the idle list, to be looked at by the next `wait`.
    idle_listed: bool,
    read: Queue,
    write: Queue,
}

impl FdState {
    const UNUSED: FdState = FdState {
        handle: None,
        registered: false,
        nonblocking: false,
        idle_listed: false,
        read: Queue::EMPTY,
        write: Queue::EMPTY,
    };

    fn queue(&mut self, dir: Dir) -> &mut Queue {
        match dir {
            Dir::Read => &mut self.read,
            Dir::Write => &mut self.write,
        }
    }
}

/// One waiting operation, indexed by its token's slot.
#[derive(Debug, Clone, Copy)]
struct Waiter {
    token: Token,
    fd: RawFd,
    dir: Dir,
    next: u32,
    queued: bool,
}

impl Waiter {
    const UNUSED: Waiter = Waiter {
        token: WAKE,
        fd: -1,
        dir: Dir::Read,
        next: NONE,
        queued: false,
    };
}

/// An attempt's result: finished with a kernel-convention result, or would block.
type Attempt = Option<i32>;

/// One epoll instance and the operations waiting on it.
pub(crate) struct EpollDriver {
    epfd: OwnedFd,
    wake_fd: Arc<OwnedFd>,
    events: Vec<libc::epoll_event>,
    fds: Vec<FdState>,
    waiters: Vec<Waiter>,
    /// Completions produced outside `wait` (at push, by cancel), delivered by the next `wait`.
    ready: Vec<(u64, i32, u32)>,
    /// Fds whose queues emptied since the last `wait`.
    idle: Vec<RawFd>,
    /// `epoll_pwait2` has not failed with ENOSYS or EPERM yet.
    pwait2: bool,
    /// Fds whose multishot receive stopped before the socket was drained, to work again at
    /// the next `wait`; and the list being worked (swapped, so neither allocates per turn).
    again: Vec<RawFd>,
    again_now: Vec<RawFd>,
}

impl fmt::Debug for EpollDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpollDriver")
            .field("epfd", &self.epfd.as_raw_fd())
            .field("ready", &self.ready.len())
            .finish_non_exhaustive()
    }
}

/// `-errno` of the last failed call.
fn neg_errno() -> i32 {
    -io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// An attempt's verdict on a system call's return: done with `ret`, or would block.
fn verdict(ret: isize) -> Result<Attempt, ()> {
    if ret >= 0 {
        return Ok(Some(i32::try_from(ret).unwrap_or(i32::MAX)));
    }
    match -neg_errno() {
        libc::EINTR => Err(()),
        libc::EAGAIN => Ok(None),
        e => Ok(Some(-e)),
    }
}

/// `recv(MSG_DONTWAIT)` into the spare capacity of `buf`.
fn try_recv(fd: RawFd, buf: &mut Vec<u8>) -> Attempt {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(i32::MAX as usize);
    loop {
        // SAFETY: the pointer and length describe `buf`'s spare capacity, which is allocated,
        // exclusively borrowed here, and may hold any bytes; recv writes at most `len` of them.
        let ret = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
        if let Ok(attempt) = verdict(ret) {
            return attempt;
        }
    }
}

/// `send(MSG_DONTWAIT | MSG_NOSIGNAL)` of `buf[at..]`: a partial send completes with what it sent.
fn try_send(fd: RawFd, buf: &[u8], at: usize) -> Attempt {
    let rest = &buf[at.min(buf.len())..];
    let len = rest.len().min(i32::MAX as usize);
    loop {
        // SAFETY: the pointer and length describe initialised bytes of `rest`, borrowed here;
        // send only reads them.
        let ret = unsafe {
            libc::send(
                fd,
                rest.as_ptr().cast(),
                len,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if let Ok(attempt) = verdict(ret) {
            return attempt;
        }
    }
}

/// `accept4(SOCK_CLOEXEC)` on a listener in non-blocking mode, the peer address into `addr`.
fn try_accept(fd: RawFd, addr: &mut SockAddrBuf) -> Attempt {
    loop {
        addr.len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `addr.storage` is a live sockaddr_storage of the size `addr.len` says, both
        // exclusively borrowed; a non-negative result is a new fd whose ownership passes to the
        // completion (adopted by `sys::complete`).
        let ret = unsafe {
            libc::accept4(
                fd,
                (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
                &mut addr.len,
                libc::SOCK_CLOEXEC,
            )
        };
        if let Ok(attempt) = verdict(ret as isize) {
            return attempt;
        }
    }
}

/// The fd's file status flags, or `-errno`.
fn get_flags(fd: RawFd) -> Result<i32, i32> {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        Err(neg_errno())
    } else {
        Ok(flags)
    }
}

/// Sets the fd's file status flags, or returns `-errno`.
fn set_flags(fd: RawFd, flags: i32) -> Result<(), i32> {
    // SAFETY: F_SETFL takes an integer argument, no pointer.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        Err(neg_errno())
    } else {
        Ok(())
    }
}

/// Starts a connect with `O_NONBLOCK` set for the call only. `None`: in progress.
fn start_connect(fd: RawFd, addr: &SockAddrBuf) -> Attempt {
    let flags = match get_flags(fd) {
        Ok(flags) => flags,
        Err(e) => return Some(e),
    };
    let toggled = flags & libc::O_NONBLOCK == 0;
    if toggled {
        if let Err(e) = set_flags(fd, flags | libc::O_NONBLOCK) {
            return Some(e);
        }
    }
    // SAFETY: `addr.storage` holds a socket address of `addr.len` bytes, borrowed for the call.
    let ret = unsafe {
        libc::connect(
            fd,
            (&addr.storage as *const libc::sockaddr_storage).cast(),
            addr.len,
        )
    };
    let result = if ret == 0 {
        Some(0)
    } else {
        match neg_errno() {
            // The connection goes on in the background; its end shows as EPOLLOUT.
            e if e == -libc::EINPROGRESS || e == -libc::EINTR => None,
            e => Some(e),
        }
    };
    if toggled {
        // Best effort: the connect has been started or has failed either way.
        let _ = set_flags(fd, flags);
    }
    result
}

/// How a connect in progress ended: `SO_ERROR`, then whether a peer is there. `None`: not yet.
fn finish_connect(fd: RawFd) -> Attempt {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_ERROR writes one c_int into the live local `err`, whose size `len` gives.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Some(neg_errno());
    }
    if err != 0 {
        return Some(-err);
    }
    let mut peer = SockAddrBuf::empty();
    // SAFETY: getpeername writes at most `peer.len` bytes into the live local storage.
    let ret = unsafe {
        libc::getpeername(
            fd,
            (&mut peer.storage as *mut libc::sockaddr_storage).cast(),
            &mut peer.len,
        )
    };
    match ret {
        0 => Some(0),
        _ => match neg_errno() {
            e if e == -libc::ENOTCONN => None,
            e => Some(e),
        },
    }
}

/// What one attempt at an operation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// It would block: wait for readiness.
    Blocked,
    /// It finished with this result and these flags.
    Done(i32, u32),
    /// A multishot operation produced a result and stays armed.
    More(i32, u32),
}

impl From<Attempt> for Progress {
    fn from(a: Attempt) -> Progress {
        match a {
            None => Progress::Blocked,
            Some(res) => Progress::Done(res, 0),
        }
    }
}

/// The most pool buffers one receive of the epoll backend fills (`recvmsg` with an iovec each), as the io_uring
/// backend's bundles do.
const RECV_BUFS_MAX: usize = 64;

/// A receive into buffers taken from `pool` (one `recvmsg` over as many as `limit` needs, one
/// buffer for a single receive): every chunk but the last is pushed to `out` as a completion
/// of `token` that stays armed; the last is the result, with its buffer's flags. Buffers left
/// empty go back to the pool. An empty pool is `ENOBUFS`, as for a ring that ran dry.
fn recv_pooled(
    fd: RawFd,
    pool: Option<&mut BufPool>,
    more: bool,
    limit: &mut usize,
    token: Token,
    out: &mut Vec<(u64, i32, u32)>,
) -> Progress {
    let Some(pool) = pool else {
        return Progress::Done(-libc::EINVAL, 0);
    };
    let size = pool.buf_size().min(i32::MAX as usize);
    let want = match (*limit, more) {
        (_, false) => 1,
        (0, true) => RECV_BUFS_MAX,
        (limit, true) => limit.div_ceil(size).clamp(1, RECV_BUFS_MAX),
    };
    let mut ids = [0u16; RECV_BUFS_MAX];
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; RECV_BUFS_MAX];
    let mut taken = 0;
    while taken < want {
        let Some(id) = pool.take() else { break };
        ids[taken] = id;
        iov[taken] = libc::iovec {
            iov_base: pool.ptr(id).cast(),
            iov_len: size,
        };
        taken += 1;
    }
    if taken == 0 {
        return Progress::Done(-libc::ENOBUFS, 0);
    }
    if *limit > 0 {
        // The last buffer takes only what is left under the limit (`taken` buffers are at most
        // the limit's worth, so the others hold less than it).
        iov[taken - 1].iov_len = (*limit - (taken - 1) * size).clamp(1, size);
    }
    // SAFETY: msghdr is plain old data; all-zero is valid (no name, no control data).
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = taken as _;
    let attempt = loop {
        // SAFETY: buffers `ids[..taken]` were just taken out of the pool, so nothing else reads
        // or writes them; each iovec the header points at describes one of them (at most its
        // size), and recvmsg writes at most what the iovecs describe.
        let ret = unsafe { libc::recvmsg(fd, &mut hdr, libc::MSG_DONTWAIT) };
        if let Ok(attempt) = verdict(ret) {
            break attempt;
        }
    };
    let n = match attempt {
        Some(n) if n > 0 => n as usize,
        other => {
            for &id in ids[..taken].iter().rev() {
                pool.untake(id);
            }
            return other.into();
        }
    };
    let used = n.div_ceil(size);
    for &id in ids[used..taken].iter().rev() {
        pool.untake(id);
    }
    for &id in &ids[..used - 1] {
        out.push((token.raw(), size as i32, buffer_flags(id, true)));
    }
    let last = (n - (used - 1) * size) as i32;
    // A limited multishot receive ends with the chunk that reaches its limit.
    let reached = *limit > 0 && {
        *limit = limit.saturating_sub(n);
        *limit == 0
    };
    let id = ids[used - 1];
    if more && !reached {
        Progress::More(last, buffer_flags(id, true))
    } else {
        Progress::Done(last, buffer_flags(id, false))
    }
}

/// `sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL)` of pooled buffers (see [`gather`]): a partial send
/// completes with what it sent.
fn try_send_bufs(fd: RawFd, pool: &BufPool, bufs: &[PoolBuf], at: usize) -> Attempt {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; SEND_BUFS_MAX];
    let mut n = 0;
    gather(pool, bufs, at, |v| {
        iov[n] = v;
        n += 1;
    });
    // SAFETY: msghdr is plain old data; all-zero is valid (no name, no control data).
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = n as _;
    loop {
        // SAFETY: the header points at `n` iovecs on this stack frame, each describing
        // initialised bytes of a pool buffer the caller holds out of the pool; sendmsg only
        // reads them.
        let ret = unsafe { libc::sendmsg(fd, &hdr, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if let Ok(attempt) = verdict(ret) {
            return attempt;
        }
    }
}

/// One attempt at a queued operation, now that its fd may be ready.
/// Chunks of a receive that filled several buffers go to `out` first (see [`recv_pooled`]).
fn attempt(
    token: Token,
    inflight: &mut InFlight,
    pool: Option<&mut BufPool>,
    out: &mut Vec<(u64, i32, u32)>,
) -> Progress {
    match &mut inflight.op {
        Op::Recv { fd, buf, .. } => try_recv(fd.as_raw_fd(), buf).into(),
        Op::Send { fd, buf, at } => try_send(fd.as_raw_fd(), buf, *at).into(),
        Op::Accept { listener } => {
            let addr = inflight
                .addr
                .as_mut()
                .expect("accept carries address storage");
            try_accept(listener.as_raw_fd(), addr).into()
        }
        Op::Connect { fd, .. } => finish_connect(fd.as_raw_fd()).into(),
        Op::AcceptMulti { listener } => {
            let mut addr = SockAddrBuf::empty();
            match try_accept(listener.as_raw_fd(), &mut addr) {
                None => Progress::Blocked,
                Some(fd) if fd >= 0 => Progress::More(fd, CQE_F_MORE),
                Some(e) => Progress::Done(e, 0),
            }
        }
        Op::RecvMulti { fd, limit } => recv_pooled(fd.as_raw_fd(), pool, true, limit, token, out),
        Op::RecvBuf { fd, .. } => recv_pooled(fd.as_raw_fd(), pool, false, &mut 0, token, out),
        Op::SendBuf { fd, buf, at } => match pool {
            Some(pool) => try_send(fd.as_raw_fd(), pool.bytes(buf), *at).into(),
            None => Progress::Done(-libc::EINVAL, 0),
        },
        Op::SendBufs { fd, bufs, at } => match pool {
            Some(pool) => try_send_bufs(fd.as_raw_fd(), pool, bufs, *at).into(),
            None => Progress::Done(-libc::EINVAL, 0),
        },
        // Never queued: they complete when pushed.
        Op::Shutdown { .. } | Op::Close { .. } | Op::Nop => Progress::Done(0, 0),
    }
}

impl EpollDriver {
    /// An epoll instance watching `wake_fd`, a non-blocking eventfd; `events` is how many
    /// readiness events one `epoll_wait` may return.
    pub fn new(events: u32, wake_fd: Arc<OwnedFd>) -> io::Result<EpollDriver> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we own.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `epfd` was just returned by epoll_create1 and is owned by nothing else.
        let epfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(epfd) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: WAKE_KEY,
        };
        // SAFETY: both fds are open; the event is a live local the kernel only reads.
        let ret = unsafe {
            libc::epoll_ctl(
                epfd.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                wake_fd.as_raw_fd(),
                &mut ev,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        let events = events.clamp(64, 4096) as usize;
        Ok(EpollDriver {
            epfd,
            wake_fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; events],
            fds: Vec::new(),
            waiters: Vec::new(),
            ready: Vec::with_capacity(256),
            idle: Vec::new(),
            pwait2: true,
            again: Vec::with_capacity(64),
            again_now: Vec::with_capacity(64),
        })
    }

    /// The driver's state for `fd`, taking a handle on it if it had none.
    fn hold(&mut self, fd: &SharedFd) -> &mut FdState {
        let raw = fd.as_raw_fd();
        let index = usize::try_from(raw).expect("an open fd is non-negative");
        if index >= self.fds.len() {
            let len = (index + 1).next_power_of_two().max(64);
            self.fds.resize_with(len, || FdState::UNUSED);
        }
        let state = &mut self.fds[index];
        if state.handle.is_none() {
            state.handle = Some(Rc::clone(fd));
        }
        state
    }

    fn state(&mut self, fd: RawFd) -> Option<&mut FdState> {
        self.fds.get_mut(usize::try_from(fd).ok()?)
    }

    fn queue_is_empty(&self, fd: RawFd, dir: Dir) -> bool {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.fds.get(i))
            .is_none_or(|s| match dir {
                Dir::Read => s.read.is_empty(),
                Dir::Write => s.write.is_empty(),
            })
    }

    /// Puts `fd` on the idle list if nothing waits on it, for the next `wait` to deregister.
    fn note_if_idle(&mut self, fd: RawFd) {
        let Some(state) = self.state(fd) else { return };
        if state.read.is_empty() && state.write.is_empty() && !state.idle_listed {
            state.idle_listed = true;
            self.idle.push(fd);
        }
    }

    /// Removes `fd` from the epoll set and drops the driver's handle, if nothing waits on it.
    fn forget(&mut self, fd: RawFd) {
        let epfd = self.epfd.as_raw_fd();
        let Some(state) = self.state(fd) else { return };
        if !state.read.is_empty() || !state.write.is_empty() || state.handle.is_none() {
            return;
        }
        if state.registered {
            // SAFETY: `fd` is open (the driver's handle keeps it so) and registered; DEL ignores
            // the event pointer, which may be null since Linux 2.6.9.
            unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        }
        state.registered = false;
        state.nonblocking = false;
        // May close the fd, when its owner has dropped every other handle.
        state.handle = None;
    }

    /// Called before a Close of `fd` is submitted: lets go of the driver's handle on it if
    /// nothing waits on it, so the Close holds the last handle and really closes.
    pub fn release(&mut self, fd: RawFd) {
        self.forget(fd);
    }

    /// Queues `token` behind the operations waiting on `fd` in direction `dir`, registering the
    /// fd with epoll if needed. On failure the operation completes with the error.
    fn enqueue(&mut self, token: Token, fd: &SharedFd, dir: Dir) {
        let raw = fd.as_raw_fd();
        let epfd = self.epfd.as_raw_fd();
        let state = self.hold(fd);
        if !state.registered {
            let mut ev = libc::epoll_event {
                events: INTEREST,
                u64: raw as u64,
            };
            // SAFETY: both fds are open (the driver holds a handle on `raw`); the event is a
            // live local the kernel only reads.
            let ret = unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, raw, &mut ev) };
            if ret < 0 {
                let e = neg_errno();
                self.ready.push((token.raw(), e, 0));
                self.note_if_idle(raw);
                return;
            }
            state.registered = true;
        }
        let slot = token.slot();
        let queue = state.queue(dir);
        let old_tail = queue.tail;
        queue.tail = slot;
        if old_tail == NONE {
            queue.head = slot;
        }
        if self.waiters.len() <= slot as usize {
            let len = (slot as usize + 1).next_power_of_two().max(64);
            self.waiters.resize(len, Waiter::UNUSED);
        }
        if old_tail != NONE {
            self.waiters[old_tail as usize].next = slot;
        }
        self.waiters[slot as usize] = Waiter {
            token,
            fd: raw,
            dir,
            next: NONE,
            queued: true,
        };
    }

    /// Takes the front operation off `fd`'s `dir` queue.
    fn pop_front(&mut self, fd: RawFd, dir: Dir) {
        let Some(state) = self.fds.get_mut(fd as usize) else {
            return;
        };
        let queue = state.queue(dir);
        let head = queue.head;
        if head == NONE {
            return;
        }
        let waiter = &mut self.waiters[head as usize];
        waiter.queued = false;
        queue.head = waiter.next;
        if queue.head == NONE {
            queue.tail = NONE;
        }
    }

    /// Takes the operation in `slot` out of the middle of its queue.
    fn unlink(&mut self, slot: u32) {
        let Waiter { fd, dir, .. } = self.waiters[slot as usize];
        let Some(state) = self.fds.get_mut(fd as usize) else {
            return;
        };
        let queue = state.queue(dir);
        let mut prev = NONE;
        let mut cur = queue.head;
        while cur != NONE && cur != slot {
            prev = cur;
            cur = self.waiters[cur as usize].next;
        }
        if cur == NONE {
            return;
        }
        let next = self.waiters[slot as usize].next;
        if prev == NONE {
            queue.head = next;
        } else {
            self.waiters[prev as usize].next = next;
        }
        if queue.tail == slot {
            queue.tail = prev;
        }
        self.waiters[slot as usize].queued = false;
    }

    /// Starts the operation `inflight`, named `token`: carries it out at once if it can, else
    /// queues it until its fd is ready. `close_fd` is the descriptor a Close operation closes
    /// (ownership passes to the driver); a Close without one completes at once.
    pub fn push(
        &mut self,
        token: Token,
        inflight: &mut InFlight,
        close_fd: Option<RawFd>,
        mut pool: Option<&mut BufPool>,
    ) -> io::Result<()> {
        let done: Attempt = match &mut inflight.op {
            Op::AcceptMulti { listener } => {
                let raw = listener.as_raw_fd();
                let listener = Rc::clone(listener);
                let state = self.hold(&listener);
                if !state.nonblocking {
                    match get_flags(raw).and_then(|f| set_flags(raw, f | libc::O_NONBLOCK)) {
                        Ok(()) => state.nonblocking = true,
                        Err(e) => {
                            self.ready.push((token.raw(), e, 0));
                            self.note_if_idle(raw);
                            return Ok(());
                        }
                    }
                }
                self.push_multi(token, inflight, &listener, pool);
                return Ok(());
            }
            Op::RecvMulti { fd, .. } => {
                let fd = Rc::clone(fd);
                self.push_multi(token, inflight, &fd, pool);
                return Ok(());
            }
            Op::RecvBuf { fd, nowait } => {
                let (fd, nowait) = (Rc::clone(fd), *nowait);
                let raw = fd.as_raw_fd();
                let progress = if self.queue_is_empty(raw, Dir::Read) {
                    attempt(token, inflight, pool.as_deref_mut(), &mut self.ready)
                } else {
                    Progress::Blocked
                };
                match progress {
                    Progress::Blocked if nowait => {
                        self.ready.push((token.raw(), -libc::EAGAIN, 0));
                    }
                    Progress::Blocked => self.enqueue(token, &fd, Dir::Read),
                    Progress::Done(res, flags) | Progress::More(res, flags) => {
                        self.ready.push((token.raw(), res, flags));
                    }
                }
                return Ok(());
            }
            Op::SendBuf { fd, .. } | Op::SendBufs { fd, .. } => {
                let fd = Rc::clone(fd);
                let progress = if self.queue_is_empty(fd.as_raw_fd(), Dir::Write) {
                    attempt(token, inflight, pool, &mut self.ready)
                } else {
                    Progress::Blocked
                };
                match progress {
                    Progress::Blocked => self.enqueue(token, &fd, Dir::Write),
                    Progress::Done(res, flags) | Progress::More(res, flags) => {
                        self.ready.push((token.raw(), res, flags));
                    }
                }
                return Ok(());
            }
            Op::Nop | Op::Close { .. } => Some(match close_fd {
                Some(raw) => {
                    // SAFETY: the port passed us ownership of `raw` (the last handle on it), so
                    // closing it can affect no other owner.
                    if unsafe { libc::close(raw) } == 0 {
                        0
                    } else {
                        neg_errno()
                    }
                }
                None => 0,
            }),
            Op::Shutdown { fd, how } => {
                let how = match how {
                    std::net::Shutdown::Read => libc::SHUT_RD,
                    std::net::Shutdown::Write => libc::SHUT_WR,
                    std::net::Shutdown::Both => libc::SHUT_RDWR,
                };
                // SAFETY: shutdown takes no pointers; the op's handle keeps the fd open.
                Some(match unsafe { libc::shutdown(fd.as_raw_fd(), how) } {
                    0 => 0,
                    _ => neg_errno(),
                })
            }
            Op::Recv { fd, buf, nowait } => {
                let raw = fd.as_raw_fd();
                let attempted = if self.queue_is_empty(raw, Dir::Read) {
                    try_recv(raw, buf)
                } else {
                    None
                };
                match attempted {
                    None if *nowait => Some(-libc::EAGAIN),
                    None => {
                        let fd = Rc::clone(fd);
                        self.enqueue(token, &fd, Dir::Read);
                        None
                    }
                    done => done,
                }
            }
            Op::Send { fd, buf, at } => {
                let raw = fd.as_raw_fd();
                let attempted = if self.queue_is_empty(raw, Dir::Write) {
                    try_send(raw, buf, *at)
                } else {
                    None
                };
                if attempted.is_none() {
                    let fd = Rc::clone(fd);
                    self.enqueue(token, &fd, Dir::Write);
                }
                attempted
            }
            Op::Accept { listener } => {
                let raw = listener.as_raw_fd();
                let state = self.hold(listener);
                let mut failed = None;
                if !state.nonblocking {
                    match get_flags(raw).and_then(|f| set_flags(raw, f | libc::O_NONBLOCK)) {
                        Ok(()) => state.nonblocking = true,
                        Err(e) => failed = Some(e),
                    }
                }
                let attempted = match failed {
                    Some(e) => Some(e),
                    None if self.queue_is_empty(raw, Dir::Read) => {
                        let addr = inflight
                            .addr
                            .as_mut()
                            .expect("accept carries address storage");
                        try_accept(raw, addr)
                    }
                    None => None,
                };
                match attempted {
                    None => {
                        let fd = Rc::clone(listener);
                        self.enqueue(token, &fd, Dir::Read);
                    }
                    Some(_) => self.note_if_idle(raw),
                }
                attempted
            }
            Op::Connect { fd, .. } => {
                let addr = inflight.addr.as_ref().expect("connect carries its address");
                let attempted = start_connect(fd.as_raw_fd(), addr);
                if attempted.is_none() {
                    let fd = Rc::clone(fd);
                    self.enqueue(token, &fd, Dir::Write);
                }
                attempted
            }
        };
        if let Some(res) = done {
            self.ready.push((token.raw(), res, 0));
        }
        Ok(())
    }

    /// Starts a multishot operation (reading direction): produces what is ready now, then waits
    /// for readiness, unless it ended.
    fn push_multi(
        &mut self,
        token: Token,
        inflight: &mut InFlight,
        fd: &SharedFd,
        mut pool: Option<&mut BufPool>,
    ) {
        let raw = fd.as_raw_fd();
        if self.queue_is_empty(raw, Dir::Read) {
            loop {
                match attempt(token, inflight, pool.as_deref_mut(), &mut self.ready) {
                    Progress::More(res, flags) if token.kind() == OpKind::RecvMulti => {
                        // One receive now, the rest from the next `wait` (see `drive`).
                        self.ready.push((token.raw(), res, flags));
                        self.again.push(raw);
                        break;
                    }
                    Progress::More(res, flags) => self.ready.push((token.raw(), res, flags)),
                    Progress::Done(res, flags) => {
                        self.ready.push((token.raw(), res, flags));
                        self.note_if_idle(raw);
                        return;
                    }
                    Progress::Blocked => break,
                }
            }
        }
        self.enqueue(token, fd, Dir::Read);
    }

    /// Cancels the operation named `target` if it is waiting for readiness: it completes with
    /// `ECANCELED`. An operation that has already finished completes as it finished.
    pub fn cancel(&mut self, target: Token) -> io::Result<()> {
        let slot = target.slot();
        let Some(waiter) = self.waiters.get(slot as usize).copied() else {
            return Ok(());
        };
        if !waiter.queued || waiter.token != target {
            return Ok(());
        }
        self.unlink(slot);
        self.ready.push((target.raw(), -libc::ECANCELED, 0));
        self.note_if_idle(waiter.fd);
        Ok(())
    }

    /// Works `fd`'s `dir` queue from the front until an operation would block.
    fn drive(
        &mut self,
        fd: RawFd,
        dir: Dir,
        table: &mut OpTable,
        mut pool: Option<&mut BufPool>,
        out: &mut Vec<(u64, i32, u32)>,
    ) {
        loop {
            let Some(state) = self.fds.get_mut(fd as usize) else {
                return;
            };
            let head = state.queue(dir).head;
            if head == NONE {
                return;
            }
            let token = self.waiters[head as usize].token;
            let Some(inflight) = table.get_mut(token) else {
                // Not in the table (cannot happen: an operation leaves it only through its
                // completion); drop the waiter rather than spin on it.
                self.pop_front(fd, dir);
                continue;
            };
            match attempt(token, inflight, pool.as_deref_mut(), out) {
                Progress::Blocked => return,
                Progress::More(res, flags) if token.kind() == OpKind::RecvMulti => {
                    // One receive (up to its limit) per connection and turn, as io_uring caps
                    // a multishot receive per invocation: a peer with much to send cannot take
                    // the whole pool before its owner sees the first chunks. The fd is worked again at the
                    // next `wait` (no new edge will come, the socket was not drained).
                    out.push((token.raw(), res, flags));
                    self.again.push(fd);
                    return;
                }
                Progress::More(res, flags) => out.push((token.raw(), res, flags)),
                Progress::Done(res, flags) => {
                    self.pop_front(fd, dir);
                    out.push((token.raw(), res, flags));
                }
            }
        }
    }

    /// Deregisters the fds that stayed idle since the last `wait`.
    fn sweep_idle(&mut self) {
        for i in 0..self.idle.len() {
            let fd = self.idle[i];
            if let Some(state) = self.state(fd) {
                state.idle_listed = false;
            }
            self.forget(fd);
        }
        self.idle.clear();
    }

    /// One wait for readiness events into `self.events`, at most `left` long (`None`: no limit).
    /// Returns how many events arrived.
    fn epoll_wait(&mut self, left: Option<Duration>) -> io::Result<usize> {
        let epfd = self.epfd.as_raw_fd();
        let cap = i32::try_from(self.events.len()).unwrap_or(i32::MAX);
        if self.pwait2 {
            let ts = left.map(|d| libc::timespec {
                tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                tv_nsec: d.subsec_nanos().into(),
            });
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: epoll_pwait2(epfd, events, maxevents, timeout, sigmask, sigsetsize):
            // `events` is a live buffer of `cap` epoll_events, exclusively borrowed, of which the
            // kernel writes at most `cap`; `ts_ptr` is null or points at a live local timespec
            // it only reads; a null sigmask leaves the signal mask alone (the size is then
            // ignored).
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epfd,
                    self.events.as_mut_ptr(),
                    cap,
                    ts_ptr,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if ret >= 0 {
                return Ok(ret as usize);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Older than 5.11, or a seccomp profile that does not know the call.
                Some(libc::ENOSYS | libc::EPERM) => self.pwait2 = false,
                _ => return Err(e),
            }
        }
        let ms = match left {
            None => -1,
            Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        // SAFETY: `events` is a live buffer of `cap` epoll_events, exclusively borrowed; the
        // kernel writes at most `cap` of them.
        let n = unsafe { libc::epoll_wait(epfd, self.events.as_mut_ptr(), cap, ms) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Delivers what finished since the last call, waits for readiness (one `epoll_wait`) until
    /// `min` completions are ready or the timeout passes, and works the queues of the fds that
    /// became ready. Appends every completion to `out` as `(user_data, result, flags)`.
    pub fn wait(
        &mut self,
        table: &mut OpTable,
        mut pool: Option<&mut BufPool>,
        min: usize,
        timeout: Option<Duration>,
        out: &mut Vec<(u64, i32, u32)>,
    ) -> io::Result<()> {
        self.sweep_idle();
        let before = out.len();
        out.append(&mut self.ready);
        std::mem::swap(&mut self.again, &mut self.again_now);
        for i in 0..self.again_now.len() {
            let fd = self.again_now[i];
            self.drive(fd, Dir::Read, table, pool.as_deref_mut(), out);
        }
        self.again_now.clear();
        let deadline = match timeout {
            Some(d) if !d.is_zero() => Instant::now().checked_add(d),
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
            let n = match self.epoll_wait(left) {
                Ok(n) => n,
                // Like io_uring_enter: interrupted by a signal, reap what there is.
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => return Ok(()),
                Err(e) => return Err(e),
            };
            for i in 0..n {
                let libc::epoll_event { events, u64: key } = self.events[i];
                if key == WAKE_KEY {
                    let mut count: u64 = 0;
                    // SAFETY: reads 8 bytes into a live local from the non-blocking eventfd the
                    // driver holds open; EAGAIN (already drained) is harmless.
                    unsafe {
                        libc::read(self.wake_fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8)
                    };
                    out.push((WAKE.raw(), 8, 0));
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
                self.note_if_idle(fd);
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

impl Drop for EpollDriver {
    fn drop(&mut self) {
        // Accepted fds whose completions were never reaped belong to nobody else: close them.
        for &(user_data, res, _) in &self.ready {
            let kind = Token::from_raw(user_data).map(Token::kind);
            if res >= 0 && matches!(kind, Some(OpKind::Accept | OpKind::AcceptMulti)) {
                // SAFETY: `res` is a new fd from accept4 that was never handed out.
                unsafe { libc::close(res) };
            }
        }
    }
}
