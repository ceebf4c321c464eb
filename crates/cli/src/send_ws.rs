//! `ringport send --websocket`: the upgrade, one masked WebSocket message, its echo read back
//! as one message and checked, then the close handshake; plaintext or inside TLS (`--tls`).
//! A MESSAGE argument that is valid UTF-8 goes as a text message; standard input and
//! `--file` go as a binary message.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringport_stress::tls::options::TlsOptions;
use ringport_stress::ws::options::WsOptions;
use ringport_stress::ws::session::{WsError, WsSession};

/// Sends `sent` as one WebSocket message (`text` or binary) to `addr` over `sock` (inside TLS
/// with `tls`), `host` its `Host` header, and returns the echoed message's bytes.
///
/// # Errors
///
/// One line: the upgrade refused (the status line), a frame that breaks the protocol, an echo
/// of another length, a close before the echo, nothing within `timeout`, messages beyond the
/// echo ([`crate::send::beyond_echo`], their payload bytes: after the echoed message, the close
/// frame is sent and what comes before the server's own is looked for as plaintext `send` looks
/// for bytes).
#[allow(clippy::too_many_arguments)]
pub fn exchange(
    sock: TcpStream,
    addr: SocketAddr,
    host: &str,
    port: u16,
    ws: &WsOptions,
    tls: Option<&TlsOptions>,
    sent: &[u8],
    text: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<u8>> {
    sock.set_read_timeout(timeout)?;
    sock.set_write_timeout(timeout)?;
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tls {
        None => run(sock, addr, &host_header, ws, sent, text, timeout),
        Some(opts) => {
            // The handshake first, on its own: its failures are worded as `send --tls` words
            // them (a certificate refused says what to do), not as a failed write.
            let mut sock = sock;
            let conn = crate::send_tls::handshake(&mut sock, addr, host, opts, timeout)?;
            let stream = rustls::StreamOwned::new(conn, sock);
            run(stream, addr, &host_header, ws, sent, text, timeout)
        }
    }
}

/// What `send --websocket` speaks over: the socket, or TLS over it.
trait Transport: Read + Write {
    /// The socket under it.
    fn socket(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl Transport for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

fn run(
    mut stream: impl Transport,
    addr: SocketAddr,
    host: &str,
    ws: &WsOptions,
    sent: &[u8],
    text: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<u8>> {
    let now = Instant::now();
    let mut session = WsSession::new(ringport_stress::ws::session::fresh_seed(), now, text, true);
    let mut out = Vec::with_capacity(sent.len() + 512);
    session.write_request(host, &ws.path, &ws.header_pairs(), now, &mut out);
    stream
        .write_all(&out)
        .and_then(|()| stream.flush())
        .with_context(|| format!("sending the upgrade to {addr} failed"))?;
    let mut echo = Vec::with_capacity(sent.len());
    let mut buf = vec![0u8; 64 << 10];
    let mut sent_message = false;
    loop {
        if session.upgrading() {
            read_some(
                &mut stream,
                &mut buf,
                &mut session,
                &mut echo,
                (addr, sent),
                timeout,
                "upgrade",
            )?;
            continue;
        }
        if !sent_message {
            // The server reads the whole message before it echoes: one write, then the reads.
            out.clear();
            let at = session.begin(&mut out);
            out.extend_from_slice(sent);
            session.end(&mut out, at);
            stream
                .write_all(&out)
                .and_then(|()| stream.flush())
                .with_context(|| format!("sending to {addr} failed"))?;
            sent_message = true;
        }
        if session.messages_echoed == 1 {
            break;
        }
        read_some(
            &mut stream,
            &mut buf,
            &mut session,
            &mut echo,
            (addr, sent),
            timeout,
            "echo",
        )?;
    }
    if echo.len() > sent.len() {
        // A message after the echoed one, in the same read.
        let (echo, extra) = echo.split_at(sent.len());
        return Err(crate::send::beyond_echo(addr, sent, echo, extra));
    }
    // The close handshake: ours, then the server's close frame (or its end of stream), for a
    // moment at most; a message before it is more than the echo.
    session.close();
    out.clear();
    session.take_control(&mut out);
    if stream.write_all(&out).and_then(|()| stream.flush()).is_ok() {
        let deadline = Instant::now() + crate::send::AFTER_ECHO;
        let mut rest = Vec::new();
        while session.close_code.is_none() && rest.is_empty() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            stream
                .socket()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match stream.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(n) if n > 0 => {
                    let received = session.receive(&buf[..n], |p| {
                        rest.extend_from_slice(p);
                        true
                    });
                    if received.is_err() {
                        break;
                    }
                }
                // The end, or nothing more within the moment: a server that keeps the
                // connection.
                _ => break,
            }
        }
        if !rest.is_empty() {
            return Err(crate::send::beyond_echo(addr, sent, &echo, &rest));
        }
    }
    Ok(echo)
}

/// Reads once from `stream` and hands the bytes to `session`, the payload to `echo` (`sent`
/// the message sent to `addr`).
fn read_some(
    stream: &mut impl Read,
    buf: &mut [u8],
    session: &mut WsSession,
    echo: &mut Vec<u8>,
    (addr, sent): (SocketAddr, &[u8]),
    timeout: Option<Duration>,
    what: &str,
) -> anyhow::Result<()> {
    let n = match stream.read(buf) {
        // A signal interrupted the wait: the caller reads again.
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
        Ok(0) => bail!(
            "{addr} closed the connection before the {what} was complete ({} bytes echoed)",
            echo.len()
        ),
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            bail!(
                "no {what} from {addr} within {:.1} s",
                timeout.unwrap_or_default().as_secs_f64()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("receiving from {addr} failed")),
    };
    let r = session
        .receive(&buf[..n], |p| {
            echo.extend_from_slice(p);
            true
        })
        .map_err(|e| match e {
            // A message after the echoed one (the session finds no message outstanding for
            // it): more than the echo.
            _ if session.messages_echoed > 0 && echo.len() > sent.len() => {
                let (echo, extra) = echo.split_at(sent.len());
                crate::send::beyond_echo(addr, sent, echo, extra)
            }
            WsError::Upgrade { detail, .. } => {
                anyhow::anyhow!("{addr} refused the WebSocket upgrade: {detail}")
            }
            WsError::Protocol(detail) => anyhow::anyhow!("WebSocket error from {addr}: {detail}"),
        })?;
    if r.peer_closed && session.messages_echoed == 0 {
        bail!(
            "{addr} closed the WebSocket (code {}) before echoing the message",
            session.close_code.unwrap_or(1005)
        );
    }
    Ok(())
}
