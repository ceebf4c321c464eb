//! Named outcomes of the port's failed operations, so that callers ask "was it cancelled?"
//! instead of comparing raw `errno` values.
//!
//! Every backend reports failures in its system's convention (an `errno` inside an [`io::Error`] on
//! Linux, a Windows error code on Windows); these functions name the ones that are not failures of
//! the connection but states of the port: an operation ended by
//! [`Port::cancel`](crate::Port::cancel), a pool operation that found the buffer pool empty. Errors
//! that `std` already names ([`io::ErrorKind::WouldBlock`], [`io::ErrorKind::Interrupted`], ...)
//! are asked through [`io::Error::kind`].

use std::io;

/// The raw OS error codes the port reports, on each system: `errno` values on Unix, Windows
/// error codes on Windows (what [`io::Error::raw_os_error`] returns). For callers and tests that
/// must compare codes; most should use [`is_cancelled`], [`is_pool_empty`] and
/// [`io::Error::kind`].
pub mod code {
    /// Cancelled: `ECANCELED`; on Windows `ERROR_OPERATION_ABORTED` (995), what CancelIoEx
    /// gives.
    #[cfg(unix)]
    pub const CANCELLED: i32 = libc::ECANCELED;
    /// Cancelled: `ECANCELED`; on Windows `ERROR_OPERATION_ABORTED` (995), what CancelIoEx
    /// gives.
    #[cfg(windows)]
    pub const CANCELLED: i32 = 995;
    /// The buffer pool is empty: `ENOBUFS`; on Windows `WSAENOBUFS` (10055).
    #[cfg(unix)]
    pub const POOL_EMPTY: i32 = libc::ENOBUFS;
    /// The buffer pool is empty: `ENOBUFS`; on Windows `WSAENOBUFS` (10055).
    #[cfg(windows)]
    pub const POOL_EMPTY: i32 = 10055;
    /// Nothing ready for a non-waiting receive: `EAGAIN`; on Windows `WSAEWOULDBLOCK` (10035).
    #[cfg(unix)]
    pub const WOULD_BLOCK: i32 = libc::EAGAIN;
    /// Nothing ready for a non-waiting receive: `EAGAIN`; on Windows `WSAEWOULDBLOCK` (10035).
    #[cfg(windows)]
    pub const WOULD_BLOCK: i32 = 10035;
    /// A caller error (a pooled operation without a pool, an empty send list): `EINVAL`; on
    /// Windows `WSAEINVAL` (10022).
    #[cfg(unix)]
    pub const INVALID: i32 = libc::EINVAL;
    /// A caller error (a pooled operation without a pool, an empty send list): `EINVAL`; on
    /// Windows `WSAEINVAL` (10022).
    #[cfg(windows)]
    pub const INVALID: i32 = 10022;
}

/// The operation was cancelled ([`Port::cancel`](crate::Port::cancel), a shutdown): it ended
/// before it finished, and its connection is not at fault (`ECANCELED`; on Windows
/// `ERROR_OPERATION_ABORTED`).
pub fn is_cancelled(e: &io::Error) -> bool {
    e.raw_os_error() == Some(code::CANCELLED)
}

/// A receive into the buffer pool ([`Op::RecvMulti`](crate::Op::RecvMulti),
/// [`Op::RecvBuf`](crate::Op::RecvBuf)) found the pool empty (`ENOBUFS`): retry once buffers
/// are given back; the connection is not at fault.
pub fn is_pool_empty(e: &io::Error) -> bool {
    e.raw_os_error() == Some(code::POOL_EMPTY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_named_by_their_errno_and_nothing_else() {
        let cancelled = io::Error::from_raw_os_error(code::CANCELLED);
        let empty = io::Error::from_raw_os_error(code::POOL_EMPTY);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
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
