//! The UDP echo's thread where the port batches datagrams ([`Port::datagram_batches`]): one
//! socket, one multishot receive into the port's buffer pool, and an echo sent from the very
//! buffer each datagram landed in.
//!
//! The receive stays armed and brings every datagram waiting in the socket in one wait
//! (io_uring: multishot `recvmsg` into the provided-buffer ring; epoll: `recvmmsg`, 32 per
//! call). Every echo decided in one batch of completions is submitted before the next wait,
//! which hands them to the system together (io_uring: one `io_uring_enter`; epoll: `sendmmsg`).
//! A buffer is out of the pool from its datagram's arrival to its echo's completion, so the
//! server's memory is the pool, whatever arrives: when every buffer is busy the receive ends
//! (`ENOBUFS`), the datagrams wait in the socket's receive queue (where the system drops what
//! does not fit), and the receive is armed again as soon as a buffer is back.

use std::io;
use std::net::UdpSocket;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ringport_port::{
    is_cancelled, is_pool_empty, Completion, Op, Outcome, PoolBuf, Port, SharedFd, Token,
};
use tracing::warn;

use super::policy::Policy;
use super::stats::UdpStats;
use super::worker::{ERRORS_IN_A_ROW_MAX, TICK};
use super::{UdpConfig, SHUTDOWN};

/// The key of the receive's completions.
const RECEIVE: u64 = 0;
/// The key of the echoes' completions.
const ECHO: u64 = 1;

/// The batched echo's state on its thread.
pub(super) struct BatchWorker {
    port: Port,
    fd: SharedFd,
    policy: Policy,
    stats: UdpStats,
    /// The multishot receive, while it is armed.
    receiving: Option<Token>,
    stopping: bool,
    errors_in_a_row: u32,
    live: Arc<Mutex<UdpStats>>,
}

impl BatchWorker {
    /// The echo on `port`, which has its pool of `cfg.buffers` buffers and batches datagrams.
    pub(super) fn new(
        port: Port,
        socket: UdpSocket,
        cfg: &UdpConfig,
        live: Arc<Mutex<UdpStats>>,
    ) -> BatchWorker {
        debug_assert!(port.datagram_batches());
        BatchWorker {
            port,
            fd: Rc::new(socket.into()),
            policy: Policy::new(
                &cfg.deny_ports,
                cfg.max_pps_per_ip,
                cfg.limit_loopback,
                cfg.max_sources,
            ),
            stats: UdpStats {
                buffers: cfg.buffers as u64,
                ..UdpStats::default()
            },
            receiving: None,
            stopping: false,
            errors_in_a_row: 0,
            live,
        }
    }

    /// Serves until the shutdown is posted and every operation has come back.
    pub(super) fn run(mut self) -> io::Result<UdpStats> {
        let mut done: Vec<Completion> = Vec::with_capacity(256);
        let mut published = Instant::now();
        while !(self.stopping && self.port.in_flight() == 0) {
            // Armed again once a buffer is free: after the pool ran dry, or a receive ended.
            if self.receiving.is_none() && !self.stopping && self.port.buffers_available() > 0 {
                self.arm()?;
            }
            done.clear();
            self.port.wait(&mut done, Some(TICK))?;
            let now = Instant::now();
            for c in done.drain(..) {
                self.dispatch(c, now)?;
            }
            if now.duration_since(published) >= TICK {
                published = now;
                self.publish();
            }
        }
        self.publish();
        Ok(self.stats)
    }

    fn publish(&mut self) {
        let port = self.port.stats();
        self.stats.waits = port.waits;
        self.stats.completions = port.completions;
        *self.live.lock().unwrap_or_else(|p| p.into_inner()) = self.stats;
    }

    fn arm(&mut self) -> io::Result<()> {
        let op = Op::RecvFromMulti {
            fd: Rc::clone(&self.fd),
        };
        self.receiving = Some(self.port.submit(RECEIVE, op)?);
        Ok(())
    }

    fn dispatch(&mut self, c: Completion, now: Instant) -> io::Result<()> {
        match c.outcome {
            Outcome::Posted if c.key == SHUTDOWN => self.stop(),
            Outcome::ReceivedFromBuf {
                buf,
                result,
                truncated,
                from,
                more,
            } => {
                if !more {
                    self.receiving = None;
                }
                match (result, buf) {
                    (Ok(n), Some(buf)) => {
                        self.errors_in_a_row = 0;
                        self.datagram(buf, n, truncated, from, now);
                    }
                    (Ok(_), None) => self.stats.recv_errors += 1,
                    (Err(e), buf) => {
                        if let Some(buf) = buf {
                            self.port.give_back(buf);
                        }
                        // The pool ran dry: the receive is armed again once a buffer is back.
                        if !(is_cancelled(&e) || is_pool_empty(&e)) {
                            self.stats.recv_errors += 1;
                            self.errors_in_a_row += 1;
                            if self.errors_in_a_row >= ERRORS_IN_A_ROW_MAX {
                                return Err(e);
                            }
                        }
                    }
                }
            }
            Outcome::SentBufTo { buf, result } => {
                match result {
                    Ok(n) => {
                        self.stats.datagrams_out += 1;
                        self.stats.bytes_out += n as u64;
                    }
                    Err(_) => self.stats.send_errors += 1,
                }
                self.port.give_back(buf);
            }
            _ => {}
        }
        Ok(())
    }

    /// One datagram of `n` bytes in `buf`: echoed from the buffer to its sender, or counted
    /// by why not and its buffer given back.
    fn datagram(
        &mut self,
        buf: PoolBuf,
        n: usize,
        truncated: bool,
        from: Option<std::net::SocketAddr>,
        now: Instant,
    ) {
        self.stats.datagrams_in += 1;
        if truncated {
            self.stats.truncated += 1;
            self.port.give_back(buf);
            return;
        }
        self.stats.bytes_in += n as u64;
        let Some(to) = from else {
            self.stats.no_sender += 1;
            self.port.give_back(buf);
            return;
        };
        if let Err(why) = self.policy.admit(to, now) {
            self.stats.refused(why);
            self.port.give_back(buf);
            return;
        }
        let op = Op::SendBufTo {
            fd: Rc::clone(&self.fd),
            buf,
            to,
        };
        if let Err(e) = self.port.submit(ECHO, op) {
            self.stats.send_errors += 1;
            warn!("a UDP echo could not be submitted ({e}); serving with one buffer fewer");
        }
    }

    /// The graceful shutdown: the receive is cancelled, the echoes in flight finish.
    fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        if let Some(token) = self.receiving.take() {
            let _ = self.port.cancel(token);
        }
    }
}
