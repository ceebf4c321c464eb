//! The table of a blocking server's open connections, which shutdown reaches into ([`Registry`]):
//! the limits checked when a connection registers, the drain and the forced close of every open
//! socket, the waits of the accept loop and the drain supervisor, and the server's counters.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown as Direction, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::limits::PerIp;
use crate::summary::{Snapshot, WorkerStats};

/// Why [`Registry::register`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_connections` are open.
    Full,
    /// `max_per_ip` are open from the connection's address.
    PerIp,
    /// The drain deadline has passed: nothing more is served.
    Forced,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Arc<TcpStream>>,
    next_id: u64,
    /// The server loop has ended (the supervisor may stop waiting for a shutdown).
    finished: bool,
}

/// The open connections of a blocking server, so that shutdown can reach their sockets, with the
/// server's counters.
pub(crate) struct Registry {
    max: usize,
    draining: AtomicBool,
    forced: AtomicBool,
    table: Mutex<Table>,
    /// Signalled when a connection leaves, when the drain starts and when the server finishes.
    changed: Condvar,
    stats: Mutex<WorkerStats>,
    per_ip: PerIp,
    /// `--proxy-protocol`: a connection counts under `per_ip` once its header is read
    /// ([`Registered::readdress`]), not from the proxy's address at accept.
    proxied: bool,
    /// The accept loop's counters, published after each accept for live readers.
    acceptor: Mutex<WorkerStats>,
    /// Bytes received and echoed so far, connections still open included (live readers).
    live_in: AtomicU64,
    live_out: AtomicU64,
}

/// A registered connection; leaving the table when dropped.
pub(crate) struct Registered {
    registry: Arc<Registry>,
    id: u64,
    ip: Option<IpAddr>,
}

impl Registered {
    /// The connection's number (1, 2, ...), shown by `--log-messages`.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The connection's address is `ip` (its PROXY header's): counted there under the
    /// per-address limit from now on. False, and counted nowhere, if that address is at its
    /// limit.
    pub(crate) fn readdress(&mut self, ip: Option<IpAddr>) -> bool {
        self.registry.per_ip.leave(self.ip);
        let admitted = self.registry.per_ip.admit(ip);
        self.ip = ip.filter(|_| admitted);
        admitted
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.per_ip.leave(self.ip);
        let mut table = self.registry.lock();
        table.conns.remove(&self.id);
        if table.conns.is_empty() {
            self.registry.changed.notify_all();
        }
    }
}

impl Registry {
    /// A registry that holds at most `max` connections (at least 1), and at most `max_per_ip`
    /// from one address (`0`: no limit).
    #[cfg(test)]
    pub(crate) fn new(max: usize, max_per_ip: usize) -> Arc<Registry> {
        Registry::with_per_ip(max, PerIp::new(max_per_ip), false)
    }

    /// A registry that holds at most `max` connections (at least 1), under `per_ip`, counted
    /// from their PROXY headers' addresses if `proxied`.
    pub(crate) fn with_per_ip(max: usize, per_ip: PerIp, proxied: bool) -> Arc<Registry> {
        Arc::new(Registry {
            per_ip,
            proxied,
            acceptor: Mutex::new(WorkerStats::default()),
            live_in: AtomicU64::new(0),
            live_out: AtomicU64::new(0),
            max: max.max(1),
            draining: AtomicBool::new(false),
            forced: AtomicBool::new(false),
            table: Mutex::new(Table::default()),
            changed: Condvar::new(),
            stats: Mutex::new(WorkerStats::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `stream` to the table, unless it is full or the drain time is up. A connection
    /// registered while draining gets its `SHUT_RD` at once.
    pub(crate) fn register(
        self: &Arc<Self>,
        stream: &Arc<TcpStream>,
    ) -> Result<Registered, Refused> {
        let ip = if self.proxied {
            None
        } else {
            stream.peer_addr().ok().map(|p| p.ip())
        };
        let mut table = self.lock();
        if self.forced.load(Ordering::SeqCst) {
            return Err(Refused::Forced);
        }
        if table.conns.len() >= self.max {
            return Err(Refused::Full);
        }
        if !self.per_ip.admit(ip) {
            return Err(Refused::PerIp);
        }
        table.next_id += 1;
        let id = table.next_id;
        table.conns.insert(id, stream.clone());
        #[cfg(unix)]
        if self.draining.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Direction::Read);
        }
        Ok(Registered {
            registry: self.clone(),
            id,
            ip,
        })
    }

    /// Connections open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Whether the graceful shutdown has started.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether the drain deadline has passed.
    pub(crate) fn is_forced(&self) -> bool {
        self.forced.load(Ordering::SeqCst)
    }

    /// Starts the drain: every open connection stops waiting for data (`SHUT_RD`). Returns how
    /// many were open. Cheap and non-blocking: it runs in whichever thread triggers the shutdown.
    pub(crate) fn drain(&self) -> usize {
        let table = self.lock();
        self.draining.store(true, Ordering::SeqCst);
        // On Windows the receives look at the flag between their slices (see `conn`).
        #[cfg(unix)]
        for stream in table.conns.values() {
            let _ = stream.shutdown(Direction::Read);
        }
        self.changed.notify_all();
        table.conns.len()
    }

    /// The drain time is up: every open connection is shut down both ways (a blocked write
    /// fails at once) and no connection is registered any more. Returns how many were open.
    pub(crate) fn force(&self) -> usize {
        let table = self.lock();
        self.draining.store(true, Ordering::SeqCst);
        self.forced.store(true, Ordering::SeqCst);
        for stream in table.conns.values() {
            let _ = stream.shutdown(Direction::Both);
            // Windows: shutdown wakes no blocked send; cancelling it does.
            #[cfg(windows)]
            let _ = ringport_port::os::cancel_io(&**stream);
        }
        table.conns.len()
    }

    /// The server takes no more connections (its listener is closed): once the open ones have
    /// closed, it is done. A supervisor still waiting for a drain returns.
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.changed.notify_all();
    }

    /// Waits until the drain starts or the server finishes; true if the drain started.
    pub(crate) fn wait_for_drain(&self) -> bool {
        let mut table = self.lock();
        loop {
            if self.is_draining() {
                return true;
            }
            if table.finished {
                return false;
            }
            table = self.changed.wait(table).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Sleeps for `pause`, or less if the drain starts meanwhile.
    pub(crate) fn pause(&self, pause: Duration) {
        let deadline = Instant::now() + pause;
        let mut table = self.lock();
        while !self.is_draining() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            table = self
                .changed
                .wait_timeout(table, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until the server has stopped taking connections ([`finish`](Registry::finish))
    /// and none is open, at most until `deadline`; true if so.
    pub(crate) fn wait_done(&self, deadline: Instant) -> bool {
        let mut table = self.lock();
        loop {
            if table.finished && table.conns.is_empty() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            table = self
                .changed
                .wait_timeout(table, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Counts `n` bytes received by an open connection, for live readers.
    pub(crate) fn received(&self, n: u64) {
        self.live_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` bytes echoed by an open connection, for live readers.
    pub(crate) fn sent(&self, n: u64) {
        self.live_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds a connection's counters to the server's.
    pub(crate) fn add_stats(&self, stats: &WorkerStats) {
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(stats);
    }

    /// The server's counters so far.
    pub(crate) fn stats(&self) -> WorkerStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the accept loop's counters for live readers.
    pub(crate) fn publish_acceptor(&self, stats: &WorkerStats) {
        *self.acceptor.lock().unwrap_or_else(|p| p.into_inner()) = *stats;
    }

    /// The counters now: the closed connections', the accept loop's, and the bytes of the
    /// connections still open.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut totals = self.stats();
        totals.add(&self.acceptor.lock().unwrap_or_else(|p| p.into_inner()));
        totals.bytes_in = self.live_in.load(Ordering::Relaxed);
        totals.bytes_out = self.live_out.load(Ordering::Relaxed);
        Snapshot {
            open: self.len() as u64,
            totals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocking::test_support::pair;

    #[test]
    fn the_registry_refuses_beyond_its_limit_and_frees_places_on_drop() {
        let reg = Registry::new(2, 0);
        let (a, _pa) = pair();
        let (b, _pb) = pair();
        let (c, _pc) = pair();
        let (a, b, c) = (Arc::new(a), Arc::new(b), Arc::new(c));
        let ra = reg.register(&a).unwrap();
        let rb = reg.register(&b).unwrap();
        assert_ne!(ra.id(), rb.id());
        assert_eq!(reg.register(&c).err(), Some(Refused::Full));
        assert_eq!(reg.len(), 2);
        drop(ra);
        assert_eq!(reg.len(), 1);
        let rc = reg.register(&c).unwrap();
        assert_eq!(reg.force(), 2);
        assert_eq!(reg.register(&a).err(), Some(Refused::Forced));
        drop((rb, rc));
        assert!(!reg.wait_done(Instant::now()), "not finished yet");
        reg.finish();
        assert!(reg.wait_done(Instant::now()));
    }
}
