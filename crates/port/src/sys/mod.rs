//! The operating-system side of the port: every `unsafe` block of ringport lives below here.
//!
//! # The driver contract
//!
//! A backend is a *driver*: one value per port, owned by the port's thread, that implements
//! [`Driver`]. The port calls it through [`AnyDriver`], one enum with one `match` per method
//! (static dispatch: no allocation and no virtual call per operation). The contract, as mio
//! states its selector's:
//!
//! - **Operations.** [`push`](Driver::push) starts the operation an [`InFlight`] entry of the
//!   port's table holds, named by its [`Token`]. The entry, and everything its [`Op`] owns (the
//!   buffer, the fd handle, the boxed address), stays where it is until the port removes it,
//!   which happens only once the operation's last completion has been delivered: the driver may
//!   hand the kernel pointers into it. A driver may carry an operation out at once or only
//!   queue it (io_uring: nothing reaches the kernel before the next `wait`), but every pushed
//!   operation completes exactly once (a multishot one: any number of times with
//!   [`CQE_F_MORE`], then once without). An `Err` from `push` means the operation was not
//!   started and will not complete (the port frees its slot).
//! - **Closes.** A Close is the driver's: it takes the descriptor with [`take_close_fd`],
//!   closes it (its result is the operation's), and lets go of any handle it keeps on the fd
//!   itself first, so that the close is real.
//! - **Cancellation.** [`cancel`](Driver::cancel) asks a pushed operation to end early: it then
//!   completes with `-ECANCELED` unless it had finished anyway (and completes as it finished).
//!   The port calls it only for operations still in its table. A driver's own bookkeeping for
//!   the request (io_uring's cancel entry, named with [`OpKind::Cancel`]) is dropped by the port.
//! - **Waiting.** [`wait`](Driver::wait) submits what is queued, waits until at least one
//!   completion is ready or the timeout passes (`None`: no limit; zero: do not block), and
//!   appends every ready completion to `out`. It may look operations up in the table (to
//!   carry out those that became ready, or to re-arm one), never insert or remove: delivering
//!   is the port's ([`deliver`]). A signal interrupting the wait is not an error.
//! - **What it reports.** [`RawCompletion`]s in io_uring's convention, whatever the mechanism:
//!   `user_data` is the operation's token or a reserved value
//!   ([`token`](crate::token#reserved-values)), `result` is bytes, a new fd or 0 when
//!   non-negative and `-errno` when negative (on Windows `-code` with a Windows error code;
//!   [`errors::code`](crate::errors::code) names the ones the port compares), so
//!   [`is_cancelled`](crate::is_cancelled) and friends hold everywhere; `flags` carry [`CQE_F_MORE`] (a multishot operation stays
//!   armed) and [`CQE_F_BUFFER`] with a pool buffer's id ([`buffer_flags`]). An accepted fd
//!   in a result belongs to the port from then on.
//! - **The buffer pool.** [`attach_pool`](Driver::attach_pool) is called once, when the port
//!   gets its [`BufPool`]; later calls hand the pool in. A pooled receive takes its buffer
//!   from the pool (or lets the kernel take it from the pool's ring) only when bytes arrive if
//!   it can, and reports the buffer in `flags`; one receive may fill several buffers (the port
//!   splits it, see [`deliver`]). An empty pool is `-ENOBUFS`, never a failure of `push`. A
//!   buffer a driver took for an operation itself is recorded in [`InFlight::pooled`].
//! - **Posting.** The driver owns a [`Waker`] ([`waker`](Driver::waker)), which the port's
//!   [`Poster`](crate::Poster)s call from any thread after queueing a value. Every wake must
//!   make the current or the next `wait` report a completion named
//!   [`WAKE`](crate::token::WAKE) (several wakes may come out as one); the port then drains
//!   the posted values.
//! - **Resources.** Memory a driver lends an operation (io_uring's gathered-send header in
//!   [`InFlight::msg`]) comes back through [`reclaim`](Driver::reclaim) when the operation
//!   leaves the table.
//! - **Kernel features.** What a kernel lacks is made up for inside the driver, so that every
//!   operation means the same on every backend and kernel: io_uring without a provided-buffer
//!   ring takes a pool buffer per receive; without multishot accept (before 5.19, refused with
//!   `EINVAL`) it accepts one connection at a time and reports each as a multishot accept
//!   would; epoll emulates multishot operations and the pool.
//!
//! Three drivers implement it: on Linux `uring` (the kernel carries operations out) and
//! `epoll` (the driver carries them out when their fd is ready); on Windows `iocp` (Windows
//! carries them out, on an I/O completion port). Each is an [`AnyDriver`] variant on the
//! system it exists on; a module is laid out as `epoll`'s (driver in `mod.rs`, system calls
//! behind safe functions beside it). The libc parts of this module (socket addresses, the
//! eventfd [`Waker`], the gathered-send header) are Unix-only; `iocp` has their Windows
//! counterparts under the same names.
//!
//! This module also holds the backend-independent conversions that need `unsafe`: socket
//! addresses to and from `sockaddr_storage`, and a raw result into an [`Outcome`] (adopting an
//! accepted fd, growing a buffer by the bytes the kernel wrote).

#[cfg(unix)]
pub(crate) mod epoll;
#[cfg(windows)]
pub(crate) mod iocp;
pub mod os;
pub(crate) mod pool;
#[cfg(unix)]
pub(crate) mod uring;

use std::io;
use std::mem;
#[cfg(unix)]
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
#[cfg(unix)]
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::Mutex;

use std::sync::Arc;
use std::time::Duration;

use crate::op::{Accepted, Completion, Op, Outcome, OwnedFd, PoolBuf};
use crate::port::Backend;
#[cfg(unix)]
use crate::sys::epoll::EpollDriver;
#[cfg(windows)]
pub(crate) use crate::sys::iocp::{IocpDriver, MsgBuf, SockAddrBuf, Waker};
use crate::sys::pool::BufPool;
#[cfg(unix)]
use crate::sys::uring::UringDriver;
use crate::table::{InFlight, OpTable};
use crate::token::{OpKind, Token};

/// What a backend does for a port; see [the contract](self#the-driver-contract).
pub(crate) trait Driver {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// A few words on the backend and how it was set up, for logs.
    fn describe(&self, pool: Option<&BufPool>) -> String;

    /// The waker the port's posters call.
    fn waker(&self) -> Arc<Waker>;

    /// The port got its buffer pool: register it with the kernel, probe what receives into
    /// it may use, make ready what sends from it need.
    fn attach_pool(&mut self, pool: &mut BufPool);

    /// Starts the operation `inflight`, named `token`.
    fn push(
        &mut self,
        token: Token,
        inflight: &mut InFlight,
        pool: Option<&mut BufPool>,
    ) -> io::Result<()>;

    /// Asks the operation named `target` to end early.
    fn cancel(&mut self, target: Token) -> io::Result<()>;

    /// Submits, waits for at least one completion or the timeout, appends what is ready.
    fn wait(
        &mut self,
        table: &mut OpTable,
        pool: Option<&mut BufPool>,
        timeout: Option<Duration>,
        out: &mut Vec<RawCompletion>,
    ) -> io::Result<()>;

    /// Takes back what the driver lent `inflight`, which is leaving the table.
    fn reclaim(&mut self, inflight: &mut InFlight);

    /// Operations the system finished at once, without a completion of its own, whose results
    /// the driver queued itself (IOCP with skip-on-success; the Linux drivers have none).
    fn inline_completions(&self) -> u64 {
        0
    }

    /// The port is being dropped with `table` still holding the operations in flight: make
    /// sure the system writes into none of them (or the pool) once this returns. The kernel
    /// drivers need nothing (their ring or epoll set goes first); IOCP cancels and drains,
    /// and leaks what does not come back in time.
    fn close(&mut self, _table: &mut OpTable, _pool: &mut Option<BufPool>) {}
}

/// The port's driver: the one place that dispatches to a backend.
pub(crate) enum AnyDriver {
    #[cfg(unix)]
    Uring(UringDriver),
    #[cfg(unix)]
    Epoll(EpollDriver),
    #[cfg(windows)]
    Iocp(IocpDriver),
}

/// `$body` with `$d` bound to the driver inside `$driver`, whichever it is.
macro_rules! dispatch {
    ($driver:expr, $d:ident => $body:expr) => {
        match $driver {
            #[cfg(unix)]
            AnyDriver::Uring($d) => $body,
            #[cfg(unix)]
            AnyDriver::Epoll($d) => $body,
            #[cfg(windows)]
            AnyDriver::Iocp($d) => $body,
        }
    };
}

impl Driver for AnyDriver {
    fn backend(&self) -> Backend {
        dispatch!(self, d => d.backend())
    }

    fn describe(&self, pool: Option<&BufPool>) -> String {
        dispatch!(self, d => d.describe(pool))
    }

    fn waker(&self) -> Arc<Waker> {
        dispatch!(self, d => d.waker())
    }

    fn attach_pool(&mut self, pool: &mut BufPool) {
        dispatch!(self, d => d.attach_pool(pool))
    }

    #[inline]
    fn push(
        &mut self,
        token: Token,
        inflight: &mut InFlight,
        pool: Option<&mut BufPool>,
    ) -> io::Result<()> {
        dispatch!(self, d => d.push(token, inflight, pool))
    }

    #[inline]
    fn cancel(&mut self, target: Token) -> io::Result<()> {
        dispatch!(self, d => d.cancel(target))
    }

    #[inline]
    fn wait(
        &mut self,
        table: &mut OpTable,
        pool: Option<&mut BufPool>,
        timeout: Option<Duration>,
        out: &mut Vec<RawCompletion>,
    ) -> io::Result<()> {
        dispatch!(self, d => d.wait(table, pool, timeout, out))
    }

    #[inline]
    fn reclaim(&mut self, inflight: &mut InFlight) {
        dispatch!(self, d => d.reclaim(inflight))
    }

    fn inline_completions(&self) -> u64 {
        dispatch!(self, d => d.inline_completions())
    }

    fn close(&mut self, table: &mut OpTable, pool: &mut Option<BufPool>) {
        dispatch!(self, d => d.close(table, pool))
    }
}

/// The socket address storage a new operation needs in its table entry: empty for an accept
/// to fill, the target of a connect. None on Windows, whose driver keeps its own state there.
pub(crate) fn op_addr(op: &Op) -> Option<Box<SockAddrBuf>> {
    match op {
        #[cfg(unix)]
        Op::Accept { .. } => Some(Box::new(SockAddrBuf::empty())),
        #[cfg(unix)]
        Op::Connect { addr, .. } => Some(Box::new(SockAddrBuf::from_socket_addr(addr))),
        _ => None,
    }
}

/// Storage for a socket address the kernel reads or writes.
#[cfg(unix)]
#[derive(Clone, Copy)]
pub(crate) struct SockAddrBuf {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

#[cfg(unix)]
impl std::fmt::Debug for SockAddrBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SockAddrBuf({:?})", self.socket_addr())
    }
}

#[cfg(unix)]
impl SockAddrBuf {
    /// Empty storage of full size, for the kernel to fill (accept).
    pub fn empty() -> SockAddrBuf {
        SockAddrBuf {
            // SAFETY: sockaddr_storage is plain old data for which all-zero bytes are valid.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// The C form of `addr` (connect).
    pub fn from_socket_addr(addr: &SocketAddr) -> SockAddrBuf {
        let mut buf = SockAddrBuf::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in, and the
                // pointer comes from a live, exclusively borrowed local.
                unsafe {
                    std::ptr::write(
                        (&mut buf.storage as *mut libc::sockaddr_storage)
                            .cast::<libc::sockaddr_in>(),
                        sin,
                    )
                };
                buf.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6, and the
                // pointer comes from a live, exclusively borrowed local.
                unsafe {
                    std::ptr::write(
                        (&mut buf.storage as *mut libc::sockaddr_storage)
                            .cast::<libc::sockaddr_in6>(),
                        sin6,
                    )
                };
                buf.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        buf
    }

    /// The Rust form of what the storage holds, if it is an IPv4 or IPv6 address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let base = (&self.storage as *const libc::sockaddr_storage).cast::<u8>();
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if self.len as usize >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, the length covers it,
                // and sockaddr_storage is aligned for it.
                let sin = unsafe { &*base.cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*base.cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// The message header and iovecs of a gathered send ([`Op::SendBufs`] on io_uring), which the
/// kernel reads while the operation is in flight: boxed by the table, so it never moves.
#[cfg(unix)]
pub(crate) struct MsgBuf {
    pub hdr: libc::msghdr,
    pub iov: Vec<libc::iovec>,
}

#[cfg(unix)]
impl Default for MsgBuf {
    fn default() -> MsgBuf {
        MsgBuf {
            // SAFETY: msghdr is plain old data for which all-zero bytes (null pointers, zero
            // lengths) are valid.
            hdr: unsafe { mem::zeroed() },
            iov: Vec::new(),
        }
    }
}

#[cfg(unix)]
impl std::fmt::Debug for MsgBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MsgBuf({} iovecs)", self.iov.len())
    }
}

#[cfg(unix)]
impl MsgBuf {
    /// Points the header at the iovecs of `bufs` (see [`gather`]); returns the header.
    pub fn fill(&mut self, pool: &BufPool, bufs: &[PoolBuf], at: usize) -> *const libc::msghdr {
        self.iov.clear();
        gather(pool, bufs, at, |iov| self.iov.push(iov));
        // SAFETY: msghdr is plain old data; zeroing resets the name and control fields.
        self.hdr = unsafe { mem::zeroed() };
        self.hdr.msg_iov = self.iov.as_mut_ptr();
        self.hdr.msg_iovlen = self.iov.len() as _;
        &self.hdr
    }
}

/// The iovecs of a gathered send, in order: `bufs[0][at..]`, then every later buffer whole,
/// at most [`SEND_BUFS_MAX`](crate::op::SEND_BUFS_MAX) of them; empty ranges are skipped.
#[cfg(unix)]
pub(crate) fn gather(
    pool: &BufPool,
    bufs: &[PoolBuf],
    at: usize,
    mut push: impl FnMut(libc::iovec),
) {
    for (k, buf) in bufs.iter().take(crate::op::SEND_BUFS_MAX).enumerate() {
        let skip = if k == 0 { at.min(buf.len()) } else { 0 };
        let bytes = &pool.bytes(buf)[skip..];
        if !bytes.is_empty() {
            push(libc::iovec {
                iov_base: bytes.as_ptr().cast_mut().cast(),
                iov_len: bytes.len(),
            });
        }
    }
}

/// `Err` for a negative kernel result, the value otherwise.
pub(crate) fn cvt(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

/// One completion as a driver reports it, in io_uring's convention whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawCompletion {
    /// The operation's [`Token`] ([`Token::raw`]), or a reserved value (see
    /// [`token`](crate::token#reserved-values)).
    pub user_data: u64,
    /// Bytes, a new fd or 0 when non-negative; `-errno` when negative.
    pub result: i32,
    /// [`CQE_F_BUFFER`] (with the pool buffer's id in the top 16 bits, see [`buffer_flags`])
    /// and [`CQE_F_MORE`].
    pub flags: u32,
}

impl RawCompletion {
    /// A completion of the operation `token`.
    pub const fn new(token: Token, result: i32, flags: u32) -> RawCompletion {
        RawCompletion {
            user_data: token.raw(),
            result,
            flags,
        }
    }
}

/// A completion's flags: a buffer of the pool was used (its id in the top 16 bits).
pub(crate) const CQE_F_BUFFER: u32 = 1;
/// A completion's flags: the multishot operation is still armed.
pub(crate) const CQE_F_MORE: u32 = 2;
const CQE_BUFFER_SHIFT: u32 = 16;

/// The flags of a completion that used pool buffer `id`, `more` if still armed.
pub(crate) fn buffer_flags(id: u16, more: bool) -> u32 {
    (u32::from(id) << CQE_BUFFER_SHIFT) | CQE_F_BUFFER | if more { CQE_F_MORE } else { 0 }
}

/// The pool buffer a completion carries: the kernel's (or the epoll driver's) flag, else the
/// one the driver took at submission.
fn carried_buffer(flags: u32, taken: Option<u16>) -> Option<(u16, bool)> {
    if flags & CQE_F_BUFFER != 0 {
        Some(((flags >> CQE_BUFFER_SHIFT) as u16, true))
    } else {
        taken.map(|id| (id, false))
    }
}

/// The outcome of a pooled receive: the buffer goes to the caller only with bytes in it;
/// otherwise it returns to the pool at once.
fn received_buf(
    pool: Option<&mut BufPool>,
    carried: Option<(u16, bool)>,
    res: i32,
    more: bool,
) -> Outcome {
    let result = cvt(res);
    let buf = match (pool, carried) {
        (Some(pool), Some((id, flagged))) => {
            // Counted out when the kernel selected it (flagged on a ring); the driver counted
            // the buffers it took itself.
            let from_ring = flagged && pool.has_ring();
            let buf = pool.hand_out(id, usize::try_from(res).unwrap_or(0), from_ring);
            if res > 0 {
                Some(buf)
            } else {
                pool.give_back(buf);
                None
            }
        }
        _ => None,
    };
    Outcome::ReceivedBuf { buf, result, more }
}

/// The peer address of a connected socket (`getpeername`), for multishot accepts, which do
/// not report it.
#[cfg(unix)]
fn peer_of(fd: &OwnedFd) -> Option<std::net::SocketAddr> {
    let mut addr = SockAddrBuf::empty();
    // SAFETY: getpeername writes at most `addr.len` bytes into the live local storage.
    let ret = unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len,
        )
    };
    if ret == 0 {
        addr.socket_addr()
    } else {
        None
    }
}

/// Takes ownership of the descriptor (on Windows, the socket) an accept's result names.
///
/// # Safety
///
/// `fd` must be a fresh descriptor (socket) from an accept, owned by nobody else.
#[cfg(unix)]
unsafe fn adopt(fd: usize) -> OwnedFd {
    // SAFETY: as the caller promises.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Takes ownership of the descriptor (on Windows, the socket) an accept's result names: the
/// IOCP driver reports an accepted `SOCKET` in the result (kernel handles keep to 32 bits, so
/// it fits; the driver checks).
///
/// # Safety
///
/// `fd` must be a fresh descriptor (socket) from an accept, owned by nobody else.
#[cfg(windows)]
unsafe fn adopt(fd: usize) -> OwnedFd {
    use std::os::windows::io::{FromRawSocket, RawSocket};
    // SAFETY: as the caller promises.
    unsafe { OwnedFd::from_raw_socket(fd as RawSocket) }
}

/// The peer address of a connected socket (`getpeername`), for multishot accepts.
#[cfg(windows)]
fn peer_of(fd: &OwnedFd) -> Option<std::net::SocketAddr> {
    socket2::SockRef::from(fd).peer_addr().ok()?.as_socket()
}

/// Turns a result of a multishot operation that stays armed (`IORING_CQE_F_MORE`) into what
/// the caller receives; the operation stays in the table.
///
/// # Safety
///
/// As for [`complete`]: `res` is the kernel's result for this operation (for an accept, a new
/// fd nobody else owns).
pub(crate) unsafe fn complete_more(
    kind: OpKind,
    res: i32,
    flags: u32,
    pool: Option<&mut BufPool>,
) -> Outcome {
    match kind {
        OpKind::AcceptMulti => Outcome::AcceptedMulti {
            result: cvt(res).map(|fd| {
                // SAFETY: the caller promises `res` is a fresh fd from accept, owned by nobody
                // else.
                let fd = unsafe { adopt(fd) };
                let peer = peer_of(&fd);
                Accepted { fd, peer }
            }),
            more: true,
        },
        _ => received_buf(pool, carried_buffer(flags, None), res, true),
    }
}

/// Turns a finished operation and its raw result into what the caller receives.
///
/// # Safety
///
/// `res` must be the kernel's result for exactly this operation: for an accept, a new fd that
/// nothing else owns; for a receive, the number of bytes written into the buffer's spare
/// capacity (or into the pool buffer `flags` or the operation names).
pub(crate) unsafe fn complete(
    inflight: InFlight,
    res: i32,
    flags: u32,
    pool: Option<&mut BufPool>,
) -> Outcome {
    if inflight.kind == OpKind::Close {
        return Outcome::Closed(cvt(res).map(drop));
    }
    match inflight.op {
        Op::Accept { .. } => Outcome::Accepted(cvt(res).map(|fd| {
            // SAFETY: the caller promises `res` is a fresh fd from accept, owned by nobody else.
            let fd = unsafe { adopt(fd) };
            let peer = inflight.addr.and_then(|a| a.socket_addr());
            Accepted { fd, peer }
        })),
        Op::Recv { mut buf, .. } => {
            let result = cvt(res);
            if let Ok(n) = result {
                let new_len = buf.len() + n;
                assert!(
                    new_len <= buf.capacity(),
                    "kernel reported more than the buffer"
                );
                // SAFETY: the caller promises the kernel initialised `n` bytes after the old
                // length, and the assertion keeps the new length within the allocation.
                unsafe { buf.set_len(new_len) };
            }
            Outcome::Received { buf, result }
        }
        Op::Send { buf, at, .. } => Outcome::Sent {
            buf,
            at,
            result: cvt(res),
        },
        Op::Connect { .. } => Outcome::Connected(cvt(res).map(drop)),
        Op::Shutdown { .. } => Outcome::ShutDown(cvt(res).map(drop)),
        Op::Close { .. } => Outcome::Closed(cvt(res).map(drop)),
        Op::Nop => Outcome::Nop,
        Op::AcceptMulti { .. } => Outcome::AcceptedMulti {
            result: cvt(res).map(|fd| {
                // SAFETY: the caller promises `res` is a fresh fd from accept, owned by nobody
                // else.
                let fd = unsafe { adopt(fd) };
                let peer = peer_of(&fd);
                Accepted { fd, peer }
            }),
            more: false,
        },
        Op::RecvMulti { .. } | Op::RecvBuf { .. } => {
            received_buf(pool, carried_buffer(flags, inflight.pooled), res, false)
        }
        Op::SendBuf { buf, at, .. } => Outcome::SentBuf {
            buf,
            at,
            result: cvt(res),
        },
        Op::SendBufs { bufs, at, .. } => Outcome::SentBufs {
            bufs,
            at,
            result: cvt(res),
        },
    }
}

/// Gives back the pool buffer a stale completion carries, so that it is not lost.
fn reclaim_buffer(flags: u32, pool: Option<&mut BufPool>) {
    if let (Some(pool), Some((id, true))) = (pool, carried_buffer(flags, None)) {
        let from_ring = pool.has_ring();
        let buf: PoolBuf = pool.hand_out(id, 0, from_ring);
        pool.give_back(buf);
    }
}

/// Where [`deliver`] takes operations from and puts completions.
pub(crate) struct Delivery<'a, D> {
    /// The operations in flight.
    pub table: &'a mut OpTable,
    /// The driver, which takes back what it lent a finished operation.
    pub driver: &'a mut D,
    /// The values posted to the port.
    pub posted: &'a Mutex<Vec<u64>>,
    /// The caller's completions.
    pub out: &'a mut Vec<Completion>,
}

/// Turns raw completions into [`Completion`]s: operations come out of the table with their
/// resources, a wake-up drains the posted values, a cancellation's own completion is dropped.
/// A bundle receive (one completion for several pool buffers) becomes one completion per
/// buffer, so callers see the same chunks whichever way the kernel filled them.
/// Returns how many raw completions were stale (unknown token, freed slot, wrong kind).
pub(crate) fn deliver<D: Driver>(
    raw: &[RawCompletion],
    to: &mut Delivery<'_, D>,
    mut pool: Option<&mut BufPool>,
) -> u64 {
    let mut stale = 0;
    for c in raw {
        // Where every buffer of a bundle lies is read before any of them can be given back.
        let bundle = match (pool.as_deref(), carried_buffer(c.flags, None)) {
            (Some(p), Some((first, _))) if c.result > 0 => {
                Some(p.bundle(first, c.result as usize)).filter(|b| b.parts > 1)
            }
            _ => None,
        };
        let Some(bundle) = bundle else {
            stale += to.one(*c, pool.as_deref_mut());
            continue;
        };
        let more = c.flags & CQE_F_MORE != 0;
        let parts = bundle.parts;
        for k in 0..parts {
            let Some((id, len)) = pool.as_deref().map(|p| p.bundle_part(&bundle, k)) else {
                break;
            };
            let part = RawCompletion {
                user_data: c.user_data,
                result: i32::try_from(len).unwrap_or(i32::MAX),
                flags: buffer_flags(id, more || k + 1 < parts),
            };
            stale += to.one(part, pool.as_deref_mut());
        }
    }
    stale
}

impl<D: Driver> Delivery<'_, D> {
    /// [`deliver`] for one raw completion (one buffer at most); returns 1 when it was stale.
    fn one(&mut self, c: RawCompletion, pool: Option<&mut BufPool>) -> u64 {
        let RawCompletion {
            user_data,
            result: res,
            flags,
        } = c;
        let Some(token) = Token::from_raw(user_data) else {
            reclaim_buffer(flags, pool);
            return 1;
        };
        match token.kind() {
            OpKind::Wake => {
                let mut queue = self.posted.lock().unwrap_or_else(|p| p.into_inner());
                self.out.extend(queue.drain(..).map(|key| Completion {
                    key,
                    outcome: Outcome::Posted,
                }));
            }
            OpKind::Cancel => {}
            kind if kind.is_multishot() && flags & CQE_F_MORE != 0 => {
                let Some(inflight) = self.table.get_mut(token) else {
                    reclaim_buffer(flags, pool);
                    return 1;
                };
                let key = inflight.key;
                // SAFETY: `res` is the kernel's result for the operation `token` names (the
                // table confirmed slot, generation and kind), which stays armed.
                let outcome = unsafe { complete_more(kind, res, flags, pool) };
                self.out.push(Completion { key, outcome });
            }
            _ => {
                let Some(mut inflight) = self.table.remove(token) else {
                    reclaim_buffer(flags, pool);
                    return 1;
                };
                self.driver.reclaim(&mut inflight);
                let key = inflight.key;
                // SAFETY: `res` is the kernel's result for the operation `token` names, and the
                // table has just confirmed (slot, generation and kind) that it is this one.
                let outcome = unsafe { complete(inflight, res, flags, pool) };
                self.out.push(Completion { key, outcome });
            }
        }
        0
    }
}

/// What wakes a port from another thread: an eventfd that the driver watches (io_uring keeps a
/// read armed on it, epoll has it in its set). [`Poster::post`](crate::Poster::post) queues a
/// value, then calls [`wake`](Waker::wake); the driver then reports a completion named
/// [`WAKE`](crate::token::WAKE).
#[cfg(unix)]
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
}

#[cfg(unix)]
impl Waker {
    /// A new eventfd with a zero count, non-blocking or not (io_uring's read on it must block
    /// until it is written; epoll's read after readiness must not).
    pub fn new(nonblocking: bool) -> io::Result<Waker> {
        let mut flags = libc::EFD_CLOEXEC;
        if nonblocking {
            flags |= libc::EFD_NONBLOCK;
        }
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd })
    }

    /// Adds one to the eventfd's count, waking the port's driver.
    pub fn wake(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live local to an fd we hold open.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if n == 8 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The eventfd, for the driver to watch.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// Takes a Close's descriptor out of its operation (which becomes [`Op::Nop`], its kind staying
/// [`OpKind::Close`]): the last handle, which the driver must close (the close's result is the
/// operation's), or `None` when other handles still hold the descriptor (the handle is dropped,
/// the last holder closes it, and the operation completes at once with 0).
pub(crate) fn take_close_fd(op: &mut Op) -> Option<OwnedFd> {
    match mem::replace(op, Op::Nop) {
        Op::Close { fd } => std::rc::Rc::try_unwrap(fd).ok(),
        other => {
            *op = other;
            None
        }
    }
}
