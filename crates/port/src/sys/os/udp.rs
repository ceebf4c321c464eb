//! Linux UDP offloads on a socket: receiving several datagrams of one sender at once (`UDP_GRO`)
//! and sending several in one call (`UDP_SEGMENT`); elsewhere neither is.

use std::io;
use std::net::UdpSocket;

/// Turns UDP receive coalescing (`UDP_GRO`, Linux 5.0+) on or off for `socket`: with it on, a
/// receive may hold several datagrams of one sender, each as long as the first (the last may
/// be shorter), and says so ([`Outcome::ReceivedFrom`](crate::Outcome::ReceivedFrom)'s and
/// [`Outcome::ReceivedFromBuf`](crate::Outcome::ReceivedFromBuf)'s `segment`). A receive buffer
/// then needs room for 64 KiB, or a coalesced receive is cut. `Unsupported` where the system
/// has no such option.
#[cfg(target_os = "linux")]
pub fn udp_gro(socket: &UdpSocket, on: bool) -> io::Result<()> {
    set_int(socket, libc::SOL_UDP, libc::UDP_GRO, i32::from(on))
}

/// Whether the system takes segmented sends on `socket` (`UDP_SEGMENT`, Linux 4.18+): asked by
/// setting the socket's default segment size to 0, which changes nothing. A send may still be
/// refused where the route cannot segment (`EIO`), or the segment does not fit the path
/// (`EINVAL`): a caller falls back to one datagram per send then.
#[cfg(target_os = "linux")]
pub fn udp_gso(socket: &UdpSocket) -> bool {
    set_int(socket, libc::SOL_UDP, libc::UDP_SEGMENT, 0).is_ok()
}

/// Sets `socket`'s default segment size (`UDP_SEGMENT`, Linux 4.18+): a send longer than
/// `segment` bytes then leaves as datagrams of `segment` bytes (the last may be shorter, and
/// there may be [`DGRAM_SEGMENTS_MAX`](crate::DGRAM_SEGMENTS_MAX) at most), one no longer as
/// one datagram, as without it. 0 turns it off. `Unsupported` where the system has no such
/// option.
#[cfg(target_os = "linux")]
pub fn udp_segment(socket: &UdpSocket, segment: u16) -> io::Result<()> {
    set_int(socket, libc::SOL_UDP, libc::UDP_SEGMENT, i32::from(segment))
}

#[cfg(target_os = "linux")]
fn set_int(socket: &UdpSocket, level: i32, name: i32, value: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live local; the descriptor is
    // held open by the borrowed socket.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turns UDP receive coalescing on or off: `Unsupported` here (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn udp_gro(_socket: &UdpSocket, _on: bool) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Sets a socket's default segment size: `Unsupported` here (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn udp_segment(_socket: &UdpSocket, _segment: u16) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Whether the system takes segmented sends: never here (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn udp_gso(_socket: &UdpSocket) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_udp_socket_takes_gro_on_and_off_and_knows_segments() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Kernels since 5.0 (4.18 for segments); every kernel this project supports.
        udp_gro(&s, true).unwrap();
        udp_gro(&s, false).unwrap();
        assert!(udp_gso(&s));
        udp_segment(&s, 1200).unwrap();
        udp_segment(&s, 0).unwrap();
    }
}
