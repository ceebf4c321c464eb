//! The system calls of the epoll backend, each behind a safe function: the non-blocking
//! attempts at an operation (`recv`, `send`, `sendmsg`, `recvmsg`, `accept4`, `connect`; one
//! datagram with its address), the
//! descriptor flags they need, and the epoll instance itself (create, add, delete, wait).
//!
//! An attempt reports in the kernel's convention: `Some(result)` (bytes or a new fd, or
//! `-errno`) when it finished, `None` when it would block. `EINTR` is retried here.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use std::net::SocketAddr;

use crate::op::{PoolBuf, DGRAM_BATCH, DGRAM_CONTROL_ROOM, DGRAM_HEADROOM, SEND_BUFS_MAX};
use crate::sys::dgram::{pooled_fields, write_account, Control, DgramHdr, NAME_ROOM};
use crate::sys::gather::gather;
use crate::sys::pool::BufPool;
use crate::sys::sockaddr::SockAddrBuf;

/// An attempt's result: finished with a kernel-convention result, or would block.
pub(super) type Attempt = Option<i32>;

/// `-errno` of the last failed call.
fn neg_errno() -> i32 {
    -io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// An attempt's verdict on a system call's return: done with `ret`, or would block.
fn verdict(ret: isize) -> Result<Attempt, ()> {
    if ret >= 0 {
        return Ok(Some(i32::try_from(ret).unwrap_or(i32::MAX)));
    }
    match -neg_errno() {
        libc::EINTR => Err(()),
        libc::EAGAIN => Ok(None),
        e => Ok(Some(-e)),
    }
}

/// `recv(MSG_DONTWAIT)` into the spare capacity of `buf`.
pub(super) fn try_recv(fd: RawFd, buf: &mut Vec<u8>) -> Attempt {
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(i32::MAX as usize);
    loop {
        // SAFETY: the pointer and length describe `buf`'s spare capacity, which is allocated,
        // exclusively borrowed here, and may hold any bytes; recv writes at most `len` of them.
        let ret = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
        if let Ok(attempt) = verdict(ret) {
            return attempt;
        }
    }
}

/// `send(MSG_DONTWAIT | MSG_NOSIGNAL)` of `buf[at..]`: a partial send completes with what it sent.
pub(super) fn try_send(fd: RawFd, buf: &[u8], at: usize) -> Attempt {
    let rest = &buf[at.min(buf.len())..];
    let len = rest.len().min(i32::MAX as usize);
    loop {
        // SAFETY: the pointer and length describe initialised bytes of `rest`, borrowed here;
        // send only reads them.
        let ret = unsafe {
            libc::send(
                fd,
                rest.as_ptr().cast(),
                len,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if let Ok(attempt) = verdict(ret) {
            return attempt;
        }
    }
}

/// `accept4(SOCK_CLOEXEC)` on a listener in non-blocking mode, the peer address into `addr`.
pub(super) fn try_accept(fd: RawFd, addr: &mut SockAddrBuf) -> Attempt {
    loop {
        addr.len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `addr.storage` is a live sockaddr_storage of the size `addr.len` says, both
        // exclusively borrowed; a non-negative result is a new fd whose ownership passes to the
        // completion (adopted by `sys::complete`).
        let ret = unsafe {
            libc::accept4(
                fd,
                (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
                &mut addr.len,
                libc::SOCK_CLOEXEC,
            )
        };
        if let Ok(attempt) = verdict(ret as isize) {
            return attempt;
        }
    }
}

/// The fd's file status flags, or `-errno`.
pub(super) fn get_flags(fd: RawFd) -> Result<i32, i32> {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        Err(neg_errno())
    } else {
        Ok(flags)
    }
}

/// Sets the fd's file status flags, or returns `-errno`.
pub(super) fn set_flags(fd: RawFd, flags: i32) -> Result<(), i32> {
    // SAFETY: F_SETFL takes an integer argument, no pointer.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        Err(neg_errno())
    } else {
        Ok(())
    }
}

/// Starts a connect with `O_NONBLOCK` set for the call only. `None`: in progress.
pub(super) fn start_connect(fd: RawFd, addr: &SockAddrBuf) -> Attempt {
    let flags = match get_flags(fd) {
        Ok(flags) => flags,
        Err(e) => return Some(e),
    };
    let toggled = flags & libc::O_NONBLOCK == 0;
    if toggled {
        if let Err(e) = set_flags(fd, flags | libc::O_NONBLOCK) {
            return Some(e);
        }
    }
    // SAFETY: `addr.storage` holds a socket address of `addr.len` bytes, borrowed for the call.
    let ret = unsafe {
        libc::connect(
            fd,
            (&addr.storage as *const libc::sockaddr_storage).cast(),
            addr.len,
        )
    };
    let result = if ret == 0 {
        Some(0)
    } else {
        match neg_errno() {
            // The connection goes on in the background; its end shows as EPOLLOUT.
            e if e == -libc::EINPROGRESS || e == -libc::EINTR => None,
            e => Some(e),
        }
    };
    if toggled {
        // Best effort: the connect has been started or has failed either way.
        let _ = set_flags(fd, flags);
    }
    result
}

/// How a connect in progress ended: `SO_ERROR`, then whether a peer is there. `None`: not yet.
pub(super) fn finish_connect(fd: RawFd) -> Attempt {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: SO_ERROR writes one c_int into the live local `err`, whose size `len` gives.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Some(neg_errno());
    }
    if err != 0 {
        return Some(-err);
    }
    let mut peer = SockAddrBuf::empty();
    // SAFETY: getpeername writes at most `peer.len` bytes into the live local storage.
    let ret = unsafe {
        libc::getpeername(
            fd,
            (&mut peer.storage as *mut libc::sockaddr_storage).cast(),
            &mut peer.len,
        )
    };
    match ret {
        0 => Some(0),
        _ => match neg_errno() {
            e if e == -libc::ENOTCONN => None,
            e => Some(e),
        },
    }
}

/// `sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL)` of pooled buffers (see [`gather`]): a partial send
/// completes with what it sent.
pub(super) fn try_send_bufs(fd: RawFd, pool: &BufPool, bufs: &[PoolBuf], at: usize) -> Attempt {
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; SEND_BUFS_MAX];
    let mut n = 0;
    gather(pool, bufs, at, |v| {
        iov[n] = v;
        n += 1;
    });
    // SAFETY: msghdr is plain old data; all-zero is valid (no name, no control data).
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = n as _;
    loop {
        // SAFETY: the header points at `n` iovecs on this stack frame, each describing
        // initialised bytes of a pool buffer the caller holds out of the pool; sendmsg only
        // reads them.
        let ret = unsafe { libc::sendmsg(fd, &hdr, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if let Ok(attempt) = verdict(ret) {
            return attempt;
        }
    }
}

/// `recvmsg(MSG_DONTWAIT)` into the buffers `iov` describes.
///
/// The caller promises that every iovec describes memory nothing else reads or writes until
/// this returns (pool buffers it has just taken out of the pool).
pub(super) fn try_recv_iov(fd: RawFd, iov: &mut [libc::iovec]) -> Attempt {
    // SAFETY: msghdr is plain old data; all-zero is valid (no name, no control data).
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = iov.len() as _;
    loop {
        // SAFETY: the header points at the caller's iovecs, each describing memory the caller
        // holds exclusively (see above); recvmsg writes at most what they describe.
        let ret = unsafe { libc::recvmsg(fd, &mut hdr, libc::MSG_DONTWAIT) };
        if let Ok(attempt) = verdict(ret) {
            return attempt;
        }
    }
}

/// `recvmsg(MSG_DONTWAIT | MSG_TRUNC)` of one datagram into the spare capacity of `buf`, its
/// sender into `from` and the segment size of datagrams coalesced (`UDP_GRO`) into `segment`:
/// the datagram's length (more than the spare capacity when it was cut).
pub(super) fn try_recv_from(
    fd: RawFd,
    buf: &mut Vec<u8>,
    from: &mut SockAddrBuf,
    segment: &mut u16,
) -> Attempt {
    let mut dgram = DgramHdr::default();
    let hdr = dgram.for_recv(buf);
    loop {
        // SAFETY: the header on this stack frame points at its own iovec and address storage,
        // and the iovec at `buf`'s spare capacity, which is allocated, exclusively borrowed here
        // and may hold any bytes; recvmsg writes at most what they describe.
        let ret = unsafe { libc::recvmsg(fd, hdr, libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
        if let Ok(attempt) = verdict(ret) {
            if attempt.is_some_and(|r| r >= 0) {
                *from = dgram.addr;
                from.len = dgram.hdr.msg_namelen;
                *segment = dgram.segment();
            }
            return attempt;
        }
    }
}

/// `sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL)` of `buf` as one datagram to `to`, or as datagrams
/// of `segment` bytes (`UDP_SEGMENT`) when not 0.
pub(super) fn try_send_to(fd: RawFd, buf: &[u8], to: &SocketAddr, segment: u16) -> Attempt {
    let mut dgram = DgramHdr::default();
    let hdr = dgram.for_send_raw(buf.as_ptr(), buf.len(), to, segment);
    loop {
        // SAFETY: the header on this stack frame points at its own iovec and address, and the
        // iovec at the initialised bytes of `buf`, borrowed here; sendmsg only reads them.
        let ret = unsafe { libc::sendmsg(fd, hdr, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if let Ok(attempt) = verdict(ret) {
            return attempt;
        }
    }
}

/// `recvmmsg(MSG_DONTWAIT | MSG_TRUNC)` of up to `ids.len()` (at most [`DGRAM_BATCH`])
/// datagrams, the `i`th into pool buffer `ids[i]` laid out as a multishot `recvmsg` fills one
/// (the account written after the call, see [`crate::sys::dgram`]): how many came, with each
/// one's result (the bytes of its buffer used) in `lens`.
///
/// The buffers `ids` must be out of the pool, held by the caller alone.
pub(super) fn try_recv_mmsg(fd: RawFd, pool: &BufPool, ids: &[u16], lens: &mut [i32]) -> Attempt {
    let n = ids.len().min(DGRAM_BATCH).min(lens.len());
    let size = pool.buf_size();
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; DGRAM_BATCH];
    // SAFETY: mmsghdr is plain old data; all-zero is valid (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; DGRAM_BATCH] = unsafe { mem::zeroed() };
    for i in 0..n {
        let (name, control, iov) = pooled_fields(pool.ptr(ids[i]), size);
        iovs[i] = iov;
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = name;
        hdr.msg_namelen = NAME_ROOM as libc::socklen_t;
        hdr.msg_control = control;
        hdr.msg_controllen = DGRAM_CONTROL_ROOM as _;
        hdr.msg_iov = &mut iovs[i];
        hdr.msg_iovlen = 1;
    }
    let got = loop {
        // SAFETY: the first `n` headers on this stack frame point at their iovecs (on this
        // frame) and at the address fields, control fields and datagram rooms of pool buffers
        // `ids`, which are
        // out of the pool and the caller's alone; recvmmsg writes at most what they describe.
        let ret = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if let Ok(attempt) = verdict(ret as isize) {
            break attempt;
        }
    };
    let Some(got) = got.filter(|&got| got > 0) else {
        return got;
    };
    let room = size - DGRAM_HEADROOM;
    for i in 0..got as usize {
        let m = &msgs[i];
        // SAFETY: buffer `ids[i]` is the caller's alone and larger than the headroom (its room
        // above it was described to recvmmsg).
        unsafe {
            write_account(
                pool.ptr(ids[i]),
                m.msg_hdr.msg_namelen,
                m.msg_hdr.msg_controllen as u32,
                m.msg_len,
                m.msg_hdr.msg_flags as u32,
            )
        };
        lens[i] = (DGRAM_HEADROOM + (m.msg_len as usize).min(room)) as i32;
    }
    Some(got)
}

/// `sendmmsg(MSG_DONTWAIT | MSG_NOSIGNAL)` of up to [`DGRAM_BATCH`] datagrams, each the bytes of
/// a pool buffer to an address (several datagrams of the segment size, `UDP_SEGMENT`, when it
/// is not 0): how many were sent (a message is sent whole or not at all), `-errno` when the
/// first could not be, or would block.
pub(super) fn try_send_mmsg(
    fd: RawFd,
    pool: &BufPool,
    dgrams: &[(&PoolBuf, SockAddrBuf, u16)],
) -> Attempt {
    let n = dgrams.len().min(DGRAM_BATCH);
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; DGRAM_BATCH];
    let mut addrs = [SockAddrBuf::empty(); DGRAM_BATCH];
    let mut controls = [Control::EMPTY; DGRAM_BATCH];
    // SAFETY: mmsghdr is plain old data; all-zero is valid (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; DGRAM_BATCH] = unsafe { mem::zeroed() };
    for (i, (buf, to, segment)) in dgrams.iter().take(n).enumerate() {
        let bytes = pool.bytes(buf);
        iovs[i] = libc::iovec {
            iov_base: bytes.as_ptr().cast_mut().cast(),
            iov_len: bytes.len(),
        };
        addrs[i] = *to;
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = (&mut addrs[i].storage as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = addrs[i].len;
        hdr.msg_iov = &mut iovs[i];
        hdr.msg_iovlen = 1;
        if *segment > 0 {
            let controllen = controls[i].segment(*segment);
            hdr.msg_control = controls[i].as_mut_ptr();
            hdr.msg_controllen = controllen as _;
        }
    }
    loop {
        // SAFETY: the first `n` headers on this stack frame point at their iovecs, addresses
        // and control messages (on this frame), the iovecs at the bytes of pool buffers the
        // caller holds (borrowed here); sendmmsg only reads them.
        let ret = unsafe {
            libc::sendmmsg(
                fd,
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if let Ok(attempt) = verdict(ret as isize) {
            return attempt;
        }
    }
}

/// `shutdown(2)`: 0 or `-errno`.
pub(super) fn shutdown(fd: RawFd, how: std::net::Shutdown) -> i32 {
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: shutdown takes no pointers; the caller's handle keeps the fd open.
    match unsafe { libc::shutdown(fd, how) } {
        0 => 0,
        _ => neg_errno(),
    }
}

/// `close(2)` of a descriptor the caller owns: 0 or `-errno`.
pub(super) fn close(fd: OwnedFd) -> i32 {
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    // SAFETY: `raw` was the caller's own descriptor (the last handle on it), so closing it
    // can affect no other owner.
    if unsafe { libc::close(raw) } == 0 {
        0
    } else {
        neg_errno()
    }
}

/// Closes an accepted fd that was never handed out.
pub(super) fn close_unclaimed(fd: i32) {
    // SAFETY: the caller promises `fd` is a new fd from accept4 that nothing else owns.
    unsafe { libc::close(fd) };
}

/// Reads (and so resets) an eventfd's count; `EAGAIN` (already drained) is harmless.
pub(super) fn drain_eventfd(fd: &OwnedFd) {
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into a live local from a non-blocking eventfd the caller holds
    // open.
    unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
}

/// A new epoll instance.
pub(super) fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we own.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `epfd` was just returned by epoll_create1 and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(epfd) })
}

/// Adds `fd` to the epoll set for `events`, reported with `key`: 0 or `-errno`.
pub(super) fn epoll_add(epfd: &OwnedFd, fd: RawFd, events: u32, key: u64) -> i32 {
    let mut ev = libc::epoll_event { events, u64: key };
    // SAFETY: both fds are open (the caller holds a handle on `fd`); the event is a live
    // local the kernel only reads.
    let ret = unsafe { libc::epoll_ctl(epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if ret < 0 {
        neg_errno()
    } else {
        0
    }
}

/// Removes `fd` from the epoll set.
pub(super) fn epoll_del(epfd: &OwnedFd, fd: RawFd) {
    // SAFETY: `fd` is open (the caller's handle keeps it so) and registered; DEL ignores the
    // event pointer, which may be null since Linux 2.6.9.
    unsafe {
        libc::epoll_ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut(),
        )
    };
}

/// One wait for readiness events into `events`, at most `left` long (`None`: no limit).
/// Returns how many events arrived. With `pwait2` the timeout is kept to the nanosecond
/// (`epoll_pwait2`, Linux 5.11+, as a raw system call so that no recent libc is needed); where
/// that call is missing (`ENOSYS`) or filtered out (`EPERM`), `pwait2` is cleared for good and
/// timeouts are rounded up to whole milliseconds (`epoll_wait`).
pub(super) fn epoll_wait(
    epfd: &OwnedFd,
    events: &mut [libc::epoll_event],
    left: Option<Duration>,
    pwait2: &mut bool,
) -> io::Result<usize> {
    let epfd = epfd.as_raw_fd();
    let cap = i32::try_from(events.len()).unwrap_or(i32::MAX);
    if *pwait2 {
        let ts = left.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: epoll_pwait2(epfd, events, maxevents, timeout, sigmask, sigsetsize):
        // `events` is a live buffer of `cap` epoll_events, exclusively borrowed, of which the
        // kernel writes at most `cap`; `ts_ptr` is null or points at a live local timespec
        // it only reads; a null sigmask leaves the signal mask alone (the size is then
        // ignored).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_epoll_pwait2,
                epfd,
                events.as_mut_ptr(),
                cap,
                ts_ptr,
                std::ptr::null::<libc::sigset_t>(),
                0usize,
            )
        };
        if ret >= 0 {
            return Ok(ret as usize);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Older than 5.11, or a seccomp profile that does not know the call.
            Some(libc::ENOSYS | libc::EPERM) => *pwait2 = false,
            _ => return Err(e),
        }
    }
    let ms = match left {
        None => -1,
        Some(d) => i32::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
    };
    // SAFETY: `events` is a live buffer of `cap` epoll_events, exclusively borrowed; the
    // kernel writes at most `cap` of them.
    let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), cap, ms) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sets `O_NONBLOCK` on `fd` (for good): 0 or `-errno`.
pub(super) fn set_nonblocking(fd: RawFd) -> Result<(), i32> {
    get_flags(fd).and_then(|f| set_flags(fd, f | libc::O_NONBLOCK))
}
