//! Operations (what a caller submits) and completions (what comes back).
//!
//! An operation *owns* everything the kernel may touch while it is in flight: its buffer, and a
//! shared handle on its file descriptor ([`SharedFd`]), so the descriptor number cannot be closed
//! and reused underneath it. Both come back with the completion: the buffer inside the
//! [`Outcome`], the fd handle is released when the completion is reaped. This is the Linux form of
//! IOCP's `OVERLAPPED` rule ("do not touch the buffer until the completion arrives"), enforced by
//! ownership instead of by convention.

use std::io;
use std::net::SocketAddr;
/// The owned socket handle operations take and accepted connections come as: a file descriptor on
/// Unix, a `SOCKET` on Windows (both convert from `socket2::Socket` and the std sockets).
#[cfg(unix)]
pub use std::os::fd::OwnedFd;
/// The owned socket handle operations take and accepted connections come as: a file descriptor on
/// Unix, a `SOCKET` on Windows (both convert from `socket2::Socket` and the std sockets).
#[cfg(windows)]
pub use std::os::windows::io::OwnedSocket as OwnedFd;
use std::rc::Rc;

use crate::token::OpKind;

pub use crate::socket::Socket;

/// A socket shared between its owner and the operations in flight on it: a descriptor of the
/// process, or a direct descriptor of the port's ring ([`Socket`]).
///
/// The socket is closed when the last handle is dropped, which cannot happen while an
/// operation still holds one: the port keeps each operation's handle until its completion has
/// been reaped.
pub type SharedFd = Rc<Socket>;

/// One operation to submit to a [`Port`](crate::Port).
#[derive(Debug)]
pub enum Op {
    /// Accept one connection (`accept4` with `SOCK_CLOEXEC`). Completes with
    /// [`Outcome::Accepted`].
    Accept {
        /// The listening socket.
        listener: SharedFd,
    },
    /// Receive into the spare capacity of `buf` (`buf[len..capacity]`). On success the buffer
    /// comes back with its length advanced by the bytes received; `Ok(0)` is end of stream.
    /// A buffer without spare capacity is a caller error (`EINVAL`).
    Recv {
        /// The connected socket.
        fd: SharedFd,
        /// The buffer; bytes land after its current length.
        buf: Vec<u8>,
        /// Do not wait: complete with `WouldBlock` when no byte is ready (`MSG_DONTWAIT`).
        nowait: bool,
    },
    /// Send `buf[at..]` (`send` with `MSG_NOSIGNAL`). Completes with the number of bytes sent,
    /// which may be fewer than asked: resubmit the rest.
    Send {
        /// The connected socket.
        fd: SharedFd,
        /// The buffer; the bytes sent are `buf[at..at + n]`.
        buf: Vec<u8>,
        /// Where in `buf` to start.
        at: usize,
    },
    /// Connect a (non-connected) socket to `addr`.
    Connect {
        /// The socket, created by the caller (for example with `socket2`).
        fd: SharedFd,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// `shutdown(2)` one or both directions.
    Shutdown {
        /// The socket.
        fd: SharedFd,
        /// Which directions.
        how: std::net::Shutdown,
    },
    /// Close the descriptor once no other operation holds it. If other handles are still alive
    /// when the operation is submitted, this handle is simply dropped (the last holder closes
    /// the descriptor) and the operation completes at once.
    Close {
        /// The descriptor.
        fd: SharedFd,
    },
    /// Complete at once with no effect.
    Nop,
    /// Accept connections until cancelled (io_uring's multishot accept): every connection
    /// completes with [`Outcome::AcceptedMulti`] and `more: true`; the last completion has
    /// `more: false` (an error, or a cancellation), after which the caller submits again to
    /// keep accepting. The peer address comes from `getpeername`; on a port with direct
    /// accepts there is none (use [`Op::Accept`], whose completion carries it).
    AcceptMulti {
        /// The listening socket.
        listener: SharedFd,
    },
    /// Receive until cancelled, each chunk into a buffer of the port's pool taken only when
    /// bytes arrive (io_uring's multishot receive with a provided-buffer ring). Every chunk
    /// completes with [`Outcome::ReceivedBuf`] and `more: true`; the last completion has
    /// `more: false`: end of stream (`Ok(0)`), an error, a cancellation, or `ENOBUFS` when the
    /// pool ran dry (submit again once buffers are given back; nothing is lost, the bytes wait
    /// in the socket), or a last chunk when the receive reached its `limit` or took the last
    /// free buffers of the pool. The port must have a pool ([`Port::provide_buffers`](crate::Port::provide_buffers)).
    ///
    /// Where the kernel allows (io_uring bundles, Linux 6.10+ with the limits of 6.16+; the
    /// epoll backend always), one receive fills several buffers at once (up to `limit`, or 64
    /// buffers); its chunks still come back one buffer per completion, in order.
    RecvMulti {
        /// The connected socket.
        fd: SharedFd,
        /// End (with `more: false`) once this many bytes have arrived; 0: no limit. A caller
        /// that bounds what it holds per connection passes its room, so that a peer with much
        /// to send cannot take more buffers than that in one burst. Kept by the epoll backend
        /// and by io_uring on Linux 6.16+ (`sqe->optlen`); on older kernels a multishot receive
        /// may take up to 32 buffers per wake-up before its owner can cancel it.
        limit: usize,
    },
    /// Receive once into a buffer of the port's pool; completes with [`Outcome::ReceivedBuf`]
    /// (`more: false`). `ENOBUFS` when the pool is empty.
    RecvBuf {
        /// The connected socket.
        fd: SharedFd,
        /// Do not wait: complete with `WouldBlock` when no byte is ready (`MSG_DONTWAIT`).
        nowait: bool,
    },
    /// Send `buf[at..]` from a buffer of the port's pool, the very memory a receive filled (no
    /// copy). Completes with [`Outcome::SentBuf`], which returns the buffer.
    SendBuf {
        /// The connected socket.
        fd: SharedFd,
        /// The pooled buffer.
        buf: PoolBuf,
        /// Where in the buffer to start.
        at: usize,
    },
    /// Send the bytes of several pooled buffers, in order, in one operation (`sendmsg` with one
    /// iovec per buffer): `bufs[0][at..]`, then every later buffer whole. Completes with
    /// [`Outcome::SentBufs`], which returns the buffers; fewer bytes than asked may be sent
    /// (resubmit the rest). An empty list is a caller error (`EINVAL`). At most
    /// [`SEND_BUFS_MAX`] buffers are sent by one operation; the rest count as not sent.
    SendBufs {
        /// The connected socket.
        fd: SharedFd,
        /// The pooled buffers, sent in this order. The vector itself is the caller's to reuse:
        /// it comes back in the completion.
        bufs: Vec<PoolBuf>,
        /// Where in the first buffer to start.
        at: usize,
    },
    /// Receive one datagram into the spare capacity of `buf` (`buf[len..capacity]`), with the
    /// address it came from (`recvmsg`). Completes with [`Outcome::ReceivedFrom`]. A datagram
    /// longer than the spare capacity is cut to it, and the completion says so
    /// ([`Outcome::ReceivedFrom`]'s `truncated`): the rest of it is gone. A buffer without spare
    /// capacity is a caller error (`EINVAL`).
    RecvFrom {
        /// The datagram socket (bound, not connected, or connected).
        fd: SharedFd,
        /// The buffer; the datagram lands after its current length.
        buf: Vec<u8>,
    },
    /// Send `buf` whole as one datagram to `to` (`sendmsg` with a destination). Completes with
    /// [`Outcome::SentTo`], which returns the buffer.
    SendTo {
        /// The datagram socket.
        fd: SharedFd,
        /// The datagram.
        buf: Vec<u8>,
        /// Where it goes.
        to: SocketAddr,
    },
    /// Receive datagrams until cancelled, each into a buffer of the port's pool (io_uring's
    /// multishot `recvmsg` with a provided-buffer ring; epoll's `recvmmsg`, up to
    /// [`DGRAM_BATCH`] datagrams per call). Every datagram completes with
    /// [`Outcome::ReceivedFromBuf`] and `more: true`, with its sender; the last completion has
    /// `more: false`: an error, a cancellation, `ENOBUFS` when the pool ran dry (submit again
    /// once buffers are given back; the datagrams wait in the socket), or a datagram still
    /// (io_uring ends a multishot receive at an empty datagram, as at the end of a stream:
    /// submit again). A datagram holds at most
    /// [`Port::datagram_room`](crate::Port::datagram_room) bytes of a pool buffer; a longer one
    /// is cut to it and reported truncated. Only where
    /// [`Port::datagram_batches`](crate::Port::datagram_batches) says so (elsewhere the submit
    /// is refused with [`io::ErrorKind::Unsupported`]: use [`Op::RecvFrom`]).
    RecvFromMulti {
        /// The datagram socket.
        fd: SharedFd,
    },
    /// Send the bytes of a pooled buffer as one datagram to `to` (`sendmsg`; on epoll the sends
    /// queued by one turn of the caller's loop go out in `sendmmsg` calls). Completes with
    /// [`Outcome::SentBufTo`], which returns the buffer. Where
    /// [`Port::datagram_batches`](crate::Port::datagram_batches) says so.
    SendBufTo {
        /// The datagram socket.
        fd: SharedFd,
        /// The datagram: a buffer [`Op::RecvFromMulti`] filled, sent as it is.
        buf: PoolBuf,
        /// Where it goes.
        to: SocketAddr,
        /// 0: the buffer is one datagram. Otherwise it is several datagrams of `segment` bytes
        /// each (the last may be shorter), as a coalesced receive brought them
        /// ([`Outcome::ReceivedFromBuf`]'s `segment`), sent in one call that the system splits
        /// at the same boundaries (`UDP_SEGMENT`); refused where
        /// [`Port::datagram_segments`](crate::Port::datagram_segments) says no.
        segment: u16,
    },
}

/// The most datagrams one system call of the epoll backend receives (`recvmmsg`) or sends
/// (`sendmmsg`).
pub const DGRAM_BATCH: usize = 32;

/// The bytes at the start of a pool buffer that a datagram receive into the pool keeps for
/// the system's account of it (io_uring's `io_uring_recvmsg_out`, the sender's address, an
/// IPv6 one at most, and room for one control message: the segment size of a coalesced
/// receive); the datagram follows. A pool for datagrams of up to `n` bytes has buffers of
/// `n + DGRAM_HEADROOM`.
pub const DGRAM_HEADROOM: usize = 16 + 28 + DGRAM_CONTROL_ROOM;

/// The room for control messages in a datagram receive's account: one `cmsghdr` and an `int`.
pub(crate) const DGRAM_CONTROL_ROOM: usize = 24;

/// The most datagrams one segmented send may carry (Linux's `UDP_MAX_SEGMENTS` before 6.9):
/// an [`Op::SendBufTo`] with a `segment`, or a send on a socket with a default segment size
/// ([`udp_segment`](crate::os::udp_segment)).
pub const DGRAM_SEGMENTS_MAX: usize = 64;

/// The most buffers one [`Op::SendBufs`] sends (the kernel's `UIO_MAXIOV` is 1024; a smaller
/// batch keeps one send's iovecs on the stack of the epoll backend).
pub const SEND_BUFS_MAX: usize = 64;

/// A buffer of a port's pool, handed out by a completion ([`Outcome::ReceivedBuf`]).
///
/// The handle is the only way to reach the buffer and is not `Clone`: read it with
/// [`Port::buf`](crate::Port::buf), send it with [`Op::SendBuf`], and give it back to the pool
/// with [`Port::give_back`](crate::Port::give_back) when done. A handle dropped instead stays
/// out of the pool for good. It names its pool: another port's pool refuses it.
#[derive(Debug, PartialEq, Eq)]
pub struct PoolBuf {
    /// The serial number of the pool it belongs to (0: none).
    pool: u32,
    id: u16,
    /// Where its bytes start in the buffer (after a datagram receive's headroom).
    off: u32,
    len: u32,
}

impl PoolBuf {
    /// A handle that names no buffer of any use (buffer 0, no bytes), to fill arrays with.
    #[cfg_attr(windows, allow(dead_code))]
    pub(crate) const EMPTY: PoolBuf = PoolBuf {
        pool: 0,
        id: 0,
        off: 0,
        len: 0,
    };

    /// Buffer `id` of pool `pool`, holding `len` bytes from its start.
    pub(crate) fn new(pool: u32, id: u16, len: u32) -> PoolBuf {
        PoolBuf {
            pool,
            id,
            off: 0,
            len,
        }
    }

    /// The same buffer, holding `len` bytes from `off` bytes in.
    pub(crate) fn window(self, off: u32, len: u32) -> PoolBuf {
        PoolBuf { off, len, ..self }
    }

    /// The serial number of its pool.
    pub(crate) fn pool(&self) -> u32 {
        self.pool
    }

    /// Where its bytes start in the pool's buffer.
    pub(crate) fn offset(&self) -> usize {
        self.off as usize
    }

    pub(crate) fn set_len(&mut self, len: u32) {
        self.len = len;
    }

    /// The buffer's number in its pool.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The bytes it holds.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether it holds no byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where its bytes start in its pool buffer (a datagram receive's after
    /// [`DGRAM_HEADROOM`]): with [`len`](PoolBuf::len), the window
    /// [`Port::set_window`](crate::Port::set_window) can give back later.
    pub fn start(&self) -> usize {
        self.off as usize
    }

    /// Narrows the handle to `len` of its bytes starting `skip` bytes in (at most what it
    /// holds): to send a part of what a receive filled. The whole buffer goes back to the pool
    /// all the same when the handle is given back.
    pub fn narrow(&mut self, skip: usize, len: usize) {
        let skip = skip.min(self.len as usize);
        let len = len.min(self.len as usize - skip);
        self.off += skip as u32;
        self.len = len as u32;
    }
}

impl Op {
    /// The socket this operation works on (an accept's listener), `None` for a no-op.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn socket(&self) -> Option<&SharedFd> {
        match self {
            Op::Accept { listener } | Op::AcceptMulti { listener } => Some(listener),
            Op::Recv { fd, .. }
            | Op::Send { fd, .. }
            | Op::Connect { fd, .. }
            | Op::Shutdown { fd, .. }
            | Op::Close { fd }
            | Op::RecvMulti { fd, .. }
            | Op::RecvBuf { fd, .. }
            | Op::SendBuf { fd, .. }
            | Op::SendBufs { fd, .. }
            | Op::RecvFrom { fd, .. }
            | Op::SendTo { fd, .. }
            | Op::RecvFromMulti { fd }
            | Op::SendBufTo { fd, .. } => Some(fd),
            Op::Nop => None,
        }
    }

    /// Whether this is a receive into an owned buffer that has no spare capacity (which the
    /// port refuses with `EINVAL`).
    pub(crate) fn receives_into_a_full_buffer(&self) -> bool {
        matches!(self, Op::Recv { buf, .. } | Op::RecvFrom { buf, .. } if buf.len() == buf.capacity())
    }

    /// The pool buffers this operation sends from.
    pub(crate) fn pool_bufs(&self) -> impl Iterator<Item = &PoolBuf> {
        let (one, many): (Option<&PoolBuf>, &[PoolBuf]) = match self {
            Op::SendBuf { buf, .. } | Op::SendBufTo { buf, .. } => (Some(buf), &[]),
            Op::SendBufs { bufs, .. } => (None, bufs),
            _ => (None, &[]),
        };
        one.into_iter().chain(many)
    }

    /// The kind of this operation.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Accept { .. } => OpKind::Accept,
            Op::Recv { .. } => OpKind::Recv,
            Op::Send { .. } => OpKind::Send,
            Op::Connect { .. } => OpKind::Connect,
            Op::Shutdown { .. } => OpKind::Shutdown,
            Op::Close { .. } => OpKind::Close,
            Op::Nop => OpKind::Nop,
            Op::AcceptMulti { .. } => OpKind::AcceptMulti,
            Op::RecvMulti { .. } => OpKind::RecvMulti,
            Op::RecvBuf { .. } => OpKind::RecvBuf,
            Op::SendBuf { .. } => OpKind::SendBuf,
            Op::SendBufs { .. } => OpKind::SendBufs,
            Op::RecvFrom { .. } => OpKind::RecvFrom,
            Op::SendTo { .. } => OpKind::SendTo,
            Op::RecvFromMulti { .. } => OpKind::RecvFromMulti,
            Op::SendBufTo { .. } => OpKind::SendBufTo,
        }
    }
}

/// A newly accepted connection.
#[derive(Debug)]
pub struct Accepted {
    /// The connected socket (close-on-exec, blocking mode untouched): a direct descriptor on a
    /// port with direct accepts ([`Port::accept_direct`](crate::Port::accept_direct)).
    pub fd: Socket,
    /// The peer's address, when the kernel reported one.
    pub peer: Option<SocketAddr>,
}

/// What became of one operation.
#[derive(Debug)]
pub enum Outcome {
    /// [`Op::Accept`] finished.
    Accepted(io::Result<Accepted>),
    /// [`Op::Recv`] finished; on `Ok(n)` the buffer's length has grown by `n`.
    Received {
        /// The buffer, returned to its owner.
        buf: Vec<u8>,
        /// Bytes received, `Ok(0)` at end of stream.
        result: io::Result<usize>,
    },
    /// [`Op::Send`] finished.
    Sent {
        /// The buffer, returned to its owner.
        buf: Vec<u8>,
        /// Where the send started.
        at: usize,
        /// Bytes sent from `at`.
        result: io::Result<usize>,
    },
    /// [`Op::Connect`] finished.
    Connected(io::Result<()>),
    /// [`Op::Shutdown`] finished.
    ShutDown(io::Result<()>),
    /// [`Op::Close`] finished.
    Closed(io::Result<()>),
    /// [`Op::Nop`] finished.
    Nop,
    /// [`Op::AcceptMulti`] produced a connection (or ended, when `more` is false).
    AcceptedMulti {
        /// The connection, or why the accept ended.
        result: io::Result<Accepted>,
        /// The accept is still armed; false on its last completion.
        more: bool,
    },
    /// [`Op::RecvMulti`] or [`Op::RecvBuf`] produced a chunk (or ended, when `more` is false).
    ReceivedBuf {
        /// The pooled buffer holding the bytes, when one was used: give it back with
        /// [`Port::give_back`](crate::Port::give_back) once done with it.
        buf: Option<PoolBuf>,
        /// Bytes received (`Ok(0)`: end of stream), or the error (`ENOBUFS`: the pool is empty).
        result: io::Result<usize>,
        /// The receive is still armed; false on its last completion.
        more: bool,
    },
    /// [`Op::SendBuf`] finished.
    SentBuf {
        /// The pooled buffer, returned to its owner.
        buf: PoolBuf,
        /// Where the send started.
        at: usize,
        /// Bytes sent from `at`.
        result: io::Result<usize>,
    },
    /// [`Op::SendBufs`] finished.
    SentBufs {
        /// The pooled buffers, in the order given, returned to their owner.
        bufs: Vec<PoolBuf>,
        /// Where the send started in the first buffer.
        at: usize,
        /// Bytes sent from `at` on, across the buffers.
        result: io::Result<usize>,
    },
    /// [`Op::RecvFrom`] finished.
    ReceivedFrom {
        /// The buffer, returned to its owner; on `Ok(n)` its length has grown by `n`.
        buf: Vec<u8>,
        /// Bytes of the datagram now in the buffer (a datagram may be empty: `Ok(0)`).
        result: io::Result<usize>,
        /// The datagram was longer than the buffer's spare capacity: the buffer holds its first
        /// `n` bytes, the rest is gone.
        truncated: bool,
        /// Where it came from, when the system said.
        from: Option<SocketAddr>,
        /// 0: the buffer holds one datagram. Otherwise it holds several datagrams of one sender
        /// that the system coalesced (Linux UDP GRO, asked for with
        /// [`udp_gro`](crate::os::udp_gro)), each `segment` bytes long but the last, which may
        /// be shorter.
        segment: u16,
    },
    /// [`Op::SendTo`] finished.
    SentTo {
        /// The buffer, returned to its owner.
        buf: Vec<u8>,
        /// Bytes sent: the whole datagram, or the error.
        result: io::Result<usize>,
    },
    /// [`Op::RecvFromMulti`] produced a datagram (or ended, when `more` is false).
    ReceivedFromBuf {
        /// The pooled buffer holding the datagram (even an empty one), when one was used: give
        /// it back with [`Port::give_back`](crate::Port::give_back), or send it
        /// ([`Op::SendBufTo`]).
        buf: Option<PoolBuf>,
        /// Bytes of the datagram in the buffer (`Ok(0)`: an empty datagram), or the error
        /// (`ENOBUFS`: the pool is empty).
        result: io::Result<usize>,
        /// The datagram was longer than [`Port::datagram_room`](crate::Port::datagram_room):
        /// the buffer holds its first bytes, the rest is gone.
        truncated: bool,
        /// Where it came from, when the system said.
        from: Option<SocketAddr>,
        /// 0: the buffer holds one datagram. Otherwise it holds several datagrams of one sender
        /// that the system coalesced (Linux UDP GRO, asked for with
        /// [`udp_gro`](crate::os::udp_gro)), each `segment` bytes long but the last, which may
        /// be shorter: echo them with [`Op::SendBufTo`] and this `segment`.
        segment: u16,
        /// The receive is still armed; false on its last completion.
        more: bool,
    },
    /// [`Op::SendBufTo`] finished.
    SentBufTo {
        /// The pooled buffer, returned to its owner.
        buf: PoolBuf,
        /// Bytes sent: the whole datagram, or the error.
        result: io::Result<usize>,
    },
    /// A value posted with [`Poster::post`](crate::Poster::post); it is in
    /// [`Completion::key`].
    Posted,
}

/// One reaped completion: the caller's key and what happened.
#[derive(Debug)]
pub struct Completion {
    /// The key given when the operation was submitted (IOCP's completion key), or the value
    /// posted for [`Outcome::Posted`].
    pub key: u64,
    /// The result, with the buffers the operation owned.
    pub outcome: Outcome,
}
