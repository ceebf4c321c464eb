//! A client thread's TLS (`--tls`): starting a connection's handshake, what its session made
//! of the bytes received, sending its ciphertext one send at a time, and the write side shut
//! once close_notify is out. See the parent's module docs.

use std::io;
use std::time::Instant;

use super::{Client, Conn, Exchange, TlsSession};
use crate::error::ConnError;
use crate::tls::session::{Received, TlsError};

impl<X: Exchange> Client<'_, '_, X> {
    /// `--tls`: starts connection `i`'s handshake, its TCP connection just established.
    pub(super) fn start_tls(&mut self, i: usize, now: Instant) {
        let Some(tls) = self.tls else { return };
        match TlsSession::new(&tls.config, &tls.name, now) {
            Ok(session) => {
                self.slots[i].io.tls = Some(Box::new(session));
                self.slots[i].io.layered = true;
                self.flush_tls(i, now);
            }
            Err(e) => self.fail(
                i,
                ConnError::Handshake {
                    cause: e.cause,
                    detail: e.detail,
                },
                now,
            ),
        }
    }

    /// `--tls`: what connection `i`'s session made of the bytes received: a completed
    /// handshake (recorded; the connection may send from now on), the server's close_notify
    /// (its end of stream), ciphertext to send. Returns whether the connection goes on.
    pub(super) fn after_tls(&mut self, i: usize, now: Instant, r: Received) -> bool {
        let slot = &mut self.slots[i];
        let Some(tls) = slot.io.tls.as_ref() else {
            return true;
        };
        if r.handshake_done {
            let in_window = self.loading
                && now >= self.measure_start
                && self.measure_end.is_none_or(|end| now <= end);
            self.tls_stats
                .record(tls.elapsed(now), tls.resumed(), tls.version(), in_window);
        }
        if r.peer_closed {
            if let Err(e) = slot.conn.end_of_stream() {
                self.fail(i, e, now);
                return false;
            }
            if let Some(tok) = slot.io.recv {
                // Nothing more will come: its end comes back as a cancelled receive.
                let _ = self.port.cancel(tok);
            }
        }
        let upgrade = r.handshake_done && self.ws.is_some();
        self.flush_tls(i, now);
        if self.slots[i].conn.is_done() {
            self.maybe_close(i);
            return false;
        }
        if upgrade {
            // `--websocket`: the upgrade goes inside the session just made.
            self.start_ws(i, now);
        }
        true
    }

    /// `--tls`: sends the ciphertext connection `i`'s session holds, unless a send is in
    /// flight; with nothing left, shuts the write side if that waits for it.
    pub(super) fn flush_tls(&mut self, i: usize, now: Instant) {
        let slot = &mut self.slots[i];
        if slot.io.send.is_some() || slot.io.fd.is_none() {
            return;
        }
        let Some(tls) = slot.io.tls.as_mut() else {
            return;
        };
        match tls.take_out() {
            Some(buf) => self.submit_send(i, buf, 0, now),
            None if slot.io.shut_after_send => {
                slot.io.shut_after_send = false;
                self.shut_write(i, now);
            }
            None => {}
        }
    }

    /// `--tls`: a send of ciphertext `buf[at..]` on connection `i` finished with `result`.
    pub(super) fn tls_sent(
        &mut self,
        i: usize,
        buf: Vec<u8>,
        at: usize,
        result: io::Result<usize>,
        now: Instant,
    ) {
        let slot = &mut self.slots[i];
        let Some(tls) = slot.io.tls.as_mut() else {
            return;
        };
        if slot.conn.is_done() {
            tls.give_back(buf);
            self.maybe_close(i);
            return;
        }
        match result {
            Ok(n) if at + n < buf.len() => self.submit_send(i, buf, at + n, now),
            Ok(_) => {
                tls.give_back(buf);
                self.flush_tls(i, now);
            }
            Err(e) => {
                tls.give_back(buf);
                let err = slot.conn.io_error(e);
                self.fail(i, err, now);
            }
        }
    }

    /// `--tls`: whether a handshake is still under way on any connection.
    pub(super) fn any_handshaking(&self) -> bool {
        self.tls.is_some()
            && self
                .slots
                .iter()
                .any(|s| !s.conn.is_done() && s.io.tls.as_ref().is_some_and(|t| t.handshaking()))
    }
}

/// A TLS error on `conn`: a failed handshake, or (after it) an error at the verifier's offset.
pub(super) fn tls_error<X: Exchange>(conn: &Conn<X>, e: TlsError) -> ConnError {
    if e.after_handshake {
        conn.io_error(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("TLS: {}", e.detail),
        ))
    } else {
        ConnError::Handshake {
            cause: e.cause,
            detail: e.detail,
        }
    }
}
