//! [`Records`]: a connection's TLS record protection once its handshake is complete, in place
//! on the connection's own buffers, with no allocation per record.
//!
//! rustls 0.23 allocates twice per record of application data (a copy of each decrypted
//! record's plaintext, and a new vector for each record it seals). After the handshake the
//! session hands the connection to rustls' `KernelConnection` (which keeps the key schedule:
//! TLS 1.3 key updates) and protects records here with *ring*'s AEAD: a record is opened where
//! it was received, and its echo sealed where it is sent from. The suites are rustls' own (AES-
//! GCM and ChaCha20-Poly1305, TLS 1.3 and 1.2), with their nonces and additional data as the
//! RFCs give them (8446 §5.2-5.3; 5288 §3 and 7905 §2 for 1.2).

use std::ops::Range;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{ConnectionTrafficSecrets, Error, ExtractedSecrets, ProtocolVersion};

/// Content types.
pub(super) const ALERT: u8 = 21;
pub(super) const HANDSHAKE: u8 = 22;
pub(super) const APPLICATION_DATA: u8 = 23;
/// The most plaintext one record carries.
const PLAIN_MAX: usize = 16_384;
const TAG: usize = 16;
/// TLS 1.2 AES-GCM's explicit nonce on the wire.
const EXPLICIT: usize = 8;
/// Records sealed under one key before TLS 1.3 updates it (below AES-GCM's limit of 2^24.5),
/// and before a TLS 1.2 connection, which cannot update its keys, is closed.
const TX_LIMIT: u64 = 1 << 23;
/// A TLS 1.3 `key_update` handshake message's type.
const KEY_UPDATE: u8 = 24;

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

/// A connection's record protection after the handshake, and rustls' key schedule.
pub(super) struct Records {
    kernel: KernelConnection<ServerConnectionData>,
    tls13: bool,
    tx: Direction,
    rx: Direction,
}

impl Records {
    /// The protection of `secrets`, extracted with `kernel` from a completed handshake.
    pub(super) fn new(
        secrets: ExtractedSecrets,
        kernel: KernelConnection<ServerConnectionData>,
    ) -> Result<Records, Error> {
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
    pub(super) fn version(&self) -> ProtocolVersion {
        self.kernel.protocol_version()
    }

    /// Opens the whole record `rec` (header included) in place: its content type and where
    /// its plaintext is in `rec`.
    pub(super) fn open(&mut self, rec: &mut [u8]) -> Result<(u8, Range<usize>), Error> {
        let outer = rec[0];
        let body = rec.len() - 5;
        let rx = &mut self.rx;
        let (typ, range) = if self.tls13 {
            if outer != APPLICATION_DATA || body < TAG + 1 {
                return Err(Error::DecryptError);
            }
            let header: [u8; 5] = rec[..5].try_into().expect("a header");
            let nonce = Nonce::assume_unique_for_key(rx.nonce());
            let plain = rx
                .key
                .open_in_place(nonce, Aad::from(header), &mut rec[5..])
                .map_err(|_| Error::DecryptError)?;
            // The inner plaintext: content, its type, zero padding.
            let Some(at) = plain.iter().rposition(|&b| b != 0) else {
                return Err(Error::DecryptError);
            };
            (plain[at], 5..5 + at)
        } else if rx.explicit {
            if body < EXPLICIT + TAG {
                return Err(Error::DecryptError);
            }
            let len = body - EXPLICIT - TAG;
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(&rx.iv[..4]);
            nonce[4..].copy_from_slice(&rec[5..5 + EXPLICIT]);
            let aad = tls12_aad(rx.seq, outer, len);
            rx.key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut rec[5 + EXPLICIT..],
                )
                .map_err(|_| Error::DecryptError)?;
            (outer, 5 + EXPLICIT..5 + EXPLICIT + len)
        } else {
            if body < TAG {
                return Err(Error::DecryptError);
            }
            let len = body - TAG;
            let nonce = Nonce::assume_unique_for_key(rx.nonce());
            let aad = tls12_aad(rx.seq, outer, len);
            rx.key
                .open_in_place(nonce, Aad::from(aad), &mut rec[5..])
                .map_err(|_| Error::DecryptError)?;
            (outer, 5..5 + len)
        };
        rx.seq += 1;
        if range.len() > PLAIN_MAX {
            return Err(Error::PeerSentOversizedRecord);
        }
        Ok((typ, range))
    }

    /// Seals `data` as one record of content type `typ` at the end of `out`, which has room
    /// for it (with spare capacity for `data` and 29 bytes more, it does not allocate).
    /// Under TLS 1.3 a key update goes first when the key has sealed its share of records.
    pub(super) fn seal(&mut self, typ: u8, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if self.tx.seq >= TX_LIMIT {
            if !self.tls13 {
                return Err(Error::EncryptError);
            }
            // key_update, update_not_requested, under the old key; then the new key.
            self.seal_one(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
            self.update_tx()?;
        }
        self.seal_one(typ, data, out)
    }

    fn seal_one(&mut self, typ: u8, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
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
                    &mut out[at + 5..],
                )
                .map_err(|_| Error::EncryptError)?;
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
                    &mut out[at + 5 + explicit..],
                )
                .map_err(|_| Error::EncryptError)?;
            out.extend_from_slice(tag.as_ref());
        }
        tx.seq += 1;
        Ok(())
    }

    fn update_tx(&mut self) -> Result<(), Error> {
        let (seq, secrets) = self.kernel.update_tx_secret()?;
        self.tx = Direction::new(seq, secrets, true)?;
        Ok(())
    }

    /// A post-handshake handshake record's plaintext (TLS 1.3): key updates are taken (the
    /// receive key changes; when the peer asks, ours too, announced under the old key into
    /// `out`). Anything else, or a TLS 1.2 renegotiation, is refused.
    pub(super) fn handshake(&mut self, mut msgs: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if !self.tls13 {
            return Err(Error::General("renegotiation is not supported".into()));
        }
        while !msgs.is_empty() {
            if msgs.len() < 5 || msgs[0] != KEY_UPDATE || msgs[1..4] != [0, 0, 1] {
                return Err(Error::General(
                    "an unexpected post-handshake message".into(),
                ));
            }
            let requested = match msgs[4] {
                0 => false,
                1 => true,
                _ => return Err(Error::General("a malformed key update".into())),
            };
            let (seq, secrets) = self.kernel.update_rx_secret()?;
            self.rx = Direction::new(seq, secrets, true)?;
            if requested {
                self.seal_one(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
                self.update_tx()?;
            }
            msgs = &msgs[5..];
        }
        Ok(())
    }
}
