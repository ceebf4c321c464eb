//! A raw result into what the caller receives: an [`Outcome`] with the operation's resources
//! (adopting an accepted socket, growing a buffer by the bytes the kernel wrote, handing out
//! the pool buffer a receive filled).

use std::io;
use std::sync::Arc;

use crate::op::{Accepted, Op, Outcome, OwnedFd, PoolBuf, Socket, DGRAM_HEADROOM};
use crate::socket::DirectTable;
use crate::sys::pool::BufPool;
use crate::sys::{OpState, CQE_BUFFER_SHIFT, CQE_F_BUFFER};
use crate::table::{InFlight, Work};
use crate::token::OpKind;

/// `Err` for a negative kernel result, the value otherwise.
pub(crate) fn cvt(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

/// The pool buffer a completion carries: the kernel's (or the emulating driver's) flag, else
/// the one the driver took at submission.
pub(crate) fn carried_buffer(flags: u32, taken: Option<u16>) -> Option<(u16, bool)> {
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

/// The outcome of a datagram receive into the pool: the buffer goes to the caller with the
/// datagram (even an empty one) after the account the receive wrote ([`crate::sys::dgram`]).
fn received_from_buf(
    pool: Option<&mut BufPool>,
    carried: Option<(u16, bool)>,
    res: i32,
    more: bool,
) -> Outcome {
    let (Some(pool), Some((id, flagged))) = (pool, carried) else {
        let result = cvt(res).and_then(|_| Err(io::Error::from(io::ErrorKind::InvalidData)));
        return Outcome::ReceivedFromBuf {
            buf: None,
            result,
            truncated: false,
            from: None,
            segment: 0,
            more,
        };
    };
    let from_ring = flagged && pool.has_ring();
    let whole = pool.hand_out(id, usize::try_from(res).unwrap_or(0), from_ring);
    #[cfg(unix)]
    let account = crate::sys::dgram::read_account(pool.bytes(&whole))
        .filter(|_| res >= 0)
        .map(|a| (a.from, a.held, a.truncated, a.segment));
    // No batched datagram receive on Windows: nothing to read.
    #[cfg(windows)]
    let account: Option<(Option<std::net::SocketAddr>, usize, bool, u16)> = None;
    let Some((from, held, truncated, segment)) = account else {
        pool.give_back(whole);
        let result = cvt(res).and_then(|_| Err(io::Error::from(io::ErrorKind::InvalidData)));
        return Outcome::ReceivedFromBuf {
            buf: None,
            result,
            truncated: false,
            from: None,
            segment: 0,
            more,
        };
    };
    Outcome::ReceivedFromBuf {
        buf: Some(whole.window(DGRAM_HEADROOM as u32, held as u32)),
        result: Ok(held),
        truncated,
        from,
        segment,
        more,
    }
}

/// Gives back the pool buffer a stale completion carries, so that it is not lost.
pub(crate) fn reclaim_buffer(flags: u32, pool: Option<&mut BufPool>) {
    if let (Some(pool), Some((id, true))) = (pool, carried_buffer(flags, None)) {
        let from_ring = pool.has_ring();
        let buf: PoolBuf = pool.hand_out(id, 0, from_ring);
        pool.give_back(buf);
    }
}

/// Takes ownership of the descriptor an accept's result names.
///
/// # Safety
///
/// `fd` must be a fresh descriptor from an accept, owned by nobody else.
#[cfg(unix)]
unsafe fn adopt(fd: usize) -> OwnedFd {
    use std::os::fd::{FromRawFd, RawFd};
    // SAFETY: as the caller promises.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// Takes ownership of the socket an accept's result names: the IOCP driver reports an accepted
/// `SOCKET` in the result (kernel handles keep to 32 bits, so it fits; the driver checks).
///
/// # Safety
///
/// `fd` must be a fresh socket from an accept, owned by nobody else.
#[cfg(windows)]
unsafe fn adopt(fd: usize) -> OwnedFd {
    use std::os::windows::io::{FromRawSocket, RawSocket};
    // SAFETY: as the caller promises.
    unsafe { OwnedFd::from_raw_socket(fd as RawSocket) }
}

// The peer address of a connected socket (`getpeername`), for multishot accepts, which do not
// report it.
#[cfg(unix)]
use crate::sys::sockaddr::peer_of;

/// The peer address of a connected socket (`getpeername`), for multishot accepts.
#[cfg(windows)]
fn peer_of(fd: &OwnedFd) -> Option<std::net::SocketAddr> {
    socket2::SockRef::from(fd).peer_addr().ok()?.as_socket()
}

/// A connection from a multishot accept's result; its peer from `getpeername` (none for a
/// direct descriptor, which has no descriptor to ask).
///
/// # Safety
///
/// `fd` must be a fresh descriptor from an accept, owned by nobody else, or with `direct`, a
/// slot of that table the accept just filled.
unsafe fn accepted_multi(fd: usize, direct: Option<&Arc<DirectTable>>) -> Accepted {
    if let Some(table) = direct {
        return Accepted {
            fd: Socket::direct(fd as u32, Arc::clone(table)),
            peer: None,
        };
    }
    // SAFETY: as the caller promises.
    let fd = unsafe { adopt(fd) };
    let peer = peer_of(&fd);
    Accepted {
        fd: Socket::from(fd),
        peer,
    }
}

/// Turns a result of a multishot operation that stays armed (`IORING_CQE_F_MORE`) into what
/// the caller receives; the operation stays in the table.
///
/// # Safety
///
/// As for [`complete`]: `res` is the kernel's result for this operation (for an accept, a new
/// fd nobody else owns, or with `direct`, the slot of that table it filled).
pub(crate) unsafe fn complete_more(
    kind: OpKind,
    res: i32,
    flags: u32,
    pool: Option<&mut BufPool>,
    direct: Option<&Arc<DirectTable>>,
) -> Outcome {
    match kind {
        OpKind::AcceptMulti => Outcome::AcceptedMulti {
            // SAFETY: the caller promises `res` is a fresh fd from accept, owned by nobody else
            // (or the slot of `direct` it filled).
            result: cvt(res).map(|fd| unsafe { accepted_multi(fd, direct) }),
            more: true,
        },
        OpKind::RecvFromMulti => received_from_buf(pool, carried_buffer(flags, None), res, true),
        _ => received_buf(pool, carried_buffer(flags, None), res, true),
    }
}

/// Turns a finished operation and its raw result into what the caller receives, and hands back
/// the driver's state for the operation (for [`Driver::recycle`](crate::sys::Driver::recycle)).
///
/// # Safety
///
/// `res` must be the kernel's result for exactly this operation: for an accept, a new fd that
/// nothing else owns; for a receive, the number of bytes written into the buffer's spare
/// capacity (or into the pool buffer `flags` or the operation names); for a datagram receive,
/// the datagram's length, of which what fitted in the spare capacity was written there. With
/// `direct` (the port's accepts are direct), an accept's result is the slot of that table it
/// filled.
pub(crate) unsafe fn complete<S: OpState>(
    inflight: InFlight<S>,
    res: i32,
    flags: u32,
    pool: Option<&mut BufPool>,
    direct: Option<&Arc<DirectTable>>,
) -> (Outcome, S) {
    let InFlight {
        work,
        state,
        pooled,
        ..
    } = inflight;
    let op = match work {
        Work::Close(_) => return (Outcome::Closed(cvt(res).map(drop)), state),
        Work::Op(op) => op,
    };
    let outcome = match op {
        Op::Accept { .. } => Outcome::Accepted(cvt(res).map(|fd| {
            let fd = match direct {
                Some(table) => Socket::direct(fd as u32, Arc::clone(table)),
                // SAFETY: the caller promises `res` is a fresh fd from accept, owned by nobody
                // else.
                None => Socket::from(unsafe { adopt(fd) }),
            };
            let peer = state.accepted_peer();
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
            // SAFETY: the caller promises `res` is a fresh fd from accept, owned by nobody else
            // (or the slot of `direct` it filled).
            result: cvt(res).map(|fd| unsafe { accepted_multi(fd, direct) }),
            more: false,
        },
        Op::RecvMulti { .. } | Op::RecvBuf { .. } => {
            received_buf(pool, carried_buffer(flags, pooled), res, false)
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
        Op::RecvFrom { mut buf, .. } => {
            // The result is the datagram's length (`MSG_TRUNC`), which may exceed the room.
            let room = buf.capacity() - buf.len();
            let result = cvt(res).map(|len| len.min(room));
            let truncated = matches!(cvt(res), Ok(len) if len > room);
            if let Ok(n) = result {
                // SAFETY: the caller promises the kernel initialised the datagram's first bytes
                // after the old length, as many as fitted in the spare capacity, which `n` is.
                unsafe { buf.set_len(buf.len() + n) };
            }
            let from = result.is_ok().then(|| state.received_from()).flatten();
            let segment = match result {
                Ok(n) if !truncated => {
                    let segment = state.received_segment();
                    if usize::from(segment) < n {
                        segment
                    } else {
                        0
                    }
                }
                _ => 0,
            };
            Outcome::ReceivedFrom {
                buf,
                result,
                truncated,
                from,
                segment,
            }
        }
        Op::SendTo { buf, .. } => Outcome::SentTo {
            buf,
            result: cvt(res),
        },
        Op::RecvFromMulti { .. } => {
            received_from_buf(pool, carried_buffer(flags, pooled), res, false)
        }
        Op::SendBufTo { buf, .. } => Outcome::SentBufTo {
            buf,
            result: cvt(res),
        },
    };
    (outcome, state)
}
