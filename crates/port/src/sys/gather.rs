//! Gathered sends of pooled buffers: their iovecs, and io_uring's message header for them.

use std::mem;

use crate::op::PoolBuf;
use crate::sys::pool::BufPool;

/// The message header and iovecs of a gathered send ([`Op::SendBufs`](crate::Op::SendBufs) on
/// io_uring), which the kernel reads while the operation is in flight: boxed by the table, so it
/// never moves.
pub(crate) struct MsgBuf {
    pub hdr: libc::msghdr,
    pub iov: Vec<libc::iovec>,
}

impl Default for MsgBuf {
    fn default() -> MsgBuf {
        MsgBuf {
            // SAFETY: msghdr is plain old data for which all-zero bytes (null pointers, zero
            // lengths) are valid.
            hdr: unsafe { mem::zeroed() },
            iov: Vec::new(),
        }
    }
}

impl std::fmt::Debug for MsgBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MsgBuf({} iovecs)", self.iov.len())
    }
}

impl MsgBuf {
    /// Points the header at the iovecs of `bufs` (see [`gather`]); returns the header.
    pub fn fill(&mut self, pool: &BufPool, bufs: &[PoolBuf], at: usize) -> *const libc::msghdr {
        self.iov.clear();
        gather(pool, bufs, at, |iov| self.iov.push(iov));
        // SAFETY: msghdr is plain old data; zeroing resets the name and control fields.
        self.hdr = unsafe { mem::zeroed() };
        self.hdr.msg_iov = self.iov.as_mut_ptr();
        self.hdr.msg_iovlen = self.iov.len() as _;
        &self.hdr
    }
}

/// The iovecs of a gathered send, in order: `bufs[0][at..]`, then every later buffer whole,
/// at most [`SEND_BUFS_MAX`](crate::op::SEND_BUFS_MAX) of them; empty ranges are skipped.
pub(crate) fn gather(
    pool: &BufPool,
    bufs: &[PoolBuf],
    at: usize,
    mut push: impl FnMut(libc::iovec),
) {
    for (k, buf) in bufs.iter().take(crate::op::SEND_BUFS_MAX).enumerate() {
        let skip = if k == 0 { at.min(buf.len()) } else { 0 };
        let bytes = &pool.bytes(buf)[skip..];
        if !bytes.is_empty() {
            push(libc::iovec {
                iov_base: bytes.as_ptr().cast_mut().cast(),
                iov_len: bytes.len(),
            });
        }
    }
}
