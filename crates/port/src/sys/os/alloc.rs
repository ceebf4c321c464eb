//! The counting allocator: proves in tests that a path allocates nothing.

/// The system allocator, counting the allocations of every thread: for tests that prove a
/// path allocates nothing (install it with `#[global_allocator]` in a test binary).
///
/// ```
/// use ringport_port::os::CountingAlloc;
///
/// static COUNTER: CountingAlloc = CountingAlloc::new();
/// assert_eq!(COUNTER.allocations(), 0); // not installed here, so nothing is counted
/// ```
#[derive(Debug, Default)]
pub struct CountingAlloc {
    allocations: std::sync::atomic::AtomicU64,
}

impl CountingAlloc {
    /// A counter at zero.
    pub const fn new() -> CountingAlloc {
        CountingAlloc {
            allocations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Allocations (and reallocations) so far, by every thread.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self) {
        self.allocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// allocator's contract is `System`'s; counting touches only an atomic.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        self.count();
        // SAFETY: the caller's promises for `alloc` are passed on unchanged.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        self.count();
        // SAFETY: as above, for `alloc_zeroed`.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above, for `dealloc`: `ptr` came from this allocator, i.e. `System`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        self.count();
        // SAFETY: as above, for `realloc`.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}
