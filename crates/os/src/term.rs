//! The terminal (Unix): whether this process may read it now, and waiting for input on a
//! descriptor without reading it.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Whether this process is in the foreground process group of the terminal `fd` refers to:
/// only then may it read that terminal without being stopped (`SIGTTIN`). False when `fd` is
/// not a terminal, or not this process's controlling terminal.
pub fn is_foreground(fd: BorrowedFd<'_>) -> bool {
    match nix::unistd::tcgetpgrp(fd) {
        Ok(terminal) => terminal.as_raw() > 0 && terminal == nix::unistd::getpgrp(),
        Err(_) => false,
    }
}

/// What [`wait_readable`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// A read will not block (it may return 0: end of input, or Ctrl-D on a terminal).
    Readable,
    /// The other end is gone (a terminal hung up, a pipe's writers closed), or `fd` is not
    /// open: reading it is pointless.
    HungUp,
    /// Nothing arrived within the time given (or a signal interrupted the wait).
    TimedOut,
}

/// Waits at most `timeout` (to the millisecond, at most `i32::MAX` ms) for `fd` to become
/// readable (`poll`), without reading: unlike a read, polling a terminal from a background
/// process group does not stop the process.
///
/// # Errors
///
/// When `poll` fails otherwise than by a signal.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<Readiness> {
    let ms = timeout.as_millis().min(i32::MAX as u128);
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Err(nix::errno::Errno::EINTR) => Ok(Readiness::TimedOut),
        Err(e) => Err(e.into()),
        Ok(0) => Ok(Readiness::TimedOut),
        Ok(_) => {
            let gone = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
            Ok(if fds[0].revents().is_some_and(|r| r.intersects(gone)) {
                Readiness::HungUp
            } else {
                Readiness::Readable
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_socket_is_waited_for_then_readable_then_hung_up() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let wait = |s: &UnixStream| wait_readable(s.as_fd(), Duration::from_millis(20)).unwrap();
        assert_eq!(wait(&b), Readiness::TimedOut);
        a.write_all(b"q\n").unwrap();
        assert_eq!(wait(&b), Readiness::Readable);
        drop(a);
        assert_eq!(wait(&b), Readiness::HungUp);
    }

    #[test]
    fn what_is_not_a_terminal_is_not_in_its_foreground() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(!is_foreground(a.as_fd()));
    }
}
