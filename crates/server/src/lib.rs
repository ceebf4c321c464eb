//! # ringport-server: the echo server designs
//!
//! The servers of the article, behind one entry point, [`start`]:
//!
//! - [`completion`]: worker threads on completion ports (io_uring), the heart of ringport.
//! - [`threaded`]: the article's socket2, one thread per client on blocking sockets, guarded by
//!   `max_connections`.
//! - [`single`]: the article's socket1, one client at a time.
//!
//! Every design speaks the same protocol ([`echo`]: RFC 862 over TCP, bounded memory per
//! connection), answers the same [`Shutdown`] (stop accepting, echo what was received, close,
//! report), and returns the same [`Summary`].
//!
//! # Modules
//!
//! - [`config`]: the settings ([`ServeConfig`], [`Model`]).
//! - [`echo`]: the per-connection state machine, with no socket in it.
//! - [`completion`]: the completion model's workers (a module tree: start-up, the worker's
//!   loop, accepts, connection I/O, timeouts, the hand-off between workers sharing a listener).
//! - [`threaded`], [`single`]: the blocking models; `blocking` holds what they share (a module
//!   tree: the echo loop on a blocking socket, the table of open connections that shutdown
//!   reaches into, the accept loop and waking it at shutdown, the drain supervisor).
//! - `messages`: `--log-messages`, for every model.
//! - [`listener`]: `SO_REUSEPORT` listeners and "address in use" detection.
//! - [`shutdown`]: the graceful-shutdown trigger.
//! - [`ready`]: what a started server says about itself for programs ([`Ready`]: address,
//!   model, backend, workers), written by `serve --ready-json`.
//! - `accept_policy`: what every model does when an accept fails (pause, back-off, logging).
//! - `limits`: the connection gate and the per-address count, shared by a server's workers.
//! - [`slots`]: generation-checked connection tables.
//! - [`summary`]: counters, the shutdown summary, the live view for `serve --stats`.
//! - [`tls`]: serving TLS (`--tls-*`): the configuration, a connection's session on the
//!   completion model's buffers, the handshake counters.
//! - [`udp`]: the UDP echo (`serve --udp`, `--udp-only`), safe by default, on its own thread
//!   and completion port beside any model.

#![forbid(unsafe_code)]

mod accept_policy;
mod blocking;
pub mod completion;
pub mod config;
pub mod echo;
mod limits;
pub mod listener;
mod messages;
pub mod proxy;
pub mod ready;
pub mod shutdown;
pub mod single;
pub mod slots;
pub mod summary;
pub mod threaded;
pub mod tls;
pub mod udp;

use std::io;
use std::net::SocketAddr;

pub use config::{Model, ServeConfig, UnknownModel};
pub use ready::Ready;
pub use shutdown::Shutdown;
pub use summary::{Live, Snapshot, Summary, WorkerStats};

/// Why a server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Something already listens on the address.
    #[error("address {0} is already in use: stop the other server, or pick another --port (0 picks a free one)")]
    AddrInUse(SocketAddr),
    /// The address is not one of this machine's.
    #[error("address {0} is not available on this machine: check --bind")]
    AddrNotAvailable(SocketAddr),
    /// Binding failed for another reason.
    #[error("cannot listen on {addr}: {source}; {hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system error.
        source: io::Error,
        /// What to do.
        hint: &'static str,
    },
    /// The completion port could not be created (io_uring unavailable, ...).
    #[error("{0}")]
    Port(#[from] ringport_port::PortError),
    /// Another system error, with what was being done.
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    /// A server thread panicked.
    #[error("a server thread panicked")]
    WorkerPanicked,
}

type Join = Box<dyn FnOnce() -> Result<Summary, ServeError> + Send>;

/// A server that is accepting connections.
pub struct Running {
    ready: Ready,
    join: Join,
    live: Live,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Running {
    pub(crate) fn new(ready: Ready, join: Join, live: Live) -> Running {
        Running { ready, join, live }
    }

    /// A live view of the server's counters (for a periodic report such as `serve --stats`);
    /// it stays usable after [`wait`](Running::wait) has consumed the server.
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    /// The address the server listens on (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.ready.addr
    }

    /// What the server is, for programs: its address, model, backend and workers (see
    /// [`Ready`]).
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Waits until the server has shut down (after its [`Shutdown`] was triggered) and returns
    /// what it did.
    pub fn wait(self) -> Result<Summary, ServeError> {
        (self.join)()
    }
}

/// Starts a server of `config.model`. It accepts connections when this returns, and stops
/// gracefully when `shutdown` is triggered.
pub fn start(config: &ServeConfig, shutdown: Shutdown) -> Result<Running, ServeError> {
    if let Some(udp) = &config.udp {
        return udp::start(config, udp, shutdown, start_tcp);
    }
    start_tcp(config, shutdown)
}

/// Starts the TCP server of `config.model`.
fn start_tcp(config: &ServeConfig, shutdown: Shutdown) -> Result<Running, ServeError> {
    match config.model {
        Model::Completion => completion::start(config, shutdown),
        Model::Threaded => threaded::start(config, shutdown),
        Model::Single => single::start(config, shutdown),
    }
}
