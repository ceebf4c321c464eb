//! Receives that never wait, on a descriptor the caller holds (Unix): what a reader of a short
//! header uses when its bytes are likely there already, before it submits an operation that
//! waits. [`peek_nowait`] looks without taking; [`recv_nowait`] takes.

use std::io;
use std::os::fd::AsRawFd;

/// Copies up to `buf.len()` of the bytes queued on `socket` into `buf` without taking them
/// (`MSG_PEEK | MSG_DONTWAIT`). `Ok(0)` is the peer's end; `WouldBlock` none queued.
///
/// # Errors
///
/// The system's.
pub fn peek_nowait(socket: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    recv(socket, buf, libc::MSG_PEEK | libc::MSG_DONTWAIT)
}

/// Takes up to `buf.len()` of the bytes queued on `socket` into `buf` (`MSG_DONTWAIT`).
/// `Ok(0)` is the peer's end; `WouldBlock` none queued.
///
/// # Errors
///
/// The system's.
pub fn recv_nowait(socket: &impl AsRawFd, buf: &mut [u8]) -> io::Result<usize> {
    recv(socket, buf, libc::MSG_DONTWAIT)
}

fn recv(socket: &impl AsRawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes for the call's length,
        // and the descriptor is held open by the borrowed socket.
        let n = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                flags,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_peek_leaves_the_bytes_a_receive_then_takes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let mut buf = [0u8; 16];
        let e = peek_nowait(&s, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        c.write_all(b"header+rest").unwrap();
        let mut n = 0;
        while n < 11 {
            n = peek_nowait(&s, &mut buf).unwrap_or(0);
        }
        assert_eq!(&buf[..n], b"header+rest");
        assert_eq!(recv_nowait(&s, &mut buf[..6]).unwrap(), 6);
        assert_eq!(&buf[..6], b"header");
        assert_eq!(peek_nowait(&s, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"+rest");
        drop(c);
        assert_eq!(recv_nowait(&s, &mut buf).unwrap(), 5);
        let mut end = 1;
        while end != 0 {
            end = recv_nowait(&s, &mut buf).unwrap_or(1);
        }
    }
}
