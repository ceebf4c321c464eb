//! Named outcomes of the port's failed operations, so that callers ask "was it cancelled?"
//! instead of comparing raw `errno` values.
//!
//! Both backends report failures in the kernel's convention (an `errno` inside an
//! [`io::Error`]); these functions name the ones that are not failures of the connection but
//! states of the port: an operation ended by [`Port::cancel`](crate::Port::cancel), a pool
//! operation that found the buffer pool empty. Errors that `std` already names
//! ([`io::ErrorKind::WouldBlock`], [`io::ErrorKind::Interrupted`], ...) are asked through
//! [`io::Error::kind`].

use std::io;

/// The operation was cancelled ([`Port::cancel`](crate::Port::cancel), a shutdown): it ended
/// before it finished, and its connection is not at fault (`ECANCELED`).
pub fn is_cancelled(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED)
}

/// A receive into the buffer pool ([`Op::RecvMulti`](crate::Op::RecvMulti),
/// [`Op::RecvBuf`](crate::Op::RecvBuf)) found the pool empty (`ENOBUFS`): retry once buffers
/// are given back; the connection is not at fault.
pub fn is_pool_empty(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOBUFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_named_by_their_errno_and_nothing_else() {
        let cancelled = io::Error::from_raw_os_error(libc::ECANCELED);
        let empty = io::Error::from_raw_os_error(libc::ENOBUFS);
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        let other = io::Error::other("not an errno");
        assert!(is_cancelled(&cancelled));
        assert!(is_pool_empty(&empty));
        for e in [&empty, &reset, &other] {
            assert!(!is_cancelled(e), "{e}");
        }
        for e in [&cancelled, &reset, &other] {
            assert!(!is_pool_empty(e), "{e}");
        }
    }
}
