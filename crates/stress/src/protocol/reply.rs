//! Request/response mode: replies read off one connection, framed and checked.
//!
//! This module is responsible for deciding where each reply ends and whether it is the one
//! expected. A [`ReplyVerifier`] belongs to one connection: the engine tells it each request it
//! sent ([`ReplyVerifier::push`]) and hands it whatever the socket returned
//! ([`ReplyVerifier::consume`]), in chunks of any size. Replies come back in the order the
//! requests went (pipelined or not, as in Redis, memcached and HTTP/1.1), each framed by its
//! request's [`Step`] of the [`Script`]: exact bytes, a length, a delimiter, or an HTTP/1.x
//! response (`Content-Length` or chunked), then checked against a regex if one is given. Each
//! reply that arrives whole and right is reported as a [`Completed`] record carrying its
//! request's send timestamps, from which the engine computes latency, as for an echo.
//!
//! The first wrong reply ends the connection with a [`ConnError::WrongReply`] naming the
//! request (its number on the connection and its place in the sequence), what was expected and
//! the bytes received, escaped and cut to a readable length.
//!
//! # Memory
//!
//! The queue of requests in flight is allocated once, at creation. A reply's bytes are kept
//! only when its check needs them (a regex, an HTTP head to parse), in one buffer per
//! connection that grows to the largest reply kept and is then reused; an exact reply is
//! compared in place and a delimiter found across chunks from the last few bytes. Nothing is
//! allocated per reply once the buffers have grown.

use std::collections::VecDeque;

use memchr::memmem;

use crate::config::request::HttpStatus;
use crate::config::MAX_MESSAGE_SIZE;
use crate::error::ConnError;
use crate::protocol::echo::{Completed, SendStamp};
use crate::protocol::script::{Frame, Script, Step, MAX_HTTP_HEAD};
use crate::protocol::text::escape;

/// Bytes of a wrong reply shown in its error.
pub const SHOWN_BYTES: usize = 96;

/// Longest line of a chunked body (a chunk size or a trailer).
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Pending {
    stamp: SendStamp,
    /// Bytes of the request.
    len: usize,
}

/// Where the parse of an HTTP response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Http {
    /// Reading the head, up to the empty line.
    Head,
    /// Reading a body of `left` more bytes.
    Body { left: u64 },
    /// Reading a line of a chunked body.
    Line(LineKind),
    /// Reading `left` more bytes of a chunk.
    Chunk { left: u64 },
}

/// Which line of a chunked body is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineKind {
    /// A chunk's size.
    Size,
    /// The CRLF after a chunk's data.
    DataEnd,
    /// A trailer field, or the empty line that ends the body.
    Trailer,
}

/// What a step of framing did with the bytes it was given.
struct Fed {
    /// Bytes of the chunk that belong to this reply.
    used: usize,
    /// The reply is complete.
    complete: bool,
}

/// A wrong reply, before it is turned into an error.
struct Bad {
    reason: String,
    /// The reply's bytes as far as they are known, escaped.
    shown: String,
}

/// The reply checker of one connection. See the module docs.
#[derive(Debug)]
pub struct ReplyVerifier {
    in_flight: VecDeque<Pending>,
    capacity: usize,
    /// Bytes of the front reply received so far.
    got: usize,
    /// The front reply's bytes, when its step keeps them.
    kept: Vec<u8>,
    /// The last bytes of the front reply, where a delimiter may have begun (not kept).
    tail: Vec<u8>,
    /// A line of a chunked body.
    line: Vec<u8>,
    http: Http,
    /// Bytes received so far.
    received: u64,
    /// Request bytes sent so far.
    sent: u64,
    /// Request bytes whose replies have arrived.
    answered: u64,
    completed: u64,
    failed: Option<(u64, u64, String, String, String)>,
    /// The request whose reply completed last, for naming a framing that ends too early.
    last_done: Option<u64>,
    /// The server announced that it closes the connection after the current reply
    /// (`Connection: close`, or HTTP/1.0 without keep-alive).
    closing: bool,
}

impl ReplyVerifier {
    /// A verifier for up to `capacity` requests in flight (the pipeline depth, at least 1).
    /// Allocates its queue here, once.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ReplyVerifier {
            in_flight: VecDeque::with_capacity(capacity),
            capacity,
            got: 0,
            kept: Vec::new(),
            tail: Vec::new(),
            line: Vec::new(),
            http: Http::Head,
            received: 0,
            sent: 0,
            answered: 0,
            completed: 0,
            failed: None,
            last_done: None,
            closing: false,
        }
    }

    /// Empties it for a new connection (churn: `--messages-per-connection`): nothing in flight,
    /// no reply begun, counts from 0 again, no mismatch. Keeps its buffers' memory.
    pub fn reset(&mut self) {
        self.in_flight.clear();
        self.got = 0;
        self.kept.clear();
        self.tail.clear();
        self.line.clear();
        self.http = Http::Head;
        self.received = 0;
        self.sent = 0;
        self.answered = 0;
        self.completed = 0;
        self.failed = None;
        self.last_done = None;
        self.closing = false;
    }

    /// Whether the server announced that it closes the connection after the reply in hand
    /// (`Connection: close`; HTTP/1.0 without `keep-alive`), as nginx does on the last reply
    /// `keepalive_requests` allows: no request is sent after it, and the connection ends.
    pub fn peer_closes(&self) -> bool {
        self.closing
    }

    /// Whether another request may be sent.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.capacity
    }

    /// Records that request `stamp.index`, `len` bytes long, was sent with `stamp`.
    ///
    /// # Panics
    ///
    /// When `capacity` requests are already in flight ([`has_room`](Self::has_room) first).
    pub fn push(&mut self, len: usize, stamp: SendStamp) {
        assert!(self.has_room(), "a request beyond the pipeline");
        self.in_flight.push_back(Pending { stamp, len });
        self.sent += len as u64;
    }

    /// Requests sent whose replies have not wholly arrived.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Replies wholly received and right so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// Bytes received so far.
    pub fn received_bytes(&self) -> u64 {
        self.received
    }

    /// Request bytes sent whose replies have not wholly arrived.
    pub fn outstanding_bytes(&self) -> u64 {
        self.sent - self.answered
    }

    /// Checks `chunk`, the next bytes read from the socket, against the replies `script`
    /// expects, calling `on_complete` for each reply it finishes, in order. Returns how many
    /// completed.
    ///
    /// # Errors
    ///
    /// The first wrong reply (or bytes when no request is in flight), as a
    /// [`ConnError::WrongReply`]; replies completed earlier in the chunk have been reported.
    /// Once failed, the verifier refuses every later chunk with the same error.
    pub fn consume(
        &mut self,
        chunk: &[u8],
        script: &Script,
        mut on_complete: impl FnMut(Completed),
    ) -> Result<usize, ConnError> {
        if let Some(f) = &self.failed {
            return Err(wrong(f.clone()));
        }
        let mut rest = chunk;
        let mut done = 0;
        while !rest.is_empty() {
            let Some(front) = self.in_flight.front().copied() else {
                let mut bad = Bad {
                    reason: "bytes arrived with no request outstanding".to_string(),
                    shown: escape(rest, SHOWN_BYTES),
                };
                self.name_short_framing(script, rest, &mut bad);
                return Err(self.fail(0, "", bad));
            };
            let step = script.step(front.stamp.index);
            let fed = match self.feed(step, rest) {
                Ok(fed) => fed,
                Err(mut bad) => {
                    if self.got == 0 {
                        self.name_short_framing(script, rest, &mut bad);
                    }
                    return Err(self.fail_at(script, front.stamp.index, bad));
                }
            };
            self.received += fed.used as u64;
            rest = &rest[fed.used..];
            if !fed.complete {
                debug_assert!(rest.is_empty());
                break;
            }
            if let Some(re) = &step.regex {
                let hay = match &step.frame {
                    Frame::Until(d) => &self.kept[..self.kept.len() - d.len()],
                    _ => &self.kept[..],
                };
                if !re.is_match(hay) {
                    let bad = Bad {
                        reason: format!("does not match /{}/", re.as_str()),
                        shown: escape(&self.kept, SHOWN_BYTES),
                    };
                    return Err(self.fail_at(script, front.stamp.index, bad));
                }
            }
            let len = self.got;
            self.in_flight.pop_front();
            self.answered += front.len as u64;
            self.completed += 1;
            done += 1;
            self.got = 0;
            self.kept.clear();
            self.tail.clear();
            self.line.clear();
            self.http = Http::Head;
            self.last_done = Some(front.stamp.index);
            on_complete(Completed {
                stamp: front.stamp,
                len,
            });
        }
        Ok(done)
    }

    /// When `rest`, the bytes after a whole reply, begin with a line ending and that reply was
    /// an `--expect` without one, says so in `bad`: the expected reply was one line ending
    /// short (`--expect '+PONG'` for `+PONG\r\n`), which is why these bytes do not fit.
    fn name_short_framing(&self, script: &Script, rest: &[u8], bad: &mut Bad) {
        let Some(index) = self.last_done else { return };
        let Frame::Exact(x) = &script.step(index).frame else {
            return;
        };
        // The chunk may hold only the `\r` so far.
        let ending: &[u8] = match rest.first() {
            Some(b'\r') => b"\r\n",
            Some(b'\n') => b"\n",
            _ => return,
        };
        if x.ends_with(b"\n") {
            return;
        }
        let mut whole = x.clone();
        whole.extend_from_slice(ending);
        bad.reason = format!(
            "{}; the reply before ended with {} after the {} --expect gave: --expect is the \
             whole reply, its line ending too (--expect '{}'), or frame replies with \
             --expect-until '{}'",
            bad.reason,
            escape(ending, SHOWN_BYTES),
            escape(x, SHOWN_BYTES),
            escape(&whole, SHOWN_BYTES).trim_matches('"'),
            escape(ending, SHOWN_BYTES).trim_matches('"'),
        );
    }

    /// Frames the front reply, of `step`, with the next bytes `rest`.
    fn feed(&mut self, step: &Step, rest: &[u8]) -> Result<Fed, Bad> {
        let keep = step.keeps_reply();
        let fed = match &step.frame {
            Frame::Exact(x) => {
                let want = &x[self.got..];
                let n = want.len().min(rest.len());
                if let Some(p) = want[..n].iter().zip(rest).position(|(a, b)| a != b) {
                    let mut shown = x[..self.got + p].to_vec();
                    shown.extend_from_slice(&rest[p..rest.len().min(p + SHOWN_BYTES)]);
                    return Err(Bad {
                        reason: format!("expected {}", escape(x, SHOWN_BYTES)),
                        shown: escape(&shown, SHOWN_BYTES),
                    });
                }
                Fed {
                    used: n,
                    complete: self.got + n == x.len(),
                }
            }
            Frame::Len(len) => {
                let n = (len - self.got).min(rest.len());
                if keep {
                    self.kept.extend_from_slice(&rest[..n]);
                }
                Fed {
                    used: n,
                    complete: self.got + n == *len,
                }
            }
            Frame::Until(d) if keep => {
                let before = self.kept.len();
                let from = before.saturating_sub(d.len() - 1);
                self.kept.extend_from_slice(rest);
                match memmem::find(&self.kept[from..], d) {
                    Some(p) => {
                        let end = from + p + d.len();
                        self.kept.truncate(end);
                        Fed {
                            used: end - before,
                            complete: true,
                        }
                    }
                    None => {
                        if self.kept.len() > MAX_MESSAGE_SIZE {
                            return Err(no_delimiter(d, &self.kept));
                        }
                        Fed {
                            used: rest.len(),
                            complete: false,
                        }
                    }
                }
            }
            Frame::Until(d) => match find_end(&self.tail, rest, d) {
                Some(used) => Fed {
                    used,
                    complete: true,
                },
                None => {
                    keep_tail(&mut self.tail, rest, d.len() - 1);
                    if self.got + rest.len() > MAX_MESSAGE_SIZE {
                        return Err(no_delimiter(d, rest));
                    }
                    Fed {
                        used: rest.len(),
                        complete: false,
                    }
                }
            },
            Frame::Http {
                status,
                head_request,
            } => self.feed_http(*status, *head_request, keep && step.regex.is_some(), rest)?,
        };
        self.got += fed.used;
        Ok(fed)
    }

    /// [`feed`](Self::feed) for an HTTP response: the head is always kept (to be parsed), the
    /// body only when `keep_body` (a regex).
    fn feed_http(
        &mut self,
        status: HttpStatus,
        head_request: bool,
        keep_body: bool,
        rest: &[u8],
    ) -> Result<Fed, Bad> {
        let mut used = 0;
        while used < rest.len() {
            let input = &rest[used..];
            match self.http {
                Http::Head => {
                    let before = self.kept.len();
                    let from = before.saturating_sub(3);
                    self.kept.extend_from_slice(input);
                    let Some(p) = memmem::find(&self.kept[from..], b"\r\n\r\n") else {
                        if self.kept.len() > MAX_HTTP_HEAD {
                            return Err(Bad {
                                reason: format!(
                                    "no end of an HTTP head within {MAX_HTTP_HEAD} bytes"
                                ),
                                shown: escape(&self.kept, SHOWN_BYTES),
                            });
                        }
                        return Ok(Fed {
                            used: rest.len(),
                            complete: false,
                        });
                    };
                    let end = from + p + 4;
                    self.kept.truncate(end);
                    used += end - before;
                    self.http = self.parse_head(status, head_request)?;
                }
                Http::Body { left } => {
                    let n = (left.min(input.len() as u64)) as usize;
                    if keep_body {
                        self.kept.extend_from_slice(&input[..n]);
                    }
                    used += n;
                    self.http = Http::Body {
                        left: left - n as u64,
                    };
                }
                Http::Chunk { left } => {
                    let n = (left.min(input.len() as u64)) as usize;
                    if keep_body {
                        self.kept.extend_from_slice(&input[..n]);
                    }
                    used += n;
                    self.http = if left == n as u64 {
                        Http::Line(LineKind::DataEnd)
                    } else {
                        Http::Chunk {
                            left: left - n as u64,
                        }
                    };
                }
                Http::Line(kind) => {
                    let (n, whole) = match memchr::memchr(b'\n', input) {
                        Some(p) => (p + 1, true),
                        None => (input.len(), false),
                    };
                    self.line.extend_from_slice(&input[..n]);
                    if keep_body {
                        self.kept.extend_from_slice(&input[..n]);
                    }
                    used += n;
                    if self.line.len() > MAX_CHUNK_LINE {
                        return Err(self.bad_chunk("a chunk line longer than 4096 bytes"));
                    }
                    if whole {
                        self.http = self.end_line(kind)?;
                        self.line.clear();
                    }
                }
            }
            if self.http == (Http::Body { left: 0 }) {
                return Ok(Fed {
                    used,
                    complete: true,
                });
            }
        }
        Ok(Fed {
            used,
            complete: false,
        })
    }

    /// The head is complete in `kept`: checks its status and decides how the body is framed.
    fn parse_head(&mut self, status: HttpStatus, head_request: bool) -> Result<Http, Bad> {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut headers);
        let shown = || escape(&self.kept, SHOWN_BYTES);
        match resp.parse(&self.kept) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => unreachable!("the head ends with an empty line"),
            Err(e) => {
                return Err(Bad {
                    reason: format!("not an HTTP/1.x response head ({e})"),
                    shown: shown(),
                })
            }
        }
        let code = resp.code.expect("a complete response has a code");
        let connection = resp
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("connection"))
            .flat_map(|h| h.value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii);
        let (mut close, mut keep_alive) = (false, false);
        for token in connection {
            close |= token.eq_ignore_ascii_case(b"close");
            keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
        }
        // HTTP/1.0 closes unless it says keep-alive; HTTP/1.1 keeps alive unless it says close.
        self.closing |= close || (resp.version == Some(0) && !keep_alive);
        if !status.accepts(code) {
            return Err(Bad {
                reason: format!("HTTP status {code}, expected {status}"),
                shown: shown(),
            });
        }
        if head_request || code / 100 == 1 || code == 204 || code == 304 {
            return Ok(Http::Body { left: 0 });
        }
        let header = |name: &str| {
            resp.headers
                .iter()
                .rev()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
        };
        if let Some(te) = header("transfer-encoding") {
            let last = te.rsplit(|&b| b == b',').next().unwrap_or(te);
            if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Ok(Http::Line(LineKind::Size));
            }
        }
        match header("content-length") {
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(|left| Http::Body { left })
                .ok_or_else(|| Bad {
                    reason: format!("a Content-Length of {}", escape(v, 40)),
                    shown: shown(),
                }),
            None => Err(Bad {
                reason: "an HTTP response with neither Content-Length nor chunked \
                         Transfer-Encoding: its end cannot be found on a kept-alive connection"
                    .to_string(),
                shown: shown(),
            }),
        }
    }

    /// A whole line of a chunked body is in `line`: what comes next.
    fn end_line(&mut self, kind: LineKind) -> Result<Http, Bad> {
        match kind {
            LineKind::Size => match httparse::parse_chunk_size(&self.line) {
                Ok(httparse::Status::Complete((_, 0))) => Ok(Http::Line(LineKind::Trailer)),
                Ok(httparse::Status::Complete((_, left))) => Ok(Http::Chunk { left }),
                _ => Err(self.bad_chunk("a chunk size that is not hex digits")),
            },
            LineKind::DataEnd if self.line == b"\r\n" => Ok(Http::Line(LineKind::Size)),
            LineKind::DataEnd => Err(self.bad_chunk("no CRLF after a chunk's data")),
            LineKind::Trailer if self.line == b"\r\n" => Ok(Http::Body { left: 0 }),
            LineKind::Trailer => Ok(Http::Line(LineKind::Trailer)),
        }
    }

    fn bad_chunk(&self, what: &str) -> Bad {
        Bad {
            reason: format!("a malformed chunked body: {what}"),
            shown: escape(&self.line, SHOWN_BYTES),
        }
    }

    /// The error for `bad`, the reply to request `index`.
    fn fail_at(&mut self, script: &Script, index: u64, bad: Bad) -> ConnError {
        let step = if script.steps.len() > 1 {
            format!(
                " ({} of {} in the sequence)",
                script.position(index) + 1,
                script.steps.len()
            )
        } else {
            String::new()
        };
        self.fail(index, &step, bad)
    }

    fn fail(&mut self, index: u64, step: &str, bad: Bad) -> ConnError {
        let offset = self.received - self.got as u64;
        let f = (offset, index, step.to_string(), bad.reason, bad.shown);
        self.failed = Some(f.clone());
        wrong(f)
    }

    /// What the end of the stream means: `client_done` says whether the client had finished
    /// sending. `Ok` for a clean close.
    ///
    /// # Errors
    ///
    /// [`ConnError::ShortReply`] with requests unanswered, [`ConnError::EarlyClose`] with none
    /// when the client was not done.
    pub fn on_eof(&self, client_done: bool) -> Result<(), ConnError> {
        if !self.in_flight.is_empty() {
            Err(ConnError::ShortReply {
                offset: self.received,
                unanswered: self.in_flight.len(),
                announced: self.closing,
            })
        } else if !client_done && !self.closing {
            Err(ConnError::EarlyClose {
                offset: self.received,
            })
        } else {
            Ok(())
        }
    }

    /// The error for a `--timeout` expiry with requests unanswered.
    pub fn timeout_error(&self) -> ConnError {
        ConnError::Timeout {
            offset: self.received,
            outstanding: self.outstanding_bytes(),
        }
    }

    /// Classifies a socket error at the current offset; see [`ConnError::from_io`].
    pub fn io_error(&self, e: std::io::Error) -> ConnError {
        match ConnError::from_io(e, self.received) {
            ConnError::Timeout { offset, .. } => ConnError::Timeout {
                offset,
                outstanding: self.outstanding_bytes(),
            },
            other => other,
        }
    }
}

fn wrong((offset, request, step, reason, got): (u64, u64, String, String, String)) -> ConnError {
    ConnError::WrongReply {
        offset,
        request,
        step,
        reason,
        got,
    }
}

fn no_delimiter(d: &[u8], got: &[u8]) -> Bad {
    Bad {
        reason: format!(
            "no {} within {MAX_MESSAGE_SIZE} bytes",
            escape(d, SHOWN_BYTES)
        ),
        shown: escape(got, SHOWN_BYTES),
    }
}

/// Where the first `delim` ends in `chunk` (bytes of `chunk` up to and including it), given
/// that the reply so far ends with `tail` (no delimiter in it).
fn find_end(tail: &[u8], chunk: &[u8], delim: &[u8]) -> Option<usize> {
    // A delimiter that began in the tail, earliest first.
    for k in (1..=tail.len().min(delim.len() - 1)).rev() {
        let need = delim.len() - k;
        if chunk.len() >= need
            && tail[tail.len() - k..] == delim[..k]
            && chunk[..need] == delim[k..]
        {
            return Some(need);
        }
    }
    memmem::find(chunk, delim).map(|p| p + delim.len())
}

/// Keeps in `tail` the last `keep` bytes of `tail` followed by `chunk`.
fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8], keep: usize) {
    if chunk.len() >= keep {
        tail.clear();
        tail.extend_from_slice(&chunk[chunk.len() - keep..]);
    } else {
        tail.extend_from_slice(chunk);
        let excess = tail.len().saturating_sub(keep);
        tail.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::request::{pair, Item};
    use crate::error::ErrorKind;

    fn script(items: Vec<Item>) -> Script {
        Script::compile(&pair(items).unwrap()).unwrap()
    }

    fn req(s: &str) -> Item {
        Item::Request(s.as_bytes().to_vec())
    }

    fn stamp(index: u64) -> SendStamp {
        let now = Instant::now();
        SendStamp {
            index,
            intended: now,
            sent: now,
        }
    }

    /// Sends `n` requests of `s` and feeds `wire` in chunks of `chunk` bytes; returns the
    /// completed request numbers and reply lengths, or the error.
    fn run(s: &Script, n: u64, wire: &[u8], chunk: usize) -> Result<Vec<(u64, usize)>, ConnError> {
        let mut v = ReplyVerifier::new(n as usize);
        for i in 1..=n {
            v.push(s.step(i).request.len(), stamp(i));
        }
        let mut done = Vec::new();
        for c in wire.chunks(chunk) {
            v.consume(c, s, |m| done.push((m.stamp.index, m.len)))?;
        }
        Ok(done)
    }

    #[track_caller]
    fn every_chunking(s: &Script, n: u64, wire: &[u8], expect: &[(u64, usize)]) {
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(run(s, n, wire, chunk).unwrap(), expect, "chunks of {chunk}");
        }
    }

    #[track_caller]
    fn wrong_in_every_chunking(s: &Script, n: u64, wire: &[u8], needle: &str) -> String {
        let mut last = String::new();
        for chunk in [1, 3, 4096] {
            let e = run(s, n, wire, chunk).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Mismatch);
            last = e.to_string();
            assert!(last.contains(needle), "{last} should contain {needle:?}");
        }
        last
    }

    /// `--expect '+PONG'` against `+PONG\r\n` passed one reply, then failed on "bytes arrived
    /// with no request outstanding" (or a wrong second reply) without naming the framing.
    #[test]
    fn an_expect_without_its_line_ending_is_named() {
        let s = script(vec![req("PING\r\n"), Item::Expect(b"+PONG".to_vec())]);
        for n in [1, 2] {
            let e = wrong_in_every_chunking(&s, n, b"+PONG\r\n+PONG\r\n", "--expect '+PONG\\r\\n'");
            assert!(e.contains("--expect-until '\\r\\n'"), "{e}");
        }
        // A reply that is wrong for another reason says nothing of line endings.
        let e = wrong_in_every_chunking(&s, 2, b"+PONG-PONG", "expected");
        assert!(!e.contains("line ending"), "{e}");
    }

    #[test]
    fn exact_replies_in_sequence() {
        let s = script(vec![
            req("SET k v\r\n"),
            Item::Expect(b"+OK\r\n".to_vec()),
            req("GET k\r\n"),
            Item::Expect(b"$1\r\nv\r\n".to_vec()),
        ]);
        every_chunking(
            &s,
            4,
            b"+OK\r\n$1\r\nv\r\n+OK\r\n$1\r\nv\r\n",
            &[(1, 5), (2, 7), (3, 5), (4, 7)],
        );
        let e = wrong_in_every_chunking(&s, 2, b"+OK\r\n$-1\r\n", "wrong reply to request 2");
        assert_eq!(
            e,
            r#"wrong reply to request 2 (2 of 2 in the sequence): expected "$1\r\nv\r\n"; received "$-1\r\n""#
        );
        let e = run(&s, 2, b"+OK\r\n$1\r\nv\r\n", 100).unwrap();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn the_error_names_the_offset_and_stays() {
        let s = script(vec![req("PING\r\n"), Item::Expect(b"+PONG\r\n".to_vec())]);
        let mut v = ReplyVerifier::new(2);
        v.push(6, stamp(1));
        v.push(6, stamp(2));
        assert_eq!(v.consume(b"+PONG\r\n+PO", &s, |_| {}).unwrap(), 1);
        let e = v.consume(b"NK\r\n", &s, |_| {}).unwrap_err();
        assert_eq!(e.offset(), Some(7), "the wrong reply begins at byte 7");
        assert!(e.to_string().contains(r#"received "+PONK\r\n""#), "{e}");
        assert_eq!(
            v.consume(b"x", &s, |_| {}).unwrap_err().to_string(),
            e.to_string()
        );
    }

    #[test]
    fn unsolicited_bytes_are_wrong() {
        let s = script(vec![req("PING\r\n"), Item::Expect(b"+PONG\r\n".to_vec())]);
        let e = run(&s, 1, b"+PONG\r\n-ERR\r\n", 4096).unwrap_err();
        assert!(e.to_string().contains("no request outstanding"), "{e}");
    }

    #[test]
    fn length_and_delimiter_framing() {
        let s = script(vec![req("a"), Item::ExpectLen(3)]);
        every_chunking(&s, 2, b"xyzuvw", &[(1, 3), (2, 3)]);
        for delim in ["\r\n", "\r\n\r\n", "END\r\n", "|"] {
            let d = delim.as_bytes().to_vec();
            let s = script(vec![req("a"), Item::ExpectUntil(d.clone())]);
            let mut wire = Vec::new();
            let mut expect = Vec::new();
            for i in 1..=3u64 {
                let body = format!(
                    "reply {i} with \r and END\r and |{}",
                    "x".repeat(i as usize)
                );
                // The delimiter never occurs in the body for these, except `|`.
                let body = if delim == "|" {
                    format!("reply {i}")
                } else {
                    body.replace("|", "")
                };
                wire.extend_from_slice(body.as_bytes());
                wire.extend_from_slice(&d);
                expect.push((i, body.len() + d.len()));
            }
            every_chunking(&s, 3, &wire, &expect);
        }
    }

    #[test]
    fn a_regex_checks_the_framed_reply() {
        let s = script(vec![
            req("GET k\r\n"),
            Item::ExpectUntil(b"\r\n".to_vec()),
            Item::ExpectRegex(r"^\$\d+$".into()),
        ]);
        every_chunking(&s, 2, b"$12\r\n$7\r\n", &[(1, 5), (2, 4)]);
        wrong_in_every_chunking(&s, 2, b"$12\r\n-ERR x\r\n", r#"does not match /^\$\d+$/"#);
        // Alone, a regex frames one line.
        let s = script(vec![req("x"), Item::ExpectRegex("^VALUE".into())]);
        every_chunking(&s, 1, b"VALUE k 0 1\n", &[(1, 12)]);
        // With a length, over those bytes.
        let s = script(vec![
            req("x"),
            Item::ExpectLen(4),
            Item::ExpectRegex("^ab.d$".into()),
        ]);
        every_chunking(&s, 2, b"abcdabzd", &[(1, 4), (2, 4)]);
        wrong_in_every_chunking(&s, 2, b"abcdzzzz", "request 2");
    }

    fn http(items: Vec<Item>) -> Script {
        let mut all = vec![req("GET / HTTP/1.1\r\nHost: x\r\n\r\n")];
        all.extend(items);
        script(all)
    }

    /// nginx answers the last request `keepalive_requests` allows with `Connection: close`, then
    /// closes: the verifier says so, and the close that follows is not an error.
    #[test]
    fn connection_close_is_announced_and_its_end_is_no_error() {
        let s = http(vec![Item::ExpectHttp(HttpStatus::Class(2))]);
        let last = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        let kept = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let old_kept = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok";
        for (wire, closes) in [
            (&last[..], true),
            (&kept[..], false),
            (&old[..], true),
            (&old_kept[..], false),
        ] {
            let mut v = ReplyVerifier::new(1);
            v.push(s.step(1).request.len(), stamp(1));
            assert_eq!(v.consume(wire, &s, |_| {}).unwrap(), 1);
            assert_eq!(v.peer_closes(), closes, "{}", String::from_utf8_lossy(wire));
            // The server's end of stream, before the client shut its side.
            assert_eq!(v.on_eof(false).is_ok(), closes);
            v.reset();
            assert!(!v.peer_closes(), "a new connection starts kept alive");
        }
        // A request pipelined past the closing reply is never answered: said so.
        let mut v = ReplyVerifier::new(2);
        v.push(s.step(1).request.len(), stamp(1));
        v.push(s.step(2).request.len(), stamp(2));
        v.consume(last, &s, |_| {}).unwrap();
        let e = v.on_eof(false).unwrap_err().to_string();
        assert!(
            e.contains("1 request unanswered, sent after a reply that said `Connection: close`"),
            "{e}"
        );
        assert!(e.contains("--pipeline 1"), "{e}");
    }

    #[test]
    fn http_content_length_and_chunked() {
        let s = http(vec![Item::ExpectHttp(HttpStatus::Class(2))]);
        let one = b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 5\r\n\r\nhello";
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n\
                        A\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n";
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        let mut wire = Vec::new();
        wire.extend_from_slice(one);
        wire.extend_from_slice(chunked);
        wire.extend_from_slice(empty);
        wire.extend_from_slice(one);
        every_chunking(
            &s,
            4,
            &wire,
            &[
                (1, one.len()),
                (2, chunked.len()),
                (3, empty.len()),
                (4, one.len()),
            ],
        );
        // A status other than the one expected.
        let s404 = http(vec![Item::ExpectHttp(HttpStatus::Code(200))]);
        let nf = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        wrong_in_every_chunking(&s404, 1, nf, "HTTP status 404, expected 200");
        // No framing at all.
        let bare = b"HTTP/1.1 200 OK\r\n\r\n";
        wrong_in_every_chunking(&s, 1, bare, "neither Content-Length");
        wrong_in_every_chunking(&s, 1, b"SSH-2.0\r\n\r\n", "not an HTTP/1.x response head");
        // A regex over head and body.
        let re = http(vec![
            Item::ExpectHttp(HttpStatus::Class(2)),
            Item::ExpectRegex("(?s)Server: t.*hello$".into()),
        ]);
        every_chunking(&re, 1, one, &[(1, one.len())]);
        let other = b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 5\r\n\r\nhullo";
        wrong_in_every_chunking(&re, 1, other, "does not match");
        // HEAD: no body, whatever Content-Length says.
        let head = script(vec![
            req("HEAD / HTTP/1.1\r\n\r\n"),
            Item::ExpectHttp(HttpStatus::Class(2)),
        ]);
        let h = b"HTTP/1.1 200 OK\r\nContent-Length: 612\r\n\r\n";
        every_chunking(
            &head,
            2,
            &[&h[..], &h[..]].concat(),
            &[(1, h.len()), (2, h.len())],
        );
    }

    #[test]
    fn eof_and_timeouts() {
        let s = script(vec![req("a"), Item::ExpectLen(2)]);
        let mut v = ReplyVerifier::new(2);
        v.push(1, stamp(1));
        v.push(1, stamp(2));
        v.consume(b"xyz", &s, |_| {}).unwrap();
        let e = v.on_eof(true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ShortEcho);
        assert_eq!(
            e.to_string(),
            "short reply: connection closed at byte 3 with 1 request unanswered"
        );
        assert_eq!(v.timeout_error().kind(), ErrorKind::Timeout);
        v.consume(b"w", &s, |_| {}).unwrap();
        assert!(v.on_eof(true).is_ok());
        assert_eq!(v.on_eof(false).unwrap_err().kind(), ErrorKind::EarlyClose);
    }

    #[test]
    fn find_end_across_chunks() {
        assert_eq!(find_end(b"ab\r", b"\nxy", b"\r\n"), Some(1));
        assert_eq!(find_end(b"\r\n\r", b"\n", b"\r\n\r\n"), Some(1));
        assert_eq!(find_end(b"x\r", b"x\r\n", b"\r\n"), Some(3));
        assert_eq!(find_end(b"", b"abc", b"\r\n"), None);
        let mut t = Vec::new();
        keep_tail(&mut t, b"abcdef", 3);
        assert_eq!(t, b"def");
        keep_tail(&mut t, b"g", 3);
        assert_eq!(t, b"efg");
    }
}
