//! Message generation: what each connection sends, message by message.
//!
//! This module is responsible for producing the bytes of message `i` on connection `c`, and for
//! nothing else: it does not know about sockets, timing or verification. Every message is a pure
//! function of the [`PayloadSpec`], the connection index and the message index, so a mismatch
//! reported at "connection 7, message 1234" can be reproduced by calling [`PayloadGen::fill`] with
//! the same arguments.
//!
//! Two kinds of payload exist, as in the command-line contract:
//!
//! * **Text** (`--message TEXT`): numbered as in the article's client,
//!   `"<i>. Thread <t> - TEXT"`, where `i` counts messages from 1 on each connection and `t` is the
//!   connection number, also from 1 (the article's `ii+1`). Message 3 of the first connection with
//!   text `hello` is `3. Thread 1 - hello`.
//! * **Random** (`--size BYTES`): seeded pseudo-random bytes, deterministic per
//!   `(seed, connection, message)`. The first `min(size, 256)` bytes of every message are a seeded
//!   permutation of the 256 byte values, so a message of 256 bytes or more contains *every* byte
//!   value (NUL, `\n`, `0xff`, ...), and within those first 256 bytes no value repeats, so a
//!   dropped, duplicated or reordered byte there can never go unnoticed. The remaining bytes are
//!   random: a window, starting at a seeded offset, of a table of random bytes generated once
//!   per process ([`TABLE_LEN`] bytes, the same in every run).
//!
//! # Performance
//!
//! [`PayloadGen::fill`] writes into a caller-owned `Vec<u8>` that is cleared and reused; once the
//! vector has grown to [`PayloadGen::max_len`] no message allocates. A random message costs a
//! few hash rounds, 256 computed bytes and a copy from the table: no random-number generation per
//! byte, so a client streaming gigabytes a second spends its time on the bytes' way through the
//! kernel, not on making them.

/// Largest message (`--size`, a request or an expected reply) accepted, in bytes (64 MiB).
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;

use std::sync::OnceLock;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

use crate::protocol::echo::Expected;

/// Length of the table of random bytes a random message's tail is copied from (256 KiB, small
/// enough to stay in a core's cache). A tail longer than the table wraps around.
pub const TABLE_LEN: usize = 256 << 10;

/// The table, generated on first use from a fixed seed.
fn table() -> &'static [u8] {
    static TABLE: OnceLock<Box<[u8]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![0u8; TABLE_LEN];
        SmallRng::seed_from_u64(0x7269_6e67_706f_7274).fill_bytes(&mut t);
        t.into_boxed_slice()
    })
}

/// What the messages are made of; the resolved form of `--message` / `--size` / `--seed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadSpec {
    /// `--message TEXT`: each message is `"<i>. Thread <t> - TEXT"`.
    Text(String),
    /// `--size BYTES`: `size` seeded random bytes per message.
    Random {
        /// Bytes per message (at least 1).
        size: usize,
        /// The run's seed (`--seed`); the same seed gives the same bytes.
        seed: u64,
    },
}

impl PayloadSpec {
    /// The largest message this spec can produce for any message index up to `u64::MAX`.
    ///
    /// For text this allows for the longest message number and connection number; buffers
    /// reserved with this capacity never grow.
    pub fn max_len(&self) -> usize {
        match self {
            // "<20 digits>. Thread <20 digits> - TEXT"
            PayloadSpec::Text(text) => 20 + ". Thread ".len() + 20 + " - ".len() + text.len(),
            PayloadSpec::Random { size, .. } => *size,
        }
    }

    /// A short description for reports, e.g. `64-byte random` or `text "hello"`.
    pub fn describe(&self) -> String {
        match self {
            PayloadSpec::Text(text) => format!("text {text:?}"),
            PayloadSpec::Random { size, .. } => format!("{size}-byte random"),
        }
    }
}

/// The message generator of one connection.
///
/// Cheap to create (no allocation); one per connection.
#[derive(Debug, Clone)]
pub struct PayloadGen<'a> {
    spec: &'a PayloadSpec,
    connection: u64,
}

impl<'a> PayloadGen<'a> {
    /// The generator for connection `connection` (0-based; text messages show it 1-based).
    /// The first random generator of a process builds the shared table (one allocation, once).
    pub fn new(spec: &'a PayloadSpec, connection: u64) -> Self {
        if matches!(spec, PayloadSpec::Random { .. }) {
            table();
        }
        PayloadGen { spec, connection }
    }

    /// The payload it generates.
    pub fn spec(&self) -> &'a PayloadSpec {
        self.spec
    }

    /// The connection this generator writes for (0-based).
    pub fn connection(&self) -> u64 {
        self.connection
    }

    /// See [`PayloadSpec::max_len`].
    pub fn max_len(&self) -> usize {
        self.spec.max_len()
    }

    /// Clears `buf` and writes message number `index` (1-based, as in the article) into it.
    ///
    /// Does not allocate once `buf.capacity() >= self.max_len()`.
    pub fn fill(&self, index: u64, buf: &mut Vec<u8>) {
        buf.clear();
        self.append(index, buf);
    }

    /// Appends message number `index` to `buf` (after the bytes already there), so that a send
    /// buffer can be filled in place, message after message, without an intermediate copy.
    ///
    /// Does not allocate once `buf` has room for [`max_len`](Self::max_len) more bytes.
    pub fn append(&self, index: u64, buf: &mut Vec<u8>) {
        match self.spec {
            PayloadSpec::Text(text) => {
                push_decimal(buf, index);
                buf.extend_from_slice(b". Thread ");
                push_decimal(buf, self.connection + 1);
                buf.extend_from_slice(b" - ");
                buf.extend_from_slice(text.as_bytes());
            }
            PayloadSpec::Random { size, seed } => {
                append_random(buf, *size, message_seed(*seed, self.connection, index));
            }
        }
    }
}

/// Regenerates what was sent, for a [`StreamVerifier::regenerating`](crate::protocol::echo::StreamVerifier::regenerating)
/// verifier: no copy of the message is needed to check its echo.
impl Expected for PayloadGen<'_> {
    fn mismatch(&self, index: u64, at: usize, got: &[u8]) -> Option<usize> {
        match self.spec {
            PayloadSpec::Random { size, seed } => {
                let s = message_seed(*seed, self.connection, index);
                random_mismatch(*size, s, at, got)
            }
            PayloadSpec::Text(text) => {
                let (mut d1, mut d2) = ([0u8; 20], [0u8; 20]);
                let pieces = self.text_pieces(text, index, &mut d1, &mut d2);
                pieces_mismatch(&pieces, at, got)
            }
        }
    }

    fn byte(&self, index: u64, at: usize) -> Option<u8> {
        match self.spec {
            PayloadSpec::Random { size, seed } => {
                let s = message_seed(*seed, self.connection, index);
                (at < *size).then(|| random_byte(s, at))
            }
            PayloadSpec::Text(text) => {
                let (mut d1, mut d2) = ([0u8; 20], [0u8; 20]);
                let pieces = self.text_pieces(text, index, &mut d1, &mut d2);
                let mut start = 0;
                for piece in pieces {
                    if at < start + piece.len() {
                        return Some(piece[at - start]);
                    }
                    start += piece.len();
                }
                None
            }
        }
    }
}

impl<'a> PayloadGen<'a> {
    /// The parts of text message `index`, in order, its numbers written into `d1` and `d2`
    /// (nothing allocated).
    fn text_pieces<'d>(
        &self,
        text: &'a str,
        index: u64,
        d1: &'d mut [u8; 20],
        d2: &'d mut [u8; 20],
    ) -> [&'d [u8]; 5]
    where
        'a: 'd,
    {
        [
            decimal(d1, index),
            b". Thread ",
            decimal(d2, self.connection + 1),
            b" - ",
            text.as_bytes(),
        ]
    }
}

/// [`Expected::mismatch`] for a message made of `pieces`, in order.
fn pieces_mismatch(pieces: &[&[u8]], at: usize, got: &[u8]) -> Option<usize> {
    let mut start = 0; // where the piece starts in the message
    let mut i = 0; // how much of `got` matched so far
    for piece in pieces {
        let end = start + piece.len();
        if i < got.len() && at + i < end {
            let from = at + i - start;
            let n = (piece.len() - from).min(got.len() - i);
            if let Some(p) = first_difference(&piece[from..from + n], &got[i..i + n]) {
                return Some(i + p);
            }
            i += n;
        }
        start = end;
    }
    (i < got.len()).then_some(i)
}

/// The first position where `a` and `b` differ, over their common length.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let n = a.len().min(b.len());
    if a[..n] == b[..n] {
        return None;
    }
    a[..n].iter().zip(&b[..n]).position(|(x, y)| x != y)
}

/// Byte `at` of the random message whose seed is `s`.
fn random_byte(s: u64, at: usize) -> u8 {
    let (a, b) = head_map(s);
    if at < 256 {
        a.wrapping_mul(at as u8).wrapping_add(b)
    } else {
        table()[(tail_start(s) + at - 256) % TABLE_LEN]
    }
}

/// The affine map of a random message's first 256 bytes: `k -> a*k + b`, `a` odd.
fn head_map(s: u64) -> (u8, u8) {
    ((s as u8) | 1, (s >> 8) as u8)
}

/// Where in the table a random message's tail starts.
fn tail_start(s: u64) -> usize {
    (s >> 16) as usize % TABLE_LEN
}

/// [`Expected::mismatch`] for the random message of `size` bytes whose seed is `s`.
fn random_mismatch(size: usize, s: u64, at: usize, got: &[u8]) -> Option<usize> {
    let (a, b) = head_map(s);
    let mut i = 0;
    // The head, computed byte by byte.
    while i < got.len() && at + i < size.min(256) {
        let k = at + i;
        if got[i] != a.wrapping_mul(k as u8).wrapping_add(b) {
            return Some(i);
        }
        i += 1;
    }
    // The tail, compared with the table in place.
    if i < got.len() && at + i >= size {
        return Some(i);
    }
    let table = table();
    let mut t = (tail_start(s) + (at + i).saturating_sub(256)) % TABLE_LEN;
    let end = got.len().min(size.saturating_sub(at));
    while i < end {
        let n = (end - i).min(TABLE_LEN - t);
        if let Some(p) = first_difference(&table[t..t + n], &got[i..i + n]) {
            return Some(i + p);
        }
        i += n;
        t = 0;
    }
    (end < got.len()).then_some(end)
}

/// Appends the decimal digits of `n` without going through `fmt` (no allocation, no padding).
fn push_decimal(buf: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    buf.extend_from_slice(decimal(&mut digits, n));
}

/// The decimal digits of `n`, written at the end of `digits`.
fn decimal(digits: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

/// SplitMix64 finaliser: spreads the bits of `x` so nearby inputs give unrelated outputs.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The per-message RNG seed: a function of the run seed, the connection and the message index.
fn message_seed(seed: u64, connection: u64, index: u64) -> u64 {
    mix64(mix64(mix64(seed) ^ connection) ^ index)
}

/// Appends the `size` bytes of the random message whose seed is `seed`.
fn append_random(buf: &mut Vec<u8>, size: usize, seed: u64) {
    // An affine map k -> a*k + b (mod 256) with odd `a` is a permutation of 0..=255: the first
    // 256 bytes hold every value once, in a seeded order.
    let (a, b) = head_map(seed);
    let head = size.min(256);
    buf.extend((0..head).map(|k| a.wrapping_mul(k as u8).wrapping_add(b)));
    // The rest: the table from a seeded offset on.
    let table = table();
    let mut at = tail_start(seed);
    let mut rest = size - head;
    while rest > 0 {
        let n = rest.min(TABLE_LEN - at);
        buf.extend_from_slice(&table[at..at + n]);
        rest -= n;
        at = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> PayloadSpec {
        PayloadSpec::Text(t.to_string())
    }

    fn random(size: usize, seed: u64) -> PayloadSpec {
        PayloadSpec::Random { size, seed }
    }

    fn message(spec: &PayloadSpec, conn: u64, index: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        PayloadGen::new(spec, conn).fill(index, &mut buf);
        buf
    }

    #[test]
    fn text_is_numbered_like_the_article() {
        let spec = text("Swarajya Pendha");
        assert_eq!(
            message(&spec, 23, 59997),
            b"59997. Thread 24 - Swarajya Pendha"
        );
        assert_eq!(message(&spec, 0, 1), b"1. Thread 1 - Swarajya Pendha");
    }

    #[test]
    fn decimal_edges() {
        for n in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            let mut buf = Vec::new();
            push_decimal(&mut buf, n);
            assert_eq!(buf, n.to_string().as_bytes());
        }
    }

    #[test]
    fn text_never_exceeds_max_len_and_never_reallocates() {
        let spec = text("x");
        let gen = PayloadGen::new(&spec, u64::MAX - 1);
        let mut buf = Vec::with_capacity(gen.max_len());
        let ptr = buf.as_ptr();
        gen.fill(u64::MAX, &mut buf);
        assert!(buf.len() <= gen.max_len());
        assert_eq!(
            buf.as_ptr(),
            ptr,
            "fill reallocated a buffer of max_len capacity"
        );
    }

    #[test]
    fn random_has_the_requested_size_and_reuses_the_buffer() {
        let spec = random(1000, 7);
        let gen = PayloadGen::new(&spec, 3);
        let mut buf = Vec::with_capacity(gen.max_len());
        let ptr = buf.as_ptr();
        for i in 1..50 {
            gen.fill(i, &mut buf);
            assert_eq!(buf.len(), 1000);
        }
        assert_eq!(buf.as_ptr(), ptr);
    }

    #[test]
    fn random_is_deterministic_per_seed_connection_and_index() {
        let spec = random(300, 42);
        assert_eq!(message(&spec, 5, 9), message(&spec, 5, 9));
        assert_ne!(message(&spec, 5, 9), message(&spec, 5, 10));
        assert_ne!(message(&spec, 5, 9), message(&spec, 6, 9));
        assert_ne!(message(&spec, 5, 9), message(&random(300, 43), 5, 9));
    }

    #[test]
    fn random_messages_of_256_bytes_or_more_hold_every_byte_value() {
        for size in [256, 257, 4096] {
            for index in 1..20 {
                let m = message(&random(size, 1), 0, index);
                let mut seen = [false; 256];
                for &b in &m {
                    seen[b as usize] = true;
                }
                assert!(
                    seen.iter().all(|&s| s),
                    "size {size} message {index} misses a value"
                );
            }
        }
    }

    #[test]
    fn short_random_messages_have_distinct_bytes() {
        // A dropped or duplicated byte in a short message always shows.
        let m = message(&random(200, 9), 2, 2);
        let mut seen = [false; 256];
        for &b in &m {
            assert!(!seen[b as usize], "byte {b:#04x} repeats");
            seen[b as usize] = true;
        }
    }

    #[test]
    fn random_tail_is_not_constant() {
        let m = message(&random(4096, 3), 0, 1);
        let tail = &m[256..];
        let zeros = tail.iter().filter(|&&b| b == 0).count();
        // Uniform bytes: about 15 zeros expected out of 3840.
        assert!(zeros < 100, "tail looks unfilled: {zeros} zeros");
    }

    #[test]
    fn consecutive_messages_have_different_tails() {
        let spec = random(2000, 4);
        let (m1, m2) = (message(&spec, 0, 1), message(&spec, 0, 2));
        let same = m1[256..]
            .iter()
            .zip(&m2[256..])
            .filter(|(a, b)| a == b)
            .count();
        // Unrelated random bytes agree about once in 256.
        assert!(same < 40, "{same} of 1744 tail bytes agree");
    }

    #[test]
    fn append_adds_the_message_after_what_is_there() {
        let spec = random(3000, 8);
        let gen = PayloadGen::new(&spec, 2);
        let mut buf = b"head".to_vec();
        gen.append(7, &mut buf);
        gen.append(8, &mut buf);
        assert_eq!(&buf[..4], b"head");
        assert_eq!(&buf[4..3004], &message(&spec, 2, 7)[..]);
        assert_eq!(&buf[3004..], &message(&spec, 2, 8)[..]);
    }

    #[test]
    fn a_message_longer_than_the_table_wraps_around_it() {
        let size = TABLE_LEN + 5000;
        let spec = random(size, 1);
        let m = message(&spec, 0, 1);
        assert_eq!(m.len(), size);
        assert_eq!(m, message(&spec, 0, 1), "deterministic");
        let tail = &m[256..];
        // Some window of the table's length starts the tail, and the table repeats after it.
        assert_eq!(&tail[..5000 - 256], &tail[TABLE_LEN..]);
    }

    /// Checks `Expected` against the generated bytes of message 5 of connection 1.
    fn regenerates_exactly(spec: &PayloadSpec) {
        let gen = PayloadGen::new(spec, 1);
        let m = message(spec, 1, 5);
        for (k, &b) in m.iter().enumerate() {
            assert_eq!(gen.byte(5, k), Some(b), "byte {k}");
        }
        assert_eq!(gen.byte(5, m.len()), None);
        let len = m.len();
        let points = [0, 1, 7, 255, 256, 257, 1000, len / 2, len - 1];
        for &at in points.iter().filter(|&&a| a < len) {
            for &end in points.iter().chain([&len]).filter(|&&e| e > at && e <= len) {
                let got = &m[at..end];
                assert_eq!(gen.mismatch(5, at, got), None, "{at}..{end}");
                for flip in [at, (at + end) / 2, end - 1] {
                    let mut bad = got.to_vec();
                    bad[flip - at] ^= 0x40;
                    assert_eq!(
                        gen.mismatch(5, at, &bad),
                        Some(flip - at),
                        "{at}..{end} @{flip}"
                    );
                }
            }
            // Bytes past the end never match.
            let mut long = m[at..].to_vec();
            long.push(m[0]);
            assert_eq!(
                gen.mismatch(5, at, &long),
                Some(len - at),
                "past the end from {at}"
            );
        }
        // Another message's bytes do not match.
        let other = message(spec, 1, 6);
        let n = len.min(other.len());
        assert!(gen.mismatch(5, 0, &other[..n]).is_some());
    }

    #[test]
    fn a_message_can_be_checked_without_a_copy() {
        for size in [1, 200, 256, 257, 4096, 70_000] {
            regenerates_exactly(&random(size, 9));
        }
        regenerates_exactly(&random(TABLE_LEN + 3000, 2));
        regenerates_exactly(&text("Swarajya Pendha"));
    }

    #[test]
    fn describe_and_max_len() {
        assert_eq!(random(64, 0).max_len(), 64);
        assert_eq!(random(64, 0).describe(), "64-byte random");
        assert!(
            text("abc").max_len()
                >= "18446744073709551615. Thread 18446744073709551615 - abc".len()
        );
    }
}
