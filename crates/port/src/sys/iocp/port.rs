//! The [`Port`] on Windows: the same API as on Linux, on an I/O completion port.
//!
//! This is the Windows twin of `port.rs` (which holds the documentation of the API): the
//! backend choice, the buffer pool and the statistics are the same; the driver is
//! [`IocpDriver`](crate::sys::driver::IocpDriver). A port belongs to one thread; a [`Poster`]
//! reaches it from any thread with `PostQueuedCompletionStatus`.
//!
//! When the port is dropped with operations in the system, they are cancelled and their
//! completions drained (bounded); the few that do not come back in time are leaked with their
//! buffers rather than freed under the system.

use std::fmt;
use std::io;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::errors::code;
use crate::op::{Completion, Op, PoolBuf};
use crate::sys::driver::{IocpDriver, PortHandle};
use crate::sys::pool::BufPool;
use crate::sys::UringUnavailable;
use crate::table::{InFlight, OpTable};
use crate::token::Token;

/// How long a dropped port waits for its cancelled operations to come back.
const DRAIN_ON_DROP: Duration = Duration::from_secs(2);

/// Settings for a new port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// On IOCP, it bounds the completions dequeued per `GetQueuedCompletionStatusEx`.
    pub entries: u32,
    /// Which mechanism to use; [`BackendChoice::Auto`] by default (IOCP on Windows).
    pub backend: BackendChoice,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            entries: 1024,
            backend: BackendChoice::Auto,
        }
    }
}

/// The mechanism under a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring (Linux only: never on Windows).
    Uring,
    /// epoll (Linux only: never on Windows).
    Epoll,
    /// An I/O completion port: operations are carried out by Windows.
    Iocp,
}

impl Backend {
    /// A short, stable name for logs and reports: `io_uring`, `epoll` or `iocp`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Epoll => "epoll",
            Backend::Iocp => "iocp",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which mechanism a port should use: the `--backend auto|iocp|uring|epoll` of the command line.
/// On Windows `auto` is IOCP; `uring` and `epoll` fail with one line naming why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// IOCP on Windows.
    #[default]
    Auto,
    /// io_uring: Linux only.
    Uring,
    /// epoll: Linux only.
    Epoll,
    /// An I/O completion port.
    Iocp,
}

impl BackendChoice {
    /// Every choice, in the order of the command line's help.
    pub const ALL: [BackendChoice; 4] = [
        BackendChoice::Auto,
        BackendChoice::Iocp,
        BackendChoice::Uring,
        BackendChoice::Epoll,
    ];

    /// The name on the command line: `auto`, `iocp`, `uring` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Uring => "uring",
            BackendChoice::Epoll => "epoll",
            BackendChoice::Iocp => "iocp",
        }
    }

    /// Decides which backend this choice means on this machine: IOCP for `Auto` and `Iocp`.
    ///
    /// # Errors
    ///
    /// For `Uring` and `Epoll`, which exist only on Linux.
    pub fn resolve(self) -> Result<Backend, UringUnavailable> {
        match self {
            BackendChoice::Auto | BackendChoice::Iocp => Ok(Backend::Iocp),
            BackendChoice::Uring => Err(UringUnavailable::not_here()),
            BackendChoice::Epoll => Err(UringUnavailable {
                cause: "epoll exists only on Linux".into(),
                remedy: "use --backend iocp (or auto) on Windows".into(),
                source: None,
            }),
        }
    }
}

impl From<Backend> for BackendChoice {
    fn from(backend: Backend) -> BackendChoice {
        match backend {
            Backend::Uring => BackendChoice::Uring,
            Backend::Epoll => BackendChoice::Epoll,
            Backend::Iocp => BackendChoice::Iocp,
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is not `auto`, `iocp`, `uring` or `epoll`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseBackendError(String);

impl fmt::Display for ParseBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown backend `{}`: expected auto, iocp, uring or epoll",
            self.0
        )
    }
}

impl std::error::Error for ParseBackendError {}

impl FromStr for BackendChoice {
    type Err = ParseBackendError;

    /// Parses `auto`, `iocp`, `uring` (or `io_uring`) and `epoll`, in any case.
    fn from_str(s: &str) -> Result<BackendChoice, ParseBackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "iocp" => Ok(BackendChoice::Iocp),
            "uring" | "io_uring" | "io-uring" => Ok(BackendChoice::Uring),
            "epoll" => Ok(BackendChoice::Epoll),
            _ => Err(ParseBackendError(s.to_string())),
        }
    }
}

/// io_uring is Linux's: always unavailable on Windows.
pub fn probe_uring() -> Result<(), UringUnavailable> {
    Err(UringUnavailable::not_here())
}

/// Why a port could not be created.
#[derive(Debug)]
pub enum PortError {
    /// io_uring (or epoll) was asked for, and it exists only on Linux.
    UringUnavailable(UringUnavailable),
    /// Another system error (creating the completion port, for example).
    Io(io::Error),
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::UringUnavailable(e) => e.fmt(f),
            PortError::Io(e) => write!(f, "cannot create the completion port: {e}"),
        }
    }
}

impl std::error::Error for PortError {}

/// Counters a port keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Calls to [`Port::wait`] (each is one `GetQueuedCompletionStatusEx`).
    pub waits: u64,
    /// Operations submitted.
    pub submitted: u64,
    /// Completions delivered to the caller (posted values included).
    pub completions: u64,
    /// Completions that named a freed slot or a wrong kind: dropped, never applied.
    pub stale: u64,
    /// Buffers in the pool (0 without one).
    pub pool_buffers: usize,
    /// The most pool buffers out of the pool at once.
    pub pool_peak: usize,
}

/// Posts values to a port from any thread: `PostQueuedCompletionStatus`, the value being the
/// completion key. Values are delivered in the order they were posted.
#[derive(Debug, Clone)]
pub struct Poster {
    port: Arc<PortHandle>,
}

impl Poster {
    /// Queues `value` for the port and wakes it.
    pub fn post(&self, value: u64) -> io::Result<()> {
        self.port.post(value)
    }
}

/// A completion port: one per thread.
pub struct Port {
    driver: IocpDriver,
    table: OpTable,
    stats: PortStats,
    pool: Option<BufPool>,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("backend", &self.backend())
            .field("in_flight", &self.table.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Port {
    /// Creates a port: an I/O completion port for `Auto` and `Iocp`.
    ///
    /// # Errors
    ///
    /// [`PortError::UringUnavailable`] for `Uring` and `Epoll` (Linux only);
    /// [`PortError::Io`] when the completion port cannot be created.
    pub fn new(config: &PortConfig) -> Result<Port, PortError> {
        config
            .backend
            .resolve()
            .map_err(PortError::UringUnavailable)?;
        let driver = IocpDriver::new(config.entries).map_err(PortError::Io)?;
        Ok(Port {
            driver,
            table: OpTable::default(),
            stats: PortStats::default(),
            pool: None,
        })
    }

    /// Gives the port a pool of `count` buffers of `size` bytes (see the Linux `Port`). On
    /// IOCP a pooled receive takes its buffer when it is posted, so a multishot receive ends
    /// when the pool has no free buffer left.
    ///
    /// # Errors
    ///
    /// `WSAEINVAL` for a zero count or size, a count above 32,768, or a second call.
    pub fn provide_buffers(&mut self, count: u16, size: usize) -> io::Result<()> {
        if self.pool.is_some() {
            return Err(io::Error::from_raw_os_error(code::INVALID));
        }
        self.pool = Some(BufPool::new(count, size)?);
        Ok(())
    }

    /// Never on IOCP: there is no provided-buffer ring.
    pub fn buffer_ring(&self) -> bool {
        self.pool.as_ref().is_some_and(BufPool::has_ring)
    }

    /// Pool buffers free (neither handed out nor lent to a receive or a send).
    pub fn buffers_available(&self) -> usize {
        self.pool.as_ref().map_or(0, BufPool::available)
    }

    /// The size of the pool's buffers (0 without a pool).
    pub fn buffer_size(&self) -> usize {
        self.pool.as_ref().map_or(0, BufPool::buf_size)
    }

    /// The bytes a pooled buffer holds.
    ///
    /// # Panics
    ///
    /// Without a pool, or for a buffer of another port's pool.
    pub fn buf(&self, buf: &PoolBuf) -> &[u8] {
        self.pool
            .as_ref()
            .expect("a port with a buffer pool")
            .bytes(buf)
    }

    /// Appends the bytes of `src` to `dst`, when they fit in `dst`'s buffer.
    ///
    /// # Panics
    ///
    /// Without a pool, or for a buffer of another port's pool.
    pub fn append(&mut self, dst: &mut PoolBuf, src: &PoolBuf) -> bool {
        self.pool
            .as_mut()
            .expect("a port with a buffer pool")
            .append(dst, src)
    }

    /// Gives a pooled buffer back to the pool.
    ///
    /// # Panics
    ///
    /// Without a pool, or for a buffer of another port's pool.
    pub fn give_back(&mut self, buf: PoolBuf) {
        self.pool
            .as_mut()
            .expect("a port with a buffer pool")
            .give_back(buf);
    }

    /// The mechanism under this port: IOCP.
    pub fn backend(&self) -> Backend {
        Backend::Iocp
    }

    /// A few words on the backend, for logs.
    pub fn describe(&self) -> String {
        "iocp (I/O completion port; skip-on-success where the socket allows)".to_string()
    }

    /// A handle other threads use to post values to this port.
    pub fn poster(&self) -> Poster {
        Poster {
            port: self.driver.handle(),
        }
    }

    /// Counters about this port.
    pub fn stats(&self) -> PortStats {
        let mut stats = self.stats;
        if let Some(pool) = &self.pool {
            stats.pool_buffers = pool.count();
            stats.pool_peak = pool.peak();
        }
        stats
    }

    /// Operations submitted whose completions have not been reaped yet.
    pub fn in_flight(&self) -> usize {
        self.table.len()
    }

    /// Slots of the operation table (its high-water mark of operations in flight at once).
    pub fn table_slots(&self) -> usize {
        self.table.capacity()
    }

    /// Starts `op`; its completion will carry `key` and comes out of a later
    /// [`wait`](Port::wait). (On IOCP the system starts it at once.)
    ///
    /// Returns the operation's [`Token`], which [`cancel`](Port::cancel) takes.
    pub fn submit(&mut self, key: u64, op: Op) -> io::Result<Token> {
        let kind = op.kind();
        let op = match op {
            // The last handle closes the socket now; with others alive, this one is dropped and
            // the last holder closes it.
            Op::Close { fd } => {
                drop(Rc::try_unwrap(fd));
                Op::Nop
            }
            op => op,
        };
        if let Op::SendBufs { bufs, .. } = &op {
            if bufs.is_empty() {
                return Err(io::Error::from_raw_os_error(code::INVALID));
            }
        }
        let token = self.table.insert(InFlight {
            key,
            kind,
            op,
            addr: None,
            pooled: None,
            msg: None,
        });
        let inflight = self.table.get_mut(token).expect("just inserted");
        if let Err(e) = self.driver.push(token, inflight, self.pool.as_mut()) {
            self.table.remove(token);
            return Err(e);
        }
        self.stats.submitted += 1;
        Ok(token)
    }

    /// Asks for the operation named `token` to finish early (CancelIoEx); it then completes as
    /// usual, with `ERROR_OPERATION_ABORTED` if it had not finished. Cancelling an operation that
    /// already completed does nothing.
    pub fn cancel(&mut self, token: Token) -> io::Result<()> {
        if let Some(inflight) = self.table.get_mut(token) {
            self.driver.cancel(inflight);
        }
        Ok(())
    }

    /// Waits until at least one completion is ready or `timeout` passes (`None`: no limit;
    /// zero: do not wait), then appends every ready completion to `out`. Returns how many were
    /// appended.
    pub fn wait(
        &mut self,
        out: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.stats.waits += 1;
        let before = out.len();
        self.stats.stale += self
            .driver
            .wait(&mut self.table, self.pool.as_mut(), timeout, out)?;
        let added = out.len() - before;
        self.stats.completions += added as u64;
        Ok(added)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if self.driver.in_system() == 0 {
            return;
        }
        let left = self.driver.drain(&mut self.table, DRAIN_ON_DROP);
        if left.is_empty() {
            return;
        }
        tracing::warn!(
            operations = left.len(),
            "operations did not come back from the system when the port closed: leaked"
        );
        for token in left {
            std::mem::forget(self.table.remove(token));
        }
        // A leaked receive may still write into its pool buffer.
        std::mem::forget(self.pool.take());
    }
}
