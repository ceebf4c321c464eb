//! The blocking models' WebSocket echo (`serve --websocket`): one connection's [`WsEcho`]
//! carried out with blocking reads and writes, over the socket ([`serve_ws`]) or over rustls
//! (`wss`, from `blocking::tls` once its handshake is done: [`ws_loop`] on a [`Transport`]).
//! The upgrade is bounded by the WebSocket handshake timeout, then the idle and write timeouts
//! are the socket's own; at the drain what was received is echoed, then a close frame with
//! 1001 is sent.

use std::io::{self, Read, Write};
#[cfg(unix)]
use std::net::Shutdown as Direction;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tracing::debug;

use super::ConnCtx;
use crate::echo::websocket::{
    input_capacity, out_limit, Phase, WsConfig, WsEcho, LINGER, OUT_SLACK,
};
use crate::summary::WorkerStats;

/// What the WebSocket loop reads from and writes to: the socket, or a TLS session on it.
pub(super) trait Transport {
    /// Reads at least one byte; `Ok(0)` is the peer's end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Sends all of `buf`.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// How long a read may wait (`None`: for ever).
    fn set_read_timeout(&mut self, timeout: Option<Duration>);
    /// The drain: from now on reads do not wait (the bytes queued, then the end).
    fn drain(&mut self);
    /// The end: what must follow the last bytes (TLS: close_notify), the FIN, then the peer's
    /// input discarded until its end or [`LINGER`].
    fn finish(&mut self);
}

/// The FIN, then the peer's bytes read and dropped until its end of stream or [`LINGER`], so
/// that closing the socket does not reset the connection under the last bytes sent.
pub(super) fn linger(stream: &TcpStream) {
    #[cfg(unix)]
    let _ = stream.shutdown(Direction::Write);
    #[cfg(windows)]
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match { stream }.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The plain socket.
struct Plain<'a> {
    stream: &'a TcpStream,
    #[cfg(windows)]
    registry: &'a super::Registry,
    #[cfg(windows)]
    timeout: Option<Duration>,
    #[cfg(windows)]
    drained: bool,
}

impl Transport for Plain<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        return { self.stream }.read(buf);
        #[cfg(windows)]
        return super::conn::read_in_slices(
            self.stream,
            buf,
            self.registry,
            self.timeout,
            self.drained,
        );
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        { self.stream }.write_all(buf)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        #[cfg(unix)]
        let _ = self.stream.set_read_timeout(timeout);
        #[cfg(windows)]
        {
            self.timeout = timeout;
        }
    }

    fn drain(&mut self) {
        #[cfg(unix)]
        let _ = self.stream.shutdown(Direction::Read);
        #[cfg(windows)]
        {
            self.drained = true;
        }
    }

    fn finish(&mut self) {
        linger(self.stream);
    }
}

/// Serves one plaintext WebSocket connection until it closes; returns its counters (`closed`
/// is 1).
pub(crate) fn serve_ws(stream: &TcpStream, ctx: &ConnCtx<'_>, cfg: WsConfig) -> WorkerStats {
    let mut stats = WorkerStats {
        closed: 1,
        ..WorkerStats::default()
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(ctx.write_timeout.filter(|d| !d.is_zero()));
    let mut plain = Plain {
        stream,
        #[cfg(windows)]
        registry: ctx.registry,
        #[cfg(windows)]
        timeout: None,
        #[cfg(windows)]
        drained: false,
    };
    ws_loop(&mut plain, ctx, cfg, &mut stats);
    stats
}

/// The WebSocket echo of one connection over `io`, until it closes; adds to `stats`.
pub(super) fn ws_loop(
    io: &mut dyn Transport,
    ctx: &ConnCtx<'_>,
    cfg: WsConfig,
    stats: &mut WorkerStats,
) {
    let mut ws = WsEcho::new(cfg.max_message);
    let out_limit = out_limit(ctx.buffer_size);
    let mut input = vec![0u8; input_capacity(ctx.buffer_size)];
    let mut held = 0;
    let mut out = Vec::with_capacity(out_limit + OUT_SLACK);
    let deadline = Instant::now() + cfg.handshake_timeout;
    let idle_timeout = ctx.idle_timeout.filter(|d| !d.is_zero());
    let mut drained = false;
    'conn: loop {
        // Everything held is taken in, its echo sent, until more input is needed.
        loop {
            let used = ws.process(&input[..held], &mut out, out_limit);
            input.copy_within(used..held, 0);
            held -= used;
            if !out.is_empty() {
                if !send(io, &out, ctx, stats) {
                    break 'conn;
                }
                out.clear();
            } else if used == 0 {
                break;
            }
            if ws.is_closing() {
                break 'conn;
            }
        }
        if held == input.len() {
            // Cannot happen (a head or a frame header fits), kept as a bound.
            ws.end_of_input();
            break;
        }
        if !drained && ctx.registry.is_draining() {
            drained = true;
            io.drain();
        }
        let timeout = if ws.phase() == Phase::Handshake {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                ws.handshake_timed_out();
                break;
            }
            Some(left)
        } else {
            idle_timeout
        };
        io.set_read_timeout(timeout);
        match io.read(&mut input[held..]) {
            Ok(0) => {
                // The drain's shutdown may have woken a receive that started before it.
                if drained || ctx.registry.is_draining() {
                    ws.going_away(&mut out);
                } else {
                    ws.end_of_input();
                }
            }
            Ok(n) => {
                stats.bytes_in += n as u64;
                ctx.registry.received(n as u64);
                if ctx.log_messages {
                    crate::messages::log_message(
                        ctx.worker,
                        ctx.conn,
                        ctx.peer,
                        &input[held..held + n],
                    );
                }
                held += n;
            }
            // A receive woken by the drain (Windows): look again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if drained || ctx.registry.is_draining() {
                    ws.going_away(&mut out);
                } else if ws.phase() == Phase::Handshake {
                    ws.handshake_timed_out();
                } else {
                    debug!(
                        conn = ctx.conn,
                        "idle timeout: closing the WebSocket connection"
                    );
                    stats.idle_closed += 1;
                    ws.end_of_input();
                }
            }
            Err(e) => {
                if !ctx.registry.is_forced() {
                    debug!(conn = ctx.conn, "receive failed: {e}");
                    stats.conn_errors += 1;
                    stats.conn_error_kinds.count(&e);
                }
                ws.end_of_input();
            }
        }
        if ws.is_closing() {
            if !out.is_empty() {
                send(io, &out, ctx, stats);
            }
            break;
        }
    }
    io.finish();
    stats.ws.add(&ws.stats);
}

/// Sends `out`; false when the connection failed (counted).
fn send(io: &mut dyn Transport, out: &[u8], ctx: &ConnCtx<'_>, stats: &mut WorkerStats) -> bool {
    match io.write_all(out) {
        Ok(()) => {
            stats.bytes_out += out.len() as u64;
            ctx.registry.sent(out.len() as u64);
            true
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            if !ctx.registry.is_draining() {
                debug!(
                    conn = ctx.conn,
                    "write timeout: closing the WebSocket connection"
                );
                stats.write_timeouts += 1;
            }
            false
        }
        Err(e) => {
            if !ctx.registry.is_forced() {
                debug!(conn = ctx.conn, "send failed: {e}");
                stats.conn_errors += 1;
                stats.conn_error_kinds.count(&e);
            }
            false
        }
    }
}
