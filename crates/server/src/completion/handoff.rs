//! Several workers on one listener where each worker cannot have its own (Windows: no
//! `SO_REUSEPORT`, and a socket's completions go to the one completion port it is associated
//! with, so the workers' ports cannot all accept on one listener).
//!
//! Worker 0, the *acceptor*, keeps the accept in flight and hands the connections it accepts to
//! the workers in turn (itself included): a connection for another worker goes into that
//! worker's [`Inbox`], and [`HANDOFF`] is posted to its port. An accepted socket is associated
//! with a completion port only by its first operation, so it is served on the port of the
//! worker that takes it. The acceptor applies the limits (the gate, the per-address count) as it
//! does for itself; the worker that serves a connection frees its place when it closes.
//!
//! At shutdown the acceptor takes in its listen backlog and hands those clients out too, then
//! closes every inbox ([`Inbox::close`]): a worker ends only once its inbox is closed and empty,
//! so no connection handed out is dropped unserved.
//!
//! On Linux each worker has its own `SO_REUSEPORT` listener and none of this is used.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use ringport_port::{Accepted, Poster};

/// The value posted to a worker when a connection was put into its inbox or the inbox closed.
pub const HANDOFF: u64 = 3;

/// The connections handed to one worker, not yet taken.
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
}

#[derive(Default)]
struct InboxState {
    conns: VecDeque<Accepted>,
    /// The owner's port, once it has one: set by [`Inbox::open`].
    poster: Option<Poster>,
    /// The acceptor will hand out nothing more.
    closed: bool,
}

impl Inbox {
    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The owner's port is ready: connections from now on are posted to it.
    pub(crate) fn open(&self, poster: Poster) {
        self.lock().poster = Some(poster);
    }

    /// Puts `conn` in, and wakes the owner if it has a port already (otherwise it takes what
    /// is there when its loop starts).
    fn put(&self, conn: Accepted) {
        let poster = {
            let mut state = self.lock();
            state.conns.push_back(conn);
            state.poster.clone()
        };
        if let Some(poster) = poster {
            let _ = poster.post(HANDOFF);
        }
    }

    /// Takes every connection waiting, into `out`.
    pub(crate) fn take(&self, out: &mut Vec<Accepted>) {
        out.extend(self.lock().conns.drain(..));
    }

    /// Whether nothing more will come: closed, and emptied.
    pub(crate) fn is_done(&self) -> bool {
        let state = self.lock();
        state.closed && state.conns.is_empty()
    }

    /// Nothing more will be handed out; wakes the owner so that it can end.
    pub(crate) fn close(&self) {
        let poster = {
            let mut state = self.lock();
            state.closed = true;
            state.poster.clone()
        };
        if let Some(poster) = poster {
            let _ = poster.post(HANDOFF);
        }
    }
}

/// The acceptor's side: every worker's inbox, and whose turn is next.
pub(crate) struct Handoff {
    /// One per worker, by worker id; the acceptor's own is never used.
    inboxes: Vec<Arc<Inbox>>,
    next: usize,
}

impl Handoff {
    /// Hand-off to the workers whose inboxes these are (index = worker id).
    pub(crate) fn new(inboxes: Vec<Arc<Inbox>>) -> Handoff {
        Handoff { inboxes, next: 0 }
    }

    /// Gives `conn` to the next worker in turn. Returns it if that worker is `own` (the acceptor
    /// serves it itself).
    pub(crate) fn give(&mut self, own: usize, conn: Accepted) -> Option<Accepted> {
        let to = self.next;
        self.next = (self.next + 1) % self.inboxes.len().max(1);
        if to == own || to >= self.inboxes.len() {
            return Some(conn);
        }
        self.inboxes[to].put(conn);
        None
    }

    /// Closes every inbox: nothing more is handed out. Idempotent.
    pub(crate) fn close(&self) {
        for inbox in &self.inboxes {
            inbox.close();
        }
    }
}

/// An acceptor that goes away (its worker ended, failed to start or panicked) hands out nothing
/// more: the other workers must not wait for it.
impl Drop for Handoff {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn accepted(l: &TcpListener) -> (Accepted, TcpStream) {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        let fd: ringport_port::OwnedFd = s.into();
        (
            Accepted {
                fd: fd.into(),
                peer: Some(peer),
            },
            c,
        )
    }

    #[test]
    fn connections_go_round_and_an_inbox_ends_once_closed_and_emptied() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inboxes: Vec<Arc<Inbox>> = (0..3).map(|_| Arc::default()).collect();
        let mut handoff = Handoff::new(inboxes.clone());
        let mut own = 0;
        let mut clients = Vec::new();
        for _ in 0..6 {
            let (conn, client) = accepted(&l);
            clients.push(client);
            if handoff.give(0, conn).is_some() {
                own += 1;
            }
        }
        assert_eq!(own, 2, "the acceptor's turn comes every third connection");
        let mut got = Vec::new();
        for inbox in &inboxes[1..] {
            inbox.take(&mut got);
            assert_eq!(got.len(), 2);
            got.clear();
            assert!(!inbox.is_done(), "open until closed");
        }
        let (conn, _client) = accepted(&l);
        handoff.give(0, conn);
        let (conn, _client2) = accepted(&l);
        assert!(handoff.give(0, conn).is_none(), "worker 1's turn");
        handoff.close();
        assert!(!inboxes[1].is_done(), "closed, but a connection waits");
        inboxes[1].take(&mut got);
        assert_eq!(got.len(), 1);
        assert!(inboxes[1].is_done());
        assert!(inboxes[2].is_done());
    }
}
