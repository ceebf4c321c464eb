//! A failed TLS handshake, classified by cause for the report's `tls.failed` counts and
//! described in one line.

use ringport_report::tls::HandshakeFailure;
use rustls::{AlertDescription, CertificateError, Error};

/// The cause of rustls' error `e` during a handshake.
pub fn classify(e: &Error) -> HandshakeFailure {
    match e {
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            HandshakeFailure::Name
        }
        Error::InvalidCertificate(_)
        | Error::InvalidCertRevocationList(_)
        | Error::NoCertificatesPresented
        | Error::AlertReceived(
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::CertificateRequired,
        ) => HandshakeFailure::Certificate,
        Error::General(_) | Error::Other(_) | Error::FailedToGetCurrentTime => {
            HandshakeFailure::Other
        }
        _ => HandshakeFailure::Protocol,
    }
}

/// One line about a failed handshake: its cause and rustls' words, e.g. `certificate: invalid
/// peer certificate: Expired`.
pub fn describe(e: &Error) -> String {
    let why = match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the certificate's issuer is not trusted (give its CA with --tls-ca, or --insecure)"
                .to_string()
        }
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "the certificate has expired".to_string()
        }
        Error::InvalidCertificate(CertificateError::NotValidYet)
        | Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
            "the certificate is not valid yet".to_string()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            format!("the certificate is for another name (set the name with --sni): {e}")
        }
        other => other.to_string(),
    };
    format!("{}: {why}", classify(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_of_rustls_errors() {
        let cert = |c| Error::InvalidCertificate(c);
        assert_eq!(
            classify(&cert(CertificateError::Expired)),
            HandshakeFailure::Certificate
        );
        assert_eq!(
            classify(&cert(CertificateError::UnknownIssuer)),
            HandshakeFailure::Certificate
        );
        assert_eq!(
            classify(&cert(CertificateError::NotValidForName)),
            HandshakeFailure::Name
        );
        assert_eq!(
            classify(&Error::AlertReceived(AlertDescription::ProtocolVersion)),
            HandshakeFailure::Protocol
        );
        assert_eq!(
            classify(&Error::AlertReceived(AlertDescription::UnknownCA)),
            HandshakeFailure::Certificate
        );
        assert!(describe(&cert(CertificateError::Expired)).starts_with("certificate: "));
        assert!(describe(&cert(CertificateError::NotValidForName)).contains("--sni"));
    }
}
