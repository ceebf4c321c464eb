//! The handshake's keys: the client's `Sec-WebSocket-Key` and the server's
//! `Sec-WebSocket-Accept` computed from it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 appends to the client's key before hashing it.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ++ GUID)).
pub fn accept_key(sec_websocket_key: &[u8]) -> [u8; 28] {
    let mut sha = Sha1::new();
    sha.update(sec_websocket_key);
    sha.update(GUID.as_bytes());
    let digest: [u8; 20] = sha.finalize().into();
    let mut out = [0u8; 28];
    let written = STANDARD
        .encode_slice(digest, &mut out)
        .expect("20 bytes encode to 28");
    debug_assert_eq!(written, 28);
    out
}

/// A client's `Sec-WebSocket-Key`: base64 of 16 bytes derived from `seed` (splitmix64), so a
/// load generator gives each connection its own key without a random source.
pub fn client_key(seed: u64) -> [u8; 24] {
    let mut state = seed;
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    raw[8..].copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    let mut out = [0u8; 24];
    let written = STANDARD
        .encode_slice(raw, &mut out)
        .expect("16 bytes encode to 24");
    debug_assert_eq!(written, 24);
    out
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn client_keys_are_base64_of_16_bytes_and_differ_by_seed() {
        let a = client_key(1);
        let b = client_key(2);
        assert_ne!(a, b);
        assert_eq!(client_key(1), a, "the same seed gives the same key");
        for key in [a, b, client_key(0), client_key(u64::MAX)] {
            let raw = STANDARD.decode(key).unwrap();
            assert_eq!(raw.len(), 16);
        }
    }
}
