//! The io_uring driver's raw parts, each behind a function: the submission-queue push (the one
//! place where an entry's pointers are handed to the kernel), the submission-entry fields the
//! io-uring crate does not expose, the system calls of the start-up probes, and the ring's
//! registered descriptor (`IORING_REGISTER_RING_FDS`, entered with
//! `IORING_ENTER_REGISTERED_RING`), which the io-uring crate keeps only per `Submitter` value.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{squeue, IoUring};

/// `IORING_REGISTER_RING_FDS` (Linux 5.18).
const REGISTER_RING_FDS: libc::c_uint = 20;
/// `IORING_UNREGISTER_RING_FDS` (Linux 5.18).
const UNREGISTER_RING_FDS: libc::c_uint = 21;
/// `IORING_ENTER_GETEVENTS`: wait for (and, with `DEFER_TASKRUN`, produce) completions.
pub(super) const ENTER_GETEVENTS: u32 = 1;
/// `IORING_ENTER_REGISTERED_RING` (Linux 5.18): the descriptor argument is an index in the
/// calling thread's table of registered rings.
const ENTER_REGISTERED_RING: u32 = 16;
/// `_NSIG / 8`: the signal-mask size `io_uring_enter` is given without a mask (as liburing).
const SIGSET_SIZE: usize = 8;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// `io_uring_register(ring, opcode, update, 1)`.
fn register_one(ring: &IoUring, opcode: libc::c_uint, update: &mut RsrcUpdate) -> io::Result<()> {
    // SAFETY: the register opcodes used here read and write one `io_uring_rsrc_update`, which
    // `update` is (`#[repr(C)]`, the kernel's layout), alive for the call; the descriptor is the
    // ring's, open while `ring` is borrowed.
    let res = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            opcode,
            (update as *mut RsrcUpdate).cast::<libc::c_void>(),
            1 as libc::c_uint,
        )
    };
    match res {
        1 => Ok(()),
        r if r < 0 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// Registers `ring`'s descriptor in the calling thread's table of registered rings (Linux
/// 5.18+, at most 16 per thread): the index to enter it by, from this thread only. Undone by
/// [`unregister_ring`] (or when the thread exits; until then the registration keeps the ring).
pub(super) fn register_ring(ring: &IoUring) -> io::Result<u32> {
    let mut update = RsrcUpdate {
        // Any free index.
        offset: u32::MAX,
        resv: 0,
        data: u64::try_from(ring.as_raw_fd())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
    };
    register_one(ring, REGISTER_RING_FDS, &mut update)?;
    Ok(update.offset)
}

/// Undoes [`register_ring`] for the index it gave.
pub(super) fn unregister_ring(ring: &IoUring, index: u32) -> io::Result<()> {
    let mut update = RsrcUpdate {
        offset: index,
        resv: 0,
        data: 0,
    };
    register_one(ring, UNREGISTER_RING_FDS, &mut update)
}

/// `io_uring_enter` of the ring registered at `index` by this thread: submits `to_submit`
/// entries and, with [`ENTER_GETEVENTS`] in `flags`, waits for `min_complete` completions.
pub(super) fn enter_registered(
    index: u32,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
) -> io::Result<usize> {
    // SAFETY: no pointer is passed (no signal mask, no extended argument): the kernel reads
    // nothing of this process's memory but the rings it mapped itself; the entries it consumes
    // were vouched for when they were pushed (`push`).
    let res = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            index,
            to_submit,
            min_complete,
            flags | ENTER_REGISTERED_RING,
            std::ptr::null::<libc::c_void>(),
            SIGSET_SIZE,
        )
    };
    usize::try_from(res).map_err(|_| io::Error::last_os_error())
}

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
