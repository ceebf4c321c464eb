//! # ringport-port: a completion port for Linux and Windows
//!
//! The Windows I/O completion port, rebuilt on io_uring (and on epoll where io_uring is
//! unavailable: see [`BackendChoice`]); on Windows, the real one (IOCP). Three backends, one
//! contract: what differs between them and matters to a caller is asked of the [`Backend`]
//! (for example [`Backend::timer_resolution`]). A [`Port`] belongs to one thread; the thread
//! [`submit`](Port::submit)s operations ([`Op`]: accept, recv, send, connect, shutdown, close,
//! no-op) that own their buffers and their fd handle, then [`wait`](Port::wait)s: one system
//! call submits everything queued and reaps every completion that is ready, as a batch of
//! [`Completion`]s. Other threads reach a port with a [`Poster`] (`PostQueuedCompletionStatus`),
//! which is how a server wakes its workers to shut down.
//!
//! | IOCP | here |
//! |---|---|
//! | `CreateIoCompletionPort` | [`Port::new`], one per worker thread |
//! | completion key | the `key` given to [`Port::submit`], returned in [`Completion::key`] |
//! | `OVERLAPPED` | the [`Op`], which owns its buffer until the [`Outcome`] returns it |
//! | `GetQueuedCompletionStatus(Ex)` | [`Port::wait`] |
//! | `PostQueuedCompletionStatus` | [`Poster::post`] |
//! | `CancelIoEx` | [`Port::cancel`] |
//!
//! Every operation in flight is named by a [`Token`] (slot, generation, kind) in the kernel's
//! `user_data`; a completion for a freed and reused slot is recognised and dropped, never
//! misrouted.
//!
//! # Modules
//!
//! - `port`: the [`Port`] and its [`Poster`].
//! - `backend`: which backend a port runs on ([`Backend`], [`BackendChoice`]).
//! - [`token`]: the `user_data` layout.
//! - [`op`]: operations and completions.
//! - `table`: the slab of in-flight operations, each with its driver's own state.
//! - `sys`: the contract between the port and its backends (an `unsafe trait`), the three
//!   drivers, and every `unsafe` block of the project.
//! - [`os`]: what only `unsafe` can ask of the system (Windows console control and CPU times,
//!   `cancel_io`), and the counting allocator for tests.
//! - [`errors`]: named outcomes of failed operations ([`is_cancelled`], [`is_pool_empty`]).

#![deny(unsafe_code)]

mod backend;
pub mod errors;
pub mod op;
mod port;
mod socket;
// Every `unsafe` block of the project lives here (system calls, memory shared with the kernel).
#[allow(unsafe_code)]
mod sys;
mod table;
pub mod token;

pub use backend::{probe_uring, Backend, BackendChoice, ParseBackendError, UringUnavailable};
pub use errors::{is_cancelled, is_pool_empty};
pub use op::{
    Accepted, Completion, Op, Outcome, OwnedFd, PoolBuf, SharedFd, Socket, DGRAM_BATCH,
    DGRAM_HEADROOM, DGRAM_SEGMENTS_MAX,
};
pub use port::{Port, PortConfig, PortError, PortStats, Poster};
pub use sys::os;
pub use token::{OpKind, Token};
