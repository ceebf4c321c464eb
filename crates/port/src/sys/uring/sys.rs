//! The io_uring driver's raw parts, each behind a function: the submission-queue push (the one
//! place where an entry's pointers are handed to the kernel), the submission-entry fields the
//! io-uring crate does not expose, and the system calls of the start-up probes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{squeue, IoUring};

/// Where `len` lies in `struct io_uring_sqe` (a multishot receive's per-invocation byte cap on
/// Linux 6.16+, which `RecvMultiBundle` does not expose).
const SQE_LEN: usize = 24;
/// Where `optlen` (shared with `file_index`) lies: a multishot receive's total byte limit on
/// Linux 6.16+, which the io-uring crate does not expose.
const SQE_OPTLEN: usize = 44;

/// `entry` with the 32-bit field at byte `offset` of the submission entry set to `value`.
fn with_sqe_u32(mut entry: squeue::Entry, offset: usize, value: u32) -> squeue::Entry {
    const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);
    assert!(offset == SQE_LEN || offset == SQE_OPTLEN);
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around exactly one `io_uring_sqe`, the kernel's
    // 64-byte submission entry (asserted above), so viewing it as 64 bytes is sound; the
    // offsets allowed are those of its `len` and `optlen` fields, 4 bytes each.
    let bytes = unsafe { &mut *(&mut entry as *mut squeue::Entry).cast::<[u8; 64]>() };
    bytes[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
    entry
}

/// `entry` with `sqe->len` set to `value`.
pub(super) fn with_sqe_len(entry: squeue::Entry, value: u32) -> squeue::Entry {
    with_sqe_u32(entry, SQE_LEN, value)
}

/// `entry` with `sqe->optlen` set to `value`.
pub(super) fn with_sqe_optlen(entry: squeue::Entry, value: u32) -> squeue::Entry {
    with_sqe_u32(entry, SQE_OPTLEN, value)
}

/// Puts `entry` in `ring`'s submission queue; `false` when the queue is full.
///
/// # Safety
///
/// Every pointer in `entry` (buffers, addresses, headers, timeouts) must stay valid, and the
/// memory it names unmoved and untouched by anything the kernel could race with, until the
/// entry's completion has been reaped (or the ring is dropped).
pub(super) unsafe fn push(ring: &mut IoUring, entry: &squeue::Entry) -> bool {
    // SAFETY: as the caller promises.
    unsafe { ring.submission().push(entry) }.is_ok()
}

/// A connected pair of local stream sockets, non-blocking and close-on-exec.
pub(super) fn local_pair(kind: libc::c_int) -> io::Result<[OwnedFd; 2]> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: socketpair writes two fds into the live local array.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created by socketpair and are owned by nobody else.
    Ok(unsafe { [OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])] })
}

/// `write(2)` of `data` to `fd`: the bytes written.
pub(super) fn write(fd: &OwnedFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: writes `data.len()` bytes from a live slice to a descriptor the borrow keeps open.
    let wrote = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    usize::try_from(wrote).map_err(|_| io::Error::last_os_error())
}
