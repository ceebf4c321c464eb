//! The upgrade made once before the load (`--websocket`): a server that refuses it (a status
//! other than 101, a wrong accept key) stops the run before any load, with one line naming
//! the reason (its status line), instead of failing every connection of it; so does a TLS
//! server answering the plaintext upgrade with a TLS alert (`--tls` left out).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringport_report::websocket::UpgradeFailure;

use super::options::WsOptions;
use super::session::{WsError, WsSession};
use crate::tls::client_config::TlsClient;

/// Why the probe's upgrade did not complete.
#[derive(Debug)]
pub enum ProbeError {
    /// The server refused the upgrade (its status line) or answered it wrongly: the run must
    /// not start.
    Refused(String),
    /// Without TLS: the server answered the upgrade with a TLS alert, so it speaks TLS.
    SpeaksTls,
    /// Anything else (the server is not up yet, is slow, the TLS handshake failed): left to
    /// the run, which counts and reports it per connection.
    Other(String),
}

/// One blocking upgrade with `addr` (through TLS with `tls`), each step within `timeout`,
/// sending `Host: host`; then a close frame.
///
/// # Errors
///
/// See [`ProbeError`].
pub fn probe(
    opts: &WsOptions,
    host: &str,
    addr: SocketAddr,
    tls: Option<&TlsClient>,
    timeout: Duration,
    proxy: Option<crate::engine::proxy::Version>,
) -> Result<(), ProbeError> {
    let other = |e: io::Error| ProbeError::Other(e.to_string());
    let sock = crate::engine::proxy::connect(addr, timeout, proxy).map_err(other)?;
    sock.set_read_timeout(Some(timeout)).map_err(other)?;
    sock.set_write_timeout(Some(timeout)).map_err(other)?;
    match tls {
        None => upgrade(sock, opts, host, true),
        Some(tls) => {
            let tls = tls.without_resumption();
            let conn = rustls::ClientConnection::new(tls.config, tls.name)
                .map_err(|e| ProbeError::Other(e.to_string()))?;
            upgrade(rustls::StreamOwned::new(conn, sock), opts, host, false)
        }
    }
}

/// The upgrade over `stream` (`plain`: no TLS under it), then a close frame.
fn upgrade(
    mut stream: impl Read + Write,
    opts: &WsOptions,
    host: &str,
    plain: bool,
) -> Result<(), ProbeError> {
    let other = |e: io::Error| ProbeError::Other(e.to_string());
    let now = Instant::now();
    let mut session = WsSession::new(rand::random(), now, false, false);
    let mut request = Vec::with_capacity(256);
    session.write_request(host, &opts.path, &opts.header_pairs(), now, &mut request);
    stream.write_all(&request).map_err(other)?;
    stream.flush().map_err(other)?;
    let mut buf = [0u8; 4096];
    let mut first = true;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // A signal (the process's own handlers) interrupted the wait: wait again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(other(e)),
        };
        if n == 0 {
            return Err(ProbeError::Other(
                "the server closed the connection before answering the upgrade".to_string(),
            ));
        }
        if std::mem::take(&mut first) && plain && crate::tls::detect::is_alert(&buf[..n]) {
            return Err(ProbeError::SpeaksTls);
        }
        match session.receive(&buf[..n], |_| true) {
            Ok(r) if r.upgraded => break,
            Ok(_) => {}
            Err(WsError::Upgrade {
                cause: UpgradeFailure::Status | UpgradeFailure::AcceptKey,
                detail,
            }) => return Err(ProbeError::Refused(detail)),
            Err(WsError::Upgrade { detail, .. } | WsError::Protocol(detail)) => {
                return Err(ProbeError::Other(detail))
            }
        }
    }
    session.close();
    let mut close = Vec::new();
    session.take_control(&mut close);
    let _ = stream.write_all(&close);
    let _ = stream.flush();
    Ok(())
}
