//! What the two blocking models ([`threaded`](crate::threaded) and [`single`](crate::single))
//! share: the echo loop of one connection on a blocking socket, the table of open connections
//! that shutdown reaches into, the accept loop with its back-off, and the drain supervisor.
//!
//! # Waking blocked threads (no `unsafe`, no poll)
//!
//! A blocking model's threads sleep in `accept`, `read` or `write`. Shutdown reaches them so:
//!
//! - **`accept`**: [`Shutdown::trigger`] connects once to the server's own address (the
//!   *wake-up connection*). The accept returns, the loop sees the flag and stops waiting for
//!   clients. The wake-up connection is recognised by its address and closed, never counted.
//!   `shutdown(SHUT_RD)` on the listener would wake `accept` too, but on Linux it also resets
//!   every connection still in the backlog, which would lose what those clients already sent.
//! - **`read`**: every open connection gets `shutdown(SHUT_RD)`. On Linux this wakes a blocked
//!   receive, and from then on a receive never waits: it returns the bytes already queued, then
//!   0. That is exactly the completion model's drain (`Recv { nowait: true }`, closing on
//!   "would block"): what was received is echoed, nothing more is waited for.
//! - **`write`** (a client that does not read its echo): left alone until the drain deadline,
//!   then `shutdown(SHUT_RDWR)` fails it with `EPIPE` and the connection closes (a forced close).
//!
//! On Windows neither holds: `shutdown(SD_RECEIVE)` wakes no blocked receive (and resets a TCP
//! connection that has data queued), `shutdown(SD_BOTH)` no blocked send. There a receive waits
//! in slices of `RECV_SLICE` (100 ms) and looks at the drain between them (a receive that times out
//! received nothing, so nothing is lost); once draining, receives are non-blocking (the bytes
//! already queued, then "would block"); the forced close cancels the blocked send
//! (`CancelIoEx`, `ringport_port::os::cancel_io`).
//!
//! # Limits
//!
//! The [`Registry`] refuses a connection beyond `max_connections` or beyond `max_per_ip` from
//! one address (the model closes it at once and counts it). The idle and write timeouts are the
//! socket's own (`SO_RCVTIMEO`, `SO_SNDTIMEO`): a receive that waits longer than the idle timeout
//! for the peer's bytes, or a send that cannot progress for the write timeout, closes the
//! connection: no timer thread, nothing per message.
//!
//! # The backlog at shutdown
//!
//! Clients that completed the handshake before the shutdown sit in the listen backlog and may
//! already have sent data (for the single model that is every client but the one being served).
//! Stopping "accepting" means no longer *waiting* for clients: the backlog present at shutdown is
//! still taken in (non-blocking accepts until none is left, within the drain deadline) and
//! drained like every other connection, so those clients get their echo and a clean close.
//!
//! # Files
//!
//! - this one: start-up ([`start`]: the listener, the server thread, the drain supervisor, the
//!   summary and the ready line) and what differs between the models ([`BlockingModel`]).
//! - `conn`: the echo loop of one connection on a blocking socket ([`serve_conn`]).
//! - `registry`: the table of open connections that shutdown reaches into ([`Registry`]), the
//!   limits, the drain and the forced close, the server's counters.
//! - `accept`: the accept loop, with its back-off on failed accepts, the wake-up connection and
//!   the backlog at shutdown.
//! - `drain`: the drain supervisor (the drain deadline, then the forced close).
//! - `tls`: the echo loop of one TLS connection (rustls over the blocking socket).
//! - `ws`: the WebSocket echo of one connection (`serve --websocket`), plain or over TLS.

mod accept;
mod conn;
mod drain;
mod proxy;
mod registry;
#[cfg(test)]
mod test_support;
mod tls;
mod ws;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::limits::PerIp;
use crate::shutdown::Shutdown;
use crate::summary::{Live, Summary, WorkerStats};
use crate::{listener, Model, Ready, Running, ServeConfig, ServeError};

use accept::{accept_loop, Acceptor};
#[cfg(test)]
pub(crate) use conn::serve_conn;
pub(crate) use conn::ConnCtx;
use drain::supervise_drain;
pub(crate) use proxy::serve_accepted;
pub(crate) use registry::{Refused, Registry};

/// What the blocking models run on, as the log, the summary and the ready line say.
const BLOCKING: &str = "blocking sockets";

/// What differs between the blocking models: what happens to an accepted client.
pub(crate) trait BlockingModel {
    /// Takes an accepted client: serves it (single) or hands it to a thread (threaded). Counts
    /// refusals in `stats`.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, stats: &mut WorkerStats);
    /// Called once at the end, after the listener is closed; `all_closed` tells whether every
    /// connection has closed (otherwise some are stuck even after being forced).
    fn finish(self, all_closed: bool);
}

/// Binds the listener and starts a blocking model: the server thread (accept loop, then the
/// backlog at shutdown) and the drain supervisor. `make` builds the model in the server thread.
pub(crate) fn start<M, F>(
    cfg: &ServeConfig,
    shutdown: Shutdown,
    model: Model,
    max_connections: usize,
    max_per_ip: usize,
    make: F,
) -> Result<Running, ServeError>
where
    M: BlockingModel,
    F: FnOnce(Arc<Registry>) -> M + Send + 'static,
{
    let name = model.name();
    let (mut listeners, addr) = listener::bind_listeners(cfg.addr(), 1, cfg.backlog)?;
    let socket = listeners
        .pop()
        .ok_or_else(|| ServeError::Io("binding".into(), io::Error::other("no listener")))?;
    let acceptor = Acceptor::new(socket, addr).counting_mptcp(cfg.mptcp);
    let wake = acceptor.waker();
    let registry = Registry::with_per_ip(
        max_connections,
        PerIp::with_loopback(max_per_ip, cfg.max_per_ip_loopback),
        cfg.proxy_protocol.is_some(),
    );
    let drain_timeout = cfg.drain_timeout;

    let reg = registry.clone();
    let supervisor = std::thread::Builder::new()
        .name("ringport-drain".into())
        .spawn(move || supervise_drain(&reg, drain_timeout, name))
        .map_err(|e| ServeError::Io("cannot start the drain supervisor thread".into(), e))?;

    let reg = registry.clone();
    let server = std::thread::Builder::new()
        .name(format!("ringport-{name}"))
        .spawn(move || {
            let model = make(reg.clone());
            accept_loop(acceptor, &reg, model, drain_timeout, name)
        });
    let server = match server {
        Ok(handle) => handle,
        Err(e) => {
            registry.finish();
            let _ = supervisor.join();
            return Err(ServeError::Io("cannot start the server thread".into(), e));
        }
    };
    let reg = registry.clone();
    shutdown.on_trigger(move || {
        reg.drain();
        wake();
    });
    info!(%addr, model = name, "{name} model ready (blocking sockets)");
    let started = Instant::now();
    let reg = registry.clone();
    let live = Live::new(move || reg.snapshot());
    let join = move || {
        let served = server.join();
        registry.finish();
        let forced = supervisor.join().map_err(|_| ServeError::WorkerPanicked)?;
        let mut stats = served.map_err(|_| ServeError::WorkerPanicked)?;
        stats.add(&registry.stats());
        stats.forced_closes += forced;
        Ok(Summary {
            model: name.into(),
            backend: BLOCKING.into(),
            uptime: started.elapsed(),
            workers: vec![stats],
            udp: None,
        })
    };
    let ready = Ready {
        addr,
        model,
        backend: None,
        backend_detail: BLOCKING.into(),
        workers: None,
        pid: std::process::id(),
        tls: cfg.tls.is_some(),
        udp: false,
        websocket: cfg.websocket.is_some(),
        direct_fds: false,
    };
    Ok(Running::new(ready, Box::new(join), live))
}
