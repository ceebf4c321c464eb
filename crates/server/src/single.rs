//! The single model: the article's socket1, one client at a time.
//!
//! One thread accepts a client on a blocking listener and serves it until it closes, then
//! accepts the next; meanwhile the other clients wait in the listen backlog (their handshake is
//! done by the kernel, their first bytes wait in their socket buffers). The echo rules are the
//! completion model's (`blocking::serve_conn`).
//!
//! # Shutdown order
//!
//! 1. [`Shutdown::trigger`](crate::Shutdown::trigger) marks the drain, gives the connection
//!    being served `SHUT_RD` (a blocked receive returns; no receive waits from now on) and wakes
//!    a blocked `accept` with one connection to the server's own address (see the `blocking` module).
//! 2. The client being served gets the echo of what it had sent, then is closed.
//! 3. The clients still in the backlog are accepted one by one without waiting, and each gets
//!    the echo of what it had sent before the shutdown, then is closed; then the listener is
//!    closed.
//! 4. At the drain deadline the supervisor shuts the connection being served down both ways and
//!    counts a forced close; the clients left in the backlog are reset when the listener closes.
//! 5. The summary is returned.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use crate::blocking::{self, BlockingModel, ConnCtx, Refused, Registry};
use crate::shutdown::Shutdown;
use crate::summary::WorkerStats;
use crate::{Model, Running, ServeConfig, ServeError};

/// Binds the listener and starts the serving thread.
pub fn start(cfg: &ServeConfig, shutdown: Shutdown) -> Result<Running, ServeError> {
    let cfg = cfg.clone();
    blocking::start(
        &cfg.clone(),
        shutdown,
        Model::Single,
        1,
        0,
        move |registry| Single { cfg, registry },
    )
}

struct Single {
    cfg: ServeConfig,
    registry: Arc<Registry>,
}

impl BlockingModel for Single {
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, stats: &mut WorkerStats) {
        let stream = Arc::new(stream);
        let mut token = match self.registry.register(&stream) {
            Ok(token) => token,
            Err(Refused::Forced | Refused::Full | Refused::PerIp) => {
                stats.forced_closes += 1;
                return;
            }
        };
        let mut ctx = ConnCtx {
            registry: &self.registry,
            buffer_size: self.cfg.buffer_size,
            log_messages: self.cfg.log_messages,
            worker: 0,
            conn: token.id(),
            peer: Some(peer),
            idle_timeout: self.cfg.idle_timeout,
            write_timeout: self.cfg.write_timeout,
            tls: self.cfg.tls.as_ref(),
            websocket: self.cfg.websocket,
        };
        let conn_stats =
            blocking::serve_accepted(&stream, &mut ctx, &mut token, self.cfg.proxy_protocol);
        stats.add(&conn_stats);
        drop(stream);
        drop(token);
    }

    fn finish(self, _all_closed: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn clients_wait_their_turn_and_the_backlog_is_drained_at_shutdown() {
        let shutdown = Shutdown::new();
        let cfg = ServeConfig {
            port: 0,
            model: crate::Model::Single,
            ..ServeConfig::default()
        };
        let running = start(&cfg, shutdown.clone()).unwrap();
        let addr = running.local_addr();
        let connect = || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        };
        let mut first = connect();
        first.write_all(b"one").unwrap();
        let mut back = [0u8; 3];
        first.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"one");
        // The second client is connected but not served while the first is open.
        let mut second = connect();
        second.write_all(b"two").unwrap();
        second
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(
            second.read(&mut back).is_err(),
            "served while another is open"
        );
        // At shutdown, both get what they sent, then EOF.
        shutdown.trigger();
        second
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut rest = Vec::new();
        first.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        second.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"two");
        let summary = running.wait().unwrap();
        let t = summary.total();
        assert_eq!(summary.model, "single");
        assert_eq!((t.accepted, t.closed, t.bytes_out), (2, 2, 6), "{t:?}");
    }
}
