//! `--proxy-protocol` in the blocking models ([`serve_accepted`]): a connection's PROXY header
//! read on its blocking socket, exactly what [`step`] still needs each time (nothing behind the
//! header is taken), within the header timeout; then the connection counts under
//! `--max-per-ip` from the header's address and is served as any ([`serve_conn`]).

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tracing::debug;

use super::conn::{serve_conn, ConnCtx};
use super::registry::Registered;
use crate::proxy::{step, ProxyStats, Step, MAX_HEADER};
use crate::summary::WorkerStats;

/// How long a header read waits at a time before it looks at the drain.
const SLICE: Duration = Duration::from_millis(100);

/// Serves a connection just accepted and registered (`token`): with `--proxy-protocol`
/// (`proxy`: its timeout), its header first; `ctx.peer` becomes the header's address, which
/// `token` then counts under `--max-per-ip`. Returns the connection's counters.
pub(crate) fn serve_accepted(
    stream: &TcpStream,
    ctx: &mut ConnCtx<'_>,
    token: &mut Registered,
    proxy: Option<Duration>,
) -> WorkerStats {
    let Some(timeout) = proxy else {
        return serve_conn(stream, ctx);
    };
    let mut stats = WorkerStats::default();
    match read_header(stream, ctx, timeout, &mut stats.proxy) {
        Ok(peer) => {
            if let Some(peer) = peer {
                ctx.peer = Some(peer);
            }
            if !token.readdress(ctx.peer.map(|p| p.ip())) {
                stats.refused_per_ip += 1;
                return stats;
            }
            let mut served = serve_conn(stream, ctx);
            served.add(&stats);
            served
        }
        Err(e) => {
            stats.closed = 1;
            if let Some(e) = e {
                stats.conn_errors += 1;
                stats.conn_error_kinds.count(&e);
            }
            stats
        }
    }
}

/// Reads the header: `Ok` with the address it gives (`None`: the connection's own stands), or
/// `Err` once counted in `stats` (with the error, if the socket failed).
fn read_header(
    mut stream: &TcpStream,
    ctx: &ConnCtx<'_>,
    timeout: Duration,
    stats: &mut ProxyStats,
) -> Result<Option<std::net::SocketAddr>, Option<io::Error>> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    let result = loop {
        let n = match step(&got) {
            Step::Need(n) => n.min(buf.len()).min(MAX_HEADER),
            Step::Done {
                header, version, ..
            } => {
                stats.read(&header, version);
                break Ok(header.source());
            }
            Step::Bad(bad) => {
                debug!(conn = ctx.conn, "PROXY header refused: {bad}");
                stats.refused(bad);
                break Err(None);
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            stats.timeout += 1;
            break Err(None);
        }
        if let Err(e) = stream.set_read_timeout(Some(left.min(SLICE))) {
            break Err(Some(e));
        }
        match stream.read(&mut buf[..n]) {
            Ok(0) => {
                // Gone before its header was whole (nothing counted if it sent nothing).
                if !got.is_empty() {
                    stats.incomplete += 1;
                }
                break Err(None);
            }
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // The drain: a header that has not come will not.
                if ctx.registry.is_draining() {
                    stats.incomplete += 1;
                    break Err(None);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(Some(e)),
        }
    };
    let _ = stream.set_read_timeout(None);
    result
}
