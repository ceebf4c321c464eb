//! The IOCP backend (Windows): the port's operations on an I/O completion port.
//!
//! [`IocpDriver`] is the third driver under [the contract](crate::sys#the-driver-contract),
//! an [`AnyDriver`](crate::sys::AnyDriver) variant on Windows; its state for an operation is
//! an [`IoState`](state::IoState) (the operation's `OVERLAPPED`s). This module also holds the
//! port's [`Waker`] on Windows (`PostQueuedCompletionStatus`), the counterpart of the eventfd
//! of `sys/waker.rs`.
//!
//! | IOCP | the port |
//! |---|---|
//! | `CreateIoCompletionPort` (create) | [`Port::new`](crate::Port::new) |
//! | `CreateIoCompletionPort` (associate) | the first operation on a socket, with `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` |
//! | `OVERLAPPED` | one per posted I/O, in the operation's table slot with its buffer and [`Token`](crate::Token) |
//! | `AcceptEx` + `SO_UPDATE_ACCEPT_CONTEXT` + `GetAcceptExSockaddrs` | [`Op::Accept`](crate::Op::Accept); [`Op::AcceptMulti`](crate::Op::AcceptMulti) keeps several outstanding |
//! | `ConnectEx` + `SO_UPDATE_CONNECT_CONTEXT` | [`Op::Connect`](crate::Op::Connect) |
//! | `WSARecv` / `WSASend` | the receives and sends |
//! | `GetQueuedCompletionStatusEx` | [`Port::wait`](crate::Port::wait), in batches |
//! | `PostQueuedCompletionStatus` | [`Poster::post`](crate::Poster::post) (the [`Waker`]) |
//! | `CancelIoEx` | [`Port::cancel`](crate::Port::cancel) |
//!
//! # Layout
//!
//! - this module: the [`Waker`];
//! - [`driver`]: the driver (the policy: starting, completing, emulating multishot operations);
//! - [`state`]: what it keeps for an operation in the port's table;
//! - [`sys`]: the completion port and the Winsock calls, behind functions (the overlapped calls,
//!   which hand the system memory that must outlive them, are `unsafe fn`s).

pub(crate) mod driver;
mod state;
mod sys;

use std::io;

pub(crate) use driver::IocpDriver;
use sys::PortHandle;

/// What wakes a port from another thread: a packet posted to its completion port with
/// `PostQueuedCompletionStatus` (no `OVERLAPPED`), which the driver reports as
/// [`WAKE`](crate::token::WAKE). It owns the port's handle; the driver borrows it.
#[derive(Debug)]
pub(crate) struct Waker {
    port: PortHandle,
}

impl Waker {
    /// A new completion port, its handle in the waker.
    pub fn new() -> io::Result<Waker> {
        Ok(Waker {
            port: PortHandle::new()?,
        })
    }

    /// Posts one packet, waking the port's driver.
    pub fn wake(&self) -> io::Result<()> {
        self.port.post()
    }

    /// The completion port.
    pub(crate) fn port(&self) -> &PortHandle {
        &self.port
    }
}
