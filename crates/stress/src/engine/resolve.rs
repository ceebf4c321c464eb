//! The server's address: a name resolved to every address it has, the one to load chosen among
//! them, and the `HOST:PORT` form the report shows.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// `HOST:PORT`, with an IPv6 address in brackets (`[::1]:3333`), as users write it.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Every address `host:port` resolves to, IPv4 first (servers bind 127.0.0.1 by default), each
/// family in the resolver's order.
///
/// # Errors
///
/// The resolver's error, or `NotFound` when the name has no address.
pub fn resolve_all(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    if addrs.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no address"));
    }
    Ok(addrs)
}

/// The address to load among `addrs`: the only one, or the first that accepts a TCP connection
/// within `timeout` (opened and closed at once; `localhost` may be 127.0.0.1 and ::1, with the
/// server on either). When none accepts, the first: the run then reports its connections'
/// failures.
pub fn choose(addrs: &[SocketAddr], timeout: Duration) -> SocketAddr {
    if addrs.len() > 1 {
        let timeout = if timeout.is_zero() {
            Duration::from_secs(5)
        } else {
            timeout
        };
        for addr in addrs {
            if TcpStream::connect_timeout(addr, timeout).is_ok() {
                return *addr;
            }
        }
    }
    addrs[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn ipv6_keeps_its_brackets() {
        assert_eq!(host_port("::1", 3335), "[::1]:3335");
        assert_eq!(host_port("127.0.0.1", 3335), "127.0.0.1:3335");
        assert_eq!(host_port("localhost", 1), "localhost:1");
    }

    #[test]
    fn the_first_address_that_accepts_is_chosen() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        // A port just freed on 127.0.0.2: refused.
        let closed = TcpListener::bind("127.0.0.2:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(choose(&[closed, open], Duration::from_secs(2)), open);
        assert_eq!(choose(&[open, closed], Duration::from_secs(2)), open);
        assert_eq!(choose(&[closed], Duration::from_secs(2)), closed);
    }

    #[test]
    fn ipv4_comes_first() {
        let addrs = resolve_all("127.0.0.1", 9).unwrap();
        assert_eq!(addrs, ["127.0.0.1:9".parse::<SocketAddr>().unwrap()]);
        assert!(resolve_all("::1", 9).unwrap()[0].is_ipv6());
    }
}
