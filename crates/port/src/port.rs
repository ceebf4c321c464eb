//! The [`Port`]: submit operations, wait for their completions in batches, post wake-ups.
//!
//! A port belongs to one thread (it is `!Send`: the ring is created single-issuer, and the fd
//! handles of its operations are `Rc`s). Threads talk to a port through a [`Poster`], which is
//! `Send + Sync` and can be cloned freely.
//!
//! # Backends
//!
//! A port runs on io_uring, or on epoll where io_uring cannot be used (a seccomp filter, the
//! `kernel.io_uring_disabled` sysctl, a memlock limit, an old kernel). [`PortConfig::backend`]
//! chooses; [`BackendChoice::Auto`] falls back by itself with one log line, and
//! [`Port::backend`] and [`Port::describe`] say which is in use. Both backends take the same
//! operations and give the same completions; `tests/port.rs` runs every test on each.
//!
//! # The loop
//!
//! ```no_run
//! use ringport_port::{Completion, Op, Outcome, Port, PortConfig};
//!
//! let mut port = Port::new(&PortConfig::default())?;
//! let poster = port.poster();
//! std::thread::spawn(move || poster.post(42));
//! let mut done: Vec<Completion> = Vec::new();
//! loop {
//!     done.clear();
//!     port.wait(&mut done, None)?; // one io_uring_enter (or epoll_wait): submit all, reap all
//!     for c in done.drain(..) {
//!         if let Outcome::Posted = c.outcome {
//!             assert_eq!(c.key, 42);
//!             return Ok(());
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::errors::code;
use crate::op::{Completion, Op, PoolBuf};
#[cfg(unix)]
use crate::sys::epoll::EpollDriver;
use crate::sys::pool::BufPool;
#[cfg(unix)]
use crate::sys::uring::UringDriver;
#[cfg(windows)]
use crate::sys::IocpDriver;
use crate::sys::{self, AnyDriver, Delivery, Driver, RawCompletion, Waker};
use crate::table::{InFlight, OpTable};
use crate::token::Token;

/// Settings for a new port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Submission queue entries (rounded up to a power of two by the kernel). Operations beyond
    /// this many are queued in batches; nothing is refused.
    /// On epoll, it bounds the readiness events taken per `epoll_wait` instead.
    pub entries: u32,
    /// Which mechanism to use; [`BackendChoice::Auto`] by default.
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
    /// io_uring: operations are carried out by the kernel.
    Uring,
    /// epoll: operations are carried out by the port when their fd is ready (see the
    /// `sys::epoll` module); for machines where io_uring cannot be used.
    Epoll,
    /// An I/O completion port (Windows only): operations are carried out by Windows.
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

    /// Whether this backend exists on the system the program was built for (io_uring and
    /// epoll on Linux, IOCP on Windows).
    pub fn exists_here(self) -> bool {
        match self {
            Backend::Uring | Backend::Epoll => cfg!(unix),
            Backend::Iocp => cfg!(windows),
        }
    }

    /// Why this backend cannot be used here, when it does not exist on this system.
    fn not_here(self) -> UringUnavailable {
        let (system, remedy) = if cfg!(windows) {
            ("Linux", "use --backend iocp (or auto) on Windows")
        } else {
            ("Windows", "use --backend auto, uring or epoll on Linux")
        };
        UringUnavailable {
            backend: self,
            cause: format!("it exists only on {system}"),
            remedy: remedy.into(),
            source: None,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which mechanism a port should use: the `--backend auto|uring|epoll|iocp` of the command
/// line. Every choice exists on every system; one whose backend does not exist here (`iocp` on
/// Linux, `uring` and `epoll` on Windows) fails with one line saying so.
///
/// # Choosing once for many ports
///
/// [`BackendChoice::Auto`] probes io_uring each time a port is created and logs a warning each
/// time it falls back. A program with one port per worker thread should decide once, at
/// start-up, with [`resolve`](BackendChoice::resolve) (which logs the fallback once), and give
/// the resolved choice to every worker:
///
/// ```no_run
/// use ringport_port::{BackendChoice, Port, PortConfig};
///
/// let choice: BackendChoice = "auto".parse()?;
/// let backend = choice.resolve()?; // Uring, or Epoll with one warning naming the cause
/// println!("backend: {backend}");
/// let config = PortConfig { backend: backend.into(), ..PortConfig::default() };
/// let port = Port::new(&config)?; // in each worker
/// assert_eq!(port.backend(), backend);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// io_uring where it can be used, epoll otherwise (with one warning naming the cause).
    #[default]
    Auto,
    /// io_uring or fail with [`PortError::UringUnavailable`].
    Uring,
    /// epoll, even where io_uring could be used.
    Epoll,
    /// An I/O completion port: Windows only (where `Auto` picks it).
    Iocp,
}

impl BackendChoice {
    /// Every choice, in the order of the command line's help.
    pub const ALL: [BackendChoice; 4] = [
        BackendChoice::Auto,
        BackendChoice::Uring,
        BackendChoice::Epoll,
        BackendChoice::Iocp,
    ];

    /// The name on the command line: `auto`, `uring`, `epoll` or `iocp`.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Uring => "uring",
            BackendChoice::Epoll => "epoll",
            BackendChoice::Iocp => "iocp",
        }
    }

    /// Decides which backend this choice means on this machine, probing io_uring for `Auto`
    /// and `Uring` (see [`probe_uring`]). `Auto` falls back to epoll with one `tracing::warn!`
    /// line naming the cause. On Windows `Auto` is IOCP.
    ///
    /// # Errors
    ///
    /// For `Uring`: why io_uring cannot be used, with the remedy; for a backend that does not
    /// exist on this system, that it does not.
    pub fn resolve(self) -> Result<Backend, UringUnavailable> {
        match self {
            BackendChoice::Iocp if !Backend::Iocp.exists_here() => Err(Backend::Iocp.not_here()),
            BackendChoice::Uring if !Backend::Uring.exists_here() => Err(Backend::Uring.not_here()),
            BackendChoice::Epoll if !Backend::Epoll.exists_here() => Err(Backend::Epoll.not_here()),
            BackendChoice::Iocp => Ok(Backend::Iocp),
            BackendChoice::Auto if cfg!(windows) => Ok(Backend::Iocp),
            BackendChoice::Epoll => Ok(Backend::Epoll),
            BackendChoice::Uring => probe_uring().map(|()| Backend::Uring),
            BackendChoice::Auto => match probe_uring() {
                Ok(()) => Ok(Backend::Uring),
                Err(e) => {
                    warn_fallback(&e);
                    Ok(Backend::Epoll)
                }
            },
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

/// A backend name that is not `auto`, `uring`, `epoll` or `iocp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseBackendError(String);

impl fmt::Display for ParseBackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown backend `{}`: expected auto, uring, epoll or iocp",
            self.0
        )
    }
}

impl std::error::Error for ParseBackendError {}

impl FromStr for BackendChoice {
    type Err = ParseBackendError;

    /// Parses `auto`, `uring` (or `io_uring`), `epoll` and `iocp`, in any case.
    fn from_str(s: &str) -> Result<BackendChoice, ParseBackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(BackendChoice::Uring),
            "epoll" => Ok(BackendChoice::Epoll),
            "iocp" => Ok(BackendChoice::Iocp),
            _ => Err(ParseBackendError(s.to_string())),
        }
    }
}

impl FromStr for Backend {
    type Err = ParseBackendError;

    /// Parses what [`Backend::name`] prints (`io_uring`, `epoll`, `iocp`), and `uring`, in any
    /// case. `auto` is a choice, not a backend: an error.
    fn from_str(s: &str) -> Result<Backend, ParseBackendError> {
        match s.parse::<BackendChoice>()? {
            BackendChoice::Uring => Ok(Backend::Uring),
            BackendChoice::Epoll => Ok(Backend::Epoll),
            BackendChoice::Iocp => Ok(Backend::Iocp),
            BackendChoice::Auto => Err(ParseBackendError(s.to_string())),
        }
    }
}

/// Checks that io_uring can be used here, with everything a port needs (the setup flags'
/// fallbacks, the features and opcodes), by building one small ring with the default number of
/// entries and dropping it: a handful of system calls.
///
/// # Errors
///
/// Why io_uring cannot be used (seccomp, `kernel.io_uring_disabled`, memlock limit, kernel too
/// old), with the remedy; on Windows, that it exists only on Linux.
pub fn probe_uring() -> Result<(), UringUnavailable> {
    #[cfg(windows)]
    return Err(Backend::Uring.not_here());
    #[cfg(unix)]
    match UringDriver::open(PortConfig::default().entries) {
        Ok(_) => Ok(()),
        Err(PortError::UringUnavailable(e)) => Err(e),
        Err(PortError::Io(e)) => Err(UringUnavailable {
            backend: Backend::Uring,
            cause: format!("the probe could not create an eventfd ({e})"),
            remedy: "check the open-file limit (ulimit -n)".into(),
            source: Some(e),
        }),
    }
}

/// Why io_uring (or a backend of another system) cannot be used on this machine, with what to
/// do about it.
#[derive(Debug)]
pub struct UringUnavailable {
    /// The backend that cannot be used (io_uring, or one that does not exist on this system).
    pub backend: Backend,
    /// The cause in a few words, e.g. "blocked by a seccomp filter (EPERM)".
    pub cause: String,
    /// What the user can do.
    pub remedy: String,
    /// The error the kernel returned, if any.
    pub source: Option<io::Error>,
}

impl fmt::Display for UringUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is unavailable: {}; {}",
            self.backend, self.cause, self.remedy
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

fn warn_fallback(e: &UringUnavailable) {
    tracing::warn!(
        remedy = %e.remedy,
        "io_uring is unavailable ({}); using the epoll backend",
        e.cause
    );
}

/// Why a port could not be created.
#[derive(Debug)]
pub enum PortError {
    /// io_uring cannot be used here; the message says why and what to do.
    UringUnavailable(UringUnavailable),
    /// Another system error (creating the wake-up eventfd, for example).
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
    /// Calls to [`Port::wait`] (each is one `io_uring_enter`, or one `epoll_wait`).
    pub waits: u64,
    /// Operations submitted.
    pub submitted: u64,
    /// Completions delivered to the caller (posted values included).
    pub completions: u64,
    /// Completions that named a freed slot or a wrong kind: dropped, never applied.
    pub stale: u64,
    /// Buffers in the pool (0 without one).
    pub pool_buffers: usize,
    /// The most pool buffers out of the pool at once (received into and not yet given back).
    pub pool_peak: usize,
    /// Operations the system finished at once, posting no completion, whose results the driver
    /// delivered itself: IOCP's skip-on-success (`FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`); 0 on
    /// the Linux backends. Each is among `completions` once, like every other.
    pub inline: u64,
}

#[derive(Debug)]
struct PostBox {
    queue: Mutex<Vec<u64>>,
    waker: Arc<Waker>,
}

/// Posts values to a port from any thread: Linux's `PostQueuedCompletionStatus`.
///
/// Each value comes out of the port's [`wait`](Port::wait) as a [`Completion`] whose
/// [`outcome`](Completion::outcome) is [`Outcome::Posted`](crate::Outcome::Posted) and whose [`key`](Completion::key) is
/// the value. Values are delivered in the order they were posted.
#[derive(Debug, Clone)]
pub struct Poster {
    inner: Arc<PostBox>,
}

impl Poster {
    /// Queues `value` for the port and wakes it.
    pub fn post(&self, value: u64) -> io::Result<()> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(value);
        self.inner.waker.wake()
    }
}

/// A completion port: one per thread.
pub struct Port {
    driver: AnyDriver,
    table: OpTable,
    post: Arc<PostBox>,
    raw: Vec<RawCompletion>,
    stats: PortStats,
    /// The buffer pool, once provided. Declared after `driver`, so the ring that may write into
    /// it is closed first.
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
    /// Creates a port on the backend `config.backend` chooses.
    ///
    /// With [`BackendChoice::Auto`], io_uring is tried first; where it cannot be used the port
    /// runs on epoll, and one `tracing::warn!` line names the cause (use
    /// [`BackendChoice::resolve`] to decide once for many ports).
    ///
    /// # Errors
    ///
    /// [`PortError::UringUnavailable`] when [`BackendChoice::Uring`] was asked for and io_uring
    /// cannot be used, naming the cause (seccomp, sysctl, memlock limit, kernel too old) and the
    /// remedy; [`PortError::Io`] when the port's own descriptors cannot be created.
    pub fn new(config: &PortConfig) -> Result<Port, PortError> {
        #[cfg(windows)]
        {
            config
                .backend
                .resolve()
                .map_err(PortError::UringUnavailable)?;
            let driver = IocpDriver::new(config.entries).map_err(PortError::Io)?;
            Ok(Port::with_driver(AnyDriver::Iocp(driver)))
        }
        #[cfg(unix)]
        match config.backend {
            BackendChoice::Iocp => Err(PortError::UringUnavailable(Backend::Iocp.not_here())),
            BackendChoice::Uring => Port::new_uring(config),
            BackendChoice::Epoll => Port::new_epoll(config, None),
            BackendChoice::Auto => match Port::new_uring(config) {
                Err(PortError::UringUnavailable(e)) => {
                    warn_fallback(&e);
                    Port::new_epoll(config, Some(e.cause))
                }
                made => made,
            },
        }
    }

    #[cfg(unix)]
    fn new_uring(config: &PortConfig) -> Result<Port, PortError> {
        let driver = UringDriver::open(config.entries.max(8))?;
        Ok(Port::with_driver(AnyDriver::Uring(driver)))
    }

    #[cfg(unix)]
    fn new_epoll(config: &PortConfig, fallback: Option<String>) -> Result<Port, PortError> {
        let driver = EpollDriver::new(config.entries, fallback).map_err(PortError::Io)?;
        Ok(Port::with_driver(AnyDriver::Epoll(driver)))
    }

    fn with_driver(driver: AnyDriver) -> Port {
        let waker = driver.waker();
        Port {
            driver,
            table: OpTable::default(),
            post: Arc::new(PostBox {
                queue: Mutex::new(Vec::new()),
                waker,
            }),
            raw: Vec::with_capacity(256),
            stats: PortStats::default(),
            pool: None,
        }
    }

    /// Gives the port a pool of `count` buffers of `size` bytes, which [`Op::RecvMulti`] and
    /// [`Op::RecvBuf`] receive into and [`Op::SendBuf`] sends from. On io_uring the buffers
    /// are registered as a provided-buffer ring (Linux 5.19+), so the kernel picks one only
    /// when bytes arrive; where the kernel refuses the ring, the port picks a buffer when each
    /// receive is submitted (a multishot receive then ends after every chunk). The memory is
    /// reserved at once and becomes resident as buffers are first used.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a zero count or size, a count above 32,768, or a second call; `ENOMEM`.
    pub fn provide_buffers(&mut self, count: u16, size: usize) -> io::Result<()> {
        if self.pool.is_some() {
            return Err(io::Error::from_raw_os_error(code::INVALID));
        }
        let mut pool = BufPool::new(count, size)?;
        self.driver.attach_pool(&mut pool);
        self.pool = Some(pool);
        Ok(())
    }

    /// Whether the kernel picks pool buffers itself, from a provided-buffer ring.
    pub fn buffer_ring(&self) -> bool {
        self.pool.as_ref().is_some_and(BufPool::has_ring)
    }

    /// Pool buffers free (neither handed out nor in flight in a send).
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

    /// Appends the bytes of `src` to `dst`, when they fit in `dst`'s buffer (a copy; then give
    /// `src` back). Compacts the chunks a connection holds, so that many small chunks do not
    /// hold many buffers. Returns whether they were appended.
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

    /// Gives a pooled buffer back to the pool, for receives to use again.
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

    /// The mechanism under this port.
    pub fn backend(&self) -> Backend {
        self.driver.backend()
    }

    /// A few words on the backend and how it was set up, for logs: `io_uring (setup flags:
    /// ...)`, `epoll (edge-triggered)`, or `epoll (edge-triggered; io_uring unavailable: CAUSE)`
    /// when [`BackendChoice::Auto`] fell back.
    pub fn describe(&self) -> String {
        self.driver.describe(self.pool.as_ref())
    }

    /// A handle other threads use to post values to this port.
    pub fn poster(&self) -> Poster {
        Poster {
            inner: Arc::clone(&self.post),
        }
    }

    /// Counters about this port.
    pub fn stats(&self) -> PortStats {
        let mut stats = self.stats;
        stats.inline = self.driver.inline_completions();
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

    /// Queues `op`; its completion will carry `key`. Nothing reaches the kernel before the next
    /// [`wait`](Port::wait), which submits everything queued in one call.
    ///
    /// Returns the operation's [`Token`], which [`cancel`](Port::cancel) takes.
    pub fn submit(&mut self, key: u64, op: Op) -> io::Result<Token> {
        let kind = op.kind();
        if let Op::SendBufs { bufs, .. } = &op {
            if bufs.is_empty() {
                return Err(io::Error::from_raw_os_error(code::INVALID));
            }
        }
        let addr = sys::op_addr(&op);
        let token = self.table.insert(InFlight {
            key,
            kind,
            op,
            addr,
            pooled: None,
            msg: None,
        });
        let inflight = self.table.get_mut(token).expect("just inserted");
        if let Err(e) = self.driver.push(token, inflight, self.pool.as_mut()) {
            if let Some(mut inflight) = self.table.remove(token) {
                self.driver.reclaim(&mut inflight);
            }
            return Err(e);
        }
        self.stats.submitted += 1;
        Ok(token)
    }

    /// Asks for the operation named `token` to finish early; it then completes as usual, with
    /// `ECANCELED` if it had not finished. Cancelling an operation that already completed does
    /// nothing.
    pub fn cancel(&mut self, token: Token) -> io::Result<()> {
        if !self.table.contains(token) {
            return Ok(());
        }
        self.driver.cancel(token)
    }

    /// Submits everything queued and waits until at least one completion is ready or `timeout`
    /// passes (`None`: no limit; zero: do not wait), then appends every ready completion to
    /// `out`. Returns how many were appended.
    pub fn wait(
        &mut self,
        out: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.stats.waits += 1;
        self.raw.clear();
        if let Some(pool) = &mut self.pool {
            pool.refill();
        }
        self.driver
            .wait(&mut self.table, self.pool.as_mut(), timeout, &mut self.raw)?;
        let before = out.len();
        let mut to = Delivery {
            table: &mut self.table,
            driver: &mut self.driver,
            posted: &self.post.queue,
            out,
        };
        self.stats.stale += sys::deliver(&self.raw, &mut to, self.pool.as_mut());
        let added = out.len() - before;
        self.stats.completions += added as u64;
        Ok(added)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.driver.close(&mut self.table, &mut self.pool);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::rc::Rc;

    use super::*;
    use crate::op::Outcome;

    /// The next completion's outcome, waiting up to 5 s.
    fn next(port: &mut Port, done: &mut Vec<Completion>) -> Outcome {
        while done.is_empty() {
            port.wait(done, Some(Duration::from_secs(5))).unwrap();
        }
        done.remove(0).outcome
    }

    /// The port on a kernel without multishot accept (before 5.19): an `AcceptMulti` is a
    /// chain of single accepts, every connection reported as armed (`more: true`) with its
    /// peer, and a cancellation ends it with one `ECANCELED`, as on newer kernels.
    #[test]
    fn without_multishot_accept_the_port_accepts_one_at_a_time_until_cancelled() {
        if probe_uring().is_err() {
            return; // nothing to fall back from
        }
        let config = PortConfig {
            backend: BackendChoice::Uring,
            ..PortConfig::default()
        };
        let mut port = Port::new(&config).unwrap();
        let AnyDriver::Uring(driver) = &mut port.driver else {
            panic!("{}", port.describe())
        };
        driver.refuse_multishot_accept();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listener: crate::SharedFd = Rc::new(listener.into());
        let token = port.submit(7, Op::AcceptMulti { listener }).unwrap();
        let mut clients = Vec::new();
        let mut done = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).unwrap());
            let Outcome::AcceptedMulti {
                result: Ok(accepted),
                more: true,
            } = next(&mut port, &mut done)
            else {
                panic!("not an armed accept")
            };
            assert_eq!(
                accepted.peer,
                Some(clients.last().unwrap().local_addr().unwrap())
            );
            assert_eq!(port.in_flight(), 1, "still accepting");
        }
        port.cancel(token).unwrap();
        let Outcome::AcceptedMulti {
            result: Err(e),
            more: false,
        } = next(&mut port, &mut done)
        else {
            panic!("not the end of the accept")
        };
        assert!(crate::is_cancelled(&e), "{e}");
        assert_eq!(port.in_flight(), 0);
        port.wait(&mut done, Some(Duration::from_millis(20)))
            .unwrap();
        assert!(done.is_empty(), "{done:?}");
    }

    #[test]
    fn a_backend_reads_back_what_it_prints() {
        for backend in [Backend::Uring, Backend::Epoll, Backend::Iocp] {
            assert_eq!(backend.to_string().parse::<Backend>(), Ok(backend));
        }
        assert_eq!("uring".parse::<Backend>(), Ok(Backend::Uring));
        assert!(
            "auto".parse::<Backend>().is_err(),
            "a choice, not a backend"
        );
        assert!("kqueue".parse::<Backend>().is_err());
    }
}
