//! [`Session`]: one connection's TLS on rustls' unbuffered API, over buffers the connection
//! owns, told what its receives and sends did and answering what to do next
//! ([`take_recv`](Session::take_recv), [`take_send`](Session::take_send),
//! [`is_finished`](Session::is_finished)). No socket in it: the completion model's worker
//! carries its steps out with the port's owned-buffer receives and sends.
//!
//! A session echoes what it decrypts, unless its plaintext is [carried](Session::carry) to
//! the caller (wss: a WebSocket echo above it), which then [seals](Session::seal) its own
//! output and [closes](Session::close) when it is done; the buffers and bounds below are the
//! same, the caller's input buffer taking the place of the echo's bound on what is held.
//!
//! # Full duplex
//!
//! A receive and a send may be in flight at once: the records received while the previous
//! echo is being sent are decrypted and their echo sealed into a second send buffer, sent as
//! soon as the first is out. The receive buffer is handed to a receive only when every whole
//! record in it has been processed (what stays is the start of the next record), so rustls
//! never runs over bytes the kernel is writing.
//!
//! # Buffers and the memory bound
//!
//! - `incoming`: ciphertext as received (the port receives straight into its spare capacity),
//!   decrypted there by rustls; room for one largest record ([`RECORD_MAX`]).
//! - `sending` and `fill`: the handshake's records, then the encrypted echo; one is being sent
//!   while the other fills, each with room for one record of echo ([`PLAIN_MAX`] and what
//!   sealing adds, [`OUTGOING`]).
//! - the plaintext between decryption and encryption, in a scratch buffer the caller passes
//!   in (one per worker, not per connection: it is empty again whenever `pump` returns).
//!
//! A record is taken from `incoming` only when its echo fits in what is left of `fill` and in
//! the connection's bound on echo held (the plaintext connections' bound, from
//! `--buffer-size`, at least one record and at most two), records taken one at a
//! time, their lengths read from their headers; no receive is started while a whole record
//! waits. So a peer that never reads stalls its own connection with at most its bound of echo
//! held (at the default `--buffer-size`, two records: one being sent, one sealed) and one
//! record of ciphertext in, and the kernel holds the rest. rustls' own buffers
//! stay empty between calls: the plaintext of a record is taken as soon as it is decrypted,
//! and handshake records are copied out as soon as rustls encodes them.
//!
//! # Allocation
//!
//! rustls 0.23 allocates twice per record of application data: it decrypts in place in
//! `incoming`, then copies the plaintext into a new vector for its received-plaintext queue
//! (`CommonState::take_received_plaintext`, which `ReadTraffic::next_record` hands out), and
//! its record layer seals into a new vector (`MessageEncrypter::encrypt` returns an owned
//! record, for every crypto provider) before `WriteTraffic::encrypt` copies it into `fill`.
//! So once the handshake is complete (and what rustls decrypted with it is echoed) the session
//! takes the connection's secrets and key schedule from rustls
//! (`dangerous_into_kernel_connection`, allowed by the configuration's
//! `enable_secret_extraction`) and protects records itself ([`Records`]): each record is
//! opened where it was received and its echo sealed straight into `fill`. After the handshake
//! nothing is allocated per message.

use std::sync::Arc;

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedStatus,
};
use rustls::{ProtocolVersion, ServerConfig};

use super::Failure;
use ringport_tls_record::{record_end, Records, ALERT, APPLICATION_DATA, HANDSHAKE};

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
/// Room in each send buffer for one record of echo and a close_notify after it.
pub const OUTGOING: usize = PLAIN_MAX + 2 * SEAL_MAX + 16;

/// What sees each record's plaintext as it is decrypted (`--log-messages`).
pub type Log<'a> = &'a mut dyn FnMut(&[u8]);

/// One connection's TLS state and buffers.
pub struct Session {
    /// rustls, until the handshake is complete (then its key schedule is in `records`).
    conn: Option<UnbufferedServerConnection>,
    /// The record protection after the handshake, when the configuration lets secrets be
    /// extracted.
    records: Option<Records<ServerConnectionData>>,
    /// The configuration lets secrets be extracted.
    extract: bool,
    /// The plaintext is carried to the caller, not echoed (see [`carry`](Self::carry)).
    carry: bool,
    /// Received ciphertext; `incoming[head..]` is not processed yet.
    incoming: Vec<u8>,
    head: usize,
    /// `incoming` is out with a receive.
    recv_out: bool,
    /// Ciphertext being sent; `sending[sent..]` is not sent yet.
    sending: Vec<u8>,
    sent: usize,
    /// Plaintext bytes sealed into `sending`, echoed once it is sent.
    sending_plain: usize,
    /// `sending` is out with a send.
    send_out: bool,
    /// Ciphertext to send after `sending`; rustls writes here.
    fill: Vec<u8>,
    /// Plaintext bytes sealed into `fill`.
    fill_plain: usize,
    /// The most plaintext held sealed and not yet sent (`sending_plain + fill_plain`), at
    /// least one record's.
    echo_limit: usize,
    established: bool,
    /// The client's close_notify arrived.
    peer_closed: bool,
    /// No byte will be received any more (end of stream, or a draining receive found none).
    read_done: bool,
    /// Our close_notify is in `fill` (or sent).
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
            .field("recv_out", &self.recv_out)
            .field("send_out", &self.send_out)
            .field("pending_in", &(self.incoming.len() - self.head))
            .field(
                "pending_out",
                &(self.sending.len() - self.sent + self.fill.len()),
            )
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
    /// The handshake is complete and everything rustls took is processed: from now on the
    /// records are protected here ([`Records`]).
    Convert,
}

impl Session {
    /// A new server-side session of `config`, holding at most `echo_limit` bytes of echo
    /// sealed and not yet sent (the connection's bound, `--buffer-size`'s; at least one record,
    /// at most two).
    ///
    /// # Errors
    ///
    /// When rustls cannot start a connection of this configuration.
    pub fn new(config: &Arc<ServerConfig>, echo_limit: usize) -> Result<Session, rustls::Error> {
        Ok(Session {
            conn: Some(UnbufferedServerConnection::new(Arc::clone(config))?),
            records: None,
            extract: config.enable_secret_extraction,
            carry: false,
            incoming: Vec::with_capacity(RECORD_MAX),
            head: 0,
            recv_out: false,
            sending: Vec::with_capacity(OUTGOING),
            sent: 0,
            sending_plain: 0,
            send_out: false,
            fill: Vec::with_capacity(OUTGOING),
            fill_plain: 0,
            echo_limit: echo_limit.clamp(PLAIN_MAX, 2 * PLAIN_MAX),
            established: false,
            peer_closed: false,
            read_done: false,
            close_queued: false,
            failure: None,
            first: [0; 16],
            first_len: 0,
        })
    }

    /// From now on the plaintext received is the caller's, not echoed: [`pump`](Self::pump)
    /// appends it to the caller's buffer (a record at a time, while the buffer has spare
    /// capacity for one more), [`seal`](Self::seal) protects what the caller sends, and
    /// close_notify is queued by [`close`](Self::close) only (wss: WebSocket over TLS).
    pub fn carry(&mut self) {
        self.carry = true;
    }

    /// The input is over: the peer's close_notify, or its end with no whole record left.
    pub fn input_over(&self) -> bool {
        !self.recv_out
            && (self.peer_closed
                || (self.read_done && record_end(&self.incoming, self.head).is_none()))
    }

    /// Seals as much of `data` as fits in the send buffer that fills and in the bound on
    /// output held, in records of at most [`PLAIN_MAX`]; returns how many bytes it took.
    /// Only once the handshake is complete; a failure to seal fails the connection.
    pub fn seal(&mut self, data: &[u8]) -> usize {
        let Some(records) = self.records.as_mut() else {
            return 0;
        };
        if self.failure.is_some() || self.close_queued {
            return 0;
        }
        let mut taken = 0;
        while taken < data.len() {
            let room = OUTGOING
                .max(self.fill.capacity())
                .saturating_sub(self.fill.len() + 2 * SEAL_MAX);
            let held = self.sending_plain + self.fill_plain;
            let n = (data.len() - taken)
                .min(PLAIN_MAX)
                .min(room)
                .min(self.echo_limit.saturating_sub(held));
            if n == 0 {
                break;
            }
            if records
                .seal(APPLICATION_DATA, &data[taken..taken + n], &mut self.fill)
                .is_err()
            {
                self.fail(Failure::Other);
                break;
            }
            self.fill_plain += n;
            taken += n;
        }
        taken
    }

    /// Queues close_notify after what is sealed (once the handshake is complete).
    pub fn close(&mut self) {
        if self.close_queued || self.failure.is_some() {
            return;
        }
        if let Some(records) = self.records.as_mut() {
            match records.seal(ALERT, &[1, 0], &mut self.fill) {
                Ok(()) => self.close_queued = true,
                Err(_) => self.fail(Failure::Other),
            }
        }
    }

    /// The handshake is complete.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The negotiated protocol version (once established).
    pub fn version(&self) -> Option<ProtocolVersion> {
        match (&self.records, &self.conn) {
            (Some(records), _) => Some(records.version()),
            (None, Some(conn)) => conn.protocol_version(),
            (None, None) => None,
        }
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

    /// The buffer to receive into (after what it holds), taken for the receive, when one is
    /// wanted: none is in flight, more input can be used, and no whole record waits in it
    /// (for room in the send buffers). `None` also when the buffer is full without holding a
    /// whole record, which [`pump`](Self::pump) fails.
    pub fn take_recv(&mut self) -> Option<Vec<u8>> {
        if self.recv_out
            || self.failure.is_some()
            || self.close_queued
            || self.read_done
            || self.peer_closed
        {
            return None;
        }
        self.compact();
        if self.established && self.record_end(0).is_some() {
            return None;
        }
        if self.incoming.len() == self.incoming.capacity() {
            return None;
        }
        self.recv_out = true;
        Some(std::mem::take(&mut self.incoming))
    }

    /// A receive into the buffer of [`take_recv`](Self::take_recv) ended, `n` bytes longer.
    pub fn received(&mut self, buf: Vec<u8>, n: usize) {
        self.incoming = buf;
        self.recv_out = false;
        if self.first_len < self.first.len() && n > 0 {
            let from = self.incoming.len() - n;
            let take = (self.first.len() - self.first_len).min(n);
            self.first[self.first_len..self.first_len + take]
                .copy_from_slice(&self.incoming[from..from + take]);
            self.first_len += take;
        }
    }

    /// The buffer and offset to send from, taken for the send, when there is ciphertext to
    /// send and no send is in flight.
    pub fn take_send(&mut self) -> Option<(Vec<u8>, usize)> {
        if self.send_out {
            return None;
        }
        if self.sent >= self.sending.len() {
            self.sending.clear();
            self.sent = 0;
            self.rotate();
        }
        if self.sending.is_empty() {
            return None;
        }
        self.send_out = true;
        Some((std::mem::take(&mut self.sending), self.sent))
    }

    /// A send from [`take_send`](Self::take_send)'s buffer ended with `n` more bytes sent;
    /// returns the plaintext bytes whose echo is now complete.
    pub fn sent(&mut self, buf: Vec<u8>, at: usize, n: usize) -> usize {
        self.sending = buf;
        self.send_out = false;
        self.sent = at + n;
        if self.sent < self.sending.len() {
            return 0;
        }
        self.sending.clear();
        self.sent = 0;
        let echoed = std::mem::take(&mut self.sending_plain);
        // What was sealed meanwhile goes next, and rustls fills the emptied buffer.
        self.rotate();
        echoed
    }

    /// The receive buffer, emptied, to receive into and drop what arrives once the session is
    /// over (the linger after close_notify); [`give_back`](Self::give_back) returns it.
    pub fn sink(&mut self) -> Vec<u8> {
        self.incoming.clear();
        self.recv_out = true;
        std::mem::take(&mut self.incoming)
    }

    /// Gives a buffer taken for an operation back without its bytes counting (the operation
    /// failed or was cancelled).
    pub fn give_back(&mut self, buf: Vec<u8>, incoming: bool) {
        if incoming {
            self.incoming = buf;
            self.recv_out = false;
        } else {
            self.sending = buf;
            self.send_out = false;
        }
    }

    /// Nothing is left to do: the connection fails, or its close_notify is out, or its input
    /// ended before the handshake completed; nothing is in flight or left to send. Close it.
    pub fn is_finished(&self) -> bool {
        !self.send_out
            && !self.recv_out
            && self.sent >= self.sending.len()
            && self.fill.is_empty()
            && (self.failure.is_some()
                || self.close_queued
                || (self.read_done && !self.established))
    }

    /// Processes what can be processed now: handshake records, records of echo (decrypted
    /// into `plain`, which is empty again on return, and encrypted into the send buffer that
    /// fills), the close_notify once the input is over. Nothing while a receive is in flight.
    /// Returns the plaintext bytes received (decrypted) in this call. `log` sees each
    /// record's plaintext (`--log-messages`). When the plaintext is [carried](Self::carry),
    /// `plain` is the caller's and keeps what is appended to it.
    pub fn pump(&mut self, plain: &mut Vec<u8>, mut log: Option<Log<'_>>) -> usize {
        let mut received = 0;
        if self.failure.is_none() && !self.recv_out {
            if let Err(e) = self.process(plain, &mut received, &mut log) {
                let failure = Failure::of(&e, &self.first[..self.first_len]);
                self.fail(failure);
                self.take_alert();
            }
            self.compact();
            let full = self.incoming.len() == self.incoming.capacity();
            if self.failure.is_none() && full && !self.read_done && self.record_end(0).is_none() {
                // More than the largest record, or a handshake that does not fit.
                self.fail(Failure::Other);
            }
        }
        if !self.carry {
            plain.clear();
        }
        received
    }

    /// Moves what is not processed yet to the front of `incoming`.
    fn compact(&mut self) {
        if self.head > 0 {
            self.incoming.copy_within(self.head.., 0);
            self.incoming.truncate(self.incoming.len() - self.head);
            self.head = 0;
        }
    }

    /// Makes `fill` the next to send when `sending` is empty.
    fn rotate(&mut self) {
        if self.sending.is_empty() && !self.fill.is_empty() {
            std::mem::swap(&mut self.sending, &mut self.fill);
            self.sending_plain = std::mem::take(&mut self.fill_plain);
            self.sent = 0;
        }
    }

    /// The end of a complete record starting at `at` in `incoming`, if there is one.
    fn record_end(&self, at: usize) -> Option<usize> {
        record_end(&self.incoming, at)
    }

    /// How far rustls may process now: everything during the handshake; after it, the next
    /// record when the plaintext is empty, its echo fits in `fill` and in the echo limit,
    /// else nothing (so that rustls offers to encrypt).
    fn process_end(&self, plain_empty: bool) -> usize {
        if !self.established {
            return self.incoming.len();
        }
        if !plain_empty {
            return self.head;
        }
        match self.record_end(self.head) {
            Some(end) => {
                let sealed = end - self.head - HEADER;
                let cost = sealed + SEAL_MAX;
                // Its plaintext: its body less an AEAD tag, at most a record's.
                let plain = sealed.saturating_sub(16).min(PLAIN_MAX);
                let held = self.sending_plain + self.fill_plain;
                if self.fill.len() + cost <= OUTGOING.max(self.fill.capacity())
                    && held + plain <= self.echo_limit
                {
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
            if self.conn.is_none() {
                return self.process_records(plain, received, log);
            }
            let end = self.process_end(self.carry || plain.is_empty());
            // Whether a whole record waits beyond what is processed now.
            let more = self.record_end(end).is_some();
            let conn = self.conn.as_mut().expect("checked above");
            let UnbufferedStatus { mut discard, state } =
                conn.process_tls_records(&mut self.incoming[self.head..end]);
            let step = match state {
                Err(e) => {
                    self.head += discard;
                    return Err(e);
                }
                Ok(ConnectionState::EncodeTlsData(mut s)) => {
                    encode(&mut self.fill, &mut s);
                    Step::Again
                }
                Ok(ConnectionState::TransmitTlsData(s)) => {
                    // The records are in `fill`, sent in order before anything after them.
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
                    if !plain.is_empty() && !self.carry {
                        let at = self.fill.len();
                        let need = plain.len() + SEAL_MAX * plain.len().div_ceil(PLAIN_MAX);
                        self.fill.resize(at + need, 0);
                        let n = match w.encrypt(plain, &mut self.fill[at..]) {
                            Ok(n) => n,
                            Err(EncryptError::InsufficientSize(InsufficientSizeError {
                                required_size,
                            })) => {
                                self.fill.resize(at + required_size, 0);
                                w.encrypt(plain, &mut self.fill[at..])
                                    .map_err(|_| rustls::Error::EncryptError)?
                            }
                            Err(_) => return Err(rustls::Error::EncryptError),
                        };
                        self.fill.truncate(at + n);
                        self.fill_plain += plain.len();
                        plain.clear();
                    }
                    if (self.peer_closed || self.read_done)
                        && !more
                        && !self.close_queued
                        && !self.carry
                    {
                        let at = self.fill.len();
                        self.fill.resize(at + 2 * SEAL_MAX, 0);
                        let n = w
                            .queue_close_notify(&mut self.fill[at..])
                            .map_err(|_| rustls::Error::EncryptError)?;
                        self.fill.truncate(at + n);
                        self.close_queued = true;
                    }
                    if self.extract && !self.close_queued {
                        Step::Convert
                    } else {
                        Step::Write
                    }
                }
                // BlockedHandshake (more bytes needed), Closed, and states of later versions.
                Ok(_) => Step::Stop,
            };
            // rustls lets a TLS 1.3 server write (0.5-RTT) before the client's last flight is
            // processed; until then every byte received goes to rustls, which may keep part of
            // a record (a client's Certificate, CertificateVerify and Finished in one) pending.
            if !self.established && !self.conn.as_ref().is_some_and(|c| c.is_handshaking()) {
                self.established = true;
            }
            self.head += discard;
            if self.head == self.incoming.len() {
                self.incoming.clear();
                self.head = 0;
            }
            match step {
                Step::Again => {}
                // Only once the client's last flight is in: rustls may write before it.
                Step::Convert if self.established => self.convert()?,
                // More records to take, and room for their echo.
                Step::Write | Step::Convert
                    if more && self.process_end(self.carry || plain.is_empty()) > self.head => {}
                Step::Write | Step::Convert | Step::Stop => return Ok(()),
            }
        }
    }

    /// Hands the connection from rustls to [`Records`]: its secrets, and its key schedule.
    fn convert(&mut self) -> Result<(), rustls::Error> {
        let conn = self.conn.take().expect("rustls has the connection");
        let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;
        self.records = Some(Records::new(secrets, kernel)?);
        Ok(())
    }

    /// After the handshake: opens each whole record in `incoming` whose echo fits (in `fill`
    /// and the echo limit) and seals its echo into `fill`, in place, allocating nothing; takes
    /// the peer's close_notify and key updates; queues our close_notify once the input is over.
    fn process_records(
        &mut self,
        plain: &mut Vec<u8>,
        received: &mut usize,
        log: &mut Option<Log<'_>>,
    ) -> Result<(), rustls::Error> {
        let Some(records) = self.records.as_mut() else {
            return Ok(());
        };
        while !self.peer_closed {
            let head = self.head;
            let Some(end) = record_end(&self.incoming, head) else {
                break;
            };
            let sealed = end - head - HEADER;
            let plain_max = sealed.saturating_sub(16).min(PLAIN_MAX);
            let held = self.sending_plain + self.fill_plain;
            let room = if self.carry {
                // The caller's buffer must take the record's plaintext.
                plain.capacity() - plain.len() >= plain_max
            } else {
                held + plain_max <= self.echo_limit
            };
            if self.fill.len() + sealed + SEAL_MAX > OUTGOING.max(self.fill.capacity()) || !room {
                break;
            }
            let (typ, range) = records.open(&mut self.incoming[head..end])?;
            let data = &self.incoming[head + range.start..head + range.end];
            self.head = end;
            match typ {
                APPLICATION_DATA => {
                    *received += data.len();
                    if let Some(log) = log.as_deref_mut() {
                        log(data);
                    }
                    if self.carry {
                        plain.extend_from_slice(data);
                    } else if !data.is_empty() {
                        records.seal(APPLICATION_DATA, data, &mut self.fill)?;
                        self.fill_plain += data.len();
                    }
                }
                ALERT => match data {
                    [_, 0] => self.peer_closed = true,
                    // user_canceled, a warning
                    [1, 90] => {}
                    [_, description] => {
                        return Err(rustls::Error::AlertReceived((*description).into()))
                    }
                    _ => return Err(rustls::Error::General("a malformed alert".into())),
                },
                HANDSHAKE => records.handshake(data, &mut self.fill)?,
                _ => return Err(rustls::Error::General("an unexpected content type".into())),
            }
        }
        if self.head == self.incoming.len() {
            self.incoming.clear();
            self.head = 0;
        }
        let input_over =
            self.peer_closed || (self.read_done && record_end(&self.incoming, self.head).is_none());
        if input_over && !self.close_queued && !self.carry {
            // close_notify: a warning alert.
            records.seal(ALERT, &[1, 0], &mut self.fill)?;
            self.close_queued = true;
        }
        Ok(())
    }

    /// After an error, the alert rustls queued for the peer, into `fill`: the one record
    /// rustls hands out before it reads anything again. One call only, with nothing to read:
    /// a further call would make rustls read again, and it may hold a handshake message it
    /// split out of a record before the error (a client's Finished after a refused
    /// Certificate), which it would look for in the buffer it is given (an empty one: a
    /// panic); given the received bytes instead, it would read garbage again and raise a
    /// second alert (also a panic).
    fn take_alert(&mut self) {
        let mut empty: [u8; 0] = [];
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if let Ok(ConnectionState::EncodeTlsData(mut s)) =
            conn.process_tls_records(&mut empty).state
        {
            encode(&mut self.fill, &mut s);
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
