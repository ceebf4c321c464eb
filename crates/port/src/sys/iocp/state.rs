//! What the IOCP driver keeps for an operation in the port's table ([`IocpOp`]): an
//! [`IoState`], boxed, with one [`IoSlot`] (an `OVERLAPPED` and what it points at) per I/O the
//! operation may have in the system at once; once the operation is done and its state back in
//! the driver's stock, an accept's peer or a datagram's sender, inline.

use std::fmt;
use std::mem;
use std::net::SocketAddr;
use std::os::windows::io::OwnedSocket;

use windows_sys::Win32::Networking::WinSock::SOCKADDR_STORAGE;
use windows_sys::Win32::System::IO::OVERLAPPED;

use crate::op::Op;
use crate::sys::sender::Sender;
use crate::sys::OpState;
use crate::table::{InFlight, OpTable};
use crate::token::{Token, WAKE};

use super::sys::{self, AcceptAddrs};

/// An operation in flight, with this driver's state for it.
pub(super) type Entry = InFlight<IocpOp>;
/// The port's operations in flight, with this driver's state for each.
pub(super) type Table = OpTable<IocpOp>;

/// What the IOCP driver keeps for an operation in its table entry.
#[derive(Debug, Default)]
pub(crate) enum IocpOp {
    /// Nothing: a close, a shutdown or a no-op (carried out at submission), or an operation
    /// whose state went back to the driver's stock with nothing to keep.
    #[default]
    Nothing,
    /// The `OVERLAPPED`s and what the system writes while the operation's I/Os are in it.
    Io(Box<IoState>),
    /// The peer of a finished accept or the sender of a finished datagram receive, read from
    /// its state when the state went back to the driver's stock
    /// ([`Driver::reclaim`](crate::sys::Driver::reclaim)), for the port to deliver.
    Peer(Sender),
}

impl IocpOp {
    /// The state of an operation that posts I/O.
    pub(super) fn io(&mut self) -> Option<&mut IoState> {
        match self {
            IocpOp::Io(state) => Some(state),
            _ => None,
        }
    }

    fn peer(&self) -> Option<SocketAddr> {
        match self {
            IocpOp::Io(state) => state.peer,
            IocpOp::Peer(peer) => Some(peer.addr()),
            IocpOp::Nothing => None,
        }
    }
}

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

    /// A one-I/O state for the driver's stock, not yet any operation's: [`IoState::new_one`]
    /// names it when an operation takes it.
    pub(super) fn spare() -> IoState {
        IoState::new(WAKE, 1)
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

impl OpState for IocpOp {
    /// Nothing yet: `IocpDriver::start` takes a state from its stock (or makes one) for an
    /// operation that posts I/O; a close, a shutdown and a no-op need none.
    fn new(_op: &Op) -> IocpOp {
        IocpOp::Nothing
    }

    fn accepted_peer(&self) -> Option<SocketAddr> {
        self.peer()
    }

    fn received_from(&self) -> Option<SocketAddr> {
        self.peer()
    }
}

#[cfg(test)]
mod tests {
    use super::IocpOp;

    /// An operation entry keeps its state in one word or, once the state is back in the
    /// driver's stock, a peer in 24 bytes: no more than an io_uring entry's.
    #[test]
    fn an_operation_state_is_small() {
        assert!(std::mem::size_of::<IocpOp>() <= 24);
    }
}
