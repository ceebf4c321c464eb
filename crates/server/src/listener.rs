//! Listening sockets: one per worker on the same address, with `SO_REUSEPORT` (Unix), or one
//! shared listener (Windows).
//!
//! On Unix each worker of the completion model accepts on its own listener, and the kernel
//! spreads new connections over them by a hash of the connection's addresses: no acceptor
//! thread, no hand-off between threads, no lock. Windows has no `SO_REUSEPORT` and a socket
//! belongs to one completion port, so there one listener is bound and worker 0 accepts and hands
//! connections to the others (`completion::handoff`). (The alternative, one acceptor handing sockets to workers, costs a
//! cross-thread wake-up per connection; monoio and the other thread-per-core servers chose
//! `SO_REUSEPORT` too.)
//!
//! `SO_REUSEPORT` lets *any* socket of the same user join the group, so a second server started on
//! the same port would silently share it. Before binding the group we therefore bind a probe
//! socket without `SO_REUSEPORT`: if anything listens there already, that fails with
//! `EADDRINUSE` and we report it.
//!
//! Unless the server asked to share: `serve --reuse-port` (for running several server processes
//! on one port, each with its own open-file limit) skips the probe and puts `SO_REUSEPORT` on
//! every listener, so it joins the group that another `--reuse-port` server already holds. A plain
//! server started on that port still finds it in use (its probe has no `SO_REUSEPORT`). The
//! kernel cannot tell the groups apart, though: a `--reuse-port` server can also join a plain
//! completion server with several workers (whose listeners have `SO_REUSEPORT`), but not a plain
//! server with one listener.

use std::io;
use std::net::SocketAddr;

use socket2::Socket;

use crate::ServeError;

fn new_socket(addr: SocketAddr, mptcp: bool) -> io::Result<Socket> {
    let socket = ringport_port::os::stream_socket(addr, mptcp)?;
    // On Windows SO_REUSEADDR lets another socket take the port: not wanted there.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    Ok(socket)
}

pub(crate) fn bind_error(addr: SocketAddr, e: io::Error) -> ServeError {
    match e.kind() {
        io::ErrorKind::AddrInUse => ServeError::AddrInUse(addr),
        io::ErrorKind::AddrNotAvailable => ServeError::AddrNotAvailable(addr),
        #[cfg(unix)]
        _ if e.raw_os_error() == Some(libc::EACCES) => ServeError::Bind {
            addr,
            source: e,
            hint: "ports below 1024 need root or CAP_NET_BIND_SERVICE; pick another --port",
        },
        // An MPTCP socket the system refuses (`serve --mptcp`).
        io::ErrorKind::Unsupported => ServeError::Bind {
            addr,
            source: e,
            hint: if cfg!(target_os = "linux") {
                "leave --mptcp out, or turn MPTCP on (sysctl -w net.mptcp.enabled=1)"
            } else {
                "leave --mptcp out"
            },
        },
        _ => ServeError::Bind {
            addr,
            source: e,
            hint: "check --bind and --port",
        },
    }
}

/// Where to listen, and whether to share the port with other processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The address (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Join the port's `SO_REUSEPORT` group, which other processes may already hold, instead of
    /// reporting the port as in use (`serve --reuse-port`).
    pub reuse_port: bool,
    /// Listen with Multipath TCP sockets (`serve --mptcp`), which serve plain TCP clients too.
    pub mptcp: bool,
}

impl From<SocketAddr> for ListenAddr {
    /// The address alone: not shared.
    fn from(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            addr,
            reuse_port: false,
            mptcp: false,
        }
    }
}

/// Binds `count` listeners on `addr` (all on the same port when `addr`'s port is 0) and returns
/// them with the address they are bound to. With [`ListenAddr::reuse_port`], every listener has
/// `SO_REUSEPORT` and no probe is made, so they join the port's existing group if there is one.
/// On Windows, which has no `SO_REUSEPORT`, one listener is bound whatever `count` (the workers
/// share it) and `reuse_port` is refused.
pub fn bind_listeners(
    addr: impl Into<ListenAddr>,
    count: usize,
    backlog: i32,
) -> Result<(Vec<Socket>, SocketAddr), ServeError> {
    let ListenAddr {
        addr,
        reuse_port,
        mptcp,
    } = addr.into();
    // Several listeners on one port need SO_REUSEPORT, which Windows lacks: there the workers
    // share one listener (worker 0 accepts and hands connections out).
    #[cfg(windows)]
    let count = {
        if reuse_port {
            return Err(ServeError::Bind {
                addr,
                source: io::Error::new(
                    io::ErrorKind::Unsupported,
                    "--reuse-port needs SO_REUSEPORT (Linux)",
                ),
                hint: "on Windows one server process serves a port; leave --reuse-port out",
            });
        }
        count.min(1)
    };
    if addr.port() != 0 && !reuse_port {
        let probe = new_socket(addr, mptcp).map_err(|e| bind_error(addr, e))?;
        probe.bind(&addr.into()).map_err(|e| bind_error(addr, e))?;
        probe.listen(1).map_err(|e| bind_error(addr, e))?;
    }
    let mut listeners = Vec::with_capacity(count);
    let mut bound = addr;
    for i in 0..count.max(1) {
        let socket = new_socket(bound, mptcp).map_err(|e| bind_error(bound, e))?;
        #[cfg(unix)]
        if count > 1 || reuse_port {
            socket
                .set_reuse_port(true)
                .map_err(|e| bind_error(bound, e))?;
        }
        socket
            .bind(&bound.into())
            .map_err(|e| bind_error(bound, e))?;
        socket.listen(backlog).map_err(|e| bind_error(bound, e))?;
        if i == 0 {
            bound = socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .ok_or_else(|| bind_error(addr, io::Error::other("no local address")))?;
        }
        listeners.push(socket);
    }
    Ok((listeners, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    // SO_REUSEPORT groups exist only on Linux.
    #[cfg(unix)]
    #[test]
    fn port_zero_gives_every_worker_the_same_port() {
        let (ls, addr) =
            bind_listeners("127.0.0.1:0".parse::<SocketAddr>().unwrap(), 3, 16).unwrap();
        assert_eq!(ls.len(), 3);
        assert_ne!(addr.port(), 0);
        for l in &ls {
            assert_eq!(l.local_addr().unwrap().as_socket(), Some(addr));
        }
    }

    #[test]
    fn a_taken_port_is_reported_as_in_use_even_with_reuseport() {
        let (_ls, addr) =
            bind_listeners("127.0.0.1:0".parse::<SocketAddr>().unwrap(), 2, 16).unwrap();
        match bind_listeners(addr, 2, 16) {
            Err(ServeError::AddrInUse(a)) => assert_eq!(a, addr),
            other => panic!("expected AddrInUse, got {other:?}"),
        }
    }

    #[cfg(windows)]
    #[test]
    fn on_windows_the_workers_share_one_listener_and_reuse_port_is_refused() {
        let (ls, addr) =
            bind_listeners("127.0.0.1:0".parse::<SocketAddr>().unwrap(), 3, 16).unwrap();
        assert_eq!(ls.len(), 1);
        assert_ne!(addr.port(), 0);
        match bind_listeners(shared("127.0.0.1:0".parse().unwrap()), 1, 16) {
            Err(ServeError::Bind { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::Unsupported)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn shared(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            addr,
            reuse_port: true,
            mptcp: false,
        }
    }

    // SO_REUSEPORT groups exist only on Linux.
    #[cfg(unix)]
    #[test]
    fn reuse_port_joins_an_existing_group_and_a_plain_bind_still_finds_it_in_use() {
        let (_a, addr) = bind_listeners(shared("127.0.0.1:0".parse().unwrap()), 1, 16).unwrap();
        let (b, addr_b) = bind_listeners(shared(addr), 2, 16).unwrap();
        assert_eq!(addr_b, addr);
        assert_eq!(b.len(), 2);
        match bind_listeners(addr, 1, 16) {
            Err(ServeError::AddrInUse(a)) => assert_eq!(a, addr),
            other => panic!("expected AddrInUse, got {other:?}"),
        }
    }

    // SO_REUSEPORT groups exist only on Linux.
    #[cfg(unix)]
    #[test]
    fn reuse_port_cannot_join_a_port_held_by_a_plain_single_listener() {
        let (_ls, addr) =
            bind_listeners("127.0.0.1:0".parse::<SocketAddr>().unwrap(), 1, 16).unwrap();
        match bind_listeners(shared(addr), 1, 16) {
            Err(ServeError::AddrInUse(a)) => assert_eq!(a, addr),
            other => panic!("expected AddrInUse, got {other:?}"),
        }
    }
}
