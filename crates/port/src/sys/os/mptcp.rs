//! TCP stream sockets, plain or Multipath TCP (RFC 8684; Linux 5.6+): the one place both the
//! server's listeners and the clients' connections are made, and whether a connected socket
//! speaks MPTCP.
//!
//! An MPTCP socket is a stream socket like any other to its user (accept, connect, receive,
//! send, on every backend), carried over one or more TCP subflows: a peer that does not speak
//! MPTCP gets plain TCP from it (the *fallback*), which [`is_mptcp`] tells apart. Which extra
//! subflows open, over which addresses, is the kernel's path manager's (`ip mptcp endpoint`,
//! `ip mptcp limits`), not the socket's.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// A new stream socket for `addr`'s family: MPTCP when `mptcp`, TCP otherwise. Close-on-exec.
///
/// # Errors
///
/// The system's, except that an MPTCP socket the system refuses is `Unsupported`, saying why
/// in one line.
pub fn stream_socket(addr: SocketAddr, mptcp: bool) -> io::Result<Socket> {
    let domain = Domain::for_address(addr);
    if !mptcp {
        return Socket::new(domain, Type::STREAM, Some(Protocol::TCP));
    }
    #[cfg(target_os = "linux")]
    {
        Socket::new(domain, Type::STREAM, Some(Protocol::MPTCP)).map_err(|e| {
            match e.raw_os_error() {
                // No MPTCP in the kernel (EPROTONOSUPPORT; EINVAL before 5.6), or turned off
                // (ENOPROTOOPT: net.mptcp.enabled = 0).
                Some(libc::EPROTONOSUPPORT | libc::EINVAL | libc::ENOPROTOOPT) => io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "MPTCP is unavailable here ({e}): it needs Linux 5.6 or newer with \
                             sysctl net.mptcp.enabled=1"
                    ),
                ),
                _ => e,
            }
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "MPTCP is unavailable here: ringport speaks it on Linux only",
        ))
    }
}

/// Whether the connected socket `socket` speaks MPTCP: `false` for a TCP socket, and for an
/// MPTCP socket whose peer did not (it fell back to TCP). Asked with `TCP_IS_MPTCP` (Linux
/// 5.16+).
///
/// # Errors
///
/// A kernel too old to answer (`ENOPROTOOPT`), or a socket that is not a TCP one.
#[cfg(target_os = "linux")]
pub fn is_mptcp(socket: &impl std::os::fd::AsRawFd) -> io::Result<bool> {
    /// `TCP_IS_MPTCP` of `<linux/tcp.h>` (the libc crate does not name it).
    const TCP_IS_MPTCP: libc::c_int = 43;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (the size of a c_int) into a live local and
    // its length into another; the descriptor is held open by the borrowed socket.
    let ret = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_TCP,
            TCP_IS_MPTCP,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret == 0 {
        Ok(value != 0)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the connected socket `socket` speaks MPTCP: never, here (Linux only).
///
/// # Errors
///
/// None.
#[cfg(not(target_os = "linux"))]
pub fn is_mptcp<S>(_socket: &S) -> io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// MPTCP where the kernel has it on (this machine's), in each of the four pairings of an
    /// MPTCP or TCP client with an MPTCP or TCP listener: only MPTCP at both ends speaks it.
    #[test]
    fn only_mptcp_at_both_ends_speaks_mptcp() {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        if let Err(e) = stream_socket(loopback, true) {
            assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
            assert!(e.to_string().contains("net.mptcp.enabled"), "{e}");
            eprintln!("skipped: {e}");
            return;
        }
        for (server_mptcp, client_mptcp) in
            [(true, true), (true, false), (false, true), (false, false)]
        {
            let listener = stream_socket(loopback, server_mptcp).unwrap();
            listener.bind(&loopback.into()).unwrap();
            listener.listen(4).unwrap();
            let listener: TcpListener = listener.into();
            let addr = listener.local_addr().unwrap();
            let client = stream_socket(addr, client_mptcp).unwrap();
            client.connect(&addr.into()).unwrap();
            let client: TcpStream = client.into();
            let (accepted, _) = listener.accept().unwrap();
            let both = server_mptcp && client_mptcp;
            assert_eq!(
                is_mptcp(&client).unwrap(),
                both,
                "{server_mptcp} {client_mptcp}"
            );
            assert_eq!(
                is_mptcp(&accepted).unwrap(),
                both,
                "{server_mptcp} {client_mptcp}"
            );
        }
    }
}
