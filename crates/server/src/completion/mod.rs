//! The completion model: the article's ServerIOCP on a completion port per worker thread.
//!
//! Each worker owns a [`Port`] with a buffer pool, a `SO_REUSEPORT` listener with a multishot
//! accept in flight, and a table of connections. (On Windows, without `SO_REUSEPORT`, the workers
//! share one listener: worker 0 accepts and hands connections to the others, see `handoff`.) A connection has a multishot receive armed
//! (taking a pool buffer only when bytes arrive, so an idle connection holds none) and at most
//! one send in flight, which sends the very buffer the kernel filled and gives it back to the
//! pool when done. Its [`MultiEcho`](crate::echo::MultiEcho) state machine holds the rules (the
//! queue of received chunks bounded by bytes, backpressure by cancelling and re-arming the
//! receive, drain, forced close); the worker only carries its steps out. One turn of the loop is
//! one [`Port::wait`]: everything queued is submitted and every ready completion reaped, in one
//! system call.
//!
//! # Keys
//!
//! The key of a connection's operations packs its slot in the table and the slot's generation
//! (`generation << 32 | slot`); a completion whose generation no longer matches is stale,
//! counted, and dropped. Accepts use [`ACCEPT_KEY`]; posted values are [`SHUTDOWN`].
//!
//! # Shutdown order
//!
//! 1. A [`SHUTDOWN`] completion arrives (posted by [`Shutdown::trigger`]).
//! 2. The accept in flight is cancelled; the clients already in the listen backlog are taken
//!    in (non-blocking accepts) so that closing the listener resets nobody; the listener closes.
//! 3. Every connection is told to drain: its multishot receive is cancelled; what was already
//!    received is echoed; receives from then on are single and do not wait; connections with
//!    nothing left close, once the client has acknowledged what they sent (they linger until
//!    then; on Windows they send their FIN and drop what arrives until the client's end: see
//!    `conn`'s `linger`).
//! 4. At the drain deadline, whatever remains is cancelled and closed.
//! 5. The loop ends when no connection and no accept is left; the worker returns its counters.
//!
//! # Limits
//!
//! - **Connections** (`max_connections`, shared by the workers through a [`Gate`]): a worker
//!   takes a place for each connection it accepts; one that finds none holds that connection
//!   unserved and submits no further accept (no spinning: clients wait in the listen backlog)
//!   until a connection closes anywhere and the gate posts it `SLOT_FREE` through its port.
//! - **Per IP address** (`max_per_ip`): a connection beyond it is closed as soon as accepted.
//! - **Timeouts**, by one scan of the worker's table per tick (a second, shorter for short
//!   timeouts), never a timer per operation: each connection records the time of its last
//!   progress (coarse, the loop's clock in milliseconds); one waiting for its peer's bytes longer
//!   than `idle_timeout`, or for its peer to read its echo longer than `write_timeout`, is
//!   expired: its operation is cancelled *through the port*, and its completion leads to the
//!   close. A slot is freed only when the close's completion is reaped, so no completion of a
//!   connection can outlive its slot.
//! - **Accept errors**: the accept policy (`accept_policy`) shared with the blocking
//!   models: out of descriptors or memory pauses accepting, 100 ms doubling to 1 s, logged once
//!   per episode; other errors are skipped.
//!
//! The worker publishes its counters at each tick for [`Live`](crate::summary::Live) readers
//! (`serve --stats`).
//!
//! # Modules
//!
//! - this one: start-up ([`start`]: listeners, backend, one thread per worker, its port and
//!   buffer pool) and the constants the model is built on.
//! - `worker`: the `Worker` and its loop: wait, dispatch each completion,
//!   the drain and the forced close at shutdown.
//! - `accept`: the accept state machine: multishot accept (one at a time inside the port on
//!   kernels that refuse it), the connection gate and parked connections, failed accepts, the
//!   listen backlog at shutdown.
//! - `conn`: a connection's I/O: carrying out `MultiEcho`'s steps (receive, send, cancel,
//!   close), buffers starved by an empty pool, freeing the slot.
//! - `peer`: a connection's peer address, kept compactly in the table.
//! - `timeouts`: the idle and write timeouts, by one scan of the table per tick.
//! - `handoff`: workers sharing one listener (Windows): the acceptor's round-robin hand-off
//!   and each worker's inbox.
//! - `tls_conn`: TLS connections (`--tls-*`): rustls' unbuffered API over buffers each
//!   connection owns, carried out with owned-buffer receives and sends, in a table of their
//!   own.
//! - `ws_conn`: WebSocket connections (`--websocket`): the `WsEcho` state machine over an
//!   input and two output buffers each connection owns (a receive and a send in flight at
//!   once), in a table of their own.
//! - `owned`: what TLS and WebSocket connections share: their tables with tagged keys, the
//!   operations in flight, submit, force, close, the drain and the per-tick timeouts.

mod accept;
mod conn;
mod handoff;
mod owned;
mod peer;
mod proxy_conn;
mod timeouts;
mod tls_conn;
mod worker;
mod ws_conn;
mod wss;

use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use ringport_port::Port;
use socket2::Socket;
use tracing::{info, warn};

use crate::limits::{Gate, PerIp};
use crate::shutdown::Shutdown;
use crate::summary::{Live, Snapshot, Summary, WorkerStats};
use crate::{listener, Model, Running, ServeConfig, ServeError};

use handoff::{Handoff, Inbox};
use worker::Worker;

/// The key of accept operations.
pub const ACCEPT_KEY: u64 = u64::MAX;
/// The value posted to a worker to start its graceful shutdown.
pub const SHUTDOWN: u64 = 1;

/// Buffers in each worker's pool (a provided-buffer ring on io_uring).
///
/// A multishot receive may take up to 32 buffers per wake-up before its owner can stop it, so a
/// peer that sends much and reads nothing can hold a few dozen for a while; the pool is sized so
/// that a hundred such peers per worker still leave buffers for everyone else. The memory
/// (64 MiB of address space at 16 KiB buffers) becomes resident only as pages of it are first
/// used: the ring's working set keeps that to the buffers in use at once, and a small message
/// touches one page of its buffer.
pub const POOL_BUFFERS: u16 = 4096;
/// The largest pool buffer; a pool buffer is `--buffer-size` bytes up to this (16 KiB; at the
/// default `--buffer-size` of 64 KiB a connection's bound is four buffers).
///
/// Large buffers move bulk bytes in few, large operations: a 64 KiB message arrives in a few
/// receives (bundles where the kernel has them) and leaves in one gathered send (2 KiB buffers
/// made a 64 KiB message 32 receives and sends, at about 1.5x the CPU per round trip). A small message costs no more in a large buffer: it touches one page of it,
/// and the ring's working set (see the port's `BufPool::refill`) keeps the pages in use few.
/// Larger buffers gain nothing on loopback, whose segments are at most 64 KiB, and would make
/// every small message pin more memory.
pub const POOL_BUFFER_MAX: usize = 16_384;

/// Binds the listeners, starts the workers and returns once every worker has its port.
pub fn start(cfg: &ServeConfig, shutdown: Shutdown) -> Result<Running, ServeError> {
    let workers = cfg.workers.max(1);
    let (listeners, addr) = listener::bind_listeners(cfg.addr(), workers, cfg.backlog)?;
    let max = cfg.effective_max_connections();
    if let Ok((soft, _)) = ringport_os::limits::nofile() {
        if max as u64 >= soft {
            warn!(
                max_connections = max,
                nofile = soft,
                "--max-connections is above the open-file limit (ulimit -n): accepts beyond it fail with EMFILE and back off"
            );
        }
    }
    let gate = Arc::new(Gate::new(max, workers));
    let per_ip = Arc::new(PerIp::of(cfg));
    let live_slots = Arc::new(Mutex::new(vec![Snapshot::default(); workers]));
    // Decide the backend once (one log line if io_uring is unavailable and auto falls back),
    // then give every worker the decision.
    let resolved = cfg
        .port_config
        .backend
        .resolve()
        .map_err(|e| ServeError::Port(ringport_port::PortError::UringUnavailable(e)))?;
    let mut worker_cfg = cfg.clone();
    worker_cfg.port_config.backend = resolved.into();
    // One listener per worker (SO_REUSEPORT), or one for all (Windows): then worker 0 accepts
    // and hands connections to the others (see `handoff`).
    let inboxes: Vec<Arc<Inbox>> = if listeners.len() < workers {
        (0..workers).map(|_| Arc::default()).collect()
    } else {
        Vec::new()
    };
    let mut listeners = listeners.into_iter();
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(workers);
    for id in 0..workers {
        let accepting = Accepting {
            listener: listeners.next(),
            handoff: (!inboxes.is_empty() && id == 0).then(|| Handoff::new(inboxes.clone())),
            inbox: (!inboxes.is_empty() && id > 0).then(|| Arc::clone(&inboxes[id])),
        };
        let cfg = worker_cfg.clone();
        let ready = ready_tx.clone();
        let shared = Shared {
            gate: Arc::clone(&gate),
            per_ip: Arc::clone(&per_ip),
            live: Arc::clone(&live_slots),
        };
        let handle = std::thread::Builder::new()
            .name(format!("ringport-w{id}"))
            .spawn(move || worker_main(id, &cfg, accepting, shared, ready))
            .map_err(|e| ServeError::Io("cannot start a worker thread".into(), e))?;
        handles.push(handle);
    }
    drop(ready_tx);
    let mut backend = String::new();
    let mut failure = None;
    let mut direct_fds = true;
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok((poster, describe, direct))) => {
                backend = describe;
                direct_fds &= direct;
                shutdown.on_trigger(move || {
                    let _ = poster.post(SHUTDOWN);
                });
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(ServeError::WorkerPanicked),
        }
    }
    if let Some(e) = failure {
        shutdown.trigger();
        for h in handles {
            let _ = h.join();
        }
        return Err(e);
    }
    info!(%addr, workers, backend = %backend, max_connections = max, max_per_ip = cfg.max_per_ip, "completion model ready");
    let live =
        Live::per_worker(move || live_slots.lock().unwrap_or_else(|p| p.into_inner()).clone());
    let backend_detail = backend.clone();
    let started = Instant::now();
    let join = move || {
        let mut summary = Summary {
            model: "completion".into(),
            backend,
            ..Summary::default()
        };
        for h in handles {
            summary
                .workers
                .push(h.join().map_err(|_| ServeError::WorkerPanicked)?);
        }
        summary.uptime = started.elapsed();
        Ok(summary)
    };
    let ready = crate::Ready {
        addr,
        model: Model::Completion,
        backend: Some(resolved),
        backend_detail,
        workers: Some(workers),
        pid: std::process::id(),
        tls: cfg.tls.is_some(),
        udp: false,
        websocket: cfg.websocket.is_some(),
        direct_fds,
    };
    Ok(Running::new(ready, Box::new(join), live))
}

/// What the workers of one server share.
struct Shared {
    gate: Arc<Gate>,
    per_ip: Arc<PerIp>,
    live: Arc<Mutex<Vec<Snapshot>>>,
}

/// A worker's poster, its port's description, and whether it accepts direct descriptors.
type Ready = mpsc::Sender<Result<(ringport_port::Poster, String, bool), ServeError>>;

/// Where a worker's connections come from: its own listener, and, when the workers share one
/// listener, the acceptor's hand-off (worker 0) or the worker's inbox (the others).
struct Accepting {
    listener: Option<Socket>,
    handoff: Option<Handoff>,
    inbox: Option<Arc<Inbox>>,
}

fn worker_main(
    id: usize,
    cfg: &ServeConfig,
    accepting: Accepting,
    shared: Shared,
    ready: Ready,
) -> WorkerStats {
    let Accepting {
        listener,
        handoff,
        inbox,
    } = accepting;
    let mut port = match Port::new(&cfg.port_config) {
        Ok(port) => port,
        Err(e) => {
            let _ = ready.send(Err(ServeError::Port(e)));
            return WorkerStats::default();
        }
    };
    if let Err(e) = port.provide_buffers(POOL_BUFFERS, pool_buffer_size(cfg)) {
        let _ = ready.send(Err(ServeError::Io(
            "cannot allocate the worker's buffer pool".into(),
            e,
        )));
        return WorkerStats::default();
    }
    // An idle connection keeps one receive in flight: room for the connections the worker may
    // hold, so that its table of operations does not grow (and move) on the way up.
    port.reserve_ops(cfg.effective_max_connections().saturating_add(64));
    let direct = handoff.is_none()
        && inbox.is_none()
        && direct_accepts(id, cfg, &mut port, listener.as_ref());
    shared.gate.register(id, port.poster());
    if let Some(inbox) = &inbox {
        inbox.open(port.poster());
    }
    let describe = if direct {
        format!("{}; direct descriptors", port.describe())
    } else {
        port.describe()
    };
    let _ = ready.send(Ok((port.poster(), describe, direct)));
    drop(ready);
    let listener = listener.map(|l| Rc::new(l.into()));
    let mut worker = Worker::new(id, cfg, port, listener, shared);
    worker.handoff = handoff;
    worker.inbox = inbox;
    worker.run()
}

/// Makes `port`'s accepts direct (io_uring direct descriptors) when `--direct-fds` asks and
/// the connections are the plaintext echo's; returns whether they are. The accepted sockets
/// have no descriptor, so what the worker would set on each (`TCP_NODELAY`) is set on the
/// listener, which they inherit. The file table has room for the server's whole connection
/// limit (one worker may hold them all) and the connections parked at it, within the
/// open-file limit, which the kernel holds a table to; where it refuses, accepted sockets are
/// descriptors, as without the flag.
fn direct_accepts(
    id: usize,
    cfg: &ServeConfig,
    port: &mut Port,
    listener: Option<&Socket>,
) -> bool {
    let Some(listener) = listener else {
        return false;
    };
    if !cfg.direct_fds || cfg.tls.is_some() || cfg.websocket.is_some() {
        return false;
    }
    if let Err(e) = listener.set_tcp_nodelay(true) {
        warn!(
            worker = id,
            "cannot set TCP_NODELAY on the listener ({e}): accepting descriptors"
        );
        return false;
    }
    let soft = ringport_os::limits::nofile().map_or(1024, |(soft, _)| soft);
    let wanted = cfg.effective_max_connections().saturating_add(PARKED_SLOTS) as u64;
    let slots = u32::try_from(wanted.min(soft)).unwrap_or(u32::MAX);
    match port.accept_direct(slots) {
        Ok(()) => true,
        Err(e) => {
            if id == 0 {
                warn!(
                    "--direct-fds on: direct descriptors unavailable ({e}); accepted sockets \
                     are descriptors"
                );
            }
            false
        }
    }
}

/// Slots of a worker's direct-descriptor table beyond the connection limit: the connections a
/// multishot accept took before the worker saw the limit reached, parked until a place frees.
const PARKED_SLOTS: usize = 256;

/// The size of the pool's buffers: `buffer_size`, at most [`POOL_BUFFER_MAX`].
pub(crate) fn pool_buffer_size(cfg: &ServeConfig) -> usize {
    cfg.buffer_size.clamp(1, POOL_BUFFER_MAX)
}

/// The most pool buffers a connection may hold: its bound in buffers, plus one, so that a
/// connection whose echo is being sent may take its next message (with one buffer per bound,
/// a held buffer would otherwise stop the receive after every message).
pub(crate) fn max_chunks(cfg: &ServeConfig) -> usize {
    cfg.buffer_size.div_ceil(pool_buffer_size(cfg)).max(1) + 1
}

/// The most received bytes a connection may hold before they are echoed: what its
/// [`max_chunks`] buffers hold (80 KiB at the default): a stream's next bytes arrive while the
/// last are sent, and what arrived meanwhile leaves in one gathered send, so that a bound of
/// `buffer_size` bytes does not alternate one receive and one send per buffer.
pub(crate) fn recv_limit(cfg: &ServeConfig) -> usize {
    max_chunks(cfg) * pool_buffer_size(cfg)
}

#[cfg(test)]
mod pool_size_tests {
    use super::*;

    #[test]
    fn pool_buffers_are_the_bound_up_to_their_largest() {
        let cfg = |buffer_size| ServeConfig {
            buffer_size,
            ..ServeConfig::default()
        };
        let size = |buffer_size| pool_buffer_size(&cfg(buffer_size));
        assert_eq!(size(ServeConfig::default().buffer_size), POOL_BUFFER_MAX);
        assert_eq!(size(1000), 1000, "never more than the bound itself");
        assert_eq!(size(1 << 24), POOL_BUFFER_MAX);
        // The bound in buffers plus one.
        assert_eq!(max_chunks(&cfg(1000)), 2);
        assert_eq!(max_chunks(&cfg(16_384)), 2);
        assert_eq!(max_chunks(&cfg(65_536)), 5);
        assert_eq!(max_chunks(&cfg(70_000)), 6);
        // Bytes: what those buffers hold.
        assert_eq!(recv_limit(&cfg(1000)), 2000);
        assert_eq!(recv_limit(&cfg(16_384)), 32_768);
        assert_eq!(recv_limit(&cfg(70_000)), 6 * 16_384);
    }
}
