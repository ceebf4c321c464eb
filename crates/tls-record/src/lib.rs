//! # ringport-tls-record: TLS records protected in place once rustls' handshake is complete
//!
//! rustls 0.23 allocates twice per record of application data (a copy of each decrypted
//! record's plaintext for its received-plaintext queue, and a new vector for each record its
//! `MessageEncrypter` seals, for every crypto provider). The server's and the stress client's
//! completion-model sessions hand a connection over once its handshake is complete
//! (`dangerous_into_kernel_connection`: its secrets, and rustls' `KernelConnection`, which
//! keeps the key schedule) and protect its records here, with the AEAD of the crypto backend
//! ([`crypto`]): a record is opened where it was received and sealed where it is sent from,
//! allocating nothing.
//!
//! The suites are rustls' own (AES-GCM and ChaCha20-Poly1305, TLS 1.3 and 1.2), their nonces
//! and additional data as RFC 8446 §5.2-5.3 (TLS 1.3), RFC 5288 §3 and RFC 7905 §2 (TLS 1.2)
//! give them. Post-handshake messages: TLS 1.3 key updates both ways (ours when the peer asks,
//! and before a key has sealed its share of records), new session tickets on the client side
//! (to rustls' session store, for resumption). No `unsafe`.
//!
//! It also holds the one crypto provider both sides build their rustls configurations on
//! ([`provider`]), since the records it protects are that provider's suites, and the key log
//! both sides write when `SSLKEYLOGFILE` asks ([`keylog`]).
//!
//! The crypto backend, of the provider and of the records alike, is a cargo feature: exactly
//! one of `aws-lc-rs` (the default) and `ring` ([`BACKEND`] names the one built in).
#![forbid(unsafe_code)]

#[cfg(all(feature = "aws-lc-rs", feature = "ring"))]
compile_error!(
    "ringport-tls-record: the features `aws-lc-rs` and `ring` exclude each other \
     (for ring: --no-default-features --features ring)"
);
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("ringport-tls-record: one crypto backend is needed: feature `aws-lc-rs` or `ring`");

/// The crypto backend: aws-lc-rs, whose API mirrors *ring*'s (`aead`, `digest`, `hkdf`).
#[cfg(feature = "aws-lc-rs")]
pub use aws_lc_rs as crypto;
/// The crypto backend: *ring*.
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub use ring as crypto;

/// The crypto backend's name, as its crate is called.
#[cfg(feature = "aws-lc-rs")]
pub const BACKEND: &str = "aws-lc-rs";
/// The crypto backend's name, as its crate is called.
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub const BACKEND: &str = "ring";

pub mod keylog;

use std::ops::Range;
use std::sync::Arc;

use crypto::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::client::ClientConnectionData;
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, Error, ExtractedSecrets, ProtocolVersion};

/// The crypto provider of the server and the stress client: rustls' provider of the crypto
/// backend ([`BACKEND`]), its cipher suites (the same with either backend), with the key
/// exchange groups in the order TLS clients and servers commonly prefer: X25519, then P-256,
/// then P-384, with either backend. (rustls 0.23.48 lists P-384 first in *ring*'s provider,
/// which makes every full handshake pay a P-384 key exchange, several times X25519's cost, and
/// the post-quantum hybrid X25519MLKEM768 first in aws-lc-rs's, which *ring* lacks.)
#[cfg_attr(feature = "ring", allow(deprecated))]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    use rustls::crypto::ring::{default_provider, kx_group};
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(provider)
}

/// Content type: alert.
pub const ALERT: u8 = 21;
/// Content type: handshake.
pub const HANDSHAKE: u8 = 22;
/// Content type: application data.
pub const APPLICATION_DATA: u8 = 23;
/// Bytes of a record's header (type, version, length).
pub const HEADER: usize = 5;
/// The most plaintext one record carries (2^14 bytes).
pub const PLAIN_MAX: usize = 16_384;
/// The most sealing adds to a record's plaintext: the header, TLS 1.3's inner content type, an
/// AEAD tag, TLS 1.2 AES-GCM's explicit nonce.
pub const SEAL_MAX: usize = HEADER + 1 + TAG + EXPLICIT;
/// The most one post-handshake reply adds (a key update: its message in a record of its own).
pub const REPLY_MAX: usize = HEADER + 1 + TAG + 5;
const TAG: usize = 16;
/// TLS 1.2 AES-GCM's explicit nonce on the wire.
const EXPLICIT: usize = 8;
/// Records sealed under one key before TLS 1.3 updates it (below AES-GCM's limit of 2^24.5),
/// and before a TLS 1.2 connection, which cannot update its keys, refuses to seal more.
const TX_LIMIT: u64 = 1 << 23;
/// Handshake message types after the handshake.
const NEW_SESSION_TICKET: u8 = 4;
const KEY_UPDATE: u8 = 24;

/// The end of the whole record starting at `at` in `buf`, if `buf` holds all of it.
pub fn record_end(buf: &[u8], at: usize) -> Option<usize> {
    let header = buf.get(at..at + HEADER)?;
    let end = at + HEADER + usize::from(u16::from_be_bytes([header[3], header[4]]));
    (end <= buf.len()).then_some(end)
}

/// One direction's key: the AEAD key, its IV, the next record's sequence number.
struct Direction {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    /// TLS 1.2 AES-GCM: nonces carry an explicit part on the wire.
    explicit: bool,
}

impl Direction {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets, tls13: bool) -> Result<Direction, Error> {
        let (alg, key, iv, gcm) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv, true),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv, true),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv, false)
            }
            _ => return Err(Error::General("an unknown AEAD".into())),
        };
        let key = UnboundKey::new(alg, key.as_ref())
            .map_err(|_| Error::General("an AEAD key of the wrong length".into()))?;
        let iv: [u8; 12] = iv
            .as_ref()
            .try_into()
            .map_err(|_| Error::General("an IV of the wrong length".into()))?;
        Ok(Direction {
            key: LessSafeKey::new(key),
            iv,
            seq,
            explicit: gcm && !tls13,
        })
    }

    /// The IV with the sequence number XORed into its last 8 bytes.
    fn nonce(&self) -> [u8; 12] {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        nonce
    }
}

/// TLS 1.2's additional data: sequence number, type, version, plaintext length.
fn tls12_aad(seq: u64, typ: u8, len: usize) -> [u8; 13] {
    let mut aad = [0u8; 13];
    aad[..8].copy_from_slice(&seq.to_be_bytes());
    aad[8] = typ;
    aad[9..11].copy_from_slice(&[3, 3]);
    aad[11..].copy_from_slice(&(len as u16).to_be_bytes());
    aad
}

/// The post-handshake messages a side takes besides key updates.
pub trait Side: Sized {
    /// Takes the handshake message of type `typ` and body `body`, or refuses it.
    fn message(kernel: &mut KernelConnection<Self>, typ: u8, body: &[u8]) -> Result<(), Error>;
}

impl Side for ServerConnectionData {
    fn message(_: &mut KernelConnection<Self>, _: u8, _: &[u8]) -> Result<(), Error> {
        Err(Error::General(
            "an unexpected post-handshake message".into(),
        ))
    }
}

impl Side for ClientConnectionData {
    fn message(kernel: &mut KernelConnection<Self>, typ: u8, body: &[u8]) -> Result<(), Error> {
        if typ == NEW_SESSION_TICKET {
            kernel.handle_new_session_ticket(body)
        } else {
            Err(Error::General(
                "an unexpected post-handshake message".into(),
            ))
        }
    }
}

/// A connection's record protection after the handshake, and rustls' key schedule.
pub struct Records<Data> {
    kernel: KernelConnection<Data>,
    tls13: bool,
    tx: Direction,
    rx: Direction,
}

impl<Data: Side> Records<Data> {
    /// The protection of `secrets`, extracted with `kernel` from a completed handshake.
    ///
    /// # Errors
    ///
    /// An AEAD this crate does not know.
    pub fn new(secrets: ExtractedSecrets, kernel: KernelConnection<Data>) -> Result<Self, Error> {
        let tls13 = kernel.protocol_version() == ProtocolVersion::TLSv1_3;
        let ExtractedSecrets {
            tx: (tx_seq, tx),
            rx: (rx_seq, rx),
        } = secrets;
        Ok(Records {
            tx: Direction::new(tx_seq, tx, tls13)?,
            rx: Direction::new(rx_seq, rx, tls13)?,
            kernel,
            tls13,
        })
    }

    /// The protocol version.
    pub fn version(&self) -> ProtocolVersion {
        self.kernel.protocol_version()
    }

    /// Opens the whole record `rec` (header included) in place: its content type and where
    /// its plaintext is in `rec`.
    ///
    /// # Errors
    ///
    /// The record does not authenticate, is malformed, or carries more than a record may.
    pub fn open(&mut self, rec: &mut [u8]) -> Result<(u8, Range<usize>), Error> {
        let outer = rec[0];
        let body = rec.len() - HEADER;
        let rx = &mut self.rx;
        let (typ, range) = if self.tls13 {
            if outer != APPLICATION_DATA || body < TAG + 1 {
                return Err(Error::DecryptError);
            }
            let header: [u8; HEADER] = rec[..HEADER].try_into().expect("a header");
            let nonce = Nonce::assume_unique_for_key(rx.nonce());
            let plain = rx
                .key
                .open_in_place(nonce, Aad::from(header), &mut rec[HEADER..])
                .map_err(|_| Error::DecryptError)?;
            // The inner plaintext: content, its type, zero padding.
            let Some(at) = plain.iter().rposition(|&b| b != 0) else {
                return Err(Error::DecryptError);
            };
            (plain[at], HEADER..HEADER + at)
        } else if rx.explicit {
            if body < EXPLICIT + TAG {
                return Err(Error::DecryptError);
            }
            let len = body - EXPLICIT - TAG;
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(&rx.iv[..4]);
            nonce[4..].copy_from_slice(&rec[HEADER..HEADER + EXPLICIT]);
            let aad = tls12_aad(rx.seq, outer, len);
            rx.key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut rec[HEADER + EXPLICIT..],
                )
                .map_err(|_| Error::DecryptError)?;
            (outer, HEADER + EXPLICIT..HEADER + EXPLICIT + len)
        } else {
            if body < TAG {
                return Err(Error::DecryptError);
            }
            let len = body - TAG;
            let nonce = Nonce::assume_unique_for_key(rx.nonce());
            let aad = tls12_aad(rx.seq, outer, len);
            rx.key
                .open_in_place(nonce, Aad::from(aad), &mut rec[HEADER..])
                .map_err(|_| Error::DecryptError)?;
            (outer, HEADER..HEADER + len)
        };
        rx.seq += 1;
        if range.len() > PLAIN_MAX {
            return Err(Error::PeerSentOversizedRecord);
        }
        Ok((typ, range))
    }

    /// Seals `data` (at most [`PLAIN_MAX`] bytes) as one record of content type `typ` at the
    /// end of `out`. With spare capacity for `data`, [`SEAL_MAX`] and [`REPLY_MAX`] bytes,
    /// `out` does not grow. Under TLS 1.3 a key update goes first when the key has sealed its
    /// share of records.
    ///
    /// # Errors
    ///
    /// A TLS 1.2 key that has sealed its share, or rustls' key schedule refusing an update.
    pub fn seal(&mut self, typ: u8, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if self.tx.seq >= TX_LIMIT {
            if !self.tls13 {
                return Err(Error::EncryptError);
            }
            self.update_tx(out)?;
        }
        self.seal_one(typ, data, out);
        Ok(())
    }

    fn seal_one(&mut self, typ: u8, data: &[u8], out: &mut Vec<u8>) {
        let tx = &mut self.tx;
        let at = out.len();
        let nonce = tx.nonce();
        if self.tls13 {
            let len = data.len() + 1 + TAG;
            let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
            out.extend_from_slice(&header);
            out.extend_from_slice(data);
            out.push(typ);
            let tag = tx
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(header),
                    &mut out[at + HEADER..],
                )
                .expect("sealing fails only for lengths past 2^36 bytes");
            out.extend_from_slice(tag.as_ref());
        } else {
            let explicit = if tx.explicit { EXPLICIT } else { 0 };
            let len = explicit + data.len() + TAG;
            out.extend_from_slice(&[typ, 3, 3, (len >> 8) as u8, len as u8]);
            out.extend_from_slice(&nonce[12 - explicit..]);
            out.extend_from_slice(data);
            let aad = tls12_aad(tx.seq, typ, data.len());
            let tag = tx
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut out[at + HEADER + explicit..],
                )
                .expect("sealing fails only for lengths past 2^36 bytes");
            out.extend_from_slice(tag.as_ref());
        }
        tx.seq += 1;
    }

    /// Sends a key update (update_not_requested) under the old key into `out`, then takes the
    /// new key.
    fn update_tx(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.seal_one(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out);
        let (seq, secrets) = self.kernel.update_tx_secret()?;
        self.tx = Direction::new(seq, secrets, true)?;
        Ok(())
    }

    /// A post-handshake handshake record's plaintext, `msgs`: key updates are taken (the
    /// receive key changes; when the peer asks, ours too, announced into `out`, which needs
    /// [`REPLY_MAX`] bytes of spare capacity per message so as not to grow), new session
    /// tickets too on a client. TLS 1.2 has none (a renegotiation is refused).
    ///
    /// # Errors
    ///
    /// A message of another type, malformed, or split across records.
    pub fn handshake(&mut self, mut msgs: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if !self.tls13 {
            return Err(Error::General("renegotiation is not supported".into()));
        }
        while !msgs.is_empty() {
            let Some(&[typ, a, b, c]) = msgs.get(..4) else {
                return Err(Error::General("a malformed handshake message".into()));
            };
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            let Some(body) = msgs.get(4..4 + len) else {
                return Err(Error::General(
                    "a handshake message split across records".into(),
                ));
            };
            if typ == KEY_UPDATE {
                let requested = match body {
                    [0] => false,
                    [1] => true,
                    _ => return Err(Error::General("a malformed key update".into())),
                };
                let (seq, secrets) = self.kernel.update_rx_secret()?;
                self.rx = Direction::new(seq, secrets, true)?;
                if requested {
                    self.update_tx(out)?;
                }
            } else {
                Data::message(&mut self.kernel, typ, body)?;
            }
            msgs = &msgs[4 + len..];
        }
        Ok(())
    }
}
