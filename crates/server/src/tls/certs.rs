//! Certificates and keys: a PEM chain and key read from files, a self-signed certificate made
//! at start (rcgen), and a certificate's SHA-256 fingerprint.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::TlsError;

fn file_error(flag: &'static str, path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::File {
        flag,
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// What a PEM error means for the user.
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::Io(e) => e.to_string(),
        other => format!("not a valid PEM file ({other})"),
    }
}

/// The certificates of a PEM file, in order (the server's own first).
pub(super) fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    load_certs("tls-cert", path)
}

/// The certificates of the PEM file that `--flag` names, in order; at least one.
pub(super) fn load_certs(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let iter =
        CertificateDer::pem_file_iter(path).map_err(|e| file_error(flag, path, pem_reason(&e)))?;
    let chain = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(flag, path, pem_reason(&e)))?;
    if chain.is_empty() {
        return Err(file_error(
            flag,
            path,
            "no certificate in it (expected a -----BEGIN CERTIFICATE----- block)",
        ));
    }
    Ok(chain)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub(super) fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => file_error(
            "tls-key",
            path,
            "no private key in it (expected a -----BEGIN PRIVATE KEY----- block, or RSA or EC)",
        ),
        e => file_error("tls-key", path, pem_reason(&e)),
    })
}

/// A certificate made at start, with its key and its PEM text.
pub(super) struct SelfSigned {
    pub(super) cert: CertificateDer<'static>,
    pub(super) key: PrivateKeyDer<'static>,
    pub(super) pem: String,
}

/// The names a self-signed certificate is for: `localhost`, the loopback addresses, and `bind`
/// when it is a specific address.
fn self_signed_names(bind: IpAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        Ipv4Addr::LOCALHOST.to_string(),
        Ipv6Addr::LOCALHOST.to_string(),
    ];
    if !bind.is_unspecified() && !bind.is_loopback() {
        names.push(bind.to_string());
    }
    names
}

/// A new key and a certificate signed by it for [`self_signed_names`].
pub(super) fn self_signed(bind: IpAddr) -> Result<SelfSigned, TlsError> {
    let made = rcgen::generate_simple_self_signed(self_signed_names(bind))
        .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    Ok(SelfSigned {
        cert: made.cert.der().clone(),
        key,
        pem: made.cert.pem(),
    })
}

/// The SHA-256 fingerprint of a certificate, `AB:CD:...` (as `openssl x509 -noout -fingerprint
/// -sha256` prints it).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_names_localhost_and_a_specific_bound_address() {
        let names = self_signed_names("192.0.2.7".parse().unwrap());
        assert_eq!(names, ["localhost", "127.0.0.1", "::1", "192.0.2.7"]);
        assert_eq!(self_signed_names("0.0.0.0".parse().unwrap()).len(), 3);
        let made = self_signed("127.0.0.1".parse().unwrap()).unwrap();
        assert!(made.pem.starts_with("-----BEGIN CERTIFICATE-----"));
        // The PEM text is the certificate served.
        let again = CertificateDer::from_pem_slice(made.pem.as_bytes()).unwrap();
        assert_eq!(again, made.cert);
        let fp = fingerprint(&made.cert);
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
    }

    #[test]
    fn files_without_a_certificate_or_a_key_are_refused_with_the_flag_and_the_reason() {
        let dir = std::env::temp_dir().join(format!("ringport-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let e = load_chain(&empty).err().unwrap().to_string();
        assert!(
            e.starts_with("--tls-cert ") && e.contains("no certificate"),
            "{e}"
        );
        let e = load_key(&empty).err().unwrap().to_string();
        assert!(
            e.starts_with("--tls-key ") && e.contains("no private key"),
            "{e}"
        );
        let missing = dir.join("missing.pem");
        let e = load_chain(&missing).err().unwrap().to_string();
        assert!(e.contains("missing.pem") && !e.contains('\n'), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
