//! The port's contract, on real sockets over loopback.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringport_port::{Completion, Op, Outcome, Port, PortConfig};

fn port() -> Port {
    Port::new(&PortConfig::default()).expect("io_uring port")
}

/// Waits until one completion is ready (bounded).
#[track_caller]
fn next(port: &mut Port, pending: &mut Vec<Completion>) -> Completion {
    let deadline = Instant::now() + Duration::from_secs(5);
    while pending.is_empty() {
        assert!(Instant::now() < deadline, "no completion within 5 s");
        port.wait(pending, Some(Duration::from_millis(100)))
            .expect("wait");
    }
    pending.remove(0)
}

#[test]
fn posted_values_arrive_in_order_from_other_threads() {
    let mut port = port();
    let poster = port.poster();
    let t = std::thread::spawn(move || {
        for v in 1..=100u64 {
            poster.post(v).unwrap();
        }
    });
    t.join().unwrap();
    let mut pending = Vec::new();
    for v in 1..=100u64 {
        let c = next(&mut port, &mut pending);
        assert!(matches!(c.outcome, Outcome::Posted));
        assert_eq!(c.key, v);
    }
}

#[test]
fn wait_with_timeout_returns_empty_handed() {
    let mut port = port();
    let mut out = Vec::new();
    let t0 = Instant::now();
    let n = port
        .wait(&mut out, Some(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(n, 0);
    assert!(t0.elapsed() >= Duration::from_millis(40));
}

#[test]
fn accept_recv_send_close_round_trip() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener: Rc<OwnedFd> = Rc::new(listener.into());
    let mut port = port();
    port.submit(
        1,
        Op::Accept {
            listener: listener.clone(),
        },
    )
    .unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let mut pending = Vec::new();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 1);
    let Outcome::Accepted(Ok(acc)) = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(acc.peer, Some(client.local_addr().unwrap()));
    let fd = Rc::new(acc.fd);

    client.write_all(b"hello\0world").unwrap();
    port.submit(
        2,
        Op::Recv {
            fd: fd.clone(),
            buf: Vec::with_capacity(64),
            nowait: false,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Received { buf, result } = c.outcome else {
        panic!()
    };
    assert_eq!(result.unwrap(), 11);
    assert_eq!(&buf[..], b"hello\0world");

    port.submit(
        3,
        Op::Send {
            fd: fd.clone(),
            buf,
            at: 6,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Sent { at, result, .. } = c.outcome else {
        panic!()
    };
    assert_eq!((at, result.unwrap()), (6, 5));
    let mut got = [0u8; 5];
    client.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"world");

    port.submit(4, Op::Close { fd }).unwrap();
    let c = next(&mut port, &mut pending);
    assert!(
        matches!(c.outcome, Outcome::Closed(Ok(()))),
        "{:?}",
        c.outcome
    );
    let mut rest = Vec::new();
    assert_eq!(
        client.read_to_end(&mut rest).unwrap(),
        0,
        "server side closed"
    );
    assert_eq!(port.in_flight(), 1 - 1);
}

#[test]
fn cancel_ends_a_waiting_recv_and_nowait_does_not_wait() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let fd = Rc::new(OwnedFd::from(server));
    let mut port = port();
    let mut pending = Vec::new();

    port.submit(
        7,
        Op::Recv {
            fd: fd.clone(),
            buf: Vec::with_capacity(16),
            nowait: true,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Received { result, .. } = c.outcome else {
        panic!()
    };
    assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);

    let token = port
        .submit(
            8,
            Op::Recv {
                fd: fd.clone(),
                buf: Vec::with_capacity(16),
                nowait: false,
            },
        )
        .unwrap();
    port.wait(&mut pending, Some(Duration::ZERO)).unwrap();
    assert!(pending.is_empty(), "recv must wait for data");
    port.cancel(token).unwrap();
    let c = next(&mut port, &mut pending);
    assert_eq!(c.key, 8);
    let Outcome::Received { buf, result } = c.outcome else {
        panic!()
    };
    assert_eq!(result.unwrap_err().raw_os_error(), Some(libc_ecanceled()));
    assert!(buf.is_empty());
    assert_eq!(port.in_flight(), 0);
    // Cancelling again, after the completion, is harmless.
    port.cancel(token).unwrap();
    drop(client);
}

fn libc_ecanceled() -> i32 {
    125
}

#[test]
fn connect_and_shutdown_through_the_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let fd: Rc<OwnedFd> = Rc::new(sock.into());
    let mut port = port();
    let mut pending = Vec::new();
    port.submit(
        1,
        Op::Connect {
            fd: fd.clone(),
            addr,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    assert!(
        matches!(c.outcome, Outcome::Connected(Ok(()))),
        "{:?}",
        c.outcome
    );
    let (mut server, _) = listener.accept().unwrap();
    port.submit(
        2,
        Op::Shutdown {
            fd: fd.clone(),
            how: Shutdown::Write,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    assert!(matches!(c.outcome, Outcome::ShutDown(Ok(()))));
    let mut rest = Vec::new();
    assert_eq!(server.read_to_end(&mut rest).unwrap(), 0, "FIN seen");
}

#[test]
fn connect_refused_is_reported() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let mut port = port();
    let mut pending = Vec::new();
    port.submit(
        1,
        Op::Connect {
            fd: Rc::new(sock.into()),
            addr,
        },
    )
    .unwrap();
    let c = next(&mut port, &mut pending);
    let Outcome::Connected(Err(e)) = c.outcome else {
        panic!("{:?}", c.outcome)
    };
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn many_operations_beyond_the_queue_size_all_complete() {
    let mut port = Port::new(&PortConfig { entries: 8 }).unwrap();
    for i in 0..1000u64 {
        port.submit(i, Op::Nop).unwrap();
    }
    let mut seen = vec![false; 1000];
    let mut pending = Vec::new();
    for _ in 0..1000 {
        let c = next(&mut port, &mut pending);
        assert!(matches!(c.outcome, Outcome::Nop));
        assert!(!seen[c.key as usize], "duplicate completion");
        seen[c.key as usize] = true;
    }
    assert!(seen.iter().all(|s| *s));
    assert_eq!(port.stats().stale, 0);
    assert_eq!(port.in_flight(), 0);
}
