//! The `--tls*` options made into what every connection of a run shares: one rustls
//! `ClientConfig` (roots, verification, client certificate, versions, ALPN, and with
//! `--tls-resume` the session store every connection resumes from) and the server name.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::options::{TlsOptions, TlsVersion};
use crate::error::ConfigError;

/// What every TLS connection of a run shares.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// The rustls configuration (and its session store).
    pub config: Arc<ClientConfig>,
    /// The name sent (SNI) and verified.
    pub name: ServerName<'static>,
}

impl TlsClient {
    /// The configuration `opts` asks for, to reach `host` (the name sent and verified unless
    /// `--sni` names another); `sessions` is how many sessions `--tls-resume` keeps.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or holds no certificate or key, a name that is not a DNS
    /// name or an address, no system roots: one line naming the flag.
    pub fn new(opts: &TlsOptions, host: &str, sessions: usize) -> Result<TlsClient, ConfigError> {
        let provider = provider();
        let versions: &[&'static rustls::SupportedProtocolVersion] = match opts.version {
            None => rustls::DEFAULT_VERSIONS,
            Some(TlsVersion::V12) => &[&rustls::version::TLS12],
            Some(TlsVersion::V13) => &[&rustls::version::TLS13],
        };
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(|e| ConfigError(format!("--tls-version: {e}")))?;
        let builder = if opts.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            builder.with_root_certificates(roots(opts.ca.as_deref())?)
        };
        let mut config = match (&opts.cert, &opts.key) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "--tls-cert")?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    ConfigError(format!("--tls-key {}: no private key: {e}", key.display()))
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ConfigError(format!("--tls-cert/--tls-key: {e}")))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(ConfigError(
                    "--tls-cert and --tls-key go together (mutual TLS)".into(),
                ))
            }
        };
        config.alpn_protocols = opts.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        if let Some(log) = &opts.key_log {
            config.key_log = Arc::clone(log) as Arc<dyn rustls::KeyLog>;
        }
        // The session protects records itself after the handshake (`session`).
        config.enable_secret_extraction = true;
        config.resumption = if opts.resume {
            Resumption::in_memory_sessions(sessions.max(256))
        } else {
            Resumption::disabled()
        };
        let name_given = opts.sni.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name_given.to_string()).map_err(|e| {
            ConfigError(format!(
                "{}`{name_given}` is not a server name: {e}",
                if opts.sni.is_some() { "--sni " } else { "" }
            ))
        })?;
        Ok(TlsClient {
            config: Arc::new(config),
            name,
        })
    }

    /// The same configuration without session resumption: the pre-flight probe's, so that its
    /// session is not the first one the load resumes.
    pub fn without_resumption(&self) -> TlsClient {
        let mut config = (*self.config).clone();
        config.resumption = Resumption::disabled();
        TlsClient {
            config: Arc::new(config),
            name: self.name.clone(),
        }
    }
}

/// The crypto provider: the one the server uses too ([`ringport_tls_record::provider`]).
pub fn provider() -> Arc<CryptoProvider> {
    ringport_tls_record::provider()
}

/// The certificates of the PEM file `path`, at least one.
fn certificates(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bad = |e: String| ConfigError(format!("{flag} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(certs)
}

/// The roots to trust: the certificates of `--tls-ca`, or the system's.
fn roots(ca: Option<&Path>) -> Result<RootCertStore, ConfigError> {
    let mut store = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path, "--tls-ca")? {
                store
                    .add(cert)
                    .map_err(|e| ConfigError(format!("--tls-ca {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(ConfigError(format!(
                    "no trusted root certificates found on this system{why}: give them with \
                     --tls-ca PATH"
                )));
            }
        }
    }
    Ok(store)
}

/// `--insecure`: every certificate and name accepted; signatures are still checked, so the
/// handshake itself is a real one (the same work as a verified one, bar the chain).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
