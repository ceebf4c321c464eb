//! `ringport send --tls`: the one message sent and its echo read inside TLS, on one thread
//! (a non-blocking socket: sealing, sending, receiving and opening in turn, so a message larger
//! than the socket buffers cannot stop both sides).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringport_stress::tls::client_config::TlsClient;
use ringport_stress::tls::detect::{self, Recorder};
use ringport_stress::tls::failure;
use ringport_stress::tls::options::TlsOptions;
use rustls::ClientConnection;

/// Plaintext handed to rustls per turn.
const CHUNK: usize = 64 << 10;

/// Sends `sent` over TLS on `sock`, connected to `addr` (`host` is the name verified unless
/// `--sni` says another), and returns the echo, as many bytes as were sent. `timeout`: how long
/// the echo may make no progress (`None`: for ever).
///
/// # Errors
///
/// One line: the certificate's or the handshake's failure with its reason, a close before the
/// whole echo, nothing for `timeout`, bytes beyond the echo ([`crate::send::beyond_echo`]:
/// after the echo, close_notify is sent and what comes before the server's own is looked for
/// as plaintext `send` looks for it).
pub fn exchange(
    mut sock: TcpStream,
    addr: SocketAddr,
    host: &str,
    opts: &TlsOptions,
    sent: &[u8],
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<u8>> {
    let mut conn = handshake(&mut sock, addr, host, opts, timeout)?;
    sock.set_nonblocking(true)?;
    let mut echo = Vec::with_capacity(sent.len());
    let mut at = 0;
    let mut buf = vec![0u8; CHUNK];
    let mut last_progress = Instant::now();
    while echo.len() < sent.len() {
        let mut progress = false;
        if at < sent.len() {
            let n = conn.writer().write(&sent[at..sent.len().min(at + CHUNK)])?;
            at += n;
            progress |= n > 0;
        }
        while conn.wants_write() {
            match conn.write_tls(&mut sock) {
                Ok(n) => progress |= n > 0,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).with_context(|| format!("sending to {addr} failed")),
            }
        }
        match conn.read_tls(&mut sock) {
            Ok(0) => bail!(
                "{addr} closed the connection after echoing {} of {} bytes",
                echo.len(),
                sent.len()
            ),
            Ok(_) => {
                progress = true;
                conn.process_new_packets()
                    .map_err(|e| anyhow::anyhow!("TLS error from {addr}: {e}"))?;
                loop {
                    match conn.reader().read(&mut buf) {
                        Ok(0) => bail!(
                            "{addr} closed the TLS session after echoing {} of {} bytes",
                            echo.len(),
                            sent.len()
                        ),
                        Ok(n) => echo.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            return Err(e).with_context(|| format!("receiving from {addr} failed"))
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).with_context(|| format!("receiving from {addr} failed")),
        }
        if progress {
            last_progress = Instant::now();
        } else if let Some(timeout) = timeout.filter(|t| last_progress.elapsed() > *t) {
            bail!(
                "no complete echo from {addr} within {:.1} s ({} of {} bytes)",
                timeout.as_secs_f64(),
                echo.len(),
                sent.len()
            );
        } else {
            thread::sleep(Duration::from_millis(1));
        }
    }
    if echo.len() > sent.len() {
        let (echo, extra) = echo.split_at(sent.len());
        return Err(crate::send::beyond_echo(addr, sent, echo, extra));
    }
    // The whole echo is in: close_notify says the message is whole, and bytes beyond the echo
    // are looked for until the server's close_notify or end, for a moment at most.
    conn.send_close_notify();
    sock.set_nonblocking(false)?;
    let deadline = Instant::now() + crate::send::AFTER_ECHO;
    while conn.wants_write() {
        if conn.write_tls(&mut sock).is_err() {
            break;
        }
    }
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        match conn.read_tls(&mut sock) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // No end and nothing more within the moment: a server that keeps the connection.
            Err(_) => break,
        }
        if conn.process_new_packets().is_err() {
            break;
        }
        match conn.reader().read(&mut buf) {
            // close_notify.
            Ok(0) => break,
            Ok(n) => return Err(crate::send::beyond_echo(addr, sent, &echo, &buf[..n])),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    Ok(echo)
}

/// The TLS handshake of `send --tls` and `send --websocket --tls` with `addr` on `sock` (`host`
/// is the name verified unless `--sni` says another), each step within `timeout`; the socket's
/// timeouts are left at `timeout`. Both paths fail in these words.
///
/// # Errors
///
/// One line: a certificate the client cannot trust, or another failed handshake, with its
/// reason and what to do ([`failure::describe`]); a server that does not speak TLS (a usage
/// error, as in `stress`: the flag does not fit the server); no handshake within `timeout`.
pub fn handshake(
    sock: &mut TcpStream,
    addr: SocketAddr,
    host: &str,
    opts: &TlsOptions,
    timeout: Option<Duration>,
) -> anyhow::Result<ClientConnection> {
    let tls = TlsClient::new(opts, host, 1)?;
    sock.set_read_timeout(timeout)?;
    sock.set_write_timeout(timeout)?;
    let mut conn = ClientConnection::new(tls.config, tls.name)?;
    let mut recorded = Recorder::new(&mut *sock);
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut recorded) {
            // The socket's timeout: worded as the plaintext and WebSocket paths word theirs.
            if let (Some(t), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =
                (timeout, e.kind())
            {
                bail!(
                    "no complete TLS handshake from {addr} within {:.1} s",
                    t.as_secs_f64()
                );
            }
            if let Some(line) = detect::not_tls(&addr.to_string(), &recorded.answer()) {
                return Err(crate::exit::usage(line));
            }
            let why = match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(err) => failure::describe(err),
                None => e.to_string(),
            };
            bail!("TLS handshake with {addr} failed: {why}");
        }
    }
    if opts.insecure {
        tracing::warn!("--insecure: the server's certificate and name are not verified");
    }
    Ok(conn)
}
