//! The `--tls*` flags of `stress` and `send`, shared, and what they mean as
//! [`TlsOptions`].

use std::path::PathBuf;

use clap::Args;
use ringport_stress::tls::options::{TlsOptions, TlsVersion};
use ringport_tls_record::keylog::KeyLogFile;

use crate::exit::UsageContext;

/// Flags for speaking TLS to the server.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsClientArgs {
    /// Speak TLS (1.2 or 1.3) to the server: every message is sent and verified inside it.
    /// The server's certificate is checked against the system's roots (or --tls-ca) before
    /// any load: a certificate that cannot be trusted stops the run with its reason. With
    /// SSLKEYLOGFILE=PATH in the environment, every handshake's secrets are appended to PATH
    /// (for Wireshark).
    #[arg(long)]
    pub tls: bool,
    /// Trust the certificates of this PEM file (a CA, or the server's own self-signed one)
    /// instead of the system's roots.
    #[arg(long, value_name = "PATH", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// Do not verify the server's certificate or name (warned about once). The handshakes are
    /// still real ones.
    #[arg(long, requires = "tls", conflicts_with = "tls_ca")]
    pub insecure: bool,
    /// The server name to send (SNI) and verify the certificate against [default: the host].
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub sni: Option<String>,
    /// Offer this application protocol (ALPN), e.g. http/1.1; repeat for several, in order of
    /// preference.
    #[arg(long, value_name = "PROTO", requires = "tls")]
    pub alpn: Vec<String>,
    /// Mutual TLS: the client's certificate chain (PEM), with --tls-key.
    #[arg(long, value_name = "PATH", requires_all = ["tls", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// Mutual TLS: the private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", requires_all = ["tls", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
    /// Allow only this TLS version: 1.2 or 1.3 [default: both, 1.3 preferred].
    #[arg(long, value_name = "VERSION", requires = "tls", value_parser = TlsVersion::parse)]
    pub tls_version: Option<TlsVersion>,
    /// Resume TLS sessions across reconnects (--messages-per-connection): every connection of
    /// the run shares one session store; the report counts full and resumed handshakes.
    #[arg(long, requires = "tls")]
    pub tls_resume: bool,
}

impl TlsClientArgs {
    /// The options, or `None` without --tls; with the key log `SSLKEYLOGFILE` names.
    ///
    /// # Errors
    ///
    /// A key log that cannot be opened: a usage error naming it.
    pub fn options(&self) -> anyhow::Result<Option<TlsOptions>> {
        if !self.tls {
            return Ok(None);
        }
        let key_log = KeyLogFile::from_env().usage()?;
        Ok(Some(TlsOptions {
            ca: self.tls_ca.clone(),
            insecure: self.insecure,
            sni: self.sni.clone(),
            alpn: self.alpn.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            version: self.tls_version,
            resume: self.tls_resume,
            key_log,
        }))
    }
}
