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
//!   uniformly random.
//!
//! # Performance
//!
//! [`PayloadGen::fill`] writes into a caller-owned `Vec<u8>` that is cleared and reused; once the
//! vector has grown to [`PayloadGen::max_len`] no message allocates.

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

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
    pub fn new(spec: &'a PayloadSpec, connection: u64) -> Self {
        PayloadGen { spec, connection }
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
                let start = buf.len();
                buf.resize(start + size, 0);
                fill_random(&mut buf[start..], *seed, self.connection, index);
            }
        }
    }
}

/// Appends the decimal digits of `n` without going through `fmt` (no allocation, no padding).
fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
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

/// Fills `buf` with the random payload of `(seed, connection, index)`.
fn fill_random(buf: &mut [u8], seed: u64, connection: u64, index: u64) {
    let mut rng = SmallRng::seed_from_u64(message_seed(seed, connection, index));
    // An affine map k -> a*k + b (mod 256) with odd `a` is a permutation of 0..=255: the first
    // 256 bytes hold every value once, in a seeded order.
    let a: u8 = rng.random::<u8>() | 1;
    let b: u8 = rng.random();
    let head = buf.len().min(256);
    let (first, rest) = buf.split_at_mut(head);
    for (k, byte) in first.iter_mut().enumerate() {
        *byte = a.wrapping_mul(k as u8).wrapping_add(b);
    }
    rng.fill_bytes(rest);
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
    fn describe_and_max_len() {
        assert_eq!(random(64, 0).max_len(), 64);
        assert_eq!(random(64, 0).describe(), "64-byte random");
        assert!(
            text("abc").max_len()
                >= "18446744073709551615. Thread 18446744073709551615 - abc".len()
        );
    }
}
