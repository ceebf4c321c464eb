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
//!
//! # Segmentation offload (Linux)
//!
//! Where the buffers hold 64 KiB and the system takes segmented sends, the socket has
//! `UDP_GRO` on: one receive may then hold several datagrams of one sender, all of one segment
//! size but the last, which the system coalesced (one packet through its UDP path instead of
//! one per datagram). They are echoed as they came, in one send with that segment size
//! (`UDP_SEGMENT`), which the system splits at the same boundaries: every datagram is echoed
//! whole. The rules hold per datagram: each is counted, and the policy admits each (those of
//! one receive share a sender, so the admitted ones are the first ones, and only they are
//! echoed). Where a segmented send is refused (a route that cannot segment), the echo sends
//! one datagram per send from then on, starting with the refused one's.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ringport_port::{
    is_cancelled, is_pool_empty, Completion, Op, Outcome, PoolBuf, Port, SharedFd, Token,
};
use tracing::{info, warn};

use super::policy::Policy;
use super::stats::UdpStats;
use super::worker::{ERRORS_IN_A_ROW_MAX, TICK};
use super::{UdpConfig, DATAGRAM_MAX, SHUTDOWN};

/// The key of the receive's completions.
const RECEIVE: u64 = 0;
/// The key of the echoes' completions.
const ECHO: u64 = 1;

/// The echo a pool buffer carries while it is out: where to, the segment size of its send in
/// flight (0: one datagram), and, when its datagrams go one per send (`step` bytes each), where
/// the next one starts in the buffer and where the last ends.
#[derive(Debug, Clone, Copy)]
struct Echo {
    to: SocketAddr,
    segment: u16,
    step: u16,
    next: u32,
    end: u32,
}

/// The datagrams `len` bytes of `segment`-byte segments hold (one when `segment` is 0).
fn segments(len: usize, segment: u16) -> u64 {
    match segment {
        0 => 1,
        s => len.div_ceil(usize::from(s)).max(1) as u64,
    }
}

/// Whether a segmented send failed because the route cannot segment (`EIO`: no checksum
/// offload on the way) or the segment does not fit it (`EINVAL`).
fn segmentation_refused(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Whether the echo on `socket` (buffers of `room` bytes) takes coalesced receives and sends
/// segmented echoes: asked when `wanted`, on Linux, where the buffers hold 64 KiB (else a
/// coalesced receive would be cut) and the system knows both options; `UDP_GRO` is then on.
fn offload(socket: &UdpSocket, room: usize, wanted: bool) -> bool {
    use ringport_port::os::{udp_gro, udp_gso};
    if !wanted || room < DATAGRAM_MAX || !udp_gso(socket) {
        return false;
    }
    match udp_gro(socket, true) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!("the UDP socket receives one datagram at a time: {e}");
            false
        }
    }
}

/// The batched echo's state on its thread.
pub(super) struct BatchWorker {
    port: Port,
    fd: SharedFd,
    policy: Policy,
    stats: UdpStats,
    /// Receives coalesce datagrams (`UDP_GRO` is on).
    gro: bool,
    /// Echoes of several datagrams go out as one segmented send (else one send per datagram).
    segmented: bool,
    /// The echo each pool buffer carries, by buffer id (made once: nothing per datagram).
    echoes: Vec<Echo>,
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
        let gro = offload(&socket, port.datagram_room(), cfg.offload);
        let echo = Echo {
            to: SocketAddr::from(([0, 0, 0, 0], 0)),
            segment: 0,
            step: 0,
            next: 0,
            end: 0,
        };
        BatchWorker {
            echoes: vec![echo; port.buffer_count()],
            gro,
            segmented: gro,
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

    /// Whether receives coalesce datagrams and echoes are segmented (Linux UDP GRO and GSO).
    pub(super) fn offloads(&self) -> bool {
        self.gro
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
                segment,
                more,
            } => {
                if !more {
                    self.receiving = None;
                }
                match (result, buf) {
                    (Ok(n), Some(buf)) => {
                        self.errors_in_a_row = 0;
                        self.datagram(buf, n, truncated, from, segment, now);
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
            Outcome::SentBufTo { buf, result } => self.sent(buf, result),
            _ => {}
        }
        Ok(())
    }

    /// An echo's send finished: counted by the datagrams it carried; the buffer's next
    /// datagram sent when they go one per send, else the buffer given back.
    fn sent(&mut self, buf: PoolBuf, result: io::Result<usize>) {
        let echo = self.echoes[usize::from(buf.id())];
        let carried = segments(buf.len(), echo.segment);
        match &result {
            Err(e) if echo.segment > 0 && segmentation_refused(e) => {
                if self.segmented {
                    self.segmented = false;
                    info!("a segmented UDP echo was refused ({e}); echoing one datagram per send");
                }
                // The same datagrams again, one per send, from the first.
                self.one_by_one(buf, echo.to, echo.segment);
                return;
            }
            Ok(_) if echo.segment > 0 => self.stats.segmented_out += 1,
            _ => {}
        }
        self.stats.sent(&result, carried);
        if echo.step > 0 && echo.next < echo.end {
            self.send_next(buf, echo);
        } else {
            self.port.give_back(buf);
        }
    }

    /// Echoes the datagrams `buf` holds (`step` bytes each, the last may be shorter) to `to`
    /// one per send, from the first.
    fn one_by_one(&mut self, buf: PoolBuf, to: SocketAddr, step: u16) {
        let echo = Echo {
            to,
            segment: 0,
            step,
            next: buf.start() as u32,
            end: (buf.start() + buf.len()) as u32,
        };
        self.send_next(buf, echo);
    }

    /// Sends the datagram of `buf` at `echo.next` (one step long, or to the end).
    fn send_next(&mut self, mut buf: PoolBuf, mut echo: Echo) {
        let len = u32::from(echo.step).min(echo.end - echo.next);
        let inside = self
            .port
            .set_window(&mut buf, echo.next as usize, len as usize);
        debug_assert!(inside, "a datagram inside its buffer");
        echo.next += len;
        self.echo(buf, echo);
    }

    /// `n` bytes in `buf`, from `from`: one datagram, or several of `segment` bytes (the last
    /// may be shorter) that the system coalesced. Echoed from the buffer to their sender as
    /// they came, or counted by why not and the buffer given back.
    fn datagram(
        &mut self,
        mut buf: PoolBuf,
        n: usize,
        truncated: bool,
        from: Option<SocketAddr>,
        segment: u16,
        now: Instant,
    ) {
        let count = segments(n, segment);
        let Some((to, admitted)) =
            self.policy
                .judge(&mut self.stats, n, count, truncated, from, now)
        else {
            self.port.give_back(buf);
            return;
        };
        if admitted < count {
            buf.narrow(0, admitted as usize * usize::from(segment));
        }
        let segment = if admitted > 1 { segment } else { 0 };
        if segment > 0 && !self.segmented {
            self.one_by_one(buf, to, segment);
            return;
        }
        let echo = Echo {
            to,
            segment,
            step: 0,
            next: 0,
            end: 0,
        };
        self.echo(buf, echo);
    }

    /// Sends `buf` as `echo` says; a send the port refuses is counted and its buffer lost to
    /// the pool (the port keeps what it refused).
    fn echo(&mut self, buf: PoolBuf, echo: Echo) {
        // What is lost if the port refuses: this send's datagrams and those after it.
        let after = (echo.end - echo.next) as usize;
        let carried = segments(buf.len(), echo.segment)
            + if after > 0 {
                segments(after, echo.step)
            } else {
                0
            };
        self.echoes[usize::from(buf.id())] = echo;
        let op = Op::SendBufTo {
            fd: Rc::clone(&self.fd),
            buf,
            to: echo.to,
            segment: echo.segment,
        };
        if let Err(e) = self.port.submit(ECHO, op) {
            self.stats.send_errors += carried;
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use ringport_port::{BackendChoice, PortConfig};

    use super::*;

    /// Where a segmented send is refused the echo sends one datagram per send: forced here (the
    /// loopback takes every segmented send), the datagrams of a coalesced receive still go back
    /// each whole, in order, counted one by one.
    #[test]
    fn one_datagram_per_send_echoes_a_coalesced_receive_exactly() {
        for backend in [BackendChoice::Uring, BackendChoice::Epoll] {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let addr = socket.local_addr().unwrap();
            let (tx, rx) = mpsc::channel();
            let server = std::thread::spawn(move || {
                let cfg = UdpConfig::default();
                let config = PortConfig {
                    backend,
                    ..PortConfig::default()
                };
                let port = super::super::batching(Port::new(&config).unwrap(), &cfg);
                let live = Arc::new(Mutex::new(UdpStats::default()));
                let mut worker = BatchWorker::new(port, socket, &cfg, live);
                assert!(worker.offloads(), "{backend}: GRO on");
                worker.segmented = false;
                tx.send(worker.port.poster()).unwrap();
                worker.run().unwrap()
            });
            let poster = rx.recv().unwrap();
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let sent: Vec<Vec<u8>> = (0..6u8)
                .map(|d| vec![d; if d < 5 { 1000 } else { 300 }])
                .collect();
            ringport_port::os::udp_segment(&c, 1000).unwrap();
            c.send_to(&sent.concat(), addr).unwrap();
            let mut back = vec![0u8; 65_536];
            for (i, d) in sent.iter().enumerate() {
                let (n, from) = c.recv_from(&mut back).expect("an echo within 5 s");
                assert_eq!(from, addr);
                assert_eq!(&back[..n], &d[..], "{backend}: echo {i}");
            }
            poster.post(SHUTDOWN).unwrap();
            let stats = server.join().unwrap();
            assert_eq!(
                (stats.datagrams_in, stats.datagrams_out, stats.bytes_out),
                (6, 6, 5300),
                "{backend}: {stats:?}"
            );
            assert_eq!(
                (stats.coalesced_in, stats.segmented_out),
                (1, 0),
                "{backend}: {stats:?}"
            );
        }
    }
}
