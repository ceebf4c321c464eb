//! What a connection sends and how it checks what comes back: echo, or request/response.
//!
//! This module is responsible for the one seam between the connection's state machine
//! ([`Conn`](super::conn::Conn), which decides when to send and when it is done) and the
//! protocol: the [`Exchange`] trait, with one implementation per protocol. Echo (the default)
//! is the [`StreamVerifier`] with the payload generator; request/response is the
//! [`ReplyVerifier`] with the [`Script`]. The engine picks one once per run and the client
//! thread is compiled for it (`Client<X: Exchange>`), so the echo path carries no test of the
//! mode per message: it is the same code as before the trait existed.

use std::io;
use std::io::Write as _;

use crate::error::ConnError;
use crate::protocol::echo::{Completed, SendStamp, StreamVerifier};
use crate::protocol::payload::{PayloadGen, PayloadSpec};
use crate::protocol::reply::ReplyVerifier;
use crate::protocol::script::Script;

/// A connection's protocol: what it appends for message `index`, and how it checks the bytes
/// that come back. See the module docs.
pub(crate) trait Exchange: Sized {
    /// What every connection of the run shares: the payload, or the script.
    type Spec: ?Sized + Sync;
    /// What one call works from, made once per call (echo: the connection's generator).
    type Source<'s>;

    /// Whether a finished connection, its write side shut, waits for the server's end of
    /// stream (echo: it must come, with every byte echoed) or closes at once (request/response:
    /// every reply has arrived, and a server may rightly keep a half-closed connection open).
    const AWAITS_CLOSE: bool;

    /// A checker for up to `in_flight` messages in flight; allocates its queue once.
    fn new(in_flight: usize) -> Self;

    /// The source of connection `global`'s messages.
    fn source(spec: &Self::Spec, global: usize) -> Self::Source<'_>;

    /// Whether another message may be sent.
    fn has_room(&self) -> bool;

    /// Empties it for a new connection on the same slot (churn).
    fn reset(&mut self);

    /// Appends message `index` to `out` and records it as sent with `stamp`.
    fn push(&mut self, src: &Self::Source<'_>, stamp: SendStamp, out: &mut Vec<u8>);

    /// Checks `data`, the next bytes received, calling `on_complete` for every message whose
    /// reply (echo) it completes; returns how many.
    fn consume(
        &mut self,
        src: &Self::Source<'_>,
        data: &[u8],
        on_complete: impl FnMut(Completed),
    ) -> Result<usize, ConnError>;

    /// Whether a reply is awaited (for `--timeout`).
    fn awaiting(&self) -> bool;

    /// Messages sent and not wholly answered.
    fn in_flight(&self) -> usize;

    /// What the end of the stream means (`client_done`: the client had shut its side).
    fn on_eof(&self, client_done: bool) -> Result<(), ConnError>;

    /// Whether the server said it closes the connection after the reply in hand (HTTP's
    /// `Connection: close`): nothing more is sent on it, and a new connection takes its place.
    fn peer_closes(&self) -> bool {
        false
    }

    /// The `--timeout` error.
    fn timeout_error(&self) -> ConnError;

    /// A socket error, classified.
    fn io_error(&self, e: io::Error) -> ConnError;

    /// `--verbose`: one line about completed message `index`, to `line` (`scratch` is room
    /// for a message).
    fn describe(
        src: &Self::Source<'_>,
        global: usize,
        index: u64,
        scratch: &mut Vec<u8>,
        line: &mut Vec<u8>,
    );
}

impl Exchange for StreamVerifier {
    type Spec = PayloadSpec;
    type Source<'s> = PayloadGen<'s>;
    const AWAITS_CLOSE: bool = true;

    fn new(in_flight: usize) -> Self {
        StreamVerifier::regenerating(in_flight)
    }

    fn source(spec: &PayloadSpec, global: usize) -> PayloadGen<'_> {
        PayloadGen::new(spec, global as u64)
    }

    fn reset(&mut self) {
        Self::reset(self)
    }

    fn has_room(&self) -> bool {
        StreamVerifier::has_room(self)
    }

    fn push(&mut self, gen: &PayloadGen<'_>, stamp: SendStamp, out: &mut Vec<u8>) {
        let start = out.len();
        gen.append(stamp.index, out);
        self.push_len(out.len() - start, stamp)
            .expect("has_room was checked");
    }

    fn consume(
        &mut self,
        gen: &PayloadGen<'_>,
        data: &[u8],
        on_complete: impl FnMut(Completed),
    ) -> Result<usize, ConnError> {
        self.consume_expected(data, gen, on_complete)
    }

    fn awaiting(&self) -> bool {
        self.outstanding_bytes() > 0
    }

    fn in_flight(&self) -> usize {
        StreamVerifier::in_flight(self)
    }

    fn on_eof(&self, client_done: bool) -> Result<(), ConnError> {
        StreamVerifier::on_eof(self, client_done)
    }

    fn timeout_error(&self) -> ConnError {
        StreamVerifier::timeout_error(self)
    }

    fn io_error(&self, e: io::Error) -> ConnError {
        StreamVerifier::io_error(self, e)
    }

    fn describe(
        gen: &PayloadGen<'_>,
        global: usize,
        index: u64,
        scratch: &mut Vec<u8>,
        line: &mut Vec<u8>,
    ) {
        match gen.spec() {
            PayloadSpec::Text(_) => {
                gen.fill(index, scratch);
                line.extend_from_slice(b"The following message was received: ");
                line.extend_from_slice(scratch);
            }
            PayloadSpec::Random { size, .. } => {
                let _ = write!(
                    line,
                    "connection {}: message {index} received, {size} bytes verified",
                    global + 1
                );
            }
        }
    }
}

impl Exchange for ReplyVerifier {
    type Spec = Script;
    type Source<'s> = &'s Script;
    const AWAITS_CLOSE: bool = false;

    fn new(in_flight: usize) -> Self {
        ReplyVerifier::new(in_flight)
    }

    fn source(script: &Script, _global: usize) -> &Script {
        script
    }

    fn reset(&mut self) {
        Self::reset(self)
    }

    fn has_room(&self) -> bool {
        ReplyVerifier::has_room(self)
    }

    fn push(&mut self, script: &&Script, stamp: SendStamp, out: &mut Vec<u8>) {
        let request = &script.step(stamp.index).request;
        out.extend_from_slice(request);
        ReplyVerifier::push(self, request.len(), stamp);
    }

    fn consume(
        &mut self,
        script: &&Script,
        data: &[u8],
        on_complete: impl FnMut(Completed),
    ) -> Result<usize, ConnError> {
        ReplyVerifier::consume(self, data, script, on_complete)
    }

    fn awaiting(&self) -> bool {
        ReplyVerifier::in_flight(self) > 0
    }

    fn in_flight(&self) -> usize {
        ReplyVerifier::in_flight(self)
    }

    fn on_eof(&self, client_done: bool) -> Result<(), ConnError> {
        ReplyVerifier::on_eof(self, client_done)
    }

    fn peer_closes(&self) -> bool {
        ReplyVerifier::peer_closes(self)
    }

    fn timeout_error(&self) -> ConnError {
        ReplyVerifier::timeout_error(self)
    }

    fn io_error(&self, e: io::Error) -> ConnError {
        ReplyVerifier::io_error(self, e)
    }

    fn describe(
        script: &&Script,
        global: usize,
        index: u64,
        _scratch: &mut Vec<u8>,
        line: &mut Vec<u8>,
    ) {
        let _ = write!(
            line,
            "connection {}: reply to request {index} verified ({})",
            global + 1,
            script.step(index).label
        );
    }
}
