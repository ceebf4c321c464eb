//! `ringport serve`'s TLS flags (`--tls-cert`, `--tls-key`, `--tls-self-signed`,
//! `--tls-cert-out`, `--tls-alpn`, `--tls-handshake-timeout`, `--tls-client-ca`): their
//! validation, loading the certificate or making one, the fingerprint on stderr and the
//! certificate written out.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ringport_server::tls::{CertSource, Tls, TlsOptions, DEFAULT_HANDSHAKE_TIMEOUT};
use ringport_tls_record::keylog::KeyLogFile;

use crate::secs::{parse_positive_secs, secs};

/// The TLS flags of `ringport serve`.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Serve TLS with this certificate chain (PEM, the server's certificate first); with
    /// --tls-key. With SSLKEYLOGFILE=PATH in the environment, every handshake's secrets are
    /// appended to PATH (for Wireshark), with --tls-self-signed too.
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, or RSA or EC; EC, RSA and Ed25519 keys).
    #[arg(long, value_name = "PATH")]
    tls_key: Option<PathBuf>,
    /// Serve TLS with a certificate made at start for localhost, 127.0.0.1, ::1 and the --bind
    /// address; its SHA-256 fingerprint is printed on stderr.
    #[arg(long)]
    tls_self_signed: bool,
    /// Write the --tls-self-signed certificate (PEM) to PATH, for clients to trust it (e.g.
    /// `openssl s_client -CAfile PATH`).
    #[arg(long, value_name = "PATH")]
    tls_cert_out: Option<PathBuf>,
    /// An ALPN protocol to agree on (e.g. `h2`, `http/1.1`); repeat it for several, in order of
    /// preference. A client that offers none of them is refused.
    #[arg(long, value_name = "PROTO")]
    tls_alpn: Vec<String>,
    /// Seconds a client may take to complete its TLS handshake before its connection is closed
    /// (and counted as `timeout` in the summary's `tls:` line); more than 0.
    #[arg(long, value_name = "SECS", default_value_t = secs(DEFAULT_HANDSHAKE_TIMEOUT), value_parser = parse_positive_secs)]
    tls_handshake_timeout: f64,
    /// Mutual TLS: ask every client for a certificate and accept only those issued by a CA of
    /// this PEM file; a client without one, or with another, fails its handshake.
    #[arg(long, value_name = "PATH")]
    tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// Whether any flag asks for TLS (a certificate, a key, or a self-signed one).
    pub fn given(&self) -> bool {
        self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_self_signed
    }

    /// What the flags ask for (`None`: plaintext), or the one-line reason they do not combine.
    fn options(&self) -> Result<Option<TlsOptions>, String> {
        let source = match (&self.tls_cert, &self.tls_key, self.tls_self_signed) {
            (Some(cert), Some(key), false) => CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (None, None, true) => CertSource::SelfSigned,
            (Some(_), Some(_), true) | (Some(_), None, true) | (None, Some(_), true) => {
                return Err("--tls-self-signed makes its own certificate: give it without --tls-cert and --tls-key".into())
            }
            (Some(_), None, false) => return Err("--tls-cert needs --tls-key (its private key)".into()),
            (None, Some(_), false) => return Err("--tls-key needs --tls-cert (its certificate)".into()),
            (None, None, false) => {
                if self.tls_cert_out.is_some() {
                    return Err("--tls-cert-out writes the certificate of --tls-self-signed: add --tls-self-signed".into());
                }
                if !self.tls_alpn.is_empty() {
                    return Err("--tls-alpn needs TLS: add --tls-cert and --tls-key, or --tls-self-signed".into());
                }
                if self.tls_client_ca.is_some() {
                    return Err("--tls-client-ca needs TLS: add --tls-cert and --tls-key, or --tls-self-signed".into());
                }
                return Ok(None);
            }
        };
        if self.tls_cert_out.is_some() && source != CertSource::SelfSigned {
            return Err(
                "--tls-cert-out writes the certificate of --tls-self-signed, not of --tls-cert"
                    .into(),
            );
        }
        if let Some(bad) = self.tls_alpn.iter().find(|p| p.is_empty() || p.len() > 255) {
            return Err(format!(
                "--tls-alpn `{bad}`: a protocol name is 1 to 255 bytes"
            ));
        }
        Ok(Some(TlsOptions {
            source,
            alpn: self
                .tls_alpn
                .iter()
                .map(|p| p.as_bytes().to_vec())
                .collect(),
            handshake_timeout: Duration::from_secs_f64(self.tls_handshake_timeout),
            client_ca: self.tls_client_ca.clone(),
            key_log: KeyLogFile::from_env()?,
        }))
    }

    /// Loads or makes the certificate for a server bound to `bind`, prints its fingerprint on
    /// stderr and writes a self-signed one to --tls-cert-out. `Ok(None)`: plaintext.
    ///
    /// # Errors
    ///
    /// One line: flags that do not combine, a file that cannot be read or holds no certificate
    /// or key, a key rustls refuses, a --tls-cert-out that cannot be written. A usage error
    /// (exit code 2) each.
    pub fn load(&self, bind: IpAddr) -> Result<Option<Tls>, String> {
        let Some(options) = self.options()? else {
            return Ok(None);
        };
        let tls = Tls::new(&options, bind).map_err(|e| e.to_string())?;
        if let (Some(path), Some(pem)) = (&self.tls_cert_out, &tls.self_signed_pem) {
            std::fs::write(path, pem)
                .map_err(|e| format!("cannot write --tls-cert-out {}: {e}", path.display()))?;
        }
        let what = if tls.self_signed_pem.is_some() {
            "self-signed certificate"
        } else {
            "certificate"
        };
        eprintln!(
            "ringport: TLS {what}, SHA-256 fingerprint {}",
            tls.fingerprint
        );
        Ok(Some(tls))
    }
}
