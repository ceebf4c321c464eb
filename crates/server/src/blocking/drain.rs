//! The drain supervisor of a blocking server ([`supervise_drain`]): once the shutdown starts, it
//! gives the connections the drain timeout to echo what they received and close, then forces the
//! rest closed.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::Registry;

/// How long past the drain deadline the server waits for forced connections to let go.
pub(crate) const HARD_STOP: Duration = Duration::from_secs(2);

/// Waits for the drain to start, then until the server is done ([`Registry::wait_done`]) or
/// `drain_timeout` has passed, then forces the remaining connections closed. Returns the number
/// of forced closes. Returns 0 at once if the server finishes without a drain.
pub(crate) fn supervise_drain(registry: &Registry, drain_timeout: Duration, model: &str) -> u64 {
    if !registry.wait_for_drain() {
        return 0;
    }
    let deadline = Instant::now() + drain_timeout;
    info!(
        model,
        connections = registry.len(),
        "shutting down: echoing what was received, then closing"
    );
    if registry.wait_done(deadline) {
        return 0;
    }
    let n = registry.force();
    if n > 0 {
        warn!(
            model,
            connections = n,
            "drain timeout: closing the connections that are still busy"
        );
    }
    n as u64
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use socket2::{Domain, Protocol, Socket, Type};

    use super::supervise_drain;
    use crate::blocking::test_support::serve_in_thread;
    #[cfg(target_os = "linux")]
    use crate::blocking::test_support::{wait_until_blocked_in, SEND};
    use crate::blocking::Registry;

    #[test]
    fn force_fails_a_write_blocked_on_a_client_that_does_not_read() {
        let reg = Registry::new(10, 0);
        // Small socket buffers on the way back, so the echo of 64 KiB cannot be written.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        client.connect(&l.local_addr().unwrap().into()).unwrap();
        let mut client: TcpStream = client.into();
        let (server, _) = l.accept().unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        let t = serve_in_thread("rp-no-reader", &reg, server, 64 * 1024);
        client.write_all(&[7u8; 64 * 1024]).unwrap();
        // The server thread is blocked sending the echo the client does not read (on Linux, as
        // /proc shows it; elsewhere, given the time to get there).
        #[cfg(target_os = "linux")]
        wait_until_blocked_in("rp-no-reader", &SEND);
        #[cfg(not(target_os = "linux"))]
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(reg.drain(), 1);
        reg.finish();
        let forced = supervise_drain(&reg, Duration::from_millis(100), "test");
        let stats = t.join().unwrap();
        assert_eq!(forced, 1, "{stats:?}");
        // Some of the 64 KiB was read, not necessarily all: how loopback segments it depends on
        // the receive window (one segment of about 64 KiB, or two or more under memory
        // pressure), and the blocked echo keeps the rest unread.
        assert!(
            stats.bytes_in > 0 && stats.bytes_in <= 64 * 1024,
            "{stats:?}"
        );
        assert!(stats.bytes_out < stats.bytes_in, "{stats:?}");
        assert_eq!(
            stats.conn_errors, 0,
            "a forced close is not a connection error"
        );
    }
}
