//! The threaded model: the article's socket2 (one thread per client), done right.
//!
//! One thread accepts on a blocking listener; each client gets its own thread and serves it on
//! a blocking socket with the completion model's echo rules (`blocking::serve_conn`): one
//! bounded buffer, no receive before the previous chunk is echoed, partial writes continued,
//! close after EOF once everything is echoed, errors end that connection only.
//!
//! # The connection limit
//!
//! A thread per client costs a stack and a scheduler entity per connection, so the model is
//! guarded by `max_connections` (`--max-connections`, by default derived from the open-file
//! limit and at most [`DEFAULT_MAX`]). A connection beyond the limit is closed at once and
//! counted in `refused_limit`; one beyond `--max-per-ip` from its address, in `refused_per_ip`;
//! one for which no thread can be created (`EAGAIN` from `clone`: thread or memory limits), in
//! `accept_errors`. The idle and write timeouts are the sockets' own (see the `blocking` module). A warning is logged once when such an episode starts and an info line when it ends,
//! never a line per connection; the server neither crashes nor spins (accepting continues at
//! the pace clients arrive). Connection threads run on small stacks ([`STACK_SIZE`]): the
//! buffer lives on the heap.
//!
//! # Shutdown order
//!
//! 1. [`Shutdown::trigger`](crate::Shutdown::trigger) marks the drain, gives every open
//!    connection `SHUT_RD` (a blocked receive returns; no receive waits from now on) and wakes
//!    the blocked `accept` with one connection to the server's own address (see the `blocking` module).
//! 2. The accept thread stops waiting for clients; those already in the backlog are accepted
//!    without waiting and drained too; then the listener is closed.
//! 3. Each connection echoes what it had received and closes when a receive finds nothing.
//! 4. At the drain deadline (`--drain-timeout`) the supervisor shuts the remaining connections
//!    down both ways (a write blocked on a client that does not read fails) and counts them as
//!    forced closes.
//! 5. The accept thread waits for every connection thread (at most 2 s past the deadline), joins
//!    them, and the summary is returned.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::{error, info, warn};

use crate::accept_policy::Episode;
use crate::blocking::{self, BlockingModel, ConnCtx, Refused, Registry};
use crate::shutdown::Shutdown;
use crate::summary::WorkerStats;
use crate::{Model, Running, ServeConfig, ServeError};

/// The most connections (threads) when `--max-connections` is not given.
pub const DEFAULT_MAX: usize = 10_000;

/// The stack of a connection thread. The echo loop needs little; the buffer is on the heap.
pub const STACK_SIZE: usize = 256 * 1024;

/// Binds the listener and starts the accept thread.
pub fn start(cfg: &ServeConfig, shutdown: Shutdown) -> Result<Running, ServeError> {
    let mut cfg = cfg.clone();
    let max = if cfg.max_connections == 0 {
        cfg.effective_max_connections().min(DEFAULT_MAX)
    } else {
        cfg.max_connections
    };
    cfg.max_connections = max;
    let per_ip = cfg.max_per_ip;
    blocking::start(
        &cfg.clone(),
        shutdown,
        Model::Threaded,
        max,
        per_ip,
        move |registry| Threaded::new(cfg, registry),
    )
}

struct Threaded {
    cfg: ServeConfig,
    registry: Arc<Registry>,
    handles: Vec<JoinHandle<()>>,
    reap_at: usize,
    at_limit: Episode,
    no_thread: Episode,
}

// The per-address episode is logged by the registry's `PerIp`.

impl Threaded {
    fn new(cfg: ServeConfig, registry: Arc<Registry>) -> Threaded {
        Threaded {
            cfg,
            registry,
            handles: Vec::new(),
            reap_at: 64,
            at_limit: Episode::default(),
            no_thread: Episode::default(),
        }
    }

    /// Drops the handles of threads that have ended, so they do not pile up.
    fn reap(&mut self) {
        if self.handles.len() >= self.reap_at {
            self.handles.retain(|h| !h.is_finished());
            self.reap_at = (self.handles.len() * 2).max(64);
        }
    }
}

impl BlockingModel for Threaded {
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, stats: &mut WorkerStats) {
        let stream = Arc::new(stream);
        let mut token = match self.registry.register(&stream) {
            Ok(token) => token,
            Err(Refused::PerIp) => {
                stats.refused_per_ip += 1;
                return;
            }
            Err(Refused::Full) => {
                stats.refused_limit += 1;
                if self.at_limit.hit() {
                    warn!(
                        max_connections = self.cfg.max_connections,
                        "{} connections are open (--max-connections): closing new connections at once until one ends",
                        self.cfg.max_connections
                    );
                }
                return;
            }
            Err(Refused::Forced) => {
                stats.forced_closes += 1;
                return;
            }
        };
        if let Some(n) = self.at_limit.end() {
            info!("below --max-connections again; {n} connections were closed at the limit");
        }
        let id = token.id();
        let registry = self.registry.clone();
        let buffer_size = self.cfg.buffer_size;
        let log_messages = self.cfg.log_messages;
        let idle_timeout = self.cfg.idle_timeout;
        let write_timeout = self.cfg.write_timeout;
        let tls = self.cfg.tls.clone();
        let websocket = self.cfg.websocket;
        let proxy = self.cfg.proxy_protocol;
        let spawned = std::thread::Builder::new()
            .name(format!("ringport-c{id}"))
            .stack_size(STACK_SIZE)
            .spawn(move || {
                let mut ctx = ConnCtx {
                    registry: &registry,
                    buffer_size,
                    log_messages,
                    worker: id as usize,
                    conn: id,
                    peer: Some(peer),
                    idle_timeout,
                    write_timeout,
                    tls: tls.as_ref(),
                    websocket,
                };
                let conn_stats = blocking::serve_accepted(&stream, &mut ctx, &mut token, proxy);
                registry.add_stats(&conn_stats);
                // Closes the socket, then leaves the table (the server may then be done).
                drop(stream);
                drop(token);
            });
        match spawned {
            Ok(handle) => {
                if let Some(n) = self.no_thread.end() {
                    info!("threads can be created again; {n} connections were closed meanwhile");
                }
                self.handles.push(handle);
                self.reap();
            }
            Err(e) => {
                // The closure (with the socket and the table entry) was dropped: closed at once.
                stats.accept_errors += 1;
                if self.no_thread.hit() {
                    warn!(
                        open = self.registry.len(),
                        "cannot create a thread for a new connection: {e}; closing new connections at once until threads can be created (lower --max-connections, or raise the thread and memory limits)"
                    );
                }
            }
        }
    }

    fn finish(self, all_closed: bool) {
        let mut panicked = 0;
        for handle in self.handles {
            if all_closed || handle.is_finished() {
                panicked += usize::from(handle.join().is_err());
            }
        }
        if panicked > 0 {
            error!(threads = panicked, "connection threads panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn config(max_connections: usize) -> ServeConfig {
        ServeConfig {
            port: 0,
            model: crate::Model::Threaded,
            max_connections,
            drain_timeout: Duration::from_secs(2),
            ..ServeConfig::default()
        }
    }

    fn round_trip(s: &mut TcpStream, msg: &[u8]) {
        s.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg);
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    #[test]
    fn the_connection_beyond_the_limit_is_closed_at_once_and_counted() {
        let shutdown = Shutdown::new();
        let running = start(&config(2), shutdown.clone()).unwrap();
        let addr = running.local_addr();
        let mut a = connect(addr);
        let mut b = connect(addr);
        round_trip(&mut a, b"first");
        round_trip(&mut b, b"second");
        let mut c = connect(addr);
        let mut buf = [0u8; 8];
        // Closed by the server without a byte (EOF, or a reset if our write raced the close).
        let _ = c.write_all(b"third");
        match c.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("the third connection got {n} bytes back"),
            Err(e) => assert!(
                e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut,
                "not closed at once: {e}"
            ),
        }
        round_trip(&mut a, b"still here");
        round_trip(&mut b, b"me too");
        // Once one ends, a new one is served again.
        drop(a);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut d = connect(addr);
            if d.write_all(b"again").is_ok() {
                let mut back = [0u8; 5];
                if d.read_exact(&mut back).is_ok() {
                    assert_eq!(&back, b"again");
                    break;
                }
            }
            assert!(std::time::Instant::now() < deadline, "never served again");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(b);
        shutdown.trigger();
        let summary = running.wait().unwrap();
        assert_eq!(summary.model, "threaded");
        assert_eq!(summary.backend, "blocking sockets");
        let t = summary.total();
        assert!(t.refused_limit >= 1, "{t:?}");
        assert!(t.closed >= 3, "{t:?}");
        assert_eq!(t.forced_closes, 0, "{t:?}");
    }

    #[test]
    fn shutdown_with_no_client_returns_promptly() {
        let shutdown = Shutdown::new();
        let running = start(&config(10), shutdown.clone()).unwrap();
        shutdown.trigger();
        // Returns at all: no client is needed to wake the acceptor (bounded, not timed).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(running.wait()));
        let summary = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server never returned after shutdown with no client")
            .unwrap();
        assert_eq!(
            summary.total().accepted,
            0,
            "the wake-up connection is not counted"
        );
    }
}
