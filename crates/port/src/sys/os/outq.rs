//! How much of what a TCP socket was given to send its peer has not acknowledged yet: a server
//! that closes a connection with unread input makes the kernel reset it, which drops whatever
//! of its own output is still queued, so a graceful close waits for this to reach 0 first.

use std::io;

/// Bytes `socket` queued to send that its peer has not acknowledged (sent or not; a FIN after
/// `shutdown(Write)` counts as one): `SIOCOUTQ` on Linux. `Ok(0)` elsewhere, where it cannot
/// be asked.
///
/// # Errors
///
/// The system's (a socket that is not a TCP one, a closed descriptor).
#[cfg(target_os = "linux")]
pub fn unacked_bytes(socket: &impl std::os::fd::AsRawFd) -> io::Result<usize> {
    let mut value: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int into a live local; the descriptor is held open by the
    // borrowed socket.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut value) };
    if ret == 0 {
        Ok(usize::try_from(value).unwrap_or(0))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes queued and not acknowledged: not known here (Linux only), so 0.
///
/// # Errors
///
/// None.
#[cfg(not(target_os = "linux"))]
pub fn unacked_bytes<S>(_socket: &S) -> io::Result<usize> {
    Ok(0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// What a peer that does not read leaves queued is counted, and nothing once it has read
    /// everything and acknowledged the FIN.
    #[test]
    fn queued_bytes_count_until_the_peer_reads_them() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert_eq!(unacked_bytes(&server).unwrap(), 0);
        server.set_nonblocking(true).unwrap();
        let chunk = vec![7u8; 1 << 16];
        let mut sent = 0;
        while let Ok(n) = server.write(&chunk) {
            sent += n;
        }
        assert!(sent > 0);
        assert!(unacked_bytes(&server).unwrap() > 0, "the peer read nothing");
        server.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), sent);
        let t0 = Instant::now();
        while unacked_bytes(&server).unwrap() > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "still unacknowledged"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
