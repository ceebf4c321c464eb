//! The operating-system side of the port on Windows: an I/O completion port. Every `unsafe`
//! block of the Windows build lives below here.
//!
//! On Windows this module stands where `sys/mod.rs` stands on Linux (see `lib.rs`), and
//! `port.rs` beside it is the Windows `Port`, with the same public API. Once the backend seam of
//! issue 12 (step 1) gives the drivers one contract, [`driver::IocpDriver`] becomes the third
//! driver under the common `port.rs` and the Windows `port.rs` goes.
//!
//! | IOCP | the port |
//! |---|---|
//! | `CreateIoCompletionPort` (create) | [`Port::new`](crate::Port::new) |
//! | `CreateIoCompletionPort` (associate) | the first operation on a socket, with `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` |
//! | `OVERLAPPED` | one per posted I/O, in the operation's table slot with its buffer and [`Token`](crate::Token) |
//! | `AcceptEx` + `SO_UPDATE_ACCEPT_CONTEXT` + `GetAcceptExSockaddrs` | [`Op::Accept`](crate::Op::Accept); [`Op::AcceptMulti`](crate::Op::AcceptMulti) keeps several outstanding |
//! | `ConnectEx` + `SO_UPDATE_CONNECT_CONTEXT` | [`Op::Connect`](crate::Op::Connect) |
//! | `WSARecv` / `WSASend` | the receives and sends |
//! | `GetQueuedCompletionStatusEx` | [`Port::wait`](crate::Port::wait), in batches |
//! | `PostQueuedCompletionStatus` | [`Poster::post`](crate::Poster::post): the value is the completion key |
//! | `CancelIoEx` | [`Port::cancel`](crate::Port::cancel) |

pub(crate) mod driver;
pub(crate) mod pool;

use std::fmt;
use std::io;

/// What the table keeps for each operation while the system works on it: its `OVERLAPPED`s and
/// what they point at (see [`driver::OpState`]). The name is the Linux table's, whose slot holds
/// the socket address the kernel reads or writes.
pub(crate) type SockAddrBuf = driver::OpState;

/// The Linux table's message header for gathered sends. WSASend copies its `WSABUF` array when
/// it is called, so nothing needs to outlive the call on Windows and the port never stocks
/// these; the field keeps the table's code the same on both systems.
#[derive(Default)]
pub(crate) struct MsgBuf {
    pub iov: Vec<windows_sys::Win32::Networking::WinSock::WSABUF>,
}

impl fmt::Debug for MsgBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MsgBuf({} WSABUFs)", self.iov.len())
    }
}

/// Why io_uring cannot be used: on Windows, always (it is Linux's). Kept so that the public API
/// is the same on every system.
#[derive(Debug)]
pub struct UringUnavailable {
    /// The cause in a few words.
    pub cause: String,
    /// What the user can do.
    pub remedy: String,
    /// The error the system returned, if any.
    pub source: Option<io::Error>,
}

impl UringUnavailable {
    pub(crate) fn not_here() -> UringUnavailable {
        UringUnavailable {
            cause: "io_uring exists only on Linux".into(),
            remedy: "use --backend iocp (or auto) on Windows".into(),
            source: None,
        }
    }
}

impl fmt::Display for UringUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "io_uring is unavailable: {}; {}",
            self.cause, self.remedy
        )
    }
}

impl std::error::Error for UringUnavailable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Facts and limits of the process that the port's users need, behind safe functions.
pub mod os {
    use std::io;
    use std::sync::OnceLock;

    use windows_sys::core::BOOL;
    use windows_sys::Win32::System::Console::{
        SetConsoleCtrlHandler, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_C_EVENT,
    };

    /// Windows has no limit on open sockets like `RLIMIT_NOFILE`: a large number for both.
    pub fn nofile_limit() -> io::Result<(u64, u64)> {
        Ok((1 << 24, 1 << 24))
    }

    /// Nothing to raise on Windows.
    pub fn set_nofile_soft(_soft: u64) -> io::Result<()> {
        Ok(())
    }

    /// The number of CPUs this process may run on.
    pub fn available_cpus() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    static CONSOLE_CTRL: OnceLock<Box<dyn Fn() + Send + Sync>> = OnceLock::new();

    unsafe extern "system" fn console_ctrl(event: u32) -> BOOL {
        match event {
            CTRL_C_EVENT | CTRL_BREAK_EVENT | CTRL_CLOSE_EVENT => match CONSOLE_CTRL.get() {
                Some(f) => {
                    f();
                    1
                }
                None => 0,
            },
            _ => 0,
        }
    }

    /// Calls `f` (on a thread of the system's) when the console sends Ctrl-C, Ctrl-Break or
    /// close: Windows' SIGINT/SIGTERM, for a graceful shutdown. The process is not ended for
    /// those events while `f` is installed. Once per process.
    ///
    /// # Errors
    ///
    /// A second call, or the system refusing the handler.
    pub fn on_console_ctrl(f: impl Fn() + Send + Sync + 'static) -> io::Result<()> {
        CONSOLE_CTRL
            .set(Box::new(f))
            .map_err(|_| io::Error::other("a console control handler is already installed"))?;
        // SAFETY: `console_ctrl` is a plain function valid for the whole process, and it only
        // reads a `OnceLock` set above.
        if unsafe { SetConsoleCtrlHandler(Some(console_ctrl), 1) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The system allocator, counting the allocations of every thread: for tests that prove a
    /// path allocates nothing (install it with `#[global_allocator]` in a test binary).
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

        unsafe fn realloc(
            &self,
            ptr: *mut u8,
            layout: std::alloc::Layout,
            new_size: usize,
        ) -> *mut u8 {
            self.count();
            // SAFETY: as above, for `realloc`.
            unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
        }
    }
}
