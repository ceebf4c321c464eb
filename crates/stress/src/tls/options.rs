//! The `--tls*` flags of `stress` and `send` as plain data.

use std::path::PathBuf;
use std::sync::Arc;

use ringport_tls_record::keylog::KeyLogFile;

/// A TLS protocol version (`--tls-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    V12,
    /// TLS 1.3.
    V13,
}

impl TlsVersion {
    /// `1.2` or `1.3`, as given on the command line.
    ///
    /// # Errors
    ///
    /// A one-line message naming the values allowed.
    pub fn parse(s: &str) -> Result<TlsVersion, String> {
        match s.trim() {
            "1.2" => Ok(TlsVersion::V12),
            "1.3" => Ok(TlsVersion::V13),
            other => Err(format!("`{other}` is not a TLS version: 1.2 or 1.3")),
        }
    }
}

/// How a client speaks TLS: every `--tls*` flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--tls-ca PATH`: trust the certificates of this PEM file instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// `--insecure`: verify nothing (any certificate, any name); warned about once.
    pub insecure: bool,
    /// `--sni NAME`: the name sent and verified (default: the host given).
    pub sni: Option<String>,
    /// `--alpn PROTO` (repeatable): the application protocols offered, in order.
    pub alpn: Vec<String>,
    /// `--tls-cert PATH`: the client's certificate chain (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    /// `--tls-key PATH`: the client certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// `--tls-version`: the one version allowed (default: 1.2 and 1.3).
    pub version: Option<TlsVersion>,
    /// `--tls-resume`: resume sessions across reconnects from a store shared by every
    /// connection of the run; without it every handshake is a full one.
    pub resume: bool,
    /// The key log (`SSLKEYLOGFILE`): every handshake's secrets, for decrypting a capture.
    pub key_log: Option<Arc<KeyLogFile>>,
}
