//! Datagram operations on Linux: the message header, iovec and address a `recvmsg` or a
//! `sendmsg` of one datagram reads or fills (io_uring reads them while the operation is in
//! flight, so they live boxed in its state; epoll uses one on the stack of each attempt).

use std::mem;
use std::net::SocketAddr;

use crate::sys::sockaddr::SockAddrBuf;

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
