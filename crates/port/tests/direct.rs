//! Direct accepts (io_uring's registered file table): accepted sockets are slots of the ring's
//! table, not descriptors of the process; every operation works on them, a close or a drop
//! frees the slot, the process's descriptors do not grow with connections, and where the
//! kernel (or the test) refuses the table the port accepts descriptors as before.

#![cfg(target_os = "linux")]

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use ringport_port::{probe_uring, BackendChoice, Op, Outcome, Port, SharedFd};
use util::{next, pattern, port};

/// A port on io_uring with direct accepts and a pool, or `None` where io_uring or the table
/// is unavailable (said on stderr).
fn direct_port(slots: u32) -> Option<Port> {
    if probe_uring().is_err() {
        eprintln!("skipped: no io_uring here");
        return None;
    }
    let mut port = port(BackendChoice::Uring);
    port.provide_buffers(64, 4096).unwrap();
    if let Err(e) = port.accept_direct(slots) {
        eprintln!("skipped: the kernel refuses direct accepts ({e})");
        return None;
    }
    assert!(port.accepts_direct());
    Some(port)
}

/// The descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Accepts one client with `op`, returning the accepted socket and the client.
fn accept_one(port: &mut Port, op: Op, addr: std::net::SocketAddr) -> (Outcome, TcpStream) {
    port.submit(1, op).unwrap();
    let client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut pending = Vec::new();
    (next(port, &mut pending).outcome, client)
}

#[test]
fn a_direct_socket_echoes_shuts_down_and_closes_by_its_slot() {
    let Some(mut port) = direct_port(16) else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener: SharedFd = Rc::new(listener.into());
    // A single accept reports the peer from its own completion.
    let (outcome, mut client) = accept_one(&mut port, Op::Accept { listener }, addr);
    let Outcome::Accepted(Ok(accepted)) = outcome else {
        panic!("not accepted: {outcome:?}")
    };
    assert!(accepted.fd.is_direct());
    assert!(accepted.fd.real().is_none(), "a direct socket has no fd");
    assert_eq!(accepted.peer, Some(client.local_addr().unwrap()));
    let fd: SharedFd = Rc::new(accepted.fd);
    let mut pending = Vec::new();

    // Receive into the pool, send the pooled buffer back: the bytes round-trip.
    let data = pattern(3000);
    client.write_all(&data).unwrap();
    let mut got = Vec::new();
    while got.len() < data.len() {
        port.submit(
            2,
            Op::RecvBuf {
                fd: Rc::clone(&fd),
                nowait: false,
            },
        )
        .unwrap();
        let Outcome::ReceivedBuf {
            buf: Some(buf),
            result: Ok(n),
            ..
        } = next(&mut port, &mut pending).outcome
        else {
            panic!("no bytes received")
        };
        got.extend_from_slice(&port.buf(&buf)[..n]);
        port.submit(
            3,
            Op::SendBuf {
                fd: Rc::clone(&fd),
                buf,
                at: 0,
            },
        )
        .unwrap();
        let Outcome::SentBuf {
            buf, result: Ok(m), ..
        } = next(&mut port, &mut pending).outcome
        else {
            panic!("not sent")
        };
        assert_eq!(m, n);
        port.give_back(buf);
    }
    assert_eq!(got, data);
    let mut echo = vec![0; data.len()];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(echo, data);

    // A close frees the slot: the kernel closes the socket, the client sees the end.
    port.submit(5, Op::Close { fd }).unwrap();
    assert!(matches!(
        next(&mut port, &mut pending).outcome,
        Outcome::Closed(Ok(()))
    ));
    assert_eq!(client.read(&mut [0; 8]).unwrap(), 0, "closed");

    // A shutdown of the write side of an open direct socket reaches its client as the end.
    let listener2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr2 = listener2.local_addr().unwrap();
    let listener2: SharedFd = Rc::new(listener2.into());
    let (outcome, mut client2) = accept_one(
        &mut port,
        Op::Accept {
            listener: listener2,
        },
        addr2,
    );
    let Outcome::Accepted(Ok(accepted)) = outcome else {
        panic!("not accepted: {outcome:?}")
    };
    let fd: SharedFd = Rc::new(accepted.fd);
    port.submit(
        6,
        Op::Shutdown {
            fd: Rc::clone(&fd),
            how: Shutdown::Write,
        },
    )
    .unwrap();
    assert!(matches!(
        next(&mut port, &mut pending).outcome,
        Outcome::ShutDown(Ok(()))
    ));
    assert_eq!(client2.read(&mut [0; 8]).unwrap(), 0, "shut down");
    drop(fd);
}

#[test]
fn multishot_accepts_fill_slots_not_descriptors_and_dropped_sockets_free_them() {
    const CLIENTS: usize = 40;
    // A table smaller than the clients: only if slots are freed do all of them get one.
    let Some(mut port) = direct_port(CLIENTS as u32 / 2) else {
        return;
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener: SharedFd = Rc::new(listener.into());
    port.submit(1, Op::AcceptMulti { listener }).unwrap();
    let before = open_fds();
    let mut pending = Vec::new();
    let mut clients = Vec::new();
    for round in 0..2 {
        let mut sockets = Vec::new();
        for _ in 0..CLIENTS / 2 {
            clients.push(TcpStream::connect(addr).unwrap());
            let Outcome::AcceptedMulti {
                result: Ok(accepted),
                more: true,
            } = next(&mut port, &mut pending).outcome
            else {
                panic!("round {round}: not an armed accept")
            };
            assert!(accepted.fd.is_direct());
            assert_eq!(accepted.peer, None, "a multishot accept has no address");
            sockets.push(accepted.fd);
        }
        // Every connection is in the ring's table; the process holds only the clients' fds
        // (the other tests of this file open and close a few meanwhile; descriptors for the
        // accepted sockets would be 20 more).
        let now = open_fds();
        assert!(
            now <= before + clients.len() + 5,
            "round {round}: {now} fds open, {before} before, {} clients",
            clients.len()
        );
        // Dropped without a close: the port closes the slots at its next wait.
        drop(sockets);
        port.wait(&mut pending, Some(Duration::ZERO)).unwrap();
    }
    // The first round's clients see their connections closed.
    for client in &mut clients[..CLIENTS / 2] {
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(client.read(&mut [0; 8]).unwrap(), 0, "closed");
    }
}

#[test]
fn accepted_sockets_inherit_tcp_nodelay_from_the_listener() {
    // Direct sockets have no descriptor to set options on: the listener's are inherited.
    let listener = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    listener.set_tcp_nodelay(true).unwrap();
    listener
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    listener.listen(8).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let _client = TcpStream::connect(addr).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    assert!(accepted.tcp_nodelay().unwrap());
}

#[test]
fn a_refused_table_leaves_accepts_on_descriptors() {
    if probe_uring().is_err() {
        return;
    }
    let mut port = port(BackendChoice::Uring);
    port.without_direct_accepts();
    assert!(port.accept_direct(16).is_err());
    assert!(!port.accepts_direct());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener: SharedFd = Rc::new(listener.into());
    let (outcome, _client) = accept_one(&mut port, Op::AcceptMulti { listener }, addr);
    let Outcome::AcceptedMulti {
        result: Ok(accepted),
        ..
    } = outcome
    else {
        panic!("not accepted: {outcome:?}")
    };
    assert!(!accepted.fd.is_direct());
    assert!(accepted.fd.real().is_some());
}

#[test]
fn epoll_has_no_direct_accepts() {
    let mut port = port(BackendChoice::Epoll);
    let e = port.accept_direct(16).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
    assert!(!port.accepts_direct());
}

#[test]
fn a_table_the_kernel_refuses_leaves_the_port_on_descriptors() {
    if probe_uring().is_err() {
        return;
    }
    let mut port = port(BackendChoice::Uring);
    // Above the kernel's most registered files (and RLIMIT_NOFILE): EMFILE.
    let e = port.accept_direct(u32::MAX / 2).unwrap_err();
    assert!(!port.accepts_direct(), "{e}");
}

/// The choice is made before the first operation: with an accept in flight (submitted and
/// reaching the kernel as a descriptor accept), direct accepts are refused, and that accept's
/// socket is a descriptor, not taken for a slot.
#[test]
fn direct_accepts_are_refused_once_an_operation_is_in_flight() {
    if probe_uring().is_err() {
        return;
    }
    let mut port = port(BackendChoice::Uring);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener: SharedFd = Rc::new(listener.into());
    port.submit(1, Op::Accept { listener }).unwrap();
    let mut pending = Vec::new();
    port.wait(&mut pending, Some(Duration::ZERO)).unwrap();
    let e = port.accept_direct(64).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(!port.accepts_direct());
    let _client = TcpStream::connect(addr).unwrap();
    let Outcome::Accepted(Ok(accepted)) = next(&mut port, &mut pending).outcome else {
        panic!("not accepted")
    };
    assert!(!accepted.fd.is_direct());
    assert!(accepted.fd.real().is_some());
}
