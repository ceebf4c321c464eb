//! What an operation names as its socket: a descriptor of the process, or (io_uring) a direct
//! descriptor, a slot of one ring's registered file table that has no descriptor number.
//!
//! A direct descriptor is what an accept on a port with direct accepts
//! ([`Port::accept_direct`](crate::Port::accept_direct)) gives: the kernel installs the new
//! socket in the ring's file table instead of the process's, and every operation on it names
//! the slot (`IOSQE_FIXED_FILE`), so no operation looks a descriptor up or takes and drops a
//! reference on its file. It belongs to the ring that accepted it and means nothing to any other
//! port or system call: it has no descriptor number ([`Socket::real`] is `None`, and
//! `as_raw_fd` is -1, which every system call refuses with `EBADF`). Options it needs are set on
//! the listener, which accepted sockets inherit. Closed by [`Op::Close`](crate::Op::Close) like
//! any socket (the kernel closes the slot); a direct socket dropped without one has its slot
//! closed by its port's next wait.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::op::OwnedFd;

/// A socket operations name: a descriptor of the process, or a slot of a ring's file table.
pub struct Socket {
    repr: Repr,
}

enum Repr {
    Fd(OwnedFd),
    #[cfg_attr(not(unix), allow(dead_code))]
    Direct(Direct),
}

/// A slot of a ring's registered file table, closed by its ring when dropped.
pub(crate) struct Direct {
    pub slot: u32,
    /// `None` once the slot's closing is its owner's ([`Socket::into_slot`]).
    table: Option<Arc<DirectTable>>,
}

impl Direct {
    /// Whether this slot is one of `table`'s.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub fn of(&self, table: &Arc<DirectTable>) -> bool {
        self.table.as_ref().is_some_and(|t| Arc::ptr_eq(t, table))
    }
}

/// What direct sockets share with the ring whose file table holds them: the slots of sockets
/// dropped without a close, which the ring closes at its next wait. Shared with the sockets
/// (which may outlive their port, or move to another thread: then the ring's own teardown
/// closes every slot).
#[derive(Debug, Default)]
pub(crate) struct DirectTable {
    orphans: Mutex<Vec<u32>>,
}

impl DirectTable {
    /// Takes the slots of the sockets dropped since the last call into `out`.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub fn take_orphans(&self, out: &mut Vec<u32>) {
        let mut orphans = self.orphans.lock().unwrap_or_else(|p| p.into_inner());
        out.append(&mut orphans);
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        if let Some(table) = self.table.take() {
            let mut orphans = table.orphans.lock().unwrap_or_else(|p| p.into_inner());
            orphans.push(self.slot);
        }
    }
}

impl Socket {
    /// The socket in slot `slot` of the file table `table`.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn direct(slot: u32, table: Arc<DirectTable>) -> Socket {
        Socket {
            repr: Repr::Direct(Direct {
                slot,
                table: Some(table),
            }),
        }
    }

    /// The process's descriptor, `None` for a direct descriptor (which has none: see the
    /// [module](self)).
    pub fn real(&self) -> Option<&OwnedFd> {
        match &self.repr {
            Repr::Fd(fd) => Some(fd),
            Repr::Direct(_) => None,
        }
    }

    /// Whether this is a direct descriptor, a slot of a ring's file table.
    pub fn is_direct(&self) -> bool {
        matches!(self.repr, Repr::Direct(_))
    }

    /// The slot and table of a direct descriptor.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn as_direct(&self) -> Option<&Direct> {
        match &self.repr {
            Repr::Direct(d) => Some(d),
            Repr::Fd(_) => None,
        }
    }

    /// The process's descriptor, taken out; a direct descriptor comes back as it is.
    pub fn into_real(self) -> Result<OwnedFd, Socket> {
        match self.repr {
            Repr::Fd(fd) => Ok(fd),
            repr @ Repr::Direct(_) => Err(Socket { repr }),
        }
    }

    /// A direct descriptor's slot, taken out: its owner now closes the slot itself (its drop
    /// no longer does). `Err` for a process descriptor.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn into_slot(self) -> Result<u32, Socket> {
        match self.repr {
            Repr::Direct(mut d) => {
                // Closed by the caller: not an orphan when `d` drops.
                d.table = None;
                Ok(d.slot)
            }
            repr @ Repr::Fd(_) => Err(Socket { repr }),
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Fd(fd) => f.debug_tuple("Socket").field(fd).finish(),
            Repr::Direct(d) => f.debug_struct("Socket").field("slot", &d.slot).finish(),
        }
    }
}

impl From<OwnedFd> for Socket {
    fn from(fd: OwnedFd) -> Socket {
        Socket { repr: Repr::Fd(fd) }
    }
}

/// Sockets of the standard library and `socket2` become process descriptors.
macro_rules! from_socket {
    ($($t:ty),*) => {$(
        impl From<$t> for Socket {
            fn from(s: $t) -> Socket {
                Socket::from(OwnedFd::from(s))
            }
        }
    )*};
}
from_socket!(
    std::net::TcpListener,
    std::net::TcpStream,
    std::net::UdpSocket,
    socket2::Socket
);

/// The descriptor number, -1 for a direct descriptor (every system call refuses it, `EBADF`).
#[cfg(unix)]
impl std::os::fd::AsRawFd for Socket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match &self.repr {
            Repr::Fd(fd) => std::os::fd::AsRawFd::as_raw_fd(fd),
            Repr::Direct(_) => -1,
        }
    }
}

/// The socket handle (Windows has no direct descriptors).
#[cfg(windows)]
impl std::os::windows::io::AsRawSocket for Socket {
    fn as_raw_socket(&self) -> std::os::windows::io::RawSocket {
        match &self.repr {
            Repr::Fd(fd) => std::os::windows::io::AsRawSocket::as_raw_socket(fd),
            Repr::Direct(_) => std::os::windows::io::RawSocket::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct socket dropped without a close leaves its slot for its ring to close; one whose
    /// slot was taken out (a close queued by slot) leaves nothing.
    #[test]
    fn a_dropped_direct_socket_leaves_its_slot_to_close_and_a_closed_one_does_not() {
        let table = Arc::new(DirectTable::default());
        let dropped = Socket::direct(3, Arc::clone(&table));
        let closed = Socket::direct(5, Arc::clone(&table));
        assert!(dropped.is_direct() && dropped.real().is_none());
        assert!(dropped.as_direct().is_some_and(|d| d.of(&table)));
        let other = Arc::new(DirectTable::default());
        assert!(!dropped.as_direct().is_some_and(|d| d.of(&other)));
        assert_eq!(closed.into_slot().ok(), Some(5));
        drop(dropped);
        let mut orphans = Vec::new();
        table.take_orphans(&mut orphans);
        assert_eq!(orphans, [3]);
        table.take_orphans(&mut orphans);
        assert_eq!(orphans, [3], "taken once");
        assert_eq!(Arc::strong_count(&table), 1, "no socket holds the table");
    }

    #[cfg(unix)]
    #[test]
    fn a_process_descriptor_is_real_and_not_direct() {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let raw = listener.as_raw_fd();
        let socket = Socket::from(listener);
        assert!(!socket.is_direct());
        assert_eq!(socket.as_raw_fd(), raw);
        assert_eq!(socket.real().map(AsRawFd::as_raw_fd), Some(raw));
        let socket = Socket::from(socket.into_real().unwrap());
        assert!(socket.into_slot().is_err());
    }
}
