//! The blocking models' TLS ([`serve_tls`]): one connection's echo over rustls' buffered
//! `ServerConnection` on the blocking socket. The handshake is bounded by the handshake
//! timeout (the socket's own timeouts meanwhile); then what is decrypted is encrypted back,
//! rustls' buffers bounded by `--buffer-size` (`set_buffer_limit`); at the peer's end of
//! stream or close_notify, or at the drain, what was received is echoed and close_notify sent.

use std::io::{self, Read, Write};
#[cfg(unix)]
use std::net::Shutdown as Direction;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConnection;
use tracing::debug;

use super::ConnCtx;
#[cfg(windows)]
use super::Registry;
use crate::summary::WorkerStats;
use crate::tls::{Failure, Tls, PLAIN_MAX};

/// The socket as rustls reads it: the client's first bytes kept (to tell a plaintext client
/// from garbage), and on Windows receives in slices that look at the drain.
struct Socket<'a> {
    stream: &'a TcpStream,
    first: [u8; 16],
    first_len: usize,
    #[cfg(windows)]
    registry: &'a Registry,
    #[cfg(windows)]
    idle_timeout: Option<Duration>,
    #[cfg(windows)]
    drained: bool,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = { self.stream }.read(buf)?;
        #[cfg(windows)]
        let n = super::conn::read_in_slices(
            self.stream,
            buf,
            self.registry,
            self.idle_timeout,
            self.drained,
        )?;
        let take = (self.first.len() - self.first_len).min(n);
        self.first[self.first_len..self.first_len + take].copy_from_slice(&buf[..take]);
        self.first_len += take;
        Ok(n)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        { self.stream }.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a connection ended, as far as it was not counted yet.
enum End {
    /// Closed, its counters already taken.
    Done,
    /// The peer sent nothing for the idle timeout (the socket's receive timeout).
    Idle,
    /// A socket error (counted as a connection error unless the drain forced it).
    Io(io::Error),
}

/// Serves one TLS connection until it closes; returns its counters (`closed` is 1).
pub(crate) fn serve_tls(stream: &TcpStream, ctx: &ConnCtx<'_>, tls: &Tls) -> WorkerStats {
    let mut stats = WorkerStats {
        closed: 1,
        ..WorkerStats::default()
    };
    let _ = stream.set_nodelay(true);
    let mut conn = match ServerConnection::new(Arc::clone(&tls.config)) {
        Ok(conn) => conn,
        Err(e) => {
            debug!(conn = ctx.conn, "cannot start a TLS session: {e}");
            stats.tls.failed(Failure::Other);
            return stats;
        }
    };
    // Plaintext waiting for encryption and records waiting to be sent, bounded like the
    // connection's buffer (at least one record).
    conn.set_buffer_limit(Some(ctx.buffer_size.max(PLAIN_MAX)));
    let mut socket = Socket {
        stream,
        first: [0; 16],
        first_len: 0,
        #[cfg(windows)]
        registry: ctx.registry,
        #[cfg(windows)]
        idle_timeout: Some(tls.handshake_timeout),
        #[cfg(windows)]
        drained: false,
    };
    if let Err(failure) = handshake(&mut conn, &mut socket, ctx, tls.handshake_timeout) {
        if let Some(failure) = failure {
            stats.tls.failed(failure);
        }
        return stats;
    }
    stats.tls.established(conn.protocol_version());
    let idle_timeout = ctx.idle_timeout.filter(|d| !d.is_zero());
    let write_timeout = ctx.write_timeout.filter(|d| !d.is_zero());
    let _ = stream.set_read_timeout(idle_timeout);
    let _ = stream.set_write_timeout(write_timeout);
    #[cfg(windows)]
    {
        socket.idle_timeout = idle_timeout;
    }
    if let Some(ws) = ctx.websocket {
        // wss: the WebSocket echo over the session, then close_notify.
        let mut session = Session {
            conn: &mut conn,
            socket: &mut socket,
            closed_cleanly: false,
        };
        super::ws::ws_loop(&mut session, ctx, ws, &mut stats);
        if session.closed_cleanly {
            stats.tls.close_notify += 1;
        }
        return stats;
    }
    match echo(&mut conn, &mut socket, ctx, &mut stats) {
        End::Done => {}
        End::Idle => {
            debug!(conn = ctx.conn, "idle timeout: closing the TLS connection");
            stats.idle_closed += 1;
        }
        End::Io(e) => {
            let timed_out = matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            );
            if timed_out && !ctx.registry.is_draining() {
                debug!(conn = ctx.conn, "timeout: closing the TLS connection");
                stats.write_timeouts += 1;
            } else if !ctx.registry.is_forced() && !timed_out {
                debug!(conn = ctx.conn, "TLS connection failed: {e}");
                stats.conn_errors += 1;
                stats.conn_error_kinds.count(&e);
            }
        }
    }
    stats
}

/// Completes the handshake within `timeout`. `Err(Some(cause))`: it failed and is counted by
/// cause; `Err(None)`: it ended without a TLS failure (the client left without a byte, the
/// server is draining).
fn handshake(
    conn: &mut ServerConnection,
    socket: &mut Socket<'_>,
    ctx: &ConnCtx<'_>,
    timeout: Duration,
) -> Result<(), Option<Failure>> {
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Some(Failure::Timeout));
        }
        if ctx.registry.is_draining() {
            return Err(None);
        }
        let _ = socket.stream.set_read_timeout(Some(left));
        let _ = socket.stream.set_write_timeout(Some(left));
        if let Err(e) = conn.complete_io(socket) {
            if ctx.registry.is_draining() {
                return Err(None);
            }
            let failure = match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Timeout,
                io::ErrorKind::UnexpectedEof if socket.first_len == 0 => return Err(None),
                io::ErrorKind::UnexpectedEof => Failure::Truncated,
                io::ErrorKind::InvalidData => match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    Some(tls) => Failure::of(tls, &socket.first[..socket.first_len]),
                    None => Failure::Other,
                },
                // A reset or another socket error: not the protocol's.
                _ => {
                    debug!(conn = ctx.conn, "TLS handshake: {e}");
                    return Err(None);
                }
            };
            debug!(conn = ctx.conn, ?failure, "TLS handshake failed: {e}");
            return Err(Some(failure));
        }
    }
    Ok(())
}

/// Sends every record rustls has queued.
fn flush(conn: &mut ServerConnection, mut stream: &TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(&mut stream)?;
    }
    Ok(())
}

/// The echo after the handshake, until the peer's end of stream or close_notify (then our
/// close_notify), the drain, or an error. Each turn echoes what rustls has decrypted (the
/// handshake may have brought the first bytes already), sends it, then receives.
fn echo(
    conn: &mut ServerConnection,
    socket: &mut Socket<'_>,
    ctx: &ConnCtx<'_>,
    stats: &mut WorkerStats,
) -> End {
    let mut buf = vec![0u8; ctx.buffer_size.clamp(1, PLAIN_MAX)];
    let stream = socket.stream;
    let mut drained = false;
    let (mut eof, mut peer_closed) = (false, false);
    loop {
        // Plaintext handed to rustls whose records are not all sent yet: echoed once they are.
        let mut unsent = 0u64;
        loop {
            let n = match conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The peer's end of stream without close_notify: what came before is echoed.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return End::Io(e),
            };
            stats.bytes_in += n as u64;
            ctx.registry.received(n as u64);
            if ctx.log_messages {
                crate::messages::log_message(ctx.worker, ctx.conn, ctx.peer, &buf[..n]);
            }
            let mut at = 0;
            while at < n {
                // Past the buffer limit rustls takes nothing: send what it holds first.
                let taken = match conn.writer().write(&buf[at..n]) {
                    Ok(taken) => taken,
                    Err(e) => return End::Io(e),
                };
                at += taken;
                if taken == 0 || conn.wants_write() {
                    if let Err(e) = flush(conn, stream) {
                        return End::Io(e);
                    }
                }
            }
            unsent += n as u64;
        }
        if eof || peer_closed {
            conn.send_close_notify();
        }
        if let Err(e) = flush(conn, stream) {
            return End::Io(e);
        }
        stats.bytes_out += unsent;
        ctx.registry.sent(unsent);
        if eof || peer_closed {
            stats.tls.close_notify += 1;
            return End::Done;
        }
        if !drained && ctx.registry.is_draining() {
            // As in the plaintext echo: this receive must not wait for new bytes.
            drained = true;
            #[cfg(unix)]
            let _ = stream.shutdown(Direction::Read);
            #[cfg(windows)]
            {
                socket.drained = true;
            }
        }
        eof = match conn.read_tls(socket) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Draining: nothing more was queued.
            Err(e) if drained && e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return End::Idle
            }
            Err(e) => return End::Io(e),
        };
        peer_closed = match conn.process_new_packets() {
            Ok(state) => state.peer_has_closed(),
            Err(e) => {
                debug!(conn = ctx.conn, "TLS record refused: {e}");
                stats.tls.failed(Failure::Other);
                let _ = flush(conn, stream);
                return End::Done;
            }
        };
    }
}

/// A TLS session on the socket as the WebSocket loop's transport (`wss`).
struct Session<'c, 's, 'a> {
    conn: &'c mut ServerConnection,
    socket: &'s mut Socket<'a>,
    /// close_notify was sent.
    closed_cleanly: bool,
}

impl super::ws::Transport for Session<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer's end of stream without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            if self.conn.read_tls(self.socket)? == 0 {
                return Ok(0);
            }
            if let Err(e) = self.conn.process_new_packets() {
                let _ = flush(self.conn, self.socket.stream);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Alerts or key updates the records asked for.
            flush(self.conn, self.socket.stream)?;
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut at = 0;
        while at < buf.len() {
            // Past the buffer limit rustls takes nothing: send what it holds first.
            at += self.conn.writer().write(&buf[at..])?;
            flush(self.conn, self.socket.stream)?;
        }
        Ok(())
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        #[cfg(unix)]
        let _ = self.socket.stream.set_read_timeout(timeout);
        #[cfg(windows)]
        {
            self.socket.idle_timeout = timeout;
        }
    }

    fn drain(&mut self) {
        #[cfg(unix)]
        let _ = self.socket.stream.shutdown(Direction::Read);
        #[cfg(windows)]
        {
            self.socket.drained = true;
        }
    }

    fn finish(&mut self) {
        self.conn.send_close_notify();
        self.closed_cleanly = flush(self.conn, self.socket.stream).is_ok();
        super::ws::linger(self.socket.stream);
    }
}
