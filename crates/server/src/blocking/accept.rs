//! The accept loop of a blocking server ([`accept_loop`]): the blocking listener ([`Acceptor`])
//! with its back-off on failed accepts, the wake-up connection that ends a blocked `accept` at
//! shutdown, and the clients already in the listen backlog taken in without waiting.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tracing::{error, warn};

use super::drain::HARD_STOP;
use super::{BlockingModel, Registry};
use crate::accept_policy::{AcceptPolicy, Verdict};
use crate::summary::WorkerStats;

/// The blocking listener and what wakes it.
pub(crate) struct Acceptor {
    listener: TcpListener,
    local: SocketAddr,
    /// The local address of the wake-up connection, once made.
    waker: Arc<Mutex<Option<SocketAddr>>>,
    policy: AcceptPolicy,
    /// `--mptcp`: ask each accepted connection whether it speaks MPTCP, and count.
    mptcp: bool,
}

/// What [`Acceptor::accept`] produced.
pub(crate) enum Accepted {
    /// A client.
    Conn(TcpStream, SocketAddr),
    /// Nothing (the wake-up connection, a signal, a failed accept the next may follow at once:
    /// counted and logged): look at the shutdown flag and call again.
    Nothing,
    /// No client is waiting (only once [`Acceptor::stop_waiting`] was called).
    Empty,
    /// The accept failed and accepting pauses; it was counted, logged and paused for.
    Failed,
}

impl Acceptor {
    /// Wraps a bound, listening, blocking socket.
    pub(crate) fn new(listener: Socket, local: SocketAddr) -> Acceptor {
        Acceptor {
            listener: listener.into(),
            local,
            waker: Arc::new(Mutex::new(None)),
            policy: AcceptPolicy::new(None),
            mptcp: false,
        }
    }

    /// Counts, of each connection accepted, whether it speaks Multipath TCP (`--mptcp`).
    pub(crate) fn counting_mptcp(mut self, on: bool) -> Acceptor {
        self.mptcp = on;
        self
    }

    /// A function that wakes a blocked [`accept`](Acceptor::accept) by connecting to the
    /// listener once. Meant for [`Shutdown::on_trigger`](crate::Shutdown::on_trigger): it does
    /// not block (the connection completes in the kernel, from the backlog).
    pub(crate) fn waker(&self) -> impl Fn() + Send + Sync + 'static {
        let target = wake_target(self.local);
        let slot = self.waker.clone();
        move || {
            if let Err(e) = wake(target, &slot) {
                warn!("cannot wake the accept loop ({e}); it stops at the next connection attempt");
            }
        }
    }

    /// Takes the backlog without waiting from now on.
    pub(crate) fn stop_waiting(&self) {
        let _ = self.listener.set_nonblocking(true);
    }

    /// Accepts one connection. Failed accepts are counted and dealt with by the
    /// [accept policy](crate::accept_policy) (a pause ends early when the drain starts).
    pub(crate) fn accept(&mut self, registry: &Registry, stats: &mut WorkerStats) -> Accepted {
        match self.listener.accept() {
            Ok((stream, peer)) => {
                self.policy.succeeded();
                let is_waker = {
                    let waker = self.waker.lock().unwrap_or_else(|p| p.into_inner());
                    *waker == Some(peer)
                };
                if is_waker {
                    return Accepted::Nothing;
                }
                stats.accepted += 1;
                if self.mptcp {
                    stats.note_mptcp(ringport_port::os::is_mptcp(&stream));
                }
                Accepted::Conn(stream, peer)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Empty,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Accepted::Nothing,
            Err(e) => {
                stats.accept_errors += 1;
                match self.policy.failed(&e) {
                    Verdict::Pause(pause) => {
                        if !registry.is_draining() {
                            registry.pause(pause);
                        }
                        Accepted::Failed
                    }
                    // The client was gone, or the next one may be fine: accept again at once
                    // (at shutdown too: the rest of the backlog is still to be taken).
                    Verdict::AcceptNext => Accepted::Nothing,
                }
            }
        }
    }
}

/// Where the wake-up connection goes: the listener's address, or loopback for a wildcard bind.
fn wake_target(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

fn wake(target: SocketAddr, slot: &Mutex<Option<SocketAddr>>) -> io::Result<()> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    let any = match target {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    // Bind first, so the acceptor knows the wake-up connection's address before it arrives.
    socket.bind(&any.into())?;
    let mut local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("no local address"))?;
    if local.ip().is_unspecified() {
        local.set_ip(target.ip());
    }
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(local);
    socket.connect_timeout(&target.into(), Duration::from_secs(1))?;
    Ok(())
}

/// The server thread of a blocking model (`name`): accepts clients and gives them to `model`
/// until the drain starts; then takes in the clients already in the listen backlog without
/// waiting for more (until `drain_timeout` has passed or the connections are forced), closes the
/// listener, and waits for the connections to close (at most [`HARD_STOP`] past the drain
/// deadline) before [`BlockingModel::finish`]. Returns the accept loop's counters.
pub(super) fn accept_loop<M: BlockingModel>(
    mut acceptor: Acceptor,
    reg: &Registry,
    mut model: M,
    drain_timeout: Duration,
    name: &str,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    while !reg.is_draining() {
        if let Accepted::Conn(stream, peer) = acceptor.accept(reg, &mut stats) {
            model.admit(stream, peer, &mut stats);
        }
        reg.publish_acceptor(&stats);
    }
    // Shutdown: take in the clients already in the backlog, without waiting for more.
    let deadline = Instant::now() + drain_timeout;
    acceptor.stop_waiting();
    while !reg.is_forced() && Instant::now() < deadline {
        match acceptor.accept(reg, &mut stats) {
            Accepted::Conn(stream, peer) => model.admit(stream, peer, &mut stats),
            Accepted::Nothing => {}
            Accepted::Empty | Accepted::Failed => break,
        }
    }
    drop(acceptor);
    reg.finish();
    let all_closed = reg.wait_done(deadline + HARD_STOP);
    if !all_closed {
        error!(
            model = name,
            connections = reg.len(),
            "connections did not close after being forced; giving up on them"
        );
    }
    model.finish(all_closed);
    reg.publish_acceptor(&WorkerStats::default());
    stats
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use socket2::{Domain, Protocol, Socket, Type};

    use super::{Accepted, Acceptor};
    #[cfg(target_os = "linux")]
    use crate::blocking::test_support::{wait_until_blocked_in, ACCEPT};
    use crate::blocking::Registry;
    use crate::summary::WorkerStats;

    #[test]
    fn the_waker_unblocks_accept_and_is_not_counted() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket
            .bind(&"0.0.0.0:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(16).unwrap();
        let local = socket.local_addr().unwrap().as_socket().unwrap();
        let mut acceptor = Acceptor::new(socket, local);
        let wake = acceptor.waker();
        let reg = Registry::new(1, 0);
        let accepting = reg.clone();
        let (accepted, result) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("rp-acceptor".into())
            .spawn(move || {
                let mut stats = WorkerStats::default();
                let nothing = matches!(acceptor.accept(&accepting, &mut stats), Accepted::Nothing);
                let _ = accepted.send((nothing, stats, acceptor));
            })
            .unwrap();
        // Woken once blocked in its accept (on Linux, as /proc shows it; elsewhere the wake-up
        // connection may be in the backlog first, and is taken and recognised the same way).
        #[cfg(target_os = "linux")]
        wait_until_blocked_in("rp-acceptor", &ACCEPT);
        wake();
        let (nothing, mut stats, mut acceptor) = result
            .recv_timeout(Duration::from_secs(5))
            .expect("the wake-up connection did not end the blocked accept");
        assert!(nothing, "the wake-up connection is nothing to serve");
        assert_eq!(stats.accepted, 0);
        acceptor.stop_waiting();
        assert!(matches!(acceptor.accept(&reg, &mut stats), Accepted::Empty));
    }
}
