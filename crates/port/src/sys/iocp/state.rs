//! What the IOCP driver keeps for an operation in the port's table: an [`IoState`], boxed,
//! with one [`IoSlot`] (an `OVERLAPPED` and what it points at) per I/O the operation may have
//! in the system at once.

use std::fmt;
use std::mem;
use std::net::SocketAddr;
use std::os::windows::io::OwnedSocket;

use windows_sys::Win32::Networking::WinSock::SOCKADDR_STORAGE;
use windows_sys::Win32::System::IO::OVERLAPPED;

use crate::op::Op;
use crate::sys::OpState;
use crate::table::{InFlight, OpTable};
use crate::token::Token;

use super::sys::{self, AcceptAddrs};

/// An operation in flight, with this driver's state for it.
pub(super) type Entry = InFlight<Option<Box<IoState>>>;
/// The port's operations in flight, with this driver's state for each.
pub(super) type Table = OpTable<Option<Box<IoState>>>;

/// One posted I/O: its `OVERLAPPED` first, so that the `OVERLAPPED` pointer a completion
/// returns is the slot's.
#[repr(C)]
pub(crate) struct IoSlot {
    pub(super) ov: OVERLAPPED,
    pub(super) token: u64,
    pub(super) index: u32,
    /// Posted and its completion not yet dequeued.
    pub(super) pending: bool,
    /// The socket AcceptEx accepts into.
    pub(super) accept: Option<OwnedSocket>,
    /// AcceptEx's output: the local and remote addresses.
    pub(super) addrs: AcceptAddrs,
}

impl IoSlot {
    pub(super) fn new(token: Token, index: u32) -> IoSlot {
        IoSlot {
            ov: sys::fresh_overlapped(),
            token: token.raw(),
            index,
            pending: false,
            accept: None,
            addrs: [0; mem::size_of::<AcceptAddrs>()],
        }
    }

    /// A fresh `OVERLAPPED` for the next I/O of this slot.
    pub(super) fn reset(&mut self) -> *mut OVERLAPPED {
        // The slot is not pending: the system no longer uses it.
        self.ov = sys::fresh_overlapped();
        &mut self.ov
    }
}

/// What an operation keeps in its table entry while the system works on it.
pub(crate) struct IoState {
    /// One per I/O that may be posted at once (boxed slice: never moves, never grows).
    pub(super) slots: Box<[IoSlot]>,
    /// Slots posted and not yet dequeued.
    pub(super) in_system: usize,
    /// Slots whose result waits in the driver's `ready` queue (finished inline).
    pub(super) queued: usize,
    /// WSARecv's flags (in and out).
    pub(super) flags: u32,
    /// A `nowait` receive (its cancellation means "nothing was ready").
    pub(super) nowait: bool,
    /// The caller cancelled the operation.
    pub(super) cancelled: bool,
    /// A multishot operation is ending, with this error once every slot is back.
    pub(super) ending: Option<i32>,
    /// Bytes received so far by a [`Op::RecvMulti`], for its limit.
    pub(super) received: usize,
    /// Where a connect goes (ConnectEx reads it).
    pub(super) target: Option<socket2::SockAddr>,
    /// The peer of a single accept, from GetAcceptExSockaddrs; the sender of a datagram.
    pub(super) peer: Option<SocketAddr>,
    /// Where WSARecvFrom writes a datagram's sender, and its length (in and out).
    pub(super) from: SOCKADDR_STORAGE,
    pub(super) from_len: i32,
}

impl fmt::Debug for IoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoState")
            .field("slots", &self.slots.len())
            .field("in_system", &self.in_system)
            .field("ending", &self.ending)
            .finish_non_exhaustive()
    }
}

impl IoState {
    pub(super) fn new(token: Token, slots: usize) -> IoState {
        IoState::with_slots((0..slots as u32).map(|i| IoSlot::new(token, i)).collect())
    }

    /// The state of a one-I/O operation in `slots`, a finished operation's (its one slot made
    /// fresh), so that no allocation is made.
    pub(super) fn new_one(token: Token, mut slots: Box<[IoSlot]>) -> IoState {
        match slots.first_mut() {
            Some(slot) => *slot = IoSlot::new(token, 0),
            None => slots = Box::new([IoSlot::new(token, 0)]),
        }
        IoState::with_slots(slots)
    }

    fn with_slots(slots: Box<[IoSlot]>) -> IoState {
        IoState {
            slots,
            in_system: 0,
            queued: 0,
            flags: 0,
            nowait: false,
            cancelled: false,
            ending: None,
            received: 0,
            target: None,
            peer: None,
            // SAFETY: SOCKADDR_STORAGE is plain old data for which all-zero bytes are valid.
            from: unsafe { mem::zeroed() },
            from_len: 0,
        }
    }
}

impl OpState for Option<Box<IoState>> {
    /// Nothing yet: `IocpDriver::start` makes (or recycles) the state of an operation that
    /// posts I/O; a close, a shutdown and a no-op need none.
    fn new(_op: &Op) -> Option<Box<IoState>> {
        None
    }

    fn accepted_peer(&self) -> Option<SocketAddr> {
        self.as_ref().and_then(|state| state.peer)
    }

    fn received_from(&self) -> Option<SocketAddr> {
        self.as_ref().and_then(|state| state.peer)
    }
}
