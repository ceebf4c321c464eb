//! The port's buffer pool: fixed-size buffers that receives take only when bytes arrive.
//!
//! One allocation of `count * size` bytes, owned by the port and never moved. A buffer is in one
//! of two places at any moment:
//!
//! - **free**: in the kernel's provided-buffer ring (io_uring with `IORING_REGISTER_PBUF_RING`,
//!   Linux 5.19+), or on the pool's own free list (the epoll backend, and io_uring when the
//!   kernel refuses the ring). Nobody may read it: the kernel may be writing into it.
//! - **out**: handed to the caller as a [`PoolBuf`] inside a completion. The handle is not
//!   `Clone`, so exactly one owner reads it ([`Port::buf`](crate::Port::buf)), sends it
//!   ([`Op::SendBuf`](crate::Op::SendBuf)), and gives it back
//!   ([`Port::give_back`](crate::Port::give_back)), which makes it free again.
//!
//! A handle that is dropped instead of given back shrinks the pool by one buffer (nothing
//! unsafe happens: the memory simply stays out).
//!
//! # The ring
//!
//! The ring is an array of `io_uring_buf` entries (address, length, buffer id), a power of two
//! long, page-aligned, shared with the kernel. The application adds free buffers at the tail
//! (the last 16 bits of the first entry, published with a release store); the kernel takes them
//! from the head as data arrives. A multishot receive that finds the ring empty ends with
//! `ENOBUFS`.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
#[cfg(unix)]
use std::sync::atomic::AtomicU16;
use std::sync::atomic::{AtomicU32, Ordering};

#[cfg(unix)]
use io_uring::types::BufRingEntry;
#[cfg(unix)]
use io_uring::Submitter;

use crate::errors::code;
use crate::op::PoolBuf;

/// The buffer group id of the port's ring (one ring per port).
#[cfg(unix)]
pub(crate) const BGID: u16 = 0;

/// The most buffers a pool may hold (the kernel caps a ring at 2^15 entries).
pub(crate) const MAX_BUFFERS: u16 = 1 << 15;

/// The fewest buffers the kernel's ring is kept at (see [`BufPool::refill`]).
const RING_MIN: usize = 64;
/// The ring's working set at first.
const RING_START: usize = 256;

/// The kernel's provided-buffer ring: none on Windows (IOCP has no such thing: the driver
/// takes a buffer per receive, as io_uring does where the kernel refuses the ring).
#[cfg(windows)]
enum BufRing {}

/// The kernel's provided-buffer ring: entries shared with the kernel, and our tail.
#[cfg(unix)]
struct BufRing {
    base: NonNull<BufRingEntry>,
    layout: Layout,
    mask: u16,
    tail: u16,
    /// Which buffer each ring entry was last given (by ring index), and where each buffer was
    /// last put (by buffer id): a bundle's completion names only its first buffer, the others
    /// are the entries after it, in ring order.
    bid_at: Vec<u16>,
    at_of: Vec<u16>,
}

/// Where a buffer is: followed for every buffer, so that a handle is honoured only for a
/// buffer that is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On the pool's stack (or never pushed).
    Free,
    /// In the kernel's ring.
    Ring,
    /// Handed out by a completion.
    Out,
}

/// Where the bytes of one receive lie: see [`BufPool::bundle`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bundle {
    first: u16,
    /// The ring position of the first buffer.
    #[cfg_attr(windows, allow(dead_code))]
    start: u16,
    /// How many buffers the bytes fill.
    pub parts: usize,
    /// Bytes in the first buffer.
    head: usize,
    /// Bytes in all.
    len: usize,
}

/// The next pool's serial number (from 1: 0 is no pool's).
static NEXT_SERIAL: AtomicU32 = AtomicU32::new(1);

/// Fixed-size buffers owned by a port.
pub(crate) struct BufPool {
    base: NonNull<u8>,
    layout: Layout,
    size: usize,
    count: u16,
    /// Free buffers not in the kernel's ring: all of them without a ring; with one, the
    /// reserve beyond the ring's working set. A stack: the buffer given back last, still warm
    /// in the cache, is used first.
    free: Vec<u16>,
    ring: Option<BufRing>,
    /// Buffers in the kernel's ring (published and not yet taken by a receive).
    in_ring: usize,
    /// How many buffers the ring is kept at (see [`refill`](Self::refill)).
    target: usize,
    /// Buffers the kernel took from the ring since the last refill.
    taken: usize,
    /// Where each buffer is: a buffer handed out must have been in the ring (or taken by the
    /// driver), one given back, read or sent must be out, one pushed must have been neither.
    place: Vec<Place>,
    /// This pool's serial number, which its handles carry: a handle of another pool (another
    /// port's, or one dropped before) is refused, never taken for one of this pool's buffers.
    serial: u32,
    /// Buffers handed to the caller and not given back yet.
    out: usize,
    /// The most buffers out at once.
    peak: usize,
}

impl std::fmt::Debug for BufPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufPool")
            .field("size", &self.size)
            .field("count", &self.count)
            .field("out", &self.out)
            .field("ring", &self.ring.is_some())
            .finish()
    }
}

impl BufPool {
    /// `count` buffers of `size` bytes, all free (on the pool's own list until a ring is
    /// attached). The memory is zeroed lazily by the system (fresh pages), so a buffer costs no
    /// resident memory until it is first used.
    pub fn new(count: u16, size: usize) -> io::Result<BufPool> {
        if count == 0 || count > MAX_BUFFERS || size == 0 || size > i32::MAX as usize {
            return Err(io::Error::from_raw_os_error(code::INVALID));
        }
        let total = size
            .checked_mul(usize::from(count))
            .ok_or_else(|| io::Error::from_raw_os_error(code::INVALID))?;
        // Aligned for any receive, and no more: a stricter alignment would make the allocator
        // zero the memory by hand (touching every page) instead of taking fresh zero pages.
        let layout = Layout::from_size_align(total, 16)
            .map_err(|_| io::Error::from_raw_os_error(code::INVALID))?;
        // SAFETY: the layout has a non-zero size (count and size are non-zero).
        let base = unsafe { alloc::alloc_zeroed(layout) };
        let base = NonNull::new(base).ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(BufPool {
            base,
            layout,
            size,
            count,
            // Handed out from the end: buffer 0 first.
            free: (0..count).rev().collect(),
            ring: None,
            in_ring: 0,
            target: usize::from(count).min(RING_START),
            taken: 0,
            place: vec![Place::Free; usize::from(count)],
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed).max(1),
            out: 0,
            peak: 0,
        })
    }

    /// Registers a provided-buffer ring with `submitter`'s io_uring as group [`BGID`] and moves
    /// every free buffer into it. On error (a kernel before 5.19, or one that refuses) the pool
    /// keeps its own free list and nothing changes.
    #[cfg(unix)]
    pub fn attach_ring(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        let entries = self.count.next_power_of_two();
        let bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        let layout = Layout::from_size_align(bytes.max(4096), 4096)
            .map_err(|_| io::Error::from_raw_os_error(code::INVALID))?;
        // SAFETY: the layout has a non-zero size.
        let ring = unsafe { alloc::alloc_zeroed(layout) };
        let ring = NonNull::new(ring.cast::<BufRingEntry>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: `ring` is a page-aligned, zeroed allocation of `entries` io_uring_buf entries
        // (the tail starts at 0), which lives until `Drop` for BufPool; the port drops its ring
        // (the io_uring) before its pool, so the kernel never uses the memory after that.
        let registered = unsafe {
            submitter.register_buf_ring_with_flags(ring.as_ptr() as u64, entries, BGID, 0)
        };
        if let Err(e) = registered {
            // SAFETY: allocated above with this layout, never shared with the kernel.
            unsafe { alloc::dealloc(ring.as_ptr().cast(), layout) };
            return Err(e);
        }
        self.ring = Some(BufRing {
            base: ring,
            layout,
            mask: entries - 1,
            tail: 0,
            bid_at: vec![0; usize::from(entries)],
            at_of: vec![0; usize::from(self.count)],
        });
        self.refill();
        Ok(())
    }

    /// Whether the kernel selects the buffers itself (a provided-buffer ring is registered).
    pub fn has_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// The size of every buffer.
    pub fn buf_size(&self) -> usize {
        self.size
    }

    /// Buffers free (in the ring or on the free list).
    pub fn available(&self) -> usize {
        usize::from(self.count) - self.out
    }

    /// The most buffers out at once so far.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// How many buffers the pool has.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Where buffer `id` starts.
    pub fn ptr(&self, id: u16) -> *mut u8 {
        debug_assert!(id < self.count);
        self.base.as_ptr().wrapping_add(usize::from(id) * self.size)
    }

    /// Takes a free buffer from the pool's own list (not the ring's), counting it out.
    pub fn take(&mut self) -> Option<u16> {
        let id = self.free.pop()?;
        self.moved(id, Place::Free, Place::Out);
        self.out += 1;
        self.peak = self.peak.max(self.out);
        Some(id)
    }

    /// Puts back a buffer taken with [`take`](Self::take) that received nothing.
    pub fn untake(&mut self, id: u16) {
        self.moved(id, Place::Out, Place::Free);
        self.out -= 1;
        self.free.push(id);
    }

    /// A completion handed buffer `id` holding `len` bytes to the caller (the kernel selected
    /// it from the ring, or the driver took it).
    pub fn hand_out(&mut self, id: u16, len: usize, from_ring: bool) -> PoolBuf {
        if from_ring {
            self.moved(id, Place::Ring, Place::Out);
            self.out += 1;
            self.peak = self.peak.max(self.out);
            self.in_ring = self.in_ring.saturating_sub(1);
            self.taken += 1;
        } else {
            assert_eq!(
                self.place[usize::from(id)],
                Place::Out,
                "pool buffer {id} not taken"
            );
        }
        PoolBuf::new(self.serial, id, len.min(self.size) as u32)
    }

    /// Whether `buf` is a handle of this pool's, on a buffer that is out: the only buffers the
    /// caller may read, send or give back.
    pub fn owns(&self, buf: &PoolBuf) -> bool {
        buf.pool() == self.serial
            && buf.id() < self.count
            && self.place[usize::from(buf.id())] == Place::Out
    }

    /// The bytes a handed-out buffer holds.
    pub fn bytes(&self, buf: &PoolBuf) -> &[u8] {
        assert!(self.owns(buf), "a buffer of another pool, or not out");
        assert!(
            buf.offset() + buf.len() <= self.size,
            "bytes beyond the buffer"
        );
        // SAFETY: the buffer is out (the caller holds its only handle), so neither the kernel
        // nor the driver writes into it; its `len` bytes from `offset` were written by a
        // receive (or are zero from the allocation), and `offset + len <= size` (checked) keeps
        // the slice inside buffer `id`.
        unsafe { std::slice::from_raw_parts(self.ptr(buf.id()).add(buf.offset()), buf.len()) }
    }

    /// Appends the bytes of `src` to `dst` when they fit in its buffer; both are out, held by
    /// the caller. Returns whether they were appended.
    pub fn append(&mut self, dst: &mut PoolBuf, src: &PoolBuf) -> bool {
        assert!(
            self.owns(dst) && self.owns(src),
            "a buffer of another pool, or not out"
        );
        let (at, n) = (dst.offset() + dst.len(), src.len());
        if at + n > self.size || src.offset() + n > self.size || dst.id() == src.id() {
            return false;
        }
        let from = self.ptr(src.id()).wrapping_add(src.offset());
        // SAFETY: both buffers are out (checked: this pool's handles on buffers handed out) and
        // distinct (their ids differ), so the ranges do not overlap and nothing else touches them; `src`'s `n`
        // bytes from its offset are initialised and inside it (checked), and `at + n <= size`
        // keeps the copy inside buffer `dst`.
        unsafe { std::ptr::copy_nonoverlapping(from, self.ptr(dst.id()).add(at), n) };
        dst.set_len((dst.len() + n) as u32);
        true
    }

    /// Makes a handed-out buffer free again: into the ring (published at once) or onto the
    /// free list.
    pub fn give_back(&mut self, buf: PoolBuf) {
        let id = buf.id();
        assert!(self.owns(&buf), "a buffer of another pool, or not out");
        self.moved(id, Place::Out, Place::Free);
        self.out = self.out.saturating_sub(1);
        if self.ring.is_some() && self.in_ring < self.target {
            self.ring_push(id);
            self.publish();
        } else {
            self.free.push(id);
        }
    }

    /// Tops the kernel's ring up to its working set from the reserve; called before each
    /// submission to the kernel.
    ///
    /// The kernel takes ring entries in the order they were added (a queue), so a ring holding
    /// every free buffer makes each receive land in the buffer used longest ago, cold in the
    /// cache: with 4,096 buffers of 16 KiB, 64 MiB cycle through the cache. The ring is instead
    /// kept at twice the most buffers taken between two refills lately (at least
    /// [`RING_MIN`]), and the rest wait in a stack, so that receives cycle through a working set
    /// sized to the load. A burst that empties the ring ends its receives with `ENOBUFS` (their
    /// owners re-arm them, nothing is lost) and doubles the working set.
    pub fn refill(&mut self) {
        if self.ring.is_none() {
            return;
        }
        let demand = std::mem::take(&mut self.taken).saturating_mul(2);
        let decayed = self.target - self.target / 16;
        self.target = demand
            .max(decayed)
            .max(RING_MIN)
            .min(usize::from(self.count));
        let before = self.in_ring;
        while self.in_ring < self.target {
            let Some(id) = self.free.pop() else { break };
            self.ring_push(id);
        }
        if self.in_ring != before {
            self.publish();
        }
    }

    #[cfg(windows)]
    fn ring_push(&mut self, _id: u16) {
        match *self.ring.as_ref().expect("a ring") {}
    }

    #[cfg(unix)]
    fn ring_push(&mut self, id: u16) {
        let addr = self.ptr(id) as u64;
        let len = self.size as u32;
        self.moved(id, Place::Free, Place::Ring);
        let ring = self.ring.as_mut().expect("a ring");
        let index = usize::from(ring.tail & ring.mask);
        // SAFETY: `index` is within the ring's `mask + 1` entries; the entry at the tail is not
        // visible to the kernel until the tail moves past it (`publish`), so writing it races
        // with nothing.
        let entry = unsafe { &mut *ring.base.as_ptr().add(index) };
        entry.set_addr(addr);
        entry.set_len(len);
        entry.set_bid(id);
        ring.bid_at[index] = id;
        ring.at_of[usize::from(id)] = ring.tail;
        ring.tail = ring.tail.wrapping_add(1);
        self.in_ring += 1;
    }

    /// Where the bytes of a receive of `len` bytes whose completion named buffer `first` lie
    /// in the pool. More than one buffer only for a bundle (IORING_RECVSEND_BUNDLE), which
    /// takes ring entries in order from `first`'s: every one whole but the last, except the
    /// first, which the kernel may have shortened (when a receive's byte cap was below a
    /// buffer, it writes the shortened length into the entry, which keeps it if that receive
    /// found no data). Without a ring a receive fills one buffer.
    ///
    /// Call it before giving any of the bundle's buffers back: a buffer given back is pushed
    /// again, and its place in the ring forgotten.
    pub fn bundle(&self, first: u16, len: usize) -> Bundle {
        let Some(ring) = &self.ring else {
            return Bundle {
                first,
                start: 0,
                parts: 1,
                head: len,
                len,
            };
        };
        #[cfg(windows)]
        match *ring {}
        #[cfg(unix)]
        let start = ring.at_of[usize::from(first)];
        #[cfg(unix)]
        let index = usize::from(start & ring.mask);
        // SAFETY: `index` is within the ring's `mask + 1` entries. The entry is no longer the
        // kernel's (it took it for this completion, which happens-before our reading it) and is
        // not rewritten before this completion's buffers are handed out (see `bundle_part`).
        #[cfg(unix)]
        let entry_len = unsafe { (*ring.base.as_ptr().add(index)).len() } as usize;
        #[cfg(unix)]
        let head = len.min(entry_len.clamp(1, self.size));
        #[cfg(unix)]
        Bundle {
            first,
            start,
            parts: 1 + (len - head).div_ceil(self.size),
            head,
            len,
        }
    }

    /// Part `k` (below `bundle.parts`) of a receive: its buffer id and the bytes in it.
    ///
    /// Sound because the ring never holds more entries than there are buffers: an entry the
    /// kernel consumed is rewritten only after `count` later pushes, and the buffers of this
    /// bundle cannot be pushed again before its completion has handed them out.
    pub fn bundle_part(&self, bundle: &Bundle, k: usize) -> (u16, usize) {
        if k == 0 {
            return (bundle.first, bundle.head.min(bundle.len));
        }
        let id = match &self.ring {
            #[cfg(unix)]
            Some(ring) => ring.bid_at[usize::from(bundle.start.wrapping_add(k as u16) & ring.mask)],
            #[cfg(windows)]
            Some(ring) => match *ring {},
            None => bundle.first,
        };
        let before = bundle.head + (k - 1) * self.size;
        (id, bundle.len.saturating_sub(before).min(self.size))
    }

    /// Checks that buffer `id` was at `from`, and notes it at `to`.
    fn moved(&mut self, id: u16, from: Place, to: Place) {
        let place = &mut self.place[usize::from(id)];
        assert_eq!(*place, from, "pool buffer {id} moved to {to:?}");
        *place = to;
    }

    #[cfg(windows)]
    fn publish(&mut self) {
        match *self.ring.as_ref().expect("a ring") {}
    }

    /// Publishes the tail to the kernel.
    #[cfg(unix)]
    fn publish(&mut self) {
        let ring = self.ring.as_ref().expect("a ring");
        // SAFETY: the tail is a naturally aligned u16 inside the ring's first entry, shared
        // with the kernel, which reads it with an acquire load; the release store orders the
        // entry writes before it.
        unsafe {
            let tail = BufRingEntry::tail(ring.base.as_ptr()).cast_mut();
            (*tail.cast::<AtomicU16>()).store(ring.tail, Ordering::Release);
        }
    }
}

impl Drop for BufPool {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(ring) = self.ring.take() {
            // SAFETY: allocated in `attach_ring` with this layout; the io_uring that used it
            // was dropped (closed) before the pool.
            unsafe { alloc::dealloc(ring.base.as_ptr().cast(), ring.layout) };
        }
        // SAFETY: allocated in `new` with this layout; nothing uses it once the port's driver
        // is gone.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) };
    }
}
