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
///
/// When a test finds an allocation it should not, [`CountingAlloc::trace`] names it: the call
/// stacks of the next few allocations are kept and handed back by [`CountingAlloc::traces`].
#[derive(Debug, Default)]
pub struct CountingAlloc {
    allocations: std::sync::atomic::AtomicU64,
    /// How many more allocations' call stacks to keep.
    to_trace: std::sync::atomic::AtomicU32,
}

/// The call stacks kept by [`CountingAlloc::trace`].
static TRACES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

thread_local! {
    /// Set while this thread captures a call stack, whose own allocations are not traced.
    static CAPTURING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl CountingAlloc {
    /// A counter at zero.
    pub const fn new() -> CountingAlloc {
        CountingAlloc {
            allocations: std::sync::atomic::AtomicU64::new(0),
            to_trace: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Keeps the call stacks of the next `n` allocations (of any thread), for [`Self::traces`].
    pub fn trace(&self, n: u32) {
        self.to_trace.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// The call stacks kept since [`Self::trace`], and stops keeping more.
    pub fn traces(&self) -> Vec<String> {
        self.to_trace.store(0, std::sync::atomic::Ordering::SeqCst);
        std::mem::take(&mut *TRACES.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Allocations (and reallocations) so far, by every thread.
    pub fn allocations(&self) -> u64 {
        self.allocations.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count(&self, layout: std::alloc::Layout) {
        self.allocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.to_trace.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            self.capture(layout);
        }
    }

    /// Keeps this allocation's call stack, unless this thread is capturing one already (the
    /// capture allocates) or enough have been kept.
    #[cold]
    fn capture(&self, layout: std::alloc::Layout) {
        if CAPTURING.with(|c| c.replace(true)) {
            return;
        }
        let left = self.to_trace.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        );
        if left.is_ok() {
            let thread = std::thread::current();
            let stack = std::backtrace::Backtrace::force_capture();
            let trace = format!(
                "{} bytes on thread {}:\n{stack}",
                layout.size(),
                thread.name().unwrap_or("?")
            );
            TRACES.lock().unwrap_or_else(|e| e.into_inner()).push(trace);
        }
        CAPTURING.with(|c| c.set(false));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// allocator's contract is `System`'s; counting touches only an atomic.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        self.count(layout);
        // SAFETY: the caller's promises for `alloc` are passed on unchanged.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        self.count(layout);
        // SAFETY: as above, for `alloc_zeroed`.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above, for `dealloc`: `ptr` came from this allocator, i.e. `System`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        self.count(std::alloc::Layout::from_size_align(new_size, layout.align()).unwrap_or(layout));
        // SAFETY: as above, for `realloc`.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}
