//! One connection's TLS over the engine's buffers: rustls' unbuffered API for the handshake,
//! then the records protected in place (`ringport_tls_record`); no stream, no thread.
//!
//! Ciphertext received (a pool buffer, or the connection's own) is handed to
//! [`TlsSession::receive`], which appends it to the session's receive buffer, opens each whole
//! record there and hands its plaintext, in place, to the verifier. Plaintext to send (the
//! connection's staging buffer) is sealed by [`TlsSession::send`] into the session's
//! ciphertext buffer, which the engine sends with [`take_out`](TlsSession::take_out) and
//! returns with [`give_back`](TlsSession::give_back): two buffers swapped in turn. Once the
//! buffers have grown, nothing is allocated per message: rustls 0.23 itself would allocate one
//! buffer per record it seals and one per record it opens, so after the handshake the session
//! takes the connection's secrets and key schedule from rustls
//! (`dangerous_into_kernel_connection`, which the configuration must allow with
//! `enable_secret_extraction`) and protects the records itself, taking the server's new
//! session tickets (for resumption) and key updates.

use std::io;
use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringport_report::tls::HandshakeFailure;
use ringport_tls_record::{
    record_end, Records, ALERT, APPLICATION_DATA, HANDSHAKE, PLAIN_MAX, REPLY_MAX, SEAL_MAX,
};
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, InsufficientSizeError, UnbufferedStatus,
};
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion};

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
    /// rustls, until the handshake is complete.
    conn: Option<UnbufferedClientConnection>,
    /// The record protection after the handshake.
    records: Option<Records<ClientConnectionData>>,
    /// Ciphertext received and not processed yet.
    incoming: Vec<u8>,
    /// Ciphertext waiting for a send.
    out: Vec<u8>,
    /// The buffer of the last send, back from it: the next to fill.
    spare: Vec<u8>,
    /// When the handshake began (the TCP connection was established).
    started: Instant,
    handshaking: bool,
    /// close_notify queued.
    closing: bool,
    /// The server's close_notify arrived.
    peer_closed: bool,
    resumed: bool,
    version: Option<ProtocolVersion>,
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
    /// A session to `name` begun at `now`, its ClientHello queued for sending. `config` must
    /// allow secret extraction (`enable_secret_extraction`).
    ///
    /// # Errors
    ///
    /// rustls refused to start one (no usable cipher suite or version), or the configuration
    /// does not allow secret extraction.
    pub fn new(
        config: &Arc<ClientConfig>,
        name: &ServerName<'static>,
        now: Instant,
    ) -> Result<TlsSession, TlsError> {
        if !config.enable_secret_extraction {
            return Err(handshake_error(&rustls::Error::General(
                "the TLS configuration does not allow secret extraction".into(),
            )));
        }
        let conn = UnbufferedClientConnection::new(Arc::clone(config), name.clone())
            .map_err(|e| handshake_error(&e))?;
        let mut s = TlsSession {
            conn: Some(conn),
            records: None,
            incoming: Vec::new(),
            out: Vec::new(),
            spare: Vec::new(),
            started: now,
            handshaking: true,
            closing: false,
            peer_closed: false,
            resumed: false,
            version: None,
        };
        let mut r = Received::default();
        s.handshake(&mut r, &mut |_| true)?;
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
        self.resumed
    }

    /// The protocol version negotiated, e.g. `TLSv1.3`; empty before the handshake is done.
    pub fn version(&self) -> &'static str {
        match self.version {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
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
    /// What rustls found wrong (a certificate, a protocol error, an alert), classified; after
    /// the handshake, a record that does not open or a fatal alert.
    pub fn receive(
        &mut self,
        data: &[u8],
        mut plain: impl FnMut(&[u8]) -> bool,
    ) -> Result<Received, TlsError> {
        let mut r = Received::default();
        self.incoming.extend_from_slice(data);
        if self.conn.is_some() {
            self.handshake(&mut r, &mut plain)?;
        }
        if self.records.is_some() && !r.refused {
            self.open_records(&mut r, &mut plain)
                .map_err(|e| self.error(failure::classify(&e), format!("{e}")))?;
        }
        Ok(r)
    }

    /// Seals `plain` into the ciphertext buffer.
    ///
    /// # Errors
    ///
    /// The handshake is not complete, the session is closing, or its key may seal no more.
    pub fn send(&mut self, plain: &[u8]) -> io::Result<()> {
        let Some(records) = self.records.as_mut().filter(|_| !self.closing) else {
            return Err(io::Error::other("TLS: the session cannot send"));
        };
        for chunk in plain.chunks(PLAIN_MAX) {
            self.out.reserve(chunk.len() + SEAL_MAX + REPLY_MAX);
            records
                .seal(APPLICATION_DATA, chunk, &mut self.out)
                .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
        }
        Ok(())
    }

    /// Queues close_notify: the client sends nothing more.
    pub fn close(&mut self) {
        if !self.closing {
            self.closing = true;
            if let Some(records) = self.records.as_mut() {
                self.out.reserve(2 + SEAL_MAX + REPLY_MAX);
                // A warning alert; a key that may seal no more closes without it.
                let _ = records.seal(ALERT, &[1, 0], &mut self.out);
            }
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

    /// Runs rustls' handshake over what was received: its records are encoded into the
    /// ciphertext buffer; once it is complete, the connection goes over to [`Records`].
    fn handshake(
        &mut self,
        r: &mut Received,
        plain: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), TlsError> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            let UnbufferedStatus { mut discard, state } =
                conn.process_tls_records(&mut self.incoming);
            let mut stop = false;
            let mut complete = false;
            match state {
                Err(e) => {
                    self.incoming.drain(..discard);
                    // The alert rustls queued goes out if a send is still possible.
                    self.take_alert();
                    return Err(if self.handshaking {
                        handshake_error(&e)
                    } else {
                        self.error(failure::classify(&e), e.to_string())
                    });
                }
                Ok(ConnectionState::EncodeTlsData(mut s)) => encode(&mut self.out, &mut s),
                Ok(ConnectionState::TransmitTlsData(s)) => s.done(),
                Ok(ConnectionState::ReadTraffic(mut s)) => {
                    while let Some(record) = s.next_record() {
                        let record = record.map_err(|e| handshake_error(&e))?;
                        discard += record.discard;
                        if !plain(record.payload) {
                            r.refused = true;
                            stop = true;
                            break;
                        }
                    }
                }
                Ok(ConnectionState::PeerClosed) => {
                    r.peer_closed = true;
                    self.peer_closed = true;
                }
                Ok(ConnectionState::WriteTraffic(_)) => complete = true,
                // BlockedHandshake (more bytes needed), Closed, and states of later versions.
                Ok(_) => stop = true,
            }
            self.incoming.drain(..discard);
            if complete {
                let conn = self.conn.take().expect("rustls has the connection");
                self.handshaking = false;
                r.handshake_done = true;
                self.resumed = conn.handshake_kind() == Some(HandshakeKind::Resumed);
                self.version = conn.protocol_version();
                let records = conn
                    .dangerous_into_kernel_connection()
                    .and_then(|(secrets, kernel)| Records::new(secrets, kernel))
                    .map_err(|e| self.error(failure::classify(&e), e.to_string()))?;
                self.records = Some(records);
                return Ok(());
            }
            if stop {
                return Ok(());
            }
        }
    }

    /// After an error during the handshake, the alert rustls queued, into the ciphertext
    /// buffer.
    fn take_alert(&mut self) {
        let mut empty: [u8; 0] = [];
        for _ in 0..4 {
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            match conn.process_tls_records(&mut empty).state {
                Ok(ConnectionState::EncodeTlsData(mut s)) => encode(&mut self.out, &mut s),
                Ok(ConnectionState::TransmitTlsData(s)) => s.done(),
                _ => return,
            }
        }
    }

    /// After the handshake: opens each whole record received, in place, and hands its
    /// plaintext to `plain`; takes the server's close_notify, new session tickets and key
    /// updates (a reply goes into the ciphertext buffer).
    fn open_records(
        &mut self,
        r: &mut Received,
        plain: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<(), rustls::Error> {
        let Some(records) = self.records.as_mut() else {
            return Ok(());
        };
        let mut head = 0;
        let mut result = Ok(());
        while let Some(end) = record_end(&self.incoming, head) {
            if self.peer_closed {
                // Nothing after close_notify is read.
                head = self.incoming.len();
                break;
            }
            let (typ, range) = match records.open(&mut self.incoming[head..end]) {
                Ok(opened) => opened,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            let data = &self.incoming[head + range.start..head + range.end];
            head = end;
            match typ {
                APPLICATION_DATA => {
                    if !data.is_empty() && !plain(data) {
                        r.refused = true;
                        break;
                    }
                }
                ALERT => match data {
                    [_, 0] => {
                        r.peer_closed = true;
                        self.peer_closed = true;
                    }
                    // user_canceled, a warning
                    [1, 90] => {}
                    [_, description] => {
                        result = Err(rustls::Error::AlertReceived((*description).into()));
                        break;
                    }
                    _ => {
                        result = Err(rustls::Error::General("a malformed alert".into()));
                        break;
                    }
                },
                HANDSHAKE => {
                    self.out.reserve(2 * REPLY_MAX);
                    if let Err(e) = records.handshake(data, &mut self.out) {
                        result = Err(e);
                        break;
                    }
                }
                _ => {
                    result = Err(rustls::Error::General("an unexpected content type".into()));
                    break;
                }
            }
        }
        self.incoming.drain(..head);
        result
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

/// Copies a record rustls encoded to the end of `out` (growing it as needed: the handshake).
fn encode(out: &mut Vec<u8>, s: &mut EncodeTlsData<'_, ClientConnectionData>) {
    let at = out.len();
    let mut room = 1024;
    loop {
        out.resize(at + room, 0);
        match s.encode(&mut out[at..]) {
            Ok(n) => {
                out.truncate(at + n);
                return;
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                room = required_size;
            }
            Err(EncodeError::AlreadyEncoded) => {
                out.truncate(at);
                return;
            }
        }
    }
}
