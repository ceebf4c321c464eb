//! Datagram operations on Linux: the message header, iovec and address a `recvmsg` or a
//! `sendmsg` of one datagram reads or fills (io_uring reads them while the operation is in
//! flight, so they live boxed in its state; epoll uses one on the stack of each attempt), and
//! the account a datagram received into a pool buffer starts with.
//!
//! # A datagram in a pool buffer
//!
//! [`Op::RecvFromMulti`](crate::Op::RecvFromMulti) receives each datagram into a pool buffer
//! laid out as io_uring's multishot `recvmsg` fills it: an `io_uring_recvmsg_out` (the sender's
//! address length, the control length, the datagram's whole length, the message flags), the
//! sender's address in a field of [`NAME_ROOM`] bytes, then the datagram. The epoll backend's
//! `recvmmsg` writes the same layout ([`write_account`]), so that one reader
//! ([`read_account`]) serves both.

use std::mem;
use std::net::SocketAddr;

use crate::op::DGRAM_HEADROOM;
use crate::sys::sockaddr::SockAddrBuf;

/// The size of io_uring's `io_uring_recvmsg_out`: four `u32`s.
const ACCOUNT: usize = 16;
/// The room for the sender's address in a pool buffer: an IPv6 address (an IPv4 one is shorter).
pub(crate) const NAME_ROOM: usize = mem::size_of::<libc::sockaddr_in6>();
const _: () = assert!(ACCOUNT + NAME_ROOM == DGRAM_HEADROOM);

/// What a datagram receive or send hands the kernel: a message header pointing at one iovec and
/// at a socket address. Boxed by whoever lends it, so that the pointers between its fields stay
/// valid.
pub(crate) struct DgramHdr {
    pub hdr: libc::msghdr,
    pub iov: libc::iovec,
    pub addr: SockAddrBuf,
}

impl Default for DgramHdr {
    fn default() -> DgramHdr {
        DgramHdr {
            // SAFETY: msghdr is plain old data for which all-zero bytes (null pointers, zero
            // lengths) are valid.
            hdr: unsafe { mem::zeroed() },
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            addr: SockAddrBuf::empty(),
        }
    }
}

impl std::fmt::Debug for DgramHdr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DgramHdr({:?})", self.addr)
    }
}

impl DgramHdr {
    /// Points the header at the spare capacity of `buf` and at empty address storage, for a
    /// receive; returns the header. The header must not move until the receive is over.
    pub fn for_recv(&mut self, buf: &mut Vec<u8>) -> *mut libc::msghdr {
        let spare = buf.spare_capacity_mut();
        self.iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        };
        self.addr = SockAddrBuf::empty();
        self.point();
        &mut self.hdr
    }

    /// Points the header at the bytes of `buf` and at the address `to`, for a send; returns the
    /// header. The header must not move until the send is over.
    pub fn for_send(&mut self, buf: &[u8], to: &SocketAddr) -> *const libc::msghdr {
        self.iov = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        self.addr = SockAddrBuf::from_socket_addr(to);
        self.point();
        &self.hdr
    }

    /// A header for a multishot `recvmsg` into pool buffers: no iovec (the kernel picks the
    /// buffer), room for an IPv6 sender, no control data. The header must not move until the
    /// receive is over.
    pub fn for_recv_multi(&mut self) -> *const libc::msghdr {
        // SAFETY: msghdr is plain old data; all-zero is valid (null pointers, zero lengths).
        self.hdr = unsafe { mem::zeroed() };
        self.hdr.msg_namelen = NAME_ROOM as libc::socklen_t;
        &self.hdr
    }

    /// Points the header at `len` bytes at `ptr` (a pool buffer's) and at the address `to`,
    /// for a send; returns the header. The header must not move until the send is over, nor
    /// the bytes change.
    pub fn for_send_raw(
        &mut self,
        ptr: *const u8,
        len: usize,
        to: &SocketAddr,
    ) -> *const libc::msghdr {
        self.iov = libc::iovec {
            iov_base: ptr.cast_mut().cast(),
            iov_len: len,
        };
        self.addr = SockAddrBuf::from_socket_addr(to);
        self.point();
        &self.hdr
    }

    fn point(&mut self) {
        // SAFETY: msghdr is plain old data; zeroing resets the control and flags fields.
        self.hdr = unsafe { mem::zeroed() };
        self.hdr.msg_name = (&mut self.addr.storage as *mut libc::sockaddr_storage).cast();
        self.hdr.msg_namelen = self.addr.len;
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
    }

    /// The sender a finished receive reported (the kernel wrote the address and its length).
    pub fn sender(&self) -> Option<SocketAddr> {
        let mut addr = self.addr;
        addr.len = self.hdr.msg_namelen;
        addr.socket_addr()
    }
}

/// Where a datagram received into the pool buffer at `base` goes: its sender's address field
/// and the room for the datagram (`size` is the buffer's size, above [`DGRAM_HEADROOM`]).
pub(crate) fn pooled_fields(base: *mut u8, size: usize) -> (*mut libc::c_void, libc::iovec) {
    let name = base.wrapping_add(ACCOUNT).cast();
    let iov = libc::iovec {
        iov_base: base.wrapping_add(DGRAM_HEADROOM).cast(),
        iov_len: size.saturating_sub(DGRAM_HEADROOM),
    };
    (name, iov)
}

/// Writes the account of a datagram received into the pool buffer at `base` (whose sender's
/// address and bytes [`pooled_fields`] placed), as io_uring's multishot `recvmsg` writes it.
///
/// # Safety
///
/// `base` must point at a pool buffer of more than [`DGRAM_HEADROOM`] bytes that nothing else
/// reads or writes meanwhile.
pub(crate) unsafe fn write_account(base: *mut u8, namelen: u32, payloadlen: u32, flags: u32) {
    let mut account = [0u8; ACCOUNT];
    account[0..4].copy_from_slice(&namelen.to_ne_bytes());
    account[8..12].copy_from_slice(&payloadlen.to_ne_bytes());
    account[12..16].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: as the caller promises, the first ACCOUNT bytes at `base` are ours to write.
    unsafe { std::ptr::copy_nonoverlapping(account.as_ptr(), base, ACCOUNT) };
}

/// What a datagram receive into a pool buffer reported, from the buffer's first `bytes` (the
/// completion's result): the sender, the datagram's bytes in the buffer (after
/// [`DGRAM_HEADROOM`]) and whether it was cut. `None` when the bytes are too few to hold an
/// account.
pub(crate) fn read_account(bytes: &[u8]) -> Option<(Option<SocketAddr>, usize, bool)> {
    if bytes.len() < DGRAM_HEADROOM {
        return None;
    }
    let word = |i: usize| u32::from_ne_bytes(bytes[i..i + 4].try_into().expect("four bytes"));
    let (namelen, payloadlen, flags) = (word(0) as usize, word(8) as usize, word(12));
    let held = bytes.len() - DGRAM_HEADROOM;
    let truncated = flags & libc::MSG_TRUNC as u32 != 0 || payloadlen > held;
    let mut addr = SockAddrBuf::empty();
    let name = &bytes[ACCOUNT..ACCOUNT + namelen.min(NAME_ROOM)];
    // SAFETY: sockaddr_storage is plain old data larger than NAME_ROOM; the copy writes
    // `name.len() <= NAME_ROOM` bytes at its start, from a slice that does not overlap it.
    unsafe {
        std::ptr::copy_nonoverlapping(
            name.as_ptr(),
            (&mut addr.storage as *mut libc::sockaddr_storage).cast::<u8>(),
            name.len(),
        );
    }
    addr.len = name.len() as libc::socklen_t;
    Some((addr.socket_addr(), held, truncated))
}
