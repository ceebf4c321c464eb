//! The UDP echo (RFC 862's other half): `serve --udp` beside the TCP server, on the same port
//! number, or `serve --udp-only`.
//!
//! One thread owns the UDP socket and a completion port (io_uring, epoll or IOCP, as the TCP
//! server's backend is chosen), with a fixed set of buffers of `--udp-buffer-size` bytes: each
//! is either waiting for a datagram or carrying its echo, so the server's memory is those
//! buffers whatever arrives. A datagram is echoed whole, byte for byte, to the address it came
//! from; one longer than the buffer (cut by the system) is counted as truncated, never echoed
//! cut. Being a classic reflector, the echo is safe by default ([`policy`]): no echo to the
//! ports of echo-like services, a rate per source address, loopback unless told otherwise (the
//! server's `--bind`). Every datagram not echoed is counted by cause ([`UdpStats`]).
//!
//! # Modules
//!
//! - this one: the settings ([`UdpConfig`]) and start-up, alone or beside the TCP server;
//! - `batch`: the thread's loop where the port batches datagrams (multishot `recvmsg`,
//!   `recvmmsg`/`sendmmsg`), echoing from its buffer pool;
//! - `worker`: the loop where it does not (IOCP, older kernels), one operation per datagram;
//! - [`policy`]: the reflector rules;
//! - `stats`: the counters and their summary lines.

mod batch;
pub mod policy;
mod stats;
mod worker;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use ringport_port::{BackendChoice, Port, PortConfig, Poster, DGRAM_HEADROOM};
use tracing::info;

pub use stats::UdpStats;

use crate::summary::{Live, Snapshot, Summary, WorkerStats};
use crate::{Model, Ready, Running, ServeConfig, ServeError, Shutdown};

/// The value posted to the UDP echo's port to start its graceful shutdown.
const SHUTDOWN: u64 = u64::MAX;

/// The settings of the UDP echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// Serve UDP alone, without the TCP server (`--udp-only`).
    pub only: bool,
    /// Bytes a buffer holds: the longest datagram echoed; a longer one is counted as truncated.
    pub buffer_size: usize,
    /// Buffers: the most datagrams the echo holds at once (its memory is these buffers).
    pub buffers: usize,
    /// Source ports never echoed to, beyond [`policy::DENIED_PORTS`].
    pub deny_ports: Vec<u16>,
    /// Datagrams per second echoed per source address; 0: no limit.
    pub max_pps_per_ip: u32,
    /// Whether the rate applies to loopback sources (false by default, as for TCP's
    /// `--max-per-ip`; the CLI sets it when the rate is given explicitly).
    pub limit_loopback: bool,
    /// The most source addresses whose rate is tracked at once.
    pub max_sources: usize,
    /// Receive and send datagrams in batches where the port can ([`Port::datagram_batches`]);
    /// false: one operation per datagram, the path taken where it cannot.
    pub batched: bool,
    /// With batches on Linux, and buffers of 64 KiB: receive datagrams coalesced (`UDP_GRO`)
    /// and echo them in segmented sends (`UDP_SEGMENT`) where the system allows; false: one
    /// datagram per receive and per send.
    pub offload: bool,
}

/// The longest UDP payload the length field allows (65,507 bytes over IPv4, 65,527 over IPv6
/// are what the networks carry).
pub const DATAGRAM_MAX: usize = 65_535;

impl Default for UdpConfig {
    fn default() -> UdpConfig {
        UdpConfig {
            only: false,
            buffer_size: DATAGRAM_MAX,
            buffers: 64,
            deny_ports: Vec::new(),
            max_pps_per_ip: 1000,
            limit_loopback: false,
            max_sources: 65_536,
            batched: true,
            offload: true,
        }
    }
}

/// A running UDP echo.
struct UdpServer {
    addr: SocketAddr,
    backend: ringport_port::Backend,
    detail: String,
    live: Arc<Mutex<UdpStats>>,
    join: std::thread::JoinHandle<Result<UdpStats, ServeError>>,
}

impl UdpServer {
    /// Binds `addr` and starts the echo's thread; returns once its port is ready.
    fn start(
        addr: SocketAddr,
        cfg: &UdpConfig,
        backend: BackendChoice,
        shutdown: &Shutdown,
    ) -> Result<UdpServer, ServeError> {
        let socket = UdpSocket::bind(addr).map_err(|e| crate::listener::bind_error(addr, e))?;
        widen_buffers(&socket);
        let addr = socket
            .local_addr()
            .map_err(|e| ServeError::Io("cannot read the UDP socket's address".into(), e))?;
        let resolved = backend
            .resolve()
            .map_err(|e| ServeError::Port(ringport_port::PortError::UringUnavailable(e)))?;
        let live = Arc::new(Mutex::new(UdpStats::default()));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(Poster, String), ServeError>>();
        let (cfg, thread_live) = (cfg.clone(), Arc::clone(&live));
        let join = std::thread::Builder::new()
            .name("ringport-udp".into())
            .spawn(move || {
                let config = PortConfig {
                    backend: resolved.into(),
                    ..PortConfig::default()
                };
                let port = match Port::new(&config) {
                    Ok(port) => batching(port, &cfg),
                    Err(e) => {
                        let _ = ready_tx.send(Err(ServeError::Port(e)));
                        return Ok(UdpStats::default());
                    }
                };
                let poster = port.poster();
                let served = if port.datagram_batches() {
                    let describe = port.describe();
                    let worker = batch::BatchWorker::new(port, socket, &cfg, thread_live);
                    let detail = if worker.offloads() {
                        format!("{describe}; datagrams in batches; GRO/GSO")
                    } else {
                        format!("{describe}; datagrams in batches")
                    };
                    let _ = ready_tx.send(Ok((poster, detail)));
                    worker.run()
                } else {
                    let detail = format!("{}; one operation per datagram", port.describe());
                    let _ = ready_tx.send(Ok((poster, detail)));
                    worker::Worker::new(port, socket, &cfg, thread_live).run()
                };
                served.map_err(|e| ServeError::Io("the UDP echo failed".into(), e))
            })
            .map_err(|e| ServeError::Io("cannot start the UDP thread".into(), e))?;
        let (poster, detail) = match ready_rx.recv() {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => {
                let _ = join.join();
                return Err(e);
            }
            Err(_) => return Err(ServeError::WorkerPanicked),
        };
        shutdown.on_trigger(move || {
            let _ = poster.post(SHUTDOWN);
        });
        info!(%addr, backend = %detail, "UDP echo ready");
        Ok(UdpServer {
            addr,
            backend: resolved,
            detail,
            live,
            join,
        })
    }

    fn wait(self) -> Result<UdpStats, ServeError> {
        self.join.join().map_err(|_| ServeError::WorkerPanicked)?
    }
}

/// What the echo asks of its socket's kernel queues, each way: 4 MiB (the kernel grants at most
/// `net.core.rmem_max`/`wmem_max`). One socket takes every flow's datagrams: at the default
/// (about 208 KiB, some 250 small datagrams of queue) a burst of a few hundred flows' datagrams
/// overflows it and is lost before the echo sees it.
pub const UDP_SOCKET_BUFFER: usize = 4 << 20;

/// Asks for [`UDP_SOCKET_BUFFER`] each way; a refusal leaves the system's default.
fn widen_buffers(socket: &UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    for (what, result) in [
        ("receive", sock.set_recv_buffer_size(UDP_SOCKET_BUFFER)),
        ("send", sock.set_send_buffer_size(UDP_SOCKET_BUFFER)),
    ] {
        if let Err(e) = result {
            tracing::debug!("the UDP socket keeps its default {what} buffer: {e}");
        }
    }
}

/// `port` with the echo's buffers as its pool, when it batches datagrams (and `cfg` lets it):
/// `cfg.buffers` buffers holding datagrams of up to `cfg.buffer_size` bytes. Otherwise `port`
/// as it is, without batches, for the one-operation-per-datagram worker (which has buffers of
/// its own).
fn batching(mut port: Port, cfg: &UdpConfig) -> Port {
    let count = u16::try_from(cfg.buffers).unwrap_or(u16::MAX);
    if !cfg.batched
        || port
            .provide_buffers(count, cfg.buffer_size + DGRAM_HEADROOM)
            .is_err()
    {
        port.without_datagram_batches();
    }
    // Every buffer holds a receive or an echo in flight (one receive more when batched); twice
    // that, so a batch whose completions are not yet reaped never finds the stock empty.
    port.stock_datagram_ops(2 * cfg.buffers + 2);
    port
}

/// Starts what `cfg` asks with its UDP echo `udp`: the echo alone (`only`), or the TCP server
/// (`tcp`) and then the echo on the same port number.
pub(crate) fn start(
    cfg: &ServeConfig,
    udp: &UdpConfig,
    shutdown: Shutdown,
    tcp: impl FnOnce(&ServeConfig, Shutdown) -> Result<Running, ServeError>,
) -> Result<Running, ServeError> {
    let backend = cfg.port_config.backend;
    if udp.only {
        let server = UdpServer::start(cfg.socket_addr(), udp, backend, &shutdown)?;
        return Ok(alone(server));
    }
    let running = tcp(cfg, shutdown.clone())?;
    let addr = SocketAddr::new(cfg.bind, running.local_addr().port());
    match UdpServer::start(addr, udp, backend, &shutdown) {
        Ok(server) => Ok(beside(running, server)),
        Err(e) => {
            shutdown.trigger();
            let _ = running.wait();
            Err(e)
        }
    }
}

/// The running echo alone: its address in the ready line, its counters in the summary, in
/// `--stats` (bytes in and out) and in the live view (for `--metrics`).
fn alone(server: UdpServer) -> Running {
    let ready = Ready {
        addr: server.addr,
        model: Model::Completion,
        backend: Some(server.backend),
        backend_detail: server.detail.clone(),
        workers: Some(1),
        pid: std::process::id(),
        tls: false,
        udp: true,
        websocket: false,
        direct_fds: false,
    };
    let live_stats = Arc::clone(&server.live);
    let udp_stats = Arc::clone(&server.live);
    let live = Live::new(move || {
        let s = *live_stats.lock().unwrap_or_else(|p| p.into_inner());
        Snapshot {
            open: 0,
            totals: WorkerStats {
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
                waits: s.waits,
                completions: s.completions,
                ..WorkerStats::default()
            },
        }
    })
    .with_udp(move || *udp_stats.lock().unwrap_or_else(|p| p.into_inner()));
    let started = Instant::now();
    let backend = server.detail.clone();
    let join = move || {
        let stats = server.wait()?;
        Ok(Summary {
            model: "udp".into(),
            backend,
            uptime: started.elapsed(),
            workers: Vec::new(),
            udp: Some(Box::new(stats)),
        })
    };
    Running::new(ready, Box::new(join), live)
}

/// The TCP server `tcp` with the echo beside it: the ready line says `"udp": true`, the
/// summary has the echo's lines, the live view its counters (for `--metrics`).
fn beside(tcp: Running, server: UdpServer) -> Running {
    let Running {
        mut ready,
        join,
        live,
    } = tcp;
    ready.udp = true;
    let udp_stats = Arc::clone(&server.live);
    let live = live.with_udp(move || *udp_stats.lock().unwrap_or_else(|p| p.into_inner()));
    let join = move || {
        let summary = join();
        let udp = server.wait();
        let mut summary = summary?;
        summary.udp = Some(Box::new(udp?));
        Ok(summary)
    };
    Running::new(ready, Box::new(join), live)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_socket_gets_the_queue_the_system_allows_up_to_its_ask() {
        let allowed: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        widen_buffers(&socket);
        let after = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        // Linux doubles what it grants (for its own accounting).
        let want = 2 * UDP_SOCKET_BUFFER.min(allowed);
        assert!(after >= want, "{before} -> {after}, want {want}");
        assert!(after >= before, "{before} -> {after}");
    }
}
