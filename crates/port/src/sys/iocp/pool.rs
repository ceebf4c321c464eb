//! The port's buffer pool on Windows: fixed-size buffers, one allocation, a free list.
//!
//! The same contract as the Linux pool (`sys/pool.rs`) without the kernel's provided-buffer
//! ring: IOCP has no such thing, so the driver takes a buffer when it posts a pooled receive
//! (as io_uring does where the kernel refuses the ring). A buffer is **free** (on the list, or
//! lent to a posted WSARecv, which may write into it until its completion is dequeued) or
//! **out** (held by the caller as a [`PoolBuf`]).

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;

use crate::errors::code;
use crate::op::PoolBuf;

/// The most buffers a pool may have (buffer ids are 16 bits; the Linux pool's limit).
pub(crate) const MAX_BUFFERS: u16 = 1 << 15;

pub(crate) struct BufPool {
    base: NonNull<u8>,
    layout: Layout,
    size: usize,
    count: u16,
    free: Vec<u16>,
    out: usize,
    peak: usize,
}

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufPool")
            .field("size", &self.size)
            .field("count", &self.count)
            .field("out", &self.out)
            .finish()
    }
}

impl BufPool {
    /// `count` buffers of `size` bytes, all free; the memory is zeroed by the system lazily.
    pub fn new(count: u16, size: usize) -> io::Result<BufPool> {
        let invalid = || io::Error::from_raw_os_error(code::INVALID);
        if count == 0 || count > MAX_BUFFERS || size == 0 || size > i32::MAX as usize {
            return Err(invalid());
        }
        let total = size.checked_mul(usize::from(count)).ok_or_else(invalid)?;
        let layout = Layout::from_size_align(total, 16).map_err(|_| invalid())?;
        // SAFETY: the layout has a non-zero size (count and size are non-zero).
        let base = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(base).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(BufPool {
            base,
            layout,
            size,
            count,
            free: (0..count).rev().collect(),
            out: 0,
            peak: 0,
        })
    }

    /// Never: IOCP has no provided-buffer ring.
    pub fn has_ring(&self) -> bool {
        false
    }

    pub fn buf_size(&self) -> usize {
        self.size
    }

    pub fn available(&self) -> usize {
        usize::from(self.count) - self.out
    }

    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Where buffer `id` starts.
    pub fn ptr(&self, id: u16) -> *mut u8 {
        debug_assert!(id < self.count);
        self.base.as_ptr().wrapping_add(usize::from(id) * self.size)
    }

    /// Takes a free buffer for a receive, counting it out.
    pub fn take(&mut self) -> Option<u16> {
        let id = self.free.pop()?;
        self.out += 1;
        self.peak = self.peak.max(self.out);
        Some(id)
    }

    /// Puts back a buffer taken with [`take`](Self::take) that received nothing.
    pub fn untake(&mut self, id: u16) {
        self.out -= 1;
        self.free.push(id);
    }

    /// A completion hands buffer `id` (taken by the driver) holding `len` bytes to the caller.
    pub fn hand_out(&mut self, id: u16, len: usize) -> PoolBuf {
        PoolBuf::new(id, len.min(self.size) as u32)
    }

    pub fn bytes(&self, buf: &PoolBuf) -> &[u8] {
        assert!(buf.id() < self.count, "a buffer of another pool");
        // SAFETY: the buffer is out (the caller holds its only handle), so no receive writes
        // into it; its first `len` bytes were written by a receive (or are zero from the
        // allocation), and `len <= size` keeps the slice inside buffer `id`.
        unsafe { std::slice::from_raw_parts(self.ptr(buf.id()), buf.len()) }
    }

    pub fn append(&mut self, dst: &mut PoolBuf, src: &PoolBuf) -> bool {
        assert!(
            dst.id() < self.count && src.id() < self.count,
            "a buffer of another pool"
        );
        let (at, n) = (dst.len(), src.len());
        if at + n > self.size || dst.id() == src.id() {
            return false;
        }
        // SAFETY: both buffers are out and distinct, so the ranges do not overlap and nothing
        // else touches them; `src`'s first `n` bytes are initialised, and `at + n <= size`
        // keeps the copy inside buffer `dst`.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr(src.id()), self.ptr(dst.id()).add(at), n) };
        dst.set_len((at + n) as u32);
        true
    }

    pub fn give_back(&mut self, buf: PoolBuf) {
        let id = buf.id();
        assert!(id < self.count, "a buffer of another pool");
        self.out = self.out.saturating_sub(1);
        self.free.push(id);
    }
}

impl Drop for BufPool {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the port drains (or leaks) every
        // operation that could still write into a buffer before its pool is dropped.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}
