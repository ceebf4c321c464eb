//! A datagram's sender (or an accepted peer) kept compactly in a driver's per-operation state
//! once the memory the system wrote the address into has gone back to the driver's stock: the
//! port reads it when it delivers the operation, after [`Driver::reclaim`](super::Driver::reclaim).

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};

/// A socket address in 24 bytes rather than a `SocketAddr`'s 32, so that every operation entry
/// is smaller: its address, port and (IPv6) scope id. An IPv6 address's flow label is not kept
/// (it is 0 unless the socket asked for flow labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sender {
    ip: [u8; 16],
    scope_id: u32,
    port: u16,
    v6: bool,
}

impl Sender {
    pub(crate) fn new(addr: SocketAddr) -> Sender {
        match addr {
            SocketAddr::V4(a) => {
                let mut ip = [0; 16];
                ip[..4].copy_from_slice(&a.ip().octets());
                Sender {
                    ip,
                    scope_id: 0,
                    port: a.port(),
                    v6: false,
                }
            }
            SocketAddr::V6(a) => Sender {
                ip: a.ip().octets(),
                scope_id: a.scope_id(),
                port: a.port(),
                v6: true,
            },
        }
    }

    pub(crate) fn addr(self) -> SocketAddr {
        if self.v6 {
            let ip = Ipv6Addr::from(self.ip);
            SocketAddr::V6(SocketAddrV6::new(ip, self.port, 0, self.scope_id))
        } else {
            let [a, b, c, d, ..] = self.ip;
            SocketAddr::from(([a, b, c, d], self.port))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Sender, SocketAddr};

    /// A datagram's sender comes back from its compact form as it was received (the flow label
    /// aside), scope id included: a reply to a link-local sender needs it.
    #[test]
    fn a_sender_comes_back_as_it_was_kept() {
        for addr in [
            "127.0.0.1:9",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:4700",
            "[::ffff:127.0.0.1]:53",
            "[fe80::1%7]:5353",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(Sender::new(addr).addr(), addr, "{addr}");
        }
        assert_eq!(std::mem::size_of::<Sender>(), 24);
    }
}
