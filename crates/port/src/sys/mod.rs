//! The operating-system side of the port: every `unsafe` block of ringport lives below here.
//!
//! This module holds the contract between the port and its backends ([`Driver`]) and the
//! dispatch to them ([`AnyDriver`]); everything else is in its own file.
//!
//! # The driver contract
//!
//! A backend is a *driver*: one value per port, owned by the port's thread, that implements
//! the `unsafe` trait [`Driver`]. The port's soundness rests on what a driver promises (the
//! kernel writes into memory the port owns, and the port adopts descriptors and grows buffers
//! by what a driver reports), so implementing it is `unsafe`, and each driver says in its
//! `unsafe impl` why it keeps the promises. Each driver is compiled with its own operation
//! table ([`Driven`]); [`AnyDriver`] is one enum with one `match` per call of the port (static
//! dispatch: no allocation and no virtual call per operation). The contract, as mio states its
//! selector's:
//!
//! - **Operations.** [`push`](Driver::push) starts the operation an [`InFlight`] entry of the
//!   port's table holds, named by its [`Token`]. The entry, and everything its
//!   [`Work`](crate::table::Work) owns (the buffer, the fd handle) and its
//!   [`state`](Driver::State), stays where it is until the port removes it, which happens only once
//!   the operation's last completion has been delivered: the driver may hand the kernel pointers
//!   into it (into what the state boxes: the entry itself moves when the table grows). A driver may
//!   carry an operation out at once or only queue it (io_uring: nothing reaches the kernel before
//!   the next `wait`), but every pushed operation completes exactly once (a multishot one: any
//!   number of times with [`CQE_F_MORE`], then once without). An `Err` from `push` means the
//!   operation was not started and will not complete (the port frees its slot).
//! - **Its state.** Each driver keeps what it needs per operation in its own
//!   [`State`](Driver::State) type, made by [`OpState::new`] when the operation is submitted
//!   and dropped with the entry: io_uring's socket address and gathered-send header, epoll's
//!   accepted peer, IOCP's `OVERLAPPED`s. An accept's peer comes from
//!   [`OpState::accepted_peer`].
//! - **Closes.** A close is its own operation, [`Work::Close`](crate::table::Work::Close), with
//!   the caller's handle on the descriptor. The driver lets go of any handle it keeps on the
//!   descriptor itself first, then takes the last handle with
//!   [`Work::take_last`](crate::table::Work::take_last) and closes it (the close's result is the
//!   operation's): the close is real. Where other handles remain, there is nothing to close: the
//!   close completes with 0, and the last holder closes the descriptor.
//! - **Cancellation.** [`cancel`](Driver::cancel) asks a pushed operation to end early: it then
//!   completes with `-ECANCELED` unless it had finished anyway (and completes as it finished). The
//!   port calls it only for operations still in its table. A driver's own bookkeeping for the
//!   request (io_uring's cancel entry, named with [`OpKind::Cancel`](crate::token::OpKind::Cancel))
//!   is dropped by the port.
//! - **Waiting.** [`wait`](Driver::wait) submits what is queued, waits until at least one
//!   completion is ready or the timeout passes (`None`: no limit; zero: do not block), and
//!   appends every ready completion to `out`. It may look operations up in the table (to
//!   carry out those that became ready, or to re-arm one), never insert or remove: delivering
//!   is the port's ([`deliver`]). (Only [`quiesce`](Driver::quiesce) may remove an entry, to
//!   leak it.) A signal interrupting the wait is not an error.
//! - **What it reports.** [`RawCompletion`]s in io_uring's convention, whatever the mechanism:
//!   `user_data` is the operation's token or a reserved value
//!   ([`token`](crate::token#reserved-values)), `result` is bytes, a new fd or 0 when
//!   non-negative and `-errno` when negative (on Windows `-code` with a Windows error code;
//!   [`errors::code`](crate::errors::code) names the ones the port compares), so
//!   [`is_cancelled`](crate::is_cancelled) and friends hold everywhere; `flags` carry
//!   [`CQE_F_MORE`] (a multishot operation stays armed) and [`CQE_F_BUFFER`] with a pool
//!   buffer's id ([`buffer_flags`]). A non-negative result of an accept is a new descriptor
//!   that nobody else owns (the port adopts it); of a receive, the bytes the kernel wrote into
//!   the operation's buffer or pool buffers.
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
//! - **Resources.** Memory a driver lends an operation (io_uring's gathered-send header, in
//!   its state) comes back through [`reclaim`](Driver::reclaim) when the operation leaves the
//!   table.
//! - **Going away.** [`quiesce`](Driver::quiesce) is called when the port is dropped with
//!   operations still in flight: once it returns, the system writes into none of them.
//! - **Kernel features.** What a kernel lacks is made up for inside the driver, so that every
//!   operation means the same on every backend and kernel: io_uring without a provided-buffer
//!   ring takes a pool buffer per receive; without multishot accept (before 5.19, refused with
//!   `EINVAL`) it accepts one connection at a time and reports each as a multishot accept
//!   would; epoll and IOCP emulate multishot operations and the pool.
//!
//! # Layout
//!
//! Three drivers implement the contract: on Linux [`uring`] (the kernel carries operations
//! out) and [`epoll`] (the driver carries them out when their fd is ready); on Windows
//! `iocp` (Windows carries them out, on an I/O completion port). Each keeps the policy (what
//! to do with an operation, when) apart from its system calls, which are behind functions in
//! its `sys.rs` (safe ones, but for the calls that hand the system memory that must outlive
//! them). Beside them:
//!
//! - [`deliver`]: a driver with its table ([`Driven`]): submitting, and turning raw
//!   completions into the caller's;
//! - [`outcome`]: a raw result into an [`Outcome`](crate::Outcome) (adopting an accepted fd,
//!   growing a buffer by the bytes the kernel wrote);
//! - [`pool`]: the buffer pool;
//! - [`sender`]: a datagram's sender (or an accepted peer) kept compactly in a driver's state;
//! - `sockaddr`, `waker`, `gather`, `dgram` (Linux): socket addresses in the kernel's form, the
//!   eventfd that wakes a port, the iovecs and header of a gathered send, the header of a
//!   datagram receive or send; `iocp` has its own waker;
//! - [`os`]: process limits and facts behind safe functions (public, as `ringport_port::os`).

#[cfg(unix)]
pub(crate) mod dgram;
#[cfg(unix)]
pub(crate) mod epoll;
#[cfg(unix)]
pub(crate) mod gather;
#[cfg(windows)]
pub(crate) mod iocp;
pub mod os;
pub(crate) mod pool;
pub(crate) mod sender;
#[cfg(unix)]
pub(crate) mod sockaddr;
#[cfg(unix)]
pub(crate) mod uring;
#[cfg(unix)]
pub(crate) mod waker;

pub(crate) mod deliver;
pub(crate) mod outcome;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Backend, BackendChoice};
use crate::op::Op;
use crate::port::PortError;
#[cfg(unix)]
use crate::sys::epoll::EpollDriver;
#[cfg(windows)]
use crate::sys::iocp::IocpDriver;
#[cfg(windows)]
pub(crate) use crate::sys::iocp::Waker;
use crate::sys::pool::BufPool;
#[cfg(unix)]
use crate::sys::uring::UringDriver;
#[cfg(unix)]
pub(crate) use crate::sys::waker::Waker;
use crate::table::{InFlight, OpTable};
use crate::token::Token;

pub(crate) use deliver::Driven;

/// What a backend does for a port; see [the contract](self#the-driver-contract).
///
/// # Safety
///
/// The port hands the results a driver reports to the caller as they are, adopting
/// descriptors and growing buffers by them, and lets the kernel write into the operations it
/// holds. An implementor promises, as [the contract](self#the-driver-contract) says in full:
///
/// - every [`RawCompletion`] it reports names an operation it was given ([`push`]) by its
///   [`Token`], or is a reserved value, and its result is what the system did for that very
///   operation: a non-negative result of an accept is a new descriptor that nobody else owns
///   (with a [`direct_table`](Driver::direct_table), the slot of that table the kernel just
///   filled, which nothing else names);
///   of a receive, the number of bytes written into the operation's buffer (after its length,
///   within its capacity) or into the pool buffer its flags name, which the driver took out of
///   the pool (or the kernel did, from the pool's ring) for this receive; of a datagram receive,
///   the datagram's length, of which as many bytes as fit in the buffer's spare capacity were
///   written there (`MSG_TRUNC`'s convention: a longer result means the datagram was cut); of a
///   batched datagram receive, the bytes written from the start of the pool buffer its flags
///   name: the account, the sender's address field and the datagram (see `dgram`);
/// - every pushed operation completes exactly once (a multishot one: then no more after the
///   completion without [`CQE_F_MORE`]), and the system stops using what the operation owns
///   (its buffer, its descriptor, its state) before that completion is reported;
/// - it never inserts into the table, and removes from it only in [`quiesce`](Driver::quiesce)
///   (to leak what the system may still write into); it lends an operation only memory that
///   stays put (boxed) while the system may use it;
/// - after `quiesce`, the system writes into none of the operations left in the table, nor into
///   the pool (a driver that cannot make sure leaks them, and the pool, instead of freeing
///   them).
///
/// [`push`]: Driver::push
pub(crate) unsafe trait Driver {
    /// What the driver keeps for each operation in its table entry.
    type State: OpState;

    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// A few words on the backend and how it was set up, for logs.
    fn describe(&self, pool: Option<&BufPool>) -> String;

    /// The waker the port's posters call.
    fn waker(&self) -> Arc<Waker>;

    /// Whether single pooled receives that wait ([`Op::RecvBuf`](crate::Op::RecvBuf) without
    /// `nowait`) reach the system after every other operation submitted before the same wait.
    fn late_single_receives(&self) -> bool {
        false
    }

    /// Whether [`Op::RecvFromMulti`](crate::Op::RecvFromMulti) and
    /// [`Op::SendBufTo`](crate::Op::SendBufTo) work on this port, with its pool `pool`.
    fn datagram_batches(&self, _pool: Option<&BufPool>) -> bool {
        false
    }

    /// Makes now what `n` datagram operations in flight at once need, so that none is made
    /// when a datagram is received or sent (drivers that keep nothing per datagram: nothing).
    fn stock_datagram_ops(&mut self, _n: usize) {}

    /// The file table accepted sockets go into, when the port's accepts are direct
    /// (io_uring's registered files): an accept's result is then a slot of it.
    fn direct_table(&self) -> Option<&Arc<crate::socket::DirectTable>> {
        None
    }

    /// The port got its buffer pool: register it with the kernel, probe what receives into
    /// it may use, make ready what sends from it need.
    fn attach_pool(&mut self, pool: &mut BufPool);

    /// Starts the operation `inflight`, named `token`.
    fn push(
        &mut self,
        token: Token,
        inflight: &mut InFlight<Self::State>,
        pool: Option<&mut BufPool>,
    ) -> io::Result<()>;

    /// Asks the operation named `target` to end early.
    fn cancel(&mut self, target: Token) -> io::Result<()>;

    /// Submits, waits for at least one completion or the timeout, appends what is ready.
    /// `now`, when given, is the caller's reading of the clock when it computed `timeout`: a
    /// driver that needs the deadline takes it from there instead of reading the clock.
    fn wait(
        &mut self,
        table: &mut OpTable<Self::State>,
        pool: Option<&mut BufPool>,
        timeout: Option<Duration>,
        now: Option<Instant>,
        out: &mut Vec<RawCompletion>,
    ) -> io::Result<()>;

    /// Takes back what the driver lent `inflight`, which is leaving the table.
    fn reclaim(&mut self, inflight: &mut InFlight<Self::State>);

    /// Takes back the state of an operation whose outcome has been read (what `reclaim` left
    /// in it for the outcome); by default it is dropped.
    fn recycle(&mut self, state: Self::State) {
        drop(state);
    }

    /// Operations the system finished at once, without a completion of its own, whose results
    /// the driver queued itself (IOCP with skip-on-success; the Linux drivers have none).
    fn inline_completions(&self) -> u64 {
        0
    }

    /// The port is being dropped with `table` still holding the operations in flight: make
    /// sure the system writes into none of them (or the pool) once this returns. epoll needs
    /// nothing (it performs every operation itself); io_uring (whose ring's teardown does not
    /// wait for what an io-wq worker runs) and IOCP cancel and drain, and leak what does not
    /// come back in time.
    fn quiesce(&mut self, _table: &mut OpTable<Self::State>, _pool: &mut Option<BufPool>) {}
}

/// A driver's state for one operation (see [`Driver::State`]).
pub(crate) trait OpState {
    /// The state for `op`, made when it is submitted (before [`Driver::push`]).
    fn new(op: &Op) -> Self;

    /// The peer a finished [`Op::Accept`](crate::Op::Accept) reported, if any.
    fn accepted_peer(&self) -> Option<SocketAddr>;

    /// The sender of the datagram a finished [`Op::RecvFrom`](crate::Op::RecvFrom) received,
    /// if the system reported one. Asked after [`Driver::reclaim`]: a driver that lends the
    /// address storage keeps the sender in the state itself.
    fn received_from(&self) -> Option<SocketAddr>;

    /// The segment size of a finished [`Op::RecvFrom`](crate::Op::RecvFrom)'s `UDP_GRO`
    /// control message (several datagrams coalesced), or 0. Asked after [`Driver::reclaim`],
    /// as [`received_from`](OpState::received_from) is.
    fn received_segment(&self) -> u16 {
        0
    }
}

/// The port's driver, with its table: the one place that dispatches to a backend.
// One per port (a few hundred bytes, moved only as the port is): boxing the larger variant would
// buy nothing but an indirection on every call.
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyDriver {
    #[cfg(unix)]
    Uring(Driven<UringDriver>),
    #[cfg(unix)]
    Epoll(Driven<EpollDriver>),
    #[cfg(windows)]
    Iocp(Driven<IocpDriver>),
}

/// `$body` with `$d` bound to the [`Driven`] inside `$driver`, whichever backend it is.
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
pub(crate) use dispatch;

impl AnyDriver {
    /// The driver `choice` means on this machine, with room for `entries` submissions: the one
    /// place where [`BackendChoice::Auto`] falls back from io_uring to epoll (with one warning
    /// naming the cause).
    ///
    /// # Errors
    ///
    /// [`PortError::UringUnavailable`] when io_uring was asked for and cannot be used, or the
    /// backend asked for does not exist on this system; [`PortError::Io`] when the driver's own
    /// descriptors cannot be created.
    pub fn open(choice: BackendChoice, entries: u32) -> Result<AnyDriver, PortError> {
        #[cfg(windows)]
        match choice {
            BackendChoice::Auto | BackendChoice::Iocp => {
                let driver = IocpDriver::new(entries).map_err(PortError::Io)?;
                Ok(AnyDriver::Iocp(Driven::new(driver, entries)))
            }
            BackendChoice::Uring => Err(Backend::Uring.not_here().into()),
            BackendChoice::Epoll => Err(Backend::Epoll.not_here().into()),
        }
        #[cfg(unix)]
        match choice {
            BackendChoice::Iocp => Err(Backend::Iocp.not_here().into()),
            BackendChoice::Uring => AnyDriver::uring(entries),
            BackendChoice::Epoll => AnyDriver::epoll(entries, None),
            BackendChoice::Auto => match AnyDriver::uring(entries) {
                Err(PortError::UringUnavailable(e)) => {
                    tracing::warn!(
                        remedy = %e.remedy,
                        "io_uring is unavailable ({}); using the epoll backend",
                        e.cause
                    );
                    AnyDriver::epoll(entries, Some(e.cause))
                }
                made => made,
            },
        }
    }

    #[cfg(unix)]
    fn uring(entries: u32) -> Result<AnyDriver, PortError> {
        let driver = UringDriver::open(entries.max(8))?;
        Ok(AnyDriver::Uring(Driven::new(driver, entries)))
    }

    #[cfg(unix)]
    fn epoll(entries: u32, fallback: Option<String>) -> Result<AnyDriver, PortError> {
        let driver = EpollDriver::new(entries, fallback).map_err(PortError::Io)?;
        Ok(AnyDriver::Epoll(Driven::new(driver, entries)))
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        dispatch!(self, d => d.driver.backend())
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
/// Where a completion's flags keep the pool buffer's id.
pub(crate) const CQE_BUFFER_SHIFT: u32 = 16;

/// The flags of a completion that used pool buffer `id`, `more` if still armed.
pub(crate) fn buffer_flags(id: u16, more: bool) -> u32 {
    (u32::from(id) << CQE_BUFFER_SHIFT) | CQE_F_BUFFER | if more { CQE_F_MORE } else { 0 }
}
