//! One attempt at an operation, made when it is pushed or when its fd becomes ready: what the
//! kernel does for each operation on io_uring, done here with one non-blocking system call
//! (see [`sys`](super::sys)). Receives into the buffer pool take their buffers here, as a
//! provided-buffer ring would, and report them in the completion's flags.

use std::os::fd::AsRawFd;

use crate::op::{Op, DGRAM_BATCH};
use crate::sys::pool::BufPool;
use crate::sys::sockaddr::SockAddrBuf;
use crate::sys::{buffer_flags, RawCompletion, CQE_F_MORE};
use crate::table::{InFlight, Work};

use super::EpollOp;
use crate::token::Token;

use super::sys::{self, Attempt};

/// What one attempt at an operation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
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

/// The most pool buffers one receive of the epoll backend fills (`recvmsg` with an iovec
/// each), as the io_uring backend's bundles do.
const RECV_BUFS_MAX: usize = 64;

/// A receive into buffers taken from `pool` (one `recvmsg` over as many as `limit` needs, one
/// buffer for a single receive): every chunk but the last is pushed to `out` as a completion
/// of `token` that stays armed; the last is the result, with its buffer's flags. Buffers left
/// empty go back to the pool. An empty pool is `ENOBUFS`, as for a ring that ran dry.
fn recv_pooled(
    fd: std::os::fd::RawFd,
    pool: Option<&mut BufPool>,
    more: bool,
    limit: &mut usize,
    token: Token,
    out: &mut Vec<RawCompletion>,
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
    // Buffers `ids[..taken]` were just taken out of the pool, so nothing else reads or writes
    // them while the receive fills them.
    let n = match sys::try_recv_iov(fd, &mut iov[..taken]) {
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
        out.push(RawCompletion::new(
            token,
            size as i32,
            buffer_flags(id, true),
        ));
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

/// A batch of datagrams into buffers taken from `pool` (one `recvmmsg` of up to
/// [`DGRAM_BATCH`]): every datagram but the last is pushed to `out` as a completion of `token`
/// that stays armed; the last is the result. Buffers left empty go back to the pool. An empty
/// pool is `ENOBUFS`, as for a ring that ran dry.
fn recv_dgrams(
    fd: std::os::fd::RawFd,
    pool: Option<&mut BufPool>,
    token: Token,
    out: &mut Vec<RawCompletion>,
) -> Progress {
    let Some(pool) = pool else {
        return Progress::Done(-libc::EINVAL, 0);
    };
    let mut ids = [0u16; DGRAM_BATCH];
    let mut taken = 0;
    while taken < DGRAM_BATCH {
        let Some(id) = pool.take() else { break };
        ids[taken] = id;
        taken += 1;
    }
    if taken == 0 {
        return Progress::Done(-libc::ENOBUFS, 0);
    }
    let mut lens = [0i32; DGRAM_BATCH];
    // Buffers `ids[..taken]` were just taken out of the pool: nothing else touches them.
    let got = match sys::try_recv_mmsg(fd, pool, &ids[..taken], &mut lens) {
        Some(n) if n > 0 => n as usize,
        other => {
            for &id in ids[..taken].iter().rev() {
                pool.untake(id);
            }
            return other.into();
        }
    };
    for &id in ids[got..taken].iter().rev() {
        pool.untake(id);
    }
    for i in 0..got - 1 {
        out.push(RawCompletion::new(
            token,
            lens[i],
            buffer_flags(ids[i], true),
        ));
    }
    Progress::More(lens[got - 1], buffer_flags(ids[got - 1], true))
}

/// One attempt at a queued operation, now that its fd may be ready.
/// Chunks of a receive that filled several buffers go to `out` first (see [`recv_pooled`]).
pub(super) fn attempt(
    token: Token,
    inflight: &mut InFlight<EpollOp>,
    pool: Option<&mut BufPool>,
    out: &mut Vec<RawCompletion>,
) -> Progress {
    let Work::Op(op) = &mut inflight.work else {
        // A close is never queued: it completes when pushed.
        return Progress::Done(0, 0);
    };
    match op {
        Op::Recv { fd, buf, .. } => sys::try_recv(fd.as_raw_fd(), buf).into(),
        Op::Send { fd, buf, at } => sys::try_send(fd.as_raw_fd(), buf, *at).into(),
        Op::Accept { listener } => {
            let addr = inflight
                .state
                .peer
                .as_mut()
                .expect("accept carries address storage");
            sys::try_accept(listener.as_raw_fd(), addr).into()
        }
        Op::Connect { fd, .. } => sys::finish_connect(fd.as_raw_fd()).into(),
        Op::AcceptMulti { listener } => {
            let mut addr = SockAddrBuf::empty();
            match sys::try_accept(listener.as_raw_fd(), &mut addr) {
                None => Progress::Blocked,
                Some(fd) if fd >= 0 => Progress::More(fd, CQE_F_MORE),
                Some(e) => Progress::Done(e, 0),
            }
        }
        Op::RecvMulti { fd, limit } => recv_pooled(fd.as_raw_fd(), pool, true, limit, token, out),
        Op::RecvBuf { fd, .. } => recv_pooled(fd.as_raw_fd(), pool, false, &mut 0, token, out),
        Op::SendBuf { fd, buf, at } => match pool {
            Some(pool) => sys::try_send(fd.as_raw_fd(), pool.bytes(buf), *at).into(),
            None => Progress::Done(-libc::EINVAL, 0),
        },
        Op::SendBufs { fd, bufs, at } => match pool {
            Some(pool) => sys::try_send_bufs(fd.as_raw_fd(), pool, bufs, *at).into(),
            None => Progress::Done(-libc::EINVAL, 0),
        },
        Op::RecvFrom { fd, buf } => {
            let mut from = SockAddrBuf::empty();
            let mut segment = 0;
            let attempt = sys::try_recv_from(fd.as_raw_fd(), buf, &mut from, &mut segment);
            if attempt.is_some_and(|res| res >= 0) {
                inflight.state.from = from.socket_addr();
                inflight.state.segment = segment;
            }
            attempt.into()
        }
        Op::SendTo { fd, buf, to } => sys::try_send_to(fd.as_raw_fd(), buf, to, 0).into(),
        Op::RecvFromMulti { fd } => recv_dgrams(fd.as_raw_fd(), pool, token, out),
        Op::SendBufTo {
            fd,
            buf,
            to,
            segment,
        } => match pool {
            Some(pool) => sys::try_send_to(fd.as_raw_fd(), pool.bytes(buf), to, *segment).into(),
            None => Progress::Done(-libc::EINVAL, 0),
        },
        // Never queued: they complete when pushed.
        Op::Shutdown { .. } | Op::Close { .. } | Op::Nop => Progress::Done(0, 0),
    }
}
