//! `--proxy-protocol v1|v2` on the client side: the PROXY header a load balancer would put
//! first on a connection, sent by every connection `stress` and `send` open (the load's and
//! the probes' alike) right after its TCP connect, before TLS, the WebSocket upgrade or any
//! echo. It names the connection's own address as the client's (so `--source-ip` spreads the
//! addresses a server behind a proxy sees) and the server's as the destination.

use std::io;
use std::net::SocketAddr;

pub use ringport_proxy_protocol::Version;

/// Parses `v1` or `v2` (`1`, `2` too).
///
/// # Errors
///
/// One line naming what is accepted.
pub fn parse_version(s: &str) -> Result<Version, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "v1" | "1" => Ok(Version::V1),
        "v2" | "2" => Ok(Version::V2),
        _ => Err(format!("`{s}` is not a PROXY protocol version: v1 or v2")),
    }
}

/// Sends the header on `socket`, just connected to `server`: one send, which a connection's
/// empty send buffer takes whole (at most 107 bytes), blocking or not.
///
/// # Errors
///
/// The socket's, or `WriteZero` if the header was not taken whole.
pub fn send_header(
    socket: socket2::SockRef<'_>,
    version: Version,
    server: SocketAddr,
) -> io::Result<()> {
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("the connection has no IP address"))?;
    let header = ringport_proxy_protocol::encode(version, local, server);
    let sent = socket.send(&header)?;
    if sent == header.len() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the PROXY header was not sent whole",
        ))
    }
}

/// A blocking connection to `addr` (within `timeout`) that has sent `version`'s header, if
/// given: what the probes before the load open.
///
/// # Errors
///
/// The connect's, or [`send_header`]'s.
pub fn connect(
    addr: SocketAddr,
    timeout: std::time::Duration,
    version: Option<Version>,
) -> io::Result<std::net::TcpStream> {
    let sock = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    send_on(&sock, version, addr)?;
    Ok(sock)
}

/// [`send_header`] on a connected stream when `version` is given.
///
/// # Errors
///
/// See [`send_header`].
pub fn send_on(
    stream: &std::net::TcpStream,
    version: Option<Version>,
    server: SocketAddr,
) -> io::Result<()> {
    send_if(socket2::SockRef::from(stream), version, server)
}

/// [`send_header`] when `version` is given.
///
/// # Errors
///
/// See [`send_header`].
pub fn send_if(
    socket: socket2::SockRef<'_>,
    version: Option<Version>,
    server: SocketAddr,
) -> io::Result<()> {
    match version {
        Some(v) => send_header(socket, v, server),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn the_header_names_the_connections_own_addresses() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = l.local_addr().unwrap();
        let c = TcpStream::connect(server).unwrap();
        let (mut s, _) = l.accept().unwrap();
        send_header(socket2::SockRef::from(&c), Version::V1, server).unwrap();
        let want = format!(
            "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
            c.local_addr().unwrap().port(),
            server.port()
        );
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want);
        assert_eq!(parse_version("V2"), Ok(Version::V2));
        assert!(parse_version("v3").unwrap_err().contains("v1 or v2"));
    }
}
