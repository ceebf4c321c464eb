//! A port dropped with operations in flight: it returns promptly, and what those operations
//! brought (sockets accepted but never reaped) is closed, not leaked. One test per process
//! (this file holds one), so that the count of the process's descriptors is this test's alone.

#![cfg(target_os = "linux")]

mod util;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringport_port::{BackendChoice, Op, SharedFd};
use util::{connected_pair, port};

/// The descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_port_dropped_with_operations_in_flight_closes_what_they_brought() {
    for backend in [BackendChoice::Uring, BackendChoice::Epoll] {
        let before = open_fds();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let listener: SharedFd = Rc::new(listener.into());
        let mut port = port(backend);
        port.provide_buffers(8, 4096).unwrap();
        let (fd, mut peer) = connected_pair();
        port.submit(
            1,
            Op::AcceptMulti {
                listener: Rc::clone(&listener),
            },
        )
        .unwrap();
        port.submit(
            2,
            Op::RecvMulti {
                fd: Rc::clone(&fd),
                limit: 0,
            },
        )
        .unwrap();
        let (fd2, _peer2) = connected_pair();
        port.submit(
            3,
            Op::Recv {
                fd: fd2,
                buf: Vec::with_capacity(64),
                nowait: false,
            },
        )
        .unwrap();
        let mut out = Vec::new();
        port.wait(&mut out, Some(Duration::ZERO)).unwrap();
        // Accepted (and received) in the kernel, never reaped.
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        peer.write_all(b"unread").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        drop(port);
        let took = t0.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{backend}: the drop took {took:?}"
        );
        drop((clients, listener, fd, peer, _peer2, out));
        assert_eq!(open_fds(), before, "{backend}: descriptors left open");
    }
}
