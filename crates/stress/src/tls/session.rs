//! One connection's TLS over the engine's buffers: rustls' buffer-level API
//! (`read_tls`, `process_new_packets`, `reader`, `writer`, `write_tls`), no stream, no thread.
//!
//! Ciphertext received lands in a pool buffer (or the connection's own) and is handed to
//! [`TlsSession::receive`], which decrypts it and hands each run of plaintext, borrowed from
//! rustls, to the verifier. Plaintext to send (the connection's staging buffer) goes through
//! [`TlsSession::send`] into the session's ciphertext buffer, which the engine sends with
//! [`take_out`](TlsSession::take_out) and returns with [`give_back`](TlsSession::give_back):
//! two buffers swapped in turn, so once they have grown nothing is allocated here per message.
//! (rustls itself allocates one buffer per record it seals and one per record it opens.)

use std::io::{self, BufRead as _, Write as _};
use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringport_report::tls::HandshakeFailure;
use rustls::{ClientConfig, ClientConnection, HandshakeKind};

use super::failure;
use rustls::pki_types::ServerName;

/// A TLS error on a connection: during the handshake (classified) or after it.
#[derive(Debug)]
pub struct TlsError {
    /// Whether the handshake had completed.
    pub after_handshake: bool,
    /// The cause, for the `tls.failed` counts.
    pub cause: HandshakeFailure,
    /// One line: the cause and rustls' words.
    pub detail: String,
}

/// What one [`TlsSession::receive`] brought.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The handshake completed with these bytes.
    pub handshake_done: bool,
    /// The server sent close_notify: no more plaintext will come.
    pub peer_closed: bool,
    /// The plaintext consumer refused bytes (it found an error): stop.
    pub refused: bool,
}

/// One connection's TLS state and its ciphertext buffers. See the module docs.
pub struct TlsSession {
    conn: ClientConnection,
    /// Ciphertext waiting for a send.
    out: Vec<u8>,
    /// The buffer of the last send, back from it: the next to fill.
    spare: Vec<u8>,
    /// When the handshake began (the TCP connection was established).
    started: Instant,
    handshaking: bool,
    /// close_notify queued.
    closing: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("out", &self.out.len())
            .field("handshaking", &self.handshaking)
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl TlsSession {
    /// A session to `name` begun at `now`, its ClientHello queued for sending.
    ///
    /// # Errors
    ///
    /// rustls refused to start one (no usable cipher suite or version).
    pub fn new(
        config: &Arc<ClientConfig>,
        name: &ServerName<'static>,
        now: Instant,
    ) -> Result<TlsSession, TlsError> {
        let mut conn = ClientConnection::new(Arc::clone(config), name.clone())
            .map_err(|e| handshake_error(&e))?;
        // Plaintext handed in is sealed at once and moved out by `flush`: the only limit on
        // what is queued is the connection's own (its pipeline or window).
        conn.set_buffer_limit(None);
        let mut s = TlsSession {
            conn,
            out: Vec::new(),
            spare: Vec::new(),
            started: now,
            handshaking: true,
            closing: false,
        };
        s.flush();
        Ok(s)
    }

    /// Whether the handshake is still under way (nothing may be sent yet).
    pub fn handshaking(&self) -> bool {
        self.handshaking
    }

    /// How long the handshake has taken at `now` (or took, once done: see [`receive`]).
    ///
    /// [`receive`]: Self::receive
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// Whether the completed handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    /// The protocol version negotiated, e.g. `TLSv1.3`; empty before the handshake is done.
    pub fn version(&self) -> &'static str {
        match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            Some(_) => "TLS",
            None => "",
        }
    }

    /// Takes in `data`, ciphertext just received, and hands every run of plaintext it holds to
    /// `plain`, in order, until `plain` returns false (it found an error). Replies the
    /// handshake needs are queued for sending ([`take_out`](Self::take_out)).
    ///
    /// # Errors
    ///
    /// What rustls found wrong (a certificate, a protocol error, an alert), classified.
    pub fn receive(
        &mut self,
        mut data: &[u8],
        mut plain: impl FnMut(&[u8]) -> bool,
    ) -> Result<Received, TlsError> {
        let mut r = Received::default();
        while !data.is_empty() {
            match self.conn.read_tls(&mut data) {
                Ok(0) => {
                    return Err(self.error(
                        HandshakeFailure::Protocol,
                        "protocol: rustls took none of the bytes received".to_string(),
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(self.error(HandshakeFailure::Protocol, format!("protocol: {e}")))
                }
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    // The alert rustls queued goes out if a send is still possible.
                    self.flush();
                    return Err(if self.handshaking {
                        handshake_error(&e)
                    } else {
                        self.error(failure::classify(&e), e.to_string())
                    });
                }
            };
            if self.handshaking && !self.conn.is_handshaking() {
                self.handshaking = false;
                r.handshake_done = true;
            }
            let mut left = state.plaintext_bytes_to_read();
            while left > 0 {
                let mut reader = self.conn.reader();
                let Ok(chunk) = reader.fill_buf() else { break };
                let n = chunk.len();
                if n == 0 {
                    break;
                }
                let ok = plain(chunk);
                reader.consume(n);
                left = left.saturating_sub(n);
                if !ok {
                    r.refused = true;
                    return Ok(r);
                }
            }
            if state.peer_has_closed() {
                r.peer_closed = true;
            }
        }
        self.flush();
        Ok(r)
    }

    /// Seals `plain` into the ciphertext buffer.
    ///
    /// # Errors
    ///
    /// rustls would not take it (the session is closing or broken).
    pub fn send(&mut self, plain: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(plain)?;
        self.flush();
        Ok(())
    }

    /// Queues close_notify: the client sends nothing more.
    pub fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            self.conn.send_close_notify();
            self.flush();
        }
    }

    /// The ciphertext waiting, in a buffer to send (the spare one takes its place); `None`
    /// when nothing waits.
    pub fn take_out(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            return None;
        }
        let next = mem::take(&mut self.spare);
        Some(mem::replace(&mut self.out, next))
    }

    /// Returns the buffer of a finished send, to be filled next.
    pub fn give_back(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        if self.spare.capacity() < buf.capacity() {
            self.spare = buf;
        }
    }

    /// Whether ciphertext waits for a send.
    pub fn has_out(&self) -> bool {
        !self.out.is_empty()
    }

    /// Moves what rustls has sealed into the ciphertext buffer.
    fn flush(&mut self) {
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail.
            if self.conn.write_tls(&mut self.out).is_err() {
                break;
            }
        }
    }

    fn error(&self, cause: HandshakeFailure, detail: String) -> TlsError {
        TlsError {
            after_handshake: !self.handshaking,
            cause,
            detail,
        }
    }
}

fn handshake_error(e: &rustls::Error) -> TlsError {
    TlsError {
        after_handshake: false,
        cause: failure::classify(e),
        detail: failure::describe(e),
    }
}
