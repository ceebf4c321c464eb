//! The handshake made once before the load: a certificate the client cannot trust (expired,
//! for another name, from an unknown authority), or a server that does not speak TLS (it
//! echoes the ClientHello, or answers it with bytes that are not TLS), stops the run before
//! any load, with one line naming the reason, instead of failing every connection of it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ringport_report::tls::HandshakeFailure;
use rustls::ClientConnection;

use super::client_config::TlsClient;
use super::detect::{HelloAnswer, Recorder};
use super::failure;

/// Why the probe's handshake did not complete.
#[derive(Debug)]
pub enum ProbeError {
    /// The server's certificate is not trusted, or not for the name: the run must not start.
    Untrusted(String),
    /// The server does not speak TLS: what it answered the ClientHello with (see
    /// [`not_tls`](super::detect::not_tls)).
    NotTls(HelloAnswer),
    /// Anything else (the server is not up yet, is slow, or refuses this one connection):
    /// left to the run, which counts and reports it per connection.
    Other(String),
}

/// One blocking handshake with `addr` (each step within `timeout`), then close_notify.
///
/// # Errors
///
/// See [`ProbeError`].
pub fn probe(
    tls: &TlsClient,
    addr: SocketAddr,
    timeout: Duration,
    proxy: Option<crate::engine::proxy::Version>,
) -> Result<(), ProbeError> {
    let tls = tls.without_resumption();
    let other = |e: io::Error| ProbeError::Other(e.to_string());
    let sock = crate::engine::proxy::connect(addr, timeout, proxy).map_err(other)?;
    sock.set_read_timeout(Some(timeout)).map_err(other)?;
    sock.set_write_timeout(Some(timeout)).map_err(other)?;
    let mut sock = Recorder::new(sock);
    let mut conn = ClientConnection::new(tls.config, tls.name)
        .map_err(|e| ProbeError::Other(e.to_string()))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            let answer = sock.answer();
            if answer.is_not_tls() {
                return Err(ProbeError::NotTls(answer));
            }
            let rustls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            return Err(match rustls_error {
                Some(err)
                    if matches!(
                        failure::classify(err),
                        HandshakeFailure::Certificate | HandshakeFailure::Name
                    ) =>
                {
                    ProbeError::Untrusted(failure::describe(err))
                }
                Some(err) => ProbeError::Other(failure::describe(err)),
                None => ProbeError::Other(e.to_string()),
            });
        }
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(())
}
