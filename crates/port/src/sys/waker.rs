//! The eventfd that wakes a Linux port from another thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// What wakes a port from another thread: an eventfd that the driver watches (io_uring keeps a
/// read armed on it, epoll has it in its set). [`Poster::post`](crate::Poster::post) queues a
/// value, then calls [`wake`](Waker::wake); the driver then reports a completion named
/// [`WAKE`](crate::token::WAKE).
#[derive(Debug)]
pub(crate) struct Waker {
    fd: OwnedFd,
}

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
