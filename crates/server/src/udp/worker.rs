//! The UDP echo's thread where the port does not batch datagrams (IOCP, io_uring on kernels
//! without multishot `recvmsg`): one socket on one completion port, and a fixed set of buffers,
//! each either waiting for a datagram (a receive in flight: as many `WSARecvFrom`/`recvmsg` in
//! flight as buffers) or carrying its echo (a send in flight).
//!
//! A datagram's buffer is echoed as it is (no copy) to the address it came from, and receives
//! again once the echo is sent. Every echo decided in one batch of completions is submitted
//! before the next wait, which hands them all to the system at once (one `io_uring_enter`).
//! Nothing else is allocated: a flood finds every buffer busy and waits in the socket's receive
//! queue, where the system drops what does not fit; the server does not grow.

use std::io;
use std::net::UdpSocket;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringport_port::{is_cancelled, Completion, Op, Outcome, Port, SharedFd, Token};
use tracing::warn;

use super::policy::Policy;
use super::stats::UdpStats;
use super::{UdpConfig, SHUTDOWN};

/// How often the worker publishes its counters (and looks at the clock when idle).
pub(super) const TICK: Duration = Duration::from_secs(1);
/// Failed receives in a row (no datagram between them) after which the echo stops: the
/// socket is broken, not the network noisy.
pub(super) const ERRORS_IN_A_ROW_MAX: u32 = 10_000;

/// The echo's state on its thread.
pub(super) struct Worker {
    port: Port,
    fd: SharedFd,
    policy: Policy,
    stats: UdpStats,
    /// The receive in flight on each buffer, to cancel at shutdown.
    receiving: Vec<Option<Token>>,
    /// Bytes a buffer holds: the largest datagram echoed.
    capacity: usize,
    stopping: bool,
    errors_in_a_row: u32,
    live: Arc<Mutex<UdpStats>>,
}

impl Worker {
    pub(super) fn new(
        port: Port,
        socket: UdpSocket,
        cfg: &UdpConfig,
        live: Arc<Mutex<UdpStats>>,
    ) -> Worker {
        let fd: SharedFd = Rc::new(socket.into());
        Worker {
            port,
            fd,
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
            receiving: vec![None; cfg.buffers],
            capacity: cfg.buffer_size,
            stopping: false,
            errors_in_a_row: 0,
            live,
        }
    }

    /// Serves until the shutdown is posted and every operation has come back.
    pub(super) fn run(mut self) -> io::Result<UdpStats> {
        for i in 0..self.receiving.len() {
            self.receive(i, Vec::with_capacity(self.capacity));
        }
        let mut done: Vec<Completion> = Vec::with_capacity(self.receiving.len() * 2);
        let mut published = Instant::now();
        while !(self.stopping && self.port.in_flight() == 0) {
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

    /// Puts buffer `i` back to receiving (unless the echo is stopping).
    fn receive(&mut self, i: usize, mut buf: Vec<u8>) {
        if self.stopping {
            return;
        }
        buf.clear();
        let op = Op::RecvFrom {
            fd: Rc::clone(&self.fd),
            buf,
        };
        match self.port.submit(i as u64, op) {
            Ok(token) => self.receiving[i] = Some(token),
            Err(e) => {
                // The buffer went with the operation: one fewer from now on, said once each.
                self.stats.recv_errors += 1;
                warn!("a UDP receive could not be submitted ({e}); serving with one buffer fewer");
            }
        }
    }

    fn dispatch(&mut self, c: Completion, now: Instant) -> io::Result<()> {
        let i = c.key as usize;
        match c.outcome {
            Outcome::Posted if c.key == SHUTDOWN => self.stop(),
            Outcome::ReceivedFrom {
                buf,
                result,
                truncated,
                from,
                ..
            } => {
                self.receiving[i] = None;
                let n = match result {
                    Ok(n) => n,
                    Err(e) if is_cancelled(&e) => return Ok(()),
                    Err(e) => {
                        self.stats.recv_errors += 1;
                        self.errors_in_a_row += 1;
                        if self.errors_in_a_row >= ERRORS_IN_A_ROW_MAX {
                            return Err(e);
                        }
                        self.receive(i, buf);
                        return Ok(());
                    }
                };
                self.errors_in_a_row = 0;
                let Some((to, _)) = self
                    .policy
                    .judge(&mut self.stats, n, 1, truncated, from, now)
                else {
                    self.receive(i, buf);
                    return Ok(());
                };
                let op = Op::SendTo {
                    fd: Rc::clone(&self.fd),
                    buf,
                    to,
                };
                if let Err(e) = self.port.submit(i as u64, op) {
                    self.stats.send_errors += 1;
                    warn!("a UDP echo could not be submitted ({e}); serving with one buffer fewer");
                }
            }
            Outcome::SentTo { buf, result } => {
                self.stats.sent(&result, 1);
                self.receive(i, buf);
            }
            _ => {}
        }
        Ok(())
    }

    /// The graceful shutdown: the receives are cancelled, the echoes in flight finish.
    fn stop(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for token in self.receiving.iter_mut().filter_map(Option::take) {
            let _ = self.port.cancel(token);
        }
    }
}
