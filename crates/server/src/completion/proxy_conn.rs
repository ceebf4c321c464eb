//! `--proxy-protocol` in the completion model: a connection first reads its PROXY header (see
//! [`crate::proxy`]), receiving exactly what the header still needs each time so that nothing
//! behind it is taken; then it becomes the connection it was going to be (plaintext, TLS or
//! WebSocket), with the header's address as its peer, counted under `--max-per-ip` from there.
//! On Unix, a header already queued on the socket (a proxy sends it as it connects) is taken
//! at once with two system calls that never wait: a peek that finds its end, then a receive
//! of exactly that much; the receives the port carries out are for the rest.
//! A bad header, one that does not come whole within the timeout, or a connection that ends
//! first is closed and counted by cause.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ringport_port::{is_cancelled, Accepted, Op};
use tracing::debug;

use super::owned::{Handshake, Link, Owned, Table};
use super::worker::Worker;
#[cfg(unix)]
use crate::proxy::whole_len;
use crate::proxy::{step, ProxyStats, Step};

/// The bit that marks a connection reading its PROXY header (in the slot half, as TLS's and
/// WebSocket's).
pub(super) const PROXY_TAG: u64 = 1 << 29;

/// The receive buffer a header starts with.
const RX_START: usize = 128;

/// The most of a header taken from the socket's queue at once (Unix), what it had included:
/// room for any version 1 line and a version 2 header with short TLVs.
#[cfg(unix)]
const PEEK: usize = 512;

/// A worker's connections reading their PROXY header (with the header timeout).
pub(super) struct ProxyWorker {
    table: Table<ProxyConn>,
}

impl ProxyWorker {
    pub(super) fn new(timeout: Duration) -> ProxyWorker {
        ProxyWorker {
            table: Table::new(timeout),
        }
    }

    /// Connections reading their header now.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }
}

/// One connection reading its header. Its link has no peer (nothing is counted under
/// `--max-per-ip` before the header says who the client is).
pub(super) struct ProxyConn {
    link: Link,
    /// The connection's own peer (the proxy), kept for a header that gives no address.
    accepted_from: Option<SocketAddr>,
    /// The header so far.
    got: Vec<u8>,
    /// What each receive lands in, at the end of its capacity (see `proxy_advance`).
    rx: Option<Vec<u8>>,
    /// What is counted when it closes before its header was taken.
    stats: ProxyStats,
}

impl Owned for ProxyConn {
    const TAG: u64 = PROXY_TAG;
    const NAME: &'static str = "PROXY header";

    fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    fn table<'t>(worker: &'t mut Worker<'_>) -> Option<&'t mut Table<ProxyConn>> {
        worker.proxy.as_mut().map(|p| &mut p.table)
    }

    fn advance(worker: &mut Worker<'_>, key: u64) {
        worker.proxy_advance(key);
    }

    fn handshake(&mut self, now_ms: u64, timeout_ms: u64) -> Handshake {
        if now_ms.saturating_sub(self.link.started_ms) >= timeout_ms {
            self.stats.timeout += 1;
            Handshake::Expired
        } else {
            Handshake::Pending
        }
    }

    /// The drain lets it finish reading a header that is there (its receive no longer waits).
    fn drain_closes(&self) -> bool {
        false
    }

    fn count(self, worker: &mut Worker<'_>) {
        worker.stats.proxy.add(&self.stats);
    }
}

impl Worker<'_> {
    /// A new connection reads its PROXY header first.
    pub(super) fn new_proxy_conn(&mut self, accepted: Accepted) {
        let Accepted { fd, peer } = accepted;
        // Numbered (for `--log-messages`) once served.
        let conn = ProxyConn {
            link: Link::new(Rc::new(fd), None, self.now_ms, 0),
            accepted_from: peer,
            got: Vec::new(),
            // Room for any version 1 line and a version 2 header without TLVs; grown only
            // for a longer one.
            rx: Some(Vec::with_capacity(RX_START)),
            stats: ProxyStats::default(),
        };
        let Some(key) = self.owned_insert(conn) else {
            return;
        };
        self.proxy_next(key);
    }

    /// Acts on the header so far: takes what is queued of the rest (Unix), then promotes the
    /// connection once the header is whole, refuses it if bad, or receives more.
    fn proxy_next(&mut self, key: u64) {
        let id = self.id;
        loop {
            let Some(conn) = self.owned::<ProxyConn>(key) else {
                return;
            };
            match step(&conn.got) {
                Step::Need(_) => {
                    #[cfg(unix)]
                    if self.proxy_take_queued(key) {
                        continue;
                    }
                    return self.proxy_advance(key);
                }
                Step::Done {
                    header, version, ..
                } => {
                    conn.stats.read(&header, version);
                    let peer = header.source().or(conn.accepted_from);
                    return self.proxy_promote(key, peer);
                }
                Step::Bad(bad) => {
                    debug!(worker = id, key, "PROXY header refused: {bad}");
                    conn.stats.refused(bad);
                    conn.link.forced = true;
                    return self.proxy_advance(key);
                }
            }
        }
    }

    /// Unix: takes what is queued of the header, never a byte past its end (a peek finds the
    /// end; without it, at most what the header still needs), without waiting. Whether any
    /// byte was taken.
    #[cfg(unix)]
    fn proxy_take_queued(&mut self, key: u64) -> bool {
        use ringport_port::os::{peek_nowait, recv_nowait};
        let Some(conn) = self.owned::<ProxyConn>(key) else {
            return false;
        };
        let Step::Need(need) = step(&conn.got) else {
            return false;
        };
        let Some(fd) = conn.link.fd.as_ref().and_then(|fd| fd.real()) else {
            return false;
        };
        // The header so far, then what is queued behind it.
        let mut buf = [0u8; PEEK];
        let have = conn.got.len();
        if have >= PEEK || conn.link.recv_op.is_some() {
            return false;
        }
        buf[..have].copy_from_slice(&conn.got);
        let queued = match peek_nowait(fd, &mut buf[have..]) {
            Ok(n) if n > 0 => n,
            _ => return false,
        };
        let end = have + queued;
        let want = match whole_len(&buf[..end]) {
            Some(len) if len > have => len - have,
            _ => need.min(queued),
        };
        match recv_nowait(fd, &mut buf[have..have + want]) {
            Ok(n) if n > 0 => {
                conn.got.extend_from_slice(&buf[have..have + n]);
                true
            }
            _ => false,
        }
    }

    /// Receives exactly what the header still needs (at least), or closes a finished one.
    fn proxy_advance(&mut self, key: u64) {
        let draining = self.draining;
        let Some(conn) = self.owned::<ProxyConn>(key) else {
            return;
        };
        let Some(fd) = conn.link.fd.clone() else {
            return;
        };
        if conn.link.forced {
            if conn.link.idle() {
                self.owned_close::<ProxyConn>(key);
            }
            return;
        }
        if conn.link.recv_op.is_some() {
            return;
        }
        let Step::Need(n) = step(&conn.got) else {
            return;
        };
        let Some(mut rx) = conn.rx.take() else {
            return;
        };
        // The bytes land in the spare capacity: leave exactly `n` of it (`n` is at most
        // MAX_HEADER).
        if rx.capacity() < n {
            rx = Vec::with_capacity(n);
        }
        rx.clear();
        rx.resize(rx.capacity() - n, 0);
        let op = Op::Recv {
            fd,
            buf: rx,
            nowait: draining,
        };
        self.owned_submit::<ProxyConn>(key, op, false);
    }

    /// A receive of the header ended.
    pub(super) fn on_proxy_recv(&mut self, key: u64, buf: Vec<u8>, result: io::Result<usize>) {
        let id = self.id;
        let Some(conn) = self.owned::<ProxyConn>(key) else {
            self.stats.stale_completions += 1;
            return;
        };
        conn.link.recv_op = None;
        let mut failed = None;
        match result {
            Ok(0) => {
                // Gone before its header was whole (nothing counted if it sent nothing).
                if !conn.got.is_empty() {
                    conn.stats.incomplete += 1;
                }
                conn.link.forced = true;
            }
            Ok(n) => {
                let at = buf.len() - n;
                conn.got.extend_from_slice(&buf[at..]);
                conn.rx = Some(buf);
                return self.proxy_next(key);
            }
            // A draining receive found nothing: the header will not come.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.stats.incomplete += 1;
                conn.link.forced = true;
            }
            Err(e) if is_cancelled(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                debug!(worker = id, key, "receive failed: {e}");
                conn.link.forced = true;
                failed = Some(e);
            }
        }
        conn.rx = Some(buf);
        if let Some(e) = failed {
            self.stats.conn_errors += 1;
            self.stats.conn_error_kinds.count(&e);
        }
        self.proxy_advance(key);
    }

    /// The header is whole: the connection leaves the header table (its socket is not closed)
    /// and is served as any, with `peer` as its address, if `--max-per-ip` admits it.
    fn proxy_promote(&mut self, key: u64, peer: Option<SocketAddr>) {
        let Some(mut conn) = self
            .proxy
            .as_mut()
            .and_then(|p| p.table.remove(key & !PROXY_TAG))
        else {
            return;
        };
        self.stats.proxy.add(&conn.stats);
        let Some(fd) = conn.link.fd.take() else {
            return;
        };
        if !self.per_ip.admit(peer.map(|p| p.ip())) {
            self.stats.refused_per_ip += 1;
            self.gate.release();
            // Closed once no handle is left (the port may keep one until its next wait).
            drop(fd);
            return;
        }
        self.serve_new(fd, peer);
    }
}
