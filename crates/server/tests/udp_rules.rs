//! The UDP echo's rules hold on both of its loops, on every backend of the system (io_uring and
//! epoll on Linux, IOCP on Windows): the batched one where the port batches datagrams and the
//! one-operation-per-datagram one (the only one on IOCP). A datagram from a denied source port
//! and one longer than the buffer are counted under their cause and never echoed; the datagram
//! after them is echoed byte for byte; the summary's counters say exactly that.
//!
//! The server runs in this process; the clients are blocking `std` sockets with read timeouts,
//! so every wait is bounded.

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use ringport_port::{BackendChoice, PortConfig};
use ringport_server::udp::{UdpConfig, UdpStats};
use ringport_server::{ServeConfig, Shutdown};

/// The echo's buffers: a datagram longer than this is truncated.
const BUFFER: usize = 512;

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// The next datagram on `c` and its sender (a read timeout fails the test).
fn next(c: &UdpSocket, buf: &mut [u8]) -> (usize, SocketAddr) {
    loop {
        match c.recv_from(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            got => return got.expect("an echo within 10 s"),
        }
    }
}

/// Whether a datagram waits on `c` now.
fn anything_left(c: &UdpSocket) -> bool {
    c.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    let left = match c.recv_from(&mut buf) {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) => panic!("reading what is left: {e}"),
    };
    c.set_nonblocking(false).unwrap();
    left
}

/// A denied source's datagram, a truncated one and an ordinary one, sent in that order to an
/// echo on `backend` (`batched` or not): the counters at shutdown, and the path it took.
fn serve_three(backend: BackendChoice, batched: bool) -> (UdpStats, String) {
    let (ok, denied) = (client(), client());
    let denied_port = denied.local_addr().unwrap().port();
    let cfg = ServeConfig {
        port: 0,
        workers: 1,
        port_config: PortConfig {
            backend,
            ..PortConfig::default()
        },
        udp: Some(UdpConfig {
            only: true,
            batched,
            buffer_size: BUFFER,
            buffers: 8,
            deny_ports: vec![denied_port],
            ..UdpConfig::default()
        }),
        ..ServeConfig::default()
    };
    let shutdown = Shutdown::new();
    let running = ringport_server::start(&cfg, shutdown.clone()).expect("the server starts");
    let to = running.local_addr();

    let long = vec![7u8; BUFFER + 100];
    let msg: Vec<u8> = (0..100u8).collect();
    denied.send_to(&[1u8; 64], to).unwrap();
    ok.send_to(&long, to).unwrap();
    ok.send_to(&msg, to).unwrap();
    // The socket's queue is first in, first out: once the last datagram is echoed, the two
    // before it were received too.
    let mut back = vec![0u8; 2 * BUFFER];
    let (n, from) = next(&ok, &mut back);
    assert_eq!(from, to);
    assert_eq!(
        &back[..n],
        &msg[..],
        "the ordinary datagram, echoed whole, and only it"
    );

    shutdown.trigger();
    let summary = running.wait().expect("a clean shutdown");
    assert!(!anything_left(&ok), "the truncated datagram was not echoed");
    assert!(!anything_left(&denied), "the denied source got no echo");
    (
        *summary.udp.expect("the UDP echo's counters"),
        summary.backend,
    )
}

#[test]
fn denied_and_truncated_datagrams_are_counted_and_not_echoed_on_either_path() {
    for backend in support::BACKENDS {
        if backend == BackendChoice::Uring && backend.resolve().is_err() {
            eprintln!("io_uring unavailable here: skipping its run");
            continue;
        }
        for batched in [true, false] {
            let (udp, path) = serve_three(backend, batched);
            let want = UdpStats {
                datagrams_in: 3,
                // The denied datagram came whole; the truncated one's length is not known.
                bytes_in: 64 + 100,
                datagrams_out: 1,
                bytes_out: 100,
                truncated: 1,
                denied_port: 1,
                ..udp
            };
            assert_eq!(udp, want, "{backend} (batched: {batched}), {path}");
            assert_eq!(
                (udp.no_sender, udp.rate_limited, udp.table_full),
                (0, 0, 0),
                "{backend} (batched: {batched})"
            );
            assert_eq!(
                (udp.recv_errors, udp.send_errors),
                (0, 0),
                "{backend} (batched: {batched})"
            );
            if !batched {
                assert!(path.ends_with("one operation per datagram"), "{path}");
            }
        }
    }
}
