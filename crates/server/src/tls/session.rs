//! [`Session`]: one connection's TLS on rustls' unbuffered API, over two buffers the
//! connection owns, told what its receives and sends did and answering what to do next
//! ([`Next`]). No socket in it: the completion model's worker carries its steps out with the
//! port's owned-buffer receives and sends.
//!
//! # Buffers and the memory bound
//!
//! - `incoming`: ciphertext as received (the port receives straight into its spare capacity),
//!   decrypted there by rustls; room for one largest record ([`RECORD_MAX`]).
//! - `outgoing`: the handshake's records, then the encrypted echo, sent from there; room for
//!   one record of echo ([`PLAIN_MAX`] and what sealing adds).
//! - the plaintext between decryption and encryption, in a scratch buffer the caller passes
//!   in (one per worker, not per connection: it is empty again whenever `pump` returns).
//!
//! A record is taken from `incoming` only when its echo fits in what is left of `outgoing`
//! (records are handed to rustls one at a time, their lengths read from their headers), so a
//! peer that never reads stalls its own connection with one record in and one out, and the
//! kernel holds the rest. rustls' own buffers stay empty between calls: the plaintext of a
//! record is taken as soon as it is decrypted, and handshake records are copied out as soon
//! as rustls encodes them.
//!
//! # Allocation
//!
//! After the handshake the session allocates nothing; rustls 0.23 itself copies each
//! decrypted record into a new vector before handing it out (`ReadTraffic::next_record`),
//! one allocation per record received.

use std::sync::Arc;

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedStatus,
};
use rustls::{ProtocolVersion, ServerConfig};

use super::Failure;

/// Bytes of a record's header (type, version, length).
const HEADER: usize = 5;
/// The most plaintext one record carries (2^14 bytes).
pub const PLAIN_MAX: usize = 16_384;
/// The largest record a peer may send: its header, 2^14 bytes of plaintext and the 256 bytes
/// of expansion TLS 1.3 allows (TLS 1.2's AEAD suites, the only ones rustls has, add 24). A
/// larger record fills the buffer without completing and fails the connection (as rustls
/// would refuse it: record_overflow).
pub const RECORD_MAX: usize = HEADER + PLAIN_MAX + 256;
/// The most sealing one record adds to its plaintext: the header, TLS 1.3's inner content
/// type, an AEAD tag, TLS 1.2's explicit nonce.
const SEAL_MAX: usize = HEADER + 1 + 16 + 8;
/// Room in `outgoing` for one record of echo and a close_notify after it.
pub const OUTGOING: usize = PLAIN_MAX + 2 * SEAL_MAX + 16;

/// What sees each record's plaintext as it is decrypted (`--log-messages`).
pub type Log<'a> = &'a mut dyn FnMut(&[u8]);

/// What the connection does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send `outgoing[sent..]` ([`Session::take_send`]).
    Send,
    /// Receive into `incoming`'s spare capacity ([`Session::take_recv`]).
    Recv,
    /// Nothing more: close the connection.
    Close,
}

/// One connection's TLS state and buffers.
pub struct Session {
    conn: UnbufferedServerConnection,
    /// Received ciphertext; `incoming[head..]` is not processed yet.
    incoming: Vec<u8>,
    head: usize,
    /// Ciphertext to send; `outgoing[sent..]` is not sent yet.
    outgoing: Vec<u8>,
    sent: usize,
    /// Plaintext bytes sealed into `outgoing`, echoed once it is sent.
    sealed: usize,
    established: bool,
    /// The client's close_notify arrived.
    peer_closed: bool,
    /// No byte will be received any more (end of stream, or a draining receive found none).
    read_done: bool,
    /// Our close_notify is in `outgoing` (or sent).
    close_queued: bool,
    failure: Option<Failure>,
    /// The client's first bytes, to tell a plaintext client from garbage.
    first: [u8; 16],
    first_len: usize,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("established", &self.established)
            .field("pending_in", &(self.incoming.len() - self.head))
            .field("pending_out", &(self.outgoing.len() - self.sent))
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

/// What one call of rustls led to.
enum Step {
    /// Call rustls again.
    Again,
    /// Call it again only if the next record can be taken now (after encrypting).
    Write,
    /// Wait for a receive or a send.
    Stop,
}

impl Session {
    /// A new server-side session of `config`.
    ///
    /// # Errors
    ///
    /// When rustls cannot start a connection of this configuration.
    pub fn new(config: &Arc<ServerConfig>) -> Result<Session, rustls::Error> {
        Ok(Session {
            conn: UnbufferedServerConnection::new(Arc::clone(config))?,
            incoming: Vec::with_capacity(RECORD_MAX),
            head: 0,
            outgoing: Vec::with_capacity(OUTGOING),
            sent: 0,
            sealed: 0,
            established: false,
            peer_closed: false,
            read_done: false,
            close_queued: false,
            failure: None,
            first: [0; 16],
            first_len: 0,
        })
    }

    /// The handshake is complete.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The negotiated protocol version (once established).
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// Why the connection failed, if it did.
    pub fn failure(&self) -> Option<Failure> {
        self.failure
    }

    /// Whether our close_notify was queued (it is sent before the close).
    pub fn sent_close_notify(&self) -> bool {
        self.close_queued
    }

    /// Fails the connection for `failure` (the first cause stays).
    pub fn fail(&mut self, failure: Failure) {
        self.failure.get_or_insert(failure);
    }

    /// No more bytes will be received: the peer's end of stream (a failure when the handshake
    /// is not complete), or a receive while draining that found none.
    pub fn end_of_input(&mut self, eof: bool) {
        self.read_done = true;
        if eof && !self.established && self.first_len > 0 {
            self.fail(Failure::Truncated);
        }
    }

    /// The buffer to receive into (after what it holds), taken for the receive; room for at
    /// least one byte. `None` when it is full, which no peer can cause (it holds one record).
    pub fn take_recv(&mut self) -> Option<Vec<u8>> {
        if self.head > 0 {
            self.incoming.copy_within(self.head.., 0);
            self.incoming.truncate(self.incoming.len() - self.head);
            self.head = 0;
        }
        (self.incoming.len() < self.incoming.capacity()).then(|| std::mem::take(&mut self.incoming))
    }

    /// A receive into the buffer of [`take_recv`](Self::take_recv) ended, `n` bytes longer.
    pub fn received(&mut self, buf: Vec<u8>, n: usize) {
        self.incoming = buf;
        if self.first_len < self.first.len() && n > 0 {
            let from = self.incoming.len() - n;
            let take = (self.first.len() - self.first_len).min(n);
            self.first[self.first_len..self.first_len + take]
                .copy_from_slice(&self.incoming[from..from + take]);
            self.first_len += take;
        }
    }

    /// The buffer and offset to send from, taken for the send.
    pub fn take_send(&mut self) -> (Vec<u8>, usize) {
        (std::mem::take(&mut self.outgoing), self.sent)
    }

    /// A send from [`take_send`](Self::take_send)'s buffer ended with `n` more bytes sent;
    /// returns the plaintext bytes whose echo is now complete.
    pub fn sent(&mut self, buf: Vec<u8>, at: usize, n: usize) -> usize {
        self.outgoing = buf;
        self.sent = at + n;
        if self.sent < self.outgoing.len() {
            return 0;
        }
        self.outgoing.clear();
        self.sent = 0;
        std::mem::take(&mut self.sealed)
    }

    /// Gives a buffer taken for an operation back without its bytes counting (the operation
    /// failed or was cancelled).
    pub fn give_back(&mut self, buf: Vec<u8>, incoming: bool) {
        if incoming {
            self.incoming = buf;
        } else {
            self.outgoing = buf;
        }
    }

    /// What to do next, after processing what can be processed now: handshake records,
    /// records of echo (decrypted into `plain`, which is empty again on return, and encrypted
    /// into `outgoing`), the close_notify once the input is over. Returns the plaintext bytes
    /// received (decrypted) in this call with the next step. `log` sees each record's plaintext
    /// (`--log-messages`).
    pub fn pump(&mut self, plain: &mut Vec<u8>, mut log: Option<Log<'_>>) -> (usize, Next) {
        let mut received = 0;
        if self.failure.is_none() {
            if let Err(e) = self.process(plain, &mut received, &mut log) {
                let failure = Failure::of(&e, &self.first[..self.first_len]);
                self.fail(failure);
                self.take_alert();
            }
        }
        plain.clear();
        (received, self.next())
    }

    fn next(&self) -> Next {
        if self.sent < self.outgoing.len() {
            Next::Send
        } else if self.failure.is_some()
            || self.close_queued
            || (self.read_done && !self.established)
        {
            Next::Close
        } else {
            Next::Recv
        }
    }

    /// The end of a complete record starting at `at` in `incoming`, if there is one.
    fn record_end(&self, at: usize) -> Option<usize> {
        let header = self.incoming.get(at..at + HEADER)?;
        let end = at + HEADER + usize::from(u16::from_be_bytes([header[3], header[4]]));
        (end <= self.incoming.len()).then_some(end)
    }

    /// How far rustls may process now: everything during the handshake; after it, the next
    /// record when the plaintext is empty and its echo fits in `outgoing`, else nothing (so
    /// that rustls offers to encrypt).
    fn process_end(&self, plain_empty: bool) -> usize {
        if !self.established {
            return self.incoming.len();
        }
        if !plain_empty {
            return self.head;
        }
        match self.record_end(self.head) {
            Some(end) => {
                let cost = end - self.head - HEADER + SEAL_MAX;
                if self.outgoing.len() + cost <= OUTGOING.max(self.outgoing.capacity()) {
                    end
                } else {
                    self.head
                }
            }
            // An incomplete record: rustls waits for the rest.
            None => self.head,
        }
    }

    fn process(
        &mut self,
        plain: &mut Vec<u8>,
        received: &mut usize,
        log: &mut Option<Log<'_>>,
    ) -> Result<(), rustls::Error> {
        loop {
            let end = self.process_end(plain.is_empty());
            // Whether a whole record waits beyond what is processed now.
            let more = self.record_end(end).is_some();
            let UnbufferedStatus { mut discard, state } = self
                .conn
                .process_tls_records(&mut self.incoming[self.head..end]);
            let step = match state {
                Err(e) => {
                    self.head += discard;
                    return Err(e);
                }
                Ok(ConnectionState::EncodeTlsData(mut s)) => {
                    encode(&mut self.outgoing, &mut s);
                    Step::Again
                }
                Ok(ConnectionState::TransmitTlsData(s)) => {
                    // The records are in `outgoing`, sent in order before anything after them.
                    s.done();
                    Step::Again
                }
                Ok(ConnectionState::ReadTraffic(mut s)) => {
                    while let Some(record) = s.next_record() {
                        let record = record?;
                        discard += record.discard;
                        *received += record.payload.len();
                        if let Some(log) = log.as_deref_mut() {
                            log(record.payload);
                        }
                        plain.extend_from_slice(record.payload);
                    }
                    Step::Again
                }
                Ok(ConnectionState::ReadEarlyData(mut s)) => {
                    while let Some(record) = s.next_record() {
                        let record = record?;
                        discard += record.discard;
                        *received += record.payload.len();
                        if let Some(log) = log.as_deref_mut() {
                            log(record.payload);
                        }
                        plain.extend_from_slice(record.payload);
                    }
                    Step::Again
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Step::Again
                }
                Ok(ConnectionState::WriteTraffic(mut w)) => {
                    if !plain.is_empty() {
                        let at = self.outgoing.len();
                        let need = plain.len() + SEAL_MAX * plain.len().div_ceil(PLAIN_MAX);
                        self.outgoing.resize(at + need, 0);
                        let n = match w.encrypt(plain, &mut self.outgoing[at..]) {
                            Ok(n) => n,
                            Err(EncryptError::InsufficientSize(InsufficientSizeError {
                                required_size,
                            })) => {
                                self.outgoing.resize(at + required_size, 0);
                                w.encrypt(plain, &mut self.outgoing[at..])
                                    .map_err(|_| rustls::Error::EncryptError)?
                            }
                            Err(_) => return Err(rustls::Error::EncryptError),
                        };
                        self.outgoing.truncate(at + n);
                        self.sealed += plain.len();
                        plain.clear();
                    }
                    if (self.peer_closed || self.read_done) && !more && !self.close_queued {
                        let at = self.outgoing.len();
                        self.outgoing.resize(at + 2 * SEAL_MAX, 0);
                        let n = w
                            .queue_close_notify(&mut self.outgoing[at..])
                            .map_err(|_| rustls::Error::EncryptError)?;
                        self.outgoing.truncate(at + n);
                        self.close_queued = true;
                    }
                    Step::Write
                }
                // BlockedHandshake (more bytes needed), Closed, and states of later versions.
                Ok(_) => Step::Stop,
            };
            // rustls lets a TLS 1.3 server write (0.5-RTT) before the client's last flight is
            // processed; until then every byte received goes to rustls, which may keep part of
            // a record (a client's Certificate, CertificateVerify and Finished in one) pending.
            if !self.established && !self.conn.is_handshaking() {
                self.established = true;
            }
            self.head += discard;
            if self.head == self.incoming.len() {
                self.incoming.clear();
                self.head = 0;
            }
            match step {
                Step::Again => {}
                // More records to take, and room for their echo.
                Step::Write if more && self.process_end(plain.is_empty()) > self.head => {}
                Step::Write | Step::Stop => return Ok(()),
            }
        }
    }

    /// After an error, the alert rustls queued for the peer, into `outgoing`: the one record
    /// rustls hands out before it reads anything again. One call only, with nothing to read:
    /// a further call would make rustls read again, and it may hold a handshake message it
    /// split out of a record before the error (a client's Finished after a refused
    /// Certificate), which it would look for in the buffer it is given (an empty one: a
    /// panic); given the received bytes instead, it would read garbage again and raise a
    /// second alert (also a panic).
    fn take_alert(&mut self) {
        let mut empty: [u8; 0] = [];
        if let Ok(ConnectionState::EncodeTlsData(mut s)) =
            self.conn.process_tls_records(&mut empty).state
        {
            encode(&mut self.outgoing, &mut s);
        }
    }
}

/// Copies a record rustls encoded to the end of `out` (growing it when a handshake flight is
/// larger than its room: the certificate chain).
fn encode(out: &mut Vec<u8>, s: &mut EncodeTlsData<'_, ServerConnectionData>) {
    let at = out.len();
    let mut room = (out.capacity() - at).max(1024);
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
