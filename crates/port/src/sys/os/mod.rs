//! Facts and limits of the process that the port's users need, behind safe functions.
//!
//! - this module: open-file limits, the terminal (foreground, readiness), the CPU count;
//! - `windows`: their Windows counterparts, console control, CPU times, `cancel_io`;
//! - `alloc`: [`CountingAlloc`], the counting allocator for tests.

#[cfg(unix)]
use std::io;

/// The soft and hard limits on open files (`RLIMIT_NOFILE`).
#[cfg(unix)]
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets the soft limit on open files, which may not exceed the hard limit.
#[cfg(unix)]
pub fn set_nofile_soft(soft: u64) -> io::Result<()> {
    let (_, hard) = nofile_limit()?;
    let lim = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one rlimit from a live local.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process is in the foreground process group of the terminal `fd` refers to:
/// only then may it read that terminal without being stopped (`SIGTTIN`). False when `fd`
/// is not a terminal, or not this process's controlling terminal.
#[cfg(unix)]
pub fn is_foreground(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: tcgetpgrp only queries the open descriptor `fd`, which the borrow keeps open;
    // getpgrp cannot fail and touches no memory.
    let (terminal, own) = unsafe { (libc::tcgetpgrp(fd.as_raw_fd()), libc::getpgrp()) };
    terminal > 0 && terminal == own
}

/// What [`wait_readable`] saw.
#[cfg(unix)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// A read will not block (it may return 0: end of input, or Ctrl-D on a terminal).
    Readable,
    /// The other end is gone (a terminal hung up, a pipe's writers closed), or `fd` is not
    /// open: reading it is pointless.
    HungUp,
    /// Nothing arrived within the time given.
    TimedOut,
}

/// Waits at most `timeout` for `fd` to become readable (`poll`), without reading: unlike a
/// read, polling a terminal from a background process group does not stop the process.
#[cfg(unix)]
pub fn wait_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: std::time::Duration,
) -> io::Result<Readiness> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: poll reads and writes exactly one pollfd, a live local; `fd` is kept open by
    // the borrow.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(Readiness::TimedOut);
        }
        return Err(e);
    }
    Ok(if n == 0 {
        Readiness::TimedOut
    } else if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        Readiness::HungUp
    } else {
        Readiness::Readable
    })
}

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

/// The number of CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

mod alloc;
pub use alloc::CountingAlloc;
