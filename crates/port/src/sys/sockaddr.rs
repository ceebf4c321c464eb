//! Socket addresses in the kernel's form (`sockaddr_storage`), to and from Rust's.

use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};

/// Storage for a socket address the kernel reads or writes.
#[derive(Clone, Copy)]
pub(crate) struct SockAddrBuf {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl std::fmt::Debug for SockAddrBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SockAddrBuf({:?})", self.socket_addr())
    }
}

impl SockAddrBuf {
    /// Empty storage of full size, for the kernel to fill (accept).
    pub fn empty() -> SockAddrBuf {
        SockAddrBuf {
            // SAFETY: sockaddr_storage is plain old data for which all-zero bytes are valid.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        }
    }

    /// The C form of `addr` (connect).
    pub fn from_socket_addr(addr: &SocketAddr) -> SockAddrBuf {
        let mut buf = SockAddrBuf::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in, and the
                // pointer comes from a live, exclusively borrowed local.
                unsafe {
                    std::ptr::write(
                        (&mut buf.storage as *mut libc::sockaddr_storage)
                            .cast::<libc::sockaddr_in>(),
                        sin,
                    )
                };
                buf.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6, and the
                // pointer comes from a live, exclusively borrowed local.
                unsafe {
                    std::ptr::write(
                        (&mut buf.storage as *mut libc::sockaddr_storage)
                            .cast::<libc::sockaddr_in6>(),
                        sin6,
                    )
                };
                buf.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        buf
    }

    /// The Rust form of what the storage holds, if it is an IPv4 or IPv6 address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let base = (&self.storage as *const libc::sockaddr_storage).cast::<u8>();
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if self.len as usize >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, the length covers it,
                // and sockaddr_storage is aligned for it.
                let sin = unsafe { &*base.cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*base.cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// The peer address of a connected socket (`getpeername`), for multishot accepts, which do
/// not report it.
pub(crate) fn peer_of(fd: &OwnedFd) -> Option<std::net::SocketAddr> {
    let mut addr = SockAddrBuf::empty();
    // SAFETY: getpeername writes at most `addr.len` bytes into the live local storage.
    let ret = unsafe {
        libc::getpeername(
            fd.as_raw_fd(),
            (&mut addr.storage as *mut libc::sockaddr_storage).cast(),
            &mut addr.len,
        )
    };
    if ret == 0 {
        addr.socket_addr()
    } else {
        None
    }
}
