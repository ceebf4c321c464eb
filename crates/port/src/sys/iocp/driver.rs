//! The IOCP driver: operations become overlapped Winsock calls on sockets associated with one
//! completion port, and their completions are dequeued in batches and reported to the port as
//! [`RawCompletion`]s, in io_uring's convention (see [the contract](crate::sys#the-driver-contract)):
//! bytes, an accepted `SOCKET` (kernel handles keep to 32 bits) or `-code` with a Windows error
//! code, so that the port's delivery is the same on every backend.
//!
//! # Ownership
//!
//! Every posted I/O has an `OVERLAPPED`, inside an [`IoSlot`] in the operation's [`IoState`],
//! which the operation table keeps (boxed, in the `InFlight` entry, beside the operation's buffer
//! and socket handle) until that I/O's completion has been dequeued: the system may write into
//! the `OVERLAPPED`, the buffer and the accept address buffer until then. The slot carries the
//! operation's [`Token`], so a dequeued `OVERLAPPED` names its operation; the table checks slot,
//! generation and kind before anything is applied. A table entry is removed only once none of
//! its I/Os is in the system. When the port is dropped with I/Os still posted, they are
//! cancelled and drained; what does not come back in time is leaked, never freed.
//!
//! A finished one-I/O operation's state goes back to the driver's stock
//! ([`reclaim`](Driver::reclaim)), and the next operation takes it, so a receive or a send
//! allocates nothing ([`stock_datagram_ops`](Driver::stock_datagram_ops) makes the stock for a
//! caller's datagram operations up front); an accept's peer or a datagram's sender, which the
//! port reads after that, stays in the table entry ([`IocpOp::Peer`]).
//!
//! # Skip on success
//!
//! A socket is associated with the port at its first operation, and
//! `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` is set when the system accepts it: then an I/O that
//! completes inline posts no packet, and the driver queues its result itself (`ready`), for the
//! next [`wait`](IocpDriver::wait), which then does not block. Where the mode could not be set,
//! an inline success still posts a packet and is treated as pending. An immediate failure never
//! posts a packet.
//!
//! # Emulated operations
//!
//! - [`Op::AcceptMulti`]: [`ACCEPTS_OUTSTANDING`] AcceptEx in flight, each re-posted with a
//!   fresh accept socket after its connection is delivered (`more: true`). A posted AcceptEx
//!   that fails, or whose connection cannot be made ready, failed for that connection (the
//!   client reset it: `WSAECONNRESET`, `ERROR_NETNAME_DELETED`, `WSAENOTCONN`): the error is
//!   delivered with `more: true` and the slot re-posted the same way, so a burst of resets
//!   never ends the accept; the caller's policy judges the error. A cancellation, or an AcceptEx
//!   that cannot even be posted (the listener no longer listens, no accept socket), ends them
//!   all, with one last completion (`more: false`) once every AcceptEx has come back.
//! - [`Op::RecvMulti`]: a zero-byte WSARecv, which holds no buffer while it waits; when it
//!   completes, what the socket holds is read into pool buffers taken then (one completion per
//!   buffer, `more: true`), and the next zero-byte WSARecv is posted. The pool running dry ends
//!   it with `WSAENOBUFS`; a chunk that reaches the limit or takes the last free buffer is the
//!   last (`more: false`).
//! - `nowait` receives: a WSARecv that pends is cancelled at once; its cancellation is reported
//!   as `WSAEWOULDBLOCK` (bytes that won the race are delivered as usual).
//! - [`Op::RecvFrom`], [`Op::SendTo`]: `WSARecvFrom` (the sender into the operation's state) and
//!   `WSASendTo`, one datagram each; a caller keeps several receives posted on one socket. A
//!   datagram cut to the buffer (`WSAEMSGSIZE`) is reported as one byte longer than the room, as
//!   `MSG_TRUNC` reports it on Linux, so the port says it was truncated.
//! - Shutdown, Close and Nop are carried out at submission and complete at the next wait.
//! - Cancellation ([`Driver::cancel`]) is carried out at the next wait (which has the table),
//!   as io_uring submits its cancel entry only then.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::windows::io::{AsRawSocket, OwnedSocket, RawSocket};
use std::sync::Arc;
use std::time::Duration;

use windows_sys::Win32::Networking::WinSock::{
    SOCKET, WSABUF, WSAEINVAL, WSAEMSGSIZE, WSAENOBUFS, WSAEWOULDBLOCK, WSA_OPERATION_ABORTED,
};
use windows_sys::Win32::System::IO::OVERLAPPED_ENTRY;

use crate::backend::Backend;
use crate::op::{Accepted, Op, Socket};
use crate::sys::iocp::Waker;
use crate::sys::pool::BufPool;
use crate::sys::sender::Sender;
use crate::sys::{buffer_flags, Driver, RawCompletion, CQE_F_MORE};
use crate::table::Work;
use crate::token::{OpKind, Token, WAKE};

use super::state::{Entry, IoSlot, IoState, IocpOp, Table};
use super::sys::{self, AssociateError, IoResult, Started};

/// The most pool buffers one wake-up of a multishot receive fills before it lets others run.
const CHUNKS_PER_WAKE: usize = 64;

/// AcceptEx posted at once by one [`Op::AcceptMulti`].
pub(crate) const ACCEPTS_OUTSTANDING: usize = 4;

/// The raw socket an operation works on.
fn op_socket(work: &Work) -> Option<SOCKET> {
    let Work::Op(op) = work else {
        return None;
    };
    let raw: RawSocket = match op {
        Op::Accept { listener } | Op::AcceptMulti { listener } => listener.as_raw_socket(),
        Op::Recv { fd, .. }
        | Op::Send { fd, .. }
        | Op::Connect { fd, .. }
        | Op::Shutdown { fd, .. }
        | Op::RecvMulti { fd, .. }
        | Op::RecvBuf { fd, .. }
        | Op::SendBuf { fd, .. }
        | Op::SendBufs { fd, .. }
        | Op::RecvFrom { fd, .. }
        | Op::SendTo { fd, .. }
        | Op::RecvFromMulti { fd }
        | Op::SendBufTo { fd, .. } => fd.as_raw_socket(),
        Op::Close { .. } | Op::Nop => return None,
    };
    Some(raw as SOCKET)
}

/// How a posted I/O started.
enum Issued {
    /// In the system: a packet will come.
    Pending,
    /// Finished at once (an immediate failure, or an operation carried out at submission): no
    /// packet will come.
    Done(IoResult),
    /// Succeeded inline on a socket with skip-on-success: no packet will come.
    Inline(u32),
}

impl Issued {
    /// How a call that `started` so started, on a socket with skip-on-success (`skip`) or not.
    fn of(started: Started, skip: bool) -> Issued {
        match started {
            Started::Now(bytes) if skip => Issued::Inline(bytes),
            Started::Now(_) | Started::Pending => Issued::Pending,
            Started::Failed(code) => Issued::Done(Err(code)),
        }
    }
}

/// What the batch of one wait holds, in order.
enum Raw {
    /// A completion of slot `index` of the operation `token`; `None`: read it from the
    /// `OVERLAPPED`.
    Io {
        token: Token,
        index: u32,
        result: Option<IoResult>,
    },
    /// A wake-up posted by a [`Poster`](crate::Poster).
    Wake,
}

/// The IOCP driver of one port.
pub(crate) struct IocpDriver {
    /// The completion port, inside the waker the port's posters call.
    waker: Arc<Waker>,
    entries: Vec<OVERLAPPED_ENTRY>,
    /// Results that posted no packet, for the next wait.
    ready: VecDeque<Raw>,
    batch: Vec<Raw>,
    /// Sockets associated with this port, and whether skip-on-success is set on them.
    sockets: HashMap<SOCKET, bool>,
    /// Operations with at least one I/O in the system.
    in_system: HashSet<Token>,
    /// Operations to cancel at the next wait.
    cancels: Vec<Token>,
    /// The states of finished one-I/O operations, kept for the next ones (at most
    /// `spare_max`), so that a receive or a send allocates nothing.
    spare: Vec<Box<IoState>>,
    /// The most states `spare` keeps: [`SPARE_STATES`], or more when a caller stocked more
    /// ([`Driver::stock_datagram_ops`]).
    spare_max: usize,
    /// I/Os that succeeded inline under skip-on-success (posted no packet).
    inline: u64,
}

/// Most spare operation states a driver keeps.
const SPARE_STATES: usize = 1024;

impl fmt::Debug for IocpDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IocpDriver")
            .field("ready", &self.ready.len())
            .field("in_system", &self.in_system.len())
            .finish_non_exhaustive()
    }
}

impl IocpDriver {
    /// A new completion port; `entries` bounds the completions dequeued per wait.
    pub fn new(entries: u32) -> io::Result<IocpDriver> {
        let waker = Arc::new(Waker::new()?);
        let batch = entries.clamp(8, 1024) as usize;
        Ok(IocpDriver {
            waker,
            entries: vec![sys::empty_entry(); batch],
            // Room up front, so that a new high-water mark under load does not allocate on the
            // hot path.
            ready: VecDeque::with_capacity(256),
            batch: Vec::with_capacity(batch),
            sockets: HashMap::new(),
            in_system: HashSet::with_capacity(256),
            cancels: Vec::with_capacity(64),
            spare: Vec::with_capacity(64),
            spare_max: SPARE_STATES,
            inline: 0,
        })
    }

    /// The completion port's handle.
    fn port(&self) -> &sys::PortHandle {
        self.waker.port()
    }

    /// Associates `s` with the port (once per socket; a socket belongs to one port for life)
    /// and returns whether skip-on-success is set on it.
    fn associate(&mut self, s: SOCKET) -> io::Result<bool> {
        match self.port().associate(s) {
            Ok(()) => {}
            // Already associated: with this port if we did it (a socket number of ours that
            // was closed and reused would have been associated anew above).
            Err(AssociateError::Taken) => {
                return match self.sockets.get(&s) {
                    Some(&skip) => Ok(skip),
                    None => Err(io::Error::other(
                        "the socket belongs to another completion port (a socket serves one port for life)",
                    )),
                }
            }
            Err(AssociateError::Other(e)) => return Err(e),
        }
        let skip = sys::skip_on_success(s);
        self.sockets.insert(s, skip);
        Ok(skip)
    }

    /// Starts `inflight` (just inserted as `token`).
    fn start(
        &mut self,
        token: Token,
        inflight: &mut Entry,
        pool: Option<&mut BufPool>,
    ) -> io::Result<()> {
        if let Work::Close(_) = inflight.work {
            // The last handle is closed here (the close's result is the operation's); without
            // it, other handles were alive and the last holder closes the socket.
            let result = match inflight.work.take_last() {
                Some(fd) => {
                    self.sockets.remove(&(fd.as_raw_socket() as SOCKET));
                    sys::close(fd).map(|()| 0)
                }
                None => Ok(0),
            };
            self.ready.push_back(Raw::Io {
                token,
                index: 0,
                result: Some(result),
            });
            return Ok(());
        }
        let Some(s) = op_socket(&inflight.work) else {
            // Nop: done at once.
            self.ready.push_back(Raw::Io {
                token,
                index: 0,
                result: Some(Ok(0)),
            });
            return Ok(());
        };
        if let Work::Op(Op::Shutdown { how, .. }) = inflight.work {
            self.ready.push_back(Raw::Io {
                token,
                index: 0,
                result: Some(sys::shutdown(s, how).map(|()| 0)),
            });
            return Ok(());
        }
        let skip = self.associate(s)?;
        let slots = match inflight.kind {
            OpKind::AcceptMulti => ACCEPTS_OUTSTANDING,
            _ => 1,
        };
        let mut state = match self.spare.pop() {
            Some(mut spare) if slots == 1 => {
                *spare = IoState::new_one(token, mem::take(&mut spare.slots));
                spare
            }
            spare => {
                self.spare.extend(spare);
                Box::new(IoState::new(token, slots))
            }
        };
        match &inflight.work {
            Work::Op(Op::Recv { nowait, .. } | Op::RecvBuf { nowait, .. }) => {
                state.nowait = *nowait
            }
            Work::Op(Op::Connect { addr, .. } | Op::SendTo { to: addr, .. }) => {
                state.target = Some(socket2::SockAddr::from(*addr))
            }
            _ => {}
        }
        inflight.state = IocpOp::Io(state);
        let mut pool = pool;
        for index in 0..slots as u32 {
            let issued = self.issue(s, skip, inflight, index, pool.as_deref_mut());
            self.started(token, inflight, index, issued);
        }
        Ok(())
    }

    /// Records how slot `index` of `inflight` started.
    fn started(&mut self, token: Token, inflight: &mut Entry, index: u32, issued: Issued) {
        match issued {
            Issued::Pending => {
                let state = inflight.state.io().expect("an I/O operation's state");
                state.slots[index as usize].pending = true;
                state.in_system += 1;
                self.in_system.insert(token);
                if state.nowait {
                    // A nowait receive waits for nothing: cancel it at once.
                    let s = op_socket(&inflight.work).expect("a receive has a socket");
                    sys::cancel(s, &state.slots[index as usize].ov);
                }
            }
            Issued::Inline(bytes) => {
                self.inline += 1;
                self.started(token, inflight, index, Issued::Done(Ok(bytes)));
            }
            Issued::Done(result) => {
                if let Some(state) = inflight.state.io() {
                    state.queued += 1;
                }
                self.ready.push_back(Raw::Io {
                    token,
                    index,
                    result: Some(result),
                })
            }
        }
    }

    /// Posts the I/O of slot `index` of `inflight` on socket `s`.
    fn issue(
        &mut self,
        s: SOCKET,
        skip: bool,
        inflight: &mut Entry,
        index: u32,
        pool: Option<&mut BufPool>,
    ) -> Issued {
        let state = inflight.state.io().expect("an I/O operation's state");
        let slot = &mut state.slots[index as usize];
        let Work::Op(op) = &mut inflight.work else {
            // A close is carried out at submission.
            return Issued::Done(Ok(0));
        };
        let started = match op {
            Op::Accept { listener } | Op::AcceptMulti { listener } => {
                // Windows refuses AcceptEx on a socket that does not listen (WSAEINVAL); Wine
                // leaves it pending for ever. Checked first, so it ends at once on both.
                if !sys::listening(s) {
                    return Issued::Done(Err(WSAEINVAL));
                }
                // A listener is a socket of the process (Windows has no direct descriptors).
                let Some(l) = listener.real() else {
                    return Issued::Done(Err(WSAEINVAL));
                };
                let family = match socket2::SockRef::from(l).local_addr() {
                    Ok(a) => a.domain(),
                    Err(e) => return Issued::Done(Err(e.raw_os_error().unwrap_or(WSAEINVAL))),
                };
                let accept = match socket2::Socket::new(family, socket2::Type::STREAM, None) {
                    Ok(sock) => OwnedSocket::from(sock),
                    Err(e) => return Issued::Done(Err(e.raw_os_error().unwrap_or(WSAENOBUFS))),
                };
                let a = accept.as_raw_socket() as SOCKET;
                slot.accept = Some(accept);
                let ov = slot.reset();
                // SAFETY: the accept socket, the output buffer and the OVERLAPPED are in the
                // slot, which the table keeps until this I/O's completion is dequeued.
                unsafe { sys::accept_ex(s, a, &mut slot.addrs, ov) }
            }
            Op::Connect { fd, .. } => {
                let target = state.target.as_ref().expect("a connect's target");
                // ConnectEx wants a bound socket.
                let Some(real) = fd.real() else {
                    return Issued::Done(Err(WSAEINVAL));
                };
                let sock = socket2::SockRef::from(real);
                if sock.local_addr().is_err() {
                    let any: SocketAddr = if target.is_ipv6() {
                        (Ipv6Addr::UNSPECIFIED, 0).into()
                    } else {
                        (Ipv4Addr::UNSPECIFIED, 0).into()
                    };
                    if let Err(e) = sock.bind(&any.into()) {
                        return Issued::Done(Err(e.raw_os_error().unwrap_or(WSAEINVAL)));
                    }
                }
                let ov = state.slots[0].reset();
                // SAFETY: the address and the OVERLAPPED are in the operation's state, which
                // the table keeps until the completion is dequeued.
                unsafe { sys::connect_ex(s, target, ov) }
            }
            // The port refuses a receive without spare capacity.
            Op::Recv { buf, .. } => {
                let spare = buf.capacity() - buf.len();
                let wsabuf = WSABUF {
                    len: spare.min(i32::MAX as usize) as u32,
                    buf: buf.as_mut_ptr().wrapping_add(buf.len()),
                };
                // SAFETY: the spare capacity of the operation's own buffer, and the flags and
                // the OVERLAPPED in its state: the table keeps them until this I/O's completion
                // is dequeued, and nothing else touches them meanwhile.
                unsafe { sys::wsa_recv(s, wsabuf, &mut state.flags, state.slots[0].reset()) }
            }
            Op::RecvMulti { .. } => {
                if pool.is_none() {
                    return Issued::Done(Err(WSAEINVAL));
                }
                // A zero-byte receive: it completes when bytes (or the end) are there, and
                // holds no buffer meanwhile; the bytes are then read into pool buffers.
                let wsabuf = WSABUF {
                    len: 0,
                    buf: std::ptr::NonNull::<u8>::dangling().as_ptr(),
                };
                // SAFETY: no bytes; the flags and the OVERLAPPED are in the operation's state,
                // which the table keeps until this I/O's completion is dequeued.
                unsafe { sys::wsa_recv(s, wsabuf, &mut state.flags, slot.reset()) }
            }
            Op::RecvBuf { .. } => {
                let Some(pool) = pool else {
                    return Issued::Done(Err(WSAEINVAL));
                };
                let Some(id) = pool.take() else {
                    return Issued::Done(Err(WSAENOBUFS));
                };
                // Recorded where the port looks for a buffer the driver took itself.
                inflight.pooled = Some(id);
                let wsabuf = WSABUF {
                    len: pool.buf_size().min(i32::MAX as usize) as u32,
                    buf: pool.ptr(id),
                };
                // SAFETY: the pool buffer was just taken out of the pool for this receive
                // (nobody else touches it until its completion hands it out), and the pool's
                // memory never moves; the flags and the OVERLAPPED are in the operation's state,
                // which the table keeps until this I/O's completion is dequeued.
                unsafe { sys::wsa_recv(s, wsabuf, &mut state.flags, slot.reset()) }
            }
            Op::Send { buf, at, .. } => {
                let bytes = &buf[(*at).min(buf.len())..];
                let wsabuf = WSABUF {
                    len: bytes.len().min(i32::MAX as usize) as u32,
                    buf: bytes.as_ptr().cast_mut(),
                };
                // SAFETY: the operation's own buffer and the OVERLAPPED in its state, which the
                // table keeps until this I/O's completion is dequeued.
                unsafe { sys::wsa_send(s, &[wsabuf], slot.reset()) }
            }
            Op::SendBuf { buf, at, .. } => {
                let Some(pool) = pool else {
                    return Issued::Done(Err(WSAEINVAL));
                };
                let bytes = &pool.bytes(buf)[(*at).min(buf.len())..];
                let wsabuf = WSABUF {
                    len: bytes.len() as u32,
                    buf: bytes.as_ptr().cast_mut(),
                };
                // SAFETY: a pool buffer the operation holds out of the pool (the pool's memory
                // never moves) and the OVERLAPPED in its state, which the table keeps until this
                // I/O's completion is dequeued.
                unsafe { sys::wsa_send(s, &[wsabuf], slot.reset()) }
            }
            Op::SendBufs { bufs, at, .. } => {
                let Some(pool) = pool else {
                    return Issued::Done(Err(WSAEINVAL));
                };
                let mut wsabufs = [WSABUF {
                    len: 0,
                    buf: std::ptr::null_mut(),
                }; crate::op::SEND_BUFS_MAX];
                let mut n = 0;
                for (k, buf) in bufs.iter().take(crate::op::SEND_BUFS_MAX).enumerate() {
                    let skip_bytes = if k == 0 { (*at).min(buf.len()) } else { 0 };
                    let bytes = &pool.bytes(buf)[skip_bytes..];
                    if !bytes.is_empty() {
                        wsabufs[n] = WSABUF {
                            len: bytes.len() as u32,
                            buf: bytes.as_ptr().cast_mut(),
                        };
                        n += 1;
                    }
                }
                // SAFETY: as for `SendBuf`, for every buffer; WSASend copies the array itself.
                unsafe { sys::wsa_send(s, &wsabufs[..n.max(1)], slot.reset()) }
            }
            // The port refuses a receive without spare capacity.
            Op::RecvFrom { buf, .. } => {
                let spare = buf.capacity() - buf.len();
                let wsabuf = WSABUF {
                    len: spare.min(i32::MAX as usize) as u32,
                    buf: buf.as_mut_ptr().wrapping_add(buf.len()),
                };
                let ov = state.slots[0].reset();
                // SAFETY: the spare capacity of the operation's own buffer, and the flags, the
                // sender's storage and the OVERLAPPED in its boxed state: the table keeps them
                // until this I/O's completion is dequeued, and nothing else touches them
                // meanwhile.
                unsafe {
                    sys::wsa_recv_from(
                        s,
                        wsabuf,
                        &mut state.flags,
                        &mut state.from,
                        &mut state.from_len,
                        ov,
                    )
                }
            }
            Op::SendTo { buf, .. } => {
                let to = state.target.as_ref().expect("a datagram's destination");
                let wsabuf = WSABUF {
                    len: buf.len().min(i32::MAX as usize) as u32,
                    buf: buf.as_ptr().cast_mut(),
                };
                let ov = state.slots[0].reset();
                // SAFETY: the operation's own buffer, and the destination and the OVERLAPPED in
                // its boxed state, which the table keeps until this I/O's completion is
                // dequeued.
                unsafe { sys::wsa_send_to(s, wsabuf, to, ov) }
            }
            Op::Shutdown { .. } | Op::Close { .. } | Op::Nop => Started::Now(0),
            // No batched datagram operations here (`Port::submit` refuses them): a caller
            // keeps several `RecvFrom`s posted instead.
            Op::RecvFromMulti { .. } | Op::SendBufTo { .. } => return Issued::Done(Err(WSAEINVAL)),
        };
        Issued::of(started, skip)
    }

    /// Asks every I/O of the operation to end early (CancelIoEx); they complete as usual.
    fn cancel_now(&mut self, inflight: &mut Entry) {
        let Some(s) = op_socket(&inflight.work) else {
            return;
        };
        let Some(state) = inflight.state.io() else {
            return;
        };
        state.cancelled = true;
        if state.ending.is_none() && inflight.kind.is_multishot() {
            state.ending = Some(WSA_OPERATION_ABORTED);
        }
        for slot in state.slots.iter().filter(|slot| slot.pending) {
            sys::cancel(s, &slot.ov);
        }
    }

    /// Cancels what was asked since the last wait, waits up to `timeout` for completions (not
    /// at all when results are ready), then turns every ready result and dequeued packet into
    /// raw completions.
    fn reap(
        &mut self,
        table: &mut Table,
        mut pool: Option<&mut BufPool>,
        timeout: Option<Duration>,
        out: &mut Vec<RawCompletion>,
    ) -> io::Result<()> {
        for token in mem::take(&mut self.cancels) {
            if let Some(inflight) = table.get_mut(token) {
                self.cancel_now(inflight);
            }
        }
        let mut batch = mem::take(&mut self.batch);
        batch.clear();
        batch.extend(self.ready.drain(..));
        let ms = if !batch.is_empty() {
            0
        } else {
            match timeout {
                None => u32::MAX, // INFINITE
                Some(t) => {
                    let ms = t.as_nanos().div_ceil(1_000_000);
                    ms.min(u128::from(u32::MAX - 1)) as u32
                }
            }
        };
        let dequeued = self.dequeue(ms, &mut batch);
        for raw in batch.drain(..) {
            match raw {
                Raw::Wake => out.push(RawCompletion {
                    user_data: WAKE.raw(),
                    result: 0,
                    flags: 0,
                }),
                Raw::Io {
                    token,
                    index,
                    result,
                } => self.complete(table, pool.as_deref_mut(), token, index, result, out),
            }
        }
        self.batch = batch;
        dequeued
    }

    /// One GetQueuedCompletionStatusEx: appends what it dequeued to `batch`.
    fn dequeue(&mut self, ms: u32, batch: &mut Vec<Raw>) -> io::Result<()> {
        let n = self.waker.port().dequeue(&mut self.entries, ms)?;
        for entry in &self.entries[..n] {
            if entry.lpOverlapped.is_null() {
                batch.push(Raw::Wake);
                continue;
            }
            let slot = entry.lpOverlapped.cast::<IoSlot>().cast_const();
            // SAFETY: every OVERLAPPED this port posts is the first field of an IoSlot
            // (repr(C)) in a table entry that is kept until this very completion has been
            // handled, so the slot is alive; only two plain fields are read.
            let (token, index) = unsafe { ((*slot).token, (*slot).index) };
            match Token::from_raw(token) {
                Some(token) => batch.push(Raw::Io {
                    token,
                    index,
                    result: None,
                }),
                None => tracing::warn!("a completion without a token: ignored"),
            }
        }
        Ok(())
    }

    /// Applies one result to its operation and reports what the port delivers. A result for
    /// an operation no longer in the table is reported as it is: the port counts it stale.
    fn complete(
        &mut self,
        table: &mut Table,
        pool: Option<&mut BufPool>,
        token: Token,
        index: u32,
        result: Option<IoResult>,
        out: &mut Vec<RawCompletion>,
    ) {
        let Some(inflight) = table.get_mut(token) else {
            out.push(raw(token, result.unwrap_or(Err(WSAEINVAL)), 0));
            return;
        };
        let kind = inflight.kind;
        let s = op_socket(&inflight.work);
        let Some(state) = inflight.state.io() else {
            // Close, Nop, Shutdown: carried out at submission.
            out.push(raw(token, result.unwrap_or(Ok(0)), 0));
            return;
        };
        let s = s.expect("an I/O operation has a socket");
        let slot = &mut state.slots[index as usize];
        // A result queued by the driver itself: the I/O started inline, or failed to start.
        let queued = result.is_some();
        let mut res = match result {
            Some(r) => {
                state.queued = state.queued.saturating_sub(1);
                r
            }
            // Dequeued from the port: its status is final.
            None => sys::overlapped_result(s, &slot.ov),
        };
        if slot.pending {
            slot.pending = false;
            state.in_system -= 1;
            if state.in_system == 0 {
                self.in_system.remove(&token);
            }
        }
        if state.nowait && !state.cancelled && res == Err(WSA_OPERATION_ABORTED) {
            res = Err(WSAEWOULDBLOCK);
        }
        match kind {
            OpKind::Accept => {
                let accepted = finish_accept(s, slot, res);
                let res = accepted.and_then(|acc| {
                    state.peer = acc.peer;
                    socket_result(acc.fd)
                });
                out.push(raw(token, res, 0));
            }
            OpKind::AcceptMulti => {
                let not_posted = queued && res.is_err();
                match finish_accept(s, slot, res).and_then(|acc| socket_result(acc.fd)) {
                    Ok(fd) => out.push(raw(token, Ok(fd), CQE_F_MORE)),
                    // The connection this AcceptEx took failed (a client that reset it before
                    // it was accepted): not the listener's fault; a fresh AcceptEx follows.
                    Err(code)
                        if !not_posted
                            && !state.cancelled
                            && state.ending.is_none()
                            && code != WSA_OPERATION_ABORTED =>
                    {
                        out.push(raw(token, Err(code), CQE_F_MORE))
                    }
                    Err(code) => {
                        if state.ending.is_none() {
                            state.ending = Some(code);
                            for other in state.slots.iter().filter(|o| o.pending) {
                                sys::cancel(s, &other.ov);
                            }
                        }
                    }
                }
                if state.ending.is_none() {
                    let skip = self.sockets.get(&s).copied().unwrap_or(false);
                    let inflight = inflight_of(table, token);
                    let issued = self.issue(s, skip, inflight, index, pool);
                    self.started(token, inflight, index, issued);
                } else if state.in_system == 0 && state.queued == 0 {
                    let code = state.ending.unwrap_or(WSA_OPERATION_ABORTED);
                    out.push(raw(token, Err(code), 0));
                }
            }
            OpKind::Connect => {
                if res.is_ok() {
                    if let Err(code) = sys::update_connect_context(s) {
                        res = Err(code);
                    }
                }
                out.push(raw(token, res.map(|_| 0), 0));
            }
            OpKind::RecvMulti => match res {
                Ok(_) => self.read_ready(table, pool, token, s, out),
                Err(code) => out.push(raw(token, Err(code), 0)),
            },
            OpKind::RecvFrom => {
                state.peer = sys::datagram_sender(&state.from, state.from_len);
                // A datagram longer than the buffer filled it and was cut (WSAEMSGSIZE): its
                // length is reported as more than the room, as `MSG_TRUNC` does on Linux.
                let res = match (res, &inflight.work) {
                    (Err(WSAEMSGSIZE), Work::Op(Op::RecvFrom { buf, .. })) => {
                        Ok(u32::try_from(buf.capacity() - buf.len() + 1).unwrap_or(u32::MAX))
                    }
                    (res, _) => res,
                };
                out.push(raw(token, res, 0));
            }
            // The receives (a pooled one's buffer is in `InFlight::pooled`) and the sends.
            _ => out.push(raw(token, res, 0)),
        }
    }

    /// A multishot receive's zero-byte receive completed: reads what the socket holds into pool
    /// buffers (at most [`CHUNKS_PER_WAKE`] of them), one completion per buffer, then posts the
    /// next zero-byte receive, unless the receive ended (end of stream, an error, the pool dry,
    /// its limit, a cancellation).
    fn read_ready(
        &mut self,
        table: &mut Table,
        pool: Option<&mut BufPool>,
        token: Token,
        s: SOCKET,
        out: &mut Vec<RawCompletion>,
    ) {
        let inflight = inflight_of(table, token);
        let limit = match inflight.work {
            Work::Op(Op::RecvMulti { limit, .. }) => limit,
            _ => 0,
        };
        let state = inflight.state.io().expect("an I/O operation's state");
        let Some(pool) = pool else {
            out.push(raw(token, Err(WSAEINVAL), 0));
            return;
        };
        for _ in 0..CHUNKS_PER_WAKE {
            if state.cancelled || !sys::readable(s) {
                break;
            }
            let Some(id) = pool.take() else {
                out.push(raw(token, Err(WSAENOBUFS), 0));
                return;
            };
            let room = if limit > 0 {
                limit.saturating_sub(state.received)
            } else {
                usize::MAX
            };
            let len = pool.buf_size().min(room).min(i32::MAX as usize);
            // SAFETY: buffer `id` was just taken from the pool (nobody else reads or writes it)
            // and `len` is at most its size.
            match unsafe { sys::recv_now(s, pool.ptr(id), len) } {
                Ok(0) => {
                    pool.untake(id);
                    out.push(raw(token, Ok(0), 0));
                    return;
                }
                Ok(n) => {
                    state.received += n;
                    let last = (limit > 0 && state.received >= limit) || pool.available() == 0;
                    out.push(raw(token, Ok(n as u32), buffer_flags(id, !last)));
                    if last {
                        return;
                    }
                }
                Err(code) => {
                    pool.untake(id);
                    if code == WSAEWOULDBLOCK {
                        break;
                    }
                    out.push(raw(token, Err(code), 0));
                    return;
                }
            }
        }
        if state.cancelled {
            out.push(raw(token, Err(WSA_OPERATION_ABORTED), 0));
            return;
        }
        let skip = self.sockets.get(&s).copied().unwrap_or(false);
        let issued = self.issue(s, skip, inflight_of(table, token), 0, Some(pool));
        self.started(token, inflight_of(table, token), 0, issued);
    }

    /// Cancels every I/O in the system and waits (up to `limit`) for them to come back.
    /// Returns the operations still in the system after that, which must be leaked.
    fn drain(&mut self, table: &mut Table, limit: Duration) -> Vec<Token> {
        let tokens: Vec<Token> = self.in_system.iter().copied().collect();
        for token in tokens {
            if let Some(inflight) = table.get_mut(token) {
                self.cancel_now(inflight);
            }
        }
        let deadline = std::time::Instant::now() + limit;
        let mut batch = Vec::new();
        while !self.in_system.is_empty() && std::time::Instant::now() < deadline {
            batch.clear();
            if self.dequeue(50, &mut batch).is_err() {
                break;
            }
            for raw in batch.drain(..) {
                let Raw::Io { token, index, .. } = raw else {
                    continue;
                };
                let Some(state) = table.get_mut(token).and_then(|i| i.state.io()) else {
                    continue;
                };
                let slot = &mut state.slots[index as usize];
                if slot.pending {
                    slot.pending = false;
                    state.in_system -= 1;
                    if state.in_system == 0 {
                        self.in_system.remove(&token);
                    }
                }
            }
        }
        self.in_system.iter().copied().collect()
    }
}

// SAFETY: every I/O the driver posts has its `OVERLAPPED` in an `IoSlot` of the operation's
// boxed state, which carries the operation's token; the state, the buffer and the socket stay
// in the table until every slot's completion has been dequeued (`in_system`), and only then is
// the operation reported finished. Results are the system's: bytes transferred into the
// operation's buffer or the pool buffer it took, an accepted socket that the driver hands over
// (`socket_result`, forgotten here). A multishot operation reports its last completion once
// every slot is back. On drop, `quiesce` cancels and drains what is in the system and leaks
// (never frees) what does not come back, with the pool.
unsafe impl Driver for IocpDriver {
    type State = IocpOp;

    fn backend(&self) -> Backend {
        Backend::Iocp
    }

    fn describe(&self, _pool: Option<&BufPool>) -> String {
        "iocp (I/O completion port; skip-on-success where the socket allows)".to_string()
    }

    fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    fn attach_pool(&mut self, _pool: &mut BufPool) {
        // Nothing to register: a pooled receive takes its buffer when it is posted.
    }

    fn push(
        &mut self,
        token: Token,
        inflight: &mut Entry,
        pool: Option<&mut BufPool>,
    ) -> io::Result<()> {
        self.start(token, inflight, pool)
    }

    fn cancel(&mut self, target: Token) -> io::Result<()> {
        self.cancels.push(target);
        Ok(())
    }

    fn wait(
        &mut self,
        table: &mut Table,
        pool: Option<&mut BufPool>,
        timeout: Option<Duration>,
        now: Option<std::time::Instant>,
        out: &mut Vec<RawCompletion>,
    ) -> io::Result<()> {
        // The deadline is `now + timeout`: what is left of it.
        let timeout = match (now, timeout) {
            (Some(now), Some(d)) => Some(d.saturating_sub(now.elapsed())),
            _ => timeout,
        };
        self.reap(table, pool, timeout, out)
    }

    fn inline_completions(&self) -> u64 {
        self.inline
    }

    fn stock_datagram_ops(&mut self, n: usize) {
        // Each datagram operation in flight holds a one-I/O state (its OVERLAPPED, the sender's
        // storage or the destination); the stock, and the queues an operation passes through,
        // get room for `n` of them now.
        self.spare_max = self.spare_max.max(n);
        self.spare.reserve(n.saturating_sub(self.spare.len()));
        while self.spare.len() < n {
            self.spare.push(Box::new(IoState::spare()));
        }
        self.ready.reserve(n.saturating_sub(self.ready.len()));
        self.in_system
            .reserve(n.saturating_sub(self.in_system.len()));
    }

    fn reclaim(&mut self, inflight: &mut Entry) {
        // Nothing is lent: an operation's state is in its own table entry. A one-I/O state the
        // system is done with goes back to the stock for the next operation; an accept's peer
        // or a datagram's sender, which the port reads after this call, stays in the entry.
        let IocpOp::Io(state) = mem::take(&mut inflight.state) else {
            return;
        };
        if matches!(inflight.kind, OpKind::Accept | OpKind::RecvFrom) {
            if let Some(peer) = state.peer {
                inflight.state = IocpOp::Peer(Sender::new(peer));
            }
        }
        if state.slots.len() == 1 && state.in_system == 0 && self.spare.len() < self.spare_max {
            self.spare.push(state);
        }
    }

    /// Cancels and drains what is in the system (bounded); what does not come back in time is
    /// leaked with the pool rather than freed under the system.
    fn quiesce(&mut self, table: &mut Table, pool: &mut Option<BufPool>) {
        if self.in_system.is_empty() {
            return;
        }
        let left = self.drain(table, DRAIN_ON_DROP);
        if left.is_empty() {
            return;
        }
        tracing::warn!(
            operations = left.len(),
            "operations did not come back from the system when the port closed: leaked"
        );
        for token in left {
            mem::forget(table.remove(token));
        }
        // A leaked receive may still write into its pool buffer.
        mem::forget(pool.take());
    }
}

/// How long a dropped port waits for its cancelled operations to come back.
const DRAIN_ON_DROP: Duration = Duration::from_secs(2);

/// A raw completion of `token`: bytes (or a socket) when non-negative, `-code` on error.
fn raw(token: Token, res: IoResult, flags: u32) -> RawCompletion {
    let result = match res {
        Ok(n) => i32::try_from(n).unwrap_or(i32::MAX),
        Err(code) if code > 0 => -code,
        Err(_) => -WSAEINVAL,
    };
    RawCompletion::new(token, result, flags)
}

/// An accepted socket as a result: its handle value, which fits (kernel handles keep to 32
/// bits, and are multiples of 4); the port takes it back with `adopt`.
fn socket_result(fd: Socket) -> IoResult {
    let Ok(fd) = fd.into_real() else {
        return Err(WSAEINVAL);
    };
    match u32::try_from(fd.as_raw_socket()) {
        Ok(v) if v <= i32::MAX as u32 => {
            mem::forget(fd);
            Ok(v)
        }
        _ => Err(WSAEINVAL),
    }
}

fn inflight_of(table: &mut Table, token: Token) -> &mut Entry {
    table.get_mut(token).expect("still in the table")
}

/// The accepted connection of an AcceptEx slot, made ready for use.
fn finish_accept(listener: SOCKET, slot: &mut IoSlot, res: IoResult) -> Result<Accepted, i32> {
    let accept = slot.accept.take();
    res?;
    let fd = accept.ok_or(WSAEINVAL)?;
    sys::update_accept_context(fd.as_raw_socket() as SOCKET, listener)?;
    let peer = sys::accepted_peer(&slot.addrs);
    Ok(Accepted {
        fd: Socket::from(fd),
        peer,
    })
}
