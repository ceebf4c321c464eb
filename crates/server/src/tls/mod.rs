//! TLS for every server model: what a server serves TLS with ([`Tls`], made once at start from
//! [`TlsOptions`]), a connection's TLS state on the port's buffers ([`Session`]), and the
//! counters of handshakes and of the connections that failed them ([`TlsStats`]).
//!
//! rustls does the protocol (TLS 1.3 and 1.2, on the `ring` provider, which builds for
//! `x86_64-pc-windows-gnu` without cmake or nasm); ringport moves the bytes:
//!
//! - **completion model**: rustls' unbuffered API over buffers the connection owns (see
//!   [`Session`]): ciphertext is received into the connection's own buffer and decrypted there,
//!   the echo encrypted into its own send buffers; no blocking stream, no extra thread, and
//!   after the handshake no allocation per message (records are protected in place).
//! - **threaded and single models**: rustls' buffered `ServerConnection` over the blocking
//!   socket (`blocking::tls`).
//!
//! A connection that does not speak TLS (a plaintext client, garbage, an unknown protocol
//! version), ends its handshake early or stalls it past the handshake timeout is closed alone
//! (after an alert where TLS has one), and counted by cause ([`Failure`]).
//!
//! # Files
//!
//! - this one: [`TlsOptions`] and [`Tls`], the server-wide configuration, and [`TlsError`].
//! - `certs`: certificates and keys: PEM files, the self-signed certificate, fingerprints.
//! - `session`: [`Session`], one connection's TLS on the unbuffered API.
//! - `stats`: [`TlsStats`] and [`Failure`], the causes of failed handshakes.
//! - `tests`: [`Session`] against rustls' client, in memory.

mod certs;
mod session;
mod stats;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringport_tls_record::keylog::KeyLogFile;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

pub use certs::fingerprint;
pub use session::{Log, Session, OUTGOING, PLAIN_MAX, RECORD_MAX};
pub use stats::{Failure, TlsStats};

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// A PEM certificate chain (the server's certificate first) and its PEM private key (PKCS#8,
    /// PKCS#1 or SEC1: EC, RSA or Ed25519).
    Files {
        /// The chain.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },
    /// A certificate made at start for `localhost`, 127.0.0.1, ::1 and the bound address, with
    /// a new key (ECDSA P-256).
    SelfSigned,
}

/// What `serve --tls-*` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The certificate and key.
    pub source: CertSource,
    /// ALPN protocols offered, in order of preference (none: no ALPN).
    pub alpn: Vec<Vec<u8>>,
    /// How long a client may take to complete its handshake.
    pub handshake_timeout: Duration,
    /// Mutual TLS: every client must present a certificate issued by one of the certificates of
    /// this PEM file (`--tls-client-ca`); `None`: no client certificate is asked for.
    pub client_ca: Option<PathBuf>,
    /// The key log (`SSLKEYLOGFILE`): every handshake's secrets, for decrypting a capture.
    pub key_log: Option<Arc<KeyLogFile>>,
}

/// The default `--tls-handshake-timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a server serves TLS with: the rustls configuration every connection shares, the
/// handshake timeout, and the certificate made at start when it was asked to sign its own.
#[derive(Clone)]
pub struct Tls {
    /// The rustls configuration (TLS 1.3 and 1.2, ALPN, the certificate).
    pub config: Arc<ServerConfig>,
    /// How long a client may take to complete its handshake.
    pub handshake_timeout: Duration,
    /// The leaf certificate's SHA-256 fingerprint, `AB:CD:...` as `openssl x509 -fingerprint
    /// -sha256` prints it.
    pub fingerprint: String,
    /// The self-signed certificate in PEM, for `--tls-cert-out` (`None` with certificate files).
    pub self_signed_pem: Option<String>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("alpn", &self.config.alpn_protocols)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Why TLS cannot be served: a file, a key or a certificate that does not do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM item of the kind needed.
    #[error("--{flag} {path}: {reason}")]
    File {
        /// The flag that named the file (`tls-cert`, `tls-key`).
        flag: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate or the key (a key that does not match the certificate,
    /// an unsupported key type).
    #[error("--tls-cert/--tls-key: {0}")]
    Refused(String),
    /// The self-signed certificate could not be made.
    #[error("cannot make a self-signed certificate: {0}")]
    SelfSigned(String),
}

/// The crypto provider: the one the stress client uses too ([`ringport_tls_record::provider`]).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    ringport_tls_record::provider()
}

impl Tls {
    /// Loads or makes the certificate and builds the configuration; `bind` is the address the
    /// server listens on (named in a self-signed certificate unless it is unspecified).
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no certificate or key, a key that does not match
    /// the certificate or is of an unsupported type, a certificate that cannot be made.
    pub fn new(options: &TlsOptions, bind: IpAddr) -> Result<Tls, TlsError> {
        let (chain, key, self_signed_pem) = match &options.source {
            CertSource::Files { cert, key } => {
                (certs::load_chain(cert)?, certs::load_key(key)?, None)
            }
            CertSource::SelfSigned => {
                let made = certs::self_signed(bind)?;
                (vec![made.cert], made.key, Some(made.pem))
            }
        };
        let fingerprint = fingerprint(&chain[0]);
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Refused(e.to_string()))?;
        let builder = match &options.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs::load_certs("tls-client-ca", path)? {
                    roots.add(cert).map_err(|e| TlsError::File {
                        flag: "tls-client-ca",
                        path: path.display().to_string(),
                        reason: format!("not a usable CA certificate ({e})"),
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| TlsError::File {
                            flag: "tls-client-ca",
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Refused(e.to_string()))?;
        config.alpn_protocols = options.alpn.clone();
        if let Some(log) = &options.key_log {
            config.key_log = Arc::clone(log) as Arc<dyn rustls::KeyLog>;
        }
        // The completion model protects records itself after the handshake
        // (`ringport_tls_record`).
        config.enable_secret_extraction = true;
        Ok(Tls {
            config: Arc::new(config),
            handshake_timeout: options.handshake_timeout,
            fingerprint,
            self_signed_pem,
        })
    }
}
