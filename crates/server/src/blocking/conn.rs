//! The echo loop of one connection on a blocking socket ([`serve_conn`]): the completion model's
//! rules (the [`Echo`] state machine) carried out with blocking reads and writes, the socket's own
//! idle and write timeouts, and the drain (on Windows, receives in slices that look at it).

use std::io::{self, Read, Write};
#[cfg(unix)]
use std::net::Shutdown as Direction;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
#[cfg(windows)]
use std::time::Instant;

use tracing::debug;

use super::Registry;
use crate::echo::{Echo, RecvResult, SendResult, Step};
use crate::summary::WorkerStats;

/// What a blocking connection needs to know besides its socket.
pub(crate) struct ConnCtx<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) buffer_size: usize,
    pub(crate) log_messages: bool,
    /// Printed by `--log-messages` as the worker (the thread serving the connection).
    pub(crate) worker: usize,
    pub(crate) conn: u64,
    pub(crate) peer: Option<SocketAddr>,
    /// Close a connection whose peer sends nothing for this long.
    pub(crate) idle_timeout: Option<Duration>,
    /// Close a connection whose echo cannot progress for this long.
    pub(crate) write_timeout: Option<Duration>,
    /// Serve TLS with this (`None`: plaintext).
    pub(crate) tls: Option<&'a crate::tls::Tls>,
    /// Speak WebSocket (over TLS when `tls` is set too).
    pub(crate) websocket: Option<crate::echo::websocket::WsConfig>,
}

/// Serves one connection until it closes (plaintext, TLS or WebSocket), then, during the drain,
/// [`linger`]s before the caller closes it. Returns the connection's counters (`closed` is 1).
pub(crate) fn serve_conn(stream: &TcpStream, ctx: &ConnCtx<'_>) -> WorkerStats {
    let stats = if let Some(tls) = ctx.tls {
        super::tls::serve_tls(stream, ctx, tls)
    } else if let Some(ws) = ctx.websocket {
        super::ws::serve_ws(stream, ctx, ws)
    } else {
        serve_plain(stream, ctx)
    };
    if ctx.registry.is_draining() {
        linger(stream, ctx.registry);
    }
    stats
}

/// A connection the drain ends, before it is closed: closing with input unread (a peer still
/// sending when the drain began) makes the kernel reset the connection, which drops the output
/// still queued, the echo of what was received. So, until the drain deadline at most:
///
/// - Unix: until the peer has acknowledged everything it was sent (shutting the write side
///   first would not do: with the read side shut by the drain, data arriving then resets at
///   once);
/// - Windows, which cannot tell what was acknowledged (and whose drain leaves the read side
///   open): the FIN, behind the echo, then the peer's bytes read and dropped until its end
///   (the graceful close the Winsock documentation describes), or until it has been quiet
///   for [`LINGER_QUIET`](crate::shutdown::LINGER_QUIET).
#[cfg(unix)]
fn linger(stream: &TcpStream, registry: &Registry) {
    while !registry.is_forced() && ringport_port::os::unacked_bytes(stream).is_ok_and(|n| n > 0) {
        std::thread::sleep(LINGER_POLL);
    }
}

/// See the Unix version; the linger ends too once the peer has been quiet for
/// [`LINGER_QUIET`](crate::shutdown::LINGER_QUIET).
#[cfg(windows)]
fn linger(mut stream: &TcpStream, registry: &Registry) {
    use crate::shutdown::LINGER_QUIET;
    if stream.shutdown(std::net::Shutdown::Write).is_err()
        || stream.set_read_timeout(Some(LINGER_QUIET / 4)).is_err()
    {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut heard = Instant::now();
    while !registry.is_forced() && heard.elapsed() < LINGER_QUIET {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => heard = Instant::now(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// How often [`linger`] looks at what the peer has acknowledged.
#[cfg(unix)]
const LINGER_POLL: Duration = Duration::from_millis(2);

/// Serves one plaintext connection until it closes, with the completion model's rules (the
/// [`Echo`] state machine): one buffer, no receive before the previous chunk is fully echoed,
/// partial writes continued, close after EOF once everything is echoed, errors end this
/// connection only, and the drain of [`Registry::drain`].
fn serve_plain(stream: &TcpStream, ctx: &ConnCtx<'_>) -> WorkerStats {
    let mut stats = WorkerStats {
        closed: 1,
        ..WorkerStats::default()
    };
    // Echo replies are small and immediate: do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    // The timeouts are the socket's own: a receive or send that waits longer fails with
    // EAGAIN. Zero would mean "no timeout" to the kernel: it is filtered out.
    let idle_timeout = ctx.idle_timeout.filter(|d| !d.is_zero());
    let write_timeout = ctx.write_timeout.filter(|d| !d.is_zero());
    let _ = stream.set_read_timeout(idle_timeout);
    let _ = stream.set_write_timeout(write_timeout);
    let mut buf = vec![0u8; ctx.buffer_size.max(1)];
    #[cfg(unix)]
    let mut reader = stream;
    let mut writer = stream;
    let mut drained = false;
    let (mut echo, mut step) = Echo::start(ctx.registry.is_draining());
    loop {
        step = match step {
            Step::Recv { .. } => {
                if !drained && ctx.registry.is_draining() {
                    // Idempotent with the drain's own shutdown; done here too so that this
                    // receive cannot wait, whichever thread got to the socket first.
                    drained = true;
                    echo.drain();
                    #[cfg(unix)]
                    let _ = stream.shutdown(Direction::Read);
                }
                #[cfg(unix)]
                let read = reader.read(&mut buf);
                #[cfg(windows)]
                let read = read_in_slices(stream, &mut buf, ctx.registry, idle_timeout, drained);
                let result = match read {
                    Ok(0) => RecvResult::Eof,
                    Ok(n) => {
                        stats.bytes_in += n as u64;
                        ctx.registry.received(n as u64);
                        if ctx.log_messages {
                            crate::messages::log_message(ctx.worker, ctx.conn, ctx.peer, &buf[..n]);
                        }
                        RecvResult::Data(n)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => RecvResult::Cancelled,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        if idle_timeout.is_some() && !ctx.registry.is_draining() {
                            // SO_RCVTIMEO: the peer sent nothing for the idle timeout.
                            debug!(conn = ctx.conn, "idle timeout: closing the connection");
                            stats.idle_closed += 1;
                            RecvResult::Failed
                        } else {
                            RecvResult::WouldBlock
                        }
                    }
                    Err(e) => {
                        if !ctx.registry.is_forced() {
                            debug!(conn = ctx.conn, "receive failed: {e}");
                            stats.conn_errors += 1;
                            stats.conn_error_kinds.count(&e);
                        }
                        RecvResult::Failed
                    }
                };
                echo.on_recv(result)
            }
            Step::Send { at, len } => match writer.write(&buf[at..len]) {
                Ok(n) => {
                    stats.bytes_out += n as u64;
                    ctx.registry.sent(n as u64);
                    echo.on_send(SendResult::Sent(n))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if write_timeout.is_some()
                        && matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                {
                    // SO_SNDTIMEO: the peer did not read its echo for the write timeout.
                    debug!(conn = ctx.conn, "write timeout: closing the connection");
                    stats.write_timeouts += 1;
                    echo.on_send(SendResult::Failed)
                }
                Err(e) => {
                    if !ctx.registry.is_forced() {
                        debug!(conn = ctx.conn, "send failed: {e}");
                        stats.conn_errors += 1;
                        stats.conn_error_kinds.count(&e);
                    }
                    echo.on_send(SendResult::Failed)
                }
            },
            Step::Close => return stats,
        };
    }
}

/// How long a receive waits at a time on Windows before looking at the drain (see the
/// `blocking` module).
#[cfg(windows)]
const RECV_SLICE: Duration = Duration::from_millis(100);

/// A receive on Windows: once `drained`, without waiting (the bytes queued, or "would block");
/// before, in slices of [`RECV_SLICE`], ending with `Interrupted` (a cancelled receive: the
/// caller looks again) when the drain starts and with `TimedOut` after `idle_timeout`.
#[cfg(windows)]
pub(super) fn read_in_slices(
    mut stream: &TcpStream,
    buf: &mut [u8],
    registry: &Registry,
    idle_timeout: Option<Duration>,
    drained: bool,
) -> io::Result<usize> {
    if drained {
        stream.set_nonblocking(true)?;
        let read = stream.read(buf);
        stream.set_nonblocking(false)?;
        return read;
    }
    let start = Instant::now();
    loop {
        let left = idle_timeout.map_or(RECV_SLICE, |t| t.saturating_sub(start.elapsed()));
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left.min(RECV_SLICE)))?;
        match stream.read(buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if registry.is_draining() {
                    return Err(io::ErrorKind::Interrupted.into());
                }
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::Shutdown as Direction;
    use std::time::Duration;

    use crate::blocking::test_support::{pair, serve_in_thread};
    #[cfg(target_os = "linux")]
    use crate::blocking::test_support::{wait_until_blocked_in, RECEIVE};
    use crate::blocking::Registry;

    #[test]
    fn echoes_in_bounded_chunks_and_closes_after_a_half_close() {
        let reg = Registry::new(10, 0);
        let (mut client, server) = pair();
        let t = serve_in_thread("rp-chunks", &reg, server, 64);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut r = client.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            got
        });
        client.write_all(&data).unwrap();
        client.shutdown(Direction::Write).unwrap();
        assert_eq!(reader.join().unwrap(), data);
        let stats = t.join().unwrap();
        assert_eq!((stats.bytes_in, stats.bytes_out), (100_000, 100_000));
        assert_eq!((stats.closed, stats.conn_errors), (1, 0));
    }

    #[test]
    fn a_drain_wakes_a_blocked_receive_and_echoes_what_was_queued() {
        let reg = Registry::new(10, 0);
        let (mut idle, server) = pair();
        let t_idle = serve_in_thread("rp-idle", &reg, server, 64);
        idle.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        idle.read_exact(&mut back).unwrap();
        // The server thread is blocked in its next receive (on Linux, which the drain must wake;
        // elsewhere a receive waits in slices and looks at the drain between them), then drain.
        #[cfg(target_os = "linux")]
        wait_until_blocked_in("rp-idle", &RECEIVE);
        assert_eq!(reg.drain(), 1);
        let mut rest = Vec::new();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        idle.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(t_idle.join().unwrap().bytes_out, 4);

        // A connection registered while draining echoes what it was sent, then closes.
        let (mut late, server) = pair();
        late.write_all(b"late bytes").unwrap();
        // Its bytes are at the server's socket before it is served.
        let mut peeked = [0u8; 10];
        while server.peek(&mut peeked).unwrap() < peeked.len() {
            std::thread::yield_now();
        }
        let t_late = serve_in_thread("rp-late", &reg, server, 64);
        let mut got = Vec::new();
        late.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        late.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"late bytes");
        assert_eq!(t_late.join().unwrap().conn_errors, 0);
    }
}
