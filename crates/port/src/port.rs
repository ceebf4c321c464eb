//! The [`Port`]: submit operations, wait for their completions in batches, post wake-ups.
//!
//! A port belongs to one thread (it is `!Send`: the ring is created single-issuer, and the fd
//! handles of its operations are `Rc`s). Threads talk to a port through a [`Poster`], which is
//! `Send + Sync` and can be cloned freely.
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
//!     port.wait(&mut done, None)?; // one io_uring_enter: submit all, reap all
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
use std::os::fd::{IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::op::{Completion, Op};
use crate::sys::uring::{UringDriver, UringUnavailable};
use crate::sys::{self, SockAddrBuf};
use crate::table::{InFlight, OpTable};
use crate::token::Token;

/// Settings for a new port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Submission queue entries (rounded up to a power of two by the kernel). Operations beyond
    /// this many are queued in batches; nothing is refused.
    pub entries: u32,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig { entries: 1024 }
    }
}

/// The mechanism under a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// io_uring: operations are carried out by the kernel.
    Uring,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Uring => "io_uring",
        })
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

/// Counters a port keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Calls to [`Port::wait`] (each is one `io_uring_enter`).
    pub waits: u64,
    /// Operations submitted.
    pub submitted: u64,
    /// Completions delivered to the caller (posted values included).
    pub completions: u64,
    /// Completions that named a freed slot or a wrong kind: dropped, never applied.
    pub stale: u64,
}

#[derive(Debug)]
struct PostBox {
    queue: Mutex<Vec<u64>>,
    eventfd: Arc<OwnedFd>,
}

/// Posts values to a port from any thread: Linux's `PostQueuedCompletionStatus`.
///
/// Each value comes out of the port's [`wait`](Port::wait) as a [`Completion`] whose
/// [`outcome`](Completion::outcome) is [`Outcome::Posted`] and whose [`key`](Completion::key) is
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
        sys::eventfd_signal(&self.inner.eventfd)
    }
}

enum Driver {
    Uring(UringDriver),
}

/// A completion port: one per thread.
pub struct Port {
    driver: Driver,
    table: OpTable,
    post: Arc<PostBox>,
    raw: Vec<(u64, i32, u32)>,
    stats: PortStats,
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
    /// Creates a port on io_uring.
    ///
    /// # Errors
    ///
    /// [`PortError::UringUnavailable`] when io_uring cannot be used, naming the cause (seccomp,
    /// sysctl, memlock limit, kernel too old) and the remedy.
    pub fn new(config: &PortConfig) -> Result<Port, PortError> {
        let eventfd = Arc::new(sys::eventfd(false).map_err(PortError::Io)?);
        let driver = UringDriver::new(config.entries.max(8), Arc::clone(&eventfd))
            .map_err(PortError::UringUnavailable)?;
        Ok(Port {
            driver: Driver::Uring(driver),
            table: OpTable::default(),
            post: Arc::new(PostBox {
                queue: Mutex::new(Vec::new()),
                eventfd,
            }),
            raw: Vec::with_capacity(256),
            stats: PortStats::default(),
        })
    }

    /// The mechanism under this port.
    pub fn backend(&self) -> Backend {
        match self.driver {
            Driver::Uring(_) => Backend::Uring,
        }
    }

    /// A few words on how the backend was set up (for logs), e.g. the ring flags.
    pub fn describe(&self) -> String {
        match &self.driver {
            Driver::Uring(d) => format!("io_uring (setup flags: {})", d.flags()),
        }
    }

    /// A handle other threads use to post values to this port.
    pub fn poster(&self) -> Poster {
        Poster {
            inner: Arc::clone(&self.post),
        }
    }

    /// Counters about this port.
    pub fn stats(&self) -> PortStats {
        self.stats
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
        let (op, close_fd) = match op {
            Op::Close { fd } => match Rc::try_unwrap(fd) {
                // The last handle: the kernel closes the descriptor.
                Ok(owned) => (Op::Nop, Some(owned.into_raw_fd())),
                // Others still hold it: the last of them closes it when it drops.
                Err(shared) => {
                    drop(shared);
                    (Op::Nop, None)
                }
            },
            op => (op, None),
        };
        let addr = match &op {
            Op::Accept { .. } => Some(Box::new(SockAddrBuf::empty())),
            Op::Connect { addr, .. } => Some(Box::new(SockAddrBuf::from_socket_addr(addr))),
            _ => None,
        };
        let token = self.table.insert(InFlight {
            key,
            kind,
            op,
            addr,
        });
        let inflight = self.table.get_mut(token).expect("just inserted");
        let pushed = match &mut self.driver {
            Driver::Uring(d) => d.push(token, inflight, close_fd),
        };
        if let Err(e) = pushed {
            self.table.remove(token);
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
        match &mut self.driver {
            Driver::Uring(d) => d.cancel(token),
        }
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
        match &mut self.driver {
            Driver::Uring(d) => d.wait(1, timeout, &mut self.raw)?,
        }
        let before = out.len();
        self.stats.stale += sys::deliver(&self.raw, &mut self.table, &self.post.queue, out);
        let added = out.len() - before;
        self.stats.completions += added as u64;
        Ok(added)
    }
}
