//! The [`Port`]: submit operations, wait for their completions in batches, post wake-ups.
//!
//! A port belongs to one thread (it is `!Send`: the ring is created single-issuer, and the fd
//! handles of its operations are `Rc`s). Threads talk to a port through a [`Poster`], which is
//! `Send + Sync` and can be cloned freely.
//!
//! # Backends
//!
//! A port runs on one of three backends (see [`Backend`]): [`PortConfig::backend`] chooses,
//! and [`Port::backend`] and [`Port::describe`] say which is in use. Every backend takes the
//! same operations and gives the same completions; `tests/port.rs` runs every test on each
//! backend of the system it runs on.
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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{Backend, BackendChoice, UringUnavailable};
use crate::errors::code;
use crate::op::{Completion, Op, PoolBuf, DGRAM_HEADROOM};
use crate::sys::pool::BufPool;
use crate::sys::{dispatch, AnyDriver, Driver, RawCompletion, Waker};
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

impl From<UringUnavailable> for PortError {
    fn from(e: UringUnavailable) -> PortError {
        PortError::UringUnavailable(e)
    }
}

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
    /// Pool buffers out of the pool now.
    pub pool_in_use: usize,
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
    /// The backend, with the operations in flight on it.
    driver: AnyDriver,
    post: Arc<PostBox>,
    raw: Vec<RawCompletion>,
    stats: PortStats,
    /// The buffer pool, once provided. Declared after `driver`, so the ring that may write into
    /// it is closed first.
    pool: Option<BufPool>,
    /// Batched datagram operations may be used (see [`Port::without_datagram_batches`]).
    batches: bool,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("backend", &self.backend())
            .field("in_flight", &self.in_flight())
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
        let driver = AnyDriver::open(config.backend, config.entries)?;
        Ok(Port::with_driver(driver))
    }

    fn with_driver(driver: AnyDriver) -> Port {
        let waker = dispatch!(&driver, d => d.driver.waker());
        Port {
            driver,
            post: Arc::new(PostBox {
                queue: Mutex::new(Vec::new()),
                waker,
            }),
            raw: Vec::with_capacity(256),
            stats: PortStats::default(),
            pool: None,
            batches: true,
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
        dispatch!(&mut self.driver, d => d.driver.attach_pool(&mut pool));
        self.pool = Some(pool);
        Ok(())
    }

    /// Makes this port's accepts direct, where the kernel allows: every socket accepted from
    /// now on ([`Op::Accept`], [`Op::AcceptMulti`]) is a direct descriptor
    /// ([`Socket`](crate::Socket)), a slot of a file table registered with the ring for up to
    /// `slots` sockets at once, which every operation on it names by its slot, so that the
    /// kernel neither looks a descriptor up nor counts references to its file per operation.
    /// Such a socket has no descriptor: options it needs are set on the listener (accepted
    /// sockets inherit them), and a multishot accept cannot report its peer (a single accept
    /// does, from its own completion).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::Unsupported`] on epoll and IOCP; the kernel's error where it refuses
    /// (before Linux 5.19; `EMFILE` when `slots` exceeds `RLIMIT_NOFILE`). Accepts then give
    /// descriptors, as before. [`io::ErrorKind::InvalidInput`] once an operation is in
    /// flight: an accept submitted before would complete with a descriptor that the port
    /// could not tell from a slot, so the choice is made before the first operation.
    #[cfg_attr(not(unix), allow(unused_variables))]
    pub fn accept_direct(&mut self, slots: u32) -> io::Result<()> {
        if self.in_flight() > 0 && !self.accepts_direct() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        match &mut self.driver {
            #[cfg(unix)]
            AnyDriver::Uring(d) => d.driver.accept_direct(slots),
            #[allow(unreachable_patterns)]
            _ => Err(io::Error::from(io::ErrorKind::Unsupported)),
        }
    }

    /// Whether this port's accepts give direct descriptors ([`accept_direct`](Port::accept_direct)).
    pub fn accepts_direct(&self) -> bool {
        match &self.driver {
            #[cfg(unix)]
            AnyDriver::Uring(d) => d.driver.accepts_direct(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Makes this port behave as one on a kernel without direct descriptors:
    /// [`accept_direct`](Port::accept_direct) is refused from now on, so that a caller's
    /// fallback can be chosen, and tested, anywhere.
    pub fn without_direct_accepts(&mut self) {
        #[cfg(unix)]
        if let AnyDriver::Uring(d) = &mut self.driver {
            d.driver.refuse_direct();
        }
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

    /// How many buffers the pool has (0 without a pool): their ids are below it.
    pub fn buffer_count(&self) -> usize {
        self.pool.as_ref().map_or(0, BufPool::count)
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

    /// How finely this port's [`wait`](Port::wait) keeps its timeout: its backend's
    /// [`timer_resolution`](Backend::timer_resolution).
    pub fn timer_resolution(&self) -> Duration {
        self.backend().timer_resolution()
    }

    /// A few words on the backend and how it was set up, for logs: `io_uring (setup flags:
    /// ...)`, `epoll (edge-triggered)`, or `epoll (edge-triggered; io_uring unavailable: CAUSE)`
    /// when [`BackendChoice::Auto`] fell back.
    pub fn describe(&self) -> String {
        dispatch!(&self.driver, d => d.driver.describe(self.pool.as_ref()))
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
        stats.inline = dispatch!(&self.driver, d => d.driver.inline_completions());
        if let Some(pool) = &self.pool {
            stats.pool_buffers = pool.count();
            stats.pool_peak = pool.peak();
            stats.pool_in_use = pool.count() - pool.available();
        }
        stats
    }

    /// Makes room for `ops` operations in flight at once (up to 65,536) before the port's
    /// table of operations grows: a caller that will keep many in flight (a server, one receive
    /// per connection) asks once, so the table never moves its entries on the way up; room
    /// never used costs address space, not memory.
    pub fn reserve_ops(&mut self, ops: usize) {
        dispatch!(&mut self.driver, d => d.table.reserve(ops))
    }

    /// Operations submitted whose completions have not been reaped yet.
    pub fn in_flight(&self) -> usize {
        dispatch!(&self.driver, d => d.table.len())
    }

    /// Slots of the operation table (its high-water mark of operations in flight at once).
    pub fn table_slots(&self) -> usize {
        dispatch!(&self.driver, d => d.table.capacity())
    }

    /// Whether this port receives datagrams in batches ([`Op::RecvFromMulti`]) and sends pooled
    /// ones ([`Op::SendBufTo`]): io_uring with a provided-buffer ring on a kernel with
    /// multishot `recvmsg` (Linux 6.0+), epoll (`recvmmsg`, `sendmmsg`), both with a pool whose
    /// buffers have room for a datagram ([`datagram_room`](Port::datagram_room)); not IOCP,
    /// nor after [`without_datagram_batches`](Port::without_datagram_batches). Where not, those operations
    /// are refused and a caller receives with [`Op::RecvFrom`], one datagram per operation.
    pub fn datagram_batches(&self) -> bool {
        self.batches && dispatch!(&self.driver, d => d.driver.datagram_batches(self.pool.as_ref()))
    }

    /// Makes this port behave as one on a kernel without multishot `recvmsg`: no batched
    /// datagram operations ([`datagram_batches`](Port::datagram_batches) says no), so that a
    /// caller's fallback path can be chosen, and tested, anywhere.
    pub fn without_datagram_batches(&mut self) {
        self.batches = false;
    }

    /// Makes now what `n` datagram operations ([`Op::RecvFrom`], [`Op::SendTo`],
    /// [`Op::RecvFromMulti`], [`Op::SendBufTo`]) in flight at once need, so that a caller that
    /// keeps at most `n` in flight allocates nothing per datagram, not even at a new
    /// high-water mark of operations in flight.
    pub fn stock_datagram_ops(&mut self, n: usize) {
        dispatch!(&mut self.driver, d => d.driver.stock_datagram_ops(n));
    }

    /// The longest datagram a pool buffer holds whole ([`Op::RecvFromMulti`]): the buffer size
    /// less the room the system's account of the datagram, its sender's address and a control
    /// message take ([`DGRAM_HEADROOM`], 68 bytes), on every backend.
    pub fn datagram_room(&self) -> usize {
        self.buffer_size().saturating_sub(DGRAM_HEADROOM)
    }

    /// Whether a single pooled receive that waits ([`Op::RecvBuf`] without `nowait`) reaches
    /// the system after every other operation submitted before the same
    /// [`wait`](Port::wait), whatever the order of the submissions (io_uring: its entry goes
    /// to the end of the submission queue). A caller that submits, in one batch, the echo of
    /// one connection and the next receive of another whose echo went out in the previous
    /// batch gives that peer the time of the whole batch of sends to answer: the receive then
    /// finds the data and completes as it is submitted, without waiting. Cancelling such a
    /// receive before the wait works as for any operation.
    pub fn late_single_receives(&self) -> bool {
        dispatch!(&self.driver, d => d.driver.late_single_receives())
    }

    /// Whether this port passes a segment size with a datagram send ([`Op::SendBufTo`] with a
    /// `segment`: Linux UDP segmentation offload, on io_uring and epoll); elsewhere such a
    /// send is refused with [`io::ErrorKind::Unsupported`]. The system may still refuse one
    /// (see [`os::udp_gso`](crate::os::udp_gso)).
    pub fn datagram_segments(&self) -> bool {
        cfg!(target_os = "linux")
    }

    /// Sets the bytes `buf` holds to `len` bytes from `start` in its pool buffer (as
    /// [`PoolBuf::start`] counts), to send another part of what a receive filled; false (and
    /// `buf` unchanged) when that window is not inside the buffer, or `buf` is not one of this
    /// port's pool handed out.
    pub fn set_window(&self, buf: &mut PoolBuf, start: usize, len: usize) -> bool {
        let inside = self.pool.as_ref().is_some_and(|p| {
            p.owns(buf)
                && start
                    .checked_add(len)
                    .is_some_and(|end| end <= p.buf_size())
        });
        if inside {
            *buf = std::mem::replace(buf, PoolBuf::EMPTY).window(start as u32, len as u32);
        }
        inside
    }

    /// Queues `op`; its completion will carry `key`. Nothing reaches the kernel before the next
    /// [`wait`](Port::wait), which submits everything queued in one call.
    ///
    /// Returns the operation's [`Token`], which [`cancel`](Port::cancel) takes.
    pub fn submit(&mut self, key: u64, op: Op) -> io::Result<Token> {
        if matches!(op, Op::RecvFromMulti { .. } | Op::SendBufTo { .. }) && !self.datagram_batches()
        {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        }
        if matches!(op, Op::SendBufTo { segment, .. } if segment > 0) && !self.datagram_segments() {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        }
        // A receive needs room: a buffer without spare capacity would complete with 0 bytes,
        // which reads as the end of the stream.
        if op.receives_into_a_full_buffer() {
            return Err(io::Error::from_raw_os_error(code::INVALID));
        }
        // A pool buffer is sent from only when it is one of this pool's, handed out: a handle of
        // another port's pool would make the kernel read a buffer it may be writing.
        if let Some(pool) = self.pool.as_ref() {
            if !op.pool_bufs().all(|b| pool.owns(b)) {
                return Err(io::Error::from(io::ErrorKind::InvalidInput));
            }
        }
        let pool = self.pool.as_mut();
        let token = dispatch!(&mut self.driver, d => d.submit(key, op, pool))?;
        self.stats.submitted += 1;
        Ok(token)
    }

    /// Asks for the operation named `token` to finish early; it then completes as usual, with
    /// `ECANCELED` if it had not finished. Cancelling an operation that already completed does
    /// nothing.
    pub fn cancel(&mut self, token: Token) -> io::Result<()> {
        dispatch!(&mut self.driver, d => d.cancel(token))
    }

    /// Submits everything queued and waits until at least one completion is ready or `timeout`
    /// passes (`None`: no limit; zero: do not wait), then appends every ready completion to
    /// `out`. Returns how many were appended.
    pub fn wait(
        &mut self,
        out: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.wait_from(out, None, timeout)
    }

    /// [`wait`](Port::wait) until `now + timeout` at the latest, where `now` is the caller's
    /// reading of the clock when it computed `timeout`: a loop that reads the clock once per
    /// turn anyway saves the port another reading (io_uring's alarm and epoll's deadline are
    /// taken from it).
    pub fn wait_at(
        &mut self,
        out: &mut Vec<Completion>,
        now: Instant,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.wait_from(out, Some(now), timeout)
    }

    fn wait_from(
        &mut self,
        out: &mut Vec<Completion>,
        now: Option<Instant>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        self.stats.waits += 1;
        // A timeout too long for a deadline to be represented (`Duration::MAX`) is no limit,
        // on every backend: 2^32 s is over a century.
        let timeout = timeout.filter(|d| d.as_secs() < 1 << 32);
        if let Some(pool) = &mut self.pool {
            pool.refill();
        }
        let before = out.len();
        let (raw, pool, posted) = (&mut self.raw, self.pool.as_mut(), &self.post.queue);
        self.stats.stale +=
            dispatch!(&mut self.driver, d => d.wait(raw, pool, timeout, now, posted, out))?;
        let added = out.len() - before;
        self.stats.completions += added as u64;
        Ok(added)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        dispatch!(&mut self.driver, d => d.quiesce(&mut self.pool));
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::net::{TcpListener, TcpStream};
    use std::rc::Rc;

    use super::*;
    use crate::op::Outcome;
    use crate::probe_uring;

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
        let AnyDriver::Uring(uring) = &mut port.driver else {
            panic!("{}", port.describe())
        };
        uring.driver.refuse_multishot_accept();
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

    /// A port on io_uring whose ring is entered by its registered index (where the kernel
    /// registers it, 5.18+), or by its descriptor (`by_descriptor`).
    fn uring_port(by_descriptor: bool) -> Option<Port> {
        probe_uring().ok()?;
        let config = PortConfig {
            backend: BackendChoice::Uring,
            ..PortConfig::default()
        };
        let mut port = Port::new(&config).unwrap();
        let AnyDriver::Uring(uring) = &mut port.driver else {
            panic!("{}", port.describe())
        };
        if by_descriptor {
            uring.driver.enter_by_descriptor();
        }
        Some(port)
    }

    fn enters_registered(port: &Port) -> bool {
        match &port.driver {
            AnyDriver::Uring(uring) => uring.driver.enters_registered(),
            _ => false,
        }
    }

    /// Accept, receive, send and every kind of wait (none, a short timeout passed to the
    /// kernel, the alarm, no limit) work whichever way the ring is entered.
    #[test]
    fn the_ring_works_entered_by_its_registered_index_or_by_its_descriptor() {
        for by_descriptor in [false, true] {
            let Some(mut port) = uring_port(by_descriptor) else {
                return; // no io_uring here
            };
            if by_descriptor {
                assert!(!enters_registered(&port));
            }
            let mut done = Vec::new();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let listener: crate::SharedFd = Rc::new(listener.into());
            port.submit(1, Op::Accept { listener }).unwrap();
            let mut client = TcpStream::connect(addr).unwrap();
            let Outcome::Accepted(Ok(accepted)) = next(&mut port, &mut done) else {
                panic!("not accepted")
            };
            let fd: crate::SharedFd = Rc::new(accepted.fd);
            port.submit(
                2,
                Op::Recv {
                    fd: Rc::clone(&fd),
                    buf: Vec::with_capacity(64),
                    nowait: false,
                },
            )
            .unwrap();
            // Nothing has arrived: a wait that does not block, one shorter than the alarm's
            // least (its timeout given to the kernel) and one on the alarm all come back empty.
            for timeout in [
                Duration::ZERO,
                Duration::from_micros(200),
                Duration::from_millis(2),
            ] {
                port.wait(&mut done, Some(timeout)).unwrap();
                assert!(done.is_empty(), "{done:?}");
            }
            std::io::Write::write_all(&mut client, b"ping").unwrap();
            let mut got = None;
            while got.is_none() {
                port.wait(&mut done, None).unwrap();
                if let Some(Completion {
                    outcome: Outcome::Received { buf, result },
                    ..
                }) = done.pop()
                {
                    assert_eq!(result.unwrap(), 4);
                    got = Some(buf);
                }
            }
            let buf = got.unwrap();
            assert_eq!(buf, b"ping");
            port.submit(3, Op::Send { fd, buf, at: 0 }).unwrap();
            let Outcome::Sent { result, .. } = next(&mut port, &mut done) else {
                panic!("not sent")
            };
            assert_eq!(result.unwrap(), 4);
            let mut echo = [0u8; 4];
            std::io::Read::read_exact(&mut client, &mut echo).unwrap();
            assert_eq!(&echo, b"ping");
        }
    }

    /// A thread may register 16 rings at most: a port gives its registration back when
    /// dropped, so a thread that makes port after port keeps registering them.
    #[test]
    fn a_dropped_port_gives_its_ring_registration_back() {
        let Some(first) = uring_port(false) else {
            return; // no io_uring here
        };
        let registered = enters_registered(&first);
        drop(first);
        for _ in 0..40 {
            let port = uring_port(false).unwrap();
            assert_eq!(enters_registered(&port), registered);
        }
    }
}
