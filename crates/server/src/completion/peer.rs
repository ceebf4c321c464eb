//! A connection's peer address as the completion model's connection table keeps it: 20 bytes
//! instead of an `Option<SocketAddr>`'s 32, since every connection, busy or idle, holds one.
//!
//! It keeps what the worker uses the address for (the count of connections per address, the
//! logs): the IP address and the port. An IPv6 peer's flow label and scope id are not kept.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which kind of address a [`Peer`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// None: the kernel reported no address.
    Unknown,
    /// IPv4, in the first 4 bytes.
    V4,
    /// IPv6.
    V6,
}

/// A peer's address, or none (see the module's documentation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Peer {
    ip: [u8; 16],
    port: u16,
    family: Family,
}

impl Peer {
    /// Keeps `addr` (`None`: the kernel reported no address).
    pub(super) fn new(addr: Option<SocketAddr>) -> Peer {
        let mut ip = [0; 16];
        match addr {
            None => Peer {
                ip,
                port: 0,
                family: Family::Unknown,
            },
            Some(SocketAddr::V4(a)) => {
                ip[..4].copy_from_slice(&a.ip().octets());
                Peer {
                    ip,
                    port: a.port(),
                    family: Family::V4,
                }
            }
            Some(SocketAddr::V6(a)) => Peer {
                ip: a.ip().octets(),
                port: a.port(),
                family: Family::V6,
            },
        }
    }

    /// The address (an IPv6 one without its flow label and scope id).
    pub(super) fn addr(self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }

    /// The IP address.
    pub(super) fn ip(self) -> Option<IpAddr> {
        match self.family {
            Family::Unknown => None,
            Family::V4 => {
                let [a, b, c, d, ..] = self.ip;
                Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            }
            Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(self.ip))),
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.addr(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_back_as_they_were_kept() {
        for addr in [
            "127.0.0.5:4700",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:80",
            "[::ffff:127.0.0.1]:9",
            "[2001:db8::1:2]:65535",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let peer = Peer::new(Some(addr));
            assert_eq!(peer.addr(), Some(addr), "{addr}");
            assert_eq!(peer.ip(), Some(addr.ip()), "{addr}");
            assert_eq!(format!("{peer:?}"), format!("{:?}", Some(addr)));
        }
        assert_eq!(Peer::new(None).addr(), None);
        assert_eq!(Peer::new(None).ip(), None);
    }

    #[test]
    fn a_peer_is_small() {
        assert!(std::mem::size_of::<Peer>() <= 20);
        assert!(std::mem::size_of::<Option<SocketAddr>>() >= 32);
    }
}
