//! The completion model's accept state machine: one multishot accept in flight (on kernels
//! that refuse multishot accepts, the port makes it a chain of single accepts), a place at the
//! connection [`Gate`] and the per-address count for each connection accepted, connections
//! parked while the gate is full (no accept in flight meanwhile), failed accepts under the shared
//! [accept policy](crate::accept_policy), and at shutdown the clients already waiting in the
//! listen backlog.
//!
//! [`Gate`]: crate::limits::Gate

use std::io;
use std::time::{Duration, Instant};

use ringport_os::AcceptFailure;
use ringport_port::{is_cancelled, Accepted, Op};
use tracing::{debug, error, info, warn};

use super::worker::Worker;
use super::ACCEPT_KEY;
use crate::accept_policy::Verdict;

/// Most clients taken from a listen backlog at shutdown (the kernel caps a backlog at
/// `net.core.somaxconn`, 4096 by default).
const BACKLOG_MAX: usize = 65_536;

impl Worker<'_> {
    pub(super) fn submit_accept(&mut self) {
        if self.draining
            || self.accept_op.is_some()
            || self.accept_retry.is_some()
            || !self.parked.is_empty()
        {
            return;
        }
        let Some(listener) = self.listener.clone() else {
            return;
        };
        // A multishot accept of direct descriptors cannot say who connected: where the
        // per-address cap needs to know, each accept is single (its completion has the peer).
        let op = if self.max_per_ip_peers() {
            Op::Accept { listener }
        } else {
            Op::AcceptMulti { listener }
        };
        match self.port.submit(ACCEPT_KEY, op) {
            Ok(token) => self.accept_op = Some(token),
            Err(e) => {
                error!(worker = self.id, "cannot submit an accept: {e}");
                let pause = self.accept_policy.pause();
                self.pause_accepts(pause);
            }
        }
    }

    /// Whether accepts must be single to learn their peers: direct descriptors (no
    /// `getpeername`) under a per-address cap that may count them. A server bound to a
    /// loopback address is reached from loopback addresses, which the cap counts only when
    /// asked to (`--max-per-ip` given): there one multishot accept takes every connection.
    fn max_per_ip_peers(&self) -> bool {
        let cfg = self.cfg;
        self.port.accepts_direct()
            && cfg.max_per_ip > 0
            && (cfg.max_per_ip_loopback || !cfg.bind.to_canonical().is_loopback())
    }

    /// `--mptcp`: whether the connection speaks MPTCP, counted (a direct descriptor has no
    /// descriptor to ask).
    fn note_mptcp(&mut self, accepted: &Accepted) {
        if self.cfg.mptcp {
            if let Some(fd) = accepted.fd.real() {
                self.stats.note_mptcp(ringport_port::os::is_mptcp(fd));
            }
        }
    }

    fn pause_accepts(&mut self, pause: Duration) {
        self.accept_retry = Some(Instant::now() + pause);
    }

    /// An accept completed; `more`: the multishot accept is still armed.
    pub(super) fn on_accept(&mut self, result: io::Result<Accepted>, more: bool) {
        if !more {
            self.accept_op = None;
        }
        match result {
            Ok(accepted) => {
                self.accept_policy.succeeded();
                self.stats.accepted += 1;
                self.note_mptcp(&accepted);
                // With --proxy-protocol the address is the proxy's: the header's is counted.
                let counted = accepted.peer.filter(|_| self.proxy.is_none());
                if !self.per_ip.admit(counted.map(|p| p.ip())) {
                    self.stats.refused_per_ip += 1;
                    // Closed at once (a plain close: the port never saw this descriptor).
                    drop(accepted);
                } else if self.parked.is_empty() && self.gate.reserve(self.id) {
                    self.serve_or_hand_off(accepted);
                } else {
                    // At the limit: hold this one, accept nothing more (clients wait in the
                    // listen backlog, nothing spins) until the gate posts SLOT_FREE.
                    if self.parked.is_empty() {
                        self.stats.limit_pauses += 1;
                    }
                    self.parked.push_back(accepted);
                    if let Some(token) = self.accept_op {
                        let _ = self.port.cancel(token);
                    }
                }
                self.submit_accept();
            }
            Err(e) if is_cancelled(&e) => {}
            Err(e) => {
                self.stats.accept_errors += 1;
                if more {
                    // The multishot accept goes on by itself (IOCP's, after a client that was
                    // gone: a fresh accept socket is already posted), unless it must pause.
                    if let Verdict::Pause(pause) = self.accept_policy.failed_armed(&e) {
                        self.pause_accepts(pause);
                        if let Some(token) = self.accept_op {
                            let _ = self.port.cancel(token);
                        }
                    }
                } else {
                    match self.accept_policy.failed(&e) {
                        Verdict::Pause(pause) => self.pause_accepts(pause),
                        Verdict::AcceptNext => self.submit_accept(),
                    }
                }
            }
        }
        if self.draining && self.accept_op.is_none() {
            self.take_backlog();
        }
    }

    /// Shutdown, once no accept is in flight: the clients already waiting in this worker's
    /// listen backlog completed their handshake and may have sent bytes. Closing the listener
    /// would reset them and lose those bytes, so take them in without waiting (non-blocking
    /// accepts until none is left, at most [`BACKLOG_MAX`]) and drain them like every other
    /// connection; then close the listener.
    pub(super) fn take_backlog(&mut self) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let Some(sock) = listener.real().map(socket2::SockRef::from) else {
            return;
        };
        if let Err(e) = sock.set_nonblocking(true) {
            warn!(
                worker = self.id,
                "cannot take the listen backlog at shutdown: {e}"
            );
            return;
        }
        let mut taken = 0usize;
        while taken < BACKLOG_MAX {
            match sock.accept() {
                Ok((socket, peer)) => {
                    taken += 1;
                    self.stats.accepted += 1;
                    self.gate.take_anyway();
                    let accepted = Accepted {
                        fd: socket.into(),
                        peer: peer.as_socket(),
                    };
                    self.note_mptcp(&accepted);
                    self.serve_or_hand_off(accepted);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || AcceptFailure::of(&e) == AcceptFailure::Gone => {}
                Err(e) => {
                    warn!(
                        worker = self.id,
                        "taking the listen backlog at shutdown: {e}"
                    );
                    break;
                }
            }
        }
        if taken > 0 {
            info!(
                worker = self.id,
                taken, "took the clients waiting in the listen backlog, to drain them too"
            );
        }
        // The listener is gone: the workers served through this one get nothing more.
        if let Some(handoff) = &self.handoff {
            handoff.close();
        }
    }

    /// Serves `conn` here, or, for workers sharing this worker's listener, hands it to the
    /// worker whose turn it is ([`handoff`](super::handoff)).
    fn serve_or_hand_off(&mut self, conn: Accepted) {
        let conn = match &mut self.handoff {
            Some(handoff) => handoff.give(self.id, conn),
            None => Some(conn),
        };
        if let Some(conn) = conn {
            self.new_conn(conn);
        }
    }

    /// A place may have freed: the parked connections take what is free, then accepting
    /// resumes.
    pub(super) fn on_slot_free(&mut self) {
        while !self.parked.is_empty() {
            if !self.gate.reserve(self.id) {
                return;
            }
            debug!(
                worker = self.id,
                "a place freed: serving a parked connection"
            );
            if let Some(parked) = self.parked.pop_front() {
                self.serve_or_hand_off(parked);
            }
        }
        self.submit_accept();
    }
}
