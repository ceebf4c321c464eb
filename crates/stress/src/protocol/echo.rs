//! Stream verification: every echoed byte of a connection checked against what it sent.
//!
//! This module is responsible for deciding, byte by byte, whether an echo is correct, and for
//! naming what went wrong when it is not. A [`StreamVerifier`] belongs to one connection. The
//! engine tells it what was sent ([`StreamVerifier::push`]) and hands it whatever the socket
//! returned ([`StreamVerifier::consume`]), in chunks of any size: TCP is a stream, so one read may
//! hold half a message, or the end of one and the start of the next. Each message whose last byte
//! arrives intact is reported as a [`Completed`] record carrying its send timestamps, from which
//! the engine computes latency.
//!
//! The first wrong byte ends verification of the connection with a [`ConnError::Mismatch`] that
//! gives the connection-relative byte offset (counted from the first byte the connection sent),
//! the message number, the expected and the received byte. The other failure kinds
//! ([`ErrorKind`](crate::error::ErrorKind)) are produced here too ([`StreamVerifier::on_eof`]) or classified from socket
//! errors ([`ConnError::from_io`]).
//!
//! # Memory
//!
//! A verifier made with [`StreamVerifier::new`] keeps a copy of the bytes in flight, at most
//! `capacity` messages (the pipeline depth). One made with [`StreamVerifier::regenerating`] keeps
//! only each message's number and length, and asks an [`Expected`] source (the payload generator)
//! for the bytes when they come back: no copy of what was sent, and the comparison reads memory
//! the source keeps warm instead of a per-connection copy. Either way, its queues are allocated
//! once, at creation; pushing and consuming never allocate while the limits given there hold.

use std::collections::VecDeque;
use std::io;
use std::time::Instant;

use crate::error::ConnError;

/// When a message was meant to go and when it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendStamp {
    /// The message number (1-based) on its connection.
    pub index: u64,
    /// The intended send time: the scheduled time in open-loop (`--rate`) mode, the same as
    /// `sent` otherwise. Latency from here is corrected for coordinated omission.
    pub intended: Instant,
    /// When the send was actually issued.
    pub sent: Instant,
}

/// A message whose whole echo arrived intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// Its send timestamps.
    pub stamp: SendStamp,
    /// Its length in bytes.
    pub len: usize,
}

/// Where a regenerating verifier finds the bytes it expects: message `index` of its connection,
/// as sent. Implemented by [`PayloadGen`](crate::protocol::payload::PayloadGen).
pub trait Expected {
    /// The position in `got` of its first byte that differs from bytes `at..at + got.len()` of
    /// message `index`, or `None` when they all match. Bytes past the message's end never match.
    fn mismatch(&self, index: u64, at: usize, got: &[u8]) -> Option<usize>;

    /// Byte `at` of message `index`.
    fn byte(&self, index: u64, at: usize) -> Option<u8>;
}

/// [`StreamVerifier::push`] was called with more than the verifier was sized for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("verifier full: {in_flight} messages in flight, capacity {capacity}")]
pub struct Full {
    /// Messages in flight when the push was refused.
    pub in_flight: usize,
    /// The verifier's message capacity.
    pub capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    stamp: SendStamp,
    len: usize,
    /// Bytes of this message not yet echoed (the front message may be partly echoed).
    remaining: usize,
}

/// The verifier of one connection's echo stream. See the module docs.
#[derive(Debug)]
pub struct StreamVerifier {
    /// The bytes in flight, unless the verifier regenerates them.
    expected: VecDeque<u8>,
    /// Made with [`StreamVerifier::regenerating`]: no bytes kept.
    regenerates: bool,
    in_flight: VecDeque<InFlight>,
    capacity: usize,
    /// Bytes verified so far: the connection-relative offset of the next byte expected.
    verified: u64,
    /// Bytes pushed so far.
    sent: u64,
    completed: u64,
    /// The first mismatch, kept so every later chunk is refused with the same error.
    failed: Option<MismatchAt>,
}

/// The fields of a [`ConnError::Mismatch`], kept after the fact.
#[derive(Debug, Clone, Copy)]
struct MismatchAt {
    offset: u64,
    message: u64,
    offset_in_message: usize,
    expected: Option<u8>,
    got: u8,
}

impl MismatchAt {
    fn error(self) -> ConnError {
        ConnError::Mismatch {
            offset: self.offset,
            message: self.message,
            offset_in_message: self.offset_in_message,
            expected: self.expected,
            got: self.got,
        }
    }
}

impl StreamVerifier {
    /// A verifier for up to `capacity` messages in flight (the pipeline depth, at least 1) of up
    /// to `max_len` bytes each. Allocates its queues here, once.
    pub fn new(capacity: usize, max_len: usize) -> Self {
        let capacity = capacity.max(1);
        StreamVerifier {
            expected: VecDeque::with_capacity(capacity.saturating_mul(max_len)),
            regenerates: false,
            in_flight: VecDeque::with_capacity(capacity),
            capacity,
            verified: 0,
            sent: 0,
            completed: 0,
            failed: None,
        }
    }

    /// A verifier for up to `capacity` messages in flight that keeps no copy of their bytes:
    /// record them with [`push_len`](Self::push_len) and check echoes with
    /// [`consume_expected`](Self::consume_expected), which regenerates the bytes.
    pub fn regenerating(capacity: usize) -> Self {
        let mut v = StreamVerifier::new(capacity, 0);
        v.regenerates = true;
        v
    }

    /// Records that `msg` was sent with `stamp`. Refuses (without recording) when `capacity`
    /// messages are already in flight. A regenerating verifier records only its length.
    pub fn push(&mut self, msg: &[u8], stamp: SendStamp) -> Result<(), Full> {
        self.record(msg.len(), stamp)?;
        if !self.regenerates {
            self.expected.extend(msg.iter());
        }
        Ok(())
    }

    /// Records that message `stamp.index`, `len` bytes long, was sent with `stamp`, for a
    /// regenerating verifier. Refuses (without recording) when `capacity` messages are already
    /// in flight.
    ///
    /// # Panics
    ///
    /// On a verifier that keeps copies (it needs the bytes: [`push`](Self::push)).
    pub fn push_len(&mut self, len: usize, stamp: SendStamp) -> Result<(), Full> {
        assert!(
            self.regenerates,
            "a verifier that keeps copies needs the bytes: push"
        );
        self.record(len, stamp)
    }

    fn record(&mut self, len: usize, stamp: SendStamp) -> Result<(), Full> {
        if self.in_flight.len() >= self.capacity {
            return Err(Full {
                in_flight: self.in_flight.len(),
                capacity: self.capacity,
            });
        }
        self.in_flight.push_back(InFlight {
            stamp,
            len,
            remaining: len,
        });
        self.sent += len as u64;
        Ok(())
    }

    /// Checks `chunk`, the next bytes read from the socket, calling `on_complete` for each message
    /// whose echo it finishes, in order. Returns how many messages completed.
    ///
    /// # Errors
    ///
    /// The first wrong byte (or a byte when none was outstanding) gives a
    /// [`ConnError::Mismatch`]; messages completed earlier in the same chunk have already been
    /// reported. Once failed, the verifier stays failed and refuses every later chunk with the
    /// same kind of error at the same offset.
    ///
    /// # Panics
    ///
    /// On a regenerating verifier (it needs the source: [`consume_expected`](Self::consume_expected)).
    pub fn consume(
        &mut self,
        chunk: &[u8],
        on_complete: impl FnMut(Completed),
    ) -> Result<usize, ConnError> {
        assert!(
            !self.regenerates,
            "a regenerating verifier checks with consume_expected"
        );
        self.consume_from(chunk, None, on_complete)
    }

    /// [`consume`](Self::consume) for a regenerating verifier: the bytes expected come from
    /// `expected` (message by message, as they were sent), not from a copy.
    ///
    /// # Errors
    ///
    /// As [`consume`](Self::consume).
    pub fn consume_expected(
        &mut self,
        chunk: &[u8],
        expected: &dyn Expected,
        on_complete: impl FnMut(Completed),
    ) -> Result<usize, ConnError> {
        self.consume_from(chunk, Some(expected), on_complete)
    }

    fn consume_from(
        &mut self,
        mut chunk: &[u8],
        source: Option<&dyn Expected>,
        mut on_complete: impl FnMut(Completed),
    ) -> Result<usize, ConnError> {
        let mut done = 0;
        if let Some(m) = self.failed {
            return Err(m.error());
        }
        while !chunk.is_empty() {
            let Some(front) = self.in_flight.front_mut() else {
                return Err(self.fail(0, chunk[0], None));
            };
            let n = front.remaining.min(chunk.len());
            match source {
                Some(source) => {
                    let (index, at) = (front.stamp.index, front.len - front.remaining);
                    if let Some(pos) = source.mismatch(index, at, &chunk[..n]) {
                        let want = source.byte(index, at + pos);
                        return Err(self.fail(pos, chunk[pos], want));
                    }
                }
                None => {
                    let (a, b) = self.expected.as_slices();
                    let (a, b) = if a.len() >= n {
                        (&a[..n], &b[..0])
                    } else {
                        (a, &b[..n - a.len()])
                    };
                    let (head, tail) = chunk[..n].split_at(a.len());
                    if head != a || tail != b {
                        let pos = first_difference(a, head)
                            .or_else(|| first_difference(b, tail).map(|p| p + a.len()))
                            .unwrap_or(0);
                        let want = self.expected.get(pos).copied();
                        return Err(self.fail(pos, chunk[pos], want));
                    }
                    self.expected.drain(..n);
                }
            }
            let front = self.in_flight.front_mut().expect("front exists");
            self.verified += n as u64;
            chunk = &chunk[n..];
            front.remaining -= n;
            if front.remaining == 0 {
                let m = self.in_flight.pop_front().expect("front exists");
                self.completed += 1;
                done += 1;
                on_complete(Completed {
                    stamp: m.stamp,
                    len: m.len,
                });
            }
        }
        Ok(done)
    }

    /// Records and returns the mismatch of byte `pos` of the outstanding stream (relative to
    /// `verified`), received as `got` where `expected` was sent (`None`: nothing was outstanding).
    fn fail(&mut self, pos: usize, got: u8, expected: Option<u8>) -> ConnError {
        let mut before = pos;
        let mut message = 0;
        let mut offset_in_message = 0;
        for m in &self.in_flight {
            let done = m.len - m.remaining;
            if before < m.remaining {
                message = m.stamp.index;
                offset_in_message = done + before;
                break;
            }
            before -= m.remaining;
        }
        let m = MismatchAt {
            offset: self.verified + pos as u64,
            message,
            offset_in_message,
            expected,
            got,
        };
        self.failed = Some(m);
        m.error()
    }

    /// Whether a mismatch has been found on this connection.
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// What the end of the stream (a read of 0 bytes) means: `client_done` says whether the client
    /// had finished sending (and shut down its side). Returns `Ok` for a clean close.
    ///
    /// # Errors
    ///
    /// [`ConnError::ShortEcho`] if echo bytes are outstanding, [`ConnError::EarlyClose`] if none
    /// are but the client was not done.
    pub fn on_eof(&self, client_done: bool) -> Result<(), ConnError> {
        let outstanding = self.outstanding_bytes();
        if outstanding > 0 {
            Err(ConnError::ShortEcho {
                offset: self.verified,
                outstanding,
            })
        } else if !client_done {
            Err(ConnError::EarlyClose {
                offset: self.verified,
            })
        } else {
            Ok(())
        }
    }

    /// The error for a `--timeout` expiry with bytes outstanding.
    pub fn timeout_error(&self) -> ConnError {
        ConnError::Timeout {
            offset: self.verified,
            outstanding: self.outstanding_bytes(),
        }
    }

    /// Classifies a socket error at the current offset; see [`ConnError::from_io`].
    pub fn io_error(&self, e: io::Error) -> ConnError {
        match ConnError::from_io(e, self.verified) {
            ConnError::Timeout { offset, .. } => ConnError::Timeout {
                offset,
                outstanding: self.outstanding_bytes(),
            },
            other => other,
        }
    }

    /// Bytes verified so far (the connection-relative offset of the next expected byte).
    pub fn verified_bytes(&self) -> u64 {
        self.verified
    }

    /// Bytes recorded as sent so far.
    pub fn sent_bytes(&self) -> u64 {
        self.sent
    }

    /// Bytes sent and not yet echoed.
    pub fn outstanding_bytes(&self) -> u64 {
        self.sent - self.verified
    }

    /// Messages sent and not yet wholly echoed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether another message may be pushed.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.capacity
    }

    /// Messages wholly echoed so far.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// The stamp of the oldest message in flight (for timeouts).
    pub fn oldest(&self) -> Option<SendStamp> {
        self.in_flight.front().map(|m| m.stamp)
    }

    /// Empties it for a new connection (churn: `--messages-per-connection`): nothing in flight,
    /// offsets from 0 again, no mismatch. Keeps its queues' memory.
    pub fn reset(&mut self) {
        self.expected.clear();
        self.in_flight.clear();
        self.verified = 0;
        self.sent = 0;
        self.completed = 0;
        self.failed = None;
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::protocol::payload::{PayloadGen, PayloadSpec};

    fn stamp(index: u64) -> SendStamp {
        let now = Instant::now();
        SendStamp {
            index,
            intended: now,
            sent: now,
        }
    }

    /// Pushes messages 1..=n of `spec` on connection 0 and returns the concatenated stream.
    fn push_all(v: &mut StreamVerifier, spec: &PayloadSpec, n: u64) -> Vec<u8> {
        let gen = PayloadGen::new(spec, 0);
        let mut buf = Vec::new();
        let mut stream = Vec::new();
        for i in 1..=n {
            gen.fill(i, &mut buf);
            v.push(&buf, stamp(i)).unwrap();
            stream.extend_from_slice(&buf);
        }
        stream
    }

    fn consume_in_chunks(
        v: &mut StreamVerifier,
        stream: &[u8],
        chunk: usize,
    ) -> Result<Vec<u64>, ConnError> {
        let mut done = Vec::new();
        for c in stream.chunks(chunk) {
            v.consume(c, |m| done.push(m.stamp.index))?;
        }
        Ok(done)
    }

    #[test]
    fn exact_echo_in_any_chunking_completes_every_message_in_order() {
        let spec = PayloadSpec::Random { size: 37, seed: 1 };
        for chunk in [1, 2, 5, 36, 37, 38, 74, 1000] {
            let mut v = StreamVerifier::new(8, 37);
            let stream = push_all(&mut v, &spec, 8);
            let done = consume_in_chunks(&mut v, &stream, chunk).unwrap();
            assert_eq!(done, (1..=8).collect::<Vec<_>>(), "chunk size {chunk}");
            assert_eq!(v.verified_bytes(), 8 * 37);
            assert_eq!(v.outstanding_bytes(), 0);
            assert_eq!(v.completed(), 8);
            assert!(v.on_eof(true).is_ok());
        }
    }

    #[test]
    fn flipped_bit_is_reported_at_its_offset() {
        let spec = PayloadSpec::Text("hello".into());
        let mut v = StreamVerifier::new(4, spec.max_len());
        let mut stream = push_all(&mut v, &spec, 3);
        let first_len = b"1. Thread 1 - hello".len();
        let bad = first_len + 4; // inside message 2
        stream[bad] ^= 0x10;
        let err = consume_in_chunks(&mut v, &stream, 7).unwrap_err();
        match err {
            ConnError::Mismatch {
                offset,
                message,
                offset_in_message,
                expected,
                got,
            } => {
                assert_eq!(offset, bad as u64);
                assert_eq!(message, 2);
                assert_eq!(offset_in_message, 4);
                assert_eq!(expected, Some(stream[bad] ^ 0x10));
                assert_eq!(got, stream[bad]);
            }
            other => panic!("expected a mismatch, got {other}"),
        }
        assert_eq!(v.completed(), 1);
    }

    #[test]
    fn mismatch_across_the_ring_wrap_is_found() {
        // Fill, drain part, refill so the expected queue wraps, then corrupt the wrapped part.
        let spec = PayloadSpec::Random { size: 10, seed: 5 };
        let gen = PayloadGen::new(&spec, 0);
        let mut v = StreamVerifier::new(3, 10);
        let mut buf = Vec::new();
        let mut stream = Vec::new();
        for i in 1..=3 {
            gen.fill(i, &mut buf);
            v.push(&buf, stamp(i)).unwrap();
            stream.extend_from_slice(&buf);
        }
        v.consume(&stream[..20], |_| {}).unwrap();
        for i in 4..=5 {
            gen.fill(i, &mut buf);
            v.push(&buf, stamp(i)).unwrap();
            stream.extend_from_slice(&buf);
        }
        let mut rest = stream[20..].to_vec();
        rest[25] ^= 1; // message 5, byte 5
        let err = v.consume(&rest, |_| {}).unwrap_err();
        assert_eq!(err.offset(), Some(45));
        assert!(matches!(
            err,
            ConnError::Mismatch {
                message: 5,
                offset_in_message: 5,
                ..
            }
        ));
    }

    #[test]
    fn dropped_byte_is_a_mismatch_at_the_drop() {
        let spec = PayloadSpec::Random { size: 100, seed: 2 };
        let mut v = StreamVerifier::new(2, 100);
        let mut stream = push_all(&mut v, &spec, 2);
        stream.remove(150);
        let err = consume_in_chunks(&mut v, &stream, 64).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Mismatch);
        assert_eq!(err.offset(), Some(150));
    }

    #[test]
    fn extra_bytes_are_a_mismatch_with_nothing_expected() {
        let spec = PayloadSpec::Random { size: 4, seed: 2 };
        let mut v = StreamVerifier::new(1, 4);
        let mut stream = push_all(&mut v, &spec, 1);
        stream.push(b'!');
        let err = v.consume(&stream, |_| {}).unwrap_err();
        assert!(matches!(
            err,
            ConnError::Mismatch {
                offset: 4,
                expected: None,
                got: b'!',
                ..
            }
        ));
        // The message before the extra byte completed.
        assert_eq!(v.completed(), 1);
    }

    /// Runs the same stream through a copying and a regenerating verifier; both must give the
    /// same completions and the same error.
    fn both_ways(spec: &PayloadSpec, n: u64, chunk: usize, corrupt: impl Fn(&mut Vec<u8>)) {
        let gen = PayloadGen::new(spec, 0);
        let mut copying = StreamVerifier::new(n as usize, spec.max_len());
        let mut regen = StreamVerifier::regenerating(n as usize);
        let mut stream = Vec::new();
        let mut buf = Vec::new();
        for i in 1..=n {
            gen.fill(i, &mut buf);
            copying.push(&buf, stamp(i)).unwrap();
            regen.push_len(buf.len(), stamp(i)).unwrap();
            stream.extend_from_slice(&buf);
        }
        corrupt(&mut stream);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let mut ra = Ok(0);
        let mut rb = Ok(0);
        for c in stream.chunks(chunk) {
            if ra.is_ok() {
                ra = copying.consume(c, |m| a.push(m.stamp.index));
            }
            if rb.is_ok() {
                rb = regen.consume_expected(c, &gen, |m| b.push(m.stamp.index));
            }
        }
        assert_eq!(a, b, "completions, chunk {chunk}");
        match (ra, rb) {
            (Ok(_), Ok(_)) => assert_eq!(copying.verified_bytes(), regen.verified_bytes()),
            (Err(x), Err(y)) => assert_eq!(x.to_string(), y.to_string(), "chunk {chunk}"),
            (x, y) => panic!("copying gave {x:?}, regenerating {y:?}"),
        }
    }

    #[test]
    fn a_regenerating_verifier_agrees_with_a_copying_one() {
        for spec in [
            PayloadSpec::Random { size: 300, seed: 4 },
            PayloadSpec::Random {
                size: 70_000,
                seed: 5,
            },
            PayloadSpec::Text("hello".into()),
        ] {
            for chunk in [1, 7, 256, 4096, 1 << 20] {
                if chunk == 1 && spec.max_len() > 1000 {
                    continue;
                }
                both_ways(&spec, 4, chunk, |_| {});
                both_ways(&spec, 4, chunk, |s| {
                    let at = s.len() / 3;
                    s[at] ^= 1;
                });
                both_ways(&spec, 4, chunk, |s| {
                    let at = s.len() - 3;
                    s[at] ^= 0x80;
                });
                both_ways(&spec, 4, chunk, |s| {
                    s.remove(s.len() / 2);
                });
                both_ways(&spec, 4, chunk, |s| s.push(7));
            }
        }
        // A regenerating verifier stores nothing per byte.
        let v = StreamVerifier::regenerating(4);
        assert_eq!(v.expected.capacity(), 0);
    }

    #[test]
    fn verifier_stays_failed() {
        let mut v = StreamVerifier::new(1, 4);
        v.push(b"abcd", stamp(1)).unwrap();
        let first = v.consume(b"abXd", |_| {}).unwrap_err().to_string();
        assert!(v.has_failed());
        assert_eq!(v.consume(b"cd", |_| {}).unwrap_err().to_string(), first);
    }

    #[test]
    fn eof_with_bytes_outstanding_is_a_short_echo() {
        let mut v = StreamVerifier::new(2, 4);
        v.push(b"abcd", stamp(1)).unwrap();
        v.push(b"efgh", stamp(2)).unwrap();
        v.consume(b"abcde", |_| {}).unwrap();
        let err = v.on_eof(true).unwrap_err();
        assert!(matches!(
            err,
            ConnError::ShortEcho {
                offset: 5,
                outstanding: 3
            }
        ));
        assert_eq!(err.kind(), ErrorKind::ShortEcho);
    }

    #[test]
    fn eof_before_the_client_is_done_is_an_early_close() {
        let mut v = StreamVerifier::new(1, 4);
        v.push(b"abcd", stamp(1)).unwrap();
        v.consume(b"abcd", |_| {}).unwrap();
        let err = v.on_eof(false).unwrap_err();
        assert!(matches!(err, ConnError::EarlyClose { offset: 4 }));
        assert!(v.on_eof(true).is_ok());
    }

    #[test]
    fn push_beyond_capacity_is_refused_without_recording() {
        let mut v = StreamVerifier::new(2, 1);
        v.push(b"a", stamp(1)).unwrap();
        assert!(v.has_room());
        v.push(b"b", stamp(2)).unwrap();
        assert!(!v.has_room());
        assert_eq!(
            v.push(b"c", stamp(3)),
            Err(Full {
                in_flight: 2,
                capacity: 2
            })
        );
        assert_eq!(v.sent_bytes(), 2);
        assert_eq!(v.consume(b"ab", |_| {}).unwrap(), 2);
    }

    #[test]
    fn completion_carries_the_send_stamp() {
        let mut v = StreamVerifier::new(1, 2);
        let s = stamp(77);
        v.push(b"xy", s).unwrap();
        let mut got = None;
        v.consume(b"x", |c| got = Some(c)).unwrap();
        assert!(got.is_none(), "half a message is not a completion");
        assert_eq!(v.oldest(), Some(s));
        v.consume(b"y", |c| got = Some(c)).unwrap();
        assert_eq!(got, Some(Completed { stamp: s, len: 2 }));
        assert_eq!(v.oldest(), None);
    }

    #[test]
    fn io_errors_are_classified() {
        let mut v = StreamVerifier::new(1, 3);
        v.push(b"abc", stamp(1)).unwrap();
        v.consume(b"a", |_| {}).unwrap();
        let reset = v.io_error(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(reset.kind(), ErrorKind::Reset);
        assert_eq!(reset.offset(), Some(1));
        // EPIPE is a Unix errno.
        #[cfg(unix)]
        {
            let pipe = ConnError::from_io(io::Error::from_raw_os_error(libc::EPIPE), 0);
            assert_eq!(pipe.kind(), ErrorKind::Reset);
        }
        let t = v.io_error(io::Error::from(io::ErrorKind::TimedOut));
        assert!(matches!(
            t,
            ConnError::Timeout {
                offset: 1,
                outstanding: 2
            }
        ));
        let other = v.io_error(io::Error::from(io::ErrorKind::InvalidData));
        assert_eq!(other.kind(), ErrorKind::Other);
        assert_eq!(v.timeout_error().kind(), ErrorKind::Timeout);
        let c = ConnError::ConnectFailed(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(c.kind(), ErrorKind::ConnectFailed);
        assert_eq!(c.offset(), None);
    }
}
